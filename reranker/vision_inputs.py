"""What the vision encoder derives from a chunk's page grids, made on the CPU before it runs.

From the pages' (t, h, w) grids, transformers' Qwen3-VL vision encoder derives the position
embeddings' interpolation taps, the rotary positions and the pages' offsets in the packed
sequence, and `get_image_features` splits its output by page. With the grids on the GPU each of
these reads them back (`.tolist()`, `repeat_interleave` sized by a GPU tensor): host syncs, so
the CPU waited for one chunk of pages to finish on the GPU before it queued the next chunk's
work, and the GPU sat idle at the start of every chunk. Here transformers' own helpers make the
same tensors from the grids on the CPU; the encoder takes them as precomputed inputs (the
helpers pop them from its keyword arguments), and is given the grids on the CPU, so nothing in
a chunk reads a GPU tensor back and the CPU queues chunk k+1 while the GPU runs chunk k.
On a GPU, scoring has a page worker make them (`on_cpu`) while the chunk's pixels are made: on
the main thread they kept the GPU idle ~8 ms before a cold call's first chunk could start (run
12's trace).
"""

from __future__ import annotations

import torch

from . import attention
from .devices import to_device_without_waiting as _to


def precomputed(backbone, grids: torch.Tensor, device: torch.device) -> dict:
    """Keyword arguments for `backbone.get_image_features` (or its `visual`) over pages of these
    grids: everything the encoder would otherwise derive from the grids, on `device`, except the
    offsets that `attention.packed_page_attention` reads on the CPU."""
    return to_device(backbone, on_cpu(backbone, grids), device)


def on_cpu(backbone, grids: torch.Tensor) -> dict:
    """`precomputed`'s tensors, all on the CPU: CPU work only, so a page worker can make them
    (scoring does, while the pages' pixels are being made) and the main thread just moves them."""
    from transformers.vision_utils import (
        get_vision_attention_seqlens,
        get_vision_interpolation_indices_and_weights,
        get_vision_position_ids,
    )

    visual = backbone.visual
    grids = grids.cpu()
    # The same arguments as Qwen3VLVisionModel.forward passes (transformers 5.24).
    indices, weights = get_vision_interpolation_indices_and_weights(
        grids, num_grid_per_side=visual.num_grid_per_side, mode=visual.interpolation_mode,
        align_corners=visual.interpolation_align_corners, spatial_merge_size=visual.config.spatial_merge_size,
    )
    positions = get_vision_position_ids(grids, visual.spatial_merge_size)
    offsets, longest = get_vision_attention_seqlens(grids, visual.config)
    return {"interp_indices": indices, "interp_weights": weights, "position_ids": positions,
            "cu_seqlens": offsets, "max_seqlen": longest}


def to_device(backbone, values: dict, device: torch.device) -> dict:
    """`on_cpu`'s values moved to `device` without waiting, but for the page offsets when
    `attention.packed_page_attention` reads them (on the CPU)."""
    keep_on_cpu = {"max_seqlen"} | ({"cu_seqlens"} if attention.in_use(backbone) else set())
    # (transformers' own attention paths read the offsets on the device)
    return {name: value if name in keep_on_cpu else _to(value, device) for name, value in values.items()}
