"""Argument types for the CLI: a bad value is one line naming it, not a traceback."""

from __future__ import annotations

import argparse
from collections.abc import Callable

__all__ = ["whole_number", "seconds"]


def whole_number(*, low: int = 0, high: int | None = None, what: str = "a whole number") -> Callable[[str], int]:
    """An argparse type accepting whole numbers in [low, high]."""
    bounds = f"{low}..{high}" if high is not None else f">= {low}"

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what} ({bounds}), got {text!r}") from None
        if value < low or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"expected {what} ({bounds}), got {value}")
        return value

    return parse


def seconds(text: str) -> float:
    """An argparse type for a positive number of seconds."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected seconds > 0, got {text}")
    return value
