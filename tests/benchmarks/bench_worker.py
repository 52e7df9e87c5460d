"""Benchmark of the stream worker (a script, not a test).

    .venv/bin/python tests/benchmarks/bench_worker.py [--matches 150] [--seconds 30]
        [--live-matches 100] [--live-seconds 180] [--ramp 120,140,160 --ramp-seconds 60]
        [--lockstep] [--no-helper] [--skip-backlog | --backlog-repeat 5] [--secure [--repeat 3]]
        [--composer [--composer-gather-ms 10,25]]

1. Throughput: a backlog of MATCHES x SECONDS of crowd audio (frames of --frame-ms, default
   1000 ms as the venue encoder sends them, 48 kHz mono)
   is written to fresh topics; then (a) `crowdsound worker` (Faust, one consumer; its frame
   helper process unless --no-helper) and (b) a plain confluent-kafka loop doing the same
   feature, model and state snapshot work with the same RecordProcessor (and helper) each
   drain it. The steady drain rate (from
   10 % to 90 % of the backlog, start-up excluded) divided by a match's frames/s is how many live
   matches each keeps up with. The plain loop is the floor: no Faust, no fault tolerance.
   --backlog-repeat N drains it N times each, alternating which goes first: Faust/plain per
   pair and min/median/max (one pair is an anecdote: 0.67 and 0.93 on the same box).
2. Live: LIVE_MATCHES matches paced like real encoders — each sends a frame every --frame-ms,
   the encoders not in step with each other (each match started at a random moment in the
   first second; --lockstep sends every match's frame at the same instant instead) — for
   LIVE_SECONDS while one worker runs. Reported: for each emotion window, the time from its
   last frame being sent to the record arriving at a consumer (p50/p99/max), and the
   worker's consumer lag (log end minus committed offset, sampled every 2 s) at the start
   and end of the run, its maximum and its trend; CPU used by the worker and the broker; the
   share of frames its helper process analysed (from the worker's /metrics); and the
   episodes in which windows took longer than the 250 ms target, when they began.
   Before the measured live runs, one unmeasured warm-up run of --warmup seconds (default 30).
   With --composer a control-only composer runs alongside, as in production, and the run also
   reports emotion -> control: from the Kafka timestamp of the emotion window that released a
   control record (the first window whose end reaches the record's music position) to the
   record's own timestamp (produced) and to a read_committed consumer here receiving it
   (received, what a downstream team sees; target p99 <= 50 ms at 100 matches).
   --composer-gather-ms 10,25 runs the composer with each --gather-ms in turn, --repeat runs
   of each, and summarises each value: a comparison within one session.
3. Ramp (optional, --ramp): short live runs at more matches; the ceiling is the most
   matches whose lag does not grow.
4. Security cost (--secure): instead of 1., the Faust worker drains the backlog over
   PLAINTEXT and over SASL_SSL (SCRAM-SHA-512, the local secure broker with ACLs),
   alternating, --repeat times each (steady frames/s, and the worker's CPU per 1000 frames,
   which load from other processes hardly changes); and the live run likewise: the worker,
   the encoders and the latency consumer each log in as their own role (worker, encoder,
   reader), as in production. Reported: every run's figures, then p99 per pair and the median
   and worst of each protocol.

The consumer lag counts records the worker has read but not yet committed: it commits a
record once the match's state including it is checkpointed (every 20 records or 3 s of a
match, see streams/app.py) and Faust commits once a second, so a healthy worker shows a
steady lag of ~2-4 s of audio. "Growing" means the fitted trend adds more than 1 % of the input rate and the lag
ended more than 1 s of audio above where it started.

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
import urllib.request
import uuid
from bisect import bisect_left
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from confluent_kafka import OFFSET_BEGINNING, TopicPartition  # noqa: E402
from confluent_kafka.admin import NewTopic  # noqa: E402
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

from infra.broker import broker_up  # noqa: E402
from infra.clients import UNCOMPRESSED, make_admin, make_consumer, make_producer, reader_group  # noqa: E402
from infra.settings import Settings  # noqa: E402
from infra.topics import apply_catalogue  # noqa: E402
from schemas.audio import encode_payload  # noqa: E402
from schemas.codec import decode, encode  # noqa: E402
from tests.kafka_helpers import cli_env, free_port  # noqa: E402
from tests.benchmarks.bench_support import (  # noqa: E402
    added,
    broker_pid,
    cleaner_buffer,
    cpu_model,
    cpu_seconds,
    drop_topics,
    group_ready,
    machine_cpu_seconds,
    scrape,
    stage_report,
)

FRAME_MS = 1000  # --frame-ms: the venue encoder's default


def frame_samples() -> int:
    return 48 * FRAME_MS


def frames_per_s() -> float:
    """Frames a match sends per second."""
    return 1000 / FRAME_MS


def crowd_frames(seconds: int) -> list[bytes]:
    from producers.stadium import load_script, render_stadium

    script = load_script(REPO / "producers/stadium/scripts/demo.toml")
    audio = np.concatenate(list(render_stadium(script, block_ms=1000, start_ms=60_000, end_ms=60_000 + seconds * 1000)))
    pcm = np.clip(np.rint(audio[:, 0] * 32767), -32768, 32767).astype(np.int16)
    frame = frame_samples()
    return [encode_payload(pcm[i:i + frame], encoding="PCM_S16LE", sample_rate=48_000)
            for i in range(0, len(pcm) - frame + 1, frame)]


def frame_record(match_id: str, seq: int, payload: bytes, wall_ms: int) -> bytes:
    return encode("AudioFrame", {
        "match_id": match_id, "encoder_id": "bench", "session_id": "bench", "seq": seq,
        "clock": {"period": "FIRST_HALF", "ms": seq * FRAME_MS}, "wall_time_ms": wall_ms, "sample_rate": 48_000,
        "channels": 1, "samples_per_channel": frame_samples(), "encoding": "PCM_S16LE", "payload": payload,
    })


def fresh(settings: Settings) -> Settings:
    scoped = settings.with_overrides(topic_prefix=f"bench{uuid.uuid4().hex[:6]}.")
    apply_catalogue(make_admin(scoped), scoped)
    return scoped


@dataclass
class Deployment:
    """A run's topics, and the settings each process uses: the same for all on the plaintext
    broker; on the secure one each role's own principal (`security apply`)."""

    admin: Settings
    folder: Path | None = None

    def role(self, name: str) -> Settings:
        if self.folder is None:
            return self.admin
        return self.admin.with_client_file(self.folder / f"{name}.properties")


