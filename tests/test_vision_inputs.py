"""`vision_inputs.precomputed`: the encoder, given them, reads nothing from the page grids."""

from __future__ import annotations

import pytest
import torch

from reranker import attention, vision_inputs
from reranker.checkpoints import build_model

GRIDS = torch.tensor([[1, 12, 20], [1, 30, 8], [1, 4, 4]])


def patches(model, grids: torch.Tensor) -> torch.Tensor:
    config = model.model.visual.config
    width = config.in_channels * config.temporal_patch_size * config.patch_size**2
    return torch.randn(int(grids.prod(-1).sum()), width, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("implementation", ["sdpa", "eager"])
def test_the_encoder_given_them_reads_nothing_from_the_grids(implementation):
    """The same outputs as the encoder deriving everything itself, with the grids it is given
    made nonsense: so on a GPU no step of it reads the grids (no host sync), and scoring can pass
    them on the CPU."""
    model = build_model("tiny", seed=0, attn_implementation=implementation)
    attention.use_for_vision(model.model)
    assert attention.in_use(model.model) == (implementation == "sdpa")
    values = patches(model, GRIDS)
    visual = model.model.visual
    with torch.inference_mode():
        expected = visual(values, grid_thw=GRIDS)
        given = visual(values, grid_thw=torch.full_like(GRIDS, 7),
                       **vision_inputs.precomputed(model.model, GRIDS, torch.device("cpu")))
    assert torch.equal(given.pooler_output, expected.pooler_output)
    assert all(torch.equal(a, b) for a, b in zip(given.deepstack_features, expected.deepstack_features, strict=True))


def test_page_offsets_stay_on_the_cpu_for_the_per_page_loop():
    model = build_model("tiny", seed=0, attn_implementation="sdpa")
    attention.use_for_vision(model.model)
    values = vision_inputs.precomputed(model.model, GRIDS, torch.device("cpu"))
    assert values["cu_seqlens"].tolist() == [0, 240, 480, 496] and values["cu_seqlens"].device.type == "cpu"
    assert values["max_seqlen"] == 240
    assert values["position_ids"].shape == (496, 2) and values["interp_indices"].shape[0] == 496
