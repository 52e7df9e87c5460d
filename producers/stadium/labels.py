"""Ground truth of the synthetic stadium: what state the crowd is in, and when.

The emotion model learns from the stadium's own plan (:func:`~producers.stadium.crowd.crowd_plan`)
rather than from a person listening: at any moment the plan says how many grains per second
each *section* (home, away) starts in each *layer* (talk, shouts, screams, "ooh"s, groans,
boos, whistles, claps) and which chants are sung. From those rates this module estimates
how much of what the microphones hear comes from each kind of reaction, and names the
crowd's state from the reaction that dominates.

How a label is made, for a stretch of audio ``[t0, t1)`` (a feature window):

1. **Audible power per reaction.** The plan's rates are averaged over the stretch (from
   half a second before it: grains last about a second and the room rings on). The rates
   of a plan with no moments are subtracted, leaving each moment's *excess*. A rate
   becomes power at the microphone as ``rate x layer gain^2 x mean grain energy x
   audibility of the section`` (the renderer's gains; grain energies measured on the grain
   banks; the away end is ~2 dB less audible than the home stands, from the room's
   impulse responses). Reactions: ``cheer`` (shouts + screams), ``ooh``, ``groan``,
   ``boo`` (boos + fingers-in-mouth whistles), ``clap`` and ``chant`` (sung notes and the
   chant's claps), each per section.
2. **Loudness.** The murmur of a full stadium doing nothing (talk and the odd shout, clap
   and whistle) is the reference, 0 dB. ``level_db`` is the stretch's total power against
   it (hushes and half-time lulls are below 0, a home goal roar ~+20 dB) and
   ``arousal = 1 / (1 + exp(-(level_db - 8) / 4))``: 0.12 for the murmur, 0.5 for a chant at
   +8 dB, 0.95 for a goal roar.
3. **State**, from the home crowd's point of view (the venue's crowd, the one the music
   plays for):

   * the excess is less than the murmur's own power (under +3 dB): **CALM** — also
     hushes, lulls and the talkative buzz after a goal (a real stadium's murmur wanders by
     a few dB with nothing happening, so a smaller excess is no reaction anyone hears);
   * otherwise the largest reaction decides: ``chant`` -> **CHANTING**; ``boo`` ->
     **ANGER**; ``groan`` -> **DISAPPOINTMENT**; ``ooh`` -> **ANTICIPATION** (attacks building
     up, the held breath of a near miss); ``clap`` -> **EXCITEMENT** (applause);
   * ``cheer`` mostly from the home section: **CELEBRATION** when it is big (25 times the
     murmur's power, ~+14 dB: goals, a goal confirmed by VAR, a penalty awarded, the final
     whistle of a win), else **EXCITEMENT** (kick-off cheers, saves, a good tackle);
   * ``cheer`` mostly from the away section and at least 8 times the murmur (~+9.5 dB, an
     away goal): **DISAPPOINTMENT** — the home crowd has just conceded, its groan is under
     the away end's roar. Smaller away cheers are **EXCITEMENT**.

   Labelled *by sound* (``window_labels(..., by_sound=True)``, how the emotion model is
   taught), a cheer is a cheer from whichever end: no microphone can tell whose goal it was.

4. **Valence** in [-1, 1]: the power-weighted mean of each reaction's valence for the
   home crowd, with the murmur counted as neutral so that faint reactions stay near 0:
   home cheer +0.8, away cheer -0.5, home claps +0.5, away claps 0, home "ooh" +0.2, away
   "ooh" -0.2, home groans -0.6, away groans +0.2, boos and whistles -0.8 from anyone,
   home chant +0.4, away chant -0.1.

What the labels cannot know: the stadium's random grains (a label follows the plan's
expected rates, not the particular voices that happened to start), and anything a real
crowd feels but does not voice.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import lru_cache

import numpy as np

from producers.stadium.chants import tune
from producers.stadium.crowd import LAYERS, SECTIONS, CrowdPlan, crowd_plan
from producers.stadium.script import MatchScript

__all__ = [
    "REACTIONS",
    "CrowdLabel",
    "LabelPlan",
    "crowd_state_at",
    "label_plan",
    "window_labels",
]

# Mean energy of one grain of each layer (RMS 1 while sounding, so: its length in s),
# measured on the grain banks of seeds 0 and 7 at 48 kHz.
_GRAIN_ENERGY_S = {
    "talk": 0.93, "shout": 0.79, "scream": 0.69, "ooh": 1.45, "groan": 1.06, "boo": 1.51, "whistle": 0.89, "clap": 0.0205,
}
# The renderer's amplitude per layer (render._LAYER_GAIN) and for chant voices.
_LAYER_GAIN = {
    "talk": 0.22, "shout": 1.15, "scream": 0.8, "ooh": 0.55, "groan": 0.5, "boo": 0.45, "whistle": 1.1, "clap": 0.5,
}
_CHANT_VOICES, _CHANT_CLAPS, _CHANT_GAIN = 220.0, 150.0, 0.8
# Energy of each section's path to a mono microphone (sum of the impulse response squared,
# with home fans split between the near and far stands), relative to the home stands.
_AUDIBILITY = (1.0, 0.65)

REACTIONS = ("cheer", "ooh", "groan", "boo", "clap", "chant")
_LAYERS_OF = {"cheer": ("shout", "scream"), "ooh": ("ooh",), "groan": ("groan",), "boo": ("boo", "whistle"),
              "clap": ("clap",)}
_STATE_OF = {"chant": "CHANTING", "boo": "ANGER", "groan": "DISAPPOINTMENT", "ooh": "ANTICIPATION", "clap": "EXCITEMENT"}
# Valence of each reaction for the home crowd: (made by the home section, by the away section).
_VALENCE = {
    "cheer": (0.8, -0.5), "clap": (0.5, 0.0), "ooh": (0.2, -0.2), "groan": (-0.6, 0.2), "boo": (-0.8, -0.8),
    "chant": (0.4, -0.1),
}
CALM_EXCESS = 1.0  # excess power, in murmurs, below which the crowd is calm (+3 dB)
BIG_HOME_CHEER = 25.0  # home cheer, in murmurs, from which it is a celebration
BIG_AWAY_CHEER = 8.0  # away cheer, in murmurs, from which the home crowd has conceded
_CHEER = REACTIONS.index("cheer")
_LEAD_S = 0.5  # grains heard in a window started up to this long before it
_STEP_S = 0.05  # s between evaluations of the plan's rates


@dataclass(frozen=True)
class CrowdLabel:
    """The crowd's state over a stretch of audio, and the numbers it was made from."""

    state: str  # a CrowdState symbol
    arousal: float  # 0..1
    valence: float  # -1..1
    level_db: float  # total audible power against a full stadium's idle murmur
    reactions: dict[str, tuple[float, float]]  # excess power per reaction (home, away), in murmurs


