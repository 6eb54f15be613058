"""`python -m reranker eval`: each model against human labels, from the store or from a benchmark.

Two sources, one set of metrics (all from `reranker.metrics`, never recomputed here):

- **Store** (`--db`): the scores the app stored for each query, against the annotators' current
  labels (one annotator's, or a majority vote). Also how the two models agree with each other
  (Kendall τ, top-5 overlap) and how annotators agree with each other (Cohen's κ).
  `evaluate_store` is what the UI's Evaluate tab calls; printing is separate (`format_store`).
- **Benchmark** (`--benchmark`): a dataset in the `UlrickBL/*_reranker_adapted` schema (a query,
  the 25 pages a first-stage retriever returned with its scores, the relevant pages). Every
  candidate is scored by each model, and the first-stage scores give a baseline row. This is how
  the comparison blog's NDCG@5 table is reproduced on a machine with the models and the images.

Computation returns dataclasses; `format_*` turn them into text; the CLI only wires the two.
Heavy imports (scipy, datasets, torch) happen inside functions, so `python -m reranker --help`
stays fast.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import sys
import time
import unicodedata
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from itertools import combinations
from pathlib import Path, PurePath
from typing import TYPE_CHECKING, Any

from .cli import UsageError, device_name, positive_int
from .models import MODELS, in_model_order
from .output_files import check_output, output_file

if TYPE_CHECKING:
    from .metrics import EvalResult, Kappa, Mistake, PairedDifference
    from .store import Store

MODEL_A, MODEL_B = MODELS  # the two models' keys, in their order
FIRST_STAGE = "first-stage"  # the benchmark's own retriever scores, evaluated as a baseline
BENCHMARK_COLUMNS = ("query", "query_id", "top_25_image_filenames", "top_25_scores", "relevant_image_filenames")
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".gif"}

# The comparison blog's NDCG@5 (its own variant: ideal DCG over the same 5 pages), by dataset name
# as it appears in the Hub id or split name. Printed beside ours, labelled "blog".
BLOG_NDCG5: dict[str, dict[str, float]] = {
    "esg_reports_human_labeled_v2": {MODEL_A: 0.806, MODEL_B: 0.804},
    "finslides": {MODEL_A: 0.90, MODEL_B: 0.906},
    "economics_reports_v2": {MODEL_A: 0.75, MODEL_B: 0.813},
    "arxivqa": {MODEL_A: 0.87, MODEL_B: 0.778},
}

IMAGES_HELP = """\
The {schema} datasets hold page *names* only (corpus ids); the images live in each benchmark's
source corpus, which differs per dataset (the dataset card names it: vidore/esg_reports_human_labeled_v2,
vidore/economics_reports_v2, ibm-research/REAL-MM-RAG_FinSlides_BEIR, ...). Save that corpus's
images into a folder, one file per corpus id, and pass it with --images DIR. For example:

    python - <<'EOF'
    from pathlib import Path
    from datasets import load_dataset
    out = Path("images"); out.mkdir(exist_ok=True)
    for row in load_dataset("vidore/esg_reports_human_labeled_v2", "corpus", split="test"):
        row["image"].convert("RGB").save(out / f"{{row['corpus-id']}}.png")
    EOF

A file is found by its exact name, or by its name without extension (so 123 matches 123.png),
anywhere below DIR."""


def model_label(key: str) -> str:
    if key == FIRST_STAGE:
        return "first-stage retriever"
    return MODELS[key].label if key in MODELS else key


def _mean(values: Iterable[float | None]) -> tuple[float | None, int]:
    values = [v for v in values if v is not None]
    return (sum(values) / len(values) if values else None), len(values)


# --------------------------------------------------------------------------- agreement


@dataclass(frozen=True)
class PairAgreement:
    """Two models' rankings compared query by query, then averaged.

    ``kendall_tau`` is the mean over the ``n_tau`` queries where τ is defined (≥ 2 shared pages,
    scores not all equal); ``topk_overlap`` the mean over the queries both models scored that
    have more than k pages (None if none has: with k or fewer, both top k are every page).
    """

    model_a: str
    model_b: str
    k: int
    n_queries: int
    kendall_tau: float | None
    n_tau: int
    topk_overlap: float | None


def models_agreement(runs: Mapping[str, Mapping[Any, Mapping[Any, float]]], k: int = 5) -> list[PairAgreement]:
    """Every pair of runs (``{model: {query: {page: score}}}``) over the queries both scored."""
    from .metrics import kendall_tau, shared_scores, topk_overlap

    out = []
    for a, b in combinations(runs, 2):
        shared = [q for q in runs[a] if q in runs[b]]
        per_query = [shared_scores(runs[a][q], runs[b][q]) for q in shared]
        # τ and the overlap alone, as `metrics.model_agreement` computes them (its Spearman ρ
        # and disagreements took a quarter of the evaluation's time, to be thrown away).
        tau, n_tau = _mean(kendall_tau(x, y) for x, y in per_query)
        # Over queries of more than k pages: with k or fewer both top k are every page (100%).
        overlap, _ = _mean(topk_overlap(x, y, k) for x, y in per_query if len(x) > k)
        out.append(PairAgreement(a, b, k, len(shared), tau, n_tau, overlap))
    return out


def model_differences(results: Mapping[str, EvalResult], pairs: Iterable[tuple[str, str]]) -> list[PairedDifference]:
    """`paired_differences` (first − second) for each pair of result keys, every metric."""
    from .metrics import paired_differences

    return [d for a, b in pairs if a in results and b in results for d in paired_differences(results[a], results[b])]


@dataclass(frozen=True)
class AnnotatorAgreement:
    """Cohen's κ between two annotators over every (query, page) both labelled relevant/not."""

    annotator_a: str
    annotator_b: str
    kappa: Kappa


# --------------------------------------------------------------------------- store


@dataclass(frozen=True)
class JudgedPage:
    """A labelled page of a query the metrics count, and each model's score for it."""

    query_id: int
    page_hash: str
    relevant: bool
    scores: dict[str, float]  # model key → P(yes), for the models that scored the page