def fresh_deployment(admin: Settings, folder: Path | None) -> Deployment:
    """Fresh topics (and, with ``folder``, the roles of a secure cluster written there)."""
    scoped = fresh(admin)
    if folder is None:
        return Deployment(scoped)
    from infra.security import apply_security

    apply_security(make_admin(scoped), scoped, folder)
    return Deployment(scoped, folder)


def backlog(settings: Settings, payloads: list[bytes], matches: int) -> int:
    producer = make_producer(settings, UNCOMPRESSED)
    start = int(time.time() * 1000) - len(payloads) * FRAME_MS
    for seq, payload in enumerate(payloads):
        for m in range(matches):
            producer.produce(settings.topic("crowd.audio.v1"), key=f"m{m}".encode(),
                             value=frame_record(f"m{m}", seq, payload, start + seq * FRAME_MS))
            producer.poll(0)
    producer.flush(60)
    return len(payloads) * matches


def worker_group(settings: Settings) -> str:
    return f"{settings.topic_prefix}crowdsound-streams"  # the Faust app id (streams/app.py)


class Lag:
    """Committed offsets of a consumer group against the log end, over the source topics."""

    def __init__(self, settings: Settings, group: str) -> None:
        self.consumer = make_consumer(settings, group_id=group)  # never subscribes: does not join the group
        self.tps = []
        for name in (settings.topic("crowd.audio.v1"), settings.topic("match.events.v1")):
            partitions = self.consumer.list_topics(name, timeout=10).topics[name].partitions
            self.tps += [TopicPartition(name, p) for p in partitions]

    def committed(self) -> int:
        return sum(max(0, tp.offset) for tp in self.consumer.committed(self.tps, timeout=10))

    def end(self) -> int:
        return sum(self.consumer.get_watermark_offsets(tp, timeout=10, cached=False)[1] for tp in self.tps)

    def lag(self) -> int:
        return max(0, self.end() - self.committed())

    def close(self) -> None:
        self.consumer.close()


def emotions_count(settings: Settings) -> int:
    consumer = make_consumer(settings, group_id=reader_group(settings, f"bench-count-{uuid.uuid4().hex[:6]}"))
    topic = settings.topic("crowd.emotions.v1")
    total = 0
    for p in consumer.list_topics(topic, timeout=10).topics[topic].partitions:
        low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
        total += high - low
    consumer.close()
    return total


def steady_rate(samples: list[tuple[float, int]], total: int) -> float:
    """Records per second between 10 % and 90 % of ``total`` (least squares)."""
    inner = [(t, n) for t, n in samples if 0.1 * total <= n <= 0.9 * total]
    if len(inner) < 3:
        inner = samples
    times, counts = np.array([t for t, _ in inner]), np.array([n for _, n in inner], dtype=float)
    return float(np.polyfit(times, counts, 1)[0]) if len(inner) >= 2 and np.ptp(times) > 0 else float("nan")


HELPER = True  # --no-helper: the worker analyses frames itself (CROWDSOUND_FRAME_HELPER=0)
PROCESSES = 1  # --processes: `crowdsound worker --processes N`
COMPOSER = False  # --composer: a control-only composer reads the emotions during live runs, as in production
CONTROL_TARGET_MS = 50  # issue 13: emotion -> control p99 as a downstream consumer receives it, at 100 matches


def control_latencies(windows: dict[str, list[tuple[int, int]]], controls: list[tuple[str, int, int, float]],
                      since_ms: float) -> tuple[list[float], list[float]]:
    """(produced, received) ms from the emotion window that released each control record.

    ``windows``: per match, (window end ms of match clock, Kafka timestamp) of each first emission;
    ``controls``: (match, music position ms, Kafka timestamp, received wall ms). The composer
    releases a bar, beat or stinger as soon as the watermark (the latest window's end) reaches
    its position, so the releasing window is the first whose end reaches it. Records released
    by windows before ``since_ms`` (wall, the warm-up) or by windows this run did not see are left out.
    """
    produced, received = [], []
    ends = {m: sorted(w) for m, w in windows.items()}
    for match, position, ts, recv in controls:
        ordered = ends.get(match)
        if not ordered:
            continue
        index = bisect_left(ordered, (position, -1))
        if index >= len(ordered) or ordered[index][1] < since_ms:
            continue
        produced.append(ts - ordered[index][1])
        received.append(recv - ordered[index][1])
    return produced, received


def read_controls(settings: Settings, out: list[tuple[str, int, int, float]], stop: threading.Event,
                  ready: threading.Event) -> None:
    """Every music.control.v1 record as a downstream read_committed consumer receives it."""
    consumer = make_consumer(settings, group_id=reader_group(settings, f"bench-ctl-{uuid.uuid4().hex[:6]}"),
                             extra={"auto.offset.reset": "earliest", "fetch.wait.max.ms": 10})
    consumer.subscribe([settings.topic("music.control.v1")], on_assign=lambda *_: ready.set())
    while not stop.is_set():
        message = consumer.poll(0.05)  # returns on the first record: no batching delay in the figures
        if message is None or message.error():
            continue
        received = time.time() * 1000
        record = decode(message.value(), expect="MusicControl")
        out.append((record["match_id"], record["clock"]["ms"], message.timestamp()[1], received))
    consumer.close()


def start_composer(settings: Settings, log: Path, gather_ms: int | None = None) -> subprocess.Popen:
    gather = [] if gather_ms is None else ["--gather-ms", str(gather_ms)]
    return subprocess.Popen([sys.executable, "-m", "infra.cli", "composer", "--outputs", "control",
                             "--instance", "bench", *gather], cwd=log.parent,
                            env=cli_env(settings, CROWDSOUND_LOG_LEVEL="WARNING", CROWDSOUND_METRICS_PORT="0"),
                            stdout=open(log, "w"), stderr=subprocess.STDOUT,  # noqa: SIM115
                            start_new_session=True)


