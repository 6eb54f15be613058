"""Ranking metrics against human labels, and agreement between models and between annotators.

Pure functions: no torch, no I/O. Inputs are plain mappings:

- ``scores``: ``{page_id: score}`` from one model for one query (higher = more relevant).
- ``grades``: ``{page_id: grade}`` human relevance for one query, non-negative ints
  (0 = not relevant, 1 = relevant, higher = more relevant when labels are graded).
  Unjudged pages are simply absent.

Conventions (chosen to match trec_eval, so numbers can be checked with ``pytrec_eval``):

- **Ranking and ties.** Pages are sorted by score descending; equal scores keep the order the
  pages are given in (the mapping's order): in the app, upload order, the order its galleries,
  store ranks and exports show; on a benchmark, the first stage's order. ``rank_pages`` is the
  one place this happens; ranks are 1-based. trec_eval breaks ties by page id descending
  instead: given in that order (``dict(sorted(scores.items(), key=lambda i: str(i[0]),
  reverse=True))``), every metric here equals ``pytrec_eval``'s, ties or not.
- **Gain.** NDCG uses linear gain (gain = grade) and the discount ``1 / log2(rank + 1)``,
  as trec_eval's ``ndcg_cut``. The ideal DCG takes the k highest grades among *all* judged
  pages of the query, whether or not the model scored them.
- **Relevant** means grade >= 1 (trec_eval's default relevance level) for MRR, recall, MAP and
  the mistake lists. Recall and MAP divide by every judged relevant page of the query.
- **Unjudged pages** count as not relevant (gain 0) in ranking metrics, like trec_eval; they
  are never "mistakes" (nobody said they were wrong).
- **Queries with no relevant judged page** have undefined metrics: per-query functions return
  ``None`` and ``evaluate`` leaves them out of the means, listing them in ``excluded``; every
  mean says over how many queries it was taken (``n_queries``).
- ``ndcg_blog`` reproduces the comparison blog's NDCG@5 (sklearn's ``ndcg_score`` on the
  model's top k only): its ideal DCG is over the same k pages, so it is >= standard NDCG and
  not comparable with published NDCG figures.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np
from scipy import stats

PageId = Hashable
Scores = Mapping[PageId, float]
Grades = Mapping[PageId, int]

RELEVANT = "relevant"
NOT_RELEVANT = "not_relevant"


# ---------------------------------------------------------------- labels


def label_to_grade(label: str | None) -> int | None:
    """Store label → grade: 'relevant' → 1, 'not_relevant' → 0, anything else (skip,
    cleared, None, …) → None, i.e. unjudged."""
    return {RELEVANT: 1, NOT_RELEVANT: 0}.get(label)  # type: ignore[arg-type]


def grades_from_labels(labels: Mapping[PageId, str | None]) -> dict[PageId, int]:
    """``{page: store label}`` → ``{page: grade}``, dropping unjudged pages."""
    out = {p: label_to_grade(lab) for p, lab in labels.items()}
    return {p: g for p, g in out.items() if g is not None}


def aggregate_labels(
    by_annotator: Mapping[str, Grades], annotator: str | None = None
) -> dict[PageId, int]:
    """One set of grades for a query from several annotators' ``{annotator: {page: grade}}``.

    With ``annotator``, that annotator's grades alone (empty if they judged nothing).
    Otherwise a majority vote per page over the annotators who judged it: the grade given
    most often wins; a tie (e.g. one 'relevant' against one 'not_relevant') drops the page,
    i.e. it becomes unjudged — we would rather not guess either way.
    """
    if annotator is not None:
        return dict(by_annotator.get(annotator, {}))
    votes: dict[PageId, list[int]] = {}
    for grades in by_annotator.values():
        for page, grade in grades.items():
            votes.setdefault(page, []).append(grade)
    winners = {page: majority(page_votes) for page, page_votes in votes.items()}
    return {page: grade for page, grade in winners.items() if grade is not None}


def majority(votes: Iterable[Hashable]) -> Hashable | None:
    """The vote cast strictly most often; None on a tie for first place or no vote. The one rule
    wherever several annotators' labels become one (Evaluate's grades, Export's labels)."""
    (top, count), *rest = Counter(votes).most_common() or [(None, 0)]
    return top if not rest or rest[0][1] < count else None


