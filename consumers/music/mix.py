"""MIDI controller curves shared by bars and stingers: the channel strip and expression shapes.

Velocity only shapes a note's attack; a held chord can grow only through expression (CC11),
so crescendos and the dance-music pump are written as controller curves.
"""

from __future__ import annotations

from consumers.music.styles import DrumKit, Instrument
from consumers.music.types import TICKS_PER_BEAT

__all__ = ["Control", "channel_strip", "pump", "swell"]

Control = tuple[int, int, int, int]  # (tick, channel, controller, value), as in Part.controls
EIGHTH = TICKS_PER_BEAT // 2


def channel_strip(channel: int, sound: Instrument | DrumKit, reverb: int, expression: int) -> list[Control]:
    """Volume, pan, reverb send and expression at tick 0."""
    return [(0, channel, 7, sound.volume), (0, channel, 10, sound.pan),
            (0, channel, 91, reverb), (0, channel, 11, max(0, min(127, expression)))]


def swell(channel: int, start_value: int, start: int, end: int) -> list[Control]:
    """CC11 rising in eighths from ``start_value`` at ``start`` to 127 just before ``end``."""
    ticks = list(range(start, end, EIGHTH))
    last = max(1, len(ticks) - 1)
    return [(t, channel, 11, round(start_value + (127 - start_value) * i / last)) for i, t in enumerate(ticks)]


def pump(channel: int, expression: int, bar_end: int) -> list[Control]:
    """CC11 ducking on every beat and recovering: the side-chained pad of dance music."""
    shape = (0.45, 0.7, 0.9, 1.0)
    return [(beat + i * (TICKS_PER_BEAT // 4), channel, 11, round(expression * level))
            for beat in range(0, bar_end, TICKS_PER_BEAT) for i, level in enumerate(shape)]
