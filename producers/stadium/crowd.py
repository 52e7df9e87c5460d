"""How the crowd behaves: from a match script to how often each kind of sound starts.

The crowd is two *sections* — home and away supporters, sized by ``home_share`` — and
several *layers*: talk (the murmur), shouts and screams (cheers), "ooh"s (anticipation
and near misses), groans, boos, fingers-in-mouth whistles and claps. The plan turns each
scripted moment into *cues*: envelopes of the rate (grains per second, for a crowd made
entirely of one section) at which a section starts sounds of a layer. A goal is an
anticipation cue rising over seconds before it, then a roar from the scorers' section
(as big as its share of the crowd) and groans plus a deflated hush from the other.

Everything here is a pure function of the script and of time, so any stretch of a match
can be rendered on its own and come out the same.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from producers.stadium.script import MatchScript, Moment
from schemas.clock import Period

__all__ = ["Chant", "CrowdPlan", "Cue", "LAYERS", "SECTIONS", "crowd_plan"]

LAYERS = ("talk", "shout", "scream", "ooh", "groan", "boo", "whistle", "clap")
SECTIONS = ("home", "away")
_TALK_GAIN = "talk_gain"  # a multiplicative cue on the talk rate: hushes and excited buzz

# Grains per second, for a whole crowd of one section, when nothing happens. Talk makes
# the murmur (~140 voices at once at 1.5 s a phrase); the rest are the odd shout, clap,
# whistle that keep a crowd alive between moments.
TALK_RATE = 95.0
_IDLE = {"shout": 1.5, "scream": 0.1, "groan": 0.3, "whistle": 0.06, "clap": 4.0}
_DRIFT_KNOT_S = 5.0  # the murmur wanders on this time scale
_DRIFT_DEPTH = 0.28  # natural-log units: about +-2.5 dB
# Cheers, boos and applause come in waves: their rates wander faster and deeper.
_WAVE_KNOT_S = 1.6
_WAVE_DEPTH = 0.6


@dataclass(frozen=True)
class Cue:
    """A swell of one layer in one section: rises over ``rise_s`` (shaped by ``curve``:
    above 1 starts slowly and accelerates, as anticipation does), holds for ``hold_s``,
    then decays exponentially with time constant ``decay_s``; ``peak`` in grains/s."""

    layer: str
    section: int
    start_s: float
    rise_s: float
    hold_s: float
    decay_s: float
    peak: float
    curve: float = 1.0

    @property
    def end_s(self) -> float:
        return self.start_s + self.rise_s + self.hold_s + 7.0 * self.decay_s

    def envelope(self, t: np.ndarray) -> np.ndarray:
        """The cue's value (0..peak) at times ``t`` (s, audio time)."""
        x = t - self.start_s
        env = np.zeros_like(t)
        if self.rise_s > 0:
            rising = (x >= 0) & (x < self.rise_s)
            env[rising] = (x[rising] / self.rise_s) ** self.curve
        top = self.rise_s + self.hold_s
        env[(x >= self.rise_s) & (x < top)] = 1.0
        falling = x >= top
        env[falling] = np.exp(-(x[falling] - top) / max(self.decay_s, 1e-3))
        return self.peak * env


@dataclass(frozen=True)
class Chant:
    """A chant by one section: ``tempo`` bpm, ``tune`` name, from ``start_s`` for ``length_s``,
    sung on a root note ``root_midi`` (MIDI number)."""

    section: int
    start_s: float
    length_s: float
    tempo: float
    tune: str
    team: str
    intensity: float
    root_midi: int

    @property
    def end_s(self) -> float:
        return self.start_s + self.length_s


