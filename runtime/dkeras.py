"""`dKeras`: a Keras model (or any object with `predict`) served by data-parallel replica actors.

After dKeras (github.com/dkeras-project/dkeras): ``dKeras(ResNet50)`` builds the model once in
the driver, puts its weights in the object store once, starts `n_workers` replica actors that
each build the same architecture and load those weights, and splits every `predict` over them.
The replicas hold their model for their whole life, so a call ships only the input and the
predictions. Where dKeras polls a data-server actor, here `predict` keeps a few chunks in
flight on every replica and hands the next chunk to whichever replica answers first.
"""

from __future__ import annotations

import functools
import inspect
import math
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import cloudpickle
import numpy as np

from runtime import api

__all__ = ["DEFAULT_N_WORKERS", "IN_FLIGHT_PER_WORKER", "dKeras"]

DEFAULT_N_WORKERS = 4
"""Replicas when `n_workers` is None (dKeras' `config.DEFAULT_N_WORKERS`)."""

DEFAULT_BATCH_SIZE = 32
"""Samples per chunk when `predict` gets no `batch_size` (Keras' default batch size)."""

IN_FLIGHT_PER_WORKER = 2
"""Chunks queued on each replica at once: one runs while the next one's call is on its way."""

DEFAULT_KERAS_BACKEND = "jax"
"""The replicas' Keras backend when the driver has not chosen one (the `ml` extra has JAX)."""


@dataclass(frozen=True)
class _ModelSpec:
    """How a replica makes its model: a factory plus weights, or an unpickled instance."""

    kind: str
    """"weights": call `factory` (pickled) then `set_weights(payload)`; "instance": unpickle payload."""
    factory: bytes | None
    factory_kwargs: dict[str, Any] = field(default_factory=dict)
    keras_backend: str = DEFAULT_KERAS_BACKEND


