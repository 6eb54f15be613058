"""Gradio Blocks: layout and thin callbacks. The work happens in ranking / store / export / evaluate.

Tabs: Rank (both models side by side), Annotate (judge pages, keyboard first), Export (hard
negatives as training data), Evaluate (models against the human labels).

Named API endpoints (see README): /rank, /judge, /undo, /export, /evaluate.
Everything a user typed or named is escaped before it is rendered as Markdown/HTML, and Markdown
never renders LaTeX.
"""

from __future__ import annotations

import collections
import contextlib
import errno
import functools
import html
import itertools
import json
import logging
import math
import os
import pickle
import shlex
import re
import shutil
import sys
import tempfile
import time
import weakref
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import gradio as gr
import pandas as pd

from . import devices, documents, ranking, rendering
from .devices import cpu_has_bfloat16
from .documents import DEFAULT_DPI, IngestOptions, ingest_cache
from .models import MODELS, get_spec, pixels_to_tokens, tokens_to_pixels
from .scoring import QueryError, check_text, is_blank
from .store import LABELS, GuidelinesChanged, QueryPage, Store, StoreError
from .thumbnails import PageImages

if TYPE_CHECKING:
    from .evaluate import PairAgreement

logger = logging.getLogger(__name__)
ROOT = Path(__file__).resolve().parent.parent
STATIC = ROOT / "static"
SAMPLES = ROOT / "data" / "examples" / "sample-pages"
A_KEY, B_KEY = list(MODELS)
LABEL_NAMES = {"relevant": "Relevant", "not_relevant": "Not relevant", "skip": "Skipped", "cleared": "Unjudged"}
ORDERS = ("Most informative first", f"{get_spec(A_KEY).label} rank", f"{get_spec(B_KEY).label} rank", "Upload order")
# Gradio refuses a file over this in the browser, with everything selected alongside it; up to
# here the app reads the upload and names each file over its own limit (100 MB), ranking the rest.
MAX_UPLOAD = "200mb"
# What a visitor may type: stored for good and shown to everyone (the newest query opens every
# visitor's Annotate tab), and each special token of a query would cost the model a token.
MAX_QUERY_CHARS = 10_000
MAX_GUIDELINES_CHARS = 64_000
# After a judgment the query list's counts are redrawn only in a workspace of at most this many
# queries: the browser gets and redraws every entry (at 3,000 queries a judging key took 0.65 s
# instead of 0.2). Larger lists catch up on Refresh list, another query or another name; the
# progress line above the page always shows the query's count.
LIVE_QUERY_LIST = 300
EXPORT_KEEP_SECONDS = 3600  # export files older than this are removed when the next is made
EXPORTS_KEPT = 4  # and only this many newest, whatever their age
# RGB bytes of rendered pages kept in memory (uploads already rendered; recent pages' thumbnails):
# ~7 pages of a 144-DPI letter-size PDF per 40 MB.
PAGE_MEMORY_BYTES = 2**30
GALLERY_SIDE = 512  # px, the longer side of a page in the ranking galleries
DEFAULT_GUIDELINES = (
    "A page is **relevant** when a reader could answer the query from this page alone "
    "(text, table, chart or figure on the page). Pages that are merely on the same topic are "
    "**not relevant**. Use **Skip** when you cannot tell (unreadable, needs other pages)."
)
# Queries for the sample pages (data/examples/sample-pages/PROVENANCE.md).
EXAMPLE_QUERIES = {
    "doc_1.jpg": "What share of users per thread were unknown in the FEB11 sample?",
    "doc_4.jpg": "How does average queue length grow with betweenness in the simulation?",
    "doc_9.jpg": "Which region of the SUC2 frequency plot leads to extinction?",
    "doc_0.jpg": "How does surface density change with radius when the spectroscopic fraction correction is applied?",
}


def escape(text: object) -> str:
    """Text shown inside Markdown: no HTML, no Markdown syntax from users. Markdown's escapes
    first, then HTML's, which makes only &amp; &lt; &gt; (so "<" and ">" need no Markdown escape;
    an escaped entity, as `&#x27;` for a quote once was, would show as text)."""
    return html.escape(re.sub(r"([\\`*_{}\[\]()#+!|~-])", r"\\\1", str(text)), quote=False)


def markdown(value: str = "", **options) -> gr.Markdown:
    """A Markdown component that never renders LaTeX: user text such as `$$x$$` stays text."""
    return gr.Markdown(value, latex_delimiters=[], **options)


def plain(message: str) -> str:
    """A message for a toast, which Gradio shows as (sanitised) HTML: markup in a name or a query
    someone typed (an <img> fetching another site, a styled block over the page) shows as text."""
    return html.escape(str(message), quote=False)


class Refusal(gr.Error):
    """What a person (or API client) gave cannot be used (not a failure of the app)."""

    def __init__(self, message: str, **options):
        super().__init__(plain(message), **options)


class GuidelinesConflict(Refusal):
    """A Save of guidelines edited from an older version than `latest`, saved by a colleague since."""

    def __init__(self, latest):
        super().__init__(f"Not saved: other guidelines were {latest.saved[0].lower()}{latest.saved[1:]}, after yours "
                         "were loaded. Theirs are shown under the box, yours stay in it: merge them and save again.",
                         print_exception=False)
        self.latest = latest


def refuse(message: str) -> Refusal:
    """What a person (or API client) gave cannot be used: the message, shown to them, and no
    traceback in the server's log, where nothing went wrong."""
    return Refusal(message, print_exception=False)


def budget_pixels(key: str, tokens: int | None) -> int | None:
    """Slider value (visual tokens) → max_pixels. The spec's own default stays exact
    (Qwen3RerankerMM's 564,480 px is not a whole number of 32×32 tokens)."""
    spec = get_spec(key)
    if tokens is None or int(tokens) == spec.max_visual_tokens:
        return spec.max_pixels
    return tokens_to_pixels(int(tokens))


def device_note() -> str:
    """What a visitor should know about this machine's speed (shown above the upload box)."""
    import torch

    device = devices.default_device()  # RERANKER_DEVICE=cpu on a GPU machine runs on the CPU
    if device.type == "cuda":
        return f"Running on {escape(torch.cuda.get_device_name(device))}."
    where = "**No GPU on this machine.**" if not torch.cuda.is_available() else "**The models run on the CPU.**"
    spec_a, spec_b = get_spec(A_KEY), get_spec(B_KEY)
    a, b = spec_a.label, spec_b.label  # the names the columns and tables use
    # Measured (docs/benchmarks.md) at the default budgets named here.
    note = (
        f"{where} On 2 CPU cores a page takes {a} about 60 s at its "
        f"default budget ({spec_a.max_visual_tokens} visual tokens; about 10 s at 256) and {b} about 23 s at its "
        f"{spec_b.max_visual_tokens}. Lower the image budgets under *Instruction and settings* to go faster. A new question "
        "about pages already ranked is quicker: neither model encodes a page image twice, so a page "
        f"takes {a} about 23 s and {b} about 1 s."
    )
    if not os.environ.get("RERANKER_DTYPE") and devices.default_dtype(torch.device("cpu")) == torch.bfloat16:
        # The scores differ from float32's in the third decimal or so: worth knowing when comparing.
        note += (f" With {devices.memory_limit() / 2**30:.0f} GiB of memory the models run in bfloat16, their "
                 f"own precision (float32, which matches the reference code to ~1e-6, needs "
                 f"{devices.CPU_FLOAT32_MEMORY / 2**30:.0f} GiB for both).")
    return note


def operator_hint() -> str | None:
    """Advice for whoever runs the app, logged at start (a visitor cannot act on it)."""
    import torch

    if devices.default_device().type == "cuda" or os.environ.get("RERANKER_DTYPE"):
        return None
    if devices.default_dtype(torch.device("cpu")) != torch.bfloat16 and cpu_has_bfloat16():
        return ("No GPU; this CPU computes bfloat16 natively: RERANKER_DTYPE=bfloat16 (the checkpoints' own "
                "precision) makes both models about twice as fast here (float32 timings in docs/benchmarks.md).")
    return "No GPU: each page takes tens of seconds on a CPU (docs/benchmarks.md); run the app on a GPU to rank quickly."


@dataclass
class Arena:
    """What all sessions share: the models (loaded once), the database, the image cache.

    On a ZeroGPU Space `score_on_gpu` runs in a worker process forked from the app, and its
    arguments reach it pickled. Models, database connections and locks do not pickle, and the
    worker has them already (it inherited this Arena through the fork), so an Arena pickles as
    its number in this process's registry.
    """

    pool: ranking.ModelPool
    store: Store
    cache_dir: Path

    def __reduce__(self):
        return _registered_arena, (self._number,)

    def __post_init__(self):
        self._number = next(_ARENA_NUMBERS)
        _ARENAS[self._number] = self
        # Uploads already rendered: a new query about the same files skips the rendering.
        self.ingested = ingest_cache(PAGE_MEMORY_BYTES)
        thumbnail_bytes = devices.env_megabytes("RERANKER_THUMBNAIL_CACHE_MB") or 1024 * 2**20  # 0 or unset: 1 GiB
        self.images = PageImages(self.cache_dir, self.store.page_image, PAGE_MEMORY_BYTES, thumbnail_bytes)
        # One ranking's model work at a time, each page scored once (see ranking.ScoringTurns);
        # reading, rendering and saving of other rankings go on meanwhile. score_on_gpu is
        # looked up per call: the tests put a forked worker behind it.
        self.scoring = ranking.ScoringTurns(lambda pool, *work: score_on_gpu(self, *work))

    def image_path(self, page_hash: str, max_side: int) -> str:
        """A JPEG of the page no larger than `max_side`, written once to the cache folder."""
        return self.images.path(page_hash, max_side)


