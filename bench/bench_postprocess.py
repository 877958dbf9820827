"""Post-processing speed (issue 10 item 6): scores -> labels + confidence at the image size.

On one core, for
(a) a CNN with full-resolution logits: 20x512x1024 for a 512x1024 image, 20x375x1242 for
    a KITTI 375x1242 image, and a net run at 512x1024 for the KITTI camera (stretch);
(b) SegFormer-like 1/4-resolution logits: 19x128x256 for 512x1024, 19x94x311 for 375x1242,
it prints the old ``preprocess.logits_to_labels``, the new ``postprocess.logits_to_labels``
and plain baselines: OpenCV resize of all channels + argmax, PyTorch's
``F.interpolate`` + argmax (what Hugging Face does), and argmax alone where the logits are
already at the image size. Neither baseline computes a confidence; both post-processors do.

Logits come in two kinds: "trained" (class regions of the generated street scene, smooth
within a region, with a little low-frequency noise: a few % of pixels on boundaries) and
"noise" (an untrained net: boundaries everywhere, the worst case).

Then the share of post-processing in a whole engine call (preprocess + ONNX Runtime
network + postprocess, all on the same core), for
(a) a small fully convolutional net at full resolution (3x3 conv 3->16, 3x3 conv 16->16,
    1x1 conv 16->20; random weights) on 512x1024, and
(b) SegFormer-B0 (random weights, exported to ONNX) on 512x1024,
timing each stage separately and post-processing the same network output with the old and
the new function.

Run: ``python bench/bench_postprocess.py [--runs N] [--no-engines]``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from _common import median_ms, pin_one_core

pin_one_core()

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from seg_perception.engines import postprocess, preprocess
from seg_perception.engines.preprocess import Letterbox

cv2.setNumThreads(1)


def trained_like_logits(
    classes: int, image: tuple[int, int], logits: tuple[int, int], seed: int = 0
) -> np.ndarray:
    """Logits a trained net might give: a margin for the true class of the generated
    street scene, blurred across region borders, plus low-frequency noise; at the net's
    resolution (area-averaged)."""
    from seg_perception.sample import generate_scene

    rng = np.random.default_rng(seed)
    truth = cv2.resize(
        generate_scene(0).label_image, (image[1], image[0]), interpolation=cv2.INTER_NEAREST
    )
    out = np.empty((classes, *logits), np.float32)
    coarse = (image[0] // 16 + 1, image[1] // 16 + 1)
    for k in range(classes):
        plane = cv2.GaussianBlur(np.where(truth == k, 6.0, 0.0).astype(np.float32), (0, 0), 3)
        noise = rng.normal(size=coarse).astype(np.float32)
        plane += cv2.resize(noise, (image[1], image[0]), interpolation=cv2.INTER_CUBIC)
        out[k] = cv2.resize(plane, (logits[1], logits[0]), interpolation=cv2.INTER_AREA)
    return out


def cv2_resize_argmax(logits: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Baseline: OpenCV bilinear resize of all channels (channel-last), then argmax."""
    channel_last = np.ascontiguousarray(logits.transpose(1, 2, 0))
    resized = cv2.resize(channel_last, (size[1], size[0]), interpolation=cv2.INTER_LINEAR)
    return resized.reshape(size[0], size[1], -1).argmax(axis=2)


def torch_baseline() -> Callable[[np.ndarray, tuple[int, int]], np.ndarray] | None:
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(1)
    interpolate = torch.nn.functional.interpolate

    def run(logits: np.ndarray, size: tuple[int, int]) -> np.ndarray:
        tensor = torch.from_numpy(logits)[None]
        up = interpolate(tensor, size=size, mode="bilinear", align_corners=False)
        return up[0].argmax(dim=0).numpy()

    return run


def boundary_share(logits: np.ndarray, box: Letterbox) -> float:
    """Share of image pixels whose bilinear cells disagree (0 when no resampling)."""
    height, width = box.image_size
    rows = postprocess.axis_samples(
        height, box.resized[0], height, box.network_size[0], logits.shape[1]
    )
    cols = postprocess.axis_samples(
        width, box.resized[1], width, box.network_size[1], logits.shape[2]
    )
    if rows.identity and cols.identity:
        return 0.0
    best, _ = postprocess.reduce_channels(logits, softmax=True)
    marked = postprocess._boundary_cells(best, rows, cols)
    return float(np.take(np.take(marked, rows.low, 0), cols.low, 1).mean())


