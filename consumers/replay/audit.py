"""``crowdsound audit DIR``: the figures a broadcast music supervisor checks, from a replay folder.

Reads what ``crowdsound replay`` (and the demo) wrote — the clips' WAV, MIDI and JSON, the
reel, and the live music's ``live.wav``/``live.json``/``live.mid`` when present — and
measures, without Kafka:

* **edges**: the first and last 50 ms of every clip and of the reel against the file's RMS
  (a release ends >= 20 dB under it; a start without a full-level hit is >= 10 dB under it);
* **loudness**: integrated loudness and true peak of every WAV (-23 LUFS +-1, <= -1 dBTP);
* **tempo**: how often the tempo moves from bar to bar and its largest single step;
* **climax**: loudness of the 8 s before each home goal against 4-12 s after it;
* **away goals**: whether the key brightens in the 30 s after a goal against;
* **harmony**: semitone clashes of stinger notes with the bar against the accompaniment's
  own rate; accompaniment notes in the bar's key;
* **memory and feel**: the home theme at home goals, phrase endings, notes off the 16th
  grid, velocity curves and expression continuity across bar lines;
* **reel**: how long two clips' music overlaps at the joins.

Each rule of issue 17's "done when" is a line with PASS or FAIL; the exit status is 1 when
one fails. Folders written before the sidecars carried exact positions (``at_s``) are
measured too, with positions rebuilt from the bars' tempos (to about a second).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import mido
import numpy as np
import soundfile

from consumers.music.measures import TimedNote, key_brightness, semitone_clashes, tempo_steadiness
from consumers.music.theory import scale
from consumers.music.types import CHANNELS, TICKS_PER_BEAT
from consumers.replay.loudness import integrated_lufs, true_peak_dbtp
from infra.errors import CrowdsoundError
from schemas.clock import parse_clock

__all__ = ["AuditReport", "audit_folder", "format_report"]

EDGE_S = 0.05
END_UNDER_DB = 20.0     # a release: the last 50 ms this far under the file's RMS
START_UNDER_DB = 10.0   # no full-level hit: the first 50 ms this far under it
MAX_MOVES_SHARE = 0.25
MAX_STEP_BPM = 8.0
BEFORE_S, AFTER_S = (8.0, 0.0), (4.0, 12.0)
AWAY_WINDOW_S = 30.0
IN_KEY_MIN = 0.95

_ACCOMPANIMENT = frozenset(CHANNELS[layer] for layer in ("pad", "bass", "strings", "melody", "brass"))
_STINGER = frozenset((CHANNELS["stinger"], CHANNELS["stinger_low"]))
_SUSTAINED = frozenset(CHANNELS[layer] for layer in ("pad", "strings", "brass"))
_DRUMS = CHANNELS["drums"]
_SIXTEENTH = TICKS_PER_BEAT // 4


@dataclass
class Rule:
    name: str
    passed: bool
    detail: str


@dataclass
class AuditReport:
    """Everything measured, as printable lines per section and the rules' verdicts."""

    folder: str
    sections: dict[str, list[str]] = field(default_factory=dict)
    figures: dict[str, Any] = field(default_factory=dict)
    rules: list[Rule] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(rule.passed for rule in self.rules)

    def line(self, section: str, text: str) -> None:
        self.sections.setdefault(section, []).append(text)

    def to_json(self) -> dict[str, Any]:
        return {"folder": self.folder, "passed": self.passed, "figures": self.figures,
                "rules": [{"rule": r.name, "passed": r.passed, "detail": r.detail} for r in self.rules]}


# -- reading the folder ------------------------------------------------------------------------
@dataclass
class Piece:
    """One piece of music in the folder: a clip, or the live stream."""

    name: str
    wav: Path
    bars: list[dict[str, Any]]
    events: list[dict[str, Any]]   # with "at_s": position in the WAV (None if unknown)
    midi: Path | None
    clip: bool


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data: dict[str, Any] = json.loads(path.read_text())
        return data
    except (OSError, ValueError) as error:
        raise CrowdsoundError(f"cannot read {path}: {error}") from None


