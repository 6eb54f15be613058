"""PDFs → facts and page pixels, in worker processes, each step under a time limit.

MuPDF keeps Python's GIL while it works (measured: a second thread got 3 turns in 0.3 s of
rendering instead of 30), and a PDF can be built to stall it: a 2.5 KB PDF of form XObjects,
each drawing the next one ten times, eight deep, renders for ~30 s; a 75 MB file of two million
objects without a cross-reference table takes ~3 s to open. In the app's process that would
freeze every visitor's request, and a MuPDF crash on a hostile file would end the app. So the
app process never parses an uploaded PDF: workers of a pebble `ProcessPool` open it (`inspect`:
page count, password, repairs, page sizes) and render its pages, one task a page, a few pages
ahead of the reader:

- a step over `RenderSettings.page_seconds` has its worker killed and becomes a problem;
- a step that crashes MuPDF kills only its worker (replaced by the pool);
- what is still waiting when the upload's deadline passes is not done;
- every other page and file carries on.

Only where worker processes cannot run (a daemon process such as ZeroGPU's worker may not start
children; a sandbox) does this process do the work, without those limits: MuPDF cannot be
interrupted here.

Workers write each page's pixels to a file in a private folder, read once here (through the
pool's pipe each page's ~6 MB was copied about five times; POSIX shared memory is often capped
at 64 MB in containers and leaks when a worker dies). Spawned, not forked, workers: the app
process runs threads and may hold a GPU context.

    with open_pdf(data, settings, deadline) as pdf:
        facts = pdf.inspect(limit=200)                  # raises PageFailed / OutOfTime
        pdf.start(facts.page_count)
        image, scale, content_hash = pdf.render(0)      # raises PageFailed / OutOfTime / RuntimeError
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import logging
import math
import os
import re
import shutil
import signal
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, BrokenExecutor, Future, wait
from dataclasses import dataclass
from multiprocessing import current_process, get_context, parent_process
from pathlib import Path

import pymupdf

# MuPDF prints its complaints about damaged files to stdout, in worker processes too, which
# would corrupt `score --json`; the file's problem is reported anyway. To Python logging, at a
# level the default handler does not show.
pymupdf.set_messages(pylogging=True, pylogging_level=logging.DEBUG)
from pebble import ProcessExpired, ProcessPool
from PIL import Image

from .imaging import pixels_hash
from .workers import ExecutorClosed, SharedExecutor, default_workers, thread_pool

logger = logging.getLogger(__name__)

# PyMuPDF is not thread-safe and Gradio runs callbacks on worker threads. Every MuPDF document in
# this process is opened, used and closed under this lock.
MUPDF_LOCK = threading.Lock()


@dataclass(frozen=True)
class RenderSettings:
    dpi: float
    max_page_pixels: int  # a larger page is rendered at the lower DPI that fits
    workers: int = 0  # worker processes; 0: one per available CPU, up to 8
    page_seconds: float = 15.0  # opening the file, or rendering a page, that takes longer is given up


class PageFailed(Exception):
    """A step (opening the file, rendering a page) failed for good: the message says why, for
    the person who uploaded it, and reads after "file.pdf, page 3: "."""


class PageTooSlow(PageFailed):
    """The step took longer than `RenderSettings.page_seconds` and its worker was stopped."""


class OutOfTime(Exception):
    """The upload's deadline passed before this step was done."""


class Stopped(OutOfTime):
    """The render pool was closed for good (the process is exiting) before this step was done."""


@dataclass(frozen=True)
class PdfFacts:
    """What opening a PDF told, as plain data (MuPDF's objects stay in the process that made them)."""

    open_error: str | None = None  # MuPDF's reason when the file cannot be opened at all
    locked: bool = False  # needs a password (the empty one, which opens many "encrypted" files, did not)
    page_count: int = 0  # the pages MuPDF found
    repaired: bool = False  # MuPDF rebuilt a broken cross-reference table
    page_sizes: tuple[tuple[float, float], ...] = ()  # (width, height) in points of the first pages asked for
    listed_pages: int = 0  # the pages its page tree claims: more than page_count when some are missing
    page_tree_broken: bool = False  # it opened, but its page tree cannot be read: no page can be found
    security_handler: str | None = None  # encrypted other than by password (Adobe.PubSec: a certificate)


