"""PDF pages render in worker processes: the same pixels as in-process rendering, and a page that
stalls or crashes the renderer costs only that page. Nothing here times anything: the limits are
set far below what the stalling page needs (a render bomb of ~30 s against a limit of 1 s)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import threading
from multiprocessing import active_children
from pathlib import Path

import pymupdf
import pytest

from reranker import rendering
from reranker.documents import IngestOptions, ingest_cache, load_files
from reranker.imaging import image_hash
from reranker.rendering import RenderSettings, open_pdf, render_page
from reranker.workers import ExecutorClosed, SharedExecutor

from . import bad_inputs as corpus
from .forked import ForkedWorker
from .processes import busy, children_of, cpu_seconds, resident_mb, wait_until, zombie

SETTINGS = RenderSettings(dpi=144, max_page_pixels=12_000_000, workers=2)
NO_DEADLINE = float("inf")


def rendered_here(data: bytes, settings: RenderSettings = SETTINGS) -> list[tuple]:
    doc = pymupdf.open(stream=data, filetype="pdf")
    try:
        return [render_page(page, settings) for page in doc]
    finally:
        doc.close()


def test_pages_rendered_in_worker_processes_equal_pages_rendered_here(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    data = corpus.sample_pdf(7)
    expected = rendered_here(data)
    for workers in (1, 3):
        with open_pdf(data, RenderSettings(144, 12_000_000, workers), NO_DEADLINE) as pages:
            assert isinstance(pages, rendering._InWorkers)
            assert pages.inspect(limit=7).page_count == 7
            pages.start(7)
            for index, (image, scale, content_hash) in enumerate(expected):
                got, got_scale, got_hash = pages.render(index)
                assert got.tobytes() == image.tobytes() and got.size == image.size and got.mode == "RGB"
                assert (got_scale, got_hash) == (scale, content_hash) and content_hash == image_hash(image)
            (folder,) = tmp_path.iterdir()
            assert [path.name for path in folder.iterdir()] == ["document.pdf"]  # each page's file, once read
        assert list(tmp_path.iterdir()) == []  # the private folder goes with the upload


def test_a_long_pdf_renders_a_few_pages_ahead_of_the_reader_not_all_at_once(tmp_path, monkeypatch):
    """The pool is shared by every visitor, first come first served: a long upload given to it at
    once queued ahead of everyone else's pages, and left its rendered pages (~6 MB each) in the
    render folder until read. Two pages a worker are in the pool at a time."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    data = corpus.sample_pdf(9)
    expected = [content_hash for _, _, content_hash in rendered_here(data)]
    with open_pdf(data, RenderSettings(144, 12_000_000, workers=1), NO_DEADLINE) as pdf:
        pdf.inspect(limit=9)
        pdf.start(9)
        assert pdf.scheduled == 2
        wait_until(lambda: all(future.done() for future in pdf.futures[:2]))
        (folder,) = tmp_path.iterdir()
        assert sorted(path.name for path in folder.iterdir()) == ["document.pdf", "document.pdf.0.rgb", "document.pdf.1.rgb"]
        got = []
        for index in range(9):
            got.append(pdf.render(index)[2])
            assert pdf.scheduled == min(9, index + 2)
        assert got == expected


def test_pages_too_large_render_at_a_lower_dpi_in_workers_as_here():
    settings = RenderSettings(dpi=144, max_page_pixels=50_000, workers=2)
    data = corpus.poster_pdf()
    (image, scale, content_hash), = rendered_here(data, settings)
    with open_pdf(data, settings, NO_DEADLINE) as pdf:
        pdf.inspect(limit=1)
        pdf.start(1)
        got, got_scale, got_hash = pdf.render(0)
    assert image.width * image.height <= 50_000 and scale < 1
    assert (got.size, got_scale, got_hash) == (image.size, scale, content_hash)


def test_a_page_that_fails_in_a_worker_raises_its_error_here_and_the_others_render():
    data = corpus.text_pdf("one", "two")
    with open_pdf(data, SETTINGS, NO_DEADLINE) as pages:
        pages.inspect(limit=2)
        pages.start(3)  # one page more than the PDF has
        assert pages.render(0)[0].size == (400, 240)
        with pytest.raises(RuntimeError, match=r"^IndexError: page 2 not in document$"):
            pages.render(2)
        assert pages.render(1)[0].size == (400, 240)
        assert not pages.interrupted  # an error, not a stall: the result may be cached


