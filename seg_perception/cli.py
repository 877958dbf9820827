"""The ``seg-perception`` command. Subcommands are added as the capabilities land."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _demo(args: argparse.Namespace) -> int:
    from seg_perception.demo import format_summary, run_demo

    summary = run_demo(Path(args.out), seed=args.seed, occlusion=not args.no_occlusion)
    print(format_summary(summary))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="seg-perception",
        description="Camera/LiDAR semantic segmentation and occlusion-aware label fusion.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser(
        "demo",
        help="label a generated street scene's LiDAR cloud from its camera and score it",
        description="Generate a street scene with exact truth, run the fusion pipeline on it, "
        "print per-point accuracy and write a labeled cloud (PCD) and pictures.",
    )
    demo.add_argument("--out", default="demo_output", help="output folder (default: %(default)s)")
    demo.add_argument("--seed", type=int, default=0, help="scene seed (default: %(default)s)")
    demo.add_argument(
        "--no-occlusion", action="store_true", help="turn occlusion handling off (to compare)"
    )
    demo.set_defaults(func=_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, OSError) as error:  # our errors say what is wrong: no traceback
        print(f"seg-perception {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
