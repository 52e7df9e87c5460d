"""The match clock: parsing, display and ordering, including stoppage time and breaks."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from infra.errors import CrowdsoundError
from schemas.clock import MatchClock, Period, parse_clock


@pytest.mark.parametrize(
    ("text", "period", "ms"),
    [
        ("23:10", Period.FIRST_HALF, 1_390_000),
        ("0:00", Period.FIRST_HALF, 0),
        ("45+2:30", Period.FIRST_HALF, 47 * 60_000 + 30_000),
        ("45:30", Period.SECOND_HALF, 30_000),
        ("67:05", Period.SECOND_HALF, 22 * 60_000 + 5_000),
        ("90+4:00", Period.SECOND_HALF, 49 * 60_000),
        ("97:00", Period.EXTRA_FIRST_HALF, 7 * 60_000),
        ("120+1:00", Period.EXTRA_SECOND_HALF, 16 * 60_000),
        ("HT 3:00", Period.HALF_TIME, 180_000),
        ("2H 1:00", Period.SECOND_HALF, 60_000),
        ("PENALTIES 2:15", Period.PENALTIES, 135_000),
        ("23:10.250", Period.FIRST_HALF, 1_390_250),
        ("23", Period.FIRST_HALF, 23 * 60_000),
    ],
)
def test_parse_known_answers(text, period, ms):
    assert parse_clock(text) == MatchClock(period, ms)


@pytest.mark.parametrize(("clock", "text"), [
    (MatchClock(Period.FIRST_HALF, 1_390_000), "23:10"),
    (MatchClock(Period.FIRST_HALF, 47 * 60_000 + 30_000), "45+2:30"),
    (MatchClock(Period.SECOND_HALF, 30_000), "45:30"),
    (MatchClock(Period.HALF_TIME, 180_000), "HT 3:00"),
])
def test_display(clock, text):
    assert str(clock) == text


def test_stoppage_time_of_the_first_half_comes_before_the_second_half():
    assert parse_clock("45+2:00") < parse_clock("46:00")
    assert parse_clock("45+2:00") < MatchClock(Period.HALF_TIME, 0) < parse_clock("45:00")
    # "minute 46" exists in both halves and they are different points in time
    assert parse_clock("45+1:00") != parse_clock("46:00")


@pytest.mark.parametrize("text", ["", "abc", "23:5", "23:61", "-1:00", "50+2:00", "XX 1:00", "HT 45+1:00"])
def test_bad_text_raises_the_project_error_naming_it(text):
    with pytest.raises(CrowdsoundError):
        parse_clock(text)


def test_negative_milliseconds_are_refused():
    with pytest.raises(CrowdsoundError, match="-5"):
        MatchClock(Period.FIRST_HALF, -5)


clocks = st.builds(MatchClock, st.sampled_from(list(Period)), st.integers(min_value=0, max_value=3 * 3_600_000).map(lambda ms: ms - ms % 1000))


@given(clocks)
def test_display_then_parse_is_the_same_clock(clock):
    assert parse_clock(str(clock)) == clock


@given(clocks)
def test_avro_form_round_trips(clock):
    assert MatchClock.from_avro(clock.to_avro()) == clock


@given(clocks, clocks)
def test_order_is_period_then_milliseconds(a, b):
    assert (a < b) == ((a.period.order, a.ms) < (b.period.order, b.ms))
