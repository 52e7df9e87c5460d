"""Stingers: the one-off gestures a match event triggers over the running score.

A stinger sounds *in* the harmony, the way Elias's tonal stingers follow the music: its plan
carries the chords of the bars it overlaps (the running bar's, then the ones the director
committed to for it), and every pitched note is a tone of the chord it sounds over or a
scale tone at least a whole tone from each of that chord's tones — so a stinger never rubs a
semitone against the bar beneath it. Each kind is one musical idea written for any chord,
key and style, on the two stinger channels (a high voice and a low voice) plus drums:

* goal: a fanfare — a triplet pickup, the root, third and fifth climbing — with a crash and a
  snare roll into the next downbeat (where the home theme enters);
* goal_against: a line falling through the chord, each gap longer, fading onto the bar the
  director darkened for it (the minor iv);
* near_miss: a rising line and roll that stop dead on the dominant;
* card: one short, hard, low stab of the running chord;
* var: a ticking two-note ostinato over a heartbeat while the harmony holds its breath;
* full_time: a cymbal roll, the dominant seventh under a timpani roll, the final tonic held.

Chromatic notes are tones of a planned chord (the raised leading tone of a minor key's V7,
the borrowed iv in major), flagged like those of a bar.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from random import Random

from consumers.music.drums import roll, timpani_key, tom_keys
from consumers.music.harmony import Harmony, drum, harmony
from consumers.music.midi import clip_overlaps
from consumers.music.mix import Control, channel_strip, swell
from consumers.music.styles import DrumKit, StingerVoices, get_style
from consumers.music.types import CHANNELS, STINGERS, TICKS_PER_BEAT, Note, Part, StingerPlan
from consumers.music.voicing import fold, nearest, step, window

__all__ = ["arrange_stinger", "safe_tones", "stinger_ticks"]

HI = CHANNELS["stinger"]
LO = CHANNELS["stinger_low"]
B = TICKS_PER_BEAT

Figure = tuple[list[Note], int, list[Control]]  # notes, length in ticks, extra controls

# How many beats each kind lasts (full time lasts to the end of the bar after next).
_BEATS = {"goal": 4, "goal_against": 6, "near_miss": 4, "card": 2, "var": 8}


def stinger_ticks(kind: str, start_tick: int, bar_ticks: int) -> int:
    """The length of a stinger of ``kind`` starting ``start_tick`` into a bar of ``bar_ticks``."""
    if kind == "full_time":
        return bar_ticks - start_tick + 2 * bar_ticks
    if kind not in _BEATS:
        raise ValueError(f"unknown stinger kind {kind!r}; expected one of {STINGERS}")
    return _BEATS[kind] * B


def safe_tones(h: Harmony) -> tuple[int, ...]:
    """Pitch classes a line may use over ``h`` without a semitone against its chord: the chord
    tones and the scale tones a whole tone or more from each of them (over a major triad, the
    major pentatonic)."""
    def clear(pc: int) -> bool:
        return all((pc - tone) % 12 not in (1, 11) for tone in h.tones)
    return tuple(pc for pc in h.line if pc in h.tones or clear(pc))


@dataclass(frozen=True)
class _Track:
    """The harmony under a stinger: which chord sounds at each tick."""

    segments: tuple[tuple[int, int, Harmony], ...]
    avoid: tuple[tuple[int, int, int], ...] = ()  # (start, end, pitch class) already sounding

    def at(self, tick: int) -> Harmony:
        for start, end, h in self.segments:
            if start <= tick < end:
                return h
        return self.segments[-1][2]

    def end_of(self, tick: int) -> int:
        """The tick where the chord sounding at ``tick`` gives way."""
        for start, end, _ in self.segments:
            if start <= tick < end:
                return end
        return self.segments[-1][1]

    def note(self, tick: int, dur: int, channel: int, pitch: int, vel: float) -> list[Note]:
        """A note over the chord at ``tick``; held on while the next chord allows its pitch
        (as a chord tone or safe tone), cut where it would not. A pitch a semitone from a
        note already sounding moves to the nearest safe tone that is not (or is left out)."""
        h = self.at(tick)
        end = tick + dur
        clear = self._clear(pitch, tick, end, h)
        if clear is None:
            return []
        pitch = clear
        cut = self.end_of(tick)
        while cut < end:
            following = self.at(cut)
            if pitch % 12 not in safe_tones(following):
                end = cut
                break
            cut = self.end_of(cut)
        return [h.note(tick, max(1, end - tick), channel, pitch, vel)]


    def _clear(self, pitch: int, tick: int, end: int, h: Harmony) -> int | None:
        sounding = {pc for start, stop, pc in self.avoid if start < end and stop > tick}
        if not sounding:
            return pitch
        allowed = set(safe_tones(h))
        for candidate in sorted(range(pitch - 5, pitch + 6), key=lambda p: (abs(p - pitch), p)):
            if candidate % 12 in allowed and all((candidate - pc) % 12 not in (1, 11) for pc in sounding):
                return candidate
        return None


def _track(plan: StingerPlan, length: int) -> _Track:
    if not plan.harmony:
        tonic = "I" if plan.mode == "MAJOR" else "i"
        return _Track(((0, length, harmony(plan.key, plan.mode, tonic)),), plan.avoid)
    return _Track(tuple((start, end, harmony(key, mode, chord)) for start, end, key, mode, chord in plan.harmony),  # type: ignore[arg-type]
                  plan.avoid)


def _degree(h: Harmony, degree: int) -> int:
    """The chord's root (0), third (1) or fifth (2), falling back to the root."""
    pcs = {0: h.root, 1: h.third, 2: h.fifth}
    value = pcs.get(degree)
    return h.root if value is None else value


