"""A real single-node Apache Kafka broker on 127.0.0.1, assembled from Maven Central.

``crowdsound broker up`` does what a Kafka tarball's scripts would, without a tarball or
Docker:

1. resolves ``org.apache.kafka:kafka_2.13`` (pinned in ``infra/kafka/pom.xml``) and a
   log4j2 SLF4J binding into ``<state>/kafka/libs-<pom hash>`` with a pinned
   maven-dependency-plugin (once; a changed pom gets a fresh folder);
2. renders ``server.properties`` for one combined broker+controller (KRaft) and formats
   its storage once with ``kafka.tools.StorageTool format --standalone``;
3. starts ``kafka.Kafka`` detached, logging to ``<state>/kafka/broker-<port>/logs``,
   records its pid and waits until the broker answers a metadata request.

Data lives in ``<state>/kafka/broker-<port>/data`` and survives ``down``/``up``, so
retained topics are still there after a restart.

``--secure`` runs the same broker as production clusters run: a SASL_SSL listener
(SCRAM-SHA-512) with a certificate from the machine's own CA (:mod:`infra.tls`), a mutual-TLS
listener, the StandardAuthorizer with ``allow.everyone.if.no.acl.found=false`` and one super
user, ``admin``, whose SCRAM credential is written into the metadata log when the storage is
formatted. Its client port is the plaintext broker's port + 2 (controller +3, mTLS +4), so
both can run side by side; its files live in ``<state>/kafka/secure-<port>`` and the admin's
client properties in ``<state>/security/admin.properties`` (0600). ``crowdsound security
apply`` then creates the role principals and their ACLs.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from string import Template

from infra.errors import BrokerError
from infra.settings import Settings

__all__ = [
    "SECURE_PORT_OFFSET",
    "BrokerPaths",
    "BrokerStatus",
    "admin_properties_path",
    "assemble",
    "broker_down",
    "broker_paths",
    "broker_status",
    "broker_up",
    "default_security_dir",
    "java_executable",
]

_KAFKA_DIR = Path(__file__).resolve().parent / "kafka"
_POM = _KAFKA_DIR / "pom.xml"
_DEPENDENCY_PLUGIN = "org.apache.maven.plugins:maven-dependency-plugin:3.8.1"
_JVM_OPTS = [
    "-server",
    "-XX:+UseG1GC",
    "-XX:MaxGCPauseMillis=20",
    "-XX:InitiatingHeapOccupancyPercent=35",
    "-XX:+ExplicitGCInvokesConcurrent",
    "-Djava.awt.headless=true",
]
_DEFAULT_HEAP = "-Xms256M -Xmx1G"
SECURE_PORT_OFFSET = 2  # the secure broker's client port, after the plaintext broker's port and controller
ADMIN = "admin"


def default_security_dir(settings: Settings) -> Path:
    """Where the secure broker's CA and the principals' client properties are kept."""
    return settings.state_dir / "security"


def admin_properties_path(security_dir: Path) -> Path:
    """The admin's librdkafka properties file, written by ``broker up --secure``."""
    return security_dir / "admin.properties"


@dataclass(frozen=True)
class BrokerPaths:
    """Where one local broker (identified by its port) keeps its files."""

    state_dir: Path
    port: int
    secure: bool = False
    security_dir: Path | None = None  # secure only: CA, certificates, admin.properties

    @property
    def kafka_dir(self) -> Path:
        return self.state_dir / "kafka"

    @property
    def libs(self) -> Path:
        digest = hashlib.sha256(_POM.read_bytes()).hexdigest()[:12]
        return self.kafka_dir / f"libs-{digest}"

    @property
    def home(self) -> Path:
        return self.kafka_dir / (f"secure-{self.port}" if self.secure else f"broker-{self.port}")

    @property
    def controller_port(self) -> int:
        return self.port + 1

    @property
    def mtls_port(self) -> int:
        """The secure broker's mutual-TLS listener."""
        return self.port + 2

    @property
    def ports(self) -> tuple[int, ...]:
        return (self.port, self.controller_port, self.mtls_port) if self.secure else (self.port, self.controller_port)

    @property
    def admin_password_file(self) -> Path:
        return self.home / "admin.password"

    @property
    def keystore(self) -> Path:
        return self.home / "keystore.pem"

    @property
    def data(self) -> Path:
        return self.home / "data"

    @property
    def logs(self) -> Path:
        return self.home / "logs"

    @property
    def config(self) -> Path:
        return self.home / "server.properties"

    @property
    def pid_file(self) -> Path:
        return self.home / "broker.pid"

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"


