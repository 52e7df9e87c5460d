"""Match scripts: a TOML file that says what happens in a synthetic match, and when.

A script names the teams, how the crowd is split between them, how long each period
lasts and the moments the crowd reacts to. Times are match times as people write them
(``schemas.clock.parse_clock``): ``"23:10"``, ``"45+1:30"``, ``"HT 0:10"``. Example::

    [match]
    id = "demo-ars-che"
    home = "Arsenal"
    away = "Chelsea"
    seed = 7
    home_share = 0.75          # share of the crowd supporting the home side
    feed_delay = "0:04"        # how late the match feed reports what happened

    [periods]                  # lengths, in order of play; omitted periods do not happen
    pre_match = "0:15"
    first_half = "2:00+0:20"   # 2:00 of play plus 0:20 of stoppage time
    half_time = "0:30"
    second_half = "2:00"
    post_match = "0:15"

    [[moments]]
    at = "1:30"
    kind = "goal"
    side = "home"
    player = "Saka"

Scripted halves may be shorter than the real 45 minutes. Stoppage time is then counted
from the scripted end of play: with ``first_half = "2:00+0:20"``, ``"45+0:10"`` is
``FIRST_HALF 2:10``. With full-length halves this is exactly what ``parse_clock`` says.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

from infra.errors import CrowdsoundError
from schemas.clock import MatchClock, Period, parse_clock
from schemas.timeline import MatchTimeline, PeriodStart

__all__ = ["Kind", "MatchScript", "Moment", "Side", "load_script", "parse_script"]

Kind = Literal[
    "goal", "own_goal", "chance", "save", "miss", "card", "var", "penalty", "substitution",
    "chant", "applause", "boos", "whistles",
]
Side = Literal["home", "away", "both"]
KINDS: tuple[str, ...] = get_args(Kind)
TUNES = ("name", "anthem", "clap")

# Moments that the match feed reports; the crowd-only ones (chant, applause, boos,
# whistles) produce sound but no event.
EVENT_KINDS = frozenset({"goal", "own_goal", "chance", "save", "miss", "card", "var", "penalty", "substitution"})
# Kinds that can only happen while the ball is in play (cards and substitutions can also
# happen in a break, e.g. a half-time substitution).
PLAY_KINDS = frozenset({"goal", "own_goal", "chance", "save", "miss", "var", "penalty"})

_COMMON_KEYS = {"at", "kind", "side", "intensity"}
_KIND_KEYS: dict[str, set[str]] = {
    "goal": {"player", "penalty", "build"},
    "own_goal": {"player", "build"},
    "chance": {"player", "outcome", "build"},
    "save": {"player", "build"},
    "miss": {"player", "build"},
    "card": {"player", "outcome"},
    "var": {"outcome", "decision", "duration"},
    "penalty": {"player"},
    "substitution": {"player"},
    "chant": {"tempo", "duration", "tune"},
    "applause": {"duration"},
    "boos": {"duration"},
    "whistles": {"duration"},
}
_OUTCOMES: dict[str, tuple[str, ...]] = {
    "chance": ("off_target", "post", "blocked", "saved"),
    "card": ("yellow", "second_yellow", "red"),
    "var": ("confirmed", "overturned"),
}
_DEFAULT_OUTCOME = {"chance": "off_target", "card": "yellow"}
_DECISIONS = ("goal", "penalty", "red_card", "other")
_DEFAULT_DURATION_MS = {"var": 45_000, "applause": 8_000, "boos": 10_000, "whistles": 8_000}
_MAX_DURATION_MS = 10 * 60_000

_PERIOD_KEYS = {p.value.lower(): p for p in Period}
# The length of play of each period in a real match; "45+x" means x after it.
_NOMINAL_MS = {
    Period.FIRST_HALF: 45 * 60_000,
    Period.SECOND_HALF: 45 * 60_000,
    Period.EXTRA_FIRST_HALF: 15 * 60_000,
    Period.EXTRA_SECOND_HALF: 15 * 60_000,
}
_MATCH_KEYS = {"id", "home", "away", "seed", "home_share", "feed_delay"}
_DURATION = re.compile(r"^(?:(?P<h>\d+):)?(?P<m>\d+):(?P<s>\d{2})(?:\.(?P<frac>\d{1,3}))?$")


@dataclass(frozen=True)
class Moment:
    """One scripted moment: something on the pitch, or something the crowd does.

    ``side`` is the side the moment is credited to, as the match feed would report it:
    the scoring side of a goal (for an own goal: the side that benefits), the shooting
    side of a chance or miss, the goalkeeper's side of a save, the carded side of a card,
    the side a VAR review would favour if the decision stands, the side awarded a
    penalty. For chants, applause, boos and whistles it is who makes the noise, and may
    be ``"both"``.
    """

    index: int  # 1-based position among the script's [[moments]]
    kind: Kind
    clock: MatchClock
    offset_ms: int  # ms from the start of the audio at which it happens on the pitch
    side: Side
    player: str | None = None
    outcome: str | None = None  # chance: off_target|post|blocked|saved; card: yellow|...; var: confirmed|...
    duration_ms: int | None = None  # chant, applause, boos, whistles, var (length of the review)
    tempo: float | None = None  # chant, beats per minute
    tune: str | None = None  # chant: name | anthem | clap
    intensity: float = 1.0  # scales the crowd's reaction
    build_ms: int | None = None  # anticipation before a chance or goal (None: the kind's default)
    penalty: bool = False  # a goal from the penalty spot
    decision: str | None = None  # var: what is reviewed (goal, penalty, red_card, other)

    @property
    def end_ms(self) -> int:
        """Audio offset at which the moment's scripted duration ends (its start if none)."""
        return self.offset_ms + (self.duration_ms or 0)


