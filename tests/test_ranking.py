"""The ranking service: one upload → both models' rankings, failures contained, scores reused."""

from __future__ import annotations

import time

import pytest

from reranker import ranking
from reranker.models import UnknownModelError, get_spec
from reranker.documents import load_files
from reranker.loading import LoadError
from reranker.scoring import QueryError
from reranker.store import Store

A, B = "qwen3-vl-reranker-2b", "qwen3-reranker-mm-2b"
QUERY = "Which region of the SUC2 frequency plot leads to extinction?"


def sample_files(count=3):
    from .bad_inputs import SAMPLE_PAGES

    return [str(path) for path in SAMPLE_PAGES[:count]]


def test_both_models_rank_every_page_sorted_by_their_own_scores(tiny_rerankers):
    result = ranking.rank(sample_files(), QUERY, tiny_rerankers)
    assert len(result.pages) == 3
    for key in (A, B):
        model = result.rankings[key]
        assert model.error is None and len(model.scores) == 3
        ordered = [model.scores[i] for i in model.order]
        assert ordered == sorted(ordered, reverse=True)
        assert sorted(model.ranks.values()) == [1, 2, 3]
        tiny_rerankers[key].clear_caches()
        assert model.scores == pytest.approx(tiny_rerankers[key].score(QUERY, result.pages), abs=1e-5)
    assert result.agreement() is not None


def test_out_of_gpu_memory_a_model_scores_in_smaller_batches_and_gives_the_same_scores(tiny_rerankers, monkeypatch, caplog):
    """A CUDA out-of-memory error (a large image budget on a small card) is emulated here for
    batches of more than 2 pages: the ranking halves its batches until they fit."""
    import torch

    reranker = tiny_rerankers[A]
    expected = ranking.rank(sample_files(5), QUERY, {A: reranker}).rankings[A].scores
    reranker.clear_caches()
    real_score, asked, cached = reranker.score, [], []

    def small_gpu(*args, batch_size=None, **kwargs):
        asked.append(batch_size)
        cached.append(len(reranker.vision_cache))
        if (batch_size or reranker.batch_size) > 2:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real_score(*args, batch_size=batch_size, **kwargs)

    monkeypatch.setattr(reranker, "batch_size", 8)
    from .bad_inputs import SAMPLE_PAGES

    earlier = ranking.rank([str(path) for path in SAMPLE_PAGES[5:7]], "an earlier question", {A: reranker})
    assert earlier.rankings[A].error is None  # and its pages' vision outputs hold GPU memory now
    assert len(reranker.vision_cache) == 2
    monkeypatch.setattr(reranker, "score", small_gpu)
    with caplog.at_level("WARNING", logger="reranker.ranking"):
        model = ranking.rank(sample_files(5), QUERY, {A: reranker}).rankings[A]
    assert model.error is None and model.scores == pytest.approx(expected, abs=1e-5)
    assert asked == [None, 4, 2]
    assert cached == [2, 0, 0]  # each retry starts with the device caches emptied
    assert "the GPU ran out of memory at 8 pages a batch; trying 4" in caplog.text

    monkeypatch.setattr(reranker, "score", lambda *args, **kwargs: small_gpu(*args, **{**kwargs, "batch_size": 9}))
    failed = ranking.rank(sample_files(2), "another question", {A: reranker}).rankings[A]
    assert failed.error == ("OutOfGpuMemory: the GPU ran out of memory with one page at a time; lower "
                            "Qwen3-VL-Reranker-2B's image budget")


def test_a_model_that_cannot_load_is_reported_and_the_other_still_ranks(tiny_rerankers, caplog):
    def loader(key):
        if key == B:
            raise LoadError("Could not load Qwen3RerankerMM-2B weights from 'nowhere': offline")
        return tiny_rerankers[key]

    pool = ranking.ModelPool(loader=loader)
    with caplog.at_level("WARNING", logger="reranker.ranking"):
        result = ranking.rank(sample_files(2), QUERY, pool)
        ranking.rank(sample_files(1), QUERY, pool)
    # The operator reads why in the log (only visitors saw it, in the column), once per attempt.
    assert [r.getMessage() for r in caplog.records] == [
        f"{B} could not load (tried again in 300 s): Could not load Qwen3RerankerMM-2B weights from 'nowhere': offline"]
    assert result.rankings[A].error is None and len(result.rankings[A].scores) == 2
    assert result.rankings[B].scores is None and "offline" in result.rankings[B].error
    assert result.agreement() is None
    # The failure is remembered (no reload per request; `retry_after` seconds later it is tried again).
    assert pool.error(B) and not pool.loaded(B) and pool.loaded(A)


