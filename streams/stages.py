"""Where the stream worker's time goes: seconds per stage of the live path.

The worker takes records in batches (:mod:`streams.app`) and each batch passes the same
stages. :class:`StageTimes` adds up the wall time a batch spends in each, and
:meth:`StageTimes.publish` hands the sums to Prometheus once per batch (a counter per stage,
and a histogram of one batch's time per stage, whose top buckets show stalls). So a
benchmark or a dashboard tells where time goes without guessing:

==============  =============================================================================
fetch           waiting for the next batch from Faust's consumer (idle time when keeping up)
decode          Avro and PCM decoding of the batch's records, loading new matches
helper_wait     waiting for the frame helper's features (:mod:`streams.offload`)
features        frame analysis and window summaries done in the worker itself
model           the emotion model (onnxruntime)
join            the rest of applying records: the join, context, encoding emotion records
produce         handing the outputs to the producer
checkpoint      packing match states (JSON) and writing them to the table
commit          Faust committing offsets (it first waits for the producer to flush)
==============  =============================================================================

Two more measures show stalls that are not a stage's own work: how long a record waited
between its Kafka timestamp and the agent taking it (:data:`RECORD_WAIT`, the fetch path's
pacing), and how late the event loop ran a short timer (:data:`LOOP_DELAY`: the loop was
busy or blocked that long, so every task on it waited).

Pure bookkeeping: no Kafka here.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from contextlib import contextmanager

from prometheus_client import Counter, Histogram

__all__ = ["LOOP_DELAY", "RECORD_WAIT", "STAGES", "StageTimes", "observe", "watch_loop"]

STAGES: tuple[str, ...] = ("fetch", "decode", "helper_wait", "features", "model", "join", "produce", "checkpoint",
                           "commit")

_WALL = Counter("crowdsound_stream_stage_seconds_total",
                "Wall seconds the stream worker spent in each stage of the live path.", ["stage"])
_CPU = Counter("crowdsound_stream_stage_cpu_seconds_total",
               "CPU seconds of the stream worker's main thread in each stage of the live path.", ["stage"])
_BATCH = Histogram("crowdsound_stream_stage_batch_seconds",
                   "Wall seconds one batch (or one commit, or one wait for a batch) spent in a stage.", ["stage"],
                   buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0))
RECORD_WAIT = Histogram("crowdsound_stream_record_wait_seconds",
                        "From a source record's Kafka timestamp to the worker's agent taking it.",
                        buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0))
LOOP_DELAY = Histogram("crowdsound_stream_loop_delay_seconds",
                       "How much later than asked the worker's event loop woke a 10 ms timer: the time it was "
                       "busy or blocked, during which no other task ran.",
                       buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5))
_SERIES = {stage: (_WALL.labels(stage=stage), _CPU.labels(stage=stage), _BATCH.labels(stage=stage))
           for stage in STAGES}

Mark = tuple[float, float, float, float]


class StageTimes:
    """Wall and CPU seconds per stage since the last :meth:`publish`.

    Time is attributed to the innermost stage: :meth:`since` counts the time since a
    :meth:`mark` less whatever was counted under any stage meanwhile (a nested timing, or
    another task that ran during an ``await``), so nothing is counted twice.
    """

    __slots__ = ("cpu", "wall", "_cpu_total", "_wall_total")

    def __init__(self) -> None:
        self.wall = dict.fromkeys(STAGES, 0.0)
        self.cpu = dict.fromkeys(STAGES, 0.0)
        self._wall_total = 0.0
        self._cpu_total = 0.0

    def mark(self) -> Mark:
        return time.perf_counter(), time.thread_time(), self._wall_total, self._cpu_total

    def since(self, stage: str, mark: Mark) -> None:
        """Count the time since ``mark`` that no other stage counted under ``stage``."""
        wall = time.perf_counter() - mark[0] - (self._wall_total - mark[2])
        cpu = time.thread_time() - mark[1] - (self._cpu_total - mark[3])
        self.wall[stage] += wall
        self.cpu[stage] += cpu
        self._wall_total += wall
        self._cpu_total += cpu

    def lap(self, stage: str, mark: Mark) -> Mark:
        """:meth:`since`, and a new mark at the same instant: one clock read for both, for
        stages that follow each other record by record (reading a thread's CPU clock is a
        system call, and this runs a few times per record)."""
        now, cpu_now = time.perf_counter(), time.thread_time()
        wall = now - mark[0] - (self._wall_total - mark[2])
        cpu = cpu_now - mark[1] - (self._cpu_total - mark[3])
        self.wall[stage] += wall
        self.cpu[stage] += cpu
        self._wall_total += wall
        self._cpu_total += cpu
        return now, cpu_now, self._wall_total, self._cpu_total

    @contextmanager
    def timing(self, stage: str) -> Iterator[None]:
        mark = self.mark()
        try:
            yield
        finally:
            self.since(stage, mark)

    def publish(self) -> None:
        """Count the stages' seconds and observe each non-zero one as one batch's; start over."""
        for stage, wall in self.wall.items():
            if wall:
                total, cpu, batch = _SERIES[stage]
                total.inc(wall)
                cpu.inc(max(0.0, self.cpu[stage]))
                batch.observe(wall)
                self.wall[stage] = self.cpu[stage] = 0.0


def observe(stage: str, seconds: float) -> None:
    """One occurrence of a stage that runs in its own task, in wall seconds (a commit, a wait
    for a batch): counted apart from :class:`StageTimes`."""
    total, _, batch = _SERIES[stage]
    total.inc(seconds)
    batch.observe(seconds)


async def watch_loop(interval_s: float = 0.01) -> None:
    """Observe, for ever, how late the running event loop wakes a timer of ``interval_s``."""
    loop = asyncio.get_running_loop()
    while True:
        asked = loop.time()
        await asyncio.sleep(interval_s)
        LOOP_DELAY.observe(max(0.0, loop.time() - asked - interval_s))
