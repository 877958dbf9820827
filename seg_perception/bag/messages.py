"""Messages for bags, as ``rosbags`` objects, built from numpy and pipeline results.

The field layouts come from the same functions the rclpy builders use
(:func:`seg_perception.ros.pointcloud2.dtype_to_fields`,
:func:`seg_perception.ros.messages.fusion_status_fields`), so a bag written by replay and
a live node's output hold the same bytes for the same data.
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np

from seg_perception.core.labels import LabelSet
from seg_perception.core.pipeline import FrameResult
from seg_perception.ros.image_conversions import image_encoding_dtype
from seg_perception.ros.messages import fusion_status_fields
from seg_perception.ros.pointcloud2 import dtype_to_fields

_BIG_ENDIAN = sys.byteorder == "big"


def _type(store: Any, name: str) -> Any:
    return store.types[name]


def header(store: Any, stamp_ns: int, frame_id: str) -> Any:
    time = _type(store, "builtin_interfaces/msg/Time")(
        sec=int(stamp_ns // 1_000_000_000), nanosec=int(stamp_ns % 1_000_000_000)
    )
    return _type(store, "std_msgs/msg/Header")(stamp=time, frame_id=frame_id)


def compressed_image(store: Any, rgb: np.ndarray, codec: str, msg_header: Any) -> Any:
    """sensor_msgs/CompressedImage (png or jpeg) of an RGB (H, W, 3) image."""
    from seg_perception.ros.image_conversions import array_to_compressed_image

    encoded = array_to_compressed_image(rgb, codec)
    return _type(store, "sensor_msgs/msg/CompressedImage")(
        header=msg_header,
        format=encoded.format,
        data=np.frombuffer(bytes(encoded.data), dtype=np.uint8),
    )


def image(store: Any, array: np.ndarray, encoding: str, msg_header: Any) -> Any:
    """sensor_msgs/Image from an (H, W) or (H, W, C) array in ``encoding``."""
    dtype, channels = image_encoding_dtype(encoding)
    data = np.ascontiguousarray(array, dtype=dtype.newbyteorder("="))
    height, width = data.shape[:2]
    return _type(store, "sensor_msgs/msg/Image")(
        header=msg_header,
        height=height,
        width=width,
        encoding=encoding,
        is_bigendian=int(_BIG_ENDIAN and dtype.itemsize > 1),
        step=width * channels * dtype.itemsize,
        data=data.view(np.uint8).reshape(-1),
    )


def pointcloud2(store: Any, points: np.ndarray, msg_header: Any) -> Any:
    """sensor_msgs/PointCloud2 from a structured array, keeping its layout."""
    field_type = _type(store, "sensor_msgs/msg/PointField")
    fields = [
        field_type(name=f.name, offset=f.offset, datatype=f.datatype, count=f.count)
        for f in dtype_to_fields(points.dtype)
    ]
    height, width = (1, points.size) if points.ndim <= 1 else points.shape
    data = np.ascontiguousarray(points).view(np.uint8).reshape(-1)
    xyz = [n for n in ("x", "y", "z") if n in (points.dtype.names or ())]
    dense = all(np.isfinite(points[n]).all() for n in xyz) if xyz else True
    return _type(store, "sensor_msgs/msg/PointCloud2")(
        header=msg_header,
        height=height,
        width=width,
        fields=fields,
        is_bigendian=False,
        point_step=points.dtype.itemsize,
        row_step=points.dtype.itemsize * width,
        data=data,
        is_dense=bool(dense),
    )


def class_map(store: Any, label_set: LabelSet, msg_header: Any) -> Any:
    label_class = _type(store, "seg_perception/msg/LabelClass")
    return _type(store, "seg_perception/msg/ClassMap")(
        header=msg_header,
        label_set=label_set.name,
        unlabeled_id=label_set.unlabeled_id,
        classes=[
            label_class(id=i, name=n, r=c[0], g=c[1], b=c[2])
            for i, n, c in zip(label_set.ids, label_set.names, label_set.colors, strict=True)
        ],
    )


def fusion_status(store: Any, result: FrameResult, msg_header: Any, **kwargs: Any) -> Any:
    values = fusion_status_fields(result, **kwargs)
    stats_type = _type(store, "seg_perception/msg/CameraFusionStats")
    values["cameras"] = [stats_type(**camera) for camera in values["cameras"]]
    values["stage_ms"] = np.asarray(values["stage_ms"], dtype=np.float32)
    return _type(store, "seg_perception/msg/FusionStatus")(header=msg_header, **values)
