"""What a labeled cloud carries beyond the input's own fields, defined once.

The fusion node, bag replay and the demo all append exactly these fields, in this order:
``confidence`` (float32) first so it stays 4-byte aligned after the input's point_step,
with a panoptic camera model ``instance`` (uint32 object id, unique in the frame across
cameras, 0 = none; see :mod:`.instances`), then ``label`` (uint8, or uint16 for big label
sets; unlabeled = 255 / 65535), ``camera`` (uint8 index of the labeling camera, 255 =
none) and, when a cloud segmenter ran, ``lidar_class`` (uint8) and ``cluster`` (int32,
-1 = none).
"""

from __future__ import annotations

import numpy as np

from seg_perception.core.labels import LabelSet
from seg_perception.core.pipeline import FrameResult


def labeled_fields(result: FrameResult) -> dict[str, np.ndarray]:
    """The per-point fields to append to the input cloud, in their published order."""
    fusion = result.fusion
    fields = {"confidence": fusion.confidence}
    if fusion.instance is not None:
        fields["instance"] = fusion.instance
    fields.update(label=fusion.label, camera=fusion.camera)
    if result.lidar is not None:
        fields["lidar_class"] = result.lidar.lidar_class.astype(np.uint8, copy=False)
        if result.lidar.cluster_id is not None:
            fields["cluster"] = result.lidar.cluster_id.astype(np.int32, copy=False)
    return fields


def pack_rgb(colors: np.ndarray) -> np.ndarray:
    """(N, 3) uint8 colors -> float32 ``rgb`` values as RViz and PCL read them.

    The convention packs 0x00RRGGBB into a uint32 and reinterprets its bytes as float32.
    """
    colors = np.asarray(colors, dtype=np.uint32)
    packed = (colors[..., 0] << 16) | (colors[..., 1] << 8) | colors[..., 2]
    return packed.astype("<u4").view("<f4")


def unpack_rgb(rgb: np.ndarray) -> np.ndarray:
    """Inverse of :func:`pack_rgb`: float32 ``rgb`` -> (N, 3) uint8."""
    packed = np.asarray(rgb, dtype="<f4").view("<u4")
    return np.stack([(packed >> 16) & 255, (packed >> 8) & 255, packed & 255], -1).astype(np.uint8)


def rgb_cloud(xyz: np.ndarray, label: np.ndarray, label_set: LabelSet) -> np.ndarray:
    """x, y, z, rgb structured cloud colored by class, for RViz (unlabeled points gray)."""
    colors = label_set.colorize(label)
    colors[np.asarray(label) == label_set.unlabeled_id] = (128, 128, 128)
    cloud = np.empty(len(xyz), dtype=[("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("rgb", "<f4")])
    cloud["x"], cloud["y"], cloud["z"] = xyz[:, 0], xyz[:, 1], xyz[:, 2]
    cloud["rgb"] = pack_rgb(colors)
    return cloud
