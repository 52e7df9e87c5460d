"""Replay artifacts: broadcast mastering, crowd mix, bar-aligned reel, timeline PNG, index, WAV.

No broker and no synthesizer: every input is synthetic and seeded. Loudness and true peak are
measured here independently of the code under test, the way an editor's meter would: the
pyloudnorm BS.1770 meter and the largest sample of a 4x ``resample_poly`` oversampling.
"""

from __future__ import annotations

import json
import time
import warnings
from pathlib import Path

import matplotlib.image
import numpy as np
import pyloudnorm
import pytest
import soundfile
from scipy.signal import resample_poly

from consumers.replay.artifacts import (
    ReelClip, broadcast_master, join_reel, mix_under_crowd, timeline_png, write_index_markdown, write_json,
    write_wav,
)
from consumers.replay.timeline_plot import STATE_COLOURS

SR = 48_000
CROWD_SR = 44_100


def lufs(audio: np.ndarray, sample_rate: int = SR) -> float:
    x = audio / 32768.0 if audio.dtype == np.int16 else audio
    return float(pyloudnorm.Meter(sample_rate).integrated_loudness(x))


def true_peak_dbtp(audio: np.ndarray) -> float:
    x = audio / 32768.0 if audio.dtype == np.int16 else audio
    return float(20 * np.log10(np.abs(resample_poly(x, 4, 1, axis=0)).max()))


# -- material ---------------------------------------------------------------------------------

def _t(seconds: float) -> np.ndarray:
    return np.arange(int(seconds * SR)) / SR


def tone_bursts(seconds: float = 20.0, level: float = 0.9) -> np.ndarray:
    """Half-second 220/330 Hz bursts every second over noise: loud, with dynamics."""
    t = _t(seconds)
    rng = np.random.default_rng(11)
    on = (np.floor(t * 2) % 2 == 0)
    tone = np.stack([np.sin(2 * np.pi * 220 * t), np.sin(2 * np.pi * 330 * t)], axis=1) * on[:, None]
    return np.clip(level * tone + rng.normal(0.0, 0.05, (len(t), 2)), -1.0, 1.0)


def sine_997(seconds: float = 10.0) -> np.ndarray:
    """The EBU reference tone at 0 dBFS on both channels."""
    s = np.sin(2 * np.pi * 997 * _t(seconds))
    return np.stack([s, s], axis=1)


