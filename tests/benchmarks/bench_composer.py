"""Benchmark of the composer against a real broker (a script, not a test).

    .venv/bin/python tests/benchmarks/bench_composer.py [--matches 100] [--audio-matches 20]
        [--audio-replicas 1] [--render-threads 2] [--seconds 120] [--warmup 10] [--phases control,audio,combined]
        [--port 25092] [--keep-broker] [--reader-fetch-wait-ms 10] [--dump DIR]

    ceiling of one audio process: --phases audio --seconds 60 --audio-matches 25 (30, 40 ...)

Every phase plays matches live: each match sends one EmotionWindow (hop 1 s, length 3 s)
per second, the matches spread evenly over the second as independent stream workers would
be. The crowd is scripted (a 60 s cycle of calm, anticipation with a home shot, a home goal
and celebration, a chant at 112-130 bpm, anger with a card, disappointment), each match at
its own point of the cycle, so bars, stingers and chant tempo locks happen throughout. All
matches start together, and a match's first window releases 3 s of music at once, so the
first seconds are a burst (worst for audio); the warm-up exclusion covers it.

1. control: ``crowdsound composer --outputs control`` with MATCHES matches.
2. audio: ``crowdsound composer --outputs audio`` alone with AUDIO_MATCHES matches.
3. combined ("alongside the rest"): both composers at once on one broker and machine — the
   control group over MATCHES matches and the audio group over AUDIO_MATCHES of those same
   matches. A consumer group cannot be told to compose only some matches of its topic, so
   the audio group reads its own copy of the emotion topic (a second topic prefix) into
   which the same windows of its matches are written at the same instant.

Latency of a control record (or audio chunk) is measured from the Kafka timestamp of the
emotion window that released it: the first window of the match whose end reached the
record's music position (exact, from the record's match clock; the composer releases a bar
or beat as soon as the watermark reaches its start). Two figures:
* produced: the output record's Kafka timestamp (its produce() call inside the transaction)
  minus the window's — what the composer itself adds;
* received: when a read_committed consumer here receives it minus the window's timestamp —
  end to end as a downstream consumer sees it (after the transaction commits). The broker
  answers a waiting read_committed fetch as soon as the commit markers advance the last
  stable offset, so this does not depend on fetch.wait.max.ms (checked with 10 and 500).
The first WARMUP seconds of windows are excluded. Consumer lag is the composer group's
committed offsets against the log end of its emotion topic, sampled every 2 s. The
composer's own histograms (/metrics: window -> commit, time per transaction) are printed
too, which separates the transaction from the delivery to a consumer.

CPU is read from /proc for the composers, the broker and this script, and for the whole
machine: "other processes" is what else ran meanwhile. On a shared 2-core machine that
figure decides the result more than anything here; rerun when it is high.

Audio keeps up when every match's music position (end of the latest audio chunk received)
advances at 1.0 music second per wall second (least squares, after the warm-up) and its
distance behind the emotion watermark (end of the latest window sent) does not grow. Music
is released beat by beat up to the watermark, so in steady state it is within about one
beat ahead / one hop behind the watermark.

Starts its own broker (infra.broker) on PORT unless KAFKA_BOOTSTRAP_SERVERS is set; each
phase gets fresh topics (apply_catalogue) under a new prefix and deletes them afterwards.
"""

from __future__ import annotations

import argparse
import math
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from bisect import bisect_right
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from confluent_kafka import OFFSET_BEGINNING, TopicPartition  # noqa: E402

from infra.broker import broker_down  # noqa: E402
from infra.clients import make_admin, make_consumer, make_producer, match_key  # noqa: E402
from infra.settings import Settings  # noqa: E402
from infra.topics import apply_catalogue  # noqa: E402
from schemas.codec import decode, encode  # noqa: E402
from tests.music_samples import Spell, emotion_windows  # noqa: E402
from tests.kafka_helpers import cli_env, free_port  # noqa: E402
from tests.benchmarks.bench_support import (  # noqa: E402
    bench_broker,
    broker_pid,
    cleaner_buffer,
    cpu_model,
    cpu_seconds,
    drop_topics,
    group_ready,
    machine_cpu_seconds,
)

