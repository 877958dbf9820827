"""``seg-perception eval images`` and ``eval points``: scores, a JSON report and pictures.

``eval images`` scores label maps against ground-truth id PNGs (Cityscapes trainIds by
default, 255 = ignore); the predictions are id PNGs from ``--predictions`` or computed by
an engine (``--model``). ``eval points`` scores the LiDAR segmenter's ground / obstacle
on SemanticKITTI scans (their labels mapped to ground / obstacle as ``eval-ground`` does;
unlabeled and outlier ignored). Both print per-class IoU and write ``report.json``, the
IoU bar chart, the confusion matrix and pictures of chosen frames to ``--out``.

:func:`add_parsers` is called by :mod:`seg_perception.cli`; handlers return an exit code
(1 when a ``--min-miou`` target is missed) and raise ``ValueError`` / ``OSError`` with a
clear message on bad input, which the CLI turns into exit code 2.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from seg_perception.core.labels import LabelSet
from seg_perception.core.metrics import ConfusionMatrix

#: How many frames are drawn when ``--frames`` is not given.
DEFAULT_DRAWN = 3

MEAN_IOU_DEFINITION = (
    "mean of the per-class IoUs over the classes present in the ground truth or the "
    "prediction (counts summed over all frames first); classes absent from both are left "
    "out, classes predicted but absent from the ground truth count with IoU 0"
)

#: The ground / obstacle classes ``eval points`` scores (ids are class indices; the
#: segmenter's ``unknown`` becomes the ignore id: a miss of the true class).
POINT_CLASSES = LabelSet(
    name="ground_obstacle",
    ids=(0, 1),
    names=("ground", "obstacle"),
    colors=((255, 0, 255), (255, 200, 0)),  # SemanticKITTI's road and building colors
)

#: Every raw class id SemanticKITTI's ``semantic-kitti.yaml`` defines.
SEMANTICKITTI_RAW_IDS = (
    0, 1, 10, 11, 13, 15, 16, 18, 20, 30, 31, 32, 40, 44, 48, 49, 50, 51, 52, 60, 70, 71, 72,
    80, 81, 99, 252, 253, 254, 255, 256, 257, 258, 259,
)  # fmt: skip

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


# --------------------------------------------------------------------------- parsers
def add_parsers(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``eval`` subcommand with its ``images`` and ``points`` modes."""
    from seg_perception.cli import _add_engine_options
    from seg_perception.lidar.cli import _add_ground_options

    evaluate = subparsers.add_parser(
        "eval",
        help="score label maps (images) or LiDAR ground/obstacle (points) against ground "
        "truth: per-class IoU, mIoU, accuracy, a JSON report and pictures",
        description="Score predictions against ground truth: confusion matrix, per-class "
        "IoU / precision / recall, mIoU and accuracy, counts summed over all frames. Writes "
        "report.json, iou.png (bar chart), confusion.png and pictures of chosen frames.",
    )
    modes = evaluate.add_subparsers(dest="eval_mode", required=True, metavar="{images,points}")

    images = modes.add_parser(
        "images",
        help="2D label maps vs ground-truth id PNGs (Cityscapes trainIds, 255 = ignore)",
        description="Score 2D label maps against ground-truth id PNGs. Predictions come "
        "from --predictions (id PNGs named like the ground truth) or are computed with an "
        "engine from --model over --images. Default data: <data>/kitti_semantics/training/"
        "{image_2,semantic_trainIds}, <data> = $SEG_PERCEPTION_DATA or ../shared/data.",
    )
    images.add_argument("--truth", help="folder of ground-truth id PNGs (single channel)")
    images.add_argument(
        "--images", help="folder of the RGB images (for --model and for the pictures)"
    )
    images.add_argument(
        "--predictions", help="folder of predicted id PNGs named like the ground truth"
    )
    images.add_argument(
        "--save-predictions", metavar="DIR", help="write the engine's label maps as id PNGs"
    )
    images.add_argument(
        "--ignore-id", type=int, default=255, help="ground-truth id to ignore (default: 255)"
    )
    _add_engine_options(images)
    _add_common(images, "images")
    images.set_defaults(func=eval_images_command)

    points = modes.add_parser(
        "points",
        help="LiDAR ground/obstacle vs SemanticKITTI labels",
        description="Segment every labeled SemanticKITTI scan with the geometric ground "
        "segmenter and score ground / obstacle against the labels (road, parking, "
        "sidewalk, other-ground, lane-marking, terrain = ground; other classes = obstacle; "
        "unlabeled and outlier ignored). Points the segmenter leaves unknown count as "
        "misses of their true class.",
    )
    points.add_argument(
        "--data",
        help="SemanticKITTI root, sequence folder or velodyne folder (default: "
        "$SEG_PERCEPTION_DATA/semantickitti, else ../shared/data/semantickitti)",
    )
    points.add_argument("--sequence", default="00", help="sequence (default: %(default)s)")
    points.add_argument("--scans", nargs="+", metavar="NAME", help="only these scans")
    _add_ground_options(points)
    _add_common(points, "points")
    points.set_defaults(func=eval_points_command)


