"""Frames analysed ahead in other processes (streams/ahead.py, replay --from-audio) give
exactly the windows of frames analysed one after the other: across block boundaries, and
when the join drops frames (a duplicate, one out of order) or skips a bad one."""

from __future__ import annotations

import numpy as np
from prometheus_client import REGISTRY

from infra.settings import Settings
from schemas.audio import encode_payload
from streams import ahead


def _frame(seq: int, pcm: np.ndarray, *, ms: int | None = None, payload: bytes | None = None) -> dict:
    return {"match_id": "ahead", "encoder_id": "test", "session_id": "s", "seq": seq,
            "clock": {"period": "FIRST_HALF", "ms": seq * 100 if ms is None else ms},
            "wall_time_ms": 1_700_000_000_000 + seq * 100, "sample_rate": 48_000, "channels": 1,
            "samples_per_channel": len(pcm), "encoding": "PCM_S16LE",
            "payload": encode_payload(pcm, encoding="PCM_S16LE", sample_rate=48_000) if payload is None else payload}


def _frames() -> list[dict]:
    rng = np.random.default_rng(5)
    frames = []
    for seq in range(240):  # 24 s: a murmur, a roar, claps at 2 per second
        level = 2000 if seq < 80 else 12000 if seq < 140 else 4000
        pcm = rng.standard_normal(4800) * level
        if seq >= 140 and seq % 5 == 0:
            pcm[:600] += rng.standard_normal(600) * 20000
        frames.append(_frame(seq, np.clip(pcm, -32768, 32767).astype(np.int16)))
    # Each the last frame of a block of 32 (below), where a dropped frame changes the tail the
    # next block starts from:
    frames.insert(63, frames[62])  # a duplicate (an encoder's spool resent it): dropped by the join
    frames.insert(127, _frame(999, np.full(4800, 9000, dtype=np.int16), ms=5_000))  # far out of order: dropped
    frames.insert(191, _frame(1000, np.zeros(4800, dtype=np.int16), payload=b"\x01"))  # bad audio: skipped
    return frames


def _analysed_ahead() -> float:
    return REGISTRY.get_sample_value("crowdsound_stream_frames_analysed_total", {"where": "helper"}) or 0.0


def test_windows_analysed_ahead_in_blocks_are_the_windows_analysed_in_order(monkeypatch):
    from consumers.replay.emotions import recompute_windows

    settings = Settings.from_env()
    frames = _frames()
    in_order = recompute_windows(settings, "ahead", frames, [], late_event_ids=set(), processes=0)
    monkeypatch.setattr(ahead, "BLOCK_FRAMES", 32)  # many block boundaries, some right after a dropped frame
    before = _analysed_ahead()
    in_blocks = recompute_windows(settings, "ahead", frames, [], late_event_ids=set(), processes=2)
    used = _analysed_ahead() - before
    assert len(in_order) >= 20 and len({w["state"] for w in in_order}) >= 2
    assert in_blocks == in_order
    # Most frames' features came from the other processes (a dropped frame costs the rest of its block).
    assert used > 0.6 * len(frames), used
