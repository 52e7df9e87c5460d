"""Figures that say whether audio behaves like a crowd: level, brightness, spectrum shape,
loudness fluctuation, modulation and beat. Used by the tests and the benchmark to compare
the synthetic stadium with a real recording.

All functions take mono or multi-channel float audio (channels are averaged) and the
sample rate in Hz.
"""

from __future__ import annotations

import numpy as np
from scipy import signal

__all__ = [
    "OCTAVES_HZ",
    "band_fraction",
    "band_levels_db",
    "beat_bpm",
    "loudness_std_db",
    "modulation_db",
    "rms_dbfs",
    "spectral_centroid_hz",
]

OCTAVES_HZ = (63, 125, 250, 500, 1000, 2000, 4000, 8000, 16000)


def _mono(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return x.mean(axis=1) if x.ndim == 2 else x


def _spectrum(x: np.ndarray, sr: int) -> tuple[np.ndarray, np.ndarray]:
    x = _mono(x)
    return signal.welch(x, sr, nperseg=min(8192, len(x)))


def rms_dbfs(x: np.ndarray) -> float:
    """RMS level, dB relative to full scale (a full-scale sine is -3 dBFS)."""
    return float(20 * np.log10(np.sqrt(np.mean(_mono(x) ** 2)) + 1e-12))


def spectral_centroid_hz(x: np.ndarray, sr: int) -> float:
    """Power-weighted mean frequency of the long-term spectrum, Hz: higher is brighter."""
    f, p = _spectrum(x, sr)
    return float(np.sum(f * p) / np.sum(p))


def band_levels_db(x: np.ndarray, sr: int, centres: tuple[float, ...] = OCTAVES_HZ) -> np.ndarray:
    """Octave-band levels of the long-term spectrum, dB relative to the loudest band.

    Returns
    -------
    ndarray, shape (len(centres),); bands above the Nyquist frequency are -inf.
    """
    f, p = _spectrum(x, sr)
    levels = np.array([np.sum(p[(f >= c / 2**0.5) & (f < c * 2**0.5)]) for c in centres])
    with np.errstate(divide="ignore"):
        db = 10 * np.log10(levels)
    return db - np.max(db)


def band_fraction(x: np.ndarray, sr: int, low_hz: float, high_hz: float) -> float:
    """Share (0..1) of the signal's power between ``low_hz`` and ``high_hz``."""
    f, p = _spectrum(x, sr)
    return float(np.sum(p[(f >= low_hz) & (f < high_hz)]) / np.sum(p))


def _envelope_db(x: np.ndarray, sr: int, frame_s: float) -> np.ndarray:
    x = _mono(x)
    hop = int(frame_s * sr)
    frames = x[: len(x) // hop * hop].reshape(-1, hop)
    return 20 * np.log10(np.sqrt(np.mean(frames**2, axis=1)) + 1e-9)


def loudness_std_db(x: np.ndarray, sr: int, frame_s: float = 0.05) -> float:
    """Standard deviation of the short-term RMS level (``frame_s`` frames), dB."""
    return float(np.std(_envelope_db(x, sr, frame_s)))


def modulation_db(x: np.ndarray, sr: int, bands: tuple[tuple[float, float], ...] = ((0.1, 1.0), (1.0, 4.0), (4.0, 16.0))
                  ) -> np.ndarray:
    """How much the level (10 ms frames, dB) moves at each modulation-frequency band.

    Returns
    -------
    ndarray, shape (len(bands),): RMS, in dB, of the level curve band-passed to each band
    (Hz). Slow swells show in the first band, syllables and claps in the later ones.
    """
    env = _envelope_db(x, sr, 0.01)
    env = env - env.mean()
    spectrum = np.fft.rfft(env)
    freqs = np.fft.rfftfreq(len(env), 0.01)
    return np.array([np.std(np.fft.irfft(np.where((freqs >= lo) & (freqs < hi), spectrum, 0), len(env)))
                     for lo, hi in bands])


def beat_bpm(x: np.ndarray, sr: int, *, low_bpm: float = 70.0, high_bpm: float = 180.0) -> float:
    """The strongest beat between ``low_bpm`` and ``high_bpm``, from the autocorrelation of
    an onset-strength curve (positive spectral flux of the log spectrogram, 10 ms hops).

    Returns
    -------
    float, beats per minute (interpolated between lags).
    """
    x = _mono(x)
    hop = sr // 100
    _, _, z = signal.stft(x, sr, nperseg=4 * hop, noverlap=3 * hop, boundary=None)
    logmag = np.log1p(1000 * np.abs(z))
    onset = np.maximum(np.diff(logmag, axis=1), 0).sum(axis=0)
    onset = onset - onset.mean()
    ac = np.correlate(onset, onset, "full")[len(onset) - 1:]
    lags = np.arange(len(ac)) * hop / sr
    lo, hi = int(np.ceil(60 / high_bpm * sr / hop)), int(60 / low_bpm * sr / hop)
    best = lo + int(np.argmax(ac[lo:hi + 1]))
    # Parabolic interpolation around the peak for sub-hop precision.
    if 0 < best < len(ac) - 1:
        a, b, c = ac[best - 1], ac[best], ac[best + 1]
        shift = 0.5 * (a - c) / (a - 2 * b + c) if (a - 2 * b + c) else 0.0
    else:
        shift = 0.0
    return float(60.0 / ((best + shift) * hop / sr)) if lags[best] > 0 else 0.0
