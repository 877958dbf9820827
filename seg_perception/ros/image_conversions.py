"""sensor_msgs/Image and CompressedImage <-> numpy, without cv_bridge.

Why not cv_bridge: the PyPI ``cv-bridge`` is the ROS 1 package, and the ROS 2 one is not
on PyPI, so the package converts images itself — vectorized, and without a copy when the
message's bytes can be viewed directly.

Decisions, documented here once:

* Shapes: single-channel encodings give ``(H, W)``, others ``(H, W, C)``, channel order
  as stored (a ``bgr8`` image reads as BGR; :func:`image_to_rgb8` converts).
* Reading returns a view on ``msg.data`` (writes go into the message where the buffer is
  writable) whenever numpy and OpenCV can use it as is: native byte order and each row
  start aligned to the element size. Row padding (``step`` > ``width * bytes_per_pixel``)
  stays a zero-copy view with a row stride; OpenCV accepts such arrays, use
  ``np.ascontiguousarray`` where a consumer insists on contiguous memory. Big-endian
  multi-byte data, or a ``step`` / buffer address that is not a multiple of the element size
  (OpenCV rejects those), is copied into a contiguous native array.
* Zero-size images (height or width 0) raise :class:`ConversionError` both ways: no camera
  publishes them, and an empty array would only fail later inside OpenCV or a model with an
  unrelated message. (Point clouds differ: an empty cloud is legitimate.)
* Messages are built little-endian on little-endian hosts (``is_bigendian`` says the truth)
  with ``step = width * bytes_per_pixel``; ``data`` is an ``array.array('B')`` stored
  without a second copy (see :func:`seg_perception.ros.pointcloud2.new_rclpy_message`).
* CompressedImage decodes to RGB / RGBA for color and ``(H, W)`` for mono (8 or 16 bit)
  whatever the original encoding was; the ``format`` string follows image_transport
  (``"rgb8; jpeg compressed bgr8"``, plain ``"jpeg"``/``"png"``, and
  ``"16UC1; compressedDepth png"`` / ``"32FC1; compressedDepth png"`` for depth).
"""

from __future__ import annotations

import re
import sys
from typing import TYPE_CHECKING, Any, NamedTuple

import cv2
import numpy as np

from seg_perception.ros.errors import ConversionError
from seg_perception.ros.pointcloud2 import (
    message_bytes,
    new_message_buffer,
    new_rclpy_message,
    to_rclpy_header,
)

if TYPE_CHECKING:  # pragma: no cover - typing only
    from sensor_msgs.msg import CompressedImage, Image

_U8, _U16 = np.dtype(np.uint8), np.dtype(np.uint16)
_NAMED_ENCODINGS: dict[str, tuple[np.dtype, int]] = {
    "mono8": (_U8, 1),
    "mono16": (_U16, 1),
    "rgb8": (_U8, 3),
    "bgr8": (_U8, 3),
    "rgba8": (_U8, 4),
    "bgra8": (_U8, 4),
    "rgb16": (_U16, 3),
    "bgr16": (_U16, 3),
    "rgba16": (_U16, 4),
    "bgra16": (_U16, 4),
    "yuv422": (_U8, 2),
    "yuv422_yuy2": (_U8, 2),
    "uyvy": (_U8, 2),
    "yuyv": (_U8, 2),
    **{f"bayer_{p}8": (_U8, 1) for p in ("rggb", "bggr", "gbrg", "grbg")},
    **{f"bayer_{p}16": (_U16, 1) for p in ("rggb", "bggr", "gbrg", "grbg")},
}
_GENERIC_ENCODING = re.compile(r"^(8U|8S|16U|16S|32S|32F|64F)C([1-9][0-9]*)$", re.IGNORECASE)
_GENERIC_DEPTHS = {
    "8U": np.dtype(np.uint8),
    "8S": np.dtype(np.int8),
    "16U": np.dtype(np.uint16),
    "16S": np.dtype(np.int16),
    "32S": np.dtype(np.int32),
    "32F": np.dtype(np.float32),
    "64F": np.dtype(np.float64),
}
_HOST_IS_BIGENDIAN = sys.byteorder == "big"


