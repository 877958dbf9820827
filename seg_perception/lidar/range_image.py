"""The learned LiDAR segmenter slot: spherical range image -> ONNX network -> points.

RangeNet++, SalsaNext and their relatives segment a LiDAR sweep as an image: every point is
projected by azimuth (columns) and elevation (rows) into an H x W image whose channels
are range, x, y, z and intensity (remission), normalized by per-channel means and
standard deviations; the network labels every pixel, and every point takes the label of
its pixel. :class:`RangeProjection` does the geometry (configurable vertical field of view
and image size, the nearest point wins a pixel) and :class:`RangeImageSegmenter` runs an
ONNX model through ONNX Runtime and maps its classes to the planner's ground / obstacle /
unknown (:mod:`.classes`), then clusters the obstacles like the geometric segmenter.

Defaults are RangeNet++/SalsaNext's for a Velodyne HDL-64E (SemanticKITTI): 64 x 2048,
+3 deg to -25 deg, channels range, x, y, z, remission with their published means/stds,
and SemanticKITTI's 20 training classes.

Projection conventions (RangeNet++): column ``0.5 * (1 - atan2(y, x) / pi) * W`` (the
column index grows clockwise seen from above, starting behind the sensor; +x, straight
ahead, is the middle column), row ``(1 - (elevation - fov_down) / (fov_up - fov_down)) *
H`` (row 0 at the top). Unlike RangeNet++, points outside the vertical field of view are
not clipped onto the border rows: they are reported as out of view (``UNKNOWN``), so a
field of view that does not match the sensor shows up instead of silently mislabeling.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from seg_perception.core.cloud import cloud_xyz
from seg_perception.core.pipeline import CloudSegmentation
from seg_perception.lidar.classes import GROUND, NO_CLUSTER, OBSTACLE, UNKNOWN
from seg_perception.lidar.clustering import ClusterParams, cluster_points

_log = logging.getLogger(__name__)

CHANNELS = ("range", "x", "y", "z", "intensity")
"""Channel names a projection can produce (``intensity`` is the remission / reflectivity)."""

#: RangeNet++ / SalsaNext normalization on SemanticKITTI, channels range, x, y, z, remission.
SEMANTICKITTI_MEANS = (12.12, 10.88, 0.23, -1.04, 0.21)
SEMANTICKITTI_STDS = (12.32, 11.47, 6.91, 0.86, 0.16)
#: SemanticKITTI training ids (``learning_map``) that are ground: road, parking, sidewalk,
#: other-ground, terrain. Id 0 (unlabeled) means the network does not know: ``UNKNOWN``.
SEMANTICKITTI_GROUND_IDS = (9, 10, 11, 12, 17)
SEMANTICKITTI_UNKNOWN_IDS = (0,)

NO_PIXEL = -1


@dataclass(frozen=True)
class RangeProjection:
    """Spherical projection geometry: image size and vertical field of view (degrees)."""

    height: int = 64
    width: int = 2048
    fov_up_deg: float = 3.0
    fov_down_deg: float = -25.0

    def __post_init__(self) -> None:
        for name in ("height", "width"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(
                    f"RangeProjection.{name} must be a positive integer, got {value!r}"
                )
        for name in ("fov_up_deg", "fov_down_deg"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or not -90.0 <= value <= 90.0:
                raise ValueError(f"RangeProjection.{name} must be in [-90, 90] deg, got {value!r}")
        if self.fov_up_deg <= self.fov_down_deg:
            raise ValueError(
                f"RangeProjection needs fov_up_deg > fov_down_deg, got {self.fov_up_deg} <= "
                f"{self.fov_down_deg}"
            )

    def pixels(self, xyz: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Row and column (int64) of every point and its range (float32).

        Rows and columns are ``NO_PIXEL`` for points that have no pixel: non-finite,
        zero-range ("no return") or outside the vertical field of view.
        """
        xyz = np.asarray(xyz, dtype=np.float32)
        x, y, z = (np.ascontiguousarray(xyz[:, axis]) for axis in range(3))
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            depth = np.sqrt(x * x + y * y + z * z)
            valid = np.isfinite(depth) & (depth > 0)
            elevation = np.arcsin(np.clip(z / depth, -1.0, 1.0))
            azimuth = np.arctan2(y, x)
        fov_up = math.radians(self.fov_up_deg)
        fov_down = math.radians(self.fov_down_deg)
        v = (1.0 - (elevation - fov_down) / (fov_up - fov_down)) * self.height
        u = 0.5 * (1.0 - azimuth / math.pi) * self.width
        with np.errstate(invalid="ignore"):
            valid &= (v >= 0) & (v < self.height)
        rows = np.full(len(depth), NO_PIXEL, dtype=np.int64)
        cols = np.full(len(depth), NO_PIXEL, dtype=np.int64)
        rows[valid] = np.minimum(v[valid].astype(np.int64), self.height - 1)
        # azimuth = -pi exactly maps to u = W: that is column 0 again (the image wraps).
        cols[valid] = u[valid].astype(np.int64) % self.width
        return rows, cols, depth.astype(np.float32, copy=False)


