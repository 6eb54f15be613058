"""`python -m reranker eval`: the benchmark path end to end on tiny checkpoints, and the store path
on a small hand-computed case. Fixtures (dataset files, page images, the database) are built here
in tmp_path; nothing binary is committed."""

from __future__ import annotations

import json
import math
import re
import unicodedata
from pathlib import Path

import pytest
from PIL import Image

from reranker import metrics
from reranker.documents import Page, load_files
from reranker.cli import main
from reranker.evaluate import FIRST_STAGE, MODEL_A, MODEL_B, blog_label, evaluate_store, load_benchmark

SAMPLES = Path(__file__).resolve().parent.parent / "data" / "examples" / "sample-pages"
# Small budgets keep tiny-model scoring fast; B's floor is its processor's min_pixels (65,536).
MAX_PIXELS = {MODEL_A: 16_384, MODEL_B: 65_536}
PIXEL_ARGS = ["--max-pixels-a", str(MAX_PIXELS[MODEL_A]), "--max-pixels-b", str(MAX_PIXELS[MODEL_B])]
LABELS = {MODEL_A: "Qwen3-VL-Reranker-2B", MODEL_B: "Qwen3RerankerMM-2B", FIRST_STAGE: "first-stage retriever"}
LOG2_3, LOG2_5 = math.log2(3), math.log2(5)

# Queries written for the sample pages (PROVENANCE.md). As on the Hub, candidates are integer
# corpus ids (page i = doc_i), relevant ids are strings, and one relevant page (q0's 6) was not
# retrieved. First-stage scores descend with the list.
BENCHMARK_ROWS = [
    ("How does surface density change with radius when the spectroscopic fraction correction is applied?",
     "q0", [2, 0, 1, 3, 4, 5], ["0", "6"]),
    ("How does average queue length grow with betweenness in the simulation?", "q4", [4, 5, 6, 7, 8, 9], ["4"]),
    ("Which region of the SUC2 frequency plot leads to extinction?", "q9", [1, 3, 5, 7, 8, 9], ["9"]),
    ("How does the coefficient a_k(t) oscillate over time?", "q8", [0, 2, 8, 9, 3], ["8"]),
]  # fmt: skip
# First-stage NDCG@5 by hand (ranks of the relevant pages: q0 2 of 2 relevant, q4 1, q9 6, q8 3).
FIRST_STAGE_NDCG5 = ((1 / LOG2_3) / (1 + 1 / LOG2_3) + 1 + 0 + 1 / 2) / 4
# The blog's ideal DCG is over the same 5 pages, so q0's unretrieved relevant page does not count.
FIRST_STAGE_BLOG5 = (1 / LOG2_3 + 1 + 0 + 1 / 2) / 4


def _rows(rows):
    return [
        dict(query=q, query_id=qid, top_25_image_filenames=cands,
             top_25_scores=[round(0.9 - 0.05 * i, 2) for i in range(len(cands))], relevant_image_filenames=rel)
        for q, qid, cands, rel in rows
    ]  # fmt: skip


def _thumbnail(source: Path, target: Path) -> None:
    with Image.open(source) as image:
        image = image.convert("RGB")
        image.thumbnail((320, 320))
        image.save(target)


@pytest.fixture
def tiny_env(tiny_checkpoints, monkeypatch):
    for name, value in tiny_checkpoints.environment().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("RERANKER_DEVICE", "cpu")


def _table_row(output: str, label: str) -> list[str]:
    """The cells of the printed table row whose first cell is `label`."""
    for line in output.splitlines():
        if line.startswith(label + "  "):
            return re.split(r"\s{2,}", line[len(label):].strip())
    raise AssertionError(f"no row {label!r} in:\n{output}")


def _benchmark_qrels(rows) -> dict[str, dict[str, int]]:
    return {r["query_id"]: {**{str(c): 0 for c in r["top_25_image_filenames"]},
                            **{p: 1 for p in r["relevant_image_filenames"]}} for r in rows}  # fmt: skip


def test_benchmark_end_to_end_through_the_cli(tmp_path, tiny_env, tiny_rerankers, capsys):
    from datasets import Dataset

    images = tmp_path / "corpus"
    images.mkdir()
    for i in range(10):  # named by corpus id without the doc_ prefix: found by stem
        _thumbnail(SAMPLES / f"doc_{i}.jpg", images / f"{i}.png")
    rows = _rows(BENCHMARK_ROWS)
    # The file name names one of the blog's datasets, so its published numbers are printed.
    data = tmp_path / "esg_reports_human_labeled_v2.parquet"
    Dataset.from_list(rows).to_parquet(str(data))
    out_json = tmp_path / "results.json"

    code = main(["eval", "--benchmark", str(data), "--images", str(images), "--output", str(out_json),
                 "--per-query", "--batch-size", "4", *PIXEL_ARGS])  # fmt: skip
    printed = capsys.readouterr().out
    assert code == 0, printed
    for label in LABELS.values():
        assert label in printed
    assert "using the only split" in printed  # a single-file dataset has one split, not "test"
    assert "warning" not in printed

    results = json.loads(out_json.read_text())
    qrels = _benchmark_qrels(rows)
    columns = [FIRST_STAGE, MODEL_A, MODEL_B]  # the printed column order
    for label, name in [("NDCG@5", "ndcg@5"), (blog_label(5), "ndcg_blog@5"), ("MRR", "mrr"), ("Recall@5", "recall@5")]:
        printed_row = _table_row(printed, label)
        for key, cell in zip(columns, printed_row, strict=True):
            # What the JSON says each model scored, evaluated by reranker.metrics, is what is printed.
            expected = metrics.evaluate(results["models"][key]["scores"], qrels, (5, 10)).means[name]
            assert cell == f"{expected:.4f}", (label, key)
    assert _table_row(printed, "queries evaluated / excluded") == ["4 / 0"] * 3

    # The first-stage row, by hand; both NDCG variants really differ on this data.
    first = results["models"][FIRST_STAGE]["summary"]
    assert first["ndcg@5"] == pytest.approx(FIRST_STAGE_NDCG5)
    assert first["ndcg_blog@5"] == pytest.approx(FIRST_STAGE_BLOG5)
    assert first["mrr"] == pytest.approx((1 / 2 + 1 + 1 / 6 + 1 / 3) / 4)

    # The scores are the models' own: the same pages scored by the fixture's rerankers agree.
    for row in rows:
        names = [str(c) for c in row["top_25_image_filenames"]]
        pages = [Image.open(images / f"{n}.png").convert("RGB") for n in names]
        for key in (MODEL_A, MODEL_B):
            expected = tiny_rerankers[key].score(row["query"], pages, max_pixels=MAX_PIXELS[key])
            got = results["models"][key]["scores"][row["query_id"]]
            assert [got[n] for n in names] == pytest.approx(expected, abs=1e-5)
        assert results["models"][MODEL_A]["pairs"] == 23

    # The blog's published NDCG@5 beside ours, labelled as the blog's.
    assert _table_row(printed, "blog's published NDCG@5 (esg_reports_human_labeled_v2, blog variant)") == [
        "—", "0.806", "0.804"]  # fmt: skip
    assert float(_table_row(printed, "pairs/s")[1]) > 0
    assert "per query — Qwen3-VL-Reranker-2B" in printed
    assert "Kendall τ" in printed
    # The models against each other, then each against the first stage it reranks.
    pairs = [(d["model_a"], d["model_b"]) for d in results["paired_differences"]]
    assert list(dict.fromkeys(pairs)) == [(MODEL_A, MODEL_B), (MODEL_A, FIRST_STAGE), (MODEL_B, FIRST_STAGE)]
    for d in results["paired_differences"]:
        first, second = (results["models"][key]["summary"][d["metric"]] for key in (d["model_a"], d["model_b"]))
        assert d["n_queries"] == 4 and d["mean"] == pytest.approx(first - second)
    assert "Qwen3RerankerMM-2B − first-stage retriever, query by query over the 4 queries" in printed


