"""Replay against the real broker: goals found, broadcast levels, byte-identical reruns."""

from __future__ import annotations

import json
import time

import numpy as np
import pyloudnorm
import pytest
import soundfile
from scipy.signal import resample_poly

from infra.clients import make_producer, match_key
from schemas.codec import encode
from tests.conftest import run_cli
from tests.music_samples import Spell, emotion_windows

pytestmark = pytest.mark.kafka

MATCH = "m-replay"
HOME_GOAL_S = 23 * 60 + 10
AWAY_GOAL_S = 25 * 60 + 40


def _event(event_id: str, kind: str, side: str, second: int, wall0: int, *, team: str = "") -> dict:
    return {"match_id": MATCH, "event_id": event_id, "type": kind, "side": side, "team": team or None, "player": None,
            "outcome": None, "clock": {"period": "FIRST_HALF", "ms": second * 1000},
            "wall_time_ms": wall0 + second * 1000, "source": "manual"}


@pytest.fixture
def retained(topics):
    """A first half's worth of the match around two goals, as the live pipeline leaves it."""
    settings = topics
    # Recent record times: the topics' retention (365 days for emotions) would delete older ones.
    wall0 = int(time.time() * 1000) - 3_600_000
    spells = [
        Spell(HOME_GOAL_S - 120, HOME_GOAL_S - 15, "CALM", 0.25, 0.0),
        Spell(HOME_GOAL_S - 15, HOME_GOAL_S, "ANTICIPATION", 0.55, 0.1),
        Spell(HOME_GOAL_S, HOME_GOAL_S + 30, "CELEBRATION", 0.95, 0.85, events=[(HOME_GOAL_S, "GOAL", "HOME")]),
        Spell(HOME_GOAL_S + 30, AWAY_GOAL_S, "CALM", 0.3, 0.1),
        Spell(AWAY_GOAL_S, AWAY_GOAL_S + 30, "DISAPPOINTMENT", 0.6, -0.7, events=[(AWAY_GOAL_S, "GOAL", "AWAY")]),
        Spell(AWAY_GOAL_S + 30, AWAY_GOAL_S + 120, "CALM", 0.25, -0.1),
    ]
    windows = emotion_windows(MATCH, spells, wall_start_ms=wall0)
    events = [_event("k", "PERIOD_START", "NONE", 0, wall0),
              _event("g1", "GOAL", "HOME", HOME_GOAL_S, wall0, team="Arsenal"),
              _event("g2", "GOAL", "AWAY", AWAY_GOAL_S, wall0, team="Chelsea"),
              _event("c1", "CARD", "AWAY", AWAY_GOAL_S + 60, wall0, team="Chelsea")]
    producer = make_producer(settings)
    for event in events:
        producer.produce(settings.topic("match.events.v1"), key=match_key(MATCH), value=encode("MatchEvent", event),
                         timestamp=event["wall_time_ms"])
    for window in windows:
        producer.produce(settings.topic("crowd.emotions.v1"), key=match_key(MATCH),
                         value=encode("EmotionWindow", window), timestamp=window["wall_time_ms"])
    # Another match on the same topics must not leak into this one.
    for window in emotion_windows("m-other", [Spell(HOME_GOAL_S - 30, HOME_GOAL_S + 30, "ANGER", 0.9, -0.8)]):
        producer.produce(settings.topic("crowd.emotions.v1"), key=match_key("m-other"),
                         value=encode("EmotionWindow", window))
    producer.flush(30)
    return settings


def _files(folder) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def _true_peak_db(audio: np.ndarray) -> float:
    return 20 * np.log10(np.abs(resample_poly(audio, 4, 1, axis=0)).max())


