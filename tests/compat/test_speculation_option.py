"""twinray's `_speculation` option: the names Ray would not accept are refused by both."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize("name", ["speculation", "speculative", "_speculative"])
def test_speculation_under_other_names_is_an_unknown_option(ray, name: str) -> None:
    def f():
        return 1

    with pytest.raises(ValueError, match=name):
        ray.remote(f).options(**{name: True})
    with pytest.raises(ValueError, match=name):
        ray.remote(**{name: True})(f)


def test_the_option_itself_is_twinrays_own(ray) -> None:
    def f():
        return 1

    if ray.__name__ == "ray":  # Ray has no speculative execution: it refuses the option
        with pytest.raises(ValueError, match="_speculation"):
            ray.remote(f).options(_speculation=True)
        return
    ray.remote(f).options(_speculation={"multiplier": 2, "budget": 2})
    with pytest.raises(ValueError, match="speculation multiplier: expected a number > 1"):
        ray.remote(f).options(_speculation={"multiplier": 0.5})