def _low(track: _Track, v: StingerVoices, pc: int, tick: int, dur: int, vel: float) -> list[Note]:
    """The low voice on ``pc`` (a tone of the chord at ``tick``): one note (one stroke on
    timpani), or a power chord on a guitar; cut where the next chord would clash with it."""
    h = track.at(tick)
    pitch = fold(nearest(pc, v.low.center), v.low.low, v.low.high)
    notes = track.note(tick, dur, LO, pitch, vel)
    if v.power:
        if (pc + 7) % 12 in h.tones:
            notes += track.note(tick, dur, LO, pitch + 7, vel - 4)
        notes += track.note(tick, dur, LO, pitch + 12, vel - 6)
    return notes


def _roll_on_roots(track: _Track, v: StingerVoices, start: int, end: int, v0: float, v1: float) -> list[Note]:
    """Repeated strokes of the low voice on each chord's root (a roll on timpani, a pulse otherwise)."""
    rate = B // 8 if v.roll else B // 2
    span = max(1, end - start)
    notes = []
    for t in range(start, end, rate):
        h = track.at(t)
        pitch = fold(nearest(h.root, v.low.center), v.low.low, v.low.high)
        notes.append(h.note(t, rate - 10, LO, pitch, v0 + (v1 - v0) * (t - start) / span))
    return notes


def _chord_under(h: Harmony, top: int) -> list[int]:
    """The chord's other tones in close position just under ``top``."""
    return sorted({top - ((top - pc) % 12 or 12) for pc in h.tones if pc != top % 12})


