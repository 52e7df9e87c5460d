"""What the fault tests share: crowdsound processes run like an orchestrator runs them, and the
measurements a fault is judged by (frames lost, duplicate windows, bars, audio gaps, RSS).

Every process is a real ``crowdsound`` subprocess against the session's real broker. A
*supervised* process that exits is started again, as Kubernetes would, and the restart is
counted: a fault test asserts how many there were (usually none).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from consumers.score import MatchScore
from infra.settings import Settings
from schemas.codec import decode
from tests.conftest import REPO
from tests.kafka_helpers import cli_env

__all__ = ["FIGURES", "Pipeline", "as_read", "audio_gaps", "bars_of", "consumer_lag", "final_windows", "groups",
           "first_difference", "iso_time", "music_reference", "read_all", "record_figures", "records_of", "reference_windows",
           "rss_mib", "slope", "wait_until_caught_up", "windows_of"]

GRACE_MS = 60_000  # the join's grace in the fault suite: longer than its longest broker outage
# Figures measured by the fault tests, one JSON object per line (tests/faults/README.md quotes them).
FIGURES = Path(os.environ.get("CROWDSOUND_FAULT_FIGURES", REPO / ".crowdsound" / "fault-figures.jsonl"))
# Strip what differs between two runs of the same inputs: when the records were made.
WALL_FIELDS = ("wall_time_ms", "audio_wall_time_ms")


def record_figures(test: str, **figures: Any) -> None:
    """Keep a test's measured figures (and print them: ``pytest -s`` shows them)."""
    line = json.dumps({"test": test, "at": time.strftime("%Y-%m-%dT%H:%M:%S"), **figures}, sort_keys=True)
    print(line)
    FIGURES.parent.mkdir(parents=True, exist_ok=True)
    with open(FIGURES, "a") as out:
        out.write(line + "\n")


@dataclass
class Process:
    """One crowdsound process of the pipeline."""

    name: str
    args: tuple[str, ...]
    env: dict[str, str]
    log_path: Path
    supervised: bool
    stdin: int | None = None
    nice: int = 0  # lower priority: it takes only the CPU the others leave
    popen: subprocess.Popen | None = None
    restarts: int = 0
    exits: list[int] = field(default_factory=list)  # exit statuses seen (signals negative)
    _log: IO[str] | None = None

    def start(self) -> None:
        self._log = open(self.log_path, "a")  # noqa: SIM115 - closed in stop()
        self._log.write(f"--- start {' '.join(self.args)}\n")
        self._log.flush()
        nice = self.nice
        self.popen = subprocess.Popen([sys.executable, "-m", "infra.cli", *self.args], cwd=REPO, env=self.env,
                                      stdout=self._log, stderr=subprocess.STDOUT, stdin=self.stdin,
                                      start_new_session=True, preexec_fn=(lambda: os.nice(nice)) if nice else None)

    @property
    def pid(self) -> int | None:
        return self.popen.pid if self.popen is not None else None

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def signal(self, sig: int) -> None:
        if self.alive():
            os.killpg(self.popen.pid, sig)

    def stop(self, timeout_s: float = 60.0) -> int | None:
        """SIGTERM (SIGKILL after ``timeout_s``); returns the exit status."""
        if self.popen is None:
            return None
        if self.alive():
            self.signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.signal(signal.SIGKILL)
                self.popen.wait(timeout=30)
        if self._log is not None:
            self._log.close()
        return self.popen.returncode

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


class Pipeline:
    """The processes of one fault test, with a supervisor restarting those that exit."""

    def __init__(self, settings: Settings, folder: Path, **env: str) -> None:
        self.settings = settings
        self.folder = folder
        self.env = cli_env(settings, CROWDSOUND_LOG_LEVEL="INFO", **env)
        self.processes: dict[str, Process] = {}
        self._stop = threading.Event()
        self._supervisor = threading.Thread(target=self._supervise, name="supervisor", daemon=True)
        self._supervisor.start()

    def start(self, name: str, *args: str, supervised: bool = True, stdin: int | None = None, nice: int = 0,
              **env: str) -> Process:
        process = Process(name, args, {**self.env, **env}, self.folder / f"{name}.log", supervised, stdin, nice)
        process.start()
        self.processes[name] = process
        return process

    def kill(self, name: str) -> None:
        """SIGKILL a process: no chance to flush or commit (the supervisor starts it again)."""
        self.processes[name].signal(signal.SIGKILL)

    def restarts(self) -> dict[str, int]:
        return {name: p.restarts for name, p in self.processes.items()}

    def crashes(self) -> dict[str, list[int]]:
        """Exits the test did not cause, by process (a SIGKILL it sent shows as -9)."""
        return {name: [code for code in p.exits if code != -signal.SIGKILL] for name, p in self.processes.items()
                if any(code != -signal.SIGKILL for code in p.exits)}

    def wait(self, name: str, timeout_s: float) -> int:
        """Wait for a process that ends by itself (an encoder, a feed); its exit status."""
        process = self.processes[name]
        assert process.popen is not None
        return process.popen.wait(timeout=timeout_s)

    def stop(self) -> None:
        self._stop.set()
        self._supervisor.join(5)
        for process in self.processes.values():
            process.stop()

    def _supervise(self) -> None:
        while not self._stop.wait(0.5):
            for process in list(self.processes.values()):
                if process.supervised and process.popen is not None and process.popen.poll() is not None:
                    process.exits.append(process.popen.returncode)
                    process.restarts += 1
                    process.start()


