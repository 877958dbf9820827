"""``seg-perception eval-ground`` and ``segment-cloud``: the LiDAR segmenter's commands.

:func:`add_parsers` is called by :mod:`seg_perception.cli`; handlers return an exit code
and raise ``ValueError`` / ``OSError`` with a clear message on bad input.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import time
from pathlib import Path

import numpy as np


def add_parsers(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``eval-ground`` and ``segment-cloud`` subcommands."""
    evaluate = subparsers.add_parser(
        "eval-ground",
        help="score ground segmentation on SemanticKITTI scans (precision, recall, F1, IoU), "
        "side by side with linefit",
        description="Segment the ground of every labeled SemanticKITTI scan and score it "
        "against the labels (road, parking, sidewalk, other-ground, lane-marking, terrain = "
        "ground; unlabeled and outlier excluded), per scan and overall. linefit (PyPI) runs "
        "on the same scans when it is installed.",
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
        "--linefit",
        choices=["auto", "yes", "no"],
        default="auto",
        help="compare with linefit: auto = when installed (default: %(default)s)",
    )
    _add_ground_options(evaluate)
    evaluate.add_argument(
        "--min-f1", type=float, help="exit with status 1 if our overall F1 is below this"
    )
    evaluate.add_argument(
        "--min-precision",
        type=float,
        help="exit with status 1 if our overall precision is below this",
    )
    evaluate.set_defaults(func=eval_ground_command)

    segment = subparsers.add_parser(
        "segment-cloud",
        help="label one cloud file ground/obstacle/unknown with obstacle clusters",
        description="Read a cloud (.bin KITTI float32 x, y, z, intensity; .pcd; .npy), "
        "segment it and print a summary; with --output write it with its own fields plus "
        "lidar_class (uint8: 0 unknown, 1 ground, 2 obstacle) and cluster (int32, -1 none).",
    )
    segment.add_argument("cloud", help="the input cloud file")
    segment.add_argument("--output", help="write the labeled cloud (.pcd or .npy)")
    _add_ground_options(segment)
    segment.add_argument("--no-clusters", action="store_true", help="skip clustering")
    segment.add_argument("--cluster-tolerance", type=float, default=None, metavar="M")
    segment.add_argument("--voxel-size", type=float, default=None, metavar="M")
    segment.add_argument("--min-cluster-size", type=int, default=None, metavar="POINTS")
    segment.add_argument("--max-cluster-size", type=int, default=None, metavar="POINTS")
    segment.add_argument(
        "--model", help="an ONNX range-image model instead of the geometric segmenter"
    )
    segment.add_argument("--image-size", type=int, nargs=2, metavar=("H", "W"), default=None)
    segment.add_argument("--fov-up", type=float, default=None, metavar="DEG")
    segment.add_argument("--fov-down", type=float, default=None, metavar="DEG")
    segment.set_defaults(func=segment_cloud_command)


def _add_ground_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--sensor-height", type=float, default=None, metavar="M", help="LiDAR height above ground"
    )
    parser.add_argument(
        "--ground-param",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="set any GroundParams field, e.g. max_slope_deg=15 (repeatable)",
    )


def ground_params(args: argparse.Namespace):
    """GroundParams from ``--sensor-height`` and ``--ground-param NAME=VALUE`` options."""
    from seg_perception.lidar.ground import GroundParams

    names = {f.name: f for f in dataclasses.fields(GroundParams)}
    values: dict[str, float | int] = {}
    for item in args.ground_param:
        name, sep, text = item.partition("=")
        name = name.strip()
        if not sep or name not in names:
            raise ValueError(
                f"--ground-param wants NAME=VALUE with NAME one of {', '.join(names)}; got {item!r}"
            )
        try:
            values[name] = int(text) if name == "fill_radius" else float(text)
        except ValueError:
            raise ValueError(f"--ground-param {name}: {text!r} is not a number") from None
    if args.sensor_height is not None:
        values["sensor_height"] = args.sensor_height
    return GroundParams(**values)


def _default_data() -> Path:
    root = os.environ.get("SEG_PERCEPTION_DATA")
    return Path(root) / "semantickitti" if root else Path("../shared/data/semantickitti")


def eval_ground_command(args: argparse.Namespace) -> int:
    from seg_perception.lidar import evaluation
    from seg_perception.lidar.ground import segment_ground

    data = Path(args.data) if args.data else _default_data()
    scans = evaluation.find_scans(data, args.sequence)
    if args.scans:
        wanted = set(args.scans)
        missing = wanted - {s.name for s in scans}
        if missing:
            raise OSError(f"scan(s) {', '.join(sorted(missing))} not found under {data}")
        scans = [s for s in scans if s.name in wanted]
    params = ground_params(args)
    ours = "seg_perception"
    methods = {ours: lambda points: segment_ground(points, params).ground}
    if args.linefit == "yes" or (args.linefit == "auto" and evaluation.linefit_available()):
        methods["linefit (KITTI config)"] = evaluation.LinefitGround(evaluation.LINEFIT_KITTI)
        methods["linefit (defaults)"] = evaluation.LinefitGround(None)
    elif args.linefit == "auto":
        print("linefit is not installed (pip install linefit): scoring seg_perception only")
    results = evaluation.evaluate_ground(scans, methods)
    print(f"SemanticKITTI ground segmentation, {len(scans)} scan(s) from {data}")
    print(evaluation.format_results(results))
    overall = evaluation.total_scores(results)[ours]
    failed = []
    if args.min_f1 is not None and not overall.f1 >= args.min_f1:
        failed.append(f"F1 {overall.f1:.4f} < {args.min_f1}")
    if args.min_precision is not None and not overall.precision >= args.min_precision:
        failed.append(f"precision {overall.precision:.4f} < {args.min_precision}")
    if failed:
        print("below target: " + "; ".join(failed))
        return 1
    return 0


