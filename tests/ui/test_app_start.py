"""Starting the app: settings, speed notes, what is logged and served, the API it exposes."""

from __future__ import annotations

import re

import pytest

from reranker import devices, ranking, ui
from reranker.store import Store


def test_the_apps_api_has_only_its_documented_endpoints(arena):
    demo = ui.build_app(arena)
    public = {name for name, info in demo.get_api_info()["named_endpoints"].items()}
    assert public == {"/rank", "/judge", "/undo", "/export", "/evaluate"}


def test_the_cpu_device_note_gives_speeds_and_the_operator_hears_of_bfloat16_where_it_is_native(monkeypatch):
    """Visitors read speeds and what they can change; settings only the operator can change are
    logged for them (a visitor on a Space cannot set RERANKER_DTYPE)."""
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.delenv("RERANKER_DTYPE")
    monkeypatch.setattr(devices, "memory_limit", lambda: 64 * 2**30)  # float32 by default
    monkeypatch.setattr(ui.speed_notes, "cpu_has_bfloat16", lambda: True)
    note = ui.speed_notes.device_note()
    assert note.startswith("**No GPU on this machine.**") and "60 s" in note and "image budgets" in note
    assert "RERANKER_DTYPE" not in note and "docs/" not in note and "bfloat16" not in note
    assert "RERANKER_DTYPE=bfloat16" in ui.speed_notes.operator_hint()
    monkeypatch.setenv("RERANKER_DTYPE", "bfloat16")
    assert ui.speed_notes.operator_hint() is None  # already set
    monkeypatch.delenv("RERANKER_DTYPE")
    monkeypatch.setattr(ui.speed_notes, "cpu_has_bfloat16", lambda: False)  # emulated bfloat16 would be slower
    assert "RERANKER_DTYPE" not in ui.speed_notes.operator_hint() and "GPU" in ui.speed_notes.operator_hint()


def test_settings_both_models_read_are_refused_at_the_start_and_a_missing_weights_folder_is_logged(
        monkeypatch, tmp_path, caplog):
    """On a CPU the models load at the first ranking: a wrong RERANKER_DTYPE was a message in
    both columns for every visitor, and a wrong folder said nothing to the operator."""
    from reranker.loading import LoadError

    def start():
        ui.create_arena(str(tmp_path / "arena.db"), str(tmp_path / "cache"), preload=False).store.close()

    for variable, value, error, message in (
            ("RERANKER_DTYPE", "fp16", ValueError, "RERANKER_DTYPE: unknown dtype 'fp16'"),
            ("RERANKER_DEVICE", "tpu", ValueError, "RERANKER_DEVICE='tpu' is not a device"),
            ("RERANKER_VISION_CACHE_MB", "lots", ValueError, "RERANKER_VISION_CACHE_MB='lots': expected a size in MB"),
            # Read off a Space too (where it changes nothing): the typo is seen before deploying.
            ("RERANKER_REQUIRE_LOGIN", "maybe", ValueError, "RERANKER_REQUIRE_LOGIN='maybe': expected 1 or 0"),
            ("RERANKER_DEVICE", "cuda", LoadError, "RERANKER_DEVICE=cuda: this torch .* sees no CUDA GPU")):
        with monkeypatch.context() as patch:
            patch.setenv(variable, value)
            with pytest.raises(error, match=message):
                start()
    (tmp_path / "file").write_text("")
    with pytest.raises(ValueError, match="RERANKER_CACHE=.*file: the image cache folder cannot be made there"):
        ui.create_arena(str(tmp_path / "arena.db"), str(tmp_path / "file"), preload=False)
    monkeypatch.setenv("RERANKER_QWEN3_VL_RERANKER_2B_MODEL", str(tmp_path / "no-such-folder"))
    with caplog.at_level("WARNING", logger="reranker.ui"):
        start()  # the other model still works: the app starts
    assert "Qwen3-VL-Reranker-2B weights from" in caplog.text and "no-such-folder': no such folder" in caplog.text


