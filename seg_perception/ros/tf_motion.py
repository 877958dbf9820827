"""Motion compensation live: tf2 lookups through a fixed frame (``core/motion.py`` and
``core/deskew.py`` say what is computed; this module only asks tf2 for the poses).

Kept apart from the fusion component so that the one place that talks to tf2 about time is
small: every lookup is ``lookup_transform_full(lidar, t_target, lidar, t_source, fixed)``,
"the LiDAR frame at one time seen from the LiDAR frame at another", and every failure is a
FrameDropError naming what was missing.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from rclpy.duration import Duration
from rclpy.time import Time

from seg_perception.core.cloud import cloud_xyz
from seg_perception.core.deskew import TimeFieldError, deskew, find_time_field, point_offsets
from seg_perception.core.transforms import transform_from_translation_quaternion
from seg_perception.ros.inputs import FrameDropError


class TfMotion:
    """The LiDAR's motion between two times from a tf2 buffer, through ``fixed_frame``.

    ``deskew`` is auto, on or off and ``time_field`` the configured field ("" = look for
    one), as the node parameters of the same names say.
    """

    def __init__(self, buffer: Any, fixed_frame: str, deskew: str, time_field: str) -> None:
        self.buffer = buffer
        self.fixed_frame = fixed_frame
        self.deskew_mode = deskew
        self.time_field = time_field

    def between(self, lidar: str, target: Time, source: Time, what: str) -> np.ndarray:
        """LiDAR frame at ``source`` -> LiDAR frame at ``target``; raises FrameDropError
        ("no transform", naming ``what`` the motion was for)."""
        try:
            stamped = self.buffer.lookup_transform_full(
                lidar, target, lidar, source, self.fixed_frame, timeout=Duration(seconds=0.0)
            )
        except Exception as error:  # tf2 raises several types
            raise FrameDropError(
                "no transform", f"no motion of {lidar} in {self.fixed_frame} {what}: {error}"
            ) from None
        t, q = stamped.transform.translation, stamped.transform.rotation
        return transform_from_translation_quaternion((t.x, t.y, t.z), (q.x, q.y, q.z, q.w))

    def camera_delta(self, cloud_header: Any, camera_time: Time, camera: str) -> np.ndarray:
        """The sweep (LiDAR frame at the cloud's stamp) in the LiDAR frame at the camera's
        time: ``inv(T_F_L(t_c)) @ T_F_L(t_l)``."""
        return self.between(
            cloud_header.frame_id, camera_time, Time.from_msg(cloud_header.stamp),
            f"between the cloud and camera '{camera}'",
        )  # fmt: skip

    def deskewed(self, cloud: np.ndarray, header: Any) -> tuple[np.ndarray | None, str]:
        """The points moved from their firing times to the cloud's stamp (one tf2 lookup per
        5 ms knot of the sweep), and what was done; (None, why) when not de-skewed. Raises
        FrameDropError ("cannot de-skew") where it must and cannot."""
        if self.deskew_mode == "off":
            return None, "de-skew off"
        try:
            field = find_time_field(cloud.dtype.names, self.time_field)
        except TimeFieldError as error:
            if self.deskew_mode == "on" or self.time_field:
                raise FrameDropError("cannot de-skew", str(error)) from None
            return None, "no time field"
        stamp = Time.from_msg(header.stamp)
        try:
            offsets = point_offsets(cloud, field, stamp.nanoseconds)
        except TimeFieldError as error:
            raise FrameDropError("cannot de-skew", str(error)) from None

        def delta_at(knots: np.ndarray) -> np.ndarray:
            lidar = header.frame_id
            out = []
            for k in knots:
                fired = stamp + Duration(nanoseconds=round(float(k) * 1e9))
                try:
                    out.append(
                        self.between(lidar, stamp, fired, f"over the sweep ({k * 1e3:+.1f} ms)")
                    )
                except FrameDropError as error:
                    raise FrameDropError("cannot de-skew", error.detail) from None
            return np.stack(out)

        return deskew(cloud_xyz(cloud), offsets, delta_at), f"time field '{field}'"
