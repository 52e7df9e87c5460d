"""Where the periods of a match begin, and so which match clock any instant has.

A :class:`MatchTimeline` maps instants on one monotonic axis — Unix wall-clock ms for a
live encoder, or ms from the start of a recording or a synthetic match — to
:class:`~schemas.clock.MatchClock` values, and back. Producers build it from ``--kickoff``,
from the PERIOD_START/PERIOD_END events of match.events.v1, or from a match script.

Before the first known period start the clock is ``PRE_MATCH``, counted from the
timeline's ``origin_ms`` (so it never goes negative). When a playing period ends, the
break that follows it begins (first half -> half time, and so on), so audio captured in a
break gets a break clock and the music goes on.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass, field

from infra.errors import CrowdsoundError
from schemas.clock import MatchClock, Period

__all__ = ["MatchTimeline", "PeriodStart", "break_after"]

_BREAK_AFTER = {
    Period.PRE_MATCH: Period.PRE_MATCH,
    Period.FIRST_HALF: Period.HALF_TIME,
    Period.SECOND_HALF: Period.POST_MATCH,
    Period.EXTRA_FIRST_HALF: Period.EXTRA_HALF_TIME,
    Period.EXTRA_SECOND_HALF: Period.POST_MATCH,
    Period.PENALTIES: Period.POST_MATCH,
}


def break_after(period: Period, *, more_to_come: bool = False) -> Period:
    """The break that follows ``period``.

    After the second half (or extra time) the match is over unless ``more_to_come`` says
    extra time (or penalties) follow.
    """
    if more_to_come and period is Period.SECOND_HALF:
        return Period.EXTRA_TIME_BREAK
    if more_to_come and period is Period.EXTRA_SECOND_HALF:
        return Period.PENALTIES_BREAK
    return _BREAK_AFTER.get(period, period)


@dataclass(frozen=True, order=True)
class PeriodStart:
    """Period ``period`` begins at ``at_ms`` on the timeline's axis."""

    at_ms: int
    period: Period = field(compare=False)


class MatchTimeline:
    """Period starts on one axis; answers "which match clock is instant t?" and back."""

    def __init__(self, *, origin_ms: int, starts: list[PeriodStart] | None = None) -> None:
        self.origin_ms = origin_ms
        self._starts: list[PeriodStart] = []
        for start in starts or []:
            self.begin(start.period, start.at_ms)

    @classmethod
    def from_kickoff(cls, kickoff_ms: int, *, pre_match_ms: int = 2 * 3_600_000) -> MatchTimeline:
        """A timeline that knows only the first-half kick-off (PRE_MATCH counts from
        ``pre_match_ms`` before it)."""
        return cls(origin_ms=kickoff_ms - pre_match_ms, starts=[PeriodStart(kickoff_ms, Period.FIRST_HALF)])

    @property
    def starts(self) -> tuple[PeriodStart, ...]:
        return tuple(self._starts)

    def begin(self, period: Period, at_ms: int) -> bool:
        """Record that ``period`` begins at ``at_ms``. Returns False if already known.

        Raises
        ------
        CrowdsoundError
            When the start contradicts the order of periods already known.
        """
        for known in self._starts:
            if known.period is period:
                return False
        new = PeriodStart(at_ms, period)
        index = bisect_right(self._starts, new)
        before = self._starts[index - 1] if index else None
        after = self._starts[index] if index < len(self._starts) else None
        if (before and before.period.order > period.order) or (after and after.period.order < period.order):
            raise CrowdsoundError(f"{period.value} cannot start at {at_ms}: out of order with the known periods")
        self._starts.insert(index, new)
        return True

    def end(self, period: Period, at_ms: int, *, more_to_come: bool = False) -> bool:
        """Record that ``period`` ends at ``at_ms``: the following break begins then."""
        following = break_after(period, more_to_come=more_to_come)
        if following is period:
            return False
        return self.begin(following, at_ms)

    def clock_at(self, at_ms: int) -> MatchClock:
        """The match clock at instant ``at_ms``."""
        index = bisect_right(self._starts, PeriodStart(at_ms, Period.PRE_MATCH))
        if index == 0:
            return MatchClock(Period.PRE_MATCH, max(0, at_ms - self.origin_ms))
        start = self._starts[index - 1]
        return MatchClock(start.period, at_ms - start.at_ms)

    def instant_of(self, clock: MatchClock) -> int | None:
        """The instant at which ``clock`` is (or will be) reached; None while its period's
        start is unknown."""
        if clock.period is Period.PRE_MATCH:
            return self.origin_ms + clock.ms
        for start in self._starts:
            if start.period is clock.period:
                return start.at_ms + clock.ms
        return None
