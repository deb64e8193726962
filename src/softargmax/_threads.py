"""A small pool of Python threads for work made of BLAS products and nogil kernels.

Attention blocks and the vocabulary chunks of ``linear_cross_entropy`` are matrix
products (NumPy's BLAS) interleaved with elementwise work (NumPy loops or serial numba
kernels, ``nogil``). Both release the GIL, so a few Python threads keep the cores busy,
each task on one core. BLAS is held to one thread meanwhile: on blocks this small its
own threads cost more than they give, they would oversubscribe the cores of the pool,
and threads of two pools that take turns (BLAS, then numba's OpenMP threads) each spin
while the other works.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

__all__ = ["ONE_BLAS_THREAD", "default_threads", "run_tasks"]


def default_threads() -> int:
    """The number of cores this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not on Linux
        return max(1, os.cpu_count() or 1)


class _OneBlasThread:
    """Hold the BLAS of NumPy to one thread while any user of the pool runs.

    Reference counted, so that concurrent calls from several user threads restore the
    setting only when the last one leaves. Uses threadpoolctl (installed with SciPy and
    scikit-learn); without it nothing is changed.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._users = 0
        self._limiter: Any = None
        self._controller: Any = None

    def __enter__(self) -> None:
        with self._lock:
            self._users += 1
            if self._users > 1:
                return
            if self._controller is None:
                try:
                    from threadpoolctl import ThreadpoolController
                except ImportError:  # pragma: no cover - comes with scipy/scikit-learn
                    self._controller = False
                else:
                    self._controller = ThreadpoolController()
            if self._controller:
                self._limiter = self._controller.limit(limits=1, user_api="blas")

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self._users -= 1
            if self._users == 0 and self._limiter is not None:
                self._limiter.restore_original_limits()
                self._limiter = None


ONE_BLAS_THREAD = _OneBlasThread()


def run_tasks(tasks: Sequence[Any], fn: Callable[[Any, dict[str, Any]], Any], threads: int) -> list[Any]:
    """``[fn(task, buffers) for task in tasks]`` on ``threads`` workers (dynamic order).

    ``buffers`` is a per-worker dict for scratch arrays. BLAS runs on one thread and
    floating-point warnings are silenced in every worker (NumPy's error state is per
    thread). The first exception of a task is raised in the caller's thread.
    """
    results: list[Any] = [None] * len(tasks)
    threads = min(threads, len(tasks))
    if threads <= 1:
        state: dict[str, Any] = {}
        with ONE_BLAS_THREAD, np.errstate(all="ignore"):
            for i, t in enumerate(tasks):
                results[i] = fn(t, state)
        return results
    lock = threading.Lock()
    order = iter(range(len(tasks)))
    failed: list[BaseException] = []

    def worker() -> None:
        state: dict[str, Any] = {}
        with np.errstate(all="ignore"):
            while not failed:
                with lock:
                    i = next(order, None)
                if i is None:
                    return
                try:
                    results[i] = fn(tasks[i], state)
                except BaseException as err:  # re-raised in the caller's thread
                    failed.append(err)
                    return

    with ONE_BLAS_THREAD, ThreadPoolExecutor(threads) as pool:
        for f in [pool.submit(worker) for _ in range(threads)]:
            f.result()
    if failed:
        raise failed[0]
    return results