def test_the_operator_hint_is_logged_when_the_app_starts(monkeypatch, tmp_path, caplog):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.delenv("RERANKER_DTYPE")
    with caplog.at_level("INFO", logger="reranker.ui"):
        arena = ui.create_arena(str(tmp_path / "arena.db"), str(tmp_path / "cache"), preload=False)
    arena.store.close()
    assert ui.speed_notes.operator_hint() in caplog.text
    # What the operator set, in one line.
    assert (f"database {tmp_path / 'arena.db'} · image cache {tmp_path / 'cache'} · models on cpu in "
            f"{str(devices.default_dtype(torch.device('cpu'))).removeprefix('torch.')}, loaded at first use · "
            "judging by typed name") in caplog.text


def test_a_space_keeping_its_database_on_its_own_disk_is_warned_at_start(monkeypatch, tmp_path, caplog):
    """Without RERANKER_DB a Space's database lies on the disk a restart empties: that was said
    only as the path in an INFO line."""
    from reranker import store as store_module

    monkeypatch.setattr(store_module, "DEFAULT_PATH", tmp_path / "repo" / "data" / "arena.db")
    monkeypatch.delenv("RERANKER_DB", raising=False)
    for system, warned in (("spaces", True), (None, False)):
        if system:
            monkeypatch.setenv("SYSTEM", system)
        else:
            monkeypatch.delenv("SYSTEM", raising=False)
        caplog.clear()
        with caplog.at_level("WARNING", logger="reranker.ui"):
            ui.create_arena(None, str(tmp_path / "cache"), preload=False).store.close()
        said = f"RERANKER_DB is not set: the database is {tmp_path / 'repo' / 'data' / 'arena.db'}, on this Space's own disk"
        assert (said in caplog.text) is warned
    monkeypatch.setenv("SYSTEM", "spaces")
    monkeypatch.setenv("RERANKER_DB", str(tmp_path / "mounted" / "arena.db"))
    caplog.clear()
    with caplog.at_level("WARNING", logger="reranker.ui"):
        ui.create_arena(None, str(tmp_path / "cache"), preload=False).store.close()
    assert "RERANKER_DB is not set" not in caplog.text


def test_the_app_starts_by_removing_what_the_old_cache_layout_left_at_the_cache_root(tmp_path, caplog):
    """Thumbnails and exports moved to pages/ and exports/, where the sweeps count them: those an
    earlier version left at the root would have stayed for good. Anything else there stays."""
    cache = tmp_path / "cache"
    (cache / "export-k2j_h4x9").mkdir(parents=True)
    (cache / "export-k2j_h4x9" / "train.zip").write_bytes(b"old")
    thumbnail = cache / f"{'0123456789abcdef' * 2}-256.jpg"
    thumbnail.write_bytes(b"\xff\xd8\xff")
    kept = [cache / "arena-backup.db", cache / "notes.jpg", cache / "mine", cache / "export-backups"]
    kept[0].write_bytes(b"SQLite format 3\x00")
    kept[1].write_bytes(b"\xff\xd8\xff")
    kept[2].mkdir()
    kept[3].mkdir()  # an operator's folder: only mkdtemp's names ("export-" + 8 characters) were the app's
    (kept[3] / "arena-2026-03-01.db").write_bytes(b"SQLite format 3\x00")
    with caplog.at_level("INFO", logger="reranker.ui"):
        ui.create_arena(str(tmp_path / "arena.db"), str(cache), preload=False).store.close()
    assert sorted(path.name for path in cache.iterdir()) == sorted([path.name for path in kept] + ["pages"])
    assert f"removed 2 thumbnail(s) and export folder(s) of the old cache layout from {cache}" in caplog.text


def test_the_app_starts_by_removing_render_folders_that_stopped_processes_left(monkeypatch, tmp_path, caplog):
    import subprocess
    import sys
    import tempfile

    ended = subprocess.Popen([sys.executable, "-c", "pass"])
    ended.wait()
    temp = tmp_path / "tmp"
    (temp / f"render-{ended.pid}-q0w9e8r7").mkdir(parents=True)
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    with caplog.at_level("INFO", logger="reranker.ui"):
        ui.create_arena(str(tmp_path / "arena.db"), str(tmp_path / "cache"), preload=False).store.close()
    assert list(temp.iterdir()) == []
    assert f"removed 1 render folder(s) left by stopped processes: render-{ended.pid}-q0w9e8r7" in caplog.text