class Pdf:
    """One uploaded PDF: `inspect` it, `start` rendering pages [0, count), `render` each."""

    interrupted = False  # a step ran out of time or crashed: the result is not worth caching

    def inspect(self, limit: int) -> PdfFacts:
        """Open the PDF; `page_sizes` covers its first `limit` pages."""
        raise NotImplementedError

    def start(self, count: int) -> None:
        """Begin rendering pages [0, count), to be read in that order."""

    def render(self, index: int) -> tuple[Image.Image, float, str]:
        """(RGB image, scale against the asked DPI, content hash) of page `index` (< count)."""
        raise NotImplementedError

    def close(self) -> None:
        pass


@contextlib.contextmanager
def open_pdf(data: bytes, settings: RenderSettings, deadline: float) -> Iterator[Pdf]:
    """The PDF `data`, handled by worker processes (see the module's docstring). `deadline`:
    time.monotonic() after which steps not yet done raise OutOfTime."""
    if current_process().daemon:
        pdf: Pdf = _InProcess(data, settings)
    else:
        folder = tempfile.TemporaryDirectory(prefix=_render_folder_prefix())  # removed whatever happens
        try:
            pdf = _InWorkers(data, settings, deadline, folder.name)
        except Exception:
            folder.cleanup()
            raise
    try:
        yield pdf
    finally:
        pdf.close()
        if isinstance(pdf, _InWorkers):
            _remove_folder(folder)


def render_page(page: pymupdf.Page, settings: RenderSettings) -> tuple[Image.Image, float, str]:
    """`Pdf.render` for a page open in this process, read and hashed straight from MuPDF's
    buffer (one copy of the pixels fewer than `Pixmap.pil_image` and `image_hash`)."""
    pixmap, scale = _render_pixmap(page, settings)
    pixels, size = pixmap.samples_mv, (pixmap.width, pixmap.height)
    return Image.frombytes("RGB", size, pixels), scale, pixels_hash("RGB", size, pixels)


def _render_pixmap(page: pymupdf.Page, settings: RenderSettings) -> tuple[pymupdf.Pixmap, float]:
    """RGB render at settings.dpi, or at the lower DPI that keeps it within max_page_pixels."""
    wanted = zoom = settings.dpi / 72  # PDF units are 1/72 inch
    pixels = page.rect.width * page.rect.height * zoom * zoom
    if pixels > settings.max_page_pixels:
        zoom *= math.sqrt(settings.max_page_pixels / pixels)
        # MuPDF rounds the pixmap outwards to whole pixels: shave until it really fits.
        while _area((page.rect * pymupdf.Matrix(zoom, zoom)).irect) > settings.max_page_pixels:
            zoom *= 0.999
    pixmap = page.get_pixmap(matrix=pymupdf.Matrix(zoom, zoom), colorspace=pymupdf.csRGB, alpha=False)
    return pixmap, zoom / wanted


def _area(rect: pymupdf.IRect) -> int:
    return rect.width * rect.height


def _inspect(opener, limit: int) -> tuple[PdfFacts, pymupdf.Document | None]:
    """The facts of the PDF that `opener()` opens, and the open document (None if it did not open)."""
    try:
        doc = opener()
    except (pymupdf.FileDataError, RuntimeError, ValueError) as error:
        # PyMuPDF's own error says only "Failed to open stream"; MuPDF's, its cause, says why.
        handler = re.search(r"unknown encryption handler: '(.*)'", str(error.__cause__ or ""))
        return PdfFacts(open_error=str(error), security_handler=handler[1] if handler else None), None
    if doc.needs_pass and not doc.authenticate(""):
        doc.close()
        return PdfFacts(locked=True), None
    try:
        listed = doc.page_count  # the page tree's /Count
    except Exception:  # MuPDF refuses a /Count beyond what the file could hold
        doc.close()
        return PdfFacts(page_tree_broken=True), None
    # A /Count over the pages the tree holds: loading the last page listed fails, and MuPDF then
    # counts the pages that are there (those load as usual).
    if listed:
        with contextlib.suppress(Exception):
            doc.load_page(listed - 1)
    sizes = []
    for index in range(min(limit, doc.page_count)):
        try:
            rect = doc.load_page(index).rect
        except Exception:  # only an estimate (`_pages_within`): rendering the page reports what is wrong
            rect = pymupdf.paper_rect("letter")
        sizes.append((rect.width, rect.height))
    facts = PdfFacts(page_count=doc.page_count, repaired=doc.is_repaired, page_sizes=tuple(sizes), listed_pages=listed)
    return facts, doc


