"""Reading and writing rosbag2 files (sqlite3 and mcap) with the ``rosbags`` library.

``ros2 bag`` is not installable on our build machines and replay should not need a running
graph, so bags are read and written directly. Errors name the problem and what exists
(a missing or truncated bag, an unknown storage format, topics that are not in the bag).
The package's own message types (ClassMap, FusionStatus...) are registered from
``msg/*.msg`` so output bags carry their definitions for Foxglove and ``ros2 bag``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

#: Exit codes scripts can rely on (see the CLI): usage/input errors.
EXIT_BAD_INPUT = 2
#: The 2D model failed at run time on a frame of the bag (replay); nothing was written.
EXIT_MODEL_FAILURE = 3


class BagError(RuntimeError):
    """A bag that cannot be used as asked; the message says why and what exists."""


def _msg_dirs() -> list[Path]:
    """Where the package's .msg files are: the source tree, or an installed share/ dir."""
    dirs = [Path(__file__).resolve().parents[2] / "msg"]
    for prefix in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep):
        if prefix:
            dirs.append(Path(prefix) / "share" / "seg_perception" / "msg")
    return [d for d in dirs if d.is_dir()]


def typestore() -> Any:
    """ROS 2 Jazzy types plus seg_perception's own messages (when their .msg files exist)."""
    from rosbags.typesys import Stores, get_types_from_msg, get_typestore

    store = get_typestore(Stores.ROS2_JAZZY)
    for folder in _msg_dirs():
        types: dict[str, Any] = {}
        for path in sorted(folder.glob("*.msg")):
            types.update(get_types_from_msg(path.read_text(), f"seg_perception/msg/{path.stem}"))
        store.register(types)
        break
    return store


def has_own_messages(store: Any) -> bool:
    return "seg_perception/msg/FusionStatus" in store.types


@contextmanager
def open_bag(path: str | Path, store: Any | None = None) -> Iterator[Any]:
    """An open ``rosbags`` AnyReader, or BagError saying why the bag cannot be read."""
    from rosbags.highlevel import AnyReader, AnyReaderError

    path = Path(path)
    if not path.exists():
        raise BagError(f"bag not found: {path}")
    if path.is_dir() and not (path / "metadata.yaml").is_file():
        raise BagError(f"{path} is a folder without metadata.yaml: not a rosbag2 bag")
    reader = AnyReader([path], default_typestore=store or typestore())
    try:
        reader.open()
    except AnyReaderError as error:
        raise BagError(f"cannot open bag {path}: {error}") from None
    except Exception as error:
        raise BagError(f"cannot open bag {path} ({type(error).__name__}: {error})") from None
    try:
        yield reader
    finally:
        reader.close()


def topic_types(reader: Any) -> dict[str, str]:
    """Topic -> message type of every topic in an open bag."""
    return {name: info.msgtype for name, info in reader.topics.items()}


def _latched_qos() -> Any:
    """Transient-local QoS, so `ros2 bag play` republishes /tf_static and class maps latched."""
    from rosbags.interfaces import (
        Qos,
        QosDurability,
        QosHistory,
        QosLiveliness,
        QosReliability,
        QosTime,
    )

    forever = QosTime(sec=2147483647, nsec=4294967295)
    return Qos(
        history=QosHistory.KEEP_LAST, depth=1, reliability=QosReliability.RELIABLE,
        durability=QosDurability.TRANSIENT_LOCAL, deadline=forever, lifespan=forever,
        liveliness=QosLiveliness.AUTOMATIC, liveliness_lease_duration=forever,
        avoid_ros_namespace_conventions=False,
    )  # fmt: skip


class BagWriter:
    """A rosbag2 writer (mcap by default) that adds connections on first use."""

    def __init__(self, path: str | Path, store: Any, storage: str = "mcap") -> None:
        from rosbags.rosbag2 import StoragePlugin, Writer

        plugins = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}
        if storage not in plugins:
            raise BagError(f"unknown storage '{storage}': use mcap or sqlite3")
        self.path = Path(path)
        if self.path.exists():
            raise BagError(f"output bag {self.path} exists already: remove it or pick another")
        self.store = store
        self._writer = Writer(self.path, version=8, storage_plugin=plugins[storage])
        self._writer.open()
        self._connections: dict[str, Any] = {}

    def write(self, topic: str, message: Any, timestamp_ns: int, latched: bool = False) -> None:
        connection = self._connections.get(topic)
        if connection is None:
            qos = (_latched_qos(),) if latched else ()
            connection = self._writer.add_connection(
                topic, message.__msgtype__, typestore=self.store, offered_qos_profiles=qos
            )
            self._connections[topic] = connection
        data = self.store.serialize_cdr(message, message.__msgtype__)
        self._writer.write(connection, timestamp_ns, data)

    def set_custom_data(self, key: str, value: str) -> None:
        self._writer.set_custom_data(key, value)

    def close(self) -> None:
        self._writer.close()

    def __enter__(self) -> BagWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@contextmanager
def new_bag(path: str | Path, store: Any, storage: str = "mcap") -> Iterator[BagWriter]:
    """A BagWriter whose bag appears at ``path`` only once the ``with`` block completes.

    A half-written bag looks like a result (``regress`` would compare it) and blocks the
    rerun ("exists already"), so the bag is written inside a hidden folder beside ``path``
    (``.NAME.*.partial``: same file system, so the final rename is atomic; the storage file
    inside already has its final name) and that folder is removed on any exception, Ctrl-C
    included. Only a killed process (SIGKILL, power loss) can leave one behind; it never
    blocks a rerun and can be deleted.
    """
    path = Path(path)
    if path.exists():
        raise BagError(f"output bag {path} exists already: remove it or pick another")
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent))
    try:
        writer = BagWriter(staging / path.name, store, storage)
        try:
            yield writer
        except BaseException:
            with contextlib.suppress(Exception):  # the original error is the one to report
                writer.close()
            raise
        writer.close()
        if path.exists():  # created by someone else while we were writing
            raise BagError(f"output bag {path} exists already: remove it or pick another")
        (staging / path.name).rename(path)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
