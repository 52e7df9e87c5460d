"""When the join state of a match is written to the table, and when source records are acked.

Writing a match's state to the changelog-backed table after every audio frame (10 a second
per match, ~50 kB each) would cost more than analysing the frame. So the stream worker keeps
each match's state in memory and writes a **checkpoint** of it now and then: after
``every_records`` of its records, when its oldest unsaved record is ``max_age_s`` old (a
match that went quiet), when asked, and for every match when Faust asks the streams to
drain (a rebalance or a shutdown). Emotion windows are sent as soon as they are computed,
whatever the checkpoints do.

What makes this safe after a crash (SIGKILL: no chance to write anything):

* A source record is **acked** — allowed to be committed — only once a checkpoint that
  includes it is in the table. Acks go in offset order per partition, so the committed
  offset never passes a record whose effect exists only in memory. After a crash the next
  worker restores the last checkpoints and re-reads everything after the committed
  offset; records a checkpoint already includes are skipped by their offset
  (:class:`streams.processor.RecordProcessor`), the rest are applied again, in order,
  to the same state, giving the same windows.
* A checkpoint is written only after every output its records produced (emotion windows,
  dead letters) is acknowledged by the broker, so a restored state never claims an emission
  that did not happen: a crash can repeat an emission, never lose one. The writes happen
  in one task, in checkpoint order, so a match's newer state is never overwritten by an
  older one.
* A checkpoint counts as written only once the broker acknowledged the changelog record
  (``write`` returns the send's future, which is awaited): Faust itself only logs a failed
  changelog send, so without this an offset could be committed for a state that never
  reached the changelog. The writes are pipelined — each is sent as soon as its outputs are
  delivered, and the records are acked as their writes are confirmed, in order — so
  durability costs no round trip per checkpoint. A write the broker refuses stops all acks
  (``fail``), like an undelivered output.

The class is plain asyncio with the table and the records' acks passed in, so it is tested
without Kafka (tests/test_processor_checkpoints.py).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from prometheus_client import Counter

from infra.watchdog import exit_without_commit

__all__ = ["Checkpoints", "exit_without_commit"]

CHECKPOINTS = Counter("crowdsound_stream_checkpoints_total", "Match states written to the worker's table.")


class Ackable(Protocol):
    def ack(self) -> Any: ...


@dataclass
class _Held:
    """A source record not yet acked."""

    record: Ackable
    done: bool = False


@dataclass
class _Unsaved:
    """What a match did since its last checkpoint."""

    partition: int
    held: list[tuple[Any, _Held]] = field(default_factory=list)  # (source tp, record)
    outputs: list[Awaitable[Any]] = field(default_factory=list)
    since: float = field(default_factory=time.monotonic)


@dataclass
class _Job:
    key: bytes | None
    partition: int
    state: bytes | None  # None: nothing to write (records that touched no match state), unless `delete`
    held: list[tuple[Any, _Held]]
    outputs: list[Awaitable[Any]]
    delete: bool = False  # remove the match from the table (a tombstone): a finished match forgotten


class Checkpoints:
    """Holds source records until their effects are in the table, then acks them in order.

    Parameters
    ----------
    snapshot : callable(key) -> bytes
        The packed state of a live match, now.
    write : callable(partition, key, state) -> awaitable or None
        Write a state to the table (its changelog partition is the match's partition); ``state``
        None deletes the match. Returns the changelog send's future: the checkpoint's records
        are acked only once it resolves (None: written synchronously, e.g. in tests).
    every_records : int
        Checkpoint a match after this many of its records.
    max_age_s : float
        Checkpoint a match whose oldest unsaved record is this old (a match that went quiet).
    fail : callable(exception), optional
        Called when an output or a checkpoint was not delivered. Nothing may be acked after that; the
        default exits the process at once (status 70) so that nothing is committed and the
        restarted worker processes the records again.
    """

    def __init__(self, *, snapshot: Callable[[bytes], bytes],
                 write: Callable[[int, bytes, bytes | None], Awaitable[Any] | None],
                 every_records: int = 50, max_age_s: float = 2.0,
                 fail: Callable[[BaseException], None] | None = None) -> None:
        self._snapshot = snapshot
        self._write = write
        self._fail = fail or (lambda exc: exit_without_commit(exc, "an output record was not delivered"))
        self.every_records = every_records
        self.max_age_s = max_age_s
        self._held: dict[Any, deque[_Held]] = {}  # per source tp, in offset order
        self._unsaved: dict[bytes, _Unsaved] = {}
        self._jobs: asyncio.Queue[_Job] = asyncio.Queue()
        # Jobs whose checkpoint was sent, with the send's future, waiting for the broker's ack.
        self._sent: asyncio.Queue[tuple[_Job, Awaitable[Any] | None]] = asyncio.Queue()
        self._busy = 0  # jobs queued, being written or waiting for confirmation

    # -- from the agent -------------------------------------------------------------------
    def add(self, tp: Any, record: Ackable, *, match: bytes | None, partition: int,
            outputs: Iterable[Awaitable[Any]] = (), checkpoint: bool = False) -> None:
        """One source record, processed. ``match`` is the key of the match whose state it
        changed or was skipped by (None: it touched no state, e.g. a dead letter);
        ``outputs`` the sends it caused; ``checkpoint`` asks for a checkpoint now."""
        held = _Held(record)
        self._held.setdefault(tp, deque()).append(held)
        if match is None:
            self._queue(_Job(None, partition, None, [(tp, held)], list(outputs)))
            return
        unsaved = self._unsaved.get(match)
        if unsaved is None:
            unsaved = self._unsaved[match] = _Unsaved(partition)
        unsaved.held.append((tp, held))
        unsaved.outputs.extend(outputs)
        if checkpoint or len(unsaved.held) >= self.every_records:
            self.checkpoint(match)

    def checkpoint(self, match: bytes) -> None:
        """Snapshot the match now; its state is written once its outputs are delivered."""
        unsaved = self._unsaved.pop(match, None)
        if unsaved is not None:
            self._queue(_Job(match, unsaved.partition, self._snapshot(match), unsaved.held, unsaved.outputs))

    def checkpoint_all(self) -> None:
        for match in list(self._unsaved):
            self.checkpoint(match)

    def delete(self, match: bytes, partition: int) -> None:
        """Remove a match from the table (a finished match, forgotten), after any checkpoint of it
        queued before: the deletion is ordered with the match's writes."""
        self.checkpoint(match)
        self._queue(_Job(match, partition, None, [], [], delete=True))

    def checkpoint_stale(self, now: float | None = None) -> None:
        """Checkpoint matches whose oldest unsaved record is older than ``max_age_s``."""
        now = time.monotonic() if now is None else now
        for match, unsaved in list(self._unsaved.items()):
            if now - unsaved.since >= self.max_age_s:
                self.checkpoint(match)

    @property
    def pending(self) -> int:
        """Records held (not acked yet)."""
        return sum(len(q) for q in self._held.values())

    @property
    def idle(self) -> bool:
        """Nothing held, nothing being written."""
        return not self._busy and not any(self._held.values())

    def forget(self, tps: Iterable[Any]) -> None:
        """Stop tracking revoked partitions (after everything was drained)."""
        for tp in tps:
            self._held.pop(tp, None)

    # -- the writer task ------------------------------------------------------------------
    def _queue(self, job: _Job) -> None:
        self._busy += 1
        self._jobs.put_nowait(job)

    async def run(self) -> None:
        """Write checkpoints in order as their outputs are delivered, and ack what they cover
        once the writes are confirmed. Runs for the life of the agent."""
        confirming = asyncio.ensure_future(self._confirm())
        try:
            while True:
                job = await self._jobs.get()
                try:
                    for output in job.outputs:
                        await output  # raises if the broker refused it
                    written = None
                    if job.key is not None and (job.state is not None or job.delete):
                        written = self._write(job.partition, job.key, job.state)
                        if job.state is not None:
                            CHECKPOINTS.inc()
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # noqa: BLE001 - an output was not delivered
                    self._busy -= 1
                    self._fail(exc)
                    return
                self._sent.put_nowait((job, written))
        finally:
            confirming.cancel()

    async def _confirm(self) -> None:
        """Ack the records of each sent checkpoint once the broker confirmed it, in order."""
        while True:
            job, written = await self._sent.get()
            try:
                if written is not None:
                    await written  # raises if the changelog record was not delivered
                for _, held in job.held:
                    held.done = True
                for tp in {tp for tp, _ in job.held}:
                    self._release(tp)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the checkpoint is not in the changelog
                self._fail(exc)
                return
            finally:
                self._busy -= 1

    async def drained(self, timeout_s: float | None = None) -> bool:
        """Wait until every checkpoint queued so far is written (True) or the timeout passes."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while self._busy:
            if deadline is not None and time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.005)
        return True

    def _release(self, tp: Any) -> None:
        """Ack the records of ``tp`` up to the first one not done (in offset order)."""
        queue = self._held.get(tp)
        while queue and queue[0].done:
            queue.popleft().record.ack()
