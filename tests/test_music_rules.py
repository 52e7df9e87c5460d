"""The rules a broadcast music supervisor checks, as tests of the score (no broker).

Each test scripts a crowd window by window, runs the live score (``MatchScore``) or a replay
clip (``compose_clip``, with foresight), and checks what a listener notices: pieces that end
on the tonic and ring out, a tempo that holds through phrases, a home goal that is the
loudest moment, a goal against that never brightens the key, stingers in the harmony, a home
theme that comes back. ``crowdsound audit`` measures the same things on a replay folder.
"""

from __future__ import annotations

import math

import mido
import numpy as np
import pytest

from consumers.music.director import MusicPrefs
from consumers.music.measures import TimedNote, key_brightness, semitone_clashes, tempo_steadiness
from consumers.music.theory import chord_tones
from consumers.music.types import CHANNELS, SAMPLE_RATE, TICKS_PER_BEAT
from consumers.replay.highlights import Highlight
from consumers.replay.loudness import integrated_lufs
from consumers.replay.replay import compose_clip
from consumers.score import MatchScore, Output
from tests.music_samples import Spell, emotion_windows

GOAL_S = 10 * 60
ACCOMPANIMENT = {CHANNELS[layer] for layer in ("pad", "bass", "strings", "melody", "brass")}
STINGER_CHANNELS = {CHANNELS["stinger"], CHANNELS["stinger_low"]}


def run(score: MatchScore, windows: list[dict]) -> list[Output]:
    outputs: list[Output] = []
    for window in windows:
        outputs.extend(score.on_window(window))
    return outputs


def bars(outputs: list[Output]) -> list[Output]:
    return [o for o in outputs if o.kind == "control" and o.record["kind"] == "BAR"]


def stingers(outputs: list[Output], kind: str | None = None) -> list[Output]:
    return [o for o in outputs if o.kind == "control" and o.record["kind"] == "STINGER"
            and (kind is None or o.record["stinger"] == kind)]


def event(match_id: str, second: int, kind: str, side: str) -> dict:
    return {"event_id": f"{match_id}-{kind}-{second}", "type": kind, "side": side, "team": None,
            "clock": {"period": "FIRST_HALF", "ms": second * 1000}}


def bar_seconds(bar: Output) -> float:
    return bar.record["beats_per_bar"] * 60.0 / bar.record["tempo_bpm"]


@pytest.fixture(scope="module")
def synth():
    from consumers.render.synth import SoundFontSynth

    return SoundFontSynth()


# -- a home goal in a replay clip -------------------------------------------------------------
HOME_MATCH = [
    Spell(GOAL_S - 70, GOAL_S - 18, "CALM", 0.25, 0.05),
    Spell(GOAL_S - 18, GOAL_S, "ANTICIPATION", 0.6, 0.1),
    Spell(GOAL_S, GOAL_S + 24, "CELEBRATION", 0.95, 0.8, events=[(GOAL_S, "GOAL", "HOME")]),
    Spell(GOAL_S + 24, GOAL_S + 45, "EXCITEMENT", 0.6, 0.4),
]


@pytest.fixture(scope="module")
def home_clip(synth):
    windows = emotion_windows("m-clip", HOME_MATCH)
    clip = Highlight(period="FIRST_HALF", start_ms=(GOAL_S - 20) * 1000, end_ms=(GOAL_S + 20) * 1000, score=10.0,
                     reason="goal home", moments=(GOAL_S * 1000,))
    return compose_clip("m-clip", clip, windows, [event("m-clip", GOAL_S, "GOAL", "HOME")], prefs=MusicPrefs(),
                        synth=synth, hop_ms=1000)


def rms_db(audio: np.ndarray) -> float:
    return 20 * math.log10(float(np.sqrt(np.mean((audio.astype(np.float64) / 32768) ** 2))) + 1e-12)


def test_a_clip_starts_on_a_pickup_and_ends_on_the_tonic_with_a_release(home_clip):
    controls = home_clip.controls
    pickup = [c for c in controls if c.record["kind"] == "PICKUP"]
    played = sorted(bars(controls), key=lambda c: c.sample)
    assert pickup and pickup[0].sample == home_clip.first_sample < played[0].sample  # the audio opens on it
    final, before = played[-1], played[-2]
    assert final.plan.final and final.record["chord"] in ("I", "i")
    assert before.record["chord"] in ("V", "V7")  # an authentic cadence into it
    audio = home_clip.audio
    n = SAMPLE_RATE // 20
    whole = rms_db(audio)
    assert rms_db(audio[:n]) <= whole - 10  # no full-level hit at the start
    assert rms_db(audio[-n:]) <= whole - 20  # a release, not a cut
    final_at = final.sample - home_clip.first_sample
    tail = audio[final_at + int(bar_seconds(final) * SAMPLE_RATE):]
    assert len(tail) >= SAMPLE_RATE // 2 and rms_db(tail[-n:]) < rms_db(audio[final_at:final_at + n]) - 30


