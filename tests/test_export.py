"""reranker.export: the right positives and hard negatives, four formats that load, and safe archives."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import math
import random
import re
import zipfile
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import datasets
import pytest
from PIL import Image

from reranker import store as store_module
from reranker.cli import main as cli_main
from reranker.export import (
    MINED,
    ExportOptions,
    NothingToExportError,
    export,
    preview,
    select,
    summarize,
)
from reranker.models import MODELS, render_prompt
from reranker.documents import Page
from reranker.imaging import image_hash
from reranker.store import NOT_RELEVANT, RELEVANT, SKIP, Store

A, B = "qwen3-vl-reranker-2b", "qwen3-reranker-mm-2b"
FORMATS = ("pointwise", "sentence-transformers", "flagembedding", "parquet")


def make_pages(names: list[str], source: str, seed: int) -> dict[str, Page]:
    rng = random.Random(seed)
    document_hash = hashlib.sha256(source.encode()).hexdigest()
    pages = {}
    for number, name in enumerate(names, 1):
        image = Image.frombytes("RGB", (10, 7), rng.randbytes(10 * 7 * 3))
        pages[name] = Page(image_hash(image), image, source, number, document_hash, "pdf")
    return pages


class Clock:
    """Stands in for store.now(): judgments get known times, a millisecond apart."""

    def __init__(self) -> None:
        self.moment = datetime(2026, 3, 1, 9, 0, tzinfo=timezone.utc)

    def __call__(self) -> str:
        self.moment += timedelta(milliseconds=1)
        return self.moment.isoformat(timespec="microseconds")


# Query 1: scores chosen so each rule selects a different set (k = 2).
#   page   A     B     label            top_k(k=2)  above lowest positive (A .50, B .30)
#   p0    .95   .10    not_relevant     A (rank 1)  A
#   p1    .90   .35    —                A (rank 2)  A, B            → mined candidate
#   p2    .80   .30    relevant
#   p3    .70   .40    not_relevant     —           A, B
#   p4    .20   .05    not_relevant     —           —               → easy negative
#   p5    .50   .60    relevant
#   p6    .40   .70    not_relevant     B (rank 2)  B
#   p7    .30   .80    —                B (rank 1)  B               → mined candidate
Q1_SCORES = {A: [0.95, 0.90, 0.80, 0.70, 0.20, 0.50, 0.40, 0.30], B: [0.10, 0.35, 0.30, 0.40, 0.05, 0.60, 0.70, 0.80]}
Q1_LABELS = {
    "p0": NOT_RELEVANT,
    "p2": RELEVANT,
    "p3": NOT_RELEVANT,
    "p4": NOT_RELEVANT,
    "p5": RELEVANT,
    "p6": NOT_RELEVANT,
}
# Query 2: several annotators. q0 agreed relevant; q1 a tie; q2 majority not relevant; q3 one vote.
Q2_SCORES = {A: [0.1, 0.5, 0.9, 0.8], B: [0.2, 0.6, 0.7, 0.9]}
Q2_LABELS = {
    "ann": {"q0": RELEVANT, "q1": NOT_RELEVANT, "q2": NOT_RELEVANT, "q3": NOT_RELEVANT},
    "bob": {"q0": RELEVANT, "q1": RELEVANT, "q2": NOT_RELEVANT},
    "cat": {"q2": RELEVANT},
}


@pytest.fixture
def clock(monkeypatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr(store_module, "now", clock)
    return clock


@pytest.fixture
def arena(tmp_path: Path, clock: Clock):
    """A database with known judgments and scores; yields (store, {name: page}, (q1, q2))."""
    store = Store(tmp_path / "arena.db")
    pages = make_pages([f"p{i}" for i in range(8)], "annual report.pdf", seed=1)
    pages |= make_pages([f"q{i}" for i in range(4)], "slides.pdf", seed=2)
    settings = {A: {"max_pixels": 1280 * 1024}, B: {"max_pixels": 564480}}
    q1 = store.save_ranking(
        "what was the 2024 revenue?", None, [pages[f"p{i}"] for i in range(8)], scores=Q1_SCORES, settings=settings
    )
    q2 = store.save_ranking(
        "slide about hiring", "Find slides.", [pages[f"q{i}"] for i in range(4)], scores=Q2_SCORES, settings=settings
    )
    for name, label in Q1_LABELS.items():
        store.record_judgment(q1, pages[name].content_hash, "ann", label)
    for annotator, labels in Q2_LABELS.items():
        for name, label in labels.items():
            store.record_judgment(q2, pages[name].content_hash, annotator, label)
    yield store, pages, (q1, q2)
    store.close()


def names(pages: dict[str, Page], examples) -> list[str]:
    by_hash = {p.content_hash: n for n, p in pages.items()}
    return [by_hash[e.page_hash] for e in examples]


def query(selection, query_id):
    return next(q for q in selection.queries if q.query_id == query_id)


# ---------------------------------------------------------------------------------------------
# Selection


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        ("top_k", [("p0", (A,)), ("p6", (B,))]),
        ("above_lowest_positive", [("p0", (A,)), ("p6", (B,)), ("p3", (A, B))]),
        ("either", [("p0", (A,)), ("p6", (B,)), ("p3", (A, B))]),
        ("all", [("p0", (A,)), ("p6", (B,)), ("p3", (A, B)), ("p4", ())]),  # easy p4 only here
    ],
)
def test_hard_negatives_under_each_rule(arena, rule, expected):
    store, pages, (q1, _) = arena
    selected = query(select(store, ExportOptions(rule=rule, k=2, models=(A, B))), q1)
    assert names(pages, selected.positives) == ["p2", "p5"]
    assert [(n, e.hard_for) for n, e in zip(names(pages, selected.negatives), selected.negatives)] == expected
    assert all(e.label == NOT_RELEVANT and e.annotators == ("ann",) for e in selected.negatives)
    assert {e.page_hash for e in selected.negatives}.isdisjoint({pages["p1"].content_hash, pages["p7"].content_hash})


def test_k_and_cap_and_single_model(arena):
    store, pages, (q1, _) = arena
    assert names(pages, query(select(store, ExportOptions(rule="top_k", k=1)), q1).negatives) == ["p0"]
    assert names(pages, query(select(store, ExportOptions(rule="top_k", k=4)), q1).negatives) == ["p0", "p6", "p3"]
    capped = query(select(store, ExportOptions(rule="either", k=2, max_negatives=2)), q1)
    assert names(pages, capped.negatives) == ["p0", "p6"]  # hardest first
    only_b = query(select(store, ExportOptions(rule="top_k", k=2, models=(B,))), q1)
    assert names(pages, only_b.negatives) == ["p6"]


def test_mined_negatives_only_when_asked_and_marked(arena):
    store, pages, (q1, _) = arena
    plain = query(select(store, ExportOptions(rule="either", k=2)), q1)
    assert all(e.label != MINED for e in plain.negatives)
    mined = query(select(store, ExportOptions(rule="either", k=2, include_mined_negatives=True)), q1)
    assert [(n, e.label) for n, e in zip(names(pages, mined.negatives), mined.negatives)] == [
        ("p0", NOT_RELEVANT),
        ("p6", NOT_RELEVANT),
        ("p3", NOT_RELEVANT),
        ("p7", MINED),  # judged ones first, then mined, each hardest first
        ("p1", MINED),
    ]
    assert all(e.annotators == () for e in mined.negatives if e.label == MINED)
    store.record_judgment(q1, pages["p1"].content_hash, "ann", SKIP)  # seen by a human: never mined
    mined = query(select(store, ExportOptions(rule="either", k=2, include_mined_negatives=True)), q1)
    assert names(pages, [e for e in mined.negatives if e.label == MINED]) == ["p7"]
    # Only where someone judged the query: a query only skipped is as unknown as one never opened
    # (a skip brought its top pages in as mined negatives).
    extra = make_pages(["s0", "s1", "u0", "u1"], "more.pdf", seed=9)
    skipped = store.save_ranking("only skipped", None, [extra["s0"], extra["s1"]], scores={A: [0.9, 0.1]}, settings={A: {}})
    store.save_ranking("never judged", None, [extra["u0"], extra["u1"]], scores={A: [0.9, 0.1]}, settings={A: {}})
    store.record_judgment(skipped, extra["s1"].content_hash, "ann", SKIP)
    every = select(store, ExportOptions(format="pointwise", rule="either", k=2, include_mined_negatives=True))
    assert {q.query for q in every.queries} == {"what was the 2024 revenue?", "slide about hiring"}


def test_agreement_majority_and_annotator_filter(arena):
    store, pages, (_, q2) = arena
    majority = query(select(store, ExportOptions(rule="all")), q2)
    assert names(pages, majority.positives) == ["q0"] and majority.positives[0].annotators == ("ann", "bob")
    assert names(pages, majority.negatives) == ["q2", "q3"]  # q1 tie dropped; q2 by 2 votes to 1
    assert majority.negatives[0].annotators == ("ann", "bob")
    agreed = select(store, ExportOptions(rule="all", require_agreement=True))
    assert names(pages, query(agreed, q2).negatives) == ["q3"]  # single-annotator pages stay
    assert agreed.disagreements == 2
    bob = select(store, ExportOptions(rule="all", annotator="bob"))
    assert [q.query_id for q in bob.queries] == [q2]
    assert names(pages, query(bob, q2).positives) == ["q0", "q1"]
    assert names(pages, query(bob, q2).negatives) == ["q2"]


def test_date_range_filter(arena, clock):
    store, pages, (q1, _) = arena
    clock.moment = datetime(2026, 3, 5, 12, 0, tzinfo=timezone.utc)
    store.record_judgment(q1, pages["p2"].content_hash, "ann", NOT_RELEVANT)  # relabel, days later
    store.record_judgment(q1, pages["p7"].content_hash, "ann", NOT_RELEVANT)
    recent = query(select(store, ExportOptions(rule="all", since="2026-03-05")), q1)
    assert names(pages, recent.positives) == [] and names(pages, recent.negatives) == ["p7", "p2"]
    before = query(select(store, ExportOptions(rule="all", until="2026-03-01")), q1)  # as it stood that day
    assert names(pages, before.positives) == ["p2", "p5"]
    assert "p7" not in names(pages, before.negatives)
    assert select(store, ExportOptions(since="2026-04-01")).queries == ()
    assert select(store, ExportOptions(rule="all", since="2026-03-05", until="2026-03-05")).queries  # one whole day


@pytest.mark.parametrize("since, until", [("2026-03-06", "2026-03-05"), ("2026-03-06T00:00", "2026-03-05"),
                                          ("2026-03-05T10:00", "2026-03-05T09:59:59")])
def test_a_date_range_that_ends_before_it_begins_is_refused_with_both_ends_named(since, until):
    with pytest.raises(ValueError) as caught:
        ExportOptions(since=since, until=until)
    assert str(caught.value) == (f"since {since} is not before until {until} (a date until includes that whole day): "
                                 "no judgment can fall between them")


def test_preview_counts(arena):
    store, _, _ = arena
    counts = preview(store, ExportOptions(format="pointwise", rule="either", k=2))
    # q1: 2 positives, negatives p0 (A) p6 (B) p3 (A, B); q2: q0 positive, q2 and q3 hard for both
    assert (counts.queries, counts.positives, counts.hard_negatives, counts.mined_negatives) == (2, 3, 5, 0)
    assert counts.hard_negatives_by_model == {A: 4, B: 4}
    assert counts.rows == 8 and counts.disagreements == 1
    mined = preview(store, ExportOptions(format="flagembedding", rule="either", k=2, include_mined_negatives=True))
    assert (mined.rows, mined.mined_negatives, mined.mined_by_model) == (2, 2, {A: 1, B: 2})
    assert "hard negatives" in counts.describe()
    assert f"    hard for {'Qwen3-VL-Reranker-2B (' + A + ')':<44}4" in counts.describe().splitlines()  # name, and the key of hard_for


def test_a_selection_is_made_again_only_once_the_store_or_what_selects_changed(arena, monkeypatch):
    """The Export tab previews on every change of format and every visit of the tab, and the
    Export click selects what it previews: each selected the whole store anew (0.8 s with 30,000
    judgments, 6 s with 300,000). The format, negatives per row and teacher only shape the file."""
    from reranker import export as export_module

    store, pages, (q1, _) = arena
    made = []
    real_select = export_module.select
    monkeypatch.setattr(export_module, "select", lambda *args: made.append(args[1]) or real_select(*args))
    cache = export_module.SelectionCache()
    options = ExportOptions(format="pointwise", rule="either", k=2)
    first = cache.select(store, options)
    for fmt, per_row, teacher in [("sentence-transformers", 1, None), ("flagembedding", None, B), ("parquet", None, None),
                                  ("pointwise", None, None)]:
        shaped = dataclasses.replace(options, format=fmt, negatives_per_row=per_row, teacher=teacher)
        selection = cache.select(store, shaped)
        assert selection == first and selection.options == shaped  # the counts and the file follow the format asked
        assert summarize(selection).format == fmt
    assert made == [options]
    assert cache.select(store, dataclasses.replace(options, k=3)).options.k == 3 and len(made) == 2
    store.record_judgment(q1, pages["p7"].content_hash, "ann", RELEVANT)
    after = cache.select(store, options)
    assert len(made) == 3 and after != first and after == real_select(store, options)


# ---------------------------------------------------------------------------------------------
# Formats


def load_zip_dataset(path: Path, cache: Path) -> datasets.Dataset:
    return datasets.load_dataset("imagefolder", data_files=str(path), split="train", cache_dir=str(cache))


def check_members(path: Path) -> list[str]:
    with zipfile.ZipFile(path) as archive:
        members = archive.namelist()
        assert archive.testzip() is None
    for name in members:
        assert re.fullmatch(r"[a-z_]+\.jsonl?|images/[0-9a-f]{64}\.png", name), name
    return members


def test_pointwise_zip_loads_with_imagefolder_and_keeps_pixels(arena, tmp_path):
    store, pages, (q1, q2) = arena
    out = export(store, ExportOptions(format="pointwise", rule="either", k=2), tmp_path / "pointwise.zip")
    members = check_members(out)
    assert members[:2] == ["export.json", "metadata.jsonl"]
    rows = load_zip_dataset(out, tmp_path / "cache")
    assert len(rows) == 8
    assert rows.column_names[:4] == ["image", "query_id", "query", "instruction"]
    by_hash = {p.content_hash: p for p in pages.values()}
    for row in rows:
        assert row["image"].tobytes() == by_hash[row["page_hash"]].image.tobytes()
        assert row["label"] == (row["judgment"] == RELEVANT)
        assert set(row["scores"]) == {A, B} and set(row["ranks"]) == {A, B}
    first = rows[0]
    assert (first["query_id"], first["query"], first["instruction"], first["source"]) == (
        q1,
        "what was the 2024 revenue?",
        None,
        "annual report.pdf",
    )
    assert first["scores"] == {A: 0.8, B: 0.3} and first["ranks"] == {A: 3, B: 6} and first["annotators"] == ["ann"]
    assert rows.filter(lambda r: r["query_id"] == q2)[0]["instruction"] == "Find slides."


def test_one_models_ranks_choose_the_negatives_and_every_models_scores_stay(arena, tmp_path):
    """`--model B` chose negatives by B's ranks and also dropped A's scores from every format: a
    researcher keeping A's scores for analysis, or as the teacher, lost them unasked."""
    store, pages, (q1, _) = arena
    options = dict(rule="top_k", k=2, models=(B,))
    out = export(store, ExportOptions(format="pointwise", **options), tmp_path / "only-b.zip")
    with zipfile.ZipFile(out) as archive:
        assert json.loads(archive.read("export.json"))["models"] == [A, B]  # the score columns
        rows = [json.loads(line) for line in archive.read("metadata.jsonl").splitlines()]
    negatives = [r for r in rows if r["query_id"] == q1 and r["judgment"] == NOT_RELEVANT]
    assert [r["page_hash"] for r in negatives] == [pages["p6"].content_hash]  # B's top 2 only
    assert all(set(r["scores"]) == {A, B} and set(r["ranks"]) == {A, B} for r in rows)
    flag = export(store, ExportOptions(format="flagembedding", teacher=A, **options), tmp_path / "flag.zip")
    with zipfile.ZipFile(flag) as archive:
        assert {json.loads(line)["teacher"] for line in archive.read("train.jsonl").splitlines()} == {A}