@dataclass
class CrowdPlan:
    """Everything the crowd does over a match, evaluated chunk by chunk by the renderer."""

    shares: tuple[float, float]
    duration_s: float
    cues: list[Cue] = field(default_factory=list)
    chants: list[Chant] = field(default_factory=list)
    referee: list[tuple[float, tuple[float, ...]]] = field(default_factory=list)  # (start s, blast lengths)
    base_knots: tuple[np.ndarray, np.ndarray] = (np.zeros(1), np.ones(1))  # talk level by period
    play_knots: tuple[np.ndarray, np.ndarray] = (np.zeros(1), np.ones(1))  # 1 in play, lower in breaks
    drift: np.ndarray = field(default_factory=lambda: np.zeros((2, 2)))  # log-rate knots per section
    waves: np.ndarray = field(default_factory=lambda: np.zeros((2, 2)))  # log-rate knots of the reactions

    def rates(self, t: np.ndarray) -> np.ndarray:
        """Rates (grains/s) at times ``t`` (s): shape (len(LAYERS), len(SECTIONS), len(t))."""
        out = np.zeros((len(LAYERS), len(SECTIONS), len(t)))
        talk_gain = np.ones((len(SECTIONS), len(t)))
        lo, hi = float(t[0]), float(t[-1])
        for cue in self.cues:
            if cue.start_s > hi or cue.end_s < lo:
                continue
            if cue.layer == _TALK_GAIN:
                talk_gain[cue.section] += cue.envelope(t)
            else:
                out[LAYERS.index(cue.layer), cue.section] += cue.envelope(t)
        base = np.interp(t, *self.base_knots)
        play = np.interp(t, *self.play_knots)
        knot_t = np.arange(self.drift.shape[1]) * _DRIFT_KNOT_S - 2 * _DRIFT_KNOT_S
        wave_t = np.arange(self.waves.shape[1]) * _WAVE_KNOT_S - 2 * _WAVE_KNOT_S
        for s, share in enumerate(self.shares):
            out[1:, s] *= np.exp(np.interp(t, wave_t, self.waves[s]))
            drift = np.exp(np.interp(t, knot_t, self.drift[s]))
            out[0, s] += TALK_RATE * base * drift * np.maximum(talk_gain[s], 0.12)
            for layer, rate in _IDLE.items():
                out[LAYERS.index(layer), s] += rate * play * drift
            out[:, s] *= share
        return out

    @staticmethod
    def bed_level(rates: np.ndarray) -> np.ndarray:
        """Relative amplitude (about 1 in an ordinary murmur) of the distant-crowd noise
        bed, from :meth:`rates`: it follows how much the crowd is talking."""
        return np.sqrt(np.maximum(rates[0].sum(axis=0) / TALK_RATE, 0.05))


def crowd_plan(script: MatchScript) -> CrowdPlan:
    """Plan the crowd of ``script``: cues for every moment and period, chants, whistles."""
    shares = (script.home_share, 1.0 - script.home_share)
    plan = CrowdPlan(shares=shares, duration_s=script.duration_ms / 1000)
    rng = np.random.default_rng([script.seed, 5_000])
    n_knots = int(plan.duration_s / _DRIFT_KNOT_S) + 8
    plan.drift = rng.normal(0.0, _DRIFT_DEPTH, (len(SECTIONS), n_knots))
    plan.waves = rng.normal(0.0, _WAVE_DEPTH, (len(SECTIONS), int(plan.duration_s / _WAVE_KNOT_S) + 8))
    _periods(script, plan)
    for moment in script.moments:
        _moment(script, plan, moment, np.random.default_rng([script.seed, 6_000, moment.index]))
    plan.cues.sort(key=lambda c: c.start_s)
    return plan


def _sections(side: str) -> list[int]:
    return [0, 1] if side == "both" else [SECTIONS.index(side)]


def _other(section: int) -> int:
    return 1 - section


def _score_until(script: MatchScript, offset_ms: int) -> tuple[int, int]:
    home = away = 0
    for m in script.moments:
        if m.offset_ms > offset_ms:
            break
        delta = 0
        if m.kind in {"goal", "own_goal"}:
            delta = 1
        elif m.kind == "var" and m.decision == "goal" and m.outcome == "overturned":
            delta = -1
        if m.side == "home":
            home += delta
        elif m.side == "away":
            away += delta
    return home, away


