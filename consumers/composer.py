"""``crowdsound composer``: the consumer group that turns crowd.emotions.v1 into music.

A thin Kafka shell around ``consumers.score.MatchScore``. Exactly once, by Kafka
transactions: each batch of input records, the outputs they release (music.control.v1,
music.audio.v1, dead letters), the new state of every match touched, and the consumer
offsets are committed in one transaction. The state goes to a compacted internal topic
(``<prefix>crowdsound-composer-state``, one partition per input partition, like a Kafka
Streams changelog), so a composer killed at any moment restarts from the last committed
batch with the exact state of that batch: no duplicate and no missing bar, and — because
the score is deterministic — the same music it would have made without the crash.

A match is forgotten — its state tombstoned in the same transaction, its score dropped —
once another match of its partition has been heard ``forget_after_h`` hours later (match
audio time, not the wall clock of the composer, so a restarted composer forgets at the same
record), so the state topic and restore time do not grow with every match ever played. That
time is bounded by the record's own timestamp, which the broker stamps (LogAppendTime): a
venue clock hours fast cannot make its partition forget the other matches.

One window cannot stop the music. Windows the codec refuses (clock, NaN, bounds), windows
keyed to another match, and windows whose clock leaps further ahead of the match's last one
than the time between their records allows are dead-lettered with the reason. If composing
a window fails all the same (a bug), the transaction is aborted, the batch is read again
from the last commit, and that window is dead-lettered in its place: the composer neither
crashes nor carries the record to the next pod, and exactly-once still holds.

``--outputs`` splits the work: a control-only group is cheap (hundreds of matches per
process), an audio group renders with FluidSynth. Both compute the same score, so their
outputs agree bar for bar.

``--render-threads N`` composes the matches of a batch on N threads (FluidSynth and the
reverb's FFTs release the GIL), each with its own synth. A match's windows stay in order on
one thread, matches do not share state, and the outputs are produced in the order of the
input records, so the output is byte for byte the same as with one thread.
"""

from __future__ import annotations

import json
import logging
import signal
import socket
import time
import zlib
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition
from confluent_kafka.admin import NewTopic
from prometheus_client import Counter, Gauge, Histogram

from consumers.composer_config import ComposerConfig
from consumers.cues import validate_cue
from consumers.preferences import ALL_MATCHES, PreferencesTable, validate_preferences
from consumers.score import MatchScore, Output
from infra.clients import kafka_refusal, make_admin, make_consumer, make_producer, match_key
from infra.deadletter import dead_letter_record
from infra.errors import BrokerError, CrowdsoundError, SchemaError
from infra.metrics import Liveness, serve_metrics
from infra.partitioning import partition_for
from infra.reading import read_to_end, topic_partitions
from infra.settings import Settings
from infra.topics import internal_topic_replication
from infra.watchdog import CallWatchdog, exit_without_commit
from schemas.clock import MatchClock, Period
from schemas.codec import decode, encode

__all__ = ["run_composer", "state_topic"]

log = logging.getLogger("crowdsound.composer")

WINDOWS = Counter("crowdsound_composer_windows_total", "emotion windows composed from", ["revised"])
CONTROLS = Counter("crowdsound_composer_controls_total", "music.control.v1 messages emitted", ["kind"])
AUDIO_SECONDS = Counter("crowdsound_composer_audio_seconds_total", "seconds of music audio emitted")
GAP_SECONDS = Counter("crowdsound_composer_audio_gap_seconds_total",
                      "seconds of music composed while emotion windows were missing (held, then decaying to calm)")
DEAD_LETTERS = Counter("crowdsound_composer_dead_letters_total", "input records sent to a dead-letter topic",
                       ["topic"])
TEMPO = Gauge("crowdsound_composer_tempo_bpm", "tempo of the latest bar", ["match_id"])
INTENSITY = Gauge("crowdsound_composer_intensity", "intensity of the latest bar, 0..1", ["match_id"])
MATCHES = Gauge("crowdsound_composer_matches", "matches this process composes for")
LATENCY = Histogram("crowdsound_composer_emotion_to_output_seconds",
                    "from an emotion window's Kafka timestamp to the commit of the music it released",
                    buckets=(0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5))
# outcome: queued, applied (its control message was emitted), duplicate, expired, no_music, dead_letter
CUES = Counter("crowdsound_composer_cues_total", "operator cues (music.cues.v1) by type and outcome",
               ["type", "outcome"])
BATCH = Histogram("crowdsound_composer_batch_seconds", "time to compose and commit one batch of input",
                  buckets=(0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0))