def _clock_s(label: str) -> float:
    clock = parse_clock(label)
    return clock.ms / 1000


def _positions(bars: list[dict[str, Any]]) -> list[float]:
    """Each bar's start in the WAV: ``at_s`` when written, else the tempos added up from 0."""
    if bars and all("at_s" in b for b in bars):
        return [float(b["at_s"]) for b in bars]
    out, at = [], 0.0
    for bar in bars:
        out.append(at)
        at += 4 * 60.0 / float(bar["tempo_bpm"])
    return out


def _clip_piece(folder: Path, entry: dict[str, Any]) -> Piece | None:
    files = entry.get("files", {})
    if "wav" not in files or "json" not in files:
        return None
    sidecar = _read_json(folder / files["json"])
    bars = sidecar.get("music", {}).get("bars", [])
    for bar, at in zip(bars, _positions(bars)):
        bar["at_s"] = at
    events = []
    # Old sidecars: the WAV starts on the first bar, whose clock is known to the second.
    first_bar_s = _clock_s(bars[0]["clock"]) if bars else 0.0
    for event in sidecar.get("events", []):
        at = event.get("at_s")
        if at is None:
            at = _clock_s(event["clock"]) - first_bar_s
        events.append({**event, "at_s": at})
    midi = folder / files["midi"] if "midi" in files and (folder / files["midi"]).exists() else None
    return Piece(entry.get("name", files["wav"]), folder / files["wav"], bars, events, midi, clip=True)


def _live_piece(folder: Path) -> Piece | None:
    path = folder / "live.json"
    if not (folder / "live.wav").exists() or not path.exists():
        return None
    sidecar = _read_json(path)
    midi = folder / sidecar.get("files", {}).get("midi", "live.mid")
    return Piece("live", folder / "live.wav", sidecar.get("bars", []), sidecar.get("events", []),
                 midi if midi.exists() else None, clip=False)


def _audio(path: Path) -> np.ndarray:
    try:
        data, rate = soundfile.read(str(path), dtype="float64", always_2d=True)
    except (OSError, RuntimeError) as error:
        raise CrowdsoundError(f"cannot read {path}: {error}") from None
    if rate != 48_000:
        raise CrowdsoundError(f"{path}: expected 48 kHz audio, got {rate} Hz")
    return data


def _rms_db(x: np.ndarray) -> float:
    value = float(np.sqrt(np.mean(x ** 2))) if x.size else 0.0
    return 20 * math.log10(value) if value > 0 else -math.inf


@dataclass
class _Midi:
    notes: list[tuple[TimedNote, int, int]]           # (note, velocity, on-tick)
    bar_ticks: list[int]                                # tick of every bar line (from the tempo track)
    expression: dict[int, list[tuple[int, int]]]      # channel -> [(tick, CC11 value)]


def _read_midi(path: Path) -> _Midi:
    midi = mido.MidiFile(str(path))
    scale_ticks = TICKS_PER_BEAT / midi.ticks_per_beat
    tempo_changes: list[tuple[int, int]] = []
    for track in midi.tracks:
        tick = 0
        for message in track:
            tick += message.time
            if message.type == "set_tempo":
                tempo_changes.append((tick, message.tempo))
    tempo_changes.sort()
    if not tempo_changes or tempo_changes[0][0] != 0:
        tempo_changes.insert(0, (0, 500_000))

    def seconds(tick: int) -> float:
        total, last_tick, tempo = 0.0, 0, tempo_changes[0][1]
        for at, value in tempo_changes:
            if at >= tick:
                break
            total += (at - last_tick) * tempo / 1e6 / midi.ticks_per_beat
            last_tick, tempo = at, value
        return total + (tick - last_tick) * tempo / 1e6 / midi.ticks_per_beat

    notes: list[tuple[TimedNote, int, int]] = []
    expression: dict[int, list[tuple[int, int]]] = {}
    for track in midi.tracks:
        tick = 0
        sounding: dict[tuple[int, int], tuple[int, int]] = {}
        for message in track:
            tick += message.time
            if message.type == "note_on" and message.velocity > 0:
                sounding[(message.channel, message.note)] = (tick, message.velocity)
            elif message.type in ("note_on", "note_off"):
                start = sounding.pop((message.channel, message.note), None)
                if start is not None:
                    notes.append((TimedNote(seconds(start[0]), seconds(tick), message.note, message.channel),
                                   start[1], round(start[0] * scale_ticks)))
            elif message.type == "control_change" and message.control == 11:
                expression.setdefault(message.channel, []).append((round(tick * scale_ticks), message.value))
    bar_ticks = sorted({round(t * scale_ticks) for t, _ in tempo_changes})
    return _Midi(notes, bar_ticks, expression)


