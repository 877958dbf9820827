"""The learned-segmenter slot: spherical projection, back-projection, and ONNX range-image
models (a hand-written one with a known answer, a random-weight network exported here)."""

from __future__ import annotations

import logging
import math
import warnings

import numpy as np
import pytest

from seg_perception.core.pipeline import CloudSegmenter, Frame, Pipeline
from seg_perception.lidar.classes import GROUND, NO_CLUSTER, OBSTACLE, UNKNOWN
from seg_perception.lidar.range_image import (
    NO_PIXEL,
    RangeImageSegmenter,
    RangeModelConfig,
    RangeProjection,
    back_project,
    project_cloud,
    to_lidar_class,
)
from seg_perception.sample import generate_scene

KITTI = RangeProjection()  # 64 x 2048, +3 .. -25 deg


def _at(elevation_deg: float, azimuth_deg: float, distance: float = 10.0) -> list[float]:
    e, a = math.radians(elevation_deg), math.radians(azimuth_deg)
    return [distance * math.cos(e) * math.cos(a), distance * math.cos(e) * math.sin(a),
            distance * math.sin(e)]  # fmt: skip


def test_projection_rows_and_columns_by_hand():
    points = np.array(
        [
            _at(0, 0),  # straight ahead: middle column; row (1 - 25/28) * 64 = 6.86
            _at(0, 90),  # left: a quarter of the way round, column 512
            _at(0, -90),  # right: column 1536
            _at(0, 180),  # behind: column 0
            _at(-10, 0),  # row (1 - 15/28) * 64 = 29.7
            _at(2.99, 45),  # just under the top: row 0, column 768
            _at(-24.99, 0),  # just over the bottom: row 63
            _at(4.0, 0),  # above the field of view
            _at(-26.0, 0),  # below it
            [np.nan, 0, 0],
            [0, 0, 0],  # a "no return" zero point
        ]
    )
    rows, cols, depth = KITTI.pixels(points)
    assert rows.tolist() == [6, 6, 6, 6, 29, 0, 63] + [NO_PIXEL] * 4
    assert cols.tolist() == [1024, 512, 1536, 0, 1024, 768, 1024] + [NO_PIXEL] * 4
    np.testing.assert_allclose(depth[:9], 10.0, rtol=1e-6)


def test_nearest_point_owns_its_pixel_and_hidden_points_take_its_value():
    projection = RangeProjection(height=4, width=8, fov_up_deg=10.0, fov_down_deg=-10.0)
    points = np.array([_at(0, 0, 10.0), _at(0, 0, 5.0), _at(0, 0, 5.0), _at(0, 90, 7.0)])
    intensity = np.array([0.1, 0.2, 0.3, 0.4])
    image = project_cloud(points, intensity, projection)
    assert image.image.shape == (5, 4, 8) and image.image.dtype == np.float32
    # Row (1 - 10/20) * 4 = 2; columns 4 (ahead) and 2 (left).
    assert image.owner[2, 4] == 1  # nearest; a tie goes to the lower index
    assert image.owner[2, 2] == 3
    assert image.mask.sum() == 2
    np.testing.assert_allclose(image.image[:, 2, 4], [5.0, 5.0, 0.0, 0.0, 0.2], atol=1e-6)
    np.testing.assert_allclose(image.image[:, 2, 2], [7.0, 0.0, 7.0, 0.0, 0.4], atol=1e-6)
    assert np.all(image.image[:, ~image.mask] == 0)
    values = np.arange(32).reshape(4, 8)
    np.testing.assert_array_equal(back_project(values, image, fill=-1), [20, 20, 20, 18])
    only_range = project_cloud(points, None, projection, channels=("range",))
    assert only_range.image.shape == (1, 4, 8)


def test_projection_of_a_real_scan_covers_the_image_like_rangenet():
    scene = generate_scene(0)  # 64 beams, +2 .. -24.8 deg: inside KITTI's +3 .. -25
    image = project_cloud(scene.points[:, :3], scene.points[:, 3], KITTI)
    assert np.all(image.in_view)
    assert image.mask.sum() > 0.6 * len(scene.points)
    # Every point's pixel is owned by a point at most as far as it.
    rng = np.linalg.norm(scene.points[:, :3], axis=1)
    owner = image.owner[image.rows, image.cols]
    assert np.all(rng[owner] <= rng + 1e-6)
    np.testing.assert_allclose(image.image[0][image.rows, image.cols], rng[owner], rtol=1e-6)