def test_a_one_off_pool_never_tries_a_failed_model_again_and_says_no_retry(tiny_rerankers, caplog, monkeypatch):
    """`score` ranks once: its log must not promise a retry in 300 s that never comes."""
    attempts = []

    def loader(key):
        attempts.append(key)
        raise LoadError("offline")

    pool = ranking.ModelPool([B], loader=loader, retry_after=None)
    with caplog.at_level("WARNING", logger="reranker.ranking"):
        with pytest.raises(ranking.ModelUnavailable):
            pool.get(B)
    assert [r.getMessage() for r in caplog.records] == [f"{B} could not load: offline"]
    later = time.monotonic() + 10_000
    monkeypatch.setattr(ranking.time, "monotonic", lambda: later)
    with pytest.raises(ranking.ModelUnavailable):
        pool.get(B)
    assert attempts == [B]


def test_bad_files_are_reported_and_good_ones_still_ranked(tiny_rerankers, tmp_path):
    broken = tmp_path / "broken.pdf"
    broken.write_bytes(b"%PDF-1.7 garbage" * 3)
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    result = ranking.rank([*sample_files(2), str(broken), str(empty)], QUERY, tiny_rerankers)
    assert [page.source for page in result.pages] == ["doc_0.jpg", "doc_1.jpg"]
    assert {problem.source for problem in result.problems} == {"broken.pdf", "empty.png"}
    assert all(len(r.scores) == 2 for r in result.rankings.values())


def test_an_upload_with_no_readable_page_loads_no_model_and_saves_nothing(tmp_path):
    from reranker.store import Store

    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    pool = ranking.ModelPool(loader=lambda key: pytest.fail(f"{key} was loaded for no page"))
    steps = []
    with Store(tmp_path / "arena.db") as store:
        result, query_id = ranking.rank_and_save([str(empty), str(tmp_path / "missing.pdf")], QUERY, pool, store,
                                                 progress=lambda fraction, message: steps.append(message))
        assert store.list_queries() == []
    assert result.pages == [] and result.rankings == {} and query_id is None
    assert {problem.source for problem in result.problems} == {"empty.png", "missing.pdf"}
    assert steps == ["Reading files", "Done"]


def test_an_empty_query_costs_nothing(tiny_rerankers):
    with pytest.raises(QueryError):
        ranking.rank(sample_files(1), "  ", tiny_rerankers)


def test_a_query_or_instruction_with_a_byte_that_is_not_utf8_is_refused_before_any_work(tiny_rerankers):
    """A Latin-1 "café" typed in a terminal reaches Python as "caf\\udce9": one model's tokenizer
    rejected it, the other's crashed, each as a model failure."""
    typed = b"caf\xe9".decode("utf-8", "surrogateescape")
    with pytest.raises(QueryError, match=r"^the query is not valid text: character 4 is the byte 0xE9, not UTF-8"):
        ranking.rank(sample_files(1), typed, tiny_rerankers)
    with pytest.raises(QueryError, match=r"^the instruction is not valid text: character 4 is the byte 0xE9"):
        ranking.rank(sample_files(1), "a query", tiny_rerankers, instruction=typed)
    for reranker in tiny_rerankers.values():  # the library's own entry point says the same
        with pytest.raises(QueryError, match=r"character 1 is a lone surrogate U\+D800"):
            reranker.score("\ud800", [])