def test_benchmark_missing_and_unreadable_images_are_reported_and_skipped(tmp_path, tiny_env, capsys):
    folder = tmp_path / "bench"
    folder.mkdir()
    for i in (0, 1, 4):
        _thumbnail(SAMPLES / f"doc_{i}.jpg", folder / f"doc_{i}.jpg")
    (folder / "broken.jpg").write_bytes(b"not a jpeg")
    rows = _rows([
        ("How does surface density change with radius?", "a", ["doc_0.jpg", "doc_404.jpg", "doc_1.jpg", "broken.jpg"],
         ["doc_0.jpg"]),
        ("How does average queue length grow with betweenness?", "b", ["gone_1.jpg", "gone_2.jpg"], ["gone_1.jpg"]),
        ("What share of users per thread were unknown?", "c", ["doc_4.jpg", "doc_1.jpg"], ["doc_1.jpg"]),
    ])  # fmt: skip
    data = folder / "bench.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out_json = tmp_path / "out.json"

    # No --images for a local dataset: the images are looked for beside it. One model only.
    code = main(["eval", "--benchmark", str(data), "--models", MODEL_B, "--output", str(out_json), *PIXEL_ARGS])
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert "3 candidate image(s) not found" in printed
    assert "doc_404.jpg, gone_1.jpg, gone_2.jpg" in printed
    assert "could not read image broken.jpg" in printed
    assert LABELS[MODEL_B] in printed and LABELS[MODEL_A] not in printed

    results = json.loads(out_json.read_text())
    model = results["models"][MODEL_B]
    assert model["pairs"] == 4  # doc_0 and doc_1 for "a", doc_4 and doc_1 for "c"
    assert set(model["scores"]["a"]) == {"doc_0.jpg", "doc_1.jpg"}
    assert model["excluded"] == {"b": "no candidate image found"}
    assert model["summary"]["n_queries"] == 2
    assert results["missing_images"] == ["doc_404.jpg", "gone_1.jpg", "gone_2.jpg"]
    assert set(results["unreadable_images"]) == {"broken.jpg"}


def test_a_query_too_long_for_the_model_that_reads_it_whole_is_excluded_for_that_model_only(tmp_path, tiny_rerankers):
    """Qwen3RerankerMM reads the whole query (its reference does not truncate) up to a limit:
    one query past it stopped the whole run, losing the queries already scored."""
    from reranker.evaluate import run_benchmark

    folder = tmp_path / "bench"
    folder.mkdir()
    for i in (0, 1):
        _thumbnail(SAMPLES / f"doc_{i}.jpg", folder / f"doc_{i}.jpg")
    too_long = "surface density " * 140_000  # over 32,768 tokens' worth of characters
    rows = _rows([(too_long, "long", ["doc_0.jpg", "doc_1.jpg"], ["doc_0.jpg"]),
                  ("How does surface density change with radius?", "short", ["doc_1.jpg", "doc_0.jpg"], ["doc_0.jpg"])])
    data = folder / "bench.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    evaluation = run_benchmark(load_benchmark(str(data)), folder, rerankers=tiny_rerankers, max_pixels=MAX_PIXELS)
    assert evaluation.results[MODEL_B].excluded == {"long": "query too long for this model, which reads it whole"}
    assert set(evaluation.runs[MODEL_B]) == {"short"} and evaluation.results[MODEL_B].n_queries == 1
    assert set(evaluation.runs[MODEL_A]) == {"long", "short"} and evaluation.results[MODEL_A].n_queries == 2
    assert evaluation.timings[MODEL_B].pairs == 2


def test_a_query_a_model_computes_nan_for_is_excluded_for_that_model_only(tmp_path, tiny_checkpoints, tiny_rerankers):
    """A NaN score was found only when the metrics ranked the pages, after every query had been
    scored by every model: the run stopped with "score of page 'p2' is NaN", naming neither the
    model nor the query, and wrote no report."""
    import torch

    from reranker import load_reranker
    from reranker.evaluate import run_benchmark

    folder = tmp_path / "bench"
    folder.mkdir()
    for i in (0, 1):
        _thumbnail(SAMPLES / f"doc_{i}.jpg", folder / f"doc_{i}.jpg")
    rows = _rows([("What is the surface density?", "one", ["doc_0.jpg", "doc_1.jpg"], ["doc_0.jpg"]),
                  ("Which region is shown?", "two", ["doc_1.jpg", "doc_0.jpg"], ["doc_1.jpg"])])
    data = folder / "bench.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    broken = load_reranker(MODEL_A, model_path=str(tiny_checkpoints.reranker), device="cpu")
    with torch.no_grad():
        broken.backbone.language_model.norm.weight.fill_(float("nan"))
    evaluation = run_benchmark(load_benchmark(str(data)), folder, rerankers={MODEL_A: broken, MODEL_B: tiny_rerankers[MODEL_B]},
                               max_pixels=MAX_PIXELS)
    assert evaluation.results[MODEL_A].excluded == {
        "one": "the model computed nan for 2 of 2 candidates (doc_0.jpg, doc_1.jpg)",
        "two": "the model computed nan for 2 of 2 candidates (doc_1.jpg, doc_0.jpg)",
    }
    assert evaluation.results[MODEL_A].n_queries == 0 and evaluation.runs[MODEL_A] == {}
    assert set(evaluation.runs[MODEL_B]) == {"one", "two"} and evaluation.results[MODEL_B].n_queries == 2


