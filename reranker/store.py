"""Everything the arena keeps, in one SQLite file: documents, page images, queries, scores,
judgments and the annotation guidelines.

One file holds all an export needs (page images are stored as lossless PNG), so a backup is one
copy and no judgment can point at a page whose image is gone (foreign keys are on).

Concurrency: Gradio runs callbacks on worker threads and a Space may run several processes on
the same file, so every thread gets its own connection, the database is in WAL mode (readers
never block the writer), every connection waits up to `BUSY_TIMEOUT_S` for the lock, and writes
run in `BEGIN IMMEDIATE` transactions: taking the write lock up front avoids the deadlock where
two readers both try to upgrade to writers and one fails with SQLITE_BUSY.

Judgments are append-only (triggers refuse UPDATE and DELETE): a relabel or an undo adds a row,
and the latest row per (query, page, annotator) is the current label; `cleared` means unjudged.

Schema history (`PRAGMA user_version`):
  1  documents, pages, document_pages, queries, query_pages, settings, scores, judgments
  2  judgments.undoes — an undo row names the row it reverts, so Undo can step back through
     relabels one action at a time; index on judgments.created for date filters.
  3  guidelines — the Annotate tab's guidelines, append-only (who changed them, when). They were
     a `<db>.guidelines.md` file beside the database, which backups left out; its text is read in.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import io
import json
import logging
import math
import os
import re
import shutil
import sqlite3
import threading
import time
import unicodedata
import urllib.parse
import weakref
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, NamedTuple

from PIL import Image
from sqlite_utils import Database

from .lru import LRUCache
from .text_rules import is_blank, not_utf8, same_text
from .workers import thread_pool

logger = logging.getLogger(__name__)

DEFAULT_PATH = Path(__file__).resolve().parent.parent / "data" / "arena.db"
BUSY_TIMEOUT_S = 30.0
# The write-ahead log grows while a long read (an export, an evaluation) keeps SQLite from
# starting it over, and keeps its size afterwards: 130 MB beside the database after a 200-page
# upload during an export. Cut back to this once it starts over.
WAL_KEPT_BYTES = 32 * 2**20
MAX_ANNOTATOR_CHARS = 80  # a new annotator's name, wherever it is given (app, API, CLI, Python)
MAX_STAGED_PAGES = 256  # PNGs encoded ahead of a save_ranking that may never come (a failed request)

RELEVANT, NOT_RELEVANT, SKIP, CLEARED = "relevant", "not_relevant", "skip", "cleared"
LABELS = (RELEVANT, NOT_RELEVANT, SKIP)  # what an annotator can choose
ALL_LABELS = (*LABELS, CLEARED)  # CLEARED: back to unjudged (undo, or an explicit clear)

_HASH = re.compile(r"[0-9a-f]{16,128}")  # content hashes are hex digests; also used as file names


# ---------------------------------------------------------------------------------------------
# Schema and migrations. Never edit a shipped migration: add the next one.


def _v1_initial(db: Database, path: Path | None = None) -> None:
    statements = [
        """CREATE TABLE documents (
            content_hash TEXT PRIMARY KEY,      -- sha256 of the uploaded file's bytes
            name TEXT NOT NULL,                 -- first name it was uploaded under
            kind TEXT NOT NULL,                 -- 'pdf' | 'image'
            page_count INTEGER,
            created TEXT NOT NULL)""",
        """CREATE TABLE pages (
            content_hash TEXT PRIMARY KEY,      -- sha256 of the pixels (reranker.imaging.image_hash)
            width INTEGER NOT NULL,
            height INTEGER NOT NULL,
            mode TEXT NOT NULL,
            image_format TEXT NOT NULL,         -- 'png': lossless, exports reproduce exact pixels
            image BLOB NOT NULL,
            created TEXT NOT NULL)""",
        # The same pixels can occur in several documents (a cover page, a blank page, an image
        # uploaded alone and inside a PDF), so page ↔ document is many-to-many.
        """CREATE TABLE document_pages (
            document_hash TEXT NOT NULL REFERENCES documents(content_hash),
            page_number INTEGER NOT NULL,       -- 1-based
            page_hash TEXT NOT NULL REFERENCES pages(content_hash),
            PRIMARY KEY (document_hash, page_number))""",
        "CREATE INDEX document_pages_page ON document_pages(page_hash)",
        """CREATE TABLE queries (
            id INTEGER PRIMARY KEY,
            text TEXT NOT NULL,
            instruction TEXT NOT NULL DEFAULT '',  -- '' = the model's default instruction
            created TEXT NOT NULL,
            UNIQUE (text, instruction))""",
        # The candidate pages of a query, as the user saw them (source file name, page number).
        """CREATE TABLE query_pages (
            query_id INTEGER NOT NULL REFERENCES queries(id),
            page_hash TEXT NOT NULL REFERENCES pages(content_hash),
            position INTEGER NOT NULL,          -- upload order; breaks score ties in ranks
            source TEXT NOT NULL,
            page_number INTEGER NOT NULL,
            document_hash TEXT REFERENCES documents(content_hash),
            PRIMARY KEY (query_id, page_hash))""",
        """CREATE TABLE settings (
            key TEXT PRIMARY KEY,               -- settings_key(): hash of the canonical JSON
            json TEXT NOT NULL)""",
        # Also the score cache: a score depends on exactly these four things.
        """CREATE TABLE scores (
            model TEXT NOT NULL,
            settings_key TEXT NOT NULL REFERENCES settings(key),
            query_id INTEGER NOT NULL REFERENCES queries(id),
            page_hash TEXT NOT NULL REFERENCES pages(content_hash),
            score REAL NOT NULL,
            seconds REAL,                       -- the model's time per page it scored in that request
            created TEXT NOT NULL,
            PRIMARY KEY (model, settings_key, query_id, page_hash))""",
        "CREATE INDEX scores_query ON scores(query_id, model)",
        """CREATE TABLE judgments (
            id INTEGER PRIMARY KEY AUTOINCREMENT,  -- the order of actions; never reused
            query_id INTEGER NOT NULL,
            page_hash TEXT NOT NULL,
            annotator TEXT NOT NULL,
            label TEXT NOT NULL CHECK (label IN ('relevant', 'not_relevant', 'skip', 'cleared')),
            created TEXT NOT NULL,              -- ISO 8601 UTC with microseconds
            FOREIGN KEY (query_id, page_hash) REFERENCES query_pages(query_id, page_hash))""",
        "CREATE INDEX judgments_current ON judgments(query_id, annotator, page_hash, id)",
        """CREATE TRIGGER judgments_no_update BEFORE UPDATE ON judgments
            BEGIN SELECT RAISE(ABORT, 'judgments are append-only'); END""",
        """CREATE TRIGGER judgments_no_delete BEFORE DELETE ON judgments
            BEGIN SELECT RAISE(ABORT, 'judgments are append-only'); END""",
    ]
    for sql in statements:
        db.execute(sql)


def _v2_undo_links(db: Database, path: Path | None = None) -> None:
    # v1's undo could only clear a page; naming the reverted row lets undo walk back step by step.
    db.execute("ALTER TABLE judgments ADD COLUMN undoes INTEGER REFERENCES judgments(id)")
    db.execute("CREATE INDEX judgments_created ON judgments(created)")


def _v3_guidelines(db: Database, path: Path | None = None) -> None:
    db.execute("""CREATE TABLE guidelines (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        text TEXT NOT NULL,
        author TEXT NOT NULL DEFAULT '',    -- '' where nobody was named (an app without login)
        created TEXT NOT NULL)""")
    for action in ("UPDATE", "DELETE"):
        db.execute(f"""CREATE TRIGGER guidelines_no_{action.lower()} BEFORE {action} ON guidelines
            BEGIN SELECT RAISE(ABORT, 'guidelines are append-only'); END""")
    # The app kept them in a file beside the database until now: carry its text over (the file stays).
    if (old := _old_guidelines(db, path)) is not None:
        db.execute("INSERT INTO guidelines (text, author, created) VALUES (?, ?, ?)", [old.text, old.author, old.created])


def _old_guidelines(db: Database, path: Path | None = None) -> Guidelines | None:
    """The guidelines of the app before schema 3: a `<db>.guidelines.md` file beside the database
    as the app was given its path (a link to the database, say), or beside the file itself.
    Dated by the file's last change; None when there is none (one that cannot be read is logged)."""
    # `path` as the app was given it: SQLite itself names the file a link leads to.
    resolved = next((row[2] for row in db.execute("PRAGMA database_list") if row[1] == "main"), "")
    candidates = dict.fromkeys(Path(p).with_suffix(".guidelines.md") for p in (path, resolved) if p)
    for candidate in candidates:
        if not candidate.is_file():
            continue
        try:
            text = candidate.read_text(encoding="utf-8")
            changed = datetime.fromtimestamp(candidate.stat().st_mtime, timezone.utc).isoformat(timespec="microseconds")
        except (OSError, UnicodeDecodeError) as error:
            logger.warning("the guidelines file %s could not be read (%s); it is left where it is, and the "
                           "default guidelines show until someone saves them", candidate, error)
            continue
        return Guidelines(id=0, text=text, author="", created=changed) if text else None
    return None


