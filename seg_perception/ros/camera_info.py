"""``sensor_msgs/CameraInfo`` -> :class:`~seg_perception.core.camera_model.CameraModel`.

Duck-typed on the message fields, so rclpy messages and ``rosbags`` messages both work.
"""

from __future__ import annotations

from seg_perception.core.camera_model import CameraModel, ProjectionMode


def camera_model_from_camera_info(message: object, mode: ProjectionMode = "auto") -> CameraModel:
    """Build and validate the camera model a CameraInfo describes.

    Raises :class:`~seg_perception.core.camera_model.CalibrationError` with the reason when
    the message cannot describe a camera (all-zero K from an uncalibrated driver, NaNs,
    an unknown distortion model).
    """
    roi = message.roi  # type: ignore[attr-defined]
    return CameraModel.from_fields(
        width=message.width,  # type: ignore[attr-defined]
        height=message.height,  # type: ignore[attr-defined]
        K=list(message.k),  # type: ignore[attr-defined]
        D=list(message.d),  # type: ignore[attr-defined]
        R=list(message.r),  # type: ignore[attr-defined]
        P=list(message.p),  # type: ignore[attr-defined]
        distortion_model=message.distortion_model,  # type: ignore[attr-defined]
        binning_x=message.binning_x,  # type: ignore[attr-defined]
        binning_y=message.binning_y,  # type: ignore[attr-defined]
        roi=(roi.x_offset, roi.y_offset, roi.width, roi.height),
        mode=mode,
    )
