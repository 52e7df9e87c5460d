"""Analysing audio frames in a helper process, ahead of applying them.

The stream worker is one Python thread: Faust's fetching and producing, the join, the model
and the frame analysis (FFTs, ~40 % of its work) take turns on one core. A
:class:`FrameOffload` moves the frame analysis to a helper process, so the worker uses the
machine's second core: the agent takes records in small batches and sends each batch's
frames to the helper as soon as it has them; the helper analyses batch n + 1 while the
worker applies batch n. When the worker gets to a batch, it waits a little (at most
``streams.app.HELPER_PATIENCE_S``, more for a batch of much audio) for the helper's
features, and analyses the frames the helper has not finished itself.

It changes no result. A frame's features depend on the frame and on the audio before it
(the analyzer's *tail*). The helper analyses each match's frames as a chain, starting from
the analyzer's tail when the frames are planned, and keeps each match's last tail for its
next frames. Every tail in a chain gets a token: "the tail after frame k, analysed from the
tail with token t(k-1)". A frame's planned analysis is valid only if the analyzer's current
tail has the token the frame was planned to follow
(:meth:`streams.windows.CrowdAnalyzer.add_frame`). Then its features are the helper's, or
computed by the worker — the same numbers, as both run :func:`streams.features.analyze_frame`
on the same pieces of the same input — and the analyzer's tail takes the frame's token, so the chain goes on.
A frame that the join drops (a duplicate, out of order), a match reloaded after a rebalance
or a helper that failed break the chain: the worker then analyses frames itself until the
next batch starts a new chain from its analyzer's actual tail.

Sending never holds up the event loop: a batch is written to the helper's socket at once
when it is small (a live batch: a frame or a few, ~100 kB each, which the socket's buffer
takes), and otherwise by a writer thread. A backlog's batch is up to 256 one-second frames,
~25 MB: written in the loop, it waited for the helper to finish the previous batch and read
this one, and the worker applied nothing meanwhile: 26 % of the worker's time in a backlog
drain went there.

If the helper cannot be started, fails, or falls more than ``timeout_s`` behind, the worker
logs it once and analyses every frame itself from then on.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import logging
import multiprocessing
import pickle
import queue
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from streams.features import FrameAnalysis, FrameTail, analyze_pieces

__all__ = ["FrameOffload", "Submitted"]

log = logging.getLogger("crowdsound.worker")

_NO_TAIL = "no-tail"  # the helper does not have the tail a chain starts from
_MAX_TAILS = 5000  # matches whose last tail the helper keeps (~50 kB each)
# A request up to this size is written in the event loop when nothing waits to be written: the
# socket's 4 MB buffer (_enlarge_buffers) takes it without waiting for the helper.
_DIRECT_BYTES = 1024 * 1024


@dataclass
class _Chain:
    """Consecutive frames of one match in a batch, and where they start."""

    key: bytes
    after: int  # token of the tail the first frame follows
    tail: FrameTail | None  # that tail, when the helper does not have it (send_tail)
    send_tail: bool
    frames: list[tuple[int, np.ndarray, int]] = field(default_factory=list)  # (token, pcm int16, sample rate)
    indexes: list[int] = field(default_factory=list)  # of the frames in the batch


@dataclass
class Submitted:
    """A batch whose frames were planned and sent to the helper (:meth:`FrameOffload.submit`)."""

    chains: list[_Chain]
    sent_at: float = 0.0
    reply: asyncio.Future[list[Any]] | None = None  # the helper's results; None: nothing was sent

    @property
    def audio_s(self) -> float:
        """Seconds of audio sent to the helper (what its reply takes is about proportional)."""
        return sum(len(pcm) / rate for chain in self.chains for _token, pcm, rate in chain.frames)


class FrameOffload:
    """Analyses the frames of batches of decoded records in a helper process.

    :meth:`submit` plans a batch's chains of frames and sends them; :meth:`analyses` gives
    the batch's planned analyses (with features for those the helper has finished);
    :meth:`done` says the batch was applied. A worker submits the next batch before it
    applies the previous one, so that the helper analyses one while the worker applies the
    other: a match's frames in the later batch continue the chain of its frames in the
    earlier one.

    Parameters
    ----------
    enabled : bool
        False: no helper; every frame is analysed by the caller.
    timeout_s : float
        A helper that is this far behind is given up.
    direct_bytes : int
        Requests up to this size are written in the event loop (when none waits for the
        writer thread); larger ones by the writer thread.
    """

    def __init__(self, *, enabled: bool = True, timeout_s: float = 10.0, direct_bytes: int = _DIRECT_BYTES) -> None:
        self.enabled = enabled
        self.timeout_s = timeout_s
        self.direct_bytes = direct_bytes
        self._tokens = itertools.count(1)
        self._helper_tails: dict[bytes, int] = {}  # key -> token of the last tail the helper computed
        self._in_flight: dict[bytes, list[int]] = {}  # key -> [batches submitted and not done, last token]
        self._waiting: collections.deque[Submitted] = collections.deque()  # sent, no reply yet (in order)
        self._process: Any = None
        self._conn: Any = None
        self._ready: asyncio.Future[None] | None = None
        self._writer: _Writer | None = None
        self.frames = 0  # analysed by the helper

    # -- planning --------------------------------------------------------------------------
    def plan(self, decoded: Sequence[Any]) -> list[_Chain]:
        """Chains of frames to analyse for a batch of :class:`streams.processor.Decoded`."""
        chains: dict[bytes, _Chain] = {}
        for index, record in enumerate(decoded):
            if record.kind != "AudioFrame" or record.pcm is None or record.live is None or record.key is None:
                continue
            if record.offset <= record.live.applied.get(record.topic, -1):
                continue  # already applied: will be skipped
            chain = chains.get(record.key)
            if chain is None:
                in_flight = self._in_flight.get(record.key)
                if in_flight is not None:  # continues the chain of a batch not applied yet
                    chain = _Chain(record.key, in_flight[1], None, False)
                else:
                    analyzer = record.live.join.analyzer
                    known = (analyzer.tail_token is not None
                             and self._helper_tails.get(record.key) == analyzer.tail_token)
                    if not known:  # name the analyzer's current tail and send it along
                        analyzer.tail_token = next(self._tokens)
                    chain = _Chain(record.key, analyzer.tail_token, None if known else analyzer.tail, not known)
                chains[record.key] = chain
            chain.frames.append((next(self._tokens), record.pcm, record.record["sample_rate"]))
            chain.indexes.append(index)
        return list(chains.values())

    # -- batches ---------------------------------------------------------------------------
    def submit(self, decoded: Sequence[Any]) -> Submitted:
        """Plan the batch's frames and send them to the helper (if it is up); returns at once."""
        if not self.enabled:
            return Submitted([])
        self.start()
        if self._ready is None or not self._ready.done():
            return Submitted([])  # still starting (about a second): analysed in the worker meanwhile
        if self._ready.exception() is not None or (
                self._waiting and time.monotonic() - self._waiting[0].sent_at > self.timeout_s):
            self._fail(self._ready.exception() or TimeoutError(f"no reply in {self.timeout_s:g} s"))
            return Submitted([])
        submitted = Submitted(self.plan(decoded), time.monotonic())
        for chain in submitted.chains:
            in_flight = self._in_flight.setdefault(chain.key, [0, 0])
            in_flight[0] += 1
            in_flight[1] = chain.frames[-1][0]
        if submitted.chains:
            request = [(c.key, c.after, c.send_tail, c.tail, c.frames) for c in submitted.chains]
            try:
                self._send(pickle.dumps(request, protocol=pickle.HIGHEST_PROTOCOL))
            except Exception as exc:  # noqa: BLE001 - the helper died
                self._fail(exc)
                return submitted
            submitted.reply = asyncio.get_running_loop().create_future()
            self._waiting.append(submitted)
        return submitted

    def _send(self, data: bytes) -> None:
        """Write a request to the helper, in order, without waiting for the helper to read it."""
        if len(data) <= self.direct_bytes and (self._writer is None or self._writer.idle()):
            self._conn.send_bytes(data)
            return
        if self._writer is None:
            self._writer = _Writer(self._conn, asyncio.get_running_loop(), self._fail)
        self._writer.put(data)

    def analyses(self, submitted: Submitted) -> dict[int, FrameAnalysis]:
        """The planned analyses of a submitted batch's frames, by index in the batch: with
        the helper's features where they have arrived, else without (the caller analyses the
        frame and continues the chain)."""
        if submitted.reply is not None and not submitted.reply.done():
            self._readable()  # a reply may be in the pipe, not yet seen by the event loop
        results = None
        reply = submitted.reply
        if reply is not None and reply.done() and not reply.cancelled() and reply.exception() is None:
            results = reply.result()
        analyses: dict[int, FrameAnalysis] = {}
        for number, chain in enumerate(submitted.chains):
            done = results[number] if results is not None and results[number] != _NO_TAIL else None
            after = chain.after
            for position, (index, (token, _, _)) in enumerate(zip(chain.indexes, chain.frames, strict=True)):
                features, bands = done[position] if done is not None else (None, None)
                analyses[index] = FrameAnalysis(after=after, token=token, features=features, bands_db=bands)
                after = token
        return analyses

    async def ready_within(self, submitted: Submitted, patience_s: float) -> dict[int, FrameAnalysis]:
        """:meth:`analyses`, after waiting up to ``patience_s`` for the helper's reply (also when
        it still has older batches to reply to: it analyses faster than the worker applies)."""
        reply = submitted.reply
        if reply is not None and not reply.done():
            self._readable()  # a reply may be in the pipe, not yet seen by the event loop
            if patience_s > 0 and not reply.done():
                try:
                    await asyncio.wait_for(asyncio.shield(reply), patience_s)
                except (asyncio.TimeoutError, Exception):  # noqa: BLE001 - analysed here instead
                    pass
        return self.analyses(submitted)

    async def result(self, submitted: Submitted) -> dict[int, FrameAnalysis]:
        """:meth:`analyses`, once the helper has replied (or failed, or timed out)."""
        if submitted.reply is not None:
            try:
                await asyncio.wait_for(asyncio.shield(submitted.reply), self.timeout_s)
            except Exception as exc:  # noqa: BLE001 - any failure: analyse in the worker from now on
                self._fail(exc)
        return self.analyses(submitted)

    def done(self, submitted: Submitted) -> None:
        """The batch was applied: its matches' analyzers have caught up with its chains."""
        for chain in submitted.chains:
            in_flight = self._in_flight.get(chain.key)
            if in_flight is not None:
                in_flight[0] -= 1
                if in_flight[0] <= 0:
                    del self._in_flight[chain.key]

    async def analyze(self, decoded: Sequence[Any]) -> dict[int, FrameAnalysis]:
        """Submit a batch and wait for its analyses (one batch at a time)."""
        submitted = self.submit(decoded)
        try:
            return await self.result(submitted)
        finally:
            self.done(submitted)

    # -- the process --------------------------------------------------------------------------
    def start(self) -> None:
        """Start the helper process, without waiting for it (see :meth:`wait_ready`)."""
        if self._process is not None or not self.enabled:
            return
        loop = asyncio.get_running_loop()
        context = multiprocessing.get_context("spawn")  # not fork: the worker has threads
        parent, child = context.Pipe()
        _enlarge_buffers(parent, child)
        process = context.Process(target=_serve, args=(child,), name="crowdsound-frames", daemon=True)
        process.start()
        child.close()
        self._process, self._conn = process, parent
        self._ready = loop.create_future()
        loop.add_reader(parent.fileno(), self._readable)

    def _readable(self) -> None:
        """The helper's greeting, then its replies, in the order of the requests."""
        conn = self._conn
        try:
            while conn is not None and conn.poll():
                data = conn.recv_bytes()
                if self._ready is not None and not self._ready.done():
                    if data != b"ready":
                        raise RuntimeError("unexpected greeting from the frame helper")
                    self._ready.set_result(None)
                    continue
                submitted = self._waiting.popleft()
                results = pickle.loads(data)  # noqa: S301 - our own child process
                if isinstance(results, str):
                    raise RuntimeError(results)
                for chain, result in zip(submitted.chains, results, strict=True):
                    if result == _NO_TAIL:
                        self._helper_tails.pop(chain.key, None)
                    else:
                        self._helper_tails[chain.key] = chain.frames[-1][0]
                        self.frames += len(result)
                if submitted.reply is not None and not submitted.reply.done():
                    submitted.reply.set_result(results)
        except Exception as exc:  # noqa: BLE001 - EOF: the helper died; or it reported an error
            if self._ready is not None and not self._ready.done():
                self._ready.set_exception(exc)
            self._fail(exc)

    async def wait_ready(self, timeout_s: float = 30.0) -> bool:
        """Start the helper and wait until it can take work (for tools and tests)."""
        self.start()
        if self._ready is None:
            return False
        try:
            await asyncio.wait_for(asyncio.shield(self._ready), timeout_s)
        except Exception:  # noqa: BLE001 - submit() reports it
            return False
        return True

    def _fail(self, exc: BaseException) -> None:
        if self.enabled:
            log.error("frame analysis helper failed (%s: %s); analysing frames in the worker",
                      type(exc).__name__, exc)
        self.close()
        self.enabled = False

    def close(self) -> None:
        """Stop the helper (it also exits by itself when the worker goes away)."""
        if self.frames:
            log.info("frame analysis helper: %d frames analysed", self.frames)
        if self._conn is not None:
            try:
                asyncio.get_running_loop().remove_reader(self._conn.fileno())
            except (RuntimeError, ValueError, OSError):
                pass
        if self._ready is not None and not self._ready.done():
            self._ready.cancel()
        self._ready = None
        if self._writer is not None:
            # What the helper would still read is not wanted now: kill it, so the writer stops.
            self._writer.stop(kill_reader=self._process.kill if self._process is not None else lambda: None)
            self._writer = None
        for submitted in self._waiting:
            if submitted.reply is not None and not submitted.reply.done():
                submitted.reply.set_exception(RuntimeError("the frame helper was stopped"))
        self._waiting.clear()
        if self._conn is not None:
            self._conn.close()
        if self._process is not None:
            self._process.join(timeout=5)
            if self._process.is_alive():
                self._process.kill()
        self._process = self._conn = None
        self._helper_tails.clear()
        self._in_flight.clear()


