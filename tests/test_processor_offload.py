"""Frame analysis in a helper process changes nothing: the same records give the same output
records, byte for byte, with and without the helper — across duplicate, out-of-order and
bad frames, match events, a match reloaded from its stored state, and a dead helper."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import zlib

import numpy as np
import pytest

from infra.settings import Settings
from schemas.audio import encode_payload
from schemas.codec import decode_any, encode
from streams.join import AcousticEmotion
from streams.offload import FrameOffload
from streams.processor import RecordProcessor
from streams.windows import ANALYSED
from tests.samples import sample_record, with_offsets
from tests.test_join import fake_model


def exacting_model(features: np.ndarray) -> list[AcousticEmotion]:
    """fake_model, with an arousal that changes if any feature changes in its last bit."""
    return [AcousticEmotion(e.probabilities, zlib.crc32(row.tobytes()) / 2**32, e.valence)
            for row, e in zip(features, fake_model(features), strict=True)]

SETTINGS = Settings.from_env({"CROWDSOUND_TOPIC_PREFIX": "p.", "CROWDSOUND_GRACE_MS": "10000"})
AUDIO, EVENTS = "p.crowd.audio.v1", "p.match.events.v1"


def _frame(match_id: str, seq: int, *, session: str = "s1", ms: int | None = None, payload: bytes | None = None,
           channels: int = 1) -> bytes:
    rng = np.random.default_rng(seq * 7 + len(match_id))
    loud = 80 <= seq < 120
    samples = (rng.standard_normal((4800, channels)) * (9000 if loud else 700)).astype(np.int16)
    record = dict(sample_record("AudioFrame", match_id=match_id), seq=seq, session_id=session, channels=channels,
                  clock={"period": "FIRST_HALF", "ms": seq * 100 if ms is None else ms},
                  wall_time_ms=1_000_000 + seq * 100,
                  payload=payload if payload is not None else encode_payload(samples, encoding="PCM_S16LE",
                                                                            sample_rate=48_000))
    return encode("AudioFrame", record)


def _records() -> list[tuple[str, int, bytes, bytes]]:
    items: list[tuple[str, bytes, bytes]] = []
    for seq in range(200):
        items.append((AUDIO, b"a", _frame("a", seq)))
        items.append((AUDIO, b"b", _frame("b", seq, channels=2)))  # stereo: its tail is not int16
        if seq % 3 == 0:
            items.append((AUDIO, b"c", _frame("c", seq // 3)))
        if seq in (50, 137):  # dropped frames in the middle of a batch's chain of frames of "a"
            items.append((AUDIO, b"a", _frame("a", seq - 5)))  # a duplicate
            items.append((AUDIO, b"a", _frame("a", 0, session="s9", ms=1_000)))  # out of order
            items.append((AUDIO, b"b", _frame("b", seq + 1, payload=b"\x01")))  # bad audio (then again, good)
        if seq == 90:
            items.append((EVENTS, b"a", encode("MatchEvent", dict(
                sample_record("MatchEvent", match_id="a"), event_id="g", clock={"period": "FIRST_HALF", "ms": 8_500}))))
        if seq == 120:
            items.append((AUDIO, b"zz", _frame("a", 121)))  # key is not the match: dead letter
    return with_offsets(items)


RECORDS = _records()
BATCH = 40


def _comparable(outputs: list) -> list:
    """Output records as (topic, key, record) without a dead letter's wall time."""
    out = []
    for o in outputs:
        _, record = decode_any(o.value)
        kept = {k: v for k, v in record.items() if not (k == "wall_time_ms" and "dlq" in o.topic)}
        out.append((o.topic, o.key, kept))
    return out


def _serial(records: list | None = None) -> list:
    work = RecordProcessor(SETTINGS, predict=exacting_model, model_version="t")
    outputs = []
    for topic, offset, key, value in RECORDS if records is None else records:
        outputs += work.apply(topic=topic, partition=0, offset=offset, key=key, value=value, now_ms=0).outputs
    return _comparable(outputs)


def _batched(offload: FrameOffload, *, reload_at: int | None = None, kill_at: int | None = None,
             pipelined: bool = False, impatient: bool = False, records: list | None = None) -> list:
    """Process RECORDS in batches with the helper; ``pipelined``: submit each batch before
    the previous one is applied, as the worker does; ``impatient``: every other batch is
    applied without waiting for the helper (as the worker does when it is behind)."""
    records = RECORDS if records is None else records
    table: dict[bytes, bytes] = {}
    work = RecordProcessor(SETTINGS, predict=exacting_model, model_version="t", load=table.get)
    outputs = []

    batches = [0]

    async def apply(batch: list, submitted) -> None:
        batches[0] += 1
        if impatient and batches[0] % 2:
            analyses = offload.analyses(submitted)  # whatever is there
        elif pipelined:
            analyses = await offload.ready_within(submitted, 5.0)  # as the worker
        else:
            analyses = await offload.result(submitted)
        for index, decoded in enumerate(batch):
            applied = work.apply(topic=decoded.topic, partition=0, offset=decoded.offset, key=decoded.key,
                                 value=decoded.value, now_ms=0, decoded=decoded, analysis=analyses.get(index))
            outputs.extend(applied.outputs)
        offload.done(submitted)

    async def run() -> None:
        assert await offload.wait_ready()
        previous = None
        for start in range(0, len(records), BATCH):
            if reload_at is not None and start <= reload_at < start + BATCH:
                if previous is not None:
                    await apply(*previous)
                    previous = None
                for key in list(work.matches):  # as after a rebalance: state from the table
                    table[key] = work.snapshot(key)
                work.forget(list(work.matches))
            if kill_at is not None and start <= kill_at < start + BATCH and offload._process is not None:
                offload._process.kill()
                offload._process.join()
            batch = [work.decode_record(topic=t, partition=0, offset=o, key=k, value=v)
                     for t, o, k, v in records[start:start + BATCH]]
            submitted = offload.submit(batch)
            if previous is not None:
                await apply(*previous)
            previous = (batch, submitted)
            if not pipelined:
                await apply(*previous)
                previous = None
        if previous is not None:
            await apply(*previous)

    try:
        asyncio.run(run())
    finally:
        offload.close()
    return _comparable(outputs)