# -- measuring ---------------------------------------------------------------------------------
def _bar_at(positions: Sequence[float], t: float) -> int:
    return max(0, int(np.searchsorted(np.asarray(positions), t + 1e-6, side="right")) - 1)


def _segment_lufs(audio: np.ndarray, start_s: float, end_s: float) -> float:
    a, b = max(0, int(start_s * 48_000)), min(len(audio), int(end_s * 48_000))
    if b - a < int(0.4 * 48_000):
        return -math.inf
    return integrated_lufs(audio[a:b], 48_000)


_TONICS = frozenset({"I", "i"})
_DOMINANTS = frozenset({"V", "V7", "Vsus4", "v", "vii°", "I6/4", "i6/4"})  # the cadential 6/4 too


def audit_folder(folder: Path) -> AuditReport:
    """Measure a replay folder (raises CrowdsoundError when it is not one)."""
    if not folder.is_dir():
        raise CrowdsoundError(f"{folder} is not a folder")
    index_path = folder / "index.json"
    if not index_path.exists():
        raise CrowdsoundError(f"{folder} has no index.json: not a replay folder (run crowdsound replay or make demo)")
    index = _read_json(index_path)
    pieces = [p for p in (_clip_piece(folder, c) for c in index.get("clips", [])) if p is not None]
    live = _live_piece(folder)
    report = AuditReport(str(folder))
    _edges_and_loudness(report, folder, index, pieces, live)
    _tempo(report, pieces, live)
    audio_cache = {p.name: _audio(p.wav) for p in pieces + ([live] if live else [])}
    _climax(report, pieces, live, audio_cache)
    _away_goals(report, pieces, live)
    midis = {p.name: _read_midi(p.midi) for p in pieces + ([live] if live else []) if p.midi is not None}
    _harmony(report, pieces, live, midis)
    _memory_and_feel(report, pieces, live, midis)
    return report


def _edges_and_loudness(report: AuditReport, folder: Path, index: dict[str, Any], pieces: list[Piece],
                        live: Piece | None) -> None:
    files = [(p.name, p.wav, True) for p in pieces]
    reel = folder / index.get("reel", {}).get("wav", "reel.wav")
    if reel.exists():
        files.append(("reel", reel, True))
    if live is not None:
        files.append(("live", live.wav, False))
    edges_ok, loud_ok = [], []
    report.figures["files"] = {}
    for name, path, edged in files:
        audio = _audio(path)
        rms = _rms_db(audio)
        n = int(EDGE_S * 48_000)
        first, last = _rms_db(audio[:n]) - rms, _rms_db(audio[-n:]) - rms
        lufs, peak = integrated_lufs(audio, 48_000), true_peak_dbtp(audio)
        report.figures["files"][name] = {"seconds": round(len(audio) / 48_000, 2), "lufs": round(lufs, 2),
                                         "true_peak_dbtp": round(peak, 2), "first_50ms_db": round(first, 1),
                                         "last_50ms_db": round(last, 1)}
        verdict = ""
        if edged:
            start_ok, end_ok = first <= -START_UNDER_DB, last <= -END_UNDER_DB
            edges_ok.append(start_ok and end_ok)
            verdict = "" if start_ok and end_ok else "  <- " + ", ".join(
                what for what, ok in (("full-level start", start_ok), ("hard end", end_ok)) if not ok)
        loud_ok.append(abs(lufs + 23) <= 1.0 and peak <= -1.0)
        report.line("files", f"{name:<16} {len(audio) / 48_000:7.1f} s  {lufs:6.1f} LUFS  {peak:5.1f} dBTP  "
                             f"first 50 ms {first:6.1f} dB  last 50 ms {last:6.1f} dB{verdict}")
    report.rules.append(Rule("edges", all(edges_ok),
                             f"{sum(edges_ok)}/{len(edges_ok)} clips and reel start >= {START_UNDER_DB:.0f} dB and end "
                             f">= {END_UNDER_DB:.0f} dB under their RMS in the first/last 50 ms"))
    report.rules.append(Rule("loudness", all(loud_ok),
                             f"{sum(loud_ok)}/{len(loud_ok)} files at -23 LUFS +-1 with true peak <= -1 dBTP"))
    durations = [report.figures["files"][p.name]["seconds"] for p in pieces]
    if reel.exists() and len(pieces) > 1:
        overlap = sum(durations) - report.figures["files"]["reel"]["seconds"]
        report.figures["reel_overlap_s"] = round(overlap, 2)
        report.line("reel", f"{len(pieces) - 1} joins; the clips overlap for {overlap:.1f} s in all "
                            f"({overlap / (len(pieces) - 1):.1f} s per join)")
        report.rules.append(Rule("reel joins", overlap <= 0.05 * (len(pieces) - 1),
                                 f"two clips' music overlaps {overlap:.1f} s over {len(pieces) - 1} joins (want none)"))


