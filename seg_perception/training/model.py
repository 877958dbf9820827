"""The network to train: a transformers semantic-segmentation model and its image processor.

``--model`` names weights to fine-tune (a Hugging Face folder or hub id: ``nvidia/mit-b0``
is SegFormer-B0's ImageNet encoder, the usual start); ``--config`` trains from random
weights (``segformer-b0`` ... ``segformer-b5``, a ``config.json``/YAML with ``model_type``,
or a folder's config), with ``--set key=value`` overriding config fields. Without either,
SegFormer-B0 from scratch.

The configuration is checked before any weights load: its family must have a semantic
segmentation head in transformers (``AutoModelForSemanticSegmentation``), else the run
stops with the families that do. The classes (``num_labels``, ``id2label``) come from the
label set; a pretrained head with another class count is re-initialized, as fine-tuning
does. The image processor (the model's own, else SegFormer's defaults) is saved beside
the weights with the training input size, so the model spec the engines resolve from
the folder is the preprocessing the network was trained with.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from seg_perception.training.labels import IGNORE_INDEX, TrainLabels


class ModelSourceError(ValueError):
    """A model or config that cannot be trained for semantic segmentation."""


@dataclass(frozen=True)
class ModelSource:
    """Where the network comes from (the ``train`` flags)."""

    model: str = ""
    config: str = ""
    overrides: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.model and self.config:
            raise ModelSourceError("give --model (weights to fine-tune) or --config, not both")
        if self.overrides and self.model:
            raise ModelSourceError("--set changes a --config; pretrained --model weights fix it")

    @property
    def pretrained(self) -> bool:
        return bool(self.model)

    def describe(self) -> str:
        if self.model:
            return f"{self.model} (pretrained weights, fine-tuned)"
        sets = f" with {', '.join(self.overrides)}" if self.overrides else ""
        return f"{self.config or 'segformer-b0'}{sets} (random weights)"


def segmentation_families() -> dict[str, str]:
    """model_type -> class of every transformers family with a semantic segmentation head."""
    from transformers.models.auto.modeling_auto import (
        MODEL_FOR_SEMANTIC_SEGMENTATION_MAPPING_NAMES,
    )

    return dict(MODEL_FOR_SEMANTIC_SEGMENTATION_MAPPING_NAMES)


def load_config(source: ModelSource, labels: TrainLabels) -> tuple[Any, int | None]:
    """(transformers config with the label set's classes, the pretrained class count or
    None): no weights are read, so a wrong model fails in a second."""
    config = _pretrained_config(source.model) if source.model else _scratch_config(source)
    families = segmentation_families()
    if config.model_type not in families:
        architectures = ", ".join(getattr(config, "architectures", None) or []) or "no head"
        raise ModelSourceError(
            f"{source.model or source.config} is a '{config.model_type}' model "
            f"({architectures}) without a semantic segmentation head in transformers; "
            f"families that have one: {', '.join(sorted(families))}"
        )
    before = int(config.num_labels) if source.model else None
    names = {i: n for i, n in zip(labels.label_set.ids, labels.label_set.names, strict=True)}
    config.num_labels = labels.num_classes
    config.id2label = names
    config.label2id = {n: i for i, n in names.items()}
    if hasattr(config, "semantic_loss_ignore_index"):
        config.semantic_loss_ignore_index = IGNORE_INDEX
    return config, before


def _pretrained_config(name: str) -> Any:
    from transformers import AutoConfig

    with _quiet():
        try:
            return AutoConfig.from_pretrained(name, local_files_only=True)
        except (OSError, ValueError) as error:
            if Path(name).exists():
                raise ModelSourceError(
                    f"--model {name}: not a Hugging Face folder ({error})"
                ) from None
        try:
            return AutoConfig.from_pretrained(name)
        except (OSError, ValueError) as error:
            raise ModelSourceError(
                f"--model {name}: not a folder, not in the Hugging Face cache, and the hub is "
                f"unreachable or has no such model ({type(error).__name__}); download it on a "
                "connected machine (huggingface-cli download NAME --local-dir DIR) or train "
                "from scratch with --config segformer-b0"
            ) from None


def _scratch_config(source: ModelSource) -> Any:
    from transformers import AutoConfig, SegformerConfig

    from seg_perception.engines.torch_engine import SEGFORMER_VARIANTS

    spec = source.config or "segformer-b0"
    variant = spec.lower().removeprefix("segformer-")
    path = Path(spec)
    if variant in SEGFORMER_VARIANTS and not path.exists():
        config = SegformerConfig(**SEGFORMER_VARIANTS[variant])
    elif path.is_dir():
        with _quiet():
            try:
                config = AutoConfig.from_pretrained(str(path), local_files_only=True)
            except (OSError, ValueError) as error:
                raise ModelSourceError(
                    f"--config {path}: no usable config.json ({error})"
                ) from None
    elif path.is_file():
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))  # JSON is YAML too
        except yaml.YAMLError as error:
            raise ModelSourceError(f"--config {path}: not JSON or YAML: {error}") from None
        if not isinstance(data, dict) or "model_type" not in data:
            raise ModelSourceError(f"--config {path}: a config needs a 'model_type' key")
        data = dict(data)
        try:
            config = AutoConfig.for_model(data.pop("model_type"), **data)
        except (ValueError, KeyError) as error:
            raise ModelSourceError(f"--config {path}: {error}") from None
    else:
        raise ModelSourceError(
            f"--config {spec}: not a file or folder; use segformer-b0 ... segformer-b5, a "
            "config.json / YAML with model_type, or a Hugging Face folder"
        )
    for item in source.overrides:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise ModelSourceError(f"--set {item}: expected KEY=VALUE")
        if not hasattr(config, key):
            raise ModelSourceError(f"--set {key}: the {config.model_type} config has no such field")
        setattr(config, key, yaml.safe_load(text))
    return config


def build_model(source: ModelSource, config: Any, seed: int) -> Any:
    """The model: pretrained weights (head re-initialized when the classes differ) or
    random weights drawn from ``seed``."""
    import torch
    from transformers import AutoModelForSemanticSegmentation

    with _quiet():
        if source.model:
            local = Path(source.model).exists()
            try:
                return AutoModelForSemanticSegmentation.from_pretrained(
                    source.model, config=config, ignore_mismatched_sizes=True,
                    local_files_only=local,
                )  # fmt: skip
            except (OSError, ValueError) as error:
                raise ModelSourceError(f"--model {source.model}: {error}") from None
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            try:
                return AutoModelForSemanticSegmentation.from_config(config)
            except (ValueError, TypeError) as error:
                raise ModelSourceError(f"--config: cannot build the model: {error}") from None


def load_processor(source: ModelSource, input_size: tuple[int, int] | None) -> tuple[Any, str]:
    """(image processor, a note on where it came from) with the training input size:
    ``input_size`` (h, w) stretches every image to it, as the engines then will; None
    keeps the processor's own size, or the image's own size for a new processor."""
    from transformers import AutoImageProcessor

    folder = source.model or (source.config if Path(source.config).is_dir() else "")
    overrides: dict[str, Any] = {}
    if input_size:
        overrides = {"size": {"height": input_size[0], "width": input_size[1]}, "do_resize": True}
    if folder:
        with _quiet(), contextlib.suppress(OSError, ValueError):
            local = Path(folder).exists()
            processor = AutoImageProcessor.from_pretrained(
                folder, local_files_only=local, **overrides
            )
            return processor, f"the image processor of {folder}"
    try:
        from transformers import SegformerImageProcessorPil as Processor
    except ImportError:  # transformers < 5
        from transformers import SegformerImageProcessor as Processor
    processor = Processor(**(overrides or {"do_resize": False}))
    note = "SegFormer's image processor (ImageNet mean/std, 1/255)"
    if source.model:
        note += f": {source.model} has none, so its normalization is assumed"
    return processor, note


def save_folder(model: Any, processor: Any, folder: Path, labels: TrainLabels) -> None:
    """A Hugging Face folder (config, weights, processor) plus the label set with colors."""
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(folder))
    processor.save_pretrained(str(folder))
    (folder / "label_set.yaml").write_text(
        yaml.safe_dump(labels.label_set.to_dict(), sort_keys=False), encoding="utf-8"
    )


def fingerprint(model: Any) -> dict[str, Any]:
    """What a checkpoint must share with the model to be resumed into it."""
    return {
        "model_type": model.config.model_type,
        "num_labels": int(model.config.num_labels),
        "shapes": {k: list(v.shape) for k, v in model.state_dict().items()},
    }


def fingerprint_mismatch(saved: dict[str, Any], current: dict[str, Any]) -> str:
    """Empty when they match, else what differs, in a few words."""
    if saved.get("model_type") != current["model_type"]:
        return f"a '{saved.get('model_type')}' model, this run builds '{current['model_type']}'"
    if saved.get("num_labels") != current["num_labels"]:
        return f"{saved.get('num_labels')} classes, this run has {current['num_labels']}"
    old, new = saved.get("shapes", {}), current["shapes"]
    for key in sorted(set(old) | set(new)):
        if old.get(key) != new.get(key):
            return f"parameter {key} is {old.get(key)} there, {new.get(key)} here"
    return ""


def describe_model(model: Any) -> str:
    count = sum(p.numel() for p in model.parameters())
    sizes = getattr(model.config, "hidden_sizes", None)
    extra = f", hidden sizes {sizes}" if sizes else ""
    return f"{type(model).__name__} ({count / 1e6:.2f} M parameters{extra})"


@contextlib.contextmanager
def _quiet() -> Any:
    """transformers' notices (torchvision missing, newly initialized weights) are
    replaced by this package's own one-line notes."""
    from transformers.utils import logging as hf_logging

    level = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)