def _add_common(parser: argparse.ArgumentParser, mode: str) -> None:
    parser.add_argument(
        "--out",
        default=f"eval_output/{mode}",
        help="folder for report.json and the pictures (default: %(default)s)",
    )
    parser.add_argument(
        "--frames",
        nargs="+",
        metavar="NAME",
        help=f"frames to draw: names, 'all' or 'none' (default: the first {DEFAULT_DRAWN})",
    )
    parser.add_argument(
        "--min-miou", type=float, help="exit with status 1 if the overall mIoU is below this"
    )


def _data_root() -> Path:
    root = os.environ.get("SEG_PERCEPTION_DATA")
    return Path(root) if root else Path("../shared/data")


# --------------------------------------------------------------------------- shared
def choose_frames(names: Sequence[str], wanted: Sequence[str] | None) -> list[str]:
    """The frames to draw: ``wanted`` names (file suffixes allowed), 'all', 'none', or by
    default the first :data:`DEFAULT_DRAWN`."""
    if not wanted:
        return list(names[:DEFAULT_DRAWN])
    if list(wanted) == ["all"]:
        return list(names)
    if list(wanted) == ["none"]:
        return []
    chosen = [
        Path(w).stem if Path(w).suffix.lower() in (*IMAGE_SUFFIXES, ".bin") else w for w in wanted
    ]
    unknown = [w for w in chosen if w not in names]
    if unknown:
        listed = ", ".join(names[:8]) + (" ..." if len(names) > 8 else "")
        raise ValueError(f"--frames: no frame named {', '.join(unknown)} (frames: {listed})")
    return chosen


def prepare_out(out: Path) -> Path:
    """Create ``out``; remove the pictures a previous run listed in its report.json (and
    only those), so a rerun with fewer frames leaves no stale pictures behind."""
    import json

    out.mkdir(parents=True, exist_ok=True)
    previous = out / "report.json"
    if previous.is_file():
        try:
            names = json.loads(previous.read_text(encoding="utf-8")).get("pictures", [])
        except (ValueError, AttributeError):
            names = []
        for name in names:
            path = out / Path(str(name)).name
            if path.suffix == ".png" and path.is_file():
                path.unlink()
    return out


def _finish(
    args: argparse.Namespace,
    out: Path,
    confusion: ConfusionMatrix,
    frames: list[dict],
    report: dict,
    files: list[Path],
    label_set: LabelSet,
    unit: str,
    title: str,
    missed_name: str,
) -> int:
    from seg_perception.evaluation import report as draw

    files.append(draw.write_png(out / "iou.png", draw.iou_bar_chart(confusion, label_set, title)))
    heatmap = draw.confusion_heatmap(
        confusion, label_set, f"Confusion matrix - {title}", missed_name
    )
    files.append(draw.write_png(out / "confusion.png", heatmap))
    report.update(
        {
            "mean_iou_definition": MEAN_IOU_DEFINITION,
            "label_set": label_set.to_dict(),
            "overall": confusion.to_dict([label_set.name_of(i) for i in confusion.class_ids]),
            "frames": frames,
            "pictures": sorted(p.name for p in files),
        }
    )
    files.append(draw.write_json(out / "report.json", report))
    print(draw.format_scores(confusion, label_set, unit))
    print(f"wrote {out / 'report.json'} and {len(files) - 1} picture(s) in {out}")
    if args.min_miou is not None and not confusion.mean_iou >= args.min_miou:
        print(f"below target: mIoU {confusion.mean_iou:.4f} < {args.min_miou}")
        return 1
    return 0