def _tempo(report: AuditReport, pieces: list[Piece], live: Piece | None) -> None:
    report.figures["tempo"] = {}
    worst_step, live_ok = 0.0, True
    for piece in ([live] if live else []) + pieces:
        figures = tempo_steadiness([float(b["tempo_bpm"]) for b in piece.bars])
        worst_step = max(worst_step, figures.largest_step_bpm)
        report.figures["tempo"][piece.name] = {"bars": figures.bars, "moves_share": round(figures.moves_share, 3),
                                               "largest_step_bpm": figures.largest_step_bpm,
                                               "steps_over_8": figures.steps_over_8}
        report.line("tempo", f"{piece.name:<16} {figures.bars:4d} bars, moves on {100 * figures.moves_share:5.1f} % "
                             f"of bar lines, largest step {figures.largest_step_bpm:5.2f} bpm, "
                             f"{figures.steps_over_8} steps over 8 bpm")
        if piece is live:
            live_ok = figures.moves_share <= MAX_MOVES_SHARE
    if live is not None:
        share = report.figures["tempo"]["live"]["moves_share"]
        report.rules.append(Rule("tempo moves", live_ok, f"live tempo moves on {100 * share:.1f} % of bar lines "
                                                         f"(want <= {100 * MAX_MOVES_SHARE:.0f} %)"))
    report.rules.append(Rule("tempo steps", worst_step <= MAX_STEP_BPM,
                             f"largest single-bar step {worst_step:.2f} bpm (want <= {MAX_STEP_BPM:.0f})"))


def _climax(report: AuditReport, pieces: list[Piece], live: Piece | None, audio: dict[str, np.ndarray]) -> None:
    results = []
    for piece in pieces + ([live] if live else []):
        for event in piece.events:
            if event["type"] != "GOAL" or event["side"] != "HOME" or event.get("at_s") is None:
                continue
            at = float(event["at_s"])
            wav = audio[piece.name]
            if at - BEFORE_S[0] < 0 or at + AFTER_S[1] > len(wav) / 48_000:
                report.line("climax", f"{piece.name:<16} home goal at {event['clock']}: not 8 s before and 12 s after "
                                      "it in the file; not measured")
                continue
            before = _segment_lufs(wav, at - BEFORE_S[0], at - BEFORE_S[1])
            after = _segment_lufs(wav, at + AFTER_S[0], at + AFTER_S[1])
            results.append(after >= before)
            report.line("climax", f"{piece.name:<16} home goal at {event['clock']}: 8 s before {before:6.1f} LUFS, "
                                  f"4-12 s after {after:6.1f} LUFS ({after - before:+.1f} LU)")
            report.figures.setdefault("climax", []).append(
                {"piece": piece.name, "clock": event["clock"], "before_lufs": round(before, 2),
                 "after_lufs": round(after, 2)})
    if results:
        report.rules.append(Rule("climax", all(results), f"{sum(results)}/{len(results)} home goals are at least "
                                                          "as loud 4-12 s after as in the 8 s before"))


