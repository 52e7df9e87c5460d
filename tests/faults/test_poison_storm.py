"""A poison storm: 10,000 malformed records mixed into two live matches.

Two synthetic matches stream in real time through the worker and the composer. Once both
have music, 10,000 records nobody should ever send arrive on the topics those two read,
keyed to the live matches (so they land on their partitions, between real records):
garbage, truncated Avro, records of the wrong type, clocks days past any period, frames
and windows leaping hours ahead, FLAC bombs, NaN emotions, keys naming another match, and
records at the topics' size limits. Promised: no process crashes, every one of them is a
dead letter with its reason, /healthz stays 200 because the processes stay well, and both
matches' windows and music are exactly what they would have been without the storm.
"""

from __future__ import annotations

import io
import json
import random
import threading
import time
import urllib.error
import urllib.request
from collections import Counter

import numpy as np
import pytest
import soundfile

from infra.clients import make_producer, match_key
from schemas.codec import decode, encode
from tests.faults.conftest import match_script
from tests.faults.pipeline import (
    bars_of,
    final_windows,
    groups,
    music_reference,
    read_all,
    record_figures,
    records_of,
    reference_windows,
    wait_until_caught_up,
    windows_of,
    without_wall,
)
from tests.kafka_helpers import free_port
from tests.samples import sample_record

pytestmark = [pytest.mark.kafka, pytest.mark.faults]

MATCHES = ("m-storm-a", "m-storm-b")
SECONDS = 55
# How many of each kind, per topic: 10,000 in all.
STORM = {
    "crowd.audio.v1": {"garbage": 1500, "truncated": 1000, "wrong_type": 800, "huge_clock": 500, "leap": 400,
                       "flac_bomb": 300, "other_match": 480, "oversized": 20},
    "match.events.v1": {"garbage": 800, "truncated": 600, "huge_clock": 580, "oversized": 20},
    "crowd.emotions.v1": {"garbage": 800, "truncated": 500, "wrong_type": 400, "nan": 500, "huge_clock": 400,
                          "leap": 200, "other_match": 180, "oversized": 20},
}
TOTAL = sum(sum(kinds.values()) for kinds in STORM.values())


def flac_bomb(seconds: int = 600) -> bytes:
    """A FLAC stream of ten minutes of silence: 90 kB that decode to 55 MB (written a second at a time)."""
    out = io.BytesIO()
    second = np.zeros((48_000, 1), dtype=np.int16)
    with soundfile.SoundFile(out, "w", 48_000, 1, format="FLAC", subtype="PCM_16") as flac:
        for _ in range(seconds):
            flac.write(second)
    return out.getvalue()


