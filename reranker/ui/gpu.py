"""The model work of a ranking, alone under `spaces.GPU` (ZeroGPU), and the GPU time it asks for."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import gradio as gr

from .. import ranking

if TYPE_CHECKING:
    from .arena import Arena


try:  # On a ZeroGPU Space the GPU is attached only inside functions marked with spaces.GPU.
    from spaces import GPU as _gpu
except ImportError:  # elsewhere it is a no-op anyway

    def _gpu(duration=None):
        return lambda function: function


GPU_SECONDS_BASE = 20  # a fresh ZeroGPU worker's CUDA start-up, with room to spare
# Per (page, model): ~30x model A's cold time on a whole H200 (0.034 s, docs/benchmarks.md). Generous on
# purpose: a ZeroGPU slice is part of a card, and a request that outruns its duration is aborted.
GPU_SECONDS_PER_PAGE = 1.0
GPU_SECONDS_MAX = 120


def gpu_seconds(arena: Arena, query: str, work: dict, *args, **kwargs) -> int:
    """The GPU time `score_on_gpu` asks ZeroGPU for: a visitor needs at least this much quota
    left, and a shorter request waits less; a request that runs longer is aborted, so it is
    generous (measured: 25 pages with both models take ~2 s on an H200, docs/benchmarks.md)."""
    pairs = sum(len(pages) for pages in work.values())
    return min(GPU_SECONDS_MAX, GPU_SECONDS_BASE + math.ceil(GPU_SECONDS_PER_PAGE * pairs))


@_gpu(duration=gpu_seconds)
def score_on_gpu(arena: Arena, query: str, work: dict, instruction: str | None, max_pixels: dict,
                 progress=None) -> dict[str, ranking.Scored]:
    """The model work of a ranking (`ranking.score_pages`), and nothing else, under `spaces.GPU`.

    On ZeroGPU this runs in a worker process forked from the app, on pickled arguments (the
    pages go as pixels), and its time counts against the visitor's GPU quota. So reading and
    rendering the uploads, the score cache, the thumbnails and the database all stay in the app
    process, and a request whose scores are all stored needs no GPU at all.
    """
    return ranking.score_pages(arena.pool, query, work, instruction, max_pixels, progress)


@dataclass
class GradioProgress:
    """gr.Progress as a `ranking.ProgressCallback`; unlike a lambda it pickles (for ZeroGPU)."""

    progress: gr.Progress

    def __call__(self, fraction: float, message: str) -> None:
        self.progress(fraction, desc=message)
