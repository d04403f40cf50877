"""Settings of `runtime.dataframe`, in the manner of `modin.config`: `NPartitions`."""

from __future__ import annotations

import os

__all__ = ["NPartitions"]


class NPartitions:
    """How many row partitions a new frame gets (Modin's `modin.config.NPartitions`).

    Default: the cluster's CPU count when the runtime is started, else the machine's.
    `NPartitions.put(n)` sets it for every frame made afterwards; `put(None)` restores
    the default.
    """

    _value: int | None = None

    @classmethod
    def get(cls) -> int:
        """The number of partitions new frames are split into."""
        if cls._value is not None:
            return cls._value
        import runtime

        if runtime.is_initialized():
            return max(1, int(runtime.cluster_resources().get("CPU", 1)))
        return os.cpu_count() or 1

    @classmethod
    def put(cls, value: int | None) -> None:
        """Set the number of partitions (a positive int), or `None` for the default."""
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int) or value < 1
        ):
            raise ValueError(f"NPartitions must be a positive int or None, got {value!r}")
        cls._value = value
