"""The scoring engine against the models' reference code, on tiny random checkpoints.

Equivalences are the backbone: fast yes−no head = full LM head, batched = one pair at a time,
cached = uncached, overlapped = sequential preparation, merged LoRA = unmerged PeftModel.
"""

from __future__ import annotations

import io
import pathlib
import re
import socket

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import Qwen3VLForConditionalGeneration

from reranker import load_reranker
from reranker import loading as loading_module
from reranker import scoring as scoring_module
from reranker.imaging import smart_resize
from reranker.models import MODELS, UnknownModelError, get_spec
from reranker.processor import ImageOnlyQwen3VLProcessor
from reranker.loading import AdapterMismatchError, LoadError
from reranker.scoring import QueryError

from .reference_impl import qwen3_reranker_mm_score, qwen3_vl_reranker_score

A, B = "qwen3-vl-reranker-2b", "qwen3-reranker-mm-2b"
TOL = 1e-5

SYSTEM_A = (
    "<|im_start|>system\nJudge whether the Document meets the requirements based on the Query and the Instruct "
    'provided. Note that the answer can only be "yes" or "no".<|im_end|>\n'
)
DEFAULT_INSTRUCTION = "Given a search query, retrieve relevant candidates that answer the query."
IMAGE = "<|vision_start|><|image_pad|><|vision_end|>"


def expected_prompt_a(query: str, instruction: str = DEFAULT_INSTRUCTION) -> str:
    return (
        SYSTEM_A
        + f"<|im_start|>user\n<Instruct>: {instruction}<Query>:{query}\n<Document>:{IMAGE}<|im_end|>\n"
        + "<|im_start|>assistant\n"
    )


def expected_prompt_b(query: str) -> str:
    return (
        "<|im_start|>system\nYou will be given an picture and a query. Answer 'Yes' if the answer to the query can be "
        "found in the picture, else 'No'<|im_end|>\n<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>"
        f"Query : {query} \nAre the picture and query related ?<|im_end|>\n<|im_start|>assistant\n"
    )


QUERIES = [
    "What share of users per thread were unknown in the FEB11 sample?",
    "Quelle est la densité surfacique ? 表面密度は？ ünïcödé — ✓",
    "line one\nline two\n\n  indented line three",
]


@pytest.fixture(scope="module")
def full_models(tiny_checkpoints):
    """The reference side: full LM heads, the processor, and B's adapter left unmerged."""
    from peft import PeftModel

    reranker = Qwen3VLForConditionalGeneration.from_pretrained(tiny_checkpoints.reranker, dtype=torch.float32).eval()
    base = Qwen3VLForConditionalGeneration.from_pretrained(tiny_checkpoints.base, dtype=torch.float32)
    unmerged = PeftModel.from_pretrained(base, str(tiny_checkpoints.adapter)).eval()
    return {
        A: (reranker, ImageOnlyQwen3VLProcessor.from_pretrained(tiny_checkpoints.reranker, padding_side="left")),
        B: (unmerged, ImageOnlyQwen3VLProcessor.from_pretrained(tiny_checkpoints.base)),
    }


def odd_pages(sample_images):
    """Pages of very different shapes, so batches need real padding."""
    return [
        sample_images[0],
        Image.new("RGB", (300, 2000), (200, 30, 30)),
        sample_images[1].resize((2400, 500)),
        Image.new("RGB", (40, 40), (10, 200, 10)),
        sample_images[2],
        sample_images[3].crop((0, 0, 900, 700)),
    ]


# ----- prompts ----------------------------------------------------------------------------------
@pytest.mark.parametrize("query", QUERIES)
def test_prompt_a_is_byte_identical_to_the_reference_format(tiny_rerankers, query):
    reranker = tiny_rerankers[A]
    assert reranker.prompt(query) == expected_prompt_a(query)
    custom = "Find the chart that answers the question."
    assert reranker.prompt(query, instruction=custom) == expected_prompt_a(query, custom)


@pytest.mark.parametrize("query", QUERIES)
def test_prompt_b_is_byte_identical_to_the_card(tiny_rerankers, query):
    assert tiny_rerankers[B].prompt(query) == expected_prompt_b(query)
    # B was trained with one fixed prompt: an instruction does not change it, and a warning says so.
    with pytest.warns(UserWarning, match="Qwen3RerankerMM-2B takes no instruction .*the instruction is not used"):
        assert tiny_rerankers[B].prompt(query, instruction="anything") == expected_prompt_b(query)


def test_specs_hold_the_published_facts():
    a, b = get_spec(A), get_spec(B)
    assert (a.model_id, a.adapter_id) == ("Qwen/Qwen3-VL-Reranker-2B", None)
    assert (b.model_id, b.adapter_id) == ("Qwen/Qwen3-VL-2B-Instruct", "UlrickBL/Qwen3RerankerMM-2B")
    assert (a.yes_token, a.no_token, a.qwen_token_ids) == ("yes", "no", (9693, 2152))
    assert (b.yes_token, b.no_token, b.qwen_token_ids) == ("Yes", "No", (9454, 2753))
    assert a.max_pixels == 1280 * 32 * 32 and a.max_pixels_limit == 1800 * 32 * 32 and a.min_pixels == 4 * 32 * 32
    assert b.max_pixels == 564_480
    assert b.max_pixels_limit == a.max_pixels_limit  # both can be compared at one budget


# ----- equivalence with the reference code -------------------------------------------------------
@pytest.mark.parametrize("query", QUERIES[:2])
def test_a_fast_head_and_batches_equal_the_reference_full_lm_head(tiny_rerankers, full_models, sample_images, query):
    model, processor = full_models[A]
    pages = odd_pages(sample_images)
    expected = [qwen3_vl_reranker_score(model, processor, query, page) for page in pages]
    tiny_rerankers[A].clear_caches()
    got = tiny_rerankers[A].score(query, pages, batch_size=4)
    assert got == pytest.approx(expected, abs=TOL)
    assert max(expected) - min(expected) > 0.01  # the random model does separate the pages


def test_a_custom_instruction_matches_the_reference(tiny_rerankers, full_models, sample_images):
    model, processor = full_models[A]
    instruction = "Retrieve the figure whose caption answers the question."
    expected = [qwen3_vl_reranker_score(model, processor, QUERIES[0], page, instruction) for page in sample_images[:3]]
    assert tiny_rerankers[A].score(QUERIES[0], sample_images[:3], instruction) == pytest.approx(expected, abs=TOL)


@pytest.mark.parametrize("query", QUERIES[:2])
def test_b_merged_lora_equals_the_unmerged_peft_model_with_full_head(tiny_rerankers, full_models, sample_images, query):
    model, processor = full_models[B]  # PeftModel, adapter not merged, full LM head
    pages = odd_pages(sample_images)
    expected = [qwen3_reranker_mm_score(model, processor, query, page) for page in pages]
    tiny_rerankers[B].clear_caches()
    assert tiny_rerankers[B].score(query, pages, batch_size=3) == pytest.approx(expected, abs=TOL)


def test_b_at_the_top_of_its_budget_range_equals_the_reference_given_that_budget(tiny_rerankers, full_models, sample_images):
    model, processor = full_models[B]
    top = tiny_rerankers[B].spec.max_pixels_limit
    pages = [page.resize((1400, 2000)) for page in sample_images[:2]]  # over the budget: it decides the size
    expected = [qwen3_reranker_mm_score(model, processor, QUERIES[0], page, max_pixels=top) for page in pages]
    assert tiny_rerankers[B].score(QUERIES[0], pages, max_pixels=top) == pytest.approx(expected, abs=TOL)


def transparent_and_thin_pages(sample_images):
    """Where the two references' image rules differ: transparency, and a side under 16 px."""
    see_through = sample_images[0].convert("RGBA")
    see_through.putalpha(Image.linear_gradient("L").resize(see_through.size))  # clear to opaque
    palette = sample_images[1].convert("P", palette=Image.Palette.ADAPTIVE, colors=8)
    palette.info["transparency"] = 0
    rng = torch.Generator().manual_seed(0)
    noise = torch.randint(0, 256, (15, 2900, 3), dtype=torch.uint8, generator=rng).numpy()
    thin = Image.fromarray(noise)  # 2900×15
    return [see_through, palette, thin, thin.transpose(Image.Transpose.ROTATE_90), sample_images[2].convert("LA")]


@pytest.mark.parametrize("key", [A, B])
def test_transparent_and_very_thin_pages_follow_each_models_reference(tiny_rerankers, full_models, sample_images, key):
    """A's reference (qwen_vl_utils) lays only RGBA on white and rounds a side to at least one
    token; B's (the transformers processor) lays any transparency on white and lets a side round
    to 0, then grows the page to its min_pixels."""
    model, processor = full_models[key]
    reference = qwen3_vl_reranker_score if key == A else qwen3_reranker_mm_score
    pages = transparent_and_thin_pages(sample_images)
    expected = [reference(model, processor, QUERIES[0], page) for page in pages]
    tiny_rerankers[key].clear_caches()
    assert tiny_rerankers[key].score(QUERIES[0], pages, batch_size=2) == pytest.approx(expected, abs=TOL)


