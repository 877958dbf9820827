"""Repeat-factor sampling: images holding rare classes are seen more often per epoch.

Gupta et al.'s rule for LVIS (also Detectron2's ``RepeatFactorTrainingSampler``), here
written for segmentation: with ``f_c`` the share of training images that hold class ``c``
and a threshold ``t``, class ``c`` earns ``r_c = max(1, sqrt(t / f_c))`` and an image the
largest ``r_c`` of its classes. An epoch then holds every image ``floor(r_i)`` times plus
``round(sum(r_i)) - sum(floor(r_i))`` extra copies, drawn without replacement with the
fractional parts as weights, so its length is the same every epoch (the learning-rate
schedule counts steps) and each image is seen ``r_i`` times on average.

Why this beside ``--class-weights`` and ``--balanced-crops``: weighting the loss by class
over-predicts rare classes, and balanced crops only help images that already hold them;
repeating the images that hold them gives rare classes more *different* examples per epoch
(motorcycles and riders are in 16-20 % of generated scenes, and small).
"""

from __future__ import annotations

import numpy as np


def repeat_factors(present: np.ndarray, threshold: float) -> np.ndarray:
    """``r_i`` per image from ``present`` ((images, classes) bool); all 1 at ``threshold`` 0."""
    if threshold < 0:
        raise ValueError(f"--repeat-rare must be >= 0, got {threshold}")
    images = present.shape[0]
    if threshold == 0 or images == 0:
        return np.ones(images)
    share = present.mean(axis=0)
    per_class = np.ones(present.shape[1])
    held = share > 0
    per_class[held] = np.maximum(1.0, np.sqrt(threshold / share[held]))
    factors = np.where(present, per_class[None, :], 1.0).max(axis=1, initial=1.0)
    return factors


def epoch_plan(factors: np.ndarray, seed: int, epoch: int) -> np.ndarray:
    """The image index of each position of one epoch (unshuffled: the loader shuffles)."""
    whole = np.floor(factors).astype(np.int64)
    plan = np.repeat(np.arange(len(factors)), whole)
    extra = round(float(factors.sum())) - int(whole.sum())
    fraction = factors - whole
    if extra > 0 and fraction.sum() > 0:
        rng = np.random.default_rng([seed, epoch, 0x5EED])
        chosen = rng.choice(len(factors), size=extra, replace=False, p=fraction / fraction.sum())
        plan = np.concatenate([plan, np.sort(chosen)])
    return plan


def describe(factors: np.ndarray, present: np.ndarray, names: list[str]) -> str:
    """One log line: how much longer an epoch is and which classes drive it."""
    share = present.mean(axis=0) if len(present) else np.zeros(len(names))
    rare = [f"{names[c]} {share[c] * 100:.0f} %" for c in np.argsort(share) if 0 < share[c] < 0.3]
    return (
        f"repeat-factor sampling: {round(float(factors.sum()))} samples per epoch from "
        f"{len(factors)} images (images with rare classes up to {factors.max():.2f}x; "
        f"rarest by share of images: {', '.join(rare[:5]) or 'none'})"
    )
