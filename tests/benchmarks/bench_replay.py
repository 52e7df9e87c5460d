"""Benchmark of ``crowdsound replay`` on a whole retained match (a script, not a test).

    .venv/bin/python tests/benchmarks/bench_replay.py [--script full_match.toml] [--auto 5] [--port 26092]
        [--repeat 5] [--keep]

1. Puts a full synthetic match on fresh topics of a broker of its own (port 26092):
   ``crowdsound stadium --fast`` with producers/stadium/scripts/full_match.toml — 1 h 55 min
   of crowd audio (48 kHz mono, 100 ms frames, ~69,000 frames) and its event feed.
2. Times ``crowdsound replay --match M --auto N --from-audio`` end to end as a user runs it
   (a fresh process: imports, model load, reading the audio from Kafka, recomputing every
   emotion window, finding highlights, composing and rendering the clips, writing files),
   and the same replay reading crowd.emotions.v1 instead — those windows are first made
   by recomputing once and writing them, as the live worker would have.
3. Prints the figures and PASS/FAIL against the target (<= 45 s for --from-audio).
4. Deletes its topics and stops the broker it started, unless --keep.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from infra.broker import broker_down, broker_up  # noqa: E402
from infra.clients import make_admin, make_producer, match_key  # noqa: E402
from infra.settings import Settings  # noqa: E402
from infra.topics import apply_catalogue  # noqa: E402
from schemas.codec import encode  # noqa: E402
from tests.kafka_helpers import cli_env  # noqa: E402
from tests.benchmarks.bench_support import drop_topics  # noqa: E402

PORT = 26092
TARGET_S = 45.0  # issue 13


def _env(settings: Settings) -> dict[str, str]:
    return cli_env(settings, CROWDSOUND_LOG_LEVEL="WARNING")


def _run(args: list[str], settings: Settings) -> tuple[float, subprocess.CompletedProcess[str]]:
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "infra.cli", *args], env=_env(settings), cwd=REPO,
                            capture_output=True, text=True, check=False)
    return time.perf_counter() - started, result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--script", default=str(REPO / "producers/stadium/scripts/full_match.toml"))
    parser.add_argument("--auto", type=int, default=5)
    parser.add_argument("--keep", action="store_true", help="leave the broker and the match's topics for a look")
    parser.add_argument("--port", type=int, default=PORT, help=f"port of the broker (started if not running; default {PORT})")
    parser.add_argument("--repeat", type=int, default=1, help="time the --from-audio replay this many times")
    args = parser.parse_args()

    base = Settings.from_env()
    settings = base.with_overrides(bootstrap_servers=f"127.0.0.1:{args.port}", broker_port=args.port,
                                   topic_prefix=f"bench{uuid.uuid4().hex[:6]}.")
    _, started = broker_up(settings)
    try:
        return _bench(args, settings)
    finally:
        if not args.keep:
            drop_topics(settings)
            if started:  # a broker of its own: it would take CPU from whatever runs next
                broker_down(settings)


def _bench(args: argparse.Namespace, settings: Settings) -> int:
    apply_catalogue(make_admin(settings), settings)
    match_id = "bench-full-match"
    print(f"broker {settings.bootstrap_servers}, topics {settings.topic_prefix}*")

    took, result = _run(["stadium", "--script", args.script, "--match", match_id, "--fast", "--quiet",
                         "--spool-dir", tempfile.mkdtemp(prefix="bench-spool-")], settings)
    if result.returncode != 0:
        print(result.stderr)
        return 1
    print(f"published the match's audio and events in {took:.1f} s")

    out = Path(tempfile.mkdtemp(prefix="bench-replay-"))
    runs = []
    for _ in range(args.repeat):
        took_audio, result = _run(["replay", "--match", match_id, "--out", str(out / "from-audio"), "--auto",
                                   str(args.auto), "--from-audio", "--json", "--quiet"], settings)
        if result.returncode != 0:
            print(result.stderr)
            return 1
        runs.append(took_audio)
        print(f"replay --auto {args.auto} --from-audio: {took_audio:.1f} s", flush=True)
    took_audio = float(sorted(runs)[len(runs) // 2])
    summary = json.loads(result.stdout)

    # The live worker's output for the same match: recompute once, write as the worker would.
    from consumers.replay.emotions import recompute_windows
    from consumers.replay.reader import PartitionReader

    reader = PartitionReader(settings, match_id)
    try:
        events = list(reader.read("match.events.v1", "MatchEvent"))
        windows = recompute_windows(settings, match_id, reader.read("crowd.audio.v1", "AudioFrame"), events,
                                    late_event_ids=set())
    finally:
        reader.close()
    producer = make_producer(settings)
    for window in windows:
        producer.produce(settings.topic("crowd.emotions.v1"), key=match_key(match_id),
                         value=encode("EmotionWindow", window), timestamp=window["audio_wall_time_ms"])
        producer.poll(0)
    producer.flush(60)
    took_emotions, result = _run(["replay", "--match", match_id, "--out", str(out / "emotions"), "--auto",
                                  str(args.auto), "--json", "--quiet"], settings)
    if result.returncode != 0:
        print(result.stderr)
        return 1

    print()
    print(f"match: {args.script} ({len(windows)} emotion windows)")
    print(f"clips: {len(summary['clips'])}: " + "; ".join(f"{c['start']}-{c['end']} {c['reason'][:40]}"
                                                        for c in summary["clips"]))
    print(f"replay --auto {args.auto} --from-audio : {took_audio:6.1f} s median, {max(runs):.1f} s worst of "
          f"{len(runs)}  (target <= {TARGET_S:.0f} s)  {'PASS' if max(runs) <= TARGET_S else 'FAIL'}")
    print(f"replay --auto {args.auto} (emotions topic): {took_emotions:6.1f} s")
    print(f"files in {out}")
    return 0 if max(runs) <= TARGET_S else 2


if __name__ == "__main__":
    sys.exit(main())
