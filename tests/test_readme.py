"""The README's real-mode example runs as printed (docs a newcomer can follow)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_the_readme_example_runs_and_prints_what_it_says() -> None:
    code = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)[0]
    expected = re.findall(r"# (\[.*?\])", code)
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.split("\n")[: len(expected)] == expected


def test_the_readme_first_screen_has_the_two_commands() -> None:
    first_screen = README.read_text().splitlines()[:25]
    assert any("run-scenario scenarios/millions_tasks.yaml" in line for line in first_screen)
    assert any("python3 -m pytest" in line for line in first_screen)
    ci = (README.parent / ".ci" / "run").read_text()
    assert 'python3 -m pip install -e ".[test]" && python3 -m pytest' in ci