# --------------------------------------------------------------------------- images
def read_label_png(path: Path) -> np.ndarray:
    """A single-channel id PNG (8 or 16 bit) as an (H, W) array."""
    import cv2

    labels = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if labels is None:
        raise OSError(f"cannot read label image {path}")
    if labels.ndim != 2:
        raise ValueError(
            f"{path} has {labels.shape[2]} channels: expected a single-channel id PNG "
            "(e.g. Cityscapes trainIds), not a color or palette image"
        )
    return labels


def read_rgb(path: Path) -> np.ndarray:
    import cv2

    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise OSError(f"cannot read image {path}")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def _find(folder: Path, stem: str) -> Path | None:
    for suffix in IMAGE_SUFFIXES:
        path = folder / (stem + suffix)
        if path.is_file():
            return path
    return None


def _folder(path: Path, what: str) -> Path:
    if not path.is_dir():
        raise OSError(f"{what} folder {path} does not exist")
    return path


def image_predictor(args: argparse.Namespace, label_set: LabelSet):
    """(function name, rgb -> labels, description) for --predictions or --model."""
    if args.predictions and args.model:
        raise ValueError("give --predictions or --model, not both")
    if args.predictions:
        folder = _folder(Path(args.predictions), "--predictions")

        def from_folder(name: str, image: np.ndarray | None) -> np.ndarray:
            path = _find(folder, name)
            if path is None:
                raise OSError(f"no prediction {name}.png in {folder}")
            return read_label_png(path)

        return from_folder, {"predictions": str(folder)}
    if not args.model:
        raise ValueError(
            "give --predictions DIR (id PNGs) or --model (e.g. an ONNX file, a Hugging Face "
            "folder, or random:segformer-b0 for a smoke test)"
        )
    from seg_perception.cli import _engine_config
    from seg_perception.engines.factory import create_engine

    engine = create_engine(_engine_config(args, args.model))
    if tuple(engine.label_set.names) != tuple(label_set.names):
        print(
            f"note: the model's classes ({engine.label_set.name}, {len(engine.label_set)}) "
            f"differ from the ground truth's ({label_set.name}, {len(label_set)}); scoring "
            "the ids as they are"
        )
    save = Path(args.save_predictions) if args.save_predictions else None
    if save:
        save.mkdir(parents=True, exist_ok=True)

    def from_engine(name: str, image: np.ndarray | None) -> np.ndarray:
        import cv2

        if image is None:
            raise OSError(f"--model needs the image of frame {name} (--images)")
        labels = engine.segment(image).labels
        if save is not None:
            cv2.imwrite(str(save / f"{name}.png"), labels)
        return labels

    print(f"predicting with {engine.description}")
    return from_engine, {
        "model": args.model,
        "engine": engine.description,
        "input_size": list(args.input_size) if args.input_size else "native",
    }


