"""The stadium as a room: where each part of the crowd is, heard from the microphones.

Every sound goes to one of a few *buses* — the home stand near the microphones, the
home stands across the pitch, the away end, and a bed of distant crowd noise — and each
bus reaches each microphone through one impulse response: the direct sound rolled off
at high frequencies with distance, a handful of early reflections, and a diffuse tail of
decaying noise whose reverberation time (RT60) is about 2 s in the low and mid bands and
shorter in the treble, as in a large stand. Linear and time-invariant, so the renderer
applies it by FFT convolution of whole chunks.

Stereo means two microphones on the main stand, one near the home end and one near the
away end, with independent tails: left and right are decorrelated as in a real pair.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy import fft, signal

__all__ = ["BUSES", "IR_S", "RoomSpectra", "impulse_response", "room_spectra"]

IR_S = 3.0  # impulse responses are cut (with a fade) at this length: -70 dB for an RT60 of 2.2 s
BUSES = ("near", "far", "away", "bed")

# Reverberation time per band (upper edge Hz, RT60 s): air and seats absorb the treble.
_RT60_BANDS = ((500.0, 2.2), (2000.0, 1.9), (5000.0, 1.4), (np.inf, 0.8))


@dataclass(frozen=True)
class Placement:
    """How one bus reaches one microphone."""

    gain: float  # direct sound, linear
    delay_s: float  # extra travel time of the direct sound
    lowpass_hz: float  # high-frequency roll-off with distance
    drr_db: float  # direct-to-reverberant energy ratio


# Per bus: placements for a mono microphone, and for the left / right pair.
_MONO = {
    "near": Placement(1.0, 0.0, 12000.0, 3.0),
    "far": Placement(0.55, 0.0, 6000.0, -4.0),
    "away": Placement(0.45, 0.0, 5000.0, -6.0),
    "bed": Placement(0.4, 0.0, 4000.0, -5.0),
}
_STEREO = {
    "near": (Placement(1.0, 0.0, 12000.0, 3.0), Placement(0.6, 0.001, 9000.0, 0.0)),
    "far": (Placement(0.55, 0.0, 6000.0, -4.0), Placement(0.55, 0.0, 6000.0, -4.0)),
    "away": (Placement(0.3, 0.002, 4000.0, -8.0), Placement(0.55, 0.0, 5500.0, -5.0)),
    "bed": (Placement(0.4, 0.0, 4000.0, -5.0), Placement(0.4, 0.0, 4000.0, -5.0)),
}


def impulse_response(rng: np.random.Generator, sr: int, place: Placement, *, shaping: np.ndarray | None = None) -> np.ndarray:
    """The impulse response from a bus to a microphone.

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of the tail's noise and the reflections' times.
    sr : int
        Sample rate, Hz.
    place : Placement
        Direct gain and delay, distance roll-off, direct-to-reverberant ratio.
    shaping : ndarray, optional
        Second-order sections applied to the whole response (the bed's spectrum).

    Returns
    -------
    ndarray, shape (round(IR_S * sr),), float64; causal, fades to 0 at the end.
    """
    n = int(IR_S * sr)
    t = np.arange(n) / sr
    early = np.zeros(n)
    direct = int(round(place.delay_s * sr))
    early[direct] = place.gain
    # A few discrete reflections off the roof and stands in the first 100 ms.
    for _ in range(8):
        tap = direct + int(rng.uniform(0.012, 0.1) * sr)
        early[tap] += place.gain * rng.uniform(0.15, 0.45) * rng.choice([-1.0, 1.0])
    # Diffuse tail: noise split into bands, each decaying at its own RT60 (-60 dB at RT60).
    noise = rng.standard_normal(n)
    spectrum = np.fft.rfft(noise)
    freqs = np.fft.rfftfreq(n, 1 / sr)
    tail = np.zeros(n)
    low = 0.0
    for high, rt60 in _RT60_BANDS:
        band = np.fft.irfft(np.where((freqs >= low) & (freqs < high), spectrum, 0), n)
        tail += band * np.exp(-6.9078 * t / rt60)
        low = high
    onset = direct + int(rng.uniform(0.02, 0.05) * sr)  # the diffuse field builds up after a pre-delay
    build = np.clip((np.arange(n) - onset) / (0.06 * sr), 0.0, 1.0)
    tail *= build
    tail *= np.sqrt(np.sum(early**2) / np.sum(tail**2) * 10 ** (-place.drr_db / 10))
    response = early + tail
    # Air absorbs the treble gently: a first-order roll-off, lower for farther stands.
    sos = signal.butter(1, min(place.lowpass_hz, 0.45 * sr), "lowpass", fs=sr, output="sos")
    response = signal.sosfilt(sos, response)
    response = signal.sosfilt(signal.butter(1, 40.0, "highpass", fs=sr, output="sos"), response)  # no rumble
    if shaping is not None:
        response = signal.sosfilt(shaping, response)
    fade = int(0.1 * sr)
    response[-fade:] *= np.linspace(1.0, 0.0, fade)
    return response


def _bed_shaping(sr: int) -> np.ndarray:
    # The distant crowd's murmur: most energy 250-1000 Hz, like many far-off voices.
    return signal.butter(1, [250.0, min(1100.0, 0.45 * sr)], "bandpass", fs=sr, output="sos")


@dataclass(frozen=True)
class RoomSpectra:
    """Transfer functions of every (bus, microphone) pair for FFTs of ``nfft`` samples."""

    nfft: int
    ir_len: int
    spectra: np.ndarray  # shape (len(BUSES), channels, nfft // 2 + 1), complex64


@lru_cache(maxsize=4)
def room_spectra(seed: int, sample_rate: int, channels: int, nfft: int) -> RoomSpectra:
    """The room of one seed, as spectra ready to multiply chunk spectra of length ``nfft``."""
    if channels not in (1, 2):
        raise ValueError("channels must be 1 or 2")
    spectra = np.zeros((len(BUSES), channels, nfft // 2 + 1), dtype=np.complex64)
    ir_len = int(IR_S * sample_rate)
    for b, bus in enumerate(BUSES):
        places = (_MONO[bus],) if channels == 1 else _STEREO[bus]
        for c, place in enumerate(places):
            rng = np.random.default_rng([seed, 9_000, b, c, channels])
            response = impulse_response(rng, sample_rate, place, shaping=_bed_shaping(sample_rate) if bus == "bed" else None)
            spectra[b, c] = fft.rfft(response.astype(np.float32), nfft)
    return RoomSpectra(nfft=nfft, ir_len=ir_len, spectra=spectra)
