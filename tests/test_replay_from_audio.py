"""``replay --from-audio`` agrees with the live pipeline: same final emotion windows."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pyloudnorm
import pytest
import soundfile

from consumers.replay.emotions import final_windows, recompute_windows
from consumers.replay.reader import PartitionReader
from schemas.codec import decode, encode
from tests.conftest import run_cli
from tests.kafka_helpers import cli_env

pytestmark = pytest.mark.kafka

SCRIPT = """
[match]
id = "from-audio"
home = "Home FC"
away = "Away FC"
seed = 5
feed_delay = "0:02"
[periods]
pre_match = "0:04"
first_half = "0:50"
[[moments]]
at = "0:12"
kind = "chant"
side = "home"
tempo = 110
duration = "0:10"
[[moments]]
at = "0:30"
kind = "goal"
side = "home"
[[moments]]
at = "0:42"
kind = "card"
side = "away"
"""
MATCH = "m-from-audio"


def _comparable(window: dict) -> dict:
    # Through the codec (float32), without the times of emission, which differ by nature.
    window = decode(encode("EmotionWindow", window), expect="EmotionWindow")
    return {k: v for k, v in window.items() if k not in ("wall_time_ms", "revision")}


def test_from_audio_gives_the_live_final_windows(topics, tmp_path):
    settings = topics
    env = cli_env(settings, CROWDSOUND_LOG_LEVEL="WARNING")
    with open(tmp_path / "worker.log", "w") as log:
        worker = subprocess.Popen([sys.executable, "-m", "infra.cli", "worker"], cwd=tmp_path, env=env, stdout=log,
                                  stderr=subprocess.STDOUT, start_new_session=True)
        try:
            (tmp_path / "match.toml").write_text(SCRIPT)
            streamed = run_cli("stadium", "--script", str(tmp_path / "match.toml"), "--match", MATCH, "--fast",
                               "--quiet", "--spool-dir", str(tmp_path / "spool"), settings=settings)
            assert streamed.returncode == 0, streamed.stderr
            live = []
            deadline = time.monotonic() + 180
            while time.monotonic() < deadline:
                reader = PartitionReader(settings, MATCH)
                try:
                    live = final_windows(reader.read("crowd.emotions.v1", "EmotionWindow"))
                finally:
                    reader.close()
                if len([w for w in live if w["clock"]["period"] == "FIRST_HALF"]) >= 46:
                    break
                time.sleep(2)
            time.sleep(3)  # revisions from late-arriving events within grace
        finally:
            os.killpg(worker.pid, signal.SIGTERM)
            worker.wait(timeout=60)
    reader = PartitionReader(settings, MATCH)
    try:
        live = final_windows(reader.read("crowd.emotions.v1", "EmotionWindow"))
        events = list(reader.read("match.events.v1", "MatchEvent"))
        late = {e["event_id"] for e in reader.read("match.events.late.v1", "MatchEvent")}
        recomputed = recompute_windows(settings, MATCH, reader.read("crowd.audio.v1", "AudioFrame"), events,
                                       late_event_ids=late)
    finally:
        reader.close()
    assert len(live) >= 46, (tmp_path / "worker.log").read_text()[-2000:]
    assert any(w["state"] == "CELEBRATION" for w in live)
    assert [_comparable(w) for w in recomputed] == [_comparable(w) for w in live]

    # And the command line takes that path: same highlights either way.
    runs = []
    for flag in ((), ("--from-audio",)):
        result = run_cli("replay", "--match", MATCH, "--out", str(tmp_path / f"out{len(runs)}"), "--auto", "2",
                         "--json", "--quiet", *flag, settings=settings, timeout=300)
        assert result.returncode == 0, result.stderr
        runs.append(json.loads(result.stdout))
    assert runs[1]["emotions_from"].startswith("crowd.audio.v1")
    assert [c["reason"] for c in runs[0]["clips"]] == [c["reason"] for c in runs[1]["clips"]]
    assert any("goal home" in c["reason"] for c in runs[0]["clips"])


def test_mix_crowd_lays_the_crowd_under_the_music(topics, tmp_path):
    """The same clip with and without --mix-crowd: the mix is the music plus the match's crowd
    about 8 LU under it, still at broadcast level."""
    settings = topics
    match = "m-mix-crowd"
    (tmp_path / "match.toml").write_text(SCRIPT)
    streamed = run_cli("stadium", "--script", str(tmp_path / "match.toml"), "--match", match, "--fast",
                       "--quiet", "--spool-dir", str(tmp_path / "spool"), settings=settings)
    assert streamed.returncode == 0, streamed.stderr
    clips = {}
    for name, flags in (("music", ()), ("mixed", ("--mix-crowd",))):
        result = run_cli("replay", "--match", match, "--out", str(tmp_path / name), "--range", "0:25-0:40",
                         "--from-audio", "--json", "--quiet", *flags, settings=settings, timeout=300)
        assert result.returncode == 0, result.stderr
        clip = json.loads(result.stdout)["clips"][0]
        clips[name], rate = soundfile.read(tmp_path / name / f"{clip['name']}.wav")
    music, mixed = clips["music"], clips["mixed"]
    assert music.shape == mixed.shape
    meter = pyloudnorm.Meter(rate)
    assert -24 <= meter.integrated_loudness(mixed) <= -22
    # What is left of the mix once the music (at its gain in the mix) is taken out: the crowd.
    gain = float(np.sum(mixed * music) / np.sum(music * music))
    crowd = mixed - gain * music
    crowd_lufs = meter.integrated_loudness(crowd)
    assert -35 <= crowd_lufs <= -27, crowd_lufs  # 8 LU under the music, give or take the mastering
    # Broadband noise, not a leftover of the music: little of it correlates with the score.
    assert abs(np.corrcoef(crowd.ravel(), music.ravel())[0, 1]) < 0.1
