"""The Evaluate tab: metrics, notes, mistake galleries, per-query table, Open in Annotate."""

from __future__ import annotations

import re

import pytest

from reranker import ui
from reranker.models import A_KEY, B_KEY, get_spec

from . import QUERY

A, B = A_KEY, B_KEY


def test_evaluate_tab_shows_metrics_mistakes_and_agreement(arena, ranked, monkeypatch):
    query_id = ranked["query_id"]
    order_a = [entry["content_hash"] for entry in ranked["models"][A]["ranking"]]
    # The page A ranks last is the relevant one, so A's top pages are its "hardest mistakes".
    for annotator in ("ann", "bob"):
        for page_hash in order_a:
            label = "relevant" if page_hash == order_a[-1] else "not_relevant"
            ui.annotate_tab.judge(arena, query_id, page_hash, annotator, label)
    (summary, bars, differences, per_query, notes, mistakes_a, mistakes_b, pages, by_label,
     title) = ui.evaluate_tab.evaluate_view(arena, "")
    assert set(summary["model"]) == {"Qwen3-VL-Reranker-2B", "Qwen3RerankerMM-2B"}
    # Scores by label: each judged page once, at both models' stored P(yes), coloured by the vote.
    stored = {}
    for key in (A, B):
        for entry in ranked["models"][key]["ranking"]:
            stored.setdefault(entry["content_hash"], {})[key] = entry["score"]
    label_a, label_b = get_spec(A).label, get_spec(B).label
    assert list(by_label.columns) == [label_a, label_b, "judgment", "page"] and len(by_label) == 4
    assert sorted(zip(by_label[label_a], by_label[label_b], by_label["judgment"])) == sorted(
        (round(scores[A], 4), round(scores[B], 4), "Relevant" if page_hash == order_a[-1] else "Not relevant")
        for page_hash, scores in stored.items())
    assert all(re.fullmatch(rf"\S+\.jpg · for “{re.escape(QUERY)}”", page) for page in by_label["page"])
    assert title == ("P(yes) of each judged page under both models, by the majority vote: green judged relevant (1), "
                     "purple not relevant (3); dashed, where both models agree")
    monkeypatch.setattr(ui.evaluate_tab, "SCATTER_POINTS", 3)  # whole queries: one at least
    capped = ui.evaluate_tab.evaluate_view(arena, "ann")
    assert len(capped.scores_by_label) == 4 and "Scores by label" not in capped.notes
    assert capped.scores_by_label_title.startswith("P(yes) of each judged page under both models, by ann's labels:")
    monkeypatch.undo()
    row_a = summary.set_index("model").loc["Qwen3-VL-Reranker-2B"]
    assert row_a["mrr"] == pytest.approx(0.25) and row_a["queries"] == 1
    assert set(bars["metric"]) >= {"ndcg@5", "ndcg_blog@5", "mrr"} and len(per_query) == 2
    # Each bar is named by metric and the model's tag (the full names made labels the plot cut),
    # every one of them in the plot's fixed order: metrics as listed, the models in their order.
    assert set(bars["bar"]) == set(ui.evaluate_tab.bar_order()) and "ndcg_blog@5 · VL-Reranker" in set(bars["bar"])
    assert ui.evaluate_tab.bar_order()[:2] == ["ndcg@5 · VL-Reranker", "ndcg@5 · RerankerMM"]
    assert list(dict.fromkeys(bars["model"])) == ["VL-Reranker", "RerankerMM"]  # the legend's, in the models' order
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
    assert "majority vote" not in ui.evaluate_tab.evaluate_view(arena, "ann").notes  # one annotator's labels: no vote
    with pytest.raises(Exception, match="no judgments by"):
        ui.evaluate_tab.evaluate_view(arena, "nobody")


def test_a_mistake_chosen_in_evaluate_is_named_and_opens_at_its_page_in_any_order(arena, ranked):
    """The page chosen in a mistake gallery: the line names it, its rank and query; Annotate
    opens the query at that page whatever the order chosen there. A per-query row names its query."""
    query_id = ranked["query_id"]
    order_a = [entry["content_hash"] for entry in ranked["models"][A]["ranking"]]
    for page_hash in order_a:
        ui.annotate_tab.judge(arena, query_id, page_hash, "ann", "relevant" if page_hash == order_a[-1] else "not_relevant")
    pages = ui.evaluate_tab.evaluate_view(arena, "ann").openable
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
    from ..bad_inputs import SAMPLE_PAGES

    second = ui.rank_tab.rank_pages(arena, [str(path) for path in SAMPLE_PAGES[4:7]], "a second question", None, None, None, None)
    for result in (ranked, second):  # the page A ranks last is the one relevant page: every other is a mistake
        order = [entry["content_hash"] for entry in result["models"][A]["ranking"]]
        for page_hash in order:
            ui.annotate_tab.judge(arena, result["query_id"], page_hash, "ann", "relevant" if page_hash == order[-1] else "not_relevant")
    everything = ui.evaluate_tab.evaluate_view(arena, "ann").mistakes_a
    monkeypatch.setattr(ui.evaluate_tab, "MISTAKES_SHOWN", 3)
    view = ui.evaluate_tab.evaluate_view(arena, "ann")
    notes, shown = view.notes, view.mistakes_a
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
    notes = ui.evaluate_tab.evaluate_view(arena, "zoë o'neil").notes  # as the app matches names; the command as stored, quoted
    assert "`python -m reranker eval --per-query --annotator 'Zoë O'\"'\"'Neil'`" in notes
    notes = ui.evaluate_tab.evaluate_view(arena, "").notes
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


