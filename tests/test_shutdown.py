"""Stopping the app (SIGTERM: a Space restarting, `kill`) while it renders a visitor's upload:
the render workers end and the upload's render folder is removed, as with Ctrl-C."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading

from .app_server import start_app
from .bad_inputs import render_bomb_pdf
from .processes import children_of, cpu_seconds, wait_until, zombie


def test_sigterm_while_rendering_leaves_no_worker_and_no_upload_behind(tiny_checkpoints, tmp_path):
    from gradio_client import Client, handle_file

    temp = tmp_path / "tmp"
    temp.mkdir()
    server = start_app({**tiny_checkpoints.environment(), "TMPDIR": str(temp)}, tmp_path / "app")
    try:
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
        assert any(path.name.startswith("render-") for path in temp.iterdir())
        server.process.send_signal(signal.SIGTERM)
        assert server.process.wait(timeout=60) is not None
        wait_until(lambda: zombie(busy[0].pid), seconds=30)  # the worker that was rendering is gone
        assert not [path.name for path in temp.iterdir() if path.name.startswith("render-")]
    finally:
        server.stop()


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
