"""Single-process pipeline node: camera segmentation + LiDAR segmentation + fusion.

The lowest-latency way to run everything: no serialization between stages, and only the
images matched to a cloud are segmented. Subscribes ``points`` and, per camera ``<name>``,
``<name>/image`` (sensor_msgs/Image; with ``camera.<name>.transport: compressed``,
``<name>/image/compressed``, sensor_msgs/CompressedImage, decoded only for matched clouds)
and ``<name>/camera_info``; publishes what the fusion
node publishes (``labeled_points`` with ``lidar_class`` and ``cluster`` too,
``labeled_points_rgb``, ``fusion_status``, ``class_map``) plus, when subscribed,
``<name>/labels`` (mono8/mono16) and ``<name>/overlay`` (rgb8) per camera. With a panoptic
model (``engine.panoptic: true``) the cloud carries ``instance`` and the frame's objects go
out on ``instances`` (seg_perception/Instance3DArray) and ``instance_markers`` (RViz
MarkerArray). An image the engine fails on skips that camera for that cloud, counted and
reported.

Takes the fusion node's parameters plus ``engine.*``, ``ground.*`` and ``cluster.*``.

Run: ``python -m seg_perception.ros.nodes.pipeline --ros-args -p engine.model:=b0.onnx``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sensor_msgs.msg import CompressedImage, Image

from seg_perception.core.pipeline import FrameResult, Pipeline
from seg_perception.ros.engine_guard import start_engine
from seg_perception.ros.fusion_component import (
    FUSION_COMPONENT_PARAMS,
    CameraState,
    FusedCamera,
    FusionComponent,
)
from seg_perception.ros.image_conversions import (
    array_to_image,
    compressed_image_to_array,
    image_to_rgb8,
)
from seg_perception.ros.inputs import FrameDropError
from seg_perception.ros.node_base import SegPerceptionNode, run_node
from seg_perception.ros.node_params import (
    CLUSTER_PARAMS,
    ENGINE_PARAMS,
    GROUND_PARAMS,
    cloud_segmenter,
    engine_config,
    fusion_config,
)
from seg_perception.visualize import blend_mask


class CameraImages:
    """Camera data of the pipeline node: the raw image, segmented when a cloud needs it."""

    kind = "images"

    def __init__(self, node: PipelineNode) -> None:
        self.node = node

    def header(self, message: Any) -> Any:
        return message.header

    def check(self, message: Any) -> None:
        if isinstance(message, CompressedImage):
            self.node.limits.check_compressed(message)  # its size, from the header
        else:
            self.node.limits.check_image(message)

    def inputs(self, camera: CameraState, message: Any) -> dict[str, np.ndarray]:
        """The image as RGB; a CompressedImage is decoded only now, for a matched cloud."""
        if isinstance(message, CompressedImage):
            image = compressed_image_to_array(message)
            what = f"compressed image ({message.format!r})"
        else:
            image = image_to_rgb8(message)
            what = f"image encoding {message.encoding}"
        if image.ndim != 3:
            raise FrameDropError("wrong encoding", f"{what} is not a color image")
        return {"image": np.ascontiguousarray(image[..., :3])}


class PipelineNode(SegPerceptionNode):
    NODE_NAME = "pipeline"
    PARAMS = (*FUSION_COMPONENT_PARAMS, *ENGINE_PARAMS, *GROUND_PARAMS, *CLUSTER_PARAMS)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(self.NODE_NAME, **kwargs)
        config = engine_config(self.params)
        self.engine = start_engine(self, config)
        segmenter = cloud_segmenter(self.params)
        self.get_logger().info(f"segmenting clouds with {segmenter.description}")
        self.label_set = self.engine.label_set
        pipeline = Pipeline(
            label_source=self.engine,
            cloud_segmenter=segmenter,
            fusion=fusion_config(self.params),
            label_set=self.label_set,
        )
        self.fusion = FusionComponent(
            self, pipeline, CameraImages(self), self.publish_images, instances=config.panoptic
        )
        self.finish_parameters()
        self.publish_class_map(self.label_set)
        self._image_pubs: dict[str, tuple[Any, Any]] = {}
        for camera in self.fusion.cameras:
            self._image_pubs[camera.name] = (
                self.create_publisher(Image, f"{camera.name}/labels", self.output_qos),
                self.create_publisher(Image, f"{camera.name}/overlay", self.output_qos),
            )
            compressed = camera.record.transport == "compressed"
            self.create_subscription(
                CompressedImage if compressed else Image,
                f"{camera.name}/image/compressed" if compressed else f"{camera.name}/image",
                lambda m, i=camera.index: self.fusion.add_camera(i, m), self.input_qos,
            )  # fmt: skip

    def publish_images(self, fused: list[FusedCamera], result: FrameResult) -> None:
        """Per camera that took part: its label image and overlay, with the image's header."""
        for camera in fused:
            labels_pub, overlay_pub = self._image_pubs[camera.camera.name]
            header = camera.message.header
            labels = camera.segmentation.labels
            if self.wanted(labels_pub):
                labels_pub.publish(array_to_image(labels, self.label_set.image_encoding, header))
            if self.wanted(overlay_pub):
                overlay = blend_mask(camera.input.image, labels, self.label_set)
                overlay_pub.publish(array_to_image(overlay, "rgb8", header))


def main(args: list[str] | None = None) -> int:
    return run_node(PipelineNode, args)


if __name__ == "__main__":
    raise SystemExit(main())
