"""The arranger's promises: the key rule, the layers, the dials, stingers, determinism, MIDI.

Fast and broker-free: everything here is pure functions of a plan.
"""

from __future__ import annotations

import itertools
from collections import Counter
from dataclasses import replace
from pathlib import Path

import mido
import pytest

from consumers.music.arranger import arrange_bar, arrange_stinger
from consumers.music.drums import GROOVES
from consumers.music.midi import part_midi_events, write_midi_file
from consumers.music.styles import STYLE_BOOK, get_style
from consumers.music.theory import (
    BORROWED, DIATONIC, FUNCTION, SECONDARY, chord_bass, chord_scale, chord_tones, chromatic_tones,
    fifth_down, fifth_up, key_name, parallel, pitch_class, relative, scale,
)
from consumers.music.types import (
    CHANNELS, LAYERS, STINGERS, STYLES, TICKS_PER_BEAT, BarPlan, Mode, Part, StingerPlan,
)

DRUMS = CHANNELS["drums"]
MODES: tuple[Mode, ...] = ("MAJOR", "MINOR")


def plan(**changes: object) -> BarPlan:
    base = BarPlan(bar=0, style="orchestral", tempo_bpm=120.0, beats_per_bar=4, key="D", mode="MAJOR",
                   chord="I", next_chord="V", intensity=0.5, layers=LAYERS, tension=0.0, valence=0.0, seed=11)
    return replace(base, **changes)  # type: ignore[arg-type]


def all_numerals(mode: Mode) -> tuple[str, ...]:
    return DIATONIC[mode] + BORROWED[mode] + SECONDARY[mode]


def assert_key_rule(part: Part, key: str, mode: Mode, chord: str | None) -> None:
    """Every melodic note in the scale, or a flagged tone of the chord; flags only off-scale."""
    in_scale = set(scale(key, mode))
    tones = set(chord_tones(key, mode, chord)) if chord is not None else set()
    for n in part.notes:
        if n.channel == DRUMS:
            continue
        pc = n.pitch % 12
        if pc in in_scale:
            assert not n.chromatic, f"{n} is in {key} {mode} but flagged chromatic"
        else:
            assert n.chromatic, f"{n} is outside {key} {mode} and not flagged"
            if chord is not None:
                assert pc in tones, f"{n} is outside {key} {mode} and not a tone of {chord}"


def channels(part: Part) -> set[int]:
    return {n.channel for n in part.notes}


def mean_velocity(part: Part) -> float:
    return sum(n.velocity for n in part.notes) / len(part.notes)


# --- theory -------------------------------------------------------------------------------


def test_known_answers() -> None:
    assert scale("D", "MAJOR") == (2, 4, 6, 7, 9, 11, 1)
    assert scale("A", "MINOR") == (9, 11, 0, 2, 4, 5, 7)
    assert 8 in chord_tones("A", "MINOR", "V")  # G#
    assert chord_tones("A", "MINOR", "V") == (4, 8, 11)
    assert chromatic_tones("A", "MINOR", "V") == frozenset({8})
    assert chromatic_tones("A", "MINOR", "V7") == frozenset({8})
    assert chromatic_tones("C", "MAJOR", "V/V") == frozenset({6})
    assert chromatic_tones("C", "MAJOR", "bVI") == frozenset({8, 3})
    assert chromatic_tones("C", "MAJOR", "iv") == frozenset({8})
    assert chromatic_tones("C", "MAJOR", "V7") == frozenset()
    assert chord_tones("C", "MAJOR", "V7") == (7, 11, 2, 5)
    assert chord_tones("C", "MAJOR", "vii°") == (11, 2, 5)
    assert chord_tones("C", "MINOR", "vii°") == (11, 2, 5)  # on the leading tone
    assert chord_tones("C", "MINOR", "VII") == (10, 2, 5)   # on the subtonic
    assert chord_tones("C", "MAJOR", "Vsus4") == (7, 0, 2)
    assert chord_tones("C", "MAJOR", "V7/V") == (2, 6, 9, 0)
    assert chord_bass("C", "MAJOR", "I6/4") == 7
    assert 11 in chord_scale("C", "MINOR", "V") and 10 not in chord_scale("C", "MINOR", "V")  # no false relation
    assert 10 in chord_scale("C", "MAJOR", "bVII") and 11 not in chord_scale("C", "MAJOR", "bVII")
    assert fifth_up("C", "MAJOR") == "G"
    assert fifth_down("C", "MAJOR") == "F"
    assert relative("C", "MAJOR") == ("A", "MINOR")
    assert relative("A", "MINOR") == ("C", "MAJOR")
    assert parallel("C", "MAJOR") == ("C", "MINOR")
    assert parallel("Db", "MAJOR") == ("C#", "MINOR")


