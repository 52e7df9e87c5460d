"""The crowd emotion model: the shipped ONNX file, what it hears, and how it is trained.

Pure tests (no broker). The synthetic match below is new to the model: its stadium seed
and script were never part of the training set (training seeds are 100000 and up).
"""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile

from infra.errors import CrowdsoundError
from producers.stadium import render_stadium
from producers.stadium.labels import crowd_state_at, window_labels
from producers.stadium.script import parse_script
from schemas.clock import Period
from streams.emotion import DEFAULT_MODEL_PATH, STATES, EmotionModel
from streams.features import FEATURE_NAMES
from streams.windows import CrowdAnalyzer
from tests.conftest import REPO, run_cli

REAL = REPO / "data" / "real-crowd" / "heldout" / "celebration" / "fs365132-soundsexciting-crowd-cheering.wav"

# First half starts 10 s into the audio. Murmur until 0:40, a home goal at 0:50, a home
# red card at 1:40 with the home end whistling from 1:43, a chant from 2:15.
UNSEEN = """
[match]
id = "unseen"
home = "Brentford"
away = "Fulham"
seed = 987654
home_share = 0.8

[periods]
pre_match = "0:10"
first_half = "2:50"

[[moments]]
at = "0:50"
kind = "goal"
side = "home"
player = "Mbeumo"

[[moments]]
at = "1:40"
kind = "card"
side = "home"
player = "Norgaard"
outcome = "red"

[[moments]]
at = "1:43"
kind = "whistles"
side = "home"
duration = "0:10"

[[moments]]
at = "2:15"
kind = "chant"
side = "home"
tempo = 118
duration = "0:30"
"""
PRE_MS = 10_000


@pytest.fixture(scope="module")
def model() -> EmotionModel:
    return EmotionModel.load()


@pytest.fixture(scope="module")
def unseen_windows(model):
    """(window start ms in the first half, Emotion) for every window of the unseen match."""
    script = parse_script(UNSEEN, name="unseen.toml")
    timeline = script.timeline()
    analyzer = CrowdAnalyzer()
    windows = []
    for i, block in enumerate(render_stadium(script, block_ms=100)):
        pcm = np.clip(np.rint(block[:, 0] * 32768.0), -32768, 32767) / 32768.0  # as the encoder sends it
        windows += analyzer.add_frame(timeline.clock_at(i * 100), pcm, 48_000)
    windows = [w for w in windows if w.start.period is Period.FIRST_HALF]
    emotions = model.predict(np.stack([w.features for w in windows]))
    return [(w.start.ms, e) for w, e in zip(windows, emotions, strict=True)]


def _between(windows, first_s: float, last_s: float):
    picked = [e for ms, e in windows if first_s * 1000 <= ms <= last_s * 1000]
    assert picked, (first_s, last_s)
    return picked


def _majority(emotions) -> str:
    return Counter(e.state for e in emotions).most_common(1)[0][0]


# -- the shipped model -------------------------------------------------------------------

def test_the_shipped_model_loads_with_its_version_and_the_schemas_states(model):
    symbols = json.loads((REPO / "schemas" / "EmotionWindow.avsc").read_text())
    crowd_state = next(f["type"] for f in symbols["fields"] if f["name"] == "state")
    assert STATES == tuple(crowd_state["symbols"])
    assert model.path == DEFAULT_MODEL_PATH
    assert re.fullmatch(r"crowd-emotion-\d{8}-[0-9a-f]{10}", model.version), model.version
    assert model.metadata["crowdsound.features"] == ",".join(FEATURE_NAMES)
    card = (DEFAULT_MODEL_PATH.parent / "MODEL_CARD.md").read_text()
    assert model.version in card and "crowdsound model train" in card


def test_predictions_are_probabilities_and_deterministic(model, unseen_windows):
    features = np.random.default_rng(3).normal(0, 4, (50, len(FEATURE_NAMES))).astype(np.float32)
    first = model.predict(features)
    again = EmotionModel.load().predict(features)  # another session
    one_by_one = [model.predict(row)[0] for row in features]
    assert [e.state for e in first] == [e.state for e in again] == [e.state for e in one_by_one]
    for a, b, c in zip(first, again, one_by_one, strict=True):
        assert a == b == c  # a window gets the same numbers alone (live) as in a batch (replay)
        assert set(a.probabilities) == set(STATES) and sum(a.probabilities.values()) == pytest.approx(1.0, abs=1e-5)
        assert a.state == max(a.probabilities, key=a.probabilities.get)
        assert 0.0 <= a.arousal <= 1.0 and -1.0 <= a.valence <= 1.0
    # Not a constant: the unseen match alone makes it say at least four different things.
    assert len({e.state for _, e in unseen_windows}) >= 4


