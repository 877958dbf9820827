"""Universal segmenters (Mask2Former, OneFormer): our readouts equal transformers' own.

The reference is Hugging Face's code, not ours: each random-weight model is saved as a
Hugging Face folder with its own processor config (and OneFormer's CLIP tokenizer), loaded
back with ``AutoModelForUniversalSegmentation`` and the family's processor, and its outputs
read by the processor's ``post_process_semantic_segmentation`` and
``post_process_panoptic_segmentation`` at the image's size. Our engine, built by
``create_engine`` from the same folder, must give the same pixels to the network, the same
semantic labels (>= 99.9 % of pixels) and the same panoptic partition (up to segment ids),
with the same classes and scores.

OneFormer's PIL processor resizes panoptic masks with torchvision, which has no CPU wheel
here; the test gives it torchvision's own definition of that call (``resize_image`` on a
float tensor: ``interpolate(bilinear, align_corners=False, antialias=True)``, antialias
being its default), and also checks the readout at the masks' own size, where the library
needs no resize at all.

The weights come from ``random_models`` (calibrated so that maps hold several classes and
segments; each test checks the reference is not degenerate before comparing).
"""

from __future__ import annotations

import json
import types

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="needs torch")
transformers = pytest.importorskip("transformers", reason="needs transformers")

from torch.nn import functional  # noqa: E402
from transformers import (  # noqa: E402
    AutoImageProcessor,
    AutoModelForUniversalSegmentation,
    OneFormerProcessor,
)

from seg_perception.engines import (  # noqa: E402
    EngineConfig,
    EngineLoadError,
    PanopticUnsupportedError,
    create_engine,
    segment_panoptic,
)
from seg_perception.engines.hf_resize import shortest_longest_size  # noqa: E402
from seg_perception.engines.mask_readout import panoptic_readout  # noqa: E402
from seg_perception.engines.preprocess import Letterbox  # noqa: E402
from seg_perception.engines.random_models import save_random_model, street_image  # noqa: E402
from seg_perception.engines.spec import SizePolicy, parse_spec  # noqa: E402

MIN_AGREEMENT = 0.999
SIZE = {"shortest_edge": 96, "longest_edge": 320}
FAMILIES = ("mask2former", "oneformer")


@pytest.fixture(scope="module", autouse=True)
def quiet():
    transformers.logging.set_verbosity_error()


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    return street_image(107, 333, seed=7)  # odd sizes: the resize's rounding matters


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("universal")
    return {f: save_random_model(f"random:{f}", root / f, size=SIZE) for f in FAMILIES}


@pytest.fixture(scope="module")
def references(folders) -> dict:
    """family -> (model, processor, image processor), loaded by transformers itself."""
    out = {}
    for family, folder in folders.items():
        model = AutoModelForUniversalSegmentation.from_pretrained(folder).eval()
        if family == "oneformer":
            processor = OneFormerProcessor.from_pretrained(folder)
            out[family] = (model, processor, processor.image_processor)
        else:
            processor = AutoImageProcessor.from_pretrained(folder)
            out[family] = (model, processor, processor)
    return out


@pytest.fixture(scope="module")
def engines(folders) -> dict:
    return {family: create_engine(EngineConfig(model=str(f))) for family, f in folders.items()}


@pytest.fixture
def torchvision_resize(monkeypatch):
    """torchvision's float-tensor bilinear resize (see the module docstring)."""
    from transformers.models.oneformer import image_processing_pil_oneformer as module

    def resize(tensor, size, interpolation):
        assert interpolation == "bilinear"
        return functional.interpolate(
            tensor, size=list(size), mode="bilinear", align_corners=False, antialias=True
        )

    modes = types.SimpleNamespace(BILINEAR="bilinear")
    stand_in = types.SimpleNamespace(resize=resize, InterpolationMode=modes)
    monkeypatch.setattr(module, "tvF", stand_in, raising=False)


def reference_outputs(references, family, image, task):
    model, processor, _ = references[family]
    extra = {"task_inputs": [task]} if family == "oneformer" else {}
    inputs = processor(images=image, return_tensors="pt", **extra)
    with torch.no_grad():
        return inputs, model(**inputs)


