"""``crowdsound model evaluate DIR``: how well the model hears a folder of labelled recordings,
side by side with plain loudness on the same clips.

The folder is a clip folder (:mod:`streams.training.real`: one subfolder per label — a crowd
state or ``applause`` — and optionally ``high/`` and ``low/`` for clips that only say how
aroused the crowd is). Three ways of hearing it:

* **alone**: every clip analysed from a cold start, as ``crowdsound analyze`` does — no
  baseline, so level says nothing and the model must hear the crowd in the sound's
  timbre and texture. Per-state precision and recall over windows, the confusion matrix,
  and each clip's majority state.
* **gain**: the same at -20 dB and +20 dB around a reference (every clip scaled to a peak of
  -26 dBFS first, so +20 dB does not clip): the share of windows whose state changes, and
  the largest change of a clip's mean arousal.
* **stream**: all clips one after the other (a seeded order) in one stream, as the worker
  hears a match: the baseline has warmed up, so loudness relative to it counts. A stream
  window (3 s) belongs to the clip holding its middle — by its start, two of its three
  seconds would often be the next clip — and its loudness yardstick is measured on the same
  stream window, so model and loudness hear exactly the same audio.

Arousal is scored by the AUC of excited clips (``excitement``, ``celebration``, ``high``)
against calm ones (``calm``, ``low``): the chance that an excited clip's mean arousal is
above a calm one's. The yardstick is plain loudness — the 90th percentile of a clip's 100 ms
RMS levels — on the same clips: fair inside a stream, where one microphone hears
everything, and unfair alone, where it only measures how loud each recording was made.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from streams.emotion import STATES
from streams.training.augment import SAMPLE_RATE, quantise
from streams.training.real import AROUSAL_ONLY, LABELS, LabelledClip, looped

__all__ = ["EXCITED", "STATE_CHECKS", "BackgroundCheck", "ClipResult", "Evaluation", "auc", "background_check",
           "evaluate_clips", "format_background", "format_evaluation", "hear_alone", "missed_targets",
           "shown_folder", "wanted_states"]

EXCITED = ("excitement", "celebration", "high")
CALM = ("calm", "low")
_FRAME = SAMPLE_RATE // 10
_REFERENCE_PEAK_DB = -26.0
_GAIN_DB = 20.0
_STREAM_SEED = 0

Predict = Callable[[np.ndarray], list[Any]]  # rows of feature vectors -> streams.emotion.Emotion


@dataclass
class ClipResult:
    """One clip heard alone."""

    name: str  # path relative to the folder
    label: str
    windows: int
    states: list[str]  # per window
    expected: list[str | None]  # per window: the state the labels give (None: skipped or arousal only)
    arousal: float  # mean over windows
    valence: float
    loudness_db: float  # p90 of 100 ms RMS, dBFS
    window_arousal: list[float] = field(default_factory=list)  # per window, alone
    window_loudness: list[float] = field(default_factory=list)  # per window: p90 of its 100 ms RMS, dBFS
    stream_arousal: float = float("nan")  # mean over its windows inside the stream
    stream_window_arousal: list[float] = field(default_factory=list)
    stream_window_loudness: list[float] = field(default_factory=list)  # p90 of the same stream windows, dBFS

    @property
    def majority(self) -> str:
        return max(STATES, key=self.states.count) if self.states else "-"


@dataclass
class Evaluation:
    """Everything ``model evaluate`` reports (JSON-able through :meth:`as_dict`)."""

    folder: str
    model_version: str
    clips: list[ClipResult]
    confusion: np.ndarray  # rows: expected state, columns: heard state, windows
    auc_alone: float  # by clip (mean arousal vs p90 loudness of each clip)
    auc_alone_loudness: float
    auc_stream: float
    auc_stream_loudness: float
    auc_alone_windows: float  # by window: finer, where there are few clips
    auc_alone_windows_loudness: float
    auc_stream_windows: float
    auc_stream_windows_loudness: float
    gain_state_changes: float  # share of windows whose state changes at -20 or +20 dB
    gain_arousal_change: float  # largest change of a clip's mean arousal at -20 or +20 dB
    checks: list[tuple[str, bool, str]] = field(default_factory=list)  # (what, passed, figure)

    @property
    def verdict(self) -> str:
        passed = sum(ok for _, ok, _ in self.checks)
        failed = [what for what, ok, _ in self.checks if not ok]
        head = "GOOD" if not failed else ("USABLE" if passed >= len(self.checks) - 1 else "WEAK")
        tail = "every check passes" if not failed else "fails: " + "; ".join(failed)
        return (f"{head}: arousal AUC {_f(self.auc_alone)} alone (loudness {_f(self.auc_alone_loudness)}), "
                f"{_f(self.auc_stream)} in a stream (loudness {_f(self.auc_stream_loudness)}); "
                f"{passed} of {len(self.checks)} checks pass, {tail}")

    def precision_recall(self) -> dict[str, tuple[float, float, int]]:
        """Per state: (precision, recall, windows expected in it)."""
        result = {}
        for k, state in enumerate(STATES):
            support = int(self.confusion[k].sum())
            heard = int(self.confusion[:, k].sum())
            if support or heard:
                result[state] = (self.confusion[k, k] / heard if heard else float("nan"),
                                 self.confusion[k, k] / support if support else float("nan"), support)
        return result

    def as_dict(self) -> dict[str, Any]:
        return {
            "folder": self.folder, "model_version": self.model_version, "verdict": self.verdict,
            "arousal_auc": {"alone": self.auc_alone, "alone_loudness": self.auc_alone_loudness,
                            "stream": self.auc_stream, "stream_loudness": self.auc_stream_loudness,
                            "alone_windows": self.auc_alone_windows,
                            "alone_windows_loudness": self.auc_alone_windows_loudness,
                            "stream_windows": self.auc_stream_windows,
                            "stream_windows_loudness": self.auc_stream_windows_loudness},
            "gain": {"db": _GAIN_DB, "state_changes": self.gain_state_changes,
                     "max_arousal_change": self.gain_arousal_change},
            "states": {s: {"precision": p, "recall": r, "windows": n} for s, (p, r, n) in self.precision_recall().items()},
            "confusion": {"states": list(STATES), "rows_expected_columns_heard": self.confusion.tolist()},
            "checks": [{"check": what, "passed": ok, "figure": figure} for what, ok, figure in self.checks],
            "clips": [{"clip": c.name, "label": c.label, "windows": c.windows, "majority": c.majority,
                       "arousal": c.arousal, "valence": c.valence, "stream_arousal": c.stream_arousal,
                       "loudness_p90_dbfs": c.loudness_db} for c in self.clips],
        }


def _f(value: float) -> str:
    return "n/a" if value != value else f"{value:.3f}"  # NaN: not enough clips of both kinds


def auc(scores: Sequence[float], positive: Sequence[bool]) -> float:
    """Area under the ROC curve: the chance that a positive's score is above a negative's
    (ties count half); NaN scores (a clip too short to own a window) are left out. NaN
    without both kinds."""
    s = np.asarray(scores, dtype=np.float64)
    p = np.asarray(positive, dtype=bool)
    s, p = s[~np.isnan(s)], p[~np.isnan(s)]
    pos, neg = s[p], s[~p]
    if not len(pos) or not len(neg):
        return float("nan")
    greater = (pos[:, None] > neg[None, :]).sum()
    ties = (pos[:, None] == neg[None, :]).sum()
    return float((greater + 0.5 * ties) / (len(pos) * len(neg)))


def _loudness_p90(audio: np.ndarray) -> float:
    frames = audio[: len(audio) - len(audio) % _FRAME].reshape(-1, _FRAME) if len(audio) >= _FRAME else audio[None, :]
    rms = np.sqrt(np.mean(frames ** 2, axis=1))
    return float(20 * np.log10(np.percentile(rms, 90) + 1e-10))


def _window_loudness(audio: np.ndarray, window) -> float:
    first = window.start.ms * SAMPLE_RATE // 1000
    return _loudness_p90(audio[first:first + window.length_ms * SAMPLE_RATE // 1000])


def _windows(audio: np.ndarray, spec) -> list:
    from streams.analyze import analyze_frames

    frames = (audio[i:i + _FRAME] for i in range(0, len(audio), _FRAME))
    return list(analyze_frames(frames, spec=spec))


def _expected(clip: LabelledClip, window) -> str | None:
    if clip.label in AROUSAL_ONLY:
        return None
    end = min(window.start.ms + window.length_ms, window.last_frame_ms)
    state = clip.state_between(window.start.ms / 1000, end / 1000)
    return None if state == "skip" else state


def _hear(predict: Predict, windows: list) -> list:
    return predict(np.stack([w.features for w in windows])) if windows else []


def hear_alone(clip: LabelledClip, predict: Predict, *, folder: str = "", spec=None) -> ClipResult:
    """``clip`` heard alone from a cold start, window by window, as ``crowdsound analyze`` hears it."""
    windows = _windows(clip.audio, spec)
    heard = _hear(predict, windows)
    return ClipResult(
        name=_name(clip, folder), label=clip.label, windows=len(windows), states=[e.state for e in heard],
        expected=[_expected(clip, w) for w in windows],
        arousal=float(np.mean([e.arousal for e in heard])) if heard else float("nan"),
        valence=float(np.mean([e.valence for e in heard])) if heard else float("nan"),
        loudness_db=_loudness_p90(clip.audio), window_arousal=[e.arousal for e in heard],
        window_loudness=[_window_loudness(clip.audio, w) for w in windows],
    )


def evaluate_clips(clips: Sequence[LabelledClip], predict: Predict, *, folder: str = "", model_version: str = "",
                   spec=None) -> Evaluation:
    """Hear ``clips`` alone, at other gains and in one stream (see the module doc)."""
    results = [hear_alone(clip, predict, folder=folder, spec=spec) for clip in clips]
    confusion = np.zeros((len(STATES), len(STATES)), dtype=int)
    for result in results:
        for want, state in zip(result.expected, result.states, strict=True):
            if want is not None:
                confusion[STATES.index(want), STATES.index(state)] += 1
    changes, arousal_change = _gain_changes(clips, predict, spec)
    _stream(clips, results, predict, spec)
    scored = [(r, r.label in EXCITED) for r in results if r.label in EXCITED + CALM]

    def by_window(values: Callable[[ClipResult], list[float]]) -> float:
        pairs = [(v, x) for r, x in scored for v in values(r)]
        return auc([v for v, _ in pairs], [x for _, x in pairs])

    evaluation = Evaluation(
        folder=folder, model_version=model_version, clips=results, confusion=confusion,
        auc_alone=auc([r.arousal for r, _ in scored], [x for _, x in scored]),
        auc_alone_loudness=auc([r.loudness_db for r, _ in scored], [x for _, x in scored]),
        auc_stream=auc([r.stream_arousal for r, _ in scored], [x for _, x in scored]),
        auc_stream_loudness=auc([r.loudness_db for r, _ in scored], [x for _, x in scored]),
        auc_alone_windows=by_window(lambda r: r.window_arousal),
        auc_alone_windows_loudness=by_window(lambda r: r.window_loudness),
        auc_stream_windows=by_window(lambda r: r.stream_window_arousal),
        auc_stream_windows_loudness=by_window(lambda r: r.stream_window_loudness),
        gain_state_changes=changes, gain_arousal_change=arousal_change,
    )
    evaluation.checks = _checks(evaluation)
    return evaluation


def _name(clip: LabelledClip, folder: str) -> str:
    try:
        return str(clip.path.relative_to(folder)) if folder else clip.path.name
    except ValueError:
        return clip.path.name


def _gain_changes(clips: Sequence[LabelledClip], predict: Predict, spec) -> tuple[float, float]:
    changed = total = 0
    worst = 0.0
    for clip in clips:
        peak = float(np.max(np.abs(clip.audio))) or 1.0
        reference = clip.audio / peak * 10 ** (_REFERENCE_PEAK_DB / 20)
        heard = {gain: _hear(predict, _windows(quantise(reference * 10 ** (gain / 20)), spec))
                 for gain in (-_GAIN_DB, 0.0, _GAIN_DB)}
        middle = heard[0.0]
        for gain in (-_GAIN_DB, _GAIN_DB):
            other = heard[gain]
            count = min(len(other), len(middle))
            changed += sum(a.state != b.state for a, b in zip(other[:count], middle[:count], strict=True))
            total += count
            if count:
                worst = max(worst, abs(float(np.mean([e.arousal for e in other])) -
                                       float(np.mean([e.arousal for e in middle]))))
    return (changed / total if total else float("nan")), worst


def _stream(clips: Sequence[LabelledClip], results: list[ClipResult], predict: Predict, spec) -> None:
    """All clips in one stream (a seeded order); each result gets the arousal (and the
    loudness) of the stream windows whose middle lies inside its clip."""
    order = np.random.default_rng(_STREAM_SEED).permutation(len(clips))
    audio = np.concatenate([clips[i].audio for i in order])
    starts = np.cumsum([0] + [len(clips[i].audio) for i in order])
    windows = _windows(audio, spec)
    heard = _hear(predict, windows)
    middles = [(w.start.ms + w.length_ms // 2) * SAMPLE_RATE // 1000 for w in windows]
    owner = np.searchsorted(starts, middles, side="right") - 1
    for position, index in enumerate(order):
        mine = [(e.arousal, _window_loudness(audio, w)) for w, e, o in zip(windows, heard, owner, strict=True)
                if o == position]
        results[index].stream_arousal = float(np.mean([a for a, _ in mine])) if mine else float("nan")
        results[index].stream_window_arousal = [a for a, _ in mine]
        results[index].stream_window_loudness = [db for _, db in mine]


# The done-when targets on states: (check, folder labels, states they should be heard as).
STATE_CHECKS: tuple[tuple[str, tuple[str, ...], tuple[str, ...]], ...] = (
    ("cheering heard as EXCITEMENT or CELEBRATION", ("excitement", "celebration"), ("EXCITEMENT", "CELEBRATION")),
    ("boos and whistles heard as ANGER", ("anger",), ("ANGER",)),
    ("calm heard as CALM", ("calm",), ("CALM",)),
)


def wanted_states(label: str) -> tuple[str, ...]:
    """The states a clip of folder ``label`` counts as heard right in: its check's, or its own state."""
    return next((states for _, labels, states in STATE_CHECKS if label in labels), (LABELS[label][0],))