def test_a_gpu_number_past_the_machines_gpus_is_refused_at_the_start_naming_them(monkeypatch, tmp_path):
    """RERANKER_DEVICE=cuda:1 on a one-GPU Space passed the start-up checks and crashed it with
    torch's AssertionError("Invalid device id"), which app.py does not turn into one line."""
    import torch

    from reranker.loading import LoadError

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    for count, device, message in ((1, "cuda:1", "this machine has 1 CUDA GPU (cuda:0)$"),
                                   (2, "cuda:2", "this machine has 2 CUDA GPUs (cuda:0 to cuda:1)$")):
        monkeypatch.setattr(torch.cuda, "device_count", lambda count=count: count)
        monkeypatch.setenv("RERANKER_DEVICE", device)
        with pytest.raises(LoadError, match=rf"^RERANKER_DEVICE={device}: {re.escape(message[:-1])}$"):
            ui.create_arena(str(tmp_path / "arena.db"), str(tmp_path / "cache"), preload=False)


def test_the_device_note_names_where_the_models_run_not_what_the_machine_has(monkeypatch):
    """RERANKER_DEVICE=cpu on a GPU machine said "Running on NVIDIA L4."."""
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "NVIDIA L4")
    monkeypatch.setenv("RERANKER_DEVICE", "cuda")
    assert ui.speed_notes.device_note() == "Running on NVIDIA L4."
    monkeypatch.setenv("RERANKER_DEVICE", "cpu")
    assert ui.speed_notes.device_note().startswith("**The models run on the CPU.** On 2 CPU cores")