_ARENA_NUMBERS = itertools.count()
_ARENAS: weakref.WeakValueDictionary[int, Arena] = weakref.WeakValueDictionary()


def _registered_arena(number: int) -> Arena:
    try:
        return _ARENAS[number]
    except KeyError:
        raise pickle.UnpicklingError(
            f"Arena {number} is not in this process: an Arena unpickles only in the process that "
            "made it or one forked from it (ZeroGPU's worker)"
        ) from None


# ----- Rank -------------------------------------------------------------------------------------
try:  # On a ZeroGPU Space the GPU is attached only inside functions marked with spaces.GPU.
    from spaces import GPU as _gpu
except ImportError:  # elsewhere it is a no-op anyway

    def _gpu(duration=None):
        return lambda function: function


# Rankings in progress at once (each may hold an upload's pages: up to 400 MP, 1.2 GB of pixels).
RANK_CONCURRENCY = 3
GPU_SECONDS_BASE = 20  # a fresh ZeroGPU worker's CUDA start-up, with room to spare
GPU_SECONDS_PER_PAGE = 1.0  # per (page, model): ~5x an H200's cold time at the largest default budget
GPU_SECONDS_MAX = 120


def gpu_seconds(arena: Arena, query: str, work: dict, *args, **kwargs) -> int:
    """The GPU time `score_on_gpu` asks ZeroGPU for: a visitor needs at least this much quota
    left, and a shorter request waits less; a request that runs longer is aborted, so it is
    generous (measured: 25 pages with both models take ~2 s on an H200, docs/benchmarks.md)."""
    pairs = sum(len(pages) for pages in work.values())
    return min(GPU_SECONDS_MAX, GPU_SECONDS_BASE + math.ceil(GPU_SECONDS_PER_PAGE * pairs))


@_gpu(duration=gpu_seconds)
def score_on_gpu(arena: Arena, query: str, work: dict, instruction: str | None, max_pixels: dict,
                 progress=None) -> dict[str, ranking.Scored]:
    """The model work of a ranking (`ranking.score_pages`), and nothing else, under `spaces.GPU`.

    On ZeroGPU this runs in a worker process forked from the app, on pickled arguments (the
    pages go as pixels), and its time counts against the visitor's GPU quota. So reading and
    rendering the uploads, the score cache, the thumbnails and the database all stay in the app
    process, and a request whose scores are all stored needs no GPU at all.
    """
    return ranking.score_pages(arena.pool, query, work, instruction, max_pixels, progress)


@dataclass
class _GradioProgress:
    """gr.Progress as a `ranking.ProgressCallback`; unlike a lambda it pickles (for ZeroGPU)."""

    progress: gr.Progress

    def __call__(self, fraction: float, message: str) -> None:
        self.progress(fraction, desc=message)


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
        texts.append(problem)
    return uploads, *texts


def rank_pages(arena: Arena, files, query: str, instruction: str | None, budget_a: int | None,
               budget_b: int | None, dpi: float | None, progress=None) -> dict:
    """Score every page of the uploads with both models; store the ranking; return it as data."""
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
            progress=_GradioProgress(progress) if progress is not None else None,  # gr.Progress() is falsy (len 0)
            ingest_cache=arena.ingested,
            scorer=arena.scoring,
        )
    except QueryError as error:
        raise refuse(str(error)) from None
    except (StoreError, ranking.AppStopping) as error:  # e.g. a full disk; a restart
        raise gr.Error(plain(error)) from None
    except gr.Error:  # already said for people (ZeroGPU's quota message, say)
        raise
    except Exception as error:  # a bug: said in words, where Gradio would show a bare "Error" badge
        logger.exception("ranking %r failed", query[:80])
        raise gr.Error(plain(f"The ranking failed: {type(error).__name__}: {error} (the server log has the details).")) from None
    return result.as_dict(query_id)


def _upload(item) -> str:
    return item if isinstance(item, str) else getattr(item, "name", None) or item["path"]


def page_label(page: dict) -> str:
    return documents.page_label(page["source"], page["page_number"], page.get("kind"), page.get("page_count"))


def stored_page_label(page: QueryPage) -> str:
    return documents.page_label(page.source, page.page_number, page.kind, page.page_count)


DETAIL_HINT = "Click a page to see it large with both scores."
# Also gives the status line its height before the first ranking: the progress bar shows over it.
RANK_HINT = "Drop PDFs or images (or click an example), type a query and press Enter or *Rank*."


def show_ranking(arena: Arena, data: dict):
    """The ranking as galleries, headers, agreement and a scatter plot; the page shown large
    before (with the previous ranking's scores) is cleared."""
    if not data:
        return (RANK_HINT,) + ("", [], "", [], "", None) + (None, DETAIL_HINT)
    pages = data["pages"]
    ranks = {key: {entry["page"]: entry["rank"] for entry in model["ranking"]} for key, model in data["models"].items()}
    columns = []
    for key, other in ((A_KEY, B_KEY), (B_KEY, A_KEY)):
        model = data["models"].get(key)
        if model is None:
            columns += [f"### {escape(get_spec(key).label)}", []]
            continue
        header = f"### {escape(model['label'])}\n"
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
    scatter = pd.DataFrame({
        get_spec(A_KEY).label: a["scores"],
        get_spec(B_KEY).label: b["scores"],
        "page": [page_label(page) for page in pages],
    })
    return text, scatter


def select_page(arena: Arena, data: dict, key: str, evt: gr.SelectData):
    """Clicking a gallery item: the page large, with both models' scores and ranks, and the same
    page marked in the other model's gallery (it kept marking the page clicked there before)."""
    if not data or evt is None or evt.index is None:
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


# ----- Annotate ---------------------------------------------------------------------------------
def distinct_names(names: dict[int, str]) -> dict[int, str]:
    """Query id → its name as shown, with "(query #id)" after a name another query shares: two
    instructions alike in their first 40 characters, or long texts alike as far as they are shown."""
    counts = collections.Counter(names.values())
    return {query_id: name if counts[name] == 1 else f"{name} (query #{query_id})" for query_id, name in names.items()}


def listed_queries(arena: Arena, annotator: str | None) -> list:
    """The stored queries as the Annotate list shows them, newest first, with `annotator`'s
    counts (anyone's without a name)."""
    return list(reversed(arena.store.list_queries(annotator or None)))


def query_choices(arena: Arena, annotator: str | None, summaries: list | None = None) -> list[tuple[str, int]]:
    """The Annotate list's entries; `summaries`: `listed_queries`, where the caller has them."""
    summaries = summaries if summaries is not None else listed_queries(arena, annotator)
    names = distinct_names({s.id: _shortened(s.text, 90) + s.instruction_tag for s in summaries})
    # The count first: a narrow list cuts the end of a long query, and the count is what an
    # annotator scans for.
    return [(f"{summary.judged}/{summary.pages} judged — {names[summary.id]}", summary.id) for summary in summaries]


def query_list_after_judging(arena: Arena, name: str | None):
    """The query list with its new counts (one aggregate query over the store: 60–85 ms at 4,000
    queries and 80,000 judgments), in a workspace of at most LIVE_QUERY_LIST queries; else as it is."""
    if arena.store.query_count() > LIVE_QUERY_LIST:
        return gr.skip()
    return gr.update(choices=query_choices(arena, typed_annotator(arena, name)))


def _shortened(text: str, limit: int) -> str:
    """`text`, or its first words within `limit` characters and an ellipsis (not cut mid-word)."""
    if len(text) <= limit:
        return text
    cut = text[:limit - 1]
    return (cut.rsplit(" ", 1)[0] if " " in cut else cut) + "…"


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


def login_required() -> bool:
    """On a Space with Hugging Face login (`hf_oauth: true` sets OAUTH_CLIENT_ID) a judgment
    carries the signed-in user's name, read from the session on the server: a typed name could
    be anyone's. RERANKER_REQUIRE_LOGIN=0 allows typed names there too (API scripts cannot sign in).

    Only on a Space (SYSTEM=spaces, what Gradio checks): elsewhere Gradio's login is a mock that
    signs every visitor in as the machine's own Hugging Face user."""
    asked = devices.env_flag("RERANKER_REQUIRE_LOGIN", default=True)  # read everywhere: a typo is said locally too
    return bool(os.environ.get("OAUTH_CLIENT_ID")) and os.environ.get("SYSTEM") == "spaces" and asked


def annotator_name(name: str | None, profile: gr.OAuthProfile | None = None) -> str:
    """Who is judging: the signed-in user where login is required (see `login_required`), else
    the typed name."""
    name = (name or "").strip()
    if login_required():
        if profile is None:
            raise refuse("Sign in with Hugging Face (top of the Annotate tab) to judge: on this Space "
                           "every judgment carries its annotator's Hugging Face name.")
        if name and _ascii_folded(name) != _ascii_folded(profile.username):  # "ALICE" is alice, as everywhere
            raise refuse(f"You are signed in as {profile.username}: judgments here carry that name, not {name!r}.")
        return profile.username
    if not name:
        raise refuse("Enter your name (top of the Annotate tab, or annotator in the API) before judging, so judgments can be told apart.")
    if len(name) > 80:
        raise refuse("That name is too long (80 characters at most).")
    return name


