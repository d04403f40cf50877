"""Tests for scenario loading, validation messages and overrides."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from sim.scenario import (
    ChainWorkload,
    ExponentialDist,
    IndependentWorkload,
    LognormalDist,
    Scenario,
    ScenarioError,
    load_scenario,
    scenario_json_schema,
    validate_scenario,
)

GOOD = """\
name: tiny
seed: 7
cluster: {nodes: 4, cpus_per_node: 2}
workload:
  kind: independent
  tasks: 100
  drivers: 2
  duration_ms: {dist: exponential, mean: 1}
  output_bytes: 10
"""


def write(tmp_path: Path, text: str, name: str = "x.yaml") -> Path:
    """Write a scenario file and return its path."""
    path = tmp_path / name
    path.write_text(text)
    return path


def problems(path: Path, overrides: dict[str, str] | None = None) -> str:
    """Load a scenario expected to be invalid; return the error message."""
    with pytest.raises(ScenarioError) as info:
        load_scenario(path, overrides)
    return str(info.value)


def test_good_scenario_loads_with_defaults(tmp_path: Path) -> None:
    scenario = load_scenario(write(tmp_path, GOOD))
    assert isinstance(scenario, Scenario)
    assert scenario.cluster.nodes == 4
    assert scenario.network.topology == "star"
    assert scenario.scheduler.policy == "bottom_up"
    assert isinstance(scenario.workload, IndependentWorkload)
    assert isinstance(scenario.workload.duration_ms, ExponentialDist)
    assert scenario.workload.output_bytes.value == 10.0
    assert scenario.workload.window == 1000


def test_scenario_error_is_value_error() -> None:
    assert issubclass(ScenarioError, ValueError)


@pytest.mark.parametrize(
    ("text", "field", "expected"),
    [
        (GOOD + "  bogus: 1\n", "workload.bogus", "unknown field; expected one of: drivers"),
        (GOOD + "colour: red\n", "colour", "unknown field; expected one of: cluster"),
        (GOOD.replace("nodes: 4", "nodes: four"), "cluster.nodes", "expected an integer"),
        (GOOD.replace("nodes: 4", "nodes: 0"), "cluster.nodes", "expected an integer >= 1"),
        (
            GOOD.replace("mean: 1", "mean: -1"),
            "workload.duration_ms.mean",
            "expected a number > 0, got -1",
        ),
        (GOOD.replace("output_bytes: 10", "output_bytes: -3"), "workload.output_bytes", ">= 0"),
        (GOOD + "scheduler: {policy: magic}\n", "scheduler.policy", "expected one of 'bottom_up'"),
        (
            GOOD.replace("kind: independent", "kind: forest"),
            "workload.kind",
            "'independent', 'chain', 'tree'",
        ),
        (GOOD.replace("kind: independent", ""), "workload.kind", "missing; expected one of"),
        (GOOD.replace("name: tiny", "name: Tiny Name"), "name", "expected a string matching"),
        (GOOD.replace("drivers: 2", "drivers: 9"), "workload.drivers", "<= cluster.nodes (4)"),
        (GOOD + "network: {topology: ring}\n", "network.topology", "expected one of 'star'"),
        (GOOD.replace("seed: 7", "seed: 1.5"), "seed", "expected an integer, got 1.5"),
        (
            GOOD.replace("{dist: exponential, mean: 1}", "{dist: uniform, low: 3, high: 1}"),
            "workload.duration_ms",
            "expected high >= low",
        ),
        (GOOD.replace("name: tiny\n", ""), "name", "missing required field"),
    ],
)
def test_invalid_field_names_file_field_and_expectation(
    tmp_path: Path, text: str, field: str, expected: str
) -> None:
    path = write(tmp_path, text)
    message = problems(path)
    line = next((ln for ln in message.splitlines() if f": {field}: " in ln), None)
    assert line is not None, message
    assert line.startswith(f"{path}: {field}: ")
    assert expected in line


def test_all_problems_are_listed_one_per_line(tmp_path: Path) -> None:
    text = GOOD.replace("nodes: 4", "nodes: -1").replace("mean: 1", "mean: 0") + "extra: 1\n"
    message = problems(write(tmp_path, text))
    lines = message.splitlines()
    assert len(lines) == 3
    assert any("cluster.nodes" in ln for ln in lines)
    assert any("workload.duration_ms.mean" in ln for ln in lines)
    assert any("extra: unknown field" in ln for ln in lines)


def test_yaml_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, "name: x\ncluster:\n  nodes: [1\n  bad: 2\n")
    message = problems(path)
    assert message.startswith(f"{path}:4:")
    assert "YAML syntax error" in message


@pytest.mark.parametrize(("text", "got"), [("- 1\n- 2\n", "list"), ("", "an empty file")])
def test_top_level_must_be_a_mapping(tmp_path: Path, text: str, got: str) -> None:
    path = write(tmp_path, text)
    message = problems(path)
    assert message.startswith(f"{path}: ")
    assert "expected a mapping" in message and got in message


def test_missing_file_is_a_scenario_error(tmp_path: Path) -> None:
    message = problems(tmp_path / "nope.yaml")
    assert "nope.yaml" in message and "cannot read" in message


def test_overrides_are_parsed_as_yaml(tmp_path: Path) -> None:
    scenario = load_scenario(
        write(tmp_path, GOOD),
        {
            "cluster.nodes": "50",
            "scheduler.spillback_threshold": "3",
            "cluster.custom_resources.tpu": "2",
            "workload.duration_ms": "{dist: lognormal, mean: 2, sigma: 0.5}",
            "output.progress": "false",
        },
    )
    assert scenario.cluster.nodes == 50
    assert scenario.scheduler.spillback_threshold == 3
    assert scenario.cluster.custom_resources == {"tpu": 2.0}
    assert isinstance(scenario.workload.duration_ms, LognormalDist)
    assert scenario.output.progress is False


def test_override_of_absent_section_uses_default_kind(tmp_path: Path) -> None:
    scenario = load_scenario(write(tmp_path, "name: bare\n"), {"workload.tasks": "7"})
    assert isinstance(scenario.workload, IndependentWorkload)
    assert scenario.workload.tasks == 7


def test_override_can_switch_workload_kind(tmp_path: Path) -> None:
    scenario = load_scenario(
        write(tmp_path, "name: bare\n"), {"workload.kind": "chain", "workload.length": "5"}
    )
    assert isinstance(scenario.workload, ChainWorkload)
    assert scenario.workload.length == 5


@pytest.mark.parametrize(
    ("override", "named"),
    [
        ("cluster.nodez", "'cluster.nodez'"),
        ("nope", "'nope'"),
        ("workload.length", "'workload.length'"),
        ("cluster.nodes.deeper", "'cluster.nodes.deeper'"),
    ],
)
def test_unknown_override_path_is_an_error(tmp_path: Path, override: str, named: str) -> None:
    path = write(tmp_path, GOOD)
    message = problems(path, {override: "1"})
    assert message.startswith(f"{path}: --set {override}: unknown field {named}")


def test_override_value_is_validated(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD)
    message = problems(path, {"cluster.nodes": "-5"})
    assert f"{path}: cluster.nodes: expected an integer >= 1, got -5" in message


def test_policy_registry_can_be_passed(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD + "scheduler: {policy: mine}\n")
    assert load_scenario(path, policies=["mine"]).scheduler.policy == "mine"
    with pytest.raises(ScenarioError, match="scheduler.policy: expected one of 'mine'"):
        load_scenario(write(tmp_path, GOOD, "y.yaml"), policies=["mine"])


def test_json_schema_forbids_extra_fields() -> None:
    schema = scenario_json_schema()
    assert schema["additionalProperties"] is False
    assert "name" in schema["required"]
    assert schema["$defs"]["ClusterSpec"]["additionalProperties"] is False


# --- node groups, resource requests, topologies -------------------------------------------


def _validate(raw_text: str) -> Any:
    return validate_scenario(yaml.safe_load(raw_text), "x.yaml")


HETERO_TEXT = """
name: h
cluster:
  groups:
    - {name: cpu, count: 3, cpus: 16}
    - {name: gpu, count: 2, cpus: 8, gpus: 4, custom_resources: {nvlink: 2}}
