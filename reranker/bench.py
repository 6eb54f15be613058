"""`python -m reranker bench`: scoring throughput, measured against the reference style in ONE run.

Builds the exact Qwen3-VL-2B shape with random weights on a GPU (speed does not depend on the
weight values, so no download is needed), or a tiny shape on a CPU, and measures:
  reference   one pair per forward pass, processor per pair, KV cache on — what both models'
              reference code does;
  cold        the project's path on pages it has never seen (vision encoder + language model);
  warm        a new query over the same pages (vision outputs come from the cache; for the
              second model, whose prompt puts the page first, each page's kept prefix KV);
  end-to-end  the app's path: render a PDF, then rank its pages with both models, cold;
plus PDF render pages/s and peak GPU memory. Every row prints its ratio to the reference row.

Text is tokenized with Qwen's own vocabulary when it is on the machine (see
`reranker.checkpoints.qwen_vocabulary`), so prompts have their real token counts; the fallback
byte-level tokenizer spends ~4× the tokens on text (the report says which was used).

Defaults on a GPU: 25 pages, batches of 25, 10 reference pairs, median of 3 repeats. On a CPU
(tiny shape, well under a minute on 2 cores): 10 pages, batches of 10, 3 reference pairs, one
repeat. The run prints which defaults it used; give an option to change one.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from .cli import UsageError, positive_int, whole_number
from .models import pixels_to_tokens, tokens_to_pixels

SAMPLE_PAGES = Path(__file__).resolve().parent.parent / "data" / "examples" / "sample-pages"
QUERIES = (
    "What share of users per thread were unknown in the FEB11 sample?",
    "How does average queue length grow with betweenness in the simulation?",
    "Which region of the SUC2 frequency plot leads to extinction?",
)


# What a run uses for the options not given, by device. On a CPU the tiny shape must finish well
# under a minute on 2 cores and still print every row: fewer pages and reference pairs, one repeat.
GPU_DEFAULTS = {"pairs": 25, "batch_size": 25, "reference_pairs": 10, "repeats": 3}
CPU_DEFAULTS = {"pairs": 10, "batch_size": 10, "reference_pairs": 3, "repeats": 1}


# New questions for the end-to-end warm repeats: each must be new to the store, or the repeat
# would take its scores from the database instead of the models.
WARM_QUERIES = (
    "How does average queue length grow with betweenness in the simulation?",
    "Which region of the SUC2 frequency plot leads to extinction?",
    "Which table lists the sample sizes?",
    "What does the second figure compare?",
)


@dataclass
class Row:
    name: str
    pairs: int
    each: list[float]  # seconds, one per repeat (the report gives their median, and their range)
    note: str = ""
    baseline: str = "a"  # the reference row it is compared with: "a", "b", or "both" (a page = one pair each)

    @property
    def seconds(self) -> float:
        return statistics.median(self.each)

    @property
    def pairs_per_second(self) -> float:
        return self.pairs / self.seconds if self.seconds > 0 else float("nan")


def distinct_pages(count: int):
    """`count` different page images from the sample pages (flips and crops make new pixels)."""
    from PIL import Image, ImageOps

    originals = [Image.open(path).convert("RGB") for path in sorted(SAMPLE_PAGES.glob("doc_*.jpg"))]
    variants = (
        lambda image: image,
        ImageOps.mirror,
        ImageOps.flip,
        lambda image: image.crop((0, 0, image.width, int(image.height * 0.9))),
    )
    pages = []
    for index in range(count):
        variant = variants[(index // len(originals)) % len(variants)]
        page = variant(originals[index % len(originals)])
        if index >= len(originals) * len(variants):  # beyond 40 pages: shift the pixels a little
            page = page.point(lambda value, shift=index: min(255, value + shift % 7 + 1))
        pages.append(page)
    return pages


def pdf_of(pages) -> bytes:
    """A PDF with one page per image (as a scanned report would be)."""
    import io

    import pymupdf

    document = pymupdf.open()
    for image in pages:
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=90)
        page = document.new_page(width=image.width * 72 / 144, height=image.height * 72 / 144)
        page.insert_image(page.rect, stream=buffer.getvalue())
    return document.tobytes()


def synchronize(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(function, device) -> float:
    synchronize(device)
    started = time.perf_counter()
    function()
    synchronize(device)
    return time.perf_counter() - started


def repeated_seconds(repeats: int, device, work, before=lambda repeat: None) -> list[float]:
    """The time of `work(repeat)` for each of `repeats` repeats, each after `before(repeat)`
    (emptying a cache: not timed)."""
    seconds = []
    for repeat in range(repeats):
        before(repeat)
        seconds.append(timed(lambda: work(repeat), device))
    return seconds


def reference_style(reranker, query: str, pages) -> list[float]:
    """One pair per forward pass, as both reference implementations do it."""
    import torch

    from .imaging import resize_to_budget

    prompt = reranker.prompt(query)
    scores = []
    with torch.no_grad():
        for page in pages:
            resized = resize_to_budget(page, reranker.budget.min_pixels, reranker.budget.max_pixels,
                                       rules=reranker.budget.rules)
            inputs = reranker.processor(text=[prompt], images=[resized], do_resize=False, return_tensors="pt")
            inputs = {name: value.to(reranker.device) for name, value in inputs.items()}
            inputs["pixel_values"] = inputs["pixel_values"].to(reranker.dtype)
            hidden = reranker.backbone(**inputs).last_hidden_state[:, -1]  # KV cache on, as in the reference
            scores.extend(reranker.head(hidden).tolist())
    return scores


def bench_tokenizer(choice: str):
    """(tokenizer, description): Qwen's vocabulary when asked for or found, else the byte-level one."""
    from .checkpoints import build_qwen_tokenizer, build_tokenizer, qwen_vocabulary

    vocabulary = qwen_vocabulary() if choice in ("auto", "qwen") else None
    if vocabulary is not None:
        return build_qwen_tokenizer(vocabulary), "qwen"
    if choice == "qwen":
        raise ValueError("Qwen's vocabulary is not here: run `python -m reranker.checkpoints fetch-vocab` or set RERANKER_QWEN_VOCAB")
    return build_tokenizer(), "byte-level (text costs ~4x Qwen's tokens)"


