"""Match-data providers: a provider's event files, read with kloppy, as crowdsound MatchEvents.

Pure code — no Kafka here. :func:`load_provider_events` reads one match from local files
with `kloppy <https://kloppy.pysport.org>`_ and returns MatchEvent-shaped dicts (every field
of ``schemas/MatchEvent.avsc`` except ``wall_time_ms``, which the feed adds), sorted by
match clock. The match feed puts them on ``match.events.v1``.

Clock: kloppy gives every event a timestamp relative to the start of its period, for each
provider here (StatsBomb: its own per-period clock; Opta, Stats Perform, Sportec: event
time minus the period's kick-off time; Wyscout v2: ``eventSec``; Wyscout v3, DataFactory,
Impect: match minute minus the period's nominal start; Metrica: event time minus the
metadata's period start). kloppy period ids 1-5 become FIRST_HALF, SECOND_HALF,
EXTRA_FIRST_HALF, EXTRA_SECOND_HALF and PENALTIES; a timestamp before its period's start
is clamped to 0. ``side`` is kloppy's home/away (``Ground``): for Wyscout v2 that is the
order of ``teams`` in the file, which need not be the real home side.

kloppy is imported inside the functions that need it, so importing this module (and
starting the CLI) stays fast, and a missing kloppy is a one-line error, not a crash.

What crowdsound takes from a provider
=====================================

===================  =====================================================================
MatchEvent type      from kloppy
===================  =====================================================================
``PERIOD_START``     every period of the metadata, at ``ms`` 0
``PERIOD_END``       every period, at its length from the metadata (at its last event when
                     there is no usable end); never before a mapped event of the period
``GOAL``             ``ShotEvent`` with result GOAL (outcome ``penalty`` for a penalty kick,
                     shoot-out kicks included, else null) or OWN_GOAL (outcome ``own_goal``,
                     credited to the side that benefits; ``player`` is the player who put
                     it in his own net); Wyscout v2 own goals come from tag 102
``SHOT``             any other ``ShotEvent``: outcome ``saved``, ``off_target``, ``post``,
                     ``blocked`` (null when the provider gives no result)
``SAVE``             ``GoalkeeperEvent`` with a SAVE qualifier (and StatsBomb's "Penalty
                     Saved"/"Save", which kloppy leaves untyped); side = the keeper's team
``CARD``             ``CardEvent`` (or a card carried by a foul only — Wyscout v3 — and
                     Metrica's untyped cards): ``yellow``, ``second_yellow``, ``red``
``SUBSTITUTION``     ``SubstitutionEvent``; ``player`` is the player coming on
``PENALTY_AWARDED``  the foul a penalty was given for; side = the team awarded the penalty
===================  =====================================================================

Penalties awarded are never invented: one is emitted at the time of a foul that the
provider marks as a penalty foul (StatsBomb ``foul_committed.penalty``, Opta/Stats Perform
qualifier 9 on a foul, DataFactory's penalty-foul types), or — for any provider — at the
time of the foul that immediately precedes a penalty kick with the ball dead in between
(only cards, substitutions and untyped events between them). A penalty kick with no such
foul gets no PENALTY_AWARDED. Shoot-out kicks never do.

Passes, carries, duels and the like are ignored. No provider read by kloppy exposes VAR
reviews, so none are emitted.
"""

from __future__ import annotations

import logging
import re
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from infra.errors import CrowdsoundError
from schemas.clock import MatchClock, Period

__all__ = ["PROVIDERS", "load_provider_events"]

log = logging.getLogger("crowdsound.providers")

# kloppy's period ids (the same for every provider) on crowdsound's clock.
_PERIOD_BY_ID: dict[int, Period] = {
    1: Period.FIRST_HALF,
    2: Period.SECOND_HALF,
    3: Period.EXTRA_FIRST_HALF,
    4: Period.EXTRA_SECOND_HALF,
    5: Period.PENALTIES,
}
_SHOOTOUT_PERIOD_ID = 5
_HEAD_BYTES = 4096  # enough of a file to tell which of a provider's files it is


# --------------------------------------------------------------------------------------
# Providers and their files
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _FileRole:
    """One file a provider's loader takes, in kloppy's order."""

    name: str  # how the docs and error messages call it, e.g. "lineup.json"
    # Recognises this file from its first bytes, so files given in another order can be
    # put right (e.g. Opta F24 before F7). None: cannot be told apart safely.
    sniff: Callable[[str], bool] | None = None


