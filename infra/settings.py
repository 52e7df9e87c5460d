"""One settings object for every crowdsound process, fed by environment variables.

Twelve-factor style: each field has a default that works against the local broker, and an
environment variable that overrides it. Kafka client properties pass through untouched:
``KAFKA_CLIENT_LINGER_MS=20`` becomes ``linger.ms=20`` on every client, so anything
librdkafka understands can be set without a code change. ``KAFKA_CONFIG_FILE`` names a
librdkafka properties file (what ``kcat -F`` reads, e.g. the ones ``crowdsound security
apply`` writes); the variables override it, ``KAFKA_CLIENT_*`` last. Every client — the
confluent-kafka ones and the Faust worker's aiokafka alike — takes its security from here
(:meth:`Settings.client_config`, :meth:`Settings.aiokafka_config`; the one conversion is
:mod:`infra.kafka_security`).

===================================  =====================================================
variable                              meaning (default)
===================================  =====================================================
KAFKA_CONFIG_FILE                     librdkafka properties file, as ``kcat -F`` (unset)
KAFKA_BOOTSTRAP_SERVERS               brokers to bootstrap from (``127.0.0.1:9092``)
KAFKA_SECURITY_PROTOCOL               PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL (PLAINTEXT)
KAFKA_SASL_MECHANISM                  PLAIN, SCRAM-SHA-256, SCRAM-SHA-512, OAUTHBEARER (unset)
KAFKA_SASL_USERNAME / _PASSWORD       SASL credentials (unset)
KAFKA_SSL_CA_LOCATION                 CA bundle for TLS (unset)
KAFKA_CLIENT_<PROPERTY>               any client property, ``_`` -> ``.``, lower-cased
CROWDSOUND_TOPIC_PREFIX               prefix for every topic name, e.g. ``staging.`` ('')
CROWDSOUND_PARTITIONS                 partitions of every catalogue topic (12)
CROWDSOUND_REPLICATION_FACTOR         replicas per topic, -1 = broker default (-1)
CROWDSOUND_MIN_INSYNC_REPLICAS        replicas a write needs, 0 = 1 below 3 replicas, else 2 (0)
CROWDSOUND_STATE_DIR                  local broker jars, data and logs (``.crowdsound``)
CROWDSOUND_BROKER_PORT                port of the local broker (9092)
CROWDSOUND_LOG_LEVEL                  DEBUG, INFO, WARNING, ERROR (INFO)
CROWDSOUND_METRICS_PORT               Prometheus ``/metrics`` port, 0 = off (0)
CROWDSOUND_METRICS_HOST               address ``/metrics`` and ``/healthz`` bind to (127.0.0.1)
CROWDSOUND_HEALTH_STALL_S             ``/healthz`` fails when work waits this long undone (60)
CROWDSOUND_GRACE_MS                   how late a match event may be and still count (15000)
CROWDSOUND_WINDOW_HOP_MS              emotion window hop (1000)
CROWDSOUND_WINDOW_LENGTH_MS           emotion window length, a multiple of the hop (3000)
CROWDSOUND_STREAMS_STORE              Faust table store: memory:// or rocksdb:// (memory://)
CROWDSOUND_FRAME_HELPER               the worker analyses audio in a helper process: 1 or 0 (1)
CROWDSOUND_API_TOKENS                 control room operators: ``name=token,name=token`` ('')
CROWDSOUND_API_PUBLIC_READ            control room reads without a token: 1 or 0 (0)
CROWDSOUND_API_CORS_ORIGINS           origins allowed to call the control room API, comma list ('')
===================================  =====================================================

API tokens are kept only as SHA-256 hashes once read (``api_tokens`` maps a hash to the
operator's name), so a token never appears in a repr, a log line or a crash report.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

from infra.errors import SettingsError
from infra.kafka_security import PROTOCOLS, aiokafka_security, check_security, normalise, read_properties_file, \
    redacted

__all__ = ["Settings", "SecurityProtocol", "default_state_dir", "token_hash"]

SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
_LOG_LEVELS: tuple[str, ...] = ("DEBUG", "INFO", "WARNING", "ERROR")
_CLIENT_PREFIX = "KAFKA_CLIENT_"


def default_state_dir() -> Path:
    """Where the local broker keeps jars, data and logs when nothing says otherwise.

    In a source checkout that is ``<repo>/.crowdsound`` (git-ignored), so a developer's
    broker and its retained topics live with the clone; elsewhere it is the user's state
    directory.
    """
    repo = Path(__file__).resolve().parent.parent
    if (repo / "pyproject.toml").is_file() and (repo / "infra" / "kafka" / "pom.xml").is_file():
        return repo / ".crowdsound"
    xdg = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(xdg) / "crowdsound"


def _int(env: Mapping[str, str], name: str, default: int, *, low: int, high: int) -> int:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not a whole number") from None
    if not low <= value <= high:
        raise SettingsError(f"{name}={value} is outside {low}..{high}")
    return value


def _choice(env: Mapping[str, str], name: str, default: str, choices: tuple[str, ...]) -> str:
    value = (env.get(name) or default).strip().upper() or default
    if value not in choices:
        raise SettingsError(f"{name}={value!r} is not one of {', '.join(choices)}")
    return value


def token_hash(token: str) -> str:
    """The SHA-256 hex digest under which an API token is kept."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _api_tokens(raw: str) -> dict[str, str]:
    """``name=token,...`` -> {hash of token: name}; a malformed pair is named by position, never shown."""
    tokens: dict[str, str] = {}
    for position, pair in enumerate((p.strip() for p in raw.split(",")), start=1):
        if not pair:
            continue
        name, eq, token = pair.partition("=")
        name, token = name.strip(), token.strip()
        if not eq or not name or not token:
            raise SettingsError(f"CROWDSOUND_API_TOKENS: pair {position} is not operator=token")
        if len(token) < 12:
            raise SettingsError(f"CROWDSOUND_API_TOKENS: the token of {name!r} is shorter than 12 characters")
        tokens[token_hash(token)] = name
    return tokens


