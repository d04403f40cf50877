"""One BLAS thread while sampling and learning: tiny matrices, and the cores belong to actors."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator


@contextlib.contextmanager
def single_threaded_blas() -> Iterator[None]:
    """Limit numpy's BLAS to one thread for the block (threadpoolctl), then restore it.

    A policy network's matrices are a few hundred numbers wide: a multi-threaded BLAS spends
    more on waking its threads than on the product, and on a machine whose cores the env
    runners already fill, its spinning threads slow every process (measured: 8x per
    learner step on a loaded 2-core machine). Ray sets OMP_NUM_THREADS=1 in its workers for
    the same reason.
    """
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        yield
