"""The Evaluate tab: each model against the human labels (metrics, differences, per query, mistakes),
and a mistake or query opened in Annotate to look at again."""

from __future__ import annotations

import functools
import json
import shlex
from types import SimpleNamespace
from typing import TYPE_CHECKING, NamedTuple

import gradio as gr
import pandas as pd

from ..models import A_KEY, B_KEY, MODELS, get_spec
from .annotate_tab import page_position, position_and_view, query_choices, resume_position
from .annotators import MAJORITY_VOTE, given_name, label_choices, typed_annotator
from .text import Refusal, api_errors, distinct_names, escape, markdown, message_text, refuse, shortened, stored_page_label

if TYPE_CHECKING:
    from ..evaluate import PairAgreement
    from .arena import Arena


MISTAKES_SHOWN = 30  # per model: a gallery of hundreds was slow to make and to look through
# Queries in the per-query table (two rows each, the newest first): at 3,000 the browser spent ~6 s of the Evaluate
# tab's ~9.5 s drawing the table.
PER_QUERY_SHOWN = 300
EXCLUDED_NAMED = 5  # queries named per reason in the note on those left out of a model's means (the CLI lists all)
MISTAKE_IMAGE_SIDE = 768  # the gallery's own large view shows this file (at 384 px it was blurry)
BAR_METRICS = ("ndcg@5", "ndcg_blog@5", "mrr", "recall@5", "map")
# Points in the scores-by-label plot (judged pages both models scored, the newest queries first).
# Each is an SVG element: with 3,000 queries judged, 3,000 points added ~1.3 s to opening the tab,
# 1,000 ~0.3 s; and a thousand already show each model's separation.
SCATTER_POINTS = 1000
# Green and purple: told apart with any colour vision (red and green were one olive to a deuteranope;
# simulated, these stay ΔE ≥ 60 apart), and not the bar chart's blue and orange, which mean the two
# models beside it. Each 3:1 or more on the plot's background in either scheme, as WCAG asks of
# marks (a darker purple, #7e22ce, was 2.1:1 on the dark one).
JUDGMENT_COLOURS = {"Relevant": "#16a34a", "Not relevant": "#a855f7"}


class EvaluateView(NamedTuple):
    """What the Evaluate tab shows (see `evaluate_view`)."""

    summary: pd.DataFrame  # the metrics table
    bars: pd.DataFrame | None  # the bar plot's data
    differences: pd.DataFrame  # A − B, a row per metric
    per_query: pd.DataFrame
    notes: str
    mistakes_a: list  # gallery items (image path, caption)
    mistakes_b: list
    openable: dict  # what a choice opens in Annotate (see `evaluate_view`)
    scores_by_label: pd.DataFrame  # a point per judged page both models scored: A's P(yes), B's, its label
    scores_by_label_title: str  # what the plot shows: whose labels, how many of each


