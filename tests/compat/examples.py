"""The README's and the notebooks' real-mode examples, with their imports rewritten for Ray.

An example is a README ```python block or a notebook code cell. One that uses something
Ray does not have says so with a comment line `# twinray-only: <reason>`; every other
example must run unchanged on Ray once its imports are rewritten by `MAPPING` (twinray's
module -> Ray's), the only change allowed. `to_ray` does the rewrite and refuses a
twinray import the table does not map, so an untagged example that needs twinray-only
code is caught without running anything.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
NOTEBOOKS = ROOT / "notebooks"

MAPPING: dict[str, str] = {
    "runtime": "ray",
    "runtime.cluster_utils": "ray.cluster_utils",
    "runtime.exceptions": "ray.exceptions",
    "runtime.rllib": "ray.rllib",
    "runtime.runtime_env": "ray.runtime_env",
    "runtime.serve": "ray.serve",
    "runtime.tune": "ray.tune",
    "runtime.util": "ray.util",
}
"""twinray's packages and Ray's for them; a submodule maps with its package
(`runtime.util.queue` -> `ray.util.queue`). Not here, so twinray-only: `runtime.dataframe`
(pandas on partitions; on Ray that is Modin, another library), `runtime.dkeras` (dKeras's
API; the dkeras package is not Ray's), `runtime.examples` (twinray's example programs),
`runtime.net`, `runtime.real`, `runtime.core`, and the simulator (`sim`, `twin`)."""

TWINRAY_PACKAGES = ("runtime", "sim", "twin")
"""Top-level packages of this repository: an import of one must be mapped or tagged."""

TAG = re.compile(r"^\s*# twinray-only: (?P<reason>.+?)\s*$", re.M)
"""The comment line that marks an example as not carrying over to Ray, and why."""

NOTEBOOK_TAG = re.compile(r"^\s*# twinray-only notebook: (?P<reason>.+?)\s*$", re.M)
"""The same in a notebook cell, for every cell of that notebook."""


class UnmappedImportError(ValueError):
    """An untagged example imports twinray code that has no Ray counterpart in MAPPING."""


@dataclass(frozen=True)
class Example:
    """One README block or notebook code cell: where it is, its code, its tag's reason."""

    where: str  # "README.md block 3 (line 126)" or "notebooks/06_tune_search.ipynb cell 8"
    code: str
    section: str = ""  # the README heading the block is under
    notebook_reason: str | None = None  # its notebook's `# twinray-only notebook:` reason

    @property
    def twinray_only(self) -> str | None:
        """The `# twinray-only:` reason, or None when the example must run on Ray."""
        found = TAG.search(self.code)
        return found.group("reason") if found else self.notebook_reason


def readme_blocks(text: str) -> list[tuple[int, str, str]]:
    """The README's ```python blocks as (first line number, heading above, code), in order."""
    blocks = []
    for found in re.finditer(r"^```python\n(.*?)^```", text, re.S | re.M):
        headings = re.findall(r"^#+ (.+)$", text[: found.start()], re.M)
        line = text.count("\n", 0, found.start()) + 2
        blocks.append((line, headings[-1] if headings else "", found.group(1)))
    return blocks


def readme_examples() -> list[Example]:
    """Every README python block that uses the real-mode API (imports `runtime`)."""
    return [
        Example(f"README.md block {i} (line {line})", code, section=heading)
        for i, (line, heading, code) in enumerate(readme_blocks(README.read_text()), start=1)
        if "runtime" in _top_packages(code)
    ]


def notebook_paths() -> list[Path]:
    """The notebooks that use the real-mode API: some cell imports `runtime`."""
    return [p for p in sorted(NOTEBOOKS.glob("*.ipynb")) if notebook_uses_runtime(p)]


def notebook_cells(path: Path) -> list[Example]:
    """The code cells of one notebook, in order (markdown left out)."""
    import nbformat

    nb = nbformat.read(path, as_version=4)
    code = [(i, cell.source) for i, cell in enumerate(nb.cells) if cell.cell_type == "code"]
    tags = [m.group("reason") for _, src in code if (m := NOTEBOOK_TAG.search(src))]
    reason = tags[0] if tags else None
    return [Example(f"notebooks/{path.name} cell {i}", src, "", reason) for i, src in code]


def notebook_uses_runtime(path: Path) -> bool:
    """Whether any code cell of the notebook imports twinray's real-mode API."""
    return any("runtime" in _top_packages(cell.code) for cell in notebook_cells(path))


def twinray_only_examples() -> list[Example]:
    """Every tagged README block and notebook cell, README first, in order."""
    examples = readme_examples() + [c for p in notebook_paths() for c in notebook_cells(p)]
    return [e for e in examples if e.twinray_only]


