"""The Rank tab: uploads and a query in, both models' rankings side by side out (the /rank endpoint)."""

from __future__ import annotations

import functools
import logging
import numbers
import unicodedata
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING

import gradio as gr
import pandas as pd

from .. import ranking
from ..documents import DEFAULT_DPI, IngestOptions
from ..models import A_KEY, B_KEY, get_spec, pixels_to_tokens, tokens_to_pixels
from ..scoring import QueryError, check_text
from ..text_rules import is_blank
from ..store import StoreError
from .annotate_tab import pick_latest, position_and_view
from .arena import PAGE_CLOSED, STOP_PRESSED
from .gpu import GradioProgress
from .speed_notes import device_note
from .text import FROM_THE_PAGE, ShownError, api_errors, escape, markdown, page_label, refuse, shortened

if TYPE_CHECKING:
    from .arena import Arena

logger = logging.getLogger(__name__)

# Gradio refuses a file over this in the browser, with everything selected alongside it; up to
# here the app reads the upload and names each file over its own limit (100 MB), ranking the rest.
MAX_UPLOAD = "200mb"
# What a visitor may type: stored for good and shown to everyone (the newest query opens every
# visitor's Annotate tab), and each special token of a query would cost the model a token.
MAX_QUERY_CHARS = 10_000
GALLERY_SIDE = 512  # px, the longer side of a page in the ranking galleries
# Rankings in progress at once (each may hold an upload's pages: up to 400 MP, 1.2 GB of pixels).
RANK_CONCURRENCY = 3
SAMPLES = Path(__file__).resolve().parents[2] / "data" / "examples" / "sample-pages"
# Queries for the sample pages (data/examples/sample-pages/PROVENANCE.md).
EXAMPLE_QUERIES = {
    "doc_1.jpg": "What share of users per thread were unknown in the FEB11 sample?",
    "doc_4.jpg": "How does average queue length grow with betweenness in the simulation?",
    "doc_9.jpg": "Which region of the SUC2 frequency plot leads to extinction?",
    "doc_0.jpg": "How does surface density change with radius when the spectroscopic fraction correction is applied?",
}


def budget_pixels(key: str, tokens: int | None) -> int | None:
    """Slider value (visual tokens) → max_pixels. The spec's own default stays exact
    (Qwen3RerankerMM's 564,480 px is not a whole number of 32×32 tokens)."""
    spec = get_spec(key)
    if tokens is None:
        return spec.max_pixels
    # As `ModelSpec.check_budget` refuses a fraction of a pixel (the slider steps whole tokens;
    # an API client's 1000.5 was quietly 1000).
    if isinstance(tokens, bool) or not isinstance(tokens, numbers.Real) or not float(tokens).is_integer():
        raise ValueError(f"{spec.label}: image budget must be a whole number of visual tokens, got {tokens!r}")
    if int(tokens) == spec.max_visual_tokens:
        return spec.max_pixels
    return tokens_to_pixels(int(tokens))


def rank_input_problems(files, query, instruction) -> tuple[str | None, str | None, str | None]:
    """What keeps each Rank input (the uploads, the query, the instruction) from being ranked;
    None where nothing does. Checked before the request is queued (shown at the box) and again
    by `rank_pages` (for API clients)."""
    uploads = None if files else "Upload at least one PDF or image (or click an example)."
    texts = []
    for name, text in (("query", query), ("instruction", instruction)):
        problem = None
        if isinstance(text, str) and len(text) > MAX_QUERY_CHARS:
            problem = f"The {name} is {len(text):,} characters long; the app takes at most {MAX_QUERY_CHARS:,}."
        elif name == "query" and not (isinstance(text, str) and not is_blank(text)):
            problem = "The query is empty: type what you are looking for."
        elif text:
            try:
                check_text(text, name)
            except QueryError as error:
                problem = f"{str(error)[0].upper()}{str(error)[1:]}."
            else:
                problem = _control_character(text, name)
        texts.append(problem)
    return uploads, *texts


