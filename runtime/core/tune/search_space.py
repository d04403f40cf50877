"""Search-space domains (Ray Tune's names) and variant generation, drawing from an injected Rng."""

from __future__ import annotations

import copy
import inspect
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from runtime.core.rng import Rng
from runtime.core.tune.errors import SearchSpaceError

#: How many passes variant resolution makes over ``sample_from`` values that depend on
#: values not yet resolved before it gives up (Ray's ``_MAX_RESOLUTION_PASSES``).
MAX_RESOLUTION_PASSES = 20

Path = tuple[Any, ...]


def _need_rng(rng: Rng | None, domain: Domain) -> Rng:
    if rng is None:
        raise SearchSpaceError(f"{domain!r} draws random values: pass an rng (random.Random(seed))")
    return rng


def _uniform(rng: Rng, lower: float, upper: float) -> float:
    return lower + (upper - lower) * rng.random()


def _check_bounds(name: str, lower: float, upper: float) -> None:
    if not (math.isfinite(lower) and math.isfinite(upper)):
        raise SearchSpaceError(f"{name} needs finite bounds, got lower={lower}, upper={upper}")
    if lower > upper:
        raise SearchSpaceError(f"{name} needs lower <= upper, got lower={lower}, upper={upper}")


class Domain:
    """A value to draw per trial; ``sample(config, rng)`` draws one (config: the spec so far)."""

    def sample(self, config: dict[str, Any], rng: Rng | None) -> Any:
        """Draw one value; ``config`` is the partly resolved config (for ``sample_from``)."""
        raise NotImplementedError


@dataclass(frozen=True)
class Uniform(Domain):
    """A float drawn uniformly from [lower, upper) (``tune.uniform``)."""

    lower: float
    upper: float

    def __post_init__(self) -> None:
        _check_bounds("uniform", self.lower, self.upper)

    def sample(self, config: dict[str, Any], rng: Rng | None) -> float:
        """Draw a float in [lower, upper)."""
        return float(_uniform(_need_rng(rng, self), self.lower, self.upper))


def _grid_index(bound: float, q: float, round_fn: Callable[[float], float]) -> float:
    """``bound``'s index on the grid of multiples of ``q``, rounded inwards (as Ray does)."""
    scaled = bound / q
    nearest = round(scaled)
    if math.isclose(scaled, nearest):
        return float(nearest)
    return float(round_fn(scaled))


@dataclass(frozen=True)
class QUniform(Domain):
    """A float drawn uniformly, rounded to a multiple of ``q`` (``tune.quniform``)."""

    lower: float
    upper: float
    q: float

    def __post_init__(self) -> None:
        _check_bounds("quniform", self.lower, self.upper)
        _check_divisible("quniform", self.lower, self.upper, self.q)

    def sample(self, config: dict[str, Any], rng: Rng | None) -> float:
        """Draw uniformly between the bounds snapped to the grid, then round to a multiple of q."""
        lower = _grid_index(self.lower, self.q, math.ceil) * self.q
        upper = _grid_index(self.upper, self.q, math.floor) * self.q
        value = _uniform(_need_rng(rng, self), lower, upper)
        return float(round(value / self.q) * self.q)


@dataclass(frozen=True)
class LogUniform(Domain):
    """A float whose log is uniform on [log lower, log upper) (``tune.loguniform``)."""

    lower: float
    upper: float

    def __post_init__(self) -> None:
        _check_bounds("loguniform", self.lower, self.upper)
        if not self.lower > 0:
            raise SearchSpaceError(
                f"loguniform needs a lower bound greater than 0, got {self.lower}"
            )

    def sample(self, config: dict[str, Any], rng: Rng | None) -> float:
        """Draw exp(uniform(log lower, log upper))."""
        log_value = _uniform(_need_rng(rng, self), math.log(self.lower), math.log(self.upper))
        return float(math.exp(log_value))


@dataclass(frozen=True)
class RandInt(Domain):
    """An int drawn uniformly from [lower, upper): upper is exclusive (``tune.randint``)."""

    lower: int
    upper: int

    def __post_init__(self) -> None:
        if not (isinstance(self.lower, int) and isinstance(self.upper, int)):
            raise SearchSpaceError(
                f"randint needs int bounds, got lower={self.lower!r}, upper={self.upper!r}"
            )
        if self.lower >= self.upper:
            raise SearchSpaceError(
                f"randint needs lower < upper (upper is exclusive), got "
                f"lower={self.lower}, upper={self.upper}"
            )

    def sample(self, config: dict[str, Any], rng: Rng | None) -> int:
        """Draw an int in [lower, upper)."""
        span = self.upper - self.lower
        return self.lower + min(int(_need_rng(rng, self).random() * span), span - 1)


