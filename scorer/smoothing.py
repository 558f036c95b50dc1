"""Activation smoothing (SmoothQuant, Xiao et al. 2023) of an fp32 ONNX graph before dynamic INT8.

Dynamic quantization gives each MatMul input ONE scale per call, so a few channels with large
activations (the GELU outputs feeding the FFN down-projection reach 25 where most channels stay
under 2) leave the ordinary channels only a handful of INT8 steps. Smoothing divides every
input channel j by ``s_j = max|X_j|^alpha / max|W_j|^(1 - alpha)`` and multiplies row j of the
weight by the same ``s_j``: the product is unchanged in exact arithmetic, and the difficulty
moves from the activations (quantized per call, per tensor) to the weights (quantized once, per
channel). BERT is post-LayerNorm, so the division cannot be folded into the LayerNorm (its
output also feeds the residual): it is an explicit ``Mul`` per input, one shared by the
MatMuls that read the same tensor (query, key and value).

Measured on model 1.2 (docs/benchmarks.md): against the torch model on 1,000 PhraseBank
training sentences + 1,000 StockNet tweets, label disagreement 1.8 % (plain per-channel INT8)
-> 0.8 % (alpha 0.75); on 1,000 sentences + 1,000 tfns training tweets, 1.05 % vs 1.2 %.
Not a sure win, so ``scorer.export`` builds it as a candidate beside plain INT8 and keeps
whichever changes fewer labels; it runs at 0.95x plain INT8 (the extra ``Mul`` per input).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

CALIBRATION_BATCH = 32


def weight_matmuls(graph: Any) -> dict[str, list[Any]]:
    """MatMul nodes whose second input is a 2-D initializer, grouped by their activation input."""
    inits = {i.name: i for i in graph.initializer}
    groups: dict[str, list[Any]] = {}
    for node in graph.node:
        if node.op_type != "MatMul":
            continue
        w = inits.get(node.input[1])
        if w is not None and len(w.dims) == 2:
            groups.setdefault(node.input[0], []).append(node)
    return groups


def activation_ranges(onnx_file: Path, model_dir: Path, texts: Sequence[str],
                      max_length: int) -> dict[str, np.ndarray]:
    """Per-channel max |x| of every weight-MatMul input over the real (unpadded) tokens;
    ``model_dir`` holds the tokenizer."""
    import onnx
    import onnxruntime as ort

    from scorer.backends import TextEncoder

    if not texts:
        raise ValueError("activation ranges need at least one calibration text")
    model = onnx.load(str(onnx_file))
    names = sorted(weight_matmuls(model.graph))
    for name in names:
        model.graph.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT,
                                                                     None))
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    inputs = {i.name for i in session.get_inputs()}
    encoder = TextEncoder(model_dir, max_length)
    ranges: dict[str, np.ndarray] = {}
    ordered = sorted(texts, key=len)  # little padding, and padding rows are masked out anyway
    for start in range(0, len(ordered), CALIBRATION_BATCH):
        feed = encoder.encode(ordered[start : start + CALIBRATION_BATCH], inputs)
        real = feed["attention_mask"].astype(bool)
        for name, value in zip(names, session.run(names, feed), strict=True):
            # [batch, seq, channels] for token-wise inputs; [batch, channels] after pooling
            amax = np.abs(value[real] if value.ndim == 3 else value).max(axis=0)
            ranges[name] = amax if name not in ranges else np.maximum(ranges[name], amax)
    return ranges


def smooth(onnx_file: Path, ranges: dict[str, np.ndarray], alpha: float, out: Path) -> Path:
    """Writes ``onnx_file`` with every weight-MatMul input smoothed by ``alpha`` to ``out``."""
    import onnx
    from onnx import numpy_helper

    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    model = onnx.load(str(onnx_file))
    graph = model.graph
    inits = {i.name: i for i in graph.initializer}
    readers: dict[str, int] = {}
    for node in graph.node:
        for name in node.input:
            readers[name] = readers.get(name, 0) + 1
    for x, nodes in weight_matmuls(graph).items():
        if x not in ranges or any(readers[n.input[1]] > 1 for n in nodes):
            continue  # a weight read twice (tied) would be scaled for two inputs
        weights = [numpy_helper.to_array(inits[n.input[1]]) for n in nodes]
        w_max = np.max([np.abs(w).max(axis=1) for w in weights], axis=0)
        s = np.clip(ranges[x], 1e-5, None) ** alpha / np.clip(w_max, 1e-5, None) ** (1 - alpha)
        s = np.clip(s, 1e-5, None).astype(np.float32)
        inv, smoothed = f"{x}/smooth_inv", f"{x}/smoothed"
        graph.initializer.append(numpy_helper.from_array((1.0 / s).astype(np.float32), inv))
        mul = onnx.helper.make_node("Mul", [x, inv], [smoothed], name=f"{x}/SmoothMul")
        for node, w in zip(nodes, weights, strict=True):
            inits[node.input[1]].CopyFrom(
                numpy_helper.from_array((w * s[:, None]).astype(np.float32), node.input[1])
            )
            node.input[0] = smoothed
        graph.node.insert(list(graph.node).index(nodes[0]), mul)  # before its first reader
    out.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(out))
    return out
