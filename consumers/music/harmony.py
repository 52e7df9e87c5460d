"""The harmonic facts of one chord in one key, and the only place melodic notes are made.

Every melodic note of a bar or stinger goes through ``Harmony.note``, which sets
``chromatic`` exactly when the pitch is outside the key and refuses a pitch that is neither
in the scale nor a tone of the planned chord. The key rule therefore holds by construction
instead of by hoping each layer got it right. Drum notes (channel 9) are exempt.
"""

from __future__ import annotations

from dataclasses import dataclass

from consumers.music.theory import chord_bass, chord_scale, chord_tones, pitch_class, scale
from consumers.music.types import CHANNELS, Mode, Note

__all__ = ["DRUMS", "Harmony", "drum", "harmony", "velocity"]

DRUMS = CHANNELS["drums"]
_MIN_VELOCITY, _MAX_VELOCITY = 40, 120  # below 40 FluidR3 samples barely speak; above 120 they crack


def velocity(value: float) -> int:
    """A MIDI velocity in the arranger's working range 40..120."""
    return max(_MIN_VELOCITY, min(_MAX_VELOCITY, round(value)))


@dataclass(frozen=True)
class Harmony:
    """A chord in a key: what a line may play over it, and what the bass and cadence need."""

    key: str
    mode: Mode
    chord: str
    tonic: int
    scale: frozenset[int]
    tones: tuple[int, ...]            # chord tones, root first
    bass: int                         # the bass pitch class (inversions move it)
    line: tuple[int, ...]             # chord scale: pitch classes a line uses over the chord
    dominant: int                     # the key's fifth degree, for pedals

    @property
    def root(self) -> int:
        return self.tones[0]

    @property
    def fifth(self) -> int | None:
        """The perfect fifth above the root if the chord has one (not in diminished chords)."""
        candidate = (self.root + 7) % 12
        return candidate if candidate in self.tones else None

    @property
    def third(self) -> int | None:
        """The major or minor third above the root if the chord has one (not in sus chords)."""
        for interval in (4, 3):
            if (self.root + interval) % 12 in self.tones:
                return (self.root + interval) % 12
        return None

    def allows(self, pc: int) -> bool:
        """True if the key rule lets a note of pitch class ``pc`` sound over this chord."""
        return pc % 12 in self.scale or pc % 12 in self.tones

    def note(self, tick: int, duration: int, channel: int, pitch: int, vel: float) -> Note:
        """A melodic note, flagged chromatic when it is a planned chord tone outside the key."""
        if channel == DRUMS:
            raise ValueError("use drum() for channel 9")
        if not 0 <= pitch <= 127:
            raise ValueError(f"pitch {pitch} outside MIDI range")
        pc = pitch % 12
        if not self.allows(pc):
            raise ValueError(f"pitch {pitch} is neither in {self.key} {self.mode} nor in {self.chord}")
        return Note(max(0, tick), max(1, duration), channel, pitch, velocity(vel),
                    chromatic=pc not in self.scale)


def harmony(key: str, mode: Mode, chord: str) -> Harmony:
    """The Harmony of ``chord`` in ``key`` (ValueError for an unknown key, mode or numeral)."""
    return Harmony(
        key=key,
        mode=mode,
        chord=chord,
        tonic=pitch_class(key),
        scale=frozenset(scale(key, mode)),
        tones=chord_tones(key, mode, chord),
        bass=chord_bass(key, mode, chord),
        line=chord_scale(key, mode, chord),
        dominant=scale(key, mode)[4],
    )


def drum(tick: int, duration: int, key_number: int, vel: float) -> Note:
    """A percussion note on channel 9 (exempt from the key rule)."""
    return Note(max(0, tick), max(1, duration), DRUMS, key_number, velocity(vel))
