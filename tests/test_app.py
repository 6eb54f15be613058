"""The launched app through its named API (`gradio_client`), as researchers script it.

One real `python app.py` per module on the tiny random checkpoints (CPU, float32), with its own
database. Scores the app returns are compared with what `load_reranker` computes in this
process for the same pages: both load the same checkpoints through the same code.
"""

from __future__ import annotations

import json
import os
import re
import zipfile
from pathlib import Path

import pytest

from reranker.documents import load_files

from .app_server import SAMPLES, app_server_fixture, sample_pdf

app_server = app_server_fixture()

A, B = "qwen3-vl-reranker-2b", "qwen3-reranker-mm-2b"
QUERY = "Which region of the SUC2 frequency plot leads to extinction?"
IMAGES = [SAMPLES / f"doc_{n}.jpg" for n in (9, 4, 1, 6)]


@pytest.fixture(scope="module")
def client(app_server, tmp_path_factory):
    from gradio_client import Client

    return Client(app_server.url, verbose=False, download_files=str(tmp_path_factory.mktemp("downloads")))


@pytest.fixture(scope="module")
def upload(tmp_path_factory) -> list[Path]:
    """Four sample images and a two-page PDF made from two others: six pages."""
    return [*IMAGES, sample_pdf(tmp_path_factory.mktemp("pdf") / "two pages.pdf", numbers=(0, 3))]


@pytest.fixture(scope="module")
def ranked(client, upload) -> dict:
    """The README's client snippet: files + query, api_name="/rank"."""
    from gradio_client import handle_file

    return client.predict(files=[handle_file(str(path)) for path in upload], query=QUERY, api_name="/rank")


def test_named_endpoints_are_public(client):
    endpoints = client.view_api(return_format="dict", print_info=False)["named_endpoints"]
    assert {"/rank", "/judge", "/undo", "/export", "/evaluate"} <= set(endpoints)
    rank_parameters = [p["parameter_name"] for p in endpoints["/rank"]["parameters"]]
    assert rank_parameters[:2] == ["files", "query"]
    # Everything but files and query is optional for a client.
    assert all(p["parameter_has_default"] for p in endpoints["/rank"]["parameters"][2:])
    assert all(p["parameter_has_default"] for p in endpoints["/export"]["parameters"])
    # Any annotator's name: a list of choices on screen, but the API page said "" (everyone) only.
    annotator = next(p for p in endpoints["/export"]["parameters"] if p["parameter_name"] == "annotator")
    assert annotator["type"] == {"type": "string"}, annotator["type"]


def test_rank_returns_both_rankings_over_every_page(ranked, upload):
    pages = ranked["pages"]
    assert len(pages) == len(IMAGES) + 2
    assert [p["source"] for p in pages] == [path.name for path in IMAGES] + ["two pages.pdf"] * 2
    assert [p["page_number"] for p in pages[-2:]] == [1, 2]
    assert ranked["query"] == QUERY
    assert isinstance(ranked["query_id"], int)
    assert ranked["problems"] == []
    assert set(ranked["models"]) == {A, B}
    for key, model in ranked["models"].items():
        assert model["error"] is None, model["error"]
        assert len(model["scores"]) == len(pages)
        ranking = model["ranking"]
        assert [entry["rank"] for entry in ranking] == list(range(1, len(pages) + 1))
        assert sorted(entry["page"] for entry in ranking) == list(range(len(pages))), "every page exactly once"
        scores = [entry["score"] for entry in ranking]
        assert scores == sorted(scores, reverse=True), f"{key} is not sorted by its own scores"
        for entry in ranking:
            page = pages[entry["page"]]
            assert entry["score"] == model["scores"][entry["page"]]
            assert (entry["content_hash"], entry["source"], entry["page_number"]) == (
                page["content_hash"], page["source"], page["page_number"])
            assert 0.0 <= entry["score"] <= 1.0
    assert ranked["agreement"] is not None and -1.0 <= ranked["agreement"]["kendall_tau"] <= 1.0


