"""``crowdsound model crossval LABEL...``: how well the model hears recordings of a state it
was not taught by, each recording of the label left out in turn.

One held-out recording of a state is an anecdote. The repository has four real recordings of
booing: three teach and one examines, and what that one says is mostly about that recording.
Cross-validation by recording asks every recording of the label the same question: for each
(from the training folder and from the held-out one) a model is taught by everything else
the training would use, the label's other held-out recordings included and the held-out
folder's other labels never, and then hears the left-out recording alone from a cold start,
as ``crowdsound model evaluate`` does. A recording is a group (:func:`recording_group`): two
excerpts of one recording are left out together.

The synthetic matches are rendered once and teach every fold alike (less the held-out
matches, as in ``model train``); each fold's real recordings are heard again, since their
live streams mix the recordings they are given. One training per recording: with the
defaults about 45 s each on 2 cores, after the matches.
"""

from __future__ import annotations

import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from infra.errors import CrowdsoundError
from infra.progress import Progress
from streams.emotion import META_VERSION, STATES, EmotionModel
from streams.training.dataset import Dataset
from streams.training.evaluate import hear_alone, shown_folder, wanted_states
from streams.training.real import LABELS, LabelledClip, read_clip_folder, real_windows
from streams.training.train import TrainOptions, build_synthetic, fit, match_seeds, split_matches

__all__ = ["CrossValidation", "FoldResult", "LabelResult", "cross_validate", "folds", "format_cross_validation"]


@dataclass
class FoldResult:
    """One recording left out: how the model taught without it heard it."""

    recording: str  # its group
    files: list[str]  # relative to the repository when inside it
    windows: int  # windows labelled with the label's own state
    hits: int  # of those, heard in one of the wanted states
    heard: dict[str, int]  # state -> windows, over those windows
    arousal: float  # mean over all its windows

    @property
    def majority(self) -> str:
        return max(STATES, key=lambda s: self.heard.get(s, 0)) if self.heard else "-"

    @property
    def right(self) -> bool:
        return self.hits * 2 > self.windows


@dataclass
class LabelResult:
    label: str
    wanted: tuple[str, ...]
    folds: list[FoldResult]

    @property
    def hits(self) -> int:
        return sum(f.hits for f in self.folds)

    @property
    def windows(self) -> int:
        return sum(f.windows for f in self.folds)

    @property
    def summary(self) -> str:
        return (f"{self.label}: heard as {' or '.join(self.wanted)} in {self.hits} of {self.windows} windows, "
                f"{sum(f.right for f in self.folds)} of {len(self.folds)} recordings mostly, each left out in turn")


@dataclass
class CrossValidation:
    labels: list[LabelResult]
    matches: int
    recordings: int  # real recordings the folds draw their teachers from
    seconds: float

    def as_dict(self) -> dict[str, Any]:
        return {
            "matches": self.matches, "recordings": self.recordings, "seconds": round(self.seconds, 1),
            "labels": [{"label": r.label, "wanted": list(r.wanted), "hits": r.hits, "windows": r.windows,
                        "summary": r.summary,
                        "recordings": [{"recording": f.recording, "files": f.files, "windows": f.windows,
                                        "hits": f.hits, "heard": f.heard, "majority": f.majority,
                                        "arousal": f.arousal} for f in r.folds]}
                       for r in self.labels],
        }


def folds(label: str, trained: Sequence[LabelledClip],
          heldout: Sequence[LabelledClip]) -> list[tuple[str, list[LabelledClip], list[LabelledClip]]]:
    """(recording, teachers, left out) for every recording of ``label`` in ``trained`` and
    ``heldout``: the teachers are ``trained`` and the label's held-out clips, less every clip
    of the left-out recording."""
    pool = [c for c in (*trained, *heldout) if c.label == label]
    teachers = [*trained, *(c for c in heldout if c.label == label)]
    return [(group, [c for c in teachers if c.group != group], [c for c in pool if c.group == group])
            for group in sorted({c.group for c in pool})]


