"""The accompaniment layers of a bar: pad, bass, strings and brass.

Each function writes one layer from the bar's harmony and the director's three dials.
Intensity sets how busy a layer is (held chords, then pulses on the beat, then driving
eighths and sixteenths), tension adds anticipation (a dominant pedal in the bass, a 4-3
suspension in the pad, strings tremolo climbing through inversions, a brass swell) and
valence moves voicings up and brightens them (an added ninth) or down and darker (a minor
seventh). Nothing here remembers the previous bar: see voicing.py for why that still
leads voices smoothly.
"""

from __future__ import annotations

from consumers.music.harmony import Harmony
from consumers.music.styles import Instrument, Style
from consumers.music.types import TICKS_PER_BEAT, Note
from consumers.music.voicing import chord_pitches, fold, nearest, power_chord, step, window

__all__ = ["bass_notes", "brass_notes", "chord_voicing", "pad_notes", "strings_notes", "suspension"]

BEAT = TICKS_PER_BEAT
EIGHTH = BEAT // 2
SIXTEENTH = BEAT // 4


def chord_voicing(h: Harmony, inst: Instrument, valence_step: int) -> tuple[int, ...]:
    """Close voicing around the instrument's centre, moved and coloured by valence.

    Positive valence adds the ninth above a major triad, negative the minor seventh above a
    minor triad, both only when the key allows them over this chord.
    """
    voices = list(window(h.tones, inst.center + 5 * valence_step))
    color = None
    if valence_step > 0 and h.third == (h.root + 4) % 12 and len(h.tones) == 3:
        color = (h.root + 2) % 12
    elif valence_step < 0 and h.third == (h.root + 3) % 12 and len(h.tones) == 3:
        color = (h.root + 10) % 12
    if color is not None and color in h.line:
        top = voices[-1] + ((color - voices[-1]) % 12 or 12)
        if top <= inst.high:
            voices.append(top)
    return tuple(voices)


def suspension(h: Harmony, voices: tuple[int, ...]) -> tuple[int, int] | None:
    """(third's pitch, the fourth that delays it) for a planned 4-3 suspension, if possible.

    Only over a chord with a third whose fourth above the root is in the chord's scale and
    is not itself a chord tone, so the delayed note is always a diatonic non-chord tone.
    """
    if h.third is None:
        return None
    fourth = (h.root + 5) % 12
    if fourth not in h.line or fourth in h.tones:
        return None
    third = next((p for p in voices if p % 12 == h.third), None)
    if third is None:
        return None
    return third, third + ((fourth - h.third) % 12)


