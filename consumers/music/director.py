"""The director: per match, decides each bar's tempo, key, chord, intensity and layers.

Like the music systems of games (FMOD, Wwise), the score is a set of layers brought in and
out by one intensity parameter, with changes quantized to the bar; unlike them, the
parameter comes from a crowd. The mapping follows music-emotion research (Juslin &
Sloboda; Gabrielsson & Lindström): arousal drives tempo, loudness and density; valence
drives mode and register. Smoothing is asymmetric — fast attack, slow release — and layers
use hysteresis, so one loud second does not thrash the arrangement while a goal still
lands within a bar.

Harmony moves in four-bar phrases of functional progressions (tonic, predominant,
dominant); anticipation holds the dominant; key changes wait for a phrase boundary and
move along the circle of fifths (a home goal lifts the key a fifth, a long dark spell
turns to the relative minor). Everything here is a pure function of the director's state
and its inputs: the same inputs give the same music, live or in replay.
"""

from __future__ import annotations

import zlib
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from consumers.music.mood import Mood
from consumers.music.theory import fifth_down, fifth_up, relative
from consumers.music.types import LAYERS, STYLES, BarPlan, Mode, StingerKind

__all__ = [
    "COOLDOWN_MS", "BarDecision", "Director", "DirectorState", "MusicPrefs", "StingerCue",
    "bar_seed", "stinger_for",
]

BEATS_PER_BAR = 4

# 4-bar phrases per character and mode; the seed picks one of each family's variants.
_PROGRESSIONS: dict[Mode, dict[str, tuple[tuple[str, ...], ...]]] = {
    "MAJOR": {
        "calm": (("I", "vi", "IV", "V"), ("I", "IV", "I", "V"), ("I", "iii", "IV", "V")),
        "bright": (("I", "V", "vi", "IV"), ("I", "IV", "V", "V7")),
        "triumph": (("I", "IV", "V", "I"), ("I", "V", "IV", "V7")),
        "tense": (("IV", "V", "V7", "V7"), ("ii", "V", "Vsus4", "V7")),
        "dark": (("vi", "IV", "I", "V"), ("I", "bVI", "bVII", "I")),
    },
    "MINOR": {
        "calm": (("i", "VI", "III", "VII"), ("i", "iv", "i", "V")),
        "bright": (("i", "VII", "VI", "VII"), ("VI", "VII", "i", "i")),
        "triumph": (("VI", "VII", "i", "i"), ("i", "VI", "VII", "i")),
        "tense": (("iv", "V", "V7", "V7"), ("VI", "V", "V7", "V7")),
        "dark": (("i", "VI", "iv", "V"), ("i", "iv", "V7", "i")),
    },
}
# Intensity above which each layer enters; it leaves 0.08 below (hysteresis).
_LAYER_ON: dict[str, float] = {"pad": 0.0, "bass": 0.12, "drums": 0.3, "strings": 0.45, "melody": 0.6, "brass": 0.75}
_LAYER_HYSTERESIS = 0.08
_ATTACK = 0.75   # share of the gap to the target closed per bar when intensity rises
_RELEASE = 0.2   # ... and when it falls
_TEMPO_SLEW = 3.0  # bpm per bar when following arousal (a lock to a chant jumps)
_MODE_BARS = 6     # bars of consistent valence before the mode turns
_KEY_BARS = 48     # bars in one key before the harmony drifts along the circle of fifths
_SURGE_BARS = 4    # bars held near full intensity after a home goal
_FORESIGHT_MS = 20_000  # replay: how far ahead a known climax shapes the music

COOLDOWN_MS: dict[str, int] = {
    "goal": 5_000, "goal_against": 5_000, "near_miss": 15_000, "card": 10_000, "var": 20_000, "full_time": 0,
}
_FULL_TIME_PERIODS = frozenset({"SECOND_HALF", "EXTRA_SECOND_HALF", "PENALTIES"})


@dataclass(frozen=True)
class MusicPrefs:
    """Preferences in force for a match (music.preferences.v1, match over global over defaults)."""

    style: str = "orchestral"
    intensity_min: float = 0.0
    intensity_max: float = 1.0
    tempo_min_bpm: float = 80.0
    tempo_max_bpm: float = 140.0
    muted_layers: tuple[str, ...] = ()

    def updated(self, record: dict[str, Any]) -> MusicPrefs:
        """These preferences with the set fields of a Preferences record applied."""
        changes: dict[str, Any] = {}
        if record.get("style") in STYLES:
            changes["style"] = record["style"]
        for name in ("intensity_min", "intensity_max", "tempo_min_bpm", "tempo_max_bpm"):
            if record.get(name) is not None:
                changes[name] = round(float(record[name]), 3)
        if record.get("muted_layers"):  # an empty list is "not set" (Avro default), not "unmute all"
            changes["muted_layers"] = tuple(sorted(set(record["muted_layers"]) & set(LAYERS)))
        merged = replace(self, **changes)
        if merged.intensity_min > merged.intensity_max or merged.tempo_min_bpm > merged.tempo_max_bpm:
            return self  # an inconsistent update is ignored as a whole; the record validator names it
        return merged

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "muted_layers": list(self.muted_layers)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> MusicPrefs:
        return cls(**{**data, "muted_layers": tuple(data["muted_layers"])})


