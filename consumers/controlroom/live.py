"""What the control room knows about the matches in play, built from decoded records (no Kafka).

The follower feeds every record it reads into :class:`LiveModel`; each ``on_*`` method
updates the match's view and returns the message to push to the page (or None when the
record changes nothing a viewer sees — a lower revision of a window, say). Every position
on the page's time axis (``x_ms``) is venue wall-clock time: a window's audio, a bar's
music and an event inside a window all share it, across periods and breaks.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Any

from schemas.clock import MatchClock

__all__ = ["LiveModel", "MatchView", "clock_text"]


def clock_text(clock: dict[str, Any] | None) -> str | None:
    """A match clock as people write it (``23:10``, ``45+2:30``, ``HT 3:00``)."""
    return None if clock is None else str(MatchClock.from_avro(clock))


def _event_x(event: dict[str, Any], window_key: tuple[str, int], window_x_ms: int) -> int:
    """Where an event inside a window sits on the time axis (at the window's start if in another period)."""
    if event["clock"]["period"] != window_key[0]:
        return window_x_ms
    return window_x_ms + int(event["clock"]["ms"]) - window_key[1]


def _now_ms() -> int:
    return int(time.time() * 1000)


@dataclass
class MatchView:
    """One match as the page shows it."""

    match_id: str
    windows_kept: int
    bars_kept: int
    home: str | None = None
    away: str | None = None
    updated_ms: int = 0  # wall time the control room last heard of the match
    windows: OrderedDict[tuple[str, int], dict[str, Any]] = field(default_factory=OrderedDict)
    bars: deque[dict[str, Any]] = field(default_factory=deque)
    stingers: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=50))
    events: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=100))
    cues: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=50))
    latest_window: dict[str, Any] | None = None
    latest_bar: dict[str, Any] | None = None
    held: bool = False

    def summary(self, now_ms: int) -> dict[str, Any]:
        window, bar = self.latest_window, self.latest_bar
        return {
            "match_id": self.match_id, "home": self.home, "away": self.away,
            "clock": None if window is None else window["clock"],
            "clock_text": None if window is None else window["clock_text"],
            "updated_ms": self.updated_ms,
            "emotion": None if window is None else {k: window[k] for k in ("state", "arousal", "valence", "revision")},
            "music": None if bar is None else {k: bar[k] for k in (
                "bar", "tempo_bpm", "key", "mode", "chord", "intensity", "layers", "style", "gain")},
            "held": self.held,
            # How far the music is behind the venue: now minus the venue time of the newest bar.
            "music_behind_ms": None if bar is None else max(0, now_ms - bar["x_ms"]),
        }

    def detail(self, now_ms: int) -> dict[str, Any]:
        return {**self.summary(now_ms), "windows": list(self.windows.values()), "bars": list(self.bars),
                "stingers": list(self.stingers), "events": list(self.events), "cues": list(self.cues)}


