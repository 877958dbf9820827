"""LiDAR-side segmentation: every point ground / obstacle / unknown, obstacle clusters.

* :mod:`.classes` — the ``lidar_class`` ids and ``NO_CLUSTER``, defined once.
* :mod:`.ground` — ground a robot could stand on: slope-limited grid, steep faces refused,
  sensor height and tilt estimated per cloud (numpy, no weights); its parts in
  :mod:`.ground_plane` (height, tilt, no floor, upside down) and :mod:`.ground_grid`
  (grid operations, the steep-face test).
* :mod:`.clustering` — Euclidean clustering (voxel pre-filter, KD-tree, components).
* :mod:`.segmenter` — :class:`GeometricCloudSegmenter`, the ``Pipeline``'s cloud segmenter.
* :mod:`.range_image` — the learned slot: ONNX range-image models (RangeNet++-style).
* :mod:`.evaluation` — SemanticKITTI ground scores beside Patchwork++ and linefit;
  :mod:`.ground_eval` / :mod:`.ground_plot` the generated scene types and their figure.
* :mod:`.cli` — ``seg-perception eval-ground`` and ``segment-cloud``.
"""

from seg_perception.lidar.classes import (
    GROUND,
    LIDAR_CLASS_NAMES,
    NO_CLUSTER,
    OBSTACLE,
    UNKNOWN,
)
from seg_perception.lidar.clustering import ClusterParams, cluster_points
from seg_perception.lidar.ground import (
    GroundParams,
    GroundSegmentation,
    GroundSegmenter,
    segment_ground,
)
from seg_perception.lidar.segmenter import GeometricCloudSegmenter

__all__ = [
    "GROUND",
    "LIDAR_CLASS_NAMES",
    "NO_CLUSTER",
    "OBSTACLE",
    "UNKNOWN",
    "ClusterParams",
    "GeometricCloudSegmenter",
    "GroundParams",
    "GroundSegmentation",
    "GroundSegmenter",
    "cluster_points",
    "segment_ground",
]
