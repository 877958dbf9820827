"""The CPU path's ONNX export cache follows the model's content, not its name.

A user saved new weights into the same Hugging Face folder and got the old weights' ONNX
back (2.7 % label agreement with the new weights): the cache was keyed by the folder name.
These tests save tiny random SegFormers into one folder and check that the engine follows
every save, that an unchanged folder reuses its export, and that weights changing during
an export never leave a file that claims either version.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnxruntime", reason="needs onnxruntime")
pytest.importorskip("onnx", reason="needs onnx")
pytest.importorskip("torch", reason="needs torch")
pytest.importorskip("transformers", reason="needs transformers")

from seg_perception.engines import EngineConfig, EngineLoadError, create_engine
from seg_perception.engines.factory import cached_onnx_path

SIZE = (64, 96)


def save_random_segformer(folder: Path, seed: int) -> None:
    """A tiny SegFormer with seeded random weights, saved as a Hugging Face folder."""
    import torch
    from transformers import SegformerConfig, SegformerForSemanticSegmentation

    config = SegformerConfig(
        num_labels=5, hidden_sizes=[8, 16, 24, 32], depths=[1, 1, 1, 1],
        num_attention_heads=[1, 1, 1, 1], decoder_hidden_size=16,
    )  # fmt: skip
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        SegformerForSemanticSegmentation(config).eval().save_pretrained(folder)


def torch_labels(folder: Path, image: np.ndarray) -> np.ndarray:
    """The labels PyTorch gives with the folder's current weights (the truth to follow)."""
    from seg_perception.engines.torch_engine import TorchEngine

    return TorchEngine(EngineConfig(model=str(folder), input_size=SIZE)).segment(image).labels


@pytest.fixture
def image() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (*SIZE, 3), dtype=np.uint8)


def exports(cache: Path) -> list[Path]:
    return sorted((cache / "onnx").glob("*.onnx"))


def test_new_weights_in_the_same_folder_get_a_new_export(tmp_path, image):
    folder, cache = tmp_path / "model", tmp_path / "cache"
    config = EngineConfig(
        model=str(folder), backend="auto", device="cpu", cache_dir=str(cache), input_size=SIZE
    )
    save_random_segformer(folder, seed=1)
    first = create_engine(config)
    assert first.backend == "onnxruntime"
    old_labels = first.segment(image).labels
    assert np.mean(old_labels == torch_labels(folder, image)) >= 0.99
    (export,) = exports(cache)
    mtime = export.stat().st_mtime_ns

    # Unchanged folder: the export is reused, not rewritten.
    create_engine(config)
    assert exports(cache) == [export] and export.stat().st_mtime_ns == mtime

    # New weights into the same folder: a second export whose labels follow them.
    save_random_segformer(folder, seed=2)
    truth = torch_labels(folder, image)
    assert np.mean(old_labels == truth) < 0.9, "the two weight sets must label differently"
    second = create_engine(config)
    assert np.mean(second.segment(image).labels == truth) >= 0.99
    assert len(exports(cache)) == 2 and export in exports(cache)


def test_export_settings_and_random_seeds_are_part_of_the_key(tmp_path):
    base = EngineConfig(model="random:segformer-b0", cache_dir=str(tmp_path), input_size=SIZE)
    paths = {
        cached_onnx_path(base),
        cached_onnx_path(EngineConfig(**{**base.__dict__, "seed": 1})),
        cached_onnx_path(EngineConfig(**{**base.__dict__, "input_size": (128, 128)})),
        cached_onnx_path(EngineConfig(**{**base.__dict__, "mean": (0.5, 0.5, 0.5)})),
    }
    assert len(paths) == 4
    assert cached_onnx_path(base) == cached_onnx_path(EngineConfig(**base.__dict__))


def test_preprocessor_config_is_part_of_a_folders_key(tmp_path):
    folder = tmp_path / "model"
    save_random_segformer(folder, seed=1)
    config = EngineConfig(model=str(folder), cache_dir=str(tmp_path), input_size=SIZE)
    before = cached_onnx_path(config)
    (folder / "preprocessor_config.json").write_text('{"do_normalize": true}')
    assert cached_onnx_path(config) != before


def test_weights_saved_during_the_export_leave_no_export(tmp_path, monkeypatch):
    from seg_perception.engines import export

    folder, cache = tmp_path / "model", tmp_path / "cache"
    save_random_segformer(folder, seed=1)
    real_export = export.export_onnx

    def export_while_someone_saves(*args, **kwargs):
        report = real_export(*args, **kwargs)
        save_random_segformer(folder, seed=2)
        return report

    monkeypatch.setattr(export, "export_onnx", export_while_someone_saves)
    config = EngineConfig(model=str(folder), cache_dir=str(cache), input_size=SIZE)
    with pytest.raises(EngineLoadError, match="changed while they were exported"):
        create_engine(config)
    assert not list((cache / "onnx").iterdir())


@pytest.fixture
def hub_cache(tmp_path, monkeypatch) -> Path:
    """An empty local Hugging Face hub cache (the hub itself cannot be reached here)."""
    constants = pytest.importorskip("huggingface_hub.constants")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return tmp_path / "hub"


def put_in_hub_cache(hub: Path, repo: str, revision: str, seed: int) -> None:
    """What a download of ``repo`` at ``revision`` leaves in the cache (snapshot + ref)."""
    folder = hub / f"models--{repo.replace('/', '--')}"
    save_random_segformer(folder / "snapshots" / revision, seed)
    (folder / "refs").mkdir(exist_ok=True)
    (folder / "refs" / "main").write_text(revision)


def test_a_new_hub_snapshot_gets_a_new_export(tmp_path, hub_cache, image):
    config = EngineConfig(model="acme/tiny-seg", cache_dir=str(tmp_path / "cache"),
                          input_size=SIZE)  # fmt: skip
    put_in_hub_cache(hub_cache, "acme/tiny-seg", "a" * 40, seed=1)
    create_engine(config)
    create_engine(config)
    assert len(exports(tmp_path / "cache")) == 1
    put_in_hub_cache(hub_cache, "acme/tiny-seg", "b" * 40, seed=2)
    engine = create_engine(config)
    assert len(exports(tmp_path / "cache")) == 2
    snapshot = hub_cache / "models--acme--tiny-seg" / "snapshots" / ("b" * 40)
    assert np.mean(engine.segment(image).labels == torch_labels(snapshot, image)) >= 0.99


def test_a_hub_model_downloaded_by_the_export_is_filed_under_its_content(
    tmp_path, hub_cache, monkeypatch
):
    from seg_perception.engines import export

    real_export = export.export_onnx

    def download_then_export(*args, **kwargs):
        put_in_hub_cache(hub_cache, "acme/tiny-seg", "c" * 40, seed=3)  # from_pretrained's part
        return real_export(*args, **kwargs)

    monkeypatch.setattr(export, "export_onnx", download_then_export)
    config = EngineConfig(model="acme/tiny-seg", cache_dir=str(tmp_path / "cache"),
                          input_size=SIZE)  # fmt: skip
    create_engine(config)
    assert exports(tmp_path / "cache") == [cached_onnx_path(config)]
    monkeypatch.setattr(export, "export_onnx", real_export)
    create_engine(config)  # now found under the content key: no second export
    assert exports(tmp_path / "cache") == [cached_onnx_path(config)]