def image_encoding_dtype(encoding: str) -> tuple[np.dtype, int]:
    """Return (element dtype, channels) of a ROS image encoding, e.g. ``"bgr8"`` -> (u8, 3).

    Named encodings of sensor_msgs/image_encodings plus the generic ``<depth>C<n>`` family
    (``8UC1`` ... ``64FC4``).
    """
    if encoding in _NAMED_ENCODINGS:
        return _NAMED_ENCODINGS[encoding]
    match = _GENERIC_ENCODING.match(encoding or "")
    if match:
        return _GENERIC_DEPTHS[match.group(1).upper()], int(match.group(2))
    raise ConversionError(
        f"unknown image encoding {encoding!r} (supported: {', '.join(sorted(_NAMED_ENCODINGS))}"
        ", and 8U|8S|16U|16S|32S|32F|64F C<n>)"
    )


# --------------------------------------------------------------------------------------
# sensor_msgs/Image
# --------------------------------------------------------------------------------------


def image_to_array(msg: Any) -> np.ndarray:
    """Convert an Image message (rclpy or rosbags) to ``(H, W)`` or ``(H, W, C)``.

    A zero-copy view when the layout allows it (see the module notes), else a contiguous
    native-endian copy.
    """
    dtype, channels = image_encoding_dtype(msg.encoding)
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    _check_image_size(height, width, msg.encoding)
    pixel_bytes = dtype.itemsize * channels
    if step < width * pixel_bytes:
        raise ConversionError(
            f"Image step {step} is smaller than width * bytes per pixel = "
            f"{width} * {pixel_bytes} = {width * pixel_bytes} ({msg.encoding})"
        )
    data = message_bytes(msg.data)
    if data.size != height * step:
        raise ConversionError(
            f"Image data has {data.size} bytes but height * step = "
            f"{height} * {step} = {height * step}"
        )
    stored = dtype.newbyteorder(">" if msg.is_bigendian else "<")
    shape, strides = _image_layout(height, width, channels, step, dtype.itemsize)
    view = np.ndarray(shape=shape, dtype=stored, buffer=data, strides=strides)
    if view.dtype.isnative and view.flags.aligned:
        return view
    return np.array(view, dtype=dtype, order="C")


def _image_layout(
    height: int, width: int, channels: int, step: int, itemsize: int
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    if channels == 1:
        return (height, width), (step, itemsize)
    return (height, width, channels), (step, channels * itemsize, itemsize)


def _check_image_size(height: int, width: int, encoding: str) -> None:
    if height <= 0 or width <= 0:
        raise ConversionError(
            f"image is empty ({height}x{width}, {encoding}); zero-size images are rejected"
        )


def array_to_image(image: np.ndarray, encoding: str, header: Any | None = None) -> Image:
    """Build an rclpy Image from an array whose dtype and channels match ``encoding``.

    ``(H, W)`` or ``(H, W, 1)`` for single-channel encodings, ``(H, W, C)`` otherwise; the
    dtype must be the encoding's (no silent casts: a float64 array for ``32FC1`` is an
    error). Any strides or byte order are accepted; the message is contiguous and native.
    """
    from sensor_msgs.msg import Image

    image = np.asarray(image)
    dtype, channels = image_encoding_dtype(encoding)
    _check_image_array(image, encoding, dtype, channels)
    height, width = image.shape[:2]
    buffer = new_message_buffer(image.size * dtype.itemsize)
    np.frombuffer(buffer, dtype=dtype).reshape(image.shape)[...] = image
    return new_rclpy_message(
        Image,
        buffer,
        header=to_rclpy_header(header),
        height=int(height),
        width=int(width),
        encoding=str(encoding),
        is_bigendian=int(_HOST_IS_BIGENDIAN),
        step=int(width * channels * dtype.itemsize),
    )


def _check_image_array(image: np.ndarray, encoding: str, dtype: np.dtype, channels: int) -> None:
    """Raise unless ``image`` has the shape and element type that ``encoding`` describes."""
    single = image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 1)
    multi = image.ndim == 3 and image.shape[2] == channels
    if not (single if channels == 1 else multi):
        expected = "(H, W)" if channels == 1 else f"(H, W, {channels})"
        raise ConversionError(f"encoding {encoding!r} needs shape {expected}, got {image.shape}")
    if (image.dtype.kind, image.dtype.itemsize) != (dtype.kind, dtype.itemsize):
        raise ConversionError(
            f"encoding {encoding!r} needs {dtype.name} data, got {image.dtype.name}"
        )
    _check_image_size(image.shape[0], image.shape[1], encoding)


