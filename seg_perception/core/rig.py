"""The camera record: everything about one camera, declared once and read everywhere.

Per-camera settings used to live in three places with three rules (the fusion node's
parameters, the launch helpers, replay), and a camera's index in a labeled cloud meant
"the n-th camera that had data in this frame". A :class:`CameraRecord` is now the one
description of a camera; the nodes declare their ``camera.<name>.*`` parameters from its
fields (:func:`camera_fields`), replay reads records from a rig YAML or ``--camera``, and
the value of a point's ``camera`` field is the camera's index in the configured list
(:class:`Rig`), stable from frame to frame and the same live and in replay.

Autoware's fusion keeps a similar per-camera record (topics, offsets, a rectified switch).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import yaml

from seg_perception.core.fields import field_docs
from seg_perception.core.sync import CameraSync
from seg_perception.core.transforms import (
    check_rigid,
    invert_transform,
    transform_from_translation_quaternion,
)

TRANSPORTS = ("raw", "compressed")
PROJECTIONS = ("auto", "raw", "rectified")
MAX_CAMERAS = 8


class RigError(ValueError):
    """A camera record or rig that cannot work: the text names the camera and field."""


@dataclass(frozen=True)
class CameraRecord:
    """One camera of the rig."""

    name: str
    """Camera name (letters, digits, _): its topics and parameters are named after it."""
    image_topic: str = ""
    """Image topic (replay, launch; nodes use <name>/image and remapping)."""
    info_topic: str = ""
    """CameraInfo topic (replay, launch; nodes use <name>/camera_info)."""
    labels_topic: str = ""
    """Replay only: a topic of label images (mono8/mono16) fused as they are, instead of
    segmenting the images."""
    transport: Literal["raw", "compressed"] = "raw"
    """raw: sensor_msgs/Image; compressed: sensor_msgs/CompressedImage (jpeg/png), e.g.
    <topic>/compressed."""
    projection: Literal["auto", "raw", "rectified"] = "auto"
    """raw: the image is the lens's own (K + D); rectified: it is image_rect (P, no
    distortion); auto: rectified when D is all zero, else raw (logged)."""
    time_offset: float = 0.0
    """Seconds added to this camera's stamps to put them on the LiDAR's clock (a clock's
    bias): used for matching and for the time motion compensation moves the sweep to."""
    delay: float = 0.0
    """Seconds after the cloud's stamp this camera is expected to expose (its trigger in
    the sweep, e.g. 0-50 ms around a surround rig): matching looks for its stamps around
    cloud stamp + delay; its stamps stay the exposure times motion compensation uses."""
    tolerance: float = 0.05
    """Largest stamp difference (s) of a match; keep it under half the camera period."""
    extrinsics: tuple[float, ...] = (0.0,) * 7
    """The camera's pose in the LiDAR frame: [x, y, z, qx, qy, qz, qw] (the numbers
    static_transform_publisher takes with parent = LiDAR, child = the camera's optical
    frame); all zeros: from TF."""

    def __post_init__(self) -> None:
        # Messages name the field as the node parameter does: camera.<name>.<field>.
        where = f"camera.{self.name}"
        if not self.name or not self.name.replace("_", "").isalnum() or self.name[0].isdigit():
            raise RigError(f"camera name {self.name!r} must be letters, digits and _")
        if self.transport not in TRANSPORTS:
            raise RigError(f"{where}.transport is {self.transport!r}; one of raw, compressed")
        if self.projection not in PROJECTIONS:
            raise RigError(
                f"{where}.projection is {self.projection!r}; one of auto, raw, rectified"
            )
        if not 0.0 <= self.tolerance <= 10.0:
            raise RigError(f"{where}.tolerance must be in [0, 10] s, got {self.tolerance}")
        if not -10.0 <= self.time_offset <= 10.0:
            raise RigError(f"{where}.time_offset must be in [-10, 10] s, got {self.time_offset}")
        if not -1.0 <= self.delay <= 1.0:
            raise RigError(f"{where}.delay must be in [-1, 1] s, got {self.delay}")
        if len(self.extrinsics) != 7:
            raise RigError(
                f"{where}.extrinsics needs 7 numbers [x y z qx qy qz qw], got "
                f"{list(self.extrinsics)}"
            )
        if self.has_extrinsics:
            check_rigid(self.T_cam_from_lidar(), f"{where}.extrinsics")

    @property
    def has_extrinsics(self) -> bool:
        return any(float(v) for v in self.extrinsics[3:])

    def T_cam_from_lidar(self) -> np.ndarray | None:  # noqa: N802 - the project's name for it
        """LiDAR-frame points -> this camera's optical frame; None: take it from TF."""
        if not self.has_extrinsics:
            return None
        pose = [float(v) for v in self.extrinsics]
        return invert_transform(transform_from_translation_quaternion(pose[:3], pose[3:]))

    def sync(self) -> CameraSync:
        """Matching settings: stamps + time_offset - delay are compared with the cloud's."""
        offset = round((self.time_offset - self.delay) * 1e9)
        return CameraSync(self.name, offset, round(self.tolerance * 1e9))

    @property
    def data_topic(self) -> str:
        """What replay reads for this camera: its label images, else its images."""
        return self.labels_topic or self.image_topic


