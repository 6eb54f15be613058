"""The Arena: what all sessions share (models, database, image caches); made at start, stopped at the end."""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import pickle
import re
import shutil
import sys
import tempfile
import threading
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from .. import devices, ranking, rendering
from ..documents import ingest_cache
from ..models import MODELS
from ..store import Store
from ..thumbnails import PageImages
from . import gpu
from .annotators import login_required
from .speed_notes import operator_hint

logger = logging.getLogger(__name__)

# Rendered pages kept in memory, by each of two caches (pixels and the objects around them,
# documents.page_memory_bytes; ~7 pages of a 144-DPI letter-size PDF per 40 MB): the uploads
# already rendered (`ingested`, per file) and recent pages for their thumbnails (`images`, per
# page). They mostly hold the same pages but evict apart, so together up to twice this: 2 GiB
# (1.3 GB of live pixels after 12 distinct 40-page uploads). Not one budget split in two: that
# would halve what each keeps (an upload over half would be rendered again for each new query)
# for a saving only when they hold different pages.
PAGE_MEMORY_BYTES = 2**30


@dataclass
class Arena:
    """What all sessions share: the models (loaded once), the database, the image cache.

    On a ZeroGPU Space `gpu.score_on_gpu` runs in a worker process forked from the app, and its
    arguments reach it pickled. Models, database connections and locks do not pickle, and the
    worker has them already (it inherited this Arena through the fork), so an Arena pickles as
    its number in this process's registry.
    """

    pool: ranking.ModelPool
    store: Store
    cache_dir: Path

    def __reduce__(self):
        return _registered_arena, (self._number,)

    def __post_init__(self):
        self._number = next(_ARENA_NUMBERS)
        _ARENAS[self._number] = self
        # Uploads already rendered: a new query about the same files skips the rendering. Each
        # of the two page caches gets the whole PAGE_MEMORY_BYTES (see there).
        self.ingested = ingest_cache(PAGE_MEMORY_BYTES)
        thumbnail_bytes = devices.env_megabytes("RERANKER_THUMBNAIL_CACHE_MB") or 1024 * 2**20  # 0 or unset: 1 GiB
        self.images = PageImages(self.pages_dir, self.store.page_image, PAGE_MEMORY_BYTES, thumbnail_bytes)
        # One ranking's model work at a time, each page scored once (see ranking.ScoringTurns);
        # reading, rendering and saving of other rankings go on meanwhile. score_on_gpu is
        # looked up per call: the tests put a forked worker behind it.
        self.scoring = ranking.ScoringTurns(lambda pool, *work: gpu.score_on_gpu(self, *work))
        # A browser page closed or reloaded stops the rankings it asked for (rank_tab.wire).
        self.rankings = RankingsUnderWay()
        # The Evaluate tab and /evaluate, the Export tab's selection: computed again only once
        # the store has changed.
        from ..evaluate import EvaluationCache
        from ..export import SelectionCache

        self.evaluations = EvaluationCache()
        self.selections = SelectionCache()

    # The two folders of the cache folder that browsers may fetch from (`launch_options`): only
    # those, so that nothing else an operator keeps there (a database backup, say) is served.
    @property
    def pages_dir(self) -> Path:
        return self.cache_dir / "pages"

    @property
    def exports_dir(self) -> Path:
        return self.cache_dir / "exports"

    def image_path(self, page_hash: str, max_side: int) -> str:
        """A JPEG of the page no larger than `max_side`, written once to `pages_dir`."""
        return self.images.path(page_hash, max_side)


# Why a ranking stopped (`RankingsUnderWay.stop`), as `ranking.RankingAbandoned` says it.
PAGE_CLOSED = "the page that asked for it was closed"
STOP_PRESSED = "Stop was pressed"


