"""The Annotate tab: judging and moving, the query list, resuming, login, guidelines."""

from __future__ import annotations

import functools

import gradio as gr
import pytest

from reranker import ui
from reranker.models import A_KEY, B_KEY

from . import QUERY

A, B = A_KEY, B_KEY


def test_most_informative_order_puts_disagreements_first(arena, ranked):
    pages = arena.store.query_pages(ranked["query_id"])
    ordered = ui.annotate_tab.page_order(pages, ui.annotate_tab.ORDERS[0])
    gaps = [abs(p.ranks[A] - p.ranks[B]) for p in ordered]
    assert gaps == sorted(gaps, reverse=True)
    by_a = ui.annotate_tab.page_order(pages, ui.annotate_tab.ORDERS[1])
    assert [p.ranks[A] for p in by_a] == [1, 2, 3, 4]


def test_annotating_moves_to_the_next_unjudged_page_and_counts_progress(arena, ranked):
    query_id = ranked["query_id"]
    image, info, progress, _, page_hash, total, *_ = ui.annotate_tab.annotate_view(arena, query_id, "ann", ui.annotate_tab.ORDERS[3], 0)
    assert total == 4 and "0/4 judged" in progress and "current label: **Unjudged**" in info
    ui.annotate_tab.judge(arena, query_id, page_hash, "ann", "relevant")
    assert ui.annotate_tab.next_position(arena, query_id, "ann", ui.annotate_tab.ORDERS[3], 0) == 1
    _, info, progress, *_ = ui.annotate_tab.annotate_view(arena, query_id, "ann", ui.annotate_tab.ORDERS[3], 0)
    assert "1/4 judged" in progress and "current label: **Relevant**" in info
    # The image's label says it too (in full screen nothing else shows); its alternative text
    # names the page (a screen reader heard an unnamed image).
    first = arena.store.query_pages(query_id)[0]
    assert image == {"__type__": "update", "value": arena.image_path(page_hash, 1600), "label": f"Page 1 of 4 · Unjudged · 0/4 judged · “{QUERY}”",
                     "alt_text": f"{ui.text.stored_page_label(first)} (1 of 4 in this order)"}  # not "report.pdf · p.2, page 1 of 2"
    # Without a name, the line says what judging needs (it said "by —"), and counts anyone's
    # judgments, as the query list does then (it said 0/4 beside the list's 1/4).
    _, info, progress, *_ = ui.annotate_tab.annotate_view(arena, query_id, None, ui.annotate_tab.ORDERS[3], 0)
    assert progress == "**1/4 judged** by anyone · type your name above to judge"
    assert "current label: **no name yet**" in info  # not "Unjudged": someone judged it (and not "—", read as "em dash")
    assert ui.annotate_tab.query_choices(arena, None)[0][0].startswith("1/4 judged — ")
    assert ui.annotate_tab.annotate_view(arena, query_id, "ann", ui.annotate_tab.ORDERS[3], 0)[0]["label"] == f"Page 1 of 4 · Relevant · 1/4 judged · “{QUERY}”"
    with pytest.raises(Exception, match="Enter your name"):
        ui.annotate_tab.judge(arena, query_id, page_hash, "  ", "relevant")
    with pytest.raises(Exception, match="label must be"):
        ui.annotate_tab.judge(arena, query_id, page_hash, "ann", "maybe")


def test_the_query_a_ranking_opens_annotate_on_is_the_one_a_reload_opens(arena, ranked):
    """The browser remembered the query last picked from the list (or none), not the one a
    ranking switched Annotate to: a reload went back to the older one, or to the newest query
    in the shared workspace, another visitor's."""
    from ..bad_inputs import SAMPLE_PAGES

    demo = ui.build_app(arena)
    wired = {block_fn.fn.__name__: block_fn for block_fn in demo.fns.values() if block_fn.fn is not None}
    saved_query = next(block for block in demo.blocks.values() if getattr(block, "storage_key", None) == "rerank-arena-query")
    assert saved_query in wired["picked_latest"].outputs
    order = ui.annotate_tab.ORDERS[0]
    newer = ui.rank_tab.rank_pages(arena, [str(SAMPLE_PAGES[4])], "a newer question", None, None, None, None)
    listing, remembered, *_ = wired["picked_latest"].fn(newer, "ann", order, ranked["query_id"], "rank", 1)
    assert listing["value"] == remembered == newer["query_id"]
    ui.rank_tab.rank_pages(arena, [str(SAMPLE_PAGES[5])], "someone else's question", None, None, None, None)
    _, reopened, *_ = wired["restore"].fn("ann", remembered, order)
    assert reopened["value"] == newer["query_id"]
    # Kept on the page someone is judging on Annotate: nothing new to remember.
    kept = wired["picked_latest"].fn(newer, "ann", order, ranked["query_id"], "annotate", 1)
    assert kept[1] == gr.skip()


