"""The stream worker's consumer fetches with a short wait at the broker (infra/faust_transport.py):
with Faust's 1.5 s, records waited up to 1.75 s before reaching the agent of an idle worker."""

from __future__ import annotations

import asyncio


def test_the_worker_consumer_waits_at_most_50_ms_at_the_broker():
    import streams.app
    from infra.faust_transport import FETCH_MAX_WAIT_MS

    async def created() -> int:
        consumer = streams.app.app.consumer._thread._create_worker_consumer(streams.app.app.transport)
        try:
            return consumer._fetch_max_wait_ms
        finally:
            await consumer.stop()

    assert FETCH_MAX_WAIT_MS <= 100
    assert asyncio.run(created()) == FETCH_MAX_WAIT_MS


def test_the_worker_producer_is_idempotent():
    """A produce request in flight when the broker dies is retried: only an idempotent producer
    keeps the broker from writing its records twice (tests/faults/test_broker_crash.py)."""
    import streams.app

    async def created() -> tuple[object, object]:
        producer = streams.app.app.producer._new_producer()
        try:
            return producer._txn_manager, producer._sender._acks
        finally:
            await producer.stop()

    txn_manager, acks = asyncio.run(created())
    assert txn_manager is not None, "aiokafka keeps a producer id and sequence numbers only when idempotent"
    assert acks == -1
