"""The sets of a run, generated ahead of the scorer in worker processes.

A set is whole chunks of NEST_CHUNK images, each from its own generator (``sets.make_chunk``),
so the chunks of the next sets can be made by other processes while this one scores the
current set: one chunk per task, spread over a pool of single-threaded workers. The bytes are
the ones ``sets.make_set`` gives in this process (float64 generation decides no pixel by the
thread count or the CPU's kernels), and the cache is read and written as ``sets.get_set`` does.

Workers are forked (Linux): they inherit the loaded shifts, the glyph bank and the source
digits instead of importing and loading them again, and a forked child never re-runs the
caller's script (spawned ones import ``__main__``: an API call from a script without a
``__main__`` guard would start itself again). Where fork is missing, or one CPU is all there
is, sets are made in this process as before. ``ROBUSTMNIST_WORKERS`` sets the worker count
(0: in this process).

Forking after threads exist is unsafe: a child inherits every lock a thread of the parent held
at that instant, held by a thread it does not have (a worker forked while the reader thread was
inside ``numpy.load -> zipfile -> encodings`` waited on that module's import lock forever). So
every worker is forked in ``__init__``, before the reader thread exists, and never again; and
a watchdog replaces a pool that makes no progress for ``ROBUSTMNIST_WORKER_STALL_S`` seconds
(default 120) with this process, with a warning.
"""

from __future__ import annotations

import mmap
import multiprocessing
import os
import signal
import warnings
from collections.abc import Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, ThreadPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import UserError
from .fingerprint import NEST_CHUNK, chunk_digests
from .registry import Shift
from .sets import ShiftSet, get_set, make_chunk, n_chunks, set_cache_path, store_set

MAX_WORKERS = 8
# Sets generated ahead of the one being scored, at most: bounds the memory they hold (3 sets of
# 10,000 images are 24 MB) while keeping every worker busy across set boundaries.
AHEAD = 3
# Seconds without one finished chunk after which the workers are taken for stuck: a chunk is
# 500 images, well under a second to a few seconds on a busy CPU, so two minutes is no slow shift.
STALL_S = 120.0

# What forked workers inherit: the shifts of the pipeline, the source digits and the shared
# buffer they write their chunks into, set before the pool starts (fork copies or shares them,
# so nothing of them is pickled per task, and chunks do not travel through a pipe).
_SHIFTS: list[Shift] = []
_SOURCE: tuple[np.ndarray | None, np.ndarray | None] = (None, None)
_SLOTS: tuple[np.ndarray, np.ndarray] | None = None  # images slots×n×28×28, labels slots×n


def default_workers() -> int:
    """Worker processes for generation: ROBUSTMNIST_WORKERS, else one per CPU this process may
    use (at most MAX_WORKERS); 0 where there is one CPU or no fork."""
    env = os.environ.get("ROBUSTMNIST_WORKERS", "").strip()
    if env:
        try:
            count = int(env)
        except ValueError:
            raise UserError(f"ROBUSTMNIST_WORKERS must be a whole number, got {env!r}") from None
        return max(0, count) if count != 1 else 0
    if "fork" not in multiprocessing.get_all_start_methods():
        return 0
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cpus = os.cpu_count() or 1
    return min(cpus, MAX_WORKERS) if cpus >= 2 else 0


class _Stalled(Exception):
    """No chunk finished for stall_s seconds (a worker's own TimeoutError must not read as this)."""


def stall_seconds() -> float:
    """The watchdog's patience: ROBUSTMNIST_WORKER_STALL_S, else STALL_S."""
    env = os.environ.get("ROBUSTMNIST_WORKER_STALL_S", "").strip()
    if not env:
        return STALL_S
    try:
        value = float(env)
    except ValueError:
        raise UserError(f"ROBUSTMNIST_WORKER_STALL_S must be a number of seconds, got {env!r}") from None
    if value <= 0:
        raise UserError(f"ROBUSTMNIST_WORKER_STALL_S must be positive, got {env!r}")
    return value


