"""Post-processing: network scores -> labels and confidence at the camera's pixels.

The independent reference is PyTorch, as Hugging Face post-processes SegFormer:
``F.interpolate(scores, size=image, mode="bilinear", align_corners=False).argmax(0)``.
Labels must equal it exactly. The confidence definition tested is the maximum softmax
probability at the scores' resolution, bilinearly resampled the same way
(``F.interpolate(softmax(logits).amax(0))``), within 1e-5; at the image size that is the
softmax confidence of each pixel's label.

Probabilities (a softmax head) are labeled as their logits would be: torch's argmax of
the resampled ``log(max(p, 1e-30))``; their confidence is the resampled maximum probability.

Every exact case runs three ways: as the module chooses, with every boundary pixel
gathered and resampled one by one, and with every channel plane resampled, so both
resampling paths are held to the reference whatever the data.

Letterbox boxes (``keep_aspect_pad``) are checked against torch where the content's score
rows/columns are a whole number (crop, then interpolate: the same scale), and otherwise
against the definition computed here in float64, independently of the module.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from seg_perception.engines import postprocess
from seg_perception.engines.postprocess import (
    axis_samples,
    class_ids_to_labels,
    logits_to_labels,
    output_to_labels,
    probabilities_to_labels,
)
from seg_perception.engines.preprocess import Letterbox, Preprocessor

torch = pytest.importorskip("torch", reason="torch is the reference for bilinear + argmax")
F = torch.nn.functional

# Agreement with the float64 definition (see assert_labels_within_rounding).
DEFINITION_TOLERANCE = 1e-4
PATHS = {"auto": None, "points": float("inf"), "planes": 0.0}


@pytest.fixture(params=list(PATHS))
def path(request, monkeypatch) -> str:
    """Force boundary resolution through one resampling path (or let the module choose).

    Forced paths also use odd, small chunks of points and bands of rows, so every chunk
    and band edge is crossed many times.
    """
    if PATHS[request.param] is not None:
        monkeypatch.setattr(postprocess, "PLANE_TO_POINT_COST", PATHS[request.param])
        monkeypatch.setattr(postprocess, "POINT_CHUNK", 997)
        monkeypatch.setattr(postprocess, "DENSE_BAND_ELEMENTS", 3001)
    return request.param


def torch_reference(
    scores: np.ndarray, size: tuple[int, int], softmax: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Labels (argmax of bilinearly upsampled scores) and confidence, by PyTorch."""
    tensor = torch.from_numpy(np.ascontiguousarray(scores, dtype=np.float32))[None]
    upsampled = F.interpolate(tensor, size=size, mode="bilinear", align_corners=False)[0]
    top = (torch.softmax(tensor, dim=1) if softmax else tensor).amax(dim=1, keepdim=True)
    confidence = F.interpolate(top, size=size, mode="bilinear", align_corners=False)[0, 0]
    return upsampled.argmax(dim=0).numpy(), confidence.numpy()


