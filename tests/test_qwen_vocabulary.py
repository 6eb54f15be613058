"""The published token facts and the scoring path with Qwen's real BPE vocabulary.

The other tests use a small byte-level tokenizer. Here Qwen's tokenizer is rebuilt from its BPE
ranks (`python -m reranker.checkpoints fetch-vocab`, which `.ci/run` does) and put on a tiny
random model: the yes/no ids in `models.py` must be Qwen's, and the fast path (truncation,
placeholder expansion, page prefixes split at <|vision_end|>) must still equal the reference
code when real merges decide the token boundaries.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch

from reranker.checkpoints import build_model, build_processor, build_qwen_tokenizer, qwen_vocabulary
from reranker.models import MODELS, get_spec
from reranker.loading import LoadError, build_reranker

from .reference_impl import qwen3_reranker_mm_score, qwen3_vl_reranker_score

A, B = "qwen3-vl-reranker-2b", "qwen3-reranker-mm-2b"
TOL = 1e-5
QUERIES = ("What share of users per thread were unknown in the FEB11 sample?", "Quelle est la densité ? 表面密度は？")


@pytest.fixture(scope="module")
def qwen_tokenizer():
    path = qwen_vocabulary()
    if path is None:
        pytest.skip("Qwen's vocabulary is not here: run `python -m reranker.checkpoints fetch-vocab`")
    return build_qwen_tokenizer(path)


@pytest.fixture(scope="module")
def qwen_model(qwen_tokenizer):
    model = build_model("tiny", seed=3, tokenizer=qwen_tokenizer)
    return model, build_processor(qwen_tokenizer)


def test_the_answer_token_ids_in_the_specs_are_qwens(qwen_tokenizer):
    for spec in MODELS.values():
        ids = tuple(qwen_tokenizer.convert_tokens_to_ids(token) for token in (spec.yes_token, spec.no_token))
        assert ids == spec.qwen_token_ids
        assert [qwen_tokenizer(token)["input_ids"] for token in (spec.yes_token, spec.no_token)] == [[i] for i in ids]


def test_special_token_ids_are_qwens(qwen_tokenizer):
    expected = {"<|endoftext|>": 151643, "<|im_start|>": 151644, "<|im_end|>": 151645, "<|vision_start|>": 151652,
                "<|vision_end|>": 151653, "<|image_pad|>": 151655}
    assert {token: qwen_tokenizer.convert_tokens_to_ids(token) for token in expected} == expected
    assert qwen_tokenizer("Hello world")["input_ids"] == [9707, 1879]


def test_no_qwen_token_is_longer_than_the_query_cut_assumes(qwen_tokenizer):
    """`clean_query` cuts a query past max_length × CHARS_PER_TOKEN_BOUND characters: at 64 it cut
    7,000 tokens of space runs (Qwen has tokens of up to 128 spaces) to 6,364, below the limit."""
    from reranker import scoring

    longest = max(len(qwen_tokenizer.convert_tokens_to_string([token])) for token in qwen_tokenizer.get_vocab())
    assert longest <= scoring.CHARS_PER_TOKEN_BOUND
    specials = [token for token in qwen_tokenizer.all_special_tokens + list(qwen_tokenizer.get_added_vocab()) if token.startswith("<|")]
    assert max(map(len, specials)) < scoring._MARKER_SPAN


def test_the_reference_keeps_five_tail_tokens_and_so_do_we(qwen_tokenizer):
    """Qwen3-VL-Reranker truncates `input_ids[:-5]`: the tail "<|im_end|>\\n<|im_start|>assistant\\n"."""
    tail = qwen_tokenizer(get_spec(A).tail)["input_ids"]
    assert tail == [151645, 198, 151644, 77091, 198]


@pytest.mark.parametrize("query", QUERIES)
def test_both_paths_equal_the_reference_with_qwens_tokenizer(qwen_model, sample_images, query):
    model, processor = qwen_model
    pages = [sample_images[0], sample_images[3].resize((900, 1400))]
    a = build_reranker(A, model, processor, device="cpu")
    expected_a = [qwen3_vl_reranker_score(model, processor, query, page) for page in pages]
    assert a.score(query, pages) == pytest.approx(expected_a, abs=TOL)
    b = build_reranker(B, model, processor, device="cpu")
    assert b.reuses_prefix
    b.score("an earlier query about the same pages", pages)  # keeps both page prefixes
    expected_b = [qwen3_reranker_mm_score(model, processor, query, page) for page in pages]
    assert b.score(query, pages) == pytest.approx(expected_b, abs=TOL)
    assert b.prefix_cache.hits == len(pages)


def test_a_checkpoint_whose_answer_ids_differ_is_refused(qwen_model):
    model, processor = qwen_model
    swapped = dataclasses.replace(get_spec(B), yes_token="No", no_token="Yes")
    with pytest.raises(LoadError, match="expected"):
        build_reranker(swapped, model, processor, device="cpu")
    assert torch.is_tensor(build_reranker(B, model, processor, device="cpu").score_vector)
