"""The evaluation report: a JSON file and pictures people look at, drawn with OpenCV.

* :func:`iou_bar_chart` — per-class IoU bars in the label set's colors, with the mIoU line;
* :func:`confusion_heatmap` — the row-normalized confusion matrix (percent of each true
  class), with class names and color swatches on both axes;
* :func:`image_frame_panel` — one labeled image: image | prediction | ground truth | errors;
* :func:`points_birds_eye_panel` / :func:`points_range_panel` — one labeled scan seen from
  above and as a 360 deg range image (prediction, ground truth, errors).

Every function returns an (H, W, 3) uint8 RGB array; :func:`write_png` saves one. Colors
come from the :class:`LabelSet`; the overlays and the bird's-eye view reuse
:mod:`seg_perception.visualize`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from seg_perception.core.labels import LabelSet
from seg_perception.core.metrics import ConfusionMatrix
from seg_perception.visualize import birds_eye, blend_mask, overlay_points

FONT = cv2.FONT_HERSHEY_SIMPLEX
WHITE = (255, 255, 255)
BLACK = (0, 0, 0)
TEXT = (30, 30, 30)
MUTED = (140, 140, 140)
GRID = (215, 215, 215)

#: Error-map colors (RGB).
WRONG = (235, 30, 30)
MISSED = (255, 150, 0)
IGNORED = (25, 25, 60)
#: Points whose prediction is the ignore id ("unknown") and points with ignored truth.
UNLABELED_POINT = (150, 150, 150)
IGNORED_POINT = (70, 70, 90)


# --------------------------------------------------------------------------- text helpers
def _text_size(text: str, scale: float, thickness: int = 1) -> tuple[int, int]:
    (width, height), baseline = cv2.getTextSize(text, FONT, scale, thickness)
    return width, height + baseline


def _put(
    canvas: np.ndarray,
    text: str,
    x: int,
    y: int,
    scale: float = 0.5,
    color: tuple[int, int, int] = TEXT,
    thickness: int = 1,
    align: str = "left",
) -> None:
    """Text with its vertical middle at ``y``; ``align`` left / right / center on ``x``."""
    (width, height), _ = cv2.getTextSize(text, FONT, scale, thickness)
    if align == "right":
        x -= width
    elif align == "center":
        x -= width // 2
    cv2.putText(
        canvas, text, (int(x), int(y + height / 2)), FONT, scale, color, thickness, cv2.LINE_AA
    )


def _caption(tile: np.ndarray, text: str, height: int = 34, scale: float = 0.65) -> np.ndarray:
    """``tile`` with a dark caption bar above it."""
    bar = np.full((height, tile.shape[1], 3), 32, dtype=np.uint8)
    _put(bar, text, 10, height // 2, scale, WHITE)
    return np.vstack([bar, tile])


def _legend(entries: Sequence[tuple[str, tuple[int, int, int]]], width: int) -> np.ndarray:
    """Color swatches with names, wrapped to ``width``, on a dark strip."""
    scale, swatch, gap, row_height = 0.55, 16, 22, 28
    rows: list[list[tuple[int, str, tuple[int, int, int]]]] = [[]]
    x = 10
    for name, color in entries:
        needed = swatch + 6 + _text_size(name, scale)[0] + gap
        if x + needed > width and rows[-1]:
            rows.append([])
            x = 10
        rows[-1].append((x, name, color))
        x += needed
    strip = np.full((row_height * len(rows) + 8, width, 3), 32, dtype=np.uint8)
    for r, row in enumerate(rows):
        y = 4 + r * row_height + row_height // 2
        for x, name, color in row:
            cv2.rectangle(strip, (x, y - swatch // 2), (x + swatch, y + swatch // 2), color, -1)
            cv2.rectangle(strip, (x, y - swatch // 2), (x + swatch, y + swatch // 2), WHITE, 1)
            _put(strip, name, x + swatch + 6, y, scale, WHITE)
    return strip


def _grid(tiles: Sequence[np.ndarray], columns: int, pad: int = 4) -> np.ndarray:
    """Tiles (same size) in a grid, separated by ``pad`` dark pixels."""
    height, width = tiles[0].shape[:2]
    rows = math.ceil(len(tiles) / columns)
    canvas = np.full(
        (rows * height + (rows - 1) * pad, columns * width + (columns - 1) * pad, 3),
        12,
        dtype=np.uint8,
    )
    for index, tile in enumerate(tiles):
        r, c = divmod(index, columns)
        canvas[r * (height + pad) : r * (height + pad) + height, c * (width + pad) :][:, :width] = (
            tile
        )
    return canvas


def _fmt(value: float, digits: int = 3) -> str:
    return "n/a" if value is None or not np.isfinite(value) else f"{value:.{digits}f}"


def write_png(path: str | Path, rgb: np.ndarray) -> Path:
    """Save an RGB picture as PNG (OpenCV writes BGR)."""
    path = Path(path)
    if not cv2.imwrite(str(path), cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2BGR)):
        raise OSError(f"cannot write {path}")
    return path


# --------------------------------------------------------------------------- summary charts
def iou_bar_chart(confusion: ConfusionMatrix, label_set: LabelSet, title: str = "") -> np.ndarray:
    """Horizontal per-class IoU bars (class colors), values at the bar ends, mIoU line.

    Classes in neither the ground truth nor the prediction are listed in gray as
    "not present"; classes predicted but absent from the truth read "0.000 (not in GT)".
    """
    names = [label_set.name_of(i) for i in confusion.class_ids]
    colors = [label_set.colors[label_set.ids.index(i)] for i in confusion.class_ids]
    iou, support, predicted = confusion.iou, confusion.support, confusion.predicted
    scale = 0.55
    row, bar_width = 30, 520
    left = 20 + max(_text_size(n, scale)[0] for n in names) + 14
    top, bottom = 84, 62
    mean = confusion.mean_iou
    heading = title or "Per-class IoU"
    subtitle = (
        f"mIoU {_fmt(mean)} over {int(confusion.present.sum())} classes present in ground "
        f"truth or prediction; accuracy {_fmt(confusion.accuracy)}"
    )
    width = max(
        left + bar_width + 190,
        _text_size(heading, 0.7, 2)[0] + 40,
        _text_size(subtitle, 0.5)[0] + 40,
    )
    height = top + row * len(names) + bottom
    canvas = np.full((height, width, 3), 255, dtype=np.uint8)
    _put(canvas, heading, 20, 22, 0.7, TEXT, 2)
    _put(canvas, subtitle, 20, 50, 0.5, TEXT)
    axis_y = top + row * len(names) + 6
    for tick in (0.0, 0.25, 0.5, 0.75, 1.0):
        x = left + round(tick * bar_width)
        cv2.line(canvas, (x, top - 6), (x, axis_y), GRID, 1)
        _put(canvas, f"{tick:g}", x, axis_y + 14, 0.45, MUTED, align="center")
    _put(canvas, "IoU", left + bar_width // 2, axis_y + 34, 0.5, TEXT, align="center")

    for index, (name, color) in enumerate(zip(names, colors, strict=True)):
        y = top + index * row
        middle = y + row // 2
        present = support[index] > 0 or predicted[index] > 0
        _put(canvas, name, left - 12, middle, scale, TEXT if present else MUTED, align="right")
        if not present:
            _put(canvas, "not present", left + 6, middle, 0.45, MUTED)
            continue
        length = round(float(iou[index]) * bar_width)
        if length > 0:
            cv2.rectangle(canvas, (left, y + 5), (left + length, y + row - 5), color, -1)
            cv2.rectangle(canvas, (left, y + 5), (left + length, y + row - 5), (60, 60, 60), 1)
        note = f"{iou[index]:.3f}" + ("  (not in GT)" if support[index] == 0 else "")
        _put(canvas, note, left + length + 8, middle, 0.5, TEXT)

    if np.isfinite(mean):
        x = left + round(mean * bar_width)
        for y in range(top - 6, axis_y, 10):  # dashed
            cv2.line(canvas, (x, y), (x, min(y + 5, axis_y)), (200, 0, 0), 2)
        _put(canvas, "mIoU", x, top - 16, 0.5, (200, 0, 0), 1, align="center")
    return canvas


def confusion_heatmap(
    confusion: ConfusionMatrix,
    label_set: LabelSet,
    title: str = "",
    missed_name: str = "unlabeled",
) -> np.ndarray:
    """Row-normalized confusion matrix: cell (t, p) = percent of true class t predicted p.

    Rows are the ground truth, columns the prediction; a ``missed_name`` column appears
    when the prediction left true pixels / points unlabeled. Rows of classes absent from
    the ground truth are hatched gray. Percentages are written in the cells (blank for 0
    counts).
    """
    n = confusion.num_classes
    names = [label_set.name_of(i) for i in confusion.class_ids]
    colors = [label_set.colors[label_set.ids.index(i)] for i in confusion.class_ids]
    rates = confusion.normalized()
    counts = confusion.matrix
    show_missed = bool(confusion.missed.sum())
    if show_missed:
        support = confusion.support
        missed_rate = np.where(support > 0, confusion.missed / np.maximum(support, 1), np.nan)
        rates = np.hstack([rates, missed_rate[:, None]])
        counts = np.hstack([counts, confusion.missed[:, None]])
    columns = [*names, missed_name] if show_missed else names
    column_colors = [*colors, (120, 120, 120)] if show_missed else colors

    cell = int(np.clip(700 // max(n, 1), 40, 120))
    scale = 0.5
    label_width = max(_text_size(c, scale)[0] for c in columns) + 34
    top = 70 + label_width
    left = 40 + label_width
    heading = title or "Confusion matrix"
    subtitle = "rows: ground truth, columns: prediction; % of each true class"
    width = max(
        left + cell * len(columns) + 30,
        _text_size(heading, 0.7, 2)[0] + 40,
        _text_size(subtitle, 0.5)[0] + 40,
    )
    height = top + cell * n + 30
    canvas = np.full((height, width, 3), 255, dtype=np.uint8)
    _put(canvas, heading, 20, 22, 0.7, TEXT, 2)
    _put(canvas, subtitle, 20, 48, 0.5, TEXT)

    # column labels: drawn horizontally on a strip, then rotated to read bottom-up
    strip = np.full((cell * len(columns), label_width, 3), 255, dtype=np.uint8)
    for j, (name, color) in enumerate(zip(columns, column_colors, strict=True)):
        y = j * cell + cell // 2
        cv2.rectangle(strip, (4, y - 7), (18, y + 7), color, -1)
        cv2.rectangle(strip, (4, y - 7), (18, y + 7), (60, 60, 60), 1)
        _put(strip, name, 26, y, scale, TEXT)
    # rotated 90 deg counter-clockwise: the swatches end up at the bottom, by the matrix
    rotated = cv2.rotate(strip, cv2.ROTATE_90_COUNTERCLOCKWISE)
    canvas[top - label_width : top, left : left + cell * len(columns)] = rotated
    # row labels
    for i, (name, color) in enumerate(zip(names, colors, strict=True)):
        y = top + i * cell + cell // 2
        _put(canvas, name, left - 26, y, scale, TEXT, align="right")
        cv2.rectangle(canvas, (left - 20, y - 7), (left - 6, y + 7), color, -1)
        cv2.rectangle(canvas, (left - 20, y - 7), (left - 6, y + 7), (60, 60, 60), 1)
    _put(canvas, "prediction", left + cell * len(columns) // 2, 66, 0.5, MUTED, align="center")
    vertical = np.full((24, _text_size("ground truth", 0.5)[0] + 10, 3), 255, dtype=np.uint8)
    _put(vertical, "ground truth", 5, 12, 0.5, MUTED)
    vertical = cv2.rotate(vertical, cv2.ROTATE_90_COUNTERCLOCKWISE)
    y0 = max(top + (cell * n - vertical.shape[0]) // 2, top)
    y1 = min(y0 + vertical.shape[0], height)
    canvas[y0:y1, 6 : 6 + vertical.shape[1]] = vertical[: y1 - y0]

    # cells: white -> dark blue with the rate
    low, high = np.array([255, 255, 255], float), np.array([8, 48, 107], float)
    for i in range(n):
        for j in range(len(columns)):
            x0, y0 = left + j * cell, top + i * cell
            rate = rates[i, j]
            if np.isnan(rate):
                color = (235, 235, 235)
            else:
                color = tuple(int(v) for v in low + (high - low) * rate)
            cv2.rectangle(canvas, (x0, y0), (x0 + cell, y0 + cell), color, -1)
            if np.isnan(rate):
                cv2.line(canvas, (x0 + 4, y0 + cell - 4), (x0 + cell - 4, y0 + 4), GRID, 1)
            elif counts[i, j] > 0:
                if cell >= 60:  # room for a decimal
                    text = f"{100 * rate:.1f}" if rate >= 0.0005 else "<0.1"
                else:
                    text = f"{100 * rate:.0f}" if rate >= 0.005 else "<1"
                ink = WHITE if rate > 0.45 else TEXT
                size = 0.45 if cell < 60 else 0.6
                _put(canvas, text, x0 + cell // 2, y0 + cell // 2, size, ink, align="center")
    for k in range(n + 1):
        cv2.line(canvas, (left, top + k * cell), (left + cell * len(columns), top + k * cell), GRID)
    for k in range(len(columns) + 1):
        cv2.line(canvas, (left + k * cell, top), (left + k * cell, top + cell * n), GRID)
    for k in range(min(n, len(columns))):  # outline the diagonal
        x0, y0 = left + k * cell, top + k * cell
        cv2.rectangle(canvas, (x0, y0), (x0 + cell, y0 + cell), (200, 0, 0), 1)
    return canvas


# --------------------------------------------------------------------------- per frame
def error_map(
    image: np.ndarray, prediction: np.ndarray, truth: np.ndarray, ignore_id: int
) -> np.ndarray:
    """The image in dim gray where the prediction is right, red where it is wrong, orange
    where it left a scored pixel unlabeled, dark blue where the ground truth is ignored."""
    gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    out = np.repeat((gray * 0.55).astype(np.uint8)[..., None], 3, axis=2)
    ignored = truth == ignore_id
    missed = ~ignored & (prediction == ignore_id)
    wrong = ~ignored & ~missed & (prediction != truth)
    out[wrong] = WRONG
    out[missed] = MISSED
    out[ignored] = IGNORED
    return out


def _present_entries(
    label_set: LabelSet, *arrays: np.ndarray
) -> list[tuple[str, tuple[int, int, int]]]:
    present: set[int] = set()
    for array in arrays:
        present.update(int(v) for v in np.unique(array))
    return [
        (name, color)
        for class_id, name, color in zip(
            label_set.ids, label_set.names, label_set.colors, strict=True
        )
        if class_id in present
    ]


def image_frame_panel(
    image: np.ndarray,
    prediction: np.ndarray,
    truth: np.ndarray,
    label_set: LabelSet,
    ignore_id: int,
    name: str = "",
    confusion: ConfusionMatrix | None = None,
) -> np.ndarray:
    """2 x 2: image | prediction colors / ground-truth colors | error map, with a legend of
    the classes present in this frame's truth or prediction."""
    scores = ""
    if confusion is not None:
        scores = f"  accuracy {_fmt(confusion.accuracy)}, mIoU {_fmt(confusion.mean_iou)}"
    errors = error_map(image, prediction, truth, ignore_id)
    tiles = [
        _caption(image, f"image {name}"),
        _caption(blend_mask(image, prediction, label_set, 0.65), "prediction"),
        _caption(blend_mask(image, truth, label_set, 0.65), "ground truth (black = ignore)"),
        _caption(errors, "errors: red = wrong, orange = unlabeled, blue = ignored" + scores),
    ]
    panel = _grid(tiles, columns=2)
    return np.vstack(
        [panel, _legend(_present_entries(label_set, prediction, truth), panel.shape[1])]
    )


