"""Running a composer and a control room against the test broker, and talking to them as a user would."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from infra.clients import make_admin, make_producer, match_key
from infra.settings import Settings
from infra.topics import apply_catalogue
from schemas.codec import decode, encode
from tests.kafka_helpers import cli_env, free_port, read_topic

REPO = Path(__file__).resolve().parent.parent
TOKEN = "alice-token-0123456789"
BOB_TOKEN = "bob-token-0123456789"
ARTEFACTS = Path(os.environ.get("CROWDSOUND_TEST_ARTEFACTS", REPO / ".crowdsound" / "test-artefacts"))


def prefixed(settings: Settings) -> Settings:
    """``settings`` with a topic prefix of their own and the catalogue applied under it."""
    mine = settings.with_overrides(topic_prefix=f"t{uuid.uuid4().hex[:10]}.", partitions=12)
    apply_catalogue(make_admin(mine), mine)
    return mine


class Process:
    """A crowdsound subprocess with its log in ``log_dir``."""

    def __init__(self, settings: Settings, log_dir: Path, name: str, *args: str, **env: str) -> None:
        self.settings, self.log_dir, self.name, self.args, self.env = settings, log_dir, name, args, env
        self.log_path = log_dir / f"{name}.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.start()

    def start(self) -> None:
        log = open(self.log_path, "a")  # noqa: SIM115 - closed with the process
        self.process = subprocess.Popen([sys.executable, "-m", "infra.cli", *self.args], cwd=REPO,
                                        env=cli_env(self.settings, CROWDSOUND_LOG_LEVEL="INFO", **self.env),
                                        stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def stop(self, sig: int = signal.SIGTERM) -> int | None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, sig)
            self.process.wait(timeout=60)
        return None if self.process is None else self.process.returncode

    def log(self) -> str:
        return self.log_path.read_text() if self.log_path.exists() else ""


@dataclass
class Room:
    """A running control room (and composer) under one topic prefix."""

    settings: Settings
    url: str
    room: Process
    composer: Process | None

    def request(self, method: str, path: str, body: Any = None, *, token: str | None = TOKEN,
                timeout: float = 30) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data, method=method)
        if data is not None:
            request.add_header("Content-Type", "application/json")
        if token:
            request.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                raw = response.read()
                kind = response.headers.get("content-type", "")
                return response.status, json.loads(raw) if "json" in kind else raw.decode()
        except urllib.error.HTTPError as error:
            raw = error.read()
            try:
                return error.code, json.loads(raw)
            except ValueError:
                return error.code, raw.decode()

    def get(self, path: str, **options: Any) -> Any:
        status, body = self.request("GET", path, **options)
        assert status == 200, (status, body)
        return body

    def wait_for(self, what: str, check: Any, timeout_s: float = 60) -> Any:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            value = check()
            if value:
                return value
            time.sleep(0.3)
        raise AssertionError(f"timed out waiting for {what}; room log:\n{self.room.log()[-3000:]}")

    def match(self, match_id: str) -> dict[str, Any] | None:
        status, body = self.request("GET", f"/api/v1/matches/{match_id}")
        return body if status == 200 else None

    def metrics(self) -> str:
        return self.get("/metrics", token=None)

    def stop(self) -> None:
        self.room.stop()
        if self.composer is not None:
            self.composer.stop()


def start_room(settings: Settings, log_dir: Path, *, composer: bool = True, composer_args: tuple[str, ...] = (),
               room_args: tuple[str, ...] = (), **env: str) -> Room:
    """A composer (optional) and a control room on a free port; returns once the room answers."""
    port = free_port()
    env = {"CROWDSOUND_API_TOKENS": f"alice={TOKEN},bob={BOB_TOKEN}", **env}
    composer_process = Process(settings, log_dir, "composer", "composer", "--instance", "c1", *composer_args) \
        if composer else None
    room = Process(settings, log_dir, "controlroom", "controlroom", "--port", str(port), *room_args, **env)
    started = Room(settings, f"http://127.0.0.1:{port}", room, composer_process)
    started.wait_for("the control room to answer", lambda: _answers(started), timeout_s=60)
    return started


def _answers(room: Room) -> bool:
    assert room.room.process is not None and room.room.process.poll() is None, room.room.log()
    try:
        return room.request("GET", "/healthz", token=None, timeout=2)[0] == 200
    except OSError:
        return False


def produce_windows(settings: Settings, windows: list[dict[str, Any]], *, producer: Any = None) -> None:
    producer = producer or make_producer(settings)
    for window in windows:
        producer.produce(settings.topic("crowd.emotions.v1"), key=match_key(window["match_id"]),
                         value=encode("EmotionWindow", window))
    producer.flush(30)


def records(settings: Settings, topic: str, record_type: str, *, match_id: str | None = None,
            expected: int = 100_000, timeout_s: float = 5) -> list[dict[str, Any]]:
    found = [decode(m.value(), expect=record_type)  # type: ignore[arg-type]
             for m in read_topic(settings, settings.topic(topic), expected=expected, timeout_s=timeout_s)]
    return [r for r in found if match_id is None or r["match_id"] == match_id]
