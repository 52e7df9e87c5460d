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

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

__all__ = [
    "BAND_EDGES_HZ",
    "FEATURE_NAMES",
    "ONSET_RATE_HZ",
    "Baseline",
    "FrameFeatures",
    "analyze_frame",
    "feature_vector",
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


def _hop_spectra(samples: np.ndarray, sample_rate: int) -> np.ndarray:
    """Hann-windowed power spectra per 20 ms hop (for spectral shape), shape (hops, bins)."""
    hop = sample_rate // ONSET_RATE_HZ
    count = max(1, len(samples) // hop)
    padded = np.zeros(count * hop, dtype=np.float64)
    usable = min(len(samples), count * hop)
    padded[:usable] = samples[:usable]
    return np.abs(np.fft.rfft(padded.reshape(count, hop) * np.hanning(hop), axis=1)) ** 2


def _onset_envelope(samples: np.ndarray, tail: np.ndarray | None, sample_rate: int) -> tuple[np.ndarray, np.ndarray]:
    """Onset strength per 20 ms hop of ``samples`` and the tail to pass to the next frame.

    Like librosa's onset strength: log band energies from long (128 ms) overlapping
    windows, and the mean positive change from one hop to the next. Long windows average
    out the random flicker of hundreds of voices, so the rhythm of a chant or of clapping
    stands out; they need the end of the previous frame (``tail``).
    """
    hop = sample_rate // ONSET_RATE_HZ
    size = int(round(ONSET_WINDOW_S * sample_rate))
    hops = len(samples) // hop
    fresh = tail is None or len(tail) != size
    history = np.zeros(size) if fresh else tail
    joined = np.concatenate([history, samples[:hops * hop]])
    if hops == 0:
        return np.zeros(0), joined[-size:]
    ends = size + hop * np.arange(-1, hops)  # the hop before the frame, then each hop of it
    windows = joined[ends[:, None] - size + np.arange(size)[None, :]] * np.hanning(size)
    power = np.abs(np.fft.rfft(windows, axis=1)) ** 2
    freqs = np.fft.rfftfreq(size, d=1 / sample_rate)
    band_index = np.searchsorted(ONSET_BANDS, freqs, side="right") - 1
    valid = (band_index >= 0) & (band_index < len(ONSET_BANDS) - 1)
    bands = np.zeros((len(windows), len(ONSET_BANDS) - 1))
    for column in range(bands.shape[1]):
        bands[:, column] = power[:, valid & (band_index == column)].sum(axis=1)
    log_bands = 10 * np.log10(bands + 1e-10)
    onsets = np.maximum(0.0, np.diff(log_bands, axis=0)).mean(axis=1)
    if fresh:  # no past audio: the first frame of a stream has no onsets to speak of
        onsets[:] = 0.0
    return onsets, joined[-size:]


def analyze_frame(samples: np.ndarray, sample_rate: int, *,
                  tail: np.ndarray | None = None) -> tuple[FrameFeatures, np.ndarray]:
    """Features of one frame of mono audio.

    Parameters
    ----------
    samples : np.ndarray, shape (n,)
        Float audio, full scale 1.0 (int16 callers divide by 32768).
    sample_rate : int
        Samples per second.
    tail : np.ndarray, optional
        The last 128 ms of the previous frames (returned by the previous call), so onsets
        are continuous across frames. None at the start of a stream.

    Returns
    -------
    (FrameFeatures, np.ndarray)
        The features, and the tail to pass with the next frame.
    """
    audio = np.asarray(samples, dtype=np.float64)
    audio = np.where(np.isfinite(audio), audio, 0.0)
    rms = float(np.sqrt(np.mean(audio ** 2))) if len(audio) else 0.0
    rms_db = max(_SILENCE_DB, 20 * np.log10(rms + _EPS))
    spectra = _hop_spectra(audio, sample_rate)
    freqs = np.fft.rfftfreq((sample_rate // ONSET_RATE_HZ), d=1 / sample_rate)
    power = spectra.mean(axis=0)
    total = float(power.sum()) + _EPS
    centroid = float((freqs * power).sum() / total)
    cumulative = np.cumsum(power)
    rolloff = float(freqs[min(len(freqs) - 1, int(np.searchsorted(cumulative, 0.85 * cumulative[-1])))])
    flatness = float(np.exp(np.mean(np.log(power[1:] + _EPS))) / (np.mean(power[1:]) + _EPS))
    bands = []
    for low, high in zip(BAND_EDGES_HZ[:-1], BAND_EDGES_HZ[1:], strict=True):
        mask = (freqs >= low) & (freqs < high)
        bands.append(10 * np.log10((power[mask].sum() + _EPS) / total) if mask.any() else _SILENCE_DB)
    whistle_mask = (freqs >= 2000) & (freqs <= 4000)
    band = power[whistle_mask]
    whistle_db = float(10 * np.log10((band.max() + _EPS) / (np.median(band) + _EPS))) if band.size else 0.0
    onsets, new_tail = _onset_envelope(audio, tail, sample_rate)
    features = FrameFeatures(
        rms_db=float(rms_db), band_db=tuple(float(b) for b in bands), centroid_hz=centroid, rolloff_hz=rolloff,
        flatness=min(1.0, flatness), flux=float(onsets.mean()) if len(onsets) else 0.0, whistle_db=whistle_db,
        onsets=tuple(float(o) for o in onsets),
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