@dataclass
class _Composing:
    """One emotion window to compose from: prepared in input order, composed on a render
    thread (a match's windows in order, on one thread), emitted in input order."""

    message: Message
    match_id: str
    score: MatchScore
    window: dict[str, Any]
    prefs: Any
    outputs: list[Output] | None = None
    error: BaseException | None = None

    def compose(self) -> None:
        try:
            self.score.set_prefs(self.prefs)
            self.outputs = self.score.on_window(self.window)
        except BaseException as error:  # noqa: BLE001 - re-raised or dead-lettered in input order
            self.error = error


def _compose_in_order(jobs: list[_Composing]) -> None:
    for job in jobs:
        job.compose()


def _drop_gauges(match_id: str) -> None:
    for gauge in (TEMPO, INTENSITY):
        try:
            gauge.remove(match_id)
        except KeyError:
            pass  # no bar yet


def state_topic(settings: Settings) -> str:
    return settings.topic("crowdsound-composer-state")


def _group_id(settings: Settings, config: ComposerConfig) -> str:
    return f"{settings.topic_prefix}crowdsound-composer-{config.group_id_suffix}"


def _ensure_state_topic(settings: Settings) -> None:
    """Create the internal state topic (compacted, co-partitioned with the inputs) if missing."""
    admin = make_admin(settings)
    name = state_topic(settings)
    if name in admin.list_topics(timeout=10).topics:
        return
    replicas, min_insync = internal_topic_replication(admin, settings)
    topic = NewTopic(name, num_partitions=settings.partitions, replication_factor=replicas,
                     # 5-minute segments: only closed segments are compacted, in one go, and at 100
                     # matches the state topic takes ~100 kB/s: an hour's segment was a ~4 s burst of
                     # one broker core. A jitter of up to 2 minutes keeps the partitions from rolling
                     # (and being compacted) all at once.
                     config={"cleanup.policy": "compact", "compression.type": "zstd", "segment.ms": "300000",
                             "segment.jitter.ms": "120000",
                             "min.cleanable.dirty.ratio": "0.1", "max.message.bytes": str(8 * 1024 * 1024),
                             "min.insync.replicas": str(min_insync)})
    for future in admin.create_topics([topic]).values():
        try:
            future.result()
        except KafkaException as error:
            if error.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                refusal = kafka_refusal(error.args[0], settings, f"to create its state topic {name}")
                raise BrokerError(refusal or f"cannot create {name}: {error}") from None
    # A new topic's partitions reach the client's metadata a moment later; restoring state
    # from a partition not known yet fails (_UNKNOWN_PARTITION), so wait for all of them.
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        found = admin.list_topics(name, timeout=10).topics.get(name)
        if found is not None and found.error is None and len(found.partitions) == settings.partitions:
            return
        time.sleep(0.2)
    raise BrokerError(f"{name} was created but its {settings.partitions} partitions did not appear within 30 s")


HEARD_KEY = "composer_heard_wall_ms"  # in a match's saved state: the newest audio wall time of its windows
# In a match's saved state: [period, ms, record time ms] of its furthest window (for leaps).
LAST_WINDOW_KEY = "composer_last_window"
# How far a window's clock may run ahead of the match's furthest window beyond the record time
# between them (as the worker allows its frames); more is a forgery.
LEAP_TOLERANCE_MS = 120_000
TXN_PRODUCERS = 2  # transactional producers taking turns (see Composer.__init__)
_TXN_TIMEOUT_S = 20  # for each transactional call (send offsets, commit, abort): past the 15 s transaction timeout
_TXN_GRACE_S = 15  # how long past its timeout a call may block before the watchdog ends the process
# State-topic key of the next music.cues.v1 offset of an input partition (like a match's state, it
# is written in the transaction that consumed the cues, so each cue is applied exactly once).
CUE_POSITION_KEY = "cues-position:{suffix}:{partition}"


def pack_state(state: dict[str, Any]) -> bytes:
    return zlib.compress(json.dumps(state, separators=(",", ":"), sort_keys=True).encode(), 6)


def unpack_state(data: bytes) -> dict[str, Any]:
    return json.loads(zlib.decompress(data))


def _fatal(error: KafkaException) -> None:
    """The transactional producer failed for good (librdkafka: it cannot be used again, e.g.
    INVALID_TXN_STATE after a broker restart). Exit with status 70 committing nothing more: the
    orchestrator's restart gets a new producer, fences this one and resumes from the last
    commit, the same music as without the failure."""
    exit_without_commit(error, "the composer's transactional producer failed")


class ComposeFailed(Exception):
    """Composing from one input record raised: the batch is aborted and that record dead-lettered."""

    def __init__(self, message: Message, error: BaseException) -> None:
        super().__init__(f"{type(error).__name__}: {error}")
        self.message = message
        self.error = error


