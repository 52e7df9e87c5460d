"""`crowdsound stadium` on the real broker: audio and events of one match agree on the clock."""

from __future__ import annotations

import bisect

import pytest

from producers.stadium import load_script, script_events
from schemas.codec import decode
from tests.conftest import run_cli
from tests.kafka_helpers import read_topic

pytestmark = pytest.mark.kafka

SCRIPT = """
[match]
id = "short-match"
home = "Home FC"
away = "Away FC"
seed = 3
feed_delay = "0:02"
[periods]
pre_match = "0:03"
first_half = "0:20"
half_time = "0:04"
second_half = "0:10"
[[moments]]
at = "0:08"
kind = "goal"
side = "home"
[[moments]]
at = "45:05"
kind = "card"
side = "away"
"""


def test_the_stadium_publishes_its_audio_and_events_on_one_clock(topics, tmp_path):
    script_path = tmp_path / "short.toml"
    script_path.write_text(SCRIPT)
    result = run_cli("stadium", "--script", str(script_path), "--match", "m-stadium", "--fast", "--quiet",
                     "--spool-dir", str(tmp_path / "spool"), settings=topics)
    assert result.returncode == 0, result.stderr
    expected_events = script_events(load_script(script_path))
    duration_ms = load_script(script_path).duration_ms
    frames = [decode(m.value(), expect="AudioFrame")
              for m in read_topic(topics, topics.topic("crowd.audio.v1"), expected=duration_ms // 1000)]
    events = [decode(m.value(), expect="MatchEvent")
              for m in read_topic(topics, topics.topic("match.events.v1"), expected=len(expected_events))]
    assert [f["seq"] for f in frames] == list(range(len(frames)))
    assert sum(f["samples_per_channel"] for f in frames) == duration_ms * 48  # every sample, once
    # One-second frames, cut where the clock reaches a whole second (where windows end): only a
    # period's first frame, or the one before a period change, is shorter.
    for frame, after in zip(frames, frames[1:]):
        assert frame["samples_per_channel"] <= 48_000
        same_period = after["clock"]["period"] == frame["clock"]["period"]
        assert not same_period or after["clock"]["ms"] % 1000 == 0, after
        if same_period and frame["clock"]["ms"] % 1000 == 0:
            assert frame["samples_per_channel"] == 48_000
    assert [e["type"] for e in events] == [e["type"] for e in expected_events]
    assert {e["match_id"] for e in events} == {"m-stadium"}
    goal = next(e for e in events if e["type"] == "GOAL")
    assert goal["side"] == "HOME" and goal["clock"] == {"period": "FIRST_HALF", "ms": 8000}
    # The audio frame captured when an event happened carries the same match clock.
    walls = [f["wall_time_ms"] for f in frames]
    for event in events:
        # A period's end is the first instant of the break after it: compare with the frame before.
        index = bisect.bisect_right(walls, event["wall_time_ms"] - (1 if event["type"] == "PERIOD_END" else 0)) - 1
        frame = frames[index]
        assert frame["clock"]["period"] == event["clock"]["period"], event
        assert 0 <= event["clock"]["ms"] - frame["clock"]["ms"] <= 1000
    periods = [f["clock"]["period"] for f in frames]
    assert periods[0] == "PRE_MATCH" and "HALF_TIME" in periods and periods[-1] == "SECOND_HALF"


def test_a_bad_script_is_a_one_line_error(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text(SCRIPT.replace('kind = "goal"', 'kind = "gaol"'))
    result = run_cli("stadium", "--script", str(bad), "--no-kafka", "--wav", str(tmp_path / "x.wav"))
    assert result.returncode == 1 and "gaol" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    missing = run_cli("stadium", "--script", str(tmp_path / "nope.toml"), "--no-kafka", "--wav", str(tmp_path / "x.wav"))
    assert missing.returncode == 1 and len(missing.stderr.strip().splitlines()) == 1
