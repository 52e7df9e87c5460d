"""The topic catalogue: every topic of crowdsound, its contract and its settings, in one place.

``crowdsound topics apply`` makes a cluster match this table; the Helm chart and the docs
are generated from it. Names are versioned (``.v1``): an incompatible change gets a new
topic, compatible ones evolve the Avro schema in place.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from infra.errors import CrowdsoundError
from infra.settings import Settings
from schemas.codec import RecordType

__all__ = ["CATALOGUE", "DEAD_LETTER_HEADROOM_BYTES", "TopicSpec", "dead_letter_topic", "min_insync_replicas",
           "spec_for", "topic_configs"]

CleanupPolicy = Literal["delete", "compact", "compact,delete"]
TimestampType = Literal["CreateTime", "LogAppendTime"]

_DAY_MS = 24 * 60 * 60 * 1000
_MIB = 1024 * 1024
# A dead letter carries the original bytes plus the reason and where they came from, so a
# dead-letter topic takes this much more than the largest record of its sources: a bad record
# at its source's size limit can still be kept (otherwise the consumer could not get past it).
DEAD_LETTER_HEADROOM_BYTES = 256 * 1024


@dataclass(frozen=True, kw_only=True)
class TopicSpec:
    """One topic: its name, the record type of its values and its broker settings.

    ``partitions=None`` takes the deployment's count (``CROWDSOUND_PARTITIONS``): every
    match-keyed topic must have the same count, so a match lands on the same partition
    number everywhere (co-partitioning, which the stream join relies on).
    """

    name: str
    value_type: RecordType
    description: str
    retention_ms: int  # -1 = forever
    cleanup_policy: CleanupPolicy = "delete"
    compression: Literal["zstd", "lz4", "snappy", "gzip", "producer", "uncompressed"] = "zstd"
    max_message_bytes: int = _MIB
    partitions: int | None = None
    # LogAppendTime: the broker stamps each record with its own clock. For topics whose times
    # come from machines at the venue, whose clocks may be hours off (the emotion windows carry
    # the audio's): record times (replay's seeks, retention, the bound on event time) then come
    # from the cluster, not from a venue.
    timestamp_type: TimestampType = "CreateTime"


def dead_letter_topic(source_topic: str) -> str:
    """The dead-letter topic of ``source_topic``: ``crowd.audio.v1`` -> ``crowd.audio.dlq.v1``."""
    base, dot, version = source_topic.rpartition(".")
    if not dot or not version.startswith("v"):
        return f"{source_topic}.dlq.v1"
    return f"{base}.dlq.{version}"


_DEAD_LETTERS = {  # dead-letter topic: what it keeps
    "crowd.audio.dlq.v1": "audio frames the stream workers could not use, with the reason",
    "match.events.dlq.v1": "match events (or feed lines) that could not be used, with the reason",
    "crowd.emotions.dlq.v1": "emotion windows the composer could not use, with the reason",
    "music.preferences.dlq.v1": "preferences the composer could not use, with the reason",
    "music.cues.dlq.v1": "operator cues the composer could not use, with the reason",
}


def _dead_letter_specs() -> tuple[TopicSpec, ...]:
    """The dead-letter topics, each sized above the largest record of the topics feeding it."""
    return tuple(
        TopicSpec(name=name, value_type="DeadLetter", retention_ms=30 * _DAY_MS, description=description,
                  max_message_bytes=max(s.max_message_bytes for s in _SOURCES if dead_letter_topic(s.name) == name)
                  + DEAD_LETTER_HEADROOM_BYTES)
        for name, description in _DEAD_LETTERS.items()
    )


_SOURCES: tuple[TopicSpec, ...] = (
    # compression "producer": the encoders send PCM uncompressed (zstd saves ~10 % of crowd
    # audio and costs every reader and the broker's validation a decompression per frame; FLAC
    # is the encoding that saves bandwidth), and the broker stores what it is sent.
    TopicSpec(name="crowd.audio.v1", value_type="AudioFrame", retention_ms=7 * _DAY_MS,
              max_message_bytes=2 * _MIB, timestamp_type="LogAppendTime", compression="producer",
              description="crowd audio frames from venue encoders (PCM s16le or FLAC, ~100 ms)"),
    TopicSpec(name="match.events.v1", value_type="MatchEvent", retention_ms=-1, timestamp_type="LogAppendTime",
              description="match events: goals, shots, saves, cards, VAR, periods"),
    TopicSpec(name="match.events.late.v1", value_type="MatchEvent", retention_ms=-1,
              description="match events that arrived after the join's grace period, kept for replay"),
    TopicSpec(name="crowd.features.v1", value_type="CrowdFeatures", retention_ms=30 * _DAY_MS,
              description="acoustic features per window (optional intermediate)"),
    TopicSpec(name="crowd.emotions.v1", value_type="EmotionWindow", retention_ms=365 * _DAY_MS,
              timestamp_type="LogAppendTime",
              description="crowd emotion per window, re-emitted with a higher revision when late events change it"),
    TopicSpec(name="music.preferences.v1", value_type="Preferences", retention_ms=-1,
              cleanup_policy="compact",
              description="music preferences per match ('*' = every match); compacted, latest wins"),
    TopicSpec(name="music.cues.v1", value_type="Cue", retention_ms=7 * _DAY_MS,
              description="operator cues per match: stingers, hold/release, fades; each applied once by the composer"),
    TopicSpec(name="music.control.v1", value_type="MusicControl", retention_ms=30 * _DAY_MS,
              description="one message per bar and per stinger: tempo, key, chord, layers, MIDI"),
    TopicSpec(name="music.audio.v1", value_type="AudioChunk", retention_ms=30 * _DAY_MS,
              max_message_bytes=4 * _MIB,
              description="rendered music audio, gapless per match"),
)
CATALOGUE: tuple[TopicSpec, ...] = (*_SOURCES, *_dead_letter_specs())

_BY_NAME = {spec.name: spec for spec in CATALOGUE}


def spec_for(name: str, settings: Settings | None = None) -> TopicSpec:
    """The catalogue entry of ``name`` (with or without the deployment's topic prefix).

    Raises
    ------
    CrowdsoundError
        When the topic is not in the catalogue; the message lists the known topics.
    """
    prefix = settings.topic_prefix if settings else ""
    bare = name.removeprefix(prefix) if prefix else name
    try:
        return _BY_NAME[bare]
    except KeyError:
        raise CrowdsoundError(f"unknown topic {name!r}; catalogue topics: {', '.join(_BY_NAME)}") from None


def min_insync_replicas(settings: Settings, replicas: int) -> int:
    """How many replicas must have a write before it counts (``acks=all``): the setting, or 1
    below 3 replicas (the single local broker) and 2 from 3 on (one broker may fail, none lose data)."""
    return settings.min_insync_replicas or (1 if replicas < 3 else 2)


def topic_configs(spec: TopicSpec, settings: Settings | None = None) -> dict[str, str]:
    """The broker topic configs that realise ``spec``; with ``settings`` that name a replication
    factor, its ``min.insync.replicas`` too (with the broker's default factor, the broker's)."""
    configs = {
        "retention.ms": str(spec.retention_ms),
        "cleanup.policy": spec.cleanup_policy,
        "compression.type": spec.compression,
        "max.message.bytes": str(spec.max_message_bytes),
        "message.timestamp.type": spec.timestamp_type,
    }
    if settings is not None and settings.replication_factor >= 1:
        configs["min.insync.replicas"] = str(min_insync_replicas(settings, settings.replication_factor))
    return configs
