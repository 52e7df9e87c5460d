"""Bounds on the values of records: what the contracts promise beyond Avro's types.

Avro checks types. A record can still carry a clock days past the start of its period, a NaN
arousal, or a frame that claims a million samples; one such record made the stream worker
loop once per window up to its clock and the composer render music up to it. The codec's
:func:`schemas.codec.decode` calls :func:`check_record` on every record it decodes, so each
consumer refuses such a record at its boundary with the value in the message (a SchemaError,
which it dead-letters with that reason) before any state sees it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from infra.errors import SchemaError

__all__ = ["MAX_FRAME_MS", "MAX_PERIOD_MS", "MAX_WINDOW_MS", "check_record"]

MAX_PERIOD_MS = 6 * 3_600_000  # no period of a match lasts 6 hours (a long pre-match spell included)
MAX_FRAME_MS = 1_000  # an audio frame holds at most a second (the encoder's --frame-ms is 10..1000)
MAX_WINDOW_MS = 120_000  # an emotion window is at most 2 minutes long (CROWDSOUND_WINDOW_LENGTH_MS)
_MAX_WINDOW_EVENTS = 512  # events attached to one window
_RATES = (8_000, 192_000)
_CHANNELS = (1, 8)


def check_record(record_type: str, record: Mapping[str, Any]) -> None:
    """Refuse values no producer of ``record_type`` writes.

    Raises
    ------
    SchemaError
        Naming the field and its value.
    """
    clock = record.get("clock")
    if clock is not None:
        _check_clock(clock, "clock")
    if record.get("wall_time_ms", 0) < 0:
        raise SchemaError(f"wall_time_ms {record['wall_time_ms']} is before 1970")
    check = _CHECKS.get(record_type)
    if check is not None:
        check(record)


def _check_clock(clock: Mapping[str, Any], what: str) -> None:
    if not 0 <= clock["ms"] <= MAX_PERIOD_MS:
        raise SchemaError(f"{what} {clock['period']} {clock['ms']} ms is outside 0..{MAX_PERIOD_MS} "
                          f"(no period lasts {MAX_PERIOD_MS // 3_600_000} hours)")


def _check_audio(record: Mapping[str, Any]) -> None:
    rate, channels, count = record["sample_rate"], record["channels"], record["samples_per_channel"]
    if not _RATES[0] <= rate <= _RATES[1]:
        raise SchemaError(f"sample rate {rate} Hz is outside {_RATES[0]}..{_RATES[1]}")
    if not _CHANNELS[0] <= channels <= _CHANNELS[1]:
        raise SchemaError(f"{channels} channels is outside {_CHANNELS[0]}..{_CHANNELS[1]}")
    longest = rate * MAX_FRAME_MS // 1000
    if not 1 <= count <= longest:
        raise SchemaError(f"a frame of {count} samples per channel is outside 1..{longest} "
                          f"({MAX_FRAME_MS} ms at {rate} Hz)")
    if record["seq"] < 0:
        raise SchemaError(f"frame seq {record['seq']} is negative")


def _check_window(record: Mapping[str, Any]) -> None:
    if not 1 <= record["length_ms"] <= MAX_WINDOW_MS:
        raise SchemaError(f"window length {record['length_ms']} ms is outside 1..{MAX_WINDOW_MS}")
    if record["revision"] < 0:
        raise SchemaError(f"window revision {record['revision']} is negative")
    numbers = {"arousal": record["arousal"], "valence": record["valence"],
               "loudness_rel_db": record["loudness_rel_db"], "tempo_bpm": record.get("tempo_bpm") or 0.0,
               **{f"probabilities[{state}]": p for state, p in record["probabilities"].items()}}
    for name, value in numbers.items():
        if not math.isfinite(value):
            raise SchemaError(f"window {name} is {value}")
    if not 0.0 <= record["arousal"] <= 1.0 or not -1.0 <= record["valence"] <= 1.0:
        raise SchemaError(f"window arousal {record['arousal']} / valence {record['valence']} is outside 0..1 / -1..1")
    if any(not 0.0 <= p <= 1.0 for p in record["probabilities"].values()):
        raise SchemaError("a window probability is outside 0..1")
    if len(record["events"]) > _MAX_WINDOW_EVENTS:
        raise SchemaError(f"{len(record['events'])} events in one window (at most {_MAX_WINDOW_EVENTS})")
    for event in record["events"]:
        _check_clock(event["clock"], f"event {event['event_id']!r} clock")
    if record["audio_wall_time_ms"] < 0:
        raise SchemaError(f"audio_wall_time_ms {record['audio_wall_time_ms']} is before 1970")


_CHECKS = {"AudioFrame": _check_audio, "EmotionWindow": _check_window}
