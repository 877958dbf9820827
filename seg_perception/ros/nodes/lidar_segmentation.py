"""LiDAR segmentation node: PointCloud2 in; the same cloud with its LiDAR classes out.

Subscribes ``points`` and publishes ``segmented_points``: the input's fields, unchanged,
with ``lidar_class`` (uint8: 0 unknown, 1 ground, 2 obstacle) and ``cluster`` (int32,
-1 = none) appended; stamp and frame_id are the input's. Works on organized clouds with
NaN returns. A malformed cloud is dropped with a diagnostic; the node keeps serving. An
input that already has ``lidar_class`` or ``cluster`` has them replaced (logged once).

Run: ``python -m seg_perception.ros.nodes.lidar_segmentation --ros-args
-p ground.sensor_height:=1.8``.
"""

from __future__ import annotations

import time
from typing import Any

from sensor_msgs.msg import PointCloud2

from seg_perception.ros.node_base import SegPerceptionNode, run_node
from seg_perception.ros.node_params import CLUSTER_PARAMS, GROUND_PARAMS, cloud_segmenter
from seg_perception.ros.pointcloud2 import (
    append_pointcloud2_fields,
    pointcloud2_to_array,
    replaced_fields,
)


def lidar_fields(segmentation: Any) -> dict[str, Any]:
    """The fields this node appends, from a CloudSegmentation."""
    fields = {"lidar_class": segmentation.lidar_class}
    if segmentation.cluster_id is not None:
        fields["cluster"] = segmentation.cluster_id
    return fields


class LidarSegmentationNode(SegPerceptionNode):
    NODE_NAME = "lidar_segmentation"
    PARAMS = (*GROUND_PARAMS, *CLUSTER_PARAMS)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(self.NODE_NAME, **kwargs)
        self.finish_parameters()
        self.segmenter = cloud_segmenter(self.params)
        self.get_logger().info(f"segmenting clouds with {self.segmenter.description}")
        self.publisher = self.create_publisher(PointCloud2, "segmented_points", self.output_qos)
        self.clouds = self.input_stream("clouds", check=self.limits.check_cloud)
        self.create_subscription(
            PointCloud2, "points", lambda m: self.clouds.handle(m, self.on_cloud), self.input_qos
        )

    def on_cloud(self, message: PointCloud2) -> None:
        if not self.wanted(self.publisher):
            self.diagnostics.skipped("clouds")
            return
        start = time.perf_counter()
        segmentation = self.segmenter.segment(pointcloud2_to_array(message))
        self.diagnostics.ground(segmentation)
        fields = lidar_fields(segmentation)
        replaced = replaced_fields(message, fields)
        output = append_pointcloud2_fields(message, fields, replace=True)
        self.publisher.publish(output)
        if replaced:
            self.diagnostics.count("clouds with replaced fields")
            self.get_logger().warning(
                f"the input cloud already has {', '.join(replaced)}: replaced by this node's",
                once=True,
            )
        self.diagnostics.time("segment", (time.perf_counter() - start) * 1e3)
        self.diagnostics.published("clouds")


def main(args: list[str] | None = None) -> int:
    return run_node(LidarSegmentationNode, args)


if __name__ == "__main__":
    raise SystemExit(main())
