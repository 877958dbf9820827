"""``seg-perception train`` and ``seg-perception make-images``.

``train`` checks everything it can before the first step, cheapest first, and stops with
one line naming the problem: the label set, the data folders (layout, image/label names),
the model's configuration (it must have a semantic segmentation head), the output folder
and resume checkpoint, every label PNG (sizes, ids the label set does not cover), then the
checkpoint's fit to the model. Then it trains, validates each epoch, and exports the ONNX
model with its spec, verified against PyTorch.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from seg_perception.training.generated import write_generated_images

TRAIN_EPILOG = """output folder (--out):
  model/            Hugging Face folder: config.json, model.safetensors,
                    preprocessor_config.json (the training input size), label_set.yaml
  model.onnx        the exported network (dynamic H/W where possible), spec in metadata
  model.yaml        its model spec as a sidecar YAML (engines read it beside the .onnx)
  checkpoint.pt     weights, optimizer, schedule and history of the last epoch (--resume)
  history.json      train loss, validation mIoU and per-class IoU per epoch
examples:
  seg-perception make-images gen/train --scenes 400 --seed 1000
  seg-perception train --data gen/train --val gen/val --config segformer-b0 --out run1
  seg-perception train --data kitti/training --label-set cityscapes-labelids \\
      --model nvidia/mit-b0 --input-size 384 1248 --out run2"""


def add_parsers(commands: argparse._SubParsersAction) -> None:
    train = commands.add_parser(
        "train",
        help="fine-tune (or train from a config) a Hugging Face semantic segmentation model on "
        "folders of images and label PNGs; export ONNX + spec",
        description="Train a transformers semantic segmentation model (SegFormer by default) on "
        "image/label folders (Cityscapes, KITTI semantics or images/ + labels/ layouts), "
        "validate mIoU each epoch, checkpoint, and export a verified ONNX with its model spec.",
        epilog=TRAIN_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    data = train.add_argument_group("data")
    data.add_argument(
        "--data", action="append", required=True, metavar="DIR", help="training folder (repeatable)"
    )
    data.add_argument(
        "--val",
        action="append",
        default=[],
        metavar="DIR",
        help="validation folder (repeatable; default: --holdout of the training images, or a "
        "Cityscapes root's val split)",
    )
    data.add_argument("--layout", default="auto", choices=["auto", "cityscapes", "kitti", "plain"])
    data.add_argument(
        "--labels",
        default="",
        help="label folder (kitti: semantic, plain: labels) or Cityscapes gtFine kind "
        "(labelTrainIds; labelIds needs --label-set cityscapes-labelids)",
    )
    data.add_argument("--split", default="", help="Cityscapes split of --data (e.g. train)")
    data.add_argument(
        "--label-set",
        default="cityscapes",
        help="cityscapes, cityscapes-labelids or a label-set YAML (classes 0..N-1, optional "
        "'ignore' ids and 'remap' dataset id -> class id); default: %(default)s",
    )
    data.add_argument(
        "--holdout",
        type=float,
        default=0.1,
        help="share of the training images validated on without --val",
    )
    data.add_argument(
        "--val-limit", type=int, default=0, help="validate on at most this many images (0: all)"
    )
    model = train.add_argument_group("model")
    model.add_argument(
        "--model",
        default="",
        help="weights to fine-tune: Hugging Face folder or hub id (nvidia/mit-b0)",
    )
    model.add_argument(
        "--config",
        default="",
        help="train from random weights: segformer-b0 ... segformer-b5, a config.json/YAML with "
        "model_type, or a folder (default without --model: segformer-b0)",
    )
    model.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        dest="overrides",
        help="override a --config field, e.g. hidden_sizes=[16,32,64,128]",
    )
    model.add_argument(
        "--input-size",
        type=int,
        nargs=2,
        metavar=("H", "W"),
        help="network input size: images are stretched to it in training and at run time "
        "(default: the model processor's, else each image's own size)",
    )
    model.add_argument("--seed", type=int, default=0, help="weights, order and augmentation")
    augment = train.add_argument_group("augmentation")
    augment.add_argument(
        "--crop",
        type=int,
        nargs=2,
        metavar=("H", "W"),
        help="training crop (default: the input size, at most 512 a side)",
    )
    augment.add_argument(
        "--scale-range",
        type=float,
        nargs=2,
        default=(0.5, 2.0),
        metavar=("LOW", "HIGH"),
        help="random scale (default: 0.5 2.0)",
    )
    augment.add_argument(
        "--balanced-crops",
        type=float,
        default=0.0,
        metavar="P",
        help="share of crops centred on a class drawn uniformly from the image's classes, so "
        "rare classes are seen as often as common ones (default: 0, random crops)",
    )
    augment.add_argument(
        "--repeat-rare",
        type=float,
        default=0.0,
        metavar="T",
        help="repeat-factor sampling (LVIS): an image holding a class found in a share f < T "
        "of the images is seen sqrt(T/f) times per epoch (e.g. 0.3; default: 0, off)",
    )
    augment.add_argument("--no-flip", action="store_true")
    augment.add_argument("--no-photometric", action="store_true")
    loop = train.add_argument_group("optimization")
    loop.add_argument("--epochs", type=int, default=10)
    loop.add_argument("--batch-size", type=int, default=8)
    loop.add_argument(
        "--lr",
        type=float,
        help="AdamW learning rate (default: 6e-5 with --model, 1e-3 from scratch)",
    )
    loop.add_argument("--weight-decay", type=float, default=0.01)
    loop.add_argument("--warmup", type=float, default=0.05, help="warm-up share of the steps")
    loop.add_argument("--class-weights", default="none", choices=["none", "sqrt-inverse"])
    loop.add_argument("--device", default="auto", help="auto (cuda if present), cpu, cuda[:N]")
    loop.add_argument("--no-amp", action="store_true", help="fp32 on CUDA (default: AMP fp16)")
    loop.add_argument(
        "--workers", type=int, default=-1, help="data loader processes (default: min(4, cores / 2))"
    )
    loop.add_argument("--threads", type=int, default=0, help="CPU threads (0: torch's default)")
    train.add_argument("--out", required=True, help="output folder (see below)")
    train.add_argument(
        "--resume",
        nargs="?",
        const="auto",
        default="",
        metavar="CHECKPOINT",
        help="continue from a checkpoint (default: OUT/checkpoint.pt) up to --epochs",
    )
    train.add_argument("--no-export", action="store_true", help="skip the ONNX export")
    train.set_defaults(func=_train)

    make = commands.add_parser(
        "make-images",
        help="write generated street scenes (camera image + exact label PNG) as a training "
        "folder (images/ + labels/ + label_set.yaml)",
    )
    make.add_argument("out", help="output folder (its images/ and labels/ must be empty)")
    make.add_argument("--scenes", type=int, default=100)
    make.add_argument("--seed", type=int, default=0, help="first scene seed (then +1 each)")
    make.add_argument(
        "--scale",
        type=float,
        default=1.0,
        help="image size relative to the demo camera's 1242x375 (tests)",
    )
    make.set_defaults(func=_make_images)


def _make_images(args: argparse.Namespace) -> int:
    out = write_generated_images(args.out, args.scenes, args.seed, args.scale)
    last = args.seed + args.scenes - 1
    print(f"wrote {args.scenes} generated scenes (seeds {args.seed}-{last}) to {out}")
    return 0


def _train(args: argparse.Namespace) -> int:
    from seg_perception.training.run import TrainRequest, run_training

    request = TrainRequest(
        data=[Path(d) for d in args.data],
        val=[Path(d) for d in args.val],
        layout=args.layout,
        labels=args.labels,
        split=args.split,
        label_set=args.label_set,
        holdout=args.holdout,
        model=args.model,
        config=args.config,
        overrides=tuple(args.overrides),
        input_size=tuple(args.input_size) if args.input_size else None,
        crop=tuple(args.crop) if args.crop else None,
        scale_range=tuple(args.scale_range),
        flip=not args.no_flip,
        photometric=not args.no_photometric,
        balanced_crops=args.balanced_crops,
        repeat_rare=args.repeat_rare,
        out=Path(args.out),
        resume=args.resume,
        export=not args.no_export,
        settings=dict(
            epochs=args.epochs,
            batch_size=args.batch_size,
            lr=args.lr,
            weight_decay=args.weight_decay,
            warmup=args.warmup,
            device=args.device,
            amp=not args.no_amp,
            workers=args.workers,
            threads=args.threads,
            seed=args.seed,
            class_weights=args.class_weights,
            val_limit=args.val_limit,
        ),
    )
    from seg_perception.training.progress import library_bars_off

    with library_bars_off():
        run_training(request)
    return 0
