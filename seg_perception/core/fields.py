"""Attribute docstrings of dataclass fields: the one description every interface reuses.

A field documented once in its dataclass (a string right after the annotation) becomes the
ROS parameter description, the CLI help and the comment in the generated YAML, so the
three cannot drift apart.
"""

from __future__ import annotations

import ast
import inspect
import itertools
import textwrap


def field_docs(cls: type) -> dict[str, str]:
    """Attribute docstrings of a dataclass, by field name (whitespace collapsed)."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    body = tree.body[0].body  # type: ignore[attr-defined]
    docs = {}
    for node, following in itertools.pairwise(body):
        if (
            isinstance(node, ast.AnnAssign)
            and isinstance(node.target, ast.Name)
            and isinstance(following, ast.Expr)
            and isinstance(following.value, ast.Constant)
            and isinstance(following.value.value, str)
        ):
            docs[node.target.id] = " ".join(following.value.value.split())
    return docs
