"""From the director's plan to notes: one bar (or one stinger) at a time, from the plan alone.

The director decides *what* the music should do (key, chord, intensity, tension, valence,
which layers sound); the arranger decides the notes, the way an FMOD/Wwise music system
switches pre-written stems, except that the stems are written on the fly so they can follow
any chord. A bar depends on nothing but its plan: replaying a match, or a consumer joining
late, gets the same notes. Randomness comes only from generators seeded with ``plan.seed``
(one per layer, so muting a layer does not change the others).

What makes it sound played rather than sequenced:

* expression (CC11) ramps across the bar from where the previous bar ended to where this one
  goes, so a crescendo into a goal is one gesture, not a staircase; velocities follow the
  same curve, with the top voice of a chord brought out;
* a layer that enters fades in over two beats, one that leaves plays out a fading chord;
* light, seeded humanisation: chord tones spread by a few milliseconds, off-beat notes sit
  a little behind the grid, velocities vary by a few steps — the same every replay;
* a piece's first bar enters on a pickup (:func:`arrange_pickup`) and its last bar strikes
  the tonic and releases it (a button at high intensity, a held chord otherwise).
"""

from __future__ import annotations

from random import Random

from consumers.music.drums import drum_notes, roll, timpani_key
from consumers.music.harmony import DRUMS, Harmony, drum, harmony
from consumers.music.layers import bass_notes, brass_notes, chord_voicing, pad_notes, strings_notes
from consumers.music.melody import melody_notes, theme_notes
from consumers.music.midi import clip_overlaps
from consumers.music.mix import Control, channel_strip, pump
from consumers.music.stingers import arrange_stinger
from consumers.music.styles import DrumKit, Instrument, Style, get_style
from consumers.music.types import CHANNELS, LAYERS, TICKS_PER_BEAT, BarPlan, Note, Part
from consumers.music.voicing import fold, nearest, step, window

__all__ = ["arrange_bar", "arrange_pickup", "arrange_stinger", "intensity_tier", "valence_step"]

BEAT = TICKS_PER_BEAT
EIGHTH = BEAT // 2
_FADE_IN_BEATS = 2       # an entering layer reaches its level over this many beats
_FADE_OUT_BEATS = 2      # a leaving layer's last chord fades over this many beats
_ENTER_FROM = 0.2        # share of its level an entering layer starts from
_VELOCITY_SLOPE = 45     # velocity per unit of intensity when it changes across a bar
_CHORD_CHANNELS = frozenset(CHANNELS[layer] for layer in ("pad", "strings", "brass"))


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
    unknown = (set(plan.layers) | set(plan.layers_from or ())) - set(LAYERS)
    if unknown:
        raise ValueError(f"unknown layers {sorted(unknown)}; expected a subset of {LAYERS}")


def _layer(layer: str, plan: BarPlan, style: Style, h: Harmony, nxt: Harmony | None,
           tier: int, vstep: int) -> tuple[tuple[Note, ...], Instrument | DrumKit, list[Control]]:
    """One layer's notes, the sound it is played on and its own expression curve (if any)."""
    beats = plan.beats_per_bar
    bar_end = beats * TICKS_PER_BEAT
    channel = CHANNELS[layer]
    intensity = _clamp(plan.intensity, 0.0, 1.0)
    tension = _clamp(plan.tension, 0.0, 1.0)
    family = plan.seed // 8
    expression = _expression(intensity)
    curve: list[Control] = []
    if layer == "pad":
        # Under a stinger the pad does not suspend its third: the stinger is voiced on the chord.
        notes = pad_notes(h, style, channel=channel, beats=beats, tier=tier, intensity=intensity,
                          tension=min(tension, 0.49) if plan.stinger_over else tension, valence_step=vstep)
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
        return notes, patch, curve
    if layer == "melody":
        if plan.theme is not None:
            return theme_notes(h, style.melody, channel=channel, beats=beats, intensity=max(intensity, 0.5),
                               valence_step=vstep, seed=plan.theme_seed, theme_bar=plan.theme_bar,
                               statement=plan.theme_statement, rising=plan.theme == "home"), style.melody, curve
        return melody_notes(h, nxt, style.melody, channel=channel, beats=beats, tier=tier, intensity=intensity,
                            valence_step=vstep, seed=plan.seed), style.melody, curve
    if layer == "brass":
        notes = brass_notes(h, style, channel=channel, beats=beats, tier=tier, intensity=intensity,
                            tension=tension, valence_step=vstep, family=family)
        return notes, style.brass, curve
    raise ValueError(f"unknown layer {layer!r}")


