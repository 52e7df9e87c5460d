"""The topic catalogue is complete and consistent with the contracts."""

from __future__ import annotations

import pytest

from infra.catalogue import (
    CATALOGUE,
    DEAD_LETTER_HEADROOM_BYTES,
    dead_letter_topic,
    min_insync_replicas,
    spec_for,
    topic_configs,
)
from infra.errors import CrowdsoundError
from infra.partitioning import murmur2, partition_for
from infra.settings import Settings
from schemas.codec import RECORD_TYPES, schema_of

DESIGN_TOPICS = {
    "crowd.audio.v1", "match.events.v1", "crowd.features.v1", "crowd.emotions.v1",
    "music.preferences.v1", "music.cues.v1", "music.control.v1", "music.audio.v1",
}


def test_catalogue_covers_the_design_topics_and_a_dead_letter_topic_for_each_consumed_one():
    names = {spec.name for spec in CATALOGUE}
    assert DESIGN_TOPICS <= names
    for consumed in ("crowd.audio.v1", "match.events.v1", "crowd.emotions.v1", "music.preferences.v1",
                     "music.cues.v1"):
        assert dead_letter_topic(consumed) in names
        assert spec_for(dead_letter_topic(consumed)).value_type == "DeadLetter"


def test_every_value_type_has_a_schema_and_every_record_type_a_topic():
    for spec in CATALOGUE:
        assert schema_of(spec.value_type).record_type == spec.value_type
    assert set(RECORD_TYPES) <= {spec.value_type for spec in CATALOGUE}


def test_all_match_keyed_topics_share_the_deployment_partition_count():
    # Co-partitioning: a match must land on the same partition number on every topic.
    assert all(spec.partitions is None for spec in CATALOGUE)


def test_preferences_are_compacted_and_audio_allows_large_messages():
    assert spec_for("music.preferences.v1").cleanup_policy == "compact"
    assert int(topic_configs(spec_for("music.audio.v1"))["max.message.bytes"]) >= 2 * 1024 * 1024


def test_prefixed_names_resolve_and_unknown_names_are_refused():
    settings = Settings.from_env({"CROWDSOUND_TOPIC_PREFIX": "t1."})
    assert spec_for("t1.crowd.audio.v1", settings).name == "crowd.audio.v1"
    with pytest.raises(CrowdsoundError, match="crowd.audoi.v1"):
        spec_for("crowd.audoi.v1")


@pytest.mark.parametrize(("key", "signed"), [
    # Known answers from Apache Kafka's UtilsTest.testMurmur2 (and checked against kafka-clients).
    (b"21", -973932308),
    (b"foobar", -790332482),
    (b"a-little-bit-long-string", -985981536),
    (b"a-little-bit-longer-string", -1486304829),
    (b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971),
    (b"abc", 479470107),
])
def test_murmur2_matches_the_java_client(key, signed):
    assert murmur2(key) == signed & 0xFFFFFFFF


def test_partition_for_uses_the_positive_hash():
    assert partition_for("21", 12) == ((-973932308 & 0x7FFFFFFF) % 12)


def test_every_dead_letter_topic_takes_the_largest_record_of_its_sources_with_room_to_spare():
    # A bad record at its source's size limit must still fit in a dead letter (original bytes
    # plus the reason), or the consumer could never get past it.
    for spec in CATALOGUE:
        if spec.value_type != "DeadLetter" and dead_letter_topic(spec.name) in {s.name for s in CATALOGUE}:
            dlq = spec_for(dead_letter_topic(spec.name))
            assert dlq.max_message_bytes >= spec.max_message_bytes + DEAD_LETTER_HEADROOM_BYTES, spec.name


def test_topics_written_at_the_venue_take_the_brokers_clock():
    # Venue clocks can be hours off; record times (seeks, retention, the bound on event time)
    # must come from the cluster.
    for name in ("crowd.audio.v1", "match.events.v1", "crowd.emotions.v1"):
        assert topic_configs(spec_for(name))["message.timestamp.type"] == "LogAppendTime"


def test_min_insync_replicas_follows_an_explicit_replication_factor():
    audio = spec_for("crowd.audio.v1")
    assert "min.insync.replicas" not in topic_configs(audio, Settings.from_env({}))  # broker default: the broker's
    assert topic_configs(audio, Settings.from_env({"CROWDSOUND_REPLICATION_FACTOR": "3"}))["min.insync.replicas"] == "2"
    assert topic_configs(audio, Settings.from_env({"CROWDSOUND_REPLICATION_FACTOR": "1"}))["min.insync.replicas"] == "1"
    assert min_insync_replicas(Settings.from_env({"CROWDSOUND_MIN_INSYNC_REPLICAS": "3"}), 5) == 3
