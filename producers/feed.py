"""The match feed: match events from JSON Lines, provider files or a person, onto match.events.v1.

Pure parts (parsing a line, laying events on a wall-clock timeline) are separate from the
publisher, which encodes, dead-letters what does not fit and produces. Like the venue
encoder's frames, the feed's events go through a bounded on-disk spool before Kafka: a
broker outage longer than any delivery timeout keeps them on disk, they are sent in order
when the broker is back, and what could not be sent before the feed exits stays in the spool
for the next run (which says so, and exits non-zero).

A JSON Lines feed has one event per line, in our MatchEvent shape with two conveniences::

    {"type": "goal", "side": "home", "team": "Arsenal", "player": "Saka", "at": "23:10"}
    {"type": "PERIOD_START", "clock": {"period": "SECOND_HALF", "ms": 0}}

``type`` is an EventType symbol or a friendly name (goal, shot, save, card, penalty, var,
substitution, kickoff, period_start, period_end, corner, foul); ``at`` is match time as
people write it (``45+2:10``), ``clock`` the exact form. ``event_id`` defaults to a hash of
the line, so re-sending a file gives the same ids; ``wall_time_ms`` defaults to the
kick-off-based timeline.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prometheus_client import Counter, Gauge

from infra.clients import DeliveryErrors, make_producer, match_key
from infra.deadletter import DeadLetterWriter
from infra.errors import CrowdsoundError, SchemaError
from infra.settings import Settings
from schemas.clock import MatchClock, Period, parse_clock
from schemas.codec import encode
from schemas.limits import check_record
from schemas.timeline import MatchTimeline

if TYPE_CHECKING:
    from producers.sender import SpoolSender

__all__ = [
    "EVENT_TYPE_NAMES",
    "FeedPublisher",
    "event_timeline",
    "feed_spool_dir",
    "make_event",
    "parse_jsonl_line",
]

log = logging.getLogger("crowdsound.feed")

EVENTS_SENT = Counter("crowdsound_feed_events_total", "Match events acknowledged by Kafka.")
EVENTS_SPOOLED = Gauge("crowdsound_feed_spool_events", "Match events in the feed's on-disk spool waiting for Kafka.")

EVENT_TYPE_NAMES: dict[str, str] = {
    "goal": "GOAL", "shot": "SHOT", "save": "SAVE", "card": "CARD", "penalty": "PENALTY_AWARDED",
    "var": "VAR_REVIEW", "substitution": "SUBSTITUTION", "sub": "SUBSTITUTION", "kickoff": "PERIOD_START",
    "period_start": "PERIOD_START", "period_end": "PERIOD_END", "corner": "CORNER", "foul": "FOUL",
    "other": "OTHER",
}
_SYMBOLS = {"PERIOD_START", "PERIOD_END", "GOAL", "SHOT", "SAVE", "CARD", "PENALTY_AWARDED", "VAR_REVIEW",
            "SUBSTITUTION", "CORNER", "FOUL", "OTHER"}
_SIDES = {"home": "HOME", "away": "AWAY", "none": "NONE", "": "NONE"}
_FIELDS = {"match_id", "event_id", "type", "side", "team", "player", "outcome", "clock", "at", "wall_time_ms", "source"}


def _event_type(value: Any) -> str:
    name = str(value).strip()
    symbol = EVENT_TYPE_NAMES.get(name.lower().replace("-", "_"), name.upper())
    if symbol not in _SYMBOLS:
        raise CrowdsoundError(f"unknown event type {value!r}; use one of {', '.join(EVENT_TYPE_NAMES)}")
    return symbol


def make_event(*, match_id: str, event_type: str, clock: MatchClock, side: str = "NONE", team: str | None = None,
               player: str | None = None, outcome: str | None = None, event_id: str | None = None,
               source: str = "manual", wall_time_ms: int | None = None) -> dict[str, Any]:
    """A MatchEvent record (``wall_time_ms`` may be None until the timeline fills it in)."""
    side_symbol = _SIDES.get(side.lower(), side.upper())
    if side_symbol not in ("HOME", "AWAY", "NONE"):
        raise CrowdsoundError(f"unknown side {side!r}; use home or away")
    symbol = _event_type(event_type)
    if event_id is None:
        basis = f"{match_id}|{symbol}|{clock.period.value}|{clock.ms}|{side_symbol}|{player}|{outcome}"
        event_id = f"{source}-{hashlib.sha1(basis.encode()).hexdigest()[:12]}"
    return {
        "match_id": match_id, "event_id": event_id, "type": symbol, "side": side_symbol, "team": team,
        "player": player, "outcome": outcome, "clock": clock.to_avro(), "wall_time_ms": wall_time_ms,
        "source": source,
    }


def parse_jsonl_line(line: str, *, match_id: str) -> dict[str, Any]:
    """One JSON Lines feed line to a MatchEvent record (``wall_time_ms`` possibly None).

    Raises
    ------
    CrowdsoundError
        Saying what is wrong with the line.
    """
    try:
        raw = json.loads(line)
    except json.JSONDecodeError as exc:
        raise CrowdsoundError(f"not JSON: {exc.msg} at column {exc.colno}") from None
    if not isinstance(raw, dict):
        raise CrowdsoundError("not a JSON object")
    unknown = set(raw) - _FIELDS
    if unknown:
        raise CrowdsoundError(f"unknown fields {sorted(unknown)}")
    if raw.get("match_id") not in (None, match_id):
        raise CrowdsoundError(f"match_id {raw['match_id']!r} is not the feed's match {match_id!r}")
    if "type" not in raw:
        raise CrowdsoundError("no 'type'")
    if "clock" in raw:
        clock_raw = raw["clock"]
        if not isinstance(clock_raw, dict) or not {"period", "ms"} <= set(clock_raw):
            raise CrowdsoundError("'clock' must be {\"period\": ..., \"ms\": ...}")
        clock = MatchClock(clock_raw["period"], clock_raw["ms"])
    elif "at" in raw:
        clock = parse_clock(str(raw["at"]))
    elif _event_type(raw["type"]) == "PERIOD_START" and str(raw["type"]).lower() == "kickoff":
        clock = MatchClock(Period.FIRST_HALF, 0)
    else:
        raise CrowdsoundError("no 'at' or 'clock' (match time)")
    side = str(raw.get("side") or "")
    team = raw.get("team")
    if not side and isinstance(team, str) and team.lower() in ("home", "away"):
        side, team = team, None
    wall = raw.get("wall_time_ms")
    if wall is not None and not isinstance(wall, int):
        raise CrowdsoundError("'wall_time_ms' must be whole epoch milliseconds")
    return make_event(
        match_id=match_id, event_type=raw["type"], clock=clock, side=side, team=team,
        player=raw.get("player"), outcome=raw.get("outcome"), event_id=raw.get("event_id"),
        source=str(raw.get("source") or "jsonl"), wall_time_ms=wall,
    )


def event_timeline(events: Sequence[dict[str, Any]], *, kickoff_ms: int, half_time_ms: int = 15 * 60_000,
                   break_ms: int = 5 * 60_000) -> MatchTimeline:
    """Lay the periods of a recorded feed on the wall clock, starting at ``kickoff_ms``.

    A period ends at its PERIOD_END event (or its last event); the next playing period
    starts a break later (``half_time_ms`` after the first half, ``break_ms`` otherwise).
    """
    ends: dict[Period, int] = {}
    for event in events:
        period = Period(event["clock"]["period"])
        if period.is_play:
            ends[period] = max(ends.get(period, 0), event["clock"]["ms"])
    playing = [p for p in Period if p in ends] or [Period.FIRST_HALF]
    ends.setdefault(Period.FIRST_HALF, 0)
    timeline = MatchTimeline(origin_ms=kickoff_ms - 2 * 3_600_000)
    start = kickoff_ms
    for index, period in enumerate(playing):
        if index:
            previous = playing[index - 1]
            start += ends[previous] + (half_time_ms if previous is Period.FIRST_HALF else break_ms)
        timeline.begin(period, start)
        timeline.end(period, start + ends[period], more_to_come=index + 1 < len(playing))
    return timeline


def feed_spool_dir(settings: Settings, match_id: str) -> Path:
    """Where a match's feed spools its events unless told otherwise (one feed per match)."""
    return settings.state_dir / "spool" / f"feed-{match_id}"


