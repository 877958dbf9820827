"""Camera models built from ``sensor_msgs/CameraInfo`` fields, with vectorized projection.

Why our own and not ``image_geometry``: it is not installable here, it projects one point
at a time, and it has no notion of where a distortion polynomial stops being valid. A
polynomial lens model folds back on itself beyond its fitted radius, so points far outside
the field of view can land *inside* the image; fusion would then paint them with a
label from an unrelated pixel. :class:`CameraModel` therefore computes the radius up to
which the model is monotonic and rejects points beyond it.

Two projection modes follow the ROS conventions of ``CameraInfo``:

* ``rectified``: the image is already undistorted/rectified (``image_rect``, KITTI),
  pixels come from ``P @ R @ [X Y Z 1]`` where R rotates into the rectified frame
  (this is what ``image_geometry.PinholeCameraModel.project3dToPixel`` does with P).
* ``raw``: the image is the sensor's (``image_raw``), pixels come from the distortion
  model ``D`` and the intrinsic matrix ``K``, exactly like OpenCV's ``projectPoints``
  (``plumb_bob``/``rational_polynomial``) and ``fisheye.projectPoints`` (``equidistant``).

``auto`` (the default) picks ``raw`` when any distortion coefficient is non-zero and
``rectified`` otherwise, which is right for both common publishers: drivers that publish
the raw image with its D, and rectified streams whose D is all zeros.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

DISTORTION_MODELS = ("plumb_bob", "rational_polynomial", "equidistant")
ProjectionMode = Literal["auto", "raw", "rectified"]

#: Points closer than this along the optical axis are treated as behind the camera.
MIN_DEPTH_M = 1e-3
#: Raw cameras' normalized bounds are sampled up to this x/z, y/z (tan 84 deg); an image
#: that reaches it is unbounded for culling.
_BOUNDS_REACH = 10.0
#: normalized_bounds per calibration: sampling the lens costs ~20 ms, once.
_BOUNDS_CACHE: dict[tuple, tuple[float, float, float, float] | None] = {}


class CalibrationError(ValueError):
    """A camera calibration that cannot describe a real camera (zeros, NaNs, bad sizes)."""


@dataclass(frozen=True)
class Projection:
    """Result of projecting N points: pixel coordinates, depth and validity.

    ``uv`` holds (u, v) pixel coordinates with the pixel-center convention of OpenCV and
    ROS (the center of the top-left pixel is (0, 0)); ``depth`` is the distance along the
    optical axis (camera z). ``valid`` is True where the point is in front of the camera,
    inside the distortion model's valid range and inside the image.
    """

    uv: np.ndarray
    depth: np.ndarray
    valid: np.ndarray

    def pixel_indices(self) -> tuple[np.ndarray, np.ndarray]:
        """Integer (row, col) of the pixel containing each *valid* point."""
        cols = np.floor(self.uv[self.valid, 0] + 0.5).astype(np.intp)
        rows = np.floor(self.uv[self.valid, 1] + 0.5).astype(np.intp)
        return rows, cols


def _as_matrix(values: object, shape: tuple[int, int], name: str) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    if array.size != shape[0] * shape[1]:
        raise CalibrationError(
            f"{name} must have {shape[0] * shape[1]} values ({shape[0]}x{shape[1]}), "
            f"got {array.size}"
        )
    array = array.reshape(shape)
    if not np.all(np.isfinite(array)):
        raise CalibrationError(f"{name} contains NaN or infinite values: {array.ravel().tolist()}")
    return array


def _radial_limit(radial_gain: callable, r_cap: float = 10.0) -> float:
    """Largest undistorted radius below which ``r * gain(r)`` still increases.

    Sampled densely and vectorized; the answer is exact to the sampling step, which is far
    below a pixel for any real lens. ``r_cap`` bounds the search (tan(84 deg) ~ 10).
    """
    radii = np.linspace(0.0, r_cap, 20001)
    distorted = radii * radial_gain(radii)
    falling = np.nonzero(np.diff(distorted) <= 0.0)[0]
    if falling.size == 0:
        return float("inf") if r_cap >= 10.0 else r_cap
    return float(radii[falling[0]])


@dataclass(frozen=True)
class CameraModel:
    """A calibrated camera: intrinsics, distortion and the image it describes.

    Build it with :meth:`from_fields` (CameraInfo field names) or :meth:`pinhole`.
    """

    width: int
    height: int
    K: np.ndarray
    D: np.ndarray
    R: np.ndarray
    P: np.ndarray
    distortion_model: str = "plumb_bob"
    mode: Literal["raw", "rectified"] = "rectified"
    binning_x: int = 1
    binning_y: int = 1
    roi: tuple[int, int, int, int] = (0, 0, 0, 0)
    # Largest normalized radius (raw mode) or angle (equidistant) that is valid.
    valid_radius: float = field(default=float("inf"))

    @classmethod
    def from_fields(
        cls,
        width: int,
        height: int,
        K: object,
        D: object,
        R: object,
        P: object,
        distortion_model: str = "plumb_bob",
        binning_x: int = 0,
        binning_y: int = 0,
        roi: tuple[int, int, int, int] | None = None,
        mode: ProjectionMode = "auto",
    ) -> CameraModel:
        """Validate CameraInfo fields and build the model.

        ``roi`` is (x_offset, y_offset, width, height) as in ``sensor_msgs/RegionOfInterest``;
        a zero width/height means the full image. Binning 0 means 1 (no binning), as in ROS.
        """
        width, height = int(width), int(height)
        if width <= 0 or height <= 0:
            raise CalibrationError(f"image size must be positive, got {width}x{height}")
        k = _as_matrix(K, (3, 3), "K")
        r = _as_matrix(R, (3, 3), "R") if np.asarray(R).size else np.eye(3)
        p = _as_matrix(P, (3, 4), "P") if np.asarray(P).size else np.zeros((3, 4))
        d = np.asarray(D, dtype=np.float64).ravel()
        if not np.all(np.isfinite(d)):
            raise CalibrationError(f"D contains NaN or infinite values: {d.tolist()}")
        model = distortion_model or "plumb_bob"
        if model not in DISTORTION_MODELS:
            raise CalibrationError(
                f"unknown distortion_model '{distortion_model}'; supported: "
                f"{', '.join(DISTORTION_MODELS)}"
            )
        if not np.any(r):
            r = np.eye(3)  # an all-zero R means "not set" in many drivers
        has_distortion = bool(np.any(d != 0.0))
        chosen = mode
        if mode == "auto":
            chosen = "raw" if has_distortion else "rectified"
        if chosen not in ("raw", "rectified"):
            raise CalibrationError(f"projection mode must be auto, raw or rectified, not {mode!r}")
        if chosen == "rectified" and not np.any(p):
            p = np.hstack([k, np.zeros((3, 1))])  # P unset: the image is K's, undistorted
        intrinsics = k if chosen == "raw" else p[:, :3]
        name = "K" if chosen == "raw" else "P"
        fx, fy = intrinsics[0, 0], intrinsics[1, 1]
        if fx <= 0 or fy <= 0:
            raise CalibrationError(
                f"{name} has non-positive focal lengths (fx={fx}, fy={fy}); the CameraInfo is "
                "probably uncalibrated (all zeros)"
            )
        if abs(intrinsics[2, 2] - 1.0) > 1e-9 and chosen == "raw":
            raise CalibrationError(f"K[2,2] must be 1, got {intrinsics[2, 2]}")
        coefficients = _checked_coefficients(model, d) if chosen == "raw" else d
        roi_tuple = tuple(int(v) for v in roi) if roi is not None else (0, 0, 0, 0)
        if len(roi_tuple) != 4 or min(roi_tuple) < 0:
            raise CalibrationError(f"roi must be 4 non-negative ints, got {roi}")
        camera = cls(
            width=width,
            height=height,
            K=k,
            D=coefficients,
            R=r,
            P=p,
            distortion_model=model,
            mode=chosen,
            binning_x=max(int(binning_x), 1),
            binning_y=max(int(binning_y), 1),
            roi=roi_tuple,  # type: ignore[arg-type]
        )
        x, y, roi_w, roi_h = roi_tuple
        if x + (roi_w or width) > width or y + (roi_h or height) > height:
            raise CalibrationError(
                f"roi (x {x}, y {y}, {roi_w}x{roi_h}) reaches beyond the {width}x{height} image"
            )
        if min(camera.image_size) < 1:
            raise CalibrationError(
                f"binning {camera.binning_x}x{camera.binning_y} of a {roi_w or width}x"
                f"{roi_h or height} image leaves no pixel"
            )
        object.__setattr__(camera, "valid_radius", camera._compute_valid_radius())
        return camera

    @classmethod
    def pinhole(
        cls, width: int, height: int, fx: float, fy: float, cx: float, cy: float
    ) -> CameraModel:
        """An ideal camera without distortion (rectified mode, P = [K | 0])."""
        k = np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])
        return cls.from_fields(width, height, k, [], np.eye(3), np.hstack([k, np.zeros((3, 1))]))

    # ------------------------------------------------------------------ geometry
    @property
    def image_size(self) -> tuple[int, int]:
        """(width, height) of the images this model projects into, after ROI and binning."""
        roi_w = self.roi[2] or self.width
        roi_h = self.roi[3] or self.height
        return roi_w // self.binning_x, roi_h // self.binning_y

    def _compute_valid_radius(self) -> float:
        if self.mode != "raw":
            return float("inf")
        if self.distortion_model == "equidistant":
            k1, k2, k3, k4 = self.D[:4]

            def theta_gain(theta: np.ndarray) -> np.ndarray:
                t2 = theta * theta
                return 1 + t2 * (k1 + t2 * (k2 + t2 * (k3 + t2 * k4)))

            # Angles beyond 90 deg are behind the image plane for this projection.
            return _radial_limit(theta_gain, r_cap=np.pi / 2 - 1e-6)
        k1, k2, _, _, k3, k4, k5, k6 = _eight(self.D)

        def radial_gain(r: np.ndarray) -> np.ndarray:
            r2 = r * r
            numerator = 1 + r2 * (k1 + r2 * (k2 + r2 * k3))
            denominator = 1 + r2 * (k4 + r2 * (k5 + r2 * k6))
            return numerator / denominator

        return _radial_limit(radial_gain)

    @property
    def depth_axis(self) -> np.ndarray:
        """Unit vector d (camera frame) such that a point's depth is ``d . X``.

        Callers use it to drop points behind the camera cheaply before projecting.
        """
        return self.R[2].copy() if self.mode == "rectified" else np.array([0.0, 0.0, 1.0])

    def pixel_matrix(self) -> np.ndarray | None:
        """3x4 M with ``(u w, v w, w) = M @ [X 1]`` for this camera's pixels, if linear.

        Rectified cameras are linear (R, P, ROI and binning folded into one matrix); raw
        cameras with distortion are not (None). Used to cull points cheaply before the
        exact projection.
        """
        if self.mode != "rectified":
            return None
        matrix = self.P[:, :3] @ self.R
        matrix = np.column_stack([matrix, self.P[:, 3]])
        for axis, (offset, binning) in enumerate(
            ((self.roi[0], self.binning_x), (self.roi[1], self.binning_y))
        ):
            # u' = (u - offset + 0.5) / binning - 0.5, written on homogeneous rows.
            matrix[axis] = (matrix[axis] + (0.5 - offset) * matrix[2]) / binning - 0.5 * matrix[2]
        return matrix

    def project(self, points: np.ndarray) -> Projection:
        """Project (N, 3) points given in this camera's optical frame to pixels.

        Non-finite points are returned invalid rather than raising: a LiDAR cloud with NaN
        returns is normal input. Computed column by column in float64: (N, 3) reductions
        are several times slower in numpy, and float64 keeps projections exact to 1e-6 px.
        """
        pts = np.asarray(points)
        if pts.ndim != 2 or pts.shape[1] != 3:
            raise ValueError(f"points must have shape (N, 3), got {pts.shape}")
        x, y, z = (pts[:, i].astype(np.float64, copy=False) for i in range(3))
        u, v, depth, valid = self.project_columns(x, y, z)
        return Projection(uv=np.column_stack([u, v]), depth=depth, valid=valid)

    def project_columns(
        self, x: np.ndarray, y: np.ndarray, z: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """:meth:`project` for points given as float64 x, y, z arrays: (u, v, depth, valid).

        The same arithmetic bit for bit, without the (N, 3) round trip: fusion holds the
        points as contiguous columns, and strided column reads plus stacking ``uv`` cost as
        much as the projection itself.
        """
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            if self.mode == "rectified":
                u, v, depth, valid = self._project_rectified(x, y, z)
            else:
                u, v, depth, valid = self._project_raw(x, y, z)
            u, v = self._apply_roi_and_binning(u, v)
            w, h = self.image_size
            valid &= (u >= -0.5) & (u < w - 0.5) & (v >= -0.5) & (v < h - 0.5)
        return u, v, depth, valid

    def normalized_bounds(self) -> tuple[float, float, float, float] | None:
        """(x_min, x_max, y_min, y_max) of undistorted normalized coordinates (x/z, y/z in
        the optical frame) that a raw camera can project into its image; None when they
        are unbounded (a wide fisheye) or the camera is rectified (use
        :meth:`pixel_matrix`).

        Why: a distortion polynomial is not linear, so a raw camera has no pixel matrix to
        cull points with; this rectangle is its linear stand-in (four planes through the
        optical center). It is found by sampling the lens model and widened by the
        largest pixel step between samples plus a margin, so every point that projects
        into the image lies inside it. Computed once per calibration (cached).
        """
        if self.mode != "raw":
            return None
        key = (
            self.width,
            self.height,
            self.K.tobytes(),
            np.asarray(self.D, dtype=np.float64).tobytes(),
            self.distortion_model,
            self.binning_x,
            self.binning_y,
            self.roi,
        )
        if key not in _BOUNDS_CACHE:
            if len(_BOUNDS_CACHE) >= 64:
                _BOUNDS_CACHE.clear()
            _BOUNDS_CACHE[key] = self._compute_normalized_bounds()
        return _BOUNDS_CACHE[key]

    def _compute_normalized_bounds(self) -> tuple[float, float, float, float] | None:
        """Two sampling passes (coarse over the whole valid disc, fine over what it found);
        see :meth:`normalized_bounds`."""
        if self.distortion_model == "equidistant":
            reach = float(np.tan(min(self.valid_radius, np.pi / 2 - 1e-6)))
        else:
            reach = self.valid_radius
        reach = min(reach, _BOUNDS_REACH)
        box = (-reach, reach, -reach, reach)
        for _ in range(2):
            box = self._sampled_bounds(box, reach)
            if box is None:
                return None
        return box

    def _sampled_bounds(
        self, box: tuple[float, float, float, float], reach: float, count: int = 301
    ) -> tuple[float, float, float, float] | None:
        """Bounds of the samples in ``box`` (inside the valid disc) that land within the
        image widened by twice the largest pixel step between neighbouring samples, plus
        one step: a sound rectangle while the lens model is smooth at the sample spacing."""
        xs = np.linspace(box[0], box[1], count)
        ys = np.linspace(box[2], box[3], count)
        step = max(xs[1] - xs[0], ys[1] - ys[0])
        x, y = (a.ravel() for a in np.meshgrid(xs, ys))
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            ones = np.ones_like(x)
            u, v, _, in_range = self._project_raw(x, y, ones)
            u, v = self._apply_roi_and_binning(u, v)
            in_range &= np.isfinite(u) & np.isfinite(v)
            u, v = u.reshape(count, count), v.reshape(count, count)
            in_range = in_range.reshape(count, count)
            jumps = [
                np.hypot(np.diff(u, axis=0), np.diff(v, axis=0))[in_range[:-1] & in_range[1:]],
                np.hypot(np.diff(u, axis=1), np.diff(v, axis=1))[
                    in_range[:, :-1] & in_range[:, 1:]
                ],
            ]
        steps = np.concatenate(jumps)
        margin = 2.0 * (float(steps.max()) if steps.size else 0.0) + 2.0
        w, h = self.image_size
        near = in_range & (u >= -0.5 - margin) & (u <= w - 0.5 + margin)
        near &= (v >= -0.5 - margin) & (v <= h - 0.5 + margin)
        if not near.any():
            return box  # nothing lands in the image: keep the (sound) box sampled
        rows, cols = np.nonzero(near)
        bounds = (
            float(xs[cols.min()]) - step,
            float(xs[cols.max()]) + step,
            float(ys[rows.min()]) - step,
            float(ys[rows.max()]) + step,
        )
        if max(abs(b) for b in bounds) >= reach and reach >= _BOUNDS_REACH:
            return None  # the image reaches the edge of what was sampled: unbounded
        return bounds

    def _project_rectified(self, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> tuple:
        # P acts on the rectified frame: X_rect = R @ X. The homogeneous third row of P
        # gives the depth used for the perspective divide.
        if not np.array_equal(self.R, np.eye(3)):
            r = self.R
            x, y, z = (r[i, 0] * x + r[i, 1] * y + r[i, 2] * z for i in range(3))
        p = self.P
        w = p[2, 0] * x + p[2, 1] * y + p[2, 2] * z + p[2, 3]
        u = (p[0, 0] * x + p[0, 1] * y + p[0, 2] * z + p[0, 3]) / w
        v = (p[1, 0] * x + p[1, 1] * y + p[1, 2] * z + p[1, 3]) / w
        # NaN coordinates fail every comparison, so they come out invalid here.
        valid = (z > MIN_DEPTH_M) & (w > MIN_DEPTH_M)
        return u, v, z, valid

    def _project_raw(self, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> tuple:
        valid = z > MIN_DEPTH_M
        xn = x / z
        yn = y / z
        if self.distortion_model == "equidistant":
            xd, yd, in_range = self._distort_equidistant(xn, yn)
        else:
            xd, yd, in_range = self._distort_polynomial(xn, yn)
        valid &= in_range
        k = self.K
        u = k[0, 0] * xd + k[0, 1] * yd + k[0, 2]
        v = k[1, 1] * yd + k[1, 2]
        return u, v, z, valid

    def _distort_polynomial(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, ...]:
        k1, k2, p1, p2, k3, k4, k5, k6 = _eight(self.D)
        r2 = x * x + y * y
        radial = 1 + r2 * (k1 + r2 * (k2 + r2 * k3))
        if k4 or k5 or k6:
            radial = radial / (1 + r2 * (k4 + r2 * (k5 + r2 * k6)))
        xd = x * radial + 2 * p1 * x * y + p2 * (r2 + 2 * x * x)
        yd = y * radial + p1 * (r2 + 2 * y * y) + 2 * p2 * x * y
        return xd, yd, r2 < self.valid_radius**2

    def _distort_equidistant(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, ...]:
        k1, k2, k3, k4 = self.D[:4]
        r = np.hypot(x, y)
        theta = np.arctan(r)
        t2 = theta * theta
        theta_d = theta * (1 + t2 * (k1 + t2 * (k2 + t2 * (k3 + t2 * k4))))
        scale = np.where(r > 1e-12, theta_d / r, 1.0)
        return x * scale, y * scale, theta < self.valid_radius

    def _apply_roi_and_binning(self, u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, ...]:
        if self.roi[:2] == (0, 0) and self.binning_x == 1 and self.binning_y == 1:
            return u, v
        # Pixel centers: full-resolution pixel c maps to binned (c + 0.5) / b - 0.5.
        u = (u - self.roi[0] + 0.5) / self.binning_x - 0.5
        v = (v - self.roi[1] + 0.5) / self.binning_y - 0.5
        return u, v


def _checked_coefficients(model: str, d: np.ndarray) -> np.ndarray:
    """Check the coefficient count for the model and pad to the full length."""
    expected = {"plumb_bob": (5,), "rational_polynomial": (8,), "equidistant": (4,)}[model]
    if d.size == 0:
        return np.zeros(expected[0])
    if model == "plumb_bob" and d.size in (4, 5, 8):
        # OpenCV accepts 4/5/8 for the same polynomial; some drivers publish 8 here.
        return d
    if d.size not in expected:
        raise CalibrationError(
            f"distortion_model '{model}' needs {expected[0]} coefficients in D, got {d.size}"
        )
    return d


def _eight(d: np.ndarray) -> tuple[float, ...]:
    """(k1, k2, p1, p2, k3, k4, k5, k6) with missing trailing terms set to zero."""
    full = np.zeros(8)
    full[: min(d.size, 8)] = d[:8]
    return tuple(float(v) for v in full)
