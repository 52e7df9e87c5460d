"""A match clock that follows the match: period starts and ends read off match.events.v1.

The encoder uses it when it has neither ``--kickoff`` nor ``--start``: it reads the match's
partition of match.events.v1 from the beginning (catching up on periods that already
started), then keeps listening in a background thread.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid

from confluent_kafka import OFFSET_BEGINNING, Message, TopicPartition

from infra.clients import make_consumer
from infra.errors import SchemaError
from infra.partitioning import partition_for
from infra.reading import read_to_end, topic_partitions
from infra.settings import Settings
from schemas.clock import MatchClock, Period
from schemas.codec import decode
from schemas.timeline import MatchTimeline

__all__ = ["EventFollowingClock", "apply_period_event"]

log = logging.getLogger("crowdsound.encoder")


def apply_period_event(timeline: MatchTimeline, event: dict) -> bool:
    """Update ``timeline`` from a PERIOD_START/PERIOD_END MatchEvent; True if it changed."""
    if event["type"] not in ("PERIOD_START", "PERIOD_END"):
        return False
    period = Period(event["clock"]["period"])
    # The period began (or ended) `clock.ms` before the event's own wall time.
    at_ms = event["wall_time_ms"] - event["clock"]["ms"] if event["type"] == "PERIOD_START" else event["wall_time_ms"]
    if event["type"] == "PERIOD_START":
        return timeline.begin(period, at_ms)
    more = (event.get("outcome") or "") in ("extra_time_follows", "penalties_follow")
    return timeline.end(period, at_ms, more_to_come=more)


class EventFollowingClock:
    """Thread-safe match clock kept up to date from the match's events."""

    def __init__(self, settings: Settings, match_id: str, *, catch_up_timeout_s: float = 10.0) -> None:
        self._timeline = MatchTimeline(origin_ms=int(time.time() * 1000))
        self._lock = threading.Lock()
        self._match_id = match_id
        self._stop = threading.Event()
        topic = settings.topic("match.events.v1")
        # The encoder role may use these groups (infra/acls.py).
        group = f"{settings.topic_prefix}crowdsound-encoder-clock-{uuid.uuid4().hex[:8]}"
        self._consumer = make_consumer(settings, group_id=group)
        partition = partition_for(match_id, len(topic_partitions(self._consumer, topic, settings)))
        # Catch up on the periods that already started, then follow live from there.
        for message in read_to_end(self._consumer, topic, {partition: OFFSET_BEGINNING},
                                   idle_timeout_s=catch_up_timeout_s, raise_on_timeout=False):
            self._apply(message)
        if not self._consumer.assignment():  # nothing to catch up on: follow from the (empty) start
            self._consumer.assign([TopicPartition(topic, partition, OFFSET_BEGINNING)])
        self._thread = threading.Thread(target=self._run, name="event-clock", daemon=True)
        self._thread.start()

    def clock_at(self, at_ms: int) -> MatchClock:
        with self._lock:
            return self._timeline.clock_at(at_ms)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._consumer.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._poll_once(0.5)

    def _poll_once(self, timeout: float) -> None:
        message = self._consumer.poll(timeout)
        if message is not None and not message.error():
            self._apply(message)

    def _apply(self, message: Message) -> None:
        if message.key() != self._match_id.encode():
            return
        try:
            event = decode(message.value(), expect="MatchEvent")
        except SchemaError:
            return  # the stream workers dead-letter bad events; the clock just ignores them
        with self._lock:
            try:
                changed = apply_period_event(self._timeline, event)
            except Exception as exc:  # noqa: BLE001 - a contradictory feed must not stop the audio
                log.warning("ignoring period event %s: %s", event.get("event_id"), exc)
                return
        if changed:
            log.info("match clock: %s %s", event["type"], event["clock"]["period"])
