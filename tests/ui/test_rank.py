"""The Rank tab: ranking an upload, its galleries and captions, agreement, and what it refuses."""

from __future__ import annotations

from pathlib import Path

import pytest

from reranker import ranking, ui
from reranker.models import A_KEY, B_KEY, get_spec
from reranker.store import Store

from . import QUERY

A, B = A_KEY, B_KEY


def test_ranking_view_escapes_what_users_typed_or_named(arena, tiny_rerankers, tmp_path):
    from ..bad_inputs import SAMPLE_PAGES

    evil = tmp_path / "<img src=x onerror=alert(1)>.jpg"
    evil.write_bytes(SAMPLE_PAGES[0].read_bytes())
    data = ui.rank_tab.rank_pages(arena, [str(evil)], "<script>alert(1)</script> *bold* [x](javascript:y)", None, None, None, None)
    status, header_a, gallery_a, header_b, gallery_b, agreement, scatter, _, _ = ui.rank_tab.show_ranking(arena, data)
    for text in (status, header_a, header_b):
        assert "<script>" not in text and "<img" not in text
    assert "&lt;script&gt;" in status and "\\*bold\\*" in status and "\\[x\\]" in status
    assert len(gallery_a) == 1 and gallery_a[0][1].startswith("#1 · P(yes) ")


# Pages the two tiny models rank in different orders (A: 1, 9, 7, 8; B: 9, 7, 8, 1), so a caption
# showing a page's own rank as the other model's, or an image shown for another page, is seen.
DISAGREEING = (1, 9, 7, 8)


def test_ranking_view_captions_follow_each_models_order(arena):
    from pathlib import Path

    from PIL import Image, ImageChops, ImageStat

    from ..bad_inputs import SAMPLE_PAGES

    files = [SAMPLE_PAGES[n] for n in DISAGREEING]
    data = ui.rank_tab.rank_pages(arena, [str(path) for path in files], QUERY, None, None, None, None)
    _, _, gallery_a, _, gallery_b, agreement, scatter, _, _ = ui.rank_tab.show_ranking(arena, data)
    pages = data["pages"]
    assert [page["source"] for page in pages] == [path.name for path in files]  # upload order

    def rank_under(key: str) -> dict[int, int]:
        """Page index → its rank by the model's per-page scores (computed here, not taken from the ranking)."""
        scores = data["models"][key]["scores"]
        assert len(set(scores)) == len(scores), "a tie would make the ranks ambiguous"
        return {page: 1 + sum(other > score for other in scores) for page, score in enumerate(scores)}

    ranks = {A: rank_under(A), B: rank_under(B)}
    assert ranks[A] != ranks[B], "the models must disagree, or 'other: #N' would equal the page's own rank"

    def small(path) -> Image.Image:
        with Image.open(path) as image:
            return image.convert("L").resize((48, 64))

    sources = [small(path) for path in files]

    def nearest_source(thumbnail: str) -> int:
        shown = small(thumbnail)
        return min(range(len(files)), key=lambda n: ImageStat.Stat(ImageChops.difference(shown, sources[n])).mean[0])

    for gallery, key, other in ((gallery_a, A, B), (gallery_b, B, A)):
        ranking = data["models"][key]["ranking"]
        assert len(gallery) == len(ranking) == len(files)
        # Best first: gallery position i shows the page this model ranks i + 1.
        shown_pages = [next(page for page, rank in ranks[key].items() if rank == position)
                       for position in range(1, len(files) + 1)]
        assert [entry["page"] for entry in ranking] == shown_pages, key
        for (path, caption), entry, page in zip(gallery, ranking, shown_pages):
            content_hash = pages[page]["content_hash"]
            assert entry["content_hash"] == content_hash
            # The thumbnail is that page's JPEG (thumbnails.PageImages names it by content hash) ...
            assert Path(path).name == f"{content_hash[:32]}-{ui.rank_tab.GALLERY_SIDE}.jpg", (key, caption)
            assert Path(path).is_relative_to(arena.pages_dir)
            # ... and looks like that page's file, not another one of the upload.
            assert nearest_source(path) == page, (key, caption, path)
            own, theirs = ranks[key][page], ranks[other][page]
            shift = theirs - own
            arrow = "=" if shift == 0 else (f"↓{shift}" if shift > 0 else f"↑{-shift}")
            score = data["models"][key]["scores"][page]
            assert caption == f"#{own} · P(yes) {score:.3f} · {files[page].name} · other: #{theirs} ({arrow})", key
    assert "Kendall τ" in agreement and list(scatter.columns) == ["Qwen3-VL-Reranker-2B", "Qwen3RerankerMM-2B", "page"]
    for key, column in ((A, "Qwen3-VL-Reranker-2B"), (B, "Qwen3RerankerMM-2B")):  # to the places its tooltip shows
        assert list(scatter[column]) == [round(score, 4) for score in data["models"][key]["scores"]]


