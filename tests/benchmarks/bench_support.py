"""Housekeeping and CPU accounting shared by the benchmark scripts."""

from __future__ import annotations

import os
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

from infra.broker import BrokerPaths, broker_paths, broker_up
from infra.clients import make_admin
from infra.settings import Settings

__all__ = ["added", "bench_broker", "broker_pid", "cleaner_buffer", "cpu_model", "cpu_seconds", "drop_topics",
           "group_ready", "machine_cpu_seconds", "merge", "scrape", "stage_report"]

CLOCK_TICK = os.sysconf("SC_CLK_TCK")


def drop_topics(settings: Settings, *, wait_s: float = 120.0) -> None:
    """Delete the topics of a finished run (a 3-minute live run leaves ~2 GB of audio); best
    effort. On the local broker, wait until it has removed their files too: it does that
    file.delete.delay.ms after the deletion, and deleting gigabytes in the middle of the
    next run stalled its windows for up to 0.8 s (episodes 40-60 s into the run)."""
    admin = make_admin(settings)
    names = [t for t in admin.list_topics(timeout=10).topics if t.startswith(settings.topic_prefix)]
    if names:
        for future in admin.delete_topics(names, operation_timeout=30).values():
            try:
                future.result()
            except Exception:  # noqa: BLE001, S110 - best effort
                pass
    broker = _local_broker(settings)
    data = broker.data if broker is not None else None
    deadline = time.monotonic() + wait_s
    while data is not None and names and time.monotonic() < deadline:
        if not any(d.name.startswith(settings.topic_prefix) for d in data.glob("*-delete")):
            return
        time.sleep(1.0)


def cpu_model() -> str:
    """The machine's CPU as /proc/cpuinfo names it (what `lscpu` calls the model name)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"


def cleaner_buffer(settings: Settings) -> str:
    """The broker's log.cleaner.dedupe.buffer.size, for the benchmark's machine line: a broker
    started before infra/kafka/server.properties.template set 8 MiB still zeroes 128 MiB per
    partition it compacts (~26 ms of a core each; at 100 live matches ~10 partitions per 15 s)."""
    from confluent_kafka.admin import ConfigResource

    try:
        admin = make_admin(settings)
        broker = next(iter(admin.list_topics(timeout=10).brokers))
        resource = ConfigResource("BROKER", str(broker))
        entries = admin.describe_configs([resource])[resource].result(timeout=10)
        return f"log cleaner's dedupe buffer {int(entries['log.cleaner.dedupe.buffer.size'].value) / 2**20:.0f} MiB"
    except Exception as error:  # noqa: BLE001 - a note in a printout, never a reason to stop
        return f"log cleaner's dedupe buffer unknown ({error})"


def group_ready(settings: Settings, group: str, members: int, *, timeout_s: float = 90.0,
                check: Callable[[], None] = lambda: None) -> float | None:
    """Wait until consumer group ``group`` is stable with ``members`` members that have
    partitions; the seconds it took, or None after ``timeout_s``. ``check`` runs between tries
    (to stop early when a process under test died)."""
    from confluent_kafka import ConsumerGroupState, KafkaException

    admin = make_admin(settings)
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        check()
        try:
            description = admin.describe_consumer_groups([group], request_timeout=10)[group].result(timeout=15)
            if description.state == ConsumerGroupState.STABLE and sum(
                    1 for m in description.members if m.assignment.topic_partitions) == members:
                return time.monotonic() - started
        except (KafkaException, TimeoutError):
            pass  # a fresh broker still loading its coordinators
        time.sleep(0.5)
    return None


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


def _local_broker(settings: Settings) -> BrokerPaths | None:
    """The files of the local broker the settings point at: the plaintext one or the secure
    one (`broker up --secure`); None for another cluster."""
    try:
        port = int(settings.bootstrap_servers.split(",")[0].rsplit(":", 1)[1])
    except (ValueError, IndexError):
        return None
    for secure in (False, True):
        paths = broker_paths(settings, port, secure=secure)
        if paths.pid_file.exists():
            return paths
    return None


def broker_pid(settings: Settings) -> int | None:
    """The local broker's process (None for another cluster)."""
    paths = _local_broker(settings)
    try:
        return int(paths.pid_file.read_text().strip()) if paths is not None else None
    except (OSError, ValueError):
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


# -- the stream worker's own account of its time (streams/stages.py) --------------------------------
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(port: int) -> Samples:
    """Every sample of a process's /metrics by (name, sorted labels); {} if unreadable."""
    from prometheus_client.parser import text_string_to_metric_families

    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read().decode()  # noqa: S310
    except OSError:
        return {}
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def added(first: Samples, last: Samples) -> Samples:
    """What the counters and histograms added between two scrapes (summed over processes
    whose scrapes were merged with :func:`merge`)."""
    return {key: value - first.get(key, 0.0) for key, value in last.items()}