SAMPLE_RATE = 48_000
HOP_S = 1
LENGTH_MS = 3000
CYCLE_S = 60
CONTROL_P99_TARGET_MS = 50.0
READER_FETCH_WAIT_MS = 10  # --reader-fetch-wait-ms
RATE_TARGET = 0.99  # music s per wall s; 1.0 exactly in steady state, minus beat quantisation


# -- the scripted crowd -------------------------------------------------------------------------
def crowd_script(index: int, seconds: int) -> tuple[list[dict], int]:
    """Windows for ``seconds`` of match ``index`` and the match second they start at."""
    chant = 112.0 + 3.0 * (index % 7)
    spells = []
    for k in range(math.ceil((seconds + CYCLE_S + 5) / CYCLE_S)):
        b = k * CYCLE_S
        spells += [
            Spell(b + 0, b + 14, "CALM", 0.2, 0.0),
            Spell(b + 14, b + 20, "ANTICIPATION", 0.55, 0.1, events=[(b + 17, "SHOT", "HOME")]),
            Spell(b + 20, b + 32, "CELEBRATION", 0.95, 0.8, events=[(b + 21, "GOAL", "HOME")]),
            Spell(b + 32, b + 46, "CHANTING", 0.65, 0.5, chant_bpm=chant),
            Spell(b + 46, b + 56, "ANGER", 0.7, -0.5, events=[(b + 48, "CARD", "AWAY")]),
            Spell(b + 56, b + 60, "DISAPPOINTMENT", 0.4, -0.3,
                  events=[(b + 57, "GOAL", "AWAY")] if k % 2 else []),
        ]
    shift = (index * 37) % CYCLE_S
    windows = emotion_windows(f"bm{index:03d}", spells)
    return windows[shift:shift + seconds + 2], shift


def releasing_window(music_ms: int) -> int:
    """Index of the first window (0-based, window i covers [i, i+3) s of music) whose end
    reaches ``music_ms``: the composer emits a bar/beat/stinger once the watermark reaches it."""
    return max(0, math.ceil((music_ms - LENGTH_MS) / 1000))


# -- processes and broker ------------------------------------------------------------------------


def self_cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system


def fresh(base: Settings) -> Settings:
    """A new topic prefix with the catalogue and the composer's state topic created.

    The state topic is created here, not by the composer at start-up: a composer that
    creates it and is assigned partitions at once can read its watermarks before the new
    partitions' metadata reached it (KafkaException UNKNOWN_PARTITION in on_assign, seen
    on this loaded machine), which is not what this benchmark measures.
    """
    from consumers.composer import _ensure_state_topic

    scoped = base.with_overrides(topic_prefix=f"bc{uuid.uuid4().hex[:6]}.")
    admin = make_admin(scoped)
    apply_catalogue(admin, scoped)
    _ensure_state_topic(scoped)  # waits until its partitions are known
    return scoped


def group_id(settings: Settings, outputs: str) -> str:
    return f"{settings.topic_prefix}crowdsound-composer-{outputs}"  # consumers/composer.py _group_id


@dataclass
class Group:
    """One composer consumer group: ``len(processes)`` replicas (``--instance`` 1..n)."""

    settings: Settings
    outputs: str
    processes: list[subprocess.Popen]
    logs: list[Path]
    metrics_ports: list[int]

    @property
    def group(self) -> str:
        return group_id(self.settings, self.outputs)

    @property
    def name(self) -> str:
        return self.outputs if len(self.processes) == 1 else f"{self.outputs} x{len(self.processes)}"

    def check(self) -> None:
        for process, log in zip(self.processes, self.logs):
            if process.poll() is not None:
                tail = log.read_text(errors="replace").splitlines()[-20:]
                raise SystemExit(f"composer --outputs {self.outputs} exited ({process.returncode}); "
                                 f"{log}:\n" + "\n".join(tail))

    def cpu(self) -> float:
        return sum(cpu_seconds(p.pid) for p in self.processes)

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


RENDER_THREADS = 2  # --render-threads of the audio composers