def test_pitch_class_and_spelling() -> None:
    assert [pitch_class(n) for n in ("C", "F#", "Bb", "Eb", "Cb", "B#", "E")] == [0, 6, 10, 3, 11, 0, 4]
    assert [key_name(pitch_class(k), "MAJOR") for k in ("F", "Bb", "Eb", "Ab", "Db")] == ["F", "Bb", "Eb", "Ab", "Db"]
    assert [key_name(pitch_class(k), "MINOR") for k in ("D", "G", "C", "F", "Bb", "Eb")] == ["D", "G", "C", "F", "Bb", "Eb"]
    assert key_name(6, "MAJOR") == "F#" and key_name(1, "MINOR") == "C#" and key_name(8, "MINOR") == "G#"
    with pytest.raises(ValueError):
        pitch_class("H")


def test_circle_of_fifths_closes() -> None:
    for mode in MODES:
        key = "C"
        for _ in range(12):
            key = fifth_up(key, mode)
        assert pitch_class(key) == 0
        assert fifth_down(fifth_up("Eb", mode), mode) == "Eb"


@pytest.mark.parametrize("bad", ["X", "VIII", "Iv", "V/vii°", "", "I9"])
def test_unknown_numerals_raise(bad: str) -> None:
    with pytest.raises(ValueError):
        chord_tones("C", "MAJOR", bad)


def test_every_choosable_numeral_has_a_function_and_a_sound_chord_scale() -> None:
    for mode, key in itertools.product(MODES, ("C", "F#", "Bb", "E")):
        for numeral in all_numerals(mode):
            assert FUNCTION[numeral] in ("T", "PD", "D")
            tones = chord_tones(key, mode, numeral)
            line = chord_scale(key, mode, numeral)
            assert len(line) == 7 and set(tones) <= set(line)
            assert set(line) <= set(scale(key, mode)) | set(tones)


# --- the key rule ---------------------------------------------------------------------------


@pytest.mark.parametrize("style", STYLES)
@pytest.mark.parametrize("mode", MODES)
def test_key_rule_over_many_plans(style: str, mode: Mode) -> None:
    numerals = all_numerals(mode)
    for i, (chord, key, intensity, tension, valence) in enumerate(itertools.product(
            numerals, ("C", "Eb", "F#", "A"), (0.0, 0.5, 1.0), (0.0, 0.9), (-1.0, 0.0, 1.0))):
        p = plan(style=style, mode=mode, key=key, chord=chord, next_chord=numerals[(i * 7) % len(numerals)],
                 intensity=intensity, tension=tension, valence=valence, seed=i)
        assert_key_rule(arrange_bar(p), key, mode, chord)


@pytest.mark.parametrize("style", STYLES)
def test_key_rule_in_other_metres(style: str) -> None:
    for beats, chord in itertools.product((2, 3, 5, 6), ("i", "V7", "VI", "bII")):
        part = arrange_bar(plan(style=style, mode="MINOR", key="E", chord=chord, beats_per_bar=beats,
                                intensity=0.9, tension=0.6, next_chord="i"))
        assert_key_rule(part, "E", "MINOR", chord)
        assert part.length_ticks == beats * TICKS_PER_BEAT
        assert all(n.tick < part.length_ticks for n in part.notes)


def test_chromatic_notes_are_planned_and_flagged() -> None:
    part = arrange_bar(plan(key="A", mode="MINOR", chord="V7", next_chord="i", intensity=0.8))
    leading_tones = [n for n in part.notes if n.channel != DRUMS and n.pitch % 12 == 8]
    assert leading_tones and all(n.chromatic for n in leading_tones)


# --- layers and dials -------------------------------------------------------------------------