def test_replay_finds_the_goals_writes_broadcast_files_and_repeats_byte_for_byte(retained, kafka, tmp_path):
    settings = retained
    first = tmp_path / "first"
    result = run_cli("replay", "--match", MATCH, "--out", str(first), "--auto", "3", "--json", "--quiet",
                     settings=settings, timeout=300)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    reasons = " | ".join(c["reason"] for c in summary["clips"])
    assert summary["goals"] == 2 and "goal home" in reasons and "goal away" in reasons, reasons
    home = next(c for c in summary["clips"] if "goal home" in c["reason"])
    assert "goal" in home["stingers"]

    files = _files(first)
    for clip in summary["clips"]:
        assert {f"{clip['name']}.wav", f"{clip['name']}.mid", f"{clip['name']}.json"} <= set(files)
    assert {"reel.wav", "timeline.png", "index.json", "index.md"} <= set(files)
    for name in [n for n in files if n.endswith(".wav")]:
        audio, rate = soundfile.read(first / name)
        loudness = pyloudnorm.Meter(rate).integrated_loudness(audio)
        assert -24 <= loudness <= -22, (name, loudness)
        assert _true_peak_db(audio) <= -1.0, name
    sidecar = json.loads((first / f"{home['name']}.json").read_text())
    # Foresight: a bar line and the goal stinger land on the goal (within 20 ms).
    goal_ms = HOME_GOAL_S * 1000
    stinger = next(s for s in sidecar["music"]["stingers"] if s["stinger"] == "goal")
    assert stinger["clock"] == "23:10"
    bar_clocks = [b["clock"] for b in sidecar["music"]["bars"]]
    assert "23:10" in bar_clocks, bar_clocks
    assert sidecar["teams"] == {"home": "Arsenal", "away": "Chelsea"} and sidecar["versions"]["model"] == "test"
    assert goal_ms  # (the clock labels above are whole seconds)

    # The folder passes the music supervisor's audit: pieces with pickups and released endings,
    # steady tempo, the home goal the loudest moment with its theme, the away goal no brighter,
    # stingers in the harmony, the reel's clips never overlapping.
    audit = run_cli("audit", str(first), settings=settings, timeout=120)
    assert audit.returncode == 0 and "all rules pass" in audit.stdout, audit.stdout + audit.stderr
    for rule in ("edges", "climax", "away goals", "stingers in harmony", "home theme", "reel joins"):
        assert f"PASS  {rule}" in audit.stdout, audit.stdout

    second = tmp_path / "second"
    assert run_cli("replay", "--match", MATCH, "--out", str(second), "--auto", "3", "--quiet",
                   settings=settings, timeout=300).returncode == 0
    assert _files(second) == files

    kafka.restart()  # retained data survives a broker restart
    third = tmp_path / "third"
    again = run_cli("replay", "--match", MATCH, "--out", str(third), "--range", "23:00-24:00", "--json", "--quiet",
                    settings=settings, timeout=300)
    assert again.returncode == 0, again.stderr
    assert [c["start"] for c in json.loads(again.stdout)["clips"]] == ["23:00"]


def test_replay_refuses_bad_input_in_one_line(retained, tmp_path):
    settings = retained
    for args, needle in (
        (["--match", "nobody", "--auto", "2"], "unknown match"),
        (["--match", MATCH, "--range", "80:00-81:00"], "no emotion windows"),
        (["--match", MATCH, "--range", "25:00-24:00"], "empty or inverted"),
        (["--match", MATCH, "--range", "24:00-24:00"], "empty or inverted"),
    ):
        result = run_cli("replay", *args, "--out", str(tmp_path / "x"), "--quiet", settings=settings, timeout=120)
        assert result.returncode != 0, args
        assert needle in result.stderr and "Traceback" not in result.stderr, result.stderr
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr


class _StopsDelivering:
    """The replay reader's consumer, on a broker that stops delivering after ``records`` records
    (it went down, a leader is gone): everything else is the real consumer on the real broker."""

    def __init__(self, consumer, records: int) -> None:
        self._consumer, self._left = consumer, records

    def consume(self, num_messages: int, timeout: float) -> list:
        if self._left <= 0:
            time.sleep(timeout)
            return []
        messages = self._consumer.consume(min(num_messages, self._left), timeout)
        self._left -= len(messages)
        return messages

    def __getattr__(self, name: str):
        return getattr(self._consumer, name)


def test_a_replay_that_stops_being_fed_mid_read_fails_instead_of_going_on_incomplete(retained):
    """A partition that stops delivering in the middle must not end as if it were done: the
    replay would write a silently incomplete result. It fails, saying why."""
    from consumers.replay.reader import PartitionReader
    from infra.errors import BrokerError

    reader = PartitionReader(retained, MATCH, read_timeout_s=3)
    reader.consumer = _StopsDelivering(reader.consumer, records=100)
    try:
        with pytest.raises(BrokerError, match="incomplete"):
            list(reader.read("crowd.emotions.v1", "EmotionWindow"))
    finally:
        reader.close()
    complete = PartitionReader(retained, MATCH)  # the same read on a broker that delivers: no error
    try:
        assert len(list(complete.read("crowd.emotions.v1", "EmotionWindow"))) > 100
    finally:
        complete.close()
