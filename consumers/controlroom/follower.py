"""The control room's readers: assign-only consumers, no consumer group, nothing committed.

:class:`TopicFollower` reads all of music.preferences.v1 to its end first (compacted, so that
is every match's current preferences), then the recent past of the emotions, the music
control messages, the match events and the cues (from ``lookback_s`` ago, by timestamp),
and follows all of them live. :class:`AudioTap` reads one match's music.audio.v1 partition
from a moment ago, for the people listening to that match.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, Consumer, Message, TopicPartition

from consumers.controlroom.live import LiveModel
from consumers.preferences import PreferencesTable
from consumers.prefs_cli import apply_record, preferences_table
from infra.clients import make_consumer, match_key
from infra.errors import SchemaError
from infra.partitioning import partition_for
from infra.reading import patiently, topic_partitions
from infra.settings import Settings
from schemas.codec import decode

__all__ = ["AudioTap", "TopicFollower"]

log = logging.getLogger("crowdsound.controlroom")

# (match id, messages) -> None, called from the thread once per match and batch of records read
Publish = Callable[[str, list[dict[str, Any]]], None]
_FOLLOWED = {"crowd.emotions.v1": "EmotionWindow", "music.control.v1": "MusicControl",
             "match.events.v1": "MatchEvent", "music.cues.v1": "Cue"}


def _reader(settings: Settings, name: str) -> Consumer:
    # <prefix>crowdsound-controlroom-*: the groups the controlroom role may use (infra/acls.py).
    return make_consumer(settings, group_id=f"{settings.topic_prefix}crowdsound-controlroom-{name}-unused-"
                         f"{uuid.uuid4().hex[:8]}",
                         extra={"enable.partition.eof": False})


def _offsets_at(consumer: Consumer, topic: str, partitions: list[int], at_ms: int) -> list[TopicPartition]:
    """The first offset at or after ``at_ms`` of each partition (its end when none is)."""
    found = patiently(lambda: consumer.offsets_for_times([TopicPartition(topic, p, at_ms) for p in partitions],
                                                         timeout=10), f"cannot seek {topic} by time")
    return [TopicPartition(topic, tp.partition, tp.offset if tp.offset >= 0 else OFFSET_END) for tp in found]


def _batch(consumer: Consumer, size: int) -> list[Message]:
    """What has arrived, at once: the first record as soon as there is one (``consume(n, t)``
    alone would wait for n records or t seconds, a delay every viewer would see), then the rest
    already fetched."""
    first = consumer.poll(0.2)
    return [] if first is None else [first, *consumer.consume(size - 1, 0)]


class TopicFollower(threading.Thread):
    """Follows the match topics into a :class:`LiveModel` and hands every change to ``publish``."""

    def __init__(self, settings: Settings, model: LiveModel, publish: Publish, *, lookback_s: float) -> None:
        super().__init__(name="controlroom-follower", daemon=True)
        self.settings = settings
        self.model = model
        self.publish = publish
        self.lookback_s = lookback_s
        self.prefs = PreferencesTable()
        self.prefs_lock = threading.Lock()
        self.ready = threading.Event()   # preferences read to the end, the recent past assigned
        self.stopping = threading.Event()
        self.last_poll = time.monotonic()
        self.error: str | None = None
        self.consumer = _reader(settings, "follower")
        self._decoders = {settings.topic(name): (name, kind) for name, kind in _FOLLOWED.items()}
        self._prefs_topic = settings.topic("music.preferences.v1")

    def start_reading(self) -> None:
        """Read the preferences to their end and assign the followed topics (raises when a topic is missing)."""
        table = preferences_table(self.consumer, self.settings)
        with self.prefs_lock:
            self.prefs = table
        since = int(time.time() * 1000 - self.lookback_s * 1000)
        assignment: list[TopicPartition] = []
        for topic in self._decoders:
            partitions = topic_partitions(self.consumer, topic, self.settings)
            assignment += _offsets_at(self.consumer, topic, partitions, since)
        # Preferences partitions that were empty were not assigned by the reading: follow them from their start.
        read = {tp.partition for tp in self.consumer.assignment() if tp.topic == self._prefs_topic}
        assignment += [TopicPartition(self._prefs_topic, p, OFFSET_BEGINNING)
                       for p in topic_partitions(self.consumer, self._prefs_topic, self.settings) if p not in read]
        self.consumer.incremental_assign(assignment)

    def run(self) -> None:
        try:
            self.ready.set()
            while not self.stopping.is_set():
                self.last_poll = time.monotonic()
                outbox: dict[str, list[dict[str, Any]]] = {}
                for message in _batch(self.consumer, 500):
                    if message.error() is None:
                        self._take(message, outbox)
                for match_id, updates in outbox.items():
                    self.publish(match_id, updates)
        except Exception as error:  # noqa: BLE001 - reported by /healthz; the process stays up to say so
            self.error = f"{type(error).__name__}: {error}"
            log.exception("the topic follower stopped")
        finally:
            self.consumer.close()

    def healthy(self) -> bool:
        return self.error is None and self.is_alive() and time.monotonic() - self.last_poll < 30

    def stop(self) -> None:
        self.stopping.set()

    def _take(self, message: Message, outbox: dict[str, list[dict[str, Any]]]) -> None:
        topic = message.topic()
        if topic == self._prefs_topic:
            with self.prefs_lock:
                record = apply_record(self.prefs, message)
            key = (message.key() or b"").decode("utf-8", "replace")
            outbox.setdefault(key, []).append({"type": "preferences", "match_id": key, "record": record})
            return
        name, kind = self._decoders[topic]
        try:
            record = decode(message.value(), expect=kind)  # type: ignore[arg-type]
        except SchemaError:
            return  # the composer or the worker dead-letters it; the page just does not show it
        at_ms = message.timestamp()[1]
        if name == "crowd.emotions.v1":
            update = self.model.on_emotion(record, at_ms=at_ms)
        elif name == "music.control.v1":
            update = self.model.on_control(record, at_ms=at_ms)
        elif name == "match.events.v1":
            update = self.model.on_event(record, at_ms=at_ms)
        else:
            update = self.model.on_cue(record, at_ms=at_ms)
        if update is not None:
            outbox.setdefault(record["match_id"], []).append(update)

    def preferences_of(self, match_id: str) -> tuple[dict[str, Any] | None, dict[str, Any]]:
        """(the match's own record, or None; the preferences in force) — '*' is the global record."""
        with self.prefs_lock:
            return self.prefs.record_of(match_id), self.prefs.for_match(match_id).to_json()


class AudioTap(threading.Thread):
    """One match's music audio, from a moment ago, to ``deliver(pcm_bytes, chunk)``."""

    def __init__(self, settings: Settings, match_id: str, deliver: Callable[[bytes, dict[str, Any]], None], *,
                 start_back_ms: int = 1500) -> None:
        super().__init__(name=f"controlroom-audio-{match_id}", daemon=True)
        self.settings = settings
        self.match_id = match_id
        self.key = match_key(match_id)
        self.deliver = deliver
        self.stopping = threading.Event()
        self.consumer = _reader(settings, "audio")
        topic = settings.topic("music.audio.v1")
        partition = partition_for(self.key, len(topic_partitions(self.consumer, topic, settings)))
        self.consumer.assign(_offsets_at(self.consumer, topic, [partition], int(time.time() * 1000) - start_back_ms))

    def run(self) -> None:
        next_seq = -1
        try:
            while not self.stopping.is_set():
                for message in _batch(self.consumer, 50):
                    if message.error() is not None or message.key() != self.key:
                        continue
                    try:
                        chunk = decode(message.value(), expect="AudioChunk")
                    except SchemaError:
                        continue
                    if chunk["seq"] <= next_seq - 1 or chunk["encoding"] != "PCM_S16LE":
                        continue
                    next_seq = chunk["seq"] + 1
                    self.deliver(chunk["payload"], chunk)
        finally:
            self.consumer.close()

    def stop(self) -> None:
        self.stopping.set()
