"""Files the command-line tools write (`export --out`, `eval --output`, `bench --json`): checked
before the work starts, and written whole or not at all.

    out = check_output(args.out, "--out", database=args.db)   # before minutes of work
    with output_file(out) as partial:                         # a private file beside `out`
        write(partial)                                        # replaces `out` only when done
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

SQLITE_HEADER = b"SQLite format 3\x00"


def check_output(path: str | os.PathLike, flag: str, database: str | os.PathLike | None = None) -> Path:
    """`path`, once it is known to be a file this command may write: its folder is made if
    missing, and it is not a folder, nor the `database` being read, nor any SQLite database (a
    mistyped `--out arena.db` replaced every judgment with an export). Raises ValueError naming
    `flag` and the path."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{flag} {path} is a folder; give a file name")
    if path.exists():
        if database is not None and Path(database).exists() and path.resolve() == Path(database).resolve():
            raise ValueError(f"{flag} {path} is the database being read; give another file name")
        if _is_sqlite(path):
            raise ValueError(f"{flag} {path} is a SQLite database, which this would replace; give another file name")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ValueError(f"{flag} {path}: its folder cannot be made ({error.strerror or error})") from None
    return path


def _is_sqlite(path: Path) -> bool:
    try:
        with open(path, "rb") as handle:
            return handle.read(len(SQLITE_HEADER)) == SQLITE_HEADER
    except OSError:
        return False


@contextlib.contextmanager
def output_file(path: str | os.PathLike) -> Iterator[Path]:
    """A new private file in `path`'s folder to write the output into; it replaces `path` when
    the block ends without an error, and is removed otherwise, so `path` is never half-written
    and two runs writing the same `path` at once never share a file. An OSError names `path`."""
    path = Path(path)
    try:
        handle, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
    except OSError as error:
        raise OSError(f"cannot write {path}: {error.strerror or error}") from None
    os.close(handle)
    partial = Path(name)
    try:
        try:
            yield partial
            os.chmod(partial, 0o644)  # as a file opened for writing usually is (mkstemp makes it 0600)
            os.replace(partial, path)
        except OSError as error:
            raise OSError(f"cannot write {path}: {error.strerror or error}") from None
    finally:
        partial.unlink(missing_ok=True)