def test_sentence_transformers_layout(arena, tmp_path):
    store, pages, _ = arena
    out = export(store, ExportOptions(format="sentence-transformers", rule="either", k=2), tmp_path / "st.zip")
    check_members(out)
    rows = load_zip_dataset(out, tmp_path / "cache")
    # MultipleNegativesRankingLoss reads the columns in order: anchor, positive, negatives.
    n = 2  # the fewest negatives any query has (q2: q2, q3)
    assert rows.column_names == ["anchor", "positive"] + [f"negative_{i}" for i in range(1, n + 1)]
    assert isinstance(rows.features["anchor"], datasets.Value)
    assert all(isinstance(rows.features[c], datasets.Image) for c in rows.column_names[1:])
    # One row per positive. q2's row comes second: the first with an instruction (`_typed_first`).
    assert rows["anchor"] == ["what was the 2024 revenue?", "slide about hiring", "what was the 2024 revenue?"]
    by_hash = {p.content_hash: n for n, p in pages.items()}
    pixels = {p.image.tobytes(): n for n, p in pages.items()}
    assert [pixels[r["positive"].tobytes()] for r in rows] == ["p2", "q0", "p5"]
    assert [pixels[rows[0][f"negative_{i}"].tobytes()] for i in (1, 2)] == ["p0", "p6"]  # hardest first
    with zipfile.ZipFile(out) as archive:
        details = [json.loads(line) for line in archive.read("details.jsonl").splitlines()]
    assert len(details) == len(rows)  # row for row
    assert [by_hash[d["positive"]["page_hash"]] for d in details] == ["p2", "q0", "p5"]
    assert details[1]["instruction"] == "Find slides." and details[1]["negatives"][0]["scores"] == {A: 0.9, B: 0.7}


