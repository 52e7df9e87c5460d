"""The ``crowdsound`` command: one entry point, a subcommand per job.

Subcommands live next to the code they run (``infra/commands.py``,
``consumers/commands.py``, ...) and import their heavy dependencies only when they run,
so ``crowdsound --help`` and the venue encoder start fast.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from typing import NoReturn

from confluent_kafka import KafkaException

from infra.errors import CrowdsoundError
from infra.logs import configure_logging
from infra.settings import Settings

__all__ = ["CliParser", "main"]

_DESCRIPTION = """\
crowdsound turns the sound of a stadium into music, live, on Apache Kafka.

Venue encoders stream crowd audio, match feeds stream events; stream workers join
them by match time into crowd emotions; a composer turns those into music. Every
topic is retained, so highlights are rebuilt later by replaying a match.

Kafka settings come from the environment (KAFKA_BOOTSTRAP_SERVERS, default
127.0.0.1:9092; KAFKA_CLIENT_<PROPERTY> passes any client property through) or a
librdkafka properties file (KAFKA_CONFIG_FILE, as kcat -F reads).
"""

_EPILOG = """\
first steps:
  crowdsound broker up        start a local Kafka broker (needs Java 17+ and Maven)
  crowdsound topics apply     create the topics of the catalogue
  crowdsound tail crowd.emotions.v1 --from-beginning --max 10

secure (SASL_SSL, ACLs, a principal per role):
  crowdsound broker up --secure && crowdsound security apply
  KAFKA_CONFIG_FILE=.crowdsound/security/reader.properties crowdsound tail crowd.emotions.v1
"""


class CliParser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one line on stderr and exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> CliParser:
    from consumers.commands import register as register_consumers
    from infra.commands import register as register_infra
    from producers.commands import register as register_producers
    from streams.commands import register as register_streams
    from streams.worker import add_worker_parser

    parser = CliParser(
        prog="crowdsound", description=_DESCRIPTION, epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--log-level", choices=["DEBUG", "INFO", "WARNING", "ERROR"],
                        help="log verbosity (default: CROWDSOUND_LOG_LEVEL or INFO)")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=CliParser)
    commands.required = True
    register_infra(commands)
    register_producers(commands)
    add_worker_parser(commands)
    register_streams(commands)
    register_consumers(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the process exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settings = Settings.from_env()
        configure_logging(args.log_level or settings.log_level)
        return int(args.handler(args, settings) or 0)
    except CrowdsoundError as exc:
        print(f"crowdsound {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except KafkaException as exc:  # a Kafka failure nothing more specific caught: one line, no traceback
        from infra.clients import last_refusal

        error = exc.args[0] if exc.args else exc
        reason = last_refusal() or f"Kafka: {getattr(error, 'str', lambda: error)()}"
        print(f"crowdsound {args.command}: error: {reason}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        logging.getLogger("crowdsound").info("interrupted")
        return 130


if __name__ == "__main__":
    sys.exit(main())