def test_bad_projections_and_channels():
    for kwargs in (
        {"height": 0},
        {"width": -5},
        {"height": 2.5},
        {"fov_up_deg": -30.0},
        {"fov_up_deg": 100.0},
        {"fov_down_deg": float("nan")},
    ):
        with pytest.raises(ValueError):
            RangeProjection(**kwargs)
    with pytest.raises(ValueError, match="unknown range-image channel"):
        project_cloud(np.zeros((1, 3)), None, KITTI, channels=("range", "rgb"))
    with pytest.raises(ValueError, match="needs per-point intensities"):
        project_cloud(np.ones((1, 3)), None, KITTI)
    empty = project_cloud(np.zeros((0, 3)), np.zeros(0), KITTI)
    assert empty.rows.shape == (0,) and not empty.mask.any()


def test_to_lidar_class():
    ids = np.array([-1, 0, 9, 11, 17, 1, 13, 40])
    out = to_lidar_class(ids, ground_ids=(9, 11, 17), unknown_ids=(0,))
    assert out.tolist() == [UNKNOWN, UNKNOWN, GROUND, GROUND, GROUND, OBSTACLE, OBSTACLE, OBSTACLE]


# ------------------------------------------------------------------ ONNX models

MEAN_RANGE, STD_RANGE = 12.12, 12.32


def _threshold_model(path, threshold: float = 10.0, class_ids: bool = False):
    """A 1x1 convolution that says class 1 where range > ``threshold``, else 0, on the
    normalized range channel (channel 0 of 5): a model whose answer is known per pixel."""
    from onnx_models import conv1x1_model

    t = (threshold - MEAN_RANGE) / STD_RANGE
    weight = np.zeros((2, 5, 1, 1), np.float32)
    weight[0, 0], weight[1, 0] = -1.0, 1.0
    bias = np.array([t, -t], np.float32)
    return conv1x1_model(path, weight, bias, "range_image", [1, 5, "H", "W"], class_ids=class_ids)


@pytest.fixture(scope="module")
def scene():
    return generate_scene(1)


@pytest.mark.parametrize("class_ids", [False, True])
def test_known_model_labels_every_point_by_its_pixel(tmp_path, scene, class_ids):
    pytest.importorskip("onnxruntime")
    model = _threshold_model(tmp_path / "threshold.onnx", class_ids=class_ids)
    segmenter = RangeImageSegmenter(
        RangeModelConfig(model, ground_ids=(0,), unknown_ids=()), clustering=None
    )
    prediction = segmenter.predict(scene.points)
    rng = np.linalg.norm(scene.points[:, :3], axis=1)
    owner = prediction.range_image.owner[prediction.range_image.rows, prediction.range_image.cols]
    # Each point has the class its pixel's owner (the nearest point there) deserves...
    np.testing.assert_array_equal(prediction.class_id, (rng[owner] > 10.0).astype(np.int64))
    # ...which is its own for the owners themselves.
    owners = owner == np.arange(len(rng))
    assert owners.mean() > 0.6
    np.testing.assert_array_equal(prediction.class_id[owners], rng[owners] > 10.0)
    lidar = segmenter.segment(scene.points)
    np.testing.assert_array_equal(lidar.lidar_class == GROUND, prediction.class_id == 0)
    assert lidar.cluster_id is None


def test_points_outside_the_field_of_view_are_unknown(tmp_path):
    pytest.importorskip("onnxruntime")
    model = _threshold_model(tmp_path / "threshold.onnx")
    segmenter = RangeImageSegmenter(
        RangeModelConfig(
            model, RangeProjection(16, 256, 5.0, -5.0), ground_ids=(0,), unknown_ids=()
        )
    )
    points = np.array([_at(0, 0, 5.0), _at(0, 10, 20.0), _at(20.0, 0), [np.nan] * 3, [0, 0, 0]])
    result = segmenter.segment(points)
    assert result.lidar_class.tolist() == [GROUND, OBSTACLE, UNKNOWN, UNKNOWN, UNKNOWN]
    assert result.cluster_id[2:].tolist() == [NO_CLUSTER] * 3