def processes_for(fresh_sets: int, n: int, workers: int | None = None) -> int:
    """How many processes generate ``fresh_sets`` sets of n images: the workers, or 1 (this
    process) where there are fewer than two workers or too few chunks to share out (a pool
    costs a fork per worker)."""
    workers = default_workers() if workers is None else workers
    if workers >= 2 and n > 0 and fresh_sets * n_chunks(n) >= 2 * workers:
        return workers
    return 1


def _die_with_parent(parent: int) -> None:
    """Ask Linux to kill this worker when the process that forked it dies (killed by SIGTERM or
    SIGKILL, it cannot shut its pool down): a leftover worker would wait on its queue forever,
    holding its memory."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux: the pool's own shutdown is all there is
        return
    if os.getppid() != parent:  # the parent died before the request was made
        os._exit(1)


def _start_worker(parent: int) -> None:
    import torch

    _die_with_parent(parent)

    torch.set_num_threads(1)  # one process per CPU: intra-op threads would only compete
    # Ctrl-C is the parent's to handle: it cancels what is queued and waits for the chunks in
    # hand (a tenth of a second), so a worker needs no traceback of its own
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _chunk_task(shift_index: int, severity: int, params: dict, seed: int, chunk: int, slot: int) -> str:
    """Make one chunk, write it into its place in the set's slot of the shared buffer and
    return its fingerprint digest (hashed here, in parallel, rather than by the scorer)."""
    images, labels = _SOURCE
    x, y = make_chunk(_SHIFTS[shift_index], severity, params, images, labels, seed, chunk)
    slot_images, slot_labels = _SLOTS[0][slot], _SLOTS[1][slot]
    start = chunk * NEST_CHUNK
    stop = min(len(slot_labels), start + len(x))
    slot_images[start:stop] = x[: stop - start]
    slot_labels[start:stop] = y[: stop - start]
    return chunk_digests(x[: stop - start], y[: stop - start])[0]


def _shared_slots(slots: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Arrays over one anonymous shared mapping: what a forked child writes, the parent reads."""
    size = slots * n * (28 * 28 + 8)
    buf = mmap.mmap(-1, max(size, 1))
    labels = np.frombuffer(buf, dtype=np.int64, count=slots * n).reshape(slots, n)
    images = np.frombuffer(buf, dtype=np.uint8, count=slots * n * 784, offset=slots * n * 8)
    return images.reshape(slots, n, 28, 28), labels


@dataclass(frozen=True)
class SetRequest:
    shift: Shift
    severity: int
    params: dict[str, Any]


