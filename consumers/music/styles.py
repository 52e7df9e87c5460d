"""The three orchestrations the director can choose: which General MIDI sounds play what.

A style is data, not code: the arranger writes the same musical ideas (a pad, a bass line,
a groove, a motif) for every style and the style says which FluidR3_GM patch plays them, in
which register, how loud and where on the stage. Program numbers are General MIDI's,
0-based; drum kits are bank 128 presets of FluidR3_GM (0 Standard, 16 Power, 25 TR-808,
48 Orchestra). Volumes (CC7) even out the SoundFont's patches, which differ by more than
10 dB at the same velocity; pans (CC10) seat the layers so they do not mask each other.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from consumers.music.types import STINGERS, STYLES

__all__ = ["STYLE_BOOK", "DrumKit", "Instrument", "StingerVoices", "Style", "get_style"]


@dataclass(frozen=True)
class Instrument:
    """One melodic patch and the register the arranger writes it in."""

    program: int          # General MIDI program, 0-based
    low: int              # lowest MIDI note written for it
    high: int             # highest MIDI note written for it
    center: int           # where its chords and lines sit at neutral valence
    volume: int = 100     # CC7
    pan: int = 64         # CC10, 0 left .. 127 right
    bank: int = 0

    @property
    def gm(self) -> tuple[int, int]:
        """(bank, program) as Part.programs wants it."""
        return (self.bank, self.program)


@dataclass(frozen=True)
class DrumKit:
    """A bank-128 kit and the keys of its sounds (they differ: the Orchestra kit has its
    concert cymbal on 57 and timpani on 41-53 where the Standard kit has toms)."""

    program: int
    kick: int = 36
    snare: int = 38
    ghost: int = 37               # side stick / soft snare for ghost notes
    clap: int = 39
    hat: int = 42                 # closed hi-hat
    open_hat: int = 46
    pedal_hat: int = 44
    ride: int = 51
    crash: int = 49
    crash2: int = 57
    tamb: int = 54
    wood_hi: int = 76
    wood_lo: int = 77
    toms: tuple[int, ...] = (50, 48, 47, 45, 43, 41)  # high to low
    timpani: tuple[int, int] | None = None          # pitched timpani keys (lowest, highest)
    volume: int = 100
    pan: int = 64

    @property
    def gm(self) -> tuple[int, int]:
        return (128, self.program)


@dataclass(frozen=True)
class StingerVoices:
    """The two stinger channels' patches for one kind of stinger."""

    high: Instrument
    low: Instrument
    roll: bool = False    # the low patch rolls (timpani) rather than sustains
    power: bool = False   # the low patch plays power chords (distorted guitar)


@dataclass(frozen=True)
class Style:
    """An orchestration: patches per layer, kit, groove families and feel."""

    name: str
    pad: Instrument
    bass: Instrument
    strings: Instrument
    melody: Instrument
    brass: Instrument
    kit: DrumKit
    grooves: tuple[str, ...]          # groove families (drums.GROOVES), one per 8-bar phrase
    tremolo: Instrument | None = None  # the strings' patch under tension (same channel)
    pad_voicing: str = "chord"        # "chord": close triads; "power": root-fifth-octave
    bass_feel: str = "legato"         # "legato" | "offbeat" | "drive"
    pump: bool = False                # side-chain style CC11 ducking of the pad on each beat
    swing: float = 0.0                # 0..1 delay of off-beat sixteenths
    reverb: int = 40                  # CC91 send
    stingers: Mapping[str, StingerVoices] = field(default_factory=dict, hash=False)

    def instrument(self, layer: str) -> Instrument:
        """The patch of a melodic layer (ValueError for "drums", which is a kit)."""
        if layer not in ("pad", "bass", "strings", "melody", "brass"):
            raise ValueError(f"layer {layer!r} has no melodic instrument")
        instrument: Instrument = getattr(self, layer)
        return instrument


def _voices(**by_kind: tuple[Instrument, Instrument]) -> Mapping[str, StingerVoices]:
    if set(by_kind) != set(STINGERS):
        raise ValueError(f"stinger voices must cover {STINGERS}")
    return MappingProxyType({
        kind: StingerVoices(high, low, roll=low.program == _TIMPANI_PROGRAM,
                            power=low.program in _GUITAR_PROGRAMS)
        for kind, (high, low) in by_kind.items()
    })


_TIMPANI_PROGRAM = 47
_GUITAR_PROGRAMS = (29, 30)  # Overdrive, Distortion


# Volumes below were set by rendering each patch through FluidSynth with FluidR3_GM (a held
# note at velocity 90) and evening out the RMS, CC7 acting as about 40*log10(v/127) dB.
# Orchestral seating: violins left, horns centre-left, basses and brass right.
_TIMPANI = Instrument(47, 40, 55, 45, volume=127, pan=70)
_TROMBONES = Instrument(57, 45, 70, 55, volume=82, pan=84)
_TUBA = Instrument(58, 28, 50, 38, volume=98, pan=76)
_BRASS_SECTION = Instrument(61, 52, 81, 67, volume=94, pan=76)     # trumpets + trombones
_FANFARE = Instrument(61, 52, 84, 69, volume=112, pan=64)          # the same, up front
_PIZZICATO = Instrument(45, 55, 84, 67, volume=124, pan=48)
_TREMOLO = Instrument(44, 52, 86, 67, volume=91, pan=44)

