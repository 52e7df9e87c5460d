"""Stingers: the one-off gestures a match event triggers over the running score.

Each kind is one musical idea written for any key and style, on the two stinger channels
(a high voice and a low voice) plus drums:

* goal: a fanfare on the tonic triad, then the bVI-bVII-I cadence (the "level complete"
  lift; in minor it lands on a major tonic, the Picardy third) with a crash;
* goal_against: a line falling by step, slowing down and fading onto the minor iv;
* near_miss: a rising line and roll that stop dead on the dominant before resolving;
* card: one short low stab, the key's tonic against the Neapolitan chord (b2);
* var: a ticking two-note ostinato over a heartbeat, never resolving;
* full_time: IV (iv) - V7 - I under a cymbal roll, the final chord held.

Chromatic notes are tones of a planned chord (bVI, bVII, the raised leading tone, the
Neapolitan), flagged like those of a bar.
"""

from __future__ import annotations

from collections.abc import Callable
from random import Random

from consumers.music.drums import roll, timpani_key, tom_keys
from consumers.music.harmony import Harmony, drum, harmony
from consumers.music.midi import clip_overlaps
from consumers.music.mix import Control, channel_strip, swell
from consumers.music.styles import DrumKit, StingerVoices, get_style
from consumers.music.types import CHANNELS, STINGERS, TICKS_PER_BEAT, Note, Part, StingerPlan
from consumers.music.voicing import fold, nearest, step, window

__all__ = ["arrange_stinger"]

HI = CHANNELS["stinger"]
LO = CHANNELS["stinger_low"]
B = TICKS_PER_BEAT

Figure = tuple[list[Note], int, list[Control]]  # notes, length in ticks, extra controls


def _tonic(plan: StingerPlan) -> Harmony:
    return harmony(plan.key, plan.mode, "I" if plan.mode == "MAJOR" else "i")


def _low(h: Harmony, v: StingerVoices, pc: int, tick: int, dur: int, vel: float) -> list[Note]:
    """The low voice on ``pc``: one note (one stroke on timpani), or a power chord on a guitar."""
    pitch = fold(nearest(pc, v.low.center), v.low.low, v.low.high)
    notes = [h.note(tick, dur, LO, pitch, vel)]
    if v.power:
        if h.allows(pc + 7):
            notes.append(h.note(tick, dur, LO, pitch + 7, vel - 4))
        notes.append(h.note(tick, dur, LO, pitch + 12, vel - 6))
    return notes


def _timpani_roll(h: Harmony, v: StingerVoices, pc: int, start: int, end: int, v0: float, v1: float) -> list[Note]:
    """Repeated strokes on the low voice (a roll on timpani, a pulse on anything else)."""
    rate = B // 8 if v.roll else B // 2
    span = max(1, end - start)
    pitch = fold(nearest(pc, v.low.center), v.low.low, v.low.high)
    return [h.note(t, rate - 10, LO, pitch, v0 + (v1 - v0) * (t - start) / span)
            for t in range(start, end, rate)]


def _under(h: Harmony, top: int) -> list[int]:
    """The chord's other tones in close position just under ``top``."""
    return sorted({top - ((top - pc) % 12 or 12) for pc in h.tones if pc != top % 12})


