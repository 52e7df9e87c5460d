"""The venue encoder against the real broker: files, stdin, FLAC, the clock, and the spool."""

from __future__ import annotations

import subprocess
import sys
import time

import numpy as np
import pytest
import soundfile
from confluent_kafka import TIMESTAMP_LOG_APPEND_TIME

from schemas.audio import decode_payload
from schemas.codec import decode
from tests.conftest import REPO, run_cli
from tests.kafka_helpers import cli_env, free_port, read_topic

pytestmark = pytest.mark.kafka


def _frames(settings, expected, timeout_s=30.0):
    messages = read_topic(settings, settings.topic("crowd.audio.v1"), expected=expected, timeout_s=timeout_s)
    return [decode(m.value(), expect="AudioFrame") for m in messages], messages


def _tone(seconds: float, rate: int, channels: int = 1) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    mono = 0.3 * np.sin(2 * np.pi * 440 * t) + 0.05 * np.random.default_rng(1).standard_normal(len(t))
    return np.repeat(mono[:, None], channels, axis=1).astype(np.float32)


def test_a_wav_becomes_frames_that_end_on_whole_seconds_with_contiguous_seq_and_the_right_clock(topics, tmp_path):
    wav = tmp_path / "crowd.wav"
    soundfile.write(wav, _tone(2.35, 44_100, channels=2), 44_100)  # stereo 44.1 kHz, resampled to 48 kHz mono
    result = run_cli("encoder", "--match", "m-wav", "--source", str(wav), "--start", "23:10.4", "--fast",
                     "--spool-dir", str(tmp_path / "spool"), settings=topics)
    assert result.returncode == 0, result.stderr
    frames, messages = _frames(topics, expected=3)
    # The first frame is cut short so that the next ones start on whole seconds of the match
    # clock, where the worker's windows end; the last holds the rest. No sample lost or added.
    assert [f["samples_per_channel"] for f in frames] == [28_800, 48_000, 36_000]  # 0.6 s + 1 s + 0.75 s
    assert [f["seq"] for f in frames] == list(range(3))
    assert {(f["sample_rate"], f["channels"]) for f in frames} == {(48_000, 1)}
    assert [f["clock"] for f in frames] == [{"period": "FIRST_HALF", "ms": ms} for ms in (1_390_400, 1_391_000, 1_392_000)]
    # Capture wall times follow the audio and are never in the future; the record time is the
    # broker's (LogAppendTime: venue clocks may be off), never before the capture.
    walls = [f["wall_time_ms"] for f in frames]
    assert np.diff(walls).tolist() == [600, 1000] and walls[-1] <= time.time() * 1000
    stamps = [m.timestamp() for m in messages]
    assert all(kind == TIMESTAMP_LOG_APPEND_TIME and stamp >= wall for (kind, stamp), wall in zip(stamps, walls))
    assert len({m.partition() for m in messages}) == 1


def test_short_frames_are_cut_on_their_own_grid(topics, tmp_path):
    wav = tmp_path / "crowd.wav"
    soundfile.write(wav, _tone(0.5, 48_000), 48_000)
    result = run_cli("encoder", "--match", "m-short", "--source", str(wav), "--start", "23:10.05", "--fast",
                     "--frame-ms", "100", "--spool-dir", str(tmp_path / "spool"), settings=topics)
    assert result.returncode == 0, result.stderr
    frames, _ = _frames(topics, expected=6)
    assert [f["samples_per_channel"] for f in frames] == [2400, 4800, 4800, 4800, 4800, 2400]
    assert [f["clock"]["ms"] % 100 for f in frames] == [50, 0, 0, 0, 0, 0]


