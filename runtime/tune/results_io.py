"""Writing a trial's results like Ray: ``params.json``, ``result.json`` lines, ``progress.csv``."""

from __future__ import annotations

import csv
import json
import math
import os
from typing import Any


def flatten(result: dict[str, Any], prefix: str = "", delimiter: str = "/") -> dict[str, Any]:
    """Nested dicts as one level with ``"a/b"`` keys (Ray's ``flatten_dict``)."""
    flat: dict[str, Any] = {}
    for key, value in result.items():
        name = f"{prefix}{delimiter}{key}" if prefix else str(key)
        if isinstance(value, dict) and value:
            flat.update(flatten(value, name, delimiter))
        else:
            flat[name] = value
    return flat


def _jsonable(value: Any) -> Any:
    item = getattr(value, "item", None)
    if callable(item):
        try:
            return item()
        except (TypeError, ValueError):
            pass
    tolist = getattr(value, "tolist", None)
    if callable(tolist):
        return tolist()
    return repr(value)


def to_json(value: Any) -> str:
    """``value`` as JSON; numpy scalars/arrays as numbers/lists, anything else by its repr."""
    return json.dumps(value, default=_jsonable)


def write_params(trial_dir: str, config: dict[str, Any]) -> None:
    """Write the trial's config as ``params.json`` (and ``params.pkl``, as Ray does)."""
    import cloudpickle

    os.makedirs(trial_dir, exist_ok=True)
    with open(os.path.join(trial_dir, "params.json"), "w") as f:
        f.write(json.dumps(config, default=_jsonable, indent=2, sort_keys=True))
    with open(os.path.join(trial_dir, "params.pkl"), "wb") as f:
        cloudpickle.dump(config, f)


class ResultLog:
    """Appends one trial's results to ``result.json`` and ``progress.csv``."""

    def __init__(self, trial_dir: str) -> None:
        self.trial_dir = trial_dir
        self.fields: list[str] | None = None

    def append(self, result: dict[str, Any]) -> None:
        """Append ``result``: a JSON line, and a CSV row (columns fixed by the first result)."""
        with open(os.path.join(self.trial_dir, "result.json"), "a") as f:
            f.write(to_json(result) + "\n")
        flat = flatten({k: v for k, v in result.items()})
        path = os.path.join(self.trial_dir, "progress.csv")
        if self.fields is None:
            if os.path.exists(path) and os.path.getsize(path) > 0:
                with open(path, newline="") as f:
                    self.fields = next(csv.reader(f), None) or list(flat)
                new = False
            else:
                self.fields = list(flat)
                new = True
        else:
            new = False
        with open(path, "a", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=self.fields, extrasaction="ignore")
            if new:
                writer.writeheader()
            writer.writerow({k: flat.get(k, "") for k in self.fields})


def read_results(trial_dir: str) -> list[dict[str, Any]]:
    """Every result in the trial's ``result.json`` (empty when it has none)."""
    path = os.path.join(trial_dir, "result.json")
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def is_finite_number(value: Any) -> bool:
    """Whether ``value`` is a real number that is neither NaN nor infinite."""
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return False
