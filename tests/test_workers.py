"""Shared executors keep working in a process forked after they were made (ZeroGPU's worker)."""

from __future__ import annotations

import os
import threading
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context

import pytest

from reranker.workers import ExecutorClosed, SharedExecutor, thread_pool

from .forked import ForkedWorker


def _thread_name_and_pid(_=None) -> tuple[str, int]:
    return threading.current_thread().name, os.getpid()


def test_a_thread_pool_used_before_a_fork_still_runs_work_in_the_child():
    pool = thread_pool("fork-test")
    name, pid = pool.submit(_thread_name_and_pid).result()
    assert name.startswith("fork-test") and pid == os.getpid()

    with ForkedWorker(lambda: pool.submit(_thread_name_and_pid).result(timeout=30), seconds=60) as worker:
        child_name, child_pid = worker.call()
        assert child_name.startswith("fork-test") and child_pid != os.getpid()
        assert worker.call()[1] == child_pid  # the child's own pool serves its later calls too
    assert pool.submit(_thread_name_and_pid).result()[1] == os.getpid()  # the parent's is untouched


def test_a_lock_held_in_the_parent_at_the_fork_does_not_block_the_child():
    pool = thread_pool("fork-lock")
    pool.submit(_thread_name_and_pid).result()
    with pool._lock:  # as if another thread were making the executor at the moment of the fork
        worker = ForkedWorker(lambda: pool.submit(_thread_name_and_pid).result(timeout=30), seconds=60)
    with worker:
        assert worker.call()[0].startswith("fork-lock")


def test_a_process_pool_grows_when_more_workers_are_asked_for_and_survives_a_fork():
    made = []

    def factory(workers: int) -> ProcessPoolExecutor:
        made.append(workers)
        return ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn"))

    processes = SharedExecutor(factory, workers=1)
    assert processes.get().submit(os.getpid).result() != os.getpid()
    assert processes.get(1) is processes.get()  # the same executor while it is big enough
    bigger = processes.get(2)
    assert made == [1, 2] and bigger.submit(abs, -3).result() == 3

    def in_the_child() -> int:
        result = processes.get(2).submit(abs, -5).result(timeout=60)
        processes.get(2).shutdown()  # the child's own pool; its processes would outlive the test
        return result

    with ForkedWorker(in_the_child, seconds=90, daemon=False) as worker:
        assert worker.call() == 5
    assert processes.get(2) is bigger


def test_available_cpus_follow_a_containers_cpu_quota(tmp_path, monkeypatch):
    from reranker import workers

    machine = min(os.cpu_count(), len(os.sched_getaffinity(0)))
    v2, quota, period = tmp_path / "cpu.max", tmp_path / "cfs_quota_us", tmp_path / "cfs_period_us"
    monkeypatch.setattr(workers, "CGROUP_CPU_MAX", str(v2))
    monkeypatch.setattr(workers, "CGROUP_V1_QUOTA", (str(quota), str(period)))
    assert workers.available_cpus() == machine  # no cgroup files
    v2.write_text("max 100000\n")
    assert workers.available_cpus() == machine  # no quota
    v2.write_text("50000 100000\n")
    assert workers.available_cpus() == 1  # half a CPU still gets one worker
    v2.unlink()
    quota.write_text("-1\n")
    period.write_text("100000\n")
    assert workers.available_cpus() == machine  # v1, no quota
    quota.write_text("100000\n")
    assert workers.available_cpus() == 1


def test_shutdown_lets_the_executor_go_once_and_a_later_use_makes_a_new_one():
    from concurrent.futures import ThreadPoolExecutor

    ended = []
    shared = SharedExecutor(lambda count: ThreadPoolExecutor(count), workers=1)
    shared.shutdown(ended.append)
    assert ended == []  # never made: nothing to end
    first = shared.get()
    shared.shutdown(ended.append)
    assert ended == [first]
    assert shared.submit(lambda: 42).result() == 42 and shared.get() is not first
    shared.shutdown(lambda executor: executor.shutdown())


def test_close_lets_the_executor_go_and_refuses_new_work_for_good():
    """At exit (rendering's atexit handler): work still running on another thread must not make a
    new executor, and whoever waits on a task's future beside `on_close` wakes up."""
    from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait

    ended = []
    shared = SharedExecutor(lambda count: ThreadPoolExecutor(count), workers=1)
    first = shared.get()
    never_done = Future()  # a task of a pool stopped without resolving it
    waiter = ThreadPoolExecutor(1).submit(wait, [never_done, shared.on_close], return_when=FIRST_COMPLETED)
    assert not shared.closed
    shared.close(ended.append)
    assert ended == [first] and shared.closed
    assert waiter.result(timeout=60).done == {shared.on_close}
    with pytest.raises(ExecutorClosed, match="exiting"):
        shared.get()
    shared.close(ended.append)  # twice: nothing more to end
    assert ended == [first]
    first.shutdown()
