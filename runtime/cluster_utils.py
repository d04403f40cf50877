"""`Cluster`, like Ray's `ray.cluster_utils.Cluster`: a cluster of real node processes on this machine, for tests and notebooks.

``Cluster(initialize_head=True, connect=True, head_node_args={"num_cpus": 2})`` starts a
head node process (`runtime.real.node_process`, in a fresh session directory that
``init(address="auto")`` finds) and connects this process to it as a driver;
`remove_node` stops a node gracefully (SIGTERM, then SIGKILL after a grace period) or
crashes it (``allow_graceful=False``: SIGKILL); `shutdown` removes every node.

`add_node` after the head starts a worker node process that joins the head (its own
raylet, workers and arena; see `runtime.real.peers`); its ``address`` is the head's, which
is where drivers connect.
"""

from __future__ import annotations

import atexit
import contextlib
import math
import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runtime.exceptions import OptionNotSupportedError

__all__ = ["Cluster", "ClusterNode"]

NODE_DEFAULTS: dict[str, Any] = {
    "num_cpus": 1,
    "num_gpus": 0,
    "object_store_memory": 150 * 1024 * 1024,
}
"""What a node gets unless `add_node` says otherwise (Ray's `Cluster.add_node` defaults)."""
NODE_ARGS = (
    "num_cpus", "num_gpus", "resources", "object_store_memory", "port",
    "heartbeat_period_s", "node_timeout_s", "_system_config",
)  # fmt: skip
SYSTEM_CONFIG = ("health_check_period_ms", "health_check_failure_threshold")
"""The keys of Ray's head-node ``_system_config`` twinray takes (its heartbeat settings)."""
"""The node arguments twinray's node processes take."""
GRACE_PERIOD = 10.0
"""Seconds a graceful `remove_node` waits after SIGTERM before SIGKILL."""


@dataclass(eq=False)
class ClusterNode:
    """One node process of a `Cluster` (what `add_node` returns and `remove_node` takes)."""

    address: str
    """Where it listens, ``HOST:PORT``."""
    head: bool
    process: subprocess.Popen = field(repr=False)

    @property
    def pid(self) -> int:
        """The node process's id."""
        return self.process.pid

    def any_processes_alive(self) -> bool:
        """True while the node process runs."""
        return self.process.poll() is None

    def remaining_processes_alive(self) -> bool:
        """True while the node process runs (Ray's name for it)."""
        return self.any_processes_alive()


def _node_config(node_args: dict[str, Any], head: bool = True) -> Any:
    """The `NodeProcessConfig` of a head (or a worker node) with `node_args` over the
    defaults (checked; its session and head address are filled in by the caller)."""
    from runtime.real.node_process import NodeProcessConfig

    unknown = sorted(set(node_args) - set(NODE_ARGS))
    if unknown:
        raise OptionNotSupportedError(
            f"Cluster.add_node({unknown[0]}=...): twinray's node processes take only "
            f"{', '.join(NODE_ARGS)}"
        )
    node_args = _health_from_system_config(node_args, head)
    args = {**NODE_DEFAULTS, **node_args}
    for name in ("num_cpus", "num_gpus"):
        value = args[name]
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        if not ok or not math.isfinite(value) or value < 0:
            raise ValueError(f"Cluster.add_node({name}={value!r}): must be a non-negative number")
    store = args["object_store_memory"]
    if not isinstance(store, int) or isinstance(store, bool) or store <= 0:
        raise ValueError(
            f"Cluster.add_node(object_store_memory={store!r}): must be a positive int (bytes)"
        )
    resources = args.get("resources") or {}
    if not isinstance(resources, dict):
        raise ValueError(f"Cluster.add_node(resources={resources!r}): must be a dict")
    for name, amount in resources.items():
        ok = isinstance(amount, (int, float)) and not isinstance(amount, bool)
        if name in ("CPU", "GPU") or not ok or amount < 0:
            raise ValueError(
                f"Cluster.add_node(resources=...): {name!r}: {amount!r} is not a custom "
                "resource amount (CPU and GPU have their own arguments)"
            )
    port = args.get("port", 0)
    if not isinstance(port, int) or not 0 <= port < 65536:
        raise ValueError(f"Cluster.add_node(port={port!r}): must be an int in 0..65535")
    config = NodeProcessConfig(
        session="",
        head=head,
        port=port,
        num_cpus=float(args["num_cpus"]),
        num_gpus=float(args["num_gpus"]),
        resources={str(k): float(v) for k, v in resources.items()},
        object_store_memory=store,
    )
    if "heartbeat_period_s" in args:
        config.heartbeat_period_s = args["heartbeat_period_s"]
    config.node_timeout_s = args.get("node_timeout_s")
    try:
        config.check_health()
    except ValueError as exc:
        raise ValueError(f"Cluster.add_node(...): {exc}") from None
    return config