class Poisoner:
    """Makes the poison of each kind from real-looking records of a live match."""

    def __init__(self, seed: int = 14) -> None:
        self.rng = random.Random(seed)
        self.bomb = flac_bomb()

    def make(self, topic: str, kind: str, match_id: str) -> tuple[bytes, bytes]:
        other = MATCHES[1] if match_id == MATCHES[0] else MATCHES[0]
        rng = self.rng
        frame = dict(sample_record("AudioFrame", match_id=match_id), session_id="forged", seq=rng.randrange(10**6),
                     clock={"period": "FIRST_HALF", "ms": rng.randrange(0, 60_000)},
                     wall_time_ms=int(time.time() * 1000))
        window = dict(sample_record("EmotionWindow", match_id=match_id), model_version="poison", events=[],
                      clock={"period": "FIRST_HALF", "ms": rng.randrange(0, 60_000)})
        event = dict(sample_record("MatchEvent", match_id=match_id), event_id=f"poison-{rng.random()}")
        record_type, record = {"crowd.audio.v1": ("AudioFrame", frame), "match.events.v1": ("MatchEvent", event),
                               "crowd.emotions.v1": ("EmotionWindow", window)}[topic]
        key = match_key(match_id)
        if kind == "garbage":
            return key, rng.randbytes(rng.randrange(1, 300))
        if kind == "truncated":
            whole = encode(record_type, record)
            return key, whole[:rng.randrange(10, len(whole) - 1)]
        if kind == "wrong_type":
            return key, encode("MatchEvent" if record_type != "MatchEvent" else "Cue",
                               sample_record("MatchEvent" if record_type != "MatchEvent" else "Cue", match_id))
        if kind == "huge_clock":
            return key, encode(record_type, {**record, "clock": {"period": "FIRST_HALF", "ms": rng.randrange(10**9, 10**15)}})
        if kind == "leap":  # a valid clock, hours ahead of the match
            return key, encode(record_type, {**record, "clock": {"period": "FIRST_HALF", "ms": rng.randrange(2, 5) * 3_600_000}})
        if kind == "flac_bomb":
            return key, encode("AudioFrame", {**frame, "encoding": "FLAC", "payload": self.bomb})
        if kind == "nan":
            field = rng.choice(["arousal", "valence", "probabilities"])
            bad = {"probabilities": {"CALM": float("nan")}} if field == "probabilities" else {field: float("nan")}
            return key, encode("EmotionWindow", {**window, **bad})
        if kind == "other_match":
            return match_key(other), encode(record_type, record)
        if kind == "oversized":  # incompressible bytes up to the topic's limit
            limit = 2 * 1024 * 1024 if topic == "crowd.audio.v1" else 1024 * 1024
            return key, rng.randbytes(limit - 4096)
        raise AssertionError(kind)


def _storm(settings, duration_s: float) -> dict[tuple[str, int, int], str]:
    """Produce the poison over ``duration_s``; returns (topic, partition, offset) -> kind."""
    poisoner = Poisoner()
    plan = [(topic, kind) for topic, kinds in STORM.items() for kind, count in kinds.items() for _ in range(count)]
    poisoner.rng.shuffle(plan)
    producer = make_producer(settings, {"linger.ms": 20})
    big = make_producer(settings, {"linger.ms": 0, "batch.size": 1})  # a record at the limit goes alone in its batch
    sent: dict[tuple[str, int, int], str] = {}
    failures: list[str] = []

    def delivered(kind):
        def callback(err, msg):
            if err is not None:
                failures.append(f"{kind}: {err}")
            else:
                sent[(msg.topic(), msg.partition(), msg.offset())] = kind
        return callback

    started = time.monotonic()
    for index, (topic, kind) in enumerate(plan):
        key, value = poisoner.make(topic, kind, MATCHES[index % 2])
        target = big if kind == "oversized" else producer
        target.produce(settings.topic(topic), key=key, value=value, on_delivery=delivered(kind))
        target.poll(0)
        if kind == "oversized":
            big.flush(30)
        pause = started + duration_s * (index + 1) / len(plan) - time.monotonic()
        if pause > 0:
            producer.poll(pause)
    producer.flush(60)
    big.flush(60)
    assert not failures, failures[:5]
    return sent


def _health(ports: dict[str, int], stop: threading.Event, seen: Counter) -> None:
    while not stop.wait(1.0):
        for name, port in ports.items():
            try:
                status = urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=3).status
            except urllib.error.HTTPError as error:
                status = error.code
            except OSError:
                status = 0
            seen[(name, status)] += 1


