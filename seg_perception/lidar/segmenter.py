"""The geometric cloud segmenter the ``Pipeline`` runs: ground, obstacles, clusters.

It needs no learned weights, so it works on day one for any LiDAR once ``sensor_height``
is right. It satisfies :class:`~seg_perception.core.pipeline.CloudSegmenter`; the learned
range-image segmenter (:mod:`.range_image`) is the other implementation of that slot.
"""

from __future__ import annotations

import numpy as np

from seg_perception.core.cloud import cloud_xyz
from seg_perception.core.pipeline import CloudSegmentation
from seg_perception.lidar.classes import NO_CLUSTER, OBSTACLE
from seg_perception.lidar.clustering import ClusterParams, cluster_points
from seg_perception.lidar.ground import GroundParams, segment_ground


class GeometricCloudSegmenter:
    """Ground / obstacle / unknown per point plus obstacle cluster ids.

    ``clustering=None`` skips clustering (``cluster_id`` is then None, and the labeled cloud
    has no ``cluster`` field). Accepts every layout :func:`cloud_xyz` reads, including
    organized clouds with NaN or zero returns; results are flat, one entry per point.
    """

    def __init__(
        self,
        ground: GroundParams | None = None,
        clustering: ClusterParams | None = ClusterParams(),  # noqa: B008 - frozen, immutable
    ) -> None:
        self.ground = ground or GroundParams()
        self.clustering = clustering
        self.description = (
            f"geometric ground (slope-limited {self.ground.cell_size:g} m grid, "
            + (
                f"sensor {self.ground.sensor_height:g} m)"
                if self.ground.sensor_height > 0
                else "sensor height estimated per cloud)"
            )
            + (
                f" + Euclidean clusters ({clustering.tolerance:g} m)"
                if clustering is not None
                else ""
            )
        )

    def warm_up(self) -> None:
        """One pass over a small synthetic scene (a ground plane and a box).

        The first call in a process pays for SciPy's and NumPy's lazy set-up (~0.4 s
        measured for clustering); a node does it at start so its first real clouds are
        not late.
        """
        xs, ys = np.meshgrid(np.arange(2.0, 20.0, 0.5), np.arange(-5.0, 5.0, 0.5))
        ground = np.column_stack([xs.ravel(), ys.ravel(), np.full(xs.size, -1.7)])
        box = np.column_stack([np.full(40, 8.0), np.linspace(-1, 1, 40), np.linspace(-1.6, 0, 40)])
        self.segment(np.vstack([ground, box]).astype(np.float32))

    def segment(self, points: np.ndarray) -> CloudSegmentation:
        xyz = np.asarray(points)
        if xyz.dtype.names is not None or xyz.ndim != 2 or xyz.shape[1] < 3:
            xyz = cloud_xyz(xyz, np.float32)
        ground = segment_ground(xyz, self.ground)
        found = {"sensor_height": ground.sensor_height, "warnings": tuple(ground.warnings)}
        if self.clustering is None:
            return CloudSegmentation(lidar_class=ground.lidar_class, **found)
        obstacle = ground.lidar_class == OBSTACLE
        if obstacle.any():
            cluster_id = cluster_points(xyz, obstacle, self.clustering)
        else:
            cluster_id = np.full(len(obstacle), NO_CLUSTER, dtype=np.int32)
        return CloudSegmentation(lidar_class=ground.lidar_class, cluster_id=cluster_id, **found)
