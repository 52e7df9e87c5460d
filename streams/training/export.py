"""Write the fitted estimators (:mod:`streams.training.model`) as one ONNX file.

skl2onnx converts each scikit-learn pipeline to its own graph; this module puts the three
side by side in one graph that reads the single input ``features`` and ends in the outputs
:class:`streams.emotion.EmotionModel` expects::

    features (n, F) float32 --+-- states pipeline  (skl2onnx) -> probabilities (n, S)
                              |      -> + warm_share x warmth^warm_power x (warm-stream states - them)
                              |      -> rhythm gate: CHANTING x Sigmoid((periodicity - 0.2) / 0.02),
                              |         divided by the sum                 => probabilities (n, S)
                              +-- arousal: timbre pipeline g (skl2onnx); Gather loudness_rel,
                              |      brightness_rel, warmth; Mul warmth x g; Concat -> level Ridge
                              |      (skl2onnx); Add g -> log-odds (n, 1) -> Sigmoid -> Squeeze
                              |                                                    => arousal (n,)
                              +-- valence pipeline (skl2onnx) -> (n, 1) -> Clip(-1, 1) -> Squeeze
                                                                                   => valence (n,)

The rhythm gate is a fixed rule, not learned: a chant is many voices on one rhythm, so
CHANTING is only believed when the analyzer hears a rhythm (onset periodicity around
:data:`streams.features.PERIODIC` or more); without it, loud, flickering cheers of a real
crowd pass for a chant. Metadata (``metadata_props``) carries the version, the state order,
the feature names, the training date, the data hash and the command that made it;
:class:`streams.emotion.EmotionModel` checks the states and features when it loads the file.
Every node computes each row on its own (no batch-dependent kernels), so a window gets the
same numbers whether it is predicted alone, live, or in a batch of 64, in replay.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from streams.emotion import INPUT, META_FEATURES, META_STATES, META_VERSION, STATES
from streams.features import FEATURE_NAMES, PERIODIC
from streams.training.model import EmotionEstimators

__all__ = ["RHYTHM_CENTRE", "RHYTHM_WIDTH", "export_onnx"]

OPSET = 17
ML_OPSET = 3
IR_VERSION = 8
RHYTHM_CENTRE = PERIODIC
RHYTHM_WIDTH = 0.02
_PERIODICITY = FEATURE_NAMES.index("periodicity")
_CHANTING = STATES.index("CHANTING")


def _converted(estimator, prefix: str, output: str, *, classifier: bool, source: str = INPUT,
               width: int = len(FEATURE_NAMES)):
    """The skl2onnx graph of ``estimator`` reading ``source`` (``width`` columns), every
    name but the input prefixed; returns (nodes, initializers, the name of its ``output``)."""
    import onnx.compose
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType

    options = {id(estimator): {"zipmap": False}} if classifier else None
    model = to_onnx(estimator, initial_types=[(source, FloatTensorType([None, width]))],
                    target_opset={"": OPSET, "ai.onnx.ml": ML_OPSET}, options=options)
    model = onnx.compose.add_prefix(model, prefix, rename_inputs=False)
    return list(model.graph.node), list(model.graph.initializer), prefix + output


def export_onnx(estimators: EmotionEstimators, path: Path, *, metadata: dict[str, str]) -> None:
    """Write ``estimators`` to ``path`` as one ONNX model with ``metadata`` (version etc.)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    state_nodes, state_inits, probabilities = _converted(estimators.states, "states_", "probabilities",
                                                         classifier=True)
    timbre_nodes, timbre_inits, timbre = _converted(estimators.arousal.timbre, "arousal_timbre_", "variable",
                                                    classifier=False)
    arousal = estimators.arousal
    level_nodes, level_inits, level = _converted(arousal.level, "arousal_level_", "variable", classifier=False,
                                                 source="arousal_level_inputs", width=len(arousal.level_columns) + 2)
    valence_nodes, valence_inits, raw_valence = _converted(estimators.valence, "valence_", "variable",
                                                           classifier=False)
    warm_nodes, warm_inits, warm_probabilities, blend_nodes = [], [], probabilities, []
    if estimators.warm_states is not None:
        # The warm-stream network takes over from the state networks as the baseline warms.
        warm_nodes, warm_inits, warm_only = _converted(estimators.warm_states, "warm_states_", "probabilities",
                                                       classifier=True)
        warm_probabilities = "blended_probabilities"
        blend_nodes = [
            helper.make_node("Clip", ["warmth", "zero", "one"], ["warmth_clipped"]),  # a convex mix, whatever comes in
            helper.make_node("Pow", ["warmth_clipped", "warm_power"], ["warmth_powered"]),
            helper.make_node("Mul", ["warmth_powered", "warm_share"], ["warm_weight"]),
            helper.make_node("Sub", [warm_only, probabilities], ["warm_difference"]),
            helper.make_node("Mul", ["warm_difference", "warm_weight"], ["warm_step"]),
            helper.make_node("Add", [probabilities, "warm_step"], [warm_probabilities]),
        ]

    def const(name: str, value: np.ndarray | float) -> onnx.TensorProto:
        return numpy_helper.from_array(np.ascontiguousarray(value, dtype=np.float32), name)

    chant_only = np.zeros((1, len(STATES)), dtype=np.float32)
    chant_only[0, _CHANTING] = 1.0
    initializers = state_inits + warm_inits + timbre_inits + level_inits + valence_inits + [
        const("warm_share", np.array(estimators.config.warm_share)),
        const("warm_power", np.array(float(estimators.config.warm_power))), const("zero", np.array(0.0)),
        numpy_helper.from_array(np.array([_PERIODICITY], dtype=np.int64), "periodicity_index"),
        numpy_helper.from_array(np.array(arousal.level_columns, dtype=np.int64), "arousal_level_columns"),
        numpy_helper.from_array(np.array([arousal.warmth_column], dtype=np.int64), "warmth_column"),
        numpy_helper.from_array(np.array([1], dtype=np.int64), "axis_1"),
        const("rhythm_centre", np.array(RHYTHM_CENTRE)), const("rhythm_inv_width", np.array(1.0 / RHYTHM_WIDTH)),
        const("one", np.array(1.0)), const("minus_one", np.array(-1.0)), const("chant_only", chant_only),
    ]
    nodes = state_nodes + warm_nodes + timbre_nodes + [
        # The level term's inputs: [loudness_rel, brightness_rel, warmth, warmth x timbre].
        helper.make_node("Gather", [INPUT, "arousal_level_columns"], ["arousal_level_features"], axis=1),
        helper.make_node("Gather", [INPUT, "warmth_column"], ["warmth"], axis=1),
        helper.make_node("Mul", ["warmth", timbre], ["warm_timbre"]),
        helper.make_node("Concat", ["arousal_level_features", "warmth", "warm_timbre"], ["arousal_level_inputs"],
                         axis=1),
    ] + blend_nodes + level_nodes + valence_nodes + [
        # The rhythm gate: CHANTING x sigmoid((periodicity - centre) / width), renormalised.
        helper.make_node("Gather", [INPUT, "periodicity_index"], ["periodicity"], axis=1),
        helper.make_node("Sub", ["periodicity", "rhythm_centre"], ["rhythm_offset"]),
        helper.make_node("Mul", ["rhythm_offset", "rhythm_inv_width"], ["rhythm_z"]),
        helper.make_node("Sigmoid", ["rhythm_z"], ["rhythm"]),
        helper.make_node("Sub", ["one", "rhythm"], ["no_rhythm"]),
        helper.make_node("Mul", ["no_rhythm", "chant_only"], ["chant_damping"]),
        helper.make_node("Sub", ["one", "chant_damping"], ["gate"]),
        helper.make_node("Mul", [warm_probabilities, "gate"], ["gated"]),
        helper.make_node("ReduceSum", ["gated", "axis_1"], ["gated_total"], keepdims=1),
        helper.make_node("Div", ["gated", "gated_total"], ["probabilities"]),
        helper.make_node("Add", [timbre, level], ["arousal_logodds"]),
        helper.make_node("Sigmoid", ["arousal_logodds"], ["arousal_2d"]),
        helper.make_node("Squeeze", ["arousal_2d", "axis_1"], ["arousal"]),
        helper.make_node("Clip", [raw_valence, "minus_one", "one"], ["valence_2d"]),
        helper.make_node("Squeeze", ["valence_2d", "axis_1"], ["valence"]),
    ]
    graph = helper.make_graph(
        nodes, "crowd_emotion",
        inputs=[helper.make_tensor_value_info(INPUT, TensorProto.FLOAT, ["n", len(FEATURE_NAMES)])],
        outputs=[
            helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["n", len(STATES)]),
            helper.make_tensor_value_info("arousal", TensorProto.FLOAT, ["n"]),
            helper.make_tensor_value_info("valence", TensorProto.FLOAT, ["n"]),
        ],
        initializer=initializers,
    )
    onnx_model = helper.make_model(graph, producer_name="crowdsound", producer_version="2",
                                   opset_imports=[helper.make_opsetid("", OPSET),
                                                  helper.make_opsetid("ai.onnx.ml", ML_OPSET)])
    onnx_model.ir_version = IR_VERSION
    onnx_model.doc_string = (f"Crowd emotion from streams.features.feature_vector (scikit-learn, exported by skl2onnx): "
                             f"probabilities over {', '.join(STATES)}; arousal 0..1; valence -1..1. See MODEL_CARD.md.")
    props = {META_STATES: ",".join(STATES), META_FEATURES: ",".join(FEATURE_NAMES), **metadata}
    if META_VERSION not in props:
        raise ValueError("metadata needs a version")
    helper.set_model_props(onnx_model, props)
    onnx.checker.check_model(onnx_model, full_check=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_bytes(onnx_model.SerializeToString())
    tmp.replace(path)
