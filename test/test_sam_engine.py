"""Promptable segmentation (SAM): a point or box in, the mask transformers gives out.

A random-weight SAM (``random_models``: unit-gain weights, since SAM's own initialization
gives all-zero mask logits) is saved as a Hugging Face folder with its SamProcessor, the way
a real checkpoint is laid out, and loaded from there; nothing is downloaded. The reference is
transformers' documented pipeline on the same KITTI-sized (1242x375, not square) image:
``SamProcessor(images, input_points=... / input_boxes=...)`` -> ``SamModel`` (multimask) ->
``post_process_masks``, the mask with the best predicted IoU. Our engine runs the encoder
once per image and the decoder per prompt, and upsamples only the chosen mask; the masks
must still agree (they are identical here).
"""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="needs torch")
transformers = pytest.importorskip("transformers", reason="needs transformers")

from transformers import SamModel, SamProcessor  # noqa: E402

from seg_perception.engines import (  # noqa: E402
    EngineConfig,
    EngineInputError,
    EngineLoadError,
    create_engine,
)
from seg_perception.engines.families import family_of, model_type  # noqa: E402
from seg_perception.engines.random_models import save_random_model, street_image  # noqa: E402
from seg_perception.engines.sam_engine import (  # noqa: E402
    PromptableOnlyError,
    PromptInputError,
    SamEngine,
)

MIN_AGREEMENT = 0.999
HEIGHT, WIDTH = 375, 1242  # KITTI's camera
PROMPTS = {
    "point": {"points": [[610.0, 230.0]]},
    "box": {"box": [300.0, 120.0, 820.0, 340.0]},
    "points+box": {"points": [[500.0, 200.0], [1100.0, 60.0]], "point_labels": [1, 0],
                   "box": [300.0, 120.0, 820.0, 340.0]},
}  # fmt: skip


@pytest.fixture(scope="module", autouse=True)
def quiet():
    transformers.logging.set_verbosity_error()


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return save_random_model("random:sam", tmp_path_factory.mktemp("sam") / "sam")


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    return street_image(HEIGHT, WIDTH, seed=5)


@pytest.fixture(scope="module")
def engine(folder) -> SamEngine:
    built = create_engine(EngineConfig(model=str(folder)))
    assert isinstance(built, SamEngine)
    return built


@pytest.fixture(scope="module")
def reference(folder):
    """transformers' own SamModel and SamProcessor, loaded from the folder."""
    return SamModel.from_pretrained(folder).eval(), SamProcessor.from_pretrained(folder)


def reference_mask(reference, image, prompt) -> tuple[np.ndarray, float, torch.Tensor]:
    """transformers' pipeline: (best-IoU mask, its IoU, all candidates' masks)."""
    model, processor = reference
    kwargs = {}
    if "points" in prompt:
        kwargs["input_points"] = [prompt["points"]]
    if "point_labels" in prompt:
        kwargs["input_labels"] = [prompt["point_labels"]]
    if "box" in prompt:
        kwargs["input_boxes"] = [[prompt["box"]]]
    inputs = processor(images=image, return_tensors="pt", **kwargs)
    with torch.no_grad():
        output = model(**inputs)
    masks = processor.post_process_masks(
        output.pred_masks, inputs["original_sizes"], inputs["reshaped_input_sizes"]
    )[0][0]
    best = int(torch.argmax(output.iou_scores[0, 0]))
    return masks[best].numpy(), float(output.iou_scores[0, 0, best]), masks


# ---------------------------------------------------------------------------- parity
@pytest.mark.parametrize("name", list(PROMPTS))
def test_mask_equals_transformers_pipeline(engine, reference, image, name):
    prompt = PROMPTS[name]
    expected, expected_score, candidates = reference_mask(reference, image, prompt)
    result = engine.segment_prompt(image, **{k: np.asarray(v) for k, v in prompt.items()})
    agreement = float((result.mask == expected).mean())
    print(f"{name}: {agreement:.5%} of pixels equal, IoU score {result.score:.4f}")
    assert agreement >= MIN_AGREEMENT
    assert result.score == pytest.approx(expected_score, abs=1e-6)
    assert result.candidates == len(candidates) == 3
    # The choice matters: the candidates are different masks, and the chosen one is neither
    # empty nor the whole image (random weights that did nothing would pass trivially).
    assert len({m.numpy().tobytes() for m in candidates}) == 3
    assert 0.01 < expected.mean() < 0.99


def test_mask_is_bool_at_the_cameras_resolution(engine, image):
    result = engine.segment_prompt(image, points=np.array([[20.0, 300.0]]))
    assert result.mask.shape == (HEIGHT, WIDTH)
    assert result.mask.dtype == np.bool_
    assert isinstance(result.score, float)
    assert result.candidates == 3
    with pytest.raises(AttributeError):  # frozen
        result.score = 1.0  # type: ignore[misc]


# ---------------------------------------------------------------------------- caching
def test_second_prompt_on_the_same_image_reuses_the_embedding(engine, image):
    calls = []
    hook = engine.model.vision_encoder.register_forward_hook(lambda *_: calls.append(1))
    try:
        engine.clear_cache()
        engine.segment_prompt(image, points=np.array([[610.0, 230.0]]))
        engine.segment_prompt(image, box=np.array([300.0, 120.0, 820.0, 340.0]))
        engine.segment_prompt(image, points=np.array([[5.0, 5.0]]), point_labels=np.array([0]))
        assert len(calls) == 1, "three prompts on one image ran the encoder more than once"
        other = street_image(HEIGHT, WIDTH, seed=6)
        engine.segment_prompt(other, points=np.array([[610.0, 230.0]]))
        assert len(calls) == 2, "a new image must be encoded"
        other[200:210, 600:610] = 0  # a new frame written into the same buffer
        engine.segment_prompt(other, points=np.array([[610.0, 230.0]]))
        assert len(calls) == 3, "a changed buffer must be encoded again"
    finally:
        hook.remove()