def test_the_eight_bars_after_a_home_goal_are_the_loudest_and_fullest(home_clip):
    played = sorted(bars(home_clip.controls), key=lambda c: c.sample)
    goal = next(i for i, b in enumerate(played) if b.record["clock"]["ms"] >= GOAL_S * 1000 - 60)
    assert abs(played[goal].record["clock"]["ms"] - GOAL_S * 1000) <= 60  # a bar line lands on the goal
    before, after = played[max(0, goal - 8):goal], played[goal:goal + 8]
    assert len(before) >= 6 and len(after) >= 6

    def loudness(span: list[Output]) -> float:
        a = span[0].sample - home_clip.first_sample
        b = span[-1].sample - home_clip.first_sample + int(bar_seconds(span[-1]) * SAMPLE_RATE)
        return integrated_lufs(home_clip.audio[a:b], SAMPLE_RATE)

    assert loudness(after) >= loudness(before) + 2.0
    assert min(len(b.record["layers"]) for b in after[:6]) >= max(len(b.record["layers"]) for b in before)
    assert max(b.record["intensity"] for b in before) < min(b.record["intensity"] for b in after[:6])


def test_the_live_score_also_peaks_after_a_home_goal(synth):
    outputs = run(MatchScore("m-live-goal", synth=synth), emotion_windows("m-live-goal", HOME_MATCH))
    pcm = np.concatenate([np.frombuffer(o.record["payload"], "<i2").reshape(-1, 2) for o in outputs
                          if o.kind == "audio"])
    at = stingers(outputs, "goal")[0].sample
    before = integrated_lufs(pcm[at - 8 * SAMPLE_RATE:at], SAMPLE_RATE)
    after = integrated_lufs(pcm[at + 4 * SAMPLE_RATE:at + 12 * SAMPLE_RATE], SAMPLE_RATE)
    assert after >= before


# -- tempo ---------------------------------------------------------------------------------------
TEMPO_MATCH = [
    Spell(0, 40, "CALM", 0.2, 0.0),
    Spell(40, 70, "CHANTING", 0.6, 0.4, chant_bpm=64.0),     # 128 bpm: a long way from the calm tempo
    Spell(70, 100, "EXCITEMENT", 0.85, 0.5),
    Spell(100, 130, "CHANTING", 0.6, 0.3, chant_bpm=49.0),   # 98 bpm: the lurch the issue heard
    Spell(130, 170, "CALM", 0.15, 0.0),
    Spell(170, 200, "ANTICIPATION", 0.7, 0.1),
]


def test_tempo_holds_through_phrases_and_never_jumps():
    played = bars(run(MatchScore("m-tempo"), emotion_windows("m-tempo", TEMPO_MATCH)))
    tempos = [b.record["tempo_bpm"] for b in played]
    figures = tempo_steadiness(tempos)
    assert figures.steps_over_8 == 0 and figures.largest_step_bpm <= 8.0
    assert figures.moves_share <= 0.25, figures
    for previous, bar in zip(played, played[1:]):
        step = abs(bar.record["tempo_bpm"] - previous.record["tempo_bpm"])
        if bar.plan.phrase_pos != 0 and not bar.plan.tempo_ramp:
            assert step <= 0.5, (bar.record["bar"], previous.record["tempo_bpm"], bar.record["tempo_bpm"])
    # Each lock to a chant is a planned ramp of two bars or more that ends on the chant's tempo.
    locks = [i for i, b in enumerate(played) if "locking to the crowd's chant" in b.record["reason"]]
    assert len(locks) == 2
    for i in locks:
        ramp = [b for b in played[i:] if b.plan.tempo_ramp]
        run_length = next((k for k, b in enumerate(played[i:]) if not b.plan.tempo_ramp), len(played) - i)
        assert run_length >= 2 and ramp
    assert 127 <= tempos[locks[0] + 6] <= 129 and 97 <= tempos[locks[1] + 6] <= 99


# -- goals against -----------------------------------------------------------------------------
AWAY_MATCH = [
    Spell(0, 50, "DISAPPOINTMENT", 0.3, -0.7),   # a dark spell turns the music to the relative minor
    Spell(50, 75, "EXCITEMENT", 0.6, 0.6),       # then a bright one asks for the major again ...
    Spell(75, 110, "DISAPPOINTMENT", 0.6, -0.6, events=[(77, "GOAL", "AWAY")]),  # ... when the away side scores
    Spell(110, 150, "CALM", 0.3, 0.2),
]