def start_group(settings: Settings, outputs: str, logs: Path, replicas: int = 1) -> Group:
    group = Group(settings, outputs, [], [], [])
    env = cli_env(settings, CROWDSOUND_LOG_LEVEL="WARNING", CROWDSOUND_METRICS_PORT="0")
    for replica in range(1, replicas + 1):
        log = logs / f"composer-{settings.topic_prefix}{outputs}-{replica}.log"
        port = free_port()
        group.processes.append(subprocess.Popen(
            [sys.executable, "-m", "infra.cli", "composer", "--outputs", outputs,
             "--instance", f"bench-{outputs}-{replica}", "--metrics-port", str(port),
             "--render-threads", str(RENDER_THREADS)],
            cwd=logs, env=env, stdout=open(log, "w"), stderr=subprocess.STDOUT,  # noqa: SIM115
            start_new_session=True))
        group.logs.append(log)
        group.metrics_ports.append(port)
    return group


# The composer's own histograms (consumers/composer.py): emotion window's Kafka timestamp to
# the commit of its batch, and the time of one batch (compose + transaction).
OWN = ("crowdsound_composer_emotion_to_output_seconds", "crowdsound_composer_batch_seconds")


def scrape(group: Group) -> dict[str, float]:
    """The group's histogram series (bucket, sum, count) by their full name, summed over replicas."""
    values: dict[str, float] = {}
    for port in group.metrics_ports:
        try:
            text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
        except OSError:
            continue
        for line in text.splitlines():
            if line.startswith(OWN):
                name, _, value = line.rpartition(" ")
                values[name] = values.get(name, 0.0) + float(value)
    return values


def own_view(first: dict[str, float], last: dict[str, float]) -> str:
    """What the composer's histograms say about the interval between two scrapes."""
    def delta(name: str) -> float:
        return last.get(name, 0.0) - first.get(name, 0.0)

    lat, batch = OWN
    count = delta(f"{lat}_count")
    batches = delta(f"{batch}_count")
    wall = delta("_t")
    if not count or not batches or not wall:
        return "no metrics"
    within_20 = delta(lat + '_bucket{le="0.02"}') / count
    within_50 = delta(lat + '_bucket{le="0.05"}') / count
    return (f"windows committed within 20 ms {100 * within_20:.1f} %, within 50 ms {100 * within_50:.1f} % "
            f"(mean {1000 * delta(lat + '_sum') / count:.0f} ms); {batches:.0f} transactions, "
            f"{count / batches:.2f} windows each, {1000 * delta(batch + '_sum') / batches:.1f} ms each on average, "
            f"busy {100 * delta(batch + '_sum') / wall:.0f} % of the wall time")


def wait_ready(composer: Group, timeout_s: float = 90.0) -> float:
    """Wait until every replica of the group has partitions and the group is stable; return seconds."""
    took = group_ready(composer.settings, composer.group, len(composer.processes), timeout_s=timeout_s,
                       check=composer.check)
    if took is None:
        raise SystemExit(f"composer --outputs {composer.outputs} did not join its group in {timeout_s:.0f} s; "
                         f"see {composer.logs}")
    return took


# -- measurement threads --------------------------------------------------------------------------
@dataclass
class Received:
    """Output records as a read_committed consumer receives them."""

    controls: list[tuple] = field(default_factory=list)  # (match, clock_ms, kind, stinger, locked, ts_ms, recv_ms)
    chunks: list[tuple] = field(default_factory=list)    # (match, first_sample, samples, ts_ms, recv_ms)


def reader(settings: Settings, topic: str, out: Received, stop: threading.Event, ready: threading.Event) -> None:
    consumer = make_consumer(settings, group_id=f"bench-read-{uuid.uuid4().hex[:6]}",
                             extra={"fetch.wait.max.ms": READER_FETCH_WAIT_MS, "enable.partition.eof": False})
    name = settings.topic(topic)
    partitions = consumer.list_topics(name, timeout=10).topics[name].partitions
    consumer.assign([TopicPartition(name, p, OFFSET_BEGINNING) for p in partitions])
    ready.set()
    audio = topic == "music.audio.v1"
    while not stop.is_set():
        # poll() returns as soon as one record is there; consume(n, timeout) would wait for
        # n records or the whole timeout, adding up to the timeout to the figures.
        first = consumer.poll(0.05)
        if first is None:
            continue
        recv = time.time() * 1000
        for message in [first] + consumer.consume(200, 0):
            if message.error():
                continue
            ts = message.timestamp()[1]
            if audio:
                r = decode(message.value(), expect="AudioChunk")
                out.chunks.append((r["match_id"], r["first_sample"], r["samples_per_channel"], ts, recv))
            else:
                r = decode(message.value(), expect="MusicControl")
                out.controls.append((r["match_id"], r["clock"]["ms"], r["kind"], r["stinger"],
                                     "locked to the crowd's chant" in r["reason"], ts, recv))
    consumer.close()