class SetPipeline:
    """``get(i)`` returns the i-th requested set (``sets.ShiftSet``), generating the uncached sets
    after it in worker processes meanwhile. Use as a context manager (the pool is shut down on
    exit, pending work cancelled)."""

    def __init__(self, requests: Sequence[SetRequest], source_images: np.ndarray | None,
                 source_labels: np.ndarray | None, n: int, seed: int, source_sha: str = "",
                 use_cache: bool = True, cache_root: Path | None = None, workers: int | None = None,
                 ahead: int = AHEAD, stall_s: float | None = None):
        self.requests = list(requests)
        self.source = (source_images, source_labels)
        self.n, self.seed, self.source_sha = n, seed, source_sha
        self.use_cache, self.cache_root = use_cache, cache_root
        self.ahead = ahead
        self.stall_s = stall_seconds() if stall_s is None else stall_s
        self.workers = default_workers() if workers is None else workers
        self._pending: dict[int, tuple[int, list[Future]]] = {}  # request -> (slot, its chunks)
        # Cached sets are read ahead too, on one thread: unzipping and hashing release the GIL,
        # so a warm run reads the next sets while this one is scored.
        self._reader = ThreadPoolExecutor(1, thread_name_prefix="robustmnist-read")
        self._reads: dict[int, Future] = {}
        self._free = list(range(ahead + 1))  # slots of the shared buffer not holding a set
        self._next = 0  # the first request not yet scheduled
        self._pool: ProcessPoolExecutor | None = None
        fresh = sum(self._fresh(r) for r in self.requests)
        if processes_for(fresh, n, self.workers) > 1:
            global _SHIFTS, _SOURCE, _SLOTS
            _SHIFTS = [r.shift for r in self.requests]
            _SOURCE = self.source
            _SLOTS = self._slots = _shared_slots(ahead + 1, n)
            self._pool = ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("fork"),
                                             initializer=_start_worker, initargs=(os.getpid(),))
            # With fork, the first submit forks every worker at once (the pool never forks
            # again): do it now, while no thread of this pipeline exists to hold a lock.
            self._pool.submit(os.getpid)

    def __enter__(self) -> SetPipeline:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _read(self, r: SetRequest) -> ShiftSet:
        s = get_set(r.shift, r.severity, r.params, *self.source, self.n, self.seed,
                    source_sha=self.source_sha, use_cache=self.use_cache, cache_root=self.cache_root)
        return s if s.chunks else replace(s, chunks=chunk_digests(s.images, s.labels))

    def close(self) -> None:
        self._reader.shutdown(wait=True, cancel_futures=True)
        self._reads.clear()
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        self._pending.clear()

    @property
    def parallel(self) -> bool:
        return self._pool is not None

    def _key_args(self, r: SetRequest) -> tuple:
        sha = self.source_sha if r.shift.kind != "generative" else ""
        return r.shift, r.severity, r.params, self.seed, self.n, sha

    def _fresh(self, r: SetRequest) -> bool:
        """Whether the set must be generated (no cached copy to read)."""
        return not (self.use_cache and set_cache_path(*self._key_args(r), self.cache_root).is_file())

    def _schedule(self, upto: int) -> None:
        """Submit the chunks of every fresh set before request ``upto`` not yet submitted."""
        upto = min(upto, len(self.requests))
        while self._next < upto:
            r = self.requests[self._next]
            if not self._fresh(r):  # cached: read (unzip, verify) in a thread meanwhile
                self._reads[self._next] = self._reader.submit(self._read, r)
                self._next += 1
                continue
            if self._pool is None:
                self._next += 1
                continue
            if not self._free:
                return  # every slot holds a set not yet taken: go on when one is
            i, self._next, slot = self._next, self._next + 1, self._free.pop()
            try:
                self._pending[i] = (slot, [self._pool.submit(_chunk_task, i, r.severity, r.params, self.seed,
                                                             k, slot) for k in range(n_chunks(self.n))])
            except BrokenProcessPool:
                self._lost_pool()
                return

    def _lost_pool(self, why: str = "stopped (out of memory?)") -> None:
        warnings.warn(f"set generation workers {why}; generating the remaining sets in this process",
                      stacklevel=3)
        if self._pool is not None:
            # a stuck worker never reads its queue again: end it, or it holds its memory until
            # this process exits
            for proc in list((getattr(self._pool, "_processes", None) or {}).values()):
                if proc.is_alive():
                    proc.kill()
            self._pool.shutdown(wait=False, cancel_futures=True)
        self._pool = None
        self._pending.clear()
        self._free = list(range(self.ahead + 1))

    def _wait(self, futures: list[Future]) -> list[str]:
        """The chunks' digests once all are done; _Stalled where none finishes for stall_s."""
        pending = set(futures)
        while pending:
            done, pending = wait(pending, timeout=self.stall_s, return_when=FIRST_COMPLETED)
            if not done:
                raise _Stalled
        return [fut.result() for fut in futures]

    def get(self, i: int) -> ShiftSet:
        r = self.requests[i]
        self._schedule(i + 1 + self.ahead)
        read = self._reads.pop(i, None)
        if read is not None:
            return read.result()
        pending = self._pending.pop(i, None)
        if pending is None:  # not for the pool, or the pool is gone
            return self._read(r)
        slot, futures = pending
        try:
            chunks = self._wait(futures)  # a worker's exception is raised here
        except BrokenProcessPool:
            self._lost_pool()
            return self.get(i)
        except _Stalled:
            self._lost_pool(f"made no progress for {self.stall_s:g} s (stuck?)")
            return self.get(i)
        images, labels = self._slots[0][slot].copy(), self._slots[1][slot].copy()
        self._free.append(slot)
        self._schedule(i + 1 + self.ahead)
        return store_set(r.shift, r.severity, r.params, images, labels, *self._key_args(r)[3:],
                         use_cache=self.use_cache, cache_root=self.cache_root, chunks=chunks)
