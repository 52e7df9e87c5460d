"""Drum grooves as data, and the bar of percussion they produce.

A groove family is three sixteenth-note grids (low, mid and high intensity) written the way
a drummer reads them ("X" accent, "x" hit, "o" ghost, "." rest), so a groove can be checked
by eye. Grids are 16 steps (one 4/4 bar) and wrap for other metres. Tension adds what makes
a crowd hold its breath: a timpani or snare roll growing into the next downbeat. Phrase
ends get a fill and phrase starts a crash, so the form is audible even without a melody.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from random import Random
from types import MappingProxyType

from consumers.music.harmony import Harmony, drum
from consumers.music.styles import DrumKit
from consumers.music.types import TICKS_PER_BEAT, Note

__all__ = ["GROOVES", "Groove", "drum_notes", "roll", "timpani_key", "tom_keys"]

SIXTEENTH = TICKS_PER_BEAT // 4


@dataclass(frozen=True)
class Groove:
    """Grids per intensity level (low, mid, high): (role, 16-step pattern) pairs."""

    low: tuple[tuple[str, str], ...]
    mid: tuple[tuple[str, str], ...]
    high: tuple[tuple[str, str], ...]

    def level(self, tier: int) -> tuple[tuple[str, str], ...]:
        return (self.low, self.mid, self.high)[tier]


GROOVES: Mapping[str, Groove] = MappingProxyType({
    # Orchestral: concert bass drum and snare with the timpani on root and fifth.
    "march": Groove(
        low=(("timp", "X.......x......."),),
        mid=(("kick", "X.......X......."), ("snare", "....x.......x..."),
             ("timp", "X..............."), ("timp5", "........x.......")),
        high=(("kick", "X...x...X...x..."), ("snare", "x.o.X.o.x.o.X.ox"),
              ("timp", "X.......X......."), ("timp5", "....x.......x..."), ("tamb", "..x...x...x...x.")),
    ),
    "epic": Groove(
        low=(("kick", "X..........x...."), ("timp", "X...............")),
        mid=(("kick", "X..x..x...x....."), ("snare", "....X.......X..."), ("timp", "X.....x.........")),
        high=(("kick", "X..x..x.X..x..x."), ("snare", "....X.......X..x"),
              ("timp", "X..x..x.X..x..x."), ("tamb", "x.x.x.x.x.x.x.x.")),
    ),
    # Electronic.
    "four_floor": Groove(
        low=(("kick", "X..............."), ("hat", "..x...x...x...x.")),
        mid=(("kick", "X...X...X...X..."), ("clap", "....X.......X..."), ("hat", "..x...x...x...x.")),
        high=(("kick", "X...X...X...X..."), ("clap", "....X.......X..."), ("snare", "....x.......x..."),
              ("hat", "xx.xxx.xxx.xxx.x"), ("open_hat", "..x...x...x...x.")),
    ),
    "breakbeat": Groove(
        low=(("kick", "X.........x....."), ("hat", "x...x...x...x...")),
        mid=(("kick", "X.....x...x....."), ("snare", "....X.......X..."), ("hat", "x.x.x.x.x.x.x.x.")),
        high=(("kick", "X.....x...x..x.."), ("snare", "....X..o.o..X..o"), ("hat", "x.xxx.xxx.xxx.xx"),
              ("open_hat", "......x.......x.")),
    ),
    "halftime": Groove(
        low=(("kick", "X..............."), ("hat", "x.x.x.x.x.x.x.x.")),
        mid=(("kick", "X.........x....."), ("snare", "........X......."), ("hat", "x.x.x.x.x.x.x.x.")),
        high=(("kick", "X.....x...x....."), ("clap", "........X......."), ("snare", "........X......."),
              ("hat", "xxxxxxxxxxxxxxxx")),
    ),
    # Stadium rock.
    "rock": Groove(
        low=(("kick", "X..............."), ("hat", "x...x...x...x...")),
        mid=(("kick", "X.......X.x....."), ("snare", "....X.......X..."), ("hat", "x.x.x.x.x.x.x.x.")),
        high=(("kick", "X.....x.X.x....."), ("snare", "....X.......X..."), ("ride", "X.x.X.x.X.x.X.x.")),
    ),
    "stomp": Groove(  # stomp-stomp-clap, the terrace rhythm
        low=(("kick", "X.x.....X.x....."),),
        mid=(("kick", "X.x.....X.x....."), ("clap", "....X.......X...")),
        high=(("kick", "X.x.....X.x....."), ("clap", "....X.......X..."), ("snare", "....X.......X..."),
              ("open_hat", "x.x.x.x.x.x.x.x.")),
    ),
    "anthem": Groove(
        low=(("kick", "X.......X......."), ("ride", "x...x...x...x...")),
        mid=(("kick", "X...X...X...X..."), ("snare", "....X.......X..."), ("hat", "x.x.x.x.x.x.x.x.")),
        high=(("kick", "X...X...X...X..."), ("snare", "....X.......X..."), ("open_hat", "x.x.x.x.x.x.x.x."),
              ("tom", "..x...x...x...x.")),
    ),
})

# How long a hit is held before its note-off: FluidR3 releases drums on note-off, so
# timpani and cymbals are held to ring (the arranger clips them at the next hit on the key).
_RING = {"timp": 2 * TICKS_PER_BEAT, "timp5": 2 * TICKS_PER_BEAT, "open_hat": 2 * SIXTEENTH,
         "ride": TICKS_PER_BEAT, "tom": TICKS_PER_BEAT}


def timpani_key(kit: DrumKit, pc: int) -> int | None:
    """The kit key sounding pitch class ``pc`` on its timpani, if the kit has timpani."""
    if kit.timpani is None:
        return None
    low, high = kit.timpani
    return next((k for k in range(low, high + 1) if k % 12 == pc % 12), None)


def tom_keys(kit: DrumKit, h: Harmony) -> tuple[int, ...]:
    """Toms high to low; on a timpani kit the chord's tones, so fills stay in the key."""
    if kit.timpani is None:
        return kit.toms
    low, high = kit.timpani
    return tuple(k for k in range(high, low - 1, -1) if k % 12 in h.tones)


