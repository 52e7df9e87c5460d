"""The one codec of crowdsound: Avro (fastavro) in single-object encoding.

Every Kafka value crowdsound writes is::

    C3 01 | 8-byte little-endian CRC-64-AVRO fingerprint of the writer schema | Avro binary

That is Avro's own *single-object encoding*, so any Avro library can tell which schema
wrote a record without a schema registry. A reader looks the fingerprint up among the
current schemas (``schemas/*.avsc``) and the older versions kept in ``schemas/history/``,
and resolves the record into the current version of its type — old data stays readable
after a schema evolves.
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Literal, get_args

import fastavro

from infra.errors import SchemaError
from schemas.limits import check_record

__all__ = [
    "RecordType",
    "RECORD_TYPES",
    "decode",
    "decode_any",
    "encode",
    "fingerprint64",
    "load_writer_schemas",
    "schema_of",
]

RecordType = Literal[
    "AudioFrame",
    "MatchEvent",
    "CrowdFeatures",
    "EmotionWindow",
    "MusicControl",
    "AudioChunk",
    "Preferences",
    "Cue",
    "DeadLetter",
]
RECORD_TYPES: tuple[RecordType, ...] = get_args(RecordType)

_MARKER = b"\xc3\x01"
_HEADER_LEN = len(_MARKER) + 8
_SCHEMA_DIR = Path(__file__).resolve().parent
_EMPTY64 = 0xC15D213AA4D7A795


@cache
def _rabin_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        fp = byte
        for _ in range(8):
            fp = (fp >> 1) ^ (_EMPTY64 & -(fp & 1))
        table.append(fp & 0xFFFFFFFFFFFFFFFF)
    return tuple(table)


def fingerprint64(data: bytes) -> int:
    """CRC-64-AVRO (Rabin) fingerprint of ``data``, as the Avro specification defines it."""
    table = _rabin_table()
    fp = _EMPTY64
    for byte in data:
        fp = (fp >> 8) ^ table[(fp ^ byte) & 0xFF]
    return fp


@dataclass(frozen=True)
class WriterSchema:
    """One version of one record type, as it may appear on the wire."""

    record_type: RecordType
    version: str
    parsed: Any
    fingerprint: bytes  # 8 bytes, little-endian, as written after the marker


def _load(path: Path, version: str) -> WriterSchema:
    raw = json.loads(path.read_text())
    name = raw["name"]
    if name not in RECORD_TYPES:
        raise SchemaError(f"{path} defines {name!r}, which is not a crowdsound record type")
    parsed = fastavro.parse_schema(raw, named_schemas={})
    canonical = fastavro.schema.to_parsing_canonical_form(raw)
    fp = fingerprint64(canonical.encode()).to_bytes(8, "little")
    return WriterSchema(record_type=name, version=version, parsed=parsed, fingerprint=fp)


@cache
def load_writer_schemas() -> dict[bytes, WriterSchema]:
    """Every known writer schema by fingerprint: current versions and ``history/``."""
    schemas: dict[bytes, WriterSchema] = {}
    for path in sorted(_SCHEMA_DIR.glob("*.avsc")):
        current = _load(path, "current")
        schemas[current.fingerprint] = current
    for path in sorted((_SCHEMA_DIR / "history").glob("*.avsc")):
        old = _load(path, path.stem.split(".", 1)[1] if "." in path.stem else path.stem)
        schemas.setdefault(old.fingerprint, old)
    missing = set(RECORD_TYPES) - {s.record_type for s in schemas.values() if s.version == "current"}
    if missing:
        raise SchemaError(f"schema files missing for {sorted(missing)} in {_SCHEMA_DIR}")
    return schemas


@cache
def schema_of(record_type: RecordType) -> WriterSchema:
    """The current schema of ``record_type`` (what this code writes and reads into)."""
    for schema in load_writer_schemas().values():
        if schema.record_type == record_type and schema.version == "current":
            return schema
    raise SchemaError(f"unknown record type {record_type!r}; known: {', '.join(RECORD_TYPES)}")


def encode(record_type: RecordType, record: Mapping[str, Any]) -> bytes:
    """Encode ``record`` with the current schema of ``record_type``.

    Raises
    ------
    SchemaError
        When the record does not fit the schema (missing field, wrong type, unknown
        enum symbol); the message names the record type and the problem.
    """
    schema = schema_of(record_type)
    out = io.BytesIO()
    out.write(_MARKER)
    out.write(schema.fingerprint)
    try:
        fastavro.schemaless_writer(out, schema.parsed, record, strict_allow_default=True)
    except (ValueError, TypeError, KeyError, AttributeError, OverflowError) as exc:
        raise SchemaError(f"{record_type} record does not fit its schema: {exc}") from None
    return out.getvalue()


def decode_any(data: bytes | None) -> tuple[RecordType, dict[str, Any]]:
    """Decode bytes written by :func:`encode` (any version of any record type).

    Returns the record type and the record in its *current* shape (fields added since
    the writer's version get their defaults).

    Raises
    ------
    SchemaError
        For anything that is not a complete crowdsound record, or one whose values are out
        of the contract's bounds (:mod:`schemas.limits`).
    """
    if data is None:
        raise SchemaError("empty record: no value bytes (a tombstone?)")
    if len(data) < _HEADER_LEN or data[:2] != _MARKER:
        raise SchemaError(f"not a crowdsound record: starts with {bytes(data[:4]).hex() or 'nothing'}, expected c301")
    writer = load_writer_schemas().get(bytes(data[2:_HEADER_LEN]))
    if writer is None:
        raise SchemaError(f"unknown schema fingerprint {bytes(data[2:_HEADER_LEN]).hex()}: written by a newer crowdsound?")
    reader = schema_of(writer.record_type)
    stream = io.BytesIO(data)
    stream.seek(_HEADER_LEN)
    try:
        record = fastavro.schemaless_reader(stream, writer.parsed, reader.parsed)
    except Exception as exc:  # noqa: BLE001 - fastavro raises many types on corrupt input
        raise SchemaError(f"corrupt {writer.record_type} record: {type(exc).__name__}: {exc}") from None
    if stream.tell() != len(data):
        raise SchemaError(f"corrupt {writer.record_type} record: {len(data) - stream.tell()} trailing bytes")
    if not isinstance(record, dict):
        raise SchemaError(f"corrupt {writer.record_type} record")
    check_record(writer.record_type, record)
    return writer.record_type, record


def decode(data: bytes | None, *, expect: RecordType) -> dict[str, Any]:
    """Decode bytes that must hold a ``expect`` record (any version of it).

    Raises
    ------
    SchemaError
        For bad bytes, or a record of another type.
    """
    record_type, record = decode_any(data)
    if record_type != expect:
        raise SchemaError(f"expected a {expect} record, got a {record_type}")
    return record
