"""What the ids in a data set's label PNGs mean for training: classes, ignore ids, remap.

A label-set YAML (``config/label_sets/*.yaml``: ``name``, ``classes`` with ``id``,
``name``, ``color``) says which classes the network learns; a data set often stores other
ids in its PNGs (Cityscapes' and KITTI's ``labelIds`` 0-33, where training uses 19
``trainIds``). Two optional keys, read only here, say how to get from one to the other::

    ignore: [0, 1, 2, 3]     # dataset ids without a class: no loss, not scored
    remap: {7: 0, 8: 1}      # dataset id -> class id

Without ``remap`` the PNGs hold class ids directly. With it, *every* id in the PNGs must
be remapped or ignored: a remap that forgets an id would otherwise let it through as
whatever class happens to share its number, a silent label error. 255 (the unlabeled id)
is always ignored. Ids the PNGs hold that none of these rules covers stop the run before
training, with the files that hold them.

The class ids must be 0..N-1: they are the network's output channels (a Hugging Face
model's ``id2label``), and ``remap`` is the way to get there from sparse dataset ids.
The same file still works wherever a label set is read (``--label-set`` of ``eval``, the
model spec's ``classes``): :meth:`LabelSet.from_dict` reads only ``name`` and ``classes``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from seg_perception.core.labels import UNLABELED_U8, LabelSet, LabelSetError

#: The loss's ignore index and the value of "no class" in train-id label maps.
IGNORE_INDEX = UNLABELED_U8

#: Label sets shipped with the package, by name.
LABEL_SET_DIR = Path(__file__).with_name("label_sets")
NAMED = {
    "cityscapes": None,  # LabelSet.cityscapes(): the 19 trainIds, PNGs hold trainIds
    "cityscapes-labelids": LABEL_SET_DIR / "cityscapes_labelids.yaml",
}


@dataclass(frozen=True)
class TrainLabels:
    """A label set plus how dataset ids become its class ids (see the module docstring)."""

    label_set: LabelSet
    ignore: tuple[int, ...] = ()
    remap: Mapping[int, int] = field(default_factory=dict)
    source: str = ""

    def __post_init__(self) -> None:
        where = self.source or self.label_set.name
        ids = sorted(self.label_set.ids)
        if ids != list(range(len(ids))):
            raise LabelSetError(
                f"{where}: training needs class ids 0..{len(ids) - 1} (the network's output "
                f"channels), got {_ranges(ids)}: give the classes ids 0..N-1 and map the "
                "dataset's ids onto them with 'remap'"
            )
        if len(ids) >= IGNORE_INDEX:
            raise LabelSetError(f"{where}: training supports at most 255 classes")
        for source_id, target in self.remap.items():
            if target not in self.label_set.ids:
                raise LabelSetError(
                    f"{where}: remap {source_id} -> {target}: {target} is not a class id"
                )
            if source_id in self.ignore:
                raise LabelSetError(f"{where}: id {source_id} is both remapped and ignored")
        if any(not 0 <= i <= 65535 for i in (*self.ignore, *self.remap)):
            raise LabelSetError(f"{where}: dataset ids must be in 0-65535")

    # ------------------------------------------------------------------ loading
    @classmethod
    def load(cls, spec: str) -> TrainLabels:
        """A shipped label set by name (:data:`NAMED`) or a label-set YAML file."""
        spec = spec or "cityscapes"
        if spec in NAMED and NAMED[spec] is None:
            return cls(LabelSet.cityscapes(), source="cityscapes")
        path = NAMED.get(spec) or Path(spec)
        if not path.is_file():
            raise LabelSetError(
                f"--label-set {spec}: no such file (or use one of: {', '.join(NAMED)})"
            )
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as error:
            raise LabelSetError(f"{path}: not valid YAML: {error}") from None
        return cls.from_dict(data, str(path))

    @classmethod
    def from_dict(cls, data: Any, where: str) -> TrainLabels:
        if not isinstance(data, dict):
            raise LabelSetError(f"{where}: a label set is a mapping with 'classes'")
        try:
            label_set = LabelSet.from_dict(data, default_name=Path(where).stem)
        except LabelSetError as error:
            raise LabelSetError(f"{where}: {error}") from None
        ignore = data.get("ignore", [])
        if not isinstance(ignore, list) or not all(_is_int(i) for i in ignore):
            raise LabelSetError(f"{where}: 'ignore' must be a list of ids, got {ignore!r}")
        remap = data.get("remap", {})
        if not isinstance(remap, dict) or not all(
            _is_int(k) and _is_int(v) for k, v in remap.items()
        ):
            raise LabelSetError(f"{where}: 'remap' must map dataset id -> class id")
        return cls(
            label_set,
            tuple(sorted({int(i) for i in ignore})),
            {int(k): int(v) for k, v in remap.items()},
            where,
        )

    # ------------------------------------------------------------------ mapping
    @property
    def num_classes(self) -> int:
        return len(self.label_set)

    def lookup(self) -> np.ndarray:
        """(65536,) int32: dataset id -> class id, :data:`IGNORE_INDEX`, or -1 (not allowed)."""
        table = np.full(65536, -1, dtype=np.int32)
        if self.remap:
            table[list(self.remap)] = list(self.remap.values())
        else:
            table[list(self.label_set.ids)] = list(self.label_set.ids)
        table[list(self.ignore)] = IGNORE_INDEX
        table[IGNORE_INDEX] = IGNORE_INDEX
        return table

    def unknown(self, ids: np.ndarray) -> list[int]:
        """The ids of ``ids`` (distinct dataset ids) that no rule covers."""
        ids = np.asarray(ids, dtype=np.int64)
        table = self.lookup()
        bad = (ids < 0) | (ids >= len(table))
        bad[~bad] = table[ids[~bad]] < 0
        return sorted(int(i) for i in ids[bad])

    def to_train_ids(self, labels: np.ndarray, table: np.ndarray | None = None) -> np.ndarray:
        """Dataset ids -> uint8 class ids with :data:`IGNORE_INDEX` for no class (ids no
        rule covers were refused before training; here they become ignore too)."""
        table = self.lookup() if table is None else table
        mapped = table[np.asarray(labels, dtype=np.int64)]
        return np.where(mapped < 0, IGNORE_INDEX, mapped).astype(np.uint8)

    def describe(self) -> str:
        rules = f", {len(self.remap)} ids remapped" if self.remap else ""
        rules += f", ids {_ranges(sorted(self.ignore))} ignored" if self.ignore else ""
        return f"label set '{self.label_set.name}' ({self.num_classes} classes{rules})"


def _is_int(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return True
    return isinstance(value, str) and value.strip().isdigit()


def _ranges(ids: list[int]) -> str:
    """``0-6, 9, 10``: a short description of sorted ids."""
    if not ids:
        return "none"
    parts, start, prev = [], ids[0], ids[0]
    for value in [*ids[1:], None]:
        if value is not None and value == prev + 1:
            prev = value
            continue
        parts.append(str(start) if start == prev else f"{start}-{prev}")
        if value is not None:
            start = prev = value
    return ", ".join(parts)