def test_a_ranking_reports_its_progress_to_gradio_step_by_step(tmp_path, tiny_rerankers):
    """Through a real gr.Progress, which is falsy (its len is 0): the app once took it for none."""
    import gradio as gr

    from ..bad_inputs import SAMPLE_PAGES

    class Recorded(gr.Progress):
        def __call__(self, progress, desc=None, **options):
            steps.append((progress, desc))

    steps = []
    for reranker in tiny_rerankers.values():
        reranker.clear_caches()  # every page is scored here, whatever tests ran before
    pool = ranking.ModelPool(loader=lambda key: tiny_rerankers[key])  # neither model loaded yet
    arena = ui.Arena(pool, Store(tmp_path / "arena.db"), tmp_path / "cache")
    ui.rank_tab.rank_pages(arena, [str(path) for path in SAMPLE_PAGES[:5]], QUERY, None, None, None, None, Recorded())
    a, b = (get_spec(key).label for key in (A, B))
    messages = [desc for _, desc in steps]
    assert messages[:3] == ["Reading files", f"Loading {a}", f"Loading {b}"]
    assert messages[-1] == "Done" and f"{a}: 5/5 pages" in messages and f"{b}: 5/5 pages" in messages
    assert messages.index(f"{a}: 0/5 pages") < messages.index(f"{a}: 5/5 pages") < messages.index(f"{b}: 0/5 pages")
    fractions = [fraction for fraction, _ in steps]
    assert fractions == sorted(fractions) and fractions[0] == 0.0 and fractions[-1] == 1.0
    steps.clear()
    ui.rank_tab.rank_pages(arena, [str(path) for path in SAMPLE_PAGES[:5]], "another question", None, None, None, None, Recorded())
    assert not any(desc.startswith("Loading") for _, desc in steps)  # loaded by now


def test_an_unexpected_failure_of_a_ranking_is_said_in_words(tmp_path, monkeypatch, caplog):
    """A bug in the ranking showed a bare "Error" badge over the galleries, with nothing to report."""
    import gradio as gr

    from ..bad_inputs import SAMPLE_PAGES

    def broken(*args, **kwargs):
        raise KeyError("no page 3f2a")

    monkeypatch.setattr(ranking, "rank_and_save", broken)
    arena = ui.Arena(ranking.ModelPool(loader=lambda key: pytest.fail("no model is needed")),
                     Store(tmp_path / "arena.db"), tmp_path / "cache")
    with pytest.raises(gr.Error) as failure:
        ui.rank_tab.rank_pages(arena, [str(SAMPLE_PAGES[0])], QUERY, None, None, None, None)
    assert failure.value.message == "The ranking failed: KeyError: 'no page 3f2a' (the server log has the details)."
    assert f"ranking {QUERY!r} failed" in caplog.text and "KeyError: 'no page 3f2a'" in caplog.text  # with its traceback

    # An error already worded for people (ZeroGPU's quota message) passes as it is.
    quota = gr.Error("You have exceeded your GPU quota.", title="ZeroGPU quota exceeded", print_exception=False)

    def over_quota(*args, **kwargs):
        raise quota

    monkeypatch.setattr(ranking, "rank_and_save", over_quota)
    with pytest.raises(gr.Error) as failure:
        ui.rank_tab.rank_pages(arena, [str(SAMPLE_PAGES[0])], QUERY, None, None, None, None)
    assert failure.value is quota


