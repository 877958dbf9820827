"""The one pipeline that live nodes and offline bag replay both run.

A :class:`Frame` holds numpy data only (a cloud, camera images or label images, their
calibration and stamps); :class:`Pipeline` turns it into a :class:`FrameResult`. The 2D
label source and the cloud segmenter are pluggable so the SegFormer engines and the LiDAR
segmenter slot in without the callers changing.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Protocol, runtime_checkable

import numpy as np

from seg_perception.core.camera_model import CameraModel
from seg_perception.core.cloud import cloud_xyz
from seg_perception.core.fusion import CameraLabels, FusionConfig, FusionResult, label_points
from seg_perception.core.instances import Instance, instances_3d
from seg_perception.core.labels import LabelSet
from seg_perception.core.transforms import check_rigid


@dataclass
class Segmentation:
    """A 2D label source's output for one image, at the image's resolution."""

    labels: np.ndarray
    confidence: np.ndarray | None = None
    #: A panoptic model's instance id per pixel (0: none, stuff included) and each
    #: instance's score: fusion gives the points instance ids. None: classes only.
    instances: np.ndarray | None = None
    instance_scores: dict[int, float] | None = None


@runtime_checkable
class LabelSource(Protocol):
    """Anything that labels an RGB image (H, W, 3 uint8) at its own resolution."""

    description: str

    def segment(self, image: np.ndarray) -> Segmentation: ...


@dataclass
class CloudSegmentation:
    """A cloud segmenter's per-point output."""

    lidar_class: np.ndarray
    cluster_id: np.ndarray | None = None
    #: The sensor height the ground segmenter used (given or estimated, m); None: unknown
    #: (no floor found, or a segmenter that does not say).
    sensor_height: float | None = None
    #: Why the segmenter may have found no ground (no floor, upside down...).
    warnings: tuple[str, ...] = ()


@runtime_checkable
class CloudSegmenter(Protocol):
    """Anything that classifies the points of a cloud (N, 3) on its own."""

    description: str

    def segment(self, points: np.ndarray) -> CloudSegmentation: ...


@dataclass
class CameraInput:
    """One camera's contribution to a frame.

    Give ``labels`` (and optionally ``confidence``) when the label image already exists,
    e.g. received from a camera segmentation node or rendered ground truth; give ``image``
    to have the pipeline's label source segment it.
    """

    name: str
    model: CameraModel
    T_cam_from_lidar: np.ndarray
    image: np.ndarray | None = None
    labels: np.ndarray | None = None
    confidence: np.ndarray | None = None
    #: Instance ids per pixel with the labels (a panoptic model's; see Segmentation).
    instances: np.ndarray | None = None
    instance_scores: dict[int, float] | None = None
    stamp_ns: int = 0
    frame_id: str = ""
    labels_description: str = "precomputed label image"
    #: Index in the configured camera list (a point's ``camera`` field); None: position.
    index: int | None = None

    def segmented(self, segmentation: Segmentation, description: str) -> CameraInput:
        """This camera with a label source's output (labels, confidence, instances)."""
        return replace(
            self, labels=segmentation.labels, confidence=segmentation.confidence,
            instances=segmentation.instances, instance_scores=segmentation.instance_scores,
            labels_description=description,
        )  # fmt: skip

    def segmentation(self) -> Segmentation:
        """What this camera brings, as a label source's output."""
        return Segmentation(self.labels, self.confidence, self.instances, self.instance_scores)


@dataclass
class Frame:
    """One LiDAR sweep and the camera data matched to it."""

    points: np.ndarray
    cameras: list[CameraInput]
    stamp_ns: int = 0
    frame_id: str = "lidar"
    #: (N, 3) the points where they were at the stamp (de-skewed, ``core/deskew.py``), used
    #: only to project into the cameras; None: the cloud's own coordinates.
    fusion_xyz: np.ndarray | None = None


@dataclass
class FrameResult:
    fusion: FusionResult
    segmentations: list[Segmentation]
    lidar: CloudSegmentation | None
    timings_ms: dict[str, float] = field(default_factory=dict)
    label_sources: list[str] = field(default_factory=list)
    #: The frame's 3D objects (:mod:`.instances`), when a camera gave instances.
    instances: list[Instance] = field(default_factory=list)


class Pipeline:
    """Segment the cameras (if needed), segment the cloud, fuse.

    ``label_source`` may be one source for all cameras or a mapping camera name -> source.
    """

    def __init__(
        self,
        label_source: LabelSource | Mapping[str, LabelSource] | None = None,
        cloud_segmenter: CloudSegmenter | None = None,
        fusion: FusionConfig | None = None,
        label_set: LabelSet | None = None,
    ) -> None:
        self.label_source = label_source
        self.cloud_segmenter = cloud_segmenter
        self.fusion = fusion or FusionConfig()
        self.label_set = label_set or LabelSet.cityscapes()

    def label_source_for(self, camera: str) -> LabelSource | None:
        """The label source that segments ``camera``'s images (None: none configured)."""
        if isinstance(self.label_source, Mapping):
            return self.label_source.get(camera)
        return self.label_source

    def segment_camera(self, camera: CameraInput) -> tuple[Segmentation, str]:
        """The label image of one camera, and a description of where it came from."""
        if camera.labels is not None:
            return camera.segmentation(), camera.labels_description
        source = self.label_source_for(camera.name)
        if source is None:
            raise ValueError(
                f"camera '{camera.name}' has neither a label image nor a label source to make one"
            )
        if camera.image is None:
            raise ValueError(f"camera '{camera.name}' has no image to segment")
        return source.segment(camera.image), source.description

    def process(self, frame: Frame) -> FrameResult:
        timings: dict[str, float] = {}
        start = time.perf_counter()
        segmentations, descriptions = [], []
        for camera in frame.cameras:
            segmentation, description = self.segment_camera(camera)
            segmentations.append(segmentation)
            descriptions.append(description)
        timings["segment_cameras"] = (time.perf_counter() - start) * 1e3

        xyz = cloud_xyz(frame.points)
        published_xyz = xyz
        lidar = None
        if self.cloud_segmenter is not None:
            start = time.perf_counter()
            lidar = self.cloud_segmenter.segment(xyz)
            timings["segment_cloud"] = (time.perf_counter() - start) * 1e3

        start = time.perf_counter()
        views = [
            CameraLabels(
                name=camera.name,
                model=camera.model,
                T_cam_from_lidar=check_rigid(camera.T_cam_from_lidar, f"{camera.name} extrinsics"),
                labels=segmentation.labels,
                confidence=segmentation.confidence,
                index=camera.index,
                instances=segmentation.instances,
                instance_scores=segmentation.instance_scores,
            )
            for camera, segmentation in zip(frame.cameras, segmentations, strict=True)
        ]
        if frame.fusion_xyz is not None:
            xyz = frame.fusion_xyz
        fusion = label_points(xyz, views, self.fusion, unlabeled_id=self.label_set.unlabeled_id)
        timings["fusion"] = (time.perf_counter() - start) * 1e3
        objects: list[Instance] = []
        if fusion.instance is not None:
            start = time.perf_counter()
            # In the published cloud's coordinates, as its points are.
            objects = instances_3d(
                published_xyz, fusion.instance, fusion.label, fusion.instance_scores
            )
            timings["instances"] = (time.perf_counter() - start) * 1e3
        return FrameResult(fusion, segmentations, lidar, timings, descriptions, objects)
