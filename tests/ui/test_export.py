"""The Export tab: options as typed, the preview, the file, and old export files."""

from __future__ import annotations

from pathlib import Path

import gradio as gr
import pytest

from reranker import ui
from reranker.models import A_KEY as A


def test_export_tab_previews_and_writes_a_file(arena, ranked):
    from pathlib import Path

    query_id = ranked["query_id"]
    hashes = [entry["content_hash"] for entry in ranked["models"][A]["ranking"]]
    ui.annotate_tab.judge(arena, query_id, hashes[0], "ann", "relevant")
    ui.annotate_tab.judge(arena, query_id, hashes[1], "ann", "not_relevant")
    options = ("flagembedding", "either", 5, 10, "", "", "", False, False)
    assert "positives       1" in ui.export_tab.previewed(arena, *options)[0]
    path = Path(ui.export_tab.export_file(arena, *options))
    assert path.exists() and path.suffix == ".zip" and path.is_relative_to(arena.exports_dir)


def test_the_export_click_writes_what_its_preview_counted(arena, ranked):
    """The click previews (selecting) and then writes that selection: not selected twice, and a
    judgment made in between is not in a file whose counts the preview showed without it."""
    import json
    import zipfile

    query_id = ranked["query_id"]
    hashes = [entry["content_hash"] for entry in ranked["models"][A]["ranking"]]
    ui.annotate_tab.judge(arena, query_id, hashes[0], "ann", "relevant")
    options = ("pointwise", "all", 5, 10, "", "", "", False, False)
    summary, selection = ui.export_tab.preview_check(arena, *options)
    assert "positives       1" in summary and selection is not None
    ui.annotate_tab.judge(arena, query_id, hashes[1], "ann", "not_relevant")  # after the preview
    with zipfile.ZipFile(ui.export_tab.export_file(arena, *options, selection=selection)) as archive:
        assert json.loads(archive.read("export.json"))["counts"]["rows"] == 1
    with zipfile.ZipFile(ui.export_tab.export_file(arena, *options)) as archive:  # an API call: selected now
        assert json.loads(archive.read("export.json"))["counts"]["rows"] == 2
    # An option changed while the preview ran: what is on screen now is exported, selected again.
    changed = ("pointwise", "all", 4, 10, "", "", "", False, False)
    with zipfile.ZipFile(ui.export_tab.export_file(arena, *changed, selection=selection)) as archive:
        manifest = json.loads(archive.read("export.json"))
        assert (manifest["options"]["k"], manifest["counts"]["rows"]) == (4, 2)
    assert ui.export_tab.preview_check(arena, "pointwise", "all", 0, 10, "", "", "", False, False)[1] is None


def test_another_format_or_a_visit_of_the_tab_previews_without_selecting_again(arena, ranked, monkeypatch):
    """Each format change and each visit of the tab previewed by selecting the whole store again
    (0.8 s with 30,000 judgments); now only a change of the store or of what selects does."""
    from reranker import export

    query_id = ranked["query_id"]
    hashes = [entry["content_hash"] for entry in ranked["models"][A]["ranking"]]
    ui.annotate_tab.judge(arena, query_id, hashes[0], "ann", "relevant")
    made = []
    real_select = export.select
    monkeypatch.setattr(export, "select", lambda *args: made.append(args[1].format) or real_select(*args))
    rest = ("all", 5, 10, "", "", "", False, False)
    shown = {fmt: ui.export_tab.preview_view(arena, fmt, *rest) for fmt in ("pointwise", "flagembedding", "parquet")}
    assert made == ["pointwise"] and "flagembedding" in shown["flagembedding"] and "parquet" in shown["parquet"]
    ui.export_tab.export_file(arena, "parquet", *rest)  # an API call, after the preview
    assert made == ["pointwise"]
    ui.annotate_tab.judge(arena, query_id, hashes[1], "ann", "not_relevant")
    after = ui.export_tab.preview_view(arena, "pointwise", *rest)
    assert made == ["pointwise", "pointwise"] and "pointwise: 2 rows from 1 query" in after


def test_an_emptied_number_box_or_an_unknown_query_is_a_message_not_a_crash(arena, ranked):
    import gradio as gr

    options = ["pointwise", "either", None, 10, "", "", "", False, False]  # k emptied
    with pytest.raises(gr.Error, match="k must be a whole number of at least 1"):
        ui.export_tab.previewed(arena, *options)
    with pytest.raises(gr.Error, match=r"Max negatives per query \(max_negatives\) must be a whole number"):
        ui.export_tab.export_file(arena, "pointwise", "either", 5, 2.5)
    with pytest.raises(gr.Error, match="999999"):
        ui.annotate_tab.undo(arena, 999999, "rater")


