"""Kafka clients made one way: producers, consumers and admin clients from :class:`Settings`.

Properties are layered: crowdsound's defaults, then the settings (bootstrap, security and
every ``KAFKA_CLIENT_*`` pass-through property), then what the calling code passes
explicitly (a group id, a transactional id).

A cluster that refuses this client is one line, not a stream of retries: wrong credentials
or a broker certificate the client does not trust raise :class:`CrowdsoundError` from the
client's next ``poll``/``flush`` (librdkafka's ``error_cb``), and :func:`infra.reading.topic_partitions`
tells a topic that is missing from one the principal may not use.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Mapping
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer
from confluent_kafka.admin import AdminClient

from infra.errors import BrokerError, CrowdsoundError
from infra.settings import Settings

__all__ = ["UNCOMPRESSED", "DeliveryErrors", "kafka_refusal", "last_refusal", "log_delivery_errors", "make_admin",
           "make_consumer", "make_producer", "match_key", "produce_and_wait", "reader_group", "unreachable"]

log = logging.getLogger("crowdsound.kafka")


class _Repeats(logging.Filter):
    """Drops a librdkafka line already logged in the last minute: a refused connection is retried
    every few hundred ms, and one line says it as well as hundreds."""

    def __init__(self, window_s: float = 60.0) -> None:
        super().__init__()
        self._window_s = window_s
        self._seen: dict[str, float] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        text = re.sub(r" \(after \d+ms in state \w+\)|\d+ms", "", record.getMessage())
        text = re.sub(r"\[rdkafka#\w+-\d+\]", "", text)
        now = time.monotonic()
        if now - self._seen.get(text, -self._window_s) < self._window_s:
            return False
        if len(self._seen) > 1000:
            self._seen.clear()
        self._seen[text] = now
        return True


log.addFilter(_Repeats())

_AUTHORIZATION = {KafkaError.TOPIC_AUTHORIZATION_FAILED: "topic", KafkaError.GROUP_AUTHORIZATION_FAILED: "group",
                  KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED: "transactional id",
                  KafkaError.CLUSTER_AUTHORIZATION_FAILED: "cluster"}
_last_refusal: list[str] = []  # the newest authentication or TLS refusal this process saw
# An authentication error that only says the connection went away (librdkafka reports a broken
# connection during the SASL handshake as an authentication error too).
_TRANSIENT = re.compile(r"transport failure|timed out|disconnected|connection (reset|refused|closed)", re.IGNORECASE)


def _who(settings: Settings) -> str:
    if settings.sasl_username:
        return f"user {settings.sasl_username}"
    properties = settings.client_properties
    if properties.get("ssl.certificate.location") or properties.get("ssl.certificate.pem"):
        return "this client certificate"
    return "an anonymous client"


def kafka_refusal(error: KafkaError, settings: Settings, doing: str = "") -> str | None:
    """One line for an error that means the cluster refuses this client (credentials, TLS trust,
    missing ACL), or None for any other (transient) error."""
    code = error.code()
    if code in _AUTHORIZATION:
        return (f"Kafka refused {_who(settings)}{' ' + doing if doing else ''}: not authorized "
                f"({_AUTHORIZATION[code]} ACL missing; `crowdsound security roles` lists what each role may do)")
    if code in (KafkaError._AUTHENTICATION, KafkaError.SASL_AUTHENTICATION_FAILED):
        if _TRANSIENT.search(error.str()):
            return None  # the connection broke during the handshake: retried, not refused
        return (f"Kafka at {settings.bootstrap_servers} refused the credentials of {_who(settings)} "
                f"(sasl.mechanism {settings.sasl_mechanism}): check sasl.username and sasl.password")
    if code == KafkaError._SSL and "verify failed" in error.str():
        return (f"TLS handshake with {settings.bootstrap_servers} failed: the broker's certificate is not trusted "
                f"(ssl.ca.location={settings.ssl_ca_location or 'the system CAs'})")
    return None


def _error_callback(settings: Settings):
    def on_error(error: KafkaError) -> None:
        refusal = kafka_refusal(error, settings)
        if refusal is None:
            log.warning("kafka: %s", error.str())
            return
        _last_refusal[:] = [refusal]
        raise CrowdsoundError(refusal)  # out of the client's poll()/flush(): the process stops with one line

    return on_error

PRODUCER_DEFAULTS: Mapping[str, Any] = {
    "enable.idempotence": True,
    "acks": "all",
    # Must match the Java client and aiokafka, or the stream join silently breaks.
    "partitioner": "murmur2_random",
    "compression.type": "zstd",
    "linger.ms": 5,
    "message.max.bytes": 8 * 1024 * 1024,
}
# For producers of audio frames: zstd saves ~10 % of crowd PCM (measured on the real recordings)
# and costs ~30 us per frame to decompress in every reader and in the broker, which decompresses
# each batch to validate it; at 100 matches (1000 frames/s) that was 6 % of the worker's CPU.
# FLAC is the encoding for thin links.
UNCOMPRESSED: Mapping[str, Any] = {"compression.type": "none"}
CONSUMER_DEFAULTS: Mapping[str, Any] = {
    "enable.auto.commit": False,
    "auto.offset.reset": "earliest",
    "isolation.level": "read_committed",
    "fetch.message.max.bytes": 8 * 1024 * 1024,
}


def _config(defaults: Mapping[str, Any], settings: Settings, overrides: Mapping[str, Any]) -> dict[str, Any]:
    config: dict[str, Any] = dict(defaults)
    config.update(settings.client_config())
    config.update(overrides)
    config.setdefault("logger", log)
    config.setdefault("error_cb", _error_callback(settings))
    return config


def make_producer(settings: Settings, extra: Mapping[str, Any] | None = None) -> Producer:
    """An idempotent, acks=all producer with the Java-compatible partitioner.

    ``extra`` holds client properties this caller needs, e.g. ``{"transactional.id": ...}``.
    """
    return Producer(_config(PRODUCER_DEFAULTS, settings, extra or {}))


def make_consumer(settings: Settings, *, group_id: str, extra: Mapping[str, Any] | None = None) -> Consumer:
    """A consumer that commits only when told to (after processing) and reads committed data."""
    return Consumer(_config(CONSUMER_DEFAULTS, settings, {"group.id": group_id, **(extra or {})}))


def make_admin(settings: Settings) -> AdminClient:
    """An admin client for the configured cluster."""
    return AdminClient(_config({}, settings, {}))


def reader_group(settings: Settings, tool: str) -> str:
    """The consumer group of a tool that assigns partitions itself and commits nothing (tail,
    listen, replay...): ``<prefix>crowdsound-reader-<tool>``, the groups the read-only role may
    use (:data:`infra.acls.READER_GROUP_PREFIX`)."""
    from infra.acls import READER_GROUP_PREFIX

    return f"{settings.topic_prefix}{READER_GROUP_PREFIX}{tool}"


def unreachable(client: Any, settings: Settings, exc: KafkaException) -> str:
    """Why a metadata request failed, in one line: the refusal the client's errors tell of
    (served now), or that the cluster cannot be reached."""
    try:
        client.poll(0.2)
    except CrowdsoundError as refusal:
        return str(refusal)
    except Exception:  # noqa: BLE001 - only here to find a better message
        pass
    if _last_refusal:
        return _last_refusal[0]
    error = exc.args[0] if exc.args else exc
    return f"cannot reach Kafka at {settings.bootstrap_servers}: {getattr(error, 'str', lambda: error)()}"


def last_refusal() -> str | None:
    """The newest refusal (credentials, TLS trust) a client of this process was told of."""
    return _last_refusal[0] if _last_refusal else None


class DeliveryErrors:
    """A delivery callback that remembers the first failed delivery, for :meth:`check` after a flush."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self.first: str | None = None

    def __call__(self, err: KafkaError | None, msg: Message) -> None:
        log_delivery_errors(err, msg)
        if err is not None and self.first is None:
            self.first = kafka_refusal(err, self._settings, f"to write {msg.topic()}") or \
                f"Kafka did not take a record on {msg.topic()}: {err.str()}"

    def check(self) -> None:
        """Raise the first failed delivery as one line."""
        if self.first is not None:
            raise CrowdsoundError(self.first)