def _periods(script: MatchScript, plan: CrowdPlan) -> None:
    spans = script.period_spans()
    times, levels, play_t, play_v = [], [], [], []
    playing = [p for p, _, _ in spans if p.is_play]
    for period, start, length in spans:
        s, e = start / 1000, (start + length) / 1000
        if period is Period.PRE_MATCH:  # the stadium fills up
            times += [s, e]
            levels += [0.55, 0.95]
        elif period.is_play:
            times += [s + 1.0, e]
            levels += [1.0, 1.0]
        elif period is Period.POST_MATCH:  # everyone talks about it, then leaves
            times += [s + 15.0, max(e, s + 15.0)]
            levels += [0.9, 0.6]
        else:  # a break: many go to the concourse
            times += [s + min(20.0, length / 2000), e - min(10.0, length / 4000)]
            levels += [0.7, 0.75]
        play_t += [s, e]
        play_v += [1.0, 1.0] if period.is_play else [0.4, 0.4]
        if not period.is_play:
            continue
        first = period is playing[0]
        last = period is playing[-1]
        plan.referee.append((s, (0.6,)))
        for sec in (0, 1):  # kick-off: applause and a cheer as the whistle goes
            plan.cues.append(Cue("clap", sec, s - 4.0, 3.0, 2.0, 2.5, 900.0 if first else 600.0, curve=1.5))
            plan.cues.append(Cue("shout", sec, s - 1.5, 1.5, 1.0, 2.0, 160.0 if first else 90.0))
        plan.referee.append((e, (0.35, 0.35, 1.2) if last else (0.4, 1.0)))
        home, away = _score_until(script, start + length)
        leader = 0 if home > away else 1 if away > home else None
        end = e + 0.5
        if leader is None:
            for sec in (0, 1):
                plan.cues.append(Cue("clap", sec, end, 1.0, 3.0, 3.0, 900.0 if last else 600.0))
            plan.cues.append(Cue("boo", 0, end, 1.0, 2.0, 2.0, 60.0 if last else 30.0))
        else:
            loser = _other(leader)
            hold, decay, peak = (2.5, 5.0, 550.0) if last else (1.0, 2.0, 150.0)
            plan.cues.append(Cue("shout", leader, end, 0.6, hold, decay, peak))
            plan.cues.append(Cue("clap", leader, end + 1.0, 1.5, 5.0, 5.0, 1500.0 if last else 1000.0))
            plan.cues.append(Cue("whistle", leader, end, 0.5, 2.0, 2.0, 20.0))
            plan.cues.append(Cue("boo", loser, end + 0.5, 1.0, 4.0 if last else 2.0, 4.0, 320.0 if last else 150.0))
            plan.cues.append(Cue("whistle", loser, end + 0.5, 1.0, 3.0, 3.0, 35.0 if last else 15.0))
            plan.cues.append(Cue(_TALK_GAIN, loser, end + 3.0, 2.0, 20.0, 20.0, -0.4))
    order = np.argsort(times, kind="stable")
    plan.base_knots = (np.asarray(times)[order], np.asarray(levels)[order])
    plan.play_knots = (np.asarray(play_t), np.asarray(play_v))


def _anticipation(plan: CrowdPlan, sec: int, start: float, at: float, strength: float, *, hush: bool = False) -> None:
    """The crowd sees the attack coming: talk swells and "ooh"s rise, accelerating until
    the moment; before a penalty instead, the stadium hushes."""
    rise = max(at - start, 0.05)
    if hush:
        for s in (0, 1):
            plan.cues.append(Cue(_TALK_GAIN, s, start, rise, 0.0, 0.4, -0.8, curve=0.7))
        plan.cues.append(Cue("ooh", sec, at - min(rise, 1.5), min(rise, 1.5), 0.0, 0.3, 60.0 * strength, curve=2.0))
        return
    plan.cues.append(Cue("ooh", sec, start, rise, 0.0, 0.35, 130.0 * strength, curve=2.2))
    plan.cues.append(Cue("shout", sec, start, rise, 0.0, 0.4, 40.0 * strength, curve=3.0))
    plan.cues.append(Cue(_TALK_GAIN, sec, start, rise, 0.0, 1.0, 1.2 * strength, curve=1.5))
    plan.cues.append(Cue(_TALK_GAIN, _other(sec), start, rise, 0.0, 1.0, 0.5 * strength, curve=1.5))


def _build_start(script: MatchScript, moment: Moment, default_s: float) -> float:
    at = moment.offset_ms / 1000
    build = default_s if moment.build_ms is None else moment.build_ms / 1000
    period_start = script.period_start_ms(moment.clock.period) or 0
    return max(at - build, period_start / 1000)


