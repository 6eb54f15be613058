"""The Annotate tab: judge a stored query's pages, keyboard first (static/shortcuts.js), in the
order chosen; the /judge and /undo endpoints' work."""

from __future__ import annotations

import functools
import logging
import os
from types import SimpleNamespace
from typing import TYPE_CHECKING, NamedTuple

import gradio as gr

from ..models import A_KEY, B_KEY, MODELS, get_spec
from ..store import CLEARED, LABELS, LabelChanged, StoreError
from . import guidelines
from .annotators import annotator_name, login_required, signed_in, typed_annotator
from .text import ShownError, api_errors, distinct_names, escape, markdown, refuse, shortened, stored_page_label

if TYPE_CHECKING:
    from .arena import Arena

logger = logging.getLogger(__name__)

LABEL_NAMES = {"relevant": "Relevant", "not_relevant": "Not relevant", "skip": "Skipped", "cleared": "Unjudged"}
SHORTCUTS_KEY = "rerank-arena-shortcuts"  # the browser's localStorage key of the switch (static/shortcuts.js too)
ORDERS = ("Most informative first", f"{get_spec(A_KEY).label} rank", f"{get_spec(B_KEY).label} rank", "Upload order")
# After a judgment the query list's counts are redrawn only in a workspace of at most this many
# queries: the browser gets and redraws every entry (at 3,000 queries a judging key took 0.65 s
# instead of 0.2). Larger lists catch up on Refresh list, another query or another name; the
# progress line above the page always shows the query's count.
LIVE_QUERY_LIST = 300
PAGE_SIDE = 1600  # px: the longer side of the page shown to judge
# After the judgment that leaves no page unjudged, the page stays on screen and a label is not
# taken until the annotator moves: the next key of the rhythm relabelled the page just judged.
FINISHED_KEYS = ("Q opens the next query to judge; U undoes the last label; ← or → go back over the pages, "
                 "where a key changes the label of the page shown")


def listed_queries(arena: Arena, annotator: str | None) -> list:
    """The stored queries as the Annotate list shows them, newest first, with `annotator`'s
    counts (anyone's without a name)."""
    return list(reversed(arena.store.list_queries(annotator or None)))


def query_choices(arena: Arena, annotator: str | None, summaries: list | None = None) -> list[tuple[str, int]]:
    """The Annotate list's entries; `summaries`: `listed_queries`, where the caller has them."""
    summaries = summaries if summaries is not None else listed_queries(arena, annotator)
    names = distinct_names({s.id: shortened(s.text, 90) + s.instruction_tag for s in summaries})
    # The count first: a narrow list cuts the end of a long query, and the count is what an
    # annotator scans for.
    return [(f"{summary.judged}/{summary.pages} judged — {names[summary.id]}", summary.id) for summary in summaries]


def query_list_after_judging(arena: Arena, name: str | None):
    """The query list with its new counts (one aggregate query over the store: 60–85 ms at 4,000
    queries and 80,000 judgments), in a workspace of at most LIVE_QUERY_LIST queries; else as it is."""
    if arena.store.query_count() > LIVE_QUERY_LIST:
        return gr.skip()
    return gr.update(choices=query_choices(arena, typed_annotator(arena, name)))


def page_order(pages, order: str) -> list:
    if order == ORDERS[1] or order == ORDERS[2]:
        key = A_KEY if order == ORDERS[1] else B_KEY
        return sorted(pages, key=lambda p: (p.ranks.get(key, 10**9), p.position))
    if order == ORDERS[3]:
        return sorted(pages, key=lambda p: p.position)

    # Most informative first: where the models disagree most, then the top of either ranking.
    def informativeness(page):
        a, b = page.ranks.get(A_KEY), page.ranks.get(B_KEY)
        gap = abs(a - b) if a is not None and b is not None else 0
        return (-gap, min(r for r in (a, b, 10**9) if r is not None), page.position)

    return sorted(pages, key=informativeness)


class PageView(NamedTuple):
    """What the Annotate tab draws of one page (the first four are components' values)."""

    image: dict
    info: str
    progress: str
    number: dict
    page_hash: str | None
    total: int
    label: str | None = None  # the annotator's label of the page (CLEARED: none); None without a name
    finished: bool = False  # the annotator has judged every page, and this view is the one the last judgment brought


