"""The shapes the score is made of, shared by the director, the arranger and the renderer.

Time inside a bar is in MIDI ticks (``TICKS_PER_BEAT`` per beat); the renderer turns ticks
into samples with the bar's tempo. Channels are fixed per layer so that a downstream MIDI
consumer can route them (channel 9 is General MIDI percussion).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

__all__ = [
    "CHANNELS", "LAYERS", "MUSIC_CHANNELS", "SAMPLE_RATE", "STINGERS", "STYLES", "TICKS_PER_BEAT",
    "BarPlan", "Mode", "Note", "Part", "StingerKind", "StingerPlan",
]

TICKS_PER_BEAT = 480
SAMPLE_RATE = 48_000  # music.audio.v1 is 48 kHz stereo, the broadcast rate
MUSIC_CHANNELS = 2

Mode = Literal["MAJOR", "MINOR"]

# Layers in the order they enter as intensity rises (pad first, brass last).
LAYERS: tuple[str, ...] = ("pad", "bass", "drums", "strings", "melody", "brass")
STYLES: tuple[str, ...] = ("orchestral", "electronic", "stadium_rock")
StingerKind = Literal["goal", "goal_against", "near_miss", "card", "var", "full_time"]
STINGERS: tuple[str, ...] = ("goal", "goal_against", "near_miss", "card", "var", "full_time")

# MIDI channel of each layer; stingers have their own two channels so they never cut a
# sounding bar note on the same key.
CHANNELS: dict[str, int] = {
    "pad": 0, "bass": 1, "strings": 2, "melody": 3, "brass": 4,
    "stinger": 5, "stinger_low": 6, "drums": 9,
}


@dataclass(frozen=True)
class BarPlan:
    """What the director decided for one bar; the arranger turns it into notes."""

    bar: int                      # bar number of the match's music, from 0
    style: str                    # one of STYLES
    tempo_bpm: float
    beats_per_bar: int
    key: str                      # tonic spelled like "D", "F#", "Bb"
    mode: Mode
    chord: str                    # roman numeral in the key: I, ii, iii, IV, V, V7, vi, vii°, bVI, bVII, ... (case = quality)
    next_chord: str | None        # the following bar's chord when known (for approach notes)
    intensity: float              # 0..1 after smoothing
    layers: tuple[str, ...]       # sounding layers, a subset of LAYERS
    tension: float                # 0..1: anticipation (suspensions, pedal, tremolo, rising lines)
    valence: float                # -1..1 (register and brightness follow it)
    seed: int                     # deterministic variation: same plan, same notes; seed % 8 is the
    #                               bar's place in its 8-bar period, seed // 8 names the period
    # What the bar before was, so expression and velocity ramp across the bar line and layers
    # that enter or leave fade over a beat or more (None: the same as this bar).
    intensity_from: float | None = None
    layers_from: tuple[str, ...] | None = None
    phrase_pos: int = 0           # 0..3: place in the 4-bar phrase (3 ends it: a cadence)
    tempo_ramp: bool = False      # the tempo moves on this bar as part of a planned ramp
    theme: str | None = None      # "home" or "away": the melody sings that side's theme
    theme_bar: int = 0            # which bar of the two-bar theme
    theme_statement: int = 0      # how often the theme was heard before (it develops)
    theme_seed: int = 0           # the theme's identity (from the match and the side)
    stinger_over: bool = False    # a stinger takes the lead over this bar: the melody rests
    opening: bool = False         # the first bar of a piece: every layer enters
    final: bool = False           # the last bar of a piece: the tonic, struck and released


@dataclass(frozen=True)
class StingerPlan:
    """A one-off musical gesture on a beat: a goal fanfare, a card's stab, full time."""

    kind: StingerKind
    style: str
    tempo_bpm: float
    key: str
    mode: Mode
    intensity: float
    seed: int
    # The harmony under the stinger, from its first tick: (start tick, end tick, key, mode,
    # chord) per bar it overlaps, the running bar's chord first. The figure is voiced on it.
    harmony: tuple[tuple[int, int, str, str, str], ...] = ()
    # Notes of the running bar still sounding, as (start tick, end tick, pitch class) from the
    # stinger's start: it keeps a semitone away from them as well as from the chords.
    avoid: tuple[tuple[int, int, int], ...] = ()


@dataclass(frozen=True, order=True)
class Note:
    tick: int            # from the start of the bar (or stinger)
    duration_ticks: int  # > 0
    channel: int         # 0..15
    pitch: int           # 0..127
    velocity: int        # 1..127
    chromatic: bool = False  # a planned note outside the key (e.g. a raised leading tone)


@dataclass(frozen=True)
class Part:
    """The notes of one bar or one stinger, with the instruments they are played on."""

    notes: tuple[Note, ...]
    programs: dict[int, tuple[int, int]] = field(default_factory=dict)  # channel -> (bank, GM program)
    length_ticks: int = 4 * TICKS_PER_BEAT  # the bar's length; notes may ring past it
    controls: tuple[tuple[int, int, int, int], ...] = ()  # (tick, channel, controller, value), e.g. CC7/CC11/CC91
