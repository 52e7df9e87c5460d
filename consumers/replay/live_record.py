"""The live music's sidecar: what the composer decided, next to the WAV ``crowdsound listen`` wrote.

``live.wav`` is the match's music.audio.v1; this module reads the same match's
music.control.v1 (every bar and stinger the live composer emitted) and match.events.v1 and
writes ``live.json`` (bars, stingers and events, each placed on the WAV's time line) and
``live.mid`` (the bars' MIDI events with the stingers merged in). ``crowdsound audit``
reads them like a clip's JSON and MIDI.

Positions come from the bars themselves: the live music starts with bar 0 on sample 0 and
every bar lasts its beats at its tempo (the score's own arithmetic), so each bar's sample is
the sum of the bars before it; a stinger or an event sits in the bar of its period that
starts at or before its clock, offset by the clock difference (match and music time run
together within a period).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from consumers.music.midi import part_from_midi_events, write_midi_file
from consumers.music.types import SAMPLE_RATE, TICKS_PER_BEAT
from consumers.render.mastering import LATENCY
from consumers.replay.clip_midi import midi_bars
from consumers.replay.index import write_json
from consumers.render.synth import ticks_to_samples
from consumers.replay.reader import PartitionReader
from consumers.score import Output
from infra.errors import CrowdsoundError
from infra.settings import Settings
from schemas.clock import MatchClock, Period

__all__ = ["write_live_record"]


def _theme(reason: str) -> str | None:
    """The side whose theme a bar sings, as its reason says ("...; home theme, statement 2")."""
    found = re.search(r"\b(home|away) theme\b", reason)
    return found.group(1) if found else None


def _label(period: str, ms: int) -> str:
    return str(MatchClock(Period(period), ms))


def write_live_record(settings: Settings, match_id: str, out_dir: Path, *, name: str = "live") -> list[str]:
    """Write ``<name>.json`` and ``<name>.mid`` for the live music of ``match_id``; their names."""
    reader = PartitionReader(settings, match_id)
    try:
        controls = list(reader.read("music.control.v1", "MusicControl"))
        events = list(reader.read("match.events.v1", "MatchEvent"))
    finally:
        reader.close()
    # One record per bar and per stinger (a repeated emission has the same content).
    bars = sorted({c["bar"]: c for c in controls if c["kind"] == "BAR"}.values(), key=lambda c: c["bar"])
    if not bars or bars[0]["bar"] != 0 or [b["bar"] for b in bars] != list(range(len(bars))):
        raise CrowdsoundError(f"the live music of match {match_id!r} is not retained from its first bar on "
                              "music.control.v1")
    starts, at = [], 0
    for bar in bars:
        starts.append(at)
        at += ticks_to_samples(bar["beats_per_bar"] * TICKS_PER_BEAT, float(bar["tempo_bpm"]))

    def sample(period: str, ms: int) -> int | None:
        """The music sample of a match clock: from the last bar of its period at or before it
        (or the period's first bar, for a moment just before it)."""
        same = [(b, s) for b, s in zip(bars, starts) if b["clock"]["period"] == period]
        if not same:
            return None
        bar, start = ([(b, s) for b, s in same if b["clock"]["ms"] <= ms] or same[:1])[-1]
        return start + (ms - int(bar["clock"]["ms"])) * SAMPLE_RATE // 1000

    def part(record: dict[str, Any]) -> Any:
        return part_from_midi_events([(e["tick"], e["data"]) for e in record["midi_events"]],
                                     length_ticks=record["beats_per_bar"] * TICKS_PER_BEAT)

    placed = [Output("control", b, part(b), s) for b, s in zip(bars, starts)]
    unique = {(c["bar"], c["stinger"], c["clock"]["period"], c["clock"]["ms"]): c
              for c in controls if c["kind"] == "STINGER"}
    for record in unique.values():
        at_sample = sample(record["clock"]["period"], int(record["clock"]["ms"]))
        if at_sample is not None:
            placed.append(Output("control", record, part(record), at_sample))
    placed.sort(key=lambda o: (o.sample, o.record["kind"] != "BAR"))

    def at_s(music_sample: int) -> float:
        return round((music_sample + LATENCY) / SAMPLE_RATE, 3)

    by_id = {e["event_id"]: e for e in events}
    sidecar = {
        "match_id": match_id, "files": {"wav": f"{name}.wav", "midi": f"{name}.mid"},
        "bars": [{"bar": o.record["bar"], "clock": _label(o.record["clock"]["period"], o.record["clock"]["ms"]),
                  "at_s": at_s(o.sample), "tempo_bpm": round(float(o.record["tempo_bpm"]), 3),
                  "key": o.record["key"], "mode": o.record["mode"], "chord": o.record["chord"],
                  "intensity": round(float(o.record["intensity"]), 3), "layers": o.record["layers"],
                  "theme": _theme(o.record["reason"]), "reason": o.record["reason"]}
                 for o in placed if o.record["kind"] == "BAR"],
        "stingers": [{"stinger": o.record["stinger"], "at_s": at_s(o.sample),
                      "clock": _label(o.record["clock"]["period"], o.record["clock"]["ms"]),
                      "reason": o.record["reason"]} for o in placed if o.record["kind"] == "STINGER"],
        "events": [{"event_id": e["event_id"], "type": e["type"], "side": e["side"], "team": e.get("team"),
                    "clock": _label(e["clock"]["period"], e["clock"]["ms"]),
                    "at_s": at_s(s) if (s := sample(e["clock"]["period"], int(e["clock"]["ms"]))) is not None else None}
                   for e in sorted(by_id.values(), key=lambda e: (Period(e["clock"]["period"]).order,
                                                                 e["clock"]["ms"], e["event_id"]))],
    }
    write_json(out_dir / f"{name}.json", sidecar)
    write_midi_file(out_dir / f"{name}.mid", midi_bars(placed))
    return [f"{name}.json", f"{name}.mid"]