def worker_env(settings: Settings, metrics_port: int = 0) -> dict[str, str]:
    """The worker's environment (with ``settings``' properties file on a secure cluster)."""
    # With --processes N the workers analyse their own frames (no helper each), unless --no-helper
    # says so anyway: N workers already keep the cores busy.
    helper = {"CROWDSOUND_FRAME_HELPER": "1" if HELPER else "0"} if PROCESSES == 1 or not HELPER else {}
    return cli_env(settings, CROWDSOUND_LOG_LEVEL="WARNING", CROWDSOUND_METRICS_PORT=str(metrics_port), **helper)


def start_worker(settings: Settings, log: Path, metrics_port: int = 0) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "infra.cli", "worker", "--processes", str(PROCESSES)],
                            cwd=log.parent,
                            env=worker_env(settings, metrics_port), stdout=open(log, "w"),  # noqa: SIM115
                            stderr=subprocess.STDOUT, start_new_session=True)


def frames_analysed(port: int) -> dict[str, float]:
    """The worker's crowdsound_stream_frames_analysed_total by where (helper / worker); {} if unreadable."""
    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read().decode()  # noqa: S310
    except OSError:
        return {}
    counts: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        if family.name == "crowdsound_stream_frames_analysed":
            for sample in family.samples:
                if sample.name.endswith("_total"):  # (summed over the processes of --processes)
                    counts[sample.labels["where"]] = counts.get(sample.labels["where"], 0.0) + sample.value
    return counts


def worker_main_cpu(worker: subprocess.Popen) -> float:
    """CPU seconds of the worker processes themselves, without their frame helpers (with
    --processes: the supervisor's children, each without its own children)."""
    if PROCESSES == 1:
        return cpu_seconds(worker.pid)
    pids = [int(p) for task in Path(f"/proc/{worker.pid}/task").glob("*/children") for p in task.read_text().split()]
    return cpu_seconds(worker.pid) + sum(cpu_seconds(pid) for pid in pids)


def stop_worker(worker: subprocess.Popen) -> None:
    if worker.poll() is None:
        os.killpg(worker.pid, signal.SIGTERM)
        try:
            worker.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait()


@dataclass
class Drain:
    seconds: float  # from start (worker launch / loop start) to the last window
    steady_fps: float  # frames per second, 10-90 % of the backlog
    cpu_ms_per_1000: float = float("nan")  # worker (+ helper) CPU per 1000 frames, 10-90 % of the backlog


def cpu_per_1000(cpu: list[tuple[int, float]], frames: int) -> float:
    """CPU milliseconds per 1000 frames between 10 % and 90 % of ``frames``, from samples of
    (frames done, CPU seconds so far)."""
    inner = [(n, c) for n, c in cpu if 0.1 * frames <= n <= 0.9 * frames]
    if len(inner) < 2 or inner[-1][0] == inner[0][0]:
        return float("nan")
    return 1000 * (inner[-1][1] - inner[0][1]) / (inner[-1][0] - inner[0][0]) * 1000


def run_faust_worker(settings: Settings, frames: int, expected_windows: int, log: Path, *,
                     roles: Deployment | None = None) -> Drain:
    role = roles.role if roles is not None else (lambda name: settings)
    started = time.monotonic()
    worker = start_worker(role("worker"), log)
    lag = Lag(role("worker"), worker_group(settings))
    samples: list[tuple[float, int]] = []
    cpu: list[tuple[int, float]] = []  # (committed, worker CPU seconds): CPU per frame, whatever else runs
    try:
        while True:
            if worker.poll() is not None:
                raise SystemExit(f"worker exited; see {log}")
            samples.append((time.monotonic(), lag.committed()))
            cpu.append((samples[-1][1], cpu_seconds(worker.pid, children=True)))
            if emotions_count(role("reader")) >= expected_windows:
                break
            time.sleep(0.5)
        seconds = time.monotonic() - started
        deadline = time.monotonic() + 15  # the last records are committed after their checkpoint
        while samples[-1][1] < frames and time.monotonic() < deadline:
            time.sleep(0.5)
            samples.append((time.monotonic(), lag.committed()))
        return Drain(seconds, steady_rate(samples, frames), cpu_per_1000(cpu, frames))
    finally:
        lag.close()
        stop_worker(worker)


def run_plain_loop(settings: Settings, frames: int, *, helper: bool) -> Drain:
    """The same RecordProcessor in a bare confluent-kafka consume/produce loop: features (in
    the same helper process as the worker's, unless --no-helper), model, emotion records,
    and a snapshot of a match's state every CHECKPOINT_RECORDS of its records sent to a
    compacted topic, as the worker's checkpoints. No commits, no recovery: the floor."""
    import asyncio

    from streams.app import CHECKPOINT_RECORDS
    from streams.emotion import EmotionModel
    from streams.join import AcousticEmotion
    from streams.offload import FrameOffload
    from streams.processor import RecordProcessor

    model = EmotionModel.load()
    work = RecordProcessor(settings, predict=lambda f: [AcousticEmotion(e.probabilities, e.arousal, e.valence)
                                                         for e in model.predict(f)], model_version=model.version)
    state_topic = settings.topic("plain-state")
    admin = make_admin(settings)
    for future in admin.create_topics([NewTopic(state_topic, 12, 1, config={"cleanup.policy": "compact"})]).values():
        future.result()
    consumer = make_consumer(settings, group_id=f"plain-{uuid.uuid4().hex[:6]}")
    producer = make_producer(settings)
    topic = settings.topic("crowd.audio.v1")
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING)
                     for p in consumer.list_topics(topic, timeout=10).topics[topic].partitions])
    offload = FrameOffload(enabled=helper)
    unsaved: dict[bytes, int] = {}
    samples: list[tuple[float, int]] = []
    cpu: list[tuple[int, float]] = []  # (frames done, CPU seconds of this process and its helper)

    def apply(batch: list, analyses: dict) -> None:
        for index, decoded in enumerate(batch):
            applied = work.apply(topic=topic, partition=decoded.partition, offset=decoded.offset, key=decoded.key,
                                 value=decoded.value, decoded=decoded, analysis=analyses.get(index))
            for out in applied.outputs:
                producer.produce(out.topic, key=out.key, value=out.value)
            if applied.match is not None:
                unsaved[applied.match] = unsaved.get(applied.match, 0) + 1
                if unsaved[applied.match] >= CHECKPOINT_RECORDS:
                    producer.produce(state_topic, key=applied.match, value=work.snapshot(applied.match),
                                     partition=decoded.partition)
                    unsaved[applied.match] = 0

    async def loop() -> float:
        # As the worker: the helper analyses batch n + 1 while batch n is applied.
        await offload.wait_ready()
        done = 0
        previous = None
        started = time.monotonic()
        while done < frames or previous is not None:
            messages = [m for m in consumer.consume(256, timeout=0.1) if not m.error()] if done < frames else []
            batch = [work.decode_record(topic=topic, partition=m.partition(), offset=m.offset(), key=m.key(),
                                        value=m.value()) for m in messages]
            submitted = offload.submit(batch)
            if previous is not None:
                apply(previous[0], await offload.result(previous[1]))
                offload.done(previous[1])
                done += len(previous[0])
                samples.append((time.monotonic(), done))
                cpu.append((done, cpu_seconds(os.getpid(), children=True)))
            previous = (batch, submitted) if batch else None
            producer.poll(0)
        producer.flush(30)
        return time.monotonic() - started

    try:
        elapsed = asyncio.run(loop())
    finally:
        offload.close()
        consumer.close()
    return Drain(elapsed, steady_rate(samples, frames), cpu_per_1000(cpu, frames))