def signed_in(profile: gr.OAuthProfile | None, request: gr.Request | None) -> gr.OAuthProfile | None:
    """The signed-in user, for a request from this app's own pages (or from a script, which sends
    no Origin). A request that a page on another site makes the visitor's browser send carries
    their login cookie too (Gradio's is SameSite=None, and its CORS answers any origin): it is
    treated as signed out, so that no other site can judge, undo or save under their name."""
    origin = request.headers.get("origin") if profile is not None and request is not None else None
    if not origin:
        return profile
    own = {request.headers.get("host"), request.headers.get("x-forwarded-host"), os.environ.get("SPACE_HOST")}
    if urlsplit(origin).netloc in own - {None}:
        return profile
    logger.warning("a request from %s carried %s's login: treated as signed out (not this app's page)",
                   origin, profile.username)
    return None


def _ascii_folded(name: str) -> str:
    """As SQLite's NOCASE compares names (`Store.known_annotator`): ASCII letters only."""
    return "".join(c.lower() if c.isascii() else c for c in name)


def typed_annotator(arena: Arena, name: str | None) -> str | None:
    """The name in the Annotate tab's box, as judgments carry it (`Store.known_annotator`)."""
    name = (name or "").strip()
    return arena.store.known_annotator(name) if name else None


def annotate_view(arena: Arena, query_id, annotator: str | None, order: str, position: int):
    """The page at `position` (in the chosen order) of a stored query, for this annotator."""
    if query_id in (None, ""):
        return (gr.update(value=None, label="Page"), "Rank something on the **Rank** tab, or pick a stored query above.", "",
                gr.update(value=1), None, 0)
    query_id = int(query_id)
    pages = page_order(arena.store.query_pages(query_id), order)
    if not pages:
        return gr.update(value=None, label="Page"), "This query has no pages.", "", gr.update(value=1), None, 0
    position = max(0, min(int(position or 0), len(pages) - 1))
    page = pages[position]
    labels = arena.store.current_labels(query_id, annotator) if annotator else {}
    summary = arena.store.query(query_id)
    # Without a name, anyone's count, as the query list shows it then; with one, theirs.
    judged = sum(1 for p in pages if labels.get(p.page_hash) not in (None, "cleared")) if annotator else summary.judged
    current = LABEL_NAMES.get(labels.get(page.page_hash), "Unjudged") if annotator else "—"  # whose? no name yet
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
    if annotator and judged == len(pages):  # else the next key quietly relabels the page shown
        progress += (" · ✓ every page judged: a key now changes the label of the page shown; "
                     "Q opens the next query to judge")
    # The image's own label repeats where the annotator is: in full screen it is all they see
    # while the keys judge and move on.
    image = gr.update(value=arena.image_path(page.page_hash, 1600),
                      label=f"Page {position + 1} of {len(pages)} · {current} · {judged}/{len(pages)} judged · "
                            f"“{_shortened(summary.text, 60)}{summary.instruction_tag}”",  # in full screen, the query too
                      alt_text=f"{stored_page_label(page)}, page {position + 1} of {len(pages)}")
    return image, info, progress, gr.update(value=position + 1), page.page_hash, len(pages)


def page_view(arena: Arena, query_id, name: str | None, order: str, position: int, shown=None):
    """`annotate_view` for the name as typed. The page-number box (`shown`: its value when the
    event began) is left alone when it already shows this page: a view update arriving while
    someone types a number there would overwrite what they typed."""
    image, info, progress, number, page_hash, total = annotate_view(arena, query_id, typed_annotator(arena, name),
                                                                    order, position)
    if shown is not None and number["value"] == shown:
        number = gr.skip()
    return image, info, progress, number, page_hash, total


def judge(arena: Arena, query_id: int, page_hash: str, annotator: str, label: str,
          profile: gr.OAuthProfile | None = None) -> dict:
    """Record one judgment (append-only) and return the page's label and the annotator's progress.
    `profile`: the signed-in user, if any (see `annotator_name`)."""
    annotator = arena.store.known_annotator(annotator_name(annotator, profile))
    if label not in LABELS:  # what an annotator can choose (not "cleared": that is undo's)
        raise refuse(f"label must be one of {', '.join(LABELS)} (got {label!r})")
    query_id = _query_id(query_id)
    if not isinstance(page_hash, str) or not page_hash.strip():
        raise refuse(f"page_hash must be a page's content_hash (as /rank returns it), got {page_hash!r}")
    try:
        arena.store.record_judgment(query_id, page_hash, annotator, label)
    except (ValueError, KeyError) as error:  # no such query, or a page it did not rank
        raise refuse(_message(error)) from None
    except StoreError as error:  # e.g. a full disk
        raise gr.Error(plain(error)) from None
    judged, total = arena.store.progress(query_id, annotator)
    return dict(query_id=query_id, page_hash=page_hash, annotator=annotator, label=label, judged=judged, total=total)


def undo(arena: Arena, query_id: int, annotator: str, profile: gr.OAuthProfile | None = None) -> dict:
    """Undo the annotator's latest judgment on this query (adds a row; history is kept)."""
    annotator = arena.store.known_annotator(annotator_name(annotator, profile))
    query_id = _query_id(query_id)
    try:
        undone = arena.store.undo(query_id, annotator)
        judged, total = arena.store.progress(query_id, annotator)
    except (ValueError, KeyError) as error:  # no such query
        raise refuse(_message(error)) from None
    except StoreError as error:  # e.g. a full disk
        raise gr.Error(plain(error)) from None
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
    """After a judgment: the next unjudged page in this order (wrapping), else the next page.
    `pages`: the query's pages in this order, where the caller has them."""
    pages = pages if pages is not None else page_order(arena.store.query_pages(int(query_id)), order)
    found = _unjudged_after(pages, arena.store.current_labels(int(query_id), annotator), position)
    return found if found is not None else min(position + 1, len(pages) - 1)


def resume_position(arena: Arena, query_id, annotator: str | None, order: str) -> int:
    """Where an annotator (re)opens a query: the first page in this order they have not judged;
    the first page without a name, or when they have judged every page."""
    annotator = typed_annotator(arena, annotator)
    if query_id in (None, "") or not annotator:
        return 0
    pages = page_order(arena.store.query_pages(int(query_id)), order)
    return _unjudged_after(pages, arena.store.current_labels(int(query_id), annotator), -1) or 0


def annotate_action(arena: Arena, action: str, query_id, name: str | None, order: str, position: int,
                    page_hash: str | None, total: int, profile: gr.OAuthProfile | None = None) -> tuple[int, bool]:
    """One Annotate button or key: "previous", "next", "undo" or a label for `page_hash` (the
    page on screen). Returns the position to show next (in `order`) and whether judged counts
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
    judged = judge(arena, query_id, page_hash, name, action, profile)
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


# ----- Export & Evaluate -------------------------------------------------------------------------
def export_options(fmt, rule, k, max_negatives, annotator, since, until, agreement, mined, negatives_per_row=None):
    from .export import ExportOptions

    values = dict(format=fmt, rule=rule, k=_whole_number("k", k),
                  max_negatives=_whole_number("Max negatives", max_negatives, least=0),  # 0: positives only
                  annotator=(annotator or "").strip() or None, since=_moment("Judged since", since),
                  until=_moment("Judged until", until), require_agreement=bool(agreement), include_mined_negatives=bool(mined),
                  # 0 or an empty box: the fewest negatives any query has (every usable query kept).
                  negatives_per_row=None if negatives_per_row in (None, "") else
                  _whole_number("Negatives per row", negatives_per_row, least=0) or None)
    try:
        return ExportOptions(**values)
    except ValueError as error:  # e.g. since after until, an unknown format from an API client
        raise refuse(str(error)) from None


def _moment(name: str, text):
    """A date box's value (None when empty), or a message naming the box."""
    from .store import parse_moment

    if not (text or "").strip():
        return None
    try:
        return parse_moment(text)
    except ValueError as error:
        raise refuse(f"{name}: {error}") from None


def _whole_number(name: str, value, least: int = 1) -> int:
    """A number box's value as an int ≥ `least`, or a message naming the box (an emptied box is None)."""
    try:
        number = int(value)
    except (TypeError, ValueError):
        number = None
    if number is None or number < least or (isinstance(value, float) and value != number):
        raise refuse(f"{name} must be a whole number of at least {least} (got {value!r}).")
    return number


def export_preview(arena: Arena, *options) -> str:
    from .export import preview

    options = export_options(*options)  # its own messages, as they are
    try:
        summary = preview(arena.store, options)
    except ValueError as error:
        raise refuse(str(error)) from None
    return "```\n" + summary.describe() + "\n```"


def preview_view(arena: Arena, *options) -> str:
    """The Preview box: the counts, or in their place what is wrong with the options (a message
    in a toast would leave the last preview's counts on screen, as if they still held)."""
    return preview_check(arena, *options)[0]


def preview_check(arena: Arena, *options) -> tuple[str, bool]:
    """`preview_view`'s text, and whether the options can be exported."""
    try:
        return export_preview(arena, *options), True
    except gr.Error as error:
        return f"⚠️ {escape(error.message)}", False