def test_rank_scores_equal_direct_scoring(ranked, upload, tiny_rerankers):
    """The app's P(yes) equals load_reranker(...).score(...) on the same pages (CPU float32)."""
    loaded = load_files([str(path) for path in upload])
    assert not loaded.problems
    by_hash = {page.content_hash: page for page in loaded.pages}
    pages = [by_hash[page["content_hash"]] for page in ranked["pages"]]  # the response's page order
    assert [(p.source, p.page_number) for p in pages] == [(p["source"], p["page_number"]) for p in ranked["pages"]]
    for key, reranker in tiny_rerankers.items():
        expected = reranker.score(QUERY, pages)
        got = ranked["models"][key]["scores"]
        assert got == pytest.approx(expected, abs=1e-5), key


def test_bad_files_are_reported_and_good_ones_still_ranked(client, tmp_path):
    from gradio_client import handle_file

    garbage = tmp_path / "garbage.pdf"
    garbage.write_bytes(os.urandom(4096))
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    notes = tmp_path / "notes.txt"  # not even named like a PDF or an image
    notes.write_text("meeting notes, not a page")
    result = client.predict(
        files=[handle_file(str(SAMPLES / "doc_2.jpg")), handle_file(str(garbage)), handle_file(str(empty)),
               handle_file(str(notes))],
        query="a query about bad uploads", api_name="/rank",
    )
    assert [p["source"] for p in result["pages"]] == ["doc_2.jpg"]
    for model in result["models"].values():
        assert model["error"] is None
        assert [entry["source"] for entry in model["ranking"]] == ["doc_2.jpg"]
    problems = result["problems"]
    assert len(problems) == 3
    assert any(problem.startswith("notes.txt:") and "text" in problem for problem in problems), problems
    assert any(problem.startswith("garbage.pdf:") for problem in problems), problems
    assert any(problem.startswith("empty.png:") and "empty" in problem.split(":", 1)[1] for problem in problems), problems


@pytest.mark.parametrize("query", ["", "   \n ", "\u200b"])
def test_empty_query_is_a_clear_error(client, query):
    """Checked before the request queues (the browser shows it under the box), named by parameter."""
    from gradio_client import handle_file
    from gradio_client.exceptions import ValidationError

    with pytest.raises(ValidationError, match=r"- query: The query is empty: type what you are looking for\."):
        client.predict(files=[handle_file(str(SAMPLES / "doc_2.jpg"))], query=query, api_name="/rank")


def test_a_query_with_a_page_placeholder_token_is_refused_at_its_box(client):
    from gradio_client import handle_file
    from gradio_client.exceptions import ValidationError

    with pytest.raises(ValidationError, match=r"- query: The query contains <\|image_pad\|>, the token that marks where "
                                              r"a page's image goes in the prompt: remove it\."):
        client.predict(files=[handle_file(str(SAMPLES / "doc_2.jpg"))], query="a <|image_pad|> b", api_name="/rank")


def test_no_files_and_a_huge_query_are_clear_errors_each_named(client):
    from gradio_client.exceptions import ValidationError

    with pytest.raises(ValidationError, match=r"2 parameter\(s\) failed") as refused:
        client.predict(files=[], query="x" * 10_001, api_name="/rank")
    assert "- files: Upload at least one PDF or image" in str(refused.value)
    assert "- query: The query is 10,001 characters long; the app takes at most 10,000." in str(refused.value)