def test_a_name_that_is_not_utf8_is_refused_by_judge_undo_and_the_page_view(arena, ranked):
    """A lone surrogate (valid JSON, "ann\\ud800") reached the store outside the refusals: /judge
    and /undo answered an error without a reason, the server logged a traceback."""
    query_id, page_hash = ranked["query_id"], ranked["pages"][0]["content_hash"]
    for call in (lambda: ui.annotate_tab.judge(arena, query_id, page_hash, "ann\ud800", "relevant"),
                 lambda: ui.annotate_tab.undo(arena, query_id, "ann\ud800"),
                 lambda: ui.annotate_tab.page_view(arena, query_id, "ann\ud800", ui.annotate_tab.ORDERS[0], 0)):
        with pytest.raises(ui.text.Refusal) as refused:
            call()
        assert refused.value.text.startswith("annotator is not valid text: character 4 is a lone surrogate U+D800, not UTF-8")
    assert arena.store.annotators() == []


def test_a_finished_ranking_opens_on_annotate_unless_someone_is_judging_there(arena, ranked):
    """Switched to the new query while judging another, an annotator lost their place."""
    import gradio as gr

    from ..bad_inputs import SAMPLE_PAGES

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


def test_the_judgment_that_completes_a_query_stays_on_its_page_and_says_a_key_waits_for_a_move(arena, ranked):
    """After the last unjudged page the view went on to a page judged earlier (or stayed without
    a word): the next key of the rhythm relabelled it. Now it stays, and its view is marked
    finished (`on_action` takes no label on it; any move draws a view without the mark)."""
    query_id, order = ranked["query_id"], ui.annotate_tab.ORDERS[3]
    hashes = [page.page_hash for page in ui.annotate_tab.page_order(arena.store.query_pages(query_id), order)]
    for page_hash in hashes[1:]:
        ui.annotate_tab.judge(arena, query_id, page_hash, "ann", "relevant")
    act = functools.partial(ui.annotate_tab.annotate_action, arena, query_id=query_id, name="ann", order=order, total=4)
    assert act("not_relevant", position=0, page_hash=hashes[0]) == (0, True)  # not on to page 2, judged before
    view = ui.annotate_tab.annotate_view(arena, query_id, "ann", order, 0, after_judgment=True)
    assert view.finished and view.label == "not_relevant"
    assert view.progress == f"**4/4 judged** by ann · ✓ every page judged: {ui.annotate_tab.FINISHED_KEYS}"
    on_screen = ui.annotate_tab.view_values(arena, query_id, "ann", order, 0, after_judgment=True)[4]
    assert ui.annotate_tab.OnScreen.parse(on_screen) == ui.annotate_tab.OnScreen(str(query_id), hashes[0], "not_relevant", True)
    moved = ui.annotate_tab.annotate_view(arena, query_id, "ann", order, 1)
    assert not moved.finished and "a key now changes the label of the page shown" in moved.progress
    # Written by an app before the label and the mark were in it: the page, and nothing expected.
    assert ui.annotate_tab.OnScreen.parse(f"{query_id} {hashes[0]}") == ui.annotate_tab.OnScreen(str(query_id), hashes[0])
    assert ui.annotate_tab.OnScreen.parse("") == ui.annotate_tab.OnScreen()