def _majority_share(results: list[ClipResult], labels: Sequence[str], states: Sequence[str]) -> tuple[int, int]:
    windows = [s for r in results if r.label in labels for s, e in zip(r.states, r.expected, strict=True)
               if e is not None]
    return sum(s in states for s in windows), len(windows)


def _checks(e: Evaluation) -> list[tuple[str, bool, str]]:
    checks: list[tuple[str, bool, str]] = []
    if e.auc_alone == e.auc_alone:
        # Clip by clip, as the target is stated: a clip's few windows from a cold start are
        # each a guess, the clip's mean is what a venue reads (windows stay in the table).
        checks.append(("arousal AUC of clips analysed alone >= 0.85", e.auc_alone >= 0.85,
                       f"{_f(e.auc_alone)} (windows {_f(e.auc_alone_windows)})"))
    if e.auc_stream == e.auc_stream:
        checks.append(("arousal AUC in a stream >= loudness's (clips and windows)",
                       e.auc_stream >= e.auc_stream_loudness - 1e-9
                       and e.auc_stream_windows >= e.auc_stream_windows_loudness - 1e-9,
                       f"{_f(e.auc_stream)} vs {_f(e.auc_stream_loudness)} / "
                       f"{_f(e.auc_stream_windows)} vs {_f(e.auc_stream_windows_loudness)}"))
    for what, labels, states in STATE_CHECKS:
        hit, total = _majority_share(e.clips, labels, states)
        if total:
            checks.append((what, hit * 2 > total, f"{hit} of {total} windows"))
    applause = [r.valence for r in e.clips if r.label == "applause" and r.valence == r.valence]
    if applause:
        mean = float(np.mean(applause))
        checks.append(("applause has positive valence", mean > 0, f"{mean:+.2f}"))
    if e.gain_state_changes == e.gain_state_changes:
        checks.append((f"+-{_GAIN_DB:.0f} dB of gain changes few states (<= 10 %)", e.gain_state_changes <= 0.10,
                       f"{100 * e.gain_state_changes:.1f} % of windows"))
    return checks


