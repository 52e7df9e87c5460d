"""A small ensemble of multilayer perceptrons trained in numpy: states, arousal and valence at once.

Inputs are standardised with the training set's mean and standard deviation and clipped
to +-:data:`CLIP` (so a microphone fault cannot push the network far outside what it
learned); two ReLU layers feed three heads: a softmax over the states, a sigmoid for
arousal and a tanh for valence. Loss: class-weighted cross-entropy (rare states count
more) plus squared errors of arousal and valence. Adam with a cosine learning-rate decay,
mini-batches drawn by a seeded generator: the same data and seed give the same weights.
Several networks (default 5), each from its own initial weights and batch order, are
averaged: one network's whims about inputs it has rarely seen (a real microphone is
never quite the synthetic one) average out. Last, a fixed *rhythm gate*: a chant is many
voices on one rhythm, so CHANTING is only believed when the analyzer hears a rhythm
(onset periodicity around :data:`streams.features.PERIODIC` or more) — without it, loud
flickering cheers of a real crowd would pass for a chant.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from streams.emotion import STATES
from streams.features import FEATURE_NAMES, PERIODIC

__all__ = ["CLIP", "RHYTHM_CENTRE", "RHYTHM_WIDTH", "Mlp", "TrainConfig", "ensemble_forward", "rhythm_gate",
           "train_ensemble", "train_mlp"]

CLIP = 6.0
# The rhythm gate: CHANTING needs a rhythm the analyzer can hear. Its probability is scaled
# by sigmoid((periodicity - RHYTHM_CENTRE) / RHYTHM_WIDTH) and the rest renormalised, so a
# window without a tempo (periodicity under streams.features.PERIODIC) is rarely a chant.
RHYTHM_CENTRE = PERIODIC
RHYTHM_WIDTH = 0.02
_PERIODICITY = FEATURE_NAMES.index("periodicity")
_CHANTING = STATES.index("CHANTING")


@dataclass(frozen=True)
class TrainConfig:
    hidden: tuple[int, int] = (48, 32)
    epochs: int = 60
    batch: int = 256
    learning_rate: float = 3e-3
    weight_decay: float = 1e-4
    arousal_weight: float = 4.0
    valence_weight: float = 2.0
    class_weight_power: float = 0.5  # 0: no class weights, 1: fully balanced
    input_noise: float = 0.0  # Gaussian noise added to the standardised inputs while training
    members: int = 5  # networks in the ensemble (their outputs are averaged)


@dataclass
class Mlp:
    """Weights of the network (float64 while training)."""

    mean: np.ndarray
    std: np.ndarray
    w1: np.ndarray
    b1: np.ndarray
    w2: np.ndarray
    b2: np.ndarray
    wc: np.ndarray
    bc: np.ndarray
    wa: np.ndarray
    ba: np.ndarray
    wv: np.ndarray
    bv: np.ndarray

    def params(self) -> list[np.ndarray]:
        return [self.w1, self.b1, self.w2, self.b2, self.wc, self.bc, self.wa, self.ba, self.wv, self.bv]

    def normalise(self, x: np.ndarray) -> np.ndarray:
        return np.clip((x - self.mean) / self.std, -CLIP, CLIP)

    def forward(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Probabilities (n, states), arousal (n,), valence (n,) for raw features ``x``."""
        h1 = np.maximum(self.normalise(x) @ self.w1 + self.b1, 0.0)
        h2 = np.maximum(h1 @ self.w2 + self.b2, 0.0)
        probabilities = _softmax(h2 @ self.wc + self.bc)
        return probabilities, _sigmoid(h2 @ self.wa + self.ba)[:, 0], np.tanh(h2 @ self.wv + self.bv)[:, 0]


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def train_mlp(x: np.ndarray, states: np.ndarray, arousal: np.ndarray, valence: np.ndarray, *, n_states: int,
              seed: int, config: TrainConfig | None = None, member: int = 0,
              on_epoch: Callable[[int, float], None] | None = None) -> Mlp:
    """Fit the network to raw features ``x`` (n, f), state indices, arousal and valence."""
    config = config or TrainConfig()
    rng = np.random.default_rng([seed, 77, member])
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(states, dtype=np.int64)
    a = np.asarray(arousal, dtype=np.float64)
    v = np.asarray(valence, dtype=np.float64)
    n, f = x.shape
    mean = x.mean(axis=0)
    std = np.maximum(x.std(axis=0), 1e-3)
    h1, h2 = config.hidden

    def init(fan_in: int, fan_out: int) -> np.ndarray:
        return rng.normal(0.0, np.sqrt(2.0 / fan_in), (fan_in, fan_out))

    model = Mlp(mean=mean, std=std, w1=init(f, h1), b1=np.zeros(h1), w2=init(h1, h2), b2=np.zeros(h2),
                wc=init(h2, n_states) * 0.5, bc=np.zeros(n_states), wa=init(h2, 1) * 0.5, ba=np.zeros(1),
                wv=init(h2, 1) * 0.5, bv=np.zeros(1))
    counts = np.bincount(y, minlength=n_states).astype(np.float64)
    present = counts > 0
    class_w = np.zeros(n_states)
    class_w[present] = (n / (present.sum() * counts[present])) ** config.class_weight_power
    weights = class_w[y] / class_w[y].mean()
    xn = model.normalise(x)

    params = model.params()
    m1 = [np.zeros_like(p) for p in params]
    m2 = [np.zeros_like(p) for p in params]
    beta1, beta2, eps = 0.9, 0.999, 1e-8
    steps_per_epoch = max(1, int(np.ceil(n / config.batch)))
    total_steps = config.epochs * steps_per_epoch
    step = 0
    for epoch in range(config.epochs):
        order = rng.permutation(n)
        epoch_loss = 0.0
        for start in range(0, n, config.batch):
            idx = order[start:start + config.batch]
            batch = xn[idx]
            if config.input_noise > 0:
                batch = batch + config.input_noise * rng.standard_normal(batch.shape)
            grads, loss = _gradients(model, batch, y[idx], a[idx], v[idx], weights[idx], config)
            epoch_loss += loss * len(idx)
            step += 1
            lr = config.learning_rate * 0.5 * (1.0 + np.cos(np.pi * step / total_steps))
            for i, (p, g) in enumerate(zip(params, grads, strict=True)):
                if p.ndim == 2:
                    g = g + config.weight_decay * p
                m1[i] = beta1 * m1[i] + (1 - beta1) * g
                m2[i] = beta2 * m2[i] + (1 - beta2) * g * g
                p -= lr * (m1[i] / (1 - beta1 ** step)) / (np.sqrt(m2[i] / (1 - beta2 ** step)) + eps)
        if on_epoch is not None:
            on_epoch(epoch + 1, epoch_loss / n)
    return model


