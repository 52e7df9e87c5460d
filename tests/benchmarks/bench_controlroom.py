"""Benchmark of the control room against a real broker (a script, not a test).

    .venv/bin/python tests/benchmarks/bench_controlroom.py [--matches 20] [--clients 50] [--seconds 60]
        [--warmup 10] [--runs 3] [--port 25392] [--keep-broker]

Twenty matches stream live: each sends one EmotionWindow per second (spread evenly over the
second, as independent stream workers would) and one MusicControl bar every 2 s (what a
composer writes; no composer runs, so its CPU does not blur the figures). A control room
follows them. Two phases per run, each SECONDS long, the first WARMUP seconds excluded:

1. page: one headless chromium (Debian's, driven by Playwright) shows the first match. The
   page records, for every emotion window it draws, when it drew it (the requestAnimationFrame
   callback that painted it: performance.timeOrigin + performance.now()); the window's Kafka
   timestamp is when the producer here produced it. Page-to-screen latency = drawn - produced,
   on one machine clock: p50 and p99 over the phase.
2. page + clients: the same, plus CLIENTS WebSocket clients (spread over the matches, each
   reading everything) in this process; the page's latency again, and the control room's CPU.

CPU is read from /proc: the control room process, the broker, this script (the producer and
the WebSocket clients), and the machine as a whole; "other" is the machine minus those
(chromium counts there, and so does whatever else runs on a shared machine). Each run prints
its figures; the summary gives the median and the worst over the runs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from infra.broker import broker_down  # noqa: E402
from infra.clients import make_admin, make_producer, match_key  # noqa: E402
from infra.settings import Settings  # noqa: E402
from infra.topics import apply_catalogue  # noqa: E402
from schemas.codec import encode  # noqa: E402
from tests.benchmarks.bench_support import (  # noqa: E402
    bench_broker,
    broker_pid,
    cpu_seconds,
    drop_topics,
    machine_cpu_seconds,
)
from tests.kafka_helpers import cli_env, free_port  # noqa: E402
from tests.test_controlroom_browser import CHROMIUM, CHROMIUM_ARGS  # noqa: E402

TOKEN = "bench-token-0123456789"
STATES = ["CALM", "ANTICIPATION", "EXCITEMENT", "CELEBRATION", "CHANTING"]


@dataclass
class Phase:
    name: str
    p50_ms: float
    p99_ms: float
    points: int
    room_cpu: float   # cores
    broker_cpu: float
    bench_cpu: float
    other_cpu: float
    client_messages: int


class Feed(threading.Thread):
    """The matches, live: a window per match per second, a bar per match every 2 s."""

    def __init__(self, settings: Settings, matches: int) -> None:
        super().__init__(daemon=True)
        self.settings, self.matches = settings, matches
        self.stopping = threading.Event()

    def run(self) -> None:
        producer = make_producer(self.settings, {"linger.ms": 0})
        emotions, control = self.settings.topic("crowd.emotions.v1"), self.settings.topic("music.control.v1")
        start = time.time()
        second = 0
        while not self.stopping.is_set():
            for index in range(self.matches):
                due = start + second + index / self.matches
                while time.time() < due:
                    time.sleep(min(0.005, max(0.0, due - time.time())))
                match_id = f"bench-{index:02d}"
                now_ms = int(time.time() * 1000)
                clock = {"period": "FIRST_HALF", "ms": second * 1000}
                state = STATES[(second // 12 + index) % len(STATES)]
                arousal = 0.3 + 0.6 * ((second + 3 * index) % 20) / 20
                producer.produce(emotions, key=match_key(match_id), value=encode("EmotionWindow", {
                    "match_id": match_id, "clock": clock, "length_ms": 3000, "revision": 0, "arousal": arousal,
                    "valence": 0.2, "state": state, "probabilities": {state: 0.9}, "tempo_bpm": None,
                    "loudness_rel_db": 0.0, "events": [], "wall_time_ms": now_ms, "audio_wall_time_ms": now_ms - 200,
                    "model_version": "bench"}))
                if second % 2 == 0:
                    producer.produce(control, key=match_key(match_id), value=encode("MusicControl", {
                        "match_id": match_id, "clock": clock, "wall_time_ms": now_ms - 500, "bar": second // 2,
                        "kind": "BAR", "style": "orchestral", "tempo_bpm": 120.0, "beats_per_bar": 4, "key": "D",
                        "mode": "MAJOR", "chord": "I", "intensity": arousal, "layers": ["pad", "bass"],
                        "stinger": None, "reason": "bench", "ticks_per_beat": 480, "midi_events": []}))
                producer.poll(0)
            second += 1
        producer.flush(10)


class Clients(threading.Thread):
    """WebSocket clients of the control room's match streams, reading everything."""

    def __init__(self, port: int, matches: int, count: int) -> None:
        super().__init__(daemon=True)
        self.port, self.matches, self.count = port, matches, count
        self.messages = 0
        self.connected = 0
        self.stopping = threading.Event()

    def run(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        from websockets.asyncio.client import connect

        async def one(index: int) -> None:
            url = f"ws://127.0.0.1:{self.port}/api/v1/matches/bench-{index % self.matches:02d}/stream"
            async with connect(url, subprotocols=["bearer", TOKEN], max_size=None) as socket:  # type: ignore[list-item]
                self.connected += 1
                while not self.stopping.is_set():
                    try:
                        await asyncio.wait_for(socket.recv(), 0.5)
                        self.messages += 1
                    except TimeoutError:
                        continue

        await asyncio.gather(*(one(i) for i in range(self.count)), return_exceptions=True)


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))] if ordered else float("nan")