def match_key(match_id: str) -> bytes:
    """The Kafka key of every record of a match."""
    return match_id.encode("utf-8")


def log_delivery_errors(err: KafkaError | None, msg: Message) -> None:
    """Delivery callback that logs failed deliveries (they are never silent)."""
    if err is not None:
        log.error("delivery failed topic=%s key=%r error=%s", msg.topic(), msg.key(), err)


def produce_and_wait(producer: Producer, topic: str, *, key: bytes, value: bytes, what: str = "record",
                     timeout_s: float = 15.0, settings: Settings | None = None) -> Message:
    """Produce one record and wait until the broker has it (acks=all); returns the delivered message.

    For single writes a person waits for (``prefs set``, ``cue``, the control room's buttons).

    Raises
    ------
    BrokerError
        When the broker refused the record or did not answer within ``timeout_s``; with
        ``settings``, a refusal (no ACL) names the principal.
    """
    outcome: list[tuple[KafkaError | None, Message]] = []
    producer.produce(topic, key=key, value=value, on_delivery=lambda err, msg: outcome.append((err, msg)))
    producer.flush(timeout_s)
    if not outcome:
        raise BrokerError(f"{what} not written to {topic}: no answer from the broker within {timeout_s:.0f} s")
    error, message = outcome[0]
    if error is not None:
        refusal = kafka_refusal(error, settings, f"to write {topic}") if settings is not None else None
        raise BrokerError(refusal or f"{what} not written to {topic}: {error.str()}")
    return message