# Each takes the database and its path as the app was given it (None: in memory).
MIGRATIONS: tuple[Callable[[Database, Path | None], None], ...] = (_v1_initial, _v2_undo_links, _v3_guidelines)
SCHEMA_VERSION = len(MIGRATIONS)
# The oldest schema a database this user may not write is read at as it is (it cannot be brought
# up to date): what came later only added the guidelines, which export and eval do not read.
READ_AS_IS_FROM = 2


class StoreError(RuntimeError):
    """The database could not be opened or written; the message names the file and the cause
    in words an annotator can act on (disk full, read-only, busy)."""


def _no_space_beside(path: Path) -> bool:
    """Whether the disk holding `path` has (next to) no room left: SQLite reports a -shm file it
    cannot make or grow there as a bare "disk I/O error", not as a full disk."""
    try:
        return shutil.disk_usage(Path(path).parent).free < 2**20
    except OSError:
        return False


def _explain(path: Path, error: sqlite3.Error | OSError, doing: str = "written") -> StoreError:
    text = str(error).lower()
    if "full" in text or getattr(error, "errno", None) == 28 or ("i/o error" in text and _no_space_beside(path)):
        reason = "the disk holding it is full; free some space and try again"
    elif "readonly" in text or "read-only" in text or getattr(error, "errno", None) in (13, 30):
        reason = "it is read-only here (check the file's permissions and the disk it is on)"
    elif "locked" in text or "busy" in text:
        reason = f"another process kept it locked for over {BUSY_TIMEOUT_S:g} s; try again in a moment"
    elif "unable to open" in text:
        reason = "it cannot be opened (does its folder exist, and may this app write there?)"
    elif "malformed" in text:  # cut short (a copy that stopped, a full disk under `cp`) or overwritten
        reason = ("it is damaged (SQLite: database disk image is malformed); put back a backup (README: Data and "
                  "exports), keeping this file aside")
    else:
        reason = f"{type(error).__name__}: {error}"
    saved = " Nothing was saved by this action." if doing == "written" else ""
    return StoreError(f"The database {path} could not be {doing}: {reason}.{saved}")


def read_failure(path: str | os.PathLike, error: sqlite3.Error) -> StoreError:
    """An error SQLite raised while reading the database at `path`, in words (damaged, locked…)."""
    return _explain(Path(path), error, "read")


class LabelChanged(ValueError):
    """`Store.record_judgment(..., expected=)`: the page's label is no longer the one expected."""

    def __init__(self, current: str):
        super().__init__(f"the page's label is {current} now")
        self.current = current  # CLEARED: none


class _FileReplaced(Exception):
    """Inside Store._write: the database's path names another file since the connection opened."""


class GuidelinesChanged(StoreError):
    """Guidelines edited from a version that is no longer the latest (`Store.save_guidelines`);
    `latest` is that version."""

    def __init__(self, message: str, latest: Guidelines):
        super().__init__(message)
        self.latest = latest


class SchemaTooNewError(RuntimeError):
    """The file was written by a newer version of the app; refusing to touch it."""


ANNOTATORS_NAMED = 20  # at most, in the message refusing a name nobody judged under


def schema_version(db: Database) -> int:
    return db.execute("PRAGMA user_version").fetchone()[0]


def migrate(db: Database, target: int = SCHEMA_VERSION, path: Path | None = None) -> int:
    """Bring the database up to schema `target` (default: the latest); returns the version.
    `path`: the file as the app names it (`_v3_guidelines` looks for a file beside it)."""
    if schema_version(db) == target:
        return target
    with write_transaction(db):
        version = schema_version(db)  # re-read under the lock: another process may have migrated
        if version > SCHEMA_VERSION:
            raise SchemaTooNewError(f"database schema {version} is newer than this app's {SCHEMA_VERSION}")
        for number in range(version + 1, target + 1):
            MIGRATIONS[number - 1](db, path)
            db.execute(f"PRAGMA user_version = {number}")  # transactional: part of the same commit
    return max(version, target)


# ---------------------------------------------------------------------------------------------
# Connections


def connect(path: str | os.PathLike, read_only: str = "", create: bool = True) -> Database:
    """A sqlite-utils Database on its own connection, configured for shared use of the file.
    `read_only`: "" (read and write), "ro" (read only), or "immutable" (read only, and nobody
    writes the file: SQLite then needs no -shm file beside it, which a read-only folder cannot take)."""
    target = str(path)
    if read_only:
        target = f"file:{urllib.parse.quote(str(Path(path).resolve()))}?mode=ro" + ("&immutable=1" if read_only == "immutable" else "")
    elif not create:  # the file must be there: a missing one is an error, not a new empty database
        target = f"file:{urllib.parse.quote(str(Path(path).resolve()))}?mode=rw"
    conn = sqlite3.connect(
        target,
        uri=bool(read_only) or not create,
        timeout=BUSY_TIMEOUT_S,
        isolation_level=None,  # no implicit transactions: we issue BEGIN IMMEDIATE ourselves
        check_same_thread=False,  # owned by one thread, but Store.close() may close it from another
    )
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute("PRAGMA synchronous = FULL")  # a committed judgment survives a power cut too
    conn.execute(f"PRAGMA journal_size_limit = {WAL_KEPT_BYTES}")
    return Database(conn, execute_plugins=False)


def _identity(path: Path) -> tuple[int, int] | None:
    """Which file `path` names now (device, inode); None when there is none."""
    try:
        status = os.stat(path)
    except OSError:
        return None
    return status.st_dev, status.st_ino


def _in_wal_mode(path: Path) -> bool:
    """Whether the file's header marks a WAL database (bytes 18 and 19 are 2; 1 for a rollback
    journal): https://www.sqlite.org/fileformat.html#the_database_header."""
    try:
        with open(path, "rb") as handle:
            header = handle.read(20)
    except OSError:
        return False
    return len(header) == 20 and header[18] == header[19] == 2