def test_relevant_ids_that_name_candidates_only_up_to_an_extension_are_noted(tmp_path):
    """Candidates "101.png", relevant "101": every metric was 0, without a word."""
    rows = _rows([("q one", "1", ["101.png", "102.png"], ["101"]), ("q two", "2", [7, 8], ["8.png", "9"]),
                  ("q three", "3", ["a.png"], ["a.png", "b"])])
    data = tmp_path / "bench.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    note = load_benchmark(str(data)).note
    assert note == ("no 'test' split; using the only split, 'train'; 2 relevant id(s) match a candidate only up to a file extension (e.g. '101' and '101.png'); "
                    "relevance matches names exactly, so they count as pages the first stage missed")
    data.write_text("".join(json.dumps(r) + "\n" for r in rows[2:]))
    assert "relevant id" not in load_benchmark(str(data)).note  # a relevant page the first stage missed is none


def test_benchmark_from_the_hub_without_images_explains_what_to_do(capsys):
    code = main(["eval", "--benchmark", "UlrickBL/vidore_benchmark_economics_reports_v2_reranker_adapted"])
    err = capsys.readouterr().err
    assert code == 1
    assert "--images DIR is required" in err
    assert "source corpus" in err and "load_dataset" in err


def test_benchmark_input_errors_are_messages_not_tracebacks(tmp_path, monkeypatch, capsys):
    data = tmp_path / "other.jsonl"
    data.write_text(json.dumps({"question": "q", "pages": ["a.png"]}) + "\n")
    assert main(["eval", "--benchmark", str(data), "--images", str(tmp_path)]) == 1
    assert "missing column(s) query, query_id" in capsys.readouterr().err

    assert main(["eval", "--benchmark", str(tmp_path / "typo.parquet")]) == 1
    assert "no such file or folder" in capsys.readouterr().err  # a path, not a Hub id to download

    table = tmp_path / "benchmark.csv"  # CSV would turn the list columns into strings
    table.write_text("query,query_id\nq,1\n")
    assert main(["eval", "--benchmark", str(table), "--images", str(tmp_path)]) == 1
    assert "unsupported file type (use .parquet, .jsonl or .json)" in capsys.readouterr().err

    hub_id = "UlrickBL/vidore_benchmark_economics_reports_v2_reranker_adapted"  # offline in tests
    assert main(["eval", "--benchmark", hub_id, "--images", str(tmp_path)]) == 1
    assert hub_id in capsys.readouterr().err

    good = tmp_path / "good.jsonl"
    good.write_text(json.dumps(_rows(BENCHMARK_ROWS[:1])[0]) + "\n")
    monkeypatch.setenv("RERANKER_DEVICE", "cpu")
    monkeypatch.setenv("RERANKER_QWEN3_VL_RERANKER_2B_MODEL", str(tmp_path / "no-weights-here"))
    assert main(["eval", "--benchmark", str(good), "--models", MODEL_A]) == 1
    assert "no-weights-here" in capsys.readouterr().err


# --------------------------------------------------------------------------- store


def _pages(start: int, count: int) -> list[Page]:
    from reranker.imaging import image_hash

    pages = []
    for n in range(start, start + count):
        image = Image.new("RGB", (8, 8), (n * 15, 255 - n * 15, 7))
        pages.append(Page(image_hash(image), image, f"p{n}.png", 1, None, "image"))
    return pages


@pytest.fixture
def arena_db(tmp_path):
    """Four queries; alice and bob judge q1 and q2; q3 is unjudged; q4 has no relevant page.

    q1 (p0–p3): A ranks p0..p3, B the reverse. alice: p0 relevant, others not; bob also calls p1
      relevant, so the majority drops p1 (a tie).
    q2 (p4–p9): A ranks p4..p9, B swaps p4 and p5. Both: p4, p9 relevant, p5 not (alice first said
      relevant, then relabelled: the latest label counts); bob skips p6 (a skip is no label).
    """
    from reranker.store import Store

    p = _pages(0, 14)
    with Store(tmp_path / "arena.db") as store:
        def ranking(text, pages, a, b):
            return store.save_ranking(text, None, pages, scores={MODEL_A: a, MODEL_B: b},
                                      settings={MODEL_A: {"max_pixels": 1}, MODEL_B: {"max_pixels": 2}})  # fmt: skip

        q1 = ranking("q1 revenue table", p[0:4], [.9, .8, .7, .6], [.1, .2, .3, .4])
        q2 = ranking("q2 emissions chart", p[4:10], [.9, .8, .7, .6, .5, .4], [.8, .9, .7, .6, .5, .4])
        ranking("q3 unjudged", p[10:12], [.9, .1], [.8, .2])
        q4 = ranking("q4 nothing relevant", p[12:14], [.9, .1], [.8, .2])
        judge = [
            (q1, 0, "alice", "relevant"), (q1, 1, "alice", "not_relevant"), (q1, 2, "alice", "not_relevant"),
            (q1, 3, "alice", "not_relevant"), (q1, 0, "bob", "relevant"), (q1, 1, "bob", "relevant"),
            (q1, 2, "bob", "not_relevant"), (q1, 3, "bob", "not_relevant"),
            (q2, 4, "alice", "relevant"), (q2, 9, "alice", "relevant"), (q2, 5, "alice", "relevant"),
            (q2, 5, "alice", "not_relevant"), (q2, 4, "bob", "relevant"), (q2, 9, "bob", "relevant"),
            (q2, 5, "bob", "not_relevant"), (q2, 6, "bob", "skip"),
            (q4, 12, "alice", "not_relevant"), (q4, 13, "alice", "not_relevant"),
        ]  # fmt: skip
        for query_id, n, annotator, label in judge:
            store.record_judgment(query_id, p[n].content_hash, annotator, label)
    return tmp_path / "arena.db"


