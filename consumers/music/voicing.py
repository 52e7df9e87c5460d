"""Placing pitch classes in a register: chord voicings and stepwise motion along a scale.

The voicing of a chord depends only on the chord and a register centre, never on the
previous bar: each pitch class goes to its one place in the octave window around the
centre. Two chords voiced in the same window keep their common tones on the same pitch and
move the other voices by the smallest steps, which is the voice leading a player would
choose, while a bar stays reproducible from its plan alone (replays, late joiners).
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["chord_pitches", "fold", "nearest", "power_chord", "snap", "step", "window"]


def nearest(pc: int, target: int) -> int:
    """The pitch of class ``pc`` closest to ``target`` (the upper one on a tritone tie)."""
    below = target - ((target - pc) % 12)
    return below + 12 if target - below >= 6 else below


def window(pcs: Iterable[int], center: int) -> tuple[int, ...]:
    """Each pitch class in the octave [center-6, center+6), ascending: a close voicing."""
    return tuple(sorted({center - 6 + ((pc - (center - 6)) % 12) for pc in pcs}))


def fold(pitch: int, low: int, high: int) -> int:
    """``pitch`` moved by octaves into [low, high] (nearest edge if the range is under an octave)."""
    while pitch < low:
        pitch += 12
    while pitch > high and pitch - 12 >= low:
        pitch -= 12
    return min(pitch, 127)


def chord_pitches(pcs: Iterable[int], low: int, high: int) -> tuple[int, ...]:
    """Every pitch in [low, high] whose class is in ``pcs``, ascending."""
    wanted = {pc % 12 for pc in pcs}
    return tuple(p for p in range(max(0, low), min(127, high) + 1) if p % 12 in wanted)


def snap(pitch: int, pcs: Iterable[int], prefer: int = 1) -> int:
    """The nearest pitch whose class is in ``pcs``; on a tie the one in direction ``prefer``."""
    wanted = {pc % 12 for pc in pcs}
    if not wanted:
        raise ValueError("snap needs at least one pitch class")
    for distance in range(12):
        for candidate in ((pitch + distance, pitch - distance) if prefer >= 0
                          else (pitch - distance, pitch + distance)):
            if candidate % 12 in wanted:
                return candidate
    raise AssertionError("unreachable: every class is within an octave")


def step(pitch: int, pcs: Iterable[int], steps: int) -> int:
    """Move ``steps`` scale steps along ``pcs`` (up if positive); 0 snaps onto the scale."""
    wanted = {pc % 12 for pc in pcs}
    if steps == 0:
        return snap(pitch, wanted)
    direction = 1 if steps > 0 else -1
    for _ in range(abs(steps)):
        pitch += direction
        while pitch % 12 not in wanted:
            pitch += direction
    return pitch


def power_chord(root: int, fifth: int | None, third: int | None, center: int) -> tuple[int, ...]:
    """Root, fifth (or third when there is no perfect fifth) and octave, root near ``center``."""
    bottom = nearest(root, center)
    if fifth is not None:
        middle = bottom + ((fifth - root) % 12)
    elif third is not None:
        middle = bottom + ((third - root) % 12)
    else:
        return (bottom, bottom + 12)
    return (bottom, middle, bottom + 12)
