"""Tests for Image / CompressedImage <-> numpy with real rclpy messages.

Padded rows and big-endian data are packed by hand, so the reader is checked against
bytes it did not produce; round trips cover every encoding the builder writes.
"""

from __future__ import annotations

import array
import struct
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
from conftest import DATA  # ../shared/data or $SEG_PERCEPTION_DATA
from rclpy.serialization import deserialize_message, serialize_message
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header

from seg_perception.ros.errors import ConversionError
from seg_perception.ros.image_conversions import (
    array_to_compressed_image,
    array_to_image,
    compressed_image_to_array,
    image_encoding_dtype,
    image_to_array,
    image_to_rgb8,
    parse_compressed_format,
)

BAG = DATA / "rosbags" / "kitti_2011_09_26_ros2"
KITTI_IMAGE = DATA / "kitti_raw_2011_09_26" / "image_02" / "data" / "0000000000.png"

ENCODINGS = [
    "rgb8",
    "bgr8",
    "rgba8",
    "bgra8",
    "mono8",
    "mono16",
    "8UC1",
    "8UC3",
    "16UC1",
    "16SC1",
    "32SC1",
    "32FC1",
    "64FC1",
    "32FC3",
    "rgb16",
    "bayer_rggb8",
]


def random_image(encoding: str, height: int = 5, width: int = 7) -> np.ndarray:
    dtype, channels = image_encoding_dtype(encoding)
    shape = (height, width) if channels == 1 else (height, width, channels)
    rng = np.random.default_rng(len(encoding))
    if dtype.kind == "f":
        return rng.standard_normal(shape).astype(dtype) * 100
    info = np.iinfo(dtype)
    return rng.integers(info.min, info.max, shape, endpoint=True).astype(dtype)


def make_image(
    height: int, width: int, encoding: str, step: int, data: bytes, is_bigendian: bool = False
) -> Image:
    """An rclpy Image assembled by hand, independent of the code under test."""
    msg = Image(height=height, width=width, encoding=encoding, step=step, is_bigendian=is_bigendian)
    msg.data = array.array("B", data)
    return msg


def padded_bytes(image: np.ndarray, step: int, order: str = "<") -> bytes:
    """Rows of ``image`` in byte order ``order``, each padded with 0xEE to ``step`` bytes."""
    rows = image.astype(image.dtype.newbyteorder(order)).reshape(image.shape[0], -1)
    return b"".join(row.tobytes().ljust(step, b"\xee") for row in rows)


# --------------------------------------------------------------------------------------
# sensor_msgs/Image
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_round_trip_every_encoding(encoding: str) -> None:
    image = random_image(encoding)
    header = Header(frame_id="camera")
    msg = array_to_image(image, encoding, header)
    dtype, channels = image_encoding_dtype(encoding)
    assert (msg.height, msg.width, msg.encoding) == (5, 7, encoding)
    assert msg.step == 7 * channels * dtype.itemsize and msg.is_bigendian == 0
    assert msg.header.frame_id == "camera"
    back = image_to_array(msg)
    assert back.dtype == dtype and back.shape == image.shape
    np.testing.assert_array_equal(back, image)
    assert np.shares_memory(back, np.frombuffer(msg.data, np.uint8))  # zero-copy read


@pytest.mark.parametrize("encoding", ["rgb8", "mono8", "mono16", "32FC1", "bgra8", "64FC1"])
def test_padded_rows_read_as_strided_view(encoding: str) -> None:
    image = random_image(encoding, 4, 5)
    dtype, channels = image_encoding_dtype(encoding)
    step = 5 * channels * dtype.itemsize + 8 * dtype.itemsize
    msg = make_image(4, 5, encoding, step, padded_bytes(image, step))
    back = image_to_array(msg)
    np.testing.assert_array_equal(back, image)
    assert np.shares_memory(back, np.frombuffer(msg.data, np.uint8))
    assert back.strides[0] == step
    assert cv2.resize(back, (3, 2)).shape[:2] == (2, 3)  # OpenCV accepts the padded view


def test_big_endian_mono16_is_swapped_to_native() -> None:
    image = np.array([[1, 258, 65535], [4096, 0, 300]], dtype=np.uint16)
    packed = b"".join(struct.pack(">3H", *row) + b"\0\0" for row in image.tolist())
    msg = make_image(2, 3, "mono16", 8, packed, is_bigendian=True)
    back = image_to_array(msg)
    assert back.dtype == np.uint16 and back.dtype.isnative and back.flags.c_contiguous
    np.testing.assert_array_equal(back, image)


