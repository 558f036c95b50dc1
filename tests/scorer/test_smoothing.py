"""Activation smoothing rewrites the fp32 graph without changing what it computes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.fixtures.model import NEGATIVE, NEUTRAL, POSITIVE

TEXTS = NEGATIVE[:4] + NEUTRAL[:4] + POSITIVE[:4]


def _logits(onnx_file: Path, model_dir: Path) -> np.ndarray:
    import onnxruntime as ort

    from scorer.backends import TextEncoder

    session = ort.InferenceSession(str(onnx_file), providers=["CPUExecutionProvider"])
    feed = TextEncoder(model_dir, 32).encode(TEXTS, {i.name for i in session.get_inputs()})
    return session.run(["logits"], feed)[0]


@pytest.fixture(scope="module")
def fp32_file(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from scorer.export import _export_fp32

    return _export_fp32(tiny_model_dir, tmp_path_factory.mktemp("fp32"))


def test_ranges_cover_every_weight_matmul_input(fp32_file: Path, tiny_model_dir: Path) -> None:
    import onnx

    from scorer.smoothing import activation_ranges, weight_matmuls

    groups = weight_matmuls(onnx.load(str(fp32_file)).graph)
    # per layer: query/key/value share one input; attention output; FFN up; FFN down
    assert sum(len(nodes) for nodes in groups.values()) >= 6
    ranges = activation_ranges(fp32_file, tiny_model_dir, TEXTS, 32)
    assert set(ranges) == set(groups)
    for amax in ranges.values():
        assert amax.ndim == 1 and (amax >= 0).all() and amax.max() > 0


def test_smoothed_graph_computes_the_same_logits(
    fp32_file: Path, tiny_model_dir: Path, tmp_path: Path
) -> None:
    import onnx

    from scorer.smoothing import activation_ranges, smooth, weight_matmuls

    ranges = activation_ranges(fp32_file, tiny_model_dir, TEXTS, 32)
    out = smooth(fp32_file, ranges, 0.75, tmp_path / "smoothed.onnx")
    graph = onnx.load(str(out)).graph
    muls = [n for n in graph.node if n.name.endswith("/SmoothMul")]
    assert len(muls) == len(weight_matmuls(onnx.load(str(fp32_file)).graph))
    onnx.checker.check_model(str(out))
    before, after = _logits(fp32_file, tiny_model_dir), _logits(out, tiny_model_dir)
    assert np.abs(before - after).max() < 1e-3
    # the scales are not the identity: activations and weights really moved
    assert any(not np.allclose(onnx.numpy_helper.to_array(i), 1.0)
               for i in graph.initializer if i.name.endswith("/smooth_inv"))


def test_alpha_outside_the_open_interval_is_refused(fp32_file: Path, tmp_path: Path) -> None:
    from scorer.smoothing import smooth

    with pytest.raises(ValueError, match="alpha"):
        smooth(fp32_file, {}, 1.0, tmp_path / "x.onnx")
