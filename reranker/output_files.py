"""Files the command-line tools write (`export --out`, `eval --output`, `bench --json`): checked
before the work starts, and written whole or not at all.

    out = check_output(args.out, "--out", database=args.db)   # before minutes of work
    with output_file(out) as partial:                         # a private file beside `out`
        write(partial)                                        # replaces `out` only when done
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path

SQLITE_HEADER = b"SQLite format 3\x00"
SQLITE_COMPANIONS = ("-wal", "-shm", "-journal")  # files beside a database that hold part of it


def check_output(path: str | os.PathLike, flag: str, database: str | os.PathLike | None = None,
                 inputs: Mapping[str, str | os.PathLike | None] | None = None) -> Path:
    """`path`, once it is known to be a file this command may write: its folder is made if
    missing, and it is not a folder, nor the `database` being read (or its WAL files), nor another
    file being read (`inputs`: what it is → its path), nor any SQLite database (a mistyped
    `--out arena.db` replaced every judgment with an export). Raises ValueError naming `flag` and
    the path."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{flag} {path} is a folder; give a file name")
    read = dict(inputs or {})
    if database is not None:
        database = Path(database)
        read.update({"database": database}, **{f"database's {end[1:]} file": database.with_name(database.name + end)
                                                for end in SQLITE_COMPANIONS})
    for what, source in read.items():
        if source is not None and path.resolve() == Path(source).expanduser().resolve():
            raise ValueError(f"{flag} {path} is the {what} being read; give another file name")
    if _is_regular(path) and _is_sqlite(path):  # only a regular file is read: a pipe would block here
        raise ValueError(f"{flag} {path} is a SQLite database, which this would replace; give another file name")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ValueError(f"{flag} {path}: its folder cannot be made ({error.strerror or error})") from None
    return path


def _is_regular(path: Path) -> bool:
    try:
        return stat.S_ISREG(path.stat().st_mode)
    except OSError:
        return False


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
    and two runs writing the same `path` at once never share a file. A symbolic link keeps
    pointing where it did (its target is replaced), a file keeps its permissions, and what is not
    a file (/dev/stdout, a pipe) is written to directly. An OSError names `path`."""
    path = Path(path)
    if path.exists() and not _is_regular(path):
        yield path
        return
    target = path.resolve() if path.is_symlink() else path
    try:
        handle, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent)
    except OSError as error:
        raise OSError(f"cannot write {path}: {error.strerror or error}") from None
    os.close(handle)
    partial = Path(name)
    try:
        try:
            yield partial
            os.chmod(partial, _mode_for(target))
            os.replace(partial, target)
        except OSError as error:
            raise OSError(f"cannot write {path}: {error.strerror or error}") from None
    finally:
        partial.unlink(missing_ok=True)


def _mode_for(target: Path) -> int:
    """The permissions a file written there would get: the file's own if there is one, else
    what the process's umask leaves of 0o666 (mkstemp makes its files 0o600)."""
    try:
        return stat.S_IMODE(target.stat().st_mode)
    except OSError:
        return 0o666 & ~_umask()


def _umask() -> int:
    """This process's umask, read without changing it (os.umask would, for every thread)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    return 0o022
