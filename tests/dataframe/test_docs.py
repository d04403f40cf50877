"""The README's dataframe example prints what it says; `import runtime` does not load pandas."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"


def test_the_readme_dataframe_example_runs_and_prints_what_it_says() -> None:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    code = next(b for b in blocks if "import runtime.dataframe as pd" in b)
    # its comments say what it prints; a "# twinray-only:" tag (tests/compat/examples.py) is
    # not one of them
    expected = [
        line for line in re.findall(r"# (\S.*)$", code, re.M) if not line.startswith("twinray-only")
    ]
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert done.stdout.splitlines() == expected


def test_importing_runtime_does_not_import_pandas() -> None:
    code = "import sys, runtime; assert 'pandas' not in sys.modules and 'runtime.dataframe' not in sys.modules; print('ok')"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "ok", out.stderr
