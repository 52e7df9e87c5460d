"""Housekeeping and CPU accounting shared by the benchmark scripts."""

from __future__ import annotations

import os
from pathlib import Path

from infra.broker import broker_paths, broker_up
from infra.clients import make_admin
from infra.settings import Settings

__all__ = ["bench_broker", "broker_pid", "cpu_seconds", "drop_topics", "machine_cpu_seconds"]

CLOCK_TICK = os.sysconf("SC_CLK_TCK")


def drop_topics(settings: Settings) -> None:
    """Delete the topics of a finished run (backlogs can be hundreds of MB); best effort."""
    admin = make_admin(settings)
    names = [t for t in admin.list_topics(timeout=10).topics if t.startswith(settings.topic_prefix)]
    if names:
        for future in admin.delete_topics(names, operation_timeout=30).values():
            try:
                future.result()
            except Exception:  # noqa: BLE001, S110 - best effort
                pass


def cpu_seconds(pid: int | None, *, children: bool = False) -> float:
    """User + system CPU time of a process so far (and of its live children); NaN if gone."""
    if pid is None:
        return float("nan")
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    total = (int(fields[11]) + int(fields[12])) / CLOCK_TICK
    if children:
        for task in Path(f"/proc/{pid}/task").glob("*/children"):
            for child in task.read_text().split():
                total += cpu_seconds(int(child), children=True)
    return total


def machine_cpu_seconds() -> float:
    """Busy CPU seconds of the whole machine (all cores) so far, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    return (sum(values[:8]) - idle) / CLOCK_TICK


def broker_pid(settings: Settings) -> int | None:
    """The local broker's process (None for another cluster)."""
    try:
        port = int(settings.bootstrap_servers.split(",")[0].rsplit(":", 1)[1])
    except (ValueError, IndexError):
        return None
    for secure in (False, True):  # the plaintext broker, or the secure one (`broker up --secure`)
        try:
            return int(broker_paths(settings, port, secure=secure).pid_file.read_text().strip())
        except (OSError, ValueError):
            continue
    return None


def bench_broker(port: int) -> tuple[Settings, bool]:
    """The cluster of a benchmark: KAFKA_BOOTSTRAP_SERVERS when set, else the local broker on
    ``port`` (started when it is not running); returns its settings and whether this call started it."""
    base = Settings.from_env()
    if "KAFKA_BOOTSTRAP_SERVERS" in os.environ:
        return base, False
    base = base.with_overrides(bootstrap_servers=f"127.0.0.1:{port}", broker_port=port)
    _, started = broker_up(base)
    return base, started