@dataclass(frozen=True)
class MatchScript:
    """A loaded, validated match script. All times in milliseconds."""

    match_id: str
    home: str
    away: str
    seed: int
    home_share: float  # share of the crowd supporting the home side, 0..1
    feed_delay_ms: int
    periods: tuple[tuple[Period, int], ...]  # (period, length_ms) in order of play, breaks included
    moments: tuple[Moment, ...]  # sorted by offset_ms
    name: str = field(default="script", compare=False)  # file name, for messages

    @property
    def duration_ms(self) -> int:
        """Length of the whole script (every period, breaks included), ms."""
        return sum(length for _, length in self.periods)

    def period_spans(self) -> list[tuple[Period, int, int]]:
        """``(period, start_ms, length_ms)`` for every scripted period, start from the audio start."""
        spans, start = [], 0
        for period, length in self.periods:
            spans.append((period, start, length))
            start += length
        return spans

    def period_start_ms(self, period: Period) -> int | None:
        """Audio offset at which ``period`` begins, or None if it is not scripted."""
        return next((start for p, start, _ in self.period_spans() if p is period), None)

    def team(self, side: str) -> str | None:
        """The team name of ``side`` ("home"/"away", any case); None for anything else."""
        return {"home": self.home, "away": self.away}.get(side.lower())

    def timeline(self, origin_ms: int = 0) -> MatchTimeline:
        """The match timeline on an axis of ms from the start of the audio plus ``origin_ms``
        (PRE_MATCH, or the first scripted period, begins at ``origin_ms``)."""
        return MatchTimeline(
            origin_ms=origin_ms,
            starts=[PeriodStart(origin_ms + start, period) for period, start, _ in self.period_spans()],
        )