def _goal(plan: StingerPlan, v: StingerVoices, kit: DrumKit, base: float) -> Figure:
    tonic = _tonic(plan)
    lift = [harmony(plan.key, plan.mode, n) for n in ("bVI", "bVII", "I")]
    t = nearest(tonic.tonic, v.high.center)
    five = t - 5
    third = t + ((tonic.third or tonic.root) - tonic.tonic) % 12
    notes = [tonic.note(i * B // 3, B // 3 - 20, HI, five, base + (8 if i == 0 else 0)) for i in range(3)]
    notes += [tonic.note(B, 3 * B // 2 - 20, HI, t, base + 10), tonic.note(5 * B // 2, B // 2 - 20, HI, third, base),
              tonic.note(3 * B, B - 20, HI, t + 7, base + 6)]
    notes += [tonic.note(B, 3 * B // 2 - 20, HI, p, base - 12) for p in _under(tonic, t)]
    for i, h in enumerate(lift):  # parallel triads, roots on top, climbing to the tonic
        top = t + (h.root - tonic.tonic) % 12 if i < 2 else t + 12
        start, dur = (4 + i) * B, (B - 30 if i < 2 else 5 * B // 2)
        notes += [h.note(start, dur, HI, p, base + 4 + 6 * i) for p in [top, *_under(h, top)]]
        notes += _low(h, v, h.root, start, dur, base + 6 * i)
    notes += _low(tonic, v, tonic.tonic, B, 3 * B // 2, base) + _low(tonic, v, tonic.dominant, 3 * B, B, base)
    drums = [drum(0, B, kit.crash, base + 14), drum(0, B // 4, kit.kick, base + 10)]
    drums += [drum(b * B, B // 4, kit.kick, base - 4) for b in (1, 2)]
    drums += roll(kit.snare, 3 * B, 4 * B, v0=base - 20, v1=base + 8)
    drums += [drum(b * B, B // 4, k, base + 6) for b in (4, 5) for k in (kit.kick, kit.snare)]
    drums += [drum(6 * B, 2 * B, kit.crash, base + 16), drum(6 * B, B // 4, kit.kick, base + 12),
              drum(6 * B, B, kit.crash2, base + 6)]
    return notes + drums, 8 * B, []


def _goal_against(plan: StingerPlan, v: StingerVoices, kit: DrumKit, base: float) -> Figure:
    tonic = _tonic(plan)
    segments = [tonic, harmony(plan.key, plan.mode, "V7"), tonic, harmony(plan.key, plan.mode, "V"),
                harmony(plan.key, plan.mode, "iv")]  # iv: the minor plagal colour, even in major
    onsets = [0, B, 9 * B // 4, 15 * B // 4, 11 * B // 2]  # each gap longer: running out of air
    end = 8 * B
    pitch = nearest(tonic.dominant, v.high.center + 2)
    notes: list[Note] = []
    drums: list[Note] = []
    for i, (h, onset) in enumerate(zip(segments, onsets)):
        if i:
            pitch = step(pitch, h.line, -1)
        last = i == len(onsets) - 1
        nxt = end if last else onsets[i + 1]
        dur = nxt - onset - (0 if last else B // 6)
        notes.append(h.note(onset, dur, HI, pitch, base - 7 * i))
        toms = tom_keys(kit, h)
        drums.append(drum(onset, B // 2, toms[min(len(toms) - 1, i * (len(toms) - 1) // 4)], base - 5 * i))
    final = segments[-1]
    notes += [final.note(onsets[-1], end - onsets[-1], HI, p, base - 34) for p in _under(final, pitch)]
    notes += _low(tonic, v, tonic.tonic, 0, B - 40, base - 4)
    notes += _low(segments[3], v, segments[3].root, onsets[3], onsets[4] - onsets[3] - 40, base - 18)
    notes += _low(final, v, final.root, onsets[4], end - onsets[4], base - 26)
    drums.append(drum(onsets[-1], B, kit.kick, base - 20))
    return notes + drums, end, []


def _near_miss(plan: StingerPlan, v: StingerVoices, kit: DrumKit, base: float) -> Figure:
    tonic = _tonic(plan)
    dominant = harmony(plan.key, plan.mode, "V")
    cut = 7 * B // 2  # the ball goes wide: everything stops on the "and" of four, unresolved
    pitch = nearest(tonic.tonic, v.high.center - 5)
    notes: list[Note] = []
    for i, t in enumerate(range(0, cut, B // 2)):
        h = tonic if t < 2 * B else dominant
        if i:
            pitch = step(pitch, h.line, 1)
        notes.append(h.note(t, B // 2 - 10, HI, pitch, base - 30 + 6 * i))
    for h, start, end in ((tonic, 0, 2 * B), (dominant, 2 * B, cut)):
        notes += [h.note(start, end - start, HI, p, base - 25) for p in window(h.tones, v.high.center - 12)]
    notes += _timpani_roll(tonic, v, tonic.dominant, 0, cut, base - 35, base + 10)
    drums = roll(kit.crash2, 0, cut, v0=42, v1=base, accelerate=False)
    drums += roll(kit.snare, 2 * B, cut, v0=base - 30, v1=base + 10)
    return notes + drums, 4 * B, swell(HI, 50, 0, cut) + swell(LO, 60, 0, cut)


def _card(plan: StingerPlan, v: StingerVoices, kit: DrumKit, base: float) -> Figure:
    tonic = _tonic(plan)
    stab = harmony(plan.key, plan.mode, "bII")  # Neapolitan over the tonic: a planned b2 clash
    voices = window(stab.tones, v.high.center - 2)
    bottom = voices[0] - ((voices[0] - tonic.tonic) % 12 or 12)
    notes = [stab.note(0, B // 3, HI, p, base + 14) for p in (bottom, *voices)]
    notes += _low(tonic, v, tonic.tonic, 0, 3 * B // 2, base + 10)
    hit = timpani_key(kit, tonic.tonic)
    drums = [drum(0, B, kit.crash, base + 10), drum(0, B // 4, kit.kick, base + 14),
             drum(0, B // 4, kit.snare, base + 4)]
    if hit is not None:
        drums.append(drum(0, B, hit, base + 14))
    return notes + drums, 4 * B, []


def _var(plan: StingerPlan, v: StingerVoices, kit: DrumKit, base: float) -> Figure:
    tonic = _tonic(plan)
    end = 8 * B
    five = nearest(tonic.dominant, v.high.center)
    six = step(five, tonic.line, 1)  # b6 in minor, 6 in major: the tick and the tock
    notes = [tonic.note(t, B // 4, HI, five if (t // (B // 2)) % 2 == 0 else six, base - 12 + 8 * t / end)
             for t in range(0, end, B // 2)]
    for beat in range(0, 8, 2):  # a heartbeat: lub-dub every two beats
        notes += _low(tonic, v, tonic.tonic, beat * B, B // 3, base - 4)
        notes += _low(tonic, v, tonic.tonic, beat * B + B * 3 // 8, B // 3, base - 16)
    drums = [drum(b * B, B // 4, kit.wood_hi if b % 2 == 0 else kit.wood_lo, base - 6) for b in range(8)]
    drums += [drum(b * B + B // 2, B // 4, kit.hat, base - 24) for b in range(8)]
    return notes + drums, end, []


def _full_time(plan: StingerPlan, v: StingerVoices, kit: DrumKit, base: float) -> Figure:
    tonic = _tonic(plan)
    cadence = [(harmony(plan.key, plan.mode, "IV" if plan.mode == "MAJOR" else "iv"), 0, B),
               (harmony(plan.key, plan.mode, "V7"), B, 2 * B), (tonic, 2 * B, 6 * B)]
    notes: list[Note] = []
    for i, (h, start, end) in enumerate(cadence):
        voices = window(h.tones, v.high.center)
        last = i == len(cadence) - 1
        top = [voices[-1] + 12] if last and voices[-1] + 12 <= v.high.high + 7 else []
        notes += [h.note(start, end - start - (0 if last else 20), HI, p, base + (10 if last else 0))
                  for p in (*voices, *top)]
        if v.roll and i == 1:  # timpani roll on the dominant, into the final chord
            notes += _timpani_roll(h, v, h.root, start, end, base - 20, base + 6)
        else:
            notes += _low(h, v, h.bass, start, end - start - (0 if last else 20), base + (8 if last else 0))
    drums = roll(kit.crash2, 0, 2 * B, v0=45, v1=base + 6, accelerate=False)
    drums += [drum(2 * B, 3 * B, kit.crash, base + 16), drum(2 * B, B // 4, kit.kick, base + 12)]
    hit = timpani_key(kit, tonic.tonic)
    if hit is not None:
        drums.append(drum(2 * B, B, hit, base + 10))
    return notes + drums, 8 * B, []


_FIGURES: dict[str, Callable[[StingerPlan, StingerVoices, DrumKit, float], Figure]] = {
    "goal": _goal, "goal_against": _goal_against, "near_miss": _near_miss,
    "card": _card, "var": _var, "full_time": _full_time,
}
assert set(_FIGURES) == set(STINGERS)


def arrange_stinger(plan: StingerPlan) -> Part:
    """The notes of a stinger on the stinger, stinger_low and drum channels, in the plan's key.

    Deterministic: the same plan gives the same Part (velocity humanisation is seeded with
    ``plan.seed``). ValueError for an unknown kind, style or key.
    """
    if plan.kind not in _FIGURES:
        raise ValueError(f"unknown stinger kind {plan.kind!r}; expected one of {STINGERS}")
    style = get_style(plan.style)
    voices = style.stingers[plan.kind]
    intensity = max(0.0, min(1.0, plan.intensity))
    notes, length, curves = _FIGURES[plan.kind](plan, voices, style.kit, 70 + 40 * intensity)
    rng = Random(plan.seed)
    human = [Note(n.tick, n.duration_ticks, n.channel, n.pitch,
                  max(40, min(120, n.velocity + rng.randint(-2, 2))), n.chromatic) for n in sorted(notes)]
    expression = round(96 + 31 * intensity)
    controls = (channel_strip(HI, voices.high, style.reverb + 10, expression)
                + channel_strip(LO, voices.low, style.reverb + 10, expression)
                # the drum channel is shared with the running bar: leave its mix as the bar set it
                + channel_strip(CHANNELS["drums"], style.kit, style.reverb, 110) + curves)
    return Part(
        notes=tuple(clip_overlaps(human)),  # one sounding note per key
        programs={HI: voices.high.gm, LO: voices.low.gm, CHANNELS["drums"]: style.kit.gm},
        length_ticks=length,
        controls=tuple(controls),
    )
