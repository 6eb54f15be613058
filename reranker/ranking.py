"""Documents → pages → both models' scores: the one path the app, the CLI and the benchmark share.

`ModelPool` loads each model once per process (lazily, thread-safe) and remembers why a model
could not load, so one missing model never stops the other. `rank()` ingests the uploads,
scores every page with every available model and returns plain data for the UI to show.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from . import metrics
from .lru import LRUCache
from .documents import IngestOptions, Page, Problem, load_files
from .models import MODELS, UnknownModelError, get_spec
from .text_rules import is_blank, same_text

log = logging.getLogger(__name__)

# (fraction done in [0, 1], what is happening) — shaped for gr.Progress.
ProgressCallback = Callable[[float, str], None]


class ModelPool:
    """Each reranker loaded once per process and shared by every request.

    A model that failed to load is tried again by the first request `retry_after` seconds later
    (a Hub hiccup at start-up must not disable it until a restart); meanwhile requests get the
    reason at once. `retry_after=None`: never again (a one-off command).
    """

    def __init__(self, keys: Iterable[str] = tuple(MODELS), loader: Callable | None = None,
                 retry_after: float | None = 300.0, **load_options):
        self.keys = tuple(get_spec(key).key for key in keys)  # an unknown key: UnknownModelError, naming the valid ones
        self._loader = loader
        self._load_options = load_options
        self._models: dict = {}
        self._errors: dict[str, tuple[str, float]] = {}  # key → (reason, when it failed)
        self._locks = {key: threading.Lock() for key in self.keys}
        self.retry_after = retry_after

    @classmethod
    def of(cls, pool: ModelPool | Mapping) -> ModelPool:
        """`pool` itself, or a pool of the rerankers a mapping (key → loaded Reranker) holds."""
        if isinstance(pool, ModelPool):
            return pool
        if not isinstance(pool, Mapping):
            raise TypeError(f"pool must be a ModelPool or a mapping of model keys to rerankers, got {type(pool).__name__}")
        loaded = cls(pool.keys(), retry_after=None)
        loaded._models.update({loaded.keys[index]: reranker for index, reranker in enumerate(pool.values())})
        return loaded

    def get(self, key: str):
        """The loaded reranker, or raise `ModelUnavailable` with the reason it could not load
        (`UnknownModelError` for a key not in the pool)."""
        if key in self._models:
            return self._models[key]
        if key not in self._locks:
            raise UnknownModelError(f"model {key!r} is not in this pool; its keys: {', '.join(self.keys)}")
        with self._locks[key]:
            failed = self._errors.get(key)
            if failed is not None and self.retry_after is not None and time.monotonic() - failed[1] >= self.retry_after:
                del self._errors[key]
            if key not in self._models and key not in self._errors:
                try:
                    self._models[key] = self._load(key)
                except Exception as error:  # shown in the model's column; the other model still works
                    reason = f"{type(error).__name__}: {error}" if not str(error) else str(error)
                    self._errors[key] = (reason, time.monotonic())
                    # The operator's copy (a visitor sees it in the column): once per attempt.
                    again = "" if self.retry_after is None else f" (tried again in {self.retry_after:.0f} s)"
                    log.warning("%s could not load%s: %s", key, again, reason)
        if key in self._errors:
            raise ModelUnavailable(key, self._errors[key][0])
        return self._models[key]

    def _load(self, key: str):
        if self._loader is not None:
            return self._loader(key)
        from .loading import load_reranker

        return load_reranker(key, **self._load_options)

    def error(self, key: str) -> str | None:
        failed = self._errors.get(key)
        return failed[0] if failed else None

    def loaded(self, key: str) -> bool:
        return key in self._models


class ModelUnavailable(RuntimeError):
    def __init__(self, key: str, reason: str):
        super().__init__(f"{get_spec(key).label} is unavailable: {reason}")
        self.key = key
        self.reason = reason


@dataclass
class ModelRanking:
    key: str
    label: str
    scores: list[float] | None  # aligned with RankingResult.pages; None when the model failed
    seconds: float = 0.0  # the model's time on the pages it scored in this request
    error: str | None = None
    settings: dict = field(default_factory=dict)
    scored: int = 0  # distinct pages the model ran on in this request
    stored: int = 0  # pages whose score came from the store (an earlier ranking)

    @property
    def order(self) -> list[int]:
        """Page indices best first; equal scores (one page uploaded twice, say) in upload order,
        as the store's ranks (and so the exports) break them."""
        if self.scores is None:
            return []
        return metrics.rank_pages(dict(enumerate(self.scores)))

    @property
    def ranks(self) -> dict[int, int]:
        """Page index → 1-based rank."""
        return {index: rank for rank, index in enumerate(self.order, start=1)}

    @property
    def pages_per_second(self) -> float | None:
        """The model's speed on the pages it scored (stored scores took no model time)."""
        if self.scores is None or self.seconds <= 0 or not self.scored:
            return None
        return self.scored / self.seconds