@dataclass(frozen=True)
class BrokerStatus:
    """What ``crowdsound broker status`` reports."""

    running: bool
    pid: int | None
    bootstrap: str
    kafka_version: str | None
    data_dir: Path
    log_file: Path
    security: str | None = None  # secure brokers: listeners and where the admin's properties are

    def lines(self) -> list[str]:
        state = f"running (pid {self.pid})" if self.running else "stopped"
        lines = [
            f"broker:     {state}",
            f"bootstrap:  {self.bootstrap}",
            f"kafka:      {self.kafka_version or 'not assembled yet'}",
            f"data:       {self.data_dir}",
            f"log:        {self.log_file}",
        ]
        if self.security:
            lines.append(f"security:   {self.security}")
        return lines


def java_executable() -> str:
    """The ``java`` to run the broker with: ``$JAVA_HOME/bin/java`` or the one on PATH.

    Raises
    ------
    BrokerError
        When no Java is found or it is older than 17 (Kafka 4 needs 17+).
    """
    java_home = os.environ.get("JAVA_HOME")
    candidate = Path(java_home) / "bin" / "java" if java_home else None
    java = str(candidate) if candidate and candidate.is_file() else shutil.which("java")
    if not java:
        raise BrokerError("Java not found: install a Java 17+ runtime (e.g. apt-get install openjdk-17-jre-headless)")
    probe = subprocess.run([java, "-version"], capture_output=True, text=True, check=False)
    match = re.search(r'version "(\d+)(?:\.(\d+))?', probe.stderr + probe.stdout)
    if not match:
        raise BrokerError(f"cannot tell the version of {java}: install a Java 17+ runtime")
    major = int(match.group(1))
    if major == 1 and match.group(2):  # "1.8" style
        major = int(match.group(2))
    if major < 17:
        raise BrokerError(f"{java} is Java {major}; Kafka 4 needs Java 17+ (e.g. apt-get install openjdk-17-jre-headless)")
    return java


def kafka_version(libs: Path) -> str | None:
    """The Kafka version assembled in ``libs``, read off the broker jar's name."""
    if not libs.is_dir():
        return None
    for jar in libs.glob("kafka_2.13-*.jar"):
        return jar.stem.removeprefix("kafka_2.13-")
    return None


