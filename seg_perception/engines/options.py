"""Every engine option, from :class:`~seg_perception.engines.config.EngineConfig`'s fields.

The CLI flags (``--mean 0.5 0.5 0.5``), the ROS parameters (``engine.mean``) and, through
the nodes' parameter tables, the generated ``config/*.yaml`` are all made here from the
dataclass's fields, types and docstrings, so anything settable in Python is settable
everywhere and a new field cannot be forgotten in one of them. (A user's first model broke
exactly there: ``--mean`` was "unrecognized", ``engine.mean`` "unknown".)
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from dataclasses import dataclass
from typing import Any, Literal

from seg_perception.core.fields import field_docs
from seg_perception.engines.config import EngineConfig

#: Fields that are not options (free-form extras of Python callers).
NOT_OPTIONS = ("extra",)
#: CLI names that would clash with commands' own flags (``demo --seed`` is the scene's).
CLI_NAMES = {"seed": "model_seed"}
#: Ranges of the integer options (ROS parameter descriptors; EngineConfig checks them too).
RANGES = {"multiple_of": (0, 4096), "num_threads": (0, 256), "seed": (0, 2**31 - 1),
          "background_threshold": (0.0, 1.0), "panoptic_threshold": (0.0, 1.0)}  # fmt: skip


@dataclass(frozen=True)
class EngineOption:
    """One EngineConfig field as an option: its kind, default, help and allowed values."""

    name: str
    #: str | int | float | bool | choice | pair (h, w) | triple (3 floats) | ints (list of
    #: ints) | strs (list of strings)
    kind: str
    default: Any
    help: str
    choices: tuple[str, ...] = ()
    optional: bool = False

    @property
    def dest(self) -> str:
        """The argparse destination (the field name, unless it would clash)."""
        return CLI_NAMES.get(self.name, self.name)

    @property
    def flag(self) -> str:
        return "--" + self.dest.replace("_", "-")


def _kind(annotation: Any) -> tuple[str, tuple[str, ...], bool]:
    """(kind, choices, optional) of a field's type annotation."""
    args = typing.get_args(annotation)
    optional = type(None) in args
    if optional or isinstance(annotation, types.UnionType):
        annotation = next(a for a in args if a is not type(None))
        args = typing.get_args(annotation)
    if typing.get_origin(annotation) is Literal:
        return "choice", tuple(str(a) for a in args), optional
    if typing.get_origin(annotation) is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return ("strs" if args[0] is str else "ints"), (), optional
        if len(args) == 2:
            return "pair", (), optional
        return "triple", (), optional
    return annotation.__name__, (), optional


def engine_options() -> tuple[EngineOption, ...]:
    """The options, in EngineConfig's field order."""
    hints = typing.get_type_hints(EngineConfig, include_extras=False)
    docs = field_docs(EngineConfig)
    options = []
    for item in dataclasses.fields(EngineConfig):
        if item.name in NOT_OPTIONS:
            continue
        kind, choices, optional = _kind(hints[item.name])
        help_text = docs.get(item.name, item.name)
        options.append(EngineOption(item.name, kind, item.default, help_text, choices, optional))
    return tuple(options)


# --------------------------------------------------------------------------- CLI
def add_cli_options(parser: argparse.ArgumentParser, model_required: bool = False) -> None:
    """Add every engine option to ``parser`` (``--model``, ``--mean``, ``--spec``, ...)."""
    group = parser.add_argument_group("engine (unset contract options come from the model spec)")
    for option in engine_options():
        kwargs: dict[str, Any] = {"help": option.help, "dest": option.dest}
        if option.name == "model":
            kwargs["required"] = model_required
        if option.kind == "choice":
            kwargs["choices"] = option.choices
        elif option.kind == "pair":
            kwargs.update(type=int, nargs=2, metavar=("H", "W"))
        elif option.kind == "triple":
            kwargs.update(type=float, nargs=3, metavar=("C0", "C1", "C2"))
        elif option.kind == "ints":
            kwargs.update(type=int, nargs="+", metavar="N")
        elif option.kind == "strs":
            kwargs.update(nargs="+", metavar="TEXT")
        elif option.kind == "bool":
            kwargs["action"] = argparse.BooleanOptionalAction
        elif option.kind in ("int", "float"):
            kwargs["type"] = int if option.kind == "int" else float
        kwargs["default"] = None  # unset: EngineConfig's own default applies
        group.add_argument(option.flag, **kwargs)


def config_from_args(args: argparse.Namespace, **overrides: Any) -> EngineConfig:
    """The EngineConfig the parsed flags (plus ``overrides``) describe."""
    values = {}
    for option in engine_options():
        value = getattr(args, option.dest, None)
        if value is not None:
            values[option.name] = tuple(value) if isinstance(value, list) else value
    values.update({k: v for k, v in overrides.items() if v is not None})
    return EngineConfig(**values)


# --------------------------------------------------------------------------- ROS
ROS_TYPES = {
    "str": "string",
    "choice": "string",
    "int": "integer",
    "float": "double",
    "pair": "integer_array",
    "ints": "integer_array",
    "triple": "double_array",
    "strs": "string_array",
    "bool": "bool",
}


def ros_value(option: EngineOption) -> Any:
    """The ROS parameter default: None (declared typed, unset) where the field is unset."""
    default = option.default
    if default is None or (option.kind in ("ints", "strs") and not default):
        return None
    return list(default) if isinstance(default, tuple) else default


def config_from_params(values: dict[str, Any]) -> EngineConfig:
    """The EngineConfig of a node's ``engine.*`` parameter values (None: unset)."""
    config: dict[str, Any] = {}
    for option in engine_options():
        value = values.get(f"engine.{option.name}")
        if value is None:
            continue
        config[option.name] = _checked(option, value)
    return EngineConfig(**config)


def _checked(option: EngineOption, value: Any) -> Any:
    """A parameter value in the field's type, or ValueError naming the parameter."""
    name = f"engine.{option.name}"
    if option.kind == "strs":
        if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
            raise ValueError(f"parameter '{name}' needs a list of strings, got {value!r}")
        return tuple(value)
    if option.kind == "bool":
        if not isinstance(value, bool):
            raise ValueError(f"parameter '{name}' needs true or false, got {value!r}")
        return value
    numbers = {"pair": 2, "triple": 3, "ints": None}
    if option.kind in numbers:
        want = numbers[option.kind]
        integers = option.kind != "triple"
        ok = isinstance(value, list | tuple) and all(
            isinstance(v, int) if integers else isinstance(v, int | float) for v in value
        )
        if not ok or any(isinstance(v, bool) for v in value) or (want and len(value) != want):
            what = f"{want} " if want else "a list of "
            raise ValueError(
                f"parameter '{name}' needs {what}{'integers' if integers else 'numbers'}, "
                f"got {value!r}"
            )
        return tuple(int(v) if integers else float(v) for v in value)
    if option.kind == "float":
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"parameter '{name}' needs a number, got {value!r}")
        return float(value)
    if option.kind in ("str", "choice") and not isinstance(value, str):
        raise ValueError(f"parameter '{name}' needs a string, got {value!r}")
    return value


def ros_checked(option: EngineOption, value: Any) -> Any:
    """A value for the ROS parameter ``engine.<name>``: checked, tuples as lists."""
    checked = _checked(option, value)
    if option.choices and checked not in option.choices:
        raise ValueError(
            f"parameter 'engine.{option.name}' is {checked!r}; one of {', '.join(option.choices)}"
        )
    return list(checked) if isinstance(checked, tuple) else checked
