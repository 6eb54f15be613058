"""Executors shared within one process: made on first use, and made again in a forked child.

A forked child inherits an executor object but none of its threads (nor a process pool's
manager thread), so work submitted to the inherited object would wait forever. ZeroGPU runs the
app's Rank request in a process forked from the app (`spaces.GPU`), and that worker goes on
serving later requests; every pool the request uses comes from here, so each process has its own
(and torch computes there on one thread: see `_after_fork_in_child`).
"""

from __future__ import annotations

import math
import os
import sys
import threading
import weakref
from collections.abc import Callable
from concurrent.futures import Executor, Future, ThreadPoolExecutor


# A container's CPU quota: cgroup v2 "cpu.max" ("max 100000" or "200000 100000"), v1 the pair.
CGROUP_CPU_MAX = "/sys/fs/cgroup/cpu.max"
CGROUP_V1_QUOTA = ("/sys/fs/cgroup/cpu/cpu.cfs_quota_us", "/sys/fs/cgroup/cpu/cpu.cfs_period_us")


def available_cpus() -> int:
    """CPUs this process may use: the machine's, narrowed by its CPU affinity and by a container's
    CPU quota (a Space on 2 vCPUs of a 64-core host: os.cpu_count() says 64)."""
    count = os.cpu_count() or 1
    if hasattr(os, "sched_getaffinity"):
        count = min(count, len(os.sched_getaffinity(0)))
    quota = _cgroup_cpu_quota()
    return max(1, min(count, math.ceil(quota))) if quota else count


def _cgroup_cpu_quota() -> float | None:
    def read(path: str) -> str | None:
        try:
            with open(path) as handle:
                return handle.read().strip()
        except OSError:
            return None

    fields = (read(CGROUP_CPU_MAX) or "").split()
    if len(fields) == 2 and fields[0] != "max":
        return int(fields[0]) / int(fields[1])
    quota, period = (read(path) for path in CGROUP_V1_QUOTA)
    if quota and period and int(quota) > 0:
        return int(quota) / int(period)
    return None


def refuse_in_a_rerun_script(what: str) -> None:
    """Stop a spawned worker process that is running its parent's script again, saying why.

    PDF pages render in spawned processes (reranker.rendering), and spawn re-runs the main script
    in each before it takes work: a script without an `if __name__ == "__main__":` guard would
    load the models and read the uploads again in every worker. Called where that work starts.
    The worker says so in one line and exits (an exception printed a 24-line traceback from each
    worker); the parent then renders in-process.
    """
    import multiprocessing

    if getattr(multiprocessing.current_process(), "_inheriting", False):
        print(
            f"reranker: {what} was called by a script's top-level code while the script ran again in a "
            "worker process, which stops here: reranker renders PDFs in spawned worker processes, which "
            're-run the script that started them. Put the script\'s work under `if __name__ == "__main__":`, '
            "as any script using multiprocessing must.",
            file=sys.stderr, flush=True,
        )
        raise SystemExit(1)


def default_workers() -> int:
    return min(8, available_cpus())


class ExecutorClosed(RuntimeError):
    """The shared executor was closed for good: the process is exiting."""


class SharedExecutor:
    """`factory(workers)` made on first use, again when more workers are asked for, and again
    in a process forked after it was made; after `close` (at exit), never again."""

    def __init__(self, factory: Callable[[int], Executor], workers: int | None = None,
                 retire: Callable[[Executor], None] | None = None):
        self._factory = factory
        # How a replaced executor is let go: by default its queued work still runs, then it ends.
        self._retire = retire or (lambda executor: executor.shutdown(wait=False))
        self._default_workers = workers or default_workers()
        self._forget()
        _SHARED.add(self)

    def _forget(self) -> None:
        # A new lock too: the inherited one may have been held by a parent thread at the fork.
        self._lock = threading.Lock()
        self._executor: Executor | None = None
        self._workers = 0
        # Done once `close` is called: wait on it beside a task's future, whose pool may be stopped
        # at exit without resolving it (pebble leaves a stopped pool's futures pending).
        self.on_close: Future = Future()

    @property
    def closed(self) -> bool:
        return self.on_close.done()

    def get(self, workers: int | None = None) -> Executor:
        workers = workers or self._default_workers
        with self._lock:
            if self.closed:
                raise ExecutorClosed("the process is exiting: no new work is started")
            if self._executor is None or self._workers < workers:
                if self._executor is not None:
                    self._retire(self._executor)
                self._executor, self._workers = self._factory(workers), workers
            return self._executor

    def reset(self, broken: Executor) -> None:
        """Drop `broken` (a process pool whose worker died stays broken); the next `get` makes a
        new executor. A no-op if another thread replaced it already."""
        with self._lock:
            if self._executor is broken:
                self._retire(broken)
                self._executor, self._workers = None, 0

    def shutdown(self, how: Callable[[Executor], None]) -> None:
        """Let the executor go now by `how`, if one was made (at exit, say); `get` makes a new one."""
        with self._lock:
            executor, self._executor, self._workers = self._executor, None, 0
        if executor is not None:
            how(executor)

    def close(self, how: Callable[[Executor], None]) -> None:
        """`shutdown`, and later `get`s raise ExecutorClosed. At exit: work still running on
        another thread must not start a new executor (processes spawned as the process exits)."""
        with self._lock:
            if not self.on_close.done():
                self.on_close.set_result(None)
        self.shutdown(how)

    def submit(self, function: Callable, *args, **kwargs) -> Future:
        return self.get().submit(function, *args, **kwargs)


def thread_pool(name: str, workers: int | None = None) -> SharedExecutor:
    """Worker threads named `name`-N, one per core up to 8 unless `workers` says otherwise."""
    return SharedExecutor(lambda count: ThreadPoolExecutor(max_workers=count, thread_name_prefix=name), workers)


_SHARED: weakref.WeakSet[SharedExecutor] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for shared in list(_SHARED):
        shared._forget()
    # torch's OpenMP threads do not survive a fork either: a child whose parent ran a parallel
    # op hangs in its own first one (GNU OpenMP; pytorch#17199, #89693). The child computes on
    # one intra-op thread; in ZeroGPU's worker the heavy work is on the GPU anyway.
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(1)


os.register_at_fork(after_in_child=_after_fork_in_child)