def format_evaluation(e: Evaluation) -> str:
    """The human-readable report."""
    lines = [f"model {e.model_version} on {e.folder or 'the clips'}: {len(e.clips)} clips, "
             f"{sum(c.windows for c in e.clips)} windows", ""]
    lines.append(f"{'arousal AUC, excited vs calm':<34} {'clips: model':>12} {'loudness':>9} {'windows: model':>15} "
                 f"{'loudness':>9}")
    lines.append(f"{'  each clip alone (cold start)':<34} {_f(e.auc_alone):>12} {_f(e.auc_alone_loudness):>9} "
                 f"{_f(e.auc_alone_windows):>15} {_f(e.auc_alone_windows_loudness):>9}")
    lines.append(f"{'  all clips in one stream':<34} {_f(e.auc_stream):>12} {_f(e.auc_stream_loudness):>9} "
                 f"{_f(e.auc_stream_windows):>15} {_f(e.auc_stream_windows_loudness):>9}")
    lines.append(f"gain +-{_GAIN_DB:.0f} dB: {100 * e.gain_state_changes:.1f} % of windows change state, "
                 f"clip arousal moves at most {e.gain_arousal_change:.3f}")
    lines.append("")
    lines.append(f"{'state':<15} {'precision':>9} {'recall':>7} {'windows':>8}")
    for state, (precision, recall, support) in e.precision_recall().items():
        lines.append(f"{state:<15} {_pct(precision):>9} {_pct(recall):>7} {support:>8}")
    lines.append("")
    short = [s[:5] for s in STATES]
    lines.append("confusion (rows: labelled, columns: heard)")
    lines.append(f"{'':<15}" + "".join(f"{s:>7}" for s in short))
    for k, state in enumerate(STATES):
        if e.confusion[k].sum():
            lines.append(f"{state:<15}" + "".join(f"{v:>7}" for v in e.confusion[k]))
    lines.append("")
    lines.append(f"{'clip':<58} {'label':<14} {'heard mostly':<14} {'arousal':>7} {'stream':>7} {'valence':>7} "
                 f"{'loud p90':>8}")
    for c in e.clips:
        lines.append(f"{c.name[:58]:<58} {c.label:<14} {c.majority:<14} {c.arousal:>7.2f} {c.stream_arousal:>7.2f} "
                     f"{c.valence:>+7.2f} {c.loudness_db:>8.1f}")
    lines.append("")
    for what, ok, figure in e.checks:
        lines.append(f"{'pass' if ok else 'FAIL'}  {what}: {figure}")
    lines.append("")
    lines.append(e.verdict)
    return "\n".join(lines)