@dataclass
class StoreEvaluation:
    """Each model's stored scores against the stored human labels.

    ``results``: model key → `EvalResult` (per-query rows, exclusions, means).
    ``annotator``: whose labels were used; None = majority vote of all annotators (a tie drops
    the page). ``queries``: query id → text, for display.
    """

    annotator: str | None
    ks: tuple[int, ...]
    results: dict[str, EvalResult]
    model_agreement: list[PairAgreement]
    annotator_agreement: list[AnnotatorAgreement]
    queries: dict[int, str]
    annotators: list[str] = field(default_factory=list)
    # model key → queries whose pages it scored at different settings (another image budget, say):
    # each page's latest score counts, so such a query compares unlike with unlike.
    mixed_settings: dict[str, list[int]] = field(default_factory=dict)
    # model key → queries it scored only some pages of (it failed on another upload of the same
    # question, say): the pages it did not score count as never retrieved, the other model's as ranked.
    partly_scored: dict[str, list[int]] = field(default_factory=dict)
    instructions: dict[int, str | None] = field(default_factory=dict)  # query id → its own instruction
    # Each pair of models, first − second, metric by metric over the queries both were evaluated on.
    differences: list[PairedDifference] = field(default_factory=list)
    # model key → (query id, `metrics.Mistake`) for every page judged not relevant that the model
    # ranked above a relevant one, by the same labels and scores as the metrics.
    mistakes: dict[str, list[tuple[int, Mistake]]] = field(default_factory=dict)
    # Annotators left out of `annotator_agreement` (κ is given for the KAPPA_ANNOTATORS with the
    # most labels only).
    kappa_left_out: int = 0
    # Every labelled page of the queries the metrics count (those with a page judged relevant), with
    # the same labels, in query order: the scores by label.
    judged_pages: list[JudgedPage] = field(default_factory=list)

    def kappa_note(self) -> str | None:
        if not self.kappa_left_out:
            return None
        return (f"Cohen's κ is given for the {KAPPA_ANNOTATORS} annotators with the most labels; "
                f"{self.kappa_left_out} other{'' if self.kappa_left_out == 1 else 's'} left out.")

    def comparison_notes(self) -> list[str]:
        """The queries where a model's scores do not compare like with like, by model."""
        notes = []
        for model, query_ids in self.mixed_settings.items():
            notes.append(f"{model_label(model)}: {_listed(query_ids)} mix scores made at different settings (another "
                         "image budget, say); each page's latest score counts. Rank such a query again at one "
                         "setting to compare like with like.")
        for model, query_ids in self.partly_scored.items():
            notes.append(f"{model_label(model)}: {_listed(query_ids)} scored only some of the pages (it could not "
                         "score another upload of the same question): the others count as not retrieved. Rank "
                         "such a query again with every upload to compare like with like.")
        return notes

    def to_dict(self) -> dict:
        return {
            "source": "store",
            "mixed_settings": {model: ids for model, ids in self.mixed_settings.items()},
            "partly_scored": {model: ids for model, ids in self.partly_scored.items()},
            "annotator": self.annotator,
            "ks": list(self.ks),
            "models": {key: _result_dict(result) for key, result in self.results.items()},
            "model_agreement": [vars(a) for a in self.model_agreement],
            "paired_differences": [vars(d) for d in self.differences],
            "annotator_agreement": [
                {"annotator_a": a.annotator_a, "annotator_b": a.annotator_b, **vars(a.kappa)}
                for a in self.annotator_agreement
            ],
            "annotators_left_out_of_agreement": self.kappa_left_out,
            "queries": {str(q): text for q, text in self.queries.items()},
            "instructions": {str(q): instruction for q, instruction in self.instructions.items()},
        }


def _listed(query_ids: list[int], shown: int = 5) -> str:
    more = f" and {len(query_ids) - shown} more" if len(query_ids) > shown else ""
    return f"{'query' if len(query_ids) == 1 else 'queries'} " + ", ".join(map(str, query_ids[:shown])) + more


def evaluate_store(store: Store, annotator: str | None = None, ks: Sequence[int] = (5, 10)) -> StoreEvaluation:
    """Evaluate every model with stored scores (each model's latest settings per query) against
    the current labels — `annotator`'s, or by default the majority vote. The name is matched as
    the app matches it ("ALICE" is whoever judges as "alice": `Store.known_annotator`). Raises
    ValueError for an annotator who judged nothing."""
    with store.snapshot():  # labels and scores from one moment, while annotators go on
        if annotator is not None:  # blank: the majority vote, as None
            annotator = store.known_annotator(annotator.strip()) if annotator.strip() else None
        return _evaluate_store(store, annotator, tuple(ks))


class EvaluationCache:
    """`evaluate_store`, kept while the store is unchanged (`store.WhileUnchanged`): the app's
    Evaluate tab evaluates on every visit, and a store of 2,000 queries took 1.5–2 s each time,
    9 s with 300,000 judgments."""

    def __init__(self, entries: int = 8):
        from .store import WhileUnchanged

        self._kept = WhileUnchanged(entries)

    def evaluate(self, store: Store, annotator: str | None = None, ks: Sequence[int] = (5, 10)) -> StoreEvaluation:
        return self._kept.get(store, (annotator, tuple(ks)), lambda: evaluate_store(store, annotator, ks))