# --- in this process ----------------------------------------------------------------------------


class _InProcess(Pdf):
    """Holds MUPDF_LOCK from creation to closing: no MuPDF object is used by two threads."""

    def __init__(self, data: bytes, settings: RenderSettings):
        self.data, self.settings = data, settings
        self.doc: pymupdf.Document | None = None
        MUPDF_LOCK.acquire()

    def inspect(self, limit: int) -> PdfFacts:
        facts, self.doc = _inspect(lambda: pymupdf.open(stream=self.data, filetype="pdf"), limit)
        return facts

    def render(self, index: int) -> tuple[Image.Image, float, str]:
        if self.doc is None:  # inspected by a worker before the pool broke
            self.inspect(0)
        return render_page(self.doc[index], self.settings)

    def close(self) -> None:
        try:
            if self.doc is not None:
                self.doc.close()
        finally:
            MUPDF_LOCK.release()


# --- in worker processes ------------------------------------------------------------------------


def _retire(pool: ProcessPool) -> None:
    """Let a replaced pool finish what it was given, then end its workers, without waiting here."""
    pool.close()
    threading.Thread(target=pool.join, name="pdf-pool-retire", daemon=True).start()


def _worker_start() -> None:
    # pebble's SIGTERM handler is Python code, which cannot run while MuPDF holds the GIL: a page
    # over its limit would render on for pebble's 3 s grace period before SIGKILL. Nothing in a
    # worker needs tidying up (the app process removes the render folder), so SIGTERM ends it.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    # The time limits live in the app process: if it dies (killed, or a SIGTERM that skips its
    # clean-up), a worker stuck in a page would render on for minutes. Linux ends it with its parent
    # (strictly: with the parent's thread that started it; see `_new_pool`).
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):  # not Linux
        return
    parent = parent_process()
    if parent is not None and os.getppid() != parent.pid:  # the parent died before the signal was asked for
        os._exit(1)


PR_SET_PDEATHSIG = 1  # <linux/prctl.h>

# Starts the pools' workers. The parent-death signal fires when the *thread* that started a worker
# ends, and the first upload runs on a request thread, which anyio ends once idle: the workers died
# with it. This thread lives as long as the process; pebble starts replacement workers on its own
# manager thread, which lives as long as the pool.
_STARTER = thread_pool("pdf-pool-start", workers=1)


def _new_pool(workers: int) -> ProcessPool:
    pool = ProcessPool(max_workers=workers, initializer=_worker_start, context=get_context("spawn"))
    def start() -> bool:
        return pool.active  # the property starts a new pool's workers

    try:
        try:
            _STARTER.submit(start).result()
        except RuntimeError:  # no new threads' work once the interpreter shuts down: start them here
            start()
    except BaseException:  # some workers may have started: end them, the pool is never used
        _stop(pool)
        raise
    return pool


_POOL = SharedExecutor(_new_pool, retire=_retire)


def _stop(pool: ProcessPool) -> None:
    """At exit: end the workers and wait for them, one still starting up included. Left to pebble,
    the replacement for a worker killed over a time limit, still starting as the process exits,
    printed a traceback (the semaphores it was to inherit were gone)."""
    pool.stop()
    # A stopped pebble pool's join ignores its timeout: wait on another thread, 10 s at most.
    joining = threading.Thread(target=pool.join, name="pdf-pool-stop", daemon=True)
    joining.start()
    joining.join(timeout=10)


def close_pool() -> None:
    """Stop the render workers for good: an upload still rendering on another thread (a request
    as the app stops) gives up its pages (`Stopped`), rather than taking the stopped pool for a
    broken one and starting a new pool, or rendering the rest in this process, holding the GIL in
    MuPDF (a stop signal then waited minutes on a slow PDF). The app calls it as its server stops;
    otherwise it runs at exit, after the script's other threads have ended."""
    _POOL.close(_stop)


