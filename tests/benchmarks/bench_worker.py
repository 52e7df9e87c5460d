"""Benchmark of the stream worker (a script, not a test).

    .venv/bin/python tests/benchmarks/bench_worker.py [--matches 20] [--seconds 30] [--live-matches 10] [--live-seconds 60]

1. Throughput ceiling: a backlog of MATCHES x SECONDS of crowd audio (100 ms frames) is
   written to fresh topics; then (a) `crowdsound worker` (Faust) and (b) a plain
   confluent-kafka loop doing the same feature + model work with the same RecordProcessor
   each drain it. Frames/s divided by 10 is how many live matches each could keep up with.
2. Live latency: LIVE_MATCHES matches produced in real time (10 frames/s each) while a
   worker runs; for each emotion window, the time from the capture of its last frame to its
   arrival at a consumer (p50/p99), and the worker's consumer lag at the start and end.

Needs the local broker (started if not running) or KAFKA_BOOTSTRAP_SERVERS.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from confluent_kafka import OFFSET_BEGINNING, TopicPartition  # noqa: E402

from infra.broker import broker_up  # noqa: E402
from infra.clients import make_admin, make_consumer, make_producer  # noqa: E402
from infra.settings import Settings  # noqa: E402
from infra.topics import apply_catalogue  # noqa: E402
from schemas.audio import encode_payload  # noqa: E402
from schemas.codec import decode, encode  # noqa: E402

FRAME = 4800


def crowd_frames(seconds: int) -> list[bytes]:
    from producers.stadium import load_script, render_stadium

    script = load_script(REPO / "producers/stadium/scripts/demo.toml")
    audio = np.concatenate(list(render_stadium(script, block_ms=1000, start_ms=60_000, end_ms=60_000 + seconds * 1000)))
    pcm = np.clip(np.rint(audio[:, 0] * 32767), -32768, 32767).astype(np.int16)
    return [encode_payload(pcm[i:i + FRAME], encoding="PCM_S16LE", sample_rate=48_000)
            for i in range(0, len(pcm) - FRAME + 1, FRAME)]


def frame_record(match_id: str, seq: int, payload: bytes, wall_ms: int) -> bytes:
    return encode("AudioFrame", {
        "match_id": match_id, "encoder_id": "bench", "session_id": "bench", "seq": seq,
        "clock": {"period": "FIRST_HALF", "ms": seq * 100}, "wall_time_ms": wall_ms, "sample_rate": 48_000,
        "channels": 1, "samples_per_channel": FRAME, "encoding": "PCM_S16LE", "payload": payload,
    })


def fresh(settings: Settings) -> Settings:
    scoped = settings.with_overrides(topic_prefix=f"bench{uuid.uuid4().hex[:6]}.")
    apply_catalogue(make_admin(scoped), scoped)
    return scoped


def backlog(settings: Settings, payloads: list[bytes], matches: int) -> int:
    producer = make_producer(settings)
    start = int(time.time() * 1000) - len(payloads) * 100
    for seq, payload in enumerate(payloads):
        for m in range(matches):
            producer.produce(settings.topic("crowd.audio.v1"), key=f"m{m}".encode(),
                             value=frame_record(f"m{m}", seq, payload, start + seq * 100))
            producer.poll(0)
    producer.flush(60)
    return len(payloads) * matches


def emotions_count(settings: Settings) -> int:
    consumer = make_consumer(settings, group_id=f"count-{uuid.uuid4().hex[:6]}")
    topic = settings.topic("crowd.emotions.v1")
    total = 0
    for p in consumer.list_topics(topic, timeout=10).topics[topic].partitions:
        low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
        total += high - low
    consumer.close()
    return total


def run_faust_worker(settings: Settings, expected_windows: int, log: Path) -> float:
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": settings.bootstrap_servers,
           "CROWDSOUND_TOPIC_PREFIX": settings.topic_prefix, "CROWDSOUND_LOG_LEVEL": "WARNING"}
    started = time.monotonic()
    worker = subprocess.Popen([sys.executable, "-m", "infra.cli", "worker"], cwd=log.parent, env=env,
                              stdout=open(log, "w"), stderr=subprocess.STDOUT, start_new_session=True)
    try:
        while emotions_count(settings) < expected_windows:
            if worker.poll() is not None:
                raise SystemExit(f"worker exited; see {log}")
            time.sleep(0.5)
        return time.monotonic() - started
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait(timeout=60)


def run_plain_loop(settings: Settings, frames: int) -> float:
    """The same RecordProcessor in a bare confluent-kafka consume/produce loop."""
    from streams.emotion import EmotionModel
    from streams.join import AcousticEmotion
    from streams.processor import RecordProcessor

    model = EmotionModel.load()
    work = RecordProcessor(settings, predict=lambda f: [AcousticEmotion(e.probabilities, e.arousal, e.valence)
                                                         for e in model.predict(f)], model_version=model.version)
    consumer = make_consumer(settings, group_id=f"plain-{uuid.uuid4().hex[:6]}")
    producer = make_producer(settings)
    topic = settings.topic("crowd.audio.v1")
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING)
                     for p in consumer.list_topics(topic, timeout=10).topics[topic].partitions])
    states: dict[bytes, bytes] = {}
    done = 0
    started = time.monotonic()
    while done < frames:
        for message in consumer.consume(500, timeout=1.0):
            if message.error():
                continue
            result = work.process(state=states.get(message.key()), topic=topic, partition=message.partition(),
                                  offset=message.offset(), key=message.key(), value=message.value())
            for out in result.outputs:
                producer.produce(out.topic, key=out.key, value=out.value)
            if result.state is not None:
                states[message.key()] = result.state
            done += 1
        producer.poll(0)
    producer.flush(30)
    elapsed = time.monotonic() - started
    consumer.close()
    return elapsed


def live(settings: Settings, payloads: list[bytes], matches: int, seconds: int, log: Path) -> None:
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": settings.bootstrap_servers,
           "CROWDSOUND_TOPIC_PREFIX": settings.topic_prefix, "CROWDSOUND_LOG_LEVEL": "WARNING"}
    worker = subprocess.Popen([sys.executable, "-m", "infra.cli", "worker"], cwd=log.parent, env=env,
                              stdout=open(log, "w"), stderr=subprocess.STDOUT, start_new_session=True)
    time.sleep(8)  # worker start-up
    latencies: list[float] = []
    stop = threading.Event()

    def consume() -> None:
        consumer = make_consumer(settings, group_id=f"lat-{uuid.uuid4().hex[:6]}", extra={"auto.offset.reset": "latest"})
        consumer.subscribe([settings.topic("crowd.emotions.v1")])
        while not stop.is_set():
            message = consumer.poll(0.2)
            if message is None or message.error():
                continue
            window = decode(message.value(), expect="EmotionWindow")
            if window["revision"] == 0:
                latencies.append(time.time() * 1000 - window["audio_wall_time_ms"])
        consumer.close()

    reader = threading.Thread(target=consume, daemon=True)
    reader.start()
    producer = make_producer(settings, {"linger.ms": 1})
    begin = time.time()
    seq = 0
    while time.time() - begin < seconds:
        due = begin + (seq + 1) * 0.1
        time.sleep(max(0.0, due - time.time()))
        wall = int(time.time() * 1000) - 100  # the frame's first sample was captured 100 ms ago
        for m in range(matches):
            producer.produce(settings.topic("crowd.audio.v1"), key=f"live{m}".encode(),
                             value=frame_record(f"live{m}", seq, payloads[seq % len(payloads)], wall))
        producer.poll(0)
        seq += 1
    producer.flush(30)
    time.sleep(5)
    stop.set()
    reader.join(timeout=10)
    os.killpg(worker.pid, signal.SIGTERM)
    worker.wait(timeout=60)
    if latencies:
        values = np.array(latencies)
        print(f"live: {matches} matches x {seconds} s ({matches * 10} frames/s): {len(values)} windows, "
              f"last frame -> emotion record p50 {np.percentile(values, 50):.0f} ms, "
              f"p99 {np.percentile(values, 99):.0f} ms, max {values.max():.0f} ms")
    else:
        print(f"live: no windows arrived; see {log}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--matches", type=int, default=20)
    parser.add_argument("--seconds", type=int, default=30)
    parser.add_argument("--live-matches", type=int, default=10)
    parser.add_argument("--live-seconds", type=int, default=60)
    args = parser.parse_args()
    base = Settings.from_env()
    if "KAFKA_BOOTSTRAP_SERVERS" not in os.environ:
        broker_up(base)
    payloads = crowd_frames(max(args.seconds, 30))
    with tempfile.TemporaryDirectory() as tmp:
        windows_per_match = args.seconds - 2  # 3 s windows, 1 s hop
        faust_settings = fresh(base)
        frames = backlog(faust_settings, payloads[:args.seconds * 10], args.matches)
        faust_s = run_faust_worker(faust_settings, windows_per_match * args.matches, Path(tmp) / "faust.log")
        plain_settings = fresh(base)
        backlog(plain_settings, payloads[:args.seconds * 10], args.matches)
        plain_s = run_plain_loop(plain_settings, frames)
        print(f"backlog: {args.matches} matches x {args.seconds} s = {frames} frames")
        print(f"{'':<26}{'seconds':>9}{'frames/s':>10}{'live matches':>14}")
        print(f"{'crowdsound worker (Faust)':<26}{faust_s:>9.1f}{frames / faust_s:>10.0f}{frames / faust_s / 10:>14.0f}"
              "   (includes worker start-up)")
        print(f"{'plain confluent loop':<26}{plain_s:>9.1f}{frames / plain_s:>10.0f}{frames / plain_s / 10:>14.0f}")
        live(fresh(base), payloads, args.live_matches, args.live_seconds, Path(tmp) / "live.log")


if __name__ == "__main__":
    main()