def _evaluate_store(store: Store, annotator: str | None, ks: tuple[int, ...]) -> StoreEvaluation:
    from .metrics import aggregate_labels, cohen_kappa, evaluate, grades_from_labels, hardest_mistakes

    annotators = store.require_annotator(annotator)

    runs: dict[str, dict[int, dict[str, float]]] = {}
    qrels: dict[int, dict[str, int]] = {}
    pooled: dict[str, dict[tuple[int, str], int]] = {}  # annotator → {(query, page): grade}, for κ
    queries, instructions = {}, {}
    mixed: dict[str, list[int]] = {}
    partly: dict[str, list[int]] = {}
    # The whole store in a few reads, not several a query (a store of 2,000 queries: 14,225 reads).
    stored = store.latest_scores()
    current: dict[int, dict[str, dict[str, str]]] = {}  # query → annotator → page → label
    for judgment in store.current_judgments():  # by query, page, annotator
        current.setdefault(judgment.query_id, {}).setdefault(judgment.annotator, {})[judgment.page_hash] = judgment.label
    for summary in store.list_queries():
        queries[summary.id], instructions[summary.id] = summary.text, summary.instruction
        used: dict[str, set[str]] = {}  # model → settings keys of this query's scores
        pages, scores = stored.get(summary.id, ([], {}))
        for page_hash in pages:  # in upload order: ties rank in it
            for model, by_page in scores.items():
                if page_hash in by_page:
                    score, key = by_page[page_hash]
                    runs.setdefault(model, {}).setdefault(summary.id, {})[page_hash] = score
                    used.setdefault(model, set()).add(key)
        for model, keys in used.items():
            if len(keys) > 1:
                mixed.setdefault(model, []).append(summary.id)
            if len(runs[model][summary.id]) < len(pages):
                partly.setdefault(model, []).append(summary.id)
        by_annotator = current.get(summary.id, {})
        grades = {name: grades_from_labels(labels) for name, labels in by_annotator.items()}  # skips drop out
        qrels[summary.id] = aggregate_labels(grades, annotator)
        for name, page_grades in grades.items():
            pooled.setdefault(name, {}).update({(summary.id, p): g for p, g in page_grades.items()})

    results = {}
    for model in in_model_order(runs):
        result = evaluate(runs[model], qrels, ks, model=model)
        for query_id, grades in qrels.items():  # judged queries this model never scored: say so
            if grades and query_id not in runs[model]:
                result.excluded[query_id] = "not scored by this model"
        results[model] = result
    # κ of every pair grows with the square of the annotators (800 names, which anyone can add:
    # 320,000 pairs, 33 s and a 31 MB reply): the most active ones only.
    compared = sorted(pooled, key=lambda name: (-len(pooled[name]), name.casefold(), name))[:KAPPA_ANNOTATORS]
    kappas = [
        AnnotatorAgreement(a, b, cohen_kappa(pooled[a], pooled[b]))
        for a, b in combinations(sorted(compared, key=lambda name: (name.casefold(), name)), 2)  # "alice" before "Carol"
    ]
    return StoreEvaluation(
        annotator=annotator, ks=ks, results=results,
        model_agreement=models_agreement({m: runs[m] for m in results}),
        annotator_agreement=kappas, kappa_left_out=len(pooled) - len(compared), queries=queries, annotators=annotators,
        mixed_settings={model: mixed[model] for model in results if model in mixed},
        partly_scored={model: partly[model] for model in results if model in partly}, instructions=instructions,
        differences=model_differences(results, combinations(results, 2)),
        mistakes={model: [(query_id, mistake) for query_id, scores in runs[model].items()
                          for mistake in hardest_mistakes(scores, qrels.get(query_id, {}))] for model in results},
        judged_pages=[JudgedPage(query_id, page_hash, grade > 0,
                                 {m: runs[m][query_id][page_hash] for m in results if page_hash in runs[m].get(query_id, {})})
                      for query_id, grades in qrels.items() if any(grade > 0 for grade in grades.values())
                      for page_hash, grade in grades.items()],
    )  # fmt: skip


# --------------------------------------------------------------------------- benchmark


KAPPA_ANNOTATORS = 12  # at most 66 pairs


@dataclass(frozen=True)
class BenchmarkQuery:
    query_id: str
    query: str
    candidates: list[str]  # the first stage's top pages, best first (names as strings)
    first_stage_scores: list[float]
    relevant: list[str]


@dataclass(frozen=True)
class Benchmark:
    source: str
    split: str
    queries: list[BenchmarkQuery]
    note: str = ""  # e.g. which split was picked when the requested one did not exist


# No CSV: its list columns (candidates, scores, relevant ids) would come back as strings.
DATA_SUFFIXES = {".parquet": "parquet", ".jsonl": "json", ".json": "json"}


def _is_local(source: str) -> bool:
    """A path rather than a Hub id: it exists, or looks like a path (so a typo is "no such file",
    not a failed download)."""
    return Path(source).expanduser().exists() or source.startswith((".", "/", "~")) or (
        Path(source).suffix.lower() in DATA_SUFFIXES
    )


def load_benchmark(source: str, split: str | None = None, limit: int | None = None) -> Benchmark:
    """Load a `*_reranker_adapted` dataset: a local parquet/jsonl/json file, a local folder,
    or a Hub id. `split` None: "test", or the only split there is (the Hub sets name their split
    after the dataset, e.g. ``esg_reports_human_labeled_v2``); a split named and missing is an
    error. Names are compared as strings: the Hub sets store candidate ids as integers but
    relevant ids as strings.

    Every row is checked before any is returned (a null score, an empty query, ...): one bad row
    is a ValueError naming the source, the row (from 1, as a JSONL file's lines) and the column,
    so a run stops before its models score anything rather than part-way through."""
    path = Path(source).expanduser()
    if path.is_file():
        builder = DATA_SUFFIXES.get(path.suffix.lower())
        if builder is None:
            raise ValueError(f"{path}: unsupported file type (use .parquet, .jsonl or .json)")
        if path.stat().st_size == 0:
            raise ValueError(f"{path}: the file is empty")
        splits = _load_dataset(source, builder, data_files=str(path))
    elif path.is_dir():
        splits = _load_dataset(source, str(path))
    elif _is_local(source):
        raise ValueError(f"no such file or folder: {source}")
    else:
        splits = _load_dataset(source, source)  # a Hub id
    note = ""
    if split is None and "test" in splits:
        split = "test"
    elif split is None and len(splits) == 1:
        (split,) = splits
        note = f"no 'test' split; using the only split, {split!r}"
    elif split not in splits:
        named = f"no split {split!r}" if split is not None else "no 'test' split"
        raise ValueError(f"{source}: {named}; choose one with --split: {', '.join(splits)}")
    data = splits[split]
    missing = [c for c in BENCHMARK_COLUMNS if c not in data.column_names]
    if missing:
        raise ValueError(
            f"{source}: missing column(s) {', '.join(missing)}; expected the *_reranker_adapted schema "
            f"({', '.join(BENCHMARK_COLUMNS)}), found {', '.join(data.column_names)}"
        )
    if limit is not None:
        data = data.select(range(min(limit, len(data))))
    queries, seen = [], set()
    bad_rows: list[tuple[int, str, str]] = []  # (row number, its id, what is wrong): all, so one run finds each
    for index, row in enumerate(data):
        try:
            query = _benchmark_query(row)
        except ValueError as problem:
            query_id = row["query_id"]
            named = f" (query id {_shown(str(query_id))})" if query_id is not None and str(query_id).strip() else ""
            bad_rows.append((index + 1, named, str(problem)))
            continue
        if query.query_id in seen:  # ids key the metrics; keep duplicates apart rather than merge them
            query = replace(query, query_id=f"{query.query_id}#{index}")
        seen.add(query.query_id)
        queries.append(query)
    if bad_rows:
        raise ValueError(_bad_rows_message(source, bad_rows))
    mismatch = _relevant_only_by_stem(queries)
    if mismatch:
        note = "; ".join(filter(None, [note, mismatch]))
    return Benchmark(source=source, split=split, queries=queries, note=note)


