"""`crowdsound topics apply/list`, `broker status` and `tail` against the real broker, run as a user would."""

from __future__ import annotations

import json
import time

import pytest
from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource, ResourceType

from infra import topics as topics_module
from infra.catalogue import CATALOGUE, spec_for
from infra.clients import make_admin, make_producer, match_key
from infra.partitioning import partition_for
from infra.topics import apply_catalogue, describe_catalogue
from schemas.codec import encode
from tests.conftest import run_cli
from tests.samples import sample_record

pytestmark = pytest.mark.kafka


def test_apply_twice_changes_nothing_the_second_time(settings):
    first = run_cli("topics", "apply", settings=settings)
    assert first.returncode == 0, first.stderr
    assert first.stdout.count("created") >= len(CATALOGUE)
    second = run_cli("topics", "apply", settings=settings)
    assert second.returncode == 0
    assert f"0 created, 0 altered, {len(CATALOGUE)} unchanged, 0 conflict" in second.stdout


def test_a_changed_retention_is_altered_both_on_drift_and_on_a_catalogue_change(settings, monkeypatch):
    admin = make_admin(settings)
    apply_catalogue(admin, settings)
    topic = settings.topic("crowd.emotions.v1")
    drift = ConfigResource(ResourceType.TOPIC, topic, incremental_configs=[
        ConfigEntry("retention.ms", "60000", incremental_operation=AlterConfigOpType.SET)])
    for future in admin.incremental_alter_configs([drift]).values():
        future.result(timeout=30)
    _wait_for_retention(admin, settings, topic, "60000")  # config changes reach the broker asynchronously

    changes = {c.topic: c for c in apply_catalogue(admin, settings)}
    assert changes[topic].kind == "altered" and "retention.ms 60000 -> 31536000000" in changes[topic].detail
    _wait_for_retention(admin, settings, topic, "31536000000")

    import dataclasses

    edited = tuple(dataclasses.replace(s, retention_ms=2 * 86_400_000) if s.name == "crowd.audio.v1" else s
                   for s in CATALOGUE)
    monkeypatch.setattr(topics_module, "CATALOGUE", edited)
    changes = {c.topic: c for c in apply_catalogue(admin, settings)}
    assert changes[settings.topic("crowd.audio.v1")].kind == "altered"
    assert sum(c.kind == "altered" for c in changes.values()) == 1


def _wait_for_retention(admin, settings, topic, value, timeout_s=20.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        state = {s.name: s for s in describe_catalogue(admin, settings)}[topic]
        if state.configs["retention.ms"] == value:
            return
        time.sleep(0.2)
    raise AssertionError(f"{topic} retention.ms is {state.configs['retention.ms']}, expected {value}")


def test_a_partition_mismatch_is_a_conflict_not_a_silent_repartition(settings):
    admin = make_admin(settings)
    apply_catalogue(admin, settings.with_overrides(partitions=3))
    result = run_cli("topics", "apply", settings=settings)
    assert result.returncode == 1
    assert "conflict" in result.stdout and "has 3 partitions, catalogue wants 12" in result.stdout
    state = {s.name: s for s in describe_catalogue(admin, settings)}
    assert state[settings.topic("crowd.audio.v1")].partitions == 3


def test_topics_list_shows_the_catalogue_with_settings(topics):
    result = run_cli("topics", "list", settings=topics)
    assert result.returncode == 0
    lines = {line.split()[0]: line for line in result.stdout.splitlines()[1:]}
    assert "compact" in lines[topics.topic("music.preferences.v1")]
    assert "7d" in lines[topics.topic("crowd.audio.v1")] and "2MiB" in lines[topics.topic("crowd.audio.v1")]
    assert "forever" in lines[topics.topic("match.events.v1")]
    assert all(" 12 " in line for line in lines.values())


def test_broker_status_reports_the_running_broker(kafka):
    if not kafka.owned:
        pytest.skip("external cluster")
    result = run_cli("broker", "status", settings=kafka.settings)
    assert result.returncode == 0
    assert "running" in result.stdout and kafka.settings.bootstrap_servers in result.stdout
    assert "4." in result.stdout  # Kafka 4.x
    up_again = run_cli("broker", "up", settings=kafka.settings)
    assert up_again.returncode == 0 and "already running" in up_again.stdout


def _produce_events(settings, match_ids):
    producer = make_producer(settings)
    for i, match_id in enumerate(match_ids):
        record = dict(sample_record("MatchEvent", match_id=match_id), event_id=f"e{i}")
        producer.produce(settings.topic("match.events.v1"), value=encode("MatchEvent", record), key=match_key(match_id))
    producer.produce(settings.topic("match.events.v1"), value=b"garbage", key=match_key(match_ids[0]))
    assert producer.flush(10) == 0


def test_tail_json_decodes_every_record_and_survives_garbage(topics):
    _produce_events(topics, ["m-a", "m-b", "m-a"])
    audio = sample_record("AudioFrame", match_id="m-a")
    producer = make_producer(topics)
    producer.produce(topics.topic("crowd.audio.v1"), value=encode("AudioFrame", audio), key=match_key("m-a"))
    assert producer.flush(10) == 0

    result = run_cli("tail", "match.events.v1", "--from-beginning", "--max", "4", "--timeout", "10", "--json",
                     settings=topics)
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(rows) == 4
    decoded = [r for r in rows if "record" in r]
    assert sorted(r["record"]["event_id"] for r in decoded) == ["e0", "e1", "e2"]
    assert all(r["record"]["clock"] == "23:10" and r["type"] == "MatchEvent" for r in decoded)
    assert [r for r in rows if "error" in r][0]["error"].startswith("not a crowdsound record")

    audio_rows = run_cli("tail", "crowd.audio.v1", "--from-beginning", "--max", "1", "--timeout", "10", "--json",
                         settings=topics)
    [row] = [json.loads(line) for line in audio_rows.stdout.splitlines()]
    assert row["record"]["payload"] == "<9600 bytes>"  # summarised, never dumped raw


def test_tail_match_reads_only_that_match(topics):
    match_ids = ["m-one", "m-two", "m-three", "m-four"]
    _produce_events(topics, match_ids)
    result = run_cli("tail", "match.events.v1", "--match", "m-two", "--from-beginning", "--timeout", "3",
                     settings=topics)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 1 and "key=m-two" in lines[0] and "MatchEvent" in lines[0]
    assert f"[{partition_for('m-two', 12)}]" in lines[0]
    assert spec_for("match.events.v1").value_type == "MatchEvent"


def test_tail_of_a_missing_topic_is_one_line(settings):
    result = run_cli("tail", "crowd.audio.v1", "--timeout", "1", settings=settings)
    assert result.returncode == 1
    assert "does not exist" in result.stderr and len(result.stderr.strip().splitlines()) == 1