#: Record fields that are node parameters (``camera.<name>.<field>``); topics are not: a
#: node's topics are <name>/image and <name>/camera_info, remapped by launch.
NODE_FIELDS = ("transport", "projection", "time_offset", "delay", "tolerance", "extrinsics")


def camera_fields() -> list[tuple[str, Any, str, tuple[str, ...]]]:
    """(field, default, description, choices) of the record's node parameters."""
    docs = field_docs(CameraRecord)
    choices = {"transport": TRANSPORTS, "projection": PROJECTIONS}
    out = []
    for item in dataclasses.fields(CameraRecord):
        if item.name in NODE_FIELDS:
            default = list(item.default) if isinstance(item.default, tuple) else item.default
            out.append((item.name, default, docs[item.name], choices.get(item.name, ())))
    return out


@dataclass(frozen=True)
class Rig:
    """The configured cameras, in order: a point's ``camera`` field is the index here."""

    cameras: tuple[CameraRecord, ...]

    def __post_init__(self) -> None:
        names = [c.name for c in self.cameras]
        if len(set(names)) != len(names):
            raise RigError(f"camera names must be distinct, got {names}")
        if len(names) > MAX_CAMERAS:
            raise RigError(f"at most {MAX_CAMERAS} cameras, got {len(names)}")

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.cameras]

    def index(self, name: str) -> int:
        return self.names.index(name)

    @classmethod
    def from_dict(cls, data: Any, where: str = "rig") -> Rig:
        """``{cameras: [{name: front, image_topic: ..., ...}, ...]}``; errors name the key."""
        if not isinstance(data, dict) or not isinstance(data.get("cameras"), list):
            raise RigError(f"{where}: a rig is a mapping with a 'cameras' list")
        unknown = sorted(set(data) - {"cameras"})
        if unknown:
            raise RigError(f"{where}: unknown key(s) {', '.join(unknown)}; known: cameras")
        known = {f.name for f in dataclasses.fields(CameraRecord)}
        records = []
        for number, entry in enumerate(data["cameras"]):
            if not isinstance(entry, dict) or "name" not in entry:
                raise RigError(f"{where}: camera #{number} needs at least a name")
            extra = sorted(set(entry) - known)
            if extra:
                raise RigError(
                    f"{where}: camera '{entry['name']}': unknown key(s) {', '.join(extra)}; "
                    f"known: {', '.join(sorted(known))}"
                )
            values = dict(entry)
            if "extrinsics" in values:
                values["extrinsics"] = tuple(values["extrinsics"])
            try:
                records.append(CameraRecord(**values))
            except (TypeError, ValueError) as error:
                raise RigError(f"{where}: {error}") from None
        return cls(tuple(records))

    @classmethod
    def from_yaml(cls, path: str | Path) -> Rig:
        path = Path(path)
        if not path.is_file():
            raise RigError(f"rig file not found: {path}")
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as error:
            raise RigError(f"{path}: not valid YAML: {error}") from None
        return cls.from_dict(data, str(path))

    def to_dict(self) -> dict[str, Any]:
        return {
            "cameras": [
                {k: list(v) if isinstance(v, tuple) else v for k, v in asdict_record(c).items()}
                for c in self.cameras
            ]
        }


def asdict_record(record: CameraRecord) -> dict[str, Any]:
    """The fields of a record that differ from the defaults (and always the name)."""
    defaults = CameraRecord("x")
    return {
        f.name: getattr(record, f.name)
        for f in dataclasses.fields(CameraRecord)
        if f.name == "name" or getattr(record, f.name) != getattr(defaults, f.name)
    }
