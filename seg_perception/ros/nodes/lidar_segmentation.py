"""LiDAR segmentation node: PointCloud2 in; the same cloud with its LiDAR classes out.

Subscribes ``points`` and publishes ``segmented_points``: the input's fields, unchanged,
with ``lidar_class`` (uint8: 0 unknown, 1 ground, 2 obstacle) and ``cluster`` (int32,
-1 = none) appended; stamp and frame_id are the input's. Works on organized clouds with
NaN returns. A malformed cloud is dropped with a diagnostic; the node keeps serving.

Run: ``python -m seg_perception.ros.nodes.lidar_segmentation --ros-args
-p ground.sensor_height:=1.8``.
"""

from __future__ import annotations

import time
from typing import Any

from sensor_msgs.msg import PointCloud2

from seg_perception.ros.errors import ConversionError
from seg_perception.ros.node_base import SegPerceptionNode, run_node
from seg_perception.ros.node_params import CLUSTER_PARAMS, GROUND_PARAMS, cloud_segmenter
from seg_perception.ros.pointcloud2 import append_pointcloud2_fields, pointcloud2_to_array


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
        self.create_subscription(PointCloud2, "points", self.on_cloud, self.input_qos)

    def on_cloud(self, message: PointCloud2) -> None:
        self.diagnostics.count("clouds received")
        if not self.wanted(self.publisher):
            self.diagnostics.count("clouds skipped (no subscribers)")
            return
        start = time.perf_counter()
        try:
            segmentation = self.segmenter.segment(pointcloud2_to_array(message))
            output = append_pointcloud2_fields(message, lidar_fields(segmentation))
        except (ConversionError, ValueError) as error:
            self.diagnostics.count("clouds dropped")
            self.diagnostics.problem(f"dropped cloud ({message.header.frame_id}): {error}")
            return
        self.publisher.publish(output)
        self.diagnostics.time("segment", (time.perf_counter() - start) * 1e3)
        self.diagnostics.count("clouds published")


def main(args: list[str] | None = None) -> int:
    return run_node(LidarSegmentationNode, args)


if __name__ == "__main__":
    raise SystemExit(main())