class _Writer:
    """A thread writing requests to the helper's connection in the order they are put."""

    def __init__(self, conn: Any, loop: asyncio.AbstractEventLoop, fail: Any) -> None:
        self._conn, self._loop, self._fail = conn, loop, fail
        self._outbox: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
        # Each counted by one thread only (put: the loop's; written: the writer's).
        self._put = self._written = 0
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="crowdsound-frames-writer", daemon=True)
        self._thread.start()

    def idle(self) -> bool:
        """Everything put has been written (so a direct write comes after it)."""
        return self._written == self._put

    def put(self, data: bytes) -> None:
        self._put += 1
        self._outbox.put(data)

    def _run(self) -> None:
        while (data := self._outbox.get()) is not None:
            try:
                self._conn.send_bytes(data)  # the GIL is released while the helper reads
            except Exception as exc:  # noqa: BLE001 - the helper died: the loop gives it up
                if not self._stopping:
                    try:
                        self._loop.call_soon_threadsafe(self._fail, exc)
                    except RuntimeError:  # the loop is closed: nothing is waiting any more
                        pass
                return
            self._written += 1

    def stop(self, *, kill_reader: Any) -> None:
        """Stop the thread; a write in progress is ended by ``kill_reader()`` (the helper)."""
        self._stopping = True
        if not self.idle():
            kill_reader()
        self._outbox.put(None)
        self._thread.join(timeout=10)


