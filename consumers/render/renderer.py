"""One match's music as audio: parts scheduled at sample positions, mixed, mastered, pulled.

The composer schedules each bar (and stinger) at its start sample; the renderer synthesizes
it, adds the hall reverb and overlap-adds it on a mix bus; the emitter pulls mastered int16
blocks of any size. Nothing here knows about Kafka.

Restartable by design: the state names only what the future output depends on (the cursor,
the Master's state, and the parts whose audio still reaches beyond the cursor), so it stays
small and JSON-able. :meth:`MusicRenderer.from_state` renders those parts again, which gives
the same bytes (deterministic synth, linear reverb, sums in the same order), and the next
pull is byte-identical to what an uninterrupted renderer would have produced.

The output is the mix delayed by :data:`~consumers.render.mastering.LATENCY` samples (the
true-peak limiter's look-ahead): a part scheduled at sample ``s`` is heard from output
sample ``s + LATENCY``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from consumers.music.types import Part
from consumers.render.mastering import LATENCY, Master
from consumers.render.mixbus import MixBus
from consumers.render.partjson import part_from_json, part_to_json
from consumers.render.reverb import apply_reverb
from consumers.render.synth import SoundFontSynth

__all__ = ["LATENCY", "MusicRenderer", "part_from_json", "part_to_json"]

STATE_VERSION = 1


@dataclass(frozen=True)
class _Scheduled:
    start: int
    tempo_bpm: float
    part: Part
    end: int  # first sample after its rendered audio (reverb tail included)


class MusicRenderer:
    """Mix bus and mastering for one match; the synth is shared (one per thread)."""

    def __init__(self, synth: SoundFontSynth, *, master: Master | None = None, reverb: bool = True,
                 tail_max_s: float = 4.0, cursor: int = 0) -> None:
        self._synth = synth
        self._master = master or Master()
        self._reverb = reverb
        self._tail_max_s = float(tail_max_s)
        self._bus = MixBus(cursor)
        self._scheduled: list[_Scheduled] = []

    @property
    def cursor(self) -> int:
        """Samples pulled so far; the earliest sample a part may still be scheduled at."""
        return self._bus.cursor

    @property
    def horizon(self) -> int:
        """First sample after all scheduled audio (tails included); the cursor if none is pending."""
        return self._bus.end

    def render(self, part: Part, tempo_bpm: float) -> np.ndarray:
        """The audio ``part`` adds to the mix: dry synth plus reverb, float32 (n, 2)."""
        dry = self._synth.render_part(part, tempo_bpm=tempo_bpm, tail_max_s=self._tail_max_s)
        return apply_reverb(dry) if self._reverb else dry

    def schedule(self, start_sample: int, part: Part, tempo_bpm: float) -> None:
        """Render ``part`` at ``tempo_bpm`` and add it to the mix from ``start_sample`` (>= cursor)."""
        if isinstance(start_sample, bool) or not isinstance(start_sample, (int, np.integer)):
            raise TypeError(f"start_sample must be an int, got {start_sample!r}")
        start_sample = int(start_sample)
        if start_sample < self.cursor:
            raise ValueError(f"start_sample {start_sample} is before the cursor {self.cursor}: already emitted")
        if not tempo_bpm > 0:
            raise ValueError(f"tempo must be > 0 BPM, got {tempo_bpm}")
        self._add(start_sample, part, float(tempo_bpm))

    def _add(self, start: int, part: Part, tempo_bpm: float) -> None:
        audio = self.render(part, tempo_bpm)
        if not np.any(audio):
            return  # a silent part changes nothing and need not be remembered
        self._bus.add(start, audio)
        self._scheduled.append(_Scheduled(start, tempo_bpm, part, start + len(audio)))

    def hold_gain(self, until_sample: int) -> None:
        """Keep the mastering's make-up gain from falling until mix sample ``until_sample``."""
        self._master.hold(until_sample)

    def pull(self, n_samples: int) -> np.ndarray:
        """The next ``n_samples`` of mastered music, int16 (n, 2); silence where nothing plays."""
        if n_samples < 0:
            raise ValueError(f"cannot pull {n_samples} samples")
        out = self._master.process(self._bus.take(n_samples))
        cursor = self.cursor
        self._scheduled = [s for s in self._scheduled if s.end > cursor]
        return out

    def to_state(self) -> dict[str, Any]:
        """JSON-able state: cursor, Master state and the parts still sounding beyond the cursor."""
        return {
            "version": STATE_VERSION,
            "cursor": self.cursor,
            "reverb": self._reverb,
            "tail_max_s": self._tail_max_s,
            "master": self._master.to_state(),
            "parts": [{"start": s.start, "tempo_bpm": s.tempo_bpm, "part": part_to_json(s.part)}
                      for s in self._scheduled],
        }

    @classmethod
    def from_state(cls, state: dict[str, Any], synth: SoundFontSynth) -> MusicRenderer:
        """A renderer that continues exactly where the one that wrote ``state`` was."""
        if state.get("version") != STATE_VERSION:
            raise ValueError(f"unknown MusicRenderer state version {state.get('version')!r}")
        renderer = cls(synth, master=Master.from_state(state["master"]), reverb=bool(state["reverb"]),
                       tail_max_s=float(state["tail_max_s"]), cursor=int(state["cursor"]))
        if renderer._master.position != renderer.cursor:
            raise ValueError("inconsistent state: the Master's position is not the renderer's cursor")
        # Same parts, same order: the bus sums come out bit for bit as before.
        for entry in state["parts"]:
            renderer._add(int(entry["start"]), part_from_json(entry["part"]), float(entry["tempo_bpm"]))
        return renderer
