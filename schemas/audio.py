"""Audio payloads of AudioFrame and AudioChunk records: PCM s16le or FLAC, to and from numpy.

Part of the contract: whoever writes a payload and whoever reads it use these functions,
so ``encoding``, ``channels`` and ``sample_rate`` always mean the same thing.
"""

from __future__ import annotations

import io
from typing import Literal

import numpy as np

from infra.errors import SchemaError

__all__ = ["AudioEncoding", "decode_payload", "encode_payload", "to_int16"]

AudioEncoding = Literal["PCM_S16LE", "FLAC"]


def to_int16(samples: np.ndarray) -> np.ndarray:
    """Float samples in [-1, 1] to int16, rounded and clipped; int16 input is returned as is.

    Parameters
    ----------
    samples : np.ndarray, shape (n,) or (n, channels)
        Float audio (full scale = 1.0) or int16.

    Returns
    -------
    np.ndarray of int16, shape (n, channels)
    """
    array = np.asarray(samples)
    if array.ndim == 1:
        array = array[:, None]
    if array.dtype == np.int16:
        return array
    if not np.issubdtype(array.dtype, np.floating):
        raise SchemaError(f"audio samples must be float or int16, got {array.dtype}")
    clean = np.nan_to_num(array, nan=0.0, posinf=1.0, neginf=-1.0)
    return np.clip(np.rint(clean * 32767.0), -32768, 32767).astype(np.int16)


def encode_payload(samples: np.ndarray, *, encoding: AudioEncoding, sample_rate: int) -> bytes:
    """Encode int16 samples of shape (n, channels) as an AudioFrame/AudioChunk payload.

    PCM_S16LE is interleaved little-endian; FLAC is one complete FLAC stream (16-bit).
    """
    pcm = to_int16(samples)
    if encoding == "PCM_S16LE":
        return pcm.astype("<i2", copy=False).tobytes()
    if encoding == "FLAC":
        import soundfile  # deferred: only FLAC needs libsndfile

        out = io.BytesIO()
        soundfile.write(out, pcm, sample_rate, format="FLAC", subtype="PCM_16")
        return out.getvalue()
    raise SchemaError(f"unknown audio encoding {encoding!r}; use PCM_S16LE or FLAC")


def decode_payload(payload: bytes, *, encoding: AudioEncoding, channels: int, sample_rate: int,
                   max_samples: int | None = None) -> np.ndarray:
    """Decode a payload to int16 samples of shape (n, channels).

    ``max_samples`` bounds the samples per channel decoded: a few kB of FLAC can claim hours
    of audio (a decompression bomb), so a FLAC payload is decoded no further than one sample
    past the bound.

    Raises
    ------
    SchemaError
        For a payload that does not decode, holds more than ``max_samples`` samples per
        channel, or whose channels or rate disagree with the record.
    """
    if channels < 1:
        raise SchemaError(f"channels must be >= 1, got {channels}")
    if encoding == "PCM_S16LE":
        if len(payload) % (2 * channels):
            raise SchemaError(f"PCM payload of {len(payload)} bytes is not whole {channels}-channel 16-bit frames")
        pcm = np.frombuffer(payload, dtype="<i2").astype(np.int16).reshape(-1, channels)
    elif encoding == "FLAC":
        pcm = _decode_flac(payload, channels=channels, sample_rate=sample_rate, max_samples=max_samples)
    else:
        raise SchemaError(f"unknown audio encoding {encoding!r}; use PCM_S16LE or FLAC")
    if max_samples is not None and len(pcm) > max_samples:
        raise SchemaError(f"payload holds more than {max_samples} samples per channel")
    return pcm


def _decode_flac(payload: bytes, *, channels: int, sample_rate: int, max_samples: int | None) -> np.ndarray:
    import soundfile

    try:
        with soundfile.SoundFile(io.BytesIO(payload)) as flac:
            if flac.samplerate != sample_rate or flac.channels != channels:
                raise SchemaError(f"FLAC payload is {flac.samplerate} Hz x{flac.channels}, "
                                  f"record says {sample_rate} Hz x{channels}")
            return flac.read(-1 if max_samples is None else max_samples + 1, dtype="int16", always_2d=True)
    except SchemaError:
        raise
    except Exception as exc:  # noqa: BLE001 - libsndfile raises RuntimeError/LibsndfileError
        raise SchemaError(f"FLAC payload does not decode: {exc}") from None
