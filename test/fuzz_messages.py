"""Hostile and valid messages for the fuzz suite of the live nodes (test_fuzz_nodes.py).

Every hostile message belongs to a :class:`Kind`: a name, the input stream it goes to, a
builder, and what a correct node must do with it:

* ``DROP``: malformed or unusable; the node must drop it, count the drop with a reason and
  name the problem (``words``: groups of alternatives, each group must occur in the WARN's
  ``last problem``, case-insensitively);
* ``PASS``: odd but legitimate (padded rows, big-endian data, NaN returns, a cloud that
  already carries an output field...): the node must publish an output, which ``check``
  may inspect;
* ``MAY``: either is acceptable (unsupported but well-formed encodings, a 1x1 mono16...),
  as long as the node survives and accounts for it; ``check`` inspects an output if any.

Builders take a :class:`Ctx` (the fresh stamp of this message, the stamp of the last valid
message on its stream) so the stamp attacks (duplicates, out of order, 2^31-1...) are
exact. Valid content comes in a few variants, sent before and after the fuzzing so the
outputs can be compared. Property-based kinds draw their examples with ``hypothesis``
(derandomized, a bounded number of examples) so CI is deterministic.

The geometry: a 96x48 pinhole camera (f = 50 px) at the LiDAR's origin looking along +x
(``OPTICAL_IN_LIDAR``); clouds are a ground plane 1.73 m below the sensor with a box or a
wall ahead, so every variant labels hundreds of points.
"""

from __future__ import annotations

import array
import dataclasses
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import cv2
import numpy as np
from builtin_interfaces.msg import Time
from fuzz_models import TRIP_RED
from onnx_models import PALETTE, palette_picture
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2, PointField

from seg_perception.ros.image_conversions import array_to_compressed_image, array_to_image
from seg_perception.ros.pointcloud2 import array_to_pointcloud2, pointcloud2_to_array

DROP, PASS, MAY = "drop", "pass", "may"
HEIGHT, WIDTH = 48, 96
FOCAL = 50.0
#: Camera optical frame (z forward, x right, y down) in the LiDAR frame (x forward, z up).
OPTICAL_IN_LIDAR = [0.0, 0.0, 0.0, -0.5, 0.5, -0.5, 0.5]
#: Cityscapes train ids used by the valid label images: car, sky, road, building.
CAR, SKY, ROAD, BUILDING = 13, 10, 0, 2
CITYSCAPES_IDS = frozenset(range(19))
UNLABELED = 255
#: Fields the nodes append; a cloud that already has one must get it replaced.
FUSION_FIELDS = ("label", "confidence", "camera")
LIDAR_FIELDS = ("lidar_class", "cluster")
VARIANTS = 3
NS = 1_000_000_000
REPLACED = ("replac", "overwr")
UNKNOWN_IDS = ("unknown", "outside", "not in the label set", "invalid id")
#: Words a "last problem" must never contain: raw Python errors instead of a diagnosis.
RAW_ERRORS = (
    "won't fit into a c int",
    "traceback",
    "object has no attribute",
    "nonetype",
    "unsupported operand",
    "invalid literal",
    "cannot reshape array",
    "index out of range",
    "list index",
    "keyerror",
    "unhashable",
    "not subscriptable",
    "buffer is too small",
    "python int too large",
)


class Ctx(NamedTuple):
    """Stamps a builder may use: this message's fresh stamp, the last valid one's."""

    stamp_ns: int
    last_valid_ns: int


@dataclass(frozen=True)
class Kind:
    name: str
    stream: str  # "image", "compressed", "cloud", "labels", "camera_info"
    make: Callable[[Ctx], Any]
    expect: str = DROP
    words: tuple[tuple[str, ...], ...] = ()
    check: Callable[[dict, dict], str | None] | None = None
    #: False: too slow or too big to repeat in the bulk phase (sent once, in the probe).
    repeat: bool = True
    #: For DROP kinds of a frame: the drop may be counted on any of these streams.
    drop_streams: tuple[str, ...] = ()
    #: A stamp attack: a single message, so the next one on its stream is always valid
    #: (two hostile stamps in a row that agree on a timeline are a jump, not an outlier).
    isolated: bool = False
    #: Words (any) a diagnostic must show after this message when it is not dropped: the
    #: name of a count that went up, or a status text (e.g. "replaced" for an output field
    #: the input already had, "unknown" for label ids outside the label set).
    note: tuple[str, ...] = ()


# ------------------------------------------------------------------------- stamps
def as_data(data: bytes) -> array.array:
    """Message bytes as ``array.array('B')``, which rclpy stores without a per-byte walk."""
    return array.array("B", data)