def test_a_model_key_or_budget_given_wrong_is_an_error_naming_it(tiny_rerankers):
    with pytest.raises(UnknownModelError, match="unknown model 'bogus'; valid keys: qwen3-vl-reranker-2b, qwen3-reranker-mm-2b"):
        ranking.ModelPool(keys=["bogus"])
    with pytest.raises(UnknownModelError, match=f"model 'bogus' is not in this pool; its keys: {A}$"):
        ranking.ModelPool(keys=[A], loader=tiny_rerankers.__getitem__).get("bogus")
    with pytest.raises(ValueError, match=f"keys {B} are not in the pool, whose models are {A}"):
        ranking.rank(sample_files(1), QUERY, {A: tiny_rerankers[A]}, keys=[B])  # was a bare KeyError
    with pytest.raises(TypeError, match="max_pixels must map model keys to image budgets"):
        ranking.rank(sample_files(1), QUERY, tiny_rerankers, max_pixels=200_000)


def test_one_file_given_alone_is_one_file_not_a_sequence_of_characters(tiny_rerankers):
    result = ranking.rank(sample_files(1)[0], QUERY, tiny_rerankers)
    assert len(result.pages) == 1 and result.problems == []  # was 22 problems: "t: could not be read", ...


def test_an_instruction_reaches_the_model_that_takes_one_and_not_the_one_with_a_fixed_prompt(tiny_rerankers):
    import warnings

    plain = ranking.rank(sample_files(2), QUERY, tiny_rerankers)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # Qwen3RerankerMM warns when handed an instruction: rank does not hand it one
        instructed = ranking.rank(sample_files(2), QUERY, tiny_rerankers, instruction="Find the plot itself.")
    assert instructed.rankings[B].scores == plain.rankings[B].scores
    assert instructed.rankings[A].scores != plain.rankings[A].scores
    # As the app reads it, so does `score` (both rank here): blank text or the model's own default
    # is no instruction; the text is stripped.
    default = get_spec(A).default_instruction
    for same_as_none in (" \u200b ", default, f"  {default}\n"):
        again = ranking.rank(sample_files(2), QUERY, tiny_rerankers, instruction=same_as_none)
        assert again.instruction is None and again.rankings[A].scores == plain.rankings[A].scores, repr(same_as_none)
    padded = ranking.rank(sample_files(2), QUERY, tiny_rerankers, instruction="  Find the plot itself.\n")
    assert padded.instruction == "Find the plot itself." and padded.rankings[A].scores == instructed.rankings[A].scores


def test_scores_stored_earlier_are_reused_not_recomputed(tiny_rerankers, tmp_path):
    store = Store(tmp_path / "arena.db")
    first = ranking.rank(sample_files(2), QUERY, tiny_rerankers, store=store)
    store.save_ranking(
        QUERY, None, first.pages, first.documents,
        scores={key: r.scores for key, r in first.rankings.items()},
        settings={key: r.settings for key, r in first.rankings.items()},
    )

    class Refusing:
        """Stands in for a model: any scoring request fails the test."""

        def __init__(self, real):
            self.real = real

        def settings(self, max_pixels=None):
            return self.real.settings(max_pixels)

        def score(self, query, pages, *args, **kwargs):
            assert not pages, "a stored score was recomputed"
            return []

    stand_ins = {key: Refusing(r) for key, r in tiny_rerankers.items()}
    again = ranking.rank(sample_files(2), QUERY, stand_ins, store=store)
    for key in (A, B):
        assert again.rankings[key].scores == first.rankings[key].scores
        assert (again.rankings[key].stored, again.rankings[key].scored, again.rankings[key].pages_per_second) == (2, 0, None)

    # One new page beside the two stored: the speed is the model's on that one page.
    more = ranking.rank(sample_files(3), QUERY, tiny_rerankers, store=store)
    for key in (A, B):
        model = more.rankings[key]
        assert (model.stored, model.scored) == (2, 1) and model.pages_per_second == pytest.approx(1 / model.seconds)


def test_identical_pages_go_through_a_model_once(tiny_rerankers, tmp_path):
    from .bad_inputs import SAMPLE_PAGES

    copy = tmp_path / "copy.jpg"
    copy.write_bytes(SAMPLE_PAGES[0].read_bytes())
    sent = {}

    def recording(pool, query, work, *rest):
        sent.update({key: len(pages) for key, pages in work.items()})
        return ranking.score_pages(pool, query, work, *rest)

    result = ranking.rank([str(SAMPLE_PAGES[0]), str(copy), str(SAMPLE_PAGES[1])], QUERY, tiny_rerankers, scorer=recording)
    assert sent == {A: 2, B: 2} and len(result.pages) == 3
    for key in (A, B):
        scores = result.rankings[key].scores
        assert scores[0] == scores[1] and result.rankings[key].scored == 2


