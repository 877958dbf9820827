"""Classes of an open-vocabulary model (CLIPSeg) as text prompts, and the label set they make.

A prompt is the text the model is asked to find (``car``, ``a person walking``), optionally
followed by ``=#rrggbb``, its display color: ``road=#804080``. (``=`` rather than a space
before ``#``: in YAML `` #`` starts a comment.) Prompt ``i`` is class id ``i``. Two prompts
that the CLIP tokenizer cannot tell apart (it lower-cases and collapses whitespace) would be
two classes the model always scores alike, so they are refused, as is an empty prompt.

Pure Python: :class:`~seg_perception.engines.config.EngineConfig` checks prompts with it
when it is built, long before a model loads.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from seg_perception.core.labels import LabelSet

_COLOR = re.compile(r"^(?P<text>.*?)\s*=\s*#(?P<hex>[0-9a-fA-F]{6})\s*$")


class PromptError(ValueError):
    """Prompts that cannot be classes (empty, duplicate, a bad color)."""


def parse_prompt(entry: str) -> tuple[str, tuple[int, int, int] | None]:
    """``"road=#804080"`` -> ("road", (128, 64, 128)); ``"road"`` -> ("road", None)."""
    if not isinstance(entry, str):
        raise PromptError(f"a prompt must be text, got {entry!r}")
    match = _COLOR.match(entry)
    text, color = entry, None
    if match:
        text = match["text"]
        value = int(match["hex"], 16)
        color = (value >> 16, (value >> 8) & 255, value & 255)
    elif "=#" in entry.replace(" ", ""):
        raise PromptError(f"prompt {entry!r}: a color is written =#rrggbb (6 hex digits)")
    text = " ".join(text.split())
    if not text:
        raise PromptError(f"prompt {entry!r} has no text")
    return text, color


def check_prompts(prompts: Sequence[str]) -> list[tuple[str, tuple[int, int, int] | None]]:
    """Parsed prompts, or PromptError naming the first problem (empty, duplicate, color)."""
    parsed = [parse_prompt(entry) for entry in prompts]
    seen: dict[str, int] = {}
    for index, (text, _) in enumerate(parsed):
        key = text.lower()
        if key in seen:
            raise PromptError(
                f"prompt {index} {text!r} repeats prompt {seen[key]} "
                f"{parsed[seen[key]][0]!r}: each class needs its own text"
            )
        seen[key] = index
    return parsed


def prompt_label_set(prompts: Sequence[str], name: str = "prompts") -> LabelSet:
    """The label set of ``prompts``: id i = prompt i, its color or the default palette's."""
    parsed = check_prompts(prompts)
    if not parsed:
        raise PromptError(
            "no prompts: an open-vocabulary model needs its classes as text, e.g. "
            "prompts: [road, car=#0000ff, person]"
        )
    classes = []
    for index, (text, color) in enumerate(parsed):
        entry: dict = {"id": index, "name": text}
        if color is not None:
            entry["color"] = list(color)
        classes.append(entry)
    return LabelSet.from_dict({"name": name, "classes": classes})