@dataclass
class DirectorState:
    """Everything the director remembers about one match's music (JSON-able)."""

    key: str = "D"
    mode: Mode = "MAJOR"
    intensity: float = 0.2
    tension: float = 0.0
    valence: float = 0.0
    tempo_bpm: float = 96.0
    layers: list[str] = field(default_factory=lambda: ["pad"])
    family: str = "calm"
    variant: int = 0
    mode_votes: int = 0
    bars_in_key: int = 0
    pending_key: list[str] | None = None  # [key, mode] to take at the next phrase start
    surge_bars: int = 0
    phrase_start: int = 0  # bar where the current run of 4-bar phrases began (a climax restarts it)
    chant_locked: bool = False
    stinger_last_ms: dict[str, int] = field(default_factory=dict)
    stung: list[str] = field(default_factory=list)  # event ids already answered (the latest 64)
    hold: bool = False  # an operator's hold: intensity, layers, key and mode stay as they are

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> DirectorState:
        return cls(**data)


@dataclass(frozen=True)
class BarDecision:
    plan: BarPlan
    reason: str


@dataclass(frozen=True)
class StingerCue:
    kind: StingerKind
    event_id: str
    reason: str


def bar_seed(match_id: str, bar: int) -> int:
    """A seed per bar whose high bits name the match, so ``seed // 8`` groups phrases."""
    return (zlib.crc32(match_id.encode()) << 20) | (bar & 0xFFFFF)


def _quarter(value: float) -> float:
    # Tempos are multiples of 1/4 bpm: exact in Avro's float32, so every reader computes the
    # same beat length from the control message.
    return round(value * 4) / 4


def _intensity_target(mood: Mood) -> float:
    base = mood.arousal
    if mood.state == "CELEBRATION":
        base = max(base, 0.85)
    elif mood.state == "EXCITEMENT":
        base = base + 0.1
    elif mood.state == "CALM":
        base = min(base, 0.4)
    elif mood.state == "DISAPPOINTMENT":
        base = base * 0.75
    elif mood.state == "CHANTING":
        base = max(base, 0.5)
    elif mood.state == "ANTICIPATION":
        base = base + 0.05
    return min(1.0, max(0.0, base))


def _character(state: DirectorState, mood: Mood) -> str:
    if state.surge_bars > 0 or mood.state == "CELEBRATION":
        return "triumph"
    if state.tension >= 0.5:
        return "tense"
    if state.valence <= -0.25 or mood.state in ("ANGER", "DISAPPOINTMENT"):
        return "dark"
    if state.intensity >= 0.5 or state.valence >= 0.3:
        return "bright"
    return "calm"


def _land_on(climax_in_ms: int, tempo: float, prefs: MusicPrefs) -> tuple[float, int | None]:
    """A tempo near ``tempo`` at which a whole number of bars ends on the climax, and that number."""
    bar_ms = BEATS_PER_BAR * 60_000 / tempo
    bars = max(1, round(climax_in_ms / bar_ms))
    aligned = BEATS_PER_BAR * 60_000 * bars / climax_in_ms
    if abs(aligned / tempo - 1) <= 0.15 and prefs.tempo_min_bpm <= aligned <= prefs.tempo_max_bpm:
        return aligned, bars  # not quantised: landing on the climax matters more here
    return tempo, None


def _fold_tempo(bpm: float, low: float, high: float) -> float | None:
    """``bpm`` moved by octaves into [low, high], or None when no octave fits."""
    value = bpm
    for _ in range(4):
        if value < low:
            value *= 2
        elif value > high:
            value /= 2
    return value if low <= value <= high else None


