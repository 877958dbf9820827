"""Tiny hand-written ONNX segmentation models with known outputs, for engine tests.

A 1x1 convolution scores each pixel against a palette of colors (in normalized space), so
a picture painted with those colors must come back labeled with their indices; an average
pool makes the output 4x smaller than the input, like SegFormer's, so the mapping back to
camera pixels is exercised.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

PALETTE = np.array([[230, 30, 30], [30, 230, 30], [30, 30, 230], [230, 230, 30]], dtype=np.float32)
MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


def conv1x1_model(
    path: Path,
    weight: np.ndarray,
    bias: np.ndarray,
    input_name: str,
    input_shape: list,
    stride: int = 1,
    class_ids: bool = False,
) -> Path:
    """Write an ONNX model: a 1x1 convolution (``weight`` (C, K, 1, 1), ``bias`` (C,)),
    optionally average-pooled by ``stride`` and arg-maxed to class ids."""
    import onnx
    from onnx import TensorProto, helper

    classes = weight.shape[0]
    nodes = [
        helper.make_node("Conv", [input_name, "w", "b"], ["scores" if stride > 1 else "logits"])
    ]
    if stride > 1:
        nodes.append(
            helper.make_node(
                "AveragePool", ["scores"], ["logits"], kernel_shape=[stride, stride],
                strides=[stride, stride],
            )
        )  # fmt: skip
    batch = input_shape[0]
    output = helper.make_tensor_value_info("logits", TensorProto.FLOAT, [batch, classes, "h", "w"])
    if class_ids:
        nodes.append(helper.make_node("ArgMax", ["logits"], ["ids"], axis=1, keepdims=0))
        output = helper.make_tensor_value_info("ids", TensorProto.INT64, [batch, "h", "w"])
    graph = helper.make_graph(
        nodes,
        Path(path).stem,
        [helper.make_tensor_value_info(input_name, TensorProto.FLOAT, input_shape)],
        [output],
        [
            helper.make_tensor("w", TensorProto.FLOAT, weight.shape, weight.ravel()),
            helper.make_tensor("b", TensorProto.FLOAT, bias.shape, bias),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return Path(path)


def palette_model(
    path: Path, stride: int = 4, class_ids: bool = False, input_name: str = "images"
) -> Path:
    """Write the palette classifier: logits_c(x) = -|x - color_c|^2 / 2 (+ const), pooled."""
    normalized = (PALETTE / 255.0 - MEAN) / STD  # (C, 3): the colors after preprocessing
    # -|x - p|^2 / 2 = x.p - |p|^2 / 2 - |x|^2 / 2; the last term is the same for every class.
    weight = normalized.reshape(len(PALETTE), 3, 1, 1).astype(np.float32)
    bias = (-0.5 * (normalized**2).sum(axis=1)).astype(np.float32)
    return conv1x1_model(path, weight, bias, input_name, ["n", 3, "H", "W"], stride, class_ids)


def slow_palette_model(path: Path, matmuls: int, size: int = 1024) -> Path:
    """The palette model plus work that changes nothing: a network with a real latency.

    A chain of ``matmuls`` (size x size) products of the input's mean with the identity is
    summed, multiplied by 0 and added to the logits. ONNX Runtime cannot fold it away (it
    depends on the input), so each image costs ``matmuls`` products on the CPU while its
    labels stay exactly the palette model's. Stands for a big network on a slow machine.
    """
    import onnx
    from onnx import helper, numpy_helper

    palette_model(path)
    model = onnx.load(str(path))
    graph = model.graph
    graph.node[-1].output[0] = "fast_logits"
    nodes = [
        helper.make_node("ReduceMean", ["images"], ["mean"], keepdims=0),
        helper.make_node("Mul", ["mean", "eye"], ["x0"]),
    ]
    for k in range(matmuls):
        nodes.append(helper.make_node("MatMul", [f"x{k}", "eye"], [f"x{k + 1}"]))
    nodes += [
        helper.make_node("ReduceSum", [f"x{matmuls}"], ["total"], keepdims=0),
        helper.make_node("Mul", ["total", "zero"], ["nothing"]),
        helper.make_node("Add", ["fast_logits", "nothing"], ["logits"]),
    ]
    graph.node.extend(nodes)
    graph.initializer.extend(
        [
            numpy_helper.from_array(np.eye(size, dtype=np.float32), "eye"),
            numpy_helper.from_array(np.array(0.0, dtype=np.float32), "zero"),
        ]
    )
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return Path(path)


def palette_picture(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """A picture of four colored regions and its true class map."""
    truth = np.zeros((height, width), dtype=np.uint8)
    truth[:, width // 3 :] = 1
    truth[height // 2 :, : width // 2] = 2
    truth[height // 4 : height // 2, 2 * width // 3 :] = 3
    return PALETTE.astype(np.uint8)[truth], truth


def label_set_yaml(path: Path) -> Path:
    path.write_text(
        "name: palette\nclasses:\n"
        + "".join(f"  - {{id: {i}, name: c{i}}}\n" for i in range(len(PALETTE)))
    )
    return path


def normalized(colors: np.ndarray, bgr: bool, scale: float, mean, std) -> np.ndarray:
    """RGB uint8 colors as a network with this input contract sees them."""
    values = np.asarray(colors, dtype=np.float64)
    if bgr:
        values = values[..., ::-1]
    return (values * scale - np.asarray(mean)) / np.asarray(std)


def contract_model(
    path: Path,
    colors: np.ndarray,
    bgr: bool = False,
    scale: float = 1 / 255,
    mean=MEAN,
    std=STD,
    stride: int = 1,
    kind: str = "logits",
) -> Path:
    """A palette classifier of ``colors`` (K, 3 RGB) for a network with the given input
    contract: only an image preprocessed exactly that way is labeled by nearest color.

    ``kind`` "probabilities" adds a softmax over the channels; "class_ids" an argmax.
    """
    import onnx
    from onnx import helper

    points = normalized(colors, bgr, scale, mean, std).astype(np.float32)
    weight = points.reshape(len(points), 3, 1, 1)
    bias = (-0.5 * (points**2).sum(axis=1)).astype(np.float32)
    conv1x1_model(path, weight, bias, "images", ["n", 3, "H", "W"], stride, kind == "class_ids")
    if kind == "probabilities":
        model = onnx.load(str(path))
        model.graph.node[-1].output[0] = "scores"
        model.graph.node.append(helper.make_node("Softmax", ["scores"], ["logits"], axis=1))
        onnx.checker.check_model(model)
        onnx.save(model, str(path))
    return Path(path)


def stride_model(path: Path, stride: int = 32) -> Path:
    """The palette model, plus a branch that only runs when ``stride`` divides the input:
    features pooled by ``stride``, upsampled back and concatenated with the full-resolution
    ones (as U-Nets and FPNs do). Other sizes fail in ONNX Runtime ("Concat ...")."""
    import onnx
    from onnx import helper, numpy_helper

    palette_model(path, stride=1)
    model = onnx.load(str(path))
    graph = model.graph
    graph.node[-1].output[0] = "full"
    classes = len(PALETTE)
    graph.node.extend(
        [
            helper.make_node(
                "AveragePool", ["full"], ["coarse"], kernel_shape=[stride, stride],
                strides=[stride, stride],
            ),
            helper.make_node("Resize", ["coarse", "", "scales"], ["back"], mode="nearest"),
            helper.make_node("Concat", ["full", "back"], ["both"], axis=1),
            helper.make_node("Mul", ["both", "keep"], ["weighted"]),
            helper.make_node("Conv", ["weighted", "pick"], ["logits"]),
        ]
    )  # fmt: skip
    pick = np.zeros((classes, 2 * classes, 1, 1), dtype=np.float32)
    pick[np.arange(classes), np.arange(classes)] = 1.0  # the full-resolution half only
    graph.initializer.extend(
        [
            numpy_helper.from_array(np.array([1, 1, stride, stride], np.float32), "scales"),
            numpy_helper.from_array(np.ones((1, 2 * classes, 1, 1), np.float32), "keep"),
            numpy_helper.from_array(pick, "pick"),
        ]
    )
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return Path(path)
