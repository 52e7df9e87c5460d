"""The crowd emotion model as scikit-learn estimators: how it is built and fitted.

Three small estimators read the same feature vector (:data:`streams.features.FEATURE_NAMES`):

* **states**: multilayer perceptrons (one hidden ReLU layer) with a softmax over
  :data:`streams.emotion.STATES`, ``members`` of them from different seeds, their
  probabilities averaged (soft voting): one network's whims about inputs it has rarely seen
  average out;
* **arousal**: a linear model of the log-odds of arousal on a few features that mean the
  same thing on any microphone — loudness and brightness over the match's baseline (in full
  once the baseline is warm), how tightly the crowd's energy gathers (``spread_oct``) and
  how hard it shouts (``effort_db``) — so that inside a stream arousal rises with the
  crowd's loudness, and in a clip heard alone it comes from how the crowd shouts;
* **valence**: a perceptron regressor on every feature, clipped to [-1, 1].

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

__all__ = ["AROUSAL_FEATURES", "EmotionEstimators", "ModelConfig", "fit_estimators", "logit"]

AROUSAL_FEATURES = ("loudness_rel_db", "brightness_rel_oct", "spread_oct", "effort_db")
_AROUSAL_FLOOR = 0.02  # arousal targets are clipped to [floor, 1 - floor] before the log-odds


@dataclass(frozen=True)
class ModelConfig:
    """The model's size and training (defaults: what ``crowdsound model train`` ships)."""

    hidden: int = 32  # hidden units of each state network
    alpha: float = 1.0  # L2 penalty of the state networks
    members: int = 3  # state networks averaged
    regressor_hidden: int = 16  # hidden units of the valence network
    regressor_alpha: float = 1.0
    arousal_features: tuple[str, ...] = AROUSAL_FEATURES
    real_weight: float = 1.0  # total weight of the real windows over that of the synthetic ones
    class_weight_power: float = 0.5  # 0: no class weights, 1: fully balanced
    max_iter: int = 300


@dataclass
class EmotionEstimators:
    """The fitted estimators (scikit-learn pipelines)."""

    states: Any  # predict_proba -> (n, len(STATES))
    arousal: Any  # predict -> log-odds of arousal, (n,)
    valence: Any  # predict -> valence before clipping, (n,)
    config: ModelConfig = field(default_factory=ModelConfig)

    def predict(self, features: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Probabilities (n, S), arousal (n,) and valence (n,) straight from scikit-learn
        (before the ONNX graph's rhythm gate)."""
        probabilities = self.states.predict_proba(features)
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


def fit_estimators(features: np.ndarray, states: np.ndarray, arousal: np.ndarray, valence: np.ndarray,
                   real: np.ndarray, *, seed: int = 0, config: ModelConfig | None = None) -> EmotionEstimators:
    """Fit the three estimators on training windows; ``real`` marks windows of real recordings."""
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import VotingClassifier
    from sklearn.neural_network import MLPClassifier, MLPRegressor
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    config = config or ModelConfig()
    x = np.asarray(features, dtype=np.float32)
    y = np.asarray(states, dtype=np.int64)
    weights, class_weights = sample_weights(y, real, config)
    networks = [
        (f"net{k}", MLPClassifier(hidden_layer_sizes=(config.hidden,), alpha=config.alpha, max_iter=config.max_iter,
                                  early_stopping=True, random_state=seed * 100 + k))
        for k in range(config.members)
    ]
    # Every state must be a class, even one the data lacks, so that the outputs line up with STATES.
    missing = [k for k in range(len(STATES)) if not (y == k).any()]
    if missing:
        raise ValueError(f"no training windows of {', '.join(STATES[k] for k in missing)}")
    states_model = Pipeline([("scale", StandardScaler()), ("vote", VotingClassifier(networks, voting="soft", flatten_transform=False))])
    states_model.fit(x, y, vote__sample_weight=class_weights)

    columns = [FEATURE_NAMES.index(name) for name in config.arousal_features]
    arousal_model = Pipeline([
        ("select", ColumnTransformer([("keep", "passthrough", columns)], remainder="drop")),
        ("scale", StandardScaler()),
        # A linear model (identity activation), fitted like the networks: L2 penalty, Adam.
        ("linear", MLPRegressor(hidden_layer_sizes=(len(columns),), activation="identity", alpha=config.regressor_alpha,
                                max_iter=config.max_iter, early_stopping=True, random_state=seed)),
    ])
    arousal_model.fit(x, logit(arousal), linear__sample_weight=weights)

    valence_model = Pipeline([
        ("scale", StandardScaler()),
        ("network", MLPRegressor(hidden_layer_sizes=(config.regressor_hidden,), alpha=config.regressor_alpha,
                                 max_iter=config.max_iter, early_stopping=True, random_state=seed)),
    ])
    valence_model.fit(x, np.asarray(valence, dtype=np.float64), network__sample_weight=weights)
    return EmotionEstimators(states_model, arousal_model, valence_model, config)
