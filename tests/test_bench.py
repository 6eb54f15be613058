"""`python -m reranker bench` runs end to end on the tiny shape and reports every row.

Nothing is timed against a threshold here (the benchmark measures; tests check it works): the
report has each measurement, and the fast path agrees with the reference style on its pairs.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import statistics
import sys
from pathlib import Path

import pytest
import torch

from reranker import bench, cli

ROOT = Path(__file__).resolve().parent.parent


def test_the_benchmark_reports_every_row_on_the_tiny_shape(tmp_path, capsys, monkeypatch):
    # Caches too small for one page: the warm rows hold the run's pages anyway (they re-encoded
    # the pages the cold rows had let go, on a CPU at the 2B shape), the end-to-end rows keep the app's.
    monkeypatch.setenv("RERANKER_VISION_CACHE_MB", "0.1")
    monkeypatch.setenv("RERANKER_PREFIX_CACHE_MB", "0.1")
    parser = argparse.ArgumentParser()
    bench.register_cli(parser.add_subparsers())
    out = tmp_path / "report.json"
    args = parser.parse_args(
        ["bench", "--shape", "tiny", "--device", "cpu", "--pairs", "4", "--batch-size", "2",
         "--reference-pairs", "2", "--repeats", "2", "--varlen", "--profile", "--resize", "device", "--json", str(out)]
    )
    assert args.handler(args) == 0
    report = json.loads(out.read_text())
    assert [path.name for path in tmp_path.iterdir()] == ["report.json"]  # written whole: no partial file left
    names = [row["name"] for row in report["rows"]]
    assert names[0].startswith("reference") and names[2].startswith("cold")
    # --resize device (a GPU's default): the next row times the same cold batches resized by Pillow
    assert report["resize_on_device"] is True and names[3] == "cold: the same, pages resized by Pillow on the CPU"
    assert any("vision cache only" in name for name in names) and any("prefix KV reused" in name for name in names)
    assert names[-2].startswith("end-to-end: render PDF") and names[-1].startswith("end-to-end warm")
    assert report["end_to_end_seconds"] == report["rows"][-2]["seconds"]
    assert all(row["seconds"] > 0 and row["pairs"] > 0 for row in report["rows"])
    # each repeat's time is kept (the reference rows run once), the row's seconds their median
    assert [len(row["each"]) for row in report["rows"]] == [1, 1] + [2] * (len(names) - 2)
    assert all(row["seconds"] == statistics.median(row["each"]) for row in report["rows"])
    assert report["rows"][0]["ratio"] == 1.0 and names[1].startswith("reference: second model")
    assert report["rows"][1]["ratio"] == 1.0  # the second model's rows are compared with its own reference
    assert report["rows"][-1]["pairs"] == 8  # end to end: 4 pages, each scored by both models
    assert report["end_to_end_warmup_seconds"] > 0  # an untimed request before the timed ones
    assert (report["pages"], report["batch_size"], report["reference_pairs"], report["repeats"]) == (4, 2, 2, 2)
    assert report["defaults_used"] == [] and report["vision_chunk"] == 8
    assert report["max_score_difference_fast_vs_reference"] < 1e-5  # float32: same scores
    assert report["max_score_difference_device_vs_pillow_resize"] == 0  # Pillow's very pixels
    # --varlen: the kernel is CUDA-only; the report says it was not used, and why.
    assert report["varlen_attention"] is False and "CUDA-only" in report["varlen_problem"]
    assert report["pdf_render_pages_per_second"] > 0
    # --profile: one cold batch by part, the resizing waited for before the device's parts
    assert list(report["breakdown_seconds"]) == ["prepare (CPU)", "vision encoder", "language model + head"]
    assert report["breakdown_pages"] == 2  # one batch of --batch-size pages, as the cold row runs (it took all 4)
    warm_rows = [row for row in report["rows"] if row["name"].startswith("warm")]
    assert len(warm_rows) == 3 and not any("NOT all warm" in row["note"] for row in warm_rows)
    assert all(seconds > 0 for seconds in report["breakdown_seconds"].values())
    printed = capsys.readouterr().out
    assert "| reference: one pair per forward" in printed and "end-to-end ranking of 4 PDF pages" in printed
    assert "a new query about the same PDF" in printed and "after an untimed warm-up request" in printed
    assert "one cold batch of 2 pages, by part" in printed
    assert "4 pages · batch 2 · vision chunk 8 · pages resized on the device · budget 1280 tokens · 2 reference pairs · median of 2 repeats" in printed
    assert "defaults on" not in printed  # every option was given
    cold = report["rows"][2]
    assert f"| {min(cold['each']):.3f}–{max(cold['each']):.3f} " in printed and "| (one run)     |" in printed  # the range column
    assert "--varlen: not used, the model is on cpu, the kernel is CUDA-only" in printed


def refuse_to_run(*args, **kwargs):
    raise AssertionError("the benchmark started although its options were refused")


@pytest.mark.parametrize("option, value", [
    ("--pairs", "0"), ("--pairs", "-3"), ("--batch-size", "-1"), ("--batch-size", "0"), ("--vision-chunk", "-1"),
    ("--vision-chunk", "0"), ("--reference-pairs", "0"), ("--reference-pairs", "-1"), ("--repeats", "-1"),
    ("--repeats", "0"), ("--budget-tokens", "0"), ("--pairs", "2.5"), ("--seed", "-1"),
])
def test_a_bad_number_is_a_usage_error_naming_the_option(monkeypatch, capsys, option, value):
    monkeypatch.setattr(bench, "run", refuse_to_run)
    with pytest.raises(SystemExit) as exit:
        cli.main(["bench", option, value])
    err = capsys.readouterr().err
    assert exit.value.code == 2 and "Traceback" not in err
    assert err.strip().splitlines()[-1].endswith(f"error: argument {option}: must be a whole number of at least "
                                                 f"{0 if option == '--seed' else 1}, not {value!r}")


@pytest.mark.parametrize("argv, message", [
    (["--budget-tokens", "5000"], "--budget-tokens 5000: Qwen3-VL-Reranker-2B takes 4 to 1800 visual tokens"),
    (["--budget-tokens", "3"], "--budget-tokens 3: Qwen3-VL-Reranker-2B takes 4 to 1800 visual tokens"),
    (["--pairs", "4", "--reference-pairs", "5"], "--reference-pairs 5 is more than the 4 pages (--pairs)"),
    (["--device", "mps"], "--device mps: the benchmark runs on cuda, cuda:N or cpu"),
    (["--device", "tpu"], "--device tpu: not a device; the benchmark runs on cuda, cuda:N or cpu"),
])
def test_options_that_cannot_run_are_one_line_errors_before_anything_is_built(monkeypatch, capsys, argv, message):
    monkeypatch.setattr(bench, "run", refuse_to_run)
    assert cli.main(["bench", "--device", "cpu", *argv]) == 2  # a usage error, as argparse's own
    captured = capsys.readouterr()
    assert captured.err.startswith(f"error: {message}") and captured.err.count("\n") == 1
    assert " px" not in captured.err  # the budget option is in tokens, and so is its error


def test_cuda_and_flash_attention_are_checked_up_front(monkeypatch, capsys):
    import torch

    monkeypatch.setattr(bench, "run", refuse_to_run)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert cli.main(["bench", "--device", "cuda"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: --device cuda: CUDA is not available here (") and err.endswith("use --device cpu\n")

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *rest: None if name == "flash_attn" else find_spec(name, *rest))
    assert cli.main(["bench", "--attn", "flash_attention_2"]) == 1
    assert capsys.readouterr().err == ("error: --attn flash_attention_2: the flash-attn package is not installed "
                                       "(it has no PyPI wheel); use --attn sdpa, the default\n")


def test_json_output_is_checked_before_the_run(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(bench, "run", refuse_to_run)
    assert cli.main(["bench", "--device", "cpu", "--json", str(tmp_path)]) == 1
    assert capsys.readouterr().err == f"error: --json {tmp_path} is a folder; give a file name\n"
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    assert cli.main(["bench", "--device", "cpu", "--json", str(blocker / "report.json")]) == 1
    assert capsys.readouterr().err.startswith(f"error: --json {blocker / 'report.json'}: its folder cannot be made")


def test_a_cpu_run_says_which_defaults_it_uses(capsys):
    parser = bench.standalone_parser()
    args = parser.parse_args(["--device", "cpu"])
    device, used = bench.settle(args)
    assert device.type == "cpu"
    assert used == ["--pairs 10", "--batch-size 10", "--reference-pairs 3", "--repeats 1"]
    assert (args.pairs, args.batch_size, args.reference_pairs, args.repeats) == (10, 10, 3, 1)
    # Defaults never exceed the pages asked for; given options are kept as given.
    args = parser.parse_args(["--device", "cpu", "--pairs", "2", "--repeats", "2"])
    assert bench.settle(args)[1] == ["--batch-size 2", "--reference-pairs 2"]
    assert (args.pairs, args.batch_size, args.reference_pairs, args.repeats) == (2, 2, 2, 2)
    assert bench.CPU_DEFAULTS["pairs"] < bench.GPU_DEFAULTS["pairs"]


def test_python_m_reranker_bench_shows_its_own_usage():
    usage = bench.standalone_parser().format_usage()
    assert usage.startswith("usage: python -m reranker.bench [-h] [--shape") and " bench bench" not in usage
    result = subprocess.run([sys.executable, "-m", "reranker.bench", "--pairs", "2", "--reference-pairs", "3",
                             "--device", "cpu"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == "error: --reference-pairs 3 is more than the 2 pages (--pairs)\n"


def test_gpu_bench_check_names_a_missing_package_without_a_traceback(tmp_path):
    """scripts/gpu_bench.sh starts with an import check: a machine without pebble (the old .whl
    lacked it) is told so at once, not after minutes of setup with a traceback."""
    (tmp_path / "pebble.py").write_text("raise ImportError('No module named pebble (hidden by the test)')\n")
    env = dict(os.environ, PYTHON=sys.executable, PYTHONPATH=f"{tmp_path}{os.pathsep}{ROOT}")
    result = subprocess.run(["bash", str(ROOT / "scripts" / "gpu_bench.sh"), "--check"], env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "  import pebble: ImportError: No module named pebble (hidden by the test)" in result.stderr
    assert result.stderr.rstrip().endswith("carry .whl and .cache.")


def test_the_sdpa_kernel_probe_builds_the_language_models_mask_and_needs_cuda(capsys):
    """scripts/gpu_sdpa_kernels.py times SDPA's backends on a GPU at scoring's shapes. Its language
    model shape carries the mask a padded batch gets (causal, padding on the left, as the models'
    tokenizers pad); without CUDA it says so and exits cleanly."""
    spec = importlib.util.spec_from_file_location("gpu_sdpa_kernels", ROOT / "scripts" / "gpu_sdpa_kernels.py")
    probe = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(probe)
    q, k, v, mask = probe.inputs(3, 2, 10, 8, True, "cpu")
    assert q.shape == k.shape == v.shape == (3, 2, 10, 8) and mask.shape == (3, 1, 10, 10)
    lengths = mask[:, 0, -1].sum(dim=-1).tolist()  # the last token sees the whole sequence, less the padding
    assert lengths == [8, 9, 10]
    for row, length in zip(mask[:, 0], lengths, strict=True):
        assert not row[:, : 10 - length].any()  # no query attends to padding
        assert torch.equal(row[10 - length:, 10 - length:], torch.ones(length, length, dtype=torch.bool).tril())
    assert probe.inputs(1, 2, 10, 8, False, "cpu")[3] is None  # the vision encoder: no mask
    if not torch.cuda.is_available():
        assert probe.main() == 0 and capsys.readouterr().out == "gpu_sdpa_kernels.py: needs a CUDA GPU\n"


def load_script(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_kernel_trace_sums_device_time_by_kind_and_counts_overlaps_once():
    """scripts/gpu_kernel_trace.py splits a region's device time into kinds by kernel name, and its
    busy time is the union of kernel intervals (two streams overlapping count once), so idle time
    is the wall time the GPU ran nothing. Kernels launched outside the region are left out."""
    trace_script = load_script("gpu_kernel_trace")
    assert trace_script.kind_of("nvjet_tst_128x256_64x4_2x1_v_bz_coopA_NNT", "kernel") == "matrix products"
    assert trace_script.kind_of("sm90_xmma_gemm_bf16bf16_bf16f32_f32_tn_n_tilesize128x128x64", "kernel") == "matrix products"
    assert trace_script.kind_of("cudnn_generated_fort_native_sdpa_sm90_flash_fprop_wgmma_f16_knob_3", "kernel") == "attention"
    assert trace_script.kind_of("void pytorch_flash::flash_fwd_kernel<Flash_fwd_kernel_traits<128>>", "kernel") == "attention"
    assert trace_script.kind_of("triton_poi_fused_add_mul_gelu_3", "kernel") == "other kernels"
    assert trace_script.kind_of("triton_per_fused__scaled_dot_product_cudnn_attention__to_copy_mean_mul_pow_rsqrt",
                                "kernel") == "other kernels"  # a norm feeding attention, named after it
    assert trace_script.kind_of("void at::native::vectorized_elementwise_kernel<4>", "kernel") == "other kernels"
    assert trace_script.kind_of("Memcpy HtoD (Pinned -> Device)", "gpu_memcpy") == "copies"
    kernels = [
        {"name": "nvjet_a", "cat": "kernel", "ts": 100.0, "dur": 400.0},          # 100–500
        {"name": "fort_native_sdpa", "cat": "kernel", "ts": 300.0, "dur": 300.0},  # 300–600, overlaps the first
        {"name": "elementwise", "cat": "kernel", "ts": 700.0, "dur": 100.0},       # 700–800
        {"name": "nvjet_a", "cat": "kernel", "ts": 850.0, "dur": 100.0},           # 850–950
        {"name": "Memset", "cat": "gpu_memset", "ts": 960.0, "dur": 10.0},         # 960–970
        {"name": "nvjet_a", "cat": "kernel", "ts": 1500.0, "dur": 100.0},          # after the region
    ]
    summary = trace_script.summarise(kernels, 0.0, 1000.0, flops={"matrix products": 5e9, "attention": 3e9})
    assert summary["wall_ms"] == 1.0 and summary["kernels"] == 5
    assert summary["busy_ms"] == pytest.approx((500 + 100 + 100 + 10) / 1000)  # 100–600, 700–800, 850–950, 960–970
    assert summary["idle_ms"] == pytest.approx(1.0 - 0.71)
    by_kind = summary["by_kind"]
    assert by_kind["matrix products"]["ms"] == pytest.approx(0.5) and by_kind["matrix products"]["count"] == 2
    assert by_kind["matrix products"]["tflop_per_s"] == pytest.approx(5e9 / 0.5e-3 / 1e12)  # 10 TFLOP/s
    assert by_kind["attention"]["ms"] == pytest.approx(0.3) and by_kind["attention"]["tflop_per_s"] == pytest.approx(10.0)
    assert by_kind["other kernels"]["tflop_per_s"] is None and by_kind["copies"]["count"] == 1
    assert summary["top"][0] == {"name": "nvjet_a", "ms": pytest.approx(0.5), "count": 2}
    # The idle stretches, longest first: 0–100 before the first kernel, 600–700, 800–850, 950–960,
    # and 970–1000 after the last one (the kernel after the region is not in it).
    gaps = [(round(gap["at_ms"], 3), round(gap["ms"], 3), gap["before"]) for gap in summary["gaps"]]
    assert gaps == [(0.0, 0.1, "nvjet_a"), (0.6, 0.1, "elementwise"), (0.8, 0.05, "nvjet_a"),
                    (0.97, 0.03, "(the end of the region)"), (0.95, 0.01, "Memset")]


def test_the_kernel_trace_finds_each_regions_span_and_counts_its_operations():
    """The profiler part of the kernel trace, on the CPU: each named region gets its span in the
    trace (set-up runs outside it), and the flop counter splits matrix products from attention."""
    trace_script = load_script("gpu_kernel_trace")
    a, b = torch.randn(64, 32), torch.randn(32, 16)
    q = k = v = torch.randn(1, 2, 8, 4)
    done = []
    regions = {
        "product": (lambda: done.append("set up"), lambda: a @ b),
        "attention": (lambda: None, lambda: torch.nn.functional.scaled_dot_product_attention(q, k, v)),
    }
    kernels, spans = trace_script.trace(regions, torch.device("cpu"))
    assert kernels == [] and done == ["set up"]  # no device here
    assert set(spans) == {"product", "attention"}
    assert spans["product"][0] < spans["product"][1] <= spans["attention"][0] < spans["attention"][1]
    assert trace_script.count_flops(regions["product"][1]) == {"matrix products": 2 * 64 * 32 * 16}


def test_the_kernel_trace_goes_on_where_the_flop_counter_cannot_count(monkeypatch, capsys):
    """On the H200, torch's flop counter refused the language model's grouped-query attention
    (an AssertionError from its SDPA formula) and the whole trace stopped: the region is then
    traced without rates."""
    trace_script = load_script("gpu_kernel_trace")
    from torch.utils import flop_counter

    def refuse(*args, **kwargs):
        raise AssertionError("sdpa_flop_count: query/key/value shapes are incompatible")

    monkeypatch.setitem(flop_counter.flop_registry, torch.ops.aten.mm, refuse)
    a, b = torch.randn(4, 3), torch.randn(3, 2)
    assert trace_script.count_flops(lambda: a @ b) == {}
    assert "operations not counted" in capsys.readouterr().out


def test_the_kernel_trace_counts_host_syncs_by_call_site():
    """torch's sync debug mode warns "called a synchronizing CUDA operation" (CUDA only): the
    trace counts those warnings by where they came from, and ignores any other warning."""
    import warnings

    trace_script = load_script("gpu_kernel_trace")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for line in (120, 120, 97):
            warnings.warn_explicit("called a synchronizing CUDA operation", UserWarning, "/x/modeling_qwen3_vl.py", line)
        warnings.warn_explicit("something else", UserWarning, "/x/scoring.py", 5)
    assert trace_script.sync_sites(caught) == {"modeling_qwen3_vl.py:120": 2, "modeling_qwen3_vl.py:97": 1}


def test_the_kernel_trace_refuses_a_batch_of_no_pages_by_name():
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "gpu_kernel_trace.py"), "--pairs", "0"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "argument --pairs: must be a whole number of at least 1, not '0'" in result.stderr