@dataclass(frozen=True)
class _ProviderSpec:
    roles: tuple[_FileRole, ...]
    optional: int  # how many trailing roles may be left out
    load: Callable[[list[str]], Any]  # files in kloppy's order -> kloppy EventDataset
    # False when kloppy's period end times for this provider cannot be trusted; the
    # period then ends at its last event (for Impect that is the final whistle).
    period_end_from_metadata: bool = True


def _load_statsbomb(files: list[str]) -> Any:
    from kloppy import statsbomb

    return statsbomb.load(event_data=files[0], lineup_data=files[1])


def _load_opta(files: list[str]) -> Any:
    from kloppy import opta

    return opta.load(f7_data=files[0], f24_data=files[1])


def _load_statsperform(files: list[str]) -> Any:
    from kloppy import statsperform

    return statsperform.load_event(ma1_data=files[0], ma3_data=files[1])


def _load_wyscout(files: list[str]) -> Any:
    from kloppy import wyscout

    return wyscout.load(event_data=files[0])  # kloppy tells v2 from v3 by the content


def _load_sportec(files: list[str]) -> Any:
    from kloppy import sportec

    return sportec.load_event(event_data=files[0], meta_data=files[1])


def _load_metrica(files: list[str]) -> Any:
    from kloppy import metrica

    return metrica.load_event(event_data=files[0], meta_data=files[1])


def _load_datafactory(files: list[str]) -> Any:
    from kloppy import datafactory

    return datafactory.load(event_data=files[0])


def _load_impect(files: list[str]) -> Any:
    from kloppy import impect

    extra = files[2:] + [None] * (4 - len(files))
    return impect.load(event_data=files[0], lineup_data=files[1], squads_data=extra[0], players_data=extra[1])


_SPECS: dict[str, _ProviderSpec] = {
    "statsbomb": _ProviderSpec(
        roles=(
            _FileRole("events.json", lambda head: '"possession"' in head and '"team_name"' not in head),
            _FileRole("lineup.json", lambda head: '"team_name"' in head and '"lineup"' in head),
        ),
        optional=0,
        load=_load_statsbomb,
    ),
    "opta": _ProviderSpec(
        roles=(
            _FileRole("f7.xml", lambda head: "<SoccerFeed" in head),
            _FileRole("f24.xml", lambda head: "<Games" in head),  # an F73 feed works too
        ),
        optional=0,
        load=_load_opta,
    ),
    "statsperform": _ProviderSpec(
        roles=(
            # Only the XML flavours can be told apart from the first bytes.
            _FileRole("ma1", lambda head: re.search(r"<match[\s>]", head) is not None),
            _FileRole("ma3", lambda head: "<matchEvents" in head),
        ),
        optional=0,
        load=_load_statsperform,
    ),
    "wyscout": _ProviderSpec(roles=(_FileRole("events.json"),), optional=0, load=_load_wyscout),
    "sportec": _ProviderSpec(
        roles=(
            _FileRole("events.xml", lambda head: "<Event " in head and "<MatchInformation" not in head),
            _FileRole("meta.xml", lambda head: "<MatchInformation" in head),
        ),
        optional=0,
        load=_load_sportec,
    ),
    "metrica": _ProviderSpec(
        roles=(
            _FileRole("events.json", lambda head: head.lstrip("\ufeff \t\r\n").startswith("{")),
            _FileRole("metadata.xml", lambda head: head.lstrip("\ufeff \t\r\n").startswith("<")),
        ),
        optional=0,
        load=_load_metrica,
    ),
    "datafactory": _ProviderSpec(roles=(_FileRole("events.json"),), optional=0, load=_load_datafactory),
    "impect": _ProviderSpec(
        roles=(_FileRole("events.json"), _FileRole("lineups.json"), _FileRole("squads.json"),
               _FileRole("players.json")),
        optional=2,
        load=_load_impect,
        # kloppy 3.19 adds the cumulative match time to a later period's start, so the
        # second half of its own Impect sample "lasts" 93 minutes; the final whistle
        # event has the right time.
        period_end_from_metadata=False,
    ),
}