def to_time(stamp_ns: int) -> Time:
    return Time(sec=stamp_ns // NS, nanosec=stamp_ns % NS)


def stamped(message: Any, stamp: Time | int, frame_id: str) -> Any:
    message.header.stamp = stamp if isinstance(stamp, Time) else to_time(stamp)
    message.header.frame_id = frame_id
    return message


def stamp_kinds(stream: str, make_valid: Callable[[int], Any], expect: str = DROP) -> list[Kind]:
    """The stamp attacks on one stream, each on a message whose content is valid.

    ``expect=MAY`` for streams that are state rather than a timeline (CameraInfo: the
    latest one wins; static publishers stamp it 0 or repeat one stamp), except a nanosec
    field >= 1e9, which is malformed on any stream.
    """

    def with_time(sec: int, nanosec: int) -> Callable[[Ctx], Any]:
        def make(ctx: Ctx) -> Any:
            message = make_valid(ctx.stamp_ns)
            message.header.stamp = Time(sec=sec, nanosec=nanosec)
            return message

        return make

    def shifted(offset_ns: int, base: str) -> Callable[[Ctx], Any]:
        return lambda ctx: make_valid(getattr(ctx, base) + offset_ns)

    def bad_nanosec(nanosec: int) -> Callable[[Ctx], Any]:
        def make(ctx: Ctx) -> Any:
            message = make_valid(ctx.stamp_ns)
            message.header.stamp.nanosec = nanosec
            return message

        return make

    stamp = (("stamp", "time"),)
    kinds = [
        Kind(f"{stream}: stamp sec=2^31-1", stream, with_time(2**31 - 1, 0), DROP, stamp),
        Kind(f"{stream}: stamp 2^31-1.999999999", stream, with_time(2**31 - 1, NS - 1), DROP,
             stamp),
        Kind(f"{stream}: stamp nanosec=1e9", stream, bad_nanosec(NS), DROP, stamp),
        Kind(f"{stream}: stamp nanosec=2^32-1", stream, bad_nanosec(2**32 - 1), DROP, stamp),
        Kind(f"{stream}: stamp 0", stream, with_time(0, 0), DROP, stamp),
        Kind(f"{stream}: stamp sec=-1", stream, with_time(-1, 0), DROP, stamp),
        Kind(f"{stream}: duplicate stamp", stream, shifted(0, "last_valid_ns"), DROP, stamp),
        Kind(f"{stream}: out of order (-30 ms)", stream, shifted(-30_000_000, "last_valid_ns"),
             DROP, stamp),
        Kind(f"{stream}: out of order (-1 ms)", stream, shifted(-1_000_000, "last_valid_ns"),
             DROP, stamp),
        Kind(f"{stream}: one message 100 s back", stream, shifted(-100 * NS, "stamp_ns"), MAY),
    ]  # fmt: skip
    return [
        dataclasses.replace(
            kind, isolated=True, expect=kind.expect if "nanosec" in kind.name else expect
        )
        if kind.expect == DROP
        else dataclasses.replace(kind, isolated=True)
        for kind in kinds
    ]


# ------------------------------------------------------------------------- valid images
def valid_picture(variant: int) -> np.ndarray:
    picture, _ = palette_picture(HEIGHT, WIDTH)
    return [picture, picture[:, ::-1], picture[::-1]][variant % VARIANTS].copy()


def valid_image(variant: int, stamp_ns: int) -> Image:
    return stamped(array_to_image(valid_picture(variant), "rgb8"), stamp_ns, "camera")


def valid_compressed(variant: int, stamp_ns: int) -> CompressedImage:
    """PNG variants (lossless) and one JPEG: the same bytes give the same labels."""
    if variant % VARIANTS == 2:
        message = array_to_compressed_image(valid_picture(0), "jpeg", jpeg_quality=90)
    else:
        message = array_to_compressed_image(valid_picture(variant), "png")
    return stamped(message, stamp_ns, "camera")


def raw_image(
    height: int, width: int, encoding: str, step: int, data: bytes, bigendian: int = 0
) -> Image:
    message = Image(height=height, width=width, encoding=encoding, step=step)
    message.is_bigendian = bigendian
    message.data = as_data(data)
    return message


def _from_picture(picture: np.ndarray, encoding: str) -> Callable[[Ctx], Image]:
    return lambda ctx: stamped(array_to_image(picture, encoding), ctx.stamp_ns, "camera")


def _edited(edit: Callable[[Image], Any]) -> Callable[[Ctx], Image]:
    def make(ctx: Ctx) -> Image:
        message = valid_image(0, ctx.stamp_ns)
        edit(message)
        return message

    return make


def _raw(height: int, width: int, encoding: str, step: int, nbytes: int, big: int = 0):
    return lambda ctx: stamped(
        raw_image(height, width, encoding, step, bytes(nbytes), big), ctx.stamp_ns, "camera"
    )


def _padded_rows(ctx: Ctx) -> Image:
    """rgb8 rows padded to an odd step (289 bytes): legal, and the same picture."""
    picture = valid_picture(0)
    step = WIDTH * 3 + 1
    rows = np.zeros((HEIGHT, step), np.uint8)
    rows[:, : WIDTH * 3] = picture.reshape(HEIGHT, -1)
    return stamped(raw_image(HEIGHT, WIDTH, "rgb8", step, rows.tobytes()), ctx.stamp_ns, "camera")


def _tripwire_picture() -> np.ndarray:
    picture = valid_picture(0)
    picture[0, 0] = (255, 255, 255)
    assert picture[0, 0, 0] >= TRIP_RED
    return picture


def _set(**values: Any) -> Callable[[Image], None]:
    def edit(message: Any) -> None:
        for key, value in values.items():
            setattr(message, key, value)

    return edit


def _truncate(n: int) -> Callable[[Any], None]:
    def edit(message: Any) -> None:
        message.data = as_data(bytes(message.data)[:-n])

    return edit


def _extend(n: int) -> Callable[[Any], None]:
    def edit(message: Any) -> None:
        message.data = as_data(bytes(message.data) + bytes(n))

    return edit


def same_labels_as_reference(out: dict, ref: dict) -> str | None:
    """The labels image of this input equals the one of the reference (variant 0)."""
    if "labels" not in out:
        return "the image was not segmented (no labels output)"
    got, want = out["labels"], ref["labels"]
    if (got.height, got.width, got.encoding) != (want.height, want.width, want.encoding):
        return (
            f"labels {got.width}x{got.height} {got.encoding}, expected "
            f"{want.width}x{want.height} {want.encoding}"
        )
    if bytes(got.data) != bytes(want.data):
        return "labels differ from those of the same picture sent as plain rgb8"
    return None


def image_kinds(hypothesis_examples: int = 40) -> list[Kind]:
    """Hostile sensor_msgs/Image for a node that segments color images."""
    picture = valid_picture(0)
    step_words = (("step",),)
    size_words = (("data", "bytes", "size", "step"),)
    dims = (("width", "height", "size", "large", "empty", "zero", "pixels"),)
    encoding_words = (("encoding",),)
    engine = (("engine", "network", "model", "inference", "segment", "onnx"),)
    kinds = [
        Kind("image: step < width * 3", "image",
             _raw(HEIGHT, WIDTH, "rgb8", WIDTH * 3 - 1, HEIGHT * (WIDTH * 3 - 1)), DROP,
             step_words),
        Kind("image: step 0", "image", _raw(HEIGHT, WIDTH, "rgb8", 0, 0), DROP, step_words),
        Kind("image: step 2^32-1", "image", _raw(HEIGHT, WIDTH, "rgb8", 2**32 - 1, 300), DROP,
             (("step", "data", "bytes", "size"),)),
        Kind("image: data 5 bytes short", "image", _edited(_truncate(5)), DROP, size_words),
        Kind("image: data 7 bytes long", "image", _edited(_extend(7)), DROP, size_words),
        Kind("image: no data", "image", _edited(_set(data=b"")), DROP, size_words),
        Kind("image: 2^31 x 2^31, 300 bytes", "image",
             _raw(2**31, 2**31, "rgb8", 3 * 2**31, 300), DROP,
             (("width", "height", "step", "size", "data", "bytes", "large", "pixels"),)),
        Kind("image: 2^32-1 x 2^32-1, step 2^32-1", "image",
             _raw(2**32 - 1, 2**32 - 1, "rgb8", 2**32 - 1, 64), DROP,
             (("width", "height", "step", "size", "data", "bytes", "large", "pixels"),)),
        Kind("image: 30000 x 30000 declared, 1 kB", "image",
             _raw(30000, 30000, "rgb8", 90000, 1000), DROP,
             (("width", "height", "step", "size", "data", "bytes", "large", "pixels"),)),
        Kind("image: width 0", "image", _raw(HEIGHT, 0, "rgb8", 0, 0), DROP, dims),
        Kind("image: height 0", "image", _raw(0, WIDTH, "rgb8", WIDTH * 3, 0), DROP, dims),
        Kind("image: all fields empty", "image", _raw(0, 0, "", 0, 0), DROP,
             (("empty", "encoding", "width", "height", "size", "zero"),)),
        Kind("image: 1x1 (engine cannot run)", "image", _from_picture(picture[:1, :1], "rgb8"),
             DROP, (("1x1", "engine", "small", "network", "model", "size"),)),
        Kind("image: 3x96 (engine cannot run)", "image", _from_picture(picture[:3], "rgb8"),
             DROP, (("96x3", "3x96", "engine", "small", "network", "model", "size"),)),
        Kind("image: engine fails at run time", "image",
             _from_picture(_tripwire_picture(), "rgb8"), DROP, engine),
        Kind("image: unknown encoding nv12", "image",
             _raw(HEIGHT, WIDTH, "nv12", WIDTH, HEIGHT * WIDTH), DROP, (("nv12",),)),
        Kind("image: encoding 'RGB8' (case)", "image",
             _raw(HEIGHT, WIDTH, "RGB8", WIDTH * 3, HEIGHT * WIDTH * 3), MAY),
        Kind("image: encoding 'rgb8 ' (space)", "image",
             _raw(HEIGHT, WIDTH, "rgb8 ", WIDTH * 3, HEIGHT * WIDTH * 3), MAY),
        Kind("image: non-ASCII encoding 'rgb8é'", "image",
             _raw(HEIGHT, WIDTH, "rgb8é", WIDTH * 3, HEIGHT * WIDTH * 3), DROP,
             encoding_words),
        Kind("image: yuv422", "image", _raw(HEIGHT, WIDTH, "yuv422", WIDTH * 2,
                                             HEIGHT * WIDTH * 2), MAY),
        Kind("image: bayer_rggb8", "image", _raw(HEIGHT, WIDTH, "bayer_rggb8", WIDTH,
                                                  HEIGHT * WIDTH), MAY),
        Kind("image: mono16 to a color node", "image",
             _from_picture(np.full((HEIGHT, WIDTH), 40000, np.uint16), "mono16"), MAY),
        Kind("image: rgb16", "image",
             _from_picture(picture.astype(np.uint16) * 257, "rgb16"), MAY),
        Kind("image: 32FC3 absurd values (1e38)", "image",
             _from_picture(np.full((HEIGHT, WIDTH, 3), 1e38, np.float32), "32FC3"), MAY),
        Kind("image: 64FC1 -1e308", "image",
             _from_picture(np.full((HEIGHT, WIDTH), -1e308, np.float64), "64FC1"), MAY),
        Kind("image: 16UC3 with 8-bit-sized data", "image",
             _raw(HEIGHT, WIDTH, "16UC3", WIDTH * 3, HEIGHT * WIDTH * 3), DROP,
             (("step", "data", "bytes", "size"),)),
        Kind("image: 8UC3", "image", _from_picture(picture, "8UC3"), MAY),
        Kind("image: rows padded to an odd step", "image", _padded_rows, PASS,
             check=same_labels_as_reference),
        Kind("image: bgr8", "image", _from_picture(picture[..., ::-1].copy(), "bgr8"), PASS,
             check=same_labels_as_reference),
        Kind("image: rgba8", "image",
             _from_picture(np.dstack([picture, np.full((HEIGHT, WIDTH), 7, np.uint8)]), "rgba8"),
             PASS, check=same_labels_as_reference),
        Kind("image: is_bigendian=1 on rgb8", "image", _edited(_set(is_bigendian=1)), PASS,
             check=same_labels_as_reference),
        Kind("image: is_bigendian=200", "image", _edited(_set(is_bigendian=200)), MAY),
        Kind("image: frame_id of 4096 characters", "image",
             _edited(lambda m: setattr(m.header, "frame_id", "f" * 4096)), MAY),
    ]  # fmt: skip
    kinds += hypothesis_image_kinds(hypothesis_examples)
    return kinds + stamp_kinds("image", lambda ns: valid_image(0, ns))


# ------------------------------------------------------------------------- compressed
def _png_bytes(array: np.ndarray) -> bytes:
    ok, data = cv2.imencode(".png", array)
    assert ok
    return data.tobytes()


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    crc = zlib.crc32(kind + body) & 0xFFFFFFFF
    return len(body).to_bytes(4, "big") + kind + body + crc.to_bytes(4, "big")


def png_bomb(side: int = 12000) -> bytes:
    """An honest PNG of a side x side all-black RGB image: ~420 kB that decode to
    3 side^2 bytes (432 MB for 12000), written with zlib directly."""
    ihdr = side.to_bytes(4, "big") * 2 + bytes([8, 2, 0, 0, 0])  # 8-bit RGB
    compressor = zlib.compressobj(9)
    row = bytes(3 * side + 1)  # filter byte + pixels
    chunks = [compressor.compress(row) for _ in range(side)]
    idat = b"".join(chunks) + compressor.flush()
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", idat)
        + _png_chunk(b"IEND", b"")
    )


