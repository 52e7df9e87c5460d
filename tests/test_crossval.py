"""`crowdsound model crossval`: each recording of a label left out of training in turn."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from streams.training.crossval import CrossValidation, FoldResult, LabelResult, folds, format_cross_validation
from streams.training.real import LabelledClip, read_clip_folder
from tests.conftest import REPO, run_cli

REAL = REPO / "data" / "real-crowd"


def _clip(path: str) -> LabelledClip:
    return LabelledClip(Path(path), path.split("/")[-2], np.zeros(4_800), ())


def test_a_left_out_recording_never_teaches_its_own_fold_and_other_held_out_labels_never_teach():
    trained = [_clip("train/anger/fs1-boo.wav"), _clip("train/anger/fs2-boo.wav"), _clip("train/calm/fs3-bed.wav"),
               _clip("train/calm/fs1-bed.wav")]  # the same recording (fs1) as the first boo
    heldout = [_clip("heldout/anger/fs4-boo.wav"), _clip("heldout/celebration/fs5-goal.wav")]
    plan = {group: (teachers, left_out) for group, teachers, left_out in folds("anger", trained, heldout)}
    assert sorted(plan) == ["real:fs1", "real:fs2", "real:fs4"]  # every boo recording, training and held-out, once
    for group, (teachers, left_out) in plan.items():
        assert {c.group for c in left_out} == {group} and all(c.label == "anger" for c in left_out)
        assert group not in {c.group for c in teachers}  # not even its calm excerpt
        assert "real:fs5" not in {c.group for c in teachers}  # a held-out cheer is never taught
    assert "real:fs4" in {c.group for c in plan["real:fs2"][0]}  # the held-out boo teaches the other folds
    assert {c.group for c in plan["real:fs4"][0]} == {"real:fs1", "real:fs2", "real:fs3"}  # every training recording


def test_crossval_says_how_each_left_out_recording_is_heard():
    """Each real cheer of the training folder left out in turn (real recordings only, quick
    settings): a goal roar the model was not taught by is still heard as cheering, and the
    report says per recording how it was heard."""
    result = run_cli("model", "crossval", "celebration", "--no-heldout", "--matches", "0", "--copies", "2",
                     "--streams", "6", "--quiet", "--json", timeout=600)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    (label,) = report["labels"]
    assert label["label"] == "celebration" and label["wanted"] == ["EXCITEMENT", "CELEBRATION"]
    left_out = {r["recording"]: r for r in label["recordings"]}
    trained = {c.group for c in read_clip_folder(REAL / "train") if c.label == "celebration"}
    assert set(left_out) == trained and len(trained) >= 3
    roar = left_out["real:fs113698"]  # a stadium's goal roar, looped
    assert roar["windows"] >= 3 and roar["hits"] * 2 > roar["windows"], roar
    assert label["hits"] == sum(r["hits"] for r in left_out.values()) < label["windows"]
    assert all(sum(r["heard"].values()) == r["windows"] for r in left_out.values())


def test_the_crossval_report_has_a_line_per_label_and_per_recording():
    boo = FoldResult("real:fs1", ["heldout/anger/fs1-boo.wav"], windows=6, hits=2, heard={"ANGER": 2, "CALM": 4},
                     arousal=0.4)
    other = FoldResult("real:fs2", ["train/anger/fs2-a.wav", "train/anger/fs2-b.wav"], windows=4, hits=4,
                       heard={"ANGER": 4}, arousal=0.6)
    text = format_cross_validation(CrossValidation([LabelResult("anger", ("ANGER",), [boo, other])], matches=40,
                                                   recordings=30, seconds=12.0))
    assert "anger: heard as ANGER in 6 of 10 windows, 1 of 2 recordings mostly" in text
    rows = [line.split()[:5] for line in text.splitlines()]
    assert ["heldout/anger/fs1-boo.wav", "6", "2", "CALM", "0.40"] in rows
    assert "train/anger/fs2-a.wav (+1)" in text


def test_crossval_refuses_an_unknown_label_in_one_line():
    result = run_cli("model", "crossval", "boos", "--matches", "0")
    assert result.returncode == 1 and "not a label: boos" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
