"""LiDAR-side segmentation: every point ground / obstacle / unknown, obstacle clusters.

* :mod:`.classes` — the ``lidar_class`` ids and ``NO_CLUSTER``, defined once.
* :mod:`.ground` — slope-limited grid ground segmentation (numpy, no weights).
* :mod:`.clustering` — Euclidean clustering (voxel pre-filter, KD-tree, components).
* :mod:`.segmenter` — :class:`GeometricCloudSegmenter`, the ``Pipeline``'s cloud segmenter.
* :mod:`.range_image` — the learned slot: ONNX range-image models (RangeNet++-style).
* :mod:`.evaluation` — SemanticKITTI ground scores and the linefit comparison.
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