def test_an_annotator_named_majority_vote_is_evaluated_alone(arena, ranked):
    """The Labels list's "Majority vote" has an empty value, so that name is anyone's."""
    hashes = [page["content_hash"] for page in ranked["pages"]]
    ui.annotate_tab.judge(arena, ranked["query_id"], hashes[0], "Majority vote", "relevant")
    ui.annotate_tab.judge(arena, ranked["query_id"], hashes[0], "bob", "not_relevant")  # the majority: a tie
    alone, *_ = ui.evaluate_tab.evaluate_view(arena, "Majority vote")
    everyone, *_ = ui.evaluate_tab.evaluate_view(arena, ui.annotators.MAJORITY_VOTE[1])
    assert list(alone["queries"]) == [1, 1] and list(everyone["queries"]) == [0, 0]


def test_evaluate_notes_say_why_queries_are_left_out_and_list_only_annotators_who_overlap(arena, ranked):
    from ..bad_inputs import SAMPLE_PAGES

    first = ranked["query_id"]
    second = ui.rank_tab.rank_pages(arena, [str(path) for path in SAMPLE_PAGES[4:6]], "a second question", None, None, None, None)
    hashes = [page["content_hash"] for page in ranked["pages"]]
    ui.annotate_tab.judge(arena, first, hashes[0], "ann", "relevant")
    ui.annotate_tab.judge(arena, first, hashes[0], "bob", "relevant")
    ui.annotate_tab.judge(arena, first, hashes[1], "bob", "not_relevant")
    ui.annotate_tab.judge(arena, second["query_id"], second["pages"][0]["content_hash"], "cid", "not_relevant")  # nothing relevant
    notes = ui.evaluate_tab.evaluate_view(arena, "").notes
    lines = notes.split("\n\n")
    for label in ("Qwen3-VL-Reranker-2B", "Qwen3RerankerMM-2B"):
        assert f"Not in {ui.text.escape(label)}'s means: 1 query (no relevant page): “a second question”." in lines
    assert [line for line in lines if line.startswith("Cohen's κ")] == [
        "Cohen's κ ann vs bob: undefined over 1 page",  # both said relevant: κ has no chance agreement to beat
        "Cohen's κ: 2 other pairs of annotators judged no page in common.",
    ]


def test_evaluate_notes_name_at_most_a_few_queries_left_out_per_reason(arena, ranked, monkeypatch):
    from ..bad_inputs import SAMPLE_PAGES

    monkeypatch.setattr(ui.evaluate_tab, "EXCLUDED_NAMED", 2)
    ui.annotate_tab.judge(arena, ranked["query_id"], ranked["pages"][0]["content_hash"], "ann", "relevant")
    for number in range(3):  # judged, nothing relevant
        other = ui.rank_tab.rank_pages(arena, [str(SAMPLE_PAGES[4])], f"question {number}", None, None, None, None)
        ui.annotate_tab.judge(arena, other["query_id"], other["pages"][0]["content_hash"], "ann", "not_relevant")
    instructed = ui.rank_tab.rank_pages(arena, [str(SAMPLE_PAGES[4])], "question 0", "Tables only.", None, None, None)
    notes = ui.evaluate_tab.evaluate_view(arena, "").notes
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
    from ..bad_inputs import SAMPLE_PAGES

    second = ui.rank_tab.rank_pages(arena, [str(path) for path in SAMPLE_PAGES[4:6]], "a second question", None, None, None, None)
    again = ui.rank_tab.rank_pages(arena, [str(path) for path in SAMPLE_PAGES[4:6]], "a second question", "Find the chart.", None,
                          None, None)
    for result in (ranked, second, again):
        hashes = [page["content_hash"] for page in result["pages"]]
        ui.annotate_tab.judge(arena, result["query_id"], hashes[0], "ann", "relevant")
        ui.annotate_tab.judge(arena, result["query_id"], hashes[1], "ann", "not_relevant")
    per_query = ui.evaluate_tab.evaluate_view(arena, "ann").per_query
    columns = list(per_query.columns)
    assert columns[:6] == ["query", "model", "pages", "judged", "relevant", "ndcg@5"]
    labels = [get_spec(key).tag for key in (A, B)]
    first_text = arena.store.query(ranked["query_id"]).text
    tagged = "a second question [instruction: Find the chart.]"
    assert list(zip(per_query["query"], per_query["model"])) == [  # the newest query first
        (tagged, labels[0]), (tagged, labels[1]), ("a second question", labels[0]), ("a second question", labels[1]),
        (first_text, labels[0]), (first_text, labels[1])]
    assert list(per_query["judged"]) == [2] * 6


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


