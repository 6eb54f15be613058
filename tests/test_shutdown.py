"""Stopping the app (SIGTERM: a Space restarting, `kill`) while it renders a visitor's upload:
the render workers end and the upload's render folder is removed, as with Ctrl-C."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from .app_server import start_app
from .bad_inputs import render_bomb_pdf
from .processes import children_of, cpu_seconds, wait_until, zombie


def _rendering_a_bomb(server, tmp_path) -> list:
    """A visitor's upload that renders for minutes, under way: returns the busy render worker(s)."""
    from gradio_client import Client, handle_file

    bomb = tmp_path / "bomb.pdf"
    bomb.write_bytes(render_bomb_pdf(depth=9))  # minutes of rendering

    def visitor():
        try:
            Client(server.url, verbose=False).predict(files=[handle_file(str(bomb))], query="q", api_name="/rank")
        except Exception:
            pass  # the app went away mid-request: expected

    threading.Thread(target=visitor, daemon=True).start()
    busy = []
    wait_until(lambda: busy.extend(c for c in children_of(server.process.pid) if cpu_seconds(c) > 0.5) or busy)
    return busy


def test_sigterm_while_rendering_leaves_no_worker_and_no_upload_behind(tiny_checkpoints, tmp_path):
    temp = tmp_path / "tmp"
    temp.mkdir()
    server = start_app({**tiny_checkpoints.environment(), "TMPDIR": str(temp)}, tmp_path / "app")
    try:
        busy = _rendering_a_bomb(server, tmp_path)
        assert any(path.name.startswith("render-") for path in temp.iterdir())
        server.process.send_signal(signal.SIGTERM)
        assert server.process.wait(timeout=60) is not None
        wait_until(lambda: zombie(busy[0].pid), seconds=30)  # the worker that was rendering is gone
        assert not [path.name for path in temp.iterdir() if path.name.startswith("render-")]
    finally:
        server.stop()


def test_a_second_stop_signal_ends_at_once_and_the_next_start_removes_the_render_folder_left(tiny_checkpoints, tmp_path):
    from reranker import rendering

    temp = tmp_path / "tmp"
    temp.mkdir()
    server = start_app({**tiny_checkpoints.environment(), "TMPDIR": str(temp)}, tmp_path / "app")
    try:
        busy = _rendering_a_bomb(server, tmp_path)
        left = [path.name for path in temp.iterdir() if path.name.startswith("render-")]
        assert left
        server.process.send_signal(signal.SIGTERM)
        wait_until(lambda: "stopping" in server.log_path.read_text())  # one signal at a time: pending ones merge
        server.process.send_signal(signal.SIGTERM)  # "now": no waiting for the upload to give up
        assert server.process.wait(timeout=30) == 128 + signal.SIGTERM
        wait_until(lambda: zombie(busy[0].pid), seconds=30)  # its render worker ended with it
        assert [path.name for path in temp.iterdir() if path.name.startswith("render-")] == left
    finally:
        server.stop()
    # What the next start of the app does first (ui.create_arena): the app that made it is gone.
    assert rendering.sweep_render_folders(temp) == left


def run_script(tmp_path, name: str, text: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """`text` run as the script `name` in a fresh Python, from the repository root."""
    script = tmp_path / name
    script.write_text(text)
    root = __file__.rsplit("/tests/", 1)[0]
    return subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=timeout,
                          env={"PYTHONPATH": root, "PATH": "/usr/bin:/bin"}, cwd=root)


EXIT_AFTER_A_TIME_OUT = """
from reranker.documents import IngestOptions, load_files
from tests.bad_inputs import render_bomb_pdf

if __name__ == "__main__":
    result = load_files([("bomb.pdf", render_bomb_pdf(8))], IngestOptions(page_render_seconds=1))
    print(result.problems[0])
"""


def test_a_process_that_exits_just_after_a_render_time_out_exits_quietly(tmp_path):
    """The worker killed over its time limit is being replaced as the process exits: that
    replacement must not print a traceback into a CLI user's terminal."""
    done = run_script(tmp_path, "exit_after_time_out.py", EXIT_AFTER_A_TIME_OUT)
    assert done.returncode == 0 and "took over 1 s to render" in done.stdout
    assert done.stderr == ""


UNGUARDED_SCRIPT = """
from reranker.documents import load_files
from tests.bad_inputs import sample_pdf

pages = load_files([("report.pdf", sample_pdf(3))]).pages
print("read", len(pages), "pages")
"""


