"""Page images for display: a JPEG per (page, size), written once into a bounded folder.

Recently ranked pages are kept in memory (bounded by their RGB bytes), so their thumbnails need
no database read; older ones are loaded through `load` (the store). `prepare` writes a batch of
thumbnails on worker threads (Pillow's resize and JPEG encoder release the GIL), which the app
does while the models are scoring, so the gallery is ready when the scores are.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from pathlib import Path

from PIL import Image

from .documents import page_memory_bytes
from .lru import LRUCache
from .workers import thread_pool

JPEG_QUALITY = 88
RECENT_SECONDS = 60  # a thumbnail used this recently is never swept


class PageImages:
    """`disk_bytes` bounds the folder: past it, the JPEGs used longest ago are removed (any of
    them is made again from the database when next shown)."""

    def __init__(self, folder: Path, load: Callable[[str], Image.Image], memory_bytes: int,
                 disk_bytes: int = 1 << 30):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self._load = load
        self._pages = LRUCache(memory_bytes)  # content hash → Page
        self._workers = thread_pool("thumbnails")
        self.disk_bytes = disk_bytes
        self._written = 0  # bytes written since the last sweep
        self._sweeping = threading.Lock()
        self.sweep()  # a folder kept from earlier runs (persistent storage) may be over already

    def remember(self, pages: Iterable) -> None:
        for page in pages:
            self._pages.put(page.content_hash, page, page_memory_bytes(page))

    def path(self, page_hash: str, max_side: int, page=None) -> str:
        """A JPEG of the page no larger than `max_side` (written now unless it already is).
        `page`: the page itself, where at hand (else from memory, else from the store)."""
        path = self.folder / f"{page_hash[:32]}-{max_side}.jpg"
        try:
            os.utime(path)  # used now: the sweep removes the JPEGs used longest ago
            return str(path)
        except FileNotFoundError:
            pass
        page = page or self._pages.get(page_hash)
        image = _shrink(page.image if page else self._load(page_hash), max_side)
        # Written under a private name, then renamed: two threads writing the same
        # thumbnail never leave a half-written file behind.
        partial = path.with_suffix(f".{threading.get_ident()}.part")
        try:
            image.convert("RGB").save(partial, format="JPEG", quality=JPEG_QUALITY)
            self._written += partial.stat().st_size
            partial.replace(path)
        except BaseException:  # a full disk: no part of it left behind, uncounted by the sweep
            partial.unlink(missing_ok=True)
            raise
        if self._written > self.disk_bytes // 10:
            self.sweep()
        return str(path)

    def sweep(self) -> None:
        """Remove the JPEGs used longest ago until the folder holds at most 80% of `disk_bytes`
        (one thread sweeps; the others carry on). A JPEG used in the last minute stays, however
        full the folder: `path` may just have handed it to a page being shown."""
        if not self._sweeping.acquire(blocking=False):
            return
        try:
            self._written = 0
            recent = time.time() - RECENT_SECONDS
            for partial in self.folder.glob("*.part"):  # a process ended while writing it
                with contextlib.suppress(FileNotFoundError):
                    if partial.stat().st_mtime < recent:
                        partial.unlink()
            files = []
            for path in self.folder.glob("*.jpg"):
                try:
                    stat = path.stat()
                except FileNotFoundError:
                    continue
                files.append((stat.st_mtime, stat.st_size, path))
            total = sum(size for _, size, _ in files)
            if total <= self.disk_bytes:
                return
            for used, size, path in sorted(files):
                if total <= self.disk_bytes * 0.8 or used >= recent:
                    break
                try:
                    if path.stat().st_mtime >= recent:  # used again since the listing
                        continue
                except FileNotFoundError:
                    continue
                path.unlink(missing_ok=True)
                total -= size
        finally:
            self._sweeping.release()

    def paths(self, page_hashes: Iterable[str], max_side: int) -> list[str]:
        """`path` of each page, made on the worker threads at once (one by one, the first
        Evaluate of a store with many judged queries took ~10 s per 500 thumbnails)."""
        futures = [self._workers.submit(self.path, page_hash, max_side) for page_hash in page_hashes]
        return [future.result() for future in futures]

    def ahead(self, page_hash: str, max_side: int) -> Future:
        """Start `path` on a worker thread, for a page about to be asked for."""
        return self._workers.submit(self.path, page_hash, max_side)

    def prepare(self, pages: Iterable, max_side: int) -> list[Future]:
        """Remember `pages` and start writing their thumbnails on worker threads. Each task holds
        its page: an upload larger than the memory pushes its own first pages out of it before
        their turn, and pages just read are not in the store yet."""
        pages = list(pages)
        self.remember(pages)
        unique = {page.content_hash: page for page in pages}
        return [self._workers.submit(self.path, page_hash, max_side, page) for page_hash, page in unique.items()]


def _shrink(image: Image.Image, max_side: int) -> Image.Image:
    """A display copy with its longer side at most `max_side` (the image itself when smaller)."""
    scale = max_side / max(image.size)
    if scale >= 1:
        return image
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    # reducing_gap: a cheap box reduction first, then LANCZOS (text stays sharp) on the rest.
    return image.resize(size, Image.Resampling.LANCZOS, reducing_gap=2.0)
