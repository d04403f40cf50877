"""The README's RLlib example runs as printed."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"


def test_the_readme_rllib_example_runs_and_prints_what_it_says() -> None:
    section = README.read_text().split("## RLlib: reinforcement learning on actors", 1)[1]
    code = re.findall(r"```python\n(.*?)```", section, re.S)[0]
    expected = re.findall(r"# (\d.*|True)$", code, re.M)
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=110,
        check=True,
        env={**os.environ, "PYTHONPATH": str(README.parent)},
    )
    assert done.stdout.splitlines()[: len(expected)] == expected
