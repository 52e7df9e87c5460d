"""Audio rendering of the score: synth determinism, reverb, mastering to EBU R128, restarts.

No broker: everything here is pure audio. The long test renders a 64-bar score whose
intensity rises and falls (chords on pad and strings, bass, GM drums, brass), pulls it in
irregular chunks the way an emitter would, and checks the broadcast targets on the result.
"""

from __future__ import annotations

import json

import numpy as np
import pyloudnorm
import pytest
from scipy.signal import resample_poly

from consumers.music.types import CHANNELS, SAMPLE_RATE, TICKS_PER_BEAT, Note, Part
from consumers.render.mastering import LATENCY, Master
from consumers.render.mixbus import MixBus
from consumers.render.partjson import part_from_json, part_to_json
from consumers.render.renderer import MusicRenderer
from consumers.render.reverb import apply_reverb, impulse_response
from consumers.render.synth import SoundFontSynth, find_soundfont, ticks_to_samples
from infra.errors import CrowdsoundError

T = TICKS_PER_BEAT
TEMPO = 120.0
BAR = ticks_to_samples(4 * T, TEMPO)  # 2 s
BARS = 64

# No skip when the synthesizer is missing: `make bootstrap` and .ci/run install it, and a
# machine without it must fail here rather than pass quietly.


@pytest.fixture(scope="module")
def synth() -> SoundFontSynth:
    return SoundFontSynth()


# -- a deterministic test score --------------------------------------------------------------

PROGRAMS = {CHANNELS["pad"]: (0, 89), CHANNELS["bass"]: (0, 33), CHANNELS["strings"]: (0, 48),
            CHANNELS["brass"]: (0, 61), CHANNELS["drums"]: (128, 0)}
CHORDS = ((48, 52, 55), (45, 48, 52), (41, 45, 48), (43, 47, 50))  # C Am F G


def intensity(bar: int) -> float:
    """Medium, then a quiet spell, a swell, a loud stretch and a fade."""
    if bar < 12:
        return 0.5
    if bar < 24:
        return 0.12
    if bar < 36:
        return 0.12 + (bar - 24) / 12 * 0.83
    if bar < 52:
        return 0.95
    return 0.95 - (bar - 52) / 12 * 0.8