def test_an_away_goal_never_brightens_the_key():
    outputs = run(MatchScore("m-away"), emotion_windows("m-away", AWAY_MATCH))
    played = bars(outputs)
    at = stingers(outputs, "goal_against")[0].sample
    keys = [(b.record["key"], b.record["mode"]) for b in played]
    assert ("MINOR" in {m for _, m in keys[:20]}), keys[:20]  # the dark spell did turn to minor
    here = next(b for b in reversed(played) if b.sample <= at)
    base = key_brightness(here.record["key"], here.record["mode"])
    after = [b for b in played if at < b.sample <= at + 40 * SAMPLE_RATE]
    assert after and all(key_brightness(b.record["key"], b.record["mode"]) <= base for b in after), \
        [(b.record["key"], b.record["mode"], b.record["reason"][-60:]) for b in after]
    assert any(b.plan.theme == "away" for b in after[:5])  # the away side's theme answers


def test_foresight_builds_dread_towards_a_goal_against_and_triumph_towards_a_home_goal():
    def build(side: str) -> list[Output]:
        match = f"m-build-{side}"
        spells = [Spell(GOAL_S - 40, GOAL_S, "ANTICIPATION", 0.6, 0.1),
                  Spell(GOAL_S, GOAL_S + 20, "EXCITEMENT", 0.8, 0.0, events=[(GOAL_S, "GOAL", side)])]
        windows = emotion_windows(match, spells)
        score = MatchScore(match)
        outputs = list(score.on_window(windows[0]))
        score.foresee([event(match, GOAL_S, "GOAL", side)])
        outputs += run(score, windows[1:])
        return [b for b in bars(outputs) if GOAL_S * 1000 - 16_000 <= b.record["clock"]["ms"] < GOAL_S * 1000 - 60]

    home, away = build("HOME"), build("AWAY")
    assert max(b.record["intensity"] for b in away) < max(b.record["intensity"] for b in home)
    assert np.mean([b.plan.valence for b in away]) < np.mean([b.plan.valence for b in home]) - 0.2
    assert home[-1].record["chord"] == "V7/V"  # the dominant of the key the goal lifts to
    assert away[-1].record["chord"] != "V7/V" and "triumph" not in " ".join(b.record["reason"] for b in away)


# -- stingers and themes -------------------------------------------------------------------------
EVENTFUL = [
    Spell(0, 30, "CALM", 0.3, 0.1),
    Spell(30, 60, "EXCITEMENT", 0.7, 0.3, events=[(31, "SHOT", "HOME"), (47, "CARD", "AWAY")]),
    Spell(60, 90, "CELEBRATION", 0.95, 0.8, events=[(61, "GOAL", "HOME")]),
    Spell(90, 120, "ANTICIPATION", 0.6, 0.0, events=[(95, "VAR_REVIEW", "NONE"), (118, "SAVE", "HOME")]),
    Spell(120, 150, "DISAPPOINTMENT", 0.6, -0.6, events=[(122, "GOAL", "AWAY")]),
    Spell(150, 180, "CELEBRATION", 0.95, 0.8, events=[(151, "GOAL", "HOME")]),
    Spell(180, 215, "EXCITEMENT", 0.7, 0.4, events=[(183, "SHOT", "HOME"), (200, "CARD", "HOME")]),
    Spell(215, 250, "CELEBRATION", 0.95, 0.8, events=[(216, "GOAL", "HOME")]),
    Spell(250, 280, "CALM", 0.3, 0.2),
]


@pytest.fixture(scope="module")
def eventful() -> list[Output]:
    return run(MatchScore("m-events"), emotion_windows("m-events", EVENTFUL))


def _timed(output: Output, channels: set[int]) -> list[TimedNote]:
    seconds_per_tick = 60.0 / output.record["tempo_bpm"] / TICKS_PER_BEAT
    start = output.sample / SAMPLE_RATE
    return [TimedNote(start + n.tick * seconds_per_tick, start + (n.tick + n.duration_ticks) * seconds_per_tick,
                      n.pitch, n.channel) for n in output.part.notes if n.channel in channels]


def test_stingers_clash_with_the_bar_no_more_than_the_accompaniment_does(eventful):
    kinds = {s.record["stinger"] for s in stingers(eventful)}
    assert {"goal", "goal_against", "near_miss", "card", "var"} <= kinds, kinds
    accompaniment = [n for b in bars(eventful) for n in _timed(b, ACCOMPANIMENT)]
    stinger_notes = [n for s in stingers(eventful) for n in _timed(s, STINGER_CHANNELS)]
    s_clash, s_total = semitone_clashes(stinger_notes, accompaniment)
    a_clash, a_total = semitone_clashes(accompaniment, accompaniment)
    assert s_total > 80 and a_total > 1000
    assert s_clash / s_total <= a_clash / a_total, (s_clash, s_total, a_clash, a_total)


