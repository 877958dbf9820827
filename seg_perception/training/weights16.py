"""Store an exported model's weights in float16, computing in float32 as before.

Why: the packaged demo network must stay small in the repository (under 2 MB); its 0.78 M
float32 weights take 3.4 MB, in float16 1.9 MB. Each weight tensor becomes a float16
initializer followed by a ``Cast`` to float32, so the graph, its inputs, outputs and
metadata (the model spec) are unchanged and ONNX Runtime runs it in float32. Measured on
the packaged street SegFormer: argmax agreement 99.99 % with the float32 export on a random
1242x375 input, largest logit change 0.0057.

    python -m seg_perception.training.weights16 model.onnx model_fp16.onnx
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

#: Tensors smaller than this stay float32 (biases, norms: no size to save, no rounding).
MIN_ELEMENTS = 64


def halve_weights(source: str | Path, target: str | Path) -> int:
    """Write ``source`` to ``target`` with float16-stored weights; returns how many."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    model = onnx.load(str(source))
    graph = model.graph
    halved, casts = [], []
    for init in list(graph.initializer):
        if init.data_type != TensorProto.FLOAT or int(np.prod(init.dims)) < MIN_ELEMENTS:
            continue
        half = numpy_helper.from_array(
            numpy_helper.to_array(init).astype(np.float16), f"{init.name}_fp16"
        )
        casts.append(helper.make_node("Cast", [half.name], [init.name], to=TensorProto.FLOAT,
                                      name=f"cast_{init.name}"))  # fmt: skip
        graph.initializer.remove(init)
        halved.append(half)
    graph.initializer.extend(halved)
    nodes = list(graph.node)
    del graph.node[:]
    graph.node.extend(casts + nodes)
    onnx.checker.check_model(model)
    onnx.save(model, str(target))
    return len(halved)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print(
            "usage: python -m seg_perception.training.weights16 IN.onnx OUT.onnx", file=sys.stderr
        )
        return 2
    count = halve_weights(*args)
    print(f"wrote {args[1]}: {count} weight tensors stored in float16")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
