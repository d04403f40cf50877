"""The zygote: a fork server started from a fresh interpreter that forks every worker.

The driver never forks. At `init` it starts the zygote with ``subprocess`` (``vfork`` +
``exec`` of ``sys.executable``: safe whatever threads the driver runs, and no at-fork
handler of the driver runs), passing two inherited descriptors: its end of a
``SOCK_SEQPACKET`` socketpair and the arena's memfd. What a fork used to inherit for free
travels explicitly: the driver's ``sys.path`` (so the repository and user modules import),
its working directory and environment (``subprocess`` passes both), the arena's layout
(capacity, the cancel-target block, the claim slots) and the modules to preload.

The zygote maps the arena, imports what workers need once (cloudpickle, the worker loop,
the worker-side API; numpy when the driver has it), then serves requests: the driver sends
``ZYGOTE_REQUEST.pack(worker_id)`` and receives ``ZYGOTE_REPLY.pack(worker_id, pid)`` with
the driver's end of the new worker's socketpair as ``SCM_RIGHTS`` (or, if the fork
failed, a negative errno as the pid and no descriptor). The zygote has no
thread, so its forks are safe; the initial pool, replacements of dead workers and actors'
dedicated workers all come from it. It dies with the driver (EOF on its socket, which only
the driver holds, and ``PR_SET_PDEATHSIG`` when started from the main thread: the signal
follows the starting *thread*), its workers with it (``PR_SET_PDEATHSIG``); on EOF it
reaps them first.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import traceback
from dataclasses import asdict, dataclass, field
from typing import Any

from runtime.real.arena import Arena

__all__ = [
    "ZYGOTE_REPLY",
    "ZYGOTE_REQUEST",
    "PRELOAD",
    "Zygote",
    "ZygoteConfig",
    "main",
    "start_zygote",
]

ZYGOTE_REQUEST = struct.Struct("<I")  # worker id
ZYGOTE_REPLY = struct.Struct("<Ii")  # worker id, pid or -errno (+ the driver's socket end)

PRELOAD = ("cloudpickle", "runtime.api", "runtime.real.worker", "runtime.real.worker_client")
"""Imported by the zygote before it forks: every worker needs them."""

OPTIONAL_PRELOAD = ("numpy",)
"""Imported by the zygote too when the driver has imported them (a worker would anyway)."""

_BOOT = (
    "import signal; signal.signal(signal.SIGINT, signal.SIG_IGN)\n"
    "import json, sys; c = json.loads(sys.argv[1]); sys.path[:] = c['sys_path']; "
    "del sys.argv[1:]; from runtime.real.zygote import main; main(c)"
)
"""The zygote's ``-c`` program (run with ``-P``: no cwd on the path until the driver's is
set): ignore Ctrl-C (the driver's to handle), take the driver's sys.path, then import ours."""


@dataclass(slots=True)
class ZygoteConfig:
    """What the zygote needs to know about the driver (sent as JSON on its command line)."""

    sock_fd: int
    arena_fd: int
    capacity: int
    control: int
    claims_offset: int
    claims_slots: int
    inline_threshold: int
    parent_pid: int
    death_signal: bool = True
    """Die with the driver's thread that started it (PR_SET_PDEATHSIG): only when that is
    the main thread; a zygote started from another thread relies on EOF on its socket."""
    sys_path: list[str] = field(default_factory=list)
    preload: list[str] = field(default_factory=list)


@dataclass(slots=True)
class Zygote:
    """The driver's handle on its zygote: the process and the driver-side socket."""

    proc: subprocess.Popen[bytes]
    sock: socket.socket

    @property
    def pid(self) -> int:
        """The zygote's process id."""
        return self.proc.pid

    def close(self, timeout: float = 10.0) -> None:
        """Close the socket (the zygote reaps its workers and exits), then reap it.

        SIGKILL after `timeout` s (its workers then die by PR_SET_PDEATHSIG).
        """
        self.sock.close()
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def start_zygote(
    arena: Arena, inline_threshold: int, stdio: tuple[int, int] | None = None
) -> Zygote:
    """Start the zygote from a fresh interpreter; return its handle (it is not waited for).

    The arena's `control` block and `claims` must be allocated already (their offsets are
    sent). `stdio`: the descriptors the zygote and its workers get as stdout and stderr
    (a node process's log pipes, `runtime.real.logs`); default this process's own.
    Raises RuntimeError if the interpreter cannot be started.
    """
    if not sys.executable:
        raise RuntimeError("cannot start workers: sys.executable is empty in this interpreter")
    driver_sock, zygote_sock = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    claims = arena.claims
    config = ZygoteConfig(
        sock_fd=zygote_sock.fileno(),
        arena_fd=arena.fd,
        capacity=arena.capacity,
        control=arena.control,
        claims_offset=claims.offset if claims is not None else -1,
        claims_slots=claims.slots if claims is not None else 0,
        inline_threshold=inline_threshold,
        parent_pid=os.getpid(),
        death_signal=threading.current_thread() is threading.main_thread(),
        sys_path=[os.getcwd() if entry == "" else entry for entry in sys.path],
        preload=[m for m in OPTIONAL_PRELOAD if m in sys.modules],
    )
    try:
        proc = subprocess.Popen(
            [sys.executable, "-P", "-c", _BOOT, json.dumps(asdict(config))],
            pass_fds=(zygote_sock.fileno(), arena.fd),
            close_fds=True,
            stdout=stdio[0] if stdio is not None else None,
            stderr=stdio[1] if stdio is not None else None,
        )
    except OSError as exc:
        driver_sock.close()
        raise RuntimeError(f"cannot start the worker zygote ({sys.executable}): {exc}") from exc
    finally:
        zygote_sock.close()
    return Zygote(proc, driver_sock)


def main(raw: dict[str, Any]) -> None:
    """The zygote process: attach the arena, preload, serve fork requests until EOF."""
    from runtime.real.worker import CANCEL_SIGNAL, set_parent_death_signal

    config = ZygoteConfig(**raw)
    if config.death_signal:
        set_parent_death_signal()
    if os.getppid() != config.parent_pid:
        os._exit(0)  # the driver died before the death signal was armed
    signal.signal(CANCEL_SIGNAL, signal.SIG_IGN)  # inherited by its workers until they set theirs
    code = 0
    try:
        sock = socket.socket(fileno=config.sock_fd)
        arena = Arena.attach(config.arena_fd, config.capacity, config.control)
        if config.claims_slots:
            from runtime.real.claims import Claims

            arena.claims = Claims.attach(arena, config.claims_slots, config.claims_offset)
        import importlib

        for name in (*PRELOAD, *config.preload):
            importlib.import_module(name)
        serve(sock, arena, config.inline_threshold)
    except BaseException:
        code = 1
        traceback.print_exc()
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


def serve(sock: socket.socket, arena: Arena, inline_threshold: int) -> None:
    """Serve fork requests until EOF, then reap every worker forked here."""
    from runtime.real.worker import fork_worker

    children: set[int] = set()
    while True:
        try:
            data = sock.recv(64)
        except ConnectionError:
            data = b""
        if not data:
            break
        (worker_id,) = ZYGOTE_REQUEST.unpack(data)
        try:
            pid, conn = fork_worker(arena, worker_id, [sock], inline_threshold)
        except OSError as exc:  # e.g. EAGAIN: too many processes; the driver fails the request
            print(f"twinray zygote: cannot start worker {worker_id}: {exc}", file=sys.stderr)
            try:
                sock.send(ZYGOTE_REPLY.pack(worker_id, -(exc.errno or 1)))
            except OSError:
                break
            continue
        try:
            socket.send_fds(sock, [ZYGOTE_REPLY.pack(worker_id, pid)], [conn.fileno()])
        except OSError:
            break  # the driver is gone
        finally:
            conn.close()
            children.add(pid)
        _reap_exited(children)
    sock.close()
    deadline = time.monotonic() + 5.0
    while children and time.monotonic() < deadline:
        _reap_exited(children)
        time.sleep(0.005)
    for pid in children:
        try:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass


def _reap_exited(children: set[int]) -> None:
    """Reap the children in `children` that have exited."""
    for pid in list(children):
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            done = pid
        if done:
            children.discard(pid)
