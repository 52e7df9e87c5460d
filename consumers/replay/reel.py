"""Joining highlight clips into one reel, bar-aligned.

Each clip is already cut to whole bars of its own music. Butt-joining them would click and
jump; a crossfade of arbitrary length would smear a downbeat across a half-bar. So the join
is exactly one bar: the last bar of clip A sounds over the first bar of clip B, and B's
first downbeat lands on A's last downbeat. The curves are equal-power (cos/sin), which keeps
the level steady over the join because consecutive clips are different moments of the match
and so uncorrelated; both curves are sampled at bar midpoints ``(k + 0.5) / L``, so neither
clip starts or stops on a step.

A clip shorter than two bars would have its whole body eaten by its two joins, so its joins
are half its length instead (and never more than half of the neighbour either).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from consumers.replay.audio_io import as_float

__all__ = ["ReelClip", "ReelResult", "crossfade_length", "join_reel"]


@dataclass(frozen=True, eq=False)
class ReelClip:
    """One clip for the reel: audio (n, 2) int16 or float, cut to whole bars of ``bar_samples``.

    ``bar_samples`` is one bar at the tempo the clip *ends* in: the join after it fades that
    last bar out.
    """

    audio: np.ndarray
    bar_samples: int


@dataclass(frozen=True, eq=False)
class ReelResult:
    """The joined reel: float64 (m, 2) audio, and where each clip starts and each join lasts."""

    audio: np.ndarray
    starts: tuple[int, ...]  # sample of the reel where clip i's first sample sits
    crossfades: tuple[int, ...]  # samples of overlap between clip i and clip i + 1
    sample_rate: int

    @property
    def duration_s(self) -> float:
        return len(self.audio) / self.sample_rate


def crossfade_length(first_len: int, first_bar: int, second_len: int) -> int:
    """Overlap of a join: one bar of the first clip, at most half of either clip."""
    return min(first_bar, first_len // 2, second_len // 2)


def join_reel(clips: Sequence[ReelClip], *, sample_rate: int) -> ReelResult:
    """Join ``clips`` in order with one-bar equal-power crossfades; the caller masters the result.

    The reel is ``sum(len(clip)) - sum(crossfades)`` samples long. No clips gives an empty
    reel. Audio must be stereo (n, 2) and non-empty, ``bar_samples`` positive.
    """
    if sample_rate <= 0:
        raise ValueError(f"sample_rate must be positive, got {sample_rate}")
    audios = []
    for i, clip in enumerate(clips):
        a = as_float(clip.audio)
        if a.ndim != 2 or a.shape[1] != 2 or len(a) == 0:
            raise ValueError(f"clip {i}: expected non-empty stereo audio (n, 2), got {a.shape}")
        if clip.bar_samples <= 0:
            raise ValueError(f"clip {i}: bar_samples must be positive, got {clip.bar_samples}")
        audios.append(a)
    fades = tuple(crossfade_length(len(a), clip.bar_samples, len(b))
                  for a, b, clip in zip(audios, audios[1:], clips))
    starts = [0]
    for a, fade in zip(audios, fades):
        starts.append(starts[-1] + len(a) - fade)
    total = starts[-1] + len(audios[-1]) if audios else 0
    out = np.zeros((total, 2))
    for i, a in enumerate(audios):  # `a` is as_float's private copy: shaped in place
        fade_in = fades[i - 1] if i > 0 else 0
        fade_out = fades[i] if i < len(fades) else 0
        if fade_in:
            a[:fade_in] *= _equal_power(fade_in)[1][:, None]
        if fade_out:
            a[len(a) - fade_out:] *= _equal_power(fade_out)[0][:, None]
        out[starts[i]:starts[i] + len(a)] += a
    return ReelResult(out, tuple(starts[:len(audios)]), fades, sample_rate)


def _equal_power(length: int) -> tuple[np.ndarray, np.ndarray]:
    """(fade-out, fade-in) gains over ``length`` samples; their squares sum to 1 everywhere."""
    phase = (np.arange(length) + 0.5) / length * (np.pi / 2)
    return np.cos(phase), np.sin(phase)
