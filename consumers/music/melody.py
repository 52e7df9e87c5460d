"""The tune: motifs that belong to a phrase, re-sung over each bar's chord.

A crowd remembers a tune because it repeats. The motifs' rhythm and contour come from the
seed's *family* (``seed // 8``), so the eight bars of a phrase share their ideas while the
chords under them change; ``seed % 8`` is the bar's place in the phrase, which picks the
motif (a b a c, twice), shapes the arch of the line and holds the last note of bars 3 and
7 (the cadences). Strong beats land on chord tones, the notes between walk the chord's
scale, and the last note of a bar leans by step into the next bar's chord when the
director knows it. Intensity changes how much is sung, not what: long notes at low
intensity, the motif at mid, driving repeated eighths up to an octave higher at high.
"""

from __future__ import annotations

from dataclasses import dataclass
from random import Random

from consumers.music.harmony import Harmony
from consumers.music.styles import Instrument
from consumers.music.types import TICKS_PER_BEAT, Note
from consumers.music.voicing import snap, step

__all__ = ["Motif", "melody_notes", "motif", "theme_motifs", "theme_notes"]

S = TICKS_PER_BEAT // 4  # a sixteenth

# Rhythm cells of one beat: (onset, duration) in sixteenths. "half" spans two beats.
_CELLS: dict[str, tuple[tuple[int, int], ...]] = {
    "quarter": ((0, 4),),
    "eighths": ((0, 2), (2, 2)),
    "dotted": ((0, 3), (3, 1)),
    "snap": ((0, 1), (1, 1), (2, 2)),
    "gallop": ((0, 2), (2, 1), (3, 1)),
    "upbeat": ((2, 2),),
    "half": ((0, 8),),
}
_FIRST = ("quarter", "eighths", "dotted")
_INNER = ("quarter", "eighths", "dotted", "snap", "gallop", "upbeat", "half", "eighths", "quarter")
_STEPS = (-2, -1, -1, 1, 1, 2, 0, 3, -3, 1, -1)
# Scale steps above the register centre where each bar of the phrase starts: an arch that
# climbs to bar 6 and comes home for the cadence.
_ARCH = (0, 2, 3, 1, 0, 3, 5, 0)
# Which of the family's three motifs each bar of the phrase sings: a b a c | a b a c, the
# period form of a terrace chant (statement, answer, statement, cadence).
_FORM = (0, 1, 0, 2, 0, 1, 0, 2)


@dataclass(frozen=True)
class Motif:
    """A bar-long idea independent of key and chord: when to sing and which way to move."""

    rhythm: tuple[tuple[int, int], ...]  # (onset, duration) in ticks
    steps: tuple[int, ...]               # scale steps from the previous note (first unused)


def motif(family: int, beats: int, index: int = 0) -> Motif:
    """Motif ``index`` (0..2) of a seed family for a bar of ``beats`` beats."""
    rng = Random(3 * family + index)
    rhythm: list[tuple[int, int]] = []
    beat = 0
    while beat < beats:
        names = _FIRST if beat == 0 else _INNER
        name = rng.choice(names)
        if name == "half" and beat + 2 > beats:
            name = "quarter"
        rhythm += [((beat * 4 + on) * S, dur * S) for on, dur in _CELLS[name]]
        beat += 2 if name == "half" else 1
    steps: list[int] = [0]
    height = 0
    for _ in rhythm[1:]:
        move = rng.choice(_STEPS)
        if abs(height + move) > 5:  # keep the tune singable: reflect at a sixth from home
            move = -move
        height += move
        steps.append(move)
    return Motif(tuple(rhythm), tuple(steps))


def _varied(m: Motif, seed: int) -> Motif:
    """The family motif with at most one step nudged: bars of a phrase rhyme, not repeat."""
    rng = Random(seed)
    if len(m.steps) < 3 or rng.random() >= 0.35:
        return m
    i = rng.randrange(1, len(m.steps))
    steps = list(m.steps)
    steps[i] += rng.choice((-1, 1))
    return Motif(m.rhythm, tuple(steps))


