"""Work done beside the scoring: a shifted set's deployment records (selective prediction,
conformal sets, shift detection) in one background thread while the next set is scored.

They are pure NumPy on logits already computed, and NumPy's sorts and searches release the GIL,
so on a warm cache (where scoring is most of a run) they cost the wall clock little instead of
~15% of it (issue 27: benchmarks/deployment_cost.json). The thread is started after the set
pipeline has forked its workers (the first shifted set comes out of it) and closed with the run:
a fork must never happen while it exists (shifts/pipeline.py).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any


class Beside:
    """Jobs keyed by an index; ``settle`` hands back the finished ones (in submission order)."""

    def __init__(self) -> None:
        self._pool: ThreadPoolExecutor | None = None
        self._pending: dict[int, Future] = {}

    def submit(self, key: int, fn: Callable[..., Any], *args) -> None:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="robustmnist-deployment")
        self._pending[key] = self._pool.submit(_timed, fn, *args)

    def pending(self) -> set[int]:
        return set(self._pending)

    def settle(self, wait: bool) -> list[tuple[int, Any, float]]:
        """(key, result, seconds) of every job done (``wait``: of every job); a job's exception
        is raised here, in the caller's thread."""
        done = []
        for key, fut in list(self._pending.items()):
            if wait or fut.done():
                value, seconds = fut.result()
                done.append((key, value, seconds))
                del self._pending[key]
        return done

    def close(self) -> None:
        """Stop the thread (jobs not started are dropped: an interrupted run saves only settled sets)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        self._pending.clear()


def _timed(fn: Callable[..., Any], *args) -> tuple[Any, float]:
    t = time.perf_counter()
    return fn(*args), time.perf_counter() - t