def _point_colors(
    labels: np.ndarray, label_set: LabelSet, ignore_id: int, ignore_color: tuple[int, int, int]
) -> np.ndarray:
    colors = label_set.colorize(labels)
    colors[labels == ignore_id] = ignore_color
    return colors


def _point_errors(prediction: np.ndarray, truth: np.ndarray, ignore_id: int) -> np.ndarray:
    colors = np.empty((len(truth), 3), dtype=np.uint8)
    colors[:] = (200, 200, 200)  # right
    ignored = truth == ignore_id
    missed = ~ignored & (prediction == ignore_id)
    colors[~ignored & ~missed & (prediction != truth)] = WRONG
    colors[missed] = MISSED
    colors[ignored] = IGNORED_POINT
    return colors


def _point_legend(label_set: LabelSet, width: int, unlabeled: str) -> np.ndarray:
    entries = list(zip(label_set.names, label_set.colors, strict=True))
    entries += [
        (unlabeled, UNLABELED_POINT),
        ("ignored truth", IGNORED_POINT),
        ("right", (200, 200, 200)),
        ("wrong", WRONG),
        ("left unlabeled", MISSED),
    ]
    return _legend(entries, width)


def points_birds_eye_panel(
    xyz: np.ndarray,
    prediction: np.ndarray,
    truth: np.ndarray,
    label_set: LabelSet,
    ignore_id: int,
    name: str = "",
    extent: float = 40.0,
    resolution: float = 0.1,
    unlabeled: str = "unknown",
) -> np.ndarray:
    """Top views (x up, y left, +-``extent`` m around the sensor): prediction | ground
    truth | errors. Higher points are drawn on top, except in the error view, where
    wrong and unlabeled points are drawn over right ones so none hides."""
    xyz = np.asarray(xyz, dtype=np.float32)[:, :3]
    errors = _point_errors(prediction, truth, ignore_id)
    ignored = truth == ignore_id
    bad = ~ignored & (prediction != truth)
    error_order = xyz.copy()
    error_order[:, 2] = np.where(bad, 2.0, np.where(ignored, 0.0, 1.0))
    views = []
    for caption, points, colors in (
        (
            f"prediction {name}",
            xyz,
            _point_colors(prediction, label_set, ignore_id, UNLABELED_POINT),
        ),
        ("ground truth", xyz, _point_colors(truth, label_set, ignore_id, IGNORED_POINT)),
        ("errors", error_order, errors),
    ):
        top = birds_eye(
            points,
            colors,
            (-extent, extent),
            (-extent, extent),
            resolution,
            (15, 15, 15),
            radius=1,
        )
        views.append(_caption(top, caption))
    panel = _grid(views, columns=3)
    return np.vstack([panel, _point_legend(label_set, panel.shape[1], unlabeled)])