@dataclass(frozen=True)
class LabelPlan:
    """The plan of a script and the same plan with no moments (its idle crowd)."""

    script: MatchScript
    plan: CrowdPlan
    idle: CrowdPlan
    murmur: float  # power of the idle murmur of a full stadium in play


def label_plan(script: MatchScript) -> LabelPlan:
    """Precompute what :func:`window_labels` needs for ``script`` (cheap: no audio)."""
    plan = crowd_plan(script)
    idle = replace(plan, cues=[], chants=[])
    return LabelPlan(script=script, plan=plan, idle=idle, murmur=_murmur_power())


def _murmur_power() -> float:
    """Audible power of a full stadium's idle murmur in play (talk rate and idle layers at
    their base level, no drift)."""
    from producers.stadium.crowd import _IDLE, TALK_RATE

    power = TALK_RATE * _grain_power("talk")
    return power + sum(rate * _grain_power(layer) for layer, rate in _IDLE.items())


def _grain_power(layer: str) -> float:
    return _LAYER_GAIN[layer] ** 2 * _GRAIN_ENERGY_S[layer]


@lru_cache(maxsize=64)
def _chant_power(tune_name: str, team: str, tempo: float) -> float:
    """Power of a chant sung by a whole crowd of one section at full voice."""
    the_tune = tune(tune_name, team)
    beat_s = 60.0 / tempo
    cycle_s = the_tune.cycle_beats * beat_s
    sung = sum(min(note.beats * beat_s, 2.35) for note in the_tune.notes) * _CHANT_VOICES * _CHANT_GAIN ** 2
    claps = len(the_tune.claps) * _CHANT_CLAPS * _grain_power("clap")
    return (sung + claps) / cycle_s


