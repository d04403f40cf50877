"""`--set PATH=VALUE` overrides: check a dotted path against the schema, set it in raw data."""

from __future__ import annotations

import typing
from collections.abc import Mapping
from typing import Any

import yaml
from pydantic import BaseModel

from sim.scenario.fields import TAGS, model_at
from sim.scenario.models import Scenario


def _check_override_path(dotted: str, raw: dict[str, Any]) -> str | None:
    """Return a problem text if `dotted` names no field of the schema, else None."""
    parts = dotted.split(".")
    if not all(parts):
        return f"--set {dotted}: expected a dotted field path like cluster.nodes"
    model: type[BaseModel] | None = Scenario
    for depth, key in enumerate(parts):
        if model is None:
            # inside a free-form mapping (custom_resources): any key is a valid path
            if depth > 0 and _is_mapping_field(parts[:depth], raw):
                return None
            return f"--set {dotted}: unknown field {'.'.join(parts[: depth + 1])!r}"
        if key not in model.model_fields:
            allowed = ", ".join(sorted(model.model_fields))
            prefix = ".".join(parts[: depth + 1])
            return f"--set {dotted}: unknown field {prefix!r}; expected one of: {allowed}"
        model = model_at(parts[: depth + 1], raw)
    return None


def _is_mapping_field(path: list[str], raw: Any) -> bool:
    """Whether `path` names a `dict[...]`-typed field (free-form keys below it)."""
    parent = model_at(path[:-1], raw)
    if parent is None or path[-1] not in parent.model_fields:
        return False
    return typing.get_origin(parent.model_fields[path[-1]].annotation) is dict


def _default_tags(path: list[str], raw: Any) -> dict[str, Any]:
    """A fresh mapping for `path`, holding the union tag of the field's default if any."""
    parent = model_at(path[:-1], raw)
    field = parent.model_fields.get(path[-1]) if parent is not None else None
    default = field.default if field is not None else None
    if not isinstance(default, BaseModel):
        return {}
    return {t: getattr(default, t) for t in TAGS if t in type(default).model_fields}


def apply_overrides(raw: dict[str, Any], overrides: Mapping[str, str]) -> list[str]:
    """Set dotted-path overrides (values parsed as YAML) into `raw`; return problem texts."""
    problems = []
    for dotted, text in overrides.items():
        if any(part.isdigit() for part in dotted.split(".")):
            problem = _set_in_list(raw, dotted, text)
            if problem is not None:
                problems.append(problem)
            continue
        problem = _check_override_path(dotted, raw)
        if problem is None:
            try:
                value = yaml.safe_load(text) if isinstance(text, str) else text
            except yaml.YAMLError as exc:
                problem = f"--set {dotted}: value is not valid YAML: {exc}".replace("\n", " ")
        if problem is not None:
            problems.append(problem)
            continue
        node = raw
        *parents, leaf = dotted.split(".")
        for depth, key in enumerate(parents):
            if not isinstance(node.get(key), dict):
                node[key] = _default_tags(parents[: depth + 1], raw)
            node = node[key]
        node[leaf] = value
    return problems


def _set_in_list(raw: dict[str, Any], dotted: str, text: str) -> str | None:
    """Set a path through list items (`faults.0.at_s`, `cluster.groups.1.count`).

    The list and the item must exist in the file; unknown fields below an item are
    reported by validation like any other.
    """
    *parents, leaf = dotted.split(".")
    node: Any = raw
    for depth, key in enumerate(parents):
        where = ".".join(parents[: depth + 1])
        if isinstance(node, list):
            if not key.isdigit() or int(key) >= len(node):
                return f"--set {dotted}: no item {key} in {'.'.join(parents[:depth])} (has {len(node)})"
            node = node[int(key)]
        elif isinstance(node, dict) and key in node:
            node = node[key]
        else:
            return f"--set {dotted}: {where!r} is not in the scenario file"
    try:
        value = yaml.safe_load(text) if isinstance(text, str) else text
    except yaml.YAMLError as exc:
        return f"--set {dotted}: value is not valid YAML: {exc}".replace("\n", " ")
    if isinstance(node, list):
        if not leaf.isdigit() or int(leaf) >= len(node):
            return f"--set {dotted}: no item {leaf} in {'.'.join(parents)} (has {len(node)})"
        node[int(leaf)] = value
    elif isinstance(node, dict):
        node[leaf] = value
    else:
        return f"--set {dotted}: {'.'.join(parents)!r} is not a mapping"
    return None