@pytest.mark.parametrize("where", ["workers", "here"])
def test_a_pdf_listing_more_pages_than_it_holds_keeps_those_it_has(monkeypatch, where):
    """A page tree whose /Count overstates its pages lost every page of the file to "could not be
    loaded (RuntimeError: IndexError: page 2 not in document)"; one over the file's objects, which
    MuPDF cannot count at all, is named as damaged in plain words."""
    if where == "here":  # a daemon process renders in-process
        monkeypatch.setattr(rendering, "current_process", lambda: type("Daemon", (), {"daemon": True})())
    expected = [content_hash for _, _, content_hash in rendered_here(corpus.overcounted_pdf(2, 2))]
    files = [("five.pdf", corpus.overcounted_pdf(2, 5)), ("three.pdf", corpus.overcounted_pdf(2, 3)),
             ("many.pdf", corpus.overcounted_pdf(2, 1000)), ("next.pdf", corpus.text_pdf("next"))]
    loaded = load_files(files, IngestOptions(render_workers=2))
    assert [(page.label, page.page_count) for page in loaded.pages] == [
        ("five.pdf · p.1", 2), ("five.pdf · p.2", 2), ("three.pdf · p.1", 2), ("three.pdf · p.2", 2), ("next.pdf · p.1", 1)]
    assert [page.content_hash for page in loaded.pages[:4]] == expected * 2
    assert [str(problem) for problem in loaded.problems] == [
        "five.pdf: damaged PDF: pages 3–5 are listed in it but missing — export or download it again",
        "three.pdf: damaged PDF: page 3 is listed in it but missing — export or download it again",
        "many.pdf: damaged PDF: its list of pages cannot be read, so none of them can be found — export or "
        "download it again"]
    assert [(document.name, document.page_count) for document in loaded.documents] == [
        ("five.pdf", 2), ("three.pdf", 2), ("next.pdf", 1)]