def _roar(plan: CrowdPlan, sec: int, at: float, size: float, rng: np.random.Generator) -> None:
    """A goal celebration from one section (its rates scale with its share of the crowd
    later): the roar and screams, surges, whistles and applause, and an excited buzz for a
    good while after."""
    plan.cues.append(Cue("shout", sec, at + 0.25, 0.6, rng.uniform(1.5, 2.5), 1.5, 650.0 * size, curve=0.7))
    plan.cues.append(Cue("scream", sec, at + 0.3, 0.5, 1.5, 1.5, 130.0 * size, curve=0.7))
    # Celebrations come in waves: three or four more surges, smaller and smaller, with
    # the crowd drawing breath in between.
    surge_at, surge = at + 1.0, 1.0
    for _ in range(int(rng.integers(3, 5))):
        surge_at += rng.uniform(2.2, 3.8)
        surge *= rng.uniform(0.6, 0.9)
        plan.cues.append(Cue("shout", sec, surge_at, rng.uniform(0.4, 0.9), rng.uniform(0.3, 1.0), 1.0, 650.0 * size * surge))
        plan.cues.append(Cue("scream", sec, surge_at, 0.4, 0.4, 1.0, 130.0 * size * surge))
    plan.cues.append(Cue("whistle", sec, at + 0.8, 1.0, 2.0, 3.0, 22.0 * size))
    plan.cues.append(Cue("clap", sec, at + 3.0, 2.0, 4.0, 4.0, 1100.0 * size))
    plan.cues.append(Cue(_TALK_GAIN, sec, at + 6.0, 3.0, 10.0, 15.0, 1.0))


