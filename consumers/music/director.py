"""The director: per match, decides each bar's tempo, key, chord, intensity and layers.

Like the music systems of games (FMOD, Wwise), the score is a set of layers brought in and
out by one intensity parameter, with changes quantized to the bar; unlike them, the
parameter comes from a crowd. The mapping follows music-emotion research (Juslin &
Sloboda; Gabrielsson & Lindström; Eerola et al. 2013: mode, tempo, register and dynamics
carry the emotion): arousal drives tempo, loudness and density; valence drives mode and
register. Smoothing is asymmetric — fast attack, slow release — and layers use hysteresis,
so one loud second does not thrash the arrangement while a goal still lands within a bar.

The director plays like a band, not like a meter:

* **Phrases.** Harmony moves in four-bar phrases of functional progressions, paired into
  eight-bar periods: the first phrase may end open on the dominant, the second resolves to
  the tonic. Key changes wait for a phrase boundary and move along the circle of fifths (a
  home goal lifts the key a fifth, a long dark spell turns to the relative minor).
* **Tempo.** It holds through a phrase and moves at phrase boundaries (a few bpm at most)
  or along a planned ramp: locking to a chanting crowd takes two bars or more, never a
  jump, and no bar moves more than 8 bpm.
* **Goals.** A home goal is the loudest, fullest moment: everything surges for eight bars
  and the home side's theme returns. A goal against never brightens the key: pending bright
  modulations are cancelled, the music darkens, the away side's theme answers. With
  foresight (replay) the music builds towards a home goal short of its full strength so the
  goal itself is the peak, and towards a goal against with dread (tension, not triumph).
* **Stingers.** A stinger is voiced on the harmony it sounds over: the director commits the
  chords of the bars a stinger reaches into (re-harmonised to the stinger's taste where it
  has one), and holds tempo and key under it.
* **Endings** (replay): the bars before a clip's end cadence (predominant, dominant) into a
  final tonic bar.

Everything here is a pure function of the director's state and its inputs: the same inputs
give the same music, live or in replay.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal

from consumers.music.measures import key_brightness
from consumers.music.mood import Mood
from consumers.music.theory import fifth_down, fifth_up, relative
from consumers.music.types import LAYERS, STYLES, TICKS_PER_BEAT, BarPlan, Mode, StingerKind

__all__ = [
    "COOLDOWN_MS", "BarDecision", "Director", "DirectorState", "MusicPrefs", "StingerCue",
    "bar_seed", "stinger_for", "theme_seed",
]

BEATS_PER_BAR = 4
Side = Literal["home", "away"]

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
_DOMINANTS = frozenset({"V", "V7", "Vsus4", "v", "VII", "vii°"})
# Intensity above which each layer enters; it leaves 0.08 below (hysteresis).
_LAYER_ON: dict[str, float] = {"pad": 0.0, "bass": 0.12, "drums": 0.3, "strings": 0.45, "melody": 0.6, "brass": 0.75}
_LAYER_HYSTERESIS = 0.08
_ATTACK = 0.75   # share of the gap to the target closed per bar when intensity rises
_RELEASE = 0.2   # ... and when it falls
_TEMPO_DEADBAND = 5.0   # bpm: a phrase keeps the tempo unless the mood asks for more than this
_PHRASE_STEP = 6.0      # bpm a phrase boundary may move the tempo
_TEMPO_MOOD = 0.25      # share of each bar's intensity in the slow average the tempo follows
_RAMP_STEP = 6.0        # bpm per bar of a planned ramp (locking to a chant)
_RAMP_MIN_BARS = 2
_MAX_BEND = 8.0         # bpm: bending the tempo to land on a climax moves it at most this much
_CHANT_RETARGET = 2.0   # bpm: a locked chant that drifts this far is followed at the next phrase
_CHANT_RELEASE_BARS = 4  # bars without a chant before the music lets go of its tempo
_MODE_BARS = 6     # bars of consistent valence before the mode turns
_KEY_BARS = 48     # bars in one key before the harmony drifts along the circle of fifths
_SURGE_BARS = 8    # bars held at full intensity after a home goal
_DREAD_BARS = 16   # bars after a goal against in which the key may not brighten
_FORESIGHT_MS = 20_000  # replay: how far ahead a known climax shapes the music
_BUILD_TOP = 0.72  # a build towards a home goal stops here: the goal itself is the peak
_DREAD_TOP = 0.55  # ... and towards a goal against it stays lower still
_THEME_BARS = 2
_ENDING_SLACK_MS = 60
_LANDING_MARGIN_MS = 2.0  # bars land this long after a foreseen climax, never before it

COOLDOWN_MS: dict[str, int] = {
    "goal": 5_000, "goal_against": 5_000, "near_miss": 15_000, "card": 10_000, "var": 20_000, "full_time": 0,
}
_FULL_TIME_PERIODS = frozenset({"SECOND_HALF", "EXTRA_SECOND_HALF", "PENALTIES"})
# Chords a stinger asks of the bars it reaches into (the first one after the running bar, ...).
_STINGER_CHORDS: dict[str, dict[Mode, tuple[str, ...]]] = {
    "goal_against": {"MAJOR": ("iv",), "MINOR": ("iv",)},     # the minor plagal sigh
    "near_miss": {"MAJOR": ("V",), "MINOR": ("V",)},          # stopped dead on the dominant
    "full_time": {"MAJOR": ("V7", "I"), "MINOR": ("V7", "i")},  # the final cadence
}


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
    tempo_ramp: list[float] = field(default_factory=list)  # tempos of the coming bars of a planned ramp
    chant_bpm: float | None = None   # the chant tempo the music is locked to
    chant_absent: int = 0            # bars since the chant was last heard
    landing_tempo: float | None = None  # replay: the tempo that lands a bar line on the coming climax
    committed: list[list[str]] = field(default_factory=list)  # [key, mode, chord] of bars under a stinger
    dread_bars: int = 0              # bars left in which a goal against forbids brightening the key
    last_intensity: float | None = None  # the previous bar's (after preferences)
    last_layers: list[str] | None = None
    theme_cue: str | None = None     # a side whose theme enters once the stinger has sounded
    theme_now: list[Any] | None = None  # [side, next theme bar] while a theme is sung
    themes_heard: dict[str, int] = field(default_factory=dict)
    tempo_mood: float | None = None  # the slow average of intensity that the tempo follows
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


# The order of the eight-bar periods' ideas: A B A C, so the match's tune keeps coming back.
_PERIOD_FORM = (0, 1, 0, 2)


def bar_seed(match_id: str, bar: int, phrase_start: int = 0) -> int:
    """The seed of a bar: ``seed % 8`` is its place in its 8-bar period (counted from the
    phrase start), ``seed // 8`` names the period's musical idea (A B A C, so ideas recur)
    in the match (its high bits)."""
    rel = max(0, bar - phrase_start)
    idea = _PERIOD_FORM[(rel // 8) % len(_PERIOD_FORM)]
    return (zlib.crc32(match_id.encode()) << 20) | (idea << 3) | (rel % 8)


def theme_seed(match_id: str, side: str) -> int:
    """The identity of a side's theme in a match: the same every time it returns."""
    return zlib.crc32(f"{match_id}:{side}".encode()) & 0x7FFFFFFF


