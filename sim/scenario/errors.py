"""ScenarioError, and pydantic's errors rewritten as `file: field: expected ..., got ...` lines."""

from __future__ import annotations

import typing
from collections.abc import Callable, Mapping
from typing import Any

from sim.scenario.fields import TAGS, model_at


class ScenarioError(ValueError):
    """A scenario file could not be read or is invalid; one message line per problem."""

    def __init__(self, problems: list[str]) -> None:
        """Keep the individual problem lines and join them into the message."""
        self.problems = problems
        super().__init__("\n".join(problems))


def render_value(value: Any) -> str:
    """Render a bound or an offending value compactly."""
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, str):
        return repr(value)
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


_BOUNDS: dict[str, tuple[str, str]] = {
    "greater_than": ("gt", ">"),
    "greater_than_equal": ("ge", ">="),
    "less_than": ("lt", "<"),
    "less_than_equal": ("le", "<="),
}

_EXPECTATIONS: dict[str, Callable[[dict[str, Any]], str]] = {
    "int_type": lambda c: "expected an integer",
    "int_parsing": lambda c: "expected an integer",
    "int_from_float": lambda c: "expected an integer",
    "float_type": lambda c: "expected a number",
    "float_parsing": lambda c: "expected a number",
    "finite_number": lambda c: "expected a finite number",
    "string_type": lambda c: "expected a string",
    "bool_type": lambda c: "expected true or false",
    "dict_type": lambda c: "expected a mapping",
    "model_type": lambda c: "expected a mapping",
    "model_attributes_type": lambda c: "expected a mapping",
    "literal_error": lambda c: f"expected one of {c['expected']}",
    "string_pattern_mismatch": lambda c: f"expected a string matching {c['pattern']}",
    "unknown_policy": lambda c: f"expected one of {c['expected']}",
    "union_tag_invalid": lambda c: f"expected one of {c['expected_tags']}",
}


def _child(node: Any, key: Any) -> tuple[bool, Any]:
    """Step into a raw YAML container; (found, child)."""
    if isinstance(node, dict) and key in node:
        return True, node[key]
    if isinstance(node, list) and isinstance(key, int) and 0 <= key < len(node):
        return True, node[key]
    return False, None


def _user_path(
    loc: tuple[Any, ...], raw: Any, leaf_may_be_absent: bool
) -> tuple[list[str], Any, bool]:
    """Map a pydantic error location onto the user's field path in the raw data.

    Union tags that pydantic inserts into locations (e.g. `independent`) are not keys of
    the raw data and are dropped; when the raw data holds a scalar where pydantic went on
    (a bare number as a distribution), the path stops there. Returns (path, raw value at
    path, whether the value exists).
    """
    path: list[str] = []
    node, found = raw, True
    for i, key in enumerate(loc):
        if isinstance(node, dict) and i < len(loc) - 1 and any(node.get(t) == key for t in TAGS):
            continue  # a union tag pydantic put in the location (it may equal a field name)
        hit, child = _child(node, key)
        if hit:
            path.append(str(key))
            node = child
        elif leaf_may_be_absent and i == len(loc) - 1:
            path.append(str(key))
            found = False
        elif not isinstance(node, dict | list):
            break
    return path, node, found


def _allowed_fields(loc_path: list[str], raw: Any) -> list[str]:
    """Names of the fields allowed at the model holding the last element of `loc_path`."""
    model = model_at(loc_path[:-1], raw)
    return sorted(model.model_fields) if model is not None else []


def describe(error: Mapping[str, Any], raw: Any) -> str:
    """One `field.path: expected ..., got ...` line for a pydantic error."""
    kind = error["type"]
    ctx = error.get("ctx") or {}
    path, value, found = _user_path(tuple(error["loc"]), raw, kind == "missing")
    if kind == "extra_forbidden":
        allowed = _allowed_fields(path, raw)
        text = f"unknown field; expected one of: {', '.join(allowed)}"
        return f"{'.'.join(path)}: {text}"
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        path.append(str(ctx.get("discriminator", "")).strip("'"))
        if kind == "union_tag_not_found":
            member_names = _tags_at(path, raw)
            return f"{'.'.join(path)}: missing; expected one of {member_names}"
        return f"{'.'.join(path)}: expected one of {ctx['expected_tags']}, got {render_value(ctx['tag'])}"
    if kind == "missing":
        return f"{'.'.join(path) or '<top>'}: missing required field"
    if kind == "value_error":
        return f"{'.'.join(path) or '<top>'}: {ctx.get('error', error['msg'])}"
    if kind in _BOUNDS:
        bound = ctx[_BOUNDS[kind][0]]
        noun = "an integer" if isinstance(bound, int) else "a number"
        text = f"expected {noun} {_BOUNDS[kind][1]} {render_value(bound)}"
    else:
        render = _EXPECTATIONS.get(kind)
        text = render(ctx) if render else f"expected valid input ({error['msg']})"
    if found:
        text += f", got {render_value(value)}"
    return f"{'.'.join(path) or '<top>'}: {text}"


def _tags_at(path: list[str], raw: Any) -> str:
    """Allowed tags of the union field whose tag is missing at `path` (ends with the tag)."""
    parent = model_at(path[:-2], raw)
    if parent is None or path[-2] not in parent.model_fields:
        return "?"
    tags: list[str] = []
    for member in typing.get_args(parent.model_fields[path[-2]].annotation):
        field = getattr(member, "model_fields", {}).get(path[-1])
        if field is not None:
            tags.extend(repr(t) for t in typing.get_args(field.annotation))
    return ", ".join(tags)
