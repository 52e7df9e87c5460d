"""One real Kafka broker for the whole test session, and unique topic names per test.

If ``KAFKA_BOOTSTRAP_SERVERS`` is set, the tests use that cluster and never stop it.
Otherwise the session starts the repository's own broker (``infra/broker.py``) on a test
port, with a fresh data folder, and stops it at the end.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from infra.settings import Settings

REPO = Path(__file__).resolve().parent.parent
# Below Linux's ephemeral range (32768-60999): a port in it can be taken by a client's own
# socket while the broker restarts, and the broker then fails to bind.
TEST_BROKER_PORT = int(os.environ.get("CROWDSOUND_TEST_BROKER_PORT", "19092"))


@dataclass
class KafkaUnderTest:
    """The broker of this test session."""

    settings: Settings  # no topic prefix; bootstrap of the session broker
    owned: bool  # True when this session started it (and may restart it)

    def restart(self) -> None:
        from infra.broker import broker_down, broker_up

        assert self.owned, "cannot restart a broker this session does not own"
        broker_down(self.settings)
        broker_up(self.settings)

    def crash(self, *, down_s: float) -> None:
        """SIGKILL the broker (no clean shutdown: what it had not flushed is recovered from its
        log on start), keep it down ``down_s`` seconds, start it again."""
        import signal
        import time

        from infra.broker import broker_status, broker_up

        assert self.owned, "cannot crash a broker this session does not own"
        pid = broker_status(self.settings).pid
        assert pid is not None, "the session broker is not running"
        os.kill(pid, signal.SIGKILL)
        while broker_status(self.settings).running:
            time.sleep(0.05)
        time.sleep(down_s)
        broker_up(self.settings)


@pytest.fixture(scope="session")
def kafka() -> Iterator[KafkaUnderTest]:
    external = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if external:
        yield KafkaUnderTest(Settings.from_env(), owned=False)
        return
    from infra.broker import broker_down, broker_paths, broker_up

    base = Settings.from_env()
    settings = base.with_overrides(
        bootstrap_servers=f"127.0.0.1:{TEST_BROKER_PORT}", broker_port=TEST_BROKER_PORT, topic_prefix="",
    )
    broker_down(settings)
    shutil.rmtree(broker_paths(settings).home, ignore_errors=True)  # every session starts empty
    broker_up(settings)
    try:
        yield KafkaUnderTest(settings, owned=True)
    finally:
        broker_down(settings)


@pytest.fixture
def settings(kafka: KafkaUnderTest) -> Settings:
    """Settings whose topic names are unique to this test (``t<random>.crowd.audio.v1``)."""
    return kafka.settings.with_overrides(topic_prefix=f"t{uuid.uuid4().hex[:10]}.", partitions=12)


@pytest.fixture
def topics(settings: Settings) -> Settings:
    """``settings``, with the whole catalogue created under this test's prefix."""
    from infra.clients import make_admin
    from infra.topics import apply_catalogue

    apply_catalogue(make_admin(settings), settings)
    return settings


def unique_group() -> str:
    return f"g-{uuid.uuid4().hex[:12]}"


def run_cli(*args: str, settings: Settings | None = None, env: dict[str, str] | None = None,
            timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run ``crowdsound ARGS`` as a user would, against ``settings``' cluster and prefix."""
    from tests.kafka_helpers import cli_env

    full_env = {**(cli_env(settings) if settings is not None else os.environ), **(env or {})}
    return subprocess.run([sys.executable, "-m", "infra.cli", *args], capture_output=True, text=True,
                          env=full_env, timeout=timeout, cwd=REPO, check=False)
