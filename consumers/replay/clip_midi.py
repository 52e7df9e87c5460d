"""A run of control messages as the bars of a MIDI file, stingers merged into their bars.

A Standard MIDI File has one time line; the control stream has bars and, between them,
stingers that start on any beat. Each stinger's notes go into the bar it starts in, shifted
by its offset from the bar line, so the file plays what the audio played.
"""

from __future__ import annotations

from collections.abc import Sequence

from consumers.music.midi import clip_overlaps
from consumers.music.types import SAMPLE_RATE, TICKS_PER_BEAT, Note, Part
from consumers.score import Output

__all__ = ["midi_bars"]


def midi_bars(controls: Sequence[Output]) -> list[tuple[float, Part]]:
    """(tempo, Part) per bar in time order, each stinger's notes merged into the bar it sounds in."""
    bars = sorted((c for c in controls if c.record["kind"] != "STINGER"), key=lambda c: c.sample)
    stingers = [c for c in controls if c.record["kind"] == "STINGER"]
    out = []
    for index, bar in enumerate(bars):
        assert bar.part is not None
        tempo = float(bar.record["tempo_bpm"])
        end = bars[index + 1].sample if index + 1 < len(bars) else None
        notes = list(bar.part.notes)
        programs = dict(bar.part.programs)
        controls_ = list(bar.part.controls)
        for stinger in stingers:
            if stinger.sample >= bar.sample and (end is None or stinger.sample < end) and stinger.part is not None:
                offset = round((stinger.sample - bar.sample) * tempo * TICKS_PER_BEAT / (60 * SAMPLE_RATE))
                notes += [Note(n.tick + offset, n.duration_ticks, n.channel, n.pitch, n.velocity, n.chromatic)
                          for n in stinger.part.notes]
                programs.update(stinger.part.programs)
        out.append((tempo, Part(notes=tuple(clip_overlaps(notes)), programs=programs,
                                length_ticks=bar.part.length_ticks, controls=tuple(controls_))))
    return out