@dataclass(eq=False)
class RankingTicket:
    """One ranking asked for by a browser page; called, says why it should stop ("": it
    should not): `ranking.rank`'s `abandoned`. Plain data: it pickles (ZeroGPU), as a copy."""

    session: str
    stopped: str = ""
    started: bool = False  # False while the ranking waits in Gradio's queue

    def __call__(self) -> str:
        return self.stopped


class RankingsUnderWay:
    """The rankings each browser page (Gradio's session) has asked for, queued or running, so
    that the page can stop them: its Stop button, or closing or reloading it (Gradio's unload).
    Without it a ranking nobody would see ran to its end: on a CPU Space minutes of one of the
    few ranking slots, and of the models' single turn, that every other visitor waited for.

    A ranking is watched from the moment Gradio queues it (`asked`, from the Rank event's
    validator): one stopped while it waited for a ranking slot stops as it starts (it ran to its
    end, the press unheard). Only the rankings asked for when the page stops them are stopped,
    never one asked for later under the same session id. A call from Python (gradio_client) is
    not watched, though it has a session and a heartbeat (rank_tab.asking_page): it runs to its end."""

    def __init__(self):
        self._lock = threading.Lock()
        self._running: dict[str, list[RankingTicket]] = {}

    def asked(self, session: str | None) -> None:
        """A ranking of `session` is queued: watched until `running` takes it. A ticket still
        queued from before is dropped: a page asks for one ranking at a time, so that one never
        started (refused by Gradio after its validator), and stopped, it stopped the next one."""
        if session:
            self._forget(session, lambda ticket: not ticket.started)
            with self._lock:
                self._running.setdefault(session, []).append(RankingTicket(session))

    @contextlib.contextmanager
    def running(self, session: str | None) -> Iterator[RankingTicket | None]:
        """The ticket of one ranking of `session` while it runs: the one it was queued with (a
        page has one ranking at a time), else a new one (None: no session to watch, as for a
        call from Python)."""
        if not session:
            yield None
            return
        with self._lock:
            tickets = self._running.setdefault(session, [])
            ticket = next((queued for queued in tickets if not queued.started), None)
            if ticket is None:
                ticket = RankingTicket(session)
                tickets.append(ticket)
            ticket.started = True
        try:
            yield ticket
        finally:
            self._forget(session, lambda done: done is ticket)

    def stop(self, session: str | None, why: str) -> int:
        """The rankings of `session` stop at their next progress report (a queued one as it
        starts), saying `why`. Returns how many were under way (and not stopped already)."""
        with self._lock:
            tickets = [ticket for ticket in self._running.get(session or "", []) if not ticket.stopped]
            for ticket in tickets:
                ticket.stopped = why
            return len(tickets)

    def closed(self, session: str | None, why: str) -> int:
        """`stop`, for a page that has gone: Gradio drops its queued rankings, which never start."""
        count = self.stop(session, why)
        self._forget(session or "", lambda ticket: not ticket.started)
        return count

    def _forget(self, session: str, which: Callable[[RankingTicket], bool]) -> None:
        with self._lock:
            tickets = [ticket for ticket in self._running.get(session, []) if not which(ticket)]
            if tickets:
                self._running[session] = tickets
            else:
                self._running.pop(session, None)

    def __len__(self) -> int:
        with self._lock:
            return sum(len(tickets) for tickets in self._running.values())


_ARENA_NUMBERS = itertools.count()
_ARENAS: weakref.WeakValueDictionary[int, Arena] = weakref.WeakValueDictionary()


def _registered_arena(number: int) -> Arena:
    try:
        return _ARENAS[number]
    except KeyError:
        raise pickle.UnpicklingError(
            f"Arena {number} is not in this process: an Arena unpickles only in the process that "
            "made it or one forked from it (ZeroGPU's worker)"
        ) from None