PROVIDERS: tuple[str, ...] = tuple(_SPECS)
"""Provider names :func:`load_provider_events` accepts: every event-data provider kloppy
reads from local files (tracking-only providers have no match events to give)."""


# --------------------------------------------------------------------------------------
# The entry point
# --------------------------------------------------------------------------------------


def load_provider_events(provider: str, files: Sequence[str | Path], *, match_id: str) -> list[dict[str, Any]]:
    """Read one match's event files from a data provider and map them to MatchEvents.

    Parameters
    ----------
    provider
        One of :data:`PROVIDERS` (case-insensitive).
    files
        The provider's files, in kloppy's order:

        ================  ==========================================================
        provider          files
        ================  ==========================================================
        ``statsbomb``     ``events.json``, ``lineup.json``
        ``opta``          ``f7.xml`` (lineups), ``f24.xml`` (events; an F73 feed works)
        ``statsperform``  ``ma1`` (lineups), ``ma3`` (events) — both JSON or both XML
        ``wyscout``       ``events.json`` (v2 or v3, told apart by kloppy)
        ``sportec``       ``events.xml``, ``meta.xml`` (DFL/Sportec event + match info)
        ``metrica``       ``events.json``, ``metadata.xml`` (EPTS metadata)
        ``datafactory``   ``events.json``
        ``impect``        ``events.json``, ``lineups.json`` [, ``squads.json``
                          [, ``players.json``]]
        ================  ==========================================================

        Where the files can be recognised from their first bytes (StatsBomb, Opta, XML
        Stats Perform, Sportec, Metrica), they may come in either order.
    match_id
        crowdsound's id of the match, copied into every event.

    Returns
    -------
    list of dict
        MatchEvent records without ``wall_time_ms``, sorted by match clock (a period's
        ``PERIOD_START`` first and ``PERIOD_END`` last). ``event_id`` is
        ``"{provider}-{kloppy event id}"`` (derived events add a suffix, e.g.
        ``"-penalty-awarded"``; periods are ``"{provider}-period-{n}-start|end"``), so
        loading the same files again gives the same ids.

    Raises
    ------
    CrowdsoundError
        One line naming the problem: unknown provider, wrong number of files, a file that
        is missing, empty or unreadable, files the provider's loader cannot parse, or
        kloppy not installed.
    """
    name = provider.strip().lower() if isinstance(provider, str) else ""
    spec = _SPECS.get(name)
    if spec is None:
        raise CrowdsoundError(f"unknown provider {provider!r}; use one of: {', '.join(PROVIDERS)}")
    if not isinstance(match_id, str) or not match_id.strip():
        raise CrowdsoundError(f"match_id must be a non-empty string, got {match_id!r}")
    # A lone path is a Sequence of characters; take it as the one file it means.
    paths = [Path(files)] if isinstance(files, (str, Path)) else [Path(f) for f in files]
    _check_count(name, spec, paths)
    heads = [_read_head(name, path) for path in paths]
    paths = _in_kloppy_order(spec, paths, heads)
    dataset = _parse(name, spec, paths)
    return _match_events(dataset, provider=name, match_id=match_id,
                         period_end_from_metadata=spec.period_end_from_metadata)


def _check_count(provider: str, spec: _ProviderSpec, paths: list[Path]) -> None:
    most = len(spec.roles)
    least = most - spec.optional
    if least <= len(paths) <= most:
        return
    wanted = " ".join(role.name for role in spec.roles[:least])
    if spec.optional:
        wanted += " [" + " ".join(role.name for role in spec.roles[least:]) + "]"
        count = f"{least} to {most} files"
    else:
        count = f"{most} file" + ("s" if most > 1 else "")
    raise CrowdsoundError(f"{provider} needs {count} ({wanted}), got {len(paths)}")


def _read_head(provider: str, path: Path) -> str:
    """The first bytes of ``path`` as text; checks on the way that it is a readable file."""
    if not path.exists():
        raise CrowdsoundError(f"{provider} file not found: {path}")
    if not path.is_file():
        raise CrowdsoundError(f"{provider} file is not a regular file: {path}")
    try:
        with path.open("rb") as handle:
            head = handle.read(_HEAD_BYTES)
    except OSError as exc:
        raise CrowdsoundError(f"cannot read {provider} file {path}: {exc.strerror or exc}") from None
    if not head.strip():
        raise CrowdsoundError(f"{provider} file is empty: {path}")
    return head.decode("utf-8", errors="replace")


