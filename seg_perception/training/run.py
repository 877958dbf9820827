"""One training run, from the request to the exported model (see :mod:`.cli` for the
order of the checks and why they all come before the first step)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from seg_perception.training.augment import AugmentConfig, SegmentationDataset
from seg_perception.training.datasets import (
    DataError,
    DataSource,
    Sample,
    check_labels,
    detect_layout,
    find_samples,
    split_holdout,
)
from seg_perception.training.labels import TrainLabels
from seg_perception.training.loop import (
    CHECKPOINT,
    Trainer,
    TrainSettings,
    load_checkpoint,
    pick_device,
)
from seg_perception.training.model import (
    ModelSource,
    build_model,
    describe_model,
    load_config,
    load_processor,
    save_folder,
)
from seg_perception.training.progress import write
from seg_perception.training.sampling import describe as describe_repeats
from seg_perception.training.sampling import repeat_factors

#: Largest default crop side: bigger crops cost memory and time for little gain.
MAX_DEFAULT_CROP = 512


@dataclass
class TrainRequest:
    """Everything ``seg-perception train`` was asked to do."""

    data: list[Path]
    out: Path
    val: list[Path] = field(default_factory=list)
    layout: str = "auto"
    labels: str = ""
    split: str = ""
    label_set: str = "cityscapes"
    holdout: float = 0.1
    model: str = ""
    config: str = ""
    overrides: tuple[str, ...] = ()
    input_size: tuple[int, int] | None = None
    crop: tuple[int, int] | None = None
    scale_range: tuple[float, float] = (0.5, 2.0)
    flip: bool = True
    photometric: bool = True
    balanced_crops: float = 0.0
    repeat_rare: float = 0.0  # LVIS repeat-factor threshold t; 0: off
    resume: str = ""  # "", "auto" (OUT/checkpoint.pt) or a path
    export: bool = True
    settings: dict[str, Any] = field(default_factory=dict)


def gather(request: TrainRequest) -> tuple[list[Sample], list[Sample], str]:
    """(train samples, validation samples, a description of where they came from)."""
    train: list[Sample] = []
    layouts = []
    for folder in request.data:
        layout, samples = find_samples(
            DataSource(folder, request.layout, request.labels, request.split)
        )
        layouts.append(layout)
        train += samples
    val: list[Sample] = []
    for folder in request.val:
        val += find_samples(DataSource(folder, request.layout, request.labels))[1]
    held_out = ""
    if not val and request.split != "val":
        for folder in request.data:  # a Cityscapes root: its val split
            if detect_layout(folder) == "cityscapes" and (folder / "leftImg8bit" / "val").is_dir():
                val += find_samples(DataSource(folder, "cityscapes", request.labels, "val"))[1]
    if not val:
        if not 0 < request.holdout < 1:
            raise DataError(f"--holdout must be in (0, 1), got {request.holdout}")
        seed = int(request.settings.get("seed", 0))
        train, val = split_holdout(train, request.holdout, seed)
        held_out = ", validation held out of the training images"
    layout = ", ".join(sorted(set(layouts)))
    where = f"{len(train)} training and {len(val)} validation image(s) ({layout} layout{held_out})"
    return train, val, where


def resume_path(request: TrainRequest) -> Path | None:
    """The checkpoint to resume, or None; refuses to overwrite an earlier run's."""
    existing = request.out / CHECKPOINT
    if request.resume == "auto":
        return existing
    if request.resume:
        return Path(request.resume)
    if existing.exists():
        raise ValueError(
            f"{request.out} holds a checkpoint of an earlier run: --resume to continue it, "
            "or pick another --out"
        )
    return None


def default_crop(spec: Any, samples: list[Sample]) -> tuple[int, int]:
    """The network input size (else the first image's size), at most 512 a side."""
    from seg_perception.training.datasets import image_size

    size = spec.size.size if spec.size.kind == "fixed" else image_size(samples[0].image)
    return min(size[0], MAX_DEFAULT_CROP), min(size[1], MAX_DEFAULT_CROP)


