"""The synthetic stadium: scripts, match events and crowd audio (pure, no broker).

Audio is rendered at 16 kHz to keep the suite fast; the crowd model is the same at any
sample rate. Windows of audio are compared the way a listener would: louder, brighter,
darker, a beat at the chant's tempo.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from infra.errors import CrowdsoundError
from producers.stadium import MatchScript, load_script, render_stadium, script_events, write_wav
from producers.stadium import measure
from producers.stadium.script import parse_script
from schemas.clock import MatchClock, Period
from schemas.codec import decode, encode

SR = 16_000
SCRIPTS = Path(__file__).resolve().parent.parent / "producers" / "stadium" / "scripts"

HEADER = """
[match]
id = "t-match"
home = "Arsenal"
away = "Chelsea"
seed = {seed}
home_share = 0.75
"""


def script_text(periods: str, moments: str = "", *, seed: int = 3) -> str:
    return HEADER.format(seed=seed) + "[periods]\n" + periods + "\n" + moments


def render(script: MatchScript, **options: object) -> np.ndarray:
    return np.concatenate(list(render_stadium(script, sample_rate=SR, **options)))


def window(audio: np.ndarray, start_s: float, end_s: float) -> np.ndarray:
    return audio[int(start_s * SR):int(end_s * SR)]


# A match with one of everything, spaced so each reaction can be heard on its own.
# Pre-match lasts 4 s, so first-half time t is audio time t + 4 s.
REFERENCE = script_text('pre_match = "0:04"\nfirst_half = "3:00"\n', """
[[moments]]
at = "0:30"
kind = "goal"
side = "home"
player = "Saka"

[[moments]]
at = "1:00"
kind = "boos"
side = "home"
duration = "0:08"

[[moments]]
at = "1:25"
kind = "whistles"
side = "home"
duration = "0:08"

[[moments]]
at = "1:50"
kind = "chant"
side = "home"
tempo = 120
duration = "0:20"

[[moments]]
at = "2:20"
kind = "chant"
side = "home"
tempo = 96
duration = "0:20"
""")


@pytest.fixture(scope="module")
def reference() -> np.ndarray:
    return render(parse_script(REFERENCE))


# --- the shipped scripts ------------------------------------------------------------


@pytest.mark.parametrize("name", ["demo", "derby", "full_match"])
def test_shipped_scripts_load(name: str) -> None:
    script = load_script(SCRIPTS / f"{name}.toml")
    kinds = {m.kind for m in script.moments}
    periods = dict(script.periods)
    assert {"goal", "chant"} <= kinds
    assert Period.FIRST_HALF in periods and Period.SECOND_HALF in periods and Period.HALF_TIME in periods
    events = script_events(script)
    assert [e["offset_ms"] for e in events] == sorted(e["offset_ms"] for e in events)
    for event in events:
        encode("MatchEvent", {**{k: v for k, v in event.items() if k != "offset_ms"}, "wall_time_ms": 0})


def test_demo_script_has_what_the_demo_needs() -> None:
    script = load_script(SCRIPTS / "demo.toml")
    assert 4 * 60_000 <= script.duration_ms <= 5 * 60_000
    goals = {(m.kind, m.side) for m in script.moments if m.kind == "goal"}
    assert goals == {("goal", "home"), ("goal", "away")}
    assert any(m.kind == "chance" for m in script.moments)
    assert any(m.kind == "card" for m in script.moments)
    assert any(m.kind in {"boos", "whistles"} for m in script.moments)
    assert any(m.kind == "chant" and m.side == "home" and m.tempo for m in script.moments)


def test_full_match_lasts_ninety_minutes_and_more() -> None:
    script = load_script(SCRIPTS / "full_match.toml")
    periods = dict(script.periods)
    assert periods[Period.FIRST_HALF] >= 45 * 60_000 and periods[Period.SECOND_HALF] >= 45 * 60_000
    assert periods[Period.HALF_TIME] == 15 * 60_000


# --- script format ------------------------------------------------------------------


def test_stoppage_time_counts_from_the_scripted_end_of_play(tmp_path: Path) -> None:
    path = tmp_path / "short.toml"
    path.write_text(script_text('first_half = "1:00+0:30"\nhalf_time = "0:10"\nsecond_half = "1:00"\n', """
