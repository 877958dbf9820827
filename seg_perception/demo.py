"""The main job on the embedded default: fuse camera labels onto a generated street scene.

A fresh clone has no datasets (their licenses keep them out of the repository), so the
demo generates a street (:mod:`seg_perception.sample`) with exact truth, runs the very
``Pipeline`` the nodes and bag replay run, scores every camera-visible point against the
truth, and writes the labeled cloud and pictures.

The 2D labels come from a segmentation engine when a model is available (``--model``,
``$SEG_PERCEPTION_MODEL`` or a cached Cityscapes SegFormer); otherwise from the scene's
rendered ground-truth label image, and the demo says which.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import cv2
import numpy as np

from seg_perception.core.fusion import FusionConfig
from seg_perception.core.labeled_cloud import labeled_fields
from seg_perception.core.labels import LabelSet
from seg_perception.core.pipeline import CameraInput, Frame, FrameResult, Pipeline
from seg_perception.core.transforms import transform_points
from seg_perception.engines.base import SegmentationEngine
from seg_perception.lidar.cloud_files import write_pcd
from seg_perception.ros.pointcloud2 import append_fields
from seg_perception.sample import Scene, generate_scene
from seg_perception.visualize import birds_eye, blend_mask, overlay_points

TRUTH_SOURCE = "the scene's rendered ground-truth label image (no segmentation network ran)"


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
    summary that is also saved as JSON."""
    out.mkdir(parents=True, exist_ok=True)
    label_set = engine.label_set if engine is not None else LabelSet.cityscapes()
    scene = generate_scene(seed)
    frame = scene_frame(scene, truth_labels=engine is None)
    if engine is not None:
        # Segment once; both fusion runs below reuse the label image.
        camera = frame.cameras[0]
        segmentation = engine.segment(camera.image)
        camera.labels, camera.confidence = segmentation.labels, segmentation.confidence
        camera.labels_description = f"{engine.description} on the rendered RGB image"
    results = {}
    for enabled in (occlusion, not occlusion):
        config = replace(fusion or FusionConfig(), occlusion=enabled)
        pipeline = Pipeline(fusion=config, label_set=label_set)
        results[enabled] = pipeline.process(frame)
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
        "outputs": [str(cloud_path), *map(str, pictures)],
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return summary


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
        f"occlusion handling {state}: {s['visible_correct']}/{s['camera_visible']} visible points "
        f"correct ({100 * s['visible_accuracy']:.2f}%), {s['hidden_mislabeled']} hidden points "
        f"mislabeled, fusion {s['fusion_ms']:.1f} ms",
        f"occlusion handling {other}: {100 * flipped['visible_accuracy']:.2f}% visible correct, "
        f"{flipped['hidden_mislabeled']} hidden points mislabeled",
        "wrote: " + ", ".join(summary["outputs"]),
    ]
    return "\n".join(lines)
