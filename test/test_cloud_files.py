"""Cloud files (lidar/cloud_files.py): PCD in its three encodings, organized layouts and
all fields kept, checked against readers and writers we did not write (hand-parsed bytes,
pypcd4's own reader and writer, open3d's tensor reader where it is installed), plus .bin
and .npy, bad files refused in one line, and segment-cloud end to end."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from seg_perception.cli import main
from seg_perception.lidar.cloud_files import (
    PCD_ENCODINGS,
    CloudFileError,
    read_cloud,
    read_pcd,
    write_cloud,
    write_pcd,
)
from seg_perception.sample import generate_scene

pypcd4 = pytest.importorskip("pypcd4", reason="pypcd4 is in requirements/base.txt")

#: An Ouster OS1-64 like point: float32 xyz/intensity, uint32 t and range, uint16 rest.
OUSTER = np.dtype(
    [
        ("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("intensity", "<f4"), ("t", "<u4"),
        ("reflectivity", "<u2"), ("ring", "<u2"), ("ambient", "<u2"), ("range", "<u4"),
    ]
)  # fmt: skip


def ouster_cloud(height: int = 64, width: int = 2048, seed: int = 0) -> np.ndarray:
    """An organized cloud with awkward values: tiny and huge floats, NaN "no return"
    points, the full uint ranges."""
    rng = np.random.default_rng(seed)
    cloud = np.zeros((height, width), OUSTER)
    for name in ("x", "y", "z"):
        cloud[name] = rng.normal(0.0, 20.0, (height, width))
    cloud["intensity"] = rng.random((height, width)) * 1e-3  # %.10f would lose digits
    cloud["intensity"][0, :4] = (np.float32(1e-30), np.float32(3e38), np.float32(-0.0), 1.0)
    cloud["t"] = rng.integers(0, 2**32, (height, width), dtype=np.uint32)
    cloud["reflectivity"] = rng.integers(0, 2**16, (height, width), dtype=np.uint16)
    cloud["ring"] = np.arange(height, dtype=np.uint16)[:, None]
    cloud["ambient"] = rng.integers(0, 2**16, (height, width), dtype=np.uint16)
    cloud["range"] = rng.integers(0, 2**32, (height, width), dtype=np.uint32)
    for name in ("x", "y", "z"):
        cloud[name][::7, ::5] = np.nan  # no return
    return cloud


def assert_same_cloud(actual: np.ndarray, expected: np.ndarray) -> None:
    assert actual.shape == expected.shape
    assert actual.dtype.names == expected.dtype.names
    for name in expected.dtype.names:
        assert actual.dtype[name] == expected.dtype[name], name
        np.testing.assert_array_equal(actual[name], expected[name], err_msg=name)  # NaN == NaN


def _header_and_data(path) -> tuple[dict[str, list[str]], bytes]:
    """A hand parse of a PCD header (independent of the module under test)."""
    raw = path.read_bytes()
    head, data = raw.split(b"\nDATA ", 1)
    encoding, data = data.split(b"\n", 1)
    header = {}
    for line in head.decode("ascii").splitlines():
        if line and not line.startswith("#"):
            key, *values = line.split()
            header[key] = values
    header["DATA"] = [encoding.decode()]
    return header, data


@pytest.fixture(scope="module")
def organized():
    return ouster_cloud()


# --------------------------------------------------------------------------- round trips
@pytest.mark.parametrize("encoding", PCD_ENCODINGS)
def test_organized_ouster_cloud_round_trips(tmp_path, organized, encoding):
    path = write_pcd(tmp_path / "c.pcd", organized, encoding)
    header, _ = _header_and_data(path)
    assert header["FIELDS"] == list(OUSTER.names)
    assert header["SIZE"] == ["4", "4", "4", "4", "4", "2", "2", "2", "4"]
    assert header["TYPE"] == ["F", "F", "F", "F", "U", "U", "U", "U", "U"]
    assert (header["WIDTH"], header["HEIGHT"], header["POINTS"]) == (["2048"], ["64"], ["131072"])
    assert header["DATA"] == [encoding]
    assert_same_cloud(read_pcd(path), organized)
    assert_same_cloud(read_cloud(path), organized)


def test_binary_bytes_are_the_packed_points(tmp_path, organized):
    _, data = _header_and_data(write_pcd(tmp_path / "c.pcd", organized, "binary"))
    by_hand = np.frombuffer(data, dtype=OUSTER).reshape(64, 2048)
    assert_same_cloud(by_hand, organized)


def test_binary_compressed_bytes_follow_pcl(tmp_path, organized):
    # PCL: uint32 compressed size, uint32 raw size, LZF of each field's column in turn.
    import lzf

    _, data = _header_and_data(write_pcd(tmp_path / "c.pcd", organized, "binary_compressed"))
    compressed, raw_size = struct.unpack("<II", data[:8])
    assert raw_size == organized.size * OUSTER.itemsize and len(data) == 8 + compressed
    raw = lzf.decompress(data[8 : 8 + compressed], raw_size)
    offset = 0
    for name in OUSTER.names:
        column = np.frombuffer(raw, OUSTER[name], organized.size, offset)
        np.testing.assert_array_equal(column, organized[name].ravel(), err_msg=name)
        offset += column.nbytes


def test_ascii_text_is_exact_and_parses_by_hand(tmp_path, organized):
    small = organized[:3, :50]
    _, data = _header_and_data(write_pcd(tmp_path / "c.pcd", small, "ascii"))
    rows = [line.split() for line in data.decode("ascii").splitlines()]
    assert len(rows) == small.size and all(len(row) == 9 for row in rows)
    flat = small.ravel()
    for column, name in enumerate(OUSTER.names):
        kind = OUSTER[name]
        values = np.array([kind.type(float(r[column]) if kind.kind == "f" else int(r[column]))
                           for r in rows])  # fmt: skip
        np.testing.assert_array_equal(values, flat[name], err_msg=name)
    assert rows[0][0] == "nan"  # no return, as PCL writes it


@pytest.mark.parametrize("encoding", PCD_ENCODINGS)
def test_pypcd4_reads_what_we_write(tmp_path, organized, encoding):
    path = write_pcd(tmp_path / "c.pcd", organized, encoding)
    theirs = pypcd4.PointCloud.from_path(path)
    assert (theirs.metadata.height, theirs.metadata.width) == (64, 2048)
    assert theirs.fields == OUSTER.names
    for name in OUSTER.names:
        np.testing.assert_array_equal(theirs.pc_data[name], organized[name].ravel())


@pytest.mark.parametrize("encoding", PCD_ENCODINGS)
def test_we_read_what_pypcd4_writes(tmp_path, encoding):
    cloud = ouster_cloud(4, 300, seed=3).ravel()
    cloud["intensity"][:4] = 0.5  # no 3e38 (or 1e-30) in a %.10f test
    for name in ("x", "y", "z", "intensity"):  # pypcd4's ascii keeps 10 decimals: use values
        cloud[name] = np.round(cloud[name] * 1024) / 1024  # it writes exactly
    cloud["x"][::9] = np.nan
    theirs = pypcd4.PointCloud.from_points(
        [cloud[name] for name in OUSTER.names], OUSTER.names, [OUSTER[n] for n in OUSTER.names]
    )
    theirs.save(tmp_path / "theirs.pcd", encoding=pypcd4.Encoding(encoding))
    assert_same_cloud(read_pcd(tmp_path / "theirs.pcd"), cloud)


@pytest.mark.parametrize("encoding", PCD_ENCODINGS)
def test_open3d_tensor_reader_reads_what_we_write(tmp_path, encoding):
    o3d = pytest.importorskip("open3d", reason="open3d-cpu is optional (an independent reader)")
    cloud = ouster_cloud(8, 256, seed=1)
    read = o3d.t.io.read_point_cloud(str(write_pcd(tmp_path / "c.pcd", cloud, encoding)))
    positions = read.point.positions.numpy()
    flat = cloud.ravel()
    for column, name in enumerate("xyz"):
        np.testing.assert_array_equal(positions[:, column], flat[name])
    for name in OUSTER.names[3:]:
        values = read.point[name].numpy().ravel()
        assert values.dtype == OUSTER[name], name
        np.testing.assert_array_equal(values, flat[name], err_msg=name)


HAND_WRITTEN_ASCII = (
    b"""\
