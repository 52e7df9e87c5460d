"""Broadcast mastering of a finished replay file: EBU R128 loudness and a true-peak ceiling.

The live stream has its own mastering (``consumers.render.mastering``): it sees only the past,
so it rides a slow make-up gain. A replay clip or reel is a finished file, so here the whole
programme is measured first and one gain brings it to the target, which keeps the music's
dynamics exactly. What that gain pushes over the ceiling is caught by a smooth look-ahead
true-peak limiter (never a hard clip, which would splatter), and because limiting lowers the
loudness a little, the gain is re-measured and raised, a few times, until both hold.

Measurements are the ones editors and the tests use: the BS.1770 integrated loudness of
pyloudnorm and the true peak as the largest sample of a 4x ``scipy.signal.resample_poly``
oversampling. The limiter aims ``_MARGIN_DB`` under the requested ceiling so that other
meters (other interpolators) and the int16 rounding stay under it too.

Everything is deterministic: no dither, rounds decided by the measurements alone, the same
arithmetic on every call, so the same input gives the same int16 samples and file bytes.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pyloudnorm
from scipy.ndimage import minimum_filter1d
from scipy.signal import resample_poly

from consumers.replay.audio_io import as_float, to_int16

__all__ = ["MIN_LOUDNESS_S", "broadcast_master", "integrated_lufs", "true_peak_dbtp"]

MIN_LOUDNESS_S = 0.4  # one BS.1770 gating block: shorter audio has no integrated loudness
_MARGIN_DB = 0.3  # the limiter aims this far under the ceiling (-1.0 -> -1.3 dBTP)
_OVERSAMPLE = 4
_CONTEXT = 16  # input samples of context per chunk: resample_poly's filter reaches 10
_CHUNK = 1 << 18  # oversample in chunks: a long reel at 4x would otherwise need GBs
_LOOKAHEAD_S = 0.005  # the gain ramps down over 5 ms before a peak (and smooths the release)
_RELEASE_S = 0.060  # time constant of the recovery, in dB: deep cuts recover fast at first
_RELEASE_CHUNK = 1 << 12  # exact chunked recursion (see _release): keeps exp() in range
_LOUDNESS_TOLERANCE_LU = 0.1  # stop iterating this close to the target (spec is 0.5)
_MAX_ROUNDS = 6  # gain/limit/measure rounds; 1-3 are usual
_MAX_EXTRA_DB = 12.0  # what the rounds may add to the first gain: crest factors beyond are hopeless
_PEAK_PASSES = 3  # limiter passes to catch the (tiny) overshoot of a gain change
_AIM_DB = 0.02  # each pass aims this far under the ceiling it then checks
_MIN_SLOPE = 0.2  # LU per dB assumed at least, so a secant step never explodes
_NO_PROGRESS_LU = 0.05  # a round that moved the loudness less than this ends the search


def integrated_lufs(audio: np.ndarray, sample_rate: int) -> float:
    """BS.1770 integrated loudness (pyloudnorm), ``-inf`` for silence; needs >= 0.4 s."""
    x = as_float(audio)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # log10(0) of silent blocks
        return float(pyloudnorm.Meter(sample_rate).integrated_loudness(x))


def true_peak_dbtp(audio: np.ndarray) -> float:
    """True peak in dBTP: the largest magnitude of a 4x resample_poly oversampling."""
    x = as_float(audio)
    if x.size == 0:
        return -math.inf
    peak = float(_segment_peaks(x).max())
    return 20.0 * math.log10(peak) if peak > 0 else -math.inf


def broadcast_master(audio: np.ndarray, sample_rate: int, *, target_lufs: float = -23.0,
                     ceiling_dbtp: float = -1.0) -> np.ndarray:
    """Bring ``audio`` to ``target_lufs`` integrated with true peaks at or under ``ceiling_dbtp``.

    ``audio`` is float (full scale 1.0) or int16, shaped (n, channels) with up to 5 channels;
    the result is int16 of the same shape. The integrated loudness lands within 0.5 LU of the
    target (usually 0.1) and the true peak under ``ceiling_dbtp - 0.3`` (-1.3 dBTP by default).

    Special cases, none of which produce NaN:

    * silence (all zeros) comes back as zeros;
    * audio shorter than 0.4 s (one gating block) has no integrated loudness: it is only
      peak-normalised, its true peak set to the ceiling (minus the margin);
    * audio whose every 400 ms block is under the -70 LUFS absolute gate has no measurable
      loudness either; it is left at its level (lifting a noise floor by 50 dB helps nobody),
      only limited if it somehow exceeds the ceiling;
    * material whose peaks stand more than ``ceiling - target`` (22 dB) over its loudness
      all the time (lone clicks in silence; a steady pulse train at a hot target) cannot
      reach the target without distortion, which a smooth limiter does not add; it gets the
      result closest to the target the rounds find, always under the ceiling.
    """
    if sample_rate <= 0:
        raise ValueError(f"sample_rate must be positive, got {sample_rate}")
    x = as_float(audio)
    if x.ndim != 2 or not 1 <= x.shape[1] <= 5:
        raise ValueError(f"expected audio of shape (n, channels) with 1-5 channels, got {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError("audio contains NaN or infinity")
    if len(x) == 0 or not np.any(x):
        return np.zeros(x.shape, dtype=np.int16)
    ceiling = ceiling_dbtp - _MARGIN_DB
    peaks = _segment_peaks(x)  # linear in x: the peaks of g * x are g * peaks
    if len(x) < MIN_LOUDNESS_S * sample_rate:
        gain = _db_to_lin(ceiling - _AIM_DB) / float(peaks.max())
        return to_int16(_limit(x * gain, peaks * gain, sample_rate, ceiling))
    measured = integrated_lufs(x, sample_rate)
    if not math.isfinite(measured):
        return to_int16(_limit(x, peaks, sample_rate, ceiling))
    first = gain_db = target_lufs - measured
    best: tuple[float, np.ndarray] = (math.inf, np.zeros(x.shape, dtype=np.int16))
    previous: tuple[float, float] | None = None  # (gain_db, loudness) of the round before
    for _ in range(_MAX_ROUNDS):
        gain = _db_to_lin(gain_db)
        out = to_int16(_limit(x * gain, peaks * gain, sample_rate, ceiling))
        loudness = integrated_lufs(out, sample_rate)
        miss = abs(loudness - target_lufs) if math.isfinite(loudness) else math.inf
        if miss < best[0] or best[0] == math.inf:
            best = (miss, out)
        if not math.isfinite(loudness):
            break  # cannot happen for audio that measured finite; never loop on it
        if miss <= _LOUDNESS_TOLERANCE_LU:
            break
        # Loudness grows by 1 LU per dB of gain until the limiter bites, less after: a secant
        # step on the last two rounds converges in 2-4 rounds where a plain step takes 5+.
        slope = 1.0
        if previous is not None:
            if abs(loudness - previous[1]) < _NO_PROGRESS_LU:
                break  # the limiter takes all that is added: the peaks are the loudness
            slope = min(1.0, max(_MIN_SLOPE, (loudness - previous[1]) / (gain_db - previous[0])))
        previous = (gain_db, loudness)
        # Capped: beyond +12 dB over the first gain it is limiting, not levelling.
        gain_db = min(first + _MAX_EXTRA_DB, gain_db + (target_lufs - loudness) / slope)
        if gain_db == previous[0]:
            break
    return best[1]


# -- the limiter ------------------------------------------------------------------------------

def _limit(x: np.ndarray, peaks: np.ndarray, sample_rate: int, ceiling_dbtp: float) -> np.ndarray:
    """Smooth look-ahead true-peak limiter on ``x`` whose segment peaks are ``peaks``.

    A further pass catches what a gain ramp adds (the product of a ramp and the signal peaks
    a little differently from the signal); two passes are the most seen in practice.
    """
    limit = _db_to_lin(ceiling_dbtp)
    # Rounding to int16 moves a sample by half an LSB, an oversampled value by a little more:
    # one LSB of headroom covers it without rounding just to check.
    if peaks.max() + 1.0 / 32768.0 <= limit:
        return x
    for _ in range(_PEAK_PASSES):
        # Aim a hair under the check, or a near miss would cost a whole extra pass.
        x = x * _limiter_gain(peaks, sample_rate, ceiling_dbtp - _AIM_DB)[:, None]
        peaks = _segment_peaks(np.rint(x * 32768.0) / 32768.0)
        if peaks.max() <= limit:
            break
    return x


def _limiter_gain(segment_peaks: np.ndarray, sample_rate: int, ceiling_dbtp: float) -> np.ndarray:
    """Per-sample linear gain keeping both intervals around every sample under the ceiling.

    In dB: the needed reduction per sample, an exponential release (never above the need),
    a forward minimum over the look-ahead and a trailing mean over the same length. Both
    windows contain the sample itself, so the smoothed gain is never above the need, and it
    ramps linearly (in dB) into each peak instead of jumping.
    """
    # Sample i touches the intervals before and after it (i-1..i and i..i+1).
    peak = np.maximum(segment_peaks, np.concatenate(([0.0], segment_peaks[:-1])))
    need = np.zeros(len(peak))
    over = peak > _db_to_lin(ceiling_dbtp)
    need[over] = ceiling_dbtp - 20.0 * np.log10(peak[over])
    released = _release(need, math.exp(-1.0 / (_RELEASE_S * sample_rate)))
    span = max(1, round(_LOOKAHEAD_S * sample_rate))
    ahead = minimum_filter1d(released, span, mode="constant", cval=0.0, origin=-(span // 2))
    # Trailing mean over `span` samples. Before the first sample the gain is taken as already
    # at its first value (not 0 dB): a peak at the very start has no time to ramp into.
    summed = np.cumsum(np.concatenate((np.full(span, ahead[0]), ahead)))
    smooth = (summed[span:] - summed[:-span]) / span
    return 10.0 ** (np.minimum(smooth, 0.0) / 20.0)


def _release(need_db: np.ndarray, a: float) -> np.ndarray:
    """``r[i] = min(need[i], a * r[i-1])``: the reduction decays towards 0 dB by ``a`` per sample.

    Vectorised: with ``u[i] = r[i] / a**i`` the recursion is ``u = cummin(need / a**i)``. The
    scale ``a**-i`` is restarted every chunk (carrying ``r``), so it never overflows.
    """
    out = np.empty_like(need_db)
    k = np.arange(_RELEASE_CHUNK)
    up, down = a ** -k, a ** k
    carry = 0.0
    for start in range(0, len(need_db), _RELEASE_CHUNK):
        seg = need_db[start:start + _RELEASE_CHUNK]
        m = len(seg)
        u = np.minimum.accumulate(np.minimum(seg * up[:m], carry * a))
        out[start:start + m] = u * down[:m]
        carry = float(out[start + m - 1])
    return out


def _segment_peaks(x: np.ndarray) -> np.ndarray:
    """Per input sample i, the largest |value| over channels in [i, i+1) of the 4x oversampling.

    The same numbers as ``resample_poly(x, 4, 1, axis=0)`` on the whole signal (zeros outside
    it), computed per channel (contiguous 1-D is twice as fast) and in chunks with enough
    context that memory stays bounded on a long reel.
    """
    n = len(x)
    x2 = x.reshape(n, -1)
    pad = np.zeros(_CONTEXT)
    lanes = [np.concatenate((pad, x2[:, c], pad)) for c in range(x2.shape[1])]
    out = np.empty(n)
    for start in range(0, n, _CHUNK):
        stop = min(n, start + _CHUNK)
        peak = np.zeros(stop - start)
        for lane in lanes:
            up = resample_poly(lane[start:stop + 2 * _CONTEXT], _OVERSAMPLE, 1)
            core = up[_CONTEXT * _OVERSAMPLE:(_CONTEXT + stop - start) * _OVERSAMPLE]
            mag = np.abs(core)
            # Strided maxima: several times faster than .reshape(-1, 4).max(axis=1).
            for phase in range(_OVERSAMPLE):
                np.maximum(peak, mag[phase::_OVERSAMPLE], out=peak)
        out[start:stop] = peak
    return out


# -- helpers ----------------------------------------------------------------------------------

def _db_to_lin(db: float) -> float:
    return 10.0 ** (db / 20.0)
