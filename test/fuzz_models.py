"""ONNX models for the fuzz suite: the palette classifier with a run-time tripwire.

``tripwire_palette_model`` labels palette pictures exactly like
:func:`onnx_models.palette_model`, but its graph also gathers from a one-element table at
an index computed from the top-left pixel's red channel: for red values above ~240 the
index leaves the table and ONNX Runtime fails *while running* (``Gather``: indices out of
bounds); so does an image with a side under ``stride`` pixels, as with a real network
whose pooling cannot run on it. Those are engine failures at run time on well-formed
images, which no conversion check sees coming, as a flaky GPU engine or a model with
data-dependent shapes produces them. Palette colors (red <= 230) never trip it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from onnx_models import MEAN, PALETTE, STD

#: Red values of the top-left pixel above this make the engine fail at run time.
TRIP_RED = 241


def tripwire_palette_model(path: Path, stride: int = 4) -> Path:
    import onnx
    from onnx import TensorProto, helper

    normalized = (PALETTE / 255.0 - MEAN) / STD
    weight = normalized.reshape(len(PALETTE), 3, 1, 1).astype(np.float32)
    bias = (-0.5 * (normalized**2).sum(axis=1)).astype(np.float32)
    # Normalized red of the threshold; index = floor(relu(red - threshold) * 100) + 0.
    threshold = float((TRIP_RED - 0.5) / 255.0 - MEAN[0]) / float(STD[0])

    def const(name: str, values: list, dtype: int = TensorProto.FLOAT, dims=None) -> object:
        return helper.make_tensor(name, dtype, dims if dims is not None else [len(values)], values)

    nodes = [
        helper.make_node("Conv", ["images", "w", "b"], ["scores"]),
        helper.make_node(
            "AveragePool", ["scores"], ["pooled"], kernel_shape=[stride, stride],
            strides=[stride, stride],
        ),
        # The tripwire: red channel of pixel (0, 0) -> an index into a 1-element table.
        helper.make_node("Slice", ["images", "starts", "ends", "axes"], ["corner"]),
        helper.make_node("Sub", ["corner", "threshold"], ["over"]),
        helper.make_node("Relu", ["over"], ["positive"]),
        helper.make_node("Mul", ["positive", "hundred"], ["scaled"]),
        helper.make_node("Ceil", ["scaled"], ["rounded"]),
        helper.make_node("Cast", ["rounded"], ["index"], to=TensorProto.INT64),
        helper.make_node("Reshape", ["index", "scalar_shape"], ["index_scalar"]),
        helper.make_node("Gather", ["table", "index_scalar"], ["zero"], axis=0),
        # A second one: a side under ``stride`` pixels (a network's pooling cannot run).
        helper.make_node("Shape", ["images"], ["shape"], start=2),
        helper.make_node("Sub", ["stride", "shape"], ["short"]),
        helper.make_node("Max", ["short", "zeros"], ["shortfall"]),
        helper.make_node("ReduceSum", ["shortfall"], ["tiny"], keepdims=0),
        helper.make_node("Gather", ["table", "tiny"], ["zero_too"], axis=0),
        helper.make_node("Add", ["pooled", "zero"], ["partial"]),
        helper.make_node("Add", ["partial", "zero_too"], ["logits"]),
    ]  # fmt: skip
    graph = helper.make_graph(
        nodes,
        Path(path).stem,
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["n", 3, "H", "W"])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["n", len(PALETTE), "h", "w"])],
        [
            helper.make_tensor("w", TensorProto.FLOAT, weight.shape, weight.ravel()),
            helper.make_tensor("b", TensorProto.FLOAT, bias.shape, bias),
            const("starts", [0, 0, 0, 0], TensorProto.INT64),
            const("ends", [1, 1, 1, 1], TensorProto.INT64),
            const("axes", [0, 1, 2, 3], TensorProto.INT64),
            const("threshold", [threshold], dims=[]),
            const("hundred", [100.0], dims=[]),
            const("scalar_shape", [], TensorProto.INT64, dims=[0]),
            const("table", [0.0]),
            const("stride", [stride, stride], TensorProto.INT64),
            const("zeros", [0, 0], TensorProto.INT64),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return Path(path)