def _moment(script: MatchScript, plan: CrowdPlan, m: Moment, rng: np.random.Generator) -> None:
    at = m.offset_ms / 1000
    k = m.intensity
    if m.kind in {"chant", "applause", "boos", "whistles"}:
        length = (m.duration_ms or 0) / 1000
        for sec in _sections(m.side):
            if m.kind == "chant":
                team = script.home if sec == 0 else script.away
                plan.chants.append(Chant(sec, at, length, m.tempo or 120.0, m.tune or "name", team, k,
                                         root_midi=int(rng.integers(50, 56))))
                plan.cues.append(Cue(_TALK_GAIN, sec, at, 2.0, max(length - 4.0, 0.0), 2.0, -0.35))
            elif m.kind == "applause":
                plan.cues.append(Cue("clap", sec, at, 1.0, max(length - 2.5, 0.0), 1.5, 1500.0 * k))
                plan.cues.append(Cue("shout", sec, at, 0.8, max(length - 3.0, 0.0), 1.5, 30.0 * k))
            elif m.kind == "boos":
                plan.cues.append(Cue("boo", sec, at, 1.2, max(length - 2.5, 0.0), 1.5, 380.0 * k))
                plan.cues.append(Cue("whistle", sec, at + 0.5, 1.0, max(length - 3.0, 0.0), 1.5, 18.0 * k))
                plan.cues.append(Cue(_TALK_GAIN, sec, at, 1.0, max(length - 2.0, 0.0), 2.0, -0.4))
            else:
                plan.cues.append(Cue("whistle", sec, at, 0.6, max(length - 1.5, 0.0), 1.0, 75.0 * k))
                plan.cues.append(Cue("boo", sec, at, 1.0, max(length - 2.0, 0.0), 1.0, 60.0 * k))
        return

    sec = SECTIONS.index(m.side)
    other = _other(sec)
    if m.kind in {"goal", "own_goal"}:
        if m.kind == "goal":  # nobody sees an own goal coming
            _anticipation(plan, sec, _build_start(script, m, 8.0 if m.penalty else 6.0), at, k, hush=m.penalty)
        _roar(plan, sec, at, k, rng)
        plan.cues.append(Cue("groan", other, at + 0.35, 0.4, 0.8, 1.5, 300.0 * k))
        plan.cues.append(Cue(_TALK_GAIN, other, at + 1.5, 1.0, 20.0, 20.0, -0.6))
    elif m.kind == "chance":
        _anticipation(plan, sec, _build_start(script, m, 5.0), at, k)
        plan.cues.append(Cue("ooh", sec, at + 0.2, 0.35, 0.7, 1.2, 620.0 * k))
        plan.cues.append(Cue("clap", sec, at + 1.5, 0.5, 2.0, 2.0, 800.0 * k))
        plan.cues.append(Cue(_TALK_GAIN, sec, at + 2.0, 1.0, 4.0, 8.0, 0.5))
        if m.outcome == "saved":
            plan.cues.append(Cue("clap", other, at + 0.6, 0.4, 2.0, 2.0, 700.0 * k))
    elif m.kind == "miss":
        _anticipation(plan, sec, _build_start(script, m, 3.0), at, 0.5 * k)
        plan.cues.append(Cue("groan", sec, at + 0.3, 0.3, 0.4, 1.0, 260.0 * k))
        plan.cues.append(Cue("clap", sec, at + 1.2, 0.4, 1.0, 1.5, 300.0 * k))
        plan.cues.append(Cue("shout", other, at + 0.4, 0.3, 0.3, 0.8, 40.0 * k))
    elif m.kind == "save":  # side is the keeper's: the other side shot
        _anticipation(plan, other, _build_start(script, m, 4.0), at, 0.8 * k)
        plan.cues.append(Cue("ooh", other, at + 0.2, 0.35, 0.5, 1.0, 450.0 * k))
        plan.cues.append(Cue("clap", sec, at + 0.6, 0.5, 2.0, 2.0, 900.0 * k))
        plan.cues.append(Cue("shout", sec, at + 0.4, 0.4, 0.5, 1.0, 120.0 * k))
    elif m.kind == "card":  # the carded side's fans protest at the referee; the others jeer
        red = m.outcome in {"red", "second_yellow"}
        plan.cues.append(Cue("whistle", other, at - 2.0, 0.3, 1.2, 1.2, 30.0 * k))
        plan.cues.append(Cue("boo", other, at - 1.8, 0.5, 1.0, 1.0, 120.0 * k))
        hold, decay, peak = (6.0, 5.0, 520.0) if red else (3.0, 3.0, 380.0)
        plan.cues.append(Cue("boo", sec, at + 0.4, 1.0, hold, decay, peak * k))
        plan.cues.append(Cue("whistle", sec, at + 0.5, 0.8, 5.0 if red else 3.0, 3.0, (75.0 if red else 50.0) * k))
        plan.cues.append(Cue("shout", other, at + 0.3, 0.4, 0.5, 1.0, (260.0 if red else 60.0) * k))
        if red:
            plan.cues.append(Cue("clap", other, at + 1.0, 0.5, 2.0, 2.0, 900.0 * k))
    elif m.kind == "var":  # a long wait, then a decision one side cheers and the other boos
        length = (m.duration_ms or 0) / 1000
        decided = at + length
        for s in (0, 1):
            plan.cues.append(Cue(_TALK_GAIN, s, at, 2.0, max(length - 2.0, 0.0), 1.0, 0.5))
            plan.cues.append(Cue("whistle", s, at + 2.0, 2.0, max(length - 4.0, 0.0), 1.0, 12.0 * k))
        plan.cues.append(Cue("boo", other, at + 1.0, 2.0, max(length - 3.0, 0.0), 1.0, 90.0 * k))
        winner, loser = (sec, other) if m.outcome == "confirmed" else (other, sec)
        plan.cues.append(Cue("shout", winner, decided + 0.3, 0.5, 2.0, 4.0, 520.0 * k, curve=0.7))
        plan.cues.append(Cue("clap", winner, decided + 2.0, 1.0, 3.0, 3.0, 900.0 * k))
        plan.cues.append(Cue("boo", loser, decided + 0.5, 1.0, 4.0, 4.0, 420.0 * k))
        plan.cues.append(Cue("whistle", loser, decided + 0.6, 1.0, 3.0, 3.0, 55.0 * k))
    elif m.kind == "penalty":
        plan.cues.append(Cue("shout", sec, at + 0.3, 0.4, 1.0, 2.0, 360.0 * k, curve=0.7))
        plan.cues.append(Cue("boo", other, at + 0.5, 0.8, 3.0, 3.0, 380.0 * k))
        plan.cues.append(Cue("whistle", other, at + 0.5, 0.8, 3.0, 3.0, 60.0 * k))
    elif m.kind == "substitution":
        plan.cues.append(Cue("clap", sec, at + 0.3, 1.0, 3.0, 2.0, 750.0 * k))