@dataclass(frozen=True)
class RandN(Domain):
    """A float drawn from the normal distribution N(mean, sd) (``tune.randn``)."""

    mean: float = 0.0
    sd: float = 1.0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.mean) and math.isfinite(self.sd) and self.sd >= 0):
            raise SearchSpaceError(
                f"randn needs a finite mean and sd >= 0, got mean={self.mean}, sd={self.sd}"
            )

    def sample(self, config: dict[str, Any], rng: Rng | None) -> float:
        """Draw by the Box-Muller transform from two uniform draws."""
        source = _need_rng(rng, self)
        u1 = 1.0 - source.random()  # in (0, 1]: log(u1) is finite
        u2 = source.random()
        z = math.sqrt(-2.0 * math.log(u1)) * math.cos(2.0 * math.pi * u2)
        return float(self.mean + self.sd * z)


@dataclass(frozen=True)
class Choice(Domain):
    """One of ``categories``, each equally likely (``tune.choice``)."""

    categories: tuple[Any, ...]

    def __post_init__(self) -> None:
        if not self.categories:
            raise SearchSpaceError("choice needs at least one category, got none")

    def sample(self, config: dict[str, Any], rng: Rng | None) -> Any:
        """Draw one category."""
        count = len(self.categories)
        return self.categories[min(int(_need_rng(rng, self).random() * count), count - 1)]


def _check_divisible(name: str, lower: float, upper: float, q: float) -> None:
    if not q > 0:
        raise SearchSpaceError(f"{name} needs q > 0, got q={q}")
    for which, bound in (("lower", lower), ("upper", upper)):
        if not math.isclose(bound / q, round(bound / q)):
            raise SearchSpaceError(
                f"Your {which} variable bound {bound} is not divisible by quantization factor {q}."
            )


@dataclass(frozen=True)
class QLogUniform(Domain):
    """A log-uniform float rounded to a multiple of ``q`` (``tune.qloguniform``)."""

    lower: float
    upper: float
    q: float

    def __post_init__(self) -> None:
        _check_bounds("qloguniform", self.lower, self.upper)
        _check_divisible("qloguniform", self.lower, self.upper, self.q)
        if not self.lower > 0:
            raise SearchSpaceError(
                f"qloguniform needs a lower bound greater than 0, got {self.lower}"
            )

    def sample(self, config: dict[str, Any], rng: Rng | None) -> float:
        """Draw log-uniformly between the grid-snapped bounds, round to a multiple of q."""
        lower = _grid_index(self.lower, self.q, math.ceil) * self.q
        upper = _grid_index(self.upper, self.q, math.floor) * self.q
        value = math.exp(_uniform(_need_rng(rng, self), math.log(lower), math.log(upper)))
        return float(round(value / self.q) * self.q)


@dataclass(frozen=True)
class LogRandInt(Domain):
    """An int drawn log-uniformly from [lower, upper), upper exclusive (``tune.lograndint``)."""

    lower: int
    upper: int

    def __post_init__(self) -> None:
        if not (isinstance(self.lower, int) and isinstance(self.upper, int)):
            raise SearchSpaceError(
                f"lograndint needs int bounds, got lower={self.lower!r}, upper={self.upper!r}"
            )
        if not 0 < self.lower < self.upper:
            raise SearchSpaceError(
                f"lograndint needs 0 < lower < upper, got lower={self.lower}, upper={self.upper}"
            )

    def sample(self, config: dict[str, Any], rng: Rng | None) -> int:
        """Draw floor(exp(uniform(log lower, log upper)))."""
        value = math.exp(_uniform(_need_rng(rng, self), math.log(self.lower), math.log(self.upper)))
        return min(math.floor(value), self.upper - 1)


