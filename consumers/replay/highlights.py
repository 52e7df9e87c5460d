"""Finding a match's highlights: events and crowd peaks, with pre- and post-roll, ranked.

An editor's first cut: every goal, then the moments the crowd rose most (a penalty
awarded, a VAR check, a red card, a near miss, or a roar the data feed did not name).
Each candidate gets a span around its moment — more run-up for a goal, whose build-up is
the story — overlapping spans merge, and the best ``n`` are kept in match order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from schemas.clock import MatchClock, Period

__all__ = ["Highlight", "find_highlights", "highlight_for_range"]

# (score, pre-roll ms, post-roll ms) per event type; scores rank the candidates.
_EVENT_WEIGHT: dict[str, tuple[float, int, int]] = {
    "GOAL": (10.0, 15_000, 20_000),
    "PENALTY_AWARDED": (6.0, 10_000, 15_000),
    "VAR_REVIEW": (4.0, 8_000, 15_000),
    "CARD": (3.0, 8_000, 10_000),
    "SAVE": (3.0, 10_000, 8_000),
    "SHOT": (2.5, 10_000, 8_000),
}
_PEAK_ROLL_MS = (10_000, 10_000)
_MERGE_GAP_MS = 3_000
_PEAK_MIN_AROUSAL = 0.7


@dataclass(frozen=True)
class Highlight:
    """A span of one period of the match, and why it is a highlight."""

    period: str
    start_ms: int
    end_ms: int
    score: float
    reason: str
    moments: tuple[int, ...]         # period ms of the moments inside (events, peaks)
    event_ids: tuple[str, ...] = ()

    @property
    def start(self) -> MatchClock:
        return MatchClock(Period(self.period), self.start_ms)

    @property
    def end(self) -> MatchClock:
        return MatchClock(Period(self.period), self.end_ms)

    @property
    def duration_ms(self) -> int:
        return self.end_ms - self.start_ms


def _describe(event: dict[str, Any]) -> str:
    side = "" if event["side"] == "NONE" else f" {event['side'].lower()}"
    team = f" ({event['team']})" if event.get("team") else ""
    outcome = f" {event['outcome']}" if event.get("outcome") else ""
    return f"{event['type'].lower().replace('_', ' ')}{side}{team}{outcome} at {MatchClock.from_avro(event['clock'])}"


def _event_candidates(events: Sequence[dict[str, Any]], arousal_at: dict[tuple[str, int], float]) -> list[Highlight]:
    out = []
    for event in events:
        weight = _EVENT_WEIGHT.get(event["type"])
        if weight is None:
            continue
        score, pre, post = weight
        period, at = event["clock"]["period"], int(event["clock"]["ms"])
        if event["type"] == "CARD" and str(event.get("outcome") or "").lower().startswith("red"):
            score += 2.0
        score += 2.0 * _peak_near(arousal_at, period, at)
        out.append(Highlight(period=period, start_ms=max(0, at - pre), end_ms=at + post, score=score,
                             reason=_describe(event), moments=(at,), event_ids=(event["event_id"],)))
    return out


def _peak_near(arousal_at: dict[tuple[str, int], float], period: str, at_ms: int) -> float:
    values = [a for (p, start), a in arousal_at.items() if p == period and at_ms - 3_000 <= start <= at_ms + 10_000]
    return max(values, default=0.0)


def _peak_candidates(windows: Sequence[dict[str, Any]]) -> list[Highlight]:
    """Crowd peaks: windows loud above the 90th percentile and the highest within ±15 s."""
    if not windows:
        return []
    arousals = sorted(w["arousal"] for w in windows)
    threshold = max(_PEAK_MIN_AROUSAL, arousals[int(0.9 * (len(arousals) - 1))])
    loud = [w for w in windows if w["arousal"] >= threshold]  # a higher neighbour is loud too
    out = []
    for window in loud:
        period, at = window["clock"]["period"], int(window["clock"]["ms"])
        neighbours = [w for w in loud if w["clock"]["period"] == period and abs(w["clock"]["ms"] - at) <= 15_000]
        if any(w["arousal"] > window["arousal"] or (w["arousal"] == window["arousal"] and w["clock"]["ms"] < at)
               for w in neighbours if w is not window):
            continue
        state = str(window["state"]).lower()
        out.append(Highlight(period=period, start_ms=max(0, at - _PEAK_ROLL_MS[0]), end_ms=at + _PEAK_ROLL_MS[1],
                             score=2.0 + 3.0 * window["arousal"],
                             reason=f"crowd {state} (arousal {window['arousal']:.2f}) at {MatchClock.from_avro(window['clock'])}",
                             moments=(at,)))
    return out


def _merge(candidates: list[Highlight]) -> list[Highlight]:
    merged: list[Highlight] = []
    for cand in sorted(candidates, key=lambda h: (Period(h.period).order, h.start_ms, -h.score, h.reason)):
        last = merged[-1] if merged else None
        if last is not None and last.period == cand.period and cand.start_ms <= last.end_ms + _MERGE_GAP_MS:
            top, other = (last, cand) if last.score >= cand.score else (cand, last)
            merged[-1] = Highlight(
                period=last.period, start_ms=min(last.start_ms, cand.start_ms), end_ms=max(last.end_ms, cand.end_ms),
                score=top.score + 0.5 * other.score,
                reason=top.reason if other.reason.startswith("crowd") else f"{top.reason}; {other.reason}",
                moments=tuple(sorted(set(last.moments + cand.moments))),
                event_ids=tuple(sorted(set(last.event_ids + cand.event_ids))),
            )
        else:
            merged.append(cand)
    return merged


def find_highlights(events: Sequence[dict[str, Any]], windows: Sequence[dict[str, Any]], *, count: int,
                    max_clip_ms: int = 60_000) -> list[Highlight]:
    """The ``count`` best highlights of a match, in match order (ties: earlier first)."""
    arousal_at = {(w["clock"]["period"], int(w["clock"]["ms"])): float(w["arousal"]) for w in windows}
    playing = [w for w in windows if Period(w["clock"]["period"]).is_play]
    merged = _merge(_event_candidates(events, arousal_at) + _peak_candidates(playing))
    # A story too long for one clip loses its beginning, never its climax and celebration.
    trimmed = [h if h.duration_ms <= max_clip_ms else Highlight(
        period=h.period, start_ms=h.end_ms - max_clip_ms, end_ms=h.end_ms, score=h.score, reason=h.reason,
        moments=tuple(m for m in h.moments if m >= h.end_ms - max_clip_ms), event_ids=h.event_ids) for h in merged]
    best = sorted(trimmed, key=lambda h: (-h.score, Period(h.period).order, h.start_ms))[:count]
    return sorted(best, key=lambda h: (Period(h.period).order, h.start_ms))


def highlight_for_range(start: MatchClock, end: MatchClock, events: Sequence[dict[str, Any]]) -> Highlight:
    """A clip the editor asked for; its reason lists the events inside."""
    inside = [e for e in events if e["clock"]["period"] == start.period.value
              and start.ms <= e["clock"]["ms"] <= end.ms and e["type"] in _EVENT_WEIGHT]
    reason = "; ".join(_describe(e) for e in inside) or "requested range"
    return Highlight(period=start.period.value, start_ms=start.ms, end_ms=end.ms, score=0.0, reason=reason,
                     moments=tuple(int(e["clock"]["ms"]) for e in inside), event_ids=tuple(e["event_id"] for e in inside))