# Registered after multiprocessing's own exit handler, so it runs before it (which joins workers).
atexit.register(close_pool)


class _InWorkers(Pdf):
    def __init__(self, data: bytes, settings: RenderSettings, deadline: float, folder: str):
        self.data, self.settings, self.deadline = data, settings, deadline
        self.path = os.path.join(folder, "document.pdf")
        with open(self.path, "wb") as handle:  # one copy on disk for all workers
            handle.write(data)
        self.futures: list[Future | None] = []  # page index → its task (None: not scheduled yet)
        self.scheduled = 0  # pages [0, scheduled) have been given to the pool
        self._inspecting: Future | None = None  # the inspect task, until it is done
        self.fallback: _InProcess | None = None
        self.pool: ProcessPool | None = None
        # Pages in the pool at a time: enough to keep every worker busy while this thread reads the
        # last one. Given all at once, a long upload queued ahead of every other visitor's pages
        # (the pool is shared, first come first served: a 1-page upload waited 1.0 s behind a
        # 120-page one on 2 workers, now 0.07 s) and filled the render folder with pages not yet
        # read (~6 MB each). Reading speed is the same (120 pages, 2 workers: 1.5–1.9 s either way).
        self.ahead = 2 * (settings.workers or default_workers())

    def inspect(self, limit: int) -> PdfFacts:
        facts = self._run(-1, "to open", _inspect_file, self.path, limit)
        return facts if self.fallback is None else self.fallback.inspect(limit)

    def start(self, count: int) -> None:
        """Pages [0, count) render in order, `self.ahead` of them at a time: `render` tops up."""
        self.futures = [None] * count
        try:
            self._schedule_ahead(0)
        except Stopped:  # each page's `render` says so
            self.futures = []

    def _schedule_ahead(self, index: int) -> None:
        """Give the pool the pages from `index` on that keep `self.ahead` of them there, unless
        the deadline passed (`render` reports those pages out of time) or no pool can run them."""
        end = min(len(self.futures), index + self.ahead)
        while self.scheduled < end and time.monotonic() < self.deadline:
            future = self._schedule(_render_to_file, self.path, self.scheduled, self.settings)
            if future is None:  # `self.fallback` renders from here on
                return
            self.futures[self.scheduled] = future
            self.scheduled += 1

    def render(self, index: int) -> tuple[Image.Image, float, str]:
        # A page past `count` (the pixel estimate left out a page that then failed) starts now.
        result = self._run(index, "to render", _render_to_file, self.path, index, self.settings)
        if self.fallback is not None:
            return self.fallback.render(index)
        size, pixels_path, scale, content_hash = result
        with open(pixels_path, "rb") as handle:
            pixels = handle.read()
        os.remove(pixels_path)  # now rather than with the folder: a long PDF's pages add up
        return Image.frombytes("RGB", size, pixels), scale, content_hash

    def _run(self, index: int, step: str, function, *args):
        """The result of task `index` (-1: inspect), started now unless `start` did; raises
        OutOfTime, PageFailed, or MuPDF's error as RuntimeError. None when the work went to
        `self.fallback` (no pool could run it)."""
        started = 0 <= index < len(self.futures)
        if started:
            self._schedule_ahead(index)
            if self.fallback is not None:
                return None
            started = self.futures[index] is not None
        if time.monotonic() >= self.deadline and not started:
            self.interrupted = True
            raise OutOfTime()
        future = self.futures[index] if started else None
        for attempt in range(2):
            if future is None:
                future = self._schedule(function, *args)
                if future is None:
                    return None
                if index < 0:
                    self._inspecting = future
            wait([future, _POOL.on_close], timeout=min(max(0.0, self.deadline - time.monotonic()), threading.TIMEOUT_MAX),
                 return_when=FIRST_COMPLETED)
            # The pool was stopped at exit (not broken: nothing is to be retried), or out of time.
            if _POOL.closed and not (future.done() and not future.cancelled() and future.exception() is None):
                self.interrupted = True
                raise Stopped()
            if not future.done():
                self.interrupted = True
                raise OutOfTime()
            error = future.exception()
            if not isinstance(error, BrokenExecutor):
                break
            # The pool broke (pebble gives up on a pool when an idle worker dies, say to the OOM
            # killer), not because of this PDF: its tasks go to a new pool, then to this process.
            logger.warning("PDF worker pool broke (%s); starting a new one", error)
            self._drop_pool()
            if attempt == 1:
                self._give_up_on_pool(error)
                return None
            self._restart_broken_pages()
            if self.fallback is not None:
                return None
            future = self.futures[index] if started else None
        if isinstance(error, TimeoutError):  # pebble killed the worker after page_seconds
            self.interrupted = True
            raise PageTooSlow(
                f"took over {self.settings.page_seconds:g} s {step}, so it was skipped (a PDF this slow is "
                "usually damaged or made to stall PDF viewers); print it to a new PDF and upload that")
        if isinstance(error, ProcessExpired):
            self.interrupted = True
            raise PageFailed(f"crashed the PDF reader (exit code {error.exitcode}) while trying {step} it, "
                             "so it was skipped; the file is probably damaged")
        return future.result()

    def _restart_broken_pages(self) -> None:
        for page, future in enumerate(list(self.futures)):
            if future is not None and future.done() and isinstance(future.exception(), BrokenExecutor):
                restarted = self._schedule(_render_to_file, self.path, page, self.settings)
                if restarted is None:  # no pool at all: `self.fallback` renders from here on
                    return
                self.futures[page] = restarted

    def _schedule(self, function, *args) -> Future | None:
        """The task on the shared pool, on a new pool if that one stopped or broke; None (and
        `self.fallback` set) when no pool can run it here."""
        if self.fallback is not None:
            return None
        for _ in range(2):
            try:
                if self.pool is None:
                    self.pool = _POOL.get(self.settings.workers or default_workers())
                return self.pool.schedule(function, args=args, timeout=self.settings.page_seconds)
            except ExecutorClosed:  # the process is exiting
                self.interrupted = True
                raise Stopped() from None
            except Exception as error:  # cannot start processes here (limits, a sandbox), or the pool broke
                last_error = error
                self._drop_pool()
        self._give_up_on_pool(last_error)
        return None

    def _drop_pool(self) -> None:
        """Stop using this pool; the next `_POOL.get` makes a new one (a no-op where another
        upload replaced it already)."""
        if self.pool is not None:
            _POOL.reset(self.pool)
            self.pool = None

    def _give_up_on_pool(self, error: Exception) -> None:
        logger.warning("PDF worker processes failed (%s: %s); reading the PDF in-process",
                       type(error).__name__, error)
        self._cancel()
        self.fallback = _InProcess(self.data, self.settings)

    def _cancel(self) -> None:
        """Cancel what is not done: waiting tasks are dropped, a running one has its worker killed
        (which may still write a page into the folder for a moment: see `_remove_folder`)."""
        for future in [*self.futures, self._inspecting]:
            if future is not None:
                future.cancel()
        self.futures, self._inspecting = [], None

    def close(self) -> None:
        # First the file: pebble hands tasks to the workers as they are scheduled, and a cancelled
        # one still runs there; without its file it ends at once (see `_render_to_file`).
        with contextlib.suppress(OSError):
            os.remove(self.path)
        self._cancel()
        if self.fallback is not None:
            self.fallback.close()


