"""The main job on the embedded default: fuse camera labels onto a generated street scene.

A fresh clone has no datasets (their licenses keep them out of the repository), so the
demo generates a street (:mod:`seg_perception.sample`) with exact truth, runs the very
``Pipeline`` the nodes and bag replay run, scores every camera-visible point against the
truth, and writes the labeled cloud and pictures.

The 2D labels come from a real network: by default the compact SegFormer packaged in
``seg_perception/sample/models/`` (trained on generated scenes with ``seg-perception
train``; README "Training your own model" has the command), else ``--model`` or
``$SEG_PERCEPTION_MODEL``. Its labels are scored in 2D (mIoU against the scene's label
image) and, after fusion, in 3D, next to the same fusion fed the scene's rendered truth
labels, so the cost of a real network is visible at a glance. ``--truth-labels`` skips
the network (the demo before a model was packaged).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import cv2
import numpy as np

from seg_perception.core.fusion import FusionConfig
from seg_perception.core.fusion import warm_up as fusion_warm_up
from seg_perception.core.labeled_cloud import labeled_fields
from seg_perception.core.labels import LabelSet
from seg_perception.core.metrics import ConfusionMatrix
from seg_perception.core.pipeline import CameraInput, Frame, FrameResult, Pipeline
from seg_perception.core.transforms import transform_points
from seg_perception.engines.base import SegmentationEngine
from seg_perception.lidar.cloud_files import write_pcd
from seg_perception.ros.pointcloud2 import append_fields
from seg_perception.sample import Scene, generate_scene
from seg_perception.visualize import birds_eye, blend_mask, overlay_points

TRUTH_SOURCE = "the scene's rendered ground-truth label image (no segmentation network ran)"
#: The network the demo runs by default (ONNX; its spec is the YAML beside it).
PACKAGED_MODEL = Path(__file__).with_name("sample") / "models" / "street_segformer.onnx"


@dataclass
class DemoScore:
    """How well fusion labeled the points, against the generator's truth."""

    points: int
    camera_visible: int
    visible_correct: int
    visible_accuracy: float
    hidden_in_image: int
    hidden_mislabeled: int
    fusion_ms: float


