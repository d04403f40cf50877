"""Workers see the driver's world: its modules, cwd, environment, and code defined in __main__.

Each test runs a small driver program in a fresh interpreter, importing `runtime` or real
`ray` as `ray`; both must give the same answers (twinray's workers come from a fresh
interpreter too, so nothing here is inherited by fork).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from types import ModuleType

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

PROGRAM = """
    import os, sys
    os.environ["TWINRAY_TEST_VAR"] = "from the driver"
    import usermod
    import {module} as ray

    class Point:  # defined in the driver's __main__
        def __init__(self, x):
            self.x = x

    def helper(v):
        return v * 2

    @ray.remote
    def probe(p):
        import usermod as u
        return os.getcwd(), os.environ.get("TWINRAY_TEST_VAR"), u.triple(helper(p.x)), Point(p.x + 1)

    @ray.remote
    def by_reference(x):
        return usermod.triple(x)

    @ray.remote
    class Holder:
        def __init__(self, point):
            self.point = point

        def get(self):
            return Point(self.point.x * 10)

    ray.init(num_cpus=1, **{init_kwargs})
    cwd, var, value, point = ray.get(probe.remote(Point(5)), timeout=120)
    assert cwd == os.getcwd(), (cwd, os.getcwd())
    assert var == "from the driver", var
    assert value == 30, value
    assert isinstance(point, Point) and point.x == 6
    assert ray.get(by_reference.remote(4), timeout=120) == 12
    assert ray.get(ray.remote(usermod.triple).remote(5), timeout=120) == 15
    got = ray.get(Holder.remote(Point(7)).get.remote(), timeout=120)
    assert isinstance(got, Point) and got.x == 70
    ray.shutdown()
    print("OK")
"""


def test_workers_see_the_drivers_path_cwd_env_and_main(ray: ModuleType, tmp_path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    (work / "usermod.py").write_text("def triple(x):\n    return 3 * x\n")  # importable: cwd
    init_kwargs = (
        "dict(include_dashboard=False, log_to_driver=False)"
        if ray.__name__ == "ray"
        else "dict(object_store_memory=32 << 20)"
    )
    program = PROGRAM.format(module=ray.__name__, init_kwargs=init_kwargs)
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(program)],
        capture_output=True,
        text=True,
        env=dict(os.environ, PYTHONPATH=ROOT),
        cwd=str(work),
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().endswith("OK"), proc.stdout