def test_the_page_a_judgment_will_bring_is_made_ready_while_the_annotator_looks_at_this_one(arena, ranked):
    """Its JPEG was made in the judgment's own request, 13–147 ms of each key's wait."""
    from pathlib import Path

    query_id, order = ranked["query_id"], ui.annotate_tab.ORDERS[3]
    hashes = [page.page_hash for page in ui.annotate_tab.page_order(arena.store.query_pages(query_id), order)]
    ui.annotate_tab.judge(arena, query_id, hashes[1], "ann", "relevant")
    started, ahead = [], arena.images.ahead
    arena.images.ahead = lambda page_hash, side: started.append((page_hash, ahead(page_hash, side))) or started[-1][1]
    ui.annotate_tab.annotate_view(arena, query_id, "ann", order, 0)  # a judgment here brings page 3 (2 is judged)
    ui.annotate_tab.annotate_view(arena, query_id, None, order, 2)  # without a name: the next page
    ui.annotate_tab.annotate_view(arena, query_id, "ann", order, 3)  # the last page: the first unjudged, wrapping
    assert [page_hash for page_hash, _ in started] == [hashes[2], hashes[3], hashes[0]]
    for page_hash, made in started:
        assert made.result() == arena.image_path(page_hash, ui.annotate_tab.PAGE_SIDE) and Path(made.result()).exists()


def test_a_fully_judged_query_says_so_and_one_with_its_own_instruction_is_told_apart(arena, ranked):
    """The next key after the last page relabels a judged page: the progress says every page is
    judged. The same question with its own instruction is another query, in the list and on the page."""
    from ..bad_inputs import SAMPLE_PAGES

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
    from ..bad_inputs import SAMPLE_PAGES

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
    from ..bad_inputs import SAMPLE_PAGES

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
    view = ui.evaluate_tab.evaluate_view(arena, "ann")
    per_query, openable = view.per_query, view.openable
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
    from ..app_server import sample_pdf
    from ..bad_inputs import SAMPLE_PAGES, multi_frame_tiff

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
    mistakes_a = ui.evaluate_tab.evaluate_view(arena, "ann").mistakes_a
    assert mistakes_a and all(caption.split(" · ", 1)[1].rsplit(" · for “", 1)[0] in expected  # "#1 · page · for “…”"
                              for _, caption in mistakes_a)


def test_the_page_view_leaves_the_page_number_box_alone_when_it_shows_that_page(arena, ranked):
    """An update that would write the same number over a box someone is typing in is skipped."""
    import gradio as gr

    query_id = ranked["query_id"]
    for shown, expected in ((2, gr.skip()), (2.0, gr.skip()), (1, gr.update(value=2)), (None, gr.update(value=2))):
        image, info, _, number, page_hash, total, *_ = ui.annotate_tab.page_view(arena, query_id, " ann ", ui.annotate_tab.ORDERS[3], 1, shown)
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
    # Signed out, the page's label says so (a name cannot be typed here: "no name yet" said to type one).
    image, info, *_ = ui.annotate_tab.annotate_view(arena, query_id, None, ui.annotate_tab.ORDERS[3], 0)
    assert "current label: **not signed in**" in info and " · not signed in · " in image["label"]

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
    assert isinstance(failure.value, ui.text.ShownError) and not isinstance(failure.value, ui.text.Refusal)
    assert str(store.path) in str(failure.value)
    assert failure.value.print_exception  # the server failed, not the annotator: logged (the Annotate tab logs it too)
    with pytest.raises(Exception, match="disk holding it is full"):
        ui.annotate_tab.undo(arena, query_id, "ann")
    store.db.execute("PRAGMA max_page_count = 1073741823")  # space again
    rows = store.db.execute("SELECT COUNT(*) FROM judgments WHERE annotator = 'ann'").fetchone()[0]
    assert rows == saved  # every judgment acknowledged is stored, the refused ones are not
    assert ui.annotate_tab.judge(arena, query_id, hashes[0], "ann", "skip")["label"] == "skip"


