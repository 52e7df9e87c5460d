"""Consumer-side subcommands: ``tail``, ``composer``, ``prefs``, ``cue``, ``listen``, ``replay``, ``audit``,
``controlroom``."""

from __future__ import annotations

import argparse
from typing import Any

from consumers.composer_config import ComposerConfig
from infra.cliargs import add_metrics_arguments, seconds, whole_number
from infra.settings import Settings

__all__ = ["register"]


def register(commands: Any) -> None:
    """Add the consumer subcommands to the CLI."""
    tail = commands.add_parser(
        "tail", help="print the decoded records of a topic, one per line",
        description="Print the records of any catalogue topic, decoded, one per line: "
        "topic[partition]@offset, record time, key, record type and fields (match clocks as match "
        "time, byte payloads as their size). Reads without a consumer group and commits nothing, so "
        "it never disturbs real consumers. Stops after --max records, after --timeout idle seconds, "
        "or on Ctrl-C.",
    )
    tail.add_argument("topic", help="catalogue topic, e.g. crowd.emotions.v1 (see `crowdsound topics list`)")
    tail.add_argument("--match", metavar="M", help="only this match (reads only its partition)")
    tail.add_argument("--from-beginning", action="store_true",
                      help="start at the oldest retained record (default: only new records)")
    tail.add_argument("--max", type=whole_number(low=1), metavar="N", help="stop after N records")
    tail.add_argument("--timeout", type=seconds, metavar="S", help="stop after S seconds without a record")
    tail.add_argument("--json", action="store_true",
                      help="one JSON object per line (bytes summarised, never dumped raw)")
    tail.set_defaults(handler=_tail)
    _register_composer(commands)
    _register_prefs(commands)
    _register_cue(commands)
    _register_listen(commands)
    _register_replay(commands)
    _register_audit(commands)
    _register_controlroom(commands)


def _tail(args: argparse.Namespace, settings: Settings) -> int:
    from consumers.tail import tail

    tail(settings, args.topic, match_id=args.match, from_beginning=args.from_beginning,
         max_records=args.max, timeout_s=args.timeout, as_json=args.json)
    return 0


def _outputs(text: str) -> tuple[str, ...]:
    from consumers.composer_config import OUTPUT_CHOICES

    parts = tuple(sorted({part.strip() for part in text.split(",") if part.strip()}))
    if not parts or set(parts) - set(OUTPUT_CHOICES):
        raise argparse.ArgumentTypeError(f"expected a comma list of {', '.join(OUTPUT_CHOICES)}, got {text!r}")
    return parts


def _register_composer(commands: Any) -> None:
    composer = commands.add_parser(
        "composer", help="compose music from crowd.emotions.v1 (a consumer group)",
        description="Turn the emotion stream into music: music.control.v1 (one message per bar and per "
        "stinger: tempo, key, chord, intensity, layers, MIDI events) and music.audio.v1 (48 kHz stereo "
        "audio rendered with FluidSynth and a General MIDI SoundFont, gapless per match, EBU R128 "
        "levels). Preferences from music.preferences.v1 apply from the next bar. Exactly once: outputs, "
        "per-match state and offsets are committed in one Kafka transaction, so a killed composer "
        "resumes without duplicate or missing bars. Scale out by starting more composers (each needs "
        "its own --instance); they share the partitions.",
    )
    composer.add_argument("--outputs", type=_outputs, default=("audio", "control"), metavar="LIST",
                          help="what to produce: control, audio or control,audio (default). Each set is "
                          "its own consumer group, so a control-only and an audio-only group can run side by side")
    composer.add_argument("--instance", default="", metavar="NAME",
                          help="stable name of this replica (its transactional id); default: the host name")
    composer.add_argument("--render-threads", type=whole_number(low=1, high=64, what="a number of threads"),
                          default=2, metavar="N",
                          help="render the audio of N matches at once, each thread with its own FluidSynth "
                          "(default 2: one per core of a 2-core box). The audio is byte for byte the same "
                          "whatever N; control-only composers ignore it")
    gather_ms = round(ComposerConfig.gather_s * 1000)
    composer.add_argument("--gather-ms", type=whole_number(low=0, high=1000, what="milliseconds"),
                          default=gather_ms, metavar="MS",
                          help="begin a transaction at most every MS ms; windows arriving meanwhile go into the next "
                          f"one (default {gather_ms}). Lower: less emotion -> music latency, more transactions (each "
                          "costs the broker about the same whatever it holds); 0: one as soon as the last one committed")
    add_metrics_arguments(composer)
    composer.add_argument("--forget-after", type=whole_number(low=1, high=24 * 365, what="a whole number of hours"),
                          default=6, metavar="HOURS",
                          help="forget a match (delete its state) once its partition has heard another match "
                          "HOURS later in match audio time (default 6); a window arriving after that starts its "
                          "music afresh")
    composer.set_defaults(handler=_composer)