def annotate_view(arena: Arena, query_id, annotator: str | None, order: str, position: int,
                  after_judgment: bool = False) -> PageView:
    """The page at `position` (in the chosen order) of a stored query, for this annotator.
    `after_judgment`: the view a judgment brings (it says so when that judgment was the last)."""
    if query_id in (None, ""):
        return PageView(gr.update(value=None, label="Page"),
                        "Rank something on the **Rank** tab, or pick a stored query above.", "", gr.update(value=1), None, 0)
    query_id = int(query_id)
    pages = page_order(arena.store.query_pages(query_id), order)
    if not pages:
        return PageView(gr.update(value=None, label="Page"), "This query has no pages.", "", gr.update(value=1), None, 0)
    position = max(0, min(int(position or 0), len(pages) - 1))
    page = pages[position]
    labels = arena.store.current_labels(query_id, annotator) if annotator else {}
    summary = arena.store.query(query_id)
    # Without a name, anyone's count, as the query list shows it then; with one, theirs.
    judged = sum(1 for p in pages if labels.get(p.page_hash) not in (None, "cleared")) if annotator else summary.judged
    # Whose? Nobody's yet (the name is typed, or comes from the login).
    current = (LABEL_NAMES.get(labels.get(page.page_hash), "Unjudged") if annotator
               else "not signed in" if login_required() else "no name yet")
    scores = " · ".join(
        f"{escape(get_spec(key).label)}: P(yes) {page.scores[key]:.3f} (#{page.ranks[key]})"
        for key in MODELS if key in page.scores
    )
    instruction = f"*Instruction:* {escape(summary.instruction)}\n\n" if summary.instruction else ""
    info = (
        f"**{escape(summary.text)}**\n\n{instruction}"
        f"Page {position + 1} of {len(pages)} · {escape(stored_page_label(page))} · "
        f"current label: **{current}**\n\n{scores}"
    )
    progress = f"**{judged}/{len(pages)} judged** by {escape(annotator)}" if annotator else (
        f"**{judged}/{len(pages)} judged** by anyone · " + ("sign in to judge" if login_required() else "type your name above to judge"))
    finished = bool(annotator) and judged == len(pages) and after_judgment
    if finished:  # the next key is refused (`on_action`): reflexes after the last page relabelled pages
        progress += f" · ✓ every page judged: {FINISHED_KEYS}"
    elif annotator and judged == len(pages):  # else the next key quietly relabels the page shown
        progress += (" · ✓ every page judged: a key now changes the label of the page shown; "
                     "Q opens the next query to judge")
    # The image's own label repeats where the annotator is: in full screen it is all they see
    # while the keys judge and move on.
    # The page a judgment here brings next (else the next page) is made ready meanwhile: made in
    # the judgment's own request, its JPEG took 13–147 ms of each key's wait.
    coming = _unjudged_after(pages, labels, position) if annotator else None
    coming = coming if coming not in (None, position) else position + 1
    if coming < len(pages):
        arena.images.ahead(pages[coming].page_hash, PAGE_SIDE)
    image = gr.update(value=arena.image_path(page.page_hash, PAGE_SIDE),
                      label=f"Page {position + 1} of {len(pages)} · {current} · {judged}/{len(pages)} judged · "
                            f"“{shortened(summary.text, 60)}{summary.instruction_tag}”",  # in full screen, the query too
                      alt_text=f"{stored_page_label(page)} ({position + 1} of {len(pages)} in this order)")
    label = labels.get(page.page_hash, CLEARED) if annotator else None
    return PageView(image, info, progress, gr.update(value=position + 1), page.page_hash, len(pages), label, finished)


def page_view(arena: Arena, query_id, name: str | None, order: str, position: int, shown=None,
              after_judgment: bool = False) -> PageView:
    """`annotate_view` for the name as typed. The page-number box (`shown`: its value when the
    event began) is left alone when it already shows this page: a view update arriving while
    someone types a number there would overwrite what they typed."""
    view = annotate_view(arena, query_id, typed_annotator(arena, name), order, position, after_judgment)
    if shown is not None and view.number["value"] == shown:
        view = view._replace(number=gr.skip())
    return view


