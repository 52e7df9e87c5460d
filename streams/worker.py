"""``crowdsound worker``: run the stream worker (the Faust app in ``streams/app.py``)."""

from __future__ import annotations

import argparse
import logging
import os

from infra.cliargs import add_metrics_arguments, whole_number
from infra.settings import Settings

__all__ = ["add_worker_parser", "run_worker"]

log = logging.getLogger("crowdsound.worker")

_HELP = """\
Join crowd.audio.v1 and match.events.v1 by match time into crowd.emotions.v1.

One Faust agent consumes both co-partitioned topics. Each match's join state (features,
baseline, watermark, recent windows and events) is kept in memory and checkpointed to a
changelog-backed table every 20 of its records or 3 s; a record is committed only once a
checkpoint includes it, so a restarted or rebalanced worker recovers exactly where it
stopped. A helper process analyses the audio frames ahead on another core
(CROWDSOUND_FRAME_HELPER=0 turns it off; the results are the same). Windows
(CROWDSOUND_WINDOW_HOP_MS / _LENGTH_MS, default 1 s / 3 s) are emitted as soon as their
audio is complete (revision 0) and re-emitted with a higher revision when a match event
arriving within the grace (CROWDSOUND_GRACE_MS, default 15 s) changes them. Later events
go to match.events.late.v1; bad records to the *.dlq.v1 topics with the reason.

Start more workers to scale out: partitions (and their tables) are shared among them.
--processes N starts N workers of the group here, to use N cores of one box (each then
analyses its own frames: no helper unless CROWDSOUND_FRAME_HELPER=1); their metrics are
served together on --metrics-port with a `process` label. SIGTERM stops cleanly,
committing what was processed.
"""


def add_worker_parser(commands) -> None:
    parser = commands.add_parser("worker", help="run the stream worker: audio + events -> crowd emotions",
                                 description=_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_metrics_arguments(parser)
    parser.add_argument("--instance-id", metavar="ID",
                        help="static group membership: a restarted worker with the same id gets its partitions "
                        "back at once instead of after the session timeout (with --processes: ID-0, ID-1, ...)")
    parser.add_argument("--processes", type=whole_number(low=1, high=64, what="a number of processes"), default=1,
                        metavar="N", help="run N workers of the group on this machine, one per core "
                        "(default 1)")
    parser.add_argument("--forget-after", type=whole_number(low=1, high=24 * 365, what="a whole number of hours"),
                        default=6, metavar="HOURS",
                        help="delete a match's state from the table once its partition has heard a record HOURS "
                        "later (record times, the broker's clock; default 6): the table holds the matches in play")
    parser.set_defaults(handler=run_worker)


def _check_topics(settings: Settings) -> None:
    """One line now, rather than Faust retrying for ever: each topic is there and the
    principal may use it."""
    from infra.clients import make_admin
    from infra.reading import topic_partitions

    admin = make_admin(settings)
    for name in ("crowd.audio.v1", "match.events.v1"):
        topic_partitions(admin, settings.topic(name), settings, doing="read")
    for name in ("crowd.emotions.v1", "match.events.late.v1", "crowd.audio.dlq.v1", "match.events.dlq.v1"):
        topic_partitions(admin, settings.topic(name), settings, doing="write")


def _changelog_replication(settings: Settings) -> tuple[int, int]:
    """Replication factor and min.insync.replicas of the table's changelog, from the cluster."""
    from infra.clients import make_admin
    from infra.topics import internal_topic_replication

    return internal_topic_replication(make_admin(settings), settings)


def run_worker(args: argparse.Namespace, settings: Settings) -> int:
    _check_topics(settings)
    replication = _changelog_replication(settings)
    from streams.emotion import EmotionModel

    EmotionModel.load()  # a missing or broken model is a one-line error now, not a crash later
    if args.processes > 1:
        import sys

        from streams.processes import run_processes

        return run_processes(args, settings, sys.argv[1:])
    import faust

    from infra.metrics import serve_process_metrics
    from streams.app import app, configure, liveness

    replicas, min_insync = replication
    configure(replicas=replicas, min_insync=min_insync, forget_after_h=args.forget_after)
    if args.instance_id:
        app.conf.consumer_group_instance_id = args.instance_id
    serve_process_metrics(args, settings, healthy=lambda: not app.should_stop and liveness.healthy())
    os.environ.setdefault("F_FORCE_COLOR", "0")
    level = logging.getLevelName(logging.getLogger().level).lower()
    worker = faust.Worker(app, loglevel=level if level != "notset" else "info", quiet=True, redirect_stdouts=False)
    # No terminal spinner: at log level WARNING and above Faust drives it with a DEBUG handler on
    # the root logger, which makes every library's debug call build a log record (~10 % of
    # the worker's CPU).
    worker.spinner = None
    worker.execute_from_commandline()  # exits the process when the worker stops
    return 0