def export_file(arena: Arena, fmt: str = "pointwise", rule: str = "either", k: int = 5, max_negatives: int = 10,
                annotator: str = "", since: str = "", until: str = "", agreement: bool = False,
                mined: bool = False, negatives_per_row: int | None = None) -> str:
    """Write the judgments as hard-negative training data; returns the file (zip or parquet)."""
    from .export import NothingToExportError, default_filename, export

    options = export_options(fmt, rule, k, max_negatives, annotator, since, until, agreement, mined, negatives_per_row)
    _remove_old_exports(arena.cache_dir)
    folder = None
    try:
        folder = Path(tempfile.mkdtemp(dir=arena.cache_dir, prefix="export-"))
        return str(export(arena.store, options, folder / default_filename(options)))
    except (NothingToExportError, ValueError, OSError) as error:
        if folder is not None:  # no empty folder left behind
            shutil.rmtree(folder, ignore_errors=True)
        if not isinstance(error, OSError):
            raise refuse(str(error)) from None
        # The file, in the app's folder for exports, could not be written (a full disk, say).
        full = getattr(error, "errno", None) == errno.ENOSPC or os.strerror(errno.ENOSPC) in str(error)
        reason = "the disk holding it is full; free some space and try again" if full else str(error)
        logger.warning("export failed: %s", error)
        raise gr.Error(f"The export file could not be written in the app's folder for them, {arena.cache_dir} "
                       f"(RERANKER_CACHE): {reason}. Nothing stored was changed.", print_exception=False) from None


# The Evaluate tab's Labels choice of no annotator: its value is empty (as the API's), so a person
# who judges under the name "Majority vote" can still be chosen alone.
MAJORITY_VOTE = ("Majority vote", "")


def label_choices(arena: Arena):
    """Whose labels Export and Evaluate use: the majority vote, or one annotator's."""
    return gr.update(choices=[MAJORITY_VOTE, *arena.store.annotators()])


