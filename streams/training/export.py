"""Write a trained :class:`~streams.training.mlp.Mlp` as an ONNX graph, built node by node.

The graph (opset 17, IR 8, so onnxruntime 1.15 and later run it)::

    features (n, F) float32
      -> Sub(mean) -> Mul(1/std) -> Clip(-6, 6)                  normalisation, baked in
      for each of the K networks of the ensemble:
        -> MatMul(W1) -> Add(b1) -> Relu
        -> MatMul(W2) -> Add(b2) -> Relu                         the network's trunk
        -> MatMul(Wc) -> Add(bc) -> Softmax   probabilities (n, S)
        -> MatMul(Wa) -> Add(ba) -> Sigmoid   arousal (n, 1)
        -> MatMul(Wv) -> Add(bv) -> Tanh      valence (n, 1)
      -> Mean over the K networks (-> Squeeze for arousal and valence)
      -> rhythm gate: CHANTING x Sigmoid((periodicity - 0.2) / 0.02), then divided
         by the sum (Gather, Sub, Mul, Sigmoid, ReduceSum, Div)
      => probabilities (n, S), arousal (n,), valence (n,)

Metadata (``metadata_props``) carries the version, the state order, the feature names, the
training date, the data hash and the command that made it; :class:`streams.emotion.EmotionModel`
checks the states and features when it loads the file.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from streams.emotion import INPUT, META_FEATURES, META_STATES, META_VERSION, STATES
from streams.features import FEATURE_NAMES
from streams.training.mlp import _CHANTING, _PERIODICITY, CLIP, RHYTHM_CENTRE, RHYTHM_WIDTH, Mlp

__all__ = ["export_onnx"]

OPSET = 17
IR_VERSION = 8


def export_onnx(members: Mlp | Sequence[Mlp], path: Path, *, metadata: dict[str, str]) -> None:
    """Write the network (or the ensemble: outputs averaged) to ``path`` as ONNX, with
    ``metadata`` (version etc.) in metadata_props."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    members = [members] if isinstance(members, Mlp) else list(members)
    if not members:
        raise ValueError("nothing to export")

    def const(name: str, value: np.ndarray) -> onnx.TensorProto:
        return numpy_helper.from_array(np.ascontiguousarray(value, dtype=np.float32), name)

    first = members[0]
    initializers = [
        const("mean", first.mean), const("inv_std", 1.0 / first.std),
        const("clip_min", np.array(-CLIP)), const("clip_max", np.array(CLIP)),
        numpy_helper.from_array(np.array([1], dtype=np.int64), "squeeze_axes"),
    ]
    nodes = [
        helper.make_node("Sub", [INPUT, "mean"], ["centred"]),
        helper.make_node("Mul", ["centred", "inv_std"], ["scaled"]),
        helper.make_node("Clip", ["scaled", "clip_min", "clip_max"], ["normalised"]),
    ]
    heads: dict[str, list[str]] = {"probabilities": [], "arousal": [], "valence": []}
    for k, m in enumerate(members):
        if not (np.array_equal(m.mean, first.mean) and np.array_equal(m.std, first.std)):
            raise ValueError("ensemble members must share their normalisation")
        p = f"m{k}_"
        initializers += [const(p + name, value) for name, value in (
            ("w1", m.w1), ("b1", m.b1), ("w2", m.w2), ("b2", m.b2), ("wc", m.wc), ("bc", m.bc),
            ("wa", m.wa), ("ba", m.ba), ("wv", m.wv), ("bv", m.bv))]
        nodes += [
            helper.make_node("MatMul", ["normalised", p + "w1"], [p + "z1m"]),
            helper.make_node("Add", [p + "z1m", p + "b1"], [p + "z1"]),
            helper.make_node("Relu", [p + "z1"], [p + "h1"]),
            helper.make_node("MatMul", [p + "h1", p + "w2"], [p + "z2m"]),
            helper.make_node("Add", [p + "z2m", p + "b2"], [p + "z2"]),
            helper.make_node("Relu", [p + "z2"], [p + "h2"]),
            helper.make_node("MatMul", [p + "h2", p + "wc"], [p + "logits_m"]),
            helper.make_node("Add", [p + "logits_m", p + "bc"], [p + "logits"]),
            helper.make_node("Softmax", [p + "logits"], [p + "probabilities"], axis=-1),
            helper.make_node("MatMul", [p + "h2", p + "wa"], [p + "za_m"]),
            helper.make_node("Add", [p + "za_m", p + "ba"], [p + "za"]),
            helper.make_node("Sigmoid", [p + "za"], [p + "arousal"]),
            helper.make_node("MatMul", [p + "h2", p + "wv"], [p + "zv_m"]),
            helper.make_node("Add", [p + "zv_m", p + "bv"], [p + "zv"]),
            helper.make_node("Tanh", [p + "zv"], [p + "valence"]),
        ]
        for head in heads:
            heads[head].append(p + head)
    chant_only = np.zeros((1, len(STATES)), dtype=np.float32)
    chant_only[0, _CHANTING] = 1.0
    initializers += [
        numpy_helper.from_array(np.array([_PERIODICITY], dtype=np.int64), "periodicity_index"),
        const("rhythm_centre", np.array(RHYTHM_CENTRE)), const("rhythm_inv_width", np.array(1.0 / RHYTHM_WIDTH)),
        const("one", np.array(1.0)), const("chant_only", chant_only),
        numpy_helper.from_array(np.array([1], dtype=np.int64), "state_axis"),
    ]
    nodes += [
        helper.make_node("Mean", heads["probabilities"], ["ensemble_probabilities"]),
        # The rhythm gate: CHANTING x sigmoid((periodicity - centre) / width), renormalised.
        helper.make_node("Gather", [INPUT, "periodicity_index"], ["periodicity"], axis=1),
        helper.make_node("Sub", ["periodicity", "rhythm_centre"], ["rhythm_offset"]),
        helper.make_node("Mul", ["rhythm_offset", "rhythm_inv_width"], ["rhythm_z"]),
        helper.make_node("Sigmoid", ["rhythm_z"], ["rhythm"]),
        helper.make_node("Sub", ["one", "rhythm"], ["no_rhythm"]),
        helper.make_node("Mul", ["no_rhythm", "chant_only"], ["chant_damping"]),
        helper.make_node("Sub", ["one", "chant_damping"], ["gate"]),
        helper.make_node("Mul", ["ensemble_probabilities", "gate"], ["gated"]),
        helper.make_node("ReduceSum", ["gated", "state_axis"], ["gated_total"], keepdims=1),
        helper.make_node("Div", ["gated", "gated_total"], ["probabilities"]),
        helper.make_node("Mean", heads["arousal"], ["arousal_2d"]),
        helper.make_node("Squeeze", ["arousal_2d", "squeeze_axes"], ["arousal"]),
        helper.make_node("Mean", heads["valence"], ["valence_2d"]),
        helper.make_node("Squeeze", ["valence_2d", "squeeze_axes"], ["valence"]),
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
    onnx_model = helper.make_model(graph, producer_name="crowdsound", producer_version="1",
                                   opset_imports=[helper.make_opsetid("", OPSET)])
    onnx_model.ir_version = IR_VERSION
    onnx_model.doc_string = (f"Crowd emotion from streams.features.feature_vector ({len(members)} averaged networks): "
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