@pytest.mark.parametrize("layers", [("pad",), ("bass", "drums"), ("strings", "melody", "brass"), ()])
def test_only_planned_layers_sound(layers: tuple[str, ...]) -> None:
    for style in STYLES:
        part = arrange_bar(plan(style=style, layers=layers))
        expected = {CHANNELS[layer] for layer in layers}
        assert channels(part) == expected
        assert set(part.programs) == expected
        assert {c[1] for c in part.controls} <= expected


@pytest.mark.parametrize("style", STYLES)
@pytest.mark.parametrize("layer", LAYERS)
def test_every_style_and_layer_makes_notes_with_a_program(style: str, layer: str) -> None:
    for intensity, tension in itertools.product((0.0, 0.5, 1.0), (0.0, 1.0)):
        part = arrange_bar(plan(style=style, layers=(layer,), intensity=intensity, tension=tension))
        channel = CHANNELS[layer]
        assert part.notes and channels(part) == {channel}
        bank, program = part.programs[channel]
        assert 0 <= program <= 127
        assert bank == (128 if layer == "drums" else 0)
        assert all(40 <= n.velocity <= 120 and n.duration_ticks > 0 for n in part.notes)
        sound = get_style(style).kit if layer == "drums" else get_style(style).instrument(layer)
        if layer == "strings" and tension >= 0.5 and get_style(style).tremolo is not None:
            sound = get_style(style).tremolo  # the tremolo patch under tension
        assert part.programs[channel] == sound.gm
        assert (0, channel, 7, sound.volume) in part.controls


def test_styles_use_the_intended_sounds() -> None:
    orchestral, electronic, rock = (STYLE_BOOK[s] for s in STYLES)
    assert orchestral.kit.program == 48 and electronic.kit.program == 25 and rock.kit.program == 16
    assert orchestral.melody.program == 60 and orchestral.bass.program == 43
    assert electronic.melody.program == 81 and electronic.bass.program == 38
    assert rock.pad.program == 30 and rock.bass.program == 34
    for style in STYLE_BOOK.values():
        assert set(style.stingers) == set(STINGERS)
        assert style.grooves and set(style.grooves) <= set(GROOVES)
        for layer in ("pad", "bass", "strings", "melody", "brass"):
            inst = style.instrument(layer)
            assert 0 <= inst.low < inst.center < inst.high <= 127


@pytest.mark.parametrize("style", STYLES)
def test_intensity_raises_density_and_velocity(style: str) -> None:
    for seed in range(8):
        quiet = arrange_bar(plan(style=style, intensity=0.15, seed=seed))
        loud = arrange_bar(plan(style=style, intensity=0.9, seed=seed))
        assert len(loud.notes) > len(quiet.notes)
        assert mean_velocity(loud) > mean_velocity(quiet) + 10


def test_high_intensity_crashes_on_the_downbeat_and_sings_higher() -> None:
    for style in STYLES:
        kit = get_style(style).kit
        loud = arrange_bar(plan(style=style, intensity=0.95, layers=("drums", "melody")))
        assert any(n.channel == DRUMS and n.tick == 0 and n.pitch == kit.crash for n in loud.notes)
        quiet = arrange_bar(plan(style=style, intensity=0.5, layers=("drums", "melody")))
        melody = CHANNELS["melody"]
        top = [max(n.pitch for n in p.notes if n.channel == melody) for p in (quiet, loud)]
        assert top[1] > top[0]


def test_low_intensity_is_held_pad_and_downbeat_bass() -> None:
    part = arrange_bar(plan(intensity=0.1, layers=("pad", "bass")))
    pad = [n for n in part.notes if n.channel == CHANNELS["pad"]]
    bass = [n for n in part.notes if n.channel == CHANNELS["bass"]]
    # Held to the bar line; the chord's tones spread over a few ticks (an ensemble, not a machine).
    assert all(n.tick < 10 and n.tick + n.duration_ticks == part.length_ticks for n in pad)
    assert len(bass) == 1 and bass[0].tick == 0


