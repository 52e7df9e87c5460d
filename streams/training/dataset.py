"""The training set: feature windows with labels, from the synthetic stadium and/or clips.

**Synthetic matches** (:func:`match_windows`). A random match script is rendered at 48 kHz
mono, quantised to 16 bits like a venue encoder's frames, cut into 100 ms frames stamped
with the script's match clock, and analysed by the live :class:`~streams.windows.CrowdAnalyzer`.
Every window is labelled by :func:`producers.stadium.labels.window_labels` from the plan
the audio was rendered from. Three views of each match:

* ``match``: the whole match as the live worker hears it (the baseline warms up);
* ``match-eq``: the whole match again through another microphone (:func:`_microphone`:
  gain, low cut, treble roll-off or lift, and half of the time a nearer, flickering crowd);
* ``clip``: short excerpts (8-20 s, many starting just before or during a moment) analysed
  from a cold start — what ``crowdsound analyze`` sees in a user's recording, where the
  baseline has not heard the crowd before — each through its own microphone, with
  recordists' fades, and half of them played faster so every voice is higher
  (:func:`_higher`; their labels are stretched to match).

The augmentations exist because real recordings differ from the synthetic stands: the
real cheering clip in ../shared/data has far less energy below 600 Hz, higher voices, and
more flicker (spectral flux, level fluctuation) than the dense, reverberant synthetic crowd.

**Labelled clips** (:func:`clip_folder_windows`): a folder with one subfolder per
CrowdState (``CALM/``, ``ANGER/``, ... any case) of audio files; every window of a clip
gets its folder's state and that state's typical arousal and valence.

Each window carries a *group* (the match or the clip file) so that the evaluation split
never puts windows of one recording on both sides.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from infra.errors import CrowdsoundError
from schemas.clock import MatchClock, Period
from streams.emotion import STATES
from streams.features import FEATURE_NAMES
from streams.windows import WindowSpec

__all__ = [
    "AUDIO_SUFFIXES",
    "STATE_PROFILE",
    "Dataset",
    "clip_folder_windows",
    "match_windows",
]

# Typical (arousal, valence) of a labelled clip's state, for clips that only have a state.
STATE_PROFILE: dict[str, tuple[float, float]] = {
    "CALM": (0.12, 0.0), "ANTICIPATION": (0.45, 0.15), "EXCITEMENT": (0.6, 0.45), "CELEBRATION": (0.9, 0.75),
    "DISAPPOINTMENT": (0.55, -0.5), "ANGER": (0.7, -0.75), "CHANTING": (0.55, 0.35),
}
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".oga", ".aiff", ".aif", ".mp3")
SAMPLE_RATE = 48_000
FRAME = SAMPLE_RATE // 10  # 100 ms frames, like the venue encoder's default


@dataclass
class Dataset:
    """Windows as rows: features (n, len(FEATURE_NAMES)) float32, the state index, arousal,
    valence, the group (recording) and the view (match, match-eq, clip, user) of each."""

    features: np.ndarray = field(default_factory=lambda: np.zeros((0, len(FEATURE_NAMES)), dtype=np.float32))
    states: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    arousal: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.float32))
    valence: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.float32))
    groups: list[str] = field(default_factory=list)
    views: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.states)

    @classmethod
    def concat(cls, parts: list[Dataset]) -> Dataset:
        parts = [p for p in parts if len(p)]
        if not parts:
            return cls()
        return cls(
            features=np.concatenate([p.features for p in parts]).astype(np.float32),
            states=np.concatenate([p.states for p in parts]),
            arousal=np.concatenate([p.arousal for p in parts]).astype(np.float32),
            valence=np.concatenate([p.valence for p in parts]).astype(np.float32),
            groups=[g for p in parts for g in p.groups],
            views=[v for p in parts for v in p.views],
        )

    def subset(self, mask: np.ndarray) -> Dataset:
        index = np.flatnonzero(mask)
        return Dataset(self.features[index], self.states[index], self.arousal[index], self.valence[index],
                       [self.groups[i] for i in index], [self.views[i] for i in index])


def _nearer(rng: np.random.Generator, audio: np.ndarray) -> np.ndarray:
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


def _higher(audio: np.ndarray, speed: float) -> np.ndarray:
    """``audio`` played ``speed`` times faster: every voice higher (by 8 semitones for 1.6),
    as a crowd with more women and children, or shriller screams, sounds — and every
    reaction that much quicker. The synthetic voices are mostly men (F0 90-300 Hz)."""
    import soxr

    return soxr.resample(audio.astype(np.float64), SAMPLE_RATE, int(round(SAMPLE_RATE / speed)))


def _fades(rng: np.random.Generator, audio: np.ndarray) -> np.ndarray:
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


def _microphone(rng: np.random.Generator, audio: np.ndarray) -> np.ndarray:
    """``audio`` through another microphone and recorder: a gain of -14..+4 dB; most of the
    time a different colour — a low cut (6 or 12 dB/octave from 80-600 Hz, as on field
    recorders and phones), a treble roll-off (from 2.5-10 kHz), or both; and half of the
    time a nearer, flickering crowd (:func:`_nearer`)."""
    from scipy import signal

    out = audio.astype(np.float64)
    if rng.random() < 0.5:
        out = _nearer(rng, out)
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
    gain = 10 ** (float(rng.uniform(-14.0, 4.0)) / 20)
    return out * gain


def _quantise(audio: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(audio * 32768.0), -32768, 32767) / 32768.0


def _analyse(audio: np.ndarray, clocks: list[MatchClock], spec: WindowSpec):
    from streams.windows import CrowdAnalyzer

    analyzer = CrowdAnalyzer(spec)
    windows = []
    for i, clock in enumerate(clocks):
        windows.extend(analyzer.add_frame(clock, audio[i * FRAME:(i + 1) * FRAME], SAMPLE_RATE))
    windows.extend(analyzer.flush())
    return windows


def match_windows(seed: int, *, minutes: float, clips: int = 8, spec: WindowSpec | None = None) -> Dataset:
    """Render, analyse and label training match ``seed`` (see the module doc for the views).

    Deterministic for ``(seed, minutes, clips, spec)``.
    """
    from producers.stadium import render_stadium
    from producers.stadium.labels import label_plan, window_labels
    from streams.training.scripts import random_script

    spec = spec or WindowSpec()
    script = random_script(seed, minutes=minutes)
    audio = np.concatenate([b[:, 0] for b in render_stadium(script, sample_rate=SAMPLE_RATE, block_ms=1000)])
    audio = audio[: len(audio) - len(audio) % FRAME].astype(np.float64)
    timeline = script.timeline()
    clocks = [timeline.clock_at(i * 100) for i in range(len(audio) // FRAME)]
    plan = label_plan(script)
    rng = np.random.default_rng([seed, 31_337])
    group = f"match:{seed}"
    parts = []

    def labelled(windows, offset_of, view: str, *, speed: float = 1.0) -> Dataset:
        starts = [offset_of(w) for w in windows]
        labels = window_labels(plan, starts, int(round(spec.length_ms * speed)))
        return Dataset(
            features=np.stack([w.features for w in windows]).astype(np.float32),
            states=np.array([STATES.index(lab.state) for lab in labels], dtype=np.int64),
            arousal=np.array([lab.arousal for lab in labels], dtype=np.float32),
            valence=np.array([lab.valence for lab in labels], dtype=np.float32),
            groups=[group] * len(windows), views=[view] * len(windows),
        )

    def period_offset(window) -> int:
        return (script.period_start_ms(window.start.period) or 0) + window.start.ms

    parts.append(labelled(_analyse(_quantise(audio), clocks, spec), period_offset, "match"))
    parts.append(labelled(_analyse(_quantise(_microphone(rng, audio)), clocks, spec), period_offset, "match-eq"))
    moments = [m.offset_ms for m in script.moments]
    total_frames = len(audio) // FRAME
    for _ in range(clips):
        length = int(rng.integers(80, 201))  # frames: 8-20 s
        if moments and rng.random() < 0.6:
            centre = int(rng.choice(moments)) // 100 + int(rng.integers(-60, 61))
        else:
            centre = int(rng.integers(0, total_frames))
        first = int(np.clip(centre, 0, max(total_frames - length, 0)))
        excerpt = audio[first * FRAME:(first + length) * FRAME]
        speed = float(rng.uniform(1.1, 1.6)) if rng.random() < 0.5 else 1.0
        if speed != 1.0:
            excerpt = _higher(excerpt, speed)
        excerpt = _quantise(_fades(rng, _microphone(rng, excerpt)))
        clip_clocks = [MatchClock(Period.FIRST_HALF, i * 100) for i in range(len(excerpt) // FRAME)]
        windows = _analyse(excerpt, clip_clocks, spec)
        if windows:
            parts.append(labelled(windows, lambda w, base=first * 100, r=speed: base + int(round(w.start.ms * r)),
                                  "clip", speed=speed))
    return Dataset.concat(parts)


def clip_folder_windows(folder: Path, *, spec: WindowSpec | None = None) -> tuple[Dataset, dict[str, int]]:
    """Windows of a folder of labelled clips: ``folder/<STATE>/<file>``.

    Returns the windows and the number of clips per state.

    Raises
    ------
    CrowdsoundError
        When the folder is missing, a subfolder is not a CrowdState name, or no clip in it
        can be read.
    """
    from streams.analyze import analyze_frames, file_frames

    folder = Path(folder)
    if not folder.is_dir():
        raise CrowdsoundError(f"--clips {folder}: no such folder (expected one subfolder per state: {', '.join(STATES)})")
    parts: list[Dataset] = []
    counts: dict[str, int] = {}
    for sub in sorted(p for p in folder.iterdir() if p.is_dir()):
        state = sub.name.upper()
        if state not in STATES:
            raise CrowdsoundError(f"--clips {folder}: subfolder {sub.name!r} is not a crowd state; use {', '.join(STATES)}")
        arousal, valence = STATE_PROFILE[state]
        for path in sorted(p for p in sub.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES):
            windows = list(analyze_frames(file_frames(path), spec=spec))
            if not windows:
                continue
            n = len(windows)
            parts.append(Dataset(
                features=np.stack([w.features for w in windows]).astype(np.float32),
                states=np.full(n, STATES.index(state), dtype=np.int64),
                arousal=np.full(n, arousal, dtype=np.float32), valence=np.full(n, valence, dtype=np.float32),
                groups=[f"clip:{path.relative_to(folder)}"] * n, views=["user"] * n,
            ))
            counts[state] = counts.get(state, 0) + 1
    if not parts:
        raise CrowdsoundError(f"--clips {folder}: no audio files ({', '.join(AUDIO_SUFFIXES)}) in its state subfolders")
    return Dataset.concat(parts), counts
