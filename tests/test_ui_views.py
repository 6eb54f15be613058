"""The UI's view functions on a real store, without a browser: what each tab shows."""

from __future__ import annotations

import functools
import re
import gradio as gr
import pytest

from reranker import devices, ranking, ui
from reranker.models import A_KEY, B_KEY, get_spec
from reranker.store import Store

A, B = A_KEY, B_KEY
QUERY = "Which region of the SUC2 frequency plot leads to extinction?"


@pytest.fixture
def arena(tmp_path, tiny_rerankers):
    pool = ranking.ModelPool(loader=lambda key: tiny_rerankers[key])
    return ui.Arena(pool, Store(tmp_path / "arena.db"), tmp_path / "cache")


@pytest.fixture
def ranked(arena):
    from .bad_inputs import SAMPLE_PAGES

    files = [str(path) for path in SAMPLE_PAGES[:4]]
    return ui.rank_tab.rank_pages(arena, files, QUERY, None, None, None, None)


def test_ranking_view_escapes_what_users_typed_or_named(arena, tiny_rerankers, tmp_path):
    from .bad_inputs import SAMPLE_PAGES

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

    from .bad_inputs import SAMPLE_PAGES

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
            assert Path(path).is_relative_to(arena.cache_dir)
            # ... and looks like that page's file, not another one of the upload.
            assert nearest_source(path) == page, (key, caption, path)
            own, theirs = ranks[key][page], ranks[other][page]
            shift = theirs - own
            arrow = "=" if shift == 0 else (f"↓{shift}" if shift > 0 else f"↑{-shift}")
            score = data["models"][key]["scores"][page]
            assert caption == f"#{own} · P(yes) {score:.3f} · {files[page].name} · other: #{theirs} ({arrow})", key
    assert "Kendall τ" in agreement and list(scatter.columns) == ["Qwen3-VL-Reranker-2B", "Qwen3RerankerMM-2B", "page"]


def test_a_ranking_reports_its_progress_to_gradio_step_by_step(tmp_path, tiny_rerankers):
    """Through a real gr.Progress, which is falsy (its len is 0): the app once took it for none."""
    import gradio as gr

    from .bad_inputs import SAMPLE_PAGES

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

    from .bad_inputs import SAMPLE_PAGES

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
    from .bad_inputs import SAMPLE_PAGES

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


def test_most_informative_order_puts_disagreements_first(arena, ranked):
    pages = arena.store.query_pages(ranked["query_id"])
    ordered = ui.annotate_tab.page_order(pages, ui.annotate_tab.ORDERS[0])
    gaps = [abs(p.ranks[A] - p.ranks[B]) for p in ordered]
    assert gaps == sorted(gaps, reverse=True)
    by_a = ui.annotate_tab.page_order(pages, ui.annotate_tab.ORDERS[1])
    assert [p.ranks[A] for p in by_a] == [1, 2, 3, 4]


def test_annotating_moves_to_the_next_unjudged_page_and_counts_progress(arena, ranked):
    query_id = ranked["query_id"]
    image, info, progress, _, page_hash, total = ui.annotate_tab.annotate_view(arena, query_id, "ann", ui.annotate_tab.ORDERS[3], 0)
    assert total == 4 and "0/4 judged" in progress and "current label: **Unjudged**" in info
    ui.annotate_tab.judge(arena, query_id, page_hash, "ann", "relevant")
    assert ui.annotate_tab.next_position(arena, query_id, "ann", ui.annotate_tab.ORDERS[3], 0) == 1
    _, info, progress, *_ = ui.annotate_tab.annotate_view(arena, query_id, "ann", ui.annotate_tab.ORDERS[3], 0)
    assert "1/4 judged" in progress and "current label: **Relevant**" in info
    # The image's label says it too (in full screen nothing else shows); its alternative text
    # names the page (a screen reader heard an unnamed image).
    first = arena.store.query_pages(query_id)[0]
    assert image == {"__type__": "update", "value": arena.image_path(page_hash, 1600), "label": f"Page 1 of 4 · Unjudged · 0/4 judged · “{QUERY}”",
                     "alt_text": f"{ui.text.stored_page_label(first)}, page 1 of 4"}
    # Without a name, the line says what judging needs (it said "by —"), and counts anyone's
    # judgments, as the query list does then (it said 0/4 beside the list's 1/4).
    _, info, progress, *_ = ui.annotate_tab.annotate_view(arena, query_id, None, ui.annotate_tab.ORDERS[3], 0)
    assert progress == "**1/4 judged** by anyone · type your name above to judge"
    assert "current label: **—**" in info  # not "Unjudged": someone judged it
    assert ui.annotate_tab.query_choices(arena, None)[0][0].startswith("1/4 judged — ")
    assert ui.annotate_tab.annotate_view(arena, query_id, "ann", ui.annotate_tab.ORDERS[3], 0)[0]["label"] == f"Page 1 of 4 · Relevant · 1/4 judged · “{QUERY}”"
    with pytest.raises(Exception, match="Enter your name"):
        ui.annotate_tab.judge(arena, query_id, page_hash, "  ", "relevant")
    with pytest.raises(Exception, match="label must be"):
        ui.annotate_tab.judge(arena, query_id, page_hash, "ann", "maybe")


def test_a_finished_ranking_opens_on_annotate_unless_someone_is_judging_there(arena, ranked):
    """Switched to the new query while judging another, an annotator lost their place."""
    import gradio as gr

    from .bad_inputs import SAMPLE_PAGES

    newer = ui.rank_tab.rank_pages(arena, [str(SAMPLE_PAGES[0])], "a newer question", None, None, None, None)
    listing, position = ui.annotate_tab.pick_latest(arena, newer, "ann", ui.annotate_tab.ORDERS[0], ranked["query_id"], "rank")
    assert listing["value"] == newer["query_id"] and position == 0
    listing, position = ui.annotate_tab.pick_latest(arena, newer, "ann", ui.annotate_tab.ORDERS[0], None, "annotate")  # nothing open yet
    assert listing["value"] == newer["query_id"]
    listing, position = ui.annotate_tab.pick_latest(arena, newer, "ann", ui.annotate_tab.ORDERS[0], ranked["query_id"], "annotate")
    assert "value" not in listing and position == gr.skip()
    assert newer["query_id"] in [value for _, value in listing["choices"]]  # in the list, to pick


def test_each_annotate_action_moves_to_the_page_it_should(arena, ranked):
    """The buttons and keys, without a browser: a label moves on to the next unjudged page (in
    the chosen order, wrapping), undo goes back to the page it undid, ← and → stay in range."""
    query_id, order = ranked["query_id"], ui.annotate_tab.ORDERS[3]
    hashes = [page.page_hash for page in ui.annotate_tab.page_order(arena.store.query_pages(query_id), order)]
    act = functools.partial(ui.annotate_tab.annotate_action, arena, query_id=query_id, name="ann", order=order, total=4)
    assert act("previous", position=0, page_hash=hashes[0]) == (0, False)
    assert act("next", position=3, page_hash=hashes[3]) == (3, False)
    assert act("relevant", position=2, page_hash=hashes[2]) == (3, True)
    assert act("not_relevant", position=3, page_hash=hashes[3]) == (0, True)  # wraps to the first unjudged
    assert arena.store.current_labels(query_id, "ann") == {hashes[2]: "relevant", hashes[3]: "not_relevant"}
    assert act("undo", position=0, page_hash=hashes[0]) == (3, True)  # back to the page undone
    assert arena.store.current_labels(query_id, "ann") == {hashes[2]: "relevant"}
    with pytest.raises(Exception, match="Pick a query first"):
        ui.annotate_tab.annotate_action(arena, "relevant", None, "ann", order, 0, None, 4)