def judge(arena: Arena, query_id: int, page_hash: str, annotator: str, label: str,
          profile: gr.OAuthProfile | None = None, expected: str | None = None) -> dict:
    """Record one judgment (append-only) and return the page's label and the annotator's progress.
    `profile`: the signed-in user, if any (see `annotator_name`); `expected`: the label the
    annotator saw (`Store.record_judgment`: LabelChanged where it is another now)."""
    annotator = annotator_name(annotator, profile)
    if label not in LABELS:  # what an annotator can choose (not "cleared": that is undo's)
        raise refuse(f"label must be one of {', '.join(LABELS)} (got {label!r})")
    query_id = _query_id(query_id)
    if not isinstance(page_hash, str) or not page_hash.strip():
        raise refuse(f"page_hash must be a page's content_hash (as /rank returns it), got {page_hash!r}")
    try:
        annotator = arena.store.known_annotator(annotator)
        arena.store.record_judgment(query_id, page_hash, annotator, label, expected=expected)
        judged, total = arena.store.progress(query_id, annotator)
    except LabelChanged:
        raise
    except (ValueError, KeyError) as error:  # no such query, or a page it did not rank
        raise refuse(_message(error)) from None
    except StoreError as error:  # e.g. a full disk, the file removed
        raise ShownError(error) from None
    return dict(query_id=query_id, page_hash=page_hash, annotator=annotator, label=label, judged=judged, total=total)


def undo(arena: Arena, query_id: int, annotator: str, profile: gr.OAuthProfile | None = None) -> dict:
    """Undo the annotator's latest judgment on this query (adds a row; history is kept)."""
    annotator = annotator_name(annotator, profile)
    query_id = _query_id(query_id)
    try:
        annotator = arena.store.known_annotator(annotator)
        undone = arena.store.undo(query_id, annotator)
        judged, total = arena.store.progress(query_id, annotator)
    except (ValueError, KeyError) as error:  # no such query
        raise refuse(_message(error)) from None
    except StoreError as error:  # e.g. a full disk
        raise ShownError(error) from None
    return dict(
        undone=None if undone is None else dict(page_hash=undone.page_hash, undone_label=undone.undone_label,
                                                restored_label=undone.restored_label),
        judged=judged, total=total,
    )


def _message(error: Exception) -> str:
    """An error's text for a person: a KeyError's str() is its key in quotes."""
    return str(error.args[0]) if isinstance(error, KeyError) and error.args else str(error)


def _query_id(value) -> int:
    """A query id as typed by an API client ("12" will do), or a message saying what it must be
    (1.9 or True were taken as query 1)."""
    if isinstance(value, float) and value.is_integer():  # a number box's 3.0
        value = int(value)
    whole = isinstance(value, int) and not isinstance(value, bool) or isinstance(value, str) and value.strip().isdigit()
    if not whole or not 0 < int(value) < 2**63:
        raise refuse(f"query_id must be the number of a ranked query (the query_id /rank returns), got {value!r}")
    return int(value)


def next_position(arena: Arena, query_id: int, annotator: str, order: str, position: int, pages=None) -> int:
    """After a judgment: the next unjudged page in this order (wrapping), else the same page (the
    next one, judged earlier, looked like the next of the stream, and a reflex key relabelled it).
    `pages`: the query's pages in this order, where the caller has them."""
    pages = pages if pages is not None else page_order(arena.store.query_pages(int(query_id)), order)
    found = _unjudged_after(pages, arena.store.current_labels(int(query_id), annotator), position)
    return found if found is not None else position


def resume_position(arena: Arena, query_id, annotator: str | None, order: str) -> int:
    """Where an annotator (re)opens a query: the first page in this order they have not judged;
    the first page without a name, or when they have judged every page."""
    annotator = typed_annotator(arena, annotator)
    if query_id in (None, "") or not annotator:
        return 0
    pages = page_order(arena.store.query_pages(int(query_id)), order)
    return _unjudged_after(pages, arena.store.current_labels(int(query_id), annotator), -1) or 0


def annotate_action(arena: Arena, action: str, query_id, name: str | None, order: str, position: int,
                    page_hash: str | None, total: int, profile: gr.OAuthProfile | None = None,
                    expected: str | None = None) -> tuple[int, bool]:
    """One Annotate button or key: "previous", "next", "undo" or a label for `page_hash` (the
    page on screen, whose label the annotator saw as `expected`, if given: LabelChanged where it
    is another now). Returns the position to show next (in `order`) and whether judged counts
    changed; a judgment moves on to the next page this annotator has not judged."""
    pages = page_order(arena.store.query_pages(int(query_id)), order) if query_id not in (None, "") else []
    # Moves go on from the page on screen: a jump or a new order may not have reached the browser.
    position = next((i for i, p in enumerate(pages) if p.page_hash == page_hash), position)
    if action == "previous":
        return max(0, position - 1), False
    if action == "next":  # the pages as they are now: another upload of the question may have added some
        return min(position + 1, (len(pages) or total) - 1), False
    if query_id in (None, "") or (page_hash is None and action != "undo"):
        raise refuse("Pick a query first.")
    if action == "undo":
        undone = undo(arena, query_id, name, profile)["undone"]
        if undone is None:
            gr.Info("Nothing to undo.")
            return position, False
        return next(i for i, p in enumerate(pages) if p.page_hash == undone["page_hash"]), True
    judged = judge(arena, query_id, page_hash, name, action, profile, expected)
    return next_position(arena, query_id, judged["annotator"], order, position, pages), True


