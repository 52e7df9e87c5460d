"""``crowdsound model train``: data set, split, training, ONNX export, evaluation, model card.

1. Render and analyse ``matches`` random synthetic matches (in ``jobs`` processes;
   :mod:`streams.training.dataset`) and hear the real recordings of ``real`` (and a user's
   ``clips``) many ways (:mod:`streams.training.real`).
2. Split by recording: a seeded draw holds out a share of the synthetic matches; the real
   recordings held out are a folder of their own (``heldout``, by default
   ``data/real-crowd/heldout``: other recordings, venues and recordists than the training
   ones), never trained on.
3. Fit the estimators (:mod:`streams.training.model`) on the rest, export them to ONNX
   (:mod:`streams.training.export`), load that file with
   :class:`~streams.emotion.EmotionModel` and evaluate *it*: on the held-out synthetic
   windows, on the held-out real recordings as ``crowdsound model evaluate`` does
   (:mod:`streams.training.evaluate`), and on a stream of real arena background with a
   real cheer laid in.
4. Write ``crowd_emotion.onnx`` and ``MODEL_CARD.md`` into the output folder.

Deterministic for a seed: the same options give the same data and weights (only the
training date in the version and the timings in the card change).
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
from streams.training.dataset import Dataset, match_windows
from streams.training.evaluate import (
    BackgroundCheck, Evaluation as RealEvaluation, background_check, evaluate_clips, missed_targets,
    shown_folder,
)
from streams.training.model import EmotionEstimators, ModelConfig, fit_estimators
from streams.training.real import LabelledClip, read_clip_folder, real_windows

__all__ = ["DEFAULT_HELDOUT", "DEFAULT_REAL", "SyntheticEvaluation", "TrainOptions", "TrainReport", "build_synthetic",
           "fit", "split_matches", "train"]

REPO = Path(__file__).resolve().parents[2]
DEFAULT_REAL = REPO / "data" / "real-crowd" / "train"
DEFAULT_HELDOUT = REPO / "data" / "real-crowd" / "heldout"
MODEL_FILE = "crowd_emotion.onnx"
COLD_VIEWS = ("clip", "real-clip", "user")  # windows heard from a cold start: a clip, not a stream
CARD_FILE = "MODEL_CARD.md"


@dataclass(frozen=True)
class TrainOptions:
    """What ``crowdsound model train`` was asked to do."""

    out: Path
    matches: int = 40
    minutes: float = 4.0
    real: Path | None = DEFAULT_REAL
    heldout: Path | None = DEFAULT_HELDOUT
    clips: Path | None = None
    seed: int = 0
    holdout: float = 0.2
    excerpts: int = 12
    copies: int = 6
    streams: int = 40
    jobs: int = 2
    progress: bool = True
    command: str = "crowdsound model train"
    config: ModelConfig = field(default_factory=ModelConfig)

    def check(self) -> None:
        if self.matches < 0:
            raise CrowdsoundError(f"--matches must be >= 0, got {self.matches}")
        if self.matches == 0 and self.clips is None and self.real is None:
            raise CrowdsoundError("nothing to train on: give --matches N > 0, --real DIR and/or --clips DIR")
        if not 0.75 <= self.minutes <= 120:
            raise CrowdsoundError(f"--minutes must be from 0.75 to 120, got {self.minutes:g}")
        if not 0.05 <= self.holdout <= 0.5:
            raise CrowdsoundError(f"--holdout must be from 0.05 to 0.5, got {self.holdout:g}")
        if self.jobs < 1:
            raise CrowdsoundError(f"--jobs must be >= 1, got {self.jobs}")
        if self.seed < 0:
            raise CrowdsoundError(f"--seed must be >= 0, got {self.seed}")
        for flag, folder in (("--real", self.real), ("--heldout", self.heldout), ("--clips", self.clips)):
            if folder is not None and not Path(folder).is_dir():
                raise CrowdsoundError(f"{flag} {folder}: no such folder")


@dataclass
class SyntheticEvaluation:
    """Scores of the exported model on held-out synthetic windows."""

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
    evaluation: SyntheticEvaluation
    real_evaluation: RealEvaluation | None
    background: BackgroundCheck | None
    match_seeds: list[int]
    heldout_groups: list[str]
    real_clips: list[LabelledClip]  # trained on
    heldout_clips: list[LabelledClip]
    audio_minutes: float
    data_seconds: float
    train_seconds: float
    warm_network: bool = True  # a warm-stream state network was trained (see streams.training.model)


def match_seeds(seed: int, matches: int) -> list[int]:
    """Stadium seeds of the training matches of ``seed`` (never those of the shipped scripts)."""
    return [100_000 + seed * 10_000 + i for i in range(matches)]


def _match_job(args: tuple[int, float, int]) -> Dataset:
    seed, minutes, excerpts = args
    return match_windows(seed, minutes=minutes, clips=excerpts)


def build_synthetic(options: TrainOptions, seeds: Sequence[int]) -> Dataset:
    """The windows of the synthetic matches ``seeds``, rendered and analysed in ``options.jobs`` processes."""
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


def split_matches(data: Dataset, seed: int, holdout: float) -> tuple[np.ndarray, list[str]]:
    """A mask of held-out synthetic windows: whole matches, drawn with ``seed``."""
    rng = np.random.default_rng([seed, 2_024])
    matches = sorted({g for g in data.groups if g.startswith("match:")})
    if len(matches) < 2:
        return np.zeros(len(data), dtype=bool), []
    count = max(1, int(round(holdout * len(matches))))
    held = sorted(matches[i] for i in rng.permutation(len(matches))[:count])
    held_set = set(held)
    return np.array([g in held_set for g in data.groups], dtype=bool), held


def _data_hash(data: Dataset) -> str:
    digest = hashlib.sha256()
    for array in (data.features, data.states, data.arousal, data.valence):
        digest.update(np.ascontiguousarray(array).tobytes())
    digest.update("\n".join(data.groups).encode())
    return digest.hexdigest()


def _today() -> datetime:
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    return datetime.fromtimestamp(int(epoch), UTC) if epoch and epoch.isdigit() else datetime.now(UTC)


def evaluate_synthetic(model: EmotionModel, data: Dataset, *, majority_state: int) -> SyntheticEvaluation:
    """Scores of ``model`` on held-out synthetic windows."""
    if not len(data):
        return SyntheticEvaluation(0, float("nan"), float("nan"), float("nan"),
                                   np.zeros((len(STATES),) * 2, dtype=int), float("nan"), float("nan"))
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
    return SyntheticEvaluation(
        windows=len(data), accuracy=float((predicted == data.states).mean()),
        majority_accuracy=float((data.states == majority_state).mean()), macro_f1=float(np.mean(f1s)),
        confusion=confusion, arousal_mae=float(np.abs(arousal - data.arousal).mean()),
        valence_mae=float(np.abs(valence - data.valence).mean()), by_view=by_view,
    )


def _real_training(options: TrainOptions) -> tuple[Dataset, list[LabelledClip]]:
    clips: list[LabelledClip] = []
    for folder in (options.real, options.clips):
        if folder is not None:
            clips.extend(read_clip_folder(folder))
    if not clips:
        return Dataset(), []
    progress = Progress(len(clips), "hearing real recordings", unit="clips", enabled=options.progress)
    progress.update(0)
    data = real_windows(clips, seed=options.seed, copies=options.copies, streams=options.streams)
    progress.update(len(clips))
    progress.close()
    return data, clips


def _describe(model_path: Path, options: TrainOptions, real_clips: list[LabelledClip],
              heldout_clips: list[LabelledClip], synthetic: SyntheticEvaluation, real: RealEvaluation | None,
              background: BackgroundCheck | None, held_matches: list[str]) -> None:
    """Write what the model was trained on, how it did and where it is weak into its metadata
    (``crowdsound model info`` prints them)."""
    import onnx
    from onnx import helper

    seconds = sum(len(c.audio) for c in real_clips) / 48_000
    trained = [f"{len(real_clips)} real recordings ({seconds:.0f} s; {shown_folder(options.real) if options.real else ''}"
               f"{' + ' + shown_folder(options.clips) if options.clips else ''}), each heard {options.copies + 1} ways and "
               f"in {options.streams} live streams"] if real_clips else []
    if options.matches:
        trained.append(f"{options.matches} synthetic matches of {options.minutes:g} min")
    evaluated = []
    if real is not None:
        evaluated.append(f"{len(heldout_clips)} held-out real recordings ({shown_folder(options.heldout)}): {real.verdict}")
    evaluated.append(f"{len(held_matches)} held-out synthetic matches: accuracy {100 * synthetic.accuracy:.1f} %")
    model = onnx.load(str(model_path))
    props = {p.key: p.value for p in model.metadata_props}
    props.update({
        "crowdsound.trained_on": "; ".join(trained),
        "crowdsound.evaluated_on": "; ".join(evaluated),
        "crowdsound.weak_on": "; ".join([
            *(f"misses {target}" for target in missed_targets(real, background)),
            "little real data (minutes); commentary or PA over the crowd; boos, which differ widely; heard alone, a "
            "microphone's EQ shifts the spectrum it judges by - see MODEL_CARD.md"]),
    })
    del model.metadata_props[:]
    helper.set_model_props(model, props)
    model_path.write_bytes(model.SerializeToString())


def fit(train_set: Dataset, options: TrainOptions) -> EmotionEstimators:
    """The estimators taught by ``train_set`` with ``options``' seed and configuration."""
    is_real = np.array([v.startswith("real") for v in train_set.views], dtype=bool)
    cold = np.isin(train_set.views, COLD_VIEWS)
    try:
        return fit_estimators(train_set.features, train_set.states, train_set.arousal, train_set.valence,
                              is_real, cold, seed=options.seed, config=options.config)
    except ValueError as exc:
        raise CrowdsoundError(f"cannot train: {exc}") from None