class Director:
    """The decisions of one match's music, bar by bar."""

    def __init__(self, match_id: str, state: DirectorState | None = None) -> None:
        self.match_id = match_id
        self.state = state or DirectorState()

    # -- stingers ---------------------------------------------------------------------------
    def stinger_for(self, cue_type: str, side: str, period: str, event_id: str, *, arousal: float,
                    at_ms: int, period_ms: int) -> StingerCue | None:
        """The stinger an event calls for at music time ``at_ms``, honouring cooldowns.

        Each event is answered at most once (its id is remembered), so a revised window that
        repeats the event does not repeat the stinger.
        """
        if event_id in self.state.stung:
            return None
        kind = stinger_for(cue_type, side, period, arousal=arousal)
        if kind is None:
            return None
        last = self.state.stinger_last_ms.get(kind)
        if last is not None and at_ms - last < COOLDOWN_MS[kind]:
            return None
        self.state.stinger_last_ms[kind] = at_ms
        self.state.stung = (self.state.stung + [event_id])[-64:]
        side_text = "" if side == "NONE" else f" ({side.lower()})"
        return StingerCue(kind=kind, event_id=event_id,
                          reason=f"{cue_type}{side_text} at {period} {period_ms // 60_000}:{period_ms // 1000 % 60:02d}")

    def stinger_played(self, kind: str) -> None:
        """A stinger sounds now: a home goal surges the music and lifts the key (not while held)."""
        if kind != "goal" or self.state.hold:
            return
        self.state.surge_bars = _SURGE_BARS
        if self.state.pending_key is None:
            # Up a fifth, or out of the minor into its relative major.
            target = relative(self.state.key, self.state.mode) if self.state.mode == "MINOR" \
                else (fifth_up(self.state.key, self.state.mode), self.state.mode)
            self.state.pending_key = [target[0], target[1]]

    # -- bars -------------------------------------------------------------------------------
    def decide_bar(self, bar: int, mood: Mood, prefs: MusicPrefs, *, climax_in_ms: int | None = None,
                   climax_lifts: bool = False, climax_now: bool = False) -> BarDecision:
        """The plan of bar ``bar`` given the crowd's mood at its start.

        ``climax_in_ms`` is foresight (replay only): a known climax — a goal — that far
        ahead. The music then builds towards it (intensity and tension rise, the dominant
        is held) and the tempo bends, within 15 % and the preferred range, so that a bar
        line lands on the climax; ``climax_lifts`` (a home goal) makes the last bar before
        it the dominant of the key the goal will lift to. ``climax_now``: a goal's stinger sounds on this bar's
        downbeat, so a new phrase (and a pending key) starts here rather than at the next
        phrase boundary.
        """
        st = self.state
        held = st.hold
        notes: list[str] = ["held by the operator"] if held else []
        build = None
        if climax_in_ms is not None and 0 < climax_in_ms <= _FORESIGHT_MS:
            build = 1.0 - climax_in_ms / _FORESIGHT_MS

        surging = st.surge_bars > 0
        target = _intensity_target(mood)
        if build is not None:
            target = max(target, 0.3 + 0.6 * build)
        if st.surge_bars > 0 and not held:
            target = max(target, 0.92)
            st.surge_bars -= 1
        rate = _ATTACK if target > st.intensity else _RELEASE
        if not held:
            st.intensity = round(st.intensity + rate * (target - st.intensity), 4)
        intensity = min(prefs.intensity_max, max(prefs.intensity_min, st.intensity))

        tension_target = min(1.0, mood.anticipation + 0.5 * mood.anger)
        if build is not None:
            tension_target = max(tension_target, 0.45 + 0.5 * build)
        st.tension = round(st.tension + 0.5 * (tension_target - st.tension), 4)
        if climax_now:
            st.tension = 0.0  # the climax releases what the build-up held
        st.valence = round(st.valence + 0.3 * (mood.valence - st.valence), 4)

        st.tempo_bpm = self._next_tempo(mood, prefs, notes)
        bars_to_climax = None
        if build is not None and climax_in_ms is not None:
            st.tempo_bpm, bars_to_climax = _land_on(climax_in_ms, st.tempo_bpm, prefs)
            notes.append(f"building to the climax in {climax_in_ms / 1000:.1f}s")
        st.layers = self._next_layers(intensity, prefs) if not held else \
            [layer for layer in st.layers if layer not in prefs.muted_layers]

        if climax_now:
            st.phrase_start = bar
        phrase_pos = (bar - st.phrase_start) % 4
        if phrase_pos == 0:
            self._turn_phrase(bar, mood, notes, modulate=not held)
        family = _PROGRESSIONS[st.mode][st.family]
        progression = family[st.variant % len(family)]
        chord = progression[phrase_pos]
        next_chord: str | None = progression[phrase_pos + 1] if phrase_pos < 3 else None
        if st.tension >= 0.55 and st.family != "tense" and not surging:
            chord = "V7" if phrase_pos % 2 else "V"  # anticipation holds the dominant
            next_chord = None
            notes.append("holding the dominant")
        if bars_to_climax == 1:
            # The climax resolves it: into the key a home goal lifts to, or home.
            chord = "V7/V" if climax_lifts and st.mode == "MAJOR" else "V7"
            next_chord = None
        elif phrase_pos == 3 and st.pending_key is not None and not held:
            chord, next_chord = self._pivot_chord()
            notes.append(f"preparing {st.pending_key[0]} {st.pending_key[1].lower()}")
        if not held:
            self._vote_mode()
        st.bars_in_key += 1

        plan = BarPlan(
            bar=bar, style=prefs.style, tempo_bpm=st.tempo_bpm, beats_per_bar=BEATS_PER_BAR,
            key=st.key, mode=st.mode, chord=chord, next_chord=next_chord, intensity=round(intensity, 4),
            layers=tuple(st.layers), tension=st.tension, valence=st.valence, seed=bar_seed(self.match_id, bar),
        )
        stale = f", windows missing {mood.stale_ms // 1000}s" if mood.stale_ms > 2000 else ""
        reason = (f"{mood.state.lower()} (arousal {mood.arousal:.2f}, valence {mood.valence:+.2f}{stale}) -> "
                  f"intensity {intensity:.2f}, {st.family} harmony")
        if notes:
            reason += "; " + "; ".join(notes)
        return BarDecision(plan=plan, reason=reason)

    def _next_tempo(self, mood: Mood, prefs: MusicPrefs, notes: list[str]) -> float:
        st = self.state
        low, high = prefs.tempo_min_bpm, prefs.tempo_max_bpm
        if mood.chant_bpm is not None:
            folded = _fold_tempo(mood.chant_bpm, low, high)
            if folded is not None:
                if not st.chant_locked:
                    notes.append(f"locked to the crowd's chant at {folded:.1f} bpm")
                st.chant_locked = True
                return _quarter(folded)
        st.chant_locked = False
        target = low + (high - low) * min(1.0, max(0.0, 0.1 + 0.9 * st.intensity))
        step = max(-_TEMPO_SLEW, min(_TEMPO_SLEW, target - st.tempo_bpm))
        return _quarter(min(high, max(low, st.tempo_bpm + step)))

    def _next_layers(self, intensity: float, prefs: MusicPrefs) -> list[str]:
        current = set(self.state.layers)
        sounding = []
        for layer in LAYERS:
            threshold = _LAYER_ON[layer] - (_LAYER_HYSTERESIS if layer in current else 0.0)
            if layer == "pad" or intensity >= threshold:
                sounding.append(layer)
        return [layer for layer in sounding if layer not in prefs.muted_layers]

    def _turn_phrase(self, bar: int, mood: Mood, notes: list[str], *, modulate: bool = True) -> None:
        st = self.state
        if st.pending_key is not None and modulate:
            key, mode = st.pending_key
            notes.append(f"modulating {st.key} {st.mode.lower()} -> {key} {mode.lower()}")
            st.key, st.mode = key, mode  # type: ignore[assignment]
            st.pending_key = None
            st.bars_in_key = 0
            st.mode_votes = 0
        st.family = _character(st, mood)
        st.variant = (bar_seed(self.match_id, bar) >> 2) % 3 if bar else 0

    def _pivot_chord(self) -> tuple[str, str | None]:
        st = self.state
        assert st.pending_key is not None
        key, mode = st.pending_key
        if st.mode == "MAJOR" and mode == "MAJOR" and key == fifth_up(st.key, st.mode):
            return "V7/V", None  # the new key's dominant seventh
        if st.mode == "MINOR":
            return "VII", None  # the relative major's dominant
        return "V", None

    def _vote_mode(self) -> None:
        st = self.state
        wants_minor = st.mode == "MAJOR" and st.valence <= -0.3
        wants_major = st.mode == "MINOR" and st.valence >= 0.15
        st.mode_votes = st.mode_votes + 1 if (wants_minor or wants_major) else 0
        if st.pending_key is None and st.mode_votes >= _MODE_BARS:
            st.pending_key = list(relative(st.key, st.mode))
            st.mode_votes = 0
        elif st.pending_key is None and st.bars_in_key >= _KEY_BARS:
            turn = fifth_up if st.valence >= 0 else fifth_down
            st.pending_key = [turn(st.key, st.mode), st.mode]


def stinger_for(cue_type: str, side: str, period: str, *, arousal: float) -> StingerKind | None:
    """Which stinger (if any) a match event calls for; valence is the home crowd's."""
    if cue_type == "GOAL":
        return "goal" if side == "HOME" else "goal_against" if side == "AWAY" else None
    if cue_type in ("SHOT", "SAVE") and side == "HOME" and arousal >= 0.45:
        return "near_miss"
    if cue_type == "CARD":
        return "card"
    if cue_type == "VAR_REVIEW":
        return "var"
    if cue_type == "PERIOD_END" and period in _FULL_TIME_PERIODS:
        return "full_time"
    return None