def evaluate_view(arena: Arena, annotator: str | None):
    """The Evaluate tab: (metrics table, bar data, A − B differences, per-query table, notes,
    model A's and model B's mistake gallery items, what a choice there opens in Annotate: model
    key → the (query id, page hash) of each of its gallery's items, "queries" → {a per-query
    row's query as shown: its id})."""
    from .evaluate import evaluate_store, model_label
    from .metrics import EvalResult

    annotator = annotator or None  # MAJORITY_VOTE's value
    try:
        evaluation = evaluate_store(arena.store, annotator)
    except ValueError as error:
        raise refuse(str(error)) from None
    summaries = arena.store.list_queries()
    # Shown apart: asked with its own instruction, the same text is another query.
    shown_query = distinct_names({s.id: s.text + s.instruction_tag for s in summaries})
    summary_rows, per_query = [], []
    for key, result in evaluation.results.items():
        means = result.means
        summary_rows.append({"model": model_label(key), "queries": result.n_queries,
                             "excluded": result.n_excluded, **{name: _round(value) for name, value in means.items()}})
        for row in result.rows:
            # The counts before the metrics: they qualify them (after them, a wide table hid them).
            # Short names (the model's tag, "pages" for "n_pages"): 13 columns fit 1400 px.
            per_query.append((row["query_id"], {
                "query": shown_query.get(row["query_id"], row["query_id"]),
                "model": get_spec(key).tag if key in MODELS else key,
                **{name.removeprefix("n_"): _round(value) for name, value in row.items() if name != "query_id"}}))
    per_query.sort(key=lambda item: -item[0])  # the newest query first, its models side by side
    evaluated = list(dict.fromkeys(query_id for query_id, _ in per_query))
    if len(evaluated) > PER_QUERY_SHOWN:  # a row per query and model: the browser froze seconds drawing thousands
        newest = set(evaluated[:PER_QUERY_SHOWN])
        per_query = [item for item in per_query if item[0] in newest]
    per_query = [row for _, row in per_query]
    metric_names = EvalResult("", evaluation.ks).metric_names  # the columns, also of empty tables (not "1 2 3")
    summary = pd.DataFrame(summary_rows, columns=["model", "queries", "excluded", *metric_names])
    bars = None
    if not summary.empty:
        # One bar per (metric, model): BarPlot has no grouping, so the category holds both (with the
        # model's tag: its full name made the labels too long, and the plot cut them).
        bars = summary.melt(id_vars=["model"], value_vars=[c for c in BAR_METRICS if c in summary],
                            var_name="metric", value_name="value")
        # Undefined means (no query with a page judged relevant) get no bar: as None they made the
        # column text, which Vega drew as full-height bars on an axis of "undefined".
        bars = bars.dropna(subset=["value"]).astype({"value": float})
        tags = {spec.label: spec.tag for spec in MODELS.values()}
        bars["bar"] = bars["metric"] + " · " + bars["model"].map(lambda label: tags.get(label, label))
        bars = bars if not bars.empty else None
    notes = []
    for key, result in evaluation.results.items():
        if result.excluded:  # counted in the table's "excluded" column; here are which and why
            by_reason: dict[str, list[int]] = {}
            for query_id, why in result.excluded.items():
                by_reason.setdefault(why, []).append(query_id)
            notes.append(f"Not in {escape(model_label(key))}'s means: " + "; ".join(
                f"{len(ids)} {'query' if len(ids) == 1 else 'queries'} ({why}): " + ", ".join(
                    f"“{escape(_shortened(shown_query[q], 60))}”" for q in ids[:EXCLUDED_NAMED])
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
    found = {key: evaluation.mistakes.get(key, []) for key in MODELS}
    by_id = {s.id: s for s in summaries}
    query_pages = functools.cache(lambda query_id: {p.page_hash: p for p in arena.store.query_pages(query_id)})
    # What a choice opens in Annotate: each gallery item's (query id, page hash) by model key,
    # and under "queries" each per-query row's query, by the query as the table shows it.
    openable: dict = {"queries": {shown_query[query_id]: query_id for query_id in evaluated[:PER_QUERY_SHOWN]}}
    mistakes = {}
    for key, items in found.items():
        # The costliest first (a page placed first above a relevant one), newest queries first among equals.
        shown = sorted(items, key=lambda item: (item[1].rank, -item[0], item[1].page_id))[:MISTAKES_SHOWN]
        # The page first: a thumbnail's caption shows a line or two of this.
        captions = [f"#{mistake.rank} · {stored_page_label(query_pages(query_id)[mistake.page_id])} · for "
                    f"“{_shortened(by_id[query_id].text, 60)}{by_id[query_id].instruction_tag}”" for query_id, mistake in shown]
        mistakes[key] = list(zip(arena.images.paths([mistake.page_id for _, mistake in shown], MISTAKE_IMAGE_SIDE), captions))
        openable[key] = [(query_id, mistake.page_id) for query_id, mistake in shown]
    if len(evaluated) > PER_QUERY_SHOWN:
        chosen = evaluation.annotator  # as stored: the CLI matches it as the app does
        command = "python -m reranker eval --per-query" + (f" --annotator {shlex.quote(chosen)}" if chosen else "")
        command = f"`{command}`" if "`" not in command else escape(command)  # a code span, unless the name ends it
        notes.append(f"Per query: the {PER_QUERY_SHOWN} queries added last, of {len(evaluated)}; every one with "
                     f"{command} (the means above count them all).")
    if capped := [key for key, items in found.items() if len(items) > MISTAKES_SHOWN]:
        notes.append(f"Mistake galleries: the {MISTAKES_SHOWN} ranked highest of " +
                     " and ".join(f"{len(found[key])} for {escape(get_spec(key).label)}" for key in capped) + ".")
    per_query = pd.DataFrame(per_query, columns=["query", "model", "pages", "judged", "relevant", *metric_names])
    return (summary, bars, _differences_frame(evaluation.differences), per_query, "\n\n".join(notes),
            mistakes[A_KEY], mistakes[B_KEY], openable)


def evaluation_headline(summary: pd.DataFrame, labels: str | None) -> str:
    """Above the Evaluate tab's tables: what it needs when no model has a query to be evaluated on
    (a first visit showed tables of dashes, the reason halfway down the page); else nothing."""
    if not summary.empty and summary["queries"].max() > 0:
        return ""
    whose = f" by {escape(labels)}" if labels else ""
    return (f"**Nothing to evaluate yet:** no ranked query has a page judged relevant{whose}. Judge pages on the "
            "*Annotate* tab (R: relevant, N: not relevant), then press *Evaluate*.")


def _differences_frame(differences) -> pd.DataFrame:
    """Model A − model B, a row per metric (`reranker.metrics.PairedDifference`), as `eval` prints it."""
    from .evaluate import difference_cells

    columns = ["metric", "mean difference", "95% CI", "p (paired t-test)", "better / same / worse", "queries"]
    rows = [(d.metric, *difference_cells(d), d.n_queries) for d in differences if (d.model_a, d.model_b) == (A_KEY, B_KEY)]
    return pd.DataFrame(rows, columns=columns)


MISTAKES_SHOWN = 30  # per model: a gallery of hundreds was slow to make and to look through
# Queries in the per-query table (two rows each, the newest first): at 3,000 the browser spent ~6 s of the Evaluate
# tab's ~9.5 s drawing the table.
PER_QUERY_SHOWN = 300
EXCLUDED_NAMED = 5  # queries named per reason in the note on those left out of a model's means (the CLI lists all)
MISTAKE_IMAGE_SIDE = 768  # the gallery's own large view shows this file (at 384 px it was blurry)


BAR_METRICS = ("ndcg@5", "ndcg_blog@5", "mrr", "recall@5", "map")


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


# ----- layout -----------------------------------------------------------------------------------
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
    return [list(row) for row in rows], [_shortened(label, EXAMPLE_LABEL_LIMIT) for label in labels]


def build_app(arena: Arena) -> gr.Blocks:
    """The app: four tabs, each laid out by its `_*_tab` function and wired by its `_wire_*` one."""
    # delete_cache: Gradio's own copies of files it served (exports, galleries), hourly.
    with gr.Blocks(title="Multimodal Rerank Arena", delete_cache=(EXPORT_KEEP_SECONDS, EXPORT_KEEP_SECONDS)) as demo:
        markdown("# Multimodal Rerank Arena")
        shared = _shared_state()
        with gr.Tabs() as tabs:
            rank = _rank_tab()
            annotate = _annotate_tab()
            export = _export_tab()
            evaluate = _evaluate_tab()
        _wire_rank(arena, rank, annotate, shared)
        _wire_annotate(arena, annotate, shared, demo)
        _wire_export(arena, export, demo)
        _wire_evaluate(arena, evaluate, demo)
        _wire_open_in_annotate(arena, evaluate, annotate, shared, tabs)
        _register_api(arena)
        for tab in (rank.tab, annotate.tab, export.tab, evaluate.tab):
            tab.select(lambda tab_id=tab.id: tab_id, None, shared.tab_open, queue=False, api_visibility="private")
        # A reload of Annotate reopens it (it opened Rank: one more click every time): the
        # address says `?tab=annotate` while it is open (static/tab_address.js).
    return demo


def browser_script() -> str:
    """The app's JavaScript, run once as the page loads: each file in static/ is a function."""
    scripts = [(STATIC / name).read_text(encoding="utf-8") for name in ("shortcuts.js", "tab_address.js")]
    return "() => {\n" + "".join(f"({script.strip()})();\n" for script in scripts) + "}"


def _shared_state() -> SimpleNamespace:
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


def _rank_tab() -> SimpleNamespace:
    """The Rank tab's components: uploads, query and settings; both galleries; the page shown large."""
    spec_a, spec_b = get_spec(A_KEY), get_spec(B_KEY)
    with gr.Tab("Rank", id="rank") as rank_tab:
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
            with gr.Column(scale=3):
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
                # Right under the Rank button, whatever the length of the file list: the
                # progress shows where the visitor is looking (below the examples, it was
                # off screen at 1400×900).
                status = markdown(RANK_HINT, elem_id="rank-status")
        example_rows, example_labels = examples()
        gr.Examples(example_rows, inputs=[files, query], example_labels=example_labels,
                    label="Examples (sample pages)", elem_id="examples")
        with gr.Row(equal_height=False):
            with gr.Column():
                header_a = markdown(f"### {spec_a.label}", elem_id="header-a")
                gallery_a = gr.Gallery(label=spec_a.label, columns=3, height="auto", object_fit="contain",
                                       allow_preview=False, buttons=[], elem_id="gallery-a")
            with gr.Column():
                header_b = markdown(f"### {spec_b.label}", elem_id="header-b")
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
                                         label="P(yes): one point per page", height=320, elem_id="scatter-plot")
    return SimpleNamespace(tab=rank_tab, files=files, query=query, instruction=instruction,
                           budget_a=budget_a, budget_b=budget_b, dpi=dpi, rank_button=rank_button,
                           status=status, header_a=header_a, gallery_a=gallery_a, header_b=header_b,
                           gallery_b=gallery_b, detail_image=detail_image, detail_text=detail_text,
                           agreement=agreement, scatter=scatter)


def _annotate_tab() -> SimpleNamespace:
    """The Annotate tab's components: annotator, order, query list; the page to judge and its buttons."""
    with gr.Tab("Annotate", id="annotate", elem_id="annotate-panel") as annotate_tab:
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
                with gr.Accordion("Guidelines (what counts as relevant)", open=False):
                    guidelines = gr.Textbox(lines=6, label="Guidelines: what counts as relevant", show_label=False,
                                            elem_id="guidelines")  # the label names it for screen readers
                    guidelines_saved = markdown(elem_id="guidelines-saved")
                    guidelines_version = gr.State(None)  # as loaded: see _write_guidelines
                    save_guidelines = gr.Button("Save guidelines")
        position = gr.State(0)
        # "query id page hash" of the page on screen: what a key judges. A hidden box, not a
        # gr.State: a State lives on the server, which had set it to the next page while the
        # browser still showed this one (a key pressed after choosing a query, an order or a
        # page number judged a page not yet on screen); the box's value is the browser's.
        shown_page = gr.Textbox(visible=False, elem_id="shown-page")
        page_total = gr.State(0)
    # What draws the page to judge (`_view`), and what it reads.
    view_inputs = [query_pick, annotator, order, position, jump]
    view_outputs = [annotate_image, annotate_info, annotate_progress, jump, shown_page, page_total]
    return SimpleNamespace(tab=annotate_tab, annotator=annotator, order=order, query_pick=query_pick,
                           refresh=refresh, annotate_image=annotate_image, annotate_progress=annotate_progress,
                           annotate_info=annotate_info, relevant=relevant, not_relevant=not_relevant,
                           skip=skip, undo_button=undo_button, previous=previous, following=following,
                           next_query=next_query, jump=jump, guidelines=guidelines, guidelines_saved=guidelines_saved,
                           guidelines_version=guidelines_version, save_guidelines=save_guidelines,
                           position=position, shown_page=shown_page, page_total=page_total,
                           view_inputs=view_inputs, view_outputs=view_outputs)


def _export_tab() -> SimpleNamespace:
    """The Export tab's components: format, rule and filters; preview; the file."""
    with gr.Tab("Export", id="export") as export_tab:
        markdown(
            "Positives are pages judged relevant; **hard negatives** are pages judged not relevant "
            "that a model ranked high. Unjudged pages are never negatives unless you ask for "
            "model-mined ones (unjudged pages a model ranked high in queries someone judged, marked as such). "
            "Images travel inside the file."
        )
        with gr.Row():
            # The min_widths stack these at phone width, where "above_lowest_positive" ran out of its box.
            fmt = gr.Radio(["pointwise", "sentence-transformers", "flagembedding", "parquet"], value="pointwise", label="Format",
                           min_width=300)
            rule = gr.Radio(["either", "top_k", "above_lowest_positive", "all"], value="either", label="Hard-negative rule",
                            min_width=300)
        with gr.Row():
            # No minimum: Gradio's own refusal does not name the box ("Value -1 is less than
            # minimum value 0"); export_options does.
            # No rounding in the box (precision=0 made 2.5 a silent 2): `_whole_number` refuses it.
            k = gr.Number(5, label="k (top-k rule)", step=1)
            max_negatives = gr.Number(10, label="Max negatives per query", step=1)
            # A list of who has judged, as Evaluate's Labels (a name typed in a text box that
            # matched nobody exported nothing); a name can still be typed.
            export_annotator = gr.Dropdown([MAJORITY_VOTE], value=MAJORITY_VOTE[1], label="Labels (majority vote, or one "
                                           "annotator's alone)", allow_custom_value=True, elem_id="export-labels")
            # /export's `annotator` takes any name: Gradio 6.31 describes a Dropdown to API clients
            # as its choices alone, allow_custom_value or not (the API page said "" only).
            export_annotator.api_info = lambda: {"type": "string"}
        with gr.Row():
            since = gr.Textbox(label="Judged since (YYYY-MM-DD, UTC)", min_width=200)
            until = gr.Textbox(label="Judged until (YYYY-MM-DD, UTC)", min_width=200)
            with gr.Column(min_width=200):  # a Checkbox's own min_width does not reach the page
                agreement_only = gr.Checkbox(label="Only pages annotators agree on")
                mined = gr.Checkbox(label="Add model-mined negatives (unjudged)")
            # 0, not empty, for "the fewest": the browser shows and sends an empty Number as 0.
            # No minimum: Gradio would refuse an emptied box with an error over the panel.
            negatives_per_row = gr.Number(0, label="Negatives per row (sentence-transformers; 0: the fewest any "
                                                   "query has)", step=1, min_width=200)
        with gr.Row():
            preview_button = gr.Button("Preview")
            export_button = gr.Button("Export", variant="primary")
        export_summary = markdown(elem_id="export-summary")
        export_download = gr.File(label="Download", interactive=False, elem_id="export-download")
    return SimpleNamespace(tab=export_tab, fmt=fmt, rule=rule, k=k, max_negatives=max_negatives,
                           export_annotator=export_annotator, since=since, until=until,
                           agreement_only=agreement_only, mined=mined, negatives_per_row=negatives_per_row,
                           preview_button=preview_button, export_button=export_button,
                           export_summary=export_summary, export_download=export_download)


def _evaluate_tab() -> SimpleNamespace:
    """The Evaluate tab's components: labels; metrics, plot, differences, per-query table, mistakes."""
    spec_a, spec_b = get_spec(A_KEY), get_spec(B_KEY)
    with gr.Tab("Evaluate", id="evaluate") as evaluate_tab:
        with gr.Row():
            eval_annotator = gr.Dropdown([MAJORITY_VOTE], value=MAJORITY_VOTE[1], label="Labels", allow_custom_value=True,
                                         elem_id="eval-labels")
            eval_button = gr.Button("Evaluate", variant="primary")
        eval_headline = markdown(elem_id="eval-headline")  # what is missing, before empty tables
        metrics_table = gr.Dataframe(label="Metrics per model (means over judged queries)", interactive=False,
                                     elem_id="metrics-table")
        metrics_plot = gr.BarPlot(x="bar", y="value", color="model", label="Metrics", y_lim=[0, 1], height=340,
                                  x_label_angle=-30, sort=bar_order(), x_title="metric · model", elem_id="metrics-plot")
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
    return SimpleNamespace(tab=evaluate_tab, eval_annotator=eval_annotator, eval_button=eval_button,
                           eval_headline=eval_headline, metrics_table=metrics_table, metrics_plot=metrics_plot,
                           differences_table=differences_table, eval_notes=eval_notes,
                           per_query_table=per_query_table, mistakes_a=mistakes_a, mistakes_b=mistakes_b,
                           chosen_line=chosen_line, open_in_annotate=open_in_annotate,
                           openable=openable, chosen=chosen)


def _view(arena: Arena, query_id, name, order_, position_, shown=None):
    """The Annotate tab's page view (its `view_outputs`): ranking updates it too."""
    *drawn, page_hash, total = page_view(arena, query_id, name, order_, position_, shown)
    return (*drawn, "" if page_hash is None else f"{int(query_id)} {page_hash}", total)


def _opened_at(arena: Arena, query_id, name, order_, position_, shown=None):
    """The position and the page view there."""
    # Every event that moves the Annotate tab draws the page in the same event, never in a
    # `.then` step: the browser ignores the judging keys and buttons while a view is on its
    # way (static/shortcuts.js), which it can tell only while one event covers it. A view
    # drawn in a second step, before a judgment made between the steps, arrived after it
    # and showed the old count.
    return (position_, *_view(arena, query_id, name, order_, position_, shown))


# The results start below the intro, the upload and the examples (~840 px down at 1400×900): a
# finished ranking brings its first model's header into view, unless it is already in view (or
# on another tab, where it has no box).
SHOW_RESULTS = ("() => { const top = document.querySelector('#header-a')?.getBoundingClientRect().top;"
                " if (top > window.innerHeight * 0.6)"
                " document.querySelector('#header-a').scrollIntoView({behavior: 'smooth', block: 'start'}); }")


def _wire_rank(arena: Arena, rank: SimpleNamespace, annotate: SimpleNamespace, shared: SimpleNamespace) -> None:
    """/rank returns data; a second, private step draws it; a third opens Annotate on the query."""
    files, query, instruction, budget_a = rank.files, rank.query, rank.instruction, rank.budget_a
    budget_b, dpi, rank_button, status = rank.budget_b, rank.dpi, rank.rank_button, rank.status
    header_a, gallery_a, header_b, gallery_b = rank.header_a, rank.gallery_a, rank.header_b, rank.gallery_b
    detail_image, detail_text, agreement, scatter = rank.detail_image, rank.detail_text, rank.agreement, rank.scatter
    annotator, order, query_pick, jump = annotate.annotator, annotate.order, annotate.query_pick, annotate.jump
    position, view_outputs = annotate.position, annotate.view_outputs
    ranking_state, tab_open = shared.ranking_state, shared.tab_open
    opened_at = functools.partial(_opened_at, arena)

    rank_outputs = [status, header_a, gallery_a, header_b, gallery_b, agreement, scatter, detail_image, detail_text]

    def on_rank(files, query, instruction, budget_a, budget_b, dpi, progress=gr.Progress()) -> dict:
        """Rank uploaded PDFs/images for a query with both models.

        Returns {query, instruction, query_id, pages: [...], models: {key: {label, scores,
        ranking: [{rank, page, score, source, page_number, content_hash}], seconds, scored,
        stored, pages_per_second, error}}, agreement, problems, notes}: `scored` pages ran
        through the model in `seconds`, `stored` ones had a score from an earlier ranking.
        """
        return rank_pages(arena, files, query, instruction, budget_a, budget_b, dpi, progress)

    def draw_ranking(data):
        status_, header_a_, items_a, header_b_, items_b, *rest = show_ranking(arena, data)
        # New thumbnails in place of the old: none is the page shown large (it was cleared).
        return (status_, header_a_, gr.Gallery(items_a, selected_index=None), header_b_,
                gr.Gallery(items_b, selected_index=None), *rest)

    def rank_inputs_valid(files_, query_, instruction_, *settings):
        """Each problem under its box, before the request queues (not an error over the page)."""
        problems = rank_input_problems(files_, query_, instruction_)
        return [*(gr.validate(problem is None, problem or "") for problem in problems),
                *(gr.validate(True, "") for _ in settings)]

    def picked_latest(data, name, order_, current, tab, shown):
        """The Annotate tab on the query just ranked (unless someone is judging there)."""
        listing, new_position = _pick_latest(arena, data, name, order_, current, tab)
        if not data or data.get("query_id") is None or not isinstance(new_position, int):  # nothing ranked, or kept
            return (listing, *(gr.skip() for _ in (position, *view_outputs)))
        return (listing, *opened_at(data["query_id"], name, order_, new_position, shown))

    for trigger in (rank_button.click, query.submit):
        trigger(on_rank, [files, query, instruction, budget_a, budget_b, dpi], ranking_state, validator=rank_inputs_valid,
                # Up to RANK_CONCURRENCY rankings read, render and save at once; their
                # model work takes turns (Arena.scoring), so a slow upload holds up no one.
                api_name="rank" if trigger == rank_button.click else False, concurrency_id="rank",
                concurrency_limit=RANK_CONCURRENCY,
                # The progress bar shows on these: the event's own output is the hidden JSON.
                show_progress_on=[status, gallery_a, gallery_b],
                api_visibility="public" if trigger == rank_button.click else "private",
                ).then(draw_ranking, ranking_state, rank_outputs, api_visibility="private",
                       ).then(None, None, None, js=SHOW_RESULTS, api_visibility="private",
                              ).then(picked_latest, [ranking_state, annotator, order, query_pick, tab_open, jump],
                                     [query_pick, position, *view_outputs], api_visibility="private")

    def on_select(key):
        def handler(data, evt: gr.SelectData):
            return select_page(arena, data, key, evt)
        return handler

    # Below the galleries (far below, at phone width): brought into view when off screen.
    show_detail = ("() => { const box = document.querySelector('#detail-image');"
                   " if (box && box.getBoundingClientRect().top > window.innerHeight * 0.6)"
                   " box.scrollIntoView({behavior: 'smooth', block: 'start'}); }")
    # Progress on the large view only: on the other gallery (an output, for its mark) it blanked it.
    gallery_a.select(on_select(A_KEY), ranking_state, [detail_image, detail_text, gallery_b], api_visibility="private",
                     show_progress_on=[detail_image]).then(None, None, None, js=show_detail, api_visibility="private")
    gallery_b.select(on_select(B_KEY), ranking_state, [detail_image, detail_text, gallery_a], api_visibility="private",
                     show_progress_on=[detail_image]).then(None, None, None, js=show_detail, api_visibility="private")


def _wire_annotate(arena: Arena, annotate: SimpleNamespace, shared: SimpleNamespace, demo: gr.Blocks) -> None:
    """Judging, moving, choosing a query, order or name; the guidelines; the page load."""
    annotator, order, query_pick, refresh = annotate.annotator, annotate.order, annotate.query_pick, annotate.refresh
    relevant, not_relevant, skip = annotate.relevant, annotate.not_relevant, annotate.skip
    undo_button, previous, following = annotate.undo_button, annotate.previous, annotate.following
    jump, guidelines, guidelines_saved = annotate.jump, annotate.guidelines, annotate.guidelines_saved
    guidelines_version, save_guidelines = annotate.guidelines_version, annotate.save_guidelines
    position, shown_page, page_total = annotate.position, annotate.shown_page, annotate.page_total
    view_inputs, view_outputs = annotate.view_inputs, annotate.view_outputs
    saved_name, saved_query, saved_order = shared.saved_name, shared.saved_query, shared.saved_order
    view, opened_at = functools.partial(_view, arena), functools.partial(_opened_at, arena)

    def refresh_choices(name, current):
        choices = query_choices(arena, typed_annotator(arena, name))
        values = [value for _, value in choices]
        return gr.update(choices=choices, value=current if current in values else (values[0] if values else None))

    # Judging, undo and page turning are ONE event listener that updates the position and the
    # page on screen together. (As separate listeners, each followed by a view update, a key
    # pressed before the screen changed sent the old page's id: "r" then "n" relabelled a
    # page, and a position moved ahead of its page skipped one.) A press while an action is
    # running is ignored (trigger mode "once"): nobody can mean a page not yet on screen.
    moved_outputs = [position, *view_outputs, query_pick]
    actions = ((relevant, "relevant"), (not_relevant, "not_relevant"), (skip, "skip"),
               (undo_button, "undo"), (previous, "previous"), (following, "next"))

    def moved_to(query_id, name, order_, new_position, shown=None, counts_changed=False):
        """The page at `new_position`; after a judgment or an undo, the query list too."""
        listing = query_list_after_judging(arena, name) if counts_changed else gr.skip()
        return (new_position, *view(query_id, name, order_, new_position, shown), listing)

    def on_action(query_id, name, order_, position_, shown, on_screen, total, event: gr.EventData,
                  profile: gr.OAuthProfile | None = None, request: gr.Request = None):
        profile = signed_in(profile, request)
        action = next(action for button, action in actions if button is event.target)
        screen_query, _, page = (on_screen or "").partition(" ")
        if screen_query and query_id not in (None, "") and int(screen_query) != int(query_id):
            # The list names a query whose page is not on screen yet (the view follows the
            # choice): a key pressed now judged the old query's page under the new query.
            return tuple(gr.skip() for _ in moved_outputs)
        page = page or None
        try:
            new_position, counts_changed = annotate_action(arena, action, query_id, name, order_, int(position_ or 0),
                                                           page, int(total or 1), profile)
        except gr.Error as error:
            # A toast over the page, which stays as it was: raised, the error would blank the
            # page and mark every panel "Error" until the next action.
            if error.print_exception:  # not a refusal of what the person did: the server failed
                logger.exception("annotating failed: %s", error.message)
            gr.Warning(error.message)
            return tuple(gr.skip() for _ in moved_outputs)
        return moved_to(query_id, name, order_, new_position, shown, counts_changed)

    gr.on([button.click for button, _ in actions], on_action, [*view_inputs, shown_page, page_total], moved_outputs,
          trigger_mode="once", api_visibility="private")
    # The box is always redrawn: it shows the page's number, not what was typed ("2.7", "99").
    jump.submit(lambda q, name, o, value, total: moved_to(q, name, o, jump_position(arena, q, value, total)),
                [query_pick, annotator, order, jump, page_total], moved_outputs, api_visibility="private")
    # A query (re)opens where this annotator left it: at the first page they have not judged.
    def resumed(query_id, name, order_, shown):
        return opened_at(query_id, name, order_, resume_position(arena, query_id, name, order_), shown)

    def picked(query_id, name, order_, shown, on_screen):
        """A choice from the list, by mouse or by keyboard: `input` (Enter sends no `select`). The
        list also sends it when it merely closes, and a click sends it twice: the query already
        on screen is left as it is (and where the annotator is in it)."""
        if query_id in (None, "") or (on_screen or "").partition(" ")[0] == str(query_id):
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
                *opened_at(target, name, order_, first_to_judge(arena, target, name, order_), shown))

    # "once": a second Q while the first query opens would skip a query nobody saw.
    annotate.next_query.click(next_to_judge, [query_pick, annotator, order, jump],
                              [query_pick, saved_query, position, *view_outputs], trigger_mode="once",
                              api_visibility="private")
    # `input`: a choice by the person (the page load setting the remembered order is none).
    order.input(lambda q, name, o, shown: (o, *resumed(q, name, o, shown)), [query_pick, annotator, order, jump],
                [saved_order, position, *view_outputs], api_visibility="private")

    def refreshed(query_id, name, order_, position_, shown):
        """The query list with this annotator's counts, and the page view (takes `view_inputs`)."""
        listing = refresh_choices(name, query_id)
        return (listing, *view(listing["value"], name, order_, position_, shown))

    def name_entered(name, saved, query_id, order_, position_, shown):
        """Remember the name; another annotator's name resumes their own progress."""
        moved = (name or "").strip() != (saved or "").strip()
        position_ = resume_position(arena, query_id, name, order_) if moved else position_
        return (name, position_, *refreshed(query_id, name, order_, position_, shown))

    # Enter applies the name as leaving the box does.
    gr.on([annotator.blur, annotator.submit], name_entered, [annotator, saved_name, query_pick, order, position, jump],
          [saved_name, position, query_pick, *view_outputs], api_visibility="private")
    refresh.click(refreshed, view_inputs, [query_pick, *view_outputs], api_visibility="private")
    def on_save_guidelines(text, name, version, profile: gr.OAuthProfile | None = None, request: gr.Request = None):
        profile = signed_in(profile, request)
        try:
            return _write_guidelines(arena, text, name, profile, based_on=version)
        except GuidelinesConflict as conflict:
            # Their text under the box, the edit left in it; the next Save (of the merge) is
            # an edit of their version.
            gr.Warning(conflict.message)
            return _conflict_line(conflict.latest), conflict.latest.id
        except Refusal as refusal:  # said in a toast; an error here would badge the line below the box
            gr.Warning(refusal.message)
            return gr.skip(), version  # the line stays (a colleague's version shown to merge, say)

    save_guidelines.click(on_save_guidelines, [guidelines, annotator, guidelines_version],
                          [guidelines_saved, guidelines_version], api_visibility="private")
    # Read on every page load (a value read once, at start-up, would show stale guidelines
    # that the next Save would write back over a colleague's; a colleague's save after the
    # load is caught by the version).
    demo.load(lambda: _read_guidelines(arena), None, [guidelines, guidelines_saved, guidelines_version],
              api_visibility="private")

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
                *opened_at(query_id, name, order_, resume_position(arena, query_id, name, order_)))

    demo.load(restore, [saved_name, saved_query, saved_order], [annotator, query_pick, order, position, *view_outputs],
              api_visibility="private")