def assemble(paths: BrokerPaths, *, quiet: bool = False) -> Path:
    """Resolve the broker's jars from Maven Central into ``paths.libs`` (once).

    Returns the folder holding the jars.

    Raises
    ------
    BrokerError
        When Maven is missing or the resolution fails.
    """
    libs = paths.libs
    marker = libs / ".complete"
    if marker.is_file():
        return libs
    mvn = shutil.which("mvn")
    if not mvn:
        raise BrokerError("Maven not found: install Maven 3.6+ (e.g. apt-get install maven) to assemble the Kafka broker")
    staging = libs.with_name(libs.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    if not quiet:
        print(f"assembling Apache Kafka from Maven Central into {libs} ...", flush=True)
    command = [
        mvn, "-q", "-B", "-f", str(_POM),
        f"{_DEPENDENCY_PLUGIN}:copy-dependencies",
        f"-DoutputDirectory={staging}",
        "-DincludeScope=runtime",
    ]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        tail = (result.stdout + result.stderr).strip().splitlines()[-5:]
        raise BrokerError("Maven could not assemble Kafka: " + " | ".join(tail))
    (staging / ".complete").write_text(_POM.read_text())
    shutil.rmtree(libs, ignore_errors=True)
    staging.rename(libs)
    return libs


def _pid_alive(pid: int) -> bool:
    """True while ``pid`` runs; reaps it when it is our own exited child."""
    try:
        finished, _ = os.waitpid(pid, os.WNOHANG)
        if finished == pid:
            return False
    except ChildProcessError:
        pass  # not our child: fall through to /proc
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _our_broker_pid(paths: BrokerPaths) -> int | None:
    """The pid recorded for this broker, if that process is alive and is our broker."""
    try:
        pid = int(paths.pid_file.read_text().strip())
    except (OSError, ValueError):
        return None
    if not _pid_alive(pid):
        return None
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return None
    return pid if "kafka.Kafka" in cmdline and str(paths.config) in cmdline else None


def _port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def _render_config(paths: BrokerPaths, admin_password: str | None = None) -> None:
    values = {"port": paths.port, "controller_port": paths.controller_port, "mtls_port": paths.mtls_port,
              "data_dir": paths.data, "admin_password": admin_password or "",
              "keystore": paths.keystore, "truststore": _tls_dir(paths) / "ca.crt" if paths.secure else ""}
    listeners = Template((_KAFKA_DIR / f"listeners-{'secure' if paths.secure else 'plaintext'}.properties").read_text())
    template = Template((_KAFKA_DIR / "server.properties.template").read_text())
    # The secure config holds the admin's password: owner only.
    from infra.tls import write_private

    write_private(paths.config, template.substitute(values, listeners=listeners.substitute(values).strip()).encode())


def _tls_dir(paths: BrokerPaths) -> Path:
    assert paths.security_dir is not None
    return paths.security_dir / "tls"


def _prepare_secure(paths: BrokerPaths) -> str:
    """The CA, the broker's certificate and the admin's password of a secure broker (made once).

    Returns the admin password.
    """
    from infra.tls import ensure_ca, issue_server_certificate, write_private

    tls = _tls_dir(paths)
    ca = ensure_ca(tls)
    server = issue_server_certificate(ca, tls)
    write_private(paths.keystore, server.key.read_bytes() + server.cert.read_bytes())
    if paths.admin_password_file.is_file():
        password = paths.admin_password_file.read_text().strip()
    elif (paths.data / "meta.properties").is_file():
        raise BrokerError(f"the secure broker's data in {paths.data} has no admin password "
                          f"({paths.admin_password_file} is gone); remove {paths.home} to start afresh")
    else:
        password = secrets.token_urlsafe(24)
        write_private(paths.admin_password_file, password.encode())
    write_private(admin_properties_path(paths.security_dir), _properties({  # type: ignore[arg-type]
        "bootstrap.servers": paths.bootstrap, "security.protocol": "SASL_SSL", "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": ADMIN, "sasl.password": password, "ssl.ca.location": str(ca.cert.resolve()),
    }, f"the local secure broker's super user ({paths.bootstrap}); keep it secret"))
    return password


def _properties(values: dict[str, str], comment: str) -> bytes:
    lines = [f"# {comment}"] + [f"{key}={value}" for key, value in values.items()]
    return ("\n".join(lines) + "\n").encode()


def _admin_client_config(paths: BrokerPaths, admin_password: str | None) -> dict[str, str]:
    if not paths.secure:
        return {"bootstrap.servers": paths.bootstrap}
    return {"bootstrap.servers": paths.bootstrap, "security.protocol": "SASL_SSL", "sasl.mechanism": "SCRAM-SHA-512",
            "sasl.username": ADMIN, "sasl.password": admin_password or "",
            "ssl.ca.location": str(_tls_dir(paths) / "ca.crt")}


def _java_command(java: str, libs: Path, heap: str, *args: str) -> list[str]:
    return [java, *heap.split(), *_JVM_OPTS, "-cp", f"{libs}/*", *args]


def _format_storage(java: str, paths: BrokerPaths, libs: Path, admin_password: str | None) -> None:
    if (paths.data / "meta.properties").is_file():
        return
    cluster_id = subprocess.run(
        _java_command(java, libs, "-Xmx256M", "kafka.tools.StorageTool", "random-uuid"),
        capture_output=True, text=True, check=False,
    ).stdout.strip().splitlines()
    if not cluster_id:
        raise BrokerError("kafka.tools.StorageTool random-uuid printed nothing")
    result = subprocess.run(
        _java_command(
            java, libs, "-Xmx256M", f"-Dkafka.logs.dir={paths.logs}",
            f"-Dlog4j2.configurationFile={_KAFKA_DIR / 'log4j2.xml'}",
            "kafka.tools.StorageTool", "format", "--standalone", "--ignore-formatted",
            "-t", cluster_id[-1], "-c", str(paths.config),
            # The super user's SCRAM credential, in the metadata log from the start.
            *(["--add-scram", f"SCRAM-SHA-512=[name={ADMIN},password={admin_password}]"] if admin_password else []),
        ),
        capture_output=True, text=True, check=False,
    )
    if result.returncode != 0:
        raise BrokerError(f"formatting {paths.data} failed: {(result.stdout + result.stderr).strip()[-300:]}")


def _wait_until_ready(paths: BrokerPaths, pid: int, timeout_s: float, admin_password: str | None) -> None:
    from confluent_kafka.admin import AdminClient  # deferred: only `broker up` needs it

    admin = AdminClient({**_admin_client_config(paths, admin_password), "log_level": 0, "logger": _silent_logger()})
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not _pid_alive(pid):
            raise BrokerError(f"the broker exited during start-up; see {paths.logs / 'server.log'} and {paths.logs / 'stdout.log'}")
        try:
            metadata = admin.list_topics(timeout=2)
            if metadata.brokers:
                return
        except Exception:  # noqa: BLE001 - KafkaException while the broker is still starting
            pass
        time.sleep(0.5)
    raise BrokerError(f"the broker did not answer metadata within {timeout_s:.0f} s; see {paths.logs / 'server.log'}")


def _silent_logger():  # librdkafka's connection-refused chatter while the broker boots
    import logging

    logger = logging.getLogger("crowdsound.broker.librdkafka")
    logger.addHandler(logging.NullHandler())
    logger.propagate = False
    return logger


def broker_paths(settings: Settings, port: int | None = None, *, secure: bool = False,
                 security_dir: Path | None = None) -> BrokerPaths:
    """The files of the local broker on ``port`` (default: the settings' broker port, + 2 when
    ``secure``); a secure broker keeps its CA and admin properties in ``security_dir``
    (default ``<state>/security``)."""
    if port is None:
        port = settings.broker_port + (SECURE_PORT_OFFSET if secure else 0)
    return BrokerPaths(settings.state_dir, port, secure=secure,
                       security_dir=(security_dir or default_security_dir(settings)) if secure else None)


def broker_up(settings: Settings, *, port: int | None = None, secure: bool = False, security_dir: Path | None = None,
              timeout_s: float = 90.0) -> tuple[BrokerStatus, bool]:
    """Start the local broker unless it already runs; wait until it answers.

    ``secure`` starts the SASL_SSL broker instead (see the module's docstring). Returns the
    status and whether this call started it.

    Raises
    ------
    BrokerError
        Missing Java or Maven, port taken by another process, or a broker that fails to
        start; the message says what to do.
    """
    paths = broker_paths(settings, port, secure=secure, security_dir=security_dir)
    if _our_broker_pid(paths) is not None:
        if secure:
            _prepare_secure(paths)  # (re)writes admin.properties for this security folder
        return _status(paths), False
    taken = [p for p in paths.ports if _port_in_use(p)]
    if taken:
        raise BrokerError(
            f"port {', '.join(map(str, taken))} on 127.0.0.1 is taken by another process; "
            "stop it or choose another port with --port"
        )
    java = java_executable()
    libs = assemble(paths)
    for folder in (paths.data, paths.logs):
        folder.mkdir(parents=True, exist_ok=True)
    admin_password = _prepare_secure(paths) if secure else None
    _render_config(paths, admin_password)
    _format_storage(java, paths, libs, admin_password)
    heap = os.environ.get("KAFKA_HEAP_OPTS", _DEFAULT_HEAP)
    command = _java_command(
        java, libs, heap,
        f"-Dkafka.logs.dir={paths.logs}",
        f"-Dlog4j2.configurationFile={_KAFKA_DIR / 'log4j2.xml'}",
        "kafka.Kafka", str(paths.config),
    )
    with open(paths.logs / "stdout.log", "ab") as out:
        process = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True, cwd=paths.home,
        )
    paths.pid_file.write_text(f"{process.pid}\n")
    try:
        _wait_until_ready(paths, process.pid, timeout_s, admin_password)
    except BrokerError:
        _stop_pid(process.pid, timeout_s=30)
        paths.pid_file.unlink(missing_ok=True)
        raise
    return _status(paths), True