def merge(*scrapes: Samples) -> Samples:
    """Several processes' samples added up (worker processes of one group)."""
    summed: Samples = {}
    for samples in scrapes:
        for key, value in samples.items():
            summed[key] = summed.get(key, 0.0) + value
    return summed


def total(delta: Samples, name: str, **labels: str) -> float:
    """The sum of a series over the labels not given (e.g. over the processes of a group)."""
    want = set(labels.items())
    return sum(value for (sample, sample_labels), value in delta.items()
               if sample == name and want <= set(sample_labels))


def _buckets(delta: Samples, name: str, **labels: str) -> list[tuple[float, float]]:
    want = set(labels.items())
    rows: dict[float, float] = {}
    for (sample, sample_labels), value in delta.items():
        if sample != f"{name}_bucket":
            continue
        rest = dict(sample_labels)
        bound = float(rest.pop("le"))
        if want <= set(rest.items()):
            rows[bound] = rows.get(bound, 0.0) + value
    return sorted(rows.items())


def quantile_bound(delta: Samples, name: str, q: float, **labels: str) -> float:
    """The upper bound of the histogram bucket holding quantile ``q`` (NaN: no observations)."""
    rows = _buckets(delta, name, **labels)
    if not rows or rows[-1][1] <= 0:
        return float("nan")
    for bound, count in rows:
        if count >= q * rows[-1][1]:
            return bound
    return float("inf")


def over(delta: Samples, name: str, bound: float, **labels: str) -> float:
    """Observations above ``bound`` (a bucket bound) in a histogram's delta."""
    rows = _buckets(delta, name, **labels)
    if not rows:
        return 0.0
    below = max((count for le, count in rows if le <= bound), default=0.0)
    return rows[-1][1] - below


STAGES = ("fetch", "decode", "helper_wait", "features", "model", "join", "produce", "checkpoint", "commit")
_STAGE_NOTES = {"fetch": "waiting for records (idle when keeping up)", "helper_wait": "waiting for the frame helper",
                "commit": "Faust's commits: producer flush + commit, in their own task"}


def stage_report(delta: Samples, wall_s: float, frames: float, indent: str = "  ") -> str:
    """The worker's per-stage breakdown over an interval (streams/stages.py): wall time as a
    share of the interval, the main thread's CPU per 1000 frames, and how many batches took long."""
    seconds = "crowdsound_stream_stage_seconds_total"
    cpu_seconds_ = "crowdsound_stream_stage_cpu_seconds_total"
    batch = "crowdsound_stream_stage_batch_seconds"
    lines = [f"{indent}{'stage':<12}{'wall %':>8}{'CPU ms/1000 frames':>20}{'batches':>9}{'>100 ms':>9}"
             f"{'>1 s':>6}{'p99 batch':>12}"]
    busy = cpu_busy = 0.0
    per_1000 = 1_000_000 / max(frames, 1)
    for stage in STAGES:
        wall = total(delta, seconds, stage=stage)
        cpu = total(delta, cpu_seconds_, stage=stage)
        count = total(delta, f"{batch}_count", stage=stage)
        if stage not in ("fetch", "helper_wait", "commit"):
            busy += wall
            cpu_busy += cpu
        p99 = quantile_bound(delta, batch, 0.99, stage=stage)
        lines.append(f"{indent}{stage:<12}{100 * wall / wall_s:>7.1f}%"
                     f"{cpu * per_1000:>20.0f}"
                     f"{count:>9.0f}{over(delta, batch, 0.1, stage=stage):>9.0f}{over(delta, batch, 1.0, stage=stage):>6.0f}"
                     f"{'<= %g s' % p99 if p99 == p99 else '-':>12}"
                     + (f"   ({_STAGE_NOTES[stage]})" if stage in _STAGE_NOTES else ""))
    lines.append(f"{indent}the worker's loop was busy (decode .. checkpoint) {100 * busy / wall_s:.0f} % of the time, "
                 f"using {cpu_busy * per_1000:.0f} ms of CPU per 1000 frames")
    wait = "crowdsound_stream_record_wait_seconds"
    loop = "crowdsound_stream_loop_delay_seconds"
    lines.append(f"{indent}record wait (Kafka timestamp -> agent): p50 <= {quantile_bound(delta, wait, 0.5):g} s, "
                 f"p99 <= {quantile_bound(delta, wait, 0.99):g} s, over 1 s: {over(delta, wait, 1.0):.0f}; "
                 f"event loop late by > 100 ms: {over(delta, loop, 0.1):.0f} times, > 1 s: {over(delta, loop, 1.0):.0f}, "
                 f"p99 <= {quantile_bound(delta, loop, 0.99):g} s")
    return "\n".join(lines)
