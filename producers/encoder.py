"""The venue encoder: crowd audio in, AudioFrame records on crowd.audio.v1 out.

It cuts the source into frames (default one second at 48 kHz, ending on whole seconds of the
match clock: where the worker's windows end), numbers them contiguously per session, stamps
each with its capture wall time and match clock, and sends them through an on-disk spool so
that nothing is lost while the broker is unreachable. Live sources are
paced in real time; ``--fast`` backfills as fast as the broker takes it.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
from prometheus_client import Counter

from infra.clients import UNCOMPRESSED, make_producer, match_key
from infra.errors import CrowdsoundError
from infra.progress import Progress
from infra.settings import Settings
from producers.sender import ENCODER_METRICS, SpoolSender
from producers.sources import AudioSource
from producers.spool import DiskSpool
from producers.walltime import now_ms
from schemas.audio import AudioEncoding, encode_payload
from schemas.clock import MatchClock
from schemas.codec import encode

__all__ = ["ClockSource", "EncoderOptions", "EncoderReport", "VenueEncoder", "frames_of"]

log = logging.getLogger("crowdsound.encoder")

SPOOL_DROPPED = Counter(
    "crowdsound_encoder_spool_dropped_frames_total",
    "Frames dropped because the on-disk spool was full (the broker was unreachable too long).",
)


class ClockSource(Protocol):
    def clock_at(self, at_ms: int) -> MatchClock: ...


@dataclass(frozen=True, kw_only=True)
class EncoderOptions:
    """What the encoder sends, and how."""

    match_id: str
    encoder_id: str
    sample_rate: int = 48_000
    channels: int = 1
    frame_ms: int = 1000
    encoding: AudioEncoding = "PCM_S16LE"
    fast: bool = False
    spool_dir: Path
    spool_max_bytes: int = 512 * 1024 * 1024
    window: int = 200
    session_id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])

    @property
    def samples_per_frame(self) -> int:
        samples = self.sample_rate * self.frame_ms
        if samples % 1000:
            raise CrowdsoundError(f"{self.frame_ms} ms at {self.sample_rate} Hz is not a whole number of samples")
        return samples // 1000


@dataclass
class EncoderReport:
    frames: int = 0
    bytes: int = 0
    dropped: int = 0
    audio_seconds: float = 0.0
    elapsed_seconds: float = 0.0
    left_in_spool: int = 0


def frames_of(blocks: Iterator[np.ndarray], samples_per_frame: int | Callable[[int], int]) -> Iterator[np.ndarray]:
    """Re-cut int16 blocks of any length into frames of ``samples_per_frame`` (the last
    frame holds what is left, so no sample is invented or lost). ``samples_per_frame`` may
    be a function of the samples cut so far, giving the next frame's length."""
    length_at = samples_per_frame if callable(samples_per_frame) else (lambda _cut, n=samples_per_frame: n)
    pending: list[np.ndarray] = []
    count = cut = 0
    wanted = length_at(0)
    for block in blocks:
        pending.append(block)
        count += len(block)
        if count < wanted:
            continue
        joined = np.concatenate(pending)
        start = 0
        while len(joined) - start >= wanted:
            yield joined[start:start + wanted]
            start += wanted
            cut += wanted
            wanted = length_at(cut)
        rest = joined[start:]
        pending, count = ([rest] if len(rest) else []), len(rest)
    if count:
        yield np.concatenate(pending)