def _control_character(text: str, name: str) -> str | None:
    """A control character other than tab and line breaks: typed by no one, and stored, it would
    reach whoever reads the text in a terminal (an escape sequence can retitle or clear it)."""
    for position, character in enumerate(text, 1):
        if unicodedata.category(character) == "Cc" and character not in "\t\n\r":
            return (f"The {name} holds a control character (U+{ord(character):04X}) at character {position}; "
                    "remove it.")
    return None


def rank_pages(arena: Arena, files, query: str, instruction: str | None, budget_a: int | None,
               budget_b: int | None, dpi: float | None, progress=None, abandoned=None) -> dict:
    """Score every page of the uploads with both models; store the ranking; return it as data.
    `abandoned()` saying why (Stop pressed, the page closed) stops it: see `ranking.rank`."""
    if problem := next((problem for problem in rank_input_problems(files, query, instruction) if problem), None):
        raise refuse(problem)
    uploads = [_upload(item) for item in files]
    try:  # Gradio keeps the sliders' values in range; a Python caller may not
        options = IngestOptions(dpi=float(dpi or DEFAULT_DPI))
        max_pixels = {key: get_spec(key).check_budget(budget_pixels(key, tokens)) for key, tokens in ((A_KEY, budget_a), (B_KEY, budget_b))}
    except (TypeError, ValueError) as error:
        raise refuse(str(error)) from None
    try:
        result, query_id = ranking.rank_and_save(
            uploads, query, arena.pool, arena.store, arena.images,
            gallery_side=GALLERY_SIDE,
            instruction=instruction,
            ingest_options=options,
            max_pixels=max_pixels,
            progress=GradioProgress(progress) if progress is not None else None,  # gr.Progress() is falsy (len 0)
            ingest_cache=arena.ingested,
            scorer=arena.scoring,
            abandoned=abandoned,
        )
    except QueryError as error:
        raise refuse(str(error)) from None
    except ranking.RankingAbandoned as error:  # Stop, or the page closed: for the caller to say
        logger.info("ranking %r stopped: %s", query[:80], error.why)
        raise
    except (StoreError, ranking.AppStopping) as error:  # e.g. a full disk; a restart
        raise ShownError(error) from None
    except gr.Error:  # already said for people (ZeroGPU's quota message, say)
        raise
    except Exception as error:  # a bug: said in words, where Gradio would show a bare "Error" badge
        logger.exception("ranking %r failed", query[:80])
        raise ShownError(f"The ranking failed: {type(error).__name__}: {error} (the server log has the details).") from None
    return result.as_dict(query_id)


def asking_page(request: gr.Request | None) -> str | None:
    """The session of the browser page that asked for a ranking (its Stop button and its closing
    stop the ranking), or None for an API client. gradio_client keeps a heartbeat too, and its
    end (the client closed, its session reset, the connection dropped) is Gradio's unload: a
    ranking its script still waited for stopped and came back as {"stopped": true}."""
    headers = getattr(request, "headers", None) or {}
    return request.session_hash if request is not None and headers.get("x-gradio-user") == FROM_THE_PAGE else None


def _upload(item) -> str:
    return item if isinstance(item, str) else getattr(item, "name", None) or item["path"]


STOP_LABEL, STOPPING_LABEL = "Stop", "Stopping…"
# What Stop leaves on the status line (a closed page's ranking stops alike, unseen).
STOPPED = ("**Stopped:** nothing of this ranking was stored. The pages already scored are remembered: "
           "ranking the same pages again goes on from where it stopped.")
DETAIL_HINT = "Click a page to see it large with both scores."
# Also gives the status line its height before the first ranking: the progress bar shows over it.
RANK_HINT = "Drop PDFs or images (or click an example), type a query and press Enter or *Rank*."


