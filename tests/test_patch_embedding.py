"""`patch_embedding.as_matmul`: the Conv3d patch embedding as one matrix product, same numbers."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from reranker import patch_embedding
from reranker.checkpoints import build_model
from reranker.patch_embedding import PatchEmbeddingAsMatmul

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def patches(visual, count: int, dtype=torch.float32, device="cpu") -> torch.Tensor:
    """Random flattened patches, as the image processor lays them out (channel, time, row, column)."""
    config = visual.config
    width = config.in_channels * config.temporal_patch_size * config.patch_size**2
    return torch.randn(count, width, generator=torch.Generator().manual_seed(0)).to(device, dtype)


def test_the_matmul_embeds_patches_as_the_convolution():
    visual = build_model("tiny", seed=0).model.visual
    original = copy.deepcopy(visual.patch_embed)
    assert patch_embedding.as_matmul(visual)
    assert isinstance(visual.patch_embed, PatchEmbeddingAsMatmul)
    values = patches(visual, 300)
    with torch.inference_mode():
        expected, got = original(values), visual.patch_embed(values)
    assert got.shape == expected.shape == (300, visual.config.hidden_size)
    # Float32 sums of 1,536 products in another order: equal to a few units of the last place
    # of the outputs' scale (the random weights make outputs up to ~40).
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-6 * float(expected.abs().max()) * 8)
    # And as near to the exact products as the convolution is (float64 over the same weights).
    exact = copy.deepcopy(original).double()(values.double())
    assert (got.double() - exact).abs().max() <= 2 * (expected.double() - exact).abs().max()


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_the_whole_encoder_gives_the_same_outputs(device, dtype):
    """The encoder's outputs (embeddings and deepstack features) with the matmul, against the
    Conv3d: float32 to ~1e-6; bfloat16 within its own rounding (the sums' order differs)."""
    model = build_model("tiny", seed=0).to(device, dtype)
    visual = model.model.visual
    fused = copy.deepcopy(visual)
    patch_embedding.as_matmul(fused)
    grids = torch.tensor([[1, 12, 20], [1, 8, 8]], device=device)  # (the encoder derives its inputs on their device)
    values = patches(visual, int(grids.prod(-1).sum()), dtype, device)
    with torch.inference_mode():
        expected, got = visual(values, grid_thw=grids), fused(values, grid_thw=grids)
    pairs = [(got.pooler_output, expected.pooler_output),
             *zip(got.deepstack_features, expected.deepstack_features, strict=True)]
    for a, b in pairs:  # within a few steps of the dtype's precision at the values' scale (a wrong
        scale = float(b.float().abs().max())  # layout would be off by the scale itself)
        step = 1e-6 if dtype == torch.float32 else 2**-8
        torch.testing.assert_close(a.float(), b.float(), rtol=0, atol=8 * step * scale)


def test_the_weight_is_the_convolutions_own_memory():
    visual = build_model("tiny", seed=0).model.visual
    convolution = visual.patch_embed.proj
    patch_embedding.as_matmul(visual)
    assert visual.patch_embed.weight.data_ptr() == convolution.weight.data_ptr()
    assert visual.patch_embed.bias is convolution.bias
    assert not visual.patch_embed.weight.requires_grad


@pytest.mark.parametrize("options", [dict(stride=(1, 8, 8)), dict(padding=(0, 1, 1)), dict(groups=3)])
def test_a_convolution_that_is_not_one_patch_per_output_is_left_as_it_is(options):
    class Embedding(nn.Module):
        def __init__(self):
            super().__init__()
            self.proj = nn.Conv3d(3, 6, kernel_size=(2, 16, 16), **{"stride": (2, 16, 16), **options})

    visual = nn.Module()
    visual.patch_embed = embedding = Embedding()
    assert not patch_embedding.as_matmul(visual)
    assert visual.patch_embed is embedding


def test_both_loaded_rerankers_embed_patches_by_matmul(tiny_rerankers):
    for reranker in tiny_rerankers.values():  # the second after its adapter was merged
        assert isinstance(reranker.backbone.visual.patch_embed, PatchEmbeddingAsMatmul)
