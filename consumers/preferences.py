"""Music preferences: validating records, and the table every composer keeps of them.

music.preferences.v1 is compacted and keyed by match id ('*' = every match). Global
preferences live on one partition, so each composer instance reads the whole topic
(like a Kafka Streams global table) instead of only its share of the partitions.
"""

from __future__ import annotations

from typing import Any

from consumers.music.director import MusicPrefs
from consumers.music.types import LAYERS, STYLES
from infra.errors import SchemaError

__all__ = ["ALL_MATCHES", "PreferencesTable", "validate_preferences"]

ALL_MATCHES = "*"


def validate_preferences(record: dict[str, Any]) -> None:
    """Raise SchemaError naming what is wrong with a Preferences record."""
    style = record.get("style")
    if style is not None and style not in STYLES:
        raise SchemaError(f"unknown style {style!r}; styles: {', '.join(STYLES)}")
    unknown = sorted(set(record.get("muted_layers") or ()) - set(LAYERS))
    if unknown:
        raise SchemaError(f"unknown layer(s) {', '.join(unknown)}; layers: {', '.join(LAYERS)}")
    for low_name, high_name, low_bound, high_bound in (
        ("intensity_min", "intensity_max", 0.0, 1.0), ("tempo_min_bpm", "tempo_max_bpm", 40.0, 240.0),
    ):
        low, high = record.get(low_name), record.get(high_name)
        for name, value in ((low_name, low), (high_name, high)):
            if value is not None and not low_bound <= value <= high_bound:
                raise SchemaError(f"{name} {value:g} is outside {low_bound:g}..{high_bound:g}")
        if low is not None and high is not None and low > high:
            raise SchemaError(f"{low_name} {low:g} is above {high_name} {high:g}")


class PreferencesTable:
    """The latest Preferences per match and the global ones; latest record wins per key."""

    def __init__(self) -> None:
        self._records: dict[str, dict[str, Any]] = {}

    def put(self, match_id: str, record: dict[str, Any] | None) -> None:
        """Store a record (None: a tombstone, the match falls back to the global ones)."""
        if record is None:
            self._records.pop(match_id, None)
        else:
            self._records[match_id] = record

    def record_of(self, match_id: str) -> dict[str, Any] | None:
        """The latest record written for ``match_id`` itself ('*': the global one), if any."""
        return self._records.get(match_id)

    def for_match(self, match_id: str) -> MusicPrefs:
        """Defaults, then the global record, then the match's own."""
        prefs = MusicPrefs()
        for key in (ALL_MATCHES, match_id):
            record = self._records.get(key)
            if record is not None:
                prefs = prefs.updated(record)
        return prefs