def test_stdin_pcm_is_sent_sample_for_sample(topics, tmp_path):
    samples = (np.arange(48_000 * 2 // 2) % 2000 - 1000).astype("<i2").reshape(-1, 2)  # 0.5 s stereo
    process = subprocess.run(
        [sys.executable, "-m", "infra.cli", "encoder", "--match", "m-stdin", "--source", "-", "--channels", "2",
         "--kickoff", "now", "--frame-ms", "100", "--spool-dir", str(tmp_path / "spool"), "--quiet"],
        input=samples.tobytes(), capture_output=True, timeout=60, cwd=REPO,
        env=cli_env(topics),
    )
    assert process.returncode == 0, process.stderr.decode()
    frames, _ = _frames(topics, expected=5)  # 6 when the clock "now" is off the 100 ms grid (a short first frame)
    assert len(frames) in (5, 6) and [f["seq"] for f in frames] == list(range(len(frames)))
    received = np.concatenate([decode_payload(f["payload"], encoding=f["encoding"], channels=2, sample_rate=48_000)
                               for f in frames])
    assert np.array_equal(received, samples)
    assert all(f["clock"]["period"] == "FIRST_HALF" for f in frames)  # kicked off "now"


def test_flac_payloads_decode_back_to_the_same_samples_and_are_smaller(topics, tmp_path):
    pcm = (_tone(1.0, 48_000)[:, 0] * 32767).astype(np.int16)
    wav = tmp_path / "tone.wav"
    soundfile.write(wav, pcm, 48_000, subtype="PCM_16")
    result = run_cli("encoder", "--match", "m-flac", "--source", str(wav), "--start", "HT 1:00", "--fast",
                     "--encoding", "flac", "--spool-dir", str(tmp_path / "spool"), settings=topics)
    assert result.returncode == 0, result.stderr
    frames, _ = _frames(topics, expected=1)  # one second: one frame
    assert len(frames) == 1 and {f["encoding"] for f in frames} == {"FLAC"}
    decoded = np.concatenate([decode_payload(f["payload"], encoding="FLAC", channels=1, sample_rate=48_000)
                              for f in frames])[:, 0]
    assert np.array_equal(decoded, pcm)
    assert sum(len(f["payload"]) for f in frames) < pcm.nbytes
    assert frames[0]["clock"] == {"period": "HALF_TIME", "ms": 60_000}


def test_stopping_and_restarting_the_broker_mid_stream_loses_and_duplicates_no_frame(kafka, topics, tmp_path):
    if not kafka.owned:
        pytest.skip("the tests use an external cluster they must not restart")
    wav = tmp_path / "long.wav"
    soundfile.write(wav, _tone(14.0, 48_000), 48_000)
    env = cli_env(topics)
    encoder = subprocess.Popen(  # live pacing: 14 s of audio take 14 s
        [sys.executable, "-m", "infra.cli", "encoder", "--match", "m-outage", "--source", str(wav),
         "--start", "10:00", "--frame-ms", "100", "--spool-dir", str(tmp_path / "spool"), "--quiet",
         "--drain-timeout", "90"],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    time.sleep(3)
    from infra.broker import broker_down, broker_up

    broker_down(kafka.settings)
    time.sleep(4)  # frames keep coming and wait in the spool
    broker_up(kafka.settings)
    out, err = encoder.communicate(timeout=150)
    assert encoder.returncode == 0, err
    frames, _ = _frames(topics, expected=140, timeout_s=60)
    assert sorted(f["seq"] for f in frames) == list(range(140))  # none lost, none twice
    assert [f["seq"] for f in frames] == list(range(140))  # and in order
    assert not list((tmp_path / "spool").glob("*.seg"))


def test_with_the_broker_unreachable_a_full_spool_says_so_and_the_next_run_sends_what_it_kept(topics, tmp_path):
    wav = tmp_path / "crowd.wav"
    soundfile.write(wav, _tone(30.0, 48_000), 48_000)  # 300 frames, ~2.9 MB as PCM
    spool = tmp_path / "spool"
    offline = run_cli("encoder", "--match", "m-spool", "--source", str(wav), "--start", "0:00", "--fast", "--frame-ms", "100",
                      "--spool-dir", str(spool), "--spool-max-mb", "1", "--drain-timeout", "2", "--quiet",
                      env={"KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1", "CROWDSOUND_TOPIC_PREFIX": topics.topic_prefix})
    assert offline.returncode == 1
    assert "SPOOL FULL" in offline.stderr and "DROPPED" in offline.stderr
    kept = int(offline.stdout.split("left in spool ")[1].split()[0])
    assert 50 < kept < 300

    # The next run (broker back) first sends what the spool kept, then its own frames.
    wav_short = tmp_path / "short.wav"
    soundfile.write(wav_short, _tone(1.0, 48_000), 48_000)
    online = run_cli("encoder", "--match", "m-spool", "--source", str(wav_short), "--start", "1:00", "--fast", "--frame-ms", "100",
                     "--spool-dir", str(spool), "--quiet", settings=topics)
    assert online.returncode == 0, online.stderr
    frames, _ = _frames(topics, expected=kept + 10)
    assert len(frames) == kept + 10
    first_session = [f for f in frames if f["clock"]["ms"] < 60_000]
    assert [f["seq"] for f in first_session] == list(range(kept))


@pytest.mark.parametrize(("source", "message"), [
    ("missing.wav", "does not exist"),
    ("not_audio.wav", "cannot read"),
])
def test_unreadable_or_unsupported_files_are_one_line_errors(tmp_path, source, message):
    (tmp_path / "not_audio.wav").write_text("this is not audio")
    result = run_cli("encoder", "--match", "m", "--source", str(tmp_path / source), "--start", "0:00", "--fast",
                     "--spool-dir", str(tmp_path / "spool"), env={"KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1"})
    assert result.returncode == 1
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_fast_without_a_clock_and_bad_frame_lengths_are_refused(tmp_path):
    wav = tmp_path / "t.wav"
    soundfile.write(wav, _tone(0.2, 48_000), 48_000)
    no_clock = run_cli("encoder", "--match", "m", "--source", str(wav), "--fast", env={"KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1"})
    assert no_clock.returncode == 1 and "--start" in no_clock.stderr
    odd = run_cli("encoder", "--match", "m", "--source", str(wav), "--fast", "--start", "0:00", "--rate", "44100",
                  "--frame-ms", "33", env={"KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1"})
    assert odd.returncode == 1 and "whole number of samples" in odd.stderr


def test_without_kickoff_or_start_the_clock_follows_the_matchs_period_events(topics, tmp_path):
    kickoff = run_cli("event", "--match", "m-follow", "kickoff", "--at", "0:00", settings=topics)
    assert kickoff.returncode == 0, kickoff.stderr
    env = cli_env(topics)
    samples = np.zeros((4800 * 3, 1), dtype="<i2")
    for match_id in ("m-follow", "m-not-started"):
        process = subprocess.run(
            [sys.executable, "-m", "infra.cli", "encoder", "--match", match_id, "--source", "-", "--quiet",
             "--spool-dir", str(tmp_path / match_id)],
            input=samples.tobytes(), capture_output=True, timeout=60, cwd=REPO, env=env,
        )
        assert process.returncode == 0, process.stderr.decode()
    frames, _ = _frames(topics, expected=2)  # 0.3 s each: one frame, or two when cut at a whole second
    periods = {(f["match_id"], f["clock"]["period"]) for f in frames}
    assert periods == {("m-follow", "FIRST_HALF"), ("m-not-started", "PRE_MATCH")}
    followed = [f for f in frames if f["match_id"] == "m-follow"]
    assert 0 <= followed[0]["clock"]["ms"] < 60_000  # kicked off moments ago


def test_a_live_encoder_exposes_its_metrics_and_health(topics, tmp_path):
    import urllib.request

    port = free_port()
    wav = tmp_path / "live.wav"
    soundfile.write(wav, _tone(4.0, 48_000), 48_000)
    env = cli_env(topics)
    encoder = subprocess.Popen(
        [sys.executable, "-m", "infra.cli", "encoder", "--match", "m-metrics", "--source", str(wav), "--start", "0:00",
         "--frame-ms", "100", "--spool-dir", str(tmp_path / "spool"), "--quiet", "--metrics-port", str(port)],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        metrics = ""
        deadline = time.time() + 20
        while time.time() < deadline and "crowdsound_encoder_frames_total 1" not in metrics.replace(".0", ""):
            time.sleep(0.5)
            try:
                metrics = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read().decode()
                health = urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2).status
            except OSError:
                continue
        values = {line.split()[0]: float(line.split()[1]) for line in metrics.splitlines()
                  if line.startswith("crowdsound_encoder") and " " in line}
        assert values["crowdsound_encoder_frames_total"] >= 10
        assert values["crowdsound_encoder_bytes_total"] >= 10 * 9600
        assert "crowdsound_encoder_spool_frames" in values
        assert values["crowdsound_encoder_send_latency_seconds_count"] >= 10
        assert health == 200
    finally:
        encoder.communicate(timeout=60)
    assert encoder.returncode == 0
