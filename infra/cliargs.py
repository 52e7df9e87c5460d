"""Argument types for the CLI: a bad value is one line naming it, not a traceback."""

from __future__ import annotations

import argparse
from collections.abc import Callable

__all__ = ["add_metrics_arguments", "seconds", "whole_number"]


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


def add_metrics_arguments(parser: argparse.ArgumentParser) -> None:
    """``--metrics-port`` and ``--metrics-host`` for a long-running command."""
    parser.add_argument("--metrics-port", type=whole_number(low=0, high=65_535, what="a port"), metavar="PORT",
                        help="serve Prometheus /metrics and /healthz on PORT (default: CROWDSOUND_METRICS_PORT, "
                        "0 = off)")
    parser.add_argument("--metrics-host", metavar="ADDRESS",
                        help="address to serve them on (default: CROWDSOUND_METRICS_HOST or 127.0.0.1; "
                        "0.0.0.0 for every interface, as in a container)")
