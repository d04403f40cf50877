"""`run-scenario FILE --mode real --nodes N`: a scenario on real node processes, with a node killed."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sim.scenario import load_scenario
from twin.real_cluster import TRANSFER_BYTES, fit_cluster, network_comparison
from twin.real_mode import RealModeRefused

ROOT = Path(__file__).resolve().parents[2]

SCENARIO = """\
name: nodes_small
description: spread chains on 2 nodes; node 1 is SIGKILLed at 0.3 s.
seed: 5
cluster: {{nodes: 2, cpus_per_node: 1}}
workload:
  kind: chain
  chains: 4
  length: 15
  scheduling_strategy: spread
  duration_ms: {{dist: constant, value: 20}}
  output_bytes: 200000
faults:
  - {{kind: node, at_s: 0.3, node: 1}}
output: {{report_dir: {reports}}}
"""


def test_fit_maps_cpus_and_faults() -> None:
    """8 nodes x 8 CPUs on 3 nodes of a 2-CPU machine: 1 CPU each, node 6's fault on node 2."""
    fit = fit_cluster(load_scenario(ROOT / "scenarios" / "fault_node.yaml"), 3, machine_cpus=2)
    assert (fit.nodes, fit.cpus) == (3, 1)
    assert fit.scenario.cluster.nodes == 3 and fit.scenario.cluster.cpus_per_node == 1
    assert fit.scenario.workload.drivers == 1
    assert [f.node for f in fit.scenario.faults] == [2]
    assert "each node gets 1 CPU(s)" in fit.note and "node 6 hits node 2" in fit.note


@pytest.mark.parametrize(
    ("name", "nodes", "message"),
    [
        ("fault_gcs.yaml", 3, "a 'gcs' fault cannot be carried out on real nodes"),
        ("fault_node.yaml", 1, "needs --nodes 2 or more"),
        ("fault_node.yaml", 0, "a cluster has at least 1 node"),
    ],
)
def test_fit_refuses(name: str, nodes: int, message: str) -> None:
    """What real nodes cannot do is refused with the reason."""
    with pytest.raises(RealModeRefused, match=message):
        fit_cluster(load_scenario(ROOT / "scenarios" / name), nodes, machine_cpus=2)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--nodes", "2"], "--nodes and --netns run real node processes"),
        (["--mode", "real", "--netns"], "--netns needs --nodes N"),
        (["--mode", "real", "--nodes", "2", "--scale-down"], "--scale-down and --nodes are"),
    ],
)
def test_cli_refuses_option_mixes(argv: list[str], message: str, capsys) -> None:
    """--nodes/--netns only where they do something."""
    from twin.cli import main

    with pytest.raises(SystemExit) as info:
        main([str(ROOT / "scenarios" / "chain.yaml"), *argv])
    assert info.value.code == 2 and message in capsys.readouterr().err


def test_network_comparison_rows() -> None:
    """Sim vs real rows for transfer, spillback and recovery, with relative differences."""
    fit = fit_cluster(load_scenario(ROOT / "scenarios" / "fault_node.yaml"), 2, machine_cpus=2)
    real = {"network": {"transfer_s": 0.01, "spillback_s": None}, "recovery": {"recovery_s": 0.5}}
    sim = {"recovery": {"recovery_s": 0.25}}
    rows = {label.split()[0]: (s, r, d) for label, s, r, d in network_comparison(fit, real, sim)}
    s, r, d = rows["transfer"]
    # the scenario's default network: 25 us per link, 10 Gb/s; two links from node 1 to 0
    assert s == pytest.approx(2 * 25e-6 + TRANSFER_BYTES * 8 / 10e9, rel=1e-6)
    assert d == pytest.approx((s - 0.01) / 0.01)
    assert rows["spillback"][1] is None and rows["spillback"][2] is None
    assert rows["recovery"] == (0.25, 0.5, -0.5)


def test_scenario_on_two_nodes(session_root: Path, tmp_path: Path, capsys) -> None:
    """60 chained tasks spread over 2 real nodes; node 1 SIGKILLed mid-run: every task done."""
    from twin.cli import main

    path = tmp_path / "nodes_small.yaml"
    path.write_text(SCENARIO.format(reports=tmp_path / "reports"))
    argv = [str(path), "--mode", "real", "--nodes", "2", "--netns", "--no-progress"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "2 node processes x 1 CPU(s)" in out and "node 1 killed at" in out
    # as root: node 1 in a namespace; unprivileged (CI): the reason, then loopback
    used = "network namespaces: nodes 1-1 in their own" in out
    assert used or "falling back to plain loopback" in out, out
    assert not _namespaces(), "a namespace outlived the run"
    metrics = json.loads(
        (tmp_path / "reports" / "nodes_small" / "real" / "metrics.json").read_text()
    )
    assert metrics["tasks"] == 60  # a task counts when its result was read: none failed
    assert metrics["world"] == "real" and metrics["cluster"]["nodes"] == 2
    assert [f["target"] for f in metrics["faults"]] == [1]
    placed = metrics["placement"]["tasks_per_node"]
    # counted from the head's task table: a task whose FINISHED event was still batched on
    # node 1 when it was killed is not counted (its result was read all the same)
    assert len(placed) == 2 and 50 <= sum(placed) <= 60 and placed[0] > 0
    assert len(metrics["node_utilization"]["CPU"]) == 2
    assert "recovery" in metrics and metrics["kill_recovery_s"] is not None
    assert metrics["cluster"]["network"].startswith("network namespaces")


def _namespaces() -> list[str]:
    """This machine's network namespaces made by twinray (none where `ip` cannot list them)."""
    if shutil.which("ip") is None:
        return []
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True)
    return [line.split()[0] for line in listed.stdout.splitlines() if line.startswith("twinray-")]


CRASH = """
import os, signal, sys
from runtime.real import netns
try:
    spaces = netns.create(3, 1e9, 25e-6)
except netns.NetnsUnavailable as exc:
    print("unavailable:", exc, flush=True)
    sys.exit(0)
print("made:", " ".join(spaces.names), flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_namespaces_removed_after_a_crash() -> None:
    """A process SIGKILLed holding namespaces: its watchdog removes them and their veths.

    Where namespaces cannot be made (CI: unprivileged), `create` says exactly which step
    was refused instead.
    """
    done = subprocess.run(
        [sys.executable, "-c", CRASH], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    if done.stdout.startswith("unavailable:"):
        assert done.returncode == 0
        assert "not installed" in done.stdout or "not permitted here" in done.stdout
        return
    assert done.returncode == -signal.SIGKILL, done.stderr
    names = done.stdout.split("made:", 1)[1].split()
    assert len(names) == 2
    tag = names[0].split("-")[1]

    def left() -> tuple[set[str], list[str]]:
        links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
        return set(names) & set(_namespaces()), [v for v in ("trb", "trh") if v + tag in links]

    deadline = time.monotonic() + 30
    while any(left()) and time.monotonic() < deadline:
        time.sleep(0.05)  # the watchdog deletes them once its pipe closed; the kernel drops
        # a deleted namespace's veths a moment later (its cleanup is deferred)
    assert left() == (set(), [])
