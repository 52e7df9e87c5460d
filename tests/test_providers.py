"""Provider event files -> crowdsound MatchEvents (``producers/providers.py``). No broker.

Expected goals, cards and periods are worked out here from the raw fixture files with
plain ``json``/``xml`` parsing — not with kloppy — so a mapping mistake shows up as a
difference. Fixtures: ``tests/fixtures/providers/`` (see its README for origin and licence).
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from infra.errors import CrowdsoundError, SchemaError
from producers.providers import PROVIDERS, load_provider_events
from schemas.clock import Period
from schemas.codec import decode, encode
from schemas.limits import MAX_PERIOD_MS

REPO = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "providers"
SB_EVENTS = FIXTURES / "statsbomb_3788741_events.json"
SB_LINEUP = FIXTURES / "statsbomb_3788741_lineup.json"
WYSCOUT = FIXTURES / "wyscout_v2_events.json"
OPTA_F7 = FIXTURES / "opta_f7.xml"
OPTA_F24 = FIXTURES / "opta_f24.xml"
SPORTEC_EVENTS = FIXTURES / "sportec_events.xml"
SPORTEC_META = FIXTURES / "sportec_meta.xml"

MATCH = "m-provider-test"
_PERIOD_NAMES = {1: "FIRST_HALF", 2: "SECOND_HALF", 3: "EXTRA_FIRST_HALF", 4: "EXTRA_SECOND_HALF", 5: "PENALTIES"}


# --------------------------------------------------------------------------------------
# What every provider's output must satisfy
# --------------------------------------------------------------------------------------


_SCHEMA = json.loads((REPO / "schemas" / "MatchEvent.avsc").read_text(encoding="utf-8"))


def _schema_fields() -> set[str]:
    return {field["name"] for field in _SCHEMA["fields"]}


def _event_types() -> set[str]:
    fields = {field["name"]: field for field in _SCHEMA["fields"]}
    return set(fields["type"]["type"]["symbols"])


def check_contract(events: list[dict[str, Any]], provider: str) -> None:
    """Schema, ids, sort order and period bookends of one provider's output."""
    assert events, "no events"
    fields = _schema_fields() - {"wall_time_ms"}
    types = _event_types()
    for event in events:
        assert set(event) == fields, event
        assert event["type"] in types
        assert event["side"] in ("HOME", "AWAY", "NONE")
        assert event["match_id"] == MATCH and event["source"] == provider
        record = {**event, "wall_time_ms": 0}
        if event["clock"]["ms"] > MAX_PERIOD_MS:  # a made-up time (kloppy's Opta sample): refused at the boundary
            with pytest.raises(SchemaError, match="no period lasts"):
                decode(encode("MatchEvent", record), expect="MatchEvent")
            continue
        assert decode(encode("MatchEvent", record), expect="MatchEvent") == record  # encodes, round-trips

    ids = [event["event_id"] for event in events]
    assert len(ids) == len(set(ids)), [i for i, n in Counter(ids).items() if n > 1]

    keys = [(Period[e["clock"]["period"]].order, e["clock"]["ms"]) for e in events]
    assert keys == sorted(keys), "not sorted by match clock"

    # Every period: one start at 0 before everything in it, one end after everything in it.
    by_period: dict[str, list[dict[str, Any]]] = {}
    for event in events:
        by_period.setdefault(event["clock"]["period"], []).append(event)
    for period, in_period in by_period.items():
        kinds = [e["type"] for e in in_period]
        assert kinds.count("PERIOD_START") == 1 and kinds.count("PERIOD_END") == 1, (period, kinds)
        assert in_period[0]["type"] == "PERIOD_START" and in_period[0]["clock"]["ms"] == 0, period
        assert in_period[-1]["type"] == "PERIOD_END", period
        assert in_period[-1]["clock"]["ms"] > 0, period