def _in_kloppy_order(spec: _ProviderSpec, paths: list[Path], heads: list[str]) -> list[Path]:
    """Put the files in kloppy's order when every one of them is recognised, else keep them.

    Only a clean match reorders: each file recognised as exactly one role and the roles
    all different. Anything ambiguous stays as given, and kloppy reports what it cannot
    parse.
    """
    roles = spec.roles[: len(paths)]
    if len(paths) < 2 or any(role.sniff is None for role in roles):
        return paths
    placed: dict[int, Path] = {}
    for path, head in zip(paths, heads):
        matches = [i for i, role in enumerate(roles) if role.sniff is not None and role.sniff(head)]
        if len(matches) != 1 or matches[0] in placed:
            return paths
        placed[matches[0]] = path
    return [placed[i] for i in range(len(roles))]


def _parse(provider: str, spec: _ProviderSpec, paths: list[Path]) -> Any:
    try:
        import kloppy  # noqa: F401  (only to tell "not installed" from a parse error)
    except ImportError:
        raise CrowdsoundError("reading provider files needs kloppy: pip install 'kloppy>=3.19'") from None
    described = ", ".join(f"{role.name}={path}" for role, path in zip(spec.roles, paths))
    with warnings.catch_warnings(record=True) as caught:
        # kloppy warns about data quality (e.g. a substitute already on the pitch); that
        # does not change what crowdsound maps, so it is logged, not printed.
        warnings.simplefilter("always")
        try:
            dataset = spec.load([str(path) for path in paths])
        except Exception as exc:  # kloppy, json, lxml, ...: any of them means "cannot parse"
            raise CrowdsoundError(f"cannot parse {provider} files ({described}): {_one_line(exc)}") from None
    if caught:
        log.info("kloppy reported %d data warning(s) reading %s, first: %s",
                 len(caught), provider, _one_line(caught[0].message))
    if not getattr(dataset, "records", None) and not dataset.metadata.periods:
        raise CrowdsoundError(f"{provider} files ({described}) hold no match events")
    return dataset


def _one_line(exc: BaseException | Warning | str, limit: int = 200) -> str:
    text = " ".join(str(exc).split()) or "no details"
    if isinstance(exc, BaseException):
        text = f"{type(exc).__name__}: {text}"
    return text if len(text) <= limit else text[: limit - 3] + "..."


# --------------------------------------------------------------------------------------
# kloppy events -> MatchEvents
# --------------------------------------------------------------------------------------

# Tie-break inside one clock value: a period starts before anything in it and ends after.
_RANK_START, _RANK_EVENT, _RANK_END = 0, 1, 2


