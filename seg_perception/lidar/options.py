"""Every ground and clustering option, from :class:`GroundParams` / :class:`ClusterParams`.

The CLI flags (``--sensor-height 1.9``, ``--cluster-tolerance 0.4``, ``--no-clustering``)
and the nodes' ROS parameters (``ground.sensor_height``, ``cluster.tolerance``,
``cluster.enabled``; :mod:`seg_perception.ros.node_params` turns them into declared
parameters, :mod:`seg_perception.ros.param_files` into ``config/*.yaml``) are all made here
from the dataclasses' fields, types, defaults and docstrings, so a new field is settable
everywhere at once and ``segment-cloud``, ``eval-ground``, ``eval points``, replay and the
nodes take the same settings under the same names. No ROS import: the CLI runs without it.
"""

from __future__ import annotations

import argparse
import dataclasses
import typing
from dataclasses import dataclass
from typing import Any

from seg_perception.core.fields import field_docs
from seg_perception.lidar.clustering import ClusterParams
from seg_perception.lidar.ground import GroundParams

#: The option sections: ROS parameter prefix -> the dataclass it fills.
SECTIONS: dict[str, type] = {"ground": GroundParams, "cluster": ClusterParams}
#: CLI names that differ from the field name: ``--tolerance`` would say nothing (and
#: replay's ``--tolerance`` is the camera match window); ``--min-range``/``--max-range``
#: would read as fusion's range limits.
CLI_NAMES = {
    ("cluster", "tolerance"): "cluster_tolerance",
    ("ground", "min_range"): "ground_min_range",
    ("ground", "max_range"): "ground_max_range",
}
#: The ROS switch of clustering; on the CLI it is ``--no-clustering``.
CLUSTERING_PARAM = "cluster.enabled"
CLUSTERING_HELP = "Cluster obstacle points."
#: A field that may be None (no limit) is 0 where None cannot be written (ROS, YAML).
NO_LIMIT = 0


@dataclass(frozen=True)
class SegmenterOption:
    """One GroundParams / ClusterParams field as an option."""

    section: str
    name: str
    #: "float" or "int"
    kind: str
    #: the dataclass default (None: no limit)
    default: Any
    help: str
    #: None allowed (written as 0 in ROS parameters and on the CLI)
    optional: bool = False

    @property
    def param(self) -> str:
        """The ROS parameter name, ``<section>.<field>``."""
        return f"{self.section}.{self.name}"

    @property
    def dest(self) -> str:
        """The argparse destination (never clashes with another command's flags)."""
        return CLI_NAMES.get((self.section, self.name), self.name)

    @property
    def flag(self) -> str:
        return "--" + self.dest.replace("_", "-")

    @property
    def ros_default(self) -> Any:
        """The ROS parameter default (ROS has no None: :data:`NO_LIMIT`)."""
        return NO_LIMIT if self.default is None else self.default


def _kind(annotation: Any) -> tuple[str, bool]:
    args = typing.get_args(annotation)
    optional = type(None) in args
    if optional:
        annotation = next(a for a in args if a is not type(None))
    if annotation not in (int, float):
        raise TypeError(f"segmenter options are int or float fields, not {annotation!r}")
    return annotation.__name__, optional


def segmenter_options(section: str | None = None) -> tuple[SegmenterOption, ...]:
    """The options of ``section`` ("ground" or "cluster"; None: both), in field order."""
    options = []
    for prefix, cls in SECTIONS.items():
        if section not in (None, prefix):
            continue
        hints = typing.get_type_hints(cls)
        docs = field_docs(cls)
        for item in dataclasses.fields(cls):
            kind, optional = _kind(hints[item.name])
            help_text = docs.get(item.name, item.name)
            options.append(
                SegmenterOption(prefix, item.name, kind, item.default, help_text, optional)
            )
    if section is not None and not options:
        raise ValueError(f"no segmenter option section {section!r}: use {', '.join(SECTIONS)}")
    return tuple(options)