@dataclass
class RangeImage:
    """A projected cloud: the image and the point <-> pixel correspondence."""

    image: np.ndarray
    """(C, H, W) float32 channels in the requested order, 0 where no point landed."""
    mask: np.ndarray
    """(H, W) bool: a point landed in the pixel."""
    rows: np.ndarray
    """(N,) int64 row of each point, ``NO_PIXEL`` if it has none."""
    cols: np.ndarray
    """(N,) int64 column of each point, ``NO_PIXEL`` if it has none."""
    owner: np.ndarray
    """(H, W) int64 index of the point shown in the pixel (the nearest), ``NO_PIXEL``."""

    @property
    def in_view(self) -> np.ndarray:
        return self.rows != NO_PIXEL


def project_cloud(
    xyz: np.ndarray,
    intensity: np.ndarray | None,
    projection: RangeProjection,
    channels: Sequence[str] = CHANNELS,
) -> RangeImage:
    """Build the range image of ``xyz`` (N, 3) (and ``intensity`` (N,), if given).

    When several points fall in one pixel the nearest is shown (RangeNet++ draws points
    in order of decreasing range); here the winner is found with two ``np.minimum.at``
    passes instead of a sort: the smallest range per pixel, then among the points at that
    range the lowest index, so ties are deterministic.
    """
    unknown = [name for name in channels if name not in CHANNELS]
    if unknown:
        raise ValueError(f"unknown range-image channel(s) {unknown}; known: {CHANNELS}")
    xyz = np.asarray(xyz, dtype=np.float32)
    n = xyz.shape[0]
    rows, cols, depth = projection.pixels(xyz)
    h, w = projection.height, projection.width
    points = np.flatnonzero(rows != NO_PIXEL)
    pixel = rows[points] * w + cols[points]

    nearest = np.full(h * w, np.inf, dtype=np.float32)
    np.minimum.at(nearest, pixel, depth[points])
    at_nearest = depth[points] == nearest[pixel]
    owner = np.full(h * w, n, dtype=np.int64)
    np.minimum.at(owner, pixel[at_nearest], points[at_nearest])
    mask = owner < n
    owner[~mask] = NO_PIXEL

    image = np.zeros((len(channels), h * w), dtype=np.float32)
    shown = owner[mask]
    if "intensity" in channels and intensity is None:
        raise ValueError("the 'intensity' channel needs per-point intensities")
    for index, name in enumerate(channels):
        if name == "range":
            values = depth
        elif name == "intensity":
            values = np.asarray(intensity, dtype=np.float32).reshape(-1)
            if values.shape[0] != n:
                raise ValueError(f"intensity has {values.shape[0]} values for {n} points")
        else:
            values = xyz[:, "xyz".index(name)]
        image[index, mask] = values[shown]
    return RangeImage(
        image=image.reshape(len(channels), h, w),
        mask=mask.reshape(h, w),
        rows=rows,
        cols=cols,
        owner=owner.reshape(h, w),
    )


def back_project(pixel_values: np.ndarray, projected: RangeImage, fill: int) -> np.ndarray:
    """Per-point value of its pixel in ``pixel_values`` (H, W); ``fill`` for points
    without a pixel. Points hidden behind a nearer one in the same pixel take that pixel's
    value, as in RangeNet++ without its k-NN post-processing."""
    out = np.full(len(projected.rows), fill, dtype=pixel_values.dtype)
    seen = projected.in_view
    out[seen] = pixel_values[projected.rows[seen], projected.cols[seen]]
    return out


