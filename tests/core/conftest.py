"""Core tests run with the raylets' invariant checks on: after every delivery, and per move."""

from __future__ import annotations

from collections.abc import Iterator

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
    init = FakeHost.__post_init__
    if request.node.get_closest_marker("unchecked_raylets") is not None:

        def unchecked_init(self: FakeHost) -> None:
            self.check_raylets = False  # the owners, GCS and global scheduler stay checked
            init(self)

        monkeypatch.setattr(FakeHost, "__post_init__", unchecked_init)
        yield
        return

    def checked_init(self: FakeHost) -> None:
        self.config.check_transitions = True  # per move; `check()` runs after each delivery
        init(self)

    monkeypatch.setattr(FakeHost, "__post_init__", checked_init)
    yield