def test_a_fully_judged_query_says_so_and_one_with_its_own_instruction_is_told_apart(arena, ranked):
    """The next key after the last page relabels a judged page: the progress says every page is
    judged. The same question with its own instruction is another query, in the list and on the page."""
    from .bad_inputs import SAMPLE_PAGES

    query_id = ranked["query_id"]
    for page in arena.store.query_pages(query_id)[:3]:
        ui.annotate_tab.judge(arena, query_id, page.page_hash, "ann", "relevant")
    assert "every page judged" not in ui.annotate_tab.annotate_view(arena, query_id, "ann", ui.annotate_tab.ORDERS[3], 0)[2]
    ui.annotate_tab.judge(arena, query_id, arena.store.query_pages(query_id)[3].page_hash, "ann", "skip")
    progress = ui.annotate_tab.annotate_view(arena, query_id, "ann", ui.annotate_tab.ORDERS[3], 0)[2]
    assert progress == ("**4/4 judged** by ann · ✓ every page judged: a key now changes the label of the page shown; "
                        "Q opens the next query to judge")

    other = ui.rank_tab.rank_pages(arena, [str(SAMPLE_PAGES[0])], QUERY, "Find the chart.", None, None, None)["query_id"]
    labels = dict((value, label) for label, value in ui.annotate_tab.query_choices(arena, "ann"))
    assert labels[query_id] == f"4/4 judged — {QUERY}"
    assert labels[other] == f"0/1 judged — {QUERY} [instruction: Find the chart.]"
    assert "*Instruction:* Find the chart." in ui.annotate_tab.annotate_view(arena, other, "ann", ui.annotate_tab.ORDERS[3], 0)[1]
    long_query = "Which figure compares the average queue length against betweenness centrality in the simulated network?"
    longer = ui.rank_tab.rank_pages(arena, [str(SAMPLE_PAGES[0])], long_query, None, None, None, None)["query_id"]
    listed = dict((value, label) for label, value in ui.annotate_tab.query_choices(arena, "ann"))[longer]
    assert listed == "0/1 judged — Which figure compares the average queue length against betweenness centrality in the…"


def test_next_query_to_judge_follows_the_list_and_skips_queries_judged_through(arena):
    """Q after a query's last page: the next query down the list (newest first, wrapping round)
    with a page this annotator has not judged; another annotator's judgments leave it unjudged
    for them, and without a name it is the next page nobody judged."""
    from .bad_inputs import SAMPLE_PAGES

    def ranked_query(text: str, pages: int) -> int:
        return ui.rank_tab.rank_pages(arena, [str(path) for path in SAMPLE_PAGES[:pages]], text, None, None, None, None)["query_id"]

    def judge_all(query_id: int, annotator: str) -> None:
        for page in arena.store.query_pages(query_id):
            ui.annotate_tab.judge(arena, query_id, page.page_hash, annotator, "skip")

    oldest, middle, newest = ranked_query("oldest", 2), ranked_query("middle", 1), ranked_query("newest", 2)
    listed = [value for _, value in ui.annotate_tab.query_choices(arena, "ann")]
    assert listed == [newest, middle, oldest]
    assert ui.annotate_tab.next_query_to_judge(arena, newest, "ann") == middle
    assert ui.annotate_tab.next_query_to_judge(arena, None, "ann") == newest  # nothing open: the top of the list
    judge_all(middle, "ann")
    assert ui.annotate_tab.next_query_to_judge(arena, newest, "ann") == oldest  # judged through: passed over
    assert ui.annotate_tab.next_query_to_judge(arena, oldest, "ann") == newest  # wraps round to the top
    assert ui.annotate_tab.next_query_to_judge(arena, newest, "bea") == middle  # ann's judgments are not bea's
    assert ui.annotate_tab.next_query_to_judge(arena, newest, None) == oldest  # without a name: judged by anyone counts
    arena.store.record_judgment(oldest, arena.store.query_pages(oldest)[0].page_hash, "ann", "relevant")
    assert ui.annotate_tab.next_query_to_judge(arena, newest, "ann") == oldest  # one page of two left
    judge_all(oldest, "ann")
    assert ui.annotate_tab.next_query_to_judge(arena, newest, "ann") is None  # the open query is not "the next"
    judge_all(newest, "ann")
    assert ui.annotate_tab.next_query_to_judge(arena, newest, "ann") is None


def test_next_query_without_a_name_opens_at_the_first_page_nobody_judged(arena, ranked):
    query_id = ranked["query_id"]
    order = ui.annotate_tab.ORDERS[3]  # upload order
    pages = [page.page_hash for page in ui.annotate_tab.page_order(arena.store.query_pages(query_id), order)]
    for page_hash, who in zip(pages[:2], ("bob", "ann")):
        ui.annotate_tab.judge(arena, query_id, page_hash, who, "not_relevant")
    assert ui.annotate_tab.first_to_judge(arena, query_id, "", order) == 2  # nobody has judged the third
    assert ui.annotate_tab.first_to_judge(arena, query_id, "bob", order) == 1  # bob has not judged the second
    ui.annotate_tab.undo(arena, query_id, "ann")  # a cleared label is no judgment
    assert ui.annotate_tab.first_to_judge(arena, query_id, None, order) == 1


def test_queries_whose_shown_names_are_alike_are_told_apart_in_the_list_and_on_evaluate(arena):
    """Two instructions alike in their first 40 characters: the list, the per-query table and the
    row a click opens were the same for both queries (the second could not be opened)."""
    from .bad_inputs import SAMPLE_PAGES

    shared = "Answer from the tables of the annual report only, "
    ids = [ui.rank_tab.rank_pages(arena, [str(SAMPLE_PAGES[0]), str(SAMPLE_PAGES[1])], "Find the table", shared + version,
                         None, None, None)["query_id"] for version in ("version A", "version B")]
    for query_id in ids:
        first, second = (page.page_hash for page in arena.store.query_pages(query_id))
        ui.annotate_tab.judge(arena, query_id, first, "ann", "relevant")
        ui.annotate_tab.judge(arena, query_id, second, "ann", "not_relevant")
    labels = [label for label, _ in ui.annotate_tab.query_choices(arena, "ann")]
    assert len(set(labels)) == 2 and all(label.endswith(f"(query #{query_id})") for label, query_id in
                                         zip(labels, reversed(ids)))
    _, _, _, per_query, *_, openable = ui.evaluate_tab.evaluate_view(arena, "ann")
    assert set(openable["queries"].values()) == set(ids)
    for shown in set(per_query["query"]):
        chosen, line, _ = ui.evaluate_tab.query_chosen_view(arena, openable, shown)
        assert shown.endswith(f"(query #{chosen[0]})") and line.endswith(ui.text.escape(f"(query #{chosen[0]})") + "”, 2 pages")


def test_annotators_are_listed_as_people_read_names(arena, ranked):
    page_hash = ranked["pages"][0]["content_hash"]
    for name in ("bob", "Carol", "alice", "Zed"):
        ui.annotate_tab.judge(arena, ranked["query_id"], page_hash, name, "relevant")
    assert arena.store.annotators() == ["alice", "bob", "Carol", "Zed"]


