"""Known-answer tests of the crowd features: tones, noise and clicks give known values."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.features import (
    FEATURE_NAMES,
    SHAPE_BANDS,
    WARM_S,
    Baseline,
    FrameTail,
    analyze_frame,
    analyze_pieces,
    feature_vector,
    tail_after,
    tempo_from_onsets,
    timbre,
    window_summary,
)

RATE = 48_000


def _frames(signal: np.ndarray, frame: int = 4800):
    previous, out = None, []
    for start in range(0, len(signal) - frame + 1, frame):
        features, previous = analyze_frame(signal[start:start + frame], RATE, tail=previous)
        out.append(features)
    return out


def _clicks(bpm: float, seconds: float, offset: int = 137) -> np.ndarray:
    x = 0.001 * np.random.default_rng(1).standard_normal(int(RATE * seconds))
    x[offset::int(RATE * 60 / bpm)] += 0.5
    return x


def _band_of(hz: float) -> int:
    return next(i for i, (low, high) in enumerate(SHAPE_BANDS) if low <= hz < high)


def _summary(signal: np.ndarray):
    frames = _frames(signal)
    return window_summary(frames[-30:], np.concatenate([f.onsets for f in frames]))


def test_a_full_scale_sine_is_minus_3_dbfs_with_its_energy_in_its_band():
    t = np.arange(RATE * 3) / RATE
    summary = _summary(np.sin(2 * np.pi * 1100 * t))
    assert summary.loudness_db == pytest.approx(-3.01, abs=0.02)
    assert int(np.argmax(summary.band_db)) == _band_of(1100)
    assert summary.band_db[_band_of(1100)] == pytest.approx(0, abs=0.5)  # nearly all the energy
    assert summary.brightness_oct == pytest.approx(np.log2(np.sqrt(np.prod(SHAPE_BANDS[_band_of(1100)])) / 1000),
                                                   abs=0.05)
    assert summary.spread_oct < 0.1  # one band: no spread


def test_white_noise_is_bright_and_spread_and_a_whistle_tone_is_peaky():
    noise = 0.1 * np.random.default_rng(0).standard_normal(RATE * 3)
    summary = _summary(noise)
    assert summary.loudness_db == pytest.approx(-20, abs=0.3)
    assert summary.brightness_oct > 1.2 and summary.spread_oct > 1.0  # energy rises with frequency: bright, wide
    t = np.arange(RATE * 3) / RATE
    whistled = _summary(noise * 0.1 + 0.1 * np.sin(2 * np.pi * 3000 * t))
    assert whistled.whistle_db > summary.whistle_db + 20


def test_shouting_moves_the_energy_up_from_the_fundamentals_to_the_first_formant():
    # A murmur's energy sits on the voices' fundamentals (~160-320 Hz); a roar's on the raised
    # first formant of shouted vowels (600-1200 Hz): vocal effort tells them apart at any gain.
    t = np.arange(RATE * 3) / RATE
    rng = np.random.default_rng(7)
    murmur = np.sin(2 * np.pi * 220 * t) + 0.3 * np.sin(2 * np.pi * 800 * t) + 0.01 * rng.standard_normal(len(t))
    roar = 0.3 * np.sin(2 * np.pi * 220 * t) + np.sin(2 * np.pi * 800 * t) + 0.01 * rng.standard_normal(len(t))
    assert _summary(0.1 * roar).effort_db > _summary(0.1 * murmur).effort_db + 15


@settings(max_examples=12, deadline=None)
@given(st.floats(min_value=-30, max_value=20))
def test_nothing_but_level_depends_on_the_gain(gain_db):
    rng = np.random.default_rng(11)
    t = np.arange(RATE * 3) / RATE
    crowd = 0.02 * rng.standard_normal(len(t)) + 0.01 * np.sin(2 * np.pi * 700 * t) * (1 + np.sin(2 * np.pi * 2 * t))
    reference = feature_vector(_summary(crowd), Baseline())
    louder = feature_vector(_summary(crowd * 10 ** (gain_db / 20)), Baseline())
    level = FEATURE_NAMES.index("loudness_rel_db")
    others = [i for i in range(len(FEATURE_NAMES)) if i != level]
    np.testing.assert_allclose(louder[others], reference[others], rtol=1e-3, atol=2e-3)


def test_a_cold_baseline_does_not_count_level_until_it_has_heard_the_venue():
    loud = window_summary(_frames(0.2 * np.random.default_rng(5).standard_normal(RATE * 3)), np.zeros(1))
    quiet = Baseline().update(-40.0, 800.0)  # has heard one second of a quiet crowd
    warm = quiet
    for _ in range(int(WARM_S)):
        warm = warm.update(-40.0, 800.0)
    rel = FEATURE_NAMES.index("loudness_rel_db")
    assert feature_vector(loud, Baseline())[rel] == 0.0  # nothing heard: nothing to compare with
    cold, full = feature_vector(loud, quiet)[rel], feature_vector(loud, warm)[rel]
    assert full == pytest.approx(loud.loudness_db + 40, abs=0.01)  # warm: in full
    assert 0 < cold < 0.1 * full  # one second heard: barely counts


@pytest.mark.parametrize("bpm", [72, 97, 120, 150, 180])
def test_clicks_at_a_known_rate_give_that_tempo(bpm):
    frames = _frames(_clicks(bpm, 8.0))
    envelope = np.concatenate([f.onsets for f in frames])
    tempo, strength = tempo_from_onsets(envelope)
    assert tempo == pytest.approx(bpm, rel=0.02)
    assert strength > 0.5


def test_steady_noise_has_no_tempo():
    frames = _frames(0.1 * np.random.default_rng(3).standard_normal(RATE * 8))
    summary = window_summary(frames[-30:], np.concatenate([f.onsets for f in frames]))
    assert summary.tempo_bpm is None and summary.periodicity < 0.3


def test_a_click_on_a_frame_boundary_is_still_an_onset():
    x = np.zeros(RATE)
    x[4800 * 3] = 1.0  # exactly where a frame (and a 20 ms hop) starts
    frames = _frames(x)
    assert max(frames[3].onsets) > 20 * max(frames[1].onsets + (1e-9,))


@pytest.mark.parametrize("hop", range(5))
def test_an_onset_starts_in_the_20_ms_hop_where_it_happens(hop):
    # Onset k of a frame is the change from the 128 ms window ending where hop k starts to
    # the one ending where it ends. A click is heard in its own hop (at the edge of the Hann
    # window, so the jump is largest as it moves in, one hop later).
    x = 0.001 * np.random.default_rng(2).standard_normal(RATE)
    x[4800 * 4 + 960 * hop + 300] += 1.0  # in hop `hop` of frame 4
    envelope = np.concatenate([f.onsets for f in _frames(x)])
    at = 4 * 5 + hop
    assert envelope[at] > 5 * np.median(envelope) and envelope[at - 1] < envelope[at] / 4
    assert int(np.argmax(envelope)) in (at, at + 1)


def test_the_tail_carries_the_last_window_so_a_restarted_stream_continues_exactly():
    x = 0.1 * np.random.default_rng(4).standard_normal(RATE)
    straight = _frames(x)
    first, tail = None, None
    for start in range(0, 4800 * 4, 4800):
        first, tail = analyze_frame(x[start:start + 4800], RATE, tail=tail)
    restored = FrameTail(tail.samples.copy(), None)  # band energies unknown: computed from the samples
    again, _ = analyze_frame(x[4800 * 4:4800 * 5], RATE, tail=restored)
    assert again == straight[4]
    assert tail_after(x[4800 * 4:4800 * 5], RATE, tail).tolist() == \
        analyze_frame(x[4800 * 4:4800 * 5], RATE, tail=tail)[1].samples.tolist()


@pytest.mark.parametrize("rate", [48_000, 44_100, 16_000])
@pytest.mark.parametrize("seconds", [1.0, 0.6, 0.0127, 1.2345])
@pytest.mark.parametrize("before", ["none", "full", "short"])
def test_the_tail_after_a_long_or_odd_frame_is_the_one_its_analysis_leaves(rate, seconds, before):
    """What the worker keeps of a frame its helper analysed is the tail the analysis itself
    would have left, for one-second frames, a first frame cut short, a frame shorter than a
    hop, a ragged length, and a NaN in the audio."""
    rng = np.random.default_rng(int(seconds * 1000) + rate)
    frame = 0.1 * rng.standard_normal(int(rate * seconds)).astype(np.float32)
    frame[len(frame) // 3] = np.nan
    _, full = analyze_pieces(0.1 * rng.standard_normal(rate), rate)
    tail = {"none": None, "full": full, "short": FrameTail(full.samples[: len(full.samples) // 2], None)}[before]
    expected = analyze_pieces(frame, rate, tail=tail)[1].samples
    kept = tail_after(frame, rate, tail)
    assert kept.dtype == expected.dtype and kept.tolist() == expected.tolist()


@settings(max_examples=25, deadline=None)
@given(st.floats(min_value=-40, max_value=20))
def test_relative_loudness_does_not_depend_on_the_microphones_gain(gain_db):
    rng = np.random.default_rng(5)
    murmur = 0.02 * rng.standard_normal(RATE * 10)
    roar = 0.2 * rng.standard_normal(RATE * 3)
    scale = 10 ** (gain_db / 20)
    frames = _frames(np.concatenate([murmur, roar]) * scale)
    baseline = Baseline()
    for second in range(10):
        chunk = window_summary(frames[second * 10:(second + 1) * 10], np.zeros(1))
        baseline = baseline.update(chunk.loudness_db, chunk.centroid_hz, hop_s=WARM_S / 10)  # warm after 10 updates
    vector = feature_vector(window_summary(frames[-30:], np.zeros(1)), baseline)
    loudness_rel = vector[FEATURE_NAMES.index("loudness_rel_db")]
    assert loudness_rel == pytest.approx(20, abs=0.5)  # the roar is 20 dB over the murmur, at any gain


def test_the_baseline_follows_the_floor_not_the_celebration():
    baseline = Baseline()
    for _ in range(60):
        baseline = baseline.update(-30.0, 800.0)
    for _ in range(30):  # 30 s of celebration
        baseline = baseline.update(-10.0, 1500.0)
    assert baseline.loudness_db < -20  # still near the murmur
    for _ in range(30):  # quiet again: the baseline comes back down fast
        baseline = baseline.update(-30.0, 800.0)
    assert baseline.loudness_db < -29


def _stream(signal: np.ndarray) -> list:
    """``signal`` heard as the worker hears a match: 100 ms frames into one analyzer."""
    from schemas.clock import MatchClock, Period
    from streams.windows import CrowdAnalyzer, WindowSpec

    analyzer, windows, frame = CrowdAnalyzer(WindowSpec()), [], RATE // 10
    for start in range(0, len(signal) - frame + 1, frame):
        windows.extend(analyzer.add_frame(MatchClock(Period.FIRST_HALF, start * 1000 // RATE),
                                          signal[start:start + frame], RATE))
    return windows


def test_in_a_warm_stream_the_spectral_shape_counts_against_the_venues_usual_one():
    # The same murmur through a plain and a bright microphone (+10 dB around 850 Hz): the
    # absolute shape differs by the EQ, the shape against the stream's own baseline does not;
    # and when the crowd then shouts (energy up at its first formant) that shows in full.
    from streams.training.augment import peaking

    rng = np.random.default_rng(3)
    t = np.arange(RATE * 45) / RATE
    murmur = 0.02 * rng.standard_normal(len(t)) + 0.03 * np.sin(2 * np.pi * 220 * t)
    shout = np.where(t >= 35, 0.03 * np.sin(2 * np.pi * 850 * t), 0.0)
    absolute, relative = FEATURE_NAMES.index("band_847hz_db"), FEATURE_NAMES.index("band_847hz_rel_db")
    heard = {}
    for microphone, audio in (("plain", murmur), ("bright", peaking(murmur, 850.0, 10.0))):
        windows = _stream(audio + shout)
        calm = [w.features for w in windows if 25_000 <= w.start.ms < 32_000]
        shouting = [w.features for w in windows if w.start.ms >= 37_000]
        heard[microphone] = (np.mean([v[absolute] for v in calm]), np.mean([v[relative] for v in calm]),
                             np.mean([v[relative] for v in shouting]))
    assert heard["bright"][0] > heard["plain"][0] + 5  # the microphone colours the absolute shape
    for microphone, (_, usual, shouted) in heard.items():
        assert abs(usual) < 1.0, (microphone, heard)  # against its own baseline: the usual self
        assert shouted > 3.0, (microphone, heard)  # the shout shows, whatever the microphone


def test_a_checkpointed_baseline_keeps_its_usual_shape():
    import json
    from dataclasses import asdict

    baseline, crowd = Baseline(), _frames(0.05 * np.random.default_rng(2).standard_normal(RATE))
    for _ in range(5):
        baseline = baseline.update(-30.0, 800.0, timbre=timbre(crowd))
    assert baseline.band_db is not None and len(baseline.band_db) == len(SHAPE_BANDS)
    assert Baseline(**json.loads(json.dumps(asdict(baseline)))) == baseline  # a JSON list comes back a tuple
