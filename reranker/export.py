"""Judgments → training data: positives, hard negatives, and four file formats trainers read.

A positive is a page judged relevant. A hard negative is a page judged not relevant that a model
nonetheless ranked high: in its top k (`top_k`), scored above the query's lowest-scored positive
(`above_lowest_positive`), or either (`either`, the default); `all` keeps every judged negative.
Unjudged pages become negatives only with `include_mined_negatives` (in queries someone judged:
a skip is no judgment), and are then labelled `mined_negative`. Negatives come hardest first (best rank under any model), at most
`max_negatives` per query, judged ones before mined ones.

Every format is one file with the images inside, named by content hash (`images/<hash>.png`, or
bytes embedded in Parquet); human names (file names, queries) only ever appear inside data rows,
so no name can escape or break an archive. The same database and options give the same bytes:
rows are sorted, zip entries carry a fixed timestamp, and nothing records the wall clock.

Zip layouts (each loads with `datasets.load_dataset("imagefolder", data_files=ZIP)` through its
`metadata.jsonl`, except FlagEmbedding's `train.jsonl`, in the row layout of FlagEmbedding's
reranker fine-tuning data; its `pos`/`neg` are image paths, which FlagEmbedding's own, text-only
trainers would read as passage text):
  pointwise              metadata.jsonl: one row per (query, page, label), `file_name` → image
  sentence-transformers  metadata.jsonl: anchor, positive, negative_1 … negative_n — exactly the
                         columns MultipleNegativesRankingLoss takes, in order (anything else would
                         be read as one more input), so each row's scores, ranks, annotators and
                         instruction live in details.jsonl, line for line
  flagembedding          train.jsonl: {"query", "pos", "neg", "pos_scores", "neg_scores",
                         ["prompt"], …details}, paths relative to the archive root; the scores
                         are the teacher's log-odds, ln(P(yes) / P(no)), as FlagEmbedding distils
                         from raw scores
Every zip also has export.json: the options, the counts, the models and the annotation guidelines;
a Parquet file holds the same JSON in its schema metadata (`PARQUET_MANIFEST_KEY`).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import re
import sys
import zipfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any, Literal

from .cli import positive_int, whole_number
from .metrics import majority
from .models import MODELS, in_model_order, render_prompt
from .output_files import check_output, output_file
from .store import NOT_RELEVANT, RELEVANT, QueryPage, Store, WhileUnchanged, parse_moment, time_bound

Format = Literal["pointwise", "sentence-transformers", "flagembedding", "parquet"]
Rule = Literal["either", "top_k", "above_lowest_positive", "all"]
FORMATS: dict[str, str] = {  # format → file suffix
    "pointwise": ".zip",
    "sentence-transformers": ".zip",
    "flagembedding": ".zip",
    "parquet": ".parquet",
}
RULES = ("either", "top_k", "above_lowest_positive", "all")  # the default first, as the Export tab lists them
MINED = "mined_negative"

_ZIP_TIME = (1980, 1, 1, 0, 0, 0)  # the earliest zip date: a constant, so archives are reproducible
_MEMBER = re.compile(r"(images/[0-9a-f]{16,128}\.png|[a-z_]+\.jsonl?)")  # every name we ever write


class NothingToExportError(ValueError):
    """The options select no rows; the message says why. No file is written."""


@dataclass(frozen=True)
class ExportOptions:
    format: Format = "pointwise"
    k: int = 5  # top_k: "ranked high" means rank ≤ k under some model
    rule: Rule = "either"
    max_negatives: int = 10  # per query, hardest first
    annotator: str | None = None  # only this annotator's labels
    since: date | datetime | str | None = None  # labels given from then on
    until: date | datetime | str | None = None  # labels as they stood then (a date: that whole day)
    # Drop pages on which annotators disagree (else: majority). Everyone's labels at `until` count:
    # with or without it, a page the whole team labels the other way is never exported.
    require_agreement: bool = False
    # Unjudged pages a model ranked high, in queries someone judged, marked `mined_negative`.
    include_mined_negatives: bool = False
    models: tuple[str, ...] | None = None  # models whose ranks count; None: every model with scores
    negatives_per_row: int | None = None  # sentence-transformers n; None: the fewest any query has
    # flagembedding pos_scores/neg_scores: this model where it scored the query, else (or when
    # None) the first model that did; each row names its teacher.
    teacher: str | None = None

    def __post_init__(self) -> None:
        if self.format not in FORMATS:
            raise ValueError(f"format must be one of {sorted(FORMATS)}, not {self.format!r}")
        if self.rule not in RULES:
            raise ValueError(f"rule must be one of {RULES}, not {self.rule!r}")
        if self.k < 1 or self.max_negatives < 0 or (self.negatives_per_row is not None and self.negatives_per_row < 1):
            raise ValueError("k and negatives_per_row must be ≥ 1, max_negatives ≥ 0")
        if self.since is not None and self.until is not None and time_bound(self.since) >= time_bound(self.until, end=True):
            raise ValueError(f"since {self.since} is not before until {self.until} (a date until includes that whole "
                             "day): no judgment can fall between them")
        if self.models is not None:
            object.__setattr__(self, "models", tuple(self.models))

    def as_json(self) -> dict[str, Any]:
        return {k: (v.isoformat() if isinstance(v, date) else v) for k, v in dataclasses.asdict(self).items()}


DEFAULTS = ExportOptions()  # what the CLI, the Export tab and /export start from


@dataclass(frozen=True)
class Example:
    """One page of one query, as exported."""

    page_hash: str
    position: int
    source: str
    page_number: int
    label: str  # relevant | not_relevant | mined_negative
    annotators: tuple[str, ...]  # those who gave this label (none for mined)
    scores: dict[str, float]
    ranks: dict[str, int]
    hard_for: tuple[str, ...]  # models under whose rule the page counts as ranked high

    @property
    def positive(self) -> bool:
        return self.label == RELEVANT

    def details(self, models: Iterable[str]) -> dict[str, Any]:
        return {
            "page_hash": self.page_hash,
            "source": self.source,
            "page_number": self.page_number,
            "judgment": self.label,
            "annotators": list(self.annotators),
            "scores": {m: self.scores.get(m) for m in models},
            "ranks": {m: self.ranks.get(m) for m in models},
            "hard_for": list(self.hard_for),
            "mined": self.label == MINED,
        }


@dataclass(frozen=True)
class QueryExamples:
    query_id: int
    query: str
    instruction: str | None
    positives: tuple[Example, ...]
    negatives: tuple[Example, ...]  # judged hard negatives, then mined, hardest first, capped


@dataclass(frozen=True)
class Selection:
    """What the options select, before any format is applied."""

    queries: tuple[QueryExamples, ...]
    models: tuple[str, ...]  # the models whose ranks make a negative hard
    # The files' score columns: every known model, then any other with scores here. Fixed, not just
    # the models that scored these queries, so every export has the same columns (a Parquet file
    # from before model B scored anything could not be concatenated with a later one).
    score_columns: tuple[str, ...]
    judgments: int  # current labels that passed the annotator/date filters
    disagreements: int  # pages dropped: annotators disagree (with require_agreement) or tie
    annotator: str | None = None  # the annotator filter as stored ("ALICE" asked: "alice")
    # As asked: what `summarize` and `export` apply to it (two selections of the same pages are
    # equal whatever options chose them).
    options: ExportOptions | None = dataclasses.field(default=None, compare=False)


@dataclass(frozen=True)
class ExportPreview:
    format: str
    queries: int
    positives: int
    hard_negatives: int  # judged not relevant and ranked high
    mined_negatives: int
    hard_negatives_by_model: dict[str, int]  # a page hard for both models counts for both
    mined_by_model: dict[str, int]
    rows: int  # rows the chosen format will hold
    skipped_queries: int  # queries this format cannot use (e.g. no positive)
    disagreements: int
    judgments: int
    models: tuple[str, ...] = field(default=())
    negatives_per_row: int = 0  # sentence-transformers: negative columns in every row
    negatives_per_row_asked: bool = False  # set in the options, not the default (the fewest any query has)
    rule: str = "either"  # "all": hard_negatives counts every judged negative
    without_teacher: int = 0  # flagembedding: rows without pos_scores/neg_scores (no model scored all their pages)
    # sentence-transformers, flagembedding: exported queries whose text another one shares under
    # another instruction; their rows' anchor/query is the same text, their labels may differ.
    instruction_twins: int = 0

    def describe(self) -> str:
        lines = [
            f"{self.format}: {self.rows} row{'' if self.rows == 1 else 's'} from {self.queries} "
            f"quer{'y' if self.queries == 1 else 'ies'}",
            f"  positives       {self.positives}",
            (f"  negatives       {self.hard_negatives} (rule 'all': every judged one; those ranked high:)"
             if self.rule == "all" else f"  hard negatives  {self.hard_negatives}")
            # Each model's name, then its key as the files' hard_for column holds it; a page hard
            # for both models counts under each.
            + "".join(f"\n    hard for {_model_name(m):<44}{n}" for m, n in self.hard_negatives_by_model.items()),
        ]
        if self.format == "sentence-transformers" and self.queries:
            how = ("as asked: queries with fewer are skipped" if self.negatives_per_row_asked else
                   "the fewest any query has; ask for more per row and the queries with fewer are skipped")
            lines.append(f"  negatives/row   {self.negatives_per_row} ({how})")
        if self.mined_negatives:
            lines.append(f"  mined negatives {self.mined_negatives} (unjudged, ranked high)")
        if self.skipped_queries:
            lines.append(f"  skipped queries {self.skipped_queries} (no positive or too few negatives for this format)")
        if self.disagreements:
            lines.append(f"  pages dropped   {self.disagreements} (annotators disagree or tie)")
        if self.without_teacher:
            lines.append(f"  no scores       {self.without_teacher} row{'' if self.without_teacher == 1 else 's'} "
                         "without pos_scores/neg_scores (no model scored all of the query's pages); "
                         "leave them out to distil")
        if self.instruction_twins:
            where = "the instruction column" if self.format == "flagembedding" else "details.jsonl"
            lines.append(f"  same text       {self.instruction_twins} queries share their text with one asked under "
                         f"another instruction: their rows hold the same {'query' if self.format == 'flagembedding' else 'anchor'}, "
                         f"their labels may differ (the instruction is in {where})")
        return "\n".join(lines)

    def as_json(self) -> dict[str, Any]:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(self).items()}


def _model_name(key: str) -> str:
    """"Qwen3-VL-Reranker-2B (qwen3-vl-reranker-2b)": the name shown elsewhere, and the key in the files."""
    return f"{MODELS[key].label} ({key})" if key in MODELS else key


# ---------------------------------------------------------------------------------------------
# Selection


def select(store: Store, options: ExportOptions) -> Selection:
    """Positives and negatives per query under the options (format-independent)."""
    with store.snapshot():  # one moment: an undo while exporting cannot split a label
        stored = options
        if options.annotator is not None:  # as the app does: "ALICE" is who judges as "alice"; blank: everyone
            name = options.annotator.strip()
            stored = dataclasses.replace(options, annotator=store.known_annotator(name) if name else None)
        store.require_annotator(stored.annotator)
        return dataclasses.replace(_select(store, stored), options=options)


class SelectionCache:
    """`select`, kept while the store is unchanged (`store.WhileUnchanged`), for options that
    select alike: the format, negatives per row and the teacher only shape the file. The app's
    Export tab previews on every change of format and every visit (0.8 s a time with 30,000
    judgments, 6 s with 300,000), and the Export click selects what its preview counted. A
    selection can be MBs: the latest `entries` are kept."""

    def __init__(self, entries: int = 2):
        self._kept = WhileUnchanged(entries)

    def select(self, store: Store, options: ExportOptions) -> Selection:
        alike = dataclasses.replace(options, format="pointwise", negatives_per_row=None, teacher=None)
        selection = self._kept.get(store, alike, lambda: select(store, options))
        return dataclasses.replace(selection, options=options)


def _votes(judgments) -> dict[int, dict[str, dict[str, str]]]:
    """query → page → {annotator: label}."""
    votes: dict[int, dict[str, dict[str, str]]] = {}
    for j in judgments:
        votes.setdefault(j.query_id, {}).setdefault(j.page_hash, {})[j.annotator] = j.label
    return votes


def _binary(labels: dict[str, str]) -> dict[str, str]:
    return {who: label for who, label in labels.items() if label in (RELEVANT, NOT_RELEVANT)}


def _select(store: Store, options: ExportOptions) -> Selection:
    judged = store.current_judgments(annotator=options.annotator, since=options.since, until=options.until)
    votes = _votes(judged)
    # Everyone's labels as they stood at `until`: the annotator and `since` filters choose which
    # judgments are exported, but never export a page the whole team labels the other way.
    team = votes if not (options.annotator or options.since) else _votes(store.current_judgments(until=options.until))
    pages = {query_id: store.query_pages(query_id) for query_id in sorted(votes)}
    scored_models = tuple(in_model_order({m for ps in pages.values() for p in ps for m in p.scores}))
    models = options.models or scored_models
    score_columns = tuple(in_model_order({*MODELS, *scored_models}))

    summaries = {summary.id: summary for summary in store.list_queries()} if pages else {}  # once, not a query each
    queries, disagreements = [], 0
    for query_id, candidates in pages.items():
        summary = summaries[query_id]
        labelled: list[tuple[QueryPage, str, tuple[str, ...]]] = []
        for page in candidates:
            page_votes = _binary(votes[query_id].get(page.page_hash, {}))  # a skip is no vote
            if not page_votes:
                continue  # unjudged, or only skipped
            label = majority(page_votes.values())
            if team is votes:  # no filter: the team's labels are these (not counted again)
                team_votes, team_label = page_votes, label
            else:
                team_votes = _binary(team.get(query_id, {}).get(page.page_hash, {}))
                team_label = majority(team_votes.values())
            if (label is None or team_label not in (None, label)
                    or (options.require_agreement and len(set(team_votes.values()) | {label}) > 1)):
                disagreements += 1
                continue
            labelled.append((page, label, tuple(sorted(who for who, vote in page_votes.items() if vote == label))))

        positives = [_example(p, RELEVANT, who, ()) for p, label, who in labelled if label == RELEVANT]
        negatives = []
        for page, label, who in labelled:
            if label == NOT_RELEVANT:
                hard = _hard_for(page, positives, models, options)
                if hard or options.rule == "all":
                    negatives.append(_example(page, NOT_RELEVANT, who, hard))
        negatives.sort(key=lambda e: _hardness(e, models))
        # Mined only where someone judged the query (a skip is no judgment): an unjudged page is
        # taken as not relevant because the query's relevant pages are known; in a query nobody
        # judged, nothing says so.
        if options.include_mined_negatives and any(_binary(v) for v in votes[query_id].values()):
            # "Unjudged" by anyone at all: a page someone labelled, now or at `until` (even
            # outside the filters, or as skip), is never mined, so a known positive cannot come
            # back as a negative, nor a page twice.
            seen = {j.page_hash for j in store.current_judgments(query_id=query_id)}
            seen |= set(votes[query_id]) | set(team.get(query_id, {}))
            mined = [
                _example(p, MINED, (), hard)
                for p in candidates
                if p.page_hash not in seen and (hard := _hard_for(p, positives, models, options))
            ]
            negatives += sorted(mined, key=lambda e: _hardness(e, models))
        negatives = negatives[: options.max_negatives]
        if positives or negatives:
            queries.append(
                QueryExamples(query_id, summary.text, summary.instruction, tuple(positives), tuple(negatives))
            )
    return Selection(tuple(queries), tuple(models), score_columns, len(judged), disagreements, options.annotator)


def _example(page: QueryPage, label: str, annotators: tuple[str, ...], hard_for: tuple[str, ...]) -> Example:
    return Example(
        page.page_hash,
        page.position,
        page.source,
        page.page_number,
        label,
        annotators,
        dict(page.scores),
        dict(page.ranks),
        hard_for,
    )


def _hard_for(
    page: QueryPage, positives: list[Example], models: Iterable[str], options: ExportOptions
) -> tuple[str, ...]:
    rule = "either" if options.rule == "all" else options.rule  # `all` keeps every negative; still say which are hard
    hard = []
    for model in models:
        if model not in page.scores:
            continue
        in_top_k = page.ranks[model] <= options.k
        positive_scores = [p.scores[model] for p in positives if model in p.scores]
        above_positive = bool(positive_scores) and page.scores[model] > min(positive_scores)
        if {"top_k": in_top_k, "above_lowest_positive": above_positive, "either": in_top_k or above_positive}[rule]:
            hard.append(model)
    return tuple(hard)


def _hardness(example: Example, models: Iterable[str]) -> tuple[int, float, int]:
    # Best rank under any model first (ranks compare across models, raw scores need not).
    ranks = [example.ranks[m] for m in models if m in example.ranks]
    scores = [example.scores[m] for m in models if m in example.scores]
    return (min(ranks, default=1 << 30), -max(scores, default=0.0), example.position)


# ---------------------------------------------------------------------------------------------
# Formats: each turns a Selection into rows; queries a format cannot use are skipped.


def _usable(selection: Selection, options: ExportOptions) -> tuple[list[QueryExamples], int]:
    """Queries the format can use, and (sentence-transformers) how many negatives per row."""
    queries = list(selection.queries)
    if options.format in ("pointwise", "parquet"):
        return queries, 0
    paired = [q for q in queries if q.positives and q.negatives]  # both need a positive and a negative
    if options.format == "flagembedding":
        return paired, 0
    n = options.negatives_per_row or min((len(q.negatives) for q in paired), default=0)
    return [q for q in paired if len(q.negatives) >= n], n


def preview(store: Store, options: ExportOptions) -> ExportPreview:
    """Counts of what `export` would write with these options (nothing is written)."""
    return summarize(select(store, options))


def summarize(selection: Selection) -> ExportPreview:
    """The counts `preview` gives, of a selection already made (`select`)."""
    options = selection.options
    queries, n = _usable(selection, options)
    negatives = [e for q in queries for e in (q.negatives[:n] if n else q.negatives)]
    positives = sum(len(q.positives) for q in queries)
    rows = {
        "pointwise": positives + len(negatives),
        "parquet": positives + len(negatives),
        "sentence-transformers": positives,
        "flagembedding": len(queries),
    }[options.format]
    judged = [e for e in negatives if e.label == NOT_RELEVANT]
    mined = [e for e in negatives if e.label == MINED]
    return ExportPreview(
        format=options.format,
        queries=len(queries),
        positives=positives,
        hard_negatives=len(judged),
        mined_negatives=len(mined),
        hard_negatives_by_model={m: sum(m in e.hard_for for e in judged) for m in selection.models},
        mined_by_model={m: sum(m in e.hard_for for e in mined) for m in selection.models},
        rows=rows,
        skipped_queries=len(selection.queries) - len(queries),
        disagreements=selection.disagreements,
        judgments=selection.judgments,
        models=selection.models,
        negatives_per_row=n if options.format == "sentence-transformers" else 0,
        negatives_per_row_asked=options.negatives_per_row is not None,
        rule=options.rule,
        without_teacher=sum(_teacher(q, selection.score_columns, options.teacher) is None for q in queries)
        if options.format == "flagembedding" else 0,
        instruction_twins=_instruction_twins(queries) if options.format in ("sentence-transformers", "flagembedding") else 0,
    )


def _image_name(page_hash: str) -> str:
    return f"images/{page_hash}.png"


def _pointwise_rows(queries: list[QueryExamples], models: tuple[str, ...]) -> list[dict[str, Any]]:
    return [
        {
            "query_id": q.query_id,
            "query": q.query,
            "instruction": q.instruction,
            "label": int(e.positive),
            **e.details(models),
        }
        for q in queries
        for e in (*q.positives, *q.negatives)
    ]


def _pointwise(queries, n, models, store, options, prompt_for) -> dict[str, bytes]:
    rows = [{"file_name": _image_name(r["page_hash"]), **r} for r in _pointwise_rows(queries, models)]
    return {"metadata.jsonl": _jsonl(_in_order(rows, _typed_first(rows)))}


def _sentence_transformers(queries, n, models, store, options, prompt_for) -> dict[str, bytes]:
    rows, details = [], []
    for q in queries:
        negatives = q.negatives[:n]
        for positive in q.positives:
            row = {"anchor": q.query, "positive_file_name": _image_name(positive.page_hash)}
            row.update({f"negative_{i}_file_name": _image_name(e.page_hash) for i, e in enumerate(negatives, 1)})
            rows.append(row)
            details.append(
                {
                    "query_id": q.query_id,
                    "query": q.query,
                    "instruction": q.instruction,
                    "positive": positive.details(models),
                    "negatives": [e.details(models) for e in negatives],
                }
            )
    order = _typed_first(details)  # the anchors, file names and negatives are never empty: details decide
    return {"metadata.jsonl": _jsonl(_in_order(rows, order)), "details.jsonl": _jsonl(_in_order(details, order))}


def _instruction_twins(queries: Sequence[QueryExamples]) -> int:
    """How many of `queries` share their text with another asked under another instruction."""
    instructions: dict[str, set] = {}
    for q in queries:
        instructions.setdefault(q.query, set()).add(q.instruction)
    return sum(len(instructions[q.query]) > 1 for q in queries)


def _teacher(q: QueryExamples, models: Sequence[str], wanted: str | None) -> str | None:
    """The model whose scores fill this query's pos_scores/neg_scores: `wanted` (else the first
    model) when it scored every page of the query, else the first model that did; None if none.
    (A query ranked while one model had failed has the other model's scores only.)"""
    examples = [*q.positives, *q.negatives]
    for model in ([wanted] if wanted else []) + [model for model in models if model != wanted]:
        if all(model in e.scores for e in examples):
            return model
    return None


# P(yes) saturates at 1 (or 0) in float32 past a yes−no logit gap of ~16.6: such a score is taken
# as that gap, as the largest float32 probability below 1 gives.
_SATURATED = 2.0**-24


def log_odds(probability: float) -> float:
    """ln(p / (1 − p)) of a stored P(yes): the model's yes−no logit difference, whose sigmoid it
    is. FlagEmbedding distils from raw reranker scores (its rerankers' `compute_score` default),
    taking a softmax over each row's pos_scores + neg_scores: probabilities there gave flat
    targets ([0.8, 0.9, 0.3, 0.4] → [.30, .33, .18, .20], against [.28, .64, .03, .05])."""
    p = min(max(probability, _SATURATED), 1.0 - _SATURATED)
    return math.log(p / (1.0 - p))


def _flagembedding(queries, n, models, store, options, prompt_for) -> dict[str, bytes]:
    scored = [m for m in models if any(m in e.scores for q in queries for e in (*q.positives, *q.negatives))]
    if options.teacher is not None and options.teacher not in scored:
        raise ValueError(f"teacher {options.teacher!r} has no scores here; models with scores: {', '.join(scored) or 'none'}")
    rows = []
    for q in queries:
        teacher = _teacher(q, models, options.teacher)
        row: dict[str, Any] = {
            "query": q.query,
            "pos": [_image_name(e.page_hash) for e in q.positives],
            "neg": [_image_name(e.page_hash) for e in q.negatives],
        }
        if teacher is not None:  # else none (the preview counts such rows): never made-up scores
            row["pos_scores"] = [log_odds(e.scores[teacher]) for e in q.positives]
            row["neg_scores"] = [log_odds(e.scores[teacher]) for e in q.negatives]
        # FlagEmbedding's "prompt" is the yes/no question its trainer appends after
        # "query [sep] passage" (missing: its own default), not a whole chat prompt.
        if prompt_for is not None:
            row["prompt"] = prompt_for(q.query, q.instruction)
        row.update(
            query_id=q.query_id,
            instruction=q.instruction,
            teacher=teacher,
            # The exact prompt the teacher scored (its page as the image placeholder), to distil with.
            teacher_prompt=render_prompt(MODELS[teacher], q.query, q.instruction) if teacher in MODELS else None,
            pos_details=[e.details(models) for e in q.positives],
            neg_details=[e.details(models) for e in q.negatives],
        )
        rows.append(row)
    return {"train.jsonl": _jsonl(_in_order(rows, _typed_first(rows)))}


_ZIP_WRITERS: dict[str, Callable[..., dict[str, bytes]]] = {
    "pointwise": _pointwise,
    "sentence-transformers": _sentence_transformers,
    "flagembedding": _flagembedding,
}


def _typed_first(rows: list[dict[str, Any]]) -> list[int]:
    """An order of `rows` (their indices): as they are, except that for each field, nested ones
    too, the first row where it holds something (not null, not an empty list) comes first.

    `datasets` reads JSON Lines 10 MB at a time (~20,000 pointwise rows) and fixes each column's
    type from the first part it reads: a column empty there (no instruction in the early queries,
    a model that scored only the later ones) was typed null, and loading failed at its first
    value. Later rows may leave a field empty; those first ones say what it holds."""
    first: dict[tuple, int] = {}
    for index, row in enumerate(rows):
        for path in _filled(row, ()):
            first.setdefault(path, index)
    front = sorted(set(first.values()))
    moved = set(front)
    return front + [index for index in range(len(rows)) if index not in moved]


def _filled(value: Any, path: tuple) -> Iterator[tuple]:
    """The paths of the fields of `value` that hold something."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _filled(item, (*path, key))
    elif isinstance(value, list):
        if value:
            yield path
        for item in value:
            yield from _filled(item, (*path, "[]"))
    elif value is not None:
        yield path


def _in_order(rows: list, order: list[int]) -> list:
    return [rows[index] for index in order]


def _jsonl(rows: list[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(row, ensure_ascii=False, separators=(",", ":")) + "\n" for row in rows).encode()


def _write_zip(path: Path, members: dict[str, bytes], images: dict[str, str], store: Store) -> None:
    """The data files, then each image (member name → page hash), read from the store as it is
    written: one image in memory at a time, however large the export."""
    contents = [(name, lambda name=name: members[name]) for name in sorted(members)]
    contents += [(name, lambda name=name: store.page_png(images[name])) for name in sorted(images)]
    with zipfile.ZipFile(path, "w") as archive:
        for name, read in contents:
            if not _MEMBER.fullmatch(name):  # defence in depth: hashes are checked on the way in
                raise ValueError(f"refusing archive member name {name!r}")
            info = zipfile.ZipInfo(name, date_time=_ZIP_TIME)
            info.create_system = 3  # unix, whatever the host: same bytes everywhere
            info.external_attr = 0o644 << 16
            # PNGs are already compressed; deflating them again costs time and saves nothing
            info.compress_type = zipfile.ZIP_STORED if name.endswith(".png") else zipfile.ZIP_DEFLATED
            archive.writestr(info, read())


def _write_parquet(path: Path, queries: list[QueryExamples], models: tuple[str, ...], store: Store, manifest: str) -> None:
    import datasets  # heavy; only this format needs it
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = _pointwise_rows(queries, models)
    features = {
        "query_id": datasets.Value("int64"),
        "query": datasets.Value("string"),
        "instruction": datasets.Value("string"),
        "label": datasets.Value("int8"),
        "image": datasets.Image(),
        "page_hash": datasets.Value("string"),
        "source": datasets.Value("string"),
        "page_number": datasets.Value("int32"),
        "judgment": datasets.Value("string"),
        "annotators": datasets.List(datasets.Value("string")),
        "scores": {m: datasets.Value("float64") for m in models},
        "ranks": {m: datasets.Value("int32") for m in models},
        "hard_for": datasets.List(datasets.Value("string")),
        "mined": datasets.Value("bool"),
    }
    features = datasets.Features(features)
    schema = features.arrow_schema  # carries the datasets features (Image) as metadata
    # What a zip's export.json holds, under a key of its own beside datasets' "huggingface" key.
    schema = schema.with_metadata({**(schema.metadata or {}), PARQUET_MANIFEST_KEY: manifest.encode()})
    # Written a row group at a time, so only that many images are in memory (a Dataset built
    # from every row at once held ~6x the file's size).
    with pq.ParquetWriter(str(path), schema=schema) as writer:
        for start in range(0, len(rows), PARQUET_ROWS_PER_GROUP):
            columns: dict[str, list[Any]] = {name: [] for name in features}
            for row in rows[start:start + PARQUET_ROWS_PER_GROUP]:
                # embedded bytes, so the file stands alone; the hash as name tells the format, not a path
                row = {**row, "image": {"bytes": store.page_png(row["page_hash"]), "path": f"{row['page_hash']}.png"}}
                for name in features:
                    columns[name].append(row[name])
            writer.write_table(pa.Table.from_pydict(features.encode_batch(columns), schema=schema))


PARQUET_ROWS_PER_GROUP = 16
PARQUET_MANIFEST_KEY = b"multimodal-rerank-arena"  # pyarrow.parquet.read_schema(file).metadata[key]


def export(
    store: Store,
    options: ExportOptions,
    out_path: str | os.PathLike,
    *,
    selection: Selection | None = None,
    prompt_for: Callable[[str, str | None], str] | None = None,
) -> Path:
    """Write the export to `out_path` (one .zip or .parquet file) and return its path.

    FlagEmbedding rows carry the teacher model's exact prompt as "teacher_prompt"
    (`reranker.models.render_prompt`); `prompt_for(query, instruction)`, when given, fills
    FlagEmbedding's own "prompt" (the question its trainer appends after query and passage;
    without it, FlagEmbedding uses its default). `selection`: what `select(store, options)`
    gave for these same options a moment ago (the app's preview of the Export click), so that
    the file holds what that preview counted and the selection is not made twice; by default it
    is made now. Raises NothingToExportError (and writes nothing) when the options select no rows.
    """
    if selection is None:
        selection = select(store, options)
    elif selection.options != options:
        raise ValueError(f"this selection was made under other options ({selection.options}), not {options}")
    summary = summarize(selection)
    if summary.rows == 0:
        raise NothingToExportError(_nothing_message(summary, options))
    queries, n = _usable(selection, options)
    out_path = check_output(out_path, "the export file", database=store.path)
    manifest = {
        "generator": "multimodal-rerank-arena",
        "format": options.format,
        "options": {**options.as_json(), "annotator": selection.annotator},
        "counts": summary.as_json(),
        "models": list(selection.score_columns),  # the score columns; options.models: whose ranks made negatives hard
        # What "relevant" meant to the annotators (None: the app's default, never saved).
        "guidelines": dataclasses.asdict(guidelines) if (guidelines := store.guidelines()) else None,
    }
    manifest_json = json.dumps(manifest, ensure_ascii=False, indent=2, sort_keys=True) + "\n"
    with output_file(out_path) as partial:  # never a half-written export, nor one two runs shared
        if options.format == "parquet":
            _write_parquet(partial, queries, selection.score_columns, store, manifest_json)
        else:
            members = _ZIP_WRITERS[options.format](queries, n, selection.score_columns, store, options, prompt_for)
            members["export.json"] = manifest_json.encode()
            images = {  # only the images some row refers to
                _image_name(e.page_hash): e.page_hash
                for q in queries
                for e in (*q.positives, *(q.negatives[:n] if n else q.negatives))
            }
            _write_zip(partial, members, images, store)
    return out_path


def _nothing_message(summary: ExportPreview, options: ExportOptions) -> str:
    filters = [
        f"{name}={value}"
        for name, value in (("annotator", options.annotator), ("since", options.since), ("until", options.until))
        if value is not None
    ]
    where = f" matching {', '.join(filters)}" if filters else ""
    if summary.judgments == 0:
        return f"nothing to export: no judgments{where}"
    if options.max_negatives == 0 and options.format in ("sentence-transformers", "flagembedding"):
        return (f"nothing to export: the {options.format} format needs at least one negative a query, and max "
                "negatives is 0 (positives only: the pointwise or parquet format)")
    if summary.skipped_queries:
        needed = f"{options.negatives_per_row} hard negatives" if options.negatives_per_row else "one hard negative"
        fewer = "asking for fewer negatives per row, " if options.negatives_per_row else ""
        return (
            f"nothing to export: the {options.format} format needs queries with at least one positive and "
            f"{needed}; none of the {summary.skipped_queries} judged queries{where} has them (try {fewer}"
            "the hard-negative rule 'all', or adding model-mined negatives)"
        )
    return f"nothing to export: {summary.judgments} judgments{where}, but no relevant page and no hard negative"


def default_filename(options: ExportOptions, moment: datetime | None = None) -> str:
    """A file name for the export, with when it was made (UTC): `arena-flagembedding-20261127T132600Z.zip`.
    (One name for every export made a downloads folder of `arena-pointwise (3).zip`.)"""
    moment = (moment or datetime.now(timezone.utc)).astimezone(timezone.utc)
    return f"arena-{options.format}-{moment:%Y%m%dT%H%M%SZ}{FORMATS[options.format]}"


# ---------------------------------------------------------------------------------------------
# `python -m reranker export`


def register_cli(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "export",
        help="export judgments as hard-negative training data",
        description=(
            "Export human judgments as training data. Pages judged relevant are positives; pages judged\n"
            "not relevant that a model ranked high are hard negatives. Prints a preview (counts per model),\n"
            "then writes one file with the page images inside."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=(
            "formats:\n"
            "  pointwise              zip: metadata.jsonl, one row per (query, page, label) + images/\n"
            "  sentence-transformers  zip: anchor, positive, negative_1..n (MultipleNegativesRankingLoss)\n"
            "  flagembedding          zip: train.jsonl {query, pos, neg, pos_scores, neg_scores} + images/\n"
            "  parquet                Hugging Face datasets Parquet with an Image feature\n"
            "\nexample:\n"
            "  python -m reranker export --format flagembedding --rule top_k --k 3 --out train.zip"
        ),
    )
    parser.add_argument("--db", default=None, help="database file (default: $RERANKER_DB or data/arena.db)")
    parser.add_argument("--format", required=True, choices=sorted(FORMATS), help="output format")
    parser.add_argument("--out", type=Path, help="file to write (.zip, or .parquet for parquet); not needed with --preview")
    parser.add_argument("--k", type=positive_int, default=DEFAULTS.k,
                        help=f"a negative in any model's top K is hard (default {DEFAULTS.k})")
    parser.add_argument(
        "--rule",
        choices=RULES,
        default=DEFAULTS.rule,
        help="hard negative: in the top k, scored above the lowest-scored positive, either (default), "
        "or all judged negatives",
    )
    parser.add_argument(
        "--max-negatives", type=whole_number, default=DEFAULTS.max_negatives, metavar="N",
        help=f"at most this many negatives per query (default {DEFAULTS.max_negatives})"
    )
    parser.add_argument("--annotator", metavar="NAME", help="only this annotator's judgments")
    parser.add_argument("--since", type=_date_arg, help="only labels given from this date (YYYY-MM-DD) or ISO time on "
                        "(a relabel is a new label; one an undo brought back counts from when it was first given); "
                        "times without an offset are UTC")
    parser.add_argument("--until", type=_date_arg, help="labels as they stood at the end of this date, or at this "
                        "ISO time (UTC unless it has an offset)")
    parser.add_argument("--agreement", action="store_true", help="drop pages on which annotators disagree (all "
                        "annotators count, whatever --annotator and --since keep)")
    parser.add_argument(
        "--mined", action="store_true", help="add unjudged pages a model ranked high (in queries someone judged), marked mined_negative"
    )
    parser.add_argument(
        "--model", action="append", dest="models", choices=list(MODELS), metavar="KEY",
        help="only these models' ranks make a negative hard (repeatable); every model's scores stay in the file"
    )
    parser.add_argument("--negatives-per-row", type=positive_int, metavar="N",
                        help="sentence-transformers: negatives per row (default: the fewest any query has; queries with fewer are skipped)")
    parser.add_argument("--teacher", choices=list(MODELS), metavar="KEY", help="flagembedding: model whose scores fill pos_scores/neg_scores "
                        "(for a query it did not score: the first model that did; each row names its teacher)")
    parser.add_argument("--preview", action="store_true", help="print the counts only; write nothing")
    parser.set_defaults(handler=_run_cli)


def _date_arg(text: str) -> date | datetime:
    try:
        return parse_moment(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _run_cli(args: argparse.Namespace) -> int:
    with Store.existing(args.db) as store:  # raises StoreError, which the CLI prints
        return _export_cli(store, args)


# Options that apply to one format only: given with another, they would be silently ignored.
FORMAT_ONLY_OPTIONS = {"negatives_per_row": "sentence-transformers", "teacher": "flagembedding"}


def _export_cli(store: Store, args: argparse.Namespace) -> int:
    for option, only in FORMAT_ONLY_OPTIONS.items():
        if getattr(args, option) is not None and args.format != only:
            print(f"error: --{option.replace('_', '-')} is for --format {only} only", file=sys.stderr)
            return 2
    if args.out is None and not args.preview:
        print("error: --out FILE is required (or --preview, to print the counts only)", file=sys.stderr)
        return 2
    try:
        options = ExportOptions(
            format=args.format,
            k=args.k,
            rule=args.rule,
            max_negatives=args.max_negatives,
            annotator=args.annotator,
            since=args.since,
            until=args.until,
            require_agreement=args.agreement,
            include_mined_negatives=args.mined,
            models=tuple(args.models) if args.models else None,
            negatives_per_row=args.negatives_per_row,
            teacher=args.teacher,
        )
    except ValueError as error:  # options that do not go together (--since after --until): a usage error
        print(f"error: {error}", file=sys.stderr)
        return 2
    suffix = FORMATS[options.format]
    if not args.preview:
        # First: a folder (or "", which is "."), named as one, not as a file with the wrong suffix.
        check_output(args.out, "--out", database=store.path)  # before the counting, by its flag's name
        if args.out.suffix.lower() != suffix:  # a zip named .parquet opens as neither
            print(f"error: --out {args.out}: a {options.format} export is a {suffix} file; "
                  f"name it {args.out.with_suffix(suffix).name}", file=sys.stderr)
            return 2
    selection = select(store, options)
    print(summarize(selection).describe())
    if args.preview:
        return 0
    try:
        written = export(store, options, args.out, selection=selection)  # what was just counted
    except NothingToExportError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"wrote {written}")
    return 0
