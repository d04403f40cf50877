"""Read a scenario file, apply overrides and a calibration profile, validate, cross-check."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from sim.profile import apply_profile
from sim.scenario.checks import cross_checks
from sim.scenario.errors import ScenarioError, describe
from sim.scenario.models import Scenario, known_policies
from sim.scenario.overrides import apply_overrides


def _read_yaml(path: Path) -> Any:
    """Parse the YAML file, turning I/O and syntax errors into a ScenarioError."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ScenarioError([f"{path}: cannot read scenario file: {exc.strerror or exc}"]) from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        problem = getattr(exc, "problem", None) or str(exc)
        raise ScenarioError([f"{where}: YAML syntax error: {problem}"]) from None


def validate_scenario(
    raw: Any, source: str = "<scenario>", policies: Iterable[str] | None = None
) -> Scenario:
    """Validate raw (already parsed) scenario data; raise ScenarioError listing all problems."""
    if not isinstance(raw, dict):
        got = "an empty file" if raw is None else type(raw).__name__
        raise ScenarioError([f"{source}: <top>: expected a mapping of sections, got {got}"])
    known = tuple(policies) if policies is not None else known_policies()
    context = {"policies": known}
    try:
        scenario = Scenario.model_validate(raw, context=context)
    except ValidationError as exc:
        lines = [f"{source}: {describe(err, raw)}" for err in exc.errors()]
        raise ScenarioError(lines) from None
    problems = cross_checks(scenario, known)
    if problems:
        raise ScenarioError([f"{source}: {p}" for p in problems])
    return scenario


def load_scenario(
    path: str | Path,
    overrides: Mapping[str, str] | None = None,
    policies: Iterable[str] | None = None,
) -> Scenario:
    """Read a scenario YAML file, apply `overrides` (dotted path -> YAML text) and validate.

    `policies` is the registry of scheduling policy names to accept (default: the core's
    registry, see `known_policies`). Raises ScenarioError naming the file, field and expectation.
    """
    path = Path(path)
    raw = _read_yaml(path)
    if overrides and isinstance(raw, dict):
        problems = apply_overrides(raw, overrides)
        if problems:
            raise ScenarioError([f"{path}: {p}" for p in problems])
    workload = raw.get("workload") if isinstance(raw, dict) else None
    if isinstance(workload, dict) and isinstance(workload.get("file"), str):
        graph = Path(workload["file"])
        if not graph.is_absolute():  # relative to the scenario's folder
            workload["file"] = str(path.parent / graph)
    if isinstance(workload, dict) and isinstance(workload.get("timing_profile"), str):
        profile = Path(workload["timing_profile"])
        if not profile.is_absolute():  # relative to the scenario's folder
            workload["timing_profile"] = str(path.parent / profile)
    if isinstance(raw, dict):
        problems = apply_profile(raw, path)
        if problems:
            raise ScenarioError([f"{path}: {p}" for p in problems])
    return validate_scenario(raw, str(path), policies)
