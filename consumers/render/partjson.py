"""A Part as plain JSON, so a renderer's state can name the parts it must render again.

Lists instead of objects for notes and controls keep the state small (a bar has tens of
notes); the round trip is exact, so a re-rendered part gives the same bytes.
"""

from __future__ import annotations

from typing import Any

from consumers.music.types import Note, Part

__all__ = ["part_from_json", "part_to_json"]


def part_to_json(part: Part) -> dict[str, Any]:
    """``part`` as a JSON-able dict; notes are [tick, duration, channel, pitch, velocity, chromatic]."""
    return {
        "notes": [[n.tick, n.duration_ticks, n.channel, n.pitch, n.velocity, n.chromatic] for n in part.notes],
        "programs": {str(ch): [bank, program] for ch, (bank, program) in sorted(part.programs.items())},
        "length_ticks": part.length_ticks,
        "controls": [list(c) for c in part.controls],
    }


def part_from_json(d: dict[str, Any]) -> Part:
    """The inverse of :func:`part_to_json`."""
    try:
        return Part(
            notes=tuple(Note(int(t), int(dur), int(ch), int(p), int(v), bool(c)) for t, dur, ch, p, v, c in d["notes"]),
            programs={int(ch): (int(bp[0]), int(bp[1])) for ch, bp in d["programs"].items()},
            length_ticks=int(d["length_ticks"]),
            controls=tuple((int(t), int(ch), int(cc), int(v)) for t, ch, cc, v in d["controls"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"not a serialized Part: {exc}") from exc
