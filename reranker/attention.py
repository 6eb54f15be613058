"""The vision encoder's attention over a chunk of pages, as one opaque operator.

Qwen3-VL's vision encoder packs the patches of several pages into one sequence, and each page
attends only to itself. With SDPA, transformers splits the sequence per page inside every
block, which `torch.compile` cannot trace (a `.tolist()` on the page lengths): each block's graph
broke there and was recompiled for every distinct number of pages in a chunk, up to Dynamo's
limit of 8 variants, past which it ran uncompiled. Here the whole per-page loop is one custom
operator, so a compiled block stays one graph whatever the chunk holds, and eager outputs are
bit-identical to transformers' SDPA path (the same calls on the same views). Scoring hands the
page offsets over from the CPU (`vision_inputs.precomputed`), so the loop costs no GPU round trip
per block.

On CUDA in half precision, `RERANKER_VARLEN_ATTENTION=1` runs the pages in one call of PyTorch's
own variable-length FlashAttention kernel (`torch.nn.attention.varlen`, torch ≥ 2.10, compute
capability ≥ 8.0; no flash-attn package) instead of one SDPA call per page. Off by default: on an
H200 it was slower (`bench --varlen`, 26.9 against 29.5 pairs/s cold), because SDPA there runs
cuDNN's fused kernel on each page, faster than FlashAttention-2 (`scripts/gpu_sdpa_kernels.py`).
Decided once per model, when it loads: a request that cannot be met is logged and the SDPA loop
kept.

transformers chooses its packed (cu_seqlens) code path by the substring "flash" in the attention
implementation's name, hence the name. (No `from __future__ import annotations` here: the custom
operator's schema is read from its annotations.)
"""

import logging

import torch
import torch.nn.functional as F

NAME = "flash_packed_pages"  # "flash" in it: transformers then passes the packed sequence's cu_seqlens
VARLEN_FLAG = "reranker_varlen"  # on the vision config: this model's pages go through the varlen kernel

log = logging.getLogger(__name__)


def per_page_sdpa(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, cu_seqlens: torch.Tensor,
                  scale: float) -> torch.Tensor:
    """transformers' SDPA path for packed pages: (1, heads, tokens, dim) in, (1, tokens, heads, dim) out."""
    starts = cu_seqlens.tolist()
    pieces = [
        F.scaled_dot_product_attention(query[:, :, start:end], key[:, :, start:end], value[:, :, start:end],
                                       attn_mask=None, dropout_p=0.0, scale=scale, is_causal=False)
        .transpose(1, 2).contiguous()
        for start, end in zip(starts, starts[1:])
    ]
    return torch.cat(pieces, dim=1)


@torch.library.custom_op("reranker::packed_page_attention", mutates_args=())
def packed_page_attention(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, cu_seqlens: torch.Tensor,
                          scale: float, max_length: int, varlen: bool) -> torch.Tensor:
    """Attention within each page of a packed sequence. query/key/value: (1, heads, tokens, dim);
    `cu_seqlens`: where each page starts, then the total. Returns (1, tokens, heads, dim)."""
    if not varlen:
        return per_page_sdpa(query, key, value, cu_seqlens, scale)
    from torch.nn.attention.varlen import varlen_attn

    q, k, v = (tensor[0].transpose(0, 1).contiguous() for tensor in (query, key, value))
    bounds = cu_seqlens.to(device=query.device, dtype=torch.int32)
    # The vision encoder's scale is the kernel's default (1/sqrt(dim)); torch 2.10 takes no scale.
    assert abs(scale - query.shape[-1] ** -0.5) < 1e-6, "varlen attention here assumes the default scale"
    return varlen_attn(q, k, v, bounds, bounds, max_length, max_length).unsqueeze(0)


@packed_page_attention.register_fake
def _(query, key, value, cu_seqlens, scale, max_length, varlen):
    batch, heads, tokens, dim = query.shape
    return query.new_empty((batch, tokens, heads, dim))


def _attention(module, query, key, value, attention_mask, scaling=None, dropout=0.0, cu_seq_lens_q=None,
               max_length_q=None, is_causal=False, **kwargs):
    """transformers' attention-function interface, for the vision encoder's packed path only."""
    if cu_seq_lens_q is None or attention_mask is not None or is_causal or dropout:
        raise ValueError(f"{NAME} serves only the vision encoder's packed, non-causal attention")
    scale = scaling if scaling is not None else query.shape[-1] ** -0.5
    if torch.is_grad_enabled() and query.requires_grad:  # the operator has no backward; this path has
        return per_page_sdpa(query, key, value, cu_seq_lens_q, scale), None
    varlen = bool(getattr(module.config, VARLEN_FLAG, False))
    return packed_page_attention(query, key, value, cu_seq_lens_q, scale, int(max_length_q or 0), varlen), None


def varlen_problem(backbone) -> str | None:
    """Why this model cannot use the varlen kernel, or None if it can."""
    parameter = next(backbone.visual.parameters())
    if parameter.device.type != "cuda":
        return f"the model is on {parameter.device.type}, the kernel is CUDA-only"
    if parameter.dtype not in (torch.float16, torch.bfloat16):
        return f"the model is in {parameter.dtype}, the kernel takes bfloat16 or float16"
    if torch.cuda.get_device_capability(parameter.device) < (8, 0):
        return "the GPU is older than compute capability 8.0 (FlashAttention's minimum)"
    try:
        from torch.nn.attention.varlen import varlen_attn  # noqa: F401
    except ImportError:
        return f"torch {torch.__version__} has no torch.nn.attention.varlen (it came in 2.10)"
    if not in_use(backbone):
        return f"the vision encoder runs {backbone.visual.config._attn_implementation!r} attention"
    return None


def set_varlen(backbone, wanted: bool) -> str | None:
    """Turn the varlen kernel on (if this model can use it) or off; returns why not, if not."""
    problem = varlen_problem(backbone) if wanted else None
    setattr(backbone.visual.config, VARLEN_FLAG, wanted and problem is None)
    return problem


def varlen_requested() -> bool:
    from .devices import env_flag

    return env_flag("RERANKER_VARLEN_ATTENTION")


def use_for_vision(backbone) -> None:
    """Route the vision encoder's SDPA attention through `packed_page_attention` (same outputs),
    with the varlen kernel if `RERANKER_VARLEN_ATTENTION` asks and the model can. Other
    implementations are left as they are: flash-attn packs pages itself, and "eager" is asked
    for to get the plain matmul path."""
    from transformers import AttentionInterface

    config = backbone.visual.config
    if config._attn_implementation == "sdpa":
        AttentionInterface.register(NAME, _attention)
        config._attn_implementation = NAME
    if varlen_requested() and (problem := set_varlen(backbone, True)):
        log.warning("RERANKER_VARLEN_ATTENTION: not used, %s; the vision encoder keeps one SDPA call per page", problem)


def in_use(backbone) -> bool:
    return backbone.visual.config._attn_implementation == NAME