class dKeras:  # noqa: N801 (dKeras' own name)
    """Data-parallel replicas of a model: `predict` splits a batch over them, in order.

    `model` is either a model class or function (dKeras' way: ``dKeras(MobileNetV3Small)``),
    called here as ``model(weights=weights)`` when it takes a `weights` argument (as the
    `keras.applications` do) and as ``model()`` otherwise; or an object with a `predict`
    method (a built Keras model, a scikit-learn estimator, anything picklable). A built model
    with `get_weights`/`set_weights` and a factory: the weights go into the object store once
    and every replica calls the factory (``weights=None``: nothing is downloaded twice) and
    loads them; any other object is pickled once into the store and every replica reads that
    one copy. Either way nothing of the model travels again per call.

    `n_workers` replicas (None: 4) are actors; `n_cpus_per_worker` / `n_gpus_per_worker` are
    their `num_cpus` / `num_gpus` (None: an actor's defaults, which hold no CPU while it
    lives); `actor_options` are further `.options(...)` for them (a `runtime_env`, a
    scheduling strategy, ...). The replicas' Keras backend is the driver's (Keras already
    imported), else ``$KERAS_BACKEND``, else JAX; it is set in the replica before Keras is
    imported there. `init_ray` starts twinray when it is not running (``rm_existing_ray``:
    restart a running one). `wait_for_workers` waits until every replica has built its model
    (an error building one is raised here); without it the constructor returns at once and
    the first `predict` queues behind the building replicas (`is_ready` says whether they are
    done). `rm_local_model=False` keeps the driver's model as `self.model`, so that
    ``predict(x, distributed=False)`` runs it in-process; `distributed` is `predict`'s
    default. `close()` kills the replicas and frees the weights.
    """

    def __init__(
        self,
        model: Any,
        verbose: bool = False,
        weights: Any = None,
        n_workers: int | None = None,
        init_ray: bool = True,
        distributed: bool = True,
        rm_existing_ray: bool = False,
        rm_local_model: bool = True,
        wait_for_workers: bool = False,
        n_cpus_per_worker: float | None = None,
        n_gpus_per_worker: float | None = None,
        actor_options: dict[str, Any] | None = None,
    ) -> None:
        self.n_workers = _check_n_workers(n_workers)
        _check_quantity("n_cpus_per_worker", n_cpus_per_worker)
        _check_quantity("n_gpus_per_worker", n_gpus_per_worker)
        if actor_options is not None and not isinstance(actor_options, dict):
            raise TypeError(
                f"'actor_options' must be a dict of actor options, got {type(actor_options).__name__}"
            )
        self.verbose = bool(verbose)
        self.distributed = bool(distributed)
        local, spec, payload = _prepare(model, weights)
        self.model: Any = None if rm_local_model else local
        self._started_ray = _start_ray(init_ray, rm_existing_ray)
        try:
            options = _replica_options(
                self.n_workers, n_cpus_per_worker, n_gpus_per_worker, actor_options or {}
            )
            replica_class = _replica_class().options(**options)
        except BaseException:
            if self._started_ray:  # refused before anything ran: leave no session behind
                api.shutdown()
            raise
        self._payload_ref: Any = api.put(payload)  # the one copy every replica reads
        del payload
        self._replicas: list[Any] = [
            replica_class.remote(spec, self._payload_ref) for _ in range(self.n_workers)
        ]
        self._ready_refs: list[Any] = [r.ready.remote() for r in self._replicas]
        self._closed = False
        self._log(f"dKeras: {self.n_workers} replicas of {_describe(model)}")
        if wait_for_workers:
            try:
                self.wait_for_workers()
            except BaseException:
                self.close()  # no replica outlives a constructor that raised
                raise

    # -- lifecycle ----------------------------------------------------------------------------

    def is_ready(self) -> bool:
        """Whether every replica has built its model (raises the error of one that failed)."""
        self._check_open()
        ready, _ = api.wait(self._ready_refs, num_returns=len(self._ready_refs), timeout=0)
        api.get(ready)  # a replica whose constructor failed raises here
        return len(ready) == len(self._ready_refs)

    def wait_for_workers(self, timeout: float | None = None) -> None:
        """Wait up to `timeout` s (None: as long as it takes) until every replica is built.

        Raises the error of a replica that failed to build its model, `GetTimeoutError` on
        timeout.
        """
        self._check_open()
        api.get(self._ready_refs, timeout=timeout)

    def close(self, stop_ray: bool = False) -> None:
        """Kill the replicas and release the weights; `stop_ray` also shuts twinray down.

        Closing twice is harmless; `predict` on a closed dKeras raises `RuntimeError`.
        """
        if not self._closed:
            self._closed = True
            replicas, self._replicas = self._replicas, []
            self._ready_refs = []
            self._payload_ref = None
            if api.is_initialized():
                for replica in replicas:
                    api.kill(replica, no_restart=True)
        if stop_ray and api.is_initialized():
            api.shutdown()

    def __enter__(self) -> dKeras:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- inference ----------------------------------------------------------------------------

    def predict(
        self,
        x: Any,
        batch_size: int | None = None,
        distributed: bool | None = None,
        verbose: int = 0,
    ) -> Any:
        """The model's predictions for `x`, computed by the replicas, in the order of `x`.

        `x` is an array (or a list/tuple/dict of arrays of one length, for a model with
        several inputs). It goes into the object store once; it is cut into chunks of
        `batch_size` samples (None: 32), each replica holds up to two chunks at a time and
        the next chunk goes to the first replica that answers. A Keras replica runs
        ``model.predict(chunk, batch_size=batch_size, verbose=verbose)``; any other object
        ``model.predict(chunk)``. The chunks' predictions are concatenated (per output, for
        a list/tuple/dict of outputs). An error raised by the model reaches the caller with
        the replica's traceback. `distributed=False` runs the local model in-process (kept
        only with ``rm_local_model=False``).
        """
        use_replicas = self.distributed if distributed is None else bool(distributed)
        if not use_replicas:
            if self.model is None:
                raise RuntimeError(
                    "predict(distributed=False) needs the local model: create dKeras with "
                    "rm_local_model=False"
                )
            return self.model.predict(x)
        self._check_open()
        if batch_size is None:
            batch_size = DEFAULT_BATCH_SIZE
        elif isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"'batch_size' must be a positive int or None, got {batch_size!r}")
        n = _length(x)
        if n == 0:
            raise ValueError("predict() got no samples (an input of length 0)")
        bounds = [(s, min(s + batch_size, n)) for s in range(0, n, batch_size)]
        return _combine(self._run_chunks(api.put(x), bounds, batch_size, verbose))

    def _run_chunks(
        self, x_ref: Any, bounds: list[tuple[int, int]], batch_size: int, verbose: int
    ) -> list[Any]:
        """Predict every `[start, stop)` of `x_ref` on the replicas; the results by chunk."""
        results: list[Any] = [None] * len(bounds)
        pending: dict[Any, tuple[int, int]] = {}  # ref -> (chunk index, replica index)
        next_chunk = 0

        def send(replica_index: int) -> None:
            nonlocal next_chunk
            start, stop = bounds[next_chunk]
            call = self._replicas[replica_index].predict
            pending[call.remote(x_ref, start, stop, batch_size, verbose)] = (
                next_chunk,
                replica_index,
            )
            next_chunk += 1

        for _ in range(IN_FLIGHT_PER_WORKER):
            for replica_index in range(self.n_workers):
                if next_chunk < len(bounds):
                    send(replica_index)
        while pending:
            done, _ = api.wait(list(pending), num_returns=1)
            ref = done[0]
            chunk, replica_index = pending.pop(ref)
            results[chunk] = api.get(ref)  # a model error raises here, with its traceback
            if next_chunk < len(bounds):
                send(replica_index)
        return results

    # -- helpers ------------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("this dKeras was closed: its replicas are gone")

    def _log(self, message: str) -> None:
        if self.verbose:
            print(message)

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"{self.n_workers} replicas"
        return f"<dKeras {state}>"


