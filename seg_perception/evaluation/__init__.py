"""Evaluation against ground truth: ``seg-perception eval images`` / ``eval points``.

The scores live in :mod:`seg_perception.core.metrics` (numpy only); this package reads the
data, runs the predictions and writes the report and pictures (:mod:`.report`).
"""

from seg_perception.core.metrics import ConfusionMatrix, confusion_matrix

__all__ = ["ConfusionMatrix", "confusion_matrix"]