@pytest.mark.parametrize(("budget_a", "budget_b", "dpi", "said"), [
    (None, None, 30, "dpi must be from 36 to 600, got 30.0"),
    (5000, None, None, "Qwen3-VL-Reranker-2B: image budget 5120000 px is outside"),
    (None, 2, None, "Qwen3RerankerMM-2B: image budget 2048 px is outside"),
    # The slider steps whole tokens; 1000.5 from a client was quietly 1000.
    (1000.5, None, None, r"Qwen3-VL-Reranker-2B: image budget must be a whole number of visual tokens, got 1000\.5"),
    (None, "600", None, "Qwen3RerankerMM-2B: image budget must be a whole number of visual tokens, got '600'"),
])
def test_settings_out_of_range_from_python_are_refused_by_name_not_reported_as_a_failure(tmp_path, caplog, budget_a, budget_b, dpi, said):
    """Gradio keeps its sliders' values in range; `rank_pages` called from Python is not."""
    from ..bad_inputs import SAMPLE_PAGES

    arena = ui.Arena(ranking.ModelPool(loader=lambda key: pytest.fail("no model is needed")),
                     Store(tmp_path / "arena.db"), tmp_path / "cache")
    with pytest.raises(ui.text.Refusal, match=said):
        ui.rank_tab.rank_pages(arena, [str(SAMPLE_PAGES[0])], QUERY, None, budget_a, budget_b, dpi)
    assert "failed" not in caplog.text and arena.store.list_queries() == []


def test_an_upload_of_only_bad_files_names_them_and_shows_no_ranking(tmp_path):
    pool = ranking.ModelPool(loader=lambda key: pytest.fail(f"{key} was loaded for no page"))
    arena = ui.Arena(pool, Store(tmp_path / "arena.db"), tmp_path / "cache")
    bad = tmp_path / "notes.txt"
    bad.write_text("not a document")
    data = ui.rank_tab.rank_pages(arena, [str(bad)], QUERY, None, None, None, None)
    status, header_a, gallery_a, header_b, gallery_b, agreement, scatter, _, _ = ui.rank_tab.show_ranking(arena, data)
    assert data["query_id"] is None and data["models"] == {}
    assert "**Nothing was ranked:** no page could be read from the upload." in status and "⚠️ notes.txt: " in status
    assert gallery_a == gallery_b == [] and agreement == "" and scatter is None


def test_a_failed_model_column_says_why(arena, ranked):
    ranked["models"][B].update(error="Could not load Qwen3RerankerMM-2B: offline", scores=None, ranking=[])
    ranked["agreement"] = None
    _, header_a, gallery_a, header_b, gallery_b, _, _, _, _ = ui.rank_tab.show_ranking(arena, ranked)
    assert "Unavailable" in header_b and "offline" in header_b and gallery_b == []
    assert len(gallery_a) == 4


def test_budget_sliders_keep_each_models_default_exact():
    assert ui.rank_tab.budget_pixels(B, 551) == 564_480  # the card's 720·28·28, not 551·32·32
    assert ui.rank_tab.budget_pixels(A, 1280) == 1280 * 32 * 32
    assert ui.rank_tab.budget_pixels(A, 1800) == 1800 * 32 * 32 and ui.rank_tab.budget_pixels(B, 256) == 256 * 32 * 32


def test_the_agreement_line_names_each_models_rank_and_says_no_top_k_overlap_for_k_pages_or_fewer():
    """With five pages or fewer both top-5 are every page: "100%" whatever the models thought."""
    def data(n: int) -> dict:
        pages = [dict(source=f"p{i}.png", page_number=1, kind="image", page_count=1) for i in range(n)]
        scores = [float(i) for i in range(n)]
        return dict(pages=pages, models={A: dict(scores=scores), B: dict(scores=scores[::-1])}, agreement=dict(
            kendall_tau=-1.0, spearman=-1.0, k=5, topk_overlap=None if n <= 5 else 0.2,
            disagreements=[dict(page=0, rank_a=n, rank_b=1)]))

    few, _ = ui.rank_tab.agreement_view(data(3))
    assert few.startswith("**Agreement:** Kendall τ -1.00\n") and "overlap" not in few
    assert "p0.png (VL-Reranker #3, RerankerMM #1)" in few
    many, _ = ui.rank_tab.agreement_view(data(6))
    assert many.startswith("**Agreement:** Kendall τ -1.00 · top-5 overlap 20%")