@pytest.mark.parametrize("encoding", ["32FC1", "16SC1", "rgb16"])
def test_big_endian_round_trip_from_packed_bytes(encoding: str) -> None:
    image = random_image(encoding, 3, 4)
    dtype, channels = image_encoding_dtype(encoding)
    step = 4 * channels * dtype.itemsize
    msg = make_image(3, 4, encoding, step, padded_bytes(image, step, ">"), is_bigendian=True)
    np.testing.assert_array_equal(image_to_array(msg), image)


def test_is_bigendian_is_irrelevant_for_bytes() -> None:
    image = random_image("rgb8")
    msg = make_image(5, 7, "rgb8", 21, image.tobytes(), is_bigendian=True)
    back = image_to_array(msg)
    np.testing.assert_array_equal(back, image)
    assert np.shares_memory(back, np.frombuffer(msg.data, np.uint8))


def test_step_not_multiple_of_element_size_is_copied() -> None:
    image = np.arange(6, dtype=np.uint16).reshape(2, 3)
    msg = make_image(2, 3, "mono16", 7, padded_bytes(image, 7))
    back = image_to_array(msg)
    assert back.flags.c_contiguous and back.flags.aligned
    np.testing.assert_array_equal(back, image)


def test_rosbags_style_numpy_data_and_bytes_are_read() -> None:
    image = random_image("bgr8")

    # What rosbags deserializes: data is a numpy uint8 array, is_bigendian an int.
    message = SimpleNamespace(
        height=5,
        width=7,
        step=21,
        encoding="bgr8",
        is_bigendian=0,
        data=np.frombuffer(image.tobytes(), np.uint8).copy(),
    )
    back = image_to_array(message)
    np.testing.assert_array_equal(back, image)
    assert np.shares_memory(back, message.data)
    message.data = image.tobytes()
    np.testing.assert_array_equal(image_to_array(message), image)
    np.testing.assert_array_equal(image_to_rgb8(message), image[..., ::-1])


@pytest.mark.parametrize("encoding", ["rgb8", "bgr8", "rgba8", "bgra8", "mono8"])
def test_image_to_rgb8(encoding: str) -> None:
    rgb = random_image("rgb8")
    stored = {
        "rgb8": rgb,
        "bgr8": rgb[..., ::-1],
        "rgba8": np.dstack([rgb, np.full(rgb.shape[:2], 9, np.uint8)]),
        "bgra8": np.dstack([rgb[..., ::-1], np.full(rgb.shape[:2], 9, np.uint8)]),
        "mono8": rgb[..., 0],
    }[encoding]
    out = image_to_rgb8(array_to_image(stored, encoding))
    expected = np.repeat(rgb[..., :1], 3, axis=2) if encoding == "mono8" else rgb
    assert out.dtype == np.uint8 and out.shape == (5, 7, 3)
    np.testing.assert_array_equal(out, expected)


def test_array_to_image_accepts_views_and_single_channel_axis() -> None:
    big = random_image("mono16", 6, 8).astype(">u2")
    msg = array_to_image(big[::2, 1::2], "mono16")
    np.testing.assert_array_equal(image_to_array(msg), big[::2, 1::2])
    depth = np.ones((3, 4, 1), np.float32)
    assert image_to_array(array_to_image(depth, "32FC1")).shape == (3, 4)


def test_built_image_survives_rclpy_serialization() -> None:
    image = random_image("rgb8", 9, 11)
    msg = array_to_image(image, "rgb8", Header(frame_id="cam"))
    received = deserialize_message(serialize_message(msg), Image)
    np.testing.assert_array_equal(image_to_array(received), image)


@pytest.mark.parametrize(
    ("height", "width", "encoding", "step", "nbytes", "match"),
    [
        (2, 3, "rgb8", 9, 17, r"Image data has 17 bytes but height \* step = 2 \* 9 = 18"),
        (2, 3, "rgb8", 8, 16, r"step 8 is smaller than width \* bytes per pixel = 3 \* 3 = 9"),
        (2, 3, "mono16", 5, 10, r"step 5 is smaller than .* 3 \* 2 = 6"),
        (2, 3, "yuv420", 9, 18, r"unknown image encoding 'yuv420'"),
        (2, 3, "", 9, 18, r"unknown image encoding ''"),
        (0, 3, "rgb8", 9, 0, r"image is empty \(0x3, rgb8\)"),
        (2, 0, "mono8", 0, 0, r"image is empty \(2x0, mono8\)"),
    ],
    ids=[
        "data-size",
        "step-too-small",
        "step-too-small-16",
        "unknown",
        "empty-encoding",
        "zero-height",
        "zero-width",
    ],
)
def test_bad_images_raise_specific_errors(height, width, encoding, step, nbytes, match) -> None:
    msg = make_image(height, width, encoding, step, b"\0" * nbytes)
    with pytest.raises(ConversionError, match=match):
        image_to_array(msg)