# Majority labels, by hand. A: q1 perfect; q2 one relevant at rank 1, the other at rank 6.
# B: q1's relevant page at rank 4; q2's at ranks 2 and 6.
Q2_IDEAL = 1 + 1 / LOG2_3
EXPECTED = {
    MODEL_A: {"ndcg@5": (1 + 1 / Q2_IDEAL) / 2, "ndcg_blog@5": 1.0, "mrr": 1.0, "recall@5": 0.75,
              "map": (1 + (1 + 2 / 6) / 2) / 2},
    MODEL_B: {"ndcg@5": (1 / LOG2_5 + (1 / LOG2_3) / Q2_IDEAL) / 2, "ndcg_blog@5": (1 / LOG2_5 + 1 / LOG2_3) / 2,
              "mrr": (1 / 4 + 1 / 2) / 2, "recall@5": 0.75, "map": (1 / 4 + (1 / 2 + 2 / 6) / 2) / 2},
}  # fmt: skip
# Pages both judged: q1's four and q2's p4, p5, p9 (7); they disagree on one (q1 p1).
# alice 3 relevant / 4 not, bob 4 / 3: p_e = 24/49, κ = (6/7 − 24/49) / (1 − 24/49) = 18/25.
KAPPA = 18 / 25
# τ per query: q1 −1 (reversed), q2 13/15 (one swapped pair of 15), q3 and q4 +1.
MEAN_TAU = (-1 + 13 / 15 + 1 + 1) / 4


def test_evaluate_store_by_hand(arena_db):
    from reranker.store import Store

    with Store(arena_db) as store:
        evaluation = evaluate_store(store)
    assert list(evaluation.results) == [MODEL_A, MODEL_B]
    for key, expected in EXPECTED.items():
        result = evaluation.results[key]
        assert result.n_queries == 2
        assert sorted(result.excluded.values()) == ["no judged page", "no relevant page"]
        for name, value in expected.items():
            assert result.means[name] == pytest.approx(value), (key, name)
    (agreement,) = evaluation.model_agreement
    assert (agreement.n_queries, agreement.n_tau) == (4, 4)
    assert agreement.kendall_tau == pytest.approx(MEAN_TAU)
    assert agreement.topk_overlap == pytest.approx(1.0)
    (pair,) = evaluation.annotator_agreement
    assert (pair.annotator_a, pair.annotator_b, pair.kappa.n) == ("alice", "bob", 7)
    assert pair.kappa.kappa == pytest.approx(KAPPA)
    with Store(arena_db) as store:  # pairs in alphabetical order whatever the case ("Carol vs alice" came first)
        query_id = store.list_queries()[0].id
        store.record_judgment(query_id, store.query_pages(query_id)[0].page_hash, "Carol", "relevant")
        pairs = [(a.annotator_a, a.annotator_b) for a in evaluate_store(store).annotator_agreement]
    assert pairs == [("alice", "bob"), ("alice", "Carol"), ("bob", "Carol")]


def test_kappa_is_given_for_the_most_active_annotators_only(arena_db, monkeypatch):
    """κ of every pair grew with the square of the annotators: 800 names (which anyone can add)
    took Evaluate 33 s and a 31 MB reply."""
    from reranker import evaluate as evaluate_module
    from reranker.store import Store

    monkeypatch.setattr(evaluate_module, "KAPPA_ANNOTATORS", 3)
    with Store(arena_db) as store:
        query_id = store.list_queries()[0].id
        first, second = (page.page_hash for page in store.query_pages(query_id)[:2])
        for number in range(5):  # one label each: fewer than alice's and bob's
            store.record_judgment(query_id, first, f"bot{number}", "relevant")
        store.record_judgment(query_id, second, "bot3", "relevant")  # bot3: two, the most after them
        evaluation = evaluate_store(store)
    assert [(a.annotator_a, a.annotator_b) for a in evaluation.annotator_agreement] == [
        ("alice", "bob"), ("alice", "bot3"), ("bob", "bot3")]
    assert evaluation.kappa_left_out == 4 and evaluation.to_dict()["annotators_left_out_of_agreement"] == 4
    assert evaluation.kappa_note() == "Cohen's κ is given for the 3 annotators with the most labels; 4 others left out."
    assert evaluation.kappa_note() in evaluate_module.format_store(evaluation)
    # A − B query by query: both were evaluated on the same two queries, so the mean difference is
    # the difference of the means.
    assert {(d.model_a, d.model_b) for d in evaluation.differences} == {(MODEL_A, MODEL_B)}
    for d in evaluation.differences:
        assert d.n_queries == 2 and d.wins + d.ties + d.losses == 2
        assert d.mean == pytest.approx(evaluation.results[MODEL_A].means[d.metric] - evaluation.results[MODEL_B].means[d.metric])

    # Mistakes by the same majority labels: q1's p1 (a tie) is no mistake, p6 (only skipped) neither.
    number = {page.content_hash: n for n, page in enumerate(_pages(0, 14))}  # p0 … p13
    found = {key: sorted((evaluation.queries[query_id][:2], number[mistake.page_id], mistake.rank)
                         for query_id, mistake in evaluation.mistakes[key]) for key in (MODEL_A, MODEL_B)}
    assert found == {MODEL_A: [("q2", 5, 2)], MODEL_B: [("q1", 2, 2), ("q1", 3, 1), ("q2", 5, 1)]}

    with Store(arena_db) as store:  # bob alone: q1 has two relevant pages; B ranks them 3rd and 4th
        bob = evaluate_store(store, annotator="bob").results[MODEL_B]
    q1 = next(row for row in bob.rows if row["n_judged"] == 4)
    assert q1["ndcg@5"] == pytest.approx((1 / 2 + 1 / LOG2_5) / Q2_IDEAL)
    assert q1["mrr"] == pytest.approx(1 / 3)