def show_ranking(arena: Arena, data: dict):
    """The ranking as galleries, headers, agreement and a scatter plot; the page shown large
    before (with the previous ranking's scores) is cleared."""
    if not data or data.get("stopped"):  # nothing ranked yet, or Stop pressed
        return (STOPPED if data else RANK_HINT,) + ("", [], "", [], "", None) + (None, DETAIL_HINT)
    pages = data["pages"]
    ranks = {key: {entry["page"]: entry["rank"] for entry in model["ranking"]} for key, model in data["models"].items()}
    columns = []
    for key, other in ((A_KEY, B_KEY), (B_KEY, A_KEY)):
        model = data["models"].get(key)
        if model is None:
            columns += [f"## {escape(get_spec(key).label)}", []]
            continue
        header = f"## {escape(model['label'])}\n"
        if model["error"]:
            header += f"⚠️ **Unavailable:** {escape(model['error'])}"
            columns += [header, []]
            continue
        rate = model["pages_per_second"]
        stored = model["stored"]
        count = len(model["ranking"])
        header += f"{count} page{'' if count == 1 else 's'}" + (f" ({stored} scored before)" if stored else "")
        header += f" in {model['seconds']:.2f} s" + (f" · {rate:.1f} pages/s" if rate else "")
        header += f"  \n*other* = the page's rank under {escape(get_spec(other).label)}"
        items = []
        for entry in model["ranking"]:
            caption = f"#{entry['rank']} · P(yes) {entry['score']:.3f} · {page_label(pages[entry['page']])}"
            other_rank = ranks.get(other, {}).get(entry["page"])
            if other_rank is not None:
                shift = other_rank - entry["rank"]
                arrow = "=" if shift == 0 else (f"↓{shift}" if shift > 0 else f"↑{-shift}")
                caption += f" · other: #{other_rank} ({arrow})"
            items.append((arena.image_path(entry["content_hash"], GALLERY_SIDE), caption))
        columns += [header, items]
    status = [f"**Query:** {escape(data['query'])}"]
    if data.get("instruction"):
        status.append(f"**Instruction:** {escape(data['instruction'])}")
    if pages:
        status.append(f"{len(pages)} page{'' if len(pages) == 1 else 's'}, read in {data['ingest_seconds']:.2f} s.")
    else:  # the problems below say why, file by file
        status.append("**Nothing was ranked:** no page could be read from the upload.")
    status += [f"⚠️ {escape(problem)}" for problem in data["problems"]]
    status += [f"ℹ️ {escape(note)}" for note in data["notes"]]
    agreement_md, scatter = agreement_view(data)
    return ("\n\n".join(status), *columns, agreement_md, scatter, None, DETAIL_HINT)


def agreement_view(data: dict):
    agreement = data.get("agreement")
    if not agreement:
        return "", None
    pages = data["pages"]
    tau = agreement["kendall_tau"]
    lines = [
        f"**Agreement:** Kendall τ {tau:.2f}" if tau is not None else
        "**Agreement:** Kendall τ undefined (it needs two pages, with unequal scores under each model)",
        # Not for k pages or fewer: both top-k are every page, 100% whatever the models think.
        f"· top-{agreement['k']} overlap {agreement['topk_overlap']:.0%}"
        if agreement["topk_overlap"] is not None else "",
    ]
    text = " ".join(line for line in lines if line)
    if agreement["disagreements"]:
        tag_a, tag_b = get_spec(A_KEY).tag, get_spec(B_KEY).tag
        text += "\n\n**Where they disagree most:** " + "; ".join(
            f"{escape(page_label(pages[d['page']]))} ({tag_a} #{d['rank_a']}, {tag_b} #{d['rank_b']})"
            for d in agreement["disagreements"]
        )
    a, b = data["models"][A_KEY], data["models"][B_KEY]
    # To the 4 places a point's tooltip shows (it gave all 17 digits), as Evaluate's plot does.
    scatter = pd.DataFrame({
        get_spec(A_KEY).label: [round(score, 4) for score in a["scores"]],
        get_spec(B_KEY).label: [round(score, 4) for score in b["scores"]],
        "page": [page_label(page) for page in pages],
    })
    return text, scatter


