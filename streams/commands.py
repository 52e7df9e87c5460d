"""Emotion model subcommands: ``model train``, ``model info`` and ``analyze``.

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

The training set comes from the synthetic stadium and/or your own recordings:

  * --matches N random synthetic matches (default 40, about 4 minutes of audio each):
    goals for both sides, near misses, saves, cards, VAR, chants at many tempos,
    applause, boos and whistles, quiet spells. Each is rendered and analysed with the
    same CrowdAnalyzer as the live worker, and every window is labelled from the
    stadium's own plan (producers/stadium/labels.py).
  * --clips DIR, a folder with one subfolder per crowd state, audio files inside:
        DIR/CALM/*.wav  DIR/ANGER/*.flac  DIR/CHANTING/*.ogg ...
    (states: CALM ANTICIPATION EXCITEMENT CELEBRATION DISAPPOINTMENT ANGER CHANTING).

Whole matches and whole clips are held out for evaluation (never single windows); the
model card reports accuracy, a confusion matrix and arousal/valence errors on them, and
how the reference recordings (--reference) are classified. The same options and seed give
the same model. With the defaults this takes about 5 minutes on 2 cores.
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
        "model", help="train the crowd emotion model or show the one in use",
        description="The crowd emotion model (ONNX, run with onnxruntime): `train` builds it from the synthetic "
        "stadium and/or labelled clips and writes a model card; `info` shows a model's version and metadata.",
    )
    actions = model.add_subparsers(dest="action", metavar="ACTION", parser_class=type(model))
    actions.required = True
    train = actions.add_parser("train", help="build the data set, train, evaluate, export ONNX and a model card",
                               description=_TRAIN_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    train.add_argument("--out", type=Path, metavar="DIR",
                       help="where to write crowd_emotion.onnx and MODEL_CARD.md (default: streams/models, "
                       "the shipped model)")
    train.add_argument("--clips", type=Path, metavar="DIR", help="folder of labelled clips: DIR/<STATE>/<audio files>")
    train.add_argument("--matches", type=_COUNT, default=40, metavar="N",
                       help="synthetic matches to render (default 40; 0 = clips only)")
    train.add_argument("--minutes", type=float, default=4.0, metavar="M",
                       help="audio per synthetic match, minutes (default 4)")
    train.add_argument("--seed", type=_COUNT, default=0, metavar="S", help="seed of matches, split and training (default 0)")
    train.add_argument("--holdout", type=float, default=0.2, metavar="F",
                       help="share of matches (and of each state's clips) held out for evaluation (default 0.2)")
    train.add_argument("--epochs", type=_POSITIVE, default=60, metavar="E", help="training epochs (default 60)")
    train.add_argument("--excerpts", type=_COUNT, default=12, metavar="K",
                       help="cold-start excerpts analysed per synthetic match (default 12)")
    train.add_argument("--jobs", type=_POSITIVE, default=min(2, os.cpu_count() or 1), metavar="J",
                       help="processes rendering matches (default: 2 or the number of cores if fewer)")
    train.add_argument("--reference", type=Path, action="append", metavar="FILE",
                       help="a real recording to classify in the model card (repeatable; default: "
                       "../shared/data/crowd-cheering-freesound-365132-cc0.wav if it exists)")
    train.add_argument("--quiet", action="store_true", help="no progress bar")
    train.set_defaults(handler=_train)

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


def _train(args: argparse.Namespace, settings: Settings) -> int:
    from streams.emotion import DEFAULT_MODEL_PATH
    from streams.training.train import DEFAULT_REFERENCE, TrainOptions, train

    out = args.out or DEFAULT_MODEL_PATH.parent
    references = tuple(args.reference) if args.reference else ((DEFAULT_REFERENCE,) if DEFAULT_REFERENCE.is_file() else ())
    command = "crowdsound model train" + "".join(f" {shlex.quote(a)}" for a in sys.argv[3:]) \
        if sys.argv[1:3] == ["model", "train"] else "crowdsound model train"
    options = TrainOptions(
        out=out, matches=args.matches, minutes=args.minutes, clips=args.clips, seed=args.seed, holdout=args.holdout,
        excerpts=args.excerpts, epochs=args.epochs, jobs=args.jobs, references=references,
        progress=not args.quiet, command=command,
    )
    report = train(options)
    e = report.evaluation
    print(f"model {report.version}: {len(report.train_set)} training windows, {e.windows} held out")
    print(f"held-out accuracy {e.accuracy:.3f} (most common state alone: {e.majority_accuracy:.3f}), "
          f"macro F1 {e.macro_f1:.3f}, arousal MAE {e.arousal_mae:.3f}, valence MAE {e.valence_mae:.3f}")
    for path, records in report.references:
        from collections import Counter

        states = Counter(r["state"] for r in records)
        print(f"{path.name}: " + ", ".join(f"{s} {n}" for s, n in states.most_common()))
    print(f"wrote {report.model_path} and {report.card_path} "
          f"(data {report.data_seconds:.0f} s, training {report.train_seconds:.0f} s)")
    return 0


def _info(args: argparse.Namespace, settings: Settings) -> int:
    from streams.emotion import STATES, EmotionModel

    model = EmotionModel.load(args.path)
    print(f"path: {model.path}")
    print(f"version: {model.version}")
    print(f"states: {', '.join(STATES)}")
    for key, value in sorted(model.metadata.items()):
        if key.startswith("crowdsound.") and key not in {"crowdsound.states", "crowdsound.version"}:
            print(f"{key.removeprefix('crowdsound.')}: {value}")
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