# .PCD v0.7 - Point Cloud Data file format (written by hand; data lines end with a space
# like open3d's, one value is tab-separated like some CloudCompare exports)
VERSION 0.7
FIELDS x y z intensity t ring label
SIZE 4 4 4 4 8 2 1
TYPE F F F F F U U
COUNT 1 1 1 1 1 1 1
WIDTH 3
HEIGHT 2
VIEWPOINT 0 0 0 1 0 0 0
POINTS 6
DATA ascii
"""
    + b" \n".join(
        [
            b"1.5 -2.25 0.125 0.5 1700000000.123456789 0 1",
            b"nan nan nan 0 1700000000.25 0 255",
            b"3e-05 4 5 1\t1700000000.5 0 7",
            b"-1 -2 -3 0.75 0 1 0",
            b"10 20 30 1e-30 1 1 2",
            b"0.1 0.2 0.3 0 2 1 3",
        ]
    )
    + b" \n"
)


def test_hand_written_organized_ascii(tmp_path):
    path = tmp_path / "hand.pcd"
    path.write_bytes(HAND_WRITTEN_ASCII)
    cloud = read_pcd(path)
    assert cloud.shape == (2, 3)
    assert cloud.dtype.names == ("x", "y", "z", "intensity", "t", "ring", "label")
    assert [cloud.dtype[n].str for n in ("x", "t", "ring", "label")] == ["<f4", "<f8", "<u2", "|u1"]
    assert cloud["x"][0, 0] == np.float32(1.5) and cloud["x"][0, 2] == np.float32(3e-05)
    assert np.isnan(cloud["x"][0, 1]) and np.isnan(cloud["z"][0, 1])
    assert cloud["t"][0, 0] == 1700000000.123456789  # float64 kept in full
    assert cloud["intensity"][1, 1] == np.float32(1e-30)
    assert cloud["ring"].tolist() == [[0, 0, 0], [1, 1, 1]]
    assert cloud["label"].tolist() == [[1, 255, 7], [0, 2, 3]]
    # ... and ours, written back in each encoding, reads back the same.
    for encoding in PCD_ENCODINGS:
        assert_same_cloud(read_pcd(write_pcd(tmp_path / f"{encoding}.pcd", cloud, encoding)), cloud)


def _pcd(fields, sizes, types, counts, points, data, encoding, width=None, height=1):
    return (
        f"VERSION 0.7\nFIELDS {fields}\nSIZE {sizes}\nTYPE {types}\nCOUNT {counts}\n"
        f"WIDTH {width or points}\nHEIGHT {height}\nVIEWPOINT 0 0 0 1 0 0 0\n"
        f"POINTS {points}\nDATA {encoding}\n"
    ).encode() + data


def test_count_above_one_follows_pcl_in_every_encoding(tmp_path):
    # PCL writes a COUNT 3 field of a binary_compressed file point by point
    # (p0[0] p0[1] p0[2] p1[0] ...); pypcd4 alone would hand out the wrong components.
    import lzf

    normals = np.arange(12, dtype="<f4").reshape(4, 3)
    x = np.array([1, 2, 3, 4], "<f4")
    raw = x.tobytes() + normals.tobytes()
    packed = lzf.compress(raw)
    data = struct.pack("<II", len(packed), len(raw)) + packed
    path = tmp_path / "pcl.pcd"
    path.write_bytes(_pcd("x normal", "4 4", "F F", "1 3", 4, data, "binary_compressed"))
    cloud = read_pcd(path)
    assert cloud.dtype["normal"].shape == (3,)
    np.testing.assert_array_equal(cloud["normal"], normals)
    np.testing.assert_array_equal(cloud["x"], x)
    # The old test_pcd_round_trip_with_counts, now in every encoding.
    cloud = np.zeros(5, dtype=[("x", "<f4"), ("label", "u1"), ("n", "<f8", (3,)), ("i", "<i2")])
    cloud["x"] = np.arange(5)
    cloud["label"] = [1, 2, 3, 255, 0]
    cloud["n"] = np.arange(15).reshape(5, 3) / 7
    cloud["i"] = -7
    for encoding in PCD_ENCODINGS:
        path = write_pcd(tmp_path / f"c_{encoding}.pcd", cloud, encoding)
        assert_same_cloud(read_pcd(path), cloud)
        header, _ = _header_and_data(path)
        assert header["FIELDS"] == ["x", "label", "n", "i"] and header["COUNT"] == list("1131")
    _, text = _header_and_data(tmp_path / "c_ascii.pcd")  # x label n0 n1 n2 i per line
    assert [float(v) for v in text.split(b"\n")[1].split()[2:5]] == (cloud["n"][1]).tolist()


def test_padding_fields_are_left_out(tmp_path):
    # PCL's binary files of aligned point types carry "_" padding fields.
    points = np.zeros(3, dtype=[("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("_", "V4"),
                                ("intensity", "<f4")])  # fmt: skip
    points["x"] = [1, 2, 3]
    points["intensity"] = [0.5, 0.25, 0.125]
    path = tmp_path / "padded.pcd"
    path.write_bytes(_pcd("x y z _ intensity", "4 4 4 1 4", "F F F U F", "1 1 1 4 1", 3,
                          points.tobytes(), "binary"))  # fmt: skip
    cloud = read_pcd(path)
    assert cloud.dtype.names == ("x", "y", "z", "intensity")
    np.testing.assert_array_equal(cloud["intensity"], points["intensity"])


def test_aligned_and_reordered_inputs_are_packed(tmp_path):
    aligned = np.zeros(4, dtype=np.dtype([("label", "u1"), ("x", ">f4"), ("n", "<i8")], align=True))
    aligned["x"] = [1.5, -2, np.nan, 4]
    aligned["label"] = [1, 2, 3, 4]
    aligned["n"] = -(2**40)
    back = read_pcd(write_pcd(tmp_path / "a.pcd", aligned, "binary_compressed"))
    assert back.dtype.itemsize == 13 and back.dtype["x"] == np.dtype("<f4")
    for name in aligned.dtype.names:
        np.testing.assert_array_equal(back[name], aligned[name])


def test_bin_and_npy(tmp_path, organized):
    scan = np.arange(20, dtype="<f4").reshape(5, 4)
    scan.tofile(tmp_path / "s.bin")
    cloud = read_cloud(tmp_path / "s.bin")
    assert cloud.dtype.names == ("x", "y", "z", "intensity")
    np.testing.assert_array_equal(cloud["intensity"], scan[:, 3])
    assert_same_cloud(read_cloud(write_cloud(tmp_path / "o.npy", organized)), organized)
    np.save(tmp_path / "plain.npy", scan)
    np.testing.assert_array_equal(read_cloud(tmp_path / "plain.npy"), scan)


# --------------------------------------------------------------------------- bad files
GOOD = _pcd("x y z", "4 4 4", "F F F", "1 1 1", 2, np.zeros(6, "<f4").tobytes(), "binary")
BAD_FILES = {
    "truncated binary": (GOOD[:-5], "truncated binary PCD"),
    "truncated whole points": (GOOD[:-12], "truncated binary PCD"),
    "truncated header": (GOOD[:40], "no DATA line"),
    "empty": (b"", "empty"),
    "unknown encoding": (GOOD.replace(b"DATA binary", b"DATA lzma"), "unknown PCD encoding"),
    "no FIELDS": (GOOD.replace(b"FIELDS x y z\n", b""), "no FIELDS line"),
    "counts disagree": (GOOD.replace(b"SIZE 4 4 4", b"SIZE 4 4"), "3 FIELDS but 2 SIZE"),
    "width x height": (GOOD.replace(b"WIDTH 2", b"WIDTH 3"), "WIDTH 3 x HEIGHT 1 is not"),
    "half floats": (GOOD.replace(b"SIZE 4 4 4", b"SIZE 4 4 2"), "TYPE F SIZE 2"),
    "not a number": (GOOD.replace(b"POINTS 2", b"POINTS two"), "bad PCD header"),
    "duplicate field": (GOOD.replace(b"FIELDS x y z", b"FIELDS x y x"), "x appear twice"),
    "unknown header line": (GOOD.replace(b"VERSION 0.7", b"COLOR red"), "unknown PCD header"),
    "binary in the header": (b"\x89PNG\r\n\x1a\n" + GOOD, "not a PCD file"),
    "short ascii": (
        _pcd("x y z", "4 4 4", "F F F", "1 1 1", 3, b"1 2 3\n4 5 6\n", "ascii"),
        "2 points of data, the header says POINTS 3",
    ),
    "ragged ascii": (
        _pcd("x y z", "4 4 4", "F F F", "1 1 1", 2, b"1 2 3\n4 5\n", "ascii"),
        "bad ascii PCD data",
    ),
    "truncated compressed": (
        _pcd("x", "4", "F", "1", 2, struct.pack("<II", 20, 8) + b"\x01" * 4, "binary_compressed"),
        "truncated binary_compressed",
    ),
    "compressed size": (
        _pcd("x", "4", "F", "1", 2, struct.pack("<II", 4, 12) + b"\x01" * 4, "binary_compressed"),
        "holds 12 bytes",
    ),
    "corrupt compressed": (
        _pcd("x", "4", "F", "1", 2, struct.pack("<II", 4, 8) + b"\xff" * 4, "binary_compressed"),
        "bad binary_compressed PCD data",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_bad_pcd_files_are_one_clear_line(tmp_path, case, capsys):
    content, message = BAD_FILES[case]
    path = tmp_path / "bad.pcd"
    path.write_bytes(content)
    with pytest.raises(CloudFileError, match=message) as raised:
        read_pcd(path)
    assert "\n" not in str(raised.value) and str(path) in str(raised.value)
    # The command: exit status 2 and that one line, no traceback.
    assert main(["segment-cloud", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("seg-perception segment-cloud: error: ")


def test_bad_clouds_and_arguments_are_refused(tmp_path, capsys):
    with pytest.raises(CloudFileError, match="structured array"):
        write_pcd(tmp_path / "a.pcd", np.zeros((3, 3), "f4"))
    with pytest.raises(CloudFileError, match="unknown PCD encoding 'lzf'"):
        write_pcd(tmp_path / "a.pcd", np.zeros(3, [("x", "f4")]), "lzf")
    with pytest.raises(CloudFileError, match="field 'ok' is bool"):
        write_pcd(tmp_path / "a.pcd", np.zeros(3, [("x", "f4"), ("ok", "?")]))
    with pytest.raises(CloudFileError, match=r"\(N,\) or organized \(H, W\)"):
        write_pcd(tmp_path / "a.pcd", np.zeros((2, 2, 2), [("x", "f4")]))
    with pytest.raises(CloudFileError, match=r"use a \.pcd or \.npy"):
        write_cloud(tmp_path / "a.ply", np.zeros(3, [("x", "f4")]))
    (tmp_path / "bad.npy").write_bytes(b"not numpy")
    with pytest.raises(CloudFileError, match=r"not a readable \.npy"):
        read_cloud(tmp_path / "bad.npy")
    # A cloud without the fields the segmenter needs: one line, exit 2.
    write_pcd(tmp_path / "no_z.pcd", np.zeros(5, [("x", "f4"), ("y", "f4")]))
    assert main(["segment-cloud", str(tmp_path / "no_z.pcd")]) == 2
    err = capsys.readouterr().err
    assert "no z field" in err and err.count("\n") == 1


# --------------------------------------------------------------------------- the command
def test_segment_cloud_keeps_an_organized_cloud_and_its_fields(tmp_path, capsys):
    scene = generate_scene(2)
    height, width = 64, -(-len(scene.points) // 64)
    cloud = np.zeros((height, width), OUSTER)
    flat = cloud.reshape(-1)
    for name in ("x", "y", "z", "intensity"):
        flat[name] = np.nan  # padded with "no return" points
    for column, name in enumerate(("x", "y", "z", "intensity")):
        flat[name][: len(scene.points)] = scene.points[:, column]
    flat["t"] = np.arange(flat.size, dtype=np.uint32) * 781
    flat["ring"] = np.arange(flat.size) % height
    flat["reflectivity"] = flat["ambient"] = 7
    flat["range"] = 4_000_000_000
    source = write_pcd(tmp_path / "os1.pcd", cloud, "binary_compressed")
    output = tmp_path / "labeled.pcd"
    argv = ["segment-cloud", str(source), "--output", str(output), "--pcd-encoding", "ascii",
            "--sensor-height", "1.73", "--cluster-tolerance", "0.6"]  # fmt: skip
    assert main(argv) == 0
    assert "clusters:" in capsys.readouterr().out
    labeled = read_pcd(output)
    assert labeled.shape == (height, width)
    assert labeled.dtype.names == (*OUSTER.names, "lidar_class", "cluster")
    for name in OUSTER.names:
        np.testing.assert_array_equal(labeled[name], cloud[name], err_msg=name)
    assert (labeled["lidar_class"].reshape(-1)[len(scene.points) :] == 0).all()  # NaN: unknown
    assert (labeled["lidar_class"] == 1).sum() > 0.4 * len(scene.points)
    header, _ = _header_and_data(output)
    assert header["HEIGHT"] == ["64"] and header["DATA"] == ["ascii"]
