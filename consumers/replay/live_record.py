"""The live music's sidecar: what the composer decided, next to the WAV ``crowdsound listen`` wrote.

``live.wav`` is the match's music.audio.v1; this module reads the same match's
music.control.v1 (every bar and stinger the live composer emitted) and match.events.v1 and
writes ``live.json`` (bars, stingers and events, each placed on the WAV's time line) and
``live.mid`` (the bars' MIDI events with the stingers merged in). ``crowdsound audit``
reads them like a clip's JSON and MIDI.

Positions come from the audio chunks: the first chunk of each period ties that period's
match clock to a sample of the stream, and within a period music and match time run
together (the composer places every window by its clock).
"""

from __future__ import annotations

import re
from pathlib import Path

from consumers.music.midi import part_from_midi_events, write_midi_file
from consumers.music.types import SAMPLE_RATE, TICKS_PER_BEAT
from consumers.render.mastering import LATENCY
from consumers.replay.clip_midi import midi_bars
from consumers.replay.index import write_json
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
        anchors: dict[str, tuple[int, int]] = {}  # period -> (clock ms, sample) of its first chunk
        for chunk in reader.read("music.audio.v1", "AudioChunk"):
            period = chunk["clock"]["period"]
            if period not in anchors or chunk["first_sample"] < anchors[period][1]:
                anchors[period] = (int(chunk["clock"]["ms"]), int(chunk["first_sample"]))
    finally:
        reader.close()
    if not controls or not anchors:
        raise CrowdsoundError(f"no live music of match {match_id!r} is retained on music.control.v1 / music.audio.v1")

    def sample(period: str, ms: int) -> int | None:
        if period not in anchors:
            return None
        clock_ms, first = anchors[period]
        return first + (ms - clock_ms) * SAMPLE_RATE // 1000

    # One record per bar and per stinger (a repeated emission has the same content).
    unique = {(c["kind"], c["bar"], c["stinger"], c["clock"]["period"], c["clock"]["ms"]): c for c in controls}
    placed = []
    for record in unique.values():
        at = sample(record["clock"]["period"], int(record["clock"]["ms"]))
        if at is None:
            continue
        length = record["beats_per_bar"] * TICKS_PER_BEAT
        part = part_from_midi_events([(e["tick"], e["data"]) for e in record["midi_events"]], length_ticks=length)
        placed.append(Output("control", record, part, at))
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
