"""reranker.store on real SQLite files: concurrency, crash safety, undo, migrations, round trips."""

from __future__ import annotations

import contextlib
import hashlib
import os
import random
import re
import signal
import sqlite3
import subprocess
import sys
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import SimpleNamespace

import pytest
from PIL import Image

from reranker import store as store_module
from reranker.documents import Page
from reranker.imaging import image_hash
from reranker.metrics import majority
from reranker.store import (
    NOT_RELEVANT,
    READ_AS_IS_FROM,
    RELEVANT,
    SCHEMA_VERSION,
    SKIP,
    GuidelinesChanged,
    SchemaTooNewError,
    Store,
    StoreError,
    Undone,
    connect,
    migrate,
    schema_version,
    settings_key,
)

WRITER = Path(__file__).resolve().parent / "store_writer.py"
sys.path.insert(0, str(WRITER.parent))
import store_writer  # noqa: E402


@dataclass
class FakeDocument:
    content_hash: str
    name: str
    kind: str
    page_count: int


def make_pages(count: int, source: str = "report.pdf", seed: int = 0, size=(12, 9)) -> list[Page]:
    rng = random.Random(seed)
    document_hash = hashlib.sha256(f"{source}:{seed}".encode()).hexdigest()
    pages = []
    for number in range(1, count + 1):
        image = Image.frombytes("RGB", size, rng.randbytes(size[0] * size[1] * 3))
        pages.append(Page(image_hash(image), image, source, number, document_hash, "pdf"))
    return pages


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "arena.db"


@pytest.fixture
def store(db_path: Path):
    with Store(db_path) as s:
        yield s


def ranked(store: Store, pages: list[Page], query: str = "where is the revenue table?") -> int:
    n = len(pages)
    return store.save_ranking(
        query,
        None,
        pages,
        scores={"model-a": [i / n for i in range(n)], "model-b": [1 - i / n for i in range(n)]},
        settings={"model-a": {"max_pixels": 1280}, "model-b": {"max_pixels": 720}},
    )


# ---------------------------------------------------------------------------------------------