def _pct(value: float) -> str:
    return "-" if value != value else f"{100 * value:.0f} %"


@dataclass
class BackgroundCheck:
    """A real arena's background with no reaction, and real cheers laid into it.

    ``calm_share``: the share of the background's windows (none of a cheer's audio in them)
    heard as CALM or ANTICIPATION. ``cheers``: per cheer, (clip, whether the stream's
    arousal peak is one of the cheer's windows, the cheer's peak arousal, the background's
    peak arousal)."""

    seconds: float
    background: list[str]  # the calm clips the background is looped from
    windows: int
    calm_share: float
    cheers: list[tuple[str, bool, float, float]]

    @property
    def passed(self) -> bool:
        return self.calm_share >= 0.7 and all(ok for _, ok, _, _ in self.cheers)


_BACKGROUND_S = 180.0
_CHEER_AT_S = 120.0
_CHEER_OVER_BED_DB = 8.0  # a goal roar over a stadium's murmur (real matches: +10..+20 dB)


def background_check(clips: Sequence[LabelledClip], predict: Predict, *, spec=None) -> BackgroundCheck | None:
    """Loop the ``calm`` clips into 3 minutes of background and hear it as a live stream;
    then, for each ``celebration``/``excitement`` clip, the same background with that cheer
    laid in at 2:00, 8 dB over the background. None without calm and cheering clips."""
    beds = [c for c in clips if c.label == "calm"]
    cheers = [c for c in clips if c.label in ("celebration", "excitement")]
    if not beds or not cheers:
        return None
    rng = np.random.default_rng(_STREAM_SEED)
    background = looped(rng, np.concatenate([c.audio for c in beds]), _BACKGROUND_S)
    windows = _windows(quantise(background), spec)
    heard = _hear(predict, windows)
    calm = sum(e.state in ("CALM", "ANTICIPATION") for e in heard)
    bed_rms = float(np.sqrt(np.mean(background ** 2))) or 1e-6
    at = int(_CHEER_AT_S * SAMPLE_RATE)
    results = []
    for clip in cheers:
        cheer = clip.audio[: len(background) - at]
        gain = bed_rms / (float(np.sqrt(np.mean(cheer ** 2))) or 1e-6) * 10 ** (_CHEER_OVER_BED_DB / 20)
        stream = background.copy()
        stream[at:at + len(cheer)] += cheer * gain
        mixed = _hear(predict, _windows(quantise(stream), spec))
        inside = [w.start.ms + w.length_ms > _CHEER_AT_S * 1000 and w.start.ms < _CHEER_AT_S * 1000 + 1000 * len(cheer)
                  / SAMPLE_RATE for w in windows]
        peak = int(np.argmax([e.arousal for e in mixed]))
        cheer_peak = max(e.arousal for e, i in zip(mixed, inside, strict=True) if i)
        bed_peak = max((e.arousal for e, i in zip(mixed, inside, strict=True) if not i), default=0.0)
        results.append((clip.path.name, bool(inside[peak]), cheer_peak, bed_peak))
    return BackgroundCheck(seconds=_BACKGROUND_S, background=[c.path.name for c in beds], windows=len(heard),
                           calm_share=calm / len(heard) if heard else float("nan"), cheers=results)