def _tables(conn) -> list[str]:
    """The file's own tables (not SQLite's internal ones)."""
    return [row[0] for row in conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")]


@functools.cache
def _first_schema_tables() -> frozenset[str]:
    """The tables every database of this app has had since schema 1."""
    db = Database(sqlite3.connect(":memory:", isolation_level=None))
    migrate(db, target=1)
    return frozenset(_tables(db.conn))


def _foreign_tables(db: Database) -> str | None:
    """The tables of a SQLite file of another program, listed (None for ours: no tables yet, or
    this app's, a newer schema included: `migrate` refuses that one by name)."""
    db.conn.execute("BEGIN")  # one snapshot: another process's first migration is all there or not yet
    try:
        version = schema_version(db)
        tables = _tables(db.conn)
    finally:
        db.conn.execute("COMMIT")
    if not tables or (version >= 1 and _first_schema_tables() <= set(tables)):
        return None
    return ", ".join(tables[:5]) + (", …" if len(tables) > 5 else "")


def _refuse_foreign(db: Database, path: Path) -> None:
    """A SQLite file of another program is left as it is: migrating would add this app's tables
    to it (and switch it to WAL)."""
    if listed := _foreign_tables(db):
        raise StoreError(f"{path} is not a database of this app (its tables: {listed}), so it was left "
                         "untouched; point RERANKER_DB or --db at this app's database or at a new file")


def _refuse_unwritable(path: Path) -> None:
    """A database this user may not write is refused before SQLite opens it: opened, every
    ranking and judgment failed, and SQLite left WAL files beside it with the file's read-only
    permissions, which kept refusing writes after the file itself was made writable again."""
    for file, what in ((path, "is read-only here"), (Path(f"{path}-wal"), "has a WAL file this user may not write"),
                       (Path(f"{path}-shm"), "has a WAL index file this user may not write")):
        if file.exists() and not os.access(file, os.W_OK):
            if os.statvfs(file).f_flag & os.ST_RDONLY:  # chmod cannot help there
                raise StoreError(f"The database {path} is on a file system mounted read-only, and the app writes every "
                                 "ranking and judgment to it: mount it read-write, or point RERANKER_DB at a file on a "
                                 "writable disk. (`export` and `eval` read it as it is.)")
            fix = ("make it writable for the user running the app (chmod u+w), or point RERANKER_DB at another file"
                   if file == path else f"remove {file} (left while the database was read-only) or make it writable, "
                   "with no app using the database")
            raise StoreError(f"The database {path} {what}, and the app writes every ranking and judgment to it: {fix}. "
                             "(`export` and `eval` read a read-only database as it is.)")


def _add_lookup_indexes(db: Database) -> None:
    """Indexes for lookups, made where missing. Not a migration: the file stays readable by the
    app's earlier versions (a new schema version would make them refuse it)."""
    if db.execute("SELECT 1 FROM sqlite_master WHERE name = 'judgments_annotator_nocase'").fetchone():
        return
    with write_transaction(db):
        # Store.known_annotator, on every Annotate view: a scan of 80,000 judgments took 20 ms.
        db.execute("CREATE INDEX IF NOT EXISTS judgments_annotator_nocase ON judgments(annotator COLLATE NOCASE)")


def _enable_wal(db: Database, path) -> None:
    # Switching needs a moment alone with the file; a new file opened by several processes at
    # once can race here, so retry until the busy timeout.
    deadline = time.monotonic() + BUSY_TIMEOUT_S
    while True:
        try:
            mode = db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) and "busy" not in str(error):
                raise
            mode = None
        if mode == "wal":
            return
        if time.monotonic() > deadline:
            # Still locked, or the file system cannot do WAL (no shared memory, say): the store
            # works, but readers and writers wait on each other (a COMMIT waits for readers).
            logger.warning("SQLite WAL mode could not be set for %s (journal mode %s): readers and writers "
                           "will wait on each other", path, mode)
            return
        time.sleep(0.05)


@contextlib.contextmanager
def write_transaction(db: Database) -> Iterator[Database]:
    """BEGIN IMMEDIATE … COMMIT; rolls back on any error."""
    if db.conn.in_transaction:
        raise RuntimeError("write transactions do not nest")
    db.conn.execute("BEGIN IMMEDIATE")
    try:
        yield db
        # Inside the try: a COMMIT can fail too (SQLITE_BUSY while a reader holds the file without
        # WAL; a full disk), and an open transaction would keep the file locked for everyone.
        db.conn.execute("COMMIT")
    except BaseException:
        if db.conn.in_transaction:
            db.conn.execute("ROLLBACK")
        raise


# ---------------------------------------------------------------------------------------------
# Small values


def now() -> str:
    """UTC timestamp, ISO 8601 with microseconds: sorts as text, sub-second precision."""
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


def parse_moment(text: str) -> date | datetime:
    """An ISO date ("2026-03-01", "20260301": a whole day) or date and time; without an offset,
    times are UTC, as stored."""
    text = text.strip()
    try:
        return date.fromisoformat(text)
    except ValueError:
        pass
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a date (YYYY-MM-DD, e.g. 2026-03-01) or an ISO date and time "
                         "(e.g. 2026-03-01T14:30; UTC unless it has an offset)") from None


def time_bound(value: date | datetime | str | None, *, end: bool = False) -> str | None:
    """A filter bound as stored text. A date as `end` covers that whole day (exclusive bound).
    A bound past either end of what Python's datetime holds (until 9999-12-31, "for ever") is
    clamped to that end: no stored time lies beyond it."""
    if value is None:
        return None
    if isinstance(value, str):
        value = parse_moment(value)
    try:
        if isinstance(value, datetime):
            moment = value if value.tzinfo else value.replace(tzinfo=timezone.utc)
            if end:
                moment += timedelta(microseconds=1)  # until a datetime is inclusive
        else:
            moment = datetime(value.year, value.month, value.day, tzinfo=timezone.utc)
            if end:
                moment += timedelta(days=1)
        moment = moment.astimezone(timezone.utc)
    except OverflowError:  # only a moment in year 1 or 9999 can overflow
        moment = (datetime.max if value.year > 1 else datetime.min).replace(tzinfo=timezone.utc)
    return moment.isoformat(timespec="microseconds")


def settings_key(settings: Mapping[str, Any] | str | None) -> str:
    """Stable id of scoring settings (pixel budget, dtype, …): hash of their canonical JSON."""
    if isinstance(settings, str):
        return settings
    return hashlib.sha256(_canonical_json(settings or {}).encode()).hexdigest()[:16]


def _canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def _check_hash(value: str) -> str:
    if not isinstance(value, str) or not _HASH.fullmatch(value):
        raise ValueError(f"not a content hash (lowercase hex): {value!r}")
    return value


_PNG_ENCODERS = thread_pool("png")


def encode_png(image: Image.Image) -> bytes:
    """Lossless, so exports reproduce the exact pixels; level 1 is ~40% faster than the default
    for ~3% more bytes on document pages."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


# ---------------------------------------------------------------------------------------------
# Rows handed out


class Judgment(NamedTuple):
    """One row of the append-only judgments table. A tuple: an export or an evaluation reads
    every current label (300,000 in a store of months), and a frozen dataclass took 0.5 s more."""

    id: int
    query_id: int
    page_hash: str
    annotator: str
    label: str
    created: str
    undoes: int | None = None


@dataclass(frozen=True)
class Guidelines:
    id: int  # the version's row (0: read from the file of an app before schema 3)
    text: str
    author: str  # '' where nobody was named
    created: str

    @property
    def saved(self) -> str:
        """'Saved by <author> on <YYYY-MM-DD HH:MM> UTC' (without 'by' for nobody named)."""
        return f"Saved{f' by {self.author}' if self.author else ''} on {self.created[:16].replace('T', ' ')} UTC"


class Undone(NamedTuple):
    page_hash: str
    undone_label: str  # the label the undone action had set
    restored_label: str | None  # the page's label now; None = unjudged


@dataclass(frozen=True)
class QueryPage:
    page_hash: str
    position: int
    source: str
    page_number: int
    document_hash: str | None
    scores: dict[str, float] = field(default_factory=dict)  # model key → P(yes)
    ranks: dict[str, int] = field(default_factory=dict)  # model key → 1-based rank in this query
    settings: dict[str, str] = field(default_factory=dict)  # model key → settings key of its score
    kind: str | None = None  # of its document: 'pdf' | 'image' (None: not recorded)
    page_count: int | None = None  # pages in its document


@dataclass(frozen=True)
class QuerySummary:
    id: int
    text: str
    instruction: str | None
    created: str
    pages: int
    judged: int

    @property
    def instruction_tag(self) -> str:
        """After the text where the query has its own instruction: asked with another instruction,
        the same text is another query, and lists and tables tell them apart."""
        return instruction_tag(self.instruction)


def instruction_tag(instruction: str | None) -> str:
    """What follows a query's text where it has its own instruction (`QuerySummary.instruction_tag`)."""
    if not instruction:
        return ""
    return f" [instruction: {instruction[:40]}{'…' if len(instruction) > 40 else ''}]"


