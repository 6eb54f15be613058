"""Reuse a page's language-model state across queries, for prompts that put the page first.

Qwen3RerankerMM's prompt is `system · user · <page> · Query : {query} · tail`. Attention is
causal, so the keys and values of every token up to the page's `<|vision_end|>` do not depend on
the query: computed once per (page, pixel budget, prefix tokens), they answer every later query,
and a new query costs the language model only its ~30 suffix tokens instead of ~600. (For
Qwen3-VL-Reranker the query comes before the page, so nothing after it can be reused.)

A page's prefix is kept as one tensor (layers, key/value, kv heads, prefix tokens, head dim) plus
the rotary position at which its suffix starts. A batch of suffixes is scored against prefixes
of different lengths by left-padding them into one `DynamicCache` and masking the padding, with
the suffix positions given explicitly (M-RoPE positions after an image are not token indices).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class PagePrefix:
    """The keys and values of one page's query-independent prompt prefix."""

    kv: torch.Tensor  # (layers, 2, kv_heads, length, head_dim)
    next_position: int  # rotary position of the first token after the prefix

    @property
    def length(self) -> int:
        return self.kv.shape[3]

    @property
    def nbytes(self) -> int:
        return self.kv.numel() * self.kv.element_size()


def harvest(cache, row: int, start: int, length: int, next_position: int) -> PagePrefix:
    """Copy row `row`'s tokens [start, start + length) out of a batch's `DynamicCache`.

    A copy, not a view: a view would keep the whole batch's cache alive.
    """
    window = slice(start, start + length)
    first = cache.layers[0].keys
    kv = first.new_empty((len(cache.layers), 2, first.shape[1], length, first.shape[3]))
    for index, layer in enumerate(cache.layers):
        kv[index, 0] = layer.keys[row, :, window]
        kv[index, 1] = layer.values[row, :, window]
    return PagePrefix(kv=kv, next_position=next_position)


def batch_cache(prefixes: list[PagePrefix]):
    """One `DynamicCache` holding every prefix, left-padded to the longest, and its padding mask."""
    from transformers import DynamicCache

    width = max(prefix.length for prefix in prefixes)
    first = prefixes[0].kv
    layers, _, heads, _, head_dim = first.shape
    padded = first.new_zeros((layers, 2, len(prefixes), heads, width, head_dim))
    mask = torch.zeros((len(prefixes), width), dtype=torch.long, device=first.device)
    for row, prefix in enumerate(prefixes):
        padded[:, :, row, :, width - prefix.length :] = prefix.kv
        mask[row, width - prefix.length :] = 1
    return DynamicCache(ddp_cache_data=[(padded[layer, 0], padded[layer, 1]) for layer in range(layers)]), mask


def suffix_positions(prefixes: list[PagePrefix], length: int, device) -> torch.Tensor:
    """M-RoPE position ids (3, batch, length) of text tokens that follow each prefix."""
    starts = torch.tensor([prefix.next_position for prefix in prefixes], device=device)
    positions = starts[:, None] + torch.arange(length, device=device)[None, :]
    return positions[None].expand(3, -1, -1)