def colour_keyed(page: Image.Image, mode: str) -> tuple[Image.Image, Image.Image]:
    """(opaque twin, the same pixels with their darkest colour, the text, marked transparent),
    both read back from PNG files, where Pillow keeps the key in `info["transparency"]`."""
    opaque = page.convert(mode) if mode != "P" else page.convert("P", palette=Image.Palette.ADAPTIVE, colors=8)
    if mode == "P":
        colours = opaque.getpalette()
        key = min(range(len(colours) // 3), key=lambda i: sum(colours[3 * i:3 * i + 3]))
    else:
        key = (0, 0, 0) if mode == "RGB" else opaque.getextrema()[0]
        if mode == "RGB":
            opaque = opaque.point(lambda v: 0 if v < 100 else v)  # the text exactly black
    read_back = []
    for options in ({}, {"transparency": key}):
        buffer = io.BytesIO()
        opaque.save(buffer, format="PNG", **options)
        read_back.append(Image.open(io.BytesIO(buffer.getvalue())))
        read_back[-1].load()
    return read_back[0], read_back[1]


@pytest.mark.parametrize("key", [A, B])
@pytest.mark.parametrize("mode", ["RGB", "L", "P"])
def test_a_page_with_a_transparent_colour_follows_each_models_reference(tiny_rerankers, full_models, sample_images, key, mode):
    """Both references lay a colour key on white (transformers 5's convert_to_rgb; A's after
    qwen_vl_utils resized the page, Pillow carrying the key through), RGB pages too; and the
    caches must not take the keyed page for its opaque twin (same pixels)."""
    opaque, keyed = colour_keyed(sample_images[0], mode)
    assert keyed.info["transparency"] is not None and "transparency" not in opaque.info
    model, processor = full_models[key]
    reference = qwen3_vl_reranker_score if key == A else qwen3_reranker_mm_score
    expected = [reference(model, processor, QUERIES[0], page) for page in (opaque, keyed)]
    assert expected[0] != pytest.approx(expected[1], abs=1e-4)  # the key matters to the reference
    tiny_rerankers[key].clear_caches()
    assert [tiny_rerankers[key].score(QUERIES[0], [page])[0] for page in (opaque, keyed)] == pytest.approx(expected, abs=TOL)
    assert tiny_rerankers[key].score(QUERIES[0], [keyed, opaque], batch_size=2) == pytest.approx(expected[::-1], abs=TOL)


def test_the_adapter_changes_the_scores(tiny_checkpoints, tiny_rerankers, full_models, sample_images):
    base = Qwen3VLForConditionalGeneration.from_pretrained(tiny_checkpoints.base, dtype=torch.float32).eval()
    _, processor = full_models[B]
    base_only = [qwen3_reranker_mm_score(base, processor, QUERIES[0], page) for page in sample_images[:3]]
    merged = tiny_rerankers[B].score(QUERIES[0], sample_images[:3])
    assert merged != pytest.approx(base_only, abs=1e-3)


def test_batched_equals_one_at_a_time_in_input_order(tiny_rerankers, sample_images):
    for key in (A, B):
        reranker = tiny_rerankers[key]
        pages = odd_pages(sample_images)
        reranker.clear_caches()
        batched = reranker.score(QUERIES[0], pages, batch_size=len(pages))
        reranker.clear_caches()
        single = [reranker.score(QUERIES[0], [page], batch_size=1)[0] for page in pages]
        assert batched == pytest.approx(single, abs=TOL)
        reranker.clear_caches()
        reversed_scores = reranker.score(QUERIES[0], pages[::-1], batch_size=2)
        assert reversed_scores == pytest.approx(batched[::-1], abs=TOL)


def test_an_image_opened_lazily_scores_as_its_pixels_given_twice_or_from_several_threads(tiny_rerankers, tmp_path):
    """`Image.open` decodes at first use: the same unread image twice in one call was decoded on
    two page workers at once (an OSError, or wrong pixels kept and a wrong score later), and so
    was one image scored from three threads."""
    from concurrent.futures import ThreadPoolExecutor

    samples = pathlib.Path(__file__).resolve().parent.parent / "data" / "examples" / "sample-pages"
    path = tmp_path / "page.png"  # PNG decodes in several chunks: the widest window for the race
    with Image.open(samples / "doc_1.jpg") as source:
        source.convert("RGB").resize((600, 800)).save(path)
    with Image.open(path) as image:
        pixels = image.convert("RGB")
    reranker = tiny_rerankers[A]
    expected = reranker.score(QUERIES[0], [pixels])[0]
    for _ in range(5):
        assert reranker.score(QUERIES[0], [Image.open(path), Image.open(path)]) == pytest.approx([expected] * 2, abs=TOL)
        lazy = Image.open(path)
        assert reranker.score(QUERIES[0], [lazy, lazy]) == pytest.approx([expected] * 2, abs=TOL)
        lazy = Image.open(path)
        with ThreadPoolExecutor(3) as threads:
            scores = list(threads.map(lambda _: reranker.score(QUERIES[0], [lazy])[0], range(3)))
        assert scores == pytest.approx([expected] * 3, abs=TOL)
        assert reranker.score(QUERIES[0], [lazy]) == pytest.approx([expected], abs=TOL)


def test_cached_equals_uncached(tiny_rerankers, sample_images):
    reranker = tiny_rerankers[A]
    pages = sample_images[:5]
    reranker.clear_caches()
    cold = reranker.score(QUERIES[0], pages)
    hits_before = reranker.vision_cache.hits
    # A new query about the same pages: vision outputs come from the cache.
    warm_other = reranker.score(QUERIES[1], pages)
    assert reranker.vision_cache.hits - hits_before == len(pages)
    reranker.clear_caches()
    cold_other = reranker.score(QUERIES[1], pages)
    assert warm_other == pytest.approx(cold_other, abs=TOL)
    # The same query again: scores come from the score cache, unchanged.
    assert reranker.score(QUERIES[1], pages) == cold_other
    assert cold != pytest.approx(cold_other, abs=1e-4)


def test_a_score_the_model_computes_as_nan_is_an_error_naming_the_pages_and_is_never_cached(tiny_checkpoints, sample_images):
    """A NaN hidden state (float16 overflow, or NaN in the weights) gave NaN scores: the store
    refused them after both models had run, and a benchmark run lost every query at its end."""
    reranker = load_reranker(A, model_path=str(tiny_checkpoints.reranker), device="cpu")
    pages = sample_images[:2]
    expected = reranker.score(QUERIES[0], pages)
    reranker.clear_caches()
    norm = reranker.backbone.language_model.norm.weight
    kept = norm.detach().clone()
    with torch.no_grad():
        norm.fill_(float("nan"))
    with pytest.raises(scoring_module.NonFiniteScores) as raised:
        reranker.score(QUERIES[0], [pages[0], pages[1], pages[0]])
    assert str(raised.value) == ("Qwen3-VL-Reranker-2B computed nan instead of a score for 3 of 3 page(s) (no. 1, no. 2, "
                                 "no. 3) in float32: its activations overflowed or its weights hold NaN")
    assert raised.value.pages == [0, 1, 2] and np.isnan(raised.value.value)  # the page given twice, at both places
    import pickle  # as an error crosses from ZeroGPU's worker process

    copied = pickle.loads(pickle.dumps(raised.value))
    assert str(copied) == str(raised.value) and copied.pages == [0, 1, 2]
    assert len(reranker.score_cache) == 0
    with torch.no_grad():
        norm.copy_(kept)
    assert reranker.score(QUERIES[0], pages) == pytest.approx(expected, abs=TOL)  # nothing stale was kept


def test_overlapped_preparation_equals_sequential(tiny_checkpoints, sample_images):
    sequential = load_reranker(A, model_path=str(tiny_checkpoints.reranker), device="cpu", overlap=False)
    overlapped = load_reranker(A, model_path=str(tiny_checkpoints.reranker), device="cpu", overlap=True)
    pages = odd_pages(sample_images)
    assert overlapped.score(QUERIES[0], pages, batch_size=2) == pytest.approx(
        sequential.score(QUERIES[0], pages, batch_size=2), abs=TOL
    )


@pytest.mark.parametrize("key", [A, B])
def test_pages_resized_on_the_device_score_as_pages_resized_by_pillow(tiny_rerankers, sample_images, key):
    """What a GPU does (`resize_on_device`, here on the CPU): the workers leave the pages full
    size and `resample.bicubic` resizes them; the same pixels, so the very same scores. Under A's
    rule a page with a colour key is still resized by Pillow (the key goes white after the resize)."""
    reranker = tiny_rerankers[key]
    assert not reranker.resize_on_device  # the default on a CPU: Pillow is faster there
    _, keyed = colour_keyed(sample_images[3], "RGB")
    pages = [sample_images[0], sample_images[5], keyed, *transparent_and_thin_pages(sample_images)]
    reranker.clear_caches()
    by_pillow = reranker.score(QUERIES[0], pages, batch_size=3)
    reranker.clear_caches()
    reranker.resize_on_device = True
    try:
        batch = reranker.prepare_batch(reranker.prompt(QUERIES[0]), pages[:3], ["p0", "p5", "keyed"], [0, 1, 2])
        sizes = [tuple(pending.result().shape[:2]) for pending in batch.pending_pixels]
        on_device = reranker.score(QUERIES[0], pages, batch_size=3)
    finally:
        reranker.resize_on_device = False
        reranker.clear_caches()
    grid_sizes = [(int(h) * 16, int(w) * 16) for _, h, w in batch.image_grid_thw]
    assert sizes[:2] == [(page.height, page.width) for page in pages[:2]] != grid_sizes[:2]  # left full size
    # The keyed page: A's rule lays its key on white after the resize, so Pillow resizes it; B's
    # lays it on white first, and the device resizes the result.
    assert sizes[2] == (grid_sizes[2] if key == A else (keyed.height, keyed.width))
    assert on_device == by_pillow


def test_the_vision_encoder_is_given_what_it_would_derive_from_the_grids(tiny_rerankers, sample_images, monkeypatch):
    """Made on the CPU (`vision_inputs`), with the grids left there: on a GPU nothing in a chunk
    then reads a device tensor back, and the CPU queues the next chunk while this one runs."""
    reranker = tiny_rerankers[A]
    calls = []
    encode = reranker.backbone.get_image_features

    def recording(pixel_values, grids, **given):
        calls.append((grids.device.type, set(given)))
        return encode(pixel_values, grids, **given)

    monkeypatch.setattr(reranker.backbone, "get_image_features", recording)
    reranker.clear_caches()
    reranker.score(QUERIES[0], sample_images[:3], batch_size=3)
    reranker.clear_caches()
    derived = {"interp_indices", "interp_weights", "position_ids", "cu_seqlens", "max_seqlen"}
    assert calls and all(device == "cpu" and derived <= given for device, given in calls)


@pytest.mark.parametrize("on_workers", [True, False])
def test_the_encoders_grid_inputs_are_made_on_a_page_worker_after_their_chunks_pixels(
        tiny_rerankers, sample_images, monkeypatch, on_workers):
    """On a GPU (`grid_inputs_on_workers`) not on the calling thread, which would leave the device
    idle while it made them (~8 ms before a cold call's first chunk): a page worker makes each
    chunk's, queued right after that chunk's pixels. On a CPU (the default here) the calling
    thread makes them. Either way the encoder is given what was made, one call per chunk."""
    import threading

    from reranker import vision_inputs

    reranker = tiny_rerankers[A]
    assert reranker.grid_inputs_on_workers is False  # the CPU default
    queued, made, given = [], [], []
    submit, on_cpu, encode = reranker._submit, vision_inputs.on_cpu, reranker.backbone.get_image_features

    def recording_submit(function, *args, **options):
        queued.append(function.__name__)
        return submit(function, *args, **options)

    def recording_on_cpu(backbone, grids):
        values = on_cpu(backbone, grids)
        made.append((threading.current_thread().name, values["position_ids"]))
        return values

    def recording_encode(pixel_values, grids, **inputs):
        given.append(inputs["position_ids"])
        return encode(pixel_values, grids, **inputs)

    monkeypatch.setattr(reranker, "_submit", recording_submit)
    monkeypatch.setattr(vision_inputs, "on_cpu", recording_on_cpu)
    monkeypatch.setattr(reranker.backbone, "get_image_features", recording_encode)
    monkeypatch.setattr(reranker, "vision_chunk", 2)
    monkeypatch.setattr(reranker, "grid_inputs_on_workers", on_workers)
    reranker.clear_caches()
    try:
        reranker.score(QUERIES[0], sample_images[:5], batch_size=5)
    finally:
        reranker.clear_caches()
    # even_chunks(5, 2): 2, 2, 1 pages; each chunk's pixels, then its grid inputs.
    queued = [name for name in queued if name != "page_key"]  # (the pages' hashes, queued first)
    pixels, grid_inputs = "encoder_pixels", "recording_on_cpu"
    assert queued == [pixels, pixels, grid_inputs, pixels, pixels, grid_inputs, pixels, grid_inputs]
    assert [name.startswith("page-prep") for name, _ in made] == [on_workers] * 3
    assert len(given) == 3 and all(a is b for (_, a), b in zip(made, given))


def test_a_batchs_token_tensors_are_built_after_its_vision_work_is_queued(tiny_rerankers, sample_images, monkeypatch):
    """So that on a GPU the CPU builds them (M-RoPE positions and all) while the device runs the
    vision encoder, instead of before it starts."""
    reranker = tiny_rerankers[A]
    events = []
    encode, positions = reranker.backbone.get_image_features, scoring_module.mrope_positions
    monkeypatch.setattr(reranker.backbone, "get_image_features", lambda *a, **k: (events.append("vision"), encode(*a, **k))[1])
    monkeypatch.setattr(scoring_module, "mrope_positions", lambda *a: (events.append("tokens"), positions(*a))[1])
    reranker.clear_caches()
    reranker.score(QUERIES[0], sample_images[:4], batch_size=2)
    reranker.clear_caches()
    assert events == ["vision", "tokens", "vision", "tokens"]


def test_a_page_over_the_full_size_limit_is_resized_by_pillow_even_for_the_device(tiny_rerankers, sample_images, monkeypatch):
    """A full-size page waits in pinned memory for the device: past the limit Pillow resizes it first."""
    budget = tiny_rerankers[A].budget
    page = sample_images[0]
    by_pillow = scoring_module.encoder_pixels(page, budget)
    assert tuple(by_pillow.shape) == (*smart_resize(page.height, page.width, max_pixels=budget.max_pixels), 3)
    full_size = scoring_module.encoder_pixels(page, budget, resize=False)  # Pillow's own memory: RGB and a padding byte
    assert tuple(full_size.shape) == (page.height, page.width, 4)
    assert torch.equal(full_size[..., :3], torch.from_numpy(np.array(page)))
    monkeypatch.setattr(scoring_module, "FULL_SIZE_PIXELS_LIMIT", page.width * page.height - 1)
    assert torch.equal(scoring_module.encoder_pixels(page, budget, resize=False), by_pillow)


@pytest.mark.parametrize("key", [A, B])
def test_some_pages_cached_and_some_not_in_one_call_equals_the_plain_path(tiny_rerankers, sample_images, monkeypatch, key):
    """A new query over an upload whose first pages were seen before: the cached pages' vision
    outputs and the others' fresh ones meet in the same batches."""
    reranker = tiny_rerankers[key]
    pages = odd_pages(sample_images)
    reranker.clear_caches()
    plain = reranker.score(QUERIES[0], pages, batch_size=4)
    reranker.clear_caches()
    reranker.score(QUERIES[1], pages[:2] + [pages[4]], batch_size=4)  # seen before, under another query
    reranker.prefix_cache.clear()  # B would otherwise reuse whole prefixes, not the vision outputs
    encoded = count_encoded(monkeypatch, reranker)
    assert reranker.score(QUERIES[0], pages, batch_size=4) == pytest.approx(plain, abs=TOL)
    assert sum(encoded) == len(pages) - 3


def count_encoded(monkeypatch, reranker) -> list[int]:
    """Pages per vision-encoder call from now on."""
    encoded = []
    real = reranker.backbone.get_image_features
    monkeypatch.setattr(reranker.backbone, "get_image_features",
                        lambda pixels, grids, **k: encoded.append(len(grids)) or real(pixels, grids, **k))
    return encoded


@pytest.mark.parametrize("batch_size", [1, 2, 5])
def test_a_page_given_twice_in_one_call_is_scored_once(tiny_rerankers, sample_images, monkeypatch, batch_size):
    reranker = tiny_rerankers[A]
    pages = sample_images[:4] + [sample_images[0], sample_images[2]]
    reranker.clear_caches()
    plain = reranker.score(QUERIES[0], sample_images[:4])
    reranker.clear_caches()
    encoded = count_encoded(monkeypatch, reranker)
    reported = []
    scores = reranker.score(QUERIES[0], pages, batch_size=batch_size, progress=lambda done, total: reported.append(done))
    assert sum(encoded) == 4 and scores == pytest.approx(plain + [plain[0], plain[2]], abs=TOL)
    assert reported[0] == 0 and reported[-1] == len(pages) and reported == sorted(reported)


def test_the_vision_cache_holds_each_pages_own_outputs_so_its_bound_is_the_memory_held(tiny_checkpoints, sample_images):
    """Each page's outputs are views of its whole chunk's tensors: a cache holding one page kept
    the chunk's eight alive, several times the bytes it counted and was bounded by."""
    reranker = load_reranker(A, model_path=str(tiny_checkpoints.reranker), device="cpu", batch_size=8, vision_chunk=8)
    pages = sample_images[:8]
    reranker.score(QUERIES[0], pages[:1])
    one_page = reranker.vision_cache.size
    reranker.clear_caches()
    reranker.vision_cache.capacity = int(one_page * 8.5)  # room for all eight, counted by their own bytes
    reranker.score(QUERIES[0], pages)
    tensors = [t for (embeds, deepstack), _ in reranker.vision_cache._items.values() for t in (embeds, *deepstack)]
    held = {t.untyped_storage().data_ptr(): t.untyped_storage().nbytes() for t in tensors}
    assert len(reranker.vision_cache) == 8 and len(held) == len(tensors)  # no two pages share a tensor
    assert sum(held.values()) == reranker.vision_cache.size <= reranker.vision_cache.capacity


def test_scoring_lets_go_of_each_cached_vision_output_once_its_batch_is_prepared(tiny_rerankers, sample_images):
    """Cached outputs are taken up front (so the call's own new outputs cannot push them out of
    the LRU first), but held no longer than their batch: memory stays within about the cache."""
    import gc
    import weakref

    from reranker.scoring import page_key

    reranker = tiny_rerankers[A]
    pages = sample_images[:3]
    reranker.clear_caches()
    reranker.score(QUERIES[0], pages)
    keys = [page_key(page) for page in pages]
    outputs = {i: weakref.ref(reranker.vision_cache.get(reranker._vision_key(keys[i], reranker.budget))[0]) for i in range(3)}
    prompt_ids = reranker.tokenizer(reranker.prompt(QUERIES[1]))["input_ids"]
    batches = reranker._prepared_batches(prompt_ids, pages, keys, [0, 1, 2], reranker.budget, 1)
    first = next(batches)
    reranker.vision_cache.clear()  # the LRU lets go of all three
    done = first.indices[0]
    del first  # scored
    second = next(batches)  # the third is being prepared meanwhile
    gc.collect()
    assert outputs[done]() is None  # its batch is gone: nothing holds it
    assert all(outputs[i]() is not None for i in range(3) if i != done)  # their batches are still to come
    del second
    list(batches)


@pytest.mark.parametrize("batch_size", [1, 2, 5, 64])
def test_any_batch_size_gives_the_same_scores(tiny_rerankers, sample_images, batch_size):
    reranker = tiny_rerankers[B]
    reranker.clear_caches()
    reference = reranker.score(QUERIES[2], sample_images[:5], batch_size=1)
    reranker.clear_caches()
    assert reranker.score(QUERIES[2], sample_images[:5], batch_size=batch_size) == pytest.approx(reference, abs=TOL)


@pytest.mark.parametrize("vision_chunk", [1, 2, 4, 8])
def test_any_vision_chunk_gives_the_same_scores(tiny_rerankers, sample_images, vision_chunk):
    """The vision encoder takes the pages in chunks of even size (6 pages by 4: 3 and 3); any
    chunking gives the scores of one page at a time."""
    reranker = tiny_rerankers[A]
    pages = odd_pages(sample_images)
    before = reranker.vision_chunk
    try:
        reranker.vision_chunk = 1
        reranker.clear_caches()
        reference = reranker.score(QUERIES[0], pages)
        reranker.vision_chunk = vision_chunk
        reranker.clear_caches()
        assert reranker.score(QUERIES[0], pages) == pytest.approx(reference, abs=TOL)
    finally:
        reranker.vision_chunk = before
        reranker.clear_caches()


def test_vision_chunks_are_even_and_keep_the_pages_in_order():
    assert [len(chunk) for chunk in scoring_module.even_chunks(25, 8)] == [7, 6, 6, 6]  # not 8, 8, 8, 1
    assert [len(chunk) for chunk in scoring_module.even_chunks(16, 8)] == [8, 8]
    assert [len(chunk) for chunk in scoring_module.even_chunks(9, 8)] == [5, 4]
    assert scoring_module.even_chunks(0, 8) == []
    for count in range(1, 40):
        for most in (1, 3, 8):
            chunks = scoring_module.even_chunks(count, most)
            assert sum(chunks, []) == list(range(count))
            assert len(chunks) == -(-count // most) and max(map(len, chunks)) - min(map(len, chunks)) <= 1


def test_the_language_model_runs_causal_without_a_mask_on_padding_moved_behind_the_tokens(tiny_rerankers, sample_images):
    """Left padding needs a mask, and SDPA's fused kernel then computes every score of the square;
    with each row's padding moved after its tokens, plain causal attention (no mask) gives the same
    scores (the reference-equality tests hold them) at half the attention work. The batch moved:
    each row's tokens and M-RoPE positions first, in order, then its padding. B keeps the prefix
    cache's left-padded layout when it keeps page prefixes (its cache is cut from that)."""
    reranker = tiny_rerankers[A]
    pages = odd_pages(sample_images)
    batch = reranker.prepare_batch(reranker.prompt(QUERIES[0]), pages, [f"p{i}" for i in range(len(pages))],
                                   list(range(len(pages))))
    lengths = batch.attention_mask.sum(dim=1)
    assert len(set(lengths.tolist())) > 1  # real padding
    input_ids, types, positions, last = scoring_module.right_padded(batch)
    width = batch.input_ids.shape[1]
    for row, length in enumerate(lengths.tolist()):
        assert torch.equal(input_ids[row, :length], batch.input_ids[row, width - length:])
        assert torch.equal(types[row, :length], batch.mm_token_type_ids[row, width - length:])
        assert torch.equal(positions[:, row, :length], batch.position_ids[:, row, width - length:])
        assert (input_ids[row, length:] == reranker.tokenizer.pad_token_id).all() and not types[row, length:].any()
        assert last[row] == length - 1
    masks = []
    for key in (A, B):
        reranker = tiny_rerankers[key]
        forward = reranker.backbone.forward

        def recording(*args, forward=forward, **kwargs):
            masks.append((key, kwargs.get("attention_mask")))
            return forward(*args, **kwargs)

        reranker.backbone.forward = recording
        try:
            reranker.clear_caches()
            reranker.score(QUERIES[0], pages, batch_size=len(pages))
        finally:
            del reranker.backbone.forward
            reranker.clear_caches()
    assert [key for key, mask in masks if mask is None] == [A]
    assert [key for key, mask in masks if mask is not None] == ([B] if tiny_rerankers[B].reuses_prefix else [])


def test_prepared_inputs_equal_what_the_processor_builds(tiny_rerankers, sample_images):
    """Our placeholder expansion and padding give the processor's own ids, masks and patches."""
    from reranker.imaging import resize_to_budget

    for key in (A, B):
        reranker = tiny_rerankers[key]
        reranker.clear_caches()
        prompt = reranker.prompt(QUERIES[0])
        pages = [sample_images[0], sample_images[5]]
        batch = reranker.prepare_batch(prompt, pages, ["p0", "p5"], [0, 1])
        budget = reranker.budget
        resized = [resize_to_budget(page, budget.min_pixels, budget.max_pixels) for page in pages]
        expected = reranker.processor(text=[prompt] * 2, images=resized, do_resize=False, padding=True, return_tensors="pt")
        for name in ("input_ids", "attention_mask", "mm_token_type_ids", "image_grid_thw"):
            assert torch.equal(getattr(batch, name).to(expected[name].dtype), expected[name]), name
        # What the vision encoder gets: the pages' uint8 pixels, patchified as the model will.
        pixel_values = scoring_module.patchify([pending.result() for pending in batch.pending_pixels], **batch.patch_options)
        assert torch.equal(pixel_values.to(expected["pixel_values"].dtype), expected["pixel_values"])
        positions, _ = reranker.backbone.get_rope_index(**{name: expected[name] for name in ("input_ids", "mm_token_type_ids", "image_grid_thw", "attention_mask")})
        assert torch.equal(batch.position_ids, positions)  # the model's own M-RoPE positions


def test_progress_reports_every_batch(tiny_rerankers, sample_images):
    reranker = tiny_rerankers[A]
    reranker.clear_caches()
    seen = []
    reranker.score(QUERIES[0], sample_images[:5], batch_size=2, progress=lambda done, total: seen.append((done, total)))
    assert seen == [(0, 5), (2, 5), (4, 5), (5, 5)]


# ----- pixel budget ------------------------------------------------------------------------------
@pytest.mark.parametrize("size", [(40, 40), (300, 2000), (1621, 1191), (6000, 400), (10000, 8000), (33, 6000)])
def test_visual_tokens_never_exceed_the_budget(tiny_rerankers, size):
    page = Image.new("RGB", size, (120, 120, 120))
    for key, reranker in tiny_rerankers.items():
        for max_pixels in (reranker.spec.max_pixels, reranker.spec.max_pixels_limit, 256 * 32 * 32):
            budget_tokens = max_pixels // (32 * 32)
            batch = reranker.prepare_batch(reranker.prompt("q"), [page], ["x"], [0], reranker._budget(max_pixels))
            tokens = int(batch.image_grid_thw.prod()) // 4
            assert tokens <= budget_tokens, (key, size, max_pixels)
            assert int((batch.input_ids == reranker.image_token_id).sum()) == tokens
            height, width = smart_resize(size[1], size[0], min_pixels=reranker.spec.min_pixels, max_pixels=max_pixels)
            assert height % 32 == 0 and width % 32 == 0


def test_budget_outside_the_models_range_is_refused(tiny_rerankers, sample_images):
    with pytest.raises(ValueError, match="image budget"):
        tiny_rerankers[A].score("q", sample_images[:1], max_pixels=10_000_000)


def test_a_budget_must_be_a_whole_number_and_one_given_as_a_float_is_the_same_budget(tiny_rerankers):
    reranker = tiny_rerankers[A]
    assert reranker.settings_text(200_000.0) == reranker.settings_text(200_000)  # a float made another key
    for wrong in (200_000.5, "5e5", True, float("nan"), float("inf")):
        with pytest.raises(ValueError, match=r"image budget must be a whole number of pixels, got"):
            reranker.settings_text(wrong)
    # Past float's range: an OverflowError escaped (`score --max-pixels 1e400`'s digits printed a traceback).
    with pytest.raises(ValueError, match=r"^Qwen3-VL-Reranker-2B: image budget of 401 digits is outside \[4096, 1843200\]$"):
        reranker.settings_text(10**400)


def test_a_per_call_budget_changes_the_scores_and_is_cached_separately(tiny_rerankers, sample_images):
    reranker = tiny_rerankers[A]
    small = reranker.score(QUERIES[0], sample_images[:2], max_pixels=64 * 32 * 32)
    default = reranker.score(QUERIES[0], sample_images[:2])
    assert small != pytest.approx(default, abs=1e-4)
    assert reranker.settings_text(64 * 32 * 32) != reranker.settings_text()


# ----- errors users meet --------------------------------------------------------------------------
def test_unknown_model_lists_the_valid_keys():
    with pytest.raises(UnknownModelError) as caught:
        load_reranker("qwen-giant")
    message = str(caught.value)
    assert "qwen-giant" in message and all(key in message for key in MODELS)


def test_unreachable_weights_give_one_clear_message(tmp_path, tiny_checkpoints):
    with pytest.raises(LoadError) as caught:
        load_reranker(A, model_path=str(tmp_path / "missing"), device="cpu")
    message = str(caught.value)
    assert "Qwen3-VL-Reranker-2B" in message and "RERANKER_QWEN3_VL_RERANKER_2B_MODEL" in message
    assert "Traceback" not in message and len(message.splitlines()) == 1
    assert f"from '{tmp_path / 'missing'}': no such folder" in message and "Repo id" not in message
    with pytest.raises(LoadError, match="RERANKER_QWEN3_RERANKER_MM_2B_ADAPTER .*adapter_config.json"):
        load_reranker(B, model_path=str(tiny_checkpoints.base), adapter_path="./no/adapter", device="cpu")


def test_a_local_folder_without_a_model_says_what_it_lacks_not_how_to_go_offline(tmp_path, tiny_checkpoints):
    """An empty folder, or the adapter's given as the model's: transformers' message was cut at
    300 characters mid-word ("…containing a preproce.") and followed by advice for the offline."""
    (tmp_path / "empty").mkdir()
    with pytest.raises(LoadError) as caught:
        load_reranker(A, model_path=str(tmp_path / "empty"), device="cpu")
    message = str(caught.value)
    assert message.startswith(f"Could not load Qwen3-VL-Reranker-2B weights from the folder '{tmp_path / 'empty'}': "
                              "it has no config.json, preprocessor_config.json, tokenizer_config.json. Point "
                              "RERANKER_QWEN3_VL_RERANKER_2B_MODEL at the folder of the whole model")
    assert "network" not in message and len(message.splitlines()) == 1
    with pytest.raises(LoadError, match=r"\(an adapter's folder holds adapter_config.json: it goes in "
                                        r"RERANKER_QWEN3_RERANKER_MM_2B_ADAPTER\)"):
        load_reranker(B, model_path=str(tiny_checkpoints.adapter), device="cpu")


def test_hub_weights_offline_give_one_clear_message(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty-cache"))
    monkeypatch.delenv("RERANKER_QWEN3_RERANKER_MM_2B_MODEL", raising=False)
    with pytest.raises(LoadError) as caught:
        load_reranker(B, device="cpu")
    message = str(caught.value)
    assert "Qwen/Qwen3-VL-2B-Instruct" in message
    assert "RERANKER_QWEN3_RERANKER_MM_2B_MODEL" in message and "RERANKER_QWEN3_RERANKER_MM_2B_ADAPTER" in message


def test_environment_variables_point_at_local_weights(monkeypatch, tiny_checkpoints, sample_images, tiny_rerankers):
    for name, value in tiny_checkpoints.environment().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("RERANKER_DEVICE", "cpu")
    reranker = load_reranker(B)
    assert reranker.weights == str(tiny_checkpoints.base) and reranker.adapter == str(tiny_checkpoints.adapter)
    assert reranker.device.type == "cpu" and reranker.dtype == torch.float32
    tiny_rerankers[B].clear_caches()
    assert reranker.score(QUERIES[0], sample_images[:2]) == pytest.approx(
        tiny_rerankers[B].score(QUERIES[0], sample_images[:2]), abs=TOL
    )


@pytest.mark.filterwarnings("ignore:Found missing adapter keys")  # peft warns; we must fail
def test_an_adapter_that_does_not_land_fails_loudly(tiny_checkpoints, tmp_path):
    """A renamed tensor (as a transformers rename of a module would cause) must not load silently."""
    import shutil

    from safetensors.torch import load_file, save_file

    broken = tmp_path / "broken-adapter"
    shutil.copytree(tiny_checkpoints.adapter, broken)
    tensors = load_file(broken / "adapter_model.safetensors")
    renamed = {name.replace("visual.blocks.0.attn.qkv", "visual.blocks.0.attn.qkv_old"): t for name, t in tensors.items()}
    assert renamed.keys() != tensors.keys()
    save_file(renamed, broken / "adapter_model.safetensors")
    with pytest.raises(AdapterMismatchError, match="did not load completely"):
        load_reranker(B, model_path=str(tiny_checkpoints.base), adapter_path=str(broken), device="cpu")


def test_an_adapter_whose_values_did_not_land_fails_loudly(tiny_checkpoints, monkeypatch):
    """Every tensor on its module, but one not as the file has it (a silent conversion or
    transpose on the way): as wrong as a missing one, so loading stops too."""
    import peft

    real = peft.PeftModel.from_pretrained.__func__

    def from_pretrained(cls, *args, **kwargs):
        model = real(cls, *args, **kwargs)
        name, parameter = next((n, p) for n, p in model.named_parameters() if "lora_B" in n)
        with torch.no_grad():
            parameter.add_(1.0)
        return model

    monkeypatch.setattr(peft.PeftModel, "from_pretrained", classmethod(from_pretrained))
    with pytest.raises(AdapterMismatchError, match=r"did not load completely.*different values: \['[^']*lora_B"):
        load_reranker(B, model_path=str(tiny_checkpoints.base), adapter_path=str(tiny_checkpoints.adapter), device="cpu")


@pytest.mark.parametrize("page, error, message", [
    ("doc.png", TypeError, r"page 1: expected a PIL image or a Page, got str 'doc.png'; read files with"),
    (None, TypeError, r"page 1: expected a PIL image or a Page, got NoneType None"),
    (Image.new("RGB", (4020, 20)), ValueError, r"page 1: aspect ratio 201:1 is too extreme"),
    (Image.new("RGB", (0, 5)), ValueError, r"page 1: image has no pixels"),
])
def test_a_page_the_model_cannot_take_is_named_before_any_work(tiny_rerankers, sample_images, page, error, message):
    for reranker in tiny_rerankers.values():
        reranker.clear_caches()
        with pytest.raises(error, match=message):
            reranker.score("a query", [sample_images[0], page])
        assert len(reranker.vision_cache) == 0 and len(reranker.score_cache) == 0  # nothing was scored


@pytest.mark.parametrize("images", ["page.png", b"page.png", pathlib.Path("page.png"), "one image"])
def test_images_that_are_not_a_list_of_pages_are_refused_naming_the_argument(tiny_rerankers, sample_images, images):
    """A path was read character by character ("page 0: ... got str 'p'"), one image was "not iterable"."""
    images = sample_images[0] if images == "one image" else images
    with pytest.raises(TypeError, match=r"^images must be a list of PIL images or Pages, got \w+"):
        tiny_rerankers[A].score("a query", images)


def test_any_iterable_of_pages_is_scored_as_the_list(tiny_rerankers, sample_images):
    expected = tiny_rerankers[A].score("a query", sample_images[:2])
    assert tiny_rerankers[A].score("a query", (image for image in sample_images[:2])) == expected


@pytest.mark.parametrize("batch_size", [0, -1, 2.5])
def test_a_batch_size_that_is_not_a_whole_number_of_at_least_one_is_refused(tiny_rerankers, sample_images, batch_size):
    with pytest.raises(ValueError, match=f"batch_size must be a whole number of at least 1 .*got {batch_size}"):
        tiny_rerankers[A].score("a query", sample_images[:2], batch_size=batch_size)  # -1 was an IndexError


def test_empty_image_list_gives_no_scores(tiny_rerankers):
    assert tiny_rerankers[A].score("a query", []) == []


@pytest.mark.parametrize("query", ["", "   ", "\n\t ", "\u00a0\u200b", "\u200b\u2060\ufeff"])
def test_empty_query_is_refused_clearly(tiny_rerankers, sample_images, query):
    """Invisible characters too (a zero-width space is no whitespace to str.strip)."""
    for reranker in tiny_rerankers.values():
        with pytest.raises(QueryError, match="empty"):
            reranker.score(query, sample_images[:1])


def test_blank_means_invisible_by_unicode_category():
    """A character newer than Python's Unicode tables (str.isprintable calls it unprintable), or a
    private-use one, is something to read; spaces, zero-width spaces, joiners and a BOM are not."""
    from reranker.text_rules import is_blank

    assert not is_blank("\U0001FAE8") and not is_blank("\ue000") and not is_blank(" a ") and not is_blank("e\u0301")
    assert is_blank("") and is_blank(" \u200b\u2060\ufeff\n\u00a0") and is_blank("\u0301")  # an accent on nothing


@pytest.mark.parametrize("token", ["<|image_pad|>", "<|video_pad|>"])
def test_a_page_placeholder_token_in_the_query_or_instruction_is_refused_by_name(tiny_rerankers, sample_images, token):
    """Read as the page's place, it made A fail with "each sequence must hold exactly one image" in
    its column (as if the model were broken) while B, reusing its page prefix, scored it."""
    for reranker in tiny_rerankers.values():
        with pytest.raises(QueryError, match=rf"^the query contains {re.escape(token)}, the token that marks where"):
            reranker.score(f"a {token} b", sample_images[:1])
    with pytest.raises(QueryError, match=rf"^the instruction contains {re.escape(token)}"):
        tiny_rerankers[A].score("a query", sample_images[:1], instruction=f"Find {token}")
    # Other special tokens are read as the reference reads them (its processor parses them too).
    assert len(tiny_rerankers[A].score("a <|im_end|> b", sample_images[:1])) == 1


def test_very_long_query_is_truncated_like_the_reference(tiny_rerankers, full_models, sample_images):
    reranker = tiny_rerankers[A]
    model, processor = full_models[A]
    long_query = "revenue growth by segment " * 4000  # ~16k tokens in the tiny byte-level vocabulary
    page = sample_images[2]
    expected = qwen3_vl_reranker_score(model, processor, long_query, page, max_length=reranker.spec.max_length)
    reranker.clear_caches()
    assert reranker.score(long_query, [page]) == pytest.approx([expected], abs=TOL)
    batch = reranker.prepare_batch(reranker.prompt(long_query), [page], ["p"], [0])
    ids = batch.input_ids[0].tolist()
    assert len(ids) <= reranker.spec.max_length + reranker.tail_length
    tail = reranker.tokenizer(reranker.spec.tail)["input_ids"]
    assert ids[-len(tail) :] == tail  # the trailing special tokens survive


def test_a_long_query_for_b_is_read_whole_like_its_reference(tiny_rerankers, full_models, sample_images):
    """B's card calls the processor without truncation: past A's 10,240 tokens B still reads it all."""
    reranker = tiny_rerankers[B]
    model, processor = full_models[B]
    long_query = "revenue growth by segment " * 450  # ~12k tokens in the tiny vocabulary
    assert len(reranker.tokenizer(long_query)["input_ids"]) > 10240
    expected = qwen3_reranker_mm_score(model, processor, long_query, sample_images[2])
    reranker.clear_caches()
    assert reranker.score(long_query, [sample_images[2]]) == pytest.approx([expected], abs=TOL)


def test_a_query_too_long_for_b_is_refused_naming_the_model_and_a_still_ranks(tiny_rerankers, sample_images):
    from reranker import ranking
    from reranker.documents import load_files

    from .bad_inputs import SAMPLE_PAGES

    huge = "ab " * 60000  # over UNTRUNCATED_PROMPT_TOKENS in the tiny vocabulary
    with pytest.raises(ValueError, match="Qwen3RerankerMM-2B reads the whole query.*at most 32,768"):
        tiny_rerankers[B].score(huge, sample_images[:1])
    result = ranking.rank(load_files([str(path) for path in SAMPLE_PAGES[:2]]).pages, huge, tiny_rerankers)
    assert result.rankings[A].error is None and len(result.rankings[A].scores) == 2  # A truncates, as its reference
    assert "shorten the query" in result.rankings[B].error


def test_special_tokens_past_a_very_long_query_are_kept_as_the_reference_keeps_them(
    tiny_rerankers, full_models, sample_images, monkeypatch
):
    """The query is cut to max_length × CHARS_PER_TOKEN_BOUND characters before tokenizing,
    except when special tokens lie past the cut: A's reference keeps every one of them."""
    from reranker import scoring

    monkeypatch.setattr(scoring, "CHARS_PER_TOKEN_BOUND", 1)  # the cut at 10,240 characters
    reranker, (model, processor) = tiny_rerankers[A], full_models[A]
    query = "ab " * 5000 + "<|endoftext|>" * 3
    expected = qwen3_vl_reranker_score(model, processor, query, sample_images[0], max_length=reranker.spec.max_length)
    reranker.clear_caches()
    assert reranker.score(query, [sample_images[0]]) == pytest.approx([expected], abs=TOL)
    # One that begins before the cut and ends after it is kept too (it was cut in two).
    straddling = "x" * (10240 - 5) + "<|endoftext|>" + "y" * 100
    assert scoring.clean_query(straddling, 10240) == straddling
    assert scoring.clean_query("x" * 20_000, 10240) == "x" * 10240


def test_pages_may_be_page_objects_with_a_content_hash(tiny_rerankers, sample_images):
    from dataclasses import dataclass

    @dataclass
    class FakePage:
        image: Image.Image
        content_hash: str

    reranker = tiny_rerankers[A]
    pages = [FakePage(image, f"hash-{i}") for i, image in enumerate(sample_images[:2])]
    assert reranker.score("q", pages) == pytest.approx(reranker.score("q", sample_images[:2]), abs=TOL)


def test_pil_pages_are_hashed_on_the_page_workers_and_a_page_with_its_hash_is_not_hashed_again(
        tiny_rerankers, sample_images, monkeypatch):
    import threading

    from reranker.documents import Page
    from reranker.imaging import image_hash

    hashed_on = []
    real = scoring_module.page_key
    monkeypatch.setattr(scoring_module, "page_key", lambda page: hashed_on.append(threading.current_thread().name) or real(page))
    carried = Page("carried-hash", sample_images[1], "doc.pdf", 1, "doc-hash", "pdf")
    keys = tiny_rerankers[A]._page_keys([sample_images[0], carried, sample_images[2]])
    assert keys == [image_hash(sample_images[0]), "carried-hash", image_hash(sample_images[2])]
    assert len(hashed_on) == 2 and all(name.startswith("page-prep") for name in hashed_on)


def test_the_test_session_cannot_reach_the_network():
    import os

    assert os.environ["HF_HUB_OFFLINE"] == "1"
    with pytest.raises(RuntimeError, match="network"):
        socket.create_connection(("93.184.216.34", 80), timeout=1)
    with pytest.raises(OSError, match="look up 'huggingface.co'"):  # no DNS query leaves either
        socket.create_connection(("huggingface.co", 443), timeout=1)
    assert socket.getaddrinfo("localhost", 80) and socket.getaddrinfo("127.0.0.1", 80)


@pytest.mark.parametrize("query", QUERIES)
def test_prompts_render_without_loading_a_model(tiny_rerankers, query):
    """`render_prompt` (used by exports) gives exactly the processor's prompt."""
    from reranker.models import render_prompt

    for key, reranker in tiny_rerankers.items():
        assert render_prompt(get_spec(key), query) == reranker.prompt(query)
        if reranker.spec.takes_instruction:  # the other model leaves it out, with a warning (test above)
            assert render_prompt(get_spec(key), query, "Custom instruction.") == reranker.prompt(query, "Custom instruction.")


def test_hub_weights_without_network_fail_at_once_with_the_fix(monkeypatch, tmp_path):
    """Not offline-flagged, not cached, Hub unreachable: one clear error, not minutes of retries."""
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    probed = []
    real_probe = loading_module._hub_reachable
    monkeypatch.setattr(loading_module, "_hub_reachable", lambda endpoint: probed.append(endpoint) or real_probe(endpoint))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty-cache"))
    monkeypatch.delenv("RERANKER_QWEN3_VL_RERANKER_2B_MODEL", raising=False)
    with pytest.raises(LoadError) as caught:
        load_reranker(A, device="cpu")
    message = str(caught.value)
    assert "Qwen/Qwen3-VL-Reranker-2B" in message and "cannot be reached" in message
    assert "RERANKER_QWEN3_VL_RERANKER_2B_MODEL" in message and len(probed) == 1  # it asked the Hub, once
    # Said offline the older way (TRANSFORMERS_OFFLINE, which huggingface_hub reads too): no probe of the Hub.
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    monkeypatch.setattr(loading_module, "_hub_reachable", lambda endpoint: pytest.fail("the Hub was probed"))
    with pytest.raises(LoadError, match="cannot be reached"):
        load_reranker(A, device="cpu")


# ----- page prefix reuse (Qwen3RerankerMM puts the page before the query) ----------------------
def load_b(tiny_checkpoints, **options):
    return load_reranker(
        B, model_path=str(tiny_checkpoints.base), adapter_path=str(tiny_checkpoints.adapter), device="cpu", **options
    )


def test_only_a_prompt_with_the_page_first_reuses_page_prefixes(tiny_rerankers, tiny_checkpoints):
    assert tiny_rerankers[B].reuses_prefix
    assert not tiny_rerankers[A].reuses_prefix  # its query comes before the page
    assert not load_b(tiny_checkpoints, prefix_cache_bytes=0).reuses_prefix


@pytest.mark.parametrize("batch_size", [1, 4, 64])
def test_new_queries_over_kept_prefixes_equal_the_reference(tiny_rerankers, full_models, sample_images, batch_size):
    reranker = tiny_rerankers[B]
    model, processor = full_models[B]
    pages = odd_pages(sample_images)  # different prefix lengths, so the batched cache needs padding
    reranker.clear_caches()
    reranker.score(QUERIES[0], pages, batch_size=batch_size)  # cold: keeps every page's prefix
    assert len(reranker.prefix_cache) == len(pages)
    hits = reranker.prefix_cache.hits
    for query in QUERIES[1:]:
        expected = [qwen3_reranker_mm_score(model, processor, query, page) for page in pages]
        assert reranker.score(query, pages, batch_size=batch_size) == pytest.approx(expected, abs=TOL)
    assert reranker.prefix_cache.hits - hits == 2 * len(pages)


def test_kept_prefixes_skip_the_vision_encoder_and_the_page_tokens(tiny_rerankers, sample_images, monkeypatch):
    reranker = tiny_rerankers[B]
    pages = sample_images[:4]
    reranker.clear_caches()
    reranker.score(QUERIES[0], pages)
    lengths = []
    language_model = reranker.backbone.language_model
    original = language_model.forward

    def recording(*args, **kwargs):
        lengths.append(kwargs["inputs_embeds"].shape[1])
        return original(*args, **kwargs)

    monkeypatch.setattr(language_model, "forward", recording)
    monkeypatch.setattr(reranker.backbone, "get_image_features", lambda *a, **k: pytest.fail("vision encoder ran"))
    reranker.score(QUERIES[1], pages)
    suffix = reranker.tokenizer(f"Query : {QUERIES[1]} \nAre the picture and query related ?<|im_end|>\n<|im_start|>assistant\n")
    assert lengths and set(lengths) == {len(suffix["input_ids"])}


def test_a_call_mixing_kept_and_new_pages_equals_the_plain_path(tiny_rerankers, tiny_checkpoints, sample_images):
    reranker = tiny_rerankers[B]
    plain = load_b(tiny_checkpoints, prefix_cache_bytes=0)
    pages = odd_pages(sample_images)
    reranker.clear_caches()
    reranker.score(QUERIES[0], pages[:3])
    mixed = pages + pages[:2]  # three kept, three new, two repeated
    assert reranker.score(QUERIES[1], mixed, batch_size=2) == pytest.approx(plain.score(QUERIES[1], mixed), abs=TOL)
    assert len(reranker.prefix_cache) == len(pages)


def test_the_prefix_cache_is_bounded_by_bytes(tiny_rerankers, tiny_checkpoints, sample_images):
    tiny_rerankers[B].clear_caches()
    tiny_rerankers[B].score(QUERIES[0], sample_images[:1])
    ((prefix, _),) = tiny_rerankers[B].prefix_cache._items.values()
    small = load_b(tiny_checkpoints, prefix_cache_bytes=2 * prefix.nbytes + 1)
    pages = [page.resize(sample_images[0].size) for page in sample_images[:5]]  # one prefix size
    small.score(QUERIES[0], pages)
    assert len(small.prefix_cache) == 2 and small.prefix_cache.size <= small.prefix_cache.capacity
    plain = load_b(tiny_checkpoints, prefix_cache_bytes=0)
    assert small.score(QUERIES[1], pages) == pytest.approx(plain.score(QUERIES[1], pages), abs=TOL)


def test_truncation_that_reaches_the_prefix_keeps_nothing_and_scores_plainly(tiny_checkpoints, sample_images):
    """With a max_length shorter than the system prompt, truncation cuts into the page's prefix,
    which then depends on the query: it must not be kept or reused."""
    import dataclasses

    short = load_b(tiny_checkpoints)
    short.spec = dataclasses.replace(short.spec, max_length=20)
    plain = load_b(tiny_checkpoints, prefix_cache_bytes=0)
    plain.spec = short.spec
    pages = sample_images[:2]
    for query in QUERIES[:2]:
        assert short.score(query, pages) == pytest.approx(plain.score(query, pages), abs=TOL)
    assert len(short.prefix_cache) == 0


@pytest.mark.parametrize("query", [QUERIES[0], "revenue growth by segment " * 4000])
def test_positions_equal_the_models_own_rope_index(tiny_rerankers, sample_images, query):
    """Pages of different shapes (so padding), and a query long enough to be truncated."""
    for reranker in tiny_rerankers.values():
        pages = odd_pages(sample_images)
        batch = reranker.prepare_batch(reranker.prompt(query), pages, [str(i) for i in range(len(pages))], list(range(len(pages))))
        expected, _ = reranker.backbone.get_rope_index(
            batch.input_ids, mm_token_type_ids=batch.mm_token_type_ids, image_grid_thw=batch.image_grid_thw,
            attention_mask=batch.attention_mask,
        )
        assert torch.equal(batch.position_ids, expected)


@pytest.mark.parametrize("image_columns", [
    [3, 4, 5, 7],  # two runs of image tokens
    [3, 4, 5],  # fewer image tokens than the grid holds
    [],  # none
])
def test_positions_refuse_a_row_that_is_not_text_one_image_text(image_columns):
    """The one layout the fast M-RoPE positions assume; anything else is refused, not mis-numbered."""
    attention_mask = torch.tensor([[0, 1, 1, 1, 1, 1, 1, 1, 1], [1] * 9])
    image_mask = torch.zeros_like(attention_mask)
    image_mask[1, [2, 3, 4, 5]] = 1  # the second row is fine: a 2×2 merged grid
    image_mask[0, image_columns] = 1
    grids = torch.tensor([[1, 4, 4], [1, 4, 4]])
    with pytest.raises(ValueError, match="exactly one image"):
        scoring_module.mrope_positions(attention_mask, image_mask, grids, 2)
    image_mask[0] = image_mask[1]
    positions = scoring_module.mrope_positions(attention_mask, image_mask, grids, 2)
    # Row 1: text 0, 1; the image at (2, 2+r, 2+c) for r, c in 2×2; text after from 2 + max(2, 2) = 4.
    assert positions[:, 1].tolist() == [[0, 1, 2, 2, 2, 2, 4, 5, 6], [0, 1, 2, 2, 3, 3, 4, 5, 6], [0, 1, 2, 3, 2, 3, 4, 5, 6]]
    # Row 0 has one token of left padding, which gets 0: its tokens one column to the right.
    assert positions[:, 0].tolist() == [[0, 0, 1, 1, 1, 1, 3, 4, 5], [0, 0, 1, 1, 2, 2, 3, 4, 5], [0, 0, 1, 2, 1, 2, 3, 4, 5]]


def test_cache_sizes_come_from_the_environment(tiny_checkpoints, monkeypatch):
    monkeypatch.setenv("RERANKER_PREFIX_CACHE_MB", "0")
    monkeypatch.setenv("RERANKER_VISION_CACHE_MB", "1.5")
    reranker = load_b(tiny_checkpoints)
    assert not reranker.reuses_prefix and reranker.prefix_cache.capacity == 0
    assert reranker.vision_cache.capacity == int(1.5 * 2**20)
    assert load_b(tiny_checkpoints, prefix_cache_bytes=2**20).reuses_prefix  # an explicit size wins


@pytest.mark.parametrize("max_pixels", [10, 99_000_000])
def test_an_image_budget_outside_the_models_range_is_refused_at_load_before_the_weights(tmp_path, max_pixels):
    message = rf"^Qwen3RerankerMM-2B: image budget {max_pixels} px is outside \[65536, 1843200\]$"
    with pytest.raises(ValueError, match=message):  # not the LoadError that the missing weights would give
        load_reranker(B, model_path=str(tmp_path / "no-weights"), adapter_path=str(tmp_path / "no-adapter"),
                      device="cpu", max_pixels=max_pixels)


def test_a_bad_cache_size_in_the_environment_is_refused_before_the_weights(tmp_path, monkeypatch):
    monkeypatch.setenv("RERANKER_PREFIX_CACHE_MB", "lots")
    with pytest.raises(ValueError, match=r"^RERANKER_PREFIX_CACHE_MB='lots': expected a size in MB"):
        load_reranker(A, model_path=str(tmp_path / "no-weights"), device="cpu")


@pytest.mark.parametrize(("option", "value"), [("score_cache_entries", "x"), ("vision_cache_bytes", -5),
                                              ("prefix_cache_bytes", 1.5), ("score_cache_entries", True)])
def test_a_bad_cache_size_given_in_python_is_refused_before_the_weights(tmp_path, option, value):
    """A string failed only at the first score; a negative size silently held nothing."""
    with pytest.raises(ValueError, match=rf"^{option} must be a whole number of at least 0 \(None: the default\), got"):
        load_reranker(A, model_path=str(tmp_path / "no-weights"), device="cpu", **{option: value})


def test_the_dtype_comes_from_the_environment_and_a_bad_one_is_named(tiny_checkpoints, monkeypatch):
    monkeypatch.setenv("RERANKER_DTYPE", "bfloat16")
    assert load_b(tiny_checkpoints).dtype == torch.bfloat16
    assert load_b(tiny_checkpoints, dtype="float32").dtype == torch.float32  # an explicit dtype wins
    monkeypatch.setenv("RERANKER_DTYPE", "float8")
    with pytest.raises(ValueError, match="unknown dtype 'float8'"):
        load_b(tiny_checkpoints)


def test_a_kept_prefix_serves_only_its_own_image_budget(tiny_rerankers, tiny_checkpoints, sample_images):
    reranker = tiny_rerankers[B]
    plain = load_b(tiny_checkpoints, prefix_cache_bytes=0)
    pages = sample_images[:2]
    smaller = 256 * 32 * 32
    reranker.clear_caches()
    reranker.score(QUERIES[0], pages)  # kept at the default budget
    hits = reranker.prefix_cache.hits
    assert reranker.score(QUERIES[1], pages, max_pixels=smaller) == pytest.approx(
        plain.score(QUERIES[1], pages, max_pixels=smaller), abs=TOL
    )
    assert reranker.prefix_cache.hits == hits  # another budget, other tokens: not reused
    assert reranker.score(QUERIES[2], pages, max_pixels=smaller) == pytest.approx(
        plain.score(QUERIES[2], pages, max_pixels=smaller), abs=TOL
    )
    assert reranker.prefix_cache.hits == hits + len(pages)  # kept at that budget by the call before


def test_palette_images_with_the_same_indices_but_other_colours_are_different_pages(tiny_rerankers, sample_images):
    from reranker.imaging import image_hash

    reranker = tiny_rerankers[A]
    indexed = sample_images[0].convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    inverted = indexed.copy()
    inverted.putpalette([255 - value for value in indexed.getpalette()])
    assert indexed.tobytes() == inverted.tobytes() and image_hash(indexed) != image_hash(inverted)
    reranker.clear_caches()
    first, second = reranker.score(QUERIES[0], [indexed]), reranker.score(QUERIES[0], [inverted])  # one call each
    assert second != first  # not the first page's cached score
    reranker.clear_caches()
    assert second == pytest.approx(reranker.score(QUERIES[0], [inverted.convert("RGB")]), abs=TOL)


def test_damaged_weights_or_adapter_files_are_named_in_a_clear_error(tiny_checkpoints, tmp_path):
    import shutil

    reranker_copy = shutil.copytree(tiny_checkpoints.reranker, tmp_path / "reranker")
    weights = reranker_copy / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])  # cut short, as by an interrupted download
    with pytest.raises(LoadError, match="If the files there are damaged or incomplete") as caught:
        load_reranker(A, model_path=str(reranker_copy), device="cpu")
    assert str(reranker_copy) in str(caught.value)

    adapter_copy = shutil.copytree(tiny_checkpoints.adapter, tmp_path / "adapter")
    (adapter_copy / "adapter_config.json").write_text("{}")
    with pytest.raises(LoadError, match="If the files there are damaged or incomplete") as caught:
        load_b(tiny_checkpoints.__class__(tiny_checkpoints.reranker, tiny_checkpoints.base, adapter_copy))
    assert str(adapter_copy) in str(caught.value)


def test_compiled_models_score_as_eager_ones(sample_images):
    """`RERANKER_COMPILE=1` (torch.compile, a GPU option) changes the kernels, not the scores:
    cold, and warm (Qwen3RerankerMM's second query runs its compiled parts on kept page prefixes
    only). Pages of different sizes, so the dynamic shapes are exercised.

    And every compiled part stays compiled: Dynamo keeps at most 8 variants of a piece of code
    and past them runs it uncompiled, silently (here: fails). Compiled whole, the language
    model's layers became a variant each with Qwen3RerankerMM's KV cache, so a model deeper than
    8 layers (10 here; 28 in the 2B) ran most of them uncompiled."""
    import torch._dynamo

    from reranker.checkpoints import build_model, build_processor, build_tokenizer
    from reranker.loading import build_reranker

    pages = sample_images[:3]
    assert len({page.size for page in pages}) > 1
    tokenizer = build_tokenizer()
    processor = build_processor(tokenizer)
    torch._dynamo.reset()
    with torch._dynamo.config.patch(recompile_limit=8, fail_on_recompile_limit_hit=True):
        for key in (B, A):  # both models in one process, as in the app
            model = build_model("tiny", seed=0, tokenizer=tokenizer, text_layers=10)  # scores 0.04–0.99
            reranker = build_reranker(key, model, processor, device="cpu")
            eager = [reranker.score(query, pages) for query in QUERIES[:2]]
            reranker.clear_caches()
            reranker.compile()
            compiled = [reranker.score(query, pages) for query in QUERIES[:2]]
            for compiled_scores, eager_scores in zip(compiled, eager):
                assert compiled_scores == pytest.approx(eager_scores, abs=1e-5)
            if key == B:
                assert len(reranker.prefix_cache) == len(pages)  # the second query took the suffix path
        # Vision chunks of 1 to 10 pages: one compiled block serves them all (the per-page split
        # of SDPA's path used to specialise the block on the count, 10 variants here).
        reranker.vision_chunk = 16
        for count in range(1, 11):
            reranker.clear_caches()
            reranker.score(QUERIES[0], [page.resize((200 + 16 * i, 300)) for i, page in enumerate((pages * 4)[:count])],
                           batch_size=16)


def test_a_compiled_model_is_warmed_up_so_a_ranking_compiles_nothing(sample_images, caplog):
    """With `compile=True` (RERANKER_COMPILE=1) the model compiles as it loads, on made-up pages
    (`Reranker.warm_up`), not in a visitor's ranking: on an H200 the first ranking otherwise took
    21 s instead of 1.5, and the first one-page upload 7 s more. Here: after loading, real pages
    (other sizes), a second query over them, one page alone, a larger upload and pages of one
    size (a batch without padding has no attention mask) compile no new graph, and the warm-up
    leaves the caches empty."""
    import torch._dynamo
    from torch._dynamo.utils import counters

    from reranker.checkpoints import build_model, build_processor, build_tokenizer
    from reranker.loading import build_reranker

    tokenizer = build_tokenizer()
    processor = build_processor(tokenizer)
    torch._dynamo.reset()
    counters.clear()
    with caplog.at_level("INFO", logger="reranker.scoring"):
        rerankers = {key: build_reranker(key, build_model("tiny", seed=0, tokenizer=tokenizer), processor, device="cpu",
                                         compile=True) for key in (A, B)}
    assert counters["stats"]["unique_graphs"] > 0
    assert caplog.text.count("compiled for the shapes of a ranking in") == 2
    compiled_while_loading = counters["stats"]["unique_graphs"]
    for reranker in rerankers.values():
        assert len(reranker.vision_cache) == len(reranker.score_cache) == len(reranker.prefix_cache) == 0
        reranker.score(QUERIES[0], sample_images[:3])
        reranker.score(QUERIES[1], sample_images[:3])
        reranker.score(QUERIES[0], sample_images[3:4])
        reranker.score(QUERIES[0], [page.resize((page.width // 2, page.height // 2)) for page in sample_images[:6]])
        reranker.score(QUERIES[0], [page.resize((300, 400)) for page in sample_images[:2]])  # no padding: no mask
    assert counters["stats"]["unique_graphs"] == compiled_while_loading


def test_a_model_whose_compilation_fails_scores_uncompiled(sample_images, monkeypatch, caplog):
    """`RERANKER_COMPILE=1` where torch.compile cannot build its kernels (no C compiler, no
    Triton) must not take the model down: the warm-up's failure is logged and the model scores
    eagerly, as it would have without the setting."""
    from reranker.checkpoints import build_model, build_processor, build_tokenizer
    from reranker.loading import build_reranker
    from reranker.scoring import Reranker

    tokenizer = build_tokenizer()
    processor = build_processor(tokenizer)
    eager = build_reranker(A, build_model("tiny", seed=0, tokenizer=tokenizer), processor, device="cpu")
    expected = eager.score(QUERIES[0], sample_images[:2])

    def no_compiler(self):
        raise RuntimeError("InductorError: CppCompileError: C++ compile error\nmore lines")

    monkeypatch.setattr(Reranker, "warm_up", no_compiler)
    with caplog.at_level("WARNING", logger="reranker.scoring"):
        reranker = build_reranker(A, build_model("tiny", seed=0, tokenizer=tokenizer), processor, device="cpu", compile=True)
    assert ("Qwen3-VL-Reranker-2B: torch.compile failed (or its warm-up did), scoring uncompiled: RuntimeError: InductorError: "
            "CppCompileError: C++ compile error") in caplog.text
    assert all(part._compiled_call_impl is None for part in reranker._compiled_parts())
    assert reranker.score(QUERIES[0], sample_images[:2]) == pytest.approx(expected, abs=1e-6)