def run_phase(name: str, page, room_pid: int, base: Settings, *, seconds: int, warmup: int,
              clients: Clients | None) -> Phase:
    time.sleep(warmup)
    page.evaluate("crowdsound.drawn.length = 0")
    pids = {"room": room_pid, "broker": broker_pid(base), "bench": os.getpid()}
    before = {k: cpu_seconds(p) for k, p in pids.items()}
    machine_before, wall_before = machine_cpu_seconds(), time.monotonic()
    messages_before = clients.messages if clients else 0
    time.sleep(seconds - warmup)
    wall = time.monotonic() - wall_before
    used = {k: (cpu_seconds(p) - before[k]) / wall for k, p in pids.items()}
    machine = (machine_cpu_seconds() - machine_before) / wall
    drawn = json.loads(page.evaluate("JSON.stringify(crowdsound.drawn)"))
    latencies = [d["drawn_ms"] - d["produced_ms"] for d in drawn]
    return Phase(name, _percentile(latencies, 0.5), _percentile(latencies, 0.99), len(latencies), used["room"],
                 used["broker"], used["bench"], machine - sum(used.values()),
                 (clients.messages - messages_before) if clients else 0)


def one_run(base: Settings, logs: Path, args: argparse.Namespace) -> list[Phase]:
    from playwright.sync_api import sync_playwright

    settings = base.with_overrides(topic_prefix=f"bench{uuid.uuid4().hex[:8]}.")
    apply_catalogue(make_admin(settings), settings)
    port = free_port()
    log = open(logs / f"controlroom-{settings.topic_prefix}log", "w")  # noqa: SIM115
    room = subprocess.Popen([sys.executable, "-m", "infra.cli", "controlroom", "--port", str(port)], cwd=REPO,
                            env=cli_env(settings, CROWDSOUND_API_TOKENS=f"bench={TOKEN}",
                                        CROWDSOUND_LOG_LEVEL="WARNING"), stdout=log, stderr=subprocess.STDOUT)
    feed = Feed(settings, args.matches)
    phases: list[Phase] = []
    try:
        time.sleep(4)
        feed.start()
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(f"http://127.0.0.1:{port}/#token={TOKEN}")
            page.wait_for_selector("#matches li[data-match=bench-00]", timeout=30_000)
            page.click("#matches li[data-match=bench-00]")
            phases.append(run_phase("page", page, room.pid, base, seconds=args.seconds, warmup=args.warmup,
                                    clients=None))
            clients = Clients(port, args.matches, args.clients)
            clients.start()
            phases.append(run_phase(f"page+{args.clients} clients", page, room.pid, base, seconds=args.seconds,
                                    warmup=args.warmup, clients=clients))
            clients.stopping.set()
            browser.close()
    finally:
        feed.stopping.set()
        room.terminate()
        room.wait(timeout=30)
        log.close()
        drop_topics(settings)
    return phases


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--matches", type=int, default=20)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=int, default=60, help="seconds per phase (warm-up included)")
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--port", type=int, default=25392, help="port of the broker this script starts")
    parser.add_argument("--keep-broker", action="store_true")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # run the clean-up (the control room, topics)
    base, started = bench_broker(args.port)
    logs = Path(tempfile.mkdtemp(prefix="bench_controlroom-"))
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}; {args.matches} matches, "
          f"{args.clients} WebSocket clients, {args.seconds} s phases ({args.warmup} s warm-up), {args.runs} runs; "
          f"logs in {logs}", flush=True)
    runs: list[list[Phase]] = []
    try:
        for number in range(1, args.runs + 1):
            phases = one_run(base, logs, args)
            runs.append(phases)
            for p in phases:
                print(f"run {number} {p.name:<18} page-to-screen p50 {p.p50_ms:6.0f} ms  p99 {p.p99_ms:6.0f} ms "
                      f"({p.points} points)  control room CPU {100 * p.room_cpu:5.1f} %  broker "
                      f"{100 * p.broker_cpu:4.1f} %  bench {100 * p.bench_cpu:4.1f} %  other {100 * p.other_cpu:5.1f} %"
                      + (f"  client messages {p.client_messages}" if p.client_messages else ""), flush=True)
    finally:
        if started and not args.keep_broker:
            broker_down(base)
    print("\n== summary over runs: median (worst)")
    for index, name in enumerate(p.name for p in runs[0]):
        rows = [r[index] for r in runs]
        for label, values, unit, scale in (("page-to-screen p50", [r.p50_ms for r in rows], "ms", 1),
                                           ("page-to-screen p99", [r.p99_ms for r in rows], "ms", 1),
                                           ("control room CPU", [r.room_cpu for r in rows], "% of a core", 100),
                                           ("other processes CPU", [r.other_cpu for r in rows], "% of a core", 100)):
            median, worst = scale * statistics.median(values), scale * max(values)
            print(f"{name:<18} {label:<20} {median:7.1f} ({worst:7.1f}) {unit}")


if __name__ == "__main__":
    main()
