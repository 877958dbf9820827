"""Tests for PointCloud2 <-> numpy: every datatype and layout, zero-copy reads, clear errors.

Layouts are checked against bytes packed by hand with ``struct`` as well as by round trip,
so a symmetric bug in reader and builder cannot hide. Messages are real rclpy messages.
"""

from __future__ import annotations

import array
import struct
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from conftest import DATA  # ../shared/data or $SEG_PERCEPTION_DATA
from rclpy.serialization import deserialize_message, serialize_message
from sensor_msgs.msg import PointCloud2, PointField
from std_msgs.msg import Header

from seg_perception.ros.errors import ConversionError
from seg_perception.ros.pointcloud2 import (
    FLOAT32,
    FLOAT64,
    INT8,
    INT16,
    INT32,
    UINT8,
    UINT16,
    UINT32,
    FieldSpec,
    append_fields,
    append_pointcloud2_fields,
    appended_dtype,
    array_to_pointcloud2,
    cloud_xyz,
    dtype_to_fields,
    fields_to_dtype,
    pointcloud2_to_array,
)

BAG = DATA / "rosbags" / "kitti_2011_09_26_ros2"
VELODYNE = DATA / "kitti_raw_2011_09_26" / "velodyne_points" / "data"

STRUCT_CODES = {
    INT8: "b",
    UINT8: "B",
    INT16: "h",
    UINT16: "H",
    INT32: "i",
    UINT32: "I",
    FLOAT32: "f",
    FLOAT64: "d",
}
NUMPY_TYPES = {
    INT8: np.int8,
    UINT8: np.uint8,
    INT16: np.int16,
    UINT16: np.uint16,
    INT32: np.int32,
    UINT32: np.uint32,
    FLOAT32: np.float32,
    FLOAT64: np.float64,
}


def make_cloud(
    fields: list[tuple[str, int, int, int]],
    point_step: int,
    data: bytes,
    width: int,
    height: int = 1,
    row_step: int | None = None,
    is_bigendian: bool = False,
) -> PointCloud2:
    """An rclpy PointCloud2 assembled by hand, independent of the code under test."""
    msg = PointCloud2(
        height=height,
        width=width,
        fields=[PointField(name=n, offset=o, datatype=d, count=c) for n, o, d, c in fields],
        is_bigendian=is_bigendian,
        point_step=point_step,
        row_step=width * point_step if row_step is None else row_step,
    )
    msg.data = array.array("B", data)
    return msg


def duck_cloud(data: object, width: int) -> SimpleNamespace:
    """A message-like object with one float32 field ``x``, as rosbags would deserialize."""
    return SimpleNamespace(
        height=1,
        width=width,
        point_step=4,
        row_step=4 * width,
        is_bigendian=False,
        fields=[FieldSpec("x", 0, FLOAT32, 1)],
        data=data,
    )


def extreme_values(datatype: int, n: int) -> np.ndarray:
    """Values covering the type's range, including its minimum and maximum."""
    kind = np.dtype(NUMPY_TYPES[datatype])
    rng = np.random.default_rng(datatype)
    if kind.kind == "f":
        info = np.finfo(kind)
        values = rng.standard_normal(n).astype(kind) * 1000
        values[:3] = [info.min, info.max, info.tiny]
        return values
    info = np.iinfo(kind)
    values = rng.integers(info.min, info.max, n, endpoint=True).astype(kind)
    values[:2] = [info.min, info.max]
    return values


def data_bytes(msg: PointCloud2) -> np.ndarray:
    return np.frombuffer(msg.data, dtype=np.uint8)


# --------------------------------------------------------------------------------------
# Reading hand-packed bytes
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("is_bigendian", [False, True], ids=["little", "big"])
@pytest.mark.parametrize("datatype", sorted(STRUCT_CODES))
def test_read_every_datatype_from_packed_bytes(datatype: int, is_bigendian: bool) -> None:
    values = extreme_values(datatype, 7)
    order = ">" if is_bigendian else "<"
    # x float32, then the field under test at offset 5 (unaligned), padded to 16 bytes.
    packed = b"".join(
        struct.pack(f"{order}fx{STRUCT_CODES[datatype]}", float(i), v.item()).ljust(16, b"\xee")
        for i, v in enumerate(values)
    )
    msg = make_cloud(
        [("x", 0, FLOAT32, 1), ("v", 5, datatype, 1)], 16, packed, 7, is_bigendian=is_bigendian
    )
    points = pointcloud2_to_array(msg)
    assert points.shape == (7,)
    np.testing.assert_array_equal(points["v"], values)
    np.testing.assert_array_equal(points["x"], np.arange(7, dtype=np.float32))