def test_an_export_on_a_full_disk_says_so_and_leaves_no_folder_behind(arena, ranked, monkeypatch):
    """A full disk reached the visitor as Gradio's "the upstream app has raised an exception", and
    each try left an empty export folder."""
    import errno
    import os

    from reranker import output_files

    pages = ranked["pages"]
    ui.annotate_tab.judge(arena, ranked["query_id"], pages[0]["content_hash"], "rater", "relevant")
    ui.annotate_tab.judge(arena, ranked["query_id"], pages[1]["content_hash"], "rater", "not_relevant")

    def no_space(*args, **kwargs):  # the edge this machine cannot reach: a disk that fills up
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(output_files.tempfile, "mkstemp", no_space)
    with pytest.raises(gr.Error) as raised:
        ui.export_tab.export_file(arena, "pointwise", "all", 5, 10)
    assert raised.value.message == (f"The export file could not be written in the app's folder for them, {arena.exports_dir} "
                                    "(in RERANKER_CACHE): the disk holding it is full; free some space and try again. "
                                    "Nothing stored was changed.")
    assert not list(arena.exports_dir.glob("export-*"))


def test_exports_older_than_an_hour_are_removed_when_the_next_is_made(arena, ranked, monkeypatch):
    import os
    import time

    pages = ranked["pages"]
    ui.annotate_tab.judge(arena, ranked["query_id"], pages[0]["content_hash"], "rater", "relevant")
    ui.annotate_tab.judge(arena, ranked["query_id"], pages[1]["content_hash"], "rater", "not_relevant")
    old = ui.export_tab.export_file(arena, "pointwise", "all", 5, 10)
    hour_ago = time.time() - ui.export_tab.EXPORT_KEEP_SECONDS - 1
    os.utime(os.path.dirname(old), (hour_ago, hour_ago))
    new = ui.export_tab.export_file(arena, "pointwise", "all", 5, 10)
    assert os.path.exists(new) and not os.path.exists(old)
    # And only the newest few, whatever their age: anyone may export, and each is a copy of every judged page.
    made = [ui.export_tab.export_file(arena, "pointwise", "all", 5, 10) for _ in range(ui.export_tab.EXPORTS_KEPT + 2)]
    assert [os.path.exists(path) for path in made] == [False, False] + [True] * ui.export_tab.EXPORTS_KEPT
    assert len(list(arena.exports_dir.glob("export-*"))) == ui.export_tab.EXPORTS_KEPT


def test_gradios_copies_of_the_exports_removed_go_with_them(arena, ranked, tmp_path, monkeypatch):
    """Gradio serves each export from its own copy in its temporary folder, kept an hour: the app
    kept EXPORTS_KEPT exports while a loop of 20 left 20 copies (169 MB) there."""
    import filecmp

    import httpx
    from gradio_client import Client

    from reranker import export

    from ..app_server import free_port

    for page, label in zip(ranked["pages"][:2], ("relevant", "not_relevant")):
        ui.annotate_tab.judge(arena, ranked["query_id"], page["content_hash"], "rater", label)
    temp = tmp_path / "gradio"
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(temp))
    demo = ui.build_app(arena)
    _, url, _ = demo.launch(**ui.launch_options(arena), prevent_thread_lock=True, server_name="127.0.0.1",
                            server_port=free_port(), quiet=True)
    try:
        client = Client(url, verbose=False, download_files=False)

        def exported(max_negatives: int) -> str:  # the path of Gradio's copy, which the browser downloads
            return client.predict(fmt="pointwise", rule="all", k=5, max_negatives=max_negatives, api_name="/export")["path"]

        # All made within one second, as a script's loop of exports may be: one name for all.
        monkeypatch.setattr(export, "default_filename", lambda options, moment=None: "arena-pointwise-20261128T120000Z.zip")
        kept = ui.export_tab.EXPORTS_KEPT
        served = [exported(max_negatives) for max_negatives in range(1, kept + 3)]  # other bytes
        assert len(list(temp.glob("*/arena-*"))) == kept
        assert [path for path in served if Path(path).exists()] == served[-kept:]
        assert all(any(folder.iterdir()) for folder in temp.iterdir() if folder.is_dir())  # no empty folder left
        # Two exports of the same bytes and name have one copy: the older one's removal leaves it
        # to the other.
        twice = [exported(1), exported(1)]
        assert twice[0] == twice[1]
        for max_negatives in range(2, kept + 1):
            exported(max_negatives)
        assert httpx.get(f"{url}gradio_api/file={twice[1]}").status_code == 200
        same = [path for path in arena.exports_dir.glob("export-*/*") if filecmp.cmp(path, twice[1], shallow=False)]
        assert len(same) == 1  # the older of the two was removed
    finally:
        demo.close()


