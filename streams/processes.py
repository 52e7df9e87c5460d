"""``crowdsound worker --processes N``: N stream workers of one consumer group on one box.

A Faust worker is one Python process, so it uses one core (plus its frame helper's, see
:mod:`streams.offload`). Partitions are the unit of scale: N workers in the same group share
the partitions (and the table's changelog partitions) of the source topics, each owning its
matches, exactly as N pods would. This supervisor starts them as child processes with the
same arguments, so one command uses every core of a box:

* each child gets ``--instance-id ID-<k>`` when ``--instance-id ID`` was given (static
  membership stays stable per child), its own Faust data folder, and — unless
  ``CROWDSOUND_FRAME_HELPER`` is set — no frame helper (N workers already keep N cores busy
  analysing their own frames, without the hand-over);
* ``--metrics-port P`` serves every child's metrics on P with a ``process`` label (the children
  serve theirs on local ports of their own), and ``/healthz`` is healthy while every child is;
* SIGTERM or SIGINT is passed on to every child, which commits and stops; the supervisor
  exits when they have. A child that exits by itself (a crash, exit 70 after a failed
  checkpoint) stops the others and the supervisor exits with its status, so whatever runs
  the supervisor (systemd, a container) restarts the whole group in order.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence

from infra.ports import free_port
from infra.settings import Settings

__all__ = ["child_arguments", "run_processes"]

log = logging.getLogger("crowdsound.worker")

_OWN_OPTIONS = ("--processes", "--metrics-port", "--metrics-host", "--instance-id")  # set per child
STOP_TIMEOUT_S = 60.0


def child_arguments(argv: Sequence[str], index: int, *, metrics_port: int, instance_id: str | None) -> list[str]:
    """A child's command line: the supervisor's ``worker`` arguments without the options it
    sets per child, plus that child's own."""
    args: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
            continue
        name = arg.split("=", 1)[0]
        if name in _OWN_OPTIONS:
            skip = "=" not in arg
            continue
        args.append(arg)
    args += ["--metrics-port", str(metrics_port), "--metrics-host", "127.0.0.1"]
    if instance_id:
        args += ["--instance-id", f"{instance_id}-{index}"]
    return args


def run_processes(args: argparse.Namespace, settings: Settings, argv: Sequence[str]) -> int:
    """Run ``args.processes`` workers until SIGTERM/SIGINT or until one of them exits.

    ``argv`` is the command line after the program name (``worker ...``)."""
    from infra.metrics import ChildMetrics, serve_process_metrics

    count = args.processes
    env = dict(os.environ)
    env.setdefault("CROWDSOUND_FRAME_HELPER", "0")
    data_dir = env.get("APP_DATADIR", f"{settings.topic_prefix}crowdsound-streams-data")
    ports = {str(k): free_port() for k in range(count)}
    children: list[subprocess.Popen] = []
    for k in range(count):
        os.makedirs(os.path.join(data_dir, f"process-{k}"), exist_ok=True)  # Faust makes only the last level
        command = [sys.executable, "-m", "infra.cli", *child_arguments(
            argv, k, metrics_port=ports[str(k)], instance_id=args.instance_id)]
        children.append(subprocess.Popen(command, env={**env, "APP_DATADIR": os.path.join(data_dir, f"process-{k}")}))
    log.info("started %d stream workers pids=%s", count, ",".join(str(c.pid) for c in children))
    from prometheus_client import CollectorRegistry

    registry = CollectorRegistry(auto_describe=False)
    merged = ChildMetrics(ports)
    registry.register(merged)
    serve_process_metrics(args, settings, healthy=lambda: all(c.poll() is None for c in children) and merged.healthy(),
                          registry=registry)

    stopping: list[int] = []

    def stop(signum: int, frame: object) -> None:
        stopping.append(signum)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    status = 0
    while not stopping:
        exited = [c for c in children if c.poll() is not None]
        if exited:
            status = exited[0].returncode
            log.error("stream worker pid=%d exited with status %d; stopping the others", exited[0].pid, status)
            status = status or 1  # a child that stops on its own is a failure of the group
            break
        time.sleep(0.2)
    for child in children:
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT_S
    for child in children:
        try:
            child.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            log.error("stream worker pid=%d did not stop in %.0f s; killing it", child.pid, STOP_TIMEOUT_S)
            child.kill()
            child.wait()
    return status