# ---------------------------------------------------------------------------- bad input
BAD = [
    ({}, "no prompt"),
    ({"points": [[1300.0, 10.0]]}, r"point 0 at \(x=1300, y=10\) is outside the 1242x375 image"),
    ({"points": [[5.0, 5.0], [10.0, -1.0]]}, "point 1 .* is outside the 1242x375 image"),
    ({"points": [[1.0, 2.0, 3.0]]}, r"points must be a \(K, 2\) array"),
    ({"points": [[np.nan, 2.0]]}, "points must be finite"),
    ({"box": [700.0, 100.0, 200.0, 300.0]}, "empty or inverted"),
    ({"box": [200.0, 100.0, 200.0, 300.0]}, "empty or inverted"),
    ({"box": [200.0, 100.0, 1300.0, 300.0]}, "reaches outside the 1242x375 image"),
    ({"box": [200.0, 100.0, 300.0]}, r"box must be 4 numbers \(x0, y0, x1, y1\)"),
    ({"points": [[5.0, 5.0], [9.0, 9.0]], "point_labels": [1]}, "point_labels has shape .* for 2"),
    ({"point_labels": [1]}, "point_labels given without points"),
    ({"points": [[5.0, 5.0]], "point_labels": [2]}, "must be 1 .* or 0"),
    ({"points": [], "point_labels": []}, "point_labels given without points"),
    ({"points": np.empty((0, 2))}, "no prompt"),
]


@pytest.mark.parametrize(("prompt", "message"), BAD, ids=[m.split()[0] for _, m in BAD])
def test_bad_prompt_is_refused_with_its_reason(engine, image, prompt, message):
    with pytest.raises(PromptInputError, match=message) as raised:
        engine.segment_prompt(image, **prompt)
    assert isinstance(raised.value, ValueError)
    assert isinstance(raised.value, EngineInputError)


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (np.zeros((HEIGHT, WIDTH, 3), np.float32), "must be uint8"),
        (np.zeros((HEIGHT, WIDTH), np.uint8), r"must be H x W x 3"),
        (np.zeros((0, WIDTH, 3), np.uint8), "is empty"),
    ],
)
def test_bad_image_is_refused(engine, bad, message):
    with pytest.raises(EngineInputError, match=message):
        engine.segment_prompt(bad, points=np.array([[1.0, 1.0]]))


# ---------------------------------------------------------------------------- interface
def test_segment_refuses_and_names_what_to_use(engine, image):
    with pytest.raises(PromptableOnlyError, match=r"a promptable model \(SAM\) segments at "
                       r"prompts: call segment_prompt.*use a semantic"):  # fmt: skip
        engine.segment(image)
    # Its start-up check is a test prompt (the clicked_object node), which works and leaves
    # no cached embedding behind; the pipeline node refuses SAM itself (test_ros_clicked).
    engine.warm_up(48, 64)
    assert engine._cached is None


def test_family_of_a_sam_folder_and_random_sam(folder):
    assert model_type(EngineConfig(model=str(folder))) == "sam"
    assert family_of(EngineConfig(model=str(folder))) == "promptable"
    assert family_of(EngineConfig(model="random:sam")) == "promptable"
    assert family_of(EngineConfig(model="random:sam-vit-base")) == "promptable"
    engine = create_engine(EngineConfig(model="random:sam"))
    assert isinstance(engine, SamEngine)
    assert "random weights" in engine.description
    result = engine.segment_prompt(street_image(60, 100), points=np.array([[50.0, 30.0]]))
    assert result.mask.shape == (60, 100)


def test_unknown_random_model_lists_random_sam():
    with pytest.raises(EngineLoadError, match=r"random:sam\[-vit-base\]"):
        family_of(EngineConfig(model="random:sam3"))


def test_sam2_is_refused_with_its_reason(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "sam2"}))
    with pytest.raises(EngineLoadError, match="torchvision"):
        create_engine(EngineConfig(model=str(tmp_path)))


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"prompts": ("car",)}, "promptable model .* remove prompts"),
        ({"panoptic": True}, "is a promptable segmentation model"),
        ({"backend": "onnxruntime"}, "runs on the torch backend only"),
        ({"mean": (0.5, 0.5, 0.5), "std": (0.5, 0.5, 0.5)}, "own processor .* remove mean, std"),
    ],
)
def test_settings_sam_cannot_honour_are_refused(folder, settings, message):
    with pytest.raises(EngineLoadError, match=message):
        create_engine(EngineConfig(model=str(folder), **settings))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_mask_agrees_with_cpu(folder, engine, image):
    gpu = create_engine(EngineConfig(model=str(folder), device="cuda"))
    prompt = {"points": np.array([[610.0, 230.0]])}
    agreement = (gpu.segment_prompt(image, **prompt).mask == engine.segment_prompt(
        image, **prompt).mask).mean()  # fmt: skip
    assert agreement >= 0.99