def refinement(ours: np.ndarray, theirs: np.ndarray) -> dict[int, int]:
    """Our segment id -> theirs, asserting each of our segments lies in one of theirs."""
    pairs = set(zip(ours.ravel().tolist(), theirs.ravel().tolist(), strict=True))
    forward = dict(pairs)
    assert len(forward) == len(pairs), f"a segment of ours spans several: {sorted(pairs)}"
    return forward


def same_partition(ours: np.ndarray, theirs: np.ndarray) -> dict[int, int]:
    """Our segment id -> theirs, asserting the two maps split the image identically."""
    forward = refinement(ours, theirs)
    assert len(set(forward.values())) == len(forward), f"partitions differ: {forward}"
    return forward


# --------------------------------------------------------------------------- parity
@pytest.mark.parametrize("family", FAMILIES)
def test_network_input_and_semantic_labels_equal_transformers(engines, references, image, family):
    engine = engines[family]
    inputs, output = reference_outputs(references, family, image, "semantic")
    batch, _ = engine.preprocessor(image)
    assert batch.shape == tuple(inputs["pixel_values"].shape)
    np.testing.assert_allclose(batch, inputs["pixel_values"].numpy(), atol=1e-5)
    reference = (
        references[family][2]
        .post_process_semantic_segmentation(output, target_sizes=[image.shape[:2]])[0]
        .numpy()
    )
    assert len(np.unique(reference)) >= 3, "degenerate reference map"
    result = engine.segment(image)
    assert result.labels.shape == image.shape[:2]
    agreement = float(np.mean(result.labels == reference))
    print(f"{family}: semantic agreement {agreement:.5%}")
    assert agreement >= MIN_AGREEMENT
    assert result.confidence.shape == image.shape[:2]
    assert result.confidence.min() >= 0.0 and result.confidence.max() <= 1.0


@pytest.mark.parametrize("family", FAMILIES)
def test_panoptic_readout_equals_transformers(
    engines, references, image, family, torchvision_resize
):
    """On the same network output: the same partition, classes, scores and semantic map."""
    engine = engines[family]
    _, output = reference_outputs(references, family, image, "panoptic")
    processor = references[family][2]
    reference = processor.post_process_panoptic_segmentation(
        output, threshold=0.5, label_ids_to_fuse=set(), target_sizes=[image.shape[:2]]
    )[0]
    theirs = {s["id"]: s for s in reference["segments_info"]}
    assert len(theirs) >= 3, "degenerate reference: too few segments"
    _, box = engine.preprocessor(image)
    result = engine.readouts(*engine.queries(output), box)
    assert result.instances.shape == image.shape[:2]
    mapping = same_partition(result.instances, reference["segmentation"].numpy().astype(int))
    print(f"{family}: {len(result.segments)} segments, partition identical")
    for segment in result.segments:
        match = theirs[mapping[segment.id]]
        assert segment.class_id == match["label_id"]
        assert segment.score == pytest.approx(match["score"], abs=1e-6)
        assert not segment.fused
    semantic = processor.post_process_semantic_segmentation(output, target_sizes=[image.shape[:2]])
    agreement = float(np.mean(result.semantic.labels == semantic[0].numpy()))
    print(f"{family}: semantic readout of the panoptic pass, agreement {agreement:.5%}")
    assert agreement >= MIN_AGREEMENT
    classes = result.class_map()
    assert np.all(classes[result.instances == 0] == 255)
    for segment in result.segments:
        assert np.all(classes[result.instances == segment.id] == segment.class_id)


@pytest.mark.parametrize("family", FAMILIES)
def test_panoptic_end_to_end_agrees_with_transformers(
    engines, references, image, family, torchvision_resize
):
    """Image in: our preprocessing's float rounding (<1e-6) may flip a near-tie pixel."""
    _, output = reference_outputs(references, family, image, "panoptic")
    reference = references[family][2].post_process_panoptic_segmentation(
        output, threshold=0.5, label_ids_to_fuse=set(), target_sizes=[image.shape[:2]]
    )[0]
    theirs = reference["segmentation"].numpy().astype(int)
    ours = segment_panoptic(engines[family], image).instances
    pairs, counts = np.unique(np.stack([ours.ravel(), theirs.ravel()]), axis=1,
                              return_counts=True)  # fmt: skip
    majority = {}  # each segment of ours -> the one of theirs it overlaps most
    for (mine, their), _ in sorted(zip(pairs.T.tolist(), counts.tolist(), strict=True),
                                   key=lambda item: item[1]):  # fmt: skip
        majority[mine] = their
    assert len(set(majority.values())) == len(majority)  # one of theirs per segment of ours
    agreement = float(np.mean(np.vectorize(majority.get)(ours) == theirs))
    print(f"{family}: panoptic pixels agreeing end to end {agreement:.5%}")
    assert agreement >= MIN_AGREEMENT


