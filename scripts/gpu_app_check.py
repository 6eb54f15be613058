"""Two GPU checks the benchmark does not make, on the app's own scoring path (`ranking.rank`).

1. Out of GPU memory: `ranking.score_within_gpu_memory` halves the batch on a real CUDA
   out-of-memory error. Smaller cards are emulated (`--cards-gib`): the allocator capped at that
   size (`torch.cuda.set_per_process_memory_fraction`), the caches sized as there; the first
   model then scores 25 pages at its largest image budget in batches of 32, and the scores are
   compared with the same pages scored uncapped.
2. torch.compile over uploads of different sizes, as a Space meets them: the same sequence of
   cold requests (pages never seen; sizes in `UPLOADS`, one at a smaller budget) eager, then
   compiled and warmed up as the app does (`Reranker.warm_up`; `--no-warm-up`: not). Per request:
   seconds, and how many graphs Dynamo compiled during it (each one a compilation the visitor
   waited for); Dynamo's warnings (a recompile limit hit means that part runs uncompiled from
   then on) are printed.

    python scripts/gpu_app_check.py [--checks both|memory|compile] [--cards-gib 10 12 16]
                                    [--no-warm-up] [--shape tiny|2b] [--json report.json]

On a CPU it runs the tiny shape (the out-of-memory check needs CUDA and is skipped); on a GPU the
exact Qwen3-VL-2B shape with random weights, bf16. `scripts/gpu_bench.sh --app` runs it there.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repository, for `reranker`

UPLOADS = [("25 pages", 25, None), ("3 pages", 3, None), ("1 page", 1, None), ("12 pages", 12, None),
           ("40 pages", 40, None), ("25 pages, first model at 640 tokens", 25, 640)]
QUERY = "What was the total revenue reported for the fiscal year?"


class Collect(logging.Handler):
    """Keeps the messages of a logger's warnings (the halvings, Dynamo's limits)."""

    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def out_of_memory_check(rerankers, pages, device, cards_gib) -> list[dict]:
    """The first model scores `pages` at its largest budget, batches of 32, on emulated smaller
    cards: the allocator capped at each size in `cards_gib`, and the models' vision and prefix
    caches sized as on such a card (1/20 of it). Compared with the same pages scored uncapped."""
    import torch

    from reranker import ranking
    from reranker.lru import LRUCache

    model = next(iter(rerankers.values()))
    budget = model.spec.max_pixels_limit
    model.batch_size = 32
    for reranker in rerankers.values():
        reranker.clear_caches()
    torch.cuda.empty_cache()
    free = ranking.score_within_gpu_memory(model, QUERY, pages, None, max_pixels=budget)
    total = torch.cuda.get_device_properties(device).total_memory
    kept = {key: (r.vision_cache, r.prefix_cache) for key, r in rerankers.items()}
    reports = []
    for card in cards_gib:
        for reranker in rerankers.values():
            reranker.clear_caches()
            reranker.vision_cache, reranker.prefix_cache = LRUCache(card * 2**30 // 20), LRUCache(card * 2**30 // 20)
        torch.cuda.empty_cache()
        collect = Collect()
        logging.getLogger("reranker").addHandler(collect)
        torch.cuda.set_per_process_memory_fraction(card * 2**30 / total, device)
        started = time.perf_counter()
        try:
            capped = ranking.score_within_gpu_memory(model, QUERY, pages, None, max_pixels=budget)
            error = None
        except Exception as failure:  # reported, not raised: the other checks still run
            capped, error = None, f"{type(failure).__name__}: {failure}"
        finally:
            seconds = time.perf_counter() - started
            torch.cuda.set_per_process_memory_fraction(1.0, device)
            logging.getLogger("reranker").removeHandler(collect)
        report = {"card_gib": card, "model": model.spec.label, "pages": len(pages), "budget_pixels": budget,
                  "halvings": collect.messages, "seconds": seconds, "error": error,
                  "max_difference": max(abs(a - b) for a, b in zip(free, capped, strict=True)) if capped else None}
        reports.append(report)
        print(f"\nout of GPU memory on a {card} GiB card (emulated): {model.spec.label}, {len(pages)} pages at its "
              f"largest budget, batches of 32")
        for message in collect.messages:
            print(f"  log: {message}")
        if error:
            print(f"  FAILED: {error}")
        else:
            print(f"  scored in {seconds:.2f} s; largest |capped − uncapped| score difference {report['max_difference']:.2e}"
                  + ("" if collect.messages else " (no out-of-memory error at this size)"))
    for key, reranker in rerankers.items():
        reranker.clear_caches()
        reranker.vision_cache, reranker.prefix_cache = kept[key]
    torch.cuda.empty_cache()
    return reports


def upload_sequence(rerankers, pdfs, device, label: str) -> list[dict]:
    from torch._dynamo.utils import counters

    from reranker import ranking
    from reranker.bench import timed, tokens_to_pixels

    rows = []
    print(f"\n{label}")
    print("| upload | seconds | graphs compiled during it |")
    print("|---|---:|---:|")
    first = next(iter(rerankers))
    for (name, _, budget_tokens), pdf in zip(UPLOADS, pdfs):  # noqa: B905 (the warm-up passes the first only)
        for reranker in rerankers.values():
            reranker.clear_caches()
        max_pixels = {first: tokens_to_pixels(budget_tokens)} if budget_tokens else None
        graphs = counters["stats"]["unique_graphs"]
        results = []
        files = [(f"{name}.pdf", pdf)]
        seconds = timed(lambda: results.append(ranking.rank(files, QUERY, rerankers, max_pixels=max_pixels)),  # noqa: B023
                        device)
        failed = {key: r.error for key, r in results[0].rankings.items() if r.error}
        compiled = counters["stats"]["unique_graphs"] - graphs
        rows.append({"upload": name, "seconds": seconds, "graphs_compiled": compiled, "errors": failed})
        print(f"| {name} | {seconds:.2f} | {compiled} |" + (f" errors: {failed}" if failed else ""))
    return rows


def main() -> None:
    import torch

    from reranker.bench import bench_tokenizer, build, distinct_pages, pdf_of, timed
    from reranker.scoring import default_batch_size

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shape", choices=("auto", "tiny", "2b"), default="auto",
                        help="model shape (default auto: 2b on a GPU, tiny on a CPU)")
    parser.add_argument("--cards-gib", type=int, nargs="+", default=[10, 12, 16],
                        help="card sizes the out-of-memory check emulates (default 10 12 16; both models' weights take ~8.5 GiB)")
    parser.add_argument("--checks", choices=("both", "memory", "compile"), default="both",
                        help="which check to run (default both; memory needs CUDA)")
    parser.add_argument("--no-warm-up", dest="warm_up", action="store_false",
                        help="compile without `Reranker.warm_up` (the first requests then pay the compilation)")
    parser.add_argument("--json", help="also write the report here")
    args = parser.parse_args()
    device = torch.device("cuda", torch.cuda.current_device()) if torch.cuda.is_available() else torch.device("cpu")
    shape = args.shape if args.shape != "auto" else ("2b" if device.type == "cuda" else "tiny")
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    tokenizer, tokenizer_name = bench_tokenizer("auto")
    started = time.perf_counter()
    rerankers = build(shape, device, dtype, "sdpa", default_batch_size(device), None, 0, tokenizer)
    print(f"built 2 random '{shape}' models on {device} ({dtype}, tokenizer {tokenizer_name}, "
          f"batch {default_batch_size(device)}) in {time.perf_counter() - started:.1f} s")
    dynamo = Collect()
    logging.getLogger("torch._dynamo").addHandler(dynamo)
    report = {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu", "shape": shape,
              "dtype": str(dtype), "versions": {"torch": torch.__version__}}
    if device.type != "cuda" and args.checks != "compile":
        print("out-of-memory check: skipped, it needs a CUDA GPU")
    if device.type == "cuda" and args.checks != "compile":
        report["out_of_memory"] = out_of_memory_check(rerankers, distinct_pages(25), device, args.cards_gib)
        rerankers[next(iter(rerankers))].batch_size = default_batch_size(device)
    if args.checks != "memory":
        pool = distinct_pages(max(count for _, count, _ in UPLOADS) + 10)
        pdfs = [pdf_of(pool[index % 7: index % 7 + count]) for index, (_, count, _) in enumerate(UPLOADS)]
        upload_sequence(rerankers, pdfs[:1], device, "warm-up (untimed: render workers, kernels)")
        report["eager"] = upload_sequence(rerankers, pdfs, device, "eager")
        for reranker in rerankers.values():
            reranker.compile()
        if args.warm_up:  # as the app does with RERANKER_COMPILE=1
            report["warm_up_seconds"] = timed(lambda: [reranker.warm_up() for reranker in rerankers.values()], device)
            print(f"\nwarm-up after compiling (both models): {report['warm_up_seconds']:.1f} s")
        report["compiled"] = upload_sequence(rerankers, pdfs, device, "compiled (the first request pays what is left to compile)")
        report["compiled_again"] = upload_sequence(rerankers, pdfs, device, "compiled, the same uploads again")
    report["dynamo_warnings"] = dynamo.messages
    for message in dynamo.messages:
        print(f"Dynamo: {message.splitlines()[0]}")
    if args.json:
        with open(args.json, "w") as file:
            json.dump(report, file, indent=1)


if __name__ == "__main__":
    main()