# ---------------------------------------------------------------- ranking metrics


def rank_pages(scores: Scores) -> list[PageId]:
    """Page ids best first: score descending, equal scores in the order given (a stable sort)."""
    for page, score in scores.items():
        if math.isnan(score):
            raise ValueError(f"score of page {page!r} is NaN")
    return sorted(scores, key=lambda p: scores[p], reverse=True)


def _check(grades: Grades, k: int | None) -> None:
    if k is not None and k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    bad = {p: g for p, g in grades.items() if g < 0}
    if bad:
        raise ValueError(f"grades must be >= 0, got {bad}")


def _n_relevant(grades: Grades) -> int:
    return sum(1 for g in grades.values() if g >= 1)


def _dcg(gains: Iterable[float]) -> float:
    return sum(g / math.log2(i + 2) for i, g in enumerate(gains))


def ndcg(scores: Scores, grades: Grades, k: int) -> float | None:
    """Standard NDCG@k (trec_eval ``ndcg_cut_k``): linear gain, ideal DCG over all judged
    pages of the query. None if the query has no relevant judged page."""
    _check(grades, k)
    if not _n_relevant(grades):
        return None
    gains = [grades.get(p, 0) for p in rank_pages(scores)[:k]]
    ideal = sorted(grades.values(), reverse=True)[:k]
    return _dcg(gains) / _dcg(ideal)


def ndcg_blog(scores: Scores, grades: Grades, k: int = 5) -> float | None:
    """The comparison blog's NDCG@k — NOT standard: DCG of the model's top k divided by the
    DCG of those same k pages' grades sorted descending; 0.0 if none of them is relevant.
    None if the query has no relevant judged page at all (as for the other metrics)."""
    _check(grades, k)
    if not _n_relevant(grades):
        return None
    gains = [grades.get(p, 0) for p in rank_pages(scores)[:k]]
    if not any(gains):
        return 0.0
    return _dcg(gains) / _dcg(sorted(gains, reverse=True))


def reciprocal_rank(scores: Scores, grades: Grades, k: int | None = None) -> float | None:
    """1 / rank of the first relevant page (0.0 if none, or none within the top k when k is
    given). Averaged over queries this is MRR. None if no relevant judged page."""
    _check(grades, k)
    if not _n_relevant(grades):
        return None
    for rank, page in enumerate(rank_pages(scores)[:k], start=1):
        if grades.get(page, 0) >= 1:
            return 1.0 / rank
    return 0.0


def recall(scores: Scores, grades: Grades, k: int) -> float | None:
    """Relevant pages in the top k / all judged relevant pages. None if there are none."""
    _check(grades, k)
    n_rel = _n_relevant(grades)
    if not n_rel:
        return None
    return sum(1 for p in rank_pages(scores)[:k] if grades.get(p, 0) >= 1) / n_rel


def average_precision(scores: Scores, grades: Grades) -> float | None:
    """Mean of precision@rank over the ranks of relevant pages, divided by all judged relevant
    pages (unscored ones count as never retrieved), as trec_eval's ``map``. None if none."""
    _check(grades, None)
    n_rel = _n_relevant(grades)
    if not n_rel:
        return None
    hits, total = 0, 0.0
    for rank, page in enumerate(rank_pages(scores), start=1):
        if grades.get(page, 0) >= 1:
            hits += 1
            total += hits / rank
    return total / n_rel


# ---------------------------------------------------------------- over queries


