"""One record in, join state and output records out: the stream worker's logic, without Kafka.

The Faust agent is a thin loop around :meth:`RecordProcessor.process`; the replay CLI uses
the same class over retained records, so live and replay compute the same windows.

Idempotence: the state of a match carries the last offset applied per source topic. A
record at or below it (redelivered after a crash or a rebalance) is skipped, so state and
offsets move together in one changelog record even though Faust's commits are
at-least-once.
"""

from __future__ import annotations

import json
import time
import zlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from prometheus_client import Counter, Histogram

from infra.deadletter import dead_letter_record
from infra.errors import SchemaError
from infra.settings import Settings
from schemas.audio import decode_payload
from schemas.clock import MatchClock
from schemas.codec import decode, encode
from streams.join import JoinConfig, MatchJoin, Predict
from streams.windows import WindowSpec

__all__ = ["OutputRecord", "ProcessResult", "RecordProcessor", "join_config"]

RECORDS = Counter("crowdsound_stream_records_total", "Records consumed by the stream worker.", ["topic"])
WINDOWS = Counter("crowdsound_stream_windows_total", "Emotion windows emitted (revision 0 = first emission).",
                  ["kind"])
LATE_EVENTS = Counter("crowdsound_stream_late_events_total", "Match events later than the grace period.")
DROPPED_FRAMES = Counter("crowdsound_stream_dropped_frames_total", "Audio frames not joined.", ["reason"])
EMOTION_DELAY = Histogram(
    "crowdsound_stream_emotion_delay_seconds",
    "From the capture of a window's last audio frame to the window's emission.",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60),
)
_PROCESSOR = "crowdsound-worker"


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


def join_config(settings: Settings) -> JoinConfig:
    return JoinConfig(window=WindowSpec(hop_ms=settings.window_hop_ms, length_ms=settings.window_length_ms),
                      grace_ms=settings.grace_ms)


def pack_state(state: dict[str, Any]) -> bytes:
    return zlib.compress(json.dumps(state, separators=(",", ":")).encode(), 1)


def unpack_state(blob: bytes) -> dict[str, Any]:
    return json.loads(zlib.decompress(blob))


class RecordProcessor:
    """Applies records of crowd.audio.v1 and match.events.v1 to per-match join state."""

    def __init__(self, settings: Settings, *, predict: Predict, model_version: str = "") -> None:
        self.settings = settings
        self.predict = predict
        self.model_version = model_version
        self.config = join_config(settings)
        self.audio_topic = settings.topic("crowd.audio.v1")
        self.events_topic = settings.topic("match.events.v1")
        # The last state this processor produced per match, unpacked: when the table hands the
        # same bytes back (the normal case), decoding them again would be wasted work.
        self._cache: dict[bytes, tuple[bytes, dict[str, Any], MatchJoin]] = {}

    def process(self, *, state: bytes | None, topic: str, partition: int, offset: int, key: bytes | None,
                value: bytes | None, now_ms: int | None = None) -> ProcessResult:
        """Apply one record. ``state`` is the match's packed state (None for a new match)."""
        RECORDS.labels(topic=topic.removeprefix(self.settings.topic_prefix)).inc()
        now = int(time.time() * 1000) if now_ms is None else now_ms
        kind = "AudioFrame" if topic == self.audio_topic else "MatchEvent"
        try:
            record = decode(value, expect=kind)
        except SchemaError as exc:
            return ProcessResult(outputs=[self._dead_letter(topic, partition, offset, key, value, str(exc),
                                                            "SchemaError", None)])
        match_id = record["match_id"]
        if key is None or key.decode("utf-8", errors="replace") != match_id:
            return ProcessResult(outputs=[self._dead_letter(
                topic, partition, offset, key, value, f"Kafka key {key!r} is not the record's match_id {match_id!r}",
                "KeyMismatch", match_id)])
        cached = self._cache.get(key)
        if state and cached and cached[0] is state:
            applied, join = cached[1], cached[2]
        else:
            payload = unpack_state(state) if state else None
            applied = payload["applied"] if payload else {}
            join = MatchJoin.from_state(payload["join"]) if payload else MatchJoin(
                match_id, self.config, model_version=self.model_version)
        if offset <= applied.get(topic, -1):
            return ProcessResult(skipped=True)
        if kind == "AudioFrame":
            outputs = self._audio(join, record, topic, partition, offset, key, value, now)
        else:
            outputs = self._event(join, record, value, now)
        applied = {**applied, topic: offset}
        packed = pack_state({"join": join.to_state(), "applied": applied})
        self._cache[key] = (packed, applied, join)
        return ProcessResult(state=packed, outputs=outputs)

    # -- audio ----------------------------------------------------------------------------
    def _audio(self, join: MatchJoin, frame: dict[str, Any], topic: str, partition: int, offset: int,
               key: bytes, value: bytes, now: int) -> list[OutputRecord]:
        clock = MatchClock.from_avro(frame["clock"])
        try:
            samples = self._samples(frame)
        except SchemaError as exc:
            DROPPED_FRAMES.labels(reason="bad_audio").inc()
            return [self._dead_letter(topic, partition, offset, key, value, str(exc), "BadAudio", frame["match_id"],
                                      clock)]
        result = join.add_audio(frame, samples, predict=self.predict, now_ms=now)
        if result.dropped:
            reason = "duplicate" if result.dropped.startswith("duplicate") else "out_of_order"
            DROPPED_FRAMES.labels(reason=reason).inc()
            if reason == "duplicate":  # a resent frame (encoder spool after a crash): expected, just counted
                return []
            return [self._dead_letter(topic, partition, offset, key, value, result.dropped, "OutOfOrderFrame",
                                      frame["match_id"], clock)]
        return self._windows(result.windows, now)

    @staticmethod
    def _samples(frame: dict[str, Any]) -> np.ndarray:
        rate, channels, count = frame["sample_rate"], frame["channels"], frame["samples_per_channel"]
        if not 8000 <= rate <= 192_000:
            raise SchemaError(f"sample rate {rate} Hz is outside 8000..192000")
        if not 1 <= channels <= 8:
            raise SchemaError(f"{channels} channels is outside 1..8")
        pcm = decode_payload(frame["payload"], encoding=frame["encoding"], channels=channels, sample_rate=rate)
        if len(pcm) != count:
            raise SchemaError(f"payload holds {len(pcm)} samples per channel, record says {count}")
        if count == 0:
            raise SchemaError("empty frame")
        # int16 cannot hold NaN or inf: decoding is the sanitising step.
        return pcm.astype(np.float64).mean(axis=1) / 32768.0

    # -- events ---------------------------------------------------------------------------
    def _event(self, join: MatchJoin, event: dict[str, Any], value: bytes, now: int) -> list[OutputRecord]:
        result = join.add_event(event, now_ms=now)
        if result.late_event:
            LATE_EVENTS.inc()
            return [OutputRecord(self.settings.topic("match.events.late.v1"), event["match_id"].encode(), value,
                                 event["wall_time_ms"])]
        return self._windows(result.windows, now)

    # -- outputs --------------------------------------------------------------------------
    def _windows(self, windows: list[dict[str, Any]], now: int) -> list[OutputRecord]:
        out = []
        for window in windows:
            WINDOWS.labels(kind="first" if window["revision"] == 0 else "revision").inc()
            if window["revision"] == 0:
                EMOTION_DELAY.observe(max(0.0, (now - window["audio_wall_time_ms"]) / 1000))
            out.append(OutputRecord(self.settings.topic("crowd.emotions.v1"), window["match_id"].encode(),
                                    encode("EmotionWindow", window), window["audio_wall_time_ms"]))
        return out

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