def _render_folder_prefix() -> str:
    """Render folders carry the process's id, so that one left behind can be told from one in use
    (`sweep_render_folders`)."""
    return f"render-{os.getpid()}-"


_RENDER_FOLDER = re.compile(r"render-(\d+)-[a-z0-9_]{8}")


def sweep_render_folders(parent: str | os.PathLike | None = None) -> list[str]:
    """Remove the render folders (in `parent`, default the temporary folder) of processes that no
    longer run, and return their names. A process ended at once (a second stop signal, a kill, a
    crash) leaves its folder, with the pages of the upload it was reading (~6 MB each)."""
    parent = Path(parent or tempfile.gettempdir())
    removed = []
    for folder in parent.glob("render-*-*"):
        # Only the exact names the app makes (mkdtemp's 8 characters after the prefix): the
        # temporary folder is everyone's, and "render-2023-annual-report" is someone's work.
        named = _RENDER_FOLDER.fullmatch(folder.name)
        try:
            if not named or _running(int(named[1])) or not folder.is_dir() or folder.stat().st_uid != os.getuid():
                continue
        except OSError:  # gone meanwhile
            continue
        shutil.rmtree(folder, ignore_errors=True)
        removed.append(folder.name)
    return removed


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # no signal: only whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's
        return True
    return True


