"""Parameter tables of the nodes, and their conversion into the core's config objects.

The engine, fusion and LiDAR-segmenter settings each live in one dataclass in the core
(``EngineConfig``, ``FusionConfig``, ``GroundParams`` / ``ClusterParams``); the nodes expose
them as ROS parameters under ``engine.*``, ``fusion.*``, ``ground.*`` and ``cluster.*`` and
the dataclasses validate them. Ground and cluster parameters are generated from their
dataclasses, with the field docstrings as descriptions, so the two never drift apart.
"""

from __future__ import annotations

from typing import Any

from seg_perception.core.fusion import FusionConfig
from seg_perception.engines.config import EngineConfig
from seg_perception.engines.options import RANGES, config_from_params, engine_options, ros_value
from seg_perception.lidar.options import (
    CLUSTERING_HELP,
    CLUSTERING_PARAM,
    segmenter_from_params,
    segmenter_options,
)
from seg_perception.lidar.segmenter import GeometricCloudSegmenter
from seg_perception.ros.params import Param

#: ``engine.*``: one parameter per EngineConfig field (engines/options.py), described by
#: the field's docstring; unset contract fields come from the model's spec.
#: A node has no default model (it must be given; an empty one stops the node at start-up).
ENGINE_PARAMS = tuple(
    Param(
        f"engine.{o.name}", "" if o.name == "model" else ros_value(o), o.help,
        *RANGES.get(o.name, (None, None)), choices=o.choices,
    )
    for o in engine_options()
)  # fmt: skip

FUSION_PARAMS = (
    Param("fusion.occlusion", True, "Reject points hidden behind nearer surfaces."),
    Param("fusion.occlusion_rows", 0, "Rows searched above/below a point for occluders; 0 = "
          "automatic: sized per camera from the LiDAR's beam gaps (fusion.beam_spacing_deg) "
          "and the camera's focal length.", 0, 64),
    Param("fusion.occlusion_cols", 0, "Columns searched left/right for occluders, with "
          "occlusion_rows > 0 (automatic when occlusion_rows is 0, which needs this 0 too).",
          0, 64),
    Param("fusion.beam_spacing_deg", [0.0, 0.0], "The LiDAR's [vertical, horizontal] beam gaps "
          "(deg) that size the automatic occlusion window; 0 = measured on each cloud."),
    Param("fusion.depth_tolerance", 0.5, "Depth margin of the occlusion test (m).", 0.0, 100.0),
    Param("fusion.depth_tolerance_ratio", 0.05, "Depth margin per metre of depth.", 0.0, 1.0),
    Param("fusion.min_range", 0.0, "Points closer than this (m) stay unlabeled.", 0.0, 1000.0),
    Param("fusion.max_range", 200.0, "Points farther than this (m) stay unlabeled.", 0.0, 1e4),
    Param("fusion.min_confidence", 0.0, "Labels below this confidence are not used.", 0.0, 1.0),
    Param("fusion.multi_camera", "highest_confidence", "Which camera labels a point seen by "
          "several.", choices=("highest_confidence", "nearest", "first")),
)  # fmt: skip


#: ``ground.*`` and ``cluster.*``: one parameter per GroundParams / ClusterParams field,
#: declared once in lidar/options.py (which also makes segment-cloud's and replay's flags).
GROUND_PARAMS = tuple(Param(o.param, o.ros_default, o.help) for o in segmenter_options("ground"))
CLUSTER_PARAMS = (
    Param(CLUSTERING_PARAM, True, CLUSTERING_HELP),
    *(Param(o.param, o.ros_default, o.help) for o in segmenter_options("cluster")),
)


def _section(values: dict[str, Any], prefix: str) -> dict[str, Any]:
    return {k[len(prefix) + 1 :]: v for k, v in values.items() if k.startswith(prefix + ".")}


def engine_config(values: dict[str, Any]) -> EngineConfig:
    """The EngineConfig of a node's ``engine.*`` parameters."""
    return config_from_params(values)


def fusion_config(values: dict[str, Any]) -> FusionConfig:
    """The FusionConfig of a node's ``fusion.*`` parameters (ValueError with the reason)."""
    fusion = _section(values, "fusion")
    rows, cols = fusion["occlusion_rows"], fusion["occlusion_cols"]
    if rows == 0 and cols != 0:
        raise ValueError(
            f"fusion.occlusion_cols is {cols} but fusion.occlusion_rows is 0 (automatic, which "
            "sizes both): set occlusion_rows too, or occlusion_cols to 0"
        )
    spacing = tuple(float(v) for v in fusion["beam_spacing_deg"])
    if len(spacing) != 2:
        raise ValueError(
            f"fusion.beam_spacing_deg must be [vertical, horizontal] (deg), got {list(spacing)}"
        )
    return FusionConfig(
        occlusion=fusion["occlusion"],
        occlusion_window="auto" if rows == 0 else (rows, cols),
        beam_spacing_deg=spacing,  # type: ignore[arg-type]
        depth_tolerance_m=fusion["depth_tolerance"],
        depth_tolerance_ratio=fusion["depth_tolerance_ratio"],
        min_range_m=fusion["min_range"],
        max_range_m=fusion["max_range"],
        min_confidence=fusion["min_confidence"],
        multi_camera=fusion["multi_camera"],
    )


def cloud_segmenter(values: dict[str, Any]) -> GeometricCloudSegmenter:
    """The LiDAR segmenter of a node's ``ground.*`` / ``cluster.*`` parameters, warmed up."""
    segmenter = segmenter_from_params(values)
    segmenter.warm_up()  # a node's first clouds must not pay the first call's set-up
    return segmenter
