"""Build the compiled simulator: mypyc over `sim.fast.compiled_modules`, into the build cache.

    python -m sim.build_fast            # build (if not built for this source) and say where
    python -m sim.build_fast --check    # only say whether a build of this source exists

Needs mypy (which ships mypyc; the ``fast`` extra) and a C compiler. The sources are copied
to a scratch directory first, so the build is of exactly the bytes `sim.fast.source_digest`
hashed, and the result is moved into place only when complete. Without mypyc or a compiler
this prints one line saying so and exits with status 1: the simulator then runs as pure
Python, as it always can. On 2 shared cores a build takes several minutes (one C file for
the whole group, optimised); ``--opt-level`` trades run time for build time.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from sim import fast

EXIT_NO_TOOLCHAIN = 1
EXIT_BUILD_FAILED = 2


class ToolchainMissing(RuntimeError):
    """mypyc or a C compiler is not installed: nothing can be compiled here."""


def toolchain_problem() -> str | None:
    """What is missing to compile (mypyc, a C compiler), or None when all is there."""
    try:
        import mypyc  # noqa: F401
    except ImportError:
        return "mypyc is not installed (pip install -e '.[fast]')"
    compiler = os.environ.get("CC", "cc").split()[0]
    if shutil.which(compiler) is None and shutil.which("gcc") is None:
        return f"no C compiler found ({compiler}, gcc)"
    return None


def _copy_sources(root: Path, dst: Path) -> None:
    """The packages mypy needs to analyse the compiled modules, and the mypy settings."""
    for package in ("runtime", "sim"):
        for path in (root / package).rglob("*.py"):
            target = dst / path.relative_to(root)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)
    shutil.copyfile(root / "pyproject.toml", dst / "pyproject.toml")


def build(
    root: Path = fast.ROOT, cache: Path | None = None, opt_level: int = 3, quiet: bool = False
) -> fast.Build:
    """Compile the current source unless a build of it exists; return the build.

    Raises ToolchainMissing when nothing can be compiled, RuntimeError when mypyc fails
    (its output is in the message).
    """
    problem = toolchain_problem()
    if problem is not None:
        raise ToolchainMissing(problem)
    cache = cache or fast.cache_root()
    found = fast.find_build(root, cache)
    if found is not None:
        return found
    modules = fast.compiled_modules(root)
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="twinray-mypyc-", dir=cache) as tmp:
        work = Path(tmp) / "src"
        _copy_sources(root, work)
        digest = fast.source_digest(work)
        paths = [str(fast.module_path(name, Path("."))) for name in modules]
        env = {**os.environ, "MYPYC_OPT_LEVEL": str(opt_level)}
        cmd = [sys.executable, "-m", "mypyc", *paths]
        proc = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise RuntimeError(f"mypyc failed:\n{(proc.stdout + proc.stderr)[-4000:]}")
        made = Path(tmp) / "out"
        files: dict[str, str] = {}
        for so in work.glob("**/*.so"):
            rel = so.relative_to(work)
            if rel.parts[0] == "build":
                continue
            name = ".".join((*rel.parent.parts, rel.name.split(".")[0]))
            (made / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(so, made / rel)
            files[name] = rel.as_posix()
        missing = sorted(set(modules) - set(files))
        if missing:
            raise RuntimeError(f"mypyc made no extension for {', '.join(missing)}")
        manifest = {"digest": digest, "files": files, "modules": modules, "opt_level": opt_level}
        (made / fast.MANIFEST).write_text(json.dumps(manifest, indent=1), encoding="utf-8")
        final = cache / digest
        if final.exists():  # a concurrent build finished first: keep that one
            shutil.rmtree(made)
        else:
            made.rename(final)
    result = fast.find_build(root, cache)
    if result is None:
        raise RuntimeError("the source changed during the build: run it again")
    return result


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: build the compiled simulator, or check that one exists."""
    parser = argparse.ArgumentParser(prog="python -m sim.build_fast", description=__doc__)
    parser.add_argument("--check", action="store_true", help="only report whether a build exists")
    parser.add_argument(
        "--opt-level", type=int, choices=range(4), default=3, help="mypyc's (and gcc's) -O level"
    )
    args = parser.parse_args(argv)
    if args.check:
        found = fast.find_build()
        print(
            f"built: {fast.cache_root() / found.digest}" if found else "not built for this source"
        )
        return 0 if found else 1
    start = time.monotonic()
    try:
        done = build(opt_level=args.opt_level)
    except ToolchainMissing as exc:
        print(f"sim.build_fast: cannot compile: {exc}; the simulator runs as pure Python")
        return EXIT_NO_TOOLCHAIN
    except RuntimeError as exc:
        print(f"sim.build_fast: {exc}", file=sys.stderr)
        return EXIT_BUILD_FAILED
    where = fast.cache_root() / done.digest
    print(
        f"compiled simulator: {where} ({len(done.files)} modules, {time.monotonic() - start:.0f} s)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
