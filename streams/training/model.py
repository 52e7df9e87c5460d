"""The crowd emotion model as scikit-learn estimators: how it is built and fitted.

Three small estimators read the same feature vector (:data:`streams.features.FEATURE_NAMES`):

* **states**: multilayer perceptrons (two hidden ReLU layers) with a softmax over
  :data:`streams.emotion.STATES`, ``members`` of them from different seeds, their
  probabilities averaged (soft voting): one network's whims about inputs it has rarely seen
  average out;
* **arousal**: its log-odds in two stages. First a small network ``g`` hears the *timbre*
  (every feature but those relative to the baseline) on windows heard from a cold start
  (clips: no baseline, so nothing else can tell); then a linear term in loudness and
  brightness over the match's baseline, its warmth, and warmth x ``g`` is fitted on every
  window on top of it. So a clip heard alone gets its arousal from how the crowd shouts, and
  inside a warm stream arousal follows the crowd's loudness over its baseline, the timbre
  counting as much as the data say it should there. (Fitted in one go, the loudness of the
  synthetic matches took the credit and the timbre learned next to nothing: heard alone,
  every crowd sounded alike.)
* **valence**: a perceptron regressor on every feature, clipped to [-1, 1];
* **states in a warm stream**: one more perceptron hears only how the window differs from
  the match's usual self (level, brightness, spread, effort and the 13-band spectral shape
  over the baseline) and the gain-free texture (level fluctuation and rise, flux, onsets,
  whistles, periodicity), on windows whose baseline is warm. Its probabilities take over
  from the state networks' as the baseline warms (``warm_share`` x warmth ^ ``warm_power``):
  a venue's microphone and EQ colour every window of a match alike, so inside a stream the
  absolute spectrum says more about the microphone than the crowd, and a quiet arena heard
  through a bright microphone must still be calm.

Every estimator standardises its inputs (``StandardScaler``) and is trained with sample
weights: the real recordings weigh, in total, ``real_weight`` times as much as the
synthetic matches (there are far fewer of them, and they are what the model is for), and
the states are weighted by inverse frequency ^ ``class_weight_power`` (rare states count
more). Exported by skl2onnx (:mod:`streams.training.export`). Deterministic for a seed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from streams.emotion import STATES
from streams.features import FEATURE_NAMES

__all__ = ["AROUSAL_LEVEL", "AROUSAL_TIMBRE", "WARMTH", "WARM_STATE", "ArousalModel", "EmotionEstimators",
           "ModelConfig", "fit_estimators", "logit"]

AROUSAL_LEVEL = ("loudness_rel_db", "brightness_rel_oct", "spread_rel_oct", "effort_rel_db")
WARMTH = "warmth"
AROUSAL_TIMBRE = tuple(name for name in FEATURE_NAMES if name not in (*AROUSAL_LEVEL, WARMTH) and "_rel_" not in name)
# What the warm-stream state network hears: the window against the match's baseline, and texture.
WARM_STATE = ("loudness_rel_db", "loudness_std_db", "loudness_rise_db", "brightness_rel_oct", "spread_rel_oct",
              "effort_rel_db", "flux", "onset_rate_hz", "whistle_db", "periodicity",
              *(name for name in FEATURE_NAMES if name.endswith("hz_rel_db")))
_FULLY_WARM = 0.99  # the warm network learns from windows whose baseline has heard WARM_S
_AROUSAL_FLOOR = 0.02  # arousal targets are clipped to [floor, 1 - floor] before the log-odds


@dataclass(frozen=True)
class ModelConfig:
    """The model's size and training (defaults: what ``crowdsound model train`` ships)."""

    hidden: tuple[int, ...] = (96, 48)  # hidden layers of each state network
    alpha: float = 0.1  # L2 penalty of the state networks
    members: int = 3  # state networks averaged
    regressor_hidden: int = 16  # hidden units of the valence network
    regressor_alpha: float = 1.0
    arousal_timbre: tuple[str, ...] = AROUSAL_TIMBRE
    arousal_level: tuple[str, ...] = AROUSAL_LEVEL
    arousal_alpha: float = 30.0  # L2 penalty of the timbre network (few real clips: keep it smooth)
    real_weight: float = 1.0  # total weight of the real windows over that of the synthetic ones
    class_weight_power: float = 0.25  # 0: no class weights, 1: fully balanced
    cold_weight: float = 3.0  # windows heard from a cold start weigh this much more for the states
    max_iter: int = 300
    warm_state: tuple[str, ...] = WARM_STATE
    warm_hidden: tuple[int, ...] = (48, 24)  # hidden layers of the warm-stream state network
    warm_share: float = 0.7  # its share of the state probabilities at full warmth (0: not used)
    # Its share grows as warmth ** warm_power: a baseline that has heard a few seconds is mostly the
    # recording itself, not the crowd's usual self (a clip of cheering heard alone: its baseline is the cheer).
    warm_power: int = 4


