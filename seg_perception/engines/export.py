"""Export a SegFormer to ONNX (dynamic height/width) and check it against PyTorch.

The exported file carries the label set and preprocessing as ONNX metadata, so ONNX
Runtime and TensorRT engines built from it know their class names without extra flags.
The check runs both on the same inputs and fails the export when the largest logit
difference or the argmax disagreement exceeds the tolerances.
"""

from __future__ import annotations

import json
import logging
import warnings
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from seg_perception.engines.base import EngineLoadError
from seg_perception.engines.config import EngineConfig
from seg_perception.engines.spec import (
    META_LABEL_SET,
    META_SPEC,
    resolve_for_config,
    to_onnx_metadata,
)
from seg_perception.engines.torch_engine import label_set_of, load_segformer

LOG = logging.getLogger(__name__)


@dataclass
class ExportCheck:
    """PyTorch vs ONNX Runtime on one input size."""

    height: int
    width: int
    max_abs_logit_diff: float
    argmax_agreement: float


@dataclass
class ExportReport:
    path: str
    opset: int
    checks: list[ExportCheck]

    def passed(self, max_diff: float, min_agreement: float) -> bool:
        return all(
            c.max_abs_logit_diff < max_diff and c.argmax_agreement >= min_agreement
            for c in self.checks
        )


class _LogitsOnly:
    """Wraps a transformers model so the traced graph returns only the logits tensor."""

    def __new__(cls, model: Any) -> Any:
        import torch

        class Wrapper(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.model = model

            def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
                return self.model(pixel_values=pixel_values).logits

        return Wrapper().eval()


def compare_with_torch(
    model: Any, onnx_path: Path, sizes: list[tuple[int, int]], seed: int = 0
) -> list[ExportCheck]:
    """Run PyTorch and ONNX Runtime on the same random normalized inputs of each size."""
    import onnxruntime as ort
    import torch

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    rng = np.random.default_rng(seed)
    checks = []
    for height, width in sizes:
        batch = rng.standard_normal((1, 3, height, width)).astype(np.float32)
        with torch.inference_mode():
            expected = model(pixel_values=torch.from_numpy(batch)).logits.numpy()
        actual = session.run(None, {name: batch})[0]
        checks.append(
            ExportCheck(
                height,
                width,
                float(np.abs(expected - actual).max()),
                float((expected.argmax(1) == actual.argmax(1)).mean()),
            )
        )
    return checks


def export_onnx(
    config: EngineConfig,
    output: str | Path,
    opset: int = 17,
    check_sizes: list[tuple[int, int]] | None = None,
    max_diff: float = 1e-3,
    min_agreement: float = 0.999,
) -> ExportReport:
    """Export ``config.model`` to ``output`` with dynamic H/W and verify it."""
    import torch

    model = load_segformer(config).float().eval()
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    net_h, net_w = config.input_size or (512, 512)
    example = torch.zeros(1, 3, net_h, net_w)
    LOG.info("exporting %s to %s (opset %d, dynamic H/W)", config.model, output, opset)
    temporary = output.with_suffix(".onnx.partial")
    with warnings.catch_warnings():
        # The TorchScript exporter (dynamo=False) is deprecated, but it writes one file with
        # dynamic H/W and needs no onnxscript; its trace warnings concern control flow that
        # is constant for SegFormer.
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        _export(model, example, temporary, opset)
    _write_metadata(temporary, config, model)
    sizes = check_sizes or [(net_h, net_w)]
    checks = compare_with_torch(model, temporary, sizes, seed=config.seed)
    report = ExportReport(str(output), opset, checks)
    if not report.passed(max_diff, min_agreement):
        temporary.unlink(missing_ok=True)
        raise EngineLoadError(
            "exported ONNX does not match PyTorch: " + "; ".join(f"{asdict(c)}" for c in checks)
        )
    temporary.replace(output)
    return report


def _export(model: Any, example: Any, path: Path, opset: int) -> None:
    import torch

    torch.onnx.export(
        _LogitsOnly(model),
        (example,),
        str(path),
        input_names=["pixel_values"],
        output_names=["logits"],
        dynamic_axes={
            "pixel_values": {0: "batch", 2: "height", 3: "width"},
            "logits": {0: "batch", 2: "logits_height", 3: "logits_width"},
        },
        opset_version=opset,
        dynamo=False,
    )


def _write_metadata(path: Path, config: EngineConfig, model: Any) -> None:
    """The model's spec (and, for older readers, its label set) as ONNX metadata."""
    import onnx

    from seg_perception.engines.torch_engine import hf_spec_fields

    spec = resolve_for_config(config, hf_fields=hf_spec_fields(config, model))
    spec = replace(spec, input_name="pixel_values", output_name="logits")
    proto = onnx.load(str(path))
    entries = {
        META_SPEC: to_onnx_metadata(spec),
        META_LABEL_SET: json.dumps(label_set_of(model).to_dict()),
    }
    for key, value in entries.items():
        prop = proto.metadata_props.add()
        prop.key, prop.value = key, value
    onnx.save(proto, str(path))
