"""Parts as MIDI: timed raw messages for the control topic and a Standard MIDI File to listen to.

The same Part always gives the same bytes, in an order chosen so that a synthesizer fed the
events in sequence does the right thing: a note-off before a note-on on the same tick (a
re-struck key is not cut by the previous note's release), bank and program before anything
sounds, controllers before the notes they shape. Two notes on one key and channel that
overlap are clipped so each note-on has its own note-off: MIDI cannot hold one key twice.
Bank numbers are sent MMA-style (CC0 = bank // 128, CC32 = bank % 128); FluidSynth takes
the kit of the drum channel from the program change alone.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import replace

import mido

from consumers.music.types import CHANNELS, TICKS_PER_BEAT, Note, Part

__all__ = ["clip_overlaps", "part_from_midi_events", "part_midi_events", "write_midi_file"]

# Order of events on one tick: releases, then instruments, then controllers, then attacks.
_OFF, _PROGRAM, _CONTROL, _ON = range(4)
_LAYER_OF = {channel: layer for layer, channel in CHANNELS.items()}

_Event = tuple[int, int, int, int, int, mido.Message]  # (tick, rank, channel, detail, seq, message)


def clip_overlaps(notes: Iterable[Note]) -> list[Note]:
    """Notes with same-key overlaps resolved, sorted: a note ends where the next one on its key
    starts; two onsets of one key on one tick become one (the loudest, the longest)."""
    by_key: dict[tuple[int, int], list[Note]] = {}
    for n in sorted(notes):
        by_key.setdefault((n.channel, n.pitch), []).append(n)
    out: list[Note] = []
    for same_key in by_key.values():
        merged: list[Note] = []
        for n in same_key:
            if merged and merged[-1].tick == n.tick:
                prev = merged[-1]
                merged[-1] = replace(prev, duration_ticks=max(prev.duration_ticks, n.duration_ticks),
                                     velocity=max(prev.velocity, n.velocity))
            else:
                merged.append(n)
        for n, following in zip(merged, merged[1:] + [None]):
            end = n.tick + n.duration_ticks
            if following is not None and following.tick < end:
                n = replace(n, duration_ticks=following.tick - n.tick)
            out.append(n)
    return sorted(out)


def _program_events(tick: int, channel: int, bank: int, program: int) -> list[_Event]:
    msgs = [mido.Message("control_change", channel=channel, control=0, value=(bank >> 7) & 0x7F),
            mido.Message("control_change", channel=channel, control=32, value=bank & 0x7F),
            mido.Message("program_change", channel=channel, program=program)]
    return [(tick, _PROGRAM, channel, 0, seq, m) for seq, m in enumerate(msgs)]


def _control_events(controls: Sequence[tuple[int, int, int, int]], offset: int, scale: tuple[int, int]) -> list[_Event]:
    return [(_scaled(offset + tick, scale), _CONTROL, ch, 0, seq,
             mido.Message("control_change", channel=ch, control=cc, value=max(0, min(127, value))))
            for seq, (tick, ch, cc, value) in enumerate(controls)]


def _note_events(notes: Iterable[Note], scale: tuple[int, int]) -> list[_Event]:
    events: list[_Event] = []
    for n in clip_overlaps(notes):
        start = _scaled(n.tick, scale)
        end = max(start + 1, _scaled(n.tick + n.duration_ticks, scale))
        events.append((start, _ON, n.channel, n.pitch, 0,
                       mido.Message("note_on", channel=n.channel, note=n.pitch, velocity=n.velocity)))
        events.append((end, _OFF, n.channel, n.pitch, 0,
                       mido.Message("note_off", channel=n.channel, note=n.pitch, velocity=0)))
    return events


def _scaled(tick: int, scale: tuple[int, int]) -> int:
    """A tick of the arranger's grid in the file's resolution (exact when it is a multiple)."""
    numerator, denominator = scale
    return tick * numerator // denominator


def _sorted(events: list[_Event]) -> list[_Event]:
    return sorted(events, key=lambda e: e[:5])


def part_midi_events(part: Part) -> list[tuple[int, bytes]]:
    """(tick, raw MIDI bytes) of a Part: bank + program per channel at tick 0, its controllers,
    then its notes; sorted by tick, releases first, then channel and key."""
    unit = (1, 1)
    events: list[_Event] = []
    for channel in sorted(part.programs):
        events += _program_events(0, channel, *part.programs[channel])
    events += _control_events(part.controls, 0, unit)
    events += _note_events(part.notes, unit)
    return [(e[0], bytes(e[5].bytes())) for e in _sorted(events)]


def part_from_midi_events(events: Iterable[tuple[int, bytes]], *, length_ticks: int) -> Part:
    """The Part that :func:`part_midi_events` encoded: notes, programs and controllers.

    Bank-select controllers are folded into ``programs`` (as the encoder wrote them); a
    note-on without its note-off lasts to ``length_ticks`` (at least one tick).
    """
    notes: list[Note] = []
    sounding: dict[tuple[int, int], tuple[int, int]] = {}  # (channel, key) -> (tick, velocity)
    banks: dict[int, list[int]] = {}
    programs: dict[int, tuple[int, int]] = {}
    controls: list[tuple[int, int, int, int]] = []
    for tick, data in events:
        message = mido.Message.from_bytes(list(data))
        if message.type == "note_on" and message.velocity > 0:
            sounding[(message.channel, message.note)] = (tick, message.velocity)
        elif message.type in ("note_on", "note_off"):
            start = sounding.pop((message.channel, message.note), None)
            if start is not None:
                notes.append(Note(start[0], max(1, tick - start[0]), message.channel, message.note, start[1]))
        elif message.type == "control_change" and message.control in (0, 32):
            bank = banks.setdefault(message.channel, [0, 0])
            bank[0 if message.control == 0 else 1] = message.value
        elif message.type == "control_change":
            controls.append((tick, message.channel, message.control, message.value))
        elif message.type == "program_change":
            msb, lsb = banks.get(message.channel, [0, 0])
            programs[message.channel] = ((msb << 7) | lsb, message.program)
    for (channel, key), (tick, velocity) in sounding.items():
        notes.append(Note(tick, max(1, length_ticks - tick), channel, key, velocity))
    return Part(notes=tuple(sorted(notes)), programs=programs, length_ticks=length_ticks, controls=tuple(controls))


def _track_name(channel: int) -> str:
    return f"{_LAYER_OF.get(channel, 'channel')} (ch {channel + 1})"


def write_midi_file(path: str | os.PathLike[str], bars: Sequence[tuple[float, Part]], *,
                    ticks_per_beat: int = TICKS_PER_BEAT) -> None:
    """Write bars (tempo in BPM, Part) one after another as a type-1 Standard MIDI File.

    Track 0 carries a tempo per bar and the time signature; then one track per channel used.
    Bar i starts where bar i-1's ``length_ticks`` ended; notes may ring into the next bar.
    The same input always gives the same bytes.
    """
    if ticks_per_beat < 1:
        raise ValueError(f"ticks_per_beat must be >= 1, got {ticks_per_beat}")
    scale = (ticks_per_beat, TICKS_PER_BEAT)
    tempo_events: list[tuple[int, int, mido.MetaMessage]] = []
    events: list[_Event] = []
    all_notes: list[Note] = []
    programs: dict[int, tuple[int, int]] = {}
    start = 0
    signature: tuple[int, int] | None = None
    for index, (bpm, part) in enumerate(bars):
        if not bpm > 0:
            raise ValueError(f"bar {index}: tempo must be > 0, got {bpm}")
        tick = _scaled(start, scale)
        tempo_events.append((tick, 1, mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(bpm))))
        if part.length_ticks % TICKS_PER_BEAT == 0:
            bar_signature = (part.length_ticks // TICKS_PER_BEAT, 4)
        else:  # a bar of eighths (a stinger's odd length)
            bar_signature = (max(1, part.length_ticks * 2 // TICKS_PER_BEAT), 8)
        if bar_signature != signature:
            signature = bar_signature
            tempo_events.append((tick, 0, mido.MetaMessage(
                "time_signature", numerator=bar_signature[0], denominator=bar_signature[1])))
        for channel in sorted(part.programs):
            if programs.get(channel) != part.programs[channel]:  # only when the patch changes
                programs[channel] = part.programs[channel]
                events += _program_events(tick, channel, *part.programs[channel])
        events += _control_events(part.controls, start, scale)
        all_notes += [replace(n, tick=n.tick + start) for n in part.notes]
        start += part.length_ticks
    events += _note_events(all_notes, scale)
    end = _scaled(start, scale)

    midi = mido.MidiFile(type=1, ticks_per_beat=ticks_per_beat)
    conductor = mido.MidiTrack()
    conductor.append(mido.MetaMessage("track_name", name="tempo"))
    _append_timed(conductor, [(t, m) for t, _, m in sorted(tempo_events, key=lambda e: e[:2])], end)
    midi.tracks.append(conductor)
    for channel in sorted({e[2] for e in events}):
        track = mido.MidiTrack()
        track.append(mido.MetaMessage("track_name", name=_track_name(channel)))
        _append_timed(track, [(e[0], e[5]) for e in _sorted([e for e in events if e[2] == channel])], end)
        midi.tracks.append(track)
    midi.save(os.fspath(path))


def _append_timed(track: mido.MidiTrack, timed: list[tuple[int, mido.Message | mido.MetaMessage]], end: int) -> None:
    """Absolute ticks to delta times; the track ends at ``end`` or after its last event."""
    now = 0
    for tick, message in timed:
        track.append(message.copy(time=tick - now))
        now = tick
    track.append(mido.MetaMessage("end_of_track", time=max(0, end - now)))
