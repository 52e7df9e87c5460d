"""Dead letters: a bad record is kept, with why, instead of crashing or vanishing.

The original bytes go to ``<source>.dlq.v1`` untouched, wrapped in a DeadLetter record with
the reason, the exception type and where it came from (topic, partition and offset, or a
file and line), so someone can inspect it with ``crowdsound tail`` and replay it once fixed.
"""

from __future__ import annotations

import time
from typing import Any, Protocol

from prometheus_client import Counter

from infra.catalogue import dead_letter_topic
from infra.clients import log_delivery_errors, match_key
from infra.settings import Settings
from schemas.clock import MatchClock
from schemas.codec import encode

__all__ = ["DEAD_LETTERS", "DeadLetterWriter", "dead_letter_record"]

DEAD_LETTERS = Counter(
    "crowdsound_dead_letters_total",
    "Records sent to a dead-letter topic, by source topic and reason class.",
    ["source_topic", "error_type"],
)


class _KafkaMessage(Protocol):  # the parts of confluent_kafka.Message we use
    def topic(self) -> str | None: ...
    def partition(self) -> int | None: ...
    def offset(self) -> int | None: ...
    def key(self) -> bytes | None: ...
    def value(self) -> bytes | None: ...


class _Producer(Protocol):
    def produce(self, topic: str, value: bytes, key: bytes | None = ..., on_delivery: Any = ...) -> None: ...
    def poll(self, timeout: float = ...) -> int: ...


class DeadLetterWriter:
    """Writes DeadLetter records for one process (``processor`` names it in each record)."""

    def __init__(self, producer: _Producer, settings: Settings, *, processor: str) -> None:
        self._producer = producer
        self._settings = settings
        self._processor = processor

    def from_message(self, message: _KafkaMessage, *, reason: str, error_type: str,
                     match_id: str | None = None, clock: MatchClock | None = None) -> None:
        """Dead-letter a consumed Kafka record (its topic, partition and offset are kept)."""
        topic = message.topic() or "unknown"
        key = message.key()
        if match_id is None and key:
            match_id = key.decode("utf-8", errors="replace")
        self._send(
            source_topic=topic, source=f"{topic}[{message.partition()}]@{message.offset()}",
            partition=message.partition(), offset=message.offset(), key=key, value=message.value(),
            reason=reason, error_type=error_type, match_id=match_id, clock=clock,
        )

    def from_input(self, *, target_topic: str, source: str, value: bytes, reason: str, error_type: str,
                   match_id: str | None = None, clock: MatchClock | None = None) -> None:
        """Dead-letter input that never reached Kafka (a line of a file, say).

        ``target_topic`` is the topic the input was meant for; the dead letter goes to its
        dead-letter topic.
        """
        self._send(
            source_topic=target_topic, source=source, partition=None, offset=None, key=None, value=value,
            reason=reason, error_type=error_type, match_id=match_id, clock=clock, consumed=False,
        )

    def _send(self, **details: Any) -> None:
        topic, key, value = dead_letter_record(self._settings, processor=self._processor, **details)
        self._producer.produce(topic, value=value, key=key, on_delivery=log_delivery_errors)
        self._producer.poll(0)


def dead_letter_record(settings: Settings, *, source_topic: str, source: str, partition: int | None,
                       offset: int | None, key: bytes | None, value: bytes | None, reason: str, error_type: str,
                       match_id: str | None, clock: MatchClock | None, processor: str,
                       consumed: bool = True) -> tuple[str, bytes | None, bytes]:
    """The (topic, key, value) of a dead letter; counts it. For writers with their own
    producer (the Faust worker sends through Faust's, so its commits wait for it)."""
    bare = source_topic.removeprefix(settings.topic_prefix)
    record = {
        "match_id": match_id,
        "clock": clock.to_avro() if clock else None,
        "wall_time_ms": int(time.time() * 1000),
        "reason": reason,
        "error_type": error_type,
        "source": source,
        "source_topic": source_topic if consumed else None,
        "source_partition": partition,
        "source_offset": offset,
        "original_key": key,
        "original_value": value,
        "processor": processor,
    }
    DEAD_LETTERS.labels(source_topic=bare, error_type=error_type).inc()
    return (settings.topic(dead_letter_topic(bare)), match_key(match_id) if match_id else key,
            encode("DeadLetter", record))