def points_range_panel(
    xyz: np.ndarray,
    prediction: np.ndarray,
    truth: np.ndarray,
    label_set: LabelSet,
    ignore_id: int,
    name: str = "",
    projection=None,
    row_scale: int = 4,
    unlabeled: str = "unknown",
) -> np.ndarray:
    """The scan as a 360 deg range image (the LiDAR's own "camera" view; rear at the
    edges, straight ahead in the middle), points drawn nearest on top: prediction,
    ground truth and errors stacked."""
    from seg_perception.lidar.range_image import NO_PIXEL, RangeProjection

    projection = projection or RangeProjection()
    rows, cols, depth = projection.pixels(xyz[:, :3])
    seen = rows != NO_PIXEL
    uv = np.stack([cols[seen], rows[seen]], axis=1).astype(np.float32)
    blank = np.zeros((projection.height, projection.width, 3), dtype=np.uint8)
    views = []
    for caption, colors in (
        (f"prediction {name}", _point_colors(prediction, label_set, ignore_id, UNLABELED_POINT)),
        ("ground truth", _point_colors(truth, label_set, ignore_id, IGNORED_POINT)),
        ("errors", _point_errors(prediction, truth, ignore_id)),
    ):
        view = overlay_points(blank, uv, depth[seen], colors[seen], radius=0, dim=1.0)
        view = cv2.resize(
            view,
            (projection.width, projection.height * row_scale),
            interpolation=cv2.INTER_NEAREST,
        )
        views.append(_caption(view, f"range view: {caption}"))
    panel = _grid(views, columns=1)
    return np.vstack([panel, _point_legend(label_set, panel.shape[1], unlabeled)])


