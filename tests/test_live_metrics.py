"""A running worker and composer expose the documented series on /metrics (real broker)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import run_cli
from tests.kafka_helpers import cli_env, free_port
from tests.test_deploy import _documented_metric_names, _metric_definitions

pytestmark = pytest.mark.kafka

SCRIPT = """
[match]
id = "metrics"
home = "Home FC"
away = "Away FC"
seed = 3
feed_delay = "0:02"
[periods]
pre_match = "0:03"
first_half = "0:40"
[[moments]]
at = "0:15"
kind = "goal"
side = "home"
"""
# Series that must carry samples once a match has gone through (the rest must at least be
# declared: labelled series appear only once something is counted for a label).
MUST_HAVE_SAMPLES = {
    "worker": {"crowdsound_stream_windows_total"},
    "composer": {"crowdsound_composer_windows_total", "crowdsound_composer_controls_total",
                 "crowdsound_composer_audio_seconds_total", "crowdsound_composer_tempo_bpm",
                 "crowdsound_composer_intensity", "crowdsound_composer_emotion_to_output_seconds"},
}


def _scrape(port: int) -> dict[str, list]:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    return {family.name: family.samples for family in text_string_to_metric_families(text)}


def test_a_running_worker_and_composer_expose_the_documented_series(topics, tmp_path):
    settings = topics
    env = cli_env(settings, CROWDSOUND_LOG_LEVEL="WARNING")
    ports = {"worker": free_port(), "composer": free_port()}
    commands = {"worker": ["worker", "--metrics-port", str(ports["worker"])],
                "composer": ["composer", "--instance", "metrics", "--metrics-port", str(ports["composer"])]}
    processes = {}
    try:
        for name, args in commands.items():
            log = open(tmp_path / f"{name}.log", "w")  # noqa: SIM115 - closed with the process
            processes[name] = subprocess.Popen([sys.executable, "-m", "infra.cli", *args], cwd=tmp_path, env=env,
                                               stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        (tmp_path / "match.toml").write_text(SCRIPT)
        streamed = run_cli("stadium", "--script", str(tmp_path / "match.toml"), "--match", "m-metrics", "--fast",
                           "--quiet", "--spool-dir", str(tmp_path / "spool"), settings=settings)
        assert streamed.returncode == 0, streamed.stderr
        scraped: dict[str, dict[str, list]] = {}
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            scraped = {name: _scrape(port) for name, port in ports.items()}
            if all(scraped[n].get(m.removesuffix("_total")) for n, series in MUST_HAVE_SAMPLES.items() for m in series):
                break
            time.sleep(2)
        for name, port in ports.items():
            assert urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=10).status == 200, name
    finally:
        for process in processes.values():
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
                process.wait(timeout=60)

    definitions = _metric_definitions()
    documented = set(_documented_metric_names())
    owners = {"worker": "streams.", "composer": "consumers.composer"}
    for name, prefix in owners.items():
        expected = {metric for metric, (_, _, module) in definitions.items()
                    if module.startswith(prefix) and metric in documented}
        assert expected, f"no documented metric is defined by {prefix}*"
        families = scraped[name]
        missing = sorted(m for m in expected if m.removesuffix("_total") not in families)
        assert not missing, f"the {name}'s /metrics lacks documented series {missing}"
        empty = sorted(m for m in MUST_HAVE_SAMPLES[name] if not families.get(m.removesuffix("_total")))
        assert not empty, f"the {name} exposes no samples for {empty}; logs: {(tmp_path / f'{name}.log').read_text()[-1500:]}"
