"""Export a Hugging Face segmentation model to ONNX and check it against PyTorch.

The exported file carries the model spec (label set, preprocessing) as ONNX metadata, so
ONNX Runtime and TensorRT engines built from it need no extra flags. The check runs both
on the same inputs and fails the export when the largest logit difference or the argmax
disagreement exceeds the tolerances.

Height and width are dynamic where the graph allows it. The TorchScript tracer records
the Python branches taken at the example size, so a graph can silently work at that size
only (MobileViT interpolates each feature map to a multiple of its patch size, but only
when it is not one already). Hence the example size is "awkward" (2^k + 1: every stride-2
stage gives an odd size, so such pad-or-interpolate branches are traced, and they are
no-ops at sizes that do not need them), and a dynamic export is checked at a second, very
different size too. A model whose spec fixes its size (SegFormer/BEiT/DPT/UperNet folders
with ``size`` {height, width}) is exported with static height/width when its dynamic graph
fails to export or to generalize (DPT's ViT only takes square inputs).

Adaptive average pooling (the pyramid pooling of BEiT's and UperNet's heads) has no ONNX
operator unless the output size divides the input size, which 3 and 6 rarely do: for the
export each such layer is replaced by the same average written as two matrix products
(bins ``floor(i n / o)`` to ``ceil((i + 1) n / o)``, as PyTorch's kernel), built from the
input's shape so it stays dynamic. The checks compare with the unmodified model.
"""

from __future__ import annotations

import contextlib
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
    ModelSpec,
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
    #: False: static height/width (the spec's fixed size), see the module docstring.
    dynamic: bool = True

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


#: Where a dynamic export is traced (see the module docstring) and its second check size.
DYNAMIC_EXAMPLE = (513, 513)
DYNAMIC_SECOND_CHECK = (320, 544)


class ExportShapeError(EngineLoadError):
    """A model whose graph cannot be exported with dynamic height and width."""


