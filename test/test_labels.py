"""Label sets: the Cityscapes default, YAML sets, palettes."""

from __future__ import annotations

import numpy as np
import pytest

from seg_perception.core.labels import LabelSet, LabelSetError


def test_cityscapes_default_has_the_official_train_ids_and_colors():
    labels = LabelSet.cityscapes()
    assert len(labels) == 19 and labels.dtype == np.uint8 and labels.unlabeled_id == 255
    assert labels.name_of(0) == "road" and labels.name_of(13) == "car"
    assert labels.colors[labels.id_of("car")] == (0, 0, 142)
    assert labels.colors[labels.id_of("vegetation")] == (107, 142, 35)
    assert labels.image_encoding == "mono8"


def test_colorize_maps_ids_and_unlabeled():
    labels = LabelSet.cityscapes()
    image = np.array([[0, 13], [255, 10]], dtype=np.uint8)
    colors = labels.colorize(image)
    assert colors.shape == (2, 2, 3) and colors.dtype == np.uint8
    np.testing.assert_array_equal(colors[0, 0], [128, 64, 128])
    np.testing.assert_array_equal(colors[0, 1], [0, 0, 142])
    np.testing.assert_array_equal(colors[1, 0], [0, 0, 0])


def test_yaml_label_set_with_sparse_and_large_ids(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text(
        "name: warehouse\nclasses:\n"
        "  - {id: 0, name: floor, color: [10, 20, 30]}\n"
        "  - {id: 7, name: pallet}\n"
        "  - {id: 300, name: forklift, color: [200, 0, 0]}\n"
    )
    labels = LabelSet.from_yaml(path)
    assert labels.name == "warehouse" and labels.ids == (0, 7, 300)
    assert labels.dtype == np.uint16 and labels.unlabeled_id == 65535
    assert labels.image_encoding == "mono16"
    np.testing.assert_array_equal(labels.colorize(np.array([300, 65535]))[0], [200, 0, 0])
    assert all(0 <= c <= 255 for c in labels.colors[1])  # pallet got a generated color


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("name: x\n", "needs a 'classes' list"),
        ("classes: []\n", "non-empty list"),
        ("classes:\n  - {id: 1, name: a}\n  - {id: 1, name: b}\n", "duplicate ids"),
        ("classes:\n  - {id: 1, name: a, color: [0, 0, 300]}\n", "color must be 3 values"),
        ("classes:\n  - {id: 1}\n", "at least 'name'"),
    ],
)
def test_bad_label_set_files(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(LabelSetError, match=message):
        LabelSet.from_yaml(path)


def test_missing_label_set_file(tmp_path):
    with pytest.raises(LabelSetError, match="not found"):
        LabelSet.from_name_or_path(str(tmp_path / "nope.yaml"))


def test_shipped_label_set_file_equals_the_builtin_default():
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "config/label_sets/cityscapes19.yaml"
    assert LabelSet.from_name_or_path(str(path)) == LabelSet.cityscapes()


def test_restrict_makes_unknown_ids_unlabeled_instead_of_wrapping_them():
    """mono16 ids 256, 269, 1000 into the uint8 Cityscapes set: never 0, 13, 232."""
    cityscapes = LabelSet.cityscapes()
    labels = np.array([[0, 13, 18, 255], [256, 269, 1000, 19]], dtype=np.uint16)
    out, unknown = cityscapes.restrict(labels)
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, [[0, 13, 18, 255], [255, 255, 255, 255]])
    np.testing.assert_array_equal(unknown, [19, 256, 269, 1000])


def test_restrict_keeps_a_sparse_set_and_refuses_negative_ids():
    sparse = LabelSet("sparse", (3, 40), ("a", "b"), ((1, 2, 3), (4, 5, 6)))
    out, unknown = sparse.restrict(np.array([3, 40, 4, -1, 255], dtype=np.int32))
    np.testing.assert_array_equal(out, [3, 40, 255, 255, 255])
    np.testing.assert_array_equal(unknown, [-1, 4])
    same, none = sparse.restrict(np.array([40, 3], dtype=np.uint8))
    np.testing.assert_array_equal(same, [40, 3])
    assert none.size == 0
