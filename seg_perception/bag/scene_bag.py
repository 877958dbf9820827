"""Generated-scene bags: regression data with exact truth and no license limits.

Each frame is a new street (seed, seed + 1, ...) as a KITTI-like recording would hold it:
``/tf_static`` (LiDAR -> camera), the camera's Image and CameraInfo, the LiDAR's
PointCloud2 (x, y, z, intensity, ring) at 10 Hz, plus the truth: the rendered label image
(``/truth/<camera>/labels``, mono8) and the cloud with a ``truth`` field
(``/truth/points``).

``rig=True`` records a 6-camera surround rig instead (``front``, ``front_left``, ...,
half the nuScenes resolution, each camera exposed 0-50 ms after the sweep starts and
stamped then), and ``speed`` drives the vehicle: the LiDAR's pose ``odom -> lidar`` is
on ``/tf`` at 100 Hz and each point is published where the sensor was when it fired (the
cloud gains the driver's ``time`` field, s after the stamp). The truth cloud then also
carries ``visible``: bit ``i`` set when camera ``i`` sees the point.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from seg_perception.bag import messages as bagmsg
from seg_perception.bag.io import BagWriter, typestore
from seg_perception.core.transforms import invert_transform, matrix_to_quaternion
from seg_perception.demo import scene_cloud
from seg_perception.ros.pointcloud2 import append_fields
from seg_perception.sample import SURROUND_CAMERA, EgoMotion, generate_scene, surround_rig

CAMERA = "front"
START_NS = 1_700_000_000_000_000_000
PERIOD_NS = 100_000_000
#: /tf rate of a moving rig's odometry.
TF_PERIOD_NS = 10_000_000
FIXED_FRAME = "odom"


def write_scene_bag(
    path: str | Path, frames: int = 5, seed: int = 0, storage: str = "mcap",
    compressed: str = "", *, rig: bool = False, speed: float = 0.0,
) -> Path:  # fmt: skip
    """Write ``frames`` generated frames to a new bag at ``path``; returns the path.

    ``compressed`` ("png" or "jpeg") writes the cameras as CompressedImages on
    ``/<camera>/image_raw/compressed`` (image_transport's name) instead of raw Images;
    ``rig`` and ``speed`` (m/s): see the module docstring.
    """
    if compressed not in ("", "png", "jpeg"):
        raise ValueError(f"compressed must be png or jpeg, got {compressed!r}")
    if frames < 1:
        raise ValueError(f"frames must be >= 1, got {frames}")
    if not 0.0 <= speed <= 60.0:
        raise ValueError(f"speed must be within 0-60 m/s, got {speed}")
    store = typestore()
    motion = EgoMotion(speed=speed)
    cameras = surround_rig(spec=SURROUND_CAMERA.scaled(0.5)) if rig else None
    timed = rig or not motion.is_static
    with BagWriter(path, store, storage) as writer:
        for index in range(frames):
            scene = generate_scene(seed + index, cameras=cameras, motion=motion)
            stamp = START_NS + index * PERIOD_NS
            if index == 0:
                writer.write("/tf_static", _tf_static(store, scene, stamp), stamp, latched=True)
            if not motion.is_static:
                last = index == frames - 1  # the last frame's sweep ends a period later
                _write_odometry(writer, store, scene, motion, stamp, last)
            for view in scene.cameras:
                _write_camera(writer, store, view, stamp, compressed)
            lidar_header = bagmsg.header(store, stamp, scene.lidar_frame_id)
            cloud = scene.cloud() if timed else scene_cloud(scene)
            writer.write("/lidar/points", bagmsg.pointcloud2(store, cloud, lidar_header), stamp)
            truth_fields = {"truth": scene.point_labels}
            if rig:
                bits = sum(v.visible.astype(np.uint8) << i for i, v in enumerate(scene.cameras))
                truth_fields["visible"] = bits.astype(np.uint8)
            truth = append_fields(cloud, truth_fields)
            writer.write("/truth/points", bagmsg.pointcloud2(store, truth, lidar_header), stamp)
    return Path(path)


def truth_cameras(rig: bool = False, tolerance: float = 0.045) -> list:
    """Camera records that replay a generated bag with its truth label images as the 2D
    labels. The rig's exposures (0-50 ms after the sweep) are matched around +25 ms
    (``delay``), so every camera's window holds its own exposure and not its neighbours'."""
    from seg_perception.core.rig import CameraRecord
    from seg_perception.sample.sensors import SURROUND_NAMES

    names, delay = (SURROUND_NAMES, 0.025) if rig else ((CAMERA,), 0.0)
    return [
        CameraRecord(
            name, f"/{name}/image_raw", f"/{name}/camera_info", f"/truth/{name}/labels",
            tolerance=tolerance, delay=delay,
        )
        for name in names
    ]  # fmt: skip


def truth_accuracy(bag: str | Path, output: str | Path) -> tuple[float, int]:
    """(% correct, points) of a replay ``output``'s labels against ``bag``'s truth, on the
    points some camera sees (the ``visible`` truth field; every point without it)."""
    from seg_perception.bag.io import open_bag
    from seg_perception.ros.pointcloud2 import pointcloud2_to_array

    def clouds(path: str | Path, topic: str) -> list[np.ndarray]:
        with open_bag(path) as reader:
            wanted = [c for c in reader.connections if c.topic == topic]
            return [
                np.asarray(pointcloud2_to_array(reader.deserialize(raw, c.msgtype)))
                for c, _, raw in reader.messages(connections=wanted)
            ] if wanted else []  # fmt: skip

    labeled = clouds(output, "/seg_perception/labeled_points")
    truth = clouds(bag, "/truth/points")
    if not labeled or len(labeled) != len(truth):
        raise ValueError(f"{len(labeled)} labeled clouds in {output} for {len(truth)} in {bag}")
    correct = total = 0
    for out, true in zip(labeled, truth, strict=True):
        seen = true["visible"] != 0 if "visible" in true.dtype.names else slice(None)
        correct += int((out["label"][seen] == true["truth"][seen]).sum())
        total += int(np.count_nonzero(true["truth"][seen] >= 0))
    return 100.0 * correct / max(total, 1), total


def _write_camera(
    writer: BagWriter, store: object, view: object, stamp: int, compressed: str
) -> None:
    """One camera's image, CameraInfo and truth labels, stamped at its exposure."""
    name = view.name  # type: ignore[attr-defined]
    at = stamp + round(view.time_offset * 1e9)  # type: ignore[attr-defined]
    header = bagmsg.header(store, at, view.frame_id)  # type: ignore[attr-defined]
    rgb = view.image  # type: ignore[attr-defined]
    if compressed:
        image = bagmsg.compressed_image(store, rgb, compressed, header)
        writer.write(f"/{name}/image_raw/compressed", image, at)
    else:
        writer.write(f"/{name}/image_raw", bagmsg.image(store, rgb, "rgb8", header), at)
    info = _camera_info(store, view.intrinsics, header)  # type: ignore[attr-defined]
    writer.write(f"/{name}/camera_info", info, at)
    labels = bagmsg.image(store, view.label_image, "mono8", header)  # type: ignore[attr-defined]
    writer.write(f"/truth/{name}/labels", labels, at)


def _write_odometry(
    writer: BagWriter, store: object, scene: object, motion: EgoMotion, stamp: int, last: bool
) -> None:
    """``odom -> lidar`` at 100 Hz over this frame's period (and its cameras' exposures),
    the end included for the ``last`` frame: the constant-velocity pose, continuous from
    the bag's start."""
    lidar = scene.lidar_frame_id  # type: ignore[attr-defined]
    for at in range(stamp, stamp + PERIOD_NS + (1 if last else 0), TF_PERIOD_NS):
        pose = motion.delta((at - START_NS) / 1e9)
        message = _tf_message(store, [_transform(store, FIXED_FRAME, lidar, pose, at)])
        writer.write("/tf", message, at)


def _tf_static(store: object, scene: object, stamp: int) -> object:
    """LiDAR -> each camera's optical frame."""
    lidar = scene.lidar_frame_id  # type: ignore[attr-defined]
    return _tf_message(store, [
        _transform(store, lidar, view.frame_id, invert_transform(view.T_cam_from_lidar), stamp)
        for view in scene.cameras  # type: ignore[attr-defined]
    ])  # fmt: skip


def _transform(store: object, parent: str, child: str, pose: np.ndarray, stamp: int) -> object:
    """A TransformStamped: ``pose`` maps ``child`` coordinates into ``parent``."""
    types = store.types  # type: ignore[attr-defined]
    q = matrix_to_quaternion(pose[:3, :3])
    return types["geometry_msgs/msg/TransformStamped"](
        header=bagmsg.header(store, stamp, parent),
        child_frame_id=child,
        transform=types["geometry_msgs/msg/Transform"](
            translation=types["geometry_msgs/msg/Vector3"](*map(float, pose[:3, 3])),
            rotation=types["geometry_msgs/msg/Quaternion"](*map(float, q)),
        ),
    )


def _tf_message(store: object, transforms: list) -> object:
    return store.types["tf2_msgs/msg/TFMessage"](transforms=transforms)  # type: ignore[attr-defined]


def _camera_info(store: object, intrinsics: object, header: object) -> object:
    fields = intrinsics.to_camera_info_fields()  # type: ignore[attr-defined]
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