TARGET_MS = 250  # issue 4: p99 from a window's last frame to its emotion record


@dataclass
class LiveResult:
    matches: int
    seconds: int
    windows: int
    p50_ms: float
    p99_ms: float
    max_ms: float
    worker_p99_ms: float  # emission (record's wall_time_ms) minus audio end, inside the worker
    lag_start: int
    lag_end: int
    lag_max: int
    lag_trend: float  # records per second (least squares)
    worker_cpu: float  # share of one core (the worker process and its frame helper)
    worker_main_cpu: float  # the worker process alone
    broker_cpu: float
    composer_cpu: float  # the control-only composer (--composer; 0 without)
    machine_cpu: float  # all processes on the machine, cores busy
    load_cpu: float  # this benchmark (the encoders' producer and the latency consumer)
    sent_late_ms: float  # how far the producer fell behind its schedule at worst
    delivered_ms: tuple[float, float]  # p50, p99 from produce() to the broker's ack of a frame
    slow: list[tuple[float, int, float]]  # episodes of windows over TARGET_MS: (start s into the run, windows, worst ms)
    helper_share: float  # of the frames analysed, the share the frame helper analysed (NaN: no helper)
    helper_share_slow: list[float]  # the same from 2 s before to 10 s after each slow episode began
    stages: str = ""  # the worker's per-stage breakdown (streams/stages.py) over the measured part
    # --composer: emotion window (its Kafka timestamp) -> the control record it released, after the warm-up
    control_produced_ms: list[float] = field(default_factory=list)  # the control record's Kafka timestamp
    control_received_ms: list[float] = field(default_factory=list)  # a read_committed consumer receives it

    @property
    def fps(self) -> int:
        return self.matches * frames_per_s()

    @property
    def others_cpu(self) -> float:
        return max(0.0, self.machine_cpu - self.worker_cpu - self.broker_cpu - self.composer_cpu - self.load_cpu)

    @property
    def growing(self) -> bool:
        return self.lag_trend > 0.01 * self.fps and self.lag_end - self.lag_start > self.fps

    def report(self) -> str:
        seconds_of = 1 / self.fps
        return (
            f"live: {self.matches} matches x {self.seconds} s ({self.fps} frames/s), {self.windows} windows\n"
            f"  last frame -> emotion record at a consumer: p50 {self.p50_ms:.0f} ms, p99 {self.p99_ms:.0f} ms, "
            f"max {self.max_ms:.0f} ms (inside the worker: p99 {self.worker_p99_ms:.0f} ms)\n"
            f"  consumer lag (records): start {self.lag_start} ({self.lag_start * seconds_of:.1f} s of audio), "
            f"end {self.lag_end} ({self.lag_end * seconds_of:.1f} s), max {self.lag_max} "
            f"({self.lag_max * seconds_of:.1f} s), trend {self.lag_trend:+.1f} records/s -> "
            f"{'GROWING' if self.growing else 'not growing'}\n"
            f"  CPU (% of one core): worker {100 * self.worker_cpu:.0f} (of which its frame helper "
            f"{100 * (self.worker_cpu - self.worker_main_cpu):.0f}), broker {100 * self.broker_cpu:.0f}, "
            f"{f'control composer {100 * self.composer_cpu:.0f}, ' if COMPOSER else ''}this "
            f"benchmark's encoders and consumer {100 * self.load_cpu:.0f}, anything else on the machine "
            f"{100 * self.others_cpu:.0f}; whole machine {100 * self.machine_cpu:.0f} of {100 * (os.cpu_count() or 1)}\n"
            f"  producer at most {self.sent_late_ms:.0f} ms behind its schedule, frames acked by the broker "
            f"p50 {self.delivered_ms[0]:.0f} ms / p99 {self.delivered_ms[1]:.0f} ms after produce(); "
            f"frames analysed by the helper "
            f"{100 * self.helper_share:.0f} %\n"
            f"  windows over {TARGET_MS} ms: {sum(n for _, n, _ in self.slow)}"
            + "".join(f"; {n} at {at:.0f} s (worst {worst:.0f} ms, frames by the helper around it "
                      f"{100 * share:.0f} %)" for (at, n, worst), share in zip(self.slow[:6], self.helper_share_slow))
            + (f"; and {len(self.slow) - 6} more episodes" if len(self.slow) > 6 else "")
            + (f"\n  {self.control_report()}" if self.control_received_ms else "")
            + (f"\n  where the worker's time went (after the warm-up):\n{self.stages}" if self.stages else "")
        )

    @property
    def control_p99_ms(self) -> float:
        return float(np.percentile(self.control_received_ms, 99)) if self.control_received_ms else float("nan")

    def control_report(self) -> str:
        produced, received = np.array(self.control_produced_ms), np.array(self.control_received_ms)
        return (f"emotion window -> control record ({len(received)} after the warm-up): produced p50 "
                f"{np.percentile(produced, 50):.0f} / p99 {np.percentile(produced, 99):.0f} ms, "
                f"received (read_committed) p50 {np.percentile(received, 50):.0f} / p99 {self.control_p99_ms:.0f} / "
                f"max {received.max():.0f} ms "
                f"(target p99 <= {CONTROL_TARGET_MS} ms received)")


