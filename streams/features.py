"""Acoustic features of crowd audio, as pure numpy functions.

Two levels:

* per **frame** (one AudioFrame, ~100 ms): level, spectral shape, band energies, flux and
  an onset-strength envelope at 50 Hz (20 ms hops), whistle peakiness;
* per **window** (default 3 s of frames): their summary, plus periodicity and tempo of
  chants and claps from the onset envelope of the last seconds.

Values that depend on microphones and gain (level, brightness) are turned into values
relative to the match's own running :class:`Baseline`, so venues are comparable.
Everything is deterministic: the same frames in the same order give the same numbers, live
and in replay.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

__all__ = [
    "BAND_EDGES_HZ",
    "FEATURE_NAMES",
    "ONSET_RATE_HZ",
    "Baseline",
    "FrameAnalysis",
    "FrameFeatures",
    "FrameTail",
    "analyze_frame",
    "feature_vector",
    "tail_after",
    "tempo_from_onsets",
    "window_summary",
]

ONSET_RATE_HZ = 50  # onset envelope: one value per 20 ms
BAND_EDGES_HZ: tuple[float, ...] = (0, 150, 300, 600, 1200, 2400, 4800, 9600, 24000)
_EPS = 1e-10
_SILENCE_DB = -120.0
PERIODIC = 0.2  # onset periodicity above which a chant or rhythmic clapping is heard


@dataclass(frozen=True)
class FrameFeatures:
    """Features of one frame. Levels in dBFS (full-scale sine = -3 dB)."""

    rms_db: float
    band_db: tuple[float, ...]  # energy per BAND_EDGES_HZ band, dB relative to the frame's total
    centroid_hz: float
    rolloff_hz: float  # 85 % of the energy lies below
    flatness: float  # 0 (tonal) .. 1 (white noise)
    flux: float  # mean positive log-spectral change between 20 ms hops
    whistle_db: float  # strongest 2-4 kHz peak over the band's median, dB
    onsets: tuple[float, ...]  # onset strength per 20 ms hop


ONSET_WINDOW_S = 0.128  # long analysis windows: a crowd's syllables and claps, not its noise
ONSET_BANDS = np.geomspace(100.0, 8000.0, 41)  # 40 log-spaced bands for onset strength


@dataclass(frozen=True)
class FrameTail:
    """What the next frame's onsets need of the audio before it: the last 128 ms of samples
    and the log band energies (dB) of the onset window that ends with them."""

    samples: np.ndarray
    bands_db: np.ndarray | None  # None: not known (computed from the samples when needed)


@dataclass(frozen=True)
class FrameAnalysis:
    """A frame's place in a chain of frames analysed ahead (:mod:`streams.offload`): valid
    for the frame that follows the tail with token ``after``; the tail it leaves gets the
    token ``token``. With :func:`analyze_frame`'s result for it (``features``, and the new
    tail's ``bands_db``; the tail's samples follow from the frame: :func:`tail_after`) when
    it was computed elsewhere, else None."""

    after: int
    token: int
    features: FrameFeatures | None = None
    bands_db: np.ndarray | None = None


@dataclass(frozen=True)
class _Plan:
    """Everything about the analysis that depends only on the sample rate (computed once)."""

    hop: int
    size: int
    hop_window: np.ndarray  # Hann window of one 20 ms hop
    onset_window: np.ndarray  # Hann window of the 128 ms onset window
    freqs: np.ndarray  # bin frequencies of a hop spectrum
    band_index: tuple[int, ...]  # the BAND_EDGES_HZ bands that have bins
    band_starts: np.ndarray  # their first bins; each runs to the next (bands are contiguous)
    band_end: int  # end of the last of them
    whistle: slice
    onset_starts: np.ndarray  # first bin of each onset band (for np.add.reduceat)
    onset_bins: slice  # the bins that fall into an onset band
    onset_empty: np.ndarray  # onset bands without a bin (their energy is 0)


@functools.lru_cache(maxsize=8)
def _plan(sample_rate: int) -> _Plan:
    hop = sample_rate // ONSET_RATE_HZ
    size = int(round(ONSET_WINDOW_S * sample_rate))
    freqs = np.fft.rfftfreq(hop, d=1 / sample_rate)

    def bins(low: float, high: float, *, inclusive: bool = False) -> slice | None:
        first = int(np.searchsorted(freqs, low, side="left"))
        last = int(np.searchsorted(freqs, high, side="right" if inclusive else "left"))
        return slice(first, last) if last > first else None

    bands = [bins(low, high) for low, high in zip(BAND_EDGES_HZ[:-1], BAND_EDGES_HZ[1:], strict=True)]
    with_bins = [(i, b) for i, b in enumerate(bands) if b is not None]
    whistle = bins(2000, 4000, inclusive=True) or slice(0, 0)
    onset_freqs = np.fft.rfftfreq(size, d=1 / sample_rate)
    # Bin b belongs to band j when ONSET_BANDS[j] <= f_b < ONSET_BANDS[j + 1]; bins are sorted,
    # so each band is a run of consecutive bins.
    edges = np.searchsorted(onset_freqs, ONSET_BANDS, side="left")
    starts = edges[:-1]
    empty = starts == edges[1:]
    return _Plan(
        hop=hop, size=size, hop_window=np.hanning(hop), onset_window=np.hanning(size), freqs=freqs,
        band_index=tuple(i for i, _ in with_bins), band_starts=np.array([b.start for _, b in with_bins], dtype=np.intp),
        band_end=with_bins[-1][1].stop if with_bins else 0, whistle=whistle,
        onset_starts=np.minimum(starts, edges[-1] - 1) - edges[0], onset_bins=slice(int(edges[0]), int(edges[-1])),
        onset_empty=empty,
    )


def _log_bands(plan: _Plan, windows: np.ndarray) -> np.ndarray:
    """Log energy (dB) of each onset band, per row of ``windows`` (n, size) of raw audio.

    Row by row the same numbers whatever the number of rows (FFT and reduceat work row by
    row; a matrix product would not), so live, replay and training agree to the last bit."""
    spectrum = np.fft.rfft(windows * plan.onset_window, axis=1)[:, plan.onset_bins]
    bands = np.add.reduceat(spectrum.real ** 2 + spectrum.imag ** 2, plan.onset_starts, axis=1)
    bands[:, plan.onset_empty] = 0.0
    return 10 * np.log10(bands + 1e-10)


def _joined(plan: _Plan, samples: np.ndarray, tail: FrameTail | None) -> tuple[np.ndarray, bool]:
    """The previous 128 ms (zeros at the start of a stream: ``fresh``) and the frame's whole
    hops: the audio the frame's onset windows cover."""
    fresh = tail is None or len(tail.samples) != plan.size
    history = np.zeros(plan.size) if fresh or tail is None else tail.samples
    hops = len(samples) // plan.hop
    return np.concatenate([history, samples[:hops * plan.hop]]), fresh


