"""Output files of the command-line tools (`reranker.output_files`): checked before the work,
written whole, and never in place of what is not a plain file of their own."""

from __future__ import annotations

import os
import stat
import threading

import pytest

from reranker.output_files import _umask, check_output, output_file


def test_an_output_that_is_the_database_or_one_of_its_wal_files_is_refused(tmp_path):
    database = tmp_path / "arena.db"
    database.write_bytes(b"SQLite format 3\x00")
    for name in ("arena.db", "arena.db-wal", "arena.db-shm", "arena.db-journal"):
        with pytest.raises(ValueError, match=f"--out {tmp_path / name} is the database('s \\w+ file)? being read"):
            check_output(tmp_path / name, "--out", database=database)
    with pytest.raises(ValueError, match="is the benchmark being read"):
        check_output(tmp_path / "bench.jsonl", "--output", inputs={"benchmark": tmp_path / "bench.jsonl", "other": None})
    assert check_output(tmp_path / "new" / "train.zip", "--out", database=database).parent.is_dir()  # folder made


def test_a_pipe_is_neither_read_by_the_check_nor_replaced_by_the_write(tmp_path):
    """`--output /dev/stdout` hung: the check read the pipe for a SQLite header; and the write
    would have put a file in place of the pipe (of /dev/null itself, as root)."""
    pipe = tmp_path / "pipe"
    os.mkfifo(pipe)
    checked = []
    checking = threading.Thread(target=lambda: checked.append(check_output(pipe, "--output")), daemon=True)
    checking.start()
    checking.join(timeout=10)
    if checking.is_alive():  # free the thread blocked opening the pipe for reading, then fail
        os.close(os.open(pipe, os.O_WRONLY | os.O_NONBLOCK))
        pytest.fail("check_output read from a pipe")
    received = []
    reader = threading.Thread(target=lambda: received.append(pipe.read_text()), daemon=True)
    reader.start()
    with output_file(pipe) as written:
        written.write_text("{}\n")
    reader.join(timeout=10)
    assert checked == [pipe] and received == ["{}\n"] and stat.S_ISFIFO(pipe.stat().st_mode)


def test_a_symbolic_link_keeps_pointing_at_its_file_which_gets_the_output(tmp_path):
    target = tmp_path / "exports" / "latest.json"
    target.parent.mkdir()
    target.write_text("old")
    link = tmp_path / "latest.json"
    link.symlink_to(target)
    with output_file(link) as written:
        written.write_text("new")
    assert link.is_symlink() and link.resolve() == target and target.read_text() == "new"
    assert sorted(path.name for path in target.parent.iterdir()) == ["latest.json"]


def test_a_file_keeps_its_permissions_and_a_new_one_follows_the_umask(tmp_path):
    private = tmp_path / "private.json"
    private.write_text("old")
    private.chmod(0o600)
    with output_file(private) as written:
        written.write_text("new")
    assert stat.S_IMODE(private.stat().st_mode) == 0o600 and private.read_text() == "new"
    mask = os.umask(0)
    os.umask(mask)
    assert _umask() == mask  # read from /proc, without changing it for other threads
    fresh = tmp_path / "fresh.json"
    with output_file(fresh) as written:
        written.write_text("{}")
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o666 & ~_umask()


def test_a_write_that_fails_leaves_the_earlier_file_and_no_partial_one(tmp_path):
    earlier = tmp_path / "out.json"
    earlier.write_text("earlier")
    with pytest.raises(RuntimeError, match="half way"), output_file(earlier) as written:
        written.write_text("half")
        raise RuntimeError("half way")
    assert earlier.read_text() == "earlier" and [path.name for path in tmp_path.iterdir()] == ["out.json"]
