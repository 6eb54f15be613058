"""Metrics: hand-computed cases, and a cross-check against trec_eval (pytrec_eval)."""

from __future__ import annotations

import math
import random

import pytest

from reranker.metrics import (
    Disagreement,
    EvalResult,
    Mistake,
    aggregate_labels,
    average_precision,
    cohen_kappa,
    evaluate,
    grades_from_labels,
    hardest_mistakes,
    kendall_tau,
    label_to_grade,
    majority,
    model_agreement,
    ndcg,
    ndcg_blog,
    paired_differences,
    rank_pages,
    recall,
    reciprocal_rank,
    topk_overlap,
)

L2_3 = 1 / math.log2(3)  # discount at rank 2
L2_4 = 1 / math.log2(4)  # discount at rank 3 (= 0.5)


def ranked(*pages):
    """Scores that rank ``pages`` in the given order, without ties."""
    return {p: float(len(pages) - i) for i, p in enumerate(pages)}


# ---------------------------------------------------------------- labels


def test_label_to_grade_and_grades_from_labels():
    assert label_to_grade("relevant") == 1
    assert label_to_grade("not_relevant") == 0
    assert label_to_grade("skip") is None
    assert label_to_grade("cleared") is None
    assert label_to_grade(None) is None
    labels = {"p1": "relevant", "p2": "not_relevant", "p3": "skip", "p4": "cleared"}
    assert grades_from_labels(labels) == {"p1": 1, "p2": 0}


def test_majority_is_the_vote_cast_strictly_most_often():
    assert majority(["relevant", "not_relevant", "relevant"]) == "relevant"
    assert majority([0, 0, 1]) == 0 and majority([1]) == 1
    assert majority(["relevant", "not_relevant"]) is None  # a tie: no label
    assert majority([1, 1, 0, 0, 2]) is None  # tied for first, whatever comes after
    assert majority([]) is None


def test_majority_vote_and_single_annotator():
    by_annotator = {
        "ann1": {"a": 1, "b": 1, "c": 0, "d": 1, "e": 2},
        "ann2": {"a": 1, "b": 0, "c": 0, "d": 0},
        "ann3": {"a": 0, "b": 0, "c": 0},
    }
    # a: 1,1,0 -> 1; b: 1,0,0 -> 0; c: all 0 -> 0; d: 1 vs 0 tie -> dropped; e: one vote -> 2
    assert aggregate_labels(by_annotator) == {"a": 1, "b": 0, "c": 0, "e": 2}
    assert aggregate_labels(by_annotator, annotator="ann2") == by_annotator["ann2"]
    assert aggregate_labels(by_annotator, annotator="nobody") == {}


# ---------------------------------------------------------------- ranking, ties


def test_equal_scores_keep_the_order_the_pages_are_given_in():
    assert rank_pages({"a": 1.0, "b": 1.0, "c": 2.0}) == ["c", "a", "b"]
    assert rank_pages({10: 0.5, 9: 0.5}) == [10, 9]
    # the given order decides where the relevant page lands
    assert reciprocal_rank({"a": 0.3, "b": 0.3}, {"a": 1, "b": 0}) == 1.0
    assert reciprocal_rank({"b": 0.3, "a": 0.3}, {"a": 1, "b": 0}) == 0.5
    assert ndcg({"a": 0.3, "b": 0.3}, {"a": 1}, k=1) == 1.0
    assert ndcg({"a": 0.3, "b": 0.3}, {"b": 1}, k=1) == 0.0
    assert [m.page_id for m in hardest_mistakes({"n": 0.3, "r": 0.3}, {"n": 0, "r": 1})] == ["n"]
    assert hardest_mistakes({"r": 0.3, "n": 0.3}, {"n": 0, "r": 1}) == []
    assert topk_overlap({"a": 1.0, "b": 1.0}, {"b": 1.0, "a": 1.0}, k=1) == 0.0  # each model's own order


def test_nan_score_rejected():
    with pytest.raises(ValueError):
        rank_pages({"a": float("nan")})


def test_bad_k_and_negative_grade_rejected():
    with pytest.raises(ValueError):
        ndcg({"a": 1.0}, {"a": 1}, k=0)
    with pytest.raises(ValueError):
        recall({"a": 1.0}, {"a": -1}, k=5)


# ---------------------------------------------------------------- per-query metrics


def test_no_relevant_page_is_undefined():
    scores = ranked("a", "b")
    for grades in ({"a": 0, "b": 0}, {}):
        assert ndcg(scores, grades, 5) is None
        assert ndcg_blog(scores, grades, 5) is None
        assert reciprocal_rank(scores, grades) is None
        assert recall(scores, grades, 5) is None
        assert average_precision(scores, grades) is None