@pytest.mark.parametrize(
    ("image", "encoding", "match"),
    [
        (np.zeros((2, 3), np.float64), "32FC1", r"'32FC1' needs float32 data, got float64"),
        (np.zeros((2, 3), np.uint8), "rgb8", r"'rgb8' needs shape \(H, W, 3\), got \(2, 3\)"),
        (np.zeros((2, 3, 3), np.uint8), "mono8", r"'mono8' needs shape \(H, W\)"),
        (np.zeros((2, 3, 4), np.uint8), "rgb8", r"needs shape \(H, W, 3\), got \(2, 3, 4\)"),
        (np.zeros((0, 3, 3), np.uint8), "rgb8", r"image is empty \(0x3, rgb8\)"),
        (np.zeros((2, 3), np.uint8), "nv12", r"unknown image encoding 'nv12'"),
    ],
    ids=["dtype", "missing-channels", "extra-channels", "wrong-channels", "empty", "unknown"],
)
def test_bad_arrays_raise_specific_errors(image, encoding, match) -> None:
    with pytest.raises(ConversionError, match=match):
        array_to_image(image, encoding)


def test_image_to_rgb8_rejects_other_encodings() -> None:
    msg = array_to_image(np.zeros((2, 2), np.float32), "32FC1")
    with pytest.raises(ConversionError, match=r"needs an 8-bit color or mono image, got '32FC1'"):
        image_to_rgb8(msg)


# --------------------------------------------------------------------------------------
# sensor_msgs/CompressedImage
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("encoding", "expected_format"),
    [
        ("rgb8", "rgb8; png compressed bgr8"),
        ("rgba8", "rgba8; png compressed bgra8"),
        ("mono8", "mono8; png compressed mono8"),
        ("mono16", "mono16; png compressed mono16"),
        ("rgb16", "rgb16; png compressed bgr16"),
    ],
)
def test_png_round_trip_is_exact(encoding: str, expected_format: str) -> None:
    image = random_image(encoding, 16, 24)
    msg = array_to_compressed_image(image, "png", Header(frame_id="cam"))
    assert msg.format == expected_format and msg.header.frame_id == "cam"
    back = compressed_image_to_array(msg)
    assert back.dtype == image.dtype
    np.testing.assert_array_equal(back, image)


def test_bgr_input_is_declared_and_decodes_to_rgb() -> None:
    rgb = random_image("rgb8", 16, 24)
    msg = array_to_compressed_image(rgb[..., ::-1], "png", encoding="bgr8")
    assert msg.format == "bgr8; png compressed bgr8"
    np.testing.assert_array_equal(compressed_image_to_array(msg), rgb)