def test_pages_already_loaded_can_be_ranked_directly(tiny_rerankers):
    pages = load_files(sample_files(2)).pages
    result = ranking.rank(pages, QUERY, tiny_rerankers, keys=[A])
    assert list(result.rankings) == [A] and len(result.rankings[A].scores) == 2


def test_rank_and_save_starts_the_side_work_before_scoring_and_stores_the_ranking(tiny_rerankers, tmp_path, monkeypatch):
    from reranker.thumbnails import PageImages

    store = Store(tmp_path / "arena.db")
    images = PageImages(tmp_path / "thumbs", store.page_image, memory_bytes=2**30)
    events = []
    real_stage, real_prepare = store.stage_pages, images.prepare
    monkeypatch.setattr(store, "stage_pages", lambda *args: events.append("stage") or real_stage(*args))
    monkeypatch.setattr(images, "prepare", lambda pages, side: events.append("thumbnails") or real_prepare(pages, side))
    for key, reranker in tiny_rerankers.items():
        real_score = reranker.score
        monkeypatch.setattr(reranker, "score", lambda *a, _real=real_score, _key=key, **k: events.append(_key) or _real(*a, **k))
        reranker.clear_caches()
    result, query_id = ranking.rank_and_save(sample_files(), QUERY, tiny_rerankers, store, images, gallery_side=200)
    assert events[:4] == ["stage", "thumbnails", A, B]  # save_ranking stages again: nothing left to do
    assert store.query_pages(query_id) and len(result.pages) == 3
    assert all((tmp_path / "thumbs" / f"{page.content_hash[:32]}-200.jpg").exists() for page in result.pages)
    assert not store._staged


def test_the_stored_time_per_page_is_the_models_time_on_the_pages_it_scored(tiny_rerankers, tmp_path):
    """A page added to a stored upload took the model's whole time in that request (it was
    divided among all the pages, the stored ones too); the stored pages keep their own."""
    store = Store(tmp_path / "arena.db")
    first, query_id = ranking.rank_and_save(sample_files(2), QUERY, tiny_rerankers, store)
    more, again = ranking.rank_and_save(sample_files(3), QUERY, tiny_rerankers, store)
    assert again == query_id
    new_page = more.pages[2].content_hash
    for key in (A, B):
        assert (more.rankings[key].stored, more.rankings[key].scored) == (2, 1)
        stored = dict(store.db.execute("SELECT page_hash, seconds FROM scores WHERE model = ?", [key]).fetchall())
        assert stored[new_page] == pytest.approx(more.rankings[key].seconds)
        for page in first.pages:
            assert stored[page.content_hash] == pytest.approx(first.rankings[key].seconds / 2)


def test_a_model_that_failed_to_load_is_tried_again_after_a_while(tiny_rerankers, monkeypatch):
    now, attempts = [1000.0], []
    monkeypatch.setattr(ranking.time, "monotonic", lambda: now[0])

    def flaky(key):
        attempts.append(key)
        if len(attempts) == 1:
            raise LoadError("the Hub did not answer in 5 s")
        return tiny_rerankers[key]

    pool = ranking.ModelPool([A], loader=flaky, retry_after=300)
    for _ in range(2):  # at once, and again soon after: the reason, without a new attempt
        with pytest.raises(ranking.ModelUnavailable, match="did not answer"):
            pool.get(A)
    assert attempts == [A] and pool.error(A) == "the Hub did not answer in 5 s"
    now[0] += 300
    assert pool.get(A) is tiny_rerankers[A] and attempts == [A, A] and pool.error(A) is None