def test_a_page_has_the_same_name_on_every_tab(arena, tmp_path):
    """An image alone is its file name; a PDF's page and every frame of a TIFF carry a page number
    (the first frame too), in the galleries, the page shown large, Annotate and Evaluate."""
    from .app_server import sample_pdf
    from .bad_inputs import SAMPLE_PAGES, multi_frame_tiff

    tiff = tmp_path / "scan.tif"
    tiff.write_bytes(multi_frame_tiff())
    files = [str(SAMPLE_PAGES[0]), str(sample_pdf(tmp_path / "two.pdf", numbers=(2, 3))), str(tiff)]
    data = ui.rank_tab.rank_pages(arena, files, QUERY, None, None, None, None)
    expected = {SAMPLE_PAGES[0].name, "two.pdf · p.1", "two.pdf · p.2", "scan.tif · p.1", "scan.tif · p.2", "scan.tif · p.3"}
    _, _, gallery_a, _, gallery_b, *_ = ui.rank_tab.show_ranking(arena, data)
    for gallery in (gallery_a, gallery_b):
        assert {caption.split(" · ", 2)[2].split(" · other")[0] for _, caption in gallery} == expected
    shown = set()
    for position in range(len(expected)):
        _, info, *_ = ui.annotate_tab.annotate_view(arena, data["query_id"], "ann", ui.annotate_tab.ORDERS[3], position)
        shown.add(info.split("\n\n")[1].split(" · ", 1)[1].rsplit(" · current label", 1)[0].replace("\\", ""))
    assert shown == expected
    for page_hash in {page["content_hash"] for page in data["pages"]}:  # all not relevant: every top page a mistake
        ui.annotate_tab.judge(arena, data["query_id"], page_hash, "ann", "not_relevant")
    ui.annotate_tab.judge(arena, data["query_id"], data["models"][A]["ranking"][-1]["content_hash"], "ann", "relevant")
    *_, mistakes_a, _, _ = ui.evaluate_tab.evaluate_view(arena, "ann")
    assert mistakes_a and all(caption.split(" · ", 1)[1].rsplit(" · for “", 1)[0] in expected  # "#1 · page · for “…”"
                              for _, caption in mistakes_a)


def test_the_page_view_leaves_the_page_number_box_alone_when_it_shows_that_page(arena, ranked):
    """An update that would write the same number over a box someone is typing in is skipped."""
    import gradio as gr

    query_id = ranked["query_id"]
    for shown, expected in ((2, gr.skip()), (2.0, gr.skip()), (1, gr.update(value=2)), (None, gr.update(value=2))):
        image, info, _, number, page_hash, total = ui.annotate_tab.page_view(arena, query_id, " ann ", ui.annotate_tab.ORDERS[3], 1, shown)
        assert number == expected, shown
        assert "Page 2 of 4" in info and total == 4 and page_hash == ranked["pages"][1]["content_hash"]


def profile_of(username: str):
    import gradio as gr

    return gr.OAuthProfile({"preferred_username": username, "name": username.title(),
                            "profile": f"https://huggingface.co/{username}", "picture": ""})


def test_with_login_on_judgments_carry_the_signed_in_name_only(arena, ranked, monkeypatch):
    monkeypatch.setenv("OAUTH_CLIENT_ID", "a-space-with-hf-oauth")
    assert not ui.annotators.login_required()  # off a Space, Gradio's login is a mock: anyone is its user
    monkeypatch.setenv("SYSTEM", "spaces")
    query_id, page_hash = ranked["query_id"], ranked["models"][A]["ranking"][0]["content_hash"]
    with pytest.raises(Exception, match="Sign in with Hugging Face"):
        ui.annotate_tab.judge(arena, query_id, page_hash, "alice", "relevant")  # a typed name is anyone's
    with pytest.raises(Exception, match="Sign in with Hugging Face"):
        ui.annotate_tab.undo(arena, query_id, "alice")
    with pytest.raises(Exception, match="You are signed in as mallory: judgments here carry that name, not 'alice'"):
        ui.annotate_tab.judge(arena, query_id, page_hash, "alice", "relevant", profile_of("mallory"))
    assert ui.annotate_tab.judge(arena, query_id, page_hash, "", "relevant", profile_of("alice"))["annotator"] == "alice"
    assert ui.annotate_tab.judge(arena, query_id, page_hash, "alice", "skip", profile_of("alice"))["annotator"] == "alice"
    assert ui.annotate_tab.judge(arena, query_id, page_hash, "ALICE", "skip", profile_of("alice"))["annotator"] == "alice"  # as everywhere
    assert ui.annotate_tab.undo(arena, query_id, "", profile_of("alice"))["undone"]["undone_label"] == "skip"
    assert arena.store.annotators() == ["alice"]

    monkeypatch.setenv("RERANKER_REQUIRE_LOGIN", "0")  # the Space's owner allows typed names
    assert ui.annotate_tab.judge(arena, query_id, page_hash, "bob", "relevant")["annotator"] == "bob"
    monkeypatch.delenv("OAUTH_CLIENT_ID")
    monkeypatch.delenv("RERANKER_REQUIRE_LOGIN")
    assert not ui.annotators.login_required()  # no login on this app: typed names, as before
    assert ui.annotate_tab.judge(arena, query_id, page_hash, "carol", "relevant", profile_of("alice"))["annotator"] == "carol"


def test_guidelines_are_saved_in_the_database_by_whoever_is_named_and_on_a_login_space_only_signed_in(arena, monkeypatch):
    text, line, version = ui.guidelines.read_guidelines(arena)
    assert (text, line, version) == (ui.guidelines.DEFAULT_GUIDELINES, "", 0)
    line, version = ui.guidelines.write_guidelines(arena, "Relevant: the page alone answers.", "Dana", based_on=version)
    assert line.startswith("Saved by Dana on ") and ui.guidelines.read_guidelines(arena) == ("Relevant: the page alone answers.", line, version)
    with pytest.raises(Exception, match="Enter your name .* before saving the guidelines"):
        ui.guidelines.write_guidelines(arena, "Saved by nobody.", "  ", based_on=version)
    line, version = ui.guidelines.write_guidelines(arena, "Anyone may save here.", "eve", based_on=version)
    assert line.startswith("Saved by eve on ")
    with pytest.raises(Exception, match="too long"):
        ui.guidelines.write_guidelines(arena, "x", "n" * 81)
    # A page loaded before that save: its edit would quietly undo it, so it is refused.
    with pytest.raises(ui.guidelines.GuidelinesConflict, match="Not saved: other guidelines were saved by eve on .*, after yours were "
                                                    "loaded. Theirs are shown under the box") as conflict:
        ui.guidelines.write_guidelines(arena, "An edit of the first version.", "Eve", based_on=version - 1)
    assert arena.store.guidelines().text == "Anyone may save here." and conflict.value.latest.id == version
    assert ui.guidelines.conflict_line(conflict.value.latest).endswith("(the next Save replaces them):\n\n> Anyone may save here.")

    monkeypatch.setenv("OAUTH_CLIENT_ID", "a-space-with-hf-oauth")
    monkeypatch.setenv("SYSTEM", "spaces")
    with pytest.raises(Exception, match="Sign in with Hugging Face .* to change the guidelines"):
        ui.guidelines.write_guidelines(arena, "Overwritten by an anonymous visitor.", "lead")  # a typed name is anyone's
    assert arena.store.guidelines().text == "Anyone may save here."
    line, _ = ui.guidelines.write_guidelines(arena, "Signed.", "mallory", profile_of("lead"), based_on=version)
    assert line.startswith("Saved by lead on ") and arena.store.guidelines().author == "lead"  # not the typed name


