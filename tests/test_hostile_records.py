"""One hostile record cannot hang, crash or derail the stream worker (its logic, without Kafka).

Each record below was once enough to hurt a live match: a clock far past the start of its
period made the worker loop once per window up to it; a FLAC payload a few kB long decoded
to hours of audio; one forged frame moved the match's watermark so that every real frame
after it was dropped; a venue clock hours fast put its hours into the windows. Each is now
dead-lettered with the reason (or bounded), and the match carries on as if it never came.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
import soundfile

from infra.errors import SchemaError
from infra.settings import Settings
from schemas.audio import decode_payload, encode_payload
from schemas.codec import decode, encode
from streams.processor import MAX_PENDING_EVENTS, RecordProcessor, heard_in
from tests.samples import sample_record
from tests.test_join import fake_model

SETTINGS = Settings.from_env({"CROWDSOUND_TOPIC_PREFIX": "p.", "CROWDSOUND_GRACE_MS": "10000"})
AUDIO, EVENTS, DLQ = "p.crowd.audio.v1", "p.match.events.v1", "p.crowd.audio.dlq.v1"
WALL = 1_000_000_000_000


def _frame(seq: int, *, match_id: str = "m1", **changes) -> bytes:
    rng = np.random.default_rng(seq)
    samples = (rng.standard_normal(4800) * 800).astype(np.int16)
    record = dict(sample_record("AudioFrame", match_id=match_id), seq=seq,
                  clock={"period": "FIRST_HALF", "ms": seq * 100}, wall_time_ms=WALL + seq * 100,
                  payload=encode_payload(samples, encoding="PCM_S16LE", sample_rate=48_000))
    return encode("AudioFrame", {**record, **changes})


class Run:
    """A processor fed records of one match like the worker feeds it: offsets, record times."""

    def __init__(self) -> None:
        self.processor = RecordProcessor(SETTINGS, predict=fake_model, model_version="test")
        self.offsets = {AUDIO: 0, EVENTS: 0}
        self.outputs: list = []

    def feed(self, value: bytes, *, topic: str = AUDIO, key: bytes = b"m1", at_ms: int | None = None) -> list:
        offset = self.offsets[topic]
        self.offsets[topic] += 1
        applied = self.processor.apply(topic=topic, partition=0, offset=offset, key=key, value=value, now_ms=0,
                                       timestamp_ms=at_ms)
        self.outputs += applied.outputs
        return applied.outputs

    def frames(self, seqs, **changes) -> None:
        for seq in seqs:
            self.feed(_frame(seq, **changes), at_ms=WALL + seq * 100)

    def windows(self) -> dict:
        found = {}
        for out in self.outputs:
            if out.topic == "p.crowd.emotions.v1":
                window = decode(out.value, expect="EmotionWindow")
                found[window["clock"]["ms"]] = window
        return found


def _dead_letter(outputs: list) -> dict:
    [letter] = outputs
    assert letter.topic.endswith(".dlq.v1")
    return decode(letter.value, expect="DeadLetter")


@pytest.mark.timeout(30)
def test_a_frame_with_a_clock_far_past_its_period_is_dead_lettered_at_once():
    run = Run()
    run.frames(range(50))
    letter = _dead_letter(run.feed(_frame(50, clock={"period": "FIRST_HALF", "ms": 10**13}), at_ms=WALL + 5_000))
    assert "no period lasts" in letter["reason"] and letter["error_type"] == "SchemaError"


def test_a_forged_frame_leaping_ahead_is_dead_lettered_and_the_match_goes_on():
    reference = Run()
    reference.frames(range(100))
    run = Run()
    run.frames(range(50))
    forged = _frame(50, session_id="forger", clock={"period": "FIRST_HALF", "ms": 3 * 3_600_000})
    letter = _dead_letter(run.feed(forged, at_ms=WALL + 5_000))
    assert letter["error_type"] == "ClockLeap" and "leaps" in letter["reason"]
    seq_forged = encode("AudioFrame", dict(decode(_frame(50), expect="AudioFrame"), seq=10**9))  # the real session, a seq far ahead: would make every real frame a "duplicate"
    assert _dead_letter(run.feed(seq_forged, at_ms=WALL + 5_000))["error_type"] == "ClockLeap"
    run.frames(range(50, 100))
    assert run.windows() == reference.windows()


def test_an_encoder_back_after_an_outage_is_no_leap():
    run = Run()
    run.frames(range(30))
    # Ten minutes later (record time), the encoder resumes ten minutes further on.
    run.frames(range(6000, 6030))
    assert not [o for o in run.outputs if o.topic == DLQ]
    assert max(run.windows()) >= 600_000


@pytest.mark.timeout(30)
def test_a_flac_bomb_is_refused_without_decoding_it():
    out = io.BytesIO()  # an hour of silence: FLAC makes it small
    with soundfile.SoundFile(out, "w", 48_000, 1, format="FLAC", subtype="PCM_16") as flac:
        for _ in range(3600):
            flac.write(np.zeros((48_000, 1), dtype=np.int16))
    bomb = out.getvalue()
    assert len(bomb) < 2 * 1024 * 1024  # it fits in one Kafka record
    with pytest.raises(SchemaError, match="more than 4800"):
        decode_payload(bomb, encoding="FLAC", channels=1, sample_rate=48_000, max_samples=4800)
    run = Run()
    run.frames(range(20))
    letter = _dead_letter(run.feed(_frame(20, encoding="FLAC", payload=bomb), at_ms=WALL + 2_000))
    assert letter["error_type"] == "BadAudio" and "more than 4800" in letter["reason"]


def test_a_venue_clock_hours_fast_is_bounded_by_the_record_time():
    run = Run()
    six_hours = 6 * 3_600_000
    for seq in range(50):  # frames stamped by a clock 6 h fast; the broker stamped the records
        run.feed(_frame(seq, wall_time_ms=WALL + six_hours + seq * 100), at_ms=WALL + seq * 100)
    windows = run.windows()
    assert windows and all(w["audio_wall_time_ms"] <= WALL + 5_000 for w in windows.values())
    stored = run.processor.snapshot(b"m1")
    assert heard_in(stored) <= WALL + 5_000


def test_garbage_for_an_unknown_match_leaves_no_state():
    run = Run()
    bad = _frame(0, match_id="nobody", payload=b"\x01")  # PCM of half a sample
    _dead_letter(run.feed(bad, key=b"nobody", at_ms=WALL))
    assert b"nobody" not in run.processor.matches


def test_a_match_keeps_a_bounded_backlog_of_events_waiting_for_its_audio():
    run = Run()
    run.frames(range(10))
    future = {"period": "SECOND_HALF", "ms": 60_000}
    letters = []
    for i in range(MAX_PENDING_EVENTS + 5):
        event = dict(sample_record("MatchEvent", match_id="m1"), event_id=f"e{i}", clock=future)
        letters += [o for o in run.feed(encode("MatchEvent", event), topic=EVENTS, at_ms=WALL)
                    if o.topic.endswith(".dlq.v1")]
    assert len(letters) == 5
    assert decode(letters[0].value, expect="DeadLetter")["error_type"] == "TooManyEvents"


def test_a_finished_match_is_named_once_its_partition_has_heard_hours_more():
    run = Run()
    run.frames(range(10))  # m1 at WALL
    hour = 3_600_000
    assert run.processor.finished(6 * hour) == []
    later = _frame(0, match_id="m2", wall_time_ms=WALL + 7 * hour)
    run.feed(later, key=b"m2", at_ms=WALL + 7 * hour)
    stored_elsewhere = (b"m28", b'{"heard":%d,"join":{}}' % WALL)  # in the table, not in memory (partition 0)
    named = dict(run.processor.finished(6 * hour, [stored_elsewhere]))
    assert named == {b"m1": 0, b"m28": 0}