class Sampler(threading.Thread):
    """Every 2 s: each composer group's consumer lag, and CPU seconds of the processes."""

    def __init__(self, composers: list[Group], broker: int | None) -> None:
        super().__init__(daemon=True)
        self.composers = composers
        self.broker = broker
        self.stop = threading.Event()
        self.samples: list[tuple[float, list[int], list[float], float, float, float, list[dict]]] = []
        self.lookups = []
        for c in composers:
            consumer = make_consumer(c.settings, group_id=c.group)  # never subscribes: does not join the group
            name = c.settings.topic("crowd.emotions.v1")
            tps = [TopicPartition(name, p) for p in consumer.list_topics(name, timeout=10).topics[name].partitions]
            self.lookups.append((consumer, tps))

    def lag(self, index: int) -> int:
        consumer, tps = self.lookups[index]
        committed = sum(max(0, tp.offset) for tp in consumer.committed(tps, timeout=10))
        end = sum(consumer.get_watermark_offsets(tp, timeout=10, cached=False)[1] for tp in tps)
        return max(0, end - committed)

    def sample(self) -> None:
        lags = [self.lag(i) for i in range(len(self.composers))]
        now = time.time()
        own = [{**scrape(c), "_t": now} for c in self.composers]
        self.samples.append((now, lags, [c.cpu() for c in self.composers],
                             cpu_seconds(self.broker), self_cpu_seconds(), machine_cpu_seconds(), own))

    def run(self) -> None:
        while not self.stop.wait(2.0):
            self.sample()

    def close(self) -> None:
        self.stop.set()
        self.join(timeout=30)
        for consumer, _ in self.lookups:
            consumer.close()

    def between(self, t0: float, t1: float) -> list:
        return [s for s in self.samples if t0 <= s[0] <= t1]


# -- playing matches live --------------------------------------------------------------------------
@dataclass
class Feed:
    """Which matches go to which emotion topic (a prefix), and when each window was sent."""

    settings: Settings
    matches: list[int]
    sent: dict[int, list[int]] = field(default_factory=dict)  # match -> Kafka timestamp (ms) of window i


def play(feeds: list[Feed], scripts: dict[int, list[dict]], seconds: int, begin: float,
         composers: list[Group]) -> float:
    """Send every match's window each second, spread evenly over the second; return how far
    the sender fell behind its schedule at worst (ms)."""
    producer = make_producer(feeds[0].settings, {"linger.ms": 1})
    everyone = sorted({m for f in feeds for m in f.matches})
    phase = {m: k / len(everyone) for k, m in enumerate(everyone)}
    targets = {m: [f for f in feeds if m in f.matches] for m in everyone}
    for f in feeds:
        f.sent = {m: [] for m in f.matches}
    late = 0.0
    for second in range(seconds):
        for c in composers:
            c.check()
        for m in everyone:
            due = begin + second * HOP_S + phase[m]
            delay = due - time.time()
            if delay > 0:
                time.sleep(delay)
            else:
                late = max(late, -delay * 1000)
            now_ms = int(time.time() * 1000)
            window = dict(scripts[m][second])
            window["audio_wall_time_ms"] = int(due * 1000) - 40  # the worker emits ~40 ms after the audio ends
            window["wall_time_ms"] = int(due * 1000)
            value = encode("EmotionWindow", window)
            for f in targets[m]:
                producer.produce(f.settings.topic("crowd.emotions.v1"), key=match_key(window["match_id"]),
                                 value=value, timestamp=now_ms)
                f.sent[m].append(now_ms)
            producer.poll(0)
    producer.flush(30)
    return late


# -- figures -------------------------------------------------------------------------------------------
def pct(values: list[float]) -> str:
    if not values:
        return f"{'-':>7}{'-':>7}{'-':>7}{'-':>7}"
    a = np.array(values)
    return "".join(f"{v:>7.0f}" for v in (np.percentile(a, 50), np.percentile(a, 95), np.percentile(a, 99), a.max()))


def p99(values: list[float]) -> float:
    return float(np.percentile(np.array(values), 99)) if values else float("nan")