def test_stingers_are_voiced_on_the_chords_of_the_bars_they_overlap(eventful):
    played = bars(eventful)
    for stinger in stingers(eventful):
        for note in _timed(stinger, {CHANNELS["stinger"]}):
            under = [b for b in played if b.sample / SAMPLE_RATE <= note.start_s + 0.002][-1]  # ms rounding
            tones = chord_tones(under.record["key"], under.record["mode"], under.record["chord"])
            assert all((note.pitch - t) % 12 not in (1, 11) for t in tones), (stinger.record["stinger"], note)


def _melody(bar: Output) -> list[tuple[int, int]]:
    return sorted((round(n.tick / 120), n.pitch) for n in bar.part.notes if n.channel == CHANNELS["melody"])


def test_the_home_theme_returns_at_each_home_goal_and_develops(eventful):
    played = bars(eventful)
    statements = []
    for goal in stingers(eventful, "goal"):
        following = [b for b in played if b.sample >= goal.sample][:5]
        themed = [b for b in following if b.plan.theme == "home"]
        assert [b.plan.theme_bar for b in themed] == [0, 1], [b.record["reason"][-50:] for b in following]
        statements.append(themed)
    assert len(statements) == 3
    rhythms = {tuple(tuple(t for t, _ in _melody(b)) for b in s) for s in statements}
    assert len(rhythms) == 1  # the same tune each time: it is recognised
    pitches = [tuple(tuple(p for _, p in _melody(b)) for b in s) for s in statements]
    assert len(set(pitches)) >= 2  # ... and it grows as the match goes on
    away = [b for b in played if b.plan.theme == "away"]
    assert away and tuple(t for t, _ in _melody(away[0])) != next(iter(rhythms))[0]  # the other side's tune


# -- feel --------------------------------------------------------------------------------------------
def _expression(bar: Output) -> dict[int, list[tuple[int, int]]]:
    values: dict[int, list[tuple[int, int]]] = {}
    for event in bar.record["midi_events"]:
        message = mido.Message.from_bytes(list(event["data"]))
        if message.type == "control_change" and message.control == 11:
            values.setdefault(message.channel, []).append((event["tick"], message.value))
    return values


def test_layers_fade_in_and_out_and_expression_flows_across_bar_lines(eventful):
    played = bars(eventful)
    entries = exits = flowing = lines = 0
    for previous, bar in zip(played, played[1:]):
        before, now = _expression(previous), _expression(bar)
        for layer in ("pad", "bass", "strings", "melody", "brass"):
            channel = CHANNELS[layer]
            was, is_ = layer in previous.record["layers"], layer in bar.record["layers"]
            if is_ and not was and channel in now:
                entries += 1
                curve = now[channel]
                level = max(v for _, v in curve)
                after_two_beats = [v for t, v in curve if t <= 2 * TICKS_PER_BEAT][-1]
                assert curve[0][1] <= 0.3 * level and after_two_beats >= 0.8 * level, (layer, curve)
            elif was and not is_:
                exits += 1
                assert now[channel][-1][1] == 0 and any(n.channel == channel for n in bar.part.notes)
            elif was and is_ and channel in before and channel in now and not bar.plan.tension >= 0.5:
                lines += 1
                flowing += abs(now[channel][0][1] - before[channel][-1][1]) <= 8
    assert entries >= 3 and exits >= 3
    assert flowing >= 0.9 * lines


def test_humanisation_is_light_deterministic_and_off_the_grid(eventful):
    again = run(MatchScore("m-events"), emotion_windows("m-events", EVENTFUL))
    assert [o.record for o in again if o.kind == "control"] == [o.record for o in eventful if o.kind == "control"]
    ticks = [n.tick for b in bars(eventful) for n in b.part.notes if n.channel != CHANNELS["drums"]]
    off = [t % 120 for t in ticks if t % 120]
    assert 0.2 <= len(off) / len(ticks) <= 0.8
    assert max(min(o, 120 - o) for o in off) <= 12  # a few milliseconds, never a different rhythm


def test_full_time_cadences_and_brings_the_home_theme_back():
    spells = [Spell(0, 30, "CALM", 0.3, 0.2), Spell(30, 60, "CELEBRATION", 0.9, 0.7, events=[(31, "PERIOD_END", "NONE")])]
    outputs = run(MatchScore("m-ft"), emotion_windows("m-ft", spells, period="SECOND_HALF"))
    final = stingers(outputs, "full_time")
    assert len(final) == 1
    following = [b for b in bars(outputs) if b.sample > final[0].sample]
    committed = [b.record["chord"] for b in following[:2]]
    assert committed == ["V7", "I"] or committed == ["V7", "i"]  # the stinger's cadence, in the bars
    assert [b.plan.theme for b in following[2:4]] == ["home", "home"]
