"""One real Kafka broker for the whole test session, and unique topic names per test.

If ``KAFKA_BOOTSTRAP_SERVERS`` is set, the tests use that cluster and never stop it.
Otherwise the session starts the repository's own broker (``infra/broker.py``) on a test
port, with a fresh data folder, and stops it at the end.

The security tests get a second, secure broker (``broker up --secure``: SASL_SSL with
SCRAM-SHA-512, mutual TLS, ACLs enforced) on ``CROWDSOUND_TEST_SECURE_BROKER_PORT`` (default:
the test broker's port + 2; it also uses the next two ports), started the first time a test
asks for it, with its CA and admin credentials in a temporary folder.
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
TEST_SECURE_BROKER_PORT = int(os.environ.get("CROWDSOUND_TEST_SECURE_BROKER_PORT", str(TEST_BROKER_PORT + 2)))


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


@dataclass
class SecureKafkaUnderTest:
    """The session's secure broker."""

    admin: Settings  # the super user's settings (KAFKA_CONFIG_FILE = its admin.properties), no prefix
    security_dir: Path  # its CA (tls/) and admin.properties
    mtls_bootstrap: str  # the mutual-TLS listener


@pytest.fixture(scope="session")
def secure_kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureKafkaUnderTest]:
    if os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        pytest.skip("the security tests start their own secure broker; unset KAFKA_BOOTSTRAP_SERVERS to run them")
    from infra.broker import admin_properties_path, broker_down, broker_paths, broker_up

    base = Settings.from_env({"CROWDSOUND_STATE_DIR": str(Settings.from_env().state_dir)})
    security_dir = tmp_path_factory.mktemp("secure-broker")
    paths = broker_paths(base, TEST_SECURE_BROKER_PORT, secure=True, security_dir=security_dir)
    broker_down(base, port=paths.port, secure=True)
    shutil.rmtree(paths.home, ignore_errors=True)  # every session starts empty
    broker_up(base, port=paths.port, secure=True, security_dir=security_dir)
    try:
        admin = Settings.from_env({"KAFKA_CONFIG_FILE": str(admin_properties_path(security_dir)),
                                   "CROWDSOUND_STATE_DIR": str(base.state_dir)})
        yield SecureKafkaUnderTest(admin, security_dir, f"127.0.0.1:{paths.mtls_port}")
    finally:
        broker_down(base, port=paths.port, secure=True)


@dataclass
class SecureRoles:
    """A test's deployment on the secure broker: its topics, and a principal per role."""

    admin: Settings  # the super user, with this test's topic prefix
    folder: Path  # <role>.properties files

    def settings(self, role: str) -> Settings:
        """The settings a process of ``role`` runs with: its properties file and the test's prefix."""
        return self.admin.with_client_file(self.folder / f"{role}.properties")


@pytest.fixture
def secure_roles(secure_kafka: SecureKafkaUnderTest, tmp_path: Path) -> SecureRoles:
    """This test's catalogue topics on the secure broker, and its role users (``t<random>.encoder``
    ...) with their ACLs and properties files, made by ``security apply``."""
    from infra.clients import make_admin
    from infra.security import apply_security
    from infra.topics import apply_catalogue

    admin = secure_kafka.admin.with_overrides(topic_prefix=f"t{uuid.uuid4().hex[:10]}.", partitions=12)
    apply_catalogue(make_admin(admin), admin)
    apply_security(make_admin(admin), admin, tmp_path / "security")
    return SecureRoles(admin, tmp_path / "security")


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
