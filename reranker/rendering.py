"""PDF pages → RGB pixels, in worker processes, each page under a time limit.

MuPDF keeps Python's GIL while it renders (measured: a second thread got 3 turns in 0.3 s of
rendering instead of 30), and a page can be built to render for minutes: a 2.5 KB PDF of form
XObjects, each drawing the next one ten times, eight deep, takes ~30 s. Rendered in the app's
process, such a page would freeze every visitor's request. So pages render in pebble's
`ProcessPool`:

- a page over `RenderSettings.page_seconds` has its worker killed and becomes a problem;
- a page that crashes MuPDF kills only its worker (replaced by the pool);
- the pages still waiting when the upload's deadline passes are not rendered;
- every other page and file carries on.

Only where worker processes cannot run (a daemon process such as ZeroGPU's worker may not start
children; a sandbox) are pages rendered in this process, without those limits: MuPDF cannot be
interrupted there.

Workers write each page's pixels to a file in a private folder, read once here (through the
pool's pipe each page's ~6 MB was copied about five times; POSIX shared memory is often capped
at 64 MB in containers and leaks when a worker dies). Spawned, not forked, workers: the app
process runs threads and may hold a GPU context.

    with pdf_pages(data, count, settings, deadline) as pages:
        image, scale, content_hash = pages.render(0)   # raises PageFailed / OutOfTime
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import signal
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import BrokenExecutor, wait
from dataclasses import dataclass
from multiprocessing import current_process, get_context

import pymupdf
from pebble import ProcessExpired, ProcessPool
from PIL import Image

from .imaging import pixels_hash
from .workers import SharedExecutor, available_cpus

logger = logging.getLogger(__name__)

# PyMuPDF is not thread-safe and Gradio runs callbacks on worker threads. Every MuPDF document in
# this process is opened, used and closed under this lock.
MUPDF_LOCK = threading.Lock()


@dataclass(frozen=True)
class RenderSettings:
    dpi: float
    max_page_pixels: int  # a larger page is rendered at the lower DPI that fits
    workers: int = 0  # worker processes; 0: one per available CPU, up to 8
    page_seconds: float = 15.0  # a page that takes longer is skipped and its worker killed


class PageFailed(Exception):
    """A page could not be rendered: the message says why, for the person who uploaded it."""


class OutOfTime(Exception):
    """The upload's deadline passed before this page was rendered."""


class _Pages:
    interrupted = False  # a page ran out of time or crashed: the result is not worth caching

    def render(self, index: int) -> tuple[Image.Image, float, str]:
        """(RGB image, scale against the asked DPI, content hash) of page `index`."""
        raise NotImplementedError

    def close(self) -> None:
        pass


@contextlib.contextmanager
def pdf_pages(data: bytes, count: int, settings: RenderSettings, deadline: float) -> Iterator[_Pages]:
    """Renders pages [0, count) of the PDF `data` (already opened once and checked by the caller),
    all of them started at once; `render(index)` waits for one. `deadline`: time.monotonic()
    after which pages not yet rendered raise OutOfTime."""
    if current_process().daemon:
        pages: _Pages = _InProcess(data, settings)
    else:
        folder = tempfile.TemporaryDirectory(prefix="render-")  # removed whatever happens
        try:
            pages = _InWorkers(data, count, settings, deadline, folder.name)
        except Exception:
            folder.cleanup()
            raise
    try:
        yield pages
    finally:
        pages.close()
        if isinstance(pages, _InWorkers):
            folder.cleanup()