def _reaction_powers(lp: LabelPlan, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Excess power per (reaction, section) at times ``t`` (s), and the total power,
    both in units of the idle murmur: shapes (len(REACTIONS), 2, len(t)) and (len(t),)."""
    full = lp.plan.rates(t)
    idle = lp.idle.rates(t)
    gains = np.array([_grain_power(layer) for layer in LAYERS])[:, None, None]
    audible = np.asarray(_AUDIBILITY)[None, :, None]
    power = full * gains * audible
    excess = np.maximum(full - idle, 0.0) * gains * audible
    out = np.zeros((len(REACTIONS), len(SECTIONS), len(t)))
    for r, name in enumerate(REACTIONS[:-1]):
        for layer in _LAYERS_OF[name]:
            out[r] += excess[LAYERS.index(layer)]
    chant = REACTIONS.index("chant")
    for c in lp.plan.chants:
        inside = (t >= c.start_s) & (t < c.end_s)
        if not inside.any():
            continue
        joined = np.minimum(1.0, 0.3 + 0.7 * (t - c.start_s) / 4.0) * np.minimum(1.0, (c.end_s - t) / 2.0)
        share = lp.plan.shares[c.section]
        level = _chant_power(c.tune, c.team, c.tempo) * share * c.intensity * _AUDIBILITY[c.section]
        out[chant, c.section] += np.where(inside, level * np.clip(joined, 0.0, 1.0), 0.0)
    total = power.sum(axis=(0, 1)) + out[chant].sum(axis=0)
    return out / lp.murmur, total / lp.murmur


def window_labels(source: MatchScript | LabelPlan, starts_ms: Sequence[int] | np.ndarray,
                  length_ms: int, *, by_sound: bool = False) -> list[CrowdLabel]:
    """Labels of the windows ``[start, start + length_ms)`` (ms from the start of the audio).

    Parameters
    ----------
    source : MatchScript or LabelPlan
        The match (a :class:`LabelPlan` from :func:`label_plan` saves recomputing the plan).
    starts_ms : sequence of int
        Window starts, ms of audio time (not match time: add the period's start).
    length_ms : int
        Window length, ms.
    by_sound : bool
        Label what a microphone can tell: a cheer is a cheer, whichever end it comes from (an
        away goal's roar is CELEBRATION, not the home crowd's DISAPPOINTMENT, and warm). The
        emotion model is taught this way; the stream worker's match context (a GOAL by the away
        side) turns the roar into the home crowd's disappointment.

    Returns
    -------
    list of CrowdLabel, one per window.
    """
    lp = source if isinstance(source, LabelPlan) else label_plan(source)
    starts = np.asarray(starts_ms, dtype=np.float64) / 1000.0
    if not len(starts):
        return []
    # One grid of _STEP_S over everything the windows cover; each window averages its slice.
    first = float(starts.min()) - _LEAD_S
    steps = int(np.ceil((float(starts.max()) + length_ms / 1000.0 - first) / _STEP_S))
    grid = first + (np.arange(steps) + 0.5) * _STEP_S
    reactions, total = _reaction_powers(lp, np.clip(grid, 0.0, max(lp.plan.duration_s - 1e-3, 0.0)))
    cum_r = np.concatenate([np.zeros(reactions.shape[:2] + (1,)), np.cumsum(reactions, axis=-1)], axis=-1)
    cum_t = np.concatenate([[0.0], np.cumsum(total)])
    lo = np.round((starts - _LEAD_S - first) / _STEP_S).astype(int)
    hi = np.round((starts + length_ms / 1000.0 - first) / _STEP_S).astype(int)
    labels = []
    for a, b in zip(lo.tolist(), hi.tolist(), strict=True):
        count = max(b - a, 1)
        window = (cum_r[..., b] - cum_r[..., a]) / count
        if by_sound:
            window[_CHEER] = (window[_CHEER].sum(), 0.0)
        labels.append(_label(window, float(cum_t[b] - cum_t[a]) / count))
    return labels


def crowd_state_at(script: MatchScript | LabelPlan, t_ms: int, *, length_ms: int = 1000) -> tuple[str, float, float]:
    """``(state, arousal, valence)`` of the crowd around audio time ``t_ms`` (ms from the start
    of the audio): the label of the stretch ``[t_ms, t_ms + length_ms)``."""
    label = window_labels(script, [t_ms], length_ms)[0]
    return label.state, label.arousal, label.valence


def _label(reactions: np.ndarray, total: float) -> CrowdLabel:
    level_db = 10.0 * float(np.log10(max(total, 1e-6)))
    arousal = float(1.0 / (1.0 + np.exp(-(level_db - 8.0) / 4.0)))
    excess = float(reactions.sum())
    weighted = sum(_VALENCE[name][s] * reactions[r, s] for r, name in enumerate(REACTIONS) for s in range(2))
    valence = float(np.clip(weighted / (excess + 1.0), -1.0, 1.0))
    summary = {name: (float(reactions[r, 0]), float(reactions[r, 1])) for r, name in enumerate(REACTIONS)}
    if excess < CALM_EXCESS:
        state = "CALM"
    else:
        per_reaction = reactions.sum(axis=1)
        name = REACTIONS[int(np.argmax(per_reaction))]
        if name == "cheer":
            home, away = reactions[REACTIONS.index("cheer")]
            if home >= away:
                state = "CELEBRATION" if home >= BIG_HOME_CHEER else "EXCITEMENT"
            else:
                state = "DISAPPOINTMENT" if away >= BIG_AWAY_CHEER else "EXCITEMENT"
        else:
            state = _STATE_OF[name]
    return CrowdLabel(state=state, arousal=arousal, valence=valence, level_db=level_db, reactions=summary)