def test_all_relevant_is_perfect():
    scores, grades = ranked("a", "b", "c"), {"a": 1, "b": 1, "c": 1}
    assert ndcg(scores, grades, 5) == pytest.approx(1.0)
    assert ndcg_blog(scores, grades, 5) == pytest.approx(1.0)
    assert reciprocal_rank(scores, grades) == 1.0
    assert recall(scores, grades, 5) == 1.0
    assert average_precision(scores, grades) == 1.0


def test_graded_ndcg_uses_linear_gain():
    # ranking b, c, a with grades 1, 0, 2
    scores, grades = ranked("b", "c", "a"), {"a": 2, "b": 1, "c": 0}
    dcg = 1 + 0 * L2_3 + 2 * L2_4  # = 2
    idcg = 2 + 1 * L2_3  # grades sorted: 2, 1, 0
    assert ndcg(scores, grades, 5) == pytest.approx(dcg / idcg)  # 0.760188 (trec_eval's value)
    assert ndcg(scores, grades, 5) == pytest.approx(0.7601875334)
    # NDCG@1: gain 1 against an ideal of 2
    assert ndcg(scores, grades, 1) == pytest.approx(0.5)


def test_k_larger_than_the_list_and_unscored_relevant_page():
    # two scored pages, k=10; "z" is judged relevant but the model never scored it
    scores, grades = ranked("x", "y"), {"x": 0, "y": 1, "z": 1}
    # DCG = 1/log2(3); ideal = two relevant pages = 1 + 1/log2(3)
    assert ndcg(scores, grades, 10) == pytest.approx(L2_3 / (1 + L2_3))  # 0.386853
    # blog: ideal over the returned pages [0, 1] sorted -> [1, 0]
    assert ndcg_blog(scores, grades, 10) == pytest.approx(L2_3)
    assert recall(scores, grades, 10) == 0.5
    assert average_precision(scores, grades) == pytest.approx((1 / 2) / 2)  # P@2 / 2 relevant
    assert reciprocal_rank(scores, grades) == 0.5


def test_blog_variant_differs_from_standard():
    # ranking p1..p6, relevant: p2 (rank 2) and p6 (rank 6, outside the top 5)
    scores = ranked("p1", "p2", "p3", "p4", "p5", "p6")
    grades = {"p1": 0, "p2": 1, "p6": 1}
    # standard: DCG@5 = 1/log2(3); ideal over both relevant = 1 + 1/log2(3) -> 0.386853
    assert ndcg(scores, grades, 5) == pytest.approx(L2_3 / (1 + L2_3))
    assert ndcg(scores, grades, 5) == pytest.approx(0.3868528072)
    # blog: top-5 gains [0,1,0,0,0]; ideal of those same five is [1,0,0,0,0] = 1 -> 0.630930
    assert ndcg_blog(scores, grades, 5) == pytest.approx(L2_3)
    assert ndcg_blog(scores, grades, 5) == pytest.approx(0.6309297536)
    # no relevant page in the top 5 at all: blog gives 0 (as the blog's code did)
    far = ranked("p1", "p2", "p3", "p4", "p5", "p6")
    assert ndcg_blog(far, {"p6": 1}, 5) == 0.0


def test_mrr_recall_map_hand_case():
    # ranking r1..r6; relevant at ranks 2, 3, 6, plus "r7" relevant but unscored (4 in all)
    scores = ranked("r1", "r2", "r3", "r4", "r5", "r6")
    grades = {"r1": 0, "r2": 1, "r3": 2, "r4": 0, "r6": 1, "r7": 1}
    assert reciprocal_rank(scores, grades) == 0.5
    assert reciprocal_rank(scores, grades, k=1) == 0.0  # first relevant is beyond the cut
    assert reciprocal_rank(scores, grades, k=2) == 0.5
    assert recall(scores, grades, 5) == 2 / 4
    assert recall(scores, grades, 1) == 0.0
    # AP = (P@2 + P@3 + P@6) / 4 = (1/2 + 2/3 + 3/6) / 4
    assert average_precision(scores, grades) == pytest.approx((1 / 2 + 2 / 3 + 3 / 6) / 4)


# ---------------------------------------------------------------- over queries