def test_a_new_query_about_the_same_upload_does_not_render_it_again(arena, monkeypatch, tmp_path):
    from reranker import documents

    from ..bad_inputs import sample_pdf

    pdf = tmp_path / "report.pdf"
    pdf.write_bytes(sample_pdf(3))
    loaded = []
    real = documents._ingest
    monkeypatch.setattr(documents, "_ingest", lambda name, *args: loaded.append(name) or real(name, *args))
    first = ui.rank_tab.rank_pages(arena, [str(pdf)], QUERY, None, None, None, None)
    second = ui.rank_tab.rank_pages(arena, [str(pdf)], "A different question about the same report", None, None, None, None)
    assert loaded == ["report.pdf"]
    assert [p["content_hash"] for p in second["pages"]] == [p["content_hash"] for p in first["pages"]]
    assert second["query_id"] != first["query_id"]
    # A different DPI is a different rendering.
    ui.rank_tab.rank_pages(arena, [str(pdf)], QUERY, None, None, None, 72)
    assert loaded == ["report.pdf", "report.pdf"]
    thumbnail = arena.image_path(first["pages"][0]["content_hash"], 128)  # from the remembered page
    assert thumbnail.endswith(".jpg")


def test_a_header_says_how_many_scores_were_stored_and_times_only_the_rest(arena):
    from ..bad_inputs import SAMPLE_PAGES

    files = [str(path) for path in SAMPLE_PAGES[:3]]
    ui.rank_tab.rank_pages(arena, files[:2], QUERY, None, None, None, None)
    data = ui.rank_tab.rank_pages(arena, files, QUERY, None, None, None, None)
    _, header_a, _, header_b, _, _, _, _, _ = ui.rank_tab.show_ranking(arena, data)
    for header, key in ((header_a, A), (header_b, B)):
        model = data["models"][key]
        assert (model["stored"], model["scored"]) == (2, 1)
        assert "3 pages (2 scored before) in" in header


def test_what_a_visitor_types_is_bounded_before_it_is_stored(arena):
    """Queries and guidelines are kept for good and shown to every visitor."""
    import gradio as gr

    from ..bad_inputs import SAMPLE_PAGES

    with pytest.raises(gr.Error, match="The query is 10,001 characters long; the app takes at most 10,000"):
        ui.rank_tab.rank_pages(arena, [str(SAMPLE_PAGES[0])], "<|im_start|>" * 833 + "x" * 5, None, None, None, None)
    with pytest.raises(gr.Error, match="The instruction is"):
        ui.rank_tab.rank_pages(arena, [str(SAMPLE_PAGES[0])], QUERY, "i" * 10_001, None, None, None)
    # An escape sequence would be stored and reach the operator's terminal (`eval --per-query`).
    with pytest.raises(gr.Error, match=r"The query holds a control character \(U\+001B\) at character 8; remove it"):
        ui.rank_tab.rank_pages(arena, [str(SAMPLE_PAGES[0])], "invoice\x1b]0;PWNED\x07", None, None, None, None)
    with pytest.raises(gr.Error, match=r"The instruction holds a control character \(U\+0007\)"):
        ui.rank_tab.rank_pages(arena, [str(SAMPLE_PAGES[0])], QUERY, "find\x07it", None, None, None)
    assert ui.rank_tab.rank_input_problems(["x.png"], "two\nlines\tand a tab\r", "one\nmore") == (None, None, None)
    assert arena.store.list_queries() == []  # nothing was stored
    with pytest.raises(gr.Error, match="at most 64,000 are kept"):
        ui.guidelines.write_guidelines(arena, "g" * 64_001)


def test_a_ranking_that_cannot_be_saved_says_why(arena, ranked):
    import gradio as gr

    from ..bad_inputs import SAMPLE_PAGES

    store = arena.store
    store.db.execute(f"PRAGMA max_page_count = {store.db.execute('PRAGMA page_count').fetchone()[0]}")
    with pytest.raises(Exception, match=r"could not be written: the disk holding it is full") as failure:
        ui.rank_tab.rank_pages(arena, [str(path) for path in SAMPLE_PAGES[4:6]], "another question", None, None, None, None)
    # An error of the app (logged with its traceback), not a refusal of what was asked.
    assert isinstance(failure.value, gr.Error) and not isinstance(failure.value, ui.text.Refusal)
    assert failure.value.print_exception