def _values(options: tuple[SegmenterOption, ...], get: Any) -> dict[str, Any]:
    """Field values of the options that are set (``get(option)`` is not None)."""
    values = {}
    for option in options:
        value = get(option)
        if value is None:
            continue
        if option.optional and value == NO_LIMIT:
            value = None
        values[option.name] = value
    return values


# --------------------------------------------------------------------------- CLI
def add_ground_options(parser: argparse.ArgumentParser) -> None:
    """Add a flag for every GroundParams field (``--sensor-height``, ``--cell-size``, ...)."""
    group = parser.add_argument_group("ground segmentation (unset: the GroundParams default)")
    _add(group, segmenter_options("ground"))


def add_cluster_options(parser: argparse.ArgumentParser) -> None:
    """Add ``--no-clustering`` and a flag for every ClusterParams field."""
    group = parser.add_argument_group("obstacle clustering (unset: the ClusterParams default)")
    group.add_argument(
        "--no-clustering",
        "--no-clusters",
        dest="no_clustering",
        action="store_true",
        help="skip clustering (ROS: cluster.enabled false)",
    )
    _add(group, segmenter_options("cluster"))


def add_segmenter_options(parser: argparse.ArgumentParser) -> None:
    """Add every ground and clustering option (the flags of ``segment-cloud``)."""
    add_ground_options(parser)
    add_cluster_options(parser)


def _add(group: Any, options: tuple[SegmenterOption, ...]) -> None:
    for option in options:
        shown = "none" if option.default is None else f"{option.default:g}"
        limit = f"; {NO_LIMIT}: no limit" if option.optional else ""
        group.add_argument(
            option.flag,
            dest=option.dest,
            type=int if option.kind == "int" else float,
            default=None,  # unset: the dataclass default applies
            metavar="N" if option.kind == "int" else "X",
            help=f"{option.help} (default {shown}{limit})".replace("%", "%%"),
        )


def ground_params_from_args(args: argparse.Namespace) -> GroundParams:
    """The GroundParams the parsed flags describe (ValueError on a bad value)."""
    options = segmenter_options("ground")
    return GroundParams(**_values(options, lambda o: getattr(args, o.dest, None)))


def cluster_params_from_args(args: argparse.Namespace) -> ClusterParams | None:
    """The ClusterParams the parsed flags describe; None with ``--no-clustering``."""
    if getattr(args, "no_clustering", False):
        return None
    options = segmenter_options("cluster")
    return ClusterParams(**_values(options, lambda o: getattr(args, o.dest, None)))


def ground_options_given(args: argparse.Namespace) -> list[str]:
    """The ground flags set on the command line (for commands that cannot use them)."""
    options = segmenter_options("ground")
    return [o.flag for o in options if getattr(args, o.dest, None) is not None]


def segmenter_from_args(args: argparse.Namespace):
    """The :class:`GeometricCloudSegmenter` of :func:`add_segmenter_options`' flags."""
    from seg_perception.lidar.segmenter import GeometricCloudSegmenter

    return GeometricCloudSegmenter(ground_params_from_args(args), cluster_params_from_args(args))


# --------------------------------------------------------------------------- ROS
def segmenter_from_params(values: dict[str, Any]):
    """The :class:`GeometricCloudSegmenter` of a node's ``ground.*`` / ``cluster.*``
    parameter values (missing ones take the dataclass default; 0 = no limit)."""
    from seg_perception.lidar.segmenter import GeometricCloudSegmenter

    ground = GroundParams(**_values(segmenter_options("ground"), lambda o: values.get(o.param)))
    clustering = None
    if values.get(CLUSTERING_PARAM, True):
        options = segmenter_options("cluster")
        clustering = ClusterParams(**_values(options, lambda o: values.get(o.param)))
    return GeometricCloudSegmenter(ground, clustering)