def _ms(value: timedelta) -> int:
    """Whole milliseconds, never negative (the match clock starts at 0)."""
    # A few providers put an event a moment before its period's kick-off timestamp;
    # the clock cannot go below the period start.
    return max(0, value // timedelta(milliseconds=1))


def _person(player: Any) -> str | None:
    if player is None:
        return None
    name = getattr(player, "full_name", None) or getattr(player, "name", None)
    if not name:
        return None
    # Providers pad names ("Mohamed  Salah Ghaly"); a consumer should not see that.
    return " ".join(str(name).split()) or None


def _wyscout_v2_own_goal(raw: Any) -> bool:
    # Wyscout v2 marks an own goal with tag 102 on the own-goal scorer's event, which
    # kloppy (3.19) does not turn into a shot, so crowdsound reads the tag itself.
    return isinstance(raw, dict) and "eventName" in raw and any(
        isinstance(tag, dict) and tag.get("id") == 102 for tag in raw.get("tags") or ()
    )


def _statsbomb_save_left_untyped(raw: Any) -> bool:
    # kloppy (3.19) gives StatsBomb goalkeeper types 29 "Penalty Saved" and 31 "Save" no
    # qualifier, so they arrive as untyped events; a saved penalty is too big to lose.
    if not isinstance(raw, dict):
        return False
    keeper_type = ((raw.get("goalkeeper") or {}).get("type") or {}).get("id")
    return keeper_type in (29, 31)


def _explicit_penalty_foul(provider: str, raw: Any) -> bool:
    """True when the provider itself marks this foul as one a penalty was given for."""
    if provider == "statsbomb":
        return isinstance(raw, dict) and bool((raw.get("foul_committed") or {}).get("penalty"))
    if provider in ("opta", "statsperform"):
        # Opta qualifier 9 ("penalty") on a type 4 foul: the foul led to a penalty.
        return getattr(raw, "type_id", None) == 4 and 9 in (getattr(raw, "qualifiers", None) or {})
    if provider == "datafactory":
        return isinstance(raw, dict) and raw.get("type") in (31, 32)  # foul / hand -> penalty
    return False


def _card_key(event: Any) -> tuple[Any, ...]:
    """What a card and the foul it was shown for have in common."""
    player = getattr(event.player, "player_id", None) if event.player is not None else None
    team = getattr(event.team, "team_id", None) if event.team is not None else None
    return (event.period.id, event.timestamp, team, player)


def _card_on_foul(provider: str, foul: Any, raw: Any, card_outcome: dict[Any, str], card_qualifier: type) -> str | None:
    """The card a foul carries, as a CARD outcome, or None."""
    value = foul.get_qualifier_value(card_qualifier)
    if value is not None:
        return card_outcome.get(value)
    if provider == "wyscout" and isinstance(raw, dict) and isinstance(raw.get("infraction"), dict):
        # Wyscout v3 shows a card on the foul ("infraction") itself; kloppy (3.19) drops it.
        secondary = (raw.get("type") or {}).get("secondary") or []
        infraction = raw["infraction"]
        if "second_yellow_card" in secondary:
            return "second_yellow"
        if infraction.get("redCard") or "red_card" in secondary:
            return "red"
        if infraction.get("yellowCard") or "yellow_card" in secondary:
            return "yellow"
    return None


def _metrica_card(raw: Any) -> str | None:
    # kloppy (3.19) leaves Metrica cards untyped; the colour is in the raw subtypes.
    subtypes = raw.get("subtypes") if isinstance(raw, dict) else None
    if isinstance(subtypes, dict):
        subtypes = [subtypes]
    names = " ".join(str(s.get("name", "")).upper() for s in subtypes or () if isinstance(s, dict))
    if "RED" in names:
        return "red"
    if "YELLOW" in names:
        return "second_yellow" if ("2" in names or "SECOND" in names) else "yellow"
    return None


def _match_events(dataset: Any, *, provider: str, match_id: str,
                  period_end_from_metadata: bool = True) -> list[dict[str, Any]]:
    from kloppy.domain import (
        CardEvent,
        CardQualifier,
        CardType,
        FormationChangeEvent,
        FoulCommittedEvent,
        GenericEvent,
        GoalkeeperActionType,
        GoalkeeperEvent,
        GoalkeeperQualifier,
        Ground,
        PlayerOffEvent,
        PlayerOnEvent,
        SetPieceQualifier,
        SetPieceType,
        ShotEvent,
        ShotResult,
        SubstitutionEvent,
    )

    teams = list(dataset.metadata.teams or [])
    card_outcome = {CardType.FIRST_YELLOW: "yellow", CardType.SECOND_YELLOW: "second_yellow", CardType.RED: "red"}
    shot_outcome = {ShotResult.SAVED: "saved", ShotResult.OFF_TARGET: "off_target", ShotResult.POST: "post",
                    ShotResult.BLOCKED: "blocked"}
    # Events that can sit between a foul and the penalty kick it led to while the ball is dead.
    dead_ball = (GenericEvent, CardEvent, SubstitutionEvent, PlayerOnEvent, PlayerOffEvent, FormationChangeEvent)

    def side(team: Any) -> str:
        ground = getattr(team, "ground", None)
        return "HOME" if ground == Ground.HOME else "AWAY" if ground == Ground.AWAY else "NONE"

    def opponent(team: Any) -> Any:
        if team is None or len(teams) != 2:
            return None
        others = [t for t in teams if t.team_id != team.team_id]
        return others[0] if len(others) == 1 else None

    def team_by_id(team_id: Any) -> Any:
        return next((t for t in teams if str(t.team_id) == str(team_id)), None)

    def period_of(period: Any) -> Period:
        try:
            return _PERIOD_BY_ID[period.id]
        except KeyError:
            raise CrowdsoundError(f"{provider} data has period id {period.id}, which the match clock has no "
                                  f"place for (1-5: halves, extra time, penalties)") from None

    rows: list[tuple[tuple[int, int, int, int], dict[str, Any]]] = []
    last_ms: dict[int, int] = {}  # per kloppy period id: the latest mapped event

    def emit(kind: str, event_id: str, period: Any, ms: int, team: Any, player: str | None,
             outcome: str | None, rank: int = _RANK_EVENT) -> None:
        clock = MatchClock(period_of(period), ms)
        if rank == _RANK_EVENT:
            last_ms[period.id] = max(ms, last_ms.get(period.id, 0))
        rows.append(((clock.period.order, clock.ms, rank, len(rows)), {
            "match_id": match_id,
            "event_id": event_id,
            "type": kind,
            "side": side(team),
            "team": getattr(team, "name", None) if team is not None else None,
            "player": player,
            "outcome": outcome,
            "clock": clock.to_avro(),
            "source": provider,
        }))

    # kloppy keeps the provider's order, which is not always time order (Opta feeds are
    # not); the "foul before the penalty" rule needs time order.
    events = sorted(dataset.events, key=lambda e: (e.period.id, e.timestamp))
    awarded_fouls: dict[str, Any] = {}  # foul event id -> foul event
    card_keys = {_card_key(event) for event in events if isinstance(event, CardEvent)}
    own_goal_raw_ids: set[Any] = set()

    for index, event in enumerate(events):
        eid = f"{provider}-{event.event_id}"
        ms = _ms(event.timestamp)
        raw = event.raw_event
        if isinstance(event, ShotEvent):
            penalty_kick = event.get_qualifier_value(SetPieceQualifier) == SetPieceType.PENALTY
            if event.result == ShotResult.OWN_GOAL or _wyscout_v2_own_goal(raw):
                if isinstance(raw, dict) and "id" in raw:
                    own_goal_raw_ids.add(raw["id"])
                emit("GOAL", eid, event.period, ms, _own_goal_beneficiary(provider, event, raw, opponent, team_by_id),
                     _person(event.player), "own_goal")
            elif event.result == ShotResult.GOAL:
                emit("GOAL", eid, event.period, ms, event.team, _person(event.player),
                     "penalty" if penalty_kick else None)
            else:
                outcome = shot_outcome.get(event.result)
                if provider in ("opta", "statsperform") and getattr(raw, "type_id", None) == 14:
                    outcome = "post"  # Opta type 14 "post"; kloppy files it as off target
                emit("SHOT", eid, event.period, ms, event.team, _person(event.player), outcome)
            if penalty_kick and event.period.id != _SHOOTOUT_PERIOD_ID:
                foul = _foul_before_penalty(events, index, event, dead_ball, FoulCommittedEvent)
                if foul is not None:
                    awarded_fouls.setdefault(str(foul.event_id), foul)
        elif isinstance(event, GoalkeeperEvent):
            if any(isinstance(q, GoalkeeperQualifier) and q.value == GoalkeeperActionType.SAVE
                   for q in event.qualifiers or ()):
                emit("SAVE", eid, event.period, ms, event.team, _person(event.player), None)
        elif isinstance(event, CardEvent):
            emit("CARD", eid, event.period, ms, event.team, _person(event.player),
                 card_outcome.get(event.card_type))
        elif isinstance(event, SubstitutionEvent):
            coming_on = _person(event.replacement_player) or _person(event.player)
            emit("SUBSTITUTION", eid, event.period, ms, event.team, coming_on, None)
        elif isinstance(event, FoulCommittedEvent):
            if _explicit_penalty_foul(provider, raw):
                awarded_fouls.setdefault(str(event.event_id), event)
            card = _card_on_foul(provider, event, raw, card_outcome, CardQualifier)
            # Most providers also give the card as its own CardEvent (mapped above); only
            # a card that exists on the foul alone becomes a CARD here.
            if card is not None and _card_key(event) not in card_keys:
                emit("CARD", f"{eid}-card", event.period, ms, event.team, _person(event.player), card)
        elif provider == "statsbomb" and isinstance(event, GenericEvent) and _statsbomb_save_left_untyped(raw):
            emit("SAVE", eid, event.period, ms, event.team, _person(event.player), None)
        elif provider == "metrica" and isinstance(event, GenericEvent) and str(event.event_name).upper() == "CARD":
            emit("CARD", eid, event.period, ms, event.team, _person(event.player), _metrica_card(raw))

        # A Wyscout v2 own goal tagged on a non-shot event (a clearance, a touch...).
        if (not isinstance(event, ShotEvent) and _wyscout_v2_own_goal(raw)
                and raw.get("id") not in own_goal_raw_ids):
            own_goal_raw_ids.add(raw.get("id"))
            emit("GOAL", f"{provider}-{raw.get('id', event.event_id)}-own-goal", event.period, ms,
                 opponent(event.team), _person(event.player), "own_goal")

    for foul_id, foul in awarded_fouls.items():
        emit("PENALTY_AWARDED", f"{provider}-{foul_id}-penalty-awarded", foul.period, _ms(foul.timestamp),
             opponent(foul.team), None, None)

    last_any_ms: dict[int, int] = {}  # per kloppy period id: the latest kloppy event
    for event in events:
        last_any_ms[event.period.id] = max(_ms(event.timestamp), last_any_ms.get(event.period.id, 0))
    for period in dataset.metadata.periods:
        emit("PERIOD_START", f"{provider}-period-{period.id}-start", period, 0, None, None, None, _RANK_START)
        length = _period_length(period) if period_end_from_metadata else None
        if length is None and period.id in last_any_ms:  # no (usable) end: the last event
            length = timedelta(milliseconds=last_any_ms[period.id])
        # Never before an event of the period, so consumers see every event inside it.
        end_ms = max(_ms(length) if length is not None else 0, last_ms.get(period.id, 0))
        if length is not None or period.id in last_ms:
            emit("PERIOD_END", f"{provider}-period-{period.id}-end", period, end_ms, None, None, None, _RANK_END)

    rows.sort(key=lambda row: row[0])
    return _unique_ids([record for _, record in rows])


def _own_goal_beneficiary(provider: str, event: Any, raw: Any, opponent: Callable[[Any], Any],
                          team_by_id: Callable[[Any], Any]) -> Any:
    """The team an own goal counts for.

    kloppy files an own goal under the team of the player who scored it (StatsBomb "Own
    Goal Against", Opta qualifier 28, Sportec ``Team``), so the goal counts for the
    opponent. Sportec also names that team outright; when it does, that wins.
    """
    if provider == "sportec" and isinstance(raw, dict) and raw.get("TeamOwnGoalCountsFor"):
        named = team_by_id(raw["TeamOwnGoalCountsFor"])
        if named is not None:
            return named
    return opponent(event.team)


def _foul_before_penalty(events: list[Any], index: int, kick: Any, dead_ball: tuple[type, ...],
                         foul_type: type) -> Any:
    """The foul a penalty kick was given for, if the data shows it honestly.

    Walks back from the kick through events of the same period that can happen while the
    ball is dead (cards, substitutions, untyped events such as "foul won"). The first
    other event must be a foul by the defending team; anything else (a pass, a shot, a
    foul by the kicker's own team) means the data does not show which foul it was.
    """
    for earlier in reversed(events[:index]):
        if earlier.period.id != kick.period.id:
            return None
        if isinstance(earlier, dead_ball):
            continue
        if isinstance(earlier, foul_type) and earlier.team is not None and kick.team is not None \
                and earlier.team.team_id != kick.team.team_id:
            return earlier
        return None
    return None


def _period_length(period: Any) -> timedelta | None:
    if period.start_timestamp is None or period.end_timestamp is None:
        return None
    return period.end_timestamp - period.start_timestamp


def _unique_ids(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Make event ids unique within the match, deterministically.

    kloppy ids are unique per event, but one provider event can become two crowdsound
    events (never in the mappings above today); a suffix keeps them apart, and because
    the input order is fixed the suffix is the same on every load.
    """
    seen: dict[str, int] = {}
    for record in records:
        event_id = record["event_id"]
        if event_id in seen:
            seen[event_id] += 1
            record["event_id"] = f"{event_id}-{seen[event_id]}"
        else:
            seen[event_id] = 1
    return records
