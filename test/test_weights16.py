"""Float16-stored weights: the graph still computes in float32 and agrees with the original."""

from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from seg_perception.training.weights16 import halve_weights  # noqa: E402


def test_halved_model_runs_in_float32_and_agrees(tmp_path):
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    weight = numpy_helper.from_array(rng.normal(size=(8, 3, 3, 3)).astype(np.float32), "w")
    bias = numpy_helper.from_array(rng.normal(size=8).astype(np.float32), "b")
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w", "b"], ["y"], pads=[1, 1, 1, 1])], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 16, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8, 16, 16])],
        [weight, bias],
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9)
    model.metadata_props.add(key="seg_perception.spec", value="{}")
    onnx.save(model, tmp_path / "a.onnx")
    assert halve_weights(tmp_path / "a.onnx", tmp_path / "b.onnx") == 1  # the bias stays
    halved = onnx.load(tmp_path / "b.onnx")
    assert {p.key for p in halved.metadata_props} == {"seg_perception.spec"}
    x = rng.normal(size=(1, 3, 16, 16)).astype(np.float32)
    run = [ort.InferenceSession(str(tmp_path / f"{n}.onnx")).run(None, {"x": x})[0] for n in "ab"]
    assert run[1].dtype == np.float32
    np.testing.assert_allclose(run[1], run[0], atol=1e-2)
    assert (run[1].argmax(1) == run[0].argmax(1)).mean() > 0.99


def test_the_packaged_demo_network_is_small():
    from pathlib import Path

    models = Path(__file__).resolve().parents[1] / "seg_perception/sample/models"
    model = models / "street_segformer.onnx"
    assert model.stat().st_size < 2_000_000