@dataclass(frozen=True)
class RangeModelConfig:
    """How to feed an ONNX range-image model and read its classes."""

    model: str | Path
    projection: RangeProjection = field(default_factory=RangeProjection)
    channels: tuple[str, ...] = CHANNELS
    means: tuple[float, ...] = SEMANTICKITTI_MEANS
    stds: tuple[float, ...] = SEMANTICKITTI_STDS
    ground_ids: tuple[int, ...] = SEMANTICKITTI_GROUND_IDS
    """Network classes that are ground."""
    unknown_ids: tuple[int, ...] = SEMANTICKITTI_UNKNOWN_IDS
    """Network classes that mean "no idea" (``UNKNOWN``); all others are obstacles."""
    input_name: str = ""
    """Model input to feed (default: its first input)."""
    output_name: str = ""
    """Model output to read (default: its first output): (1, K, H, W) logits or (1, H, W)
    class ids."""
    providers: tuple[str, ...] = ("CPUExecutionProvider",)

    def __post_init__(self) -> None:
        if not self.channels:
            raise ValueError("RangeModelConfig.channels must name at least one channel")
        if len(self.means) != len(self.channels) or len(self.stds) != len(self.channels):
            raise ValueError(
                f"RangeModelConfig needs one mean and std per channel: {len(self.channels)} "
                f"channels, {len(self.means)} means, {len(self.stds)} stds"
            )
        if any(not math.isfinite(s) or s <= 0 for s in self.stds):
            raise ValueError(f"RangeModelConfig.stds must be finite and > 0, got {self.stds}")


@dataclass
class RangePrediction:
    """Per-point network output of :meth:`RangeImageSegmenter.predict`."""

    class_id: np.ndarray
    """(N,) int64 network class per point; -1 for points without a pixel."""
    range_image: RangeImage


