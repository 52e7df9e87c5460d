"""What a music supervisor checks in a score, as numbers: tempo steadiness, harmony, brightness.

Pure functions over plain data (tempos per bar, timed notes, keys), shared by the score's
tests and by ``crowdsound audit``, which reads the same facts back from a replay folder's
MIDI and JSON files. Nothing here renders audio; loudness is measured in
``consumers.replay.audit``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from consumers.music.theory import pitch_class, scale
from consumers.music.types import Mode

__all__ = [
    "SEMITONE_OVERLAP_S", "TempoSteadiness", "TimedNote", "key_brightness", "semitone_clashes",
    "tempo_steadiness",
]

# Two notes count as sounding together when they overlap at least this long: a release that
# crosses the next onset by a few milliseconds is legato, not a clash.
SEMITONE_OVERLAP_S = 0.02


@dataclass(frozen=True)
class TimedNote:
    """A note on an absolute time line (seconds), as a listener hears it."""

    start_s: float
    end_s: float
    pitch: int
    channel: int


@dataclass(frozen=True)
class TempoSteadiness:
    """How a sequence of bar tempos moves."""

    bars: int
    moves: int             # bars whose tempo differs from the bar before (by more than 0.01 bpm)
    largest_step_bpm: float
    steps_over_8: int      # single-bar steps of more than 8 bpm

    @property
    def moves_share(self) -> float:
        """Share of bar-to-bar transitions where the tempo moved (0 for fewer than two bars)."""
        return self.moves / (self.bars - 1) if self.bars > 1 else 0.0


def tempo_steadiness(tempos_bpm: Sequence[float]) -> TempoSteadiness:
    """How often and how far the tempo moves from bar to bar.

    Parameters
    ----------
    tempos_bpm
        The tempo of each bar in order, in beats per minute.
    """
    steps = [abs(b - a) for a, b in zip(tempos_bpm, tempos_bpm[1:])]
    return TempoSteadiness(bars=len(tempos_bpm), moves=sum(1 for s in steps if s > 0.01),
                           largest_step_bpm=round(max(steps, default=0.0), 3),
                           steps_over_8=sum(1 for s in steps if s > 8.0))


def semitone_clashes(notes: Sequence[TimedNote], against: Sequence[TimedNote], *,
                     min_overlap_s: float = SEMITONE_OVERLAP_S) -> tuple[int, int]:
    """(clashing, total): how many of ``notes`` sound a semitone from a note of ``against``.

    A clash is a minor second, major seventh or minor ninth (interval class 1) between two
    notes that sound together for at least ``min_overlap_s``. A note is never compared with
    itself, so ``semitone_clashes(accompaniment, accompaniment)`` is the accompaniment's own
    rate. Percussion should be left out by the caller (channel 9 has no pitch).
    """
    if not notes:
        return 0, 0
    other = sorted(against, key=lambda n: n.start_s)
    starts = np.array([n.start_s for n in other])
    ends = np.array([n.end_s for n in other])
    pcs = np.array([n.pitch % 12 for n in other])
    ids = [id(n) for n in other]
    longest = float((ends - starts).max()) if len(other) else 0.0
    clashing = 0
    for note in notes:
        lo = int(np.searchsorted(starts, note.start_s - longest, side="left"))
        hi = int(np.searchsorted(starts, note.end_s, side="left"))
        if lo >= hi:
            continue
        overlap = np.minimum(ends[lo:hi], note.end_s) - np.maximum(starts[lo:hi], note.start_s)
        interval = (pcs[lo:hi] - note.pitch % 12) % 12
        hits = np.flatnonzero((overlap >= min_overlap_s) & ((interval == 1) | (interval == 11)))
        if any(ids[lo + int(i)] != id(note) for i in hits):
            clashing += 1
    return clashing, len(notes)


def _signature(key: str, mode: Mode) -> int:
    """Sharps (positive) or flats (negative) of the key signature: D major 2, F minor -4."""
    major_tonic = pitch_class(key) + (3 if mode == "MINOR" else 0)
    fifths = (major_tonic * 7) % 12
    return fifths - 12 if fifths > 6 else fifths


def key_brightness(key: str, mode: Mode) -> int:
    """How bright a key sounds, on one integer scale: one step per fifth, major 3 above minor.

    Up a fifth is +1 (D -> A major), to the relative major +3 (F# minor -> A major), to the
    parallel major +6 (D minor -> D major); the same steps down darken. Mode counts for three
    fifths because it carries most of a key's emotional colour (Eerola et al. 2013). Enharmonic
    keys fold onto the six-sharp / five-flat range of the conventional spellings.
    """
    scale(key, mode)  # validates key and mode
    return _signature(key, mode) + (3 if mode == "MAJOR" else 0)
