"""Load, override and validate scenario YAML files into typed pydantic models."""

from __future__ import annotations

import typing
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

DEFAULT_POLICIES: tuple[str, ...] = (
    "bottom_up",
    "centralized",
    "random",
    "power_of_two",
    "locality",
)
"""Policy names accepted when neither a registry is passed nor the core's can be imported."""


def known_policies() -> tuple[str, ...]:
    """Names in the core's policy registry (imported lazily), else DEFAULT_POLICIES."""
    try:
        from runtime.core.policies import POLICIES
    except ImportError:
        return DEFAULT_POLICIES
    return tuple(POLICIES)


class ScenarioError(ValueError):
    """A scenario file could not be read or is invalid; one message line per problem."""

    def __init__(self, problems: list[str]) -> None:
        """Keep the individual problem lines and join them into the message."""
        self.problems = problems
        super().__init__("\n".join(problems))


class _Spec(BaseModel):
    """Base of every scenario section: strict types, unknown fields rejected, immutable."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


# --- distributions -------------------------------------------------------------------------


class ConstantDist(_Spec):
    """Always the same value."""

    dist: Literal["constant"]
    value: float = Field(ge=0)


class ExponentialDist(_Spec):
    """Exponential distribution with the given mean."""

    dist: Literal["exponential"]
    mean: float = Field(gt=0)


class UniformDist(_Spec):
    """Uniform distribution on [low, high]."""

    dist: Literal["uniform"]
    low: float = Field(ge=0)
    high: float = Field(ge=0)

    @model_validator(mode="after")
    def _ordered(self) -> UniformDist:
        if self.high < self.low:
            raise ValueError(f"expected high >= low, got low={self.low:g} high={self.high:g}")
        return self


class LognormalDist(_Spec):
    """Lognormal distribution; `mean` is the mean of the distribution, not of its log."""

    dist: Literal["lognormal"]
    mean: float = Field(gt=0)
    sigma: float = Field(ge=0)


class NormalDist(_Spec):
    """Normal distribution truncated at 0 (negative draws are redrawn)."""

    dist: Literal["normal"]
    mean: float = Field(ge=0)
    stddev: float = Field(ge=0)


def _bare_number_is_constant(value: Any) -> Any:
    """Accept a bare number where a distribution is expected, as a constant."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return {"dist": "constant", "value": value}
    return value


DistSpec = Annotated[
    ConstantDist | ExponentialDist | UniformDist | LognormalDist | NormalDist,
    Field(discriminator="dist"),
    BeforeValidator(_bare_number_is_constant),
]
"""A distribution spec: `{dist: <name>, ...}` or a bare number (constant)."""


# --- sections ------------------------------------------------------------------------------


class ClusterSpec(_Spec):
    """Size and per-node resources of the simulated cluster."""

    nodes: int = Field(100, ge=1)
    cpus_per_node: int = Field(32, ge=1)
    gpus_per_node: int = Field(0, ge=0)
    custom_resources: dict[str, Annotated[float, Field(ge=0)]] = Field(default_factory=dict)
    object_store_mb: float = Field(2048, gt=0)


class NetworkSpec(_Spec):
    """Network topology and link parameters (node<->switch links in a star)."""

    topology: Literal["star"] = "star"
    link_latency_us: float = Field(25, ge=0)
    link_bandwidth_gbps: float = Field(10, gt=0)
    local_latency_us: float = Field(2, ge=0)


class ControlPlaneSpec(_Spec):
    """Per-message service time of each control-plane component, in microseconds."""

    owner_us: float = Field(3, ge=0)
    raylet_us: float = Field(5, ge=0)
    global_scheduler_us: float = Field(10, ge=0)
    gcs_us: float = Field(10, ge=0)
    per_kib_us: float = Field(0.05, ge=0)
    record_task_events: bool = True
    """Raylets batch task state changes to the GCS task table (costs GCS time and memory)."""


