"""Emotion-window sequences for composer tests: a scripted crowd, window by window."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from streams.context import STATES

HOP_MS = 1000
LENGTH_MS = 3000


@dataclass(frozen=True)
class Spell:
    """The crowd from ``start_s`` to ``end_s`` (match seconds of ``period``)."""

    start_s: int
    end_s: int
    state: str
    arousal: float
    valence: float
    chant_bpm: float | None = None
    events: Sequence[tuple[int, str, str]] = field(default_factory=tuple)  # (second, type, side)


def emotion_windows(match_id: str, spells: Sequence[Spell], *, period: str = "FIRST_HALF",
                    wall_start_ms: int = 1_700_000_000_000) -> list[dict[str, Any]]:
    """EmotionWindow records (revision 0) for the spells, hop 1 s, length 3 s, in order.

    An event at second ``s`` appears in every window that covers ``s`` (as the join does).
    """
    windows = []
    events = [(second, kind, side) for spell in spells for second, kind, side in spell.events]
    for spell in spells:
        for start_s in range(spell.start_s, spell.end_s):
            start_ms = start_s * 1000
            probabilities = {s: 0.02 for s in STATES}
            probabilities[spell.state] = 1.0 - 0.02 * (len(STATES) - 1)
            refs = [
                {"event_id": f"{match_id}-{kind}-{second}", "type": kind, "side": side,
                 "clock": {"period": period, "ms": second * 1000}}
                for second, kind, side in events if start_ms <= second * 1000 < start_ms + LENGTH_MS
            ]
            windows.append({
                "match_id": match_id, "clock": {"period": period, "ms": start_ms}, "length_ms": LENGTH_MS,
                "revision": 0, "arousal": spell.arousal, "valence": spell.valence, "state": spell.state,
                "probabilities": probabilities, "tempo_bpm": spell.chant_bpm, "loudness_rel_db": 0.0,
                "events": refs, "wall_time_ms": wall_start_ms + start_ms + LENGTH_MS + 40,
                "audio_wall_time_ms": wall_start_ms + start_ms + LENGTH_MS, "model_version": "test",
            })
    return windows