@dataclass(frozen=True, kw_only=True)
class Settings:
    """Everything a crowdsound process needs to know about its environment."""

    bootstrap_servers: str = "127.0.0.1:9092"
    security_protocol: SecurityProtocol = "PLAINTEXT"
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: str | None = None
    ssl_ca_location: str | None = None
    # Every other client property: the config file's, then KAFKA_CLIENT_* (which win).
    client_properties: Mapping[str, str] = field(default_factory=dict)
    config_file: Path | None = None
    topic_prefix: str = ""
    partitions: int = 12
    replication_factor: int = -1
    min_insync_replicas: int = 0  # 0: derived from the replication factor (infra.catalogue.min_insync_replicas)
    state_dir: Path = field(default_factory=default_state_dir)
    broker_port: int = 9092
    log_level: str = "INFO"
    metrics_port: int = 0
    metrics_host: str = "127.0.0.1"
    health_stall_s: int = 60
    grace_ms: int = 15_000
    window_hop_ms: int = 1000
    window_length_ms: int = 3000
    streams_store: str = "memory://"
    frame_helper: bool = True
    api_tokens: Mapping[str, str] = field(default_factory=dict, repr=False)  # token hash -> operator
    api_public_read: bool = False
    api_cors_origins: tuple[str, ...] = ()

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Read the settings from ``env`` (default: ``os.environ``).

        Raises
        ------
        SettingsError
            When a variable holds a value that cannot be used; the message names it.
        """
        env = os.environ if env is None else env
        config_file = Path(env["KAFKA_CONFIG_FILE"]).expanduser() if env.get("KAFKA_CONFIG_FILE") else None
        from_file = read_properties_file(config_file) if config_file else {}
        passthrough = normalise({
            key[len(_CLIENT_PREFIX):].lower().replace("_", "."): value
            for key, value in env.items()
            if key.startswith(_CLIENT_PREFIX) and len(key) > len(_CLIENT_PREFIX)
        })

        def kafka(variable: str, name: str) -> str | None:
            """A variable, else the config file's property, else unset."""
            in_file = from_file.pop(name, None)
            return (env.get(variable) or "").strip() or in_file or None

        bootstrap = kafka("KAFKA_BOOTSTRAP_SERVERS", "bootstrap.servers") or "127.0.0.1:9092"
        protocol = _choice({"KAFKA_SECURITY_PROTOCOL": kafka("KAFKA_SECURITY_PROTOCOL", "security.protocol") or ""},
                           "KAFKA_SECURITY_PROTOCOL", "PLAINTEXT", PROTOCOLS)
        mechanism = kafka("KAFKA_SASL_MECHANISM", "sasl.mechanism")
        state_dir = env.get("CROWDSOUND_STATE_DIR")
        return cls(
            bootstrap_servers=bootstrap,
            security_protocol=protocol,  # type: ignore[arg-type]
            sasl_mechanism=mechanism.upper() if mechanism else None,
            sasl_username=kafka("KAFKA_SASL_USERNAME", "sasl.username"),
            sasl_password=kafka("KAFKA_SASL_PASSWORD", "sasl.password"),
            ssl_ca_location=kafka("KAFKA_SSL_CA_LOCATION", "ssl.ca.location"),
            client_properties={**from_file, **passthrough},
            config_file=config_file,
            topic_prefix=env.get("CROWDSOUND_TOPIC_PREFIX", ""),
            partitions=_int(env, "CROWDSOUND_PARTITIONS", 12, low=1, high=10_000),
            replication_factor=_int(env, "CROWDSOUND_REPLICATION_FACTOR", -1, low=-1, high=100),
            min_insync_replicas=_int(env, "CROWDSOUND_MIN_INSYNC_REPLICAS", 0, low=0, high=100),
            state_dir=Path(state_dir).expanduser() if state_dir else default_state_dir(),
            broker_port=_int(env, "CROWDSOUND_BROKER_PORT", 9092, low=1, high=65_533),
            log_level=_choice(env, "CROWDSOUND_LOG_LEVEL", "INFO", _LOG_LEVELS),
            metrics_port=_int(env, "CROWDSOUND_METRICS_PORT", 0, low=0, high=65_535),
            metrics_host=env.get("CROWDSOUND_METRICS_HOST", "").strip() or "127.0.0.1",
            health_stall_s=_int(env, "CROWDSOUND_HEALTH_STALL_S", 60, low=5, high=3600),
            grace_ms=_int(env, "CROWDSOUND_GRACE_MS", 15_000, low=5_000, high=600_000),
            window_hop_ms=_int(env, "CROWDSOUND_WINDOW_HOP_MS", 1000, low=100, high=60_000),
            window_length_ms=_int(env, "CROWDSOUND_WINDOW_LENGTH_MS", 3000, low=100, high=120_000),
            streams_store=env.get("CROWDSOUND_STREAMS_STORE", "memory://").strip() or "memory://",
            frame_helper=_choice(env, "CROWDSOUND_FRAME_HELPER", "1", ("1", "0")) == "1",
            api_tokens=_api_tokens(env.get("CROWDSOUND_API_TOKENS", "")),
            api_public_read=_choice(env, "CROWDSOUND_API_PUBLIC_READ", "0", ("1", "0")) == "1",
            api_cors_origins=tuple(o.strip() for o in env.get("CROWDSOUND_API_CORS_ORIGINS", "").split(",")
                                   if o.strip()),
        )

    def __post_init__(self) -> None:
        check_security(self.client_config())

    def __repr__(self) -> str:
        """Like the dataclass's, with every secret masked (passwords, keys, tokens)."""
        shown = {name: getattr(self, name) for name in self.__dataclass_fields__}
        shown["sasl_password"] = "[redacted]" if self.sasl_password else None
        shown["client_properties"] = redacted(self.client_properties)
        return f"Settings({', '.join(f'{name}={value!r}' for name, value in shown.items())})"

    def with_overrides(self, **changes: object) -> Settings:
        """A copy with some fields changed (CLI options win over the environment)."""
        return replace(self, **changes)  # type: ignore[arg-type]

    def with_client_file(self, path: Path) -> Settings:
        """The same deployment (topic prefix, partitions, state folder...) as another principal:
        the Kafka connection and client properties of the properties file ``path`` (a role's from
        ``crowdsound security apply``), as ``KAFKA_CONFIG_FILE=path`` alone gives them."""
        other = Settings.from_env({"KAFKA_CONFIG_FILE": str(path)})
        return replace(self, bootstrap_servers=other.bootstrap_servers, security_protocol=other.security_protocol,
                       sasl_mechanism=other.sasl_mechanism, sasl_username=other.sasl_username,
                       sasl_password=other.sasl_password, ssl_ca_location=other.ssl_ca_location,
                       client_properties=other.client_properties, config_file=other.config_file)

    def topic(self, name: str) -> str:
        """The deployed name of catalogue topic ``name`` (the prefix applied)."""
        return f"{self.topic_prefix}{name}"

    def client_config(self) -> dict[str, str]:
        """librdkafka properties shared by producers, consumers and admin clients.

        Pass-through properties are applied last, so an operator can override anything.
        """
        config: dict[str, str] = {
            "bootstrap.servers": self.bootstrap_servers,
            "security.protocol": self.security_protocol,
        }
        optional = {
            "sasl.mechanism": self.sasl_mechanism,
            "sasl.username": self.sasl_username,
            "sasl.password": self.sasl_password,
            "ssl.ca.location": self.ssl_ca_location,
        }
        config.update({key: value for key, value in optional.items() if value})
        config.update(self.client_properties)
        return config

    def aiokafka_config(self) -> dict[str, object]:
        """The same security as :meth:`client_config`, as aiokafka's keyword arguments (the
        Faust worker's client): protocol, SSL context (CA, mTLS certificate), SASL."""
        return aiokafka_security(self.client_config())
