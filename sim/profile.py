"""Calibration profiles: read one and merge its fitted costs into a scenario's defaults.

A profile is the YAML file `run-scenario --calibrate` writes (the measuring and fitting
live in `twin.calibrate`, which runs real workers); this module only reads it, so loading a
scenario that names a profile never touches the real runtime.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

DEFAULT_PROFILE = Path("scenarios") / "calibration" / "this_machine.yaml"
"""Where `run-scenario --calibrate` writes the profile unless told otherwise."""


class ProfileError(ValueError):
    """A calibration profile could not be read or has the wrong shape."""


def load_profile(path: str | Path) -> dict[str, Any]:
    """Read a profile YAML; return its mapping (raises ProfileError)."""
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ProfileError(f"cannot read calibration profile {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ProfileError(f"calibration profile {path} is not valid YAML: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("control_plane"), dict):
        raise ProfileError(f"calibration profile {path}: expected a control_plane mapping")
    return data


def apply_profile(raw: dict[str, Any], scenario_path: Path) -> list[str]:
    """Merge the profile named by `control_plane.profile` into raw scenario data, in place.

    The profile's `control_plane` and `network` values become defaults; fields the
    scenario (or `--set`) gives explicitly win. A relative profile path is looked up
    next to the scenario file, then in the working directory. Returns problem texts.
    """
    plane = raw.get("control_plane")
    if not isinstance(plane, dict) or not isinstance(plane.get("profile"), str):
        return []
    name = Path(plane["profile"])
    candidates = [name] if name.is_absolute() else [scenario_path.parent / name, name]
    found = next((p for p in candidates if p.is_file()), None)
    if found is None:
        return [
            f"control_plane.profile: no calibration profile at {name} (looked in "
            f"{', '.join(str(c) for c in candidates)}); run `run-scenario --calibrate` first"
        ]
    try:
        profile = load_profile(found)
    except ProfileError as exc:
        return [f"control_plane.profile: {exc}"]
    defaults = dict(profile["control_plane"])
    overhead = profile.get("task_overhead") or {}
    if overhead.get("per_task_ms"):
        defaults["task_overhead_us"] = round(float(overhead["per_task_ms"]) * 1e3, 3)
    if overhead.get("stored_output_ms"):  # measured with 1 MiB outputs
        defaults["store_put_us_per_mib"] = round(float(overhead["stored_output_ms"]) * 1e3, 3)
    if overhead.get("stored_arg_ms"):  # measured with 1 MiB arguments
        defaults["store_get_us_per_mib"] = round(float(overhead["stored_arg_ms"]) * 1e3, 3)
    raw["control_plane"] = {**defaults, **plane, "profile": str(found)}
    network = profile.get("network")
    if isinstance(network, dict):
        current = raw.get("network") if isinstance(raw.get("network"), dict) else {}
        raw["network"] = {**network, **current}
    return []
