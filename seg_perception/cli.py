"""The ``seg-perception`` command: demo, export, build-engine, bench, eval-ground,
segment-cloud."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path


def _engine_config(args: argparse.Namespace, model: str | None = None):
    """The EngineConfig of the engine flags (every EngineConfig field has one)."""
    from seg_perception.engines.options import config_from_args

    return config_from_args(args, model=model)


def _add_engine_options(parser: argparse.ArgumentParser, model_required: bool = False) -> None:
    from seg_perception.engines.options import add_cli_options

    add_cli_options(parser, model_required)


def add_fusion_options(parser: argparse.ArgumentParser) -> None:
    """The fusion's occlusion settings as flags (demo, replay): the same FusionConfig
    fields as the nodes' fusion.* parameters."""
    parser.add_argument(
        "--no-occlusion", action="store_true", help="turn occlusion handling off (to compare)"
    )
    parser.add_argument(
        "--occlusion-window", type=int, nargs=2, metavar=("ROWS", "COLS"),
        help="fixed occlusion window (default: automatic, per camera, from the LiDAR's beam "
        "gaps and the focal length)",
    )  # fmt: skip
    parser.add_argument(
        "--beam-spacing", type=float, nargs=2, metavar=("V", "H"), default=(0.0, 0.0),
        help="the LiDAR's vertical and horizontal beam gaps in degrees (default 0 0: "
        "measured on each cloud)",
    )  # fmt: skip


def fusion_config_from_args(args: argparse.Namespace):
    """The FusionConfig of :func:`add_fusion_options`' flags."""
    from seg_perception.core.fusion import FusionConfig

    window = tuple(args.occlusion_window) if args.occlusion_window else "auto"
    return FusionConfig(
        occlusion=not args.no_occlusion,
        occlusion_window=window,
        beam_spacing_deg=tuple(args.beam_spacing),
    )


def _export(args: argparse.Namespace) -> int:
    from seg_perception.engines.export import export_onnx

    config = _engine_config(args, args.model)
    sizes = [tuple(s) for s in args.check_size] or None
    report = export_onnx(config, args.output, opset=args.opset, check_sizes=sizes)
    shape = "dynamic height/width" if report.dynamic else "a fixed input size"
    print(f"wrote {report.path} (opset {report.opset}, {shape})")
    for check in report.checks:
        print(
            f"  check {check.height}x{check.width}: max |logit diff| "
            f"{check.max_abs_logit_diff:.2e}, argmax agreement {100 * check.argmax_agreement:.3f}%"
        )
    return 0


def _build_engine(args: argparse.Namespace) -> int:
    from seg_perception.engines.tensorrt_engine import build_engine

    args.backend = "tensorrt"
    args.device = args.device if args.device and args.device.startswith("cuda") else "cuda"
    config = _engine_config(args, args.onnx)
    output = Path(args.output) if args.output else None
    path = build_engine(config, Path(args.onnx), output, args.force)
    print(f"engine ready: {path}")
    return 0


def _bench(args: argparse.Namespace) -> int:
    import cv2

    from seg_perception.engines.benchmark import format_table, run_benchmark

    if args.image:
        image = cv2.imread(args.image)
        if image is None:
            raise ValueError(f"cannot read image {args.image}")
        image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    else:
        from seg_perception.sample import generate_scene

        image = generate_scene(0).image
    config = _engine_config(args, args.model or "random:segformer-b0")
    timings, notes = run_benchmark(config, image, runs=args.runs)
    network = "x".join(map(str, config.input_size)) if config.input_size else "native"
    print(format_table(timings, image.shape, network))
    for note in notes:
        print("  " + note)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="seg-perception",
        description="Camera/LiDAR semantic segmentation and occlusion-aware label fusion.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress")
    commands = parser.add_subparsers(dest="command", required=True)

    from seg_perception.demo import add_demo_parser

    add_demo_parser(commands)

    export = commands.add_parser(
        "export",
        help="export a Hugging Face segmentation model to ONNX (dynamic H/W where the "
        "graph allows) with its spec, and verify it against PyTorch",
    )
    _add_engine_options(export, model_required=True)
    export.add_argument("--output", required=True, help="the .onnx file to write")
    export.add_argument("--opset", type=int, default=17)
    export.add_argument(
        "--check-size",
        type=int,
        nargs=2,
        action="append",
        default=[],
        metavar=("H", "W"),
        help="input size(s) to compare PyTorch and ONNX Runtime on (repeatable)",
    )
    export.set_defaults(func=_export)

    build = commands.add_parser(
        "build-engine", help="build (or refresh) a TensorRT engine from an ONNX model, offline"
    )
    build.add_argument("--onnx", required=True, help="the ONNX model")
    build.add_argument("--output", help="engine file (default: cached next to the ONNX)")
    build.add_argument("--force", action="store_true", help="rebuild even if a valid engine exists")
    _add_engine_options(build)
    build.set_defaults(func=_build_engine, precision="fp16")

    bench = commands.add_parser(
        "bench", help="time every available backend on one image: ratios and label agreement"
    )
    _add_engine_options(bench)
    bench.add_argument("--image", help="an image file (default: the generated scene's image)")
    bench.add_argument("--runs", type=int, default=5)
    bench.set_defaults(func=_bench)

    from seg_perception.bag.cli import add_parsers as add_bag_parsers
    from seg_perception.evaluation.cli import add_parsers as add_eval_parsers
    from seg_perception.lidar.cli import add_parsers as add_lidar_parsers
    from seg_perception.training.cli import add_parsers as add_training_parsers

    add_lidar_parsers(commands)
    add_bag_parsers(commands)
    add_eval_parsers(commands)
    add_training_parsers(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s"
    )
    try:
        return args.func(args)
    except (ValueError, OSError, RuntimeError, ImportError) as error:
        # Our errors say what is wrong and what to do: no traceback.
        print(f"seg-perception {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