def latencies(records: list[tuple], music_ms, sent: dict[int, list[int]], shifts: dict[int, int],
              warmup_s: int) -> tuple[list[float], list[float], int]:
    """(produced, received) latencies in ms after the warm-up, and how many records were
    released by an older window than the latest one sent before them (composer > 1 hop behind)."""
    produced, received, behind = [], [], 0
    for r in records:
        m = int(r[0][2:])
        i = releasing_window(music_ms(r, shifts[m]))
        times = sent.get(m)
        if times is None or i >= len(times) or i < warmup_s:
            continue
        ts, recv = r[-2], r[-1]
        produced.append(ts - times[i])
        received.append(recv - times[i])
        if bisect_right(times, ts) - 1 > i:
            behind += 1
    return produced, received, behind


def control_ms(r: tuple, shift: int) -> int:
    return r[1] - shift * 1000


def chunk_ms(r: tuple, shift: int) -> int:
    return r[1] * 1000 // SAMPLE_RATE


@dataclass
class LagFigures:
    start: int
    end: int
    max: int
    trend: float  # records/s
    rate: int     # records/s sent

    @property
    def growing(self) -> bool:
        return self.trend > 0.01 * self.rate and self.end - self.start > self.rate

    def text(self) -> str:
        per = 1 / self.rate
        return (f"start {self.start} ({self.start * per:.2f} s of windows), end {self.end} ({self.end * per:.2f} s), "
                f"max {self.max} ({self.max * per:.2f} s), trend {self.trend:+.2f} records/s -> "
                f"{'GROWING' if self.growing else 'not growing'}")


def lag_figures(samples: list, index: int, rate: int) -> LagFigures:
    times = np.array([s[0] for s in samples])
    lags = np.array([s[1][index] for s in samples], dtype=float)
    trend = float(np.polyfit(times - times[0], lags, 1)[0]) if len(samples) >= 3 else float("nan")
    return LagFigures(int(lags[0]), int(lags[-1]), int(lags.max()), trend, rate)


def cpu_figures(samples: list, names: list[str]) -> tuple[str, list[float], float]:
    first, last = samples[0], samples[-1]
    wall = last[0] - first[0]
    composers = [(last[2][k] - first[2][k]) / wall for k in range(len(names))]
    broker = (last[3] - first[3]) / wall
    harness = (last[4] - first[4]) / wall
    machine = (last[5] - first[5]) / wall
    others = machine - sum(composers) - (broker if not math.isnan(broker) else 0) - harness
    peaks = []
    for k in range(len(names)):
        steps = [(b[2][k] - a[2][k]) / (b[0] - a[0]) for a, b in zip(samples, samples[1:])]
        peaks.append(max(steps) if steps else float("nan"))
    parts = [f"composer {n} {100 * c:.0f} % (2 s peak {100 * p:.0f} %)" for n, c, p in zip(names, composers, peaks)]
    text = (", ".join(parts) + f", broker {100 * broker:.0f} %, this script {100 * harness:.0f} %, "
            f"other processes {100 * max(0.0, others):.0f} % (machine busy {100 * machine:.0f} % of "
            f"{100 * (os.cpu_count() or 1)} %)")
    return text, composers, max(0.0, others)


@dataclass
class AudioFigures:
    rate_mean: float  # music s per wall s per match, over the steady period
    rate_min: float
    behind_start: tuple[float, float]  # s behind the watermark, median and max over matches, first 5 s
    behind_end: tuple[float, float]    # ... last 5 s
    behind_peak: float                 # the most any match was behind at any moment (s)
    chunks: int
    music_s: float

    @property
    def keeps_up(self) -> bool:
        return self.rate_min >= RATE_TARGET and self.behind_end[1] <= max(self.behind_start[1], 0.0) + 1.0


