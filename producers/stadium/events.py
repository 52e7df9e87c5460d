"""What the match feed of a scripted match reports: MatchEvent-shaped dicts.

Each event has the fields of ``schemas/MatchEvent.avsc`` except ``wall_time_ms`` (the
caller knows when the audio started) plus ``offset_ms``: when it happened on the pitch,
in ms from the start of the audio. Chants, applause, boos and whistles are crowd noise,
not match events, and produce none.
"""

from __future__ import annotations

from typing import Any

from producers.stadium.script import MatchScript, Moment
from schemas.clock import MatchClock

__all__ = ["script_events"]

# Within one instant: a period starts before anything happens in it and ends after.
_RANK = {"PERIOD_START": 0, "PERIOD_END": 2}


def script_events(script: MatchScript) -> list[dict[str, Any]]:
    """The match events of ``script``, sorted by ``offset_ms``.

    Returns
    -------
    list of dict
        ``match_id, event_id, type, side, team, player, outcome, clock, source, offset_ms``;
        ``clock`` is ``{"period": "FIRST_HALF", "ms": 90000}``, ``side`` HOME/AWAY/NONE,
        ``event_id`` ``f"{match_id}-stadium-{n:04d}"`` numbered in time order.
    """
    drafts: list[tuple[int, int, int, dict[str, Any]]] = []

    def add(offset_ms: int, clock: MatchClock, type_: str, side: str | None = None, *, player: str | None = None,
            outcome: str | None = None) -> None:
        drafts.append((offset_ms, _RANK.get(type_, 1), len(drafts), {
            "type": type_,
            "side": side.upper() if side else "NONE",
            "team": script.team(side) if side else None,
            "player": player,
            "outcome": outcome,
            "clock": clock.to_avro(),
        }))

    for period, start, length in script.period_spans():
        if period.is_play:
            add(start, MatchClock(period, 0), "PERIOD_START")
            add(start + length, MatchClock(period, length), "PERIOD_END")
    for moment in script.moments:
        _moment_events(moment, add)

    drafts.sort(key=lambda d: d[:3])
    return [
        {
            "match_id": script.match_id,
            "event_id": f"{script.match_id}-stadium-{n:04d}",
            **fields,
            "source": "stadium",
            "offset_ms": offset,
        }
        for n, (offset, _, _, fields) in enumerate(drafts, start=1)
    ]


def _other(side: str) -> str:
    return "away" if side == "home" else "home"


def _moment_events(m: Moment, add: Any) -> None:
    at, clock, side = m.offset_ms, m.clock, m.side
    if m.kind == "goal":
        add(at, clock, "GOAL", side, player=m.player, outcome="penalty" if m.penalty else None)
    elif m.kind == "own_goal":  # credited to the side that benefits; the player is the unlucky one
        add(at, clock, "GOAL", side, player=m.player, outcome="own_goal")
    elif m.kind == "chance":
        add(at, clock, "SHOT", side, player=m.player, outcome=m.outcome)
        if m.outcome == "saved":
            add(at, clock, "SAVE", _other(side))
    elif m.kind == "miss":
        add(at, clock, "SHOT", side, player=m.player, outcome="off_target")
    elif m.kind == "save":  # side is the goalkeeper's; the shot came from the other side
        add(at, clock, "SHOT", _other(side), outcome="saved")
        add(at, clock, "SAVE", side, player=m.player)
    elif m.kind == "card":
        add(at, clock, "CARD", side, player=m.player, outcome=m.outcome)
    elif m.kind == "var":  # the feed reports the review when it is decided
        duration = m.duration_ms or 0
        add(at + duration, clock.plus(duration), "VAR_REVIEW", side, outcome=m.outcome)
    elif m.kind == "penalty":
        add(at, clock, "PENALTY_AWARDED", side, player=m.player)
    elif m.kind == "substitution":
        add(at, clock, "SUBSTITUTION", side, player=m.player)