def read_cloud(path: str | Path) -> np.ndarray:
    """A cloud file as a numpy array: ``.bin`` (KITTI float32 x, y, z, intensity) becomes a
    structured array with those fields; ``.pcd`` and ``.npy`` keep their own layout."""
    from seg_perception.lidar.evaluation import read_scan
    from seg_perception.pcd_io import read_pcd

    path = Path(path)
    if not path.is_file():
        raise OSError(f"cloud file {path} does not exist")
    suffix = path.suffix.lower()
    if suffix == ".bin":
        scan = read_scan(path)
        cloud = np.empty(len(scan), dtype=[(n, "<f4") for n in ("x", "y", "z", "intensity")])
        for column, name in enumerate(cloud.dtype.names):
            cloud[name] = scan[:, column]
        return cloud
    if suffix == ".pcd":
        return read_pcd(path)
    if suffix == ".npy":
        return np.load(path, allow_pickle=False)
    raise ValueError(f"{path}: unsupported cloud format {suffix!r} (use .bin, .pcd or .npy)")


def _cluster_params(args: argparse.Namespace):
    from seg_perception.lidar.clustering import ClusterParams

    if args.no_clusters:
        return None
    values = {
        "tolerance": args.cluster_tolerance,
        "voxel_size": args.voxel_size,
        "min_cluster_size": args.min_cluster_size,
        "max_cluster_size": args.max_cluster_size,
    }
    return ClusterParams(**{k: v for k, v in values.items() if v is not None})


def _segmenter(args: argparse.Namespace):
    clustering = _cluster_params(args)
    if args.model:
        from seg_perception.lidar.range_image import RangeModelConfig, RangeProjection

        default = RangeProjection()
        height, width = args.image_size or (default.height, default.width)
        projection = RangeProjection(
            height=height,
            width=width,
            fov_up_deg=default.fov_up_deg if args.fov_up is None else args.fov_up,
            fov_down_deg=default.fov_down_deg if args.fov_down is None else args.fov_down,
        )
        from seg_perception.lidar.range_image import RangeImageSegmenter

        return RangeImageSegmenter(RangeModelConfig(args.model, projection), clustering)
    from seg_perception.lidar.segmenter import GeometricCloudSegmenter

    return GeometricCloudSegmenter(ground_params(args), clustering)


def segment_cloud_command(args: argparse.Namespace) -> int:
    from seg_perception.lidar.classes import LIDAR_CLASS_NAMES

    cloud = read_cloud(args.cloud)
    segmenter = _segmenter(args)
    start = time.perf_counter()
    result = segmenter.segment(cloud)
    elapsed = (time.perf_counter() - start) * 1e3
    counts = np.bincount(result.lidar_class, minlength=len(LIDAR_CLASS_NAMES))
    summary = ", ".join(f"{LIDAR_CLASS_NAMES[c]} {counts[c]}" for c in LIDAR_CLASS_NAMES)
    print(f"{args.cloud}: {result.lidar_class.size} points in {elapsed:.1f} ms: {summary}")
    print(f"segmenter: {segmenter.description}")
    if result.cluster_id is not None:
        sizes = np.bincount(result.cluster_id[result.cluster_id >= 0])
        print(
            f"clusters: {len(sizes)} ({int(sizes.sum())} points)"
            + (f", largest {', '.join(map(str, sizes[:5]))}" if len(sizes) else "")
        )
    if args.output:
        _write_labeled(Path(args.output), cloud, result)
        print(f"wrote {args.output}")
    return 0


def _write_labeled(path: Path, cloud: np.ndarray, result) -> None:
    from seg_perception.pcd_io import write_pcd
    from seg_perception.ros.pointcloud2 import append_fields

    fields = {"lidar_class": result.lidar_class}
    if result.cluster_id is not None:
        fields["cluster"] = result.cluster_id
    if cloud.dtype.names is None:  # a plain (N, >=3) .npy array
        plain = np.asarray(cloud, dtype=np.float32).reshape(len(cloud), -1)
        names = ["x", "y", "z", "intensity"][: plain.shape[1]]
        names += [f"c{i}" for i in range(len(names), plain.shape[1])]
        structured = np.empty(len(plain), dtype=[(n, "<f4") for n in names])
        for column, name in enumerate(names):
            structured[name] = plain[:, column]
        cloud = structured
    # An already labeled cloud: replace our fields (a stale cluster too), never duplicate.
    kept = [name for name in cloud.dtype.names if name not in ("lidar_class", "cluster")]
    if len(kept) < len(cloud.dtype.names):
        cloud = cloud[kept]
    labeled = append_fields(cloud, fields)
    suffix = path.suffix.lower()
    if suffix == ".pcd":
        write_pcd(path, labeled)
    elif suffix == ".npy":
        np.save(path, labeled, allow_pickle=False)
    else:
        raise ValueError(f"--output {path}: use a .pcd or .npy file")