def audio_figures(chunks: list[tuple], feed: Feed, t0: float, t1: float, edge_s: int = 5) -> AudioFigures:
    """Music position vs emotion watermark per match on a 1 s grid from ``t0`` to ``t1``.

    The watermark advances exactly 1 s per s, so a match's music rate over the period is
    1 - (how much further behind it ended than it started) / period; start and end are the
    mean over ``edge_s`` seconds, which smooths the one-beat steps of the music position.
    """
    by_match: dict[int, tuple[list[float], list[float]]] = {m: ([], []) for m in feed.matches}
    for match, first, samples, _ts, recv in sorted(chunks, key=lambda c: c[4]):
        m = int(match[2:])
        if m in by_match:
            times, ends = by_match[m]
            times.append(recv / 1000)
            ends.append((first + samples) / SAMPLE_RATE if not ends else max(ends[-1], (first + samples) / SAMPLE_RATE))
    grid = np.arange(t0, t1 + 1e-9, 1.0)
    behind = []
    for m in feed.matches:
        times, ends = by_match[m]
        sent = [t / 1000 for t in feed.sent[m]]
        position = np.array([ends[bisect_right(times, t) - 1] if bisect_right(times, t) else 0.0 for t in grid])
        watermark = np.array([(bisect_right(sent, t) - 1) * HOP_S + LENGTH_MS / 1000 if bisect_right(sent, t)
                              else 0.0 for t in grid])
        behind.append(watermark - position)
    b = np.array(behind)  # matches x grid
    first, last = b[:, :edge_s].mean(axis=1), b[:, -edge_s:].mean(axis=1)
    span = grid[-edge_s:].mean() - grid[:edge_s].mean()
    rates = 1.0 - (last - first) / span
    total = sum(c[2] for c in chunks) / SAMPLE_RATE
    return AudioFigures(float(rates.mean()), float(rates.min()),
                        (float(np.median(first)), float(first.max())), (float(np.median(last)), float(last.max())),
                        float(b.max()), len(chunks), total)


# -- one phase -----------------------------------------------------------------------------------------
@dataclass
class PhaseResult:
    name: str
    control_p99: tuple[float, float] | None = None  # produced, received
    control_lag: LagFigures | None = None
    audio: AudioFigures | None = None
    audio_lag: LagFigures | None = None
    audio_cpu: float | None = None
    audio_matches: int = 0
    others_cpu: float = 0.0  # other processes on the machine meanwhile (share of one core)