def _relevant_only_by_stem(queries: Sequence[BenchmarkQuery]) -> str:
    """A note when relevant ids name candidates only up to a file extension ("101" for "101.png"):
    labels match candidates by exact name (two files may share a stem), so every such page would
    count as one the first stage missed, and each model's metrics as 0, without a word."""
    found = []
    for q in queries:
        candidates = set(q.candidates)
        stems = {PurePath(name).stem: name for name in q.candidates}
        for name in q.relevant:  # "101" for "101.png", or "101.png" for 101: the stems meet
            if name not in candidates and PurePath(name).stem in stems:
                found.append((name, stems[PurePath(name).stem]))
    if not found:
        return ""
    name, candidate = found[0]
    return (f"{len(found)} relevant id(s) match a candidate only up to a file extension (e.g. {name!r} and "
            f"{candidate!r}); relevance matches names exactly, so they count as pages the first stage missed")


def _benchmark_query(row: Mapping[str, Any]) -> BenchmarkQuery:
    """One dataset row as a query; a ValueError says which column is wrong, and how."""
    query_id = row["query_id"]
    if query_id is None:
        raise ValueError("query_id is null")
    query_id = str(query_id)
    if not query_id.strip():
        raise ValueError("query_id is empty")
    query = row["query"]
    if not isinstance(query, str):
        raise ValueError(f"query is {_shown(query)}, not text")
    from .scoring import QueryError, clean_query

    try:  # as the models check it, which they would do only once its turn came
        clean_query(query, max_length=None)
    except QueryError as error:
        raise ValueError(str(error).removeprefix("the ")) from None
    names = _page_names(row["top_25_image_filenames"], "top_25_image_filenames")
    scores = _scores(row["top_25_scores"], "top_25_scores")
    relevant = _page_names(row["relevant_image_filenames"], "relevant_image_filenames")
    if len(names) != len(scores):
        raise ValueError(f"top_25_image_filenames has {len(names)} pages but top_25_scores has {len(scores)} scores")
    return BenchmarkQuery(query_id, query, names, scores, relevant)


def _page_names(values: Any, column: str) -> list[str]:
    """Page names as strings (the Hub sets store candidate ids as integers)."""
    if not isinstance(values, (list, tuple)):  # a lone string would otherwise be read letter by letter
        raise ValueError(f"{column} is {_shown(values)}, not a list of page names")
    names = []
    for i, value in enumerate(values):
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            raise ValueError(f"{column}[{i}] is {_shown(value)}, not a page name")
        if not str(value).strip():
            raise ValueError(f"{column}[{i}] is empty, not a page name")
        names.append(str(value))
    return names


def _scores(values: Any, column: str) -> list[float]:
    """Finite numbers (numeric text too): a NaN cannot be ranked, and JSON has no infinity."""
    if not isinstance(values, (list, tuple)):
        raise ValueError(f"{column} is {_shown(values)}, not a list of numbers")
    scores = []
    for i, value in enumerate(values):
        try:
            if isinstance(value, bool) or value is None:
                raise TypeError
            score = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"{column}[{i}] is {_shown(value)}, not a number") from None
        if not math.isfinite(score):
            raise ValueError(f"{column}[{i}] is {_shown(score)}, not a finite number")
        scores.append(score)
    return scores


def _shown(value: Any) -> str:
    """A value as JSON would show it (null, not None), cut short: error messages stay one line."""
    if value is None:
        return "null"
    if isinstance(value, float) and not math.isfinite(value):
        return {"nan": "NaN", "inf": "Infinity", "-inf": "-Infinity"}[repr(value)]
    text = repr(value)
    return text if len(text) <= 40 else text[:39] + "…"


def _bad_rows_message(source: str, bad_rows: Sequence[tuple[int, str, str]]) -> str:
    """The first bad row in full, the others by number: one line, however many there are."""
    (number, named, problem), *more = bad_rows
    message = f"{source}, row {number}{named}: {problem}"
    if more:
        listed = ", ".join(str(other) for other, _, _ in more[:5]) + (", …" if len(more) > 5 else "")
        message += f"; {len(more)} more bad {'row' if len(more) == 1 else 'rows'} ({listed})"
    return message + "; nothing was scored"


def _load_dataset(source: str, *args, **kwargs):
    """`datasets.load_dataset`, its failures as a ValueError naming `source` (pyarrow, the JSON
    reader and the Hub client raise their own types, most without the file's name)."""
    from datasets import load_dataset

    try:
        return load_dataset(*args, **kwargs)
    except Exception as error:
        raise ValueError(f"{source}: could not be read as a dataset ({type(error).__name__}: {error})") from error


class ImageFolder:
    """Finds benchmark page names in a folder: the exact relative path, else a file anywhere
    below with that name, or whose stem is the name or the name's stem (corpus ids usually
    have no extension)."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root).expanduser().resolve()
        self._index: dict[str, Path] | None = None

    def find(self, name: str) -> Path | None:
        direct = (self.root / name).resolve()
        if direct.is_file() and direct.is_relative_to(self.root):  # no escaping the folder via ../
            return direct
        if self._index is None:  # walked once, only if some name is not a direct hit
            self._index = {}
            for path in sorted(self.root.rglob("*")):
                if path.suffix.lower() in IMAGE_SUFFIXES and path.is_file():
                    self._index.setdefault(path.name, path)
                    self._index.setdefault(path.stem, path)
        base = Path(name)  # also a file converted to another format: doc.jpg found as doc.png
        return self._index.get(name) or self._index.get(base.name) or self._index.get(base.stem)


@dataclass(frozen=True)
class Timing:
    seconds: float  # wall time of the model's score() calls only (not loading, not image decoding)
    pairs: int

    @property
    def pairs_per_s(self) -> float | None:
        return self.pairs / self.seconds if self.seconds > 0 else None


@dataclass
class BenchmarkEvaluation:
    """Models and the first-stage baseline on a benchmark.

    ``results``: key → `EvalResult`, the first-stage retriever under `FIRST_STAGE` first.
    ``runs``: key → ``{query_id: {page name: score}}`` (the scores the metrics were computed from).
    ``missing`` / ``unreadable``: candidate names skipped (not found / could not be decoded).
    ``blog``: (dataset name, {model: NDCG@5 the blog published}) when the dataset is one of its four.
    """

    source: str
    split: str
    n_queries: int
    ks: tuple[int, ...]
    images: str
    results: dict[str, EvalResult]
    runs: dict[str, dict[str, dict[str, float]]]
    timings: dict[str, Timing]
    missing: list[str]
    unreadable: dict[str, str]
    model_agreement: list[PairAgreement]
    blog: tuple[str, dict[str, float]] | None
    settings: dict[str, str] = field(default_factory=dict)
    queries: dict[str, str] = field(default_factory=dict)  # query id → text, for display
    note: str = ""
    # The models against each other, then each against the first stage (model − first stage).
    differences: list[PairedDifference] = field(default_factory=list)

    def to_dict(self) -> dict:
        models = {}
        for key, result in self.results.items():
            entry = _result_dict(result)
            entry["scores"] = self.runs[key]
            if key in self.timings:
                timing = self.timings[key]
                entry.update(seconds=timing.seconds, pairs=timing.pairs, pairs_per_s=timing.pairs_per_s)
                entry["settings"] = self.settings.get(key)
            if self.blog and key in self.blog[1]:
                entry["blog_published_ndcg_blog@5"] = self.blog[1][key]
            models[key] = entry
        return {
            "source": self.source, "split": self.split, "n_queries": self.n_queries, "ks": list(self.ks),
            "images": self.images, "models": models, "missing_images": self.missing,
            "unreadable_images": self.unreadable, "model_agreement": [vars(a) for a in self.model_agreement],
            "paired_differences": [vars(d) for d in self.differences],
            "blog_dataset": self.blog[0] if self.blog else None, "note": self.note,
        }  # fmt: skip


def blog_reference(*names: str) -> tuple[str, dict[str, float]] | None:
    """The blog's published NDCG@5 if one of `names` (Hub id, file name, split) names one of its sets."""
    text = " ".join(names).lower()
    for name, values in BLOG_NDCG5.items():
        if name in text:
            return name, values
    return None