workload: {kind: independent, tasks: 10, num_gpus: 1}
"""


def test_node_groups_set_the_node_count_and_resources() -> None:
    scenario = _validate(HETERO_TEXT)
    assert scenario.cluster.nodes == 5
    groups = scenario.cluster.node_groups()
    assert [g.resources() for g in groups] == [
        {"CPU": 16.0},
        {"CPU": 8.0, "GPU": 4.0, "nvlink": 2.0},
    ]


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ("num_gpus: 1", "workload.num_gpus: expected a request some node group can satisfy"),
        ("num_gpus: 1, resources: {tpu: 1}", "workload.resources.tpu: expected a request"),
        ("num_cpus: 64", "no node has 64 CPU"),
    ],
)
def test_impossible_resource_requests_are_rejected(change: str, expected: str) -> None:
    text = HETERO_TEXT.replace("num_gpus: 1", change).replace("gpus: 4", "gpus: 0")
    if "tpu" in change or "num_cpus" in change:
        text = HETERO_TEXT.replace("num_gpus: 1", change)
    with pytest.raises(ScenarioError) as info:
        _validate(text)
    assert expected in str(info.value)
    assert str(info.value).startswith("x.yaml: ")


def test_a_request_split_across_groups_is_rejected() -> None:
    text = HETERO_TEXT.replace("num_gpus: 1", "num_gpus: 1, num_cpus: 12")
    with pytest.raises(ScenarioError, match="no single node has all of it"):
        _validate(text)


def test_groups_conflicting_with_nodes_are_rejected() -> None:
    with pytest.raises(ScenarioError, match="cluster: expected nodes to be left out"):
        _validate(HETERO_TEXT.replace("  groups:", "  nodes: 4\n  groups:"))


@pytest.mark.parametrize(
    ("network", "expected"),
    [
        ("{topology: fat_tree, fat_tree_k: 2}", "network.fat_tree_k: fat_tree(k=2) has 2 hosts"),
        ("{topology: edges}", "network.edges: expected a non-empty list"),
        (
            "{topology: edges, edges: [{a: 0, b: s, latency_us: 1, bandwidth_gbps: 1}]}",
            "network.edges: compute nodes without any edge",
        ),
    ],
)
def test_bad_topologies_are_rejected(network: str, expected: str) -> None:
    with pytest.raises(ScenarioError) as info:
        _validate(HETERO_TEXT + f"network: {network}\n")
    assert expected in str(info.value)


@pytest.mark.parametrize(
    "network",
    [
        "{topology: two_tier, nodes_per_rack: 2, oversubscription: 2}",
        "{topology: fat_tree}",
        "{topology: edges, edges: [{a: 0, b: s, latency_us: 1, bandwidth_gbps: 1},"
        " {a: 1, b: s, latency_us: 1, bandwidth_gbps: 1}, {a: 2, b: s, latency_us: 1,"
        " bandwidth_gbps: 1}, {a: 3, b: 0, latency_us: 5, bandwidth_gbps: 1},"
        " {a: 4, b: 1, latency_us: 5, bandwidth_gbps: 1}]}",
    ],
)
def test_every_topology_runs_a_shuffle(network: str) -> None:
    from sim.runner import run_scenario

    text = HETERO_TEXT.replace(
        "workload: {kind: independent, tasks: 10, num_gpus: 1}",
        "workload: {kind: shuffle, maps: 4, reduces: 4, output_bytes: 1000000}",
    )
    metrics = run_scenario(_validate(text + f"network: {network}\noutput: {{progress: false}}\n"))
    assert metrics["tasks"] == 8


def test_overrides_reach_into_list_items() -> None:
    root = Path(__file__).resolve().parents[2] / "scenarios"
    scenario = load_scenario(root / "fault_node.yaml", {"faults.0.at_s": "0.5"})
    assert scenario.faults[0].at_s == 0.5
    graph = load_scenario(root / "graph.yaml", {"cluster.groups.1.count": "5"})
    assert graph.cluster.nodes == 9
    with pytest.raises(ScenarioError, match=r"--set faults.3.at_s: no item 3 in faults \(has 1\)"):
        load_scenario(root / "fault_node.yaml", {"faults.3.at_s": "1"})
    with pytest.raises(ScenarioError, match="faults.0.when: unknown field"):
        load_scenario(root / "fault_node.yaml", {"faults.0.when": "1"})