def of_type(events: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [event for event in events if event["type"] == kind]


def goal_rows(events: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return sorted((e["clock"]["period"], e["clock"]["ms"], e["side"], e["team"], e["player"], e["outcome"])
                  for e in of_type(events, "GOAL"))


def score(events: list[dict[str, Any]]) -> dict[str, int]:
    goals = [e for e in of_type(events, "GOAL") if e["clock"]["period"] != "PENALTIES"]
    return dict(Counter(e["team"] for e in goals))


# --------------------------------------------------------------------------------------
# StatsBomb: Euro 2020 opener, Turkey 0-3 Italy (Turkey the designated home side)
# --------------------------------------------------------------------------------------

SB_HOME, SB_AWAY = "Turkey", "Italy"


def _hms_ms(text: str) -> int:
    hours, minutes, seconds = text.split(":")
    whole, _, frac = seconds.partition(".")
    return ((int(hours) * 60 + int(minutes)) * 60 + int(whole)) * 1000 + int(frac.ljust(3, "0")[:3])


def _sb_raw() -> list[dict[str, Any]]:
    return json.loads(SB_EVENTS.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def statsbomb_events() -> list[dict[str, Any]]:
    return load_provider_events("statsbomb", [SB_EVENTS, SB_LINEUP], match_id=MATCH)


def test_statsbomb_contract(statsbomb_events: list[dict[str, Any]]) -> None:
    check_contract(statsbomb_events, "statsbomb")


def test_statsbomb_goals_are_the_raw_files_goals(statsbomb_events: list[dict[str, Any]]) -> None:
    side_of = {SB_HOME: "HOME", SB_AWAY: "AWAY"}
    other = {SB_HOME: SB_AWAY, SB_AWAY: SB_HOME}
    expected = []
    for raw in _sb_raw():
        kind = raw["type"]["name"]
        clock = (_PERIOD_NAMES[raw["period"]], _hms_ms(raw["timestamp"]))
        if kind == "Shot" and raw["shot"]["outcome"]["name"] == "Goal":
            team = raw["team"]["name"]
            outcome = "penalty" if raw["shot"]["type"]["name"] == "Penalty" else None
            expected.append((*clock, side_of[team], team, raw["player"]["name"], outcome))
        elif kind == "Own Goal Against":  # by a player of raw["team"]; counts for the other side
            team = other[raw["team"]["name"]]
            expected.append((*clock, side_of[team], team, raw["player"]["name"], "own_goal"))
    assert len(expected) == 3  # the fixture holds the match's three goals
    assert goal_rows(statsbomb_events) == sorted(expected)
    assert score(statsbomb_events) == {"Italy": 3}  # the real result, 0-3
    own_goal = next(e for e in of_type(statsbomb_events, "GOAL") if e["outcome"] == "own_goal")
    assert (own_goal["side"], own_goal["team"], own_goal["player"]) == ("AWAY", "Italy", "Merih Demiral")


def test_statsbomb_cards_substitutions_saves_and_shots(statsbomb_events: list[dict[str, Any]]) -> None:
    raw = _sb_raw()
    expected_cards = sorted(
        (_PERIOD_NAMES[e["period"]], _hms_ms(e["timestamp"]), e["team"]["name"], e["player"]["name"])
        for e in raw
        if (e.get("foul_committed") or e.get("bad_behaviour") or {}).get("card")
    )
    cards = of_type(statsbomb_events, "CARD")
    assert sorted((e["clock"]["period"], e["clock"]["ms"], e["team"], e["player"]) for e in cards) == expected_cards
    assert expected_cards and {e["outcome"] for e in cards} == {"yellow"}

    expected_subs = sorted((e["team"]["name"], e["substitution"]["replacement"]["name"])
                           for e in raw if e["type"]["name"] == "Substitution")
    subs = of_type(statsbomb_events, "SUBSTITUTION")
    assert sorted((e["team"], e["player"]) for e in subs) == expected_subs  # player = coming on
    assert len(expected_subs) == 9

    saved_types = {"Shot Saved", "Penalty Saved", "Save", "Shot Saved Off Target", "Shot Saved to Post",
                   "Saved to Post", "Penalty Saved to Post"}
    expected_saves = sorted((_hms_ms(e["timestamp"]), e["team"]["name"]) for e in raw
                            if e["type"]["name"] == "Goal Keeper" and e["goalkeeper"]["type"]["name"] in saved_types)
    saves = of_type(statsbomb_events, "SAVE")
    assert sorted((e["clock"]["ms"], e["team"]) for e in saves) == expected_saves
    assert {e["side"] for e in saves} == {"HOME"}  # only Turkey's keeper had saves to make

    outcomes = {"Saved": "saved", "Saved Off T": "saved", "Saved To Post": "saved", "Off T": "off_target",
                "Wayward": "off_target", "Post": "post", "Blocked": "blocked"}
    expected_shots = Counter(outcomes[e["shot"]["outcome"]["name"]] for e in raw
                             if e["type"]["name"] == "Shot" and e["shot"]["outcome"]["name"] != "Goal")
    assert Counter(e["outcome"] for e in of_type(statsbomb_events, "SHOT")) == expected_shots


def test_statsbomb_periods_start_and_end_at_the_half_start_and_end_events(
        statsbomb_events: list[dict[str, Any]]) -> None:
    raw = _sb_raw()
    ends = {_PERIOD_NAMES[e["period"]]: _hms_ms(e["timestamp"]) for e in raw if e["type"]["name"] == "Half End"}
    starts = [e for e in statsbomb_events if e["type"] == "PERIOD_START"]
    assert [e["clock"] for e in starts] == [{"period": "FIRST_HALF", "ms": 0}, {"period": "SECOND_HALF", "ms": 0}]
    assert {e["clock"]["period"]: e["clock"]["ms"] for e in of_type(statsbomb_events, "PERIOD_END")} == ends
    assert [e["event_id"] for e in starts] == ["statsbomb-period-1-start", "statsbomb-period-2-start"]
    assert not of_type(statsbomb_events, "PENALTY_AWARDED")  # no penalty in this match


def test_statsbomb_penalty_foul_and_penalty_goal(tmp_path: Path) -> None:
    """A foul StatsBomb marks ``penalty`` gives PENALTY_AWARDED to the fouled side; a goal
    from a shot of type Penalty is a GOAL with outcome ``penalty``."""
    raw = _sb_raw()
    foul = next(e for e in raw if e["type"]["name"] == "Foul Committed" and e["team"]["name"] == SB_HOME)
    foul["foul_committed"] = {**foul.get("foul_committed", {}), "penalty": True}
    goal = next(e for e in raw if e["type"]["name"] == "Shot" and e["shot"]["outcome"]["name"] == "Goal")
    goal["shot"]["type"] = {"id": 88, "name": "Penalty"}
    events_file = tmp_path / "events.json"
    events_file.write_text(json.dumps(raw), encoding="utf-8")

    events = load_provider_events("statsbomb", [events_file, SB_LINEUP], match_id=MATCH)
    check_contract(events, "statsbomb")
    [awarded] = of_type(events, "PENALTY_AWARDED")
    assert awarded["event_id"] == f"statsbomb-{foul['id']}-penalty-awarded"
    assert (awarded["side"], awarded["team"]) == ("AWAY", SB_AWAY)  # fouled side gets the penalty
    assert awarded["clock"] == {"period": _PERIOD_NAMES[foul["period"]], "ms": _hms_ms(foul["timestamp"])}
    penalty_goal = next(e for e in of_type(events, "GOAL") if e["event_id"] == f"statsbomb-{goal['id']}")
    assert penalty_goal["outcome"] == "penalty"


def test_file_order_does_not_matter_when_the_files_are_recognisable(
        statsbomb_events: list[dict[str, Any]]) -> None:
    assert load_provider_events("statsbomb", [str(SB_LINEUP), str(SB_EVENTS)], match_id=MATCH) == statsbomb_events
    opta = load_provider_events("opta", [OPTA_F7, OPTA_F24], match_id=MATCH)
    assert load_provider_events("opta", [OPTA_F24, OPTA_F7], match_id=MATCH) == opta


def test_loading_twice_gives_the_same_events(statsbomb_events: list[dict[str, Any]]) -> None:
    again = load_provider_events("StatsBomb", (SB_EVENTS, SB_LINEUP), match_id=MATCH)
    assert again == statsbomb_events


# --------------------------------------------------------------------------------------
# Wyscout v2: Leicester 2-3 Liverpool, 23 Sep 2017 (the file lists Liverpool first, and
# Wyscout v2 has no home/away field: kloppy takes the first team of the file as home)
# --------------------------------------------------------------------------------------


def _wy_raw() -> dict[str, Any]:
    return json.loads(WYSCOUT.read_text(encoding="utf-8"))


def _wy_ms(raw_event: dict[str, Any]) -> int:
    return int(round(float(raw_event["eventSec"]) * 1_000_000)) // 1000


def _wy_tags(raw_event: dict[str, Any]) -> set[int]:
    return {tag["id"] for tag in raw_event.get("tags", [])}


def _wy_is_shot(raw_event: dict[str, Any]) -> bool:
    return raw_event["eventName"] == 10 or (raw_event["eventName"] == 3 and raw_event["subEventName"] in (33, 35))


def _wy_teams(data: dict[str, Any]) -> tuple[dict[int, str], dict[int, str]]:
    names = {int(key): value["team"]["officialName"] for key, value in data["teams"].items()}
    home, away = (int(key) for key in data["teams"])
    return names, {home: "HOME", away: "AWAY"}


def _wy_player(data: dict[str, Any], player_id: int) -> str:
    for players in data["players"].values():
        for entry in players:
            if entry["player"]["wyId"] == player_id:
                return " ".join(f"{entry['player']['firstName']} {entry['player']['lastName']}".split())
    raise KeyError(player_id)


@pytest.fixture(scope="module")
def wyscout_events() -> list[dict[str, Any]]:
    return load_provider_events("wyscout", [WYSCOUT], match_id=MATCH)


def test_wyscout_contract(wyscout_events: list[dict[str, Any]]) -> None:
    check_contract(wyscout_events, "wyscout")


def test_wyscout_goals_are_the_raw_files_goals(wyscout_events: list[dict[str, Any]]) -> None:
    data = _wy_raw()
    names, sides = _wy_teams(data)
    periods = {"1H": "FIRST_HALF", "2H": "SECOND_HALF"}
    expected = sorted(
        (periods[e["matchPeriod"]], _wy_ms(e), sides[e["teamId"]], names[e["teamId"]], _wy_player(data, e["playerId"]),
         "penalty" if e["subEventName"] == 35 else None)
        for e in data["events"] if _wy_is_shot(e) and 101 in _wy_tags(e)
    )
    assert len(expected) == 5
    assert goal_rows(wyscout_events) == expected
    assert score(wyscout_events) == {"Liverpool FC": 3, "Leicester City FC": 2}  # the real result


def test_wyscout_penalty_awarded_at_the_foul_before_the_kick(wyscout_events: list[dict[str, Any]]) -> None:
    """Vardy's saved penalty: PENALTY_AWARDED to Leicester at Mignolet's foul, found in the
    raw file as the last event before the kick (cards share the foul's event)."""
    data = _wy_raw()
    names, sides = _wy_teams(data)
    raw_events = data["events"]
    kick_index = next(i for i, e in enumerate(raw_events) if e["eventName"] == 3 and e["subEventName"] == 35)
    kick, foul = raw_events[kick_index], raw_events[kick_index - 1]
    assert foul["eventName"] == 2 and foul["teamId"] != kick["teamId"]  # a foul by the defending side

    [awarded] = of_type(wyscout_events, "PENALTY_AWARDED")
    assert (awarded["side"], awarded["team"]) == (sides[kick["teamId"]], names[kick["teamId"]])
    assert awarded["clock"] == {"period": "SECOND_HALF", "ms": _wy_ms(foul)}
    [shot] = [e for e in wyscout_events if e["event_id"] == f"wyscout-{kick['id']}"]
    assert (shot["type"], shot["outcome"], shot["team"]) == ("SHOT", "saved", names[kick["teamId"]])
    keeper_saves = [e for e in of_type(wyscout_events, "SAVE")
                    if 0 <= e["clock"]["ms"] - shot["clock"]["ms"] < 3000]
    assert [e["team"] for e in keeper_saves] == [names[foul["teamId"]]]  # Mignolet saved it
    card = next(e for e in of_type(wyscout_events, "CARD") if e["clock"]["ms"] == _wy_ms(foul))
    assert card["outcome"] == "yellow" and card["team"] == names[foul["teamId"]]


def test_wyscout_cards_are_the_raw_files_cards(wyscout_events: list[dict[str, Any]]) -> None:
    data = _wy_raw()
    names, _ = _wy_teams(data)
    colour = {1701: "red", 1702: "yellow", 1703: "second_yellow"}
    expected = sorted((_wy_ms(e), names[e["teamId"]], colour[tag]) for e in data["events"]
                      for tag in _wy_tags(e) & colour.keys())
    cards = of_type(wyscout_events, "CARD")
    assert sorted((e["clock"]["ms"], e["team"], e["outcome"]) for e in cards) == expected
    assert len(expected) == 6


def test_wyscout_own_goal_tag_is_a_goal_for_the_other_side(tmp_path: Path) -> None:
    """Wyscout v2 tags an own goal (102) on the scorer's event; kloppy ignores the tag."""
    data = _wy_raw()
    names, sides = _wy_teams(data)
    away = next(team for team, side in sides.items() if side == "AWAY")
    home = next(team for team, side in sides.items() if side == "HOME")
    victim = next(e for e in data["events"] if e["teamId"] == away and e["eventName"] == 1 and e["matchPeriod"] == "2H")
    victim["tags"] = [*victim.get("tags", []), {"id": 102}]
    modified = tmp_path / "events.json"
    modified.write_text(json.dumps(data), encoding="utf-8")

    events = load_provider_events("wyscout", [modified], match_id=MATCH)
    check_contract(events, "wyscout")
    [own_goal] = [e for e in of_type(events, "GOAL") if e["outcome"] == "own_goal"]
    assert (own_goal["side"], own_goal["team"]) == ("HOME", names[home])
    assert own_goal["player"] == _wy_player(data, victim["playerId"])
    assert own_goal["clock"] == {"period": "SECOND_HALF", "ms": _wy_ms(victim)}
    assert score(events) == {"Liverpool FC": 4, "Leicester City FC": 2}


# --------------------------------------------------------------------------------------
# Opta F7 + F24 (kloppy's own sample: partly synthetic — its own goal and penalties carry
# made-up times — so times are not checked here, sides, outcomes and periods are)
# --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def opta_events() -> list[dict[str, Any]]:
    return load_provider_events("opta", [OPTA_F7, OPTA_F24], match_id=MATCH)


def _opta_raw() -> tuple[ET.Element, dict[str, str], dict[str, str], dict[str, str]]:
    f7 = ET.parse(OPTA_F7).getroot()
    sides = {td.get("TeamRef", "")[1:]: td.get("Side", "").upper() for td in f7.iter("TeamData")}
    teams = {team.get("uID", "")[1:]: team.findtext("Name", "") for team in f7.iter("Team")}
    players = {p.get("uID", "")[1:]: f"{p.findtext('PersonName/First')} {p.findtext('PersonName/Last')}"
               for p in f7.iter("Player")}
    return ET.parse(OPTA_F24).getroot(), sides, teams, players


def test_opta_contract(opta_events: list[dict[str, Any]]) -> None:
    check_contract(opta_events, "opta")


def test_opta_goals_own_goal_and_penalties(opta_events: list[dict[str, Any]]) -> None:
    f24, sides, teams, players = _opta_raw()
    other = {team: next(t for t in sides if t != team) for team in sides}
    expected = []
    for event in f24.iter("Event"):
        if event.get("type_id") != "16":
            continue
        qualifiers = {q.get("qualifier_id") for q in event.iter("Q")}
        team = event.get("team_id", "")
        if "28" in qualifiers:  # own goal: filed under the scorer's team, counts for the other
            team, outcome = other[team], "own_goal"
        else:
            outcome = "penalty" if "9" in qualifiers else None
        expected.append((f"opta-{event.get('id')}", _PERIOD_NAMES[int(event.get("period_id", 0))],
                         sides[team], teams[team], players[event.get("player_id", "")], outcome))
    goals = of_type(opta_events, "GOAL")
    assert sorted((e["event_id"], e["clock"]["period"], e["side"], e["team"], e["player"], e["outcome"])
                  for e in goals) == sorted(expected)
    assert any(row[5] == "own_goal" and row[2] == "HOME" for row in expected)  # København benefits
    assert any(row[1] == "PENALTIES" and row[5] == "penalty" for row in expected)  # a shoot-out kick


def test_opta_card_substitution_save_and_five_periods(opta_events: list[dict[str, Any]]) -> None:
    f24, sides, teams, players = _opta_raw()
    [card] = of_type(opta_events, "CARD")
    raw_card = next(e for e in f24.iter("Event") if e.get("type_id") == "17")
    colours = {"31": "yellow", "32": "second_yellow", "33": "red"}  # Opta card qualifiers
    [colour] = [colours[q.get("qualifier_id", "")] for q in raw_card.iter("Q") if q.get("qualifier_id") in colours]
    assert card["event_id"] == f"opta-{raw_card.get('id')}" and card["outcome"] == colour == "red"
    assert card["side"] == sides[raw_card.get("team_id", "")]

    [sub] = of_type(opta_events, "SUBSTITUTION")
    coming_on = next(e for e in f24.iter("Event") if e.get("type_id") == "19")  # type 19: player on
    assert sub["player"] == players[coming_on.get("player_id", "")]
    assert sub["team"] == teams[coming_on.get("team_id", "")]

    [save] = of_type(opta_events, "SAVE")  # type 10 by the keeper; outfield blocks are not saves
    assert save["team"] == "FC København" and save["side"] == "HOME"

    assert [e["clock"]["period"] for e in of_type(opta_events, "PERIOD_START")] == list(_PERIOD_NAMES.values())
    assert [e["event_id"] for e in of_type(opta_events, "PERIOD_END")] == [f"opta-period-{n}-end" for n in range(1, 6)]


# --------------------------------------------------------------------------------------
# Sportec (DFL): Freiburg v Gladbach, with an own goal naming the team it counts for
# --------------------------------------------------------------------------------------


def test_sportec_goals_and_own_goal_at_the_right_times() -> None:
    events = load_provider_events("sportec", [SPORTEC_EVENTS, SPORTEC_META], match_id=MATCH)
    check_contract(events, "sportec")

    meta = ET.parse(SPORTEC_META).getroot()
    teams = {t.get("TeamId"): t.get("TeamName") for t in meta.iter("Team")}
    sides = {t.get("TeamId"): {"home": "HOME", "guest": "AWAY"}[t.get("Role", "")] for t in meta.iter("Team")}
    players = {p.get("PersonId"): p.get("Shortname") for p in meta.iter("Player")}
    kickoffs: list[datetime] = []
    expected = []
    for event in ET.parse(SPORTEC_EVENTS).getroot().iter("Event"):
        when = datetime.fromisoformat(event.get("EventTime", ""))
        kick_off = event.find("KickOff")
        if kick_off is not None and kick_off.get("GameSection"):
            kickoffs.append(when)
        if not kickoffs:
            continue
        clock = (_PERIOD_NAMES[len(kickoffs)], (when - kickoffs[-1]) // timedelta(milliseconds=1))
        shot = event.find("ShotAtGoal")
        if shot is not None and shot.find("SuccessfulShot") is not None:
            team = shot.get("Team", "")
            expected.append((*clock, sides[team], teams[team], players[shot.get("Player")], None))
        own_goal = event.find("OwnGoal")
        if own_goal is not None:
            team = own_goal.get("TeamOwnGoalCountsFor", "")
            assert team != own_goal.get("Team")
            expected.append((*clock, sides[team], teams[team], players[own_goal.get("Player")], "own_goal"))
    assert len(expected) == 2
    assert goal_rows(events) == sorted(expected)


# --------------------------------------------------------------------------------------
# Every provider, on the sample files kloppy ships with its tests (not copied here)
# --------------------------------------------------------------------------------------

_KLOPPY_SPEC = importlib.util.find_spec("kloppy")
_KLOPPY_SAMPLES = (Path(_KLOPPY_SPEC.origin).parent / "tests" / "files" if _KLOPPY_SPEC and _KLOPPY_SPEC.origin
                   else Path("/nonexistent"))
_SAMPLE_FILES = {
    "statsbomb": ["statsbomb_event.json", "statsbomb_lineup.json"],
    "opta": ["opta_f7.xml", "opta_f73.xml"],
    "statsperform": ["statsperform_event_ma1.json", "statsperform_event_ma3.json"],
    "wyscout": ["wyscout_events_v3.json"],
    "sportec": ["sportec_events.xml", "sportec_meta.xml"],
    "metrica": ["metrica_events.json", "epts_metrica_metadata.xml"],
    "datafactory": ["datafactory_events.json"],
    "impect": ["impect_events.json", "impect_lineups.json", "impect_squads.json", "impect_players.json"],
}


def test_every_provider_has_a_sample() -> None:
    assert set(_SAMPLE_FILES) == set(PROVIDERS)


@pytest.mark.parametrize("provider", sorted(_SAMPLE_FILES))
def test_every_provider_maps_kloppys_sample(provider: str) -> None:
    files = [_KLOPPY_SAMPLES / name for name in _SAMPLE_FILES[provider]]
    if not all(path.is_file() for path in files):
        pytest.skip(f"kloppy's sample files for {provider} are not installed")
    events = load_provider_events(provider, files, match_id=MATCH)
    check_contract(events, provider)
    assert of_type(events, "GOAL"), "every sample match has goals"


def test_stats_perform_penalty_awarded_from_the_foul_marked_with_qualifier_9() -> None:
    files = [_KLOPPY_SAMPLES / "statsperform_event_ma1.xml", _KLOPPY_SAMPLES / "statsperform_event_ma3.xml"]
    if not all(path.is_file() for path in files):
        pytest.skip("kloppy's Stats Perform samples are not installed")
    events = load_provider_events("statsperform", files, match_id=MATCH)
    [awarded] = of_type(events, "PENALTY_AWARDED")
    [penalty_goal] = [e for e in of_type(events, "GOAL") if e["outcome"] == "penalty"]
    assert awarded["team"] == penalty_goal["team"] == "Hamburger SV"
    assert awarded["clock"]["period"] == penalty_goal["clock"]["period"]
    assert 0 < penalty_goal["clock"]["ms"] - awarded["clock"]["ms"] < 5 * 60_000


# --------------------------------------------------------------------------------------
# Errors: one line, CrowdsoundError, never a raw kloppy/json/lxml exception
# --------------------------------------------------------------------------------------


def one_line_error(provider: Any, files: Any, match_id: str = MATCH) -> str:
    with pytest.raises(CrowdsoundError) as caught:
        load_provider_events(provider, files, match_id=match_id)
    assert type(caught.value) is CrowdsoundError
    message = str(caught.value)
    assert message and "\n" not in message and len(message) < 400, message
    return message


def test_unknown_provider_lists_the_supported_ones() -> None:
    message = one_line_error("tracab", [SB_EVENTS])
    assert "tracab" in message
    for name in PROVIDERS:
        assert name in message
    one_line_error(None, [SB_EVENTS])


def test_wrong_number_of_files() -> None:
    assert "statsbomb needs 2 files" in one_line_error("statsbomb", [SB_EVENTS])
    assert "got 2" in one_line_error("wyscout", [WYSCOUT, WYSCOUT])
    assert "2 to 4 files" in one_line_error("impect", [WYSCOUT])
    one_line_error("opta", [])


def test_missing_empty_and_folder_files(tmp_path: Path) -> None:
    missing = tmp_path / "nope.json"
    message = one_line_error("statsbomb", [missing, SB_LINEUP])
    assert "not found" in message and str(missing) in message
    empty = tmp_path / "empty.json"
    empty.write_bytes(b"")
    assert "empty" in one_line_error("wyscout", [empty])
    assert "not a regular file" in one_line_error("wyscout", [tmp_path])


def test_unreadable_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    locked = tmp_path / "locked.json"
    locked.write_text("{}", encoding="utf-8")
    real_open = Path.open

    def refuse(self: Path, *args: Any, **kwargs: Any) -> Any:  # chmod 000 does not stop root
        if self == locked:
            raise PermissionError(13, "Permission denied", str(self))
        return real_open(self, *args, **kwargs)

    monkeypatch.setattr(Path, "open", refuse)
    message = one_line_error("wyscout", [locked])
    assert "cannot read" in message and "Permission denied" in message


@pytest.mark.parametrize("provider, make_files", [
    ("statsbomb", lambda garbage: [garbage, SB_LINEUP]),
    ("wyscout", lambda garbage: [garbage]),
    ("opta", lambda garbage: [OPTA_F7, garbage]),
    ("sportec", lambda garbage: [garbage, SPORTEC_META]),
    ("datafactory", lambda garbage: [garbage]),
])
@pytest.mark.parametrize("content", [b"this is not a data file\n{[<", b'{"events": "nope"}', b"<Games><Game>"])
def test_garbage_file_is_a_one_line_parse_error(tmp_path: Path, provider: str, make_files: Any,
                                                content: bytes) -> None:
    garbage = tmp_path / "garbage.dat"
    garbage.write_bytes(content)
    message = one_line_error(provider, make_files(garbage))
    assert message.startswith(f"cannot parse {provider} files") and str(garbage) in message


def test_wrong_provider_for_the_files() -> None:
    assert one_line_error("wyscout", [SB_EVENTS]).startswith("cannot parse wyscout files")


def test_match_id_is_required() -> None:
    one_line_error("wyscout", [WYSCOUT], match_id="")


def test_import_is_light() -> None:
    """Importing the module pulls in neither kloppy (the CLI must start fast) nor Kafka."""
    code = ("import sys, producers.providers; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & "
            "{'kloppy', 'confluent_kafka', 'aiokafka', 'faust', 'lxml', 'pandas'}))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert result.stdout.strip() == "[]"
