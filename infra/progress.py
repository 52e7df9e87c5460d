"""A progress line for long work: a bar on a terminal, a line every 10 % elsewhere."""

from __future__ import annotations

import sys
import time
from typing import TextIO

__all__ = ["Progress"]


class Progress:
    """``Progress(total, label)``; call :meth:`update` with the amount done so far."""

    def __init__(self, total: float, label: str, *, unit: str = "s", stream: TextIO | None = None,
                 enabled: bool = True) -> None:
        self.total = max(total, 1e-9)
        self.label = label
        self.unit = unit
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self._tty = self.stream.isatty()
        self._last_draw = 0.0
        self._last_decile = -1
        self._start = time.monotonic()

    def update(self, done: float, extra: str = "") -> None:
        if not self.enabled:
            return
        fraction = min(1.0, done / self.total)
        now = time.monotonic()
        if self._tty:
            if now - self._last_draw < 0.2 and fraction < 1.0:
                return
            self._last_draw = now
            filled = int(fraction * 30)
            bar = "#" * filled + "." * (30 - filled)
            self.stream.write(f"\r{self.label} [{bar}] {fraction:4.0%} {done:.0f}/{self.total:.0f} {self.unit} {extra}  ")
            self.stream.flush()
            return
        decile = int(fraction * 10)
        if decile > self._last_decile:
            self._last_decile = decile
            elapsed = now - self._start
            self.stream.write(f"{self.label}: {fraction:4.0%} ({done:.0f}/{self.total:.0f} {self.unit}, {elapsed:.1f} s) {extra}\n")
            self.stream.flush()

    def close(self) -> None:
        if self.enabled and self._tty:
            self.stream.write("\n")
            self.stream.flush()
