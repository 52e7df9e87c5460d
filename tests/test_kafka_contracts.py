"""Contracts on the real broker: records round-trip, partitions agree across clients,
dead letters keep the original bytes, data survives a broker restart."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka import AIOKafkaProducer

from infra.catalogue import CATALOGUE
from infra.clients import make_producer, match_key
from infra.deadletter import DeadLetterWriter
from infra.partitioning import partition_for
from schemas.clock import MatchClock, Period
from schemas.codec import decode, decode_any, encode
from tests.kafka_helpers import read_topic
from tests.samples import sample_record

pytestmark = pytest.mark.kafka


def test_every_record_type_round_trips_through_its_topic(topics):
    producer = make_producer(topics)
    sent = {}
    for spec in CATALOGUE:
        record = sample_record(spec.value_type, match_id=f"m-{spec.name}")
        producer.produce(topics.topic(spec.name), value=encode(spec.value_type, record), key=match_key(record["match_id"] or "x"))
        sent[topics.topic(spec.name)] = (spec.value_type, record)
    assert producer.flush(30) == 0
    for topic, (record_type, record) in sent.items():
        [message] = read_topic(topics, topic, expected=1)
        assert decode(message.value(), expect=record_type) == record


def test_a_match_lands_on_the_same_partition_from_confluent_kafka_and_aiokafka(topics):
    topic = topics.topic("crowd.audio.v1")
    match_ids = [f"match-{i}-{'x' * (i % 7)}" for i in range(40)]
    confluent_partitions: dict[str, int] = {}

    def on_delivery(err, msg):
        assert err is None
        confluent_partitions[msg.key().decode()] = msg.partition()

    producer = make_producer(topics)
    for match_id in match_ids:
        producer.produce(topic, value=b"c", key=match_key(match_id), on_delivery=on_delivery)
    assert producer.flush(30) == 0

    async def send_with_aiokafka() -> dict[str, int]:
        client = AIOKafkaProducer(bootstrap_servers=topics.bootstrap_servers)
        await client.start()
        try:
            return {m: (await client.send_and_wait(topic, b"a", key=match_key(m))).partition for m in match_ids}
        finally:
            await client.stop()

    aiokafka_partitions = asyncio.run(send_with_aiokafka())
    assert confluent_partitions == aiokafka_partitions
    assert {m: partition_for(m, 12) for m in match_ids} == aiokafka_partitions
    assert len(set(aiokafka_partitions.values())) > 6  # the keys really spread out


def test_dead_letters_keep_the_original_bytes_and_say_where_they_came_from(topics):
    producer = make_producer(topics)
    source = topics.topic("crowd.audio.v1")
    producer.produce(source, value=b"\x00not avro", key=match_key("m-dlq"))
    assert producer.flush(10) == 0
    [bad] = read_topic(topics, source, expected=1)

    writer = DeadLetterWriter(producer, topics, processor="tests")
    writer.from_message(bad, reason="not a crowdsound record", error_type="SchemaError",
                        clock=MatchClock(Period.SECOND_HALF, 5000))
    writer.from_input(target_topic=topics.topic("match.events.v1"), source="feed.jsonl:3", value=b"{oops",
                      reason="line 3 is not JSON", error_type="JSONDecodeError", match_id="m-dlq")
    assert producer.flush(10) == 0

    [audio_letter] = read_topic(topics, topics.topic("crowd.audio.dlq.v1"), expected=1)
    record_type, letter = decode_any(audio_letter.value())
    assert record_type == "DeadLetter"
    assert letter["original_value"] == b"\x00not avro"
    assert (letter["source_topic"], letter["source_partition"], letter["source_offset"]) == (source, bad.partition(), bad.offset())
    assert letter["match_id"] == "m-dlq" and letter["reason"] == "not a crowdsound record"
    assert audio_letter.partition() == bad.partition()  # the dead letter stays with its match

    [feed_letter] = read_topic(topics, topics.topic("match.events.dlq.v1"), expected=1)
    letter = decode(feed_letter.value(), expect="DeadLetter")
    assert letter["source"] == "feed.jsonl:3" and letter["original_value"] == b"{oops"
    assert letter["source_topic"] is None


def test_data_written_before_broker_down_is_read_after_broker_up(kafka, topics):
    if not kafka.owned:
        pytest.skip("the tests use an external cluster they must not restart")
    topic = topics.topic("match.events.v1")
    producer = make_producer(topics)
    records = [dict(sample_record("MatchEvent", match_id="m-restart"), event_id=f"e{i}") for i in range(5)]
    for record in records:
        producer.produce(topic, value=encode("MatchEvent", record), key=match_key("m-restart"))
    assert producer.flush(10) == 0
    del producer

    kafka.restart()

    messages = read_topic(topics, topic, expected=5, timeout_s=60)
    assert [decode(m.value(), expect="MatchEvent") for m in messages] == records