@dataclass(frozen=True)
class QRandInt(Domain):
    """A multiple of ``q`` in [lower, upper], drawn uniformly or log-uniformly.

    ``tune.qrandint`` / ``tune.qlograndint``: ``upper`` is inclusive except for ``q=1``,
    where it is exclusive (Ray's rule).
    """

    lower: int
    upper: int
    q: int = 1
    log: bool = False

    def _indices(self) -> tuple[int, int]:
        low = int(_grid_index(self.lower, self.q, math.ceil))
        high = int(_grid_index(self.upper, self.q, math.floor))
        return low, high + (0 if self.q == 1 else 1)

    def __post_init__(self) -> None:
        name = "qlograndint" if self.log else "qrandint"
        if not all(isinstance(v, int) for v in (self.lower, self.upper, self.q)):
            raise SearchSpaceError(
                f"{name} needs int lower, upper and q, got {self.lower!r}, {self.upper!r}, "
                f"{self.q!r}"
            )
        if self.q < 1:
            raise SearchSpaceError(f"{name} needs q >= 1, got q={self.q}")
        low, high = self._indices()
        if high <= low:
            raise SearchSpaceError(
                f"There is no multiple of the quantization factor q={self.q} between the "
                f"bounds {self.lower} and {self.upper} of this domain, so it has no values "
                "to sample."
            )
        if self.log and low <= 0:
            raise SearchSpaceError(f"{name} needs a lower bound greater than 0, got {self.lower}")

    def sample(self, config: dict[str, Any], rng: Rng | None) -> int:
        """Draw a grid index in the snapped bounds, return index * q."""
        low, high = self._indices()
        source = _need_rng(rng, self)
        if self.log:
            index = min(
                math.floor(math.exp(_uniform(source, math.log(low), math.log(high)))), high - 1
            )
        else:
            index = low + min(int(source.random() * (high - low)), high - low - 1)
        return int(index * self.q)


@dataclass(frozen=True)
class QRandN(Domain):
    """A normal draw rounded to a multiple of ``q`` (``tune.qrandn``)."""

    mean: float
    sd: float
    q: float

    def __post_init__(self) -> None:
        RandN(self.mean, self.sd)  # the same checks on mean and sd
        if not self.q > 0:
            raise SearchSpaceError(f"qrandn needs q > 0, got q={self.q}")

    def sample(self, config: dict[str, Any], rng: Rng | None) -> float:
        """Draw N(mean, sd), round to a multiple of q."""
        value = RandN(self.mean, self.sd).sample(config, rng)
        return float(round(value / self.q) * self.q)


class _Unresolved(Exception):
    """A ``sample_from`` function read a value that is not resolved yet: retry next pass."""


def _is_unresolved(value: Any) -> bool:
    return isinstance(value, Domain) or _is_grid(value)


class _ResolvedView(dict[Any, Any]):
    """The config as a ``sample_from`` function sees it: keys or attributes (``spec.config.x``).

    Reading a value that is still a domain raises ``_Unresolved`` so resolution retries it
    after the values it depends on are drawn.
    """

    def _wrap(self, key: Any, value: Any) -> Any:
        if _is_unresolved(value):
            raise _Unresolved(f"{key!r} is not resolved yet")
        return _ResolvedView(value) if isinstance(value, dict) else value

    def __getitem__(self, key: Any) -> Any:
        return self._wrap(key, dict.__getitem__(self, key))

    def __getattr__(self, key: str) -> Any:
        if key not in self:
            raise AttributeError(key)
        return self[key]


def _takes_config(func: Callable[..., Any]) -> bool:
    signature = inspect.signature(func)
    try:
        signature.bind({})
        return True
    except TypeError:
        pass
    try:
        signature.bind()
    except TypeError as exc:
        raise SearchSpaceError(
            "The function passed to sample_from must be callable with either 0 or 1 parameters."
        ) from exc
    return False


@dataclass(frozen=True)
class SampleFrom(Domain):
    """A value computed by ``func`` from the config (``tune.sample_from``).

    ``func`` takes no argument, or the resolved config (``lambda config: config["a"]``); if
    that raises AttributeError or KeyError it is called again with Ray's legacy ``spec``
    (``lambda spec: spec.config.a``).
    """

    func: Callable[..., Any]

    def sample(self, config: dict[str, Any], rng: Rng | None) -> Any:
        """Call ``func`` on the config resolved so far (random draws are the func's own)."""
        if not _takes_config(self.func):
            return self.func()
        view = _ResolvedView(config)
        try:
            return self.func(view)
        except (AttributeError, KeyError):
            return self.func(_ResolvedView({"config": config}))