# -- checks and set-up -------------------------------------------------------------------------


def _check_n_workers(n_workers: int | None) -> int:
    """`n_workers`, checked: None (the default, 4) or a positive int."""
    if n_workers is None:
        return DEFAULT_N_WORKERS
    if isinstance(n_workers, bool) or not isinstance(n_workers, int):
        raise TypeError(f"'n_workers' must be a positive int or None, got {n_workers!r}")
    if n_workers < 1:
        raise ValueError(f"'n_workers' must be at least 1, got {n_workers}")
    return n_workers


def _check_quantity(name: str, value: float | None) -> None:
    """A per-replica resource amount: None or a non-negative number."""
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"'{name}' must be a non-negative number or None, got {value!r}")
    if value < 0 or not math.isfinite(value):
        raise ValueError(f"'{name}' must be a non-negative number, got {value!r}")


def _start_ray(init_ray: bool, rm_existing_ray: bool) -> bool:
    """Start twinray if asked and needed (restart it with `rm_existing_ray`); whether we did."""
    if not init_ray:
        if not api.is_initialized():
            raise RuntimeError(
                "twinray is not initialized and init_ray=False: call runtime.init() first"
            )
        return False
    if api.is_initialized():
        if not rm_existing_ray:
            return False
        api.shutdown()
    api.init()
    return True


def _replica_options(
    n_workers: int,
    n_cpus: float | None,
    n_gpus: float | None,
    actor_options: dict[str, Any],
) -> dict[str, Any]:
    """The replicas' actor options; refuse resources the cluster can never give them all."""
    options = dict(actor_options)
    total = api.cluster_resources()
    for name, resource, amount in (
        ("n_cpus_per_worker", "CPU", n_cpus),
        ("n_gpus_per_worker", "GPU", n_gpus),
    ):
        key = "num_cpus" if resource == "CPU" else "num_gpus"
        if amount is not None:
            if key in options:
                raise ValueError(f"give '{name}' or actor_options['{key}'], not both")
            options[key] = amount
        else:
            amount = options.get(key)
            name = f"actor_options['{key}']"
        if not isinstance(amount, (int, float)) or isinstance(amount, bool):
            continue  # unset (the actor's default), or a bad value the actor options refuse
        have = total.get(resource, 0.0)
        if amount * n_workers > have:
            raise ValueError(
                f"{n_workers} replicas x {name}={amount} need {amount * n_workers:g} {resource}, "
                f"the cluster has {have:g}: they could never all start"
            )
    env = dict(options.get("runtime_env") or {})
    env_vars = {"KERAS_BACKEND": _keras_backend(), **(env.get("env_vars") or {})}
    options["runtime_env"] = {**env, "env_vars": env_vars}
    return options


def _keras_backend() -> str:
    """The backend the replicas use: the driver's Keras', else $KERAS_BACKEND, else JAX."""
    keras = sys.modules.get("keras")
    if keras is not None:
        try:
            return str(keras.backend.backend())
        except AttributeError:  # a partly imported or foreign `keras`
            pass
    return os.environ.get("KERAS_BACKEND", DEFAULT_KERAS_BACKEND)


def _takes_weights(factory: Callable[..., Any]) -> bool:
    """Whether `factory` accepts a `weights` keyword (as `keras.applications` models do)."""
    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        return False
    return "weights" in params or any(
        p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()
    )


def _is_factory(model: Any) -> bool:
    """A class or a function that builds the model (not a built model)."""
    return isinstance(model, type) or (callable(model) and not hasattr(model, "predict"))


