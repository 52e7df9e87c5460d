"""The encoder's frame length changes no emotion: a match sent as one-second frames (the
encoder's default, the first one cut short to reach a whole second) gives exactly the
emotion records of the same audio sent as 100 ms frames — the same windows, features,
emotions, revisions and audio wall times — whether the worker analyses the audio itself or
its frame helper does, and in replay's analysis ahead."""

from __future__ import annotations

import numpy as np

from schemas.audio import encode_payload
from schemas.codec import encode
from streams import ahead
from streams.features import analysis_pieces, analyze_frame
from streams.offload import FrameOffload
from streams.processor import pcm_samples
from tests.samples import sample_record, with_offsets
from tests.test_processor_offload import AUDIO, EVENTS, _batched, _serial

RATE = 48_000
START_MS = 400  # the encoder started mid-second: its first long frame is 600 ms
WALL0 = 1_700_000_000_000


def _audio(seconds: int = 30) -> np.ndarray:
    """A murmur, a roar from 8 s to 14 s, then claps twice a second (int16)."""
    rng = np.random.default_rng(11)
    t = np.arange(seconds * RATE) / RATE
    level = np.where((t >= 8) & (t < 14), 12_000, np.where(t < 8, 1_500, 4_000))
    pcm = rng.standard_normal(len(t)) * level
    claps = (t >= 14) & ((t * 2) % 1 < 0.02)
    pcm[claps] += rng.standard_normal(claps.sum()) * 20_000
    return np.clip(pcm, -32768, 32767).astype(np.int16)


def _frame(seq: int, pcm: np.ndarray, ms: int) -> bytes:
    record = dict(sample_record("AudioFrame", match_id="a"), seq=seq, session_id="s", channels=1,
                  sample_rate=RATE, samples_per_channel=len(pcm), clock={"period": "FIRST_HALF", "ms": ms},
                  wall_time_ms=WALL0 + ms, payload=encode_payload(pcm, encoding="PCM_S16LE", sample_rate=RATE))
    return encode("AudioFrame", record)


def _cuts(frame_ms: int, total: int) -> list[tuple[int, int]]:
    """(first sample, samples) of each frame, cut on the match clock's grid of frame_ms."""
    cuts, sample = [], 0
    while sample < total:
        ms = START_MS + sample * 1000 // RATE
        length = min(total - sample, (frame_ms - ms % frame_ms) * RATE // 1000)
        cuts.append((sample, length))
        sample += length
    return cuts


def _records(frame_ms: int) -> list:
    pcm = _audio()
    goal = encode("MatchEvent", dict(sample_record("MatchEvent", match_id="a"), event_id="goal",
                                     clock={"period": "FIRST_HALF", "ms": 9_500}))
    items = []
    for seq, (first, length) in enumerate(_cuts(frame_ms, len(pcm))):
        ms = START_MS + first * 1000 // RATE
        items.append((AUDIO, b"a", _frame(seq, pcm[first:first + length], ms)))
        if ms + length * 1000 // RATE == 11_000:  # the feed's goal arrives once the audio reached 11 s
            items.append((EVENTS, b"a", goal))
    return with_offsets(items)


def _emotions(outputs: list) -> list:
    return [o for o in outputs if o[0] == "p.crowd.emotions.v1"]


def test_one_second_frames_give_the_emotion_records_of_100_ms_frames():
    short, long = _records(100), _records(1000)
    assert len(long) == 32 and len(short) == 301  # 0.6 s, 29 x 1 s, 0.4 s and the goal; 300 frames and the goal
    reference = _serial(short)
    emotions = _emotions(reference)
    assert len(emotions) > 25 and any(o[2]["revision"] > 0 for o in emotions)  # the goal revised windows
    # audio wall times are where each window's audio ended, not where its frame did
    firsts = [o[2] for o in emotions if o[2]["revision"] == 0]
    assert [w["audio_wall_time_ms"] - WALL0 for w in firsts[:3]] == [3_000, 4_000, 5_000]
    assert _serial(long) == reference


def test_one_second_frames_analysed_by_the_frame_helper_give_the_same_records():
    assert _batched(FrameOffload(), records=_records(1000), pipelined=True) == _serial(_records(100))


def test_replay_analysing_one_second_frames_ahead_gives_the_pieces_of_100_ms_frames():
    pcm = _audio(12)[:, None]  # decoded PCM: (samples, channels)
    items = [((first, length), pcm_samples(pcm[first:first + length]), pcm[first:first + length], RATE)
             for first, length in _cuts(1000, len(pcm))]
    got = [analysis.features for _, _, analysis, _ in ahead.analysed_ahead(items, processes=1, block=4)]
    assert [len(f) for f in got] == [6] + [10] * 11 + [4]  # 0.6 s, 11 x 1 s, 0.4 s
    tail, expected = None, []
    for first, length in _cuts(100, len(pcm)):
        features, tail = analyze_frame(pcm_samples(pcm[first:first + length]), RATE, tail=tail)
        expected.append(features)
    assert [f for chunk in got for f in chunk] == expected


def test_a_frame_is_cut_into_100_ms_pieces_and_the_last_holds_the_rest():
    assert [len(p) for p in analysis_pieces(np.zeros(48_000), RATE)] == [4800] * 10
    assert [len(p) for p in analysis_pieces(np.zeros(7_000), RATE)] == [4800, 2200]
    assert [len(p) for p in analysis_pieces(np.zeros(4_800), RATE)] == [4800]
    assert [len(p) for p in analysis_pieces(np.zeros(100), RATE)] == [100]
