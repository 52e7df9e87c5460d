"""The training set: feature windows with labels, from the synthetic stadium and/or clips.

**Synthetic matches** (:func:`match_windows`). A random match script is rendered at 48 kHz
mono, quantised to 16 bits like a venue encoder's frames, cut into 100 ms frames stamped
with the script's match clock, and analysed by the live :class:`~streams.windows.CrowdAnalyzer`.
Every window is labelled by :func:`producers.stadium.labels.window_labels` from the plan
the audio was rendered from. Three views of each match:

* ``match``: the whole match as the live worker hears it (the baseline warms up);
* ``match-eq``: the whole match again as a real recording hears a crowd
  (:func:`~streams.training.augment.real_microphone`), its formant region lifted or dipped
  (:func:`~streams.training.augment.formant_eq`), through another microphone
  (:func:`~streams.training.augment.microphone`: gain, low cut, treble roll-off or lift, and
  half of the time a nearer, flickering crowd);
* ``clip``: short excerpts (8-20 s, many starting just before or during a moment) analysed
  from a cold start — what ``crowdsound analyze`` sees in a user's recording, where the
  baseline has not heard the crowd before — each heard as a real recording, through its own
  microphone, with
  recordists' fades, and half of them played faster so every voice is higher
  (:func:`~streams.training.augment.higher`; their labels are stretched to match).

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
from streams.training.augment import SAMPLE_RATE, fades, formant_eq, higher, microphone, quantise, real_microphone
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
        labels = window_labels(plan, starts, int(round(spec.length_ms * speed)), by_sound=True)
        return Dataset(
            features=np.stack([w.features for w in windows]).astype(np.float32),
            states=np.array([STATES.index(lab.state) for lab in labels], dtype=np.int64),
            arousal=np.array([lab.arousal for lab in labels], dtype=np.float32),
            valence=np.array([lab.valence for lab in labels], dtype=np.float32),
            groups=[group] * len(windows), views=[view] * len(windows),
        )

    def period_offset(window) -> int:
        return (script.period_start_ms(window.start.period) or 0) + window.start.ms

    parts.append(labelled(_analyse(quantise(audio), clocks, spec), period_offset, "match"))
    parts.append(labelled(_analyse(quantise(microphone(rng, formant_eq(rng, real_microphone(rng, audio)))), clocks, spec),
                          period_offset, "match-eq"))
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
            excerpt = higher(excerpt, speed)
        excerpt = quantise(fades(rng, microphone(rng, real_microphone(rng, excerpt))))
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
