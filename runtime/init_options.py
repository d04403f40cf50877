"""The keywords of `init`: Ray 2.60's public and hidden ones plus twinray's, each checked and classified.

Every keyword is in exactly one table:

* `INIT_OPTIONS`: keywords with an effect here (resources, the store, logging, ...);
* `NO_EFFECT_HERE`: keywords whose every accepted value means, on one node without a
  dashboard, what Ray does with it too (e.g. `include_dashboard=False`); a value asking for
  something twinray does not provide raises `OptionNotSupportedError`;
* Ray's refusals (`allow_multiple`, `storage`) raise `InitOptionError`, as Ray does.

Anything else raises `InitOptionError` (a `TypeError`, `ValueError` and, like Ray's,
`RuntimeError`) naming the closest accepted keyword.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from runtime.exceptions import (
    InitOptionError,
    InvalidOptionError,
    OptionNotSupportedError,
)
from runtime.options import check_quantity, unknown_keyword_message

__all__ = [
    "ADDRESS_ENV",
    "INIT_OPTIONS",
    "NO_EFFECT_HERE",
    "InitConfig",
    "apply_logging",
    "available_memory",
    "cluster_address",
    "parse_init",
]


@dataclass(slots=True)
class InitConfig:
    """The checked settings of one `init` call."""

    num_cpus: float | None = None
    num_gpus: float | None = None
    resources: dict[str, float] = field(default_factory=dict)
    object_store_memory: int | None = None
    memory: int | None = None
    """Bytes of the node's `memory` resource (Ray's `_memory`); None: what the machine has."""
    ignore_reinit_error: bool = False
    namespace: str | None = None
    runtime_env: dict[str, Any] | None = None
    configure_logging: bool = True
    logging_level: int | str | None = None
    """None: not given (Ray's default is "info"): twinray's logger is left as it is."""
    logging_format: str | None = None
    log_to_driver: bool = True
    scheduling_policy: str = "bottom_up"
    inline_threshold: int | None = None
    object_spilling: bool = True
    spill_dir: str | None = None
    address: str | None = None
    """The cluster to connect to ("auto" or "HOST:PORT"); None: the embedded node."""


ADDRESS_ENV = "TWINRAY_ADDRESS"
"""Read when `init` gets no address (or "auto"), as Ray reads ``RAY_ADDRESS``."""
NODE_KEYWORDS = (
    "num_cpus",
    "num_gpus",
    "resources",
    "object_store_memory",
    "_memory",
    "scheduling_policy",
    "inline_threshold",
    "object_spilling",
    "spill_dir",
    "object_spilling_directory",
    "_temp_dir",
)
"""Keywords that describe the node `init` starts: refused when connecting to a cluster."""
NOT_YET_WHEN_CONNECTING = ("runtime_env",)
"""Keywords a driver connected to a cluster does not honour yet."""


def cluster_address(address: Any) -> str | None:
    """The cluster `init(address=...)` connects to, or None for the embedded node.

    None (or "auto") reads ``TWINRAY_ADDRESS``; "local" always means the embedded node.
    """
    if address is None or address == "auto":
        env = os.environ.get(ADDRESS_ENV)
        if env:
            return env
        return None if address is None else "auto"
    if address == "local":
        return None
    if not isinstance(address, str):
        raise InitOptionError(
            f"init(address=...) must be None, 'local', 'auto' or 'HOST:PORT', got {address!r}"
        )
    return address


def _check_connecting(address: str, options: Mapping[str, Any]) -> None:
    """Refuse what a driver connecting to a running cluster cannot set (as Ray does)."""
    given = [k for k in NODE_KEYWORDS if options.get(k) is not None]
    if given:
        raise InitOptionError(
            f"init(address={address!r}): when connecting to an existing cluster, "
            f"{', '.join(given)} must not be provided (the cluster's nodes were started "
            "with their own resources)"
        )
    for keyword in NOT_YET_WHEN_CONNECTING:
        if options.get(keyword) is not None:
            raise OptionNotSupportedError(
                f"init(address={address!r}, {keyword}=...): a driver connected to a cluster "
                f"does not apply a job-wide {keyword} yet in twinray; give it per task or actor"
            )


def _fail(keyword: str, value: Any, expected: str) -> InitOptionError:
    return InitOptionError(f"init({keyword}=...) must be {expected}, got {value!r}")


def _quantity(keyword: str, value: Any) -> Any:
    try:
        check_quantity(keyword, value)
    except InvalidOptionError as exc:
        raise InitOptionError(f"init(): {exc}") from None
    return value


def _whole(keyword: str, value: Any) -> Any:
    _quantity(keyword, value)
    if value is not None and value != int(value):
        raise _fail(keyword, value, "a whole number")
    return value


def _bytes(keyword: str, value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise _fail(keyword, value, "a positive number of bytes (int)")
    return value


def _bool(keyword: str, value: Any) -> Any:
    if not isinstance(value, bool):
        raise _fail(keyword, value, "a bool")
    return value


def _str_or_none(keyword: str, value: Any) -> Any:
    if value is not None and not isinstance(value, str):
        raise _fail(keyword, value, "a str or None")
    return value


def _resources(keyword: str, value: Any) -> Any:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise _fail(keyword, value, "a dict of resource name -> amount")
    for reserved, use in (
        ("CPU", "num_cpus"),
        ("GPU", "num_gpus"),
        ("memory", "_memory"),
        ("object_store_memory", "object_store_memory"),
    ):
        if reserved in value:
            raise InitOptionError(
                f"Use the '{use}' keyword instead of '{reserved}' in init's 'resources'"
            )
    for name, amount in value.items():
        if not isinstance(name, str) or not name:
            raise InitOptionError(f"init(resources=...): names must be strings, got {name!r}")
        _quantity(name, amount)
    return dict(value)


def _runtime_env(keyword: str, value: Any) -> Any:
    from runtime.runtime_env import validate_runtime_env

    return validate_runtime_env(value)


def _logging_level(keyword: str, value: Any) -> Any:
    if isinstance(value, str):
        if not isinstance(logging.getLevelName(value.upper()), int):
            raise _fail(keyword, value, "a logging level (int or a name such as 'info')")
        return value
    if isinstance(value, bool) or not isinstance(value, int):
        raise _fail(keyword, value, "a logging level (int or a name such as 'info')")
    return value


def _policy(keyword: str, value: Any) -> Any:
    from runtime.core.policies import POLICIES

    if value not in POLICIES:
        raise InitOptionError(
            f"init(scheduling_policy={value!r}): unknown policy; expected one of {sorted(POLICIES)}"
        )
    return value


def _threshold(keyword: str, value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise _fail(keyword, value, "a number of bytes >= 0 (int) or None")
    return value


def _directory(keyword: str, value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if not isinstance(value, str) or not os.path.isdir(value):
        raise _fail(keyword, value, "an existing directory")
    return value


Parse = Callable[[str, Any], Any]

INIT_OPTIONS: dict[str, tuple[str, Parse]] = {
    "num_cpus": ("num_cpus", _quantity),
    "num_gpus": ("num_gpus", _whole),
    "resources": ("resources", _resources),
    "object_store_memory": ("object_store_memory", _bytes),
    "_memory": ("memory", _bytes),
    "ignore_reinit_error": ("ignore_reinit_error", _bool),
    "namespace": ("namespace", _str_or_none),
    "runtime_env": ("runtime_env", _runtime_env),
    "configure_logging": ("configure_logging", _bool),
    "logging_level": ("logging_level", _logging_level),
    "logging_format": ("logging_format", _str_or_none),
    "log_to_driver": ("log_to_driver", _bool),
    "object_spilling_directory": ("spill_dir", _directory),
    "_temp_dir": ("spill_dir", _directory),
    # twinray's own
    "scheduling_policy": ("scheduling_policy", _policy),
    "inline_threshold": ("inline_threshold", _threshold),
    "object_spilling": ("object_spilling", _bool),
    "spill_dir": ("spill_dir", _directory),
}
"""Keyword -> (InitConfig field, parser). `object_spilling_directory`, `_temp_dir` and
`spill_dir` all name the directory of the spill file (the first given wins in that order:
spill_dir, object_spilling_directory, _temp_dir)."""


def _no(*accepted: Any) -> Callable[[Any], bool]:
    return lambda value: any(value is a or value == a for a in accepted)


def _empty(value: Any) -> bool:
    return not value


def _any_str(value: Any) -> bool:
    return isinstance(value, str)


def _any_bool(value: Any) -> bool:
    return isinstance(value, bool)


NO_EFFECT_HERE: dict[str, tuple[Callable[[Any], bool], str]] = {
    "include_dashboard": (_no(None, False), "twinray has no dashboard"),
    "dashboard_host": (_any_str, "twinray has no dashboard"),
    "dashboard_port": (_no(None), "twinray has no dashboard"),
    "local_mode": (_no(False), "local mode (deprecated in Ray) is not available"),
    "job_config": (_no(None), "JobConfig is not available; pass runtime_env= to init"),
    "labels": (_empty, "node labels are not available"),
    "logging_config": (_no(None), "LoggingConfig is not available; use logging_level/_format"),
    "enable_resource_isolation": (_no(False), "resource isolation (cgroups) is not available"),
    "cgroup_path": (_no(None), "resource isolation (cgroups) is not available"),
    "system_reserved_cpu": (_no(None), "resource isolation (cgroups) is not available"),
    "system_reserved_memory": (_no(None), "resource isolation (cgroups) is not available"),
    "proxy_server_url": (_no(None), "Ray client proxies are not available"),
    "_enable_object_reconstruction": (_no(False), "plasma reconstruction is not available"),
    "_plasma_directory": (_no(None), "the store is an anonymous shared-memory arena"),
    "_node_ip_address": (_no(None), "the node has no network address (one node, no network)"),
    "_node_name": (_no(None), "node names are not available"),
    "_driver_object_store_memory": (_no(None), "there is no separate driver store"),
    "_redis_username": (_no(None, ""), "there is no Redis"),
    "_redis_password": (_no(None, ""), "there is no Redis"),
    "_metrics_export_port": (_no(None), "metrics export is not available"),
    "_system_config": (_empty, "Ray's internal system config does not apply to twinray"),
    "_tracing_startup_hook": (_no(None), "tracing hooks are not available"),
    "_skip_env_hook": (_any_bool, "runtime_env hooks (RAY_RUNTIME_ENV_HOOK) are not available"),
}
"""Keyword -> (is the value one twinray honours by doing nothing?, why other values are
refused). The accepted values are those with which Ray, on one node without a dashboard,
also does nothing (e.g. `include_dashboard=False`, `_redis_password=""`, `_skip_env_hook`
with no hook installed)."""

_ACCEPTED = sorted({"address", *INIT_OPTIONS, *NO_EFFECT_HERE})


def parse_init(address: Any, options: Mapping[str, Any]) -> InitConfig:
    """Check `init`'s arguments; return the settings with an effect here."""
    target = cluster_address(address)
    if target is not None:
        _check_connecting(target, options)
    if options.get("allow_multiple"):
        raise InitOptionError(
            "`allow_multiple` argument is passed to `init` when the ray client is not used: "
            "twinray has no client mode."
        )
    if options.get("storage"):
        raise InitOptionError(
            "Cluster-wide storage configuration has been removed in Ray (the last Ray "
            "version supporting the `storage` argument is `ray==2.47`)."
        )
    config = InitConfig(address=target)
    spill_from: dict[str, Any] = {}
    for keyword, value in options.items():
        if keyword in ("allow_multiple", "storage"):
            continue
        entry = INIT_OPTIONS.get(keyword)
        if entry is not None:
            target, parse = entry
            parsed = parse(keyword, value)
            if target == "spill_dir":
                spill_from[keyword] = parsed
            else:
                setattr(config, target, parsed)
            continue
        no_effect = NO_EFFECT_HERE.get(keyword)
        if no_effect is None:
            raise InitOptionError(unknown_keyword_message(keyword, _ACCEPTED, "init()"))
        if not no_effect[0](value):
            raise OptionNotSupportedError(f"init({keyword}={value!r}): {no_effect[1]} in twinray")
    for keyword in ("spill_dir", "object_spilling_directory", "_temp_dir"):
        if spill_from.get(keyword) is not None:
            config.spill_dir = spill_from[keyword]
            break
    return config


def available_memory() -> int:
    """Bytes of memory available on this machine (`MemAvailable`; all of it where unknown)."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (OSError, ValueError):
        return 0


def apply_logging(config: InitConfig) -> None:
    """Set the level (and, with `logging_format`, a handler) of twinray's `runtime` logger,
    as Ray does for its `ray` logger; nothing when `configure_logging` is False or neither
    was given (so `init` never waits for the logging lock a program thread may hold)."""
    level = config.logging_level
    if not config.configure_logging or (level is None and not config.logging_format):
        return
    logger = logging.getLogger("runtime")
    if level is not None:
        logger.setLevel(level.upper() if isinstance(level, str) else level)
    if config.logging_format:
        for handler in list(logger.handlers):
            if getattr(handler, "_twinray", False):
                logger.removeHandler(handler)
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter(config.logging_format))
        handler._twinray = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