def test_bad_input_and_bad_model_files_are_one_line_errors(model, tmp_path):
    with pytest.raises(CrowdsoundError, match=rf"shape \(n, {len(FEATURE_NAMES)}\)"):
        model.predict(np.zeros((2, 5), dtype=np.float32))
    assert model.predict(np.zeros((0, len(FEATURE_NAMES)))) == []
    assert model.predict(np.full(len(FEATURE_NAMES), np.nan))[0].state in STATES
    with pytest.raises(CrowdsoundError, match="does not exist"):
        EmotionModel.load(tmp_path / "missing.onnx")
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"\x08\x07garbage, not a protobuf" * 10)
    with pytest.raises(CrowdsoundError, match="cannot be loaded") as caught:
        EmotionModel.load(broken)
    assert "\n" not in str(caught.value)


# -- what it hears in a match it has never heard ---------------------------------------------

def test_the_murmur_before_anything_happens_is_calm(unseen_windows):
    quiet = _between(unseen_windows, 15, 36)
    assert _majority(quiet) == "CALM"
    assert np.mean([e.arousal for e in quiet]) < 0.3


def test_a_home_goal_roar_is_celebration_with_high_arousal_and_positive_valence(unseen_windows):
    roar = _between(unseen_windows, 50, 54)
    assert _majority(roar) == "CELEBRATION", [e.state for e in roar]
    assert np.mean([e.arousal for e in roar]) > 0.65
    assert np.mean([e.valence for e in roar]) > 0.3


def test_boos_and_whistles_after_a_card_are_anger_with_negative_valence(unseen_windows):
    protest = _between(unseen_windows, 101, 110)
    assert _majority(protest) == "ANGER", [e.state for e in protest]
    assert np.mean([e.valence for e in protest]) < -0.2
    assert np.mean([e.arousal for e in protest]) > 0.4


def test_a_chant_is_chanting(unseen_windows):
    chant = _between(unseen_windows, 143, 160)
    assert _majority(chant) == "CHANTING", [e.state for e in chant]


def test_loud_is_not_happy_the_roar_and_the_protest_differ_in_valence(unseen_windows):
    roar = np.mean([e.valence for e in _between(unseen_windows, 50, 54)])
    protest = np.mean([e.valence for e in _between(unseen_windows, 101, 110)])
    assert roar - protest > 0.6


@pytest.mark.xfail(strict=True, reason="a known weakness (issue 12): this real cheer (heldout/celebration) is heard "
                   "as CHANTING "
                   "in its first seconds (its rhythm passes the chant gate) and as CALM in several later ones, where "
                   "its baseline is the cheer itself (see the model card)")
def test_the_real_cheering_recording_is_excitement_or_celebration(model):
    from streams.analyze import analyze_file, window_record

    records = [window_record(item) for item in analyze_file(REAL, model=model)]
    complete = [r for r in records if not r["partial"]]  # the file's end cuts the last ones short
    assert len(complete) >= 10
    states = [r["state"] for r in complete]
    cheering = sum(s in {"EXCITEMENT", "CELEBRATION"} for s in states)
    assert cheering >= 0.75 * len(states), states
    assert np.mean([r["arousal"] for r in complete]) > 0.5
    assert np.mean([r["valence"] for r in complete]) > 0.2


# -- the labels the model learns from ---------------------------------------------------------

_AWAY_GOAL_AT_2 = """
[[moments]]
at = "2:00"
kind = "goal"
side = "away"
"""


def _first_half_ms(seconds: float) -> int:
    return PRE_MS + int(seconds * 1000)


def test_labels_follow_the_stadium_plan_from_the_home_crowds_point_of_view():
    script = parse_script(UNSEEN + _AWAY_GOAL_AT_2, name="unseen.toml")
    at = _first_half_ms
    assert crowd_state_at(script, at(25))[0] == "CALM"
    state, arousal, valence = crowd_state_at(script, at(51))
    assert state == "CELEBRATION" and arousal > 0.8 and valence > 0.5
    state, arousal, valence = crowd_state_at(script, at(104))
    assert state == "ANGER" and valence < -0.5
    state, arousal, valence = crowd_state_at(script, at(121))
    assert state == "DISAPPOINTMENT" and valence < -0.3  # the away end roars, the home crowd groans
    assert crowd_state_at(script, at(150))[0] == "CHANTING"
    labels = window_labels(script, [at(25), at(51)], 3000)
    assert labels[1].level_db > labels[0].level_db + 12


def test_labelled_by_sound_an_away_goals_roar_is_a_cheer_and_the_rest_stays():
    # What the model is taught: no microphone can tell whose goal it was (the worker's match
    # context makes the away goal's roar the home crowd's disappointment).
    script = parse_script(UNSEEN + _AWAY_GOAL_AT_2, name="unseen.toml")
    starts = [_first_half_ms(s) for s in (25, 51, 104, 121, 150)]
    home, heard = window_labels(script, starts, 3000), window_labels(script, starts, 3000, by_sound=True)
    assert home[3].state == "DISAPPOINTMENT" and home[3].valence < 0
    assert heard[3].state in ("CELEBRATION", "EXCITEMENT") and heard[3].valence > 0  # (the home groan is in it)
    assert heard[3].arousal == home[3].arousal
    assert [h.state for h in heard[:3] + heard[4:]] == [h.state for h in home[:3] + home[4:]]


