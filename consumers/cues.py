"""Operator cues (music.cues.v1): what they are, checking them, and writing one.

A cue is a button an operator presses when the automation is wrong or late: a stinger on the
next beat (``goal``, ``goal_against``, ``near_miss``, ``card``, ``var``, ``full_time``),
``hold`` (freeze the music's intensity and key from the next bar), ``release`` (end a hold),
``fade_out`` / ``fade_in`` (the music's fader, over ``bars`` bars from the next bar). The
control room's buttons and ``crowdsound cue`` write the same records; the composer applies
each ``cue_id`` once.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from confluent_kafka import Producer

from consumers.music.types import STINGERS
from infra.clients import match_key, produce_and_wait
from infra.errors import SchemaError
from infra.settings import Settings
from schemas.codec import encode

__all__ = ["BAR_CUES", "CUE_TYPES", "MAX_FADE_BARS", "cue_record", "validate_cue", "write_cue"]

BAR_CUES: tuple[str, ...] = ("hold", "release", "fade_out", "fade_in")
CUE_TYPES: tuple[str, ...] = (*STINGERS, *BAR_CUES)  # as people and the API spell them
MAX_FADE_BARS = 32


def validate_cue(record: dict[str, Any]) -> None:
    """Raise SchemaError naming what is wrong with a Cue record."""
    if not record.get("match_id"):
        raise SchemaError("a cue needs a match id")
    if not record.get("cue_id"):
        raise SchemaError("a cue needs a cue id")
    if record.get("type", "").lower() not in CUE_TYPES:
        raise SchemaError(f"unknown cue type {record.get('type')!r}; types: {', '.join(CUE_TYPES)}")
    bars = record.get("bars", 2)
    if not isinstance(bars, int) or not 1 <= bars <= MAX_FADE_BARS:
        raise SchemaError(f"bars {bars!r} is outside 1..{MAX_FADE_BARS}")


def cue_record(match_id: str, cue_type: str, *, bars: int = 2, set_by: str, source: str,
               cue_id: str | None = None) -> dict[str, Any]:
    """A validated Cue record; ``cue_type`` as people spell it (``goal``, ``fade_out``, ``fade-out``).

    Raises
    ------
    SchemaError
        Naming the unknown type or the bad bar count.
    """
    record = {
        "match_id": match_id, "cue_id": cue_id or uuid.uuid4().hex, "type": cue_type.replace("-", "_").upper(),
        "bars": bars, "clock": None, "wall_time_ms": int(time.time() * 1000), "set_by": set_by, "source": source,
    }
    validate_cue(record)
    return record


def write_cue(settings: Settings, producer: Producer, record: dict[str, Any]) -> dict[str, Any]:
    """Write a Cue record to music.cues.v1 (keyed by its match) and wait for the broker; returns
    where it went (topic, partition, offset)."""
    message = produce_and_wait(producer, settings.topic("music.cues.v1"), key=match_key(record["match_id"]),
                               value=encode("Cue", record), what="cue", settings=settings)
    return {"topic": message.topic(), "partition": message.partition(), "offset": message.offset()}
