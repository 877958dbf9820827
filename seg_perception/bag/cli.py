"""``seg-perception replay``, ``regress`` and ``make-bag``.

Exit codes scripts can rely on: 0 success (replay: every cloud accounted for; regress: no
regression), 1 regression found (replay: a cloud neither processed nor reported dropped),
2 bad input (missing/truncated bag, unknown storage, topics that do not exist, an output
that exists already, a model that cannot be loaded, bad options), 3 replay only: the model
failed at run time on a frame (stderr names the model, camera, topic, stamps and error).
A replay that does not exit 0 or 1 leaves no output bag.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from seg_perception.bag.io import EXIT_BAD_INPUT, EXIT_MODEL_FAILURE, BagError

REPLAY_EXIT_CODES = f"""exit codes:
  0  every cloud processed or reported as dropped; the output bag is complete
  1  some cloud was neither processed nor reported as dropped (a bug: please report it)
  {EXIT_BAD_INPUT}  bad input: missing/truncated bag, unknown topics, output exists, model
     cannot be loaded, bad options
  {EXIT_MODEL_FAILURE}  the model failed at run time on a frame; one line on stderr names the
     model, the camera, its image topic and stamp, the cloud stamp and the error
On any exit but 0 and 1 no output bag is left: it is written under a temporary name
(.NAME.*.partial beside it) and renamed at the end, so a rerun can use the same --out."""


def add_parsers(commands: argparse._SubParsersAction) -> None:
    replay = commands.add_parser(
        "replay",
        help="run a rosbag2 (sqlite3/mcap) through the pipeline into an output bag",
        description="Replay a bag offline and deterministically through the same Pipeline the "
        "nodes run;\nwrite labeled clouds, label images, class map and status messages.",
        epilog=REPLAY_EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    replay.add_argument("bag", help="input bag folder")
    replay.add_argument("--out", required=True, help="output bag folder (must not exist)")
    add_replay_options(replay)
    replay.set_defaults(func=_replay)
    _add_other_parsers(commands)


def add_replay_options(replay: argparse.ArgumentParser) -> None:
    """Every replay setting as flags: ``replay`` and ``fleet`` declare them here, once."""
    replay.add_argument(
        "--cloud-topic", default="", help="PointCloud2 topic (default: the only one)"
    )
    replay.add_argument(
        "--camera",
        action="append",
        default=[],
        metavar="NAME:IMAGE_TOPIC:INFO_TOPIC[:LABELS]",
        help="a camera (repeatable); with a 4th part, the bag's label images on that topic are "
        "fused instead of segmenting images. Default: every Image or CompressedImage topic "
        "with a CameraInfo beside it",
    )
    replay.add_argument(
        "--rig", default="",
        help="a rig YAML: {cameras: [{name, image_topic, info_topic, labels_topic, transport, "
        "projection, time_offset, tolerance, extrinsics}, ...]}, the same camera record the "
        "nodes' camera.<name>.* parameters hold (instead of --camera)",
    )  # fmt: skip
    replay.add_argument("--calibration", default="", help="extrinsics YAML (default: the bag's TF)")
    replay.add_argument(
        "--fixed-frame", default="",
        help="motion compensation: each camera sees the sweep where the vehicle was at its "
        "own stamp, from the bag's /tf through this frame (e.g. odom)",
    )  # fmt: skip
    replay.add_argument(
        "--deskew", default="auto", choices=["auto", "on", "off"],
        help="with --fixed-frame: also move each point from its firing time (the cloud's time "
        "field) to the cloud's stamp before projecting; auto: when the cloud has a time field "
        "(default), on: drop clouds without one",
    )  # fmt: skip
    replay.add_argument(
        "--time-field", default="",
        help="the per-point time field for --deskew (default: the first of t, time, "
        "timestamp, offset_time; integers are ns, floats s)",
    )  # fmt: skip
    replay.add_argument(
        "--tolerance", type=float, default=0.05,
        help="match window (s) of --camera and found cameras (a rig file gives its own)",
    )  # fmt: skip
    replay.add_argument("--no-lidar-segmentation", action="store_true")
    replay.add_argument(
        "--lidar-only", action="store_true",
        help="ignore cameras: clouds in, segmented_points out (a bag without cameras is "
        "replayed this way anyway)",
    )  # fmt: skip
    replay.add_argument("--storage", default="mcap", choices=["mcap", "sqlite3"])
    replay.add_argument("--pictures", default="", help="folder for overlay pictures of each frame")
    from seg_perception.cli import _add_engine_options, add_fusion_options
    from seg_perception.lidar.options import add_segmenter_options

    add_fusion_options(replay)
    _add_engine_options(replay)
    add_segmenter_options(replay)  # the nodes' ground.* / cluster.* settings, as flags


def _add_other_parsers(commands: argparse._SubParsersAction) -> None:
    regress = commands.add_parser(
        "regress", help="compare a replay output bag with a golden one; exit 1 on regression"
    )
    regress.add_argument("output", help="the new replay output bag")
    regress.add_argument("golden", help="the golden replay output bag")
    add_tolerance_options(regress)
    regress.set_defaults(func=_regress)

    make = commands.add_parser(
        "make-bag", help="write a bag of generated street scenes with exact truth"
    )
    make.add_argument("out", help="output bag folder (must not exist)")
    make.add_argument("--frames", type=int, default=5)
    make.add_argument("--seed", type=int, default=0)
    make.add_argument("--storage", default="mcap", choices=["mcap", "sqlite3"])
    make.add_argument(
        "--compressed", default="", choices=["", "png", "jpeg"],
        help="write the camera as a CompressedImage (<topic>/compressed) instead of raw",
    )  # fmt: skip
    make.add_argument(
        "--rig", action="store_true",
        help="a 6-camera surround rig (exposures 0-50 ms after the sweep) instead of one camera",
    )  # fmt: skip
    make.add_argument(
        "--speed", type=float, default=0.0,
        help="drive at this speed (m/s): odom -> lidar on /tf at 100 Hz, each point where the "
        "sensor was when it fired, a per-point time field",
    )  # fmt: skip
    make.set_defaults(func=_make_bag)
    from seg_perception.fleet.cli import add_parser as add_fleet_parser

    add_fleet_parser(commands)


def _cameras(specs: list[str], rig: str = "", tolerance: float = 0.05) -> list:
    """Camera records from --rig or --camera (a compressed image topic ends /compressed)."""
    from seg_perception.core.rig import CameraRecord, Rig, RigError

    if rig and specs:
        raise BagError("give cameras with --rig or with --camera, not both")
    try:
        if rig:
            return list(Rig.from_yaml(rig).cameras)
        cameras = []
        for spec in specs:
            parts = spec.split(":")
            if len(parts) not in (3, 4) or not all(parts):
                raise BagError(
                    f"--camera needs NAME:IMAGE_TOPIC:INFO_TOPIC[:LABELS_TOPIC], got {spec!r}"
                )
            transport = "compressed" if parts[1].endswith("/compressed") else "raw"
            cameras.append(CameraRecord(*parts, transport=transport, tolerance=tolerance))
    except RigError as error:
        raise BagError(str(error)) from None
    return cameras


def replay_config_from_args(args: argparse.Namespace) -> Any:
    """The ReplayConfig of :func:`add_replay_options`' flags."""
    from seg_perception.bag.replay import ReplayConfig
    from seg_perception.cli import fusion_config_from_args

    return ReplayConfig(
        cloud_topic=args.cloud_topic,
        cameras=_cameras(args.camera, args.rig, args.tolerance),
        fusion=fusion_config_from_args(args),
        segment_cloud=not args.no_lidar_segmentation,
        calibration=args.calibration,
        tolerance_s=args.tolerance,
        storage=args.storage,
        pictures=args.pictures,
        lidar_only=args.lidar_only,
        fixed_frame=args.fixed_frame,
        deskew=args.deskew,
        time_field=args.time_field,
    )