def test_evaluate_excludes_queries_without_relevant_pages_and_counts_them():
    run = {
        "q1": ranked("a", "b"),  # relevant at rank 1
        "q2": ranked("a", "b"),  # relevant at rank 2
        "q3": ranked("a", "b"),  # nothing relevant
        "q4": ranked("a", "b"),  # nothing judged
    }
    qrels = {"q1": {"a": 1}, "q2": {"a": 0, "b": 1}, "q3": {"a": 0}, "q5": {"a": 1}}
    res = evaluate(run, qrels, ks=(5,), model="A")
    assert res.n_queries == 2 and res.n_excluded == 2
    assert res.excluded == {"q3": "no relevant page", "q4": "no judged page"}
    assert [r["query_id"] for r in res.rows] == ["q1", "q2"]
    assert res.rows[1] == {
        "query_id": "q2", "n_pages": 2, "n_judged": 2, "n_relevant": 1,
        "ndcg@5": pytest.approx(L2_3), "ndcg_blog@5": pytest.approx(L2_3),
        "recall@5": 1.0, "mrr": 0.5, "map": 0.5,
    }
    assert res.means["mrr"] == pytest.approx((1 + 0.5) / 2)
    assert res.means["ndcg@5"] == pytest.approx((1 + L2_3) / 2)
    summary = res.summary()
    assert summary["model"] == "A" and summary["n_queries"] == 2 and summary["n_excluded"] == 2


def test_evaluate_with_no_evaluable_query_has_no_means():
    res = evaluate({"q": ranked("a")}, {}, ks=(5,))
    assert res.n_queries == 0
    assert all(v is None for v in res.means.values())



def _result(model: str, values: dict) -> EvalResult:
    """An EvalResult whose every metric of query q is values[q]."""
    names = EvalResult(model, (5,)).metric_names
    return EvalResult(model, (5,), rows=[{"query_id": q, **dict.fromkeys(names, v)} for q, v in values.items()])


def test_paired_differences_by_hand():
    # Differences 0.5, 0, −0.1, 0.8: mean 0.3, variance 0.18, t = 0.3 / (√0.18 / 2) = √2 on 3 degrees of
    # freedom: two-sided p = 0.2522, and the 95% interval 0.3 ± 3.1824 · √0.18 / 2 = 0.3 ± 0.6751.
    a = _result("A", {"q1": 1.0, "q2": 0.5, "q3": 0.2, "q4": 0.9})
    b = _result("B", {"q1": 0.5, "q2": 0.5, "q3": 0.3, "q4": 0.1, "q5": 0.0})  # q5: A has no row, so it is left out
    differences = paired_differences(a, b)
    assert [d.metric for d in differences] == a.metric_names
    for d in differences:
        assert (d.model_a, d.model_b, d.n_queries) == ("A", "B", 4)
        assert d.mean == pytest.approx(0.3)
        assert (d.wins, d.ties, d.losses) == (2, 1, 1)
        assert d.p_value == pytest.approx(0.25222, abs=1e-5)
        assert (d.ci_low, d.ci_high) == (pytest.approx(0.3 - 0.67510, abs=1e-5), pytest.approx(0.3 + 0.67510, abs=1e-5))
    (reverse, *_) = paired_differences(b, a)  # the other way round: the mirror image
    assert reverse.mean == pytest.approx(-0.3) and (reverse.wins, reverse.losses) == (1, 2)
    assert reverse.p_value == pytest.approx(differences[0].p_value)


def test_paired_difference_interval_stays_within_what_a_difference_can_be():
    # Differences 1 and 0: mean 0.5, and the t interval on one degree of freedom 0.5 ± 12.706 · 0.5,
    # about −5.85 … 6.85, far past the −1 … 1 a difference of two metrics in [0, 1] can be.
    wide = paired_differences(_result("A", {"q1": 1.0, "q2": 0.5}), _result("B", {"q1": 0.0, "q2": 0.5}))[0]
    assert wide.mean == pytest.approx(0.5) and (wide.ci_low, wide.ci_high) == (-1.0, 1.0)
    assert wide.p_value == pytest.approx(0.5)  # the test itself is unchanged
    one_sided = paired_differences(_result("A", {"q1": 1.0, "q2": 1.0, "q3": 0.4}), _result("B", {"q1": 0.0, "q2": 0.1, "q3": 0.0}))[0]
    assert one_sided.ci_high == 1.0 and -1.0 < one_sided.ci_low < one_sided.mean  # cut only where it reaches past


