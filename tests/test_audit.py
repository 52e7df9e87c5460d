"""``crowdsound audit`` on folders built by hand: it passes what it should and fails what it should.

The replay test (tests/test_replay.py) runs it on a real replay folder, where every rule
passes; here a folder with the faults issue 17 found — clips that start and stop at full
level, a tempo that lurches, a goal quieter than its run-up, a key that brightens after a
goal against, stingers against the harmony — must fail on each of them.
"""

from __future__ import annotations

import json
from pathlib import Path

import mido
import numpy as np
import soundfile

from consumers.music.measures import TimedNote, key_brightness, semitone_clashes, tempo_steadiness
from consumers.replay.audit import audit_folder, format_report
from consumers.replay.loudness import broadcast_master
from tests.conftest import run_cli

SR = 48_000


def _bar(bar: int, at: float, tempo: float, key: str = "D", mode: str = "MAJOR", chord: str = "I") -> dict:
    return {"bar": bar, "clock": f"0:{int(at):02d}", "at_s": at, "tempo_bpm": tempo, "key": key, "mode": mode,
            "chord": chord, "intensity": 0.5, "layers": ["pad"], "reason": "test"}


def _midi(path: Path, stinger_clashes: bool) -> None:
    """Two bars of a D major chord on the pad; a stinger on channel 6 a semitone off (or on the chord)."""
    midi = mido.MidiFile(type=1, ticks_per_beat=480)
    for channel, pitches in ((0, (62, 66, 69)), (5, (63, 70) if stinger_clashes else (62, 69))):
        track = mido.MidiTrack()
        track.append(mido.MetaMessage("set_tempo", tempo=500_000))
        for p in pitches:
            track.append(mido.Message("note_on", channel=channel, note=p, velocity=90, time=0))
        for i, p in enumerate(pitches):
            track.append(mido.Message("note_off", channel=channel, note=p, velocity=0, time=3840 if i == 0 else 0))
        midi.tracks.append(track)
    midi.save(str(path))


def _folder(tmp_path: Path, *, good: bool) -> Path:
    """A 24 s clip with a home goal at 10 s and an away goal at 13 s, mastered to -23 LUFS."""
    t = np.arange(24 * SR) / SR
    level = np.where(t < 10, 0.3, 0.05) if not good else np.where(t < 10, 0.05, 0.3)  # the goal: louder or not
    tone = level * np.sin(2 * np.pi * 220 * t)
    if good:
        tone *= np.minimum(1, np.minimum(t / 0.5, (24 - t) / 1.0))  # a shaped start and a released end
    audio = broadcast_master(np.stack([tone, tone], axis=1), SR)
    soundfile.write(tmp_path / "01-goal.wav", audio, SR, subtype="PCM_16")
    tempos = [120.0] * 12 if good else [120.0, 90.0, 120.0, 95.0, 130.0, 100.0, 120.0, 90.0, 120.0, 90.0, 98.0, 98.0]
    keys = [("D", "MAJOR")] * 12 if good else [("D", "MAJOR")] * 7 + [("A", "MAJOR")] * 5
    bars = [{**_bar(i, 2.0 * i, tempos[i], *keys[i]), "theme": "home" if good and i in (5, 6) else None}
            for i in range(12)]
    events = [{"type": "GOAL", "side": "HOME", "clock": "0:10", "at_s": 10.0},
              {"type": "GOAL", "side": "AWAY", "clock": "0:13", "at_s": 13.0}]
    sidecar = {"music": {"bars": bars}, "events": events}
    (tmp_path / "01-goal.json").write_text(json.dumps(sidecar))
    _midi(tmp_path / "01-goal.mid", stinger_clashes=not good)
    (tmp_path / "index.json").write_text(json.dumps(
        {"clips": [{"name": "01-goal", "files": {"wav": "01-goal.wav", "json": "01-goal.json", "midi": "01-goal.mid"}}]}))
    return tmp_path


def test_a_folder_with_the_faults_fails_each_rule(tmp_path):
    report = audit_folder(_folder(tmp_path, good=False))
    failed = {rule.name for rule in report.rules if not rule.passed}
    assert {"edges", "tempo steps", "climax", "away goals", "stingers in harmony", "home theme"} <= failed, \
        format_report(report)
    result = run_cli("audit", str(tmp_path))
    assert result.returncode == 1 and "FAIL  edges" in result.stdout and "rules fail" in result.stdout


def test_a_folder_without_them_passes(tmp_path):
    report = audit_folder(_folder(tmp_path, good=True))
    assert report.passed, format_report(report)
    as_json = json.loads(run_cli("audit", str(tmp_path), "--json").stdout)
    assert as_json["passed"] and as_json["figures"]["tempo"]["01-goal"]["largest_step_bpm"] == 0.0


def test_measures_known_answers():
    steady = tempo_steadiness([120, 120, 120, 126, 126, 126, 126, 118])
    assert (steady.moves, steady.largest_step_bpm, steady.steps_over_8) == (2, 8.0, 0)
    assert tempo_steadiness([128.75, 98.25]).steps_over_8 == 1
    # D major's tonic triad, against C# (a semitone under D) and E (a tone above D).
    chord = [TimedNote(0, 2, p, 0) for p in (62, 66, 69)]
    assert semitone_clashes([TimedNote(0, 1, 61, 5)], chord) == (1, 1)
    assert semitone_clashes([TimedNote(0, 1, 64, 5)], chord) == (0, 1)
    assert semitone_clashes([TimedNote(2, 3, 61, 5)], chord) == (0, 1)  # after the chord: no clash
    assert semitone_clashes(chord, chord) == (0, 3)  # never compared with itself
    assert key_brightness("A", "MAJOR") - key_brightness("F#", "MINOR") == 3  # the modulation
    assert key_brightness("A", "MAJOR") - key_brightness("D", "MAJOR") == 1
    assert key_brightness("D", "MINOR") < key_brightness("D", "MAJOR")
