"""From audio frames in match-clock order to feature windows: the analysis half of the join.

A :class:`CrowdAnalyzer` holds one match's acoustic state (last band energies, recent frame
features, onset history, the running baseline). Frames go in, in clock order; a window
comes out as soon as its audio is complete. Windows are aligned to the start of each
period: window ``k`` of a period covers ``[k * hop, k * hop + length)`` ms of it. When the
period changes, windows of the old period that its audio only partly covers are closed
with the audio there is.

The state is a plain dict (:meth:`to_state` / :meth:`from_state`), so the live Faust agent
can keep it in a changelog-backed table and a replay rebuilds exactly the same windows.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from prometheus_client import Counter

from schemas.clock import MatchClock, Period
from streams.features import (
    ONSET_RATE_HZ,
    Baseline,
    FrameAnalysis,
    FrameFeatures,
    FrameTail,
    WindowSummary,
    analysis_pieces,
    analyze_frame,
    feature_vector,
    tail_after,
    timbre,
    window_summary,
)

__all__ = ["ANALYSED", "AnalyzedWindow", "CrowdAnalyzer", "WindowSpec"]

ANALYSED = Counter("crowdsound_stream_frames_analysed_total",
                   "Audio frames analysed, by where: ahead in the helper process, or here.", ["where"])
_AHEAD, _HERE = ANALYSED.labels(where="helper"), ANALYSED.labels(where="worker")


@dataclass(frozen=True)
class WindowSpec:
    """Window geometry (ms of match time)."""

    hop_ms: int = 1000
    length_ms: int = 3000
    tempo_history_ms: int = 8000  # onset history used for chant/clap tempo

    def __post_init__(self) -> None:
        if self.hop_ms <= 0 or self.length_ms < self.hop_ms or self.length_ms % self.hop_ms:
            raise ValueError(f"window length {self.length_ms} ms must be a whole multiple of hop {self.hop_ms} ms")


@dataclass(frozen=True)
class AnalyzedWindow:
    """One window's acoustic analysis."""

    start: MatchClock
    length_ms: int
    summary: WindowSummary
    features: np.ndarray  # feature_vector(summary, baseline before this window)
    frames: int  # frames that fell in the window
    last_frame_ms: int  # clock ms where the window's audio ends


@dataclass
class _Frame:
    ms: int  # frame start in its period
    duration_ms: int
    features: FrameFeatures
    state: str | None = None  # the features as to_state() writes them, once written (they never change)

    def features_state(self) -> str:
        if self.state is None:
            self.state = _features_state(self.features)
        return self.state


