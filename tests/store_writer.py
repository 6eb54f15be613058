"""Subprocess helper for tests/test_store.py: appends judgments and prints each committed id.

    python tests/store_writer.py DB QUERY_ID ANNOTATOR COUNT GO_FILE PAGE_HASH...

Judgment n labels page n % len(pages), alternating relevant / not_relevant on each round over
the pages, so every write changes the page's label (no write is deduplicated). An id is printed
(and flushed) only after its transaction committed, so a parent that kills this process knows
exactly which judgments must have survived. With GO_FILE (not "-"), the writer opens the store,
prints "ready", and starts only once that file exists, so all writers really run at once.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from reranker.store import NOT_RELEVANT, RELEVANT, Store  # noqa: E402


def label_for(n: int, page_count: int) -> str:
    return (RELEVANT, NOT_RELEVANT)[(n // page_count) % 2]


def write(store: Store, query_id: int, annotator: str, count: int, pages: list[str], emit, pause: float = 0.0) -> None:
    for n in range(count):
        emit(store.record_judgment(query_id, pages[n % len(pages)], annotator, label_for(n, len(pages))))
        if pause:
            time.sleep(pause)  # like a (very fast) annotator: the lock is free between writes


def main(argv: list[str]) -> int:
    db, query_id, annotator, count, go_file, *pages = argv
    store = Store(db)
    if go_file != "-":
        print("ready", flush=True)
        while not Path(go_file).exists():
            time.sleep(0.005)

    def emit(judgment_id: int) -> None:
        sys.stdout.write(f"{judgment_id}\n")
        sys.stdout.flush()

    write(store, int(query_id), annotator, int(count), pages, emit, pause=0.0 if go_file == "-" else 0.001)
    store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