def micro(runs: int) -> None:
    print("== post-processing alone, one core, median ms (ratio = time / new time)")
    cases = [
        ("(a) full-res CNN", 20, (512, 1024), (512, 1024)),
        ("(a) full-res CNN", 20, (375, 1242), (375, 1242)),
        ("(a) 512x1024 net, KITTI cam", 20, (375, 1242), (512, 1024)),
        ("(b) SegFormer 1/4", 19, (512, 1024), (128, 256)),
        ("(b) SegFormer 1/4", 19, (375, 1242), (94, 311)),
    ]
    torch_run = torch_baseline()
    header = (
        f"{'case':28s} {'logits':>12s} {'image':>9s} {'kind':>8s} {'bound.':>7s} "
        f"{'old':>7s} {'new':>7s} {'old/new':>8s} {'cv2+argmax':>11s} {'torch+argmax':>13s} "
        f"{'argmax only':>12s} {'labels=old':>10s}"
    )
    print(header)
    for name, classes, image, size in cases:
        for kind in ("trained", "noise"):
            if kind == "trained":
                logits = trained_like_logits(classes, image, size)
            else:
                rng = np.random.default_rng(1)
                logits = rng.normal(scale=2.0, size=(classes, *size)).astype(np.float32)
            print(f"{name:28s} {micro_row(logits, image, kind, runs, torch_run)}")


def micro_row(
    logits: np.ndarray,
    image: tuple[int, int],
    kind: str,
    runs: int,
    torch_run: Callable[[np.ndarray, tuple[int, int]], np.ndarray] | None,
) -> str:
    """One line of the post-processing table: every timing for one set of logits."""
    box = Letterbox(image, image, image)
    old = median_ms(lambda: preprocess.logits_to_labels(logits, box), runs)
    new = median_ms(lambda: postprocess.logits_to_labels(logits, box), runs)
    plain = median_ms(lambda: cv2_resize_argmax(logits, image), runs)
    by_torch = median_ms(lambda: torch_run(logits, image), runs) if torch_run else None
    only = median_ms(lambda: logits.argmax(axis=0), runs) if logits.shape[1:] == image else None
    same = np.array_equal(
        preprocess.logits_to_labels(logits, box)[0], postprocess.logits_to_labels(logits, box)[0]
    )
    torch_text = f"{by_torch:6.1f} {by_torch / new:4.1f}x" if by_torch else "n/a"
    only_text = f"{only:5.1f} {only / new:4.1f}x" if only else "-"
    return (
        f"{'x'.join(map(str, logits.shape)):>12s} {'x'.join(map(str, image)):>9s} {kind:>8s} "
        f"{100 * boundary_share(logits, box):6.1f}% {old:7.1f} {new:7.1f} "
        f"{old / new:7.1f}x {plain:6.1f} {plain / new:3.1f}x {torch_text:>13s} "
        f"{only_text:>12s} {same!s:>10s}"
    )


def probabilities_rows(runs: int) -> None:
    """Models ending in a softmax: the new function against what the engines did (log of
    the probabilities, then the old logits post-processing)."""
    print(
        "\n== probabilities input (softmax head), trained-like, one core, median ms"
        "\n   old = log(max(p, 1e-30)) then old logits_to_labels; new = probabilities_to_labels"
    )
    print(
        f"{'logits':>12s} {'image':>9s} {'old':>7s} {'new':>7s} {'old/new':>8s} {'labels=old':>10s}"
    )
    for classes, image, size in [(20, (512, 1024), (512, 1024)), (19, (512, 1024), (128, 256))]:
        logits = trained_like_logits(classes, image, size)
        shifted = np.exp(logits - logits.max(axis=0))
        probabilities = (shifted / shifted.sum(axis=0)).astype(np.float32)
        box = Letterbox(image, image, image)

        def old(p: np.ndarray = probabilities, b: Letterbox = box) -> tuple:
            return preprocess.logits_to_labels(np.log(np.maximum(p, 1e-30)), b)

        def new(p: np.ndarray = probabilities, b: Letterbox = box) -> tuple:
            return postprocess.probabilities_to_labels(p, b)

        old_ms, new_ms = median_ms(old, runs), median_ms(new, runs)
        print(
            f"{'x'.join(map(str, (classes, *size))):>12s} {'x'.join(map(str, image)):>9s} "
            f"{old_ms:7.1f} {new_ms:7.1f} {old_ms / new_ms:7.1f}x "
            f"{np.array_equal(old()[0], new()[0])!s:>10s}"
        )