[[moments]]
at = "45+0:10"
kind = "goal"
side = "away"

[[moments]]
at = "45:20"
kind = "miss"
side = "home"
"""))
    script = load_script(path)
    stoppage, second = script.moments
    assert stoppage.clock == MatchClock(Period.FIRST_HALF, 70_000)
    assert stoppage.offset_ms == 70_000
    assert second.clock == MatchClock(Period.SECOND_HALF, 20_000)
    assert second.offset_ms == 90_000 + 10_000 + 20_000


BAD_SCRIPTS = {
    "toml syntax": ('[match\nid = "x"', "not valid TOML"),
    "unknown kind": (script_text('first_half = "2:00"\n', '[[moments]]\nat = "1:00"\nkind = "gaol"\nside = "home"\n'),
                     "unknown kind 'gaol'"),
    "outside period": (script_text('first_half = "2:00"\n', '[[moments]]\nat = "3:10"\nkind = "goal"\nside = "home"\n'),
                       "outside the scripted first_half"),
    "period not scripted": (script_text('first_half = "2:00"\n', '[[moments]]\nat = "50:00"\nkind = "goal"\nside = "home"\n'),
                            "SECOND_HALF, which this script does not have"),
    "missing id": ('[match]\nhome = "A"\naway = "B"\n[periods]\nfirst_half = "1:00"\n', "missing id"),
    "negative tempo": (script_text('first_half = "2:00"\n',
                                   '[[moments]]\nat = "1:00"\nkind = "chant"\ntempo = -120\nduration = "0:10"\n'),
                       "tempo must be a number from 40 to 240 bpm, got -120"),
    "unknown side": (script_text('first_half = "2:00"\n', '[[moments]]\nat = "1:00"\nkind = "goal"\nside = "north"\n'),
                     "unknown side 'north'"),
    "unknown key": (script_text('first_half = "2:00"\n',
                                '[[moments]]\nat = "1:00"\nkind = "goal"\nside = "home"\nminute = 3\n'),
                    "unknown key 'minute'"),
    "goal at half time": (script_text('first_half = "1:00"\nhalf_time = "1:00"\n',
                                      '[[moments]]\nat = "HT 0:10"\nkind = "goal"\nside = "home"\n'),
                          "while the ball is in play"),
    "bad time": (script_text('first_half = "2:00"\n', '[[moments]]\nat = "1:75"\nkind = "goal"\nside = "home"\n'),
                 "bad match time '1:75'"),
    "periods out of order": (HEADER.format(seed=1) + '[periods]\nsecond_half = "1:00"\nfirst_half = "1:00"\n',
                             "in order of play"),
    "no periods": (HEADER.format(seed=1), "missing [periods]"),
}


@pytest.mark.parametrize("case", list(BAD_SCRIPTS))
def test_bad_scripts_say_what_is_wrong_in_one_line(tmp_path: Path, case: str) -> None:
    text, problem = BAD_SCRIPTS[case]
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(CrowdsoundError) as caught:
        load_script(path)
    message = str(caught.value)
    assert message.startswith("bad.toml: ")
    assert problem in message
    assert "\n" not in message


def test_missing_file_is_a_crowdsound_error(tmp_path: Path) -> None:
    with pytest.raises(CrowdsoundError, match="nope.toml: cannot read match script"):
        load_script(tmp_path / "nope.toml")


# --- match events -------------------------------------------------------------------

EVENTS = script_text('pre_match = "0:15"\nfirst_half = "2:00"\nhalf_time = "0:30"\nsecond_half = "2:00"\n', """
[[moments]]
at = "1:30"
kind = "goal"
side = "home"
player = "Saka"