def _key_of(kit: DrumKit, role: str, h: Harmony) -> int:
    if role == "timp":
        return timpani_key(kit, h.bass) or kit.toms[-1]
    if role == "timp5":
        return timpani_key(kit, h.fifth if h.fifth is not None else h.root) or kit.toms[-2]
    if role == "tom":
        return tom_keys(kit, h)[-1]
    key: int = getattr(kit, role)
    return key


def roll(key: int, start: int, end: int, *, v0: float, v1: float, accelerate: bool = True) -> list[Note]:
    """A roll from ``start`` to ``end`` crescendo v0 -> v1: sixteenths then thirty-seconds."""
    notes: list[Note] = []
    tick = start
    span = max(1, end - start)
    while tick < end:
        frac = (tick - start) / span
        rate = SIXTEENTH // 2 if (not accelerate or frac >= 0.5) else SIXTEENTH
        notes.append(drum(tick, rate, key, v0 + (v1 - v0) * frac))
        tick += rate
    return notes


def drum_notes(kit: DrumKit, groove: str, h: Harmony, *, beats: int, tier: int, intensity: float,
               tension: float, position: int, rng: Random) -> tuple[Note, ...]:
    """One bar of percussion for a groove family at an intensity tier (0 low .. 2 high).

    ``position`` is the bar's place in its 8-bar phrase: bar 0 gets a crash at mid
    intensity, bars 3 and 7 a fill in the last beat (unless a tension roll takes it).
    """
    base = 52 + 56 * intensity
    steps = beats * 4
    notes: list[Note] = []
    for role, pattern in GROOVES[groove].level(tier):
        key = _key_of(kit, role, h)
        for i in range(steps):
            mark = pattern[i % len(pattern)]
            if mark == ".":
                continue
            vel = {"X": base + 14, "x": base, "o": 42}[mark]
            if mark != "o":
                vel += rng.randint(-3, 3)  # a drummer never hits twice the same
            notes.append(drum(i * SIXTEENTH, _RING.get(role, SIXTEENTH), key, vel))
    bar_end = steps * SIXTEENTH
    if tier == 2 or (tier == 1 and position == 0):
        notes.append(drum(0, 2 * TICKS_PER_BEAT, kit.crash, base + 16))
        notes.append(drum(0, SIXTEENTH, kit.kick, base + 12))
    if tension >= 0.5:
        span_beats = beats if tension >= 0.95 else (2 if tension >= 0.75 else 1)
        start = bar_end - min(beats, span_beats) * TICKS_PER_BEAT
        top = 60 + 60 * tension
        timp = timpani_key(kit, h.dominant)
        if timp is not None:
            notes += roll(timp, start, bar_end, v0=48, v1=top, accelerate=False)
            if tension >= 0.8:
                notes += roll(kit.snare, bar_end - TICKS_PER_BEAT, bar_end, v0=50, v1=top)
        else:
            notes += roll(kit.snare, start, bar_end, v0=48, v1=top)
    elif tier >= 1 and position in (3, 7):
        toms = tom_keys(kit, h)
        fill_start = bar_end - TICKS_PER_BEAT
        notes = [n for n in notes if n.tick < fill_start or n.pitch == kit.kick]
        picks = [toms[min(len(toms) - 1, round(i * (len(toms) - 1) / 3))] for i in range(4)]
        notes += [drum(fill_start + i * SIXTEENTH, SIXTEENTH, key, base + 4 + 3 * i)
                  for i, key in enumerate(picks)]
    return tuple(sorted(notes))
