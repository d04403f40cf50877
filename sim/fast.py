"""The compiled simulator: load mypyc builds of the core and the host, only if built from this source.

The pure-Python modules are the one implementation; ``python -m sim.build_fast`` compiles
`COMPILED` of them with mypyc into a cache directory named by `source_digest`, a hash of
every source file of ``runtime/core`` and ``sim`` (and of the Python and mypy versions).
`enable` installs an import finder that serves those modules from the build whose name is
the digest of the source as it is now: an edited source has another digest, so a stale
build is never found, let alone run. With no such build (or ``TWINRAY_SIM_PURE=1``) nothing
changes and the pure Python runs. The entry points (``run-scenario``, ``python -m sim.cli``)
call `enable` before anything imports the core; a library import of ``sim`` never does.
"""

from __future__ import annotations

import hashlib
import importlib.abc
import importlib.machinery
import importlib.util
import json
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[1]
"""The source tree holding ``runtime/`` and ``sim/``."""

INTERPRETED_CORE = ("__init__", "errors", "invariants")
"""Core modules left interpreted: packages, and builtin-exception subclasses (mypyc has none)."""

SIM_COMPILED = (
    "sim.calendar",
    "sim.host",
    "sim.metrics",
    "sim.distributions",
    "sim.workloads",
    "sim.programs",
    "sim.sim_engine",
)
"""The simulator's modules on the per-task path compiled with the core: the calendar, the
host, the metrics, and the drivers of the closed-loop workloads (samplers,
`sim.workloads._DriverBase` and `Completion`, `sim.programs`, `sim.sim_engine.SimEngine`)."""

HASHED_PACKAGES = ("runtime/core", "sim")
"""Every ``.py`` under these is hashed: any change to them invalidates a build."""

MANIFEST = "manifest.json"
PURE_ENV = "TWINRAY_SIM_PURE"
CACHE_ENV = "TWINRAY_SIM_CACHE"


def compiled_modules(root: Path = ROOT) -> list[str]:
    """The dotted names of the modules a build compiles: the core's top level and `SIM_COMPILED`."""
    core = sorted(
        f"runtime.core.{p.stem}"
        for p in (root / "runtime" / "core").glob("*.py")
        if p.stem not in INTERPRETED_CORE
    )
    return core + list(SIM_COMPILED)


def module_path(name: str, root: Path = ROOT) -> Path:
    """The source file of module `name` under `root`."""
    return root.joinpath(*name.split(".")).with_suffix(".py")


def _mypy_version() -> str:
    """mypy's version (mypyc ships with it), or "" when it is not installed."""
    try:
        from mypy.version import __version__
    except ImportError:
        return ""
    return __version__


def source_digest(root: Path = ROOT) -> str:
    """A hash of the sources a build depends on, the interpreter and the mypy version."""
    h = hashlib.sha256()
    h.update(f"{sys.implementation.cache_tag} {sys.platform} {_mypy_version()}\n".encode())
    h.update(" ".join(compiled_modules(root)).encode())
    for package in HASHED_PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            h.update(f"\n{path.relative_to(root).as_posix()}\n".encode())
            h.update(path.read_bytes())
    return h.hexdigest()[:24]


def cache_root() -> Path:
    """Where builds live: ``$TWINRAY_SIM_CACHE``, else ``~/.cache/twinray/mypyc``."""
    explicit = os.environ.get(CACHE_ENV)
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "twinray" / "mypyc"


@dataclass(frozen=True)
class Build:
    """A build on disk: its digest and, per module name, its extension file."""

    digest: str
    files: dict[str, Path]


@dataclass(frozen=True)
class Status:
    """What `enable` did: whether the compiled modules are in use, and why (not)."""

    compiled: bool
    reason: str


def find_build(root: Path = ROOT, cache: Path | None = None) -> Build | None:
    """The build made from the current source under `cache`, complete, or None."""
    digest = source_digest(root)
    where = (cache or cache_root()) / digest
    try:
        manifest = json.loads((where / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if manifest.get("digest") != digest:
        return None
    files = {name: where / rel for name, rel in manifest.get("files", {}).items()}
    if set(compiled_modules(root)) - set(files) or not all(p.is_file() for p in files.values()):
        return None
    return Build(digest, files)


class _CompiledFinder(importlib.abc.MetaPathFinder):
    """Serves the modules of one build (and its shared library) from their extension files."""

    def __init__(self, build: Build) -> None:
        self.build = build

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        """The spec of `fullname` in the build, or None for every other module."""
        file = self.build.files.get(fullname)
        if file is None:
            return None
        loader = importlib.machinery.ExtensionFileLoader(fullname, str(file))
        return importlib.util.spec_from_file_location(fullname, file, loader=loader)


def active() -> Build | None:
    """The build `enable` installed in this process, or None (pure Python)."""
    for finder in sys.meta_path:
        if isinstance(finder, _CompiledFinder):
            return finder.build
    return None


def enable(root: Path = ROOT, cache: Path | None = None) -> Status:
    """Use the compiled build of the current source for the rest of this process, if any.

    Must run before the core is imported (a mix of compiled and interpreted classes of the
    same module would not work together): when any compiled module is already imported,
    the pure Python stays. ``TWINRAY_SIM_PURE=1`` keeps the pure Python as well.
    """
    if active() is not None:
        return Status(True, "compiled (already enabled)")
    if os.environ.get(PURE_ENV, "") not in ("", "0"):
        return Status(False, f"pure Python ({PURE_ENV} is set)")
    build = find_build(root, cache)
    if build is None:
        return Status(False, "pure Python (no build of this source: python -m sim.build_fast)")
    loaded = sorted(name for name in build.files if name in sys.modules)
    if loaded:
        return Status(False, f"pure Python ({loaded[0]} was imported before the build was enabled)")
    sys.meta_path.insert(0, _CompiledFinder(build))
    return Status(True, f"compiled with mypyc (build {build.digest})")