class SchedulerSpec(_Spec):
    """Placement policy and its knobs."""

    policy: str = "bottom_up"
    spillback_threshold: int = Field(16, ge=0)
    report_interval_ms: float = Field(100, gt=0)

    @field_validator("policy")
    @classmethod
    def _known_policy(cls, value: str, info: ValidationInfo) -> str:
        known = (info.context or {}).get("policies") or DEFAULT_POLICIES
        if value not in known:
            raise PydanticCustomError(
                "unknown_policy",
                "expected one of {expected}",
                {"expected": ", ".join(repr(p) for p in sorted(known))},
            )
        return value


class _WorkloadBase(_Spec):
    """Fields shared by every workload kind."""

    drivers: int = Field(1, ge=1)
    duration_ms: DistSpec = ExponentialDist(dist="exponential", mean=1.0)
    output_bytes: DistSpec = ConstantDist(dist="constant", value=0.0)
    num_cpus: float = Field(1.0, gt=0)


class IndependentWorkload(_WorkloadBase):
    """`tasks` independent tasks submitted by `drivers` drivers, each with a window."""

    kind: Literal["independent"]
    tasks: int = Field(1000, ge=1)
    window: int = Field(1000, ge=1)


class ChainWorkload(_WorkloadBase):
    """`chains` chains of `length` dependent tasks, given to drivers round robin."""

    kind: Literal["chain"]
    length: int = Field(10, ge=1)
    chains: int = Field(1, ge=1)


WorkloadSpec = Annotated[IndependentWorkload | ChainWorkload, Field(discriminator="kind")]
"""A workload spec, discriminated on `kind`."""


class OutputSpec(_Spec):
    """Where and how results are reported."""

    report_dir: str = "reports"
    progress: bool = True


class Scenario(_Spec):
    """A complete, validated scenario."""

    name: str = Field(pattern=r"^[a-z0-9_-]+$")
    description: str = ""
    seed: int = 42
    cluster: ClusterSpec = ClusterSpec()
    network: NetworkSpec = NetworkSpec()
    control_plane: ControlPlaneSpec = ControlPlaneSpec()
    scheduler: SchedulerSpec = SchedulerSpec()
    workload: WorkloadSpec = IndependentWorkload(kind="independent")
    output: OutputSpec = OutputSpec()


def scenario_json_schema() -> dict[str, Any]:
    """Return the JSON schema of scenario files (for editors and docs)."""
    return Scenario.model_json_schema()


# --- error formatting ----------------------------------------------------------------------


def _fmt(value: Any) -> str:
    """Render a bound or an offending value compactly."""
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, str):
        return repr(value)
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


_BOUNDS: dict[str, tuple[str, str]] = {
    "greater_than": ("gt", ">"),
    "greater_than_equal": ("ge", ">="),
    "less_than": ("lt", "<"),
    "less_than_equal": ("le", "<="),
}

_EXPECTATIONS: dict[str, Callable[[dict[str, Any]], str]] = {
    "int_type": lambda c: "expected an integer",
    "int_parsing": lambda c: "expected an integer",
    "int_from_float": lambda c: "expected an integer",
    "float_type": lambda c: "expected a number",
    "float_parsing": lambda c: "expected a number",
    "finite_number": lambda c: "expected a finite number",
    "string_type": lambda c: "expected a string",
    "bool_type": lambda c: "expected true or false",
    "dict_type": lambda c: "expected a mapping",
    "model_type": lambda c: "expected a mapping",
    "model_attributes_type": lambda c: "expected a mapping",
    "literal_error": lambda c: f"expected one of {c['expected']}",
    "string_pattern_mismatch": lambda c: f"expected a string matching {c['pattern']}",
    "unknown_policy": lambda c: f"expected one of {c['expected']}",
    "union_tag_invalid": lambda c: f"expected one of {c['expected_tags']}",
}


def _child(node: Any, key: Any) -> tuple[bool, Any]:
    """Step into a raw YAML container; (found, child)."""
    if isinstance(node, dict) and key in node:
        return True, node[key]
    if isinstance(node, list) and isinstance(key, int) and 0 <= key < len(node):
        return True, node[key]
    return False, None