def _enlarge_buffers(*conns: Any, size: int = 4 * 1024 * 1024) -> None:
    """Socket buffers large enough for many live batches (a few one-second frames, ~100 kB
    each), so that writing one never waits for the helper to read the previous one (the
    kernel caps the size at net.core.wmem_max / rmem_max); larger ones go to :class:`_Writer`."""
    import os
    import socket

    for conn in conns:
        try:
            sock = socket.socket(fileno=os.dup(conn.fileno()))
        except OSError:  # not a socket (another platform's pipe): keep the defaults
            continue
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, size)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, size)
        except OSError:
            pass
        finally:
            sock.close()


def _serve(conn: Any) -> None:
    """The helper process: analyse chains of frames until the pipe closes."""
    import signal

    from streams.processor import pcm_samples

    # Signals are for the worker, which shuts down in order; this process ends when the
    # worker closes the pipe or exits.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        conn.send_bytes(b"ready")
    except (BrokenPipeError, OSError):
        return
    tails: collections.OrderedDict[bytes, tuple[int, FrameTail | None]] = collections.OrderedDict()
    while True:
        try:
            request = pickle.loads(conn.recv_bytes())  # noqa: S301 - our own parent process
        except (EOFError, OSError):
            return
        try:
            reply: list[Any] = []
            for key, after, send_tail, tail, frames in request:
                if not send_tail:
                    stored = tails.get(key)
                    if stored is None or stored[0] != after:
                        reply.append(_NO_TAIL)
                        continue
                    tail = stored[1]
                results = []
                for _token, pcm, rate in frames:
                    features, tail = analyze_pieces(pcm_samples(pcm), rate, tail=tail)
                    results.append((features, tail.bands_db if tail is not None else None))
                tails[key] = (frames[-1][0], tail)
                tails.move_to_end(key)
                while len(tails) > _MAX_TAILS:  # matches gone quiet: the worker sends their tail again
                    tails.popitem(last=False)
                reply.append(results)
            data = pickle.dumps(reply, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as exc:  # noqa: BLE001 - reported to the worker, which stops using us
            data = pickle.dumps(f"{type(exc).__name__}: {exc}")
        try:
            conn.send_bytes(data)
        except (BrokenPipeError, OSError):
            return