def _open_image(path: Path):
    """The page as its file holds it (mode, palette, transparent colour): each model's reference
    takes it so, and `Reranker.score` makes it RGB by that model's own rules."""
    from PIL import Image

    with Image.open(path) as image:
        image.load()
        return image.copy()  # in memory: the file is closed


def run_benchmark(
    benchmark: Benchmark,
    images: str | os.PathLike,
    models: Sequence[str] = (MODEL_A, MODEL_B),
    ks: Sequence[int] = (5, 10),
    batch_size: int | None = None,
    max_pixels: Mapping[str, int | None] | None = None,
    device: str | None = None,
    rerankers: Mapping[str, Any] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> BenchmarkEvaluation:
    """Score every candidate page of every query with each model and evaluate.

    Models are loaded with `load_reranker` (weights from the usual environment overrides) unless
    already-loaded `rerankers` are given. Candidates whose image is missing or unreadable are
    skipped (and listed); a query with no readable candidate is excluded from every row; one a
    model cannot read (too long) or computes NaN for is excluded for that model only, saying why.
    Relevant pages the first stage did not retrieve still count in standard NDCG's ideal DCG
    (the blog's variant ignores them), so both models share the first stage's ceiling.
    """
    from .metrics import evaluate
    from .scoring import NonFiniteScores, PromptTooLong

    max_pixels = dict(max_pixels or {})
    if rerankers is None:
        from .loading import load_reranker

        rerankers = {key: load_reranker(key, device=device, batch_size=batch_size) for key in models}
    rerankers = {key: rerankers[key] for key in models}
    settings = {key: r.settings_text(max_pixels.get(key)) for key, r in rerankers.items()}  # checks budgets early
    folder = ImageFolder(images)
    runs: dict[str, dict[str, dict[str, float]]] = {key: {} for key in (FIRST_STAGE, *models)}
    qrels: dict[str, dict[str, int]] = {}
    timings = {key: [0.0, 0] for key in models}
    missing: dict[str, None] = {}  # ordered set
    unreadable: dict[str, str] = {}
    no_images: list[str] = []
    too_long: dict[str, list[str]] = {key: [] for key in models}  # queries a model that reads them whole refused
    no_number: dict[str, dict[str, str]] = {key: {} for key in models}  # queries a model computed NaN for: why
    warmed: set[str] = set()  # models past their untimed first call
    for number, q in enumerate(benchmark.queries, start=1):
        relevant = set(q.relevant)
        qrels[q.query_id] = {name: int(name in relevant) for name in (*q.candidates, *q.relevant)}
        pages: dict[str, Any] = {}
        first_stage: dict[str, float] = {}
        for name, score in zip(q.candidates, q.first_stage_scores):
            if name in pages or name in first_stage:
                continue  # a duplicate candidate keeps its first (best) position
            path = folder.find(name)
            if path is None:
                missing[name] = None
                continue
            try:
                pages[name] = _open_image(path)
            except Exception as error:  # noqa: BLE001 - any undecodable file is skipped, not fatal
                unreadable[name] = f"{type(error).__name__}: {error}"
                continue
            first_stage[name] = score
        if not pages:
            no_images.append(q.query_id)
            continue
        names = list(pages)
        runs[FIRST_STAGE][q.query_id] = first_stage
        for key, reranker in rerankers.items():
            try:
                if key not in warmed:  # first call pays one-off setup (kernels, allocator): keep it out of the timing
                    with contextlib.suppress(NonFiniteScores):  # the call below names every page that fails
                        reranker.score(q.query, [pages[names[0]]], batch_size=batch_size, max_pixels=max_pixels.get(key))
                    warmed.add(key)
                # Cold caches per query, as the blog measured: a page seen in an earlier query would
                # otherwise skip the vision encoder and flatter the pairs/s.
                reranker.clear_caches()
                start = time.perf_counter()
                scores = reranker.score(q.query, [pages[n] for n in names], batch_size=batch_size,
                                        max_pixels=max_pixels.get(key))
            except PromptTooLong:  # this model only: the run goes on (it used to stop here, losing the rest)
                too_long[key].append(q.query_id)
                continue
            except NonFiniteScores as error:  # likewise: a NaN stopped the run only once every query was scored
                failed = [names[index] for index in error.pages]
                no_number[key][q.query_id] = (f"the model computed {error.value} for {len(failed)} of {len(names)} "
                                              f"candidates ({', '.join(failed[:3])}{', …' if len(failed) > 3 else ''})")
                continue
            timings[key][0] += time.perf_counter() - start
            timings[key][1] += len(names)
            runs[key][q.query_id] = dict(zip(names, scores))
        if progress:
            progress(number, len(benchmark.queries))

    results = {}
    for key, run in runs.items():
        result = evaluate(run, qrels, ks, model=key)
        for query_id in no_images:
            result.excluded[query_id] = "no candidate image found"
        for query_id in too_long.get(key, ()):
            result.excluded[query_id] = "query too long for this model, which reads it whole"
        for query_id, why in no_number.get(key, {}).items():
            result.excluded[query_id] = why
        results[key] = result
    return BenchmarkEvaluation(
        source=benchmark.source, split=benchmark.split, n_queries=len(benchmark.queries), ks=tuple(ks),
        images=str(folder.root), results=results, runs=runs,
        timings={key: Timing(*value) for key, value in timings.items()},
        missing=list(missing), unreadable=unreadable,
        model_agreement=models_agreement({key: runs[key] for key in models}),
        blog=blog_reference(benchmark.source, benchmark.split), settings=settings,
        queries={q.query_id: q.query for q in benchmark.queries}, note=benchmark.note,
        differences=model_differences(results, [*combinations(models, 2), *((key, FIRST_STAGE) for key in models)]),
    )  # fmt: skip


def _result_dict(result: EvalResult) -> dict:
    return {
        "label": model_label(result.model), "summary": result.summary(), "rows": result.rows,
        "excluded": {str(q): reason for q, reason in result.excluded.items()},
    }  # fmt: skip


# --------------------------------------------------------------------------- printing


def _queries(n: int) -> str:
    return f"{n} quer{'y' if n == 1 else 'ies'}"


def _num(value: float | None, digits: int = 4) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def blog_label(k: int) -> str:
    return f"blog NDCG@{k} (ideal DCG over the same {k} pages)"


def _metric_rows(ks: Sequence[int]) -> list[tuple[str, str]]:
    """(row label, `EvalResult.means` key), in print order."""
    rows = [(f"NDCG@{k}", f"ndcg@{k}") for k in ks]
    rows += [(blog_label(k), f"ndcg_blog@{k}") for k in ks]
    rows += [("MRR", "mrr")] + [(f"Recall@{k}", f"recall@{k}") for k in ks] + [("MAP", "map")]
    return rows


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows)]
    lines = [header, *rows]
    out = ["  ".join(str(c).ljust(w) if i == 0 else str(c).rjust(w) for i, (c, w) in enumerate(zip(line, widths)))
           for line in lines]  # fmt: skip
    out.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(line.rstrip() for line in out)