@dataclass
class EvalResult:
    """One model's metrics over queries.

    ``rows``: one dict per evaluated query (``query_id``, ``n_pages``, ``n_judged``,
    ``n_relevant``, then the metric columns), ready for ``pandas.DataFrame(rows)``.
    ``excluded``: query id → reason, for queries left out of the means.
    Metric columns: ``ndcg@k``, ``ndcg_blog@k``, ``recall@k`` for each k, then ``mrr``
    (uncut) and ``map``; per-query rows hold the per-query values under the same names.
    """

    model: str
    ks: tuple[int, ...]
    rows: list[dict] = field(default_factory=list)
    excluded: dict[Hashable, str] = field(default_factory=dict)

    @property
    def metric_names(self) -> list[str]:
        names = [f"{m}@{k}" for m in ("ndcg", "ndcg_blog", "recall") for k in self.ks]
        return names + ["mrr", "map"]

    @property
    def n_queries(self) -> int:
        """How many queries the means are taken over."""
        return len(self.rows)

    @property
    def n_excluded(self) -> int:
        return len(self.excluded)

    @property
    def means(self) -> dict[str, float | None]:
        """Arithmetic mean of each metric over ``n_queries`` queries (None if there are none)."""
        n = self.n_queries
        return {m: (sum(r[m] for r in self.rows) / n if n else None) for m in self.metric_names}

    def summary(self) -> dict:
        """One table row: model, n_queries, n_excluded, then the means."""
        return {"model": self.model, "n_queries": self.n_queries,
                "n_excluded": self.n_excluded, **self.means}


def evaluate(
    run: Mapping[Hashable, Scores],
    qrels: Mapping[Hashable, Grades],
    ks: Iterable[int] = (5, 10),
    model: str = "",
) -> EvalResult:
    """Score one model's ``run`` (``{query_id: {page_id: score}}``) against ``qrels``
    (``{query_id: {page_id: grade}}``). Queries of the run with no judged or no relevant page
    are excluded (with the reason); queries only in ``qrels`` are ignored."""
    result = EvalResult(model=model, ks=tuple(ks))
    for qid, scores in run.items():
        grades = qrels.get(qid, {})
        if not grades:
            result.excluded[qid] = "no judged page"
            continue
        if not _n_relevant(grades):
            result.excluded[qid] = "no relevant page"
            continue
        row: dict = {"query_id": qid, "n_pages": len(scores), "n_judged": len(grades),
                     "n_relevant": _n_relevant(grades)}
        for k in result.ks:
            row[f"ndcg@{k}"] = ndcg(scores, grades, k)
        for k in result.ks:
            row[f"ndcg_blog@{k}"] = ndcg_blog(scores, grades, k)
        for k in result.ks:
            row[f"recall@{k}"] = recall(scores, grades, k)
        row["mrr"] = reciprocal_rank(scores, grades)
        row["map"] = average_precision(scores, grades)
        result.rows.append(row)
    return result



@dataclass(frozen=True)
class PairedDifference:
    """Model ``a`` minus model ``b`` on one metric, query by query over the ``n_queries``
    queries both were evaluated on (a positive ``mean``: ``a`` ranked better).

    ``wins`` / ``ties`` / ``losses``: queries where ``a`` did better / the same / worse.
    ``ci_low``, ``ci_high``: the 95% confidence interval of the mean difference and ``p_value``
    the two-sided paired t-test (``scipy.stats.ttest_rel``), the usual significance test for
    per-query IR metrics. Both are None with fewer than two queries, and when every query
    differs by the same amount (no spread to test against; ``mean`` says how much). Every metric
    lies in [0, 1], so a difference lies in [−1, 1]: the t interval, which knows nothing of that
    and can reach past it with few queries, is cut to it (still at least 95% coverage). One test
    per metric: the metrics are correlated, and testing several is not one test at 5%.
    """

    metric: str
    model_a: str
    model_b: str
    n_queries: int
    mean: float | None
    ci_low: float | None
    ci_high: float | None
    p_value: float | None
    wins: int
    ties: int
    losses: int


