"""Reading one match back from the retained topics: its partition only, from a timestamp.

Every topic is keyed by match id and co-partitioned, so a match lives on one partition
number everywhere. The reader assigns just that partition, asks the broker for the first
offset at a timestamp (``offsets_for_times``) and reads forward until a record is past the
range it needs or the partition's end as it was when reading began. A partition that stops
delivering before that end (the broker went away, a transaction left open holds the stable
offset back) is an error after ``read_timeout_s``, never a silently shorter replay. Records are produced
after the moment they describe (a window after its audio, audio after capture), so seeking
to the start of a range by record time never skips a record of the range.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from confluent_kafka import TopicPartition

from infra.clients import make_consumer, match_key, reader_group
from infra.errors import BrokerError, CrowdsoundError, SchemaError
from infra.partitioning import partition_for
from infra.reading import patiently as _patiently
from infra.reading import read_to_end, topic_partitions
from infra.progress import Progress
from infra.settings import Settings
from schemas.codec import RecordType, decode

__all__ = ["PartitionReader", "RetentionError", "TopicSlice"]

_SEEK_MARGIN_MS = 120_000  # records are stamped a little after what they describe; never less


class RetentionError(CrowdsoundError):
    """The data a replay needs is no longer on the broker."""


@dataclass(frozen=True)
class TopicSlice:
    """Where one topic's read started and ended, for the replay's report."""

    topic: str
    partition: int
    first_offset: int
    end_offset: int
    records: int


class PartitionReader:
    """Reads the records of one match from its partition of any catalogue topic."""

    def __init__(self, settings: Settings, match_id: str, *, read_timeout_s: float = 60.0) -> None:
        self.settings = settings
        self.match_id = match_id
        self.read_timeout_s = read_timeout_s
        self.key = match_key(match_id)
        self.consumer = make_consumer(settings, group_id=reader_group(settings, "replay"),
                                      extra={"fetch.max.bytes": 64 * 1024 * 1024,
                                             "max.partition.fetch.bytes": 16 * 1024 * 1024})
        self.slices: list[TopicSlice] = []

    def close(self) -> None:
        self.consumer.close()

    def partition_of(self, topic: str) -> int:
        partitions = _patiently(lambda: topic_partitions(self.consumer, topic, self.settings),
                                f"cannot read the metadata of {topic}")
        return partition_for(self.key, len(partitions))

    def read(self, name: str, record_type: RecordType, *, from_ms: int | None = None,
             stop: Callable[[dict[str, Any]], bool] | None = None,
             progress: str | None = None) -> Iterator[dict[str, Any]]:
        """The match's records of catalogue topic ``name``, decoded, in offset order.

        Starts at the first record stamped at or after ``from_ms`` (minus a margin; None = the
        oldest retained) and stops at the partition's end or at the first record for which
        ``stop`` is true. Undecodable records are skipped (the live consumers dead-lettered them).
        ``progress`` labels a progress bar over the partition's offsets.
        """
        topic = self.settings.topic(name)
        partition = self.partition_of(topic)
        tp = TopicPartition(topic, partition)
        low, high = _patiently(lambda: self.consumer.get_watermark_offsets(tp, timeout=10),
                               f"cannot read the offsets of {topic}[{partition}]")
        start = low
        if from_ms is not None:
            seek = [TopicPartition(topic, partition, max(0, from_ms - _SEEK_MARGIN_MS))]
            found = _patiently(lambda: self.consumer.offsets_for_times(seek, timeout=10)[0],
                               f"cannot seek {topic}[{partition}] by time")
            if found.error is not None:
                raise BrokerError(f"cannot seek {topic}[{partition}] by time: {found.error}")
            start = high if found.offset < 0 else max(low, found.offset)
        counter = [0]
        if start < high:
            bar = Progress(high - start, progress, unit="records") if progress else None
            try:
                yield from self._consume(topic, partition, start, high, record_type, stop,
                                         (lambda offset: bar.update(offset - start)) if bar else None, counter)
            finally:
                self.consumer.unassign()
                if bar is not None:
                    bar.update(high - start, "done")
        count = counter[0]
        self.slices.append(TopicSlice(topic=topic, partition=partition, first_offset=start, end_offset=high,
                                      records=count))

    def _consume(self, topic: str, partition: int, start: int, high: int, record_type: RecordType,
                 stop: Callable[[dict[str, Any]], bool] | None, progress: Callable[[int], None] | None,
                 counter: list[int]) -> Iterator[dict[str, Any]]:
        try:
            yield from self._records(topic, partition, start, high, record_type, stop, progress, counter)
        except BrokerError as error:
            raise BrokerError(f"{error}; the broker stopped delivering it (down, or a transaction left open) after "
                              f"{counter[0]} records of match {self.match_id!r}, so the replay would be incomplete"
                              ) from None

    def _records(self, topic: str, partition: int, start: int, high: int, record_type: RecordType,
                 stop: Callable[[dict[str, Any]], bool] | None, progress: Callable[[int], None] | None,
                 counter: list[int]) -> Iterator[dict[str, Any]]:
        for message in read_to_end(self.consumer, topic, {partition: start}, idle_timeout_s=self.read_timeout_s,
                                   batch=2000):
            if message.offset() >= high:
                return
            if progress is not None:
                progress(message.offset())
            if message.key() != self.key:
                continue
            try:
                record = decode(message.value(), expect=record_type)
            except SchemaError:
                continue
            if stop is not None and stop(record):
                return
            counter[0] += 1
            yield record

    def oldest_timestamp(self, name: str) -> int | None:
        """Record time of the oldest retained record of the match's partition of ``name``."""
        topic = self.settings.topic(name)
        partition = self.partition_of(topic)
        low, high = _patiently(lambda: self.consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10),
                               f"cannot read the offsets of {topic}[{partition}]")
        if low >= high:
            return None
        self.consumer.assign([TopicPartition(topic, partition, low)])
        try:
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                message = self.consumer.poll(0.5)
                if message is not None and not message.error():
                    return message.timestamp()[1]
            return None
        finally:
            self.consumer.unassign()
