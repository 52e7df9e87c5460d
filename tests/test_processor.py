"""The stream worker's record logic without Kafka: dead letters, idempotence, late events."""

from __future__ import annotations

import numpy as np
import pytest

from infra.settings import Settings
from schemas.audio import encode_payload
from schemas.codec import decode, decode_any, encode
from streams.processor import RecordProcessor, unpack_state
from tests.samples import sample_record
from tests.test_join import fake_model

SETTINGS = Settings.from_env({"CROWDSOUND_TOPIC_PREFIX": "p.", "CROWDSOUND_GRACE_MS": "10000"})
AUDIO, EVENTS = "p.crowd.audio.v1", "p.match.events.v1"


def _frame(seq: int, *, loud: bool = False, match_id: str = "m1") -> bytes:
    rng = np.random.default_rng(seq)
    samples = (rng.standard_normal(4800) * (8000 if loud else 800)).astype(np.int16)
    record = dict(sample_record("AudioFrame", match_id=match_id), seq=seq,
                  clock={"period": "FIRST_HALF", "ms": seq * 100}, wall_time_ms=1_000_000 + seq * 100,
                  payload=encode_payload(samples, encoding="PCM_S16LE", sample_rate=48_000))
    return encode("AudioFrame", record)


@pytest.fixture
def processor() -> RecordProcessor:
    return RecordProcessor(SETTINGS, predict=fake_model, model_version="test")


def _feed(processor, records, state=None):
    outputs = []
    for topic, offset, value in records:
        result = processor.process(state=state, topic=topic, partition=3, offset=offset, key=b"m1", value=value, now_ms=0)
        state = result.state or state
        outputs += result.outputs
    return state, outputs


def test_audio_becomes_emotion_windows_on_the_emotions_topic(processor):
    state, outputs = _feed(processor, [(AUDIO, i, _frame(i)) for i in range(50)])
    windows = [decode(o.value, expect="EmotionWindow") for o in outputs]
    assert {o.topic for o in outputs} == {"p.crowd.emotions.v1"} and all(o.key == b"m1" for o in outputs)
    assert [w["clock"]["ms"] for w in windows] == [0, 1000, 2000]  # 5 s of audio: [0,3), [1,4), [2,5)
    assert unpack_state(state)["applied"] == {AUDIO: 49}


def test_a_redelivered_record_is_skipped(processor):
    state, _ = _feed(processor, [(AUDIO, i, _frame(i)) for i in range(40)])
    again = processor.process(state=state, topic=AUDIO, partition=3, offset=39, key=b"m1", value=_frame(39), now_ms=0)
    assert again.skipped and again.state is None and again.outputs == []


@pytest.mark.parametrize(("key", "value", "reason"), [
    (b"m1", b"garbage", "not a crowdsound record"),
    (b"other", None, "not the record's match_id"),
])
def test_bad_records_go_to_the_dead_letter_topic_with_the_reason(processor, key, value, reason):
    value = value or _frame(0)
    result = processor.process(state=None, topic=AUDIO, partition=3, offset=7, key=key, value=value, now_ms=0)
    [letter] = result.outputs
    assert letter.topic == "p.crowd.audio.dlq.v1"
    record = decode(letter.value, expect="DeadLetter")
    assert reason in record["reason"] and record["original_value"] == value
    assert (record["source_topic"], record["source_partition"], record["source_offset"]) == (AUDIO, 3, 7)
    assert result.state is None


def test_a_frame_whose_payload_disagrees_with_its_header_is_dead_lettered(processor):
    record = dict(decode(_frame(0), expect="AudioFrame"), samples_per_channel=9999)
    result = processor.process(state=None, topic=AUDIO, partition=0, offset=0, key=b"m1",
                               value=encode("AudioFrame", record), now_ms=0)
    [letter] = result.outputs
    assert "record says 9999" in decode(letter.value, expect="DeadLetter")["reason"]
    bad_rate = dict(decode(_frame(1), expect="AudioFrame"), sample_rate=1000)
    result = processor.process(state=None, topic=AUDIO, partition=0, offset=1, key=b"m1",
                               value=encode("AudioFrame", bad_rate), now_ms=0)
    assert "sample rate" in decode(result.outputs[0].value, expect="DeadLetter")["reason"]


def test_out_of_order_frames_are_dead_lettered_and_duplicates_only_counted(processor):
    state, _ = _feed(processor, [(AUDIO, i, _frame(i)) for i in range(30)])
    duplicate = processor.process(state=state, topic=AUDIO, partition=3, offset=30, key=b"m1", value=_frame(20), now_ms=0)
    assert duplicate.outputs == [] and duplicate.state is not None
    old = dict(decode(_frame(5), expect="AudioFrame"), session_id="another", seq=0)
    stale = processor.process(state=duplicate.state, topic=AUDIO, partition=3, offset=31, key=b"m1",
                              value=encode("AudioFrame", old), now_ms=0)
    assert decode_any(stale.outputs[0].value)[1]["error_type"] == "OutOfOrderFrame"


def test_late_events_are_kept_on_the_late_topic(processor):
    state, _ = _feed(processor, [(AUDIO, i, _frame(i)) for i in range(300)])  # 30 s of audio
    late = encode("MatchEvent", dict(sample_record("MatchEvent", match_id="m1"),
                                     clock={"period": "FIRST_HALF", "ms": 2_000}))
    result = processor.process(state=state, topic=EVENTS, partition=3, offset=0, key=b"m1", value=late, now_ms=0)
    [kept] = result.outputs
    assert kept.topic == "p.match.events.late.v1" and kept.value == late
    assert unpack_state(result.state)["join"]["late_events"] == 1


def test_a_state_written_by_the_previous_version_still_loads(processor):
    # The earlier worker wrote zlib-compressed JSON, with features, onsets and band energies
    # as JSON numbers, and frame features of other bands; a worker upgraded mid-match must
    # continue from it: the frames it cannot read are left out of the windows open then
    # (the first three, with 3 s windows), every later window is as if nothing had happened.
    import base64
    import json
    import zlib

    state, _ = _feed(processor, [(AUDIO, i, _frame(i)) for i in range(40)])
    payload = unpack_state(state)
    analyzer = payload["join"]["analyzer"]

    def floats(encoded):
        return np.frombuffer(base64.b64decode(encoded["f64"]), dtype="<f8").tolist()

    def features(encoded):  # the earliest layout: rms, bands, centroid, rolloff, flatness, flux, whistle, onsets
        _, count, data = encoded.split(":", 2)
        values = np.frombuffer(base64.b64decode(data), dtype="<f8").tolist()
        n = int(count)
        return [values[0], values[1:1 + n], 1000.0, 2000.0, 0.01, values[1 + n], values[2 + n], values[3 + n:]]

    analyzer["onsets"] = floats(analyzer["onsets"])
    analyzer["tail_bands"] = floats(analyzer["tail_bands"])
    analyzer["frames"] = [dict(f, f=features(f["f"])) for f in analyzer["frames"]]
    old = zlib.compress(json.dumps(payload).encode(), 1)
    rest = [(AUDIO, i, _frame(i, loud=i > 60)) for i in range(40, 90)]
    _, from_new = _feed(RecordProcessor(SETTINGS, predict=fake_model, model_version="test"), rest, state)
    _, from_old = _feed(RecordProcessor(SETTINGS, predict=fake_model, model_version="test"), rest, old)
    assert len(from_old) == len(from_new) == 5
    assert [o.value for o in from_old][3:] == [o.value for o in from_new][3:]
