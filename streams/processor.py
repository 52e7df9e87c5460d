"""One record in, join state and output records out: the stream worker's logic, without Kafka.

The Faust agent is a thin loop around :meth:`RecordProcessor.apply`; the benchmark's plain
loop and the tests use the same class, so every way of running it computes the same windows.

The join state of each match lives in memory (:class:`LiveMatch`) while the worker owns its
partition; :meth:`RecordProcessor.snapshot` packs it for the changelog-backed table, which
the worker does every few records, not every record (see :mod:`streams.checkpoints`).

Idempotence: the state of a match carries the last offset applied per source topic. A
record at or below it (redelivered after a crash or a rebalance) is skipped, so state and
offsets move together in one changelog record even though Faust's commits are
at-least-once.

One record must not hurt a match. Beyond what the codec bounds (:mod:`schemas.limits`), a
frame is dead-lettered when its clock or its seq leaps further ahead of the match's last
frame than the time that passed allows (``LEAP_TOLERANCE_MS``): one forged frame would
otherwise move the match's watermark, and every real frame after it would be dropped as
out of order. Time here is the record's Kafka timestamp, which the broker stamps
(LogAppendTime, see the catalogue), and a venue's wall times are bounded by it, so a venue
clock hours fast cannot reach the windows' audio times either. A match keeps at most
``MAX_PENDING_EVENTS`` events waiting for its audio.

Finished matches are forgotten: once a partition has heard a record ``forget_after_ms``
after a match's latest record (that bounded time, never a venue's), :meth:`finished` names
the match so the worker deletes it from the table.
"""

from __future__ import annotations

import json
import re
import time
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from prometheus_client import Counter, Histogram

from infra.deadletter import dead_letter_record
from infra.errors import SchemaError
from infra.partitioning import partition_for
from infra.settings import Settings
from schemas.audio import decode_payload
from schemas.clock import MatchClock, Period
from schemas.codec import decode, encode
from streams.features import FrameAnalysis
from streams.join import JoinConfig, MatchJoin, Predict
from streams.stages import StageTimes
from streams.windows import WindowSpec

__all__ = ["FORGOTTEN", "Applied", "Decoded", "LiveMatch", "OutputRecord", "ProcessResult", "RecordProcessor",
           "heard_in", "join_config", "pack_state", "pcm_samples", "unpack_state"]

RECORDS = Counter("crowdsound_stream_records_total", "Records consumed by the stream worker.", ["topic"])
WINDOWS = Counter("crowdsound_stream_windows_total", "Emotion windows emitted (revision 0 = first emission).",
                  ["kind"])
LATE_EVENTS = Counter("crowdsound_stream_late_events_total", "Match events later than the grace period.")
DROPPED_FRAMES = Counter("crowdsound_stream_dropped_frames_total", "Audio frames not joined.", ["reason"])
FORGOTTEN = Counter("crowdsound_stream_forgotten_matches_total",
                    "Finished matches deleted from the worker's table (not heard for --forget-after hours).")
EMOTION_DELAY = Histogram(
    "crowdsound_stream_emotion_delay_seconds",
    "From the capture of a window's last audio frame to the window's emission.",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60),
)
_PROCESSOR = "crowdsound-worker"
# How far a frame's clock (or seq) may run ahead of the match's last frame beyond the time that
# passed between them: a period start announced late, clocks set by hand. More is a forgery.
LEAP_TOLERANCE_MS = 120_000
MAX_PENDING_EVENTS = 1_000  # events of a match kept waiting for its audio (a real match has a few hundred)
_HEARD = re.compile(rb'^\{"heard":(-?\d+)')


@dataclass(frozen=True)
class OutputRecord:
    topic: str  # deployed name
    key: bytes | None
    value: bytes
    timestamp_ms: int | None = None


@dataclass
class ProcessResult:
    state: bytes | None = None  # new state of the match, or None when unchanged
    outputs: list[OutputRecord] = field(default_factory=list)
    skipped: bool = False  # already applied (redelivered)


@dataclass
class Applied:
    """What one record did."""

    outputs: list[OutputRecord] = field(default_factory=list)
    match: bytes | None = None  # key of the live match the record was applied to or skipped by; None: no state
    skipped: bool = False  # already applied (redelivered): the match's state is unchanged
    windows: int = 0  # emotion windows among the outputs (first emissions and revisions)


