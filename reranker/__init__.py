"""Multimodal Rerank Arena: two Qwen3-VL rerankers side by side on your own documents.

Public API (stable):

    from reranker import load_reranker
    r = load_reranker("qwen3-vl-reranker-2b")            # or "qwen3-reranker-mm-2b"
    r.prompt("query") -> str
    r.score("query", [PIL.Image, ...]) -> list[float]     # P(yes), input order

Heavy modules (torch, transformers) load on first use, so `reranker.documents` or
`reranker.store` can be imported without them.
"""

from __future__ import annotations

__all__ = ["load_reranker", "MODELS", "ModelSpec", "Reranker"]


def __getattr__(name: str):
    if name == "load_reranker":
        from .loading import load_reranker

        return load_reranker
    if name == "Reranker":
        from .scoring import Reranker

        return Reranker
    if name in ("MODELS", "ModelSpec"):
        from . import models

        return getattr(models, name)
    raise AttributeError(f"module 'reranker' has no attribute {name!r}")