def evaluate_images(
    truth_dir: Path,
    images_dir: Path | None,
    predict: Callable[[str, np.ndarray | None], np.ndarray],
    label_set: LabelSet,
    ignore_id: int,
    draw: Sequence[str] | None,
    out: Path,
) -> tuple[ConfusionMatrix, list[dict], list[Path]]:
    """Score every ground-truth PNG in ``truth_dir``; draw the chosen frames into ``out``."""
    from seg_perception.evaluation import report as pictures

    truths = sorted(truth_dir.glob("*.png"))
    if not truths:
        raise OSError(f"no ground-truth *.png in {truth_dir}")
    names = [p.stem for p in truths]
    drawn = set(choose_frames(names, draw))
    total = ConfusionMatrix(class_ids=label_set.ids, ignore_id=ignore_id)
    frames, files = [], []
    for name, truth_path in zip(names, truths, strict=True):
        truth = read_label_png(truth_path)
        image = None
        if images_dir is not None:
            image_path = _find(images_dir, name)
            if image_path is None:
                raise OSError(f"no image {name}.png in {images_dir}")
            image = read_rgb(image_path)
            if image.shape[:2] != truth.shape:
                raise ValueError(
                    f"image {image_path} is {image.shape[1]}x{image.shape[0]} but its ground "
                    f"truth {truth_path} is {truth.shape[1]}x{truth.shape[0]}"
                )
        prediction = predict(name, image)
        if prediction.shape != truth.shape:
            raise ValueError(
                f"prediction for {name} is {prediction.shape[1]}x{prediction.shape[0]} but its "
                f"ground truth {truth_path} is {truth.shape[1]}x{truth.shape[0]}"
            )
        frame = ConfusionMatrix(class_ids=label_set.ids, ignore_id=ignore_id)
        try:
            frame.update(prediction, truth)
        except ValueError as error:
            raise ValueError(f"frame {name}: {error}") from None
        total = total + frame
        frames.append(pictures.frame_summary(name, frame, label_set))
        if name in drawn:
            background = image if image is not None else np.full((*truth.shape, 3), 128, np.uint8)
            panel = pictures.image_frame_panel(
                background, prediction, truth, label_set, ignore_id, name, frame
            )
            files.append(pictures.write_png(out / f"frame_{name}.png", panel))
    return total, frames, files


def eval_images_command(args: argparse.Namespace) -> int:
    default = _data_root() / "kitti_semantics" / "training"
    truth_dir = _folder(
        Path(args.truth) if args.truth else default / "semantic_trainIds", "--truth"
    )
    images_dir: Path | None
    if args.images:
        images_dir = _folder(Path(args.images), "--images")
    elif not args.truth:
        images_dir = _folder(default / "image_2", "image")
    else:
        images_dir = None
    if args.model and images_dir is None:
        raise ValueError("--model needs --images (the RGB images to segment)")
    label_set = LabelSet.from_name_or_path(args.label_set or "cityscapes")
    if args.ignore_id in label_set.ids:
        raise ValueError(f"--ignore-id {args.ignore_id} is a class of {label_set.name}")
    predict, source = image_predictor(args, label_set)
    out = prepare_out(Path(args.out))
    start = time.perf_counter()
    confusion, frames, files = evaluate_images(
        truth_dir, images_dir, predict, label_set, args.ignore_id, args.frames, out
    )
    seconds = time.perf_counter() - start
    print(f"{len(frames)} frame(s) from {truth_dir} in {seconds:.1f} s")
    report = {
        "command": "eval images",
        "truth": str(truth_dir),
        "images": str(images_dir) if images_dir else None,
        "source": source,
        "ignore_id": args.ignore_id,
        "seconds": round(seconds, 3),
    }
    where = "/".join(truth_dir.resolve().parts[-3:-1])
    what = args.model or f"predictions {Path(args.predictions).name}"
    title = f"{where}, {_count(len(frames), 'frame')}: {what}"
    return _finish(
        args, out, confusion, frames, report, files, label_set, "pixels", title, "unlabeled"
    )


# --------------------------------------------------------------------------- points
def semantickitti_ground_obstacle(labels: np.ndarray, ignore_id: int = 255) -> np.ndarray:
    """SemanticKITTI uint32 labels -> :data:`POINT_CLASSES` ids (0 ground, 1 obstacle,
    ``ignore_id`` unlabeled / outlier). Raw classes SemanticKITTI does not define raise."""
    from seg_perception.lidar.evaluation import semantickitti_ground_truth

    raw = np.asarray(labels).astype(np.uint32) & 0xFFFF
    unknown = np.setdiff1d(np.unique(raw), SEMANTICKITTI_RAW_IDS)
    if unknown.size:
        raise ValueError(
            f"raw class id(s) {', '.join(map(str, unknown[:10]))} are not SemanticKITTI classes"
        )
    ground, scored = semantickitti_ground_truth(raw)
    return np.where(scored, np.where(ground, 0, 1), ignore_id).astype(np.uint8)