def jump_position(arena: Arena, query_id, number, total) -> int:
    """The position of page `number` (1-based; past the end: the last page), counted on the
    query's pages now: the browser's `total` may predate another upload of the same question."""
    count = arena.store.query(int(query_id)).pages if query_id not in (None, "") else int(total or 1)
    return max(0, min(int(number or 1), max(count, 1)) - 1)


def next_query_to_judge(arena: Arena, query_id, annotator: str | None, listed: list | None = None) -> int | None:
    """The query after `query_id` in the list's order (newest first, wrapping round) with a page
    `annotator` has not judged (without a name: a page nobody has judged); None when no other
    query has one. With no query open, the first such query in the list. `listed`:
    `listed_queries`, where the caller has them."""
    listed = listed if listed is not None else listed_queries(arena, annotator)
    ids = [summary.id for summary in listed]
    current = int(query_id) if query_id not in (None, "") else None
    start = ids.index(current) if current in ids else -1
    for step in range(1, len(listed) + 1):
        summary = listed[(start + step) % len(listed)]
        if summary.id != current and summary.judged < summary.pages:
            return summary.id
    return None


def first_to_judge(arena: Arena, query_id: int, annotator: str | None, order: str) -> int:
    """Where "Next query to judge" opens a query: the first page in this order `annotator` has
    not judged; without a name, the first page nobody has judged (0 when there is none)."""
    if typed_annotator(arena, annotator):
        return resume_position(arena, query_id, annotator, order)
    pages = page_order(arena.store.query_pages(int(query_id)), order)
    judged = {page_hash: "judged" for page_hash in arena.store.labels_by_annotator(int(query_id))}
    return _unjudged_after(pages, judged, -1) or 0


def page_position(arena: Arena, query_id: int, page_hash: str, order: str) -> int:
    """Where a query's page is in this order (0: a page no longer among the query's)."""
    pages = page_order(arena.store.query_pages(int(query_id)), order)
    return next((i for i, page in enumerate(pages) if page.page_hash == page_hash), 0)


def _unjudged_after(pages: list, labels: dict[str, str], position: int) -> int | None:
    """The first of `pages` after `position` (wrapping) without a label in `labels`, or None."""
    for step in range(1, len(pages) + 1):
        candidate = (position + step) % len(pages)
        if labels.get(pages[candidate].page_hash) in (None, "cleared"):
            return candidate
    return None


def pick_latest(arena: Arena, data: dict, annotator: str | None = None, order: str = ORDERS[0],
                 current=None, tab_open: str = "rank"):
    """After ranking, the Annotate tab opens on that query, where the annotator would resume it;
    but someone judging on the Annotate tab as it finishes stays on their page (the new query
    joins the list): switched under them, they lost their place, and a key meant for their page
    met the new one."""
    if not data or data.get("query_id") is None:
        return gr.update(), 0
    choices = query_choices(arena, typed_annotator(arena, annotator))
    if tab_open == "annotate" and current not in (None, ""):
        return gr.update(choices=choices), gr.skip()
    return gr.update(choices=choices, value=data["query_id"]), resume_position(arena, data["query_id"], annotator, order)