def scene_cloud(scene: Scene) -> np.ndarray:
    """The scene's LiDAR sweep as a structured cloud, like a driver would publish it."""
    cloud = np.empty(
        len(scene.points),
        dtype=[("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("intensity", "<f4"), ("ring", "<u2")],
    )
    for column, name in enumerate(("x", "y", "z", "intensity")):
        cloud[name] = scene.points[:, column]
    cloud["ring"] = scene.point_ring
    return cloud


def scene_frame(scene: Scene, camera_name: str = "front", truth_labels: bool = True) -> Frame:
    """A pipeline frame of the scene; its camera carries the rendered truth label image
    unless ``truth_labels`` is False (then a label source must segment the image)."""
    camera = CameraInput(
        name=camera_name,
        model=scene.intrinsics.to_camera_model(),
        T_cam_from_lidar=scene.T_cam_from_lidar,
        image=scene.image,
        labels=scene.label_image if truth_labels else None,
        frame_id=scene.camera_frame_id,
        labels_description=TRUTH_SOURCE,
    )
    return Frame(points=scene_cloud(scene), cameras=[camera], frame_id=scene.lidar_frame_id)


def score(scene: Scene, frame: Frame, result: FrameResult) -> DemoScore:
    """Per-point accuracy on camera-visible points; mislabels among hidden in-image points."""
    label = result.fusion.label
    visible = scene.visible_in_camera
    camera = frame.cameras[0]
    in_image = camera.model.project(transform_points(camera.T_cam_from_lidar, scene.points)).valid
    hidden = in_image & ~visible
    correct = int(np.count_nonzero(label[visible] == scene.point_labels[visible]))
    wrong_hidden = hidden & (label != 255) & (label != scene.point_labels)
    return DemoScore(
        points=len(label),
        camera_visible=int(visible.sum()),
        visible_correct=correct,
        visible_accuracy=correct / max(int(visible.sum()), 1),
        hidden_in_image=int(hidden.sum()),
        hidden_mislabeled=int(wrong_hidden.sum()),
        fusion_ms=result.timings_ms["fusion"],
    )


def write_pictures(
    out: Path, scene: Scene, frame: Frame, result: FrameResult, label_set: LabelSet
) -> list[Path]:
    """Overlay of labeled points on the image, bird's-eye view, and the camera's labels."""
    camera = frame.cameras[0]
    xyz = scene.points[:, :3]
    projection = camera.model.project(transform_points(camera.T_cam_from_lidar, xyz))
    labeled = projection.valid & (result.fusion.label != label_set.unlabeled_id)
    colors = label_set.colorize(result.fusion.label)
    overlay = overlay_points(
        scene.image, projection.uv[labeled], projection.depth[labeled], colors[labeled]
    )
    bev_colors = np.where(
        (result.fusion.label == label_set.unlabeled_id)[:, None], np.uint8(90), colors
    )
    pictures = {
        "overlay.png": overlay,
        "birds_eye.png": birds_eye(xyz, bev_colors, radius=1),
        "camera_labels.png": blend_mask(scene.image, result.segmentations[0].labels, label_set),
        "camera_image.png": scene.image,
    }
    paths = []
    for name, rgb in pictures.items():
        path = out / name
        cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        paths.append(path)
    return paths


def run_demo(
    out: Path,
    seed: int = 0,
    occlusion: bool = True,
    engine: SegmentationEngine | None = None,
    model_note: str = "",
    fusion: FusionConfig | None = None,
) -> dict:
    """Generate, segment (engine or rendered truth), fuse, score, write; returns the
    summary that is also saved as JSON. With an engine, the fusion of the truth labels is
    scored too (``truth_score``) and the 2D labels against the truth (``miou_2d``)."""
    out.mkdir(parents=True, exist_ok=True)
    label_set = engine.label_set if engine is not None else LabelSet.cityscapes()
    fusion_warm_up(fusion)  # one-time costs (the compiled search's load) not in the timing
    scene = generate_scene(seed)
    frame = scene_frame(scene, truth_labels=engine is None)
    segmentation_ms = None
    if engine is not None:
        # Segment once; the fusion runs below reuse the label image.
        camera = frame.cameras[0]
        start = time.perf_counter()
        segmentation = engine.segment(camera.image)
        segmentation_ms = 1000 * (time.perf_counter() - start)
        camera.labels, camera.confidence = segmentation.labels, segmentation.confidence
        camera.labels_description = f"{engine.description} on the rendered RGB image"
    results = _fuse(frame, fusion, label_set, occlusion)
    result = results[occlusion]
    # The published labeled-cloud fields, plus the generator's truth for inspection.
    fused = append_fields(frame.points, {**labeled_fields(result), "truth": scene.point_labels})
    cloud_path = write_pcd(out / "labeled_cloud.pcd", fused)
    pictures = write_pictures(out, scene, frame, result, label_set)
    summary = {
        "seed": seed,
        "label_source": result.label_sources[0],
        "model_note": model_note,
        "occlusion_handling": occlusion,
        "score": asdict(score(scene, frame, result)),
        "score_with_occlusion_handling_flipped": asdict(
            score(scene, frame, results[not occlusion])
        ),
    }
    if engine is not None:
        truth_frame = scene_frame(scene, truth_labels=True)
        truth_config = replace(fusion or FusionConfig(), occlusion=occlusion)
        cityscapes = LabelSet.cityscapes()
        truth_result = Pipeline(fusion=truth_config, label_set=cityscapes).process(truth_frame)
        summary["truth_score"] = asdict(score(scene, truth_frame, truth_result))
        summary["miou_2d"] = miou_2d(frame.cameras[0].labels, scene.label_image, label_set)
        summary["segmentation_ms"] = round(segmentation_ms, 1)
        truth_picture = blend_mask(scene.image, scene.label_image, LabelSet.cityscapes())
        pictures.append(_write_rgb(out / "camera_truth.png", truth_picture))
    summary["outputs"] = [str(cloud_path), *map(str, pictures)]
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return summary


def _fuse(
    frame: Frame, fusion: FusionConfig | None, label_set: LabelSet, occlusion: bool
) -> dict[bool, FrameResult]:
    """The frame fused with occlusion handling on and off (keyed by that setting)."""
    results = {}
    for enabled in (occlusion, not occlusion):
        config = replace(fusion or FusionConfig(), occlusion=enabled)
        results[enabled] = Pipeline(fusion=config, label_set=label_set).process(frame)
    return results


def miou_2d(labels: np.ndarray, truth: np.ndarray, label_set: LabelSet) -> dict:
    """mIoU (and per-class IoU) of a label image against the scene's truth, as ``eval
    images`` computes it; None when the model's classes are not the scene's."""
    scene_classes = LabelSet.cityscapes()
    if tuple(label_set.names) != tuple(scene_classes.names):
        note = f"the model's classes ({label_set.name}) are not the scene's Cityscapes train ids"
        return {"miou": None, "note": note + ": no 2D score"}
    confusion = ConfusionMatrix(class_ids=scene_classes.ids, ignore_id=scene_classes.unlabeled_id)
    confusion.update(labels, truth)
    iou = {
        scene_classes.name_of(i): round(float(v), 4)
        for i, v in zip(confusion.class_ids, confusion.iou, strict=True)
        if v == v
    }
    return {
        "miou": round(float(confusion.mean_iou), 4),
        "pixel_accuracy": round(float(confusion.accuracy), 4),
        "iou": iou,
    }


def _write_rgb(path: Path, rgb: np.ndarray) -> Path:
    if not cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)):
        raise OSError(f"cannot write {path}")
    return path


