"""`python -m reranker score|export|eval`: what the README shows works, and bad input is a
message with a non-zero exit, never a traceback."""

from __future__ import annotations

import json
import re

import pytest

from reranker.cli import main

from .bad_inputs import SAMPLE_PAGES

A, B = "qwen3-vl-reranker-2b", "qwen3-reranker-mm-2b"


@pytest.fixture
def tiny_env(tiny_checkpoints, monkeypatch):
    for name, value in tiny_checkpoints.environment().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("RERANKER_DEVICE", "cpu")


def test_score_top_n_applies_to_the_json_too(tiny_env, capsys):
    files = [str(path) for path in SAMPLE_PAGES[:4]]
    assert main(["score", *files, "--query", "a chart of surface density", "--top", "2", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    for key in (A, B):
        assert [entry["rank"] for entry in result["models"][key]["ranking"]] == [1, 2]
        assert len(result["models"][key]["scores"]) == 4  # the scores stay whole
    # What the app's /rank returns, nothing stored.
    assert result["query_id"] is None and len(result["pages"]) == 4 and result["agreement"]["k"] == 5


@pytest.mark.parametrize("json_output", [False, True])
def test_score_with_no_readable_file_says_so_without_loading_a_model(monkeypatch, tmp_path, capsys, json_output):
    monkeypatch.setenv("RERANKER_QWEN3_VL_RERANKER_2B_MODEL", str(tmp_path / "no-weights-here"))  # loading would fail
    code = main(["score", str(tmp_path / "missing.pdf"), "--query", "anything", *(["--json"] if json_output else [])])
    captured = capsys.readouterr()
    assert code == 1
    if json_output:  # still one JSON document for a script to read
        printed = json.loads(captured.out)
        assert printed["models"] == {} and printed["problems"][0].startswith("missing.pdf: could not be read")
    else:
        assert captured.out == ""
    assert "problem: missing.pdf: could not be read" in captured.err
    assert captured.err.rstrip().endswith("error: no page could be read from the given files")
    assert "Loading" not in captured.err and "unavailable" not in captured.err


def test_score_refuses_an_image_budget_outside_a_chosen_models_range_before_loading(monkeypatch, capsys):
    monkeypatch.setenv("RERANKER_QWEN3_VL_RERANKER_2B_MODEL", "/no/weights/here")  # loading would fail
    code = main(["score", str(SAMPLE_PAGES[0]), "-q", "x", "--max-pixels", "10000"])  # A's range, below B's
    captured = capsys.readouterr()
    assert code == 2 and captured.out == ""
    assert captured.err == "error: --max-pixels: Qwen3RerankerMM-2B: image budget 10000 px is outside [65536, 1843200]\n"


def test_score_with_a_query_too_long_for_one_model_says_why_without_a_traceback(tiny_env, capsys):
    """The ranking logged the model's refusal with its traceback, which the progress line printed."""
    code = main(["score", str(SAMPLE_PAGES[0]), "-q", "surface density " * 20_000, "--model", B])
    captured = capsys.readouterr()
    assert code == 1 and "Traceback" not in captured.err and "Traceback" not in captured.out
    assert "unavailable: PromptTooLong: Qwen3RerankerMM-2B reads the whole query" in captured.out
    assert captured.out.count("reads the whole query") == 1 and "reads the whole query" not in captured.err


def test_score_json_stays_json_when_a_pdf_is_damaged(tiny_checkpoints, tmp_path):
    """MuPDF's own complaints (from the render worker processes too) never reach stdout."""
    import os
    import subprocess
    import sys

    from .bad_inputs import truncated_pdf

    damaged = tmp_path / "trunc.pdf"
    damaged.write_bytes(truncated_pdf())
    root = __file__.rsplit("/tests/", 1)[0]
    done = subprocess.run(
        [sys.executable, "-m", "reranker", "score", "-m", A, "--json", "-q", "revenue", str(damaged), str(SAMPLE_PAGES[0])],
        capture_output=True, text=True, timeout=300, cwd=root,
        env={**os.environ, **tiny_checkpoints.environment(), "RERANKER_DEVICE": "cpu", "PYTHONPATH": root},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout)
    assert "MuPDF" not in done.stdout
    # every page: the one the truncated PDF still yields that is not blank (tests/bad_inputs.py) and the image
    ranked = sorted((entry["source"], entry["page_number"]) for entry in result["models"][A]["ranking"])
    assert ranked == sorted([("trunc.pdf", 1), (SAMPLE_PAGES[0].name, 1)])
    hashes = [entry["content_hash"] for entry in result["models"][A]["ranking"]]  # tells same-named files apart
    assert len(set(hashes)) == 2 and all(len(h) == 64 for h in hashes)
    assert any("trunc.pdf" in problem and "3 page(s) were recovered" in problem for problem in result["problems"])


def test_an_image_over_pillows_warning_size_is_a_problem_named_once_without_pillows_warning(tmp_path):
    """Pillow printed its DecompressionBombWarning on stderr for a 90 MP image that the command
    then refused by name anyway."""
    import os
    import subprocess
    import sys

    from .bad_inputs import png_claiming

    huge = tmp_path / "poster.png"
    huge.write_bytes(png_claiming(9_500, 9_500))  # 90.25 MP: over Pillow's warning, under its error
    root = __file__.rsplit("/tests/", 1)[0]
    done = subprocess.run([sys.executable, "-m", "reranker", "score", "-q", "revenue", str(huge)],
                          capture_output=True, text=True, timeout=120, cwd=root,
                          env={**os.environ, "PYTHONPATH": root, "PYTHONWARNINGS": "default"})
    assert done.returncode == 1  # no page: no model is loaded
    assert "problem: poster.png: image too large: 9,500×9,500 pixels" in done.stderr
    assert "Warning" not in done.stderr, done.stderr


@pytest.mark.parametrize(
    ("option", "value"),
    [("--batch-size", "-1"), ("--dpi", "-5"), ("--dpi", "inf"), ("--dpi", "1e-9"), ("--dpi", "nan"), ("--top", "0"),
     ("--max-pixels", "lots"), ("--device", "tpu"), ("--device", "cuda:x")],
)
def test_score_options_out_of_range_are_usage_errors(option, value, capsys):
    with pytest.raises(SystemExit) as stopped:
        main(["score", str(SAMPLE_PAGES[0]), "--query", "q", option, value])
    assert stopped.value.code == 2 and f"argument {option}: must be" in capsys.readouterr().err


def test_eval_names_a_device_that_is_none_before_reading_the_benchmark(tmp_path, capsys):
    with pytest.raises(SystemExit) as stopped:
        main(["eval", "--benchmark", str(tmp_path / "missing.parquet"), "--images", str(tmp_path), "--device", "tpu"])
    assert stopped.value.code == 2
    assert "argument --device: must be a device such as cpu, cuda or cuda:1, not 'tpu'" in capsys.readouterr().err


def test_an_instruction_no_chosen_model_reads_is_refused_and_one_the_other_model_ignores_is_noted(tiny_env, capsys):
    """B's prompt is fixed: its ranking echoed the instruction as if it had read it."""
    code = main(["score", str(SAMPLE_PAGES[0]), "-q", "a chart", "-m", B, "--instruction", "only tables"])
    assert code == 2 and capsys.readouterr().err == (
        "error: --instruction: Qwen3RerankerMM-2B takes no instruction (its prompt is fixed)\n")
    assert main(["score", str(SAMPLE_PAGES[0]), "-q", "a chart", "--instruction", "only tables", "--json"]) == 0
    captured = capsys.readouterr()
    assert "note: --instruction is not used by Qwen3RerankerMM-2B, which takes none" in captured.err
    assert json.loads(captured.out)["instruction"] == "only tables"


def test_score_fails_when_one_chosen_model_cannot_score_and_still_prints_the_other(tiny_env, monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("RERANKER_QWEN3_RERANKER_MM_2B_ADAPTER", str(tmp_path / "no-adapter-here"))
    assert main(["score", str(SAMPLE_PAGES[0]), "-q", "a chart", "--json"]) == 1
    models = json.loads(capsys.readouterr().out)["models"]
    assert models[A]["error"] is None and len(models[A]["ranking"]) == 1
    assert models[B]["error"] and models[B]["ranking"] == []


def test_a_gpu_asked_for_on_a_machine_without_one_is_said_so(tiny_env, capsys):
    assert main(["score", str(SAMPLE_PAGES[0]), "--query", "q", "--device", "cuda", "--json"]) == 1
    errors = [model["error"] for model in json.loads(capsys.readouterr().out)["models"].values()]
    assert all("sees no CUDA GPU" in error and "damaged" not in error for error in errors)


def test_export_and_eval_on_a_file_that_is_no_database_say_so(tmp_path, capsys):
    not_a_database = tmp_path / "notes.db"
    not_a_database.write_text("meeting notes, not SQLite")
    assert main(["export", "--db", str(not_a_database), "--format", "pointwise", "--out", str(tmp_path / "x.zip")]) == 1
    assert f"error: The database {not_a_database} could not be opened: DatabaseError: file is not a database" in capsys.readouterr().err
    assert main(["eval", "--db", str(not_a_database)]) == 1
    assert f"error: The database {not_a_database} could not be opened: DatabaseError: file is not a database" in capsys.readouterr().err


@pytest.mark.parametrize("command", [["export", "--format", "pointwise", "--preview"], ["eval"]])
def test_export_and_eval_leave_another_programs_database_and_an_empty_file_untouched(tmp_path, capsys, command):
    """They only read: pointed at the wrong SQLite file, they say so, and the file is as it was
    (they used to add this app's tables to it and switch it to WAL)."""
    import sqlite3

    other = tmp_path / "crm.db"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE customers (id INTEGER, name TEXT)")
    before = other.read_bytes()
    empty = tmp_path / "empty.db"
    empty.touch()
    assert main([*command, "--db", str(other)]) == 1
    assert f"{other} is not a database of this app (its tables: customers), so it was left untouched" in capsys.readouterr().err
    assert main([*command, "--db", str(empty)]) == 1
    assert f"{empty} is an empty database: nothing was ever ranked into it" in capsys.readouterr().err
    assert other.read_bytes() == before and empty.stat().st_size == 0
    assert sorted(path.name for path in tmp_path.iterdir()) == ["crm.db", "empty.db"]


def test_export_names_only_known_models(tmp_path, capsys):
    for option in ("--model", "--teacher"):
        with pytest.raises(SystemExit):
            main(["export", "--db", str(tmp_path / "a.db"), "--format", "flagembedding", "--out", str(tmp_path / "x.zip"),
                  option, "nosuch"])
        assert "invalid choice: 'nosuch'" in capsys.readouterr().err


@pytest.mark.parametrize(("fmt", "out", "fix"), [("parquet", "p.zip", "p.parquet"), ("pointwise", "train.parquet", "train.zip")])
def test_export_refuses_a_file_name_that_says_another_format(tmp_path, capsys, fmt, out, fix):
    from reranker.store import Store

    Store(tmp_path / "arena.db").close()
    assert main(["export", "--db", str(tmp_path / "arena.db"), "--format", fmt, "--out", str(tmp_path / out)]) == 2
    assert f"a {fmt} export is a {fix[fix.index('.'):]} file; name it {fix}" in capsys.readouterr().err
    assert not (tmp_path / out).exists()


def test_score_lists_what_it_could_not_use_as_problems(tiny_env, tmp_path, capsys):
    from .bad_inputs import truncated_pdf

    damaged = tmp_path / "trunc.pdf"
    damaged.write_bytes(truncated_pdf())
    notes = tmp_path / "notes.txt"
    notes.write_text("not a page")
    assert main(["score", "-m", A, "-q", "revenue", str(damaged), str(notes), str(SAMPLE_PAGES[0])]) == 0
    out, err = capsys.readouterr()
    assert "problem: notes.txt:" in err and "skipped:" not in err
    assert re.search(r"^  2 pages in \d", out, re.MULTILINE), out  # the page trunc.pdf still had, and the image
    assert main(["score", "-m", A, "-q", "revenue", str(SAMPLE_PAGES[0])]) == 0
    assert re.search(r"^  1 page in \d", capsys.readouterr().out, re.MULTILINE)  # not "1 pages"


@pytest.mark.parametrize("argv, message", [
    (["bench", "--budget-tokens", "5000"], "--budget-tokens 5000: Qwen3-VL-Reranker-2B takes 4 to 1800 visual tokens"),
    (["eval", "--benchmark", "bench.parquet", "--max-pixels-a", "5120000"],
     "--max-pixels-a must be from 4096 to 1843200 (the image budget of Qwen3-VL-Reranker-2B, in pixels), not 5120000"),
])
def test_bench_and_eval_refuse_an_image_budget_outside_the_range_before_building_a_model(argv, message, capsys):
    assert main(argv) == 2  # a usage error, as argparse's own
    assert capsys.readouterr().err == f"error: {message}\n"


@pytest.mark.parametrize("argv, message", [
    (["--format", "pointwise", "--negatives-per-row", "3", "--out", "x.zip"], "--negatives-per-row is for --format sentence-transformers only"),
    (["--format", "parquet", "--teacher", "qwen3-vl-reranker-2b", "--out", "x.parquet"], "--teacher is for --format flagembedding only"),
    (["--format", "pointwise"], "--out FILE is required (or --preview, to print the counts only)"),
])
def test_export_refuses_options_it_would_ignore_and_a_missing_out(tmp_path, capsys, argv, message):
    from reranker.store import Store

    with Store(tmp_path / "arena.db"):
        pass
    assert main(["export", "--db", str(tmp_path / "arena.db"), *argv]) == 2
    assert f"error: {message}" in capsys.readouterr().err


@pytest.mark.parametrize("command", [["eval"], ["export", "--format", "pointwise", "--preview"]])
def test_an_empty_database_path_is_refused_not_read_as_the_default(command, tmp_path, monkeypatch, capsys):
    """`--db "$DB"` with an unset variable evaluated (or exported) the default database."""
    from reranker.store import Store

    Store(tmp_path / "arena.db").close()
    monkeypatch.setenv("RERANKER_DB", str(tmp_path / "arena.db"))
    assert main([*command, "--db", ""]) == 1
    assert capsys.readouterr().err == "error: the database path is empty; give a file name (or None for RERANKER_DB or the default)\n"


def test_a_warning_during_the_ranking_gets_its_own_line_not_the_end_of_the_progress_line(tiny_env, monkeypatch, capsys):
    """Progress went to stderr as one line redrawn with \\r, and a warning logged meanwhile was
    appended to it (in a log file, every step and the warning ran on one line)."""
    monkeypatch.setenv("RERANKER_VARLEN_ATTENTION", "1")  # not usable on a CPU: a warning at load
    assert main(["score", "-m", A, "-q", "a chart", str(SAMPLE_PAGES[0])]) == 0
    lines = capsys.readouterr().err.splitlines()
    warning = next(line for line in lines if "RERANKER_VARLEN_ATTENTION" in line)
    assert warning.startswith("RERANKER_VARLEN_ATTENTION: not used")  # its own line, once
    assert sum("RERANKER_VARLEN_ATTENTION" in line for line in lines) == 1
    progress = [line for line in lines if line.startswith("[")]
    assert len(progress) >= 2 and all("\r" not in line for line in lines)  # not a terminal: a line per step
    assert progress[-1].startswith("[100%]")


def test_the_checkpoints_module_says_its_usage_and_exits_2_on_a_wrong_argument():
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "reranker.checkpoints", "fetch-vocabs"], capture_output=True, text=True)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.startswith("usage: python -m reranker.checkpoints fetch-vocab")