# -- training ---------------------------------------------------------------------------------

def _write_clip(path: Path, script_text: str, start_s: float, seconds: float) -> None:
    script = parse_script(script_text, name="clip.toml")
    audio = np.concatenate([b for b in render_stadium(script, block_ms=1000, start_ms=int(start_s * 1000),
                                                      end_ms=int((start_s + seconds) * 1000))])
    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(str(path), audio, 48_000, subtype="PCM_16")


def test_model_train_end_to_end_on_a_tiny_data_set(tmp_path):
    import shutil

    clips = tmp_path / "clips"
    for n, seed in enumerate((5551, 5552)):
        text = UNSEEN.replace("seed = 987654", f"seed = {seed}")
        _write_clip(clips / "calm" / f"murmur-{n}.wav", text, 20, 8)
        _write_clip(clips / "ANGER" / f"protest-{n}.wav", text, 112, 8)
    heldout = tmp_path / "heldout"
    for label, name in (("calm", "fs829454-itmightgetloud-millerntor-ambience-b.wav"),
                        ("celebration", "fs829455-itmightgetloud-millerntor-goal.wav")):
        (heldout / label).mkdir(parents=True)
        shutil.copy(REPO / "data" / "real-crowd" / "heldout" / label / name, heldout / label / name)
    out = tmp_path / "model"
    result = run_cli("model", "train", "--out", str(out), "--matches", "2", "--minutes", "1", "--excerpts", "3",
                     "--copies", "1", "--streams", "3", "--clips", str(clips), "--heldout", str(heldout), "--quiet",
                     timeout=600)
    assert result.returncode == 0, result.stderr
    accuracy = float(re.search(r"held-out synthetic windows \(\d+\): accuracy ([0-9.]+)", result.stdout).group(1))
    assert accuracy > 1 / len(STATES)
    assert "held-out real recordings (2):" in result.stdout
    trained = EmotionModel.load(out / "crowd_emotion.onnx")
    assert trained.version in result.stdout and trained.version != EmotionModel.load().version
    assert len(trained.predict(np.zeros((3, len(FEATURE_NAMES))))) == 3
    assert "murmur-0.wav" not in trained.metadata["crowdsound.evaluated_on"]
    assert "real recordings" in trained.metadata["crowdsound.trained_on"]
    card = (out / "MODEL_CARD.md").read_text()
    for needle in ("Confusion matrix", "| CELEBRATION |", "arousal mean absolute error", "held out",
                   "crowdsound model train --out", "On real recordings it never heard", "arousal AUC",
                   "fs829455-itmightgetloud-millerntor-goal.wav", "Where it is weak"):
        assert needle in card, needle
    info = run_cli("model", "info", str(out / "crowd_emotion.onnx"))
    assert info.returncode == 0 and "trained on:" in info.stdout and "weak on:" in info.stdout


def test_training_data_and_weights_are_deterministic_for_a_seed():
    from streams.training.dataset import match_windows
    from streams.training.model import ModelConfig, fit_estimators
    from streams.training.scripts import script_text

    assert script_text(7, minutes=2) == script_text(7, minutes=2) != script_text(8, minutes=2)
    first = match_windows(424_242, minutes=0.75, clips=1)
    second = match_windows(424_242, minutes=0.75, clips=1)
    assert len(first) > 40
    np.testing.assert_array_equal(first.features, second.features)
    np.testing.assert_array_equal(first.states, second.states)
    data = match_windows(424_243, minutes=3.0, clips=6)
    data.states[: len(STATES)] = np.arange(len(STATES))  # every state a class, whatever this short match holds
    cold = np.array([v == "clip" for v in data.views])
    config = ModelConfig(members=1, max_iter=40)

    def fitted(seed: int) -> np.ndarray:
        estimators = fit_estimators(data.features, data.states, data.arousal, data.valence,
                                    np.zeros(len(data), dtype=bool), cold, seed=seed, config=config)
        return np.concatenate([np.ravel(part) for part in estimators.predict(data.features)])

    np.testing.assert_array_equal(fitted(3), fitted(3))
    assert not np.array_equal(fitted(3), fitted(4))


def test_a_clip_folder_with_an_unknown_state_is_a_one_line_error(tmp_path):
    (tmp_path / "clips" / "euphoria").mkdir(parents=True)
    result = run_cli("model", "train", "--out", str(tmp_path / "m"), "--matches", "0", "--clips",
                     str(tmp_path / "clips"), "--quiet")
    assert result.returncode == 1
    assert len(result.stderr.strip().splitlines()) == 1 and "euphoria" in result.stderr, result.stderr