def test_evaluate_tab_shows_metrics_mistakes_and_agreement(arena, ranked):
    query_id = ranked["query_id"]
    order_a = [entry["content_hash"] for entry in ranked["models"][A]["ranking"]]
    # The page A ranks last is the relevant one, so A's top pages are its "hardest mistakes".
    for annotator in ("ann", "bob"):
        for page_hash in order_a:
            label = "relevant" if page_hash == order_a[-1] else "not_relevant"
            ui.annotate_tab.judge(arena, query_id, page_hash, annotator, label)
    summary, bars, differences, per_query, notes, mistakes_a, mistakes_b, pages = ui.evaluate_tab.evaluate_view(arena, "")
    assert set(summary["model"]) == {"Qwen3-VL-Reranker-2B", "Qwen3RerankerMM-2B"}
    row_a = summary.set_index("model").loc["Qwen3-VL-Reranker-2B"]
    assert row_a["mrr"] == pytest.approx(0.25) and row_a["queries"] == 1
    assert set(bars["metric"]) >= {"ndcg@5", "ndcg_blog@5", "mrr"} and len(per_query) == 2
    # Each bar is named by metric and the model's tag (the full names made labels the plot cut),
    # every one of them in the plot's fixed order: metrics as listed, the models in their order.
    assert set(bars["bar"]) == set(ui.evaluate_tab.bar_order()) and "ndcg_blog@5 · VL-Reranker" in set(bars["bar"])
    assert ui.evaluate_tab.bar_order()[:2] == ["ndcg@5 · VL-Reranker", "ndcg@5 · RerankerMM"]
    assert "Cohen's κ ann vs bob" in notes and "ndcg_blog@k" in notes
    assert "Models: mean Kendall τ " in notes
    assert "overlap" not in notes  # 4 pages: both models' top 5 are every page
    # Rank and page first: a thumbnail's caption shows only its start.
    assert len(mistakes_a) == 3 and all(re.match(r"#\d · \S+\.jpg · for “", caption) for _, caption in mistakes_a)
    # Behind each thumbnail, its query and page (what "Open in Annotate" opens): A's top three.
    assert pages[A] == [(query_id, page_hash) for page_hash in order_a[:3]]
    assert all(page_hash[:32] in path for (path, _), (_, page_hash) in zip(mistakes_a, pages[A]))
    assert len(pages[B]) == len(mistakes_b)
    assert "nor are pages the majority vote leaves undecided" in notes
    # A − B, a row per metric, over the one query both were evaluated on (too few to test).
    assert list(differences.columns) == ["metric", "mean difference", "95% CI", "p (paired t-test)", "better / same / worse", "queries"]
    mrr = differences.set_index("metric").loc["mrr"]
    row_b = summary.set_index("model").loc["Qwen3RerankerMM-2B"]
    assert mrr["mean difference"] == f"{row_a['mrr'] - row_b['mrr']:+.4f}" and mrr["queries"] == 1
    assert (mrr["95% CI"], mrr["p (paired t-test)"]) == ("—", "—")
    assert "majority vote" not in ui.evaluate_tab.evaluate_view(arena, "ann")[4]  # one annotator's labels: no vote
    with pytest.raises(Exception, match="no judgments by"):
        ui.evaluate_tab.evaluate_view(arena, "nobody")


def test_a_mistake_chosen_in_evaluate_is_named_and_opens_at_its_page_in_any_order(arena, ranked):
    """The page chosen in a mistake gallery: the line names it, its rank and query; Annotate
    opens the query at that page whatever the order chosen there. A per-query row names its query."""
    query_id = ranked["query_id"]
    order_a = [entry["content_hash"] for entry in ranked["models"][A]["ranking"]]
    for page_hash in order_a:
        ui.annotate_tab.judge(arena, query_id, page_hash, "ann", "relevant" if page_hash == order_a[-1] else "not_relevant")
    pages = ui.evaluate_tab.evaluate_view(arena, "ann")[-1]
    chosen, line, button = ui.evaluate_tab.mistake_chosen_view(arena, pages, A, 1)
    assert chosen == (query_id, order_a[1]) and button["interactive"] is True
    source = ranked["models"][A]["ranking"][1]["source"]
    assert line == f"Chosen: {ui.text.escape(source)}, #2 by {ui.text.escape('Qwen3-VL-Reranker-2B')}, for “{ui.text.escape(QUERY)}”"
    for order in ui.annotate_tab.ORDERS:
        position = ui.annotate_tab.page_position(arena, query_id, order_a[1], order)
        assert ui.annotate_tab.annotate_view(arena, query_id, "ann", order, position)[4] == order_a[1], order
    nothing_chosen = (None, ui.evaluate_tab.OPEN_IN_ANNOTATE_HINT, {"__type__": "update", "interactive": False})
    for nothing in (None, 99):  # the preview closed; an index the galleries no longer have
        assert ui.evaluate_tab.mistake_chosen_view(arena, pages, A, nothing) == nothing_chosen
    # A row of the per-query table: its query, opened where the annotator left it.
    assert pages["queries"] == {QUERY: query_id}
    chosen, line, button = ui.evaluate_tab.query_chosen_view(arena, pages, QUERY)
    assert chosen == (query_id, None) and line == f"Chosen: “{ui.text.escape(QUERY)}”, 4 pages" and button["interactive"]
    assert ui.evaluate_tab.query_chosen_view(arena, pages, "a query the table does not show") == nothing_chosen


def test_the_mistake_galleries_and_the_per_query_table_show_the_costliest_mistakes_and_newest_queries_up_to_limits(arena, ranked, monkeypatch):
    from .bad_inputs import SAMPLE_PAGES

    second = ui.rank_tab.rank_pages(arena, [str(path) for path in SAMPLE_PAGES[4:7]], "a second question", None, None, None, None)
    for result in (ranked, second):  # the page A ranks last is the one relevant page: every other is a mistake
        order = [entry["content_hash"] for entry in result["models"][A]["ranking"]]
        for page_hash in order:
            ui.annotate_tab.judge(arena, result["query_id"], page_hash, "ann", "relevant" if page_hash == order[-1] else "not_relevant")
    everything = ui.evaluate_tab.evaluate_view(arena, "ann")[-3]
    monkeypatch.setattr(ui.evaluate_tab, "MISTAKES_SHOWN", 3)
    *_, notes, shown, _, _ = ui.evaluate_tab.evaluate_view(arena, "ann")
    assert len(everything) > 3 and len(shown) == 3
    # Each query's page A placed first, the newer query's first; then a second place.
    assert [caption.split(" · ")[0] for _, caption in shown] == ["#1", "#1", "#2"]
    assert "a second question" in shown[0][1]
    assert f"Mistake galleries: the 3 ranked highest of {len(everything)} for {ui.text.escape('Qwen3-VL-Reranker-2B')}" in notes
    assert "Per query:" not in notes

    # The per-query table likewise shows the newest queries, a row per model, up to its limit.
    monkeypatch.setattr(ui.evaluate_tab, "PER_QUERY_SHOWN", 1)
    summary, _, _, per_query, notes, *_ = ui.evaluate_tab.evaluate_view(arena, "ann")
    assert len(per_query) == 2 and set(per_query["query"]) == {"a second question"}
    assert "Per query: the 1 queries added last, of 2; every one with `python -m reranker eval --per-query --annotator ann`" in notes
    assert set(summary["queries"]) == {2}  # the means still count both
    for result in (ranked, second):
        ui.annotate_tab.judge(arena, result["query_id"], result["models"][A]["ranking"][0]["content_hash"], "Zoë O'Neil", "relevant")
    *_, notes, _, _, _ = ui.evaluate_tab.evaluate_view(arena, "zoë o'neil")  # as the app matches names; the command as stored, quoted
    assert "`python -m reranker eval --per-query --annotator 'Zoë O'\"'\"'Neil'`" in notes
    *_, notes, _, _, _ = ui.evaluate_tab.evaluate_view(arena, "")
    assert "every one with `python -m reranker eval --per-query` (the means" in notes  # the majority vote