def _away_goals(report: AuditReport, pieces: list[Piece], live: Piece | None) -> None:
    results = []
    for piece in ([live] if live else []) + pieces:
        positions = [float(b["at_s"]) for b in piece.bars]
        for event in piece.events:
            if event["type"] != "GOAL" or event["side"] != "AWAY" or event.get("at_s") is None or not piece.bars:
                continue
            at = float(event["at_s"])
            here = piece.bars[_bar_at(positions, at)]
            base = key_brightness(here["key"], here["mode"])
            later = [b for b, p in zip(piece.bars, positions) if at < p <= at + AWAY_WINDOW_S]
            brighter = [b for b in later if key_brightness(b["key"], b["mode"]) > base]
            results.append(not brighter)
            change = f"-> {brighter[0]['key']} {brighter[0]['mode'].lower()} (brighter)" if brighter else "never brighter"
            report.line("away goals", f"{piece.name:<16} away goal at {event['clock']}: key {here['key']} "
                                      f"{here['mode'].lower()}, next {AWAY_WINDOW_S:.0f} s {change}")
    if results:
        report.rules.append(Rule("away goals", all(results),
                                 f"{sum(results)}/{len(results)} away goals never brighten the key in the "
                                 f"{AWAY_WINDOW_S:.0f} s after"))


def _harmony(report: AuditReport, pieces: list[Piece], live: Piece | None, midis: dict[str, _Midi]) -> None:
    totals = {"stinger": [0, 0], "accompaniment": [0, 0], "in_key": [0, 0]}
    for piece in pieces + ([live] if live else []):
        midi = midis.get(piece.name)
        if midi is None:
            continue
        accompaniment = [n for n, _, _ in midi.notes if n.channel in _ACCOMPANIMENT]
        stingers = [n for n, _, _ in midi.notes if n.channel in _STINGER]
        s_clash, s_total = semitone_clashes(stingers, accompaniment)
        a_clash, a_total = semitone_clashes(accompaniment, accompaniment)
        positions = [float(b["at_s"]) for b in piece.bars]
        in_key = 0
        for note in accompaniment:
            bar = piece.bars[_bar_at(positions, note.start_s)] if piece.bars else None
            in_key += bar is None or note.pitch % 12 in scale(bar["key"], bar["mode"])
        for name, (hit, total) in (("stinger", (s_clash, s_total)), ("accompaniment", (a_clash, a_total)),
                                   ("in_key", (in_key, len(accompaniment)))):
            totals[name][0] += hit
            totals[name][1] += total
        report.line("harmony", f"{piece.name:<16} semitone clashes: stingers {_pct(s_clash, s_total)} of {s_total}, "
                               f"accompaniment {_pct(a_clash, a_total)} of {a_total}; in key "
                               f"{_pct(in_key, len(accompaniment))}")
    s_rate = totals["stinger"][0] / totals["stinger"][1] if totals["stinger"][1] else 0.0
    a_rate = totals["accompaniment"][0] / totals["accompaniment"][1] if totals["accompaniment"][1] else 0.0
    k_rate = totals["in_key"][0] / totals["in_key"][1] if totals["in_key"][1] else 1.0
    report.figures["harmony"] = {"stinger_clash": round(s_rate, 4), "accompaniment_clash": round(a_rate, 4),
                                 "in_key": round(k_rate, 4)}
    report.rules.append(Rule("stingers in harmony", s_rate <= a_rate,
                             f"stinger notes clash a semitone with the bar {100 * s_rate:.1f} %, accompaniment "
                             f"{100 * a_rate:.1f} %"))
    report.rules.append(Rule("notes in key", k_rate >= IN_KEY_MIN,
                             f"{100 * k_rate:.1f} % of accompaniment notes in the bar's key (want >= 95 %)"))