def format_summary(summary: dict) -> str:
    s, flipped = summary["score"], summary["score_with_occlusion_handling_flipped"]
    state = "on" if summary["occlusion_handling"] else "off"
    other = "off" if summary["occlusion_handling"] else "on"
    lines = [f"note: {summary['model_note']}"] if summary.get("model_note") else []
    lines += [
        f"2D label source: {summary['label_source']}",
        f"scene seed {summary['seed']}: {s['points']} LiDAR points, "
        f"{s['camera_visible']} visible to the camera, {s['hidden_in_image']} hidden from it "
        "but projecting into the image",
    ]
    truth = summary.get("truth_score")
    if truth is not None:
        lines += _comparison(summary, state)
    else:
        lines.append(
            f"occlusion handling {state}: {s['visible_correct']}/{s['camera_visible']} visible "
            f"points correct ({100 * s['visible_accuracy']:.2f}%), {s['hidden_mislabeled']} "
            f"hidden points mislabeled, fusion {s['fusion_ms']:.1f} ms"
        )
    lines += [
        f"occlusion handling {other}: {100 * flipped['visible_accuracy']:.2f}% visible correct, "
        f"{flipped['hidden_mislabeled']} hidden points mislabeled",
        "wrote: " + ", ".join(summary["outputs"]),
    ]
    return "\n".join(lines)


def _comparison(summary: dict, state: str) -> list[str]:
    """Network vs truth labels: 2D mIoU, then the fused cloud's per-point accuracy."""
    s, truth, miou = summary["score"], summary["truth_score"], summary["miou_2d"]
    network_miou = "n/a" if miou["miou"] is None else f"{miou['miou']:.4f}"
    lines = [
        f"occlusion handling {state}:     2D mIoU   visible points correct    hidden mislabeled",
        f"  network labels        {network_miou:>8}   "
        f"{s['visible_correct']:>6}/{s['camera_visible']} ({100 * s['visible_accuracy']:6.2f}%)"
        f"   {s['hidden_mislabeled']:>8}",
        f"  truth labels            1.0000   "
        f"{truth['visible_correct']:>6}/{truth['camera_visible']} "
        f"({100 * truth['visible_accuracy']:6.2f}%)   {truth['hidden_mislabeled']:>8}",
    ]
    if miou["miou"] is None:
        lines.append(f"  ({miou['note']})")
    else:
        worst = sorted(miou["iou"].items(), key=lambda item: item[1])[:4]
        lines.append("  2D IoU, lowest classes: " + ", ".join(f"{n} {v:.3f}" for n, v in worst))
    lines.append(
        f"  segmentation {summary['segmentation_ms']:.0f} ms, fusion {s['fusion_ms']:.1f} ms"
    )
    return lines


# --------------------------------------------------------------------------- command
def demo_model(model: str, truth_labels: bool) -> tuple[str | None, str]:
    """(the model the demo runs or None for the truth labels, a note saying which)."""
    if truth_labels:
        if model:
            raise ValueError("give --model or --truth-labels, not both")
        return None, ""
    if model:
        return model, ""
    configured = os.environ.get("SEG_PERCEPTION_MODEL", "")
    if configured:
        return configured, f"using $SEG_PERCEPTION_MODEL={configured}"
    if PACKAGED_MODEL.is_file():
        return str(PACKAGED_MODEL), (
            "using the packaged street SegFormer (trained on generated scenes that exclude "
            "the demo's; README: Training your own model)"
        )
    raise ValueError(
        f"the packaged model {PACKAGED_MODEL} is missing (a broken install?): pass --model "
        "or --truth-labels"
    )


def add_demo_parser(commands: argparse._SubParsersAction) -> None:
    """The ``demo`` subcommand (called by :func:`seg_perception.cli.build_parser`)."""
    from seg_perception.cli import _add_engine_options, add_fusion_options

    demo = commands.add_parser(
        "demo",
        help="label a generated street scene's LiDAR cloud from its camera and score it",
        description="Generate a street scene with exact truth, segment its camera image with "
        "the packaged SegFormer (or --model, $SEG_PERCEPTION_MODEL), fuse, print the 2D mIoU "
        "and per-point accuracy next to those of the rendered truth labels, and write a "
        "labeled cloud and pictures.",
    )
    demo.add_argument("--out", default="demo_output", help="output folder (default: %(default)s)")
    demo.add_argument("--seed", type=int, default=0, help="scene seed (default: %(default)s)")
    demo.add_argument(
        "--truth-labels",
        action="store_true",
        help="fuse the scene's rendered truth labels instead of running a network",
    )
    add_fusion_options(demo)
    _add_engine_options(demo)
    demo.set_defaults(func=demo_command)


def demo_command(args: argparse.Namespace) -> int:
    from seg_perception.cli import _engine_config, fusion_config_from_args
    from seg_perception.engines.factory import create_engine

    model, note = demo_model(args.model or "", args.truth_labels)
    engine = create_engine(_engine_config(args, model)) if model else None
    fusion = fusion_config_from_args(args)
    summary = run_demo(
        Path(args.out),
        seed=args.seed,
        occlusion=fusion.occlusion,
        engine=engine,
        model_note=note,
        fusion=fusion,
    )
    print(format_summary(summary))
    return 0
