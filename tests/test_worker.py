"""The stream worker on the real broker: the synthetic stadium in, crowd emotions out;
a SIGKILLed worker and a second worker joining leave the final windows unchanged."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from schemas.codec import decode
from tests.conftest import run_cli
from tests.kafka_helpers import cli_env, read_topic

pytestmark = pytest.mark.kafka

SCRIPT = """
[match]
id = "worker-test"
home = "Home FC"
away = "Away FC"
seed = 11
home_share = 0.8
feed_delay = "0:03"
[periods]
pre_match = "0:05"
first_half = "1:40"
[[moments]]
at = "0:20"
kind = "chant"
side = "home"
tempo = 120
duration = "0:15"
[[moments]]
at = "0:50"
kind = "goal"
side = "home"
[[moments]]
at = "1:15"
kind = "card"
side = "home"
outcome = "red"
"""


def _env(settings) -> dict[str, str]:
    return cli_env(settings, CROWDSOUND_LOG_LEVEL="WARNING")


def _start_worker(settings, tmp_path, name: str) -> subprocess.Popen:
    log = open(tmp_path / f"{name}.log", "w")  # noqa: SIM115 - closed with the process
    return subprocess.Popen([sys.executable, "-m", "infra.cli", "worker"], cwd=tmp_path, env=_env(settings),
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def _stop(process: subprocess.Popen, sig: int = signal.SIGTERM) -> None:
    if process.poll() is None:
        os.killpg(process.pid, sig)
        process.wait(timeout=60)


def _final_windows(settings, expected: int, timeout_s: float = 120) -> dict:
    messages = read_topic(settings, settings.topic("crowd.emotions.v1"), expected=expected, timeout_s=timeout_s)
    best: dict = {}
    for message in messages:
        window = decode(message.value(), expect="EmotionWindow")
        key = (window["clock"]["period"], window["clock"]["ms"])
        if key not in best or window["revision"] > best[key]["revision"]:
            best[key] = window
    return best


def _stadium(settings, tmp_path, script: str = SCRIPT) -> None:
    path = tmp_path / "match.toml"
    path.write_text(script)
    result = run_cli("stadium", "--script", str(path), "--match", "m-live", "--fast", "--quiet",
                     "--spool-dir", str(tmp_path / "spool"), settings=settings)
    assert result.returncode == 0, result.stderr


def test_goal_card_chant_and_quiet_are_heard_as_such(topics, tmp_path):
    worker = _start_worker(topics, tmp_path, "w1")
    try:
        _stadium(topics, tmp_path)
        windows = _final_windows(topics, expected=100)
    finally:
        _stop(worker)
    first_half = {ms: w for (period, ms), w in windows.items() if period == "FIRST_HALF"}
    assert len(first_half) >= 95, (tmp_path / "w1.log").read_text()[-2000:]
    after_goal = [first_half[ms] for ms in range(50_000, 56_000, 1000) if ms in first_half]
    assert any(w["state"] == "CELEBRATION" for w in after_goal)
    assert max(w["arousal"] for w in after_goal) > 0.7 and max(w["valence"] for w in after_goal) > 0.3
    assert any(e["type"] == "GOAL" and e["side"] == "HOME" for w in after_goal for e in w["events"])
    murmur = [first_half[ms] for ms in range(7_000, 17_000, 1000) if ms in first_half]  # after the kick-off roar
    assert max(w["arousal"] for w in murmur) < min(w["arousal"] for w in after_goal[:3])
    assert sum(w["state"] == "CALM" for w in murmur) >= len(murmur) - 2  # quiet spells are calm
    after_card = [first_half[ms] for ms in range(75_000, 85_000, 1000) if ms in first_half]
    assert sum(w["state"] == "ANGER" for w in after_card) >= 3, [w["state"] for w in after_card]
    assert min(w["valence"] for w in after_card) < -0.3
    chant = [first_half[ms] for ms in range(26_000, 33_000, 1000) if ms in first_half]
    tempos = [w["tempo_bpm"] for w in chant if w["tempo_bpm"]]
    assert tempos and abs(sorted(tempos)[len(tempos) // 2] - 120) < 6
    delays = [w["wall_time_ms"] - w["audio_wall_time_ms"] for w in first_half.values() if w["revision"] == 0]
    assert delays  # the worker reports when it emitted each window relative to its audio


def test_a_killed_worker_and_a_second_worker_leave_the_final_windows_unchanged(topics, tmp_path):
    # Reference: one worker, undisturbed, on its own copy of the topics.
    from infra.clients import make_admin
    from infra.topics import apply_catalogue

    reference_settings = topics.with_overrides(topic_prefix=topics.topic_prefix + "ref.")
    apply_catalogue(make_admin(reference_settings), reference_settings)
    worker = _start_worker(reference_settings, tmp_path, "ref")
    try:
        _stadium(reference_settings, tmp_path)
        reference = _final_windows(reference_settings, expected=100)
    finally:
        _stop(worker)

    first = _start_worker(topics, tmp_path, "a")
    _stadium(topics, tmp_path)
    time.sleep(6)
    _stop(first, signal.SIGKILL)  # mid-stream, no chance to commit
    restarted = _start_worker(topics, tmp_path, "b")
    time.sleep(5)
    second = _start_worker(topics, tmp_path, "c")  # scale out: partitions move to it
    try:
        windows = _final_windows(topics, expected=len(reference) + 10, timeout_s=150)
    finally:
        _stop(restarted)
        _stop(second)
    assert set(windows) == set(reference)  # none missing, none extra
    strip = ("wall_time_ms", "revision", "audio_wall_time_ms")  # the two stadium runs differ in wall time only
    assert {k: {f: v for f, v in w.items() if f not in strip} for k, w in windows.items()} == \
        {k: {f: v for f, v in w.items() if f not in strip} for k, w in reference.items()}


def test_worker_processes_share_the_partitions_and_serve_one_metrics_page(topics, tmp_path):
    """`crowdsound worker --processes 2`: two workers of the group, each owning some of the
    matches' partitions, emit every match's windows; their metrics come on one port with a
    `process` label; SIGTERM stops them both cleanly."""
    import urllib.request

    import numpy as np

    from infra.clients import make_producer
    from infra.partitioning import partition_for
    from schemas.audio import encode_payload
    from schemas.codec import encode
    from tests.kafka_helpers import free_port

    # Matches on more than half of the partitions: neither worker can own them all.
    matches, seen = [], set()
    for n in range(1000):
        partition = partition_for(f"pm{n}", topics.partitions)
        if partition not in seen:
            seen.add(partition)
            matches.append(f"pm{n}")
        if len(matches) > topics.partitions // 2:
            break
    port = free_port()
    log = open(tmp_path / "processes.log", "w")  # noqa: SIM115 - closed with the process
    worker = subprocess.Popen([sys.executable, "-m", "infra.cli", "worker", "--processes", "2", "--metrics-port",
                               str(port)], cwd=tmp_path, env=_env(topics), stdout=log, stderr=subprocess.STDOUT,
                              start_new_session=True)
    try:
        # Both workers in the group, with partitions, before the frames go out (else the first
        # one up takes them all).
        from confluent_kafka import ConsumerGroupState

        from infra.clients import make_admin

        admin, group = make_admin(topics), f"{topics.topic_prefix}crowdsound-streams"
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            assert worker.poll() is None, (tmp_path / "processes.log").read_text()[-2000:]
            try:
                found = admin.describe_consumer_groups([group], request_timeout=10)[group].result(timeout=15)
            except Exception:  # noqa: BLE001 - the group does not exist yet
                found = None
            if found is not None and found.state == ConsumerGroupState.STABLE and sum(
                    1 for member in found.members if member.assignment.topic_partitions) == 2:
                break
            time.sleep(0.5)
        rng = np.random.default_rng(3)
        producer = make_producer(topics)
        wall = int(time.time() * 1000) - 10_000
        for seq in range(50):  # 5 s of audio per match: windows at 0, 1 and 2 s close
            for match in matches:
                pcm = (rng.standard_normal(4800) * 3000).astype(np.int16)
                producer.produce(topics.topic("crowd.audio.v1"), key=match.encode(), value=encode("AudioFrame", {
                    "match_id": match, "encoder_id": "test", "session_id": "test", "seq": seq,
                    "clock": {"period": "FIRST_HALF", "ms": seq * 100}, "wall_time_ms": wall + seq * 100,
                    "sample_rate": 48_000, "channels": 1, "samples_per_channel": 4800, "encoding": "PCM_S16LE",
                    "payload": encode_payload(pcm, encoding="PCM_S16LE", sample_rate=48_000)}))
        producer.flush(30)
        messages = read_topic(topics, topics.topic("crowd.emotions.v1"), expected=3 * len(matches), timeout_s=120)
        assert {decode(m.value(), expect="EmotionWindow")["match_id"] for m in messages} == set(matches)
        page = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
        counted = [line for line in page.splitlines() if line.startswith("crowdsound_stream_records_total{")]
        assert any('process="0"' in line for line in counted) and any('process="1"' in line for line in counted), \
            counted
        assert urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=10).status == 200
    finally:
        _stop(worker)
        log.close()
    assert worker.returncode == 0, (tmp_path / "processes.log").read_text()[-2000:]