def test_eight_concurrent_writers_threads_and_processes_lose_nothing(store: Store, db_path: Path, tmp_path: Path):
    pages = make_pages(10)
    query_id = ranked(store, pages)
    hashes = [p.content_hash for p in pages]
    count = 500
    go = tmp_path / "go"  # a start line, so that all eight really write at the same time
    started = threading.Event()

    processes = {
        f"proc-{i}": subprocess.Popen(
            [sys.executable, str(WRITER), str(db_path), str(query_id), f"proc-{i}", str(count), str(go), *hashes],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(4)
    }
    reported: dict[str, list[int]] = {}
    errors: list[BaseException] = []

    def thread_writer(annotator: str) -> None:
        ids: list[int] = []
        started.wait(timeout=60)
        try:
            store_writer.write(store, query_id, annotator, count, hashes, ids.append, pause=0.001)  # one Store
        except BaseException as error:  # surfaced below
            errors.append(error)
        reported[annotator] = ids

    threads = [threading.Thread(target=thread_writer, args=(f"thread-{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for process in processes.values():
        assert process.stdout.readline() == "ready\n"
    go.touch()
    started.set()
    for annotator, process in processes.items():
        out, err = process.communicate(timeout=120)
        assert process.returncode == 0, err
        reported[annotator] = [int(line) for line in out.split()]
    for thread in threads:
        thread.join(timeout=120)
    assert not errors

    all_ids = [i for ids in reported.values() for i in ids]
    assert len(all_ids) == len(set(all_ids)) == 8 * count
    total = store.db.execute("SELECT COUNT(*), COUNT(DISTINCT id) FROM judgments").fetchone()
    assert total == (8 * count, 8 * count)
    for annotator, ids in reported.items():
        rows = list(
            store.db.query("SELECT id, page_hash, label FROM judgments WHERE annotator = ? ORDER BY id", [annotator])
        )
        assert [r["id"] for r in rows] == ids  # each writer's ids, in the order it committed them
        expected = [(hashes[n % 10], store_writer.label_for(n, 10)) for n in range(count)]
        assert [(r["page_hash"], r["label"]) for r in rows] == expected
    # Correctness is all asserted above (every id, in each writer's order, nothing lost or
    # doubled). What remains is that the writers really overlapped, or the test proved nothing
    # about concurrency: some thread's rows and some process's rows interleave, whatever the
    # scheduler did (how often they switched depends on the machine's load, not on the store).
    order = [r[0] for r in store.db.execute("SELECT annotator FROM judgments ORDER BY id")]
    first = {annotator: order.index(annotator) for annotator in reported}
    last = {annotator: len(order) - 1 - order[::-1].index(annotator) for annotator in reported}
    assert any(first[p] < last[t] and first[t] < last[p]
               for p in processes for t in reported if t.startswith("thread")), "no process overlapped a thread"
    assert {a.split("-")[0] for a, b in zip(order, order[1:]) if a != b} == {"proc", "thread"}
    assert store.integrity_check() == "ok"


def test_processes_creating_a_new_database_at_once_all_get_one_sound_file(tmp_path: Path):
    """Several processes started together on a file that does not exist yet (a Space's workers
    at first boot): switching to WAL races, and each must see that another already migrated."""
    db_path = tmp_path / "new" / "arena.db"  # nor its folder
    go = tmp_path / "go"
    count = 12
    processes = {
        f"proc-{i}": subprocess.Popen(
            [sys.executable, str(WRITER), "--create", str(db_path), f"proc-{i}", str(count), str(go)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(4)
    }
    for process in processes.values():
        assert process.stdout.readline() == "ready\n"
    assert not db_path.parent.exists()
    go.touch()
    reported: dict[str, tuple[int, list[int]]] = {}
    for annotator, process in processes.items():
        out, err = process.communicate(timeout=60)
        assert process.returncode == 0, err
        first, *ids = out.split("\n")[:-1]
        assert first.startswith("query ")
        reported[annotator] = int(first.removeprefix("query ")), [int(i) for i in ids]

    with Store(db_path) as store:
        assert schema_version(store.db) == SCHEMA_VERSION
        assert store.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert store.integrity_check() == "ok"
        assert len({query_id for query_id, _ in reported.values()}) == 4
        hashes = [page.content_hash for page in store_writer.shared_pages()]
        for annotator, (query_id, ids) in reported.items():
            assert len(ids) == len(set(ids)) == count
            rows = list(store.db.query(
                "SELECT id, query_id, page_hash, label FROM judgments WHERE annotator = ? ORDER BY id", [annotator]))
            assert [r["id"] for r in rows] == ids
            assert {r["query_id"] for r in rows} == {query_id}
            expected = [(hashes[n % len(hashes)], store_writer.label_for(n, len(hashes))) for n in range(count)]
            assert [(r["page_hash"], r["label"]) for r in rows] == expected
        assert sorted((q.text, q.pages) for q in store.list_queries()) == [
            (f"query of proc-{i}", len(hashes)) for i in range(4)
        ]
        assert store.db.execute("SELECT COUNT(*) FROM pages").fetchone()[0] == len(hashes)  # stored once


def test_switching_to_wal_retries_while_the_file_is_locked_and_raises_other_errors():
    """The retry branch of _enable_wal, deterministically: in the test above SQLite's busy
    handler has so far always let the first PRAGMA succeed, so the race it guards is rare."""

    class Connection:
        def __init__(self, answers):
            self.answers = list(answers)

        def execute(self, sql):
            assert sql == "PRAGMA journal_mode = WAL"
            answer = self.answers.pop(0)
            if isinstance(answer, Exception):
                raise answer
            return SimpleNamespace(fetchone=lambda: (answer,))

    # locked, then unchanged (another process holds the file), then busy, then switched
    db = Connection([sqlite3.OperationalError("database is locked"), "delete",
                     sqlite3.OperationalError("database is busy"), "wal"])
    store_module._enable_wal(db, "arena.db")
    assert db.answers == []
    broken = Connection([sqlite3.OperationalError("disk I/O error"), "wal"])
    with pytest.raises(sqlite3.OperationalError, match="disk I/O error"):
        store_module._enable_wal(broken, "arena.db")


def test_writer_killed_mid_write_keeps_every_committed_judgment(store: Store, db_path: Path):
    pages = make_pages(7)
    query_id = ranked(store, pages)
    process = subprocess.Popen(
        [
            sys.executable,
            str(WRITER),
            str(db_path),
            str(query_id),
            "doomed",
            "1000000",
            "-",
            *(p.content_hash for p in pages),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    committed: list[int] = []
    for line in process.stdout:
        committed.append(int(line))
        if len(committed) >= 300:
            break
    os.kill(process.pid, signal.SIGKILL)  # no cleanup, no rollback: mid-transaction most likely
    rest = process.stdout.read()
    process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL
    committed += [int(line) for line in rest.split("\n")[:-1]]  # the last piece may be a torn line

    with sqlite3.connect(db_path) as raw:  # a fresh connection recovers from the WAL as any would
        assert raw.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    with Store(db_path) as reopened:
        stored = {r[0] for r in reopened.db.execute("SELECT id FROM judgments WHERE annotator = 'doomed'").fetchall()}
        assert set(committed) <= stored
        assert len(stored) - len(committed) <= 1  # at most the one committed just before its print
        assert reopened.integrity_check() == "ok"
        # the file is still writable after the crash
        assert reopened.record_judgment(query_id, pages[0].content_hash, "after", RELEVANT) > max(stored)


def test_relabel_and_undo_keep_history_and_give_the_right_current_label(store: Store):
    pages = make_pages(3)
    query_id = ranked(store, pages)
    a, b, c = (p.content_hash for p in pages)

    first = store.record_judgment(query_id, a, "ann", RELEVANT)
    assert store.record_judgment(query_id, a, "ann", RELEVANT) == first  # double press: no new row
    store.record_judgment(query_id, a, "ann", NOT_RELEVANT)  # relabel
    store.record_judgment(query_id, b, "ann", SKIP)
    store.record_judgment(query_id, c, "bob", RELEVANT)  # another annotator: untouched by ann's undo
    assert store.current_labels(query_id, "ann") == {a: NOT_RELEVANT, b: SKIP}
    assert store.progress(query_id, "ann") == (2, 3)

    assert store.undo(query_id, "ann") == Undone(b, SKIP, None)
    assert store.undo(query_id, "ann") == Undone(a, NOT_RELEVANT, RELEVANT)  # the relabel is reverted
    assert store.current_labels(query_id, "ann") == {a: RELEVANT}
    store.record_judgment(query_id, b, "ann", RELEVANT)  # new action after undos
    assert store.undo(query_id, "ann") == Undone(b, RELEVANT, None)
    assert store.undo(query_id, "ann") == Undone(a, RELEVANT, None)
    assert store.undo(query_id, "ann") is None  # nothing left to undo
    assert store.current_labels(query_id, "ann") == {}
    assert store.current_labels(query_id, "bob") == {c: RELEVANT}
    assert store.progress(query_id, "ann") == (0, 3)

    history = store.history(query_id, a, "ann")
    assert [(j.label, j.undoes is not None) for j in history] == [
        (RELEVANT, False),
        (NOT_RELEVANT, False),
        (RELEVANT, True),  # undo of the relabel
        ("cleared", True),  # undo of the first label
    ]
    assert history[2].undoes == history[1].id and history[3].undoes == history[0].id
    assert [j.created for j in history] == sorted(j.created for j in history)
    assert "." in history[0].created  # sub-second precision
    total = store.db.execute("SELECT COUNT(*) FROM judgments").fetchone()[0]
    assert total == 9  # nothing was deleted or rewritten


def test_judgments_are_append_only_and_point_at_ranked_pages(store: Store):
    pages = make_pages(2)
    query_id = ranked(store, pages)
    store.record_judgment(query_id, pages[0].content_hash, "ann", RELEVANT)
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        store.db.execute("UPDATE judgments SET label = 'not_relevant'")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        store.db.execute("DELETE FROM judgments")
    with pytest.raises(ValueError, match="not ranked"):
        store.record_judgment(query_id, "ab" * 32, "ann", RELEVANT)
    with pytest.raises(ValueError, match="label"):
        store.record_judgment(query_id, pages[0].content_hash, "ann", "maybe")
    with pytest.raises(ValueError, match="annotator"):
        store.record_judgment(query_id, pages[0].content_hash, "  ", RELEVANT)
    assert store.record_judgment(query_id, pages[1].content_hash, "ann", "cleared") is None  # nothing to clear


def test_majority_and_per_annotator_labels(store: Store):
    pages = make_pages(3)
    query_id = ranked(store, pages)
    a, b, c = (p.content_hash for p in pages)
    for annotator, labels in {"x": (RELEVANT, NOT_RELEVANT, RELEVANT), "y": (RELEVANT, RELEVANT, SKIP)}.items():
        for page_hash, label in zip((a, b, c), labels):
            store.record_judgment(query_id, page_hash, annotator, label)
    assert store.labels_by_annotator(query_id)[b] == {"x": NOT_RELEVANT, "y": RELEVANT}
    votes = {page_hash: majority(label for label in labels.values() if label != SKIP)  # a skip is no vote (as in exports)
             for page_hash, labels in store.labels_by_annotator(query_id).items()}
    assert votes == {a: RELEVANT, b: None, c: RELEVANT}  # b is a tie
    assert store.annotators() == ["x", "y"]
    assert [(q.id, q.pages, q.judged) for q in store.list_queries()] == [(query_id, 3, 3)]


def test_date_filters_give_labels_as_they_stood(store: Store, monkeypatch):
    # A fixed clock, a millisecond a call: with the real one, a run across midnight UTC would put
    # the relabel on the next day and `until=<the first label's date>` would not see it. Both
    # labels come just before midnight, so `until=<date>` must cover the day to its very end.
    clock = [datetime(2026, 3, 5, 23, 59, 59, 900_000, tzinfo=timezone.utc)]

    def tick() -> str:
        clock[0] += timedelta(milliseconds=1)
        return clock[0].isoformat(timespec="microseconds")

    monkeypatch.setattr(store_module, "now", tick)
    pages = make_pages(1)
    query_id = ranked(store, pages)
    first = store.record_judgment(query_id, pages[0].content_hash, "ann", RELEVANT)
    created = store.history(query_id, pages[0].content_hash)[0].created
    store.record_judgment(query_id, pages[0].content_hash, "ann", NOT_RELEVANT)
    moment = datetime.fromisoformat(created)
    assert moment.date() == datetime.fromisoformat(store.history(query_id, pages[0].content_hash)[1].created).date()
    as_of_first = store.current_judgments(until=moment)
    assert [(j.id, j.label) for j in as_of_first] == [(first, RELEVANT)]
    assert [j.label for j in store.current_judgments(since=moment.date())] == [NOT_RELEVANT]
    assert store.current_judgments(since=moment + timedelta(days=1)) == []
    assert store.current_judgments(until=moment.date() - timedelta(days=1)) == []
    assert [j.label for j in store.current_judgments(until=moment.date().isoformat())] == [NOT_RELEVANT]


def test_date_filters_at_the_ends_of_the_calendar_are_clamped_not_crashed(store: Store):
    """`until=9999-12-31` ("for ever") added a day past what datetime holds: OverflowError out of
    the CLI and the Export tab, where a date out of order gets a one-line error."""
    pages = make_pages(1)
    query_id = ranked(store, pages)
    store.record_judgment(query_id, pages[0].content_hash, "ann", RELEVANT)
    everything = store.current_judgments()
    assert len(everything) == 1
    for until in ("9999-12-31", "9999-12-31T23:59:59.999999", "9999-12-31T23:59:59.999999+00:00",
                  "9999-12-31T22:00-05:00"):  # the last lies past the end once in UTC
        assert store.current_judgments(until=until) == everything, until
    assert store.current_judgments(since="0001-01-01T00:30+01:00") == everything  # before the start once in UTC
    assert store.current_judgments(until="0001-01-01T00:30+01:00") == []
    assert store.current_judgments(since="9999-12-31T22:00-05:00") == []
    assert store_module.time_bound("9999-12-31", end=True) == "9999-12-31T23:59:59.999999+00:00"
    assert store_module.time_bound("0001-01-01T00:30+01:00") == "0001-01-01T00:00:00.000000+00:00"


def test_text_that_is_not_utf8_is_refused_by_name_before_it_reaches_sqlite(store: Store):
    """Python hands a byte of another encoding in a command line over as a lone surrogate: it
    passed the store's checks and failed inside sqlite3 with a bare codec error
    (`export --annotator Zo\xeb` typed in a Latin-1 terminal)."""
    pages = make_pages(1)
    query_id = ranked(store, pages)
    store.record_judgment(query_id, pages[0].content_hash, "Zoë", RELEVANT)
    byte = "Zo\udceb"  # "Zoë" read from Latin-1 bytes as UTF-8
    name_error = r"^the annotator name is not valid text: character 3 is the byte 0xEB, not UTF-8"
    with pytest.raises(ValueError, match=name_error):
        store.record_judgment(query_id, pages[0].content_hash, byte, NOT_RELEVANT)
    with pytest.raises(ValueError, match=name_error):
        store.undo(query_id, byte)
    with pytest.raises(ValueError, match=name_error):
        store.known_annotator(byte)
    with pytest.raises(ValueError, match=r"^the query is not valid text: character 2 is a lone surrogate U\+D800"):
        store.save_ranking("q\ud800", None, pages, scores={"model-a": [0.5]}, settings={"model-a": {}})
    with pytest.raises(ValueError, match=r"^the instruction is not valid text: character 1 is the byte 0x80"):
        store.save_ranking("q", "\udc80", pages, scores={"model-a": [0.5]}, settings={"model-a": {}})
    assert store.current_labels(query_id, "Zoë") == {pages[0].content_hash: RELEVANT}  # nothing lost or added
    assert [q.id for q in store.list_queries()] == [query_id]


def test_migration_from_version_1_keeps_every_row(db_path: Path):
    db = connect(db_path)
    migrate(db, target=1)
    assert schema_version(db) == 1
    png = store_module.encode_png(Image.new("RGB", (2, 2), (1, 2, 3)))
    page_hash, document_hash, stamp = "aa" * 32, "bb" * 32, "2026-01-02T03:04:05.000006+00:00"
    db.execute("INSERT INTO documents VALUES (?, 'old.pdf', 'pdf', 1, ?)", [document_hash, stamp])
    db.execute("INSERT INTO pages VALUES (?, 2, 2, 'RGB', 'png', ?, ?)", [page_hash, png, stamp])
    db.execute("INSERT INTO document_pages VALUES (?, 1, ?)", [document_hash, page_hash])
    db.execute("INSERT INTO queries VALUES (1, 'old query', '', ?)", [stamp])
    db.execute("INSERT INTO query_pages VALUES (1, ?, 0, 'old.pdf', 1, ?)", [page_hash, document_hash])
    db.execute("INSERT INTO settings VALUES ('k1', '{}')")
    db.execute("INSERT INTO scores VALUES ('model-a', 'k1', 1, ?, 0.75, 0.5, ?)", [page_hash, stamp])
    for label in (RELEVANT, "cleared", NOT_RELEVANT):  # v1 rows: no `undoes` column yet
        db.execute(
            "INSERT INTO judgments (query_id, page_hash, annotator, label, created) VALUES (1, ?, 'old', ?, ?)",
            [page_hash, label, stamp],
        )
    tables = ["documents", "pages", "document_pages", "queries", "query_pages", "settings", "scores", "judgments"]
    before = {t: [tuple(r) for r in db.execute(f"SELECT * FROM {t} ORDER BY rowid")] for t in tables}
    db.close()

    with Store(db_path) as store:
        assert schema_version(store.db) == SCHEMA_VERSION == 3
        after = {t: [tuple(r) for r in store.db.execute(f"SELECT * FROM {t} ORDER BY rowid")] for t in tables}
        assert {t: rows for t, rows in after.items() if t != "judgments"} == {
            t: rows for t, rows in before.items() if t != "judgments"
        }
        assert after["judgments"] == [row + (None,) for row in before["judgments"]]  # + undoes
        # old data works with the new code
        assert store.current_labels(1, "old") == {page_hash: NOT_RELEVANT}
        assert store.undo(1, "old") == Undone(page_hash, NOT_RELEVANT, None)  # before it: cleared
        assert store.query_pages(1)[0].scores == {"model-a": 0.75}
        assert store.integrity_check() == "ok"


def test_newer_schema_is_refused(db_path: Path):
    Store(db_path).close()
    raw = sqlite3.connect(db_path)
    raw.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    raw.close()
    with pytest.raises(SchemaTooNewError):
        Store(db_path)


def test_save_ranking_round_trip_cache_and_no_duplicate_pages(store: Store, monkeypatch):
    pages = make_pages(4, source="ünïcode report.pdf")
    document = FakeDocument(pages[0].document_hash, "ünïcode report.pdf", "pdf", 4)
    scores = {"model-a": [0.9, 0.1, 0.5, 0.3], "model-b": [0.2, 0.8, 0.6, 0.4]}
    settings = {"model-a": {"max_pixels": 1280 * 32 * 32}, "model-b": {"max_pixels": 720 * 28 * 28}}
    query_id = store.save_ranking(
        "revenue 2024", "Find tables", pages, [document], scores, settings, seconds_per_page={"model-a": 0.5}
    )

    for page in pages:  # lossless: the same pixels, mode and size
        image = store.page_image(page.content_hash)
        assert (image.mode, image.size, image.tobytes()) == ("RGB", page.image.size, page.image.tobytes())
        assert image_hash(image) == page.content_hash

    shown = store.query_pages(query_id)
    assert [(p.source, p.page_number) for p in shown] == [("ünïcode report.pdf", n) for n in (1, 2, 3, 4)]
    assert [p.ranks["model-a"] for p in shown] == [1, 4, 2, 3]
    assert [p.ranks["model-b"] for p in shown] == [4, 1, 2, 3]
    assert shown[2].scores == {"model-a": 0.5, "model-b": 0.6}

    hashes = [p.content_hash for p in pages]
    cached = store.cached_scores(
        "model-a", settings["model-a"], "revenue 2024", "Find tables", hashes[:3] + ["cd" * 32]
    )
    assert cached == dict(zip(hashes[:3], [0.9, 0.1, 0.5]))
    assert store.cached_scores("model-a", settings_key(settings["model-a"]), "revenue 2024", "Find tables", hashes)
    assert store.cached_scores("model-a", {"max_pixels": 1}, "revenue 2024", "Find tables", hashes) == {}
    assert store.cached_scores("model-a", settings["model-a"], "revenue 2024", None, hashes) == {}
    seconds = store.db.execute("SELECT DISTINCT seconds FROM scores WHERE model = 'model-a'").fetchall()
    assert seconds == [(0.5,)]

    # The same pages again (plus one new) under the same query: nothing duplicated, nothing re-encoded.
    encoded: list[int] = []
    real_encode = store_module.encode_png
    monkeypatch.setattr(store_module, "encode_png", lambda image: encoded.append(1) or real_encode(image))
    extra = make_pages(1, source="scan.png", seed=99)[0]
    again = store.save_ranking(
        "revenue 2024",
        "Find tables",
        [*pages, extra],
        [document],
        {m: [*v, 0.99] for m, v in scores.items()},
        settings,
    )
    assert again == query_id
    assert len(encoded) == 1  # only the new page
    counts = {
        t: store.db.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]
        for t in ("pages", "documents", "query_pages", "scores", "queries", "document_pages")
    }
    assert counts == {"pages": 5, "documents": 2, "query_pages": 5, "scores": 10, "queries": 1, "document_pages": 5}
    assert store.query_pages(query_id)[-1].source == "scan.png"
    assert store.db.execute("SELECT name FROM documents WHERE content_hash = ?", [extra.document_hash]).fetchone() == (
        "scan.png",
    )
    # a page shared with another query is stored once
    store.save_ranking("another query", None, pages[:2], scores={"model-a": [0.1, 0.2]})
    assert store.db.execute("SELECT COUNT(*) FROM pages").fetchone()[0] == 5


def test_save_ranking_rejects_bad_input(store: Store):
    pages = make_pages(2)
    with pytest.raises(ValueError, match="2 pages"):
        store.save_ranking("q", None, pages, scores={"model-a": [0.1]})
    with pytest.raises(ValueError, match="empty"):
        store.save_ranking("  ", None, pages)
    with pytest.raises(ValueError, match="content hash"):
        store.save_ranking("q", None, [Page("../evil", pages[0].image, "x", 1, None, "image")])
    with pytest.raises(ValueError, match="finite"):
        store.save_ranking("q", None, pages, scores={"model-a": [0.1, float("nan")]})
    # The checks above all fail before the write transaction begins. An unknown settings key is
    # only found inside it, after the query, pages, documents and model-a's scores and settings
    # were inserted: the whole transaction must roll back.
    with pytest.raises(ValueError, match="unknown settings key"):
        store.save_ranking(
            "q",
            None,
            pages,
            scores={"model-a": [0.1, 0.2], "model-b": [0.3, 0.4]},
            settings={"model-a": {}, "model-b": "deadbeefdeadbeef"},
        )
    assert store.list_queries() == []  # nothing half-written
    tables = ("queries", "pages", "documents", "document_pages", "query_pages", "scores", "settings", "judgments")
    assert {t: store.db.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in tables} == dict.fromkeys(tables, 0)
    assert not store.db.conn.in_transaction
    # and the store is still usable: the same ranking with the settings themselves goes in whole
    store.save_ranking("q", None, pages, scores={"model-a": [0.1, 0.2]}, settings={"model-a": {}})
    assert [(q.text, q.pages) for q in store.list_queries()] == [("q", 2)]


def test_connections_are_per_thread_and_database_is_wal(store: Store, db_path: Path, monkeypatch):
    seen = []
    thread = threading.Thread(target=lambda: seen.append(store.db))
    thread.start()
    thread.join()
    assert seen[0] is not store.db
    assert store.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store.db.execute("PRAGMA busy_timeout").fetchone()[0] == 30_000
    monkeypatch.setenv("RERANKER_DB", str(db_path.with_name("from-env.db")))
    with Store() as from_env:
        assert from_env.path == db_path.with_name("from-env.db") and from_env.path.exists()


def test_a_ranking_stored_after_a_later_one_changes_the_data_version_and_is_the_latest(store: Store, monkeypatch):
    """A ranking took its time before encoding its pages and waiting for the write lock: stored
    after another that began later, its scores' time was older than the newest, and a query
    ranked again at a setting stored before (no row added, only times moved) left
    `data_version` unchanged, so a cached evaluation or export selection went on being shown."""
    A = "qwen3-vl-reranker-2b"
    pages = make_pages(3, seed=1)
    query_id = store.save_ranking("revenue?", None, pages, scores={A: [0.9, 0.1, 0.2]}, settings={A: {"max_pixels": 1}})
    store.save_ranking("revenue?", None, pages, scores={A: [0.1, 0.9, 0.2]}, settings={A: {"max_pixels": 2}})
    begun, go = threading.Event(), threading.Event()
    real_stage = Store.stage_pages

    def stage(self, *args):  # the ranking in thread "again" waits after it began, as behind a slow encode
        if threading.current_thread().name == "again":
            begun.set()
            go.wait(10)
        return real_stage(self, *args)

    monkeypatch.setattr(Store, "stage_pages", stage)
    again = threading.Thread(name="again", target=lambda: store.save_ranking(
        "revenue?", None, pages, scores={A: [0.9, 0.1, 0.2]}, settings={A: {"max_pixels": 1}}))
    again.start()
    assert begun.wait(10)
    ranked(store, make_pages(1, seed=7), "another question")  # begun later, stored first
    before = store.data_version()
    go.set()
    again.join(10)
    assert store.data_version() != before
    assert [page.scores[A] for page in store.query_pages(query_id)] == [0.9, 0.1, 0.2]  # stored last: the latest


def test_the_data_version_tells_apart_a_database_put_back_from_a_backup(store: Store, tmp_path: Path):
    """After a backup is put back in place of the file, the next judgment takes the id of one
    the backup lacks: the largest ids alone were those of a store seen before."""
    pages = make_pages(3)
    query_id = ranked(store, pages)
    store.record_judgment(query_id, pages[0].content_hash, "ann", "relevant")
    backup = store.backup(tmp_path / "backup.db")
    store.record_judgment(query_id, pages[1].content_hash, "ann", "relevant")
    seen = store.data_version()
    with Store.existing(backup) as earlier:
        earlier.backup(store.path)
    store.record_judgment(query_id, pages[1].content_hash, "ann", "not_relevant")
    assert store.db.execute("SELECT MAX(id) FROM judgments").fetchone()[0] == seen[0]  # the id seen before
    assert store.data_version() != seen


def test_the_write_ahead_log_does_not_keep_the_size_a_long_read_let_it_reach(db_path: Path, monkeypatch):
    """While a read holds a snapshot (an export), SQLite cannot start the log over, so pages
    written meanwhile pile up in it; it kept that size for good (130 MB after a 200-page upload)."""
    monkeypatch.setattr(store_module, "WAL_KEPT_BYTES", 2**20)
    store = Store(db_path)  # its connections open under the small limit
    wal = Path(f"{store.path}-wal")
    reader = Store(store.path)
    with reader.snapshot():
        reader.list_queries()  # the snapshot's moment
        for n in range(4):
            ranked(store, make_pages(4, f"upload {n}.pdf", seed=n, size=(300, 300)), f"question {n}")
        assert wal.stat().st_size > 3 * 2**20  # 16 pages of noise, ~270 KB each
    ranked(store, make_pages(1, "later.pdf", seed=9), "later")  # the log starts over, then is cut back
    store.db.execute("PRAGMA wal_checkpoint(PASSIVE)")
    ranked(store, make_pages(1, "later still.pdf", seed=10), "later still")
    assert wal.stat().st_size <= 2**20
    assert len(store.list_queries()) == 6
    reader.close()
    store.close()


def test_timestamps_are_utc_iso():
    stamp = datetime.fromisoformat(store_module.now())
    assert stamp.tzinfo is not None and abs(stamp - datetime.now(timezone.utc)) < timedelta(seconds=5)


# ----- PNGs encoded ahead (while the models score) ----------------------------------------------
def test_staged_pngs_are_the_ones_saved_and_stored_pages_are_not_encoded_again(store: Store, monkeypatch):
    pages = make_pages(4, size=(40, 30))
    ranked(store, pages[:2])  # already stored: nothing to stage for these
    encoded = []
    real = store_module.encode_png
    monkeypatch.setattr(store_module, "encode_png", lambda image: encoded.append(image.size) or real(image))
    store.stage_pages(pages)
    assert len(encoded) <= 2 and set(store._staged) == {page.content_hash for page in pages[2:]}
    ranked(store, pages, query="a second query")
    assert len(encoded) == 2 and not store._staged  # taken, not encoded twice
    for page in pages:
        assert list(store.page_image(page.content_hash).getdata()) == list(page.image.getdata())


def test_staged_pngs_of_a_request_that_never_saved_are_bounded(store: Store, monkeypatch):
    monkeypatch.setattr(store_module, "MAX_STAGED_PAGES", 3)
    store.stage_pages(make_pages(5, size=(8, 8)))
    assert len(store._staged) == 3
    pages = make_pages(5, size=(8, 8))
    ranked(store, pages)  # the two dropped ones are simply encoded at save time
    assert all(store.page_image(page.content_hash).size == (8, 8) for page in pages)


def test_a_query_asked_again_at_another_budget_keeps_the_earlier_pages_scores(store: Store):
    """The same question over another upload at another image budget: the first upload's pages
    keep their (latest) scores, so evaluation and export still see them as ranked."""
    A = "qwen3-vl-reranker-2b"
    first, second = make_pages(3, "2023.pdf", seed=3), make_pages(2, "2024.pdf", seed=4)
    query_id = store.save_ranking("revenue?", None, first, scores={A: [0.9, 0.2, 0.3]}, settings={A: {"max_pixels": 1}})
    again = store.save_ranking("revenue?", None, second, scores={A: [0.5, 0.6]}, settings={A: {"max_pixels": 2}})
    assert again == query_id
    pages = store.query_pages(query_id)
    assert [p.scores[A] for p in pages] == [0.9, 0.2, 0.3, 0.5, 0.6]
    assert [p.ranks[A] for p in pages] == [1, 5, 4, 3, 2]
    # A page scored under both budgets shows its latest score; one budget only when asked.
    store.save_ranking("revenue?", None, first[:1], scores={A: [0.1]}, settings={A: {"max_pixels": 2}})
    assert store.query_pages(query_id)[0].scores[A] == 0.1
    only_first = store.query_pages(query_id, settings={A: store_module.settings_key({"max_pixels": 1})})
    assert [p.scores.get(A) for p in only_first] == [0.9, 0.2, 0.3, None, None]
    # Ranked again at the first budget (its scores found stored, as the app does): they are the
    # latest again, as the note that names mixed settings advises; values and times kept.
    store.save_ranking("revenue?", None, first, scores={A: [0.9, 0.2, 0.3]}, settings={A: {"max_pixels": 1}},
                       seconds_per_page={A: 7.0})
    assert [p.scores[A] for p in store.query_pages(query_id)][:3] == [0.9, 0.2, 0.3]
    assert store.db.execute("SELECT COUNT(*) FROM scores WHERE seconds IS NOT NULL").fetchone()[0] == 0


def test_latest_scores_are_query_pages_for_every_query_at_once_and_the_data_version_follows_each_change(store: Store):
    """`latest_scores` (evaluation's read of the whole store) gives each query what `query_pages`
    gives it; `data_version` (what cached evaluations are kept by) moves with every change."""
    A, B = "qwen3-vl-reranker-2b", "qwen3-reranker-mm-2b"
    versions = [store.data_version()]

    def changed():
        versions.append(store.data_version())
        assert versions[-1] != versions[-2]

    first, second = make_pages(3, "2023.pdf", seed=3), make_pages(2, "2024.pdf", seed=4)
    query_id = store.save_ranking("revenue?", None, first, scores={A: [0.9, 0.2, 0.3], B: [0.1, 0.2, 0.3]},
                                  settings={A: {"max_pixels": 1}, B: {}})
    changed()
    store.save_ranking("revenue?", None, second, scores={A: [0.5, 0.6]}, settings={A: {"max_pixels": 2}})
    changed()  # pages added to the query
    store.save_ranking("revenue?", None, first[:1], scores={A: [0.1]}, settings={A: {"max_pixels": 2}})
    changed()  # a score at another budget
    other = ranked(store, make_pages(2, seed=9), "another question")
    changed()
    store.save_ranking("revenue?", None, first, scores={A: [0.9, 0.2, 0.3]}, settings={A: {"max_pixels": 1}})
    changed()  # the first budget's scores are the latest again, no row added
    store.record_judgment(query_id, first[0].content_hash, "ann", "relevant")
    changed()
    store.undo(query_id, "ann")
    changed()
    latest = store.latest_scores()
    store.query_pages(query_id), store.current_judgments()
    assert store.data_version() == versions[-1]  # reading changes nothing
    assert set(latest) == {query_id, other}
    for qid in (query_id, other):
        pages = store.query_pages(qid)
        hashes, scores = latest[qid]
        assert hashes == [page.page_hash for page in pages]
        models = {model for page in pages for model in page.scores}
        assert scores == {model: {page.page_hash: (page.scores[model], page.settings[model])
                                  for page in pages if model in page.scores} for model in models}
    assert [score for score, _ in latest[query_id][1][A].values()] == [0.9, 0.2, 0.3, 0.5, 0.6]


def test_since_counts_a_label_an_undo_brought_back_from_when_it_was_first_given(store: Store, monkeypatch):
    """Relevant on 1 March; a slip on 10 March (not relevant), undone at once: an export of labels
    given since 5 March must not offer the page again (it went out in the export up to then)."""
    day = [1]
    monkeypatch.setattr(store_module, "now", lambda: f"2026-03-{day[0]:02d}T09:00:00.000000+00:00")
    pages = make_pages(2)
    query_id = ranked(store, pages)
    slip, kept = pages[0].content_hash, pages[1].content_hash
    store.record_judgment(query_id, slip, "ann", RELEVANT)
    day[0] = 10
    store.record_judgment(query_id, slip, "ann", NOT_RELEVANT)
    store.undo(query_id, "ann")  # relevant again, as given on 1 March
    assert [(j.page_hash, j.label) for j in store.current_judgments()] == [(slip, RELEVANT)]
    assert store.current_judgments(since="2026-03-05") == []
    assert [j.label for j in store.current_judgments(since="2026-02-28")] == [RELEVANT]
    # A new label on 11 March, then on 12 March a slip, an undo, a relabel and an undo: back to
    # the label of 11 March (an undo that restores an undo's label follows it back).
    day[0] = 11
    store.record_judgment(query_id, kept, "ann", SKIP)
    day[0] = 12
    store.record_judgment(query_id, kept, "ann", NOT_RELEVANT)
    store.undo(query_id, "ann")  # → skip, as given on 11 March
    store.record_judgment(query_id, kept, "ann", RELEVANT)
    store.undo(query_id, "ann")  # → skip (the row before is the first undo: 11 March again)
    assert [(j.page_hash, j.label) for j in store.current_judgments(since="2026-03-11")] == [(kept, SKIP)]
    assert store.current_judgments(since="2026-03-12") == []


def test_a_backup_while_the_app_writes_holds_every_judgment(store: Store, db_path: Path, tmp_path: Path):
    """WAL mode: the newest rows wait in the -wal file, so `cp arena.db` can miss them; the
    backup has them all, and a backup to a folder that is not there is a message naming it."""
    query_id = ranked(store, make_pages(3))
    for page in store.query_pages(query_id):
        store.record_judgment(query_id, page.page_hash, "ann", "relevant")
    assert (db_path.parent / (db_path.name + "-wal")).stat().st_size > 0  # not yet in arena.db itself
    copy = store.backup(tmp_path / "backup.db")
    with Store(copy) as restored:
        assert restored.progress(query_id, "ann") == (3, 3)
        assert restored.current_labels(query_id, "ann") == store.current_labels(query_id, "ann")
    with pytest.raises(StoreError, match=r"backups/backup\.db could not be written as a backup: it cannot be opened"):
        store.backup(tmp_path / "backups" / "backup.db")
    with pytest.raises(StoreError, match=r"is a folder; give a file name"):
        store.backup(tmp_path)
    with pytest.raises(StoreError, match=r"is the database itself"):
        store.backup(db_path)
    notes = tmp_path / "notes.txt"
    notes.write_text("not a database, and kept")
    with pytest.raises(StoreError, match=r"notes\.txt could not be written as a backup: DatabaseError: file is not a database"):
        store.backup(notes)
    assert notes.read_text() == "not a database, and kept" and store.progress(query_id, "ann") == (3, 3)
    # Another program's database is refused whole (it was replaced by the backup, its tables gone)…
    other = tmp_path / "notes.db"
    with contextlib.closing(sqlite3.connect(other)) as conn:
        conn.execute("CREATE TABLE my_notes (t)")
        conn.execute("INSERT INTO my_notes VALUES ('kept')")
        conn.commit()
    with pytest.raises(StoreError, match=r"notes\.db is another program's database \(its tables: my_notes\), which this "
                                         r"would replace; it was left untouched"):
        store.backup(other)
    with contextlib.closing(sqlite3.connect(other)) as conn:
        assert conn.execute("SELECT t FROM my_notes").fetchall() == [("kept",)]
    # … while an earlier backup is replaced by the newer one.
    store.record_judgment(query_id, store.query_pages(query_id)[0].page_hash, "ann", "not_relevant")
    store.backup(copy)
    with Store(copy) as restored:
        assert restored.current_labels(query_id, "ann") == store.current_labels(query_id, "ann")


def test_the_readmes_backup_of_the_apps_database_refuses_one_that_is_not_there(tmp_path: Path, monkeypatch):
    """`Store.existing().backup(...)`: `Store()` made an empty database where RERANKER_DB was unset
    or wrong, and backed that up as if all was well."""
    missing = tmp_path / "elsewhere" / "arena.db"
    monkeypatch.setenv("RERANKER_DB", str(missing))
    with pytest.raises(StoreError, match=f"no database at {missing}"):
        Store.existing().backup(tmp_path / "backup.db")
    assert not missing.exists() and not (tmp_path / "backup.db").exists()
    with Store(tmp_path / "arena.db") as store:
        query_id = ranked(store, make_pages(2))
    monkeypatch.setenv("RERANKER_DB", str(tmp_path / "arena.db"))
    with Store.existing() as store:
        store.backup(tmp_path / "backup.db")
    with Store(tmp_path / "backup.db") as copy:
        assert copy.query(query_id) is not None


def test_a_write_whose_commit_fails_is_rolled_back_and_the_file_stays_usable(tmp_path: Path, monkeypatch):
    """Without WAL (a file system without shared memory), a COMMIT waits for readers and fails
    with SQLITE_BUSY past the busy timeout. The failed transaction must not stay open: it kept
    the file locked for every other connection, and that thread's next write failed with "write
    transactions do not nest"."""
    monkeypatch.setattr(store_module, "BUSY_TIMEOUT_S", 0.2)
    monkeypatch.setattr(store_module, "_enable_wal", lambda db, path: None)  # WAL not possible here
    path = tmp_path / "no-wal.db"
    with Store(path) as store:
        assert store.db.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
        kept = ranked(store, make_pages(2), "kept")
        reader = sqlite3.connect(path, isolation_level=None)
        reader.execute("BEGIN")
        reader.execute("SELECT count(*) FROM queries").fetchall()  # a reader's shared lock, as an export holds
        with pytest.raises(StoreError, match="locked"):
            ranked(store, make_pages(2, seed=1), "refused")
        assert not store.db.conn.in_transaction
        reader.execute("ROLLBACK")
        reader.close()
        assert [q.text for q in Store(path).list_queries()] == ["kept"]  # another connection reads at once
        later = ranked(store, make_pages(2, seed=2), "later")  # and this thread writes again
        assert {q.id for q in store.list_queries()} == {kept, later}


def test_a_file_that_cannot_switch_to_wal_is_used_and_said_so(tmp_path: Path, monkeypatch, caplog):
    """SQLite answers the mode it keeps where WAL is not possible; past the busy timeout the store
    opens anyway, and the log says readers and writers will wait on each other."""

    class Connection:
        def execute(self, sql):
            return SimpleNamespace(fetchone=lambda: ("delete",))

    monkeypatch.setattr(store_module, "BUSY_TIMEOUT_S", 0.2)
    store_module._enable_wal(Connection(), "arena.db")
    assert "WAL mode could not be set for arena.db (journal mode delete)" in caplog.text


def test_another_programs_sqlite_file_is_refused_and_left_as_it_was(tmp_path: Path):
    """RERANKER_DB pointed at the wrong file: the app says so rather than add its tables to it."""
    other = tmp_path / "crm.db"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE customers (id INTEGER, name TEXT)")
    before = other.read_bytes()
    with pytest.raises(StoreError, match="is not a database of this app \\(its tables: customers\\)"):
        Store(other)
    assert other.read_bytes() == before
    with sqlite3.connect(other) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    empty = tmp_path / "new.db"
    empty.touch()
    with Store(empty) as store:  # an empty file is this app's to fill
        assert store.list_queries() == []


@pytest.mark.parametrize("user_version", [1, 2, 7])
def test_another_programs_file_is_refused_whatever_its_schema_version_says(tmp_path: Path, user_version):
    """Many programs set user_version: a file without this app's tables is not this app's, at
    any version (it was taken for a database of this app, or of a newer one, and switched to WAL)."""
    other = tmp_path / "crm.db"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE customers (id INTEGER, name TEXT)")
        conn.execute(f"PRAGMA user_version = {user_version}")
    before = other.read_bytes()
    with pytest.raises(StoreError, match="is not a database of this app \\(its tables: customers\\)"):
        Store(other)
    assert other.read_bytes() == before


def test_a_database_of_a_newer_app_is_refused_as_newer_not_as_foreign(db_path: Path):
    with Store(db_path) as store:
        store.db.execute("CREATE TABLE added_later (x)")
        store.db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(SchemaTooNewError, match=f"newer than this app's {SCHEMA_VERSION}"):
        Store(db_path)


def test_the_annotator_spelling_lookup_uses_an_index_made_on_open(db_path: Path):
    """Store.known_annotator runs on every Annotate view: a scan of 80,000 judgments took 20 ms.
    The index is made where missing, without a new schema version (earlier apps still open it)."""
    with Store(db_path) as store:
        store.db.execute("DROP INDEX judgments_annotator_nocase")  # as in a file an earlier version made
    with Store(db_path) as store:
        plan = " ".join(str(row) for row in store.db.execute(
            "EXPLAIN QUERY PLAN SELECT DISTINCT annotator FROM judgments WHERE annotator = ? COLLATE NOCASE", ["x"]))
        assert "judgments_annotator_nocase" in plan
        assert schema_version(store.db) == SCHEMA_VERSION


def saved_query(path: Path) -> int:
    with Store(path) as store:
        pages = make_pages(2)
        query_id = store.save_ranking("archived question", None, pages, scores={"qwen3-vl-reranker-2b": [0.9, 0.1]})
        store.record_judgment(query_id, pages[0].content_hash, "ann", RELEVANT)
        store.db.execute("DROP INDEX judgments_annotator_nocase")  # made on a writable open only
    return query_id


def test_a_database_this_process_may_not_write_is_read_without_changing_it(db_path: Path, monkeypatch):
    """An archived copy or a read-only mount: `existing` (export, eval) reads it as it is, where
    opening it for writing would switch it to WAL and bring its schema up to date."""
    query_id = saved_query(db_path)
    before = db_path.read_bytes()
    monkeypatch.setattr(store_module.os, "access", lambda path, mode: False)
    with Store.existing(db_path) as store:
        # Immutable: read only, SQLite left -wal and -shm files as read-only as the database,
        # and once the file was writable again they refused every write.
        assert store.read_only == "immutable"
        assert [j.label for j in store.current_judgments(query_id=query_id)] == [RELEVANT]
        assert store.known_annotator("ANN") == "ann"
        with pytest.raises(StoreError, match="could not be written: it is read-only here"):
            store.record_judgment(query_id, store.query_pages(query_id)[1].page_hash, "ann", NOT_RELEVANT)
    assert db_path.read_bytes() == before and sorted(db_path.parent.glob(db_path.name + "-*")) == []
    with contextlib.closing(sqlite3.connect(db_path)) as connection:  # no lookup index was made
        assert connection.execute("SELECT name FROM sqlite_master WHERE name = 'judgments_annotator_nocase'").fetchall() == []


def test_a_read_only_database_of_an_older_schema_or_a_newer_app_is_refused_by_name(db_path: Path, monkeypatch):
    saved_query(db_path)
    monkeypatch.setattr(store_module.os, "access", lambda path, mode: False)
    connection = sqlite3.connect(db_path)
    connection.execute(f"PRAGMA user_version = {READ_AS_IS_FROM - 1}")
    connection.close()
    with pytest.raises(StoreError, match=f"{db_path} is read-only here and has schema {READ_AS_IS_FROM - 1}"):
        Store.existing(db_path)
    connection = sqlite3.connect(db_path)
    connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    connection.close()
    with pytest.raises(SchemaTooNewError, match=f"^{db_path}: database schema {SCHEMA_VERSION + 1} is newer"):
        Store.existing(db_path)


def test_an_archived_copy_in_a_read_only_folder_exports_and_evaluates(tmp_path):
    """For real, as a user who may not write the file nor its folder (root may write anything):
    SQLite cannot make the WAL index file beside it, and reads it as immutable."""
    import shutil
    import tempfile

    root = Path(__file__).resolve().parents[1]
    as_nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root and setpriv to run as another user")
    probe = subprocess.run([*as_nobody, sys.executable, "-c", "import reranker.store"], cwd=root, capture_output=True,
                           env={**os.environ, "PYTHONPATH": str(root)})
    if probe.returncode != 0:
        pytest.skip("another user cannot read this checkout")
    folder = Path(tempfile.mkdtemp(prefix="archive-"))  # not under pytest's folder, which only root may enter
    try:
        db = folder / "arena.db"
        saved_query(db)
        before, files = db.read_bytes(), sorted(folder.iterdir())
        db.chmod(0o444)
        folder.chmod(0o555)
        printed = {}
        for command in ("export", "eval"):
            options = ["--format", "pointwise", "--preview"] if command == "export" else ["--annotator", "ANN"]
            done = subprocess.run([*as_nobody, sys.executable, "-m", "reranker", command, *options, "--db", str(db)],
                                  cwd=root, capture_output=True, text=True, timeout=120,
                                  env={**os.environ, "PYTHONPATH": str(root)})
            assert done.returncode == 0, done.stderr[-2000:]
            printed[command] = done.stdout
        assert "pointwise: 1 row from 1 query" in printed["export"] and "archived question" not in printed["eval"]
        assert db.read_bytes() == before and sorted(folder.iterdir()) == files
    finally:
        folder.chmod(0o755)
        shutil.rmtree(folder)


READ_ONLY_SPELL = """
import os, sys
from concurrent.futures import ThreadPoolExecutor
sys.path.insert(0, os.path.join(os.getcwd(), "tests"))
from test_store import make_pages
from reranker.store import Store, StoreError
db = sys.argv[1]
store = Store(db)
query_id = store.save_ranking("q", None, make_pages(2), scores={"m": [0.5, 0.4]}, settings={"m": {}})
page = store.query_pages(query_id)[0].page_hash
store.record_judgment(query_id, page, "ann", "relevant")
worker = ThreadPoolExecutor(1)  # one long-lived thread, as a server's worker

def judge(label):
    try:
        store.record_judgment(query_id, page, "ann", label)
        return "saved"
    except StoreError as error:
        return str(error)

os.chmod(db, 0o444)
print(worker.submit(judge, "not_relevant").result())  # the thread's first connection: opened read-only
os.chmod(db, 0o644)
print(worker.submit(judge, "skip").result())
"""


def test_a_thread_that_met_a_read_only_database_writes_once_it_is_writable_again(tmp_path):
    """For real, with the permissions binding (root without its override of them): SQLite opened
    the file read-only without a word, and the server thread kept that connection, refusing every
    judgment as "read-only" after the file was made writable again, until a restart."""
    import shutil

    root = Path(__file__).resolve().parents[1]
    bound = ["setpriv", "--bounding-set=-dac_override,-dac_read_search", "--inh-caps=-dac_override,-dac_read_search"]
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root and setpriv to give up root's override of file permissions")
    done = subprocess.run([*bound, sys.executable, "-c", READ_ONLY_SPELL, str(tmp_path / "arena.db")], cwd=root,
                          capture_output=True, text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(root)})
    assert done.returncode == 0, done.stderr[-2000:]
    refused, saved = done.stdout.splitlines()
    assert "could not be written: it is read-only here" in refused
    assert saved == "saved"


def test_a_name_in_another_capitalisation_judges_reads_and_undoes_as_the_same_annotator(store: Store):
    """The app mapped names, the Python API did not: "ALICE" was a second annotator of its own."""
    query_id = ranked(store, make_pages(3))
    first, second, _ = (page.page_hash for page in store.query_pages(query_id))
    store.record_judgment(query_id, first, "alice", RELEVANT)
    store.record_judgment(query_id, second, "ALICE", NOT_RELEVANT)
    assert store.annotators() == ["alice"]
    assert store.progress(query_id, "Alice") == (2, 3)
    assert store.current_labels(query_id, "ALICE") == {first: RELEVANT, second: NOT_RELEVANT}
    assert [j.label for j in store.history(query_id, second, " ALICE ")] == [NOT_RELEVANT]
    assert store.undo(query_id, "aLiCe").page_hash == second


def test_a_closed_store_an_empty_path_and_a_file_that_is_no_database_are_errors_naming_them(db_path: Path, tmp_path):
    store = Store(db_path)
    store.close()
    with pytest.raises(StoreError, match=f"The store of {db_path} was closed"):
        store.list_queries()  # it used to open the file again, quietly
    with pytest.raises(StoreError, match="the database path is empty"):
        Store("")  # it used to fall back to the app's own database
    notes = tmp_path / "README.md"
    notes.write_text("# not a database\n")
    with pytest.raises(StoreError, match=f"The database {notes} could not be opened: DatabaseError: file is not a database"):
        Store(notes)
    assert notes.read_text() == "# not a database\n"


def test_first_judgments_under_two_capitalisations_at_once_are_one_annotator(store: Store):
    """The spelling was looked up before the write lock: two first judgments arriving together
    as "dana7" and "DANA7" both found no such name (197 of 200 tries made two annotators)."""
    query_id = ranked(store, make_pages(2))
    first, second = (page.page_hash for page in store.query_pages(query_id))
    for trial in range(30):
        barrier = threading.Barrier(2)

        def judge(name, page_hash):
            barrier.wait()
            store.record_judgment(query_id, page_hash, name, RELEVANT)

        threads = [threading.Thread(target=judge, args=(f"dana{trial}", first)),
                   threading.Thread(target=judge, args=(f"DANA{trial}", second))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len([name for name in store.annotators() if name.lower() == f"dana{trial}"]) == 1, trial


def _schema_2_database(db_path: Path) -> int:
    """A database as the app left it before the guidelines moved into it (schema 2), with a query
    and a judgment; returns the query's id."""
    query_id = saved_query(db_path)
    with contextlib.closing(sqlite3.connect(db_path)) as connection:
        connection.execute("DROP TABLE guidelines")
        connection.execute("PRAGMA user_version = 2")
        connection.commit()
    return query_id


def test_guidelines_are_kept_in_the_database_with_every_earlier_version(db_path: Path):
    with Store(db_path) as store:
        assert store.guidelines() is None
        first = store.save_guidelines("Relevant: the answer is on the page.", "lead", based_on=0)
        assert store.save_guidelines("Relevant: the answer is on the page.", "other") == first  # nothing new
        second = store.save_guidelines("Relevant: the page alone answers the query.", based_on=first.id)
        latest = store.guidelines()
        assert latest == second and (latest.text, latest.author) == ("Relevant: the page alone answers the query.", "")
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            store.db.execute("DELETE FROM guidelines")
        assert [tuple(row) for row in store.db.execute("SELECT text, author FROM guidelines ORDER BY id")] == [
            ("Relevant: the answer is on the page.", "lead"), ("Relevant: the page alone answers the query.", "")]
    backup = db_path.with_name("backup.db")
    with Store(db_path) as store:
        store.backup(backup)
    with Store(backup) as copy:  # a backup is the one file again
        assert copy.guidelines().text == "Relevant: the page alone answers the query."


def test_an_edit_of_guidelines_a_colleague_has_changed_since_is_refused_not_saved_over_theirs(db_path: Path):
    with Store(db_path) as store:
        loaded = store.save_guidelines("v1", "lead")
        theirs = store.save_guidelines("v2 by a colleague", "colleague", based_on=loaded.id)
        with pytest.raises(GuidelinesChanged, match="Other guidelines were saved by colleague on .* after yours were loaded"):
            store.save_guidelines("my edit of v1", "me", based_on=loaded.id)
        assert store.guidelines() == theirs
        with pytest.raises(GuidelinesChanged):  # edited from the default text while a version exists
            store.save_guidelines("my edit of the default", "me", based_on=0)
        assert store.save_guidelines("v2 by a colleague", "me", based_on=loaded.id) == theirs  # the same text: no conflict
    with Store(db_path.with_name("replaced.db")) as fresh:  # a version the editor saw is gone with its database
        saved = fresh.save_guidelines("my edit", "me", based_on=loaded.id)
        assert fresh.guidelines() == saved and saved.text == "my edit"


def test_the_guidelines_file_of_earlier_versions_is_read_into_the_database(db_path: Path):
    query_id = _schema_2_database(db_path)
    old_file = db_path.with_suffix(".guidelines.md")
    old_file.write_text("Relevant: shows the table itself. ✓", encoding="utf-8")
    os.utime(old_file, (1_700_000_000, 1_700_000_000))
    with Store(db_path) as store:
        assert schema_version(store.db) == SCHEMA_VERSION
        imported = store.guidelines()
        assert imported.text == "Relevant: shows the table itself. ✓"
        assert imported.created.startswith("2023-11-14T22:13:20")  # when the file was last saved, not now
        assert [j.label for j in store.current_judgments(query_id=query_id)] == [RELEVANT]
    old_file.write_text("edited after the move", encoding="utf-8")
    with Store(db_path) as store:  # read in once, by the migration; the file is left as it was
        assert store.guidelines().text == "Relevant: shows the table itself. ✓"


def test_the_guidelines_file_is_found_beside_a_link_to_the_database(tmp_path: Path):
    """SQLite names the file a link leads to; the app wrote the guidelines beside the path it was given."""
    real = tmp_path / "real" / "arena-prod.db"
    real.parent.mkdir()
    _schema_2_database(real)
    (tmp_path / "data").mkdir()
    link = tmp_path / "data" / "arena.db"
    link.symlink_to(real)
    link.with_suffix(".guidelines.md").write_text("beside the link", encoding="utf-8")
    with Store(link) as store:
        assert store.guidelines().text == "beside the link"


def test_an_unreadable_guidelines_file_is_named_in_the_log_and_left_as_it_is(db_path: Path, caplog):
    _schema_2_database(db_path)
    old_file = db_path.with_suffix(".guidelines.md")
    old_file.write_bytes(b"\xff\xfe not UTF-8")
    with caplog.at_level("WARNING"), Store(db_path) as store:
        assert store.guidelines() is None
    assert f"the guidelines file {old_file} could not be read" in caplog.text
    assert old_file.read_bytes() == b"\xff\xfe not UTF-8"


def test_a_read_only_database_from_before_the_guidelines_is_read_as_it_is(db_path: Path, monkeypatch):
    """Schema 3 only added the guidelines: an archived schema-2 copy still exports and evaluates,
    its guidelines read from the file beside it, as that app kept them."""
    query_id = _schema_2_database(db_path)
    before = db_path.read_bytes()
    monkeypatch.setattr(store_module.os, "access", lambda path, mode: False)
    with Store.existing(db_path) as store:
        assert schema_version(store.db) == 2
        assert [j.label for j in store.current_judgments(query_id=query_id)] == [RELEVANT]
        assert store.guidelines() is None
    db_path.with_suffix(".guidelines.md").write_text("the archive's guidelines", encoding="utf-8")
    with Store.existing(db_path) as store:
        assert store.guidelines().text == "the archive's guidelines"
    assert db_path.read_bytes() == before


def test_a_database_path_that_is_a_folder_or_under_a_file_is_named_as_such(tmp_path: Path):
    with pytest.raises(StoreError, match=f"^The database {tmp_path} is a folder; give a file name"):
        Store(tmp_path)
    (tmp_path / "notes.txt").write_text("kept")
    with pytest.raises(StoreError, match=r"notes\.txt/arena\.db cannot be made: .*notes\.txt is not a folder"):
        Store(tmp_path / "notes.txt" / "arena.db")
    with pytest.raises(StoreError, match=r"arena\.db cannot be made: a file stands where a folder on the way to \S+notes\.txt/sub"):
        Store(tmp_path / "notes.txt" / "sub" / "arena.db")
    assert (tmp_path / "notes.txt").read_text() == "kept"


def test_a_database_folder_that_cannot_be_made_is_named_not_called_read_only(tmp_path: Path, monkeypatch):
    """RERANKER_DB=/data/arena.db on a Space whose storage was not mounted said "it is read-only
    here (check the file's permissions)" about a file that did not exist."""
    def refused(self, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "mkdir", refused)  # as for someone who may not write in / (we may be root)
    with pytest.raises(StoreError, match=r"^The database \S+/data/arena\.db cannot be made: its folder \S+/data does "
                                         r"not exist and cannot be created \(Permission denied\)\. Is the disk or volume"):
        Store(tmp_path / "data" / "arena.db")


def test_text_typed_in_either_unicode_form_is_one_query_and_one_annotator(store: Store):
    """"café" composed (NFC) and decomposed (NFD) were two queries, and "José" two annotators:
    one person's two labels split into a tied vote, and κ counted two people."""
    import unicodedata

    composed, decomposed = (unicodedata.normalize(form, "café menu") for form in ("NFC", "NFD"))
    assert composed != decomposed
    pages = make_pages(2)
    first = ranked(store, pages, composed)
    assert ranked(store, pages, decomposed) == first and store.query(first).text == composed
    hashes = [p.content_hash for p in pages]
    found = store.cached_scores("model-a", {"max_pixels": 1280}, decomposed, None, hashes)
    assert found == store.cached_scores("model-a", {"max_pixels": 1280}, composed, None, hashes) and len(found) == 2
    jose_nfc, jose_nfd = (unicodedata.normalize(form, "José") for form in ("NFC", "NFD"))
    store.record_judgment(first, pages[0].content_hash, jose_nfd, RELEVANT)
    store.record_judgment(first, pages[0].content_hash, jose_nfc, NOT_RELEVANT)  # a relabel, not a second vote
    assert store.annotators() == [jose_nfc]
    assert store.current_labels(first, jose_nfd) == {pages[0].content_hash: NOT_RELEVANT}


def test_a_name_with_control_characters_or_nothing_visible_is_refused(store: Store):
    """SQLite's NOCASE comparison stops at a NUL: "team\\0carol" was taken for "team\\0alice" and
    relabelled her page; a zero-width space judged as a name nobody can see."""
    pages = make_pages(1)
    query_id = ranked(store, pages)
    store.record_judgment(query_id, pages[0].content_hash, "team alice", RELEVANT)
    for name in ("team\x00carol", "bob\nsmith", "\u200b", "\u200b\u200d ", "\u0301"):
        with pytest.raises(ValueError, match="annotator must be a name that shows, without control characters"):
            store.record_judgment(query_id, pages[0].content_hash, name, NOT_RELEVANT)
    store.record_judgment(query_id, pages[0].content_hash, "Zoë 👩\u200d💻", NOT_RELEVANT)  # a joiner inside a name is fine
    assert sorted(store.annotators()) == ["Zoë 👩\u200d💻", "team alice"]
    assert store.current_labels(query_id, "team alice") == {pages[0].content_hash: RELEVANT}


def test_the_store_holds_names_and_queries_to_the_apps_rules(store: Store):
    """A name over 80 characters (the app's limit) was refused by the app and stored by the
    Python API, which took 200; a query of a zero-width space was stored (only spaces were empty)."""
    import unicodedata

    import gradio as gr

    from reranker.store import MAX_ANNOTATOR_CHARS
    from reranker.ui.annotators import annotator_name

    pages = make_pages(1)
    query_id = ranked(store, pages)
    store.record_judgment(query_id, pages[0].content_hash, "a" * MAX_ANNOTATOR_CHARS, RELEVANT)
    # 82 code points, 41 once composed: fine; "\u0958" composes to two, so 41 of them are too many.
    for name in ("a" * (MAX_ANNOTATOR_CHARS + 1), "e\u0301" * 41, "\u0958" * 41):
        if len(unicodedata.normalize("NFC", name)) > MAX_ANNOTATOR_CHARS:
            with pytest.raises(ValueError, match=f"at most {MAX_ANNOTATOR_CHARS} characters"):
                store.record_judgment(query_id, pages[0].content_hash, name, RELEVANT)
            with pytest.raises(gr.Error, match=f"{MAX_ANNOTATOR_CHARS} characters at most"):
                annotator_name(name)
        else:
            assert annotator_name(name) == name
            store.record_judgment(query_id, pages[0].content_hash, name, RELEVANT)
    # A longer name stored before the limit (the Python API took 200 characters) still judges and undoes.
    veteran = "L" * 150
    with contextlib.closing(sqlite3.connect(store.path)) as written_before, written_before:
        written_before.execute("INSERT INTO judgments (query_id, page_hash, annotator, label, created) VALUES (?, ?, ?, ?, ?)",
                               [query_id, pages[0].content_hash, veteran, RELEVANT, store_module.now()])
    store.record_judgment(query_id, pages[0].content_hash, veteran, NOT_RELEVANT)
    assert store.current_labels(query_id, veteran) == {pages[0].content_hash: NOT_RELEVANT}
    assert store.undo(query_id, veteran) is not None
    assert store.current_labels(query_id, veteran) == {pages[0].content_hash: RELEVANT}
    for query in ("\u200b", " \ufeff\u2060 "):
        with pytest.raises(ValueError, match="query text is empty"):
            store.save_ranking(query, None, pages, scores={}, settings={})


def test_a_database_this_user_may_not_write_is_refused_before_sqlite_touches_it(db_path: Path, monkeypatch):
    """Opened for writing, a read-only file failed every ranking and judgment, and SQLite left
    -wal/-shm files with its permissions that kept refusing writes once it was writable again."""
    with Store(db_path) as store:
        ranked(store, make_pages(1))
    files = sorted(db_path.parent.iterdir())
    unwritable = {str(db_path)}
    monkeypatch.setattr(store_module.os, "access", lambda path, mode: str(path) not in unwritable)
    with pytest.raises(StoreError, match=rf"^The database {re.escape(str(db_path))} is read-only here, and the app "
                       r"writes every ranking and judgment to it: make it writable .*chmod u\+w"):
        Store(db_path)
    assert sorted(db_path.parent.iterdir()) == files  # nothing made beside it
    assert Store.existing(db_path).query_count() == 1  # export and eval still read it (as it is)
    shm = Path(f"{db_path}-shm")
    shm.write_bytes(b"")
    unwritable = {str(shm)}  # left by a run while the file was read-only
    with pytest.raises(StoreError, match=rf"has a WAL index file this user may not write.*remove {re.escape(str(shm))}"):
        Store(db_path)


def test_a_database_behind_a_folder_this_user_may_not_enter_is_named(db_path: Path, monkeypatch):
    """Store.existing let the PermissionError of a locked folder through as a traceback."""
    real_stat = Path.stat

    def stat(path, *args, **kwargs):
        if path == db_path:
            raise PermissionError(13, "Permission denied", str(path))
        return real_stat(path, *args, **kwargs)

    monkeypatch.setattr(Path, "stat", stat)
    with pytest.raises(StoreError, match=rf"^The database {re.escape(str(db_path))} could not be opened: .*permissions"):
        Store.existing(db_path)


def test_a_database_removed_or_replaced_under_the_app_refuses_the_write_instead_of_losing_it(db_path: Path, tmp_path):
    """A connection keeps the file it opened: after the database was removed and a backup put in
    its place, a worker thread's judgments went into the old, unlinked file, acknowledged (ids,
    progress) and in no file anyone could open again."""
    from concurrent.futures import ThreadPoolExecutor

    store = Store(db_path)
    pages = make_pages(4)
    query_id = ranked(store, pages)
    worker = ThreadPoolExecutor(1)  # one of the server's threads, with its own connection
    worker.submit(store.record_judgment, query_id, pages[0].content_hash, "alice", RELEVANT).result()
    store.backup(tmp_path / "backup.db")
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db_path}{suffix}").unlink(missing_ok=True)
    (tmp_path / "backup.db").rename(db_path)  # the backup put in the file's place
    with pytest.raises(StoreError, match=rf"^The database {re.escape(str(db_path))} was removed or replaced while the "
                                         r"app was running, so this action read and saved nothing"):
        worker.submit(store.record_judgment, query_id, pages[1].content_hash, "alice", NOT_RELEVANT).result()
    # The next action uses the file there now, and what it saves is in that file.
    worker.submit(store.record_judgment, query_id, pages[2].content_hash, "alice", NOT_RELEVANT).result()
    assert worker.submit(store.progress, query_id, "alice").result() == (2, 4)
    store.close()
    with Store.existing(db_path) as reopened:
        assert reopened.current_labels(query_id, "alice") == {pages[0].content_hash: RELEVANT,
                                                               pages[2].content_hash: NOT_RELEVANT}
    worker.shutdown()


def test_a_replaced_database_is_told_once_not_once_a_thread_and_a_read_under_way_finishes(store: Store, db_path: Path):
    """Each of the server's threads refused an action of its own after one replacement (the
    annotator met the error again and again); a replacement met inside a read transaction (an
    export's snapshot) closed its connection under it: a bare ProgrammingError, not the message."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    threads = 6
    pool, everyone = ThreadPoolExecutor(threads), threading.Barrier(threads)
    list(pool.map(lambda _: (everyone.wait(), store.data_version()), range(threads)))  # a connection each
    with store.snapshot():
        store.data_version()
        os.replace(store.backup(db_path.parent / "copy.db"), db_path)
        store.data_version()  # the moment the read began, from the file it began on
    def action(_):
        try:
            store.data_version()
            return "ok"
        except StoreError as error:
            assert "was removed or replaced while the app was running" in str(error)
            return "refused"
    done = [pool.submit(action, n).result() for n in range(3 * threads)] + [action(0)]
    assert done.count("refused") == 1 and done[0] == "refused"
    pool.shutdown()


def test_a_file_replaced_while_a_write_waits_for_the_lock_is_not_written(store: Store, db_path: Path, monkeypatch):
    """The file is checked again once the write lock is held: waiting for it can take seconds."""
    pages = make_pages(2)
    query_id = ranked(store, pages)
    copy = store.backup(db_path.parent / "copy.db")
    real = store_module.write_transaction

    @contextlib.contextmanager
    def replaced_meanwhile(db):
        with real(db) as held:
            os.replace(copy, db_path)
            yield held

    monkeypatch.setattr(store_module, "write_transaction", replaced_meanwhile)
    with pytest.raises(StoreError, match="was removed or replaced while the app was running"):
        store.record_judgment(query_id, pages[0].content_hash, "alice", RELEVANT)
    monkeypatch.undo()
    assert store.current_labels(query_id, "alice") == {}  # read from the file now there
    store.record_judgment(query_id, pages[0].content_hash, "alice", RELEVANT)
    assert store.current_labels(query_id, "alice") == {pages[0].content_hash: RELEVANT}


def test_a_request_while_the_database_is_away_makes_no_empty_database_and_loses_nothing(db_path: Path, tmp_path):
    """A thread's first request while the files were away (a volume remounted, a restore under
    way) made a new empty database there; once the files were back, that connection made SQLite
    delete the real -wal, with every judgment not yet in the main file. Run in a process that
    ends as app.py does (os._exit: nothing is checkpointed on the way out)."""
    script = f"""
import os, sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
sys.path[:0] = [{str(Path(__file__).resolve().parent.parent)!r}, {str(Path(__file__).resolve().parent)!r}]
from test_store import make_pages, ranked
from reranker.store import Store, StoreError
db = Path({str(db_path)!r}); away = db.parent / "away"; away.mkdir()
store = Store(db); pages = make_pages(4); query_id = ranked(store, pages)
for page in pages:
    store.record_judgment(query_id, page.content_hash, "alice", "relevant")
for suffix in ("", "-wal", "-shm"):
    Path(f"{{db}}{{suffix}}").rename(away / f"arena.db{{suffix}}")
gap = ThreadPoolExecutor(1)
try:
    gap.submit(store.progress, query_id, "alice").result()
except StoreError as error:
    print("during the gap:", error)
print("made there:", db.exists())
for suffix in ("", "-wal", "-shm"):
    (away / f"arena.db{{suffix}}").rename(f"{{db}}{{suffix}}")
print("after:", gap.submit(store.progress, query_id, "alice").result())
gap.submit(store.record_judgment, query_id, pages[0].content_hash, "bob", "skip").result()
os._exit(0)
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert f"during the gap: The database {db_path} could not be opened: it cannot be opened" in done.stdout
    assert "made there: False" in done.stdout and "after: (4, 4)" in done.stdout
    with Store.existing(db_path) as reopened:
        assert len(reopened.current_judgments(annotator="alice")) == 4
        assert [j.label for j in reopened.current_judgments(annotator="bob")] == [SKIP]
        assert reopened.integrity_check() == "ok"


def test_a_full_disk_sqlite_calls_an_io_error_is_named_as_full(db_path: Path, monkeypatch):
    """Opening a database nobody has open makes its WAL index (-shm); on a full disk SQLite
    says only "disk I/O error", and app start, export, eval and backup printed that."""
    error = sqlite3.OperationalError("disk I/O error")
    assert "disk I/O error" in str(store_module._explain(db_path, error, "opened"))  # a disk with room: as it is
    monkeypatch.setattr(store_module.shutil, "disk_usage", lambda path: SimpleNamespace(total=2**20, used=2**20, free=0))
    assert str(store_module._explain(db_path, error, "opened")) == (
        f"The database {db_path} could not be opened: the disk holding it is full; free some space and try again.")


def test_a_database_on_a_read_only_mount_is_told_to_mount_it_read_write_not_chmod(db_path: Path, monkeypatch):
    with Store(db_path) as store:
        ranked(store, make_pages(1))
    monkeypatch.setattr(store_module.os, "access", lambda path, mode: False)
    real_statvfs = os.statvfs
    monkeypatch.setattr(store_module.os, "statvfs", lambda path: SimpleNamespace(
        f_flag=real_statvfs(path).f_flag | os.ST_RDONLY))
    with pytest.raises(StoreError, match=rf"^The database {re.escape(str(db_path))} is on a file system mounted "
                                         r"read-only.*mount it read-write, or point RERANKER_DB at a file on a writable disk"):
        Store(db_path)


def test_a_judgment_expecting_a_label_changed_meanwhile_records_nothing(store: Store):
    """`expected`: the label the annotator saw. Another tab's label since wins until it is seen."""
    from reranker.store import CLEARED, LabelChanged

    pages = make_pages(2)
    query_id = ranked(store, pages)
    page = pages[0].content_hash
    store.record_judgment(query_id, page, "ann", RELEVANT, expected=CLEARED)
    with pytest.raises(LabelChanged) as changed:
        store.record_judgment(query_id, page, "ann", NOT_RELEVANT, expected=CLEARED)  # a tab that saw it unjudged
    assert changed.value.current == RELEVANT
    assert [j.label for j in store.history(query_id, page, "ann")] == [RELEVANT]
    store.record_judgment(query_id, page, "ann", NOT_RELEVANT, expected=RELEVANT)
    store.undo(query_id, "ann")
    store.undo(query_id, "ann")
    with pytest.raises(LabelChanged) as changed:
        store.record_judgment(query_id, page, "ann", SKIP, expected=NOT_RELEVANT)
    assert changed.value.current == CLEARED
    with pytest.raises(ValueError, match="was not ranked"):  # a page that is not there says so, not "changed"
        store.record_judgment(query_id, "ab" * 32, "ann", SKIP, expected=RELEVANT)
    assert store.record_judgment(query_id, page, "ann", SKIP, expected=CLEARED) is not None


def test_a_damaged_database_is_named_as_damaged_with_what_to_do(db_path: Path):
    """A file cut short said only "DatabaseError: database disk image is malformed"."""
    with Store(db_path) as store:
        for seed in range(4):
            ranked(store, make_pages(20, seed=seed, size=(64, 64)), f"query {seed}")
    whole = db_path.read_bytes()
    db_path.write_bytes(whole[: len(whole) // 2])
    for opening in (Store.existing, Store):
        with pytest.raises(StoreError, match=rf"^The database {re.escape(str(db_path))} could not be opened: it is "
                                             r"damaged \(SQLite: database disk image is malformed\); put back a backup"):
            opening(db_path)
