"""Venue clocks that are wrong: one 6 hours fast, one 2 minutes slow, next to a match whose
venue keeps good time, all three on one partition.

Record times on the venue-fed topics are the broker's (LogAppendTime) and every venue time
the worker and the composer act on is bounded by them, so: the fast venue's match streams
(the broker does not refuse its records), and its hours do not reach the windows; neither
the worker nor the composer forgets or disturbs the other matches of the partition (each
forgets a match only after the partition heard another one hours later, here --forget-after
1 hour); every match's windows and music are what they would be alone.
"""

from __future__ import annotations

import time

import pytest

from infra.partitioning import partition_for
from producers.walltime import now_ms
from tests.faults.conftest import match_script
from tests.faults.pipeline import (
    bars_of,
    final_windows,
    groups,
    iso_time,
    music_reference,
    read_all,
    record_figures,
    records_of,
    reference_windows,
    wait_until_caught_up,
    windows_of,
    without_wall,
)

pytestmark = [pytest.mark.kafka, pytest.mark.faults]

SECONDS = 40
HOUR_MS = 3_600_000
SKEWS = {"fast": 6 * HOUR_MS, "steady": 0, "slow": -2 * 60_000}  # venue clock minus the true time


def _same_partition(partitions: int) -> dict[str, str]:
    """A match id per venue, all three on one partition."""
    target = partition_for(b"m-skew-steady", partitions)
    ids = {"steady": "m-skew-steady"}
    for name in ("fast", "slow"):
        ids[name] = next(m for m in (f"m-skew-{name}-{i}" for i in range(10_000))
                         if partition_for(m.encode(), partitions) == target)
    return ids


def test_a_venue_clock_hours_off_disturbs_no_other_match(topics, pipeline, tmp_path):
    settings = topics
    ids = _same_partition(settings.partitions)
    pipeline.start("worker", "worker", "--forget-after", "1")
    pipeline.start("composer", "composer", "--instance", "c1", "--outputs", "control", "--forget-after", "1")
    time.sleep(8)
    start = now_ms()
    for seed, (venue, skew) in enumerate(SKEWS.items(), start=21):
        script = match_script(tmp_path, ids[venue], seconds=SECONDS, seed=seed)
        kickoff = start + 5_000 + skew  # what the venue's clock says at its kick-off
        pipeline.start(venue, "stadium", "--script", str(script), "--kickoff", iso_time(kickoff), "--spool-dir",
                       str(tmp_path / f"spool-{venue}"), "--drain-timeout", "60", "--quiet", supervised=False)
    statuses = {venue: pipeline.wait(venue, timeout_s=180) for venue in SKEWS}
    wait_until_caught_up(settings, groups(settings, "control"), timeout_s=120)

    frames = read_all(settings, "crowd.audio.v1")
    events = read_all(settings, "match.events.v1")
    records = windows_of(settings, set(ids.values()))
    windows, _ = final_windows(records)
    figures, failures = {}, []
    for venue, match_id in ids.items():
        mine = [w for w in records if w["match_id"] == match_id]
        reference = reference_windows(settings, match_id, records_of(frames, "AudioFrame", match_id),
                                      records_of(events, "MatchEvent", match_id))
        expected_controls = music_reference(match_id, mine)
        controls = bars_of(settings, match_id)
        bars = [c["bar"] for c in controls if c["kind"] == "BAR"]
        ahead_ms = max((w["audio_wall_time_ms"] - now_ms() for w in mine), default=None)
        figures[venue] = {"exit": statuses[venue], "windows": len(mine), "bars": len(bars),
                          "windows_as_alone": {k: v for k, v in windows.items() if k[0] == match_id} == reference,
                          "music_as_alone": without_wall(controls) == without_wall(expected_controls),
                          "latest_audio_time_ahead_of_now_s": None if ahead_ms is None else round(ahead_ms / 1000, 1)}
        if not (statuses[venue] == 0 and figures[venue]["windows_as_alone"] and figures[venue]["music_as_alone"]
                and bars == list(range(len(bars))) and len(bars) > 10 and ahead_ms is not None and ahead_ms < 60_000):
            failures.append(venue)
    logs = {name: p.log() for name, p in pipeline.processes.items()}
    forgotten = [line for log in (logs["worker"], logs["composer"]) for line in log.splitlines() if "forgot match_id" in line]
    record_figures("clock skew", venues=figures, forgotten=forgotten, restarts=pipeline.restarts())

    assert not forgotten
    assert not failures, (figures, {venue: logs[venue][-2000:] for venue in failures})
    assert not pipeline.crashes()
