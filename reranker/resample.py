"""Pillow's bicubic resize of an 8-bit RGB image, bit for bit, as tensor operations.

Both models' reference code resizes a page with Pillow (`imaging.resize_to_budget`). On a GPU
the scoring path resizes there instead (`Reranker.resize_on_device`): Pillow takes 20–70 ms of
CPU for a 1–8 megapixel page, and a cold batch's first vision chunk waited ~72 ms for its pages
(H200, run 8). The pixels must stay exactly Pillow's, so this follows Pillow's C code (11.0 to 12.3,
`libImaging/Resample.c`) step by step: the same float64 weights, rounded to the same 22-bit
fixed-point integers, applied in integer arithmetic (exact in any order, on any device), each
pass rounded and clipped to 8 bits as `clip8` does, horizontal pass first. A test holds the
result equal to Pillow's on real pages and random images, scaling down and up.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import PIL
import torch

from .devices import to_device_without_waiting

PRECISION_BITS = 32 - 8 - 2  # Pillow's fixed-point precision for 8-bit images
BICUBIC_SUPPORT = 2.0
# Pillow 12.2 added: shrinking a page over 100 times taller than wide, the vertical pass runs first.
TALL_VERTICAL_FIRST = tuple(int(part) for part in PIL.__version__.split(".")[:2]) >= (12, 2)


def bicubic(image: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """`Image.fromarray(image).resize((width, height), Image.BICUBIC)` for an H×W×3 uint8 tensor,
    on the tensor's device."""
    if image.dtype != torch.uint8 or image.dim() != 3:
        raise ValueError(f"expected an H×W×C uint8 image, got {tuple(image.shape)} {image.dtype}")
    if height < 1 or width < 1:
        raise ValueError(f"cannot resize to {width}×{height}")
    in_height, in_width = image.shape[:2]
    # Pillow skips a pass whose side keeps its size (it would be the identity anyway), and runs
    # (from Pillow 12.2) the vertical pass first when shrinking a page over 100 times taller than wide.
    passes = [(1, in_width, width), (0, in_height, height)]
    if TALL_VERTICAL_FIRST and in_height > in_width * 100 and height < in_height:
        passes.reverse()
    for dim, in_size, out_size in passes:
        if out_size != in_size:
            image = _resample(image, dim, *_device_weights(in_size, out_size, image.device))
    return image


def _resample(image: torch.Tensor, dim: int, first: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """One pass along `dim` (0: rows, 1: columns): output i = clip8(Σ_k weights[i, k] · input[first[i] + k])."""
    out_size, taps = weights.shape
    index = (first[:, None] + torch.arange(taps, device=image.device)).clamp_(max=image.shape[dim] - 1)
    # Taps past a pixel's window have weight 0, so the index clamp above never changes a sum.
    # In blocks (of input rows, or of output rows) so the gathered taps stay under ~256 MB.
    if dim == 1:
        step = max(1, _BLOCK_ELEMENTS // (out_size * taps * image.shape[2]))
        blocks = [_apply(image[start : start + step], 1, index, weights) for start in range(0, image.shape[0], step)]
    else:
        step = max(1, _BLOCK_ELEMENTS // (taps * image.shape[1] * image.shape[2]))
        blocks = [_apply(image, 0, index[start : start + step], weights[start : start + step]) for start in range(0, out_size, step)]
    return blocks[0] if len(blocks) == 1 else torch.cat(blocks)


_BLOCK_ELEMENTS = 64 * 2**20  # int32 taps gathered at once


def _apply(image: torch.Tensor, dim: int, index: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    out_size, taps = weights.shape
    gathered = image.index_select(dim, index.flatten())  # uint8; times the int32 weights: int32 products
    if dim == 0:  # (out, taps, W, C)
        sums = (gathered.view(out_size, taps, *image.shape[1:]) * weights[:, :, None, None]).sum(dim=1, dtype=torch.int32)
    else:  # (H, out, taps, C)
        sums = (gathered.view(image.shape[0], out_size, taps, image.shape[2]) * weights[None, :, :, None]).sum(
            dim=2, dtype=torch.int32)
    # Pillow starts each sum at 1 << 21 (rounding) and shifts right by 22 (a floor), then clips.
    return ((sums + (1 << (PRECISION_BITS - 1))) >> PRECISION_BITS).clamp_(0, 255).to(torch.uint8)


@functools.lru_cache(maxsize=64)  # the pages of one document mostly share their sizes
def _device_weights(in_size: int, out_size: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    return tuple(to_device_without_waiting(torch.from_numpy(array), device) for array in _weights(in_size, out_size))


def _weights(in_size: int, out_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Pillow's `precompute_coeffs` + `normalize_coeffs_8bpc` for BICUBIC over the whole side:
    each output pixel's first input pixel (out_size,) and its fixed-point weights (out_size × taps).

    Vectorised over output pixels, but each float64 operation in Pillow's order (the weight sum
    accumulated tap by tap, as its loop does), so every weight rounds to the same integer."""
    scale = in_size / out_size  # (double)(in1 - in0) / outSize, the box being the whole side
    filterscale = max(scale, 1.0)
    support = BICUBIC_SUPPORT * filterscale
    taps = int(math.ceil(support)) * 2 + 1
    inverse = 1.0 / filterscale
    center = (np.arange(out_size, dtype=np.float64) + 0.5) * scale
    first = np.maximum(np.trunc(center - support + 0.5).astype(np.int64), 0)  # C's (int) truncates
    last = np.minimum(np.trunc(center + support + 0.5).astype(np.int64), in_size)
    count = last - first
    weights = np.zeros((out_size, taps), dtype=np.float64)
    total = np.zeros(out_size, dtype=np.float64)
    for tap in range(taps):
        inside = tap < count
        value = _bicubic_filter(((tap + first).astype(np.float64) - center + 0.5) * inverse)
        weights[:, tap] = np.where(inside, value, 0.0)
        total += weights[:, tap]
    nonzero = total != 0.0
    weights[nonzero] /= total[nonzero, None]
    scaled = weights * float(1 << PRECISION_BITS)
    # |weight| ≤ 2**22, so a pixel times a weight fits in int32, and so does any partial sum of a
    # pixel's products: Σ|weight| ≤ 1.25 · 2**22 for this filter, times 255, is under 2**31 (Pillow's
    # own accumulator is an int32). Summed in int32: half the bytes of torch's default int64.
    fixed = np.trunc(np.where(weights < 0, -0.5 + scaled, 0.5 + scaled)).astype(np.int32)
    return first, fixed


def _bicubic_filter(x: np.ndarray) -> np.ndarray:
    """Pillow's `bicubic_filter` (a = −0.5), the same float64 operations in the same order."""
    a = -0.5
    x = np.abs(x)
    near = ((a + 2.0) * x - (a + 3.0)) * x * x + 1
    far = (((x - 5) * x + 8) * x - 4) * a
    return np.where(x < 1.0, near, np.where(x < 2.0, far, 0.0))