def engine_config_for(args: argparse.Namespace) -> Any:
    """The EngineConfig images would be segmented with (``--model`` or the default one);
    raises BagError when there is none."""
    from seg_perception.cli import _engine_config
    from seg_perception.engines.factory import find_default_model

    model, note = (args.model, "") if args.model else find_default_model()
    if not model:
        raise BagError(f"images must be segmented but {note}")
    return _engine_config(args, model)


def _replay(args: argparse.Namespace) -> int:
    from seg_perception.bag.io import open_bag, topic_types
    from seg_perception.bag.replay import ReplayModelError, find_topics, replay
    from seg_perception.engines.factory import create_engine
    from seg_perception.lidar.options import segmenter_from_args

    config = replay_config_from_args(args)
    # Check the bag and its topics before loading a model: bad input fails fast.
    with open_bag(args.bag) as reader:
        _, cameras = find_topics(topic_types(reader), config)
    if Path(args.out).exists():
        raise BagError(f"output bag {args.out} exists already: remove it or pick another")
    engine = None
    if cameras and not all(c.labels_topic for c in cameras):
        engine = create_engine(engine_config_for(args))
    segmenter = segmenter_from_args(args) if config.segment_cloud else None
    try:
        summary = replay(args.bag, args.out, config, engine, segmenter, progress=True)
    except ReplayModelError as error:
        print(f"\nseg-perception replay: {error}; no output written", file=sys.stderr)
        return EXIT_MODEL_FAILURE
    print(summary.format())
    if args.pictures:
        print(f"overlay pictures in {args.pictures}")
    if not summary.accounted:
        print("error: some clouds are neither processed nor reported as dropped")
        return 1
    return 0


def add_tolerance_options(parser: argparse.ArgumentParser) -> None:
    """What a regression is (``regress`` and ``fleet``)."""
    parser.add_argument("--min-point-agreement", type=float, default=1.0)
    parser.add_argument("--min-pixel-agreement", type=float, default=1.0)
    parser.add_argument("--max-class-count-change", type=float, default=0.0)


def tolerances_from_args(args: argparse.Namespace) -> Any:
    from seg_perception.bag.regress import Tolerances

    return Tolerances(
        args.min_point_agreement, args.min_pixel_agreement, args.max_class_count_change
    )


def _regress(args: argparse.Namespace) -> int:
    from seg_perception.bag.regress import EXIT_REGRESSION, regress

    report = regress(args.output, args.golden, tolerances_from_args(args))
    print(report.format())
    return 0 if report.passed else EXIT_REGRESSION


def _make_bag(args: argparse.Namespace) -> int:
    from seg_perception.bag.scene_bag import write_scene_bag

    path = write_scene_bag(
        args.out, args.frames, args.seed, args.storage, args.compressed,
        rig=args.rig, speed=args.speed,
    )  # fmt: skip
    print(f"wrote {path}: {args.frames} generated frames with truth (/truth/...)")
    return 0


__all__ = ["EXIT_BAD_INPUT", "EXIT_MODEL_FAILURE", "add_parsers"]
