"""``crowdsound listen``: a downstream consumer example — one match's music to a WAV or stdout.

Reads only the match's partition of music.audio.v1 (assign, no consumer group, nothing
committed), keeps the match's chunks in ``seq`` order, and writes them as they come:
to a WAV file (header fixed up on close, so a stopped listen still leaves a playable
file) or as raw interleaved s16le to stdout for ``ffmpeg -f s16le -ar 48000 -ac 2 -i -``.
"""

from __future__ import annotations

import logging
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, TopicPartition

from infra.clients import make_consumer, match_key, reader_group
from infra.errors import CrowdsoundError, SchemaError
from infra.partitioning import partition_for
from infra.reading import topic_partitions
from infra.settings import Settings
from schemas.audio import decode_payload
from schemas.codec import decode

__all__ = ["ListenResult", "listen"]

log = logging.getLogger("crowdsound.listen")


@dataclass
class ListenResult:
    chunks: int = 0
    samples: int = 0
    sample_rate: int = 0
    missing_chunks: int = 0   # seq numbers skipped (a gap in what the topic retained)
    duplicates: int = 0       # chunks seen twice (dropped)


def listen(settings: Settings, match_id: str, out: str, *, from_beginning: bool = True,
           max_seconds: float | None = None, timeout_s: float | None = None) -> ListenResult:
    """Write the music of ``match_id`` to ``out`` (a .wav path, or ``-`` for raw PCM on stdout)."""
    topic = settings.topic("music.audio.v1")
    consumer = make_consumer(settings, group_id=reader_group(settings, "listen"))
    partition = partition_for(match_key(match_id), len(topic_partitions(consumer, topic, settings)))
    consumer.assign([TopicPartition(topic, partition, OFFSET_BEGINNING if from_beginning else OFFSET_END)])

    stopping = False

    def _stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    previous = signal.signal(signal.SIGINT, _stop)
    result = ListenResult()
    writer: _Writer | None = None
    next_seq: int | None = None
    last_record = time.monotonic()
    try:
        while not stopping:
            message = consumer.poll(0.2)
            if message is None or message.error():
                if timeout_s is not None and time.monotonic() - last_record > timeout_s:
                    break
                continue
            if message.key() != match_key(match_id):
                continue
            last_record = time.monotonic()
            try:
                chunk = decode(message.value(), expect="AudioChunk")
                pcm = decode_payload(chunk["payload"], encoding=chunk["encoding"], channels=chunk["channels"],
                                     sample_rate=chunk["sample_rate"])
            except SchemaError as error:
                log.warning("skipping an undecodable chunk at offset %s: %s", message.offset(), error)
                continue
            seq = chunk["seq"]
            if next_seq is not None and seq < next_seq:
                result.duplicates += 1
                continue
            if next_seq is not None and seq > next_seq:
                result.missing_chunks += seq - next_seq
                log.warning("chunks %d..%d are missing from the topic", next_seq, seq - 1)
            next_seq = seq + 1
            if writer is None:
                writer = _Writer(out, chunk["sample_rate"], chunk["channels"])
                result.sample_rate = chunk["sample_rate"]
            writer.write(pcm.astype("<i2").tobytes())
            result.chunks += 1
            result.samples += chunk["samples_per_channel"]
            if max_seconds is not None and result.samples >= max_seconds * result.sample_rate:
                break
    finally:
        signal.signal(signal.SIGINT, previous)
        consumer.close()
        if writer is not None:
            writer.close()
    return result


class _Writer:
    def __init__(self, out: str, sample_rate: int, channels: int) -> None:
        self._raw: BinaryIO | None = None
        self._wav = None
        if out == "-":
            self._raw = sys.stdout.buffer
        else:
            import soundfile

            path = Path(out)
            if path.parent and not path.parent.exists():
                raise CrowdsoundError(f"folder {path.parent} does not exist")
            self._wav = soundfile.SoundFile(str(path), "w", samplerate=sample_rate, channels=channels,
                                            subtype="PCM_16", format="WAV")
            self._channels = channels

    def write(self, data: bytes) -> None:
        if self._raw is not None:
            self._raw.write(data)
            self._raw.flush()
        else:
            import numpy as np

            assert self._wav is not None
            self._wav.write(np.frombuffer(data, dtype="<i2").reshape(-1, self._channels))
            self._wav.flush()

    def close(self) -> None:
        if self._wav is not None:
            self._wav.close()
