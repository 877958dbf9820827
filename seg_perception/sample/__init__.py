"""Procedural labelled data for demos and tests (no licensed datasets in the repo).

:func:`generate_scene` builds a street seen by a spinning LiDAR and a pinhole camera with
exact per-point, per-pixel and occlusion truth; :mod:`.raycast` is the ray caster under it.
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
    CameraIntrinsics,
    CameraSpec,
    LidarSpec,
    Scene,
    build_street,
    generate_scene,
    render_camera,
)

__all__ = [
    "CLASS_NAMES",
    "NO_HIT_CLASS",
    "Box",
    "CameraIntrinsics",
    "CameraSpec",
    "Cylinder",
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
    "render_camera",
    "segment_clear",
]