class _AdaptiveAvgPool:
    """Builds a module equal to ``nn.AdaptiveAvgPool2d(output_size)`` that exports to
    ONNX at any input size (MatMul with averaging matrices)."""

    def __new__(cls, output_size: Any) -> Any:
        import torch

        class AdaptiveAvgPoolAsMatMul(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                size = (output_size, output_size) if isinstance(output_size, int) else output_size
                self.output_size = tuple(size)

            @staticmethod
            def weights(line: torch.Tensor, out: int) -> torch.Tensor:
                """(out, n) averaging matrix for an axis whose values are ``line`` (n,)."""
                j = torch.ones_like(line).cumsum(0) - 1  # 0 .. n-1, n from the input
                n = j[-1:] + 1
                i = torch.arange(out, dtype=line.dtype, device=line.device).unsqueeze(1)
                start = torch.floor(i * n / out)
                end = torch.ceil((i + 1) * n / out)
                mask = ((j >= start) & (j < end)).to(line.dtype)
                return mask / mask.sum(dim=1, keepdim=True)

            def forward(self, x: torch.Tensor) -> torch.Tensor:
                out_h, out_w = self.output_size
                rows = self.weights(x[0, 0, :, 0], out_h if out_h is not None else x.shape[-2])
                cols = self.weights(x[0, 0, 0, :], out_w if out_w is not None else x.shape[-1])
                return torch.matmul(torch.matmul(rows, x), cols.transpose(0, 1))

        return AdaptiveAvgPoolAsMatMul()


@contextlib.contextmanager
def _exportable_pooling(model: Any) -> Any:
    """Make the model's adaptive average pools (other than global ones) exportable while
    the block runs. Their ``forward`` is replaced on the instance, since some models call
    them from plain lists (UperNet) that module swapping would miss."""
    import torch

    patched = []
    for module in model.modules():
        size = getattr(module, "output_size", None)
        if isinstance(module, torch.nn.AdaptiveAvgPool2d) and size not in (1, (1, 1)):
            module.forward = _AdaptiveAvgPool(size).forward
            patched.append(module)
    try:
        yield
    finally:
        for module in patched:
            del module.forward


def compare_with_torch(
    model: Any,
    onnx_path: Path,
    sizes: list[tuple[int, int]],
    seed: int = 0,
    spec: ModelSpec | None = None,
) -> list[ExportCheck]:
    """Run PyTorch and ONNX Runtime on the same random inputs of each size.

    With ``spec``, the inputs are random pixels normalized by the spec's scale, mean and
    std (what the network will see: a model fed [0, 1] has a range its logits grow
    with); without, standard normal values.
    """
    import onnxruntime as ort
    import torch

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    rng = np.random.default_rng(seed)
    checks = []
    for height, width in sizes:
        if spec is None:
            batch = rng.standard_normal((1, 3, height, width)).astype(np.float32)
        else:
            pixels = rng.integers(0, 256, (1, 3, height, width)).astype(np.float32)
            mean = np.asarray(spec.mean, np.float32)[:, None, None]
            std = np.asarray(spec.std, np.float32)[:, None, None]
            batch = (pixels * np.float32(spec.scale) - mean) / std
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
    """Export ``config.model`` to ``output`` (dynamic H/W where it works) and verify it."""
    from seg_perception.engines.torch_engine import hf_spec_fields

    model = load_segformer(config).float().eval()
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    spec = resolve_for_config(config, hf_fields=hf_spec_fields(config, model))
    spec = replace(spec, input_name="pixel_values", output_name="logits")
    fixed: tuple[int, int] | None = spec.size.size if spec.size.kind == "fixed" else None
    temporary = output.with_suffix(".onnx.partial")
    verify = _Verify(max_diff, min_agreement, config.seed, spec)
    try:
        example = fixed or DYNAMIC_EXAMPLE
        sizes = list(check_sizes or [example])
        second = _second_size(fixed)
        if all(size[0] == sizes[0][0] and size[1] == sizes[0][1] for size in sizes):
            sizes.append(second)  # one size proves nothing about dynamic H/W
        try:
            checks = _export_checked(model, example, temporary, opset, sizes, verify, True)
            dynamic = True
        except ExportShapeError as error:
            if fixed is None:
                raise ExportShapeError(
                    f"{config.model} cannot be exported with dynamic height/width ({error}); "
                    "give it a fixed input_size (the spec's size) and export again"
                ) from None
            LOG.info("%s: static %dx%d export (%s)", config.model, *fixed, error)
            sizes = [s for s in sizes if tuple(s) == tuple(fixed)] or [fixed]
            checks = _export_checked(model, fixed, temporary, opset, sizes, verify, False)
            dynamic = False
        report = ExportReport(str(output), opset, checks, dynamic)
        if not report.passed(max_diff, min_agreement):
            raise EngineLoadError(
                "exported ONNX does not match PyTorch: " + "; ".join(f"{asdict(c)}" for c in checks)
            )
        _write_metadata(temporary, spec, model)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    temporary.replace(output)
    return report


def _second_size(fixed: tuple[int, int] | None) -> tuple[int, int]:
    """A check size unlike the example: another aspect ratio, multiples of 32."""
    if fixed is None:
        return DYNAMIC_SECOND_CHECK
    h, w = fixed
    return max(64, (h // 2 + 31) // 32 * 32), max(96, (w * 3 // 4 + 31) // 32 * 32 + 32)


@dataclass(frozen=True)
class _Verify:
    """How an export is checked: tolerances, the seed of the inputs, the spec they follow."""

    max_diff: float
    min_agreement: float
    seed: int
    spec: ModelSpec


def _export_checked(
    model: Any,
    example: tuple[int, int],
    path: Path,
    opset: int,
    sizes: list[tuple[int, int]],
    verify: _Verify,
    dynamic: bool,
) -> list[ExportCheck]:
    """Export at ``example`` and compare with PyTorch at ``sizes``; ExportShapeError when
    a dynamic graph cannot be exported or does not hold at another size."""
    import torch

    LOG.info("exporting to %s (opset %d, %s H/W)", path, opset, "dynamic" if dynamic else "static")
    with warnings.catch_warnings():
        # The TorchScript exporter (dynamo=False) is deprecated, but it writes one file with
        # dynamic H/W and needs no onnxscript; its trace warnings are what the checks at
        # other sizes are for.
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        try:
            with _exportable_pooling(model):
                _export(model, torch.zeros(1, 3, *example), path, opset, dynamic)
        except Exception as error:
            if not dynamic:
                raise EngineLoadError(f"ONNX export failed: {_one_line(error)}") from None
            raise ExportShapeError(f"the exporter: {_one_line(error)}") from None
    try:
        checks = compare_with_torch(model, path, sizes, seed=verify.seed, spec=verify.spec)
    except Exception as error:  # the model or the graph cannot take one of the sizes
        if not dynamic:
            raise EngineLoadError(f"checking the export failed: {_one_line(error)}") from None
        raise ExportShapeError(f"at another size: {_one_line(error)}") from None
    if dynamic:
        for check in checks[1:]:
            if not ExportReport("", 0, [check]).passed(verify.max_diff, verify.min_agreement):
                raise ExportShapeError(
                    f"the graph traced at {example[0]}x{example[1]} differs from PyTorch at "
                    f"{check.height}x{check.width} ({check.argmax_agreement:.2%} argmax "
                    "agreement)"
                )
    return checks


def _one_line(error: BaseException) -> str:
    return f"{type(error).__name__}: " + " ".join(str(error).split())[:200]


def _export(model: Any, example: Any, path: Path, opset: int, dynamic: bool = True) -> None:
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
        }
        if dynamic
        else {"pixel_values": {0: "batch"}, "logits": {0: "batch"}},
        opset_version=opset,
        dynamo=False,
    )


def _write_metadata(path: Path, spec: Any, model: Any) -> None:
    """The model's spec (and, for older readers, its label set) as ONNX metadata."""
    import onnx

    proto = onnx.load(str(path))
    entries = {
        META_SPEC: to_onnx_metadata(spec),
        META_LABEL_SET: json.dumps(label_set_of(model).to_dict()),
    }
    for key, value in entries.items():
        prop = proto.metadata_props.add()
        prop.key, prop.value = key, value
    onnx.save(proto, str(path))
