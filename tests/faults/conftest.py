"""Fixtures of the fault suite: a pipeline of real processes per test, and a short scripted match."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from infra.settings import Settings
from tests.faults.pipeline import GRACE_MS, Pipeline

# A short first half with what the music reacts to: a chant, a home goal, a red card. The join's
# grace (GRACE_MS) covers the longest broker outage of the suite (a SIGKILL, 10 s down, ~15 s
# to start again): events delayed by an outage stay in grace, so the final windows cannot
# depend on it.
SCRIPT = """
[match]
id = "{match}"
home = "Home FC"
away = "Away FC"
seed = {seed}
home_share = 0.8
feed_delay = "0:03"
[periods]
pre_match = "0:05"
first_half = "{minutes}:{seconds:02d}"
[[moments]]
at = "0:06"
kind = "chant"
side = "home"
tempo = 120
duration = "0:10"
[[moments]]
at = "0:20"
kind = "goal"
side = "home"
[[moments]]
at = "0:33"
kind = "card"
side = "home"
outcome = "red"
"""


def match_script(folder: Path, match_id: str, *, seconds: int = 50, seed: int = 7) -> Path:
    """A match script of ``seconds`` (at least 36) of first half; returns its path."""
    path = folder / f"{match_id}.toml"
    path.write_text(SCRIPT.format(match=match_id, seed=seed, minutes=seconds // 60, seconds=seconds % 60))
    return path


def feed_file(script: Path, folder: Path) -> Path:
    """The script's match events as a JSON Lines feed (what a data provider would send)."""
    from producers.stadium import load_script, script_events

    path = folder / f"{script.stem}.jsonl"
    lines = [json.dumps({"type": e["type"], "side": e["side"].lower(), "clock": e["clock"], "event_id": e["event_id"],
                         "player": e["player"], "outcome": e["outcome"]})
             for e in script_events(load_script(script)) if e["clock"]["period"] != "PRE_MATCH"]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def pipeline(topics: Settings, tmp_path: Path) -> Iterator[Pipeline]:
    processes = Pipeline(topics, tmp_path, CROWDSOUND_GRACE_MS=str(GRACE_MS))
    try:
        yield processes
    finally:
        processes.stop()


# CI (.ci/run) fails unless this line says the fault suite ran with nothing skipped: a fault
# test that quietly skips (an external broker it must not kill) proves nothing.
_outcomes: Counter[str] = Counter()


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.nodeid.startswith("tests/faults/") and (report.when == "call" or report.outcome != "passed"):
        reason = str(report.longrepr[-1]) if report.skipped and isinstance(report.longrepr, tuple) else ""
        # Mounting a tmpfs needs privileges a CI container may lack; the file-size limit variant
        # of the disk-full test makes the same promise without them.
        _outcomes["no tmpfs" if "tmpfs" in reason else report.outcome] += 1


def pytest_terminal_summary(terminalreporter) -> None:
    if _outcomes:
        terminalreporter.write_line(f"fault suite: {_outcomes['passed']} passed, {_outcomes['failed']} failed, "
                                    f"{_outcomes['skipped']} skipped, {_outcomes['no tmpfs']} without a tmpfs")

