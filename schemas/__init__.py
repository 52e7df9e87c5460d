"""Contracts of crowdsound: Avro schemas (``*.avsc``), the codec and the match clock."""

from schemas.clock import MatchClock, Period, parse_clock
from schemas.codec import RECORD_TYPES, RecordType, decode, decode_any, encode, schema_of

__all__ = [
    "RECORD_TYPES",
    "MatchClock",
    "Period",
    "RecordType",
    "decode",
    "decode_any",
    "encode",
    "parse_clock",
    "schema_of",
]