def image_to_rgb8(msg: Any) -> np.ndarray:
    """Return an 8-bit image message as ``(H, W, 3)`` uint8 RGB, what segmentation nets eat.

    ``rgb8`` is returned as the zero-copy view; ``bgr8``/``bgra8``/``rgba8``/``mono8``
    are converted (a copy). Other encodings raise: they need a scaling decision first.
    """
    image = image_to_array(msg)
    conversions = {
        "rgb8": None,
        "rgba8": cv2.COLOR_RGBA2RGB,
        "bgr8": cv2.COLOR_BGR2RGB,
        "bgra8": cv2.COLOR_BGRA2RGB,
        "mono8": cv2.COLOR_GRAY2RGB,
        "8UC1": cv2.COLOR_GRAY2RGB,
    }
    if msg.encoding not in conversions:
        raise ConversionError(
            f"image_to_rgb8 needs an 8-bit color or mono image, got {msg.encoding!r}"
        )
    code = conversions[msg.encoding]
    return image if code is None else cv2.cvtColor(image, code)


# --------------------------------------------------------------------------------------
# sensor_msgs/CompressedImage
# --------------------------------------------------------------------------------------


class CompressedFormat(NamedTuple):
    """A parsed CompressedImage ``format`` string."""

    codec: str  #: "jpeg", "png", or "" (unknown: detect from the data)
    encoding: str | None  #: encoding of the image before compression, e.g. "rgb8"
    compressed_encoding: str | None  #: encoding inside the file, e.g. "bgr8"
    depth: bool  #: compressedDepth transport (a 12-byte header precedes the PNG)


_CODEC_ALIASES = {"jpeg": "jpeg", "jpg": "jpeg", "png": "png"}
_DEPTH_HEADER_BYTES = 12  # compressed_depth_image_transport ConfigHeader: int32 + 2 x float32
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def parse_compressed_format(fmt: str) -> CompressedFormat:
    """Parse image_transport's format strings: ``"jpeg"``, ``"rgb8; jpeg compressed bgr8"``,
    ``"16UC1; compressedDepth png"``; an empty string means "detect from the data"."""
    text = (fmt or "").strip()
    encoding, _, rest = text.rpartition(";") if ";" in text else ("", "", text)
    words = rest.split()
    lowered = [w.lower() for w in words]
    if "compresseddepth" in lowered:
        if "rvl" in lowered:
            raise ConversionError(
                f"unsupported CompressedImage format {fmt!r}: RVL depth is not decoded "
                "(supported: compressedDepth png)"
            )
        return CompressedFormat("png", encoding.strip() or None, None, True)
    codec = _CODEC_ALIASES.get(lowered[0]) if lowered else ""
    if codec is None:
        raise ConversionError(
            f"unsupported CompressedImage format {fmt!r} "
            "(supported: jpeg, png, compressedDepth png)"
        )
    compressed = words[2] if len(words) >= 3 and lowered[1] == "compressed" else None
    return CompressedFormat(codec, encoding.strip() or None, compressed, False)


def compressed_image_to_array(msg: Any) -> np.ndarray:
    """Decode a CompressedImage: RGB/RGBA ``(H, W, C)`` for color, ``(H, W)`` for mono.

    16-bit PNGs stay uint16; compressedDepth ``32FC1`` decodes to float32 meters (NaN where
    the depth was invalid), ``16UC1`` to uint16.
    """
    fmt = parse_compressed_format(msg.format)
    data = message_bytes(msg.data)
    if data.size == 0:
        raise ConversionError(f"CompressedImage ({msg.format!r}) has no data")
    if fmt.depth:
        return _decode_compressed_depth(data, fmt, msg.format)
    image = _imdecode(data, msg.format)
    if image.ndim == 3 and image.shape[2] == 3:
        return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    if image.ndim == 3 and image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2RGBA)
    return image


def _imdecode(data: np.ndarray, fmt: str) -> np.ndarray:
    try:
        image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    except cv2.error as exc:
        raise ConversionError(f"could not decode CompressedImage ({fmt!r}): {exc}") from exc
    if image is None or image.size == 0:
        raise ConversionError(
            f"could not decode CompressedImage ({fmt!r}, {data.size} bytes): not a valid image"
        )
    return image