def test_judge_and_undo_name_a_database_replaced_under_the_app_whatever_read_meets_it(arena, ranked, tmp_path):
    """The name lookup before the judgment and the count after it read outside the handling
    that names the file: the annotator saw a bare "Error" and an API client no reason."""
    import os

    query_id, page_hash = ranked["query_id"], ranked["pages"][0]["content_hash"]
    store = arena.store
    for call in (lambda: ui.annotate_tab.judge(arena, query_id, page_hash, "ann", "relevant"),
                 lambda: ui.annotate_tab.undo(arena, query_id, "ann")):
        os.replace(store.backup(tmp_path / "copy.db"), store.path)  # under this thread's connection
        with pytest.raises(ui.text.ShownError, match="was removed or replaced while the app was running"):
            call()
    assert ui.annotate_tab.judge(arena, query_id, page_hash, "ann", "relevant")["judged"] == 1


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


def test_after_a_judgment_the_query_list_is_redrawn_only_in_a_workspace_of_few_queries(arena, ranked, monkeypatch):
    """Each redraw sends and redraws every entry: at 3,000 queries a judging key took 0.65 s."""
    ui.annotate_tab.judge(arena, ranked["query_id"], ranked["pages"][0]["content_hash"], "rater", "relevant")
    listing = ui.annotate_tab.query_list_after_judging(arena, "rater")
    assert [label for label, _ in listing["choices"]] == [f"1/{len(ranked['pages'])} judged — {QUERY}"]
    monkeypatch.setattr(ui.annotate_tab, "LIVE_QUERY_LIST", 0)
    assert ui.annotate_tab.query_list_after_judging(arena, "rater") == gr.skip()


def test_refresh_and_the_name_box_keep_the_page_on_screen_when_another_upload_reorders_the_query(arena, ranked):
    """Refresh (and leaving the name box) redrew the page at the same position: after the same
    question was ranked over more pages, that was another page, and the next key judged it unseen."""
    from ..bad_inputs import SAMPLE_PAGES

    demo = ui.build_app(arena)
    wired = {block_fn.fn.__name__: block_fn.fn for block_fn in demo.fns.values() if block_fn.fn is not None}
    query_id, order = ranked["query_id"], ui.annotate_tab.ORDERS[0]  # most informative first: new pages move in
    position, *view = wired["refreshed"](query_id, "ann", order, 2, None, None)[1:]
    on_screen = view[4]
    assert position == 2 and on_screen.startswith(f"{query_id} ")
    again = ui.rank_tab.rank_pages(arena, [str(path) for path in SAMPLE_PAGES[4:8]], QUERY, None, None, None, None)
    assert again["query_id"] == query_id
    pages = ui.annotate_tab.page_order(arena.store.query_pages(query_id), order)
    now_at = next(i for i, page in enumerate(pages) if on_screen.startswith(f"{query_id} {page.page_hash} "))
    assert now_at != 2  # the upload moved it: the test shows the drift
    listing, position, *view = wired["refreshed"](query_id, "ann", order, 2, None, on_screen)
    assert listing["value"] == query_id and (position, view[4]) == (now_at, on_screen)
    name, position, listing, *view = wired["name_entered"]("ann", "ann", query_id, order, 2, None, on_screen)
    assert (position, view[4]) == (now_at, on_screen)
    # Another name resumes that annotator's own progress, wherever the page on screen is.
    _, position, *_ = wired["name_entered"]("bea", "ann", query_id, order, now_at, None, on_screen)
    assert position == ui.annotate_tab.resume_position(arena, query_id, "bea", order)


def test_next_and_jump_count_the_pages_the_question_has_now(arena, ranked):
    """The same question ranked again over another upload while someone annotates it: the
    browser's page total is the old one, and Next from the last old page went back to it."""
    from ..bad_inputs import SAMPLE_PAGES

    query_id, order = ranked["query_id"], "Upload order"
    last = ranked["pages"][-1]["content_hash"]  # page 4 of 4, on screen
    again = ui.rank_tab.rank_pages(arena, [str(path) for path in SAMPLE_PAGES[4:6]], QUERY, None, None, None, None)
    assert again["query_id"] == query_id  # now 6 pages
    assert ui.annotate_tab.annotate_action(arena, "next", query_id, "ann", order, 3, last, 4) == (4, False)
    assert ui.annotate_tab.jump_position(arena, query_id, 6, 4) == 5 and ui.annotate_tab.jump_position(arena, query_id, 99, 4) == 5
    assert ui.annotate_tab.jump_position(arena, query_id, 0, 4) == 0 and ui.annotate_tab.jump_position(arena, None, 3, 4) == 2
