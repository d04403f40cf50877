"""Finding one's way in the schema: which model validates the raw data at a field path."""

from __future__ import annotations

import typing
from collections.abc import Iterable
from typing import Annotated, Any

from pydantic import BaseModel

from sim.scenario.models import Scenario

TAGS = ("kind", "dist")


def _union_member(annotation: Any, raw: Any) -> type[BaseModel] | None:
    """Pick the member of a discriminated union of models matching the raw data's tag."""
    for member in typing.get_args(annotation):
        if not (isinstance(member, type) and issubclass(member, BaseModel)):
            continue
        for tag in TAGS:
            field = member.model_fields.get(tag)
            if (
                field
                and isinstance(raw, dict)
                and raw.get(tag) in typing.get_args(field.annotation)
            ):
                return member
    return None


def _optional_model(annotation: Any) -> type[BaseModel] | None:
    """The model of an optional model field (``Model | None``), else None."""
    members = [
        m for m in typing.get_args(annotation) if isinstance(m, type) and issubclass(m, BaseModel)
    ]
    others = [m for m in typing.get_args(annotation) if m is not type(None) and m not in members]
    return members[0] if len(members) == 1 and not others else None


def model_at(path: Iterable[str], raw: Any) -> type[BaseModel] | None:
    """The model class that validates the mapping at `path`, or None (dict or scalar)."""
    model: type[BaseModel] | None = Scenario
    node = raw
    item: Any = None
    """The element annotation of a list field, awaiting the item's index."""
    for key in path:
        if item is not None:  # `key` indexes a list of models (faults.0, cluster.groups.1)
            ok = isinstance(node, list) and key.isdigit() and int(key) < len(node)
            node = node[int(key)] if ok else None
            if typing.get_origin(item) is Annotated:
                item = typing.get_args(item)[0]
            is_model = isinstance(item, type) and issubclass(item, BaseModel)
            model = item if is_model else _union_member(item, node)
            item = None
            continue
        if model is None or key not in model.model_fields:
            return None
        field = model.model_fields[key]
        annotation = field.annotation
        node = node.get(key) if isinstance(node, dict) else None
        if typing.get_origin(annotation) is list:
            item = typing.get_args(annotation)[0]
            model = None
            continue
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            model = annotation
        else:
            model = _union_member(annotation, node) or _optional_model(annotation)
            if model is None and isinstance(field.default, BaseModel):
                tags = [t for t in TAGS if t in type(field.default).model_fields]
                if node is None or (isinstance(node, dict) and not any(t in node for t in tags)):
                    model = type(field.default)
    return model if item is None else None