def render_page(page: pymupdf.Page, settings: RenderSettings) -> tuple[Image.Image, float, str]:
    """`_Pages.render` for a page open in this process, read and hashed straight from MuPDF's
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


# --- in this process ----------------------------------------------------------------------------


class _InProcess(_Pages):
    """Holds MUPDF_LOCK from opening to closing: no MuPDF object is used by two threads."""

    def __init__(self, data: bytes, settings: RenderSettings):
        self.settings = settings
        MUPDF_LOCK.acquire()
        try:
            self.doc = _open(stream=data)
        except BaseException:
            MUPDF_LOCK.release()
            raise

    def render(self, index: int) -> tuple[Image.Image, float, str]:
        return render_page(self.doc[index], self.settings)

    def close(self) -> None:
        try:
            self.doc.close()
        finally:
            MUPDF_LOCK.release()


def _open(**source) -> pymupdf.Document:
    doc = pymupdf.open(filetype="pdf", **source)
    if doc.needs_pass:
        doc.authenticate("")  # the caller checked that the empty password opens it
    return doc


# --- in worker processes ------------------------------------------------------------------------


def _retire(pool: ProcessPool) -> None:
    """Let a replaced pool finish what it was given, then end its workers, without waiting here."""
    pool.close()
    threading.Thread(target=pool.join, name="render-pool-retire", daemon=True).start()


def _worker_start() -> None:
    # pebble's SIGTERM handler is Python code, which cannot run while MuPDF holds the GIL: a page
    # over its limit would render on for pebble's 3 s grace period before SIGKILL. Nothing in a
    # worker needs tidying up (the app process removes the render folder), so SIGTERM ends it.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


_POOL = SharedExecutor(
    lambda workers: ProcessPool(max_workers=workers, initializer=_worker_start, context=get_context("spawn")),
    retire=_retire)


def worker_count(settings: RenderSettings) -> int:
    return settings.workers or min(8, available_cpus())


class _InWorkers(_Pages):
    def __init__(self, data: bytes, count: int, settings: RenderSettings, deadline: float, folder: str):
        self.settings, self.deadline = settings, deadline
        self.path = os.path.join(folder, "document.pdf")
        with open(self.path, "wb") as handle:  # one copy on disk for all workers
            handle.write(data)
        self._data = data
        self._fallback: _InProcess | None = None
        self.futures = []
        self.pool: ProcessPool | None = None
        if time.monotonic() >= deadline:
            return  # nothing is started: every page is out of time
        try:
            self.pool = _POOL.get(worker_count(settings))
            for index in range(count):
                self.futures.append(self.pool.schedule(
                    _render_to_file, args=(self.path, index, settings), timeout=settings.page_seconds))
        except Exception as error:  # cannot start processes here (limits, a sandbox): render here
            self._give_up_on_pool(error)

    def render(self, index: int) -> tuple[Image.Image, float, str]:
        if self._fallback is not None:
            return self._fallback.render(index)
        if index >= len(self.futures):
            self.interrupted = True
            raise OutOfTime()
        future = self.futures[index]
        wait([future], timeout=min(max(0.0, self.deadline - time.monotonic()), threading.TIMEOUT_MAX))
        if not future.done():
            self.interrupted = True
            raise OutOfTime()
        error = future.exception()
        if isinstance(error, TimeoutError):  # pebble killed the worker after page_seconds
            self.interrupted = True
            raise PageFailed(
                f"took over {self.settings.page_seconds:g} s to render, so it was skipped (a page this slow "
                "is usually damaged or made to stall PDF viewers); print it to a new PDF and upload that")
        if isinstance(error, ProcessExpired):
            self.interrupted = True
            raise PageFailed(f"crashed the PDF renderer (exit code {error.exitcode}), so it was skipped; "
                             "the page is probably damaged")
        if isinstance(error, BrokenExecutor):  # the pool itself broke, not this page
            self._give_up_on_pool(error)
            return self._fallback.render(index)
        size, pixels_path, scale, content_hash = future.result()  # a RuntimeError: MuPDF's message
        with open(pixels_path, "rb") as handle:
            pixels = handle.read()
        os.remove(pixels_path)  # now rather than with the folder: a long PDF's pages add up
        return Image.frombytes("RGB", size, pixels), scale, content_hash

    def _give_up_on_pool(self, error: Exception) -> None:
        logger.warning("rendering in worker processes failed (%s: %s); rendering in-process",
                       type(error).__name__, error)
        if self.pool is not None:
            _POOL.reset(self.pool)  # the next upload gets a new pool
        self.close()
        self._fallback = _InProcess(self._data, self.settings)

    def close(self) -> None:
        for future in self.futures:
            future.cancel()  # waiting: dropped; running (the upload was abandoned): its worker is killed
        self.futures = []
        if self._fallback is not None:
            self._fallback.close()


# The PDF a worker process rendered its last page from, kept open for the next page of it.
_worker_document: tuple[str, pymupdf.Document] | None = None


def _render_to_file(path: str, index: int, settings: RenderSettings) -> tuple[tuple[int, int], str, float, str]:
    """In a worker process: render page `index` of the PDF at `path`, write its pixels to a file
    beside it and return (size, that file, scale, content hash)."""
    global _worker_document
    try:
        if _worker_document is None or _worker_document[0] != path:
            if _worker_document is not None:
                _worker_document[1].close()
                _worker_document = None
            _worker_document = (path, _open(filename=path))
        pixmap, scale = _render_pixmap(_worker_document[1][index], settings)
        pixels, size = pixmap.samples_mv, (pixmap.width, pixmap.height)
        pixels_path = f"{path}.{index}.rgb"
        with open(pixels_path, "wb") as handle:
            handle.write(pixels)
        # Hashed here, in parallel, rather than one page at a time in the app process.
        return size, pixels_path, scale, pixels_hash("RGB", size, pixels)
    except Exception as error:  # as text: MuPDF's exception types need not survive pickling
        raise RuntimeError(f"{type(error).__name__}: {error}") from None
