"""The replay's timeline picture: what the crowd felt, what happened, and what the music did.

An editor opening a replay folder should see the match at a glance: arousal and valence
over the match clock, the crowd state as a coloured band, the events (goals bold, coloured
by side), the music's intensity, and the highlight spans the clips were cut from, labelled
like the clip files. One PNG, 1400x600 px.

Same inputs, same bytes: the figure is drawn with matplotlib's default style plus fixed
fonts (DejaVu Sans ships with matplotlib), whatever the user's matplotlibrc says, on an
Agg canvas without pyplot (no global figure state, safe in threads), and saved without
the "Software" tag; Agg's PNG writer adds no time stamp. Lines longer than a few thousand
points are thinned to per-bucket minima and maxima (peaks survive), so 90 minutes of
1 s points draw in well under a second.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence

import matplotlib
import matplotlib.style
import numpy as np
from matplotlib.artist import Artist
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import FixedLocator, FuncFormatter

__all__ = ["SIDE_COLOURS", "STATE_COLOURS", "timeline_png"]

# One colour per crowd state (schemas/EmotionWindow.avsc CrowdState), calm to hot, told
# apart also by colour-blind readers (no red/green pair at the same lightness).
STATE_COLOURS: dict[str, str] = {
    "CALM": "#a6cee3",
    "ANTICIPATION": "#ffd92f",
    "EXCITEMENT": "#fd8d3c",
    "CELEBRATION": "#33a02c",
    "DISAPPOINTMENT": "#6a51a3",
    "ANGER": "#e31a1c",
    "CHANTING": "#e7298a",
}
SIDE_COLOURS: dict[str, str] = {"HOME": "#08519c", "AWAY": "#a50f15", "NONE": "#525252"}
_UNKNOWN_COLOUR = "#bdbdbd"
_AROUSAL_COLOUR = "#d94801"
_VALENCE_COLOUR = "#2171b5"
_INTENSITY_COLOUR = "#54278f"
_SPAN_COLOUR = "#fec44f"
_SHORT_EVENT = {"PENALTY_AWARDED": "PENALTY", "VAR_REVIEW": "VAR", "PERIOD_START": "START",
                "PERIOD_END": "END", "SUBSTITUTION": "SUB"}

_SIZE_IN = (14.0, 6.0)
_DPI = 100
_MAX_POINTS = 8000  # per line; beyond, min/max thinning (the figure is 1400 px wide)
_GAP_FACTOR = 10.0  # a step this many times the usual one is a break (half time): no line across
_LABEL_GAP = 0.012  # event labels closer than this share of the x range are skipped (not GOALs)
_TICK_STEPS_S = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200)
_MAX_TICKS = 14
_RC = {
    "font.family": "DejaVu Sans",
    "font.size": 9.0,
    "axes.titlesize": 9.0,
    "axes.labelsize": 9.0,
    "xtick.labelsize": 8.0,
    "ytick.labelsize": 8.0,
    "legend.fontsize": 8.0,
    "axes.spines.top": False,
}


def timeline_png(path: str | os.PathLike[str], *, title: str, seconds: Sequence[float],
                 arousal: Sequence[float], valence: Sequence[float], states: Sequence[str],
                 events: Sequence[tuple[float, str, str]], intensity: Sequence[tuple[float, float]],
                 spans: Sequence[tuple[float, float, str]],
                 tick_labels: Callable[[float], str] | None = None) -> None:
    """Draw the timeline PNG to ``path``.

    ``seconds`` (increasing) with ``arousal`` (0..1), ``valence`` (-1..1) and ``states`` (a
    CrowdState name each) are the emotion windows; ``events`` are (second, type, side) with
    side HOME/AWAY/NONE; ``intensity`` is (second, value 0..1) of the music, drawn as steps;
    ``spans`` are (start, end, label) of the highlights. All times are on one axis (seconds);
    ``tick_labels`` turns an axis second into its match-clock label (e.g. "23:10"), otherwise
    the axis shows seconds. A step much longer than the usual one (half time) breaks the lines.
    """
    t = np.asarray(seconds, dtype=np.float64)
    a = np.asarray(arousal, dtype=np.float64)
    v = np.asarray(valence, dtype=np.float64)
    if not len(t) == len(a) == len(v) == len(states):
        raise ValueError("seconds, arousal, valence and states must have the same length")
    if len(t) and (np.any(np.diff(t) < 0) or not (np.all(np.isfinite(t)) and np.all(np.isfinite(a))
                                                  and np.all(np.isfinite(v)))):
        raise ValueError("seconds must be increasing and all values finite")
    step = float(np.median(np.diff(t))) if len(t) > 1 else 1.0
    lo, hi = _x_range(t, events, intensity, spans)
    with matplotlib.style.context("default"), matplotlib.rc_context(_RC):
        fig = Figure(figsize=_SIZE_IN, dpi=_DPI)
        grid = fig.add_gridspec(3, 1, height_ratios=(3.0, 0.3, 1.15), hspace=0.08,
                                left=0.055, right=0.945, top=0.80, bottom=0.09)
        ax = fig.add_subplot(grid[0])
        band = fig.add_subplot(grid[1], sharex=ax)
        music = fig.add_subplot(grid[2], sharex=ax)
        ax_v = ax.twinx()
        for span_ax in (ax, band, music):
            _draw_spans(span_ax, spans)
        _draw_emotion(ax, ax_v, t, a, v, step)
        _draw_events(ax, ax_v, music, events, hi - lo)
        _draw_span_labels(ax, spans)
        _draw_states(band, t, states, step)
        _draw_intensity(music, intensity)
        _x_axis(music, (ax, band), t, step, lo, hi, tick_labels)
        fig.text(0.055, 0.975, title, ha="left", va="top", fontsize=13, fontweight="bold")
        _legends(fig, states)
        fig.savefig(os.fspath(path), format="png", dpi=_DPI, metadata={"Software": None})


# -- panels -----------------------------------------------------------------------------------

def _draw_emotion(ax: Axes, ax_v: Axes, t: np.ndarray, a: np.ndarray, v: np.ndarray, step: float) -> None:
    # Arousal 0..1 on the left, valence -1..1 on the right: valence 0 sits on arousal 0.5,
    # so the five grid lines are shared by both scales.
    ax.set_ylim(0.0, 1.0)
    ax_v.set_ylim(-1.0, 1.0)
    ax.set_yticks([0.0, 0.25, 0.5, 0.75, 1.0])
    ax_v.set_yticks([-1.0, -0.5, 0.0, 0.5, 1.0])
    ax.set_ylabel("arousal", color=_AROUSAL_COLOUR)
    ax_v.set_ylabel("valence", color=_VALENCE_COLOUR)
    ax.tick_params(axis="y", colors=_AROUSAL_COLOUR)
    ax_v.tick_params(axis="y", colors=_VALENCE_COLOUR)
    ax.grid(axis="y", color="#e0e0e0", linewidth=0.6)
    ax.set_axisbelow(True)
    ax_v.axhline(0.0, color="#9e9e9e", linewidth=0.6, zorder=1)
    if len(t):
        # Each line thinned on its own values (its own peaks); arousal drawn on the valence
        # scale (2a - 1) so both sit on the twin axis, over the event lines of `ax`.
        xv, yv = _line(t, v, step)
        xa, ya = _line(t, a, step)
        ax_v.plot(xv, yv, color=_VALENCE_COLOUR, linewidth=1.1, zorder=3)
        ax_v.plot(xa, ya * 2.0 - 1.0, color=_AROUSAL_COLOUR, linewidth=1.3, zorder=4)
    ax.tick_params(axis="x", labelbottom=False)


def _draw_events(ax: Axes, ax_v: Axes, music: Axes, events: Sequence[tuple[float, str, str]],
                 x_range: float) -> None:
    # Lines under the emotion curves (ax), labels over them (ax_v, the twin drawn last).
    ordered = sorted(events, key=lambda e: (float(e[0]), str(e[1]), str(e[2])))
    last_label = -math.inf
    for second, kind, side in ordered:
        s = float(second)
        goal = kind == "GOAL"
        colour = SIDE_COLOURS.get(side, SIDE_COLOURS["NONE"])
        style = {"color": colour, "linewidth": 1.8 if goal else 0.8, "linestyle": "-" if goal else (0, (3, 2)),
                 "zorder": 5 if goal else 2}
        ax.axvline(s, **style)
        if goal:
            music.axvline(s, **{**style, "linewidth": 1.2})
        # Labels would pile up where events crowd together; goals are always labelled.
        if goal or s - last_label >= _LABEL_GAP * x_range:
            text = _SHORT_EVENT.get(kind, kind.replace("_", " "))
            if side in ("HOME", "AWAY"):
                text = f"{text} · {side}"
            ax_v.text(s, 0.985, f" {text}", transform=ax_v.get_xaxis_transform(), rotation=90, ha="right",
                    va="top", fontsize=7.5, color=colour, fontweight="bold" if goal else "normal", zorder=6,
                    bbox={"boxstyle": "square,pad=0.1", "facecolor": "white", "edgecolor": "none", "alpha": 0.7})
            last_label = s


def _draw_spans(ax: Axes, spans: Sequence[tuple[float, float, str]]) -> None:
    for start, end, _ in spans:
        ax.axvspan(float(start), float(end), color=_SPAN_COLOUR, alpha=0.35, linewidth=0, zorder=0)


def _draw_span_labels(ax: Axes, spans: Sequence[tuple[float, float, str]]) -> None:
    # Above the panel, centred on the span: inside it they would fight the event labels.
    for start, end, label in spans:
        ax.text((float(start) + float(end)) / 2.0, 1.015, label, transform=ax.get_xaxis_transform(),
                ha="center", va="bottom", fontsize=8.5, fontweight="bold", color="#7a4d00", clip_on=False)


def _draw_states(band: Axes, t: np.ndarray, states: Sequence[str], step: float) -> None:
    band.set_ylim(0.0, 1.0)
    band.set_yticks([])
    band.set_ylabel("crowd", rotation=0, ha="right", va="center")
    band.tick_params(axis="x", labelbottom=False)
    for spine in band.spines.values():
        spine.set_visible(False)
    if not len(t):
        return
    ends = np.append(t[1:], t[-1] + step)
    ends = np.where(ends - t > _GAP_FACTOR * step, t + step, ends)  # a break is not the last state
    runs: dict[str, list[tuple[float, float]]] = {}
    i = 0
    while i < len(t):
        j = i
        while j + 1 < len(t) and states[j + 1] == states[i] and ends[j] == t[j + 1]:
            j += 1
        runs.setdefault(states[i], []).append((float(t[i]), float(ends[j] - t[i])))
        i = j + 1
    for state in sorted(runs):  # sorted: the drawing order is part of the bytes
        band.broken_barh(runs[state], (0.1, 0.8), facecolors=STATE_COLOURS.get(state, _UNKNOWN_COLOUR),
                         linewidth=0, zorder=2)


def _draw_intensity(music: Axes, intensity: Sequence[tuple[float, float]]) -> None:
    music.set_ylabel("music\nintensity")
    music.grid(axis="y", color="#e0e0e0", linewidth=0.6)
    music.set_axisbelow(True)
    points = sorted((float(s), float(val)) for s, val in intensity)
    top = max([1.0] + [val for _, val in points])
    music.set_ylim(0.0, top * 1.05)
    music.set_yticks([0.0, 0.5, 1.0])
    if not points:
        return
    x = np.array([p[0] for p in points])
    y = np.array([p[1] for p in points])
    step = float(np.median(np.diff(x))) if len(x) > 1 else 1.0
    # Intensity exists only where music was composed (the clips): one step line per run,
    # its last value held for one usual step, nothing drawn across the gaps between clips.
    for run in _runs(x, step):
        rx = np.append(x[run], x[run][-1] + step)
        ry = np.append(y[run], y[run][-1])
        music.step(rx, ry, where="post", color=_INTENSITY_COLOUR, linewidth=1.2, zorder=3)
        music.fill_between(rx, ry, step="post", color=_INTENSITY_COLOUR, alpha=0.15, linewidth=0, zorder=2)


def _x_axis(music: Axes, others: tuple[Axes, ...], t: np.ndarray, step: float, lo: float, hi: float,
            tick_labels: Callable[[float], str] | None) -> None:
    music.set_xlim(lo, hi)
    music.xaxis.set_major_locator(FixedLocator(_ticks(t, step, lo, hi)))
    if tick_labels is not None:
        music.xaxis.set_major_formatter(FuncFormatter(lambda x, _pos: tick_labels(float(x))))
        music.set_xlabel("match clock")
    else:
        music.xaxis.set_major_formatter(FuncFormatter(lambda x, _pos: f"{x:g}"))
        music.set_xlabel("seconds")
    for other in others:
        other.tick_params(axis="x", length=0)
        other.grid(axis="x", color="#eeeeee", linewidth=0.5)
    music.grid(axis="x", color="#eeeeee", linewidth=0.5)


def _ticks(t: np.ndarray, step: float, lo: float, hi: float) -> list[float]:
    """Tick positions: a round interval, counted from the start of each run of data.

    The axis may hold several periods with breaks between them (the caller's seconds are
    offsets per period), so ticks at multiples of the interval from 0 would read "48:20" in
    the second half; counted from each run's first whole second they read "45:00", "55:00".
    """
    interval = next((s for s in _TICK_STEPS_S if (hi - lo) / s <= _MAX_TICKS), _TICK_STEPS_S[-1])
    if len(t):
        starts = [float(math.floor(t[run][0])) for run in _runs(t, step)]
        ends = [float(t[run][-1]) for run in _runs(t, step)]
    else:
        starts, ends = [math.ceil(lo / interval) * interval], [hi]
    ticks: list[float] = []
    for start, end in zip(starts, ends):
        k = 0
        while start + k * interval <= end + 1e-9:
            tick = start + k * interval
            if not ticks or tick - ticks[-1] >= interval / 2:  # no two labels on top of each other
                ticks.append(tick)
            k += 1
    return ticks


def _legends(fig: Figure, states: Sequence[str]) -> None:
    handles: list[Artist] = [Patch(facecolor=colour, label=state.capitalize()) for state, colour in STATE_COLOURS.items()]
    if any(s not in STATE_COLOURS for s in states):  # a state newer than this file: grey, one entry
        handles.append(Patch(facecolor=_UNKNOWN_COLOUR, label="Other"))
    fig.legend(handles=handles, loc="upper left", bbox_to_anchor=(0.05, 0.935), ncol=len(handles),
               frameon=False, handlelength=1.2, columnspacing=0.9, title="crowd state", alignment="left",
               title_fontproperties={"size": 8, "weight": "bold"})
    lines: list[Artist] = [
        Line2D([], [], color=_AROUSAL_COLOUR, linewidth=1.5, label="arousal"),
        Line2D([], [], color=_VALENCE_COLOUR, linewidth=1.5, label="valence"),
        Patch(facecolor=_SPAN_COLOUR, alpha=0.5, label="highlight"),
        Line2D([], [], color=SIDE_COLOURS["HOME"], linewidth=1.8, label="home"),
        Line2D([], [], color=SIDE_COLOURS["AWAY"], linewidth=1.8, label="away"),
        Line2D([], [], color=SIDE_COLOURS["NONE"], linewidth=0.8, linestyle=(0, (3, 2)), label="neutral"),
    ]
    fig.legend(handles=lines, loc="upper right", bbox_to_anchor=(0.945, 0.935), ncol=len(lines),
               frameon=False, handlelength=1.6, columnspacing=0.9, title="emotion · highlights · events (GOAL bold)",
               alignment="right", title_fontproperties={"size": 8, "weight": "bold"})


# -- data helpers -----------------------------------------------------------------------------

def _x_range(t: np.ndarray, events: Sequence[tuple[float, str, str]], intensity: Sequence[tuple[float, float]],
             spans: Sequence[tuple[float, float, str]]) -> tuple[float, float]:
    xs = [float(x) for x in t[:1]] + [float(x) for x in t[-1:]]
    xs += [float(e[0]) for e in events] + [float(p[0]) for p in intensity]
    xs += [float(s[0]) for s in spans] + [float(s[1]) for s in spans]
    if not xs:
        return 0.0, 1.0
    lo, hi = min(xs), max(xs)
    return (lo, hi) if hi > lo else (lo - 0.5, hi + 0.5)


def _line(t: np.ndarray, y: np.ndarray, step: float) -> tuple[np.ndarray, np.ndarray]:
    """Points to draw: thinned when long, with a NaN in every break so no line crosses it."""
    idx = _thin(y) if len(y) > _MAX_POINTS else np.arange(len(y))
    x, yy = t[idx], y[idx]
    gaps = np.flatnonzero(_has_gap(t, idx, step))
    if len(gaps):
        x = np.insert(x, gaps + 1, np.nan)
        yy = np.insert(yy, gaps + 1, np.nan)
    return x, yy


def _thin(y: np.ndarray) -> np.ndarray:
    """Indices of each bucket's minimum and maximum (in time order), plus the last point."""
    bucket = math.ceil(len(y) / (_MAX_POINTS // 2))
    whole = len(y) // bucket * bucket
    blocks = y[:whole].reshape(-1, bucket)
    base = np.arange(0, whole, bucket)
    lows, highs = base + blocks.argmin(axis=1), base + blocks.argmax(axis=1)
    keep = np.concatenate((lows, highs, np.arange(whole, len(y)), [0, len(y) - 1]))
    return np.unique(keep)


def _runs(t: np.ndarray, step: float) -> list[np.ndarray]:
    """Index arrays of the stretches of ``t`` without a break (a step > _GAP_FACTOR x usual)."""
    cuts = np.flatnonzero(np.diff(t) > _GAP_FACTOR * step) + 1
    return np.split(np.arange(len(t)), cuts)


def _has_gap(t: np.ndarray, idx: np.ndarray, step: float) -> np.ndarray:
    """For consecutive kept points, whether a break lies between them in the full series."""
    big = np.concatenate(([0], np.cumsum(np.diff(t) > _GAP_FACTOR * step)))
    return np.diff(big[idx]) > 0
