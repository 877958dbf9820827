"""What a fleet run is given, checked before anything starts: the bags, the golden run and
the cluster address. Every mistake is one sentence (``FleetInputError``), never a hang."""

from __future__ import annotations

import glob
import os
import socket
from pathlib import Path

from seg_perception.bag.io import BagError

#: Files that are a bag on their own (rosbag2 storage files without their folder).
BAG_SUFFIXES = (".mcap", ".db3")
#: Seconds to wait for a cluster's address to answer before calling it unreachable.
CONNECT_TIMEOUT_S = 5.0


class FleetInputError(BagError):
    """Bad input to a fleet run (exit 2)."""


def is_bag(path: Path) -> bool:
    """A rosbag2 folder (with its metadata.yaml) or a single .mcap / .db3 file."""
    if path.is_dir():
        return (path / "metadata.yaml").is_file()
    return path.is_file() and path.suffix in BAG_SUFFIXES


def find_bags(patterns: list[str]) -> list[Path]:
    """The bags the patterns name (paths or globs), in sorted order, each once.

    Raises FleetInputError for a pattern that matches nothing, a match that is not a bag, or
    two bags with the same name (their outputs would collide).
    """
    bags: list[Path] = []
    for pattern in patterns:
        matches = sorted(glob.glob(os.path.expanduser(pattern)))
        if not matches:
            raise FleetInputError(f"'{pattern}' matches nothing")
        for match in matches:
            path = Path(match)
            if not is_bag(path):
                raise FleetInputError(
                    f"{path} is not a bag (a rosbag2 folder with metadata.yaml, or a "
                    f"{'/'.join(BAG_SUFFIXES)} file)"
                )
            if path.resolve() not in {b.resolve() for b in bags}:
                bags.append(path)
    names = [bag_name(b) for b in bags]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise FleetInputError(
            f"bags with the same name would share an output: {', '.join(repeated)}"
        )
    return bags


def bag_name(bag: Path) -> str:
    """The name a bag's output and golden output go by."""
    return bag.stem if bag.is_file() else bag.name


def check_golden(golden: Path, bags: list[Path]) -> None:
    """Every bag must have its output in the golden run (``<golden>/<name>``)."""
    if not golden.is_dir():
        raise FleetInputError(f"golden run {golden} is not a folder")
    missing = [bag_name(b) for b in bags if not (golden / bag_name(b)).exists()]
    if missing:
        more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        shown = ", ".join(missing[:5]) + more
        raise FleetInputError(
            f"the golden run {golden} has no output for {len(missing)} of {len(bags)} bag(s): "
            f"{shown}"
        )


def check_address(address: str) -> None:
    """Fail fast on a cluster address nothing answers at (Ray itself would retry for a long
    time). ``auto`` and ``local`` are Ray's own words and pass through."""
    if address in ("", "auto", "local"):
        return
    target = address.split("://", 1)[-1]
    host, _, port = target.rpartition(":")
    if not host or not port.isdigit():
        raise FleetInputError(f"cluster address '{address}' is not HOST:PORT (or ray://HOST:PORT)")
    try:
        with socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT_S):
            pass
    except OSError as error:
        raise FleetInputError(
            f"cluster address '{address}' is unreachable ({error}); start the cluster with "
            "'ray start --head' there, or leave --address out to run on this machine"
        ) from None
