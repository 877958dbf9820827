"""Single-process pipeline node: camera segmentation + LiDAR segmentation + fusion.

The lowest-latency way to run everything: no serialization between stages, and only the
images matched to a cloud are segmented. Subscribes ``points`` and, per camera ``<name>``,
``<name>/image`` (sensor_msgs/Image) and ``<name>/camera_info``; publishes what the fusion
node publishes (``labeled_points`` with ``lidar_class`` and ``cluster`` too,
``labeled_points_rgb``, ``fusion_status``, ``class_map``) plus, when subscribed,
``<name>/labels`` (mono8/mono16) and ``<name>/overlay`` (rgb8) per camera.

Takes the fusion node's parameters plus ``engine.*``, ``ground.*`` and ``cluster.*``.

Run: ``python -m seg_perception.ros.nodes.pipeline --ros-args -p engine.model:=b0.onnx``.
"""

from __future__ import annotations

from typing import Any

from sensor_msgs.msg import Image

from seg_perception.core.pipeline import CameraInput, FrameResult
from seg_perception.engines import create_engine
from seg_perception.ros.image_conversions import array_to_image, image_to_rgb8
from seg_perception.ros.node_base import run_node
from seg_perception.ros.node_params import (
    CLUSTER_PARAMS,
    ENGINE_PARAMS,
    GROUND_PARAMS,
    cloud_segmenter,
    engine_config,
)
from seg_perception.ros.nodes.fusion import CameraSkippedError, CameraState, FusionNode
from seg_perception.visualize import blend_mask


class PipelineNode(FusionNode):
    NODE_NAME = "pipeline"
    CAMERA_INPUT = "image"
    PARAMS = (*FusionNode.PARAMS, *ENGINE_PARAMS, *GROUND_PARAMS, *CLUSTER_PARAMS)

    def __init__(self, **kwargs: Any) -> None:
        self._image_pubs: dict[str, tuple[Any, Any]] = {}
        self._headers: dict[str, Any] = {}
        super().__init__(**kwargs)
        for camera in self.cameras:
            self._image_pubs[camera.name] = (
                self.create_publisher(Image, f"{camera.name}/labels", self.output_qos),
                self.create_publisher(Image, f"{camera.name}/overlay", self.output_qos),
            )

    def label_source(self) -> Any:
        config = engine_config(self.params)
        if not config.model:
            raise ValueError("engine.model is empty: give an ONNX file, engine, or model id")
        self.engine = create_engine(config)
        self.get_logger().info(f"segmenting with {self.engine.description}")
        return self.engine

    def cloud_segmenter(self) -> Any:
        segmenter = cloud_segmenter(self.params)
        self.get_logger().info(f"segmenting clouds with {segmenter.description}")
        return segmenter

    def camera_input(self, camera: CameraState, message: Any) -> dict[str, Any]:
        """The matched image, converted; the pipeline segments it with the engine."""
        image_msg, _ = message
        image = image_to_rgb8(image_msg)
        if image.ndim != 3:
            raise CameraSkippedError(f"image encoding {image_msg.encoding} is not a color image")
        self._headers[camera.name] = image_msg.header
        return {"image": image}

    def after_pipeline(self, inputs: list[CameraInput], result: FrameResult) -> None:
        for camera, segmentation in zip(inputs, result.segmentations, strict=True):
            labels_pub, overlay_pub = self._image_pubs[camera.name]
            header = self._headers[camera.name]
            if self.wanted(labels_pub):
                encoding = self.label_set.image_encoding
                labels_pub.publish(array_to_image(segmentation.labels, encoding, header))
            if self.wanted(overlay_pub):
                overlay = blend_mask(camera.image, segmentation.labels, self.label_set)
                overlay_pub.publish(array_to_image(overlay, "rgb8", header))

    def _subscribe_camera_data(self, index: int, camera: CameraState) -> None:
        self.create_subscription(
            Image, f"{camera.name}/image",
            lambda message, i=index: self.on_camera(i, (message, None)), self.input_qos,
        )  # fmt: skip


def main(args: list[str] | None = None) -> int:
    return run_node(PipelineNode, args)


if __name__ == "__main__":
    raise SystemExit(main())
