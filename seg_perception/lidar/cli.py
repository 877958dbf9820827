"""``seg-perception eval-ground`` and ``segment-cloud``: the LiDAR segmenter's commands.

:func:`add_parsers` is called by :mod:`seg_perception.cli`; handlers return an exit code
and raise ``ValueError`` / ``OSError`` with a clear message on bad input.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np

from seg_perception.lidar.cloud_files import (
    PCD_ENCODINGS,
    WRITE_SUFFIXES,
    read_cloud,
    structured_cloud,
    write_cloud,
)
from seg_perception.lidar.options import (
    add_ground_options,
    add_segmenter_options,
    cluster_params_from_args,
    ground_options_given,
    ground_params_from_args,
    segmenter_from_args,
)


def add_parsers(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``eval-ground`` and ``segment-cloud`` subcommands."""
    evaluate = subparsers.add_parser(
        "eval-ground",
        help="score ground segmentation on SemanticKITTI scans and on generated scenes "
        "beyond KITTI (indoor, ramps, curbs...), side by side with Patchwork++ and linefit",
        description="Segment the ground of every labeled SemanticKITTI scan and score it "
        "against the labels (road, parking, sidewalk, other-ground, lane-marking, terrain = "
        "ground; unlabeled and outlier excluded), per scan and overall. With --scenes, also "
        "score generated scene types with exact truth (ground = walkable faces flatter than "
        "30 deg): precision, recall, F1, the share of ground on faces steeper than 30 deg "
        "and the height of ground points above the floor. Patchwork++ (pypatchworkpp) and "
        "linefit run on the same points when installed.",
    )
    evaluate.add_argument(
        "--data",
        default=None,
        help="SemanticKITTI root, sequence folder or velodyne folder (default: "
        "$SEG_PERCEPTION_DATA/semantickitti, else ../shared/data/semantickitti)",
    )
    evaluate.add_argument("--sequence", default="00", help="sequence (default: %(default)s)")
    evaluate.add_argument(
        "--scans", nargs="+", metavar="NAME", help="only these scans (e.g. 000000 000002)"
    )
    evaluate.add_argument(
        "--no-kitti", action="store_true", help="skip SemanticKITTI (generated scenes only)"
    )
    evaluate.add_argument(
        "--scenes",
        nargs="*",
        metavar="TYPE",
        help="also score generated scene types (no name or 'all': every type; known: "
        + ", ".join(_scene_types())
        + ")",
    )
    evaluate.add_argument(
        "--seeds", type=int, default=2, help="sweeps per scene type (default: %(default)s)"
    )
    for peer, package in (("linefit", "linefit"), ("patchwork", "pypatchworkpp")):
        evaluate.add_argument(
            f"--{peer}",
            choices=["auto", "yes", "no"],
            default="auto",
            help=f"compare with {package}: auto = when installed (default: %(default)s)",
        )
    evaluate.add_argument("--plot", metavar="PNG", help="write the scene-type figure here")
    evaluate.add_argument(
        "--targets",
        action="store_true",
        help="exit with status 1 unless ours meets issue 13's targets: KITTI F1 >= 0.965 and "
        ">= Patchwork++'s; every scene type F1 >= Patchwork++'s; indoors precision >= 0.95 "
        "and <= 1 %% of ground on steep faces",
    )
    _add_ground_options(evaluate)
    evaluate.add_argument(
        "--min-f1", type=float, help="exit with status 1 if our overall KITTI F1 is below this"
    )
    evaluate.add_argument(
        "--min-precision",
        type=float,
        help="exit with status 1 if our overall KITTI precision is below this",
    )
    evaluate.set_defaults(func=eval_ground_command)

    segment = subparsers.add_parser(
        "segment-cloud",
        help="label one cloud file ground/obstacle/unknown with obstacle clusters",
        description="Read a cloud (.pcd: ascii, binary or binary_compressed; .bin: KITTI "
        "float32 x, y, z, intensity; .npy), segment it and print a summary; with --output "
        "write it with all its own fields and its organized (H, W) layout plus lidar_class "
        "(uint8: 0 unknown, 1 ground, 2 obstacle) and cluster (int32, -1 none). The ground "
        "and clustering options are the nodes' ground.* / cluster.* parameters.",
    )
    segment.add_argument("cloud", help="the input cloud file (.pcd, .bin or .npy)")
    segment.add_argument("--output", help="write the labeled cloud (.pcd or .npy)")
    segment.add_argument(
        "--pcd-encoding",
        choices=PCD_ENCODINGS,
        default="binary",
        help="DATA encoding of a .pcd --output (default: %(default)s)",
    )
    add_segmenter_options(segment)
    model = segment.add_argument_group("learned range-image segmenter (instead of the ground)")
    model.add_argument(
        "--model", help="an ONNX range-image model instead of the geometric segmenter"
    )
    model.add_argument("--image-size", type=int, nargs=2, metavar=("H", "W"), default=None)
    model.add_argument("--fov-up", type=float, default=None, metavar="DEG")
    model.add_argument("--fov-down", type=float, default=None, metavar="DEG")
    segment.set_defaults(func=segment_cloud_command)