def test_the_preview_says_how_many_negatives_each_sentence_transformers_row_holds(arena):
    store, _, _ = arena
    fewest = preview(store, ExportOptions(format="sentence-transformers", rule="either", k=2))
    assert (fewest.queries, fewest.rows, fewest.negatives_per_row) == (2, 3, 2)  # q2 has 2 negatives, q1 3
    assert ("  negatives/row   2 (the fewest any query has; ask for more per row and the queries with fewer are "
            "skipped)") in fewest.describe().splitlines()
    asked = preview(store, ExportOptions(format="sentence-transformers", rule="either", k=2, negatives_per_row=3))
    assert (asked.queries, asked.rows, asked.negatives_per_row, asked.skipped_queries) == (1, 2, 3, 1)
    assert "  negatives/row   3 (as asked: queries with fewer are skipped)" in asked.describe().splitlines()
    assert "negatives/row" not in preview(store, ExportOptions(format="flagembedding", rule="either", k=2)).describe()


def test_flagembedding_jsonl(arena, tmp_path):
    store, pages, (q1, _) = arena
    options = ExportOptions(format="flagembedding", rule="either", k=2, include_mined_negatives=True)
    out = export(
        store, options, tmp_path / "flag.zip", prompt_for=lambda q, i: f"<Instruct>: {i or 'default'}<Query>:{q}"
    )
    check_members(out)
    extracted = tmp_path / "extracted"
    with zipfile.ZipFile(out) as archive:
        archive.extractall(extracted)
    rows = datasets.load_dataset(
        "json", data_files=str(extracted / "train.jsonl"), split="train", cache_dir=str(tmp_path / "cache")
    )
    assert rows.column_names[:6] == ["query", "pos", "neg", "pos_scores", "neg_scores", "prompt"]
    first = rows[0]
    assert first["query"] == "what was the 2024 revenue?" and first["query_id"] == q1
    assert first["prompt"] == "<Instruct>: default<Query>:what was the 2024 revenue?"
    assert rows[1]["prompt"] == "<Instruct>: Find slides.<Query>:slide about hiring"
    by_path = {f"images/{p.content_hash}.png": n for n, p in pages.items()}
    assert [by_path[p] for p in first["pos"]] == ["p2", "p5"]
    assert [by_path[p] for p in first["neg"]] == ["p0", "p6", "p3", "p7", "p1"]
    assert first["teacher"] == A  # model A unless asked; its scores fill pos_scores / neg_scores
    # The teacher's log-odds, ln(p / (1 − p)): FlagEmbedding softmaxes a row's scores as raw logits.
    assert first["pos_scores"] == pytest.approx([math.log(0.8 / 0.2), 0.0])
    assert first["neg_scores"] == pytest.approx([math.log(0.95 / 0.05), math.log(0.4 / 0.6), math.log(0.7 / 0.3),
                                                 math.log(0.3 / 0.7), math.log(0.9 / 0.1)])
    assert [d["scores"][A] for d in first["neg_details"]] == [0.95, 0.4, 0.7, 0.3, 0.9]  # P(yes) stays in the details
    assert first["teacher_prompt"] == render_prompt(MODELS[A], "what was the 2024 revenue?", None)
    assert [d["mined"] for d in first["neg_details"]] == [False, False, False, True, True]
    assert first["neg_details"][0]["ranks"] == {A: 1, B: 7}
    for path, name in by_path.items():
        if path in first["pos"] + first["neg"]:
            assert Image.open(extracted / path).tobytes() == pages[name].image.tobytes()


