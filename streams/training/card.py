"""The model card: a Markdown page that says what the model is, how it was made, how well it does."""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING

import numpy as np

from streams.emotion import STATES
from streams.features import FEATURE_NAMES
from streams.training.mlp import RHYTHM_CENTRE, RHYTHM_WIDTH

if TYPE_CHECKING:
    from streams.training.train import TrainReport

__all__ = ["FEATURE_MEANINGS", "model_card"]

FEATURE_MEANINGS = {
    "loudness_rel_db": "window loudness minus the match's running baseline (the crowd's floor), dB",
    "loudness_std_db": "frame-to-frame (100 ms) level fluctuation within the window, dB",
    "loudness_rise_db": "level of the window's last third minus its first third, dB (swells, roars starting)",
    "band_0_db": "energy 0-150 Hz relative to the window's total, dB",
    "band_1_db": "150-300 Hz (voice fundamentals, boos, groans)",
    "band_2_db": "300-600 Hz (\"oh\"/\"oo\" vowels: boos, groans)",
    "band_3_db": "600-1200 Hz (\"ah\" vowels: cheers)",
    "band_4_db": "1.2-2.4 kHz (shouts, screams)",
    "band_5_db": "2.4-4.8 kHz (whistles, screams, claps)",
    "band_6_db": "4.8-9.6 kHz (claps, sibilance; rolled off by distance)",
    "band_7_db": "9.6-24 kHz (air)",
    "centroid_rel_oct": "spectral centroid against the baseline's, octaves (brighter = more shouting)",
    "rolloff_rel_oct": "85 % roll-off frequency against the baseline centroid, octaves",
    "flatness": "spectral flatness, 0 tonal .. 1 noise",
    "flux": "mean positive log-spectral change per 20 ms (onset strength)",
    "onset_rate_hz": "onset peaks per second",
    "whistle_db": "strongest 2-4 kHz spectral peak over the band's median, dB (fingers-in-mouth whistles)",
    "periodicity": "autocorrelation strength of the 8 s onset envelope at the best tempo lag (chants, rhythmic clapping)",
}


def _pct(x: float) -> str:
    return "n/a" if x != x else f"{100 * x:.1f} %"


def _counts(states: np.ndarray) -> list[int]:
    return np.bincount(states, minlength=len(STATES)).tolist()