@pytest.fixture(scope="module")
def random_network(tmp_path_factory):
    """A small RangeNet-shaped convolutional network with random weights, exported with
    dynamic height and width: 5 channels in, 20 SemanticKITTI classes out."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("onnx")

    class Net(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.body = torch.nn.Sequential(
                torch.nn.Conv2d(5, 16, 3, padding=1),
                torch.nn.ReLU(),
                torch.nn.Conv2d(16, 16, 3, stride=2, padding=1),
                torch.nn.ReLU(),
                torch.nn.Upsample(scale_factor=2, mode="nearest"),
                torch.nn.Conv2d(16, 20, 1),
            )

        def forward(self, x):
            return self.body(x)

    torch.manual_seed(0)
    net = Net().eval()
    path = tmp_path_factory.mktemp("range_net") / "random_rangenet.onnx"
    with warnings.catch_warnings():  # the TorchScript exporter's deprecation notice
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            net,
            torch.zeros(1, 5, 64, 2048),
            str(path),
            input_names=["range_image"],
            output_names=["logits"],
            dynamic_axes={"range_image": {2: "H", 3: "W"}, "logits": {2: "H", 3: "W"}},
            opset_version=17,
            dynamo=False,
        )
    return path, net


def test_random_network_shapes_and_classes(random_network, scene):
    pytest.importorskip("onnxruntime")
    import torch

    path, net = random_network
    for projection in (KITTI, RangeProjection(32, 1024, 3.0, -25.0)):
        segmenter = RangeImageSegmenter(RangeModelConfig(path, projection))
        prediction = segmenter.predict(scene.points)
        assert prediction.class_id.shape == (len(scene.points),)
        assert prediction.class_id.min() >= 0 and prediction.class_id.max() < 20
        # The same pixels through PyTorch give the same classes.
        image = prediction.range_image
        config = segmenter.config
        tensor = (image.image - np.array(config.means, np.float32)[:, None, None]) / np.array(
            config.stds, np.float32
        )[:, None, None]
        tensor *= image.mask
        with torch.no_grad():
            expected = net(torch.from_numpy(tensor[None])).numpy()[0].argmax(0)
        agree = prediction.class_id == expected[image.rows, image.cols]
        assert agree.mean() > 0.999
        result = segmenter.segment(scene.points)
        assert set(np.unique(result.lidar_class)) <= {UNKNOWN, GROUND, OBSTACLE}
        assert result.cluster_id.shape == (len(scene.points),)
        assert np.all(result.cluster_id[result.lidar_class != OBSTACLE] == NO_CLUSTER)
    assert "random_rangenet.onnx" in segmenter.description and "32x1024" in segmenter.description


def test_range_segmenter_in_the_pipeline_warns_once_without_intensity(
    random_network, scene, caplog
):
    pytest.importorskip("onnxruntime")
    path, _ = random_network
    segmenter = RangeImageSegmenter(RangeModelConfig(path))
    assert isinstance(segmenter, CloudSegmenter)
    pipeline = Pipeline(cloud_segmenter=segmenter)
    with caplog.at_level(logging.WARNING):
        for _ in range(2):  # the Pipeline hands the segmenter x, y, z only
            result = pipeline.process(Frame(points=scene.points[:, :3], cameras=[]))
    assert result.lidar.lidar_class.shape == (len(scene.points),)
    warnings = [r for r in caplog.records if "intensities" in r.getMessage()]
    assert len(warnings) == 1
    # A structured cloud with a reflectivity field feeds the intensity channel.
    cloud = np.zeros(len(scene.points), dtype=[(n, "<f4") for n in ("x", "y", "z")] + [
        ("reflectivity", "<u2")])  # fmt: skip
    for axis, name in enumerate("xyz"):
        cloud[name] = scene.points[:, axis]
    cloud["reflectivity"] = 3
    image = segmenter.predict(cloud).range_image
    assert np.all(image.image[4][image.mask] == 3)


def test_bad_models_and_configurations(tmp_path, random_network):
    pytest.importorskip("onnxruntime")
    path, _ = random_network
    with pytest.raises(OSError, match="does not exist"):
        RangeImageSegmenter(RangeModelConfig(tmp_path / "missing.onnx"))
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"not a model")
    with pytest.raises(ValueError, match="cannot load"):
        RangeImageSegmenter(RangeModelConfig(garbage))
    with pytest.raises(ValueError, match="takes 5 channels"):
        RangeImageSegmenter(
            RangeModelConfig(path, channels=("range", "x", "y", "z"), means=(0,) * 4, stds=(1,) * 4)
        )
    with pytest.raises(ValueError, match="one mean and std per channel"):
        RangeModelConfig(path, means=(0.0,))
    with pytest.raises(ValueError, match="stds must be finite and > 0"):
        RangeModelConfig(path, stds=(1, 1, 0, 1, 1))
    with pytest.raises(ValueError, match="no input 'points'"):
        RangeImageSegmenter(RangeModelConfig(path, input_name="points"))
    # A network that changes the resolution cannot label every point.
    odd = RangeImageSegmenter(RangeModelConfig(path, RangeProjection(63, 2047)))
    with pytest.raises(ValueError, match="label every pixel"):
        odd.predict(np.array([_at(0, 0)]))