def evaluate_view(arena: Arena, annotator: str | None) -> EvaluateView:
    """The Evaluate tab (`EvaluateView`); what a choice opens in Annotate (`openable`): model key →
    the (query id, page hash) of each of its gallery's items, "queries" → {a per-query row's query
    as shown: its id}."""
    annotator = annotator or None  # MAJORITY_VOTE's value
    try:
        evaluation = arena.evaluations.evaluate(arena.store, annotator)
    except ValueError as error:
        raise refuse(str(error)) from None
    summaries = arena.store.list_queries()
    by_id = {s.id: s for s in summaries}
    # Shown apart: asked with its own instruction, the same text is another query.
    shown_query = distinct_names({s.id: s.text + s.instruction_tag for s in summaries})
    summary, per_query, evaluated = _metric_tables(evaluation, shown_query)
    notes = _notes(evaluation, shown_query, annotator)
    query_pages = functools.cache(lambda query_id: {p.page_hash: p for p in arena.store.query_pages(query_id)})
    # What a choice opens in Annotate: each gallery item's (query id, page hash) by model key,
    # and under "queries" each per-query row's query, by the query as the table shows it.
    openable: dict = {"queries": {shown_query[query_id]: query_id for query_id in evaluated[:PER_QUERY_SHOWN]}}
    found = {key: evaluation.mistakes.get(key, []) for key in MODELS}
    mistakes = {}
    for key, items in found.items():
        mistakes[key], openable[key] = _mistake_gallery(arena, items, query_pages, by_id)
    if len(evaluated) > PER_QUERY_SHOWN:
        chosen = evaluation.annotator  # as stored: the CLI matches it as the app does
        command = "python -m reranker eval --per-query" + (f" --annotator {shlex.quote(chosen)}" if chosen else "")
        command = f"`{command}`" if "`" not in command else escape(command)  # a code span, unless the name ends it
        notes.append(f"Per query: the {PER_QUERY_SHOWN} queries added last, of {len(evaluated)}; every one with "
                     f"{command} (the means above count them all).")
    if capped := [key for key, items in found.items() if len(items) > MISTAKES_SHOWN]:
        notes.append(f"Mistake galleries: the {MISTAKES_SHOWN} ranked highest of " +
                     " and ".join(f"{len(found[key])} for {escape(get_spec(key).label)}" for key in capped) + ".")
    scores_by_label, queries_plotted, both = _scores_by_label(evaluation.judged_pages, query_pages, by_id)
    if len(scores_by_label) < both:
        queries = "query" if queries_plotted == 1 else f"{queries_plotted} queries"
        notes.append(f"Scores by label: the {len(scores_by_label)} judged pages of the {queries} added last, of {both}.")
    if one_model := len(evaluation.judged_pages) - both:
        notes.append(f"Scores by label: {one_model} judged page{'' if one_model == 1 else 's'} scored by one model "
                     "only, not plotted (a point needs both scores).")
    return EvaluateView(summary, _bars(summary), _differences_frame(evaluation.differences), per_query,
                        "\n\n".join(notes), mistakes[A_KEY], mistakes[B_KEY], openable, scores_by_label,
                        _scores_by_label_title(scores_by_label, evaluation.annotator))


def _metric_tables(evaluation, shown_query: dict[int, str]) -> tuple[pd.DataFrame, pd.DataFrame, list[int]]:
    """The metrics table (a row per model), the per-query table (the PER_QUERY_SHOWN newest
    queries, each model's row side by side) and every evaluated query id, newest first."""
    from ..evaluate import model_label
    from ..metrics import EvalResult

    summary_rows, per_query = [], []
    for key, result in evaluation.results.items():
        summary_rows.append({"model": model_label(key), "queries": result.n_queries, "excluded": result.n_excluded,
                             **{name: _round(value) for name, value in result.means.items()}})
        for row in result.rows:
            # The counts before the metrics: they qualify them (after them, a wide table hid them).
            # Short names (the model's tag, "pages" for "n_pages"): 13 columns fit 1400 px.
            per_query.append((row["query_id"], {
                "query": shown_query.get(row["query_id"], row["query_id"]),
                "model": get_spec(key).tag if key in MODELS else key,
                **{name.removeprefix("n_"): _round(value) for name, value in row.items() if name != "query_id"}}))
    per_query.sort(key=lambda item: -item[0])  # the newest query first, its models side by side
    evaluated = list(dict.fromkeys(query_id for query_id, _ in per_query))
    # A row per query and model: the browser froze seconds drawing thousands.
    newest = set(evaluated[:PER_QUERY_SHOWN])
    metric_names = EvalResult("", evaluation.ks).metric_names  # the columns, also of empty tables (not "1 2 3")
    summary = pd.DataFrame(summary_rows, columns=["model", "queries", "excluded", *metric_names])
    per_query = pd.DataFrame([row for query_id, row in per_query if query_id in newest],
                             columns=["query", "model", "pages", "judged", "relevant", *metric_names])
    return summary, per_query, evaluated


def _bars(summary: pd.DataFrame) -> pd.DataFrame | None:
    """The bar plot's data: one bar per (metric, model) of BAR_METRICS with a defined mean."""
    if summary.empty:
        return None
    # BarPlot has no grouping, so the category holds both (with the model's tag: its full name
    # made the labels too long, and the plot cut them).
    bars = summary.melt(id_vars=["model"], value_vars=[c for c in BAR_METRICS if c in summary],
                        var_name="metric", value_name="value")
    # Undefined means (no query with a page judged relevant) get no bar: as None they made the
    # column text, which Vega drew as full-height bars on an axis of "undefined".
    bars = bars.dropna(subset=["value"]).astype({"value": float})
    tags = {spec.label: spec.tag for spec in MODELS.values()}
    # The legend too: the full names ran past the plot's right edge at phone width.
    bars["model"] = bars["model"].map(lambda label: tags.get(label, label))
    bars["bar"] = bars["metric"] + " · " + bars["model"]
    return bars if not bars.empty else None