def tail_after(samples: np.ndarray, sample_rate: int, tail: FrameTail | None) -> np.ndarray:
    """The samples of the tail :func:`analyze_frame` returns for this frame (its last 128
    ms of audio), without analysing anything: cheap, for a caller that has the frame's
    features from elsewhere (:mod:`streams.offload`)."""
    plan = _plan(sample_rate)
    joined, _ = _joined(plan, _as_audio(samples), tail)
    return joined[-plan.size:].copy()


def _as_audio(samples: np.ndarray) -> np.ndarray:
    audio = np.asarray(samples, dtype=np.float64)
    if not np.isfinite(audio).all():
        audio = np.where(np.isfinite(audio), audio, 0.0)
    return audio


def _onset_envelope(plan: _Plan, samples: np.ndarray, tail: FrameTail | None) -> tuple[np.ndarray, FrameTail]:
    """Onset strength per 20 ms hop of ``samples`` and the tail to pass to the next frame.

    Like librosa's onset strength: log band energies from long (128 ms) overlapping
    windows, one ending at each hop, and the mean positive change from one hop to the next.
    Long windows average out the random flicker of hundreds of voices, so the rhythm of a
    chant or of clapping stands out; they need the end of the previous frame (``tail``),
    whose last window's band energies are kept so that each window is analysed once.
    """
    hop, size = plan.hop, plan.size
    joined, fresh = _joined(plan, samples, tail)
    hops = (len(joined) - size) // hop
    known = None if fresh or tail is None else tail.bands_db
    previous = known if known is not None else _log_bands(plan, joined[None, :size])[0]
    if hops == 0:
        return np.zeros(0), FrameTail(joined[-size:].copy(), previous)
    # Window k ends where hop k of the frame ends.
    windows = np.lib.stride_tricks.sliding_window_view(joined, size)[hop::hop]
    log_bands = _log_bands(plan, windows)
    onsets = np.maximum(0.0, np.diff(np.vstack([previous, log_bands]), axis=0)).mean(axis=1)
    if fresh:  # no past audio: the first frame of a stream has no onsets to speak of
        onsets[:] = 0.0
    return onsets, FrameTail(joined[-size:].copy(), log_bands[-1].copy())


