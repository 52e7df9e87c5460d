"""/metrics and /healthz: bound where asked, no thread held by a silent client, health that means work gets done."""

from __future__ import annotations

import socket
import threading
import time
import urllib.error
import urllib.request

import pytest

import infra.metrics as metrics
from infra.metrics import Liveness, serve_metrics
from tests.kafka_helpers import free_port


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_liveness_fails_only_when_waiting_work_makes_no_progress():
    clock = Clock()
    liveness = Liveness(10, clock=clock)
    clock.now = 500  # a long idle spell is not a stall
    assert liveness.healthy()
    liveness.busy(True)  # work appears: the stall clock starts now
    clock.now = 509
    assert liveness.healthy()
    liveness.progressed()
    clock.now = 518
    assert liveness.healthy()
    clock.now = 520  # 11 s with work and no progress
    assert not liveness.healthy() and liveness.stalled_for() == 11
    liveness.busy(False)  # the work went away (e.g. partitions revoked)
    assert liveness.healthy()


def _status(port: int, path: str = "/healthz") -> int:
    try:
        return urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5).status
    except urllib.error.HTTPError as error:
        return error.code


def test_the_endpoint_binds_to_loopback_by_default_and_drops_silent_clients(monkeypatch):
    monkeypatch.setattr(metrics, "REQUEST_TIMEOUT_S", 0.5)
    healthy = [True]
    server = serve_metrics(free_port(), healthy=lambda: healthy[0])
    try:
        host, port = server.server_address
        assert host == "127.0.0.1"
        assert _status(port) == 200 and _status(port, "/metrics") == 200
        healthy[0] = False
        assert _status(port) == 503
        with socket.create_connection(("127.0.0.1", port)) as silent:  # sends nothing
            silent.settimeout(5)
            started = time.monotonic()
            assert silent.recv(1) == b""  # the server hung up on it
            assert time.monotonic() - started < 3
    finally:
        server.shutdown()


def test_the_metrics_host_option_reaches_every_long_running_command():
    from infra.cli import build_parser

    parser = build_parser()
    for argv in (["worker"], ["composer"], ["encoder", "--match", "m", "--source", "-"],
                 ["stadium", "--script", "x.toml"]):
        args = parser.parse_args([*argv, "--metrics-host", "0.0.0.0", "--metrics-port", "9400"])
        assert (args.metrics_host, args.metrics_port) == ("0.0.0.0", 9400), argv


@pytest.mark.kafka
def test_the_composer_is_unhealthy_while_its_loop_is_stuck_in_a_batch(topics, monkeypatch):
    """/healthz answers 503 while a batch takes longer than the stall limit, and 200 again after."""
    from confluent_kafka import Producer

    import consumers.composer as composer_module
    from consumers.composer_config import ComposerConfig
    from consumers.score import MatchScore
    from schemas.codec import encode
    from tests.music_samples import Spell, emotion_windows

    settings = topics.with_overrides(health_stall_s=2)
    composer_module._ensure_state_topic(settings)
    composer = composer_module.Composer(settings, ComposerConfig(outputs=("control",), instance="health"))
    server = serve_metrics(free_port(), healthy=lambda: composer.healthy and composer.liveness.healthy())
    port = server.server_address[1]
    stuck = threading.Event()
    release = threading.Event()
    original = MatchScore.on_window

    def slow_window(self, window):
        if window["clock"]["ms"] == 5000:
            stuck.set()
            release.wait(30)
        return original(self, window)

    monkeypatch.setattr(MatchScore, "on_window", slow_window)
    loop = threading.Thread(target=composer.run, daemon=True)
    loop.start()
    try:
        deadline = time.monotonic() + 30
        while _status(port) != 200 and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(3)  # idle longer than the stall limit: still healthy
        assert _status(port) == 200
        producer = Producer({"bootstrap.servers": settings.bootstrap_servers})
        for window in emotion_windows("m-health", [Spell(0, 8, "CALM", 0.2, 0.0)]):
            producer.produce(settings.topic("crowd.emotions.v1"), key=b"m-health",
                             value=encode("EmotionWindow", window))
        producer.flush(10)
        assert stuck.wait(30)
        deadline = time.monotonic() + 10
        while _status(port) == 200 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _status(port) == 503
        release.set()
        deadline = time.monotonic() + 30
        while _status(port) != 200 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _status(port) == 200
    finally:
        release.set()
        composer.running = False
        loop.join(30)
        composer.close()
        server.shutdown()
