"""Grains of crowd sound: one person's voice, clap or whistle each.

A crowd is hundreds of these at once, so each is made once per seed into a
:class:`GrainBank` and overlap-added many times at random (see ``render.py``). Voices are
source-filter speech: a band-limited glottal pulse train whose pitch (F0) wanders, plus
breath noise, through a cascade of formant resonators for the vowel. Claps are short
band-passed noise bursts; fingers-in-mouth whistles are narrow tones at 2-4 kHz with
vibrato; the referee's pea whistle is a tone with the pea's fast rattle.

Every grain is float32, mono, at most :data:`MAX_GRAIN_S` long, and scaled to an RMS of 1
over its sounding part, so layer gains in ``crowd.py`` compare like with like.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy import signal

__all__ = [
    "BANK_SIZES",
    "GrainBank",
    "MAX_GRAIN_S",
    "VOWELS",
    "boo",
    "clap",
    "formant_filter",
    "grain_bank",
    "groan",
    "ooh",
    "referee_whistle",
    "scream",
    "shout",
    "sung",
    "talk",
    "voice",
    "whistle",
]

MAX_GRAIN_S = 2.5  # no grain is longer: the renderer's carry-over between chunks relies on it

# Formant frequencies F1..F4 (Hz) of an adult male speaker (Peterson & Barney style).
# "ah"/"ay"/"eh" carry cheers, "oh"/"oo" carry boos and groans.
VOWELS: dict[str, tuple[float, float, float, float]] = {
    "a": (730.0, 1090.0, 2440.0, 3400.0),  # ah
    "ae": (660.0, 1720.0, 2410.0, 3400.0),  # a as in "cat"
    "uh": (640.0, 1190.0, 2390.0, 3300.0),  # u as in "up"
    "e": (530.0, 1840.0, 2480.0, 3500.0),  # eh
    "i": (270.0, 2290.0, 3010.0, 3700.0),  # ee
    "o": (570.0, 840.0, 2410.0, 3300.0),  # aw / oh
    "u": (300.0, 870.0, 2240.0, 3300.0),  # oo
    "er": (490.0, 1350.0, 1690.0, 3300.0),
}
_F5 = 4500.0  # a fifth, vowel-independent formant keeps the treble of real voices
_BANDWIDTHS = np.array([80.0, 100.0, 150.0, 220.0, 300.0])
_TABLE_SIZE = 4096


@dataclass(frozen=True)
class Speaker:
    """Who is speaking: speaking pitch (Hz) and vocal-tract scale (formants x scale)."""

    f0: float
    scale: float


def _speaker(rng: np.random.Generator, *, men: float = 0.62) -> Speaker:
    # Football crowds skew male; women and children raise both pitch and formants.
    draw = rng.random()
    if draw < men:
        return Speaker(f0=float(rng.uniform(85, 150)), scale=float(rng.uniform(0.95, 1.05)))
    if draw < men + (1 - men) * 0.85:
        return Speaker(f0=float(rng.uniform(165, 250)), scale=float(rng.uniform(1.1, 1.2)))
    return Speaker(f0=float(rng.uniform(230, 320)), scale=float(rng.uniform(1.2, 1.3)))


@lru_cache(maxsize=256)
def _glottal_table(harmonics: int, tilt_db_per_octave: float) -> np.ndarray:
    """One period of a band-limited pulse with ``harmonics`` partials falling off at
    ``tilt_db_per_octave``; length ``_TABLE_SIZE + 1`` (wrap sample for interpolation)."""
    spectrum = np.zeros(_TABLE_SIZE // 2 + 1, dtype=np.complex128)
    k = np.arange(1, harmonics + 1)
    spectrum[1:harmonics + 1] = -1j * k ** (-tilt_db_per_octave / 6.0206)
    table = np.fft.irfft(spectrum, _TABLE_SIZE)
    table /= np.sqrt(np.mean(table**2))
    return np.append(table, table[0])


def _wobble(rng: np.random.Generator, n: int, sr: int, *, rate_hz: float, depth: float) -> np.ndarray:
    """exp of smooth random wandering: random values ``rate_hz`` times a second, linearly
    joined; ``depth`` is the standard deviation in natural-log units (0.02 ~ 2 %)."""
    knots = max(2, int(n / sr * rate_hz) + 2)
    values = rng.normal(0.0, depth, knots)
    return np.exp(np.interp(np.linspace(0, knots - 1, n), np.arange(knots), values))


def _envelope(n: int, sr: int, attack_s: float, release_s: float) -> np.ndarray:
    """Raised-cosine attack and release over ``n`` samples (shorter if the grain is)."""
    env = np.ones(n)
    a = min(int(attack_s * sr), n // 2)
    r = min(int(release_s * sr), n - a)
    if a:
        env[:a] = 0.5 - 0.5 * np.cos(np.linspace(0, np.pi, a))
    if r:
        env[n - r:] = 0.5 + 0.5 * np.cos(np.linspace(0, np.pi, r))
    return env


def voice(f0: np.ndarray, sr: int, rng: np.random.Generator, *, tilt_db: float = 9.0, breath: float = 0.2) -> np.ndarray:
    """A glottal source: band-limited pulses following ``f0`` plus pulsed breath noise.

    Parameters
    ----------
    f0 : ndarray, shape (n,)
        Pitch per sample, Hz (roughly 80-900).
    sr : int
        Sample rate, Hz.
    tilt_db : float
        Spectral tilt of the pulses, dB per octave (6 = pressed shout, 12 = soft voice).
    breath : float
        Level of the breath noise relative to the pulses (RMS ratio, 0-1).

    Returns
    -------
    ndarray, shape (n,), float64, RMS about 1.
    """
    harmonics = max(1, int(min(0.45 * sr, 7000.0) / float(np.max(f0))))
    table = _glottal_table(harmonics, round(tilt_db, 1))
    phase = np.cumsum(f0 / sr) + rng.random()
    frac = phase - np.floor(phase)
    position = frac * _TABLE_SIZE
    index = position.astype(np.int64)
    weight = position - index
    pulses = table[index] + weight * (table[index + 1] - table[index])
    # Breath is loudest while the glottis is open: modulate it with the pulse phase.
    noise = rng.standard_normal(len(f0)) * (0.45 + 0.55 * np.cos(np.pi * frac) ** 2)
    return pulses + breath * noise


def formant_filter(x: np.ndarray, sr: int, formants: tuple[float, ...] | np.ndarray,
                   bandwidths: np.ndarray | None = None) -> np.ndarray:
    """Pass ``x`` through a cascade of two-pole resonators (Klatt), one per formant.

    Parameters
    ----------
    x : ndarray, shape (n,)
        Source signal.
    sr : int
        Sample rate, Hz.
    formants : sequence of float
        Formant centre frequencies, Hz; those above 0.45 * ``sr`` are left out.
    bandwidths : ndarray, optional
        Formant bandwidths, Hz (default 80, 100, 150, 220, 300).

    Returns
    -------
    ndarray, shape (n,): unity gain at 0 Hz, peaks at the formants.
    """
    bandwidths = _BANDWIDTHS if bandwidths is None else bandwidths
    rows = []
    for freq, bw in zip(formants, bandwidths):
        if freq >= 0.45 * sr:
            continue
        r = np.exp(-np.pi * bw / sr)
        a1, a2 = -2 * r * np.cos(2 * np.pi * freq / sr), r * r
        rows.append([1 + a1 + a2, 0.0, 0.0, 1.0, a1, a2])
    if not rows:
        return x
    return signal.sosfilt(np.array(rows), x)


def _formants(vowel: str, scale: float, *, shout: float = 0.0) -> np.ndarray:
    """Formants of ``vowel`` for a vocal tract of ``scale``; shouting opens the jaw, which
    raises F1 (``shout`` 0..1 raises it up to 20 %)."""
    f = np.array((*VOWELS[vowel], _F5)) * scale
    f[0] *= 1.0 + 0.2 * shout
    return f


def _vowel_glide(source: np.ndarray, sr: int, vowels: list[str], scale: float, shout: float,
                 bandwidths: np.ndarray) -> np.ndarray:
    """Filter ``source`` through a sequence of vowels (a diphthong such as "ay" or "yeah"),
    crossfading between them; one vowel is a plain formant filter."""
    outs = [formant_filter(source, sr, _formants(v, scale, shout=shout), bandwidths) for v in vowels]
    if len(outs) == 1:
        return outs[0]
    n = len(source)
    # Equal-length parts with 60 ms crossfades: cheap, and hundreds of mixed voices hide
    # that it is not a true formant glide.
    edges = np.linspace(0, n, len(outs) + 1)
    pos = np.arange(n)
    fade = 0.06 * sr
    result = np.zeros(n)
    for i, out in enumerate(outs):
        lo = np.clip((pos - edges[i] + fade / 2) / fade, 0, 1) if i else 1.0
        hi = np.clip((edges[i + 1] + fade / 2 - pos) / fade, 0, 1) if i < len(outs) - 1 else 1.0
        result += out * lo * hi
    return result


def _normalise(x: np.ndarray, env: np.ndarray | None = None) -> np.ndarray:
    """Scale to RMS 1 over the sounding part (where the envelope is above 0.1)."""
    active = x
    if env is not None and np.any(env[: len(x)] > 0.1):
        active = x[: len(env)][env[: len(x)] > 0.1]
    rms = float(np.sqrt(np.mean(active**2))) if len(active) else 0.0
    return (x / rms if rms > 0 else x).astype(np.float32)


def _vocal(rng: np.random.Generator, sr: int, f0: np.ndarray, vowels: list[str], scale: float, *, shout: float,
           tilt_db: float, breath: float, attack_s: float, release_s: float, shimmer: float = 0.05,
           highpass_hz: float = 200.0) -> np.ndarray:
    n = len(f0)
    env = _envelope(n, sr, attack_s, release_s) * _wobble(rng, n, sr, rate_hz=12.0, depth=shimmer)
    source = voice(f0, sr, rng, tilt_db=tilt_db, breath=breath) * env
    bandwidths = _BANDWIDTHS * (1.0 + 0.5 * shout)  # a shouting tract is less resonant
    out = _vowel_glide(source, sr, vowels, scale, shout, bandwidths)
    # Turbulence at the lips and teeth escapes the vocal tract's resonances: a little
    # breath straight out, above 2.5 kHz, gives loud voices their hiss and "air".
    hiss = signal.sosfilt(_hiss_filter(sr), rng.standard_normal(n) * env)
    out = out / max(float(np.std(out)), 1e-9) + (0.04 + 0.25 * shout * breath) * hiss
    return _normalise(_radiate(out, sr, highpass_hz), env)


@lru_cache(maxsize=8)
def _hiss_filter(sr: int) -> np.ndarray:
    # 2.5-7 kHz: above that even a near voice has little left by the time it reaches a mic.
    if sr <= 16000:
        return signal.butter(2, 0.4 * sr, "highpass", fs=sr, output="sos")
    return signal.butter(1, [2500.0, min(7000.0, 0.45 * sr)], "bandpass", fs=sr, output="sos")


def _radiate(x: np.ndarray, sr: int, corner_hz: float) -> np.ndarray:
    """A first-order high-pass: sound radiating from the lips loses the lowest frequencies
    (6 dB/octave below ``corner_hz``); pressed, shouted voices have a weak fundamental, so
    they get a higher corner."""
    return signal.sosfilt(signal.butter(1, corner_hz, "highpass", fs=sr, output="sos"), x)


def _contour(n: int, points: list[tuple[float, float]]) -> np.ndarray:
    """Pitch factor over ``n`` samples through ``(fraction of grain, factor)`` points."""
    xs, ys = zip(*points)
    return np.interp(np.linspace(0.0, 1.0, n), xs, ys)


def _length(rng: np.random.Generator, sr: int, low: float, high: float) -> int:
    return int(min(rng.uniform(low, high), MAX_GRAIN_S) * sr)


# --- crowd voices ------------------------------------------------------------------


def talk(rng: np.random.Generator, sr: int) -> np.ndarray:
    """One person talking: a phrase of 3-8 syllables (F0 85-320 Hz by speaker), with
    consonant hiss and falling intonation.

    Parameters
    ----------
    rng : numpy.random.Generator
        Chooses the speaker and every detail.
    sr : int
        Sample rate, Hz.

    Returns
    -------
    ndarray, shape (n,), float32, RMS 1 while sounding; n <= MAX_GRAIN_S * sr.
    """
    who = _speaker(rng)
    syllables = []
    t = 0.0
    for _ in range(int(rng.integers(3, 9))):
        length = rng.uniform(0.11, 0.26)
        if t + length > MAX_GRAIN_S - 0.2:
            break
        syllables.append((t, length, str(rng.choice(["a", "ae", "uh", "e", "i", "o", "u", "er"]))))
        t += length + (rng.uniform(0.12, 0.3) if rng.random() < 0.2 else rng.uniform(0.0, 0.05))
    n = int((t + 0.05) * sr)
    # Declination: pitch falls over a phrase, and wanders around that line.
    f0 = who.f0 * _contour(n, [(0.0, 1.08), (1.0, 0.88)]) * _wobble(rng, n, sr, rate_hz=6.0, depth=0.05)
    source = voice(f0, sr, rng, tilt_db=rng.uniform(10, 13), breath=rng.uniform(0.1, 0.25))
    out = np.zeros(n)
    env_all = np.zeros(n)
    for start, length, vowel in syllables:
        s0, s1 = int(start * sr), min(n, int((start + length) * sr))
        env = _envelope(s1 - s0, sr, 0.025, 0.05) * rng.uniform(0.6, 1.0)
        env_all[s0:s1] = np.maximum(env_all[s0:s1], env)
        part = formant_filter(source[s0:s1] * env, sr, _formants(vowel, who.scale))
        out[s0:s1] += part
        if rng.random() < 0.5:  # a consonant: a short hiss or burst before the vowel
            c = int(rng.uniform(0.02, 0.07) * sr)
            c0 = max(0, s0 - c // 2)
            hiss = rng.standard_normal(c) * _envelope(c, sr, 0.005, 0.02)
            low = min(rng.uniform(2500, 5000), 0.4 * sr)
            sos = signal.butter(2, [low, min(2.0 * low, 0.45 * sr)], "bandpass", fs=sr, output="sos")
            seg = signal.sosfilt(sos, hiss)[: n - c0] * rng.uniform(0.2, 0.5) * np.std(part)
            out[c0:c0 + len(seg)] += seg
    return _normalise(_radiate(out, sr, 200.0), env_all)


def shout(rng: np.random.Generator, sr: int) -> np.ndarray:
    """A cheer: "ah", "hey", "yeah", "oh" at a raised pitch (F0 140-750 Hz), loud and
    breathy; some are short bursts or repeated syllables.

    Parameters
    ----------
    rng : numpy.random.Generator
        Chooses the speaker and every detail.
    sr : int
        Sample rate, Hz.

    Returns
    -------
    ndarray, shape (n,), float32, RMS 1 while sounding; n <= MAX_GRAIN_S * sr.
    """
    who = _speaker(rng, men=0.65)
    # Many cheers are short bursts ("yes!", "hey!"), the rest held; the bursts are what
    # makes a roar flicker from second to second.
    n = _length(rng, sr, 0.2, 0.5) if rng.random() < 0.4 else _length(rng, sr, 0.5, 1.8)
    f0 = who.f0 * rng.uniform(1.8, 2.8) * _contour(n, [(0.0, 0.85), (0.1, 1.0), (0.7, rng.uniform(0.9, 1.05)), (1.0, 0.85)])
    f0 = np.clip(f0 * _wobble(rng, n, sr, rate_hz=8.0, depth=0.03), 140, 750)
    vowels = [["a"], ["a"], ["ae"], ["e", "i"], ["i", "e", "a"], ["o"], ["uh"], ["a", "o"]][int(rng.integers(8))]
    out = _vocal(rng, sr, f0, vowels, who.scale, shout=rng.uniform(0.6, 1.0), tilt_db=rng.uniform(5, 8),
                 breath=rng.uniform(0.25, 0.5), attack_s=rng.uniform(0.03, 0.12), release_s=rng.uniform(0.15, 0.4),
                 highpass_hz=450.0)
    if rng.random() < 0.45:  # "yeah-yeah-yeah", "come on!": a repeated syllable, 2.5-5 a second
        t = np.arange(n) / sr
        pulse = 0.5 - 0.5 * np.cos(2 * np.pi * rng.uniform(2.5, 5.0) * t)
        out = _normalise(out * (1.0 - rng.uniform(0.6, 0.9) * pulse))
    return out


def scream(rng: np.random.Generator, sr: int) -> np.ndarray:
    """A high scream of delight ("ee!", "ah!"): mostly women and children, F0 250-950 Hz.

    Parameters
    ----------
    rng : numpy.random.Generator
        Chooses the speaker and every detail.
    sr : int
        Sample rate, Hz.

    Returns
    -------
    ndarray, shape (n,), float32, RMS 1 while sounding; n <= MAX_GRAIN_S * sr.
    """
    who = _speaker(rng, men=0.25)
    n = _length(rng, sr, 0.3, 1.2)
    base = who.f0 * rng.uniform(2.2, 3.2)
    f0 = base * _contour(n, [(0.0, 0.9), (0.15, 1.0), (1.0, 0.92)]) * _wobble(rng, n, sr, rate_hz=10, depth=0.03)
    f0 = np.clip(f0, 250, 950)
    vowels = [["i"], ["a"], ["ae"], ["i", "a"]][int(rng.integers(4))]
    return _vocal(rng, sr, f0, vowels, who.scale, shout=1.0, tilt_db=rng.uniform(4, 7), breath=rng.uniform(0.3, 0.5),
                  attack_s=0.03, release_s=rng.uniform(0.1, 0.3), highpass_hz=500.0)


def ooh(rng: np.random.Generator, sr: int) -> np.ndarray:
    """The "ooooh" of a near miss or of anticipation: "oh" to "oo", pitch rising then falling.

    Parameters
    ----------
    rng : numpy.random.Generator
        Chooses the speaker and every detail.
    sr : int
        Sample rate, Hz.

    Returns
    -------
    ndarray, shape (n,), float32, RMS 1 while sounding; n <= MAX_GRAIN_S * sr.
    """
    who = _speaker(rng)
    n = _length(rng, sr, 0.9, 2.2)
    peak = rng.uniform(0.35, 0.55)
    f0 = who.f0 * rng.uniform(1.3, 1.8) * _contour(n, [(0.0, 0.85), (peak, 1.15), (1.0, 0.75)])
    f0 = f0 * _wobble(rng, n, sr, rate_hz=6.0, depth=0.025)
    return _vocal(rng, sr, f0, ["o", "u"], who.scale, shout=rng.uniform(0.2, 0.6), tilt_db=rng.uniform(8, 11),
                  breath=rng.uniform(0.15, 0.3), attack_s=rng.uniform(0.12, 0.3), release_s=rng.uniform(0.3, 0.6))


def groan(rng: np.random.Generator, sr: int) -> np.ndarray:
    """Disappointment: "aww", "oh no", pitch falling by a quarter to a third.

    Parameters
    ----------
    rng : numpy.random.Generator
        Chooses the speaker and every detail.
    sr : int
        Sample rate, Hz.

    Returns
    -------
    ndarray, shape (n,), float32, RMS 1 while sounding; n <= MAX_GRAIN_S * sr.
    """
    who = _speaker(rng)
    n = _length(rng, sr, 0.6, 1.6)
    f0 = who.f0 * rng.uniform(1.1, 1.5) * _contour(n, [(0.0, 1.05), (0.15, 1.0), (1.0, rng.uniform(0.6, 0.75))])
    f0 = f0 * _wobble(rng, n, sr, rate_hz=6.0, depth=0.025)
    vowels = [["o"], ["uh"], ["o", "u"], ["a", "o"]][int(rng.integers(4))]
    return _vocal(rng, sr, f0, vowels, who.scale, shout=rng.uniform(0.1, 0.4), tilt_db=rng.uniform(10, 13),
                  breath=rng.uniform(0.2, 0.35), attack_s=0.06, release_s=rng.uniform(0.25, 0.5))


def boo(rng: np.random.Generator, sr: int) -> np.ndarray:
    """A boo: a low, dark, sustained "oo" (F0 90-300 Hz, steep spectral tilt), slowly swelling.

    Parameters
    ----------
    rng : numpy.random.Generator
        Chooses the speaker and every detail.
    sr : int
        Sample rate, Hz.

    Returns
    -------
    ndarray, shape (n,), float32, RMS 1 while sounding; n <= MAX_GRAIN_S * sr.
    """
    who = _speaker(rng, men=0.8)
    n = _length(rng, sr, 0.8, 2.4)
    f0 = who.f0 * rng.uniform(1.05, 1.45) * _contour(n, [(0.0, 0.95), (0.2, 1.0), (1.0, rng.uniform(0.85, 0.98))])
    f0 = f0 * _wobble(rng, n, sr, rate_hz=4.0, depth=0.02)
    vowels = [["u"], ["u"], ["o", "u"]][int(rng.integers(3))]
    return _vocal(rng, sr, f0, vowels, who.scale, shout=rng.uniform(0.0, 0.3), tilt_db=rng.uniform(11, 14),
                  breath=rng.uniform(0.05, 0.15), attack_s=rng.uniform(0.12, 0.25), release_s=rng.uniform(0.2, 0.4))


def sung(rng: np.random.Generator, sr: int, *, f0: float, length_s: float, vowels: list[str], scale: float,
         consonant: bool) -> np.ndarray:
    """One voice singing one note of a chant.

    Parameters
    ----------
    f0 : float
        Target pitch, Hz (the voice scoops up to it from a semitone below).
    length_s : float
        Note length, s (at most :data:`MAX_GRAIN_S`).
    vowels : list of str
        The syllable's vowel(s), keys of :data:`VOWELS`.
    consonant : bool
        Start with a short hiss (a consonant), which sharpens the onset.

    Returns
    -------
    ndarray, shape (round(length_s * sr),), float32, RMS 1.
    """
    n = int(min(length_s, MAX_GRAIN_S) * sr)
    scoop = _contour(n, [(0.0, 0.94), (min(0.5, 0.07 / max(length_s, 0.1)), 1.0), (1.0, 0.99)])
    f0_track = f0 * scoop * _wobble(rng, n, sr, rate_hz=7.0, depth=0.015)
    out = _vocal(rng, sr, f0_track, vowels, scale, shout=0.7, tilt_db=rng.uniform(6, 9), breath=0.3,
                 attack_s=0.025, release_s=min(0.12, 0.3 * length_s)).astype(np.float64)
    if consonant:
        c = int(0.04 * sr)
        hiss = rng.standard_normal(c) * _envelope(c, sr, 0.003, 0.03)
        sos = signal.butter(2, min(3500.0, 0.45 * sr), "highpass", fs=sr, output="sos")
        out[: min(c, n)] += 0.8 * signal.sosfilt(sos, hiss)[:n]
    return out.astype(np.float32)


# --- claps and whistles ------------------------------------------------------------


def clap(rng: np.random.Generator, sr: int) -> np.ndarray:
    """One hand clap: a 1 ms rise and a 5-12 ms decay of noise band-passed around 0.8-2.5 kHz.

    Parameters
    ----------
    rng : numpy.random.Generator
        Chooses the speaker and every detail.
    sr : int
        Sample rate, Hz.

    Returns
    -------
    ndarray, shape (n,), float32, RMS 1 while sounding; n <= MAX_GRAIN_S * sr.
    """
    n = int(0.045 * sr)
    t = np.arange(n) / sr
    env = np.minimum(t / 0.001, 1.0) * np.exp(-t / rng.uniform(0.005, 0.012))
    centre = rng.uniform(800, 2500)
    sos = signal.butter(2, [centre / 1.8, min(centre * 1.8, 0.45 * sr)], "bandpass", fs=sr, output="sos")
    burst = signal.sosfilt(sos, rng.standard_normal(n) * env)
    # The cupped hands ring briefly at a low resonance, which gives claps their body.
    body = formant_filter(rng.standard_normal(n) * env, sr, (rng.uniform(300, 700),), np.array([120.0]))
    return _normalise(burst + 0.3 * body, env / env.max())


def whistle(rng: np.random.Generator, sr: int) -> np.ndarray:
    """A fingers-in-mouth whistle: a narrow 2-4 kHz tone with 4.5-7.5 Hz vibrato, steady,
    rising or the two-note "wolf" shape, with a little breath around it.

    Parameters
    ----------
    rng : numpy.random.Generator
        Chooses the speaker and every detail.
    sr : int
        Sample rate, Hz.

    Returns
    -------
    ndarray, shape (n,), float32, RMS 1 while sounding; n <= MAX_GRAIN_S * sr.
    """
    n = _length(rng, sr, 0.3, 1.5)
    base = rng.uniform(2000, 3800)
    shape = int(rng.integers(3))
    if shape == 0:
        glide = _contour(n, [(0.0, 0.92), (0.08, 1.0), (1.0, 0.98)])
    elif shape == 1:
        glide = _contour(n, [(0.0, 0.8), (0.6, 1.08), (1.0, 1.1)])
    else:
        glide = _contour(n, [(0.0, 0.85), (0.3, 1.1), (0.45, 0.8), (0.55, 0.82), (1.0, 1.05)])
    t = np.arange(n) / sr
    vibrato = 1.0 + rng.uniform(0.005, 0.025) * np.sin(2 * np.pi * rng.uniform(4.5, 7.5) * t + rng.uniform(0, 2 * np.pi))
    freq = np.minimum(base * glide * vibrato, 0.45 * sr)
    phase = 2 * np.pi * np.cumsum(freq) / sr
    # Breath: low-passed noise ring-modulated up to the tone, so it hugs the pitch.
    breath = signal.sosfilt(signal.butter(2, 150, fs=sr, output="sos"), rng.standard_normal(n)) * 8
    tone = np.sin(phase) + 0.06 * np.sin(2 * phase) + 0.15 * breath * np.sin(phase + 1.0)
    env = _envelope(n, sr, rng.uniform(0.01, 0.04), rng.uniform(0.03, 0.1)) * _wobble(rng, n, sr, rate_hz=15, depth=0.1)
    return _normalise(tone * env, env)


def referee_whistle(sr: int, blasts: tuple[float, ...] = (0.7,)) -> np.ndarray:
    """The referee's pea whistle: ~3.4 kHz with the pea's 35 Hz rattle, one tone per
    entry of ``blasts`` (seconds each, 0.25 s apart)."""
    rng = np.random.default_rng(1234)
    parts = []
    for length in blasts:
        n = int(length * sr)
        t = np.arange(n) / sr
        rattle = np.sin(2 * np.pi * 35.0 * t)
        freq = np.minimum(3400.0 * (1 + 0.02 * rattle), 0.45 * sr)
        phase = 2 * np.pi * np.cumsum(freq) / sr
        tone = (np.sin(phase) + 0.25 * np.sin(2 * phase)) * (0.6 + 0.4 * rattle)
        parts.append(tone * _envelope(n, sr, 0.01, 0.04) + 0.02 * rng.standard_normal(n))
        parts.append(np.zeros(int(0.25 * sr)))
    return _normalise(np.concatenate(parts[:-1]))


# --- the bank ----------------------------------------------------------------------

# How many different grains of each kind a bank holds: enough that repeats blur in a
# dense crowd, few enough that building the bank takes about a second at 48 kHz.
BANK_SIZES: dict[str, int] = {
    "talk": 56, "shout": 96, "scream": 24, "ooh": 32, "groan": 32, "boo": 40, "whistle": 32, "clap": 64,
}
_MAKERS: dict[str, Callable[[np.random.Generator, int], np.ndarray]] = {
    "talk": talk, "shout": shout, "scream": scream, "ooh": ooh, "groan": groan, "boo": boo,
    "whistle": whistle, "clap": clap,
}


@dataclass(frozen=True)
class GrainBank:
    """Grains per layer name; each a float32 array, RMS 1, at most MAX_GRAIN_S long."""

    sample_rate: int
    grains: dict[str, tuple[np.ndarray, ...]]


@lru_cache(maxsize=2)
def grain_bank(seed: int, sample_rate: int) -> GrainBank:
    """The grains of one seed at one sample rate (cached: building one takes ~1 s at 48 kHz)."""
    grains = {}
    for layer_id, (layer, count) in enumerate(BANK_SIZES.items()):
        rng = np.random.default_rng([seed, 7_000 + layer_id])
        grains[layer] = tuple(_MAKERS[layer](rng, sample_rate) for _ in range(count))
    return GrainBank(sample_rate=sample_rate, grains=grains)
