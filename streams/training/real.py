"""Real crowd recordings as training data: a folder of labelled clips, heard many ways.

A *clip folder* holds one subfolder per label — a crowd state (``calm``, ``CELEBRATION``,
... any case) or ``applause`` (EXCITEMENT, with applause's warmth) — of audio files
(``AUDIO_SUFFIXES``), and optionally a ``segments.toml`` naming parts of a recording whose
crowd is in another state than its folder says::

    [[segment]]
    file = "celebration/fs494352-sandermotions-goal.wav"   # relative to the folder
    start = 0.0                                            # seconds
    end = 5.5
    state = "skip"                                         # a state, or "skip": not used

Real recordings are few and short, so the training set hears each of them many ways
(:func:`real_windows`):

* ``real-clip``: the clip analysed from a cold start, as ``crowdsound analyze`` hears a
  user's recording — once as it is, then ``copies`` times through a random recording chain
  (:func:`streams.training.augment.recording_chain`: gain -20..+6 dB, EQ, band limits,
  overdrive) from a random offset, so no state hangs on one microphone or one gain;
* ``real-stream``: a live stream built from real audio — a calm bed of 40-70 s
  (:func:`drifting_bed`: pieces of the ``calm`` clips at their own levels and colours, under
  a slow drift, as a real murmur ebbs and swells) with reactions from the other clips laid
  into it at random times and levels, heard through one random chain and analysed as the
  worker analyses a match, so the baseline has warmed up when the first reaction comes. A
  window is the reaction's state where the reaction carries at least twice the bed's
  energy, CALM where it carries under half, and not trained on in between.

Every window carries its recording as *group* (the Freesound id when the file name starts
with one, so two excerpts of one recording are one group), so an evaluation never mixes a
recording's windows into both sides. Deterministic for the seed.
"""

from __future__ import annotations

import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from infra.errors import CrowdsoundError
from schemas.clock import MatchClock, Period
from streams.emotion import STATES
from streams.features import WARM_S
from streams.training.augment import SAMPLE_RATE, higher, peaking, quantise, recording_chain

__all__ = ["AROUSAL_ONLY", "AUDIO_SUFFIXES", "LABELS", "LabelledClip", "looped", "read_clip_folder", "real_windows",
           "recording_group"]

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".oga", ".aiff", ".aif", ".mp3")
FRAME = SAMPLE_RATE // 10

# (state, arousal, valence) of each folder label: what a clip of it typically is, for the
# home crowd. Applause is EXCITEMENT (the synthetic stadium's labels agree) but warmer.
LABELS: dict[str, tuple[str, float, float]] = {
    "calm": ("CALM", 0.12, 0.0),
    "anticipation": ("ANTICIPATION", 0.45, 0.15),
    "excitement": ("EXCITEMENT", 0.65, 0.45),
    "celebration": ("CELEBRATION", 0.9, 0.75),
    "disappointment": ("DISAPPOINTMENT", 0.5, -0.5),
    "anger": ("ANGER", 0.7, -0.75),
    "chanting": ("CHANTING", 0.55, 0.35),
    "applause": ("EXCITEMENT", 0.55, 0.6),
}
_SKIP = "skip"
# Labels that only say how aroused the crowd is (for ``model evaluate``; not trained on).
AROUSAL_ONLY = ("high", "low")


@dataclass(frozen=True)
class LabelledClip:
    """One recording of a clip folder, decoded to mono 48 kHz on the 16-bit grid."""

    path: Path
    label: str  # the folder's label (a key of LABELS)
    audio: np.ndarray
    segments: tuple[tuple[float, float, str], ...]  # (start s, end s, state or "skip")

    @property
    def group(self) -> str:
        return recording_group(self.path)

    def state_between(self, start_s: float, end_s: float) -> str:
        """The state of the stretch ``[start_s, end_s)``: the folder's, or the segment's that
        covers most of it (``"skip"`` when that is a skipped part, or for arousal-only labels)."""
        if self.label in AROUSAL_ONLY:
            return _SKIP
        best, covered = LABELS[self.label][0], 0.0
        for low, high, state in self.segments:
            overlap = min(high, end_s) - max(low, start_s)
            if overlap > covered:
                best, covered = state, overlap
        return best if covered >= 0.5 * (end_s - start_s) else LABELS[self.label][0]