def _wire_export(arena: Arena, export: SimpleNamespace, demo: gr.Blocks) -> None:
    """Preview, then export (the /export endpoint)."""
    fmt, rule, k, max_negatives = export.fmt, export.rule, export.k, export.max_negatives
    export_annotator, since, until = export.export_annotator, export.since, export.until
    agreement_only, mined, negatives_per_row = export.agreement_only, export.mined, export.negatives_per_row
    preview_button, export_button, export_summary = export.preview_button, export.export_button, export.export_summary
    export_download = export.export_download

    export_inputs = [fmt, rule, k, max_negatives, export_annotator, since, until, agreement_only, mined, negatives_per_row]
    # Also on opening the tab (judgments made since the last preview count) and on another format
    # or rule (the counts on screen were the other one's).
    gr.on([preview_button.click, export.tab.select, fmt.change, rule.change, export_annotator.input],
          lambda *o: preview_view(arena, *o), export_inputs, export_summary, trigger_mode="always_last",
          api_visibility="private")
    # Annotators who judged since the page loaded are offered as soon as the tab opens.
    gr.on([demo.load, export.tab.select, preview_button.click], lambda: label_choices(arena), None, export_annotator,
          api_visibility="private")

    # Whether the options just checked on screen can be exported. A State is no API parameter:
    # an API client's session keeps True, so its /export call reports what is wrong itself.
    export_ok = gr.State(True)

    # Defaults of None make the empty text boxes optional for API clients (`Client.predict(api_name="/export")`).
    def on_export(fmt, rule, k, max_negatives, annotator=None, since=None, until=None, agreement=False, mined=False,
                  negatives_per_row=None, ok=True):
        """Export the stored judgments as hard-negative training data (zip or parquet file)."""
        if not ok:  # the Preview box says what is wrong: no error over the page, nor in the Download box
            return None
        return export_file(arena, fmt, rule, k, max_negatives, annotator, since, until, agreement, mined, negatives_per_row)

    def export_started(*options):
        summary, ok = preview_check(arena, *options)
        return None, summary, ok

    # First the earlier file goes (a failed export left it on offer) and the counts become those
    # of the file about to be made, or what is wrong (a preview of other options stayed on
    # screen); then the export, unless that showed what is wrong.
    export_button.click(export_started, export_inputs, [export_download, export_summary, export_ok],
                        api_visibility="private",
                        ).then(on_export, [*export_inputs, export_ok], export_download, api_name="export")