def _notes(evaluation, shown_query: dict[int, str], annotator: str | None) -> list[str]:
    """The notes under the tables (Markdown): queries left out and why, annotator and model
    agreement, the comparison's caveats, and what the columns mean."""
    from ..evaluate import model_label

    notes = []
    for key, result in evaluation.results.items():
        if result.excluded:  # counted in the table's "excluded" column; here are which and why
            by_reason: dict[str, list[int]] = {}
            for query_id, why in result.excluded.items():
                by_reason.setdefault(why, []).append(query_id)
            notes.append(f"Not in {escape(model_label(key))}'s means: " + "; ".join(
                f"{len(ids)} {'query' if len(ids) == 1 else 'queries'} ({why}): " + ", ".join(
                    f"“{escape(shortened(shown_query[q], 60))}”" for q in ids[:EXCLUDED_NAMED])
                + (f" and {len(ids) - EXCLUDED_NAMED} more" if len(ids) > EXCLUDED_NAMED else "")
                for why, ids in sorted(by_reason.items())) + ".")
    shared = [item for item in evaluation.annotator_agreement if item.kappa.n]
    for item in shared:
        kappa = item.kappa
        value = "undefined" if kappa.kappa is None else f"{kappa.kappa:.2f}"
        notes.append(f"Cohen's κ {escape(item.annotator_a)} vs {escape(item.annotator_b)}: {value} over {kappa.n} "
                     f"page{'' if kappa.n == 1 else 's'}")
    if apart := len(evaluation.annotator_agreement) - len(shared):
        notes.append(f"Cohen's κ: {apart} other {'pair' if apart == 1 else 'pairs'} of annotators judged no page in common.")
    if note := evaluation.kappa_note():
        notes.append(note)
    for pair in evaluation.model_agreement:
        notes.append(escape(_describe_pair(pair)))
    notes += [escape(note) for note in evaluation.comparison_notes()]
    notes.append("*ndcg_blog@k*: the comparison blog's variant, ideal DCG over the same k pages (not standard NDCG). "
                 "*excluded*: queries left out of a model's means (why: above).")
    notes.append("*judged*: pages labelled relevant or not relevant; skipped pages are not counted (Annotate's "
                 "progress counts them as done)" + ("" if annotator else ", nor are pages the majority vote "
                 "leaves undecided (as many relevant as not relevant labels)") + ". Pages not counted stay in "
                 "the ranking as not relevant (as trec_eval's unjudged pages); equal scores rank in upload order.")
    return notes


def _mistake_gallery(arena: Arena, found: list, query_pages, summaries) -> tuple[list, list]:
    """A model's mistakes gallery (image path, caption), the MISTAKES_SHOWN costliest first (a
    page placed first above a relevant one), newest queries first among equals; and the
    (query id, page hash) each item opens in Annotate."""
    shown = sorted(found, key=lambda item: (item[1].rank, -item[0], item[1].page_id))[:MISTAKES_SHOWN]
    # The page first: a thumbnail's caption shows a line or two of this.
    captions = [f"#{mistake.rank} · {stored_page_label(query_pages(query_id)[mistake.page_id])} · for "
                f"“{shortened(summaries[query_id].text, 60)}{summaries[query_id].instruction_tag}”" for query_id, mistake in shown]
    gallery = list(zip(arena.images.paths([mistake.page_id for _, mistake in shown], MISTAKE_IMAGE_SIDE), captions))
    return gallery, [(query_id, mistake.page_id) for query_id, mistake in shown]


