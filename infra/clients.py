"""Kafka clients made one way: producers, consumers and admin clients from :class:`Settings`.

Properties are layered: crowdsound's defaults, then the settings (bootstrap, security and
every ``KAFKA_CLIENT_*`` pass-through property), then what the calling code passes
explicitly (a group id, a transactional id).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from confluent_kafka import Consumer, KafkaError, Message, Producer
from confluent_kafka.admin import AdminClient

from infra.settings import Settings

__all__ = ["log_delivery_errors", "make_admin", "make_consumer", "make_producer", "match_key", "reader_group"]

log = logging.getLogger("crowdsound.kafka")

PRODUCER_DEFAULTS: Mapping[str, Any] = {
    "enable.idempotence": True,
    "acks": "all",
    # Must match the Java client and aiokafka, or the stream join silently breaks.
    "partitioner": "murmur2_random",
    "compression.type": "zstd",
    "linger.ms": 5,
    "message.max.bytes": 8 * 1024 * 1024,
}
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


def match_key(match_id: str) -> bytes:
    """The Kafka key of every record of a match."""
    return match_id.encode("utf-8")


def log_delivery_errors(err: KafkaError | None, msg: Message) -> None:
    """Delivery callback that logs failed deliveries (they are never silent)."""
    if err is not None:
        log.error("delivery failed topic=%s key=%r error=%s", msg.topic(), msg.key(), err)
