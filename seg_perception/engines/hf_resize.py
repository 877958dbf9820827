"""transformers' shortest/longest-edge resize (Mask2Former, OneFormer, MaskFormer, DETR).

Their processors take ``size: {shortest_edge: 800, longest_edge: 1333}``: the short side
goes to ``shortest_edge`` unless the long side would then pass ``longest_edge``, in which
case the long side is capped and the short side follows (``get_size_with_aspect_ratio``);
Mask2Former's and MaskFormer's then stretch each side up to a multiple of ``size_divisor``
(32), so a single image is never padded. The spec names this policy ``shortest_longest``
(:class:`~seg_perception.engines.spec.SizePolicy`); :class:`ShortestLongestPreprocessor`
is the :class:`~seg_perception.engines.preprocess.Preprocessor` that applies it, used by
the engines of these families.

(``Preprocessor.from_spec`` hands such a spec here, so every path that builds a
preprocessor from a spec — engines, export, eval — resizes the same way.)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace
from typing import Any

from seg_perception.engines.preprocess import Letterbox, Preprocessor


def shortest_longest_size(
    height: int, width: int, shortest: int, longest: int = 0, divisor: int = 1
) -> tuple[int, int]:
    """The (h, w) transformers' processors resize an image to (see the module docstring).

    ``longest`` 0: no cap. Rounding follows ``image_transforms.get_size_with_aspect_ratio``:
    a capped short side is ``round()``-ed, the long side truncated from the unrounded one.
    """
    size, raw = shortest, None
    low, high = float(min(height, width)), float(max(height, width))
    if longest and high / low * size > longest:
        raw = longest * low / high
        size = round(raw)
    if (height <= width and height == size) or (width <= height and width == size):
        out_h, out_w = height, width
    elif width < height:
        out_w = size
        out_h = int((raw if raw is not None else size) * height / width)
    else:
        out_h = size
        out_w = int((raw if raw is not None else size) * width / height)
    if divisor > 1:
        out_h = int(math.ceil(out_h / divisor) * divisor)
        out_w = int(math.ceil(out_w / divisor) * divisor)
    return out_h, out_w


@dataclass(frozen=True)
class ShortestLongestPreprocessor(Preprocessor):
    """A Preprocessor whose resize is :func:`shortest_longest_size` (no padding)."""

    longest_edge: int = 0
    size_divisor: int = 1

    def letterbox(self, height: int, width: int) -> Letterbox:
        resized = shortest_longest_size(
            height, width, self.shortest_edge, self.longest_edge, self.size_divisor
        )
        return Letterbox((height, width), resized, resized)


def preprocessor_for(spec: Any) -> Preprocessor:
    """The spec's preprocessing, including the ``shortest_longest`` size policy."""
    size = spec.size
    if size.kind != "shortest_longest":
        return Preprocessor.from_spec(spec)
    base = Preprocessor.from_spec(replace(spec, size=replace(size, kind="dynamic")))
    values = {item.name: getattr(base, item.name) for item in fields(Preprocessor)}
    values.update(resize="shortest_edge", shortest_edge=size.edge, multiple_of=1)
    return ShortestLongestPreprocessor(
        **values, longest_edge=size.longest, size_divisor=size.size_divisor
    )