def _judgment(row: Mapping[str, Any]) -> Judgment:
    return Judgment(**{name: row.get(name) for name in Judgment._fields})


# ---------------------------------------------------------------------------------------------


def database_path(path: str | os.PathLike | None = None) -> Path:
    """The database file meant: `path`, else $RERANKER_DB, else data/arena.db. An empty `path`
    (a script's unset variable in `--db "$DB"`) is refused, not read as the default."""
    if path is not None and not str(path).strip():
        raise StoreError("the database path is empty; give a file name (or None for RERANKER_DB or the default)")
    return Path(path or os.environ.get("RERANKER_DB") or DEFAULT_PATH)


class WhileUnchanged:
    """Values worked out from a store, each kept while the store holds the same queries, scores
    and judgments (`Store.data_version`): the app's Evaluate and Export tabs work theirs out on
    every visit and choice. The latest `entries` are kept; they are shared, so not to be changed."""

    def __init__(self, entries: int):
        self._held = LRUCache(entries)

    def get(self, store: Store, key: Any, compute: Callable[[], Any]) -> Any:
        """`compute()`'s value for `key` and the store as it is now (computed now unless kept)."""
        with store.snapshot():  # the version and the value of one moment
            versioned = (key, store.data_version())
            value = self._held.get(versioned)
            if value is None:
                value = compute()
                self._held.put(versioned, value)
        return value