@pytest.mark.parametrize("fmt, member", [("pointwise", "metadata.jsonl"), ("sentence-transformers", "details.jsonl"),
                                         ("flagembedding", "train.jsonl")])
def test_json_lines_load_whole_when_the_early_rows_leave_fields_empty(tmp_path, clock, fmt, member):
    """`datasets` types each column from the first 10 MB of a JSON Lines file: past ~20,000 rows
    with no instruction and only model A's scores, the instruction and B's scores were typed null
    and loading failed at the first value. Read here in 16 kB chunks, so 30 queries stand for that."""
    store = Store(tmp_path / "arena.db")
    pages = make_pages([f"p{i}" for i in range(4)], "doc.pdf", seed=5)
    for number in range(31):  # the early queries: no instruction, B had not scored them
        late = number == 30
        scores = {A: [0.9, 0.7, 0.5, 0.3], **({B: [0.2, 0.4, 0.6, 0.8]} if late else {})}
        query_id = store.save_ranking(f"question {number}", "Find the table." if late else None, list(pages.values()),
                                      scores=scores, settings={m: {} for m in scores})
        for name, label in (("p0", RELEVANT), ("p1", NOT_RELEVANT), ("p2", NOT_RELEVANT)):
            store.record_judgment(query_id, pages[name].content_hash, "ann", label)
    out = export(store, ExportOptions(format=fmt, rule="all"), tmp_path / "export.zip")
    extracted = tmp_path / "extracted"
    with zipfile.ZipFile(out) as archive:
        archive.extract(member, extracted)
        written = [json.loads(line) for line in archive.read(member).splitlines()]
        metadata = [json.loads(line) for line in archive.read("metadata.jsonl").splitlines()] if member == "details.jsonl" else []
    rows = datasets.load_dataset("json", data_files=str(extracted / member), split="train", chunksize=16 << 10,
                                 cache_dir=str(tmp_path / "cache"))
    assert rows.to_list() == [{key: row.get(key) for key in rows.column_names} for row in written]
    instructions = rows["instruction"]
    assert rows.features["instruction"] == datasets.Value("string") and instructions.count("Find the table.") == len(rows) // 31
    if fmt == "pointwise":
        assert rows.features["scores"][B] == datasets.Value("float64")
        assert sorted(map(json.dumps, written)) == sorted(map(json.dumps, _pointwise_rows_of(store)))  # every row, once
    if metadata:  # metadata.jsonl and details.jsonl still line up row for row
        assert [m["positive_file_name"] for m in metadata] == [f"images/{d['positive']['page_hash']}.png" for d in written]
    store.close()


def _pointwise_rows_of(store: Store) -> list[dict]:
    """The pointwise rows in query order, as the export made them before any reordering."""
    from reranker.export import _pointwise_rows, _usable

    options = ExportOptions(format="pointwise", rule="all")
    selection = select(store, options)
    return [{"file_name": f"images/{r['page_hash']}.png", **r}
            for r in _pointwise_rows(_usable(selection, options)[0], selection.score_columns)]


def test_parquet_loads_with_image_feature(arena, tmp_path):
    store, pages, _ = arena
    out = export(store, ExportOptions(format="parquet", rule="top_k", k=2), tmp_path / "train.parquet")
    rows = datasets.load_dataset("parquet", data_files=str(out), split="train", cache_dir=str(tmp_path / "cache"))
    assert isinstance(rows.features["image"], datasets.Image)
    assert len(rows) == 3 + 2 + 2  # 3 positives; q1 negatives p0, p6; q2 negatives q2, q3 (B ranks 1, 2)
    by_hash = {p.content_hash: p for p in pages.values()}
    for row in rows:
        assert row["image"].tobytes() == by_hash[row["page_hash"]].image.tobytes()
    assert rows[2]["judgment"] == NOT_RELEVANT and rows[2]["hard_for"] == [A] and rows[2]["scores"][A] == 0.95
    # What a zip's export.json says travels in the file's schema metadata.
    import pyarrow.parquet as pq

    from reranker.export import PARQUET_MANIFEST_KEY

    store.save_guidelines("Relevant: the page alone answers.", "lead")
    out = export(store, ExportOptions(format="parquet", rule="top_k", k=2), tmp_path / "with-guidelines.parquet")
    manifest = json.loads(pq.read_schema(out).metadata[PARQUET_MANIFEST_KEY])
    assert manifest["options"]["k"] == 2 and manifest["counts"]["rows"] == 7
    assert manifest["guidelines"]["text"] == "Relevant: the page alone answers."