def test_rankings_at_once_take_turns_and_score_each_page_once(tiny_rerankers, tmp_path):
    """Three visitors rank the same upload at the same moment: their model work goes one at a
    time, the second and third take the first's scores, and every result is the same."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    calls, running, overlapped = [], [], []

    def counting(pool, query, work, *args):
        if running:
            overlapped.append(True)
        running.append(True)
        calls.append({key: len(pages) for key, pages in work.items()})
        try:
            return ranking.score_pages(pool, query, work, *args)
        finally:
            running.pop()

    turns = ranking.ScoringTurns(counting)
    files = sample_files(3)
    start = threading.Barrier(3)

    def visitor(_):
        start.wait()
        return ranking.rank(files, "the same question", tiny_rerankers, scorer=turns)

    with ThreadPoolExecutor(3) as visitors:
        results = list(visitors.map(visitor, range(3)))
    assert calls == [{key: 3 for key in tiny_rerankers}] and not overlapped
    for key in tiny_rerankers:
        assert results[0].rankings[key].scores == results[1].rankings[key].scores == results[2].rankings[key].scores
        assert sorted(r.rankings[key].scored for r in results) == [0, 0, 3]
        assert sorted(r.rankings[key].stored for r in results) == [0, 3, 3]
    # Another question, or another image budget, is scored anew.
    ranking.rank(files, "another question", tiny_rerankers, scorer=turns)
    assert len(calls) == 2


def test_a_ranking_abandoned_between_batches_stops_there_stores_nothing_and_the_other_model_never_runs(
        tiny_rerankers, tmp_path, monkeypatch):
    """A visitor who closed the page: their ranking ran every page through both models (minutes
    on a CPU) while the next visitor waited for the models' turn."""
    for reranker in tiny_rerankers.values():
        reranker.clear_caches()  # other tests scored these pages
    monkeypatch.setattr(tiny_rerankers[A], "batch_size", 1)
    page_gone = []

    def progress(fraction, message):  # the page goes as A's first page is reported done
        if message.endswith(": 1/3 pages"):
            page_gone.append(True)

    store = Store(tmp_path / "arena.db")
    turns = ranking.ScoringTurns()
    with pytest.raises(ranking.RankingAbandoned, match="^the ranking stopped: its page was closed$"):
        ranking.rank_and_save(sample_files(3), QUERY, tiny_rerankers, store, scorer=turns,
                              abandoned=lambda: "its page was closed" if page_gone else "", progress=progress)
    # The batch already running (the second page) ends; the next report stops the rest.
    scored_by = {key: len(tiny_rerankers[key].score_cache) for key in (A, B)}
    assert scored_by == {A: 2, B: 0}, "A scored on past the report that found the page gone, or B started"
    assert store.query_count() == 0
    # The one page scored stays in A's cache: the same ranking asked again scores only the rest.
    result = ranking.rank(sample_files(3), QUERY, tiny_rerankers, scorer=turns)
    assert all(result.rankings[key].error is None for key in (A, B)) and len(tiny_rerankers[A].score_cache) == 3


def test_a_ranking_stopped_in_zerogpus_worker_comes_back_as_it_was_raised():
    import pickle

    again = pickle.loads(pickle.dumps(ranking.RankingAbandoned("Stop was pressed")))
    assert str(again) == "the ranking stopped: Stop was pressed" and again.why == "Stop was pressed"


def test_a_ranking_abandoned_while_it_waits_for_the_models_leaves_at_once_and_never_runs_them(tiny_rerankers):
    import threading

    first_in, release, calls = threading.Event(), threading.Event(), []

    def scorer(pool, query, work, *args):
        calls.append(query)
        if query == "first":
            first_in.set()
            release.wait(30)
        return ranking.score_pages(pool, query, work, *args)

    turns = ranking.ScoringTurns(scorer)
    outcome, waiting = {}, threading.Event()
    page_gone = threading.Event()

    def second():
        def progress(fraction, message):
            if message.startswith("Waiting for another ranking"):
                waiting.set()
        try:
            ranking.rank(sample_files(2), "second", tiny_rerankers, scorer=turns, progress=progress,
                         abandoned=page_gone.is_set)
        except ranking.RankingAbandoned as error:
            outcome["error"] = error

    first = threading.Thread(target=lambda: ranking.rank(sample_files(2), "first", tiny_rerankers, scorer=turns))
    first.start()
    assert first_in.wait(30)
    waiter = threading.Thread(target=second)
    waiter.start()
    assert waiting.wait(30)
    page_gone.set()
    waiter.join(30)  # it leaves while the first ranking still holds the models
    assert not waiter.is_alive() and first.is_alive()
    release.set()
    first.join(30)
    assert isinstance(outcome.get("error"), ranking.RankingAbandoned) and calls == ["first"]


