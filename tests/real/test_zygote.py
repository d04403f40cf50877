"""Workers come from a zygote started from a fresh interpreter: drivers with threads holding
locks, what a fork used to inherit (sys.path, cwd, env, __main__), and nothing left behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _run(script: str, cwd: str | None = None, timeout: float = 120, **env: str):
    """Run `script` in a fresh driver interpreter with this checkout first on its path."""
    full_env = dict(os.environ, PYTHONPATH=ROOT, **env)
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)],
        capture_output=True,
        text=True,
        env=full_env,
        cwd=cwd,
        timeout=timeout,
    )


LOCKED_DRIVER = """
    import _imp, logging, os, sys, threading, time
    import runtime as ray

    @ray.remote(max_retries=1)
    def add(x, crash_once_in=None):
        import logging
        if crash_once_in is not None and not os.path.exists(crash_once_in):
            open(crash_once_in, "w").close()
            os._exit(1)  # the worker dies: the retry runs on its replacement
        logging.getLogger("task").warning("task %s", x)
        return x + 1

    @ray.remote(max_restarts=1)
    class Counter:
        def __init__(self):
            self.n = 0
        def incr(self):
            self.n += 1
            return self.n
        def pid(self):
            return os.getpid()
        def die(self):
            os._exit(1)

    def exercise(tag):
        assert ray.get([add.remote(i) for i in range(6)], timeout=60) == list(range(1, 7))
        assert ray.get(add.remote(10, os.path.join(sys.argv[1], tag)), timeout=60) == 11
        c = Counter.remote()
        assert ray.get([c.incr.remote() for _ in range(3)], timeout=60) == [1, 2, 3]
        first = ray.get(c.pid.remote(), timeout=60)
        try:
            ray.get(c.die.remote(), timeout=60)
        except ray.exceptions.ActorDiedError:
            pass
        # restarted on a new worker (calls made while it restarts may fail, as in Ray)
        deadline = time.monotonic() + 60
        while True:
            assert time.monotonic() < deadline
            try:
                second = ray.get(c.pid.remote(), timeout=60)
                break
            except ray.exceptions.ActorDiedError:
                time.sleep(0.01)
        assert second != first
        assert ray.get(c.incr.remote(), timeout=60) == 1

    # every module the runtime imports lazily is imported by a first, lock-free run
    ray.init(num_cpus=2, object_store_memory=64 << 20)
    exercise("warm")
    ray.shutdown()

    held = threading.Event()
    def hold(acquire, release):
        acquire()
        held.set()
        try:
            time.sleep(3600)
        finally:
            release()

    logging.basicConfig()
    plain = threading.Lock()
    handler = logging.getLogger().handlers[0]
    for acquire, release in [
        (plain.acquire, plain.release),          # a user lock
        (handler.acquire, handler.release),      # a logging handler's lock
        (logging._acquireLock, logging._releaseLock),  # the logging module's lock
        (_imp.acquire_lock, _imp.release_lock),  # the global import lock
    ]:
        threading.Thread(target=hold, args=(acquire, release), daemon=True).start()
        assert held.wait(30)
        held.clear()

    ray.init(num_cpus=2, object_store_memory=64 << 20)
    exercise("locked")
    ray.shutdown()
    print("OK", flush=True)
    os._exit(0)  # the threads hold logging's locks: its atexit flush would wait forever