def _offload(direct_bytes: int | None) -> FrameOffload:
    """A helper; ``direct_bytes=0``: every request goes through the writer thread (as a
    backlog's large batches do); None: the default."""
    return FrameOffload() if direct_bytes is None else FrameOffload(direct_bytes=direct_bytes)


@pytest.mark.parametrize(("pipelined", "direct_bytes"), [(False, None), (True, None), (True, 0)])
def test_the_helper_gives_the_same_records_as_analysing_in_the_worker(pipelined, direct_bytes):
    reference = _serial()
    assert len([o for o in reference if o[0] == "p.crowd.emotions.v1"]) > 40
    assert {o[0] for o in reference} >= {"p.crowd.audio.dlq.v1", "p.crowd.emotions.v1"}
    offload = _offload(direct_bytes)
    before = ANALYSED.labels(where="helper")._value.get()
    assert _batched(offload, reload_at=300, pipelined=pipelined) == reference
    frames = sum(1 for t, *_ in RECORDS if t == AUDIO)
    # The helper did most of the work (a dropped frame makes the worker analyse the rest of
    # its match's frames in that batch, and with pipelining in the next one too).
    assert ANALYSED.labels(where="helper")._value.get() - before > 0.6 * frames


def test_frames_the_helper_has_not_finished_are_analysed_in_the_worker_and_the_chain_goes_on():
    offload = FrameOffload()
    before = ANALYSED.labels(where="helper")._value.get()
    assert _batched(offload, pipelined=True, impatient=True) == _serial()
    assert ANALYSED.labels(where="helper")._value.get() - before > 0.3 * sum(1 for t, *_ in RECORDS if t == AUDIO)


@pytest.mark.parametrize("direct_bytes", [None, 0])
def test_a_dead_helper_leaves_the_worker_analysing_frames_itself(direct_bytes):
    offload = _offload(direct_bytes)
    assert _batched(offload, kill_at=200, pipelined=True) == _serial()
    assert not offload.enabled and 0 < offload.frames


def test_a_large_batch_is_handed_over_while_the_helper_is_busy_and_analysed_the_same():
    """A backlog's batch (~25 MB) is far more than the socket holds: submit() must return
    while the helper cannot read (here: stopped), so the worker goes on applying the batches
    it has; the helper's features arrive once it reads again, the same as the worker's own."""
    work = RecordProcessor(SETTINGS, predict=exacting_model, model_version="t")
    reference = RecordProcessor(SETTINGS, predict=exacting_model, model_version="t")
    # 120 one-second stereo frames of 48 kHz: ~23 MB, several times the socket's 4 MB buffer.
    rng = np.random.default_rng(3)
    records = []
    for seq in range(120):
        samples = (rng.standard_normal((48_000, 2)) * 3000).astype(np.int16)
        record = dict(sample_record("AudioFrame", match_id=f"m{seq % 4}"), seq=seq // 4, session_id="s1", channels=2,
                      samples_per_channel=48_000, clock={"period": "FIRST_HALF", "ms": (seq // 4) * 1000},
                      wall_time_ms=1_000_000 + seq * 250,
                      payload=encode_payload(samples, encoding="PCM_S16LE", sample_rate=48_000))
        records.append((AUDIO, seq, f"m{seq % 4}".encode(), encode("AudioFrame", record)))
    offload = FrameOffload()

    async def run() -> list:
        assert await offload.wait_ready()
        batch = [work.decode_record(topic=t, partition=0, offset=o, key=k, value=v) for t, o, k, v in records]
        stopped = [True]

        def resume() -> None:
            stopped[0] = False
            os.kill(offload._process.pid, signal.SIGCONT)

        os.kill(offload._process.pid, signal.SIGSTOP)
        timer = threading.Timer(10, resume)  # without it a blocking submit() would never return
        timer.start()
        try:
            submitted = offload.submit(batch)
            returned_while_stopped = stopped[0]
        finally:
            timer.cancel()
            resume()
        assert returned_while_stopped, "submit() waited for the helper to read the batch"
        analyses = await offload.result(submitted)
        assert sum(a.features is not None for a in analyses.values()) == len(batch), "the helper analysed them all"
        outputs = []
        for index, decoded in enumerate(batch):
            outputs += work.apply(topic=AUDIO, partition=0, offset=decoded.offset, key=decoded.key,
                                  value=decoded.value, now_ms=0, decoded=decoded, analysis=analyses[index]).outputs
        offload.done(submitted)
        return outputs

    try:
        outputs = asyncio.run(run())
    finally:
        offload.close()
    expected = [out for t, o, k, v in records
                for out in reference.apply(topic=t, partition=0, offset=o, key=k, value=v, now_ms=0).outputs]
    assert len([o for o in expected if o.topic == "p.crowd.emotions.v1"]) >= 4 * 27
    assert _comparable(outputs) == _comparable(expected)