def _wire_evaluate(arena: Arena, evaluate: SimpleNamespace, demo: gr.Blocks) -> None:
    """The evaluation, on opening the tab and on the button; the Labels choices."""
    evaluate_tab, eval_annotator, eval_button = evaluate.tab, evaluate.eval_annotator, evaluate.eval_button
    eval_headline, metrics_table, metrics_plot = evaluate.eval_headline, evaluate.metrics_table, evaluate.metrics_plot
    differences_table, eval_notes = evaluate.differences_table, evaluate.eval_notes
    per_query_table, mistakes_a, mistakes_b = evaluate.per_query_table, evaluate.mistakes_a, evaluate.mistakes_b
    spec_a, spec_b = get_spec(A_KEY), get_spec(B_KEY)

    eval_outputs = [eval_headline, metrics_table, metrics_plot, differences_table, per_query_table, eval_notes,
                    mistakes_a, mistakes_b, evaluate.openable, evaluate.chosen,
                    evaluate.chosen_line, evaluate.open_in_annotate]

    def on_evaluate(labels):
        """Evaluate each model's stored scores against the human labels."""
        try:
            summary, bars, differences, per_query, notes, found_a, found_b, pages = evaluate_view(arena, labels)
        except Refusal as refusal:  # a toast; raised, it put an "Error" badge on every panel
            gr.Warning(refusal.message)
            return tuple(gr.skip() for _ in eval_outputs)
        # Means to four places; a query's own values to three, so its 13 columns fit 1400 px.
        return (evaluation_headline(summary, labels), _places(summary, 4), bars, differences, _places(per_query, 3), notes,
                *(gr.update(value=found, label=mistakes_heading(summary, spec.label, found))
                  for spec, found in ((spec_a, found_a), (spec_b, found_b))),
                # The galleries are new: nothing in them is chosen.
                pages, None, OPEN_IN_ANNOTATE_HINT, gr.update(interactive=False))

    # Also on opening the tab: before, it showed empty tables headed "1 2 3" until pressed; and
    # on another choice of labels (the numbers on screen were the last choice's).
    # "always_last": a press while the opening run works still counts (with "once" it was dropped).
    gr.on([evaluate_tab.select, eval_button.click, eval_annotator.change], on_evaluate, eval_annotator, eval_outputs,
          trigger_mode="always_last", api_visibility="private")
    # Annotators who judged since the page loaded are offered as soon as the tab opens.
    gr.on([demo.load, evaluate_tab.select, eval_button.click], lambda: label_choices(arena), None, eval_annotator,
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
    line = f"Chosen: “{escape(_shortened(summary.text, 80) + summary.instruction_tag + told_apart)}”, {summary.pages} pages"
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
            f"for “{escape(_shortened(summary.text, 80) + summary.instruction_tag)}”")
    return (int(query_id), page_hash), line, gr.update(interactive=True)


