"""Emotion windows for replay: the retained ones, or recomputed from the retained audio.

Both give the final (highest-revision) window per window start. Recomputing runs the
stream worker's own join (``streams.join.MatchJoin``) and model over the match's audio
frames, with every event the live join accepted: the join's final windows do not depend
on arrival order within grace, and events the live join called late (kept on
match.events.late.v1) are left out as they were live — so for data made by the live
pipeline the two agree.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from infra.settings import Settings
from schemas.clock import Period

__all__ = ["final_windows", "recompute_windows", "window_key"]


def window_key(window: dict[str, Any]) -> tuple[int, int]:
    return Period(window["clock"]["period"]).order, int(window["clock"]["ms"])


def final_windows(windows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """The highest revision of each window, in match order."""
    best: dict[tuple[int, int], dict[str, Any]] = {}
    for window in windows:
        key = window_key(window)
        if key not in best or window["revision"] >= best[key]["revision"]:
            best[key] = window
    return [best[key] for key in sorted(best)]


def recompute_windows(settings: Settings, match_id: str, frames: Iterable[dict[str, Any]],
                      events: Iterable[dict[str, Any]], *, late_event_ids: set[str],
                      processes: int | None = None) -> list[dict[str, Any]]:
    """Final emotion windows of ``match_id`` from its audio frames (in offset order) and events,
    with the worker's join settings (grace, hop, length).

    The frames are analysed ahead in ``processes`` other processes (default: one per core; 0:
    none), a block at a time (:mod:`streams.ahead`): the same windows, sooner."""
    import os

    from streams.ahead import adopt, analysed_ahead
    from streams.emotion import EmotionModel
    from streams.join import MatchJoin
    from streams.processor import RecordProcessor, join_config, pcm_samples

    model = EmotionModel.load()
    join = MatchJoin(match_id, join_config(settings), model_version=model.version)
    produced: list[dict[str, Any]] = []
    for event in events:
        if event["event_id"] not in late_event_ids:
            produced.extend(join.add_event(event, now_ms=event["wall_time_ms"]).windows)

    def decoded() -> Iterator[tuple[dict[str, Any], Any, Any, int]]:
        for frame in frames:
            try:  # the worker's own decoding and sanitising
                pcm = RecordProcessor._pcm(frame)
                samples = pcm_samples(pcm)
            except Exception:  # noqa: BLE001 - the worker dead-lettered such frames; replay skips them too
                pcm = samples = None
            yield frame, samples, pcm, frame["sample_rate"]

    helpers = (os.cpu_count() or 1) if processes is None else processes
    for frame, samples, analysis, start in analysed_ahead(decoded(), processes=helpers):
        if samples is None:
            continue
        if start is not None:
            adopt(join.analyzer, analysis, start)
        produced.extend(join.add_audio(frame, samples, predict=model.predict, now_ms=frame["wall_time_ms"],
                                       analysis=analysis).windows)
    return final_windows(produced)
