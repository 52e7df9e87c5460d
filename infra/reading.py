"""Reading topics without a consumer group: find a topic's partitions, read partitions to their end.

Several crowdsound processes read a topic "up to now" before doing anything else: the
composer restores its state topic, ``prefs show`` and the control room read the compacted
preferences, the encoder catches up on a match's periods, replay reads a match's partition.
They share two steps, kept here once:

* :func:`topic_partitions` — the partitions of a topic, or one :class:`TopicMissingError` line
  telling the user to run ``crowdsound topics apply``;
* :func:`read_to_end` — assign partitions at given offsets and yield their records until each
  partition's position reaches the end it had when reading began. Transaction markers occupy
  offsets too (the composer's state topic is written transactionally), so "done" is decided
  by the consumer's position, not by the offset of the last record seen.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Protocol

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, Message, TopicPartition

from infra.errors import BrokerError, CrowdsoundError, TopicMissingError
from infra.settings import Settings

__all__ = ["partition_ends", "patiently", "read_to_end", "topic_partitions"]


def patiently(call: Callable[[], Any], what: str, *, timeout_s: float = 30.0) -> Any:
    """``call()``, retried while the cluster settles (a leader moving after a broker restart, or a
    topic created a moment ago, answers NOT_LEADER_FOR_PARTITION for a while); a lasting failure
    is one BrokerError line."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return call()
        except KafkaException as error:
            if time.monotonic() > deadline:
                raise BrokerError(f"{what}: {error.args[0].str() if error.args else error}") from None
            time.sleep(0.5)


class _MetadataClient(Protocol):  # Consumer, Producer and AdminClient all answer list_topics
    def list_topics(self, topic: str | None = ..., timeout: float = ...) -> object: ...


def topic_partitions(client: _MetadataClient, topic: str, settings: Settings, *, timeout_s: float = 10.0,
                     doing: str = "read") -> list[int]:
    """The partition ids of ``topic`` (a deployed name), sorted.

    Raises
    ------
    TopicMissingError
        When the cluster does not have the topic; the message says how to create it.
    CrowdsoundError
        One line when the cluster cannot be reached, refuses this client (credentials, TLS
        trust) or the principal may not ``doing`` the topic (no ACL).
    """
    from infra.clients import kafka_refusal, unreachable

    deadline = time.monotonic() + timeout_s
    while True:
        try:
            metadata = client.list_topics(topic, timeout=1).topics.get(topic)  # type: ignore[attr-defined]
            break
        except KafkaException as exc:
            if time.monotonic() > deadline:
                raise CrowdsoundError(unreachable(client, settings, exc)) from None
            client.poll(0)  # type: ignore[attr-defined] # serves the client's errors: a refusal is raised at once
    error = metadata.error if metadata is not None else None
    if error is not None and (refusal := kafka_refusal(error, settings, f"to {doing} topic {topic}")):
        raise CrowdsoundError(refusal)
    if metadata is None or error is not None or not metadata.partitions:
        raise TopicMissingError(f"topic {topic} does not exist on {settings.bootstrap_servers}; "
                                "run `crowdsound topics apply`")
    return sorted(metadata.partitions)


def partition_ends(consumer: Consumer, topic: str, partitions: list[int], *,
                   timeout_s: float = 10.0) -> dict[int, tuple[int, int]]:
    """``{partition: (low, high)}`` watermarks, read from the broker now (not cached)."""
    return {p: patiently(lambda p=p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout_s,
                                                                    cached=False),
                         f"cannot read the offsets of {topic}[{p}]")
            for p in partitions}


def read_to_end(consumer: Consumer, topic: str, starts: Mapping[int, int], *, idle_timeout_s: float = 30.0,
                raise_on_timeout: bool = True, batch: int = 500) -> Iterator[Message]:
    """Yield the records of ``topic``'s partitions from ``starts[p]`` to the end each has now.

    ``starts`` maps a partition to its first offset (or ``OFFSET_BEGINNING``). The consumer is
    assigned those partitions and stays assigned afterwards, so a caller may go on polling
    for live records. Records of the last batch may lie past the end read at the start
    (newer records); error events (partition EOF) are never yielded.

    Raises
    ------
    BrokerError
        When no partition made progress for ``idle_timeout_s`` (with ``raise_on_timeout``;
        otherwise the reading just stops).
    """
    ends = {p: high for p, (low, high) in partition_ends(consumer, topic, list(starts)).items()
            if high > max(low, starts[p])}
    if not ends:
        return
    consumer.assign([TopicPartition(topic, p, starts[p] if starts[p] >= 0 else OFFSET_BEGINNING) for p in ends])
    pending = set(ends)
    progress_at = time.monotonic()
    while pending:
        messages = consumer.consume(batch, 0.5)
        for message in messages:
            if message.error() is not None:
                continue  # partition EOF and transient fetch errors: the position check decides
            yield message
            if message.offset() + 1 >= ends.get(message.partition(), 0):
                pending.discard(message.partition())
        if messages:
            progress_at = time.monotonic()
        if pending:
            for tp in consumer.position([TopicPartition(topic, p) for p in pending]):
                if tp.offset >= ends[tp.partition]:
                    pending.discard(tp.partition)
        if pending and time.monotonic() - progress_at > idle_timeout_s:
            if raise_on_timeout:
                raise BrokerError(f"could not read {topic} partitions {sorted(pending)} to their end "
                                  f"within {idle_timeout_s:.0f} s")
            return
