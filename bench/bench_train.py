"""Training throughput of ``seg-perception train`` on this CPU (images per second).

For each network it times the training step ``train`` runs (:meth:`Trainer._step`:
forward, loss at label resolution, backward, AdamW, schedule) two ways:

* **step only**: one batch, already decoded and augmented, reused: the network's cost,
  with torch on 1 thread and on its default (one per core);
* **end to end**: batches from the real loader (PNG decoding, random scale/crop, flip,
  photometric changes) in the default number of loader processes, torch on 1 thread:
  the packaged model's training setting;

and the data pipeline alone (samples per second of one process). Networks:

* ``street``: the compact SegFormer of the demo (hidden sizes 16-128, decoder 64) on
  384x384 crops of full-resolution 1242x375 generated frames (README "Training your own
  model");
* ``b0-512``: SegFormer-B0 on 512x512 crops, the usual fine-tuning setting.

On a machine shared with other work, 1 thread can beat the default: a busy core stalls
the other thread at every synchronization.

Run: ``python bench/bench_train.py [--steps N] [--batch-size B] [--only street|b0-512]``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import torch

from seg_perception.engines.preprocess import Preprocessor
from seg_perception.training.augment import AugmentConfig, SegmentationDataset
from seg_perception.training.datasets import DataSource, find_samples
from seg_perception.training.generated import write_generated_images
from seg_perception.training.labels import TrainLabels
from seg_perception.training.loop import Trainer, TrainSettings
from seg_perception.training.model import ModelSource, build_model, load_config

NETWORKS = {
    "street": (
        ("hidden_sizes=[16,32,64,128]", "decoder_hidden_size=64"),
        (384, 384),
    ),
    "b0-512": ((), (512, 512)),
}


def trainer_for(name: str, samples: list, batch: int, folder: Path) -> Trainer:
    overrides, crop = NETWORKS[name]
    labels = TrainLabels.load("cityscapes")
    source = ModelSource(config="segformer-b0", overrides=overrides)
    config, _ = load_config(source, labels)
    model = build_model(source, config, seed=0)
    spec = Preprocessor(input_size=None, resize="none")
    dataset = SegmentationDataset(
        samples, labels, spec, AugmentConfig(crop=crop, scale_range=(0.8, 1.25))
    )
    settings = TrainSettings(epochs=1, batch_size=batch, device="cpu")
    histogram = np.ones(labels.num_classes, dtype=np.int64)
    return Trainer(model, folder, dataset, [], labels, settings, folder, histogram, False)


def images_per_second(trainer: Trainer, steps: int, reuse: bool) -> float:
    loader = iter(trainer._loader(epoch=1))
    batch, targets = next(loader)
    trainer._step(batch, targets)  # warm-up
    done, start = 0, time.perf_counter()
    for _ in range(steps):
        if not reuse:
            try:
                batch, targets = next(loader)
            except StopIteration:
                loader = iter(trainer._loader(epoch=2))
                batch, targets = next(loader)
        trainer._step(batch, targets)
        done += len(batch)
    return done / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--scenes", type=int, default=8, help="generated frames to load")
    parser.add_argument("--only", choices=sorted(NETWORKS))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_generated_images(root / "data", args.scenes, first_seed=9000, progress=False)
        _, samples = find_samples(DataSource(root / "data"))
        probe = SegmentationDataset(
            samples, TrainLabels.load("cityscapes"), Preprocessor(input_size=None, resize="none"),
            AugmentConfig(crop=(384, 384), scale_range=(0.8, 1.25)),
        )  # fmt: skip
        start = time.perf_counter()
        for index in range(len(samples)):
            probe[index]
        data_rate = len(samples) / (time.perf_counter() - start)
        cores = torch.get_num_threads()
        print(f"torch {torch.__version__}, {os.cpu_count()} cores; batch {args.batch_size}, "
              f"{args.steps} steps per figure")  # fmt: skip
        print(f"data pipeline alone (1242x375 PNG -> 384x384 augmented sample): "
              f"{data_rate:.1f} samples/s in one process")  # fmt: skip
        print(f"{'network':<8} {'crop':>8} {'params':>7}   step only, 1 thread   step only, "
              f"{cores} threads   end to end, 1 thread")  # fmt: skip
        for name in [args.only] if args.only else NETWORKS:
            trainer = trainer_for(name, samples, args.batch_size, root)
            params = sum(p.numel() for p in trainer.model.parameters()) / 1e6
            torch.set_num_threads(cores)
            many = images_per_second(trainer, args.steps, reuse=True)
            torch.set_num_threads(1)
            one = images_per_second(trainer, args.steps, reuse=True)
            full = images_per_second(trainer, args.steps, reuse=False)
            torch.set_num_threads(cores)
            crop = "x".join(map(str, NETWORKS[name][1]))
            print(f"{name:<8} {crop:>8} {params:>6.2f}M {one:>14.2f} img/s {many:>14.2f} img/s "
                  f"{full:>14.2f} img/s")  # fmt: skip


if __name__ == "__main__":
    main()
