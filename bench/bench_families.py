"""Segmentation families on the CPU: Mask2Former, OneFormer, CLIPSeg, SAM beside SegFormer-B0.

Random weights (no trained weights can be downloaded here) in the published architectures'
sizes: SegFormer-B0, Mask2Former and OneFormer with a Swin-T backbone, CLIPSeg rd64 (ViT-B/16)
with 8 prompts, SAM ViT-B, each fed by its own processor's rule (SegFormer: the camera's size;
the universal models: short side 800, long side <= 1333; CLIPSeg: 352x352; SAM: long side
1024, padded to 1024x1024). SAM segments at prompts, not per class, so it gets two rows: its
image encoder (once per image) and one point prompt on an encoded image (prompt mapping,
decoder, the mask upsampled to the camera; what each further click costs). All through PyTorch
on one core, one KITTI-sized frame (1242x375; the real one when ../shared/data is present),
end to end to labels at the camera's resolution. Prints per-stage times, each family's
time as a ratio of SegFormer-B0's, and for the post-processing our time beside
transformers' own functions on the same network outputs (universal models), and for
CLIPSeg our forward (the ViT once per image) beside transformers' (once per prompt).

Run: ``python bench/bench_families.py [--runs N] [--post-runs N] [--threads N] [--tiny]``;
``--tiny`` uses the tiny test models instead (post-processing dominates there).
"""

from __future__ import annotations

import argparse
import sys
import time
import types

import numpy as np
from _common import DATA, pin_one_core

PROMPTS = ("road", "sidewalk", "building", "vegetation", "sky", "person", "car", "bicycle")


def _image():
    import cv2

    path = DATA / "kitti_raw_2011_09_26/image_02/data/0000000000.png"
    if path.is_file():
        return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB), str(path.name)
    from seg_perception.engines.random_models import street_image

    return street_image(375, 1242, seed=0), "generated street image"