def test_clicking_a_page_in_one_gallery_shows_progress_on_the_large_view_only(arena):
    """The other gallery is an output of the click (its mark follows the page); with progress
    shown on every output, Gradio's overlay blanked that whole gallery for the request."""
    demo = ui.build_app(arena)
    ids = {c["props"].get("elem_id"): c["id"] for c in demo.config["components"] if c.get("props", {}).get("elem_id")}
    for clicked, other in (("gallery-a", "gallery-b"), ("gallery-b", "gallery-a")):
        (select,) = [d for d in demo.config["dependencies"] if (ids[clicked], "select") in [tuple(t) for t in d["targets"]]]
        assert ids[other] in select["outputs"] and select["show_progress_on"] == [ids["detail-image"]]


def test_enter_then_a_click_on_rank_while_it_runs_starts_one_ranking_not_two(arena):
    """The button and Enter in the query box are one listener whose trigger mode is "once": the
    browser sends nothing more while it runs. As two listeners, Enter and a click 0.3 s later
    ranked twice, and the second run's header ("in 0.00 s", all stored) replaced the first's."""
    demo = ui.build_app(arena)
    ids = {c["props"].get("elem_id"): c["id"] for c in demo.config["components"] if c.get("props", {}).get("elem_id")}
    rank = [d for d in demo.config["dependencies"] if d.get("api_name") == "rank"]
    assert len(rank) == 1 and rank[0]["trigger_mode"] == "once"
    assert {tuple(target) for target in rank[0]["targets"]} == {(ids["rank-button"], "click"), (ids["query"], "submit")}
    starting = [d for d in demo.config["dependencies"]
                if {tuple(t) for t in d["targets"]} & {(ids["rank-button"], "click"), (ids["query"], "submit")}]
    assert starting == rank  # nothing else starts on either


def test_each_example_ranks_its_page_among_others():
    """One page alone was no ranking to compare: each example's page comes between two others."""
    from pathlib import Path

    rows, labels = ui.rank_tab.examples()
    for (files, query), label in zip(rows[:-1], labels[:-1]):
        names = [Path(path).name for path in files]
        assert len(set(names)) == 3 and ui.rank_tab.EXAMPLE_QUERIES[names[1]] == query and all(Path(p).exists() for p in files)
        assert label.startswith("3 pages: ") and len(label) <= ui.rank_tab.EXAMPLE_LABEL_LIMIT
    assert len(rows[-1][0]) == 10 and labels[-1].startswith("All 10 sample pages: ")


def test_an_instruction_of_only_invisible_characters_is_no_instruction(arena):
    """Stored as an instruction, it replaced A's default and tagged the query "[instruction: ​]"."""
    from ..bad_inputs import SAMPLE_PAGES

    data = ui.rank_tab.rank_pages(arena, [str(SAMPLE_PAGES[0])], QUERY, "\u200b \u2060", None, None, None)
    assert data["instruction"] is None and arena.store.query(data["query_id"]).instruction is None


def _launched(demo, arena):
    """The app served in this process, on a free port; its address."""
    from ..app_server import free_port

    _, url, _ = demo.launch(**ui.launch_options(arena), prevent_thread_lock=True, server_name="127.0.0.1",
                            server_port=free_port(), quiet=True)
    return url


def _wait_until(done, what: str, seconds: float = 60) -> None:
    import time

    deadline = time.monotonic() + seconds
    while not done():
        assert time.monotonic() < deadline, f"not within {seconds} s: {what}"
        time.sleep(0.1)


def test_the_examples_still_load_after_gradios_clean_up_of_its_temp_folder(arena, tmp_path, monkeypatch):
    """Gradio's delete_cache (hourly) removed the example pages' copies that a click hands out:
    an hour or two after the start, every example ranked nothing ("could not be read")."""
    import gradio as gr
    import httpx
    from gradio_client import Client

    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio"))
    monkeypatch.setattr(ui.blocks, "EXPORT_KEEP_SECONDS", 1)  # Gradio's pass: every second, files over a second old
    demo = ui.build_app(arena)
    url = _launched(demo, arena)
    try:
        dataset = next(block for block in demo.blocks.values() if isinstance(block, gr.Dataset))
        click = next(index for index, fn in demo.fns.items() if [block._id for block in fn.inputs] == [dataset._id])
        client = Client(url, verbose=False, download_files=False)

        def example_files() -> list[str]:  # what a click on the first example puts in the upload box
            files, _query = client.predict(0, fn_index=click)  # the upload box, updated
            return [file["path"] for file in files["value"]]

        assert all(httpx.get(f"{url}gradio_api/file={path}").status_code == 200 for path in example_files())
        # A file Gradio served since: its pass removes it, as it removes every copy not kept.
        served = tmp_path / "served.jpg"
        served.write_bytes(b"\xff\xd8\xff served")
        copy = next(block for block in demo.blocks.values() if isinstance(block, gr.Gallery)).move_resource_to_block_cache(served)
        _wait_until(lambda: not Path(copy).exists(), "Gradio's delete_cache pass")
        paths = example_files()
        assert len(paths) == 3
        for path in paths:
            assert httpx.get(f"{url}gradio_api/file={path}").status_code == 200, path
    finally:
        demo.close()