def _means_table(results: Mapping[str, EvalResult], ks: Sequence[int], extra: Sequence[Sequence[str]] = ()) -> str:
    """Metrics as rows, models as columns: the long blog label fits, and models line up."""
    keys = list(results)
    rows = [[label, *(_num(results[k].means[name]) for k in keys)] for label, name in _metric_rows(ks)]
    rows.append(["queries evaluated / excluded", *(f"{results[k].n_queries} / {results[k].n_excluded}" for k in keys)])
    rows += [list(row) for row in extra]
    return _table(["metric", *(model_label(k) for k in keys)], rows)


def _one_line(text: str) -> str:
    """A visitor's text as one cell of a table on a terminal: tabs and line breaks as spaces, any
    other control character as its escape ("\\x1b"), so stored text never drives the terminal
    (an escape sequence can retitle, clear or write the clipboard of the operator's)."""
    return "".join(" " if character in "\t\n\r" else
                   character.encode("unicode_escape").decode("ascii") if unicodedata.category(character) == "Cc" else character
                   for character in text)


def _per_query(results: Mapping[str, EvalResult], ks: Sequence[int], texts: Mapping[Any, str] | None = None,
               tags: Mapping[Any, str] | None = None) -> str:
    """Each query's metrics at every k asked for (the means table's columns), one table per model;
    `tags`: what follows a query's text (its own instruction), which tells apart queries of one text."""
    columns = ([(f"NDCG@{k}", f"ndcg@{k}") for k in ks] + [(f"blog NDCG@{k}", f"ndcg_blog@{k}") for k in ks]
               + [("MRR", "mrr")] + [(f"Recall@{k}", f"recall@{k}") for k in ks] + [("MAP", "map")])  # fmt: skip
    blocks = []
    for key, result in results.items():
        rows = []
        for row in result.rows:
            text = (texts or {}).get(row["query_id"], "")
            text = text[:48] + ("…" if len(text) > 48 else "")
            name = _one_line(f"{row['query_id']}  {text}{(tags or {}).get(row['query_id'], '')}".rstrip())
            rows.append([name, str(row["n_pages"]), str(row["n_judged"]), str(row["n_relevant"]),
                         *(_num(row[name_]) for _, name_ in columns)])
        header = ["query", "pages", "judged", "relevant", *(label for label, _ in columns)]
        block = f"per query — {model_label(key)}\n" + _table(header, rows)
        if result.excluded:
            block += "\n  excluded: " + "; ".join(f"{q} ({why})" for q, why in result.excluded.items())
        blocks.append(block)
    return "\n\n".join(blocks)


def _excluded_lines(results: Mapping[str, EvalResult], shown: int = 10) -> list[str]:
    """The queries left out of each model's means, by name and why (the per-query tables list
    them under each table; without them, the means table gave only their number)."""
    lines = []
    for key, result in results.items():
        if result.excluded:
            items = [f"{q} ({why})" for q, why in result.excluded.items()]
            more = f"; … {len(items) - shown} more (--per-query or --output list all)" if len(items) > shown else ""
            lines.append(f"not in {model_label(key)}'s means: " + "; ".join(items[:shown]) + more)
    return lines


def _agreement_lines(agreements: Sequence[PairAgreement]) -> list[str]:
    return [
        f"model agreement, {model_label(a.model_a)} vs {model_label(a.model_b)} "
        f"(mean over {_queries(a.n_queries)} both scored): Kendall τ {_num(a.kendall_tau, 3)} "
        f"(over {_queries(a.n_tau)} where defined), top-{a.k} overlap {_num(a.topk_overlap, 3)}"
        for a in agreements
    ]


def _differences_tables(differences: Sequence[PairedDifference], ks: Sequence[int]) -> list[str]:
    """One table per pair of models: the mean per-query difference of each metric, its 95%
    confidence interval, the paired t-test's p and how many queries went each way."""
    labels = {name: label for label, name in _metric_rows(ks)}
    order = list(labels)
    blocks = []
    for (a, b), group in _grouped(differences):
        group = sorted(group, key=lambda d: order.index(d.metric) if d.metric in order else len(order))  # as the means table
        rows = [[labels.get(d.metric, d.metric), *difference_cells(d)] for d in group]
        n = group[0].n_queries
        blocks.append(f"{model_label(a)} − {model_label(b)}, query by query over the "
                      f"{_queries(n)} both were evaluated on:\n"
                      + _table(["metric", "mean difference", "95% CI", "p (paired t)", "better / same / worse"], rows))  # fmt: skip
    if blocks:
        blocks[-1] += ("\np: two-sided paired t-test, one per metric (the metrics are correlated: several tests are not "
                       "one test at 5%); — where there are fewer than two queries or every query differs by the same amount.")
    return blocks