def test_read_count_and_padding_from_packed_bytes() -> None:
    # xyz float32[3] @0, rgb uint8[3] @12, padding byte @15, t float64 @16, 8 end padding.
    rows = [((1.0, 2.0, 3.0), (10, 20, 30), 0.5), ((-1.0, -2.0, -3.0), (40, 50, 60), 1.5)]
    packed = b"".join(struct.pack("<3f3BxdQ", *xyz, *rgb, t, 0xFFFF) for xyz, rgb, t in rows)
    msg = make_cloud(
        [("xyz", 0, FLOAT32, 3), ("rgb", 12, UINT8, 3), ("t", 16, FLOAT64, 1)], 32, packed, 2
    )
    points = pointcloud2_to_array(msg)
    assert points["xyz"].shape == (2, 3)
    np.testing.assert_array_equal(points["xyz"], [r[0] for r in rows])
    np.testing.assert_array_equal(points["rgb"], [r[1] for r in rows])
    np.testing.assert_array_equal(points["t"], [0.5, 1.5])


def test_read_organized_cloud_with_row_padding() -> None:
    height, width, point_step, row_step = 3, 4, 8, 40  # 8 padding bytes after each row
    rows = []
    for r in range(height):
        row = b"".join(struct.pack("<fI", r + c / 10, 100 * r + c) for c in range(width))
        rows.append(row + b"\xab" * (row_step - width * point_step))
    msg = make_cloud(
        [("x", 0, FLOAT32, 1), ("id", 4, UINT32, 1)],
        point_step,
        b"".join(rows),
        width,
        height,
        row_step,
    )
    points = pointcloud2_to_array(msg)
    assert points.shape == (3, 4)
    np.testing.assert_array_equal(points["id"], np.arange(3)[:, None] * 100 + np.arange(4))
    assert np.shares_memory(points, data_bytes(msg))


def test_height_one_row_padding_is_ignored() -> None:
    packed = struct.pack("<3f", 1, 2, 3) + b"\x00" * 4
    msg = make_cloud([("x", 0, FLOAT32, 1)], 4, packed, 3, row_step=16)
    np.testing.assert_array_equal(pointcloud2_to_array(msg)["x"], [1, 2, 3])


# --------------------------------------------------------------------------------------
# Zero copy
# --------------------------------------------------------------------------------------


def test_read_is_a_view_on_rclpy_data() -> None:
    msg = make_cloud([("x", 0, FLOAT32, 1)], 4, struct.pack("<3f", 1, 2, 3), 3)
    points = pointcloud2_to_array(msg)
    assert np.shares_memory(points, data_bytes(msg))
    points["x"][1] = 42.0  # writes through into the message
    assert struct.unpack("<3f", bytes(msg.data)) == (1.0, 42.0, 3.0)


@pytest.mark.parametrize(
    "wrap",
    [bytes, bytearray, memoryview, lambda b: np.frombuffer(b, dtype=np.uint8).copy()],
    ids=["bytes", "bytearray", "memoryview", "ndarray"],
)
def test_read_is_a_view_on_any_buffer(wrap) -> None:
    cloud = duck_cloud(wrap(struct.pack("<3f", 1, 2, 3)), width=3)
    points = pointcloud2_to_array(cloud)
    np.testing.assert_array_equal(points["x"], [1, 2, 3])
    assert np.shares_memory(points, np.frombuffer(cloud.data, dtype=np.uint8))


