"""Producer subcommands: ``encoder``, ``feed``, ``event`` and ``stadium``."""

from __future__ import annotations

import argparse
import json
import signal
import socket
from pathlib import Path
from typing import Any

from infra.cliargs import add_metrics_arguments
from infra.settings import Settings

__all__ = ["register"]

_ENCODER_HELP = """\
Stream crowd audio of one match to crowd.audio.v1.

SOURCE is an audio file (WAV, FLAC, OGG; resampled to --rate), '-' for raw PCM s16le on
stdin, or 'stadium:SCRIPT.toml' for the synthetic stadium. Any live input works through
ffmpeg:

  ffmpeg -i srt://encoder:9000 -f s16le -ac 1 -ar 48000 - | crowdsound encoder --match M --source -

The match clock of each frame comes from --kickoff (wall time of the first-half kick-off),
from --start (match time of a file's first sample), or else from the match's PERIOD_START
and PERIOD_END events on match.events.v1, followed live.

Frames go through a bounded on-disk spool: while the broker is unreachable they wait on
disk and are sent in order once it is back. SIGTERM or Ctrl-C stops reading, sends what is
spooled and exits; what cannot be sent stays in the spool for the next run.
"""


def register(commands: Any) -> None:
    """Add the producer subcommands to the CLI."""
    _register_encoder(commands)
    _register_feed(commands)
    _register_event(commands)
    _register_stadium(commands)


def _audio_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rate", type=int, default=48_000, metavar="HZ", help="sample rate of the frames (default 48000)")
    parser.add_argument("--channels", type=int, choices=[1, 2], default=1, help="1 = mono (default), 2 = stereo")
    parser.add_argument("--frame-ms", type=int, default=1000, metavar="MS",
                        help="frame length, 10..1000 ms (default 1000: one record per second of audio; frames are cut "
                             "on the match clock's grid, so a divisor of 1000 sends each window's last audio the "
                             "moment the window is complete; the worker analyses audio in 100 ms pieces whatever "
                             "the frame length)")
    parser.add_argument("--encoding", choices=["pcm", "flac"], default="pcm",
                        help="payload: pcm (s16le, default) or flac (lossless, ~half the bytes)")
    parser.add_argument("--fast", action="store_true",
                        help="backfill as fast as the broker takes it instead of in real time")
    parser.add_argument("--kickoff", metavar="WALL", help="wall time of the first-half kick-off: now, epoch ms or ISO 8601")
    parser.add_argument("--encoder-id", default=socket.gethostname(), help="names this encoder (default: host name)")
    parser.add_argument("--spool-dir", type=Path, metavar="DIR",
                        help="on-disk spool (default: CROWDSOUND_STATE_DIR/spool/MATCH-ENCODER)")
    parser.add_argument("--spool-max-mb", type=int, default=512, metavar="MB",
                        help="spool bound; when full, new frames are dropped and logged loudly (default 512)")
    add_metrics_arguments(parser)
    parser.add_argument("--drain-timeout", type=float, default=30.0, metavar="S",
                        help="at the end, wait this long for Kafka to take the spool (default 30)")
    parser.add_argument("--quiet", action="store_true", help="no progress line")


