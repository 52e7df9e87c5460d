"""Crowd emotion of an audio file, without Kafka: what ``crowdsound analyze`` prints.

The file is decoded with libsndfile (WAV, FLAC, OGG, ...), mixed to mono, resampled to
48 kHz with soxr and quantised to 16 bits — exactly the frames a venue encoder would
publish — then cut into 100 ms frames that go through the live worker's
:class:`~streams.windows.CrowdAnalyzer` and :class:`~streams.emotion.EmotionModel`. So a
recording checked here gives the windows the live stream would give for the same audio.
Streamed: a 90-minute recording never sits in memory.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from infra.errors import CrowdsoundError
from schemas.clock import MatchClock, Period
from streams.features import FEATURE_NAMES
from streams.windows import AnalyzedWindow, CrowdAnalyzer, WindowSpec

__all__ = ["FRAME_MS", "SAMPLE_RATE", "WindowEmotion", "analyze_file", "analyze_frames", "file_frames", "window_record"]

SAMPLE_RATE = 48_000
FRAME_MS = 100
_READ_S = 2.0
_BATCH = 64  # windows per model call
_LOUDNESS = FEATURE_NAMES.index("loudness_rel_db")


@dataclass(frozen=True)
class WindowEmotion:
    """One analysed window and what the model hears in it."""

    window: AnalyzedWindow
    emotion: Any  # streams.emotion.Emotion


def file_frames(path: str | Path, *, sample_rate: int = SAMPLE_RATE, frame_ms: int = FRAME_MS) -> Iterator[np.ndarray]:
    """The audio of ``path`` as mono float64 frames of ``frame_ms`` at ``sample_rate``,
    full scale 1.0, on the 16-bit grid (as a venue encoder sends them); the last frame may
    be shorter.

    libsndfile reads WAV, FLAC, OGG/Vorbis, Opus and MP3 at any sample rate and channel
    count; anything else (AAC/M4A, video files) is decoded by ffmpeg when it is installed.
    Channels are averaged; the audio is resampled with soxr.

    Raises
    ------
    CrowdsoundError
        One line naming the file, when it is missing, not audio, or empty.
    """
    import soundfile

    path = Path(path)
    if not path.is_file():
        raise CrowdsoundError(f"{path}: no such audio file")
    try:
        info = soundfile.info(str(path))
    except Exception as exc:  # noqa: BLE001 - libsndfile's error types vary
        reason = " ".join(str(exc).split()) or type(exc).__name__
        if shutil.which("ffmpeg"):
            yield from _frames(_ffmpeg_blocks(path, sample_rate), sample_rate, sample_rate, frame_ms, path)
            return
        raise CrowdsoundError(f"{path}: cannot read as audio (WAV, FLAC, OGG, MP3; others need ffmpeg installed): "
                              f"{reason}") from None
    if info.frames <= 0 or info.samplerate <= 0:
        raise CrowdsoundError(f"{path}: the audio file holds no samples")
    yield from _frames(_soundfile_blocks(path, info.samplerate), info.samplerate, sample_rate, frame_ms, path)


def _soundfile_blocks(path: Path, rate: int) -> Iterator[np.ndarray]:
    import soundfile

    block = max(1, int(rate * _READ_S))
    try:
        with soundfile.SoundFile(str(path)) as audio:
            while True:
                data = audio.read(block, dtype="float32", always_2d=True)
                yield data.mean(axis=1).astype(np.float32) if data.shape[1] > 1 else data[:, 0]
                if len(data) < block:
                    return
    except (RuntimeError, soundfile.SoundFileError) as exc:
        raise CrowdsoundError(f"{path}: cannot decode: {' '.join(str(exc).split())}") from None


def _ffmpeg_blocks(path: Path, rate: int) -> Iterator[np.ndarray]:
    """Mono float32 at ``rate`` from ffmpeg, in blocks of ~2 s (what libsndfile cannot read)."""
    command = ["ffmpeg", "-nostdin", "-v", "error", "-i", str(path), "-vn", "-ac", "1", "-ar", str(rate),
               "-f", "f32le", "-"]
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as process:
        assert process.stdout is not None and process.stderr is not None
        size = 4 * int(rate * _READ_S)
        got = 0
        while chunk := process.stdout.read(size):
            got += len(chunk)
            yield np.frombuffer(chunk[: len(chunk) - len(chunk) % 4], dtype="<f4")
        error = " ".join(process.stderr.read().decode(errors="replace").split())
        if process.wait() != 0 or not got:
            raise CrowdsoundError(f"{path}: cannot read as audio (not even ffmpeg can): "
                                  f"{error[:200] or 'no audio stream'}")


def _frames(blocks: Iterator[np.ndarray], rate: int, sample_rate: int, frame_ms: int, path: Path) -> Iterator[np.ndarray]:
    import soxr

    frame = sample_rate * frame_ms // 1000
    resampler = soxr.ResampleStream(rate, sample_rate, 1, dtype="float32") if rate != sample_rate else None
    pending = np.zeros(0, dtype=np.float32)
    for mono in blocks:
        if resampler is not None:
            mono = resampler.resample_chunk(mono)
        pending = np.concatenate([pending, mono]) if len(pending) else mono
        usable = len(pending) - len(pending) % frame
        for start in range(0, usable, frame):
            yield _int16_grid(pending[start:start + frame])
        pending = pending[usable:]
    if resampler is not None:
        pending = np.concatenate([pending, resampler.resample_chunk(np.zeros(0, dtype=np.float32), last=True)])
    usable = len(pending) - len(pending) % frame
    for start in range(0, usable, frame):
        yield _int16_grid(pending[start:start + frame])
    if len(pending) % frame:
        yield _int16_grid(pending[usable:])


def _int16_grid(samples: np.ndarray) -> np.ndarray:
    clean = np.nan_to_num(np.asarray(samples, dtype=np.float64), nan=0.0, posinf=1.0, neginf=-1.0)
    return np.clip(np.rint(clean * 32768.0), -32768, 32767) / 32768.0


def analyze_frames(frames: Iterator[np.ndarray], *, start: MatchClock | None = None, spec: WindowSpec | None = None,
                   sample_rate: int = SAMPLE_RATE) -> Iterator[AnalyzedWindow]:
    """Windows of a stream of mono frames whose first sample is at ``start`` (default
    ``PRE_MATCH 0:00``); the partly covered windows at the end are closed too."""
    analyzer = CrowdAnalyzer(spec)
    clock = start or MatchClock(Period.PRE_MATCH, 0)
    done = 0  # samples so far
    for frame in frames:
        at = clock.plus(done * 1000 // sample_rate)
        yield from analyzer.add_frame(at, frame, sample_rate)
        done += len(frame)
    yield from analyzer.flush()


def analyze_file(path: str | Path, *, model: Any = None, start: MatchClock | None = None,
                 spec: WindowSpec | None = None) -> Iterator[WindowEmotion]:
    """Every window of the audio file ``path`` with the model's emotion, in order.

    Parameters
    ----------
    path : str or Path
        Any file libsndfile reads; resampled to 48 kHz mono.
    model : EmotionModel, optional
        Default: the shipped model.
    start : MatchClock, optional
        Match time of the file's first sample (default ``PRE_MATCH 0:00``).
    spec : WindowSpec, optional
        Window hop and length (default 1 s and 3 s, as live).

    Raises
    ------
    CrowdsoundError
        For a file that cannot be read, or one too short for a single frame.
    """
    from streams.emotion import EmotionModel

    model = model or EmotionModel.load()
    batch: list[AnalyzedWindow] = []
    count = 0
    for window in analyze_frames(file_frames(path), start=start, spec=spec):
        batch.append(window)
        if len(batch) >= _BATCH:
            yield from _predict(model, batch)
            count += len(batch)
            batch = []
    if batch:
        count += len(batch)
        yield from _predict(model, batch)
    if not count:
        raise CrowdsoundError(f"{path}: too short to analyse")


def _predict(model: Any, windows: list[AnalyzedWindow]) -> Iterator[WindowEmotion]:
    emotions = model.predict(np.stack([w.features for w in windows]))
    for window, emotion in zip(windows, emotions, strict=True):
        yield WindowEmotion(window, emotion)


def window_record(item: WindowEmotion, *, model_version: str = "") -> dict[str, Any]:
    """A JSON-able dict of one window: clock, state, probabilities, arousal, valence, loudness,
    tempo, and ``partial`` for the last windows, which the end of the recording cuts short."""
    window, emotion = item.window, item.emotion
    summary = window.summary
    return {
        "clock": str(window.start),
        "period": window.start.period.value,
        "ms": window.start.ms,
        "length_ms": window.length_ms,
        "state": emotion.state,
        "arousal": round(float(emotion.arousal), 4),
        "valence": round(float(emotion.valence), 4),
        "probabilities": {k: round(float(v), 4) for k, v in emotion.probabilities.items()},
        "loudness_rel_db": round(float(window.features[_LOUDNESS]), 2),
        "tempo_bpm": None if summary.tempo_bpm is None else round(float(summary.tempo_bpm), 1),
        "periodicity": round(float(summary.periodicity), 3),
        "partial": window.last_frame_ms < window.start.ms + window.length_ms,  # the recording ends inside it
        "model_version": model_version,
    }
