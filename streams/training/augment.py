"""What happens to crowd sound between the stands and the model: microphones, recorders, codecs.

Every function takes mono float64 audio at :data:`SAMPLE_RATE` (full scale 1.0) and a seeded
``numpy.random.Generator`` and returns new audio of the same length (unless it says
otherwise). The training set runs its recordings — synthetic matches and real clips alike —
through :func:`recording_chain`, so the model learns what a crowd sounds like and not what
one microphone, one gain or one recorder does to it:

* :func:`real_microphone` — the synthetic stadium as real crowd recordings hear a crowd
  (less of the voices' fundamentals, more presence);
* :func:`microphone` — a gain, a low cut, a treble roll-off or lift, sometimes a nearer,
  flickering crowd (:func:`nearer`);
* :func:`formant_eq` — a lifted or dipped 0.6-1.2 kHz region (a bright stand, an EQ'd bed);
* :func:`band_limit` — a 16 or 22.05 kHz broadcast feed or an MP3/AAC decoder: nothing above
  7-11 kHz;
* :func:`overdrive` — a recording clipped at the converter (hard) or by a limiter (soft);
* :func:`fades` — a recordist's fade in or out;
* :func:`higher` — the crowd played faster: higher voices (women and children), quicker
  reactions (changes the length).

Deterministic for the generator's state.
"""

from __future__ import annotations

import numpy as np

__all__ = ["SAMPLE_RATE", "band_limit", "fades", "formant_eq", "higher", "microphone", "nearer", "overdrive",
           "peaking", "quantise", "real_microphone", "recording_chain"]

SAMPLE_RATE = 48_000


