"""The core's dataclasses whose ``__init__`` is written out by hand (for mypyc) keep the
generated one's contract: the fields in order, with their defaults, all of them set."""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import pkgutil
from typing import Any

import pytest

import runtime.core


def _written_out() -> list[type]:
    """Every dataclass of runtime.core whose __init__ is its own source, not generated."""
    found = []
    for info in pkgutil.iter_modules(runtime.core.__path__, "runtime.core."):
        module = importlib.import_module(info.name)
        for obj in vars(module).values():
            if not (isinstance(obj, type) and dataclasses.is_dataclass(obj)):
                continue
            code = getattr(obj.__dict__.get("__init__"), "__code__", None)
            if obj.__module__ == module.__name__ and code and code.co_filename != "<string>":
                found.append(obj)
    return found


WRITTEN = _written_out()


def test_the_hot_messages_are_among_them() -> None:
    names = {cls.__name__ for cls in WRITTEN}
    hot = {"Send", "Dispatch", "SubmitTask", "TaskDone", "ObjectReady", "ResultInfo"}
    assert hot | {"TaskSpec", "TaskFinished", "OwnedObject"} <= names


@pytest.mark.parametrize("cls", WRITTEN, ids=lambda cls: cls.__name__)
def test_written_init_matches_the_fields(cls: type) -> None:
    params = list(inspect.signature(cls.__init__).parameters.values())[1:]
    fields = [f for f in dataclasses.fields(cls) if f.init]
    assert [p.name for p in params] == [f.name for f in fields]
    required: dict[str, Any] = {}
    for p, f in zip(params, fields, strict=True):
        if f.default is not dataclasses.MISSING:
            assert p.default == f.default, f.name
        elif f.default_factory is not dataclasses.MISSING:
            assert p.default is not inspect.Parameter.empty, f.name
        else:
            assert p.default is inspect.Parameter.empty, f.name
            required[f.name] = object()
    obj = cls(**required)
    for f in fields:
        value = getattr(obj, f.name)  # AttributeError: a field the __init__ forgot
        if f.name in required:
            assert value is required[f.name], f.name
        elif f.default is not dataclasses.MISSING:
            assert value == f.default, f.name
        else:
            assert value == f.default_factory(), f.name  # type: ignore[misc]
            assert value is not getattr(cls(**required), f.name), f"{f.name} is shared"
