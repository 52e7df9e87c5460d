"""Wall-clock times as people type them on the command line."""

from __future__ import annotations

import time
from datetime import datetime

from infra.errors import CrowdsoundError

__all__ = ["now_ms", "parse_wall_time"]


def now_ms() -> int:
    """Unix epoch milliseconds, now."""
    return time.time_ns() // 1_000_000


def parse_wall_time(text: str) -> int:
    """``now``, Unix epoch milliseconds, or ISO 8601 (``2026-11-25T20:00:00Z``; no zone = local).

    Raises
    ------
    CrowdsoundError
        Naming the text, when it is none of these.
    """
    raw = text.strip()
    if raw.lower() == "now":
        return now_ms()
    if raw.isdigit() and len(raw) >= 12:
        return int(raw)
    try:
        parsed = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise CrowdsoundError(f"bad wall time {text!r}: use 'now', epoch ms or ISO 8601 like 2026-11-25T20:00:00Z") from None
    return int(parsed.timestamp() * 1000)