def load_script(path: str | Path) -> MatchScript:
    """Read and validate a TOML match script.

    Raises
    ------
    CrowdsoundError
        One line naming the file and the problem, for a missing file, bad TOML, or any
        missing, unknown or out-of-range field.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
        raise CrowdsoundError(f"{path}: cannot read match script: {reason}") from None
    return parse_script(text, name=path.name)


def parse_script(text: str, *, name: str = "script") -> MatchScript:
    """Validate the TOML text of a match script; ``name`` prefixes every error message."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise CrowdsoundError(f"{name}: not valid TOML: {_one_line(str(exc))}") from None
    try:
        return _build(data, name)
    except CrowdsoundError as exc:
        raise CrowdsoundError(f"{name}: {_one_line(str(exc))}") from None


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _build(data: dict[str, Any], name: str) -> MatchScript:
    _check_keys(data, {"match", "periods", "moments"}, "top level")
    match = data.get("match")
    if not isinstance(match, dict):
        raise CrowdsoundError("missing [match] table (id, home, away, seed, home_share)")
    _check_keys(match, _MATCH_KEYS, "[match]")
    match_id = _text(match, "id", "[match]", required=True)
    home = _text(match, "home", "[match]", required=True)
    away = _text(match, "away", "[match]", required=True)
    seed = match.get("seed", 0)
    if not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed < 2**63:
        raise CrowdsoundError(f"[match] seed must be a whole number >= 0, got {seed!r}")
    home_share = _number(match, "home_share", "[match]", default=0.7, low=0.0, high=1.0)
    feed_delay_ms = _duration(match.get("feed_delay", 3.0), "[match] feed_delay", allow_zero=True)

    periods, regulation = _periods(data.get("periods"))
    spans = {}
    start = 0
    for period, length in periods:
        spans[period] = (start, length)
        start += length

    raw_moments = data.get("moments", [])
    if not isinstance(raw_moments, list) or not all(isinstance(m, dict) for m in raw_moments):
        raise CrowdsoundError("moments must be an array of tables: [[moments]]")
    moments = [_moment(raw, index, spans, regulation) for index, raw in enumerate(raw_moments, start=1)]
    moments.sort(key=lambda m: (m.offset_ms, m.index))
    return MatchScript(
        match_id=match_id, home=home, away=away, seed=seed, home_share=home_share, feed_delay_ms=feed_delay_ms,
        periods=tuple(periods), moments=tuple(moments), name=name,
    )


def _periods(raw: object) -> tuple[list[tuple[Period, int]], dict[Period, int]]:
    if not isinstance(raw, dict) or not raw:
        raise CrowdsoundError(
            "missing [periods] table: lengths in order of play, e.g. first_half = \"45:00\", half_time = \"15:00\""
        )
    periods: list[tuple[Period, int]] = []
    regulation: dict[Period, int] = {}
    for key, value in raw.items():
        period = _PERIOD_KEYS.get(key)
        if period is None:
            raise CrowdsoundError(f"[periods]: unknown period {key!r}; use {', '.join(_PERIOD_KEYS)}")
        where = f"[periods] {key}"
        if isinstance(value, str) and "+" in value:
            if period not in _NOMINAL_MS:
                raise CrowdsoundError(f"{where}: only halves of play have stoppage time, got {value!r}")
            play_text, _, extra_text = value.partition("+")
            play = _duration(play_text.strip(), where)
            extra = _duration(extra_text.strip(), where, allow_zero=True)
            regulation[period] = min(play, _NOMINAL_MS[period])
            periods.append((period, play + extra))
        else:
            length = _duration(value, where)
            if period in _NOMINAL_MS:
                regulation[period] = min(length, _NOMINAL_MS[period])
            periods.append((period, length))
    order = [p.order for p, _ in periods]
    if order != sorted(order):
        raise CrowdsoundError(
            "[periods] must be listed in order of play: "
            + ", ".join(p.value.lower() for p in sorted(dict(periods), key=lambda p: p.order))
        )
    if not any(p.is_play for p, _ in periods):
        raise CrowdsoundError("[periods] has no period of play (first_half, second_half, ...)")
    return periods, regulation