def _add_ground_options(parser: argparse.ArgumentParser) -> None:
    """Every GroundParams flag (``eval-ground``; ``eval points`` imports it too)."""
    add_ground_options(parser)


def ground_params(args: argparse.Namespace):
    """The GroundParams of :func:`_add_ground_options`' flags."""
    return ground_params_from_args(args)


def _default_data() -> Path:
    root = os.environ.get("SEG_PERCEPTION_DATA")
    return Path(root) / "semantickitti" if root else Path("../shared/data/semantickitti")


def _scene_types() -> list[str]:
    from seg_perception.sample.ground_scenes import GROUND_SCENE_TYPES

    return list(GROUND_SCENE_TYPES)


def _wanted(choice: str, available: bool, flag: str, package: str) -> bool:
    if choice == "yes" and not available:
        raise ImportError(f"--{flag} yes: it is not installed (pip install {package})")
    return choice == "yes" or (choice == "auto" and available)


OURS = "seg_perception"
#: Issue 13's KITTI target for our F1.
KITTI_MIN_F1 = 0.965


def eval_ground_command(args: argparse.Namespace) -> int:
    from seg_perception.lidar import evaluation

    params = ground_params(args)
    use = {}
    for flag, name, package, available in (
        ("linefit", "linefit", "linefit", evaluation.linefit_available()),
        ("patchwork", "Patchwork++", "pypatchworkpp==1.4.1", evaluation.patchwork_available()),
    ):
        use[flag] = _wanted(getattr(args, flag), available, flag, package)
        if not available and getattr(args, flag) == "auto":
            print(f"{name} is not installed (pip install {package}): not compared")
    use_linefit, use_patchwork = use["linefit"], use["patchwork"]
    failed: list[str] = []
    if not args.no_kitti:
        failed += _eval_kitti(args, params, use_linefit, use_patchwork)
    if args.scenes is not None:
        failed += _eval_scenes(args, params, use_linefit, use_patchwork)
    if failed:
        print("below target: " + "; ".join(failed))
        return 1
    return 0


def _eval_kitti(args, params, use_linefit: bool, use_patchwork: bool) -> list[str]:
    from seg_perception.lidar import evaluation
    from seg_perception.lidar.ground import segment_ground

    data = Path(args.data) if args.data else _default_data()
    try:
        scans = evaluation.find_scans(data, args.sequence)
    except OSError:
        if args.scenes is None or args.data:
            raise
        print(f"no SemanticKITTI scans under {data}: generated scenes only")
        return []
    if args.scans:
        wanted = set(args.scans)
        missing = wanted - {s.name for s in scans}
        if missing:
            raise OSError(f"scan(s) {', '.join(sorted(missing))} not found under {data}")
        scans = [s for s in scans if s.name in wanted]
    methods = {OURS: lambda points: segment_ground(points, params).ground}
    if use_patchwork:
        methods["patchwork++"] = evaluation.PatchworkGround()
    if use_linefit:
        methods["linefit (KITTI config)"] = evaluation.LinefitGround(evaluation.LINEFIT_KITTI)
        methods["linefit (defaults)"] = evaluation.LinefitGround(None)
    results = evaluation.evaluate_ground(scans, methods)
    print(f"SemanticKITTI ground segmentation, {len(scans)} scan(s) from {data}")
    print(evaluation.format_results(results))
    totals = evaluation.total_scores(results)
    overall = totals[OURS]
    failed = []
    if args.min_f1 is not None and not overall.f1 >= args.min_f1:
        failed.append(f"F1 {overall.f1:.4f} < {args.min_f1}")
    if args.min_precision is not None and not overall.precision >= args.min_precision:
        failed.append(f"precision {overall.precision:.4f} < {args.min_precision}")
    if args.targets:
        if not overall.f1 >= KITTI_MIN_F1:
            failed.append(f"KITTI F1 {overall.f1:.4f} < {KITTI_MIN_F1}")
        if "patchwork++" in totals and not overall.f1 >= totals["patchwork++"].f1:
            failed.append(f"KITTI F1 {overall.f1:.4f} < Patchwork++ {totals['patchwork++'].f1:.4f}")
    return failed


