"""Stream workers and composers SIGKILLed at random points, also while a second instance joins
or leaves: the same final windows and the same music as without a single kill.

A seeded schedule kills the worker, kills it again while a second worker joins (a rebalance
in progress), kills the composer, kills it while a second composer joins, and then lets the
second worker leave cleanly and the second composer die. Killed processes are started again
as an orchestrator would. Promised: every window's final revision is what one undisturbed
pass gives (a kill may repeat an emission, never lose or change one), and the composers'
music is bar for bar what one undisturbed composer makes from the same emotion stream, its
audio without a hole or a repeat. ``CROWDSOUND_FAULT_SEEDS=1,2,3`` runs more schedules.
"""

from __future__ import annotations

import os
import random
import signal
import time

import pytest

from schemas.codec import decode
from tests.faults.conftest import match_script
from tests.faults.pipeline import (
    audio_gaps,
    bars_of,
    final_windows,
    first_difference,
    groups,
    music_reference,
    read_all,
    record_figures,
    reference_windows,
    wait_until_caught_up,
    window_differences,
    windows_of,
    without_wall,
)

pytestmark = [pytest.mark.kafka, pytest.mark.faults]

SEEDS = [int(s) for s in os.environ.get("CROWDSOUND_FAULT_SEEDS", "11").split(",")]
SECONDS = 55


def _schedule(seed: int) -> list[tuple[float, str]]:
    """(seconds after the match starts, action), seeded."""
    rng = random.Random(seed)
    worker_rejoin = rng.uniform(14, 18)
    composer_rejoin = rng.uniform(30, 34)
    return sorted([
        (rng.uniform(5, 10), "kill worker"),
        (worker_rejoin, "start worker-2"),
        (worker_rejoin + rng.uniform(0.2, 2.0), "kill worker"),  # while worker-2 joins
        (rng.uniform(22, 27), "kill composer"),
        (composer_rejoin, "start composer-2"),
        (composer_rejoin + rng.uniform(0.2, 2.0), "kill composer"),  # while composer-2 joins
        (rng.uniform(40, 44), "stop worker-2"),
        (rng.uniform(45, 50), "kill composer-2"),
    ])


@pytest.mark.parametrize("seed", SEEDS)
def test_killed_workers_and_composers_change_no_window_and_no_bar(seed, topics, pipeline, tmp_path):
    settings = topics
    match_id = f"m-kills-{seed}"
    script = match_script(tmp_path, match_id, seconds=SECONDS, seed=seed)
    pipeline.start("worker", "worker")
    pipeline.start("composer", "composer", "--instance", "c1")
    time.sleep(8)
    pipeline.start("stadium", "stadium", "--script", str(script), "--spool-dir", str(tmp_path / "spool"), "--quiet",
                   supervised=False)
    started = time.monotonic()
    done = []
    for at, action in _schedule(seed):
        time.sleep(max(0.0, started + at - time.monotonic()))
        verb, name = action.split(" ", 1)
        if verb == "kill":
            pipeline.kill(name)
        elif verb == "stop":
            pipeline.processes[name].signal(signal.SIGTERM)
            pipeline.processes[name].supervised = False
        elif name.startswith("worker"):
            pipeline.start(name, "worker")
        else:
            pipeline.start(name, "composer", "--instance", name)
        if name == "composer-2" and verb == "kill":
            pipeline.processes[name].supervised = False  # it leaves for good
        done.append(f"{time.monotonic() - started:.1f}s {action}")
    assert pipeline.wait("stadium", timeout_s=180) == 0

    frames = [decode(m.value(), expect="AudioFrame") for m in read_all(settings, "crowd.audio.v1")]
    events = [decode(m.value(), expect="MatchEvent") for m in read_all(settings, "match.events.v1")]
    reference = reference_windows(settings, match_id, frames, events)
    # A SIGKILLed composer's partitions move once its group session (10 s) times out.
    caught_up = wait_until_caught_up(settings, groups(settings), timeout_s=240)
    records = windows_of(settings, {match_id})
    windows, repeats = final_windows(records)
    expected_controls = music_reference(match_id, records)
    controls = bars_of(settings, match_id)
    bars = [c["bar"] for c in controls if c["kind"] == "BAR"]
    chunks, missing, repeated = audio_gaps(settings, match_id)
    record_figures("worker and composer SIGKILLs", seed=seed, caught_up=caught_up, schedule=done, restarts=pipeline.restarts(),
                   windows=len(windows), windows_differing=sum(windows.get(k) != w for k, w in reference.items()),
                   repeated_emissions=repeats, bars=len(bars), audio_chunks=chunks, audio_gap_samples=missing,
                   audio_repeated_samples=repeated)

    assert windows == reference, window_differences(windows, reference, records)
    assert bars == list(range(len(bars))) and len(bars) > 15
    assert without_wall(controls) == without_wall(expected_controls), \
        first_difference(without_wall(controls), without_wall(expected_controls))
    assert missing == 0 and repeated == 0
    assert not pipeline.crashes(), {n: p.log()[-3000:] for n, p in pipeline.processes.items()}