def _prepare(model: Any, weights: Any) -> tuple[Any, _ModelSpec, Any]:
    """Build the local model; the replicas' spec and the payload to put once."""
    backend = _keras_backend()
    if _is_factory(model):
        if _takes_weights(model):
            local = model(weights=weights)
            replica_kwargs: dict[str, Any] = {"weights": None}
        elif weights is not None:
            raise TypeError(
                f"'weights' was given but {_describe(model)} takes no 'weights' argument"
            )
        else:
            local = model()
            replica_kwargs = {}
        if not hasattr(local, "predict"):
            raise TypeError(
                f"{_describe(model)}() built {type(local).__name__}, which has no predict"
            )
        if hasattr(local, "get_weights") and hasattr(local, "set_weights"):
            spec = _ModelSpec("weights", cloudpickle.dumps(model), replica_kwargs, backend)
            return local, spec, list(local.get_weights())
        return local, _ModelSpec("instance", None, {}, backend), cloudpickle.dumps(local)
    if not hasattr(model, "predict"):
        raise TypeError(
            f"dKeras needs a model class/function or an object with predict, got {type(model).__name__}"
        )
    if weights is not None:
        raise TypeError("'weights' applies to a model class/function, not to a built model")
    return model, _ModelSpec("instance", None, {}, backend), cloudpickle.dumps(model)


def _describe(model: Any) -> str:
    return getattr(model, "__qualname__", None) or type(model).__name__


# -- data --------------------------------------------------------------------------------------


def _length(x: Any) -> int:
    """The number of samples of `x` (all inputs of a list/tuple/dict must agree)."""
    if isinstance(x, dict):
        parts = list(x.values())
    elif isinstance(x, (list, tuple)) and x and all(hasattr(p, "shape") for p in x):
        parts = list(x)
    else:
        parts = [x]
    if not parts:
        raise ValueError("predict() got an empty dict of inputs")
    try:
        lengths = {len(p) for p in parts}
    except TypeError as exc:
        raise TypeError(f"predict() needs array-like input, got {type(x).__name__}") from exc
    if len(lengths) != 1:
        raise ValueError(f"predict() inputs differ in length: {sorted(lengths)}")
    return lengths.pop()


def _slice(x: Any, start: int, stop: int) -> Any:
    """Samples `[start, stop)` of `x` (per input for a list/tuple/dict of arrays)."""
    if isinstance(x, dict):
        return {k: v[start:stop] for k, v in x.items()}
    if isinstance(x, (list, tuple)) and x and all(hasattr(p, "shape") for p in x):
        return type(x)(p[start:stop] for p in x)
    return x[start:stop]


def _combine(parts: list[Any]) -> Any:
    """Concatenate the chunks' predictions along the sample axis (per output)."""
    first = parts[0]
    if isinstance(first, dict):
        return {k: _combine([p[k] for p in parts]) for k in first}
    if isinstance(first, (list, tuple)) and first and all(hasattr(p, "shape") for p in first):
        return type(first)(_combine([p[i] for p in parts]) for i in range(len(first)))
    return np.concatenate([np.asarray(p) for p in parts])


# -- the replica -------------------------------------------------------------------------------


class _Replica:
    """One replica actor: builds the model once, then predicts the chunks it is sent."""

    def __init__(self, spec: _ModelSpec, payload: Any) -> None:
        os.environ.setdefault("KERAS_BACKEND", spec.keras_backend)  # before Keras is imported
        if spec.kind == "weights":
            factory = cloudpickle.loads(spec.factory)
            self.model = factory(**spec.factory_kwargs)
            self.model.set_weights(payload)
        else:
            self.model = cloudpickle.loads(payload)
        keras = sys.modules.get("keras")
        self.is_keras = keras is not None and isinstance(self.model, keras.Model)

    def ready(self) -> int:
        """This replica's process id, once its model is built."""
        return os.getpid()

    def predict(self, x: Any, start: int, stop: int, batch_size: int, verbose: int) -> Any:
        """The model's predictions for samples `[start, stop)` of `x`."""
        chunk = _slice(x, start, stop)
        if self.is_keras:
            return self.model.predict(chunk, batch_size=batch_size, verbose=verbose)
        return self.model.predict(chunk)


@functools.cache
def _replica_class() -> Any:
    """The remote class of replicas, made once per process (it pickles once per session)."""
    return api.remote(_Replica)