def window_leap(last: list[Any] | None, window: dict[str, Any], at_ms: int) -> str | None:
    """Why ``window`` cannot follow the match's furthest window ``last`` ([period, ms, record
    time]): its clock runs further ahead than the record time between them allows."""
    if last is None:
        return None
    previous = MatchClock(Period(last[0]), last[1])
    clock = MatchClock.from_avro(window["clock"])
    allowed = max(0, at_ms - last[2]) + LEAP_TOLERANCE_MS
    if clock.period is previous.period:
        ahead = clock.ms - previous.ms
    else:  # a later period starts at 0; an earlier one is a revision
        ahead = clock.ms if clock.period.order > previous.period.order else 0
    if ahead <= allowed:
        return None
    return (f"window at {clock} leaps {ahead / 1000:.0f} s ahead of the match's furthest window at {previous}, "
            f"{max(0, at_ms - last[2]) / 1000:.0f} s of record time after it")


class Composer:
    """One composer process: a consumer group member with a transactional producer."""

    def __init__(self, settings: Settings, config: ComposerConfig) -> None:
        self.settings = settings
        self.config = config
        self.emotions_topic = settings.topic("crowd.emotions.v1")
        self.prefs_topic = settings.topic("music.preferences.v1")
        self.cues_topic = settings.topic("music.cues.v1")
        self.state_topic = state_topic(settings)
        self.state_key_prefix = f"{config.group_id_suffix}:"
        self.synth = None
        self.render_pool: ThreadPoolExecutor | None = None
        if "audio" in config.outputs:
            from consumers.render.synth import SoundFontSynth, SynthPerThread

            if config.render_threads > 1:
                self.synth = SynthPerThread()
                self.render_pool = ThreadPoolExecutor(config.render_threads, thread_name_prefix="render")
            else:
                self.synth = SoundFontSynth()
        self.scores: dict[str, MatchScore] = {}
        self.saved: dict[str, dict[str, Any]] = {}  # restored state not yet turned into a score
        self.heard: dict[str, int] = {}  # per match: newest audio wall time of its windows (ms)
        self.last_window: dict[str, list[Any]] = {}  # per match: [period, ms, record time] of its furthest window
        # Input records whose composing failed, to dead-letter when the batch is read again:
        # (topic, partition, offset) -> (reason, error type).
        self.poison: dict[tuple[str, int, int], tuple[str, str]] = {}
        self.newest: dict[int, int] = {}  # per input partition: newest audio wall time of any window
        self.prefs = PreferencesTable()
        self.assigned: set[int] = set()
        # music.cues.v1 is read assign-only, partition for partition with the emotions; its
        # positions live in the state topic. start: where reading began at assignment (the
        # committed position, or the end then); position: the next offset to take.
        self.cue_start: dict[int, int] = {}
        self.cue_position: dict[int, int] = {}
        self.cue_dirty: set[int] = set()
        self.began = 0.0  # time.monotonic() when the last batch transaction began
        self.commit_unfinished = False  # a commit_transaction call failed and must be called again
        self.running = True
        self.healthy = True
        # A transactional call that never returns (librdkafka#5456 after a broker restart) would
        # leave the composer up, healthy and silent: exit instead, and resume from the last commit.
        self.watchdog = CallWatchdog()
        # /healthz: the loop turns at least every poll timeout; a batch stuck longer than the
        # stall limit (a transaction that hangs, a render that never ends) makes it unhealthy.
        self.liveness = Liveness(settings.health_stall_s)
        self.liveness.busy(True)
        instance = config.instance or socket.gethostname()
        # Transactions take turns on TXN_PRODUCERS producers (one transactional id each): after a
        # commit returns, the coordinator still writes that transaction's markers (about a ms,
        # tens under load), and the next transaction of the same id meets CONCURRENT_TRANSACTIONS
        # until they are written. librdkafka then retries AddPartitionsToTxn after a fixed 20 ms
        # and AddOffsetsToTxn after retry.backoff.ms: at 100 live matches about one transaction
        # in ten paid that, the tail of emotion -> control. The next producer's last transaction
        # ended a whole transaction earlier. Output order is kept: transactions still begin only
        # after the previous one committed, so their records follow each other in every partition.
        transactional_id = f"{_group_id(settings, config)}-{instance}"
        self.producers = [make_producer(settings, {
            "transactional.id": transactional_id if turn == 0 else f"{transactional_id}#{turn}",
            "transaction.timeout.ms": 15_000,
            "linger.ms": 2,
            # Retrying AddOffsetsToTxn after CONCURRENT_TRANSACTIONS (when markers are slow) after
            # librdkafka's default 100 ms stalled about a quarter of the transactions at 100 live
            # matches (before the producers took turns). Retries still back off exponentially.
            "retry.backoff.ms": 10,
        }) for turn in range(TXN_PRODUCERS)]
        for producer in self.producers:  # (fences and aborts what a previous run left open)
            producer.init_transactions(30)
        self.turn = 0  # the producer of the next transaction
        self.consumer = make_consumer(settings, group_id=_group_id(settings, config), extra={
            "partition.assignment.strategy": "cooperative-sticky",
            # A composer that died is noticed in 10 s (as the worker's group does), not librdkafka's
            # 45 s: its matches' music stops that long. Heartbeats come from librdkafka's own
            # thread, so a long batch does not count against it.
            "session.timeout.ms": 10_000,
        })
        self.prefs_consumer = make_consumer(settings, group_id=f"{_group_id(settings, config)}-prefs-unused")
        # Cues are rare and wanted on the next beat: fetch them without the default 500 ms wait.
        self.cues_consumer = make_consumer(settings, group_id=f"{_group_id(settings, config)}-cues-unused",
                                           extra={"fetch.wait.max.ms": 50})

    @property
    def producer(self) -> Producer:
        """The producer whose turn it is: the open transaction's, or the next one's."""
        return self.producers[self.turn]

    # -- assignment and state -----------------------------------------------------------------
    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        new = {p.partition for p in partitions} - self.assigned
        self.assigned |= new
        self._restore(new)
        self._assign_cues(new)
        log.info("assigned partitions=%s", sorted(new))

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        gone = {p.partition for p in partitions}
        self.assigned -= gone
        for match_id in [m for m in self.scores if self._partition(m) in gone]:
            del self.scores[match_id]
            _drop_gauges(match_id)
        for match_id in [m for m in self.saved if self._partition(m) in gone]:
            del self.saved[match_id]
        for match_id in [m for m in self.heard if self._partition(m) in gone]:
            del self.heard[match_id]
        for match_id in [m for m in self.last_window if self._partition(m) in gone]:
            del self.last_window[match_id]
        for partition in gone:
            self.newest.pop(partition, None)
            self.cue_start.pop(partition, None)
            self.cue_position.pop(partition, None)
            self.cue_dirty.discard(partition)
        if gone:
            self.cues_consumer.incremental_unassign([TopicPartition(self.cues_topic, p) for p in gone])
        MATCHES.set(len(self.scores))
        log.info("revoked partitions=%s", sorted(gone))

    def _partition(self, match_id: str) -> int:
        return partition_for(match_key(match_id), self.settings.partitions)

    def _restore(self, partitions: Iterable[int]) -> None:
        """Read the committed state of every match of ``partitions`` from the state topic."""
        wanted = sorted(partitions)
        if not wanted:
            return
        reader = make_consumer(self.settings, group_id=f"{_group_id(self.settings, self.config)}-restore")
        try:
            for message in read_to_end(reader, self.state_topic, {p: OFFSET_BEGINNING for p in wanted},
                                       idle_timeout_s=60):
                key = (message.key() or b"").decode()
                if key == self._cue_position_key(message.partition()):
                    if message.value() is not None:
                        self.cue_position[message.partition()] = json.loads(message.value())["offset"]
                elif key.startswith(self.state_key_prefix):
                    match_id = key[len(self.state_key_prefix):]
                    value = message.value()
                    self.scores.pop(match_id, None)
                    self.saved.pop(match_id, None)
                    self.heard.pop(match_id, None)
                    self.last_window.pop(match_id, None)
                    if value is not None:
                        self.saved[match_id] = unpack_state(value)
                        if HEARD_KEY in self.saved[match_id]:
                            self._hear(match_id, message.partition(), self.saved[match_id][HEARD_KEY])
                        if LAST_WINDOW_KEY in self.saved[match_id]:
                            self.last_window[match_id] = self.saved[match_id][LAST_WINDOW_KEY]
        except BrokerError:
            raise BrokerError(f"could not read the composer state of partitions {wanted}") from None
        finally:
            reader.close()

    def _cue_position_key(self, partition: int) -> str:
        return CUE_POSITION_KEY.format(suffix=self.config.group_id_suffix, partition=partition)

    def _assign_cues(self, partitions: Iterable[int]) -> None:
        """Read the cues of ``partitions`` from the committed position, or from their end now
        (a partition no composer has read cues of yet: older cues are not this run's to play)."""
        wanted = []
        for partition in sorted(partitions):
            position = self.cue_position.get(partition)
            if position is None:
                _, position = self.cues_consumer.get_watermark_offsets(
                    TopicPartition(self.cues_topic, partition), timeout=10, cached=False)
                self.cue_dirty.add(partition)  # written with the next transaction
            self.cue_start[partition] = self.cue_position[partition] = position
            wanted.append(TopicPartition(self.cues_topic, partition, position))
        if wanted:
            self.cues_consumer.incremental_assign(wanted)

    def _score(self, match_id: str) -> MatchScore:
        score = self.scores.get(match_id)
        if score is None:
            saved = self.saved.pop(match_id, None)
            hop = self.settings.window_hop_ms
            score = (MatchScore.from_state(match_id, saved, synth=self.synth, hop_ms=hop) if saved is not None
                     else MatchScore(match_id, synth=self.synth, hop_ms=hop))
            self.scores[match_id] = score
            MATCHES.set(len(self.scores))
        return score

    # -- the loop ---------------------------------------------------------------------------
    def run(self) -> None:
        topic_partitions(self.cues_consumer, self.cues_topic, self.settings)  # missing: one line, at once
        self.consumer.subscribe([self.emotions_topic], on_assign=self._on_assign, on_revoke=self._on_revoke)
        self._assign_prefs()
        while self.running:
            self.liveness.progressed()
            self._read_prefs()
            first = self.consumer.poll(self.config.poll_timeout_s)
            if first is None:
                continue
            gather = self.config.gather_s - (time.monotonic() - self.began)
            batch = [first] + self.consumer.consume(self.config.max_batch - 1, max(0.0, gather))
            while batch:
                started = time.perf_counter()
                try:
                    batch = batch[self._process(batch):]
                except ComposeFailed as failed:
                    self._skip(failed)
                    batch = []  # the consumer was rewound to the last commit
                except KafkaException as error:
                    self._recover(error)
                    batch = []  # the consumer was rewound to the last commit
                BATCH.observe(time.perf_counter() - started)

    def _assign_prefs(self) -> None:
        partitions = topic_partitions(self.prefs_consumer, self.prefs_topic, self.settings)
        self.prefs_consumer.assign([TopicPartition(self.prefs_topic, p, OFFSET_BEGINNING) for p in partitions])

    def _read_prefs(self) -> None:
        for message in self.prefs_consumer.consume(500, 0):
            if message.error():
                continue
            match_id = (message.key() or b"").decode("utf-8", "replace")
            if message.value() is None:
                self.prefs.put(match_id, None)
                continue
            try:
                record = decode(message.value(), expect="Preferences")
                validate_preferences(record)
            except SchemaError as error:
                # Every replica reads every preference; only the owner of the key reports it.
                if self._partition(match_id) in self.assigned or match_id == ALL_MATCHES:
                    self._dead_letter_now(message, str(error))
                continue
            self.prefs.put(match_id, record)

    def _process(self, batch: list[Message]) -> int:
        """Compose from the head of ``batch`` in one transaction; return how many records it took.

        A transaction stops taking records after ``transaction_budget_s``: rendering a
        backlog (a burst of windows, a restart after downtime) must never keep a
        transaction open near ``transaction.timeout.ms``, or the coordinator aborts it and
        fences the producer.
        """
        self.began = time.monotonic()
        self.producer.begin_transaction()
        touched: set[str] = set()
        received: list[float] = []  # Kafka timestamps of the windows, for the latency histogram
        started = time.monotonic()
        for message in self.cues_consumer.consume(100, 0):
            if not message.error():
                match_id = self._handle_cue(message)
                if match_id is not None:
                    touched.add(match_id)
        taken = 0
        # Windows are composed a chunk at a time (on the render threads), so the budget is
        # checked between chunks.
        chunk = 1 if self.render_pool is None else 16 * self.config.render_threads
        while taken < len(batch):
            if taken and time.monotonic() - started > self.config.transaction_budget_s:
                break
            messages = batch[taken:taken + chunk]
            taken += len(messages)
            for message, match_id in zip(messages, self._handle_all(messages), strict=True):
                if match_id is not None:
                    touched.add(match_id)
                    received.append(message.timestamp()[1] / 1000)
        for match_id in sorted(touched & set(self.scores)):  # (not those forgotten since)
            state = self.scores[match_id].to_state()
            state[HEARD_KEY] = self.heard[match_id]
            if match_id in self.last_window:
                state[LAST_WINDOW_KEY] = self.last_window[match_id]
            self.producer.produce(self.state_topic, key=f"{self.state_key_prefix}{match_id}".encode(),
                                  value=pack_state(state), partition=self._partition(match_id))
        for partition in sorted(self.cue_dirty):
            self.producer.produce(self.state_topic, key=self._cue_position_key(partition).encode(),
                                  value=json.dumps({"offset": self.cue_position[partition]}).encode(),
                                  partition=partition)
        positions = self._positions(batch[:taken])
        with self.watchdog.deadline("sending the offsets to the transaction", _TXN_TIMEOUT_S + _TXN_GRACE_S):
            self.producer.send_offsets_to_transaction(positions, self.consumer.consumer_group_metadata(),
                                                      _TXN_TIMEOUT_S)
        self._commit("committing the transaction")
        self.cue_dirty.clear()
        now = time.time()
        for timestamp in received:
            LATENCY.observe(max(0.0, now - timestamp))
        return taken

    @staticmethod
    def _positions(batch: list[Message]) -> list[TopicPartition]:
        last: dict[tuple[str, int], int] = {}
        for message in batch:
            if not message.error():
                last[(message.topic(), message.partition())] = message.offset()
        return [TopicPartition(topic, partition, offset + 1) for (topic, partition), offset in last.items()]

    def _handle_all(self, messages: list[Message]) -> list[str | None]:
        """Compose from ``messages`` (in order); the match each one touched (None: none)."""
        prepared = [self._prepare(message) for message in messages]
        jobs = [job for job in prepared if isinstance(job, _Composing)]
        by_score: dict[int, list[_Composing]] = {}
        for job in jobs:
            by_score.setdefault(id(job.score), []).append(job)
        if self.render_pool is not None and len(by_score) > 1:
            for done in [self.render_pool.submit(_compose_in_order, group) for group in by_score.values()]:
                done.result()
        else:
            _compose_in_order(jobs)
        return [self._emit(job) if isinstance(job, _Composing) else None for job in prepared]

    def _prepare(self, message: Message) -> _Composing | None:
        """Decode and check a window and find its match's score, in input order (None: nothing
        to compose: a consume error, or the record was dead-lettered)."""
        if message.error():
            if message.error().code() != KafkaError._PARTITION_EOF:
                log.warning("consume error %s", message.error())
            return None
        poisoned = self.poison.pop((message.topic(), message.partition(), message.offset()), None)
        if poisoned is not None:  # composing it failed before: keep it aside this time
            self._dead_letter(message, *poisoned)
            return None
        try:
            window = decode(message.value(), expect="EmotionWindow")
        except SchemaError as error:
            self._dead_letter(message, str(error), "SchemaError")
            return None
        match_id = window["match_id"]
        if message.key() != match_key(match_id):
            self._dead_letter(message, f"Kafka key {message.key()!r} is not the window's match_id {match_id!r}",
                              "KeyMismatch")
            return None
        at_ms = message.timestamp()[1]
        leap = window_leap(self.last_window.get(match_id), window, at_ms)
        if leap is not None:
            self._dead_letter(message, leap, "ClockLeap")
            return None
        # Event time, bounded by the record's time (the broker's): a fast venue clock cannot
        # make the partition forget its other matches.
        self._hear(match_id, message.partition(), min(int(window["audio_wall_time_ms"]), at_ms), forget=True)
        last = self.last_window.get(match_id)
        clock = MatchClock.from_avro(window["clock"])
        if last is None or clock > MatchClock(Period(last[0]), last[1]):
            self.last_window[match_id] = [clock.period.value, clock.ms, at_ms]
        try:
            score = self._score(match_id)
        except Exception as error:  # noqa: BLE001 - a bug must not stop the other matches
            raise ComposeFailed(message, error) from error
        return _Composing(message, match_id, score, window, self.prefs.for_match(match_id))

    def _emit(self, job: _Composing) -> str:
        """Send what a window released, in input order. Composing it failed: the transaction is
        aborted and the window dead-lettered when the batch is read again (``_skip``)."""
        if job.error is not None:
            raise ComposeFailed(job.message, job.error) from job.error
        WINDOWS.labels(revised=str(job.window["revision"] > 0).lower()).inc()
        self._send(job.match_id, job.outputs or [])
        return job.match_id

    def _handle_cue(self, message: Message) -> str | None:
        """Queue an operator cue in its match's score (inside the open transaction); returns the
        match when its state changed."""
        partition = message.partition()
        if partition not in self.cue_position:
            return None  # revoked meanwhile
        self.cue_position[partition] = message.offset() + 1
        self.cue_dirty.add(partition)
        try:
            cue = decode(message.value(), expect="Cue")
            validate_cue(cue)
        except SchemaError as error:
            self._dead_letter(message, str(error), "SchemaError")
            CUES.labels(type="unknown", outcome="dead_letter").inc()
            return None
        match_id, kind = cue["match_id"], cue["type"].lower()
        age_s = time.time() - cue["wall_time_ms"] / 1000
        if age_s > self.config.cue_max_age_s:
            log.warning("cue %s (%s) for match_id=%s ignored: sent %.0f s ago", cue["cue_id"], kind, match_id, age_s)
            CUES.labels(type=kind, outcome="expired").inc()
            return None
        if match_id not in self.scores and match_id not in self.saved:
            log.warning("cue %s (%s) ignored: no music for match_id=%s yet", cue["cue_id"], kind, match_id)
            CUES.labels(type=kind, outcome="no_music").inc()
            return None
        queued = self._score(match_id).on_cue(cue)
        CUES.labels(type=kind, outcome="queued" if queued else "duplicate").inc()
        log.info("cue %s (%s) from %s for match_id=%s %s", cue["cue_id"], kind, cue["set_by"] or "?", match_id,
                 "queued" if queued else "already taken")
        return match_id

    def _hear(self, match_id: str, partition: int, wall_ms: int, *, forget: bool = False) -> None:
        """Note a window's audio time; with ``forget``, first forget the matches of the
        partition not heard for ``forget_after_h`` before the partition's newest window."""
        if wall_ms > self.newest.get(partition, wall_ms - 1):
            self.newest[partition] = wall_ms
            if forget:
                self._forget_before(partition, wall_ms - int(self.config.forget_after_h * 3_600_000))
        self.heard[match_id] = max(self.heard.get(match_id, wall_ms), wall_ms)

    def _forget_before(self, partition: int, cutoff_ms: int) -> None:
        """Tombstone (in the open transaction) the state of the partition's matches last heard
        before ``cutoff_ms``: finished matches must not make the state topic grow for ever."""
        if min(self.heard.values(), default=cutoff_ms) >= cutoff_ms:
            return  # the common case, without hashing every match id to its partition
        for match_id in [m for m, heard in self.heard.items() if heard < cutoff_ms and self._partition(m) == partition]:
            self.producer.produce(self.state_topic, key=f"{self.state_key_prefix}{match_id}".encode(), value=None,
                                  partition=partition)
            self.scores.pop(match_id, None)
            self.saved.pop(match_id, None)
            self.last_window.pop(match_id, None)
            del self.heard[match_id]
            _drop_gauges(match_id)
            log.info("forgot match_id=%s (not heard for %.0f h)", match_id, self.config.forget_after_h)
        MATCHES.set(len(self.scores))

    def _send(self, match_id: str, outputs: list[Output]) -> None:
        key = match_key(match_id)
        for output in outputs:
            record = output.record
            if output.kind == "control":
                if "control" not in self.config.outputs:
                    continue
                self.producer.produce(self.settings.topic("music.control.v1"), key=key,
                                      value=encode("MusicControl", record))
                CONTROLS.labels(kind=record["kind"].lower()).inc()
                for cue in record["cues"]:
                    CUES.labels(type=cue["type"].lower(), outcome="applied").inc()
                if record["kind"] == "BAR":
                    TEMPO.labels(match_id=match_id).set(record["tempo_bpm"])
                    INTENSITY.labels(match_id=match_id).set(record["intensity"])
                    if "windows missing" in record["reason"]:
                        GAP_SECONDS.inc(record["beats_per_bar"] * 60.0 / record["tempo_bpm"])
            else:
                self.producer.produce(self.settings.topic("music.audio.v1"), key=key,
                                      value=encode("AudioChunk", record))
                AUDIO_SECONDS.inc(record["samples_per_channel"] / record["sample_rate"])
            self.producer.poll(0)

    def _dead_letter(self, message: Message, reason: str, error_type: str) -> None:
        topic, key, value = dead_letter_record(
            self.settings, source_topic=message.topic() or "", source=f"{message.topic()}[{message.partition()}]"
            f"@{message.offset()}", partition=message.partition(), offset=message.offset(), key=message.key(),
            value=message.value(), reason=reason, error_type=error_type,
            match_id=(message.key() or b"").decode("utf-8", "replace") or None, clock=None, processor="composer")
        self.producer.produce(topic, key=key, value=value)
        DEAD_LETTERS.labels(topic=message.topic() or "").inc()

    def _dead_letter_now(self, message: Message, reason: str) -> None:
        """A dead letter outside the batch transaction (preferences are not part of it)."""
        self.producer.begin_transaction()
        self._dead_letter(message, reason, "SchemaError")
        self._commit("committing a dead letter")

    def _commit(self, what: str) -> None:
        """Commit the open transaction. A commit that fails may still go on in the background
        (a timeout while the broker is away), and then librdkafka refuses every other
        transactional call until commit_transaction is called again: :meth:`_abort` does that."""
        self.commit_unfinished = True
        with self.watchdog.deadline(what, _TXN_TIMEOUT_S + _TXN_GRACE_S):
            self.producer.commit_transaction(_TXN_TIMEOUT_S)
        self.commit_unfinished = False
        self.turn = (self.turn + 1) % len(self.producers)

    def _skip(self, failed: ComposeFailed) -> None:
        """Composing one record failed: abort the batch, and dead-letter that record when the
        batch is read again from the last commit (the rest is composed as before)."""
        message = failed.message
        log.error("composing %s[%s]@%s failed, dead-lettering it: %s", message.topic(), message.partition(),
                  message.offset(), failed, exc_info=failed.error)
        self.poison[(message.topic(), message.partition(), message.offset())] = (
            f"composing failed: {failed}"[:500], type(failed.error).__name__)
        self._abort()
        self._rewind()

    def _recover(self, error: KafkaException) -> None:
        """A failed transaction: abort it, forget in-memory state, resume from the last commit."""
        kafka_error = error.args[0]
        if kafka_error.fatal():
            _fatal(error)
        log.warning("transaction failed, aborting it and resuming from the last commit: %s", kafka_error)
        self._abort()
        self._rewind()

    def _abort(self) -> None:
        """End the open transaction, whatever failed in it (a timeout during a broker outage
        does not ask for an abort, but the transaction is still open: the next one could never
        begin): abort it — or, when its commit failed but may still go on, finish the commit
        (abort_transaction would be refused with _CONFLICT for ever). Either way the caller
        resumes from the last commit. Retried while the broker is away."""
        while True:
            try:
                if self.commit_unfinished:
                    with self.watchdog.deadline("finishing the commit", _TXN_TIMEOUT_S + _TXN_GRACE_S):
                        self.producer.commit_transaction(_TXN_TIMEOUT_S)
                else:
                    with self.watchdog.deadline("aborting the transaction", _TXN_TIMEOUT_S + _TXN_GRACE_S):
                        self.producer.abort_transaction(_TXN_TIMEOUT_S)
                self.commit_unfinished = False
                return
            except KafkaException as error:
                kafka_error = error.args[0]
                if kafka_error.fatal():
                    _fatal(error)
                if kafka_error.code() == KafkaError._STATE:
                    self.commit_unfinished = False
                    return  # no transaction open
                if self.commit_unfinished and kafka_error.txn_requires_abort():
                    self.commit_unfinished = False  # the commit failed for good: abort next
                    continue
                log.warning("cannot %s the transaction yet, retrying: %s",
                            "commit" if self.commit_unfinished else "abort", kafka_error)
                time.sleep(1)

    def _rewind(self) -> None:
        """Forget in-memory state and read again from the last commit."""
        self.scores.clear()
        self.saved.clear()
        self.heard.clear()
        self.last_window.clear()
        self.newest.clear()
        self.cue_position.clear()
        assignment = self.consumer.assignment()
        self._restore({tp.partition for tp in assignment})
        for partition, start in self.cue_start.items():
            self.cue_position.setdefault(partition, start)
            self.cue_dirty.add(partition)
            self.cues_consumer.seek(TopicPartition(self.cues_topic, partition, self.cue_position[partition]))
        committed = self.consumer.committed(assignment, timeout=30)
        for tp in committed:
            self.consumer.seek(TopicPartition(tp.topic, tp.partition, tp.offset if tp.offset >= 0 else OFFSET_BEGINNING))

    def close(self) -> None:
        if self.render_pool is not None:
            self.render_pool.shutdown(wait=True)
        self.consumer.close()
        self.prefs_consumer.close()
        self.cues_consumer.close()
        for producer in self.producers:
            producer.flush(10)


def run_composer(settings: Settings, config: ComposerConfig) -> None:
    """Run a composer until SIGTERM/SIGINT."""
    _ensure_state_topic(settings)
    composer = Composer(settings, config)

    def _stop(signum: int, frame: object) -> None:
        composer.running = False

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    serve_metrics(settings.metrics_port, host=settings.metrics_host,
                  healthy=lambda: composer.healthy and composer.liveness.healthy())
    log.info("composer started outputs=%s group=%s", ",".join(config.outputs), _group_id(settings, config))
    try:
        composer.run()
    except CrowdsoundError:
        raise
    except KafkaException as error:  # out of a transactional call: the producer cannot go on
        _fatal(error)
    finally:
        composer.close()