@dataclass
class LiveMatch:
    """The join state of one match in memory."""

    join: MatchJoin
    applied: dict[str, int]  # last offset applied per source topic
    partition: int  # of the match's records (the source topics are co-partitioned)
    snapshot: bytes | None = None  # what snapshot() last returned, while nothing has changed since
    touched: float = field(default_factory=time.monotonic)  # when a record was last applied
    # The last frame joined: [period, ms, record time ms, session, seq, duration ms] (for leaps).
    last_frame: list[Any] | None = None
    heard_ms: int | None = None  # record time (bounded) of the match's latest record (for forgetting)

    @classmethod
    def restore(cls, stored: bytes, partition: int) -> LiveMatch:
        payload = unpack_state(stored)
        return cls(MatchJoin.from_state(payload["join"]), dict(payload["applied"]), partition, snapshot=stored,
                   last_frame=payload.get("last_frame"), heard_ms=payload.get("heard"))


@dataclass
class Decoded:
    """A source record decoded once (:meth:`RecordProcessor.decode_record`), so that its frame
    can be analysed ahead (:mod:`streams.offload`) before it is applied."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    kind: str  # AudioFrame or MatchEvent
    record: dict[str, Any] | None = None  # None: not a record of that kind (error says why)
    error: str | None = None
    live: LiveMatch | None = None  # the match it belongs to (None: it will be dead-lettered)
    samples: np.ndarray | None = None  # an audio frame's mono samples, full scale 1.0
    pcm: np.ndarray | None = None  # the same as decoded: int16, shape (n, channels)
    bad_audio: str | None = None  # why the samples could not be decoded


def pcm_samples(pcm: np.ndarray) -> np.ndarray:
    """Decoded int16 PCM (n, channels) as mono float samples, full scale 1.0."""
    # int16 cannot hold NaN or inf: decoding is the sanitising step.
    if pcm.shape[1] == 1:  # the same numbers as the mean of one channel, without the mean
        return pcm[:, 0].astype(np.float64) / 32768.0
    return pcm.astype(np.float64).mean(axis=1) / 32768.0


def join_config(settings: Settings) -> JoinConfig:
    return JoinConfig(window=WindowSpec(hop_ms=settings.window_hop_ms, length_ms=settings.window_length_ms),
                      grace_ms=settings.grace_ms)


def pack_state(state: dict[str, Any]) -> bytes:
    """JSON. Not compressed here: the changelog producer compresses its batches (zstd). A
    ``heard`` time goes first, so :func:`heard_in` can read it without parsing the rest."""
    return json.dumps(state, separators=(",", ":")).encode()


def heard_in(blob: bytes) -> int | None:
    """The ``heard`` time of a packed state, read from its first bytes (None: not recorded)."""
    found = _HEARD.match(blob[:40])
    return int(found.group(1)) if found else None


def unpack_state(blob: bytes) -> dict[str, Any]:
    if blob[:1] != b"{":  # written by an earlier version: zlib-compressed JSON
        blob = zlib.decompress(blob)
    return json.loads(blob)


class RecordProcessor:
    """Applies records of crowd.audio.v1 and match.events.v1 to per-match join state.

    ``load`` returns the stored (packed) state of a match the processor has not seen yet, or
    None for a new match.
    """

    def __init__(self, settings: Settings, *, predict: Predict, model_version: str = "",
                 load: Callable[[bytes], bytes | None] | None = None) -> None:
        self.settings = settings
        self.predict = predict
        self.model_version = model_version
        self.load = load
        self.config = join_config(settings)
        self.audio_topic = settings.topic("crowd.audio.v1")
        self.events_topic = settings.topic("match.events.v1")
        self._emotions = settings.topic("crowd.emotions.v1")
        self.matches: dict[bytes, LiveMatch] = {}
        self.newest: dict[int, int] = {}  # per partition: the latest (bounded) record time heard
        self._counters: dict[str, Any] = {}
        self.times = StageTimes()  # features and model seconds (streams.stages), published by the worker

    # -- state ----------------------------------------------------------------------------
    def snapshot(self, key: bytes) -> bytes:
        """The packed state of a live match (for the table)."""
        live = self.matches[key]
        if live.snapshot is None:
            live.snapshot = pack_state({"heard": live.heard_ms, "join": live.join.to_state(),
                                        "applied": live.applied, "last_frame": live.last_frame})
        return live.snapshot

    def forget(self, keys: Iterable[bytes]) -> None:
        """Drop live matches (their partition went to another worker); they are loaded
        again from the table if they come back."""
        for key in list(keys):
            self.matches.pop(key, None)

    def idle(self, seconds: float) -> list[bytes]:
        """Live matches that have had no record for ``seconds`` (finished matches: once their
        state is in the table, they need not stay in memory)."""
        horizon = time.monotonic() - seconds
        return [key for key, live in self.matches.items() if live.touched < horizon]

    def finished(self, forget_after_ms: int, stored: Iterable[tuple[bytes, bytes]] = ()) -> list[tuple[bytes, int]]:
        """Matches to delete, as (key, partition): those not heard for ``forget_after_ms`` before
        the newest record their partition has heard. ``stored`` is the table's (key, state)
        pairs, for matches not in memory (after a restart); only partitions this processor
        has heard records of are considered (they are the ones it owns)."""
        cutoff = {p: newest - forget_after_ms for p, newest in self.newest.items()}
        found: dict[bytes, int] = {}
        for key, live in self.matches.items():
            if live.heard_ms is not None and live.partition in cutoff and live.heard_ms < cutoff[live.partition]:
                found[key] = live.partition
        for key, blob in stored:
            if key in self.matches or key in found or not blob:
                continue
            partition = partition_for(key, self.settings.partitions)
            heard = heard_in(blob)
            if heard is not None and partition in cutoff and heard < cutoff[partition]:
                found[key] = partition
        return sorted(found.items())

    def drop_partitions(self, partitions: Iterable[int]) -> None:
        """Partitions revoked: forget their matches and what their partitions heard."""
        gone = set(partitions)
        self.forget([key for key, live in self.matches.items() if live.partition in gone])
        for partition in gone:
            self.newest.pop(partition, None)

    def _live(self, key: bytes, match_id: str, partition: int) -> LiveMatch:
        live = self.matches.get(key)
        if live is None:
            stored = self.load(key) if self.load is not None else None
            if stored:
                live = LiveMatch.restore(stored, partition)
            else:
                live = LiveMatch(MatchJoin(match_id, self.config, model_version=self.model_version), {}, partition)
            self.matches[key] = live
        return live

    # -- records --------------------------------------------------------------------------
    def process(self, *, state: bytes | None, topic: str, partition: int, offset: int, key: bytes | None,
                value: bytes | None, now_ms: int | None = None) -> ProcessResult:
        """Apply one record to ``state`` (the match's packed state, None for a new match) and
        return the new packed state: the stateless form of :meth:`apply`, for tests and tools."""
        if key is not None:
            live = self.matches.get(key)
            if live is None or state is None or live.snapshot is not state:
                self.matches.pop(key, None)
                if state is not None:
                    self.matches[key] = LiveMatch.restore(state, partition)
        applied = self.apply(topic=topic, partition=partition, offset=offset, key=key, value=value, now_ms=now_ms)
        if applied.match is None or applied.skipped:
            return ProcessResult(outputs=applied.outputs, skipped=applied.skipped)
        return ProcessResult(state=self.snapshot(applied.match), outputs=applied.outputs)

    def decode_record(self, *, topic: str, partition: int, offset: int, key: bytes | None,
                      value: bytes | None) -> Decoded:
        """Decode a source record, find its match (loading it if new) and decode its audio."""
        kind = "AudioFrame" if topic == self.audio_topic else "MatchEvent"
        decoded = Decoded(topic, partition, offset, key, value, kind)
        try:
            decoded.record = decode(value, expect=kind)
        except SchemaError as exc:
            decoded.error = str(exc)
            return decoded
        match_id = decoded.record["match_id"]
        if key is None or key.decode("utf-8", errors="replace") != match_id:
            return decoded
        decoded.live = self._live(key, match_id, partition)
        if kind == "AudioFrame":
            try:
                decoded.pcm = self._pcm(decoded.record)
                decoded.samples = pcm_samples(decoded.pcm)
            except SchemaError as exc:
                decoded.bad_audio = str(exc)
        return decoded

    def apply(self, *, topic: str, partition: int, offset: int, key: bytes | None, value: bytes | None,
              now_ms: int | None = None, decoded: Decoded | None = None,
              analysis: FrameAnalysis | None = None, timestamp_ms: int | None = None) -> Applied:
        """Apply one record to the live state of its match. ``decoded`` is what
        :meth:`decode_record` made of it (decoded here if not given); ``analysis`` its audio
        frame's analysis computed ahead (used only if still valid, see CrowdAnalyzer.add_frame);
        ``timestamp_ms`` the record's Kafka timestamp (None: its own wall time stands in)."""
        counter = self._counters.get(topic)
        if counter is None:
            counter = self._counters[topic] = RECORDS.labels(topic=topic.removeprefix(self.settings.topic_prefix))
        counter.inc()
        now = int(time.time() * 1000) if now_ms is None else now_ms
        if decoded is None:
            decoded = self.decode_record(topic=topic, partition=partition, offset=offset, key=key, value=value)
        record = decoded.record
        if record is None:
            return Applied(outputs=[self._dead_letter(topic, partition, offset, key, value, decoded.error or "",
                                                      "SchemaError", None)])
        match_id = record["match_id"]
        live = decoded.live
        if key is None or live is None:
            return Applied(outputs=[self._dead_letter(
                topic, partition, offset, key, value, f"Kafka key {key!r} is not the record's match_id {match_id!r}",
                "KeyMismatch", match_id)])
        if self.matches.get(key) is not live:  # forgotten since it was decoded (a rebalance)
            live = self._live(key, match_id, partition)
        if offset <= live.applied.get(topic, -1):
            return Applied(match=key, skipped=True)
        # The record's time: the broker's (LogAppendTime); a venue's wall time is bounded by it.
        at_ms = record["wall_time_ms"] if timestamp_ms is None else timestamp_ms
        if decoded.kind == "AudioFrame":
            outputs = self._audio(live, decoded, now, analysis, at_ms)
        else:
            outputs = self._event(live.join, decoded, now, at_ms)
        if not live.applied and live.join.watermark is None and not live.join.events:
            # A bad record of a match never seen: a dead letter, and no state for garbage.
            self.matches.pop(key, None)
            return Applied(outputs=outputs)
        live.applied[topic] = offset
        live.snapshot = None
        live.touched = time.monotonic()
        heard = min(record["wall_time_ms"], at_ms)
        live.heard_ms = heard if live.heard_ms is None else max(live.heard_ms, heard)
        if heard > self.newest.get(partition, heard - 1):
            self.newest[partition] = heard
        return Applied(outputs=outputs, match=key, windows=sum(o.topic == self._emotions for o in outputs))

    # -- audio ----------------------------------------------------------------------------
    def _audio(self, live: LiveMatch, decoded: Decoded, now: int, analysis: FrameAnalysis | None, at_ms: int
               ) -> list[OutputRecord]:
        frame = decoded.record
        assert frame is not None
        topic, partition, offset, key, value = (decoded.topic, decoded.partition, decoded.offset, decoded.key,
                                                decoded.value)
        clock = MatchClock.from_avro(frame["clock"])
        if decoded.samples is None:
            DROPPED_FRAMES.labels(reason="bad_audio").inc()
            return [self._dead_letter(topic, partition, offset, key, value, decoded.bad_audio or "", "BadAudio",
                                      frame["match_id"], clock)]
        leap = _leap(live.last_frame, frame, clock, at_ms)
        if leap is not None:
            DROPPED_FRAMES.labels(reason="leap").inc()
            return [self._dead_letter(topic, partition, offset, key, value, leap, "ClockLeap", frame["match_id"], clock)]
        if frame["wall_time_ms"] > at_ms:  # a venue clock running fast: the broker's time bounds it
            frame = {**frame, "wall_time_ms": at_ms}
        with self.times.timing("features"):  # (less the model's time, counted apart)
            result = live.join.add_audio(frame, decoded.samples, predict=self._predict, now_ms=now, analysis=analysis)
        if not result.dropped:
            live.last_frame = [clock.period.value, clock.ms, at_ms, frame["session_id"], frame["seq"],
                               max(1, 1000 * frame["samples_per_channel"] // frame["sample_rate"])]
        if result.dropped:
            reason = "duplicate" if result.dropped.startswith("duplicate") else "out_of_order"
            DROPPED_FRAMES.labels(reason=reason).inc()
            if reason == "duplicate":  # a resent frame (encoder spool after a crash): expected, just counted
                return []
            return [self._dead_letter(topic, partition, offset, key, value, result.dropped, "OutOfOrderFrame",
                                      frame["match_id"], MatchClock.from_avro(frame["clock"]))]
        return self._windows(result.windows, now)

    def _predict(self, features: np.ndarray) -> Any:
        with self.times.timing("model"):
            return self.predict(features)

    @staticmethod
    def _samples(frame: dict[str, Any]) -> np.ndarray:
        """A decoded AudioFrame's mono float samples, as the worker decodes and checks them
        (raises SchemaError for audio it dead-letters). Used by ``replay --from-audio``."""
        return pcm_samples(RecordProcessor._pcm(frame))

    @staticmethod
    def _pcm(frame: dict[str, Any]) -> np.ndarray:
        """The frame's samples (rate, channels and length are bounded by the codec already)."""
        rate, channels, count = frame["sample_rate"], frame["channels"], frame["samples_per_channel"]
        try:
            pcm = decode_payload(frame["payload"], encoding=frame["encoding"], channels=channels, sample_rate=rate,
                                 max_samples=count)
        except SchemaError as exc:
            raise SchemaError(f"{exc} (record says {count})") from None
        if len(pcm) != count:
            raise SchemaError(f"payload holds {len(pcm)} samples per channel, record says {count}")
        return pcm

    # -- events ---------------------------------------------------------------------------
    def _event(self, join: MatchJoin, decoded: Decoded, now: int, at_ms: int) -> list[OutputRecord]:
        event, value = decoded.record, decoded.value
        assert event is not None and value is not None
        if event["event_id"] not in join.events and len(join.events) >= MAX_PENDING_EVENTS:
            return [self._dead_letter(decoded.topic, decoded.partition, decoded.offset, decoded.key, value,
                                      f"{len(join.events)} events of this match already wait for its audio "
                                      f"(at most {MAX_PENDING_EVENTS})", "TooManyEvents", event["match_id"],
                                      MatchClock.from_avro(event["clock"]))]
        result = join.add_event(event, now_ms=now)
        if result.late_event:
            LATE_EVENTS.inc()
            return [OutputRecord(self.settings.topic("match.events.late.v1"), event["match_id"].encode(), value,
                                 min(event["wall_time_ms"], at_ms))]
        return self._windows(result.windows, now)

    # -- outputs --------------------------------------------------------------------------
    def _windows(self, windows: list[dict[str, Any]], now: int) -> list[OutputRecord]:
        out = []
        for window in windows:
            WINDOWS.labels(kind="first" if window["revision"] == 0 else "revision").inc()
            if window["revision"] == 0:
                EMOTION_DELAY.observe(max(0.0, (now - window["audio_wall_time_ms"]) / 1000))
            out.append(OutputRecord(self._emotions, window["match_id"].encode(),
                                    encode("EmotionWindow", window), window["audio_wall_time_ms"]))
        return out

    def dead_letter(self, topic: str, partition: int, offset: int, key: bytes | None, value: bytes | None,
                    error: BaseException) -> OutputRecord:
        """A dead letter for a record whose processing failed unexpectedly."""
        return self._dead_letter(topic, partition, offset, key, value, f"{type(error).__name__}: {error}"[:500],
                                 "ProcessingError", None)

    def _dead_letter(self, topic: str, partition: int, offset: int, key: bytes | None, value: bytes | None,
                     reason: str, error_type: str, match_id: str | None, clock: MatchClock | None = None
                     ) -> OutputRecord:
        target, dl_key, dl_value = dead_letter_record(
            self.settings, source_topic=topic, source=f"{topic}[{partition}]@{offset}", partition=partition,
            offset=offset, key=key, value=value, reason=reason, error_type=error_type,
            match_id=match_id or (key.decode("utf-8", errors="replace") if key else None), clock=clock,
            processor=_PROCESSOR,
        )
        return OutputRecord(target, dl_key, dl_value)


def _leap(last: list[Any] | None, frame: dict[str, Any], clock: MatchClock, at_ms: int) -> str | None:
    """Why ``frame`` cannot follow the match's last frame ``last`` (see LiveMatch.last_frame): its
    clock or seq runs further ahead than the time between their records allows. None: it can."""
    if last is None:
        return None
    period, ms, last_at, session, seq, duration_ms = last
    previous = MatchClock(Period(period), ms)
    allowed = max(0, at_ms - last_at) + LEAP_TOLERANCE_MS
    if clock.period is previous.period:
        ahead = clock.ms - previous.ms
    else:  # a later period starts at 0 (an earlier one is the join's out-of-order case)
        ahead = clock.ms if clock.period.order > previous.period.order else 0
    if ahead > allowed:
        return (f"clock {clock} leaps {ahead / 1000:.0f} s ahead of the match's last frame at {previous}, "
                f"{max(0, at_ms - last_at) / 1000:.0f} s of record time after it")
    if frame["session_id"] == session and frame["seq"] - seq > 1 + allowed // duration_ms:
        return f"seq {frame['seq']} leaps {frame['seq'] - seq} frames past the session's last frame ({seq})"
    return None