def _stop_pid(pid: int, *, timeout_s: float) -> bool:
    """SIGTERM, wait; SIGKILL if it will not go. Returns True when it stopped cleanly."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return True
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not _pid_alive(pid):
            return True
        time.sleep(0.2)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return True
    while _pid_alive(pid):
        time.sleep(0.1)
    return False


def broker_down(settings: Settings, *, port: int | None = None, secure: bool = False,
                timeout_s: float = 60.0) -> str:
    """Stop the local broker (SIGTERM, then wait). Harmless when nothing runs.

    Returns a one-line description of what happened.
    """
    paths = broker_paths(settings, port, secure=secure)
    pid = _our_broker_pid(paths)
    if pid is None:
        paths.pid_file.unlink(missing_ok=True)
        return f"no broker running on {paths.bootstrap}"
    clean = _stop_pid(pid, timeout_s=timeout_s)
    paths.pid_file.unlink(missing_ok=True)
    if clean:
        return f"broker on {paths.bootstrap} stopped (pid {pid}); data kept in {paths.data}"
    return f"broker on {paths.bootstrap} did not stop within {timeout_s:.0f} s and was killed (pid {pid})"


def broker_status(settings: Settings, *, port: int | None = None, secure: bool = False) -> BrokerStatus:
    """Whether the local broker runs, where it listens, its Kafka version and data folder."""
    return _status(broker_paths(settings, port, secure=secure))


def _status(paths: BrokerPaths) -> BrokerStatus:
    pid = _our_broker_pid(paths)
    security = None
    if paths.secure:
        security = (f"SASL_SSL (SCRAM-SHA-512) on {paths.port}, mutual TLS on {paths.mtls_port}; ACLs enforced; "
                    f"admin client properties in {admin_properties_path(paths.security_dir)}")  # type: ignore[arg-type]
    return BrokerStatus(
        running=pid is not None,
        pid=pid,
        bootstrap=paths.bootstrap,
        kafka_version=kafka_version(paths.libs),
        data_dir=paths.data,
        log_file=paths.logs / "server.log",
        security=security,
    )