def test_every_export_has_a_score_column_for_each_model_whichever_scored(tmp_path):
    """An export made while only model A had scored anything has B's columns too, empty: Parquet
    files (and JSON Lines) from before and after B scored share one schema, so they concatenate."""
    import pyarrow.parquet as pq

    store = Store(tmp_path / "arena.db")
    pages = make_pages(["x", "y"], "doc.pdf", seed=6)

    def judged_query(text: str, scores: dict[str, list[float]]) -> None:
        query_id = store.save_ranking(text, None, list(pages.values()), scores=scores, settings={m: {} for m in scores})
        store.record_judgment(query_id, pages["x"].content_hash, "ann", RELEVANT)
        store.record_judgment(query_id, pages["y"].content_hash, "ann", NOT_RELEVANT)

    judged_query("only A so far", {A: [0.9, 0.4]})
    before = export(store, ExportOptions(format="parquet", rule="all"), tmp_path / "before.parquet")
    rows = pq.read_table(before).to_pylist()
    assert [row["scores"] for row in rows] == [{A: 0.9, B: None}, {A: 0.4, B: None}]
    assert [row["ranks"] for row in rows] == [{A: 1, B: None}, {A: 2, B: None}]
    with zipfile.ZipFile(export(store, ExportOptions(format="pointwise", rule="all"), tmp_path / "p.zip")) as archive:
        assert json.loads(archive.read("metadata.jsonl").splitlines()[0])["scores"] == {A: 0.9, B: None}
        assert json.loads(archive.read("export.json"))["models"] == [A, B]
    with pytest.raises(ValueError, match=f"teacher '{B}' has no scores here; models with scores: {A}$"):
        export(store, ExportOptions(format="flagembedding", rule="all", teacher=B), tmp_path / "flag.zip")

    judged_query("both now", {A: [0.8, 0.3], B: [0.7, 0.2]})
    after = export(store, ExportOptions(format="parquet", rule="all"), tmp_path / "after.parquet")
    assert pq.read_schema(after).remove_metadata() == pq.read_schema(before).remove_metadata()
    both = datasets.concatenate_datasets([datasets.Dataset.from_parquet(str(path), cache_dir=str(tmp_path / "cache"))
                                          for path in (before, after)])
    assert both["scores"][-1] == {A: 0.3, B: 0.2} and both["scores"][0] == {A: 0.9, B: None}
    store.close()


@pytest.mark.parametrize("fmt", FORMATS)
def test_same_database_and_options_give_identical_bytes(arena, tmp_path, fmt):
    store, _, _ = arena
    options = ExportOptions(format=fmt, rule="either", k=2, include_mined_negatives=True)
    suffix = ".parquet" if fmt == "parquet" else ".zip"
    first = export(store, options, tmp_path / f"one{suffix}").read_bytes()
    second = export(store, options, tmp_path / "again" / f"two{suffix}").read_bytes()
    assert first == second
    assert not list(tmp_path.rglob("*.partial"))


@pytest.mark.parametrize("fmt", FORMATS)
def test_an_export_of_a_selection_made_before_writes_it_and_the_same_bytes(arena, tmp_path, fmt):
    """The app's Export click selects once, for its preview, and writes that selection: a judgment
    made between the two is not in the file (whose counts the preview showed); a selection made
    under other options is refused."""
    store, pages, (q1, _) = arena
    options = ExportOptions(format=fmt, rule="either", k=2, include_mined_negatives=True)
    suffix = ".parquet" if fmt == "parquet" else ".zip"
    selection = select(store, options)
    fresh = export(store, options, tmp_path / f"fresh{suffix}").read_bytes()
    store.record_judgment(q1, pages["p7"].content_hash, "ann", RELEVANT)  # after the preview
    assert export(store, options, tmp_path / "before" / f"file{suffix}", selection=selection).read_bytes() == fresh
    assert export(store, options, tmp_path / "now" / f"file{suffix}").read_bytes() != fresh
    other = dataclasses.replace(options, k=3)
    with pytest.raises(ValueError, match="this selection was made under other options"):
        export(store, other, tmp_path / "other" / f"file{suffix}", selection=selection)
    assert not (tmp_path / "other").exists() or not list((tmp_path / "other").iterdir())


@pytest.mark.parametrize("fmt", ["pointwise", "sentence-transformers", "flagembedding"])
def test_nasty_names_stay_inside_the_archive(tmp_path, clock, fmt):
    long_query = "€ñ/../" * 100  # 500 characters with slashes and dots
    nasty = ["../../etc/passwd.pdf", "/abs/olute.png", "ünï çødé 文档.pdf", "a\\b\nc.pdf", "x" * 300 + ".pdf"]
    with Store(tmp_path / "arena.db") as store:
        for qi, query_text in enumerate([long_query, "../../", "正常な質問"]):
            pages = []
            for source in nasty:
                page = make_pages(["one"], source, seed=100 * qi + len(pages))["one"]
                pages.append(page)
            query_id = store.save_ranking(query_text, "../" * 50, pages, scores={A: [0.9, 0.8, 0.7, 0.6, 0.5]})
            store.record_judgment(query_id, pages[0].content_hash, "../../root", RELEVANT)
            store.record_judgment(query_id, pages[1].content_hash, "ánnø/tätor", NOT_RELEVANT)
        out = export(store, ExportOptions(format=fmt, k=2), tmp_path / "out" / "nasty.zip")
    members = check_members(out)
    assert all(".." not in m and not m.startswith("/") and len(m) < 80 for m in members)
    target = tmp_path / "unpacked"
    with zipfile.ZipFile(out) as archive:
        archive.extractall(target)
        data = b"".join(archive.read(m) for m in members if m.endswith(".jsonl")).decode()
    assert all(path.resolve().is_relative_to(target.resolve()) for path in target.rglob("*"))
    assert "../../etc/passwd.pdf" in data  # human names live in data rows only
    assert json.dumps(long_query, ensure_ascii=False)[1:-1] in data