def paired_differences(result_a: EvalResult, result_b: EvalResult, confidence: float = 0.95) -> list[PairedDifference]:
    """`PairedDifference` of ``result_a`` − ``result_b`` for each metric both have, over the
    queries both evaluated (a query one of them excluded is left out of both)."""
    rows_b = {row["query_id"]: row for row in result_b.rows}
    pairs = [(row, rows_b[row["query_id"]]) for row in result_a.rows if row["query_id"] in rows_b]
    out = []
    for metric in [m for m in result_a.metric_names if m in result_b.metric_names]:
        a = [row_a[metric] for row_a, _ in pairs]
        b = [row_b[metric] for _, row_b in pairs]
        differences = [x - y for x, y in zip(a, b)]
        mean = sum(differences) / len(differences) if differences else None
        low = high = p_value = None
        if len(differences) >= 2 and max(differences) - min(differences) > 1e-12:
            test = stats.ttest_rel(a, b)
            interval = test.confidence_interval(confidence_level=confidence)
            low, high, p_value = max(float(interval.low), -1.0), min(float(interval.high), 1.0), float(test.pvalue)
        out.append(PairedDifference(
            metric=metric, model_a=result_a.model, model_b=result_b.model, n_queries=len(differences), mean=mean,
            ci_low=low, ci_high=high, p_value=p_value, wins=sum(d > 1e-12 for d in differences),
            ties=sum(abs(d) <= 1e-12 for d in differences), losses=sum(d < -1e-12 for d in differences),
        ))  # fmt: skip
    return out


# ---------------------------------------------------------------- mistakes


@dataclass(frozen=True)
class Mistake:
    """A page judged not relevant that the model ranked above ``relevant_below`` relevant pages."""

    page_id: PageId
    rank: int
    score: float
    relevant_below: int


def hardest_mistakes(scores: Scores, grades: Grades) -> list[Mistake]:
    """Pages judged not relevant (grade 0) ranked above at least one relevant page, best
    ranked first. Unjudged pages are never mistakes."""
    ranking = rank_pages(scores)
    rel_left = sum(1 for p in ranking if grades.get(p, 0) >= 1)  # relevant pages still below
    out = []
    for rank, page in enumerate(ranking, start=1):
        grade = grades.get(page)
        if grade is not None and grade >= 1:
            rel_left -= 1
        elif grade == 0 and rel_left:
            out.append(Mistake(page, rank, scores[page], rel_left))
    return out


# ---------------------------------------------------------------- agreement


@dataclass(frozen=True)
class Disagreement:
    """A page and its 1-based rank under each model (over the pages both scored)."""

    page_id: PageId
    rank_a: int
    rank_b: int

    @property
    def shift(self) -> int:
        return abs(self.rank_a - self.rank_b)


@dataclass(frozen=True)
class ModelAgreement:
    """How two models' rankings of one query agree, over the ``n_shared`` pages both scored.

    ``kendall_tau`` (tau-b, score ties count as ties) and ``spearman`` are None with fewer than
    two shared pages or when one model gives every page the same score.
    ``topk_overlap`` = |top-k of A ∩ top-k of B| / k, None for k pages or fewer (both top k are
    then every page: 100% whatever the models thought).
    ``disagreements``: pages with the largest rank difference first.
    """

    n_shared: int
    k: int
    kendall_tau: float | None
    spearman: float | None
    topk_overlap: float | None
    disagreements: list[Disagreement]


def topk_overlap(scores_a: Scores, scores_b: Scores, k: int) -> float | None:
    """|top-k of A ∩ top-k of B| / min(k, pages both scored); None if none shared.
    (min, so two identical rankings of fewer than k pages overlap 1.0, not n/k.)"""
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    shared = scores_a.keys() & scores_b.keys()
    if not shared:
        return None
    top_a = rank_pages({p: scores_a[p] for p in scores_a if p in shared})[:k]
    top_b = rank_pages({p: scores_b[p] for p in scores_b if p in shared})[:k]
    return len(set(top_a) & set(top_b)) / min(k, len(shared))


def shared_scores(scores_a: Scores, scores_b: Scores) -> tuple[Scores, Scores]:
    """Both models' scores over the pages both scored, each in A's order of pages (so B's equal
    scores rank in A's order, as everywhere in `model_agreement`)."""
    shared = [p for p in scores_a if p in scores_b]
    return {p: scores_a[p] for p in shared}, {p: scores_b[p] for p in shared}


