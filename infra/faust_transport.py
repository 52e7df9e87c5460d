"""Faust's aiokafka transport, with fetches that never wait 1.5 s at the broker.

Faust's driver creates its aiokafka consumer with ``fetch_max_wait_ms=1500``, and aiokafka
sends one fetch at a time to a broker, leaving out the partitions whose fetched records are
not consumed yet. When the agent is a little behind, that fetch holds only partitions with
nothing new (the match events, most of the time) and the broker keeps it for the full
1.5 s, while the audio partitions, consumed meanwhile, cannot be fetched until it returns.
Measured in the stream worker at 30 live matches (tests/benchmarks/bench_worker.py):
records reached Faust p50 850 ms / p99 1.75 s after they were produced, windows p50 1.4 s;
with these settings records p50 ~55 ms / p99 ~120 ms, windows p50 113 ms / p99 237 ms, for
the same worker CPU.

Its producer is idempotent (Faust makes it so only for exactly-once processing): a produce
request in flight when the broker dies is sent again once it is back, and without
idempotence a batch the broker had written before it died was written twice — a window
emitted twice after a broker SIGKILL (tests/faults/test_broker_crash.py, seen once in CI).
The broker now drops such a retry by its producer id and sequence number.
"""

from __future__ import annotations

from typing import Any

from faust.transport.drivers import aiokafka as driver

__all__ = ["FETCH_MAX_WAIT_MS", "FETCH_MIN_BYTES", "IDEMPOTENT", "PromptFetchTransport", "prompt_fetches"]

FETCH_MAX_WAIT_MS = 100  # longest a fetch waits at the broker for new records
# ... unless this much has arrived: without it (aiokafka's 1 byte) the consumer fetched a few
# records at a time, a fetch per millisecond at 100 matches, which doubled the broker's CPU and
# cost the worker a third of its throughput. 256 kB is ~25 ms of 100 matches' audio.
FETCH_MIN_BYTES = 256 * 1024
IDEMPOTENT = {"acks": "all", "enable_idempotence": True}  # the producer's settings


class _ConsumerThread(driver.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        # aiokafka reads it when the consumer starts (it builds its Fetcher then); Faust's
        # driver passes no argument for it.
        consumer._fetch_max_wait_ms = FETCH_MAX_WAIT_MS
        consumer._fetch_min_bytes = FETCH_MIN_BYTES
        return consumer


class _Consumer(driver.Consumer):
    def _new_consumer_thread(self) -> Any:
        return _ConsumerThread(self, loop=self.loop, beacon=self.beacon)


class _Producer(driver.Producer):
    def _settings_extra(self) -> Any:
        return {**super()._settings_extra(), **IDEMPOTENT}


class PromptFetchTransport(driver.Transport):
    """The aiokafka transport whose stream consumer fetches with :data:`FETCH_MAX_WAIT_MS` and
    :data:`FETCH_MIN_BYTES`, and whose producer is idempotent (:data:`IDEMPOTENT`)."""

    Consumer = _Consumer
    Producer = _Producer


def prompt_fetches(app: Any) -> None:
    """Give a Faust app (before it starts) the :class:`PromptFetchTransport`."""
    app.transport = PromptFetchTransport(app.conf.broker_consumer, app)