def _decode_compressed_depth(data: np.ndarray, fmt: CompressedFormat, text: str) -> np.ndarray:
    """Undo compressed_depth_image_transport: header, PNG, and for 32FC1 inverse depth."""
    if data[_DEPTH_HEADER_BYTES : _DEPTH_HEADER_BYTES + 8].tobytes() != _PNG_SIGNATURE:
        raise ConversionError(
            f"compressedDepth data ({text!r}) does not hold a PNG after its "
            f"{_DEPTH_HEADER_BYTES}-byte header"
        )
    inverse = _imdecode(data[_DEPTH_HEADER_BYTES:], text)
    if fmt.encoding != "32FC1":
        return inverse
    quant_a, quant_b = data[4:12].view("<f4")
    depth = np.full(inverse.shape, np.nan, dtype=np.float32)
    valid = inverse != 0
    depth[valid] = quant_a / (inverse[valid].astype(np.float32) - quant_b)
    return depth


def array_to_compressed_image(
    image: np.ndarray,
    codec: str = "jpeg",
    header: Any | None = None,
    *,
    encoding: str | None = None,
    jpeg_quality: int = 95,
    png_compression: int = 3,
) -> CompressedImage:
    """Encode an array to an rclpy CompressedImage with ``codec`` "jpeg" or "png".

    ``encoding`` names the array's layout and defaults to RGB order: ``rgb8``/``rgba8``/
    ``mono8`` for uint8, ``rgb16``/``rgba16``/``mono16`` for uint16 (PNG only); pass
    ``"bgr8"`` for a BGR array. JPEG drops alpha. The message's ``format`` follows
    image_transport, e.g. ``"rgb8; jpeg compressed bgr8"``.
    """
    from sensor_msgs.msg import CompressedImage

    name = codec
    codec = _CODEC_ALIASES.get(name.strip().lower(), "")
    if not codec:
        raise ConversionError(f"cannot encode CompressedImage as {name!r} (jpeg or png)")
    image = np.asarray(image)
    encoding = encoding or _default_encoding(image)
    dtype, channels = image_encoding_dtype(encoding)
    _check_image_array(image, encoding, dtype, channels)
    if (codec == "jpeg" and dtype != _U8) or dtype not in (_U8, _U16) or channels == 2:
        raise ConversionError(f"{codec} cannot store {encoding!r} images")
    bgr, target = _to_opencv_order(image, encoding, channels, codec, dtype)
    params = (
        [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)]
        if codec == "jpeg"
        else [cv2.IMWRITE_PNG_COMPRESSION, int(png_compression)]
    )
    ok, encoded = cv2.imencode(".jpg" if codec == "jpeg" else ".png", bgr, params)
    if not ok:
        raise ConversionError(f"OpenCV could not encode a {image.shape} {encoding} image")
    buffer = new_message_buffer(0)
    buffer.frombytes(encoded)
    return new_rclpy_message(
        CompressedImage,
        buffer,
        header=to_rclpy_header(header),
        format=f"{encoding}; {codec} compressed {target}",
    )


def _default_encoding(image: np.ndarray) -> str:
    channels = 1 if image.ndim == 2 else (image.shape[2] if image.ndim == 3 else 0)
    bits = {("u", 1): "8", ("u", 2): "16"}.get((image.dtype.kind, image.dtype.itemsize))
    names = {1: "mono", 3: "rgb", 4: "rgba"}
    if bits is None or channels not in names:
        raise ConversionError(
            f"cannot compress a {image.dtype} array of shape {image.shape}: pass uint8/uint16 "
            "(H, W), (H, W, 3) or (H, W, 4), or an explicit encoding"
        )
    return f"{names[channels]}{bits}"


def _to_opencv_order(
    image: np.ndarray, encoding: str, channels: int, codec: str, dtype: np.dtype
) -> tuple[np.ndarray, str]:
    """Reorder channels to OpenCV's BGR(A); return the array and the encoding inside the file."""
    bits = 8 * dtype.itemsize
    image = image.astype(dtype.newbyteorder("="), copy=False)
    if channels == 1:
        return image.reshape(image.shape[:2]), f"mono{bits}"
    is_bgr = encoding.startswith("bgr")
    keep_alpha = channels == 4 and codec == "png"
    if keep_alpha:
        code = None if is_bgr else cv2.COLOR_RGBA2BGRA
    elif channels == 4:
        code = cv2.COLOR_BGRA2BGR if is_bgr else cv2.COLOR_RGBA2BGR
    else:
        code = None if is_bgr else cv2.COLOR_RGB2BGR
    out = np.ascontiguousarray(image) if code is None else cv2.cvtColor(image, code)
    return out, f"bgr{'a' if keep_alpha else ''}{bits}"