def test_an_empty_mistake_gallery_tells_no_mistake_from_no_scores():
    import pandas as pd

    summary = pd.DataFrame([{"model": "Qwen3-VL-Reranker-2B", "queries": 1}])
    assert ui.evaluate_tab.mistakes_heading(summary, "Qwen3-VL-Reranker-2B", []) == "Qwen3-VL-Reranker-2B: no page ranked above a relevant page"
    assert ui.evaluate_tab.mistakes_heading(summary, "Qwen3-VL-Reranker-2B", [("p.jpg", "#1")]).endswith(": pages ranked above a relevant page")
    assert ui.evaluate_tab.mistakes_heading(summary, "Qwen3RerankerMM-2B", []) == "Qwen3RerankerMM-2B: not evaluated (no stored scores)"
    assert ui.evaluate_tab.mistakes_heading(pd.DataFrame(), "Qwen3RerankerMM-2B", []).endswith("not evaluated (no stored scores)")
    # Evaluated over no query (none has a page judged relevant): no mistake says nothing.
    none = pd.DataFrame([{"model": "Qwen3-VL-Reranker-2B", "queries": 0}])
    assert ui.evaluate_tab.mistakes_heading(none, "Qwen3-VL-Reranker-2B", []) == (
        "Qwen3-VL-Reranker-2B: nothing to judge it by yet (no query it scored has a page judged relevant)")


def test_an_empty_store_evaluates_to_tables_with_their_columns(arena):
    """Empty tables were headed "1 2 3" (a DataFrame of no rows has no columns)."""
    summary, bars, _, per_query, *_ = ui.evaluate_tab.evaluate_view(arena, None)
    assert list(summary.columns)[:4] == ["model", "queries", "excluded", "ndcg@5"] and summary.empty and bars is None
    assert ui.evaluate_tab.evaluation_headline(summary, None).startswith("**Nothing to evaluate yet:**")
    assert list(per_query.columns)[:6] == ["query", "model", "pages", "judged", "relevant", "ndcg@5"] and per_query.empty


def test_with_no_page_judged_relevant_the_bar_plot_draws_no_bars(arena, ranked):
    """Undefined means made the value column text: Vega drew every metric as a full-height bar on
    an axis labelled "undefined", as if both models were perfect."""
    for page in ranked["pages"][:2]:
        ui.annotate_tab.judge(arena, ranked["query_id"], page["content_hash"], "ann", "not_relevant")
    summary, bars, *_ = ui.evaluate_tab.evaluate_view(arena, None)
    assert list(summary["queries"]) == [0, 0] and bars is None
    # Said above the tables (the reason sat halfway down the page, under tables of dashes).
    assert ui.evaluate_tab.evaluation_headline(summary, "").startswith(
        "**Nothing to evaluate yet:** no ranked query has a page judged relevant. Judge pages on the *Annotate* tab")
    assert "judged relevant by ann." in ui.evaluate_tab.evaluation_headline(summary, "ann")
    ui.annotate_tab.judge(arena, ranked["query_id"], ranked["pages"][2]["content_hash"], "ann", "relevant")
    summary, bars, *_ = ui.evaluate_tab.evaluate_view(arena, None)
    assert bars["value"].dtype == float and len(bars) == len(ui.evaluate_tab.bar_order())
    assert ui.evaluate_tab.evaluation_headline(summary, "") == ""


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


def test_a_guidelines_save_the_database_refuses_is_an_error_not_a_refusal(arena, monkeypatch):
    """Refusals (no name, too long, a colleague's newer version) become warnings in the tab; a
    failure of the database stays an error, logged."""
    import gradio as gr

    from reranker.store import StoreError

    def full_disk(*args, **kwargs):
        raise StoreError("The database could not be written: the disk holding it is full.")

    monkeypatch.setattr(arena.store, "save_guidelines", full_disk)
    with pytest.raises(gr.Error, match="disk holding it is full") as raised:
        ui.guidelines.write_guidelines(arena, "text", "dana")
    assert not isinstance(raised.value, ui.text.Refusal) and raised.value.print_exception
    with pytest.raises(ui.text.Refusal):
        ui.guidelines.write_guidelines(arena, "text", "")


def test_an_annotator_named_majority_vote_is_evaluated_alone(arena, ranked):
    """The Labels list's "Majority vote" has an empty value, so that name is anyone's."""
    hashes = [page["content_hash"] for page in ranked["pages"]]
    ui.annotate_tab.judge(arena, ranked["query_id"], hashes[0], "Majority vote", "relevant")
    ui.annotate_tab.judge(arena, ranked["query_id"], hashes[0], "bob", "not_relevant")  # the majority: a tie
    alone, *_ = ui.evaluate_tab.evaluate_view(arena, "Majority vote")
    everyone, *_ = ui.evaluate_tab.evaluate_view(arena, ui.annotators.MAJORITY_VOTE[1])
    assert list(alone["queries"]) == [1, 1] and list(everyone["queries"]) == [0, 0]


def test_evaluate_notes_say_why_queries_are_left_out_and_list_only_annotators_who_overlap(arena, ranked):
    from .bad_inputs import SAMPLE_PAGES

    first = ranked["query_id"]
    second = ui.rank_tab.rank_pages(arena, [str(path) for path in SAMPLE_PAGES[4:6]], "a second question", None, None, None, None)
    hashes = [page["content_hash"] for page in ranked["pages"]]
    ui.annotate_tab.judge(arena, first, hashes[0], "ann", "relevant")
    ui.annotate_tab.judge(arena, first, hashes[0], "bob", "relevant")
    ui.annotate_tab.judge(arena, first, hashes[1], "bob", "not_relevant")
    ui.annotate_tab.judge(arena, second["query_id"], second["pages"][0]["content_hash"], "cid", "not_relevant")  # nothing relevant
    *_, notes, _, _, _ = ui.evaluate_tab.evaluate_view(arena, "")
    lines = notes.split("\n\n")
    for label in ("Qwen3-VL-Reranker-2B", "Qwen3RerankerMM-2B"):
        assert f"Not in {ui.text.escape(label)}'s means: 1 query (no relevant page): “a second question”." in lines
    assert [line for line in lines if line.startswith("Cohen's κ")] == [
        "Cohen's κ ann vs bob: undefined over 1 page",  # both said relevant: κ has no chance agreement to beat
        "Cohen's κ: 2 other pairs of annotators judged no page in common.",
    ]


def test_evaluate_notes_name_at_most_a_few_queries_left_out_per_reason(arena, ranked, monkeypatch):
    from .bad_inputs import SAMPLE_PAGES

    monkeypatch.setattr(ui.evaluate_tab, "EXCLUDED_NAMED", 2)
    ui.annotate_tab.judge(arena, ranked["query_id"], ranked["pages"][0]["content_hash"], "ann", "relevant")
    for number in range(3):  # judged, nothing relevant
        other = ui.rank_tab.rank_pages(arena, [str(SAMPLE_PAGES[4])], f"question {number}", None, None, None, None)
        ui.annotate_tab.judge(arena, other["query_id"], other["pages"][0]["content_hash"], "ann", "not_relevant")
    instructed = ui.rank_tab.rank_pages(arena, [str(SAMPLE_PAGES[4])], "question 0", "Tables only.", None, None, None)
    *_, notes, _, _, _ = ui.evaluate_tab.evaluate_view(arena, "")
    label = ui.text.escape("Qwen3-VL-Reranker-2B")
    named = [line for line in notes.split("\n\n") if line.startswith(f"Not in {label}'s means")]
    # The query asked with an instruction is named as the tables name it; two named per reason here.
    assert named == [f"Not in {label}'s means: 1 query (no judged page): “{ui.text.escape('question 0 [instruction: Tables only.]')}”; "
                     "3 queries (no relevant page): “question 0”, “question 1” and 1 more."]
    assert instructed["query_id"] != ranked["query_id"]


