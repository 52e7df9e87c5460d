"""Chants: many voices on one rhythm and one melody, and hands clapping the beat.

A :class:`Tune` is one cycle of notes and claps in beats; a chant repeats it at its
tempo. Every note is sung by a crowd of voices, each a little late (up to ~0.1 s, more
for the far end of a stand) and a little off pitch, so the chant is loose like a real
one but its beat is unmistakable.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from producers.stadium.voices import MAX_GRAIN_S, sung

__all__ = ["ChantBank", "Note", "Tune", "chant_bank", "tune"]


@dataclass(frozen=True)
class Note:
    """A sung syllable: starts at ``beat`` of the cycle, lasts ``beats``, ``semitone``
    above the chant's root."""

    beat: float
    beats: float
    semitone: int
    vowels: tuple[str, ...]
    consonant: bool = True


@dataclass(frozen=True)
class Tune:
    """One cycle of a chant, in beats."""

    name: str
    cycle_beats: int
    notes: tuple[Note, ...]
    claps: tuple[float, ...]  # beats of the cycle on which the crowd claps


_VOWEL_OF = {"a": "a", "e": "e", "i": "i", "o": "o", "u": "uh", "y": "i"}


def _syllables(team: str) -> list[str]:
    """Vowels of the team name's syllables ("Arsenal" -> a, e, a), two to four of them."""
    groups = re.findall(r"[aeiouy]+", team.lower()) or ["a", "e"]
    vowels = [_VOWEL_OF[g[0]] for g in groups][:4]
    return vowels if len(vowels) >= 2 else vowels + ["o"]


def tune(name: str, team: str) -> Tune:
    """The tune called ``name`` (name, anthem, clap), sung for ``team``.

    ``name``: the team's name, a syllable a beat, then three claps (8 beats).
    ``anthem``: a 16-beat melody on open vowels with claps on the off-beats.
    ``clap``: claps on the beat and a shouted "hey!" once a cycle (8 beats).
    """
    if name == "name":
        vowels = _syllables(team)
        melody = [0, 0, -3, -5][: len(vowels)] if len(vowels) > 2 else [0, -3]
        notes = tuple(
            Note(beat=float(i), beats=0.85 if i < len(vowels) - 1 else 3.6 - i, semitone=melody[i], vowels=(v,))
            for i, v in enumerate(vowels)
        )
        return Tune(name, 8, notes, claps=(4.0, 5.0, 6.0))
    if name == "anthem":
        line = [(0, 1, 0, "o"), (1, 1, 2, "a"), (2, 1, 4, "e"), (3, 1, 4, "a"), (4, 2, 5, "o"), (6, 2, 4, "a"),
                (8, 1, 2, "e"), (9, 1, 4, "a"), (10, 1, 2, "o"), (11, 1, 0, "e"), (12, 3, -1, "a"), (15, 1, 0, "o")]
        notes = tuple(Note(float(b), float(d) * 0.92, s, (v,), consonant=(i % 2 == 0)) for i, (b, d, s, v) in enumerate(line))
        return Tune(name, 16, notes, claps=tuple(float(b) for b in range(1, 16, 2)))
    if name == "clap":
        return Tune(name, 8, (Note(7.0, 0.5, 7, ("e",)),), claps=tuple(float(b) for b in range(7)))
    raise ValueError(f"unknown tune {name!r}")


@dataclass(frozen=True)
class ChantBank:
    """Sung grains for every note of a tune: ``voices[i]`` are variants of ``tune.notes[i]``."""

    tune: Tune
    tempo: float
    voices: tuple[tuple[np.ndarray, ...], ...]


VARIANTS = 12  # different singers per note; the crowd reuses them with its own timing


@lru_cache(maxsize=16)
def chant_bank(seed: int, sample_rate: int, tune_name: str, team: str, tempo: float, root_midi: int) -> ChantBank:
    """Grains for every note of ``tune_name`` at ``tempo`` (bpm), rooted on MIDI ``root_midi``.

    Most singers are men at the root; a third sing an octave up. Each singer is up to
    ~30 cents sharp or flat.
    """
    the_tune = tune(tune_name, team)
    beat_s = 60.0 / tempo
    rng = np.random.default_rng([seed, 11_000, root_midi, int(tempo * 1000), len(team), sum(map(ord, tune_name))])
    voices = []
    for note in the_tune.notes:
        length = min(note.beats * beat_s, MAX_GRAIN_S - 0.15)
        f0 = 440.0 * 2 ** ((root_midi + note.semitone - 69) / 12)
        variants = []
        for _ in range(VARIANTS):
            high = rng.random() < 0.33
            cents = rng.normal(0.0, 15.0)
            variants.append(sung(rng, sample_rate, f0=f0 * (2.0 if high else 1.0) * 2 ** (cents / 1200),
                                 length_s=length, vowels=list(note.vowels),
                                 scale=float(rng.uniform(1.1, 1.25) if high else rng.uniform(0.95, 1.05)),
                                 consonant=note.consonant))
        voices.append(tuple(variants))
    return ChantBank(tune=the_tune, tempo=tempo, voices=tuple(voices))