def rss_mib(pid: int | None) -> float:
    """Resident memory of a process and its children (the worker's frame helper), MiB."""
    if pid is None:
        return float("nan")
    total = 0.0
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1]) / 1024
        for task in Path(f"/proc/{pid}/task").glob("*/children"):
            for child in task.read_text().split():
                total += rss_mib(int(child))
    except OSError:
        return float("nan")
    return total


def slope(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of (x, y) points."""
    n = len(points)
    if n < 2:
        return 0.0
    mean_x = sum(x for x, _ in points) / n
    mean_y = sum(y for _, y in points) / n
    spread = sum((x - mean_x) ** 2 for x, _ in points)
    return sum((x - mean_x) * (y - mean_y) for x, y in points) / spread if spread else 0.0


# -- how far behind the consumers are ---------------------------------------------------------

def groups(settings: Settings, *composer_outputs: str) -> dict[str, tuple[str, list[str]]]:
    """The consumer groups of the worker and of composers (by their --outputs), with their topics."""
    prefix = settings.topic_prefix
    found = {"worker": (f"{prefix}crowdsound-streams", [settings.topic("crowd.audio.v1"),
                                                        settings.topic("match.events.v1")])}
    for outputs in composer_outputs or ("audio,control",):
        suffix = "-".join(sorted(outputs.split(",")))
        found[f"composer-{suffix}"] = (f"{prefix}crowdsound-composer-{suffix}", [settings.topic("crowd.emotions.v1")])
    return found


def consumer_lag(settings: Settings, group: str, topics: list[str]) -> int:
    """Records of ``topics`` not yet committed by ``group`` (its whole backlog)."""
    from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition

    from infra.clients import make_admin, make_consumer

    admin, reader = make_admin(settings), make_consumer(settings, group_id=f"lag-{group}")
    try:
        partitions = [TopicPartition(t, p) for t in topics for p in range(settings.partitions)]
        request = [ConsumerGroupTopicPartitions(group, partitions)]
        committed = admin.list_consumer_group_offsets(request)[group].result(10)
        total = 0
        for tp in committed.topic_partitions:
            _, high = reader.get_watermark_offsets(TopicPartition(tp.topic, tp.partition), timeout=10, cached=False)
            total += high - max(0, tp.offset)
        return total
    finally:
        reader.close()


def wait_until_caught_up(settings: Settings, wanted: dict[str, tuple[str, list[str]]], *, timeout_s: float) -> bool:
    """Until every group has committed everything on its topics (True), or ``timeout_s`` passed."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if all(consumer_lag(settings, group, topics) == 0 for group, topics in wanted.values()):
                return True
        except Exception:  # noqa: BLE001, S110 - a group rebalancing answers nothing useful for a moment
            pass
        time.sleep(2)
    return False


# -- what the topics hold -----------------------------------------------------------------------

def read_all(settings: Settings, name: str) -> list:
    """Every record of the catalogue topic ``name`` up to its end now (committed records only):
    what a test judges once the pipeline has caught up, read without guessing a count."""
    from confluent_kafka import OFFSET_BEGINNING

    from infra.clients import make_consumer
    from infra.reading import read_to_end

    topic = settings.topic(name)
    consumer = make_consumer(settings, group_id=f"fault-reader-{time.monotonic_ns()}")
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        return list(read_to_end(consumer, topic, dict.fromkeys(partitions, OFFSET_BEGINNING), batch=5000))
    finally:
        consumer.close()


def iso_time(ms: int) -> str:
    """``ms`` since the epoch as the CLIs' --kickoff takes it (UTC, milliseconds)."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms / 1000)) + f".{ms % 1000:03d}Z"


def records_of(messages: list, record_type: str, match_id: str) -> list[dict]:
    """The ``record_type`` records of one match among ``messages`` (keyed to it), skipping the
    poison a test put there itself."""
    out = []
    for message in messages:
        try:
            record = decode(message.value(), expect=record_type)
        except Exception:  # noqa: BLE001, S112 - not a record of this type: poison
            continue
        if record["match_id"] == match_id and message.key() == match_id.encode():
            out.append(record)
    return out


def as_read(record_type: str, record: dict) -> dict:
    """``record`` as a consumer reads it back (Avro floats are float32)."""
    from schemas.codec import encode

    return decode(encode(record_type, record), expect=record_type)  # type: ignore[arg-type]


def windows_of(settings: Settings, match_ids: set[str]) -> list[dict]:
    """Every emotion window record of the matches, in offset order (duplicates included)."""
    messages = read_all(settings, "crowd.emotions.v1")
    records = []
    for message in messages:
        try:
            window = decode(message.value(), expect="EmotionWindow")
        except Exception:  # noqa: BLE001 - poison the test put there itself
            continue
        if window["match_id"] in match_ids and message.key() == window["match_id"].encode():
            records.append(window)
    return records


def reference_windows(settings: Settings, match_id: str, frames: list[dict], events: list[dict]) -> dict:
    """The final windows one undisturbed pass over ``frames`` and ``events`` gives (replay's
    recomputation, with the suite's grace), as a consumer reads them."""
    from consumers.replay.emotions import recompute_windows

    computed = recompute_windows(settings.with_overrides(grace_ms=GRACE_MS), match_id, frames, events,
                                 late_event_ids=set())
    return final_windows([as_read("EmotionWindow", w) for w in computed])[0]


def final_windows(records: list[dict]) -> tuple[dict, int]:
    """The highest revision of each (match, clock) — content only — and how many records
    repeated a (match, clock, revision) already seen."""
    best: dict = {}
    seen = Counter((w["match_id"], w["clock"]["period"], w["clock"]["ms"], w["revision"]) for w in records)
    for window in records:
        key = (window["match_id"], window["clock"]["period"], window["clock"]["ms"])
        if key not in best or window["revision"] > best[key]["revision"]:
            best[key] = window
    content = {key: {f: v for f, v in w.items() if f not in (*WALL_FIELDS, "revision")} for key, w in best.items()}
    return content, sum(count - 1 for count in seen.values())


def bars_of(settings: Settings, match_id: str) -> list[dict]:
    """The match's music.control.v1 records, in offset order."""
    messages = read_all(settings, "music.control.v1")
    return [r for r in (decode(m.value(), expect="MusicControl") for m in messages) if r["match_id"] == match_id]


def music_reference(match_id: str, windows: list[dict], *, hop_ms: int = 1000) -> list[dict]:
    """The control messages one undisturbed composer makes from ``windows`` (in the order it reads them)."""
    score = MatchScore(match_id, hop_ms=hop_ms)
    return [as_read("MusicControl", o.record) for w in windows for o in score.on_window(w) if o.kind == "control"]


def without_wall(records: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in WALL_FIELDS} for r in records]


def window_differences(windows: dict, reference: dict, records: list[dict]) -> str:
    """Which final windows differ from the reference and how (fields live vs reference), with every
    revision the live stream emitted of them, for an assertion message."""
    lines = []
    for key in sorted(set(windows) | set(reference), key=str):
        got, wanted = windows.get(key), reference.get(key)
        if got == wanted:
            continue
        if got is None or wanted is None:
            lines.append(f"{key}: {'missing' if got is None else 'not in the reference'}")
            continue
        fields = {k: (got.get(k), wanted.get(k)) for k in _differing_fields(got, wanted)}
        emitted = [(w["revision"], w["arousal"], w["state"], len(w["events"])) for w in records
                   if (w["match_id"], w["clock"]["period"], w["clock"]["ms"]) == key]
        lines.append(f"{key}: {fields}; emitted (revision, arousal, state, events): {emitted}")
    return f"{len(lines)} of {len(reference)} windows differ:\n" + "\n".join(lines)


def _differing_fields(a: dict, b: dict) -> list[str]:
    return sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))


def first_difference(got: list[dict], expected: list[dict]) -> str:
    """Where two record lists first differ, for an assertion message."""
    for index, (a, b) in enumerate(zip(got, expected)):
        if a != b:
            fields = _differing_fields(a, b)
            return f"record {index}: {[(k, a.get(k), b.get(k)) for k in fields][:4]}"
    return f"lengths {len(got)} and {len(expected)}"


def audio_gaps(settings: Settings, match_id: str) -> tuple[int, int, int]:
    """(chunks, missing samples between consecutive chunks, samples played twice) of the match's music audio."""
    messages = read_all(settings, "music.audio.v1")
    chunks = [c for c in (decode(m.value(), expect="AudioChunk") for m in messages) if c["match_id"] == match_id]
    missing = repeated = 0
    for before, after in zip(chunks, chunks[1:]):
        end = before["first_sample"] + before["samples_per_channel"]
        missing += max(0, after["first_sample"] - end)
        repeated += max(0, end - after["first_sample"])
    return len(chunks), missing, repeated
