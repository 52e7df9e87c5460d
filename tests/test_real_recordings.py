"""The ear on real crowds: the shipped model on real recordings it never heard (no broker).

data/real-crowd/heldout holds real recordings of other venues, recordists and recordings
than those the model was trained on (data/real-crowd/train). What a user would notice: a
roaring crowd heard as roaring and a murmuring one as calm whatever the microphone's gain,
boos as anger, a quiet arena as calm, a real goal roar as the peak of its stream, and any
common audio file read without a crash.
"""

from __future__ import annotations

import shutil
import subprocess
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile

from streams.emotion import EmotionModel
from streams.training.evaluate import background_check, evaluate_clips
from streams.training.real import read_clip_folder
from tests.conftest import REPO, run_cli

HELDOUT = REPO / "data" / "real-crowd" / "heldout"
TRAIN = REPO / "data" / "real-crowd" / "train"
CHEER = HELDOUT / "celebration" / "fs829455-itmightgetloud-millerntor-goal.wav"
CALM = HELDOUT / "calm" / "fs829454-itmightgetloud-millerntor-ambience-a.wav"


@pytest.fixture(scope="module")
def model() -> EmotionModel:
    return EmotionModel.load()


@pytest.fixture(scope="module")
def heldout():
    return read_clip_folder(HELDOUT, arousal_only=True)


@pytest.fixture(scope="module")
def evaluation(model, heldout):
    return evaluate_clips(heldout, model.predict, folder=str(HELDOUT), model_version=model.version)


def test_held_out_and_training_recordings_never_overlap(heldout):
    trained = {c.group for c in read_clip_folder(TRAIN)}
    assert trained and not trained & {c.group for c in heldout}


# Known shortfalls of the shipped model, kept as the issue's own targets: strict, so the day
# a model meets one of them the test fails until its marker is taken off.
_OPEN = "issue 12, blocked on more real boo recordings: see the model card's weaknesses"


def _check(evaluation, prefix: str) -> tuple[bool, str]:
    found = [(ok, f"{what}: {figure}") for what, ok, figure in evaluation.checks if what.startswith(prefix)]
    assert len(found) == 1, (prefix, evaluation.checks)
    return found[0]


def test_excited_crowds_have_higher_arousal_than_calm_ones_heard_alone(evaluation):
    assert evaluation.auc_alone >= 0.85, evaluation.verdict


def test_in_a_stream_arousal_ranks_excited_moments_at_least_as_well_as_loudness(evaluation):
    assert evaluation.auc_stream >= evaluation.auc_stream_loudness, evaluation.verdict
    assert evaluation.auc_stream_windows >= evaluation.auc_stream_windows_loudness, evaluation.verdict


@pytest.mark.parametrize("check", ["cheering heard as", "calm heard as", "applause has positive valence"])
def test_cheering_and_calm_are_heard_as_such_and_applause_is_warm(evaluation, check):
    ok, said = _check(evaluation, check)
    assert ok, said


@pytest.mark.xfail(strict=True, reason=_OPEN + " (real boos are heard as CALM)")
def test_boos_are_heard_as_anger(evaluation):
    ok, said = _check(evaluation, "boos and whistles heard as")
    assert ok, said


def test_twenty_db_of_gain_changes_almost_no_state(evaluation):
    assert evaluation.gain_state_changes <= 0.10
    assert evaluation.gain_arousal_change <= 0.1


@pytest.fixture(scope="module")
def background(model, heldout):
    check = background_check(heldout, model.predict)
    assert check is not None
    return check


def test_a_real_goal_roar_laid_into_a_real_arena_is_its_arousal_peak(background):
    assert background.cheers and all(peak for _, peak, _, _ in background.cheers), background.cheers


def test_a_quiet_real_arena_is_mostly_calm(background):
    assert background.calm_share >= 0.7, background


def _states(model: EmotionModel, path: Path) -> Counter:
    from streams.analyze import analyze_file

    return Counter(item.emotion.state for item in analyze_file(path, model=model))


def _variants(tmp_path: Path, source: Path) -> dict[str, Path]:
    """``source`` as people hand recordings over: other rates, stereo, clipped, lossy."""
    import soxr

    audio, rate = soundfile.read(str(source))
    out = {}
    for target in (16_000, 22_050, 44_100):
        out[f"{target} Hz"] = tmp_path / f"{target}.wav"
        soundfile.write(str(out[f"{target} Hz"]), soxr.resample(audio, rate, target), target, subtype="PCM_16")
    out["stereo"] = tmp_path / "stereo.flac"
    soundfile.write(str(out["stereo"]), np.stack([audio, 0.5 * audio], axis=1), rate)
    out["clipped"] = tmp_path / "clipped.wav"
    soundfile.write(str(out["clipped"]), np.clip(audio / np.max(np.abs(audio)) * 4.0, -1, 1), rate, subtype="PCM_16")
    out["mp3"] = tmp_path / "lossy.mp3"
    soundfile.write(str(out["mp3"]), audio, rate, format="MP3")
    if shutil.which("ffmpeg"):
        out["aac"] = tmp_path / "lossy.m4a"
        subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(source), "-c:a", "aac", "-b:a", "96k", str(out["aac"])],
                       check=True)
    return out