def clicks(seconds: float = 10.0) -> np.ndarray:
    """Full-scale two-sample clicks three times a second over a quiet noise bed (claps)."""
    rng = np.random.default_rng(12)
    x = rng.normal(0.0, 0.01, (int(seconds * SR), 2))
    x[::SR // 3] = 0.99
    x[1::SR // 3] = -0.99
    return x


def intersample(seconds: float = 5.0) -> np.ndarray:
    """A 12 kHz sine sampled 45 degrees off its crests: samples at 0 dBFS, true peak +3 dBTP."""
    s = np.sin(2 * np.pi * 12_000 * _t(seconds) + np.pi / 4) / np.sin(np.pi / 4)
    return np.stack([s, -s], axis=1)


MATERIAL = {
    "loud_bursts": tone_bursts,
    "quiet_bursts": lambda: tone_bursts() * 0.002,  # ~ -60 dBFS: +37 dB of gain
    "sine_997_0dbfs": sine_997,
    "clicks_over_bed": clicks,
    "intersample_peaks": intersample,
    "int16_input": lambda: np.rint(tone_bursts(10.0) * 0.5 * 32767).astype(np.int16),
}


# -- broadcast_master -------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(MATERIAL))
def test_master_hits_loudness_and_true_peak(name: str):
    audio = MATERIAL[name]()
    out = broadcast_master(audio, SR)
    assert out.dtype == np.int16 and out.shape == audio.shape
    assert abs(lufs(out) - (-23.0)) <= 0.5, lufs(out)
    assert true_peak_dbtp(out) <= -1.0


def test_master_other_targets():
    out = broadcast_master(tone_bursts(10.0), SR, target_lufs=-16.0, ceiling_dbtp=-2.0)
    assert abs(lufs(out) - (-16.0)) <= 0.5
    assert true_peak_dbtp(out) <= -2.0


def test_master_without_limiting_is_one_gain():
    """When the ceiling is not reached the dynamics are untouched: out = g * in, one g."""
    audio = tone_bursts(10.0) * 0.3
    audio[: 5 * SR] *= 0.1  # a quiet first half stays 20 dB quieter
    out = broadcast_master(audio, SR) / 32768.0
    loud = np.abs(audio) > 0.05
    ratio = out[loud] / audio[loud]
    assert ratio.max() / ratio.min() < 1.01


def test_limiter_is_smooth_not_a_clipper():
    """A pulse train (crest factor ~16 dB) pushed into the limiter keeps its spectrum.

    A hard clip at the same level puts ~-16 dB of its energy above the 20th harmonic; the
    look-ahead limiter's slow gain leaves it 50+ dB down.
    """
    t = _t(10.0)
    pulses = sum(np.cos(2 * np.pi * 100 * k * t) for k in range(1, 21)) / 20
    audio = np.stack([pulses, pulses], axis=1)
    out = broadcast_master(audio, SR, target_lufs=-14.0)  # unlimited, the peaks would be at -0.4 dBTP
    assert abs(lufs(out) - (-14.0)) <= 0.5
    assert true_peak_dbtp(out) <= -1.0
    seg = out[2 * SR:8 * SR, 0] / 32768.0
    power = np.abs(np.fft.rfft(seg * np.hanning(len(seg)))) ** 2
    freqs = np.fft.rfftfreq(len(seg), 1 / SR)
    assert 10 * np.log10(power[freqs > 2300].sum() / power.sum()) < -50


def test_master_is_deterministic():
    audio = clicks(5.0)
    assert np.array_equal(broadcast_master(audio, SR), broadcast_master(audio.copy(), SR))


def test_master_silence_stays_silent_without_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = broadcast_master(np.zeros((3 * SR, 2)), SR)
        empty = broadcast_master(np.zeros((0, 2)), SR)
    assert out.dtype == np.int16 and out.shape == (3 * SR, 2) and not np.any(out)
    assert empty.shape == (0, 2)


def test_master_short_audio_is_peak_normalised():
    audio = sine_997(0.2) * 0.1  # under one gating block: no integrated loudness to measure
    out = broadcast_master(audio, SR)
    assert -1.6 <= true_peak_dbtp(out) <= -1.0
    big = np.abs(audio[:, 0]) > 0.05
    ratio = out[big, 0] / 32768.0 / audio[big, 0]
    assert ratio.max() / ratio.min() < 1.001  # one gain, no limiting


def test_master_under_the_gate_is_left_alone():
    """Every block under -70 LUFS: no loudness to normalise, so no 50 dB lift of a hiss."""
    audio = np.random.default_rng(3).normal(0.0, 3e-5, (2 * SR, 2))
    out = broadcast_master(audio, SR)
    assert np.abs(out.astype(np.float64) - np.rint(audio * 32768)).max() <= 1


def test_master_hopeless_crest_factor_still_holds_the_ceiling():
    audio = np.zeros((5 * SR, 2))
    audio[::SR] = 0.9  # lone clicks in silence: -23 LUFS would need peaks far over 0 dBFS
    out = broadcast_master(audio, SR)
    assert true_peak_dbtp(out) <= -1.0
    assert np.isfinite(lufs(out))


def test_master_mono_and_bad_input():
    mono = tone_bursts(5.0)[:, :1]
    out = broadcast_master(mono, SR)
    assert out.shape == mono.shape and abs(lufs(out) + 23.0) <= 0.5
    with pytest.raises(ValueError):
        broadcast_master(np.full((SR, 2), np.nan), SR)
    with pytest.raises(ValueError):
        broadcast_master(np.zeros(SR), SR)
    with pytest.raises(TypeError):
        broadcast_master(np.zeros((SR, 2), dtype=np.int32), SR)


# -- mix_under_crowd --------------------------------------------------------------------------

def _music(seconds: float = 6.0) -> np.ndarray:
    return tone_bursts(seconds, level=0.3)


def _crowd(seconds: float, rate: int = CROWD_SR, level: float = 0.5) -> np.ndarray:
    rng = np.random.default_rng(21)
    return rng.normal(0.0, level, int(seconds * rate))  # mono, hot: louder than the music


def test_mix_keeps_length_and_puts_the_crowd_under_the_music():
    music = _music()
    crowd = _crowd(4.0)  # shorter than the music: padded
    assert lufs(np.repeat(crowd[:, None], 2, 1), CROWD_SR) > lufs(music) + 5  # hotter than the music in
    mix = mix_under_crowd(music, crowd, music_sample_rate=SR, crowd_sample_rate=CROWD_SR)
    assert mix.shape == music.shape and mix.dtype == np.float64
    crowd_part = mix - music  # music_level_db = 0: the music is unchanged
    assert lufs(crowd_part) < lufs(music) - 7.0
    assert abs(lufs(crowd_part[: 4 * SR]) - (lufs(music) - 8.0)) < 1.0
    assert not np.any(crowd_part[int(4.01 * SR):])  # past the crowd's end: silence, not garbage


def test_mix_resamples_and_trims_the_crowd():
    music = _music(3.0)
    t = np.arange(int(5.0 * CROWD_SR)) / CROWD_SR
    crowd = np.stack([np.sin(2 * np.pi * 1000 * t), np.sin(2 * np.pi * 1000 * t)], axis=1) * 0.2
    mix = mix_under_crowd(np.zeros_like(music), crowd, music_sample_rate=SR, crowd_sample_rate=CROWD_SR)
    assert mix.shape == music.shape
    spectrum = np.abs(np.fft.rfft(mix[:, 0] * np.hanning(len(mix))))
    assert np.fft.rfftfreq(len(mix), 1 / SR)[np.argmax(spectrum)] == pytest.approx(1000.0, abs=1.0)
    # Silent music: no reference loudness, so crowd_level_db is a plain gain (-8 dB).
    assert np.abs(mix).max() == pytest.approx(0.2 * 10 ** (-8 / 20), rel=0.01)


def test_mix_levels_and_determinism():
    music, crowd = _music(), _crowd(6.0)
    quieter = mix_under_crowd(music, crowd, music_sample_rate=SR, crowd_sample_rate=CROWD_SR,
                              music_level_db=-6.0, crowd_level_db=-20.0)
    again = mix_under_crowd(music, crowd, music_sample_rate=SR, crowd_sample_rate=CROWD_SR,
                            music_level_db=-6.0, crowd_level_db=-20.0)
    assert np.array_equal(quieter, again)
    crowd_part = quieter - music * 10 ** (-6 / 20)
    assert abs(lufs(crowd_part) - (lufs(music) - 20.0)) < 1.0
    int16 = mix_under_crowd(np.rint(music * 32767).astype(np.int16), crowd, music_sample_rate=SR,
                            crowd_sample_rate=CROWD_SR)
    assert int16.shape == music.shape


# -- join_reel --------------------------------------------------------------------------------


def _piece(seconds: float, freq: float, name: str, key: str = "D major", tempo: float = 120.0) -> ReelClip:
    """A clip as compose_clip leaves it: starting from silence and released to silence."""
    n = int(seconds * SR)
    t = np.arange(n) / SR
    envelope = np.minimum(1.0, np.minimum(t / 0.05, (seconds - t) / 0.8))
    s = 0.5 * np.sin(2 * np.pi * freq * t) * envelope
    return ReelClip(audio=np.stack([s, s], axis=1), name=name, key=key, end_key=key, tempo_bpm=tempo,
                    end_tempo_bpm=tempo)


def test_reel_plays_each_piece_whole_and_never_overlaps_two():
    clips = [_piece(2.0, 220.0, "a"), _piece(1.5, 330.0, "b", "F# minor", 98.25), _piece(1.0, 440.0, "c")]
    reel = join_reel(clips, sample_rate=SR)
    assert len(reel.audio) == sum(len(c.audio) for c in clips)
    assert reel.starts == (0, 2 * SR, int(3.5 * SR))
    for clip, start in zip(clips, reel.starts):
        assert np.array_equal(reel.audio[start:start + len(clip.audio)], clip.audio)
    assert reel.audio.shape[1] == 2 and reel.audio.dtype == np.float64
    assert reel.duration_s == pytest.approx(4.5)
    first = reel.joins[0].to_json()
    assert first["from"] == "a" and first["to"] == "b" and first["at_s"] == 2.0
    assert (first["from_key"], first["to_key"], first["to_tempo_bpm"]) == ("D major", "F# minor", 98.25)


def test_reel_joins_are_silent_where_pieces_meet():
    clips = [_piece(1.0, 220.0, "a"), _piece(1.0, 330.0, "b")]
    reel = join_reel(clips, sample_rate=SR).audio[:, 0]
    steady = max(np.abs(np.diff(c.audio[:, 0])).max() for c in clips)
    join = np.abs(np.diff(reel[SR - 100:SR + 100]))
    assert join.max() <= steady  # no click: both sides are near silence there


def test_reel_takes_int16_and_handles_edges():
    clips = [_piece(1.0, 220.0, "a"), _piece(0.5, 330.0, "b")]
    as_int = [ReelClip(np.rint(c.audio * 32767).astype(np.int16), c.name) for c in clips]
    assert len(join_reel(as_int, sample_rate=SR).audio) == int(1.5 * SR)
    empty = join_reel([], sample_rate=SR)
    assert empty.audio.shape == (0, 2) and empty.starts == () and empty.joins == ()
    single = join_reel([clips[0]], sample_rate=SR)
    assert np.array_equal(single.audio, clips[0].audio) and single.starts == (0,)
    with pytest.raises(ValueError):
        join_reel([ReelClip(np.zeros((SR, 1)))], sample_rate=SR)


# -- timeline_png -----------------------------------------------------------------------------

STATES = list(STATE_COLOURS)


def _timeline_kwargs(minutes: int = 90) -> dict:
    n = minutes * 60
    t = np.arange(n, dtype=np.float64)
    t[n // 2:] += 1000.0  # half time: the second half starts 1000 s later on the axis
    rng = np.random.default_rng(4)
    arousal = np.clip(0.35 + 0.15 * np.sin(t / 400) + rng.normal(0, 0.04, n), 0, 1)
    valence = np.clip(0.1 * np.sin(t / 700) + rng.normal(0, 0.05, n), -1, 1)
    states = [STATES[(i // 90) % len(STATES)] for i in range(n)]
    goal = float(t[n // 4])
    return {
        "title": "Home FC v Away United: crowd emotion, events and highlight music",
        "seconds": t.tolist(), "arousal": arousal.tolist(), "valence": valence.tolist(), "states": states,
        "events": [(goal, "GOAL", "HOME"), (goal + 900.0, "CARD", "AWAY"), (goal + 905.0, "SHOT", "NONE"),
                   (float(t[3 * n // 4]), "GOAL", "AWAY"), (float(t[n // 8]), "VAR_REVIEW", "NONE")],
        "intensity": [(goal - 20.0 + 2.0 * k, 0.3 + 0.01 * k) for k in range(40)],
        "spans": [(goal - 20.0, goal + 60.0, "#1"), (float(t[3 * n // 4]) - 20.0, float(t[3 * n // 4]) + 40.0, "#2")],
    }


def _clock(seconds: float) -> str:
    second_half = seconds >= 2700 + 1000
    s = seconds - 1000 if second_half else seconds
    return f"{int(s // 60)}:{int(s % 60):02d}"


def test_timeline_png_is_a_deterministic_valid_png(tmp_path: Path):
    kwargs = _timeline_kwargs()
    labelled: list[float] = []

    def tick_labels(seconds: float) -> str:
        labelled.append(seconds)
        return _clock(seconds)

    timeline_png(tmp_path / "a.png", tick_labels=tick_labels, **kwargs)
    timeline_png(tmp_path / "b.png", tick_labels=tick_labels, **kwargs)
    data = (tmp_path / "a.png").read_bytes()
    assert data == (tmp_path / "b.png").read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    assert b"Software" not in data and b"Matplotlib" not in data
    image = matplotlib.image.imread(tmp_path / "a.png")
    assert image.shape[:2] == (600, 1400)
    assert image[..., :3].std() > 0.1  # not a blank canvas
    # The crowd band is painted in the state colours, and ticks went through the match clock,
    # counted from each half's start (45:00 for the second half, not an odd minute).
    rgb = np.rint(image[..., :3] * 255).astype(int)
    celebration = tuple(int(STATE_COLOURS["CELEBRATION"][i:i + 2], 16) for i in (1, 3, 5))
    band = rgb[380:450, 100:1300]  # between the emotion panel and the music panel
    assert np.any(np.all(band == celebration, axis=-1))
    assert labelled and "45:00" in {_clock(s) for s in labelled}


def test_timeline_png_is_fast_for_90_minutes(tmp_path: Path):
    kwargs = _timeline_kwargs()
    timeline_png(tmp_path / "warm.png", tick_labels=_clock, **kwargs)  # font cache, imports
    start = time.perf_counter()
    timeline_png(tmp_path / "t.png", tick_labels=_clock, **kwargs)
    assert time.perf_counter() - start < 2.0  # ~0.2 s here; the budget leaves room for slow CI


def test_timeline_png_thins_dense_input(tmp_path: Path):
    """90 minutes of 0.25 s windows (21600 points) are thinned to bucket minima and maxima."""
    n = 4 * 90 * 60
    t = np.arange(n) * 0.25
    arousal = np.full(n, 0.3)
    arousal[n // 3] = 1.0  # a one-window spike must survive the thinning
    kwargs = {"title": "dense", "seconds": t, "arousal": arousal, "valence": np.zeros(n),
              "states": ["CALM"] * n, "events": [], "intensity": [], "spans": []}
    timeline_png(tmp_path / "warm.png", **kwargs)
    start = time.perf_counter()
    timeline_png(tmp_path / "dense.png", **kwargs)
    assert time.perf_counter() - start < 2.0
    rgb = np.rint(matplotlib.image.imread(tmp_path / "dense.png")[..., :3] * 255).astype(int)
    arousal_rgb = np.array([0xD9, 0x48, 0x01])
    # Inside the plot area (below the legend, between the tick labels): arousal 0.3 is drawn at
    # y ~310, 1.0 at the panel's top (y ~120).
    plot_area = rgb[100:, 100:1300]
    rows = np.flatnonzero(np.all(np.abs(plot_area - arousal_rgb) <= 8, axis=-1).any(axis=1)) + 100
    assert rows.min() < 140


def test_timeline_png_copes_with_little_data(tmp_path: Path):
    timeline_png(tmp_path / "empty.png", title="nothing", seconds=[], arousal=[], valence=[], states=[],
                 events=[], intensity=[], spans=[])
    timeline_png(tmp_path / "one.png", title="one", seconds=[5.0], arousal=[0.5], valence=[0.0],
                 states=["SOMETHING_NEW"], events=[(5.0, "GOAL", "HOME")], intensity=[(5.0, 0.4)],
                 spans=[(4.0, 6.0, "#1")])
    assert matplotlib.image.imread(tmp_path / "one.png").shape[:2] == (600, 1400)
    with pytest.raises(ValueError):
        timeline_png(tmp_path / "bad.png", title="bad", seconds=[1.0, 2.0], arousal=[0.5], valence=[0.0, 0.0],
                     states=["CALM", "CALM"], events=[], intensity=[], spans=[])


# -- index: JSON and Markdown -----------------------------------------------------------------

def _index() -> dict:
    return {
        "title": "Home FC v Málaga | Cup", "match_id": "m-42",
        "teams": {"home": "Home FC", "away": "Málaga"}, "created": "2024-05-01T21:03:00Z",
        "clips": [
            {"rank": 1, "name": "01-goal-home", "start_clock": "23:10", "end_clock": "23:55", "duration_s": 45.0,
             "reason": "GOAL (HOME)", "stingers": ["goal"],
             "files": {"wav": "01-goal-home.wav", "midi": "01-goal-home.mid", "json": "01-goal-home.json"}},
            {"rank": 2, "name": "02-roar", "start_clock": "67:02", "end_clock": "67:40", "duration_s": 38.3,
             "reason": "crowd roar", "files": {"wav": "02-roar.wav", "midi": "02-roar.mid", "json": "02-roar.json"}},
        ],
        "reel": {"wav": "reel.wav", "duration_s": 81.0}, "timeline": "timeline.png",
        "versions": {"crowdsound": "0.1.0", "model": "emotion-v3"},
    }


def test_write_json_is_deterministic(tmp_path: Path):
    obj = {"b": [1, 2.5, np.float64(0.125), np.int64(7)], "a": {"z": "Málaga", "y": True}}
    write_json(tmp_path / "a.json", obj)
    write_json(tmp_path / "b.json", json.loads(json.dumps({"a": obj["a"], "b": [1, 2.5, 0.125, 7]})))
    text = (tmp_path / "a.json").read_bytes()
    assert text == (tmp_path / "b.json").read_bytes()
    assert text.endswith(b"}\n") and "Málaga".encode() in text and b"\r" not in text
    assert text.index(b'"a"') < text.index(b'"b"') and b'\n  "a": {\n    "y": true,' in text
    with pytest.raises(ValueError):
        write_json(tmp_path / "nan.json", {"x": float("nan")})


def test_write_index_markdown(tmp_path: Path):
    write_index_markdown(tmp_path / "a.md", _index())
    write_index_markdown(tmp_path / "b.md", _index())
    data = (tmp_path / "a.md").read_bytes()
    assert data == (tmp_path / "b.md").read_bytes() and data.endswith(b"\n")
    text = data.decode("utf-8")
    assert text.startswith("# Home FC v Málaga \\| Cup\n")
    assert "01-goal-home" in text and "02-roar" in text
    assert "[wav](01-goal-home.wav)" in text and "[midi](02-roar.mid)" in text
    assert "23:10 – 23:55" in text and "| 0:45.0 |" in text and "| 0:38.3 |" in text
    assert "Home FC (home) v Málaga (away)" in text
    assert "[reel.wav](reel.wav) — 1:21.0" in text
    assert "![timeline](timeline.png)" in text
    assert "| crowdsound | 0.1.0 |" in text and "| model | emotion-v3 |" in text
    rows = [line for line in text.splitlines() if line.startswith("| 1 |") or line.startswith("| 2 |")]
    assert len(rows) == 2 and all(line.count(" | ") == 5 for line in rows)


def test_write_index_markdown_minimal(tmp_path: Path):
    write_index_markdown(tmp_path / "i.md", {"title": "match m-1", "match_id": "m-1", "teams": {}, "clips": [],
                                             "reel": {}, "timeline": "timeline.png", "versions": {}})
    text = (tmp_path / "i.md").read_text(encoding="utf-8")
    assert "No highlights" in text and "No reel" in text and "Teams" not in text
    assert "![timeline](timeline.png)" in text


# -- write_wav --------------------------------------------------------------------------------

def test_write_wav_is_deterministic_pcm16(tmp_path: Path):
    audio = broadcast_master(tone_bursts(2.0), SR)
    write_wav(tmp_path / "a.wav", audio, SR)
    write_wav(tmp_path / "b.wav", audio.copy(), SR)
    data = (tmp_path / "a.wav").read_bytes()
    assert data == (tmp_path / "b.wav").read_bytes()
    assert len(data) == 44 + audio.size * 2  # a bare RIFF header: no date or tool chunk
    back, rate = soundfile.read(tmp_path / "a.wav", dtype="int16")
    info = soundfile.info(str(tmp_path / "a.wav"))
    assert rate == SR and info.subtype == "PCM_16" and info.format == "WAV"
    assert np.array_equal(back, audio)
    with pytest.raises(TypeError):
        write_wav(tmp_path / "f.wav", audio / 32768.0, SR)
