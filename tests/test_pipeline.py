"""Sets generated ahead in worker processes (shifts/pipeline.py): the bytes, digests and cache
of the in-process path, the same errors, and the fallbacks."""

from __future__ import annotations

import multiprocessing
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from robustmnist.errors import UserError
from robustmnist.shifts import pipeline
from robustmnist.shifts.fingerprint import chunk_digests
from robustmnist.shifts.pipeline import SetPipeline, SetRequest, default_workers
from robustmnist.shifts.registry import Shift
from robustmnist.shifts.sets import NEST_CHUNK, get_set, make_set
from robustmnist.shifts.suite import load_suite

from .conftest import synthetic_digits

DEFAULT = load_suite("default")
needs_fork = pytest.mark.skipif("fork" not in multiprocessing.get_all_start_methods(),
                                reason="worker processes are forked (Linux)")


@pytest.fixture(scope="module")
def source():
    return synthetic_digits(2 * NEST_CHUNK + 30, seed=5)


def _requests(names, severities=(2, 5)):
    return [SetRequest(DEFAULT.shift(nm), s, DEFAULT.params(nm, s)) for nm in names for s in severities]


@needs_fork
def test_worker_sets_are_the_bytes_made_in_process(source, tmp_path):
    images, labels = source
    # a transform, a labelled shift, generative ones (fonts: glyph bank; dot_matrix) and a part chunk
    reqs = _requests(["gaussian_noise", "euro_one", "fonts", "dot_matrix", "zigzag"])
    n = NEST_CHUNK + 30
    with SetPipeline(reqs, images, labels, n, seed=4, source_sha="src", cache_root=tmp_path, workers=2,
                     ahead=1) as p:
        assert p.parallel
        got = [p.get(i) for i in range(len(reqs))]
    for r, s in zip(reqs, got, strict=True):
        x, y = make_set(r.shift, r.severity, r.params, images, labels, n, 4)
        assert np.array_equal(s.images, x) and np.array_equal(s.labels, y), (r.shift.name, r.severity)
        assert s.chunks == chunk_digests(x, y) and not s.cached
        # written to the cache where get_set reads it: the same set, now cached
        again = get_set(r.shift, r.severity, r.params, images, labels, n, 4, source_sha="src",
                        cache_root=tmp_path)
        assert again.cached and again.sha256 == s.sha256


@needs_fork
def test_cached_sets_are_read_not_regenerated(source, tmp_path):
    images, labels = source
    reqs = _requests(["gaussian_noise", "rotate"])
    first = get_set(reqs[0].shift, reqs[0].severity, reqs[0].params, images, labels, 600, 0,
                    source_sha="s", cache_root=tmp_path)
    with SetPipeline(reqs, images, labels, 600, 0, source_sha="s", cache_root=tmp_path, workers=2) as p:
        sets = [p.get(i) for i in range(len(reqs))]
    assert sets[0].cached and sets[0].sha256 == first.sha256
    assert not any(s.cached for s in sets[1:])


def test_no_pool_for_one_worker_or_little_work(source, monkeypatch):
    images, labels = source
    reqs = _requests(["gaussian_noise"], (3,))
    with SetPipeline(reqs, images, labels, 100, 0, use_cache=False, workers=2) as p:
        assert not p.parallel  # one chunk: not worth two forks
        s = p.get(0)
    x, _ = make_set(reqs[0].shift, 3, reqs[0].params, images, labels, 100, 0)
    assert np.array_equal(s.images, x)
    monkeypatch.setenv("ROBUSTMNIST_WORKERS", "0")
    assert default_workers() == 0
    monkeypatch.setenv("ROBUSTMNIST_WORKERS", "1")
    assert default_workers() == 0  # one worker would only add a fork
    monkeypatch.setenv("ROBUSTMNIST_WORKERS", "3")
    assert default_workers() == 3
    monkeypatch.setenv("ROBUSTMNIST_WORKERS", "many")
    with pytest.raises(UserError, match="ROBUSTMNIST_WORKERS"):
        default_workers()


def _failing(x, g, **params):
    raise UserError("this shift refuses its input")