@dataclass
class RankingResult:
    query: str
    instruction: str | None
    pages: list[Page]
    problems: list[Problem]
    notes: list[str]
    rankings: dict[str, ModelRanking]
    ingest_seconds: float
    documents: list = field(default_factory=list)

    def agreement(self, k: int = 5) -> metrics.ModelAgreement | None:
        scored = [ranking for ranking in self.rankings.values() if ranking.scores is not None]
        if len(scored) < 2:
            return None
        first, second = scored[:2]
        return metrics.model_agreement(dict(enumerate(first.scores)), dict(enumerate(second.scores)), k=k)

    def as_dict(self, query_id: int | None = None, top: int | None = None) -> dict:
        """The ranking as plain data: what the app's /rank returns and `score --json` prints.
        `query_id`: where it is stored (None: not stored); `top`: each model's ranking list cut to
        its first `top` entries (the scores and pages stay whole)."""
        agreement = self.agreement()
        models = {}
        for key, model in self.rankings.items():
            entries = []
            # "page" indexes `pages`; the content hash tells apart pages of files with one name.
            for rank, index in enumerate(model.order[:top] if top else model.order, start=1):
                page = self.pages[index]
                entries.append(dict(rank=rank, page=index, score=model.scores[index], content_hash=page.content_hash,
                                    source=page.source, page_number=page.page_number))
            models[key] = dict(
                label=model.label, error=model.error, seconds=round(model.seconds, 3),
                scored=model.scored, stored=model.stored,
                pages_per_second=model.pages_per_second, scores=model.scores, ranking=entries,
                settings=model.settings,
            )
        return dict(
            query=self.query, instruction=self.instruction, query_id=query_id,
            pages=[dict(page=i, content_hash=p.content_hash, source=p.source, page_number=p.page_number,
                        kind=p.kind, page_count=p.page_count, width=p.width, height=p.height) for i, p in enumerate(self.pages)],
            models=models,
            agreement=None if agreement is None else dict(
                kendall_tau=agreement.kendall_tau, spearman=agreement.spearman, k=agreement.k,
                topk_overlap=agreement.topk_overlap,
                disagreements=[dict(page=d.page_id, rank_a=d.rank_a, rank_b=d.rank_b) for d in agreement.disagreements],
            ),
            problems=[str(problem) for problem in self.problems],
            notes=list(self.notes),
            ingest_seconds=round(self.ingest_seconds, 3),
        )


def instruction_for(reranker, instruction: str | None) -> str | None:
    """The ranking's instruction for a model whose prompt has one; None for one trained with a
    fixed prompt (Qwen3RerankerMM), which would not use it."""
    spec = getattr(reranker, "spec", None)
    return instruction if spec is None or spec.takes_instruction else None


def ingest(files: Sequence, options: IngestOptions | None = None, cache=None):
    """Uploads (paths, (name, bytes) pairs, or already loaded Pages) → pages, problems, notes."""
    if isinstance(files, (str, os.PathLike, Page)):  # one file: not a sequence of its characters
        files = [files]
    pages = [item for item in files if isinstance(item, Page)]
    others = [item for item in files if not isinstance(item, Page)]
    if not others:
        return pages, [], [], []
    loaded = load_files(others, options, cache=cache)
    return pages + loaded.pages, loaded.problems, loaded.notes, loaded.documents


