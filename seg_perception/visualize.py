"""Pictures people look at: labeled points over the camera image, a bird's-eye view, and a
blended color mask. Vectorized drawing (no per-point loops): points are splatted as small
squares with one fancy-indexed assignment per offset, farthest first so near points win.
"""

from __future__ import annotations

import numpy as np

from seg_perception.core.labels import LabelSet


def blend_mask(
    image: np.ndarray, labels: np.ndarray, label_set: LabelSet, alpha: float = 0.5
) -> np.ndarray:
    """RGB image with the label colors blended in (``alpha`` = weight of the colors)."""
    colors = label_set.colorize(labels).astype(np.float32)
    mixed = (1.0 - alpha) * image.astype(np.float32) + alpha * colors
    return np.clip(mixed + 0.5, 0, 255).astype(np.uint8)


def splat(
    canvas: np.ndarray,
    rows: np.ndarray,
    cols: np.ndarray,
    colors: np.ndarray,
    radius: int = 1,
    order: np.ndarray | None = None,
) -> np.ndarray:
    """Draw (2 * radius + 1)^2 squares of ``colors`` at integer pixel positions, in place.

    ``order`` sorts the drawing (later entries are drawn on top); pass the points sorted by
    decreasing depth so nearer points cover farther ones, as a camera would see them.
    """
    if order is not None:
        rows, cols, colors = rows[order], cols[order], colors[order]
    height, width = canvas.shape[:2]
    for dr in range(-radius, radius + 1):
        for dc in range(-radius, radius + 1):
            r, c = rows + dr, cols + dc
            inside = (r >= 0) & (r < height) & (c >= 0) & (c < width)
            canvas[r[inside], c[inside]] = colors[inside]
    return canvas


def overlay_points(
    image: np.ndarray,
    uv: np.ndarray,
    depth: np.ndarray,
    colors: np.ndarray,
    radius: int = 1,
    dim: float = 0.6,
) -> np.ndarray:
    """The camera image, dimmed, with projected points drawn in ``colors`` (near on top)."""
    canvas = (image.astype(np.float32) * dim).astype(np.uint8)
    rows = np.floor(uv[:, 1] + 0.5).astype(np.intp)
    cols = np.floor(uv[:, 0] + 0.5).astype(np.intp)
    return splat(canvas, rows, cols, colors, radius, order=np.argsort(-depth, kind="stable"))


def birds_eye(
    points: np.ndarray,
    colors: np.ndarray,
    x_range: tuple[float, float] = (-10.0, 70.0),
    y_range: tuple[float, float] = (-30.0, 30.0),
    resolution: float = 0.1,
    background: tuple[int, int, int] = (20, 20, 20),
    radius: int = 0,
) -> np.ndarray:
    """Top view of the cloud (x up the picture, y to the left), higher points on top."""
    height = round((x_range[1] - x_range[0]) / resolution)
    width = round((y_range[1] - y_range[0]) / resolution)
    canvas = np.empty((height, width, 3), dtype=np.uint8)
    canvas[:] = background
    finite = np.all(np.isfinite(points[:, :3]), axis=1)
    pts, cols = points[finite], colors[finite]
    rows = np.floor((x_range[1] - pts[:, 0]) / resolution).astype(np.intp)
    columns = np.floor((y_range[1] - pts[:, 1]) / resolution).astype(np.intp)
    return splat(canvas, rows, columns, cols, radius, order=np.argsort(pts[:, 2], kind="stable"))