def _goal(plan: StingerPlan, v: StingerVoices, kit: DrumKit, base: float, track: _Track) -> Figure:
    first = track.at(0)
    root = nearest(first.root, v.high.center)
    notes: list[Note] = []
    five = nearest(_degree(first, 2), root - 4)
    for i in range(3):  # ta-ta-ta
        notes += track.note(i * B // 3, B // 3 - 20, HI, five, base + (8 if i == 0 else 0))
    # Then root, third and fifth climbing, each on the chord sounding under it.
    for tick, dur, degree, accent in ((B, 3 * B // 2, 0, 10), (5 * B // 2, B // 2, 1, 0), (3 * B, B, 2, 6)):
        h = track.at(tick)
        top = nearest(_degree(h, degree), root + (0 if degree == 0 else 5))
        notes += track.note(tick, dur - 20, HI, top, base + accent)
        notes += [n for p in _chord_under(h, top) for n in track.note(tick, dur - 20, HI, p, base - 12)]
        notes += _low(track, v, h.root, tick, dur - 20, base)
    drums = [drum(0, B, kit.crash, base + 14), drum(0, B // 4, kit.kick, base + 10)]
    drums += [drum(b * B, B // 4, kit.kick, base - 4) for b in (1, 2)]
    drums += roll(kit.snare, 3 * B, 4 * B, v0=base - 20, v1=base + 8)
    return notes + drums, 4 * B, []


def _goal_against(plan: StingerPlan, v: StingerVoices, kit: DrumKit, base: float, track: _Track) -> Figure:
    onsets = [0, B, 9 * B // 4, 15 * B // 4, 11 * B // 2]  # each gap longer: running out of air
    end = 6 * B
    first = track.at(0)
    pitch = nearest(_degree(first, 2), v.high.center + 2)
    notes: list[Note] = []
    drums: list[Note] = []
    for i, onset in enumerate(onsets):
        h = track.at(onset)
        pitch = step(pitch, safe_tones(h), -1) if i else pitch
        last = i == len(onsets) - 1
        following = end if last else onsets[i + 1]
        notes += track.note(onset, following - onset - (0 if last else B // 6), HI, pitch, base - 7 * i)
        toms = tom_keys(kit, h)
        drums.append(drum(onset, B // 2, toms[min(len(toms) - 1, i * (len(toms) - 1) // 4)], base - 5 * i))
    final = track.at(onsets[-1])
    notes += [n for p in _chord_under(final, pitch) for n in track.note(onsets[-1], end - onsets[-1], HI, p, base - 34)]
    notes += _low(track, v, first.root, 0, B - 40, base - 4)
    for onset, stop, vel in ((onsets[3], onsets[4] - 40, base - 18), (onsets[4], end, base - 26)):
        h = track.at(onset)
        notes += _low(track, v, h.root, onset, stop - onset, vel)
    drums.append(drum(onsets[-1], B, kit.kick, base - 20))
    return notes + drums, end, []


def _near_miss(plan: StingerPlan, v: StingerVoices, kit: DrumKit, base: float, track: _Track) -> Figure:
    cut = 7 * B // 2  # the ball goes wide: everything stops on the "and" of four, unresolved
    first = track.at(0)
    pitch = nearest(first.root, v.high.center - 5)
    notes: list[Note] = []
    for i, t in enumerate(range(0, cut, B // 2)):
        h = track.at(t)
        pitch = step(pitch, safe_tones(h), 1) if i else pitch
        notes += track.note(t, B // 2 - 10, HI, pitch, base - 30 + 6 * i)
    for start, end, h in track.segments:
        if start < cut:
            notes += [h.note(start, min(end, cut) - start, HI, p, base - 25)
                      for p in window(h.tones, v.high.center - 12)]
    notes += _roll_on_roots(track, v, 0, cut, base - 35, base + 10)
    drums = roll(kit.crash2, 0, cut, v0=42, v1=base, accelerate=False)
    drums += roll(kit.snare, 2 * B, cut, v0=base - 30, v1=base + 10)
    return notes + drums, 4 * B, swell(HI, 50, 0, cut) + swell(LO, 60, 0, cut)


def _card(plan: StingerPlan, v: StingerVoices, kit: DrumKit, base: float, track: _Track) -> Figure:
    h = track.at(0)
    voices = window(h.tones, v.high.center - 5)
    bottom = voices[0] - ((voices[0] - h.root) % 12 or 12)
    notes = [n for p in (bottom, *voices) for n in track.note(0, B // 3, HI, p, base + 14)]
    notes += _low(track, v, h.root, 0, 3 * B // 2, base + 10)
    hit = timpani_key(kit, h.root)
    drums = [drum(0, B, kit.crash, base + 10), drum(0, B // 4, kit.kick, base + 14),
             drum(0, B // 4, kit.snare, base + 4)]
    if hit is not None:
        drums.append(drum(0, B, hit, base + 14))
    return notes + drums, 2 * B, []


def _var(plan: StingerPlan, v: StingerVoices, kit: DrumKit, base: float, track: _Track) -> Figure:
    end = 8 * B
    notes: list[Note] = []
    for t in range(0, end, B // 2):
        h = track.at(t)
        five = nearest(_degree(h, 2), v.high.center)
        tick_tock = five if (t // (B // 2)) % 2 == 0 else step(five, safe_tones(h), 1)
        notes += track.note(t, B // 4, HI, tick_tock, base - 12 + 8 * t / end)
    for beat in range(0, 8, 2):  # a heartbeat: lub-dub every two beats
        h = track.at(beat * B)
        notes += _low(track, v, h.root, beat * B, B // 3, base - 4)
        notes += _low(track, v, h.root, beat * B + B * 3 // 8, B // 3, base - 16)
    drums = [drum(b * B, B // 4, kit.wood_hi if b % 2 == 0 else kit.wood_lo, base - 6) for b in range(8)]
    drums += [drum(b * B + B // 2, B // 4, kit.hat, base - 24) for b in range(8)]
    return notes + drums, end, []


def _full_time(plan: StingerPlan, v: StingerVoices, kit: DrumKit, base: float, track: _Track) -> Figure:
    segments = track.segments
    end = segments[-1][1]
    notes: list[Note] = []
    drums: list[Note] = []
    for i, (start, stop, h) in enumerate(segments):
        last = i == len(segments) - 1
        voices = window(h.tones, v.high.center)
        top = [voices[-1] + 12] if last and voices[-1] + 12 <= v.high.high + 7 else []
        notes += [h.note(start, stop - start - (0 if last else 20), HI, p, base + (10 if last else -10 + 6 * i))
                  for p in (*voices, *top)]
        if v.roll and not last and i > 0:  # timpani roll on the dominant, into the final chord
            notes += _roll_on_roots(track, v, start, stop, base - 20, base + 6)
        else:
            notes += _low(track, v, h.bass, start, stop - start - (0 if last else 20), base + (8 if last else 0))
        if last:
            drums += [drum(start, 3 * B, kit.crash, base + 16), drum(start, B // 4, kit.kick, base + 12)]
            hit = timpani_key(kit, h.root)
            if hit is not None:
                drums.append(drum(start, B, hit, base + 10))
    first_end = segments[0][1] if len(segments) > 1 else min(end, 2 * B)
    drums += roll(kit.crash2, 0, first_end, v0=45, v1=base + 6, accelerate=False)
    return notes + drums, end, []


_FIGURES: dict[str, Callable[[StingerPlan, StingerVoices, DrumKit, float, _Track], Figure]] = {
    "goal": _goal, "goal_against": _goal_against, "near_miss": _near_miss,
    "card": _card, "var": _var, "full_time": _full_time,
}
assert set(_FIGURES) == set(STINGERS)


def arrange_stinger(plan: StingerPlan) -> Part:
    """The notes of a stinger on the stinger, stinger_low and drum channels, voiced on its harmony.

    ``plan.harmony`` names the chord of every bar the stinger overlaps (without it, the key's
    tonic throughout). Deterministic: the same plan gives the same Part (velocity
    humanisation is seeded with ``plan.seed``). ValueError for an unknown kind, style or key.
    """
    if plan.kind not in _FIGURES:
        raise ValueError(f"unknown stinger kind {plan.kind!r}; expected one of {STINGERS}")
    style = get_style(plan.style)
    voices = style.stingers[plan.kind]
    intensity = max(0.0, min(1.0, plan.intensity))
    track = _track(plan, plan.harmony[-1][1] if plan.harmony else stinger_ticks(plan.kind, 0, 4 * B))
    notes, length, curves = _FIGURES[plan.kind](plan, voices, style.kit, 70 + 40 * intensity, track)
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