def train_ensemble(x: np.ndarray, states: np.ndarray, arousal: np.ndarray, valence: np.ndarray, *, n_states: int,
                   seed: int, config: TrainConfig | None = None) -> list[Mlp]:
    """``config.members`` networks, each from its own initial weights and batch order."""
    config = config or TrainConfig()
    return [train_mlp(x, states, arousal, valence, n_states=n_states, seed=seed, config=config,
                      member=k) for k in range(config.members)]


def rhythm_gate(probabilities: np.ndarray, x: np.ndarray) -> np.ndarray:
    """``probabilities`` (n, states) with CHANTING scaled down where the raw features ``x``
    have no audible rhythm, renormalised."""
    gate = 1.0 / (1.0 + np.exp(-(np.asarray(x, dtype=np.float64)[:, _PERIODICITY] - RHYTHM_CENTRE) / RHYTHM_WIDTH))
    gated = np.array(probabilities, dtype=np.float64)
    gated[:, _CHANTING] *= gate
    return gated / gated.sum(axis=1, keepdims=True)


def ensemble_forward(members: list[Mlp], x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """What the ONNX graph computes: the ensemble's mean probabilities after the rhythm
    gate, mean arousal and mean valence."""
    outputs = [m.forward(x) for m in members]
    probabilities, arousal, valence = (np.mean([o[i] for o in outputs], axis=0) for i in range(3))
    return rhythm_gate(probabilities, x), arousal, valence


def _gradients(model: Mlp, xn: np.ndarray, y: np.ndarray, a: np.ndarray, v: np.ndarray, w: np.ndarray,
               config: TrainConfig) -> tuple[list[np.ndarray], float]:
    n = len(y)
    z1 = xn @ model.w1 + model.b1
    h1 = np.maximum(z1, 0.0)
    z2 = h1 @ model.w2 + model.b2
    h2 = np.maximum(z2, 0.0)
    probs = _softmax(h2 @ model.wc + model.bc)
    pa = _sigmoid(h2 @ model.wa + model.ba)[:, 0]
    pv = np.tanh(h2 @ model.wv + model.bv)[:, 0]
    loss_c = -(w * np.log(probs[np.arange(n), y] + 1e-12)).mean()
    loss_a = config.arousal_weight * ((pa - a) ** 2).mean()
    loss_v = config.valence_weight * ((pv - v) ** 2).mean()
    # Backward.
    dzc = probs.copy()
    dzc[np.arange(n), y] -= 1.0
    dzc *= w[:, None] / n
    dza = (config.arousal_weight * 2.0 * (pa - a) / n * pa * (1 - pa))[:, None]
    dzv = (config.valence_weight * 2.0 * (pv - v) / n * (1 - pv ** 2))[:, None]
    dh2 = dzc @ model.wc.T + dza @ model.wa.T + dzv @ model.wv.T
    dz2 = dh2 * (z2 > 0)
    dh1 = dz2 @ model.w2.T
    dz1 = dh1 * (z1 > 0)
    grads = [
        xn.T @ dz1, dz1.sum(axis=0), h1.T @ dz2, dz2.sum(axis=0),
        h2.T @ dzc, dzc.sum(axis=0), h2.T @ dza, dza.sum(axis=0), h2.T @ dzv, dzv.sum(axis=0),
    ]
    return grads, float(loss_c + loss_a + loss_v)