@needs_fork
def test_a_workers_error_reaches_the_caller_as_it_is(source):
    images, labels = source
    bad = Shift("refuses", "custom", "fails on purpose", 1, "transform", _failing)
    reqs = _requests(["gaussian_noise"], (1,)) + [SetRequest(bad, 1, {})]
    with SetPipeline(reqs, images, labels, 2 * NEST_CHUNK, 0, use_cache=False, workers=2) as p:
        assert p.parallel
        assert p.get(0).images.shape == (2 * NEST_CHUNK, 28, 28)
        with pytest.raises(UserError, match="refuses its input"):
            p.get(1)


@needs_fork
def test_a_killed_worker_falls_back_to_this_process(source):
    images, labels = source
    reqs = _requests(["gaussian_noise", "rotate", "shear"], (1, 2))
    with SetPipeline(reqs, images, labels, 2 * NEST_CHUNK, 0, use_cache=False, workers=2) as p:
        first = p.get(0)
        for proc in list(p._pool._processes.values()):  # noqa: SLF001 - what an OOM kill does
            os.kill(proc.pid, 9)
        with pytest.warns(UserWarning, match="generating the remaining sets in this process"):
            rest = [p.get(i) for i in range(1, len(reqs))]
        assert not p.parallel
    for r, s in zip(reqs, [first, *rest], strict=True):
        x, _ = make_set(r.shift, r.severity, r.params, images, labels, 2 * NEST_CHUNK, 0)
        assert np.array_equal(s.images, x)


@needs_fork
def test_workers_run_one_thread_and_leave_the_callers_alone(source):
    images, labels = source
    threads = torch.get_num_threads()
    reqs = _requests(["gaussian_noise"], (1, 2, 3))
    with SetPipeline(reqs, images, labels, 2 * NEST_CHUNK, 0, use_cache=False, workers=2) as p:
        p.get(0)
        assert p._pool.submit(torch.get_num_threads).result() == 1  # noqa: SLF001
    assert torch.get_num_threads() == threads
    assert pipeline._SLOTS is not None  # the shared buffer the children wrote into


@needs_fork
def test_workers_do_not_outlive_a_killed_parent(tmp_path):
    # The parent killed outright (SIGTERM's default, SIGKILL) cannot shut its pool down: the
    # workers must go with it rather than wait on their queue forever.
    import signal
    import subprocess
    import sys
    import time

    script = tmp_path / "parent.py"
    script.write_text(
        "import os, sys\n"
        "from robustmnist.shifts.pipeline import SetPipeline, SetRequest\n"
        "from robustmnist.shifts.suite import load_suite\n"
        "from tests.conftest import synthetic_digits\n"
        "s = load_suite('default'); x, y = synthetic_digits(1000, seed=1)\n"
        "reqs = [SetRequest(s.shift('gaussian_noise'), v, s.params('gaussian_noise', v)) for v in (1, 2, 3)]\n"
        "p = SetPipeline(reqs, x, y, 1000, 0, use_cache=False, workers=2)\n"
        "p.get(0)\n"
        "print(' '.join(str(q) for q in p._pool._processes), flush=True)\n"
        "import time; time.sleep(60)\n")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True, cwd=root,
                            env=dict(os.environ, PYTHONPATH=root))
    pids = [int(v) for v in proc.stdout.readline().split()]
    assert len(pids) == 2
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    deadline = time.time() + 10
    alive = pids
    while alive and time.time() < deadline:
        time.sleep(0.1)
        alive = [q for q in pids if os.path.exists(f"/proc/{q}") and
                 open(f"/proc/{q}/stat").read().split()[2] != "Z"]
    assert not alive, f"workers {alive} outlived their parent"