def build(shape: str, device, dtype, attention: str, batch_size: int, budget_tokens: int | None, seed: int, tokenizer,
          vision_chunk: int | None = None, resize_on_device: bool | None = None):
    from .checkpoints import build_model, build_processor
    from .loading import build_reranker
    from .models import MODELS

    processor = build_processor(tokenizer)
    rerankers = {}
    for offset, key in enumerate(MODELS):
        model = build_model(shape, seed=seed + offset, tokenizer=tokenizer, dtype=dtype, device=device, attn_implementation=attention)
        max_pixels = tokens_to_pixels(budget_tokens) if (budget_tokens and offset == 0) else None
        rerankers[key] = build_reranker(
            key, model, processor, device=device, weights=f"random {shape}", batch_size=batch_size, max_pixels=max_pixels,
            vision_chunk=vision_chunk, resize_on_device=resize_on_device,
        )
    return rerankers


def settle(args) -> tuple:
    """Refuse what cannot run, each with a one-line error, before anything is built (ValueError),
    and fill in this device's defaults for the options not given. Returns (device, the defaults
    used as command-line options)."""
    import importlib.util

    import torch

    from .models import MODELS
    from .output_files import check_output

    if args.json is not None:  # before minutes of work, not after
        args.json = check_output(args.json, "--json")
    try:
        device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    except RuntimeError:
        raise UsageError(f"--device {args.device}: not a device; the benchmark runs on cuda, cuda:N or cpu") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            why = "this torch is built without CUDA" if torch.version.cuda is None else "no CUDA GPU is visible"
            raise ValueError(f"--device {args.device}: CUDA is not available here ({why}); use --device cpu")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ValueError(f"--device {args.device}: there are {torch.cuda.device_count()} CUDA devices here")
    elif device.type != "cpu":
        raise UsageError(f"--device {args.device}: the benchmark runs on cuda, cuda:N or cpu")
    if args.attn == "flash_attention_2":
        if importlib.util.find_spec("flash_attn") is None:
            raise ValueError("--attn flash_attention_2: the flash-attn package is not installed (it has no PyPI wheel); "
                             "use --attn sdpa, the default")
        if device.type != "cuda":
            raise ValueError(f"--attn flash_attention_2 needs a CUDA device, not {device}")
    if args.budget_tokens is not None:
        spec = next(iter(MODELS.values()))
        low, high = pixels_to_tokens(spec.min_pixels), pixels_to_tokens(spec.max_pixels_limit)
        if not low <= args.budget_tokens <= high:
            raise UsageError(f"--budget-tokens {args.budget_tokens}: {spec.label} takes {low} to {high} visual tokens")
    defaults = GPU_DEFAULTS if device.type == "cuda" else CPU_DEFAULTS
    used = []
    for name, value in defaults.items():
        if getattr(args, name) is None:
            if name in ("batch_size", "reference_pairs"):
                value = min(value, args.pairs)  # no more than the pages there are
            setattr(args, name, value)
            used.append(f"--{name.replace('_', '-')} {value}")
    if args.reference_pairs > args.pairs:
        raise UsageError(f"--reference-pairs {args.reference_pairs} is more than the {args.pairs} pages (--pairs)")
    return device, used


