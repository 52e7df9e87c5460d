"""Emotion model subcommands: ``model train``, ``evaluate``, ``crossval``, ``info`` and ``analyze``.

Heavy imports (numpy, onnxruntime, soundfile, the stadium) happen inside the handlers,
so ``crowdsound --help`` stays fast.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path
from typing import Any

from infra.cliargs import whole_number
from infra.settings import Settings

_COUNT = whole_number(low=0)
_POSITIVE = whole_number(low=1)

__all__ = ["register"]

_TRAIN_HELP = """\
Train the crowd emotion model and write crowd_emotion.onnx and MODEL_CARD.md to --out.

The training set comes from real recordings and the synthetic stadium:

  * real recordings: --real DIR (default: data/real-crowd/train, the repository's real
    crowd clips, licences in data/real-crowd/SOURCES.md) and/or your own --clips DIR, each
    a folder with one subfolder per label, audio files inside:
        DIR/calm/*.wav  DIR/celebration/*.flac  DIR/applause/*.ogg ...
    (labels: calm anticipation excitement celebration disappointment anger chanting
    applause; DIR/segments.toml may mark parts of a recording in another state). Every
    clip is heard many ways: through random microphones, gains and feeds from a cold
    start, and laid into live streams over a calm bed.
  * --matches N random synthetic matches (default 40, about 4 minutes of audio each),
    rendered and analysed with the same CrowdAnalyzer as the live worker, every window
    labelled from the stadium's own plan.

Evaluation never uses a training recording: whole synthetic matches are held out, and
the real recordings of --heldout DIR (default: data/real-crowd/heldout) are heard as
`crowdsound model evaluate` hears them. The model card reports both, side by side with
plain loudness. The same options and seed give the same model. With the defaults this
takes about 10 minutes on 2 cores.
"""

_EVALUATE_HELP = """\
How well the model hears a folder of labelled recordings, next to plain loudness.

DIR has one subfolder per label (calm anticipation excitement celebration disappointment
anger chanting applause), and optionally high/ and low/ for clips that only say whether
the crowd is roaring or quiet. Each clip is heard alone (cold start, as `crowdsound
analyze` hears it), again at -20 and +20 dB, and all clips one after the other as one
live stream. Printed: arousal AUC of excited against calm clips (by clip and by window)
with the same figure for plain loudness (p90 of 100 ms RMS), how many windows change
state with the gain, precision and recall per state, the confusion matrix, every clip's
majority state, a pass/fail line per check and a one-line verdict. A venue runs it on
its own recordings before a match.

examples:
  crowdsound model evaluate data/real-crowd/heldout
  crowdsound model evaluate ~/recordings/our-stadium --json | jq .verdict
"""

_CROSSVAL_HELP = """\
Leave each recording of a label out in turn, teach a model without it, and say how that
model hears it: is the label learnt, or only its recordings?

One held-out recording of a state is an anecdote. For every recording of each LABEL, in
the training folder (--real, --clips) and in the held-out one (--heldout), a model is
taught by everything `model train` would use (the label's other held-out recordings
included, the held-out folder's other labels never) and hears the left-out recording
alone from a cold start, as `crowdsound model evaluate` does. Printed per label: windows
heard in the label's state (cheering: EXCITEMENT or CELEBRATION) out of all, and per
recording its windows, how many were heard right, its majority state and mean arousal.
The synthetic matches are rendered once for all folds; each fold then takes about 45 s
on 2 cores with the defaults. Nothing is written: the shipped model stays as it is.

labels: calm anticipation excitement celebration disappointment anger chanting applause

examples:
  crowdsound model crossval anger
  crowdsound model crossval anger calm --clips ~/recordings/our-stadium --json
"""

_ANALYZE_HELP = """\
Print the crowd emotion of an audio file, window by window, without Kafka.

The file (WAV, FLAC, OGG, anything libsndfile reads) is mixed to mono, resampled to
48 kHz and analysed exactly as the live worker analyses a venue encoder's frames:
features relative to the recording's own running baseline, then the emotion model.
Each line: match time of the window's start, state, arousal (0..1), valence (-1..1),
loudness relative to the baseline (dB) and the tempo of a chant or rhythmic clapping
when one is heard. The first seconds have no baseline yet: loudness is relative to the
recording itself; the last windows, which the end of the file cuts short, are marked
partial.

examples:
  crowdsound analyze goal.wav
  crowdsound analyze second-half.flac --start 45:00 --json | jq .state
"""


def register(commands: Any) -> None:
    """Add ``model`` and ``analyze`` to the CLI."""
    model = commands.add_parser(
        "model", help="train, evaluate or show the crowd emotion model",
        description="The crowd emotion model (ONNX, run with onnxruntime): `train` builds it from real recordings "
        "and the synthetic stadium and writes a model card; `evaluate` says how well it hears a folder of labelled "
        "recordings; `crossval` leaves each recording of a label out of training in turn; `info` shows what a model "
        "was trained on, how it did and where it is weak.",
    )
    actions = model.add_subparsers(dest="action", metavar="ACTION", parser_class=type(model))
    actions.required = True
    train = actions.add_parser("train", help="build the data set, train, evaluate, export ONNX and a model card",
                               description=_TRAIN_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    train.add_argument("--out", type=Path, metavar="DIR",
                       help="where to write crowd_emotion.onnx and MODEL_CARD.md (default: streams/models, "
                       "the shipped model)")
    _data_arguments(train)
    train.set_defaults(handler=_train)

    crossval = actions.add_parser("crossval", help="leave each recording of a label out in turn: is it heard right?",
                                  description=_CROSSVAL_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    crossval.add_argument("labels", nargs="+", metavar="LABEL",
                          help="folder labels whose recordings to leave out, one at a time (e.g. anger calm)")
    crossval.add_argument("--json", action="store_true", help="one JSON object instead of the report")
    _data_arguments(crossval)
    crossval.set_defaults(handler=_crossval)

    evaluate = actions.add_parser("evaluate", help="how well a model hears a folder of labelled recordings",
                                  description=_EVALUATE_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    evaluate.add_argument("folder", type=Path, metavar="DIR", help="labelled recordings: DIR/<label>/<audio files>")
    evaluate.add_argument("--json", action="store_true", help="one JSON object instead of the report")
    evaluate.add_argument("--model", type=Path, metavar="MODEL", help="an .onnx model (default: the shipped one)")
    evaluate.set_defaults(handler=_evaluate)

    info = actions.add_parser("info", help="version, states, features and metadata of a model",
                              description="Load a model as the worker would and print what it says about itself.")
    info.add_argument("path", nargs="?", type=Path, metavar="MODEL", help="an .onnx file (default: the shipped model)")
    info.set_defaults(handler=_info)

    analyze = commands.add_parser("analyze", help="print the crowd emotion of an audio file, window by window",
                                  description=_ANALYZE_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    analyze.add_argument("file", type=Path, metavar="FILE", help="audio file (WAV, FLAC, OGG, ...)")
    analyze.add_argument("--json", action="store_true", help="one JSON object per window instead of text")
    analyze.add_argument("--start", metavar="MM:SS", help="match time of the first sample, e.g. 23:10 or 'HT 2:00' "
                         "(default PRE 0:00)")
    analyze.add_argument("--hop", type=_POSITIVE, default=1000, metavar="MS", help="window hop, ms (default 1000)")
    analyze.add_argument("--length", type=_POSITIVE, default=3000, metavar="MS",
                         help="window length, ms; a whole multiple of --hop (default 3000)")
    analyze.add_argument("--model", type=Path, metavar="MODEL", help="an .onnx model (default: the shipped one)")
    analyze.set_defaults(handler=_analyze)


def _data_arguments(parser: argparse.ArgumentParser) -> None:
    """What ``model train`` and ``model crossval`` learn from."""
    parser.add_argument("--real", type=Path, metavar="DIR",
                        help="real recordings to learn from: DIR/<label>/<audio files> "
                        "(default: data/real-crowd/train)")
    parser.add_argument("--no-real", action="store_true", help="no real recordings (the synthetic stadium alone)")
    parser.add_argument("--clips", type=Path, metavar="DIR",
                        help="your own labelled clips, like --real (added to them)")
    parser.add_argument("--heldout", type=Path, metavar="DIR",
                        help="real recordings to evaluate on, never trained on (default: data/real-crowd/heldout)")
    parser.add_argument("--no-heldout", action="store_true", help="no evaluation on held-out real recordings")
    parser.add_argument("--matches", type=_COUNT, default=40, metavar="N",
                        help="synthetic matches to render (default 40; 0 = real recordings only)")
    parser.add_argument("--minutes", type=float, default=4.0, metavar="M",
                        help="audio per synthetic match, minutes (default 4)")
    parser.add_argument("--seed", type=_COUNT, default=0, metavar="S",
                        help="seed of matches, split and training (default 0)")
    parser.add_argument("--holdout", type=float, default=0.2, metavar="F",
                        help="share of synthetic matches held out for evaluation (default 0.2)")
    parser.add_argument("--excerpts", type=_COUNT, default=12, metavar="K",
                        help="cold-start excerpts analysed per synthetic match (default 12)")
    parser.add_argument("--copies", type=_COUNT, default=6, metavar="K",
                        help="times each real recording is heard again through a random microphone (default 6)")
    parser.add_argument("--streams", type=_COUNT, default=40, metavar="K",
                        help="live streams built from the real recordings (default 40)")
    parser.add_argument("--jobs", type=_POSITIVE, default=min(2, os.cpu_count() or 1), metavar="J",
                        help="processes rendering matches (default: 2 or the number of cores if fewer)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def _train_options(args: argparse.Namespace, out: Path, command: str) -> Any:
    """The ``TrainOptions`` of ``_data_arguments``' flags (checks the training extras first)."""
    import importlib.util

    from infra.errors import CrowdsoundError

    if not all(importlib.util.find_spec(name) for name in ("sklearn", "skl2onnx")):
        raise CrowdsoundError(f"model {args.action} needs scikit-learn and skl2onnx: pip install 'crowdsound[train]'")
    from streams.training.train import DEFAULT_HELDOUT, DEFAULT_REAL, TrainOptions

    real = None if args.no_real else (args.real or (DEFAULT_REAL if DEFAULT_REAL.is_dir() else None))
    heldout = None if args.no_heldout else (args.heldout or (DEFAULT_HELDOUT if DEFAULT_HELDOUT.is_dir() else None))
    return TrainOptions(
        out=out, matches=args.matches, minutes=args.minutes, real=real, heldout=heldout, clips=args.clips,
        seed=args.seed, holdout=args.holdout, excerpts=args.excerpts, copies=args.copies, streams=args.streams,
        jobs=args.jobs, progress=not args.quiet, command=command,
    )


def _train(args: argparse.Namespace, settings: Settings) -> int:
    from streams.emotion import DEFAULT_MODEL_PATH

    command = "crowdsound model train" + "".join(f" {shlex.quote(a)}" for a in sys.argv[3:]) \
        if sys.argv[1:3] == ["model", "train"] else "crowdsound model train"
    options = _train_options(args, args.out or DEFAULT_MODEL_PATH.parent, command)
    from streams.training.train import train

    report = train(options)
    e = report.evaluation
    print(f"model {report.version}: {len(report.train_set)} training windows "
          f"({len(report.real_clips)} real recordings, {args.matches} synthetic matches)")
    print(f"held-out synthetic windows ({e.windows}): accuracy {e.accuracy:.3f} (most common state alone: "
          f"{e.majority_accuracy:.3f}), macro F1 {e.macro_f1:.3f}, arousal MAE {e.arousal_mae:.3f}")
    if report.real_evaluation is not None:
        print(f"held-out real recordings ({len(report.heldout_clips)}): {report.real_evaluation.verdict}")
    print(f"wrote {report.model_path} and {report.card_path} "
          f"(data {report.data_seconds:.0f} s, training {report.train_seconds:.0f} s)")
    return 0


def _crossval(args: argparse.Namespace, settings: Settings) -> int:
    import json

    options = _train_options(args, Path("."), "crowdsound model crossval")
    from streams.training.crossval import cross_validate, format_cross_validation

    result = cross_validate(options, [label.lower() for label in args.labels])
    print(json.dumps(result.as_dict()) if args.json else format_cross_validation(result))
    return 0


def _evaluate(args: argparse.Namespace, settings: Settings) -> int:
    import json

    from streams.emotion import EmotionModel
    from streams.training.evaluate import evaluate_clips, format_evaluation
    from streams.training.real import read_clip_folder

    model = EmotionModel.load(args.model)
    clips = read_clip_folder(args.folder, arousal_only=True)
    evaluation = evaluate_clips(clips, model.predict, folder=str(args.folder), model_version=model.version)
    print(json.dumps(evaluation.as_dict()) if args.json else format_evaluation(evaluation))
    return 0


def _info(args: argparse.Namespace, settings: Settings) -> int:
    from streams.emotion import STATES, EmotionModel

    model = EmotionModel.load(args.path)
    print(f"path: {model.path}")
    print(f"version: {model.version}")
    print(f"states: {', '.join(STATES)}")
    first = ("crowdsound.trained_on", "crowdsound.evaluated_on", "crowdsound.weak_on")
    rest = sorted(k for k in model.metadata if k.startswith("crowdsound.") and k not in first
                  and k not in {"crowdsound.states", "crowdsound.version", "crowdsound.features"})
    for key in (*(k for k in first if k in model.metadata), *rest):
        print(f"{key.removeprefix('crowdsound.').replace('_', ' ')}: {model.metadata[key]}")
    print(f"features: {model.metadata.get('crowdsound.features', '').replace(',', ', ')}")
    card = model.path.parent / "MODEL_CARD.md"
    if card.is_file():
        print(f"model card: {card}")
    return 0


def _analyze(args: argparse.Namespace, settings: Settings) -> int:
    import json

    from infra.errors import CrowdsoundError
    from schemas.clock import parse_clock
    from streams.analyze import analyze_file, window_record
    from streams.emotion import EmotionModel
    from streams.windows import WindowSpec

    try:
        spec = WindowSpec(hop_ms=args.hop, length_ms=args.length)
    except ValueError as exc:
        raise CrowdsoundError(f"--hop {args.hop} --length {args.length}: {exc}") from None
    start = parse_clock(args.start) if args.start else None
    model = EmotionModel.load(args.model)
    count = 0
    try:
        for item in analyze_file(args.file, model=model, start=start, spec=spec):
            record = window_record(item, model_version=model.version)
            if args.json:
                print(json.dumps(record))
            else:
                tempo = f"  tempo {record['tempo_bpm']:5.1f} bpm" if record["tempo_bpm"] is not None else ""
                partial = "  (partial: the recording ends)" if record["partial"] else ""
                print(f"{record['clock']:>10}  {record['state']:<14} arousal {record['arousal']:.2f}  "
                      f"valence {record['valence']:+.2f}  loudness {record['loudness_rel_db']:+5.1f} dB{tempo}{partial}")
            count += 1
    except BrokenPipeError:  # e.g. `| head`: the reader has seen enough
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    print(f"{args.file}: {count} windows, model {model.version}", file=sys.stderr)
    return 0