def select_page(arena: Arena, data: dict, key: str, evt: gr.SelectData):
    """Clicking a gallery item: the page large, with both models' scores and ranks, and the same
    page marked in the other model's gallery (it kept marking the page clicked there before)."""
    if not data or "models" not in data or evt is None or evt.index is None:
        return None, "", gr.skip()
    entry = data["models"][key]["ranking"][evt.index]
    page = data["pages"][entry["page"]]
    lines = [f"**{escape(page_label(page))}**"]
    for model in data["models"].values():
        if model["scores"] is None:
            continue
        rank = next(e["rank"] for e in model["ranking"] if e["page"] == entry["page"])
        lines.append(f"{escape(model['label'])}: P(yes) **{model['scores'][entry['page']]:.4f}**, rank #{rank}")
    other = data["models"].get(B_KEY if key == A_KEY else A_KEY)
    there = next((i for i, e in enumerate(other["ranking"]) if e["page"] == entry["page"]), None) if other else None
    # The alternative text says which page it is: a screen reader heard an unnamed image.
    image = gr.update(value=arena.image_path(entry["content_hash"], 1600), alt_text=page_label(page))
    return image, "\n\n".join(lines), gr.update(selected_index=there)


EXAMPLE_LABEL_LIMIT = 50  # Gradio's own cut for an example label
ALL_SAMPLES_QUERY = "Which region of the SUC2 frequency plot leads to extinction?"


def examples() -> tuple[list[list], list[str]]:
    """The sample uploads with their queries, and a label for each. Labels, not Gradio's table
    of file lists: at phone width the table showed a slice of its file-name column only.
    Gradio cuts a label after 50 characters mid-word, so each is shortened at a word first.
    Each query's page comes between the two sample pages after it: one page alone was no ranking
    to compare, and three keep a first try on a CPU short."""
    every_page = [str(path) for path in sorted(SAMPLES.glob("doc_*.jpg"))]
    rows = []
    for name, query in EXAMPLE_QUERIES.items():
        if str(SAMPLES / name) in every_page:
            at = every_page.index(str(SAMPLES / name))
            after = [every_page[(at + step) % len(every_page)] for step in (1, 2)]
            rows.append(([after[0], every_page[at], after[1]], query))
    labels = [f"{len(files)} pages: {query}" for files, query in rows]
    if every_page:
        rows.append((every_page, ALL_SAMPLES_QUERY))
        labels.append(f"All {len(every_page)} sample pages: {ALL_SAMPLES_QUERY}")
    return [list(row) for row in rows], [shortened(label, EXAMPLE_LABEL_LIMIT) for label in labels]


def example_copies(sample_examples: gr.Examples) -> set[str]:
    """Gradio's copies of the example files in its temporary folder: what a click on an example
    puts in the upload box (the files are each example's first value)."""
    return {file["path"] for processed in sample_examples.non_none_processed_examples.values() for file in processed[0]}