def test_nothing_to_export_is_an_error_not_an_empty_file(tmp_path, clock):
    with Store(tmp_path / "arena.db") as store:
        out = tmp_path / "empty.zip"
        with pytest.raises(NothingToExportError, match="no judgments"):
            export(store, ExportOptions(), out)
        pages = list(make_pages(["a", "b"], "doc.pdf", seed=3).values())
        query_id = store.save_ranking("q", None, pages, scores={A: [0.9, 0.1]})
        store.record_judgment(query_id, pages[0].content_hash, "ann", RELEVANT)
        with pytest.raises(NothingToExportError, match="sentence-transformers format needs"):
            export(store, ExportOptions(format="sentence-transformers"), out)
        with pytest.raises(ValueError, match=r"^no judgments by 'someone' \(annotators: ann\)$"):  # a typo: say who there is
            export(store, ExportOptions(annotator="someone"), out)
        with pytest.raises(NothingToExportError, match="annotator=ann, since=2030-01-01"):
            export(store, ExportOptions(annotator="ann", since="2030-01-01"), out)
        assert not out.exists() and not list(tmp_path.glob("*.partial"))
        assert export(store, ExportOptions(), out).exists()  # a positive alone is a pointwise row


def test_an_export_never_writes_over_the_database_or_another_sqlite_file(arena, tmp_path, capsys):
    """`--out arena.db` (a slip of the fingers) replaced every judgment with a zip."""
    store, _, _ = arena
    db = store.path
    before = db.read_bytes()
    with pytest.raises(ValueError, match=r"is the database being read"):
        export(store, ExportOptions(), db)
    other = tmp_path / "other.zip"
    Store(other).close()  # a database with an export's name
    code = cli_main(["export", "--db", str(db), "--format", "pointwise", "--out", str(other)])
    assert code == 1 and f"--out {other} is a SQLite database, which this would replace" in capsys.readouterr().err
    folder = tmp_path / "a-folder.zip"
    folder.mkdir()
    assert cli_main(["export", "--db", str(db), "--format", "pointwise", "--out", str(folder)]) == 1
    assert f"--out {folder} is a folder" in capsys.readouterr().err
    # A folder without an export's suffix is named as a folder too, and "" (the current folder)
    # was a Python message ("PosixPath('.') has an empty name").
    for out, named in ((tmp_path, tmp_path), ("", ".")):
        assert cli_main(["export", "--db", str(db), "--format", "pointwise", "--out", str(out)]) == 1
        assert f"--out {named} is a folder; give a file name" in capsys.readouterr().err
    assert db.read_bytes() == before and other.read_bytes()[:16] == b"SQLite format 3\x00"


def test_exports_written_to_one_file_at_once_each_leave_a_whole_file(arena, tmp_path, monkeypatch):
    """Both used to write `<out>.partial`: a second run overwrote the first one's half-written
    zip and renamed it away, and the first then failed (or renamed a half-written zip)."""
    from reranker import export as export_module

    store, _, _ = arena
    out = tmp_path / "exports" / "same.zip"
    write_zip = export_module._write_zip

    def second_export_meanwhile(path, *args):
        write_zip(path, *args)
        monkeypatch.setattr(export_module, "_write_zip", write_zip)
        export(store, ExportOptions(), out)  # another run, to the same file, while this one is unfinished

    monkeypatch.setattr(export_module, "_write_zip", second_export_meanwhile)
    export(store, ExportOptions(include_mined_negatives=True), out)
    with zipfile.ZipFile(out) as archive:
        assert archive.testzip() is None
        assert json.loads(archive.read("export.json"))["options"]["include_mined_negatives"]  # the last to finish
    assert [path.name for path in out.parent.iterdir()] == ["same.zip"]


def test_an_annotator_named_in_another_capitalisation_is_the_same_annotator(arena, tmp_path):
    store, _, _ = arena
    as_judged = select(store, ExportOptions(rule="all", annotator="bob"))
    shouted = select(store, ExportOptions(rule="all", annotator="BOB"))
    assert shouted == as_judged and shouted.queries
    # A blank name is everyone, as none is (it was '' and refused: "no judgments by ''").
    assert select(store, ExportOptions(rule="all", annotator="  ")) == select(store, ExportOptions(rule="all"))


def test_options_are_validated():
    with pytest.raises(ValueError, match="format"):
        ExportOptions(format="csv")
    with pytest.raises(ValueError, match="rule"):
        ExportOptions(rule="random")
    with pytest.raises(ValueError):
        ExportOptions(k=0)


# ---------------------------------------------------------------------------------------------
# Command line


def test_cli_export_end_to_end(arena, tmp_path, capsys):
    store, _, _ = arena
    db = str(store.path)
    out = tmp_path / "cli" / "train.zip"
    code = cli_main(
        ["export", "--db", db, "--format", "flagembedding", "--out", str(out), "--k", "2", "--rule", "top_k"]
    )
    printed = capsys.readouterr().out
    assert code == 0 and out.exists()
    assert "flagembedding: 2 rows from 2 queries" in printed and f"wrote {out}" in printed and A in printed

    code = cli_main(
        ["export", "--db", db, "--format", "pointwise", "--out", str(tmp_path / "x.zip"), "--annotator", "nobody"]
    )
    captured = capsys.readouterr()
    assert code == 1 and "no judgments by 'nobody' (annotators: ann, bob, cat)" in captured.err
    assert not (tmp_path / "x.zip").exists()

    code = cli_main(
        [
            "export",
            "--db",
            db,
            "--format",
            "parquet",
            "--out",
            str(tmp_path / "p.parquet"),
            "--agreement",
            "--mined",
            "--since",
            "2026-03-01",
            "--until",
            "2026-03-01T23:00:00",
            "--max-negatives",
            "1",
            "--preview",
        ]
    )
    assert code == 0 and "parquet:" in capsys.readouterr().out and not (tmp_path / "p.parquet").exists()

    assert cli_main(["export", "--db", str(tmp_path / "missing.db"), "--format", "parquet", "--out", "x"]) == 1
    assert "no database" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        cli_main(["export", "--help"])
    assert exit_info.value.code == 0 and "--max-negatives" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        cli_main(["export", "--db", db, "--format", "pointwise", "--out", "x", "--since", "yesterday"])


def test_exported_zip_can_be_read_without_datasets(arena, tmp_path):
    """A trainer that only has the zip: every file_name resolves to a PNG inside it."""
    store, _, _ = arena
    assert json.loads(zipfile.ZipFile(export(store, ExportOptions(), tmp_path / "first.zip")).read("export.json"))["guidelines"] is None
    store.save_guidelines("Relevant: the page alone answers.", "lead")
    out = export(store, ExportOptions(format="pointwise", rule="all"), tmp_path / "p.zip")
    with zipfile.ZipFile(out) as archive:
        manifest = json.loads(archive.read("export.json"))
        assert manifest["options"]["rule"] == "all" and manifest["models"] == [A, B]
        # The guidelines the labels were made under travel with them.
        assert (manifest["guidelines"]["text"], manifest["guidelines"]["author"]) == ("Relevant: the page alone answers.", "lead")
        for line in archive.read("metadata.jsonl").splitlines():
            row = json.loads(line)
            Image.open(io.BytesIO(archive.read(row["file_name"]))).verify()