class RangeImageSegmenter:
    """A :class:`~seg_perception.core.pipeline.CloudSegmenter` backed by an ONNX model.

    ``segment`` takes (N, 3) points, (N, >=4) points whose 4th column is the intensity, or
    a structured cloud (an ``intensity``, ``reflectivity`` or ``remission`` field is used
    when the model needs one). Without intensities the channel is fed its mean (0 after
    normalization) and a warning is logged once: the ``Pipeline`` passes x, y, z only.
    """

    INTENSITY_FIELDS = ("intensity", "reflectivity", "remission", "i")

    def __init__(
        self,
        config: RangeModelConfig,
        clustering: ClusterParams | None = ClusterParams(),  # noqa: B008
    ) -> None:
        self.config = config
        self.clustering = clustering
        self._session = _open_session(config)
        inputs = self._session.get_inputs()
        outputs = self._session.get_outputs()
        self._input = config.input_name or inputs[0].name
        self._output = config.output_name or outputs[0].name
        names_in = [i.name for i in inputs]
        names_out = [o.name for o in outputs]
        if self._input not in names_in:
            raise ValueError(f"model has no input '{self._input}'; inputs: {names_in}")
        if self._output not in names_out:
            raise ValueError(f"model has no output '{self._output}'; outputs: {names_out}")
        shape = next(i.shape for i in inputs if i.name == self._input)
        if len(shape) != 4:
            raise ValueError(f"model input '{self._input}' must be (1, C, H, W), got {shape}")
        channels = shape[1]
        if isinstance(channels, int) and channels != len(config.channels):
            raise ValueError(
                f"model input '{self._input}' takes {channels} channels but the configuration "
                f"gives {len(config.channels)} ({', '.join(config.channels)})"
            )
        for axis, expected in ((2, config.projection.height), (3, config.projection.width)):
            if isinstance(shape[axis], int) and shape[axis] != expected:
                raise ValueError(
                    f"model input '{self._input}' is fixed at {shape[2]}x{shape[3]} but the "
                    f"projection is {config.projection.height}x{config.projection.width}"
                )
        self._means = np.asarray(config.means, np.float32)[:, None, None]
        self._stds = np.asarray(config.stds, np.float32)[:, None, None]
        self._warned_intensity = False
        projection = config.projection
        self.description = (
            f"ONNX range-image model {Path(str(config.model)).name} "
            f"({projection.height}x{projection.width}, fov {projection.fov_up_deg:g}.."
            f"{projection.fov_down_deg:g} deg)"
        )

    def predict(self, points: np.ndarray) -> RangePrediction:
        """Network class per point (and the range image it was computed on)."""
        xyz, intensity = self._split(points)
        if "intensity" in self.config.channels and intensity is None:
            if not self._warned_intensity:
                _log.warning(
                    "range-image model needs intensities but the cloud has none: feeding the "
                    "channel's mean"
                )
                self._warned_intensity = True
            column = self.config.channels.index("intensity")
            intensity = np.full(len(xyz), self.config.means[column], np.float32)
        projected = project_cloud(xyz, intensity, self.config.projection, self.config.channels)
        tensor = (projected.image - self._means) / self._stds
        tensor *= projected.mask  # empty pixels are 0 after normalization (RangeNet++)
        (output,) = self._session.run([self._output], {self._input: tensor[None]})
        pixel_class = _pixel_classes(np.asarray(output), self.config.projection)
        return RangePrediction(back_project(pixel_class, projected, fill=-1), projected)

    def segment(self, points: np.ndarray) -> CloudSegmentation:
        prediction = self.predict(points)
        lidar_class = to_lidar_class(
            prediction.class_id, self.config.ground_ids, self.config.unknown_ids
        )
        if self.clustering is None:
            return CloudSegmentation(lidar_class=lidar_class)
        obstacle = lidar_class == OBSTACLE
        cluster_id = np.full(len(lidar_class), NO_CLUSTER, dtype=np.int32)
        if obstacle.any():
            cluster_id = cluster_points(self._split(points)[0], obstacle, self.clustering)
        return CloudSegmentation(lidar_class=lidar_class, cluster_id=cluster_id)

    def _split(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        array = np.asarray(points)
        names = array.dtype.names
        if names is None:
            if array.ndim == 2 and array.shape[1] >= 4:
                return cloud_xyz(array, np.float32), array[:, 3].astype(np.float32)
            return cloud_xyz(array, np.float32), None
        field_name = next((f for f in self.INTENSITY_FIELDS if f in names), None)
        intensity = None if field_name is None else array[field_name].reshape(-1)
        return cloud_xyz(array, np.float32), intensity


def to_lidar_class(
    class_id: np.ndarray, ground_ids: Sequence[int], unknown_ids: Sequence[int]
) -> np.ndarray:
    """Map network classes to ``GROUND`` / ``OBSTACLE`` / ``UNKNOWN`` (uint8); negative
    ids (no pixel) are ``UNKNOWN``."""
    class_id = np.asarray(class_id)
    out = np.full(class_id.shape, OBSTACLE, dtype=np.uint8)
    out[np.isin(class_id, np.asarray(ground_ids, dtype=class_id.dtype))] = GROUND
    out[np.isin(class_id, np.asarray(unknown_ids, dtype=class_id.dtype))] = UNKNOWN
    out[class_id < 0] = UNKNOWN
    return out


def _pixel_classes(output: np.ndarray, projection: RangeProjection) -> np.ndarray:
    """(H, W) int64 classes from (1, K, H, W) logits or (1, H, W) / (H, W) class ids."""
    if output.ndim == 4 and output.shape[0] == 1:
        classes = output[0].argmax(axis=0)
    elif output.ndim == 3 and output.shape[0] == 1:
        classes = output[0]
    elif output.ndim == 2:
        classes = output
    else:
        raise ValueError(
            f"model output must be (1, K, H, W) logits or (1, H, W) class ids, got {output.shape}"
        )
    expected = (projection.height, projection.width)
    if classes.shape != expected:
        raise ValueError(
            f"model output is {classes.shape[0]}x{classes.shape[1]} but the range image is "
            f"{expected[0]}x{expected[1]}: the network must label every pixel"
        )
    return classes.astype(np.int64, copy=False)


def _open_session(config: RangeModelConfig) -> Any:
    try:
        import onnxruntime
    except ImportError:
        raise ImportError("the range-image segmenter needs: pip install onnxruntime") from None
    path = Path(str(config.model))
    if not path.is_file():
        raise OSError(f"range-image model {path} does not exist")
    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3
    try:
        return onnxruntime.InferenceSession(
            str(path), sess_options=options, providers=list(config.providers)
        )
    except Exception as error:  # onnxruntime raises its own exception types
        raise ValueError(f"cannot load range-image model {path}: {error}") from error
