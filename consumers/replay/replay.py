"""``crowdsound replay``: highlight music for a retained match, with foresight.

1. Read the match's events (and the ones the live join called late) from its partition.
2. Take its final emotion windows from crowd.emotions.v1 — or recompute them from
   crowd.audio.v1 with the worker's own code (``--from-audio``).
3. Pick the clips: the editor's ranges, or the best ``--auto N`` highlights.
4. Compose each clip with the live composer's code (``consumers.score.MatchScore``) plus
   foresight: the events to come are known, so the music builds towards a goal and a bar
   line and the stinger land on it.
5. Write per clip a WAV, a MIDI file and a JSON sidecar, then the reel, the timeline PNG
   and the index. Every file is a function of the retained data and the options only.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from consumers.music.director import MusicPrefs
from consumers.music.midi import write_midi_file
from consumers.music.types import SAMPLE_RATE
from consumers.replay.emotions import final_windows, recompute_windows, window_key
from consumers.replay.clip_midi import midi_bars
from consumers.replay.highlights import Highlight, find_highlights, highlight_for_range
from consumers.replay.reader import PartitionReader, RetentionError
from consumers.score import MatchScore, Output
from infra.errors import CrowdsoundError
from infra.progress import Progress
from infra.settings import Settings
from schemas.clock import MatchClock, Period

__all__ = ["ClipResult", "ReplayOptions", "ReplayResult", "replay"]

log = logging.getLogger("crowdsound.replay")

_WARM_MS = 16_000   # music composed before a clip starts, so smoothing and harmony have settled
_TAIL_MS = 6_000    # emotion windows read past a clip's end, so the bar line after it is reached


@dataclass(frozen=True)
class ReplayOptions:
    match_id: str
    out_dir: Path
    auto: int | None = None
    ranges: Sequence[tuple[MatchClock, MatchClock]] = ()
    style: str | None = None
    from_audio: bool = False
    mix_crowd: bool = False
    progress: bool = True
    read_timeout_s: float = 60.0  # no record of a partition still to read for this long: fail, never go on incomplete


@dataclass
class ClipResult:
    rank: int
    name: str
    highlight: Highlight
    files: dict[str, str]
    duration_s: float
    bars: int
    stingers: list[str]


@dataclass
class ReplayResult:
    match_id: str
    out_dir: Path
    clips: list[ClipResult] = field(default_factory=list)
    goals: int = 0
    windows: int = 0
    source: str = "crowd.emotions.v1"
    files: list[str] = field(default_factory=list)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("crowdsound")
    except PackageNotFoundError:
        return "unknown"


def _latest_events(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One record per event id (a re-sent event keeps its id; the latest wins), in match order."""
    by_id = {e["event_id"]: e for e in events}
    return sorted(by_id.values(), key=lambda e: (Period(e["clock"]["period"]).order, e["clock"]["ms"], e["event_id"]))


def _teams(events: list[dict[str, Any]]) -> dict[str, str]:
    teams: dict[str, str] = {}
    for event in events:
        if event.get("team") and event["side"] in ("HOME", "AWAY"):
            teams.setdefault(event["side"].lower(), event["team"])
    return teams


def _clock_label(period: str, ms: int) -> str:
    return str(MatchClock(Period(period), ms))


def replay(settings: Settings, options: ReplayOptions) -> ReplayResult:
    """Run a replay; raises CrowdsoundError with a one-line reason on bad input or missing data."""
    reader = PartitionReader(settings, options.match_id, read_timeout_s=options.read_timeout_s)
    try:
        return _replay(settings, options, reader)
    finally:
        reader.close()