"""


def test_driver_with_threads_holding_locks_runs_tasks_actors_and_replacements(tmp_path) -> None:
    # Forking such a driver deadlocks (the logging and import locks are taken at fork);
    # the zygote is a fresh interpreter, so the driver's locks do not matter.
    script = LOCKED_DRIVER.replace("sys.argv[1]", repr(str(tmp_path)))
    try:
        proc = _run(script, timeout=240)
    except subprocess.TimeoutExpired as exc:
        raise AssertionError(f"the driver hung: {exc.stderr!r}") from exc
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().endswith("OK"), proc.stdout
    assert "Traceback" not in proc.stderr, proc.stderr


def test_workers_get_the_drivers_path_cwd_env_and_main(tmp_path) -> None:
    pkg = tmp_path / "mods"
    pkg.mkdir()
    (pkg / "usermod.py").write_text("def triple(x):\n    return 3 * x\n")
    work = tmp_path / "work"
    work.mkdir()
    script = f"""
        import os, sys
        sys.path.insert(0, {str(pkg)!r})  # after start-up, before init
        os.environ["TWINRAY_TEST_VAR"] = "from the driver"
        import usermod
        import runtime as ray

        class Point:  # defined in the driver's __main__
            def __init__(self, x):
                self.x = x

        def helper(v):
            return v * 2

        @ray.remote
        def probe(p):
            import usermod as u
            return (os.getcwd(), os.environ.get("TWINRAY_TEST_VAR"), u.triple(helper(p.x)),
                    Point(p.x + 1), os.getppid() != {{ppid}})

        @ray.remote
        def by_reference(x):
            return usermod.triple(x)

        ray.init(num_cpus=1, object_store_memory=32 << 20)
        cwd, var, value, point, not_driver = ray.get(probe.remote(Point(5)), timeout=60)
        assert cwd == os.getcwd(), (cwd, os.getcwd())
        assert var == "from the driver", var
        assert value == 30, value
        assert isinstance(point, Point) and point.x == 6
        assert not_driver  # the zygote forks workers, not the driver
        assert ray.get(by_reference.remote(4), timeout=60) == 12
        assert ray.get(ray.remote(usermod.triple).remote(5), timeout=60) == 15
        ray.shutdown()
        print("OK")
    """.replace("{ppid}", "os.getpid()")
    proc = _run(script, cwd=str(work))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "OK", proc.stdout


def test_driver_never_forks() -> None:
    script = """
        import os
        import runtime as ray
        forks = []
        os.register_at_fork(before=lambda: forks.append(os.getpid()))
        ray.init(num_cpus=2, object_store_memory=32 << 20)

        @ray.remote
        def die():
            os._exit(1)

        @ray.remote
        class A:
            def ping(self):
                return "pong"

        try:
            ray.get(die.options(max_retries=1).remote(), timeout=60)
        except ray.exceptions.WorkerCrashedError:
            pass
        assert ray.get(A.remote().ping.remote(), timeout=60) == "pong"
        ray.shutdown()
        assert forks == [], forks
        print("OK")
    """
    proc = _run(script)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "OK", proc.stdout


def _running(pid: int) -> bool:
    """True if `pid` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_zygote_and_workers_die_with_a_killed_driver() -> None:
    script = """
        import os, time, runtime as ray
        ray.init(num_cpus=2, object_store_memory=32 << 20)

        @ray.remote
        class A:
            def pid(self):
                return os.getpid()

        a = A.remote()
        actor_pid = ray.get(a.pid.remote(), timeout=60)
        node = ray.api._current_node()
        deadline = time.monotonic() + 60
        while sum(not w.actor_id for w in node.pool.workers) < 2:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        pids = [w.pid for w in node.pool.workers] + [node.pool.zygote_pid, actor_pid]
        print(*pids, flush=True)
        time.sleep(120)
    """
    shm_before = set(os.listdir("/dev/shm"))
    env = dict(os.environ, PYTHONPATH=ROOT)
    proc = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(script)], stdout=subprocess.PIPE, env=env
    )
    try:
        pids = [int(x) for x in proc.stdout.readline().split()]
        assert len(pids) == 5, pids
        assert all(_running(pid) for pid in pids)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and any(_running(pid) for pid in pids):
        time.sleep(0.02)
    assert not any(_running(pid) for pid in pids)
    assert set(os.listdir("/dev/shm")) <= shm_before  # the arena is a memfd: nothing named


RESTART_THEN_EXIT = """
    import os, runtime as ray
    ray.init(num_cpus=1, object_store_memory=32 << 20)

    @ray.remote(max_restarts=1)
    class A:
        def pid(self):
            return os.getpid()
        def die(self):
            os._exit(1)

    a = A.remote()
    ray.get(a.pid.remote(), timeout=60)
    a.die.remote()
    try:
        ray.get(a.pid.remote(), timeout=60)
    except ray.exceptions.ActorDiedError:
        pass
    ray.shutdown()
"""


