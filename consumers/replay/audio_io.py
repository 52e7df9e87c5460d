"""Sample formats and WAV files of the replay artifacts.

One place decides what int16 means (full scale 32768, as soundfile reads it back) and how a
float becomes int16 (plain rounding, no dither), so every artifact of a replay agrees and
the same input always gives the same bytes.
"""

from __future__ import annotations

import os

import numpy as np
import soundfile

__all__ = ["as_float", "to_int16", "write_wav"]

_FULL_SCALE = 32768.0


def as_float(audio: np.ndarray) -> np.ndarray:
    """float64 copy of float or int16 audio (int16 divided by 32768); other dtypes refused."""
    a = np.asarray(audio)
    if a.dtype == np.int16:
        return a.astype(np.float64) / _FULL_SCALE
    if not np.issubdtype(a.dtype, np.floating):
        raise TypeError(f"expected float or int16 audio, got {a.dtype}")
    return a.astype(np.float64)


def to_int16(audio: np.ndarray) -> np.ndarray:
    """Round float audio (full scale 1.0) to int16, clipping at the rails; no dither."""
    return np.clip(np.rint(np.asarray(audio, dtype=np.float64) * _FULL_SCALE), -32768, 32767).astype(np.int16)


def write_wav(path: str | os.PathLike[str], audio_int16: np.ndarray, sample_rate: int) -> None:
    """Write int16 (n,) or (n, channels) audio as a 16-bit PCM WAV file.

    Only int16 is accepted: a float array here would mean the mastering step was skipped,
    and soundfile would quietly convert (and clip) it. libsndfile writes no date or tool
    chunk for PCM WAV, so the bytes depend only on the samples and the rate.
    """
    a = np.asarray(audio_int16)
    if a.dtype != np.int16:
        raise TypeError(f"write_wav takes int16 audio (master it first), got {a.dtype}")
    if a.ndim not in (1, 2):
        raise ValueError(f"expected audio of shape (n,) or (n, channels), got {a.shape}")
    if sample_rate <= 0:
        raise ValueError(f"sample_rate must be positive, got {sample_rate}")
    soundfile.write(os.fspath(path), a, int(sample_rate), subtype="PCM_16", format="WAV")