def _events(m: Motif, tier: int, bar_end: int, cadence: bool) -> list[tuple[int, int, int]]:
    """(onset, duration, step) after intensity: fewer, longer notes low; split notes high.

    A cadence bar stops moving at the half bar so its last note is held.
    """
    events = [(on, dur, st) for (on, dur), st in zip(m.rhythm, m.steps)]
    if cadence:
        events = [e for e in events if e[0] <= bar_end // 2] or events[:1]
        on, _, st = events[-1]
        events[-1] = (on, bar_end - on, st)
    if tier == 0:
        kept = [e for e in events if e[0] % (2 * TICKS_PER_BEAT) == 0] or events[:1]
        ends = [e[0] for e in kept[1:]] + [bar_end]
        return [(on, end - on, st) for (on, _, st), end in zip(kept, ends)]
    if tier == 2:
        out = []
        for on, dur, st in events:
            if dur >= TICKS_PER_BEAT:
                out += [(on, TICKS_PER_BEAT // 2, st), (on + TICKS_PER_BEAT // 2, dur - TICKS_PER_BEAT // 2, 0)]
            else:
                out.append((on, dur, st))
        return out
    return events


def _inside(pitch: int, inst: Instrument) -> int:
    """``pitch`` moved by octaves into the instrument's range (keeps its pitch class)."""
    while pitch > inst.high and pitch - 12 >= inst.low:
        pitch -= 12
    while pitch < inst.low:
        pitch += 12
    return pitch


def _center(inst: Instrument, tier: int, valence_step: int) -> int:
    """Where the line sits: brighter with valence, up to an octave higher at high intensity."""
    center = inst.center + 3 * valence_step
    if tier == 2:
        center = max(center, min(center + 12, inst.high - 5))
    return max(inst.low + 5, min(center, inst.high - 5))


def _anchor(h: Harmony, inst: Instrument, tier: int, valence_step: int, position: int) -> int:
    """The first note of a bar: the chord tone at the phrase arch's height for ``position``."""
    center = _center(inst, tier, valence_step)
    return _inside(snap(step(snap(center, h.line), h.line, _ARCH[position]), h.tones), inst)


def melody_notes(h: Harmony, nxt: Harmony | None, inst: Instrument, *, channel: int, beats: int,
                 tier: int, intensity: float, valence_step: int, seed: int) -> tuple[Note, ...]:
    """The melody of one bar over ``h``, leaning into ``nxt`` (the next bar's chord) if known."""
    bar_end = beats * TICKS_PER_BEAT
    family, position = divmod(seed, 8)
    cadence = position in (3, 7)
    events = _events(_varied(motif(family, beats, _FORM[position]), seed), tier, bar_end, cadence)
    pitch = _anchor(h, inst, tier, valence_step, position)
    rng = Random(seed * 16 + 3)
    base = 62 + 40 * intensity
    notes: list[Note] = []
    for i, (onset, dur, move) in enumerate(events):
        strong = onset % (2 * TICKS_PER_BEAT) == 0
        if i > 0:
            candidate = step(pitch, h.line, move) if move else pitch
            if not inst.low <= candidate <= inst.high:
                candidate = step(pitch, h.line, -move) if move else pitch
            pitch = _inside(snap(candidate, h.tones, prefer=move) if strong else candidate, inst)
        last = i == len(events) - 1
        if last and cadence:
            pitch = _inside(snap(pitch, (h.root,) if position == 7 else h.tones), inst)
        elif last and nxt is not None and onset >= bar_end - TICKS_PER_BEAT and i > 0:
            # Lean by step into the note the next bar will start on (seeds advance by one a bar).
            target = _anchor(nxt, inst, tier, valence_step, (position + 1) % 8)
            if target != pitch:
                pitch = _inside(step(target, h.line, -1 if pitch < target else 1), inst)
        accent = 8 if strong else 0
        notes.append(h.note(onset, max(S, dur * 23 // 25), channel, pitch,
                            base + accent - (6 if last and cadence else 0) + rng.randint(-3, 3)))
    return tuple(notes)


# -- themes -----------------------------------------------------------------------------------
# A theme's first bar: a rhythm that is easy to recognise (the head), then an answer. The
# home side's heads march on the beat; the away side's lean on long notes and off-beats, so
# the two tunes never share a head.
_THEME_HEADS = {
    True: (("dotted", "eighths", "quarter", "quarter"),
           ("quarter", "dotted", "eighths", "quarter"),
           ("eighths", "quarter", "dotted", "quarter")),
    False: (("half", "quarter", "eighths"),
            ("quarter", "snap", "half"),
            ("upbeat", "quarter", "half")),
}
_THEME_ANSWERS = (
    ("eighths", "eighths", "half"),
    ("dotted", "quarter", "half"),
    ("quarter", "eighths", "half"),
)


def theme_motifs(seed: int, beats: int, *, rising: bool) -> tuple[Motif, Motif]:
    """The two bars of a side's theme: a head and an answer that ends on a held note.

    The head opens with a leap (up a fourth or fifth for a rising, heroic theme; down for a
    falling one) and the answer walks back; the same seed always gives the same theme, so
    it is recognised each time it returns.
    """
    rng = Random(seed)
    bars = []
    heads = _THEME_HEADS[rising]
    for cells in (heads[rng.randrange(len(heads))], _THEME_ANSWERS[rng.randrange(len(_THEME_ANSWERS))]):
        rhythm: list[tuple[int, int]] = []
        beat = 0
        for name in cells:
            if beat >= beats:
                break
            if name == "half" and beat + 2 > beats:
                name = "quarter"
            rhythm += [((beat * 4 + on) * S, dur * S) for on, dur in _CELLS[name]]
            beat += 2 if name == "half" else 1
        bars.append(rhythm)
    leap = rng.choice((3, 4)) * (1 if rising else -1)
    head_steps = [0, leap] + [rng.choice((-1, 1, -1, 2)) * (1 if rising else -1) for _ in bars[0][2:]]
    answer_steps = [0] + [rng.choice((-1, -1, 1, -2)) * (1 if rising else -1) for _ in bars[1][1:]]
    return Motif(tuple(bars[0]), tuple(head_steps[:len(bars[0])])), Motif(tuple(bars[1]), tuple(answer_steps))


def theme_notes(h: Harmony, inst: Instrument, *, channel: int, beats: int, intensity: float, valence_step: int,
                seed: int, theme_bar: int, statement: int, rising: bool) -> tuple[Note, ...]:
    """One bar of a side's theme over ``h``: its rhythm always, its pitches developed.

    Each statement starts a step of the arch higher (0, a third, a fifth above the first),
    so the theme grows as the match goes on, and the second bar ends on the chord's root.
    Strong beats land on chord tones, the rest walks the chord's scale.
    """
    bar_end = beats * TICKS_PER_BEAT
    head, answer = theme_motifs(seed, beats, rising=rising)
    m = head if theme_bar == 0 else answer
    tier = 2 if intensity >= 0.67 else 1
    center = _center(inst, tier, valence_step)
    lift = 2 * (statement % 3)
    pitch = _inside(snap(step(snap(center - (0 if rising else -3), h.line), h.line, lift), h.tones), inst)
    rng = Random(seed * 16 + 5 + theme_bar)
    base = 70 + 40 * intensity
    notes: list[Note] = []
    for i, ((onset, dur), move) in enumerate(zip(m.rhythm, m.steps)):
        strong = onset % (2 * TICKS_PER_BEAT) == 0
        if i > 0 and move:
            candidate = step(pitch, h.line, move)
            if not inst.low <= candidate <= inst.high:
                candidate = step(pitch, h.line, -move)
            pitch = _inside(snap(candidate, h.tones, prefer=move) if strong else candidate, inst)
        last = i == len(m.rhythm) - 1
        if last and theme_bar == 1:
            pitch = _inside(snap(pitch, (h.root,)), inst)
            dur = bar_end - onset
        notes.append(h.note(onset, max(S, dur * 23 // 25), channel, pitch,
                            base + (8 if strong else 0) + rng.randint(-2, 2)))
    return tuple(notes)