def format_background(check: BackgroundCheck) -> str:
    lines = [f"{check.seconds / 60:.0f} minutes of real arena background ({', '.join(check.background)}), looped: "
             f"{100 * check.calm_share:.0f} % of {check.windows} windows CALM or ANTICIPATION (>= 70 % wanted)"]
    for name, ok, cheer_peak, bed_peak in check.cheers:
        lines.append(f"  {'pass' if ok else 'FAIL'}  {name} laid in at {_CHEER_AT_S / 60:.0f}:00, "
                     f"{_CHEER_OVER_BED_DB:.0f} dB over it: arousal peak {cheer_peak:.2f} vs the background's "
                     f"{bed_peak:.2f}{'' if ok else ' - not the peak'}")
    return "\n".join(lines)


def shown_folder(folder: str | Path) -> str:
    """A folder as a report shows it: relative to the repository when inside it (a model
    card must not name the machine it was made on)."""
    try:
        return Path(folder).resolve().relative_to(Path(__file__).resolve().parents[2]).as_posix()
    except ValueError:
        return str(folder)


def missed_targets(evaluation: Evaluation | None, background: BackgroundCheck | None) -> list[str]:
    """The evaluation's failed checks, and the quiet-arena check if it failed, in words."""
    missed = [f"{what} ({figure})" for what, ok, figure in evaluation.checks if not ok] if evaluation else []
    if background is not None and background.calm_share < 0.7:
        missed.append(f"a quiet real arena heard as CALM or ANTICIPATION in {100 * background.calm_share:.0f} % "
                      "of its windows (>= 70 % wanted)")
    return missed
