"""Clicked-object node: click a point in RViz, get that object's points.

Subscribes ``points`` (PointCloud2), per camera ``<name>`` ``<name>/image``
(sensor_msgs/Image) and ``<name>/camera_info``, and ``clicked_point``
(geometry_msgs/PointStamped, what RViz's "Publish Point" tool sends). It keeps the latest
cloud and image of each camera; on a click it prompts a promptable model (SAM, from
``engine.*``) in every camera that sees the clicked point and publishes the object
(:mod:`seg_perception.core.click`):

- ``selected_points``: the object's points with all the input cloud's fields;
- ``selected_object``: ``seg_perception/Instance3DArray`` with the one object (centroid,
  bounds, oriented box; class ``selected``: SAM has no classes);
- ``selected_markers``: its RViz box.

Headers carry the cloud's stamp and frame. A click that selects nothing (off the cloud,
outside every camera, in another frame, before any cloud) is dropped with its reason in
/diagnostics and a warning; the node keeps serving. Extrinsics come from
``camera.<name>.extrinsics`` (this node does not read TF yet).

Run: ``python -m seg_perception.ros.nodes.clicked_object --ros-args
-p engine.model:=facebook/sam-vit-base -p camera.front.extrinsics:=[...]``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from geometry_msgs.msg import PointStamped
from sensor_msgs.msg import CameraInfo, Image, PointCloud2
from visualization_msgs.msg import MarkerArray

from seg_perception.core.click import ClickCamera, ClickError, select_clicked
from seg_perception.core.cloud import cloud_xyz
from seg_perception.core.labels import LabelSet
from seg_perception.msg import Instance3DArray
from seg_perception.ros.engine_guard import start_engine
from seg_perception.ros.fusion_component import camera_names, declare_camera_record
from seg_perception.ros.inputs import FrameDropError
from seg_perception.ros.markers import instance_markers
from seg_perception.ros.messages import instances_message
from seg_perception.ros.node_base import SegPerceptionNode, run_node
from seg_perception.ros.node_params import ENGINE_PARAMS, FUSION_PARAMS, engine_config
from seg_perception.ros.node_params import fusion_config as fusion_config_of
from seg_perception.ros.params import Param, StartupError
from seg_perception.ros.pointcloud2 import array_to_pointcloud2, pointcloud2_to_array

#: The one class of a selected object (SAM gives no class).
SELECTED = LabelSet("clicked_object", (0,), ("selected",), ((255, 200, 0),))


@dataclass
class _Camera:
    name: str
    T_cam_from_lidar: np.ndarray
    projection: str
    model: Any = None
    image: Any = None  # the latest Image message, converted on a click only


class ClickedObjectNode(SegPerceptionNode):
    NODE_NAME = "clicked_object"
    PARAMS = (
        *FUSION_PARAMS,
        *ENGINE_PARAMS,
        Param("cameras", ["front"], "Camera names, in order."),
        Param("click.max_distance", 1.0, "Farthest a click may be from the cloud's nearest "
              "point (m).", 0.0, 100.0),
    )  # fmt: skip

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(self.NODE_NAME, **kwargs)
        self.engine = start_engine(self, engine_config(self.params), promptable=True)
        self.fusion = fusion_config_of(self.params)
        self.cameras = [self._camera(name) for name in camera_names(self)]
        self.finish_parameters()
        self.cloud: PointCloud2 | None = None
        qos = self.output_qos
        self.points_pub = self.create_publisher(PointCloud2, "selected_points", qos)
        self.object_pub = self.create_publisher(Instance3DArray, "selected_object", qos)
        self.markers_pub = self.create_publisher(MarkerArray, "selected_markers", qos)
        clouds = self.input_stream("clouds", check=self.limits.check_cloud)
        self.create_subscription(
            PointCloud2, "points", lambda m: clouds.handle(m, self._on_cloud), self.input_qos
        )
        for camera in self.cameras:
            images = self.input_stream(f"{camera.name} image")
            infos = self.input_stream(f"{camera.name} camera_info", jump_threshold_s=None,
                                      watch=False)  # fmt: skip
            self.create_subscription(
                Image, f"{camera.name}/image",
                lambda m, c=camera, s=images: s.handle(m, lambda i: setattr(c, "image", i)),
                self.input_qos,
            )  # fmt: skip
            self.create_subscription(
                CameraInfo, f"{camera.name}/camera_info",
                lambda m, c=camera, s=infos: s.handle(m, lambda i: self._on_info(c, i)),
                self.input_qos,
            )  # fmt: skip
        clicks = self.input_stream("clicks", jump_threshold_s=None, watch=False)
        self.create_subscription(
            PointStamped, "clicked_point", lambda m: clicks.handle(m, self._on_click), 10
        )

    def _camera(self, name: str) -> _Camera:
        record = declare_camera_record(self, name)
        extrinsics = record.T_cam_from_lidar()
        if extrinsics is None:
            raise StartupError(
                f"camera.{name}.extrinsics is unset: the clicked_object node takes extrinsics "
                "from parameters only (it does not read TF yet)"
            )
        return _Camera(name, extrinsics, record.projection)

    def _on_cloud(self, message: PointCloud2) -> None:
        self.cloud = message

    def _on_info(self, camera: _Camera, message: CameraInfo) -> None:
        from seg_perception.ros.camera_info import camera_model_from_camera_info

        try:
            camera.model = camera_model_from_camera_info(message, camera.projection)
        except ValueError as error:
            raise FrameDropError("malformed", f"camera '{camera.name}': {error}") from None

    def _on_click(self, message: PointStamped) -> None:
        from seg_perception.ros.image_conversions import image_to_rgb8

        start = time.perf_counter()
        if self.cloud is None:
            raise FrameDropError("no cloud", "a click before any cloud arrived: nothing to select")
        frame = self.cloud.header.frame_id
        if message.header.frame_id not in ("", frame):
            raise FrameDropError(
                "other frame",
                f"the click is in frame '{message.header.frame_id}' but the cloud in '{frame}': "
                f"set RViz's fixed frame to '{frame}' (this node does not read TF yet)",
            )
        cloud = pointcloud2_to_array(self.cloud).reshape(-1)
        cameras = [
            ClickCamera(c.name, c.model, c.T_cam_from_lidar, image_to_rgb8(c.image))
            for c in self.cameras
            if c.model is not None and c.image is not None
        ]
        click = np.array([message.point.x, message.point.y, message.point.z])
        try:
            found = select_clicked(cloud_xyz(cloud), click, cameras, self.engine, self.fusion,
                                   self.params["click.max_distance"])  # fmt: skip
        except ClickError as error:
            self.get_logger().warning(str(error))
            raise FrameDropError("selects nothing", str(error)) from None
        if found.instance is None:
            self.get_logger().warning(f"the click selected no point: {found.reason}")
        header = self.cloud.header
        self.points_pub.publish(array_to_pointcloud2(cloud[found.indices], header))
        objects = [found.instance] if found.instance is not None else []
        message_out = instances_message(objects, SELECTED, header)
        self.object_pub.publish(message_out)
        self.markers_pub.publish(instance_markers(objects, SELECTED, header))
        prompted = ", ".join(f"{name} ({score:.2f})" for name, _, score in found.prompted)
        self.get_logger().info(
            f"click: {found.indices.size} point(s) selected, prompted {prompted}"
        )
        self.diagnostics.time("click", (time.perf_counter() - start) * 1e3)
        self.diagnostics.published("clicks")


def main(args: list[str] | None = None) -> int:
    return run_node(ClickedObjectNode, args)


if __name__ == "__main__":
    raise SystemExit(main())
