"""``crowdsound tail``: print the records of any catalogue topic, decoded, one per line.

The first tool of every downstream team: it reads without joining a consumer group (it
assigns partitions itself and commits nothing), so it never disturbs real consumers. With
``--match`` it reads only the partition that holds the match.
"""

from __future__ import annotations

import json
import signal
import sys
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any, TextIO

from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, KafkaError, TopicPartition

from infra.catalogue import spec_for
from infra.clients import kafka_refusal, make_consumer, reader_group
from infra.errors import CrowdsoundError, SchemaError
from infra.partitioning import partition_for
from infra.reading import topic_partitions
from infra.settings import Settings
from schemas.clock import MatchClock
from schemas.codec import decode_any

__all__ = ["summarise", "tail"]

_HEX_LIMIT = 16  # small byte fields (MIDI messages) print as hex; larger ones as a size


def summarise(value: Any) -> Any:
    """A printable copy of a decoded record: clocks as match time, bytes never dumped raw."""
    if isinstance(value, bytes):
        return f"hex:{value.hex()}" if len(value) <= _HEX_LIMIT else f"<{len(value)} bytes>"
    if isinstance(value, dict):
        if set(value) == {"period", "ms"}:
            return str(MatchClock.from_avro(value))
        return {key: summarise(item) for key, item in value.items()}
    if isinstance(value, list):
        return [summarise(item) for item in value]
    if isinstance(value, float):
        return round(value, 4)
    return value


def _human(record_type: str, record: dict[str, Any]) -> str:
    parts = [record_type]
    for key, value in summarise(record).items():
        if key == "match_id" or value in (None, [], {}, ""):
            continue
        if isinstance(value, (dict, list)):
            value = json.dumps(value, separators=(",", ":"))
        parts.append(f"{key}={value}")
    return " ".join(parts)


def _timestamp(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def tail(settings: Settings, topic: str, *, match_id: str | None = None, from_beginning: bool = False,
         max_records: int | None = None, timeout_s: float | None = None, as_json: bool = False,
         out: TextIO = sys.stdout, ready: Callable[[], None] | None = None) -> int:
    """Print records of ``topic`` until ``max_records`` or ``timeout_s`` idle seconds.

    Returns the number of records printed. Undecodable records are printed as such (with
    the reason) and counted; they never stop the tail.

    Raises
    ------
    CrowdsoundError
        Unknown topic, or a topic missing from the cluster (TopicMissingError).
    """
    spec = spec_for(topic, settings)
    name = settings.topic(spec.name)
    consumer = make_consumer(settings, group_id=reader_group(settings, f"tail-{uuid.uuid4().hex[:12]}"),
                             extra={"enable.partition.eof": False})
    stop = False

    def _on_signal(signum: int, frame: object) -> None:
        nonlocal stop
        stop = True

    previous = signal.signal(signal.SIGINT, _on_signal)
    printed = 0
    try:
        partitions = topic_partitions(consumer, name, settings)
        if match_id is not None:
            partitions = [partition_for(match_id, len(partitions))]
        start = OFFSET_BEGINNING if from_beginning else OFFSET_END
        consumer.assign([TopicPartition(name, p, start) for p in partitions])
        if ready:
            ready()
        last_record = time.monotonic()
        while not stop and (max_records is None or printed < max_records):
            if timeout_s is not None and time.monotonic() - last_record > timeout_s:
                break
            message = consumer.poll(0.2)
            if message is None:
                continue
            if message.error():
                if refusal := kafka_refusal(message.error(), settings, f"to read {name}"):
                    raise CrowdsoundError(refusal)
                if message.error().code() != KafkaError._PARTITION_EOF:
                    print(f"error: {message.error()}", file=sys.stderr)
                continue
            last_record = time.monotonic()
            key = message.key().decode("utf-8", errors="replace") if message.key() else None
            if match_id is not None and key != match_id:
                continue
            print(_render(message, key, as_json), file=out, flush=True)
            printed += 1
    finally:
        signal.signal(signal.SIGINT, previous)
        consumer.close()
    return printed


def _render(message: Any, key: str | None, as_json: bool) -> str:
    _, ts = message.timestamp()
    try:
        record_type, record = decode_any(message.value())
        error = None
    except SchemaError as exc:
        record_type, record, error = None, None, str(exc)
    where = {"topic": message.topic(), "partition": message.partition(), "offset": message.offset()}
    if as_json:
        body: dict[str, Any] = {**where, "timestamp_ms": ts, "key": key}
        body.update({"type": record_type, "record": summarise(record)} if error is None else {"error": error})
        return json.dumps(body, separators=(",", ":"), ensure_ascii=False)
    head = f"{message.topic()}[{message.partition()}]@{message.offset()} {_timestamp(ts)} key={key}"
    if error is not None:
        return f"{head} UNDECODABLE {error}"
    return f"{head} {_human(record_type, record)}"