def train(options: TrainOptions) -> TrainReport:
    """Build the data set, train, export, evaluate and write the model card (see module doc)."""
    from streams.training.card import model_card
    from streams.training.export import export_onnx

    options.check()
    out = Path(options.out)
    started = time.monotonic()
    seeds = match_seeds(options.seed, options.matches)
    synthetic = build_synthetic(options, seeds)
    real, real_clips = _real_training(options)
    heldout_clips = read_clip_folder(options.heldout, arousal_only=True) if options.heldout is not None else []
    trained_groups = {c.group for c in real_clips}
    overlap = sorted(trained_groups & {c.group for c in heldout_clips})
    if overlap:
        raise CrowdsoundError(f"{options.heldout}: recordings also in the training clips ({', '.join(overlap)}); "
                              "held-out recordings must be other recordings")
    held_mask, held = split_matches(synthetic, options.seed, options.holdout)
    train_set = Dataset.concat([synthetic.subset(~held_mask), real])
    test_set = synthetic.subset(held_mask)
    if len(train_set) < 10:
        raise CrowdsoundError(f"only {len(train_set)} windows to train on: give more or longer matches or clips")
    data_seconds = time.monotonic() - started

    t0 = time.monotonic()
    estimators = fit(train_set, options)
    train_seconds = time.monotonic() - t0

    everything = Dataset.concat([synthetic, real])
    data_sha = _data_hash(everything)
    today = _today()
    version = f"crowd-emotion-{today:%Y%m%d}-{data_sha[:10]}"
    metadata = {
        META_VERSION: version,
        "crowdsound.trained": today.date().isoformat(),
        "crowdsound.data_sha256": data_sha,
        "crowdsound.seed": str(options.seed),
        "crowdsound.command": options.command,
        "crowdsound.matches": str(options.matches),
        "crowdsound.real_recordings": str(len(real_clips)),
        "crowdsound.windows": str(len(everything)),
    }
    out.mkdir(parents=True, exist_ok=True)
    model_path = out / MODEL_FILE
    export_onnx(estimators, model_path, metadata=metadata)
    model = EmotionModel.load(model_path)
    majority = int(np.bincount(train_set.states, minlength=len(STATES)).argmax())
    evaluation = evaluate_synthetic(model, test_set, majority_state=majority)
    real_evaluation = background = None
    if heldout_clips:
        progress = Progress(1, "evaluating on held-out recordings", unit="", enabled=options.progress)
        real_evaluation = evaluate_clips(heldout_clips, model.predict, folder=shown_folder(options.heldout),
                                         model_version=version)
        background = background_check(heldout_clips, model.predict)
        progress.update(1)
        progress.close()
    _describe(model_path, options, real_clips, heldout_clips, evaluation, real_evaluation, background, held)
    report = TrainReport(
        options=options, model_path=model_path, card_path=out / CARD_FILE, version=version, data_sha256=data_sha,
        trained_on=today.date().isoformat(), train_set=train_set, test_set=test_set, evaluation=evaluation,
        real_evaluation=real_evaluation, background=background, match_seeds=seeds, heldout_groups=held,
        real_clips=real_clips, heldout_clips=heldout_clips, audio_minutes=options.matches * options.minutes,
        data_seconds=data_seconds, train_seconds=train_seconds, warm_network=estimators.warm_states is not None,
    )
    report.card_path.write_text(model_card(report), encoding="utf-8")
    return report
