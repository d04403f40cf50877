"""Entry point of `run-scenario`: the compiled simulator is enabled (if built) before anything loads."""

from __future__ import annotations


def main() -> int:
    """Enable a compiled build of the current source (`sim.fast`), then run `twin.cli.main`."""
    from sim import fast

    fast.enable()
    from twin.cli import main as cli_main

    return cli_main()