def _register_encoder(commands: Any) -> None:
    parser = commands.add_parser("encoder", help="stream crowd audio (file, stdin PCM, stadium) to crowd.audio.v1",
                                 description=_ENCODER_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--match", required=True, metavar="M", help="match id (the Kafka key)")
    parser.add_argument("--source", required=True, metavar="SOURCE", help="audio file, '-' (stdin PCM) or stadium:SCRIPT")
    parser.add_argument("--start", metavar="MM:SS", help="match time of a file's first sample, e.g. 23:10 or 'HT 2:00'")
    _audio_options(parser)
    parser.set_defaults(handler=_encoder)


def _register_feed(commands: Any) -> None:
    parser = commands.add_parser(
        "feed", help="send match events (JSON Lines or a provider's files) to match.events.v1",
        description="Send the events of one match to match.events.v1, paced like the live match "
        "(relative to --kickoff, default now) or all at once with --fast. Sources: JSON Lines in our "
        "MatchEvent shape (see producers/feed.py), or a data provider's files read with kloppy "
        "(--provider statsbomb|opta|wyscout|...; give the files in kloppy's order, e.g. events then "
        "lineup). Malformed lines go to match.events.dlq.v1 with the reason; good lines are still sent. "
        "Events go through an on-disk spool: while the broker is unreachable they wait there, and what is not "
        "acknowledged within --drain-timeout at the end stays for the next run (exit status 1 says so).",
    )
    parser.add_argument("--match", required=True, metavar="M", help="match id (the Kafka key)")
    parser.add_argument("--source", required=True, action="append", metavar="FILE",
                        help="feed file; repeat for providers that need several files")
    parser.add_argument("--provider", default="jsonl", help="jsonl (default) or a kloppy provider name")
    parser.add_argument("--kickoff", metavar="WALL", help="wall time of kick-off for pacing (default: now; with --fast: "
                        "so that the match ends now)")
    parser.add_argument("--delay", type=float, default=0.0, metavar="S",
                        help="send each event S seconds after it happened (real feeds lag the pitch)")
    parser.add_argument("--fast", action="store_true", help="send everything now, in match order")
    parser.add_argument("--spool-dir", type=Path, metavar="DIR",
                        help="on-disk spool of events waiting for Kafka (default: CROWDSOUND_STATE_DIR/spool/feed-MATCH)")
    parser.add_argument("--drain-timeout", type=float, default=30.0, metavar="S",
                        help="at the end, wait this long for Kafka to take the spool (default 30)")
    parser.add_argument("--quiet", action="store_true", help="do not print each event as it is sent")
    parser.set_defaults(handler=_feed)


def _register_event(commands: Any) -> None:
    from producers.feed import EVENT_TYPE_NAMES

    parser = commands.add_parser(
        "event", help="enter one match event by hand, e.g. `event --match M goal --team home --at 23:10`",
        description="Send one match event to match.events.v1, stamped now. Types: " + ", ".join(EVENT_TYPE_NAMES) + ".",
    )
    parser.add_argument("--match", required=True, metavar="M", help="match id")
    parser.add_argument("type", help="event type, e.g. goal, card, var, kickoff, period_end")
    parser.add_argument("--team", default="", metavar="SIDE",
                        help="home or away (or a team name together with --side)")
    parser.add_argument("--side", choices=["home", "away"], help="side, when --team is a name")
    parser.add_argument("--at", required=True, metavar="TIME", help="match time: 23:10, 45+2:00, 'HT 3:00'")
    parser.add_argument("--player", help="player name")
    parser.add_argument("--outcome", help="detail: own_goal, penalty, saved, post, yellow, red, confirmed, overturned...")
    parser.set_defaults(handler=_event)


def _register_stadium(commands: Any) -> None:
    parser = commands.add_parser(
        "stadium", help="play a synthetic match: crowd audio and its delayed event feed",
        description="Render the crowd of a scripted match (producers/stadium/scripts/*.toml) and publish it "
        "like a real venue would: audio frames to crowd.audio.v1 through the venue encoder, and the match "
        "events to match.events.v1 with the script's feed delay. Deterministic for the script's seed. "
        "--wav also writes the audio to a file so a person can listen; --no-kafka only writes the file.",
    )
    parser.add_argument("--script", required=True, type=Path, metavar="FILE", help="match script (TOML)")
    parser.add_argument("--match", metavar="M", help="match id (default: the script's)")
    parser.add_argument("--wav", type=Path, metavar="OUT", help="also write the crowd audio to this WAV file")
    parser.add_argument("--no-kafka", action="store_true", help="only write --wav; publish nothing")
    _audio_options(parser)
    parser.set_defaults(handler=_stadium)


# -- handlers ------------------------------------------------------------------------------

def _encoder_options(args: argparse.Namespace, settings: Settings, match_id: str):
    from infra.errors import CrowdsoundError
    from producers.encoder import EncoderOptions

    if args.rate < 8000 or args.rate > 192_000:
        raise CrowdsoundError(f"--rate {args.rate} is outside 8000..192000 Hz")
    if not 10 <= args.frame_ms <= 1000:
        raise CrowdsoundError(f"--frame-ms {args.frame_ms} is outside 10..1000")
    if args.spool_max_mb < 1:
        raise CrowdsoundError(f"--spool-max-mb {args.spool_max_mb} must be at least 1")
    spool = args.spool_dir or settings.state_dir / "spool" / f"{match_id}-{args.encoder_id}"
    options = EncoderOptions(
        match_id=match_id, encoder_id=args.encoder_id, sample_rate=args.rate, channels=args.channels,
        frame_ms=args.frame_ms, encoding="FLAC" if args.encoding == "flac" else "PCM_S16LE", fast=args.fast,
        spool_dir=spool, spool_max_bytes=args.spool_max_mb * 1024 * 1024,
    )
    options.samples_per_frame  # noqa: B018 - validates rate x frame length now, as a one-line error
    return options


def _serve_metrics(args: argparse.Namespace, settings: Settings) -> None:
    from infra.metrics import serve_process_metrics

    serve_process_metrics(args, settings)


def _run_encoder(encoder, source, args: argparse.Namespace, *, on_audio_time=None) -> int:
    previous = signal.signal(signal.SIGTERM, lambda *_: encoder.stop())
    try:
        report = encoder.run(source, progress=not args.quiet, on_audio_time=on_audio_time,
                             drain_timeout_s=args.drain_timeout)
    except KeyboardInterrupt:
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)
    rate = report.audio_seconds / report.elapsed_seconds if report.elapsed_seconds else 0.0
    print(f"sent {report.frames} frames ({report.audio_seconds:.1f} s of audio, {report.bytes / 1e6:.2f} MB) "
          f"in {report.elapsed_seconds:.2f} s ({rate:.1f}x real time); dropped {report.dropped}; "
          f"left in spool {report.left_in_spool}")
    return 1 if report.left_in_spool or report.dropped else 0