def nearer(rng: np.random.Generator, audio: np.ndarray) -> np.ndarray:
    """``audio`` as a smaller or nearer crowd sounds. Fewer voices reach the microphone,
    so the energy in each part of the spectrum fluctuates more from moment to moment (the
    fewer the sources, the larger the random fluctuation of their sum). Modelled as a
    random gain on the short-time spectrum: smoothed Gaussian noise in dB (3-9 dB spread,
    correlation time 1/12-1/4 s, aperiodic so it adds no rhythm), independent in 8-32 bands
    from 100 Hz to 12 kHz. The synthetic stands are dense and reverberant; real recordings
    flicker more (higher spectral flux, level fluctuation and spectral peaks)."""
    from scipy import signal
    from scipy.ndimage import gaussian_filter1d

    nper = 1024
    freqs, _, spectrum = signal.stft(audio.astype(np.float32), fs=SAMPLE_RATE, nperseg=nper, noverlap=nper // 2,
                                     boundary="even")
    frames = spectrum.shape[1]
    hop_s = (nper // 2) / SAMPLE_RATE
    rate = float(rng.uniform(4.0, 12.0))
    depth_db = float(rng.uniform(3.0, 9.0))
    n_bands = int(rng.integers(8, 33))
    sigma = 1.0 / (rate * hop_s) / 2.0  # frames
    noise = gaussian_filter1d(rng.standard_normal((frames, n_bands)), sigma, axis=0, mode="wrap")
    over_time = (noise / max(float(noise.std()), 1e-9)).astype(np.float32)  # (frames, bands), unit spread
    band_pos = np.interp(np.log(np.maximum(freqs, 50.0)), np.linspace(np.log(100.0), np.log(12_000.0), n_bands),
                         np.arange(n_bands))
    low = np.floor(band_pos).astype(int).clip(0, n_bands - 1)
    high = np.minimum(low + 1, n_bands - 1)
    frac = (band_pos - low).astype(np.float32)
    log_gain = over_time[:, low] * (1 - frac) + over_time[:, high] * frac  # (frames, freqs)
    spectrum *= np.power(np.float32(10.0), np.float32(depth_db / 20) * log_gain.T)
    _, out = signal.istft(spectrum, fs=SAMPLE_RATE, nperseg=nper, noverlap=nper // 2, boundary=True)
    out = out.astype(np.float64)
    return out[: len(audio)] if len(out) >= len(audio) else np.pad(out, (0, len(audio) - len(out)))


def higher(audio: np.ndarray, speed: float) -> np.ndarray:
    """``audio`` played ``speed`` times faster: every voice higher (by 8 semitones for 1.6),
    as a crowd with more women and children, or shriller screams, sounds — and every
    reaction that much quicker. The synthetic voices are mostly men (F0 90-300 Hz). The
    result is ``speed`` times shorter."""
    import soxr

    return soxr.resample(audio.astype(np.float64), SAMPLE_RATE, int(round(SAMPLE_RATE / speed)))


def fades(rng: np.random.Generator, audio: np.ndarray) -> np.ndarray:
    """A recordist's fades: half of the clips fade in (0.2-2.5 s), half fade out (0.3-4 s),
    in dB (a straight line from -40 dB). The crowd's state does not change with them."""
    out = audio.copy()
    for end in ("in", "out"):
        if rng.random() < 0.5:
            length = min(len(out), int(rng.uniform(0.2, 2.5 if end == "in" else 4.0) * SAMPLE_RATE))
            ramp = 10 ** (np.linspace(-40.0, 0.0, length) / 20)
            if end == "in":
                out[:length] *= ramp
            else:
                out[len(out) - length:] *= ramp[::-1]
    return out


def microphone(rng: np.random.Generator, audio: np.ndarray, *, gain_db: tuple[float, float] = (-14.0, 4.0),
               flicker: float = 0.5) -> np.ndarray:
    """``audio`` through another microphone and recorder: a gain drawn from ``gain_db``;
    most of the time a different colour — a low cut (6 or 12 dB/octave from 80-600 Hz, as
    on field recorders, phones and broadcast crowd microphones), a treble roll-off (from
    2.5-10 kHz) or a treble lift (+4..+14 dB above 2-6 kHz); and with probability
    ``flicker`` a nearer, flickering crowd (:func:`nearer`)."""
    from scipy import signal

    out = audio.astype(np.float64)
    if rng.random() < flicker:
        out = nearer(rng, out)
    choice = rng.random()
    if choice < 0.65:  # low cut
        sos = signal.butter(int(rng.integers(1, 3)), float(np.exp(rng.uniform(np.log(80), np.log(600)))), "highpass",
                            fs=SAMPLE_RATE, output="sos")
        out = signal.sosfilt(sos, out)
    treble = rng.random()
    if treble < 0.3:  # treble roll-off: a duller capsule, or further away
        sos = signal.butter(int(rng.integers(1, 3)), float(np.exp(rng.uniform(np.log(2500), np.log(10_000)))),
                            "lowpass", fs=SAMPLE_RATE, output="sos")
        out = signal.sosfilt(sos, out)
    elif treble < 0.65:  # treble lift: a brighter capsule, or closer (+4..+14 dB above 2-6 kHz)
        sos = signal.butter(1, float(np.exp(rng.uniform(np.log(2000), np.log(6000)))), "highpass", fs=SAMPLE_RATE,
                            output="sos")
        out = out + (10 ** (float(rng.uniform(4.0, 14.0)) / 20) - 1.0) * signal.sosfilt(sos, out)
    return out * 10 ** (float(rng.uniform(*gain_db)) / 20)


def real_microphone(rng: np.random.Generator, audio: np.ndarray) -> np.ndarray:
    """The synthetic stadium as real crowd recordings hear a crowd: a low cut (12 dB/octave
    below 280-420 Hz) and a presence lift (+0..+6 dB above 1.2-2 kHz).

    Measured on data/real-crowd: against the synthetic stands, real recordings of the same
    states (calm beds, "ooh"s, goal roars) hold 6-26 dB less at 100-320 Hz and 4-10 dB more
    at 1.6-6 kHz; their energy gathers where shouted vowels have their first formant. The
    stadium's voices carry too much of their fundamentals, so a model that learned their
    spectrum alone hears every real crowd as roaring (its vocal effort, 600-1200 Hz over
    160-320 Hz, is ~10 dB higher than the synthetic crowd's in the same state)."""
    from scipy import signal

    low_cut = signal.butter(2, float(rng.uniform(280.0, 420.0)), "highpass", fs=SAMPLE_RATE, output="sos")
    out = signal.sosfilt(low_cut, audio.astype(np.float64))
    presence = signal.butter(1, float(rng.uniform(1200.0, 2000.0)), "highpass", fs=SAMPLE_RATE, output="sos")
    return out + (10 ** (float(rng.uniform(0.0, 6.0)) / 20) - 1.0) * signal.sosfilt(presence, out)


def peaking(audio: np.ndarray, centre_hz: float, gain_db: float, q: float = 1.0) -> np.ndarray:
    """A peaking equaliser (RBJ cookbook biquad): ``gain_db`` around ``centre_hz``."""
    from scipy import signal

    a = 10 ** (gain_db / 40)
    w0 = 2 * np.pi * centre_hz / SAMPLE_RATE
    alpha = np.sin(w0) / (2 * q)
    b = np.array([1 + alpha * a, -2 * np.cos(w0), 1 - alpha * a])
    den = np.array([1 + alpha / a, -2 * np.cos(w0), 1 - alpha / a])
    return signal.lfilter(b / den[0], den / den[0], audio)


def formant_eq(rng: np.random.Generator, audio: np.ndarray) -> np.ndarray:
    """A microphone, room or mixing desk that lifts or dips the 0.6-1.2 kHz region (-4..+8 dB):
    what a crowd's vocal effort is measured in. Without it, a steady crowd that merely
    *sounds* effortful through some microphone (a bright stand, an EQ'd broadcast bed) is
    never heard as calm in training, and a model learns the microphone, not the crowd's
    change from its usual self."""
    return peaking(audio, float(rng.uniform(600.0, 1200.0)), float(rng.uniform(-4.0, 8.0)), q=0.9)


def band_limit(rng: np.random.Generator, audio: np.ndarray) -> np.ndarray:
    """``audio`` as it comes out of a 16 kHz or 22.05 kHz feed, or an MP3/AAC decoder at a
    low bit rate: resampled down and back up, so nothing is left above 7-11 kHz."""
    import soxr

    low_rate = int(rng.choice([16_000, 22_050, 24_000]))
    down = soxr.resample(audio.astype(np.float64), SAMPLE_RATE, low_rate)
    up = soxr.resample(down, low_rate, SAMPLE_RATE)
    return up[: len(audio)] if len(up) >= len(audio) else np.pad(up, (0, len(audio) - len(up)))


def overdrive(rng: np.random.Generator, audio: np.ndarray) -> np.ndarray:
    """``audio`` driven 3-12 dB into full scale: hard-clipped at the converter, or squashed
    by a limiter (tanh), as loud crowd recordings often are."""
    peak = float(np.max(np.abs(audio))) or 1.0
    driven = audio / peak * 10 ** (float(rng.uniform(3.0, 12.0)) / 20)
    shaped = np.clip(driven, -1.0, 1.0) if rng.random() < 0.5 else np.tanh(driven)
    return shaped * peak


def quantise(audio: np.ndarray) -> np.ndarray:
    """On the 16-bit grid, clipped at full scale: the frames a venue encoder sends."""
    return np.clip(np.rint(audio * 32768.0), -32768, 32767) / 32768.0


def recording_chain(rng: np.random.Generator, audio: np.ndarray, *, gain_db: tuple[float, float] = (-20.0, 6.0),
                    flicker: float = 0.3) -> np.ndarray:
    """A random microphone (:func:`microphone`, gain drawn from ``gain_db``), then with some
    probability a lifted or dipped formant region (50 %), a band-limited feed (30 %) and an
    overdriven recorder (10 %), quantised to 16 bits: one real-world way of hearing ``audio``."""
    out = microphone(rng, audio, gain_db=gain_db, flicker=flicker)
    if rng.random() < 0.5:
        out = formant_eq(rng, out)
    if rng.random() < 0.3:
        out = band_limit(rng, out)
    if rng.random() < 0.1:
        out = overdrive(rng, out)
    return quantise(out)