def helper_share(analysed: list[tuple[float, dict[str, float]]], start: float, end: float) -> float:
    """Share of the frames analysed between the samples nearest to [start, end] that the helper analysed."""
    inside = [counts for at, counts in analysed if start <= at <= end and counts]
    if len(inside) < 2:
        return float("nan")
    done = {where: inside[-1].get(where, 0.0) - inside[0].get(where, 0.0) for where in ("helper", "worker")}
    total = done["helper"] + done["worker"]
    return done["helper"] / total if total else float("nan")


def slow_episodes(arrivals: list[tuple[float, float]], since: float) -> list[tuple[float, int, float]]:
    """Windows over the target grouped into episodes (arrivals less than 1 s apart)."""
    episodes: list[list[float]] = []  # [start, last, count, worst]
    for at, latency in sorted(arrivals):
        if latency <= TARGET_MS:
            continue
        if episodes and at - episodes[-1][1] < 1.0:
            episodes[-1][1:] = [at, episodes[-1][2] + 1, max(episodes[-1][3], latency)]
        else:
            episodes.append([at, at, 1, latency])
    return [(start - since, int(count), worst) for start, _, count, worst in episodes]


def live(settings: Settings, base: Settings, payloads: list[bytes], matches: int, seconds: int, log: Path, *,
         lockstep: bool = False, warmup_s: float = 10.0, roles: Deployment | None = None,
         gather_ms: int | None = None) -> LiveResult:
    """One live run; ``roles`` gives each process its principal (default: ``settings`` for all)."""
    role = roles.role if roles is not None else (lambda name: settings)
    metrics_port = free_port()
    worker = start_worker(role("worker"), log, metrics_port)
    composer = start_composer(role("composer"), log.with_suffix(".composer.log"), gather_ms) if COMPOSER else None
    analysed: list[tuple[float, dict[str, float]]] = []  # (wall time, frames analysed by where), every 2 s
    latencies: list[float] = []
    inside: list[float] = []
    arrivals: list[tuple[float, float]] = []  # (arrival, latency ms) for the slow-episode report
    stop = threading.Event()
    ready = threading.Event()
    window_times: dict[str, list[tuple[int, int]]] = {}  # match -> (window end ms, Kafka timestamp), for --composer
    controls: list[tuple[str, int, int, float]] = []

    def consume() -> None:
        consumer = make_consumer(role("reader"), group_id=reader_group(settings, f"bench-lat-{uuid.uuid4().hex[:6]}"),
                                 extra={"auto.offset.reset": "latest", "fetch.wait.max.ms": 10})
        consumer.subscribe([settings.topic("crowd.emotions.v1")], on_assign=lambda *_: ready.set())
        while not stop.is_set():
            message = consumer.poll(0.05)
            if message is None or message.error():
                continue
            arrived = time.time() * 1000
            window = decode(message.value(), expect="EmotionWindow")
            if window["revision"] == 0:
                window_times.setdefault(window["match_id"], []).append(
                    (window["clock"]["ms"] + window["length_ms"], message.timestamp()[1]))
                latencies.append(arrived - window["audio_wall_time_ms"])
                arrivals.append((arrived / 1000, latencies[-1]))
                inside.append(window["wall_time_ms"] - window["audio_wall_time_ms"])
        consumer.close()

    reader = threading.Thread(target=consume, daemon=True)
    reader.start()
    ready.wait(30)
    control_reader = None
    if composer is not None:
        control_ready = threading.Event()
        control_reader = threading.Thread(target=read_controls, args=(role("reader"), controls, stop, control_ready),
                                          daemon=True)
        control_reader.start()
        control_ready.wait(30)
    # Encoders start once the worker(s) own the partitions: frames sent while a worker is still
    # starting wait for it, a backlog the run would then measure instead of the live path.
    started = group_ready(role("worker"), worker_group(settings), PROCESSES, timeout_s=90,
                          check=lambda: worker.poll() is None or sys.exit(f"the worker exited; see {log}"))
    if started is None:
        sys.exit(f"the worker did not join its group in 90 s; see {log}")
    time.sleep(2)  # the table's (empty) changelog recovered
    lag = Lag(role("worker"), worker_group(settings))
    lag_samples: list[tuple[float, int]] = []
    rng = np.random.default_rng(7)
    # Match m's encoder started at a random moment of the first second: it sends its frame
    # `phase` into every tick of FRAME_MS, from tick `first` on (so the matches' windows close at
    # different moments too, as when kick-offs differ).
    started_at = np.zeros(matches) if lockstep else rng.uniform(0.0, 1.0, matches)
    tick = FRAME_MS / 1000
    first = (started_at // tick).astype(int)
    phase = started_at - first * tick
    order = np.argsort(phase, kind="stable")
    keys = [f"live{m}".encode() for m in range(matches)]
    producer = make_producer(role("encoder"), {**UNCOMPRESSED, "linger.ms": 1})
    topic = settings.topic("crowd.audio.v1")
    begin = time.time() + 0.5
    worker_cpu0, broker_cpu0, wall0 = cpu_seconds(worker.pid, children=True), cpu_seconds(broker_pid(base)), \
        time.monotonic()
    composer_cpu0 = cpu_seconds(composer.pid) if composer is not None else 0.0
    main_cpu0, machine0, own0 = worker_main_cpu(worker), machine_cpu_seconds(), cpu_seconds(os.getpid())
    late = 0.0
    acked: list[float] = []  # ms from produce() to the broker's ack, after the warm-up

    def delivered(error: object, message: object) -> None:
        if error is None and stages0 is not None:
            acked.append(time.time() * 1000 - message.timestamp()[1])  # type: ignore[attr-defined]

    next_lag = time.monotonic() + warmup_s
    stages0: tuple[float, dict] | None = None
    cycle = 0
    while cycle * tick < seconds:
        for m in order:
            if cycle < first[m]:
                continue
            seq = cycle - first[m]
            due = begin + cycle * tick + phase[m]
            delay = due - time.time()
            if delay > 0:
                time.sleep(delay)
            else:
                late = max(late, -delay * 1000)
            wall = int(due * 1000) - FRAME_MS  # the frame's first sample was captured a frame before it is sent
            producer.produce(topic, key=keys[m], value=frame_record(keys[m].decode(), int(seq),
                                                                     payloads[seq % len(payloads)], wall),
                             on_delivery=delivered)
            producer.poll(0)
        if time.monotonic() >= next_lag:
            lag_samples.append((time.monotonic(), lag.lag()))
            analysed.append((time.time(), frames_analysed(metrics_port)))
            if stages0 is None:
                stages0 = (time.monotonic(), scrape(metrics_port))
            next_lag = time.monotonic() + 2.0
        cycle += 1
    producer.flush(30)
    elapsed = time.monotonic() - wall0
    worker_cpu = (cpu_seconds(worker.pid, children=True) - worker_cpu0) / elapsed
    main_cpu = (worker_main_cpu(worker) - main_cpu0) / elapsed
    broker_cpu = (cpu_seconds(broker_pid(base)) - broker_cpu0) / elapsed
    composer_cpu = (cpu_seconds(composer.pid) - composer_cpu0) / elapsed if composer is not None else 0.0
    machine_cpu = (machine_cpu_seconds() - machine0) / elapsed
    own_cpu = (cpu_seconds(os.getpid()) - own0) / elapsed
    stages = ""
    if stages0 is not None:
        span = time.monotonic() - stages0[0]
        stages = stage_report(added(stages0[1], scrape(metrics_port)), span, matches * frames_per_s() * span, indent="    ")
    time.sleep(3)
    stop.set()
    reader.join(timeout=10)
    if control_reader is not None:
        control_reader.join(timeout=10)
    lag.close()
    stop_worker(worker)
    if composer is not None:
        stop_worker(composer)
    if not latencies or len(lag_samples) < 3:
        raise SystemExit(f"live: no windows or lag samples; see {log}")
    values, own = np.array(latencies), np.array(inside)
    times, lags = np.array([t for t, _ in lag_samples]), np.array([n for _, n in lag_samples], dtype=float)
    slow = slow_episodes(arrivals, begin)
    control_produced, control_received = control_latencies(window_times, controls, (begin + warmup_s) * 1000)
    return LiveResult(
        matches=matches, seconds=seconds, windows=len(values), p50_ms=float(np.percentile(values, 50)),
        p99_ms=float(np.percentile(values, 99)), max_ms=float(values.max()),
        worker_p99_ms=float(np.percentile(own, 99)),
        lag_start=int(lags[0]), lag_end=int(lags[-1]), lag_max=int(lags.max()),
        lag_trend=float(np.polyfit(times - times[0], lags, 1)[0]), worker_cpu=worker_cpu, worker_main_cpu=main_cpu,
        broker_cpu=broker_cpu, composer_cpu=composer_cpu, machine_cpu=machine_cpu, load_cpu=own_cpu, sent_late_ms=late,
        delivered_ms=(float(np.percentile(acked, 50)), float(np.percentile(acked, 99))) if acked else (0.0, 0.0),
        slow=slow, helper_share=helper_share(analysed, 0.0, float("inf")),
        helper_share_slow=[helper_share(analysed, begin + at - 2, begin + at + 10) for at, _, _ in slow],
        stages=stages, control_produced_ms=control_produced, control_received_ms=control_received,
    )


def repeat_summary(results: list[LiveResult]) -> str:
    """The figures of several live runs: min / median / max of each, and how many held."""
    rows = [("p50 ms", [r.p50_ms for r in results]), ("p99 ms", [r.p99_ms for r in results]),
            ("max ms", [r.max_ms for r in results]), ("lag trend records/s", [r.lag_trend for r in results]),
            ("worker CPU %", [100 * r.worker_cpu for r in results]),
            ("broker CPU %", [100 * r.broker_cpu for r in results]),
            ("machine CPU %", [100 * r.machine_cpu for r in results])]
    with_control = all(r.control_received_ms for r in results)
    if with_control:
        rows.insert(2, ("control p99 received ms", [r.control_p99_ms for r in results]))
    held = sum(1 for r in results if r.p99_ms <= TARGET_MS and not r.growing)
    lines = [f"{len(results)} live runs ({', '.join(str(r.matches) for r in results)} matches):",
             f"  {'':<22}{'min':>9}{'median':>9}{'max':>9}   each run"]
    for name, values in rows:
        lines.append(f"  {name:<22}{min(values):>9.0f}{float(np.median(values)):>9.0f}{max(values):>9.0f}   "
                     + " ".join(f"{v:.0f}" for v in values))
    lines.append(f"  held (p99 <= {TARGET_MS} ms and lag not growing): {held} of {len(results)}")
    if with_control:
        control_held = sum(1 for r in results if r.control_p99_ms <= CONTROL_TARGET_MS)
        lines.append(f"  control held (emotion -> control p99 received <= {CONTROL_TARGET_MS} ms): "
                     f"{control_held} of {len(results)}")
    return "\n".join(lines)


def backlog_drains(base: Settings, payloads: list[bytes], matches: int, seconds: int, repeat: int,
                   folder: Path) -> str:
    """Throughput (1.): the same backlog drained by the Faust worker and by the plain loop,
    ``repeat`` pairs, each on fresh topics; which goes first alternates, so a machine that
    slows down or speeds up during the runs favours neither. Returns the report."""
    windows_per_match = seconds - 2  # 3 s windows, 1 s hop
    chunk = payloads[:int(seconds * frames_per_s())]
    pairs: list[tuple[Drain, Drain]] = []
    frames = 0
    for number in range(repeat):
        drains: dict[str, Drain] = {}
        for kind in (("faust", "plain") if number % 2 == 0 else ("plain", "faust")):
            scoped = fresh(base)
            frames = backlog(scoped, chunk, matches)
            if kind == "faust":
                drains[kind] = run_faust_worker(scoped, frames, windows_per_match * matches,
                                                folder / f"faust{number}.log")
            else:
                drains[kind] = run_plain_loop(scoped, frames, helper=HELPER)
            drop_topics(scoped)
        faust, plain = drains["faust"], drains["plain"]
        pairs.append((faust, plain))
        if repeat > 1:
            print(f"[backlog {number + 1}/{repeat}] Faust {faust.steady_fps:.0f} frames/s "
                  f"({faust.cpu_ms_per_1000:.0f} ms CPU/1000), plain loop {plain.steady_fps:.0f} frames/s "
                  f"({plain.cpu_ms_per_1000:.0f} ms CPU/1000): {faust.steady_fps / plain.steady_fps:.2f}", flush=True)
    faust, plain = pairs[-1]
    out = [f"backlog: {matches} matches x {seconds} s = {frames} frames"
           + (f", {repeat} pairs of drains (the last one shown)" if repeat > 1 else ""),
           f"{'':<30}{'total s':>9}{'steady frames/s':>17}{'live matches':>14}{'CPU ms/1000 frames':>20}",
           f"{'crowdsound worker (Faust)':<30}{faust.seconds:>9.1f}{faust.steady_fps:>17.0f}"
           f"{faust.steady_fps / frames_per_s():>14.0f}{faust.cpu_ms_per_1000:>20.0f}"
           "   (total includes ~8 s worker start-up; CPU: worker and its helper)",
           f"{'plain confluent loop (floor)':<30}{plain.seconds:>9.1f}{plain.steady_fps:>17.0f}"
           f"{plain.steady_fps / frames_per_s():>14.0f}{plain.cpu_ms_per_1000:>20.0f}"
           "   (CPU: the loop's process and its helper)"]
    if repeat > 1:
        def spread(values: list[float], fmt: str) -> str:
            return (f"min {format(min(values), fmt)} / median {format(float(np.median(values)), fmt)} / "
                    f"max {format(max(values), fmt)}")

        ratios = [f.steady_fps / p.steady_fps for f, p in pairs]
        out.append(f"over {repeat} pairs: Faust {spread([f.steady_fps for f, _ in pairs], '.0f')} frames/s; plain "
                   f"{spread([p.steady_fps for _, p in pairs], '.0f')} frames/s; Faust/plain "
                   f"{spread(ratios, '.2f')} (each run: {' '.join(f'{r:.2f}' for r in ratios)}); CPU ms per 1000 "
                   f"frames: Faust {spread([f.cpu_ms_per_1000 for f, _ in pairs], '.0f')}, plain "
                   f"{spread([p.cpu_ms_per_1000 for _, p in pairs], '.0f')}")
    return "\n".join(out)


def secure_admin(base: Settings) -> Settings:
    """The local secure broker (started if not running) as its admin."""
    from infra.broker import admin_properties_path, default_security_dir

    broker_up(base, secure=True)
    return base.with_client_file(admin_properties_path(default_security_dir(base)))


def backlog_security_cost(base: Settings, payloads: list[bytes], matches: int, seconds: int, repeat: int,
                          tmp: Path) -> str:
    """The Faust worker draining the same backlog over PLAINTEXT and over SASL_SSL, alternating:
    steady frames/s and the worker's CPU per 1000 frames (which other load on the machine
    hardly changes, unlike the rate)."""
    secure_base = secure_admin(base)
    rows = []
    for index in range(repeat):
        protocols = (("PLAINTEXT", base, None), ("SASL_SSL", secure_base, tmp / f"backlog-roles{index}"))
        for name, admin, folder in protocols:
            deployment = fresh_deployment(admin, folder)
            frames = backlog(deployment.role("encoder"), payloads[:int(seconds * frames_per_s())], matches)
            drain = run_faust_worker(deployment.admin, frames, (seconds - 2) * matches,
                                     tmp / f"drain-{name}{index}.log", roles=deployment)
            drop_topics(deployment.admin)
            rows.append((name, drain))
            print(f"[backlog {index + 1}/{repeat} {name}] {frames} frames: {drain.steady_fps:.0f} frames/s steady, "
                  f"worker CPU {drain.cpu_ms_per_1000:.0f} ms per 1000 frames", flush=True)
    lines = [f"security cost, backlog of {matches} matches x {seconds} s, {repeat} run(s) each:"]
    for name in ("PLAINTEXT", "SASL_SSL"):
        fps = np.array([d.steady_fps for n, d in rows if n == name])
        cpu = np.array([d.cpu_ms_per_1000 for n, d in rows if n == name])
        lines.append(f"  {name:<10} steady frames/s median {np.median(fps):.0f} (worst {fps.min():.0f}); "
                     f"worker CPU per 1000 frames median {np.median(cpu):.0f} ms (worst {cpu.max():.0f} ms)")
    return "\n".join(lines)


def security_cost(pairs: list[tuple[LiveResult, LiveResult]]) -> str:
    """p99 (last frame -> emotion record) per pair and the median/worst of each protocol."""
    plain = np.array([p.p99_ms for p, _ in pairs])
    secure = np.array([s.p99_ms for _, s in pairs])
    lines = [f"security cost, {pairs[0][0].matches} live matches x {pairs[0][0].seconds} s, {len(pairs)} pair(s):",
             f"  {'run':<5}{'PLAINTEXT p99':>15}{'SASL_SSL p99':>15}{'difference':>12}"
             f"{'worker CPU plain/ssl':>22}{'broker CPU plain/ssl':>22}"]
    for index, (p, s) in enumerate(pairs, start=1):
        lines.append(f"  {index:<5}{p.p99_ms:>12.0f} ms{s.p99_ms:>12.0f} ms{s.p99_ms - p.p99_ms:>+9.0f} ms"
                     f"{100 * p.worker_cpu:>12.0f} / {100 * s.worker_cpu:<7.0f}"
                     f"{100 * p.broker_cpu:>12.0f} / {100 * s.broker_cpu:<7.0f}")
    lines.append(f"  median p99: PLAINTEXT {np.median(plain):.0f} ms, SASL_SSL {np.median(secure):.0f} ms; "
                 f"worst p99: PLAINTEXT {plain.max():.0f} ms, SASL_SSL {secure.max():.0f} ms")
    lines.append(f"  lag growing: PLAINTEXT {sum(p.growing for p, _ in pairs)}, SASL_SSL "
                 f"{sum(s.growing for _, s in pairs)} of {len(pairs)}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--matches", type=int, default=150, help="backlog matches (throughput)")
    parser.add_argument("--seconds", type=int, default=30, help="backlog seconds of audio per match")
    parser.add_argument("--live-matches", type=int, default=100)
    parser.add_argument("--live-seconds", type=int, default=180)
    parser.add_argument("--ramp", default="", help="comma-separated match counts for short live runs (ceiling)")
    parser.add_argument("--ramp-seconds", type=int, default=60)
    parser.add_argument("--lockstep", action="store_true", help="all encoders send at the same instant")
    parser.add_argument("--frame-ms", type=int, default=1000, choices=[100, 200, 250, 500, 1000],
                        help="audio frame length (default 1000, the venue encoder's default)")
    parser.add_argument("--skip-backlog", action="store_true")
    parser.add_argument("--backlog-repeat", type=int, default=1, metavar="N",
                        help="drain the backlog N times with each of Faust and the plain loop, alternating which "
                             "goes first, and report the Faust/plain ratio per pair and its min/median/max "
                             "(default 1; one pair's ratio moved 0.67-0.93 between runs on this box)")
    parser.add_argument("--warmup", type=int, default=30, metavar="S",
                        help="an unmeasured live run of S seconds before the measured ones (default 30; 0: none): "
                             "a broker that just started compiles its hot paths then (the first 3-minute run "
                             "after a broker start had p99 ~660 ms, the next ones ~150)")
    parser.add_argument("--no-helper", action="store_true",
                        help="analyse frames in the worker's own process (and in the plain loop's)")
    parser.add_argument("--processes", type=int, default=1, help="crowdsound worker --processes N (default 1)")
    parser.add_argument("--composer", action="store_true",
                        help="run a control-only composer on the emotions during live runs, as in production")
    parser.add_argument("--composer-gather-ms", default="", metavar="LIST",
                        help="with --composer: its --gather-ms; a comma list (e.g. 10,25) alternates the values "
                             "over the live runs and summarises each, a comparison in one session")
    parser.add_argument("--secure", action="store_true",
                        help="the live run over PLAINTEXT and over SASL_SSL with role principals, alternating")
    parser.add_argument("--repeat", type=int, default=1, help="live runs per protocol (default 1)")
    args = parser.parse_args()
    global HELPER, PROCESSES, COMPOSER, FRAME_MS
    HELPER = not args.no_helper
    PROCESSES = args.processes
    COMPOSER = args.composer
    FRAME_MS = args.frame_ms
    base = Settings.from_env()
    if "KAFKA_BOOTSTRAP_SERVERS" not in os.environ:  # the local broker, on CROWDSOUND_BROKER_PORT
        status, _ = broker_up(base)
        base = base.with_overrides(bootstrap_servers=status.bootstrap)
    payloads = crowd_frames(max(args.seconds, 30))
    workers = "one worker" if PROCESSES == 1 else f"worker --processes {PROCESSES}"
    helper = "on" if HELPER and PROCESSES == 1 else "off"
    print(f"machine: {os.cpu_count()} cores ({cpu_model()}); broker {base.bootstrap_servers} "
          f"({cleaner_buffer(base)}); {workers}, frame helper "
          f"process {helper}{'; a control-only composer alongside' if COMPOSER else ''}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        if os.environ.get("BENCH_LOG_DIR"):  # keep the worker logs
            tmp = os.environ["BENCH_LOG_DIR"]
        if not args.skip_backlog and not args.secure:
            print(backlog_drains(base, payloads, args.matches, args.seconds, args.backlog_repeat, Path(tmp)),
                  flush=True)
        if args.secure and not args.skip_backlog:
            print(backlog_security_cost(base, payloads, args.matches, args.seconds, args.repeat, Path(tmp)),
                  flush=True)
        results = []
        if args.warmup > 0 and not args.secure and (args.live_seconds > 0 or args.ramp):
            scoped = fresh(base)
            warm = live(scoped, base, payloads, args.live_matches, args.warmup, Path(tmp) / "warmup.log",
                        lockstep=args.lockstep)
            drop_topics(scoped)
            print(f"warm-up run, not counted ({args.live_matches} matches x {args.warmup} s): p99 {warm.p99_ms:.0f} ms, "
                  f"max {warm.max_ms:.0f} ms", flush=True)
        for count in [int(c) for c in args.ramp.split(",") if c.strip()]:
            scoped = fresh(base)
            result = live(scoped, base, payloads, count, args.ramp_seconds, Path(tmp) / f"ramp{count}.log",
                          lockstep=args.lockstep)
            drop_topics(scoped)
            results.append(result)
            print("ramp " + result.report(), flush=True)
        if args.live_seconds > 0 and args.secure:
            secure_base = secure_admin(base)
            pairs: list[tuple[LiveResult, LiveResult]] = []
            for repeat in range(args.repeat):
                pair = []
                for name, admin, folder in (("PLAINTEXT", base, None),
                                            ("SASL_SSL", secure_base, Path(tmp) / f"roles{repeat}")):
                    deployment = fresh_deployment(admin, folder)
                    result = live(deployment.admin, admin, payloads, args.live_matches, args.live_seconds,
                                  Path(tmp) / f"live-{name}-{repeat}.log", lockstep=args.lockstep, roles=deployment)
                    drop_topics(deployment.admin)
                    pair.append(result)
                    print(f"[{repeat + 1}/{args.repeat} {name}] " + result.report(), flush=True)
                pairs.append((pair[0], pair[1]))
                results.append(pair[0])
            print(security_cost(pairs))
        elif args.live_seconds > 0:
            gathers = [int(g) for g in args.composer_gather_ms.split(",") if g.strip()] or [None]
            by_gather: dict[int | None, list[LiveResult]] = {g: [] for g in gathers}
            for repeat in range(args.repeat * len(gathers)):
                gather = gathers[repeat % len(gathers)]
                scoped = fresh(base)
                result = live(scoped, base, payloads, args.live_matches, args.live_seconds,
                              Path(tmp) / f"live{repeat}.log", lockstep=args.lockstep, gather_ms=gather)
                drop_topics(scoped)
                results.append(result)
                by_gather[gather].append(result)
                print(("" if gather is None else f"[composer --gather-ms {gather}] ") + result.report(), flush=True)
            if len(gathers) > 1:
                for gather, runs in by_gather.items():
                    print(f"composer --gather-ms {gather}: " + repeat_summary(runs))
        if len(results) > 1:
            print(repeat_summary(results))
        if results:
            keeping_up = [r.matches for r in results if not r.growing]
            print(f"ceiling (live): {max(keeping_up) if keeping_up else 'none'} matches kept up "
                  f"(tried {', '.join(str(r.matches) for r in results)})")


if __name__ == "__main__":
    main()
