"""From the director's plan to notes: one bar (or one stinger) at a time, from the plan alone.

The director decides *what* the music should do (key, chord, intensity, tension, valence,
which layers sound); the arranger decides the notes, the way an FMOD/Wwise music system
switches pre-written stems, except that the stems are written on the fly so they can follow
any chord. A bar depends on nothing but its plan: replaying a match, or a consumer joining
late, gets the same notes. Randomness comes only from generators seeded with ``plan.seed``
(one per layer, so muting a layer does not change the others).
"""

from __future__ import annotations

from random import Random

from consumers.music.drums import drum_notes
from consumers.music.harmony import DRUMS, Harmony, harmony
from consumers.music.layers import bass_notes, brass_notes, pad_notes, strings_notes
from consumers.music.melody import melody_notes
from consumers.music.midi import clip_overlaps
from consumers.music.mix import Control, channel_strip, pump, swell
from consumers.music.stingers import arrange_stinger
from consumers.music.styles import DrumKit, Instrument, Style, get_style
from consumers.music.types import CHANNELS, LAYERS, TICKS_PER_BEAT, BarPlan, Note, Part

__all__ = ["arrange_bar", "arrange_stinger", "intensity_tier", "valence_step"]


def intensity_tier(intensity: float) -> int:
    """0 (held notes), 1 (pulse on the beat) or 2 (driving): how busy the layers are."""
    return 0 if intensity < 0.34 else (1 if intensity < 0.67 else 2)


def valence_step(valence: float) -> int:
    """-1, 0 or +1: register and colour move in three steps, not continuously, so a drifting
    valence does not flip a voice by an octave every bar."""
    return -1 if valence <= -0.4 else (1 if valence >= 0.4 else 0)


def _clamp(value: float, low: float, high: float) -> float:
    return max(low, min(high, value))


def _expression(intensity: float) -> int:
    return round(78 + 49 * intensity)


def _swing(notes: list[Note], amount: float) -> list[Note]:
    """Delay the off-beat sixteenths by a share of a sixteenth: the style's feel. A delayed
    note ends where it did, so a line never overlaps itself."""
    if amount <= 0:
        return notes
    shift = round(amount * TICKS_PER_BEAT / 4)
    sixteenth = TICKS_PER_BEAT // 4
    return [Note(n.tick + shift, max(1, n.duration_ticks - shift), n.channel, n.pitch, n.velocity, n.chromatic)
            if n.tick % (2 * sixteenth) == sixteenth else n for n in notes]


def _check(plan: BarPlan) -> None:
    if plan.beats_per_bar < 1:
        raise ValueError(f"beats_per_bar must be >= 1, got {plan.beats_per_bar}")
    unknown = set(plan.layers) - set(LAYERS)
    if unknown:
        raise ValueError(f"unknown layers {sorted(unknown)}; expected a subset of {LAYERS}")


def _layer(layer: str, plan: BarPlan, style: Style, h: Harmony, nxt: Harmony | None,
           tier: int, vstep: int) -> tuple[tuple[Note, ...], Instrument | DrumKit, list[Control]]:
    """One layer's notes, the sound it is played on and its expression curve."""
    beats = plan.beats_per_bar
    bar_end = beats * TICKS_PER_BEAT
    channel = CHANNELS[layer]
    intensity = _clamp(plan.intensity, 0.0, 1.0)
    tension = _clamp(plan.tension, 0.0, 1.0)
    family = plan.seed // 8
    expression = _expression(intensity)
    curve: list[Control] = []
    if layer == "pad":
        notes = pad_notes(h, style, channel=channel, beats=beats, tier=tier, intensity=intensity,
                          tension=tension, valence_step=vstep)
        if style.pump and tier >= 1:
            curve = pump(channel, expression, bar_end)
        return notes, style.pad, curve
    if layer == "bass":
        return bass_notes(h, nxt, style, channel=channel, beats=beats, tier=tier, intensity=intensity,
                          tension=tension), style.bass, curve
    if layer == "drums":
        rng = Random(plan.seed * 16 + LAYERS.index("drums"))
        return drum_notes(style.kit, style.grooves[family % len(style.grooves)], h, beats=beats, tier=tier,
                          intensity=intensity, tension=tension, position=plan.seed % 8, rng=rng), style.kit, curve
    if layer == "strings":
        notes, patch = strings_notes(h, style, channel=channel, beats=beats, tier=tier, intensity=intensity,
                                     tension=tension, valence_step=vstep, family=family)
        if tension >= 0.5:
            curve = swell(channel, round(expression * 0.6), 0, bar_end)
        return notes, patch, curve
    if layer == "melody":
        return melody_notes(h, nxt, style.melody, channel=channel, beats=beats, tier=tier, intensity=intensity,
                            valence_step=vstep, seed=plan.seed), style.melody, curve
    if layer == "brass":
        notes = brass_notes(h, style, channel=channel, beats=beats, tier=tier, intensity=intensity,
                            tension=tension, valence_step=vstep, family=family)
        if tension >= 0.5:
            curve = swell(channel, round(expression * 0.45), 0, bar_end)
        return notes, style.brass, curve
    raise ValueError(f"unknown layer {layer!r}")


def arrange_bar(plan: BarPlan) -> Part:
    """The notes of one bar: only the planned layers, each on its channel with its patch.

    Every melodic note is in the key's scale or is a tone of the planned chord flagged
    ``chromatic``; drums (channel 9) are exempt. ValueError for an unknown style, layer,
    key or chord numeral.
    """
    _check(plan)
    style = get_style(plan.style)
    h = harmony(plan.key, plan.mode, plan.chord)
    nxt = harmony(plan.key, plan.mode, plan.next_chord) if plan.next_chord else None
    tier = intensity_tier(_clamp(plan.intensity, 0.0, 1.0))
    vstep = valence_step(_clamp(plan.valence, -1.0, 1.0))
    notes: list[Note] = []
    programs: dict[int, tuple[int, int]] = {}
    controls: list[Control] = []
    for layer in LAYERS:  # fixed order, whatever order the plan lists them in
        if layer not in plan.layers:
            continue
        layer_notes, sound, curve = _layer(layer, plan, style, h, nxt, tier, vstep)
        channel = CHANNELS[layer]
        notes += layer_notes
        programs[channel] = sound.gm
        expression = 110 if channel == DRUMS else _expression(_clamp(plan.intensity, 0.0, 1.0))
        # A curve that starts on tick 0 sets the opening expression itself: one CC11 per tick.
        opening = next((value for tick, _, cc, value in curve if tick == 0 and cc == 11), expression)
        controls += channel_strip(channel, sound, style.reverb, opening)
        controls += [c for c in curve if not (c[0] == 0 and c[2] == 11)]
    return Part(
        notes=tuple(clip_overlaps(_swing(notes, style.swing))),  # one sounding note per key
        programs=programs,
        length_ticks=plan.beats_per_bar * TICKS_PER_BEAT,
        controls=tuple(controls),
    )