def _encoder(args: argparse.Namespace, settings: Settings) -> int:
    from infra.errors import CrowdsoundError
    from producers.encoder import VenueEncoder, first_sample_wall_ms
    from producers.sources import StadiumSource, open_source
    from producers.walltime import parse_wall_time
    from schemas.clock import parse_clock
    from schemas.timeline import MatchTimeline, PeriodStart

    options = _encoder_options(args, settings, args.match)
    source = open_source(args.source, sample_rate=args.rate, channels=args.channels)
    if args.start and source.live:
        raise CrowdsoundError("--start is for files; a live input takes its clock from --kickoff or the match events")
    kickoff = parse_wall_time(args.kickoff) if args.kickoff else None
    follower = None
    if isinstance(source, StadiumSource):
        first = first_sample_wall_ms(fast=args.fast, duration_s=source.duration_s)
        if kickoff is not None:
            first = kickoff - source.script.timeline().instant_of(parse_clock("0:00"))
        clock = source.script.timeline(origin_ms=first)
    elif args.start:
        start = parse_clock(args.start)
        first = first_sample_wall_ms(fast=args.fast, duration_s=source.duration_s)
        clock = MatchTimeline(origin_ms=first - start.ms, starts=[PeriodStart(first - start.ms, start.period)])
    elif kickoff is not None:
        first = kickoff if args.fast and not source.live else first_sample_wall_ms(fast=False, duration_s=None)
        clock = MatchTimeline.from_kickoff(kickoff)
    else:
        if args.fast:
            raise CrowdsoundError("--fast needs a match clock: give --start (match time of the first sample) or --kickoff")
        from producers.follow import EventFollowingClock

        follower = clock = EventFollowingClock(settings, args.match)
        first = first_sample_wall_ms(fast=False, duration_s=None)
    _serve_metrics(args, settings)
    encoder = VenueEncoder(settings, options, clock=clock, first_sample_wall_ms=first)
    try:
        return _run_encoder(encoder, source, args)
    finally:
        if follower is not None:
            follower.close()


def _feed(args: argparse.Namespace, settings: Settings) -> int:
    from infra.errors import CrowdsoundError
    from producers.feed import FeedPublisher, event_timeline, feed_spool_dir, parse_jsonl_line
    from producers.walltime import now_ms, parse_wall_time
    from schemas.clock import MatchClock

    if args.drain_timeout < 0:
        raise CrowdsoundError(f"--drain-timeout {args.drain_timeout} must be >= 0")
    if args.delay < 0:
        raise CrowdsoundError(f"--delay {args.delay} must be >= 0")
    # The input is read before the publisher connects: a file that cannot be read is one line,
    # not a line plus the client's complaints about a broker it never needed.
    events: list[dict] = []
    lines: list[bytes] = []
    if args.provider == "jsonl":
        if len(args.source) != 1:
            raise CrowdsoundError("a JSON Lines feed is one --source file")
        path = Path(args.source[0])
        try:
            lines = path.read_bytes().splitlines()
        except OSError as exc:
            raise CrowdsoundError(f"cannot read {path}: {exc.strerror}") from None
    else:
        from producers.providers import load_provider_events

        events = [dict(e, wall_time_ms=None) for e in load_provider_events(args.provider, args.source, match_id=args.match)]
    publisher = FeedPublisher(settings, args.match, spool_dir=args.spool_dir or feed_spool_dir(settings, args.match))
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:
            events.append(parse_jsonl_line(raw.decode("utf-8"), match_id=args.match))
        except (CrowdsoundError, UnicodeDecodeError) as exc:
            publisher.reject(source=f"{path}:{number}", raw=raw, reason=f"line {number}: {exc}",
                             error_type=type(exc).__name__)
    span = 0
    if events:
        probe = event_timeline(events, kickoff_ms=0)
        span = max(probe.instant_of(MatchClock.from_avro(e["clock"])) or 0 for e in events)
    kickoff = parse_wall_time(args.kickoff) if args.kickoff else (now_ms() - span if args.fast else now_ms())
    timeline = event_timeline(events, kickoff_ms=kickoff)
    for event in events:
        if event["wall_time_ms"] is None:
            event["wall_time_ms"] = timeline.instant_of(MatchClock.from_avro(event["clock"]))
    publisher.publish_paced(events, fast=args.fast, delay_ms=int(args.delay * 1000), echo=not args.quiet)
    publisher.flush(args.drain_timeout)
    print(f"sent {publisher.stats.sent} events; {publisher.stats.dead_lettered} bad lines dead-lettered "
          f"to {settings.topic('match.events.dlq.v1')}" + (f"; {publisher.stats.dropped} DROPPED (spool full)"
                                                          if publisher.stats.dropped else ""))
    return 1 if publisher.stats.dropped else 0


