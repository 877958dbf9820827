"""Cameras and topics of the launch files: one camera record (``core/rig.py``) per camera.

A launch gets its cameras one of two ways: a ``rig`` file (the same YAML replay's ``--rig``
reads: per camera its topics, transport, projection, time offset, delay, tolerance and
extrinsics), or ``cameras`` with the topic patterns (``/{name}/image_raw``...). Either way
the result is a list of :class:`CameraRecord` s, and the nodes get their topics (remapped)
and ``camera.<name>.*`` parameters from those records only, so a camera's settings live in
one place whatever starts it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from seg_perception.core.rig import NODE_FIELDS, CameraRecord, Rig, RigError

MAX_CAMERAS = 8
#: The value that switches an optional argument off (``ros2 launch`` cannot pass ``""``).
NONE = "none"
_TOKEN = r"[A-Za-z_][A-Za-z0-9_]*"
_TOKEN_RE = re.compile(rf"^{_TOKEN}$")
_NAME_RE = re.compile(rf"^/?{_TOKEN}(/{_TOKEN})*$")  # a topic name or namespace, no "~"
#: Defaults of the camera arguments (a rig file replaces them; changing them too is an error).
CAMERA_DEFAULTS = {
    "cameras": "front",
    "image_topic_pattern": "/{name}/image_raw",
    "camera_info_topic_pattern": "/{name}/camera_info",
}


class LaunchArgumentError(ValueError):
    """A launch argument that cannot work; the message says which and why."""


def given(text: str | None) -> str:
    """An optional argument's value, or ``""`` when it is ``none`` (any case) or empty."""
    value = (text or "").strip()
    return "" if value.lower() == NONE else value


def parse_cameras(text: str) -> list[str]:
    """``"front, left"`` -> ``["front", "left"]``: 1-8 distinct ROS name tokens."""
    names = [part.strip() for part in text.split(",") if part.strip()]
    if not 1 <= len(names) <= MAX_CAMERAS:
        raise LaunchArgumentError(
            f"launch argument 'cameras' needs 1-{MAX_CAMERAS} comma-separated names, got '{text}'"
        )
    for name in names:
        if not _TOKEN_RE.match(name):
            raise LaunchArgumentError(
                f"camera name '{name}' is not a ROS name token (letters, digits and _, "
                "not starting with a digit)"
            )
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise LaunchArgumentError(f"camera names must be distinct: {', '.join(duplicates)} repeat")
    return names


def check_topic(topic: str, argument: str, absolute: bool = True) -> str:
    topic = topic.strip()
    if not _NAME_RE.match(topic):
        raise LaunchArgumentError(
            f"launch argument '{argument}' gives '{topic}', not a valid ROS topic name"
        )
    if absolute and not topic.startswith("/"):
        raise LaunchArgumentError(
            f"launch argument '{argument}' must give an absolute topic (starting with /), got "
            f"'{topic}': relative names would resolve differently in each node's namespace"
        )
    return topic


def topic_for(pattern: str, camera: str, argument: str, absolute: bool = True) -> str:
    """The topic of ``camera`` from a pattern such as ``/{name}/image_raw``."""
    topic = pattern.replace("{name}", camera)
    if "{" in topic or "}" in topic:
        raise LaunchArgumentError(
            f"launch argument '{argument}' ('{pattern}') may only use the placeholder {{name}}"
        )
    return check_topic(topic, argument, absolute)


def camera_topics(
    pattern: str, cameras: list[str], argument: str, absolute: bool = True
) -> dict[str, str]:
    """Camera name -> topic; distinct cameras must get distinct topics."""
    topics = {name: topic_for(pattern, name, argument, absolute) for name in cameras}
    if len(cameras) > 1 and len(set(topics.values())) < len(cameras):
        raise LaunchArgumentError(
            f"launch argument '{argument}' ('{pattern}') gives every camera the same topic: "
            "put {name} in it"
        )
    return topics


def launch_cameras(values: Mapping[str, str], images: bool, infos: bool) -> list[CameraRecord]:
    """The cameras of a launch: from the ``rig`` file when given, else from ``cameras`` and
    the topic patterns. ``images`` / ``infos``: the nodes need those topics (a rig camera
    without one takes the pattern's). Raises LaunchArgumentError."""
    rig_file = given(values.get("rig"))
    if not rig_file:
        names = parse_cameras(values["cameras"])
        image = (
            camera_topics(values["image_topic_pattern"], names, "image_topic_pattern")
            if images
            else {}
        )
        info = camera_topics(
            values["camera_info_topic_pattern"], names, "camera_info_topic_pattern"
        ) if infos else {}  # fmt: skip
        return [CameraRecord(n, image.get(n, ""), info.get(n, "")) for n in names]
    clashing = [
        name for name, default in CAMERA_DEFAULTS.items()
        if name in values and values[name].strip() != default
    ]  # fmt: skip
    if clashing:
        raise LaunchArgumentError(
            f"launch arguments rig and {', '.join(clashing)} both set the cameras: give them "
            "in the rig file only"
        )
    try:
        rig = Rig.from_yaml(rig_file)
    except RigError as error:
        raise LaunchArgumentError(f"launch argument 'rig': {error}") from None
    if not rig.cameras:
        raise LaunchArgumentError(f"launch argument 'rig': {rig_file} lists no camera")
    records = []
    for record in rig.cameras:
        image = record.image_topic or (
            topic_for(values["image_topic_pattern"], record.name, "image_topic_pattern")
            if images else ""
        )  # fmt: skip
        info = record.info_topic or (
            topic_for(values["camera_info_topic_pattern"], record.name, "camera_info_topic_pattern")
            if infos else ""
        )  # fmt: skip
        where = f"rig file {rig_file}, camera '{record.name}'"
        if image:
            check_topic(image, f"{where}: image_topic")
        if info:
            check_topic(info, f"{where}: info_topic")
        records.append(_with_topics(record, image, info))
    return records


def _with_topics(record: CameraRecord, image: str, info: str) -> CameraRecord:
    from dataclasses import replace

    return replace(record, image_topic=image, info_topic=info)


def image_remappings(record: CameraRecord, prefix: str = "") -> list[tuple[str, str]]:
    """A node's ``<prefix>image`` and ``<prefix>image/compressed`` onto the record's topic.

    A compressed camera's topic is the CompressedImage one (``.../compressed``, as
    image_transport names it); a raw camera's compressed twin is ``<topic>/compressed``.
    """
    topic = record.image_topic
    if record.transport == "compressed":
        base = topic.removesuffix("/compressed")
        return [(f"{prefix}image", base), (f"{prefix}image/compressed", topic)]
    return [(f"{prefix}image", topic), (f"{prefix}image/compressed", f"{topic}/compressed")]


def record_overrides(records: list[CameraRecord]) -> dict[str, Any]:
    """``camera.<name>.<field>`` parameters of every record (what the rig file says, its
    defaults where it is silent): a rig file is the cameras' one declaration."""
    return {
        f"camera.{record.name}.{name}": (
            list(getattr(record, name)) if name == "extrinsics" else getattr(record, name)
        )
        for record in records
        for name in NODE_FIELDS
    }
