"""Sends the spool to Kafka in order, a bounded window at a time, and acknowledges back.

The producer never gives up on a record (``message.timeout.ms=0``): while the broker is
away, up to ``window`` records wait inside librdkafka and the rest wait on disk. The
idempotent producer keeps retries in order and free of duplicates; a record is dropped
from the spool only after Kafka acknowledged it. The venue encoder sends its audio frames
this way, the match feed its events; each counts them in its own metrics.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from functools import partial
from typing import Any

from confluent_kafka import KafkaError, Producer
from prometheus_client import Counter, Gauge, Histogram

from infra.errors import CrowdsoundError
from producers.spool import DiskSpool, SpooledRecord

__all__ = ["ENCODER_METRICS", "SpoolMetrics", "SpoolSender"]

log = logging.getLogger("crowdsound.spool")


@dataclass(frozen=True)
class SpoolMetrics:
    """What a sender counts: records and bytes acknowledged, the spool's depth, the send latency."""

    sent: Counter
    depth: Gauge
    sent_bytes: Counter | None = None
    latency: Histogram | None = None


ENCODER_METRICS = SpoolMetrics(
    sent=Counter("crowdsound_encoder_frames_total", "Audio frames acknowledged by Kafka."),
    depth=Gauge("crowdsound_encoder_spool_frames", "Frames in the on-disk spool waiting for Kafka."),
    sent_bytes=Counter("crowdsound_encoder_bytes_total", "Bytes of audio records acknowledged by Kafka."),
    latency=Histogram(
        "crowdsound_encoder_send_latency_seconds", "From a frame entering the spool to Kafka's acknowledgement.",
        buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
    ),
)


class SpoolSender:
    """Moves records from a :class:`DiskSpool` to one Kafka topic."""

    def __init__(self, producer: Producer, spool: DiskSpool, topic: str, *, window: int = 200,
                 what: str = "audio frame", metrics: SpoolMetrics = ENCODER_METRICS) -> None:
        self._producer = producer
        self._spool = spool
        self._topic = topic
        self._window = window
        self._what = what
        self._metrics = metrics
        self._in_flight = 0
        self._held: SpooledRecord | None = None  # read from the spool, refused by a full queue
        self._acked: set[int] = set()
        self._fatal: str | None = None
        metrics.depth.set(spool.depth)

    @property
    def in_flight(self) -> int:
        return self._in_flight

    def pump(self) -> None:
        """Hand records to the producer until the window is full; serve callbacks.

        Raises
        ------
        CrowdsoundError
            When Kafka refused a record for good (too large, not authorised...); the
            record and everything after it stay in the spool.
        """
        self._producer.poll(0)
        if self._fatal:
            raise CrowdsoundError(self._fatal)
        while self._in_flight < self._window:
            record = self._held or self._spool.next_unsent()
            self._held = None
            if record is None:
                break
            try:
                self._producer.produce(
                    self._topic, value=record.value, key=record.key, timestamp=record.timestamp_ms,
                    on_delivery=partial(self._delivered, record.number, len(record.value), time.monotonic()),
                )
            except BufferError:
                self._held = record
                break
            self._in_flight += 1
        self._metrics.depth.set(self._spool.depth)

    def wait(self, seconds: float) -> None:
        """Serve delivery callbacks for up to ``seconds`` (use instead of sleeping)."""
        self._producer.poll(seconds)

    def drain(self, timeout_s: float) -> bool:
        """Send everything in the spool; True when all of it is acknowledged in time."""
        deadline = time.monotonic() + timeout_s
        while self._spool.depth and time.monotonic() < deadline:
            self.pump()
            self._producer.poll(0.1)
        self._producer.flush(max(0.0, min(1.0, deadline - time.monotonic())))
        self.pump()
        return self._spool.depth == 0

    def _delivered(self, number: int, size: int, started: float, err: KafkaError | None, msg: Any) -> None:
        self._in_flight -= 1
        if err is not None:
            self._fatal = (f"Kafka refused {self._what} {number} on {self._topic}: {err.str()}; "
                           f"it and the ones after it stay in the spool {self._spool.directory}")
            log.error(self._fatal)
            return
        self._metrics.sent.inc()
        if self._metrics.latency is not None:
            self._metrics.latency.observe(time.monotonic() - started)
        if self._metrics.sent_bytes is not None:
            self._metrics.sent_bytes.inc(size)
        self._acked.add(number)
        contiguous = self._spool.acked
        while contiguous in self._acked:
            self._acked.discard(contiguous)
            contiguous += 1
        if contiguous > self._spool.acked:
            self._spool.ack_through(contiguous - 1)