def test_paired_differences_with_nothing_to_test_against_say_so():
    one = paired_differences(_result("A", {"q1": 0.8}), _result("B", {"q1": 0.5}))[0]
    assert one.n_queries == 1 and one.mean == pytest.approx(0.3) and (one.wins, one.ties, one.losses) == (1, 0, 0)
    assert (one.ci_low, one.ci_high, one.p_value) == (None, None, None)
    same = paired_differences(_result("A", {"q1": 1.0, "q2": 0.7}), _result("B", {"q1": 0.5, "q2": 0.2}))[0]
    assert same.mean == pytest.approx(0.5) and (same.ci_low, same.p_value) == (None, None)  # no spread to test
    equal = paired_differences(_result("A", {"q1": 1.0, "q2": 0.7}), _result("A", {"q1": 1.0, "q2": 0.7}))[0]
    assert equal.mean == 0 and (equal.ties, equal.p_value) == (2, None)
    none = paired_differences(_result("A", {"q1": 1.0}), _result("B", {"q2": 1.0}))[0]
    assert (none.n_queries, none.mean, none.wins, none.ties, none.losses) == (0, None, 0, 0, 0)


# ---------------------------------------------------------------- mistakes


def test_hardest_mistakes():
    # ranking n1, u, r1, n2, r2, n3  (n = judged not relevant, u = unjudged, r = relevant)
    scores = ranked("n1", "u", "r1", "n2", "r2", "n3")
    grades = {"n1": 0, "r1": 1, "n2": 0, "r2": 2, "n3": 0}
    assert hardest_mistakes(scores, grades) == [
        Mistake("n1", 1, scores["n1"], relevant_below=2),
        Mistake("n2", 4, scores["n2"], relevant_below=1),
    ]  # "u" is unjudged, "n3" is below every relevant page
    assert hardest_mistakes(scores, {"n1": 0}) == []


# ---------------------------------------------------------------- model agreement


@pytest.mark.parametrize("pairwise", [True, False])
def test_kendall_tau_b_equals_scipys_with_and_without_ties(pairwise, monkeypatch):
    """Counted pair by pair (up to TAU_PAIRWISE_UP_TO pages), or by scipy past that."""
    from scipy import stats

    from reranker import metrics

    monkeypatch.setattr(metrics, "TAU_PAIRWISE_UP_TO", 10_000 if pairwise else 1)
    rng = random.Random(7)
    for trial in range(300):
        n = rng.randint(2, 60)
        levels = rng.choice([3, 10, 1000])  # few levels: many ties
        a = {f"p{i}": rng.randrange(levels) / levels for i in range(n)}
        b = {f"p{i}": rng.randrange(levels) / levels for i in range(n)}
        expected = stats.kendalltau(list(a.values()), list(b.values())).statistic
        got = kendall_tau(a, b)
        if math.isnan(expected):
            assert got is None, trial
        else:
            assert got == pytest.approx(expected, abs=1e-12), trial


def test_kendall_spearman_on_a_known_permutation():
    a = ranked("p1", "p2", "p3", "p4")
    b = ranked("p2", "p1", "p3", "p4")  # one adjacent swap
    agr = model_agreement(a, b, k=2)
    # 6 pairs, 1 discordant: tau = (5 - 1) / 6
    assert agr.kendall_tau == pytest.approx(2 / 3)
    # rank differences 1, 1, 0, 0: rho = 1 - 6*2 / (4*(16-1)) = 0.8
    assert agr.spearman == pytest.approx(0.8)
    assert agr.topk_overlap == 1.0 and agr.n_shared == 4
    assert model_agreement(a, b, k=4).topk_overlap is None  # both top 4 are every page
    assert agr.disagreements == [Disagreement("p1", 1, 2), Disagreement("p2", 2, 1)]

    reverse = model_agreement(a, ranked("p4", "p3", "p2", "p1"))
    assert reverse.kendall_tau == pytest.approx(-1.0)
    assert reverse.spearman == pytest.approx(-1.0)
    # p1 and p4 move by 3; p1 listed first (rank 1 under A)
    assert reverse.disagreements[:2] == [Disagreement("p1", 1, 4), Disagreement("p4", 4, 1)]
    assert reverse.disagreements[0].shift == 3


def test_agreement_degenerate_cases():
    constant = {"a": 0.5, "b": 0.5, "c": 0.5}
    agr = model_agreement(constant, ranked("a", "b", "c"))
    assert agr.kendall_tau is None and agr.spearman is None
    one = model_agreement({"a": 1.0}, {"a": 2.0, "b": 1.0})
    assert one.n_shared == 1 and one.kendall_tau is None and one.topk_overlap is None  # k=5 > 1 page: no overlap to tell
    assert model_agreement({"a": 1.0}, {"b": 1.0}).topk_overlap is None