def _pct(part: int, whole: int) -> str:
    return f"{100 * part / whole:5.1f} %" if whole else "    - "


def _memory_and_feel(report: AuditReport, pieces: list[Piece], live: Piece | None, midis: dict[str, _Midi]) -> None:
    themed, goals = 0, 0
    endings = {"tonic": 0, "dominant": 0, "other": 0}
    for piece in pieces + ([live] if live else []):
        positions = [float(b["at_s"]) for b in piece.bars]
        for event in piece.events:
            if event["type"] != "GOAL" or event["side"] != "HOME" or event.get("at_s") is None or not piece.bars:
                continue
            goals += 1
            first = _bar_at(positions, float(event["at_s"]))
            themed += any(b.get("theme") == "home" for b in piece.bars[first:first + 4])
        for i, bar in enumerate(piece.bars[:-1]):
            phrase_end = bar.get("phrase_end", bar["bar"] % 4 == 3)
            if phrase_end:
                kind = "tonic" if bar["chord"] in _TONICS else "dominant" if bar["chord"] in _DOMINANTS else "other"
                endings[kind] += 1
    report.figures["theme_at_home_goals"] = [themed, goals]
    report.figures["phrase_endings"] = endings
    report.line("memory", f"home goals with the home theme within 4 bars: {themed}/{goals}")
    report.line("memory", f"phrase endings: {endings['tonic']} on the tonic, {endings['dominant']} on the dominant, "
                          f"{endings['other']} elsewhere")
    if goals:
        report.rules.append(Rule("home theme", themed == goals, f"{themed}/{goals} home goals bring back the home theme"))
    on_grid = total = curved = sustained_bars = jumps = bar_lines = 0
    for midi in midis.values():
        pitched = [(n, v, t) for n, v, t in midi.notes]
        total += len(pitched)
        on_grid += sum(1 for _, _, tick in pitched if tick % _SIXTEENTH == 0)
        lines = midi.bar_ticks
        by_bar: dict[tuple[int, int], set[int]] = {}
        for n, velocity, tick in pitched:
            if n.channel in _SUSTAINED:
                bar = int(np.searchsorted(lines, tick, side="right"))
                by_bar.setdefault((bar, n.channel), set()).add(velocity)
        sustained_bars += len(by_bar)
        curved += sum(1 for velocities in by_bar.values() if len(velocities) > 2)
        for values in midi.expression.values():
            values = sorted(values)
            for line in lines[1:]:
                before = [v for t, v in values if t < line]
                at = [v for t, v in values if t == line]
                if before and at:
                    bar_lines += 1
                    jumps += abs(at[0] - before[-1]) > 8
    report.figures["feel"] = {"on_16th_grid": round(on_grid / total, 4) if total else None,
                              "sustained_bars_with_velocity_curve": round(curved / sustained_bars, 4)
                              if sustained_bars else None,
                              "expression_jumps_at_bar_lines": round(jumps / bar_lines, 4) if bar_lines else None}
    report.line("feel", f"notes on the 16th grid {_pct(on_grid, total)}; pad/strings/brass bars with a velocity "
                        f"curve {_pct(curved, sustained_bars)}; expression (CC11) jumps > 8 at bar lines "
                        f"{_pct(jumps, bar_lines)}")


def format_report(report: AuditReport) -> str:
    """The report as text: sections of figures, then one PASS/FAIL line per rule."""
    lines = [f"crowdsound audit {report.folder}"]
    for section, texts in report.sections.items():
        lines.append(f"\n{section}")
        lines += [f"  {text}" for text in texts]
    lines.append("\nrules")
    for rule in report.rules:
        lines.append(f"  {'PASS' if rule.passed else 'FAIL'}  {rule.name:<20} {rule.detail}")
    failed = sum(1 for r in report.rules if not r.passed)
    lines.append(f"\n{'all rules pass' if not failed else f'{failed} of {len(report.rules)} rules fail'}")
    return "\n".join(lines)