def _grouped(differences: Sequence[PairedDifference]) -> list[tuple[tuple[str, str], list[PairedDifference]]]:
    groups: dict[tuple[str, str], list[PairedDifference]] = {}
    for d in differences:
        groups.setdefault((d.model_a, d.model_b), []).append(d)
    return list(groups.items())


def difference_cells(d: PairedDifference) -> tuple[str, str, str, str]:
    """A paired difference as shown (here and in the Evaluate tab): mean, 95% CI, p and
    better / same / worse, with — where one is undefined."""
    interval = "—" if d.ci_low is None else f"{_signed(d.ci_low)} … {_signed(d.ci_high)}"
    return _signed(d.mean), interval, _p_value(d.p_value), f"{d.wins} / {d.ties} / {d.losses}"


def _signed(value: float | None) -> str:
    return "—" if value is None else f"{value:+.4f}"


def _p_value(value: float | None) -> str:
    return "—" if value is None else ("< 0.0001" if value < 1e-4 else f"{value:.4f}")


def format_store(evaluation: StoreEvaluation, per_query: bool = False) -> str:
    labels = f"annotator {evaluation.annotator!r}" if evaluation.annotator else "majority vote of all annotators"
    lines = [f"Stored scores against human labels ({labels}); {_queries(len(evaluation.queries))} in the store."]
    if not evaluation.results:
        lines.append("No stored scores: rank some pages in the app first.")
    else:
        lines += ["", _means_table(evaluation.results, evaluation.ks)]
        if per_query:
            from .store import instruction_tag

            tags = {q: instruction_tag(i) for q, i in evaluation.instructions.items()}
            lines += ["", _per_query(evaluation.results, evaluation.ks, evaluation.queries, tags)]
        else:
            lines += _excluded_lines(evaluation.results)
        lines += ["", *_agreement_lines(evaluation.model_agreement)]
        for block in _differences_tables(evaluation.differences, evaluation.ks):
            lines += ["", block]
        lines += [f"note: {note}" for note in evaluation.comparison_notes()]
    if evaluation.annotator_agreement:
        lines.append("annotator agreement (Cohen's κ over the pages both judged relevant / not relevant):")
        for a in evaluation.annotator_agreement:
            kappa = a.kappa
            lines.append(f"  {a.annotator_a} vs {a.annotator_b}: κ {_num(kappa.kappa, 3)} "
                         f"(n={kappa.n}, observed agreement {_num(kappa.observed, 3)})")  # fmt: skip
        if note := evaluation.kappa_note():
            lines.append(f"  {note}")
    else:
        lines.append(f"annotator agreement: needs two annotators (have {len(evaluation.annotators)}).")
    lines.append("blog NDCG = the comparison blog's variant; it is ≥ standard NDCG and not comparable with published NDCG.")
    return "\n".join(lines)


def format_benchmark(evaluation: BenchmarkEvaluation, per_query: bool = False) -> str:
    pairs = sum(len(pages) for pages in evaluation.runs[FIRST_STAGE].values())
    lines = [f"Benchmark {evaluation.source} (split {evaluation.split}): {_queries(evaluation.n_queries)}, "
             f"{pairs} (query, page) pairs per model; images from {evaluation.images}"]  # fmt: skip
    if evaluation.note:
        lines.append(f"note: {evaluation.note}")
    skipped = evaluation.missing + list(evaluation.unreadable)
    if evaluation.missing:
        shown = ", ".join(evaluation.missing[:5]) + (", …" if len(evaluation.missing) > 5 else "")
        lines.append(f"warning: {len(evaluation.missing)} candidate image(s) not found (by name or stem), skipped: {shown}")
    for name, reason in list(evaluation.unreadable.items())[:5]:
        lines.append(f"warning: could not read image {name}: {reason}")
    if len(evaluation.unreadable) > 5:
        lines.append(f"warning: {len(evaluation.unreadable)} unreadable images in all, skipped")
    keys = [k for k in evaluation.results if k != FIRST_STAGE]
    extra = []
    if evaluation.blog:
        name, values = evaluation.blog
        extra.append([f"blog's published NDCG@5 ({name}, blog variant)", "—", *(_num(values.get(k), 3) for k in keys)])
    extra.append(["time (s, scoring only)", "—", *(f"{evaluation.timings[k].seconds:.2f}" for k in keys)])
    extra.append(["pairs/s", "—", *(_num(evaluation.timings[k].pairs_per_s, 1) for k in keys)])
    lines += ["", _means_table(evaluation.results, evaluation.ks, extra)]
    if per_query:
        lines += ["", _per_query(evaluation.results, evaluation.ks, evaluation.queries)]
    else:
        lines += _excluded_lines(evaluation.results)
    lines += ["", *_agreement_lines(evaluation.model_agreement)]
    for block in _differences_tables(evaluation.differences, evaluation.ks):
        lines += ["", block]
    lines.append("NDCG counts relevant pages the first stage missed in its ideal DCG; blog NDCG (the comparison "
                 "blog's variant) ignores them and is not comparable with published NDCG.")  # fmt: skip
    if skipped:
        lines.append("Skipped candidates are left out of every row alike (a skipped relevant page still counts as relevant).")
    return "\n".join(lines)


# --------------------------------------------------------------------------- CLI


