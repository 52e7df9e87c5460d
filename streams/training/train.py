"""``crowdsound model train``: data set, split, training, ONNX export, evaluation, model card.

1. Render and analyse ``matches`` random synthetic matches (in ``jobs`` processes) and/or
   read a folder of labelled clips (:mod:`streams.training.dataset`).
2. Split by recording: a seeded draw holds out a share of the matches and of the clips
   of each state; no window of a held-out recording is ever trained on.
3. Train the MLP (:mod:`streams.training.mlp`) on the rest, export it to ONNX
   (:mod:`streams.training.export`), load that file with
   :class:`~streams.emotion.EmotionModel` and evaluate *it* on the held-out windows.
4. Classify reference recordings (the real crowd recording in ../shared/data, if present).
5. Write ``crowd_emotion.onnx`` and ``MODEL_CARD.md`` into the output folder.

Deterministic for a seed: the same options give the same weights (only the training date
in the version and the timings in the card change).
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from infra.errors import CrowdsoundError
from infra.progress import Progress
from streams.emotion import META_VERSION, STATES, EmotionModel
from streams.training.dataset import Dataset, clip_folder_windows, match_windows
from streams.training.mlp import TrainConfig, train_ensemble

__all__ = ["DEFAULT_REFERENCE", "Evaluation", "TrainOptions", "TrainReport", "train"]

REPO = Path(__file__).resolve().parents[2]
DEFAULT_REFERENCE = REPO.parent / "shared" / "data" / "crowd-cheering-freesound-365132-cc0.wav"
MODEL_FILE = "crowd_emotion.onnx"
CARD_FILE = "MODEL_CARD.md"


@dataclass(frozen=True)
class TrainOptions:
    """What ``crowdsound model train`` was asked to do."""

    out: Path
    matches: int = 40
    minutes: float = 4.0
    clips: Path | None = None
    seed: int = 0
    holdout: float = 0.2
    excerpts: int = 12
    epochs: int = 60
    jobs: int = 2
    references: tuple[Path, ...] = ()
    progress: bool = True
    command: str = "crowdsound model train"

    def check(self) -> None:
        if self.matches < 0:
            raise CrowdsoundError(f"--matches must be >= 0, got {self.matches}")
        if self.matches == 0 and self.clips is None:
            raise CrowdsoundError("nothing to train on: give --matches N > 0 and/or --clips DIR")
        if not 0.75 <= self.minutes <= 120:
            raise CrowdsoundError(f"--minutes must be from 0.75 to 120, got {self.minutes:g}")
        if not 0.05 <= self.holdout <= 0.5:
            raise CrowdsoundError(f"--holdout must be from 0.05 to 0.5, got {self.holdout:g}")
        if self.epochs < 1:
            raise CrowdsoundError(f"--epochs must be >= 1, got {self.epochs}")
        if self.jobs < 1:
            raise CrowdsoundError(f"--jobs must be >= 1, got {self.jobs}")
        if self.seed < 0:
            raise CrowdsoundError(f"--seed must be >= 0, got {self.seed}")


@dataclass
class Evaluation:
    """Scores of the exported model on held-out windows."""

    windows: int
    accuracy: float
    majority_accuracy: float  # always guessing the most common training state
    macro_f1: float
    confusion: np.ndarray  # rows: true state, columns: predicted, counts
    arousal_mae: float
    valence_mae: float
    by_view: dict[str, tuple[int, float]] = field(default_factory=dict)  # view -> (windows, accuracy)


@dataclass
class TrainReport:
    options: TrainOptions
    model_path: Path
    card_path: Path
    version: str
    data_sha256: str
    trained_on: str  # ISO date
    train_set: Dataset
    test_set: Dataset
    evaluation: Evaluation
    match_seeds: list[int]
    heldout_groups: list[str]
    clip_counts: dict[str, int]
    audio_minutes: float
    data_seconds: float
    train_seconds: float
    references: list[tuple[Path, list[dict]]]  # (file, window records) or error text
    reference_errors: list[tuple[Path, str]]
    config: TrainConfig


def match_seeds(seed: int, matches: int) -> list[int]:
    """Stadium seeds of the training matches of ``seed`` (never those of the shipped scripts)."""
    return [100_000 + seed * 10_000 + i for i in range(matches)]


def _match_job(args: tuple[int, float, int]) -> Dataset:
    seed, minutes, excerpts = args
    return match_windows(seed, minutes=minutes, clips=excerpts)


def _build_synthetic(options: TrainOptions, seeds: Sequence[int]) -> Dataset:
    if not seeds:
        return Dataset()
    total = len(seeds) * options.minutes * 60
    progress = Progress(total, "rendering + analysing matches", unit="s of audio", enabled=options.progress)
    jobs = [(s, options.minutes, options.excerpts) for s in seeds]
    results: list[Dataset | None] = [None] * len(jobs)
    done = 0.0
    progress.update(0.0)
    if options.jobs == 1 or len(jobs) == 1:
        for i, job in enumerate(jobs):
            results[i] = _match_job(job)
            done += options.minutes * 60
            progress.update(done, f"match {i + 1}/{len(jobs)}")
    else:
        from concurrent.futures import as_completed

        with ProcessPoolExecutor(max_workers=min(options.jobs, len(jobs))) as pool:
            futures = {pool.submit(_match_job, job): i for i, job in enumerate(jobs)}
            for count, future in enumerate(as_completed(futures), start=1):
                results[futures[future]] = future.result()
                done += options.minutes * 60
                progress.update(done, f"match {count}/{len(jobs)}")
    progress.close()
    return Dataset.concat([r for r in results if r is not None])


def _split(data: Dataset, seed: int, holdout: float) -> tuple[np.ndarray, list[str]]:
    """A mask of held-out windows: whole recordings, drawn per kind (matches; clips of each state)."""
    rng = np.random.default_rng([seed, 2_024])
    groups = sorted(set(data.groups))
    families: dict[str, list[str]] = {}
    for group in groups:
        if group.startswith("clip:"):
            first = data.groups.index(group)
            family = f"clip-{STATES[int(data.states[first])]}"
        else:
            family = "match"
        families.setdefault(family, []).append(group)
    held: list[str] = []
    for family in sorted(families):
        members = families[family]
        if len(members) < 2:
            continue
        count = max(1, int(round(holdout * len(members))))
        order = rng.permutation(len(members))
        held += [members[i] for i in sorted(order[:count])]
    held_set = set(held)
    return np.array([g in held_set for g in data.groups], dtype=bool), sorted(held)


def _data_hash(data: Dataset) -> str:
    digest = hashlib.sha256()
    for array in (data.features, data.states, data.arousal, data.valence):
        digest.update(np.ascontiguousarray(array).tobytes())
    digest.update("\n".join(data.groups).encode())
    return digest.hexdigest()


def _today() -> datetime:
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    return datetime.fromtimestamp(int(epoch), UTC) if epoch and epoch.isdigit() else datetime.now(UTC)


def evaluate(model: EmotionModel, data: Dataset, *, majority_state: int) -> Evaluation:
    """Scores of ``model`` on ``data``."""
    if not len(data):
        return Evaluation(0, float("nan"), float("nan"), float("nan"), np.zeros((len(STATES),) * 2, dtype=int),
                          float("nan"), float("nan"))
    emotions = model.predict(data.features)
    predicted = np.array([STATES.index(e.state) for e in emotions])
    arousal = np.array([e.arousal for e in emotions])
    valence = np.array([e.valence for e in emotions])
    confusion = np.zeros((len(STATES), len(STATES)), dtype=int)
    np.add.at(confusion, (data.states, predicted), 1)
    f1s = []
    for k in range(len(STATES)):
        support = confusion[k].sum()
        if not support:
            continue
        precision = confusion[k, k] / max(confusion[:, k].sum(), 1)
        recall = confusion[k, k] / support
        f1s.append(0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall))
    by_view = {}
    views = np.array(data.views)
    for view in sorted(set(data.views)):
        mask = views == view
        by_view[view] = (int(mask.sum()), float((predicted[mask] == data.states[mask]).mean()))
    return Evaluation(
        windows=len(data), accuracy=float((predicted == data.states).mean()),
        majority_accuracy=float((data.states == majority_state).mean()), macro_f1=float(np.mean(f1s)),
        confusion=confusion, arousal_mae=float(np.abs(arousal - data.arousal).mean()),
        valence_mae=float(np.abs(valence - data.valence).mean()), by_view=by_view,
    )


def train(options: TrainOptions) -> TrainReport:
    """Build the data set, train, export, evaluate and write the model card (see module doc)."""
    from streams.analyze import analyze_file, window_record
    from streams.training.card import model_card
    from streams.training.export import export_onnx

    options.check()
    out = Path(options.out)
    started = time.monotonic()
    seeds = match_seeds(options.seed, options.matches)
    parts = [_build_synthetic(options, seeds)]
    clip_counts: dict[str, int] = {}
    if options.clips is not None:
        clips, clip_counts = clip_folder_windows(options.clips)
        parts.append(clips)
    data = Dataset.concat(parts)
    if len(data) < 10:
        raise CrowdsoundError(f"only {len(data)} windows to train on: give more or longer matches or clips")
    held_mask, held = _split(data, options.seed, options.holdout)
    if held_mask.all() or not held_mask.any():
        raise CrowdsoundError("cannot hold out whole recordings for evaluation: give at least 2 matches or "
                              "2 clips of a state")
    train_set, test_set = data.subset(~held_mask), data.subset(held_mask)
    data_seconds = time.monotonic() - started

    config = TrainConfig(epochs=options.epochs)
    t0 = time.monotonic()
    members = train_ensemble(train_set.features, train_set.states, train_set.arousal, train_set.valence,
                             n_states=len(STATES), seed=options.seed, config=config)
    train_seconds = time.monotonic() - t0

    data_sha = _data_hash(data)
    today = _today()
    version = f"crowd-emotion-{today:%Y%m%d}-{data_sha[:10]}"
    metadata = {
        META_VERSION: version,
        "crowdsound.trained": today.date().isoformat(),
        "crowdsound.data_sha256": data_sha,
        "crowdsound.seed": str(options.seed),
        "crowdsound.command": options.command,
        "crowdsound.matches": str(options.matches),
        "crowdsound.windows": str(len(data)),
    }
    out.mkdir(parents=True, exist_ok=True)
    model_path = out / MODEL_FILE
    export_onnx(members, model_path, metadata=metadata)
    model = EmotionModel.load(model_path)
    majority = int(np.bincount(train_set.states, minlength=len(STATES)).argmax())
    evaluation = evaluate(model, test_set, majority_state=majority)

    references: list[tuple[Path, list[dict]]] = []
    errors: list[tuple[Path, str]] = []
    for path in options.references:
        try:
            references.append((path, [window_record(item) for item in analyze_file(path, model=model)]))
        except CrowdsoundError as exc:
            errors.append((path, str(exc)))
    report = TrainReport(
        options=options, model_path=model_path, card_path=out / CARD_FILE, version=version, data_sha256=data_sha,
        trained_on=today.date().isoformat(), train_set=train_set, test_set=test_set, evaluation=evaluation,
        match_seeds=seeds, heldout_groups=held, clip_counts=clip_counts,
        audio_minutes=options.matches * options.minutes, data_seconds=data_seconds, train_seconds=train_seconds,
        references=references, reference_errors=errors, config=config,
    )
    report.card_path.write_text(model_card(report), encoding="utf-8")
    return report