def test_evaluate_per_query_table_puts_a_querys_models_side_by_side_counts_before_metrics(arena, ranked):
    """The counts qualify the metrics: after them, a wide table hid them off to the right. A query
    asked again with its own instruction is named apart (four rows read as one query). The
    newest query comes first (the table shows the newest 300: the last was 600 rows down)."""
    from .bad_inputs import SAMPLE_PAGES

    second = ui.rank_tab.rank_pages(arena, [str(path) for path in SAMPLE_PAGES[4:6]], "a second question", None, None, None, None)
    again = ui.rank_tab.rank_pages(arena, [str(path) for path in SAMPLE_PAGES[4:6]], "a second question", "Find the chart.", None,
                          None, None)
    for result in (ranked, second, again):
        hashes = [page["content_hash"] for page in result["pages"]]
        ui.annotate_tab.judge(arena, result["query_id"], hashes[0], "ann", "relevant")
        ui.annotate_tab.judge(arena, result["query_id"], hashes[1], "ann", "not_relevant")
    per_query = ui.evaluate_tab.evaluate_view(arena, "ann")[3]
    columns = list(per_query.columns)
    assert columns[:6] == ["query", "model", "pages", "judged", "relevant", "ndcg@5"]
    labels = [get_spec(key).tag for key in (A, B)]
    first_text = arena.store.query(ranked["query_id"]).text
    tagged = "a second question [instruction: Find the chart.]"
    assert list(zip(per_query["query"], per_query["model"])) == [  # the newest query first
        (tagged, labels[0]), (tagged, labels[1]), ("a second question", labels[0]), ("a second question", labels[1]),
        (first_text, labels[0]), (first_text, labels[1])]
    assert list(per_query["judged"]) == [2] * 6


def test_the_apps_api_has_only_its_documented_endpoints(arena):
    demo = ui.build_app(arena)
    public = {name for name, info in demo.get_api_info()["named_endpoints"].items()}
    assert public == {"/rank", "/judge", "/undo", "/export", "/evaluate"}


def test_export_tab_previews_and_writes_a_file(arena, ranked):
    from pathlib import Path

    query_id = ranked["query_id"]
    hashes = [entry["content_hash"] for entry in ranked["models"][A]["ranking"]]
    ui.annotate_tab.judge(arena, query_id, hashes[0], "ann", "relevant")
    ui.annotate_tab.judge(arena, query_id, hashes[1], "ann", "not_relevant")
    options = ("flagembedding", "either", 5, 10, "", "", "", False, False)
    assert "positives       1" in ui.export_tab.export_preview(arena, *options)
    path = Path(ui.export_tab.export_file(arena, *options))
    assert path.exists() and path.suffix == ".zip" and path.is_relative_to(arena.cache_dir)


def test_a_new_query_about_the_same_upload_does_not_render_it_again(arena, monkeypatch, tmp_path):
    from reranker import documents

    from .bad_inputs import sample_pdf

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
    demo = ui.build_app(arena)
    shown = [block for block in demo.blocks.values() if isinstance(block, gr.Markdown)]
    assert shown and all(block.latex_delimiters == [] for block in shown)  # a query's $$x$$ stays text


def test_the_apps_own_file_limit_is_below_gradios_so_a_big_file_is_named_not_the_batch_refused(arena):
    from gradio.utils import _parse_file_size

    from reranker.documents import IngestOptions

    assert _parse_file_size(ui.launch_options(arena)["max_file_size"]) > IngestOptions().max_file_bytes


def test_a_header_says_how_many_scores_were_stored_and_times_only_the_rest(arena):
    from .bad_inputs import SAMPLE_PAGES

    files = [str(path) for path in SAMPLE_PAGES[:3]]
    ui.rank_tab.rank_pages(arena, files[:2], QUERY, None, None, None, None)
    data = ui.rank_tab.rank_pages(arena, files, QUERY, None, None, None, None)
    _, header_a, _, header_b, _, _, _, _, _ = ui.rank_tab.show_ranking(arena, data)
    for header, key in ((header_a, A), (header_b, B)):
        model = data["models"][key]
        assert (model["stored"], model["scored"]) == (2, 1)
        assert "3 pages (2 scored before) in" in header


def test_an_emptied_number_box_or_an_unknown_query_is_a_message_not_a_crash(arena, ranked):
    import gradio as gr

    options = ["pointwise", "either", None, 10, "", "", "", False, False]  # k emptied
    with pytest.raises(gr.Error, match="k must be a whole number of at least 1"):
        ui.export_tab.export_preview(arena, *options)
    with pytest.raises(gr.Error, match="Max negatives must be a whole number"):
        ui.export_tab.export_file(arena, "pointwise", "either", 5, 2.5)
    with pytest.raises(gr.Error, match="999999"):
        ui.annotate_tab.undo(arena, 999999, "rater")


def test_the_app_says_that_what_is_ranked_is_shared(arena):
    import gradio as gr

    demo = ui.build_app(arena)
    intro = next(b for b in demo.blocks.values() if isinstance(b, gr.Markdown) and b.elem_id == "intro")
    assert "Shared with everyone who uses this app" in intro.value and "confidential" in intro.value


def test_what_a_visitor_types_is_bounded_before_it_is_stored(arena):
    """Queries and guidelines are kept for good and shown to every visitor."""
    import gradio as gr

    from .bad_inputs import SAMPLE_PAGES

    with pytest.raises(gr.Error, match="The query is 10,001 characters long; the app takes at most 10,000"):
        ui.rank_tab.rank_pages(arena, [str(SAMPLE_PAGES[0])], "<|im_start|>" * 833 + "x" * 5, None, None, None, None)
    with pytest.raises(gr.Error, match="The instruction is"):
        ui.rank_tab.rank_pages(arena, [str(SAMPLE_PAGES[0])], QUERY, "i" * 10_001, None, None, None)
    assert arena.store.list_queries() == []  # nothing was stored
    with pytest.raises(gr.Error, match="at most 64,000 are kept"):
        ui.guidelines.write_guidelines(arena, "g" * 64_001)


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
    assert raised.value.message == (f"The export file could not be written in the app's folder for them, {arena.cache_dir} "
                                    "(RERANKER_CACHE): the disk holding it is full; free some space and try again. "
                                    "Nothing stored was changed.")
    assert not list(arena.cache_dir.glob("export-*"))


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
    assert len(list(arena.cache_dir.glob("export-*"))) == ui.export_tab.EXPORTS_KEPT


def test_export_allows_zero_negatives_but_not_fewer():
    assert ui.export_tab.export_options("pointwise", "either", 5, 0, "", "", "", False, False).max_negatives == 0  # positives only
    for typed, per_row in ((0, None), (None, None), ("", None), (3, 3), (3.0, 3)):  # 0 or empty: the fewest any query has
        assert ui.export_tab.export_options("sentence-transformers", "either", 5, 3, "", "", "", False, False, typed).negatives_per_row == per_row
    with pytest.raises(Exception, match=r"Negatives per row must be a whole number of at least 0 \(got -1\)"):
        ui.export_tab.export_options("sentence-transformers", "either", 5, 3, "", "", "", False, False, -1)
    with pytest.raises(Exception, match="Max negatives must be a whole number of at least 0"):
        ui.export_tab.export_options("pointwise", "either", 5, -1, "", "", "", False, False)
    with pytest.raises(Exception, match="k must be a whole number of at least 1"):
        ui.export_tab.export_options("pointwise", "either", 0, 3, "", "", "", False, False)


