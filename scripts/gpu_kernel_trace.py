"""Where the GPU's time goes in one batch of Qwen3-VL-Reranker, cold and warm: a kernel trace (issue 8).

The benchmark says how fast a cold batch of 25 pages is; this says why. It builds the
benchmark's models (`reranker.bench.build`: the exact Qwen3-VL-2B shape with random weights on a
GPU, the tiny shape on a CPU), warms up, and records four regions with torch.profiler, each
ending in a synchronize so that every kernel it launched ran inside it:

  cold score       `Reranker.score` on 25 pages never seen (what the benchmark's cold row times)
  vision encoder   the encoder alone on those pages (as `bench --profile` splits a batch)
  language model   the language model and yes−no head, vision outputs cached
  warm score       `Reranker.score` of a new query on those pages, their vision outputs cached
                   (the benchmark's warm row): the language model plus what the call does around it

First, on a GPU, it counts each region's host syncs (torch's sync debug mode; again after
compiling): where the CPU waited for the GPU to finish its queued work, so it could not queue
more meanwhile. The vision encoder should have none (`reranker/vision_inputs.py`); the language
model has a few (transformers checks the image-token count, picks the deepstack rows by mask;
the scores are read back at the end).

For each region it prints the wall time, how long the GPU ran kernels (the union of their
intervals) and so how long it sat idle, and the kernels' time by kind: matrix products,
attention, copies, and the rest (elementwise work, norms, reductions; fused by torch.compile).
With the operations counted once (`torch.utils.flop_counter`, eager), it gives each kind's rate
in TFLOP/s, to set against the card's ~790 TFLOP/s of bf16 matrix work; and the longest
stretches the GPU sat idle, each with where it began and the kernel that ended it (run 10's
trace found a GIL convoy that way). `--compile` traces the same regions again after compiling
as the app does (`Reranker.compile`, `Reranker.warm_up`).

    python scripts/gpu_kernel_trace.py [--compile] [--pairs 25] [--out DIR] [--json SUMMARY]

The device's kernels of each trace go to DIR (default $OUT or ./out) as gzipped JSON
(`trace-eager.json.gz`, `trace-compiled.json.gz`: name, start and duration in µs, region) for
reading later. On a CPU there are no device kernels: it prints the wall times and counts only.
`scripts/gpu_bench.sh --trace` runs it on the GPU.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repository, for `reranker`

REGIONS = ("cold score", "vision encoder", "language model", "warm score")
KINDS = ("matrix products", "attention", "copies", "other kernels")
DEVICE_CATEGORIES = {"kernel", "gpu_memcpy", "gpu_memset"}
# Substrings of kernel names, lower-cased. cuBLAS(Lt) on Hopper: nvjet_*, sm90_xmma_gemm_*, *gemm*;
# cuDNN's convolution (the patch embedding's Conv3d) runs as an implicit gemm. cuDNN's fused
# attention: cudnn_generated_fort_native_sdpa_*; FlashAttention: flash_fwd_*; memory-efficient:
# fmha_cutlass*.
ATTENTION_NAMES = ("sdpa", "flash", "fmha", "attention", "attn")
MATRIX_NAMES = ("gemm", "nvjet", "xmma", "cutlass", "cublas", "matmul", "_mm_", "bmm", "conv")


def kind_of(name: str, category: str) -> str:
    """Which of KINDS a device event is, from its trace category and kernel name."""
    if category in ("gpu_memcpy", "gpu_memset"):
        return "copies"
    lowered = name.lower()
    if lowered.startswith(("triton_poi", "triton_per", "triton_red")):  # Inductor's fused pointwise and
        return "other kernels"  # reductions, named after the ops they feed ("…_scaled_dot_product_cudnn_attention_…")
    if any(part in lowered for part in ATTENTION_NAMES):  # before matrix: attention kernels say gemm too
        return "attention"
    if any(part in lowered for part in MATRIX_NAMES):
        return "matrix products"
    return "other kernels"


def union_length(intervals: list[tuple[float, float]]) -> float:
    """The total length covered by (start, end) intervals, overlaps counted once."""
    covered, reach = 0.0, float("-inf")
    for start, end in sorted(intervals):
        if end <= reach:
            continue
        covered += end - max(start, reach)
        reach = end
    return covered


def idle_gaps(inside: list[dict], start_us: float, end_us: float, top: int = 8) -> list[dict]:
    """The `top` longest stretches of [start_us, end_us] where the device ran nothing, longest
    first: where each began (ms into the region), how long it lasted, and what ran next."""
    gaps, reach = [], start_us
    for kernel in sorted(inside, key=lambda k: k["ts"]):
        if kernel["ts"] > reach:
            gaps.append((kernel["ts"] - reach, reach, kernel["name"]))
        reach = max(reach, kernel["ts"] + kernel["dur"])
    if end_us > reach:
        gaps.append((end_us - reach, reach, "(the end of the region)"))
    return [{"at_ms": (at - start_us) / 1000, "ms": length / 1000, "before": name[:100]}
            for length, at, name in sorted(gaps, key=lambda gap: -gap[0])[:top]]


def summarise(kernels: list[dict], start_us: float, end_us: float, flops: dict | None = None, top: int = 12) -> dict:
    """One region's device time: `kernels` ({name, cat, ts, dur} in µs) that started inside
    [start_us, end_us]. Milliseconds; `flops` (by kind) adds each kind's TFLOP/s; `gaps`, the
    longest idle stretches (`idle_gaps`)."""
    inside = [k for k in kernels if start_us <= k["ts"] <= end_us]
    busy_us = union_length([(k["ts"], k["ts"] + k["dur"]) for k in inside])
    wall_us = end_us - start_us
    by_kind: dict[str, dict] = {kind: {"ms": 0.0, "count": 0} for kind in KINDS}
    by_name: dict[str, list] = defaultdict(lambda: [0.0, 0])
    for kernel in inside:
        entry = by_kind[kind_of(kernel["name"], kernel["cat"])]
        entry["ms"] += kernel["dur"] / 1000
        entry["count"] += 1
        by_name[kernel["name"]][0] += kernel["dur"] / 1000
        by_name[kernel["name"]][1] += 1
    for kind, entry in by_kind.items():
        flop = (flops or {}).get(kind)
        entry["tflop_per_s"] = flop / (entry["ms"] / 1000) / 1e12 if flop and entry["ms"] else None
    ranked = sorted(by_name.items(), key=lambda item: -item[1][0])[:top]
    return {
        "wall_ms": wall_us / 1000,
        "busy_ms": busy_us / 1000,
        "idle_ms": max(0.0, wall_us - busy_us) / 1000,
        "kernels": len(inside),
        "by_kind": by_kind,
        "top": [{"name": name, "ms": ms, "count": count} for name, (ms, count) in ranked],
        "gaps": idle_gaps(inside, start_us, end_us),
    }


def count_flops(work) -> dict:
    """The floating-point operations of `work()` by kind (torch's flop counter; eager only), or
    {} where the counter cannot count them: its SDPA formulas refuse grouped-query attention run
    as such (the language model's 16 query heads over 8 key heads, without a mask, on a GPU)."""
    from torch.utils.flop_counter import FlopCounterMode

    try:
        with FlopCounterMode(display=False) as counter:
            work()
    except AssertionError as error:
        print(f"(operations not counted: torch's flop counter says \"{error}\"; no TFLOP/s for this region)")
        return {}
    flops: Counter = Counter()
    for op, count in counter.get_flop_counts().get("Global", {}).items():
        name = str(op).lower()
        flops["attention" if "attention" in name else "matrix products"] += count
    return dict(flops)


def host_syncs(setup, work) -> Counter:
    """Where `work()` made the CPU wait for the GPU, by call site ("file.py:line" → count), from
    the warnings torch's sync debug mode gives (CUDA only). `setup()` runs first, uncounted."""
    import warnings

    import torch

    setup()
    torch.cuda.synchronize()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            with torch.inference_mode():
                work()
        finally:
            torch.cuda.set_sync_debug_mode("default")
    return sync_sites(caught)


def sync_sites(caught) -> Counter:
    """Call sites ("file.py:line") of the synchronizing-operation warnings among `caught`."""
    return Counter(f"{Path(warning.filename).name}:{warning.lineno}" for warning in caught
                   if "synchronizing" in str(warning.message))


def print_summary(label: str, region: str, summary: dict, flops: dict) -> None:
    busy_share = summary["busy_ms"] / summary["wall_ms"] if summary["wall_ms"] else 0.0
    total_flop = sum(flops.values())
    rate = f", {total_flop / (summary['wall_ms'] / 1000) / 1e12:.0f} TFLOP/s over the wall time" if total_flop and summary["wall_ms"] else ""
    device_time = (f", GPU busy {summary['busy_ms']:.1f} ms ({busy_share:.0%}), idle {summary['idle_ms']:.1f} ms; "
                   f"{summary['kernels']} kernels" if summary["kernels"] else "")
    print(f"\n{label} · {region}: {summary['wall_ms']:.1f} ms wall{device_time}; {total_flop / 1e12:.3g} TFLOP counted{rate}")
    if not summary["kernels"]:
        return  # a CPU run: nothing ran on a device
    print(f"  {'kind':16} {'ms':>9} {'share':>6} {'kernels':>8} {'TFLOP':>7} {'TFLOP/s':>8}")
    for kind, entry in summary["by_kind"].items():
        share = entry["ms"] / summary["busy_ms"] if summary["busy_ms"] else 0.0
        flop = flops.get(kind)
        rate_text = f"{entry['tflop_per_s']:8.0f}" if entry["tflop_per_s"] else f"{'—':>8}"
        print(f"  {kind:16} {entry['ms']:9.1f} {share:6.0%} {entry['count']:8d} "
              f"{(f'{flop / 1e12:7.1f}' if flop else f'{chr(8212):>7}')} {rate_text}")
    if summary["top"]:
        print("  longest kernels (total ms, calls):")
        for entry in summary["top"]:
            print(f"    {entry['ms']:8.1f} {entry['count']:6d}  {entry['name'][:110]}")
    if summary["gaps"]:
        print("  longest idle stretches (ms into the region, ms idle, what ran next):")
        for gap in summary["gaps"]:
            print(f"    {gap['at_ms']:8.1f} {gap['ms']:7.2f}  {gap['before'][:100]}")


def trace(regions: dict, device) -> tuple[list[dict], dict]:
    """Runs each region's (setup, work) under torch.profiler; the device events and each region's
    [start, end] in the trace's µs. Setup (emptying caches, preparing a batch) runs untraced."""
    import torch
    from torch.profiler import ProfilerActivity, profile, record_function

    from reranker.bench import synchronize

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities) as profiler:
        for name, (setup, work) in regions.items():
            setup()
            synchronize(device)
            with record_function(f"region: {name}"), torch.inference_mode():
                work()
                synchronize(device)
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "trace.json")
        profiler.export_chrome_trace(path)
        with open(path) as file:
            events = json.load(file)
    events = events["traceEvents"] if isinstance(events, dict) else events
    spans = {}
    for event in events:
        name = event.get("name", "")
        if event.get("cat") == "user_annotation" and name.startswith("region: "):
            spans[name.removeprefix("region: ")] = (float(event["ts"]), float(event["ts"]) + float(event["dur"]))
    kernels = [{"name": e.get("name", ""), "cat": e["cat"], "ts": float(e["ts"]), "dur": float(e.get("dur", 0))}
               for e in events if e.get("cat") in DEVICE_CATEGORIES and e.get("ph") == "X"]
    return kernels, spans


