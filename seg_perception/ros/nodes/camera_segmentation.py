"""Camera segmentation node: Image or CompressedImage in; class ids and pictures out.

Subscribes ``image`` (sensor_msgs/Image; ``image/compressed`` when ``compressed``), runs the
2D engine and publishes, all with the input's stamp and frame_id and at the camera's
resolution:

* ``labels`` (mono8, or mono16 for label sets with ids >= 255): class id per pixel;
* ``confidence`` (32FC1, only with ``publish_confidence``): max softmax probability;
* ``instances`` (mono16, only with ``engine.panoptic``): a panoptic model's instance id per
  pixel (0 = none), what the fusion node's ``use_instances`` reads;
* ``color_mask`` / ``overlay`` (rgb8): class colors, and blended over the image, for people;
* ``class_map`` (seg_perception/ClassMap, latched): what the ids mean.

Outputs nobody subscribes to are not computed; with no subscriber at all the engine does
not run. A bad image, one over the size limits, or an image the engine fails on is dropped
with a diagnostic saying why; the node keeps serving.

Run: ``python -m seg_perception.ros.nodes.camera_segmentation --ros-args -p engine.model:=X``.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from sensor_msgs.msg import CompressedImage, Image

from seg_perception.ros.engine_guard import segment_or_drop, start_engine
from seg_perception.ros.image_conversions import (
    array_to_image,
    compressed_image_to_array,
    image_to_rgb8,
)
from seg_perception.ros.inputs import FrameDropError
from seg_perception.ros.node_base import SegPerceptionNode, run_node
from seg_perception.ros.node_params import ENGINE_PARAMS, engine_config
from seg_perception.ros.params import Param
from seg_perception.visualize import blend_mask


class CameraSegmentationNode(SegPerceptionNode):
    NODE_NAME = "camera_segmentation"
    PARAMS = (
        *ENGINE_PARAMS,
        Param("compressed", False, "Subscribe sensor_msgs/CompressedImage on image/compressed."),
        Param("publish_confidence", False, "Also publish the confidence image (32FC1)."),
        Param("overlay_alpha", 0.5, "Weight of class colors in the overlay.", 0.0, 1.0),
    )

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(self.NODE_NAME, **kwargs)
        self.finish_parameters()
        config = engine_config(self.params)
        self.engine = start_engine(self, config)
        self.label_set = self.engine.label_set
        self.publish_class_map(self.label_set)
        self.labels_pub = self.create_publisher(Image, "labels", self.output_qos)
        self.confidence_pub = (
            self.create_publisher(Image, "confidence", self.output_qos)
            if self.params["publish_confidence"]
            else None
        )
        self.instances_pub = (
            self.create_publisher(Image, "instances", self.output_qos) if config.panoptic else None
        )
        self.color_pub = self.create_publisher(Image, "color_mask", self.output_qos)
        self.overlay_pub = self.create_publisher(Image, "overlay", self.output_qos)
        if self.params["compressed"]:
            self.images = self.input_stream("images", check=self.limits.check_compressed)
            self.create_subscription(
                CompressedImage, "image/compressed",
                lambda m: self.images.handle(m, self.on_compressed), self.input_qos,
            )  # fmt: skip
        else:
            self.images = self.input_stream("images", check=self.limits.check_image)
            self.create_subscription(
                Image, "image", lambda m: self.images.handle(m, self.on_image), self.input_qos
            )

    def on_image(self, message: Image) -> None:
        self._handle(message, image_to_rgb8)

    def on_compressed(self, message: CompressedImage) -> None:
        self._handle(message, compressed_image_to_array)

    def _handle(self, message: Any, convert: Any) -> None:
        outputs = [
            p
            for p in (self.labels_pub, self.confidence_pub, self.instances_pub, self.color_pub,
                      self.overlay_pub)
            if p
        ]  # fmt: skip
        if not any(self.wanted(p) for p in outputs):
            self.diagnostics.skipped("images")
            return
        start = time.perf_counter()
        image = convert(message)
        if image.ndim == 3 and image.shape[2] == 4:
            image = image[..., :3]
        result = segment_or_drop(self.engine, image)
        timings = self.engine.timings
        self.diagnostics.time("preprocess", timings.preprocess)
        self.diagnostics.time("network", timings.network)
        self.diagnostics.time("postprocess", timings.postprocess)
        header = message.header
        if self.wanted(self.labels_pub):
            self.labels_pub.publish(
                array_to_image(result.labels, self.label_set.image_encoding, header)
            )
        if (
            self.confidence_pub
            and self.wanted(self.confidence_pub)
            and result.confidence is not None
        ):
            self.confidence_pub.publish(array_to_image(result.confidence, "32FC1", header))
        if self.instances_pub and self.wanted(self.instances_pub):
            self.instances_pub.publish(array_to_image(instance_ids(result), "mono16", header))
        if self.wanted(self.color_pub):
            colors = self.label_set.colorize(result.labels)
            self.color_pub.publish(array_to_image(colors, "rgb8", header))
        if self.wanted(self.overlay_pub):
            overlay = blend_mask(image, result.labels, self.label_set, self.params["overlay_alpha"])
            self.overlay_pub.publish(array_to_image(overlay, "rgb8", header))
        self.diagnostics.time("total", (time.perf_counter() - start) * 1e3)
        self.diagnostics.published("images")


def instance_ids(segmentation: Any) -> np.ndarray:
    """A panoptic segmentation's instance ids as mono16 (0 = none)."""
    ids = segmentation.instances
    if ids is None:
        return np.zeros(segmentation.labels.shape, dtype=np.uint16)
    if ids.max(initial=0) > np.iinfo(np.uint16).max:
        raise FrameDropError("too many instances", f"instance id {ids.max()} > 65535 (mono16)")
    return ids.astype(np.uint16)


def main(args: list[str] | None = None) -> int:
    return run_node(CameraSegmentationNode, args)


if __name__ == "__main__":
    raise SystemExit(main())
