"""Writing and reading music.preferences.v1 for ``crowdsound prefs``."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, TopicPartition

from consumers.music.director import MusicPrefs
from consumers.preferences import ALL_MATCHES, PreferencesTable, validate_preferences
from infra.clients import DeliveryErrors, make_consumer, make_producer, match_key, reader_group, topic_partitions
from infra.errors import BrokerError, CrowdsoundError, SchemaError
from infra.settings import Settings
from schemas.codec import decode, encode

__all__ = ["read_preferences", "write_preferences"]


def write_preferences(settings: Settings, *, match_id: str | None, style: str | None = None,
                      intensity_min: float | None = None, intensity_max: float | None = None,
                      tempo_range: tuple[float, float] | None = None, muted_layers: Sequence[str] = (),
                      set_by: str = "cli") -> dict[str, Any]:
    """Validate and write one Preferences record (None match = every match); returns it."""
    record: dict[str, Any] = {
        "match_id": match_id or ALL_MATCHES, "clock": None, "wall_time_ms": int(time.time() * 1000),
        "style": style, "intensity_min": intensity_min, "intensity_max": intensity_max,
        "tempo_min_bpm": tempo_range[0] if tempo_range else None,
        "tempo_max_bpm": tempo_range[1] if tempo_range else None,
        "muted_layers": sorted(set(muted_layers)), "set_by": set_by,
    }
    try:
        validate_preferences(record)
    except SchemaError as error:
        raise CrowdsoundError(str(error)) from None
    producer = make_producer(settings)
    delivery = DeliveryErrors(settings)
    producer.produce(settings.topic("music.preferences.v1"), key=match_key(record["match_id"]),
                     value=encode("Preferences", record), on_delivery=delivery)
    if producer.flush(15):
        raise BrokerError("preferences not written: no answer from the broker within 15 s")
    delivery.check()
    return record


def read_preferences(settings: Settings, match_id: str | None) -> MusicPrefs:
    """The preferences a composer would apply to ``match_id`` (None: the global ones)."""
    topic = settings.topic("music.preferences.v1")
    consumer = make_consumer(settings, group_id=reader_group(settings, "prefs"))
    try:
        ends = {}
        for partition in topic_partitions(consumer, settings, topic):
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
            if high > low:
                ends[partition] = high
        table = PreferencesTable()
        if ends:
            consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in ends])
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                for message in consumer.consume(500, 0.5):
                    if message.error() or message.key() is None:
                        continue
                    key = message.key().decode("utf-8", "replace")
                    try:
                        table.put(key, None if message.value() is None else decode(message.value(), expect="Preferences"))
                    except SchemaError:
                        continue  # the composer dead-letters it; here it simply does not count
                positions = consumer.position([TopicPartition(topic, p) for p in ends])
                if all(tp.offset >= ends[tp.partition] for tp in positions):
                    break
        return table.for_match(match_id or ALL_MATCHES)
    finally:
        consumer.close()