@pytest.mark.parametrize("style", STYLES)
def test_tension_adds_pedal_roll_and_swell(style: str) -> None:
    calm = arrange_bar(plan(style=style, chord="IV", intensity=0.6, tension=0.0))
    tense = arrange_bar(plan(style=style, chord="IV", intensity=0.6, tension=0.9))
    dominant = scale("D", "MAJOR")[4]
    bass = [n for n in tense.notes if n.channel == CHANNELS["bass"]]
    assert bass and all(n.pitch % 12 == dominant for n in bass)  # the dominant pedal
    last_beat = tense.length_ticks - TICKS_PER_BEAT

    def late_drums(part: Part) -> int:
        return sum(1 for n in part.notes if n.channel == DRUMS and n.tick >= last_beat)

    assert late_drums(tense) > late_drums(calm) + 4  # a roll into the next bar
    # Held strings lean in under tension, and a build is one crescendo across its bars.
    strings = CHANNELS["strings"]

    def expression(part: Part) -> list[int]:
        return [value for tick, ch, cc, value in part.controls if ch == strings and cc == 11]

    assert expression(tense)[-1] > expression(calm)[-1]
    building = expression(arrange_bar(plan(style=style, chord="IV", intensity=0.6, intensity_from=0.3, tension=0.9)))
    assert building == sorted(building) and building[-1] >= building[0] + 10
    assert building[-1] - expression(tense)[0] <= 2  # where this bar ends, the next one at 0.6 starts


def test_tension_suspends_the_third_in_the_pad() -> None:
    part = arrange_bar(plan(chord="I", tension=0.8, layers=("pad",)))
    pcs_at = {t: {n.pitch % 12 for n in part.notes if n.tick <= t < n.tick + n.duration_ticks}
              for t in (20, part.length_ticks - 1)}
    assert 7 in pcs_at[20] and 6 not in pcs_at[20]     # G (the fourth) delays F# ...
    assert 6 in pcs_at[part.length_ticks - 1]           # ... and resolves to it


def test_valence_moves_the_voicing() -> None:
    low, high = (arrange_bar(plan(layers=("pad",), valence=v)) for v in (-1.0, 1.0))
    assert max(n.pitch for n in high.notes) > max(n.pitch for n in low.notes)
    assert min(n.pitch for n in high.notes) > min(n.pitch for n in low.notes)


def test_voice_leading_keeps_common_tones() -> None:
    first, second = (arrange_bar(plan(chord=c, layers=("pad",), valence=0.0)) for c in ("I", "vi"))
    a, b = sorted(n.pitch for n in first.notes), sorted(n.pitch for n in second.notes)
    assert len(set(a) & set(b)) == 2                   # D and F# stay where they are
    assert sum(abs(x - y) for x, y in zip(a, b)) <= 3  # the other voice moves by step


def test_bass_and_melody_are_single_lines() -> None:
    for style, seed, intensity, tension in itertools.product(STYLES, range(8), (0.1, 0.5, 0.9), (0.0, 0.6)):
        part = arrange_bar(plan(style=style, seed=seed, intensity=intensity, tension=tension,
                                chord=DIATONIC["MAJOR"][seed], next_chord="V"))
        for layer in ("bass", "melody"):
            line = sorted(n for n in part.notes if n.channel == CHANNELS[layer])
            assert all(a.tick + a.duration_ticks <= b.tick for a, b in zip(line, line[1:])), (style, seed, layer)


def assert_one_note_per_key(part: Part) -> None:
    """The renderer plays notes as they are: a key struck again must have been released."""
    by_key: dict[tuple[int, int], list[tuple[int, int]]] = {}
    for n in part.notes:
        by_key.setdefault((n.channel, n.pitch), []).append((n.tick, n.tick + n.duration_ticks))
    for spans in by_key.values():
        spans.sort()
        assert all(end <= next_start for (_, end), (next_start, _) in zip(spans, spans[1:]))


def test_no_key_sounds_twice_at_once() -> None:
    for style, mode, intensity, tension, seed in itertools.product(STYLES, MODES, (0.1, 0.5, 0.9), (0.0, 0.6, 0.9),
                                                                   range(6)):
        numerals = all_numerals(mode)
        assert_one_note_per_key(arrange_bar(plan(style=style, mode=mode, intensity=intensity, tension=tension,
                                                 seed=seed, chord=numerals[seed * 3 % len(numerals)])))
    for style, kind, mode in itertools.product(STYLES, STINGERS, MODES):
        assert_one_note_per_key(arrange_stinger(StingerPlan(kind=kind, style=style, tempo_bpm=120.0, key="Eb",  # type: ignore[arg-type]
                                                            mode=mode, intensity=0.6, seed=2)))


