"""A hall reverb for the rendered parts: convolution with a synthetic, seeded impulse response.

Why our own reverb and not FluidSynth's: a convolution is linear and time-invariant, so bars
rendered separately and overlap-added sound exactly like the whole score rendered at once,
and re-rendering a bar after a restart gives the same bytes. FluidSynth's reverb is a
recursive effect whose state would tie each bar to everything played before it.

The impulse response is exponentially decaying noise (RT60 ~1.8 s, highs dying sooner, lows
a little later, like a hall), a 20 ms pre-delay, and independent noise per side so the tail
is wide (decorrelated left/right). It is generated from a fixed seed, so it is the same on
every machine and in every process; it and its spectrum are computed once and cached.
"""

from __future__ import annotations

import functools

import numpy as np
import scipy.fft
from scipy import signal

from consumers.music.types import SAMPLE_RATE

__all__ = ["IR_SEED", "PREDELAY_S", "RT60_S", "WET", "apply_reverb", "impulse_response", "ir_length"]

RT60_S = 1.8
PREDELAY_S = 0.020
WET = 0.3  # wet level for a unit-energy IR: the tail of a held chord sits ~10 dB under it
IR_SEED = 1_800_020  # fixed: the IR is part of the sound, like the SoundFont
_NFFT = 1 << 18  # overlap-add FFT size: one cached IR spectrum; a bar and its tail in ~2 blocks
# (band edges Hz, RT60 as a multiple of RT60_S): air absorbs highs, a hall holds the lows.
_BANDS: tuple[tuple[float | None, float | None, float], ...] = (
    (None, 300.0, 1.15), (300.0, 4000.0, 1.0), (4000.0, None, 0.55),
)
_FADE_IN_S = 0.004  # the diffuse tail builds up rather than starting with a step
_FADE_OUT_S = 0.1  # the IR ends at ~-60 dB; the fade removes the truncation edge


@functools.lru_cache(maxsize=4)
def impulse_response(rt60_s: float = RT60_S, predelay_s: float = PREDELAY_S, seed: int = IR_SEED) -> np.ndarray:
    """The stereo IR, float64 (m, 2), each side of unit energy; cached and read-only."""
    rate = SAMPLE_RATE
    length_s = predelay_s + rt60_s * max(scale for _, _, scale in _BANDS)
    n = int(round(length_s * rate))
    t = np.arange(n) / rate
    rng = np.random.default_rng(seed)
    ir = np.zeros((n, 2))
    for low, high, scale in _BANDS:
        noise = rng.standard_normal((n, 2))
        if low is None:
            sos = signal.butter(4, high, "lowpass", fs=rate, output="sos")
        elif high is None:
            sos = signal.butter(4, low, "highpass", fs=rate, output="sos")
        else:
            sos = signal.butter(4, (low, high), "bandpass", fs=rate, output="sos")
        band = signal.sosfiltfilt(sos, noise, axis=0)
        band /= np.sqrt(np.mean(band**2, axis=0))
        # -60 dB after this band's RT60: amplitude e^(-t * ln(1000) / RT60).
        ir += band * np.exp(-t * np.log(1000.0) / (rt60_s * scale))[:, None]
    start = int(round(predelay_s * rate))
    ir[:start] = 0.0
    fade_in = int(_FADE_IN_S * rate)
    ir[start:start + fade_in] *= np.linspace(0.0, 1.0, fade_in, endpoint=False)[:, None]
    fade_out = int(_FADE_OUT_S * rate)
    ir[-fade_out:] *= np.linspace(1.0, 0.0, fade_out)[:, None]
    ir /= np.sqrt(np.sum(ir**2, axis=0))
    ir.setflags(write=False)
    return ir


def ir_length() -> int:
    """Samples of the default IR: a reverberated part is this much longer, minus one."""
    return len(impulse_response())


@functools.lru_cache(maxsize=4)
def _ir_spectrum(rt60_s: float, predelay_s: float, seed: int) -> tuple[np.ndarray, int]:
    """The IR's spectrum at the FFT size, and the input block that fits with its tail."""
    ir = impulse_response(rt60_s, predelay_s, seed)
    nfft = max(_NFFT, 1 << (2 * len(ir) - 1).bit_length())  # a long IR still leaves a useful block
    spectrum = scipy.fft.rfft(ir, nfft, axis=0)
    spectrum.setflags(write=False)
    return spectrum, nfft - len(ir) + 1


def apply_reverb(dry: np.ndarray, *, wet: float = WET, rt60_s: float = RT60_S,
                 predelay_s: float = PREDELAY_S, seed: int = IR_SEED) -> np.ndarray:
    """``dry`` (n, 2) plus ``wet`` times its convolution with the IR: float32 (n + m - 1, 2).

    Deterministic (fixed-size FFT blocks, same operations for the same input) and linear:
    the sum of reverberated parts equals the reverberated sum up to float rounding.
    """
    if dry.ndim != 2 or dry.shape[1] != 2:
        raise ValueError(f"expected stereo audio of shape (n, 2), got {dry.shape}")
    ir = impulse_response(rt60_s, predelay_s, seed)
    spectrum, block_len = _ir_spectrum(rt60_s, predelay_s, seed)
    n, m = len(dry), len(ir)
    nfft = block_len + m - 1
    if n == 0:
        return np.zeros((0, 2), dtype=np.float32)
    x = dry.astype(np.float64)
    out = np.zeros((n + m - 1, 2))
    for start in range(0, n, block_len):
        block = x[start:start + block_len]
        tail = len(block) + m - 1
        out[start:start + tail] += scipy.fft.irfft(scipy.fft.rfft(block, nfft, axis=0) * spectrum, nfft, axis=0)[:tail]
    out *= wet
    out[:n] += x
    return out.astype(np.float32)
