"""Subprocess helper for tests/test_store.py: appends judgments and prints each committed id.

    python tests/store_writer.py DB QUERY_ID ANNOTATOR COUNT GO_FILE PAGE_HASH...
    python tests/store_writer.py --create DB ANNOTATOR COUNT GO_FILE

Judgment n labels page n % len(pages), alternating relevant / not_relevant on each round over
the pages, so every write changes the page's label (no write is deduplicated). An id is printed
(and flushed) only after its transaction committed, so a parent that kills this process knows
exactly which judgments must have survived. With GO_FILE (not "-"), the writer opens the store,
prints "ready", and starts only once that file exists, so all writers really run at once.

--create: prints "ready" before the store is opened, so several writers released together all
create the database file at once (DB need not exist). Each then saves a ranking of the same
CREATE_PAGES pages under its own query ("query of ANNOTATOR"), prints "query ID", and writes
COUNT judgments on that query as above.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from PIL import Image  # noqa: E402

from reranker.imaging import image_hash  # noqa: E402
from reranker.store import NOT_RELEVANT, RELEVANT, Store  # noqa: E402

CREATE_PAGES = 3


def label_for(n: int, page_count: int) -> str:
    return (RELEVANT, NOT_RELEVANT)[(n // page_count) % 2]


def write(store: Store, query_id: int, annotator: str, count: int, pages: list[str], emit, pause: float = 0.0) -> None:
    for n in range(count):
        emit(store.record_judgment(query_id, pages[n % len(pages)], annotator, label_for(n, len(pages))))
        if pause:
            time.sleep(pause)  # like a (very fast) annotator: the lock is free between writes


def shared_pages() -> list[SimpleNamespace]:
    """The same few tiny Page-like pages in every --create writer (so they race to insert them)."""
    pages = []
    for number in range(1, CREATE_PAGES + 1):
        image = Image.new("RGB", (6, 4), (40 * number, 255 - 40 * number, 7))
        pages.append(SimpleNamespace(content_hash=image_hash(image), image=image, source="shared.pdf",
                                     page_number=number, document_hash="ab" * 32, kind="pdf"))
    return pages


def wait_for(go_file: str) -> None:
    print("ready", flush=True)
    while not Path(go_file).exists():
        time.sleep(0.005)


def emit(line: object) -> None:
    sys.stdout.write(f"{line}\n")
    sys.stdout.flush()


def create_and_write(db: str, annotator: str, count: int, go_file: str) -> None:
    pages = shared_pages()
    wait_for(go_file)
    store = Store(db)  # all writers at once on a file that does not exist yet
    query_id = store.save_ranking(
        f"query of {annotator}", None, pages,
        scores={"model-a": [0.1 * n for n in range(len(pages))]}, settings={"model-a": {"max_pixels": 1}},
    )
    emit(f"query {query_id}")
    write(store, query_id, annotator, count, [page.content_hash for page in pages], emit)
    store.close()


def main(argv: list[str]) -> int:
    if argv[0] == "--create":
        db, annotator, count, go_file = argv[1:]
        create_and_write(db, annotator, int(count), go_file)
        return 0
    db, query_id, annotator, count, go_file, *pages = argv
    store = Store(db)
    if go_file != "-":
        wait_for(go_file)
    write(store, int(query_id), annotator, int(count), pages, emit, pause=0.0 if go_file == "-" else 0.001)
    store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