def test_drums_play_the_kits_sounds() -> None:
    for style in STYLE_BOOK.values():
        kit = style.kit
        keys = {kit.kick, kit.snare, kit.ghost, kit.clap, kit.hat, kit.open_hat, kit.pedal_hat, kit.ride,
                kit.crash, kit.crash2, kit.tamb, kit.wood_hi, kit.wood_lo, *kit.toms}
        if kit.timpani is not None:
            keys |= set(range(kit.timpani[0], kit.timpani[1] + 1))
        for seed, intensity, tension in itertools.product(range(0, 48, 3), (0.1, 0.5, 0.9), (0.0, 0.6, 1.0)):
            part = arrange_bar(plan(style=style.name, seed=seed, intensity=intensity, tension=tension,
                                    layers=("drums",)))
            assert {n.pitch for n in part.notes} <= keys


def test_unknown_inputs_raise() -> None:
    for bad in (dict(style="polka"), dict(chord="IX"), dict(layers=("kazoo",)), dict(key="H"),
                dict(beats_per_bar=0)):
        with pytest.raises(ValueError):
            arrange_bar(plan(**bad))


# --- melody -----------------------------------------------------------------------------------


def melody_of(part: Part) -> tuple[tuple[int, int], ...]:
    return tuple((n.tick, n.pitch) for n in part.notes if n.channel == CHANNELS["melody"])


def test_melody_puts_chord_tones_on_the_strong_beats() -> None:
    for seed, chord in itertools.product(range(16), ("I", "ii", "V7", "vi")):
        part = arrange_bar(plan(seed=seed, chord=chord, layers=("melody",), next_chord=None))
        tones = set(chord_tones("D", "MAJOR", chord))
        for tick, pitch in melody_of(part):
            if tick % (2 * TICKS_PER_BEAT) == 0:
                assert pitch % 12 in tones


def test_melody_rhythm_repeats_within_a_seed_family_and_differs_across() -> None:
    def rhythm(seed: int) -> tuple[int, ...]:
        # On the sixteenth grid: humanisation moves notes by a few ticks, never the rhythm.
        return tuple(round(t / 120) for t, _ in melody_of(arrange_bar(plan(seed=seed, layers=("melody",),
                                                                             next_chord=None))))

    assert rhythm(16) == rhythm(18) == rhythm(20)  # bars 0, 2, 4 of a phrase sing the same motif
    assert len({rhythm(8 * family) for family in range(10)}) >= 5


def test_melody_leans_into_the_next_chord() -> None:
    hits = 0
    for seed in range(64):
        if seed % 8 in (3, 7):
            continue
        part = arrange_bar(plan(seed=seed, chord="I", next_chord="IV", layers=("melody",), intensity=0.6))
        notes = melody_of(part)
        following = melody_of(arrange_bar(plan(seed=seed + 1, chord="IV", layers=("melody",), intensity=0.6)))
        if notes[-1][0] >= part.length_ticks - TICKS_PER_BEAT:
            assert abs(notes[-1][1] - following[0][1]) <= 2  # a step into the next bar's first note
            hits += 1
    assert hits > 0


# --- determinism ------------------------------------------------------------------------------


def test_same_plan_same_part() -> None:
    for style in STYLES:
        p = plan(style=style, intensity=0.8, tension=0.6, valence=0.3, seed=1234)
        assert arrange_bar(p) == arrange_bar(p)
        s = StingerPlan(kind="goal", style=style, tempo_bpm=128.0, key="F", mode="MAJOR", intensity=0.9, seed=5)
        assert arrange_stinger(s) == arrange_stinger(s)


def test_different_seed_different_melody() -> None:
    melodies = {melody_of(arrange_bar(plan(seed=seed, layers=("melody",)))) for seed in range(0, 80, 8)}
    assert len(melodies) >= 8


def test_muting_a_layer_does_not_change_the_others() -> None:
    full = arrange_bar(plan(intensity=0.8))
    without_pad = arrange_bar(plan(intensity=0.8, layers=tuple(layer for layer in LAYERS if layer != "pad")))
    assert [n for n in full.notes if n.channel != CHANNELS["pad"]] == list(without_pad.notes)


