"""`python -m reranker score`: rank the pages of PDFs and images for a query, in the terminal."""

from __future__ import annotations

import contextlib
import json
import logging
import sys

from .cli import device_name, pdf_dpi, positive_int
from .models import MODELS


def register_cli(subparsers) -> None:
    parser = subparsers.add_parser(
        "score",
        help="rank the pages of PDFs/images for a query with one or both models",
        description=(
            "Score every page of the given PDFs and images with the chosen model(s) and print them "
            "ranked, best first. Bad files are reported and skipped; the good ones are still scored. "
            "Weights: the Hub ids, or local folders in RERANKER_QWEN3_VL_RERANKER_2B_MODEL, "
            "RERANKER_QWEN3_RERANKER_MM_2B_MODEL (the base model) and RERANKER_QWEN3_RERANKER_MM_2B_ADAPTER."
        ),
    )
    parser.add_argument("files", nargs="+", metavar="FILE", help="PDF or image files (PNG, JPEG, WebP, TIFF, BMP, GIF)")
    parser.add_argument("--query", "-q", required=True, help="what you are looking for")
    parser.add_argument(
        "--model", "-m", action="append", choices=[*MODELS, "both"], default=None, metavar="KEY",
        help=f"{', '.join(MODELS)} or both (repeatable); default: both",
    )
    parser.add_argument("--instruction", default=None,
                        help="the instruction for the models whose prompt has one (" + ", ".join(
                            spec.label for spec in MODELS.values() if spec.takes_instruction) + "; default: its own)")
    parser.add_argument("--max-pixels", type=positive_int, default=None,
                        help="image budget in pixels for every chosen model (default: each model's own; "
                             + "; ".join(f"{key}: {spec.min_pixels:,}–{spec.max_pixels_limit:,}" for key, spec in MODELS.items()) + ")")
    parser.add_argument("--dpi", type=pdf_dpi, default=None, help="PDF render DPI, 36–600 (default 144)")
    parser.add_argument("--batch-size", type=positive_int, default=None,
                        help="pairs per forward pass (default: 1 on a CPU, 16 on a GPU, 32 on one with 40 GB or more)")
    parser.add_argument("--device", default=None, type=device_name, help="cuda, cpu, … (default: RERANKER_DEVICE, else CUDA when present)")
    parser.add_argument("--top", type=positive_int, default=None, help="print (or put in the JSON) only the best N pages per model")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.set_defaults(handler=main)


def main(args) -> int:
    from .documents import DEFAULT_DPI, IngestOptions
    from .ranking import ModelPool, rank
    from .scoring import QueryError

    keys = list(MODELS) if not args.model or "both" in args.model else list(dict.fromkeys(args.model))
    try:
        for key in keys:  # before any model loads
            MODELS[key].check_budget(args.max_pixels)
    except ValueError as error:
        print(f"error: --max-pixels: {error}", file=sys.stderr)
        return 2
    if args.instruction is not None:  # else it was echoed in the output as if a model had read it
        ignoring = [MODELS[key].label for key in keys if not MODELS[key].takes_instruction]
        if len(ignoring) == len(keys):
            print(f"error: --instruction: {', '.join(ignoring)} takes no instruction (its prompt is fixed)", file=sys.stderr)
            return 2
        for label in ignoring:
            print(f"note: --instruction is not used by {label}, which takes none (its prompt is fixed)", file=sys.stderr)
    options = {"device": args.device} if args.device else {}
    if args.batch_size:
        options["batch_size"] = args.batch_size
    pool = ModelPool(keys, retry_after=None, **options)  # one ranking: a model that failed is not tried again

    progress = ProgressLine(sys.stderr)
    try:
        with progress.shown():
            result = rank(
                args.files, args.query, pool, instruction=args.instruction, keys=keys,
                ingest_options=IngestOptions(dpi=args.dpi or DEFAULT_DPI),
                max_pixels={key: args.max_pixels for key in keys} if args.max_pixels else None,
                progress=None if args.json else progress,
            )
    except QueryError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    for problem in result.problems:
        print(f"problem: {problem}", file=sys.stderr)
    for note in result.notes:
        print(f"note: {note}", file=sys.stderr)
    if args.json:  # always a JSON document, with the problems, even when no page could be read
        print(json.dumps(result.as_dict(top=args.top), indent=2))
    if not result.pages:
        print("error: no page could be read from the given files", file=sys.stderr)
        return 1
    if not args.json:
        print_ranking(result, args.top)
    # A model that could not score (or load) fails the command, as an unreadable file does not:
    # a script must not take one model's ranking for both (the other's is printed all the same).
    return 1 if any(ranking.error for ranking in result.rankings.values()) else 0


class ProgressLine(logging.Handler):
    """The ranking's progress: on a terminal one line, redrawn in place; elsewhere (a log file)
    a line per step. A warning logged meanwhile gets a line of its own (it was appended to the
    progress line), and the last progress line is ended once the ranking is over."""

    def __init__(self, stream):
        super().__init__(logging.WARNING)  # what Python's last-resort handler prints
        self.stream = stream
        self.redrawn = stream.isatty()
        self.open = False  # a redrawn line without its newline yet
        self.last = None

    def __call__(self, fraction: float, message: str) -> None:
        text = f"[{fraction:4.0%}] {message}"
        if self.redrawn:
            print(f"\r{text:66}", end="", file=self.stream, flush=True)
            self.open = True
        elif text != self.last:
            print(text, file=self.stream, flush=True)
        self.last = text

    def end_line(self) -> None:
        if self.open:
            print(file=self.stream, flush=True)
            self.open = False

    def emit(self, record: logging.LogRecord) -> None:
        self.end_line()
        print(self.format(record), file=self.stream, flush=True)

    @contextlib.contextmanager
    def shown(self):
        """While the ranking runs, warnings go through this handler (root logger)."""
        root = logging.getLogger()
        root.addHandler(self)
        try:
            yield self
        finally:
            root.removeHandler(self)
            self.end_line()


def print_ranking(result, top: int | None) -> None:
    for ranking in result.rankings.values():
        print(f"\n{ranking.label}")
        if ranking.error:
            print(f"  unavailable: {ranking.error}")
            continue
        rate = f", {ranking.pages_per_second:.1f} pages/s" if ranking.pages_per_second else ""
        print(f"  {len(ranking.scores)} page{'' if len(ranking.scores) == 1 else 's'} in {ranking.seconds:.2f} s{rate}")
        for rank, index in enumerate(ranking.order[:top] if top else ranking.order, start=1):
            page = result.pages[index]
            print(f"  {rank:>3}. {ranking.scores[index]:.4f}  {page.label}")
