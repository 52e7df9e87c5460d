"""The match feed: JSON Lines, manual entry, pacing, dead letters for malformed lines."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from infra.errors import CrowdsoundError
from producers.feed import event_timeline, parse_jsonl_line
from producers.follow import apply_period_event
from schemas.clock import MatchClock, Period, parse_clock
from schemas.codec import decode
from schemas.timeline import MatchTimeline
from tests.conftest import run_cli
from tests.kafka_helpers import read_topic

FEED = [
    {"type": "kickoff"},
    {"type": "shot", "side": "away", "team": "Chelsea", "outcome": "post", "at": "12:40"},
    {"type": "goal", "team": "home", "player": "Saka", "at": "23:10"},
    {"type": "card", "side": "away", "outcome": "yellow", "at": "45+1:30"},
    {"type": "period_end", "clock": {"period": "FIRST_HALF", "ms": 2_820_000}},
    {"type": "PERIOD_START", "clock": {"period": "SECOND_HALF", "ms": 0}},
    {"type": "goal", "side": "away", "outcome": "own_goal", "at": "67:05"},
]


def test_a_line_becomes_a_match_event():
    event = parse_jsonl_line(json.dumps(FEED[2]), match_id="m1")
    assert event["type"] == "GOAL" and event["side"] == "HOME" and event["team"] is None
    assert event["clock"] == {"period": "FIRST_HALF", "ms": 1_390_000}
    assert event["event_id"] == parse_jsonl_line(json.dumps(FEED[2]), match_id="m1")["event_id"]  # stable ids


@pytest.mark.parametrize(("line", "reason"), [
    ("{not json", "not JSON"),
    ("[1, 2]", "not a JSON object"),
    ('{"type": "touchdown", "at": "1:00"}', "unknown event type"),
    ('{"type": "goal"}', "no 'at' or 'clock'"),
    ('{"type": "goal", "at": "99:99"}', "bad match time"),
    ('{"type": "goal", "at": "1:00", "minute": 1}', "unknown fields"),
    ('{"type": "goal", "at": "1:00", "match_id": "other"}', "not the feed's match"),
])
def test_malformed_lines_say_what_is_wrong(line, reason):
    with pytest.raises(CrowdsoundError, match=reason):
        parse_jsonl_line(line, match_id="m1")


def test_the_feed_timeline_puts_the_second_half_after_the_first_plus_half_time():
    events = [parse_jsonl_line(json.dumps(line), match_id="m1") for line in FEED]
    timeline = event_timeline(events, kickoff_ms=1_000_000)
    assert timeline.instant_of(parse_clock("23:10")) == 1_000_000 + 1_390_000
    second_half = 1_000_000 + 2_820_000 + 15 * 60_000
    assert timeline.instant_of(MatchClock(Period.SECOND_HALF, 0)) == second_half
    assert timeline.clock_at(1_000_000 + 2_820_000 + 60_000) == MatchClock(Period.HALF_TIME, 60_000)


def test_period_events_move_the_encoders_clock():
    timeline = MatchTimeline(origin_ms=0)
    kickoff = {"type": "PERIOD_START", "clock": {"period": "FIRST_HALF", "ms": 2_000}, "wall_time_ms": 10_000}
    assert apply_period_event(timeline, kickoff)
    assert timeline.clock_at(9_000) == MatchClock(Period.FIRST_HALF, 1_000)  # reported 2 s late, placed right
    end = {"type": "PERIOD_END", "clock": {"period": "FIRST_HALF", "ms": 2_800_000}, "wall_time_ms": 2_808_000}
    assert apply_period_event(timeline, end)
    assert timeline.clock_at(2_818_000) == MatchClock(Period.HALF_TIME, 10_000)
    assert not apply_period_event(timeline, kickoff)  # repeats change nothing


@pytest.mark.kafka
def test_good_lines_are_sent_in_match_order_and_bad_lines_are_dead_lettered(topics, tmp_path):
    feed = tmp_path / "feed.jsonl"
    lines = [json.dumps(line) for line in FEED]
    lines.insert(3, '{"type": "goal", "at": "nope"}')
    lines.insert(1, "{broken")
    feed.write_text("\n".join(lines) + "\n\n")
    result = run_cli("feed", "--match", "m-feed", "--source", str(feed), "--fast", settings=topics)
    assert result.returncode == 0, result.stderr
    assert "sent 7 events; 2 bad lines dead-lettered" in result.stdout

    events = [decode(m.value(), expect="MatchEvent") for m in read_topic(topics, topics.topic("match.events.v1"), expected=7)]
    assert [e["type"] for e in events] == ["PERIOD_START", "SHOT", "GOAL", "CARD", "PERIOD_END", "PERIOD_START", "GOAL"]
    assert all(e["match_id"] == "m-feed" for e in events)
    walls = [e["wall_time_ms"] for e in events]
    assert walls == sorted(walls) and walls[-1] <= time.time() * 1000 + 1000
    assert walls[2] - walls[0] == 1_390_000  # wall times follow the match clock
    own_goal = events[-1]
    assert own_goal["side"] == "AWAY" and own_goal["outcome"] == "own_goal"

    letters = [decode(m.value(), expect="DeadLetter") for m in read_topic(topics, topics.topic("match.events.dlq.v1"), expected=2)]
    assert sorted(letter["original_value"] for letter in letters) == sorted([b"{broken", b'{"type": "goal", "at": "nope"}'])
    assert any("line 2: not JSON" in letter["reason"] for letter in letters)
    assert all(letter["source"].startswith(str(feed)) and letter["match_id"] == "m-feed" for letter in letters)


@pytest.mark.kafka
def test_live_pacing_honours_the_feed_delay(topics, tmp_path):
    feed = tmp_path / "feed.jsonl"
    feed.write_text('{"type": "kickoff"}\n{"type": "goal", "side": "home", "at": "0:01"}\n')
    started = time.time()
    result = run_cli("feed", "--match", "m-live", "--source", str(feed), "--kickoff", "now", "--delay", "1.5",
                     settings=topics)
    elapsed = time.time() - started
    assert result.returncode == 0, result.stderr
    assert elapsed >= 2.5  # the goal at 0:01 plus a 1.5 s feed delay
    assert "GOAL" in result.stdout


@pytest.mark.kafka
def test_manual_entry_of_a_goal(topics):
    result = run_cli("event", "--match", "m-manual", "goal", "--team", "home", "--at", "23:10", "--player", "Saka",
                     settings=topics)
    assert result.returncode == 0, result.stderr
    [message] = read_topic(topics, topics.topic("match.events.v1"), expected=1)
    event = decode(message.value(), expect="MatchEvent")
    assert (event["type"], event["side"], event["player"]) == ("GOAL", "HOME", "Saka")
    assert event["clock"] == {"period": "FIRST_HALF", "ms": 1_390_000}
    assert abs(event["wall_time_ms"] - time.time() * 1000) < 30_000


@pytest.mark.parametrize(("args", "message"), [
    (("event", "--match", "m", "touchdown", "--at", "1:00"), "unknown event type"),
    (("event", "--match", "m", "goal", "--at", "later"), "bad match time"),
    (("feed", "--match", "m", "--source", "/nonexistent.jsonl", "--fast"), "cannot read"),
    (("feed", "--match", "m", "--source", "x.json", "--provider", "nosuchprovider", "--fast"), "nosuchprovider"),
])
def test_bad_feed_input_is_a_one_line_error(args, message):
    result = run_cli(*args, env={"KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1"})
    assert result.returncode == 1, result.stdout
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1


@pytest.mark.kafka
def test_a_statsbomb_match_arrives_with_its_goals_at_the_right_times_and_sides(topics):
    fixtures = Path(__file__).parent / "fixtures" / "providers"
    raw = json.loads((fixtures / "statsbomb_3788741_events.json").read_text())
    # Independent reading of the raw file: shots that scored, and own goals (credited to the opponent).
    home = raw[0]["team"]["name"]
    expected = sorted(
        [(e["period"], e["minute"] * 60 + e["second"], "HOME" if e["team"]["name"] == home else "AWAY")
         for e in raw if e["type"]["name"] == "Shot" and e["shot"]["outcome"]["name"] == "Goal"]
        + [(e["period"], e["minute"] * 60 + e["second"], "AWAY" if e["team"]["name"] == home else "HOME")
           for e in raw if e["type"]["name"] == "Own Goal Against"]
    )
    assert len(expected) >= 2
    result = run_cli("feed", "--match", "m-sb", "--provider", "statsbomb", "--fast", "--quiet",
                     "--source", str(fixtures / "statsbomb_3788741_events.json"),
                     "--source", str(fixtures / "statsbomb_3788741_lineup.json"), settings=topics)
    assert result.returncode == 0, result.stderr
    sent = int(result.stdout.split("sent ")[1].split()[0])
    events = [decode(m.value(), expect="MatchEvent")
              for m in read_topic(topics, topics.topic("match.events.v1"), expected=sent)]
    assert len(events) == sent
    goals = [e for e in events if e["type"] == "GOAL"]
    period_number = {"FIRST_HALF": 1, "SECOND_HALF": 2}
    # StatsBomb's minute counts from kick-off; the second half starts at minute 45.
    got = sorted((period_number[g["clock"]["period"]],
                  g["clock"]["ms"] // 1000 + (45 * 60 if g["clock"]["period"] == "SECOND_HALF" else 0), g["side"])
                 for g in goals)
    assert [(p, s) for p, _, s in got] == [(p, s) for p, _, s in expected]
    assert all(abs(a[1] - b[1]) <= 1 for a, b in zip(got, expected, strict=True))
    assert all(e["source"] == "statsbomb" for e in events)


@pytest.mark.kafka
def test_a_broker_outage_longer_than_the_delivery_timeout_loses_no_event(kafka, topics, tmp_path):
    """Events wait in the feed's spool while the broker is away, however long that is."""
    if not kafka.owned:
        pytest.skip("the tests use an external cluster they must not restart")
    import subprocess
    import sys

    from infra.broker import broker_down, broker_up
    from tests.conftest import REPO
    from tests.kafka_helpers import cli_env

    feed = tmp_path / "feed.jsonl"
    feed.write_text("".join(json.dumps({"type": "shot", "side": "home", "at": f"0:{s:02d}"}) + "\n" for s in range(1, 13)))
    env = cli_env(topics, KAFKA_CLIENT_MESSAGE_TIMEOUT_MS="2000")  # librdkafka would give up on an event after 2 s
    feeder = subprocess.Popen(  # one event a second, paced like the live match
        [sys.executable, "-m", "infra.cli", "feed", "--match", "m-outage", "--source", str(feed), "--kickoff", "now",
         "--spool-dir", str(tmp_path / "spool"), "--drain-timeout", "90", "--quiet"],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    time.sleep(3)
    broker_down(kafka.settings)
    time.sleep(5)  # longer than the delivery timeout: events keep coming and wait in the spool
    broker_up(kafka.settings)
    out, err = feeder.communicate(timeout=150)
    assert feeder.returncode == 0, err
    events = [decode(m.value(), expect="MatchEvent")
              for m in read_topic(topics, topics.topic("match.events.v1"), expected=12, timeout_s=60)]
    assert [e["clock"]["ms"] for e in events] == [s * 1000 for s in range(1, 13)]  # none lost, none twice, in order


@pytest.mark.kafka
def test_events_the_broker_never_took_stay_in_the_spool_and_the_next_run_sends_them(topics, tmp_path):
    feed = tmp_path / "feed.jsonl"
    feed.write_text("\n".join(json.dumps(line) for line in FEED) + "\n")
    spool = tmp_path / "spool"
    offline = run_cli("feed", "--match", "m-spool", "--source", str(feed), "--fast", "--spool-dir", str(spool),
                      "--drain-timeout", "2", env={"KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1",
                                                   "CROWDSOUND_TOPIC_PREFIX": topics.topic_prefix})
    assert offline.returncode == 1
    assert "7 events were not acknowledged" in offline.stderr and str(spool) in offline.stderr
    assert "Traceback" not in offline.stderr

    empty = tmp_path / "nothing.jsonl"
    empty.write_text("\n")
    online = run_cli("feed", "--match", "m-spool", "--source", str(empty), "--fast", "--spool-dir", str(spool),
                     settings=topics)
    assert online.returncode == 0, online.stderr
    events = [decode(m.value(), expect="MatchEvent") for m in read_topic(topics, topics.topic("match.events.v1"), expected=7)]
    assert [e["type"] for e in events] == ["PERIOD_START", "SHOT", "GOAL", "CARD", "PERIOD_END", "PERIOD_START", "GOAL"]
