"""Segmentation scores from a confusion matrix: per-class IoU, precision, recall, mIoU and
accuracy, for label images and labeled points alike (numpy only).

Conventions (those of the Cityscapes / SemanticKITTI benchmarks and mmsegmentation):

* Rows are the **ground truth**, columns the **prediction**; ids are class indices
  ``0 .. num_classes - 1``, or any ids when ``class_ids`` is given.
* ``ignore_id`` (255 by default) in the ground truth removes the pixel / point from every
  score. ``ignore_id`` in the *prediction* ("the model did not label this") is not
  ignored: it is a miss of the true class (a false negative of that class, a false
  positive of none), counted in :attr:`ConfusionMatrix.missed`.
* Any other id outside the class set, in truth or prediction, raises ``ValueError``:
  a label file from another label set must not be scored silently.
* Counts are **summed over frames** (:meth:`ConfusionMatrix.update`), then scored once;
  scores are not averaged over frames.
* A score whose denominator is zero is NaN (``None`` in :meth:`ConfusionMatrix.to_dict`).
* **mIoU is the mean over the classes present in the ground truth or in the prediction**
  (union > 0). A class that is predicted but absent from the ground truth has IoU 0 and
  pulls the mean down; a class absent from both has no IoU and is left out. Accumulated
  over a data set this is mmsegmentation's ``nanmean`` of the per-class IoUs.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

DEFAULT_IGNORE_ID = 255


class ConfusionMatrix:
    """Confusion counts accumulated over any number of frames.

    ``matrix[t, p]`` counts scored pixels / points of true class index ``t`` predicted as
    class index ``p``; ``missed[t]`` those of true class ``t`` the prediction left
    unlabeled (``ignore_id``).
    """

    def __init__(
        self,
        num_classes: int | None = None,
        ignore_id: int = DEFAULT_IGNORE_ID,
        class_ids: Sequence[int] | None = None,
    ) -> None:
        if class_ids is None:
            if num_classes is None or int(num_classes) < 1:
                raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}")
            class_ids = range(int(num_classes))
        ids = np.asarray(list(class_ids), dtype=np.int64)
        if ids.size == 0 or (num_classes is not None and ids.size != num_classes):
            raise ValueError(f"{ids.size} class ids for num_classes={num_classes}")
        if np.unique(ids).size != ids.size or ids.min() < 0:
            raise ValueError("class ids must be distinct and non-negative")
        if ignore_id in set(ids.tolist()):
            raise ValueError(f"ignore_id {ignore_id} is also a class id")
        self.class_ids: tuple[int, ...] = tuple(int(i) for i in ids)
        self.ignore_id = int(ignore_id)
        n = ids.size
        self.matrix = np.zeros((n, n), dtype=np.int64)
        self.missed = np.zeros(n, dtype=np.int64)
        self.frames = 0
        # id -> index lookup; ids that are not classes map to -1 (checked in update)
        size = max(int(ids.max()), self.ignore_id) + 1
        self._lut = np.full(size, -1, dtype=np.int64)
        self._lut[ids] = np.arange(n)
        self._lut[self.ignore_id] = n  # "ignore" gets the extra index n

    @property
    def num_classes(self) -> int:
        return len(self.class_ids)

    # ------------------------------------------------------------------ accumulation
    def update(self, prediction: np.ndarray, truth: np.ndarray) -> ConfusionMatrix:
        """Add one frame (any shape, the same for both). Returns ``self``."""
        prediction = np.asarray(prediction)
        truth = np.asarray(truth)
        if prediction.shape != truth.shape:
            raise ValueError(
                f"prediction shape {prediction.shape} does not match ground truth {truth.shape}"
            )
        n = self.num_classes
        t = self._indices(truth.reshape(-1), "ground truth")
        p = self._indices(prediction.reshape(-1), "prediction")
        scored = t != n
        counts = np.bincount(t[scored] * (n + 1) + p[scored], minlength=n * (n + 1))
        counts = counts.reshape(n, n + 1)
        self.matrix += counts[:, :n]
        self.missed += counts[:, n]
        self.frames += 1
        return self

    def _indices(self, values: np.ndarray, what: str) -> np.ndarray:
        if values.size == 0:
            return values.astype(np.int64)
        if not np.issubdtype(values.dtype, np.integer):
            if not np.all(np.isfinite(values)) or np.any(values != np.round(values)):
                raise ValueError(f"{what} labels must be integer class ids")
            values = values.astype(np.int64)
        lo, hi = int(values.min()), int(values.max())
        if lo >= 0 and hi < len(self._lut):
            index = self._lut[values]
            if index.min() >= 0:
                return index
        inside = (values >= 0) & (values < len(self._lut))
        known = np.zeros(values.shape, dtype=bool)
        known[inside] = self._lut[values[inside]] >= 0
        bad = np.unique(values[~known])
        shown = ", ".join(str(int(b)) for b in bad[:10]) + (" ..." if bad.size > 10 else "")
        raise ValueError(
            f"{what} holds label id(s) {shown} that are neither a class "
            f"({_id_ranges(self.class_ids)}) nor the ignore id {self.ignore_id}"
        )

    def __add__(self, other: ConfusionMatrix) -> ConfusionMatrix:
        if other.class_ids != self.class_ids or other.ignore_id != self.ignore_id:
            raise ValueError("cannot add confusion matrices of different class sets")
        total = ConfusionMatrix(class_ids=self.class_ids, ignore_id=self.ignore_id)
        total.matrix = self.matrix + other.matrix
        total.missed = self.missed + other.missed
        total.frames = self.frames + other.frames
        return total

    # ------------------------------------------------------------------ counts
    @property
    def true_positives(self) -> np.ndarray:
        return np.diag(self.matrix).copy()

    @property
    def false_positives(self) -> np.ndarray:
        """Predicted as the class, truly another class."""
        return self.matrix.sum(axis=0) - np.diag(self.matrix)

    @property
    def false_negatives(self) -> np.ndarray:
        """Truly the class, predicted as another class or left unlabeled."""
        return self.matrix.sum(axis=1) - np.diag(self.matrix) + self.missed

    @property
    def support(self) -> np.ndarray:
        """Scored ground-truth pixels / points per class."""
        return self.matrix.sum(axis=1) + self.missed

    @property
    def predicted(self) -> np.ndarray:
        """Scored pixels / points predicted as each class."""
        return self.matrix.sum(axis=0)

    @property
    def total(self) -> int:
        """Scored pixels / points (ground truth not ignored)."""
        return int(self.matrix.sum() + self.missed.sum())

    @property
    def present(self) -> np.ndarray:
        """Classes in the ground truth or the prediction: those mIoU averages over."""
        return (self.support > 0) | (self.predicted > 0)

    # ------------------------------------------------------------------ scores
    @property
    def iou(self) -> np.ndarray:
        """TP / (TP + FP + FN) per class; NaN for classes in neither truth nor prediction."""
        tp = self.true_positives
        return _divide(tp, tp + self.false_positives + self.false_negatives)

    @property
    def precision(self) -> np.ndarray:
        """TP / (TP + FP); NaN for classes never predicted."""
        return _divide(self.true_positives, self.predicted)

    @property
    def recall(self) -> np.ndarray:
        """TP / (TP + FN) (the per-class accuracy); NaN for classes absent from the truth."""
        return _divide(self.true_positives, self.support)

    @property
    def f1(self) -> np.ndarray:
        tp = self.true_positives
        return _divide(2 * tp, 2 * tp + self.false_positives + self.false_negatives)

    @property
    def mean_iou(self) -> float:
        """Mean IoU over :attr:`present` classes (see the module docstring); NaN if none."""
        return _nanmean(self.iou)

    @property
    def mean_recall(self) -> float:
        """Mean per-class accuracy over the classes present in the ground truth."""
        return _nanmean(self.recall)

    @property
    def accuracy(self) -> float:
        """Correct / scored pixels or points (overall accuracy)."""
        total = self.total
        return float(np.trace(self.matrix)) / total if total else float("nan")

    def normalized(self) -> np.ndarray:
        """Rows divided by their support (a row sums to the class's recall plus its missed
        share); rows of classes absent from the truth are NaN."""
        support = self.support.astype(np.float64)[:, None]
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(support > 0, self.matrix / np.maximum(support, 1), np.nan)

    # ------------------------------------------------------------------ export
    def to_dict(self, names: Sequence[str] | None = None) -> dict:
        """JSON-ready scores, counts and the matrix (undefined scores are None)."""
        names = list(names) if names is not None else [str(i) for i in self.class_ids]
        if len(names) != self.num_classes:
            raise ValueError(f"{len(names)} names for {self.num_classes} classes")
        iou, precision, recall, f1 = self.iou, self.precision, self.recall, self.f1
        tp, fp, fn = self.true_positives, self.false_positives, self.false_negatives
        classes = [
            {
                "id": class_id,
                "name": names[i],
                "iou": _json(iou[i]),
                "precision": _json(precision[i]),
                "recall": _json(recall[i]),
                "f1": _json(f1[i]),
                "support": int(self.support[i]),
                "predicted": int(self.predicted[i]),
                "true_positives": int(tp[i]),
                "false_positives": int(fp[i]),
                "false_negatives": int(fn[i]),
                "missed": int(self.missed[i]),
            }
            for i, class_id in enumerate(self.class_ids)
        ]
        return {
            "frames": self.frames,
            "scored": self.total,
            "accuracy": _json(self.accuracy),
            "mean_iou": _json(self.mean_iou),
            "mean_iou_classes": [names[i] for i in np.flatnonzero(self.present)],
            "mean_recall": _json(self.mean_recall),
            "classes": classes,
            "confusion_matrix": self.matrix.tolist(),
            "missed": self.missed.tolist(),
        }


def confusion_matrix(
    prediction: np.ndarray,
    truth: np.ndarray,
    num_classes: int,
    ignore_id: int = DEFAULT_IGNORE_ID,
) -> np.ndarray:
    """(num_classes, num_classes) int64 counts, rows = truth, columns = prediction.

    Predictions equal to ``ignore_id`` are not in this matrix (they are misses; use
    :class:`ConfusionMatrix` to keep them).
    """
    return ConfusionMatrix(num_classes, ignore_id).update(prediction, truth).matrix


def _divide(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    numerator = np.asarray(numerator, dtype=np.float64)
    denominator = np.asarray(denominator, dtype=np.float64)
    out = np.full(numerator.shape, np.nan)
    np.divide(numerator, denominator, out=out, where=denominator > 0)
    return out


def _nanmean(values: np.ndarray) -> float:
    defined = values[~np.isnan(values)]
    return float(defined.mean()) if defined.size else float("nan")


def _json(value: float) -> float | None:
    value = float(value)
    return None if np.isnan(value) else value


def _id_ranges(ids: Sequence[int]) -> str:
    """``0-18`` or ``1, 2, 5-7``: a short description of the class ids."""
    ids = sorted(ids)
    runs = [[ids[0], ids[0]]]
    for current in ids[1:]:
        if current == runs[-1][1] + 1:
            runs[-1][1] = current
        else:
            runs.append([current, current])
    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in runs)
