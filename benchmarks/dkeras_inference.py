"""dKeras inference: predictions/s of 1..4 replica actors against the same Keras model in-process.

The model is `keras.applications.MobileNetV3Small(weights=None)` on 224x224x3 images (JAX
backend, CPU), a few hundred random images, in chunks of `--batch-size`. Every figure comes
after a warm-up predict (Keras compiles its predict step once per batch shape, in every
process) and is the best of `--repeat` timed runs; the predictions of every dKeras run are
checked against the in-process model's (the factories seed Keras, so the in-process model
and the one dKeras builds and ships to its replicas have the same weights). The in-process model uses XLA's default threading
(all cores); each replica runs XLA on `--threads-per-replica` threads (default 1, set with
`XLA_FLAGS` in the replica's `runtime_env`), so N replicas use N threads.

    python3 -m benchmarks.dkeras_inference                   # 256 images, 1..4 replicas
    python3 -m benchmarks.dkeras_inference --smoke --json x  # a tiny model, for the tests

Run the full benchmark on a quiet machine: on 2 cores the figures measure whatever else runs.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np

SINGLE_THREAD_XLA = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"


def _keras() -> Any:
    """Keras on the JAX backend (imported on first use, after the backend is chosen)."""
    os.environ.setdefault("KERAS_BACKEND", "jax")
    import keras

    return keras


def mobilenet(weights: str | None = None) -> Any:
    """MobileNetV3Small for 224x224x3 images (`weights=None`: seeded random weights, no download)."""
    keras = _keras()
    keras.utils.set_random_seed(0)  # the benchmark's reference model has the same weights
    return keras.applications.MobileNetV3Small(input_shape=(224, 224, 3), weights=weights)


def tiny_convnet(weights: str | None = None) -> Any:
    """A two-layer convolutional net on 32x32x3 images: the smoke run's model."""
    if weights is not None:
        raise ValueError("tiny_convnet has no pretrained weights")
    keras = _keras()
    keras.utils.set_random_seed(0)
    return keras.Sequential(
        [
            keras.Input((32, 32, 3)),
            keras.layers.Conv2D(8, 3, activation="relu"),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )


MODELS: dict[str, tuple[Callable[..., Any], tuple[int, int, int]]] = {
    "mobilenet": (mobilenet, (224, 224, 3)),
    "tiny": (tiny_convnet, (32, 32, 3)),
}


def _best_rate(predict: Callable[[np.ndarray], Any], images: np.ndarray, repeat: int) -> float:
    """Predictions/s of the fastest of `repeat` timed calls."""
    best = float("inf")
    for _ in range(repeat):
        began = time.perf_counter()
        predict(images)
        best = min(best, time.perf_counter() - began)
    return len(images) / best


def measure(
    model_name: str,
    n_images: int,
    replicas: list[int],
    batch_size: int,
    threads_per_replica: int,
    repeat: int,
) -> dict[str, Any]:
    """Run the in-process model and dKeras for each replica count; the figures as a dict."""
    # MODELS by module name even when run as `python -m`: replicas unpickle the factory by
    # reference, and `__main__` is not this module in their process
    import runtime
    from benchmarks.dkeras_inference import MODELS as models
    from runtime.dkeras import IN_FLIGHT_PER_WORKER, dKeras

    factory, shape = models[model_name]
    images = np.random.default_rng(0).random((n_images, *shape), dtype=np.float32)
    local = factory(weights=None)
    local.predict(images[:batch_size], batch_size=batch_size, verbose=0)  # compile
    expected = local.predict(images, batch_size=batch_size, verbose=0)
    figures: dict[str, Any] = {
        "in_process": _best_rate(
            lambda x: local.predict(x, batch_size=batch_size, verbose=0), images, repeat
        ),
        "replicas": {},
        "startup_s": {},
    }
    env_vars = {} if threads_per_replica == 0 else {"XLA_FLAGS": _xla_flags(threads_per_replica)}
    runtime.init(num_cpus=os.cpu_count() or 2)
    try:
        for n in replicas:
            began = time.perf_counter()
            model = dKeras(
                factory,
                n_workers=n,
                wait_for_workers=True,
                actor_options={"runtime_env": {"env_vars": env_vars}},
            )
            figures["startup_s"][n] = time.perf_counter() - began
            try:
                warm = np.resize(images, (n * IN_FLIGHT_PER_WORKER * batch_size, *shape))
                model.predict(warm, batch_size=batch_size)  # every replica compiles
                got = model.predict(images, batch_size=batch_size)
                np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)
                figures["replicas"][n] = _best_rate(
                    lambda x, m=model: m.predict(x, batch_size=batch_size), images, repeat
                )
            finally:
                model.close()
    finally:
        runtime.shutdown()
    return figures