def layout() -> SimpleNamespace:
    """The Annotate tab's components: annotator, order, query list; the page to judge and its buttons."""
    with gr.Tab("Annotate", id="annotate", elem_id="annotate-panel") as tab:
        with gr.Row():
            if login_required():  # the name comes from the Hugging Face login, not the keyboard
                annotator = gr.Textbox(label="Signed in as", placeholder="sign in to judge", max_lines=1,
                                       interactive=False, elem_id="annotator", scale=2, min_width=200)
            else:
                annotator = gr.Textbox(label="Your name (remembered by this browser)", max_lines=1, elem_id="annotator", scale=2,
                                       min_width=200)
            if os.environ.get("OAUTH_CLIENT_ID"):  # a Space with `hf_oauth: true`
                gr.LoginButton()
            # A dropdown, not a radio: at phone width the four choices stacked into four lines
            # and pushed the judging buttons below the first screen.
            order = gr.Dropdown(list(ORDERS), value=ORDERS[0], label="Order", filterable=False, scale=2,
                                min_width=200, elem_id="annotate-order")
        with gr.Row(elem_id="query-row"):  # one row at phone width too (arena.css)
            query_pick = gr.Dropdown(label="Query (newest first), each after its pages judged/total: yours once your name is in, "
                                           "else anyone's", choices=[], scale=5, elem_id="query-pick")
            refresh = gr.Button("↻ Refresh list", scale=1, elem_id="refresh-list")
        with gr.Row():
            with gr.Column(scale=3):
                # No share button: one click would post a page of this workspace publicly.
                annotate_image = gr.Image(label="Page", type="filepath", interactive=False, height=720,
                                          buttons=["download", "fullscreen"], elem_id="annotate-image")
            with gr.Column(scale=2, elem_id="judge-column"):  # above the page at phone width (arena.css)
                annotate_progress = markdown(elem_id="annotate-progress")
                annotate_info = markdown(elem_id="annotate-info")
                # Two a row at phone width too (min_width): one a row put the page a screen lower.
                with gr.Row():
                    relevant = gr.Button("Relevant (R)", variant="primary", elem_id="judge-relevant", min_width=100)
                    not_relevant = gr.Button("Not relevant (N)", variant="stop", elem_id="judge-not-relevant",
                                             min_width=100)
                with gr.Row():
                    skip = gr.Button("Skip (S)", elem_id="judge-skip", min_width=100)
                    undo_button = gr.Button("Undo (U)", elem_id="judge-undo", min_width=100)
                with gr.Row():
                    previous = gr.Button("◀ Previous (←)", elem_id="nav-prev", min_width=100)
                    following = gr.Button("Next (→) ▶", elem_id="nav-next", min_width=100)
                # No minimum or maximum: Gradio would refuse 0 or 11 with an error over the
                # whole panel; the jump itself clamps to the pages there are.
                with gr.Row(equal_height=True):
                    jump = gr.Number(1, label="Jump to page (Enter)", precision=0, elem_id="jump", min_width=100)
                    # The list's next query with a page this annotator has not judged: after the
                    # last page of a query, the next step (it was: open the list, scan the counts).
                    next_query = gr.Button("Next query to judge (Q)", elem_id="next-query", min_width=100)
                # Off for a screen reader's browse mode or speech input, which use letters too
                # (WCAG 2.1.4); the browser remembers it (static/shortcuts.js reads it there).
                shortcuts = gr.Checkbox(True, label="Keyboard shortcuts (R, N, S, U, ←, →, Q)", elem_id="shortcuts-on")
                guidelines_box = guidelines.layout()
        position = gr.State(0)
        # "query id page hash" of the page on screen: what a key judges. A hidden box, not a
        # gr.State: a State lives on the server, which had set it to the next page while the
        # browser still showed this one (a key pressed after choosing a query, an order or a
        # page number judged a page not yet on screen); the box's value is the browser's.
        shown_page = gr.Textbox(visible=False, elem_id="shown-page")
        page_total = gr.State(0)
    # What draws the page to judge (`view_values`), and what it reads.
    view_inputs = [query_pick, annotator, order, position, jump]
    view_outputs = [annotate_image, annotate_info, annotate_progress, jump, shown_page, page_total]
    return SimpleNamespace(tab=tab, annotator=annotator, order=order, query_pick=query_pick,
                           refresh=refresh, annotate_image=annotate_image, annotate_progress=annotate_progress,
                           annotate_info=annotate_info, relevant=relevant, not_relevant=not_relevant,
                           skip=skip, undo_button=undo_button, previous=previous, following=following,
                           next_query=next_query, jump=jump, shortcuts=shortcuts, guidelines_box=guidelines_box,
                           position=position, shown_page=shown_page, page_total=page_total,
                           view_inputs=view_inputs, view_outputs=view_outputs)