def register_cli(subparsers) -> None:
    parser = subparsers.add_parser(
        "eval",
        help="evaluate the models against human labels (stored judgments or a benchmark)",
        description=(
            "Evaluate each model against human relevance labels.\n"
            "Default source: the app's database (stored scores vs stored judgments).\n"
            "With --benchmark: score every candidate of a *_reranker_adapted dataset with each model,\n"
            "as the comparison blog did, beside the first-stage retriever's own ranking. Each row:\n"
            "  query, query_id              the question and its id\n"
            "  top_25_image_filenames       the candidate pages' names (corpus ids), first-stage order\n"
            "  top_25_scores                the first-stage retriever's score of each\n"
            "  relevant_image_filenames     the names of the pages judged relevant\n"
            "and --images DIR holds one image file per name (123 or 123.png, anywhere below DIR)."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=(
            "examples:\n"
            "  python -m reranker eval --db data/arena.db --per-query\n"
            "  python -m reranker eval --db data/arena.db --annotator alice\n"
            "  python -m reranker eval --benchmark UlrickBL/vidore_benchmark_2_esg_reports_human_labeled_v2_reranker_adapted \\\n"
            "      --split esg_reports_human_labeled_v2 --images corpus_images/ --output esg.json\n"
            "  python -m reranker eval --benchmark bench.parquet --images pages/ --models qwen3-reranker-mm-2b --limit 10"
        ),
    )
    from .models import MODELS

    source = parser.add_mutually_exclusive_group()
    source.add_argument("--db", help="database file (default: $RERANKER_DB or data/arena.db)")
    source.add_argument("--benchmark", metavar="PATH_OR_HUB_ID",
                        help="a *_reranker_adapted dataset: parquet/jsonl/json file, folder, or Hub id")  # fmt: skip
    parser.add_argument("--k", type=positive_int, action="append", dest="ks", metavar="K",
                        help="cut-off for NDCG/recall (repeatable; default 5 and 10)")  # fmt: skip
    parser.add_argument("--per-query", action="store_true", help="also print one row per query")
    parser.add_argument("--output", type=Path, metavar="FILE.json", help="also write everything as JSON")
    stored = parser.add_argument_group("store")
    stored.add_argument("--annotator", help="use this annotator's labels (default: majority vote of all annotators)")
    bench = parser.add_argument_group("benchmark")
    bench.add_argument("--split", help="dataset split (default: test, or the only split there is)")
    bench.add_argument("--limit", type=positive_int, metavar="N", help="only the first N queries")
    bench.add_argument("--images", metavar="DIR", help="folder with the candidate page images (default: the benchmark file's own folder; required for a Hub id)")
    bench.add_argument("--models", nargs="+", choices=list(MODELS), metavar="KEY",
                       help=f"models to score (default: all): {', '.join(MODELS)}")  # fmt: skip
    bench.add_argument("--batch-size", type=positive_int, help="pairs per forward pass (default: the reranker's)")
    spec_a, spec_b = MODELS[MODEL_A], MODELS[MODEL_B]
    bench.add_argument("--max-pixels-a", type=int, metavar="PIXELS",
                       help=f"image budget of {spec_a.label} (default {spec_a.max_pixels}, at most {spec_a.max_pixels_limit})")  # fmt: skip
    bench.add_argument("--max-pixels-b", type=int, metavar="PIXELS",
                       help=f"image budget of {spec_b.label} (default {spec_b.max_pixels}, at most {spec_b.max_pixels_limit})")  # fmt: skip
    bench.add_argument("--device", type=device_name, help="cuda, cpu, ... (default: $RERANKER_DEVICE, else CUDA when present)")
    parser.set_defaults(handler=_run_cli)


# The benchmark group's options (all default to None): given without --benchmark they would do nothing.
BENCHMARK_OPTIONS = ("split", "limit", "images", "models", "batch_size", "max_pixels_a", "max_pixels_b", "device")


def _run_cli(args: argparse.Namespace) -> int:
    ks = tuple(dict.fromkeys(args.ks or (5, 10)))
    if any(k < 1 for k in ks):
        raise UsageError("--k must be at least 1")
    if not args.benchmark and (given := [name for name in BENCHMARK_OPTIONS if getattr(args, name) is not None]):
        raise UsageError(f"{', '.join('--' + name.replace('_', '-') for name in given)}: only with --benchmark "
                         "(stored judgments are evaluated on the scores the app stored)")
    if args.benchmark and args.annotator:
        raise UsageError("--annotator chooses among stored judgments; a --benchmark has its own labels")
    for flag, key, max_pixels in (("--max-pixels-a", MODEL_A, args.max_pixels_a), ("--max-pixels-b", MODEL_B, args.max_pixels_b)):
        spec = MODELS[key]
        try:
            spec.check_budget(max_pixels)  # before the models load
        except ValueError:  # its message names the model, not the flag that set the budget
            raise UsageError(f"{flag} must be from {spec.min_pixels} to {spec.max_pixels_limit} "
                             f"(the image budget of {spec.label}, in pixels), not {max_pixels}") from None  # fmt: skip
    from .store import database_path

    database = None if args.benchmark else database_path(args.db)
    if args.output:  # checked now, not after minutes of scoring (and the database is never overwritten)
        check_output(args.output, "--output", database=database, inputs={"benchmark": args.benchmark})
    try:
        if args.benchmark:
            evaluation = _cli_benchmark(args, ks)
            if evaluation is None:
                return 1
            text = format_benchmark(evaluation, args.per_query)
        else:
            from .store import Store

            with Store.existing(database) as store:
                evaluation = evaluate_store(store, args.annotator, ks)
            text = format_store(evaluation, args.per_query)
    except (ValueError, OSError) as error:  # bad input, unreadable file, Hub unreachable (a StoreError: cli.main)
        return _fail(str(error))
    print(text)
    if not any(result.rows for key, result in evaluation.results.items() if key != FIRST_STAGE):
        # Exit 1 as `score` and `export` do when they have nothing to show: a script must not take a
        # table of dashes (a wrong --images folder, a store without judgments) for results.
        unwritten = f"; {args.output} not written" if args.output else ""
        if not evaluation.results:
            return _fail(f"nothing to evaluate: no stored scores (rank some pages in the app first){unwritten}")
        return _fail(f"no model could be evaluated on any query (the reasons are listed above){unwritten}")
    if args.output:  # whole or not at all: a full disk leaves an earlier file as it was
        with output_file(args.output) as partial:
            partial.write_text(json.dumps(evaluation.to_dict(), indent=2, ensure_ascii=False), encoding="utf-8")
        print(f"wrote {args.output}")
    return 0


def _cli_benchmark(args: argparse.Namespace, ks: tuple[int, ...]) -> BenchmarkEvaluation | None:
    from .models import MODELS

    models = args.models or list(MODELS)
    local = _is_local(args.benchmark)
    if args.images is None:
        if not local:
            _fail(f"--images DIR is required for a Hub dataset.\n\n{IMAGES_HELP.format(schema='UlrickBL/*_reranker_adapted')}")
            return None
        images = Path(args.benchmark).expanduser()
        images = images if images.is_dir() else images.parent  # local data: look beside it by default
    else:
        images = Path(args.images).expanduser()
    if not images.is_dir():
        _fail(f"no image folder at {images}")
        return None
    benchmark = load_benchmark(args.benchmark, args.split, args.limit)
    if not benchmark.queries:
        _fail(f"{args.benchmark}: no queries in split {benchmark.split!r}")
        return None

    def progress(done: int, total: int) -> None:
        if sys.stderr.isatty():
            print(f"\rscored {done}/{total} queries", end="" if done < total else "\n", file=sys.stderr, flush=True)

    from .loading import LoadError

    try:
        return run_benchmark(
            benchmark, images, models=models, ks=ks, batch_size=args.batch_size,
            max_pixels={MODEL_A: args.max_pixels_a, MODEL_B: args.max_pixels_b}, device=args.device, progress=progress,
        )  # fmt: skip
    except LoadError as error:
        _fail(str(error))
        return None


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 1