def test_judge_and_undo(client, ranked):
    from gradio_client.exceptions import AppError

    query_id, total = ranked["query_id"], len(ranked["pages"])
    first, second = (entry["content_hash"] for entry in ranked["models"][A]["ranking"][:2])
    annotator = "judge-undo-tester"

    result = client.predict(query_id=query_id, page_hash=first, annotator=annotator, label="relevant", api_name="/judge")
    assert result == dict(query_id=query_id, page_hash=first, annotator=annotator, label="relevant", judged=1, total=total)
    result = client.predict(query_id, second, annotator, "not_relevant", api_name="/judge")  # positional, too
    assert (result["judged"], result["total"]) == (2, total)
    # Relabelling a judged page does not count it twice.
    result = client.predict(query_id=query_id, page_hash=second, annotator=annotator, label="skip", api_name="/judge")
    assert (result["label"], result["judged"]) == ("skip", 2)

    undone = client.predict(query_id=query_id, annotator=annotator, api_name="/undo")
    assert undone["undone"] == dict(page_hash=second, undone_label="skip", restored_label="not_relevant")
    assert undone["judged"] == 2
    undone = client.predict(query_id=query_id, annotator=annotator, api_name="/undo")
    assert undone["undone"] == dict(page_hash=second, undone_label="not_relevant", restored_label=None)
    assert (undone["judged"], undone["total"]) == (1, total)
    undone = client.predict(query_id=query_id, annotator=annotator, api_name="/undo")
    assert undone["undone"]["page_hash"] == first and undone["judged"] == 0
    assert client.predict(query_id=query_id, annotator=annotator, api_name="/undo")["undone"] is None

    with pytest.raises(AppError, match="label must be one of"):
        client.predict(query_id=query_id, page_hash=first, annotator=annotator, label="maybe", api_name="/judge")
    with pytest.raises(AppError, match="Enter your name"):
        client.predict(query_id=query_id, page_hash=first, annotator="  ", label="relevant", api_name="/judge")
    with pytest.raises(AppError, match="not ranked for query"):
        client.predict(query_id=query_id, page_hash="0" * 64, annotator=annotator, label="relevant", api_name="/judge")
    # A name that is no text: said, not Gradio's "has raised an exception" (`.strip()` of an int).
    with pytest.raises(AppError, match="annotator must be a name \\(text\\), got 5"):
        client.predict(query_id=query_id, page_hash=first, annotator=5, label="relevant", api_name="/judge")
    with pytest.raises(AppError, match="annotator must be a name \\(text\\), got \\['x'\\]"):
        client.predict(query_id=query_id, annotator=["x"], api_name="/undo")
    assert client.predict(query_id=query_id, annotator=annotator, api_name="/undo")["undone"] is None  # nothing stored


def test_api_clients_read_what_is_wrong_as_text_not_html_escaped(client, ranked):
    """The page's toasts render HTML, so their messages are escaped; a client read `&lt;` for "<"."""
    from gradio_client.exceptions import AppError

    page_hash = ranked["pages"][0]["content_hash"]
    with pytest.raises(AppError) as raised:
        client.predict(ranked["query_id"], page_hash, "tester", "<maybe> & more", api_name="/judge")
    assert str(raised.value.message).endswith("(got '<maybe> & more')")
    with pytest.raises(AppError) as raised:
        client.predict(ranked["query_id"], "<no page>", "tester", "relevant", api_name="/judge")
    assert str(raised.value.message).startswith("page <no page> was not ranked for query")
    for endpoint, options in (("/evaluate", {}), ("/export", {"fmt": "pointwise"})):
        with pytest.raises(AppError) as raised:
            client.predict(annotator="<nobody> & co", api_name=endpoint, **options)
        assert str(raised.value.message).startswith("no judgments by '<nobody> & co' (annotators: "), endpoint


