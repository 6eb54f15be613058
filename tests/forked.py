"""Run functions the way ZeroGPU's `spaces.GPU` does: in a worker process forked from this one.

ZeroGPU pickles each call's arguments, sends them to a worker forked from the app process, runs
the function there and pickles the result (or the exception) back. The worker then stays and
serves later calls. `ForkedWorker` does the same with `multiprocessing`'s fork context, so
tests catch what breaks there: an argument that does not pickle, an executor or lock inherited
through the fork, state the app process expects to find afterwards.
"""

from __future__ import annotations

import multiprocessing
import pickle
import traceback
from collections.abc import Callable

CALL_SECONDS = 300


class WorkerHung(AssertionError):
    pass


class ForkedWorker:
    def __init__(self, function: Callable, seconds: float = CALL_SECONDS, daemon: bool = True):
        self.seconds = seconds
        context = multiprocessing.get_context("fork")
        self._connection, child_end = context.Pipe()
        # ZeroGPU's worker is a daemon process (which may not start processes of its own).
        self._process = context.Process(target=self._serve, args=(function, child_end, self._connection), daemon=daemon)
        self._process.start()
        child_end.close()

    @staticmethod
    def _serve(function: Callable, connection, parent_end) -> None:
        parent_end.close()  # the fork's copy: with it open, the worker would never see the parent leave
        while True:
            try:
                payload = connection.recv_bytes()
            except EOFError:
                return
            try:
                args, kwargs = pickle.loads(payload)
                reply = ("ok", function(*args, **kwargs))
            except BaseException as error:  # sent back, as ZeroGPU does
                reply = ("error", (type(error).__name__, str(error), traceback.format_exc()))
            connection.send_bytes(pickle.dumps(reply))

    def call(self, *args, **kwargs):
        """The function's result in the worker; its exception re-raised here as RuntimeError."""
        self._connection.send_bytes(pickle.dumps((args, kwargs)))  # fails here, as on ZeroGPU
        if not self._connection.poll(self.seconds):
            self.close()
            raise WorkerHung(f"the forked worker did not answer in {self.seconds} s")
        status, value = pickle.loads(self._connection.recv_bytes())
        if status == "error":
            name, message, trace = value
            raise RuntimeError(f"{name} in the forked worker: {message}\n{trace}")
        return value

    def close(self) -> None:
        self._connection.close()
        self._process.join(timeout=10)
        if self._process.is_alive():
            self._process.kill()
            self._process.join()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