@dataclass
class Scored:
    """One model's fresh scores for the pages it was given (aligned), or why it failed."""

    scores: list[float] | None
    seconds: float = 0.0
    error: str | None = None
    # Content hashes whose score a ranking running at the same moment had just computed
    # (see ScoringTurns): no model time was spent on them here.
    reused: frozenset[str] = frozenset()


class RankingAbandoned(RuntimeError):
    """Nobody wants this ranking any more (its browser page was closed, or its visitor pressed
    Stop): it stopped at its next progress report, and nothing of it was stored. `why`: as
    `abandoned()` said it."""

    def __init__(self, why: str = "nobody waits for it"):
        super().__init__(f"the ranking stopped: {why}")
        self.why = why

    def __reduce__(self):  # raised in ZeroGPU's worker, it comes back pickled: as it was, not "stopped: stopped: …"
        return type(self), (self.why,)


@dataclass
class CheckedProgress:
    """A ranking's progress reports, each first asking `abandoned()` (why the ranking is no
    longer wanted, or a false value): when it answers, the report raises `RankingAbandoned`, so
    the work stops there (between two batches of a model, say) and gives its turn with the
    models to the next ranking.

    Plain data when `progress` and `abandoned` are (ZeroGPU's worker gets it pickled; there,
    `abandoned` is the copy taken as the work began, so a page closed then no longer stops it)."""

    progress: ProgressCallback | None = None
    abandoned: Callable[[], str | bool | None] | None = None

    def __call__(self, fraction: float, message: str) -> None:
        if self.abandoned is not None and (why := self.abandoned()):
            raise RankingAbandoned(why) if isinstance(why, str) else RankingAbandoned()
        if self.progress is not None:
            self.progress(fraction, message)


class AppStopping(RuntimeError):
    """The app is stopping: no ranking starts model work any more (`ScoringTurns.stop`)."""

    def __init__(self):
        super().__init__("the app is stopping; rank again once it is back")


class ScoringTurns:
    """A `scorer` for `rank` shared by rankings that run at once (the app's visitors): their model
    work goes one at a time (the models, their caches and the GPU are shared), and a ranking that
    waited takes what the one before it has just scored for the same (model, image budget, query,
    instruction, page), before that ranking has saved it: three visitors who click the same
    example cost one model run, not three.

    `score` has `score_pages`'s signature (the app's wraps it for ZeroGPU).
    """

    WAIT_REPORT_SECONDS = 0.5  # how often a ranking waiting for its turn reports (and may stop)

    def __init__(self, score: Callable[..., dict[str, Scored]] | None = None, remember: int = 10_000):
        self._score = score or score_pages
        self._lock = threading.Lock()
        # (model, budget, prompt digest, page hash) → score. A digest of the query and the
        # instruction, not their texts (each up to 10,000 characters): this LRU counts entries,
        # and with the texts in its keys its 10,000 held up to ~0.8 GB.
        self._recent = LRUCache(remember)
        self._stopping = False

    def stop(self, timeout: float) -> bool:
        """Start no more model work, and wait up to `timeout` seconds for the work under way to
        end. True when none is running (the turn is then kept: nothing starts after it).

        Why: a thread still inside torch as Python exits aborts the process ("terminate called
        without an active exception", SIGABRT), so the app waits for it, or exits without
        finalizing (see `ui.shut_down`)."""
        self._stopping = True
        return self._lock.acquire(timeout=timeout)

    def __call__(self, pool, query: str, work: Mapping[str, list[Page]], instruction: str | None = None,
                 max_pixels: Mapping[str, int] | None = None, progress: ProgressCallback | None = None) -> dict[str, Scored]:
        if self._stopping:
            raise AppStopping()
        waited = False
        while not self._lock.acquire(timeout=self.WAIT_REPORT_SECONDS if waited else 0):
            # Reported again and again: a ranking stopped while it waits leaves here
            # (CheckedProgress raises), not once the ranking before it is done.
            if progress is not None:
                progress(0.1, "Waiting for another ranking to finish with the models…")
            waited = True
        try:
            if self._stopping:  # waited while the app began to stop
                raise AppStopping()
            if waited and progress is not None:  # stopped in the last moment of its wait: stops here
                progress(0.1, "Scoring")
            budgets = dict(max_pixels or {})
            # JSON keeps None and "" apart, and encodes any string (a lone surrogate too).
            prompt = hashlib.sha256(json.dumps([query, instruction]).encode()).hexdigest()

            def memo(key: str, page: Page) -> tuple:
                return key, budgets.get(key), prompt, page.content_hash

            known = {key: {page.content_hash: score for page in pages
                           if (score := self._recent.get(memo(key, page))) is not None}
                     for key, pages in work.items()}
            todo = {key: [page for page in pages if page.content_hash not in known[key]] for key, pages in work.items()}
            todo = {key: pages for key, pages in todo.items() if pages}
            fresh = self._score(pool, query, todo, instruction, max_pixels, progress) if todo else {}
            results = {}
            for key, pages in work.items():
                scored = fresh.get(key, Scored([]))
                if scored.scores is None:  # the model failed: its column says why
                    results[key] = scored
                    continue
                for page, score in zip(todo.get(key, []), scored.scores):
                    known[key][page.content_hash] = score
                    self._recent.put(memo(key, page), score)
                reused = frozenset(known[key]) - {page.content_hash for page in todo.get(key, [])}
                results[key] = Scored([known[key][page.content_hash] for page in pages], scored.seconds, reused=reused)
            return results
        finally:
            self._lock.release()