ORCHESTRAL = Style(
    name="orchestral",
    pad=Instrument(49, 48, 79, 62, volume=80, pan=64),         # Slow Strings: a sustained bed
    bass=Instrument(43, 28, 52, 40, volume=118, pan=84),       # Contrabass
    strings=Instrument(48, 55, 88, 69, volume=92, pan=40),     # String Ensemble 1
    melody=Instrument(60, 53, 79, 67, volume=100, pan=56),     # French Horns
    brass=_BRASS_SECTION,
    kit=DrumKit(48, kick=36, snare=38, ghost=40, hat=27, open_hat=29, pedal_hat=28,  # Orchestra kit
                ride=59, crash=57, crash2=59, toms=(53, 50, 47, 45, 43, 41), timpani=(41, 53),
                volume=112, pan=64),
    grooves=("march", "epic"),
    tremolo=_TREMOLO,
    reverb=72,
    stingers=_voices(
        goal=(_FANFARE, _TIMPANI),
        goal_against=(_TROMBONES, _TUBA),
        near_miss=(Instrument(44, 52, 86, 67, volume=108, pan=64), _TIMPANI),
        card=(_TROMBONES, _TUBA),
        var=(_PIZZICATO, _TIMPANI),
        full_time=(_FANFARE, _TIMPANI),
    ),
)

_SYNTH_BASS = Instrument(38, 28, 52, 38, volume=127, pan=64)       # Synth Bass 1
ELECTRONIC = Style(
    name="electronic",
    pad=Instrument(89, 50, 79, 63, volume=79, pan=64),         # Warm Pad
    bass=_SYNTH_BASS,
    strings=Instrument(50, 55, 88, 70, volume=84, pan=44),     # Synth Strings 1
    melody=Instrument(81, 57, 84, 69, volume=127, pan=70),     # Saw lead
    brass=Instrument(62, 50, 79, 64, volume=89, pan=84),       # Synth Brass 1
    kit=DrumKit(25, ghost=40, toms=(50, 47, 45, 43, 41), volume=84),  # TR-808, hot: turned down
    grooves=("four_floor", "breakbeat", "halftime"),
    bass_feel="offbeat",
    pump=True,
    swing=0.12,  # a 56% sixteenth shuffle
    reverb=48,
    stingers=_voices(
        goal=(Instrument(62, 55, 84, 69, volume=105, pan=64), _SYNTH_BASS),           # Synth Brass 1
        goal_against=(Instrument(81, 52, 79, 64, volume=119, pan=64),                 # Saw lead
                      Instrument(39, 28, 52, 38, volume=84)),                          # Synth Bass 2
        near_miss=(Instrument(81, 55, 88, 67, volume=119, pan=64), _SYNTH_BASS),      # Saw riser
        card=(Instrument(55, 48, 72, 57, volume=127, pan=64), _SYNTH_BASS),           # Orchestra Hit
        var=(Instrument(80, 60, 84, 72, volume=93, pan=64), _SYNTH_BASS),             # Square blips
        full_time=(Instrument(90, 50, 84, 64, volume=117, pan=64), _SYNTH_BASS),      # Polysynth
    ),
)

_POWER_GUITAR = Instrument(30, 40, 67, 50, volume=81, pan=34)      # Distortion Guitar
_STAB_GUITAR = Instrument(30, 40, 67, 50, volume=91, pan=64)       # the same, centred for stingers
_PICK_BASS = Instrument(34, 28, 52, 40, volume=118, pan=64)        # Picked Bass
STADIUM_ROCK = Style(
    name="stadium_rock",
    pad=_POWER_GUITAR,                                         # power chords
    bass=_PICK_BASS,
    strings=Instrument(48, 55, 88, 70, volume=92, pan=90),     # String Ensemble 1
    melody=Instrument(29, 55, 86, 69, volume=122, pan=80),     # Overdrive lead guitar
    brass=_BRASS_SECTION,
    kit=DrumKit(16),                                           # Power kit
    grooves=("rock", "stomp", "anthem"),
    tremolo=_TREMOLO,
    pad_voicing="power",
    bass_feel="drive",
    reverb=36,
    stingers=_voices(
        goal=(_FANFARE, _STAB_GUITAR),
        goal_against=(Instrument(29, 52, 79, 64, volume=115, pan=64), _PICK_BASS),    # Overdrive
        near_miss=(Instrument(48, 55, 88, 67, volume=110, pan=64), _PICK_BASS),       # Strings swell
        card=(_STAB_GUITAR, _PICK_BASS),
        var=(Instrument(28, 52, 76, 64, volume=127, pan=64), _PICK_BASS),             # Palm-muted
        full_time=(_FANFARE, _STAB_GUITAR),
    ),
)

STYLE_BOOK: Mapping[str, Style] = MappingProxyType(
    {s.name: s for s in (ORCHESTRAL, ELECTRONIC, STADIUM_ROCK)}
)
if tuple(STYLE_BOOK) != STYLES:
    raise RuntimeError("styles.py and types.STYLES disagree")


def get_style(name: str) -> Style:
    """The style called ``name`` (ValueError naming the known ones otherwise)."""
    try:
        return STYLE_BOOK[name]
    except KeyError:
        raise ValueError(f"unknown style {name!r}; expected one of {', '.join(STYLE_BOOK)}") from None