def _composer(args: argparse.Namespace, settings: Settings) -> int:
    from consumers.composer import run_composer

    if args.metrics_port is not None:
        settings = settings.with_overrides(metrics_port=args.metrics_port)
    if args.metrics_host:
        settings = settings.with_overrides(metrics_host=args.metrics_host)
    run_composer(settings, ComposerConfig(outputs=args.outputs, instance=args.instance,
                                          forget_after_h=float(args.forget_after),
                                          render_threads=args.render_threads, gather_s=args.gather_ms / 1000))
    return 0


def _tempo_range(text: str) -> tuple[float, float]:
    low, dash, high = text.partition("-")
    try:
        values = (float(low), float(high))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a tempo range like 80-140, got {text!r}") from None
    if not dash or not 40 <= values[0] <= values[1] <= 240:
        raise argparse.ArgumentTypeError(f"expected LOW-HIGH with 40 <= LOW <= HIGH <= 240, got {text!r}")
    return values


def _unit(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in 0..1, got {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a number in 0..1, got {text}")
    return value


def _register_prefs(commands: Any) -> None:
    from consumers.music.types import LAYERS, STYLES

    prefs = commands.add_parser(
        "prefs", help="set or show music preferences (music.preferences.v1)",
        description="Music preferences per match or for every match. The composer applies a change from "
        "the next bar. A match's own preferences override the global ones field by field; a new `set` "
        "for the same target replaces its previous record (the topic is compacted: latest wins).",
    )
    actions = prefs.add_subparsers(dest="action", metavar="ACTION", required=True)
    set_ = actions.add_parser("set", help="write preferences",
                              description="Write preferences for one match (--match) or all (--all).")
    target = set_.add_mutually_exclusive_group(required=True)
    target.add_argument("--match", metavar="M", help="the match these preferences are for")
    target.add_argument("--all", action="store_true", help="the default of every match")
    set_.add_argument("--style", choices=STYLES, help="arrangement style")
    set_.add_argument("--intensity-min", type=_unit, metavar="X", help="lowest intensity, 0..1")
    set_.add_argument("--intensity-max", type=_unit, metavar="X", help="highest intensity, 0..1")
    set_.add_argument("--tempo-range", type=_tempo_range, metavar="LOW-HIGH", help="tempo range in bpm, e.g. 80-140")
    set_.add_argument("--mute", nargs="+", choices=LAYERS, default=[], metavar="LAYER",
                      help=f"layers to silence: {', '.join(LAYERS)}")
    set_.add_argument("--by", default="cli", metavar="NAME", help="who sets them (kept in the record)")
    set_.set_defaults(handler=_prefs_set)
    show = actions.add_parser("show", help="print the preferences in force",
                              description="Read music.preferences.v1 and print what a composer would apply.")
    show.add_argument("--match", metavar="M", help="a match (default: the global preferences)")
    show.set_defaults(handler=_prefs_show)


def _prefs_set(args: argparse.Namespace, settings: Settings) -> int:
    from consumers.prefs_cli import write_preferences

    record = write_preferences(
        settings, match_id=None if args.all else args.match, style=args.style,
        intensity_min=args.intensity_min, intensity_max=args.intensity_max,
        tempo_range=args.tempo_range, muted_layers=args.mute, set_by=args.by,
    )
    print(f"preferences for {record['match_id']} written: " + ", ".join(
        f"{key}={value}" for key, value in record.items()
        if key not in ("match_id", "clock", "wall_time_ms", "set_by") and value not in (None, [])) or "defaults")
    return 0


def _prefs_show(args: argparse.Namespace, settings: Settings) -> int:
    import json

    from consumers.prefs_cli import read_preferences

    print(json.dumps(read_preferences(settings, args.match).to_json(), indent=2))
    return 0


def _cue_type(text: str) -> str:
    from consumers.cues import CUE_TYPES

    name = text.strip().lower().replace("-", "_")
    if name not in CUE_TYPES:
        raise argparse.ArgumentTypeError(f"expected one of {', '.join(t.replace('_', '-') for t in CUE_TYPES)}, "
                                         f"got {text!r}")
    return name


def _register_cue(commands: Any) -> None:
    cue = commands.add_parser(
        "cue", help="fire an operator cue: a stinger on the next beat, hold/release, or a fade (music.cues.v1)",
        description="An operator cue for a match's music, the same record the control room's buttons write. "
        "A stinger (goal, goal-against, near-miss, card, var, full-time) sounds on the next beat the composer "
        "reaches; hold freezes the music's intensity and key from the next bar until release; fade-out and "
        "fade-in move the music's fader over --bars bars from the next bar. The composer applies each cue "
        "once, also across restarts; a cue older than a minute when the composer reads it is not played.",
        epilog="examples:\n  crowdsound cue --match m1 goal\n  crowdsound cue --match m1 fade-out --bars 4",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    cue.add_argument("--match", required=True, metavar="M", help="the match")
    cue.add_argument("type", type=_cue_type, metavar="TYPE",
                     help="goal, goal-against, near-miss, card, var, full-time, hold, release, fade-out, fade-in")
    cue.add_argument("--bars", type=whole_number(low=1, high=32), default=2, metavar="N",
                     help="length of a fade in bars (default 2)")
    cue.add_argument("--by", default="cli", metavar="NAME", help="who sends it (kept in the record)")
    cue.set_defaults(handler=_cue)


def _cue(args: argparse.Namespace, settings: Settings) -> int:
    from consumers.cues import cue_record, write_cue
    from infra.clients import make_producer
    from infra.errors import CrowdsoundError, SchemaError

    try:
        record = cue_record(args.match, args.type, bars=args.bars, set_by=args.by, source="cli")
    except SchemaError as error:
        raise CrowdsoundError(str(error)) from None
    where = write_cue(settings, make_producer(settings), record)
    print(f"cue {record['cue_id']} ({args.type.replace('_', '-')}) for {args.match} written to "
          f"{where['topic']}[{where['partition']}]@{where['offset']}")
    return 0


def _register_listen(commands: Any) -> None:
    listen = commands.add_parser(
        "listen", help="write a match's music (music.audio.v1) to a WAV file or stdout",
        description="A downstream consumer example: reads the match's partition of music.audio.v1 "
        "(no consumer group), keeps its chunks in order and writes them to a WAV file, or with "
        "--out - as raw 48 kHz stereo s16le to stdout, e.g. "
        "`crowdsound listen --match M --out - | ffmpeg -f s16le -ar 48000 -ac 2 -i - live.mp3`. "
        "Stops on Ctrl-C, after --timeout idle seconds, or after --max-seconds of audio.",
    )
    listen.add_argument("--match", required=True, metavar="M", help="the match")
    listen.add_argument("--out", required=True, metavar="PATH", help="a .wav file, or - for raw PCM on stdout")
    listen.add_argument("--live", action="store_true", help="only music from now on (default: from the start)")
    listen.add_argument("--max-seconds", type=seconds, metavar="S", help="stop after S seconds of music")
    listen.add_argument("--timeout", type=seconds, metavar="S", help="stop after S seconds without a chunk")
    listen.set_defaults(handler=_listen)


def _listen(args: argparse.Namespace, settings: Settings) -> int:
    import sys

    from consumers.listen import listen

    result = listen(settings, args.match, args.out, from_beginning=not args.live,
                    max_seconds=args.max_seconds, timeout_s=args.timeout)
    seconds_written = result.samples / result.sample_rate if result.sample_rate else 0.0
    print(f"{result.chunks} chunks, {seconds_written:.1f} s of music written to {args.out}"
          + (f"; {result.missing_chunks} chunks missing" if result.missing_chunks else ""), file=sys.stderr)
    return 0


def _clock_range(text: str) -> tuple[Any, Any]:
    from infra.errors import CrowdsoundError
    from schemas.clock import parse_clock_range

    try:
        return parse_clock_range(text)
    except CrowdsoundError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _register_replay(commands: Any) -> None:
    from consumers.music.types import STYLES

    replay = commands.add_parser(
        "replay", help="score highlight clips of a retained match (WAV, MIDI, JSON, reel, timeline)",
        description="Rebuild music for the highlights of a match from the retained topics. Reads only the "
        "match's partition of each topic, seeking by time. Finds highlights itself (--auto N: goals, "
        "penalties, cards, VAR, near misses and crowd peaks, with pre- and post-roll, overlaps merged, "
        "ranked) or takes --range. Composes with the live composer's code plus foresight: the music "
        "builds towards a goal and lands a bar line and the stinger on it. Writes per clip a WAV "
        "(EBU R128: -23 LUFS, true peak <= -1 dBTP), a MIDI file and a JSON sidecar, then reel.wav "
        "(clips end to end: each ends on its tonic, the next enters on a pickup), timeline.png and index.json/index.md. Two runs "
        "with the same data and options write byte-identical files.",
        epilog="examples:\n  crowdsound replay --match m1 --out out/ --auto 5\n"
        "  crowdsound replay --match m1 --out out/ --range 23:00-25:30 --range 45+1:00-45+2:30 --style electronic",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    replay.add_argument("--match", required=True, metavar="M", help="the match")
    replay.add_argument("--out", required=True, metavar="DIR", help="folder for the files (created if missing)")
    replay.add_argument("--auto", type=whole_number(low=1, high=50), metavar="N",
                        help="find the N best highlights (default 5 when no --range is given)")
    replay.add_argument("--range", dest="ranges", type=_clock_range, action="append", default=[], metavar="A-B",
                        help="a clip by match time, e.g. 23:00-25:30, 45+1:00-45+2:30, 'HT 1:00-HT 2:00' (repeatable)")
    replay.add_argument("--style", choices=STYLES, help="music style (default: orchestral)")
    replay.add_argument("--from-audio", action="store_true",
                        help="recompute the emotions from crowd.audio.v1 instead of reading crowd.emotions.v1")
    replay.add_argument("--mix-crowd", action="store_true", help="lay the music over the crowd audio of the clip")
    replay.add_argument("--read-timeout", type=seconds, default=60.0, metavar="S",
                        help="give up when the broker delivers nothing of a partition still to read for S seconds "
                        "(default 60): the replay then fails with exit status 1 instead of writing an incomplete "
                        "result")
    replay.add_argument("--json", action="store_true", help="print the result as JSON on stdout")
    replay.add_argument("--quiet", action="store_true", help="no progress bars")
    replay.set_defaults(handler=_replay)


def _replay(args: argparse.Namespace, settings: Settings) -> int:
    import json
    import sys
    from pathlib import Path

    from consumers.replay.replay import ReplayOptions, replay

    if args.auto and args.ranges:
        print("crowdsound replay: error: give --auto or --range, not both (see crowdsound replay --help)",
              file=sys.stderr)
        return 2
    options = ReplayOptions(match_id=args.match, out_dir=Path(args.out), auto=args.auto, ranges=args.ranges,
                            style=args.style, from_audio=args.from_audio, mix_crowd=args.mix_crowd,
                            progress=not args.quiet, read_timeout_s=args.read_timeout)
    result = replay(settings, options)
    summary = {
        "match_id": result.match_id, "out": str(result.out_dir), "emotions_from": result.source,
        "windows": result.windows, "goals": result.goals,
        "clips": [{"rank": c.rank, "name": c.name, "start": str(c.highlight.start), "end": str(c.highlight.end),
                   "reason": c.highlight.reason, "duration_s": round(c.duration_s, 2), "stingers": c.stingers}
                  for c in result.clips],
        "files": result.files,
    }
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(f"{result.match_id}: {len(result.clips)} clips from {result.windows} emotion windows "
              f"({result.source}), {result.goals} goals", file=sys.stderr)
        for clip in summary["clips"]:
            print(f"  #{clip['rank']} {clip['start']}-{clip['end']}  {clip['reason']}  ({clip['duration_s']:.1f} s)")
        print(f"{len(result.files)} files written to {result.out_dir}/", file=sys.stderr)
    return 0


def _register_audit(commands: Any) -> None:
    audit = commands.add_parser(
        "audit", help="measure a replay folder the way a music supervisor would (no Kafka)",
        description="Read a replay folder (crowdsound replay or make demo: clips' WAV/MIDI/JSON, reel.wav, and "
        "live.wav/live.json/live.mid when present) and print: each file's loudness, true peak and its first and "
        "last 50 ms against its RMS (a release ends >= 20 dB under it, a start without a full-level hit >= 10 dB "
        "under it); how often the tempo moves from bar to bar and its largest step; loudness 8 s before vs 4-12 s "
        "after each home goal; whether the key brightens after an away goal; semitone clashes of stingers with the "
        "bar against the accompaniment's own; notes in key; the home theme at home goals; phrase endings; notes "
        "off the 16th grid, velocity curves, expression across bar lines; how long the reel's clips overlap. "
        "Ends with one PASS/FAIL line per rule; exit status 1 when a rule fails.",
        epilog="example:\n  crowdsound audit out/",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    audit.add_argument("folder", type=_replay_folder, metavar="DIR", help="a replay folder (with index.json)")
    audit.add_argument("--json", action="store_true", help="print the figures and verdicts as JSON")
    audit.set_defaults(handler=_audit)


def _replay_folder(text: str) -> Any:
    from pathlib import Path

    folder = Path(text)
    if not folder.is_dir():
        raise argparse.ArgumentTypeError(f"{text} is not a folder")
    if not (folder / "index.json").is_file():
        raise argparse.ArgumentTypeError(f"{text} has no index.json: not a replay folder "
                                         "(crowdsound replay and make demo write one)")
    return folder


def _audit(args: argparse.Namespace, settings: Settings) -> int:
    import json

    from consumers.replay.audit import audit_folder, format_report

    report = audit_folder(args.folder)
    print(json.dumps(report.to_json(), indent=2) if args.json else format_report(report))
    return 0 if report.passed else 1


def _register_controlroom(commands: Any) -> None:
    room = commands.add_parser(
        "controlroom", help="the control room: a web page and HTTP API for the people running a match",
        description="Serve the control room: a page showing every match live (crowd emotion, events, the "
        "music's tempo, key, chord, intensity and layers), cue buttons, the preferences form, the live music "
        "in the browser and highlight reels; and the HTTP API behind it under /api/v1 (OpenAPI at "
        "/api/v1/openapi.json, docs at /docs), /metrics and /healthz. It reads the topics itself (no "
        "consumer group, no database). Writes need a bearer token from CROWDSOUND_API_TOKENS "
        "(operator=token,...); reads too unless CROWDSOUND_API_PUBLIC_READ=1.",
        epilog="example:\n  CROWDSOUND_API_TOKENS=alice=$(openssl rand -hex 16) crowdsound controlroom --port 8080",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    room.add_argument("--host", default="127.0.0.1", metavar="ADDR",
                      help="address to listen on (default 127.0.0.1; 0.0.0.0 for every interface)")
    room.add_argument("--port", type=whole_number(low=1, high=65535), default=8080, metavar="PORT",
                      help="port of the page, the API and /metrics (default 8080)")
    room.add_argument("--lookback", type=whole_number(low=1, high=24 * 60, what="a whole number of minutes"),
                      default=30, metavar="MINUTES",
                      help="show matches heard of in the last MINUTES, with their recent past (default 30)")
    room.add_argument("--client-queue", type=whole_number(low=8, high=100_000), default=2048, metavar="N",
                      help="messages that may wait for one WebSocket client before it is dropped as too slow "
                      "(default 2048); a client that takes nothing for 10 s is dropped too")
    room.set_defaults(handler=_controlroom)


def _controlroom(args: argparse.Namespace, settings: Settings) -> int:
    from consumers.controlroom import ControlRoomConfig, run_controlroom

    run_controlroom(settings, ControlRoomConfig(host=args.host, port=args.port, lookback_s=args.lookback * 60.0,
                                                client_queue=args.client_queue))
    return 0