class VenueEncoder:
    """Sends one audio source of one match to crowd.audio.v1."""

    def __init__(self, settings: Settings, options: EncoderOptions, *, clock: ClockSource,
                 first_sample_wall_ms: int, producer=None) -> None:
        self.settings = settings
        self.options = options
        self.clock = clock
        self.first_sample_wall_ms = first_sample_wall_ms
        self.topic = settings.topic("crowd.audio.v1")
        self.producer = producer or make_producer(settings, {**UNCOMPRESSED, "message.timeout.ms": 0})
        self.spool = DiskSpool(options.spool_dir, max_bytes=options.spool_max_bytes)
        self.sender = SpoolSender(self.producer, self.spool, self.topic, window=options.window)
        self._stopping = False
        self._last_full_warning = 0.0
        if self.spool.depth:
            log.warning("resending %d frames left in the spool %s by an earlier run", self.spool.depth, options.spool_dir)

    def stop(self) -> None:
        """Ask :meth:`run` to finish: stop reading, send what is spooled, return."""
        self._stopping = True

    def run(self, source: AudioSource, *, progress: bool = True, drain_timeout_s: float = 30.0,
            on_audio_time: Callable[[int], None] | None = None) -> EncoderReport:
        """Encode and send ``source`` until it ends or :meth:`stop` is called.

        ``on_audio_time(wall_ms)`` is called before each frame with the frame's capture
        wall time (the stadium publishes its match events from there).
        """
        opts = self.options
        if source.sample_rate != opts.sample_rate or source.channels != opts.channels:
            raise CrowdsoundError("source and encoder disagree on sample rate or channels")
        report = EncoderReport()
        started = time.monotonic()
        bar = None
        if progress and source.duration_s:
            bar = Progress(source.duration_s, f"encoder {opts.match_id}", unit="s")
        pace = not opts.fast and not source.live
        pace_origin = time.monotonic()
        samples_sent = 0
        key = match_key(opts.match_id)
        last_sync = time.monotonic()
        try:
            for frame in frames_of(source.blocks(), self._frame_length):
                if self._stopping:
                    break
                wall_ms = self.first_sample_wall_ms + samples_sent * 1000 // opts.sample_rate
                if on_audio_time is not None:
                    on_audio_time(wall_ms)
                value = encode("AudioFrame", {
                    "match_id": opts.match_id,
                    "encoder_id": opts.encoder_id,
                    "session_id": opts.session_id,
                    "seq": report.frames + report.dropped,
                    "clock": self.clock.clock_at(wall_ms).to_avro(),
                    "wall_time_ms": wall_ms,
                    "sample_rate": opts.sample_rate,
                    "channels": opts.channels,
                    "samples_per_channel": len(frame),
                    "encoding": opts.encoding,
                    "payload": encode_payload(frame, encoding=opts.encoding, sample_rate=opts.sample_rate),
                })
                if self.spool.append(key=key, value=value, timestamp_ms=wall_ms):
                    report.frames += 1
                    report.bytes += len(value)
                else:
                    report.dropped += 1
                    SPOOL_DROPPED.inc()
                    self._warn_full()
                samples_sent += len(frame)
                self.sender.pump()
                if time.monotonic() - last_sync > 1.0:
                    self.spool.sync()
                    last_sync = time.monotonic()
                if pace:
                    self._wait_until(pace_origin + samples_sent / opts.sample_rate)
                if bar:
                    bar.update(samples_sent / opts.sample_rate, f"frames {report.frames} spool {self.spool.depth}")
        finally:
            if bar:
                bar.close()
            self.spool.sync()
            if not self.sender.drain(drain_timeout_s):
                log.error("broker unreachable: %d frames stay in the spool %s and are sent on the next run",
                          self.spool.depth, opts.spool_dir)
            report.left_in_spool = self.spool.depth
            ENCODER_METRICS.depth.set(self.spool.depth)
            self.spool.close()
        report.audio_seconds = samples_sent / opts.sample_rate
        report.elapsed_seconds = time.monotonic() - started
        return report

    def _frame_length(self, samples_sent: int) -> int:
        """Samples in the frame after ``samples_sent``: a whole frame, unless the match clock
        there is off the frames' grid (the first frame; after the clock jumped to a new period
        or was corrected). Then the frame ends at the next grid line, so that frames end where
        windows do (every whole second of a period): the last frame of a window is sent the
        moment the window's audio is complete, however long frames are."""
        opts = self.options
        wall_ms = self.first_sample_wall_ms + samples_sent * 1000 // opts.sample_rate
        off_grid = self.clock.clock_at(wall_ms).ms % opts.frame_ms
        if not off_grid:
            return opts.samples_per_frame
        # Rounded up: the next frame then starts on the grid, not a millisecond before it.
        return -(-(opts.frame_ms - off_grid) * opts.sample_rate // 1000)

    def _wait_until(self, deadline: float) -> None:
        while (remaining := deadline - time.monotonic()) > 0 and not self._stopping:
            self.sender.wait(min(remaining, 0.05))
            self.sender.pump()

    def _warn_full(self) -> None:
        if time.monotonic() - self._last_full_warning > 5:
            self._last_full_warning = time.monotonic()
            log.error(
                "SPOOL FULL: %s holds %d frames (%.1f MiB) and cannot take more: %s; NEW FRAMES ARE BEING DROPPED "
                "until Kafka takes what is spooled", self.options.spool_dir, self.spool.depth,
                self.spool.size_bytes / 1024 / 1024, self.spool.refusal,
            )


def first_sample_wall_ms(*, fast: bool, duration_s: float | None) -> int:
    """When the first sample was captured: now for live sources; for a backfill, long
    enough ago that the last frame is not in the future (brokers reject records far ahead
    of their clock)."""
    if fast and duration_s:
        return now_ms() - int(duration_s * 1000)
    return now_ms()
