"""The replay folder's index: JSON for tools, Markdown for the editor opening the folder.

Both are written byte-deterministically so a re-run of the same replay leaves the folder
unchanged (and a diff of two runs shows only what really changed): sorted keys, fixed
indentation, UTF-8 without escapes, LF line ends, a final newline, no time stamps but the
ones the caller puts in. Floats are written as Python's shortest repr; the caller rounds
them to what is meaningful (3 decimals for seconds) before handing them over.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["dumps_json", "render_index_markdown", "write_index_markdown", "write_json"]


def dumps_json(obj: Any) -> str:
    """The deterministic JSON text of ``obj`` (with its final newline); NaN/infinity refused."""
    return json.dumps(obj, sort_keys=True, indent=2, ensure_ascii=False, allow_nan=False,
                      default=_json_default) + "\n"


def write_json(path: str | os.PathLike[str], obj: Any) -> None:
    """Write ``obj`` as deterministic JSON: sorted keys, indent 2, UTF-8, newline at the end.

    numpy scalars and arrays are accepted (as their Python values); NaN and infinity are
    refused rather than written as the non-JSON ``NaN``.
    """
    _write_text(path, dumps_json(obj))


def write_index_markdown(path: str | os.PathLike[str], index: dict[str, Any]) -> None:
    """Write the readable Markdown index of a replay folder (see :func:`render_index_markdown`)."""
    _write_text(path, render_index_markdown(index))


def render_index_markdown(index: dict[str, Any]) -> str:
    """The Markdown text of a replay index.

    The ``index`` dict (the same one written as ``index.json``)::

        {
          "title": "Home FC v Away United",          # str
          "match_id": "m-2024-05-01",                # str
          "teams": {"home": "Home FC", "away": "Away United"},   # optional, either key optional
          "created": "2024-05-01T21:03:00Z",         # str, chosen by the caller (no clock read here)
          "clips": [                                 # in rank order; may be empty
            {"rank": 1, "name": "01-goal-home",
             "start_clock": "23:10", "end_clock": "23:55",       # match clock labels
             "duration_s": 45.0, "reason": "GOAL (HOME)",
             "stingers": ["goal"],                   # optional
             "files": {"wav": "01-goal-home.wav", "midi": "01-goal-home.mid",
                       "json": "01-goal-home.json"}},            # any of the three may be missing
          ],
          "reel": {"wav": "reel.wav", "duration_s": 137.5,      # optional; {} when no reel
                   "joins": [{"at_s": 31.2, "from": "01-goal-home", "to": "02-card", "from_key": "A major",
                              "to_key": "F# minor", "from_tempo_bpm": 128.0, "to_tempo_bpm": 104.0}]},
          "timeline": "timeline.png",                # optional
          "versions": {"crowdsound": "0.1.0", "model": "emotion-v3", ...},  # optional
        }

    Other keys are ignored here (they are in ``index.json``).
    """
    title = _cell(index.get("title") or f"Replay of {index.get('match_id', '?')}")
    out = [f"# {title}", ""]
    facts = [f"- **Match:** `{_code(index.get('match_id', '?'))}`"]
    teams = index.get("teams") or {}
    if teams.get("home") or teams.get("away"):
        facts.append(f"- **Teams:** {_cell(teams.get('home', '?'))} (home) v {_cell(teams.get('away', '?'))} (away)")
    if index.get("created"):
        facts.append(f"- **Created:** {_cell(index['created'])}")
    clips = list(index.get("clips") or [])
    facts.append(f"- **Clips:** {len(clips)}")
    out += facts + ["", "## Clips", ""]
    if clips:
        out += ["| # | Clip | Match clock | Duration | Reason | Files |",
                "|--:|------|-------------|---------:|--------|-------|"]
        for clip in clips:
            reason = _cell(clip.get("reason", ""))
            if clip.get("stingers"):
                reason += f" (stingers: {_cell(', '.join(str(s) for s in clip['stingers']))})"
            clock = f"{_cell(clip.get('start_clock', '?'))} – {_cell(clip.get('end_clock', '?'))}"
            out.append(f"| {_cell(clip.get('rank', ''))} | {_cell(clip.get('name', ''))} | {clock} "
                       f"| {_duration(clip.get('duration_s'))} | {reason} | {_file_links(clip.get('files') or {})} |")
    else:
        out.append("_No highlights in this replay._")
    out += ["", "## Reel", ""]
    reel = index.get("reel") or {}
    if reel.get("wav"):
        out.append(f"{_link(str(reel['wav']), str(reel['wav']))} — {_duration(reel.get('duration_s'))}, "
                   "the clips in rank order, end to end: each ends on its tonic and rings out, the next "
                   "enters on a pickup in its own key and tempo (no two grooves overlap).")
        for join in reel.get("joins") or []:
            out.append(f"- {_duration(join.get('at_s'))}: {_cell(join.get('from', '?'))} ({_cell(join.get('from_key', '?'))}, "
                       f"{join.get('from_tempo_bpm', 0):.0f} bpm) → {_cell(join.get('to', '?'))} "
                       f"({_cell(join.get('to_key', '?'))}, {join.get('to_tempo_bpm', 0):.0f} bpm)")
    else:
        out.append("_No reel (no clips)._")
    if index.get("timeline"):
        out += ["", "## Timeline", "", f"![timeline]({_target(str(index['timeline']))})"]
    versions = index.get("versions") or {}
    if versions:
        out += ["", "## Versions", "", "| Component | Version |", "|-----------|---------|"]
        for key in sorted(versions):
            value = versions[key]
            text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, ensure_ascii=False)
            out.append(f"| {_cell(key)} | {_cell(text)} |")
    return "\n".join(out) + "\n"


# -- helpers ----------------------------------------------------------------------------------

def _write_text(path: str | os.PathLike[str], text: str) -> None:
    # Bytes, not text mode: no platform newline translation.
    Path(path).write_bytes(text.encode("utf-8"))


def _json_default(value: Any) -> Any:
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _cell(value: Any) -> str:
    """Text safe inside a Markdown table cell: one line, pipes escaped."""
    return " ".join(str(value).split()).replace("|", "\\|")


def _code(value: Any) -> str:
    return _cell(value).replace("`", "'")


def _target(path: str) -> str:
    # A link target with spaces or parentheses needs the <...> form to stay one link.
    return f"<{path}>" if any(c in path for c in " ()<>") else path


def _link(text: str, path: str) -> str:
    return f"[{_cell(text).replace('[', '(').replace(']', ')')}]({_target(path)})"


def _file_links(files: dict[str, Any]) -> str:
    order = ["wav", "midi", "json"]
    kinds = [k for k in order if files.get(k)] + sorted(k for k in files if k not in order and files.get(k))
    return " · ".join(_link(kind, str(files[kind])) for kind in kinds) or "—"


def _duration(seconds: Any) -> str:
    """``m:ss.s`` (``1:23.5``); an em dash when unknown."""
    if seconds is None or not isinstance(seconds, (int, float)) or not math.isfinite(seconds):
        return "—"
    tenths = round(float(seconds) * 10)
    minutes, rest = divmod(tenths, 600)
    return f"{minutes}:{rest // 10:02d}.{rest % 10}"