def _final(layer: str, plan: BarPlan, style: Style, h: Harmony,
           tier: int, vstep: int) -> tuple[tuple[Note, ...], Instrument | DrumKit, list[Control]]:
    """The last bar of a piece: the tonic struck on the downbeat and released within the bar —
    a short button when the music is driving, a chord held for three beats otherwise."""
    bar_end = plan.beats_per_bar * BEAT
    hold = BEAT if tier == 2 else min(bar_end, 3 * BEAT)
    intensity = _clamp(plan.intensity, 0.0, 1.0)
    vel = 64 + 44 * intensity
    channel = CHANNELS[layer]
    if layer == "drums":
        kit = style.kit
        notes = [drum(0, 2 * BEAT, kit.crash, vel + 12), drum(0, BEAT // 4, kit.kick, vel + 8)]
        timp = timpani_key(kit, h.root)
        if timp is not None:
            notes.append(drum(0, BEAT, timp, vel + 6))
        if tier < 2:
            notes += roll(kit.crash2, 0, hold, v0=vel - 10, v1=vel - 30, accelerate=False)
        return tuple(notes), kit, []
    sound: Instrument = style.instrument(layer)
    if layer == "bass":
        pitches: tuple[int, ...] = (fold(nearest(h.root, sound.center), sound.low, sound.high),)
    elif layer == "melody":
        pitches = (fold(nearest(h.root, sound.center + 3 * vstep), sound.low, sound.high),)
    else:
        pitches = chord_voicing(h, sound, vstep)
    notes = tuple(h.note(0, hold, channel, p, vel + (6 if p == max(pitches) else 0)) for p in pitches)
    # A held chord dies away under its own expression: the release is part of the ending.
    curve = [] if tier == 2 else [(t, channel, 11, round(_expression(intensity) * (1 - 0.5 * t / hold)))
                                   for t in range(0, hold, EIGHTH)]
    return notes, sound, curve


def _exit(layer: str, plan: BarPlan, style: Style, h: Harmony,
          vstep: int) -> tuple[tuple[Note, ...], Instrument | DrumKit, list[Control]]:
    """A layer that sounded in the bar before and not in this one plays out a fading chord."""
    fade = min(plan.beats_per_bar, _FADE_OUT_BEATS) * BEAT
    was = _clamp(plan.intensity if plan.intensity_from is None else plan.intensity_from, 0.0, 1.0)
    channel = CHANNELS[layer]
    vel = 48 + 30 * was
    start = _expression(was)
    curve = [(t, channel, 11, round(start * (1 - t / fade))) for t in range(0, fade, EIGHTH)] + [(fade, channel, 11, 0)]
    if layer == "drums":
        return (drum(0, fade, style.kit.crash2, vel - 8),), style.kit, curve
    sound: Instrument = style.instrument(layer)
    if layer in ("bass", "melody"):
        pitches: tuple[int, ...] = (fold(nearest(h.root, sound.center), sound.low, sound.high),)
    else:
        pitches = window(h.tones, sound.center + 4 * vstep)
    return tuple(h.note(0, fade, channel, p, vel) for p in pitches), sound, curve


def _envelope(plan: BarPlan, channel: int, level: int, own: list[Control], *, entering: bool) -> list[Control]:
    """The channel's CC11 over the bar: its own curve (a pump) or a ramp from where the previous
    bar ended to this bar's level — one crescendo across a build, not a swell reset every bar;
    held strings and brass lean in under tension. An entering layer fades in from a fifth of
    its level over two beats."""
    bar_end = plan.beats_per_bar * BEAT
    was = plan.intensity if plan.intensity_from is None else plan.intensity_from
    fade = min(bar_end, _FADE_IN_BEATS * BEAT)
    lean = round(12 * plan.tension) if channel in (CHANNELS["strings"], CHANNELS["brass"]) and plan.tension >= 0.5 else 0
    points: list[Control] = []
    for t in range(0, bar_end, EIGHTH):
        if own:
            value = next((v for tick, _, cc, v in reversed(own) if tick <= t and cc == 11), level)
        elif channel == DRUMS:
            value = level
        else:
            value = _expression(was + (plan.intensity - was) * t / bar_end) + lean
        if entering:
            value = round(value * (_ENTER_FROM + (1 - _ENTER_FROM) * min(1.0, t / fade)))
        points.append((t, channel, 11, max(0, min(127, value))))
    # Only the changes: a flat line is one controller at tick 0.
    return [p for i, p in enumerate(points) if i == 0 or p[3] != points[i - 1][3]]


def _shape_velocities(notes: list[Note], plan: BarPlan, rng: Random) -> list[Note]:
    """Velocities along the bar's intensity curve; the top voice of a chord brought out and the
    inner voices a touch softer; a few steps of seeded variation (drums vary on their own)."""
    bar_end = plan.beats_per_bar * BEAT
    was = plan.intensity if plan.intensity_from is None else plan.intensity_from
    chords: dict[tuple[int, int], list[int]] = {}
    for n in notes:
        chords.setdefault((n.tick, n.channel), []).append(n.pitch)
    out = []
    for n in notes:
        delta = _VELOCITY_SLOPE * (was - plan.intensity) * (1 - min(n.tick, bar_end) / bar_end)
        if n.channel == DRUMS:
            delta = 0.0
        else:
            voices = chords[(n.tick, n.channel)]
            if len(voices) >= 3:
                delta += 5 if n.pitch == max(voices) else (-3 if n.pitch != min(voices) else 0)
            delta += rng.randint(-3, 3)
        out.append(Note(n.tick, n.duration_ticks, n.channel, n.pitch, max(40, min(120, round(n.velocity + delta))),
                        n.chromatic))
    return out


def _humanise(notes: list[Note], rng: Random) -> list[Note]:
    """A few ticks of ensemble feel: a chord's tones spread after its onset, off-beat notes a
    little late; single lines on the beat and drums stay put. Ends stay where they were."""
    out = []
    for n in notes:
        shift = 0
        if n.channel != DRUMS:
            if n.tick % BEAT != 0:
                shift = rng.randint(2, 9)         # lay back off the beat
            elif n.channel in _CHORD_CHANNELS:
                shift = rng.randint(0, 6)         # a section never starts as one machine
        shift = min(shift, max(0, n.duration_ticks - 1))
        out.append(Note(n.tick + shift, n.duration_ticks - shift, n.channel, n.pitch, n.velocity, n.chromatic))
    return out


def arrange_bar(plan: BarPlan) -> Part:
    """The notes of one bar: only the planned layers, each on its channel with its patch.

    Every melodic note is in the key's scale or is a tone of the planned chord flagged
    ``chromatic``; drums (channel 9) are exempt. ValueError for an unknown style, layer,
    key or chord numeral.
    """
    _check(plan)
    style = get_style(plan.style)
    h = harmony(plan.key, plan.mode, plan.chord)
    # No approach notes under a stinger: its line is voiced on the bar's chord, not around it.
    nxt = harmony(plan.key, plan.mode, plan.next_chord) if plan.next_chord and not plan.stinger_over else None
    tier = intensity_tier(_clamp(plan.intensity, 0.0, 1.0))
    vstep = valence_step(_clamp(plan.valence, -1.0, 1.0))
    previous = set(plan.layers if plan.layers_from is None else plan.layers_from)
    notes: list[Note] = []
    programs: dict[int, tuple[int, int]] = {}
    controls: list[Control] = []
    for layer in LAYERS:  # fixed order, whatever order the plan lists them in
        sounding = layer in plan.layers
        if sounding and layer == "melody" and plan.stinger_over and plan.theme is None:
            continue  # the stinger takes the lead
        if not sounding and layer not in previous:
            continue
        if not sounding:
            layer_notes, sound, own = _exit(layer, plan, style, h, vstep)
        elif plan.final:
            layer_notes, sound, own = _final(layer, plan, style, h, tier, vstep)
        else:
            layer_notes, sound, own = _layer(layer, plan, style, h, nxt, tier, vstep)
        channel = CHANNELS[layer]
        level = 110 if channel == DRUMS else _expression(_clamp(plan.intensity, 0.0, 1.0))
        entering = sounding and (layer not in previous or plan.opening)
        curve = own if not sounding else _envelope(plan, channel, level, own, entering=entering)
        rng = Random(plan.seed * 16 + LAYERS.index(layer) + 8)
        notes += _humanise(_swing(_shape_velocities(list(layer_notes), plan, rng), style.swing), rng)
        programs[channel] = sound.gm
        opening = next((value for tick, _, cc, value in curve if tick == 0 and cc == 11), level)
        controls += channel_strip(channel, sound, style.reverb, opening)
        controls += [c for c in curve if not (c[0] == 0 and c[2] == 11)]
    return Part(
        notes=tuple(clip_overlaps(notes)),  # one sounding note per key
        programs=programs,
        length_ticks=plan.beats_per_bar * TICKS_PER_BEAT,
        controls=tuple(controls),
    )


def arrange_pickup(plan: BarPlan) -> Part:
    """A one-beat anacrusis into the bar after ``plan`` (whose key it is in): four sixteenths
    climbing through the dominant to the leading tone, a bass on the dominant and a soft
    roll swelling into the downbeat. The first sound of a replayed piece."""
    style = get_style(plan.style)
    h = harmony(plan.key, plan.mode, "V")
    strings, bass, kit = style.strings, style.bass, style.kit
    tonic = nearest(h.tonic, strings.center + 2)
    top = step(tonic, h.line, -1)            # the leading tone (raised in minor: V's third)
    run = [step(top, h.line, -k) for k in (3, 2, 1, 0)]
    sixteenth = BEAT // 4
    notes = [h.note(i * sixteenth, sixteenth - 10, CHANNELS["strings"], p, 48 + 8 * i) for i, p in enumerate(run)]
    low = fold(nearest(h.root, bass.center), bass.low, bass.high)
    notes.append(h.note(0, BEAT - 20, CHANNELS["bass"], low, 52))
    timp = timpani_key(kit, h.root)
    notes += roll(timp if timp is not None else kit.snare, 0, BEAT, v0=42, v1=72)
    controls: list[Control] = []
    for layer, sound in (("strings", strings), ("bass", bass)):
        channel = CHANNELS[layer]
        controls += channel_strip(channel, sound, style.reverb, 70)
        controls += [(t, channel, 11, 70 + 30 * t // BEAT) for t in range(EIGHTH // 2, BEAT, EIGHTH // 2)]
    controls += channel_strip(DRUMS, kit, style.reverb, 100)
    return Part(notes=tuple(clip_overlaps(notes)),
                programs={CHANNELS["strings"]: strings.gm, CHANNELS["bass"]: bass.gm, DRUMS: kit.gm},
                length_ticks=BEAT, controls=tuple(controls))