def test_ten_thousand_malformed_records_are_dead_lettered_and_the_matches_play_on(topics, pipeline, tmp_path):
    settings = topics
    ports = {"worker": free_port(), "composer": free_port()}
    pipeline.start("worker", "worker", "--metrics-port", str(ports["worker"]))
    pipeline.start("composer", "composer", "--instance", "c1", "--metrics-port", str(ports["composer"]))
    time.sleep(8)
    for seed, match_id in enumerate(MATCHES, start=3):
        script = match_script(tmp_path, match_id, seconds=SECONDS, seed=seed)
        pipeline.start(f"stadium-{match_id}", "stadium", "--script", str(script), "--spool-dir",
                       str(tmp_path / f"spool-{match_id}"), "--quiet", supervised=False)
    _wait_for_music(settings, timeout_s=90)

    health: Counter = Counter()
    stop = threading.Event()
    watcher = threading.Thread(target=_health, args=(ports, stop, health), daemon=True)
    watcher.start()
    try:
        poison = _storm(settings, duration_s=35)
    finally:
        for match_id in MATCHES:
            assert pipeline.wait(f"stadium-{match_id}", timeout_s=180) == 0
        time.sleep(5)
        stop.set()
        watcher.join(10)
    assert len(poison) == TOTAL
    caught_up = wait_until_caught_up(settings, groups(settings), timeout_s=180)

    letters = {}
    for name, source in (("crowd.audio.dlq.v1", "crowd.audio.v1"), ("match.events.dlq.v1", "match.events.v1"),
                         ("crowd.emotions.dlq.v1", "crowd.emotions.v1")):
        for message in read_all(settings, name):
            letter = decode(message.value(), expect="DeadLetter")
            letters.setdefault((letter["source_topic"], letter["source_partition"], letter["source_offset"]), []).append(letter)
    kept = {where: letters[where] for where in poison if where in letters}
    reasons = Counter(f"{poison[w]}->{ls[0]['error_type']}" for w, ls in kept.items())
    unexplained = [w for w, ls in kept.items() if not all(letter["reason"].strip() for letter in ls)]
    real_dead = {w: ls for w, ls in letters.items() if w not in poison}

    # Both matches' windows and music, as if there had been no storm.
    records = [w for w in windows_of(settings, set(MATCHES)) if w["model_version"] != "poison"]
    windows, duplicates = final_windows(records)
    reference, music_differs = {}, {}
    frames = read_all(settings, "crowd.audio.v1")
    events = read_all(settings, "match.events.v1")
    for match_id in MATCHES:
        real_frames = [f for f in records_of(frames, "AudioFrame", match_id) if f["session_id"] != "forged"]
        real_events = [e for e in records_of(events, "MatchEvent", match_id) if not e["event_id"].startswith("poison-")]
        reference.update(reference_windows(settings, match_id, real_frames, real_events))
        mine = [w for w in records if w["match_id"] == match_id]
        expected_controls = music_reference(match_id, mine)
        controls = bars_of(settings, match_id)
        music_differs[match_id] = without_wall(controls) != without_wall(expected_controls)
    record_figures("poison storm", caught_up=caught_up, sent=TOTAL, dead_lettered=len(kept), dead_letters_written=sum(map(len, kept.values())),
                   without_reason=len(unexplained), real_records_dead_lettered=len(real_dead), by_kind=dict(reasons),
                   health=dict((f"{n}:{s}", c) for (n, s), c in health.items()), restarts=pipeline.restarts(),
                   duplicate_windows=duplicates, windows=len(windows),
                   windows_differing=sum(windows.get(k) != w for k, w in reference.items()))

    assert not pipeline.crashes(), {n: p.log()[-3000:] for n, p in pipeline.processes.items()}
    assert len(kept) == TOTAL and not unexplained  # every one of them a dead letter, with its reason
    assert not real_dead, list(real_dead.values())[:3]
    assert windows == reference and duplicates == 0
    assert not any(music_differs.values()), music_differs
    assert {status for (_, status) in health} == {200}, health



def _wait_for_music(settings, timeout_s: float) -> None:
    """Until both matches have windows and bars (so the poison meets matches in play)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        bars = {r["match_id"] for r in (decode(m.value(), expect="MusicControl") for m in
                read_all(settings, "music.control.v1"))}
        if set(MATCHES) <= bars:
            return
        time.sleep(2)
    raise AssertionError("no music for both matches")


if __name__ == "__main__":  # the poison, for a look: python -m tests.faults.test_poison_storm
    poisoner = Poisoner()
    for topic, kinds in STORM.items():
        for kind in kinds:
            key, value = poisoner.make(topic, kind, MATCHES[0])
            print(topic, kind, key, len(value), json.dumps(value[:24].hex()))