def recording_group(path: Path) -> str:
    """The recording a file comes from: ``real:fs<id>`` for Freesound-named files
    (``fs829454-...-a.wav`` and ``fs829454-...-b.wav`` are one), else the file's stem."""
    stem = path.stem
    head = stem.split("-", 1)[0]
    return f"real:{head}" if head.startswith("fs") and head[2:].isdigit() else f"real:{stem}"


def read_clip_folder(folder: Path | str, *, arousal_only: bool = False) -> list[LabelledClip]:
    """Every clip of a clip folder (see the module doc), sorted by path; with
    ``arousal_only``, ``high/`` and ``low/`` subfolders are read too.

    Raises
    ------
    CrowdsoundError
        When the folder is missing, a subfolder is not a label, a segment is malformed,
        or no clip can be read.
    """
    from streams.analyze import file_frames

    folder = Path(folder)
    if not folder.is_dir():
        raise CrowdsoundError(f"{folder}: no such folder (expected one subfolder per label: {', '.join(LABELS)})")
    segments = _segments(folder)
    labels = (*LABELS, *AROUSAL_ONLY) if arousal_only else tuple(LABELS)
    clips = []
    for sub in sorted(p for p in folder.iterdir() if p.is_dir()):
        label = sub.name.lower()
        if label not in labels:
            raise CrowdsoundError(f"{folder}: subfolder {sub.name!r} is not a label; use {', '.join(labels)}")
        for path in sorted(p for p in sub.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES):
            frames = list(file_frames(path))
            if not frames:
                continue
            clips.append(LabelledClip(path, label, np.concatenate(frames), segments.get(path.relative_to(folder), ())))
    if not clips:
        raise CrowdsoundError(f"{folder}: no audio files ({', '.join(AUDIO_SUFFIXES)}) in its label subfolders")
    return clips


def _segments(folder: Path) -> dict[Path, tuple[tuple[float, float, str], ...]]:
    path = folder / "segments.toml"
    if not path.is_file():
        return {}
    try:
        entries = tomllib.loads(path.read_text(encoding="utf-8")).get("segment", [])
    except tomllib.TOMLDecodeError as exc:
        raise CrowdsoundError(f"{path}: {exc}") from None
    found: dict[Path, list[tuple[float, float, str]]] = {}
    for number, entry in enumerate(entries, start=1):
        try:
            file, start, end, state = Path(entry["file"]), float(entry["start"]), float(entry["end"]), str(entry["state"])
        except (KeyError, TypeError, ValueError):
            raise CrowdsoundError(f"{path}: segment {number} needs file, start, end and state") from None
        if state != _SKIP and state.upper() not in STATES:
            raise CrowdsoundError(f"{path}: segment {number} has state {state!r}; use one of {', '.join(STATES)} "
                                  f"or {_SKIP!r}")
        if not 0 <= start < end:
            raise CrowdsoundError(f"{path}: segment {number} must have 0 <= start < end, got {start}..{end}")
        found.setdefault(file, []).append((start, end, state if state == _SKIP else state.upper()))
    return {file: tuple(sorted(spans)) for file, spans in found.items()}


@dataclass
class _Windows:
    features: list[np.ndarray]
    states: list[int]
    arousal: list[float]
    valence: list[float]
    groups: list[str]
    views: list[str]

    def add(self, features: np.ndarray, state: str, arousal: float, valence: float, group: str, view: str) -> None:
        self.features.append(features)
        self.states.append(STATES.index(state))
        self.arousal.append(arousal)
        self.valence.append(valence)
        self.groups.append(group)
        self.views.append(view)


def _profile(state: str, label: str) -> tuple[float, float]:
    """Arousal and valence of a window in ``state`` from a clip of ``label``."""
    own_state, arousal, valence = LABELS[label]
    if state == own_state:
        return arousal, valence
    return next((a, v) for s, a, v in LABELS.values() if s == state)


