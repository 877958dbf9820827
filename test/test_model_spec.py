"""The model spec: a network's contract read from where it lives, checked, or refused.

The models are hand-built ONNX files whose right answer is known per pixel only when they
are fed and read exactly per their contract (tests/onnx_models.py): a BGR network with its
own mean/std and a void channel, a probabilities and a class-id network, a CNN whose stride
must divide its input, a 300-class network.
"""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
import yaml

pytest.importorskip("onnxruntime", reason="needs onnxruntime")

from onnx_models import (
    MEAN,
    PALETTE,
    STD,
    contract_model,
    conv1x1_model,
    normalized,
    palette_model,
    palette_picture,
    stride_model,
)

from seg_perception.engines import EngineConfig, EngineLoadError, create_engine
from seg_perception.engines.spec import ModelSpecError, load_sidecar

#: The BGR network's own normalization (not ImageNet's, not RGB): Caffe-style BGR means.
BGR_MEAN = (0.406, 0.456, 0.485)
BGR_STD = (0.5, 0.5, 0.5)
#: 19 classes plus a 20th, void color (black).
COLORS = np.vstack([PALETTE, np.array([[0, 0, 0]], np.float32)])


def bgr_picture(height: int = 48, width: int = 96) -> tuple[np.ndarray, np.ndarray]:
    """The palette picture with a black (void) band on the left."""
    picture, truth = palette_picture(height, width)
    picture[:, : width // 8] = 0
    truth = truth.astype(np.uint8)
    truth[:, : width // 8] = 255
    return picture, truth


def write_sidecar(path, data: dict) -> None:
    path.write_text(yaml.safe_dump(data))


@pytest.fixture
def bgr_model(tmp_path):
    """A 20-channel BGR CNN (channel 19 = void) and its sidecar spec, 19 Cityscapes classes."""
    # Channels 4-18: colors the picture never shows (far from its palette and from black).
    unused = np.column_stack([np.full(15, 200), np.zeros(15), 120 + 8 * np.arange(15)])
    model = contract_model(
        tmp_path / "bgr_cnn.onnx", np.vstack([COLORS[:4], unused, COLORS[4:]]),
        bgr=True, mean=BGR_MEAN, std=BGR_STD,
    )  # fmt: skip
    sidecar = {
        "input": {"color": "bgr", "scale": 1 / 255, "mean": list(BGR_MEAN), "std": list(BGR_STD)},
        "output": {"kind": "logits"},
        "classes": "cityscapes",
        "void": [19],
    }
    return model, sidecar


def test_a_bgr_model_with_a_void_channel_is_run_by_its_sidecar(bgr_model):
    model, sidecar = bgr_model
    write_sidecar(model.with_suffix(".yaml"), sidecar)
    engine = create_engine(EngineConfig(model=str(model)))
    picture, truth = bgr_picture()
    labels = engine.segment(picture).labels
    np.testing.assert_array_equal(labels, truth)  # exact, void pixels unlabeled (255)
    assert len(engine.label_set) == 19 and engine.label_set.unlabeled_id == 255
    assert engine.spec.source("color") == str(model.with_suffix(".yaml"))
    assert engine.spec.assumed == []


def test_the_same_model_without_its_spec_is_refused_naming_the_mismatch(bgr_model):
    model, _ = bgr_model
    with pytest.raises(EngineLoadError) as error:
        create_engine(EngineConfig(model=str(model)))
    text = str(error.value)
    assert "20 output channels" in text and "channel(s) 19" in text
    assert "cityscapes19" in text and "mark them void" in text


def test_explicit_configuration_beats_the_sidecar(bgr_model):
    model, sidecar = bgr_model
    write_sidecar(model.with_suffix(".yaml"), {**sidecar, "void": []})  # a wrong sidecar
    with pytest.raises(EngineLoadError, match="channel"):
        create_engine(EngineConfig(model=str(model)))
    engine = create_engine(EngineConfig(model=str(model), void_channels=(19,)))
    np.testing.assert_array_equal(engine.segment(bgr_picture()[0]).labels, bgr_picture()[1])
    assert engine.spec.source("void") == "configuration"


def test_a_spec_named_in_the_configuration_is_read(bgr_model, tmp_path):
    model, sidecar = bgr_model
    elsewhere = tmp_path / "contracts" / "cnn.yaml"
    elsewhere.parent.mkdir()
    write_sidecar(elsewhere, sidecar)
    engine = create_engine(EngineConfig(model=str(model), spec=str(elsewhere)))
    np.testing.assert_array_equal(engine.segment(bgr_picture()[0]).labels, bgr_picture()[1])


def test_a_model_without_a_spec_says_which_normalization_it_assumed(tmp_path):
    engine = create_engine(EngineConfig(model=str(palette_model(tmp_path / "p.onnx"))))
    assert engine.spec.assumed == ["color", "scale", "mean", "std"]
    assert "mean (0.485, 0.456, 0.406) (default)" in engine.spec.describe()


@pytest.mark.parametrize("kind", ["probabilities", "class_ids"])
def test_probabilities_and_class_id_outputs(tmp_path, kind):
    model = contract_model(tmp_path / f"{kind}.onnx", PALETTE, kind=kind)
    engine = create_engine(EngineConfig(model=str(model), output_kind=kind))
    picture, truth = palette_picture(48, 96)
    result = engine.segment(picture)
    np.testing.assert_array_equal(result.labels, truth)
    if kind == "probabilities":
        # Confidence is the model's own maximum probability (not a softmax of probabilities):
        # computed here from the palette geometry, checked at a pixel inside each region.
        points = normalized(PALETTE, False, 1 / 255, MEAN, STD)
        logits = points @ points.T - 0.5 * (points**2).sum(axis=1)[None]  # row: true color
        probability = np.exp(logits - logits.max(1, keepdims=True))
        expected = (probability / probability.sum(1, keepdims=True)).max(1)
        for color, (row, col) in enumerate([(2, 2), (2, 60), (40, 2), (16, 90)]):
            assert truth[row, col] == color
            assert abs(result.confidence[row, col] - expected[color]) < 1e-5


def test_a_stride_32_cnn_runs_at_900x1600_padded_to_a_multiple(tmp_path):
    model = stride_model(tmp_path / "unet.onnx", stride=32)
    picture, truth = palette_picture(900, 1600)
    plain = create_engine(EngineConfig(model=str(model)))
    with pytest.raises(Exception, match="Concat"):
        plain.segment(picture)
    engine = create_engine(EngineConfig(model=str(model), multiple_of=32))
    np.testing.assert_array_equal(engine.segment(picture).labels, truth)
    with pytest.raises(EngineLoadError, match="set multiple_of"):
        plain.warm_up(900, 1600)


def test_a_300_class_model_publishes_uint16_ids_equal_to_the_argmax(tmp_path):
    torch = pytest.importorskip("torch", reason="needs torch (the reference upsampling)")
    rng = np.random.default_rng(0)
    weight = rng.standard_normal((300, 3, 1, 1)).astype(np.float32)
    bias = rng.standard_normal(300).astype(np.float32)
    bias[256:] += 1.0  # so that ids a uint8 set would wrap win often
    model = conv1x1_model(tmp_path / "ade.onnx", weight, bias, "images", ["n", 3, "H", "W"], 4)
    classes = [{"id": i, "name": f"class{i}"} for i in range(300)]
    write_sidecar(model.with_suffix(".yaml"), {"name": "big", "classes": classes})
    engine = create_engine(EngineConfig(model=str(model)))
    image = rng.integers(0, 256, (60, 92, 3), dtype=np.uint8)
    labels = engine.segment(image).labels
    assert labels.dtype == np.uint16 and engine.label_set.image_encoding == "mono16"
    logits = torch.from_numpy(engine.logits(image))[None]  # (1, 300, 15, 23)
    upsampled = torch.nn.functional.interpolate(
        logits, size=(60, 92), mode="bilinear", align_corners=False
    )
    expected = upsampled.argmax(dim=1)[0].numpy()
    assert int(expected.max()) > 255  # ids a uint8 set would have wrapped
    np.testing.assert_array_equal(labels, expected)


def test_export_metadata_carries_the_spec(tmp_path):
    pytest.importorskip("transformers", reason="needs transformers")
    import onnx

    from seg_perception.engines.export import export_onnx

    output = tmp_path / "b0.onnx"
    export_onnx(EngineConfig(model="random:segformer-b0", input_size=(64, 64)), output)
    metadata = {p.key: p.value for p in onnx.load(str(output)).metadata_props}
    spec = json.loads(metadata["seg_perception.spec"])
    assert spec["input"]["size"] == [64, 64] and spec["input"]["color"] == "rgb"
    assert spec["classes"]["name"] == "cityscapes19" and len(spec["classes"]["classes"]) == 19
    engine = create_engine(EngineConfig(model=str(output)))
    assert engine.spec.source("mean") == "ONNX metadata" and engine.spec.assumed == []
    assert engine.preprocessor.input_size == (64, 64)


# --------------------------------------------------------------------------- bad specs
BAD_SPECS = {
    "unknown key": ({"inptu": {}}, r"unknown key\(s\) inptu; known: name, input"),
    "unknown input key": ({"input": {"colour": "bgr"}}, r"input: unknown key\(s\) colour"),
    "non-numeric mean": ({"input": {"mean": [0.4, "a", 0.5]}}, "input.mean must be a finite"),
    "two means": ({"input": {"mean": [0.4, 0.5]}}, "input.mean needs 3 numbers"),
    "zero std": ({"input": {"std": [0.2, 0.0, 0.2]}}, "input.std must be > 0"),
    "layout": ({"input": {"layout": "CHW"}}, "input.layout is 'CHW'; expected one of NCHW"),
    "size": ({"input": {"size": "big"}}, r"input.size is 'big'; expected dynamic"),
    "kind": ({"output": {"kind": "scores"}}, "output.kind is 'scores'"),
    "duplicate class id": (
        {"classes": [{"id": 1, "name": "a"}, {"id": 1, "name": "b"}]},
        r"classes: id\(s\) \[1\] appear twice",
    ),
    "void type": ({"void": ["sky"]}, "void must be a list of channel numbers"),
}


@pytest.mark.parametrize("case", list(BAD_SPECS))
def test_a_bad_sidecar_is_one_line_naming_file_and_key(tmp_path, case):
    data, message = BAD_SPECS[case]
    path = tmp_path / "model.yaml"
    write_sidecar(path, data)
    with pytest.raises(ModelSpecError, match=message) as error:
        load_sidecar(path)
    assert str(path) in str(error.value) and "\n" not in str(error.value)


def test_spec_contradicting_the_model_is_refused_at_load(tmp_path):
    model = palette_model(tmp_path / "p.onnx")
    cases = {
        "void channel out of range": ({"void": [7]}, "void channel 7 is out of range: the model "
                                      "has 4 output channels"),
        "tensor name": ({"input": {"name": "pixel_values"}}, "no input 'pixel_values'"),
        "layout": ({"input": {"layout": "NHWC"}}, "layout NHWC"),
        "dtype": ({"input": {"dtype": "uint8"}}, "needs tensor\\(uint8\\)"),
    }  # fmt: skip
    for case, (data, message) in cases.items():
        write_sidecar(model.with_suffix(".yaml"), data)
        with pytest.raises(EngineLoadError, match=message):
            create_engine(EngineConfig(model=str(model)))
        assert case


def test_a_missing_spec_named_in_the_configuration(tmp_path):
    model = palette_model(tmp_path / "p.onnx")
    with pytest.raises(EngineLoadError, match=r"engine.spec names .*nope.yaml, which does not"):
        create_engine(EngineConfig(model=str(model), spec=str(tmp_path / "nope.yaml")))


def test_an_hf_folder_gives_its_own_preprocessing(tmp_path, caplog):
    pytest.importorskip("transformers", reason="needs transformers")
    from transformers import (
        MobileViTConfig,
        MobileViTForSemanticSegmentation,
        MobileViTImageProcessor,
    )

    config = MobileViTConfig(num_labels=5, image_size=64)
    MobileViTForSemanticSegmentation(config).save_pretrained(tmp_path)
    MobileViTImageProcessor().save_pretrained(tmp_path)
    from seg_perception.engines.torch_engine import TorchEngine

    with caplog.at_level(logging.WARNING):
        engine = TorchEngine(EngineConfig(model=str(tmp_path), backend="torch"))
    spec = engine.spec
    assert spec.color == "bgr" and spec.mean == (0.0, 0.0, 0.0) and spec.std == (1.0, 1.0, 1.0)
    assert spec.source("color").endswith("(Hugging Face configs)")
    assert len(engine.label_set) == 5
    assert any("center crop is not reproduced" in r.message for r in caplog.records)
