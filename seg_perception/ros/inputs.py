"""The door every message comes in through: counted, size-checked, stamp-guarded, contained.

A node must never die on a message and never lose one silently. Each input topic of a
node is an :class:`InputStream`; its :meth:`InputStream.handle` is the subscription
callback's whole body:

1. count the message (``<stream> received``);
2. check its stamp (nanosec < 1e9) and its size against :class:`InputLimits` *before*
   anything is allocated for it (a 12000x12000 PNG is refused from its header);
3. pass it through the stream's :class:`~seg_perception.core.stamps.StampGuard`
   (implausible stamps dropped, jumps confirmed and announced to the node);
4. run the node's processing on what was accepted, turning *any* exception into a
   dropped frame with a specific reason and sentence (:func:`describe_error`).

Processing code raises :class:`FrameDropError` for the drops it knows about; anything else that
escapes (a model failing at run time, a numpy error) is still counted and described.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from seg_perception.core.cloud import CloudLayoutError
from seg_perception.core.stamps import NS, StampGuard, describe_seconds
from seg_perception.ros.diagnostics import Diagnostics
from seg_perception.ros.errors import ConversionError


class FrameDropError(Exception):
    """This message cannot be used: ``reason`` is the short category, ``detail`` the sentence."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def describe_error(error: BaseException) -> tuple[str, str]:
    """(reason, sentence) for an exception raised while handling one message."""
    if isinstance(error, FrameDropError):
        return error.reason, error.detail
    if isinstance(error, MemoryError):
        return "out of memory", f"out of memory while processing it: {error}"
    if isinstance(error, ConversionError | CloudLayoutError):
        return "malformed", str(error)
    if isinstance(error, ValueError):  # the core's checks: calibration, label sets, fusion
        return "invalid input", str(error)
    text = str(error) or "(no message)"
    return "processing failure", f"{type(error).__name__} while processing it: {text}"


def stamp_ns(header: Any) -> int:
    """A header's stamp in integer nanoseconds."""
    return int(header.stamp.sec) * NS + int(header.stamp.nanosec)


def checked_stamp_ns(header: Any) -> int:
    """:func:`stamp_ns`, refusing a nanosecond field outside [0, 1e9)."""
    nanosec = int(header.stamp.nanosec)
    if not 0 <= nanosec < NS:
        raise FrameDropError(
            "malformed stamp",
            f"header stamp nanosec is {nanosec}; it must be below 1,000,000,000",
        )
    return stamp_ns(header)


@dataclass(frozen=True)
class InputLimits:
    """The largest messages a node accepts (ROS parameters ``limits.*``)."""

    max_image_pixels: int = 33_554_432
    max_cloud_points: int = 4_194_304
    max_message_bytes: int = 268_435_456

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> InputLimits:
        return cls(
            params["limits.max_image_pixels"],
            params["limits.max_cloud_points"],
            params["limits.max_message_bytes"],
        )

    def _check_bytes(self, what: str, data: Any) -> None:
        size = len(data)
        if size > self.max_message_bytes:
            raise FrameDropError(
                "too large",
                f"{what} holds {size} bytes, more than limits.max_message_bytes = "
                f"{self.max_message_bytes}",
            )

    def _check_pixels(self, what: str, width: int, height: int) -> None:
        if width * height > self.max_image_pixels:
            raise FrameDropError(
                "too large",
                f"{what} is {width}x{height} = {width * height} pixels, more than "
                f"limits.max_image_pixels = {self.max_image_pixels}",
            )

    def check_image(self, message: Any) -> None:
        """An Image: pixels and bytes."""
        self._check_pixels("image", int(message.width), int(message.height))
        self._check_bytes("image", message.data)

    def check_compressed(self, message: Any) -> None:
        """A CompressedImage: bytes, and the pixels its header announces (not decoded)."""
        self._check_bytes("compressed image", message.data)
        size = compressed_image_size(message.data)
        if size is not None:
            self._check_pixels("compressed image (from its header)", *size)
        elif any(codec in message.format.lower() for codec in ("png", "jpeg", "jpg")):
            raise FrameDropError(
                "malformed",
                f"compressed image data ({len(message.data)} bytes) is not the "
                f"{message.format!r} it claims to be: no PNG/JPEG header",
            )

    def check_cloud(self, message: Any) -> None:
        """A PointCloud2: points and bytes (its layout is checked by the conversion)."""
        points = int(message.width) * int(message.height)
        if points > self.max_cloud_points:
            raise FrameDropError(
                "too large",
                f"cloud has {message.width}x{message.height} = {points} points, more than "
                f"limits.max_cloud_points = {self.max_cloud_points}",
            )
        self._check_bytes("cloud", message.data)