def _analyse(audio: np.ndarray, spec):
    from streams.windows import CrowdAnalyzer

    analyzer = CrowdAnalyzer(spec)
    windows = []
    for i in range(0, len(audio) - FRAME + 1, FRAME):
        windows.extend(analyzer.add_frame(MatchClock(Period.FIRST_HALF, i * 100 // FRAME), audio[i:i + FRAME],
                                          SAMPLE_RATE))
    windows.extend(analyzer.flush())
    return windows


def _clip_views(clip: LabelledClip, rng: np.random.Generator, copies: int, spec, out: _Windows) -> None:
    for copy in range(copies + 1):
        audio, offset_s, speed = clip.audio, 0.0, 1.0
        if copy:
            offset = int(rng.integers(0, min(SAMPLE_RATE, max(1, len(audio) - FRAME))))
            offset -= offset % (SAMPLE_RATE // 1000)
            audio, offset_s = audio[offset:], offset / SAMPLE_RATE
            if rng.random() < 0.25:  # a few semitones higher: more women and children
                speed = float(rng.uniform(1.03, 1.2))
                audio = higher(audio, speed)
            audio = recording_chain(rng, audio)
        for window in _analyse(quantise(audio), spec):
            start = offset_s + window.start.ms / 1000 * speed
            end = offset_s + min(window.start.ms + window.length_ms, window.last_frame_ms) / 1000 * speed
            state = clip.state_between(start, end)
            if state != _SKIP:
                out.add(window.features, state, *_profile(state, clip.label), clip.group, "real-clip")


def looped(rng: np.random.Generator, bed: np.ndarray, seconds: float) -> np.ndarray:
    """``bed`` repeated from random points with equal-power crossfades (up to 1 s) until it
    lasts ``seconds``."""
    total = int(seconds * SAMPLE_RATE)
    fade = max(1, min(SAMPLE_RATE, len(bed) // 4))
    ramp = np.linspace(0.0, 1.0, fade)
    out = bed.copy()
    while len(out) < total:
        out = _crossfaded(out, bed[int(rng.integers(0, max(1, len(bed) - 2 * fade))):], ramp)
    return out[:total]


def _crossfaded(out: np.ndarray, piece: np.ndarray, ramp: np.ndarray) -> np.ndarray:
    """``piece`` after ``out`` (changed in place), an equal-power crossfade over ``len(ramp)`` samples."""
    fade = len(ramp)
    out[-fade:] = out[-fade:] * np.sqrt(1.0 - ramp) + piece[:fade] * np.sqrt(ramp)
    return np.concatenate([out, piece[fade:]])


def drifting_bed(rng: np.random.Generator, beds: Sequence[np.ndarray], seconds: float) -> np.ndarray:
    """Calm arena background as it is over minutes, from calm recordings: pieces of them (8-30 s,
    each :func:`looped` from a random point) one after another, each at its own level (-5..+5 dB)
    and colour (the formant region -3..+3 dB: another stand, another part of the crowd), with
    equal-power crossfades of 1 s, under a slow drift of the level (up to +-2 dB over 10-30 s).
    A real crowd's murmur ebbs and swells with nothing happening on the pitch; one recording
    looped is steadier than any real match, and a model taught only by it hears every
    swell of the murmur as a reaction."""
    from scipy.ndimage import gaussian_filter1d

    total = int(seconds * SAMPLE_RATE)
    ramp = np.linspace(0.0, 1.0, SAMPLE_RATE)
    out = None
    while out is None or len(out) < total:
        piece = looped(rng, beds[int(rng.integers(len(beds)))], float(rng.uniform(8.0, 30.0)))
        piece = peaking(piece, float(rng.uniform(600.0, 1200.0)), float(rng.uniform(-3.0, 3.0)), q=0.9)
        piece = piece * 10 ** (float(rng.uniform(-5.0, 5.0)) / 20)
        out = piece if out is None else _crossfaded(out, piece, ramp)
    out = out[:total]
    hops = total // FRAME + 1
    drift = gaussian_filter1d(rng.standard_normal(hops), float(rng.uniform(100.0, 300.0)) / 2.0, mode="wrap")
    drift_db = drift / max(float(np.abs(drift).max()), 1e-9) * float(rng.uniform(0.0, 2.0))
    gain = np.interp(np.arange(total), np.arange(hops) * FRAME, 10 ** (drift_db / 20))
    return out * gain


# Loudness of a reaction laid into a bed, dB of RMS over the bed's: (low, high) by state.
_REACTION_DB = {"ANTICIPATION": (-2.0, 8.0), "DISAPPOINTMENT": (-2.0, 8.0), "CHANTING": (0.0, 8.0),
                "EXCITEMENT": (2.0, 12.0), "CELEBRATION": (6.0, 16.0), "ANGER": (2.0, 12.0)}


# A window of a stream is CALM while the reactions in it carry under half the bed's energy
# (+1.8 dB), the reaction's state from twice the bed's (+4.8 dB); between, not trained on.
_CALM_UNDER, _REACTION_OVER = 0.5, 2.0


def _stream_view(beds: Sequence[LabelledClip], reactions: Sequence[LabelledClip], rng: np.random.Generator, spec,
                 out: _Windows) -> None:
    # The bed mixes every calm recording; its windows are credited to one drawn here.
    bed_clip = beds[int(rng.integers(len(beds)))]
    seconds = float(rng.uniform(40.0, 70.0))
    bed = drifting_bed(rng, [b.audio for b in beds], seconds)
    bed_rms = float(np.sqrt(np.mean(bed ** 2))) or 1e-6
    mix = bed.copy()
    reaction_track = np.zeros_like(bed)
    placed: list[tuple[int, int, LabelledClip]] = []
    at = int(rng.uniform(WARM_S, WARM_S + 10.0) * SAMPLE_RATE)  # the baseline has warmed up on the bed
    while at < len(bed) - 2 * SAMPLE_RATE:
        clip = reactions[int(rng.integers(len(reactions)))]
        audio = clip.audio[: len(bed) - at]
        low, high = _REACTION_DB[LABELS[clip.label][0]]
        rms = float(np.sqrt(np.mean(audio ** 2))) or 1e-6
        audio = audio * (bed_rms / rms) * 10 ** (float(rng.uniform(low, high)) / 20)
        reaction_track[at:at + len(audio)] += audio
        placed.append((at, at + len(audio), clip))
        at += len(audio) + int(rng.uniform(8.0, 20.0) * SAMPLE_RATE)
    mix += reaction_track
    heard = recording_chain(rng, mix, gain_db=(-12.0, 6.0), flicker=0.0)
    for window in _analyse(heard, spec):
        first = window.start.ms * SAMPLE_RATE // 1000
        last = min(window.start.ms + window.length_ms, window.last_frame_ms) * SAMPLE_RATE // 1000
        bed_energy = float(np.sum(bed[first:last] ** 2))
        reaction_energy = float(np.sum(reaction_track[first:last] ** 2))
        state, label, group = "CALM", bed_clip.label, bed_clip.group
        if _CALM_UNDER * bed_energy <= reaction_energy < _REACTION_OVER * bed_energy:
            continue  # the murmur with a faint reaction in it: either label would be a guess
        if reaction_energy >= _REACTION_OVER * bed_energy:
            overlapping = [(min(end, last) - max(begin, first), begin, clip) for begin, end, clip in placed
                           if begin < last and end > first]
            _, begin, clip = max(overlapping, key=lambda item: item[0])
            state = clip.state_between((first - begin) / SAMPLE_RATE, (last - begin) / SAMPLE_RATE)
            label, group = clip.label, clip.group
        if state != _SKIP:
            out.add(window.features, state, *_profile(state, label), group, "real-stream")


def real_windows(clips: Sequence[LabelledClip], *, seed: int, copies: int = 6, streams: int = 40,
                 spec=None):
    """The windows of ``clips`` heard many ways (see the module doc), as a
    :class:`streams.training.dataset.Dataset`. Streams need at least one ``calm`` clip and
    one other; without them there are only clip views."""
    from streams.training.dataset import Dataset
    from streams.windows import WindowSpec

    spec = spec or WindowSpec()
    rng = np.random.default_rng([seed, 4_242])
    out = _Windows([], [], [], [], [], [])
    clips = [c for c in clips if c.label in LABELS]
    for clip in clips:
        _clip_views(clip, rng, copies, spec, out)
    beds = [c for c in clips if c.label == "calm"]
    reactions = [c for c in clips if LABELS[c.label][0] in _REACTION_DB]
    if beds and reactions:
        for _ in range(streams):
            _stream_view(beds, reactions, rng, spec, out)
    if not out.states:
        return Dataset()
    return Dataset(
        features=np.stack(out.features).astype(np.float32), states=np.array(out.states, dtype=np.int64),
        arousal=np.array(out.arousal, dtype=np.float32), valence=np.array(out.valence, dtype=np.float32),
        groups=out.groups, views=out.views,
    )
