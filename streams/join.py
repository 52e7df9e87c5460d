"""The event-time join of crowd audio and match events, for one match: pure logic.

Faust has no stream-stream join and no event-time windows, so this is ours. The stream
worker keeps one :class:`MatchJoin` state per match in a changelog-backed table and feeds
it every record of the match, in partition order; replay feeds it the retained records.

* **Watermark.** The end of the newest audio frame, in match time. Audio is the clock:
  a window is complete — and emitted, revision 0 — as soon as the watermark passes it.
* **Grace.** Match events usually arrive seconds after the crowd reacted. An event is
  in grace if it is at most ``grace_ms`` behind the watermark; it is attached to the
  windows it concerns, and windows already emitted are re-emitted with ``revision + 1``
  when it changes them. Later events are *late*: counted and handed back to be kept on
  match.events.late.v1, never silently lost, but they change nothing.
* **Context.** An event concerns a window of its own period if the crowd may be reacting
  to it (it happened up to ``react_ms`` before the window ends) or anticipating it (it
  happens up to ``anticipate_ms`` after the window ends). ``grace_ms`` must cover
  ``anticipate_ms`` so that every window an in-grace event concerns can still be revised.

The property that matters: for any arrival order of the same audio and in-grace events,
the final (highest revision) windows have the same content.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from schemas.clock import MatchClock, Period
from streams.context import apply_context
from streams.features import FrameAnalysis
from streams.windows import AnalyzedWindow, CrowdAnalyzer, WindowSpec

__all__ = ["AcousticEmotion", "JoinConfig", "JoinOutput", "MatchJoin", "Predict"]


@dataclass(frozen=True)
class AcousticEmotion:
    """What the model hears in a window (before match context)."""

    probabilities: dict[str, float]
    arousal: float
    valence: float


Predict = Callable[[np.ndarray], Sequence[AcousticEmotion]]


@dataclass(frozen=True)
class JoinConfig:
    window: WindowSpec = field(default_factory=WindowSpec)
    grace_ms: int = 15_000
    react_ms: int = 30_000
    anticipate_ms: int = 5_000

    def __post_init__(self) -> None:
        if self.grace_ms < self.anticipate_ms:
            raise ValueError(f"grace ({self.grace_ms} ms) must cover anticipation ({self.anticipate_ms} ms)")


@dataclass
class JoinOutput:
    """What one record produced: emotion windows to emit, and whether an event was late."""

    windows: list[dict[str, Any]] = field(default_factory=list)
    late_event: bool = False
    dropped: str | None = None  # why an audio frame was not used (duplicate, out of order)


def _content_key(record: dict[str, Any]) -> str:
    keep = {k: record[k] for k in ("state", "probabilities", "arousal", "valence", "events", "tempo_bpm")}
    return json.dumps(keep, sort_keys=True)


class MatchJoin:
    """Join state of one match. Feed it with :meth:`add_audio` and :meth:`add_event`."""

    def __init__(self, match_id: str, config: JoinConfig | None = None, *, model_version: str = "") -> None:
        self.match_id = match_id
        self.config = config or JoinConfig()
        self.model_version = model_version
        self.analyzer = CrowdAnalyzer(self.config.window)
        self.watermark: MatchClock | None = None
        self.events: dict[str, dict[str, Any]] = {}
        self.windows: dict[str, dict[str, Any]] = {}  # recent windows by "PERIOD:start_ms", for revisions
        self.sessions: dict[str, int] = {}  # last seq per encoder session (duplicates)
        self.late_events = 0
        self.dropped_frames = 0

    # -- audio ------------------------------------------------------------------------------
    def add_audio(self, frame: dict[str, Any], samples: np.ndarray, *, predict: Predict,
                  now_ms: int, analysis: FrameAnalysis | None = None) -> JoinOutput:
        """One decoded AudioFrame (``samples``: mono float, full scale 1.0; ``analysis``: its
        features computed ahead, see :meth:`CrowdAnalyzer.add_frame`)."""
        clock = MatchClock.from_avro(frame["clock"])
        last_seq = self.sessions.get(frame["session_id"])
        if last_seq is not None and frame["seq"] <= last_seq:
            self.dropped_frames += 1
            return JoinOutput(dropped=f"duplicate frame seq {frame['seq']} of session {frame['session_id']}")
        half_frame_ms = 500 * frame["samples_per_channel"] // max(1, frame["sample_rate"])
        if self.watermark is not None and (
            clock.period.order < self.watermark.period.order
            or clock.period is self.watermark.period and clock.ms + half_frame_ms < self.analyzer.end_ms
        ):
            self.dropped_frames += 1
            return JoinOutput(dropped=f"frame at {clock} is older than the audio already joined ({self.watermark})")
        self.sessions[frame["session_id"]] = frame["seq"]
        analysed = self.analyzer.add_frame(clock, samples, frame["sample_rate"], analysis=analysis)
        self.watermark = MatchClock(self.analyzer.period, self.analyzer.end_ms)
        frame_ms = int(1000 * frame["samples_per_channel"] / frame["sample_rate"])
        end_wall = frame["wall_time_ms"] + frame_ms
        ends = [end_wall] * len(analysed)
        for number, window in enumerate(analysed):
            # A window this frame completes ended where its audio did, inside a long frame maybe.
            if window.start.period is clock.period and clock.ms < window.last_frame_ms <= clock.ms + frame_ms:
                ends[number] = frame["wall_time_ms"] + window.last_frame_ms - clock.ms
        output = JoinOutput(windows=self._emit_new(analysed, predict, ends, now_ms))
        self._prune()
        return output

    def flush(self, *, predict: Predict, now_ms: int) -> JoinOutput:
        """End of stream (replay): close windows the audio partly covers."""
        closed = self.analyzer.flush()
        return JoinOutput(windows=self._emit_new(closed, predict, [now_ms] * len(closed), now_ms))

    def _emit_new(self, analysed: list[AnalyzedWindow], predict: Predict, audio_wall_ms: list[int],
                  now_ms: int) -> list[dict[str, Any]]:
        if not analysed:
            return []
        heard = predict(np.stack([w.features for w in analysed]))
        out = []
        for window, emotion, wall in zip(analysed, heard, audio_wall_ms, strict=True):
            stored = {
                "period": window.start.period.value,
                "start_ms": window.start.ms,
                "length_ms": window.length_ms,
                "probabilities": dict(emotion.probabilities),
                "arousal": float(emotion.arousal),
                "valence": float(emotion.valence),
                "tempo_bpm": window.summary.tempo_bpm,
                "loudness_rel_db": float(window.features[0]),
                "audio_wall_time_ms": wall,
                "revision": -1,
                "content": "",
            }
            record = self._render(stored, now_ms)
            self.windows[_key(window.start)] = stored
            out.append(record)
        return out

    # -- events -----------------------------------------------------------------------------
    def add_event(self, event: dict[str, Any], *, now_ms: int) -> JoinOutput:
        """One decoded MatchEvent: attach it, revise the windows it changes, or call it late."""
        if event["event_id"] in self.events:
            return JoinOutput()  # a re-sent event changes nothing
        clock = MatchClock.from_avro(event["clock"])
        if self._is_late(clock):
            self.late_events += 1
            return JoinOutput(late_event=True)
        self.events[event["event_id"]] = {
            "event_id": event["event_id"], "type": event["type"], "side": event["side"], "clock": clock.to_avro(),
        }
        revised = []
        for stored in sorted(self.windows.values(), key=lambda w: (Period(w["period"]).order, w["start_ms"])):
            if stored["period"] == clock.period.value and self._concerns(clock.ms, stored):
                before = stored["content"]
                record = self._render(stored, now_ms, revise=True)
                if stored["content"] != before:
                    revised.append(record)
        return JoinOutput(windows=revised)

    def _is_late(self, clock: MatchClock) -> bool:
        if self.watermark is None:
            return False
        if clock.period is self.watermark.period:
            return self.watermark.ms - clock.ms > self.config.grace_ms
        if clock.period.order > self.watermark.period.order:
            return False
        # An earlier period: at least the watermark's time into the new period has passed.
        return self.watermark.period.order - clock.period.order > 1 or self.watermark.ms > self.config.grace_ms

    def _concerns(self, event_ms: int, stored: dict[str, Any]) -> bool:
        end = stored["start_ms"] + stored["length_ms"]
        return end - self.config.react_ms <= event_ms < end + self.config.anticipate_ms

    # -- rendering --------------------------------------------------------------------------
    def _render(self, stored: dict[str, Any], now_ms: int, *, revise: bool = False) -> dict[str, Any]:
        events = sorted(
            (e for e in self.events.values()
             if e["clock"]["period"] == stored["period"] and self._concerns(e["clock"]["ms"], stored)),
            key=lambda e: (e["clock"]["ms"], e["event_id"]),
        )
        end = stored["start_ms"] + stored["length_ms"]
        shaped = apply_context(probabilities=stored["probabilities"], arousal=stored["arousal"],
                               valence=stored["valence"], events=events, window_start_ms=stored["start_ms"],
                               window_end_ms=end)
        record = {
            "match_id": self.match_id,
            "clock": {"period": stored["period"], "ms": stored["start_ms"]},
            "length_ms": stored["length_ms"],
            "revision": 0,
            "arousal": shaped.arousal,
            "valence": shaped.valence,
            "state": shaped.state,
            "probabilities": shaped.probabilities,
            "tempo_bpm": None if stored["tempo_bpm"] is None else round(float(stored["tempo_bpm"]), 3),
            "loudness_rel_db": round(stored["loudness_rel_db"], 4),
            "events": [dict(e) for e in events],
            "wall_time_ms": now_ms,
            "audio_wall_time_ms": stored["audio_wall_time_ms"],
            "model_version": self.model_version,
        }
        content = _content_key(record)
        if content != stored["content"]:
            stored["revision"] += 1
            stored["content"] = content
        record["revision"] = stored["revision"]
        return record

    # -- housekeeping -----------------------------------------------------------------------
    def _prune(self) -> None:
        """Forget windows no in-grace event can revise, and events no window can use."""
        wm = self.watermark
        if wm is None:
            return
        horizon = wm.ms - self.config.grace_ms - self.config.anticipate_ms - self.config.window.length_ms
        self.windows = {
            key: w for key, w in self.windows.items()
            if w["period"] == wm.period.value and w["start_ms"] + w["length_ms"] >= horizon
            or Period(w["period"]).order == wm.period.order - 1 and wm.ms <= self.config.grace_ms
        }
        keep_after = wm.ms - self.config.grace_ms - self.config.react_ms - self.config.window.length_ms
        self.events = {
            key: e for key, e in self.events.items()
            if Period(e["clock"]["period"]).order > wm.period.order
            or e["clock"]["period"] == wm.period.value and e["clock"]["ms"] >= keep_after
            or Period(e["clock"]["period"]).order == wm.period.order - 1 and wm.ms <= self.config.grace_ms
        }

    # -- state ------------------------------------------------------------------------------
    def to_state(self) -> dict[str, Any]:
        """A JSON-able snapshot of the whole join state of the match."""
        return {
            "match_id": self.match_id,
            "config": {"window": asdict(self.config.window), "grace_ms": self.config.grace_ms,
                       "react_ms": self.config.react_ms, "anticipate_ms": self.config.anticipate_ms},
            "model_version": self.model_version,
            "analyzer": self.analyzer.to_state(),
            "watermark": self.watermark.to_avro() if self.watermark else None,
            "events": self.events,
            "windows": self.windows,
            "sessions": self.sessions,
            "late_events": self.late_events,
            "dropped_frames": self.dropped_frames,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> MatchJoin:
        config = state["config"]
        join = cls(state["match_id"], JoinConfig(window=WindowSpec(**config["window"]), grace_ms=config["grace_ms"],
                                                 react_ms=config["react_ms"], anticipate_ms=config["anticipate_ms"]),
                   model_version=state["model_version"])
        join.analyzer = CrowdAnalyzer.from_state(state["analyzer"])
        join.watermark = MatchClock.from_avro(state["watermark"]) if state["watermark"] else None
        join.events = state["events"]
        join.windows = state["windows"]
        join.sessions = state["sessions"]
        join.late_events = state["late_events"]
        join.dropped_frames = state["dropped_frames"]
        return join


def _key(clock: MatchClock) -> str:
    return f"{clock.period.value}:{clock.ms}"