def test_topk_overlap():
    a = ranked("p1", "p2", "p3", "p4", "p5", "p6")
    b = ranked("p6", "p2", "p1", "p5", "p4", "p3")
    assert topk_overlap(a, b, 3) == pytest.approx(2 / 3)  # {p1,p2,p3} ∩ {p6,p2,p1}
    assert topk_overlap(a, b, 1) == 0.0
    assert topk_overlap(a, b, 6) == 1.0
    assert topk_overlap(a, b, 10) == 1.0  # divided by min(k, 6 shared pages)
    # only shared pages count: "x" exists for A alone
    assert topk_overlap({**a, "x": 99.0}, b, 3) == pytest.approx(2 / 3)


# ---------------------------------------------------------------- annotator agreement


def test_cohen_kappa_two_by_two_table():
    #               B relevant   B not
    # A relevant        20         5
    # A not             10        15      n = 50
    # p_o = 35/50 = 0.7; p_e = 0.5*0.6 + 0.5*0.4 = 0.5; kappa = 0.2 / 0.5 = 0.4
    cells = [(1, 1, 20), (1, 0, 5), (0, 1, 10), (0, 0, 15)]
    a, b, i = {}, {}, 0
    for la, lb, count in cells:
        for _ in range(count):
            a[i], b[i] = la, lb
            i += 1
    a["only_a"] = 1  # judged by one annotator only: ignored
    k = cohen_kappa(a, b)
    assert k.n == 50
    assert k.observed == pytest.approx(0.7)
    assert k.kappa == pytest.approx(0.4)


def test_cohen_kappa_degenerate_cases():
    same = {"a": "relevant", "b": "relevant"}
    k = cohen_kappa(same, dict(same))
    assert k.kappa is None and k.n == 2 and k.observed == 1.0  # 0/0: undefined
    opposite = cohen_kappa({"a": 1, "b": 1}, {"a": 0, "b": 0})
    assert opposite.kappa == 0.0 and opposite.observed == 0.0
    assert cohen_kappa({"a": 1}, {"b": 1}) == cohen_kappa({}, {})
    assert cohen_kappa({"a": 1}, {"b": 1}).n == 0
    assert cohen_kappa({"a": 1, "b": 0}, {"a": 1, "b": 0}).kappa == pytest.approx(1.0)


# ---------------------------------------------------------------- trec_eval cross-check


def _random_collection(seed: int, tied: bool):
    rng = random.Random(seed)
    run, qrels = {}, {}
    for q in range(40):
        pages = [f"d{i}" for i in range(rng.randint(1, 30))]
        if tied:  # few distinct values: many ties
            scores = {p: rng.randint(0, 4) / 4 for p in pages}
        else:
            scores = {p: rng.random() for p in pages}
            assert len(set(scores.values())) == len(scores)
        judged = rng.sample(pages, rng.randint(1, len(pages)))
        grades = {p: rng.choice((0, 0, 1, 2)) for p in judged}
        grades[f"unscored{q}"] = rng.choice((0, 1))  # judged, never scored by the model
        if not any(grades.values()):
            grades[judged[0]] = 1
        run[f"q{q}"], qrels[f"q{q}"] = scores, grades
    return run, qrels


@pytest.mark.parametrize("tied", [False, True], ids=["no-ties", "ties-trec-rule"])
def test_matches_pytrec_eval(tied):
    pytrec_eval = pytest.importorskip("pytrec_eval")
    run, qrels = _random_collection(seed=7, tied=tied)
    # trec_eval breaks ties by page id descending: given in that order, ours does the same
    run = {q: dict(sorted(scores.items(), key=lambda item: item[0], reverse=True)) for q, scores in run.items()}
    measures = {"ndcg_cut_5", "ndcg_cut_10", "map", "recall_5", "recip_rank"}
    trec = pytrec_eval.RelevanceEvaluator(qrels, measures).evaluate(run)
    res = evaluate(run, qrels, ks=(5, 10))
    assert res.n_queries == len(run) and res.n_excluded == 0
    names = {"ndcg@5": "ndcg_cut_5", "ndcg@10": "ndcg_cut_10", "map": "map",
             "recall@5": "recall_5", "mrr": "recip_rank"}
    for row in res.rows:
        for ours, theirs in names.items():
            assert row[ours] == pytest.approx(trec[row["query_id"]][theirs], abs=1e-6), (
                row["query_id"], ours)
    for ours, theirs in names.items():
        mean_trec = sum(q[theirs] for q in trec.values()) / len(trec)
        assert res.means[ours] == pytest.approx(mean_trec, abs=1e-6)
