"""Writing and reading music.preferences.v1 for ``crowdsound prefs``."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, Message

from consumers.music.director import MusicPrefs
from consumers.preferences import ALL_MATCHES, PreferencesTable, validate_preferences
from infra.clients import make_consumer, make_producer, match_key, produce_and_wait, reader_group
from infra.errors import CrowdsoundError, SchemaError
from infra.reading import read_to_end, topic_partitions
from infra.settings import Settings
from schemas.codec import decode, encode

__all__ = ["apply_record", "preferences_record", "preferences_table", "read_preferences", "write_preferences"]


def preferences_record(*, match_id: str | None, style: str | None = None, intensity_min: float | None = None,
                       intensity_max: float | None = None, tempo_range: tuple[float, float] | None = None,
                       muted_layers: Sequence[str] = (), set_by: str = "cli") -> dict[str, Any]:
    """A validated Preferences record (None match = every match).

    Raises
    ------
    SchemaError
        Naming what is wrong (unknown style or layer, a value out of range, min above max).
    """
    record: dict[str, Any] = {
        "match_id": match_id or ALL_MATCHES, "clock": None, "wall_time_ms": int(time.time() * 1000),
        "style": style, "intensity_min": intensity_min, "intensity_max": intensity_max,
        "tempo_min_bpm": tempo_range[0] if tempo_range else None,
        "tempo_max_bpm": tempo_range[1] if tempo_range else None,
        "muted_layers": sorted(set(muted_layers)), "set_by": set_by,
    }
    validate_preferences(record)
    return record


def write_preferences(settings: Settings, *, match_id: str | None, style: str | None = None,
                      intensity_min: float | None = None, intensity_max: float | None = None,
                      tempo_range: tuple[float, float] | None = None, muted_layers: Sequence[str] = (),
                      set_by: str = "cli") -> dict[str, Any]:
    """Validate and write one Preferences record (None match = every match); returns it."""
    try:
        record = preferences_record(match_id=match_id, style=style, intensity_min=intensity_min,
                                    intensity_max=intensity_max, tempo_range=tempo_range,
                                    muted_layers=muted_layers, set_by=set_by)
    except SchemaError as error:
        raise CrowdsoundError(str(error)) from None
    producer = make_producer(settings)
    produce_and_wait(producer, settings.topic("music.preferences.v1"), key=match_key(record["match_id"]),
                     value=encode("Preferences", record), what="preferences", settings=settings)
    return record


def read_preferences(settings: Settings, match_id: str | None) -> MusicPrefs:
    """The preferences a composer would apply to ``match_id`` (None: the global ones)."""
    consumer = make_consumer(settings, group_id=reader_group(settings, "prefs"))
    try:
        return preferences_table(consumer, settings).for_match(match_id or ALL_MATCHES)
    finally:
        consumer.close()


def preferences_table(consumer: Consumer, settings: Settings) -> PreferencesTable:
    """All of music.preferences.v1, read to its end with ``consumer`` (which stays assigned,
    so the caller may keep polling it for changes and apply them with :func:`apply_record`)."""
    topic = settings.topic("music.preferences.v1")
    partitions = topic_partitions(consumer, topic, settings)
    table = PreferencesTable()
    for message in read_to_end(consumer, topic, {p: OFFSET_BEGINNING for p in partitions}):
        apply_record(table, message)
    return table


def apply_record(table: PreferencesTable, message: Message) -> dict[str, Any] | None:
    """Put one music.preferences.v1 record into ``table``; returns it decoded (None: a tombstone,
    or a record the composer dead-letters — it simply does not count here)."""
    if message.key() is None:
        return None
    key = message.key().decode("utf-8", "replace")
    if message.value() is None:
        table.put(key, None)
        return None
    try:
        record = decode(message.value(), expect="Preferences")
        validate_preferences(record)
    except SchemaError:
        return None
    table.put(key, record)
    return record
