"""Confusion matrix and scores (seg_perception.core.metrics) against hand-computed values."""

from __future__ import annotations

import json

import numpy as np
import pytest

from seg_perception.core.metrics import ConfusionMatrix, confusion_matrix

IGNORE = 255


def test_hand_computed_confusion_and_scores():
    truth = np.array([0, 0, 0, 1, 1, 2, 2, 2, 2, IGNORE])
    pred = np.array([0, 0, 1, 1, 2, 2, 2, 0, 2, 1])
    cm = ConfusionMatrix(3).update(pred, truth)
    # rows truth, columns prediction; the ignored pixel (predicted 1) counts nowhere
    np.testing.assert_array_equal(cm.matrix, [[2, 1, 0], [0, 1, 1], [1, 0, 3]])
    np.testing.assert_array_equal(cm.true_positives, [2, 1, 3])
    np.testing.assert_array_equal(cm.false_positives, [1, 1, 1])
    np.testing.assert_array_equal(cm.false_negatives, [1, 1, 1])
    np.testing.assert_allclose(cm.iou, [2 / 4, 1 / 3, 3 / 5])
    np.testing.assert_allclose(cm.precision, [2 / 3, 1 / 2, 3 / 4])
    np.testing.assert_allclose(cm.recall, [2 / 3, 1 / 2, 3 / 4])
    np.testing.assert_allclose(cm.f1, [2 * 2 / 6, 2 / 4, 6 / 8])
    assert cm.mean_iou == pytest.approx((0.5 + 1 / 3 + 0.6) / 3)
    assert cm.accuracy == pytest.approx(6 / 9)
    assert cm.total == 9
    assert cm.frames == 1


def test_ignore_pixels_are_excluded_whatever_the_prediction():
    truth = np.full((4, 4), IGNORE, dtype=np.uint8)
    truth[0, 0] = 1
    pred = np.zeros((4, 4), dtype=np.uint8)  # wrong everywhere, but only one pixel counts
    pred[0, 0] = 1
    cm = ConfusionMatrix(2).update(pred, truth)
    assert cm.total == 1
    assert cm.accuracy == 1.0
    np.testing.assert_array_equal(cm.matrix, [[0, 0], [0, 1]])
    assert np.isnan(cm.iou[0])  # class 0: neither in truth nor prediction (scored pixels)
    assert cm.mean_iou == 1.0


def test_unlabeled_prediction_is_a_miss_of_the_true_class_only():
    truth = np.array([0, 0, 1, 1])
    pred = np.array([0, IGNORE, 1, IGNORE])
    cm = ConfusionMatrix(2).update(pred, truth)
    np.testing.assert_array_equal(cm.matrix, [[1, 0], [0, 1]])
    np.testing.assert_array_equal(cm.missed, [1, 1])
    np.testing.assert_array_equal(cm.false_negatives, [1, 1])
    np.testing.assert_array_equal(cm.false_positives, [0, 0])
    np.testing.assert_allclose(cm.iou, [0.5, 0.5])
    np.testing.assert_allclose(cm.precision, [1.0, 1.0])
    assert cm.accuracy == 0.5
    # the plain matrix function leaves the misses out
    np.testing.assert_array_equal(confusion_matrix(pred, truth, 2), [[1, 0], [0, 1]])


def test_truth_against_itself_scores_one_for_present_classes():
    rng = np.random.default_rng(0)
    truth = rng.choice([0, 2, 5, IGNORE], size=(40, 60)).astype(np.uint8)
    cm = ConfusionMatrix(19).update(truth, truth)
    present = np.zeros(19, bool)
    present[[0, 2, 5]] = True
    np.testing.assert_array_equal(cm.present, present)
    np.testing.assert_array_equal(cm.iou[present], 1.0)
    assert np.isnan(cm.iou[~present]).all()
    assert cm.mean_iou == 1.0
    assert cm.accuracy == 1.0
    assert cm.total == int(np.count_nonzero(truth != IGNORE))


def test_prediction_shifted_by_known_columns():
    # class 0 in columns 0-49, class 1 in 50-99; the prediction's boundary is 10 px right
    truth = np.zeros((20, 100), dtype=np.uint8)
    truth[:, 50:] = 1
    for shift in (0, 10, 25):
        pred = np.zeros_like(truth)
        pred[:, 50 + shift :] = 1
        cm = ConfusionMatrix(2).update(pred, truth)
        # class 0: TP 50, FP shift; class 1: TP 50 - shift, FN shift (per row, 20 rows)
        np.testing.assert_array_equal(cm.matrix, [[50 * 20, 0], [shift * 20, (50 - shift) * 20]])
        np.testing.assert_allclose(cm.iou, [50 / (50 + shift), (50 - shift) / 50])
        assert cm.accuracy == pytest.approx((100 - shift) / 100)
        assert cm.mean_iou == pytest.approx((50 / (50 + shift) + (50 - shift) / 50) / 2)


def test_mean_iou_counts_classes_present_in_truth_or_prediction():
    truth = np.array([0, 0, 1, 1])
    pred = np.array([0, 0, 1, 2])  # class 2 predicted, absent from the truth
    cm = ConfusionMatrix(4).update(pred, truth)
    np.testing.assert_allclose(cm.iou[:3], [1.0, 0.5, 0.0])
    assert np.isnan(cm.iou[3])  # class 3: nowhere, left out of the mean
    np.testing.assert_array_equal(cm.present, [True, True, True, False])
    assert cm.mean_iou == pytest.approx(1.5 / 3)
    assert np.isnan(cm.recall[2]) and cm.precision[2] == 0.0
    assert cm.mean_recall == pytest.approx(0.75)  # over classes in the truth