def model_card(report: TrainReport) -> str:
    o = report.options
    e = report.evaluation
    train, test = report.train_set, report.test_set
    lines: list[str] = []
    add = lines.append
    add("# Model card: crowd emotion (`crowd_emotion.onnx`)")
    add("")
    add(f"- **Version:** `{report.version}` (training date + the first 10 hex digits of the data set's SHA-256); "
        "it is written into every EmotionWindow's `model_version`.")
    add(f"- **Made by:** `{o.command}` — {report.data_seconds:.0f} s to render and analyse the data "
        f"({o.jobs} processes), {report.train_seconds:.0f} s to train, on a {os_cpus()}-core machine.")
    add(f"- **Data SHA-256:** `{report.data_sha256}`")
    add("- **Runs with:** onnxruntime, one session, one thread (`streams.emotion.EmotionModel`).")
    add("")
    add("## What it does")
    add("")
    add("It hears one window of crowd sound (default 3 s, every 1 s) through the 18 features of "
        "`streams.features.feature_vector` and says which of seven states the crowd is in — "
        + ", ".join(f"`{s}`" for s in STATES) + " — with a probability for each, plus **arousal** "
        "(0 quiet .. 1 roaring) and **valence** (-1 angry or dismayed .. +1 joyful, for the *home* crowd). "
        "It hears sound only; the stream worker adds match context (a goal for the home side, a card) afterwards.")
    add("")
    add("## Data")
    add("")
    if o.matches:
        add(f"- **{o.matches} synthetic matches** from the repository's stadium (`producers/stadium`), "
            f"{o.minutes:g} min of audio each ({report.audio_minutes:.0f} min in all), stadium seeds "
            f"{report.match_seeds[0]}..{report.match_seeds[-1]} (none of them a shipped script's seed). Each is a random "
            "script (`streams/training/scripts.py`): home share of the crowd 0.6-0.92; goals for both sides "
            "(some penalties, own goals), chances off the post, saved or blocked, misses, saves, yellow and red "
            "cards often followed by whistles or boos, VAR reviews, penalties awarded, substitutions, chants "
            "(three tunes, 70-170 bpm, either end), applause, boos, whistles and quiet spells; intensities 0.5-1.5.")
        add("- Rendered at 48 kHz mono, quantised to 16 bits like a venue encoder's frames, cut into 100 ms frames "
            "with the script's match clock and analysed by the live `CrowdAnalyzer` — the same code the worker runs.")
        add(f"- Three views per match: the whole match as the live worker hears it (`match`: the baseline warms up); "
            "the whole match through another microphone (`match-eq`); and "
            f"{o.excerpts} short excerpts per match (`clip`: 8-20 s, most starting within 6 s of a moment) analysed from "
            "a cold start, as `crowdsound analyze` sees a user's recording.")
        add("- \"Another microphone\" (`match-eq` and every excerpt, `streams/training/dataset.py`): a gain of "
            "-14..+4 dB; mostly a different colour — a low cut (6 or 12 dB/octave from 80-600 Hz, as on phones and "
            "field recorders), a treble roll-off from 2.5-10 kHz or a treble lift of 4-14 dB; and half of the time a "
            "*nearer, smaller crowd*: random 3-9 dB fluctuations of the short-time spectrum in 8-32 bands, "
            "aperiodic, 4-12 times a second, because fewer voices reaching a microphone flicker more than a dense, "
            "reverberant stand. Excerpts also get recordists' fades (in 0.2-2.5 s, out 0.3-4 s) and half of them "
            "are played 1.1-1.6 times faster, every voice up to 8 semitones higher (a crowd with more women and "
            "children, shriller screams; the synthetic voices are mostly men's); their labels are stretched to match.")
        add("- Why these: the real recording below has far less energy under 600 Hz, more spectral flux, level "
            "fluctuation and spectral peaks than the synthetic stands (its features lie 3-5 standard deviations "
            "outside the unaugmented synthetic data). These augmentations were chosen after looking at that "
            "recording's features, so it is a sanity check, not an independent test set.")
    if report.clip_counts:
        add(f"- **Labelled clips** from `{o.clips}`: " + ", ".join(
            f"{state} {count}" for state, count in sorted(report.clip_counts.items())) + " files (view `user`); "
            "each window gets its folder's state and that state's typical arousal and valence.")
    add(f"- **{len(train) + len(test)} windows**: {len(train)} for training, {len(test)} held out.")
    add("")
    add("| state | train windows | held-out windows |")
    add("|---|---:|---:|")
    for state, n_train, n_test in zip(STATES, _counts(train.states), _counts(test.states), strict=True):
        add(f"| {state} | {n_train} | {n_test} |")
    add("")
    add("## Features")
    add("")
    add("The raw `feature_vector` (float32, 18 values); the graph standardises them with the training set's mean "
        "and standard deviation and clips at +-6 standard deviations.")
    add("")
    add("| feature | meaning |")
    add("|---|---|")
    for name in FEATURE_NAMES:
        add(f"| `{name}` | {FEATURE_MEANINGS.get(name, '')} |")
    add("")
    add("## Labels: how the ground truth is made")
    add("")
    add("Synthetic windows are labelled from the stadium's own plan by `producers/stadium/labels.py` "
        "(`window_labels`, `crowd_state_at`), not by ear:")
    add("")
    add("1. The plan's rates (grains per second of each layer — talk, shouts, screams, \"ooh\"s, groans, boos, "
        "whistles, claps — per section, home and away, plus the chants) are averaged over the window and the "
        "half second before it; the rates of the same match with no moments are subtracted. Each excess becomes "
        "audible power: rate x the renderer's gain^2 x the layer's mean grain energy x how well the section is "
        "heard (the away end ~2 dB less than the home stands).")
    add("2. Loudness `level_db` is the total against a full stadium's idle murmur; "
        "**arousal** = 1 / (1 + exp(-(level_db - 8) / 4)) (murmur 0.12, chant ~0.5, goal roar ~0.95).")
    add("3. **State**, for the home crowd: excess under 60 % of the murmur -> CALM; otherwise the loudest reaction: "
        "chant -> CHANTING, boos + whistles -> ANGER, groans -> DISAPPOINTMENT, \"ooh\"s -> ANTICIPATION, "
        "applause -> EXCITEMENT; cheers from the home section -> CELEBRATION when at least 25x the murmur "
        "(goals, VAR confirming a goal, penalties awarded, a win at the whistle), else EXCITEMENT (kick-off, saves); "
        "cheers mostly from the away end and at least 8x the murmur (an away goal) -> DISAPPOINTMENT: the home "
        "crowd has conceded, its groan under the away end's roar.")
    add("4. **Valence**: power-weighted mean of each reaction's valence for the home crowd (home cheer +0.8, "
        "away cheer -0.5, home applause +0.5, home \"ooh\" +0.2, away \"ooh\" -0.2, home groan -0.6, away groan "
        "+0.2, boos/whistles -0.8, home chant +0.4, away chant -0.1), the murmur counting as neutral.")
    add("")
    add("## Model")
    add("")
    c = report.config
    add(f"An ensemble of {c.members} multilayer perceptrons trained in numpy (`streams/training/mlp.py`), their "
        f"outputs averaged: 18 -> {c.hidden[0]} ReLU -> {c.hidden[1]} ReLU -> three heads (softmax over the 7 states, "
        "sigmoid arousal, tanh valence). Inputs standardised with the training set's mean and standard deviation "
        f"and clipped at +-6. Loss: cross-entropy with class weights (inverse frequency ^ {c.class_weight_power:g}) "
        f"+ {c.arousal_weight:g} x arousal squared error + {c.valence_weight:g} x valence squared error. Adam, "
        f"{c.epochs} epochs, batches of {c.batch}, learning rate {c.learning_rate:g} with cosine decay, weight decay "
        f"{c.weight_decay:g}, seed {o.seed} (each network its own initial weights and batch order). Exported by "
        "building the ONNX graph node by node (`streams/training/export.py`: Sub, Mul, Clip, MatMul, Add, Relu, "
        "Softmax, Sigmoid, Tanh, Mean, Squeeze, Gather, ReduceSum, Div; opset 17).")
    add("")
    add(f"A fixed **rhythm gate** follows the ensemble: a chant is many voices on one rhythm, so the probability of "
        f"CHANTING is multiplied by sigmoid((periodicity - {RHYTHM_CENTRE:g}) / {RHYTHM_WIDTH:g}) and the "
        f"probabilities renormalised; {RHYTHM_CENTRE:g} is `streams.features.PERIODIC`, the periodicity above which "
        "the analyzer reports a tempo. Without it, the flickering cheers of a real crowd passed for a chant. It costs "
        "the first seconds of each chant (the analyzer needs a few seconds of onsets to hear the rhythm), which "
        "the confusion matrix counts as errors.")
    add("")
    add("## Evaluation (held-out recordings)")
    add("")
    groups = Counter(g.split(":", 1)[0] for g in report.heldout_groups)
    add(f"The split is by recording, never by window: {groups.get('match', 0)} whole matches "
        f"(all their views) and {groups.get('clip', 0)} labelled clips were held out "
        f"(about {_pct(o.holdout)} of each kind, at least one, drawn with seed {o.seed}). Scores are of the exported "
        "ONNX file.")
    add("")
    add("| measure | value |")
    add("|---|---:|")
    add(f"| windows | {e.windows} |")
    add(f"| accuracy | {_pct(e.accuracy)} |")
    add(f"| always the most common training state | {_pct(e.majority_accuracy)} |")
    add(f"| macro F1 | {e.macro_f1:.3f} |")
    add(f"| arousal mean absolute error (0..1) | {e.arousal_mae:.3f} |")
    add(f"| valence mean absolute error (-1..1) | {e.valence_mae:.3f} |")
    for view, (n, acc) in e.by_view.items():
        add(f"| accuracy on `{view}` windows ({n}) | {_pct(acc)} |")
    add("")
    add("Confusion matrix (rows: true state, columns: predicted; counts of held-out windows):")
    add("")
    short = [s[:5] for s in STATES]
    add("| true \\ predicted | " + " | ".join(short) + " | recall |")
    add("|---|" + "---:|" * (len(STATES) + 1))
    for k, state in enumerate(STATES):
        row = e.confusion[k]
        recall = row[k] / row.sum() if row.sum() else float("nan")
        add(f"| {state} | " + " | ".join(str(int(v)) for v in row) + f" | {_pct(recall)} |")
    precision = [e.confusion[k, k] / e.confusion[:, k].sum() if e.confusion[:, k].sum() else float("nan")
                 for k in range(len(STATES))]
    add("| precision | " + " | ".join(_pct(p) for p in precision) + " | |")
    add("")
    add("## A real recording")
    add("")
    if not report.references and not report.reference_errors:
        add("No reference recording was given (`--reference FILE`; by default "
            "`../shared/data/crowd-cheering-freesound-365132-cc0.wav` when it exists).")
    for path, records in report.references:
        full = [r for r in records if not r["partial"]]
        states = Counter(r["state"] for r in full)
        cheering = sum(states[s] for s in ("EXCITEMENT", "CELEBRATION"))
        add(f"`{path.name}` (a real crowd cheering, CC0, never trained on), analysed as "
            f"`crowdsound analyze {path.name}` does — from a cold start, so loudness relative to the baseline "
            "is ~0 and the model must hear the cheering in the spectrum and dynamics. Of its "
            f"{len(full)} complete windows, {cheering} are EXCITEMENT or CELEBRATION ("
            + ", ".join(f"{s} {n}" for s, n in states.most_common()) + f"); mean arousal "
            f"{sum(r['arousal'] for r in full) / max(len(full), 1):.2f}, mean valence "
            f"{sum(r['valence'] for r in full) / max(len(full), 1):+.2f}. The last "
            f"{len(records) - len(full)} windows are cut short by the end of the file (and its fade-out).")
        add("")
        add("| window | state | arousal | valence | loudness rel. dB | periodicity | top probabilities |")
        add("|---|---|---:|---:|---:|---:|---|")
        for r in records:
            top = sorted(r["probabilities"].items(), key=lambda kv: -kv[1])[:3]
            add(f"| {r['clock']}{' (partial)' if r['partial'] else ''} | {r['state']} | {r['arousal']:.2f} | "
                f"{r['valence']:+.2f} | {r['loudness_rel_db']:+.1f} | {r['periodicity']:.2f} | "
                + ", ".join(f"{k} {v:.2f}" for k, v in top) + " |")
        add("")
    for path, error in report.reference_errors:
        add(f"`{path}` could not be analysed: {error}")
        add("")
    add("## What it cannot do")
    add("")
    add("- It learned from a synthetic stadium (plus any clips given). Its voices, room and microphones are "
        "models; a real stadium's PA, drums, brass bands, flares, wind or a microphone by a loudspeaker are "
        "sounds it has never heard, and one real recording is all it was checked against.")
    add("- It hears sound, not football: an away goal is recognised only as a roar from the far, away end "
        "over the home crowd's groan — a distance cue that a different microphone layout changes. The worker's "
        "event context (streams/context.py) is what makes a home goal CELEBRATION and an away goal DISAPPOINTMENT reliably.")
    add("- The boundaries between states are thresholds on a continuum (a loud kick-off cheer is EXCITEMENT, "
        "a goal CELEBRATION; an \"ooh\" fading into applause): neighbouring states are confused most, as the "
        "confusion matrix shows, and arousal/valence are the better signal for music.")
    add("- The first seconds of a recording have no baseline yet, so loudness is relative to the recording "
        "itself; a clip that starts mid-roar is judged by its spectrum and dynamics alone.")
    add("- A chant is CHANTING only once its rhythm is heard (the rhythm gate; the onset history is 8 s), so the "
        "first seconds of a chant are called something else, and chants slower than 60 or faster than 200 bpm, "
        "or sung without a beat, are missed. The features have no measure of voices singing one pitch together, "
        "which would tell a chant from a cheer without waiting for the rhythm.")
    add("- `flatness` is ~0 for every window of crowd sound (the steep spectral slope dominates it), so it "
        "carries no information here.")
    add("- One crowd per microphone: a mix of two stadiums, or TV commentary over the crowd, is out of scope.")
    add("")
    add("## Reproduce")
    add("")
    add("```sh")
    add(o.command)
    add("```")
    add("")
    add("Deterministic for a seed: the same command gives the same data hash and the same weights (only the "
        "date in the version changes; set `SOURCE_DATE_EPOCH` to pin it). Synthetic data only needs this "
        "repository; nothing is downloaded.")
    add("")
    return "\n".join(lines)


def os_cpus() -> int:
    import os

    return os.cpu_count() or 1