def compressed_image_size(data: Any) -> tuple[int, int] | None:
    """(width, height) from a PNG/JPEG header without decoding it; None when unreadable.

    compressedDepth messages carry a 12-byte header before their PNG, so the PNG signature
    is looked for there too.
    """
    from PIL import Image, UnidentifiedImageError

    raw = bytes(data)
    for start in (0, 12):
        try:
            with Image.open(io.BytesIO(raw[start:])) as image:
                return int(image.width), int(image.height)
        except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
            continue
        except Image.DecompressionBombError as error:  # PIL's own limit, far above ours
            raise FrameDropError("too large", f"compressed image: {error}") from None
    return None


class InputStream:
    """One input topic of a node: accounting, limits, stamp guard and containment."""

    def __init__(
        self,
        name: str,
        diagnostics: Diagnostics,
        *,
        jump_threshold_s: float | None = 10.0,
        check: Callable[[Any], None] | None = None,
        on_jump: Callable[[InputStream, int], None] | None = None,
        watch: bool = True,
        header: Callable[[Any], Any] | None = None,
        on_drop: Callable[[Any, str], None] | None = None,
    ) -> None:
        self.name = name
        self.header = header or (lambda message: message.header)
        self.on_drop = on_drop
        self.diagnostics = diagnostics
        self.check = check
        self.on_jump = on_jump
        self.watch = watch
        self.guard = (
            StampGuard(name, int(jump_threshold_s * NS)) if jump_threshold_s is not None else None
        )

    def handle(self, message: Any, process: Callable[[Any], None]) -> None:
        """The subscription callback: admit ``message`` and process what is accepted."""
        try:
            accepted = self.admit(message)
        except Exception as error:  # a message must never end the node
            self.drop(error, message=message)
            return
        for item in accepted:
            try:
                if self.check is not None:
                    self.check(item)
                process(item)
            except Exception as error:  # same
                self.drop(error, message=item)

    def admit(self, message: Any) -> list[Any]:
        """Count and stamp-guard one message; the messages to check and process now.

        The stamp is judged before the content, so a message dropped for its content still
        counts as having arrived in the stream's timeline (it was not lost in a queue).
        """
        self.diagnostics.received(self.name, watch=self.watch)
        stamp = checked_stamp_ns(self.header(message))
        if self.guard is None:
            return [message]
        decision = self.guard.check(stamp, message)
        for reason, detail, item in decision.dropped:
            self.diagnostics.drop(self.name, reason, f"dropped {detail}")
            if self.on_drop is not None:
                self.on_drop(item, detail)
        self.diagnostics.lost(self.name, decision.lost)
        if decision.jump_ns is not None:
            direction = "back" if decision.jump_ns < 0 else "forward"
            self.diagnostics.event(
                f"{self.name}: time jumped {direction} by {describe_seconds(abs(decision.jump_ns))}"
                " (bag loop, simulator reset or a restarted sensor): its state was reset"
            )
            if self.on_jump is not None:
                self.on_jump(self, decision.jump_ns)
        return [item for _, item in decision.accepted]

    def drop(self, error: BaseException, what: str = "", message: Any = None) -> None:
        """Count one message of this stream as dropped because of ``error``."""
        reason, detail = describe_error(error)
        prefix = f"dropped {what or self.name}"
        self.diagnostics.drop(self.name, reason, f"{prefix}: {detail}")
        if self.on_drop is not None and message is not None:
            self.on_drop(message, detail)