def score_pages(pool: ModelPool | Mapping, query: str, work: Mapping[str, list[Page]], instruction: str | None = None,
                max_pixels: Mapping[str, int] | None = None, progress: ProgressCallback | None = None) -> dict[str, Scored]:
    """The model work of a ranking: each model's pages (`work`: key → pages), one model after the
    other. A model that fails (e.g. out of memory) is reported in its `Scored`, not raised.

    Everything here is plain data in and out: the app runs it where the GPU is (on ZeroGPU, a
    worker process that gets the arguments pickled; see ui.gpu.score_on_gpu).
    """
    from .scoring import NonFiniteScores, PromptTooLong, QueryError

    pool = ModelPool.of(pool)
    report = progress or (lambda fraction, message: None)
    done = dict.fromkeys(work, 0.0)
    results = {}
    # One model after the other: scoring both at once on one GPU was measured slower
    # (docs/benchmarks.md), the two compete for the same cores and kernels.
    for key, pages in work.items():
        label = get_spec(key).label

        def on_batch(count: int, total: int, key=key, label=label) -> None:
            done[key] = count / max(total, 1)
            report(0.1 + 0.9 * sum(done.values()) / len(work), f"{label}: {count}/{total} pages")

        started = time.perf_counter()
        try:
            reranker = pool.get(key)
            budget = (max_pixels or {}).get(key)
            scores = score_within_gpu_memory(reranker, query, pages, instruction_for(reranker, instruction),
                                             progress=on_batch, max_pixels=budget)
        except (QueryError, RankingAbandoned):  # the whole ranking's, not this model's
            raise
        except ModelUnavailable as error:  # logged by the pool when the load failed
            results[key] = Scored(None, error=f"{type(error).__name__}: {error}")
            continue
        except (PromptTooLong, NonFiniteScores) as error:  # the message says it all: no traceback (the CLI prints warnings)
            # A NaN's pages by name: their places were in the pages this model scored, not the upload's.
            said = (error.described([getattr(pages[index], "label", f"no. {index + 1}") for index in error.pages])
                    if isinstance(error, NonFiniteScores) else error)
            (log.info if isinstance(error, PromptTooLong) else log.warning)("%s did not score %d pages: %s", key, len(pages), said)
            results[key] = Scored(None, error=f"{type(error).__name__}: {said}")
            continue
        except Exception as error:  # this model's column says so; the other model goes on
            log.exception("%s failed to score %d pages", key, len(pages))
            results[key] = Scored(None, error=f"{type(error).__name__}: {error}")
            continue
        results[key] = Scored(scores, seconds=time.perf_counter() - started)
    return results


class OutOfGpuMemory(RuntimeError):
    pass


