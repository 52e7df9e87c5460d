"""``crowdsound analyze FILE``: the emotion of a recording, window by window, as a user runs it."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile

from producers.stadium import render_stadium
from producers.stadium.script import parse_script
from streams.emotion import STATES
from tests.conftest import REPO, run_cli

SCRIPT = """
[match]
id = "analyze-cli"
home = "Leeds"
away = "Hull"
seed = 31337
home_share = 0.75

[periods]
first_half = "0:30"

[[moments]]
at = "0:14"
kind = "goal"
side = "home"
"""


@pytest.fixture(scope="module")
def recording(tmp_path_factory) -> Path:
    """30 s of stadium with a goal, as a 44.1 kHz stereo WAV (so analyze must mix and resample)."""
    import soxr

    script = parse_script(SCRIPT, name="analyze.toml")
    audio = np.concatenate(list(render_stadium(script, channels=2, block_ms=1000)))
    audio = soxr.resample(audio, 48_000, 44_100)
    path = tmp_path_factory.mktemp("audio") / "goal.wav"
    soundfile.write(str(path), audio, 44_100, subtype="PCM_16")
    return path


def test_analyze_prints_one_line_per_window_with_time_state_arousal_valence(recording):
    result = run_cli("analyze", str(recording))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 30  # 1 s hop over 30 s; the last windows are closed with the audio there is
    assert lines[0].split()[:2] == ["PRE", "0:00"]
    for line in lines:
        assert any(f" {state} " in line for state in STATES), line
        assert "arousal" in line and "valence" in line and "loudness" in line
    assert "windows" in result.stderr and "model crowd-emotion-" in result.stderr


def test_analyze_json_lines_parse_and_hear_the_goal(recording):
    result = run_cli("analyze", str(recording), "--json", "--start", "23:10")
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(records) == 30
    assert records[0]["clock"] == "23:10" and records[0]["period"] == "FIRST_HALF" and records[0]["ms"] == 1_390_000
    assert records[1]["ms"] - records[0]["ms"] == 1000
    for record in records:
        assert record["state"] in STATES
        assert sum(record["probabilities"].values()) == pytest.approx(1.0, abs=1e-3)
        assert 0 <= record["arousal"] <= 1 and -1 <= record["valence"] <= 1
        assert record["model_version"].startswith("crowd-emotion-")
    before = [r for r in records[3:10]]
    roar = [r for r in records[14:18]]
    assert np.mean([r["arousal"] for r in roar]) > np.mean([r["arousal"] for r in before]) + 0.3
    assert max(r["loudness_rel_db"] for r in roar) > 8
    assert {"CELEBRATION", "EXCITEMENT"} & {r["state"] for r in roar}


def test_analyze_with_another_window_geometry(recording):
    result = run_cli("analyze", str(recording), "--json", "--hop", "500", "--length", "2000")
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(records) == 60 and {r["length_ms"] for r in records} == {2000}
    bad = run_cli("analyze", str(recording), "--hop", "1000", "--length", "2500")
    assert bad.returncode == 1 and len(bad.stderr.strip().splitlines()) == 1 and "2500" in bad.stderr


@pytest.mark.parametrize("content", [b"", b"RIFF\x00\x00\x00\x00WAVEjunk", b"not audio at all\n" * 100])
def test_a_bad_file_is_one_line_and_exit_1(tmp_path, content):
    path = tmp_path / "broken.wav"
    path.write_bytes(content)
    result = run_cli("analyze", str(path))
    assert result.returncode == 1
    assert result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1 and "broken.wav" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


def test_a_missing_file_or_bad_start_is_one_line_and_exit_1(tmp_path):
    missing = run_cli("analyze", str(tmp_path / "nowhere.flac"))
    assert missing.returncode == 1 and "nowhere.flac" in missing.stderr
    assert len(missing.stderr.strip().splitlines()) == 1
    bad_start = run_cli("analyze", str(tmp_path / "nowhere.flac"), "--start", "soon")
    assert bad_start.returncode == 1 and "soon" in bad_start.stderr


def test_help_explains_model_and_analyze_and_the_cli_stays_light():
    for args in (("--help",), ("model", "--help"), ("model", "train", "--help"), ("analyze", "--help")):
        result = run_cli(*args)
        assert result.returncode == 0 and len(result.stdout.splitlines()) > 5, args
    assert "analyze" in run_cli("--help").stdout
    assert "--clips" in run_cli("model", "train", "--help").stdout
    probe = ("import sys, infra.cli; infra.cli.build_parser(); "
             "print(sorted(m for m in ('onnxruntime', 'soundfile', 'streams.training', 'streams.emotion') "
             "if m in sys.modules))")
    import subprocess

    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=REPO, check=True)
    assert out.stdout.strip() == "[]"


def test_model_info_says_what_the_model_was_trained_on_how_it_did_and_where_it_is_weak():
    result = run_cli("model", "info")
    assert result.returncode == 0, result.stderr
    info = dict(line.split(": ", 1) for line in result.stdout.splitlines() if ": " in line)
    assert info["version"].startswith("crowd-emotion-") and len(info["data sha256"]) == 64
    assert "real recordings" in info["trained on"] and "synthetic matches" in info["trained on"]
    assert "held-out real recordings (data/real-crowd/heldout)" in info["evaluated on"]
    assert str(REPO) not in info["trained on"] + info["evaluated on"]  # the shipped model names no machine
    assert "MODEL_CARD.md" in info["weak on"]
