"""The vision encoder's packed-page attention (`reranker.attention`) against transformers' own SDPA path."""

from __future__ import annotations

import types

import pytest
import torch
import torch.nn.functional as F

from reranker import attention, vision_inputs
from reranker.checkpoints import build_model, build_processor, build_tokenizer
from reranker.scoring import Budget, encoder_pixels, patchify


def vision_outputs(model, pages, packed=False):
    """What the vision encoder gives for `pages`, encoded in one call, as scoring does (with
    `packed`: given the page offsets and the rest worked out on the CPU, `vision_inputs`)."""
    processor = build_processor(build_tokenizer())
    image_processor = processor.image_processor
    budget = Budget(64 * 32 * 32, 256 * 32 * 32)
    pixels = [encoder_pixels(page, budget) for page in pages]
    grids = torch.tensor([[1, p.shape[0] // 16, p.shape[1] // 16] for p in pixels])
    values = patchify(pixels, patch_size=16, merge_size=2, temporal_patch_size=2,
                      rescale_factor=image_processor.rescale_factor, image_mean=image_processor.image_mean,
                      image_std=image_processor.image_std)
    with torch.inference_mode():
        given = vision_inputs.precomputed(model.model, grids, torch.device("cpu")) if packed else {}
        out = model.model.get_image_features(values, grids, **given)
    return [out.pooler_output, *out.deepstack_features]


def test_packed_page_attention_is_bit_identical_to_transformers_sdpa(sample_images):
    pages = [sample_images[0], sample_images[1].resize((900, 500)), sample_images[2].resize((300, 1200))]
    stock = build_model("tiny", seed=0, attn_implementation="sdpa")
    packed = build_model("tiny", seed=0, attn_implementation="sdpa")
    attention.use_for_vision(packed.model)
    assert packed.model.visual.config._attn_implementation == attention.NAME
    assert stock.model.visual.config._attn_implementation == "sdpa"
    expected = vision_outputs(stock, pages)
    assert len({len(page) for page in expected[0]}) == 3  # three pages of different lengths, one call
    for got in (vision_outputs(packed, pages), vision_outputs(packed, pages, packed=True)):
        for want, have in zip(expected, got):
            assert all(torch.equal(a, b) for a, b in zip(want, have))


def test_other_attention_implementations_are_left_alone():
    model = build_model("tiny", seed=0, attn_implementation="eager")
    attention.use_for_vision(model.model)
    assert model.model.visual.config._attn_implementation == "eager"


def test_the_varlen_kernel_gets_the_packed_layout_and_its_output_is_put_back(monkeypatch):
    """The CUDA kernel cannot run here; a stand-in with its contract (tokens × heads × dim, int32
    offsets, the longest page) checks that the pages reach it, and come back, in the right layout."""
    import torch.nn.attention.varlen as varlen

    calls = []

    def stand_in(q, k, v, cu_q, cu_k, max_q, max_k):
        calls.append((q.shape, cu_q.dtype, cu_q.tolist(), max_q))
        starts = cu_q.tolist()
        return torch.cat([
            F.scaled_dot_product_attention(q[s:e].transpose(0, 1), k[s:e].transpose(0, 1), v[s:e].transpose(0, 1))
            .transpose(0, 1) for s, e in zip(starts, starts[1:])
        ])

    monkeypatch.setattr(varlen, "varlen_attn", stand_in)
    torch.manual_seed(0)
    heads, dim, lengths = 4, 16, [7, 12, 5]
    query, key, value = (torch.randn(1, heads, sum(lengths), dim) for _ in range(3))
    cu_seqlens = torch.tensor([0, 7, 19, 24])
    plain = attention.packed_page_attention(query, key, value, cu_seqlens, dim**-0.5, 12, False)
    packed = attention.packed_page_attention(query, key, value, cu_seqlens, dim**-0.5, 12, True)
    assert calls == [((24, heads, dim), torch.int32, [0, 7, 19, 24], 12)]
    assert plain.shape == packed.shape == (1, 24, heads, dim)
    assert torch.allclose(plain, packed, atol=1e-6)
    # Each page attends to itself only: changing page 1's keys leaves pages 0 and 2 as they were.
    key[:, :, 7:19] += 1.0
    changed = attention.packed_page_attention(query, key, value, cu_seqlens, dim**-0.5, 12, False)
    assert torch.equal(changed[:, :7], plain[:, :7]) and torch.equal(changed[:, 19:], plain[:, 19:])
    assert not torch.allclose(changed[:, 7:19], plain[:, 7:19])


def test_varlen_is_decided_when_the_model_loads_and_a_request_it_cannot_meet_is_logged(monkeypatch, caplog):
    monkeypatch.setenv("RERANKER_VARLEN_ATTENTION", "1")
    model = build_model("tiny", seed=0, attn_implementation="sdpa", dtype=torch.bfloat16)
    with caplog.at_level("WARNING", logger="reranker.attention"):
        attention.use_for_vision(model.model)
    assert getattr(model.model.visual.config, attention.VARLEN_FLAG) is False
    assert "not used, the model is on cpu, the kernel is CUDA-only" in caplog.text


def test_the_attention_function_passes_the_models_varlen_choice_on(monkeypatch):
    seen = []
    monkeypatch.setattr(attention, "packed_page_attention", lambda *args: seen.append(args[-1]) or args[0])
    tensor = torch.zeros(1, 2, 4, 8)
    for flag in (True, False):
        module = types.SimpleNamespace(config=types.SimpleNamespace(**{attention.VARLEN_FLAG: flag}))
        attention._attention(module, tensor, tensor, tensor, None, cu_seq_lens_q=torch.tensor([0, 4]), max_length_q=4)
    assert seen == [True, False]
    with pytest.raises(ValueError, match="only the vision encoder"):
        attention._attention(module, tensor, tensor, tensor, torch.ones(1), cu_seq_lens_q=torch.tensor([0, 4]))


def test_gradients_flow_through_the_plain_per_page_path():
    """The operator has no backward: with gradients wanted, the same per-page SDPA runs unwrapped."""
    torch.manual_seed(0)
    query, key, value = (torch.randn(1, 2, 9, 8, requires_grad=True) for _ in range(3))
    module = types.SimpleNamespace(config=types.SimpleNamespace())
    out, _ = attention._attention(module, query, key, value, None, cu_seq_lens_q=torch.tensor([0, 4, 9]), max_length_q=5)
    out.sum().backward()
    assert query.grad is not None and key.grad is not None
    with torch.no_grad():
        assert torch.equal(out, attention.packed_page_attention(query, key, value, torch.tensor([0, 4, 9]), 8**-0.5, 5, False))
