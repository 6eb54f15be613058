"""The vision encoder's patch embedding as one matrix product instead of a Conv3d.

Qwen3-VL embeds each 2×16×16 patch of 3 channels with an `nn.Conv3d` whose stride equals its
kernel, so every output sees exactly one patch: the convolution *is* a linear map of the
flattened patch (1,536 values, in the (channel, time, row, column) order the image processor
flattens them) to the 1,024-wide embedding. cuDNN has no fast kernel for that degenerate shape: on
an H200 in bfloat16 it ran a generic implicit-GEMM convolution, 19.5 ms a cold batch of 25 pages,
for ~0.4 TFLOP that cuBLAS does in well under a millisecond (run 12's kernel trace). The same
substitution is transformers' `fusion_config={"patch_embeddings": True}` (`fusion_mapping.py`)
and vLLM's `Conv3dLayer`; it is made here, after loading, so that it applies however the model
was built (`from_pretrained`, the adapter merged, the benchmark's random weights) and without
from_pretrained's process-wide class patching, which would change the reference models the tests
compare against too.

The weight is the convolution's own, viewed as a matrix (no copy). The products are the same; only
the order of the float sums may differ: float32 results agree to ~1e-7, bfloat16 ones to its
rounding (tests/test_patch_embedding.py).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class PatchEmbeddingAsMatmul(nn.Module):
    """Drop-in for `Qwen3VLVisionPatchEmbed`: (patches, C·T·P·P) in, (patches, embed_dim) out."""

    def __init__(self, convolution: nn.Conv3d):
        super().__init__()
        self.weight = nn.Parameter(convolution.weight.detach().flatten(1), requires_grad=False)  # a view
        self.bias = convolution.bias
        self.embed_dim = convolution.out_channels

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        patches = hidden_states.reshape(-1, self.weight.shape[1]).to(self.weight.dtype)
        return F.linear(patches, self.weight, self.bias)


def is_one_patch_per_output(convolution: nn.Module) -> bool:
    """A Conv3d whose windows neither overlap nor skip: each output is one patch's linear map."""
    return (
        isinstance(convolution, nn.Conv3d)
        and convolution.stride == convolution.kernel_size
        and convolution.padding == (0, 0, 0)
        and convolution.dilation == (1, 1, 1)
        and convolution.groups == 1
    )


def as_matmul(visual: nn.Module) -> bool:
    """Replace `visual.patch_embed` by `PatchEmbeddingAsMatmul` where it is such a Conv3d; returns
    whether it did (another layout is left as it is)."""
    convolution = getattr(visual.patch_embed, "proj", None)
    if not is_one_patch_per_output(convolution):
        return False
    visual.patch_embed = PatchEmbeddingAsMatmul(convolution)
    return True