def analyze_frame(samples: np.ndarray, sample_rate: int, *,
                  tail: FrameTail | None = None) -> tuple[FrameFeatures, FrameTail]:
    """Features of one frame of mono audio.

    Parameters
    ----------
    samples : np.ndarray, shape (n,)
        Float audio, full scale 1.0 (int16 callers divide by 32768).
    sample_rate : int
        Samples per second.
    tail : FrameTail, optional
        What the previous call returned, so onsets are continuous across frames. None at
        the start of a stream.

    Returns
    -------
    (FrameFeatures, FrameTail)
        The features, and the tail to pass with the next frame.
    """
    plan = _plan(sample_rate)
    audio = _as_audio(samples)
    n = len(audio)
    rms = math.sqrt(float(np.add.reduce(audio * audio)) / n) if n else 0.0
    rms_db = max(_SILENCE_DB, 20 * math.log10(rms + _EPS))
    # Spectral shape: the mean Hann-windowed power spectrum of the frame's 20 ms hops.
    hop = plan.hop
    count = n // hop
    if count:
        hops = audio[:count * hop].reshape(count, hop)
    else:
        count, hops = 1, np.zeros((1, hop))
        hops[0, :n] = audio
    spectrum = np.fft.rfft(hops * plan.hop_window, axis=1)
    power = np.add.reduce(spectrum.real ** 2 + spectrum.imag ** 2, axis=0) / count
    freqs = plan.freqs
    cumulative = np.cumsum(power)
    total = float(cumulative[-1]) + _EPS
    centroid = float(np.add.reduce(freqs * power)) / total
    rolloff = float(freqs[min(len(freqs) - 1, int(np.searchsorted(cumulative, 0.85 * cumulative[-1])))])
    inner = power[1:] + _EPS
    flatness = math.exp(float(np.add.reduce(np.log(inner))) / len(inner)) / (
        float(np.add.reduce(power[1:])) / len(inner) + _EPS)
    bands = [_SILENCE_DB] * (len(BAND_EDGES_HZ) - 1)
    if plan.band_index:
        levels = 10 * np.log10((np.add.reduceat(power[:plan.band_end], plan.band_starts) + _EPS) / total)
        for index, level in zip(plan.band_index, levels.tolist(), strict=True):
            bands[index] = level
    band = power[plan.whistle]
    if band.size:
        middle = np.partition(band, [(band.size - 1) // 2, band.size // 2])
        median = 0.5 * (float(middle[(band.size - 1) // 2]) + float(middle[band.size // 2]))
        whistle_db = 10 * math.log10((float(band.max()) + _EPS) / (median + _EPS))
    else:
        whistle_db = 0.0
    onsets, new_tail = _onset_envelope(plan, audio, tail)
    onset_list = onsets.tolist()
    features = FrameFeatures(
        rms_db=float(rms_db), band_db=tuple(bands), centroid_hz=centroid, rolloff_hz=rolloff,
        flatness=min(1.0, flatness), flux=sum(onset_list) / len(onset_list) if onset_list else 0.0,
        whistle_db=whistle_db, onsets=tuple(onset_list),
    )
    return features, new_tail


def tempo_from_onsets(envelope: np.ndarray, *, rate_hz: float = ONSET_RATE_HZ,
                      bpm_range: tuple[float, float] = (60.0, 200.0)) -> tuple[float | None, float]:
    """Tempo and strength of the periodicity in an onset-strength envelope.

    Parameters
    ----------
    envelope : np.ndarray, shape (n,)
        Onset strength sampled at ``rate_hz`` (a few seconds: 4-8 s works best).

    Returns
    -------
    (bpm or None, strength in [0, 1])
        ``strength`` is the normalised autocorrelation at the best lag (a chant or
        rhythmic clapping gives > 0.2, crowd noise and roars < 0.15); bpm is None when there is
        not enough signal to tell.
    """
    env = np.asarray(envelope, dtype=np.float64)
    low_lag = int(np.floor(rate_hz * 60 / bpm_range[1]))
    high_lag = int(np.ceil(rate_hz * 60 / bpm_range[0]))
    if len(env) < 2 * high_lag:
        return None, 0.0
    env = env - env.mean()
    energy = float(np.dot(env, env))
    if energy <= _EPS:
        return None, 0.0
    lags = np.arange(low_lag, high_lag + 1)
    corr = np.array([np.dot(env[:-lag], env[lag:]) / energy * len(env) / (len(env) - lag) for lag in lags])
    # Prefer the beat over its multiples: a peak at 2 or 3 times the lag is the same
    # rhythm, and a non-integer lag (180 bpm = 16.7 hops) correlates best at a multiple.
    best = int(np.argmax(corr))
    for divisor in (3, 2):
        target = lags[best] / divisor
        if target < low_lag:
            continue
        near = [i for i in range(len(lags)) if abs(lags[i] - target) <= 1.0]
        if near:
            candidate = max(near, key=lambda i: corr[i])
            if corr[candidate] > 0.6 * corr[best]:
                best = candidate
                break
    strength = float(np.clip(corr[best], 0.0, 1.0))
    # Parabolic interpolation between lags for a finer tempo.
    lag = float(lags[best])
    if 0 < best < len(corr) - 1:
        a, b, c = corr[best - 1], corr[best], corr[best + 1]
        denominator = a - 2 * b + c
        if abs(denominator) > _EPS:
            lag += 0.5 * (a - c) / denominator
    return 60.0 * rate_hz / lag, strength


@dataclass(frozen=True)
class Baseline:
    """The match's running reference level and brightness.

    It follows the *floor* of the crowd: it falls quickly when the crowd gets quieter and
    rises slowly when it gets louder, so a long celebration does not become the new normal.
    """

    loudness_db: float | None = None
    centroid_hz: float | None = None
    windows: int = 0

    def update(self, loudness_db: float, centroid_hz: float, *, hop_s: float = 1.0) -> Baseline:
        if self.loudness_db is None or self.centroid_hz is None:
            return Baseline(loudness_db, centroid_hz, 1)
        up, down = hop_s / 120.0, hop_s / 15.0  # time constants: 2 min rising, 15 s falling
        rate = up if loudness_db > self.loudness_db else down
        # Early on the baseline is still learning the venue: move faster.
        rate = max(rate, 1.0 / (self.windows + 1)) if self.windows < 10 else rate
        loudness = self.loudness_db + rate * (loudness_db - self.loudness_db)
        centroid = self.centroid_hz + rate * (centroid_hz - self.centroid_hz)
        return replace(self, loudness_db=loudness, centroid_hz=centroid, windows=self.windows + 1)


@dataclass(frozen=True)
class WindowSummary:
    """Absolute features of one window (before the baseline makes them relative)."""

    loudness_db: float  # mean power of the window's frames, dBFS
    loudness_std_db: float  # frame-to-frame fluctuation
    loudness_rise_db: float  # last third minus first third
    band_db: tuple[float, ...]
    centroid_hz: float
    rolloff_hz: float
    flatness: float
    flux: float
    onset_rate_hz: float
    whistle_db: float
    tempo_bpm: float | None
    periodicity: float


def window_summary(frames: Sequence[FrameFeatures], onset_history: np.ndarray) -> WindowSummary:
    """Summarise a window's frames; ``onset_history`` is the onset envelope of the last
    seconds up to the window's end (for tempo and periodicity)."""
    if not frames:
        raise ValueError("a window needs at least one frame")
    levels = np.array([f.rms_db for f in frames])
    power_db = float(10 * np.log10(np.mean(10 ** (levels / 10)) + _EPS))
    third = max(1, len(levels) // 3)
    onsets = np.concatenate([np.array(f.onsets) for f in frames])
    threshold = onsets.mean() + 1.5 * onsets.std()
    peaks = (onsets[1:-1] > threshold) & (onsets[1:-1] >= onsets[:-2]) & (onsets[1:-1] > onsets[2:])
    tempo, periodicity = tempo_from_onsets(onset_history)
    return WindowSummary(
        loudness_db=power_db,
        loudness_std_db=float(levels.std()),
        loudness_rise_db=float(levels[-third:].mean() - levels[:third].mean()),
        band_db=tuple(float(v) for v in np.mean([f.band_db for f in frames], axis=0)),
        centroid_hz=float(np.mean([f.centroid_hz for f in frames])),
        rolloff_hz=float(np.mean([f.rolloff_hz for f in frames])),
        flatness=float(np.mean([f.flatness for f in frames])),
        flux=float(np.mean([f.flux for f in frames])),
        onset_rate_hz=float(peaks.sum() / (len(onsets) / ONSET_RATE_HZ)),
        whistle_db=float(np.max([f.whistle_db for f in frames])),
        tempo_bpm=tempo if periodicity >= PERIODIC else None,
        periodicity=periodicity,
    )


FEATURE_NAMES: tuple[str, ...] = (
    "loudness_rel_db", "loudness_std_db", "loudness_rise_db",
    *(f"band_{i}_db" for i in range(len(BAND_EDGES_HZ) - 1)),
    "centroid_rel_oct", "rolloff_rel_oct", "flatness", "flux", "onset_rate_hz", "whistle_db", "periodicity",
)


def feature_vector(summary: WindowSummary, baseline: Baseline) -> np.ndarray:
    """The model's input: the window relative to the match's baseline, float32 of
    shape (len(FEATURE_NAMES),)."""
    reference_db = summary.loudness_db if baseline.loudness_db is None else baseline.loudness_db
    reference_hz = summary.centroid_hz if baseline.centroid_hz is None else baseline.centroid_hz
    values = [
        summary.loudness_db - reference_db, summary.loudness_std_db, summary.loudness_rise_db,
        *summary.band_db,
        float(np.log2((summary.centroid_hz + 1) / (reference_hz + 1))),
        float(np.log2((summary.rolloff_hz + 1) / (reference_hz + 1))),
        summary.flatness, summary.flux, summary.onset_rate_hz, summary.whistle_db, summary.periodicity,
    ]
    return np.asarray(values, dtype=np.float32)