def bar_part(bar: int, level: float) -> Part:
    """One bar whose layers and velocities follow ``level`` (0..1), like the arranger's."""
    chord = CHORDS[bar % len(CHORDS)]

    def vel(base: int) -> int:
        return max(1, min(127, int(base + 25 + 55 * level)))

    ch = CHANNELS
    notes = [Note(0, 4 * T, ch["pad"], p + 12, vel(35)) for p in chord]
    if level > 0.25:
        notes += [Note(0, 2 * T - 30, ch["bass"], chord[0] - 12, vel(45)),
                  Note(2 * T, 2 * T - 30, ch["bass"], chord[0] - 12, vel(40))]
    if level > 0.4:
        for beat in range(4):
            notes += [Note(beat * T, T // 2, ch["drums"], 36 if beat % 2 == 0 else 38, vel(40)),
                      Note(beat * T, T // 4, ch["drums"], 42, vel(25)),
                      Note(beat * T + T // 2, T // 4, ch["drums"], 42, vel(20))]
    if level > 0.55:
        notes += [Note(0, 4 * T, ch["strings"], p + 24, vel(30)) for p in chord]
    if level > 0.8:
        notes += [Note(0, T // 2, ch["brass"], p + 12, vel(40)) for p in chord]
        notes += [Note(3 * T + T // 2, T // 2, ch["brass"], p + 12, vel(35)) for p in chord]
    controls = tuple((0, c, 11, min(127, int(70 + 57 * level))) for c in (ch["pad"], ch["bass"], ch["strings"]))
    return Part(notes=tuple(notes), programs=dict(PROGRAMS), controls=controls)


# Irregular pull sizes: a beat, odd sizes, tiny and large blocks.
CHUNKS = (24_000, 11_111, 36_789, 24_000, 4_801, 64, 48_000, 17_000, 1, 30_000)
CHUNKS_AFTER_RESTART = (9_999, 24_000, 70_001, 3_333)


class Session:
    """Composer and emitter in one: keeps the next bar scheduled ahead and pulls chunks."""

    def __init__(self, renderer: MusicRenderer, next_bar: int = 0) -> None:
        self.renderer, self.next_bar = renderer, next_bar

    def play(self, chunks: tuple[int, ...], stop_at: int) -> list[np.ndarray]:
        out = []
        renderer = self.renderer
        while renderer.cursor < stop_at:
            while self.next_bar < BARS and self.next_bar * BAR < renderer.cursor + BAR:
                renderer.schedule(self.next_bar * BAR, bar_part(self.next_bar, intensity(self.next_bar)), TEMPO)
                self.next_bar += 1
            out.append(renderer.pull(min(chunks[len(out) % len(chunks)], stop_at - renderer.cursor)))
        return out


TOTAL = BARS * BAR + 3 * SAMPLE_RATE  # the last bar's tail too


@pytest.fixture(scope="module")
def stream(synth: SoundFontSynth) -> tuple[np.ndarray, list[int]]:
    """The whole score, uninterrupted, in CHUNKS; returns int16 output and chunk starts."""
    out = Session(MusicRenderer(synth)).play(CHUNKS, TOTAL)
    joins = list(np.cumsum([len(c) for c in out])[:-1])
    return np.concatenate(out), joins


def _loudness(audio_int16: np.ndarray) -> float:
    return pyloudnorm.Meter(SAMPLE_RATE).integrated_loudness(audio_int16 / 32768.0)


def _true_peak_dbtp(audio_int16: np.ndarray) -> float:
    return 20 * np.log10(np.abs(resample_poly(audio_int16 / 32768.0, 4, 1, axis=0)).max())


def _bars(audio: np.ndarray, first: int, last: int) -> np.ndarray:
    """Output of bars first..last-1 (the stream is LATENCY samples late)."""
    return audio[first * BAR + LATENCY:last * BAR + LATENCY]


# -- synth -----------------------------------------------------------------------------------

def test_ticks_to_samples():
    assert ticks_to_samples(T, 120.0) == 24_000
    assert ticks_to_samples(4 * T, 100.0) == 115_200
    assert ticks_to_samples(1, 97.0) == round(60 * SAMPLE_RATE / (97.0 * T))
    with pytest.raises(ValueError):
        ticks_to_samples(T, 0.0)


def test_same_part_renders_byte_identical_whatever_came_before_and_on_any_instance(synth):
    part = bar_part(40, 0.9)
    first = synth.render_part(part, tempo_bpm=TEMPO)
    synth.render_part(bar_part(3, 0.3), tempo_bpm=97.0)  # something else in between
    again = synth.render_part(part, tempo_bpm=TEMPO)
    with SoundFontSynth() as other:
        other.render_part(bar_part(7, 0.7), tempo_bpm=140.0)
        elsewhere = other.render_part(part, tempo_bpm=TEMPO)
    assert first.dtype == np.float32 and first.shape[1] == 2 and len(first) % 64 == 0
    assert np.abs(first).max() > 0.01
    assert first.tobytes() == again.tobytes() == elsewhere.tobytes()


def test_silent_part_renders_zeros_as_long_as_the_bar(synth):
    audio = synth.render_part(Part(notes=(), programs=dict(PROGRAMS)), tempo_bpm=TEMPO)
    assert len(audio) == BAR and not np.any(audio)


def test_tail_ends_when_the_sound_has_died_away(synth):
    hit = Part(notes=(Note(0, T // 4, 0, 60, 100),), programs={0: (0, 0)}, length_ticks=T)  # a piano staccato
    audio = synth.render_part(hit, tempo_bpm=TEMPO, tail_max_s=4.0)
    note_off = ticks_to_samples(T // 4, TEMPO)
    assert BAR // 4 <= len(audio) < note_off + 4 * SAMPLE_RATE - 1000  # ended before the cap
    assert np.abs(audio[-2400:]).max() < 1e-3  # the end is down at the noise floor, no cut-off note
    pad = Part(notes=(Note(0, 2 * T, 0, 60, 100),), programs={0: (0, 89)})
    capped = synth.render_part(pad, tempo_bpm=TEMPO, tail_max_s=0.25)
    assert len(capped) <= ticks_to_samples(4 * T, TEMPO) + int(0.25 * SAMPLE_RATE) + 64


def test_notes_start_at_their_tick(synth):
    late = Part(notes=(Note(2 * T, T, 0, 60, 110),), programs={0: (0, 0)})
    audio = synth.render_part(late, tempo_bpm=TEMPO)
    onset = int(np.flatnonzero(np.abs(audio).max(axis=1) > 1e-4)[0])
    assert abs(onset - ticks_to_samples(2 * T, TEMPO)) <= 64 + 48  # block quantization + attack


def test_missing_soundfont_names_the_package(tmp_path):
    with pytest.raises(CrowdsoundError, match="apt-get install fluid-soundfont-gm"):
        find_soundfont(tmp_path / "nope.sf2")


# -- reverb ----------------------------------------------------------------------------------

def test_reverb_is_linear_deterministic_and_decays_like_a_hall():
    rng = np.random.default_rng(1)
    a = (0.1 * rng.standard_normal((30_000, 2))).astype(np.float32)
    b = np.zeros((30_000, 2), dtype=np.float32)
    b[20_000:] = 0.2 * rng.standard_normal((10_000, 2))
    ir = impulse_response()
    wet_a = apply_reverb(a)
    assert wet_a.shape == (30_000 + len(ir) - 1, 2) and wet_a.dtype == np.float32
    assert wet_a.tobytes() == apply_reverb(a).tobytes()
    together = apply_reverb(a + b).astype(np.float64)
    apart = wet_a.astype(np.float64) + apply_reverb(b)
    assert np.abs(together - apart).max() < 1e-5
    energy = np.cumsum((ir[:, 0] ** 2)[::-1])[::-1]
    decay_db = 10 * np.log10(np.maximum(energy / energy[0], 1e-30))
    t5, t25 = np.argmax(decay_db < -5) / SAMPLE_RATE, np.argmax(decay_db < -25) / SAMPLE_RATE
    assert 1.5 < 3 * (t25 - t5) < 2.2  # RT60 from T20
    assert abs(np.corrcoef(ir[:, 0], ir[:, 1])[0, 1]) < 0.1  # decorrelated sides: a wide tail


# -- part JSON and the mix bus ---------------------------------------------------------------

def test_part_json_round_trip_is_exact():
    part = Part(notes=(Note(0, 480, 3, 71, 90, chromatic=True), Note(240, 120, 9, 42, 60)),
                programs={3: (0, 73), 9: (128, 25)}, length_ticks=3 * T, controls=((0, 3, 11, 100),))
    assert part_from_json(json.loads(json.dumps(part_to_json(part)))) == part
    with pytest.raises(ValueError):
        part_from_json({"notes": [[1, 2]]})


def test_mix_bus_overlap_adds_from_the_cursor():
    bus = MixBus()
    bus.add(10, np.ones((5, 2)))
    bus.add(12, np.ones((5, 2)))
    assert bus.end == 17
    first = bus.take(12)
    assert first[:10].sum() == 0 and first[10:12, 0].tolist() == [1.0, 1.0]
    bus.add(5, np.full((10, 2), 3.0))  # starts before the cursor: only 12..14 are added
    rest = bus.take(10)
    assert rest[:, 1].tolist() == [5.0, 5.0, 5.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0]
    assert bus.cursor == 22 and bus.end == 22


# -- mastering -------------------------------------------------------------------------------

def _bursty_signal(seconds: float) -> np.ndarray:
    """Noise and tones with sudden 20 dB level jumps and full-scale peaks."""
    rng = np.random.default_rng(5)
    n = int(seconds * SAMPLE_RATE)
    t = np.arange(n) / SAMPLE_RATE
    level = np.where((t % 6) < 3, 0.02, 0.2)[:, None]
    x = level * rng.standard_normal((n, 2)) + 0.05 * np.sin(2 * np.pi * 220 * t)[:, None]
    burst = int(4.5 * SAMPLE_RATE)
    x[burst:burst + 4800] = 0.99 * np.sign(np.sin(2 * np.pi * 3000 * t[:4800]))[:, None]  # square wave: ISPs
    return x.astype(np.float32)


def _master_in_chunks(x: np.ndarray, sizes: tuple[int, ...], restart_at: int | None = None) -> np.ndarray:
    master, out, i = Master(), [], 0
    while i < len(x):
        if restart_at is not None and i >= restart_at:  # through JSON, as a restarted process would
            master, restart_at = Master.from_state(json.loads(json.dumps(master.to_state()))), None
        n = sizes[len(out) % len(sizes)]
        out.append(master.process(x[i:i + n]))
        i += n
    return np.concatenate(out)


def test_mastering_does_not_depend_on_how_the_stream_is_cut_and_restarts_exactly():
    x = _bursty_signal(20.0)
    reference = Master().process(x)
    for sizes in ((4800,), (1, 7, 13_331, 4799, 64, 100_000, 3), (24_000, 11_111)):
        assert np.array_equal(_master_in_chunks(x, sizes), reference), sizes
        assert np.array_equal(_master_in_chunks(x, sizes, restart_at=len(x) // 2), reference), sizes
    assert len(json.dumps(Master().to_state())) < 20_000


def test_mastering_has_a_fixed_latency_and_starts_silent():
    x = np.zeros((2000, 2), dtype=np.float32)
    x[500] = 0.25
    out = Master().process(x)
    assert out.dtype == np.int16 and out.shape == (2000, 2)
    assert not np.any(out[:500 + LATENCY]) and np.argmax(np.abs(out[:, 0])) == 500 + LATENCY


def test_true_peaks_are_held_under_the_ceiling():
    # A full-scale tone at fs/4 with 45 degrees of phase: samples at 0.707, true peak 3 dB higher.
    n = 10 * SAMPLE_RATE
    tone = np.sin(np.pi / 2 * np.arange(n) + np.pi / 4) / np.sin(np.pi / 4) * 0.999 * 0.707
    x = np.stack([tone, -tone], axis=1).astype(np.float32)
    out = Master().process(x)[LATENCY:]
    assert _true_peak_dbtp(out) <= -1.0


def test_a_climax_hold_keeps_the_goal_louder_than_its_run_up_but_bounds_the_burst():
    # 30 s of quiet music, then full music at the goal: without the hold the gain ducks the
    # goal within a second or two; with it the goal stays louder, up to target + 6 LU.
    rng = np.random.default_rng(3)
    quiet = rng.normal(0, 0.01, (30 * SAMPLE_RATE, 2))
    loud = rng.normal(0, 0.08, (14 * SAMPLE_RATE, 2))
    x = np.concatenate([quiet, loud]).astype(np.float32)
    goal = len(quiet)
    plain, held = Master(), Master()
    outputs = [plain.process(x)[LATENCY:]]
    run_up = held.process(x[:goal])
    held.hold(goal + 12 * SAMPLE_RATE)  # as the score does when the goal's stinger is scheduled
    outputs.append(np.concatenate([run_up, held.process(x[goal:])])[LATENCY:])
    after = [_loudness(o[goal + 4 * SAMPLE_RATE:goal + 12 * SAMPLE_RATE]) for o in outputs]
    before = _loudness(outputs[1][goal - 8 * SAMPLE_RATE:goal])
    assert after[1] >= after[0] + 2.0 and after[1] > before
    settled = max(_loudness(outputs[1][t:t + 3 * SAMPLE_RATE])
                  for t in range(goal + 4 * SAMPLE_RATE, goal + 10 * SAMPLE_RATE, SAMPLE_RATE))
    assert settled <= -23.0 + 6.0 + 0.5
    state = json.loads(json.dumps(held.to_state()))
    assert Master.from_state(state).to_state() == held.to_state()  # the hold survives a restart


# -- the renderer on a whole score -----------------------------------------------------------

def test_score_meets_the_broadcast_loudness_target(stream):
    audio, _ = stream
    assert len(audio) == TOTAL
    assert -24.0 <= _loudness(audio) <= -22.0
    assert _true_peak_dbtp(audio) <= -1.0


def test_dynamics_are_kept(stream):
    audio, _ = stream
    quiet, loud = _loudness(_bars(audio, 14, 24)), _loudness(_bars(audio, 40, 52))
    assert loud - quiet >= 6.0, (quiet, loud)  # several LU: the quiet spell stays quiet
    swell_start, swell_end = _loudness(_bars(audio, 24, 28)), _loudness(_bars(audio, 32, 36))
    assert swell_end - swell_start >= 3.0, (swell_start, swell_end)  # a swell stays a swell
    fade_start, fade_end = _loudness(_bars(audio, 52, 56)), _loudness(_bars(audio, 60, 64))
    assert fade_start - fade_end >= 2.0, (fade_start, fade_end)


def _jump_score(audio: np.ndarray) -> np.ndarray:
    """How much the waveform jumps between samples i-1 and i.

    A jump of size a adds +a and -a to the second differences at i and i+1, so the smaller
    of those two (largest channel) is large at a jump, while a steep slope or one sharp
    sample of music makes only one of them large.
    """
    d2 = np.zeros(len(audio) + 1)
    d2[2:-1] = np.abs(np.diff(audio.astype(np.int64), n=2, axis=0)).max(axis=1)
    return np.minimum(d2[:-1], d2[1:])


def _join_clicks(audio: np.ndarray, joins: list[int], window: int = 240) -> tuple[list[int], float]:
    """Joins that jump more than anything within +-5 ms (plus 2 LSB), and the median ratio of
    join score to local median score over sounding joins (about 1 when joins are unremarkable).
    """
    score = _jump_score(audio)
    loudest = np.abs(audio.astype(np.int32)).max(axis=1)
    outliers, ratios = [], []
    for j in joins:
        around = np.concatenate((score[j - window:j - 1], score[j + 2:j + window]))
        if score[j] > around.max() + 2:
            outliers.append(j)
        if loudest[j - window:j + window].max() > 1000:
            ratios.append(score[j] / max(1.0, float(np.median(around))))
    return outliers, float(np.median(ratios))


def test_no_clicks_at_chunk_joins(stream):
    audio, joins = stream
    assert len(joins) > 100
    outliers, typical = _join_clicks(audio, joins)
    assert outliers == [] and typical < 1.5
    # The criterion is sensitive: gain steps of +-0.25 dB at the joins (a block-wise gain).
    gain = np.ones(len(audio))
    for k, j in enumerate(joins):
        gain[j:] *= 10 ** ((0.25 if k % 2 else -0.25) / 20)
    stepped = np.rint(audio * gain[:, None]).astype(np.int16)
    outliers, typical = _join_clicks(stepped, joins)
    assert len(outliers) > len(joins) // 10 and typical > 1.5


def test_restart_mid_stream_continues_byte_identical(stream):
    audio, _ = stream
    restart_at = 29 * BAR + 12_345  # inside the swell, with bars and reverb tails pending
    with SoundFontSynth() as first_synth:
        before = Session(MusicRenderer(first_synth))
        head = before.play(CHUNKS, restart_at)
        state = json.loads(json.dumps(before.renderer.to_state()))
    assert state["cursor"] == restart_at and state["parts"]  # something still rings
    assert len(json.dumps(state)) < 60_000
    with SoundFontSynth() as second_synth:
        after = Session(MusicRenderer.from_state(state, second_synth), next_bar=before.next_bar)
        tail = after.play(CHUNKS_AFTER_RESTART, TOTAL)  # cut differently, too
    assert np.array_equal(np.concatenate(head), audio[:restart_at])
    assert np.concatenate(tail).tobytes() == audio[restart_at:].tobytes()


def test_schedule_refuses_the_past_and_pull_gives_silence_when_nothing_plays(synth):
    renderer = MusicRenderer(synth)
    assert not np.any(renderer.pull(1000))
    with pytest.raises(ValueError, match="before the cursor"):
        renderer.schedule(999, bar_part(0, 0.5), TEMPO)
    renderer.schedule(1000, bar_part(0, 0.5), TEMPO)
    assert renderer.pull(2 * BAR).any()
