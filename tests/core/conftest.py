"""Core tests run with the raylets' invariant checks on: after every delivery, and per move."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.core.fake_host import FakeHost


def pytest_configure(config: pytest.Config) -> None:
    """Register the opt-out marker."""
    config.addinivalue_line(
        "markers", "unchecked_raylets: a test that forges messages no raylet could see"
    )


@pytest.fixture(autouse=True)
def checked_raylets(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[None]:
    """Every FakeHost checks its raylets' lifecycle moves and invariants as it runs."""
    if request.node.get_closest_marker("unchecked_raylets") is not None:
        yield
        return
    effect = FakeHost._effect
    init = FakeHost.__post_init__

    def checked_effect(self: FakeHost, out: list[Any]) -> None:
        effect(self, out)
        for raylet in self.raylets:
            if raylet.node not in self.dead:
                raylet.check()

    def checked_init(self: FakeHost) -> None:
        self.config.check_transitions = True
        init(self)

    monkeypatch.setattr(FakeHost, "_effect", checked_effect)
    monkeypatch.setattr(FakeHost, "__post_init__", checked_init)
    yield
