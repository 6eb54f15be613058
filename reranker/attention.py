"""The vision encoder's attention over a chunk of pages, as one opaque operator.

Qwen3-VL's vision encoder packs the patches of several pages into one sequence, and each page
attends only to itself. With SDPA, transformers splits the sequence per page inside every
block, which `torch.compile` cannot trace (a `.tolist()` on the page lengths): each block's graph
broke there and was recompiled for every distinct number of pages in a chunk, up to Dynamo's
limit of 8 variants, past which it ran uncompiled. Here the whole per-page loop is one custom
operator, so a compiled block stays one graph whatever the chunk holds, and eager scores are
bit-identical to transformers' SDPA path (the same calls on the same views).

On CUDA in half precision, `RERANKER_VARLEN_ATTENTION=1` runs the pages in one call of PyTorch's
own variable-length FlashAttention kernel (`torch.nn.attention.varlen`, no flash-attn package)
instead of one SDPA call per page. Off by default until a GPU run has measured it
(`python -m reranker bench --varlen`).

transformers chooses its packed (cu_seqlens) code path by the substring "flash" in the attention
implementation's name, hence the name.
"""


import os

import torch
import torch.nn.functional as F

NAME = "flash_packed_pages"  # "flash" in it: transformers then passes the packed sequence's cu_seqlens


@torch.library.custom_op("reranker::packed_page_attention", mutates_args=())
def packed_page_attention(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, cu_seqlens: torch.Tensor,
                          scale: float, max_length: int, varlen: bool) -> torch.Tensor:
    """Attention within each page of a packed sequence. query/key/value: (1, heads, tokens, dim);
    `cu_seqlens`: where each page starts, then the total. Returns (1, tokens, heads, dim)."""
    if varlen:
        from torch.nn.attention.varlen import varlen_attn

        q, k, v = (tensor[0].transpose(0, 1).contiguous() for tensor in (query, key, value))
        bounds = cu_seqlens.to(device=query.device, dtype=torch.int32)
        # The vision encoder's scale is the kernel's default (1/sqrt(dim)); older torch releases
        # did not take a scale argument.
        assert abs(scale - query.shape[-1] ** -0.5) < 1e-6, "varlen attention here assumes the default scale"
        return varlen_attn(q, k, v, bounds, bounds, max_length, max_length).unsqueeze(0)
    starts = cu_seqlens.tolist()
    pieces = [
        F.scaled_dot_product_attention(query[:, :, start:end], key[:, :, start:end], value[:, :, start:end],
                                       attn_mask=None, dropout_p=0.0, scale=scale, is_causal=False)
        .transpose(1, 2).contiguous()
        for start, end in zip(starts, starts[1:])
    ]
    return torch.cat(pieces, dim=1)


@packed_page_attention.register_fake
def _(query, key, value, cu_seqlens, scale, max_length, varlen):
    batch, heads, tokens, dim = query.shape
    return query.new_empty((batch, tokens, heads, dim))


def _attention(module, query, key, value, attention_mask, scaling=None, dropout=0.0, cu_seq_lens_q=None,
               max_length_q=None, is_causal=False, **kwargs):
    """transformers' attention-function interface, for the vision encoder's packed path only."""
    if cu_seq_lens_q is None or attention_mask is not None or is_causal or dropout:
        raise ValueError(f"{NAME} serves only the vision encoder's packed, non-causal attention")
    varlen = query.is_cuda and query.dtype in (torch.float16, torch.bfloat16) and varlen_requested()
    scale = scaling if scaling is not None else query.shape[-1] ** -0.5
    return packed_page_attention(query, key, value, cu_seq_lens_q, scale, int(max_length_q or 0), varlen), None


def varlen_requested() -> bool:
    return os.environ.get("RERANKER_VARLEN_ATTENTION", "") in ("1", "true", "yes")


def use_for_vision(backbone) -> None:
    """Route the vision encoder's SDPA attention through `packed_page_attention` (same scores).
    Other implementations are left as they are: flash-attn packs pages itself, and "eager" is
    asked for to get the plain matmul path."""
    from transformers import AttentionInterface

    config = backbone.visual.config
    if config._attn_implementation == "sdpa":
        AttentionInterface.register(NAME, _attention)
        config._attn_implementation = NAME