def test_empty_clouds_read_as_empty_arrays() -> None:
    assert pointcloud2_to_array(PointCloud2()).shape == (0,)
    msg = make_cloud([("x", 0, FLOAT32, 1)], 4, b"", 0)
    points = pointcloud2_to_array(msg)
    assert points.shape == (0,) and points.dtype.names == ("x",)
    built = array_to_pointcloud2(np.zeros(0, dtype=[("x", "f4")]))
    assert (built.width, built.height, len(built.data)) == (0, 1, 0)


# --------------------------------------------------------------------------------------
# Round trips through the builder
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("order", ["<", ">"], ids=["little", "big"])
@pytest.mark.parametrize("datatype", sorted(STRUCT_CODES))
def test_round_trip_every_datatype(datatype: int, order: str) -> None:
    base = np.dtype(NUMPY_TYPES[datatype]).newbyteorder(order)
    dtype = np.dtype(
        {
            "names": ["x", "v", "w"],
            "formats": [np.dtype("f4").newbyteorder(order), base, (base, (2,))],
            "offsets": [0, 4, 16],
            "itemsize": 40,
        }
    )
    points = np.zeros(9, dtype=dtype)
    points["x"] = np.arange(9)
    points["v"] = extreme_values(datatype, 9)
    points["w"] = extreme_values(datatype, 18).reshape(9, 2)
    msg = array_to_pointcloud2(points)
    assert msg.is_bigendian == (order == ">")
    assert (msg.point_step, msg.row_step) == (40, 360)
    assert [(f.name, f.offset, f.datatype, f.count) for f in msg.fields] == [
        ("x", 0, FLOAT32, 1),
        ("v", 4, datatype, 1),
        ("w", 16, datatype, 2),
    ]
    back = pointcloud2_to_array(msg)
    assert back.dtype == dtype
    np.testing.assert_array_equal(back, points)


def test_round_trip_organized_cloud() -> None:
    points = np.zeros((4, 6), dtype=[("x", "f4"), ("y", "f4"), ("z", "f4"), ("ring", "u2")])
    points["x"] = np.arange(24).reshape(4, 6)
    points["ring"] = np.arange(4)[:, None]
    msg = array_to_pointcloud2(points)
    assert (msg.height, msg.width, msg.point_step, msg.row_step) == (4, 6, 14, 84)
    np.testing.assert_array_equal(pointcloud2_to_array(msg), points)


def test_build_keeps_layout_and_zeroes_padding() -> None:
    # PCL PointXYZI: x, y, z at 0/4/8, 4 padding bytes, intensity at 16, point_step 32.
    dtype = np.dtype(
        {
            "names": ["x", "y", "z", "intensity"],
            "formats": ["f4"] * 4,
            "offsets": [0, 4, 8, 16],
            "itemsize": 32,
        }
    )
    raw = np.full(5 * 32, 0xEE, dtype=np.uint8)  # garbage in the padding
    points = raw.view(dtype)
    for i, name in enumerate(dtype.names):
        points[name] = np.arange(5) + 10 * i
    msg = array_to_pointcloud2(points)
    assert msg.point_step == 32
    assert [f.offset for f in msg.fields] == [0, 4, 8, 16]
    record = data_bytes(msg).reshape(5, 32)
    assert not record[:, 12:16].any() and not record[:, 20:].any()
    np.testing.assert_array_equal(pointcloud2_to_array(msg), points)


def test_build_from_non_contiguous_and_mixed_byte_order() -> None:
    dtype = np.dtype([("x", ">f4"), ("i", "<u2")])
    points = np.zeros(10, dtype=dtype)
    points["x"], points["i"] = np.arange(10), np.arange(10) * 3
    msg = array_to_pointcloud2(points[::2])
    assert msg.is_bigendian is False  # mixed orders are written little-endian
    back = pointcloud2_to_array(msg)
    np.testing.assert_array_equal(back["x"], [0, 2, 4, 6, 8])
    np.testing.assert_array_equal(back["i"], [0, 6, 12, 18, 24])


def test_build_header_and_is_dense() -> None:
    header = Header(frame_id="velodyne")
    header.stamp.sec, header.stamp.nanosec = 12, 34
    points = np.zeros(3, dtype=[("x", "f4"), ("y", "f4"), ("z", "f4")])
    msg = array_to_pointcloud2(points, header)
    assert msg.header.frame_id == "velodyne" and msg.header.stamp.nanosec == 34
    assert msg.is_dense is True
    points["y"][1] = np.nan
    assert array_to_pointcloud2(points).is_dense is False
    assert array_to_pointcloud2(points, is_dense=True).is_dense is True
    assert isinstance(msg.data, array.array) and msg.data.typecode == "B"