def lidar_class_to_points(lidar_class: np.ndarray, ignore_id: int = 255) -> np.ndarray:
    """The segmenter's ``lidar_class`` -> :data:`POINT_CLASSES` ids; unknown -> ignore."""
    from seg_perception.lidar.classes import GROUND, OBSTACLE

    out = np.full(lidar_class.shape, ignore_id, dtype=np.uint8)
    out[lidar_class == GROUND] = 0
    out[lidar_class == OBSTACLE] = 1
    return out


def eval_points_command(args: argparse.Namespace) -> int:
    from seg_perception.evaluation import report as pictures
    from seg_perception.lidar import evaluation
    from seg_perception.lidar.cli import ground_params
    from seg_perception.lidar.ground import segment_ground

    data = Path(args.data) if args.data else _data_root() / "semantickitti"
    scans = evaluation.find_scans(data, args.sequence)
    if args.scans:
        missing = set(args.scans) - {s.name for s in scans}
        if missing:
            raise OSError(f"scan(s) {', '.join(sorted(missing))} not found under {data}")
        scans = [s for s in scans if s.name in set(args.scans)]
    drawn = set(choose_frames([s.name for s in scans], args.frames))
    params = ground_params(args)
    ignore = 255
    out = prepare_out(Path(args.out))
    total = ConfusionMatrix(class_ids=POINT_CLASSES.ids, ignore_id=ignore)
    frames, files = [], []
    start = time.perf_counter()
    for item in scans:
        points = evaluation.read_scan(item.scan)
        try:
            truth = semantickitti_ground_obstacle(
                evaluation.read_labels(item.labels, len(points)), ignore
            )
        except ValueError as error:
            raise ValueError(f"{item.labels}: {error}") from None
        prediction = lidar_class_to_points(segment_ground(points, params).lidar_class, ignore)
        frame = ConfusionMatrix(class_ids=POINT_CLASSES.ids, ignore_id=ignore)
        frame.update(prediction, truth)
        total = total + frame
        summary = pictures.frame_summary(item.name, frame, POINT_CLASSES)
        summary["points"] = len(points)
        summary["unknown_predictions"] = int(np.count_nonzero(prediction == ignore))
        frames.append(summary)
        if item.name in drawn:
            args_draw = (points, prediction, truth, POINT_CLASSES, ignore, item.name)
            files.append(
                pictures.write_png(
                    out / f"scan_{item.name}_birds_eye.png",
                    pictures.points_birds_eye_panel(*args_draw),
                )
            )
            files.append(
                pictures.write_png(
                    out / f"scan_{item.name}_range.png", pictures.points_range_panel(*args_draw)
                )
            )
    seconds = time.perf_counter() - start
    print(f"{len(scans)} scan(s) from {data} in {seconds:.1f} s")
    report = {
        "command": "eval points",
        "data": str(data),
        "sequence": args.sequence,
        "scans": [s.name for s in scans],
        "segmenter": "geometric ground (seg_perception.lidar.ground.segment_ground)",
        "ground_params": {k: getattr(params, k) for k in params.__dataclass_fields__},
        "truth_mapping": {
            "ground": list(evaluation.SEMANTICKITTI_GROUND),
            "ignored": list(evaluation.SEMANTICKITTI_IGNORED),
            "obstacle": "every other SemanticKITTI class",
        },
        "ignore_id": ignore,
        "unknown_prediction": "the segmenter's 'unknown' is scored as a miss of the true class",
        "seconds": round(seconds, 3),
    }
    title = f"SemanticKITTI {args.sequence}, {_count(len(scans), 'scan')}: ground/obstacle"
    return _finish(
        args, out, total, frames, report, files, POINT_CLASSES, "points", title, "unknown"
    )


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")