def test_exit_after_an_actor_restart_prints_nothing() -> None:
    # The driver closed the zygote's socket with a reply unread; the zygote's recv then
    # raised ConnectionResetError and printed its traceback (in most runs on main).
    for _ in range(8):
        proc = _run(RESTART_THEN_EXIT)
        assert proc.returncode == 0, proc.stderr
        assert proc.stderr == "", proc.stderr


def test_init_from_a_thread_that_ends_keeps_the_workers() -> None:
    # PR_SET_PDEATHSIG follows the thread that started the zygote: one started from a
    # short-lived thread must not die with it
    script = """
        import threading, time
        import runtime as ray
        t = threading.Thread(target=lambda: ray.init(num_cpus=1, object_store_memory=32 << 20))
        t.start()
        t.join()
        time.sleep(0.5)

        @ray.remote
        def f(x):
            return x * 2

        assert ray.get(f.remote(21), timeout=60) == 42
        ray.shutdown()
        print("OK")
    """
    proc = _run(script)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "OK", proc.stdout


_SEEN_EXIT = """
        pool = ray.api._current_node().pool
        deadline = time.monotonic() + 60
        while pool.spawning or pool.alive():  # until the pool has seen the zygote exit
            assert time.monotonic() < deadline, "the pool never saw the zygote exit"
            time.sleep(0.01)
"""


@pytest.mark.parametrize("order", ["racing the exit", "after the pool saw the exit"])
def test_a_zygote_that_cannot_start_fails_tasks_and_actors_clearly(order: str) -> None:
    # submitted while the pool may not know yet, and after it has (under load, the usual
    # order: the task then finds no worker at all): either way the error names the zygote
    wait = _SEEN_EXIT if order.startswith("after") else ""
    script = """
        import time
        import runtime as ray
        import runtime.real.zygote as z
        z._BOOT = "import sys; sys.stderr.write('zygote: broken on purpose\\\\n'); sys.exit(3)"
        ray.init(num_cpus=1, object_store_memory=32 << 20)
WAIT
        @ray.remote
        def f():
            return 1

        @ray.remote
        class A:
            def ping(self):
                return 1

        try:
            ray.get(f.remote(), timeout=60)
        except ray.WorkerCrashedError as exc:
            assert "zygote" in str(exc), exc
        else:
            raise AssertionError("the task ran without workers")
        try:
            ray.get(A.remote().ping.remote(), timeout=60)
        except ray.RayError as exc:
            assert "zygote" in str(exc), exc
        else:
            raise AssertionError("the actor ran without workers")
        ray.shutdown()
        print("OK")
    """.replace("WAIT\n", wait)
    proc = _run(script)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "OK", proc.stdout
    assert "broken on purpose" in proc.stderr


def test_a_failed_fork_fails_only_what_waited_for_that_worker() -> None:
    # the zygote's second fork fails (as EAGAIN would): the actor that waited for it fails
    # naming the cause; the zygote lives on, and the pool and later actors still work
    script = """
        import runtime as ray
        import runtime.real.zygote as z
        z._BOOT = z._BOOT.replace(
            "from runtime.real.zygote import main",
            "import runtime.real.worker as w; real = w.fork_worker; calls = []\\n"
            "def flaky(*a, **k):\\n"
            "    calls.append(1)\\n"
            "    if len(calls) == 2:\\n"
            "        raise BlockingIOError(11, 'Resource temporarily unavailable')\\n"
            "    return real(*a, **k)\\n"
            "w.fork_worker = flaky\\n"
            "from runtime.real.zygote import main",
        )
        ray.init(num_cpus=1, object_store_memory=32 << 20)

        @ray.remote
        def f(x):
            return x + 1

        @ray.remote
        class A:
            def ping(self):
                return "pong"

        assert ray.get(f.remote(1), timeout=60) == 2  # worker 0: the first fork
        try:
            ray.get(A.remote().ping.remote(), timeout=60)  # the second fork fails
        except ray.ActorDiedError as exc:
            assert "could not start worker" in str(exc), exc
        else:
            raise AssertionError("the actor started without a worker")
        assert ray.get(A.remote().ping.remote(), timeout=60) == "pong"
        assert ray.get(f.remote(2), timeout=60) == 3
        ray.shutdown()
        print("OK")
    """
    proc = _run(script)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "OK", proc.stdout
    assert "cannot start worker 1" in proc.stderr, proc.stderr