def run(args, device, defaults_used=()) -> dict:
    """The whole benchmark; `device` and the options as `settle` left them."""
    import torch

    from .documents import Page, render_speed
    from .imaging import image_hash, visual_tokens

    shape = args.shape if args.shape != "auto" else ("2b" if device.type == "cuda" else "tiny")
    dtype = getattr(torch, args.dtype) if args.dtype else (torch.bfloat16 if device.type == "cuda" else torch.float32)
    attention = args.attn or "sdpa"
    if defaults_used:
        others = ", ".join(f"{name.replace('_', '-')} {value}" for name, value in
                           (CPU_DEFAULTS if device.type == "cuda" else GPU_DEFAULTS).items())
        print(f"defaults on {device.type}: {' '.join(defaults_used)} (on {'a CPU' if device.type == 'cuda' else 'a GPU'}: "
              f"{others}); give an option to change one")
    build_started = time.perf_counter()
    tokenizer, tokenizer_name = bench_tokenizer(args.tokenizer)
    resize_on_device = {"auto": None, "device": True, "cpu": False}[args.resize]
    rerankers = build(shape, device, dtype, attention, args.batch_size, args.budget_tokens, args.seed, tokenizer, args.vision_chunk,
                      resize_on_device)
    a_key, b_key = list(rerankers)
    model_a = rerankers[a_key]
    print(f"built 2 random '{shape}' models on {device} ({dtype}, {attention}) in {time.perf_counter() - build_started:.1f} s")
    text_tokens = {key: len(tokenizer(reranker.prompt(QUERIES[0]))["input_ids"]) - 1 for key, reranker in rerankers.items()}
    print(f"tokenizer: {tokenizer_name}; prompt text tokens around the page: {text_tokens}")
    images = distinct_pages(args.pairs)
    tokens = [visual_tokens(page, model_a.budget.min_pixels, model_a.budget.max_pixels) for page in images]
    # As the app scores them: pages whose content hash was computed when they were read (hashing
    # 25 pages one after the other, ~0.14 s here, is not scoring time).
    pages = [Page(image_hash(image), image, "benchmark", number, "benchmark", "image") for number, image in enumerate(images, 1)]
    print(f"{len(pages)} distinct pages, {min(tokens)}–{max(tokens)} visual tokens each under {model_a.spec.label}'s budget")
    rows: list[Row] = []

    # Warm-up: kernels, allocator, thread pools (on other pages, so the cold runs stay cold).
    # (On a CPU a few pages are enough to warm up, and keep the tiny run under a minute.)
    warmup_count = args.batch_size if device.type == "cuda" else min(args.batch_size, 4)
    warmup = distinct_pages(args.pairs + warmup_count)[args.pairs :]

    def warm_up():
        for reranker in rerankers.values():
            reranker.score(QUERIES[2], warmup)
            reranker.score(QUERIES[1], warmup[: max(1, len(warmup) // 3)])
            reranker.clear_caches()

    warm_up()
    reference_style(model_a, QUERIES[2], warmup[:2])

    reference_pairs = images[: args.reference_pairs]
    reference_scores: list[float] = []
    seconds = timed(lambda: reference_scores.extend(reference_style(model_a, QUERIES[0], reference_pairs)), device)
    rows.append(Row("reference: one pair per forward", len(reference_pairs), [seconds], model_a.spec.label))
    model_b = rerankers[b_key]
    seconds = timed(lambda: reference_style(model_b, QUERIES[0], reference_pairs), device)
    rows.append(Row("reference: second model, one pair per forward", len(reference_pairs), [seconds], model_b.spec.label, "b"))
    # Same pairs through the fast path: how far apart are they in this dtype?
    fast_scores = model_a.score(QUERIES[0], reference_pairs)
    max_difference = max(abs(a - b) for a, b in zip(fast_scores, reference_scores))
    model_a.clear_caches()
    resize_difference = None
    if model_a.resize_on_device:  # the device's resize gives Pillow's pixels, so the very same scores
        model_a.resize_on_device = False
        pillow_scores = model_a.score(QUERIES[0], reference_pairs)
        model_a.resize_on_device = True
        model_a.clear_caches()
        resize_difference = max(abs(a - b) for a, b in zip(fast_scores, pillow_scores))
        print(f"pages resized on the device vs by Pillow: largest |score difference| on the same pairs {resize_difference:.2e}")
    varlen_difference = varlen_problem = None
    if args.varlen:  # after the reference rows, which keep one SDPA call per page
        from .attention import set_varlen

        varlen_problem = next(filter(None, [set_varlen(r.backbone, True) for r in rerankers.values()]), None)
        if varlen_problem:
            print(f"--varlen: not used, {varlen_problem}")
        else:
            varlen_scores = model_a.score(QUERIES[0], reference_pairs)
            varlen_difference = max(abs(a - b) for a, b in zip(varlen_scores, reference_scores))
            model_a.clear_caches()
            print(f"vision attention in one varlen kernel call: largest |score − reference| on the same pairs "
                  f"{varlen_difference:.2e} (the plain fast path: {max_difference:.2e})")
    compile_seconds = load_seconds = None
    if args.compile:  # after the reference row, which stays eager
        for reranker in rerankers.values():
            reranker.compile()
        # What the app does at load (RERANKER_COMPILE=1), then what the benchmark's own pages and
        # batch size leave to compile: ~0 s if the load-time warm-up covers a ranking's shapes.
        load_seconds = timed(lambda: [reranker.warm_up() for reranker in rerankers.values()], device)
        compile_seconds = timed(warm_up, device)
        print(f"torch.compile at load, as the app (Reranker.warm_up, both models): {load_seconds:.1f} s; "
              f"then the benchmark's own warm-up: {compile_seconds:.1f} s")

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    # Cold: every cache emptied first. Warm: only the scores forgotten, and a new query each time
    # (alternating between two), so the pages' vision outputs (and B's page prefixes) are reused.
    def cold(model):
        return repeated_seconds(args.repeats, device, lambda _: model.score(QUERIES[0], pages), lambda _: model.clear_caches())

    def warm(model) -> tuple[list[float], str]:
        """The warm repeats (every page's vision outputs, and B's page prefixes, cached), and a
        note if a page was nevertheless encoded again. The row measures a query over pages seen,
        so its caches hold every page of the run for it, whatever their default bound (on a CPU
        at the 2B shape, 512 MiB held ~13 pages of A in float32, and 1 GiB ~7 of B's prefixes);
        the end-to-end rows keep the app's bounds."""
        caches = [model.vision_cache, model.prefix_cache] if model.reuses_prefix else [model.vision_cache]
        bounds = [cache.capacity for cache in caches]
        for cache in caches:
            cache.capacity = max(cache.capacity, 1 << 40)  # what it holds is the run's pages
        if any(len(cache) < len(pages) for cache in caches):  # some were let go during the cold rows
            model.score_cache.clear()  # (else the scores of an earlier row's query come from it)
            model.score(QUERIES[0], pages)  # untimed: cached again
        misses = sum(cache.misses for cache in caches)
        seconds = repeated_seconds(args.repeats, device, lambda repeat: model.score(QUERIES[1 + repeat % 2], pages),
                                   lambda _: model.score_cache.clear())
        missed = sum(cache.misses for cache in caches) - misses
        for cache, bound in zip(caches, bounds):
            cache.capacity = bound
        return seconds, f" (NOT all warm: {missed} cache misses in {args.repeats} × {len(pages)} pages)" if missed else ""

    rows.append(Row(f"cold: batched {args.batch_size}, yes−no head", len(pages), cold(model_a), model_a.spec.label))
    if model_a.resize_on_device:  # (a GPU's default) what resizing on the device (`resample`) saves over Pillow
        model_a.resize_on_device = False
        rows.append(Row("cold: the same, pages resized by Pillow on the CPU", len(pages), cold(model_a), model_a.spec.label))
        model_a.resize_on_device = True
    seconds, missed = warm(model_a)
    rows.append(Row("warm: new query, pages seen", len(pages), seconds, model_a.spec.label + missed))
    model_a.clear_caches()
    rows.append(Row("cold: second model at its own budget", len(pages), cold(model_b), model_b.spec.label, "b"))
    reuses_prefix = model_b.reuses_prefix
    for reuse in (False, True) if reuses_prefix else (False,):
        model_b.reuses_prefix = reuse  # off: what the vision cache alone gives, for comparison
        how = "page prefix KV reused" if reuse else "vision cache only"
        seconds, missed = warm(model_b)
        rows.append(Row(f"warm: second model, new query, {how}", len(pages), seconds, model_b.spec.label + missed, "b"))
    model_b.reuses_prefix = reuses_prefix
    profiled = pages[: model_a.batch_size]  # one batch, as the cold row runs them
    breakdown = profile_parts(model_a, profiled, device) if args.profile else None

    pdf = pdf_of(images)
    app_rows, end_to_end_seconds = end_to_end(pdf, len(pages), rerankers, args.repeats, device, warmup_pdf=pdf_of(warmup))
    rows.extend(app_rows)

    render = render_speed(pdf)
    render_single = render_speed(pdf, render_workers=1)
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None
    reference_rate = {"a": rows[0].pairs_per_second, "b": rows[1].pairs_per_second}
    # A page of the end-to-end rows is one pair for each model: its reference time is both.
    reference_rate["both"] = 2 / (1 / reference_rate["a"] + 1 / reference_rate["b"])
    report = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
        "shape": shape,
        "dtype": str(dtype).removeprefix("torch."),
        "attention": attention,
        "tokenizer": tokenizer_name,
        "prompt_text_tokens": text_tokens,
        "pages": len(pages),
        "batch_size": model_a.batch_size,
        "vision_chunk": model_a.vision_chunk,
        "resize_on_device": model_a.resize_on_device,
        "reference_pairs": len(reference_pairs),
        "repeats": args.repeats,
        "defaults_used": list(defaults_used),
        "budget_tokens": pixels_to_tokens(model_a.budget.max_pixels),
        "versions": versions(),
        "rows": [dict(asdict(row), seconds=row.seconds, pairs_per_second=row.pairs_per_second, ratio=row.pairs_per_second / reference_rate[row.baseline])
                 for row in rows],
        "end_to_end_seconds": end_to_end_seconds["cold"],
        "end_to_end_warm_seconds": end_to_end_seconds["warm"],
        "end_to_end_warmup_seconds": end_to_end_seconds["warmup"],
        "end_to_end_includes_store": end_to_end_seconds["with_store"],
        "pdf_render_pages_per_second": render.pages_per_second,
        "pdf_render_pages_per_second_one_process": render_single.pages_per_second,
        "max_score_difference_fast_vs_reference": max_difference,
        "max_score_difference_device_vs_pillow_resize": resize_difference,
        "peak_gpu_memory_gib": peak,
        "compile": args.compile,
        "varlen_attention": args.varlen and not varlen_problem,
        "varlen_problem": varlen_problem,
        "max_score_difference_varlen_vs_reference": varlen_difference,
        "compile_load_seconds": load_seconds,
        "compile_warmup_seconds": compile_seconds,
        "breakdown_seconds": breakdown,
        "breakdown_pages": len(profiled) if breakdown else None,
    }
    print_report(report)
    return report


def end_to_end(pdf: bytes, page_count: int, rerankers, repeats: int, device, warmup_pdf: bytes | None = None
               ) -> tuple[list[Row], dict]:
    """The app's Rank button on a PDF: cold (new upload, models' caches empty), then warm (a new
    query about the same upload). With the store importable, exactly the app's request
    (`ranking.rank_and_save`: database write and gallery thumbnails included, into a temporary
    folder); without it (a bare GPU box), `ranking.rank` only, and the report says so.

    `warmup_pdf` (other pages) is ranked once first, untimed: the first request of a process pays
    one-time start-up (render worker processes, thread pools; ~2 s on a 2-core CPU), which would
    otherwise land on the first timed request."""
    import tempfile

    from . import ranking
    from .documents import ingest_cache

    try:
        from .store import Store
        from .thumbnails import PageImages
    except ImportError:
        Store = None
    upload = [("benchmark.pdf", pdf)]
    warmup_seconds = None
    with tempfile.TemporaryDirectory() as folder:

        def request(query: str, run: str, uploads=None, files=upload):
            if Store is None:
                return ranking.rank(files, query, rerankers, ingest_cache=uploads)
            store = Store(Path(folder) / f"{run}.db")  # a new file: every page is new to it
            images = PageImages(Path(folder) / f"thumbnails-{run}", store.page_image, memory_bytes=2**30)
            return ranking.rank_and_save(files, query, rerankers, store, images, ingest_cache=uploads)[0]

        if warmup_pdf is not None:
            warmup_seconds = timed(lambda: request(QUERIES[2], "warm-up", files=[("warm-up.pdf", warmup_pdf)]), device)

        def check(result):
            assert all(len(r.scores or []) == page_count for r in result.rankings.values()), result.rankings

        def forget_everything(_):
            for reranker in rerankers.values():
                reranker.clear_caches()

        def forget_scores(_):  # the pages' vision outputs (and B's page prefixes) stay
            for reranker in rerankers.values():
                reranker.score_cache.clear()

        cold = repeated_seconds(repeats, device, lambda repeat: check(request(QUERIES[0], f"cold-{repeat}")), forget_everything)
        uploads = ingest_cache()
        check(request(QUERIES[0], "warm", uploads))  # the upload, as the warm runs will find it

        def new_question(repeat: int) -> str:  # one the store has not seen (else its scores came from the database)
            return WARM_QUERIES[repeat % len(WARM_QUERIES)] + " " * (repeat // len(WARM_QUERIES))

        warm = repeated_seconds(repeats, device, lambda repeat: check(request(new_question(repeat), "warm", uploads)), forget_scores)
    what = "both models, store, thumbnails (as the app)" if Store else "both models (no store on this machine)"
    pairs = page_count * len(rerankers)  # each model scores every page
    rows = [
        Row(f"end-to-end: render PDF + {what}", pairs, cold, "both models", "both"),
        Row("end-to-end warm: new query, same PDF", pairs, warm, "both models", "both"),
    ]
    return rows, {"cold": rows[0].seconds, "warm": rows[1].seconds, "with_store": Store is not None, "warmup": warmup_seconds}


def ready_batch(reranker, prompt: str, pages, keys: list[str]):
    """`pages` as one prepared batch: its token tensors built, and its pixels and the encoder's
    inputs made on the page workers waited for (CPU time, which the parts below leave out of the
    device's)."""
    batch = reranker.prepare_batch(prompt, pages, keys, list(range(len(pages))))
    batch.tokens  # noqa: B018 (built when first read; here, before the device's parts are timed)
    for pending in [*batch.pending_pixels, *(inputs for _, inputs in batch.vision_chunks)]:
        if pending is not None:
            pending.result()
    return batch


def profile_parts(reranker, pages, device) -> dict:
    """Seconds for each part of one cold batch: CPU preparation, vision encoder, language model."""
    import torch

    reranker.clear_caches()
    prompt = reranker.prompt(QUERIES[0])
    keys = [f"profile-{index}" for index in range(len(pages))]
    batches = []
    prepare_seconds = timed(lambda: batches.append(ready_batch(reranker, prompt, pages, keys)), device)
    with torch.inference_mode():
        vision_seconds = timed(lambda: reranker._vision_outputs(batches[0], reranker.budget), device)
        cached = ready_batch(reranker, prompt, pages, keys)  # the vision outputs now cached
        language_seconds = timed(lambda: reranker._forward(cached, reranker.budget), device)
    reranker.clear_caches()
    return {"prepare (CPU)": prepare_seconds, "vision encoder": vision_seconds, "language model + head": language_seconds}


def versions() -> dict:
    import importlib.metadata as metadata

    found = {}
    for name in ("torch", "transformers", "peft", "pymupdf", "pillow"):
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    return found


def print_report(report: dict) -> None:
    print(
        f"\n{report['device']} · shape {report['shape']} · {report['dtype']} · {report['attention']} · "
        f"{report['pages']} pages · batch {report['batch_size']} · vision chunk {report['vision_chunk']} · "
        f"pages resized {'on the device' if report['resize_on_device'] else 'by Pillow'} · "
        f"budget {report['budget_tokens']} tokens · {report['reference_pairs']} reference pairs · "
        f"median of {report['repeats']} {'repeat' if report['repeats'] == 1 else 'repeats'}"
    )
    print(" · ".join(f"{name} {version}" for name, version in report["versions"].items()))
    print(f"tokenizer {report['tokenizer']}; prompt text tokens besides the page: {report['prompt_text_tokens']}")
    width = max(len(row["name"]) for row in report["rows"])
    print(f"\n| {'measurement':{width}} | pairs | seconds | range (s)     | pairs/s | × reference | model |")
    print(f"|{'-' * (width + 2)}|-------|---------|---------------|---------|-------------|-------|")
    for row in report["rows"]:
        each = row["each"]
        spread = f"{min(each):.3f}–{max(each):.3f}" if len(each) > 1 else "(one run)"
        print(
            f"| {row['name']:{width}} | {row['pairs']:5} | {row['seconds']:7.3f} | {spread:13} | {row['pairs_per_second']:7.1f} | "
            f"{row['ratio']:11.2f} | {row['note']} |"
        )
    print(
        f"\nend-to-end ranking of {report['rows'][-1]['pairs'] // 2} PDF pages with both models: {report['end_to_end_seconds']:.2f} s "
        f"(a new query about the same PDF: {report['end_to_end_warm_seconds']:.2f} s; "
        f"after an untimed warm-up request of {report['end_to_end_warmup_seconds']:.2f} s)"
    )
    print(
        f"PDF render at 144 DPI: {report['pdf_render_pages_per_second']:.1f} pages/s as the app does it "
        f"({report['pdf_render_pages_per_second_one_process']:.1f} pages/s with one worker process)"
    )
    print(f"largest |fast − reference| score difference on the same pairs: {report['max_score_difference_fast_vs_reference']:.2e}")
    if report.get("breakdown_seconds"):
        parts = " · ".join(f"{name} {seconds:.3f} s" for name, seconds in report["breakdown_seconds"].items())
        print(f"one cold batch of {report['breakdown_pages']} pages, by part: {parts}")
    if report["peak_gpu_memory_gib"] is not None:
        print(f"peak GPU memory: {report['peak_gpu_memory_gib']:.1f} GiB")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--shape", choices=("auto", "tiny", "2b"), default="auto", help="model shape (auto: 2b on a GPU, tiny on CPU)")
    parser.add_argument("--pairs", type=positive_int, default=None,
                        help="pages per query (default 25 on a GPU, the blog's batch; 10 on a CPU)")
    parser.add_argument("--batch-size", type=positive_int, default=None,
                        help="pairs per forward pass (default 25 on a GPU, 10 on a CPU, at most --pairs)")
    parser.add_argument("--budget-tokens", type=positive_int, default=None,
                        help="first model's visual-token budget (default its spec: 1280; 4 to 1800)")
    parser.add_argument("--reference-pairs", type=positive_int, default=None,
                        help="pairs timed in the one-pair-per-forward baseline (default 10 on a GPU, 3 on a CPU, at most --pairs)")
    parser.add_argument("--repeats", type=positive_int, default=None,
                        help="timed repeats, the median is reported (default 3 on a GPU, 1 on a CPU)")
    parser.add_argument("--dtype", choices=("bfloat16", "float16", "float32"), default=None,
                        help="default bfloat16 on a GPU, float32 on a CPU")
    parser.add_argument("--attn", choices=("sdpa", "eager", "flash_attention_2"), default=None,
                        help="attention implementation (default sdpa; flash_attention_2 needs flash-attn and CUDA)")
    parser.add_argument("--device", default=None, help="cuda, cuda:1, cpu (default: cuda when present)")
    parser.add_argument("--vision-chunk", type=positive_int, default=None, help="at most this many pages per vision-encoder call, in chunks of even size (default 8)")
    parser.add_argument("--resize", choices=("auto", "device", "cpu"), default="auto",
                        help="where pages are resized: on the device (bit-exact Pillow arithmetic) or by Pillow on the CPU "
                             "(auto: the device when it is a GPU); on the device, a second cold row times Pillow for comparison")
    parser.add_argument("--seed", type=whole_number, default=0)
    parser.add_argument("--tokenizer", choices=("auto", "qwen", "byte"), default="auto",
                        help="qwen: Qwen's real vocabulary (real text token counts); auto: qwen when found")
    parser.add_argument("--compile", action="store_true", help="torch.compile the models' repeated parts, as RERANKER_COMPILE=1 does")
    parser.add_argument("--varlen", action="store_true",
                        help="vision attention in one call of torch's varlen FlashAttention kernel per chunk "
                             "(CUDA, half precision; RERANKER_VARLEN_ATTENTION=1 in the app)")
    parser.add_argument("--profile", action="store_true", help="also time the parts of one cold batch")
    parser.add_argument("--json", type=Path, default=None, help="also write the report as JSON here")


def register_cli(subparsers) -> None:
    parser = subparsers.add_parser(
        "bench",
        help="measure scoring throughput against the reference style (random weights, no download)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_arguments(parser)
    parser.set_defaults(handler=main)


def standalone_parser() -> argparse.ArgumentParser:
    """`python -m reranker.bench [options]`: the bench subcommand's options, without the others'."""
    parser = argparse.ArgumentParser(prog="python -m reranker.bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    return parser


def main(args) -> int:
    device, defaults_used = settle(args)  # bad options fail here, before minutes of work
    report = run(args, device, defaults_used)
    if args.json:
        from .output_files import output_file

        with output_file(args.json) as partial:  # written whole or not at all
            partial.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":  # `python -m reranker.bench` works without the other subcommands' dependencies
    try:
        sys.exit(main(standalone_parser().parse_args()))
    except (ValueError, OSError, RuntimeError) as error:  # as `python -m reranker` does: a message, not a traceback
        print(f"error: {error}", file=sys.stderr)
        sys.exit(1)