@pytest.mark.parametrize(("source", "expected"), [(CHEER, {"EXCITEMENT", "CELEBRATION"}), (CALM, {"CALM"})])
def test_any_common_recording_format_is_read_and_heard_the_same_way(model, tmp_path, source, expected):
    variants = _variants(tmp_path, source)
    assert shutil.which("ffmpeg") is None or "aac" in variants  # CI installs ffmpeg: AAC is tested there
    for name, path in variants.items():
        states = _states(model, path)
        hits = sum(n for state, n in states.items() if state in expected)
        assert hits * 2 > sum(states.values()), (name, states)


def test_model_evaluate_prints_the_figures_next_to_loudness_and_a_verdict(tmp_path):
    folder = tmp_path / "venue"
    for label, path in (("calm", CALM), ("celebration", CHEER), ("high", CHEER)):
        (folder / label).mkdir(parents=True)
        shutil.copy(path, folder / label / path.name)
    result = run_cli("model", "evaluate", str(folder), timeout=300)
    assert result.returncode == 0, result.stderr
    assert "loudness" in result.stdout and "arousal AUC" in result.stdout
    assert result.stdout.strip().splitlines()[-1].startswith(("GOOD", "USABLE", "WEAK"))
    as_json = run_cli("model", "evaluate", str(folder), "--json", timeout=300)
    import json

    report = json.loads(as_json.stdout)
    assert report["arousal_auc"]["alone"] == 1.0  # the goal roar is above the calm bed
    assert {c["label"] for c in report["clips"]} == {"calm", "celebration", "high"}


def test_in_a_stream_a_window_belongs_to_the_clip_holding_its_middle_and_loudness_hears_that_window():
    """Model and loudness must judge the same audio in the stream: a 3 s stream window
    belongs to the clip holding its middle (by its start, two of its seconds could be the
    next clip), and the loudness yardstick is measured on that stream window."""
    from dataclasses import dataclass

    from streams.training.evaluate import SAMPLE_RATE
    from streams.training.real import LabelledClip

    rng = np.random.default_rng(1)
    quiet = LabelledClip(Path("calm/quiet.wav"), "calm", 0.01 * rng.standard_normal(10 * SAMPLE_RATE), ())
    loud = LabelledClip(Path("celebration/loud.wav"), "celebration", 0.3 * rng.standard_normal(10 * SAMPLE_RATE), ())

    @dataclass
    class Heard:
        state: str = "CALM"
        arousal: float = 0.5
        valence: float = 0.0

    evaluation = evaluate_clips([quiet, loud], lambda rows: [Heard() for _ in rows])
    first, second = sorted(evaluation.clips, key=lambda c: np.mean(c.stream_window_loudness))
    assert first.label == "calm" and second.label == "celebration"
    # Whichever came first in the stream, each owns the windows whose middle it holds:
    # 10 s clips and 3 s windows every second -> 9 or 10 windows each, none shared.
    assert {len(first.stream_window_arousal), len(second.stream_window_arousal)} <= {9, 10}
    assert len(first.stream_window_loudness) == len(first.stream_window_arousal)
    # The quiet clip's windows are heard in the stream: where a window reaches into the loud
    # clip, its loudness says so (alone, the clip's windows are all quiet).
    assert max(first.window_loudness) < -35
    assert max(first.stream_window_loudness) > -20 and min(first.stream_window_loudness) < -35
    assert min(second.stream_window_loudness) > -20


def test_model_evaluate_refuses_a_bad_folder_in_one_line(tmp_path):
    (tmp_path / "roaring").mkdir()
    result = run_cli("model", "evaluate", str(tmp_path))
    assert result.returncode == 1 and "not a label" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    missing = run_cli("model", "evaluate", str(tmp_path / "nowhere"))
    assert missing.returncode == 1 and "no such folder" in missing.stderr


def test_a_bad_segments_file_is_a_one_line_error(tmp_path):
    from infra.errors import CrowdsoundError

    (tmp_path / "calm").mkdir()
    shutil.copy(CALM, tmp_path / "calm" / CALM.name)
    (tmp_path / "segments.toml").write_text('[[segment]]\nfile = "calm/x.wav"\nstart = 2.0\nend = 1.0\nstate = "CALM"\n')
    with pytest.raises(CrowdsoundError, match="start < end"):
        read_clip_folder(tmp_path)