def _scores_by_label(judged_pages, query_pages, summaries) -> tuple[pd.DataFrame, int, int]:
    """The scores-by-label plot's points: each judged page both models scored, whole queries, the
    newest first, up to SCATTER_POINTS pages (one query at least), with A's and B's P(yes) (to the
    4 places the tooltip shows), its label and what it is; how many queries that is; and how many
    judged pages both models scored in all."""
    by_query: dict[int, list] = {}
    for page in judged_pages:
        if A_KEY in page.scores and B_KEY in page.scores:
            by_query.setdefault(page.query_id, []).append(page)
    shown, queries = [], 0
    for query_id in sorted(by_query, reverse=True):
        if shown and len(shown) + len(by_query[query_id]) > SCATTER_POINTS:
            break
        shown += by_query[query_id]
        queries += 1
    label_a, label_b = get_spec(A_KEY).label, get_spec(B_KEY).label
    frame = pd.DataFrame({
        label_a: [round(page.scores[A_KEY], 4) for page in shown],
        label_b: [round(page.scores[B_KEY], 4) for page in shown],
        "judgment": ["Relevant" if page.relevant else "Not relevant" for page in shown],
        "page": [f"{stored_page_label(query_pages(page.query_id)[page.page_hash])} · for "
                 f"“{shortened(summaries[page.query_id].text, 60)}{summaries[page.query_id].instruction_tag}”" for page in shown],
    }, columns=[label_a, label_b, "judgment", "page"])
    return frame, queries, sum(map(len, by_query.values()))


def _scores_by_label_title(frame: pd.DataFrame, annotator: str | None) -> str:
    """The plot's label: the colours in words, whose labels, and how many pages of each."""
    relevant = int((frame["judgment"] == "Relevant").sum())
    whose = f"{annotator}'s labels" if annotator else "the majority vote"
    return (f"P(yes) of each judged page under both models, by {whose}: green judged relevant ({relevant}), "
            f"purple not relevant ({len(frame) - relevant}); dashed, where both models agree")


def evaluation_headline(summary: pd.DataFrame, labels: str | None) -> str:
    """Above the Evaluate tab's tables: what it needs when no model has a query to be evaluated on
    (a first visit showed tables of dashes, the reason halfway down the page); else nothing."""
    if not summary.empty and summary["queries"].max() > 0:
        return ""
    whose = f" by {escape(labels)}" if labels else ""
    return (f"**Nothing to evaluate yet:** no ranked query has a page judged relevant{whose}. Judge pages on the "
            "*Annotate* tab (R: relevant, N: not relevant), then press *Evaluate*.")


def refused_headline(refusal: Refusal, shown: str | None) -> str:
    """Above the numbers when a choice of labels is refused (an unknown name): why, and whose
    numbers are still shown below (`shown`: their labels; None: none yet)."""
    whose = "" if shown is None else (" The numbers below are still " + (
        f"{escape(shown)}'s." if shown else "the majority vote's."))
    text = message_text(refusal)
    return f"⚠️ **{text}**{'' if text.endswith('.') else '.'}{whose}"


def _differences_frame(differences) -> pd.DataFrame:
    """Model A − model B, a row per metric (`reranker.metrics.PairedDifference`), as `eval` prints it."""
    from ..evaluate import difference_cells

    columns = ["metric", "mean difference", "95% CI", "p (paired t-test)", "better / same / worse", "queries"]
    rows = [(d.metric, *difference_cells(d), d.n_queries) for d in differences if (d.model_a, d.model_b) == (A_KEY, B_KEY)]
    return pd.DataFrame(rows, columns=columns)


def bar_order() -> list[str]:
    """The bar plot's categories in metric order, the models in their order within each (Vega
    sorted them alphabetically, which put the second model first)."""
    return [f"{metric} · {spec.tag}" for metric in BAR_METRICS for spec in MODELS.values()]


def mistakes_heading(summary: pd.DataFrame, label: str, found: list) -> str:
    """A mistake gallery's label: an empty one says whether the model made no mistake or was not
    evaluated at all (no stored scores: it is absent from the metrics table)."""
    if summary.empty or label not in set(summary["model"]):
        return f"{label}: not evaluated (no stored scores)"
    if not summary.loc[summary["model"] == label, "queries"].iloc[0]:
        return f"{label}: nothing to judge it by yet (no query it scored has a page judged relevant)"
    return f"{label}: {'pages' if found else 'no page'} ranked above a relevant page"


def _describe_pair(pair: PairAgreement) -> str:
    text = "Models: mean Kendall τ " + ("undefined" if pair.kendall_tau is None else f"{pair.kendall_tau:.2f}")
    if pair.topk_overlap is not None:
        text += f", mean top-{pair.k} overlap {pair.topk_overlap:.0%}"
    return text


def _round(value):
    return round(value, 4) if isinstance(value, float) else value


def _places(frame: pd.DataFrame, digits: int):
    """The table as shown: every metric to the same places (0.5, 1 and 0.4512 side by side read
    as numbers of different precision), — where undefined."""
    return frame.style.format(precision=digits, na_rep="—")