@dataclass
class EmotionEstimators:
    """The fitted estimators (scikit-learn pipelines)."""

    states: Any  # predict_proba -> (n, len(STATES))
    arousal: Any  # predict -> log-odds of arousal, (n,)
    valence: Any  # predict -> valence before clipping, (n,)
    config: ModelConfig = field(default_factory=ModelConfig)
    warm_states: Any = None  # predict_proba -> (n, len(STATES)), on WARM_STATE features; None: not used

    def predict(self, features: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Probabilities (n, S), arousal (n,) and valence (n,) straight from scikit-learn
        (before the ONNX graph's rhythm gate)."""
        probabilities = self.states.predict_proba(features)
        if self.warm_states is not None:
            warmth = np.clip(features[:, [FEATURE_NAMES.index(WARMTH)]], 0.0, 1.0)
            share = self.config.warm_share * warmth ** self.config.warm_power
            probabilities = probabilities + share * (self.warm_states.predict_proba(features) - probabilities)
        arousal = 1.0 / (1.0 + np.exp(-self.arousal.predict(features)))
        valence = np.clip(self.valence.predict(features), -1.0, 1.0)
        return probabilities, arousal, valence


def logit(arousal: np.ndarray) -> np.ndarray:
    """Log-odds of arousal targets (clipped away from 0 and 1)."""
    p = np.clip(np.asarray(arousal, dtype=np.float64), _AROUSAL_FLOOR, 1.0 - _AROUSAL_FLOOR)
    return np.log(p / (1.0 - p))


def sample_weights(states: np.ndarray, real: np.ndarray, config: ModelConfig) -> tuple[np.ndarray, np.ndarray]:
    """(weights for the regressors, weights for the state classifier), each averaging 1."""
    real = np.asarray(real, dtype=bool)
    weights = np.ones(len(states))
    if real.any() and (~real).any():
        weights[real] = config.real_weight * (~real).sum() / real.sum()
    counts = np.bincount(states, minlength=len(STATES)).astype(np.float64)
    per_class = (counts.sum() / np.maximum(counts, 1.0)) ** config.class_weight_power
    class_weights = weights * per_class[states]
    return weights * len(weights) / weights.sum(), class_weights * len(class_weights) / class_weights.sum()


class ArousalModel:
    """Arousal's log-odds ``g + a L + b B + c W + d W g``: ``g`` a timbre network (fitted on
    cold-start windows), ``L`` and ``B`` level and brightness over the baseline, ``W`` the
    baseline's warmth; the linear part is fitted on every window (see the module doc)."""

    def __init__(self, timbre: Any, level: Any, level_columns: list[int], warmth_column: int) -> None:
        self.timbre = timbre  # pipeline: select timbre features, scale, MLPRegressor
        self.level = level  # Ridge on level_inputs()
        self.level_columns = level_columns
        self.warmth_column = warmth_column

    def level_inputs(self, features: np.ndarray, timbre: np.ndarray) -> np.ndarray:
        """[L, B, W, W g] per row."""
        warmth = features[:, self.warmth_column]
        return np.column_stack([features[:, self.level_columns], warmth, warmth * timbre])

    def predict(self, features: np.ndarray) -> np.ndarray:
        timbre = self.timbre.predict(features)
        return timbre + self.level.predict(self.level_inputs(features, timbre))


def _select(features: np.ndarray, names: tuple[str, ...]):
    from sklearn.compose import ColumnTransformer

    columns = [FEATURE_NAMES.index(name) for name in names]
    return ColumnTransformer([("keep", "passthrough", columns)], remainder="drop").fit(features[:2])


def _arousal_model(features: np.ndarray, target: np.ndarray, weights: np.ndarray, cold: np.ndarray,
                   config: ModelConfig, seed: int) -> ArousalModel:
    """The two-stage arousal model (see the module doc)."""
    from sklearn.linear_model import Ridge
    from sklearn.neural_network import MLPRegressor
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    if not cold.any():
        raise ValueError("no windows heard from a cold start (clips) to learn arousal from timbre")
    timbre = Pipeline([
        ("select", _select(features, config.arousal_timbre)), ("scale", StandardScaler()),
        ("network", MLPRegressor(hidden_layer_sizes=(config.regressor_hidden,), alpha=config.arousal_alpha,
                                 max_iter=config.max_iter, early_stopping=True, random_state=seed)),
    ])
    timbre.fit(features[cold], target[cold], network__sample_weight=weights[cold] * cold.sum() / weights[cold].sum())
    model = ArousalModel(timbre, Ridge(alpha=1.0), [FEATURE_NAMES.index(n) for n in config.arousal_level],
                         FEATURE_NAMES.index(WARMTH))
    g = timbre.predict(features)
    model.level.fit(model.level_inputs(features, g), target - g, sample_weight=weights)
    return model


def fit_estimators(features: np.ndarray, states: np.ndarray, arousal: np.ndarray, valence: np.ndarray,
                   real: np.ndarray, cold: np.ndarray, *, seed: int = 0,
                   config: ModelConfig | None = None) -> EmotionEstimators:
    """Fit the three estimators on training windows; ``real`` marks the windows of real
    recordings and ``cold`` those heard from a cold start (clips, not streams)."""
    from sklearn.ensemble import VotingClassifier
    from sklearn.neural_network import MLPClassifier, MLPRegressor
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    config = config or ModelConfig()
    x = np.asarray(features, dtype=np.float32)
    y = np.asarray(states, dtype=np.int64)
    weights, class_weights = sample_weights(y, real, config)
    cold = np.asarray(cold, dtype=bool)
    class_weights = class_weights * np.where(cold, config.cold_weight, 1.0)
    class_weights *= len(class_weights) / class_weights.sum()
    networks = [
        (f"net{k}", MLPClassifier(hidden_layer_sizes=config.hidden, alpha=config.alpha, max_iter=config.max_iter,
                                  early_stopping=True, random_state=seed * 100 + k))
        for k in range(config.members)
    ]
    # Every state must be a class, even one the data lacks, so that the outputs line up with STATES.
    missing = [k for k in range(len(STATES)) if not (y == k).any()]
    if missing:
        raise ValueError(f"no training windows of {', '.join(STATES[k] for k in missing)}")
    states_model = Pipeline([("scale", StandardScaler()), ("vote", VotingClassifier(networks, voting="soft", flatten_transform=False))])
    states_model.fit(x, y, vote__sample_weight=class_weights)

    arousal_model = _arousal_model(x, logit(arousal), weights, cold, config, seed)

    valence_model = Pipeline([
        ("scale", StandardScaler()),
        ("network", MLPRegressor(hidden_layer_sizes=(config.regressor_hidden,), alpha=config.regressor_alpha,
                                 max_iter=config.max_iter, early_stopping=True, random_state=seed)),
    ])
    valence_model.fit(x, np.asarray(valence, dtype=np.float64), network__sample_weight=weights)

    # Without warm windows of every state (a small user data set of short clips), there is no
    # warm-stream network and the state networks decide alone.
    warm_model = None
    warm = x[:, FEATURE_NAMES.index(WARMTH)] >= _FULLY_WARM
    if config.warm_share > 0 and all((y[warm] == k).any() for k in range(len(STATES))):
        warm_model = Pipeline([
            ("select", _select(x, config.warm_state)), ("scale", StandardScaler()),
            ("network", MLPClassifier(hidden_layer_sizes=config.warm_hidden, alpha=config.alpha,
                                      max_iter=config.max_iter, early_stopping=True, random_state=seed)),
        ])
        _, warm_weights = sample_weights(y[warm], np.asarray(real, dtype=bool)[warm], config)
        warm_model.fit(x[warm], y[warm], network__sample_weight=warm_weights)
    return EmotionEstimators(states_model, arousal_model, valence_model, config, warm_model)
