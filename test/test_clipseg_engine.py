"""Open-vocabulary segmentation (CLIPSeg): prompts in, labels out, as transformers computes.

A random-weight CLIPSeg is saved as a Hugging Face folder with its processor config and a
CLIP tokenizer (``random_models.tiny_clip_tokenizer``). The reference is transformers' own
use of it: ``CLIPSegProcessor(text=prompts, images=[image] * len(prompts), padding=True)``
then ``CLIPSegForImageSegmentation`` -- which runs the ViT once per prompt, where our
engine runs it once per image -- and the logits bilinearly resized to the image, the best
prompt per pixel, unlabeled where its sigmoid is below the background threshold.

Tokenization must work offline: a separate process with ``HF_HUB_OFFLINE=1`` and every
socket connection refused builds the CLIPSeg and OneFormer engines from their folders and
segments an image.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import yaml

torch = pytest.importorskip("torch", reason="needs torch")
transformers = pytest.importorskip("transformers", reason="needs transformers")

from conftest import REPO  # noqa: E402
from torch.nn import functional  # noqa: E402
from transformers import CLIPSegForImageSegmentation, CLIPSegProcessor  # noqa: E402

from seg_perception.engines import (  # noqa: E402
    EngineConfig,
    EngineConfigError,
    EngineLoadError,
    create_engine,
)
from seg_perception.engines.options import config_from_params, engine_options  # noqa: E402
from seg_perception.engines.random_models import save_random_model, street_image  # noqa: E402

MIN_AGREEMENT = 0.999
PROMPTS = ("road=#804080", "the sky", "a parked car", "tree", "person=#dc143c")
TEXTS = ["road", "the sky", "a parked car", "tree", "person"]


@pytest.fixture(scope="module", autouse=True)
def quiet():
    transformers.logging.set_verbosity_error()


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return save_random_model(
        "random:clipseg", tmp_path_factory.mktemp("clipseg") / "clipseg",
        size={"height": 128, "width": 128},
    )  # fmt: skip


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    return street_image(150, 470, seed=11)  # a wide camera image, not the network's square


@pytest.fixture(scope="module")
def engine(folder):
    return create_engine(EngineConfig(model=str(folder), prompts=PROMPTS))


@pytest.fixture(scope="module")
def reference_logits(folder, image):
    processor = CLIPSegProcessor.from_pretrained(folder)
    model = CLIPSegForImageSegmentation.from_pretrained(folder).eval()
    inputs = processor(text=TEXTS, images=[image] * len(TEXTS), padding=True, return_tensors="pt")
    with torch.no_grad():
        return model(**inputs).logits


def reference_labels(logits, shape, threshold):
    resized = functional.interpolate(logits[None], size=shape, mode="bilinear",
                                     align_corners=False)[0]  # fmt: skip
    best, index = resized.max(dim=0)
    probability = best.sigmoid()
    return torch.where(probability >= threshold, index, 255).numpy(), probability.numpy()


def test_prompts_become_the_label_set(engine):
    labels = engine.label_set
    assert labels.names == tuple(TEXTS) and labels.ids == (0, 1, 2, 3, 4)
    assert labels.colors[0] == (128, 64, 128) and labels.colors[4] == (220, 20, 60)
    assert engine.spec.source("label_set") == "prompts"


def test_logits_equal_transformers_forward(engine, image, reference_logits):
    ours = engine.logits(image)
    assert ours.shape == tuple(reference_logits.shape)
    np.testing.assert_allclose(ours, reference_logits.numpy(), atol=1e-4)


@pytest.mark.parametrize("threshold", [0.5, 0.0, 0.8])
def test_labels_at_camera_resolution_equal_the_reference(folder, image, reference_logits,
                                                         threshold):  # fmt: skip
    engine = create_engine(
        EngineConfig(model=str(folder), prompts=PROMPTS, background_threshold=threshold)
    )
    expected, probability = reference_labels(reference_logits, image.shape[:2], threshold)
    result = engine.segment(image)
    assert result.labels.shape == image.shape[:2]
    agreement = float(np.mean(result.labels == expected))
    print(f"threshold {threshold}: agreement {agreement:.5%}")
    assert agreement >= MIN_AGREEMENT
    present = set(np.unique(expected).tolist())
    assert len(present - {255}) >= 3, "degenerate reference map"
    assert (255 in present) == (threshold > 0)
    np.testing.assert_allclose(result.confidence, probability, atol=1e-4)


def test_a_label_set_names_the_prompts(folder, image, tmp_path, engine):
    path = tmp_path / "street.yaml"
    classes = [{"id": 10 * (i + 1), "name": t, "color": [i, i, i]} for i, t in enumerate(TEXTS)]
    path.write_text(yaml.safe_dump({"name": "street", "classes": classes}))
    by_set = create_engine(EngineConfig(model=str(folder), label_set=str(path)))
    assert by_set.label_set.ids == (10, 20, 30, 40, 50)
    ours, theirs = by_set.segment(image).labels, engine.segment(image).labels
    table = np.full(256, 255, dtype=np.uint8)
    table[:5] = [10, 20, 30, 40, 50]
    np.testing.assert_array_equal(ours, table[theirs])


def test_tokenization_needs_no_network(folder, tmp_path):
    oneformer = save_random_model("random:oneformer", tmp_path / "oneformer",
                                  size={"shortest_edge": 64, "longest_edge": 128})  # fmt: skip
    script = textwrap.dedent(f"""
        import socket
        def refuse(*args, **kwargs):
            raise OSError("network access attempted")
        socket.socket.connect = refuse
        socket.create_connection = refuse
        from seg_perception.engines import EngineConfig, create_engine
        from seg_perception.engines.random_models import street_image
        image = street_image(40, 90)
        clip = create_engine(EngineConfig(model={str(folder)!r}, prompts=("road", "sky")))
        one = create_engine(EngineConfig(model={str(oneformer)!r}))
        assert clip.segment(image).labels.shape == (40, 90)
        assert one.segment_panoptic(image).instances.shape == (40, 90)
        print("offline ok")
    """)  # fmt: skip
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
               PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))  # fmt: skip
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                          text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert "offline ok" in done.stdout


# --------------------------------------------------------------------------- bad input
def test_no_prompts_is_one_message(folder):
    with pytest.raises(EngineLoadError) as error:
        create_engine(EngineConfig(model=str(folder)))
    assert "no prompts" in str(error.value) and "\n" not in str(error.value)


@pytest.mark.parametrize(
    ("prompts", "text"),
    [
        (("road", "car", "road"), "repeats prompt 0"),
        (("Road ", "a  car", "road"), "repeats prompt 0"),
        (("road", "  "), "has no text"),
        (("road=#12345",), "6 hex digits"),
    ],
)
def test_bad_prompts_are_one_message(prompts, text):
    with pytest.raises(EngineConfigError, match=text) as error:
        EngineConfig(model="random:clipseg", prompts=prompts)
    assert "\n" not in str(error.value)


def test_classes_given_twice_or_to_the_wrong_model(folder):
    with pytest.raises(EngineConfigError, match="not both"):
        EngineConfig(model=str(folder), prompts=("road",), label_set="cityscapes")
    with pytest.raises(EngineLoadError, match="open-vocabulary"):
        create_engine(EngineConfig(model="random:segformer-b0", prompts=("road",)))
    with pytest.raises(EngineLoadError, match="panoptic"):
        create_engine(EngineConfig(model=str(folder), prompts=("road",), panoptic=True))


def test_prompts_and_thresholds_are_options():
    options = {o.name: o for o in engine_options()}
    assert options["prompts"].kind == "strs" and options["panoptic"].kind == "bool"
    config = config_from_params({
        "engine.model": "random:clipseg", "engine.prompts": ["road", "car=#0000ff"],
        "engine.background_threshold": 0.3, "engine.panoptic": False,
    })  # fmt: skip
    assert config.prompts == ("road", "car=#0000ff") and config.background_threshold == 0.3
    with pytest.raises(ValueError, match="list of strings"):
        config_from_params({"engine.prompts": "road"})
    with pytest.raises(EngineConfigError, match="background_threshold"):
        EngineConfig(background_threshold=1.5)