def _remove_folder(folder: tempfile.TemporaryDirectory) -> None:
    """Remove the render folder, never raising: a worker killed on cancel may write a page into
    it until pebble stops it (its next tick, ~0.1 s), so removal is tried again for a second."""
    for _ in range(10):
        try:
            folder.cleanup()
            return
        except OSError as error:
            last_error = error
            time.sleep(0.1)
    logger.warning("could not remove the render folder %s: %s", folder.name, last_error)


# A worker process keeps the PDF it last worked on open for its next page, and closes it once
# idle for a moment (a 35 MB PDF held ~450 MB in an idle worker). The lock keeps the closing
# thread and the tasks from using MuPDF at the same time.
_worker_lock = threading.Lock()
_worker_document: tuple[str, pymupdf.Document] | None = None
_worker_idle_timer: threading.Timer | None = None
WORKER_IDLE_SECONDS = 2.0


@contextlib.contextmanager
def _worker_step():
    """Around each task in a worker: the lock, MuPDF's errors as text (its exception types need
    not survive pickling), and the idle timer armed again afterwards."""
    global _worker_idle_timer
    with _worker_lock:
        if _worker_idle_timer is not None:
            _worker_idle_timer.cancel()
        try:
            yield
        except Exception as error:
            raise RuntimeError(f"{type(error).__name__}: {error}") from None
        finally:
            _worker_idle_timer = threading.Timer(WORKER_IDLE_SECONDS, _forget_document)
            _worker_idle_timer.daemon = True
            _worker_idle_timer.start()


def _forget_document() -> None:
    with _worker_lock:
        _keep_open(None, None)
        pymupdf.TOOLS.store_shrink(100)  # MuPDF's cache of decoded images and fonts, too
        _return_freed_memory()


def _return_freed_memory() -> None:
    """glibc keeps freed memory in its arenas: without this, a worker that opened a 35 MB PDF
    stayed at ~430 MB resident after closing it."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass


def _keep_open(path: str | None, doc: pymupdf.Document | None) -> None:
    global _worker_document
    if _worker_document is not None:
        _worker_document[1].close()
    _worker_document = (path, doc) if doc is not None else None


def _open_bytes_of(path: str) -> pymupdf.Document:
    # From the bytes, as in this process: opened by name, MuPDF's messages would carry the
    # server's temporary path into what the visitor reads.
    with open(path, "rb") as handle:
        return pymupdf.open(stream=handle.read(), filetype="pdf")


def _inspect_file(path: str, limit: int) -> PdfFacts:
    """In a worker process: `Pdf.inspect` of the PDF at `path`."""
    with _worker_step():
        facts, doc = _inspect(lambda: _open_bytes_of(path), limit)
        _keep_open(path, doc)
        return facts


def _render_to_file(path: str, index: int, settings: RenderSettings) -> tuple[tuple[int, int], str, float, str]:
    """In a worker process: render page `index` of the PDF at `path`, write its pixels to a file
    beside it and return (size, that file, scale, content hash)."""
    with _worker_step():
        if not os.path.exists(path):  # the upload is over (out of time, failed): nobody wants the page
            raise FileNotFoundError(f"{path} is gone")
        if _worker_document is None or _worker_document[0] != path:
            doc = _open_bytes_of(path)
            if doc.needs_pass:
                doc.authenticate("")  # inspect found that the empty password opens it
            _keep_open(path, doc)
        pixmap, scale = _render_pixmap(_worker_document[1][index], settings)
        pixels, size = pixmap.samples_mv, (pixmap.width, pixmap.height)
        pixels_path = f"{path}.{index}.rgb"
        with open(pixels_path, "wb") as handle:
            handle.write(pixels)
        # Hashed here, in parallel, rather than one page at a time in the app process.
        return size, pixels_path, scale, pixels_hash("RGB", size, pixels)
