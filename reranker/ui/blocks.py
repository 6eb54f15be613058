"""The app as one gr.Blocks: the four tabs laid out and wired, what they share, and what goes to
`launch()`."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import time
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING

import gradio as gr

from . import annotate_tab, evaluate_tab, export_tab, rank_tab
from .annotate_tab import ORDERS
from .export_tab import EXPORT_KEEP_SECONDS
from .rank_tab import MAX_UPLOAD
from .text import markdown, store_failures_said

if TYPE_CHECKING:
    from .arena import Arena


logger = logging.getLogger(__name__)

STATIC = Path(__file__).resolve().parents[2] / "static"
# Gradio keeps a SessionState for each of the last this many sessions (every browser tab and API
# client that sent an event, closed or not): a copy of every component's settings, 206 KiB for
# this app's 139 components (tracemalloc over 200 of them), so ~200 MiB here; Gradio's own 10,000
# held ~2 GiB. A session pushed out by newer ones starts again from the States' defaults (the
# Annotate tab's position, say); the name and the progress are in the browser and the database.
SESSIONS_KEPT = 1000
# What Gradio leaves in its temporary folder (GRADIO_TEMP_DIR) that its delete_cache pass never
# removes: an empty `tmp*` file per file each time an upload box is read (twice a ranking: its
# validator and the ranking), an upload cut off midway or refused for its name (written whole
# before the name is checked), and the empty <sha256> folder of each file the pass removed.
# The app removes those untouched for this long, every EXPORT_KEEP_SECONDS: an upload under way
# keeps writing its file, and a folder in use is not empty.
LEFTOVER_SECONDS = 2 * EXPORT_KEEP_SECONDS
_LEFTOVER_FILE = re.compile(r"tmp[a-z0-9_]{8}")  # tempfile's names
_CONTENT_FOLDER = re.compile(r"[0-9a-f]{64}")


def build_app(arena: Arena) -> gr.Blocks:
    """The app: four tabs, each laid out by its module's `layout` and wired by its `wire`."""
    # delete_cache: Gradio's own copies of files it served (exports, galleries), hourly; what that
    # pass leaves, `removing_gradio_leftovers` (launch_options).
    with gr.Blocks(title="Multimodal Rerank Arena", delete_cache=(EXPORT_KEEP_SECONDS, EXPORT_KEEP_SECONDS)) as demo:
        markdown("# Multimodal Rerank Arena")
        shared = shared_state()
        with gr.Tabs() as tabs:
            rank = rank_tab.layout()
            annotate = annotate_tab.layout()
            export = export_tab.layout()
            evaluate = evaluate_tab.layout()
        rank_tab.wire(arena, rank, annotate, shared, demo)
        annotate_tab.wire(arena, annotate, shared, demo)
        export_tab.wire(arena, export, demo)
        evaluate_tab.wire(arena, evaluate, demo)
        evaluate_tab.wire_open_in_annotate(arena, evaluate, annotate, shared, tabs)
        annotate_tab.register_api(arena)  # /judge, /undo
        evaluate_tab.register_api(arena)  # /evaluate
        for tab in (rank.tab, annotate.tab, export.tab, evaluate.tab):
            tab.select(lambda tab_id=tab.id: tab_id, None, shared.tab_open, queue=False, api_visibility="private")
        # A reload of Annotate reopens it (it opened Rank: one more click every time): the
        # address says `?tab=annotate` while it is open (static/tab_address.js).
    for event in demo.fns.values():  # every event's, the API's endpoints too
        event.fn = store_failures_said(event.fn, arena.store.path)
    return demo


def browser_script() -> str:
    """The app's JavaScript, run once as the page loads: each file in static/ is a function."""
    names = ("screen_reader.js", "shortcuts.js", "lists.js", "focus.js", "stop_button.js", "tab_address.js", "diagonal.js", "plot_taps.js")
    scripts = [(STATIC / name).read_text(encoding="utf-8") for name in names]
    return "() => {\n" + "".join(f"({script.strip()})();\n" for script in scripts) + "}"


def shared_state() -> SimpleNamespace:
    """What the tabs share, outside them."""
    # The /rank result: a JSON component (a State would not be returned to API clients).
    ranking_state = gr.JSON(visible=False)
    # Remembered by the browser. Outside the tabs: a hidden tab's components are not mounted at page
    # load, so a BrowserState inside the Annotate tab would reach demo.load as its default value.
    # A fixed secret: the default is random per start, and a Space restarts often.
    # Set but empty is unset: Gradio would draw a random key at each start, and forget every name.
    secret = os.environ.get("RERANKER_BROWSER_SECRET") or "rerank-arena"
    saved_name = gr.BrowserState("", storage_key="rerank-arena-annotator", secret=secret)
    saved_query = gr.BrowserState(None, storage_key="rerank-arena-query", secret=secret)
    saved_order = gr.BrowserState(ORDERS[0], storage_key="rerank-arena-order", secret=secret)
    tab_open = gr.State("rank")  # the tab this browser shows (a finished ranking leaves Annotate alone)
    return SimpleNamespace(ranking_state=ranking_state, saved_name=saved_name, saved_query=saved_query,
                           saved_order=saved_order, tab_open=tab_open)


def launch_options(arena: Arena) -> dict:
    """What goes to `launch()` in Gradio 6 (css/js/head belong there, not to Blocks)."""
    return dict(
        css=(STATIC / "arena.css").read_text(encoding="utf-8"),
        js=browser_script(),
        allowed_paths=[str(arena.pages_dir), str(arena.exports_dir)],
        # Never the database file, even in those folders (all on a Space's /data, say): the whole
        # file, with every version of everything, was one download away.
        blocked_paths=[str(arena.store.path) + suffix for suffix in ("", "-wal", "-shm", "-journal")],
        max_file_size=MAX_UPLOAD,
        state_session_capacity=SESSIONS_KEPT,
        app_kwargs={"lifespan": removing_gradio_leftovers},
    )


@contextlib.asynccontextmanager
async def removing_gradio_leftovers(app):
    """While the server runs: `remove_gradio_leftovers` every EXPORT_KEEP_SECONDS, the first time
    at the start (what a process before this one left)."""

    async def every_period():
        while True:
            removed = await asyncio.to_thread(remove_gradio_leftovers, app.uploaded_file_dir, LEFTOVER_SECONDS)
            if removed:
                logger.info("removed %d file(s) and folder(s) Gradio left in %s", removed, app.uploaded_file_dir)
            await asyncio.sleep(EXPORT_KEEP_SECONDS)

    task = asyncio.create_task(every_period())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def remove_gradio_leftovers(folder: str | Path, older_than: float) -> int:
    """Remove Gradio's `tmp*` files and empty <sha256> folders at the top of its temporary folder
    that have not changed for `older_than` seconds; returns how many. Nothing else: the files it
    serves (the examples' copies among them) are inside those folders."""
    cutoff = time.time() - older_than
    try:
        entries = list(os.scandir(folder))
    except OSError:  # not made yet: nothing uploaded
        return 0
    removed = 0
    for entry in entries:
        with contextlib.suppress(OSError):  # gone meanwhile; a folder not empty (rmdir refuses it)
            if entry.stat(follow_symlinks=False).st_mtime >= cutoff:
                continue
            if _LEFTOVER_FILE.fullmatch(entry.name) and entry.is_file(follow_symlinks=False):
                os.unlink(entry.path)
                removed += 1
            elif _CONTENT_FOLDER.fullmatch(entry.name) and entry.is_dir(follow_symlinks=False):
                os.rmdir(entry.path)
                removed += 1
    return removed