def test_a_store_is_evaluated_in_a_few_reads_and_again_only_once_it_changed(arena_db):
    """Two reads a query (a store of 2,000 queries: 14,000 reads, 2 s) on every visit of the
    Evaluate tab; now a few reads whatever the store holds, and an unchanged store is not
    evaluated again (EvaluationCache)."""
    from reranker.store import Store

    def reads(store, evaluate) -> tuple[list[str], object]:
        statements = []
        store.db.conn.set_trace_callback(statements.append)
        try:
            result = evaluate()
        finally:
            store.db.conn.set_trace_callback(None)
        return [s for s in statements if s.lstrip().upper().startswith(("SELECT", "WITH"))], result

    with Store(arena_db) as store:
        few, _ = reads(store, lambda: evaluate_store(store))
        for n in range(30):
            store.save_ranking(f"more {n}", None, _pages(100 + 2 * n, 2), scores={MODEL_A: [0.5, 0.4]},
                               settings={MODEL_A: {"max_pixels": 1}})
        assert len(reads(store, lambda: evaluate_store(store))[0]) == len(few) < 12

        from reranker.evaluate import EvaluationCache

        cache = EvaluationCache()
        first = cache.evaluate(store, "alice")
        assert cache.evaluate(store, "alice") is first and cache.evaluate(store) is not first
        unchanged, again = reads(store, lambda: cache.evaluate(store, "alice"))
        assert again is first and len(unchanged) == 1  # the data version only
        q1 = next(q.id for q in store.list_queries() if q.text == "q1 revenue table")
        page = store.query_pages(q1)[3]  # A ranks it 4th, B 1st
        store.record_judgment(q1, page.page_hash, "alice", "relevant")
        changed = cache.evaluate(store, "alice")
        assert changed is not first and changed.to_dict() == evaluate_store(store, "alice").to_dict()
        assert changed.results[MODEL_B].rows != first.results[MODEL_B].rows


def test_eval_db_cli_names_the_queries_left_out_of_the_means_without_per_query(arena_db, capsys):
    from reranker.store import Store

    with Store(arena_db) as store:
        excluded = evaluate_store(store).results[MODEL_A].excluded
    assert main(["eval", "--db", str(arena_db)]) == 0
    printed = capsys.readouterr().out
    named = "; ".join(f"{query_id} ({why})" for query_id, why in excluded.items())
    for label in LABELS[MODEL_A], LABELS[MODEL_B]:
        assert f"not in {label}'s means: {named}" in printed.splitlines()


def test_per_query_rows_show_a_visitors_control_characters_as_escapes_not_to_the_terminal(arena_db):
    """Text stored before the app refused control characters (or through the Python API) is
    printed by `eval --per-query`: an escape sequence there retitled and cleared the terminal."""
    from reranker import evaluate as evaluate_module
    from reranker.store import Store

    with Store(arena_db) as store:
        evaluation = evaluate_store(store)
    texts = dict.fromkeys(evaluation.queries, "total\x1b]0;PWNED\x07\x1b[2J")
    tags = dict.fromkeys(evaluation.queries, " (instruction: two\nlines)")
    printed = evaluate_module._per_query(evaluation.results, evaluation.ks, texts, tags)
    assert not any(unicodedata.category(c) == "Cc" for c in printed.replace("\n", ""))
    assert "total\\x1b]0;PWNED\\x07\\x1b[2J (instruction: two lines)" in printed
    assert not any(line.startswith("lines)") for line in printed.splitlines())  # each row one line


def test_eval_db_cli_prints_the_hand_computed_numbers(arena_db, tmp_path, capsys):
    out_json = tmp_path / "store.json"
    code = main(["eval", "--db", str(arena_db), "--per-query", "--k", "5", "--output", str(out_json)])
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert "majority vote" in printed
    rows = [("NDCG@5", "ndcg@5"), (blog_label(5), "ndcg_blog@5"), ("MRR", "mrr"), ("Recall@5", "recall@5"), ("MAP", "map")]
    for label, name in rows:
        assert _table_row(printed, label) == [f"{EXPECTED[MODEL_A][name]:.4f}", f"{EXPECTED[MODEL_B][name]:.4f}"]
    assert _table_row(printed, "queries evaluated / excluded") == ["2 / 2", "2 / 2"]
    assert "alice vs bob: κ 0.720 (n=7" in printed
    assert f"Kendall τ {MEAN_TAU:.3f}" in printed and "top-5 overlap 1.000" in printed
    assert "q1 revenue table" in printed  # --per-query rows carry the query text
    assert "no relevant page" in printed and "no judged page" in printed
    # Then A − B per metric, under the same row names as the means.
    differences = printed[printed.index("Qwen3-VL-Reranker-2B − Qwen3RerankerMM-2B, query by query over the 2 queries"):]
    mrr = EXPECTED[MODEL_A]["mrr"] - EXPECTED[MODEL_B]["mrr"]
    assert _table_row(differences, "MRR")[0] == f"{mrr:+.4f}"
    assert "p: two-sided paired t-test" in differences
    saved = json.loads(out_json.read_text())
    assert saved["annotator_agreement"][0]["kappa"] == pytest.approx(KAPPA)
    assert {d["metric"] for d in saved["paired_differences"]} == {name for _, name in rows}  # --k 5
    assert saved["models"][MODEL_B]["summary"]["mrr"] == pytest.approx(EXPECTED[MODEL_B]["mrr"])


def test_eval_per_query_tables_show_every_k_asked_for(arena_db, capsys):
    """With --k 3 --k 5 the per-query tables showed @3 only (the means and the JSON had both)."""
    assert main(["eval", "--db", str(arena_db), "--per-query", "--k", "3", "--k", "5"]) == 0
    printed = capsys.readouterr().out
    per_query = printed[printed.index("per query — Qwen3-VL-Reranker-2B"):]
    header = per_query.splitlines()[1].split()
    assert header == ["query", "pages", "judged", "relevant", "NDCG@3", "NDCG@5", "blog", "NDCG@3", "blog", "NDCG@5",
                      "MRR", "Recall@3", "Recall@5", "MAP"]


def test_eval_db_cli_errors(arena_db, tmp_path, capsys):
    assert main(["eval", "--db", str(tmp_path / "nope.db")]) == 1
    assert "no database at" in capsys.readouterr().err
    assert not (tmp_path / "nope.db").exists()  # evaluating never creates a database
    assert main(["eval", "--db", str(arena_db), "--annotator", "carol"]) == 1
    assert "no judgments by 'carol' (annotators: alice, bob)" in capsys.readouterr().err
    # Options that would do nothing are refused, not ignored.
    for given in (["--split", "nope", "--limit", "3"], ["--split", "test", "--models", MODEL_A, MODEL_B]):  # defaults too
        assert main(["eval", "--db", str(arena_db), *given]) == 2  # usage errors, as argparse's own
        named = ", ".join(option for option in given if option.startswith("--"))
        assert capsys.readouterr().err == (f"error: {named}: only with --benchmark (stored judgments are "
                                           "evaluated on the scores the app stored)\n")
    assert main(["eval", "--benchmark", str(tmp_path / "b.parquet"), "--annotator", "alice"]) == 2
    assert "--annotator chooses among stored judgments; a --benchmark has its own labels" in capsys.readouterr().err