@dataclass
class FeedStats:
    sent: int = 0  # handed on (to the spool, or to the producer without one)
    dead_lettered: int = 0
    dropped: int = 0  # refused by a full spool


class FeedPublisher:
    """Encodes MatchEvents and produces them; bad input goes to match.events.dlq.v1.

    With ``spool_dir`` every event goes through an on-disk spool first (see the module), and
    events an earlier run left there are sent before the new ones.
    """

    def __init__(self, settings: Settings, match_id: str, *, producer=None, processor: str = "crowdsound-feed",
                 spool_dir: Path | None = None, spool_max_bytes: int = 64 * 1024 * 1024) -> None:
        self.settings = settings
        self.match_id = match_id
        self.topic = settings.topic("match.events.v1")
        self.delivery = DeliveryErrors(settings)
        self.stats = FeedStats()
        self.spool = None
        self.sender: SpoolSender | None = None
        if spool_dir is not None:
            from producers.sender import SpoolMetrics, SpoolSender
            from producers.spool import DiskSpool

            self.producer = producer or make_producer(settings, {"message.timeout.ms": 0})  # never give up
            self.spool = DiskSpool(spool_dir, max_bytes=spool_max_bytes)
            self.sender = SpoolSender(self.producer, self.spool, self.topic, what="match event",
                                      metrics=SpoolMetrics(sent=EVENTS_SENT, depth=EVENTS_SPOOLED))
            if self.spool.depth:
                log.warning("resending %d events left in the spool %s by an earlier run", self.spool.depth, spool_dir)
            self.sender.pump()
        else:
            self.producer = producer or make_producer(settings)
        self.dead_letters = DeadLetterWriter(self.producer, settings, processor=processor)

    def publish(self, event: dict[str, Any]) -> None:
        """Produce one complete MatchEvent (its wall time is the record timestamp)."""
        value, key = encode("MatchEvent", event), match_key(self.match_id)
        if self.spool is None or self.sender is None:
            self.producer.produce(self.topic, value=value, key=key, timestamp=event["wall_time_ms"],
                                  on_delivery=self.delivery)
            self.producer.poll(0)
        elif self.spool.append(key=key, value=value, timestamp_ms=event["wall_time_ms"]):
            self.spool.sync()  # an event is rare and precious: on disk before we go on
            self.sender.pump()
        else:
            log.error("SPOOL FULL: %s holds %d events; event %s is DROPPED", self.spool.directory, self.spool.depth,
                      event["event_id"])
            self.stats.dropped += 1
            return
        self.stats.sent += 1

    def reject(self, *, source: str, raw: bytes, reason: str, error_type: str) -> None:
        """Dead-letter input that could not become a MatchEvent."""
        log.warning("dead-lettered %s: %s", source, reason)
        self.dead_letters.from_input(target_topic=self.topic, source=source, value=raw, reason=reason,
                                     error_type=error_type, match_id=self.match_id)
        self.stats.dead_lettered += 1

    def publish_paced(self, events: Iterable[dict[str, Any]], *, fast: bool, delay_ms: int = 0,
                      echo: bool = True) -> None:
        """Publish events in match order; live, each ``delay_ms`` after it happened."""
        for event in sorted(events, key=lambda e: (Period(e["clock"]["period"]).order, e["clock"]["ms"])):
            try:  # before pacing: an impossible clock would be waited for for years
                check_record("MatchEvent", event)
            except SchemaError as exc:
                self.reject(source=f"event {event.get('event_id')}", raw=json.dumps(event, default=str).encode(),
                            reason=str(exc), error_type="SchemaError")
                continue
            if not fast:
                due = (event["wall_time_ms"] + delay_ms) / 1000
                while (remaining := due - time.time()) > 0:
                    self.producer.poll(min(remaining, 0.5))
                    if self.sender is not None:
                        self.sender.pump()  # what waits in the spool goes out as soon as Kafka takes it
            try:
                self.publish(event)
            except SchemaError as exc:
                self.reject(source=f"event {event.get('event_id')}", raw=json.dumps(event, default=str).encode(),
                            reason=str(exc), error_type="SchemaError")
                continue
            if echo:
                clock = MatchClock.from_avro(event["clock"])
                print(f"{clock!s:>9}  {event['type']:<15} {event['side']:<4} {event.get('team') or ''} "
                      f"{event.get('player') or ''}".rstrip(), flush=True)

    def flush(self, timeout_s: float = 30.0) -> None:
        """Wait until Kafka has everything, for up to ``timeout_s``.

        Raises
        ------
        CrowdsoundError
            When events (or dead letters) are still not acknowledged; spooled events stay in the
            spool for the next run, and the message says where.
        """
        if self.spool is not None and self.sender is not None:
            drained = self.sender.drain(timeout_s)
            left = self.spool.depth
            self.spool.close()
            if not drained:
                raise CrowdsoundError(f"{left} events were not acknowledged by Kafka within {timeout_s:.0f} s; "
                                      f"they stay in the spool {self.spool.directory} and are sent by the next run")
        remaining = self.producer.flush(timeout_s)
        self.delivery.check()
        if remaining:
            raise CrowdsoundError(f"{remaining} events were not acknowledged by Kafka within {timeout_s:.0f} s")