def test_a_script_without_a_main_guard_reads_its_pdf_once_and_is_told_why_workers_failed(tmp_path):
    """Spawned render workers re-run the script that started them: its top-level work must not
    run again in each of them (with models, on a GPU, that is a model per worker)."""
    done = run_script(tmp_path, "unguarded.py", UNGUARDED_SCRIPT, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("read 3 pages") == 1  # the workers stopped before reading it again
    assert 'Put the script\'s work under `if __name__ == "__main__":`' in done.stderr


THREAD_AFTER_MAIN = """
import threading

import pytest
from reranker.documents import load_files
from tests.bad_inputs import sample_pdf

def late_reader():
    threading.main_thread().join()  # the script's main code has ended; this thread goes on
    loaded = load_files([("report.pdf", sample_pdf(3))])
    print("read", len(loaded.pages), "pages", [str(p) for p in loaded.problems])

if __name__ == "__main__":
    threading.Thread(target=late_reader).start()
"""


def test_a_thread_still_reading_pdfs_after_the_main_code_ends_reads_them(tmp_path):
    """The render pool closes for good at exit, after a script's other (non-daemon) threads are
    done: closed as the main thread ended, a later read lost every page, blamed on a time-out."""
    done = run_script(tmp_path, "thread_after_main.py", THREAD_AFTER_MAIN)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == "read 3 pages []"


MODEL_WORK_AT_EXIT = """
import os, sys, threading, time
from types import SimpleNamespace

import torch

from reranker.ranking import Scored, ScoringTurns
from reranker.ui import shut_down

finish = sys.argv[1] == "finishes"
running = threading.Event()


def model_work(pool, query, work, *rest):  # torch, as a model's forward is
    x = torch.randn(400, 400)
    running.set()
    end = time.monotonic() + (0.2 if finish else 3600)
    while time.monotonic() < end:
        x = (x @ x).tanh()
    return {key: Scored([0.5] * len(pages)) for key, pages in work.items()}


turns = ScoringTurns(model_work)
threading.Thread(target=turns, args=(None, "q", {"model": [SimpleNamespace(content_hash="h")]}), daemon=True).start()
running.wait()
shut_down(SimpleNamespace(scoring=turns), wait_s=2)
print("exits as Python does", flush=True)
os._exit(0)  # as app.py ends: torch's own threads may still be winding down
"""


@pytest.mark.parametrize("case", ["finishes", "runs on"])
def test_model_work_under_way_at_a_stop_never_aborts_the_process(tmp_path, case):
    """A thread still inside torch as Python exits aborts it: "terminate called without an
    active exception", exit -6 (SIGABRT), on every Ctrl-C or SIGTERM during a ranking. The app
    waits for the work a while, then ends without Python's exit."""
    done = run_script(tmp_path, "stop_during_model_work.py", MODEL_WORK_AT_EXIT.replace('sys.argv[1]', repr(case)))
    assert done.returncode == 0, done.stderr[-2000:]
    assert "terminate called" not in done.stderr
    if case == "finishes":
        assert done.stdout == "exits as Python does\n"
    else:
        assert done.stdout == "" and "model work is still running; stopping without waiting for it" in done.stderr


def test_no_ranking_starts_model_work_once_the_app_is_stopping():
    from reranker.ranking import AppStopping, ScoringTurns

    turns = ScoringTurns(lambda *args: {})
    assert turns.stop(timeout=0)  # nothing under way
    with pytest.raises(AppStopping, match="the app is stopping; rank again once it is back"):
        turns(None, "q", {"model": []})


@pytest.mark.parametrize("signal_number, after", [(signal.SIGINT, None), (signal.SIGTERM, "reranker.ui.arena: database")])
def test_a_stop_signal_while_the_app_starts_stops_it_quietly(tiny_checkpoints, tmp_path, signal_number, after):
    """Ctrl-C during the imports printed a traceback; SIGTERM while Gradio built its server was
    swallowed by one of Gradio's event loops, and the app went on serving."""
    from .app_server import ROOT, free_port

    log = tmp_path / "app.log"
    env = {**os.environ, **tiny_checkpoints.environment(), "RERANKER_DB": str(tmp_path / "arena.db"),
           "RERANKER_CACHE": str(tmp_path / "cache"), "GRADIO_SERVER_PORT": str(free_port()), "GRADIO_ANALYTICS_ENABLED": "False"}
    with open(log, "w") as output:
        process = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env, stdout=output, stderr=subprocess.STDOUT)
    try:
        if after is None:
            time.sleep(0.5)  # during the imports
        else:
            wait_until(lambda: after in log.read_text(), seconds=120)
            time.sleep(0.6)  # Gradio builds its server now
        process.send_signal(signal_number)
        assert process.wait(timeout=60) == 0, log.read_text()[-3000:]
    finally:
        if process.poll() is None:
            process.kill()
    assert "Traceback" not in log.read_text() and "Exception ignored" not in log.read_text()