def test_the_cpu_device_note_says_when_memory_made_the_models_bfloat16(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.delenv("RERANKER_DTYPE")
    monkeypatch.setattr(devices, "memory_limit", lambda: 16 * 2**30)  # a free CPU Space
    note = ui.speed_notes.device_note()
    assert "With 16 GiB of memory the models run in bfloat16" in note and "needs 20 GiB" in note


def test_escaped_text_keeps_quotes_and_markdown_never_renders_latex(arena):
    import gradio as gr

    assert ui.text.escape("O'Brien's \"Q3\" <b>*x*</b> & y") == "O'Brien's \"Q3\" &lt;b&gt;\\*x\\*&lt;/b&gt; &amp; y"
    # A line of "=" under text (a heading), a number and "." starting a line (a numbered list).
    assert ui.text.escape("Rules\n===\n2. tables\nQ3.5 = 2. x") == "Rules\n\\=\\=\\=\n2\\. tables\nQ3.5 \\= 2. x"
    demo = ui.build_app(arena)
    shown = [block for block in demo.blocks.values() if isinstance(block, gr.Markdown)]
    assert shown and all(block.latex_delimiters == [] for block in shown)  # a query's $$x$$ stays text


def _request(headers: dict[str, str]):
    """A gr.Request as Gradio makes one for an event: around the HTTP request that joined the queue."""
    import gradio as gr
    from starlette.requests import Request

    scope = {"type": "http", "method": "POST", "path": "/gradio_api/queue/join",
             "headers": [(name.encode(), value.encode()) for name, value in headers.items()]}
    return gr.Request(Request(scope))


@pytest.mark.parametrize("client, escaped", [
    ({"x-gradio-user": "app"}, True),  # the app's own page: Gradio renders the toast as HTML
    ({"x-gradio-user": "api"}, False),  # gradio_client, @gradio/client
    ({}, False),  # curl
    (None, False),  # no request at all (a direct Python call)
])
def test_a_refusal_is_escaped_for_the_page_and_reaches_api_clients_as_it_is(client, escaped):
    import gradio as gr

    request = None if client is None else _request(client)
    with pytest.raises(gr.Error) as raised:
        with ui.text.api_errors(request):
            raise ui.text.refuse("label must be one of relevant (got '<b>x</b> & y')")
    assert raised.value.message == ("label must be one of relevant (got '&lt;b&gt;x&lt;/b&gt; &amp; y')" if escaped
                                    else "label must be one of relevant (got '<b>x</b> & y')")
    assert raised.value.print_exception is False  # a refusal is no failure of the app, for either
    # A failure of the app (a full disk, say) too; any other exception is left as it is.
    with pytest.raises(gr.Error, match="disk <full>" if not escaped else "disk &lt;full&gt;"):
        with ui.text.api_errors(request):
            raise ui.text.ShownError("disk <full>")
    with pytest.raises(KeyError):
        with ui.text.api_errors(request):
            raise KeyError("<x>")


def test_the_apps_own_file_limit_is_below_gradios_so_a_big_file_is_named_not_the_batch_refused(arena):
    from gradio.utils import _parse_file_size

    from reranker.documents import IngestOptions

    assert _parse_file_size(ui.launch_options(arena)["max_file_size"]) > IngestOptions().max_file_bytes


def test_the_app_says_that_what_is_ranked_is_shared(arena):
    import gradio as gr

    demo = ui.build_app(arena)
    intro = next(b for b in demo.blocks.values() if isinstance(b, gr.Markdown) and b.elem_id == "intro")
    assert "Shared with everyone who uses this app" in intro.value and "confidential" in intro.value


def test_a_database_that_cannot_be_opened_is_named(tmp_path):
    from reranker.store import Store, StoreError

    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the database's folder should be")
    with pytest.raises(StoreError, match=r"The database .*not-a-folder/arena.db cannot be made: .*not-a-folder is not a folder"):
        Store(blocker / "arena.db")


def test_a_thumbnail_cache_size_that_is_not_a_number_stops_the_app_naming_the_variable(tmp_path, monkeypatch):
    monkeypatch.setenv("RERANKER_THUMBNAIL_CACHE_MB", "1GB")
    with pytest.raises(ValueError, match=r"^RERANKER_THUMBNAIL_CACHE_MB='1GB': expected a size in MB"):
        ui.create_arena(str(tmp_path / "arena.db"), str(tmp_path / "cache"), preload=False)
    monkeypatch.setenv("RERANKER_THUMBNAIL_CACHE_MB", "64")
    assert ui.create_arena(str(tmp_path / "arena.db"), str(tmp_path / "cache"), preload=False).images.disk_bytes == 64 * 2**20


@pytest.mark.parametrize(("value", "secret"), [(None, "rerank-arena"), ("", "rerank-arena"), ("ours", "ours")])
def test_what_the_browser_remembers_is_signed_with_a_key_that_outlives_a_restart(monkeypatch, value, secret):
    """Set but empty, RERANKER_BROWSER_SECRET reached Gradio as "", which then drew a random key
    at each start: every browser forgot its annotator's name at the next restart."""
    import gradio as gr

    if value is None:
        monkeypatch.delenv("RERANKER_BROWSER_SECRET", raising=False)
    else:
        monkeypatch.setenv("RERANKER_BROWSER_SECRET", value)
    with gr.Blocks():
        shared = ui.blocks.shared_state()
    assert {state.secret for state in (shared.saved_name, shared.saved_query, shared.saved_order)} == {secret}


def test_only_page_images_and_exports_are_served_from_the_cache_folder(tmp_path):
    """With RERANKER_CACHE the database's own folder (both on a Space's /data), Gradio served the
    whole file to anyone who asked for its path, and then any backup of it kept there."""
    import httpx

    folder = tmp_path / "data"
    arena = ui.Arena(ranking.ModelPool(loader=lambda key: pytest.fail("no model is needed")), Store(folder / "arena.db"), folder)
    arena.store.save_guidelines("Tables count.", "lead")  # something in the file, and a WAL beside it
    arena.store.backup(folder / "arena-backup.db")
    (folder / "pages" / "thumb.jpg").write_bytes(b"\xff\xd8\xff")  # what the folders are for
    (folder / "exports" / "export-1").mkdir(parents=True)
    (folder / "exports" / "export-1" / "train.zip").write_bytes(b"PK\x05\x06" + bytes(18))
    demo = ui.build_app(arena)
    _, url, _ = demo.launch(**ui.launch_options(arena), prevent_thread_lock=True, server_name="127.0.0.1", server_port=None)
    try:
        for served in (folder / "pages" / "thumb.jpg", folder / "exports" / "export-1" / "train.zip"):
            assert httpx.get(f"{url}gradio_api/file={served}").status_code == 200, served
        for name in ("arena.db", "arena.db-wal", "arena-backup.db"):
            assert (folder / name).exists()
            assert httpx.get(f"{url}gradio_api/file={folder / name}").status_code == 403, name
    finally:
        demo.close()
        arena.store.close()


def test_the_sessions_gradio_keeps_cost_at_most_a_few_hundred_mib(arena):
    """Gradio keeps a copy of every component's settings per session (each browser tab, each API
    client, closed or not) until newer sessions push it out: its default of 10,000 sessions held
    ~2 GiB, beyond every cache the README sizes."""
    import inspect
    import tracemalloc

    import gradio as gr
    from gradio.state_holder import SessionState

    demo = ui.build_app(arena)
    demo.get_config_file()  # as launch() does: the settings each session copies
    gradios_default = inspect.signature(gr.Blocks.launch).parameters["state_session_capacity"].default
    capacity = ui.launch_options(arena).get("state_session_capacity", gradios_default)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        sessions = [SessionState(demo) for _ in range(20)]
        per_session = (tracemalloc.get_traced_memory()[0] - before) / len(sessions)
    finally:
        tracemalloc.stop()
    assert per_session > 50 * 2**10, per_session  # what is measured is the sessions' settings
    assert capacity * per_session < 300 * 2**20, f"{capacity} sessions of {per_session / 2**10:.0f} KiB"


def test_a_database_failure_under_any_event_is_said_in_words_not_as_a_bare_error(ranked, arena, tmp_path):
    """Only the events that write said theirs: a read (the query list, Next query, /evaluate)
    on a database that failed under it showed Gradio's bare "Error", and the annotator could
    not tell a broken database from a bug."""
    from gradio_client import Client
    from gradio_client.exceptions import AppError

    from ..app_server import free_port

    demo = ui.build_app(arena)
    wrapped = [event.fn for event in demo.fns.values() if event.fn is not None]
    assert wrapped and all(hasattr(fn, "__wrapped__") for fn in wrapped)
    next_query = next(index for index, event in demo.fns.items() if getattr(event.fn, "__name__", "") == "next_to_judge")
    _, url, _ = demo.launch(**ui.launch_options(arena), prevent_thread_lock=True, server_name="127.0.0.1",
                            server_port=free_port(), quiet=True)
    try:
        client = Client(url, verbose=False)
        assert client.predict(annotator="", api_name="/evaluate")["models"]
        arena.store.close()  # every use of it fails from now on, in any of the server's threads
        with pytest.raises(AppError, match=r"The store of .*arena\.db was closed"):
            client.predict(annotator="", api_name="/evaluate")
        failed = _page_event(url, next_query, [None, "", ui.annotate_tab.ORDERS[0], 0])
        assert failed["output"]["error"].startswith("The store of ") and "was closed" in failed["output"]["error"]
    finally:
        demo.close()


def test_an_error_sqlite_raises_on_a_read_is_said_as_the_database_it_concerns(tmp_path):
    """A read of a damaged database raises sqlite3.DatabaseError, not the store's own error."""
    import sqlite3

    damaged = tmp_path / "arena.db"
    with sqlite3.connect(damaged) as db:
        db.execute("CREATE TABLE pages (png BLOB)")
        db.executemany("INSERT INTO pages VALUES (?)", [(bytes(5000),)] * 50)
    db.close()
    connection = sqlite3.connect(damaged)
    damaged.write_bytes(damaged.read_bytes()[:4096] + b"\xff" * 40960)  # every page but the first overwritten

    def read_pages():
        return connection.execute("SELECT count(*), sum(length(png)) FROM pages").fetchone()

    with pytest.raises(ui.text.ShownError, match=rf"The database {re.escape(str(damaged))} could not be read: it is damaged"):
        ui.text.store_failures_said(read_pages, damaged)()
    connection.close()


def _page_event(url: str, fn_index: int, data: list) -> dict:
    """An event run as the app's page runs it (queue/join, then the event stream; gradio_client
    calls only the API's endpoints): the message that ends it."""
    import json
    import uuid

    import httpx

    session = uuid.uuid4().hex
    headers = {"x-gradio-user": ui.text.FROM_THE_PAGE}
    with httpx.Client(timeout=60) as http:
        joined = http.post(f"{url}gradio_api/queue/join", headers=headers,
                           json={"fn_index": fn_index, "data": data, "session_hash": session, "event_data": None})
        joined.raise_for_status()
        with http.stream("GET", f"{url}gradio_api/queue/data", params={"session_hash": session}, headers=headers) as stream:
            for line in stream.iter_lines():
                if line.startswith("data:") and (message := json.loads(line[5:]))["msg"] == "process_completed":
                    return message
    raise AssertionError("the event stream ended without its result")