def layout() -> SimpleNamespace:
    """The Evaluate tab's components: labels; metrics, plot, differences, per-query table, mistakes."""
    spec_a, spec_b = get_spec(A_KEY), get_spec(B_KEY)
    with gr.Tab("Evaluate", id="evaluate") as tab:
        with gr.Row():
            eval_annotator = gr.Dropdown([MAJORITY_VOTE], value=MAJORITY_VOTE[1], label="Labels", allow_custom_value=True,
                                         elem_id="eval-labels")
            eval_button = gr.Button("Evaluate", variant="primary")
        eval_headline = markdown(elem_id="eval-headline")  # what is missing, before empty tables
        metrics_table = gr.Dataframe(label="Metrics per model (means over judged queries)", interactive=False,
                                     elem_id="metrics-table")
        # Side by side, so that the scores plot is about square (at full width, 1130 × 250 px, the
        # diagonal where the models agree ran at 12°); stacked on a phone.
        with gr.Row(equal_height=True):
            # Labels at 45°: at 30° the ten piled up over each other at phone width.
            metrics_plot = gr.BarPlot(x="bar", y="value", color="model", label="Metrics", y_lim=[0, 1], height=360,
                                      x_label_angle=-45, sort=bar_order(), x_title="metric · model", scale=3,
                                      min_width=300, elem_id="metrics-plot")
            # Each model's P(yes) against the human labels, by eye: how well each separates the two
            # colours (along its axis), and where the models disagree about a page. Hidden until it
            # has a point. (Gradio's tooltip lists y, x and the colour first, whatever the order here.)
            scores_plot = gr.ScatterPlot(x=spec_a.label, y=spec_b.label, color="judgment", color_map=JUDGMENT_COLOURS,
                                         tooltip=[spec_b.label, spec_a.label, "judgment", "page"], x_lim=[0, 1],
                                         y_lim=[0, 1], height=360, visible=False, scale=2, min_width=320,
                                         # The legend falls below the plot's box, hidden: the label says the colours.
                                         label="P(yes) of each judged page under both models", elem_id="scores-by-label")
        # Whether the gap between the means is more than the spread of the queries.
        differences_table = gr.Dataframe(
            label=f"{spec_a.label} − {spec_b.label}, query by query over the queries both were evaluated on "
                  f"(positive: {spec_a.label} ranked better; p: two-sided paired t-test, one per metric)",
            interactive=False, elem_id="differences-table")
        eval_notes = markdown()
        # Query and model first, the query wrapped in a column of its own width: one line of a
        # long query hid every metric. (Gradio 6.31's pinned_columns pins nothing here.)
        per_query_table = gr.Dataframe(label="Per query", interactive=False, wrap=True, column_widths=["180px", "110px"],
                                       max_height=600, elem_id="per-query")
        # A mistake may be the label's: the page chosen in either gallery opens in Annotate, to
        # look at again and relabel (it was: find the query in the list, then the page); so
        # does a query chosen in the per-query table.
        with gr.Row(equal_height=True):
            chosen_line = markdown(OPEN_IN_ANNOTATE_HINT, elem_id="eval-chosen")
            open_in_annotate = gr.Button("Open in Annotate", interactive=False, elem_id="open-in-annotate", scale=0,
                                         min_width=140)
        openable = gr.State({})  # what a choice opens: evaluate_view's last value
        chosen = gr.State(None)  # (query id, page hash; None: where the annotator left the query)
        with gr.Row():
            # object_fit "contain": whole pages, as in the Rank galleries (cropped, a page showed its middle).
            mistakes_a = gr.Gallery(label=f"{spec_a.label}: pages ranked above a relevant page", columns=4, height="auto",
                                    allow_preview=True, buttons=["download", "fullscreen"], object_fit="contain",
                                    elem_id="mistakes-a")
            mistakes_b = gr.Gallery(label=f"{spec_b.label}: pages ranked above a relevant page", columns=4, height="auto",
                                    allow_preview=True, buttons=["download", "fullscreen"], object_fit="contain",
                                    elem_id="mistakes-b")
    return SimpleNamespace(tab=tab, eval_annotator=eval_annotator, eval_button=eval_button,
                           eval_headline=eval_headline, metrics_table=metrics_table, metrics_plot=metrics_plot,
                           scores_plot=scores_plot,
                           differences_table=differences_table, eval_notes=eval_notes,
                           per_query_table=per_query_table, mistakes_a=mistakes_a, mistakes_b=mistakes_b,
                           chosen_line=chosen_line, open_in_annotate=open_in_annotate,
                           openable=openable, chosen=chosen)


