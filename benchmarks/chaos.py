"""Chaos run: chains of dependent tasks on a multi-node cluster while worker nodes are SIGKILLed and replaced.

A head (1 CPU) and two worker nodes (2 CPUs each) run as real node processes on this
machine (`runtime.cluster_utils.Cluster`); this process is a connected driver. It submits
``--chains`` chains of ``--tasks / --chains`` steps each: step ``i`` of a chain takes the
previous step's array and returns it plus ``i``, an array of ``--value-bytes`` (over the
inline threshold by default, so each value is stored on the node that made it and pulled
node to node by the next step); steps are SPREAD over the nodes (else the head, which holds
the inputs, would run nearly all of them). Meanwhile, every ``--interval`` seconds, a fresh worker node
joins and the oldest worker node is SIGKILLed, so values and running tasks are lost all the
time: the owners retry the lost tasks and re-create the lost values from their lineage (the
core's own recovery). Every chain's end is checked against the value it must have.

Printed: nodes killed and added, tasks retried and values reconstructed (the driver's owner's
counters, read on the head), wrong and lost results (both must be 0), wall time.

    python3 -m benchmarks.chaos                        # the full run: 20,000 tasks
    python3 -m benchmarks.chaos --tasks 2000 --interval 1.5
"""

from __future__ import annotations

import argparse
import os
import tempfile
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import runtime as ray
from runtime.cluster_utils import Cluster, ClusterNode

__all__ = ["ChaosReport", "main", "run_chaos"]

WORKER_CPUS = 2
STORE = 256 << 20
"""Bytes of object store per node."""


@dataclass
class ChaosReport:
    """What one chaos run did and found."""

    tasks: int
    chains: int
    kills: int = 0
    added: int = 0
    retries: int = 0
    reconstructions: int = 0
    wrong: int = 0
    lost: int = 0
    wall_s: float = 0.0
    errors: list[str] = field(default_factory=list)
    """The first few errors of lost results (for the report)."""

    def lines(self) -> list[str]:
        """The report, one figure a line."""
        return [
            f"tasks               {self.tasks:,} in {self.chains} chains",
            f"nodes killed        {self.kills} (SIGKILL), {self.added} added",
            f"tasks retried       {self.retries:,}",
            f"values reconstructed {self.reconstructions:,}",
            f"wrong results       {self.wrong}",
            f"lost results        {self.lost}",
            f"wall time           {self.wall_s:.1f} s",
            *(f"  error: {e}" for e in self.errors),
        ]


@ray.remote(max_retries=-1, scheduling_strategy="SPREAD")
def step(x: Any, i: int, n: int) -> Any:
    """One link of a chain: the previous array plus ``i`` (the first makes a zero array)."""
    import numpy as np

    if x is None:
        return np.zeros(n, dtype=np.int64) + i
    return x + i


def _owner_counters() -> tuple[int, int]:
    """Retries and reconstructions of every owner on the head (the driver's among them)."""

    def read(view: Any) -> tuple[int, int]:
        owners = view.owners.values()
        return sum(o.retries for o in owners), sum(o.reconstructions for o in owners)

    from runtime import api

    return api._node.inspect(read)  # type: ignore[union-attr]


class _Chaos(threading.Thread):
    """Every ``interval`` s: add a fresh worker node, then SIGKILL the oldest one."""

    def __init__(self, cluster: Cluster, workers: list[ClusterNode], interval: float) -> None:
        super().__init__(name="chaos", daemon=True)
        self.cluster, self.workers, self.interval = cluster, workers, interval
        self.stop = threading.Event()
        self.kills = self.added = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            while not self.stop.wait(self.interval):
                self.workers.append(
                    self.cluster.add_node(num_cpus=WORKER_CPUS, object_store_memory=STORE)
                )
                self.added += 1
                if self.stop.is_set():
                    break
                victim = self.workers.pop(0)
                self.cluster.remove_node(victim, allow_graceful=False)
                self.kills += 1
        except BaseException as exc:  # noqa: BLE001  # reported by the run
            self.error = exc