def _replay(settings: Settings, options: ReplayOptions, reader: PartitionReader) -> ReplayResult:
    events = _latest_events(list(reader.read("match.events.v1", "MatchEvent")))
    late_ids = {e["event_id"] for e in reader.read("match.events.late.v1", "MatchEvent")}
    starts = [e["wall_time_ms"] for e in events]
    from_ms = min(starts) - 10 * 60_000 if starts else None
    needed = _needed_span(options)
    stop = _stop_after(needed)

    if options.from_audio:
        frames = reader.read("crowd.audio.v1", "AudioFrame", from_ms=from_ms, stop=stop,
                             progress="recomputing emotions from crowd audio" if options.progress else None)
        windows = recompute_windows(settings, options.match_id, frames, events, late_event_ids=late_ids)
        source = "crowd.audio.v1 (recomputed)"
    else:
        windows = final_windows(reader.read("crowd.emotions.v1", "EmotionWindow", from_ms=from_ms, stop=stop))
        source = "crowd.emotions.v1"
    if not events and not windows:
        raise CrowdsoundError(f"unknown match {options.match_id!r}: no events or emotion windows are retained for it "
                              f"in {settings.topic_prefix or ''}match.events.v1 / crowd.emotions.v1")
    if not windows:
        oldest = reader.oldest_timestamp("crowd.audio.v1" if options.from_audio else "crowd.emotions.v1")
        raise RetentionError(f"match {options.match_id!r} has events but its "
                             f"{'audio' if options.from_audio else 'emotion windows'} are no longer retained"
                             + (f" (oldest retained record: {_iso(oldest)})" if oldest else ""))

    if options.ranges:
        clips = [highlight_for_range(start, end, events) for start, end in options.ranges]
        _check_covered(clips, windows, options)
    else:
        clips = find_highlights(events, windows, count=options.auto or 5)
    result = ReplayResult(match_id=options.match_id, out_dir=options.out_dir, windows=len(windows), source=source,
                          goals=sum(1 for e in events if e["type"] == "GOAL" and e["event_id"] not in late_ids))
    options.out_dir.mkdir(parents=True, exist_ok=True)
    _write_outputs(settings, options, reader, events, windows, clips, result)
    return result


def _needed_span(options: ReplayOptions) -> tuple[tuple[int, int], tuple[int, int]] | None:
    """(first, last) (period order, ms) the clips need, or None for the whole match."""
    if not options.ranges:
        return None
    first = min((s.period.order, max(0, s.ms - _WARM_MS - 5_000)) for s, _ in options.ranges)
    last = max((e.period.order, e.ms + _TAIL_MS + 5_000) for _, e in options.ranges)
    return first, last


def _stop_after(needed: tuple[tuple[int, int], tuple[int, int]] | None):
    if needed is None:
        return None
    last = needed[1]

    def stop(record: dict[str, Any]) -> bool:
        # Stop a little past the last clip: grace and revisions put records slightly out of order.
        order, ms = Period(record["clock"]["period"]).order, int(record["clock"]["ms"])
        return (order, ms) > (last[0], last[1] + 60_000) or order > last[0] + 1
    return stop


def _check_covered(clips: list[Highlight], windows: list[dict[str, Any]], options: ReplayOptions) -> None:
    for clip in clips:
        inside = [w for w in windows if w["clock"]["period"] == clip.period
                  and clip.start_ms - 3_000 <= w["clock"]["ms"] <= clip.end_ms]
        if not inside:
            raise RetentionError(f"no emotion windows of match {options.match_id!r} cover "
                                 f"{clip.start}-{clip.end}: that part of the match was not recorded or is no longer retained")


def _iso(ms: int | None) -> str:
    if ms is None:
        return "unknown"
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


# -- composing a clip -------------------------------------------------------------------------
_RELEASE_S = 0.6     # after the final bar: the last chord's release and the hall, faded to silence
_FADE_OUT_S = 1.0    # the fade that ends a piece (over the final bar's last beat and the release)
_FADE_IN_S = 0.005   # the first samples of a piece (no step from silence, even on a downbeat)


@dataclass
class ComposedClip:
    controls: list[Output]     # the pickup (if any), the bars from the first to the final one, stingers
    audio: np.ndarray          # int16 (n, 2) of the clip, from its pickup to its release
    first_sample: int          # the music sample the audio starts at (the pickup, or the first bar)
    intensity: list[tuple[int, float]]  # (period ms, intensity) per bar
    windows: list[dict[str, Any]]        # the emotion windows it was composed from
    base_ms: int               # period ms of music ms 0 (the first window fed)

    def at_s(self, sample: int) -> float:
        """Seconds into the clip's audio of a music sample."""
        return round((sample - self.first_sample) / SAMPLE_RATE, 3)