def definition_reference(
    scores: np.ndarray, box: Letterbox, probabilities: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """The definition in float64, written out independently of the module.

    A camera pixel center (i + 0.5) sits at (i + 0.5) * resized / image network pixels,
    i.e. at that times cells / network score cells; minus 0.5 for the cell centers,
    clamped at 0 and at the last cell. Returns resampled scores (C, H, W) and resampled
    max softmax probability (H, W); for ``probabilities``, the resampled
    ``log(max(p, 1e-30))`` and the resampled maximum probability.
    """

    def axis(out, resized, image, network, cells):
        position = (np.arange(out) + 0.5) * resized / image * cells / network - 0.5
        position = np.maximum(position, 0.0)
        low = np.minimum(np.floor(position).astype(int), cells - 1)
        high = np.minimum(low + 1, cells - 1)
        return low, high, np.clip(position - low, 0.0, 1.0)

    scores = scores.astype(np.float64)
    height, width = box.image_size
    r0, r1, wr = axis(height, box.resized[0], height, box.network_size[0], scores.shape[1])
    c0, c1, wc = axis(width, box.resized[1], width, box.network_size[1], scores.shape[2])

    def resample(values):
        across = values[..., c0] * (1 - wc) + values[..., c1] * wc
        return across[..., r0, :] * (1 - wr)[:, None] + across[..., r1, :] * wr[:, None]

    if probabilities:
        return resample(np.log(np.maximum(scores, 1e-30))), resample(scores.max(axis=0))
    shifted = np.exp(scores - scores.max(axis=0))
    return resample(scores), resample((shifted / shifted.sum(axis=0)).max(axis=0))


def assert_labels_within_rounding(
    labels: np.ndarray, resampled: np.ndarray, exact_ties: bool = False
) -> None:
    """Each label is a class whose float64 resampled score is the maximum, up to float32
    rounding of the resampling (which may legitimately decide near-ties either way).

    The float32 sample positions (torch's, which the module reproduces) are off by up to
    half an ulp of the cell index (3e-5 cells at 1024 cells), so scores and confidence are
    compared with the float64 definition to 1e-4, not to float32 rounding.

    With continuous scores such near-ties are rare, and that is checked too; with
    ``exact_ties`` (integer scores) many pixels tie exactly and either class is right.
    """
    top = resampled.max(axis=0)
    chosen = np.take_along_axis(resampled, labels[None].astype(np.intp), axis=0)[0]
    tolerance = DEFINITION_TOLERANCE * (1.0 + np.abs(top))
    worst = float((top - chosen - tolerance).max())
    assert worst <= 0.0, f"a label is {worst:.3g} below the maximum beyond rounding"
    if exact_ties:
        return
    near_ties = float((labels != resampled.argmax(axis=0)).mean())
    assert near_ties <= 1e-3, f"{near_ties:.2%} of labels differ from the float64 argmax"


def smooth_logits(rng: np.random.Generator, classes: int, height: int, width: int) -> np.ndarray:
    """Logits of a trained-looking net: smooth fields, so class regions with thin borders."""
    coarse = rng.normal(scale=4.0, size=(classes, height // 32 + 2, width // 32 + 2))
    return np.stack(
        [cv2.resize(c.astype(np.float32), (width, height), cv2.INTER_CUBIC) for c in coarse]
    )


def stretch(image: tuple[int, int], network: tuple[int, int]) -> Letterbox:
    return Letterbox(image, network, network)


# (classes, logits h, w, image H, W): full resolution (a CNN), SegFormer's 1/4, 1/8,
# 1/32, KITTI's odd sizes, a net at 512x1024 for a KITTI camera (rows shrink, columns
# grow), and one axis at scale 1.
CASES = [
    (20, 512, 1024, 512, 1024),
    (19, 128, 256, 512, 1024),
    (19, 64, 128, 512, 1024),
    (19, 16, 32, 512, 1024),
    (20, 12, 39, 375, 1242),
    (19, 94, 311, 375, 1242),
    (20, 512, 1024, 375, 1242),
    (6, 375, 311, 375, 1242),
    (6, 94, 1242, 375, 1242),
]


@pytest.mark.parametrize("kind", ["noise", "smooth"])
@pytest.mark.parametrize(("classes", "h", "w", "height", "width"), CASES)
def test_labels_equal_torch_upsample_then_argmax(classes, h, w, height, width, kind, path):
    rng = np.random.default_rng(classes * h + w)
    if kind == "noise":  # boundaries everywhere: an untrained net
        logits = rng.normal(size=(classes, h, w)).astype(np.float32)
    else:
        logits = smooth_logits(rng, classes, h, w)
    labels, confidence = logits_to_labels(logits, stretch((height, width), (height, width)))
    expected_labels, expected_confidence = torch_reference(logits, (height, width))

    assert labels.shape == (height, width) and labels.dtype == np.uint8
    assert confidence.shape == (height, width) and confidence.dtype == np.float32
    mismatched = int((labels != expected_labels).sum())
    assert mismatched == 0, f"{mismatched} labels differ from torch"
    np.testing.assert_allclose(confidence, expected_confidence, rtol=0, atol=1e-5)


def test_smooth_logits_take_the_boundary_shortcut_and_noise_does_not(monkeypatch):
    """The fixture data exercise what they claim: few boundary pixels vs almost all."""
    rng = np.random.default_rng(3)
    seen = []
    real = postprocess._resample_points

    def counting(scores, rows, cols, y, x, *rest):
        seen.append(y.size)
        return real(scores, rows, cols, y, x, *rest)

    monkeypatch.setattr(postprocess, "_resample_points", counting)
    box = stretch((512, 1024), (512, 1024))
    logits_to_labels(smooth_logits(rng, 19, 128, 256), box)
    assert 0 < sum(seen) < 0.2 * 512 * 1024
    calls = len(seen)
    logits_to_labels(rng.normal(size=(19, 128, 256)).astype(np.float32), box)
    assert len(seen) == calls, "noise should resample whole planes, not gather points"


def test_full_resolution_confidence_is_the_softmax_of_each_pixel():
    rng = np.random.default_rng(5)
    logits = (rng.normal(size=(20, 375, 1242)) * 6).astype(np.float32)
    labels, confidence = logits_to_labels(logits, stretch((375, 1242), (375, 1242)))
    probabilities = torch.softmax(torch.from_numpy(logits), dim=0)
    top, index = probabilities.max(dim=0)
    np.testing.assert_array_equal(labels, index.numpy())
    np.testing.assert_allclose(confidence, top.numpy(), rtol=1e-6, atol=1e-7)


def test_ties_go_to_the_lowest_class_like_torch():
    rng = np.random.default_rng(6)
    logits = rng.normal(size=(5, 64, 128)).astype(np.float32)
    logits[3] = logits[1]  # exact ties everywhere between classes 1 and 3
    logits[4] = logits[:4].max(axis=0)  # class 4 ties the maximum at every cell
    labels, _ = logits_to_labels(logits, stretch((64, 128), (64, 128)))
    np.testing.assert_array_equal(labels, torch_reference(logits, (64, 128))[0])
    assert not (labels == 3).any() and not (labels == 4).any()
    # Resampled, class 1 and 3 still tie everywhere; class 4 (the upper envelope) may now
    # lead strictly where the cells' winners differ, and torch says so too.
    labels, _ = logits_to_labels(logits, stretch((256, 512), (256, 512)))
    np.testing.assert_array_equal(labels, torch_reference(logits, (256, 512))[0])
    assert not (labels == 3).any() and (labels == 4).any()


def test_probabilities_input_labels_like_its_logits_and_max_probability(path):
    """A softmax head: labels are torch's argmax of the resampled log-probabilities (the
    logits' labels), confidence the resampled max probability; at the image size, the
    argmax and the maximum of p themselves."""
    rng = np.random.default_rng(7)
    for logits in [smooth_logits(rng, 19, 94, 311), rng.normal(size=(19, 94, 311)) * 3]:
        logits = logits.astype(np.float32)
        probabilities = torch.softmax(torch.from_numpy(logits), 0).numpy()
        box = stretch((375, 1242), (375, 1242))
        # A softmax head does not move labels: the logits give the same, up to the float32
        # rounding of log(softmax(l)) = l - logsumexp(l) at near-ties.
        from_logits, _ = logits_to_labels(logits, box)
        assert (from_logits != probabilities_to_labels(probabilities, box)[0]).mean() < 1e-4
        # Exactly torch's, also where probabilities underflowed to 0 (floored at 1e-30).
        probabilities[:, :5] = np.where(probabilities[:, :5] < 1e-3, 0.0, probabilities[:, :5])
        labels, confidence = probabilities_to_labels(probabilities, box)
        log_probabilities = np.log(np.maximum(probabilities, np.float32(1e-30)))
        expected_labels, _ = torch_reference(log_probabilities, (375, 1242))
        _, expected_confidence = torch_reference(probabilities, (375, 1242), softmax=False)
        np.testing.assert_array_equal(labels, expected_labels)
        np.testing.assert_allclose(confidence, expected_confidence, rtol=0, atol=1e-6)

    full = torch.softmax(torch.from_numpy(smooth_logits(rng, 19, 375, 1242)), 0).numpy()
    labels, confidence = probabilities_to_labels(full, stretch((375, 1242), (375, 1242)))
    np.testing.assert_array_equal(labels, full.argmax(axis=0))
    np.testing.assert_array_equal(confidence, full.max(axis=0))


def test_probabilities_that_are_logits_are_refused():
    logits = np.random.default_rng(8).normal(scale=3, size=(4, 32, 64)).astype(np.float32)
    with pytest.raises(ValueError, match="does the model output logits"):
        probabilities_to_labels(logits, stretch((64, 128), (64, 128)))


def test_letterbox_whose_content_is_whole_score_rows_equals_torch_on_the_crop(path):
    """250x1000 into 512x1024 keeps aspect at 256x1024: 64 of the 128 score rows.

    Cropping those rows and interpolating to 250x1000 has the same scale, so torch is the
    reference -- except in the bottom rows, whose bilinear neighbour is score row 64 (the
    first padding row), which the crop clamps away: the definition samples it, as the
    GPU path does. Those rows are checked against the float64 definition.
    """
    box = Preprocessor(input_size=(512, 1024), resize="keep_aspect_pad").letterbox(250, 1000)
    assert box.resized == (256, 1024)
    inside = int(np.sum((np.arange(250) + 0.5) * 64 / 250 - 0.5 <= 63))
    assert inside == 248
    rng = np.random.default_rng(9)
    for logits in [smooth_logits(rng, 19, 128, 256), rng.normal(size=(19, 128, 256))]:
        logits = logits.astype(np.float32)
        labels, confidence = logits_to_labels(logits, box)
        expected_labels, expected_confidence = torch_reference(logits[:, :64], (250, 1000))
        np.testing.assert_array_equal(labels[:inside], expected_labels[:inside])
        np.testing.assert_allclose(
            confidence[:inside], expected_confidence[:inside], rtol=0, atol=1e-5
        )
        resampled, definition_confidence = definition_reference(logits, box)
        assert_labels_within_rounding(labels, resampled)
        np.testing.assert_allclose(
            confidence, definition_confidence, rtol=0, atol=DEFINITION_TOLERANCE
        )


@pytest.mark.parametrize("logits_size", [(128, 256), (512, 1024), (16, 32)])
def test_letterbox_matches_the_definition_and_never_reads_padding(logits_size, path):
    """KITTI 375x1242 into 512x1024: content 309x1024, rows 309-511 are padding."""
    box = Preprocessor(input_size=(512, 1024), resize="keep_aspect_pad").letterbox(375, 1242)
    assert box.resized == (309, 1024)
    rng = np.random.default_rng(10)
    logits = smooth_logits(rng, 19, *logits_size)
    labels, confidence = logits_to_labels(logits, box)
    resampled, expected_confidence = definition_reference(logits, box)
    assert_labels_within_rounding(labels, resampled)
    np.testing.assert_allclose(confidence, expected_confidence, rtol=0, atol=DEFINITION_TOLERANCE)

    # Score rows that only padding covers are never read: NaN there changes nothing.
    first_padding_row = -(-309 * logits_size[0] // 512) + 1
    poisoned = logits.copy()
    poisoned[:, first_padding_row:] = np.nan
    again, again_confidence = logits_to_labels(poisoned, box)
    np.testing.assert_array_equal(again, labels)
    np.testing.assert_array_equal(again_confidence, confidence)


def test_letterbox_at_full_resolution_is_a_crop():
    """A 300x1024 image padded into 512x1024 with full-resolution logits: no resampling."""
    box = Preprocessor(input_size=(512, 1024), resize="keep_aspect_pad").letterbox(300, 1024)
    assert box.resized == (300, 1024)
    logits = np.random.default_rng(11).normal(size=(20, 512, 1024)).astype(np.float32)
    logits[:, 300:] = np.nan
    labels, confidence = logits_to_labels(logits, box)
    expected_labels, expected_confidence = torch_reference(logits[:, :300], (300, 1024))
    np.testing.assert_array_equal(labels, expected_labels)
    np.testing.assert_allclose(confidence, expected_confidence, rtol=1e-6, atol=1e-7)


def test_more_than_256_classes_and_uint16_labels(path):
    rng = np.random.default_rng(12)
    logits = rng.normal(size=(300, 16, 32)).astype(np.float32)
    labels, _ = logits_to_labels(logits, stretch((64, 128), (64, 128)), np.dtype(np.uint16))
    expected, _ = torch_reference(logits, (64, 128))
    assert labels.dtype == np.uint16 and labels.max() > 255
    np.testing.assert_array_equal(labels, expected)


def test_half_precision_and_non_contiguous_logits_are_accepted():
    rng = np.random.default_rng(13)
    logits = rng.normal(size=(19, 128, 256)).astype(np.float16)
    labels, _ = logits_to_labels(logits, stretch((512, 1024), (512, 1024)))
    expected, _ = torch_reference(logits.astype(np.float32), (512, 1024))
    np.testing.assert_array_equal(labels, expected)
    channel_last = np.ascontiguousarray(logits.astype(np.float32).transpose(1, 2, 0))
    again, _ = logits_to_labels(channel_last.transpose(2, 0, 1), stretch((512, 1024), (512, 1024)))
    np.testing.assert_array_equal(again, expected)


def test_nan_logits_give_nan_confidence_not_a_confident_label():
    logits = np.random.default_rng(14).normal(size=(5, 32, 64)).astype(np.float32)
    logits[2, 10, 20] = np.nan
    _, confidence = logits_to_labels(logits, stretch((32, 64), (32, 64)))
    assert (
        np.isnan(confidence[10, 20])
        and np.isfinite(np.delete(confidence.ravel(), 10 * 64 + 20)).all()
    )


def test_bad_shapes_are_refused():
    box = stretch((8, 8), (8, 8))
    with pytest.raises(ValueError, match=r"\(C, h, w\)"):
        logits_to_labels(np.zeros((8, 8), np.float32), box)
    with pytest.raises(ValueError, match=r"\(C, h, w\)"):
        logits_to_labels(np.zeros((0, 8, 8), np.float32), box)
    with pytest.raises(ValueError, match=r"\(h, w\)"):
        class_ids_to_labels(np.zeros((1, 8, 8), np.int64), box)
    with pytest.raises(ValueError, match="output_kind"):
        output_to_labels(np.zeros((1, 8, 8), np.float32), box, np.dtype(np.uint8), "scores")


def test_class_ids_are_resampled_nearest_like_torch_nearest_exact():
    ids = np.random.default_rng(15).integers(0, 19, size=(128, 256))
    labels = class_ids_to_labels(ids, stretch((512, 1024), (512, 1024)))
    expected = F.interpolate(
        torch.from_numpy(ids)[None, None].float(), (512, 1024), mode="nearest-exact"
    )
    np.testing.assert_array_equal(labels, expected[0, 0].numpy().astype(np.uint8))
    labels, confidence = output_to_labels(
        ids, stretch((512, 1024), (512, 1024)), np.dtype(np.uint8), "class_ids"
    )
    assert confidence is None and labels.shape == (512, 1024)


def test_axis_weights_are_torchs_bit_for_bit():
    """One-hot rows through torch reveal its exact weights; the module must reproduce them."""
    for cells, out in [(94, 375), (311, 1242), (12, 375), (512, 375), (128, 512), (7, 30)]:
        eye = torch.eye(cells, dtype=torch.float32)[:, None, None, :]
        weights = F.interpolate(eye, size=(1, out), mode="bilinear", align_corners=False)
        weights = weights[:, 0, 0, :].numpy()  # (cells, out)
        samples = axis_samples(out, out, out, out, cells)
        mine = np.zeros((cells, out), np.float32)
        np.add.at(mine, (samples.low, np.arange(out)), samples.low_weight)
        np.add.at(mine, (samples.high, np.arange(out)), samples.high_weight)
        np.testing.assert_array_equal(mine, weights, err_msg=f"{cells} -> {out}")


@pytest.mark.parametrize(
    ("classes", "h", "w", "height", "width"),
    [
        (19, 128, 256, 512, 1024),
        (5, 12, 39, 375, 1242),
        (5, 512, 1024, 375, 1242),
        (6, 94, 1242, 375, 1242),
        (6, 375, 311, 375, 1242),
    ],
)
def test_resampled_scores_are_torchs_bit_for_bit(classes, h, w, height, width):
    """Not only the argmax: every resampled score, through both paths' arithmetic, is the
    float32 value torch computes (its generic CPU kernel: outputs with H + W > 128)."""
    logits = np.random.default_rng(16).normal(size=(classes, h, w)).astype(np.float32)
    rows = axis_samples(height, height, height, height, h)
    cols = axis_samples(width, width, width, width, w)
    y, x = np.nonzero(np.ones((height, width), bool))
    values = postprocess._resample_points(logits, rows, cols, y, x).reshape(classes, height, width)
    tensor = torch.from_numpy(logits)[None]
    expected = F.interpolate(tensor, size=(height, width), mode="bilinear", align_corners=False)
    np.testing.assert_array_equal(values, expected[0].numpy())
    # The plane path (in small bands, to cross band edges) computes the same values.
    planes = np.empty_like(values)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(postprocess, "DENSE_BAND_ELEMENTS", 3001)
        for start, stop, channel, band in postprocess._resampled_bands(logits, rows, cols):
            planes[channel, start:stop] = band
    np.testing.assert_array_equal(planes, values)


@st.composite
def geometries(draw):
    classes = draw(st.integers(1, 6))
    h, w = draw(st.integers(1, 12)), draw(st.integers(1, 12))
    image = (draw(st.integers(1, 40)), draw(st.integers(1, 40)))
    mode = draw(st.sampled_from(["stretch", "keep_aspect_pad", "none"]))
    network = (draw(st.integers(1, 48)), draw(st.integers(1, 48)))
    box = Preprocessor(input_size=None if mode == "none" else network, resize=mode).letterbox(
        *image
    )
    if mode == "none":  # the network ran at the image size; scores at any size
        box = Letterbox(image, image, image)
    return classes, h, w, box, draw(st.integers(0, 2**32 - 1)), draw(st.booleans())


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(geometries(), st.booleans())
def test_any_geometry_matches_the_definition_and_both_paths_agree(geometry, probabilities):
    classes, h, w, box, seed, quantized = geometry
    rng = np.random.default_rng(seed)
    scores = rng.normal(scale=3.0, size=(classes, h, w)).astype(np.float32)
    if quantized:  # integer logits: exact ties in the scores and in their resampling
        scores = np.round(scores)
    if probabilities:
        scores = torch.softmax(torch.from_numpy(scores), dim=0).numpy()
    convert = probabilities_to_labels if probabilities else logits_to_labels
    labels, confidence = convert(scores, box)
    resampled, expected_confidence = definition_reference(scores, box, probabilities)

    assert labels.shape == confidence.shape == box.image_size
    assert labels.max(initial=0) < classes
    assert_labels_within_rounding(labels, resampled, exact_ties=quantized)
    np.testing.assert_allclose(confidence, expected_confidence, rtol=0, atol=DEFINITION_TOLERANCE)
    assert ((confidence >= 1.0 / classes - 1e-6) & (confidence <= 1 + 1e-6)).all()

    # The point-by-point and plane-by-plane paths do the same arithmetic: identical labels.
    # (hypothesis and function-scoped fixtures do not mix, so no monkeypatch here.)
    saved = (
        postprocess.PLANE_TO_POINT_COST,
        postprocess.POINT_CHUNK,
        postprocess.DENSE_BAND_ELEMENTS,
    )
    try:
        for cost in (0.0, float("inf")):
            postprocess.PLANE_TO_POINT_COST, postprocess.POINT_CHUNK = cost, 7
            postprocess.DENSE_BAND_ELEMENTS = 23
            forced, _ = convert(scores, box)
            np.testing.assert_array_equal(forced, labels)
    finally:
        (
            postprocess.PLANE_TO_POINT_COST,
            postprocess.POINT_CHUNK,
            postprocess.DENSE_BAND_ELEMENTS,
        ) = saved


@settings(max_examples=60, deadline=None)
@given(
    st.integers(1, 6),
    st.integers(1, 40),
    st.integers(1, 40),
    st.integers(0, 2**32 - 1),
)
def test_scores_at_the_image_size_are_plain_argmax_and_softmax(classes, height, width, seed):
    logits = np.random.default_rng(seed).normal(scale=5, size=(classes, height, width))
    logits = logits.astype(np.float32)
    labels, confidence = logits_to_labels(logits, stretch((height, width), (height, width)))
    np.testing.assert_array_equal(labels, logits.argmax(axis=0))
    expected = torch.softmax(torch.from_numpy(logits), dim=0).amax(dim=0).numpy()
    np.testing.assert_allclose(confidence, expected, rtol=1e-6, atol=1e-7)
