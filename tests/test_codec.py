"""The Avro codec: every record type round-trips, old versions stay readable, garbage is refused."""

from __future__ import annotations

import json
from pathlib import Path

import fastavro
import pytest
from hypothesis import given
from hypothesis import strategies as st

from infra.errors import SchemaError
from schemas.codec import RECORD_TYPES, decode, decode_any, encode, fingerprint64, load_writer_schemas, schema_of
from tests.samples import sample_record

SCHEMA_DIR = Path(__file__).resolve().parent.parent / "schemas"


@pytest.mark.parametrize("record_type", RECORD_TYPES)
def test_every_record_type_round_trips(record_type):
    record = sample_record(record_type)
    assert decode(encode(record_type, record), expect=record_type) == record


@pytest.mark.parametrize("record_type", RECORD_TYPES)
def test_every_record_has_match_id_clock_and_wall_time(record_type):
    fields = {field["name"] for field in json.loads((SCHEMA_DIR / f"{record_type}.avsc").read_text())["fields"]}
    assert {"match_id", "clock", "wall_time_ms"} <= fields


def test_header_is_avro_single_object_encoding():
    payload = encode("MatchEvent", sample_record("MatchEvent"))
    canonical = fastavro.schema.to_parsing_canonical_form(json.loads((SCHEMA_DIR / "MatchEvent.avsc").read_text()))
    assert payload[:2] == b"\xc3\x01"
    assert payload[2:10] == fingerprint64(canonical.encode()).to_bytes(8, "little")


def test_rabin_fingerprint_matches_the_avro_specification():
    # The Avro spec's CRC-64-AVRO of the canonical form of "null".
    assert fingerprint64(b'"null"') == 0x63DD24E7CC258F8A


def test_a_version_1_match_event_is_read_by_the_current_schema():
    old_schema = next(s for s in load_writer_schemas().values() if s.record_type == "MatchEvent" and s.version == "v1")
    assert old_schema.fingerprint != schema_of("MatchEvent").fingerprint
    old = {k: v for k, v in sample_record("MatchEvent").items() if k != "player"}
    import io

    body = io.BytesIO()
    fastavro.schemaless_writer(body, old_schema.parsed, old)
    written_by_v1 = b"\xc3\x01" + old_schema.fingerprint + body.getvalue()
    record = decode(written_by_v1, expect="MatchEvent")
    assert record["player"] is None
    assert record["type"] == "GOAL" and record["clock"] == old["clock"]


def test_a_version_1_music_control_is_read_by_the_current_schema():
    """Control messages written before operator cues existed read as not faded and carrying no cue."""
    import io

    old_schema = next(s for s in load_writer_schemas().values()
                      if s.record_type == "MusicControl" and s.version == "v1")
    assert old_schema.fingerprint != schema_of("MusicControl").fingerprint
    old = {k: v for k, v in sample_record("MusicControl").items() if k not in ("beat", "gain", "cues")}
    body = io.BytesIO()
    fastavro.schemaless_writer(body, old_schema.parsed, old)
    record = decode(b"\xc3\x01" + old_schema.fingerprint + body.getvalue(), expect="MusicControl")
    assert record["gain"] == 1.0 and record["cues"] == [] and record["beat"] == 0
    assert record["bar"] == old["bar"] and record["chord"] == old["chord"]


def test_a_record_of_another_type_is_refused():
    with pytest.raises(SchemaError, match="expected a MatchEvent record, got a AudioFrame"):
        decode(encode("AudioFrame", sample_record("AudioFrame")), expect="MatchEvent")


def test_a_record_that_breaks_its_schema_is_refused_on_encode():
    bad = dict(sample_record("MatchEvent"), type="TOUCHDOWN")
    with pytest.raises(SchemaError, match="MatchEvent"):
        encode("MatchEvent", bad)
    missing = {k: v for k, v in sample_record("AudioFrame").items() if k != "seq"}
    with pytest.raises(SchemaError):
        encode("AudioFrame", missing)


@pytest.mark.parametrize("garbage", [b"", b"hello world", b"\xc3\x01" + bytes(8) + b"\x02", None])
def test_garbage_raises_the_project_error(garbage):
    with pytest.raises(SchemaError):
        decode_any(garbage)


def test_truncated_and_padded_records_are_refused():
    payload = encode("AudioFrame", sample_record("AudioFrame"))
    with pytest.raises(SchemaError, match="corrupt AudioFrame"):
        decode_any(payload[:-100])
    with pytest.raises(SchemaError, match="trailing bytes"):
        decode_any(payload + b"\x00")


@given(st.binary(max_size=200))
def test_arbitrary_bytes_never_raise_anything_but_the_project_error(data):
    try:
        decode_any(data)
    except SchemaError:
        pass


@given(st.integers(min_value=0, max_value=400), st.binary(min_size=1, max_size=8))
def test_corrupted_real_records_never_raise_anything_but_the_project_error(position, noise):
    payload = bytearray(encode("EmotionWindow", sample_record("EmotionWindow")))
    position %= len(payload)
    payload[position:position + len(noise)] = noise
    try:
        decode_any(bytes(payload))
    except SchemaError:
        pass
