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
"""

from __future__ import annotations

import torch

from . import attention
from .devices import to_device_without_waiting as _to


def precomputed(backbone, grids: torch.Tensor, device: torch.device) -> dict:
    """Keyword arguments for `backbone.get_image_features` (or its `visual`) over pages of these
    grids: everything the encoder would otherwise derive from the grids, on `device`, except the
    offsets that `attention.packed_page_attention` reads on the CPU."""
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
    if not attention.in_use(backbone):  # transformers' own attention paths read the offsets on the device
        offsets = _to(offsets, device)
    return {
        "interp_indices": _to(indices, device),
        "interp_weights": _to(weights, device),
        "position_ids": _to(positions, device),
        "cu_seqlens": offsets,
        "max_seqlen": longest,
    }