def png_header_only(side: int) -> bytes:
    ihdr = side.to_bytes(4, "big") * 2 + bytes([8, 2, 0, 0, 0])
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr)


def jpeg_with_size(height: int, width: int) -> bytes:
    """A small JPEG whose SOF0 claims height x width (its scan data is for 48x96)."""
    ok, data = cv2.imencode(".jpg", cv2.cvtColor(valid_picture(0), cv2.COLOR_RGB2BGR))
    assert ok
    raw = bytearray(data.tobytes())
    sof = raw.find(b"\xff\xc0")
    raw[sof + 5 : sof + 9] = height.to_bytes(2, "big") + width.to_bytes(2, "big")
    return bytes(raw)


def _compressed(data: bytes | Callable[[], bytes], fmt: str) -> Callable[[Ctx], CompressedImage]:
    cache: list[bytes] = []

    def make(ctx: Ctx) -> CompressedImage:
        if not cache:
            cache.append(data() if callable(data) else data)
        message = CompressedImage(format=fmt)
        message.data = as_data(cache[0])
        return stamped(message, ctx.stamp_ns, "camera")

    return make


def compressed_kinds() -> list[Kind]:
    rng = np.random.default_rng(7)
    picture = valid_picture(0)
    bgr = cv2.cvtColor(picture, cv2.COLOR_RGB2BGR)
    png = _png_bytes(bgr)
    jpeg = cv2.imencode(".jpg", bgr)[1].tobytes()
    garbage = rng.integers(0, 256, 2048, dtype=np.uint8).tobytes()
    flipped = bytearray(png)
    flipped[len(png) // 2 : len(png) // 2 + 16] = bytes(16)  # IDAT damaged, CRC wrong
    decode = (("decode", "compressed", "png", "jpeg", "format", "data", "image"),)
    large = (("large", "12000", "size", "pixels", "limit"),)
    engine = (("engine", "network", "model", "inference", "segment", "onnx"),)
    tripwire = _png_bytes(cv2.cvtColor(_tripwire_picture(), cv2.COLOR_RGB2BGR))
    depth_png = _png_bytes(np.full((HEIGHT, WIDTH), 1000, np.uint16))
    return [
        Kind("compressed: random bytes as jpeg", "compressed", _compressed(garbage, "jpeg"),
             DROP, decode),
        Kind("compressed: no data", "compressed", _compressed(b"", "png"), DROP,
             (("data", "empty"),)),
        Kind("compressed: PNG signature + random bytes", "compressed",
             _compressed(png[:8] + garbage, "png"), DROP, decode),
        Kind("compressed: JPEG SOI + random bytes", "compressed",
             _compressed(b"\xff\xd8\xff" + garbage, "jpeg"), DROP, decode),
        Kind("compressed: PNG cut in half", "compressed", _compressed(png[: len(png) // 2],
                                                                        "png"), MAY),
        Kind("compressed: JPEG cut in half", "compressed",
             _compressed(jpeg[: len(jpeg) // 2], "jpeg"), MAY),
        Kind("compressed: PNG with a damaged IDAT", "compressed",
             _compressed(bytes(flipped), "png"), MAY),
        Kind("compressed: PNG header only (48x96)", "compressed",
             _compressed(png_header_only(96), "png"), DROP, decode),
        Kind("compressed: PNG header of 12000x12000, no data", "compressed",
             _compressed(png_header_only(12000), "png"), DROP,
             (("decode", "large", "12000", "size", "data", "png"),)),
        Kind("compressed: PNG bomb 12000x12000 RGB (420 kB)", "compressed",
             _compressed(png_bomb, "png"), DROP, large, repeat=False),
        Kind("compressed: JPEG claiming 12000x12000", "compressed",
             _compressed(lambda: jpeg_with_size(12000, 12000), "jpeg"), DROP,
             (("large", "12000", "size", "pixels", "decode", "jpeg", "limit"),), repeat=False),
        Kind("compressed: JPEG claiming 65535x65535", "compressed",
             _compressed(lambda: jpeg_with_size(65535, 65535), "jpeg"), DROP,
             (("large", "65535", "size", "pixels", "decode", "jpeg", "limit"),)),
        Kind("compressed: unknown format 'webp2000'", "compressed",
             _compressed(png, "webp2000"), MAY),
        Kind("compressed: format 'rgb8; tiff compressed'", "compressed",
             _compressed(png, "rgb8; tiff compressed bgr8"), MAY),
        Kind("compressed: empty format, PNG data", "compressed", _compressed(png, ""), MAY,
             check=same_labels_as_reference),
        Kind("compressed: format says png, data is JPEG", "compressed",
             _compressed(jpeg, "png"), MAY),
        Kind("compressed: format of 4096 ';'", "compressed", _compressed(png, ";" * 4096), MAY),
        Kind("compressed: 16-bit gray PNG", "compressed",
             _compressed(_png_bytes(np.full((HEIGHT, WIDTH), 40000, np.uint16)), "mono16; png"),
             MAY),
        Kind("compressed: 8-bit gray PNG", "compressed",
             _compressed(_png_bytes(cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)), "mono8; png"), MAY),
        Kind("compressed: RGBA PNG", "compressed",
             _compressed(_png_bytes(np.dstack([bgr, np.full((HEIGHT, WIDTH), 9, np.uint8)])),
                         "rgba8; png compressed bgra8"), PASS, check=same_labels_as_reference),
        Kind("compressed: 1x1 PNG (engine cannot run)", "compressed",
             _compressed(_png_bytes(bgr[:1, :1]), "png"), DROP,
             (("1x1", "engine", "small", "network", "model", "size"),)),
        Kind("compressed: engine fails at run time", "compressed",
             _compressed(tripwire, "rgb8; png compressed bgr8"), DROP, engine),
        Kind("compressed: compressedDepth PNG to a color node", "compressed",
             _compressed(bytes(12) + depth_png, "16UC1; compressedDepth png"), MAY),
        Kind("compressed: compressedDepth with garbage", "compressed",
             _compressed(garbage, "32FC1; compressedDepth png"), DROP, decode),
        Kind("compressed: compressedDepth rvl", "compressed",
             _compressed(garbage, "16UC1; compressedDepth rvl"), DROP,
             (("rvl", "format", "compressed"),)),
        Kind("compressed: BMP data", "compressed",
             _compressed(cv2.imencode(".bmp", bgr)[1].tobytes(), "bmp"), MAY),
        *stamp_kinds("compressed", lambda ns: valid_compressed(0, ns)),
    ]  # fmt: skip


# ------------------------------------------------------------------------- clouds
def cloud_points(variant: int) -> np.ndarray:
    """x, y, z, intensity: a ground plane and a box (variant 0, 1) or a wall (2) ahead."""
    xs, ys = np.meshgrid(np.arange(2, 20, 0.5), np.arange(-5, 5, 0.5))
    ground = np.column_stack([xs.ravel(), ys.ravel(), np.full(xs.size, -1.73)])
    bys, bzs = np.meshgrid(np.arange(-1, 1, 0.2), np.arange(-1.6, 0, 0.2))
    variant %= VARIANTS
    if variant == 2:
        wys, wzs = np.meshgrid(np.arange(-4, 4, 0.25), np.arange(-1.6, 1.0, 0.25))
        obstacle = np.column_stack([np.full(wys.size, 15.0), wys.ravel(), wzs.ravel()])
    else:
        distance, shift = (8.0, 0.0) if variant == 0 else (12.0, 1.0)
        obstacle = np.column_stack([np.full(bys.size, distance), bys.ravel() + shift, bzs.ravel()])
    xyz = np.vstack([ground, obstacle]).astype(np.float32)
    points = np.zeros(len(xyz), dtype=[("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("i", "<f4")])
    points["x"], points["y"], points["z"] = xyz.T
    points["i"] = np.arange(len(xyz)) % 100
    return points


def valid_cloud(variant: int, stamp_ns: int) -> PointCloud2:
    return stamped(array_to_pointcloud2(cloud_points(variant)), stamp_ns, "lidar")


def raw_cloud(
    fields: Sequence[tuple[str, int, int, int]],
    point_step: int,
    width: int,
    height: int = 1,
    row_step: int | None = None,
    data: bytes = b"",
    bigendian: bool = False,
) -> PointCloud2:
    message = PointCloud2(height=height, width=width, point_step=point_step, is_dense=False)
    message.row_step = width * point_step if row_step is None else row_step
    message.fields = [PointField(name=n, offset=o, datatype=d, count=c) for n, o, d, c in fields]
    message.is_bigendian = bigendian
    message.data = as_data(data)
    return message


XYZI = (("x", 0, 7, 1), ("y", 4, 7, 1), ("z", 8, 7, 1), ("i", 12, 7, 1))


def _cloud(edit: Callable[[PointCloud2], Any] | None = None, points=None):
    def make(ctx: Ctx) -> PointCloud2:
        message = (
            valid_cloud(0, ctx.stamp_ns)
            if points is None
            else stamped(array_to_pointcloud2(points()), ctx.stamp_ns, "lidar")
        )
        if edit is not None:
            edit(message)
        return message

    return make


def _fields(*fields: tuple[str, int, int, int]) -> Callable[[PointCloud2], None]:
    def edit(message: PointCloud2) -> None:
        message.fields = [PointField(name=n, offset=o, datatype=d, count=c)
                          for n, o, d, c in fields]  # fmt: skip

    return edit


def _with_points(transform: Callable[[np.ndarray], np.ndarray]) -> Callable[[], np.ndarray]:
    return lambda: transform(cloud_points(0))


def _nan_half(points: np.ndarray) -> np.ndarray:
    points["x"][::2] = np.nan
    return points


def _inf_third(points: np.ndarray) -> np.ndarray:
    points["y"][::3] = np.inf
    points["z"][1::3] = -np.inf
    return points


def _huge(points: np.ndarray) -> np.ndarray:
    points["x"][::2] = 3e38
    points["y"][::2] = -3e38
    return points


def _origin(points: np.ndarray) -> np.ndarray:
    for name in "xyz":
        points[name] = 0.0
    return points


def _organized(points: np.ndarray) -> np.ndarray:
    return points[: (len(points) // 4) * 4].reshape(4, -1)


def with_extra_fields(points: np.ndarray, extra: dict[str, np.dtype]) -> np.ndarray:
    """``points`` with fields the node would append already there (garbage values)."""
    dtype = np.dtype(list(points.dtype.descr) + [(n, t) for n, t in extra.items()])
    out = np.zeros(points.shape, dtype)
    for name in points.dtype.names:
        out[name] = points[name]
    for index, name in enumerate(extra):
        out[name] = 77 + index
    return out


def _bigendian(ctx: Ctx) -> PointCloud2:
    points = cloud_points(0)
    swapped = points.astype(points.dtype.newbyteorder(">"))
    message = raw_cloud(XYZI, 16, len(points), data=swapped.tobytes(), bigendian=True)
    return stamped(message, ctx.stamp_ns, "lidar")


def _float64_xyz(ctx: Ctx) -> PointCloud2:
    points = cloud_points(0)
    wide = np.zeros(len(points), [("x", "<f8"), ("y", "<f8"), ("z", "<f8"), ("i", "<f4")])
    for name in points.dtype.names:
        wide[name] = points[name]
    return stamped(array_to_pointcloud2(wide), ctx.stamp_ns, "lidar")


def values_equal(a: np.ndarray, b: np.ndarray) -> bool:
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        return False
    if a.dtype.kind == "f" or b.dtype.kind == "f":
        return bool(np.array_equal(a.astype(np.float64), b.astype(np.float64), equal_nan=True))
    return bool(np.array_equal(a, b))


def cloud_matches_reference(out: dict, ref: dict) -> str | None:
    """The output cloud has each field name once: the input's own fields with the input's
    values, and the fields the node appends with the values it appended to the reference
    cloud (variant 0, same points); an input field of the same name as an appended one is
    replaced, never duplicated."""
    got_message, want_message = out["cloud"], ref["cloud"]
    names = [f.name for f in got_message.fields]
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        return f"output has several fields named {duplicated}: {names}"
    reference_input = {f.name for f in ref["input"].fields}
    appended = [f.name for f in want_message.fields if f.name not in reference_input]
    own = [f.name for f in out["input"].fields if f.name not in appended]
    if sorted(names) != sorted(own + appended):
        return f"output fields {names}; expected the input's {own} and appended {appended}"
    got, want = pointcloud2_to_array(got_message), pointcloud2_to_array(want_message)
    sent = pointcloud2_to_array(out["input"])
    for name in appended:
        if not values_equal(got[name], want[name]):
            return f"appended field {name!r} differs from the output for the same points"
    for name in own:
        if not values_equal(got[name], sent[name]):
            return f"input field {name!r} was not kept as it was"
    return None


def unlabeled_where_not_finite(out: dict, ref: dict) -> str | None:
    cloud = pointcloud2_to_array(out["cloud"])
    finite = np.isfinite(cloud["x"]) & np.isfinite(cloud["y"]) & np.isfinite(cloud["z"])
    if "label" in cloud.dtype.names and np.any(cloud["label"][~finite] != UNLABELED):
        return "points with NaN/inf coordinates got a label"
    return None


def cloud_kinds(output_fields: Sequence[str], hypothesis_examples: int = 40) -> list[Kind]:
    """Hostile PointCloud2 for a node that appends ``output_fields``."""
    n = len(cloud_points(0))
    step = (("point_step",),)
    size = (("data", "bytes", "row_step", "size"),)
    fld = (("field",),)
    geometry = (
        (
            "width",
            "height",
            "point_step",
            "row_step",
            "size",
            "data",
            "bytes",
            "large",
            "overflow",
            "points",
        ),
    )
    xyz = (("x", "xyz", "coordinate"),)
    reference = cloud_matches_reference
    kinds = [
        Kind("cloud: point_step 0", "cloud", _cloud(_set(point_step=0, row_step=0)), DROP, step),
        Kind("cloud: point_step 2^32-1", "cloud", _cloud(_set(point_step=2**32 - 1)), DROP,
             step),
        Kind("cloud: point_step 2^32-1, row_step 2^32-1", "cloud",
             _cloud(_set(point_step=2**32 - 1, row_step=2**32 - 1)), DROP, step),
        Kind("cloud: point_step 12 < fields' extent", "cloud",
             _cloud(lambda m: (_set(point_step=12, row_step=12 * n)(m),
                               setattr(m, "data", as_data(bytes(m.data)[: 12 * n])))), DROP, step),
        Kind("cloud: width*height overflows (2^32-1 squared)", "cloud",
             _cloud(_set(width=2**32 - 1, height=2**32 - 1, row_step=2**32 - 1)), DROP, geometry),
        Kind("cloud: width 2^31, 12 kB data", "cloud", _cloud(_set(width=2**31)), DROP,
             geometry),
        Kind("cloud: row_step < width * point_step", "cloud",
             _cloud(_set(row_step=16 * n - 16)), DROP, (("row_step",),)),
        Kind("cloud: row_step 2^32-1", "cloud", _cloud(_set(row_step=2**32 - 1)), DROP,
             (("row_step", "data", "bytes"),)),
        Kind("cloud: data 5 bytes short", "cloud", _cloud(_truncate(5)), DROP, size),
        Kind("cloud: data 16 bytes long", "cloud", _cloud(_extend(16)), DROP, size),
        Kind("cloud: height 4 but data for 1 row", "cloud", _cloud(_set(height=4)), DROP,
             size),
        Kind("cloud: fields overlap", "cloud",
             _cloud(_fields(("x", 0, 7, 1), ("y", 2, 7, 1), ("z", 8, 7, 1), ("i", 12, 7, 1))),
             DROP, (("overlap", "field"),)),
        Kind("cloud: field beyond point_step", "cloud",
             _cloud(_fields(("x", 0, 7, 1), ("y", 4, 7, 1), ("z", 8, 7, 1),
                            ("i", 100, 7, 1))), DROP, (("point_step", "field"),)),
        Kind("cloud: field offset 2^32-1", "cloud",
             _cloud(_fields(("x", 0, 7, 1), ("y", 4, 7, 1), ("z", 8, 7, 1),
                            ("i", 2**32 - 1, 7, 1))), DROP, fld),
        Kind("cloud: datatype 0", "cloud",
             _cloud(_fields(("x", 0, 0, 1), ("y", 4, 7, 1), ("z", 8, 7, 1), ("i", 12, 7, 1))),
             DROP, (("datatype",),)),
        Kind("cloud: datatype 9", "cloud",
             _cloud(_fields(("x", 0, 7, 1), ("y", 4, 7, 1), ("z", 8, 7, 1), ("i", 12, 9, 1))),
             DROP, (("datatype",),)),
        Kind("cloud: datatype 255", "cloud",
             _cloud(_fields(("x", 0, 7, 1), ("y", 4, 7, 1), ("z", 8, 255, 1),
                            ("i", 12, 7, 1))), DROP, (("datatype",),)),
        Kind("cloud: count 0", "cloud",
             _cloud(_fields(("x", 0, 7, 0), ("y", 4, 7, 1), ("z", 8, 7, 1), ("i", 12, 7, 1))),
             DROP, (("count",),)),
        Kind("cloud: count 2^32-1", "cloud",
             _cloud(_fields(("x", 0, 7, 1), ("y", 4, 7, 1), ("z", 8, 7, 1),
                            ("i", 12, 7, 2**32 - 1))), DROP, (("count", "point_step"),)),
        Kind("cloud: duplicate field names", "cloud",
             _cloud(_fields(("x", 0, 7, 1), ("y", 4, 7, 1), ("z", 8, 7, 1), ("x", 12, 7, 1))),
             DROP, (("duplicate", "field"),)),
        Kind("cloud: empty field name", "cloud",
             _cloud(_fields(("x", 0, 7, 1), ("y", 4, 7, 1), ("z", 8, 7, 1), ("", 12, 7, 1))),
             DROP, (("name", "field"),)),
        Kind("cloud: no x, y, z", "cloud",
             _cloud(_fields(("a", 0, 7, 1), ("b", 4, 7, 1), ("c", 8, 7, 1), ("i", 12, 7, 1))),
             DROP, xyz),
        Kind("cloud: no z", "cloud",
             _cloud(_fields(("x", 0, 7, 1), ("y", 4, 7, 1), ("i", 12, 7, 1))), DROP,
             (("z",),)),
        Kind("cloud: x count 3 instead of x, y, z", "cloud",
             _cloud(_fields(("x", 0, 7, 3), ("i", 12, 7, 1))), DROP, xyz),
        Kind("cloud: no fields at all", "cloud", _cloud(_fields()), DROP,
             (("field", "point_step", "x"),)),
        Kind("cloud: x, y, z as uint8", "cloud",
             _cloud(_fields(("x", 0, 2, 1), ("y", 4, 2, 1), ("z", 8, 2, 1), ("i", 12, 7, 1))),
             MAY),
        Kind("cloud: x, y, z as float64", "cloud", _float64_xyz, PASS),
        Kind("cloud: is_bigendian with big-endian data", "cloud", _bigendian, PASS,
             check=reference),
        Kind("cloud: is_bigendian=true on little-endian data", "cloud",
             _cloud(_set(is_bigendian=True)), MAY),
        Kind("cloud: half the points NaN", "cloud", _cloud(points=_with_points(_nan_half)),
             PASS, check=unlabeled_where_not_finite),
        Kind("cloud: +-inf coordinates", "cloud", _cloud(points=_with_points(_inf_third)),
             PASS, check=unlabeled_where_not_finite),
        Kind("cloud: coordinates of 3e38", "cloud", _cloud(points=_with_points(_huge)), PASS),
        Kind("cloud: all points at the origin", "cloud",
             _cloud(points=_with_points(_origin)), PASS),
        Kind("cloud: organized 4 rows", "cloud", _cloud(points=_with_points(_organized)), PASS),
        Kind("cloud: empty (0 points)", "cloud",
             _cloud(points=lambda: cloud_points(0)[:0]), MAY),
        Kind("cloud: one point", "cloud", _cloud(points=lambda: cloud_points(0)[:1]), MAY),
        Kind("cloud: is_dense lies (NaN points, is_dense true)", "cloud",
             _cloud(lambda m: setattr(m, "is_dense", True), points=_with_points(_nan_half)),
             PASS, check=unlabeled_where_not_finite),
        Kind("cloud: frame_id empty", "cloud",
             _cloud(lambda m: setattr(m.header, "frame_id", "")), MAY),
    ]  # fmt: skip
    for field_name in output_fields:
        kinds.append(
            Kind(f"cloud: already has a field {field_name!r}", "cloud",
                 _cloud(points=_with_points(
                     lambda p, f=field_name: with_extra_fields(p, {f: np.uint8}))),
                 PASS, check=reference, note=REPLACED)
        )  # fmt: skip
        kinds.append(
            Kind(f"cloud: already has {field_name!r} as 3 x float64", "cloud",
                 _cloud(points=_with_points(
                     lambda p, f=field_name: with_extra_fields(p, {f: ("<f8", (3,))}))),
                 PASS, check=reference, note=REPLACED)
        )  # fmt: skip
    kinds.append(
        Kind(f"cloud: already has all of {', '.join(output_fields)}", "cloud",
             _cloud(points=_with_points(
                 lambda p: with_extra_fields(p, dict.fromkeys(output_fields, np.int32)))),
             PASS, check=reference, note=REPLACED)
    )  # fmt: skip
    kinds += hypothesis_cloud_kinds(hypothesis_examples, reference)
    kinds += stamp_kinds("cloud", lambda ns: valid_cloud(0, ns))
    return kinds


# ------------------------------------------------------------------------- hypothesis
def draw_examples(strategy: Any, count: int) -> list[Any]:
    """``count`` (at most) examples of ``strategy``, the same ones on every run."""
    from hypothesis import HealthCheck, Phase, given, settings

    examples: list[Any] = []

    @settings(
        derandomize=True,
        database=None,
        max_examples=count,
        deadline=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(strategy)
    def collect(example: Any) -> None:
        examples.append(example)

    collect()
    return examples


_SIZES = {1: 1, 2: 1, 3: 2, 4: 2, 5: 4, 6: 4, 7: 4, 8: 8}
_EXTRA_NAMES = ("intensity", "ring", "t", "reflectivity", "ambient", "range", "noise")


def _layouts():
    """Random valid layouts: x, y, z float32 among extra fields, with random padding."""
    from hypothesis import strategies as st

    extra = st.lists(
        st.tuples(st.sampled_from(_EXTRA_NAMES), st.integers(1, 8), st.integers(1, 3)),
        max_size=4,
        unique_by=lambda f: f[0],
    )
    return st.tuples(
        extra,
        st.permutations(range(7)),  # order of x, y, z among the extras
        st.lists(st.integers(0, 5), min_size=8, max_size=8),  # padding before each field
        st.integers(0, 9),  # padding at the end of a point
        st.booleans(),  # big-endian
        st.integers(0, 64),  # row padding
    )


def _build_layout(example) -> tuple[list[tuple[str, int, int, int]], int, bool, int]:
    extra, order, padding, tail, bigendian, row_pad = example
    named = [("x", 7, 1), ("y", 7, 1), ("z", 7, 1), *extra]
    ranked = sorted(range(len(named)), key=lambda i: order[i] if i < 7 else i)
    fields, offset = [], 0
    for position, index in enumerate(ranked):
        name, datatype, count = named[index]
        offset += padding[position % len(padding)]
        fields.append((name, offset, datatype, count))
        offset += _SIZES[datatype] * count
    return fields, offset + tail, bigendian, row_pad


def layout_cloud(example, stamp_ns: int) -> PointCloud2:
    """The reference points (variant 0) in a random valid layout."""
    fields, point_step, bigendian, row_pad = _build_layout(example)
    points = cloud_points(0)
    order = ">" if bigendian else "<"
    numpy_types = {1: "i1", 2: "u1", 3: "i2", 4: "u2", 5: "i4", 6: "u4", 7: "f4", 8: "f8"}
    formats = []
    for _, _, datatype, count in fields:
        base = np.dtype(order + numpy_types[datatype])
        formats.append(np.dtype((base, (count,))) if count > 1 else base)
    dtype = np.dtype(
        {
            "names": [f[0] for f in fields],
            "formats": formats,
            "offsets": [f[1] for f in fields],
            "itemsize": point_step,
        }
    )
    records = np.zeros(len(points), dtype)
    for name in "xyz":
        records[name] = points[name]
    for name, _, _, _ in fields:
        if name not in "xyz":
            records[name] = 3
    data = records.tobytes() + bytes(row_pad)
    message = raw_cloud(fields, point_step, len(points), 1, point_step * len(points) + row_pad,
                        data, bigendian)  # fmt: skip
    return stamped(message, stamp_ns, "lidar")


DEFECTS = (
    "overlap", "beyond point_step", "datatype", "count 0", "duplicate name", "empty name",
    "no y", "point_step too small", "row_step too small", "data length", "width huge",
)  # fmt: skip


def _malformed(example) -> Callable[[Ctx], PointCloud2]:
    layout, defect, amount = example
    fields, point_step, bigendian, _ = _build_layout(layout)
    fields = [list(f) for f in fields]
    width = 50
    row_step = point_step * width
    nbytes = row_step
    target = fields[amount % len(fields)]
    other = fields[(amount + 1) % len(fields)]
    if defect == "overlap":
        target[1] = other[1] + (_SIZES[other[2]] * other[3] - 1 if amount % 2 else 0)
    elif defect == "beyond point_step":
        target[1] = point_step - _SIZES[target[2]] * target[3] + 1 + amount % 7
    elif defect == "datatype":
        target[2] = (0, 9, 10, 127, 255)[amount % 5]
    elif defect == "count 0":
        target[3] = 0
    elif defect == "duplicate name":
        target[0] = other[0]
    elif defect == "empty name":
        target[0] = ""
    elif defect == "no y":
        for field in fields:
            if field[0] == "y":
                field[0] = "why"
    elif defect == "point_step too small":
        point_step = max(f[1] + _SIZES[f[2]] * f[3] for f in fields) - 1 - amount % 3
        row_step = point_step * width
        nbytes = row_step
    elif defect == "row_step too small":
        row_step = point_step * width - 1 - amount
        nbytes = max(row_step, 0)
    elif defect == "data length":
        nbytes = row_step + (amount + 1) * (1 if amount % 2 else -1)
    elif defect == "width huge":
        width = 2**31 + amount
        row_step = (point_step * width) % 2**32
    if target is other and defect in ("overlap", "duplicate name"):  # one field only
        target[0] = ""
    data = np.random.default_rng(amount).integers(0, 256, max(nbytes, 0), dtype=np.uint8)

    def make(ctx: Ctx) -> PointCloud2:
        message = raw_cloud([tuple(f) for f in fields], point_step, width, 1, row_step,
                            data.tobytes(), bigendian)  # fmt: skip
        return stamped(message, ctx.stamp_ns, "lidar")

    return make


def _cycle(makers: list[Callable[[Ctx], Any]]) -> Callable[[Ctx], Any]:
    state = {"next": 0}

    def make(ctx: Ctx) -> Any:
        maker = makers[state["next"] % len(makers)]
        state["next"] += 1
        return maker(ctx)

    return make


def hypothesis_cloud_kinds(count: int, reference: Callable) -> list[Kind]:
    """Property-based kinds: random malformed layouts (each with one defect, so each must
    be dropped) and random valid layouts of the reference points (each must give the
    reference's output values)."""
    from hypothesis import strategies as st

    malformed = draw_examples(
        st.tuples(_layouts(), st.sampled_from(DEFECTS), st.integers(0, 50)), count
    )
    valid = draw_examples(_layouts(), max(count // 2, 1))
    return [
        Kind("cloud: random malformed layout (hypothesis)", "cloud",
             _cycle([_malformed(example) for example in malformed]), DROP,
             (("field", "point_step", "row_step", "datatype", "count", "data", "bytes",
               "width", "name", "overlap", "duplicate", "y"),)),
        Kind("cloud: random valid layout of the same points (hypothesis)", "cloud",
             _cycle([lambda ctx, e=e: layout_cloud(e, ctx.stamp_ns) for e in valid]), PASS,
             check=reference),
    ]  # fmt: skip


def hypothesis_image_kinds(count: int) -> list[Kind]:
    """Random Image headers (sizes, step, encoding, byte order, data length): those whose
    sizes do not add up must be dropped; the others may be used or dropped."""
    from hypothesis import strategies as st

    sizes = st.one_of(st.sampled_from([0, 1, 2, 3, 4, 5, 48, 96, 2**31 - 1, 2**32 - 1]),
                      st.integers(0, 200))  # fmt: skip
    encodings = st.sampled_from(
        ["rgb8", "bgr8", "rgba8", "mono8", "mono16", "8UC3", "16UC1", "32FC1", "yuv422", "", "?"]
    )
    headers = draw_examples(
        st.tuples(sizes, sizes, st.integers(-3, 3), encodings, st.integers(0, 1),
                  st.integers(-2, 2)),
        count,
    )  # fmt: skip
    bpp = {"rgb8": 3, "bgr8": 3, "rgba8": 4, "mono8": 1, "mono16": 2, "8UC3": 3, "16UC1": 2,
           "32FC1": 4, "yuv422": 2}  # fmt: skip
    makers = []
    for height, width, step_delta, encoding, big, data_delta in headers:
        step = max(0, min(width * bpp.get(encoding, 1) + step_delta, 2**32 - 1))
        nbytes = height * step + data_delta
        consistent = (
            encoding in bpp and height > 0 and width > 0 and step >= width * bpp[encoding]
            and data_delta == 0
        )  # fmt: skip
        if nbytes < 0 or nbytes > 200_000:  # keep messages small: a lying header instead
            nbytes, consistent = 100, False
        rng = np.random.default_rng(height * 7 + width)
        data = rng.integers(0, 200, nbytes, dtype=np.uint8).tobytes()
        expect = MAY if consistent else DROP
        makers.append((expect, height, width, encoding, step, data, big))
    drop = [m for m in makers if m[0] == DROP]
    may = [m for m in makers if m[0] == MAY]

    def maker(entry) -> Callable[[Ctx], Image]:
        _, height, width, encoding, step, data, big = entry
        return lambda ctx: stamped(
            raw_image(height, width, encoding, step, data, big), ctx.stamp_ns, "camera"
        )

    kinds = [Kind("image: random inconsistent header (hypothesis)", "image",
                  _cycle([maker(m) for m in drop]), DROP,
                  (("step", "data", "bytes", "width", "height", "encoding", "empty", "size",
                    "large"),))]  # fmt: skip
    if may:
        kinds.append(Kind("image: random consistent header (hypothesis)", "image",
                          _cycle([maker(m) for m in may]), MAY))  # fmt: skip
    return kinds


# ------------------------------------------------------------------------- labels
def valid_label_array(variant: int) -> np.ndarray:
    labels = np.full((HEIGHT, WIDTH), CAR, np.uint8)
    variant %= VARIANTS
    if variant == 1:
        labels[: HEIGHT // 2] = SKY
        labels[HEIGHT // 2 :] = ROAD
    elif variant == 2:
        labels[:, : WIDTH // 2] = BUILDING
    return labels


def valid_labels(variant: int, stamp_ns: int) -> Image:
    return stamped(array_to_image(valid_label_array(variant), "mono8"), stamp_ns, "camera")


def _labels_from(array: np.ndarray, encoding: str, big: bool = False):
    def make(ctx: Ctx) -> Image:
        if big:
            swapped = array.astype(array.dtype.newbyteorder(">"))
            message = raw_image(HEIGHT, WIDTH, encoding, WIDTH * array.itemsize,
                                swapped.tobytes(), 1)  # fmt: skip
            return stamped(message, ctx.stamp_ns, "camera")
        return stamped(array_to_image(array, encoding), ctx.stamp_ns, "camera")

    return make


def all_points_unlabeled(out: dict, ref: dict) -> str | None:
    """Every pixel of the label image was outside the label set: no point may be labeled
    (a wrapped id, e.g. 256 -> 0 or 269 -> 13, would label them)."""
    labels = pointcloud2_to_array(out["cloud"])["label"]
    wrong = np.unique(labels[labels != UNLABELED])
    return f"points labeled {wrong.tolist()} from ids outside the label set" if wrong.size else None


def label_kinds() -> list[Kind]:
    car = valid_label_array(0)
    reference = cloud_matches_reference
    kinds = [
        Kind("labels: rgb8 label image", "labels",
             _labels_from(np.dstack([car] * 3), "rgb8"), DROP, (("rgb8",),)),
        Kind("labels: 32FC1 label image", "labels",
             _labels_from(car.astype(np.float32), "32FC1"), DROP, (("32FC1",),)),
        Kind("labels: 8UC3 label image", "labels", _labels_from(np.dstack([car] * 3), "8UC3"),
             DROP, (("8UC3",),)),
        Kind("labels: data 5 bytes short", "labels",
             lambda ctx: (m := valid_labels(0, ctx.stamp_ns), _truncate(5)(m))[0], DROP,
             (("data", "bytes", "size", "step"),)),
        Kind("labels: step 0", "labels", lambda ctx: stamped(
            raw_image(HEIGHT, WIDTH, "mono8", 0, b""), ctx.stamp_ns, "camera"), DROP,
             (("step", "data", "size"),)),
        Kind("labels: 24x12 (CameraInfo says 96x48)", "labels",
             _labels_from(car[:12, :24].copy(), "mono8"), DROP,
             (("24x12", "12x24", "size"), ("96x48", "48x96", "camerainfo", "camera_info"))),
        Kind("labels: 2^31 x 2^31, 10 bytes", "labels", lambda ctx: stamped(
            raw_image(2**31, 2**31, "mono8", 2**31, bytes(10)), ctx.stamp_ns, "camera"), DROP,
             (("width", "height", "step", "data", "bytes", "size", "large", "pixels"),)),
        Kind("labels: empty", "labels", lambda ctx: stamped(Image(encoding="mono8"),
                                                            ctx.stamp_ns, "camera"), DROP,
             (("empty", "size", "zero", "width", "height"),)),
        Kind("labels: unknown encoding 'labels42'", "labels", lambda ctx: stamped(
            raw_image(HEIGHT, WIDTH, "labels42", WIDTH, bytes(HEIGHT * WIDTH)), ctx.stamp_ns,
            "camera"), DROP, (("labels42",),)),
        Kind("labels: mono16 with the same ids", "labels",
             _labels_from(car.astype(np.uint16), "mono16"), PASS, check=reference),
        Kind("labels: 16UC1 with the same ids", "labels",
             _labels_from(car.astype(np.uint16), "16UC1"), PASS, check=reference),
        Kind("labels: big-endian mono16 with the same ids", "labels",
             _labels_from(car.astype(np.uint16), "mono16", big=True), PASS, check=reference),
        Kind("labels: 8UC1 with the same ids", "labels", _labels_from(car, "8UC1"), PASS,
             check=reference),
    ]  # fmt: skip
    for value in (256, 269, 1000, 65535):
        kinds.append(
            Kind(f"labels: mono16, every id {value} (outside the label set)", "labels",
                 _labels_from(np.full((HEIGHT, WIDTH), value, np.uint16), "mono16"), MAY,
                 check=all_points_unlabeled, note=UNKNOWN_IDS)
        )  # fmt: skip
    mixed = np.where(np.arange(WIDTH) % 2 == 0, 256 + CAR, 512).astype(np.uint16)
    kinds.append(
        Kind("labels: mono16, ids 269 and 512 mixed", "labels",
             _labels_from(np.broadcast_to(mixed, (HEIGHT, WIDTH)).copy(), "mono16"), MAY,
             check=all_points_unlabeled, note=UNKNOWN_IDS)
    )  # fmt: skip
    kinds.append(
        Kind("labels: mono8, every id 200 (outside cityscapes)", "labels",
             _labels_from(np.full((HEIGHT, WIDTH), 200, np.uint8), "mono8"), MAY,
             check=all_points_unlabeled, note=UNKNOWN_IDS)
    )  # fmt: skip
    return kinds + stamp_kinds("labels", lambda ns: valid_labels(0, ns))


# ------------------------------------------------------------------------- camera info
def valid_camera_info(stamp_ns: int, width: int = WIDTH, height: int = HEIGHT) -> CameraInfo:
    cx, cy = width / 2, height / 2
    info = CameraInfo(width=width, height=height, distortion_model="plumb_bob")
    info.d = [0.0] * 5
    info.k = [FOCAL, 0.0, cx, 0.0, FOCAL, cy, 0.0, 0.0, 1.0]
    info.r = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
    info.p = [FOCAL, 0.0, cx, 0.0, 0.0, FOCAL, cy, 0.0, 0.0, 0.0, 1.0, 0.0]
    return stamped(info, stamp_ns, "camera")


def _info(edit: Callable[[CameraInfo], Any]) -> Callable[[Ctx], CameraInfo]:
    def make(ctx: Ctx) -> CameraInfo:
        info = valid_camera_info(ctx.stamp_ns)
        edit(info)
        return info

    return make


def _k(**entries: float) -> Callable[[CameraInfo], None]:
    index = {"fx": 0, "cx": 2, "fy": 4, "cy": 5, "skew": 1, "k22": 8}

    def edit(info: CameraInfo) -> None:
        k = list(info.k)
        for key, value in entries.items():
            k[index[key]] = value
        info.k = k

    return edit


def camera_info_kinds() -> list[Kind]:
    nan, inf = float("nan"), float("inf")
    k_words = (("K", "P", "intrinsic", "focal", "calibrat"),)
    d_words = (("D", "distortion", "coefficient"),)
    size_words = (("width", "height", "size", "0x48", "96x0"),)
    distorted = [0.01, 0.0, 0.0, 0.0, 0.0]  # non-zero: D is used (raw projection)
    either = ("camera_info", "labels", "image")
    return [
        Kind("camera_info: all-zero K and P", "camera_info",
             _info(lambda i: (setattr(i, "k", [0.0] * 9), setattr(i, "p", [0.0] * 12))), DROP,
             k_words),
        Kind("camera_info: NaN focal length", "camera_info", _info(_k(fx=nan)), DROP, k_words),
        Kind("camera_info: inf principal point", "camera_info", _info(_k(cy=inf)), DROP,
             k_words),
        Kind("camera_info: K[8] = 0 (P is valid)", "camera_info", _info(_k(k22=0.0)), MAY),
        Kind("camera_info: K[8] = 0, distorted (K is used)", "camera_info",
             _info(lambda i: (_k(k22=0.0)(i), setattr(i, "d", distorted))), DROP, k_words),
        Kind("camera_info: negative focal length", "camera_info", _info(_k(fx=-50.0)), MAY),
        Kind("camera_info: skew 1e30", "camera_info", _info(_k(skew=1e30)), MAY),
        Kind("camera_info: plumb_bob with 3 coefficients", "camera_info",
             _info(lambda i: setattr(i, "d", distorted[:3])), DROP, d_words),
        Kind("camera_info: NaN distortion", "camera_info",
             _info(lambda i: setattr(i, "d", [nan] * 5)), DROP, d_words),
        Kind("camera_info: 1000 distortion coefficients", "camera_info",
             _info(lambda i: setattr(i, "d", distorted + [0.0] * 995)), DROP, d_words),
        Kind("camera_info: unknown distortion model", "camera_info",
             _info(lambda i: setattr(i, "distortion_model", "fisheye_v9")), DROP,
             (("fisheye_v9",),)),
        Kind("camera_info: rational_polynomial with 5 coefficients", "camera_info",
             _info(lambda i: (setattr(i, "distortion_model", "rational_polynomial"),
                              setattr(i, "d", distorted))), DROP, d_words),
        Kind("camera_info: equidistant, 4 zero coefficients", "camera_info",
             _info(lambda i: (setattr(i, "distortion_model", "equidistant"),
                              setattr(i, "d", [0.0] * 4))), MAY),
        Kind("camera_info: width 0", "camera_info", _info(lambda i: setattr(i, "width", 0)),
             DROP, size_words),
        Kind("camera_info: height 0", "camera_info", _info(lambda i: setattr(i, "height", 0)),
             DROP, size_words),
        Kind("camera_info: width 2^32-1", "camera_info",
             _info(lambda i: setattr(i, "width", 2**32 - 1)), DROP, (), drop_streams=either),
        Kind("camera_info: 192x96 (the labels are 96x48)", "camera_info",
             lambda ctx: valid_camera_info(ctx.stamp_ns, 2 * WIDTH, 2 * HEIGHT), DROP, (),
             drop_streams=either),
        Kind("camera_info: all-zero R", "camera_info",
             _info(lambda i: setattr(i, "r", [0.0] * 9)), MAY),
        Kind("camera_info: binning 1000", "camera_info",
             _info(lambda i: (setattr(i, "binning_x", 1000), setattr(i, "binning_y", 1000))),
             MAY),
        Kind("camera_info: roi outside the image", "camera_info",
             _info(lambda i: (setattr(i.roi, "x_offset", 5000), setattr(i.roi, "width", 10),
                              setattr(i.roi, "height", 10))), MAY),
        Kind("camera_info: empty frame_id", "camera_info",
             _info(lambda i: setattr(i.header, "frame_id", "")), MAY),
        *stamp_kinds("camera_info", valid_camera_info, expect=MAY),
    ]  # fmt: skip


__all__ = [
    "CAR",
    "CITYSCAPES_IDS",
    "DROP",
    "FUSION_FIELDS",
    "HEIGHT",
    "LIDAR_FIELDS",
    "MAY",
    "OPTICAL_IN_LIDAR",
    "PALETTE",
    "PASS",
    "RAW_ERRORS",
    "WIDTH",
    "Ctx",
    "Kind",
    "camera_info_kinds",
    "cloud_kinds",
    "compressed_kinds",
    "hypothesis_image_kinds",
    "image_kinds",
    "label_kinds",
    "valid_camera_info",
    "valid_cloud",
    "valid_compressed",
    "valid_image",
    "valid_labels",
]