def grid_search(values: Sequence[Any]) -> dict[str, list[Any]]:
    """Every value in ``values`` is tried; several grids combine as their product (Ray's form)."""
    if isinstance(values, (str, bytes, dict)) or not isinstance(values, (Sequence, range)):
        raise SearchSpaceError(
            f"grid_search needs a list of values, got {type(values).__name__}: {values!r}"
        )
    return {"grid_search": list(values)}


def choice(categories: Sequence[Any]) -> Choice:
    """Draw one of ``categories`` uniformly."""
    return Choice(tuple(categories))


def uniform(lower: float, upper: float) -> Uniform:
    """Draw a float uniformly from [lower, upper)."""
    return Uniform(lower, upper)


def quniform(lower: float, upper: float, q: float) -> QUniform:
    """Draw a float uniformly, rounded to an integer multiple of ``q``."""
    return QUniform(lower, upper, q)


def loguniform(lower: float, upper: float) -> LogUniform:
    """Draw a float uniformly in log space between ``lower`` > 0 and ``upper``."""
    return LogUniform(lower, upper)


def randint(lower: int, upper: int) -> RandInt:
    """Draw an int uniformly from [lower, upper) (upper exclusive, as in Ray)."""
    return RandInt(lower, upper)


def randn(mean: float = 0.0, sd: float = 1.0) -> RandN:
    """Draw a float from the normal distribution with ``mean`` and standard deviation ``sd``."""
    return RandN(mean, sd)


def qloguniform(lower: float, upper: float, q: float) -> QLogUniform:
    """Draw a float log-uniformly, rounded to an integer multiple of ``q``."""
    return QLogUniform(lower, upper, q)


def lograndint(lower: int, upper: int) -> LogRandInt:
    """Draw an int log-uniformly from [lower, upper) (upper exclusive)."""
    return LogRandInt(lower, upper)


def qrandint(lower: int, upper: int, q: int = 1) -> QRandInt:
    """Draw a multiple of ``q`` uniformly; upper inclusive except for ``q=1`` (Ray's rule)."""
    return QRandInt(lower, upper, q)


def qlograndint(lower: int, upper: int, q: int) -> QRandInt:
    """Draw a multiple of ``q`` log-uniformly; upper inclusive except for ``q=1``."""
    return QRandInt(lower, upper, q, log=True)


def qrandn(mean: float, sd: float, q: float) -> QRandN:
    """Draw from N(mean, sd), rounded to an integer multiple of ``q``."""
    return QRandN(mean, sd, q)


def sample_from(func: Callable[..., Any]) -> SampleFrom:
    """Compute a value with ``func`` (no argument, or the config resolved so far)."""
    if not callable(func):
        raise SearchSpaceError(f"sample_from needs a callable, got {func!r}")
    _takes_config(func)
    return SampleFrom(func)


def _is_grid(value: Any) -> bool:
    return isinstance(value, dict) and len(value) == 1 and "grid_search" in value


def _check_value(path: Path, value: Any) -> None:
    """Reject values a space cannot hold: Ray's own domains, ``eval`` specs, bad grids.

    Every other value is a constant, of any type, as in Ray.
    """
    module = type(value).__module__ or ""
    if module.startswith("ray.tune.search"):
        raise SearchSpaceError(
            f"search space value at {'/'.join(map(str, path))} is a {type(value).__name__} "
            f"from {module}; use runtime.tune's domains (tune.uniform, tune.choice, ...)"
        )
    if isinstance(value, dict) and len(value) == 1 and "eval" in value:
        raise SearchSpaceError(
            f"search space value at {'/'.join(map(str, path))} uses the {{'eval': ...}} form, "
            "which runtime.tune does not evaluate; use tune.sample_from(lambda config: ...)"
        )
    if _is_grid(value) and (
        isinstance(value["grid_search"], (str, bytes, dict))
        or not isinstance(value["grid_search"], (Sequence, range))
    ):
        raise SearchSpaceError(
            f"grid_search at {'/'.join(map(str, path))} needs a list of values, "
            f"got {value['grid_search']!r}"
        )


def _unresolved(spec: Any, prefix: Path = ()) -> list[tuple[Path, Any]]:
    """(path, domain-or-grid) for every unresolved value, in dict order, into dicts/lists."""
    found: list[tuple[Path, Any]] = []
    items: Any = spec.items() if isinstance(spec, dict) else enumerate(spec)
    for key, value in items:
        path = (*prefix, key)
        _check_value(path, value)
        if _is_unresolved(value):
            found.append((path, value))
        elif isinstance(value, (dict, list, tuple)):
            found.extend(_unresolved(value, path))
    return found