def test_export_and_evaluate_follow_the_judgments(client, ranked, tmp_path):
    from gradio_client.exceptions import AppError

    query_id, ranking = ranked["query_id"], ranked["models"][A]["ranking"]
    annotator = "export-tester"
    with pytest.raises(AppError, match=f"no judgments by '{annotator}' \\(annotators: "):
        client.predict(fmt="pointwise", annotator=annotator, api_name="/export")
    # What is not a name or a yes/no is said: 5 met `.strip()`; "false" was a true string.
    with pytest.raises(AppError, match="annotator must be a name \\(text\\), got 5"):
        client.predict(fmt="pointwise", annotator=5, api_name="/export")
    with pytest.raises(AppError, match="annotator must be a name \\(text\\), got 5"):
        client.predict(annotator=5, api_name="/evaluate")
    with pytest.raises(AppError, match="\\(agreement\\) must be true or false \\(got 'false'\\)"):
        client.predict(fmt="pointwise", agreement="false", api_name="/export")
    with pytest.raises(AppError, match="\\(mined\\) must be true or false \\(got 1\\)"):
        client.predict(fmt="pointwise", mined=1, api_name="/export")

    labels = {ranking[0]["content_hash"]: "relevant", ranking[1]["content_hash"]: "not_relevant",
              ranking[-1]["content_hash"]: "relevant"}
    for page_hash, label in labels.items():
        client.predict(query_id=query_id, page_hash=page_hash, annotator=annotator, label=label, api_name="/judge")

    path = client.predict(fmt="pointwise", annotator=annotator, api_name="/export")
    assert re.fullmatch(r"arena-pointwise-\d{8}T\d{6}Z\.zip", Path(path).name)  # when it was made, in UTC
    with zipfile.ZipFile(path) as archive:
        names = set(archive.namelist())
        rows = [json.loads(line) for line in archive.read("metadata.jsonl").decode().splitlines()]
        assert {row["page_hash"]: row["judgment"] for row in rows if row["query_id"] == query_id} == labels
        for row in rows:
            assert row["file_name"] in names  # the images travel inside the zip
            assert row["annotators"] == [annotator]
    # Sentence-transformers rows hold as many negatives as asked; a query with fewer is left out.
    path = client.predict(fmt="sentence-transformers", annotator=annotator, negatives_per_row=1, api_name="/export")
    with zipfile.ZipFile(path) as archive:
        rows = [json.loads(line) for line in archive.read("metadata.jsonl").decode().splitlines()]
    assert len(rows) == 2 and all(set(row) == {"anchor", "positive_file_name", "negative_1_file_name"} for row in rows)  # two positives
    with pytest.raises(AppError, match=r"needs queries with at least one positive and 2 hard negatives; .*\(try asking for fewer negatives per row, "):
        client.predict(fmt="sentence-transformers", annotator=annotator, negatives_per_row=2, api_name="/export")
    # The README's snippet: only the format, the rest defaults (all annotators).
    assert Path(client.predict(fmt="flagembedding", api_name="/export")).suffix == ".zip"

    evaluation = client.predict(annotator=annotator, api_name="/evaluate")
    assert evaluation["annotator"] == annotator
    for key in (A, B):
        expected = metrics_from_ranks(ranked["models"][key]["ranking"], labels, ks=(5, 10))
        summary = evaluation["models"][key]["summary"]
        assert summary["n_queries"] == 1  # (the queries of other tests, unjudged by this annotator, are excluded)
        assert set(summary) == {"model", "n_queries", "n_excluded", *expected}, key  # every metric shown is checked
        row = next(r for r in evaluation["models"][key]["rows"] if r["query_id"] == query_id)
        assert (row["n_judged"], row["n_relevant"]) == (3, 2)
        for metric, value in expected.items():  # one query: its row is the mean
            assert summary[metric] == pytest.approx(value, abs=1e-12), (key, metric)
            assert row[metric] == pytest.approx(value, abs=1e-12), (key, metric)
    # Model A's ranking put a relevant page first: its reciprocal rank is 1.
    assert evaluation["models"][A]["summary"]["mrr"] == 1.0
    # A − B per metric, over the one query this annotator judged: a difference, no test yet.
    differences = {d["metric"]: d for d in evaluation["paired_differences"]}
    assert {(d["model_a"], d["model_b"], d["n_queries"]) for d in differences.values()} == {(A, B, 1)}
    assert differences["mrr"]["mean"] == pytest.approx(1.0 - evaluation["models"][B]["summary"]["mrr"])
    assert differences["mrr"]["p_value"] is None
    assert evaluation["queries"][str(query_id)] == QUERY
    majority = client.predict(api_name="/evaluate")  # no annotator: the majority vote
    assert majority["annotator"] is None and majority["models"][A]["summary"]["n_queries"] >= 1


def metrics_from_ranks(ranking: list[dict], labels: dict[str, str], ks) -> dict[str, float]:
    """The metrics one query must have, from where a model's ranking put the labelled pages
    (worked out here from the definitions, not with reranker.metrics): binary grades, unjudged
    pages not relevant, recall and MAP over every relevant page."""
    import math

    scores = [entry["score"] for entry in ranking]
    assert len(set(scores)) == len(scores), "a tie would leave the order to a tie rule"
    rank_of = {entry["content_hash"]: entry["rank"] for entry in ranking}
    relevant = sorted(rank_of[page] for page, label in labels.items() if label == "relevant")

    def dcg(ranks) -> float:
        return sum(1 / math.log2(rank + 1) for rank in ranks)

    found = {"mrr": 1 / relevant[0],
             "map": sum(hits / rank for hits, rank in enumerate(relevant, start=1)) / len(relevant)}
    for k in ks:
        top = [rank for rank in relevant if rank <= k]
        found[f"recall@{k}"] = len(top) / len(relevant)
        found[f"ndcg@{k}"] = dcg(top) / dcg(range(1, min(len(relevant), k) + 1))
        # The blog's NDCG: the same top k, against the best order of those k pages only.
        found[f"ndcg_blog@{k}"] = dcg(top) / dcg(range(1, len(top) + 1)) if top else 0.0
    return found