def test_built_message_survives_rclpy_serialization() -> None:
    points = np.zeros((2, 3), dtype=[("x", ">f4"), ("label", "u1"), ("v", ">f8", (2,))])
    points["x"] = np.arange(6).reshape(2, 3)
    points["v"] = np.arange(12).reshape(2, 3, 2)
    msg = array_to_pointcloud2(points, Header(frame_id="lidar"))
    received = deserialize_message(serialize_message(msg), PointCloud2)
    assert received.header.frame_id == "lidar"
    np.testing.assert_array_equal(pointcloud2_to_array(received), points)


# --------------------------------------------------------------------------------------
# Pure pieces: fields <-> dtype, appended layout
# --------------------------------------------------------------------------------------


def test_fields_dtype_round_trip() -> None:
    fields = [FieldSpec("x", 0, FLOAT32), FieldSpec("n", 4, INT16, 3), FieldSpec("t", 16, FLOAT64)]
    dtype = fields_to_dtype(fields, 32)
    assert dtype.itemsize == 32 and dtype["n"].shape == (3,)
    assert dtype_to_fields(dtype) == fields
    assert fields_to_dtype([("x", 0, FLOAT32, 1)], 4, is_bigendian=True)["x"] == np.dtype(">f4")


def test_appended_dtype_alignment() -> None:
    kitti = np.dtype([("x", "f4"), ("y", "f4"), ("z", "f4"), ("intensity", "f4")])
    new = [("label", np.uint8), ("confidence", np.float32), ("camera", np.uint8)]
    aligned = appended_dtype(kitti, new)
    assert [aligned.fields[n][1] for n in ("label", "confidence", "camera")] == [16, 20, 24]
    assert aligned.itemsize == 28
    packed = appended_dtype(kitti, new, align=False)
    assert [packed.fields[n][1] for n in ("label", "confidence", "camera")] == [16, 17, 21]
    assert packed.itemsize == 22
    wide_first = appended_dtype(kitti, [new[1], new[0], new[2]])
    assert wide_first.itemsize == 24
    odd = np.dtype([("x", "f4"), ("ring", "u1")])  # packed input, point_step 5
    with_time = appended_dtype(odd, [("t", np.float64)])
    assert with_time.fields["t"][1] == 8 and with_time.itemsize == 16


# --------------------------------------------------------------------------------------
# Appending fields
# --------------------------------------------------------------------------------------


def kitti_like_cloud(n: int = 50, is_bigendian: bool = False) -> PointCloud2:
    order = ">" if is_bigendian else "<"
    rng = np.random.default_rng(0)
    values = rng.standard_normal((n, 4)).astype(f"{order}f4")
    packed = values.tobytes()
    msg = make_cloud(
        [(a, 4 * i, FLOAT32, 1) for i, a in enumerate(("x", "y", "z", "intensity"))],
        16,
        packed,
        n,
        is_bigendian=is_bigendian,
    )
    msg.header.frame_id = "velo_link"
    msg.header.stamp.sec = 7
    msg.is_dense = True
    return msg


@pytest.mark.parametrize("is_bigendian", [False, True], ids=["little", "big"])
def test_append_keeps_input_fields_and_header(is_bigendian: bool) -> None:
    msg = kitti_like_cloud(50, is_bigendian)
    labels = np.arange(50, dtype=np.uint8)
    confidence = np.linspace(0, 1, 50, dtype=np.float32)
    out = append_pointcloud2_fields(
        msg, {"label": labels, "confidence": confidence, "camera": np.full(50, 2, np.uint8)}
    )
    assert out.header.frame_id == "velo_link" and out.header.stamp.sec == 7
    assert out.is_bigendian == is_bigendian and out.is_dense is True
    assert [(f.name, f.offset, f.datatype) for f in out.fields] == [
        ("x", 0, FLOAT32),
        ("y", 4, FLOAT32),
        ("z", 8, FLOAT32),
        ("intensity", 12, FLOAT32),
        ("label", 16, UINT8),
        ("confidence", 20, FLOAT32),
        ("camera", 24, UINT8),
    ]
    assert out.point_step == 28
    before, after = pointcloud2_to_array(msg), pointcloud2_to_array(out)
    for name in ("x", "y", "z", "intensity"):
        np.testing.assert_array_equal(after[name], before[name])
    np.testing.assert_array_equal(after["label"], labels)
    np.testing.assert_array_equal(after["confidence"], confidence)
    assert (after["camera"] == 2).all()
    assert not data_bytes(out).reshape(50, 28)[:, [17, 18, 19, 25, 26, 27]].any()