def test_a_ranking_whose_scores_are_all_in_is_kept_even_if_its_page_went_at_the_last_moment(tiny_rerankers, tmp_path):
    """Once every page is scored, storing the ranking costs little and a reload finds it."""
    store = Store(tmp_path / "arena.db")
    reports = []
    last_page_scored = f"{get_spec(B).label}: 2/2 pages"
    result, query_id = ranking.rank_and_save(
        sample_files(2), QUERY, tiny_rerankers, store, progress=lambda fraction, message: reports.append(message),
        abandoned=lambda: last_page_scored in reports)
    assert reports[-2:] == [last_page_scored, "Done"]
    assert query_id is not None and store.query_count() == 1


def test_the_scoring_memo_keeps_no_copy_of_the_query_or_the_instruction():
    """Its keys held both texts (up to 10,000 characters each, 4 bytes a character for emoji), and
    it counts entries: its 10,000 could hold ~0.8 GB. A query asked again still reuses its scores."""
    import tracemalloc

    from PIL import Image

    from reranker.documents import Page

    asked = []

    def scores(pool, query, work, *args):
        asked.append(len(query))
        return {key: ranking.Scored([0.5] * len(pages), 0.01) for key, pages in work.items()}

    turns = ranking.ScoringTurns(scores)
    page = Page("ab" * 32, Image.new("RGB", (8, 8)), "p.png", 1, "cd" * 32, "image")

    def texts(number: int) -> tuple[str, str]:  # new strings each time, as each request's are
        return "😀" * 9_990 + f"{number:09d}", "文" * 9_990 + f"{number:09d}"

    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for number in range(100):
            query, instruction = texts(number)
            turns(None, query, {A: [page], B: [page]}, instruction, {})
        del query, instruction
        held = (tracemalloc.get_traced_memory()[0] - before) / 100
    finally:
        tracemalloc.stop()
    assert held < 2048, f"{held:,.0f} B a ranking"  # the two texts alone are 60 kB
    query, instruction = texts(0)
    turns(None, query, {A: [page], B: [page]}, instruction, {})
    turns(None, query, {A: [page], B: [page]}, None, {})  # another prompt
    assert len(asked) == 100 + 1


def test_equal_scores_keep_upload_order_as_the_store_ranks_them():
    """The same page uploaded twice scores the same: the galleries, `score` and `/rank` order
    them as the store's ranks (and so the exports) do, by upload order, past ten pages too (they
    went by the page index as text, descending: "9" before "11" before "10")."""
    from reranker.ranking import ModelRanking

    scores = [0.5] * 12
    scores[3] = 0.9
    ranking = ModelRanking("qwen3-vl-reranker-2b", "A", scores)
    assert ranking.order == [3, 0, 1, 2, *range(4, 12)]
    assert ranking.ranks[0] == 2 and ranking.ranks[11] == 12
    with pytest.raises(ValueError, match="NaN"):
        _ = ModelRanking("qwen3-vl-reranker-2b", "A", [0.5, float("nan")]).order


def test_the_agreement_panel_ranks_equal_scores_as_the_galleries_do():
    """'Where they disagree most' and top-k overlap use the galleries' ranks (upload order for
    equal scores), not the evaluation's trec_eval rule: one page, one rank per model on screen."""
    from reranker.ranking import ModelRanking, RankingResult

    a = ModelRanking("qwen3-vl-reranker-2b", "A", [0.9, 0.1, 0.9, 0.5])  # pages 0 and 2 tie
    b = ModelRanking("qwen3-reranker-mm-2b", "B", [0.1, 0.2, 0.3, 0.9])
    result = RankingResult("q", None, pages=[], problems=[], notes=[], rankings={a.key: a, b.key: b}, ingest_seconds=0.0)
    ranks = {d.page_id: (d.rank_a, d.rank_b) for d in result.agreement().disagreements}
    assert ranks == {page: (a.ranks[page], b.ranks[page]) for page in range(4) if a.ranks[page] != b.ranks[page]}
    assert ranks[0] == (1, 4)  # the trec_eval rule put page 2 first: "#2 vs #4" beside a caption's #1


