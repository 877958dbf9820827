"""The end of a training run: the ONNX model and its spec, checked against PyTorch.

The export is ``seg-perception export``'s own (:func:`export_onnx`: dynamic height/width
where the graph allows, the model spec in the ONNX metadata, PyTorch vs ONNX Runtime on
random inputs). The spec is also written beside it as a sidecar YAML (``model.onnx`` ->
``model.yaml``, which every engine reads): the file people read and edit. Then both
engines segment real validation images end to end (preprocessing, network, labels at the
image's size) and the run fails when their labels agree on less than 99.9 % of the pixels.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from seg_perception.training.datasets import Sample, read_image

MIN_AGREEMENT = 0.999
SPEC_HEADER = (
    "# Model spec of {onnx} (schema: seg_perception/engines/spec.py), written by\n"
    "# seg-perception train from the ONNX metadata of the same export.\n"
)


@dataclass
class DeployReport:
    onnx: Path
    spec: Path
    #: (height, width, max |logit diff|, argmax agreement) of the exporter's random inputs.
    random_checks: list[tuple[int, int, float, float]]
    #: Share of pixels where PyTorch and ONNX Runtime give the same label, real images.
    image_agreement: float
    images: int

    def lines(self) -> list[str]:
        out = [f"wrote {self.onnx} and its spec {self.spec}"]
        for h, w, diff, agreement in self.random_checks:
            out.append(
                f"  PyTorch vs ONNX Runtime, random {h}x{w} input: max |logit diff| {diff:.2e}, "
                f"argmax agreement {100 * agreement:.3f}%"
            )
        if self.images:
            out.append(
                f"  PyTorch vs ONNX Runtime, {self.images} validation image(s) end to end: "
                f"label agreement {100 * self.image_agreement:.3f}%"
            )
        return out


def export_trained(
    folder: Path, onnx_path: Path, check_images: Sequence[Sample], device: str = "cpu"
) -> DeployReport:
    """Export the Hugging Face ``folder`` to ``onnx_path`` with its spec YAML and verify."""
    from seg_perception.engines.config import EngineConfig
    from seg_perception.engines.export import export_onnx
    from seg_perception.engines.factory import create_engine

    label_set = str(folder / "label_set.yaml")
    config = EngineConfig(model=str(folder), backend="torch", label_set=label_set)
    images = [read_image(s.image) for s in check_images]
    # A fixed-size network is checked at its size (the exporter's default); a dynamic one
    # at the size it will see: the images'.
    sizes = [tuple(images[0].shape[:2])] if images and not _fixed_size(folder) else None
    report = export_onnx(config, onnx_path, check_sizes=sizes, min_agreement=MIN_AGREEMENT)
    spec_path = write_spec_yaml(onnx_path)
    torch_engine = create_engine(EngineConfig(model=str(folder), backend="torch",
                                              device=device, label_set=label_set))  # fmt: skip
    onnx_engine = create_engine(EngineConfig(model=str(onnx_path)))
    same = total = 0
    for image in images:
        expected = torch_engine.segment(image).labels
        actual = onnx_engine.segment(image).labels
        same += int(np.count_nonzero(expected == actual))
        total += expected.size
    agreement = same / total if total else 1.0
    checks = [(c.height, c.width, c.max_abs_logit_diff, c.argmax_agreement) for c in report.checks]
    deployed = DeployReport(onnx_path, spec_path, checks, agreement, len(images))
    if agreement < MIN_AGREEMENT:
        raise RuntimeError(
            f"the exported {onnx_path} labels real images differently from PyTorch "
            f"({100 * agreement:.3f}% agreement < {100 * MIN_AGREEMENT:.1f}%)"
        )
    return deployed


def write_spec_yaml(onnx_path: Path) -> Path:
    """The spec the export wrote into the ONNX metadata, as the sidecar YAML beside it."""
    import onnx

    from seg_perception.engines.spec import META_SPEC

    model = onnx.load(str(onnx_path), load_external_data=False)
    metadata = {p.key: p.value for p in model.metadata_props}
    if META_SPEC not in metadata:
        raise RuntimeError(f"{onnx_path} carries no model spec ({META_SPEC})")
    spec = json.loads(metadata[META_SPEC])
    path = onnx_path.with_suffix(".yaml")
    body = yaml.safe_dump(spec, sort_keys=False, default_flow_style=None)
    text = SPEC_HEADER.format(onnx=onnx_path.name) + body
    path.write_text(text, encoding="utf-8")
    return path


def _fixed_size(folder: Path) -> bool:
    """Whether the folder's processor stretches images to one size."""
    path = folder / "preprocessor_config.json"
    if not path.is_file():
        return False
    data = json.loads(path.read_text(encoding="utf-8"))
    return bool(data.get("do_resize", True)) and "height" in (data.get("size") or {})