def test_the_render_folder_is_removed_when_adding_the_pages_fails(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    data = corpus.sample_pdf(7)
    assert len(load_files([("long.pdf", data)], IngestOptions(render_workers=2)).pages) == 7
    monkeypatch.setattr("reranker.documents._add_pages", lambda *args: 1 / 0)
    failed = load_files([("long.pdf", data)], IngestOptions(render_workers=2))
    assert not failed.pages and failed.problems[0].source == "long.pdf"  # reported, as any failure is
    assert list(tmp_path.iterdir()) == []


def test_render_folders_of_processes_that_no_longer_run_are_swept_and_no_other(tmp_path):
    """A process ended at once (a second stop signal, a kill) leaves its render folder behind."""
    ended = subprocess.Popen([sys.executable, "-c", "pass"])
    ended.wait()
    left = tmp_path / f"render-{ended.pid}-k2v_8q1z"
    left.mkdir()
    (left / "page-3").write_bytes(bytes(1000))
    in_use = tmp_path / f"render-{os.getpid()}-a7c0m2xe"
    in_use.mkdir()
    unnamed = tmp_path / "render-x1y2z3w4"  # not the app's naming: left alone
    unnamed.mkdir()
    someones = tmp_path / f"render-{ended.pid}-annual-report"  # the temporary folder is everyone's
    someones.mkdir()
    assert rendering.sweep_render_folders(tmp_path) == [left.name]
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted([in_use.name, unnamed.name, someones.name])


def test_a_daemon_process_renders_in_process_the_same_pages():
    """ZeroGPU's worker is a daemon, which may not start processes of its own."""
    data = corpus.sample_pdf(7)
    expected = [page.content_hash for page in load_files([("long.pdf", data)], IngestOptions(render_workers=3)).pages]
    with ForkedWorker(lambda: [p.content_hash for p in load_files([("long.pdf", data)], IngestOptions(render_workers=3)).pages]) as worker:
        assert worker.call() == expected


def test_where_processes_cannot_start_the_pages_render_here(monkeypatch):
    class NoProcesses:
        def get(self, workers):
            raise OSError("no processes in this sandbox")

        def reset(self, pool):
            pass

    data = corpus.sample_pdf(7)
    expected = [page.content_hash for page in load_files([("long.pdf", data)]).pages]
    monkeypatch.setattr(rendering, "_POOL", NoProcesses())
    loaded = load_files([("long.pdf", data)], IngestOptions(render_workers=2))
    assert not loaded.problems and [page.content_hash for page in loaded.pages] == expected


def test_a_pool_that_stopped_is_replaced_and_the_upload_still_renders():
    data = corpus.sample_pdf(7)
    options = IngestOptions(render_workers=2)
    expected = [page.content_hash for page in load_files([("long.pdf", data)], options).pages]
    stopped = rendering._POOL.get(2)
    stopped.stop()
    stopped.join()
    after = load_files([("long.pdf", data)], options)  # rendered in-process this once
    assert not after.problems and [page.content_hash for page in after.pages] == expected
    replacement = rendering._POOL.get(2)
    assert replacement is not stopped and replacement.active


def test_a_page_task_of_an_upload_that_is_over_ends_at_once_in_the_worker(tmp_path):
    """pebble hands a task to a worker as it is scheduled, so the pages an upload cancels (out of
    time, or the upload failed) still reach the workers. The upload removes its file first; a
    worker then renders nothing, though it still holds that PDF open from the page before (it
    kept rendering them, and pebble killed a worker caught on one at its next check)."""
    path = tmp_path / "document.pdf"
    path.write_bytes(corpus.sample_pdf(3))
    try:
        size, pixels_path, _, _ = rendering._render_to_file(str(path), 0, SETTINGS)  # keeps the PDF open
        os.remove(pixels_path)
        path.unlink()  # what the upload's close does first (`_InWorkers.close`)
        with pytest.raises(RuntimeError, match="is gone"):
            rendering._render_to_file(str(path), 1, SETTINGS)
        assert list(tmp_path.iterdir()) == []
    finally:
        rendering._forget_document()


def test_workers_outlive_the_request_thread_that_started_them(monkeypatch):
    """Linux sends a worker's parent-death signal (PR_SET_PDEATHSIG: SIGKILL) when the *thread*
    that started it ends. The first upload starts the pool on a request thread, which anyio ends
    once idle: the workers died with it (the next upload built a new pool; pages being rendered
    then were reported as crashing the reader)."""
    pool = SharedExecutor(rendering._new_pool, retire=rendering._retire)
    monkeypatch.setattr(rendering, "_POOL", pool)
    options = IngestOptions(render_workers=2)
    others = worker_pids()
    request = threading.Thread(target=idle_workers, args=(options,))
    request.start()
    request.join()  # the thread that started the workers has ended
    ours = worker_pids() - others
    started = pool.get(2)
    loaded = load_files([("report.pdf", corpus.sample_pdf(3))], options)
    assert len(loaded.pages) == 3 and not loaded.problems
    assert pool.get(2) is started and started.active  # the same pool, not broken
    assert ours and ours <= worker_pids() and not any(zombie(pid) for pid in ours)  # the same workers
    pool.close(rendering._stop)


def test_an_upload_rendering_as_the_process_exits_gives_up_its_pages_and_starts_nothing(monkeypatch):
    """At exit the pool is closed for good (`_POOL.close`, an atexit handler). An upload still
    rendering on another thread (a request as the app stops) must not take the stopped pool for a
    broken one: no new pool (processes spawned as the process exits) and no rendering in this
    process (MuPDF holds the GIL: a SIGTERM then waited minutes on a slow page)."""
    pool = SharedExecutor(rendering._new_pool, retire=rendering._retire)
    monkeypatch.setattr(rendering, "_POOL", pool)
    rendered_here = []
    monkeypatch.setattr(rendering._InProcess, "render", lambda self, index: rendered_here.append(index))
    options = IngestOptions(render_workers=2)
    others = worker_pids()  # the shared pool's, from earlier tests
    ours = idle_workers(options) - others
    result = {}
    upload = [("bomb.pdf", corpus.render_bomb_pdf(depth=9)), ("report.pdf", corpus.sample_pdf(3))]
    reading = threading.Thread(target=lambda: result.update(loaded=load_files(upload, options)))
    reading.start()
    start = {process.pid: cpu_seconds(process) for process in rendering_workers()}
    wait_until(lambda: any(cpu_seconds(p) - start.get(p.pid, 0) > 0.5 for p in rendering_workers()))  # in the bomb
    pool.close(rendering._stop)
    reading.join(timeout=60)
    assert not reading.is_alive()
    loaded = result["loaded"]
    assert loaded.pages == [] and rendered_here == []
    assert [problem.source for problem in loaded.problems] == ["bomb.pdf", "report.pdf"]
    assert str(loaded.problems[0]) == "bomb.pdf: page 1 not rendered: the app is shutting down"
    assert str(loaded.problems[1]) == "report.pdf: not opened: the app is shutting down"
    assert pool._executor is None
    wait_until(lambda: not worker_pids() & ours)
    assert worker_pids() <= others  # no pool was started after the close
    with pytest.raises(ExecutorClosed):
        pool.get(2)


# --- pages that stall or crash the renderer ----------------------------------------------------


def test_a_page_that_renders_too_long_is_skipped_and_the_rest_of_the_upload_loads():
    bomb = corpus.render_bomb_pdf(depth=8)  # ~30 s on one core
    cache = ingest_cache()
    options = IngestOptions(render_workers=2, page_render_seconds=1)
    workers = idle_workers(options)
    files = [("before.pdf", corpus.text_pdf("a", "b")), ("bomb.pdf", bomb), ("after.png", corpus.plain_png())]
    loaded = load_files(files, options, cache=cache)
    assert [(page.source, page.page_number) for page in loaded.pages] == [
        ("before.pdf", 1), ("before.pdf", 2), ("after.png", 1)]
    (problem,) = loaded.problems
    assert (problem.source, problem.page) == ("bomb.pdf", 1)
    assert str(problem).startswith("bomb.pdf, page 1: took over 1 s to render, so it was skipped")
    # The bomb's worker was killed (and replaced), not left rendering; another try is not
    # answered from the cache.
    assert len(workers - worker_pids()) == 1 and len(cache) == 2
    again = load_files([("before.pdf", corpus.text_pdf("a", "b"))], options)
    assert len(again.pages) == 2 and not again.problems


def test_a_pdf_whose_pages_keep_stalling_is_given_up_after_two_and_the_rest_of_the_upload_loads():
    """Each slow page holds a render worker its whole time limit: three uploads of 200 such pages
    held every ranking slot for the upload deadline (2 min), and everyone else's rankings with
    them. After two slow pages the rest of the file is given up."""
    options = IngestOptions(render_workers=2, page_render_seconds=1)
    idle_workers(options)
    files = [("bombs.pdf", corpus.render_bombs_pdf(6)), ("after.png", corpus.plain_png())]
    loaded = load_files(files, options)
    assert [(page.source, page.page_number) for page in loaded.pages] == [("after.png", 1)]
    assert [(problem.source, problem.page) for problem in loaded.problems] == [
        ("bombs.pdf", 1), ("bombs.pdf", 2), ("bombs.pdf", None)]
    assert all(problem.message.startswith("took over 1 s to render") for problem in loaded.problems[:2])
    assert str(loaded.problems[2]) == ("bombs.pdf: pages 3–6 not rendered: pages 1–2 each took over 1 s, so the rest "
                                       "of the file was given up")
    # The pages rendering ahead were stopped (their workers replaced), not left to render for ~30 s.
    wait_until(lambda: not any(busy(process) for process in rendering_workers()), seconds=10)
    again = load_files([("report.pdf", corpus.sample_pdf(2))], options)
    assert len(again.pages) == 2 and not again.problems


def test_pages_still_waiting_at_the_uploads_deadline_are_skipped_with_one_problem_a_file():
    bomb = corpus.render_bomb_pdf(depth=8)
    options = IngestOptions(render_workers=2, page_render_seconds=600, max_render_seconds=1)
    workers = idle_workers(options)
    files = [("bomb.pdf", bomb), ("later.pdf", corpus.text_pdf("1", "2", "3")), ("photo.png", corpus.plain_png())]
    loaded = load_files(files, options)
    assert [page.source for page in loaded.pages] == ["photo.png"]  # images are not rendered by MuPDF
    assert [str(problem) for problem in loaded.problems] == [
        "bomb.pdf: page 1 not rendered: this upload took over 1 s to read; upload fewer pages at a time",
        "later.pdf: not opened: this upload took over 1 s to read; upload fewer pages at a time",
    ]
    wait_until(lambda: len(workers - worker_pids()) == 1)  # the abandoned page's worker is stopped


def test_a_page_whose_renderer_dies_is_a_problem_and_the_pool_carries_on():
    """MuPDF crashing on a hostile page must cost that page only: here its worker is killed
    from outside while it renders."""
    bomb = corpus.render_bomb_pdf(depth=8)
    options = IngestOptions(render_workers=2, page_render_seconds=600)
    idle_workers(options)
    killer = threading.Thread(target=kill_the_busy_worker, daemon=True)
    killer.start()
    loaded = load_files([("bomb.pdf", bomb), ("next.pdf", corpus.text_pdf("x"))], options)
    killer.join()
    assert [page.source for page in loaded.pages] == ["next.pdf"]
    (problem,) = loaded.problems
    assert (problem.source, problem.page) == ("bomb.pdf", 1)
    assert problem.message.startswith("crashed the PDF reader (exit code -9) while trying to render it, so it was skipped")


def test_the_app_process_never_parses_an_uploaded_pdf(monkeypatch):
    """Opening and rendering both happen in the workers: a MuPDF crash on a hostile file ends a
    worker, never the app."""
    import pymupdf as mupdf_here

    def refuse(*args, **kwargs):
        raise AssertionError("the app process opened a PDF")

    files = [("report.pdf", corpus.text_pdf("one", "two")), ("locked.pdf", corpus.encrypted_pdf())]
    monkeypatch.setattr(mupdf_here, "open", refuse)
    loaded = load_files(files, IngestOptions(render_workers=2))
    assert [(page.source, page.page_number) for page in loaded.pages] == [("report.pdf", 1), ("report.pdf", 2)]
    assert [(problem.source, problem.message.split(":")[0]) for problem in loaded.problems] == [
        ("locked.pdf", "password-protected PDF")]


def test_a_file_that_takes_too_long_to_open_is_skipped_by_name():
    """Two million objects and no cross-reference table: MuPDF scans them all (~3 s here)."""
    objects = b"".join(b"%d 0 obj << /A [1 2 3] >> endobj\n" % number for number in range(1, 2_000_000))
    slow = b"%PDF-1.4\n" + objects
    loaded = load_files([("slow.pdf", slow), ("quick.pdf", corpus.text_pdf("x"))],
                        IngestOptions(render_workers=2, page_render_seconds=0.3, max_file_bytes=len(slow)))
    assert [page.source for page in loaded.pages] == ["quick.pdf"]
    (problem,) = loaded.problems
    assert str(problem).startswith("slow.pdf: took over 0.3 s to open, so it was skipped")


def test_other_uploads_render_while_a_page_stalls_the_renderer():
    """The app process holds no lock while the workers render: a second visitor's upload is
    not queued behind a page that takes long."""
    options = IngestOptions(render_workers=2, page_render_seconds=600)
    idle_workers(options)
    stalled = threading.Thread(target=load_files, args=([("bomb.pdf", corpus.render_bomb_pdf(depth=8))], options))
    stalled.start()
    wait_until(lambda: any(busy(p) for p in rendering_workers()))
    other = load_files([("report.pdf", corpus.sample_pdf(3))], options)
    assert len(other.pages) == 3 and not other.problems
    assert stalled.is_alive()  # still rendering the bomb
    kill_the_busy_worker()
    stalled.join()


def test_an_idle_worker_that_dies_costs_nothing_and_limits_still_hold():
    """pebble gives up on a whole pool when an idle worker dies (the OOM killer, say): the next
    upload starts a new pool, rather than reading the PDF in-process with no time limit."""
    options = IngestOptions(render_workers=2, page_render_seconds=1)
    idle_workers(options)
    pool = rendering._POOL.get(2)
    os.kill(rendering_workers()[0].pid, signal.SIGKILL)
    wait_until(lambda: not pool.active)
    loaded = load_files([("bomb.pdf", corpus.render_bomb_pdf(depth=8)), ("report.pdf", corpus.sample_pdf(3))], options)
    assert [page.source for page in loaded.pages] == ["report.pdf"] * 3
    (problem,) = loaded.problems
    assert str(problem).startswith("bomb.pdf, page 1: took over 1 s to render, so it was skipped")
    assert rendering._POOL.get(2) is not pool


def test_pages_the_pixel_estimate_left_out_are_rendered_when_reached():
    """The pixel estimate counts every page, loading skips refused ones: a page it left out
    but that fits is rendered then, not reported as out of time."""
    doc = pymupdf.open()
    for width, height in [(4000, 10)] + [(200, 120)] * 4:  # a 400:1 strip, then four pages
        doc.new_page(width=width, height=height).insert_text((2, 8), "x", fontsize=6)
    cache = ingest_cache()
    loaded = load_files([("report.pdf", doc.tobytes())], IngestOptions(render_workers=2, max_total_pixels=300_000), cache=cache)
    assert [page.page_number for page in loaded.pages] == [2, 3, 4]  # 96,000 px each: a fourth does not fit
    assert [problem.message.split(",")[0] for problem in loaded.problems] == ["is a 8000×20 px strip"]
    assert loaded.notes[0].endswith("Skipped: report.pdf page 5.") and len(cache) == 1


def test_an_idle_worker_lets_go_of_the_pdf_it_read(monkeypatch):
    """A 35 MB PDF took ~450 MB in the worker that opened it; idle, it goes back to its size."""
    objects = b"".join(b"%d 0 obj << /A [1 2 3] >> endobj\n" % number for number in range(1, 1_000_000))
    big = b"%PDF-1.4\n" + objects
    options = IngestOptions(render_workers=2, max_file_bytes=len(big))
    idle_workers(options)
    before = max(resident_mb(p) for p in rendering_workers())
    assert load_files([("big.pdf", big)], options).problems  # no pages in it: refused, after opening
    wait_until(lambda: max(resident_mb(p) for p in rendering_workers()) < before + 50, seconds=30)


def test_removing_the_render_folder_retries_and_never_raises(tmp_path, caplog):
    """A worker killed on cancel can write one more page file while the folder is removed."""
    class Folder:
        name = str(tmp_path)

        def __init__(self, failures):
            self.failures = failures

        def cleanup(self):
            if self.failures:
                self.failures -= 1
                raise OSError(39, "Directory not empty")

    late_file = Folder(failures=2)
    rendering._remove_folder(late_file)
    assert late_file.failures == 0 and not caplog.records
    rendering._remove_folder(Folder(failures=100))  # logged, never raised: the pages already loaded stay
    assert "could not remove the render folder" in caplog.text


def test_a_worker_ends_with_the_app_process_even_when_it_is_killed(tmp_path):
    """The time limits live in the app process; a worker must not render on after it died."""
    import subprocess
    import sys

    script = tmp_path / "stalls.py"
    script.write_text(
        "from reranker.documents import IngestOptions, load_files\n"
        "from tests.bad_inputs import render_bomb_pdf\n"
        "if __name__ == '__main__':\n"
        "    load_files([('bomb.pdf', render_bomb_pdf(depth=9))], IngestOptions(render_workers=1, page_render_seconds=600))\n")
    root = Path(__file__).resolve().parent.parent
    app = subprocess.Popen([sys.executable, str(script)], cwd=root, env={**os.environ, "PYTHONPATH": str(root)})
    try:
        busy_children = []  # the render worker (the others: multiprocessing's resource tracker)
        wait_until(lambda: busy_children.extend(c for c in children_of(app.pid) if cpu_seconds(c) > 0.5) or busy_children)
        worker = busy_children[0]
        app.kill()
        app.wait()
        wait_until(lambda: not Path(f"/proc/{worker.pid}").exists() or zombie(worker.pid))
    finally:
        app.kill()


# --- helpers: the pool's worker processes, seen from outside -----------------------------------


def rendering_workers():
    return [process for process in active_children() if process.name == "pebble_pool_worker"]


def worker_pids() -> set[int]:
    return {process.pid for process in rendering_workers()}


def idle_workers(options: IngestOptions) -> set[int]:
    """Start the pool's workers and wait until none is busy (a freshly spawned one is, while it
    imports); their process ids."""
    load_files([("warm-up.pdf", corpus.text_pdf("warm"))], options)
    wait_until(lambda: len(rendering_workers()) >= 2 and not any(busy(p) for p in rendering_workers()))
    return worker_pids()


def kill_the_busy_worker() -> None:
    """SIGKILL the worker that keeps computing (rendering the bomb): the first to use another
    half second of CPU."""
    start = {process.pid: cpu_seconds(process) for process in rendering_workers()}
    found = []
    wait_until(lambda: found.extend(p for p in rendering_workers() if cpu_seconds(p) - start.get(p.pid, 0) > 0.5) or found)
    os.kill(found[0].pid, signal.SIGKILL)


def test_a_script_without_a_main_guard_gets_one_line_per_worker_and_its_pages(tmp_path):
    """Spawned render workers re-run the script that started them: each stops with one line saying
    why (it was a 24-line traceback each), and the script's PDF is still read, in-process."""
    import subprocess
    import sys

    (tmp_path / "report.pdf").write_bytes(corpus.sample_pdf(2))
    script = tmp_path / "no_guard.py"
    script.write_text("from reranker.documents import load_files\n"
                      "result = load_files(['report.pdf'])\n"
                      "print('pages', len(result.pages))\n")
    root = Path(__file__).resolve().parent.parent
    done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(root)})
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "pages 2"
    assert "Traceback" not in done.stderr
    assert 'Put the script\'s work under `if __name__ == "__main__":`' in done.stderr