def smooth_rgb(height: int = 64, width: int = 96) -> np.ndarray:
    """A gradient with a red block: JPEG keeps it close, and channel order is visible."""
    y, x = np.mgrid[0:height, 0:width]
    image = np.dstack([x * 255 // width, y * 255 // height, np.full_like(x, 128)])
    image[8:24, 8:24] = (255, 0, 0)
    return image.astype(np.uint8)


def test_jpeg_round_trip_is_close_and_rgb_ordered() -> None:
    image = smooth_rgb()
    msg = array_to_compressed_image(image, "jpeg", jpeg_quality=95)
    assert msg.format == "rgb8; jpeg compressed bgr8"
    back = compressed_image_to_array(msg)
    assert back.shape == image.shape and back.dtype == np.uint8
    assert np.abs(back.astype(int) - image).mean() < 2.0
    assert back[16, 16, 0] > 240 and back[16, 16, 2] < 15  # red stays in channel 0
    gray = array_to_compressed_image(image[..., 1], "jpg")
    assert gray.format == "mono8; jpeg compressed mono8"
    assert compressed_image_to_array(gray).shape == (64, 96)
    rgba = array_to_compressed_image(np.dstack([image, image[..., :1]]), "jpeg")
    assert rgba.format == "rgba8; jpeg compressed bgr8"
    assert compressed_image_to_array(rgba).shape == (64, 96, 3)  # JPEG drops alpha


@pytest.mark.parametrize("fmt", ["jpeg", "png", "", "bgr8; jpeg compressed bgr8", "JPEG"])
def test_decode_honors_plain_and_transport_formats(fmt: str) -> None:
    rgb = smooth_rgb()
    ok, encoded = cv2.imencode(".jpg", rgb[..., ::-1])  # written by a C++ publisher
    assert ok
    msg = CompressedImage(format=fmt)
    msg.data = array.array("B", encoded.tobytes())
    back = compressed_image_to_array(msg)
    assert np.abs(back.astype(int) - rgb).mean() < 3.0


def test_parse_compressed_format() -> None:
    assert parse_compressed_format("rgb8; jpeg compressed bgr8") == ("jpeg", "rgb8", "bgr8", False)
    assert parse_compressed_format("png") == ("png", None, None, False)
    assert parse_compressed_format("32FC1; compressedDepth png") == ("png", "32FC1", None, True)
    assert parse_compressed_format("16UC1; compressedDepth") == ("png", "16UC1", None, True)


def compressed_depth(
    encoding: str, png_image: np.ndarray, quant: tuple[float, float]
) -> CompressedImage:
    ok, encoded = cv2.imencode(".png", png_image)
    assert ok
    msg = CompressedImage(format=f"{encoding}; compressedDepth png")
    msg.data = array.array("B", struct.pack("<i2f", 0, *quant) + encoded.tobytes())
    return msg


def test_compressed_depth_16uc1_and_32fc1() -> None:
    depth_mm = np.array([[0, 1500], [65535, 7]], dtype=np.uint16)
    np.testing.assert_array_equal(
        compressed_image_to_array(compressed_depth("16UC1", depth_mm, (0.0, 0.0))), depth_mm
    )
    quant_a, quant_b = 100.0, 10.0  # depth = A / (inverse - B); 0 means invalid
    inverse = np.array([[0, 60], [110, 30]], dtype=np.uint16)
    depth = compressed_image_to_array(compressed_depth("32FC1", inverse, (quant_a, quant_b)))
    assert depth.dtype == np.float32 and np.isnan(depth[0, 0])
    np.testing.assert_allclose(depth[~np.isnan(depth)], [2.0, 1.0, 5.0])


@pytest.mark.parametrize(
    ("fmt", "data", "match"),
    [
        ("jpeg", b"", r"CompressedImage \('jpeg'\) has no data"),
        ("jpeg", b"not an image at all", r"could not decode CompressedImage \('jpeg', 19 bytes\)"),
        ("h264", b"\0\0\0\1", r"unsupported CompressedImage format 'h264'"),
        ("16UC1; compressedDepth rvl", b"\0" * 20, r"unsupported CompressedImage format .* RVL"),
        ("16UC1; compressedDepth png", b"\0" * 40, r"does not hold a PNG after its 12-byte"),
    ],
    ids=["empty", "garbage", "h264", "rvl", "depth-without-png"],
)
def test_bad_compressed_images_raise_specific_errors(fmt: str, data: bytes, match: str) -> None:
    msg = CompressedImage(format=fmt)
    msg.data = array.array("B", data)
    with pytest.raises(ConversionError, match=match):
        compressed_image_to_array(msg)


@pytest.mark.parametrize(
    ("image", "codec", "match"),
    [
        (np.zeros((4, 4, 3), np.uint8), "tiff", r"cannot encode CompressedImage as 'tiff'"),
        (np.zeros((4, 4), np.uint16), "jpeg", r"jpeg cannot store 'mono16' images"),
        (np.zeros((4, 4), np.float32), "png", r"cannot compress a float32 array"),
        (np.zeros((0, 4, 3), np.uint8), "png", r"image is empty \(0x4, rgb8\)"),
    ],
    ids=["codec", "jpeg-16bit", "float", "empty"],
)
def test_bad_compression_inputs_raise_specific_errors(image, codec: str, match: str) -> None:
    with pytest.raises(ConversionError, match=match):
        array_to_compressed_image(image, codec)


# --------------------------------------------------------------------------------------
# Real data
# --------------------------------------------------------------------------------------


def test_rosbags_image_reads_zero_copy_and_matches_kitti_png() -> None:
    if not BAG.is_dir():
        pytest.skip(f"KITTI ROS 2 bag not found at {BAG} (../shared/data is absent)")
    highlevel = pytest.importorskip("rosbags.highlevel", reason="rosbags not installed")
    from rosbags.typesys import Stores, get_typestore

    with highlevel.AnyReader([BAG], default_typestore=get_typestore(Stores.ROS2_JAZZY)) as r:
        msg = next(
            r.deserialize(raw, c.msgtype)
            for c, _, raw in r.messages()
            if c.msgtype == "sensor_msgs/msg/Image"
        )
    image = image_to_array(msg)
    assert image.shape == (375, 1242, 3) and msg.encoding == "rgb8"
    assert np.shares_memory(image, msg.data)
    if KITTI_IMAGE.is_file():
        np.testing.assert_array_equal(image, cv2.imread(str(KITTI_IMAGE))[..., ::-1])
    copy = array_to_image(image, msg.encoding, msg.header)  # rosbags header is converted
    assert copy.header.frame_id == msg.header.frame_id
    np.testing.assert_array_equal(image_to_array(copy), image)