def parse(code: str) -> ast.Module:
    """The code's syntax tree; a notebook's top-level `await` is allowed."""
    flags = ast.PyCF_ONLY_AST | ast.PyCF_ALLOW_TOP_LEVEL_AWAIT
    tree = compile(code, "<example>", "exec", flags=flags, dont_inherit=True)
    assert isinstance(tree, ast.Module)
    return tree


def _imports(code: str) -> list[ast.Import | ast.ImportFrom]:
    return [n for n in ast.walk(parse(code)) if isinstance(n, ast.Import | ast.ImportFrom)]


def _top_packages(code: str) -> set[str]:
    names: set[str] = set()
    for node in _imports(code):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif node.module and not node.level:
            names.add(node.module.split(".")[0])
    return names


def ray_module(name: str) -> str | None:
    """Ray's module for twinray's `name` (longest mapped prefix), or None when unmapped.

    `runtime` maps only itself: a submodule of it must be in MAPPING (or under one that is).
    """
    parts = name.split(".")
    for cut in range(len(parts), 1 if len(parts) > 1 else 0, -1):
        mapped = MAPPING.get(".".join(parts[:cut]))
        if mapped is not None:
            return ".".join([mapped, *parts[cut:]])
    return None


def _rewrite(node: ast.Import | ast.ImportFrom, where: str) -> str | None:
    """The statement with Ray's modules, or None when it imports nothing of twinray's."""
    if isinstance(node, ast.ImportFrom):
        if node.level or not node.module or node.module.split(".")[0] not in TWINRAY_PACKAGES:
            return None
        target = _mapped(node.module, where)
        names = ", ".join(
            a.name if a.asname is None else f"{a.name} as {a.asname}" for a in node.names
        )
        return f"from {target} import {names}"
    if not any(a.name.split(".")[0] in TWINRAY_PACKAGES for a in node.names):
        return None
    parts = []
    for alias in node.names:
        if alias.name.split(".")[0] not in TWINRAY_PACKAGES:
            parts.append(alias.name if alias.asname is None else f"{alias.name} as {alias.asname}")
            continue
        target = _mapped(alias.name, where)
        if alias.asname is not None:
            parts.append(target if target == alias.asname else f"{target} as {alias.asname}")
        elif "." in alias.name:
            raise UnmappedImportError(
                f"{where}: `import {alias.name}` binds `runtime` itself; import it with `as`"
            )
        else:
            parts.append(f"{target} as {alias.name}")
    return "import " + ", ".join(parts)


def _mapped(name: str, where: str) -> str:
    target = ray_module(name)
    if target is None:
        raise UnmappedImportError(
            f"{where} imports {name}, which Ray does not have: tag the example"
            f" `# twinray-only: <reason>` or map the module in tests/compat/examples.py"
        )
    return target


def to_ray(example: Example) -> str:
    """The example's code with every twinray import replaced by Ray's; nothing else changes.

    `import runtime as ray` becomes `import ray`, `from runtime import tune` becomes
    `from ray import tune`, `import runtime` becomes `import ray as runtime`. Raises
    UnmappedImportError for a module MAPPING does not map.
    """
    lines = example.code.splitlines(keepends=True)
    edits = []
    for node in _imports(example.code):
        new = _rewrite(node, example.where)
        if new is not None:
            assert node.end_lineno is not None and node.end_col_offset is not None
            edits.append((node.lineno, node.col_offset, node.end_lineno, node.end_col_offset, new))
    for start, col, end, end_col, new in sorted(edits, reverse=True):
        head = lines[start - 1][:col]
        tail = lines[end - 1][end_col:]
        lines[start - 1 : end] = [head + new + tail]
    return "".join(lines)


def expected_output(code: str) -> list[str]:
    """What the example says it prints: the comment after each `print(...)  # ...` line."""
    return [m.group(1) for m in re.finditer(r"^print\(.*\)  # (.+)$", code, re.M)]


def carry_over_list() -> str:
    """The README's list of what does not carry over to Ray, generated from the tags.

    One line per README block (its section and reason) and per notebook (its tagged cells
    grouped by reason); `python -m tests.compat.examples` prints it.
    """
    lines = []
    for example in readme_examples():
        if example.twinray_only:
            lines.append(f"- README, *{example.section}*: {example.twinray_only}.")
    for path in notebook_paths():
        by_reason: dict[str, list[str]] = {}
        cells = notebook_cells(path)
        for cell in cells:
            if cell.twinray_only:
                by_reason.setdefault(cell.twinray_only, []).append(cell.where.split()[-1])
        for reason, numbers in by_reason.items():
            if len(numbers) == len(cells):
                lines.append(f"- `notebooks/{path.name}`, the whole lesson: {reason}.")
            else:
                which = "cell" if len(numbers) == 1 else "cells"
                lines.append(f"- `notebooks/{path.name}`, {which} {', '.join(numbers)}: {reason}.")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(carry_over_list(), end="")
