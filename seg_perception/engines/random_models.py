"""Random-weight Mask2Former, OneFormer, CLIPSeg and SAM models, for tests and benchmarks.

No model hub is reachable on the build machines, so these families are built from configs,
like ``random:segformer-b0``. ``random:<family>`` is tiny (tests: well under a second per
image on one core); ``random:<family>-<variant>`` has the published architecture's sizes
(benchmarks: the cost of the real network, with meaningless weights):

* ``random:mask2former`` / ``random:mask2former-swin-tiny``
* ``random:oneformer`` / ``random:oneformer-swin-tiny``
* ``random:clipseg`` / ``random:clipseg-rd64`` (ViT-B/16 with a 64-wide decoder, as
  CIDAS/clipseg-rd64-refined)
* ``random:sam`` / ``random:sam-vit-base`` (as facebook/sam-vit-base); both take SAM's real
  1024x1024 input, so pre- and post-processing cost what they cost with trained weights

Why the weights are redrawn: transformers' own initialization gives degenerate universal
models -- every query's mask is nearly the same pattern (correlation ~0.75) and most queries
predict "no object", so the semantic map holds one class and the panoptic map no segment,
and a constant map would agree with any post-processing. So linear and convolution weights
get unit gain, the learned queries a spread of 5 (OneFormer's queries otherwise collapse to
one, correlation 0.97), and three layers are calibrated on a generated street image the way training
would leave them: the mask features and the mask and class heads' inputs are whitened (so
queries' masks are different patterns and their classes differ), a constant mask-feature
channel gives each mask a negative offset (each covers ~15 % of the image, as objects do),
and class logits get a spread of 3. SAM's initialization is degenerate too (its vision
encoder's ``initializer_range`` is 1e-10: the image embedding is ~1e-21 and every mask logit
~0, so a mask is decided by rounding noise): its weights get unit gain as well, including the
mask decoder's transposed convolutions, and its absolute position embedding a unit spread, so
masks depend on where the prompt is (mask logits then have a spread ~0.4, and three candidates
of different sizes). Seeded: the same name and seed give the same weights.

OneFormer and CLIPSeg need a CLIP tokenizer. :func:`tiny_clip_tokenizer` builds one from a
vocabulary written here (the 256 byte-level symbols, alone and word-final, plus merges that
make OneFormer's task words single tokens), so nothing is downloaded; it is saved with the
model folder like a real checkpoint's tokenizer.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from seg_perception.core.labels import LabelSet
from seg_perception.engines.base import EngineLoadError
from seg_perception.engines.config import RANDOM_PREFIX
from seg_perception.engines.preprocess import IMAGENET_MEAN, IMAGENET_STD

#: random:<name> -> (model_type, variant)
RANDOM_MODELS = {
    "mask2former": ("mask2former", "tiny"),
    "mask2former-swin-tiny": ("mask2former", "swin-tiny"),
    "oneformer": ("oneformer", "tiny"),
    "oneformer-swin-tiny": ("oneformer", "swin-tiny"),
    "clipseg": ("clipseg", "tiny"),
    "clipseg-rd64": ("clipseg", "rd64"),
    "sam": ("sam", "tiny"),
    "sam-vit-base": ("sam", "vit-base"),
}
#: Words that become single tokens (OneFormer's task prompts).
TASK_WORDS = ("the", "task", "is", "semantic", "panoptic", "instance")
#: Default processor sizes: transformers' own (Mask2Former/OneFormer 800/1333, CLIPSeg 352,
#: SAM's longest edge 1024, which is also its model's ``image_size``).
DEFAULT_SIZES: dict[str, dict[str, int]] = {
    "mask2former": {"shortest_edge": 800, "longest_edge": 1333},
    "oneformer": {"shortest_edge": 800, "longest_edge": 1333},
    "clipseg": {"height": 352, "width": 352},
    "sam": {"longest_edge": 1024},
}


def random_model_type(spec: str) -> str | None:
    """The model_type of a ``random:`` name of this module, or None."""
    entry = RANDOM_MODELS.get(spec[len(RANDOM_PREFIX) :].lower())
    return entry[0] if entry else None


def tiny_clip_tokenizer(words: tuple[str, ...] = TASK_WORDS) -> Any:
    """A CLIPTokenizer over the byte-level alphabet, with ``words`` as single tokens."""
    from tokenizers import pre_tokenizers
    from transformers import CLIPTokenizer

    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    vocab = {symbol: i for i, symbol in enumerate(alphabet)}
    vocab.update({symbol + "</w>": len(alphabet) + i for i, symbol in enumerate(alphabet)})
    merges: list[tuple[str, str]] = []
    for word in words:
        pieces = [*word[:-1], word[-1] + "</w>"]
        while len(pieces) > 1:
            pair = (pieces[0], pieces[1])
            if pair not in merges:
                merges.append(pair)
            pieces = [pieces[0] + pieces[1], *pieces[2:]]
            vocab.setdefault(pieces[0], len(vocab))
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    return CLIPTokenizer(vocab=vocab, merges=merges)


def street_image(height: int = 120, width: int = 360, seed: int = 0) -> np.ndarray:
    """A small street-like RGB image (sky, road, blobs, noise): structure for the models."""
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[0:height, 0:width]
    image = np.empty((height, width, 3), dtype=np.float32)
    image[:] = (70, 110, 170)
    image[rows > 0.55 * height] = (95, 90, 92)
    for _ in range(7):
        cy, cx = rng.uniform(0.3 * height, 0.9 * height), rng.uniform(0, width)
        radius = rng.uniform(0.08, 0.25) * height
        image[(rows - cy) ** 2 + (cols - cx) ** 2 < radius**2] = rng.uniform(0, 255, 3)
    image += rng.normal(0, 6, image.shape)
    return np.clip(image, 0, 255).astype(np.uint8)


# --------------------------------------------------------------------------- configs
def _swin(variant: str) -> Any:
    from transformers import SwinConfig

    stages = ["stage1", "stage2", "stage3", "stage4"]
    if variant == "tiny":
        return SwinConfig(embed_dim=16, depths=[1, 1, 1, 1], num_heads=[1, 1, 2, 2],
                          window_size=4, out_features=stages)  # fmt: skip
    return SwinConfig(embed_dim=96, depths=[2, 2, 6, 2], num_heads=[3, 6, 12, 24],
                      window_size=7, out_features=stages)  # fmt: skip


def _labels(count: int) -> dict[str, Any]:
    labels = LabelSet.cityscapes() if count == 19 else None
    names = list(labels.names) if labels else [f"class_{i}" for i in range(count)]
    id2label = dict(enumerate(names))
    label2id = {v: k for k, v in id2label.items()}
    return {"num_labels": count, "id2label": id2label, "label2id": label2id}


def _sam_config(variant: str, image_size: int) -> Any:
    """SAM: ViT-B as facebook/sam-vit-base (SamConfig's defaults), or a 2-layer, 32-wide
    one (window attention then one global layer, as SAM alternates them) at ``image_size``."""
    from transformers import SamConfig

    if variant != "tiny":
        vision = {"image_size": image_size}
        return SamConfig(vision_config=vision, prompt_encoder_config=vision)
    vision = dict(hidden_size=32, output_channels=32, num_hidden_layers=2, num_attention_heads=2,
                  mlp_dim=64, window_size=8, global_attn_indexes=[1], num_pos_feats=16,
                  image_size=image_size)  # fmt: skip
    prompt = dict(hidden_size=32, mask_input_channels=4, image_size=image_size)
    decoder = dict(hidden_size=32, mlp_dim=64, num_hidden_layers=2, num_attention_heads=2,
                   iou_head_hidden_dim=32)  # fmt: skip
    return SamConfig(vision_config=vision, prompt_encoder_config=prompt,
                     mask_decoder_config=decoder)  # fmt: skip


def _config(model_type: str, variant: str, tokenizer: Any, image_size: int = 1024) -> Any:
    from transformers import CLIPSegConfig, Mask2FormerConfig, OneFormerConfig

    if model_type == "sam":
        return _sam_config(variant, image_size)
    tiny = variant == "tiny"
    if model_type == "mask2former":
        small = dict(feature_size=32, mask_feature_size=32, hidden_dim=32,
                     encoder_feedforward_dim=64, encoder_layers=1, decoder_layers=2,
                     num_attention_heads=2, dim_feedforward=64, num_queries=16)  # fmt: skip
        return Mask2FormerConfig(backbone_config=_swin(variant), **(small if tiny else {}),
                                 **_labels(6 if tiny else 19))  # fmt: skip
    if model_type == "oneformer":
        small = dict(conv_dim=32, mask_dim=32, hidden_dim=32, encoder_feedforward_dim=64,
                     encoder_layers=1, decoder_layers=3, num_attention_heads=2,
                     dim_feedforward=64, num_queries=16, text_encoder_width=32,
                     text_encoder_num_layers=1, text_encoder_n_ctx=4,
                     query_dec_layers=1)  # fmt: skip
        return OneFormerConfig(backbone_config=_swin(variant), **(small if tiny else {}),
                               **_labels(6 if tiny else 19))  # fmt: skip
    ids = {
        "vocab_size": len(tokenizer),
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
    }
    if not tiny:
        return CLIPSegConfig(text_config=ids, use_complex_transposed_convolution=True)
    text = dict(ids, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                num_attention_heads=2)  # fmt: skip
    vision = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=3,
                  num_attention_heads=2, patch_size=16, image_size=96)  # fmt: skip
    return CLIPSegConfig(text_config=text, vision_config=vision, projection_dim=16,
                         reduce_dim=16, extract_layers=[0, 1, 2], decoder_num_attention_heads=2,
                         decoder_intermediate_size=32, conditional_layer=0)  # fmt: skip


def _processor(model_type: str, tokenizer: Any, size: dict[str, int] | None) -> Any:
    """The family's own processor (PIL backend: there is no CPU torchvision)."""
    from transformers import (
        CLIPSegProcessor,
        Mask2FormerImageProcessorPil,
        OneFormerImageProcessorPil,
        OneFormerProcessor,
        SamImageProcessorPil,
        SamProcessor,
        ViTImageProcessorPil,
    )

    size = dict(size or DEFAULT_SIZES[model_type])
    if model_type == "sam":  # pads to a square of the longest edge: the model's image_size
        edge = int(size["longest_edge"])
        pad = {"height": edge, "width": edge}
        return SamProcessor(SamImageProcessorPil(size={"longest_edge": edge}, pad_size=pad))
    if model_type == "mask2former":
        return Mask2FormerImageProcessorPil(size=size)
    if model_type == "oneformer":
        return OneFormerProcessor(OneFormerImageProcessorPil(size=size), tokenizer)
    images = ViTImageProcessorPil(size=size, image_mean=list(IMAGENET_MEAN),
                                  image_std=list(IMAGENET_STD))  # fmt: skip
    return CLIPSegProcessor(image_processor=images, tokenizer=tokenizer)


def build_random_model(spec: str, seed: int = 0, size: dict[str, int] | None = None) -> tuple:
    """(model, processor, tokenizer or None) for ``random:<name>`` (see the module docstring).

    ``size`` overrides the processor's ``size`` (tests use small inputs); for SAM it is
    ``{"longest_edge": n}`` and sets the model's ``image_size`` too, which must equal it.
    """
    import torch
    from transformers import (
        CLIPSegForImageSegmentation,
        Mask2FormerForUniversalSegmentation,
        OneFormerForUniversalSegmentation,
        SamModel,
    )

    name = spec[len(RANDOM_PREFIX) :].lower()
    if name not in RANDOM_MODELS:
        raise EngineLoadError(f"unknown random model '{spec}'")
    model_type, variant = RANDOM_MODELS[name]
    tokenizer = tiny_clip_tokenizer() if model_type in ("oneformer", "clipseg") else None
    edge = int((size or DEFAULT_SIZES["sam"]).get("longest_edge", 1024))
    config = _config(model_type, variant, tokenizer, edge if model_type == "sam" else 1024)
    classes = {"mask2former": Mask2FormerForUniversalSegmentation,
               "oneformer": OneFormerForUniversalSegmentation,
               "clipseg": CLIPSegForImageSegmentation, "sam": SamModel}  # fmt: skip
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = classes[model_type](config).eval()
    if model_type == "sam":
        _sam_weights(model, seed)
    elif model_type != "clipseg":
        _calibrate_universal(model, model_type, tokenizer, seed)
    model.config.name_or_path = spec
    return model, _processor(model_type, tokenizer, size), tokenizer


def save_random_model(spec: str, folder: str | Path, seed: int = 0,
                      size: dict[str, int] | None = None) -> Path:  # fmt: skip
    """Save ``random:<name>`` as a Hugging Face folder: config, weights, the processor's
    config and (OneFormer, CLIPSeg) the tokenizer, as a real checkpoint is laid out."""
    folder = Path(folder)
    model, processor, _ = build_random_model(spec, seed, size)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


# --------------------------------------------------------------------------- weights
def _calibrate_universal(model: Any, model_type: str, tokenizer: Any, seed: int) -> None:
    """Unit-gain weights, then whitened mask features, mask and class heads (docstring)."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    _unit_gain(model, generator)
    inputs = _calibration_inputs(model, model_type, tokenizer)
    if model_type == "mask2former":
        heads = model.model.transformer_module.decoder.mask_predictor.mask_embedder
        class_head = model.class_predictor
    else:
        heads = model.model.transformer_module.decoder.mask_embed
        class_head = model.model.transformer_module.decoder.class_embed
    projection = model.model.pixel_level_module.decoder.mask_projection
    mask_head = [m for m in heads.modules() if isinstance(m, torch.nn.Linear)][-1]
    _whiten(model, projection, inputs, 1.0, pixels=True)
    with torch.no_grad():  # channel 0: constant, so mask logits get an offset per query
        projection.weight[0] = 0.0
        projection.bias[0] = 1.0
    _whiten(model, mask_head, inputs, 1.0, pixels=False)
    with torch.no_grad():
        mask_head.weight[0] = 0.0
        mask_head.bias[0] = -(float(mask_head.weight.shape[0]) ** 0.5)
    _whiten(model, class_head, inputs, 3.0, pixels=False)


def _sam_weights(model: Any, seed: int) -> None:
    """Unit-gain weights, transposed convolutions included, and a unit-spread absolute
    position embedding (SAM's own initialization is degenerate: module docstring)."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    _unit_gain(model, generator)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.ConvTranspose2d):  # weight: (in, out, k, k)
                weight = torch.randn(module.weight.shape, generator=generator)
                module.weight.copy_(weight / module.weight.shape[0] ** 0.5)
                module.bias.copy_(0.1 * torch.randn(module.bias.shape, generator=generator))
        position = model.vision_encoder.pos_embed
        if position is not None:
            position.copy_(torch.randn(position.shape, generator=generator))


def _unit_gain(model: Any, generator: Any) -> None:
    import torch

    norms = (torch.nn.LayerNorm, torch.nn.GroupNorm, torch.nn.BatchNorm2d)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.Conv2d | torch.nn.Linear):
                fan_in = module.weight[0].numel()
                module.weight.copy_(torch.randn(module.weight.shape, generator=generator))
                module.weight.div_(fan_in**0.5)
                if module.bias is not None:
                    module.bias.copy_(0.1 * torch.randn(module.bias.shape, generator=generator))
            elif isinstance(module, norms) and module.weight is not None:
                module.weight.copy_(1 + 0.1 * torch.randn(module.weight.shape, generator=generator))
                module.bias.copy_(0.1 * torch.randn(module.bias.shape, generator=generator))
        for name, parameter in model.named_parameters():
            if "queries" in name:  # learned queries: distinct enough to stay distinct
                parameter.copy_(5.0 * torch.randn(parameter.shape, generator=generator))


def _calibration_inputs(model: Any, model_type: str, tokenizer: Any) -> dict[str, Any]:
    import torch

    images = np.stack([street_image(64, 192, seed=1000 + i) for i in range(4)])
    pixels = (images / np.float32(255) - np.float32(IMAGENET_MEAN)) / np.float32(IMAGENET_STD)
    inputs = {"pixel_values": torch.from_numpy(pixels.transpose(0, 3, 1, 2).astype(np.float32))}
    if model_type == "oneformer":
        from seg_perception.engines.universal_engine import task_tokens

        tokens = task_tokens(tokenizer, "semantic", model.config.task_seq_len)
        inputs["task_inputs"] = tokens.expand(len(images), -1)
    return inputs


def _whiten(model: Any, layer: Any, inputs: dict[str, Any], scale: float, pixels: bool) -> None:
    """Rows of ``layer`` of norm ``scale`` over the whitened input it saw last on ``inputs``:
    outputs have spread ``scale`` and zero mean, and distinct rows are uncorrelated."""
    import torch

    seen: dict[str, Any] = {}
    hook = layer.register_forward_hook(lambda _m, args, _o: seen.__setitem__("x", args[0]))
    with torch.no_grad():
        model(**inputs)
    hook.remove()
    x = seen["x"].detach().double()
    x = x.transpose(0, 1).flatten(1).T if pixels else x.reshape(-1, x.shape[-1])
    mean = x.mean(0)
    cov = torch.cov(x.T)
    cov = cov + 0.05 * cov.trace() / len(cov) * torch.eye(len(cov), dtype=torch.float64)
    values, vectors = torch.linalg.eigh(cov)
    inverse_sqrt = vectors @ torch.diag(values.clamp_min(1e-12) ** -0.5) @ vectors.T
    weight = layer.weight.detach().double().reshape(layer.weight.shape[0], -1)
    weight = weight / weight.norm(dim=1, keepdim=True).clamp_min(1e-12) * scale
    weight = weight @ inverse_sqrt
    with torch.no_grad():
        layer.weight.copy_(weight.reshape(layer.weight.shape).float())
        layer.bias.copy_((-weight @ mean).float())