def test_append_to_organized_cloud_with_flat_and_vector_values() -> None:
    points = np.zeros((2, 3), dtype=[("x", "f4"), ("pad", "u1")])
    points["x"] = np.arange(6).reshape(2, 3)
    msg = array_to_pointcloud2(points)
    out = append_pointcloud2_fields(
        msg,
        {"label": np.arange(6, dtype=np.uint8), "rgb": np.ones((6, 3), np.uint8)},
        header=Header(frame_id="other"),
    )
    assert (out.height, out.width, out.header.frame_id) == (2, 3, "other")
    assert [(f.name, f.count) for f in out.fields][-1] == ("rgb", 3)
    back = pointcloud2_to_array(out)
    np.testing.assert_array_equal(back["label"], np.arange(6).reshape(2, 3))
    assert back["rgb"].shape == (2, 3, 3)


def test_append_follows_message_byte_order_when_all_fields_are_bytes() -> None:
    msg = make_cloud([("ring", 0, UINT8, 1)], 1, bytes([1, 2, 3]), 3, is_bigendian=True)
    out = append_pointcloud2_fields(
        msg, {"t": np.array([0.5, 1.5, 2.5], np.float32), "camera": np.uint8(4)}
    )
    assert out.is_bigendian is True
    assert data_bytes(out)[4:8].tobytes() == struct.pack(">f", 0.5)
    back = pointcloud2_to_array(out)
    np.testing.assert_array_equal(back["t"], [0.5, 1.5, 2.5])
    np.testing.assert_array_equal(back["camera"], [4, 4, 4])


def test_append_fields_array_matches_message_builder() -> None:
    msg = kitti_like_cloud(20)
    values = {"confidence": np.full(20, 0.5, np.float32), "label": np.arange(20, dtype=np.uint8)}
    merged = append_fields(pointcloud2_to_array(msg), values)
    built = append_pointcloud2_fields(msg, values)
    assert merged.dtype.itemsize == built.point_step == 24
    np.testing.assert_array_equal(pointcloud2_to_array(built), merged)
    np.testing.assert_array_equal(pointcloud2_to_array(array_to_pointcloud2(merged)), merged)


# --------------------------------------------------------------------------------------
# cloud_xyz
# --------------------------------------------------------------------------------------


def test_cloud_xyz_flattens_and_promotes() -> None:
    points = np.zeros((2, 2), dtype=[("z", ">f4"), ("y", ">f4"), ("x", ">f4"), ("i", "u1")])
    points["x"], points["y"], points["z"] = 1, 2, np.nan
    xyz = cloud_xyz(points)
    assert xyz.shape == (4, 3) and xyz.dtype == np.float32 and xyz.dtype.isnative
    assert xyz.flags.c_contiguous
    np.testing.assert_array_equal(xyz, [[1, 2, np.nan]] * 4)  # NaN kept for the caller
    mixed = np.zeros(2, dtype=[("x", "f8"), ("y", "f4"), ("z", "i2")])
    assert cloud_xyz(mixed).dtype == np.float64
    assert cloud_xyz(mixed, np.float32).dtype == np.float32


# --------------------------------------------------------------------------------------
# Bad input: specific errors
# --------------------------------------------------------------------------------------

X_ONLY = [("x", 0, FLOAT32, 1)]


