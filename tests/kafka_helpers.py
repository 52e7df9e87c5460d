"""Reading back what a test wrote, from the real broker."""

from __future__ import annotations

import time
import uuid

from confluent_kafka import OFFSET_BEGINNING, Message, TopicPartition

from infra.clients import make_consumer
from infra.settings import Settings


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