def _median_ms(function, runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        function()
        times.append((time.perf_counter() - start) * 1e3)
    return sorted(times)[len(times) // 2]


def _postprocessing(engine, image, runs: int) -> tuple[float, float, float]:
    """(ours: both readouts, transformers' semantic, transformers' panoptic) ms, medians,
    on the same network output at the image's size."""
    from torch.nn import functional
    from transformers import Mask2FormerImageProcessorPil, OneFormerImageProcessorPil
    from transformers.models.oneformer import image_processing_pil_oneformer as oneformer

    def resize(tensor, size, interpolation):  # torchvision's float resize (no CPU wheel)
        return functional.interpolate(tensor, size=list(size), mode="bilinear",
                                      align_corners=False, antialias=True)  # fmt: skip

    oneformer.tvF = types.SimpleNamespace(
        resize=resize, InterpolationMode=types.SimpleNamespace(BILINEAR="bilinear")
    )
    batch, box = engine.preprocessor(image)
    output = engine.model_output(batch, "panoptic")
    classes, probs = engine.queries(output)
    family = {"oneformer": OneFormerImageProcessorPil, "mask2former": Mask2FormerImageProcessorPil}
    processor = family[engine.model_type]()
    size = [image.shape[:2]]
    ours, semantic, panoptic = [], [], []
    for _ in range(runs):  # interleaved: the machine's load hits all three alike
        ours.append(_median_ms(lambda: engine.readouts(classes, probs, box), 1))
        semantic.append(_median_ms(lambda: processor.post_process_semantic_segmentation(
            output, target_sizes=size), 1))  # fmt: skip
        panoptic.append(_median_ms(lambda: processor.post_process_panoptic_segmentation(
            output, label_ids_to_fuse=set(), target_sizes=size), 1))  # fmt: skip
    return tuple(sorted(t)[len(t) // 2] for t in (ours, semantic, panoptic))  # type: ignore[return-value]


def _clipseg_library_forward(engine, image, runs: int) -> float:
    """transformers' CLIPSegForImageSegmentation.forward: the image once per prompt."""
    import torch

    batch, _ = engine.preprocessor(image)
    count = len(engine.prompts)
    pixels = torch.from_numpy(batch).expand(count, -1, -1, -1)
    with torch.inference_mode():
        return _median_ms(
            lambda: engine.model(pixel_values=pixels, conditional_embeddings=engine.conditional),
            runs,
        )


def _sam_rows(config, image, runs: int) -> list[tuple]:
    """SAM's rows: the image encoder (processor + ViT) and one point prompt on a cached
    embedding (prompt mapping + decoder + post_process_masks), medians."""
    from seg_perception.engines import create_engine

    engine = create_engine(config)
    size = (engine.edge, engine.edge)
    point = np.array([[image.shape[1] * 0.5, image.shape[0] * 0.6]])
    engine.segment_prompt(image, points=point)  # warm-up: encoder and decoder

    def encode() -> None:
        engine.clear_cache()
        engine.embed(image)

    encoder = _median_ms(encode, runs)
    enc = engine.encoder_timings
    rows = [("SAM image encoder", size, enc.preprocess, enc.network, 0.0, encoder)]
    prompt = _median_ms(lambda: engine.segment_prompt(image, points=point), max(runs, 5))
    t = engine.timings
    rows.append(("  + per prompt", size, t.preprocess, t.network, t.postprocess, prompt))
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1, help="timed runs after a warm-up")
    parser.add_argument("--threads", type=int, default=1, help="1: pinned to one core")
    parser.add_argument("--post-runs", type=int, default=3, help="post-processing repeats")
    parser.add_argument("--tiny", action="store_true", help="the tiny test models")
    args = parser.parse_args()
    if args.threads == 1:
        pin_one_core()
    import torch
    import transformers

    from seg_perception.engines import EngineConfig, create_engine

    torch.set_num_threads(args.threads)
    transformers.logging.set_verbosity_error()
    image, source = _image()
    suffix = "" if args.tiny else "-swin-tiny"
    models = [
        ("SegFormer-B0", EngineConfig(model="random:segformer-b0", backend="torch")),
        ("Mask2Former", EngineConfig(model=f"random:mask2former{suffix}")),
        ("OneFormer", EngineConfig(model=f"random:oneformer{suffix}")),
        ("CLIPSeg (8 prompts)", EngineConfig(
            model="random:clipseg" + ("" if args.tiny else "-rd64"), prompts=PROMPTS)),
    ]  # fmt: skip
    print(f"image: {source} {image.shape[1]}x{image.shape[0]}; torch threads {args.threads}; "
          f"{args.runs} timed run(s) after a warm-up")  # fmt: skip
    rows, extras = [], []
    for name, config in models:
        engine = create_engine(config)
        network_size = engine.preprocessor(image)[1].network_size
        engine.segment(image)  # warm-up
        total = _median_ms(lambda engine=engine: engine.segment(image), args.runs)
        t = engine.timings
        stages = (t.preprocess, t.network, t.postprocess)
        rows.append((name, network_size, *stages, total))
        if hasattr(engine, "segment_panoptic"):
            engine.segment_panoptic(image)
            panoptic = _median_ms(lambda engine=engine: engine.segment_panoptic(image), args.runs)
            rows.append(("  + panoptic", network_size, engine.timings.preprocess,
                         engine.timings.network, engine.timings.postprocess, panoptic))  # fmt: skip
            ours, their_semantic, their_panoptic = _postprocessing(engine, image, args.post_runs)
            theirs = their_semantic + their_panoptic
            extras.append(f"{name} post-processing to {image.shape[1]}x{image.shape[0]}: ours "
                          f"(semantic + panoptic) {ours:.0f} ms; transformers semantic "
                          f"{their_semantic:.0f} ms + panoptic {their_panoptic:.0f} ms = "
                          f"{theirs:.0f} ms ({theirs / ours:.1f}x)")  # fmt: skip
        if name.startswith("CLIPSeg"):
            theirs = _clipseg_library_forward(engine, image, args.runs)
            extras.append(f"CLIPSeg network, 8 prompts: ours (ViT once) {stages[1]:.0f} ms, "
                          f"transformers' forward (ViT per prompt) {theirs:.0f} ms "
                          f"({theirs / stages[1]:.1f}x)")  # fmt: skip
        del engine
    sam = "random:sam" + ("" if args.tiny else "-vit-base")
    rows += _sam_rows(EngineConfig(model=sam), image, args.runs)
    base = rows[0][5]
    print(f"\n{'family':<22}{'network input':>14}{'pre ms':>9}{'net ms':>10}{'post ms':>9}"
          f"{'total ms':>10}{'x B0':>7}")  # fmt: skip
    for name, size, pre, net, post, total in rows:
        print(f"{name:<22}{size[1]:>8}x{size[0]:<5}{pre:>9.1f}{net:>10.1f}{post:>9.1f}"
              f"{total:>10.1f}{total / base:>7.2f}")  # fmt: skip
    print()
    for line in extras:
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
