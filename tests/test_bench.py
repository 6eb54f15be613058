"""`python -m reranker bench` runs end to end on the tiny shape and reports every row.

Nothing is timed against a threshold here (the benchmark measures; tests check it works): the
report has each measurement, and the fast path agrees with the reference style on its pairs.
"""

from __future__ import annotations

import argparse
import json

from reranker import bench


def test_the_benchmark_reports_every_row_on_the_tiny_shape(tmp_path, capsys):
    parser = argparse.ArgumentParser()
    bench.register_cli(parser.add_subparsers())
    out = tmp_path / "report.json"
    args = parser.parse_args(
        ["bench", "--shape", "tiny", "--device", "cpu", "--pairs", "4", "--batch-size", "2",
         "--reference-pairs", "2", "--repeats", "1", "--varlen", "--json", str(out)]
    )
    assert args.handler(args) == 0
    report = json.loads(out.read_text())
    names = [row["name"] for row in report["rows"]]
    assert names[0].startswith("reference") and names[2].startswith("cold")
    assert any("vision cache only" in name for name in names) and any("prefix KV reused" in name for name in names)
    assert names[-3].startswith("end-to-end: render PDF") and names[-1].startswith("end-to-end warm")
    # On a CPU the app renders, then scores; the vision prefetch is measured beside it.
    assert names[-2] == "end-to-end, other way: vision prefetch while rendering" and not report["end_to_end_vision_prefetch"]
    assert report["end_to_end_other_way_seconds"] == report["rows"][-2]["seconds"]
    assert report["max_score_difference_prefetch_vs_not"] < 1e-5  # float32: same scores either way
    assert all(row["seconds"] > 0 and row["pairs"] > 0 for row in report["rows"])
    assert report["rows"][0]["ratio"] == 1.0 and names[1].startswith("reference: second model")
    assert report["rows"][1]["ratio"] == 1.0  # the second model's rows are compared with its own reference
    assert report["rows"][-1]["pairs"] == 8  # end to end: 4 pages, each scored by both models
    assert report["max_score_difference_fast_vs_reference"] < 1e-5  # float32: same scores
    # --varlen: the kernel is CUDA-only; the report says it was not used, and why.
    assert report["varlen_attention"] is False and "CUDA-only" in report["varlen_problem"]
    assert report["pdf_render_pages_per_second"] > 0
    printed = capsys.readouterr().out
    assert "| reference: one pair per forward" in printed and "end-to-end ranking of 4 PDF pages" in printed
    assert "without the vision prefetch, as the app here" in printed
    assert "--varlen: not used, the model is on cpu, the kernel is CUDA-only" in printed