def compose_clip(match_id: str, clip: Highlight, windows: list[dict[str, Any]], events: list[dict[str, Any]], *,
                 prefs: MusicPrefs, synth: Any, hop_ms: int) -> ComposedClip:
    """The music of one clip as a piece: a pickup into the first bar line at or after its
    start, a cadence into a final tonic bar on the first bar line at or after its end, and
    the release of that chord."""
    from consumers.render.mastering import LATENCY

    feed = [w for w in windows if w["clock"]["period"] == clip.period
            and clip.start_ms - _WARM_MS <= w["clock"]["ms"] <= clip.end_ms + _TAIL_MS]
    if not feed:
        raise CrowdsoundError(f"no emotion windows around {clip.start}-{clip.end}")
    base = int(feed[0]["clock"]["ms"])  # music ms 0 is the first window
    if clip.start_ms < base and feed[0]["clock"]["ms"] > clip.end_ms:
        raise CrowdsoundError(f"the emotion windows end before {clip.start}")
    score = MatchScore(match_id, synth=synth, hop_ms=hop_ms, flat_mastering=True)
    score.set_prefs(prefs)
    score.shape_piece(max(0, clip.start_ms - base), clip.end_ms - base)
    outputs = list(score.on_window(feed[0]))
    score.foresee([e for e in events if e["clock"]["period"] == clip.period
                   and feed[0]["clock"]["ms"] <= e["clock"]["ms"] <= clip.end_ms])
    for window in feed[1:]:
        outputs.extend(score.on_window(window))
    for _ in range(64):  # past the last window the mood holds: compose on to the final bar
        if score.final_sample is not None:
            break
        outputs.extend(score.run_until(score.watermark_ms + 2_000))
    bars = {o.sample: o for o in outputs if o.kind == "control" and o.record["kind"] == "BAR"}
    if score.final_sample is None or score.opening_sample is None:
        raise CrowdsoundError(f"could not compose an ending for {clip.start}-{clip.end}")
    final = bars[score.final_sample]
    end = final.sample + int(round(final.record["beats_per_bar"] * 60 * SAMPLE_RATE / final.record["tempo_bpm"])) \
        + int(_RELEASE_S * SAMPLE_RATE)
    outputs.extend(score.run_until(end * 1000 // SAMPLE_RATE + 1))
    start = score.pickup_sample if score.pickup_sample is not None else score.opening_sample
    chunks = [o for o in outputs if o.kind == "audio"]
    pcm = np.concatenate([np.frombuffer(o.record["payload"], "<i2").reshape(-1, 2) for o in chunks])
    audio = _shape_edges(pcm[start + LATENCY:end + LATENCY])
    chosen = [o for o in outputs if o.kind == "control" and start <= o.sample <= final.sample
              and o.record["kind"] in ("BAR", "PICKUP")]
    stingers = [o for o in outputs if o.kind == "control" and o.record["kind"] == "STINGER" and start <= o.sample < end]
    return ComposedClip(controls=chosen + stingers, audio=audio, first_sample=start,
                        intensity=[(b.record["clock"]["ms"], float(b.record["intensity"])) for b in chosen
                                   if b.record["kind"] == "BAR"],
                        windows=feed, base_ms=base)


def _shape_edges(pcm: np.ndarray) -> np.ndarray:
    """int16 audio with a few milliseconds of fade-in and a raised-cosine fade to silence at the
    end: the ending's release decays into it, so the piece stops on nothing."""
    audio = pcm.astype(np.float64)
    fade_in = min(len(audio), int(_FADE_IN_S * SAMPLE_RATE))
    audio[:fade_in] *= np.linspace(0.0, 1.0, fade_in, endpoint=False)[:, None]
    fade_out = min(len(audio), int(_FADE_OUT_S * SAMPLE_RATE))
    if fade_out:
        audio[len(audio) - fade_out:] *= (0.5 + 0.5 * np.cos(np.linspace(0.0, np.pi, fade_out)))[:, None]
    return np.rint(audio).astype(np.int16)


# -- outputs ----------------------------------------------------------------------------------
def _clip_name(rank: int, clip: Highlight) -> str:
    kind = clip.reason.split(" ", 1)[0].replace(";", "") or "clip"
    start = _clock_label(clip.period, clip.start_ms).replace(":", "").replace("+", "p").replace(" ", "-")
    return f"{rank:02d}-{start}-{kind}"


def _emotion_summary(windows: list[dict[str, Any]]) -> dict[str, Any]:
    if not windows:
        return {}
    states: dict[str, float] = {}
    for w in windows:
        states[w["state"]] = states.get(w["state"], 0.0) + 1.0
    peak = max(windows, key=lambda w: (w["arousal"], -w["clock"]["ms"]))
    return {
        "windows": len(windows),
        "mean_arousal": round(float(np.mean([w["arousal"] for w in windows])), 3),
        "max_arousal": round(float(peak["arousal"]), 3),
        "peak_at": _clock_label(peak["clock"]["period"], peak["clock"]["ms"]),
        "mean_valence": round(float(np.mean([w["valence"] for w in windows])), 3),
        "states_s": {k: v for k, v in sorted(states.items())},
    }


def _write_outputs(settings: Settings, options: ReplayOptions, reader: PartitionReader, events: list[dict[str, Any]],
                   windows: list[dict[str, Any]], clips: list[Highlight], result: ReplayResult) -> None:
    import os
    from concurrent.futures import ThreadPoolExecutor

    from consumers.render.synth import SynthPerThread
    from consumers.replay.artifacts import (
        ReelClip, broadcast_master, join_reel, timeline_png, write_index_markdown, write_json, write_wav,
    )

    teams = _teams(events)
    title = f"{teams['home']} v {teams['away']}" if {"home", "away"} <= set(teams) else f"match {options.match_id}"
    prefs = MusicPrefs(style=options.style) if options.style else MusicPrefs()
    created = _iso(max([w["audio_wall_time_ms"] for w in windows] + [e["wall_time_ms"] for e in events]))
    versions = {"crowdsound": _version(), "model": windows[0].get("model_version", "unknown"),
                "emotions_from": result.source}
    # The clips are composed at once on threads, each with its own synth (the same bytes as
    # one after the other: each clip is its own score), and written in rank order.
    synth = SynthPerThread()
    composer = ThreadPoolExecutor(max(1, min(len(clips), os.cpu_count() or 1)), thread_name_prefix="clip")
    composing = [composer.submit(compose_clip, options.match_id, clip, windows, events, prefs=prefs, synth=synth,
                                 hop_ms=settings.window_hop_ms) for clip in clips]
    composer.shutdown(wait=False)
    total_s = sum(c.duration_ms for c in clips) / 1000
    progress = Progress(total_s, "composing highlights", unit="s", enabled=options.progress)
    done = 0.0
    reel_clips = []
    intensity_points: list[tuple[str, int, float]] = []
    for rank, (clip, future) in enumerate(zip(clips, composing, strict=True), start=1):
        composed = future.result()
        audio = composed.audio.astype(np.float64) / 32768.0
        if options.mix_crowd:
            audio = _mix_crowd(settings, options, reader, clip, composed, audio)
        mastered = broadcast_master(audio, SAMPLE_RATE)
        name = _clip_name(rank, clip)
        files = {"wav": f"{name}.wav", "midi": f"{name}.mid", "json": f"{name}.json"}
        write_wav(options.out_dir / files["wav"], mastered, SAMPLE_RATE)
        write_midi_file(options.out_dir / files["midi"], midi_bars(composed.controls))
        clip_windows = [w for w in windows if w["clock"]["period"] == clip.period
                        and clip.start_ms <= w["clock"]["ms"] <= clip.end_ms]
        clip_events = [e for e in events if e["clock"]["period"] == clip.period
                       and clip.start_ms <= e["clock"]["ms"] <= clip.end_ms]
        bar_outputs = [c for c in composed.controls if c.record["kind"] == "BAR"]
        bars = [c.record for c in bar_outputs]
        stinger_outputs = [c for c in composed.controls if c.record["kind"] == "STINGER"]
        stingers = [c.record for c in stinger_outputs]
        duration_s = len(mastered) / SAMPLE_RATE
        sidecar = {
            "title": f"{title} — {clip.reason}", "match_id": options.match_id, "teams": teams, "rank": rank,
            "reason": clip.reason, "score": round(clip.score, 3), "created": created, "versions": versions,
            "start": {"clock": str(clip.start), "period": clip.period, "ms": clip.start_ms},
            "end": {"clock": str(clip.end), "period": clip.period, "ms": clip.end_ms},
            "music_start": {"clock": _clock_label(bars[0]["clock"]["period"], bars[0]["clock"]["ms"]),
                            "wall_time_ms": bars[0]["wall_time_ms"], "wall_time": _iso(bars[0]["wall_time_ms"]),
                            "at_s": composed.at_s(bar_outputs[0].sample)},
            "duration_s": round(duration_s, 3),
            "events": [{"event_id": e["event_id"], "type": e["type"], "side": e["side"], "team": e.get("team"),
                        "player": e.get("player"), "clock": _clock_label(e["clock"]["period"], e["clock"]["ms"]),
                        "wall_time": _iso(e["wall_time_ms"]),
                        "at_s": composed.at_s((e["clock"]["ms"] - composed.base_ms) * SAMPLE_RATE // 1000)}
                       for e in clip_events],
            "emotion": _emotion_summary(clip_windows),
            "music": {
                "style": prefs.style,
                "bars": [_bar_json(o, composed) for o in bar_outputs],
                "stingers": [{"stinger": o.record["stinger"], "at_s": composed.at_s(o.sample),
                              "clock": _clock_label(o.record["clock"]["period"], o.record["clock"]["ms"]),
                              "reason": o.record["reason"]} for o in stinger_outputs],
            },
            "files": files,
        }
        write_json(options.out_dir / files["json"], sidecar)
        reel_clips.append(ReelClip(audio=mastered, name=name, key=f"{bars[0]['key']} {bars[0]['mode'].lower()}",
                                   end_key=f"{bars[-1]['key']} {bars[-1]['mode'].lower()}",
                                   tempo_bpm=float(bars[0]["tempo_bpm"]), end_tempo_bpm=float(bars[-1]["tempo_bpm"])))
        intensity_points += [(clip.period, ms, value) for ms, value in composed.intensity]
        intensity_points.append((clip.period, clip.end_ms, float("nan")))  # no music between clips
        result.clips.append(ClipResult(rank=rank, name=name, highlight=clip, files=files, duration_s=duration_s,
                                       bars=len(bars), stingers=[s["stinger"] for s in stingers]))
        result.files += list(files.values())
        done += clip.duration_ms / 1000
        progress.update(done, name)
    if options.progress:
        progress.update(total_s, "done")

    reel = join_reel(reel_clips, sample_rate=SAMPLE_RATE) if reel_clips else None
    index_files: dict[str, Any] = {}
    if reel is not None:
        reel_audio = broadcast_master(reel.audio, SAMPLE_RATE)
        write_wav(options.out_dir / "reel.wav", reel_audio, SAMPLE_RATE)
        index_files["reel"] = {"wav": "reel.wav", "duration_s": round(len(reel_audio) / SAMPLE_RATE, 3),
                               "joins": [join.to_json() for join in reel.joins]}
        result.files.append("reel.wav")
    _timeline(options, title, windows, events, clips, intensity_points, timeline_png)
    result.files.append("timeline.png")
    index = {
        "title": title, "match_id": options.match_id, "teams": teams, "created": created, "versions": versions,
        "clips": [{"rank": c.rank, "name": c.name, "start_clock": str(c.highlight.start),
                   "end_clock": str(c.highlight.end), "duration_s": round(c.duration_s, 3), "reason": c.highlight.reason,
                   "stingers": c.stingers, "files": c.files} for c in result.clips],
        "reel": index_files.get("reel", {}), "timeline": "timeline.png",
    }
    write_json(options.out_dir / "index.json", index)
    write_index_markdown(options.out_dir / "index.md", index)
    result.files += ["index.json", "index.md"]


def _bar_json(output: Output, composed: ComposedClip) -> dict[str, Any]:
    """A bar of the sidecar: the control record's decisions, where it sits in the WAV, and what
    the plan says of its phrase, tempo ramp and theme."""
    b, plan = output.record, output.plan
    entry = {"bar": b["bar"], "clock": _clock_label(b["clock"]["period"], b["clock"]["ms"]),
             "at_s": composed.at_s(output.sample), "tempo_bpm": round(float(b["tempo_bpm"]), 3), "key": b["key"],
             "mode": b["mode"], "chord": b["chord"], "intensity": round(float(b["intensity"]), 3),
             "layers": b["layers"], "reason": b["reason"]}
    if plan is not None:
        entry.update({"phrase_end": plan.phrase_pos == 3 or plan.final, "tempo_ramp": plan.tempo_ramp,
                      "theme": plan.theme, "final": plan.final})
    return entry


class _Axis:
    """The timeline's x axis: seconds on one line through the periods, each as long as the
    data in it (breaks included), so a short demo match and a full match both fill the plot."""

    def __init__(self, windows: list[dict[str, Any]], events: list[dict[str, Any]]) -> None:
        lengths: dict[str, int] = {}
        for record in list(windows) + list(events):
            period, ms = record["clock"]["period"], int(record["clock"]["ms"]) + int(record.get("length_ms", 0))
            lengths[period] = max(lengths.get(period, 0), ms)
        self.offsets: dict[str, float] = {}
        total = 0.0
        for period in sorted(lengths, key=lambda p: Period(p).order):
            self.offsets[period] = total
            total += lengths[period] / 1000

    def seconds(self, period: str, ms: int) -> float:
        return self.offsets.get(period, 0.0) + ms / 1000

    def label(self, seconds: float) -> str:
        starts = [(offset, period) for period, offset in self.offsets.items() if offset <= seconds + 1e-9]
        offset, period = max(starts) if starts else (0.0, "PRE_MATCH")
        return _clock_label(period, int(round(max(0.0, seconds - offset) * 1000)))


def _timeline(options: ReplayOptions, title: str, windows: list[dict[str, Any]], events: list[dict[str, Any]],
              clips: list[Highlight], intensity: list[tuple[str, int, float]], timeline_png: Any) -> None:
    ordered = sorted(windows, key=window_key)
    axis = _Axis(ordered, events)
    timeline_png(
        options.out_dir / "timeline.png", title=f"{title}: crowd emotion, events and highlight music",
        seconds=[axis.seconds(w["clock"]["period"], w["clock"]["ms"]) for w in ordered],
        arousal=[float(w["arousal"]) for w in ordered], valence=[float(w["valence"]) for w in ordered],
        states=[str(w["state"]) for w in ordered],
        events=[(axis.seconds(e["clock"]["period"], e["clock"]["ms"]), e["type"], e["side"]) for e in events
                if e["type"] in ("GOAL", "CARD", "PENALTY_AWARDED", "VAR_REVIEW", "SHOT", "SAVE")],
        intensity=[(axis.seconds(period, ms), value) for period, ms, value in intensity],
        spans=[(axis.seconds(c.period, c.start_ms), axis.seconds(c.period, c.end_ms), f"#{i}")
               for i, c in enumerate(clips, 1)],
        tick_labels=axis.label,
    )


def _mix_crowd(settings: Settings, options: ReplayOptions, reader: PartitionReader, clip: Highlight,
               composed: ComposedClip, music: np.ndarray) -> np.ndarray:
    """The clip's music laid over the crowd it was made from (the same match time)."""
    from consumers.replay.artifacts import mix_under_crowd
    from streams.processor import RecordProcessor

    music_start_ms = composed.controls[0].record["clock"]["ms"]
    length_ms = int(len(music) * 1000 / SAMPLE_RATE)
    pieces, rate = [], None

    def past_end(frame: dict[str, Any]) -> bool:
        order = Period(frame["clock"]["period"]).order
        return order > Period(clip.period).order or (frame["clock"]["period"] == clip.period
                                                       and frame["clock"]["ms"] > music_start_ms + length_ms)

    walls = [w["audio_wall_time_ms"] for w in composed.windows]
    for frame in reader.read("crowd.audio.v1", "AudioFrame", from_ms=min(walls) - 10_000 if walls else None,
                             stop=past_end):
        if frame["clock"]["period"] != clip.period or frame["clock"]["ms"] < music_start_ms:
            continue
        rate = frame["sample_rate"]
        try:
            pieces.append(RecordProcessor._samples(frame))
        except Exception:  # noqa: BLE001 - an unusable frame is a short silence in the mix
            continue
    if not pieces or rate is None:
        log.warning("no crowd audio retained for %s-%s; the clip is music only", clip.start, clip.end)
        return music
    crowd = np.concatenate(pieces)
    return mix_under_crowd(music, crowd, music_sample_rate=SAMPLE_RATE, crowd_sample_rate=rate)