def _assign(spec: Any, path: Path, value: Any) -> None:
    parent: Any = None
    parent_key: Any = None
    for key in path[:-1]:
        parent, parent_key, spec = spec, key, spec[key]
    last = path[-1]
    if isinstance(spec, tuple):
        parent[parent_key] = (*spec[:last], value, *spec[last + 1 :])
    else:
        spec[last] = value


def _get(spec: Any, path: Path) -> Any:
    for key in path:
        spec = spec[key]
    return spec


def _path_key(path: Path) -> tuple[tuple[int, Any], ...]:
    """Sort key for paths: Ray sorts grid paths as tuples; ints (list indices) before names."""
    return tuple((0, key) if isinstance(key, int) else (1, str(key)) for key in path)


def _grid_product(spec: dict[str, Any], grids: list[tuple[Path, Any]]) -> Iterator[dict[str, Any]]:
    """Each grid combination, Ray's order: grids sorted by path, the first varying fastest."""
    if not grids:
        yield copy.deepcopy(spec)
        return
    indices = [0] * len(grids)
    while True:
        variant = copy.deepcopy(spec)
        for (path, grid), index in zip(grids, indices, strict=True):
            _assign(variant, path, grid["grid_search"][index])
        yield variant
        position = 0
        while position < len(grids):
            indices[position] += 1
            if indices[position] < len(grids[position][1]["grid_search"]):
                break
            indices[position] = 0
            position += 1
        if position == len(grids):
            return


def _resolve_domains(
    spec: dict[str, Any], domains: list[tuple[Path, Domain]], rng: Rng | None
) -> dict[Path, Any]:
    """Draw every domain into ``spec``, retrying ``sample_from`` values that read later ones."""
    resolved: dict[Path, Any] = {}
    for _ in range(MAX_RESOLUTION_PASSES):
        pending: list[str] = []
        for path, domain in domains:
            if path in resolved:
                continue
            try:
                value = domain.sample(spec, rng)
            except _Unresolved as exc:
                pending.append(f"{'/'.join(map(str, path))} ({exc})")
                continue
            except SearchSpaceError:
                raise
            except Exception as exc:
                raise SearchSpaceError(
                    f"failed to evaluate {'/'.join(map(str, path))}: {domain!r} raised {exc!r}"
                ) from exc
            _assign(spec, path, value)
            resolved[path] = value
        if not pending:
            return resolved
    raise SearchSpaceError(
        f"could not resolve {', '.join(pending)} after {MAX_RESOLUTION_PASSES} passes: "
        "a sample_from value depends on itself or on a value that never resolves"
    )


def generate_variants(
    space: dict[str, Any], rng: Rng | None = None
) -> Iterator[tuple[dict[Path, Any], dict[str, Any]]]:
    """Yield (resolved_vars, config) for each grid combination, drawing random values afresh.

    ``resolved_vars`` maps each path that was a grid or a domain to its value. Grid values
    are expanded first (so ``sample_from`` sees them), nested values returned by a
    ``sample_from`` are resolved recursively, as in Ray's ``generate_variants``.
    """
    if not isinstance(space, dict):
        raise SearchSpaceError(f"a search space is a dict, got {type(space).__name__}")
    found = _unresolved(space)
    if not found:
        yield {}, copy.deepcopy(space)
        return
    grids = sorted(((p, v) for p, v in found if _is_grid(v)), key=lambda item: _path_key(item[0]))
    domains = [(p, v) for p, v in found if not _is_grid(v)]
    for variant in _grid_product(space, grids):
        drawn = _resolve_domains(variant, domains, rng)
        for inner_vars, config in generate_variants(variant, rng):
            resolved = dict(drawn)
            for path, _ in grids:
                resolved[path] = _get(config, path)
            resolved.update(inner_vars)
            yield resolved, config


def count_variants(space: dict[str, Any], num_samples: int = 1) -> int:
    """How many trials ``space`` gives: the grid's size times ``num_samples``."""
    total = num_samples
    for _, value in _unresolved(space):
        if _is_grid(value):
            total *= len(value["grid_search"])
    return total