def _wire_open_in_annotate(arena: Arena, evaluate: SimpleNamespace, annotate: SimpleNamespace,
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
                *_opened_at(arena, query_id, name, order_, position))

    button.click(opened, [chosen, annotator, order],
                 [tabs, shared.tab_open, query_pick, shared.saved_query, annotate.position, *annotate.view_outputs],
                 api_visibility="private",
                 # The page was scrolled down to the galleries: Annotate opened with its query and
                 # progress above the screen.
                 ).then(None, None, None, js="() => window.scrollTo({top: 0})", api_visibility="private")


def _register_api(arena: Arena) -> None:
    """The API-only endpoints: /judge, /undo, /evaluate."""

    # On a Space that requires login (see login_required) the annotator is the signed-in
    # user of the request's session; `annotator` may then be empty or that same name.
    def judge_api(query_id: int, page_hash: str, annotator: str, label: str,
                  profile: gr.OAuthProfile | None = None, request: gr.Request = None) -> dict:
        """Record a judgment: label is relevant, not_relevant or skip. Returns the annotator's progress."""
        return judge(arena, query_id, page_hash, annotator, label, signed_in(profile, request))

    def undo_api(query_id: int, annotator: str, profile: gr.OAuthProfile | None = None,
                 request: gr.Request = None) -> dict:
        """Undo the annotator's latest judgment on the query (history is kept)."""
        return undo(arena, query_id, annotator, signed_in(profile, request))

    def evaluate_api(annotator: str = "") -> dict:
        """Metrics of each model against the human labels (annotator's, or the majority vote)."""
        from .evaluate import evaluate_store

        try:
            return json.loads(json.dumps(evaluate_store(arena.store, annotator or None).to_dict(), default=str))
        except ValueError as error:
            raise refuse(str(error)) from None

    gr.api(judge_api, api_name="judge")
    gr.api(undo_api, api_name="undo")
    gr.api(evaluate_api, api_name="evaluate")


def _pick_latest(arena: Arena, data: dict, annotator: str | None = None, order: str = ORDERS[0],
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


def _read_guidelines(arena: Arena) -> tuple[str, str, int]:
    """The guidelines box's text, who saved it when (empty before anyone has), and its version
    (0: none saved), which a Save of an edit names (`Store.save_guidelines`'s `based_on`)."""
    saved = arena.store.guidelines()
    if saved is None:
        return DEFAULT_GUIDELINES, "", 0
    return saved.text, _saved_line(saved), saved.id


def _saved_line(saved) -> str:
    return escape(saved.saved) + "."


def _conflict_line(latest) -> str:
    """Under the box after a refused Save: the colleague's newer version, to merge."""
    quoted = "\n".join(f"> {escape(line)}" if line.strip() else ">" for line in latest.text.splitlines()) or "> (empty)"
    return (f"**Not saved**: newer guidelines came in after you loaded the page ({escape(latest.saved)}). "
            f"Theirs, to merge into yours (the next Save replaces them):\n\n{quoted}")


def _remove_old_exports(cache_dir: Path) -> None:
    """Before an export is made: each is a new file of every judged page, so those older than
    EXPORT_KEEP_SECONDS go, and all but the EXPORTS_KEPT − 1 newest (anyone may export: a loop of
    exports filled the disk within the hour, and then judging failed)."""
    cutoff = time.time() - EXPORT_KEEP_SECONDS
    folders = []
    for folder in Path(cache_dir).glob("export-*"):
        with contextlib.suppress(OSError):  # removed meanwhile by another export
            if folder.is_dir():
                folders.append((folder.stat().st_mtime, folder))
    for index, (made, folder) in enumerate(sorted(folders, key=lambda item: item[0], reverse=True)):
        if made < cutoff or index >= EXPORTS_KEPT - 1:
            shutil.rmtree(folder, ignore_errors=True)


def _write_guidelines(arena: Arena, text: str, name: str | None = None, profile: gr.OAuthProfile | None = None,
                      based_on: int | None = None) -> tuple[str, int]:
    """Save the guidelines (the earlier versions stay in the database), by the signed-in user where
    login is required (anyone else could rewrite the team's guidelines), else by the typed name,
    if any. `based_on`: the version the box was loaded with; where a colleague saved another since,
    nothing is saved and the message says so. Returns the who-and-when line and the version."""
    if len(text or "") > MAX_GUIDELINES_CHARS:
        raise refuse(f"The guidelines are {len(text):,} characters long; at most {MAX_GUIDELINES_CHARS:,} are kept.")
    if login_required():
        if profile is None:
            raise refuse("Sign in with Hugging Face (top of the Annotate tab) to change the guidelines: "
                         "on this Space each change carries its author's Hugging Face name.")
        author = profile.username
    elif not (name or "").strip():
        raise refuse("Enter your name (top of the Annotate tab) before saving the guidelines: the team "
                     "sees who changed them.")
    else:
        author = arena.store.known_annotator(annotator_name(name))
    try:
        saved = arena.store.save_guidelines(text or "", author, based_on)
    except GuidelinesChanged as error:
        raise GuidelinesConflict(error.latest) from None
    except StoreError as error:  # e.g. a full disk
        raise gr.Error(plain(error)) from None
    gr.Info("Guidelines saved." if saved.id != based_on else "The guidelines already say this: nothing new to save.")
    return _saved_line(saved), saved.id


def launch_options(arena: Arena) -> dict:
    """What goes to `launch()` in Gradio 6 (css/js/head belong there, not to Blocks)."""
    return dict(
        css=(STATIC / "arena.css").read_text(encoding="utf-8"),
        js=browser_script(),
        allowed_paths=[str(arena.cache_dir)],
        # Never the database file, even in the cache folder (both on a Space's /data, say): the
        # whole file, with every version of everything, was one download away.
        blocked_paths=[str(arena.store.path) + suffix for suffix in ("", "-wal", "-shm", "-journal")],
        max_file_size=MAX_UPLOAD,
    )


def shut_down(arena: Arena, wait_s: float = 5.0) -> None:
    """After the server has stopped (Ctrl-C, SIGTERM): uploads still being read give up their
    pages, and model work under way gets `wait_s` seconds to end. A thread still inside torch
    when Python exits aborts the process (SIGABRT, "terminate called without an active
    exception"), so past that the process ends without Python's exit (every judgment is already
    committed; the ranking under way was not yet stored, and its visitor is told to rank again).
    (app.py ends the process at once on a second stop signal.)"""
    from .rendering import close_pool

    close_pool()  # a request still reading a PDF gives up its pages now, not after rendering on
    if arena.scoring.stop(wait_s):
        return
    logger.warning("a ranking's model work is still running; stopping without waiting for it")
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def create_arena(db_path: str | None = None, cache_dir: str | None = None, preload: bool | None = None) -> Arena:
    """The shared state: a model pool (preloaded on a GPU, lazy on a CPU), the store, a cache folder."""
    from .loading import check_configuration

    # Settings both models read are refused now, not at the first ranking (models load lazily
    # on a CPU); a path to one model's weights that is no folder is said in the log.
    for problem in check_configuration(MODELS):
        logger.warning(problem)
    pool = ranking.ModelPool(compile=devices.env_flag("RERANKER_COMPILE"))
    cache = Path(cache_dir or os.environ.get("RERANKER_CACHE") or Path(tempfile.gettempdir()) / "rerank-arena")
    try:
        cache.mkdir(parents=True, exist_ok=True)
    except OSError as error:  # a file there, no permission: FileExistsError named neither
        raise ValueError(f"RERANKER_CACHE={cache}: the image cache folder cannot be made there "
                         f"({error.strerror or error})") from None
    arena = Arena(pool, Store(db_path), cache)
    if removed := rendering.sweep_render_folders():
        logger.info("removed %d render folder(s) left by stopped processes: %s", len(removed), ", ".join(removed))
    device = devices.default_device()
    # What the operator set, in one line (on a Space the log is all they see).
    logger.info("database %s · image cache %s · models on %s in %s, %s · judging %s", arena.store.path, cache, device,
                str(devices.default_dtype(device)).removeprefix("torch."),
                "at start-up" if (preload if preload is not None else device.type == "cuda") else "loaded at first use",
                "needs a Hugging Face login" if login_required() else "by typed name")
    if hint := operator_hint():
        logger.warning(hint)
    if preload if preload is not None else device.type == "cuda":
        for key in MODELS:
            try:
                pool.get(key)
            except ranking.ModelUnavailable:
                pass  # shown in that model's column
    return arena