def layout() -> SimpleNamespace:
    """The Rank tab's components: uploads, query and settings; both galleries; the page shown large."""
    spec_a, spec_b = get_spec(A_KEY), get_spec(B_KEY)
    with gr.Tab("Rank", id="rank") as tab:
        # Here, not above the tabs: there it pushed the page to judge ~300 px down on Annotate.
        markdown(
            f"Two 2B multimodal rerankers built on Qwen3-VL, side by side on your own pages: "
            f"**{spec_a.label}** and **{spec_b.label}** (a LoRA on Qwen3-VL-2B-Instruct). "
            "Each page gets P(yes) from each model; judge pages to build training data and to "
            "measure the models against people.\n\n"
            "**Shared with everyone who uses this app:** every ranked page, query and judgment is "
            "kept in its database and shown on the Annotate, Export and Evaluate tabs. Do not upload "
            "confidential documents to a public instance.",
            elem_id="intro",
        )
        markdown(device_note(), elem_id="device-note")
        with gr.Row():
            with gr.Column(scale=2):
                # No file_types: Gradio would refuse the whole upload, unnamed, for one .txt among
                # the PDFs; the app reads each file by its bytes and names the ones it cannot use.
                # A long file list scrolls in its box rather than push the results down.
                files = gr.File(label="PDFs or images", file_count="multiple", height=300, elem_id="uploads")
            with gr.Column(scale=3, elem_id="rank-controls"):
                query = gr.Textbox(label="Query", placeholder="What are you looking for? (Enter ranks)", lines=1, max_lines=4, elem_id="query")
                with gr.Accordion("Instruction and settings", open=False):
                    instruction = gr.Textbox(label=f"Instruction ({spec_a.label} only; {spec_b.label} uses its fixed prompt)",
                                             value=spec_a.default_instruction, lines=2)
                    budget_a = gr.Slider(64, pixels_to_tokens(spec_a.max_pixels_limit), value=spec_a.max_visual_tokens, step=1,
                                         label=f"{spec_a.label}: image budget (visual tokens of 32×32 px)")
                    budget_b = gr.Slider(64, pixels_to_tokens(spec_b.max_pixels_limit), value=spec_b.max_visual_tokens, step=1,
                                         label=f"{spec_b.label}: image budget (visual tokens; default = its card's 564,480 px)")
                    dpi = gr.Slider(72, 300, value=DEFAULT_DPI, step=1, label="PDF render DPI")
                rank_button = gr.Button("Rank", variant="primary", elem_id="rank-button")
                # In the Rank button's place while a ranking runs (static/arena.css): on a CPU one
                # takes minutes, and a visitor who asked for the wrong thing had to close the page.
                stop_button = gr.Button(STOP_LABEL, variant="stop", elem_id="stop-ranking")
                # Right under the Rank button, whatever the length of the file list: the
                # progress shows where the visitor is looking (below the examples, it was
                # off screen at 1400×900).
                status = markdown(RANK_HINT, elem_id="rank-status")
        example_rows, example_labels = examples()
        sample_examples = gr.Examples(example_rows, inputs=[files, query], example_labels=example_labels,
                                      label="Examples (sample pages)", elem_id="examples")
        # Gradio's delete_cache pass (blocks.py) spares only the paths in a rendered component's
        # keep_in_cache; the copies of the sample pages that a click hands out were in none, and
        # after the first pass every example ranked nothing ("could not be read").
        files.keep_in_cache.update(example_copies(sample_examples))
        with gr.Row(equal_height=False):
            with gr.Column():
                header_a = markdown(f"## {spec_a.label}", elem_id="header-a")
                gallery_a = gr.Gallery(label=spec_a.label, columns=3, height="auto", object_fit="contain",
                                       allow_preview=False, buttons=[], elem_id="gallery-a")
            with gr.Column():
                header_b = markdown(f"## {spec_b.label}", elem_id="header-b")
                gallery_b = gr.Gallery(label=spec_b.label, columns=3, height="auto", object_fit="contain",
                                       allow_preview=False, buttons=[], elem_id="gallery-b")
        with gr.Row():
            with gr.Column(scale=3):
                detail_image = gr.Image(label="Selected page", type="filepath", interactive=False, height=520,
                                        buttons=["download", "fullscreen"], elem_id="detail-image")
            with gr.Column(scale=2):
                detail_text = markdown(DETAIL_HINT, elem_id="detail-text")
                agreement = markdown(elem_id="agreement")
                scatter = gr.ScatterPlot(x=spec_a.label, y=spec_b.label, tooltip=["page"], x_lim=[0, 1], y_lim=[0, 1],
                                         label="P(yes): one point per page; dashed, where both models agree", height=320, elem_id="scatter-plot")
    return SimpleNamespace(tab=tab, files=files, query=query, instruction=instruction,
                           budget_a=budget_a, budget_b=budget_b, dpi=dpi, rank_button=rank_button, stop_button=stop_button,
                           status=status, header_a=header_a, gallery_a=gallery_a, header_b=header_b,
                           gallery_b=gallery_b, detail_image=detail_image, detail_text=detail_text,
                           agreement=agreement, scatter=scatter)


# Smooth, unless the person asked their system for less motion.
SCROLLING = "(matchMedia('(prefers-reduced-motion: reduce)').matches ? 'auto' : 'smooth')"