class Store:
    """The arena's database. Safe to share between threads; several processes may open the file."""

    def __init__(self, path: str | os.PathLike | None = None, *, read_only: str = ""):
        """`read_only` ("ro" or "immutable", see `connect`): for `existing` only; nothing is
        changed in the file, so its schema must be one this app reads as it is (`READ_AS_IS_FROM`)."""
        self.path = database_path(path)
        self.read_only = read_only
        self.closed = False
        self._local = threading.local()
        self._lock = threading.Lock()
        self._open: weakref.WeakSet[Database] = weakref.WeakSet()  # for close(); dies with its thread
        self._staged: OrderedDict[str, Future] = OrderedDict()  # content hash → its PNG being encoded
        self._opened = False  # once the file is made and migrated, connections never create it
        self._replaced_by: tuple[int, int] | None = None  # the file an action was refused for (`_replaced_error`)
        try:
            if read_only:
                db = self.db
                _refuse_foreign(db, self.path)
                if (version := schema_version(db)) > SCHEMA_VERSION:
                    raise SchemaTooNewError(f"database schema {version} is newer than this app's {SCHEMA_VERSION}")
                if version < READ_AS_IS_FROM:
                    raise StoreError(f"The database {self.path} is read-only here and has schema {version}, which this "
                                     f"app reads only after bringing it to {SCHEMA_VERSION}: open a writable copy")
                return
            if self.path.is_dir():
                raise StoreError(f"The database {self.path} is a folder; give a file name (RERANKER_DB, --db).")
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            except FileExistsError:  # a file where a folder on the way should be
                raise StoreError(f"The database {self.path} cannot be made: {self.path.parent} is not a folder.") from None
            except NotADirectoryError:  # the same, further up
                raise StoreError(f"The database {self.path} cannot be made: a file stands where a folder on the way to "
                                 f"{self.path.parent} should be.") from None
            except OSError as error:  # e.g. /data on a Space whose storage is not mounted
                raise StoreError(f"The database {self.path} cannot be made: its folder {self.path.parent} does not exist "
                                 f"and cannot be created ({error.strerror or error}). Is the disk or volume meant to "
                                 "hold it mounted?") from None
            _refuse_unwritable(self.path)
            db = self.db
            _refuse_foreign(db, self.path)
            _enable_wal(db, self.path)
            migrate(db, path=self.path)
            _add_lookup_indexes(db)
            self._opened = True
        except (sqlite3.DatabaseError, OSError) as error:  # DatabaseError: "file is not a database"
            raise _explain(self.path, error, "opened") from error
        except SchemaTooNewError as error:
            raise SchemaTooNewError(f"{self.path}: {error}; use that newer version of the app") from None

    @classmethod
    def existing(cls, path: str | os.PathLike | None = None) -> Store:
        """The store at `path` (None: the app's, as `Store()`), for what only reads it (eval,
        export, a backup): a missing or empty file is refused, where `Store(path)` would make it
        an (empty) database of this app."""
        path = database_path(path)
        try:
            path.stat()
        except PermissionError as error:  # a folder on the way this user may not enter
            raise _explain(path, error, "opened") from None
        except OSError:
            pass  # not there: said below
        if path.is_dir():
            raise StoreError(f"{path} is a folder, not a database (name the database with --db PATH, RERANKER_DB or Store.existing(path))")
        if not path.is_file():
            raise StoreError(f"no database at {path} (name the database with --db PATH, RERANKER_DB or Store.existing(path))")
        # Where this process may not write the file or its folder (an archived copy, a read-only
        # mount), read it without changing it: opening for writing switches it to WAL, which
        # needs files beside it, and brings its schema up to date.
        read_only = "" if os.access(path, os.W_OK) and os.access(path.parent, os.W_OK) else "ro"
        if read_only and _in_wal_mode(path) and not Path(f"{path}-wal").exists():
            # Read only, SQLite makes -wal and -shm files beside a WAL database (where the folder
            # allows), with the file's read-only permissions, and cannot remove them: made
            # writable again, the database then refused every write. Nobody writes it now (a
            # writer keeps a -wal file beside it), so it is read as immutable: no file is made.
            read_only = "immutable"
        try:
            with contextlib.closing(connect(path, read_only).conn) as conn:
                empty = conn.execute("PRAGMA user_version").fetchone()[0] == 0 and not _tables(conn)
        except sqlite3.DatabaseError as error:  # "file is not a database", locked for long
            raise _explain(path, error, "opened") from error
        if empty:
            raise StoreError(f"{path} is an empty database: nothing was ever ranked into it "
                             "(name the database with --db PATH, RERANKER_DB or Store.existing(path))")
        return cls(path, read_only=read_only)

    # -- connections ---------------------------------------------------------------------------

    @property
    def db(self) -> Database:
        """This thread's connection (a fresh one after fork: connections must not cross processes)."""
        local = self._local
        if getattr(local, "db", None) is not None and local.pid == os.getpid():
            # Inside a transaction the file was checked as it began (`_write` checks again once
            # it holds the lock), and the transaction reads one moment of one file.
            if local.db.conn.in_transaction or not self._file_replaced():
                return local.db
            if not self._replacement_told():
                raise self._replaced_error()
            self._drop_connection()
        if self.closed:  # else a closed store quietly opened the file again
            raise StoreError(f"The store of {self.path} was closed; open it again (Store(path)) to use it.")
        try:
            # Once the file is made, a connection never makes it: opened while the file was away
            # (a volume remounted, a backup being put back), one made a new empty database, and
            # SQLite then deleted the real database's -wal as that empty file's stale log.
            local.db = connect(self.path, self.read_only, create=not self._opened)
        except sqlite3.Error as error:
            raise _explain(self.path, error, "opened") from error
        local.pid, local.identity = os.getpid(), _identity(self.path)
        with self._lock:
            self._open.add(local.db)
        return local.db

    def _file_replaced(self) -> bool:
        """Whether this thread's connection is to a file its path no longer names (or none). A
        connection keeps the file it opened: after `rm` or `mv` over the database, SQLite took
        every judgment into the old, unlinked file without a word (WAL mode has no check)."""
        return self._opened and _identity(self.path) != self._local.identity

    def _replacement_told(self) -> bool:
        """Whether an action of another thread was refused already for the file now at the path:
        then this thread's connection is simply opened again (each of the server's threads, one
        after the other, refused an action of its own)."""
        now = _identity(self.path)
        with self._lock:
            return now is not None and now == self._replaced_by

    def _replaced_error(self) -> StoreError:
        """The refusal of the action that met a replaced file; this thread's next use opens the
        file there now (its connection is closed: call it outside any transaction)."""
        with self._lock:
            self._replaced_by = _identity(self.path)
        self._drop_connection()
        return StoreError(
            f"The database {self.path} was removed or replaced while the app was running, so this action read "
            "and saved nothing (it would have gone to the old file). Put the database back, or restore a backup "
            "as the README says (Data and exports), and try again.")

    def close(self) -> None:
        """Close every connection; using the store afterwards raises StoreError."""
        with self._lock:
            self.closed = True
            for db in list(self._open):
                db.close()
            self._open.clear()
        self._local = threading.local()

    def backup(self, destination: str | os.PathLike) -> Path:
        """A consistent copy of the whole database in one file, safe while the app writes: the
        database runs in WAL mode, so copying the .db file alone can miss the latest changes
        (they wait in the .db-wal file until a checkpoint). An earlier backup there is replaced
        (whole: SQLite writes it in one transaction); another program's database, or a file that
        is no database, is refused and left as it is."""
        destination = Path(destination)
        if destination.is_dir():
            raise StoreError(f"The backup {destination} is a folder; give a file name.")
        if destination.exists() and destination.resolve() == self.path.resolve():
            raise StoreError(f"The backup {destination} is the database itself; give another file name.")
        target = None
        try:
            target = sqlite3.connect(destination)
            if listed := _foreign_tables(Database(target)):
                raise StoreError(f"The backup {destination} is another program's database (its tables: {listed}), "
                                 "which this would replace; it was left untouched. Give another file name.")
            self.db.conn.backup(target)
        except (sqlite3.DatabaseError, OSError) as error:  # DatabaseError: a file there that is no database
            raise _explain(destination, error, "written as a backup") from error
        finally:
            if target is not None:
                target.close()
        return destination

    def guidelines(self) -> Guidelines | None:
        """The annotation guidelines as last saved (None: never saved). A read-only database
        from before they were kept in it (schema 2) has them in the file beside it, if anywhere."""
        try:
            return self._latest_guidelines(self.db)
        except sqlite3.OperationalError as error:
            if "no such table" in str(error):
                return _old_guidelines(self.db, self.path)
            raise

    @staticmethod
    def _latest_guidelines(db: Database) -> Guidelines | None:
        row = db.execute("SELECT id, text, author, created FROM guidelines ORDER BY id DESC LIMIT 1").fetchone()
        return Guidelines(*row) if row else None

    def save_guidelines(self, text: str, author: str = "", based_on: int | None = None) -> Guidelines:
        """Save `text` as the guidelines, by `author` ('' for nobody named); the earlier versions
        stay. Returns the version now current: the new one, or the latest when it already says this.

        `based_on`: the id of the version the text was edited from (0: none saved yet). Where
        another version was saved since, GuidelinesChanged is raised and nothing is saved: the
        edit of an older text would quietly undo a colleague's change."""
        with self._write() as db:
            latest = self._latest_guidelines(db)
            if latest is not None and latest.text == text:
                return latest
            # With none saved there is nothing to overwrite (a version the editor saw may have gone
            # with a database replaced under the open page).
            if based_on is not None and latest is not None and latest.id != based_on:
                raise GuidelinesChanged(
                    f"Other guidelines were {latest.saved[0].lower()}{latest.saved[1:]}, after yours were loaded; nothing "
                    "was saved. Copy your text, reload the page to see theirs, then make your change again.", latest)
            created = now()
            row_id = db.execute("INSERT INTO guidelines (text, author, created) VALUES (?, ?, ?)",
                                [text, author, created]).lastrowid
        return Guidelines(row_id, text, author, created)

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def _write(self) -> Iterator[Database]:
        """A write transaction; a failure of the database itself becomes a StoreError."""
        try:
            with write_transaction(self.db) as db:
                if self._file_replaced():  # again, holding the lock: it may have waited seconds for it
                    raise _FileReplaced
                yield db
        except _FileReplaced:
            raise self._replaced_error() from None  # rolled back first: the connection closes here
        except (sqlite3.OperationalError, OSError) as error:
            if "readonly" in str(error):
                # SQLite opens a file it may not write read-only, without a word, and that
                # connection stays read-only once the file is writable again: this thread (a
                # long-lived server worker) opens a new one next time.
                self._drop_connection()
            raise _explain(self.path, error) from error

    def _drop_connection(self) -> None:
        """Close this thread's connection; its next use opens another."""
        db = getattr(self._local, "db", None)
        if db is None:
            return
        self._local.db = None
        with self._lock:
            self._open.discard(db)
        db.close()

    @contextlib.contextmanager
    def snapshot(self) -> Iterator[Store]:
        """Every read in this thread inside the block sees the database at one moment (a read
        transaction; in WAL mode writers go on meanwhile), so a read in several steps, such as an
        export, cannot mix a label from before an annotator's undo with one from after it."""
        conn = self.db.conn
        if conn.in_transaction:  # inside another snapshot: its moment holds
            yield self
            return
        conn.execute("BEGIN")  # deferred: the moment is the block's first read
        try:
            yield self
        finally:
            if conn.in_transaction:
                conn.execute("COMMIT")  # nothing was written; this ends the read transaction

    # -- rankings ------------------------------------------------------------------------------

    def save_ranking(
        self,
        query: str,
        instruction: str | None,
        pages: Sequence[Any],
        documents: Iterable[Any] = (),
        scores: Mapping[str, Sequence[float]] | None = None,
        settings: Mapping[str, Mapping[str, Any] | str] | None = None,
        seconds_per_page: Mapping[str, float | None] | None = None,
    ) -> int:
        """Store a ranked upload in one transaction; returns the query id.

        `pages` are Page-like (content_hash, image, source, page_number, document_hash, kind),
        `documents` Document-like (content_hash, name, kind, page_count), `scores[model]` one
        score per page in `pages` order, `settings[model]` the scoring settings (or their key),
        `seconds_per_page[model]` the model's time per page it scored in this request (a score
        already stored took none: that row, its page and its time are kept as they are; first
        score wins, so the cache stays consistent).
        """
        if not isinstance(query, str) or is_blank(query):
            raise ValueError("query text is empty")
        _check_utf8(query, "query")
        _check_utf8(instruction or "", "instruction")
        pages = list(pages)
        if not pages:
            raise ValueError("a ranking needs at least one page")
        scores = dict(scores or {})
        for model, values in scores.items():
            if len(values) != len(pages):
                raise ValueError(f"{model}: {len(values)} scores for {len(pages)} pages")
            if not all(math.isfinite(float(v)) for v in values):
                raise ValueError(f"{model}: scores must be finite numbers")
        settings = dict(settings or {})
        keys = {model: settings_key(settings.get(model)) for model in scores}
        for page in pages:
            _check_hash(page.content_hash)
            if page.document_hash is not None:
                _check_hash(page.document_hash)

        # PNG encoding is the slow part: do it before taking the write lock, and only for pages
        # not stored yet (or take what stage_pages encoded ahead). A page another process adds
        # meanwhile is simply ignored on insert.
        stamp = now()
        stored = self._existing_pages({page.content_hash for page in pages})
        new_pages = list({page.content_hash: page for page in pages if page.content_hash not in stored}.values())
        self.stage_pages(new_pages, stored)
        pngs = [self._take_staged(page) for page in new_pages]
        page_rows: dict[str, dict[str, Any]] = {
            page.content_hash: dict(
                content_hash=page.content_hash,
                width=page.image.width,
                height=page.image.height,
                mode=page.image.mode,
                image_format="png",
                image=png,
                created=stamp,
            )
            for page, png in zip(new_pages, pngs)
        }

        documents_rows: dict[str, dict[str, Any]] = {}
        for doc in documents:
            documents_rows[_check_hash(doc.content_hash)] = dict(
                content_hash=doc.content_hash,
                name=doc.name,
                kind=doc.kind,
                page_count=doc.page_count,
                created=stamp,
            )
        for page in pages:  # a page whose document was not passed still gets one (its file name)
            if page.document_hash is not None and page.document_hash not in documents_rows:
                documents_rows[page.document_hash] = dict(
                    content_hash=page.document_hash,
                    name=page.source,
                    kind=page.kind,
                    page_count=getattr(page, "page_count", None),
                    created=stamp,
                )

        with self._write() as db:
            # The scores' time is taken holding the write lock, so the ranking that is stored last
            # is the latest (taken before the PNGs, a ranking that waited for another's write was
            # older than it, and an evaluation cached meanwhile was not seen to be out of date).
            scored_at = now()
            query_id = self._query_id(db, query, instruction, create=True)
            db["documents"].insert_all(documents_rows.values(), ignore=True)
            db["pages"].insert_all(page_rows.values(), ignore=True)
            db["document_pages"].insert_all(
                (
                    dict(document_hash=p.document_hash, page_number=p.page_number, page_hash=p.content_hash)
                    for p in pages
                    if p.document_hash is not None
                ),
                ignore=True,
            )
            start = db.execute(
                "SELECT COALESCE(MAX(position) + 1, 0) FROM query_pages WHERE query_id = ?", [query_id]
            ).fetchone()[0]
            db["query_pages"].insert_all(
                (
                    dict(
                        query_id=query_id,
                        page_hash=p.content_hash,
                        position=start + i,
                        source=p.source,
                        page_number=p.page_number,
                        document_hash=p.document_hash,
                    )
                    for i, p in enumerate(pages)
                ),
                ignore=True,  # a page seen again keeps its first position and name
            )
            for model, values in scores.items():
                setting = settings.get(model)
                if not isinstance(setting, str):
                    db.execute(
                        "INSERT OR IGNORE INTO settings (key, json) VALUES (?, ?)",
                        [keys[model], _canonical_json(setting or {})],
                    )
                elif db.execute("SELECT 1 FROM settings WHERE key = ?", [setting]).fetchone() is None:
                    raise ValueError(f"{model}: unknown settings key {setting!r} (pass the settings dict)")
                per_page = (seconds_per_page or {}).get(model)
                # A score stored before (the same model, settings, query and page: the request
                # found it stored) keeps its value and time per page, and becomes the latest:
                # `query_pages` gives each page its most recent ranking's score, so a query
                # ranked again at one setting is compared at that setting.
                db.conn.executemany(
                    "INSERT INTO scores (model, settings_key, query_id, page_hash, score, seconds, created) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?) "
                    "ON CONFLICT (model, settings_key, query_id, page_hash) DO UPDATE SET created = excluded.created",
                    [(model, keys[model], query_id, p.content_hash, float(v), per_page, scored_at)
                     for p, v in zip(pages, values)],
                )
        return query_id

    def stage_pages(self, pages: Iterable[Any], stored: set[str] | None = None) -> None:
        """Start encoding the PNGs of pages not stored yet, on worker threads (zlib releases the
        GIL), for a `save_ranking` to come: the app calls this while the models score."""
        pages = list(pages)
        if stored is None:
            stored = self._existing_pages({page.content_hash for page in pages})
        with self._lock:
            for page in pages:
                if page.content_hash not in stored and page.content_hash not in self._staged:
                    self._staged[page.content_hash] = _PNG_ENCODERS.submit(encode_png, page.image)
            while len(self._staged) > MAX_STAGED_PAGES:
                self._staged.popitem(last=False)

    def _take_staged(self, page: Any) -> bytes:
        with self._lock:
            staged = self._staged.pop(page.content_hash, None)
        return staged.result() if staged is not None else encode_png(page.image)

    def _existing_pages(self, hashes: set[str]) -> set[str]:
        rows = self.db.execute(
            "SELECT content_hash FROM pages WHERE content_hash IN (SELECT value FROM json_each(?))",
            [json.dumps(sorted(hashes))],
        )
        return {row[0] for row in rows}

    @staticmethod
    def _query_id(db: Database, text: str, instruction: str | None, create: bool = False) -> int | None:
        text, instruction = same_text(text), same_text(instruction or "")
        if create:
            db.execute(
                "INSERT INTO queries (text, instruction, created) VALUES (?, ?, ?) "
                "ON CONFLICT (text, instruction) DO NOTHING",
                [text, instruction, now()],
            )
        row = db.execute("SELECT id FROM queries WHERE text = ? AND instruction = ?", [text, instruction]).fetchone()
        return row[0] if row else None

    def cached_scores(
        self,
        model: str,
        settings: Mapping[str, Any] | str,
        query: str,
        instruction: str | None,
        page_hashes: Iterable[str],
    ) -> dict[str, float]:
        """Scores already computed for these pages with this model, settings and query."""
        rows = self.db.execute(
            """SELECT s.page_hash, s.score FROM scores s JOIN queries q ON q.id = s.query_id
               WHERE s.model = ? AND s.settings_key = ? AND q.text = ? AND q.instruction = ?
                 AND s.page_hash IN (SELECT value FROM json_each(?))""",
            [model, settings_key(settings), same_text(query), same_text(instruction or ""), json.dumps(sorted(set(page_hashes)))],
        )
        return {page_hash: score for page_hash, score in rows}

    def query(self, query_id: int) -> QuerySummary:
        """One query with its page count (judged: pages with any current label)."""
        for summary in self.list_queries(query_id=query_id):
            return summary
        raise KeyError(f"no query {query_id}")

    def query_count(self) -> int:
        return self.db.execute("SELECT count(*) FROM queries").fetchone()[0]

    def list_queries(self, annotator: str | None = None, *, query_id: int | None = None) -> list[QuerySummary]:
        """All queries, oldest first, with page totals and how many pages `annotator` (or anyone) judged."""
        # Each count once over its whole table, joined (a subquery per query row made the
        # Annotate list take 40 s at 4,000 queries). One query: the same SQL with equality
        # filters, so SQLite uses the indexes.
        annotator = self._spelling(annotator)
        where_query = "= :query_id" if query_id is not None else "IS NOT NULL"
        where_annotator = "AND annotator = :annotator" if annotator is not None else ""
        rows = self.db.query(
            f"""WITH latest AS (
                    SELECT MAX(id) AS id FROM judgments
                    WHERE query_id {where_query} {where_annotator}
                    GROUP BY query_id, page_hash, annotator),
                judged AS (
                    SELECT j.query_id, COUNT(DISTINCT j.page_hash) AS judged
                    FROM judgments j JOIN latest ON latest.id = j.id
                    WHERE j.label != 'cleared' GROUP BY j.query_id),
                candidates AS (
                    SELECT query_id, COUNT(*) AS pages FROM query_pages
                    WHERE query_id {where_query} GROUP BY query_id)
                SELECT q.id, q.text, q.instruction, q.created,
                       COALESCE(candidates.pages, 0) AS pages, COALESCE(judged.judged, 0) AS judged
                FROM queries q
                LEFT JOIN candidates ON candidates.query_id = q.id
                LEFT JOIN judged ON judged.query_id = q.id
                WHERE q.id {where_query} ORDER BY q.id""",
            dict(annotator=annotator, query_id=query_id),
        )
        return [
            QuerySummary(r["id"], r["text"], r["instruction"] or None, r["created"], r["pages"], r["judged"])
            for r in rows
        ]

    def query_pages(self, query_id: int, settings: Mapping[str, str] | None = None) -> list[QueryPage]:
        """The query's candidate pages in upload order, with every model's score and rank.

        `settings` picks a settings key per model. By default each page has each model's latest
        score for it, whatever its settings: the same question asked over another upload at
        another image budget must not leave the first upload's pages unscored (evaluation would
        count them as never ranked). Ranks are 1-based by descending score, ties broken by
        upload order.
        """
        pages = [
            dict(row, scores={}, ranks={}, settings={})
            for row in self.db.query(
                "SELECT q.page_hash, q.position, q.source, q.page_number, q.document_hash, d.kind, d.page_count "
                "FROM query_pages q LEFT JOIN documents d ON d.content_hash = q.document_hash "
                "WHERE q.query_id = ? ORDER BY q.position",
                [query_id],
            )
        ]
        by_hash = {page["page_hash"]: page for page in pages}
        if settings is None:  # oldest first: each page keeps its latest score
            rows = self.db.execute(
                "SELECT model, page_hash, score, settings_key FROM scores WHERE query_id = ? ORDER BY created, rowid",
                [query_id])
        else:
            rows = (
                (model, page_hash, score, key)
                for model, key in settings.items()
                for page_hash, score in self.db.execute(
                    "SELECT page_hash, score FROM scores WHERE query_id = ? AND model = ? AND settings_key = ?",
                    [query_id, model, key])
            )
        models = set()
        for model, page_hash, score, key in rows:
            if page_hash in by_hash:
                by_hash[page_hash]["scores"][model] = score
                by_hash[page_hash]["settings"][model] = key
                models.add(model)
        for model in sorted(models):
            scored = sorted(
                (p for p in pages if model in p["scores"]), key=lambda p: (-p["scores"][model], p["position"])
            )
            for rank, page in enumerate(scored, start=1):
                page["ranks"][model] = rank
        return [QueryPage(**page) for page in pages]

    def data_version(self) -> tuple:
        """A value that changes whenever queries, their pages, scores or judgments do: for caching
        what is computed from them (an evaluation). Judgments and queries are only added; a score
        is added, or made the latest again (its `created` moves on to the time of its write); pages
        are added to a query. The latest times as well as the largest ids: after a backup is put
        back in place of the file, the next judgment or query takes an id that was seen before."""
        return self.db.execute(
            "SELECT (SELECT MAX(id) FROM judgments), (SELECT MAX(created) FROM judgments), (SELECT MAX(id) FROM queries), "
            "(SELECT MAX(created) FROM queries), (SELECT COUNT(*) FROM query_pages), (SELECT MAX(rowid) FROM scores), "
            "(SELECT MAX(created) FROM scores)").fetchone()

    def latest_scores(self) -> dict[int, tuple[list[str], dict[str, dict[str, tuple[float, str]]]]]:
        """Every query's candidate pages and scores in two reads, as `query_pages` gives them one
        query at a time: query id → (its page hashes in upload order, model → page hash →
        (that model's latest score of the page, its settings key)). Evaluating a store of 2,000
        queries one query at a time took 14,000 reads."""
        pages: dict[int, list[str]] = {}
        for query_id, page_hash in self.db.execute("SELECT query_id, page_hash FROM query_pages ORDER BY query_id, position"):
            pages.setdefault(query_id, []).append(page_hash)
        scores: dict[int, dict[str, dict[str, tuple[float, str]]]] = {}
        for query_id, model, page_hash, score, key in self.db.execute(
                "SELECT query_id, model, page_hash, score, settings_key FROM scores ORDER BY created, rowid"):
            scores.setdefault(query_id, {}).setdefault(model, {})[page_hash] = (score, key)  # oldest first: the latest stays
        return {
            query_id: (hashes, {model: {h: by_page[h] for h in hashes if h in by_page}
                                for model, by_page in scores.get(query_id, {}).items()})
            for query_id, hashes in pages.items()
        }

    def page_png(self, page_hash: str) -> bytes:
        """The stored image file (PNG) of a page."""
        row = self.db.execute("SELECT image FROM pages WHERE content_hash = ?", [page_hash]).fetchone()
        if row is None:
            raise KeyError(f"no page {page_hash}")
        return row[0]

    def page_image(self, page_hash: str) -> Image.Image:
        """The page as a decoded PIL image (exact stored pixels)."""
        image = Image.open(io.BytesIO(self.page_png(page_hash)))
        image.load()
        return image

    # -- judgments -----------------------------------------------------------------------------

    def record_judgment(self, query_id: int, page_hash: str, annotator: str, label: str, *,
                        expected: str | None = None) -> int | None:
        """Append a label; returns its row id.

        Repeating the current label adds nothing and returns the current row's id (a double key
        press must not need two undos); clearing a page that has no label returns None.
        `expected`: the page's label (CLEARED: none) as the annotator saw it; where the label is
        another by now (given in another tab meanwhile), LabelChanged is raised and nothing is
        recorded: the annotator was answering a page that no longer looked like that.
        """
        if label not in ALL_LABELS:
            raise ValueError(f"label must be one of {ALL_LABELS}, not {label!r}")
        annotator = _check_annotator(annotator)
        with self._write() as db:
            # "ALICE" judges as "alice". Looked up inside the write lock: two first judgments as
            # "Dana" and "DANA" at once both found no such name, and made two annotators.
            annotator = self.known_annotator(annotator)
            current = self._latest(db, query_id, page_hash, annotator)
            # A new name only: one stored before the limit (the Python API took 200) still judges.
            if len(annotator) > MAX_ANNOTATOR_CHARS and not db.execute(
                    "SELECT 1 FROM judgments WHERE annotator = ? LIMIT 1", [annotator]).fetchone():
                raise ValueError(f"annotator must be a name of at most {MAX_ANNOTATOR_CHARS} characters, got {len(annotator)}")
            now_label = current.label if current is not None else CLEARED
            if expected is not None and now_label != expected:
                self._require_page(db, query_id, page_hash)  # a page that is not there says so first
                raise LabelChanged(now_label)
            if current is not None and current.label == label:
                return current.id
            if current is None and label == CLEARED:
                self._require_page(db, query_id, page_hash)  # nothing to clear, but still validate
                return None
            return self._append(db, query_id, page_hash, annotator, label)

    def undo(self, query_id: int, annotator: str) -> Undone | None:
        """Revert `annotator`'s latest not-yet-undone action on this query; None if there is none.

        The page goes back to the label it had before that action (after a relabel, the earlier
        label; after a first label, unjudged), by appending a row that names the row it undoes.
        Repeated undos walk further back.
        """
        annotator = _check_annotator(annotator)
        with self._write() as db:
            annotator = self.known_annotator(annotator)  # inside the lock, as in record_judgment
            rows = [
                _judgment(r)
                for r in db.query(
                    "SELECT * FROM judgments WHERE query_id = ? AND annotator = ? ORDER BY id", [query_id, annotator]
                )
            ]
            actions: list[Judgment] = []  # a stack of actions still in effect
            for row in rows:
                if row.undoes is None:
                    actions.append(row)
                else:
                    actions = [a for a in actions if a.id != row.undoes]
            if not actions:
                return None
            target = actions[-1]
            before = [r for r in rows if r.page_hash == target.page_hash and r.id < target.id]
            previous = before[-1].label if before else CLEARED
            self._append(db, query_id, target.page_hash, annotator, previous, undoes=target.id)
        return Undone(target.page_hash, target.label, None if previous == CLEARED else previous)

    def _append(
        self, db: Database, query_id: int, page_hash: str, annotator: str, label: str, undoes: int | None = None
    ) -> int:
        try:
            cursor = db.execute(
                "INSERT INTO judgments (query_id, page_hash, annotator, label, created, undoes) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                [query_id, page_hash, annotator, label, now(), undoes],
            )
        except sqlite3.IntegrityError as error:
            if "FOREIGN KEY" in str(error):
                raise self._not_ranked(db, query_id, page_hash) from error
            raise
        return cursor.lastrowid

    @staticmethod
    def _require_page(db: Database, query_id: int, page_hash: str) -> None:
        row = db.execute(
            "SELECT 1 FROM query_pages WHERE query_id = ? AND page_hash = ?", [query_id, page_hash]
        ).fetchone()
        if row is None:
            raise Store._not_ranked(db, query_id, page_hash)

    @staticmethod
    def _not_ranked(db: Database, query_id: int, page_hash: str) -> Exception:
        """Why (query, page) is not a pair to judge: no such query at all, or not that page."""
        if db.execute("SELECT 1 FROM queries WHERE id = ?", [query_id]).fetchone() is None:
            return KeyError(f"no query {query_id}")
        return ValueError(f"page {page_hash} was not ranked for query {query_id}")

    @staticmethod
    def _latest(db: Database, query_id: int, page_hash: str, annotator: str) -> Judgment | None:
        for row in db.query(
            "SELECT * FROM judgments WHERE query_id = ? AND annotator = ? AND page_hash = ? ORDER BY id DESC LIMIT 1",
            [query_id, annotator, page_hash],
        ):
            return _judgment(row)
        return None

    def history(self, query_id: int, page_hash: str, annotator: str | None = None) -> list[Judgment]:
        """Every row for this page (and annotator), oldest first — undos and relabels included."""
        annotator = self._spelling(annotator)
        rows = self.db.query(
            "SELECT * FROM judgments WHERE query_id = ? AND page_hash = ? AND (? IS NULL OR annotator = ?) ORDER BY id",
            [query_id, page_hash, annotator, annotator],
        )
        return [_judgment(r) for r in rows]

    def current_judgments(
        self,
        *,
        query_id: int | None = None,
        annotator: str | None = None,
        since: date | datetime | str | None = None,
        until: date | datetime | str | None = None,
    ) -> list[Judgment]:
        """Current labels (cleared ones left out), ordered by query, page, annotator.

        `until` gives the labels as they stood then (the latest row before it); `since` keeps
        only labels given from then on (a label an undo brought back counts from when it was
        first given: a mislabel undone is no new label). A date `until` includes that whole day.
        """
        upper, lower = time_bound(until, end=True), time_bound(since)
        annotator = self._spelling(annotator)
        # Only the filters given, as plain comparisons: "(:x IS NULL OR x = :x)" kept SQLite off
        # the index, and evaluating 4,000 queries one by one scanned every judgment each time.
        filters = [clause for clause, value in (("query_id = :query_id", query_id), ("annotator = :annotator", annotator),
                                                ("created < :upper", upper)) if value is not None]
        # Grouped in the index's column order, so SQLite walks the index instead of sorting it.
        rows = self.db.execute(
            f"""SELECT {", ".join("j." + name for name in Judgment._fields)} FROM judgments j
               JOIN (SELECT MAX(id) AS id FROM judgments
                     {"WHERE " + " AND ".join(filters) if filters else ""}
                     GROUP BY query_id, annotator, page_hash) latest ON latest.id = j.id
               WHERE j.label != 'cleared' AND (:lower IS NULL OR j.created >= :lower OR j.undoes IS NOT NULL)
               ORDER BY j.query_id, j.page_hash, j.annotator""",
            dict(query_id=query_id, annotator=annotator, upper=upper, lower=lower),
        )
        judgments = list(map(Judgment._make, rows))
        if lower is not None:
            judgments = [j for j in judgments if j.undoes is None or self._labelled_at(j) >= lower]
        return judgments

    def _labelled_at(self, undo: Judgment) -> str:
        """When the label that the undo row `undo` brought back was given (undo follows the
        same rule: the label of the row before the one undone, itself perhaps an undo)."""
        history = [_judgment(r) for r in self.db.query(
            "SELECT * FROM judgments WHERE query_id = ? AND page_hash = ? AND annotator = ? AND id <= ? ORDER BY id",
            [undo.query_id, undo.page_hash, undo.annotator, undo.id])]
        row = undo
        while row.undoes is not None:
            before = [earlier for earlier in history if earlier.id < row.undoes]
            if not before:
                break
            row = before[-1]
        return row.created

    def current_labels(self, query_id: int, annotator: str) -> dict[str, str]:
        """page hash → `annotator`'s current label (relevant / not_relevant / skip)."""
        return {j.page_hash: j.label for j in self.current_judgments(query_id=query_id, annotator=annotator)}

    def labels_by_annotator(self, query_id: int) -> dict[str, dict[str, str]]:
        """page hash → {annotator: current label} over all annotators."""
        labels: dict[str, dict[str, str]] = {}
        for j in self.current_judgments(query_id=query_id):
            labels.setdefault(j.page_hash, {})[j.annotator] = j.label
        return labels

    def progress(self, query_id: int, annotator: str) -> tuple[int, int]:
        """(pages `annotator` has judged — skips count as seen —, candidate pages of the query)."""
        summary = self.list_queries(annotator, query_id=query_id)
        if not summary:
            raise KeyError(f"no query {query_id}")
        return summary[0].judged, summary[0].pages

    def annotators(self) -> list[str]:
        """Everyone who has judged anything, sorted as people read names ("bob" before "Carol")."""
        return [r[0] for r in self.db.execute(
            "SELECT DISTINCT annotator FROM judgments ORDER BY annotator COLLATE NOCASE, annotator")]

    def known_annotator(self, name: str) -> str:
        """`name` as someone already judges under it, if only its capitalisation differs
        ("Alice" for "alice"): one person, one name (else their progress looked lost, and κ
        counted two annotators). A name nobody uses yet is returned as it is."""
        # NOCASE folds ASCII letters only: "Élise" and "élise" stay two names.
        name = same_text(name)
        _check_utf8(name, "annotator name")
        # First the name as typed, one index probe: the DISTINCT below reads every judgment of
        # that annotator (~2 ms at 15,000, several times a key press).
        if self.db.execute("SELECT 1 FROM judgments WHERE annotator = ? COLLATE NOCASE AND annotator = ? LIMIT 1",
                           [name, name]).fetchone():
            return name
        spellings = [row[0] for row in self.db.execute(
            "SELECT DISTINCT annotator FROM judgments WHERE annotator = ? COLLATE NOCASE", [name])]
        return min(spellings) if spellings else name

    def _spelling(self, annotator: str | None) -> str | None:
        """A name to filter by, as judgments carry it (`known_annotator`); None stays None."""
        return None if annotator is None else self.known_annotator(annotator.strip())

    def require_annotator(self, annotator: str | None) -> list[str]:
        """Everyone who has judged (`annotators`), refusing a name nobody has judged under (a typo)
        with that list: filtering by it could only give nothing. None (everyone) passes. Map
        another capitalisation to the stored name first (`known_annotator`)."""
        annotators = self.annotators()
        if annotator is not None and annotator not in annotators:
            shown = ANNOTATORS_NAMED  # a message, not a listing: a workspace may have hundreds
            known = ", ".join(annotators[:shown]) + (f", … ({len(annotators)} in all)" if len(annotators) > shown else "")
            raise ValueError(f"no judgments by {annotator!r} (annotators: {known or 'nobody has judged anything yet'})")
        return annotators

    def integrity_check(self) -> str:
        """SQLite's own check; 'ok' when the file is sound."""
        return self.db.execute("PRAGMA integrity_check").fetchone()[0]


def _check_annotator(annotator: str) -> str:
    name = same_text(annotator.strip()) if isinstance(annotator, str) else ""
    if not name:
        raise ValueError("annotator must be a non-empty name")
    # A control character (SQLite's NOCASE comparison stops at a NUL: "team\0carol" matched
    # "team\0alice" and relabelled her pages), or a name of invisible characters only.
    if any(unicodedata.category(character) == "Cc" for character in name) or is_blank(name):
        raise ValueError(f"annotator must be a name that shows, without control characters (got {name!r})")
    _check_utf8(name, "annotator name")
    return name


def _check_utf8(text: str, what: str) -> None:
    """Refuse text SQLite cannot store (`not_utf8`) with a ValueError naming it, not a codec error."""
    if problem := not_utf8(text):
        raise ValueError(f"the {what} is not valid text: {problem}")