def run_chaos(
    tasks: int = 20_000,
    chains: int = 200,
    interval: float = 3.0,
    value_bytes: int = 128 << 10,
    timeout: float = 1800.0,
    min_kills: int = 0,
) -> ChaosReport:
    """Run the chaos workload on a fresh cluster of this machine; its report.

    ``min_kills``: collect no result before that many nodes were killed (a short run,
    such as the test's, would otherwise end before the first kill; the chains' last values,
    not fetched yet, then live on the nodes, so a kill loses some of them). The cluster
    (head and every node it started) is shut down before it returns.
    """
    if chains <= 0 or tasks < chains:
        raise ValueError(f"need at least one task per chain: tasks={tasks}, chains={chains}")
    if interval <= 0:
        raise ValueError(f"interval must be positive, got {interval}")
    length = tasks // chains
    n = max(1, value_bytes // 8)
    report = ChaosReport(length * chains, chains)
    saved_root = os.environ.get("TWINRAY_SESSION_ROOT")
    with tempfile.TemporaryDirectory(prefix="twinray-chaos-") as root:
        os.environ["TWINRAY_SESSION_ROOT"] = root  # a private session: nothing else is touched
        cluster = Cluster(
            initialize_head=True,
            connect=True,
            head_node_args={"num_cpus": 1, "object_store_memory": STORE},
            shutdown_at_exit=False,
        )
        chaos: _Chaos | None = None
        try:
            workers = [
                cluster.add_node(num_cpus=WORKER_CPUS, object_store_memory=STORE) for _ in range(2)
            ]
            chaos = _Chaos(cluster, workers, interval)
            start = time.perf_counter()
            chaos.start()
            ends = []
            for _ in range(chains):
                ref = step.remote(None, 1, n)
                for i in range(2, length + 1):
                    ref = step.remote(ref, i, n)
                ends.append(ref)
            expected = length * (length + 1) // 2
            pending = {ref: k for k, ref in enumerate(ends)}
            deadline = time.monotonic() + timeout
            while chaos.kills < min_kills and chaos.is_alive() and time.monotonic() < deadline:
                time.sleep(0.05)
            while pending:
                left = deadline - time.monotonic()
                if left <= 0:
                    report.lost += len(pending)
                    report.errors.append(f"{len(pending)} chain(s) unfinished after {timeout:g} s")
                    break
                ready, _ = ray.wait(list(pending), num_returns=1, timeout=min(left, 30.0))
                for ref in ready:
                    del pending[ref]
                    try:
                        value = ray.get(ref, timeout=max(1.0, left))
                    except Exception as exc:  # noqa: BLE001  # counted: a lost result
                        report.lost += 1
                        if len(report.errors) < 5:
                            report.errors.append(f"{type(exc).__name__}: {exc}"[:300])
                        continue
                    if (
                        value.shape != (n,)
                        or int(value.min()) != expected
                        or int(value.max()) != expected
                    ):
                        report.wrong += 1
            report.wall_s = time.perf_counter() - start
            chaos.stop.set()
            chaos.join(timeout=120)
            if chaos.error is not None:
                report.errors.append(f"chaos thread: {chaos.error!r}")
            report.kills, report.added = chaos.kills, chaos.added
            report.retries, report.reconstructions = _owner_counters()
        finally:
            if chaos is not None:
                chaos.stop.set()
                chaos.join(timeout=120)
            cluster.shutdown()
            if saved_root is None:
                os.environ.pop("TWINRAY_SESSION_ROOT", None)
            else:
                os.environ["TWINRAY_SESSION_ROOT"] = saved_root
    return report


def main(argv: list[str] | None = None) -> int:
    """Command line: run the chaos workload and print its report; 1 if a result was wrong or lost."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=20_000, help="tasks in all (default 20,000)")
    parser.add_argument("--chains", type=int, default=200, help="independent chains (default 200)")
    parser.add_argument(
        "--interval", type=float, default=3.0, help="seconds between kills (default 3)"
    )
    parser.add_argument(
        "--value-bytes", type=int, default=128 << 10, help="bytes of each step's array (128 KiB)"
    )
    parser.add_argument("--timeout", type=float, default=1800.0, help="give up after (s)")
    args = parser.parse_args(argv)
    report = run_chaos(args.tasks, args.chains, args.interval, args.value_bytes, args.timeout)
    print("\n".join(report.lines()))
    return 1 if report.wrong or report.lost else 0


if __name__ == "__main__":
    raise SystemExit(main())