def test_readme_snippet_runs(app_server, upload, tmp_path):
    """The README's client snippet, verbatim in shape (a fresh Client, keyword arguments)."""
    from gradio_client import Client, handle_file

    client = Client(app_server.url, verbose=False, download_files=str(tmp_path))
    result = client.predict(files=[handle_file(str(upload[0])), handle_file(str(upload[-1]))],
                            query="What was the 2023 revenue?", api_name="/rank")
    lines = [
        f'{model["label"]} {[(e["rank"], round(e["score"], 3), e["source"], e["page_number"]) for e in model["ranking"]]}'
        for model in result["models"].values()
    ]
    assert len(lines) == 2 and all(re.search(r"\(1, [01]\.\d+, '", line) for line in lines)
    best = result["models"][A]["ranking"][0]
    judged = client.predict(query_id=result["query_id"], page_hash=best["content_hash"], annotator="alice",
                            label="relevant", api_name="/judge")
    assert judged["judged"] == 1 and judged["total"] == 3
    path = client.predict(fmt="pointwise", api_name="/export")
    assert zipfile.is_zipfile(path)


def test_a_spawned_render_worker_does_not_rerun_the_app():
    """PDF pages render in spawned processes, and spawn runs the main script again as
    "__mp_main__" (multiprocessing.spawn does exactly this runpy call) before taking work: app.py
    must then neither import the app nor load the models (on a GPU, twice per worker)."""
    import subprocess
    import sys

    probe = (
        "import runpy, sys; namespace = runpy.run_path('app.py', run_name='__mp_main__'); "
        "print(sorted(name for name in ('demo', 'arena') if name in namespace), "
        "[module for module in ('gradio', 'torch', 'reranker.ui') if module in sys.modules])"
    )
    root = Path(__file__).resolve().parent.parent
    done = subprocess.run([sys.executable, "-c", probe], cwd=root, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "[] []"


def test_a_slow_upload_does_not_hold_up_another_visitors_ranking(app_server, tmp_path):
    """Visitor A's PDF stalls the renderer (until its 15 s page limit); visitor B's one image,
    sent a moment later, is ranked meanwhile: only the model work takes turns."""
    import threading

    from gradio_client import Client, handle_file

    from . import bad_inputs as corpus
    from .processes import children_of, cpu_seconds, wait_until

    bomb = tmp_path / "bomb.pdf"
    bomb.write_bytes(corpus.render_bomb_pdf(depth=8))  # ~30 s of rendering
    outcome = {}

    def visitor_a():
        try:
            client = Client(app_server.url, verbose=False)
            outcome["a"] = client.predict(files=[handle_file(str(bomb)), handle_file(str(IMAGES[0]))],
                                          query="a slow upload", api_name="/rank")
        except Exception as error:  # said below, not only printed by the thread
            outcome["error"] = error

    app = app_server.process.pid
    cpu_before = {child.pid: cpu_seconds(child) for child in children_of(app)}  # render workers of earlier tests
    slow = threading.Thread(target=visitor_a)
    slow.start()
    # B goes once A's request is being worked on: a render worker of the app (the only children
    # that compute) has spent over a second of CPU since A was sent, more than a worker's start-up.
    rendering = []
    wait_until(lambda: rendering.extend(child for child in children_of(app)
                                        if cpu_seconds(child) - cpu_before.get(child.pid, 0.0) > 1.0)
               or rendering or not slow.is_alive(), seconds=60)
    assert slow.is_alive() and rendering, f"visitor A's ranking ended before it rendered: {outcome.get('error') or outcome['a']['problems']}"
    quick = Client(app_server.url, verbose=False).predict(
        files=[handle_file(str(IMAGES[1]))], query="a quick question", api_name="/rank")
    assert slow.is_alive(), "visitor B waited for visitor A's upload"
    assert len(quick["pages"]) == 1 and all(model["error"] is None for model in quick["models"].values())
    slow.join()
    assert "error" not in outcome, outcome["error"]
    assert any(problem.startswith("bomb.pdf, page 1: took over 15 s to render") for problem in outcome["a"]["problems"])
    assert len(outcome["a"]["pages"]) == 1  # the image of A's upload is still ranked


def test_rankings_at_once_of_the_same_upload_agree_and_store_it_once(app_server, tmp_path):
    """Three visitors rank the same files and question at the same moment (rankings read, render
    and save side by side): the same scores, one model run, one query, each page stored once."""
    from concurrent.futures import ThreadPoolExecutor

    from gradio_client import Client, handle_file

    from reranker.store import Store

    files = [str(IMAGES[2]), str(sample_pdf(tmp_path / "same.pdf", numbers=(5, 7)))]

    def visitor(_):
        client = Client(app_server.url, verbose=False)
        return client.predict(files=[handle_file(path) for path in files], query="the same question", api_name="/rank")

    with ThreadPoolExecutor(3) as visitors:
        results = list(visitors.map(visitor, range(3)))
    assert len({result["query_id"] for result in results}) == 1
    for key in (A, B):
        assert results[0]["models"][key]["scores"] == results[1]["models"][key]["scores"] == results[2]["models"][key]["scores"]
        assert sum(result["models"][key]["scored"] for result in results) == 3  # each page through the model once
    with Store(app_server.db_path) as store:
        query_id = results[0]["query_id"]
        assert len(store.query_pages(query_id)) == 3
        assert store.db.execute("SELECT COUNT(*) FROM queries WHERE text = 'the same question'").fetchone()[0] == 1
        hashes = [page["content_hash"] for page in results[0]["pages"]]
        stored = store.db.execute(
            f"SELECT COUNT(*) FROM pages WHERE content_hash IN ({','.join('?' * len(hashes))})", hashes).fetchone()[0]
        assert stored == 3


def test_a_setting_given_wrong_stops_the_start_with_one_line_naming_it(tmp_path):
    """A wrong RERANKER_DTYPE started the app, and every visitor's ranking then failed in both
    columns; a wrong database path printed a 24-line traceback."""
    import subprocess
    import sys

    from .app_server import ROOT

    blocker = tmp_path / "a-file"
    blocker.write_text("")
    for variable, value, said in (("RERANKER_DTYPE", "fp16", "error: RERANKER_DTYPE: unknown dtype 'fp16'"),
                                  ("RERANKER_DB", str(tmp_path), f"error: The database {tmp_path} is a folder"),
                                  # Gradio's own folder, where it cannot write (a full disk likewise)
                                  ("GRADIO_TEMP_DIR", str(blocker / "gradio"), "error: [Errno 20] Not a directory"),
                                  # Gradio's own: read as it is imported (a traceback), or blamed on the port
                                  ("GRADIO_SERVER_PORT", "abc", "error: GRADIO_SERVER_PORT='abc': expected a port number"),
                                  ("GRADIO_SERVER_PORT", "70000", "error: GRADIO_SERVER_PORT='70000': expected a port number"),
                                  ("GRADIO_SERVER_PORT", "²", "error: GRADIO_SERVER_PORT='²': expected a port number"),
                                  ("GRADIO_SERVER_NAME", "my..host",  # a name with an empty part: a UnicodeError
                                   "error: GRADIO_SERVER_NAME='my..host': the app cannot listen there"),
                                  ("GRADIO_SERVER_NAME", "no.such.host.invalid",
                                   "error: GRADIO_SERVER_NAME='no.such.host.invalid': the app cannot listen there"),
                                  ("GRADIO_SERVER_NAME", "192.0.2.1",  # TEST-NET: an address of no machine here
                                   "error: GRADIO_SERVER_NAME='192.0.2.1': the app cannot listen there")):
        env = {**os.environ, "RERANKER_DB": str(tmp_path / "arena.db"), "RERANKER_CACHE": str(tmp_path / "cache"), variable: value}
        done = subprocess.run([sys.executable, "app.py"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
        errors = [line for line in done.stderr.splitlines() if " WARNING " not in line and " INFO " not in line]
        assert done.returncode == 1 and errors[0].startswith(said) and "Traceback" not in done.stderr, done.stderr[-2000:]