def _fold_result(group: str, label: str, left_out: list[LabelledClip], model: EmotionModel) -> FoldResult:
    own, wanted = LABELS[label][0], wanted_states(label)
    results = [hear_alone(clip, model.predict) for clip in left_out]
    heard = Counter(state for clip in results
                    for state, expected in zip(clip.states, clip.expected, strict=True) if expected == own)
    windows = sum(heard.values())
    arousal = [a for clip in results for a in clip.window_arousal]
    return FoldResult(recording=group, files=[shown_folder(c.path) for c in left_out], windows=windows,
                      hits=sum(n for state, n in heard.items() if state in wanted), heard=dict(heard),
                      arousal=float(np.mean(arousal)) if arousal else float("nan"))


def cross_validate(options: TrainOptions, labels: Sequence[str]) -> CrossValidation:
    """Leave each recording of each of ``labels`` out in turn (see the module doc)."""
    from streams.training.export import export_onnx

    options.check()
    unknown = [label for label in labels if label not in LABELS]
    if unknown:
        raise CrowdsoundError(f"not a label: {', '.join(unknown)}; use {', '.join(LABELS)}")
    started = time.monotonic()
    trained = [c for folder in (options.real, options.clips) if folder is not None for c in read_clip_folder(folder)]
    heldout = read_clip_folder(options.heldout) if options.heldout is not None else []
    plan = [(label, *fold) for label in dict.fromkeys(labels) for fold in folds(label, trained, heldout)]
    if not plan:
        raise CrowdsoundError(f"no recordings labelled {' or '.join(labels)} in the training or held-out folders")
    synthetic = build_synthetic(options, match_seeds(options.seed, options.matches))
    if len(synthetic):
        held_mask, _ = split_matches(synthetic, options.seed, options.holdout)
        synthetic = synthetic.subset(~held_mask)
    results = {label: LabelResult(label, wanted_states(label), []) for label in dict.fromkeys(labels)}
    progress = Progress(len(plan), "teaching a model per left-out recording", unit="recordings",
                        enabled=options.progress)
    progress.update(0)
    with tempfile.TemporaryDirectory(prefix="crowdsound-crossval-") as tmp:
        for done, (label, group, teachers, left_out) in enumerate(plan, start=1):
            real = real_windows(teachers, seed=options.seed, copies=options.copies, streams=options.streams)
            train_set = Dataset.concat([synthetic, real])
            if len(train_set) < 10:
                raise CrowdsoundError(f"only {len(train_set)} windows to train on without {group}: "
                                      "give more matches or recordings")
            path = Path(tmp) / f"fold-{done}.onnx"
            export_onnx(fit(train_set, options), path, metadata={META_VERSION: f"crossval-without-{group}"})
            results[label].folds.append(_fold_result(group, label, left_out, EmotionModel.load(path)))
            progress.update(done, group)
    progress.close()
    return CrossValidation(labels=list(results.values()), matches=options.matches,
                           recordings=len({c.group for c in (*trained, *heldout)}),
                           seconds=time.monotonic() - started)


def format_cross_validation(cv: CrossValidation) -> str:
    lines = [f"cross-validation by recording: each recording left out in turn, the model taught by the rest "
             f"({cv.matches} synthetic matches; {cv.recordings} real recordings in all; {cv.seconds:.0f} s)"]
    for result in cv.labels:
        names = [f.files[0] if len(f.files) == 1 else f"{f.files[0]} (+{len(f.files) - 1})" for f in result.folds]
        width = max(len("left out"), *(len(n) for n in names))
        lines += ["", result.summary,
                  f"  {'left out':<{width}} {'windows':>7} {'right':>5}  {'heard mostly':<14} {'arousal':>7}"]
        for name, f in zip(names, result.folds, strict=True):
            lines.append(f"  {name:<{width}} {f.windows:>7} {f.hits:>5}  {f.majority:<14} {f.arousal:>7.2f}")
    return "\n".join(lines)