def run_phase(name: str, base: Settings, logs: Path, *, control_matches: int, audio_matches: int,
              seconds: int, warmup_s: int, audio_replicas: int = 1, dump: Path | None = None) -> PhaseResult:
    scripts, shifts = {}, {}
    for m in range(max(control_matches, audio_matches)):
        scripts[m], shifts[m] = crowd_script(m, seconds)
    feeds: list[Feed] = []
    composers: list[Group] = []
    outs: list[tuple[str, Received]] = []
    threads, stop = [], threading.Event()
    result = PhaseResult(name, audio_matches=audio_matches)
    scopes = []
    try:
        if control_matches:
            scoped = fresh(base)
            scopes.append(scoped)
            feeds.append(Feed(scoped, list(range(control_matches))))
            composers.append(start_group(scoped, "control", logs))
            outs.append(("control", Received()))
        if audio_matches:
            scoped = fresh(base)
            scopes.append(scoped)
            feeds.append(Feed(scoped, list(range(audio_matches))))
            composers.append(start_group(scoped, "audio", logs, audio_replicas))
            outs.append(("audio", Received()))
        startup = [wait_ready(c) for c in composers]
        for feed, (kind, received) in zip(feeds, outs):
            ready = threading.Event()
            thread = threading.Thread(target=reader, daemon=True, args=(
                feed.settings, "music.control.v1" if kind == "control" else "music.audio.v1", received, stop, ready))
            thread.start()
            ready.wait(30)
            threads.append(thread)
        sampler = Sampler(composers, broker_pid(base))
        sampler.start()
        begin = time.time() + 1.0
        late = play(feeds, scripts, seconds, begin, composers)
        end_of_play = time.time()
        time.sleep(3.0)  # the last windows' outputs
        for c in composers:
            c.check()
        sampler.sample()
        sampler.close()
        stop.set()
        for thread in threads:
            thread.join(timeout=10)
    finally:
        stop.set()
        for c in composers:
            c.stop()
        for scoped in scopes:
            drop_topics(scoped)

    if dump is not None:
        import pickle

        dump.mkdir(parents=True, exist_ok=True)
        with open(dump / f"{name}.pickle", "wb") as f:
            pickle.dump({"begin": begin, "shifts": shifts, "sent": [f.sent for f in feeds],
                         "received": [(k, r.controls, r.chunks) for k, r in outs],
                         "samples": sampler.samples}, f)
    steady = sampler.between(begin + warmup_s, end_of_play + 2.5)
    names = [c.name for c in composers]
    cpu_text, cpu, result.others_cpu = cpu_figures(steady, names)
    print(f"\n== phase {name}: " + " + ".join(
        f"composer --outputs {c.outputs}{'' if len(c.processes) == 1 else f' ({len(c.processes)} replicas)'} "
        f"over {len(f.matches)} matches" for c, f in zip(composers, feeds))
        + f", {seconds} s live, first {warmup_s} s excluded")
    print("   composer start-up (group joined): " + ", ".join(f"{n} {s:.1f} s" for n, s in zip(names, startup))
          + f"; sender at most {late:.0f} ms behind its schedule")
    for k, (feed, (kind, received)) in enumerate(zip(feeds, outs)):
        lag = lag_figures(steady, k, len(feed.matches))
        if kind == "control":
            recs = received.controls
            produced, got, behind = latencies(recs, control_ms, feed.sent, shifts, warmup_s)
            bars = sum(1 for r in recs if r[2] == "BAR")
            stingers: dict[str, int] = {}
            for r in recs:
                if r[2] == "STINGER":
                    stingers[r[3]] = stingers.get(r[3], 0) + 1
            locks = sum(1 for r in recs if r[4])
            print(f"   control: {len(recs)} records ({bars} bars, stingers "
                  + ", ".join(f"{k2} {v}" for k2, v in sorted(stingers.items()))
                  + f", {locks} chant tempo locks); {len(produced)} after the warm-up")
            print(f"   emotion window -> control (ms)        {'p50':>7}{'p95':>7}{'p99':>7}{'max':>7}")
            print(f"     produced (output Kafka timestamp)   {pct(produced)}")
            print(f"     received (read_committed consumer)  {pct(got)}")
            if behind:
                print(f"     {behind} records were released by an older window than the latest sent "
                      f"(composer more than one hop behind)")
            result.control_p99 = (p99(produced), p99(got))
            result.control_lag = lag
        else:
            recs = received.chunks
            produced, got, behind = latencies(recs, chunk_ms, feed.sent, shifts, warmup_s)
            audio = audio_figures(recs, feed, begin + warmup_s, end_of_play)
            print(f"   audio: {audio.chunks} chunks, {audio.music_s:.0f} s of music over {len(feed.matches)} matches")
            print(f"   music s per wall s per match ({warmup_s}-{seconds} s): "
                  f"mean {audio.rate_mean:.3f}, min {audio.rate_min:.3f}")
            print(f"   audio behind the emotion watermark (s, median/max over matches): "
                  f"first 5 s {audio.behind_start[0]:+.2f}/{audio.behind_start[1]:+.2f}, "
                  f"last 5 s {audio.behind_end[0]:+.2f}/{audio.behind_end[1]:+.2f}, "
                  f"peak {audio.behind_peak:+.2f} -> {'keeps up' if audio.keeps_up else 'FALLING BEHIND'}")
            print(f"   emotion window -> audio chunk (ms)    {'p50':>7}{'p95':>7}{'p99':>7}{'max':>7}")
            print(f"     produced (output Kafka timestamp)   {pct(produced)}")
            print(f"     received (read_committed consumer)  {pct(got)}")
            result.audio = audio
            result.audio_lag = lag
            result.audio_cpu = cpu[k]
        print(f"   consumer lag ({kind} group, records): {lag.text()}")
        print(f"   the composer's own metrics: {own_view(steady[0][6][k], steady[-1][6][k])}")
    print(f"   CPU (% of one core, after warm-up): {cpu_text}", flush=True)
    return result