class CrowdAnalyzer:
    """The acoustic state of one match (pure: no Kafka, no clocks of its own)."""

    def __init__(self, spec: WindowSpec | None = None) -> None:
        self.spec = spec or WindowSpec()
        self.period: Period | None = None
        self.end_ms = 0  # end of the last frame in `period`
        self.next_window = 0  # index of the next window of `period` to close
        self.frames: list[_Frame] = []  # frames of `period` still needed by open windows
        self.onsets: list[float] = []  # onset envelope of the last tempo_history_ms
        self.tail: FrameTail | None = None  # last 128 ms of audio, for continuous onsets
        self.baseline = Baseline()
        # Names `tail` for a helper that analyses frames ahead (streams.offload); not state.
        self.tail_token: int | None = None

    # -- feeding --------------------------------------------------------------------------
    def add_frame(self, clock: MatchClock, samples: np.ndarray, sample_rate: int, *,
                  analysis: FrameAnalysis | None = None) -> list[AnalyzedWindow]:
        """Analyse one frame (mono float samples, full scale 1.0) starting at ``clock``.

        Returns the windows this frame completes (oldest first). Frames must come in
        clock order; the caller drops or dead-letters anything older than :attr:`end_ms`.
        A frame longer than ANALYSIS_MS is analysed as consecutive pieces of that length
        (:func:`streams.features.analysis_pieces`), each as if it were a frame of its own.
        ``analysis`` is this frame's place in a chain of frames analysed ahead
        (:mod:`streams.offload`), with its pieces' features if they are ready. It is used
        only if the frame was planned to follow this analyzer's current tail
        (``analysis.after == tail_token``); otherwise, or without features, the frame is
        analysed here. Either way the result is the same.
        """
        closed: list[AnalyzedWindow] = []
        if self.period is not None and clock.period is not self.period:
            closed.extend(self._close_period())
        if self.period is None or clock.period is not self.period:
            self.period, self.end_ms, self.next_window, self.frames = clock.period, 0, clock.ms // self.spec.hop_ms, []
        pieces = analysis_pieces(samples, sample_rate)
        in_chain = analysis is not None and self.tail_token is not None and analysis.after == self.tail_token
        ahead = analysis.features if in_chain and analysis is not None else None
        if ahead is not None and len(ahead) != len(pieces):
            ahead = None
        (_AHEAD if ahead is not None else _HERE).inc()
        if ahead is not None and analysis is not None:  # the tail after the whole frame, as analysed elsewhere
            self.tail = FrameTail(tail_after(samples, sample_rate, self.tail), analysis.bands_db)
        start = 0
        for number, piece in enumerate(pieces):
            if ahead is not None:
                features = ahead[number]
            else:
                features, self.tail = analyze_frame(piece, sample_rate, tail=self.tail)
            closed.extend(self._add_piece(clock.ms + int(round(1000 * start / sample_rate)),
                                          int(round(1000 * len(piece) / sample_rate)), features))
            start += len(piece)
        # The tail now is the one the chain named (whoever analysed the frame), or unnamed.
        self.tail_token = analysis.token if in_chain and analysis is not None else None
        return closed

    def _add_piece(self, ms: int, duration: int, features: FrameFeatures) -> list[AnalyzedWindow]:
        """One analysed piece of audio at ``ms`` of the period; the windows it completes."""
        closed: list[AnalyzedWindow] = []
        self.frames.append(_Frame(ms, duration, features))
        self.end_ms = max(self.end_ms, ms + duration)
        self.onsets.extend(features.onsets)
        keep = self.spec.tempo_history_ms * ONSET_RATE_HZ // 1000
        del self.onsets[:-keep]
        first_open = self.next_window
        while self._window_end(self.next_window) <= self.end_ms:
            window = self._close(self.next_window)
            if window is not None:
                closed.append(window)
            self.next_window += 1
        if self.next_window != first_open or ms + duration <= self.next_window * self.spec.hop_ms:
            self._forget_old_frames()  # (nothing to forget otherwise)
        return closed

    def flush(self) -> list[AnalyzedWindow]:
        """Close the windows the audio so far partly covers (end of stream)."""
        return self._close_period()

    # -- windows --------------------------------------------------------------------------
    def _window_end(self, index: int) -> int:
        return index * self.spec.hop_ms + self.spec.length_ms

    def _close(self, index: int) -> AnalyzedWindow | None:
        start = index * self.spec.hop_ms
        end = start + self.spec.length_ms
        inside = [f for f in self.frames if start <= f.ms < end]
        if not inside:
            return None
        summary = window_summary([f.features for f in inside], np.asarray(self.onsets))
        window = AnalyzedWindow(
            start=MatchClock(self.period, start), length_ms=self.spec.length_ms, summary=summary,
            features=feature_vector(summary, self.baseline), frames=len(inside),
            last_frame_ms=max(f.ms + f.duration_ms for f in inside),
        )
        # The baseline learns from the newest hop only, so each moment of audio counts once.
        newest = [f.features for f in inside if f.ms >= end - self.spec.hop_ms] or [inside[-1].features]
        levels = np.array([f.rms_db for f in newest])
        hop_db = float(10 * np.log10(np.mean(10 ** (levels / 10)) + 1e-10))
        heard = timbre(newest)
        self.baseline = self.baseline.update(hop_db, heard.centroid_hz, hop_s=self.spec.hop_ms / 1000, timbre=heard)
        return window

    def _close_period(self) -> list[AnalyzedWindow]:
        closed = []
        while self.period is not None and self.next_window * self.spec.hop_ms < self.end_ms:
            window = self._close(self.next_window)
            if window is not None:
                closed.append(window)
            self.next_window += 1
        return closed

    def _forget_old_frames(self) -> None:
        oldest_needed = self.next_window * self.spec.hop_ms
        self.frames = [f for f in self.frames if f.ms + f.duration_ms > oldest_needed]

    # -- state ----------------------------------------------------------------------------
    def to_state(self) -> dict[str, Any]:
        """A JSON-able snapshot (for a Faust table)."""
        return {
            "spec": asdict(self.spec),
            "period": self.period.value if self.period else None,
            "end_ms": self.end_ms,
            "next_window": self.next_window,
            "frames": [{"ms": f.ms, "d": f.duration_ms, "f": f.features_state()} for f in self.frames],
            "onsets": _floats_state(self.onsets),
            "tail": _pcm16(self.tail.samples) if self.tail is not None else None,
            "tail_bands": _floats_state(self.tail.bands_db) if self.tail is not None and self.tail.bands_db is not None
            else None,
            "baseline": asdict(self.baseline),
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> CrowdAnalyzer:
        analyzer = cls(WindowSpec(**state["spec"]))
        analyzer.period = Period(state["period"]) if state["period"] else None
        analyzer.end_ms = state["end_ms"]
        analyzer.next_window = state["next_window"]
        restored = ((f, _features_from_state(f["f"])) for f in state["frames"])
        analyzer.frames = [_Frame(f["ms"], f["d"], features) for f, features in restored if features is not None]
        analyzer.onsets = _floats_from_state(state["onsets"])
        samples, bands = _from_pcm16(state["tail"]), state.get("tail_bands")
        analyzer.tail = None if samples is None else FrameTail(
            samples, None if bands is None else np.asarray(_floats_from_state(bands), dtype=np.float64))
        baseline = state["baseline"]  # an earlier version kept no heard_s: a window per hop
        analyzer.baseline = Baseline(**{"heard_s": baseline.get("windows", 0) * analyzer.spec.hop_ms / 1000, **baseline})
        return analyzer


def _pcm16(samples: np.ndarray | None) -> str | dict[str, str] | None:
    """Audio tail as base64 int16: a tenth of the JSON of the floats. Mono frames arrive as
    int16, so with the same scale the round trip is exact and a restarted worker continues
    exactly where it stopped. A tail that int16 cannot hold exactly (the mean of several
    channels) is kept as float64: ``{"f64": base64}``."""
    if samples is None:
        return None
    pcm = np.clip(np.rint(samples * 32768), -32768, 32767).astype("<i2")
    if not np.array_equal(pcm.astype(np.float64) / 32768, samples):
        return {"f64": base64.b64encode(np.asarray(samples, dtype="<f8").tobytes()).decode()}
    return base64.b64encode(pcm.tobytes()).decode()


def _from_pcm16(text: str | dict[str, str] | None) -> np.ndarray | None:
    if text is None:
        return None
    if isinstance(text, dict):
        return np.frombuffer(base64.b64decode(text["f64"]), dtype="<f8").astype(np.float64)
    return np.frombuffer(base64.b64decode(text), dtype="<i2").astype(np.float64) / 32768


def _floats_state(values: Sequence[float]) -> dict[str, str]:
    """Floats as base64 float64: exact, and far quicker to write and read than JSON numbers."""
    return {"f64": base64.b64encode(np.asarray(values, dtype="<f8").tobytes()).decode()}


def _floats_from_state(state: dict[str, str] | Sequence[float]) -> list[float]:
    if isinstance(state, dict):
        return np.frombuffer(base64.b64decode(state["f64"]), dtype="<f8").tolist()
    return [float(v) for v in state]  # written by an earlier version: JSON numbers


_FEATURES_FORMAT = "f2"  # frame features since the 13-band spectral shape (earlier formats are dropped)


def _features_state(features: FrameFeatures) -> str:
    """A frame's features as "f2:<number of bands>:<base64 float64 values>"."""
    values = np.array([features.rms_db, *features.band_db, features.flux, features.whistle_db, *features.onsets],
                      dtype="<f8")
    return f"{_FEATURES_FORMAT}:{len(features.band_db)}:{base64.b64encode(values.tobytes()).decode()}"


def _features_from_state(state: str | Sequence[Any]) -> FrameFeatures | None:
    """The frame's features, or None when an earlier version wrote them (other bands: a
    worker upgraded mid-match closes its open windows without those frames)."""
    if not isinstance(state, str) or not state.startswith(f"{_FEATURES_FORMAT}:"):
        return None
    _, count, data = state.split(":", 2)
    n = int(count)
    values = np.frombuffer(base64.b64decode(data), dtype="<f8").tolist()
    return FrameFeatures(values[0], tuple(values[1:1 + n]), values[1 + n], values[2 + n], tuple(values[3 + n:]))
