"""Checkpoints of the stream worker without Kafka: records are acked only once a checkpoint
including them is confirmed in the changelog, in offset order, after their outputs were
delivered; and a crash at any moment — the table's changelog writes in flight, as Faust's
are — followed by a restart from the committed offsets and the table, gives the same final
windows as a run without a crash."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from infra.settings import Settings
from schemas.audio import encode_payload
from schemas.codec import decode, encode
from streams.checkpoints import Checkpoints
from streams.processor import RecordProcessor
from tests.samples import sample_record, with_offsets
from tests.test_join import fake_model

SETTINGS = Settings.from_env({"CROWDSOUND_TOPIC_PREFIX": "p.", "CROWDSOUND_GRACE_MS": "10000"})
AUDIO, EVENTS = "p.crowd.audio.v1", "p.match.events.v1"


class Record:
    """Stands in for a Faust event: remembers that it was acked."""

    def __init__(self, tp: str, offset: int, acked: list) -> None:
        self.tp, self.offset, self._acked = tp, offset, acked

    def ack(self) -> None:
        self._acked.append((self.tp, self.offset))


def _keeper(**kwargs) -> tuple[Checkpoints, list, list]:
    writes: list = []
    acked: list = []
    states = {b"a": 0, b"b": 0}

    def snapshot(key: bytes) -> bytes:
        states[key] += 1
        return f"{key.decode()}{states[key]}".encode()

    keeper = Checkpoints(snapshot=snapshot, write=lambda p, k, s: writes.append((p, k, s)), **kwargs)
    return keeper, writes, acked


async def _settle(keeper: Checkpoints) -> None:
    for _ in range(5):
        await asyncio.sleep(0)
    assert await keeper.drained(1.0)


def test_records_are_acked_in_offset_order_once_their_match_is_checkpointed():
    async def scenario():
        keeper, writes, acked = _keeper(every_records=3)
        task = asyncio.ensure_future(keeper.run())
        try:
            for offset, match in enumerate([b"a", b"b", b"a", b"a"]):  # a: 0 2 3, b: 1
                keeper.add("t-0", Record("t-0", offset, acked), match=match, partition=0)
            await _settle(keeper)
            # a was checkpointed after its 3rd record, but b's record 1 holds back a's 2 and 3.
            assert writes == [(0, b"a", b"a1")] and acked == [("t-0", 0)]
            keeper.checkpoint(b"b")
            await _settle(keeper)
            assert writes[-1] == (0, b"b", b"b1") and acked == [("t-0", o) for o in range(4)]
            assert keeper.idle
        finally:
            task.cancel()

    asyncio.run(scenario())


def test_a_checkpoint_waits_for_the_outputs_of_its_records():
    async def scenario():
        keeper, writes, acked = _keeper()
        task = asyncio.ensure_future(keeper.run())
        try:
            delivered = asyncio.get_running_loop().create_future()
            keeper.add("t-0", Record("t-0", 0, acked), match=b"a", partition=0, outputs=[delivered])
            keeper.add("t-0", Record("t-0", 1, acked), match=None, partition=0)  # a dead letter, no outputs
            keeper.checkpoint(b"a")
            await asyncio.sleep(0.01)
            assert writes == [] and acked == []  # the window is not acknowledged yet
            delivered.set_result(None)
            await _settle(keeper)
            assert writes == [(0, b"a", b"a1")] and acked == [("t-0", 0), ("t-0", 1)]
        finally:
            task.cancel()

    asyncio.run(scenario())


def test_a_quiet_match_is_checkpointed_by_age_and_all_on_drain():
    async def scenario():
        keeper, writes, acked = _keeper(max_age_s=1.0)
        task = asyncio.ensure_future(keeper.run())
        try:
            keeper.add("t-0", Record("t-0", 0, acked), match=b"a", partition=0)
            keeper.add("t-1", Record("t-1", 0, acked), match=b"b", partition=1)
            keeper.checkpoint_stale(now=0.0)  # not old yet
            await _settle(keeper)
            assert writes == []
            keeper.checkpoint_stale(now=1e12)
            await _settle(keeper)
            assert sorted(writes) == [(0, b"a", b"a1"), (1, b"b", b"b1")] and len(acked) == 2
            keeper.add("t-0", Record("t-0", 1, acked), match=b"a", partition=0)
            keeper.checkpoint_all()
            await _settle(keeper)
            assert writes[-1] == (0, b"a", b"a2") and keeper.pending == 0
        finally:
            task.cancel()

    asyncio.run(scenario())


def test_an_undelivered_output_stops_all_acks():
    async def scenario():
        failures: list = []
        keeper, writes, acked = _keeper(fail=failures.append)
        task = asyncio.ensure_future(keeper.run())
        broken = asyncio.get_running_loop().create_future()
        broken.set_exception(RuntimeError("broker said no"))
        keeper.add("t-0", Record("t-0", 0, acked), match=b"a", partition=0, outputs=[broken])
        keeper.checkpoint(b"a")
        keeper.add("t-0", Record("t-0", 1, acked), match=b"b", partition=0)
        keeper.checkpoint(b"b")
        await asyncio.sleep(0.01)
        assert [str(f) for f in failures] == ["broker said no"] and writes == [] and acked == []
        assert task.done()

    asyncio.run(scenario())


def test_records_are_acked_only_once_the_changelog_confirmed_their_checkpoint():
    async def scenario():
        acked: list = []
        confirmations: list = []

        def write(partition, key, state):  # like Faust's send_changelog: a future the broker resolves
            confirmations.append(asyncio.get_running_loop().create_future())
            return confirmations[-1]

        keeper = Checkpoints(snapshot=lambda key: b"s", write=write, every_records=1)
        task = asyncio.ensure_future(keeper.run())
        try:
            keeper.add("t-0", Record("t-0", 0, acked), match=b"a", partition=0)
            keeper.add("t-0", Record("t-0", 1, acked), match=b"b", partition=0)
            await asyncio.sleep(0.01)
            assert len(confirmations) == 2 and acked == []  # both sent (pipelined), neither confirmed
            confirmations[1].set_result(None)
            await asyncio.sleep(0.01)
            assert acked == []  # offset 1 waits for offset 0
            confirmations[0].set_result(None)
            await _settle(keeper)
            assert acked == [("t-0", 0), ("t-0", 1)]
        finally:
            task.cancel()

    asyncio.run(scenario())


def test_a_changelog_write_the_broker_refuses_stops_all_acks():
    async def scenario():
        failures: list = []
        acked: list = []

        def write(partition, key, state):
            refused = asyncio.get_running_loop().create_future()
            refused.set_exception(RuntimeError("MESSAGE_TOO_LARGE"))
            return refused

        keeper = Checkpoints(snapshot=lambda key: b"s", write=write, every_records=1, fail=failures.append)
        task = asyncio.ensure_future(keeper.run())
        keeper.add("t-0", Record("t-0", 0, acked), match=b"a", partition=0)
        keeper.add("t-0", Record("t-0", 1, acked), match=None, partition=0)
        await asyncio.sleep(0.02)
        assert [str(f) for f in failures] == ["MESSAGE_TOO_LARGE"] and acked == []
        task.cancel()

    asyncio.run(scenario())


def test_a_deleted_match_is_removed_after_its_last_checkpoint():
    async def scenario():
        keeper, writes, acked = _keeper(every_records=100)
        task = asyncio.ensure_future(keeper.run())
        try:
            keeper.add("t-0", Record("t-0", 0, acked), match=b"a", partition=3)
            keeper.delete(b"a", 3)
            await _settle(keeper)
            assert writes == [(3, b"a", b"a1"), (3, b"a", None)] and acked == [("t-0", 0)]
        finally:
            task.cancel()

    asyncio.run(scenario())


# -- a crash at any moment -----------------------------------------------------------------

def _frame(match_id: str, seq: int) -> bytes:
    rng = np.random.default_rng(seq + (1000 if match_id == "b" else 0))
    loud = 150 <= seq < 200
    samples = (rng.standard_normal(4800) * (8000 if loud else 800)).astype(np.int16)
    record = dict(sample_record("AudioFrame", match_id=match_id), seq=seq,
                  clock={"period": "FIRST_HALF", "ms": seq * 100}, wall_time_ms=1_000_000 + seq * 100,
                  payload=encode_payload(samples, encoding="PCM_S16LE", sample_rate=48_000))
    return encode("AudioFrame", record)


def _log() -> list[tuple[str, int, bytes, bytes]]:
    """One partition of each source topic: two matches' frames interleaved, and two events."""
    audio = [(AUDIO, key, _frame(key.decode(), seq)) for seq in range(260) for key in (b"a", b"b")]
    goal = encode("MatchEvent", dict(sample_record("MatchEvent", match_id="a"), event_id="g",
                                     clock={"period": "FIRST_HALF", "ms": 15_500}))
    card = encode("MatchEvent", dict(sample_record("MatchEvent", match_id="b"), event_id="c", type="CARD",
                                     clock={"period": "FIRST_HALF", "ms": 20_000}))
    return with_offsets(audio[:340] + [(EVENTS, b"a", goal)] + audio[340:420] + [(EVENTS, b"b", card)] + audio[420:])