def pad_notes(h: Harmony, style: Style, *, channel: int, beats: int, tier: int, intensity: float,
              tension: float, valence_step: int) -> tuple[Note, ...]:
    """Held chords (power-chord strums for a guitar pad), with a 4-3 suspension under tension."""
    inst = style.pad
    bar_end = beats * BEAT
    vel = 50 + 38 * intensity
    if style.pad_voicing == "power":
        voices = power_chord(h.root, h.fifth, h.third, inst.center + 3 * valence_step)
        voices = tuple(fold(p, inst.low, inst.high) for p in voices)
        if tier == 0:
            hits = [(0, bar_end)]
        elif tier == 1:
            push = min(bar_end, 3 * EIGHTH)  # the "and" of two: a rock push
            hits = [(0, push), (push, bar_end - push)] if push < bar_end else [(0, bar_end)]
        else:
            hits = [(t, EIGHTH * 5 // 6) for t in range(0, bar_end, EIGHTH)]  # palm-muted chugs
        return tuple(h.note(t, d, channel, p, vel + (10 if t % BEAT == 0 else 0))
                     for t, d in hits for p in voices)
    voices = chord_voicing(h, inst, valence_step)
    sus = suspension(h, voices) if tension >= 0.5 else None
    notes = []
    for p in voices:
        if sus is not None and p == sus[0]:
            half = (beats // 2) * BEAT or BEAT
            notes.append(h.note(0, half, channel, sus[1], vel + 6))     # the dissonance, leaned on
            notes.append(h.note(half, bar_end - half, channel, p, vel - 4))  # resolved, softer
        else:
            notes.append(h.note(0, bar_end, channel, p, vel))
    return tuple(notes)


def _approach(h: Harmony, nxt: Harmony | None, pitch: int) -> int | None:
    """A note one step of the chord's scale from the next bass note, on the side we come from."""
    if nxt is None:
        return None
    target = nearest(nxt.bass, pitch)
    if target == pitch:
        return None
    return step(target, h.line, -1 if pitch < target else 1)


def bass_notes(h: Harmony, nxt: Harmony | None, style: Style, *, channel: int, beats: int, tier: int,
               intensity: float, tension: float) -> tuple[Note, ...]:
    """The bass: roots on the beat, a fifth and an approach note; a pulsing dominant pedal
    under tension; the feel (legato, off-beat house, driving rock eighths) from the style."""
    inst = style.bass
    bar_end = beats * BEAT
    pedal = tension >= 0.5
    pc = h.dominant if pedal else h.bass
    root = fold(nearest(pc, inst.center), inst.low, inst.high)
    fifth_pc = None if pedal else h.fifth
    fifth = None if fifth_pc is None else (root + 7 if root + 7 <= inst.high else root - 5)
    approach = None if pedal else _approach(h, nxt, root)
    vel = 58 + 45 * intensity
    hits: list[tuple[int, int, int]] = []  # (tick, duration, pitch)
    eighths = range(0, bar_end, EIGHTH)
    if tier == 0:
        hits = [(0, bar_end, root)]
    elif pedal:
        hits = [(t, EIGHTH - 20, root) for t in eighths]  # the held breath: one note, pulsing
    elif style.bass_feel == "offbeat":
        if tier == 1:
            hits = [(t + EIGHTH, EIGHTH - 30, root) for t in range(0, bar_end, BEAT)]
        else:
            octave = root + 12 if root + 12 <= inst.high else root  # the rolling octave of trance bass
            hits = [(t + s * SIXTEENTH, SIXTEENTH - 10, octave if s == 2 else root)
                    for t in range(0, bar_end, BEAT) for s in (1, 2, 3)]
    elif style.bass_feel == "drive":
        if tier == 1:
            hits = [(t, BEAT - 40, root) for t in range(0, bar_end - BEAT, BEAT)]
            hits += [(bar_end - BEAT, EIGHTH - 20, root), (bar_end - EIGHTH, EIGHTH - 20, root)]  # pickup
        else:
            hits = [(t, EIGHTH - 30, root) for t in eighths]
    else:  # legato
        if tier == 1:
            hits = [(t, BEAT - 30, root) for t in range(0, bar_end, BEAT)]
        else:
            hits = [(t, EIGHTH - 20, root) for t in eighths]
    if not pedal and tier >= 1 and len(hits) >= 3:
        hits.sort()
        if fifth is not None:
            t, d, _ = hits[-2]
            hits[-2] = (t, d, fifth)
        if approach is not None:
            t, d, _ = hits[-1]
            hits[-1] = (t, d, approach)
    return tuple(h.note(t, d, channel, p, vel + (8 if t == 0 else 0) + (4 if t % BEAT == 0 else 0))
                 for t, d, p in sorted(hits))


def strings_notes(h: Harmony, style: Style, *, channel: int, beats: int, tier: int, intensity: float,
                  tension: float, valence_step: int, family: int) -> tuple[tuple[Note, ...], Instrument]:
    """Strings and the patch they need: held chords, arpeggios, a driving sixteenth ostinato,
    or under tension a tremolo that climbs through the chord's inversions."""
    inst = style.strings
    bar_end = beats * BEAT
    center = inst.center + 4 * valence_step
    vel = 50 + 48 * intensity
    if tension >= 0.5:
        patch = style.tremolo or inst
        segments = beats if tension >= 0.75 else max(1, beats // 2)
        length = bar_end // segments
        notes = []
        for k in range(segments):
            voices = window(h.tones, min(center + 4 * k, patch.high - 6))
            start = k * length
            if style.tremolo is not None:
                notes += [h.note(start, length, channel, p, vel + 4 * k) for p in voices]
            else:  # no tremolo patch: measured sixteenths do the shimmering
                notes += [h.note(t, SIXTEENTH - 15, channel, p, vel + 4 * k)
                          for t in range(start, start + length, SIXTEENTH) for p in voices]
        return tuple(notes), patch
    if tier == 0:
        return tuple(h.note(0, bar_end, channel, p, vel) for p in window(h.tones, center)), inst
    if tier == 1:
        pool = chord_pitches(h.tones, center - 7, center + 9)
        shape = family % 3
        if shape == 0:
            order = list(range(len(pool))) + list(range(len(pool) - 2, 0, -1))  # up and down
        elif shape == 1:
            order = list(range(len(pool)))                                   # rising
        else:
            order = [0, 2, 1, 2]                                             # Alberti
        return tuple(h.note(t, EIGHTH - 10, channel, pool[order[i % len(order)] % len(pool)],
                            vel + (6 if t % BEAT == 0 else 0))
                     for i, t in enumerate(range(0, bar_end, EIGHTH))), inst
    low = nearest(h.root, center - 5)
    upper = h.fifth if h.fifth is not None else (h.third if h.third is not None else h.root)
    mid = low + ((upper - h.root) % 12)
    cell = (low, mid, low + 12, mid)
    return tuple(h.note(t, SIXTEENTH - 10, channel, cell[i % 4], vel + (10 if t % BEAT == 0 else 0))
                 for i, t in enumerate(range(0, bar_end, SIXTEENTH))), inst


# Brass hit rhythms for high intensity: (onset, duration) in eighths.
_HITS = (
    ((0, 2), (3, 1), (6, 2)),
    ((0, 4), (5, 1), (6, 1)),
    ((0, 1), (1, 2), (7, 1)),
)


def brass_notes(h: Harmony, style: Style, *, channel: int, beats: int, tier: int, intensity: float,
                tension: float, valence_step: int, family: int) -> tuple[Note, ...]:
    """Brass: soft held chords, then half-note swells, then stabs with the root on top;
    under tension one long chord whose crescendo is written as CC11 by the arranger."""
    inst = style.brass
    bar_end = beats * BEAT
    voices = window(h.tones, inst.center + 3 * valence_step)
    vel = 48 + 58 * intensity
    if tension >= 0.5 or tier == 0:
        return tuple(h.note(0, bar_end, channel, p, vel - 8) for p in voices)
    if tier == 1:
        half = max(BEAT, (beats // 2) * BEAT)
        starts = [0, half] if half < bar_end else [0]
        ends = starts[1:] + [bar_end]
        return tuple(h.note(s, e - s - 20, channel, p, vel - 4) for s, e in zip(starts, ends) for p in voices)
    top = next(p for p in voices if p % 12 == h.root) + 12  # the root doubled on top rings out
    stab = tuple(voices) + ((top,) if top > voices[-1] and top <= inst.high else ())
    return tuple(h.note(on * EIGHTH, dur * EIGHTH - 40, channel, p, vel + (8 if on == 0 else 0))
                 for on, dur in _HITS[family % len(_HITS)] if on * EIGHTH < bar_end for p in stab)