def test_an_undo_during_an_export_cannot_split_a_label(arena, monkeypatch):
    """The export reads the database in several steps; an annotator's undo between two of them
    must not make a page both a positive and a mined negative (it reads one snapshot)."""
    store, pages, (q1, _) = arena
    store.record_judgment(q1, pages["p7"].content_hash, "ann", RELEVANT)  # p7 is mined while unjudged
    reads = []
    real = Store.current_judgments

    def then_undo(self, **filters):
        result = real(self, **filters)
        reads.append(filters)
        if len(reads) == 1:  # right after the export's first read, another process undoes
            with Store(store.path) as other:
                assert other.undo(q1, "ann").page_hash == pages["p7"].content_hash
        return result

    monkeypatch.setattr(Store, "current_judgments", then_undo)
    selection = select(store, ExportOptions(rule="either", k=2, include_mined_negatives=True))
    assert len(reads) > 1
    q1_examples = query(selection, q1)
    assert pages["p7"].content_hash in {e.page_hash for e in q1_examples.positives}  # as at the export's start
    for examples in selection.queries:
        positives = {e.page_hash for e in examples.positives}
        assert not positives & {e.page_hash for e in examples.negatives}


def test_flagembedding_takes_each_querys_scores_from_a_model_that_scored_it(tmp_path):
    """A ranking saved while one model had failed has the other model's scores only: its row
    uses that model (named in `teacher`), never null scores. An unknown teacher is refused."""
    store = Store(tmp_path / "arena.db")
    pages = make_pages(["a0", "a1", "b0", "b1"], "doc.pdf", seed=3)
    only_a = store.save_ranking("only A scored", None, [pages["a0"], pages["a1"]], scores={A: [0.9, 0.2]}, settings={A: {}})
    only_b = store.save_ranking("only B scored", None, [pages["b0"], pages["b1"]], scores={B: [0.8, 0.1]}, settings={B: {}})
    for query_id, positive, negative in ((only_a, "a0", "a1"), (only_b, "b0", "b1")):
        store.record_judgment(query_id, pages[positive].content_hash, "ann", RELEVANT)
        store.record_judgment(query_id, pages[negative].content_hash, "ann", NOT_RELEVANT)

    def rows(**options):
        out = export(store, ExportOptions(format="flagembedding", rule="all", **options), tmp_path / "flag.zip")
        with zipfile.ZipFile(out) as archive:
            return {row["query"]: row for row in map(json.loads, archive.read("train.jsonl").splitlines())}

    for teacher in (None, A, B):
        by_query = rows(teacher=teacher)
        assert by_query["only A scored"]["teacher"] == A
        assert by_query["only A scored"]["pos_scores"] == pytest.approx([math.log(9)])
        assert by_query["only B scored"]["teacher"] == B
        assert by_query["only B scored"]["neg_scores"] == pytest.approx([-math.log(9)])
        # FlagEmbedding's "prompt" is the question it appends after query and passage (absent: its
        # default); the teacher's whole chat prompt is "teacher_prompt"
        assert "prompt" not in by_query["only A scored"] and "prompt" not in by_query["only B scored"]
        assert by_query["only B scored"]["teacher_prompt"] == render_prompt(MODELS[B], "only B scored")
    with pytest.raises(ValueError, match="teacher 'qwen-typo' has no scores here"):
        rows(teacher="qwen-typo")
    store.close()


def test_the_preview_names_rows_a_trainer_would_trip_on(tmp_path, clock):
    """FlagEmbedding rows no model scored whole carry no pos_scores (distillation asserts on
    them), and a question asked with and without an instruction gives rows with the same anchor
    whose labels contradict: the preview counts both, and says what max negatives 0 rules out."""
    store = Store(tmp_path / "arena.db")
    pages = make_pages(["x", "y", "z", "w"], "doc.pdf", seed=4)
    plain = store.save_ranking("revenue?", None, [pages["x"], pages["y"]], scores={A: [0.9, 0.8]}, settings={A: {}})
    instructed = store.save_ranking("revenue?", "Annual report only.", [pages["x"], pages["y"]], scores={A: [0.7, 0.6]},
                                    settings={A: {}})
    mixed = store.save_ranking("mixed", None, [pages["z"]], scores={A: [0.5]}, settings={A: {}})
    store.save_ranking("mixed", None, [pages["w"]], scores={B: [0.4]}, settings={B: {}})  # another upload, B only
    for query_id, positive, negative in ((plain, "x", "y"), (instructed, "y", "x"), (mixed, "z", "w")):
        store.record_judgment(query_id, pages[positive].content_hash, "Ann", RELEVANT)
        store.record_judgment(query_id, pages[negative].content_hash, "Ann", NOT_RELEVANT)

    flag = preview(store, ExportOptions(format="flagembedding", rule="all"))
    assert (flag.rows, flag.without_teacher, flag.instruction_twins) == (3, 1, 2)
    lines = flag.describe().splitlines()
    assert ("  no scores       1 row without pos_scores/neg_scores (no model scored all of the query's pages); "
            "leave them out to distil") in lines
    assert ("  same text       2 queries share their text with one asked under another instruction: their rows hold "
            "the same query, their labels may differ (the instruction is in the instruction column)") in lines
    assert lines[2] == "  negatives       3 (rule 'all': every judged one; those ranked high:)"
    sentence = preview(store, ExportOptions(format="sentence-transformers", rule="all"))
    assert (sentence.without_teacher, sentence.instruction_twins) == (0, 2)
    assert "(the instruction is in details.jsonl)" in sentence.describe()
    pointwise = preview(store, ExportOptions(format="pointwise", rule="all"))  # the instruction is a column there
    assert (pointwise.without_teacher, pointwise.instruction_twins) == (0, 0)
    assert "  hard negatives  " in preview(store, ExportOptions(format="pointwise")).describe()

    out = export(store, ExportOptions(format="flagembedding", rule="all", annotator="ANN"), tmp_path / "flag.zip")
    with zipfile.ZipFile(out) as archive:
        manifest = json.loads(archive.read("export.json"))
        rows = {(row["query"], row["instruction"]): row for row in map(json.loads, archive.read("train.jsonl").splitlines())}
    assert manifest["options"]["annotator"] == "Ann"  # as stored, not as typed
    assert manifest["counts"]["without_teacher"] == 1 and "pos_scores" not in rows[("mixed", None)]
    for fmt in ("sentence-transformers", "flagembedding"):
        with pytest.raises(NothingToExportError, match=f"the {fmt} format needs at least one negative a query, and "
                           r"max negatives is 0 \(positives only: the pointwise or parquet format\)"):
            export(store, ExportOptions(format=fmt, max_negatives=0), tmp_path / "none.zip")
    store.close()