@pytest.mark.parametrize(
    ("fields", "point_step", "data", "width", "row_step", "match"),
    [
        (X_ONLY, 4, b"\0" * 10, 3, 12, r"data has 10 bytes but row_step \* height = 12"),
        (
            [("x", 0, FLOAT32, 1), ("t", 4, FLOAT64, 1)],
            8,
            b"\0" * 8,
            1,
            8,
            r"point_step 8 is smaller than the extent of field 't' \(offset 4 \+ 8 bytes = 12\)",
        ),
        (
            [("x", 0, FLOAT32, 1), ("y", 2, FLOAT32, 1)],
            8,
            b"\0" * 8,
            1,
            8,
            r"fields 'x' \(bytes 0-4\) and 'y' \(bytes 2-6\) overlap",
        ),
        ([("x", 0, 9, 1)], 4, b"\0" * 4, 1, 4, r"unknown PointField datatype 9 for field 'x'"),
        ([("x", 0, 0, 1)], 4, b"\0" * 4, 1, 4, r"unknown PointField datatype 0"),
        (
            [("x", 0, FLOAT32, 1), ("x", 4, FLOAT32, 1)],
            8,
            b"\0" * 8,
            1,
            8,
            r"duplicate field name 'x'",
        ),
        (X_ONLY, 4, b"\0" * 8, 3, 8, r"row_step 8 is smaller than width \* point_step = 3 \* 4"),
        ([("x", 0, FLOAT32, 0)], 4, b"\0" * 4, 1, 4, r"field 'x' has count 0"),
        ([("", 0, FLOAT32, 1)], 4, b"\0" * 4, 1, 4, r"field names must be non-empty"),
        ([], 0, b"", 3, 0, r"point_step is 0 but the cloud has 1x3 points"),
    ],
    ids=[
        "data-size",
        "point-step-extent",
        "overlap",
        "datatype-9",
        "datatype-0",
        "duplicate",
        "row-step",
        "count-0",
        "empty-name",
        "zero-point-step",
    ],
)
def test_bad_clouds_raise_specific_errors(fields, point_step, data, width, row_step, match) -> None:
    msg = make_cloud(fields, point_step, data, width, row_step=row_step)
    with pytest.raises(ConversionError, match=match):
        pointcloud2_to_array(msg)


@pytest.mark.parametrize(
    ("points", "match"),
    [
        (np.zeros((3, 3), np.float32), r"needs a structured array with at least one field"),
        (np.zeros((2, 2, 2), dtype=[("x", "f4")]), r"shape \(N,\) or \(H, W\)"),
        (np.zeros(3, dtype=[("x", "i8")]), r"field 'x' has dtype int64, which no PointField"),
        (np.zeros(3, dtype=[("ok", "?")]), r"field 'ok' has dtype bool"),
        (np.zeros(3, dtype=[("p", [("a", "f4")])]), r"field 'p' has dtype"),
        (
            np.zeros(
                3,
                dtype={
                    "names": ["a", "b"],
                    "formats": ["f4", "f4"],
                    "offsets": [0, 2],
                    "itemsize": 8,
                },
            ),
            r"fields 'a' \(bytes 0-4\) and 'b' \(bytes 2-6\)",
        ),
    ],
    ids=["unstructured", "3d", "int64", "bool", "nested", "overlap"],
)
def test_bad_arrays_raise_specific_errors(points: np.ndarray, match: str) -> None:
    with pytest.raises(ConversionError, match=match):
        array_to_pointcloud2(points)


def test_bad_appends_raise_specific_errors() -> None:
    msg = kitti_like_cloud(10)
    with pytest.raises(ConversionError, match=r"field 'x' already exists in the cloud"):
        append_pointcloud2_fields(msg, {"x": np.zeros(10, np.float32)})
    with pytest.raises(ConversionError, match=r"field 'label' has shape \(9,\), but the cloud"):
        append_pointcloud2_fields(msg, {"label": np.zeros(9, np.uint8)})
    with pytest.raises(ConversionError, match=r"has dtype int64.*cast int64/bool first"):
        append_pointcloud2_fields(msg, {"label": np.zeros(10, np.int64)})
    with pytest.raises(ConversionError, match=r"no fields to append"):
        append_pointcloud2_fields(msg, {})
    with pytest.raises(ValueError, match=r"cloud has no z field"):
        cloud_xyz(np.zeros(2, dtype=[("x", "f4"), ("y", "f4")]))


