"""A whole match over SASL_SSL with the role principals gives what the plaintext run gives.

The same commands run twice, on the plaintext session broker and on the secure broker, each
process with its own role's properties file on the secure one: the match feed (feed), the venue
encoder (encoder), the Faust worker over SASL_SSL (worker), the composer (composer) and replay
(reader). The final emotion windows and the replayed music must be the same, and no process may
print a password.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from infra.settings import Settings
from tests.conftest import run_cli
from tests.kafka_helpers import cli_env

pytestmark = pytest.mark.kafka

SCRIPT = """
[match]
id = "secure"
home = "Home FC"
away = "Away FC"
seed = 11
feed_delay = "0:02"
[periods]
pre_match = "0:04"
first_half = "0:36"
[[moments]]
at = "0:10"
kind = "chant"
side = "home"
tempo = 112
duration = "0:08"
[[moments]]
at = "0:22"
kind = "goal"
side = "home"
"""
MATCH = "m-secure-match"


def _final_windows(reader: Settings) -> list[dict]:
    from consumers.replay.emotions import final_windows
    from consumers.replay.reader import PartitionReader

    partition = PartitionReader(reader, MATCH)
    try:
        return final_windows(partition.read("crowd.emotions.v1", "EmotionWindow"))
    finally:
        partition.close()


def _comparable(window: dict) -> tuple:
    return (window["clock"]["period"], window["clock"]["ms"], window["state"], round(window["arousal"], 5),
            round(window["valence"], 5), json.dumps(window["probabilities"], sort_keys=True),
            tuple(event["event_id"].rsplit("-", 1)[-1] for event in window["events"]))


def _start(role_settings: Settings, folder: Path, name: str, *args: str) -> subprocess.Popen:
    log = open(folder / f"{name}.log", "w")  # noqa: SIM115 - closed with the process
    return subprocess.Popen([sys.executable, "-m", "infra.cli", *args], cwd=folder, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True,
                            env=cli_env(role_settings, CROWDSOUND_LOG_LEVEL="INFO"))


def _stop(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(60)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _run_match(role: Callable[[str], Settings], folder: Path) -> tuple[list[tuple], int, dict[str, bytes]]:
    """Stream the match through the pipeline as ``role(name)``'s principals; return the final
    windows, the number of bars the live composer made, and the replay's music files."""
    from producers.stadium import load_script, script_events

    folder.mkdir()
    script_path = folder / "match.toml"
    script_path.write_text(SCRIPT)
    worker = _start(role("worker"), folder, "worker", "worker")
    composer = _start(role("composer"), folder, "composer", "composer", "--outputs", "control", "--instance", "t")
    try:
        # The feed first, all at once: the worker joins events that are already there.
        events = [{k: v for k, v in e.items() if k != "offset_ms"} | {"match_id": MATCH}
                  for e in script_events(load_script(script_path))]
        (folder / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
        fed = run_cli("feed", "--match", MATCH, "--source", str(folder / "events.jsonl"), "--fast", "--quiet",
                      settings=role("feed"))
        assert fed.returncode == 0, fed.stderr
        sent = run_cli("encoder", "--match", MATCH, "--source", f"stadium:{script_path}", "--fast",
                       "--spool-dir", str(folder / "spool"), settings=role("encoder"))
        assert sent.returncode == 0, sent.stderr
        windows: list[dict] = []
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            assert worker.poll() is None, (folder / "worker.log").read_text()[-2000:]
            windows = _final_windows(role("reader"))
            if any(w["clock"]["period"] == "FIRST_HALF" and w["clock"]["ms"] >= 33_000 for w in windows):
                break
            time.sleep(2)
        time.sleep(3)  # any revision still on its way
        windows = _final_windows(role("reader"))
        bars = 0
        while time.monotonic() < deadline and bars == 0:
            assert composer.poll() is None, (folder / "composer.log").read_text()[-2000:]
            tail = run_cli("tail", "music.control.v1", "--match", MATCH, "--from-beginning", "--timeout", "3",
                           "--json", settings=role("reader"))
            bars = sum('"kind":"BAR"' in line for line in tail.stdout.splitlines())
    finally:
        _stop(worker)
        _stop(composer)
    replayed = run_cli("replay", "--match", MATCH, "--out", str(folder / "out"), "--auto", "1",
                       settings=role("reader"), timeout=300)
    assert replayed.returncode == 0, replayed.stderr
    music = {path.name: path.read_bytes() for path in sorted((folder / "out").iterdir())
             if path.suffix in (".wav", ".mid")}
    return sorted(_comparable(w) for w in windows), bars, music


def test_a_match_over_sasl_ssl_with_role_principals_makes_the_same_music(topics, secure_roles, tmp_path):
    plain_windows, plain_bars, plain_music = _run_match(lambda role: topics, tmp_path / "plaintext")
    secure_windows, secure_bars, secure_music = _run_match(secure_roles.settings, tmp_path / "secure")

    assert len(plain_windows) >= 36
    assert secure_windows == plain_windows
    assert plain_bars > 0 and secure_bars > 0
    assert set(plain_music) == set(secure_music) and any(name.endswith(".wav") for name in plain_music)
    assert secure_music == plain_music
    # The worker really ran over SASL_SSL as its own principal.
    assert secure_roles.settings("worker").security_protocol == "SASL_SSL"
    # No password in any log or output of the secure run.
    passwords = [secure_roles.settings(role).sasl_password for role in ("worker", "composer", "encoder", "feed",
                                                                         "reader")]
    for log in (tmp_path / "secure").glob("*.log"):
        text = log.read_text()
        assert not [p for p in passwords if p and p in text], log.name
