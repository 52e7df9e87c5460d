"""The match clock: crowdsound's join key, defined once.

A point of match time is a :class:`Period` and the milliseconds since that period began.
Points order by (period, ms), so stoppage time is unambiguous: 45+2' of the first half is
``FIRST_HALF 47:00`` and comes before ``SECOND_HALF 0:30`` (shown as 45:30).

Breaks have clocks too: the crowd does not stop at half time, so audio captured then is
``HALF_TIME 3:00``, and the music keeps playing.

Text form, used by the CLI and printed by tools:

===================  =====================================================
text                 clock
===================  =====================================================
``23:10``            FIRST_HALF 23:10 (minutes < 45 are the first half)
``45+2:30``          FIRST_HALF 47:30 (stoppage time of the first half)
``67:05``            SECOND_HALF 22:05 (the second half starts at 45:00)
``90+4:00``          SECOND_HALF 49:00
``97:00``            EXTRA_FIRST_HALF 7:00 (extra time starts at 90:00)
``HT 3:00``          HALF_TIME 3:00 (any period by name or short name)
``2H 1:00``          SECOND_HALF 1:00, shown as 46:00
===================  =====================================================
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum
from functools import total_ordering
from typing import Any

from infra.errors import CrowdsoundError

__all__ = ["MatchClock", "Period", "parse_clock", "parse_clock_range"]


class Period(str, Enum):
    """Periods of a match in the order they happen (Avro enum ``crowdsound.Period``)."""

    PRE_MATCH = "PRE_MATCH"
    FIRST_HALF = "FIRST_HALF"
    HALF_TIME = "HALF_TIME"
    SECOND_HALF = "SECOND_HALF"
    EXTRA_TIME_BREAK = "EXTRA_TIME_BREAK"
    EXTRA_FIRST_HALF = "EXTRA_FIRST_HALF"
    EXTRA_HALF_TIME = "EXTRA_HALF_TIME"
    EXTRA_SECOND_HALF = "EXTRA_SECOND_HALF"
    PENALTIES_BREAK = "PENALTIES_BREAK"
    PENALTIES = "PENALTIES"
    POST_MATCH = "POST_MATCH"

    @property
    def order(self) -> int:
        return _ORDER[self]

    @property
    def is_play(self) -> bool:
        """True for periods in which the ball is in play (halves, extra time, penalties)."""
        return self in _PLAYING_OFFSET_MIN or self is Period.PENALTIES

    @property
    def short(self) -> str:
        return _SHORT[self]


_ORDER = {period: index for index, period in enumerate(Period)}
# Where each playing period starts on the conventional "minute" display.
_PLAYING_OFFSET_MIN = {
    Period.FIRST_HALF: 0,
    Period.SECOND_HALF: 45,
    Period.EXTRA_FIRST_HALF: 90,
    Period.EXTRA_SECOND_HALF: 105,
}
_NOMINAL_LENGTH_MIN = {
    Period.FIRST_HALF: 45,
    Period.SECOND_HALF: 45,
    Period.EXTRA_FIRST_HALF: 15,
    Period.EXTRA_SECOND_HALF: 15,
}
_SHORT = {
    Period.PRE_MATCH: "PRE",
    Period.FIRST_HALF: "1H",
    Period.HALF_TIME: "HT",
    Period.SECOND_HALF: "2H",
    Period.EXTRA_TIME_BREAK: "ETB",
    Period.EXTRA_FIRST_HALF: "ET1",
    Period.EXTRA_HALF_TIME: "EHT",
    Period.EXTRA_SECOND_HALF: "ET2",
    Period.PENALTIES_BREAK: "PB",
    Period.PENALTIES: "PEN",
    Period.POST_MATCH: "POST",
}
_BY_NAME = {**{p.value: p for p in Period}, **{s: p for p, s in _SHORT.items()}}


@total_ordering
@dataclass(frozen=True, slots=True)
class MatchClock:
    """A point of match time: ``period`` and ``ms`` (>= 0) since that period began."""

    period: Period
    ms: int

    def __post_init__(self) -> None:
        if not isinstance(self.period, Period):
            object.__setattr__(self, "period", _period(self.period))
        if not isinstance(self.ms, int) or self.ms < 0:
            raise CrowdsoundError(f"match clock milliseconds must be a whole number >= 0, got {self.ms!r}")

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, MatchClock):
            return NotImplemented
        return (self.period.order, self.ms) < (other.period.order, other.ms)

    @property
    def sort_key(self) -> tuple[int, int]:
        return (self.period.order, self.ms)

    def plus(self, ms: int) -> MatchClock:
        """The same period, ``ms`` later (or earlier, clamped at the period start)."""
        return MatchClock(self.period, max(0, self.ms + ms))

    def to_avro(self) -> dict[str, Any]:
        return {"period": self.period.value, "ms": self.ms}

    @classmethod
    def from_avro(cls, record: dict[str, Any]) -> MatchClock:
        return cls(_period(record["period"]), int(record["ms"]))

    def __str__(self) -> str:
        seconds_total, _ = divmod(self.ms, 1000)
        if self.period in _PLAYING_OFFSET_MIN:
            minutes, seconds = divmod(seconds_total, 60)
            nominal = _NOMINAL_LENGTH_MIN[self.period]
            offset = _PLAYING_OFFSET_MIN[self.period]
            if minutes >= nominal:  # stoppage time: 45+2:30
                return f"{offset + nominal}+{minutes - nominal}:{seconds:02d}"
            return f"{offset + minutes}:{seconds:02d}"
        minutes, seconds = divmod(seconds_total, 60)
        return f"{self.period.short} {minutes}:{seconds:02d}"


def _period(value: object) -> Period:
    key = str(getattr(value, "value", value)).strip().upper()
    try:
        return _BY_NAME[key]
    except KeyError:
        raise CrowdsoundError(
            f"unknown period {value!r}; use one of {', '.join(p.value for p in Period)} "
            f"or {', '.join(_SHORT.values())}"
        ) from None


_MINUTES = re.compile(r"^(?P<min>\d{1,3})(?:\+(?P<extra>\d{1,3}))?(?::(?P<sec>\d{2})(?:\.(?P<frac>\d{1,3}))?)?$")


def _ms(minutes: int, seconds: int, frac: str | None, text: str = "") -> int:
    if seconds >= 60:
        raise CrowdsoundError(f"bad match time {text!r}: seconds must be below 60")
    return (minutes * 60 + seconds) * 1000 + (int(frac.ljust(3, "0")) if frac else 0)


def parse_clock(text: str) -> MatchClock:
    """Parse match time as people write it (see the module's table).

    Raises
    ------
    CrowdsoundError
        With the text in the message, when it is not a match time.
    """
    raw = text.strip()
    head, _, rest = raw.partition(" ")
    if rest:  # "HT 3:00", "2H 1:00", "SECOND_HALF 0:30"
        period = _period(head)
        match = _MINUTES.match(rest.strip())
        if not match or match.group("extra"):
            raise CrowdsoundError(f"bad match time {text!r}: expected e.g. 'HT 3:00'")
        return MatchClock(period, _ms(int(match.group("min")), int(match.group("sec") or 0), match.group("frac"), text))
    match = _MINUTES.match(raw)
    if not match:
        raise CrowdsoundError(f"bad match time {text!r}: expected mm:ss, 45+2:30 or e.g. 'HT 3:00'")
    minutes, seconds = int(match.group("min")), int(match.group("sec") or 0)
    frac = match.group("frac")
    if seconds >= 60:
        raise CrowdsoundError(f"bad match time {text!r}: seconds must be below 60")
    if match.group("extra") is not None:  # 45+2:30 — stoppage time of the period ending at 45
        end = minutes
        period = next((p for p, o in _PLAYING_OFFSET_MIN.items() if o + _NOMINAL_LENGTH_MIN[p] == end), None)
        if period is None:
            raise CrowdsoundError(f"bad match time {text!r}: stoppage time follows 45, 90, 105 or 120")
        return MatchClock(period, _ms(_NOMINAL_LENGTH_MIN[period] + int(match.group("extra")), seconds, frac))
    for period in reversed(list(_PLAYING_OFFSET_MIN)):
        offset = _PLAYING_OFFSET_MIN[period]
        if minutes >= offset:
            return MatchClock(period, _ms(minutes - offset, seconds, frac))
    raise AssertionError("unreachable: minutes >= 0")


def parse_clock_range(text: str, *, longest_ms: int = 10 * 60_000) -> tuple[MatchClock, MatchClock]:
    """A range of match time as people write it (``23:00-25:30``, ``'HT 1:00-HT 2:00'``).

    Raises
    ------
    CrowdsoundError
        Naming what is wrong: no dash, two periods, empty or inverted, longer than ``longest_ms``.
    """
    first, dash, second = text.partition("-")
    if not dash:
        raise CrowdsoundError(f"expected a range like 23:00-25:30, got {text!r}")
    start, end = parse_clock(first), parse_clock(second)
    if start.period is not end.period:
        raise CrowdsoundError(f"range {text!r} spans two periods ({start.period.value}, {end.period.value}); "
                              "give one range per period")
    if end.ms <= start.ms:
        raise CrowdsoundError(f"range {text!r} is empty or inverted: its end must come after its start")
    if end.ms - start.ms > longest_ms:
        raise CrowdsoundError(f"range {text!r} is longer than {longest_ms // 60_000} minutes; a highlight is shorter")
    return start, end