@needs_fork
def test_workers_are_forked_before_the_reader_thread_holds_an_import_lock(tmp_path):
    # The hang of issue 25: the reader thread was inside an import (numpy.load -> zipfile ->
    # encodings) when the pool forked, so a worker inherited that module's lock held by a thread
    # it does not have, and waited on it forever. Recreated: a slow module imported by the reader
    # thread, a fork held back until that import is under way, and workers that import it too.
    import subprocess
    import sys

    (tmp_path / "slow_mod.py").write_text(
        "import os, time\n"
        "if os.environ.get('IN_READER'):\n"
        "    import builtins; builtins.reader_importing.set()\n"
        "time.sleep(2)\n")
    script = tmp_path / "parent.py"
    script.write_text(
        "import os, sys, threading\n"
        "import builtins; builtins.reader_importing = threading.Event()\n"
        "from robustmnist.shifts import pipeline\n"
        "from robustmnist.shifts.pipeline import SetPipeline, SetRequest\n"
        "from robustmnist.shifts.sets import get_set\n"
        "from robustmnist.shifts.suite import load_suite\n"
        "from tests.conftest import synthetic_digits\n"
        "def before_fork():\n"  # hold the fork until the reader thread (if any) is importing
        "    if any(t.name.startswith('robustmnist-read') for t in threading.enumerate()):\n"
        "        builtins.reader_importing.wait(10)\n"
        "os.register_at_fork(before=before_fork)\n"
        "real_read, real_chunk = SetPipeline._read, pipeline.make_chunk\n"
        "def slow_read(self, r):\n"
        "    os.environ['IN_READER'] = '1'; import slow_mod; return real_read(self, r)\n"
        "def chunk(*a):\n"
        "    os.environ.pop('IN_READER', None); import slow_mod; return real_chunk(*a)\n"
        "SetPipeline._read, pipeline.make_chunk = slow_read, chunk\n"
        "s = load_suite('default'); x, y = synthetic_digits(1000, seed=1)\n"
        "reqs = [SetRequest(s.shift('gaussian_noise'), v, s.params('gaussian_noise', v)) for v in (1, 2, 3)]\n"
        "import pathlib; cache = pathlib.Path(sys.argv[1])\n"
        "get_set(reqs[0].shift, 1, reqs[0].params, x, y, 1000, 0, source_sha='s', cache_root=cache)\n"
        "with SetPipeline(reqs, x, y, 1000, 0, source_sha='s', cache_root=cache, workers=2) as p:\n"
        "    assert p.parallel\n"
        "    print([p.get(i).images.shape[0] for i in range(3)], flush=True)\n")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([root, str(tmp_path)]), ROBUSTMNIST_WORKER_STALL_S="600")
    try:
        done = subprocess.run([sys.executable, str(script), str(tmp_path / "cache")], capture_output=True,
                              text=True, cwd=root, env=env, timeout=45)
    except subprocess.TimeoutExpired:
        pytest.fail("set generation hung: a worker forked while the reader thread held an import lock")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[1000, 1000, 1000]"


def _stuck_for_rotate(shift, *args):
    if shift.name == "rotate":  # in a worker only: this process's make_set is not patched
        import time
        time.sleep(3600)
    return _real_make_chunk(shift, *args)


_real_make_chunk = pipeline.make_chunk


def _ended(pid: int) -> bool:
    """Gone or a zombie. Not is_alive(): after an earlier test in the same process (Ray) another
    thread may reap children, and multiprocessing then cannot tell a dead child from a live one."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return True
    return state in ("Z", "X")


@needs_fork
def test_stuck_workers_are_replaced_by_this_process_with_a_warning(source, monkeypatch):
    images, labels = source
    monkeypatch.setattr(pipeline, "make_chunk", _stuck_for_rotate)  # before the fork: workers inherit it
    reqs = _requests(["gaussian_noise", "rotate", "shear"], (1,))
    with SetPipeline(reqs, images, labels, 2 * NEST_CHUNK, 0, use_cache=False, workers=2, stall_s=1) as p:
        first = p.get(0)
        procs = list(p._pool._processes.values())  # noqa: SLF001
        with pytest.warns(UserWarning, match="made no progress for 1 s"):
            rest = [p.get(i) for i in (1, 2)]
        assert not p.parallel
    for proc in procs:
        proc.join(30)
        assert _ended(proc.pid)  # the stuck workers were ended, not left holding memory
    for r, s in zip(reqs, [first, *rest], strict=True):
        x, _ = make_set(r.shift, r.severity, r.params, images, labels, 2 * NEST_CHUNK, 0)
        assert np.array_equal(s.images, x)


def test_the_watchdogs_patience_is_read_from_the_environment(monkeypatch):
    monkeypatch.setenv("ROBUSTMNIST_WORKER_STALL_S", "30")
    assert pipeline.stall_seconds() == 30
    monkeypatch.setenv("ROBUSTMNIST_WORKER_STALL_S", "soon")
    with pytest.raises(UserError, match="ROBUSTMNIST_WORKER_STALL_S"):
        pipeline.stall_seconds()