# The results start below the intro, the upload and the examples (~840 px down at 1400×900): a
# finished ranking brings its first model's header into view, unless it is already in view (or
# on another tab, where it has no box). Not when a file could not be read, or nothing was
# ranked: the status line under the Rank button names those files, and scrolled past, it was
# above the window (with nothing ranked, all that showed were empty galleries). The keyboard's
# focus comes along if it is still where the ranking was asked for (static/focus.js).
SHOW_RESULTS = ("(data) => { if (!data || !(data.pages || []).length || (data.problems || []).length) return;"
                " const header = document.querySelector('#header-a');"
                " if (!header || header.getBoundingClientRect().top <= window.innerHeight * 0.6) return;"
                f" header.scrollIntoView({{behavior: {SCROLLING}, block: 'start'}});"
                " window.rerankArenaFocusResults?.(header); }")


def wire(arena: Arena, rank: SimpleNamespace, annotate: SimpleNamespace, shared: SimpleNamespace,
         demo: gr.Blocks) -> None:
    """/rank returns data; a second, private step draws it; a third opens Annotate on the query.
    A page closed or reloaded stops the rankings it asked for."""
    files, query, instruction, budget_a = rank.files, rank.query, rank.instruction, rank.budget_a
    budget_b, dpi, rank_button, status = rank.budget_b, rank.dpi, rank.rank_button, rank.status
    header_a, gallery_a, header_b, gallery_b = rank.header_a, rank.gallery_a, rank.header_b, rank.gallery_b
    detail_image, detail_text, agreement, scatter = rank.detail_image, rank.detail_text, rank.agreement, rank.scatter
    annotator, order, query_pick, jump = annotate.annotator, annotate.order, annotate.query_pick, annotate.jump
    position, view_outputs = annotate.position, annotate.view_outputs
    ranking_state, tab_open, saved_query = shared.ranking_state, shared.tab_open, shared.saved_query
    at_position = functools.partial(position_and_view, arena)

    rank_outputs = [status, header_a, gallery_a, header_b, gallery_b, agreement, scatter, detail_image, detail_text]

    def on_rank(files, query, instruction, budget_a, budget_b, dpi, progress=gr.Progress(),
                request: gr.Request = None) -> dict:
        """Rank uploaded PDFs/images for a query with both models.

        Returns {query, instruction, query_id, pages: [...], models: {key: {label, scores,
        ranking: [{rank, page, score, source, page_number, content_hash}], seconds, scored,
        stored, pages_per_second, error}}, agreement, problems, notes}: `scored` pages ran
        through the model in `seconds`, `stored` ones had a score from an earlier ranking.
        """
        with api_errors(request), arena.rankings.running(asking_page(request)) as ticket:
            try:
                return rank_pages(arena, files, query, instruction, budget_a, budget_b, dpi, progress, ticket)
            except ranking.RankingAbandoned:
                # A result like any other, drawn as such (an error would mark each gallery "Error");
                # the page that closed sees nothing.
                return {"stopped": True}

    def page_closed(request: gr.Request):
        """Gradio's unload: the page's heartbeat ended (closed, reloaded, the connection lost)."""
        if count := arena.rankings.closed(request.session_hash if request else None, PAGE_CLOSED):
            logger.info("a page with %d ranking(s) under way was closed: they stop", count)

    demo.unload(page_closed)

    def stop_pressed(request: gr.Request):
        """The ranking stops at its next progress report (on a CPU, after the page under way:
        up to a minute), and the button says so meanwhile (it did nothing to be seen). Not
        queued: it must not wait behind the rankings it stops."""
        if count := arena.rankings.stop(request.session_hash if request else None, STOP_PRESSED):
            logger.info("Stop pressed: %d ranking(s) stop", count)
            return gr.update(value=STOPPING_LABEL, interactive=False)
        return gr.skip()  # the ranking has just ended: its result is on its way

    rank.stop_button.click(stop_pressed, None, rank.stop_button, queue=False, show_progress="hidden",
                           api_visibility="private")

    def draw_ranking(data):
        status_, header_a_, items_a, header_b_, items_b, *rest = show_ranking(arena, data)
        # New thumbnails in place of the old: none is the page shown large (it was cleared).
        # Stop, hidden again, is as it was for the next ranking.
        return (status_, header_a_, gr.Gallery(items_a, selected_index=None), header_b_,
                gr.Gallery(items_b, selected_index=None), *rest, gr.update(value=STOP_LABEL, interactive=True))

    def rank_inputs_valid(files_, query_, instruction_, budget_a_, budget_b_, dpi_, request: gr.Request = None):
        """Each problem under its box, before the request queues (not an error over the page).
        Gradio queues the ranking once they pass: from then on its page's Stop reaches it."""
        problems = rank_input_problems(files_, query_, instruction_)
        if not any(problems):
            arena.rankings.asked(asking_page(request))
        return [*(gr.validate(problem is None, problem or "") for problem in problems),
                *(gr.validate(True, "") for _ in (budget_a_, budget_b_, dpi_))]

    def picked_latest(data, name, order_, current, tab, shown):
        """The Annotate tab on the query just ranked (unless someone is judging there), remembered
        by the browser as a query picked from the list is (a reload opened the one before)."""
        listing, new_position = pick_latest(arena, data, name, order_, current, tab)
        if not data or data.get("query_id") is None or not isinstance(new_position, int):  # nothing ranked, or kept
            return (listing, *(gr.skip() for _ in (saved_query, position, *view_outputs)))
        return (listing, data["query_id"], *at_position(data["query_id"], name, order_, new_position, shown))

    # One listener for the button and Enter: "once" then holds for both, so Enter followed by a
    # click while the ranking runs does not start a second one (two listeners ran it twice).
    gr.on([rank_button.click, query.submit], on_rank, [files, query, instruction, budget_a, budget_b, dpi],
          ranking_state, validator=rank_inputs_valid, trigger_mode="once",
          # Up to RANK_CONCURRENCY rankings read, render and save at once; their
          # model work takes turns (Arena.scoring), so a slow upload holds up no one.
          api_name="rank", concurrency_id="rank", concurrency_limit=RANK_CONCURRENCY,
          # The progress bar shows on these: the event's own output is the hidden JSON.
          show_progress_on=[status, gallery_a, gallery_b], api_visibility="public",
          ).then(draw_ranking, ranking_state, [*rank_outputs, rank.stop_button], api_visibility="private",
                 ).then(None, ranking_state, None, js=SHOW_RESULTS, api_visibility="private",
                        ).then(picked_latest, [ranking_state, annotator, order, query_pick, tab_open, jump],
                               [query_pick, saved_query, position, *view_outputs], api_visibility="private")

    def on_select(key):
        def handler(data, evt: gr.SelectData):
            return select_page(arena, data, key, evt)
        return handler

    # Below the galleries (far below, at phone width): brought into view when off screen, with the
    # focus of a thumbnail chosen by keyboard (left on it, off screen, the next Tab went on
    # through the other gallery before it reached the page shown).
    show_detail = ("() => { const box = document.querySelector('#detail-image');"
                   " if (!box || box.getBoundingClientRect().top <= window.innerHeight * 0.6) return;"
                   f" box.scrollIntoView({{behavior: {SCROLLING}, block: 'start'}});"
                   " const text = document.querySelector('#detail-text');"
                   " if (text && document.activeElement?.closest('#gallery-a, #gallery-b')) {"
                   " text.setAttribute('tabindex', '-1'); text.focus({preventScroll: true}); } }")
    # Progress on the large view only: on the other gallery (an output, for its mark) it blanked it.
    gallery_a.select(on_select(A_KEY), ranking_state, [detail_image, detail_text, gallery_b], api_visibility="private",
                     show_progress_on=[detail_image]).then(None, None, None, js=show_detail, api_visibility="private")
    gallery_b.select(on_select(B_KEY), ranking_state, [detail_image, detail_text, gallery_a], api_visibility="private",
                     show_progress_on=[detail_image]).then(None, None, None, js=show_detail, api_visibility="private")