class OnScreen(NamedTuple):
    """The page on screen, as `view_values` wrote it in the hidden box (a judgment is for it)."""

    query_id: str = ""  # "" for none
    page_hash: str = ""
    label: str | None = None  # the label the annotator sees (CLEARED: none); None: without a name
    finished: bool = False  # PageView.finished: a label is not taken on this view

    def __str__(self) -> str:
        return " ".join([self.query_id, self.page_hash, self.label or "-", *(["finished"] if self.finished else [])])

    @classmethod
    def parse(cls, text: str | None) -> OnScreen:
        query_id, page_hash, label, *flags = [*(text or "").split(), "", "", ""][:4]
        return cls(query_id, page_hash, None if label in ("", "-") else label, "finished" in flags)


def view_values(arena: Arena, query_id, name, order_, position_, shown=None, after_judgment: bool = False):
    """The Annotate tab's page view (its `view_outputs`): ranking updates it too."""
    view = page_view(arena, query_id, name, order_, position_, shown, after_judgment)
    on_screen = "" if view.page_hash is None else str(OnScreen(str(int(query_id)), view.page_hash, view.label, view.finished))
    return (view.image, view.info, view.progress, view.number, on_screen, view.total)


def on_screen_parts(on_screen: str | None) -> tuple[str, str]:
    """(query id, page hash) of the page on screen, as `view_values` wrote them ("" for none)."""
    parsed = OnScreen.parse(on_screen)
    return parsed.query_id, parsed.page_hash


def position_of_shown(arena: Arena, query_id, order: str, on_screen: str | None, position: int) -> int:
    """Where the page on screen (`on_screen`: "<query id> <page hash>") stands in `order` now, if
    it is a page of `query_id`; else `position`."""
    screen_query, page_hash = on_screen_parts(on_screen)
    if not page_hash or query_id in (None, "") or screen_query != str(query_id):
        return position
    pages = page_order(arena.store.query_pages(int(query_id)), order)
    return next((i for i, page in enumerate(pages) if page.page_hash == page_hash), position)


def position_and_view(arena: Arena, query_id, name, order_, position_, shown=None):
    """The position and the page view there."""
    # Every event that moves the Annotate tab draws the page in the same event, never in a
    # `.then` step: the browser ignores the judging keys and buttons while a view is on its
    # way (static/shortcuts.js), which it can tell only while one event covers it. A view
    # drawn in a second step, before a judgment made between the steps, arrived after it
    # and showed the old count.
    return (position_, *view_values(arena, query_id, name, order_, position_, shown))


