"""Operator cues in one match's score (no Kafka): on the beat, once, hold, fades; the CLI's checks."""

from __future__ import annotations

import numpy as np
import pytest

from consumers.cues import cue_record, validate_cue
from consumers.score import MatchScore
from infra.errors import SchemaError
from schemas.codec import decode, encode
from tests.conftest import run_cli
from tests.music_samples import Spell, emotion_windows


def _cue(kind: str, cue_id: str, **options) -> dict:
    return cue_record("m-cue", kind, set_by="alice", source="tests", cue_id=cue_id, **options)


def _controls(outputs) -> list[dict]:
    return [o.record for o in outputs if o.kind == "control"]


def test_a_goal_cue_sounds_on_the_next_beat_once_and_names_itself():
    score = MatchScore("m-cue")
    windows = emotion_windows("m-cue", [Spell(0, 40, "CALM", 0.2, 0.0)])
    for window in windows[:20]:
        score.on_window(window)
    reached = score._beat_start(score.next_beat)  # the first beat not emitted yet
    assert score.on_cue(_cue("goal", "c-1"))
    assert not score.on_cue(_cue("goal", "c-1"))  # the same cue again: taken once
    outputs = [o for w in windows[20:] for o in score.on_window(w)]
    stingers = [o for o in outputs if o.kind == "control" and o.record["kind"] == "STINGER"]
    assert len(stingers) == 1
    stinger = stingers[0]
    assert stinger.record["stinger"] == "goal" and stinger.sample == reached
    assert stinger.record["cues"] == [{"cue_id": "c-1", "type": "GOAL", "set_by": "alice"}]
    assert "cue from alice" in stinger.record["reason"]
    assert decode(encode("MusicControl", stinger.record), expect="MusicControl")["beat"] == stinger.record["beat"]


def test_hold_freezes_intensity_and_key_through_a_goal_until_release():
    spells = [Spell(0, 20, "CALM", 0.2, 0.0), Spell(20, 60, "CELEBRATION", 0.95, 0.8, events=[(24, "GOAL", "HOME")]),
              Spell(60, 100, "CELEBRATION", 0.95, 0.8)]
    windows = emotion_windows("m-cue", spells)
    free = MatchScore("m-cue")
    free_bars = [r for w in windows for r in _controls(free.on_window(w)) if r["kind"] == "BAR"]
    held = MatchScore("m-cue")
    bars = [r for w in windows[:12] for r in _controls(held.on_window(w)) if r["kind"] == "BAR"]
    held.on_cue(_cue("hold", "h-1"))
    for window in windows[12:70]:
        bars += [r for r in _controls(held.on_window(window)) if r["kind"] == "BAR"]
    held.on_cue(_cue("release", "r-1"))
    for window in windows[70:]:
        bars += [r for r in _controls(held.on_window(window)) if r["kind"] == "BAR"]
    hold_at = next(i for i, r in enumerate(bars) if r["cues"] and r["cues"][0]["type"] == "HOLD")
    release_at = next(i for i, r in enumerate(bars) if r["cues"] and r["cues"][0]["type"] == "RELEASE")
    frozen = bars[hold_at:release_at]
    assert len(frozen) >= 8
    assert {(r["intensity"], r["key"], r["mode"], tuple(r["layers"])) for r in frozen} == \
        {(bars[hold_at - 1]["intensity"], bars[hold_at - 1]["key"], bars[hold_at - 1]["mode"],
          tuple(bars[hold_at - 1]["layers"]))}
    # Without the hold, the goal would have lifted the intensity and the key.
    assert max(r["intensity"] for r in free_bars[hold_at:release_at]) > frozen[0]["intensity"] + 0.3
    assert any(r["key"] != frozen[0]["key"] for r in free_bars[hold_at:release_at])
    # After the release the music follows the crowd again.
    assert bars[release_at + 2]["intensity"] > frozen[0]["intensity"] + 0.2


def test_fade_out_and_back_in_over_bars():
    windows = emotion_windows("m-cue", [Spell(0, 60, "EXCITEMENT", 0.7, 0.3)])
    from consumers.render.synth import SoundFontSynth

    score = MatchScore("m-cue", synth=SoundFontSynth())
    outputs = [o for w in windows[:12] for o in score.on_window(w)]
    score.on_cue(_cue("fade_out", "f-1", bars=2))
    for window in windows[12:40]:
        outputs += score.on_window(window)
    bars = [o.record for o in outputs if o.kind == "control" and o.record["kind"] == "BAR"]
    start = next(i for i, r in enumerate(bars) if r["cues"])
    assert [r["gain"] for r in bars[start - 1:start + 3]] == [1.0, 1.0, 0.5, 0.0]
    fade_start = next(o.sample for o in outputs if o.kind == "control" and o.record["cues"])
    audio = [o for o in outputs if o.kind == "audio"]
    pcm = np.concatenate([np.frombuffer(o.record["payload"], "<i2") for o in audio]).reshape(-1, 2)
    first = audio[0].sample
    before = pcm[fade_start - first - 96_000:fade_start - first]
    after = pcm[audio[-1].sample - first - 48_000:]
    assert np.abs(before).max() > 1000 and np.abs(after).max() == 0  # faded out: silence
    score.on_cue(_cue("fade_in", "f-2", bars=1))
    later = [o for w in windows[40:] for o in score.on_window(w)]
    assert _controls(later)[-1]["gain"] == 1.0
    tail = np.frombuffer(later[-1].record["payload"], "<i2")
    assert np.abs(tail).max() > 1000


def test_cue_state_survives_a_restart():
    windows = emotion_windows("m-cue", [Spell(0, 30, "CALM", 0.2, 0.0)])
    score = MatchScore("m-cue")
    for window in windows[:10]:
        score.on_window(window)
    score.on_cue(_cue("hold", "h-1"))
    score.on_cue(_cue("card", "s-1"))
    restored = MatchScore.from_state("m-cue", score.to_state())
    assert not restored.on_cue(_cue("card", "s-1"))
    outputs = _controls(restored.on_window(windows[10]) + restored.on_window(windows[11]))
    assert any(r["stinger"] == "card" for r in outputs)
    assert restored.director.state.hold


@pytest.mark.parametrize(("kind", "bars", "message"), [
    ("boom", 2, "unknown cue type"), ("fade_out", 0, "outside 1..32"), ("goal", 99, "outside 1..32"),
])
def test_bad_cues_are_refused_with_the_reason(kind, bars, message):
    with pytest.raises(SchemaError, match=message):
        cue_record("m", kind, bars=bars, set_by="x", source="tests")
    with pytest.raises(SchemaError, match="match id"):
        validate_cue({"match_id": "", "cue_id": "x", "type": "GOAL"})


def test_the_cue_command_refuses_bad_arguments_in_one_line():
    for args in (["cue", "--match", "m", "boom"], ["cue", "--match", "m", "fade-out", "--bars", "0"], ["cue", "goal"]):
        result = run_cli(*args)
        assert result.returncode == 2, result
        assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