def _quarter(value: float) -> float:
    # Tempos are multiples of 1/4 bpm: exact in Avro's float32, so every reader computes the
    # same beat length from the control message.
    return round(value * 4) / 4


def _tonic(mode: Mode) -> str:
    return "I" if mode == "MAJOR" else "i"


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
    if state.dread_bars > 0 and state.surge_bars == 0:
        return "dark"
    if state.surge_bars > 0 or mood.state == "CELEBRATION":
        return "triumph"
    if state.tension >= 0.5:
        return "tense"
    if state.valence <= -0.25 or mood.state in ("ANGER", "DISAPPOINTMENT"):
        return "dark"
    if state.intensity >= 0.5 or state.valence >= 0.3:
        return "bright"
    return "calm"


def _progression(mode: Mode, family: str, variant: int, *, consequent: bool) -> tuple[str, ...]:
    """The phrase's four chords; the second phrase of a period cadences on the tonic."""
    choices = _PROGRESSIONS[mode][family]
    chords = choices[variant % len(choices)]
    tonic = _tonic(mode)
    if not consequent or family == "tense" or chords[3] == tonic:
        return chords
    # Predominant (or whatever precedes), dominant, tonic: an authentic cadence.
    before = chords[1] if chords[1] not in _DOMINANTS else chords[0]
    dominant = "V7" if family in ("bright", "triumph") or mode == "MINOR" else "V"
    return (chords[0], before, dominant, tonic)