def score_within_gpu_memory(reranker, query: str, pages: Sequence, instruction: str | None, **options) -> list[float]:
    """`reranker.score`, in smaller batches when the GPU runs out of memory (a large image budget
    on a small card): halved until one page at a time. The scores are the same at any batch size
    (the suite's equivalence tests); pages scored before the failure are not scored again (score
    cache). Each retry first empties the model's vision and prefix caches, device memory it may
    need: on an H200 capped at 1 GiB over the weights, with the caches sized for the whole card
    (~30 MB a page at the largest budget), halving alone reached one page and still failed."""
    import torch

    batch_size = None  # the reranker's own
    while True:
        try:
            return reranker.score(query, pages, instruction, batch_size=batch_size, **options)
        except torch.cuda.OutOfMemoryError:
            tried = batch_size or reranker.batch_size
            if tried <= 1:
                raise OutOfGpuMemory(f"the GPU ran out of memory with one page at a time; lower {reranker.spec.label}'s "
                                     "image budget") from None
        # Outside the `except`: the failed batch's tensors (held by the traceback) are free now.
        batch_size = max(1, tried // 2)
        log.warning("%s: the GPU ran out of memory at %d pages a batch; trying %d", reranker.spec.label, tried, batch_size)
        reranker.release_device_caches()
        torch.cuda.empty_cache()


def rank(
    files: Sequence,
    query: str,
    pool: ModelPool | Mapping,
    *,
    instruction: str | None = None,
    ingest_options: IngestOptions | None = None,
    max_pixels: Mapping[str, int] | None = None,
    progress: ProgressCallback | None = None,
    keys: Sequence[str] | None = None,
    store=None,
    ingest_cache=None,
    on_pages: Callable[[list[Page]], None] | None = None,
    scorer: Callable[..., dict[str, Scored]] = score_pages,
    abandoned: Callable[[], str | bool | None] | None = None,
) -> RankingResult:
    """Ingest `files` and score every page with each model; a failing model is reported, not raised.

    `pool`: a `ModelPool` or a mapping key → loaded Reranker. The query is checked before any
    work, so an empty query costs nothing. With a `store`, scores it already holds for the same
    model, settings, query and page are reused instead of recomputed. With an `ingest_cache`
    (`documents.ingest_cache()`), files loaded before are not rendered again. `on_pages(pages)`
    runs once the pages are read and before scoring: a place to start side work (it should
    return at once) that then overlaps the models. `scorer` does the model work, with
    `score_pages`'s arguments (the pool first); it is only called when some page needs a model.
    `abandoned()`, asked at each progress report until the scores are in (before reading the
    files and before scoring, between a model's batches, after waiting for the models' turn),
    stops the ranking with `RankingAbandoned` once it answers why (a string, or True): the
    app's, for a browser page closed meanwhile or its Stop button. Scores already computed stay
    in the models' score caches, so the same ranking asked again goes on from there.

    The pages are read first, then scored: encoding pages while the rest of a PDF rendered made
    the app's 25-page request ~5% slower on an H200 in every run (docs/benchmarks.md, "The vision
    prefetch"), and on a CPU rendering takes a small part of a page's scoring time.
    """
    from .scoring import check_query, check_text

    check_query(query)  # raises QueryError with a message for the user
    if instruction is not None:
        check_text(instruction, "instruction")
    # As stored (text_rules.same_text): one query however the text was encoded; the models'
    # tokenizer reads both forms alike.
    query, instruction = same_text(query), no_default_instruction(instruction)
    pool = ModelPool.of(pool)
    available = list(pool.keys)
    keys = list(keys or available)
    if missing := [key for key in keys if key not in available]:  # a misuse: raised, not a model's failure
        raise ValueError(f"keys {', '.join(missing)} are not in the pool, whose models are {', '.join(available)}")
    if max_pixels is not None and not isinstance(max_pixels, Mapping):
        raise TypeError(f"max_pixels must map model keys to image budgets ({{key: pixels}}), got {type(max_pixels).__name__}")
    report = CheckedProgress(progress, abandoned)
    finished = CheckedProgress(progress)  # once all is scored, the ranking is kept whoever waits for it
    report(0.0, "Reading files")
    started = time.perf_counter()
    pages, problems, notes, documents = ingest(files, ingest_options, ingest_cache)
    ingest_seconds = time.perf_counter() - started
    if on_pages and pages:
        on_pages(pages)
    if not pages:  # no model is loaded for nothing (on a CPU tens of seconds; without local weights a download)
        finished(1.0, "Done")
        return RankingResult(query, instruction, pages, problems, notes, {}, ingest_seconds, documents)

    rankings: dict[str, ModelRanking] = {}
    known: dict[str, dict[str, float]] = {}  # key → content hash → score, from the store
    stored: dict[str, set[str]] = {}  # key → the content hashes whose score the store had
    work: dict[str, list[Page]] = {}  # key → the pages it still has to score
    for key in keys:
        label = get_spec(key).label
        if not pool.loaded(key) and pool.error(key) is None:
            report(0.05, f"Loading {label}")  # on a CPU, models load on first use: tens of seconds
        try:
            reranker = pool.get(key)
            settings = reranker.settings((max_pixels or {}).get(key))
        except ModelUnavailable as error:
            rankings[key] = ModelRanking(key, label, None, error=error.reason)
            continue
        except ValueError as error:  # an image budget outside the model's range
            rankings[key] = ModelRanking(key, label, None, error=str(error))
            continue
        rankings[key] = ModelRanking(key, label, [], settings=settings)
        hashes = [page.content_hash for page in pages]
        known[key] = store.cached_scores(key, settings, query, instruction, hashes) if store and pages else {}
        stored[key] = set(known[key])
        # Each distinct page once: the same page uploaded twice, or repeated in a PDF, has one score.
        missing = {page.content_hash: page for page in pages if page.content_hash not in known[key]}
        if missing:
            work[key] = list(missing.values())

    report(0.1, "Scoring")
    fresh = scorer(pool, query, work, instruction, max_pixels, report) if work else {}
    for key, ranking in rankings.items():
        if ranking.error is not None:
            continue
        scored = fresh.get(key, Scored([]))
        if scored.scores is None:
            ranking.scores, ranking.error = None, scored.error
            continue
        known[key].update({page.content_hash: score for page, score in zip(work.get(key, []), scored.scores)})
        ranking.scores = [known[key][page.content_hash] for page in pages]
        stored[key] |= scored.reused  # scored before, by a ranking running at the same moment
        ranking.seconds = scored.seconds
        ranking.scored = len(work.get(key, [])) - len(scored.reused)
        ranking.stored = sum(1 for page in pages if page.content_hash in stored[key])
    finished(1.0, "Done")
    return RankingResult(query, instruction, pages, problems, notes, rankings, ingest_seconds, documents)


def no_default_instruction(instruction: str | None) -> str | None:
    """The instruction as a ranking is stored and cached: None for none, for blank text (spaces,
    zero-width characters) and for a model's own default, which all ask the same question.
    (`Reranker.score` itself reads an instruction as its reference code does.)"""
    if instruction is None or is_blank(instruction):
        return None
    instruction = same_text(instruction.strip())
    return None if instruction in {spec.default_instruction for spec in MODELS.values()} else instruction


def rank_and_save(files: Sequence, query: str, pool: ModelPool | Mapping, store, images=None,
                  gallery_side: int = 512, **options) -> tuple[RankingResult, int | None]:
    """The app's ranking request: rank (see `rank`), store the ranking, have thumbnails ready.

    While the models score, the new pages' PNGs for the store (`store.stage_pages`) and their
    gallery thumbnails (`images`, a `thumbnails.PageImages`) are made on worker threads: on a
    GPU machine the CPU is otherwise idle then. Returns the result and the stored query id
    (None when no page could be read).
    """
    thumbnails = []

    def start_side_work(pages: list[Page]) -> None:
        store.stage_pages(pages)
        if images is not None:
            thumbnails.extend(images.prepare(pages, gallery_side))

    result = rank(files, query, pool, store=store, on_pages=start_side_work, **options)
    query_id = None
    if result.pages:
        scored = {key: r for key, r in result.rankings.items() if r.scores is not None}
        query_id = store.save_ranking(
            query, result.instruction, result.pages, result.documents,
            scores={key: r.scores for key, r in scored.items()},
            settings={key: r.settings for key, r in scored.items()},
            # Per page the model ran on: pages whose score came from the store took no time.
            seconds_per_page={key: r.seconds / r.scored if r.scored else None for key, r in scored.items()},
        )
    for thumbnail in thumbnails:  # done by now, as a rule; an error surfaces here, not in the gallery
        thumbnail.result()
    return result, query_id
