"""Label sets: class ids, names and display colors, and the palette lookups built on them.

One home for "what does id 13 mean and what color is it": the color masks, the rgb cloud,
the ClassMap message and the demo pictures all read it from a :class:`LabelSet`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

#: Id meaning "no label" in uint8 label images and clouds.
UNLABELED_U8 = 255
#: Id meaning "no label" when a label set needs uint16 ids (> 255 classes).
UNLABELED_U16 = 65535

#: Cityscapes' 19 training classes (trainId order) and their official colors.
CITYSCAPES_CLASSES: tuple[tuple[str, tuple[int, int, int]], ...] = (
    ("road", (128, 64, 128)),
    ("sidewalk", (244, 35, 232)),
    ("building", (70, 70, 70)),
    ("wall", (102, 102, 156)),
    ("fence", (190, 153, 153)),
    ("pole", (153, 153, 153)),
    ("traffic light", (250, 170, 30)),
    ("traffic sign", (220, 220, 0)),
    ("vegetation", (107, 142, 35)),
    ("terrain", (152, 251, 152)),
    ("sky", (70, 130, 180)),
    ("person", (220, 20, 60)),
    ("rider", (255, 0, 0)),
    ("car", (0, 0, 142)),
    ("truck", (0, 0, 70)),
    ("bus", (0, 60, 100)),
    ("train", (0, 80, 100)),
    ("motorcycle", (0, 0, 230)),
    ("bicycle", (119, 11, 32)),
)

#: Color drawn for unlabeled ids and for ids the label set does not define.
UNLABELED_COLOR = (0, 0, 0)


class LabelSetError(ValueError):
    """A label set definition that is inconsistent (duplicate ids, bad colors...)."""


@dataclass(frozen=True)
class LabelSet:
    """Class ids with names and colors. Ids need not be contiguous."""

    name: str
    ids: tuple[int, ...]
    names: tuple[str, ...]
    colors: tuple[tuple[int, int, int], ...]

    def __post_init__(self) -> None:
        if not (len(self.ids) == len(self.names) == len(self.colors)):
            raise LabelSetError("ids, names and colors must have the same length")
        if len(set(self.ids)) != len(self.ids):
            raise LabelSetError(f"label set '{self.name}' has duplicate ids")
        limit = UNLABELED_U16 if max(self.ids, default=0) >= UNLABELED_U8 else UNLABELED_U8
        for class_id, color in zip(self.ids, self.colors, strict=True):
            if not 0 <= class_id < limit:
                raise LabelSetError(f"class id {class_id} out of range [0, {limit})")
            if len(color) != 3 or not all(0 <= c <= 255 for c in color):
                raise LabelSetError(f"class {class_id}: color must be 3 values 0-255, got {color}")

    # ------------------------------------------------------------------ properties
    @property
    def dtype(self) -> np.dtype:
        """uint8 ids when they fit below 255 (255 stays free for "unlabeled"), else uint16."""
        return (
            np.dtype(np.uint8) if max(self.ids, default=0) < UNLABELED_U8 else np.dtype(np.uint16)
        )

    @property
    def unlabeled_id(self) -> int:
        return UNLABELED_U8 if self.dtype == np.uint8 else UNLABELED_U16

    @property
    def image_encoding(self) -> str:
        """ROS image encoding for label images of this set (mono8 or mono16)."""
        return "mono8" if self.dtype == np.uint8 else "mono16"

    def __len__(self) -> int:
        return len(self.ids)

    def name_of(self, class_id: int) -> str:
        if class_id == self.unlabeled_id:
            return "unlabeled"
        try:
            return self.names[self.ids.index(class_id)]
        except ValueError:
            return f"unknown({class_id})"

    def id_of(self, name: str) -> int:
        try:
            return self.ids[self.names.index(name)]
        except ValueError:
            raise LabelSetError(f"no class named '{name}' in '{self.name}'") from None

    def restrict(self, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``labels`` in this set's dtype with ids the set lacks made unlabeled, and those ids.

        A label image from another model (mono16 ids 256, 1000, ...) must never be cast
        into a uint8 set, where 256 would silently become class 0: unknown ids are mapped
        to :attr:`unlabeled_id` instead, and returned (sorted, distinct) so the caller can
        say which ones it saw.
        """
        labels = np.asarray(labels)
        if labels.dtype.kind not in "ui":
            raise LabelSetError(f"label ids must be integers, got dtype {labels.dtype}")
        if labels.size == 0:
            return labels.astype(self.dtype), np.zeros(0, dtype=np.int64)
        top = int(labels.max())
        # known[i]: id i is a class or "unlabeled"; the last entry stands for negative ids.
        known = np.zeros(max(top, self.unlabeled_id, max(self.ids, default=0)) + 2, dtype=bool)
        known[list(self.ids)] = True
        known[self.unlabeled_id] = True
        index = labels
        if labels.dtype.kind == "i" and int(labels.min()) < 0:
            index = np.where(labels < 0, len(known) - 1, labels)
        ok = known[index]
        if ok.all():
            return labels.astype(self.dtype, copy=False), np.zeros(0, dtype=np.int64)
        unknown = np.unique(labels[~ok]).astype(np.int64)
        return np.where(ok, labels, self.unlabeled_id).astype(self.dtype), unknown

    # ------------------------------------------------------------------ palette
    def palette(self) -> np.ndarray:
        """(max_id + 2, 3) uint8 lookup table; the last row is the unlabeled color.

        Ids beyond the table (e.g. the unlabeled id) are clipped onto that last row by
        :meth:`colorize`, so one ``take`` colors a whole image without branches.
        """
        size = max(self.ids, default=0) + 2
        table = np.zeros((size, 3), dtype=np.uint8)
        table[:] = UNLABELED_COLOR
        table[list(self.ids)] = np.asarray(self.colors, dtype=np.uint8)
        return table

    def colorize(self, labels: np.ndarray) -> np.ndarray:
        """RGB colors (..., 3) uint8 for an array of class ids of any shape."""
        table = self.palette()
        index = np.minimum(np.asarray(labels), len(table) - 1)
        return table[index]

    # ------------------------------------------------------------------ construction
    @classmethod
    def cityscapes(cls) -> LabelSet:
        """The 19 Cityscapes training classes: the default of SegFormer checkpoints."""
        return cls(
            name="cityscapes19",
            ids=tuple(range(len(CITYSCAPES_CLASSES))),
            names=tuple(n for n, _ in CITYSCAPES_CLASSES),
            colors=tuple(c for _, c in CITYSCAPES_CLASSES),
        )

    @classmethod
    def from_dict(cls, data: dict, default_name: str = "custom") -> LabelSet:
        """Build from ``{name: ..., classes: [{id, name, color: [r, g, b]}, ...]}``."""
        if not isinstance(data, dict) or "classes" not in data:
            raise LabelSetError("a label set needs a 'classes' list")
        classes = data["classes"]
        if not isinstance(classes, list) or not classes:
            raise LabelSetError("'classes' must be a non-empty list")
        ids, names, colors = [], [], []
        for index, entry in enumerate(classes):
            if not isinstance(entry, dict) or "name" not in entry:
                raise LabelSetError(f"class #{index} must be a mapping with at least 'name'")
            ids.append(int(entry.get("id", index)))
            names.append(str(entry["name"]))
            colors.append(tuple(int(c) for c in entry.get("color", _fallback_color(ids[-1]))))
        return cls(str(data.get("name", default_name)), tuple(ids), tuple(names), tuple(colors))

    @classmethod
    def from_yaml(cls, path: str | Path) -> LabelSet:
        """Load a label set file (see ``config/label_sets/*.yaml`` for the format)."""
        path = Path(path)
        if not path.is_file():
            raise LabelSetError(f"label set file not found: {path}")
        with path.open(encoding="utf-8") as stream:
            data = yaml.safe_load(stream)
        try:
            return cls.from_dict(data, default_name=path.stem)
        except LabelSetError as error:
            raise LabelSetError(f"{path}: {error}") from None

    @classmethod
    def from_name_or_path(cls, spec: str) -> LabelSet:
        """``cityscapes`` (or ``cityscapes19``) or the path of a YAML label set file."""
        if spec in ("cityscapes", "cityscapes19", ""):
            return cls.cityscapes()
        return cls.from_yaml(spec)

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "classes": [
                {"id": i, "name": n, "color": list(c)}
                for i, n, c in zip(self.ids, self.names, self.colors, strict=True)
            ],
        }


def _fallback_color(class_id: int) -> tuple[int, int, int]:
    """A stable, well-spread color for classes defined without one (golden-ratio hues)."""
    hue = (class_id * 0.618033988749895) % 1.0
    h6 = hue * 6.0
    c = 200
    x = int(c * (1 - abs(h6 % 2 - 1)))
    sector = int(h6)
    rgb = [(c, x, 0), (x, c, 0), (0, c, x), (0, x, c), (x, 0, c), (c, 0, x)][sector % 6]
    return tuple(v + 40 for v in rgb)  # type: ignore[return-value]
