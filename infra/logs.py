"""Structured log lines (logfmt: ``ts=... level=... logger=... msg=...``) for every process."""

from __future__ import annotations

import logging
import sys
import time

__all__ = ["configure_logging"]


class _LogfmtFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z"
        message = record.getMessage().replace('"', "'")
        line = f'ts={ts} level={record.levelname.lower()} logger={record.name} msg="{message}"'
        if record.exc_info:
            line += f' exc="{self.formatException(record.exc_info)!r}"'
        return line


def configure_logging(level: str = "INFO") -> None:
    """Send log lines to stderr (stdout stays free for data, e.g. ``listen --out -``)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_LogfmtFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
