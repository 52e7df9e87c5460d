"""Reading back what a test wrote, from the real broker; running crowdsound processes against it."""

from __future__ import annotations

import os
import time
import uuid

from confluent_kafka import OFFSET_BEGINNING, Message, TopicPartition

from infra.clients import make_consumer
from infra.ports import free_port  # noqa: F401 - the tests take it from here
from infra.settings import Settings


def cli_env(settings: Settings, **extra: str) -> dict[str, str]:
    """The environment of a ``crowdsound`` process run against ``settings``' cluster and prefix
    (and, for a secure cluster, with ``settings``' client properties file)."""
    security = {"KAFKA_CONFIG_FILE": str(settings.config_file)} if settings.config_file else {}
    # A worker's Faust data directory goes with the test's other state, not into the
    # working directory (the repository) where Faust puts it by default. Faust makes the
    # directory itself but not its parents.
    data_dir = settings.state_dir / "streams-data" / settings.topic_prefix.rstrip(".")
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    return {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": settings.bootstrap_servers,
            "CROWDSOUND_TOPIC_PREFIX": settings.topic_prefix, "CROWDSOUND_PARTITIONS": str(settings.partitions),
            "CROWDSOUND_BROKER_PORT": str(settings.broker_port), "CROWDSOUND_STATE_DIR": str(settings.state_dir),
            "APP_DATADIR": str(data_dir), **security, **extra}


def read_topic(settings: Settings, topic: str, *, expected: int, timeout_s: float = 30.0) -> list[Message]:
    """Every record of ``topic`` (deployed name) from the beginning, until ``expected`` arrive."""
    consumer = make_consumer(settings, group_id=f"read-{uuid.uuid4().hex[:8]}")
    try:
        metadata = consumer.list_topics(topic, timeout=10).topics[topic]
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in metadata.partitions])
        messages: list[Message] = []
        deadline = time.monotonic() + timeout_s
        while len(messages) < expected and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is not None and not message.error():
                messages.append(message)
        # Linger briefly: a test must also notice records it did not expect.
        end = time.monotonic() + 0.5
        while time.monotonic() < end:
            message = consumer.poll(0.1)
            if message is not None and not message.error():
                messages.append(message)
        return messages
    finally:
        consumer.close()