def wire(arena: Arena, annotate: SimpleNamespace, shared: SimpleNamespace, demo: gr.Blocks) -> None:
    """Judging, moving, choosing a query, order or name; the guidelines; the page load."""
    annotator, order, query_pick, refresh = annotate.annotator, annotate.order, annotate.query_pick, annotate.refresh
    relevant, not_relevant, skip = annotate.relevant, annotate.not_relevant, annotate.skip
    undo_button, previous, following = annotate.undo_button, annotate.previous, annotate.following
    jump = annotate.jump
    position, shown_page, page_total = annotate.position, annotate.shown_page, annotate.page_total
    view_inputs, view_outputs = annotate.view_inputs, annotate.view_outputs
    saved_name, saved_query, saved_order = shared.saved_name, shared.saved_query, shared.saved_order
    view, at_position = functools.partial(view_values, arena), functools.partial(position_and_view, arena)

    def refresh_choices(name, current):
        choices = query_choices(arena, typed_annotator(arena, name))
        values = [value for _, value in choices]
        return gr.update(choices=choices, value=current if current in values else (values[0] if values else None))

    # Judging, undo and page turning are ONE event listener that updates the position and the
    # page on screen together. (As separate listeners, each followed by a view update, a key
    # pressed before the screen changed sent the old page's id: "r" then "n" relabelled a
    # page, and a position moved ahead of its page skipped one.) A press while an action is
    # running is ignored (trigger mode "once"): nobody can mean a page not yet on screen.
    # The Order list too, though never changed here: an output is covered while the event runs,
    # and an order chosen meanwhile was drawn, then the judgment's view in the old order over it.
    moved_outputs = [position, *view_outputs, query_pick, order]
    actions = ((relevant, "relevant"), (not_relevant, "not_relevant"), (skip, "skip"),
               (undo_button, "undo"), (previous, "previous"), (following, "next"))

    def moved_to(query_id, name, order_, new_position, shown=None, counts_changed=False, after_judgment=False):
        """The page at `new_position`; after a judgment or an undo, the query list too."""
        listing = query_list_after_judging(arena, name) if counts_changed else gr.skip()
        return (new_position, *view(query_id, name, order_, new_position, shown, after_judgment), listing, gr.skip())

    def on_action(query_id, name, order_, position_, shown, on_screen, total, event: gr.EventData,
                  profile: gr.OAuthProfile | None = None, request: gr.Request = None):
        profile = signed_in(profile, request)
        action = next(action for button, action in actions if button is event.target)
        screen = OnScreen.parse(on_screen)
        if screen.query_id and query_id not in (None, "") and int(screen.query_id) != int(query_id):
            # The list names a query whose page is not on screen yet (the view follows the
            # choice): a key pressed now judged the old query's page under the new query.
            return tuple(gr.skip() for _ in moved_outputs)
        if screen.finished and action in LABELS:
            gr.Info(f"Every page of this query is judged, so nothing was recorded: {FINISHED_KEYS}.")
            return tuple(gr.skip() for _ in moved_outputs)
        try:
            new_position, counts_changed = annotate_action(arena, action, query_id, name, order_, int(position_ or 0),
                                                           screen.page_hash or None, int(total or 1), profile,
                                                           expected=screen.label)
        except LabelChanged as changed:  # in another tab or window: the page is drawn as it is now
            gr.Info(f"This page's label was changed meanwhile, in another tab or window, to {LABEL_NAMES[changed.current]}: "
                    "nothing was recorded, and the page is shown as it is now. Press again to change its label.")
            return moved_to(query_id, name, order_, position_of_shown(arena, query_id, order_, on_screen, position_),
                            shown, counts_changed=True)
        except gr.Error as error:
            # A toast over the page, which stays as it was: raised, the error would blank the
            # page and mark every panel "Error" until the next action.
            if error.print_exception:  # not a refusal of what the person did: the server failed
                logger.exception("annotating failed: %s", error.message)
            gr.Warning(error.message)
            return tuple(gr.skip() for _ in moved_outputs)
        return moved_to(query_id, name, order_, new_position, shown, counts_changed, after_judgment=action in LABELS)

    gr.on([button.click for button, _ in actions], on_action, [*view_inputs, shown_page, page_total], moved_outputs,
          trigger_mode="once", api_visibility="private")
    # The box is always redrawn: it shows the page's number, not what was typed ("2.7", "99").
    jump.submit(lambda q, name, o, value, total: moved_to(q, name, o, jump_position(arena, q, value, total)),
                [query_pick, annotator, order, jump, page_total], moved_outputs, api_visibility="private")
    # A query (re)opens where this annotator left it: at the first page they have not judged.
    def resumed(query_id, name, order_, shown):
        return at_position(query_id, name, order_, resume_position(arena, query_id, name, order_), shown)

    def picked(query_id, name, order_, shown, on_screen):
        """A choice from the list, by mouse or by keyboard: `input` (Enter sends no `select`). The
        list also sends it when it merely closes, and a click sends it twice: the query already
        on screen is left as it is (and where the annotator is in it)."""
        if query_id in (None, "") or on_screen_parts(on_screen)[0] == str(query_id):
            return tuple(gr.skip() for _ in range(2 + len(view_outputs)))
        return (query_id, *resumed(query_id, name, order_, shown))

    query_pick.input(picked, [query_pick, annotator, order, jump, shown_page], [saved_query, position, *view_outputs],
                     trigger_mode="always_last", api_visibility="private")

    def next_to_judge(query_id, name, order_, shown):
        """The next query in the list with a page this annotator (without a name: anyone) has
        not judged, at the first such page; the list with fresh counts, its choice on that query."""
        annotator_ = typed_annotator(arena, name)
        listed = listed_queries(arena, annotator_)  # once, for the choice and the list's counts
        target = next_query_to_judge(arena, query_id, annotator_, listed)
        if target is None:
            gr.Info("No other query has a page " + ("you have not judged." if annotator_ else "nobody has judged."))
            return tuple(gr.skip() for _ in range(3 + len(view_outputs)))
        return (gr.update(choices=query_choices(arena, annotator_, listed), value=target), target,
                *at_position(target, name, order_, first_to_judge(arena, target, name, order_), shown))

    # "once": a second Q while the first query opens would skip a query nobody saw.
    annotate.next_query.click(next_to_judge, [query_pick, annotator, order, jump],
                              [query_pick, saved_query, position, *view_outputs], trigger_mode="once",
                              api_visibility="private")
    # `input`: a choice by the person (the page load setting the remembered order is none).
    order.input(lambda q, name, o, shown: (o, *resumed(q, name, o, shown)), [query_pick, annotator, order, jump],
                [saved_order, position, *view_outputs], api_visibility="private")

    def refreshed(query_id, name, order_, position_, shown, on_screen):
        """The query list with this annotator's counts, and the page view: the page on screen
        (`on_screen`), wherever it now stands in the order (another upload of the question may
        have added pages before it: the same position was another page, and the next key
        judged it unseen)."""
        listing = refresh_choices(name, query_id)
        position_ = position_of_shown(arena, listing["value"], order_, on_screen, position_)
        return (listing, *at_position(listing["value"], name, order_, position_, shown))

    def name_entered(name, saved, query_id, order_, position_, shown, on_screen):
        """Remember the name; another annotator's name resumes their own progress."""
        if (name or "").strip() != (saved or "").strip():
            position_, on_screen = resume_position(arena, query_id, name, order_), None
        listing, position_, *drawn = refreshed(query_id, name, order_, position_, shown, on_screen)
        return (name, position_, listing, *drawn)

    # Enter applies the name as leaving the box does.
    gr.on([annotator.blur, annotator.submit], name_entered,
          [annotator, saved_name, query_pick, order, position, jump, shown_page],
          [saved_name, position, query_pick, *view_outputs], api_visibility="private")
    refresh.click(refreshed, [*view_inputs, shown_page], [query_pick, position, *view_outputs], api_visibility="private")
    guidelines.wire(arena, annotate.guidelines_box, annotator, demo)

    def restore(name, query_id, order_, profile: gr.OAuthProfile | None = None):
        """On page load: the annotator (Hugging Face login, else the remembered name), the
        query and order, and the first page of it they have not judged."""
        order_ = order_ if order_ in ORDERS else ORDERS[0]  # an order renamed since
        if profile is not None:
            name = profile.username
        elif login_required():
            name = ""  # a name remembered from before the Space required login is not the visitor's
        choices = query_choices(arena, typed_annotator(arena, name))
        values = [value for _, value in choices]
        query_id = query_id if query_id in values else (values[0] if values else None)
        return (name, gr.update(choices=choices, value=query_id), order_,
                *at_position(query_id, name, order_, resume_position(arena, query_id, name, order_)))

    demo.load(restore, [saved_name, saved_query, saved_order], [annotator, query_pick, order, position, *view_outputs],
              api_visibility="private")
    # The shortcuts' switch lives in the browser alone: the keys are handled there. Where the
    # browser refuses storage (a frame sandboxed without same-origin: localStorage throws), the
    # switch holds in this tab only (shortcuts.js reads window.rerankArenaShortcutsOn then).
    annotate.shortcuts.input(None, annotate.shortcuts, None, api_visibility="private",
                             js=f"(on) => {{ window.rerankArenaShortcutsOn = on; "
                                f"try {{ localStorage.setItem('{SHORTCUTS_KEY}', on ? 'on' : 'off'); }} catch {{}} }}")
    demo.load(None, None, annotate.shortcuts, api_visibility="private",
              js=f"() => {{ try {{ return localStorage.getItem('{SHORTCUTS_KEY}') !== 'off'; }} catch {{ return true; }} }}")


def register_api(arena: Arena) -> None:
    """The API-only endpoints /judge and /undo (the tab's buttons and keys call `annotate_action`)."""

    # On a Space that requires login (see `annotators.login_required`) the annotator is the
    # signed-in user of the request's session; `annotator` may then be empty or that same name.
    def judge_api(query_id: int, page_hash: str, annotator: str, label: str,
                  profile: gr.OAuthProfile | None = None, request: gr.Request = None) -> dict:
        """Record a judgment: label is relevant, not_relevant or skip. Returns the annotator's progress."""
        with api_errors(request):
            return judge(arena, query_id, page_hash, annotator, label, signed_in(profile, request))

    def undo_api(query_id: int, annotator: str, profile: gr.OAuthProfile | None = None,
                 request: gr.Request = None) -> dict:
        """Undo the annotator's latest judgment on the query (history is kept)."""
        with api_errors(request):
            return undo(arena, query_id, annotator, signed_in(profile, request))

    gr.api(judge_api, api_name="judge")
    gr.api(undo_api, api_name="undo")