def _eval_scenes(args, params, use_linefit: bool, use_patchwork: bool) -> list[str]:
    import numpy as np

    from seg_perception.lidar import ground_eval

    names = args.scenes if args.scenes and args.scenes != ["all"] else _scene_types()
    if args.seeds < 1:
        raise ValueError(f"--seeds must be >= 1, got {args.seeds}")
    methods = {OURS: ground_eval.ours(params)}
    peers = []
    if use_patchwork:
        # Its KITTI defaults ignore the first 2.7 m, where indoor floors are: both ways.
        methods["patchwork++"] = ground_eval.patchwork()
        methods["patchwork++ 0.5m"] = ground_eval.patchwork(min_range=0.5)
        peers = ["patchwork++", "patchwork++ 0.5m"]
    if use_linefit:
        methods["linefit"] = ground_eval.linefit()
    results = ground_eval.evaluate_scene_types(names, range(args.seeds), methods)
    print(
        f"\nGenerated scenes, {args.seeds} sweep(s) per type (peers get the true sensor "
        "height; ours estimates it unless --sensor-height is given). steep% = share of "
        "ground points on faces > 30 deg, h.mean / h.p95 = their height above the floor (m)"
    )
    print(ground_eval.format_scene_results(results))
    if args.plot:
        from seg_perception.lidar.ground_plot import ground_figure, write_png

        rows = [r.name for r in results]
        f1 = np.array([[r.scores[m].score.f1 for m in methods] for r in results])
        steep = np.array([[r.scores[m].steep_share for m in methods] for r in results])
        print(f"wrote {write_png(args.plot, ground_figure(rows, list(methods), f1, steep))}")
    failed = []
    if args.targets:
        for peer in peers or [None]:
            failed += ground_eval.target_failures(results, OURS, peer)
    return sorted(set(failed))


def _segmenter(args: argparse.Namespace):
    if not args.model:
        return segmenter_from_args(args)
    given = ground_options_given(args)
    if given:
        raise ValueError(f"{', '.join(given)}: ground options do not apply to --model")
    from seg_perception.lidar.range_image import (
        RangeImageSegmenter,
        RangeModelConfig,
        RangeProjection,
    )

    default = RangeProjection()
    height, width = args.image_size or (default.height, default.width)
    projection = RangeProjection(
        height=height,
        width=width,
        fov_up_deg=default.fov_up_deg if args.fov_up is None else args.fov_up,
        fov_down_deg=default.fov_down_deg if args.fov_down is None else args.fov_down,
    )
    return RangeImageSegmenter(
        RangeModelConfig(args.model, projection), cluster_params_from_args(args)
    )


def segment_cloud_command(args: argparse.Namespace) -> int:
    from seg_perception.lidar.classes import LIDAR_CLASS_NAMES

    if args.output and Path(args.output).suffix.lower() not in WRITE_SUFFIXES:
        raise ValueError(f"--output {args.output}: use a .pcd or .npy file")
    cloud = read_cloud(args.cloud)
    segmenter = _segmenter(args)
    start = time.perf_counter()
    result = segmenter.segment(cloud)
    elapsed = (time.perf_counter() - start) * 1e3
    counts = np.bincount(result.lidar_class, minlength=len(LIDAR_CLASS_NAMES))
    summary = ", ".join(f"{LIDAR_CLASS_NAMES[c]} {counts[c]}" for c in LIDAR_CLASS_NAMES)
    print(f"{args.cloud}: {result.lidar_class.size} points in {elapsed:.1f} ms: {summary}")
    print(f"segmenter: {segmenter.description}")
    if not args.model:
        _report_floor(cloud, ground_params_from_args(args))
    if result.cluster_id is not None:
        sizes = np.bincount(result.cluster_id[result.cluster_id >= 0])
        print(
            f"clusters: {len(sizes)} ({int(sizes.sum())} points)"
            + (f", largest {', '.join(map(str, sizes[:5]))}" if len(sizes) else "")
        )
    if args.output:
        _write_labeled(Path(args.output), cloud, result, args.pcd_encoding)
        print(f"wrote {args.output}")
    return 0


def _report_floor(cloud, params) -> None:
    """The sensor height and tilt the ground segmenter used (estimated unless given),
    and why it found no ground, if it did not."""
    from seg_perception.lidar.ground import segment_ground

    ground = segment_ground(cloud, params)
    if ground.sensor_height is None:
        print("floor: none found")
    else:
        how = "given" if params.sensor_height else "estimated"
        roll, pitch = ground.tilt_deg
        print(
            f"floor: sensor {ground.sensor_height:.3f} m above it ({how}), roll {roll:.2f} "
            f"deg, pitch {pitch:.2f} deg"
        )
    for warning in ground.warnings:
        print(f"warning: {warning}")


def _write_labeled(path: Path, cloud: np.ndarray, result, encoding: str) -> None:
    from seg_perception.ros.pointcloud2 import append_fields

    fields = {"lidar_class": result.lidar_class}
    if result.cluster_id is not None:
        fields["cluster"] = result.cluster_id
    cloud = structured_cloud(cloud)  # a plain (N, >=3) .npy array gets x, y, z(, i) fields
    # An already labeled cloud: replace our fields (a stale cluster too), never duplicate.
    kept = [name for name in cloud.dtype.names if name not in ("lidar_class", "cluster")]
    if len(kept) < len(cloud.dtype.names):
        cloud = cloud[kept]
    write_cloud(path, append_fields(cloud, fields), encoding)  # organized stays (H, W)