def _xla_flags(threads: int) -> str:
    """XLA flags for `threads` intra-op threads on the CPU."""
    if threads == 1:
        return SINGLE_THREAD_XLA
    return f"intra_op_parallelism_threads={threads}"


def _table(figures: dict[str, Any], params: dict[str, Any]) -> str:
    """The figures as a printed table: predictions/s and the speed-up over in-process."""
    base = figures["in_process"]
    threads = params["threads_per_replica"] or "XLA default"
    lines = [
        f"dKeras inference: {params['model']}, {params['images']} images, batch "
        f"{params['batch_size']}, {os.cpu_count()} CPUs, best of {params['repeat']}",
        f"{'run':<34}{'predictions/s':>14}{'vs in-process':>15}{'start-up s':>12}",
        f"{'in-process (XLA threads: all)':<34}{base:>14.1f}{'1.00x':>15}{'-':>12}",
    ]
    for n, rate in figures["replicas"].items():
        label = f"dKeras, {n} replica(s) x {threads} thread(s)"
        start = figures["startup_s"][n]
        lines.append(f"{label:<34}{rate:>14.1f}{rate / base:>14.2f}x{start:>12.1f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Parse the flags, run the benchmark, print the table (and write `--json`)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, help="images per predict (default 256)")
    parser.add_argument("--replicas", help="comma-separated replica counts (default 1,2,3,4)")
    parser.add_argument("--batch-size", type=int, default=32, help="samples per chunk")
    parser.add_argument(
        "--threads-per-replica", type=int, default=1, help="XLA threads per replica (0: default)"
    )
    parser.add_argument("--repeat", type=int, help="timed runs per figure, best kept (default 3)")
    parser.add_argument("--smoke", action="store_true", help="a tiny model, 16 images, 1 replica")
    parser.add_argument("--json", help="also write the figures to this file")
    opts = parser.parse_args(sys.argv[1:] if argv is None else argv)
    model, images, replicas, repeat = (
        ("tiny", 16, "1", 1) if opts.smoke else ("mobilenet", 256, "1,2,3,4", 3)
    )
    images = opts.images or images
    repeat = opts.repeat or repeat
    try:
        counts = [int(n) for n in (opts.replicas or replicas).split(",") if n]
    except ValueError:
        parser.error(f"--replicas must be comma-separated ints, got {opts.replicas!r}")
    if not counts or min(counts) < 1:
        parser.error("--replicas needs positive counts")
    if images < 1 or opts.batch_size < 1 or repeat < 1 or opts.threads_per_replica < 0:
        parser.error("--images, --batch-size and --repeat must be >= 1, threads >= 0")
    params = {
        "model": model,
        "images": images,
        "replicas": counts,
        "batch_size": opts.batch_size,
        "threads_per_replica": opts.threads_per_replica,
        "repeat": repeat,
    }
    figures = measure(model, images, counts, opts.batch_size, opts.threads_per_replica, repeat)
    print(_table(figures, params))
    if opts.json:
        with open(opts.json, "w") as f:
            json.dump({"params": params, "figures": figures}, f, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