# ----- filters never contradict the team's labels ----------------------------------------------
def one_query(tmp_path: Path, count: int, scores: list[float]) -> tuple[Store, int, list[str]]:
    store = Store(tmp_path / "filters.db")
    pages = make_pages([f"p{i}" for i in range(count)], "doc.pdf", seed=7)
    query_id = store.save_ranking("q", None, list(pages.values()), scores={A: scores}, settings={A: {}})
    return store, query_id, [page.content_hash for page in pages.values()]


def test_an_export_as_of_a_date_never_mines_a_page_labelled_then(tmp_path, clock):
    """Relevant on 1 March, undone on 10 March: exported `until` 5 March with mined negatives,
    the page is a positive, not also a mined negative (nor is a page mined twice)."""
    store, query_id, hashes = one_query(tmp_path, 4, [0.9, 0.8, 0.7, 0.1])
    store.record_judgment(query_id, hashes[0], "ann", RELEVANT)
    store.record_judgment(query_id, hashes[1], "ann", RELEVANT)
    store.record_judgment(query_id, hashes[3], "ann", NOT_RELEVANT)
    clock.moment = datetime(2026, 3, 10, tzinfo=timezone.utc)
    store.undo(query_id, "ann")
    store.undo(query_id, "ann")
    (selected,) = select(store, ExportOptions(until="2026-03-05", include_mined_negatives=True, rule="all")).queries
    positives = [e.page_hash for e in selected.positives]
    negatives = [(e.page_hash, e.label) for e in selected.negatives]
    assert positives == [hashes[0], hashes[1]]
    assert negatives == [(hashes[3], NOT_RELEVANT), (hashes[2], MINED)]


def test_filtered_exports_drop_a_page_the_whole_team_labels_the_other_way(tmp_path, clock):
    """ann and bob call p0 relevant on 1 March; cid calls it not relevant on 10 March. An export
    of labels `since` 5 March, or of cid's alone, must not make p0 a negative."""
    store, query_id, hashes = one_query(tmp_path, 3, [0.9, 0.8, 0.1])
    for who in ("ann", "bob"):
        store.record_judgment(query_id, hashes[0], who, RELEVANT)
    store.record_judgment(query_id, hashes[2], "ann", RELEVANT)
    clock.moment = datetime(2026, 3, 10, tzinfo=timezone.utc)
    store.record_judgment(query_id, hashes[0], "cid", NOT_RELEVANT)
    store.record_judgment(query_id, hashes[1], "cid", NOT_RELEVANT)
    for options in (ExportOptions(since="2026-03-05", rule="all"), ExportOptions(annotator="cid", rule="all")):
        selection = select(store, options)
        (selected,) = selection.queries
        assert [e.page_hash for e in selected.negatives] == [hashes[1]] and not selected.positives
        assert selection.disagreements == 1
    # With --agreement, one dissenting voice anywhere drops the page, whatever the filters keep.
    store.record_judgment(query_id, hashes[2], "cid", NOT_RELEVANT)
    selection = select(store, ExportOptions(annotator="ann", rule="all", require_agreement=True))
    assert selection.queries == () and selection.disagreements == 2


@pytest.mark.parametrize("written", ["2026-03-01", "20260301"])
def test_dates_may_be_written_either_iso_way(arena, written):
    store, _, _ = arena
    whole_day = select(store, ExportOptions(until=date(2026, 3, 1)))
    assert whole_day.judgments > 0 and select(store, ExportOptions(until=written)) == whole_day


@pytest.mark.parametrize("flag, value, rule", [("--k", "0", "a whole number of at least 1"),
                                               ("--max-negatives", "-1", "a whole number of at least 0"),
                                               ("--negatives-per-row", "0", "a whole number of at least 1"),
                                               ("--k", "two", "a whole number of at least 1")])
def test_cli_export_names_a_bad_number_option(tmp_path, capsys, flag, value, rule):
    with pytest.raises(SystemExit) as exited:
        cli_main(["export", "--db", str(tmp_path / "arena.db"), "--out", str(tmp_path / "x.zip"), flag, value])
    assert exited.value.code == 2
    assert f"argument {flag}: must be {rule}, not '{value}'" in capsys.readouterr().err
    assert not (tmp_path / "arena.db").exists()


def test_cli_export_refuses_dates_that_leave_nothing_between_them_as_a_usage_error(arena, tmp_path, capsys):
    """`--since` on or after `--until` is options that do not go together: exit 2, as every
    other usage error (it exited 1, "could not do what was asked")."""
    store, _, _ = arena
    code = cli_main(["export", "--db", str(store.path), "--format", "pointwise", "--preview", "--since", "2026-03-02",
                     "--until", "2026-03-01"])
    assert code == 2 and "since 2026-03-02 is not before until 2026-03-01" in capsys.readouterr().err


def test_an_export_file_is_named_by_its_format_and_when_it_was_made():
    """Every export was `arena-pointwise.zip`: a downloads folder filled with `(1)`, `(2)`, …"""
    from reranker.export import default_filename

    moment = datetime(2026, 3, 1, 11, 5, 7, tzinfo=timezone(timedelta(hours=2)))
    assert default_filename(ExportOptions(format="parquet"), moment) == "arena-parquet-20260301T090507Z.parquet"
    assert re.fullmatch(r"arena-flagembedding-\d{8}T\d{6}Z\.zip", default_filename(ExportOptions(format="flagembedding")))


def test_teacher_scores_are_log_odds_and_a_saturated_probability_stays_finite():
    """P(yes) of exactly 1 or 0 (float32 saturates past a logit gap of ~16.6) has no finite
    log-odds: it is taken as the largest float32 probability below 1 gives, so the JSON holds
    numbers (json.dumps would write Infinity, which JSON readers refuse)."""
    from reranker.export import log_odds

    assert log_odds(0.5) == 0.0 and log_odds(0.8) == pytest.approx(math.log(4))
    assert log_odds(1.0) == pytest.approx(16.636, abs=1e-3) and log_odds(0.0) == -log_odds(1.0)
    assert log_odds(1.0) == log_odds(1.0 - 2.0**-30)  # beyond float32, the same
    assert 1 / (1 + math.exp(-log_odds(0.73))) == pytest.approx(0.73)  # its sigmoid is P(yes) again
