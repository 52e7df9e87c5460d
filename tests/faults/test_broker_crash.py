"""The broker SIGKILLed mid-match, restarted after 10 s: nothing lost, nothing twice, music unbroken.

A live match streams in real time — venue encoder, match feed, stream worker, composer (with
audio) — and the only broker is killed without warning 25 s in. It stays down 10 s, then needs
its own start-up time. The encoder and the feed keep everything in their spools meanwhile.
Afterwards: every frame is on crowd.audio.v1 exactly once; no emotion window was emitted
twice; every window's final revision is what one undisturbed pass over the same audio and
events gives; and the music has every bar once, in order, with no hole in its audio.
"""

from __future__ import annotations

import time

import pytest
from confluent_kafka.admin import ConfigResource, ResourceType

from consumers.composer import state_topic
from infra.clients import make_admin
from producers.walltime import now_ms
from schemas.codec import decode
from tests.faults.conftest import feed_file, match_script
from tests.faults.pipeline import (
    audio_gaps,
    bars_of,
    final_windows,
    first_difference,
    groups,
    iso_time,
    music_reference,
    read_all,
    record_figures,
    reference_windows,
    wait_until_caught_up,
    window_differences,
    windows_of,
    without_wall,
)

pytestmark = [pytest.mark.kafka, pytest.mark.faults]

MATCH = "m-broker-crash"
SECONDS = 50  # of first half, after 5 s of pre-match: 55 s of audio in ~56 one-second frames


def test_a_broker_killed_mid_match_loses_nothing_and_the_music_plays_on(kafka, topics, pipeline, tmp_path):
    if not kafka.owned:
        pytest.skip("the tests use an external cluster they must not kill")
    settings = topics
    script = match_script(tmp_path, MATCH, seconds=SECONDS)
    kickoff = now_ms() + 5_000 + 3_000  # the first sample 3 s from now, kick-off 5 s of pre-match later
    pipeline.start("worker", "worker")
    pipeline.start("composer", "composer", "--instance", "c1")
    time.sleep(8)  # both have joined their groups
    pipeline.start("encoder", "encoder", "--match", MATCH, "--source", f"stadium:{script}", "--kickoff", iso_time(kickoff),
                   "--spool-dir", str(tmp_path / "audio-spool"), "--drain-timeout", "120", "--quiet", supervised=False)
    pipeline.start("feed", "feed", "--match", MATCH, "--source", str(feed_file(script, tmp_path)), "--kickoff",
                   iso_time(kickoff), "--delay", "3", "--spool-dir", str(tmp_path / "feed-spool"), "--drain-timeout",
                   "120", "--quiet", supervised=False)
    time.sleep(18)
    killed_at = time.monotonic()
    kafka.crash(down_s=10)
    outage_s = time.monotonic() - killed_at
    assert pipeline.wait("encoder", timeout_s=240) == 0, pipeline.processes["encoder"].log()[-3000:]
    assert pipeline.wait("feed", timeout_s=120) == 0, pipeline.processes["feed"].log()[-3000:]

    caught_up = wait_until_caught_up(settings, groups(settings), timeout_s=180)

    # Every frame exactly once, in order.
    frames = [decode(m.value(), expect="AudioFrame") for m in read_all(settings, "crowd.audio.v1")]
    seqs = [f["seq"] for f in frames]
    expected_frames = max(seqs) + 1 if seqs else 1  # the encoder numbers its frames 0, 1, 2, ...
    audio_s = sum(f["samples_per_channel"] for f in frames) / 48_000
    event_ids = _event_ids(tmp_path)
    events = [decode(m.value(), expect="MatchEvent") for m in read_all(settings, "match.events.v1")]
    # The windows: none emitted twice, the final ones as one undisturbed pass makes them.
    reference = reference_windows(settings, MATCH, frames, events)
    records = windows_of(settings, {MATCH})
    windows, duplicates = final_windows(records)
    # The music: every bar once and in order, the audio without a hole, the bars one composer makes.
    expected_controls = music_reference(MATCH, records)
    controls = bars_of(settings, MATCH)
    bars = [c["bar"] for c in controls if c["kind"] == "BAR"]
    chunks, missing, repeated = audio_gaps(settings, MATCH)
    tempo = min(c["tempo_bpm"] for c in controls if c["kind"] == "BAR")
    bar_samples = int(4 * 60 / tempo * 48_000)
    record_figures("broker SIGKILL", caught_up=caught_up, outage_s=round(outage_s, 1), frames_sent=expected_frames, frames_lost=len(
        set(range(expected_frames)) - set(seqs)), frames_twice=len(seqs) - len(set(seqs)), windows=len(windows),
        duplicate_windows=duplicates, windows_differing=sum(windows.get(k) != w for k, w in reference.items()),
        bars=len(bars), audio_chunks=chunks, audio_gap_samples=missing, audio_repeated_samples=repeated,
        restarts=pipeline.restarts())

    assert sorted(seqs) == list(range(expected_frames)) and seqs == sorted(seqs)  # none lost, none twice, in order
    assert audio_s == SECONDS + 5  # and the last ones not lost either: every sample of the match
    assert sorted(e["event_id"] for e in events) == sorted(event_ids)  # every event once
    assert duplicates == 0
    assert windows == reference, window_differences(windows, reference, records)
    assert bars == list(range(len(bars))) and len(bars) > 20
    assert without_wall(controls) == without_wall(expected_controls), \
        first_difference(without_wall(controls), without_wall(expected_controls))
    assert missing <= bar_samples and repeated == 0  # a gap of at most one bar (measured: none)
    # Nothing crashed; a composer whose transactional call would never return (librdkafka#5456 after
    # a broker restart) exits by its watchdog (status 70) and resumes from its last commit.
    assert set(pipeline.crashes()) <= {"composer"} and set(pipeline.crashes().get("composer", [])) <= {70}, \
        {name: p.log()[-2000:] for name, p in pipeline.processes.items()}
    _assert_state_topics_are_durable(settings)


def _event_ids(folder) -> list[str]:
    import json

    return [json.loads(line)["event_id"] for line in (folder / f"{MATCH}.jsonl").read_text().splitlines() if line]


def _assert_state_topics_are_durable(settings) -> None:
    """The worker's changelog and the composer's state topic carry an explicit min.insync.replicas."""
    admin = make_admin(settings)
    names = [t for t in admin.list_topics(timeout=10).topics
             if t.startswith(settings.topic_prefix) and t.endswith("-changelog")] + [state_topic(settings)]
    assert len(names) == 2, names
    for resource, future in admin.describe_configs([ConfigResource(ResourceType.TOPIC, n) for n in names]).items():
        entry = future.result(timeout=30)["min.insync.replicas"]
        assert entry.value == "1" and entry.source == 1, (resource.name, entry)  # 1: set on the topic (DYNAMIC_TOPIC_CONFIG)
