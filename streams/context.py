"""Match context shapes what the crowd's sound means: pure rules, applied after the model.

The model hears the stadium; the events say what happened. The crowd of a stadium is
mostly home supporters, so the emotion stream speaks for them (valence is the home
crowd's): a roar after a home goal is celebration; the same roar after an away goal is the
away end, while the home crowd is disappointed. Rules, each fading with time since the
event (``tau`` 15 s):

=====================  ==========================================================
event (side credited)  effect on a window the crowd is reacting in
=====================  ==========================================================
GOAL home              CELEBRATION if the crowd is loud; valence up to +0.8
GOAL away              CELEBRATION/EXCITEMENT heard becomes DISAPPOINTMENT; valence down
SHOT / SAVE home       a near miss: DISAPPOINTMENT weight up (the groan), valence down a bit
SHOT away              relief: valence up a little
CARD home              ANGER weight up, valence down; CARD away: valence up a little
VAR_REVIEW             ANTICIPATION weight up, arousal up (the wait)
PENALTY_AWARDED        home: EXCITEMENT; away: ANGER
any event coming       within ``anticipate`` after the window: ANTICIPATION weight up
=====================  ==========================================================
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["ContextResult", "STATES", "apply_context"]

# The CrowdState symbols of schemas/EmotionWindow.avsc; also the emotion model's output order.
STATES: tuple[str, ...] = ("CALM", "ANTICIPATION", "EXCITEMENT", "CELEBRATION", "DISAPPOINTMENT", "ANGER", "CHANTING")
_TAU_MS = 15_000.0


@dataclass(frozen=True)
class ContextResult:
    state: str
    probabilities: dict[str, float]
    arousal: float
    valence: float


def _boost(probabilities: dict[str, float], state: str, weight: float) -> None:
    probabilities[state] = probabilities.get(state, 0.0) + weight


def apply_context(*, probabilities: dict[str, float], arousal: float, valence: float,
                  events: Sequence[dict[str, Any]], window_start_ms: int, window_end_ms: int) -> ContextResult:
    """The model's view of a window adjusted by the events in or near it.

    ``events`` are MatchEvent records of the window's period; times are the period's ms.
    Deterministic: the result depends only on the arguments, never on arrival order
    (events are applied sorted by time and id).
    """
    probs = {state: float(probabilities.get(state, 0.0)) for state in STATES}
    loud = arousal
    for event in sorted(events, key=lambda e: (e["clock"]["ms"], e["event_id"])):
        at = event["clock"]["ms"]
        if at >= window_end_ms:  # coming soon: the crowd sees it coming
            _boost(probs, "ANTICIPATION", 0.25)
            arousal = max(arousal, min(1.0, arousal + 0.1))
            continue
        fade = math.exp(-max(0, window_start_ms - at) / _TAU_MS)
        kind, side = event["type"], event["side"]
        home = side == "HOME"
        if kind == "GOAL":
            if home:
                if loud > 0.4:
                    _boost(probs, "CELEBRATION", 1.5 * fade)
                valence = valence + (0.8 - valence) * fade
                arousal = max(arousal, 0.6 * fade + arousal * (1 - fade))
            else:
                moved = probs["CELEBRATION"] + 0.5 * probs["EXCITEMENT"]
                probs["CELEBRATION"] -= probs["CELEBRATION"] * fade
                probs["EXCITEMENT"] -= 0.5 * probs["EXCITEMENT"] * fade
                _boost(probs, "DISAPPOINTMENT", moved * fade + 0.3 * fade)
                valence = valence + (-0.6 - valence) * fade
        elif kind in ("SHOT", "SAVE"):
            near_miss = (kind == "SHOT" and home) or (kind == "SAVE" and not home)
            if near_miss:
                _boost(probs, "DISAPPOINTMENT", 0.3 * fade)
                valence -= 0.2 * fade
            else:
                valence += 0.1 * fade
        elif kind == "CARD":
            if home:
                _boost(probs, "ANGER", 0.4 * fade)
                valence -= 0.3 * fade
            else:
                valence += 0.1 * fade
        elif kind == "VAR_REVIEW":
            _boost(probs, "ANTICIPATION", 0.4 * fade)
            arousal = max(arousal, 0.5 * fade)
        elif kind == "PENALTY_AWARDED":
            _boost(probs, "EXCITEMENT" if home else "ANGER", 0.4 * fade)
            valence += (0.3 if home else -0.3) * fade
    total = sum(max(0.0, p) for p in probs.values()) or 1.0
    probs = {state: round(max(0.0, p) / total, 6) for state, p in probs.items()}
    state = max(STATES, key=lambda s: (probs[s], -STATES.index(s)))
    return ContextResult(
        state=state, probabilities=probs,
        arousal=round(min(1.0, max(0.0, arousal)), 6), valence=round(min(1.0, max(-1.0, valence)), 6),
    )