def test_what_gradio_leaves_in_its_temp_folder_is_removed_once_old_and_nothing_else(arena, tmp_path, monkeypatch):
    """Gradio's delete_cache never removes: an empty tmp* file per uploaded file each time the
    upload box is read (twice a ranking), an upload refused for its name (or cut off midway),
    and the <sha256> folder of each file it removed. They stayed for good."""
    import os
    import re
    import time

    import httpx
    from gradio_client import Client, handle_file
    from PIL import Image

    from ..bad_inputs import SAMPLE_PAGES

    temp = tmp_path / "gradio"
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(temp))
    monkeypatch.setattr(ui.blocks, "EXPORT_KEEP_SECONDS", 1)  # Gradio's pass and the app's: every second
    demo = ui.build_app(arena)
    examples = list(temp.rglob("doc_*.jpg"))  # Gradio's copies, made as the app is built
    url = _launched(demo, arena)
    try:
        uploads = []
        for number, sample in enumerate(SAMPLE_PAGES[:2]):  # not the examples' files, which Gradio keeps
            uploads.append(tmp_path / f"upload-{number}.png")
            Image.open(sample).save(uploads[-1])
        Client(url, verbose=False, download_files=False).predict(
            files=[handle_file(str(path)) for path in uploads], query=QUERY, api_name="/rank")
        refused = httpx.post(f"{url}gradio_api/upload", files={"files": ("..", b"x" * 10_000)})
        assert refused.status_code == 400 and "Invalid file name" in refused.text

        def files_in(folder: Path) -> list[Path]:
            return [path for path in folder.rglob("*") if path.is_file()]

        _wait_until(lambda: not any(path.name.startswith("upload-") for path in files_in(temp)),
                    "Gradio's delete_cache pass removing the uploads")
        leftover_files = [path for path in temp.iterdir() if path.is_file() and re.fullmatch(r"tmp\w{8}", path.name)]
        emptied = [path for path in temp.iterdir() if path.is_dir() and not any(path.iterdir())]
        assert len(leftover_files) >= 2 * len(uploads) + 1 and len(emptied) >= len(uploads) + 1, (leftover_files, emptied)
        # An operator's files and a folder Gradio did not name stay whatever their age; Gradio's
        # examples' copies stay; a leftover of an upload under way (written just now) stays.
        others = [temp / "notes.txt", temp / "tmpfolder_1", temp / ("0" * 64), temp / ("0" * 64) / "served.jpg"]
        others[0].write_text("mine")
        others[1].mkdir()
        others[3].parent.mkdir()
        others[3].write_bytes(b"\xff\xd8\xff")
        two_hours_ago = time.time() - 2 * 3600 - 60
        for path in [*leftover_files, *emptied, *others]:
            os.utime(path, (two_hours_ago, two_hours_ago))
        under_way = temp / "tmpupload_1"
        under_way.write_bytes(b"partial")
        _wait_until(lambda: not any(path.exists() for path in [*leftover_files, *emptied]),
                    "the app's sweep of what Gradio left")
        assert all(path.exists() for path in [*others, under_way])
        assert len(examples) == 10 and all(path.exists() for path in examples)
    finally:
        demo.close()


def test_a_ranking_asked_for_after_one_that_never_started_is_not_stopped_by_a_press_meant_for_that_one():
    """A queued ranking stopped by its page and then dropped before it started (Gradio refused
    it after its validator) left its stopped ticket: the page's next ranking took it and stopped
    at once."""
    rankings = ui.arena.RankingsUnderWay()
    rankings.asked("page")
    assert rankings.stop("page", ui.arena.STOP_PRESSED) == 1
    rankings.asked("page")  # the next press of Rank
    with rankings.running("page") as ticket:
        assert ticket() == "" and len(rankings) == 1
    assert len(rankings) == 0