def kendall_tau(scores_a: Scores, scores_b: Scores) -> float | None:
    """Kendall τ-b (scipy's default variant) over the pages both scored; None where it is
    undefined: fewer than two pages, or one model giving them all the same score (scipy returns
    NaN, with a warning)."""
    a, b = shared_scores(scores_a, scores_b)
    xs, ys = list(a.values()), list(b.values())
    if len(xs) < 2 or len(set(xs)) < 2 or len(set(ys)) < 2:
        return None
    if len(xs) > TAU_PAIRWISE_UP_TO:
        return float(stats.kendalltau(xs, ys).statistic)
    return _tau_b_pairwise(np.asarray(xs, dtype=float), np.asarray(ys, dtype=float))


# Up to this many pages τ-b is counted pair by pair with numpy: scipy's call costs ~2.7 ms
# whatever the size (its argument checks), 8 s of Evaluate's 21 s over 3,000 queries; the pairs
# of 25 pages take ~30 µs. Past it scipy's O(n log n) count wins (equal to ~1e-15 either way).
TAU_PAIRWISE_UP_TO = 1000


def _tau_b_pairwise(x: np.ndarray, y: np.ndarray) -> float:
    """(concordant − discordant) / √((pairs − pairs tied in x)(pairs − pairs tied in y))."""
    upper = np.triu_indices(len(x), k=1)
    dx = np.sign(x[:, None] - x[None, :])[upper]
    dy = np.sign(y[:, None] - y[None, :])[upper]
    pairs = len(dx)
    untied_x, untied_y = pairs - np.count_nonzero(dx == 0), pairs - np.count_nonzero(dy == 0)
    return float(np.dot(dx, dy) / math.sqrt(untied_x * untied_y))


def model_agreement(
    scores_a: Scores, scores_b: Scores, k: int = 5, n_disagreements: int = 5,
) -> ModelAgreement:
    """Kendall τ-b, Spearman ρ, top-k overlap and the ``n_disagreements`` pages whose ranks
    differ most (ties in the difference: the better best rank first, then rank order of A).
    Equal scores rank in A's order of pages, as `rank_pages`."""
    a, b = shared_scores(scores_a, scores_b)
    shared = list(a)
    rank_a = {p: r for r, p in enumerate(rank_pages(a), start=1)}
    rank_b = {p: r for r, p in enumerate(rank_pages(b), start=1)}
    diffs = [Disagreement(p, rank_a[p], rank_b[p]) for p in shared]
    diffs = [d for d in diffs if d.shift]
    diffs.sort(key=lambda d: (-d.shift, min(d.rank_a, d.rank_b), d.rank_a))

    tau = kendall_tau(a, b)
    # Defined where τ is (the same conditions); None, not scipy's NaN, where it is not.
    rho = None if tau is None else float(stats.spearmanr(list(a.values()), list(b.values())).statistic)
    return ModelAgreement(
        n_shared=len(shared), k=k, kendall_tau=tau, spearman=rho,
        topk_overlap=topk_overlap(a, b, k) if len(shared) > k else None, disagreements=diffs[:n_disagreements],
    )


@dataclass(frozen=True)
class Kappa:
    """Cohen's κ between two annotators over the ``n`` pages both judged.

    ``observed`` is the raw agreement rate. ``kappa`` is None when n == 0, and also when
    chance agreement is 1 — both annotators gave every page the same single label — since κ
    is then 0/0: perfect agreement, but no evidence it beats chance (see ``observed``).
    """

    kappa: float | None
    n: int
    observed: float | None


def cohen_kappa(labels_a: Mapping[PageId, Hashable], labels_b: Mapping[PageId, Hashable]) -> Kappa:
    """Cohen's κ = (p_o − p_e) / (1 − p_e), labels treated as nominal categories (grades or
    store labels alike), over the pages both annotators judged."""
    shared = [p for p in labels_a if p in labels_b]
    n = len(shared)
    if not n:
        return Kappa(None, 0, None)
    p_o = sum(labels_a[p] == labels_b[p] for p in shared) / n
    count_a = Counter(labels_a[p] for p in shared)
    count_b = Counter(labels_b[p] for p in shared)
    chance = sum(count_a[c] * count_b[c] for c in count_a)  # p_e * n², exact in integers
    if chance == n * n:
        return Kappa(None, n, p_o)
    p_e = chance / n**2
    return Kappa((p_o - p_e) / (1.0 - p_e), n, p_o)