def main() -> int:
    import torch

    from reranker.bench import QUERIES, bench_tokenizer, build, distinct_pages, ready_batch, timed
    from reranker.cli import positive_int
    from reranker.documents import Page
    from reranker.imaging import image_hash

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=positive_int, default=None, help="pages in the batch (default 25 on a GPU, 6 on a CPU)")
    parser.add_argument("--compile", action="store_true", help="also trace after torch.compile, as the app compiles")
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "out")), help="where the traces go")
    parser.add_argument("--json", type=Path, default=None, help="also write the summary here (default DIR/trace-summary.json)")
    args = parser.parse_args()
    device = torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")
    gpu = device.type == "cuda"
    pairs = args.pairs or (25 if gpu else 6)
    dtype = torch.bfloat16 if gpu else torch.float32
    tokenizer, tokenizer_name = bench_tokenizer("auto")
    started = time.perf_counter()
    rerankers = build("2b" if gpu else "tiny", device, dtype, "sdpa", pairs, None, 0, tokenizer)
    reranker = next(iter(rerankers.values()))
    print(f"built on {torch.cuda.get_device_name(device) if gpu else 'cpu'} ({dtype}, tokenizer {tokenizer_name}, "
          f"torch {torch.__version__}) in {time.perf_counter() - started:.1f} s")
    images = distinct_pages(pairs * 2)
    pages = [Page(image_hash(image), image, "trace", number, "trace", "image") for number, image in enumerate(images[:pairs], 1)]
    warmup = images[pairs:]
    query = QUERIES[0]
    prompt = reranker.prompt(query)
    keys = [f"trace-{index}" for index in range(len(pages))]
    batch = {}

    def prepare(cached: bool):  # untraced: tokenizing and resizing (the benchmark's CPU preparation)
        def setup():
            if not cached:
                reranker.clear_caches()
            batch["now"] = ready_batch(reranker, prompt, pages, keys)
        return setup

    def seen_pages_new_query():  # the pages' vision outputs cached, no score of this query kept
        reranker.score(query, pages)
        reranker.score_cache.clear()

    regions = {
        "cold score": (reranker.clear_caches, lambda: reranker.score(query, pages)),
        "vision encoder": (prepare(cached=False), lambda: reranker._vision_outputs(batch["now"], reranker.budget)),
        "language model": (prepare(cached=True), lambda: reranker._forward(batch["now"], reranker.budget)),
        "warm score": (seen_pages_new_query, lambda: reranker.score(QUERIES[1], pages)),
    }

    def warm_up():
        for _ in range(2):
            reranker.score(QUERIES[2], warmup)
            reranker.clear_caches()
        for setup, work in regions.values():
            setup()
            with torch.inference_mode():
                work()

    warm_up()
    flops = {}
    for name, (setup, work) in regions.items():
        setup()
        with torch.inference_mode():
            flops[name] = count_flops(work)
    cold_seconds = timed(lambda: (reranker.clear_caches(), reranker.score(query, pages)), device)
    print(f"{pairs} pages at {reranker.spec.label}'s budget; one cold batch untraced: {cold_seconds * 1000:.0f} ms "
          f"({pairs / cold_seconds:.1f} pairs/s)")

    def census(mode: str) -> dict:  # each region's host syncs by call site (compiled code may make others)
        syncs = {name: host_syncs(setup, work) for name, (setup, work) in regions.items()} if gpu else {}
        for name, sites in syncs.items():
            listed = ", ".join(f"{site} ×{count}" for site, count in sites.most_common())
            print(f"host syncs, {mode} · {name}: {sum(sites.values())}{f' ({listed})' if listed else ''}")
        return {name: dict(sites) for name, sites in syncs.items()}

    report = {"device": torch.cuda.get_device_name(device) if gpu else "cpu", "torch": torch.__version__, "pairs": pairs,
              "flops": flops, "runs": {}}
    modes = ["eager"] + (["compiled"] if args.compile else [])
    args.out.mkdir(parents=True, exist_ok=True)
    for mode in modes:
        if mode == "compiled":
            started = time.perf_counter()
            reranker.compile()
            reranker.warm_up()
            warm_up()
            print(f"\ncompiled and warmed up in {time.perf_counter() - started:.1f} s")
            cold_seconds = timed(lambda: (reranker.clear_caches(), reranker.score(query, pages)), device)
            print(f"one cold batch untraced, compiled: {cold_seconds * 1000:.0f} ms ({pairs / cold_seconds:.1f} pairs/s)")
        syncs = census(mode)
        kernels, spans = trace(regions, device)
        missing = [name for name in regions if name not in spans]
        if missing:
            print(f"{mode}: the trace has no span for {', '.join(missing)} (profiler annotations missing)")
        run = {"untraced_cold_ms": cold_seconds * 1000, "host_syncs": syncs, "regions": {}}
        for name, (start, end) in spans.items():
            run["regions"][name] = summary = summarise(kernels, start, end, flops.get(name))
            print_summary(mode, name, summary, flops.get(name, {}))
        report["runs"][mode] = run
        with gzip.open(args.out / f"trace-{mode}.json.gz", "wt") as file:
            json.dump({"spans": spans, "kernels": kernels}, file)
    if not gpu:
        print("\n(a CPU run: no device kernels to sum; run it on a GPU for the breakdown)")
    with open(args.json or args.out / "trace-summary.json", "w") as file:
        json.dump(report, file, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