@pytest.mark.parametrize("box", ["since", "until"])
@pytest.mark.parametrize("typed", ["yesterday", "26/11/2026"])
def test_a_date_the_export_cannot_read_names_its_box_and_the_formats_it_takes(box, typed):
    dates = {"since": "", "until": "", box: typed}
    with pytest.raises(Exception, match=rf"Judged {box}: '{typed}' is not a date \(YYYY-MM-DD, e\.g\. 2026-03-01\)"):
        ui.export_tab.export_options("pointwise", "either", 5, 3, "", dates["since"], dates["until"], False, False)
    assert ui.export_tab.export_options("pointwise", "either", 5, 3, "", " 2026-03-01 ", "2026-03-02T10:00", False, False).since.day == 1


def test_preview_and_export_say_what_is_wrong_with_the_options_in_the_same_words(arena, ranked):
    """A message raised for a box is shown as it is: not re-wrapped, which quoted it ("'…'")."""
    import gradio as gr

    cases = {
        ("2026-02-30", ""): "Judged since: '2026-02-30' is not a date (YYYY-MM-DD, e.g. 2026-03-01) or an ISO date and "
                            "time (e.g. 2026-03-01T14:30; UTC unless it has an offset)",
        ("2026-03-06", "2026-03-05"): "since 2026-03-06 is not before until 2026-03-05 (a date until includes that "
                                      "whole day): no judgment can fall between them",
    }
    for (since, until), message in cases.items():
        options = ("pointwise", "either", 5, 3, "", since, until, False, False)
        for show in (ui.export_tab.export_preview, ui.export_tab.export_file):
            with pytest.raises(gr.Error) as caught:
                show(arena, *options)
            assert caught.value.message == message, show.__name__
        assert ui.export_tab.preview_view(arena, *options) == f"⚠️ {ui.text.escape(message)}"  # in the box, in place of old counts
    assert ui.export_tab.preview_view(arena, "pointwise", "either", 5, 3, "", "", "", False, False).startswith("```\npointwise: ")


def test_a_query_reopens_where_its_annotator_left_off(arena, ranked):
    """Page load, picking a query, changing the order: the annotator is taken to the first page
    they have not judged (on page 1 a key would relabel a judged page unnoticed)."""
    query_id = ranked["query_id"]
    order = ui.annotate_tab.ORDERS[3]
    pages = ui.annotate_tab.page_order(arena.store.query_pages(query_id), order)
    assert ui.annotate_tab.resume_position(arena, query_id, "ann", order) == 0
    for page in pages[:2]:
        ui.annotate_tab.judge(arena, query_id, page.page_hash, "ann", "not_relevant")
    assert ui.annotate_tab.resume_position(arena, query_id, "ann", order) == 2
    assert ui.annotate_tab.resume_position(arena, query_id, "someone else", order) == 0
    assert ui.annotate_tab.resume_position(arena, query_id, "", order) == 0  # no name yet: the first page
    ui.annotate_tab.judge(arena, query_id, pages[0].page_hash, "ann", "skip")  # a skip counts as judged
    assert ui.annotate_tab.resume_position(arena, query_id, " ann ", order) == 2
    for page in pages[2:]:
        ui.annotate_tab.judge(arena, query_id, page.page_hash, "ann", "relevant")
    assert ui.annotate_tab.resume_position(arena, query_id, "ann", order) == 0  # all judged: from the start
    assert ui.annotate_tab.resume_position(arena, None, "ann", order) == 0


