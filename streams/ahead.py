"""One stream's audio frames analysed ahead in other processes, a block at a time.

``replay --from-audio`` recomputes a whole match (~69,000 frames) in one process, and the
frame analysis (:func:`streams.features.analyze_frame`, FFTs) is most of its time. A frame's
features depend on the frame and on the *tail* of the audio before it (its last 128 ms and
their onset bands), which is a function of the samples alone. So the frames can be cut into
blocks and each block analysed on its own core, its chain starting from the tail the frames
before it leave (:func:`streams.features.tail_after`, the same function the analyzer uses).

It changes no result, by the contract of :class:`streams.features.FrameAnalysis` (see
:mod:`streams.offload`): each frame's analysis names the tail it follows. Before the first
frame of a block is applied, :func:`adopt` compares the analyzer's actual tail with the one
the block started from, bit for bit; only if they are equal does the analyzer's tail take the
block's token, so the block's features are used. A frame the join drops (a duplicate, out of
order) or any other difference breaks the chain: the analyzer then analyses the rest of that
block itself, as it would have without help.

Pure: no Kafka.
"""

from __future__ import annotations

import itertools
import multiprocessing
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from streams.features import FrameAnalysis, FrameFeatures, FrameTail, analyze_frame, analyze_pieces, tail_after

__all__ = ["BlockStart", "adopt", "analysed_ahead"]

BLOCK_FRAMES = 256  # ~25 s of one match's audio: 2.5 MB of PCM to a process, ~80 ms of work


@dataclass(frozen=True)
class BlockStart:
    """The tail a block's chain starts from: None at the start of the stream."""

    tail: FrameTail | None


def adopt(analyzer: Any, analysis: FrameAnalysis | None, start: BlockStart) -> None:
    """Before a block's first frame: name the analyzer's tail with the block's token if it is
    bit for bit the tail the block was analysed from (else the analyzer analyses the block)."""
    if analysis is None:
        return
    tail, expected = analyzer.tail, start.tail
    if expected is None:
        same = tail is None
    else:
        same = (tail is not None and np.array_equal(tail.samples, expected.samples)
                and (tail.bands_db is None or np.array_equal(tail.bands_db, expected.bands_db)))
    analyzer.tail_token = analysis.after if same else None


def _analyse_block(frames: list[tuple[np.ndarray, int]], start: np.ndarray | None
                   ) -> tuple[FrameTail | None, list[tuple[tuple[FrameFeatures, ...], np.ndarray | None]]]:
    """A chain of frames (decoded int16 PCM, sample rate) from the tail whose samples are
    ``start`` (None: the stream's start); the tail with its onset bands, and each frame's
    pieces' features and new tail bands."""
    from streams.processor import pcm_samples

    tail = None
    if start is not None:  # the bands exactly as analyze_frame computes them for a tail without
        tail = analyze_frame(np.zeros(0), frames[0][1], tail=FrameTail(start, None))[1]
    first = tail
    results = []
    for pcm, rate in frames:
        features, tail = analyze_pieces(pcm_samples(pcm), rate, tail=tail)
        results.append((features, tail.bands_db))
    return first, results


def analysed_ahead(items: Iterable[tuple[Any, np.ndarray | None, np.ndarray | None, int]], *, processes: int,
                   block: int | None = None
                   ) -> Iterator[tuple[Any, np.ndarray | None, FrameAnalysis | None, BlockStart | None]]:
    """``(item, samples, pcm, sample_rate)`` of one stream in order (``samples`` the mono float
    samples :func:`streams.processor.pcm_samples` makes of the decoded int16 ``pcm``: the
    other processes get the PCM, a quarter of the bytes), back as ``(item, samples, analysis,
    start)``: ``analysis`` is the frame's place in its block's chain with its features (None
    where ``samples`` is None); ``start`` is given with a block's first frame,
    for :func:`adopt`. With ``processes`` < 1 nothing is analysed ahead (all None). ``block``:
    frames per block (default :data:`BLOCK_FRAMES`).

    Up to ``processes + 1`` blocks are analysed while the caller applies the frames before
    them.
    """
    block = block or BLOCK_FRAMES
    if processes < 1:
        for item, samples, _, _ in items:
            yield item, samples, None, None
        return
    tokens = itertools.count(1)
    context = multiprocessing.get_context("spawn")  # not fork: the caller may have threads
    with ProcessPoolExecutor(processes, mp_context=context) as pool:
        pending: deque[tuple[list[tuple[Any, np.ndarray | None, np.ndarray | None, int]], Future[Any] | None]] = \
            deque()
        rolling: np.ndarray | None = None  # the tail's samples after the frames submitted so far
        chunk: list[tuple[Any, np.ndarray | None, np.ndarray | None, int]] = []

        def submit() -> None:
            nonlocal rolling
            start = rolling
            for _, samples, _, rate in chunk:
                if samples is not None:
                    rolling = tail_after(samples, rate, None if rolling is None else FrameTail(rolling, None))
            frames = [(pcm, rate) for _, samples, pcm, rate in chunk if samples is not None]
            pending.append((chunk, pool.submit(_analyse_block, frames, start) if frames else None))

        def ready() -> Iterator[tuple[Any, np.ndarray | None, FrameAnalysis | None, BlockStart | None]]:
            done, future = pending.popleft()
            if future is None:
                for item, samples, _, _ in done:
                    yield item, samples, None, None
                return
            first, results = future.result()
            after = next(tokens)
            start: BlockStart | None = BlockStart(first)
            position = 0
            for item, samples, _, _ in done:
                if samples is None:
                    yield item, samples, None, None
                    continue
                token = next(tokens)
                features, bands = results[position]
                position += 1
                yield item, samples, FrameAnalysis(after=after, token=token, features=features, bands_db=bands), start
                after, start = token, None

        for entry in items:
            chunk.append(entry)
            if len(chunk) >= block:
                submit()
                chunk = []
                if len(pending) > processes:
                    yield from ready()
        if chunk:
            submit()
        while pending:
            yield from ready()
