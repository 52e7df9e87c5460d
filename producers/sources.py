"""Where the venue encoder's audio comes from: a file, raw PCM on stdin, or the synthetic stadium.

Every source yields int16 blocks of shape (n, channels) at the encoder's sample rate; the
encoder cuts them into frames. Files are streamed and resampled on the fly, so a 90-minute
recording never sits in memory.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Protocol

import numpy as np

from infra.errors import CrowdsoundError
from schemas.audio import to_int16

__all__ = ["AudioSource", "FileSource", "StadiumSource", "StdinSource", "open_source"]

_FILE_BLOCK_S = 1.0


class AudioSource(Protocol):
    """A stream of int16 audio at ``sample_rate`` with ``channels`` channels."""

    sample_rate: int
    channels: int
    duration_s: float | None  # None for endless live input
    live: bool  # True when the source itself runs in real time (stdin)

    def blocks(self) -> Iterator[np.ndarray]: ...


def _mix_channels(block: np.ndarray, channels: int) -> np.ndarray:
    if block.shape[1] == channels:
        return block
    if channels == 1:
        return block.mean(axis=1, keepdims=True)
    if block.shape[1] == 1:
        return np.repeat(block, channels, axis=1)
    return block[:, :channels]


@dataclass
class FileSource:
    """WAV, FLAC, OGG (anything libsndfile reads), resampled to ``sample_rate``."""

    path: Path
    sample_rate: int
    channels: int
    live: bool = False
    duration_s: float | None = field(init=False)

    def __post_init__(self) -> None:
        import soundfile

        if not self.path.is_file():
            raise CrowdsoundError(f"audio file {self.path} does not exist")
        try:
            info = soundfile.info(str(self.path))
        except Exception as exc:  # noqa: BLE001 - libsndfile's error types vary
            raise CrowdsoundError(f"cannot read {self.path} as audio (WAV, FLAC, OGG): {str(exc).splitlines()[0]}") from None
        if info.frames <= 0:
            raise CrowdsoundError(f"audio file {self.path} holds no samples")
        self._info = info
        self.duration_s = info.frames / info.samplerate

    def blocks(self) -> Iterator[np.ndarray]:
        import soundfile
        import soxr

        resampler = None
        if self._info.samplerate != self.sample_rate:
            resampler = soxr.ResampleStream(self._info.samplerate, self.sample_rate, self.channels, dtype="float32")
        block = int(self._info.samplerate * _FILE_BLOCK_S)
        with soundfile.SoundFile(str(self.path)) as audio:
            while True:
                data = audio.read(block, dtype="float32", always_2d=True)
                last = len(data) < block
                data = _mix_channels(data, self.channels).astype(np.float32)
                if resampler is not None:
                    data = resampler.resample_chunk(data, last=last)
                if len(data):
                    yield to_int16(data)
                if last:
                    return


@dataclass
class StdinSource:
    """Raw PCM s16le on standard input, e.g. from ``ffmpeg ... -f s16le -ac 1 -ar 48000 -``."""

    sample_rate: int
    channels: int
    stream: BinaryIO | None = None
    live: bool = True
    duration_s: float | None = None

    def blocks(self) -> Iterator[np.ndarray]:
        stream = self.stream or sys.stdin.buffer
        frame_bytes = 2 * self.channels
        chunk = frame_bytes * (self.sample_rate // 50)  # 20 ms reads keep latency low
        pending = b""
        while True:
            data = stream.read1(chunk) if hasattr(stream, "read1") else stream.read(chunk)
            if not data:
                break
            pending += data
            usable = len(pending) - len(pending) % frame_bytes
            if usable:
                yield np.frombuffer(pending[:usable], dtype="<i2").astype(np.int16).reshape(-1, self.channels)
                pending = pending[usable:]
        if pending:
            raise CrowdsoundError(f"stdin ended with {len(pending)} stray bytes: not {self.channels}-channel s16le PCM")


@dataclass
class StadiumSource:
    """The synthetic stadium of a match script (see ``producers/stadium``)."""

    script_path: Path
    sample_rate: int
    channels: int
    live: bool = False
    duration_s: float | None = field(init=False)

    def __post_init__(self) -> None:
        from producers.stadium import load_script

        self.script = load_script(self.script_path)
        self.duration_s = self.script.duration_ms / 1000

    def blocks(self) -> Iterator[np.ndarray]:
        from producers.stadium import render_stadium

        for block in render_stadium(self.script, sample_rate=self.sample_rate, channels=self.channels, block_ms=1000):
            yield to_int16(block)


def open_source(spec: str, *, sample_rate: int, channels: int) -> AudioSource:
    """``-`` (stdin PCM), ``stadium:SCRIPT.toml``, or a path to an audio file."""
    if spec == "-":
        return StdinSource(sample_rate=sample_rate, channels=channels)
    if spec.startswith("stadium:"):
        return StadiumSource(Path(spec.removeprefix("stadium:")), sample_rate=sample_rate, channels=channels)
    return FileSource(Path(spec), sample_rate=sample_rate, channels=channels)