def run_training(request: TrainRequest) -> dict[str, Any]:
    """Check, train, export; returns the history and the final figures."""
    labels = TrainLabels.load(request.label_set)
    train_samples, val_samples, where = gather(request)
    source = ModelSource(request.model, request.config, request.overrides)
    config, pretrained_classes = load_config(source, labels)
    settings = TrainSettings(**request.settings)
    pick_device(settings.device)  # a missing GPU is known now, not after the label scan
    checkpoint = resume_path(request)
    if checkpoint is not None and not checkpoint.is_file():
        raise ValueError(f"--resume {checkpoint}: no such checkpoint")
    counts = check_labels([*train_samples, *val_samples], labels)
    present = counts.present[: len(train_samples)]
    repeat = repeat_factors(present, request.repeat_rare) if request.repeat_rare else None
    write(f"data: {where}; {labels.describe()}")

    model = build_model(source, config, settings.seed)
    if pretrained_classes is not None and pretrained_classes != labels.num_classes:
        write(f"note: {request.model} predicted {pretrained_classes} classes; its head is "
              f"re-initialized for {labels.num_classes}")  # fmt: skip
    state = load_checkpoint(checkpoint, model) if checkpoint is not None else None
    if state is not None:
        model.load_state_dict(state["model"])  # before the folder is saved over
    processor, processor_note = load_processor(source, request.input_size)
    folder = request.out / "model"
    save_folder(model, processor, folder, labels)
    spec = _spec(folder, model)
    from seg_perception.engines.preprocess import Preprocessor

    augment = AugmentConfig(
        crop=request.crop or default_crop(spec, train_samples),
        scale_range=request.scale_range,
        flip=request.flip,
        photometric=request.photometric,
        balanced_crops=request.balanced_crops,
    )
    dataset = SegmentationDataset(
        train_samples, labels, Preprocessor.from_spec(spec), augment, settings.seed, repeat
    )
    if repeat is not None:
        write(describe_repeats(repeat, present, list(labels.label_set.names)))
    trainer = Trainer(
        model, folder, dataset, val_samples, labels, settings, request.out, counts.pixels,
        pretrained=source.pretrained,
    )  # fmt: skip
    if state is not None:
        trainer.restore(state)
        write(f"resuming {checkpoint} after epoch {trainer.epoch}")
    write(
        f"model: {describe_model(model)} from {source.describe()}; input {spec.size.describe()}"
        f", crop {augment.crop[0]}x{augment.crop[1]}, {processor_note}"
    )
    write(
        f"training on {trainer.device}{' with AMP' if trainer.amp else ''}: {settings.epochs} "
        f"epoch(s) x {trainer.steps_per_epoch} step(s) of {trainer.batch} image(s), "
        f"lr {trainer.lr:g}"
    )
    start = time.perf_counter()
    history = trainer.run()
    model.eval()
    save_folder(model.to("cpu"), processor, folder, labels)
    final: dict[str, Any] = {
        "epochs": trainer.epoch,
        "val_miou": history[-1]["val_miou"],
        "model": str(folder),
        "seconds": round(time.perf_counter() - start, 1),
    }
    if request.export:
        from seg_perception.training.deploy import export_trained

        report = export_trained(folder, request.out / "model.onnx", val_samples[:4])
        for line in report.lines():
            write(line)
        final.update(onnx=str(report.onnx), spec=str(report.spec),
                     onnx_agreement=report.image_agreement)  # fmt: skip
    write(f"done: val mIoU {final['val_miou']:.4f} after {trainer.epoch} epoch(s); {folder}")
    return {"history": history, "final": final}


def _spec(folder: Path, model: Any) -> Any:
    """The model spec the engines will resolve for the saved folder (the input contract)."""
    from seg_perception.engines.config import EngineConfig
    from seg_perception.engines.spec import resolve_for_config
    from seg_perception.engines.torch_engine import hf_spec_fields

    config = EngineConfig(
        model=str(folder), backend="torch", label_set=str(folder / "label_set.yaml")
    )
    return resolve_for_config(config, hf_fields=hf_spec_fields(config, model))
