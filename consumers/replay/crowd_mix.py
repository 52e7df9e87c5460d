"""The crowd under the music: the "stadium version" of a replay clip.

Editors want the clip as the broadcast would have it, the crowd's roar audible but the score
on top. The two come from different worlds: the music is our 48 kHz stereo render at about
-23 LUFS, the crowd is whatever the stadium microphones recorded (mono or stereo, 44.1 or
48 kHz, at any level). Fixed gains would put a hot crowd feed over the music, so both
levels are faders relative to one reference, the music's own integrated loudness: the music
moves by ``music_level_db`` and the crowd is set so that its loudness is the music's plus
``crowd_level_db``. With the defaults the crowd sits 8 LU under the music whatever level it
was recorded at. The sum is float and unlimited: the caller masters it (``broadcast_master``).

Resampling is scipy's polyphase ``resample_poly`` with the rates' greatest common divisor
(44.1 -> 48 kHz is 160/147): exact rational, no randomness, the same samples every run.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.signal import resample_poly

from consumers.replay.audio_io import as_float
from consumers.replay.loudness import MIN_LOUDNESS_S, integrated_lufs

__all__ = ["mix_under_crowd", "resample_to"]


def mix_under_crowd(music: np.ndarray, crowd: np.ndarray, *, music_sample_rate: int,
                    crowd_sample_rate: int, music_level_db: float = 0.0,
                    crowd_level_db: float = -8.0) -> np.ndarray:
    """The music (n, 2) with the crowd under it; float64 (n, 2), full scale 1.0.

    ``music`` is float or int16 (n, 2) at ``music_sample_rate`` (48 kHz in this project);
    ``crowd`` is float or int16, mono (m,) / (m, 1) or stereo (m, 2), at its own rate. The
    crowd is resampled to the music's rate, mono spread to both sides, zero-padded or
    trimmed to n samples.

    Levels are relative to the music's integrated loudness (BS.1770): the music is scaled by
    ``music_level_db``; the crowd so that its loudness is the music's + ``crowd_level_db``.
    When a loudness cannot be measured (shorter than 0.4 s, silent, all under the -70 LUFS
    gate) both levels fall back to plain gains on the inputs.
    """
    m = as_float(music)
    if m.ndim != 2 or m.shape[1] != 2:
        raise ValueError(f"expected stereo music of shape (n, 2), got {m.shape}")
    if music_sample_rate <= 0 or crowd_sample_rate <= 0:
        raise ValueError("sample rates must be positive")
    c = as_float(crowd)
    if c.ndim == 1:
        c = c[:, None]
    if c.ndim != 2 or c.shape[1] not in (1, 2):
        raise ValueError(f"expected mono or stereo crowd audio, got shape {c.shape}")
    n = len(m)
    c = resample_to(c, crowd_sample_rate, music_sample_rate)
    if c.shape[1] == 1:
        c = np.repeat(c, 2, axis=1)
    fitted = np.zeros((n, 2))
    fitted[:min(n, len(c))] = c[:n]
    crowd_gain_db = crowd_level_db
    music_lufs = _loudness(m, music_sample_rate)
    crowd_lufs = _loudness(fitted, music_sample_rate)
    if music_lufs is not None and crowd_lufs is not None:
        crowd_gain_db = music_lufs + crowd_level_db - crowd_lufs
    return m * _db_to_lin(music_level_db) + fitted * _db_to_lin(crowd_gain_db)


def resample_to(audio: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    """Polyphase resampling of (n, channels) float audio along time; a copy when rates match."""
    if from_rate == to_rate:
        return np.array(audio, dtype=np.float64)
    g = math.gcd(int(from_rate), int(to_rate))
    return resample_poly(audio, to_rate // g, from_rate // g, axis=0)


def _loudness(audio: np.ndarray, sample_rate: int) -> float | None:
    if len(audio) < MIN_LOUDNESS_S * sample_rate or not np.any(audio):
        return None
    lufs = integrated_lufs(audio, sample_rate)
    return lufs if math.isfinite(lufs) else None


def _db_to_lin(db: float) -> float:
    return 10.0 ** (db / 20.0)