def test_benchmark_files_that_cannot_be_read_are_named_without_a_traceback(tmp_path):
    from datasets import Dataset

    empty = tmp_path / "empty.jsonl"
    empty.touch()
    with pytest.raises(ValueError, match="empty.jsonl: the file is empty"):
        load_benchmark(str(empty))
    damaged = tmp_path / "damaged.parquet"
    damaged.write_bytes(b"PAR1" + bytes(range(256)) * 4)
    with pytest.raises(ValueError, match="damaged.parquet: could not be read as a dataset"):
        load_benchmark(str(damaged))
    data = tmp_path / "set.parquet"
    Dataset.from_list(_rows(BENCHMARK_ROWS)).to_parquet(str(data))
    assert load_benchmark(str(data)).note == "no 'test' split; using the only split, 'train'"
    with pytest.raises(ValueError, match="no split 'validation'; choose one with --split: train"):
        load_benchmark(str(data), "validation")  # named, it is not replaced by another


def test_a_query_ranked_again_at_another_budget_is_named_as_mixing_settings(arena_db, capsys):
    """Each page keeps a model's latest score, whatever its settings: a query ranked again over
    part of its pages at another image budget compares unlike with unlike, and eval says so."""
    from reranker.store import Store

    with Store(arena_db) as store:
        assert evaluate_store(store).mixed_settings == {}
        q1 = next(q.id for q in store.list_queries() if q.text.startswith("q1"))
        pages = [_pages(0, 14)[0]]
        store.save_ranking("q1 revenue table", None, pages, scores={MODEL_A: [0.5]}, settings={MODEL_A: {"max_pixels": 9}})
        evaluation = evaluate_store(store)
    assert evaluation.mixed_settings == {MODEL_A: [q1]}
    assert evaluation.to_dict()["mixed_settings"] == {MODEL_A: [q1]}
    assert main(["eval", "--db", str(arena_db)]) == 0
    assert (f"note: Qwen3-VL-Reranker-2B: query {q1} mix scores made at different settings (another image budget, "
            "say); each page's latest score counts") in capsys.readouterr().out


def test_a_query_a_model_scored_only_in_part_is_named(tmp_path, capsys):
    """The same question over a second upload that one model could not score: that model's
    metrics count the second upload's pages as never retrieved, the other's as ranked. The
    comparison is unlike with unlike and eval says so, as for mixed settings."""
    from reranker.store import Store

    first, second = _pages(0, 2), _pages(2, 2)
    with Store(tmp_path / "arena.db") as store:
        query_id = store.save_ranking("revenue?", None, first, scores={MODEL_A: [0.9, 0.1], MODEL_B: [0.8, 0.2]},
                                      settings={MODEL_A: {}, MODEL_B: {}})
        store.save_ranking("revenue?", None, second, scores={MODEL_A: [0.7, 0.3]}, settings={MODEL_A: {}})  # B failed
        asked = store.save_ranking("revenue?", "Tables only.", first, scores={MODEL_A: [0.5, 0.4], MODEL_B: [0.6, 0.3]},
                                   settings={MODEL_A: {}, MODEL_B: {}})
        for page, label in zip(first + second, ("relevant", "not_relevant", "relevant", "not_relevant")):
            store.record_judgment(query_id, page.content_hash, "ann", label)
        store.record_judgment(asked, first[0].content_hash, "ann", "relevant")
        evaluation = evaluate_store(store)
    assert evaluation.partly_scored == {MODEL_B: [query_id]} and evaluation.mixed_settings == {}
    assert evaluation.to_dict()["partly_scored"] == {MODEL_B: [query_id]}
    assert evaluation.to_dict()["instructions"] == {str(query_id): None, str(asked): "Tables only."}
    assert evaluation.comparison_notes() == [
        f"Qwen3RerankerMM-2B: query {query_id} scored only some of the pages (it could not score another upload of "
        "the same question): the others count as not retrieved. Rank such a query again with every upload to compare "
        "like with like."]
    assert main(["eval", "--db", str(tmp_path / "arena.db"), "--per-query"]) == 0
    out = capsys.readouterr().out
    assert f"note: Qwen3RerankerMM-2B: query {query_id} scored only some of the pages" in out
    # The per-query tables tell the two queries of one text apart.
    assert f"{asked}  revenue? [instruction: Tables only.]" in out and f"{query_id}  revenue? " in out


# --------------------------------------------------------------------------- bad input


def test_eval_output_never_replaces_a_database(arena_db, tmp_path, monkeypatch, capsys):
    import shutil

    from reranker.store import Store

    before = arena_db.read_bytes()
    assert main(["eval", "--db", str(arena_db), "--output", str(arena_db)]) == 1
    captured = capsys.readouterr()
    assert captured.err == f"error: --output {arena_db} is the database being read; give another file name\n"
    assert captured.out == ""  # refused before anything was evaluated
    monkeypatch.setenv("RERANKER_DB", str(arena_db))  # the database by default, too
    assert main(["eval", "--output", str(arena_db)]) == 1
    assert "is the database being read" in capsys.readouterr().err
    other = tmp_path / "other.db"  # any database, not only the one being read
    shutil.copy(arena_db, other)
    assert main(["eval", "--db", str(arena_db), "--output", str(other)]) == 1
    assert capsys.readouterr().err == (f"error: --output {other} is a SQLite database, which this would replace; "
                                       "give another file name\n")  # fmt: skip
    assert arena_db.read_bytes() == before and other.read_bytes() == before
    with Store(arena_db) as store:  # every judgment still there
        assert store.annotators() == ["alice", "bob"]


def test_eval_output_folder_is_made(arena_db, tmp_path, capsys):
    out_json = tmp_path / "new" / "deeper" / "store.json"
    assert main(["eval", "--db", str(arena_db), "--output", str(out_json)]) == 0
    assert f"wrote {out_json}" in capsys.readouterr().out
    assert json.loads(out_json.read_text())["source"] == "store"