def test_a_refused_choice_of_labels_says_whose_numbers_stay_on_screen(arena, ranked):
    """A name nobody judges under: the toast went, and the last choice's numbers stood under it."""
    ui.annotate_tab.judge(arena, ranked["query_id"], ranked["pages"][0]["content_hash"], "AT&T", "relevant")
    with pytest.raises(ui.text.Refusal) as refused:
        ui.evaluate_tab.evaluate_view(arena, "nobody <b>")
    assert ui.evaluate_tab.refused_headline(refused.value, "AT&T") == (
        "⚠️ **no judgments by 'nobody &lt;b&gt;' \\(annotators: AT&amp;T\\)**. The numbers below are still AT&amp;T's.")
    assert ui.evaluate_tab.refused_headline(refused.value, "").endswith("**. The numbers below are still the majority vote's.")
    assert ui.evaluate_tab.refused_headline(refused.value, None).endswith("AT&amp;T\\)**.")  # nothing shown yet


def test_the_scores_by_label_plot_shows_whole_queries_the_metrics_count_and_notes_the_rest(tmp_path, monkeypatch):
    """A query with no relevant page (no metric counts it) had its pages plotted; judged pages only
    one model scored vanished unsaid; the point cap cut a query in two."""
    from types import SimpleNamespace

    from PIL import Image

    from reranker.documents import Page
    from reranker.evaluate import EvaluationCache
    from reranker.imaging import image_hash
    from reranker.store import Store

    def pages(start, count):
        images = [Image.new("RGB", (8, 8), (n * 5, 0, 0)) for n in range(start, start + count)]
        return [Page(image_hash(image), image, f"p{start + n}.png", 1, None, "image") for n, image in enumerate(images)]

    store = Store(tmp_path / "arena.db")
    arena = SimpleNamespace(store=store, images=SimpleNamespace(paths=lambda hashes, side: [f"/{h}.jpg" for h in hashes]),
                            evaluations=EvaluationCache())

    def ranked(text, scores, labels):
        batch = pages(len(store.list_queries()) * 10, len(labels))
        query_id = store.save_ranking(text, None, batch, scores=scores, settings={key: {} for key in scores})
        for page, label in zip(batch, labels):
            store.record_judgment(query_id, page.content_hash, "ann", label)

    ranked("older", {A: [.9, .2, .3], B: [.8, .1, .4]}, ["relevant", "not_relevant", "not_relevant"])
    ranked("nothing relevant", {A: [.5, .6], B: [.5, .6]}, ["not_relevant", "not_relevant"])
    ranked("only A scored", {A: [.7, .1]}, ["relevant", "not_relevant"])
    ranked("newer", {A: [.6, .4], B: [.3, .9]}, ["relevant", "not_relevant"])
    view = ui.evaluate_tab.evaluate_view(arena, "")
    assert sorted(view.scores_by_label["page"].str.extract("for “(.*)”")[0]) == ["newer"] * 2 + ["older"] * 3
    assert "Scores by label: 2 judged pages scored by one model only, not plotted (a point needs both scores)." in view.notes
    assert view.scores_by_label_title.endswith("green judged relevant (2), purple not relevant (3); dashed, where both models agree")
    monkeypatch.setattr(ui.evaluate_tab, "SCATTER_POINTS", 4)  # "older" would not fit whole: left out
    view = ui.evaluate_tab.evaluate_view(arena, "")
    assert list(view.scores_by_label["page"].str.extract("for “(.*)”")[0]) == ["newer"] * 2
    assert "Scores by label: the 2 judged pages of the query added last, of 5." in view.notes
    store.close()


def _contrast(colour_a: str, colour_b: str) -> float:
    """WCAG's contrast ratio of two #rrggbb colours."""
    def luminance(colour: str) -> float:
        channels = [int(colour[i:i + 2], 16) / 255 for i in (1, 3, 5)]
        r, g, b = (c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels)
        return 0.2126 * r + 0.7152 * g + 0.0722 * b

    high, low = sorted((luminance(colour_a), luminance(colour_b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def test_the_scores_by_label_points_stand_out_from_the_plot_in_either_scheme():
    """The purple "Not relevant" points were 2.1:1 on the dark scheme's plot background; marks
    need 3:1 (WCAG 1.4.11)."""
    import gradio as gr

    theme = gr.themes.Default()
    light, dark = "#ffffff", theme.neutral_800  # the plot's block: background_fill_primary in each scheme
    assert (theme.block_background_fill_dark, theme.background_fill_primary) == ("*neutral_800", "white")
    for judgment, colour in ui.evaluate_tab.JUDGMENT_COLOURS.items():
        assert _contrast(colour, light) >= 3 and _contrast(colour, dark) >= 3, (judgment, colour)