def _moment(raw: dict[str, Any], index: int, spans: dict[Period, tuple[int, int]], regulation: dict[Period, int]) -> Moment:
    where = f"moment {index}"
    kind = raw.get("kind")
    if kind is None:
        raise CrowdsoundError(f"{where}: missing kind; use one of {', '.join(KINDS)}")
    if kind not in KINDS:
        raise CrowdsoundError(f"{where}: unknown kind {kind!r}; use one of {', '.join(KINDS)}")
    where = f"moment {index} ({kind})"
    _check_keys(raw, _COMMON_KEYS | _KIND_KEYS[kind], where)

    at = raw.get("at")
    if not isinstance(at, str):
        problem = "missing at" if at is None else f"at must be a match time in quotes, got {at!r}"
        raise CrowdsoundError(f"{where}: {problem} (e.g. at = \"23:10\", \"45+1:30\", \"HT 0:10\")")
    clock = _clock(at, spans, regulation, where)
    period_start, period_length = spans[clock.period]
    if kind in PLAY_KINDS and not clock.period.is_play:
        raise CrowdsoundError(f"{where}: at {at!r} is {clock.period.value}; a {kind} happens while the ball is in play")
    if kind in {"card", "substitution"} and clock.period in {Period.PRE_MATCH, Period.POST_MATCH}:
        raise CrowdsoundError(f"{where}: at {at!r} is {clock.period.value}; a {kind} happens during the match")

    event_kind = kind in EVENT_KINDS
    side = raw.get("side", None if event_kind else ("home" if kind == "chant" else "both"))
    allowed_sides = ("home", "away") if event_kind else ("home", "away", "both")
    if side is None:
        raise CrowdsoundError(f"{where}: missing side; use {' or '.join(allowed_sides)}")
    if side not in allowed_sides:
        raise CrowdsoundError(f"{where}: unknown side {side!r}; use {', '.join(allowed_sides)}")

    player = _text(raw, "player", where) if "player" in raw else None
    intensity = _number(raw, "intensity", where, default=1.0, low=0.05, high=3.0)
    outcome = None
    if kind in _OUTCOMES:
        outcome = raw.get("outcome", _DEFAULT_OUTCOME.get(kind))
        if outcome is None:
            raise CrowdsoundError(f"{where}: missing outcome; use one of {', '.join(_OUTCOMES[kind])}")
        if outcome not in _OUTCOMES[kind]:
            raise CrowdsoundError(f"{where}: unknown outcome {outcome!r}; use one of {', '.join(_OUTCOMES[kind])}")

    duration_ms = None
    if "duration" in _KIND_KEYS[kind]:
        if "duration" in raw:
            duration_ms = _duration(raw["duration"], f"{where} duration")
        elif kind in _DEFAULT_DURATION_MS:
            duration_ms = _DEFAULT_DURATION_MS[kind]
        else:
            raise CrowdsoundError(f"{where}: missing duration = \"m:ss\"")
        if duration_ms > _MAX_DURATION_MS:
            raise CrowdsoundError(f"{where}: duration must be at most 10:00, got {raw.get('duration')!r}")

    tempo = tune = None
    if kind == "chant":
        if "tempo" not in raw:
            raise CrowdsoundError(f"{where}: missing tempo (beats per minute, 40 to 240)")
        tempo = _number(raw, "tempo", where, default=None, low=40.0, high=240.0, unit=" bpm")
        tune = raw.get("tune", "name")
        if tune not in TUNES:
            raise CrowdsoundError(f"{where}: unknown tune {tune!r}; use one of {', '.join(TUNES)}")

    build_ms = None
    if "build" in raw:
        build_ms = _duration(raw["build"], f"{where} build", allow_zero=True)
        if build_ms > 30_000:
            raise CrowdsoundError(f"{where}: build must be at most 0:30, got {raw['build']!r}")
    penalty = raw.get("penalty", False)
    if not isinstance(penalty, bool):
        raise CrowdsoundError(f"{where}: penalty must be true or false, got {penalty!r}")
    decision = None
    if kind == "var":
        decision = raw.get("decision", "other")
        if decision not in _DECISIONS:
            raise CrowdsoundError(f"{where}: unknown decision {decision!r}; use one of {', '.join(_DECISIONS)}")
        if clock.ms + (duration_ms or 0) >= period_length:
            raise CrowdsoundError(
                f"{where}: the review at {at!r} lasting {_fmt(duration_ms or 0)} ends after the scripted "
                f"{clock.period.value.lower()} ({_fmt(period_length)} long)"
            )
    return Moment(
        index=index, kind=kind, clock=clock, offset_ms=period_start + clock.ms, side=side, player=player,
        outcome=outcome, duration_ms=duration_ms, tempo=tempo, tune=tune, intensity=intensity, build_ms=build_ms,
        penalty=penalty, decision=decision,
    )