# --- stingers ---------------------------------------------------------------------------------


@pytest.mark.parametrize("style", STYLES)
@pytest.mark.parametrize("kind", STINGERS)
def test_stingers_in_key_on_their_channels(style: str, kind: str) -> None:
    allowed = {CHANNELS["stinger"], CHANNELS["stinger_low"], DRUMS}
    for mode, key in itertools.product(MODES, ("C", "F#", "Bb")):
        part = arrange_stinger(StingerPlan(kind=kind, style=style, tempo_bpm=120.0, key=key, mode=mode,  # type: ignore[arg-type]
                                           intensity=0.7, seed=9))
        assert part.notes
        assert channels(part) <= allowed and CHANNELS["stinger"] in channels(part)
        assert set(part.programs) == allowed
        assert_key_rule(part, key, mode, None)
        assert TICKS_PER_BEAT <= part.length_ticks <= 12 * TICKS_PER_BEAT
        assert all(40 <= n.velocity <= 120 for n in part.notes)


def test_stinger_shapes() -> None:
    def sp(kind: str, mode: Mode = "MAJOR") -> Part:
        return arrange_stinger(StingerPlan(kind=kind, style="orchestral", tempo_bpm=120.0, key="C", mode=mode,  # type: ignore[arg-type]
                                           intensity=0.8, seed=1))

    kit = get_style("orchestral").kit
    high = CHANNELS["stinger"]
    goal = sp("goal")
    assert any(n.channel == DRUMS and n.tick == 0 and n.pitch == kit.crash for n in goal.notes)
    fanfare = sorted(n for n in goal.notes if n.channel == high and n.velocity > 80)
    assert {n.pitch % 12 for n in fanfare} <= {0, 4, 7}  # the tonic triad, climbing
    assert fanfare[-1].pitch > fanfare[3].pitch
    falling = [n.pitch for n in sp("goal_against").notes if n.channel == high and n.velocity > 60]
    assert falling[0] > falling[-1]
    near = sp("near_miss")
    assert max(n.tick + n.duration_ticks for n in near.notes) < near.length_ticks  # breaks off
    card = sp("card")
    assert max(n.tick for n in card.notes) < TICKS_PER_BEAT and not any(n.chromatic for n in card.notes)
    ticks = sp("var")
    assert len({n.pitch for n in ticks.notes if n.channel == high}) == 2
    final = sp("full_time")
    last = max(n.tick for n in final.notes if n.channel == high)
    assert {n.pitch % 12 for n in final.notes if n.channel == high and n.tick == last} == {0, 4, 7}


def _semitone_against(pitch: int, tones: tuple[int, ...]) -> bool:
    return any((pitch - t) % 12 in (1, 11) for t in tones)


@pytest.mark.parametrize("kind", STINGERS)
def test_stingers_are_voiced_on_the_bars_they_sound_over(kind: str) -> None:
    """Over a running V (two beats left) and the bar after (whatever the director committed), a
    stinger's notes never make a semitone with the chord sounding under them."""
    from consumers.music.stingers import stinger_ticks

    bar = 4 * TICKS_PER_BEAT
    for style, (key, mode, running, then) in itertools.product(
            STYLES, (("C", "MAJOR", "V", "vi"), ("F#", "MINOR", "iv", "V7"), ("Bb", "MAJOR", "ii", "IV"))):
        length = stinger_ticks(kind, 2 * TICKS_PER_BEAT, bar)
        segments = [(0, 2 * TICKS_PER_BEAT, key, mode, running)]
        while segments[-1][1] < length:
            segments.append((segments[-1][1], segments[-1][1] + bar, key, mode, then))
        part = arrange_stinger(StingerPlan(kind=kind, style=style, tempo_bpm=110.0, key=key, mode=mode,  # type: ignore[arg-type]
                                           intensity=0.8, seed=4, harmony=tuple(segments)))
        for n in part.notes:
            if n.channel == DRUMS:
                continue
            for start, end, k, m, chord in segments:
                if n.tick < end and n.tick + n.duration_ticks > start:  # sounding over this chord
                    assert not _semitone_against(n.pitch, chord_tones(k, m, chord)), (kind, style, chord, n)


# --- MIDI -------------------------------------------------------------------------------------


