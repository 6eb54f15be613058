"""`python -m reranker score|export|eval|bench` — each subcommand lives beside the code it drives.

Every module that offers a subcommand exposes `register_cli(subparsers)`, which adds its parser
and sets `handler=<function(args) -> int>` as the parser's default. This file only collects them.
"""

from __future__ import annotations

import argparse
import importlib
import sqlite3
import sys

# Each module registers its subcommand (`register_cli`); imported here, not at the top, so that
# `python -m reranker` loads only what it needs (torch loads when a command runs).
SUBCOMMAND_MODULES = ("reranker.score_cli", "reranker.export", "reranker.evaluate", "reranker.bench")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m reranker",
        description="Multimodal Rerank Arena: score pages with two Qwen3-VL rerankers, export judgments, evaluate.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_name in SUBCOMMAND_MODULES:
        importlib.import_module(module_name).register_cli(subparsers)
    return parser


class UsageError(ValueError):
    """Options given wrong where argparse cannot see it (a value out of a model's range, options
    that do not go together): `main` says why and exits with 2, as for argparse's own."""


def _number(convert, description: str, allowed):
    """An argparse type: `convert(text)` when `allowed`, else a usage error naming the value."""

    def parse(text: str):
        try:
            value = convert(text)
        except ValueError:
            value = None
        if value is None or not allowed(value):
            raise argparse.ArgumentTypeError(f"must be {description}, not {text!r}")
        return value

    return parse


positive_int = _number(int, "a whole number of at least 1", lambda value: value >= 1)
whole_number = _number(int, "a whole number of at least 0", lambda value: value >= 0)


def pdf_dpi(text: str) -> float:
    """An argparse type: a PDF render resolution within `documents.DPI_RANGE` (read when used:
    the documents module loads MuPDF)."""
    from .documents import DPI_RANGE

    low, high = DPI_RANGE
    return _number(float, f"a DPI from {low:g} to {high:g}", lambda value: low <= value <= high)(text)


def device_name(text: str) -> str:
    """An argparse type: a torch device (cpu, cuda, cuda:1, …), checked before any file is read
    (torch imported only when the option is given)."""
    import torch

    try:
        torch.device(text)
    except RuntimeError:  # torch's own message lists two dozen device types and names no option
        raise argparse.ArgumentTypeError(f"must be a device such as cpu, cuda or cuda:1, not {text!r}") from None
    return text


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return 2
    from .documents import ignore_pillow_size_warning

    ignore_pillow_size_warning()  # an image too large is listed as a problem; Pillow's warning only repeated it
    try:
        return int(args.handler(args) or 0)
    except UsageError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except (ValueError, OSError, RuntimeError, sqlite3.Error) as error:  # bad input: a message, not a traceback
        print(f"error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