class LiveModel:
    """Every match seen recently; thread-safe (the follower thread writes, the API reads)."""

    def __init__(self, *, windows_kept: int = 600, bars_kept: int = 64, recent_s: float = 1800.0) -> None:
        self.windows_kept = windows_kept
        self.bars_kept = bars_kept
        self.recent_s = recent_s
        self.matches: dict[str, MatchView] = {}
        self.lock = threading.Lock()

    def _view(self, match_id: str, at_ms: int) -> MatchView:
        """The match's view, noting that a record of ``at_ms`` (its Kafka timestamp) was heard."""
        view = self.matches.get(match_id)
        if view is None:
            view = self.matches[match_id] = MatchView(match_id, self.windows_kept, self.bars_kept)
        view.updated_ms = max(view.updated_ms, at_ms)
        return view

    # -- records in, messages out -----------------------------------------------------------------
    def on_emotion(self, record: dict[str, Any], *, at_ms: int) -> dict[str, Any] | None:
        """An EmotionWindow; the highest revision per window wins."""
        key = (record["clock"]["period"], int(record["clock"]["ms"]))
        start_ms = int(record["audio_wall_time_ms"]) - int(record["length_ms"])
        window = {
            "clock": record["clock"], "clock_text": clock_text(record["clock"]), "x_ms": start_ms,
            "length_ms": record["length_ms"], "revision": record["revision"], "state": record["state"],
            "arousal": round(record["arousal"], 4), "valence": round(record["valence"], 4),
            "tempo_bpm": record["tempo_bpm"], "produced_ms": at_ms,
            "events": [{"event_id": e["event_id"], "type": e["type"], "side": e["side"], "clock": e["clock"],
                        "clock_text": clock_text(e["clock"]), "x_ms": _event_x(e, key, start_ms)}
                       for e in record["events"]],
        }
        with self.lock:
            view = self._view(record["match_id"], at_ms)
            known = view.windows.get(key)
            if known is not None and known["revision"] >= window["revision"]:
                return None
            view.windows[key] = window
            if known is None and len(view.windows) > 1 and next(reversed(view.windows)) != key:
                view.windows = OrderedDict(sorted(view.windows.items(), key=lambda item: item[1]["x_ms"]))
            while len(view.windows) > view.windows_kept:
                view.windows.popitem(last=False)
            if view.latest_window is None or window["x_ms"] >= view.latest_window["x_ms"]:
                view.latest_window = window
        return {"type": "emotion", "match_id": record["match_id"], "revised": known is not None, "window": window}

    def on_control(self, record: dict[str, Any], *, at_ms: int) -> dict[str, Any]:
        """A MusicControl (bar or stinger), without its MIDI bytes."""
        control = {key: record[key] for key in ("bar", "kind", "style", "tempo_bpm", "key", "mode", "chord",
                                                "layers", "stinger", "reason", "beat", "cues")}
        control.update(clock=record["clock"], clock_text=clock_text(record["clock"]), x_ms=record["wall_time_ms"],
                       intensity=round(record["intensity"], 4), gain=round(record["gain"], 4))
        with self.lock:
            view = self._view(record["match_id"], at_ms)
            if record["kind"] == "BAR":
                view.bars.append(control)
                while len(view.bars) > view.bars_kept:
                    view.bars.popleft()
                view.latest_bar = control
                for cue in control["cues"]:
                    if cue["type"] in ("HOLD", "RELEASE"):
                        view.held = cue["type"] == "HOLD"
            else:
                view.stingers.append(control)
            for cue in control["cues"]:
                for sent in view.cues:
                    if sent["cue_id"] == cue["cue_id"]:
                        sent.update(fired_bar=control["bar"], fired_beat=control["beat"], fired_x_ms=control["x_ms"],
                                    fired_clock_text=control["clock_text"])
        return {"type": "control", "match_id": record["match_id"], "control": control}

    def on_event(self, record: dict[str, Any], *, at_ms: int) -> dict[str, Any]:
        """A MatchEvent: teams come from the events that name them."""
        event = {"event_id": record["event_id"], "type": record["type"], "side": record["side"],
                 "team": record["team"], "player": record["player"], "clock": record["clock"],
                 "clock_text": clock_text(record["clock"])}
        with self.lock:
            view = self._view(record["match_id"], at_ms)
            if record["team"] and record["side"] in ("HOME", "AWAY"):
                setattr(view, record["side"].lower(), record["team"])
            view.events.append(event)
        return {"type": "event", "match_id": record["match_id"], "event": event}

    def on_cue(self, record: dict[str, Any], *, at_ms: int) -> dict[str, Any]:
        """An operator Cue as sent (the control message that carries it out marks it fired)."""
        cue = {"cue_id": record["cue_id"], "type": record["type"], "bars": record["bars"],
               "set_by": record["set_by"], "source": record["source"], "sent_ms": record["wall_time_ms"],
               "fired_bar": None, "fired_beat": None, "fired_x_ms": None, "fired_clock_text": None}
        with self.lock:
            view = self._view(record["match_id"], at_ms)
            if all(sent["cue_id"] != cue["cue_id"] for sent in view.cues):
                view.cues.append(cue)
        return {"type": "cue", "match_id": record["match_id"], "cue": cue}

    # -- reads ------------------------------------------------------------------------------------
    def summaries(self) -> list[dict[str, Any]]:
        """Matches heard of within ``recent_s``, most recently updated first."""
        now = _now_ms()
        with self.lock:
            recent = [v for v in self.matches.values() if now - v.updated_ms <= self.recent_s * 1000]
            return [v.summary(now) for v in sorted(recent, key=lambda v: (-v.updated_ms, v.match_id))]

    def detail(self, match_id: str) -> dict[str, Any] | None:
        with self.lock:
            view = self.matches.get(match_id)
            return None if view is None else view.detail(_now_ms())

    def knows(self, match_id: str) -> bool:
        with self.lock:
            return match_id in self.matches