def test_events_round_trip_through_mido() -> None:
    part = arrange_bar(plan(intensity=0.9, tension=0.7))
    events = part_midi_events(part)
    assert [t for t, _ in events] == sorted(t for t, _ in events)
    parsed = [mido.Message.from_bytes(data) for _, data in events]
    ons = Counter((m.channel, m.note) for m in parsed if m.type == "note_on")
    offs = Counter((m.channel, m.note) for m in parsed if m.type == "note_off")
    assert ons == offs and sum(ons.values()) > 0
    programs = {m.channel: m.program for m in parsed if m.type == "program_change"}
    assert programs == {ch: prog for ch, (_, prog) in part.programs.items()}
    assert all(t == 0 for (t, _), m in zip(events, parsed) if m.type == "program_change")
    assert parsed[0].type == "control_change" and parsed[0].control == 0
    # on one tick: releases before attacks
    for tick in {t for t, _ in events}:
        kinds = [m.type for (t, _), m in zip(events, parsed) if t == tick and m.type.startswith("note")]
        assert kinds == sorted(kinds, key=lambda k: k != "note_off")
    assert part_midi_events(part) == events


def test_overlapping_notes_on_one_key_are_clipped() -> None:
    from consumers.music.types import Note

    part = Part(notes=(Note(0, 960, 0, 60, 80), Note(480, 960, 0, 60, 90), Note(480, 100, 0, 60, 70)),
                programs={0: (0, 0)})
    timeline = [(t, mido.Message.from_bytes(d)) for t, d in part_midi_events(part)]
    notes = [(t, m.type) for t, m in timeline if m.type.startswith("note")]
    assert notes == [(0, "note_on"), (480, "note_off"), (480, "note_on"), (1440, "note_off")]


def test_midi_file_loads_with_the_bars_length(tmp_path: Path) -> None:
    chords = ("I", "vi", "IV", "V7", "I", "V/V", "V", "I")
    bars = [(100.0 + i, arrange_bar(plan(chord=c, seed=i, intensity=i / 7, beats_per_bar=4 if i < 6 else 3)))
            for i, c in enumerate(chords)]
    first, second = tmp_path / "a.mid", tmp_path / "b.mid"
    write_midi_file(first, bars)
    write_midi_file(second, bars)
    assert first.read_bytes() == second.read_bytes()
    midi = mido.MidiFile(first)
    assert midi.type == 1 and midi.ticks_per_beat == TICKS_PER_BEAT
    total = sum(part.length_ticks for _, part in bars)
    assert sum(m.time for m in midi.tracks[0]) == total
    tempos = [m for m in midi.tracks[0] if m.type == "set_tempo"]
    assert len(tempos) == len(bars) and round(mido.tempo2bpm(tempos[1].tempo)) == 101
    signatures = [(m.numerator, m.denominator) for m in midi.tracks[0] if m.type == "time_signature"]
    assert signatures == [(4, 4), (3, 4)]
    assert len(midi.tracks) == 1 + len(LAYERS)
    for track in midi.tracks[1:]:
        assert sum(m.time for m in track) >= total - TICKS_PER_BEAT
        assert len({m.channel for m in track if not m.is_meta}) == 1
    notes = sum(1 for track in midi.tracks for m in track if m.type == "note_on")
    assert notes == sum(len(p.notes) for _, p in bars) - _clipped_duplicates(bars)


def _clipped_duplicates(bars: list[tuple[float, Part]]) -> int:
    """Onsets merged because two notes struck one key on one tick."""
    seen: Counter[tuple[int, int, int]] = Counter()
    start = 0
    for _, part in bars:
        for n in part.notes:
            seen[(start + n.tick, n.channel, n.pitch)] += 1
        start += part.length_ticks
    return sum(count - 1 for count in seen.values())


def test_midi_file_rescales_ticks(tmp_path: Path) -> None:
    bars = [(120.0, arrange_bar(plan(seed=s))) for s in range(2)]
    write_midi_file(tmp_path / "x.mid", bars, ticks_per_beat=960)
    midi = mido.MidiFile(tmp_path / "x.mid")
    assert midi.ticks_per_beat == 960
    assert sum(m.time for m in midi.tracks[0]) == 2 * sum(p.length_ticks for _, p in bars)
