"""Consumer-side subcommands: ``crowdsound tail``."""

from __future__ import annotations

import argparse
from typing import Any

from infra.cliargs import seconds, whole_number
from infra.settings import Settings

__all__ = ["register"]


def register(commands: Any) -> None:
    """Add the consumer subcommands to the CLI."""
    tail = commands.add_parser(
        "tail", help="print the decoded records of a topic, one per line",
        description="Print the records of any catalogue topic, decoded, one per line: "
        "topic[partition]@offset, record time, key, record type and fields (match clocks as match "
        "time, byte payloads as their size). Reads without a consumer group and commits nothing, so "
        "it never disturbs real consumers. Stops after --max records, after --timeout idle seconds, "
        "or on Ctrl-C.",
    )
    tail.add_argument("topic", help="catalogue topic, e.g. crowd.emotions.v1 (see `crowdsound topics list`)")
    tail.add_argument("--match", metavar="M", help="only this match (reads only its partition)")
    tail.add_argument("--from-beginning", action="store_true",
                      help="start at the oldest retained record (default: only new records)")
    tail.add_argument("--max", type=whole_number(low=1), metavar="N", help="stop after N records")
    tail.add_argument("--timeout", type=seconds, metavar="S", help="stop after S seconds without a record")
    tail.add_argument("--json", action="store_true",
                      help="one JSON object per line (bytes summarised, never dumped raw)")
    tail.set_defaults(handler=_tail)


def _tail(args: argparse.Namespace, settings: Settings) -> int:
    from consumers.tail import tail

    tail(settings, args.topic, match_id=args.match, from_beginning=args.from_beginning,
         max_records=args.max, timeout_s=args.timeout, as_json=args.json)
    return 0