def _event(args: argparse.Namespace, settings: Settings) -> int:
    from producers.feed import FeedPublisher, make_event
    from producers.walltime import now_ms
    from schemas.clock import parse_clock

    side = args.side or (args.team if args.team.lower() in ("home", "away") else "")
    team = None if args.team.lower() in ("home", "away", "") else args.team
    event = make_event(match_id=args.match, event_type=args.type, clock=parse_clock(args.at), side=side, team=team,
                       player=args.player, outcome=args.outcome, wall_time_ms=now_ms())
    publisher = FeedPublisher(settings, args.match)
    publisher.publish(event)
    publisher.flush()
    print(json.dumps({k: v for k, v in event.items() if v is not None}, separators=(",", ":")))
    return 0


def _stadium(args: argparse.Namespace, settings: Settings) -> int:
    from infra.errors import CrowdsoundError
    from infra.progress import Progress
    from producers.encoder import VenueEncoder, first_sample_wall_ms
    from producers.feed import FeedPublisher, feed_spool_dir
    from producers.sources import StadiumSource
    from producers.stadium import script_events, write_wav
    from producers.walltime import parse_wall_time
    from schemas.clock import parse_clock

    source = StadiumSource(args.script, sample_rate=args.rate, channels=args.channels)
    script = source.script
    match_id = args.match or script.match_id
    if args.wav:
        bar = Progress(script.duration_ms / 1000, f"writing {args.wav}", enabled=not args.quiet)
        write_wav(script, args.wav, sample_rate=args.rate, channels=args.channels,
                  progress=lambda seconds: bar.update(seconds))
        bar.close()
        print(f"wrote {args.wav} ({script.duration_ms / 1000:.1f} s)")
    if args.no_kafka:
        if not args.wav:
            raise CrowdsoundError("--no-kafka without --wav does nothing")
        return 0
    first = first_sample_wall_ms(fast=args.fast, duration_s=source.duration_s)
    if args.kickoff:
        first = parse_wall_time(args.kickoff) - script.timeline().instant_of(parse_clock("0:00"))
    timeline = script.timeline(origin_ms=first)
    pending = sorted(
        (dict({k: v for k, v in e.items() if k != "offset_ms"}, match_id=match_id, wall_time_ms=first + e["offset_ms"],
              event_id=e["event_id"].replace(script.match_id, match_id, 1))
         for e in script_events(script)),
        key=lambda e: e["wall_time_ms"],
    )
    spool = Path(f"{args.spool_dir}-events") if args.spool_dir else feed_spool_dir(settings, match_id)
    publisher = FeedPublisher(settings, match_id, processor="crowdsound-stadium", spool_dir=spool)

    def publish_due(audio_wall_ms: int) -> None:
        # The feed lags the pitch: an event is published once the audio is script.feed_delay past it.
        while pending and pending[0]["wall_time_ms"] + script.feed_delay_ms <= audio_wall_ms:
            publisher.publish(pending.pop(0))

    _serve_metrics(args, settings)
    options = _encoder_options(args, settings, match_id)
    encoder = VenueEncoder(settings, options, clock=timeline, first_sample_wall_ms=first)
    status = _run_encoder(encoder, source, args, on_audio_time=publish_due)
    for event in pending:  # events in the last feed-delay of the match
        publisher.publish(event)
    publisher.flush(args.drain_timeout)
    print(f"sent {publisher.stats.sent} match events for {match_id}")
    return status or (1 if publisher.stats.dropped else 0)