def test_accumulation_sums_counts_not_scores():
    a_truth, a_pred = np.array([0, 0, 0, 0]), np.array([0, 0, 0, 1])
    b_truth, b_pred = np.array([1]), np.array([1])
    cm = ConfusionMatrix(2).update(a_pred, a_truth).update(b_pred, b_truth)
    one = ConfusionMatrix(2).update(np.r_[a_pred, b_pred], np.r_[a_truth, b_truth])
    np.testing.assert_array_equal(cm.matrix, one.matrix)
    assert cm.frames == 2
    np.testing.assert_allclose(cm.iou, [3 / 4, 1 / 2])  # not the mean of per-frame IoUs
    added = ConfusionMatrix(2).update(a_pred, a_truth) + ConfusionMatrix(2).update(b_pred, b_truth)
    np.testing.assert_array_equal(added.matrix, cm.matrix)
    assert added.frames == 2


def test_non_contiguous_class_ids():
    cm = ConfusionMatrix(class_ids=(3, 7, 40), ignore_id=0)
    cm.update(np.array([3, 7, 40, 40, 0]), np.array([3, 7, 7, 40, 40]))
    np.testing.assert_array_equal(cm.matrix, [[1, 0, 0], [0, 1, 1], [0, 0, 1]])
    np.testing.assert_array_equal(cm.missed, [0, 0, 1])
    np.testing.assert_allclose(cm.iou, [1.0, 0.5, 1 / 3])


def test_unknown_ids_and_bad_shapes_raise_clear_errors():
    cm = ConfusionMatrix(19)
    with pytest.raises(ValueError, match=r"prediction holds label id\(s\) 19, 40 .*0-18"):
        cm.update(np.array([19, 40, 1]), np.array([1, 1, 1]))
    with pytest.raises(ValueError, match=r"ground truth holds label id\(s\) -1"):
        cm.update(np.array([1, 1]), np.array([-1, 1]))
    with pytest.raises(ValueError, match="shape"):
        cm.update(np.zeros((2, 3), np.uint8), np.zeros((3, 2), np.uint8))
    with pytest.raises(ValueError, match="integer"):
        cm.update(np.array([0.5]), np.array([0]))
    assert cm.total == 0 and cm.frames == 0  # failed updates added nothing
    with pytest.raises(ValueError, match="ignore_id"):
        ConfusionMatrix(class_ids=(0, 255))
    with pytest.raises(ValueError, match="num_classes"):
        ConfusionMatrix(0)
    with pytest.raises(ValueError, match="different class sets"):
        _ = ConfusionMatrix(2) + ConfusionMatrix(3)


def test_empty_confusion_scores_are_nan_and_json_null():
    cm = ConfusionMatrix(2)
    assert np.isnan(cm.mean_iou) and np.isnan(cm.accuracy)
    data = cm.to_dict(["a", "b"])
    assert data["mean_iou"] is None and data["classes"][0]["iou"] is None
    json.dumps(data, allow_nan=False)


def test_to_dict_holds_per_class_scores_and_the_matrix():
    cm = ConfusionMatrix(2).update(np.array([0, 1, 1]), np.array([0, 0, 1]))
    data = cm.to_dict(["road", "car"])
    assert [c["name"] for c in data["classes"]] == ["road", "car"]
    assert data["classes"][0]["iou"] == pytest.approx(0.5)
    assert data["classes"][1]["iou"] == pytest.approx(0.5)
    assert data["classes"][0]["support"] == 2 and data["classes"][1]["predicted"] == 2
    assert data["confusion_matrix"] == [[1, 1], [0, 1]]
    assert data["mean_iou_classes"] == ["road", "car"]
    assert data["accuracy"] == pytest.approx(2 / 3)
    json.dumps(data, allow_nan=False)


def test_agrees_with_the_lidar_ground_score():
    """The 2-class IoU of ground equals eval-ground's score on the same points, with the
    segmenter's 'unknown' as an unlabeled prediction."""
    from seg_perception.lidar.evaluation import score_ground

    rng = np.random.default_rng(3)
    truth = rng.integers(0, 2, 5000)  # 0 ground, 1 obstacle
    truth[rng.random(5000) < 0.05] = IGNORE
    pred = rng.choice([0, 1, IGNORE], size=5000, p=[0.5, 0.45, 0.05])
    cm = ConfusionMatrix(2).update(pred, truth)
    ground = score_ground(pred == 0, truth == 0, truth != IGNORE)
    assert cm.iou[0] == pytest.approx(ground.iou)
    assert cm.precision[0] == pytest.approx(ground.precision)
    assert cm.recall[0] == pytest.approx(ground.recall)
    assert cm.f1[0] == pytest.approx(ground.f1)


def test_bincount_matches_a_naive_count():
    rng = np.random.default_rng(1)
    truth = rng.choice([*range(5), IGNORE], size=3000)
    pred = rng.choice([*range(5), IGNORE], size=3000)
    cm = ConfusionMatrix(5).update(pred, truth)
    for t in range(5):
        for p in range(5):
            assert cm.matrix[t, p] == np.count_nonzero((truth == t) & (pred == p))
        assert cm.missed[t] == np.count_nonzero((truth == t) & (pred == IGNORE))