def _user_path(
    loc: tuple[Any, ...], raw: Any, leaf_may_be_absent: bool
) -> tuple[list[str], Any, bool]:
    """Map a pydantic error location onto the user's field path in the raw data.

    Union tags that pydantic inserts into locations (e.g. `independent`) are not keys of
    the raw data and are dropped; when the raw data holds a scalar where pydantic went on
    (a bare number as a distribution), the path stops there. Returns (path, raw value at
    path, whether the value exists).
    """
    path: list[str] = []
    node, found = raw, True
    for i, key in enumerate(loc):
        hit, child = _child(node, key)
        if hit:
            path.append(str(key))
            node = child
        elif leaf_may_be_absent and i == len(loc) - 1:
            path.append(str(key))
            found = False
        elif not isinstance(node, dict | list):
            break
    return path, node, found


def _allowed_fields(loc_path: list[str], raw: Any) -> list[str]:
    """Names of the fields allowed at the model holding the last element of `loc_path`."""
    model = _model_at(loc_path[:-1], raw)
    return sorted(model.model_fields) if model is not None else []


_TAGS = ("kind", "dist")


def _union_member(annotation: Any, raw: Any) -> type[BaseModel] | None:
    """Pick the member of a discriminated union of models matching the raw data's tag."""
    for member in typing.get_args(annotation):
        if not (isinstance(member, type) and issubclass(member, BaseModel)):
            continue
        for tag in _TAGS:
            field = member.model_fields.get(tag)
            if (
                field
                and isinstance(raw, dict)
                and raw.get(tag) in typing.get_args(field.annotation)
            ):
                return member
    return None


def _model_at(path: Iterable[str], raw: Any) -> type[BaseModel] | None:
    """The model class that validates the mapping at `path`, or None (dict or scalar)."""
    model: type[BaseModel] | None = Scenario
    node = raw
    for key in path:
        if model is None or key not in model.model_fields:
            return None
        field = model.model_fields[key]
        annotation = field.annotation
        node = node.get(key) if isinstance(node, dict) else None
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            model = annotation
        else:
            model = _union_member(annotation, node)
            if model is None and isinstance(field.default, BaseModel):
                tags = [t for t in _TAGS if t in type(field.default).model_fields]
                if node is None or (isinstance(node, dict) and not any(t in node for t in tags)):
                    model = type(field.default)
    return model


def _describe(error: Mapping[str, Any], raw: Any) -> str:
    """One `field.path: expected ..., got ...` line for a pydantic error."""
    kind = error["type"]
    ctx = error.get("ctx") or {}
    path, value, found = _user_path(tuple(error["loc"]), raw, kind == "missing")
    if kind == "extra_forbidden":
        allowed = _allowed_fields(path, raw)
        text = f"unknown field; expected one of: {', '.join(allowed)}"
        return f"{'.'.join(path)}: {text}"
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        path.append(str(ctx.get("discriminator", "")).strip("'"))
        if kind == "union_tag_not_found":
            member_names = _tags_at(path, raw)
            return f"{'.'.join(path)}: missing; expected one of {member_names}"
        return f"{'.'.join(path)}: expected one of {ctx['expected_tags']}, got {_fmt(ctx['tag'])}"
    if kind == "missing":
        return f"{'.'.join(path) or '<top>'}: missing required field"
    if kind == "value_error":
        return f"{'.'.join(path) or '<top>'}: {ctx.get('error', error['msg'])}"
    if kind in _BOUNDS:
        bound = ctx[_BOUNDS[kind][0]]
        noun = "an integer" if isinstance(bound, int) else "a number"
        text = f"expected {noun} {_BOUNDS[kind][1]} {_fmt(bound)}"
    else:
        render = _EXPECTATIONS.get(kind)
        text = render(ctx) if render else f"expected valid input ({error['msg']})"
    if found:
        text += f", got {_fmt(value)}"
    return f"{'.'.join(path) or '<top>'}: {text}"


def _tags_at(path: list[str], raw: Any) -> str:
    """Allowed tags of the union field whose tag is missing at `path` (ends with the tag)."""
    parent = _model_at(path[:-2], raw)
    if parent is None or path[-2] not in parent.model_fields:
        return "?"
    tags: list[str] = []
    for member in typing.get_args(parent.model_fields[path[-2]].annotation):
        field = getattr(member, "model_fields", {}).get(path[-1])
        if field is not None:
            tags.extend(repr(t) for t in typing.get_args(field.annotation))
    return ", ".join(tags)