# Thumbnails ("<32 hex>-<side>.jpg") and export folders (mkdtemp's "export-" + 8 characters) that
# the app kept at the cache folder's root before they moved to pages/ and exports/: no sweep counts
# them there any more. Only those exact names: an operator's "export-backups/" there is theirs.
_OLD_THUMBNAIL = re.compile(r"[0-9a-f]{32}-\d+\.jpg")
_OLD_EXPORT_FOLDER = re.compile(r"export-[a-z0-9_]{8}")


def _remove_old_cache_layout(cache: Path) -> int:
    removed = 0
    for entry in cache.iterdir():
        with contextlib.suppress(OSError):  # another process removing it too
            if entry.is_file() and _OLD_THUMBNAIL.fullmatch(entry.name):
                entry.unlink()
                removed += 1
            elif entry.is_dir() and _OLD_EXPORT_FOLDER.fullmatch(entry.name):
                shutil.rmtree(entry)
                removed += 1
    return removed


def create_arena(db_path: str | None = None, cache_dir: str | None = None, preload: bool | None = None) -> Arena:
    """The shared state: a model pool (preloaded on a GPU, lazy on a CPU), the store, a cache folder."""
    from ..loading import check_configuration

    # Settings both models read are refused now, not at the first ranking (models load lazily
    # on a CPU); a path to one model's weights that is no folder is said in the log.
    for problem in check_configuration(MODELS):
        logger.warning(problem)
    pool = ranking.ModelPool(compile=devices.env_flag("RERANKER_COMPILE"))
    cache = Path(cache_dir or os.environ.get("RERANKER_CACHE") or Path(tempfile.gettempdir()) / "rerank-arena")
    try:
        cache.mkdir(parents=True, exist_ok=True)
    except OSError as error:  # a file there, no permission: FileExistsError named neither
        raise ValueError(f"RERANKER_CACHE={cache}: the image cache folder cannot be made there "
                         f"({error.strerror or error})") from None
    arena = Arena(pool, Store(db_path), cache)
    if removed := _remove_old_cache_layout(cache):
        logger.info("removed %d thumbnail(s) and export folder(s) of the old cache layout from %s", removed, cache)
    if removed := rendering.sweep_render_folders():
        logger.info("removed %d render folder(s) left by stopped processes: %s", len(removed), ", ".join(removed))
    device = devices.default_device()
    # What the operator set, in one line (on a Space the log is all they see).
    logger.info("database %s · image cache %s · models on %s in %s, %s · judging %s", arena.store.path, cache, device,
                str(devices.default_dtype(device)).removeprefix("torch."),
                "at start-up" if (preload if preload is not None else device.type == "cuda") else "loaded at first use",
                "needs a Hugging Face login" if login_required() else "by typed name")
    if hint := operator_hint():
        logger.warning(hint)
    if os.environ.get("SYSTEM") == "spaces" and not (db_path or os.environ.get("RERANKER_DB")):
        logger.warning("RERANKER_DB is not set: the database is %s, on this Space's own disk, which a restart empties, "
                       "every judgment with it. Mount a storage volume and set RERANKER_DB (say /data/arena.db): "
                       "README, \"Hugging Face Space\".", arena.store.path)
    if preload if preload is not None else device.type == "cuda":
        for key in MODELS:
            try:
                pool.get(key)
            except ranking.ModelUnavailable:
                pass  # shown in that model's column
    return arena


def shut_down(arena: Arena, wait_s: float = 5.0) -> None:
    """After the server has stopped (Ctrl-C, SIGTERM): uploads still being read give up their
    pages, and model work under way gets `wait_s` seconds to end. A thread still inside torch
    when Python exits aborts the process (SIGABRT, "terminate called without an active
    exception"), so past that the process ends without Python's exit (every judgment is already
    committed; the ranking under way was not yet stored, and its visitor is told to rank again).
    (app.py ends the process at once on a second stop signal.)"""
    from ..rendering import close_pool

    close_pool()  # a request still reading a PDF gives up its pages now, not after rendering on
    if arena.scoring.stop(wait_s):
        return
    logger.warning("a ranking's model work is still running; stopping without waiting for it")
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