def test_export_allows_zero_negatives_but_not_fewer():
    assert ui.export_tab.export_options("pointwise", "either", 5, 0, "", "", "", False, False).max_negatives == 0  # positives only
    for typed, per_row in ((0, None), (None, None), ("", None), (3, 3), (3.0, 3)):  # 0 or empty: the fewest any query has
        assert ui.export_tab.export_options("sentence-transformers", "either", 5, 3, "", "", "", False, False, typed).negatives_per_row == per_row
    with pytest.raises(Exception, match=r"Negatives per row \(negatives_per_row\) must be a whole number of at least 0 \(got -1\)"):
        ui.export_tab.export_options("sentence-transformers", "either", 5, 3, "", "", "", False, False, -1)
    with pytest.raises(Exception, match=r"Max negatives per query \(max_negatives\) must be a whole number of at least 0"):
        ui.export_tab.export_options("pointwise", "either", 5, -1, "", "", "", False, False)
    with pytest.raises(Exception, match="k must be a whole number of at least 1"):
        ui.export_tab.export_options("pointwise", "either", 0, 3, "", "", "", False, False)


def test_negatives_per_row_left_in_its_box_is_not_recorded_in_another_formats_file(arena, ranked):
    """The box keeps its value across formats: a flagembedding file's export.json said
    negatives_per_row 3 (asked), a setting its rows never had and the CLI refuses for them."""
    import json
    import zipfile

    query_id = ranked["query_id"]
    hashes = [entry["content_hash"] for entry in ranked["models"][A]["ranking"]]
    ui.annotate_tab.judge(arena, query_id, hashes[0], "ann", "relevant")
    ui.annotate_tab.judge(arena, query_id, hashes[1], "ann", "not_relevant")
    for fmt in ("pointwise", "flagembedding", "parquet"):
        assert ui.export_tab.export_options(fmt, "either", 5, 3, "", "", "", False, False, 3).negatives_per_row is None
    with zipfile.ZipFile(ui.export_tab.export_file(arena, "flagembedding", "either", 5, 10, "", "", "", False, False, 3)) as archive:
        manifest = json.loads(archive.read("export.json"))
    assert manifest["options"]["negatives_per_row"] is None and manifest["counts"]["negatives_per_row_asked"] is False


@pytest.mark.parametrize("box", ["since", "until"])
@pytest.mark.parametrize("typed", ["yesterday", "26/11/2026"])
def test_a_date_the_export_cannot_read_names_its_box_and_the_formats_it_takes(box, typed):
    dates = {"since": "", "until": "", box: typed}
    with pytest.raises(Exception, match=rf"Judged {box} \({box}\): '{typed}' is not a date \(YYYY-MM-DD, e\.g\. 2026-03-01\)"):
        ui.export_tab.export_options("pointwise", "either", 5, 3, "", dates["since"], dates["until"], False, False)
    assert ui.export_tab.export_options("pointwise", "either", 5, 3, "", " 2026-03-01 ", "2026-03-02T10:00", False, False).since.day == 1


def test_preview_and_export_say_what_is_wrong_with_the_options_in_the_same_words(arena, ranked):
    """A message raised for a box is shown as it is: not re-wrapped, which quoted it ("'…'")."""
    import gradio as gr

    cases = {
        ("2026-02-30", ""): "Judged since (since): '2026-02-30' is not a date (YYYY-MM-DD, e.g. 2026-03-01) or an ISO date and "
                            "time (e.g. 2026-03-01T14:30; UTC unless it has an offset)",
        ("2026-03-06", "2026-03-05"): "since 2026-03-06 is not before until 2026-03-05 (a date until includes that "
                                      "whole day): no judgment can fall between them",
    }
    for (since, until), message in cases.items():
        options = ("pointwise", "either", 5, 3, "", since, until, False, False)
        for show in (ui.export_tab.previewed, ui.export_tab.export_file):
            with pytest.raises(gr.Error) as caught:
                show(arena, *options)
            assert caught.value.message == message, show.__name__
        assert ui.export_tab.preview_view(arena, *options) == f"⚠️ {ui.text.escape(message)}"  # in the box, in place of old counts
    # A name with "&" or "<" reads as typed: escaped for Markdown once (it showed "AT&amp;T").
    shown = ui.export_tab.preview_view(arena, "pointwise", "either", 5, 3, "AT&T <x>", "", "", False, False)
    assert shown.startswith(f"⚠️ no judgments by {ui.text.escape(repr('AT&T <x>'))}") and "&amp;amp;" not in shown
    assert ui.export_tab.preview_view(arena, "pointwise", "either", 5, 3, "", "", "", False, False).startswith("```\npointwise: ")
