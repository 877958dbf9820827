"""Ground / clustering options (lidar/options.py): one declaration for the CLI flags and
the nodes' ground.* / cluster.* parameters, checked field by field against the dataclasses."""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util

import pytest

from seg_perception.lidar.clustering import ClusterParams
from seg_perception.lidar.ground import GroundParams
from seg_perception.lidar.options import (
    CLUSTERING_PARAM,
    add_segmenter_options,
    cluster_params_from_args,
    ground_params_from_args,
    segmenter_from_args,
    segmenter_from_params,
    segmenter_options,
)

#: A value other than the default for every field (kept valid together).
CHANGED = {
    "sensor_height": 2.1, "max_tilt_deg": 15.0, "roll_deg": 1.5, "pitch_deg": -2.0,
    "cell_size": 0.4, "max_slope_deg": 14.0, "max_face_deg": 40.0, "face_band": 0.3,
    "step_tolerance": 0.12,
    "max_global_slope_deg": 9.0, "height_margin": 0.6, "seed_band": 0.12,
    "distance_threshold": 0.1, "distance_threshold_per_m": 0.001, "below_ground_threshold": 0.6,
    "pit_depth": 0.3, "fill_radius": 3, "min_range": 0.7, "max_range": 100.0,
    "tolerance": 0.6, "voxel_size": 0.2, "min_cluster_size": 8, "max_cluster_size": 5000,
}  # fmt: skip


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser()
    add_segmenter_options(parser)
    return parser


def test_every_field_is_an_option_in_field_order():
    fields = [f.name for cls in (GroundParams, ClusterParams) for f in dataclasses.fields(cls)]
    assert [o.name for o in segmenter_options()] == fields
    assert set(CHANGED) == set(fields), "a new field needs a value in CHANGED"
    for option in segmenter_options():
        assert option.help and option.help != option.name, f"{option.name} has no docstring"
        assert option.kind == ("int" if isinstance(CHANGED[option.name], int) else "float")
    flags = {o.name: o.flag for o in segmenter_options()}
    assert flags["sensor_height"] == "--sensor-height"
    assert flags["tolerance"] == "--cluster-tolerance"  # replay's --tolerance is the cameras'
    assert flags["min_range"] == "--ground-min-range"
    with pytest.raises(ValueError, match="no segmenter option section"):
        segmenter_options("fusion")


def test_flags_and_parameters_give_the_same_segmenter():
    argv = []
    for option in segmenter_options():
        argv += [option.flag, str(CHANGED[option.name])]
    from_args = segmenter_from_args(_parser().parse_args(argv))
    values = {o.param: CHANGED[o.name] for o in segmenter_options()}
    from_params = segmenter_from_params({**values, CLUSTERING_PARAM: True})
    expected_ground = GroundParams(
        **{f.name: CHANGED[f.name] for f in dataclasses.fields(GroundParams)}
    )
    expected_cluster = ClusterParams(
        **{f.name: CHANGED[f.name] for f in dataclasses.fields(ClusterParams)}
    )
    assert from_args.ground == from_params.ground == expected_ground
    assert from_args.clustering == from_params.clustering == expected_cluster


def test_unset_options_are_the_dataclass_defaults():
    args = _parser().parse_args([])
    assert ground_params_from_args(args) == GroundParams()
    assert cluster_params_from_args(args) == ClusterParams()
    assert segmenter_from_params({}).ground == GroundParams()
    # 0 is "no limit" (ROS parameters cannot be None); --no-clustering is cluster.enabled false.
    args = _parser().parse_args(["--max-cluster-size", "0"])
    assert cluster_params_from_args(args).max_cluster_size is None
    assert cluster_params_from_args(_parser().parse_args(["--no-clustering"])) is None
    assert cluster_params_from_args(_parser().parse_args(["--no-clusters"])) is None  # old name
    assert segmenter_from_params({CLUSTERING_PARAM: False}).clustering is None


def test_bad_values_are_the_dataclasses_errors():
    with pytest.raises(ValueError, match="tolerance must be > 0"):
        cluster_params_from_args(_parser().parse_args(["--cluster-tolerance", "0"]))
    with pytest.raises(ValueError, match=r"\[0, 90\)"):
        ground_params_from_args(_parser().parse_args(["--max-slope-deg", "95"]))
    with pytest.raises(SystemExit):
        _parser().parse_args(["--fill-radius", "1.5"])  # an int option


def test_flags_coexist_with_the_engine_flags():
    # replay and the pipeline take both: no flag may clash (argparse raises on a clash).
    from seg_perception.engines.options import add_cli_options

    parser = argparse.ArgumentParser()
    add_cli_options(parser)
    add_segmenter_options(parser)
    args = parser.parse_args(["--model", "m.onnx", "--sensor-height", "1.9", "--no-clustering"])
    assert args.model == "m.onnx" and ground_params_from_args(args).sensor_height == 1.9


@pytest.mark.skipif(importlib.util.find_spec("rclpy") is None, reason="needs rclpy")
def test_node_parameters_come_from_the_same_declaration():
    from seg_perception.ros.node_params import CLUSTER_PARAMS, GROUND_PARAMS, cloud_segmenter

    ground = {p.name: p.default for p in GROUND_PARAMS}
    assert ground == {f"ground.{f.name}": f.default for f in dataclasses.fields(GroundParams)}
    cluster = {p.name: p.default for p in CLUSTER_PARAMS}
    assert cluster == {
        "cluster.enabled": True, "cluster.tolerance": 0.5, "cluster.voxel_size": 0.25,
        "cluster.min_cluster_size": 5, "cluster.max_cluster_size": 0,
    }  # fmt: skip
    described = {p.name: p.description for p in (*GROUND_PARAMS, *CLUSTER_PARAMS)}
    assert described["ground.sensor_height"].startswith("Height of the LiDAR origin")
    segmenter = cloud_segmenter({**ground, **cluster, "ground.sensor_height": 1.95})
    assert segmenter.ground == GroundParams(sensor_height=1.95)
    assert segmenter.clustering == ClusterParams()