# --------------------------------------------------------------------------- JSON
def write_json(path: str | Path, report: dict) -> Path:
    """Write ``report`` as strict JSON (NaN is written as null)."""
    path = Path(path)
    path.write_text(json.dumps(_strict(report), indent=2) + "\n", encoding="utf-8")
    return path


def _strict(value):
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _strict(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_strict(v) for v in value]
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return _strict(float(value))
    return value


def frame_summary(name: str, confusion: ConfusionMatrix, label_set: LabelSet) -> dict:
    """One frame's scores for the report: accuracy, mIoU and IoU of present classes."""
    iou = confusion.iou
    return {
        "name": name,
        "scored": confusion.total,
        "accuracy": confusion.accuracy,
        "mean_iou": confusion.mean_iou,
        "iou": {
            label_set.name_of(class_id): float(iou[i])
            for i, class_id in enumerate(confusion.class_ids)
            if confusion.present[i]
        },
    }


def format_scores(confusion: ConfusionMatrix, label_set: LabelSet, unit: str = "pixels") -> str:
    """A per-class table (IoU, precision, recall, support) and the overall line."""
    header = f"{'class':<16} {'IoU':>7} {'prec':>7} {'recall':>7} {unit + ' (GT)':>14}"
    lines = [header, "-" * len(header)]
    iou, precision, recall, support = (
        confusion.iou,
        confusion.precision,
        confusion.recall,
        confusion.support,
    )
    for i, class_id in enumerate(confusion.class_ids):
        name = label_set.name_of(class_id)
        if not confusion.present[i]:
            lines.append(f"{name:<16} {'-':>7} {'-':>7} {'-':>7} {0:>14}")
            continue
        lines.append(
            f"{name:<16} {_fmt(iou[i]):>7} {_fmt(precision[i]):>7} {_fmt(recall[i]):>7} "
            f"{int(support[i]):>14}"
        )
    lines.append("-" * len(header))
    lines.append(
        f"mIoU {_fmt(confusion.mean_iou, 4)} over {int(confusion.present.sum())} classes "
        f"present in ground truth or prediction; accuracy {_fmt(confusion.accuracy, 4)}; "
        f"mean recall {_fmt(confusion.mean_recall, 4)}; {confusion.total} {unit} scored in "
        f"{confusion.frames} frame(s)"
    )
    return "\n".join(lines)
