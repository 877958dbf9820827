"""Procedural labelled data for demos and tests (no licensed datasets in the repo).

:func:`generate_scene` builds a street seen by a spinning LiDAR and one or more cameras
with exact per-point, per-pixel and occlusion truth; :mod:`.sensors` holds the sensor
models (LiDAR beam layouts, lenses, rigs, ego motion) and :mod:`.raycast` is the ray
caster under it.
"""

from seg_perception.sample.raycast import (
    NO_HIT_CLASS,
    Box,
    Cylinder,
    GroundPlane,
    Primitive,
    RayHits,
    Sphere,
    cast_rays,
    intersect_nearest,
    segment_clear,
)
from seg_perception.sample.scene import (
    CLASS_NAMES,
    THING_CLASSES,
    CameraView,
    Scene,
    build_street,
    generate_scene,
    pixel_rays,
    render_camera,
)
from seg_perception.sample.sensors import (
    LIDAR_MODELS,
    SURROUND_CAMERA,
    CameraIntrinsics,
    CameraMount,
    CameraSpec,
    EgoMotion,
    LidarSpec,
    surround_rig,
)

__all__ = [
    "CLASS_NAMES",
    "LIDAR_MODELS",
    "NO_HIT_CLASS",
    "SURROUND_CAMERA",
    "THING_CLASSES",
    "Box",
    "CameraIntrinsics",
    "CameraMount",
    "CameraSpec",
    "CameraView",
    "Cylinder",
    "EgoMotion",
    "GroundPlane",
    "LidarSpec",
    "Primitive",
    "RayHits",
    "Scene",
    "Sphere",
    "build_street",
    "cast_rays",
    "generate_scene",
    "intersect_nearest",
    "pixel_rays",
    "render_camera",
    "segment_clear",
    "surround_rig",
]