LOG = _log()


def _final(outputs: list) -> dict:
    """The highest revision of each window; a repeated emission must repeat it exactly."""
    best: dict = {}
    seen: dict = {}
    for out in outputs:
        window = {f: v for f, v in decode(out.value, expect="EmotionWindow").items() if f != "wall_time_ms"}
        key = (window["match_id"], window["clock"]["ms"])
        assert seen.setdefault((key, window["revision"]), window) == window
        if key not in best or window["revision"] > best[key]["revision"]:
            best[key] = window
    return best


def _run(crash_after: int | None, every_records: int) -> tuple[dict, int]:
    """Process LOG with checkpoints; optionally lose everything in memory after
    ``crash_after`` records and restart from the committed offsets and the table.

    The table is a changelog: a write is durable only once the broker confirms it, a few
    event-loop turns after it was sent (as Faust's changelog sends are), and the writes still
    in flight at the crash are lost."""
    table: dict[bytes, bytes] = {}
    committed = {AUDIO: 0, EVENTS: 0}  # next offset to read, per source partition
    outputs: list = []

    async def worker(stop_after: int | None) -> bool:
        work = RecordProcessor(SETTINGS, predict=fake_model, model_version="t", load=table.get)
        acked: list = []
        in_flight: list = []  # [turns left, key, state, future]

        def send_changelog(partition: int, key: bytes, state: bytes) -> asyncio.Future:
            confirmed = asyncio.get_running_loop().create_future()
            in_flight.append([3, key, state, confirmed])
            return confirmed

        async def broker() -> None:  # confirms (and applies) each write three loop turns after it was sent
            while True:
                await asyncio.sleep(0)
                for entry in list(in_flight):
                    entry[0] -= 1
                    if entry[0] <= 0:
                        in_flight.remove(entry)
                        table[entry[1]] = entry[2]
                        entry[3].set_result(None)

        keeper = Checkpoints(snapshot=work.snapshot, write=send_changelog, every_records=every_records)
        brokering = asyncio.ensure_future(broker())
        task = asyncio.ensure_future(keeper.run())
        position = dict(committed)
        done = 0
        try:
            for topic, offset, key, value in LOG:
                if offset < position[topic]:
                    continue
                if stop_after is not None and done == stop_after:
                    return False  # crash: nothing more is written or committed
                applied = work.apply(topic=topic, partition=0, offset=offset, key=key, value=value, now_ms=0)
                sent = []
                for out in applied.outputs:
                    outputs.append(out)
                    future = asyncio.get_running_loop().create_future()
                    future.set_result(None)
                    sent.append(future)
                keeper.add(topic, Record(topic, offset, acked), match=applied.match, partition=0, outputs=sent)
                done += 1
                await asyncio.sleep(0)
                for tp, acked_offset in acked:  # Faust commits what is acked (in order)
                    committed[tp] = max(committed[tp], acked_offset + 1)
            keeper.checkpoint_all()
            await keeper.drained(5)
            return True
        finally:
            task.cancel()
            brokering.cancel()  # a crash: writes still in flight never reach the changelog

    finished = asyncio.run(worker(crash_after))
    if not finished:
        assert asyncio.run(worker(None))
    return _final(outputs), len(outputs)


@pytest.fixture(scope="module")
def reference() -> dict:
    final, _ = _run(None, every_records=30)
    assert len(final) == 2 * 24 and any(w["revision"] > 0 for w in final.values())
    return final


@settings(max_examples=12, deadline=None)
@given(st.integers(min_value=0, max_value=len(LOG) - 1), st.sampled_from([1, 7, 30]))
def test_a_crash_anywhere_leaves_the_final_windows_unchanged(reference, crash_after, every_records):
    final, _ = _run(crash_after, every_records)
    assert final == reference