def test_a_full_disk_is_named_and_no_judgment_is_half_saved(arena, ranked):
    """SQLite's own limit stands in for a full disk: the annotator reads why, nothing is lost."""
    query_id = ranked["query_id"]
    hashes = [entry["content_hash"] for entry in ranked["models"][A]["ranking"]]
    store = arena.store
    store.db.execute(f"PRAGMA max_page_count = {store.db.execute('PRAGMA page_count').fetchone()[0]}")
    saved = 0
    with pytest.raises(Exception, match=r"could not be written: the disk holding it is full.*Nothing was saved") as failure:
        for n in range(10_000):
            ui.annotate_tab.judge(arena, query_id, hashes[n % len(hashes)], "ann", ("relevant", "not_relevant")[n // len(hashes) % 2])
            saved += 1
    assert type(failure.value).__name__ == "Error" and str(store.path) in str(failure.value)  # a gr.Error
    assert failure.value.print_exception  # the server failed, not the annotator: logged (the Annotate tab logs it too)
    with pytest.raises(Exception, match="disk holding it is full"):
        ui.annotate_tab.undo(arena, query_id, "ann")
    store.db.execute("PRAGMA max_page_count = 1073741823")  # space again
    rows = store.db.execute("SELECT COUNT(*) FROM judgments WHERE annotator = 'ann'").fetchone()[0]
    assert rows == saved  # every judgment acknowledged is stored, the refused ones are not
    assert ui.annotate_tab.judge(arena, query_id, hashes[0], "ann", "skip")["label"] == "skip"


def test_a_database_that_cannot_be_opened_is_named(tmp_path):
    from reranker.store import Store, StoreError

    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the database's folder should be")
    with pytest.raises(StoreError, match=r"The database .*not-a-folder/arena.db cannot be made: .*not-a-folder is not a folder"):
        Store(blocker / "arena.db")


def test_a_ranking_that_cannot_be_saved_says_why(arena, ranked):
    from .bad_inputs import SAMPLE_PAGES

    store = arena.store
    store.db.execute(f"PRAGMA max_page_count = {store.db.execute('PRAGMA page_count').fetchone()[0]}")
    with pytest.raises(Exception, match=r"could not be written: the disk holding it is full") as failure:
        ui.rank_tab.rank_pages(arena, [str(path) for path in SAMPLE_PAGES[4:6]], "another question", None, None, None, None)
    assert type(failure.value).__name__ == "Error"


def test_judging_or_undoing_on_a_query_or_page_that_is_not_there_says_so_plainly(arena, ranked):
    query_id = ranked["query_id"]
    for action, message in (
        (lambda: ui.annotate_tab.undo(arena, 999, "ann"), "no query 999"),
        (lambda: ui.annotate_tab.judge(arena, 999, "f" * 64, "ann", "relevant"), "no query 999"),
        (lambda: ui.annotate_tab.judge(arena, str(query_id), "f" * 64, "ann", "relevant"), f"page {'f' * 64} was not ranked for query {query_id}"),
        (lambda: ui.annotate_tab.judge(arena, "abc", "f" * 64, "ann", "relevant"),
         "query_id must be the number of a ranked query (the query_id /rank returns), got 'abc'"),
        (lambda: ui.annotate_tab.undo(arena, None, "ann"), "query_id must be the number of a ranked query (the query_id /rank returns), got None"),
        # 1.9 and True were taken as query 1; a number past SQLite's integers failed with no message
        *((lambda bad=bad: ui.annotate_tab.judge(arena, bad, "f" * 64, "ann", "relevant"),
           f"query_id must be the number of a ranked query (the query_id /rank returns), got {bad!r}")
          for bad in (query_id + 0.9, True, 2**63, -1, "1.0")),
        (lambda: ui.annotate_tab.judge(arena, query_id, None, "ann", "relevant"),
         "page_hash must be a page's content_hash (as /rank returns it), got None"),
    ):
        with pytest.raises(Exception) as raised:
            action()
        assert raised.value.message == message  # what the visitor or API client reads, unquoted
        assert not raised.value.print_exception  # their mistake: no traceback in the server's log
    assert arena.store.current_judgments() == []
    # A number box's whole float is its number.
    assert ui.annotate_tab.judge(arena, float(query_id), ranked["pages"][0]["content_hash"], "ann", "relevant")["query_id"] == query_id


def test_a_thumbnail_cache_size_that_is_not_a_number_stops_the_app_naming_the_variable(tmp_path, monkeypatch):
    monkeypatch.setenv("RERANKER_THUMBNAIL_CACHE_MB", "1GB")
    with pytest.raises(ValueError, match=r"^RERANKER_THUMBNAIL_CACHE_MB='1GB': expected a size in MB"):
        ui.create_arena(str(tmp_path / "arena.db"), str(tmp_path / "cache"), preload=False)
    monkeypatch.setenv("RERANKER_THUMBNAIL_CACHE_MB", "64")
    assert ui.create_arena(str(tmp_path / "arena.db"), str(tmp_path / "cache"), preload=False).images.disk_bytes == 64 * 2**20


def test_a_name_typed_in_another_capitalisation_is_the_same_annotator(arena, ranked):
    """"Alice " after "alice": the same person's progress and judgments, not a new annotator
    (their progress looked lost, and Cohen's κ counted two people)."""
    query_id = ranked["query_id"]
    pages = arena.store.query_pages(query_id)
    ui.annotate_tab.judge(arena, query_id, pages[0].page_hash, "alice", "relevant")
    assert ui.annotate_tab.page_view(arena, query_id, "Alice ", ui.annotate_tab.ORDERS[3], 0)[2] == "**1/4 judged** by alice"
    assert ui.annotate_tab.judge(arena, query_id, pages[1].page_hash, "ALICE", "not_relevant")["annotator"] == "alice"
    assert ui.annotate_tab.undo(arena, query_id, "Alice")["undone"]["page_hash"] == pages[1].page_hash
    assert ui.annotate_tab.resume_position(arena, query_id, "aLiCe", ui.annotate_tab.ORDERS[3]) == 1
    assert arena.store.annotators() == ["alice"]
    assert dict((v, label) for label, v in ui.annotate_tab.query_choices(arena, ui.annotators.typed_annotator(arena, "ALICE")))[query_id].startswith("1/4 judged — ")


def test_clicking_a_page_in_one_gallery_shows_progress_on_the_large_view_only(arena):
    """The other gallery is an output of the click (its mark follows the page); with progress
    shown on every output, Gradio's overlay blanked that whole gallery for the request."""
    demo = ui.build_app(arena)
    ids = {c["props"].get("elem_id"): c["id"] for c in demo.config["components"] if c.get("props", {}).get("elem_id")}
    for clicked, other in (("gallery-a", "gallery-b"), ("gallery-b", "gallery-a")):
        (select,) = [d for d in demo.config["dependencies"] if (ids[clicked], "select") in [tuple(t) for t in d["targets"]]]
        assert ids[other] in select["outputs"] and select["show_progress_on"] == [ids["detail-image"]]


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
    from .bad_inputs import SAMPLE_PAGES

    data = ui.rank_tab.rank_pages(arena, [str(SAMPLE_PAGES[0])], QUERY, "\u200b \u2060", None, None, None)
    assert data["instruction"] is None and arena.store.query(data["query_id"]).instruction is None


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


def test_names_in_a_toast_show_as_text_and_a_long_list_of_them_is_cut(arena, ranked):
    """Gradio shows a toast's message as HTML: an annotator named <img src=…> made every visitor
    who typed an unknown name under Labels fetch that image (their address, to its owner)."""
    hashes = [page["content_hash"] for page in ranked["pages"]]
    planted = "<img src=https://evil.example/t.png>"
    ui.annotate_tab.judge(arena, ranked["query_id"], hashes[0], planted, "relevant")
    for number in range(25):
        ui.annotate_tab.judge(arena, ranked["query_id"], hashes[0], f"annotator {number:02d}", "not_relevant")
    with pytest.raises(ui.text.Refusal) as refused:
        ui.evaluate_tab.evaluate_view(arena, "nobody")
    message = refused.value.message
    assert "<img" not in message and "&lt;img src=https://evil.example/t.png&gt;" in message
    assert message.endswith(", … (26 in all))") and "annotator 18" in message and "annotator 19" not in message


def test_the_database_is_never_served_even_from_inside_the_cache_folder(tmp_path):
    """With RERANKER_CACHE the database's own folder (both on a Space's /data), Gradio served the
    whole file to anyone who asked for its path."""
    import httpx

    folder = tmp_path / "data"
    arena = ui.Arena(ranking.ModelPool(loader=lambda key: pytest.fail("no model is needed")), Store(folder / "arena.db"), folder)
    arena.store.save_guidelines("Tables count.", "lead")  # something in the file, and a WAL beside it
    (folder / "thumb.png").write_bytes(b"\x89PNG\r\n\x1a\n")  # what the folder is for
    demo = ui.build_app(arena)
    _, url, _ = demo.launch(**ui.launch_options(arena), prevent_thread_lock=True, server_name="127.0.0.1", server_port=None)
    try:
        served = httpx.get(f"{url}gradio_api/file={folder / 'thumb.png'}")
        assert served.status_code == 200
        for name in ("arena.db", "arena.db-wal"):
            assert (folder / name).exists()
            assert httpx.get(f"{url}gradio_api/file={folder / name}").status_code == 403, name
    finally:
        demo.close()
        arena.store.close()


def test_after_a_judgment_the_query_list_is_redrawn_only_in_a_workspace_of_few_queries(arena, ranked, monkeypatch):
    """Each redraw sends and redraws every entry: at 3,000 queries a judging key took 0.65 s."""
    ui.annotate_tab.judge(arena, ranked["query_id"], ranked["pages"][0]["content_hash"], "rater", "relevant")
    listing = ui.annotate_tab.query_list_after_judging(arena, "rater")
    assert [label for label, _ in listing["choices"]] == [f"1/{len(ranked['pages'])} judged — {QUERY}"]
    monkeypatch.setattr(ui.annotate_tab, "LIVE_QUERY_LIST", 0)
    assert ui.annotate_tab.query_list_after_judging(arena, "rater") == gr.skip()


def test_next_and_jump_count_the_pages_the_question_has_now(arena, ranked):
    """The same question ranked again over another upload while someone annotates it: the
    browser's page total is the old one, and Next from the last old page went back to it."""
    from .bad_inputs import SAMPLE_PAGES

    query_id, order = ranked["query_id"], "Upload order"
    last = ranked["pages"][-1]["content_hash"]  # page 4 of 4, on screen
    again = ui.rank_tab.rank_pages(arena, [str(path) for path in SAMPLE_PAGES[4:6]], QUERY, None, None, None, None)
    assert again["query_id"] == query_id  # now 6 pages
    assert ui.annotate_tab.annotate_action(arena, "next", query_id, "ann", order, 3, last, 4) == (4, False)
    assert ui.annotate_tab.jump_position(arena, query_id, 6, 4) == 5 and ui.annotate_tab.jump_position(arena, query_id, 99, 4) == 5
    assert ui.annotate_tab.jump_position(arena, query_id, 0, 4) == 0 and ui.annotate_tab.jump_position(arena, None, 3, 4) == 2