def fcn_onnx(path: Path, classes: int, seed: int = 0) -> Path:
    """A small fully convolutional net with full-resolution logits (random weights)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    layers = [(3, 16, 3), (16, 16, 3), (16, classes, 1)]
    nodes, weights, current = [], [], "images"
    for i, (cin, cout, k) in enumerate(layers):
        w = rng.normal(scale=(2.0 / (cin * k * k)) ** 0.5, size=(cout, cin, k, k))
        weights += [
            numpy_helper.from_array(w.astype(np.float32), f"w{i}"),
            numpy_helper.from_array(np.zeros(cout, np.float32), f"b{i}"),
        ]
        out = "logits" if i == len(layers) - 1 else f"x{i}"
        pads = [k // 2] * 4
        nodes.append(helper.make_node("Conv", [current, f"w{i}", f"b{i}"], [out], pads=pads))
        if out != "logits":
            nodes.append(helper.make_node("Relu", [out], [f"r{i}"]))
            out = f"r{i}"
        current = out
    graph = helper.make_graph(
        nodes,
        "fcn",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, "H", "W"])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, classes, "H", "W"])],
        weights,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def engine_share(runs: int) -> None:
    try:
        from seg_perception.engines import EngineConfig, create_engine
        from seg_perception.engines.base import EngineLoadError
    except ImportError as error:
        print(f"\n(engine timings skipped: {error})")
        return
    from seg_perception.sample import generate_scene

    image = cv2.resize(generate_scene(0).image, (1024, 512), interpolation=cv2.INTER_AREA)
    print(
        "\n== whole engine on a 512x1024 image, one core (ONNX Runtime 1 thread), median ms;"
        "\n   share = (pre + post) / total, post share = post / total"
    )
    print(
        f"{'network':34s} {'logits':>12s} {'pre':>6s} {'network':>8s} {'post old':>9s} "
        f"{'post new':>9s} {'share old':>10s} {'share new':>10s} {'post share old->new':>20s}"
    )
    with tempfile.TemporaryDirectory() as folder:
        folder_path = Path(folder)
        labels = folder_path / "labels.yaml"
        labels.write_text(
            "name: twenty\nclasses:\n"
            + "".join(f"  - {{id: {i}, name: c{i}}}\n" for i in range(20))
        )
        configs = [
            (
                "(a) FCN 3 convs, full-res logits",
                EngineConfig(
                    model=str(fcn_onnx(folder_path / "fcn.onnx", 20)),
                    input_size=None,
                    resize="none",
                    num_threads=1,
                    label_set=str(labels),
                ),
            ),
            (
                "(b) SegFormer-B0 (random weights)",
                EngineConfig(
                    model="random:segformer-b0",
                    backend="onnxruntime",
                    input_size=None,
                    resize="none",
                    num_threads=1,
                    cache_dir=folder,
                ),
            ),
        ]
        for name, config in configs:
            try:
                engine = create_engine(config)
            except (EngineLoadError, ImportError) as error:
                print(f"{name:34s} skipped: {error}")
                continue
            print(f"{name:34s} {engine_row(engine, image, runs)}")


def engine_row(engine: object, image: np.ndarray, runs: int) -> str:
    """Pre, network and old/new post-processing of one engine on one image, and shares."""
    batch, box = engine.preprocessor(image)
    output = engine._infer(batch)
    pre = median_ms(lambda: engine.preprocessor(image), runs)
    network = median_ms(lambda: engine._infer(batch), max(3, runs // 3))
    dtype = engine.label_set.dtype
    old = median_ms(lambda: preprocess.logits_to_labels(output, box, dtype), runs)
    new = median_ms(lambda: postprocess.logits_to_labels(output, box, dtype), runs)
    same = np.array_equal(
        preprocess.logits_to_labels(output, box, dtype)[0],
        postprocess.logits_to_labels(output, box, dtype)[0],
    )
    old_total, new_total = pre + network + old, pre + network + new
    return (
        f"{'x'.join(map(str, output.shape)):>12s} {pre:6.1f} {network:8.1f} "
        f"{old:9.1f} {new:9.1f} {100 * (pre + old) / old_total:9.1f}% "
        f"{100 * (pre + new) / new_total:9.1f}% "
        f"{100 * old / old_total:8.1f}% -> {100 * new / new_total:4.1f}%"
        f"{'' if same else '  (labels differ from old!)'}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=21)
    parser.add_argument("--no-engines", action="store_true", help="skip the engine timings")
    args = parser.parse_args()
    print(f"numpy {np.__version__}, opencv {cv2.__version__}; runs {args.runs} (median)")
    micro(args.runs)
    probabilities_rows(args.runs)
    if not args.no_engines:
        engine_share(args.runs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