def wire(arena: Arena, evaluate: SimpleNamespace, demo: gr.Blocks) -> None:
    """The evaluation, on opening the tab and on the button; the Labels choices."""
    eval_annotator, eval_button = evaluate.eval_annotator, evaluate.eval_button
    eval_headline, metrics_table, metrics_plot = evaluate.eval_headline, evaluate.metrics_table, evaluate.metrics_plot
    differences_table, eval_notes = evaluate.differences_table, evaluate.eval_notes
    per_query_table, mistakes_a, mistakes_b = evaluate.per_query_table, evaluate.mistakes_a, evaluate.mistakes_b
    spec_a, spec_b = get_spec(A_KEY), get_spec(B_KEY)

    shown_labels = gr.State(None)  # whose labels the numbers on screen count ("": the majority vote)
    eval_outputs = [eval_headline, metrics_table, metrics_plot, evaluate.scores_plot, differences_table, per_query_table, eval_notes,
                    mistakes_a, mistakes_b, evaluate.openable, evaluate.chosen,
                    evaluate.chosen_line, evaluate.open_in_annotate, shown_labels]

    def on_evaluate(labels, shown):
        """Evaluate each model's stored scores against the human labels."""
        try:
            view = evaluate_view(arena, labels)
        except Refusal as refusal:  # a toast; raised, it put an "Error" badge on every panel
            gr.Warning(refusal.message)
            # Said above the numbers too, which stay: once the toast had gone, the last choice's
            # numbers stood under the name refused, as if they were that name's.
            return (refused_headline(refusal, shown), *(gr.skip() for _ in eval_outputs[1:]))
        # Means to four places; a query's own values to three, so its 13 columns fit 1400 px.
        summary = view.summary
        return (evaluation_headline(summary, labels), _places(summary, 4), view.bars,
                gr.update(value=view.scores_by_label, label=view.scores_by_label_title, visible=True)
                if len(view.scores_by_label) else gr.update(value=None, visible=False), view.differences,
                _places(view.per_query, 3), view.notes,
                *(gr.update(value=found, label=mistakes_heading(summary, spec.label, found))
                  for spec, found in ((spec_a, view.mistakes_a), (spec_b, view.mistakes_b))),
                # The galleries are new: nothing in them is chosen.
                view.openable, None, OPEN_IN_ANNOTATE_HINT, gr.update(interactive=False),
                typed_annotator(arena, labels) or "")  # as stored: " ALICE " is alice

    # Also on opening the tab: before, it showed empty tables headed "1 2 3" until pressed; and
    # on another choice of labels (the numbers on screen were the last choice's).
    # "always_last": a press while the opening run works still counts (with "once" it was dropped).
    gr.on([evaluate.tab.select, eval_button.click, eval_annotator.change], on_evaluate, [eval_annotator, shown_labels], eval_outputs,
          trigger_mode="always_last", api_visibility="private")
    # Annotators who judged since the page loaded are offered as soon as the tab opens.
    gr.on([demo.load, evaluate.tab.select, eval_button.click], lambda: label_choices(arena), None, eval_annotator,
          api_visibility="private")


OPEN_IN_ANNOTATE_HINT = "Choose a query in the table above or a page in a gallery below to open it in *Annotate*."


def query_chosen_view(arena: Arena, openable: dict, shown) -> tuple:
    """A row chosen in the per-query table (`shown`: its query cell): (its (query id, None), the
    line naming it, the Open button's update)."""
    query_id = (openable or {}).get("queries", {}).get(shown)
    if query_id is None:
        return None, OPEN_IN_ANNOTATE_HINT, gr.update(interactive=False)
    summary = arena.store.query(query_id)
    told_apart = f" (query #{query_id})" if shown.endswith(f" (query #{query_id})") else ""  # as the row says
    line = f"Chosen: “{escape(shortened(summary.text, 80) + summary.instruction_tag + told_apart)}”, {summary.pages} pages"
    return (int(query_id), None), line, gr.update(interactive=True)