def _health_from_system_config(node_args: dict[str, Any], head: bool) -> dict[str, Any]:
    """`node_args` with Ray's ``_system_config`` health-check keys turned into twinray's
    ``heartbeat_period_s`` (``health_check_period_ms`` / 1000) and ``node_timeout_s``
    (period x ``health_check_failure_threshold``, default 5); other keys are refused."""
    if "_system_config" not in node_args:
        return node_args
    args = dict(node_args)
    system = args.pop("_system_config")
    if not head:
        raise ValueError(
            "Cluster.add_node(_system_config=...): System config parameters can only be set "
            "on the head node."
        )
    if not isinstance(system, dict):
        raise ValueError(f"Cluster.add_node(_system_config={system!r}): must be a dict")
    unknown = sorted(set(system) - set(SYSTEM_CONFIG))
    if unknown:
        raise OptionNotSupportedError(
            f"Cluster.add_node(_system_config={{{unknown[0]!r}: ...}}): twinray takes only "
            f"{', '.join(SYSTEM_CONFIG)}"
        )
    from runtime.core.health import RAY_HEALTH_CHECK_FAILURE_THRESHOLD

    for key in ("heartbeat_period_s", "node_timeout_s"):
        if key in args:
            raise ValueError(f"Cluster.add_node: give {key} or _system_config, not both")
    period_ms = system.get("health_check_period_ms", 3000)
    threshold = system.get("health_check_failure_threshold", RAY_HEALTH_CHECK_FAILURE_THRESHOLD)
    for key, value in (
        ("health_check_period_ms", period_ms),
        ("health_check_failure_threshold", threshold),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ValueError(
                f"Cluster.add_node(_system_config): {key} must be a positive int, got {value!r}"
            )
    args["heartbeat_period_s"] = period_ms / 1000
    args["node_timeout_s"] = period_ms / 1000 * threshold
    return args


class Cluster:
    """A cluster of real node processes on this machine (Ray's `cluster_utils.Cluster`)."""

    def __init__(
        self,
        initialize_head: bool = False,
        connect: bool = False,
        head_node_args: dict[str, Any] | None = None,
        shutdown_at_exit: bool = True,
        *,
        heartbeat_period_s: float | None = None,
        node_timeout_s: float | None = None,
    ) -> None:
        """`heartbeat_period_s`: every node's heartbeat period unless its `add_node` says
        otherwise (default Ray's 3 s); `node_timeout_s`: the head's (Ray's 15 s)."""
        if not initialize_head and connect:
            raise RuntimeError("Cannot connect to uninitialized cluster.")
        self.health_defaults: dict[str, float] = {}
        """Node arguments every `add_node` gets unless it gives its own."""
        if heartbeat_period_s is not None:
            self.health_defaults["heartbeat_period_s"] = heartbeat_period_s
        self.node_timeout_s = node_timeout_s
        """The head's node timeout (None: the node process's default, Ray's 15 s)."""
        self.head_node: ClusterNode | None = None
        self.worker_nodes: set[ClusterNode] = set()
        self.connected = False
        self.session: Path | None = None
        self.head_timeout = 0.0
        """The running head's node timeout in seconds (a worker node must beat faster)."""
        """The session directory of this cluster (token, records, logs, audit log)."""
        if shutdown_at_exit:
            atexit.register(self.shutdown)
        if initialize_head:
            self.add_node(**(head_node_args or {}))
            if connect:
                self.connect()

    @property
    def address(self) -> str | None:
        """The head's ``HOST:PORT`` (what `runtime.init(address=...)` takes); None without one."""
        return self.head_node.address if self.head_node is not None else None

    def connect(self, namespace: str | None = None) -> None:
        """Connect this process to the cluster as its driver (`runtime.init(address=...)`)."""
        import runtime

        if self.address is None:
            raise RuntimeError("Cannot connect to uninitialized cluster.")
        if self.connected:
            raise RuntimeError("Cluster.connect(): this process is already connected to it")
        runtime.init(address=self.address, namespace=namespace, ignore_reinit_error=True)
        self.connected = True

    def add_node(self, wait: bool = True, **node_args: Any) -> ClusterNode:
        """Start a node process; the first one is the head. Returns it once it listens.

        Node arguments: `num_cpus` (default 1), `num_gpus` (0), `resources`,
        `object_store_memory` (150 MiB), `port` (0: any free one), `heartbeat_period_s`
        (the cluster's, else Ray's 3 s) and, for the head only, `node_timeout_s` or Ray's
        ``_system_config={"health_check_period_ms": ..., "health_check_failure_threshold": ...}``. `wait` is accepted for
        Ray's signature: a node is always returned listening.
        """
        from runtime.net.auth import new_token, save_token
        from runtime.real import sessions
        from runtime.real.node_process import launch

        head = self.head_node is None
        node_args = {**self.health_defaults, **node_args}
        if head and self.node_timeout_s is not None:
            node_args.setdefault("node_timeout_s", self.node_timeout_s)
        config = _node_config(node_args, head)  # checked before anything is made
        if not head:
            assert self.session is not None and self.head_node is not None
            if config.heartbeat_period_s >= self.head_timeout:
                raise ValueError(
                    f"Cluster.add_node(heartbeat_period_s={config.heartbeat_period_s!r}): "
                    f"must be shorter than the head's node_timeout_s ({self.head_timeout:g})"
                )
            config.session = str(self.session)
            config.head_address = self.head_node.address
            proc, _ = launch(config)
            node = ClusterNode(self.head_node.address, False, proc)
            self.worker_nodes.add(node)
            return node
        session = sessions.new_session()
        config.session = str(session)
        save_token(session, new_token())
        proc, address = launch(config)
        self.session = session
        self.head_timeout = config.timeout()
        self.head_node = ClusterNode(address, True, proc)
        return self.head_node

    def remove_node(self, node: ClusterNode, allow_graceful: bool = True) -> None:
        """Stop `node`: SIGTERM then SIGKILL after a grace period, or SIGKILL at once
        (``allow_graceful=False``: a crash). Removing the node this process is connected
        to disconnects it and raises `ValueError`, as in Ray."""
        import runtime

        if node is not self.head_node and node not in self.worker_nodes:
            raise ValueError(f"{node!r} is not a node of this cluster")
        was_connected = self.connected and node is self.head_node and runtime.is_initialized()
        if was_connected:
            runtime.shutdown()
            self.connected = False
        _stop_process(node.process, allow_graceful)
        if node is self.head_node:
            self.head_node = None
            if self.session is not None:
                _forget(self.session, node.pid)
        else:
            self.worker_nodes.discard(node)
        if was_connected:
            raise ValueError(
                "Removing a node that is connected to this Ray client is not allowed because "
                "it will break the driver (this process was disconnected first)."
            )

    def wait_for_nodes(self, timeout: float = 30) -> None:
        """Wait until every node of the cluster answers; `TimeoutError` after `timeout` s."""
        from runtime.real.remote_driver import connect_driver

        deadline = time.monotonic() + timeout
        for node in self.list_all_nodes():
            while True:
                try:
                    connect_driver(node.address, kind="client").shutdown()
                    break
                except ConnectionError:
                    if time.monotonic() >= deadline or not node.any_processes_alive():
                        raise TimeoutError("Timed out while waiting for nodes to join.") from None
                    time.sleep(0.1)

    def list_all_nodes(self) -> list[ClusterNode]:
        """Every node, the head first."""
        nodes = list(self.worker_nodes)
        return [self.head_node, *nodes] if self.head_node is not None else nodes

    def remaining_processes_alive(self) -> bool:
        """True if every node's process is still running."""
        return all(node.any_processes_alive() for node in self.list_all_nodes())

    def shutdown(self) -> None:
        """Disconnect this process if connected, and remove every node. Idempotent."""
        import runtime

        if self.connected:
            if runtime.is_initialized():
                runtime.shutdown()
            self.connected = False
        for node in list(self.worker_nodes):
            self.remove_node(node)
        if self.head_node is not None:
            self.remove_node(self.head_node)


def _stop_process(proc: subprocess.Popen, allow_graceful: bool) -> None:
    """Stop a node process and reap it (its zygote and workers exit with it)."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(proc.pid, signal.SIGTERM if allow_graceful else signal.SIGKILL)
    try:
        proc.wait(timeout=GRACE_PERIOD if allow_graceful else 30.0)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _forget(session: Path, pid: int) -> None:
    """A killed node leaves its records behind: remove them."""
    from runtime.real import sessions

    sessions.remove_record(session, pid)
    info = sessions.head_info(session)
    if info is not None and info.get("pid") == pid:
        (session / "head.json").unlink(missing_ok=True)