def test_eval_output_that_cannot_be_written_leaves_the_earlier_file_and_nothing_else(tmp_path, capsys):
    """A full disk, as a file-size limit: the JSON is written whole or not at all."""
    resource = pytest.importorskip("resource")
    import signal

    from reranker.store import Store

    (page,) = _pages(0, 1)
    with Store(tmp_path / "arena.db") as store:  # a query long enough that its JSON passes the limit
        query_id = store.save_ranking("revenue table " * 20_000, None, [page], scores={MODEL_A: [0.5]})
        store.record_judgment(query_id, page.content_hash, "alice", "relevant")
    out_json = tmp_path / "results" / "out.json"
    out_json.parent.mkdir()
    out_json.write_text('{"earlier": "results"}')
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a failed write, not a killed process
    resource.setrlimit(resource.RLIMIT_FSIZE, (128 * 1024, hard))
    try:
        code = main(["eval", "--db", str(tmp_path / "arena.db"), "--output", str(out_json)])
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, handler)
    captured = capsys.readouterr()
    assert code == 1
    assert captured.err == f"error: cannot write {out_json}: File too large\n"
    assert "Stored scores against human labels" in captured.out  # printed before the write failed
    assert out_json.read_text() == '{"earlier": "results"}'
    assert [path.name for path in out_json.parent.iterdir()] == ["out.json"]  # no partial file left


@pytest.fixture
def no_weights(tmp_path, monkeypatch):
    """Loading model A fails, naming this folder: an error about anything else came first."""
    monkeypatch.setenv("RERANKER_DEVICE", "cpu")
    monkeypatch.setenv("RERANKER_QWEN3_VL_RERANKER_2B_MODEL", str(tmp_path / "no-weights-here"))


def test_benchmark_output_is_checked_before_the_models_load(arena_db, tmp_path, no_weights, capsys):
    data = tmp_path / "bench.jsonl"
    data.write_text("".join(json.dumps(row) + "\n" for row in _rows(BENCHMARK_ROWS)))
    before = data.read_bytes()
    for output, problem in [(data, "is the benchmark being read"), (arena_db, "is a SQLite database, which this would replace")]:
        assert main(["eval", "--benchmark", str(data), "--models", MODEL_A, "--output", str(output)]) == 1
        assert capsys.readouterr().err == f"error: --output {output} {problem}; give another file name\n"
    assert data.read_bytes() == before
    out_json = tmp_path / "nodir" / "out.json"  # a new folder is made, before the (failing) model load
    assert main(["eval", "--benchmark", str(data), "--models", MODEL_A, "--output", str(out_json)]) == 1
    assert "no-weights-here" in capsys.readouterr().err
    assert out_json.parent.is_dir() and not out_json.exists()


def test_eval_that_evaluates_nothing_says_why_exits_1_and_writes_no_file(tmp_path, tiny_env, capsys):
    """A wrong --images folder (none of the candidates in it) or a store without judgments gave a
    table of dashes and exit status 0, with --output written all null: a script took it for results."""
    from reranker.store import Store

    data = tmp_path / "bench.jsonl"
    data.write_text("".join(json.dumps(row) + "\n" for row in _rows(BENCHMARK_ROWS[:1])))
    (tmp_path / "wrong-folder").mkdir()
    out_json = tmp_path / "out.json"
    code = main(["eval", "--benchmark", str(data), "--images", str(tmp_path / "wrong-folder"), "--models", MODEL_A,
                 "--output", str(out_json), *PIXEL_ARGS])  # fmt: skip
    captured = capsys.readouterr()
    assert code == 1 and not out_json.exists()
    assert "no candidate image found" in captured.out  # the reasons, per query
    assert captured.err.endswith(f"error: no model could be evaluated on any query (the reasons are listed above); "
                                 f"{out_json} not written\n")

    empty = tmp_path / "empty.db"
    Store(empty).close()
    assert main(["eval", "--db", str(empty)]) == 1
    assert capsys.readouterr().err == "error: nothing to evaluate: no stored scores (rank some pages in the app first)\n"
    unjudged = tmp_path / "unjudged.db"
    with Store(unjudged) as store:
        pages = load_files([SAMPLES / "doc_0.jpg"]).pages
        store.save_ranking("revenue?", None, pages, scores={MODEL_A: [0.5]}, settings={MODEL_A: {}})
    assert main(["eval", "--db", str(unjudged)]) == 1
    assert "no model could be evaluated on any query" in capsys.readouterr().err


def test_benchmark_ties_keep_the_first_stage_order(tmp_path, tiny_rerankers):
    """Equal scores rank in the dataset's order, the first stage's own: "106" listed first is its
    #1 (trec_eval's rule, page id descending, put "107" first). Two copies of one page get equal
    scores from each model too, so the models' ties follow the same order."""
    from reranker.evaluate import run_benchmark

    folder = tmp_path / "bench"
    folder.mkdir()
    for name in ("106", "107"):
        _thumbnail(SAMPLES / "doc_0.jpg", folder / f"{name}.jpg")
    row = dict(query="How does surface density change with radius?", query_id="tied",
               top_25_image_filenames=[106, 107], top_25_scores=[0.5, 0.5], relevant_image_filenames=["106"])
    evaluation = run_benchmark(load_benchmark(str(_bench_file(folder, [row]))), folder, rerankers=tiny_rerankers,
                               max_pixels=MAX_PIXELS)
    for key in (FIRST_STAGE, MODEL_A, MODEL_B):
        scores = evaluation.runs[key]["tied"]
        assert scores["106"] == scores["107"], key
        assert evaluation.results[key].rows[0]["mrr"] == 1.0, key


def test_benchmark_pages_reach_the_models_as_their_files_hold_them(tmp_path, tiny_rerankers):
    """Each model makes a page RGB by its reference's rules (a transparent page laid on white);
    the benchmark once converted every file to RGB first, which drops an alpha band unlaid."""
    from reranker.evaluate import run_benchmark

    folder = tmp_path / "bench"
    folder.mkdir()
    with Image.open(SAMPLES / "doc_0.jpg") as image:
        page = image.convert("RGBA")
    page.thumbnail((320, 320))
    page.putalpha(Image.linear_gradient("L").resize(page.size))  # clear at the top to opaque at the bottom
    page.save(folder / "7.png")
    row = dict(query="How does surface density change with radius?", query_id="q", top_25_image_filenames=[7],
               top_25_scores=[0.5], relevant_image_filenames=["7"])
    evaluation = run_benchmark(load_benchmark(str(_bench_file(folder, [row]))), folder, rerankers=tiny_rerankers,
                               max_pixels=MAX_PIXELS)
    with Image.open(folder / "7.png") as as_saved:
        for key in (MODEL_A, MODEL_B):
            tiny_rerankers[key].clear_caches()
            expected = tiny_rerankers[key].score(row["query"], [as_saved], max_pixels=MAX_PIXELS[key])[0]
            assert evaluation.runs[key]["q"]["7"] == pytest.approx(expected, abs=1e-6), key


