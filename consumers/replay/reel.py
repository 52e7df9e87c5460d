"""Joining highlight clips into one reel, the way a sports editor cuts music.

Every clip is a piece of its own: it enters on a pickup in its own key and tempo and ends
with a cadence to its tonic and that chord's release (see ``replay.compose_clip``). So the
reel never lays two grooves over each other: clip A's ending rings out, then clip B's pickup
leads into B's first downbeat — a button ending and a new cue, in whatever keys and tempos
the two moments had. The joins are butt joins of audio that starts and ends in silence, so
there is nothing to click.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from consumers.replay.audio_io import as_float

__all__ = ["ReelClip", "ReelJoin", "ReelResult", "join_reel"]


@dataclass(frozen=True, eq=False)
class ReelClip:
    """One clip for the reel: audio (n, 2) int16 or float, from its pickup to its release,
    with the key and tempo it starts and ends in (for the index's description of the joins)."""

    audio: np.ndarray
    name: str = ""
    key: str = ""
    end_key: str = ""
    tempo_bpm: float = 0.0
    end_tempo_bpm: float = 0.0


@dataclass(frozen=True)
class ReelJoin:
    """Where one clip ends and the next begins, and in which keys and tempos."""

    at_s: float
    from_clip: str
    to_clip: str
    from_key: str
    to_key: str
    from_tempo_bpm: float
    to_tempo_bpm: float

    def to_json(self) -> dict[str, Any]:
        return {"at_s": round(self.at_s, 3), "from": self.from_clip, "to": self.to_clip,
                "from_key": self.from_key, "to_key": self.to_key,
                "from_tempo_bpm": round(self.from_tempo_bpm, 2), "to_tempo_bpm": round(self.to_tempo_bpm, 2),
                "transition": "ending on the tonic, released; pickup into the next clip"}


@dataclass(frozen=True, eq=False)
class ReelResult:
    """The joined reel: float64 (m, 2) audio, where each clip starts, and its joins."""

    audio: np.ndarray
    starts: tuple[int, ...]  # sample of the reel where clip i's first sample sits
    joins: tuple[ReelJoin, ...]
    sample_rate: int

    @property
    def duration_s(self) -> float:
        return len(self.audio) / self.sample_rate


def join_reel(clips: Sequence[ReelClip], *, sample_rate: int) -> ReelResult:
    """Join ``clips`` end to end; the caller masters the result.

    The reel is exactly as long as the clips together: no overlap, no gap. No clips give an
    empty reel. Audio must be stereo (n, 2) and non-empty.
    """
    if sample_rate <= 0:
        raise ValueError(f"sample_rate must be positive, got {sample_rate}")
    audios = []
    for i, clip in enumerate(clips):
        a = as_float(clip.audio)
        if a.ndim != 2 or a.shape[1] != 2 or len(a) == 0:
            raise ValueError(f"clip {i}: expected non-empty stereo audio (n, 2), got {a.shape}")
        audios.append(a)
    starts = [0]
    for a in audios:
        starts.append(starts[-1] + len(a))
    out = np.concatenate(audios) if audios else np.zeros((0, 2))
    joins = tuple(ReelJoin(at_s=starts[i + 1] / sample_rate, from_clip=a.name, to_clip=b.name, from_key=a.end_key,
                           to_key=b.key, from_tempo_bpm=a.end_tempo_bpm, to_tempo_bpm=b.tempo_bpm)
                  for i, (a, b) in enumerate(zip(clips, clips[1:])))
    return ReelResult(out, tuple(starts[:len(audios)]), joins, sample_rate)