def test_oneformer_panoptic_at_mask_size_needs_no_torchvision(references, image):
    """Without target sizes transformers resizes nothing: no stand-in for torchvision."""
    _, output = reference_outputs(references, "oneformer", image, "panoptic")
    reference = references["oneformer"][2].post_process_panoptic_segmentation(
        output, threshold=0.5, label_ids_to_fuse=set()
    )[0]
    size = tuple(output.masks_queries_logits.shape[-2:])
    ids, segments = panoptic_readout(
        output.class_queries_logits[0], output.masks_queries_logits[0].sigmoid(),
        Letterbox(size, size, size), antialias=True,
    )  # fmt: skip
    assert len(segments) >= 3
    same_partition(ids, reference["segmentation"].numpy().astype(int))


def test_fused_stuff_classes_keep_ids_unique():
    """transformers' compute_segments renumbers from a fused class's id and can give two
    instances one id; ours refines its partition and keeps ids 1..n distinct."""
    from transformers.models.mask2former.image_processing_pil_mask2former import (
        compute_segments,
    )

    probs = torch.zeros(4, 8, 8)
    probs[0, :4, :4] = probs[1, :4, 4:] = probs[2, 4:, :4] = probs[3, 4:, 4:] = 0.99
    classes = torch.tensor([0, 1, 0, 2])  # query 0 and 2: stuff class 0, fused
    logits = torch.full((4, 4), -10.0)
    logits[torch.arange(4), classes] = 10.0
    theirs, info = compute_segments(
        probs.clone(), torch.ones(4) * 0.99, classes, label_ids_to_fuse={0}, target_size=(8, 8)
    )
    ids, segments = panoptic_readout(logits, probs, Letterbox((8, 8), (8, 8), (8, 8)),
                                     fuse=frozenset({0}))  # fmt: skip
    assert len({s["id"] for s in info}) == 2  # transformers: query 3 reuses query 1's id
    assert sorted(s[0] for s in segments) == [1, 2, 3]
    assert [s[1] for s in segments] == [0, 1, 2]
    mapping = refinement(ids, theirs.numpy())
    assert mapping[ids[0, 4]] == mapping[ids[4, 4]]  # their collision, two segments of ours
    assert ids[0, 4] != ids[4, 4]


def test_stuff_channels_fuse_instances(folders, references, image, torchvision_resize):
    engine = create_engine(EngineConfig(model=str(folders["mask2former"]), stuff_channels=(0, 1)))
    _, output = reference_outputs(references, "mask2former", image, "panoptic")
    reference = references["mask2former"][2].post_process_panoptic_segmentation(
        output, label_ids_to_fuse={0, 1}, target_sizes=[image.shape[:2]]
    )[0]
    result = engine.readouts(*engine.queries(output), engine.preprocessor(image)[1])
    per_class = [s.class_id for s in result.segments if s.class_id in (0, 1)]
    assert len(per_class) == len(set(per_class))  # one segment per stuff class
    assert all(s.fused == (s.class_id in (0, 1)) for s in result.segments)
    theirs = reference["segmentation"].numpy().astype(int)
    collided = len({s["id"] for s in reference["segments_info"]}) < len(
        {(s["id"], s["label_id"]) for s in reference["segments_info"]}
    )
    print("transformers reused an id:", collided)
    (same_partition if not collided else refinement)(result.instances, theirs)