def main() -> None:
    global READER_FETCH_WAIT_MS, RENDER_THREADS  # noqa: PLW0603 - knobs for the reader threads and composers
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--matches", type=int, default=100, help="matches of the control group")
    parser.add_argument("--audio-matches", type=int, default=20, help="matches of the audio group")
    parser.add_argument("--audio-replicas", type=int, default=1,
                        help="audio composer processes in the audio group (--instance 1..N)")
    parser.add_argument("--render-threads", type=int, default=RENDER_THREADS,
                        help=f"composer --render-threads of the audio composers (default {RENDER_THREADS})")
    parser.add_argument("--seconds", type=int, default=120, help="live seconds per phase")
    parser.add_argument("--warmup", type=int, default=10, help="seconds excluded at the start of a phase")
    parser.add_argument("--phases", default="control,audio,combined",
                        help="comma list of control, audio, combined")
    parser.add_argument("--port", type=int, default=25092, help="port of the broker this script starts")
    parser.add_argument("--keep-broker", action="store_true", help="leave the broker running at the end")
    parser.add_argument("--reader-fetch-wait-ms", type=int, default=READER_FETCH_WAIT_MS,
                        help="fetch.wait.max.ms of the measuring read_committed consumers (librdkafka default 500)")
    parser.add_argument("--dump", type=Path, help="save each phase's raw timings to DIR/<phase>.pickle")
    args = parser.parse_args()
    READER_FETCH_WAIT_MS = args.reader_fetch_wait_ms
    RENDER_THREADS = args.render_threads
    phases = [p.strip() for p in args.phases.split(",") if p.strip()]
    if set(phases) - {"control", "audio", "combined"} or args.seconds <= args.warmup + 10:
        parser.error("phases are control, audio, combined; --seconds must exceed --warmup by 10+")

    base, started = bench_broker(args.port)
    logs = Path(tempfile.mkdtemp(prefix="bench_composer-"))
    print(f"machine: {os.cpu_count()} cores ({cpu_model()}), load average {os.getloadavg()[0]:.2f}; "
          f"broker {base.bootstrap_servers} ({'started by this script' if started else 'already running'}, "
          f"{cleaner_buffer(base)}); composer logs in {logs}")
    print("combined phase: the audio group reads its own copy of the emotion topic (second prefix), fed the "
          "same windows of its matches at the same instant, since a group cannot compose a subset of a topic;\n"
          "the control group composes all matches; both share the broker and the machine.", flush=True)
    results = []
    try:
        for phase in phases:
            control = args.matches if phase in ("control", "combined") else 0
            audio = args.audio_matches if phase in ("audio", "combined") else 0
            results.append(run_phase(phase, base, logs, control_matches=control, audio_matches=audio,
                                     seconds=args.seconds, warmup_s=args.warmup,
                                     audio_replicas=args.audio_replicas, dump=args.dump))
    finally:
        if started and not args.keep_broker:
            broker_down(base)

    print("\n== summary")
    print(f"{'phase':<10}{'control p99 produced/received (ms)':>36}{'control lag':>13}"
          f"{'music s/s min':>15}{'audio behind end/peak (s)':>27}{'audio CPU':>11}{'other CPU':>11}")
    for r in results:
        control = (f"{r.control_p99[0]:.0f} / {r.control_p99[1]:.0f}" if r.control_p99 else "-")
        clag = ("growing" if r.control_lag.growing else "steady") if r.control_lag else "-"
        rate = f"{r.audio.rate_min:.3f}" if r.audio else "-"
        behind = f"{r.audio.behind_end[1]:+.2f} / {r.audio.behind_peak:+.2f}" if r.audio else "-"
        cpu = f"{100 * r.audio_cpu:.0f} %" if r.audio_cpu is not None else "-"
        print(f"{r.name:<10}{control:>36}{clag:>13}{rate:>15}{behind:>27}{cpu:>11}{100 * r.others_cpu:>9.0f} %")
    for r in results:
        if r.control_p99:
            for label, value in (("produced", r.control_p99[0]), ("received", r.control_p99[1])):
                ok = value <= CONTROL_P99_TARGET_MS and not r.control_lag.growing
                print(f"{'PASS' if ok else 'FAIL'}  [{r.name}] control, {args.matches} matches: p99 emotion -> "
                      f"control ({label}) {value:.0f} ms <= {CONTROL_P99_TARGET_MS:.0f} ms, lag not growing")
        if r.audio:
            ok = r.audio.keeps_up and not r.audio_lag.growing
            print(f"{'PASS' if ok else 'FAIL'}  [{r.name}] audio, {r.audio_matches} matches in real time: music "
                  f"s/s >= {RATE_TARGET} for every match (min {r.audio.rate_min:.3f}), behind-watermark and "
                  f"consumer lag not growing (at worst {r.audio.behind_peak:.1f} s behind)")


if __name__ == "__main__":
    main()