[[moments]]
at = "0:40"
kind = "chant"
side = "home"
tempo = 120
duration = "0:20"

[[moments]]
at = "45:20"
kind = "card"
side = "away"
player = "Caicedo"
outcome = "red"

[[moments]]
at = "46:00"
kind = "var"
side = "away"
outcome = "overturned"
duration = "0:20"

[[moments]]
at = "46:40"
kind = "save"
side = "home"
player = "Raya"

[[moments]]
at = "HT 0:10"
kind = "substitution"
side = "away"
player = "Mudryk"
""")


def test_a_home_goal_is_a_goal_event_at_its_match_time() -> None:
    events = script_events(parse_script(EVENTS))
    goal = next(e for e in events if e["type"] == "GOAL")
    assert goal["side"] == "HOME" and goal["team"] == "Arsenal" and goal["player"] == "Saka"
    assert goal["clock"] == {"period": "FIRST_HALF", "ms": 90_000}
    assert goal["offset_ms"] == 15_000 + 90_000
    assert goal["source"] == "stadium" and goal["match_id"] == "t-match"


def test_periods_start_and_end_with_their_clocks() -> None:
    events = script_events(parse_script(EVENTS))
    periods = [(e["type"], e["clock"]["period"], e["clock"]["ms"], e["offset_ms"]) for e in events
               if e["type"] in {"PERIOD_START", "PERIOD_END"}]
    assert periods == [
        ("PERIOD_START", "FIRST_HALF", 0, 15_000),
        ("PERIOD_END", "FIRST_HALF", 120_000, 135_000),
        ("PERIOD_START", "SECOND_HALF", 0, 165_000),
        ("PERIOD_END", "SECOND_HALF", 120_000, 285_000),
    ]


def test_events_carry_their_details_and_no_crowd_noise() -> None:
    events = script_events(parse_script(EVENTS))
    by_type = {e["type"]: e for e in events}
    assert by_type["CARD"]["outcome"] == "red" and by_type["CARD"]["team"] == "Chelsea"
    # A review is reported when it is decided.
    assert by_type["VAR_REVIEW"]["clock"] == {"period": "SECOND_HALF", "ms": 80_000}
    assert by_type["VAR_REVIEW"]["outcome"] == "overturned"
    # A save: the other side shot, the goalkeeper's side saved.
    assert by_type["SHOT"]["side"] == "AWAY" and by_type["SHOT"]["outcome"] == "saved"
    assert by_type["SAVE"]["side"] == "HOME" and by_type["SAVE"]["player"] == "Raya"
    assert by_type["SUBSTITUTION"]["clock"] == {"period": "HALF_TIME", "ms": 10_000}
    assert len(events) == 4 + 5 + 1  # periods, moments (save = SHOT + SAVE), no chant
    assert len({e["event_id"] for e in events}) == len(events)
    assert [e["event_id"] for e in events][:2] == ["t-match-stadium-0001", "t-match-stadium-0002"]


def test_events_encode_as_match_events_and_agree_with_the_timeline() -> None:
    script = parse_script(EVENTS)
    timeline = script.timeline(origin_ms=1_000_000)
    for event in script_events(script):
        record = {**{k: v for k, v in event.items() if k != "offset_ms"}, "wall_time_ms": 0}
        assert set(record) == {"match_id", "event_id", "type", "side", "team", "player", "outcome", "clock",
                               "wall_time_ms", "source"}
        assert decode(encode("MatchEvent", record), expect="MatchEvent") == record
        clock = MatchClock.from_avro(event["clock"])
        assert timeline.instant_of(clock) == 1_000_000 + event["offset_ms"]
        if event["type"] != "PERIOD_END":  # at a period's end instant the next period has begun
            assert timeline.clock_at(1_000_000 + event["offset_ms"]) == clock


# --- audio: determinism and streaming -----------------------------------------------

SHORT = script_text('pre_match = "0:03"\nfirst_half = "0:20"\n', """
[[moments]]
at = "0:08"
kind = "goal"
side = "home"
""")


def test_same_seed_renders_the_same_bytes_and_another_seed_does_not() -> None:
    first = render(parse_script(SHORT))
    again = render(parse_script(SHORT))
    other = render(parse_script(SHORT.replace("seed = 3", "seed = 4")))
    assert first.dtype == np.float32 and first.shape == (23 * SR, 1)
    assert first.tobytes() == again.tobytes()
    assert other.shape == first.shape and not np.array_equal(first, other)
    assert np.corrcoef(first[:, 0], other[:, 0])[0, 1] < 0.5


def test_any_chunking_gives_identical_samples() -> None:
    script = parse_script(SHORT)
    whole = render(script, block_ms=100)
    blocks = list(render_stadium(script, sample_rate=SR, block_ms=250))
    assert all(len(b) == SR // 4 for b in blocks)
    assert np.array_equal(np.concatenate(blocks), whole)
    for start_ms, end_ms in [(5_300, 13_700), (7_999, 8_001), (0, 1), (16_000, 23_000)]:
        part = render(script, start_ms=start_ms, end_ms=end_ms, block_ms=30)
        assert np.array_equal(part, whole[start_ms * SR // 1000:end_ms * SR // 1000]), (start_ms, end_ms)


@pytest.fixture(scope="module")
def short_whole() -> np.ndarray:
    return render(parse_script(SHORT))


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(start_ms=st.integers(0, 22_999), length_ms=st.integers(1, 9_000), block_ms=st.sampled_from([10, 20, 100, 1000]))
def test_any_stretch_in_any_blocks_matches_the_whole(short_whole: np.ndarray, start_ms: int, length_ms: int,
                                                      block_ms: int) -> None:
    end_ms = min(start_ms + length_ms, 23_000)
    blocks = list(render_stadium(parse_script(SHORT), sample_rate=SR, block_ms=block_ms, start_ms=start_ms,
                                 end_ms=end_ms))
    assert all(len(b) == SR * block_ms // 1000 for b in blocks[:-1])
    assert np.array_equal(np.concatenate(blocks), short_whole[start_ms * SR // 1000:end_ms * SR // 1000])


def test_blocks_have_the_requested_shape_and_stay_in_range() -> None:
    script = parse_script(SHORT)
    blocks = list(render_stadium(script, sample_rate=SR, channels=2, block_ms=300))
    assert {b.shape for b in blocks[:-1]} == {(SR * 3 // 10, 2)}
    assert blocks[-1].shape == (23 * SR - (len(blocks) - 1) * SR * 3 // 10, 2)
    assert all(b.dtype == np.float32 and b.flags.c_contiguous for b in blocks)
    stereo = np.concatenate(blocks)
    assert np.max(np.abs(stereo)) < 1.0
    # Two microphones: related (same crowd) but clearly not the same signal.
    assert not np.array_equal(stereo[:, 0], stereo[:, 1])
    assert abs(np.corrcoef(stereo[:, 0], stereo[:, 1])[0, 1]) < 0.8


@pytest.mark.parametrize(("options", "problem"), [
    ({"channels": 3}, "1 or 2 channels"),
    ({"block_ms": 0}, "block of 0 ms"),
    ({"sample_rate": 44_100, "block_ms": 1}, "not a whole number of samples"),
    ({"start_ms": 5_000, "end_ms": 4_000}, "cannot render"),
    ({"end_ms": 24_000}, "cannot render"),
])
def test_bad_render_options_fail_at_once(options: dict, problem: str) -> None:
    options = {"sample_rate": SR, **options}
    with pytest.raises(CrowdsoundError, match=problem):
        render_stadium(parse_script(SHORT), **options)  # no iteration needed


def test_write_wav_streams_a_16_bit_file(tmp_path: Path) -> None:
    script = parse_script(SHORT)
    seen: list[float] = []
    path = tmp_path / "short.wav"
    write_wav(script, path, sample_rate=SR, progress=seen.append)
    data, sr = soundfile.read(path, dtype="float32")
    info = soundfile.info(path)
    assert sr == SR and info.subtype == "PCM_16" and info.channels == 1
    assert len(data) == 23 * SR
    assert seen == sorted(seen) and seen[-1] == pytest.approx(23.0)
    assert np.max(np.abs(data - render(script)[:, 0])) <= 1.5 / 32768


# --- audio: does it behave like a crowd? --------------------------------------------


def test_goal_roar_is_louder_and_brighter_than_the_murmur_before_it(reference: np.ndarray) -> None:
    murmur = window(reference, 16, 26)  # goal at 0:30 = 34 s of audio; anticipation starts at 28 s
    roar = window(reference, 34.5, 39.5)
    assert measure.rms_dbfs(roar) - measure.rms_dbfs(murmur) >= 6.0
    assert measure.spectral_centroid_hz(roar, SR) > measure.spectral_centroid_hz(murmur, SR) + 50
    # Sensible levels: a murmur well below a roar, and no clipping anywhere.
    assert -34 < measure.rms_dbfs(murmur) < -22
    assert -16 < measure.rms_dbfs(roar) < -6
    assert np.max(np.abs(reference)) < 1.0


def test_anticipation_rises_before_the_goal(reference: np.ndarray) -> None:
    before = [measure.rms_dbfs(window(reference, t, t + 1)) for t in (26, 30, 33)]
    assert before[0] < before[1] < before[2]


def test_boos_are_darker_than_a_cheer(reference: np.ndarray) -> None:
    boos = window(reference, 66, 71)
    cheer = window(reference, 34.5, 39.5)
    murmur = window(reference, 16, 26)
    assert measure.spectral_centroid_hz(boos, SR) < 0.7 * measure.spectral_centroid_hz(cheer, SR)
    assert measure.spectral_centroid_hz(boos, SR) < measure.spectral_centroid_hz(murmur, SR)
    assert measure.rms_dbfs(boos) > measure.rms_dbfs(murmur) + 6


def test_whistles_put_their_energy_at_two_to_four_kilohertz(reference: np.ndarray) -> None:
    whistles = window(reference, 90.5, 96)
    murmur = window(reference, 16, 26)
    assert measure.band_fraction(whistles, SR, 2000, 4000) > 0.25
    assert measure.band_fraction(whistles, SR, 2000, 4000) > 4 * measure.band_fraction(murmur, SR, 2000, 4000)


@pytest.mark.parametrize(("start_s", "tempo"), [(118, 120.0), (148, 96.0)])
def test_a_chant_beats_at_its_tempo(reference: np.ndarray, start_s: float, tempo: float) -> None:
    chant = window(reference, start_s, start_s + 16)
    assert measure.beat_bpm(chant, SR) == pytest.approx(tempo, rel=0.05)


def test_librosa_hears_the_chant_tempo_too(reference: np.ndarray) -> None:
    librosa = pytest.importorskip("librosa")
    chant = window(reference, 118, 134)[:, 0]
    onsets = librosa.onset.onset_strength(y=chant, sr=SR)
    assert float(librosa.feature.tempo(onset_envelope=onsets, sr=SR)[0]) == pytest.approx(120.0, rel=0.05)


def test_an_away_goal_in_a_home_stadium_is_a_smaller_roar() -> None:
    home = render(parse_script(SHORT))
    away = render(parse_script(SHORT.replace('side = "home"', 'side = "away"')))
    roar = (11.5, 16.5)  # the goal is at 0:08 = 11 s of audio
    assert measure.rms_dbfs(window(home, *roar)) >= measure.rms_dbfs(window(away, *roar)) + 2.0
    # ... but still a reaction: louder than the same stretch of a match where nothing happens.
    quiet = render(parse_script(SHORT.split("[[moments]]")[0]))
    assert measure.rms_dbfs(window(away, *roar)) > measure.rms_dbfs(window(quiet, *roar)) + 6.0