def test_store_ties_rank_in_upload_order_as_the_app_shows_them(tmp_path):
    """The metrics rank equal scores as the Rank tab and the store's ranks do: in upload order.
    (By page id, one of these two queries put its relevant page second.)"""
    from reranker.store import Store

    first, second = _pages(0, 2)
    with Store(tmp_path / "arena.db") as store:
        for pages in ([first, second], [second, first]):
            query_id = store.save_ranking(f"uploaded {pages[0].source} first", None, pages,
                                          scores={MODEL_A: [0.5, 0.5], MODEL_B: [0.5, 0.5]},
                                          settings={MODEL_A: {"max_pixels": 1}, MODEL_B: {"max_pixels": 2}})
            store.record_judgment(query_id, pages[0].content_hash, "alice", "relevant")
            store.record_judgment(query_id, pages[1].content_hash, "alice", "not_relevant")
            assert [p.ranks[MODEL_A] for p in store.query_pages(query_id)] == [1, 2]
        evaluation = evaluate_store(store)
    for key in (MODEL_A, MODEL_B):
        assert [row["mrr"] for row in evaluation.results[key].rows] == [1.0, 1.0]


def _bench_file(tmp_path, rows) -> Path:
    data = tmp_path / "bench.jsonl"
    data.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return data


@pytest.mark.parametrize("column, value, problem", [
    ("top_25_scores", [None, 0.85, 0.8, 0.75, 0.7, 0.65], "top_25_scores[0] is null, not a number"),
    ("top_25_scores", ["high", "low", "low", "low", "low", "low"], "top_25_scores[0] is 'high', not a number"),
    ("top_25_scores", [0.9, float("nan"), 0.8, 0.75, 0.7, 0.65], "top_25_scores[1] is NaN, not a finite number"),
    ("top_25_scores", [0.9, 0.8], "top_25_image_filenames has 6 pages but top_25_scores has 2 scores"),
    ("top_25_image_filenames", [4, None, 6, 7, 8, 9], "top_25_image_filenames[1] is null, not a page name"),
    ("relevant_image_filenames", None, "relevant_image_filenames is null, not a list of page names"),
    ("query", "  ", "query is empty: type what you are looking for"),
    ("query", "\u200b", "query is empty: type what you are looking for"),  # a zero-width space: the models refused it, stopping the run midway
    ("query", "a <|image_pad|> b", "query contains <|image_pad|>, the token that marks where a page's image goes in the prompt: remove it"),
    ("query", None, "query is null, not text"),
])  # fmt: skip
def test_a_bad_benchmark_row_is_named_by_file_row_and_column(tmp_path, column, value, problem):
    rows = _rows(BENCHMARK_ROWS)
    rows[1][column] = value
    data = _bench_file(tmp_path, rows)
    with pytest.raises(ValueError) as raised:
        load_benchmark(str(data))
    assert str(raised.value) == f"{data}, row 2 (query id 'q4'): {problem}; nothing was scored"


def test_bad_benchmark_rows_stop_the_run_before_the_models_load(tmp_path, no_weights, capsys):
    rows = _rows(BENCHMARK_ROWS)
    rows[1]["query_id"] = None
    rows[2]["top_25_scores"][3] = None
    rows[3]["query"] = ""
    data = _bench_file(tmp_path, rows)
    assert main(["eval", "--benchmark", str(data), "--models", MODEL_A]) == 1
    (error,) = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]  # besides progress bars
    assert error == f"error: {data}, row 2: query_id is null; 2 more bad rows (3, 4); nothing was scored"
    # Rows past --limit are not read, so cannot stop it: the run goes on to load the model.
    assert main(["eval", "--benchmark", str(data), "--models", MODEL_A, "--limit", "1"]) == 1
    assert "no-weights-here" in capsys.readouterr().err


def test_a_blank_annotator_is_the_majority_vote_as_none_is(arena_db):
    """"  " was a name, '' after stripping, and refused: "no judgments by ''"."""
    from reranker.store import Store

    with Store(arena_db) as store:
        everyone = evaluate_store(store).to_dict()
        assert evaluate_store(store, "  ").to_dict() == everyone and evaluate_store(store, "").to_dict() == everyone


def test_eval_annotator_is_matched_as_the_app_matches_names(arena_db, capsys):
    from reranker.store import Store

    with Store(arena_db) as store:
        typed, stored = evaluate_store(store, annotator="ALICE"), evaluate_store(store, annotator="alice")
    assert typed.annotator == "alice"
    assert typed.results[MODEL_B].means == stored.results[MODEL_B].means
    assert main(["eval", "--db", str(arena_db), "--annotator", " Bob "]) == 0
    assert "(annotator 'bob')" in capsys.readouterr().out


def test_an_image_budget_out_of_range_names_its_flag(tmp_path, capsys):
    from reranker.models import MODELS

    for flag, key, value in [("--max-pixels-a", MODEL_A, "5"), ("--max-pixels-b", MODEL_B, "999999999")]:
        spec = MODELS[key]
        assert main(["eval", "--benchmark", str(tmp_path / "b.parquet"), flag, value]) == 2
        assert capsys.readouterr().err == (f"error: {flag} must be from {spec.min_pixels} to {spec.max_pixels_limit} "
                                           f"(the image budget of {spec.label}, in pixels), not {value}\n")  # fmt: skip


def test_the_mean_top_k_overlap_leaves_out_queries_of_k_pages_or_fewer():
    """With k pages or fewer both top k are every page: such queries pushed the mean to 100%."""
    from reranker.evaluate import models_agreement

    small = {"a": 0.9, "b": 0.5, "c": 0.1}
    large = {f"p{i}": float(i) for i in range(6)}
    runs = {MODEL_A: {"small": small, "large": large},
            MODEL_B: {"small": dict(zip(small, [0.1, 0.5, 0.9])), "large": {p: -s for p, s in large.items()}}}
    (pair,) = models_agreement(runs, k=5)
    assert pair.topk_overlap == pytest.approx(4 / 5) and pair.n_queries == 2  # the large query's alone
    (only_small,) = models_agreement({key: {"small": run["small"]} for key, run in runs.items()}, k=5)
    assert only_small.topk_overlap is None
