"""Generated-scene bags: regression data with exact truth and no license limits.

Each frame is a new street (seed, seed + 1, ...) as a KITTI-like recording would hold it:
``/tf_static`` (LiDAR -> camera), the camera's Image and CameraInfo, the LiDAR's
PointCloud2 (x, y, z, intensity, ring) at 10 Hz, plus the truth: the rendered label image
(``/truth/<camera>/labels``, mono8) and the cloud with a ``truth`` field
(``/truth/points``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from seg_perception.bag import messages as bagmsg
from seg_perception.bag.io import BagWriter, typestore
from seg_perception.core.transforms import invert_transform, matrix_to_quaternion
from seg_perception.demo import scene_cloud
from seg_perception.ros.pointcloud2 import append_fields
from seg_perception.sample import generate_scene

CAMERA = "front"
START_NS = 1_700_000_000_000_000_000
PERIOD_NS = 100_000_000


def write_scene_bag(
    path: str | Path, frames: int = 5, seed: int = 0, storage: str = "mcap",
    compressed: str = "",
) -> Path:
    """Write ``frames`` generated frames to a new bag at ``path``; returns the path.

    ``compressed`` ("png" or "jpeg") writes the camera as a CompressedImage on
    ``/front/image_raw/compressed`` (image_transport's name) instead of a raw Image.
    """
    if compressed not in ("", "png", "jpeg"):
        raise ValueError(f"compressed must be png or jpeg, got {compressed!r}")
    if frames < 1:
        raise ValueError(f"frames must be >= 1, got {frames}")
    store = typestore()
    with BagWriter(path, store, storage) as writer:
        for index in range(frames):
            scene = generate_scene(seed + index)
            stamp = START_NS + index * PERIOD_NS
            if index == 0:
                writer.write("/tf_static", _tf_static(store, scene, stamp), stamp, latched=True)
            camera_header = bagmsg.header(store, stamp, scene.camera_frame_id)
            lidar_header = bagmsg.header(store, stamp, scene.lidar_frame_id)
            if compressed:
                image = bagmsg.compressed_image(store, scene.image, compressed, camera_header)
                writer.write(f"/{CAMERA}/image_raw/compressed", image, stamp)
            else:
                image = bagmsg.image(store, scene.image, "rgb8", camera_header)
                writer.write(f"/{CAMERA}/image_raw", image, stamp)
            writer.write(f"/{CAMERA}/camera_info", _camera_info(store, scene, camera_header), stamp)
            cloud = scene_cloud(scene)
            writer.write("/lidar/points", bagmsg.pointcloud2(store, cloud, lidar_header), stamp)
            labels = bagmsg.image(store, scene.label_image, "mono8", camera_header)
            writer.write(f"/truth/{CAMERA}/labels", labels, stamp)
            truth = append_fields(cloud, {"truth": scene.point_labels})
            writer.write("/truth/points", bagmsg.pointcloud2(store, truth, lidar_header), stamp)
    return Path(path)


def _tf_static(store: object, scene: object, stamp: int) -> object:
    types = store.types  # type: ignore[attr-defined]
    pose = invert_transform(scene.T_cam_from_lidar)  # type: ignore[attr-defined]
    q = matrix_to_quaternion(pose[:3, :3])
    transform = types[
        "geometry_msgs/msg/TransformStamped"
    ](
        header=bagmsg.header(store, stamp, scene.lidar_frame_id),  # type: ignore[attr-defined]
        child_frame_id=scene.camera_frame_id,  # type: ignore[attr-defined]
        transform=types["geometry_msgs/msg/Transform"](
            translation=types["geometry_msgs/msg/Vector3"](*map(float, pose[:3, 3])),
            rotation=types["geometry_msgs/msg/Quaternion"](*map(float, q)),
        ),
    )
    return types["tf2_msgs/msg/TFMessage"](transforms=[transform])


def _camera_info(store: object, scene: object, header: object) -> object:
    fields = scene.intrinsics.to_camera_info_fields()  # type: ignore[attr-defined]
    types = store.types  # type: ignore[attr-defined]
    roi = types["sensor_msgs/msg/RegionOfInterest"](
        x_offset=0, y_offset=0, height=0, width=0, do_rectify=False
    )
    return types["sensor_msgs/msg/CameraInfo"](
        header=header,
        height=fields["height"],
        width=fields["width"],
        distortion_model=fields["distortion_model"],
        d=np.asarray(fields["D"], dtype=np.float64).ravel(),
        k=np.asarray(fields["K"], dtype=np.float64).ravel(),
        r=np.asarray(fields["R"], dtype=np.float64).ravel(),
        p=np.asarray(fields["P"], dtype=np.float64).ravel(),
        binning_x=0,
        binning_y=0,
        roi=roi,
    )