def mistake_chosen_view(arena: Arena, openable: dict, key: str, index) -> tuple:
    """A page chosen in model `key`'s mistake gallery: (its (query id, page hash), the line
    naming it, the Open button's update). Nothing chosen (`index` None): none."""
    items = (openable or {}).get(key) or []
    if index is None or not 0 <= index < len(items):
        return None, OPEN_IN_ANNOTATE_HINT, gr.update(interactive=False)
    query_id, page_hash = items[index]
    summary = arena.store.query(query_id)
    page = next(p for p in arena.store.query_pages(query_id) if p.page_hash == page_hash)
    line = (f"Chosen: {escape(stored_page_label(page))}, #{page.ranks[key]} by {escape(get_spec(key).label)}, "
            f"for “{escape(shortened(summary.text, 80) + summary.instruction_tag)}”")
    return (int(query_id), page_hash), line, gr.update(interactive=True)


def wire_open_in_annotate(arena: Arena, evaluate: SimpleNamespace, annotate: SimpleNamespace,
                           shared: SimpleNamespace, tabs: gr.Tabs) -> None:
    """A page chosen in an Evaluate mistake gallery opens in Annotate: its query, at that page; a
    query chosen in the per-query table, where this annotator left it."""
    chosen, line, button = evaluate.chosen, evaluate.chosen_line, evaluate.open_in_annotate
    annotator, order, query_pick = annotate.annotator, annotate.order, annotate.query_pick

    def on_choose(key):
        def handler(openable, evt: gr.SelectData):
            return mistake_chosen_view(arena, openable, key, evt.index if evt.selected else None)
        return handler

    def on_close(key):
        def handler(openable, page):
            """The preview closed: a page chosen in it is chosen no more (Gradio sends no select)."""
            if page and tuple(page) in {tuple(item) for item in (openable or {}).get(key) or []}:
                return mistake_chosen_view(arena, openable, key, None)
            return gr.skip(), gr.skip(), gr.skip()
        return handler

    for key, gallery in ((A_KEY, evaluate.mistakes_a), (B_KEY, evaluate.mistakes_b)):
        gallery.select(on_choose(key), evaluate.openable, [chosen, line, button], api_visibility="private")
        gallery.preview_close(on_close(key), [evaluate.openable, chosen], [chosen, line, button], api_visibility="private")

    def on_choose_query(openable, evt: gr.SelectData):
        # By the row's query cell, not its index: the table can be sorted by any column in the browser.
        return query_chosen_view(arena, openable, (evt.row_value or [None])[0])

    evaluate.per_query_table.select(on_choose_query, evaluate.openable, [chosen, line, button], api_visibility="private")

    def opened(page, name, order_):
        if not page:
            return tuple(gr.skip() for _ in range(5 + len(annotate.view_outputs)))
        query_id, page_hash = page
        position = (page_position(arena, query_id, page_hash, order_) if page_hash
                    else resume_position(arena, query_id, name, order_))
        listing = gr.update(choices=query_choices(arena, typed_annotator(arena, name)), value=query_id)
        return (gr.Tabs(selected="annotate"), "annotate", listing, query_id,
                *position_and_view(arena, query_id, name, order_, position))

    button.click(opened, [chosen, annotator, order],
                 [tabs, shared.tab_open, query_pick, shared.saved_query, annotate.position, *annotate.view_outputs],
                 api_visibility="private",
                 # The page was scrolled down to the galleries: Annotate opened with its query and
                 # progress above the screen. The focus goes to its tab: it was left on the button,
                 # now hidden, and the next Tab jumped to the page's footer.
                 ).then(None, None, None, api_visibility="private",
                        js="() => { window.scrollTo({top: 0}); document.getElementById('annotate-panel-button')?.focus(); }")


def register_api(arena: Arena) -> None:
    """The API-only endpoint /evaluate: the numbers behind the tab, as JSON."""

    def evaluate_api(annotator: str = "", request: gr.Request = None) -> dict:
        """Metrics of each model against the human labels (annotator's, or the majority vote)."""
        with api_errors(request):
            try:
                labels = given_name(annotator) or None
                return json.loads(json.dumps(arena.evaluations.evaluate(arena.store, labels).to_dict(), default=str))
            except ValueError as error:
                raise refuse(str(error)) from None

    gr.api(evaluate_api, api_name="evaluate")
