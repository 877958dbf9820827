"""The training loop: AdamW with warm-up and linear decay, AMP on CUDA, validation mIoU
per epoch, a checkpoint per epoch and resume from it.

Validation runs the network the way it is deployed: a :class:`TorchEngine` over the saved
Hugging Face folder (its model spec: resize, normalization, and labels mapped back to the
full image) segments each validation image, and the labels are scored at the image's own
resolution against its ground truth, with the confusion matrix ``eval images`` uses. The
figure printed per epoch is thus the figure the exported model gets, not a crop-level
proxy.

A checkpoint (``checkpoint.pt``) holds the weights, optimizer, schedule, AMP scaler,
history and the model's fingerprint (family, classes, parameter shapes); resuming checks
the fingerprint before any step, and each epoch's sample order and augmentations are drawn
from (seed, epoch), so a resumed run continues where the interrupted one stopped.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from seg_perception.core.metrics import ConfusionMatrix
from seg_perception.training.augment import SegmentationDataset
from seg_perception.training.datasets import Sample, read_image, read_label
from seg_perception.training.labels import IGNORE_INDEX, TrainLabels
from seg_perception.training.model import fingerprint, fingerprint_mismatch
from seg_perception.training.progress import progress_bar, write

CHECKPOINT = "checkpoint.pt"
HISTORY = "history.json"
CLASS_WEIGHTS = ("none", "sqrt-inverse")


@dataclass(frozen=True)
class TrainSettings:
    """How to train (the ``train`` flags)."""

    epochs: int = 10
    batch_size: int = 8
    lr: float | None = None  # None: 6e-5 fine-tuning pretrained weights, 1e-3 from scratch
    weight_decay: float = 0.01
    warmup: float = 0.05  # fraction of the steps
    device: str = "auto"
    amp: bool = True  # CUDA only
    workers: int = -1  # -1: min(4, cores / 2)
    threads: int = 0
    seed: int = 0
    class_weights: str = "none"
    val_limit: int = 0  # 0: every validation image

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError("--epochs and --batch-size must be >= 1")
        if self.lr is not None and not self.lr > 0:
            raise ValueError(f"--lr must be > 0, got {self.lr}")
        if self.class_weights not in CLASS_WEIGHTS:
            raise ValueError(f"--class-weights must be one of {', '.join(CLASS_WEIGHTS)}")
        if not (self.device in ("auto", "cpu") or self.device.startswith("cuda")):
            raise ValueError(f"--device must be auto, cpu, cuda or cuda:N, not {self.device!r}")


def pick_device(requested: str) -> str:
    import torch

    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"--device {requested}: torch sees no CUDA GPU (use --device cpu)")
    return requested


def class_weights(histogram: np.ndarray, mode: str) -> np.ndarray | None:
    """Per-class loss weights: ``sqrt-inverse`` = sqrt(median frequency / frequency),
    clipped to [0.1, 10] (absent classes 1), which lifts thin and rare classes."""
    if mode == "none":
        return None
    present = histogram > 0
    weights = np.ones(len(histogram), dtype=np.float32)
    if present.any():
        frequency = histogram / histogram.sum()
        median = np.median(frequency[present])
        weights[present] = np.clip(np.sqrt(median / frequency[present]), 0.1, 10.0)
    return weights


def load_checkpoint(path: Path, model: Any) -> dict[str, Any]:
    """The checkpoint at ``path`` if it was written for ``model``, else a clear error."""
    import torch

    if not path.is_file():
        raise ValueError(f"--resume {path}: no such checkpoint")
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as error:  # truncated, not a checkpoint
        raise ValueError(f"--resume {path}: not a readable checkpoint ({error})") from None
    if not isinstance(state, dict) or "fingerprint" not in state:
        raise ValueError(f"--resume {path}: not a checkpoint written by seg-perception train")
    mismatch = fingerprint_mismatch(state["fingerprint"], fingerprint(model))
    if mismatch:
        raise ValueError(
            f"--resume {path} is a checkpoint of another model ({mismatch}): resume with "
            "the --model/--config and label set it was trained with, or start a new --out"
        )
    return state


def evaluate(engine: Any, samples: Sequence[Sample], labels: TrainLabels) -> ConfusionMatrix:
    """Segment each image with ``engine`` and score it against its label at full size."""
    table = labels.lookup()
    total = ConfusionMatrix(class_ids=labels.label_set.ids, ignore_id=IGNORE_INDEX)
    for sample in samples:
        truth = labels.to_train_ids(read_label(sample.label), table)
        prediction = engine.segment(read_image(sample.image)).labels
        total.update(prediction, truth)
    return total


class Trainer:
    """Trains ``model`` in place; :meth:`run` returns the per-epoch history."""

    def __init__(
        self,
        model: Any,
        folder: Path,
        train_set: SegmentationDataset,
        val_samples: Sequence[Sample],
        labels: TrainLabels,
        settings: TrainSettings,
        out: Path,
        histogram: np.ndarray,
        pretrained: bool,
    ) -> None:
        import torch

        self.torch = torch
        self.model, self.folder, self.out = model, folder, out
        self.train_set, self.labels, self.settings = train_set, labels, settings
        self.val_samples = list(val_samples)[: settings.val_limit or None]
        self.device = pick_device(settings.device)
        if settings.threads:
            torch.set_num_threads(settings.threads)
        self.model.to(self.device)
        self.lr = settings.lr or (6e-5 if pretrained else 1e-3)
        self.amp = settings.amp and self.device.startswith("cuda")
        weights = class_weights(histogram, settings.class_weights)
        self.weights = None if weights is None else torch.from_numpy(weights).to(self.device)
        self.batch = min(settings.batch_size, len(train_set))
        self.steps_per_epoch = len(train_set) // self.batch
        self.total_steps = self.steps_per_epoch * settings.epochs
        self.optimizer = torch.optim.AdamW(
            model.parameters(), lr=self.lr, weight_decay=settings.weight_decay
        )
        from transformers import get_scheduler

        self.scheduler = get_scheduler(
            "linear",
            self.optimizer,
            num_warmup_steps=math.ceil(settings.warmup * self.total_steps),
            num_training_steps=self.total_steps,
        )
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp)
        self.history: list[dict[str, Any]] = []
        self.epoch = 0
        self._engine: Any = None

    # ------------------------------------------------------------------ resume
    def restore(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        self.epoch = int(state["epoch"])
        self.history = list(state["history"])

    def save_checkpoint(self) -> Path:
        """Written to a temporary name and renamed: an interrupted save leaves the last one."""
        path = self.out / CHECKPOINT
        partial = path.with_suffix(".pt.partial")
        state = {
            "fingerprint": fingerprint(self.model),
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "epoch": self.epoch,
            "history": self.history,
            "settings": asdict(self.settings),
        }
        self.torch.save(state, partial)
        os.replace(partial, path)
        return path

    # ------------------------------------------------------------------ steps
    def _loader(self, epoch: int) -> Any:
        torch = self.torch
        self.train_set.set_epoch(epoch)
        generator = torch.Generator().manual_seed(self.settings.seed * 100_003 + epoch)
        workers = self.settings.workers
        if workers < 0:
            workers = min(4, (os.cpu_count() or 2) // 2)
        return torch.utils.data.DataLoader(
            self.train_set,
            batch_size=self.batch,
            shuffle=True,
            generator=generator,
            drop_last=True,
            num_workers=workers,
            pin_memory=self.device.startswith("cuda"),
        )

    def _step(self, images: Any, targets: Any) -> float:
        torch = self.torch
        functional = torch.nn.functional
        images = images.to(self.device, non_blocking=True)
        targets = targets.to(self.device, non_blocking=True)
        autocast = (
            torch.autocast("cuda", dtype=torch.float16) if self.amp else contextlib.nullcontext()
        )
        with autocast:
            logits = self.model(pixel_values=images).logits
        logits = functional.interpolate(
            logits.float(), size=targets.shape[-2:], mode="bilinear", align_corners=False
        )
        if bool((targets != IGNORE_INDEX).any()):
            loss = functional.cross_entropy(
                logits, targets, weight=self.weights, ignore_index=IGNORE_INDEX
            )
        else:  # a crop of nothing but "ignore": no gradient, no NaN
            loss = logits.sum() * 0.0
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        return float(loss.detach())

    def validate(self) -> ConfusionMatrix:
        from seg_perception.engines.config import EngineConfig
        from seg_perception.engines.torch_engine import TorchEngine

        if self._engine is None:
            config = EngineConfig(
                model=str(self.folder),
                backend="torch",
                device=self.device,
                label_set=str(self.folder / "label_set.yaml"),
            )
            self._engine = TorchEngine(config, model=self.model)
        self.model.eval()
        try:
            return evaluate(self._engine, self.val_samples, self.labels)
        finally:
            self.model.train()

    # ------------------------------------------------------------------ run
    def run(self) -> list[dict[str, Any]]:
        """Train from :attr:`epoch` to the last epoch, validating and saving each."""
        settings = self.settings
        if not self.history:
            confusion = self.validate()
            self._record(0, float("nan"), confusion, 0.0, 0.0)
        bar = progress_bar(
            total=self.total_steps, initial=self.epoch * self.steps_per_epoch, unit="step"
        )
        self.model.train()
        with bar:
            while self.epoch < settings.epochs:
                epoch = self.epoch + 1
                bar.set_description(f"epoch {epoch}/{settings.epochs}", refresh=False)
                losses, start, images = [], time.perf_counter(), 0
                for batch, targets in self._loader(epoch):
                    losses.append(self._step(batch, targets))
                    images += len(batch)
                    rate = images / (time.perf_counter() - start)
                    bar.set_postfix_str(f"loss {losses[-1]:.3f}, {rate:.1f} img/s", refresh=False)
                    bar.update(1)
                seconds = time.perf_counter() - start
                confusion = self.validate()
                self.epoch = epoch
                self._record(epoch, float(np.mean(losses)), confusion, seconds, images / seconds)
                self.save_checkpoint()
        return self.history

    def _record(
        self, epoch: int, loss: float, confusion: ConfusionMatrix, seconds: float, rate: float
    ) -> None:
        names = [self.labels.label_set.name_of(i) for i in confusion.class_ids]
        iou = {n: round(float(v), 4) for n, v in zip(names, confusion.iou, strict=True) if v == v}
        entry = {
            "epoch": epoch,
            "train_loss": None if loss != loss else round(loss, 5),
            "val_miou": round(float(confusion.mean_iou), 5),
            "val_accuracy": round(float(confusion.accuracy), 5),
            "val_iou": iou,
            "lr": self.scheduler.get_last_lr()[0],
            "train_seconds": round(seconds, 2),
            "images_per_second": round(rate, 3),
        }
        self.history.append(entry)
        (self.out / HISTORY).write_text(json.dumps(self.history, indent=1) + "\n", encoding="utf-8")
        loss_text = "-" if entry["train_loss"] is None else f"{entry['train_loss']:.4f}"
        timing = f", {seconds:.0f} s, {rate:.2f} img/s" if epoch else " (before training)"
        write(
            f"epoch {epoch}: train loss {loss_text}, val mIoU {entry['val_miou']:.4f}, "
            f"pixel accuracy {entry['val_accuracy']:.4f} on {len(self.val_samples)} image(s)"
            + timing
        )
