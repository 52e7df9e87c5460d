"""What the crowd feels at a point of the music: the emotion windows, digested for the director.

The director never reads Avro records; it reads ``Mood``. A mood comes from the latest
final-so-far emotion window at or before the bar. When windows stop arriving (an encoder
dropped out, the worker lags) the music must go on: the last mood is held for a few
seconds and then decays towards calm, so a missing stretch sounds like the crowd settling,
not like the music freezing on a goal roar.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

__all__ = ["CALM_MOOD", "EventCue", "Mood", "WindowDigest", "digest_window", "mood_at"]

HOLD_MS = 4_000   # a missing window is held this long ...
DECAY_MS = 8_000  # ... then fades towards calm with this time constant


@dataclass(frozen=True)
class EventCue:
    """A match event the music may react to (from a window's ``events``)."""

    event_id: str
    type: str   # EventType symbol: GOAL, SHOT, SAVE, CARD, VAR_REVIEW, PERIOD_END, ...
    side: str   # HOME, AWAY, NONE
    period: str
    period_ms: int


@dataclass(frozen=True)
class WindowDigest:
    """The part of an EmotionWindow the score uses."""

    start_ms: int        # music time of the window's start
    length_ms: int
    revision: int
    arousal: float
    valence: float
    state: str
    probabilities: tuple[tuple[str, float], ...]  # sorted by state name
    chant_bpm: float | None
    events: tuple[EventCue, ...]

    @property
    def end_ms(self) -> int:
        return self.start_ms + self.length_ms

    def probability(self, state: str) -> float:
        return dict(self.probabilities).get(state, 0.0)

    def to_json(self) -> dict[str, Any]:
        return {
            "s": self.start_ms, "l": self.length_ms, "r": self.revision, "a": self.arousal,
            "v": self.valence, "st": self.state, "p": [list(p) for p in self.probabilities],
            "bpm": self.chant_bpm,
            "ev": [[e.event_id, e.type, e.side, e.period, e.period_ms] for e in self.events],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> WindowDigest:
        return cls(start_ms=data["s"], length_ms=data["l"], revision=data["r"], arousal=data["a"],
                   valence=data["v"], state=data["st"], probabilities=tuple((k, v) for k, v in data["p"]),
                   chant_bpm=data["bpm"], events=tuple(EventCue(*e) for e in data["ev"]))


def digest_window(window: dict[str, Any], *, start_ms: int) -> WindowDigest:
    """Digest a decoded EmotionWindow placed at music time ``start_ms``.

    Values are rounded to 4 decimals: float32 from Avro round-trips exactly, but rounding
    keeps the composer's JSON state small and its decisions readable.
    """
    probs = tuple(sorted((str(k), round(float(v), 4)) for k, v in window["probabilities"].items()))
    tempo = window.get("tempo_bpm")
    events = tuple(
        EventCue(event_id=str(e["event_id"]), type=str(e["type"]), side=str(e["side"]),
                 period=str(e["clock"]["period"]), period_ms=int(e["clock"]["ms"]))
        for e in window.get("events", ())
    )
    return WindowDigest(
        start_ms=start_ms, length_ms=int(window["length_ms"]), revision=int(window["revision"]),
        arousal=round(_finite(window["arousal"], 0.0, 0.0, 1.0), 4),
        valence=round(_finite(window["valence"], 0.0, -1.0, 1.0), 4),
        state=str(window["state"]), probabilities=probs,
        chant_bpm=round(float(tempo), 2) if tempo is not None and math.isfinite(tempo) and tempo > 0 else None,
        events=events,
    )


def _finite(value: Any, default: float, low: float, high: float) -> float:
    number = float(value)
    if not math.isfinite(number):
        return default
    return min(high, max(low, number))


@dataclass(frozen=True)
class Mood:
    """The crowd at one instant of the music, as the director reads it."""

    arousal: float
    valence: float
    state: str
    anticipation: float   # probability of ANTICIPATION (tension)
    anger: float          # probability of ANGER
    chant_bpm: float | None
    stale_ms: int         # how long ago the latest window ended (0 = fresh)


CALM_MOOD = Mood(arousal=0.15, valence=0.0, state="CALM", anticipation=0.0, anger=0.0, chant_bpm=None, stale_ms=0)


def mood_at(windows: list[WindowDigest], at_ms: int) -> Mood:
    """The mood at music time ``at_ms`` from the windows known so far.

    The two latest windows that start at or before ``at_ms`` are averaged (one noisy window
    should not steer the music alone); if they ended long before ``at_ms``, the mood is
    held, then decays towards ``CALM_MOOD``.
    """
    known = sorted((w for w in windows if w.start_ms <= at_ms), key=lambda w: w.start_ms)[-2:]
    if not known:
        return CALM_MOOD
    latest = known[-1]
    weights = [0.35, 0.65] if len(known) == 2 else [1.0]
    arousal = sum(w.arousal * k for w, k in zip(known, weights))
    valence = sum(w.valence * k for w, k in zip(known, weights))
    anticipation = sum(w.probability("ANTICIPATION") * k for w, k in zip(known, weights))
    anger = sum(w.probability("ANGER") * k for w, k in zip(known, weights))
    stale = max(0, at_ms - latest.end_ms)
    state = latest.state
    chant = latest.chant_bpm if (latest.state == "CHANTING" or latest.probability("CHANTING") >= 0.3) else None
    if stale > HOLD_MS:
        keep = math.exp(-(stale - HOLD_MS) / DECAY_MS)
        arousal = CALM_MOOD.arousal + (arousal - CALM_MOOD.arousal) * keep
        valence *= keep
        anticipation *= keep
        anger *= keep
        chant = None
        if keep < 0.5:
            state = "CALM"
    return Mood(arousal=round(arousal, 4), valence=round(valence, 4), state=state,
                anticipation=round(anticipation, 4), anger=round(anger, 4), chant_bpm=chant, stale_ms=stale)