def _fold_tempo(bpm: float, low: float, high: float) -> float | None:
    """``bpm`` moved by octaves into [low, high], or None when no octave fits."""
    value = bpm
    for _ in range(4):
        if value < low:
            value *= 2
        elif value > high:
            value /= 2
    return value if low <= value <= high else None


def _ramp(start: float, target: float) -> list[float]:
    """Per-bar tempos from ``start`` to ``target``: at least two bars, each step <= _RAMP_STEP."""
    bars = max(_RAMP_MIN_BARS, math.ceil(abs(target - start) / _RAMP_STEP - 1e-9))
    steps = [_quarter(start + (target - start) * k / bars) for k in range(1, bars)]
    return steps + [target]


def _bar_ms(tempo: float) -> float:
    return BEATS_PER_BAR * 60_000 / tempo


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
        """A stinger sounds now. A home goal surges the music, lifts the key and calls the home
        theme; a goal against darkens it, cancels a brighter key in waiting and calls the away
        theme; full time brings the home theme back. While the operator holds the music, none of
        this changes its intensity, layers or key (a goal against still cancels a brighter key)."""
        st = self.state
        if st.hold:
            if kind == "goal_against" and st.pending_key is not None and self._brighter(st.pending_key):
                st.pending_key = None
            return
        if kind == "goal":
            st.surge_bars = _SURGE_BARS
            st.dread_bars = 0
            st.theme_cue = "home"
            lift = relative(st.key, st.mode) if st.mode == "MINOR" else (fifth_up(st.key, st.mode), st.mode)
            if st.pending_key is None or key_brightness(*st.pending_key) < key_brightness(*lift):  # type: ignore[arg-type]
                st.pending_key = [lift[0], lift[1]]
        elif kind == "goal_against":
            st.surge_bars = 0
            st.dread_bars = _DREAD_BARS
            st.theme_cue = "away"
            st.valence = min(st.valence, -0.4)
            st.mode_votes = 0
            if st.pending_key is not None and self._brighter(st.pending_key):
                st.pending_key = None
        elif kind == "full_time":
            st.theme_cue = "home"

    def _brighter(self, key: list[str]) -> bool:
        st = self.state
        return key_brightness(key[0], key[1]) > key_brightness(st.key, st.mode)  # type: ignore[arg-type]

    def stinger_harmony(self, kind: str, plan: BarPlan, *, start_tick: int,
                        length_ticks: int) -> tuple[tuple[int, int, str, str, str], ...]:
        """The harmony a stinger of ``kind`` starting at ``start_tick`` of the bar ``plan`` sounds over.

        The running bar's chord first; for each later bar the stinger reaches into, the chord
        that bar will have — committed now, so the director keeps its promise when it gets
        there (and holds the tempo meanwhile). Where the stinger has a taste (a goal against
        sinks to the minor iv, a near miss stops on the dominant, full time cadences), the bar
        is re-harmonised to it.
        """
        st = self.state
        bar_ticks = plan.beats_per_bar * TICKS_PER_BEAT
        segments = [(0, bar_ticks - start_tick, plan.key, plan.mode, plan.chord)]
        wanted = _STINGER_CHORDS.get(kind, {})
        key, mode = plan.key, plan.mode
        offset = bar_ticks - start_tick
        ahead = 1
        while offset < length_ticks:
            if ahead <= len(st.committed):
                key, mode, chord = st.committed[ahead - 1]  # type: ignore[assignment]
            else:
                bar = plan.bar + ahead
                rel = bar - st.phrase_start
                pos = rel % 4
                if pos == 0 and st.pending_key is not None and not st.hold \
                        and not (st.dread_bars > 0 and self._brighter(st.pending_key)):
                    key, mode = st.pending_key[0], st.pending_key[1]  # type: ignore[assignment]
                choice = wanted.get(mode, ())  # type: ignore[call-overload]
                if kind == "var":
                    chord = segments[-1][4] if (key, mode) == segments[-1][2:4] else _tonic(mode)  # the harmony holds its breath
                elif ahead - 1 < len(choice):
                    chord = choice[ahead - 1]
                elif pos == 0:
                    chord = _tonic(mode)
                else:
                    chord = _progression(mode, st.family, st.variant, consequent=(rel // 4) % 2 == 1)[pos]
                st.committed.append([key, mode, chord])
            segments.append((offset, offset + bar_ticks, key, mode, chord))
            offset += bar_ticks
            ahead += 1
        return tuple(segments)

    # -- bars -------------------------------------------------------------------------------
    def decide_bar(self, bar: int, mood: Mood, prefs: MusicPrefs, *, climax_in_ms: float | None = None,
                   climax_side: Side | None = None, climax_now: bool = False, stinger_now: bool = False,
                   ending_in_ms: int | None = None, opening: bool = False) -> BarDecision:
        """The plan of bar ``bar`` given the crowd's mood at its start.

        ``climax_in_ms`` is foresight (replay only): a known goal that far ahead, scored by
        ``climax_side``. Towards a home goal the music builds (intensity short of the goal's,
        tension, the dominant held) and the tempo bends, by at most 8 bpm and within the
        preferred range, so that a bar line lands on it, the bar before being the dominant of
        the key the goal lifts to; towards a goal against it builds dread instead.
        ``climax_now``: a goal's stinger sounds on this bar's downbeat, so a new phrase (and a
        pending key) starts here: triumphant after a home goal, dark after a goal against.
        ``stinger_now``: a stinger starts on this downbeat (the melody rests under it).
        ``ending_in_ms`` (replay): the piece ends on the first bar line at or after that time;
        the bars before it cadence into a final tonic bar. ``opening``: the first bar of a
        piece (every layer enters, out of the pickup onto the tonic).
        """
        st = self.state
        held = st.hold
        notes: list[str] = ["held by the operator"] if held else []
        build = None
        dread = climax_side == "away"
        if climax_in_ms is not None and 0 < climax_in_ms <= _FORESIGHT_MS:
            build = 1.0 - climax_in_ms / _FORESIGHT_MS
        committed = st.committed.pop(0) if st.committed else None
        previous_intensity, previous_layers = st.last_intensity, st.last_layers

        self._update_dials(mood, prefs, build=build, dread=dread, climax_now=climax_now, held=held)
        intensity = min(prefs.intensity_max, max(prefs.intensity_min, st.intensity))

        if climax_now:
            st.phrase_start = bar
        rel = bar - st.phrase_start
        phrase_pos = rel % 4
        if phrase_pos == 0:
            self._turn_phrase(bar, mood, notes, modulate=committed is None and not opening and not held
                              and not self._ends_soon(ending_in_ms))

        tempo, ramp, bars_to_climax = self._next_tempo(mood, prefs, notes, phrase_pos, hold=committed is not None,
                                                       climax_in_ms=climax_in_ms if build is not None else None)
        st.tempo_bpm = tempo
        st.layers = self._next_layers(intensity, prefs) if not held else \
            [layer for layer in st.layers if layer not in prefs.muted_layers]

        progression = _progression(st.mode, st.family, st.variant, consequent=(rel // 4) % 2 == 1)
        chord = progression[phrase_pos]
        next_chord: str | None = progression[phrase_pos + 1] if phrase_pos < 3 else None
        if st.tension >= 0.55 and st.family != "tense" and st.surge_bars == 0:
            chord = "V7" if phrase_pos % 2 else "V"  # anticipation holds the dominant
            next_chord = None
            notes.append("holding the dominant")
        if opening:
            chord, next_chord = _tonic(st.mode), progression[1] if phrase_pos == 0 else None  # out of the pickup
        if bars_to_climax == 1:
            # The climax resolves it: into the key a home goal lifts to, or home.
            chord = "V7/V" if climax_side == "home" and st.mode == "MAJOR" and st.dread_bars == 0 else "V7"
            next_chord = None
        elif phrase_pos == 3 and st.pending_key is not None and committed is None and not held:
            chord, next_chord = self._pivot_chord()
            notes.append(f"preparing {st.pending_key[0]} {st.pending_key[1].lower()}")

        final = False
        if ending_in_ms is not None and committed is None:
            bar_ms = _bar_ms(tempo)
            if ending_in_ms <= _ENDING_SLACK_MS:
                final, chord, next_chord = True, _tonic(st.mode), None
                notes.append("final chord")
            elif ending_in_ms <= bar_ms + _ENDING_SLACK_MS:
                chord, next_chord = "V7" if st.mode == "MINOR" or intensity >= 0.5 else "V", _tonic(st.mode)
                notes.append("cadence")
            elif ending_in_ms <= 2 * bar_ms + _ENDING_SLACK_MS:
                chord, next_chord = ("IV" if st.mode == "MAJOR" else "iv"), None

        if committed is not None:
            key, mode, chord = committed
            if (key, mode) != (st.key, st.mode):
                notes.append(f"modulating {st.key} {st.mode.lower()} -> {key} {mode.lower()}")
                st.key, st.mode = key, mode  # type: ignore[assignment]
                st.pending_key = None if st.pending_key == [key, mode] else st.pending_key
                st.bars_in_key = 0
            next_chord = st.committed[0][2] if st.committed and st.committed[0][:2] == [key, mode] else None
            notes.append("under the stinger")

        theme = None if held else self._theme(climax_now=climax_now, under_stinger=committed is not None or stinger_now,
                                              final=final)
        layers = list(st.layers)
        if theme is not None and "melody" not in layers and "melody" not in prefs.muted_layers:
            layers.append("melody")  # the theme is sung whatever the intensity
            layers.sort(key=LAYERS.index)
        if st.dread_bars > 0:
            st.dread_bars -= 1
        if not held:
            self._vote_mode()
        st.bars_in_key += 1

        plan = BarPlan(
            bar=bar, style=prefs.style, tempo_bpm=tempo, beats_per_bar=BEATS_PER_BAR,
            key=st.key, mode=st.mode, chord=chord, next_chord=next_chord, intensity=round(intensity, 4),
            layers=tuple(layers), tension=st.tension, valence=st.valence,
            seed=bar_seed(self.match_id, bar, st.phrase_start),
            intensity_from=None if opening else previous_intensity,
            layers_from=() if opening or previous_layers is None else tuple(previous_layers),
            phrase_pos=phrase_pos, tempo_ramp=ramp,
            theme=theme[0] if theme else None, theme_bar=theme[1] if theme else 0,
            theme_statement=theme[2] if theme else 0,
            theme_seed=theme_seed(self.match_id, theme[0]) if theme else 0,
            stinger_over=committed is not None or stinger_now, opening=opening, final=final,
        )
        st.last_intensity, st.last_layers = plan.intensity, list(plan.layers)
        stale = f", windows missing {mood.stale_ms // 1000}s" if mood.stale_ms > 2000 else ""
        reason = (f"{mood.state.lower()} (arousal {mood.arousal:.2f}, valence {mood.valence:+.2f}{stale}) -> "
                  f"intensity {intensity:.2f}, {st.family} harmony")
        if theme is not None:
            notes.append(f"{theme[0]} theme, statement {theme[2] + 1}")
        if notes:
            reason += "; " + "; ".join(notes)
        return BarDecision(plan=plan, reason=reason)

    def _update_dials(self, mood: Mood, prefs: MusicPrefs, *, build: float | None, dread: bool,
                      climax_now: bool, held: bool) -> None:
        """Intensity, tension and valence after this bar's mood, foresight and goals (the
        intensity stays where it is while the operator holds the music)."""
        st = self.state
        target = _intensity_target(mood)
        if build is not None and dread:
            target = min(max(target, 0.3 + 0.25 * build), _DREAD_TOP)
        elif build is not None:
            target = min(max(target, 0.3 + (_BUILD_TOP - 0.3) * build), _BUILD_TOP)
        if st.surge_bars > 0 and not held:
            target = max(target, 0.97)
            st.surge_bars -= 1
            if climax_now:
                st.intensity = max(st.intensity, target)  # the goal lands at full strength at once
        rate = _ATTACK if target > st.intensity else _RELEASE
        if not held:
            st.intensity = round(st.intensity + rate * (target - st.intensity), 4)
        mood_now = st.intensity if st.tempo_mood is None else st.tempo_mood
        st.tempo_mood = round(mood_now + _TEMPO_MOOD * (st.intensity - mood_now), 4)

        tension_target = min(1.0, mood.anticipation + 0.5 * mood.anger)
        if build is not None:
            tension_target = max(tension_target, 0.45 + 0.5 * build)
        st.tension = round(st.tension + 0.5 * (tension_target - st.tension), 4)
        if climax_now:
            st.tension = 0.0  # the climax releases what the build-up held
        valence_target = mood.valence
        if build is not None and dread:
            valence_target = min(valence_target, -0.6 * build)
        if st.dread_bars > 0:
            valence_target = min(valence_target, -0.3)
        st.valence = round(st.valence + 0.3 * (valence_target - st.valence), 4)

    def _ends_soon(self, ending_in_ms: int | None) -> bool:
        return ending_in_ms is not None and ending_in_ms <= 2 * _bar_ms(self.state.tempo_bpm) + _ENDING_SLACK_MS

    def _theme(self, *, climax_now: bool, under_stinger: bool, final: bool) -> tuple[str, int, int] | None:
        """(side, theme bar, statement) when this bar sings a side's theme."""
        st = self.state
        if st.theme_now is None and st.theme_cue is not None and not climax_now and not under_stinger and not final:
            st.theme_now = [st.theme_cue, 0]
            st.theme_cue = None
        if st.theme_now is None:
            return None
        side, theme_bar = st.theme_now
        statement = st.themes_heard.get(side, 0)
        if theme_bar + 1 >= _THEME_BARS:
            st.theme_now = None
            st.themes_heard[side] = statement + 1
        else:
            st.theme_now = [side, theme_bar + 1]
        return side, theme_bar, statement

    def _next_tempo(self, mood: Mood, prefs: MusicPrefs, notes: list[str], phrase_pos: int, *, hold: bool,
                    climax_in_ms: float | None) -> tuple[float, bool, int | None]:
        """(tempo, moved as a planned ramp, bars to a foreseen climax) for this bar."""
        st = self.state
        low, high = prefs.tempo_min_bpm, prefs.tempo_max_bpm
        current = st.tempo_bpm
        if not low <= current <= high:
            st.tempo_ramp, st.landing_tempo = [], None
            return _quarter(min(high, max(low, current))), False, None  # a new preferred range applies at once
        if climax_in_ms is not None:
            landed = self._land(climax_in_ms, current, prefs)
            if landed is not None:
                tempo, bars = landed
                if st.landing_tempo is None and abs(tempo - current) > 0.01:
                    notes.append(f"bending the tempo {current:.2f} -> {tempo:.2f} bpm to land on the climax")
                st.landing_tempo, st.tempo_ramp = tempo, []
                return tempo, abs(tempo - current) > 0.01, bars
        st.landing_tempo = None
        if hold:
            return current, False, None
        folded = _fold_tempo(mood.chant_bpm, low, high) if mood.chant_bpm is not None else None
        if folded is not None:
            st.chant_absent = 0
            target = _quarter(folded)
            drifted = st.chant_bpm is not None and abs(target - st.chant_bpm) > _CHANT_RETARGET
            if not st.chant_locked or (phrase_pos == 0 and drifted and not st.tempo_ramp):
                st.chant_locked, st.chant_bpm = True, target
                if abs(target - current) > 0.01:
                    st.tempo_ramp = _ramp(current, target)
                    notes.append(f"locking to the crowd's chant at {target:.2f} bpm over {len(st.tempo_ramp)} bars")
        elif st.chant_locked:
            st.chant_absent += 1
            if st.chant_absent >= _CHANT_RELEASE_BARS:
                st.chant_locked, st.chant_bpm = False, None
        if st.tempo_ramp:
            return st.tempo_ramp.pop(0), True, None
        if st.chant_locked or phrase_pos != 0:
            return current, False, None
        # A band follows the mood of the last phrases, not of the last bar.
        target = low + (high - low) * min(1.0, max(0.0, 0.1 + 0.9 * st.tempo_mood))
        if abs(target - current) < _TEMPO_DEADBAND:
            return current, False, None
        step = max(-_PHRASE_STEP, min(_PHRASE_STEP, target - current))
        return _quarter(min(high, max(low, current + step))), False, None

    def _land(self, climax_in_ms: float, current: float, prefs: MusicPrefs) -> tuple[float, int] | None:
        """(tempo, bars) so that whole bars end on the climax, within 8 bpm of ``current``.

        Planned once and then held (a steady run into the goal); it aims a hair after the
        climax so that the bar line's rounding to samples never puts it before the event.
        """
        st = self.state
        if st.landing_tempo is not None:
            tempo = st.landing_tempo
            return tempo, max(1, round(climax_in_ms / _bar_ms(tempo)))
        target = climax_in_ms + _LANDING_MARGIN_MS
        estimate = target / _bar_ms(current)
        best: tuple[float, int] | None = None
        for bars in sorted({max(1, math.floor(estimate)), max(1, math.ceil(estimate))}):
            aligned = BEATS_PER_BAR * 60_000 * bars / target
            if abs(aligned - current) <= _MAX_BEND and prefs.tempo_min_bpm <= aligned <= prefs.tempo_max_bpm:
                if best is None or abs(aligned - current) < abs(best[0] - current):
                    best = (aligned, bars)  # not quantised: landing on the climax matters more here
        return best

    def _next_layers(self, intensity: float, prefs: MusicPrefs) -> list[str]:
        current = set(self.state.layers)
        sounding = []
        for layer in LAYERS:
            threshold = _LAYER_ON[layer] - (_LAYER_HYSTERESIS if layer in current else 0.0)
            if layer == "pad" or intensity >= threshold:
                sounding.append(layer)
        return [layer for layer in sounding if layer not in prefs.muted_layers]

    def _turn_phrase(self, bar: int, mood: Mood, notes: list[str], *, modulate: bool) -> None:
        st = self.state
        if st.pending_key is not None and st.dread_bars > 0 and self._brighter(st.pending_key):
            notes.append(f"not brightening to {st.pending_key[0]} {st.pending_key[1].lower()} after the goal against")
            st.pending_key = None
        if st.pending_key is not None and modulate:
            key, mode = st.pending_key
            notes.append(f"modulating {st.key} {st.mode.lower()} -> {key} {mode.lower()}")
            st.key, st.mode = key, mode  # type: ignore[assignment]
            st.pending_key = None
            st.bars_in_key = 0
            st.mode_votes = 0
        st.family = _character(st, mood)
        st.variant = (zlib.crc32(self.match_id.encode()) + bar) % 3 if bar else 0

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
        wants_major = st.mode == "MINOR" and st.valence >= 0.15 and st.dread_bars == 0
        st.mode_votes = st.mode_votes + 1 if (wants_minor or wants_major) else 0
        if st.pending_key is None and st.mode_votes >= _MODE_BARS:
            st.pending_key = list(relative(st.key, st.mode))
            st.mode_votes = 0
        elif st.pending_key is None and st.bars_in_key >= _KEY_BARS:
            if st.valence >= 0 and st.dread_bars == 0:
                st.pending_key = [fifth_up(st.key, st.mode), st.mode]
            elif st.valence < 0:
                st.pending_key = [fifth_down(st.key, st.mode), st.mode]


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