def _clock(at: str, spans: dict[Period, tuple[int, int]], regulation: dict[Period, int], where: str) -> MatchClock:
    try:
        clock = parse_clock(at)
    except CrowdsoundError as exc:
        raise CrowdsoundError(f"{where}: {exc}") from None
    if clock.period not in spans:
        raise CrowdsoundError(f"{where}: at {at!r} is in {clock.period.value}, which this script does not have")
    if "+" in at and clock.period in _NOMINAL_MS:  # stoppage time counts from the scripted end of play
        clock = MatchClock(clock.period, regulation[clock.period] + clock.ms - _NOMINAL_MS[clock.period])
    length = spans[clock.period][1]
    if clock.ms >= length:
        raise CrowdsoundError(
            f"{where}: at {at!r} ({clock.period.value} {_fmt(clock.ms)}) is outside the scripted "
            f"{clock.period.value.lower()}, which lasts {_fmt(length)}"
        )
    return clock


def _fmt(ms: int) -> str:
    seconds = ms // 1000
    return f"{seconds // 60}:{seconds % 60:02d}"


def _check_keys(table: dict[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise CrowdsoundError(f"{where}: unknown key {unknown[0]!r}; use {', '.join(sorted(allowed))}")


def _text(table: dict[str, Any], key: str, where: str, *, required: bool = False) -> str:
    value = table.get(key)
    if value is None and required:
        raise CrowdsoundError(f"{where}: missing {key} = \"...\"")
    if not isinstance(value, str) or not value.strip():
        raise CrowdsoundError(f"{where}: {key} must be a non-empty string, got {value!r}")
    return value.strip()


def _number(table: dict[str, Any], key: str, where: str, *, default: float | None, low: float, high: float,
            unit: str = "") -> float:
    value = table.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise CrowdsoundError(f"{where}: {key} must be a number from {low:g} to {high:g}{unit}, got {value!r}")
    return float(value)


def _duration(value: object, where: str, *, allow_zero: bool = False) -> int:
    """A length as "m:ss", "h:mm:ss" (fractions of a second allowed) or seconds, in ms."""
    ms: int | None = None
    if isinstance(value, bool):
        ms = None
    elif isinstance(value, (int, float)):
        ms = round(value * 1000) if value >= 0 else None
    elif isinstance(value, str):
        match = _DURATION.match(value.strip())
        if match and int(match.group("s")) < 60 and (match.group("h") is None or int(match.group("m")) < 60):
            frac = match.group("frac")
            ms = ((int(match.group("h") or 0) * 60 + int(match.group("m"))) * 60 + int(match.group("s"))) * 1000
            ms += int(frac.ljust(3, "0")) if frac else 0
    if ms is None or (ms == 0 and not allow_zero):
        raise CrowdsoundError(f"{where}: expected a length like \"2:00\" or seconds > 0, got {value!r}")
    return ms