def _cross_checks(scenario: Scenario, policies: tuple[str, ...]) -> list[str]:
    """Constraints that span sections; each problem as a `field: expected ...` line."""
    problems = []
    if scenario.scheduler.policy not in policies:  # a defaulted policy skips the validator
        expected = ", ".join(repr(p) for p in sorted(policies))
        problems.append(
            f"scheduler.policy: expected one of {expected}, got {scenario.scheduler.policy!r}"
        )
    workload, cluster = scenario.workload, scenario.cluster
    if workload.drivers > cluster.nodes:
        problems.append(
            f"workload.drivers: expected an integer <= cluster.nodes ({cluster.nodes}),"
            f" got {workload.drivers}"
        )
    if workload.num_cpus > cluster.cpus_per_node:
        problems.append(
            f"workload.num_cpus: expected a number <= cluster.cpus_per_node"
            f" ({cluster.cpus_per_node}) so tasks are feasible, got {_fmt(workload.num_cpus)}"
        )
    return problems


# --- overrides -----------------------------------------------------------------------------


def _check_override_path(dotted: str, raw: dict[str, Any]) -> str | None:
    """Return a problem text if `dotted` names no field of the schema, else None."""
    parts = dotted.split(".")
    if not all(parts):
        return f"--set {dotted}: expected a dotted field path like cluster.nodes"
    model: type[BaseModel] | None = Scenario
    for depth, key in enumerate(parts):
        if model is None:
            # inside a free-form mapping (custom_resources): any key is a valid path
            if depth > 0 and _is_mapping_field(parts[:depth], raw):
                return None
            return f"--set {dotted}: unknown field {'.'.join(parts[: depth + 1])!r}"
        if key not in model.model_fields:
            allowed = ", ".join(sorted(model.model_fields))
            prefix = ".".join(parts[: depth + 1])
            return f"--set {dotted}: unknown field {prefix!r}; expected one of: {allowed}"
        model = _model_at(parts[: depth + 1], raw)
    return None


def _is_mapping_field(path: list[str], raw: Any) -> bool:
    """Whether `path` names a `dict[...]`-typed field (free-form keys below it)."""
    parent = _model_at(path[:-1], raw)
    if parent is None or path[-1] not in parent.model_fields:
        return False
    return typing.get_origin(parent.model_fields[path[-1]].annotation) is dict


def _default_tags(path: list[str], raw: Any) -> dict[str, Any]:
    """A fresh mapping for `path`, holding the union tag of the field's default if any."""
    parent = _model_at(path[:-1], raw)
    field = parent.model_fields.get(path[-1]) if parent is not None else None
    default = field.default if field is not None else None
    if not isinstance(default, BaseModel):
        return {}
    return {t: getattr(default, t) for t in _TAGS if t in type(default).model_fields}


def apply_overrides(raw: dict[str, Any], overrides: Mapping[str, str]) -> list[str]:
    """Set dotted-path overrides (values parsed as YAML) into `raw`; return problem texts."""
    problems = []
    for dotted, text in overrides.items():
        problem = _check_override_path(dotted, raw)
        if problem is None:
            try:
                value = yaml.safe_load(text) if isinstance(text, str) else text
            except yaml.YAMLError as exc:
                problem = f"--set {dotted}: value is not valid YAML: {exc}".replace("\n", " ")
        if problem is not None:
            problems.append(problem)
            continue
        node = raw
        *parents, leaf = dotted.split(".")
        for depth, key in enumerate(parents):
            if not isinstance(node.get(key), dict):
                node[key] = _default_tags(parents[: depth + 1], raw)
            node = node[key]
        node[leaf] = value
    return problems


# --- loading -------------------------------------------------------------------------------


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
        lines = [f"{source}: {_describe(err, raw)}" for err in exc.errors()]
        raise ScenarioError(lines) from None
    problems = _cross_checks(scenario, known)
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
    return validate_scenario(raw, str(path), policies)
