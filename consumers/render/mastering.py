"""Broadcast mastering of one match's music: EBU R128 loudness and a true-peak ceiling.

The stream must sit at -23 LUFS integrated with true peaks at or below -1 dBTP (EBU R128),
yet keep the score's dynamics: a quiet bar stays quieter than a loud one, a swell stays a
swell. So there is no compressor; two slow or rare gains act on the whole stream:

* A make-up gain from the input's loudness, measured as BS.1770 prescribes (K-weighting,
  400 ms blocks every 100 ms, absolute gate -70 LUFS, relative gate -10 LU) but over a
  *leaky* history of ``memory_s`` instead of the whole programme. The gain may fall fast
  (``max_fall_db_s``) and rises slowly (``max_rise_db_s``): loud music is brought to the
  target within a second or two, quiet music is lifted only gradually (6 dB in 20 s at the
  default), so a quiet passage stays quieter than the loud one around it and a swell still
  grows. Energy means are dominated by loud blocks and the relative gate ignores blocks 10 LU
  under them, so quiet bars between loud ones do not pull the gain up at all. The short-term
  (3 s) loudness is also kept under target + ``short_term_max_lu``, which bounds the burst
  when full music enters after a long quiet spell (a goal): the gain has no look-ahead.
  The gain changes once per 100 ms hop and is ramped linearly per sample across the hop.
* A climax hold (:meth:`Master.hold`): after a home goal the make-up gain is kept for a
  while instead of ducking the celebration, so the goal stays louder than its run-up; only a
  short-term loudness beyond target + ``climax_max_lu`` is brought down.
* A true-peak safety limiter: 4x oversampled peak estimate (49-tap interpolator), a gain that
  ramps down (linearly in dB) over a fixed look-ahead before any peak above ``ceiling_dbtp``
  and recovers at ``release_db_s``. It rarely acts: at -23 LUFS most music has 5-15 dB of
  headroom under the ceiling.

Measured on synthetic scores (the one in tests/test_render.py, a random walk of intensity,
a goal after a quiet spell, a constant level): integrated loudness of each whole stream
within 0.4 LU of -23, the test score's loud stretch 11 LU above its quiet spell. A *minute*
is within -23 +-1 when the music's own level changes little within it; a minute holding a
swell or a goal burst after a quiet spell reads up to ~2 LU high, one inside a long quiet
spell up to ~5 LU low: that contrast is the music, kept on purpose.

Block-size independence is exact: the output depends only on the input samples, never on
how the stream is cut. Loudness hops sit at absolute sample positions, filters carry their
state sample by sample, energies are summed sequentially, and the limiter works in integer
micro-decibels so its recursion has no rounding. The price is a fixed latency: input sample
``i`` comes out as output sample ``i + LATENCY`` (128 samples, 2.7 ms), the limiter's
look-ahead; the stream starts with LATENCY samples of silence.

State (:meth:`Master.to_state`) is a few hundred numbers, JSON-able and exact (Python floats
round-trip through JSON), so a restarted stream continues byte for byte.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np
from scipy import signal

from consumers.music.types import SAMPLE_RATE

__all__ = ["HOP", "LATENCY", "Master", "MasterParams", "k_weighting_sos"]

HOP = SAMPLE_RATE // 10  # BS.1770 gating blocks are 400 ms, every 100 ms
BLOCK_HOPS = 4
SHORT_HOPS = 30  # EBU short-term loudness: 3 s
LATENCY = 128  # samples of look-ahead of the true-peak limiter
ABSOLUTE_GATE = -70.0
RELATIVE_GATE = -10.0
BIN_DB = 0.5  # resolution of the loudness histogram; the gate is applied per bin
BIN_LOW, BIN_HIGH = -70.0, 10.0
N_BINS = int((BIN_HIGH - BIN_LOW) / BIN_DB)
MIN_WEIGHT = 1e-9  # forgotten blocks: dropped so the state stays small
UDB = 1_000_000  # limiter gains are integers in micro-dB: exact arithmetic, no drift
_OVERSAMPLE = 4
_FIR = signal.firwin(49, 1.0 / _OVERSAMPLE, window=("kaiser", 6.0)) * _OVERSAMPLE
_FIR_DELAY = (len(_FIR) - 1) // (2 * _OVERSAMPLE)  # 6: phase p at m is at time m - 6 + p/4
_PHASES = tuple(np.ascontiguousarray(_FIR[p::_OVERSAMPLE]) for p in range(1, _OVERSAMPLE))
_TAPS = max(len(p) for p in _PHASES)
_LOOKAHEAD = LATENCY - _FIR_DELAY  # samples over which the limiter ramps into a peak
_HISTORY = LATENCY + _TAPS  # input kept between blocks: pending output plus filter history
# 10^(-x/20) in three tables (whole dB, milli-dB, micro-dB): a gain in micro-dB becomes a
# product of three exact table entries, the same on every call.
_T_DB = np.array([10 ** (-x / 20) for x in range(0, 121)])
_T_MDB = np.array([10 ** (-x / 20_000) for x in range(1000)])
_T_UDB = np.array([10 ** (-x / 20_000_000) for x in range(1000)])


def k_weighting_sos(sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """BS.1770-4 K-weighting (high shelf + RLB high-pass) as second-order sections at 48 kHz."""
    if sample_rate != 48_000:
        raise ValueError("the K-weighting coefficients here are the 48 kHz ones of BS.1770")
    shelf = [1.53512485958697, -2.69169618940638, 1.19839281085285, 1.0, -1.69065929318241, 0.73248077421585]
    highpass = [1.0, -2.0, 1.0, 1.0, -1.99004745483398, 0.99007225036621]
    return np.array([shelf, highpass])


_SOS = k_weighting_sos()


@dataclass(frozen=True)
class MasterParams:
    """The targets and time constants; stored in the state so a restart keeps them."""

    target_lufs: float = -23.0
    ceiling_dbtp: float = -1.5  # half a dB under the -1 dBTP limit: meters and rounding differ
    memory_s: float = 8.0  # time constant of the loudness history
    max_rise_db_s: float = 0.3  # slow up: quiet passages stay quiet for a while
    max_fall_db_s: float = 10.0  # fast down: loud entries settle at the target within ~1 s
    short_term_max_lu: float = 4.0  # 3 s loudness stays under target + this
    climax_max_lu: float = 6.0  # ... and under target + this while a climax holds the gain
    start_rate_db_s: float = 6.0  # either way while the history is young (first seconds)
    initial_gain_db: float = 0.0
    min_gain_db: float = -30.0
    max_gain_db: float = 40.0
    release_db_s: float = 20.0

    def to_json(self) -> dict[str, float]:
        return {f.name: float(getattr(self, f.name)) for f in fields(self)}


@dataclass
class _GatedMeter:
    """BS.1770 gated loudness over a leaky history: 400 ms blocks every 100 ms, in a histogram."""

    memory_s: float
    hop_energy: float = 0.0  # K-weighted energy of the current hop so far
    recent: list[float] = field(default_factory=list)  # energies of the last SHORT_HOPS complete hops
    hist: dict[int, list[float]] = field(default_factory=dict)  # bin -> [weight, energy sum]

    def add(self, energy: np.ndarray) -> None:
        # Sequential sum carried across calls: identical whatever the block boundaries.
        self.hop_energy = float(np.cumsum(np.concatenate(([self.hop_energy], energy)))[-1])

    def end_of_hop(self) -> bool:
        """Close the hop; True when it completed a block above the absolute gate."""
        hops = [*self.recent, self.hop_energy]
        self.hop_energy = 0.0
        self.recent = hops[-SHORT_HOPS:]
        hops = hops[-BLOCK_HOPS:]
        decay = math.exp(-HOP / SAMPLE_RATE / self.memory_s)
        for bin_ in list(self.hist):
            weight, energy = self.hist[bin_]
            if weight * decay < MIN_WEIGHT:
                del self.hist[bin_]  # forgotten: keeps the state small
            else:
                self.hist[bin_] = [weight * decay, energy * decay]
        if len(hops) < BLOCK_HOPS:
            return False
        z = sum(hops) / (BLOCK_HOPS * HOP)
        loudness = _lufs(z)
        if loudness <= ABSOLUTE_GATE:
            return False
        bin_ = min(N_BINS - 1, int((loudness - BIN_LOW) // BIN_DB))
        weight, energy = self.hist.get(bin_, [0.0, 0.0])
        self.hist[bin_] = [weight + 1.0, energy + z]
        return True

    def short_term(self) -> float | None:
        """Ungated loudness of the last 3 s (EBU short-term), None until 3 s were seen."""
        if len(self.recent) < SHORT_HOPS:
            return None
        return _lufs(sum(self.recent) / (SHORT_HOPS * HOP))

    def integrated(self) -> float | None:
        """Gated loudness of the history (relative gate applied per bin), or None if empty."""
        if not self.hist:
            return None
        bins = sorted(self.hist)
        threshold = _lufs(sum(self.hist[b][1] for b in bins) / sum(self.hist[b][0] for b in bins)) + RELATIVE_GATE
        kept = [b for b in bins if BIN_LOW + (b + 0.5) * BIN_DB > threshold]
        if not kept:
            return None
        return _lufs(sum(self.hist[b][1] for b in kept) / sum(self.hist[b][0] for b in kept))

    def to_json(self) -> dict[str, Any]:
        return {"memory_s": self.memory_s, "hop_energy": self.hop_energy, "recent": list(self.recent),
                "hist": {str(b): list(v) for b, v in sorted(self.hist.items())}}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> _GatedMeter:
        return cls(float(d["memory_s"]), float(d["hop_energy"]), [float(v) for v in d["recent"]],
                   {int(b): [float(v[0]), float(v[1])] for b, v in d["hist"].items()})


class Master:
    """Mastering of one match's music stream; feed float32 (n, 2) blocks, get int16 (n, 2)."""

    def __init__(self, params: MasterParams | None = None) -> None:
        p = self.params = params or MasterParams()
        self._pos = 0  # input samples consumed
        self._zi = np.zeros((2, 2, 2))  # K-weighting state: (sections, 2, channels)
        self._meter = _GatedMeter(p.memory_s)
        self._evidence_s = 0.0  # seconds of gated input blocks seen (for the start-up rate)
        self._gain_db = p.initial_gain_db  # make-up gain reached at the end of the current hop
        self._gain_from = self._gain_to = _db_to_lin(p.initial_gain_db)  # linear ramp over the hop
        self._history = np.zeros((_HISTORY, 2))  # limiter: pending output and filter history
        self._limiter_udb = 0  # limiter gain of the last output sample
        self._hold_until = 0  # input sample until which the make-up gain is held (a climax)

    # -- state ------------------------------------------------------------------------------

    @property
    def position(self) -> int:
        """Input samples consumed so far (= output samples produced)."""
        return self._pos

    @property
    def gain_db(self) -> float:
        """The current make-up gain (for meters and logs)."""
        return self._gain_db

    def to_state(self) -> dict[str, Any]:
        return {
            "version": 1, "params": self.params.to_json(), "pos": self._pos, "zi": self._zi.ravel().tolist(),
            "meter": self._meter.to_json(), "evidence_s": self._evidence_s, "gain_db": self._gain_db,
            "gain_from": self._gain_from, "gain_to": self._gain_to,
            "history": self._history.tolist(), "limiter_udb": self._limiter_udb, "hold_until": self._hold_until,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Master:
        if state.get("version") != 1:
            raise ValueError(f"unknown Master state version {state.get('version')!r}")
        master = cls(MasterParams(**state["params"]))
        master._pos = int(state["pos"])
        master._zi = np.array(state["zi"], dtype=np.float64).reshape(2, 2, 2)
        master._meter = _GatedMeter.from_json(state["meter"])
        master._evidence_s = float(state["evidence_s"])
        master._gain_db = float(state["gain_db"])
        master._gain_from, master._gain_to = float(state["gain_from"]), float(state["gain_to"])
        master._history = np.array(state["history"], dtype=np.float64).reshape(-1, 2)
        master._limiter_udb = int(state["limiter_udb"])
        master._hold_until = int(state.get("hold_until", 0))
        if master._history.shape != (_HISTORY, 2):
            raise ValueError("Master state from an incompatible version (history length)")
        return master

    # -- processing -------------------------------------------------------------------------

    def hold(self, until_sample: int) -> None:
        """Keep the make-up gain until input sample ``until_sample``: a goal is meant to be
        louder than what led to it, so the engineer's hand stays off the fader — unless the
        short-term loudness passes target + ``climax_max_lu`` (the true-peak limiter still
        guards the ceiling)."""
        self._hold_until = max(self._hold_until, int(until_sample))

    def process(self, block: np.ndarray) -> np.ndarray:
        """Master the next ``len(block)`` samples; returns int16 (n, 2), LATENCY samples late."""
        block = np.asarray(block)
        if block.ndim != 2 or block.shape[1] != 2:
            raise ValueError(f"expected stereo audio of shape (n, 2), got {block.shape}")
        if len(block) == 0:
            return np.zeros((0, 2), dtype=np.int16)
        x = block.astype(np.float64)
        if not np.all(np.isfinite(x)):
            raise ValueError("audio block contains NaN or infinity")
        return self._limit(self._make_up(x))

    def _make_up(self, x: np.ndarray) -> np.ndarray:
        """Measure the input hop by hop and apply the ramped make-up gain."""
        y = np.empty_like(x)
        i = 0
        while i < len(x):
            in_hop = self._pos % HOP
            j = min(len(x), i + HOP - in_hop)
            seg = x[i:j]
            weighted, self._zi = signal.sosfilt(_SOS, seg, axis=0, zi=self._zi)
            gain = self._gain_from + (self._gain_to - self._gain_from) * (np.arange(in_hop, in_hop + (j - i)) / HOP)
            self._meter.add(weighted[:, 0] ** 2 + weighted[:, 1] ** 2)
            y[i:j] = seg * gain[:, None]
            self._pos += j - i
            i = j
            if self._pos % HOP == 0:
                self._end_of_hop()
        return y

    def _end_of_hop(self) -> None:
        p = self.params
        if self._meter.end_of_hop():
            self._evidence_s += HOP / SAMPLE_RATE
        self._gain_from = self._gain_to
        integrated = self._meter.integrated()
        if integrated is not None:
            short = self._meter.short_term()
            if self._pos < self._hold_until:
                # A climax: keep the gain (the music itself gets louder), only a burst beyond
                # target + climax_max_lu is brought down.
                wanted = self._gain_db
                if short is not None:
                    wanted = min(wanted, p.target_lufs + p.climax_max_lu - short)
            else:
                wanted = p.target_lufs - integrated
                if short is not None:
                    wanted = min(wanted, p.target_lufs + p.short_term_max_lu - short)
            wanted = min(p.max_gain_db, max(p.min_gain_db, wanted))
            # The first seconds set the level quickly either way (nothing to keep yet).
            young = math.exp(-self._evidence_s / 5.0)
            rise = (p.max_rise_db_s + (p.start_rate_db_s - p.max_rise_db_s) * young) * HOP / SAMPLE_RATE
            fall = (p.max_fall_db_s + (p.start_rate_db_s - p.max_fall_db_s) * young) * HOP / SAMPLE_RATE
            self._gain_db += min(rise, max(-fall, wanted - self._gain_db))
        self._gain_to = _db_to_lin(self._gain_db)

    def _limit(self, y: np.ndarray) -> np.ndarray:
        """True-peak limiter with LATENCY samples of look-ahead; returns int16."""
        n = len(y)
        ceiling = 10 ** (self.params.ceiling_dbtp / 20)
        signal_ = np.concatenate((self._history, y))
        self._history = signal_[-_HISTORY:].copy()
        # Inter-sample values between t and t+1 (phases 1..3 at m = t + _FIR_DELAY), each
        # sum taken in the same tap order whatever the block: exact across block cuts.
        m0 = _TAPS - 1
        isp = np.zeros((len(signal_) - m0, 2))
        for phase in _PHASES:
            acc = np.zeros((len(signal_) - m0, 2))
            for k, tap in enumerate(phase):
                acc += tap * signal_[m0 - k:len(signal_) - k]
            np.maximum(isp, np.abs(acc), out=isp)
        isp_peak = isp.max(axis=1)  # interval t = (m0 + q) - _FIR_DELAY, for q = 0..
        t0 = m0 - _FIR_DELAY + 1  # first sample index (in signal_) with both neighbour intervals known
        t_end = len(signal_) - _FIR_DELAY  # exclusive
        peak = np.maximum.reduce([
            np.abs(signal_[t0:t_end]).max(axis=1),
            isp_peak[t0 - (m0 - _FIR_DELAY) - 1:t_end - (m0 - _FIR_DELAY) - 1],
            isp_peak[t0 - (m0 - _FIR_DELAY):t_end - (m0 - _FIR_DELAY)],
        ])
        over = peak > ceiling
        need = np.zeros(len(peak), dtype=np.int64)
        if np.any(over):
            need[over] = np.floor(20.0 * np.log10(ceiling / peak[over]) * UDB).astype(np.int64)
            np.maximum(need, -120 * UDB, out=need)
        # Output samples are signal_[_HISTORY - LATENCY + q] for q < n: the oldest pending ones.
        out_start = _HISTORY - LATENCY
        first = out_start - t0  # index into need of the first output sample
        attack = np.zeros(n, dtype=np.int64)
        window = need[first:first + n + _LOOKAHEAD]
        loud = np.flatnonzero(window)
        if len(loud):
            # Only outputs up to _LOOKAHEAD before a peak are touched. Linear ramp in dB,
            # reaching the peak's full reduction at the peak.
            lo, hi = max(0, int(loud[0]) - _LOOKAHEAD), min(n, int(loud[-1]) + 1)
            for k in range(_LOOKAHEAD + 1):
                ramp = (window[lo + k:hi + k] * (_LOOKAHEAD + 1 - k)) // (_LOOKAHEAD + 1)
                np.minimum(attack[lo:hi], ramp, out=attack[lo:hi])
        rel = round(self.params.release_db_s * UDB / SAMPLE_RATE)
        steps = rel * np.arange(n, dtype=np.int64)
        gain = steps + np.minimum(self._limiter_udb + rel, np.minimum.accumulate(attack - steps))
        self._limiter_udb = int(gain[-1])
        # A float gain of 1.0 for the (usual) unlimited samples; table product elsewhere.
        linear = np.ones(n)
        limited = gain < 0
        if np.any(limited):
            g = -gain[limited]
            linear[limited] = _T_DB[g // UDB] * _T_MDB[(g // 1000) % 1000] * _T_UDB[g % 1000]
        out = signal_[out_start:out_start + n] * linear[:, None]
        return np.clip(np.rint(out * 32768.0), -32768, 32767).astype(np.int16)


def _lufs(mean_square: float) -> float:
    return -0.691 + 10.0 * math.log10(mean_square) if mean_square > 0 else -math.inf


def _db_to_lin(db: float) -> float:
    return 10.0 ** (db / 20.0)
