"""The crowd emotion model: feature windows in, crowd state, arousal and valence out.

A small ONNX model run with onnxruntime (one session per process, one thread: the model
is tiny and the worker's cores are for the rest of the pipeline): scikit-learn estimators
exported by skl2onnx (:mod:`streams.training.model`). It takes the raw feature vector of
:func:`streams.features.feature_vector` — the normalisation is part of the graph — and gives probabilities over :data:`STATES`,
arousal in [0, 1] and valence in [-1, 1]. CHANTING is only believed with a rhythm: the
graph scales its probability down when the window's onset periodicity is under
:data:`streams.features.PERIODIC` (no tempo heard). The shipped model
(``streams/models/crowd_emotion.onnx``) is the output of
``crowdsound model train``; ``streams/models/MODEL_CARD.md`` says how it was made and how
well it does. Pure: no Kafka, deterministic for the same input.

>>> model = EmotionModel.load()
>>> [e.state for e in model.predict(window.features[None, :])]   # doctest: +SKIP
['CELEBRATION']
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from infra.errors import CrowdsoundError
from streams.context import STATES
from streams.features import FEATURE_NAMES

__all__ = ["DEFAULT_MODEL_PATH", "Emotion", "EmotionModel", "STATES"]

# STATES (streams/context.py): the CrowdState symbols of schemas/EmotionWindow.avsc, which is
# also the model's output order.
DEFAULT_MODEL_PATH = Path(__file__).resolve().parent / "models" / "crowd_emotion.onnx"

# The graph's contract (written by streams.training.export).
INPUT = "features"
OUTPUTS = ("probabilities", "arousal", "valence")
META_VERSION = "crowdsound.version"
META_STATES = "crowdsound.states"
META_FEATURES = "crowdsound.features"


@dataclass(frozen=True)
class Emotion:
    """What the model hears in one window.

    ``state`` is the most probable of :data:`STATES`; ``probabilities`` maps every state to
    its probability (they sum to 1); ``arousal`` is 0 (quiet) .. 1 (roaring); ``valence``
    -1 (angry, dismayed) .. 1 (joyful), for the home crowd.
    """

    state: str
    probabilities: dict[str, float]
    arousal: float
    valence: float


class EmotionModel:
    """An ONNX crowd-emotion model in one onnxruntime session. Use :meth:`load`."""

    def __init__(self, session: Any, *, version: str, path: Path, metadata: dict[str, str]) -> None:
        self._session = session
        self.version = version
        self.path = path
        self.metadata = metadata

    @classmethod
    def load(cls, path: Path | str | None = None) -> EmotionModel:
        """Load the model at ``path`` (default: the shipped ``streams/models/crowd_emotion.onnx``).

        Raises
        ------
        CrowdsoundError
            One line naming the file, when it is missing, is not an ONNX model, or was made
            for other features or states than this code's.
        """
        path = Path(path) if path is not None else DEFAULT_MODEL_PATH
        if not path.is_file():
            hint = " (run `crowdsound model train` to make it)" if path == DEFAULT_MODEL_PATH else ""
            raise CrowdsoundError(f"emotion model {path} does not exist{hint}")
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
        options.log_severity_level = 3  # errors only: the CLI reports them in one line
        try:
            session = onnxruntime.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # noqa: BLE001 - onnxruntime raises several private types
            reason = " ".join(str(exc).split())[:200] or type(exc).__name__
            raise CrowdsoundError(f"emotion model {path} cannot be loaded: {reason}") from None
        metadata = dict(session.get_modelmeta().custom_metadata_map)
        inputs = [i.name for i in session.get_inputs()]
        outputs = [o.name for o in session.get_outputs()]
        if inputs != [INPUT] or sorted(outputs) != sorted(OUTPUTS):
            raise CrowdsoundError(f"emotion model {path} has inputs {inputs} and outputs {outputs}; "
                                  f"expected [{INPUT!r}] and {list(OUTPUTS)}")
        states = tuple(metadata.get(META_STATES, "").split(","))
        if states != STATES:
            raise CrowdsoundError(f"emotion model {path} predicts states {','.join(states)}; expected {','.join(STATES)}")
        features = tuple(metadata.get(META_FEATURES, "").split(","))
        if features != FEATURE_NAMES:
            raise CrowdsoundError(f"emotion model {path} was trained on other features than streams.features "
                                  f"computes ({len(features)} vs {len(FEATURE_NAMES)}); "
                                  "retrain it with `crowdsound model train`")
        version = metadata.get(META_VERSION) or "unknown"
        return cls(session, version=version, path=path, metadata=metadata)

    def predict(self, features: np.ndarray) -> list[Emotion]:
        """The emotion of each window.

        Parameters
        ----------
        features : np.ndarray, shape (n, len(FEATURE_NAMES)) or (len(FEATURE_NAMES),)
            Rows of :func:`streams.features.feature_vector`. NaN and inf count as 0.

        Returns
        -------
        list of Emotion, one per row, in order. Deterministic.

        Raises
        ------
        CrowdsoundError
            When the rows do not have len(FEATURE_NAMES) values.
        """
        array = np.asarray(features, dtype=np.float32)
        if array.ndim == 1:
            array = array[None, :]
        if array.ndim != 2 or array.shape[1] != len(FEATURE_NAMES):
            raise CrowdsoundError(f"emotion model input must have shape (n, {len(FEATURE_NAMES)}), got {array.shape}")
        if not len(array):
            return []
        array = np.ascontiguousarray(np.nan_to_num(array, nan=0.0, posinf=0.0, neginf=0.0))
        # Row by row: onnxruntime's matrix kernels may round a row differently in a batch of
        # 64 than alone, and a window must get the same numbers live (alone) and in replay.
        rows = [self._session.run(list(OUTPUTS), {INPUT: array[i:i + 1]}) for i in range(len(array))]
        probabilities, arousal, valence = (np.concatenate([row[k] for row in rows]) for k in range(3))
        best = np.argmax(probabilities, axis=1).tolist()
        rows = probabilities.astype(np.float64).tolist()
        arousal = np.clip(np.ravel(arousal), 0.0, 1.0).astype(np.float64).tolist()
        valence = np.clip(np.ravel(valence), -1.0, 1.0).astype(np.float64).tolist()
        return [
            Emotion(state=STATES[k], probabilities=dict(zip(STATES, row, strict=True)), arousal=a, valence=v)
            for k, row, a, v in zip(best, rows, arousal, valence, strict=True)
        ]

    def __repr__(self) -> str:
        return f"EmotionModel({str(self.path)!r}, version={self.version!r})"
