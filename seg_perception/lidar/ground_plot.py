"""The ``eval-ground`` figure: F1 and ground-on-steep-faces per scene type, per method.

Drawn with OpenCV (already a dependency; matplotlib is not), like the other evaluation
pictures: one grouped bar chart per measure, scene types down the side, one bar per
method, the value printed at each bar's end.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

#: Bar colours (RGB) in method order: ours first.
METHOD_COLORS = ((31, 119, 180), (255, 127, 14), (214, 39, 40), (44, 160, 44), (148, 103, 189))
_FONT = cv2.FONT_HERSHEY_SIMPLEX
_INK = (30, 30, 30)
_GRID = (215, 215, 215)


def bar_panel(
    title: str,
    rows: Sequence[str],
    methods: Sequence[str],
    values: np.ndarray,
    scale: float,
    unit: str = "",
    digits: int = 3,
) -> np.ndarray:
    """One grouped bar chart (RGB uint8): ``values[row, method]`` as bars of length
    ``value / scale`` of the plot width; NaN values are drawn as "n/a"."""
    bar, gap, left, width, top = 13, 10, 150, 420, 48
    group = bar * len(methods) + gap
    height = top + group * len(rows) + 30
    canvas = np.full((height, left + width + 90, 3), 255, np.uint8)
    cv2.putText(canvas, title, (10, 24), _FONT, 0.6, _INK, 1, cv2.LINE_AA)
    for k in range(5):
        x = left + int(width * k / 4)
        cv2.line(canvas, (x, top - 6), (x, height - 24), _GRID, 1)
        label = f"{scale * k / 4:.{max(0, digits - 1)}f}{unit}"
        cv2.putText(canvas, label, (x - 12, height - 8), _FONT, 0.38, _INK, 1, cv2.LINE_AA)
    for r, name in enumerate(rows):
        y0 = top + r * group
        cv2.putText(canvas, name, (8, y0 + group // 2), _FONT, 0.45, _INK, 1, cv2.LINE_AA)
        for m in range(len(methods)):
            y = y0 + m * bar
            value = float(values[r, m])
            color = METHOD_COLORS[m % len(METHOD_COLORS)]
            if not np.isfinite(value):
                cv2.putText(canvas, "n/a", (left + 4, y + bar - 3), _FONT, 0.35, _INK, 1)
                continue
            length = round(width * min(max(value / scale, 0.0), 1.0))
            cv2.rectangle(canvas, (left, y + 1), (left + length, y + bar - 2), color, -1)
            text = f"{value:.{digits}f}"
            cv2.putText(canvas, text, (left + length + 4, y + bar - 3), _FONT, 0.35, _INK, 1)
    return canvas


def legend(methods: Sequence[str], width: int) -> np.ndarray:
    """A strip naming the methods in their bar colours."""
    strip = np.full((30, width, 3), 255, np.uint8)
    x = 10
    for m, name in enumerate(methods):
        color = METHOD_COLORS[m % len(METHOD_COLORS)]
        cv2.rectangle(strip, (x, 9), (x + 14, 21), color, -1)
        cv2.putText(strip, name, (x + 20, 20), _FONT, 0.45, _INK, 1, cv2.LINE_AA)
        x += 30 + 9 * len(name)
    return strip


def ground_figure(
    rows: Sequence[str], methods: Sequence[str], f1: np.ndarray, steep: np.ndarray
) -> np.ndarray:
    """F1 and steep-face share side by side, with a legend (RGB uint8)."""
    scale = max(0.05, float(np.nanmax(steep)) if np.isfinite(steep).any() else 0.05)
    left = bar_panel("ground F1 (higher is better)", rows, methods, f1, 1.0)
    right = bar_panel(
        "% of ground on faces > 30 deg (lower is better)",
        rows, methods, 100 * steep, 100 * scale, digits=2,
    )  # fmt: skip
    body = np.hstack([left, right])
    return np.vstack([legend(methods, body.shape[1]), body])


def write_png(path: str | Path, rgb: np.ndarray) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2BGR)):
        raise OSError(f"could not write {path}")
    return path