def test_bad_data_type_raises() -> None:
    cloud = duck_cloud(np.zeros(1, np.float32), width=1)
    with pytest.raises(ConversionError, match=r"message data must be uint8 bytes, got a float32"):
        pointcloud2_to_array(cloud)


# --------------------------------------------------------------------------------------
# Packaging and real data
# --------------------------------------------------------------------------------------


def test_reading_imports_without_ros() -> None:
    code = (
        "import sys; import seg_perception.ros.pointcloud2 as m; "
        "bad = [k for k in sys.modules if k.split('.')[0] in "
        "('rclpy', 'sensor_msgs', 'std_msgs', 'builtin_interfaces')]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[1])


def bag_messages(msgtype: str) -> list:
    """Deserialized rosbags messages of one type from the KITTI bag."""
    if not BAG.is_dir():
        pytest.skip(f"KITTI ROS 2 bag not found at {BAG} (../shared/data is absent)")
    reader_module = pytest.importorskip("rosbags.highlevel", reason="rosbags not installed")
    from rosbags.typesys import Stores, get_typestore

    with reader_module.AnyReader([BAG], default_typestore=get_typestore(Stores.ROS2_JAZZY)) as r:
        return [r.deserialize(raw, c.msgtype) for c, _, raw in r.messages() if c.msgtype == msgtype]


def test_rosbags_cloud_reads_zero_copy_and_matches_kitti_scan() -> None:
    msg = bag_messages("sensor_msgs/msg/PointCloud2")[0]
    assert isinstance(msg.data, np.ndarray)
    points = pointcloud2_to_array(msg)
    assert points.shape == (msg.width,)
    assert np.shares_memory(points, msg.data)
    scan = VELODYNE / "0000000000.bin"
    if scan.is_file():
        raw = np.fromfile(scan, dtype=np.float32).reshape(-1, 4)
        np.testing.assert_array_equal(cloud_xyz(points), raw[:, :3])
        np.testing.assert_array_equal(points["intensity"], raw[:, 3])
    labeled = append_pointcloud2_fields(msg, {"label": np.zeros(msg.width, np.uint8)})
    assert labeled.header.frame_id == msg.header.frame_id
    assert labeled.header.stamp.sec == msg.header.stamp.sec
    received = deserialize_message(serialize_message(labeled), PointCloud2)
    np.testing.assert_array_equal(pointcloud2_to_array(received)["x"], points["x"])


def test_an_existing_output_field_is_replaced_not_duplicated():
    """A cloud that already has `label` (uint32 from a driver) gets the new uint8 one."""
    points = np.zeros(4, dtype=[("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("label", "<u4")])
    points["x"] = [1, 2, 3, 4]
    points["label"] = 77
    message = array_to_pointcloud2(points)
    with pytest.raises(ConversionError, match="'label' already exists"):
        append_pointcloud2_fields(message, {"label": np.arange(4, dtype=np.uint8)})
    out = append_pointcloud2_fields(message, {"label": np.arange(4, dtype=np.uint8)}, replace=True)
    assert [f.name for f in out.fields] == ["x", "y", "z", "label"]
    cloud = pointcloud2_to_array(out)
    np.testing.assert_array_equal(cloud["label"], [0, 1, 2, 3])
    np.testing.assert_array_equal(cloud["x"], [1, 2, 3, 4])
    assert cloud.dtype["label"] == np.uint8
    record = np.frombuffer(bytes(out.data), np.uint8).reshape(4, out.point_step)
    assert not record[:, 12:16].any()  # the replaced field's old bytes are zeroed padding


@pytest.mark.parametrize("point_step", [2**31, 2**32 - 1])
def test_an_absurd_point_step_is_refused_by_name(point_step):
    message = array_to_pointcloud2(np.zeros(10, dtype=[("x", "<f4"), ("y", "<f4"), ("z", "<f4")]))
    message.point_step = point_step
    with pytest.raises(ConversionError, match=f"point_step {point_step} is absurd"):
        pointcloud2_to_array(message)