def test_a_model_that_fails_while_scoring_is_reported_and_logged_with_its_traceback(tiny_rerankers, monkeypatch, caplog):
    def out_of_memory(*args, **kwargs):
        raise RuntimeError("CUDA out of memory")

    monkeypatch.setattr(tiny_rerankers[A], "score", out_of_memory)
    with caplog.at_level("ERROR", logger="reranker.ranking"):
        result = ranking.rank(sample_files(2), QUERY, tiny_rerankers)
    assert result.rankings[A].error == "RuntimeError: CUDA out of memory" and len(result.rankings[B].scores) == 2
    (record,) = caplog.records
    assert record.getMessage() == f"{A} failed to score 2 pages" and record.exc_info[1].args == ("CUDA out of memory",)


def test_a_model_computing_nan_fails_its_own_column_and_the_other_models_scores_are_stored(tiny_checkpoints, tiny_rerankers, tmp_path):
    """NaN scores reached the store, which refused the whole ranking: both models' work lost."""
    import torch

    from reranker import load_reranker

    broken = load_reranker(A, model_path=str(tiny_checkpoints.reranker), device="cpu")
    with torch.no_grad():
        broken.backbone.language_model.norm.weight.fill_(float("nan"))
    store = Store(tmp_path / "arena.db")
    result, query_id = ranking.rank_and_save(sample_files(2), QUERY, {A: broken, B: tiny_rerankers[B]}, store)
    assert result.rankings[A].error.startswith("NonFiniteScores: Qwen3-VL-Reranker-2B computed nan instead of a score for 2 of 2 "
                                               f"page(s) ({result.pages[0].label}, {result.pages[1].label}) in float32")
    assert len(result.rankings[B].scores) == 2
    stored = store.cached_scores(B, result.rankings[B].settings, QUERY, None, [page.content_hash for page in result.pages])
    assert sorted(stored.values()) == sorted(result.rankings[B].scores)
    assert store.db.execute("SELECT count(*) FROM scores WHERE model = ?", [A]).fetchone()[0] == 0
    assert store.db.execute("SELECT count(*) FROM scores WHERE model = ?", [B]).fetchone()[0] == 2
    # Ranked before over two pages, the question over three: the model scores only the new page,
    # which the message names (it said "no. 1": its place among the pages scored, not the upload's).
    earlier = Store(tmp_path / "earlier.db")
    ranking.rank_and_save(sample_files(2), QUERY, tiny_rerankers, earlier)
    again, _ = ranking.rank_and_save(sample_files(3), QUERY, {A: broken, B: tiny_rerankers[B]}, earlier)
    assert f"for 1 of 1 page(s) ({again.pages[2].label}) in float32" in again.rankings[A].error


def test_a_query_in_either_unicode_form_is_ranked_and_stored_as_one(tiny_rerankers, tmp_path):
    """The tokenizer reads "café" composed or decomposed alike; the store now does too."""
    import unicodedata

    store = Store(tmp_path / "arena.db")
    composed, decomposed = (unicodedata.normalize(form, "café menu prices") for form in ("NFC", "NFD"))
    first, first_id = ranking.rank_and_save(sample_files(2), composed, tiny_rerankers, store)
    again, again_id = ranking.rank_and_save(sample_files(2), decomposed, tiny_rerankers, store)
    assert again.query == composed and again_id == first_id
    for key in (A, B):  # the same scores, from the store: nothing scored again
        assert again.rankings[key].scores == first.rankings[key].scores and again.rankings[key].stored == 2


def test_a_pool_is_a_model_pool_or_a_mapping_of_loaded_rerankers(tiny_rerankers):
    """A mapping becomes a pool of models already loaded: nothing is loaded for it, and an
    unknown key is named as a pool's would be."""
    pool = ranking.ModelPool.of(tiny_rerankers)
    assert pool.keys == (A, B) and all(pool.loaded(key) and pool.get(key) is tiny_rerankers[key] for key in (A, B))
    assert ranking.ModelPool.of(pool) is pool
    with pytest.raises(TypeError, match="pool must be a ModelPool or a mapping of model keys to rerankers, got list"):
        ranking.rank(sample_files(1), QUERY, [tiny_rerankers[A]])
    with pytest.raises(UnknownModelError):
        ranking.ModelPool.of({"no-such-model": tiny_rerankers[A]})