# --------------------------------------------------------------------------- sizes, specs
@pytest.mark.parametrize("shape", [(107, 333), (375, 1242), (1242, 375), (800, 800), (64, 2000)])
@pytest.mark.parametrize("divisor", [1, 32])
def test_resize_rule_equals_transformers(shape, divisor):
    from transformers.image_transforms import get_size_with_aspect_ratio

    h, w = get_size_with_aspect_ratio(shape, 800, 1333)
    if divisor > 1:
        h, w = -(-h // divisor) * divisor, -(-w // divisor) * divisor
    assert shortest_longest_size(*shape, 800, 1333, divisor) == (h, w)


def test_shortest_longest_policy_round_trips_through_a_sidecar():
    data = {"input": {"size": {"shortest_edge": 96, "longest_edge": 320, "size_divisor": 32}}}
    policy = parse_spec(data, "model.yaml")["size"]
    assert policy == SizePolicy("shortest_longest", edge=96, longest=320, size_divisor=32)
    assert parse_spec({"input": {"size": policy.to_dict()}}, "again.yaml")["size"] == policy
    assert "longest edge at most 320" in policy.describe()


def test_random_spec_runs_without_a_folder():
    engine = create_engine(EngineConfig(model="random:mask2former"))
    assert "longest edge at most 1333" in engine.spec.describe()  # the processor's defaults
    image = street_image(24, 400, seed=2)  # short side 800 would pass 1333: 96x1344
    assert engine.preprocessor(image)[0].shape == (1, 3, 96, 1344)
    small = create_engine(EngineConfig(model="random:oneformer", input_size=(64, 224),
                                       resize="stretch"))  # fmt: skip
    assert small.segment(image).labels.shape == (24, 400)
    assert small.segment_panoptic(image).instances.shape == (24, 400)


def test_letterboxed_maps_are_sampled_where_the_image_is():
    """With padding (resize keep_aspect_pad), the content's cells are resampled: equal to
    torch's interpolate of the cropped content when the content fills whole cells."""
    from seg_perception.engines.mask_readout import resampled_max

    maps = torch.rand(5, 64, 128)
    box = Letterbox((48, 72), (64, 96), (64, 128))  # content: 64x96 of a 64x128 input
    best, index = resampled_max(maps, box)
    content = functional.interpolate(maps[None, :, :, :96], size=(48, 72), mode="bilinear",
                                     align_corners=False)[0]  # fmt: skip
    torch.testing.assert_close(best, content.amax(dim=0))
    assert float((index == content.argmax(dim=0)).float().mean()) >= MIN_AGREEMENT


def test_letterboxed_engine_readouts(folders, image):
    engine = create_engine(EngineConfig(model=str(folders["oneformer"]), input_size=(96, 160),
                                        resize="keep_aspect_pad"))  # fmt: skip
    result = engine.segment_panoptic(image)
    assert result.instances.shape == result.semantic.labels.shape == image.shape[:2]
    assert len(result.segments) >= 1


# --------------------------------------------------------------------------- bad input
def test_panoptic_request_to_a_semantic_model_is_refused():
    with pytest.raises(EngineLoadError) as error:
        create_engine(EngineConfig(model="random:segformer-b0", backend="torch", panoptic=True))
    assert "Mask2Former or OneFormer" in str(error.value)
    assert "\n" not in str(error.value)
    semantic = create_engine(EngineConfig(model="random:segformer-b0", backend="torch"))
    with pytest.raises(PanopticUnsupportedError, match="has no panoptic readout"):
        segment_panoptic(semantic, street_image(32, 64))


def test_unknown_family_is_one_message(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(EngineLoadError) as error:
        create_engine(EngineConfig(model=str(tmp_path)))
    text = str(error.value)
    assert "model_type 'bert'" in text and "mask2former, oneformer" in text and "clipseg" in text
    assert "\n" not in text


def test_universal_models_refuse_onnx_and_missing_stuff_channels(folders):
    folder = str(folders["oneformer"])
    with pytest.raises(EngineLoadError, match="torch backend only"):
        create_engine(EngineConfig(model=folder, backend="onnxruntime"))
    with pytest.raises(EngineLoadError, match="stuff_channels"):
        create_engine(EngineConfig(model=folder, stuff_channels=(40,)))


def test_oneformer_without_its_tokenizer_says_so(folders, tmp_path):
    import shutil

    folder = tmp_path / "no_tokenizer"
    shutil.copytree(folders["oneformer"], folder)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        (folder / name).unlink()
    with pytest.raises(EngineLoadError, match="CLIP tokenizer"):
        create_engine(EngineConfig(model=str(folder)))
