"""One match's music, from emotion windows to control messages and audio chunks (no Kafka).

``MatchScore`` is what the live composer runs per match and what replay runs per clip. It
places each emotion window on the match's music timeline, answers match events with
stingers, and advances the music beat by beat as far as the crowd has been heard:

* a bar's plan is decided when its first beat is reached (the mood at that moment), so
  preferences and emotions act from the next bar, and key and layer changes land on bars;
* audio is emitted one beat per chunk, so a stinger lands on the first beat that has not
  been emitted yet — within one beat of the window that carried the event;
* emitted audio is never rewritten; a revised window changes only bars still to come;
* when windows stop, the music stops with them (it cannot know the future); when they
  resume after a gap, the bars of the gap are composed with the held-then-decaying mood,
  so the audio stays contiguous in match time — up to a minute of it: after a longer gap
  the music goes on from where it stopped (its match clock jumps), so one window never
  releases more than a minute of music.

Determinism: outputs depend only on the sequence of windows and preferences given, never
on wall-clock time — ``wall_time_ms`` of an output is the venue time its music position
corresponds to, taken from the windows' audio capture times.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np

from consumers.music.arranger import arrange_bar, arrange_pickup, arrange_stinger
from consumers.music.director import Director, DirectorState, MusicPrefs, StingerCue
from consumers.music.midi import part_midi_events
from consumers.music.mood import WindowDigest, digest_window, mood_at
from consumers.music.stingers import stinger_ticks
from consumers.music.types import (
    CHANNELS, MUSIC_CHANNELS, SAMPLE_RATE, STINGERS, TICKS_PER_BEAT, BarPlan, Part, StingerPlan,
)
from consumers.render.mastering import Master, MasterParams
from consumers.render.renderer import MusicRenderer
from consumers.render.synth import SoundFontSynth, ticks_to_samples

__all__ = ["MatchScore", "Output"]

_KEEP_WINDOWS_MS = 20_000  # windows older than this behind the watermark no longer steer the music
# The longest stretch of music one window may release when it resumes after a gap (an encoder
# that was down): the music holds, then settles for this long, and picks up at the new window.
# Composing an hour's gap bar by bar would keep the composer's transaction open for minutes.
_MAX_GAP_FILL_MS = 60_000
# A stinger due this soon after a beat starts goes on that beat: replay lands a goal on a
# bar line to within a few ms, and the stinger belongs on it, not a beat later.
_STINGER_SLACK_MS = 60
_CLIMAX_HOLD_S = 16  # after a home goal the live mastering holds its gain this long
# A finished piece (replay) is mastered as a whole afterwards, so its renderer keeps the mix's
# own dynamics: unity gain, no riding (the live make-up gain would flatten the climax).
_FLAT = MasterParams(max_rise_db_s=0.0, max_fall_db_s=0.0, start_rate_db_s=0.0, ceiling_dbtp=-0.5)


@dataclass(frozen=True)
class Output:
    kind: Literal["control", "audio"]
    record: dict[str, Any]
    part: Part | None = None  # a control's notes (for MIDI files); not part of the record
    sample: int = 0           # first sample of the bar, stinger or chunk in the match's music
    plan: BarPlan | None = None  # a bar's plan (phrase, ramps, theme: for sidecars and tests)


def plan_to_json(plan: BarPlan) -> dict[str, Any]:
    return {**asdict(plan), "layers": list(plan.layers)}


def plan_from_json(data: dict[str, Any]) -> BarPlan:
    return BarPlan(**{**data, "layers": tuple(data["layers"])})


def _ms(sample: int) -> int:
    return sample * 1000 // SAMPLE_RATE


class MatchScore:
    """The music of one match; feed it windows in arrival order, collect its outputs."""

    def __init__(self, match_id: str, *, synth: SoundFontSynth | None = None, hop_ms: int = 1000,
                 flat_mastering: bool = False) -> None:
        self.match_id = match_id
        self.hop_ms = hop_ms
        self.director = Director(match_id)
        self.prefs = MusicPrefs()
        self.windows: list[WindowDigest] = []
        self.anchors: dict[str, list[int]] = {}  # period -> [period_ms, music_ms] of its first window
        self.latest_start_ms: int | None = None
        self.watermark_ms = 0
        self.wall_anchor: list[int] = [0, 0]  # [music_ms, venue wall ms] of the latest window's end
        self.bar = -1               # the bar being played
        self.bar_start = 0          # its first sample
        self.bar_tempo = 0.0
        self.beats_in_bar = 0
        self.next_beat = 0          # next beat of the bar to emit (== beats_in_bar: bar done)
        self.seq = 0                # next audio chunk number
        # Stingers waiting for their beat: [kind, event_id, at_ms, reason] (+ the CueRef of an operator's cue).
        self.pending: list[list[Any]] = []
        self.bar_cues: list[dict[str, Any]] = []  # operator cues waiting for the next bar (hold, release, fades)
        self.cues_seen: list[str] = []  # ids of the latest operator cues taken, so each applies once
        # The operator's fader: the current bar's ramp [from gain, to gain, from sample, to sample], and
        # the fade in progress [target gain, bars left] (a fade moves by equal steps per bar).
        self.fade: list[float] = [1.0, 1.0, 0, 0]
        self.fade_plan: list[float] = [1.0, 0]
        self.plan: BarPlan | None = None   # the plan of the bar being played
        self.climaxes: list[list[Any]] = []  # foresight (replay): [music ms, "home" | "away"] of known goals
        # Replay: a piece with a beginning and an end, [start music ms, end music ms]. Bars
        # before it are composed (so the harmony has settled) but not rendered; its first bar
        # opens on a pickup, its last bar cadences to a final tonic chord, nothing follows.
        self.piece: list[int] | None = None
        self.opening_sample: int | None = None  # the piece's first bar (known one bar ahead)
        self.pickup_sample: int | None = None
        self.final_sample: int | None = None    # its final bar, once decided
        self.renderer = (MusicRenderer(synth, master=Master(_FLAT) if flat_mastering else None)
                         if synth is not None else None)

    # -- state ------------------------------------------------------------------------------
    def to_state(self) -> dict[str, Any]:
        """Everything needed to continue this match's music exactly (JSON-able)."""
        return {
            "director": self.director.state.to_json(), "prefs": self.prefs.to_json(),
            "windows": [w.to_json() for w in self.windows], "anchors": self.anchors,
            "latest_start_ms": self.latest_start_ms, "watermark_ms": self.watermark_ms,
            "wall_anchor": self.wall_anchor, "bar": self.bar, "bar_start": self.bar_start,
            "bar_tempo": self.bar_tempo, "beats_in_bar": self.beats_in_bar, "next_beat": self.next_beat,
            "seq": self.seq, "pending": self.pending, "plan": None if self.plan is None else plan_to_json(self.plan),
            "climaxes": self.climaxes, "piece": self.piece, "opening_sample": self.opening_sample,
            "pickup_sample": self.pickup_sample, "final_sample": self.final_sample,
            "bar_cues": self.bar_cues, "cues_seen": self.cues_seen, "fade": self.fade, "fade_plan": self.fade_plan,
            "renderer": None if self.renderer is None else self.renderer.to_state(),
        }

    @classmethod
    def from_state(cls, match_id: str, state: dict[str, Any], *, synth: SoundFontSynth | None = None,
                   hop_ms: int = 1000) -> MatchScore:
        score = cls(match_id, synth=None, hop_ms=hop_ms)
        score.director = Director(match_id, DirectorState.from_json(state["director"]))
        score.prefs = MusicPrefs.from_json(state["prefs"])
        score.windows = [WindowDigest.from_json(w) for w in state["windows"]]
        score.anchors = {k: list(v) for k, v in state["anchors"].items()}
        score.latest_start_ms = state["latest_start_ms"]
        score.watermark_ms = state["watermark_ms"]
        score.wall_anchor = list(state["wall_anchor"])
        score.bar, score.bar_start, score.bar_tempo = state["bar"], state["bar_start"], state["bar_tempo"]
        score.beats_in_bar, score.next_beat, score.seq = state["beats_in_bar"], state["next_beat"], state["seq"]
        score.pending = [list(p) for p in state["pending"]]
        score.climaxes = [list(c) for c in state.get("climaxes", [])]
        score.piece = state.get("piece")
        score.opening_sample, score.pickup_sample = state.get("opening_sample"), state.get("pickup_sample")
        score.final_sample = state.get("final_sample")
        score.bar_cues = [dict(c) for c in state.get("bar_cues", [])]
        score.cues_seen = list(state.get("cues_seen", []))
        score.fade = list(state.get("fade", [1.0, 1.0, 0, 0]))
        score.fade_plan = list(state.get("fade_plan", [1.0, 0]))
        score.plan = None if state["plan"] is None else plan_from_json(state["plan"])
        if synth is not None:
            # The renderer's future audio is rebuilt from the parts it had scheduled. A
            # control-only state cannot continue audio mid-stream (the composer keeps the
            # states of its output sets apart, so this does not happen there).
            if state["renderer"] is not None:
                score.renderer = MusicRenderer.from_state(state["renderer"], synth)
            elif score.bar < 0:
                score.renderer = MusicRenderer(synth)
            else:
                raise ValueError("this state was made without audio; it cannot continue the match's audio")
        return score

    # -- inputs -----------------------------------------------------------------------------
    def set_prefs(self, prefs: MusicPrefs) -> None:
        """Preferences in force from the next bar."""
        self.prefs = prefs

    def on_window(self, window: dict[str, Any]) -> list[Output]:
        """Take one decoded EmotionWindow; return the control messages and audio it releases."""
        start_ms = self._place(window["clock"]["period"], int(window["clock"]["ms"]))
        if any(w.start_ms == start_ms and w.revision >= int(window["revision"]) for w in self.windows):
            return []  # a revision no newer than the one kept (it arrived late, or again): nothing changes
        digest = digest_window(window, start_ms=start_ms)
        self._remember(digest)
        end_ms = digest.end_ms
        if end_ms >= self.wall_anchor[0]:
            self.wall_anchor = [end_ms, int(window["audio_wall_time_ms"])]
        for event in digest.events:
            at_ms = self._event_ms(event.period, event.period_ms, fallback=start_ms)
            cue = self.director.stinger_for(event.type, event.side, event.period, event.event_id,
                                            arousal=digest.arousal, at_ms=at_ms,
                                            period_ms=event.period_ms)
            if cue is not None:
                self.pending.append([cue.kind, cue.event_id, at_ms, cue.reason])
        self.watermark_ms = max(self.watermark_ms, end_ms)
        return self._advance()

    def on_cue(self, cue: dict[str, Any]) -> bool:
        """Take one decoded operator Cue; False when its id was taken before (it applies once).

        A stinger sounds on the next beat the music reaches (it ignores the cooldowns: the
        operator asked for it); hold, release and fades take effect from the next bar.
        """
        if cue["cue_id"] in self.cues_seen:
            return False
        self.cues_seen = (self.cues_seen + [cue["cue_id"]])[-128:]
        ref = {"cue_id": cue["cue_id"], "type": cue["type"], "set_by": cue.get("set_by") or ""}
        kind = cue["type"].lower()
        if kind in STINGERS:
            self.pending.append([kind, f"cue:{cue['cue_id']}", -1, f"cue from {ref['set_by'] or 'an operator'}", ref])
        else:
            self.bar_cues.append({**ref, "bars": int(cue.get("bars") or 2)})
        return True

    def gain_at(self, sample: int) -> float:
        """The operator's fader at ``sample`` of the match's music (1.0 unless faded)."""
        g0, g1, s0, s1 = self.fade
        if sample >= s1:
            return float(g1)
        if sample <= s0:
            return float(g0)
        return float(g0 + (g1 - g0) * (sample - s0) / (s1 - s0))

    def foresee(self, events: list[dict[str, Any]], *, climax_types: frozenset[str] = frozenset({"GOAL"})) -> None:
        """Replay's foresight: the events still to come, known in advance.

        Their stingers are queued now, so they land exactly on their beat, and the ones of
        ``climax_types`` become climaxes the music builds towards. Needs the period of each
        event to be placed already (feed a window of it first); others are ignored.
        """
        for event in sorted(events, key=lambda e: (e["clock"]["ms"], e["event_id"])):
            period, period_ms = event["clock"]["period"], int(event["clock"]["ms"])
            if period not in self.anchors:
                continue
            at_ms = self._event_ms(period, period_ms, fallback=0)
            cue = self.director.stinger_for(event["type"], event["side"], period, event["event_id"],
                                            arousal=1.0, at_ms=at_ms, period_ms=period_ms)
            if cue is not None:
                self.pending.append([cue.kind, cue.event_id, at_ms, cue.reason])
            if event["type"] in climax_types and event["side"] in ("HOME", "AWAY"):
                self.climaxes.append([at_ms, event["side"].lower()])

    def shape_piece(self, start_ms: int, end_ms: int) -> None:
        """Replay: make the music from ``start_ms`` to ``end_ms`` (music ms) a piece of its own —
        a pickup into its first bar line at or after ``start_ms``, a cadence into a final tonic
        bar on the first bar line at or after ``end_ms``, nothing rendered outside it."""
        if end_ms <= start_ms:
            raise ValueError(f"a piece must end after it starts: {start_ms}..{end_ms}")
        self.piece = [int(start_ms), int(end_ms)]

    def run_until(self, music_ms: int) -> list[Output]:
        """Replay: compose on to ``music_ms`` even where no window was heard (the mood holds,
        then settles), so a piece's last bar and its tail are complete."""
        self.watermark_ms = max(self.watermark_ms, music_ms)
        return self._advance()

    # -- the music timeline -------------------------------------------------------------------
    def _place(self, period: str, period_ms: int) -> int:
        anchor = self.anchors.get(period)
        if anchor is None:
            # A new period: the crowd's audio runs on through breaks, so it starts one hop
            # after the latest window of the previous one.
            music_ms = 0 if self.latest_start_ms is None else self.latest_start_ms + self.hop_ms
            anchor = self.anchors[period] = [period_ms, music_ms]
        start = anchor[1] + period_ms - anchor[0]
        if self.latest_start_ms is not None and start > self.watermark_ms + _MAX_GAP_FILL_MS:
            # A long gap: the music goes on from where it is; the period's later windows move with it.
            anchor[:] = [period_ms, self.watermark_ms + _MAX_GAP_FILL_MS]
            start = anchor[1]
        self.latest_start_ms = start if self.latest_start_ms is None else max(self.latest_start_ms, start)
        return start

    def _event_ms(self, period: str, period_ms: int, *, fallback: int) -> int:
        anchor = self.anchors.get(period)
        return fallback if anchor is None else anchor[1] + period_ms - anchor[0]

    def _remember(self, digest: WindowDigest) -> None:
        """Keep ``digest`` in place of any lower revision of its window (on_window drops the rest)."""
        kept = [w for w in self.windows if w.start_ms != digest.start_ms]
        kept.append(digest)
        horizon = self.watermark_ms - _KEEP_WINDOWS_MS
        self.windows = sorted((w for w in kept if w.end_ms >= horizon), key=lambda w: w.start_ms)

    def clock_at(self, music_ms: int) -> dict[str, Any]:
        """The match clock of a music position (the latest period that began before it)."""
        best = None
        for period, (period_ms, start) in self.anchors.items():
            if start <= music_ms and (best is None or start >= best[2]):
                best = (period, period_ms, start)
        if best is None:
            period, (period_ms, start) = min(self.anchors.items(), key=lambda item: item[1][1])
            best = (period, period_ms, start)
        return {"period": best[0], "ms": max(0, best[1] + music_ms - best[2])}

    def wall_at(self, music_ms: int) -> int:
        return self.wall_anchor[1] + music_ms - self.wall_anchor[0]

    # -- the music --------------------------------------------------------------------------
    def _beat_start(self, beat: int) -> int:
        return self.bar_start + ticks_to_samples(beat * TICKS_PER_BEAT, self.bar_tempo)

    def _advance(self) -> list[Output]:
        outputs: list[Output] = []
        while True:
            if self.bar < 0 or self.next_beat >= self.beats_in_bar:
                next_start = 0 if self.bar < 0 else self._beat_start(self.beats_in_bar)
                if _ms(next_start) > self.watermark_ms:
                    break
                # Stingers due on this downbeat shape the bar itself (a goal's surge, its key).
                due = self._due(next_start)
                for stinger in due:
                    self.director.stinger_played(stinger[0])
                self._start_bar(next_start, outputs, climax_now=any(s[0] in ("goal", "goal_against") for s in due),
                                stinger_now=bool(due))
                for stinger in due:
                    outputs.append(self._stinger(stinger, next_start, beat=0))
            beat_start = self._beat_start(self.next_beat)
            if _ms(beat_start) > self.watermark_ms:
                break
            for stinger in self._due(beat_start):
                self.director.stinger_played(stinger[0])
                outputs.append(self._stinger(stinger, beat_start, beat=self.next_beat))
            beat_end = self._beat_start(self.next_beat + 1)
            if self.renderer is not None:
                outputs.append(self._audio(beat_start, beat_end - beat_start))
            self.next_beat += 1
        return outputs

    def _due(self, sample: int) -> list[list[Any]]:
        """Pending stingers due at ``sample`` (removed from the queue)."""
        due = [s for s in self.pending if s[2] <= _ms(sample) + _STINGER_SLACK_MS]
        self.pending = [s for s in self.pending if s not in due]
        return due

    def _take_bar_cues(self) -> list[dict[str, Any]]:
        """Apply the operator cues waiting for this bar; return their CueRefs."""
        taken, self.bar_cues = self.bar_cues, []
        for cue in taken:
            kind = cue["type"]
            if kind in ("HOLD", "RELEASE"):
                self.director.state.hold = kind == "HOLD"
            elif kind in ("FADE_OUT", "FADE_IN"):
                self.fade_plan = [0.0 if kind == "FADE_OUT" else 1.0, max(1, cue["bars"])]
        return [{k: cue[k] for k in ("cue_id", "type", "set_by")} for cue in taken]

    def _start_bar(self, start: int, outputs: list[Output], *, climax_now: bool = False,
                   stinger_now: bool = False) -> None:
        self.bar += 1
        cues = self._take_bar_cues()
        at = _ms(start)
        if self.piece is not None and self.opening_sample is None and at >= self.piece[0] - _STINGER_SLACK_MS:
            self.opening_sample = start  # no bar before it: the piece opens on its first downbeat
        exact = start * 1000 / SAMPLE_RATE  # the climax lands on a sample, not on a whole ms
        ahead = sorted((when - exact, side) for when, side in self.climaxes if when > at + _STINGER_SLACK_MS)
        side = ahead[0][1] if ahead else None
        decision = self.director.decide_bar(
            self.bar, mood_at(self.windows, at), self.prefs,
            climax_in_ms=ahead[0][0] if ahead else None,
            climax_side="home" if side in ("home", True) else "away" if side in ("away", False) else None,
            climax_now=climax_now, stinger_now=stinger_now,
            ending_in_ms=None if self.piece is None or self.final_sample is not None else self.piece[1] - at,
            opening=start == self.opening_sample)
        plan = self.plan = decision.plan
        if plan.final and self.final_sample is None:
            self.final_sample = start
        self.bar_start, self.bar_tempo, self.beats_in_bar, self.next_beat = start, plan.tempo_bpm, plan.beats_per_bar, 0
        gain = self.gain_at(start)
        target, bars_left = self.fade_plan
        step = (target - gain) / bars_left if bars_left else 0.0
        self.fade = [gain, round(gain + step, 6), start, self._beat_start(plan.beats_per_bar)]
        self.fade_plan = [target, max(0, bars_left - 1)]
        part = arrange_bar(plan)
        if self._renders(start):
            self.renderer.schedule(start, part, plan.tempo_bpm)
        reason = decision.reason + "".join(f"; {c['type'].lower()} cue from {c['set_by'] or 'an operator'}"
                                           for c in cues)
        outputs.append(Output("control", self._control(plan, reason, part, start, stinger=None, cues=cues),
                              part, start, plan))
        self._prepare_opening(start, plan, outputs)

    def _prepare_opening(self, start: int, plan: BarPlan, outputs: list[Output]) -> None:
        """Replay: when the next bar opens the piece, schedule its pickup in this bar's last beat."""
        if self.piece is None or self.opening_sample is not None:
            return
        bar_end = self._beat_start(plan.beats_per_bar)
        if _ms(bar_end) < self.piece[0] - _STINGER_SLACK_MS:
            return
        self.opening_sample = bar_end
        self.pickup_sample = self._beat_start(plan.beats_per_bar - 1)
        part = arrange_pickup(plan)
        if self.renderer is not None:
            self.renderer.schedule(self.pickup_sample, part, plan.tempo_bpm)
        record = {**self._control(plan, "pickup into the piece", part, self.pickup_sample, stinger=None),
                  "kind": "PICKUP"}
        outputs.append(Output("control", record, part, self.pickup_sample))

    def _stinger(self, pending: list[Any], start: int, *, beat: int) -> Output:
        """Emit a pending stinger [kind, event_id, at_ms, reason] at ``start``, beat ``beat`` of
        the running bar (already played into the director's state by the caller). It is
        voiced on the harmony of the bars it sounds over, which the director commits to."""
        cue = StingerCue(kind=pending[0], event_id=pending[1], reason=pending[3])
        assert self.plan is not None
        st = self.director.state
        bar_ticks = self.plan.beats_per_bar * TICKS_PER_BEAT
        start_tick = beat * TICKS_PER_BEAT
        harmony = self.director.stinger_harmony(cue.kind, self.plan, start_tick=start_tick,
                                                length_ticks=stinger_ticks(cue.kind, start_tick, bar_ticks))
        # The running bar is already written: the stinger steers clear of its passing notes too.
        avoid = tuple((max(0, n.tick - start_tick), n.tick + n.duration_ticks - start_tick, n.pitch % 12)
                      for n in arrange_bar(self.plan).notes
                      if n.channel != CHANNELS["drums"] and n.tick + n.duration_ticks > start_tick)
        plan = StingerPlan(kind=cue.kind, style=self.plan.style, tempo_bpm=self.bar_tempo, key=self.plan.key,
                           mode=self.plan.mode, intensity=max(st.intensity, 0.6), seed=self.plan.seed ^ 0x5EED,
                           harmony=harmony, avoid=avoid)
        part = arrange_stinger(plan)
        if self._renders(start):
            self.renderer.schedule(start, part, self.bar_tempo)
            if cue.kind == "goal":  # the celebration is the loudest moment: the gain may not duck it
                self.renderer.hold_gain(start + _CLIMAX_HOLD_S * SAMPLE_RATE)
        return Output("control", self._control(self.plan, f"stinger {cue.kind}: {cue.reason}", part, start,
                                               stinger=cue.kind, beat=beat, cues=pending[4:]), part, start)

    def _renders(self, start: int) -> bool:
        if self.renderer is None:
            return False
        if self.piece is None:
            return True
        if self.opening_sample is None or start < self.opening_sample:
            return False
        return self.final_sample is None or start <= self.final_sample

    def _control(self, plan: BarPlan, reason: str, part: Part, start: int, *, stinger: str | None, beat: int = 0,
                 cues: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        at_ms = _ms(start)
        return {
            "match_id": self.match_id, "clock": self.clock_at(at_ms), "wall_time_ms": self.wall_at(at_ms),
            "bar": self.bar, "kind": "BAR" if stinger is None else "STINGER", "style": plan.style,
            "tempo_bpm": plan.tempo_bpm, "beats_per_bar": plan.beats_per_bar, "key": plan.key, "mode": plan.mode,
            "chord": plan.chord, "intensity": plan.intensity, "layers": list(plan.layers), "stinger": stinger,
            "reason": reason, "ticks_per_beat": TICKS_PER_BEAT,
            "midi_events": [{"tick": tick, "data": data} for tick, data in part_midi_events(part)],
            "beat": beat, "gain": round(self.gain_at(start), 4), "cues": list(cues or []),
        }

    def _audio(self, start: int, samples: int) -> Output:
        assert self.renderer is not None
        pcm = self.renderer.pull(samples)
        if self.gain_at(start) != 1.0 or self.gain_at(start + samples) != 1.0:
            # The operator's fader, after mastering (so the mastering does not make up for it).
            gains = np.interp(np.arange(start, start + samples), self.fade[2:4], self.fade[0:2])
            pcm = np.round(pcm * gains[:, None]).astype(np.int16)
        at_ms = _ms(start)
        record = {
            "match_id": self.match_id, "clock": self.clock_at(at_ms), "wall_time_ms": self.wall_at(at_ms),
            "seq": self.seq, "first_sample": start, "sample_rate": SAMPLE_RATE, "channels": MUSIC_CHANNELS,
            "samples_per_channel": samples, "encoding": "PCM_S16LE", "payload": pcm.astype("<i2").tobytes(),
        }
        self.seq += 1
        return Output("audio", record, None, start)
