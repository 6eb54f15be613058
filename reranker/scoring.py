"""Score (query, page image) pairs with a loaded reranker: P(yes) for each page (loading: `loading.py`).

What the reference code does, one pair per forward pass, is done here in batches:
  1. each page is resized into the spec's pixel budget by the model's own rule (`imaging.resize_to_budget`:
     qwen_vl_utils' for A, the image processor's for B): with Pillow on a pool of worker threads,
     or on a GPU by `resample.bicubic` (Pillow's arithmetic, the same pixels); then rescaled,
     normalised and patchified on the device with the image processor's exact arithmetic (`patchify`);
  2. the prompt is tokenized once; each page's sequence is that prompt with the image
     placeholder expanded to the page's visual-token count (exactly what the processor does);
  3. sequences are truncated as the reference truncates, grouped by length, left-padded (their
     tensors built while the device runs the vision encoder);
  4. the vision encoder runs, a few pages at a time as their pixels arrive, on the pages not in
     the vision cache, given what it derives from the page grids made on the CPU (`vision_inputs`:
     no step of it waits for the GPU); the language model runs on the batch with those vision
     outputs (`mm_encoder_outputs`), without a KV cache (except to keep page prefixes, below);
  5. score = sigmoid(h · (W[yes] − W[no])) for the last position's hidden state h, which equals
     sigmoid(logit_yes − logit_no) of the full LM head without computing the head.
Resizing for batch k+1 starts while batch k is on the device.

When the prompt puts the page before the query (Qwen3RerankerMM), the keys and values of the
prompt up to the page's end are kept per page (`prefix_cache`): a later query over that page runs
the language model on its own few suffix tokens only (see `prefix_cache.py`).
"""

from __future__ import annotations

import functools
import hashlib
import logging
import math
import numbers
import os
import threading
import time
import warnings
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image, ImageFile

from . import resample, vision_inputs
from .imaging import ImageRules, image_hash, resize_to_budget, to_rgb
from .lru import LRUCache
from .devices import default_batch_size, default_cache_bytes, to_device_without_waiting
from .pillow_memory import rgbx_view
from .models import ModelSpec, chat_messages
from .text_rules import is_blank, not_utf8
from .prefix_cache import PagePrefix, batch_cache, harvest, suffix_positions
from .workers import thread_pool

logger = logging.getLogger(__name__)

Progress = Callable[[int, int], None]  # (pairs scored so far, pairs in this call)
# A query longer than this many characters per allowed token cannot keep more tokens anyway;
# cutting it first bounds the tokenizer's work on a pasted novel. Qwen's longest token is 128
# bytes (a run of spaces, say), and a character is at least one byte.
CHARS_PER_TOKEN_BOUND = 128
# Longer than any special token ("<|object_ref_start|>" has 20 characters): one that begins this
# close before the cut may end after it.
_MARKER_SPAN = 32
# For a model whose reference never truncates (ModelSpec.max_length None): longer prompts are
# refused, naming the model, rather than cut (which would change the score) or run out of memory.
UNTRUNCATED_PROMPT_TOKENS = 32768


class QueryError(ValueError):
    """The query cannot be scored (empty, or not text)."""


class PromptTooLong(ValueError):
    """The query is longer than a model that reads it whole may read (that model's column says so)."""


class NonFiniteScores(RuntimeError):
    """The model computed NaN or infinity for some pages: its activations overflowed (float16
    does most easily) or its weights hold NaN. Those pages have no score; none is cached.
    `pages`: their places in the list scored (0-based, a page given twice at both); `value`: the
    first one's. `described(names)` says it with the pages' names (str: their places)."""

    def __init__(self, model: str, pages: list[int], value: float, total: int, dtype: str, hint: str):
        super().__init__(model, pages, value, total, dtype, hint)  # all in args: it pickles (ZeroGPU's worker)
        self.model, self.pages, self.value, self.total, self.dtype, self.hint = model, pages, value, total, dtype, hint

    def described(self, names: Sequence[str]) -> str:
        shown = ", ".join(names[:10]) + (", …" if len(names) > 10 else "")
        return (f"{self.model} computed {self.value} instead of a score for {len(self.pages)} of {self.total} "
                f"page(s) ({shown}) in {self.dtype}: {self.hint}")

    def __str__(self) -> str:
        return self.described([f"no. {index + 1}" for index in self.pages])


# Where the pixels of an image or a video go in a prompt. Typed in a query, a model would look
# for pixels there (the processor marks each as an image or video position; the reference code
# fails on an extra <|image_pad|>).
PLACEHOLDER_TOKENS = ("<|image_pad|>", "<|video_pad|>")


def check_text(text: str, what: str) -> None:
    """Refuse (QueryError) a query or instruction that is not text a tokenizer can read: a byte
    of another encoding than UTF-8 (Python hands such a byte in a command line over as a lone
    surrogate, which one model's tokenizer rejected and the other's crashed on), or one holding
    a page's placeholder token."""
    if not isinstance(text, str):
        raise QueryError(f"the {what} must be text, got {type(text).__name__}")
    if token := next((token for token in PLACEHOLDER_TOKENS if token in text), None):
        raise QueryError(f"the {what} contains {token}, the token that marks where a page's image goes in the "
                         "prompt: remove it")
    if problem := not_utf8(text):
        raise QueryError(f"the {what} is not valid text: {problem}")


def _image_list(images) -> list:
    """`images` as a list; one image or a path (a string would be read character by character)
    is refused, naming the argument."""
    if isinstance(images, (str, bytes, os.PathLike, Image.Image)) or not isinstance(images, Iterable):
        hint = "; read files with reranker.documents.load_files" if isinstance(images, (str, bytes, os.PathLike)) else ""
        raise TypeError(f"images must be a list of PIL images or Pages, got {type(images).__name__}{hint}")
    return list(images)


def _check_batch_size(batch_size: int | None) -> int | None:
    if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral)
                                   or batch_size < 1):
        raise ValueError(f"batch_size must be a whole number of at least 1 (None: the default), got {batch_size!r}")
    return None if batch_size is None else int(batch_size)


CACHE_OPTIONS = ("vision_cache_bytes", "score_cache_entries", "prefix_cache_bytes")


def check_cache_sizes(options: dict) -> None:
    """A cache size given to `Reranker` is a whole number of at least 0 (0: no cache) or None
    (the default): a string failed at the first score, and a negative one held nothing, unsaid."""
    for name in CACHE_OPTIONS:
        size = options.get(name)
        if size is not None and (isinstance(size, bool) or not isinstance(size, numbers.Integral) or size < 0):
            raise ValueError(f"{name} must be a whole number of at least 0 (None: the default), got {size!r}")


def check_query(query: str) -> None:
    """Refuse (QueryError) a query that is not text a tokenizer can read (`check_text`) or is blank."""
    check_text(query, "query")
    if is_blank(query):
        raise QueryError("the query is empty: type what you are looking for")


def clean_query(query: str, max_length: int | None) -> str:
    """The query checked (`check_query`), and cut where no more of it can reach the model."""
    check_query(query)
    bound = (max_length or UNTRUNCATED_PROMPT_TOKENS) * CHARS_PER_TOKEN_BOUND
    # Past `bound` characters no more of the query's text can be kept, but its special tokens
    # would be (the reference keeps every one): a query with any there is tokenized whole.
    if max_length is not None and len(query) > bound and "<|" not in query[bound - _MARKER_SPAN:]:
        return query[:bound]
    return query


def page_key(page) -> str:
    """Content id of a page: `Page.content_hash` when given a Page, else a hash of its pixels."""
    return getattr(page, "content_hash", None) or image_hash(decoded(page_image(page)))


_DECODING = threading.Lock()


def decoded(image: Image.Image) -> Image.Image:
    """`image` with its pixels read. `Image.open` reads the file at first use, and two threads
    doing so at once on one image corrupt it (an error, or wrong pixels that stay): the same
    image twice in one call, hashed on two page workers, or one image scored from two threads.
    So pages are read one at a time, each once (later calls find it read)."""
    if isinstance(image, ImageFile.ImageFile) and image.tile:
        with _DECODING:
            image.load()
    return image


def page_image(page) -> Image.Image:
    return page if isinstance(page, Image.Image) else page.image


def check_page(index: int, page, budget: Budget) -> None:
    """Refuse, naming its place in the list, a page that is not an image or one the model cannot
    take (no pixels, a side over 200× the other), before any work starts."""
    image = page if isinstance(page, Image.Image) else getattr(page, "image", None)
    if not isinstance(image, Image.Image):
        hint = "; read files with reranker.documents.load_files" if isinstance(page, (str, os.PathLike, bytes)) else ""
        raise TypeError(f"page {index}: expected a PIL image or a Page, got {type(page).__name__} {page!r:.80}{hint}")
    try:
        resize_dims(image, budget)
    except ValueError as error:
        raise ValueError(f"page {index}: {error}") from None


def truncate(ids: list[int], max_length: int, tail: int, special_ids: set[int]) -> list[int]:
    """The reference's truncation: keep the last `tail` tokens whole; before them keep every
    special token (image pads included) and the first non-special tokens that fit."""
    head, kept_tail = ids[: len(ids) - tail], ids[len(ids) - tail :]
    if len(head) <= max_length:
        return ids
    budget = max_length - sum(1 for token in head if token in special_ids)
    kept: list[int] = []
    for token in head:
        if token in special_ids:
            kept.append(token)
        elif budget > 0:
            kept.append(token)
            budget -= 1
    return kept + kept_tail


@dataclass(frozen=True)
class Budget:
    min_pixels: int
    max_pixels: int
    rules: ImageRules = "qwen_vl_utils"  # the model's rule (a model's caches are its own: not in the key)

    def key(self) -> str:
        return f"{self.min_pixels}-{self.max_pixels}"


@dataclass(frozen=True)
class PromptLayout:
    """A tokenized prompt around its one image placeholder.

    `reusable` is how many tokens of `after` (through `<|vision_end|>`) belong to the page's
    query-independent prefix, or None when the text before the page depends on the query.
    """

    before: list[int]
    after: list[int]
    reusable: int | None

    @property
    def prefix_id(self) -> str | None:
        if self.reusable is None:
            return None
        return hashlib.sha256(repr((self.before, self.after[: self.reusable])).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class TokenTensors:
    """A batch's language-model inputs, left-padded: [:, -1] is every row's last token."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    mm_token_type_ids: torch.Tensor
    position_ids: torch.Tensor  # M-RoPE positions (3, batch, width), computed on the CPU


@dataclass
class PreparedBatch:
    """One batch, in the batch's own order (`indices` into the call's pages).

    Each page that needs the vision encoder has its RGB pixels (uint8, H×W×3) being produced on a
    worker thread, so the device can start on the first pages while later ones are still being
    made; on a GPU, so are the encoder's inputs derived from each chunk's grids (`vision_chunks`).
    The token tensors are built when first read (`tokens`): `_forward` reads them after queueing
    the vision encoder's work, so the CPU builds them while the device runs it.
    """

    indices: list[int]
    page_keys: list[str]
    image_grid_thw: torch.Tensor
    cached_vision: list  # per page: its cached vision outputs, or None to run the encoder
    pending_pixels: list  # per page: a Future of its uint8 pixels when it needs the encoder, else None
    vision_chunks: list  # (rows, Future of `vision_inputs.on_cpu` over their grids): the encoder's calls
    patch_options: dict  # the image processor's patchify settings
    make_tokens: Callable[[], TokenTensors]
    prefix_id: str | None = None  # set when this batch's page prefixes are kept for later queries
    prefix_lengths: list = None  # per row: its reusable prefix length, or None (truncation reached it)

    @functools.cached_property
    def tokens(self) -> TokenTensors:
        return self.make_tokens()

    input_ids = property(lambda self: self.tokens.input_ids)
    attention_mask = property(lambda self: self.tokens.attention_mask)
    mm_token_type_ids = property(lambda self: self.tokens.mm_token_type_ids)
    position_ids = property(lambda self: self.tokens.position_ids)


class Reranker:
    """One loaded reranker. Thread-safe: calls share the model and the caches, one at a time."""

    def __init__(
        self,
        spec: ModelSpec,
        backbone,
        processor,
        score_vector: torch.Tensor,
        *,
        device: torch.device,
        dtype: torch.dtype,
        weights: str,
        adapter: str | None = None,
        max_pixels: int | None = None,
        batch_size: int | None = None,
        vision_cache_bytes: int | None = None,
        score_cache_entries: int | None = None,
        overlap: bool = True,
        compile: bool = False,
        vision_chunk: int | None = None,
        prefix_cache_bytes: int | None = None,
        resize_on_device: bool | None = None,
    ):
        self.spec = spec
        self.backbone = backbone
        self.processor = processor
        self.tokenizer = processor.tokenizer
        self.score_vector = score_vector  # float32 (hidden,) on device: W[yes] − W[no]
        self.device = device
        self.dtype = dtype
        self.weights = weights
        self.adapter = adapter
        self.budget = Budget(spec.min_pixels, spec.check_budget(max_pixels), spec.image_rules)
        self.batch_size = _check_batch_size(batch_size) or default_batch_size(device)
        self.overlap = overlap
        # On a GPU the pages are resized there (`resample`): Pillow took 20–70 ms of CPU a page,
        # and the first vision chunk of a cold batch waited for it. On a CPU Pillow is faster.
        self.resize_on_device = device.type == "cuda" if resize_on_device is None else resize_on_device
        # On a GPU a page worker makes what the vision encoder derives from the grids, so the device
        # never waits for the main thread to. On a CPU there is nothing to overlap, and torch's CPU
        # ops on a second thread (its own OpenMP team) slowed the main thread's parallel ops ~3×.
        self.grid_inputs_on_workers = device.type == "cuda"
        check_cache_sizes({"vision_cache_bytes": vision_cache_bytes, "score_cache_entries": score_cache_entries,
                           "prefix_cache_bytes": prefix_cache_bytes})
        if vision_cache_bytes is None:
            vision_cache_bytes = default_cache_bytes(device, cpu=512 * 2**20, variable="RERANKER_VISION_CACHE_MB")
        self.vision_cache = LRUCache(vision_cache_bytes)
        self.score_cache = LRUCache(200_000 if score_cache_entries is None else score_cache_entries)
        if prefix_cache_bytes is None:  # a 2B page prefix: ~115 kB per token in bf16, ~65 MB at 564,480 px
            prefix_cache_bytes = default_cache_bytes(device, cpu=2**30, variable="RERANKER_PREFIX_CACHE_MB")
        self.prefix_cache = LRUCache(prefix_cache_bytes)
        self.image_token_id = self.tokenizer.convert_tokens_to_ids("<|image_pad|>")
        self.vision_end_id = self.tokenizer.convert_tokens_to_ids("<|vision_end|>")
        self.special_ids = set(self.tokenizer.all_special_ids)
        self.tail_length = len(self.tokenizer(spec.tail)["input_ids"])
        self._lock = threading.Lock()
        self.vision_chunk = vision_chunk or 8
        self.reuses_prefix = prefix_cache_bytes > 0 and self._prefix_is_query_independent()
        if compile:
            self.compile()
            try:
                self.warm_up()
            except Exception as error:  # e.g. no C compiler or Triton for the kernels: score uncompiled
                self.uncompile()
                self.clear_caches()
                logger.warning("%s: torch.compile failed (or its warm-up did), scoring uncompiled: %s: %s", spec.label,
                               type(error).__name__, str(error).splitlines()[0] if str(error) else "")

    def warm_up(self) -> None:
        """Score once the shapes a ranking meets, then empty the caches: after `compile`, so that
        torch.compile compiles now, not during a visitor's ranking. Measured on an H200 without
        it: the first ranking took 21 s instead of 1.5, and the first one-page upload 7 s more.
        The shapes: pages of different sizes (a padded batch: an attention mask), the same pages
        for a new query (the cached paths), one page alone (Dynamo specialises a batch of one),
        two pages of one size (no padding: no mask, as in most PDFs)."""
        from PIL import ImageDraw

        started = time.perf_counter()
        pages = []
        for index, size in enumerate(((1240, 1754), (1700, 2200), (2000, 1400), (1275, 1650), (1275, 1650), (1275, 1650))):
            page = Image.new("RGB", size, "white")
            draw = ImageDraw.Draw(page)
            for top in range(100 + index * 7, size[1] - 100, 48):  # lines of "text", other on each page
                draw.rectangle((100, top, size[0] - 100 - top % 300, top + 20), fill="black")
            pages.append(page)
        self.score("warm-up", pages[:3])
        self.score("a second warm-up question", pages[:3])
        self.score("warm-up", pages[3:4])
        self.score("warm-up", pages[4:])
        self.clear_caches()
        logger.info("%s: compiled for the shapes of a ranking in %.1f s", self.spec.label, time.perf_counter() - started)

    def compile(self) -> None:
        """torch.compile, in place, the model's repeated parts (the first batches pay the
        compilation): each vision block and patch merger, and each decoder layer, or, for a model
        that keeps page prefixes (a KV cache), each decoder layer's MLP and RMSNorms.

        Fuses the many small element-wise kernels between the matmuls (norms, activations,
        rotary); shapes vary with page size and batch, hence dynamic. Regional, as in PyTorch's
        recipe for repeated blocks: a part's compiled code serves all its copies, in both
        models, so the warm-up costs one of each, not the whole depth.

        Why not whole decoder layers with a KV cache: every vision block and decoder layer runs
        transformers' one `forward_with_checkpointing` wrapper, whose compiled variants Dynamo
        keeps together, at most 8, and with a cache each layer is a variant of its own (a guard
        on its slot of the cache): past the eighth the rest would silently run uncompiled. That
        is what compiling the whole models did (the language model breaks its graph between
        layers); docs/benchmarks.md has the measurements. A vision block compiles to one graph
        because its per-page attention is one custom operator (`reranker/attention.py`).
        """
        for part in self._compiled_parts():
            part.compile(dynamic=True)

    def uncompile(self) -> None:
        """Undo `compile`: the parts run eagerly again."""
        for part in self._compiled_parts():
            part._compiled_call_impl = None  # what nn.Module.compile set

    def _compiled_parts(self) -> list[torch.nn.Module]:
        visual, language = self.backbone.visual, self.backbone.language_model
        parts = [*visual.blocks, visual.merger, *getattr(visual, "deepstack_merger_list", ()), language.norm]
        if self.reuses_prefix:
            for layer in language.layers:
                parts += [layer.mlp, layer.input_layernorm, layer.post_attention_layernorm,
                          layer.self_attn.q_norm, layer.self_attn.k_norm]
        else:
            parts += language.layers
        return parts

    # ----- description -------------------------------------------------------------------
    @property
    def key(self) -> str:
        return self.spec.key

    def settings(self, max_pixels: int | None = None) -> dict:
        """Everything that changes a score; stored beside scores so cached ones stay valid."""
        budget = self._budget(max_pixels)
        return {
            "weights": self.weights,
            "adapter": self.adapter,
            "min_pixels": budget.min_pixels,
            "max_pixels": budget.max_pixels,
            "max_length": self.spec.max_length,
            "dtype": str(self.dtype).removeprefix("torch."),
        }

    def settings_text(self, max_pixels: int | None = None) -> str:
        """`settings` as one readable line: part of the in-memory score cache's key, and what the
        benchmark report records (the database keys its scores by `store.settings_key`, a hash)."""
        settings = self.settings(max_pixels)
        return "|".join(f"{name}={settings[name]}" for name in sorted(settings))

    def _budget(self, max_pixels: int | None) -> Budget:
        if max_pixels is None:
            return self.budget
        return Budget(self.spec.min_pixels, self.spec.check_budget(max_pixels), self.spec.image_rules)

    # ----- prompt ----------------------------------------------------------------------------
    def prompt(self, query: str, instruction: str | None = None) -> str:
        """The exact text given to the processor, with one image placeholder for the page.
        `instruction`: for a model whose prompt has one (`spec.takes_instruction`); Qwen3RerankerMM
        was trained with one fixed prompt, so it is not used there (a warning says so)."""
        query = clean_query(query, self.spec.max_length)
        if instruction is not None:
            check_text(instruction, "instruction")
            if not self.spec.takes_instruction:
                warnings.warn(f"{self.spec.label} takes no instruction (it was trained with one fixed prompt): "
                              "the instruction is not used", UserWarning, stacklevel=2)
        if self.spec.prompt_style == "chat":
            return self.processor.apply_chat_template(
                chat_messages(self.spec, query, instruction), tokenize=False, add_generation_prompt=True
            )
        return self.spec.raw_template.replace("{query}", query)

    def _check_untruncated(self, prompt: str) -> None:
        limit = UNTRUNCATED_PROMPT_TOKENS
        tokens = None if len(prompt) > limit * CHARS_PER_TOKEN_BOUND else len(self.tokenizer(prompt)["input_ids"])
        if tokens is None or tokens > limit:
            length = f"over {limit:,}" if tokens is None else f"{tokens:,}"
            raise PromptTooLong(
                f"{self.spec.label} reads the whole query, as its reference code does, and this prompt is "
                f"{length} tokens; the app lets it read at most {limit:,}: shorten the query"
            )

    def layout(self, prompt_ids: list[int], reuse: bool | None = None) -> PromptLayout:
        placeholder = prompt_ids.index(self.image_token_id)
        before, after = prompt_ids[:placeholder], prompt_ids[placeholder + 1 :]
        reuse = self.reuses_prefix if reuse is None else reuse
        reusable = after.index(self.vision_end_id) + 1 if reuse and self.vision_end_id in after else None
        return PromptLayout(before, after, reusable)

    def _prefix_is_query_independent(self) -> bool:
        """Whether every token up to the page's end is the same whatever the query (a special
        token such as `<|vision_end|>` is never merged with its neighbours, so its tokens are final)."""
        probes = [self.layout(self.tokenizer(self.prompt(query))["input_ids"], reuse=True) for query in ("alpha", "omega")]
        return all(probe.reusable is not None for probe in probes) and probes[0].prefix_id == probes[1].prefix_id

    # ----- scoring ---------------------------------------------------------------------------
    def score(
        self,
        query: str,
        images: Sequence,
        instruction: str | None = None,
        *,
        batch_size: int | None = None,
        progress: Progress | None = None,
        max_pixels: int | None = None,
    ) -> list[float]:
        """P(yes) for each page, in input order. `images`: a list of PIL images or `Page` objects.
        `instruction`: see `prompt`."""
        _check_batch_size(batch_size)
        images = _image_list(images)
        if not images:
            self.prompt(query, instruction)  # an empty query is refused all the same
            return []
        prompt, budget, keys, cache_keys = self._request(query, images, instruction, max_pixels)
        scores: list[float | None] = [self.score_cache.get(key) for key in cache_keys]
        firsts: dict[str, int] = {}  # a page given more than once is scored once, at its first index
        copies = Counter(firsts.setdefault(keys[i], i) for i, score in enumerate(scores) if score is None)
        todo = list(firsts.values())
        total, done = len(images), len(images) - copies.total()
        if progress:
            progress(done, total)
        failed: list[int] = []  # pages whose score came out NaN or infinite: never cached
        if todo:
            with self._lock, torch.inference_mode():
                for indices, values in self._scored_batches(prompt, images, keys, todo, budget, batch_size or self.batch_size):
                    for index, value in zip(indices, values):
                        scores[index] = value
                        if math.isfinite(value):
                            self.score_cache.put(cache_keys[index], value)
                        else:
                            failed.append(index)
                    done += sum(copies[index] for index in indices)
                    if progress:
                        progress(done, total)
        if failed:
            failed_at = set(failed)  # a page given twice failed at both places
            everywhere = [i for i, key in enumerate(keys) if firsts.get(key, i) in failed_at]
            hint = ("float16's range is the likeliest cause: use bfloat16 or float32 (RERANKER_DTYPE)"
                    if self.dtype == torch.float16 else "its activations overflowed or its weights hold NaN")
            raise NonFiniteScores(self.spec.label, everywhere, scores[min(failed)], total,
                                  str(self.dtype).removeprefix("torch."), hint)
        return [float(scores[firsts.get(key, i)]) for i, key in enumerate(keys)]

    def _request(self, query: str, images: Sequence, instruction: str | None, max_pixels: int | None):
        """What `score` starts from: the prompt (checked), the image budget,
        each page's content key and its key in the score cache."""
        prompt = self.prompt(query, instruction)
        if self.spec.max_length is None:
            self._check_untruncated(prompt)
        budget = self._budget(max_pixels)
        for index, page in enumerate(images):
            check_page(index, page, budget)
        keys = self._page_keys(images)
        return prompt, budget, keys, self._score_keys(prompt, keys, max_pixels)

    def _page_keys(self, pages: Sequence) -> list[str]:
        """Each page's `page_key`. A `Page` carries its key; a PIL image's is a hash of its pixels
        (~6 ms for a 2-megapixel page, mostly SHA-256, which releases the GIL), worked out on the
        page workers so that pages hash at once: one after another, the 25 sample pages of the
        benchmark take 0.16 s, against 0.40 s for an H200's language model to score them."""
        pending = [page.content_hash if getattr(page, "content_hash", None) else self._submit(page_key, page)
                   for page in pages]
        return [key if isinstance(key, str) else key.result() for key in pending]

    def _score_keys(self, prompt: str, keys: list[str], max_pixels: int | None) -> list[tuple]:
        """Each page's key in the score cache: (settings, prompt, page)."""
        prompt_id = hashlib.sha256(prompt.encode()).hexdigest()
        settings = self.settings_text(max_pixels)
        return [(settings, prompt_id, key) for key in keys]

    def _scored_batches(self, prompt, images, keys, todo, budget, size) -> Iterator[tuple[list[int], list[float]]]:
        """(indices, scores) batch by batch: pages with a kept prefix first, then the rest."""
        prompt_ids = self.tokenizer(prompt)["input_ids"]
        layout = self.layout(prompt_ids)
        reused = self._reusable_prefixes(layout, images, keys, todo, budget)
        # Same suffix, similar prefix lengths: one batch, little padding.
        order = sorted(reused, key=lambda i: (len(reused[i][1]), reused[i][1], reused[i][0].length, i))
        while order:
            suffix = reused[order[0]][1]
            chunk = [i for i in order if reused[i][1] == suffix][:size]
            taken = set(chunk)
            order = [i for i in order if i not in taken]
            yield chunk, self._forward_suffix([reused[i][0] for i in chunk], suffix)
        rest = [i for i in todo if i not in reused]
        if rest:
            for batch in self._prepared_batches(prompt_ids, images, keys, rest, budget, size):
                yield batch.indices, self._forward(batch, budget)

    def _reusable_prefixes(self, layout: PromptLayout, images, keys, todo, budget) -> dict[int, tuple[PagePrefix, list[int]]]:
        """For each page whose prefix is kept: (its prefix, the suffix tokens still to run)."""
        if layout.prefix_id is None:
            return {}
        found = {}
        for index in todo:
            prefix = self.prefix_cache.get(self._prefix_key(keys[index], budget, layout.prefix_id))
            if prefix is None:
                continue
            grid = self._grid(page_image(images[index]), budget)
            sequence, prefix_length = self._sequence(layout, self._visual_count(grid))
            if prefix_length == prefix.length:  # else a long query's truncation reached the prefix
                found[index] = (prefix, sequence[prefix_length:])
        return found

    @staticmethod
    def _prefix_key(page_key: str, budget: Budget, prefix_id) -> tuple:
        """The prefix cache's key: where the kept prefix is stored and where it is looked up."""
        return (page_key, budget.key(), prefix_id)

    def _grid(self, image: Image.Image, budget: Budget) -> list[int]:
        """The processor's image_grid_thw row; it follows from the page size alone."""
        patch = self.processor.image_processor.patch_size
        height, width = resize_dims(image, budget)
        return [1, height // patch, width // patch]

    def _visual_count(self, grid: list[int]) -> int:
        return grid[0] * grid[1] * grid[2] // self.processor.image_processor.merge_size**2

    def _sequence(self, layout: PromptLayout, count: int) -> tuple[list[int], int | None]:
        """The page's token sequence (placeholder expanded, truncated as the reference does) and
        how many of its first tokens are the reusable prefix (None: none, or truncation cut into it)."""
        prefix = layout.before + [self.image_token_id] * count + layout.after[: layout.reusable or 0]
        sequence = layout.before + [self.image_token_id] * count + layout.after
        if self.spec.max_length is not None:
            sequence = truncate(sequence, self.spec.max_length, self.tail_length, self.special_ids)
        if layout.reusable is None or sequence[: len(prefix)] != prefix:
            return sequence, None
        return sequence, len(prefix)

    def _prepared_batches(self, prompt_ids, images, keys, todo, budget, size) -> Iterator[PreparedBatch]:
        # Sorting by visual-token count groups pages of similar length, so padding stays small.
        sized = {i: resize_dims(page_image(images[i]), budget) for i in todo}
        order = sorted(todo, key=lambda i: (sized[i][0] * sized[i][1], i))
        chunks = [order[start : start + size] for start in range(0, len(order), size)]
        # Every cached output taken now, before the call's own new outputs can push them out of
        # the LRU (a page that comes only in a later batch); each is let go when its batch is prepared.
        cached = {i: self.vision_cache.get(self._vision_key(keys[i], budget)) for i in todo}

        def prepare(chunk):
            outputs = [cached.pop(i) for i in chunk]
            return self.prepare_batch(prompt_ids, [images[i] for i in chunk], [keys[i] for i in chunk], chunk, budget,
                                      cached_vision=outputs)

        # Preparing batch k+1 starts its resizing on the page workers while the device runs batch k.
        upcoming = prepare(chunks[0])
        for next_chunk in chunks[1:] + [None]:
            batch = upcoming
            if next_chunk is not None:
                upcoming = prepare(next_chunk)
            yield batch

    def prepare_batch(self, prompt_ids: list[int] | str, pages, keys, indices, budget: Budget | None = None,
                      cached_vision: list | None = None) -> PreparedBatch:
        """One batch: its uncached pages' pixels made on the page workers (or now, if not
        overlapping), its token sequences now, their tensors when first read (`PreparedBatch`).
        `cached_vision`: each page's vision outputs if known, else looked up now."""
        budget = budget or self.budget
        if isinstance(prompt_ids, str):
            prompt_ids = self.tokenizer(prompt_ids)["input_ids"]
        layout = self.layout(prompt_ids)
        # Taking the cached outputs now (not at forward time) keeps them even if the LRU evicts them.
        if cached_vision is None:
            cached_vision = [self.vision_cache.get(self._vision_key(key, budget)) for key in keys]
        # The grid follows from the page size alone: no need to resize a page whose vision is cached.
        grids = [self._grid(page_image(page), budget) for page in pages]
        image_grid_thw = torch.tensor(grids)
        # The encoder takes a few pages at a time (`_encode`). Each chunk's work is queued in the
        # order the device needs it: its pages' pixels, then what the encoder derives from its
        # grids (on a GPU; see `grid_inputs_on_workers`).
        needed = [row for row, cached in enumerate(cached_vision) if cached is None]
        pending_pixels, vision_chunks = [None] * len(pages), []
        for chunk in even_chunks(len(needed), self.vision_chunk):
            rows = [needed[index] for index in chunk]
            for row in rows:
                pending_pixels[row] = self._submit(encoder_pixels, page_image(pages[row]), budget,
                                                   self.device.type == "cuda", not self.resize_on_device)
            vision_chunks.append((rows, self._submit(vision_inputs.on_cpu, self.backbone, image_grid_thw[rows],
                                                     overlap=self.grid_inputs_on_workers)))
        sequences, prefix_lengths = zip(*(self._sequence(layout, self._visual_count(grid)) for grid in grids))
        return PreparedBatch(
            indices=list(indices),
            page_keys=list(keys),
            image_grid_thw=image_grid_thw,
            cached_vision=cached_vision,
            pending_pixels=pending_pixels,
            vision_chunks=vision_chunks,
            patch_options=self.patch_options,
            make_tokens=functools.partial(self._token_tensors, sequences, image_grid_thw),
            prefix_id=layout.prefix_id,
            prefix_lengths=list(prefix_lengths),
        )

    def _token_tensors(self, sequences: Sequence[list[int]], image_grid_thw: torch.Tensor) -> TokenTensors:
        width = max(len(sequence) for sequence in sequences)
        # Filled through NumPy: torch.tensor reads a list of ints ~10× slower (~7 ms a batch of 25).
        ids = np.full((len(sequences), width), self.tokenizer.pad_token_id, dtype=np.int64)
        mask = np.zeros((len(sequences), width), dtype=np.int64)
        for row, sequence in enumerate(sequences):  # left padding: [:, -1] is every row's last token
            ids[row, width - len(sequence) :] = sequence
            mask[row, width - len(sequence) :] = 1
        input_ids, attention_mask = torch.from_numpy(ids), torch.from_numpy(mask)
        mm_token_type_ids = (input_ids == self.image_token_id).to(torch.int32)
        # Computed here on the CPU: the model's own `get_rope_index` loops over every token in
        # Python inside the forward (tens of ms per batch with the GPU waiting).
        position_ids = mrope_positions(attention_mask, mm_token_type_ids, image_grid_thw, self.processor.image_processor.merge_size)
        return TokenTensors(input_ids, attention_mask, mm_token_type_ids, position_ids)

    def _submit(self, function, *args, overlap: bool = True) -> Future:
        if self.overlap and overlap:
            return _PAGE_WORKERS.submit(function, *args)
        done: Future = Future()
        done.set_result(function(*args))
        return done

    @property
    def patch_options(self) -> dict:
        image_processor = self.processor.image_processor
        return dict(
            patch_size=image_processor.patch_size,
            merge_size=image_processor.merge_size,
            temporal_patch_size=image_processor.temporal_patch_size,
            rescale_factor=image_processor.rescale_factor,
            image_mean=image_processor.image_mean,
            image_std=image_processor.image_std,
        )

    def _vision_key(self, page_key: str, budget: Budget) -> tuple:
        return (page_key, budget.key())

    def _vision_outputs(self, batch: PreparedBatch, budget: Budget):
        """Vision encoder outputs for every page of the batch: cached, or computed and cached."""
        from transformers.models.qwen3_vl.modeling_qwen3_vl import (
            BaseModelOutputWithDeepstackFeatures,
        )

        items = list(batch.cached_vision)
        for rows, inputs in batch.vision_chunks:
            computed = self._encode([batch.pending_pixels[row] for row in rows], batch.image_grid_thw[rows], inputs,
                                    [batch.page_keys[row] for row in rows], budget)
            for row, item in zip(rows, computed):
                items[row] = item
        layers = [tuple(item[1][layer] for item in items) for layer in range(len(items[0][1]))]
        return BaseModelOutputWithDeepstackFeatures(pooler_output=tuple(item[0] for item in items), deepstack_features=layers)

    def _encode(self, pixels: Sequence[Future], grids: torch.Tensor, inputs: Future, keys: Sequence[str],
                budget: Budget) -> list[tuple]:
        """One chunk of pages' vision outputs (embeddings, deepstack features), cached on the way.

        `pixels`: each page's uint8 pixels (`encoder_pixels`), and `inputs`: what the encoder
        derives from their grids (`vision_inputs.on_cpu`), still being made on worker threads.
        The encoder takes a few pages at a time (`PreparedBatch.vision_chunks`) as soon as their
        pixels are ready, so resizing the later pages on the CPU overlaps encoding the earlier ones
        on the device. Chunks fixed by the page count (`even_chunks`, not "whatever is ready"), so
        the same pages always meet the same kernels and scores are reproducible run to run, in
        bfloat16 too.
        """
        images = [self._at_grid_size(page.result(), grid) for page, grid in zip(pixels, grids)]
        pixel_values = patchify(images, **self.patch_options).to(self.dtype)
        # The grids stay on the CPU, with what the encoder derives from them made there too
        # (`vision_inputs`): nothing here reads a GPU tensor back, so the CPU queues the next
        # chunk while the device runs this one.
        computed = self.backbone.get_image_features(
            pixel_values, grids, **vision_inputs.to_device(self.backbone, inputs.result(), self.device))
        per_page = zip(*computed.deepstack_features) if computed.deepstack_features else (() for _ in keys)
        outputs = []
        for key, embeds, deepstack in zip(keys, computed.pooler_output, per_page):
            # Copies: each page's outputs are views of the whole chunk's tensors, which a cached view
            # kept alive (up to vision_chunk times the bytes the cache counts, past its bound).
            item = (embeds.clone(), tuple(layer.clone() for layer in deepstack))
            self.vision_cache.put(self._vision_key(key, budget), item, tensor_bytes(item))
            outputs.append(item)
        return outputs

    def _at_grid_size(self, pixels: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
        """The page's pixels on the device, resized there if the workers left them full size."""
        pixels = pixels.to(self.device, non_blocking=True)[..., :3]  # (a fourth channel is padding: encoder_pixels)
        patch = self.processor.image_processor.patch_size
        height, width = int(grid[1]) * patch, int(grid[2]) * patch
        if pixels.shape[:2] != (height, width):
            pixels = resample.bicubic(pixels, height, width)
        return pixels

    def _forward(self, batch: PreparedBatch, budget: Budget) -> list[float]:
        vision = self._vision_outputs(batch, budget)  # queued on the device; the token tensors are built meanwhile
        keep_prefixes = batch.prefix_id is not None and any(length is not None for length in batch.prefix_lengths)
        if keep_prefixes:  # the kept prefixes are cut from the left-padded cache (prefix_cache.harvest)
            input_ids, mm_token_type_ids, position_ids, attention_mask = (
                batch.input_ids, batch.mm_token_type_ids, batch.position_ids, batch.attention_mask)
            last = torch.full((len(input_ids),), input_ids.shape[1] - 1)
        else:
            # Padding moved after each row's tokens, and no mask: plain causal attention, which
            # SDPA runs without computing the masked half (with the padding mask, the fused
            # kernel computes every score). Real tokens never see the padding behind them.
            input_ids, mm_token_type_ids, position_ids, last = right_padded(batch)
            attention_mask = None
        outputs = self.backbone(
            input_ids=input_ids.to(self.device, non_blocking=True),
            attention_mask=None if attention_mask is None else attention_mask.to(self.device, non_blocking=True),
            position_ids=position_ids.to(self.device, non_blocking=True),
            mm_token_type_ids=mm_token_type_ids.to(self.device, non_blocking=True),
            image_grid_thw=batch.image_grid_thw.to(self.device),
            mm_encoder_outputs={"image": vision},
            use_cache=keep_prefixes,  # the KV cache is only wanted for the prefixes kept for later queries
        )
        if keep_prefixes:
            self._keep_prefixes(batch, outputs.cache, budget)
        rows = torch.arange(len(last), device=self.device)
        return self.head(outputs.last_hidden_state[rows, last.to(self.device)]).tolist()

    def _keep_prefixes(self, batch: PreparedBatch, cache, budget: Budget) -> None:
        width = batch.input_ids.shape[1]
        for row, length in enumerate(batch.prefix_lengths):
            if length is None:
                continue
            start = width - int(batch.attention_mask[row].sum())  # left padding
            next_position = int(batch.position_ids[0, row, start + length])  # where the suffix starts
            prefix = harvest(cache, row, start, length, next_position)
            self.prefix_cache.put(self._prefix_key(batch.page_keys[row], budget, batch.prefix_id), prefix, prefix.nbytes)

    def _forward_suffix(self, prefixes: list[PagePrefix], suffix: list[int]) -> list[float]:
        """Scores of one query's suffix tokens after each page's kept prefix."""
        cache, prefix_mask = batch_cache(prefixes)
        input_ids = torch.tensor([suffix] * len(prefixes), device=self.device)
        attention_mask = torch.cat([prefix_mask, torch.ones_like(input_ids)], dim=1)
        outputs = self.backbone.language_model(
            inputs_embeds=self.backbone.get_input_embeddings()(input_ids),
            attention_mask=attention_mask,
            position_ids=suffix_positions(prefixes, len(suffix), self.device),
            cache=cache,
        )
        return self.head(outputs.last_hidden_state[:, -1]).tolist()

    def head(self, last_hidden: torch.Tensor) -> torch.Tensor:
        """sigmoid(h · (W[yes] − W[no])), in float32."""
        return torch.sigmoid(last_hidden.float() @ self.score_vector).cpu()

    def clear_caches(self) -> None:
        with self._lock:
            self.score_cache.clear()
        self.release_device_caches()

    def release_device_caches(self) -> None:
        """Drop the cached vision outputs and page prefixes (device memory), keep the scores: what
        a batch that ran out of GPU memory frees before it is retried smaller."""
        with self._lock:
            self.vision_cache.clear()
            self.prefix_cache.clear()


def mrope_positions(attention_mask: torch.Tensor, image_mask: torch.Tensor, grids: torch.Tensor, merge: int) -> torch.Tensor:
    """Qwen3-VL's M-RoPE position ids (3, batch, width) for left-padded rows of text, one image, text.

    The same numbers as the model's `get_rope_index` (a test holds them equal): text tokens count
    up on all three axes; the image's tokens sit at (start, start + row, start + column) on its
    merged grid; the text after it resumes at start + max(rows, columns). Padding gets 0.
    Whole-batch tensor operations (a loop over rows cost ~5 ms a batch of 25, before a warm
    call's first kernel).
    """
    batch, width = attention_mask.shape
    real = attention_mask.bool()
    image = image_mask.bool() & real
    offsets = width - real.sum(dim=1)  # each row's left padding
    counts = image.sum(dim=1)
    first_column = image.int().argmax(dim=1)
    last_column = width - 1 - image.flip(1).int().argmax(dim=1)
    rows, columns = grids[:, 1] // merge, grids[:, 2] // merge
    if bool(((counts != rows * columns) | (last_column - first_column + 1 != counts)).any()):
        raise ValueError("each sequence must hold exactly one image, as one run of image tokens")
    local = torch.arange(width)[None, :] - offsets[:, None]  # index among the row's own tokens
    first, count, columns = (first_column - offsets)[:, None], counts[:, None], columns[:, None]
    inside = (local >= first) & (local < first + count)
    # Text before the image counts up from 0; the text after resumes at first + max(rows, columns).
    text = torch.where(local < first, local, local - count + torch.maximum(rows, columns.squeeze(1))[:, None])
    within = (local - first).clamp(min=0)
    positions = torch.stack([
        torch.where(inside, first, text),
        torch.where(inside, first + within // columns, text),
        torch.where(inside, first + within % columns, text),
    ])
    return positions.masked_fill_(~real, 0)


def right_padded(batch: PreparedBatch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The batch's input ids, image-token types and M-RoPE positions with each row's left padding
    moved to its end (the tokens' order kept), and each row's last token's index."""
    lengths = batch.attention_mask.sum(dim=1)
    width = batch.attention_mask.shape[1]
    # Row r reads from (column + its padding) mod width: its tokens first, then its padding.
    source = (torch.arange(width)[None, :] + (width - lengths)[:, None]) % width
    input_ids = batch.input_ids.gather(1, source)
    mm_token_type_ids = batch.mm_token_type_ids.gather(1, source)
    position_ids = batch.position_ids.gather(2, source[None].expand_as(batch.position_ids))
    return input_ids, mm_token_type_ids, position_ids, lengths - 1


def even_chunks(count: int, most: int) -> list[list[int]]:
    """0 … count−1 in as few consecutive chunks of at most `most` as can hold them, their sizes
    differing by one at most (25 pages by 8: 7, 6, 6, 6). A last chunk of one page ran the vision
    encoder at a third of the speed per page of a full one (H200, run 8: the kernels of one page
    are too small to hide the launches between them)."""
    chunks = -(-count // most)
    size, larger = divmod(count, chunks) if count else (0, 0)
    bounds = [0]
    for chunk in range(chunks):
        bounds.append(bounds[-1] + size + (chunk < larger))
    return [list(range(start, end)) for start, end in zip(bounds, bounds[1:])]


# Pages larger than this are resized by Pillow even on a GPU: a full-size page waits in pinned
# memory for its turn on the device (two batches ahead), 36 MB at this size. The app renders and
# scales pages to at most this (IngestOptions.max_page_pixels); the Python API takes any size.
FULL_SIZE_PIXELS_LIMIT = 12_000_000


def encoder_pixels(image: Image.Image, budget: Budget, pin: bool = False, resize: bool = True) -> torch.Tensor:
    """The page as a uint8 H×W×C tensor for the vision encoder: resized into the budget by the
    model's rule (`budget.rules`) with Pillow; or, with `resize` False, only made RGB by that rule,
    at full size, for the device to resize (`resample.bicubic`). Resized here either way: a page
    over `FULL_SIZE_PIXELS_LIMIT`, and one with a colour key (A's rule lays its transparent colour
    on white after the resize). C is 3, or 4 for a full-size page taken as Pillow keeps it (R, G,
    B and a padding byte, `pillow_memory`): the device drops the fourth (`_at_grid_size`)."""
    resize = resize or image.width * image.height > FULL_SIZE_PIXELS_LIMIT
    rgb = to_rgb(image, budget.rules)
    if resize or rgb.info.get("transparency") is not None:
        rgb = resize_to_budget(rgb, budget.min_pixels, budget.max_pixels, rules=budget.rules)
        own_memory = None
    else:  # no copy under the GIL here (`pillow_memory`); pinning copies without holding it
        own_memory = rgbx_view(rgb)
    pixels = torch.from_numpy(np.array(rgb) if own_memory is None else own_memory)
    return pixels.pin_memory() if pin else pixels  # pinned: the copy to the GPU runs asynchronously


def patchify(
    images: Sequence[torch.Tensor],
    *,
    patch_size: int,
    merge_size: int,
    temporal_patch_size: int,
    rescale_factor: float,
    image_mean: Sequence[float],
    image_std: Sequence[float],
) -> torch.Tensor:
    """Qwen2-VL image processor's rescale → normalize → patchify, on whatever device `images` are.

    The same operations in the same order and precision as the processor (rescale in float64,
    then float32), so the patches are identical; on a GPU this replaces shipping float32 patches
    (4× the bytes of uint8 pixels) through pinned memory.
    """
    rows = []
    for image in images:  # H×W×3 uint8
        height, width, channels = image.shape
        pixels = (image.permute(2, 0, 1).to(torch.float64) * rescale_factor).to(torch.float32)
        mean = _per_channel(tuple(image_mean), image.device)
        std = _per_channel(tuple(image_std), image.device)
        pixels = (pixels - mean) / std
        grid_h, grid_w = height // patch_size, width // patch_size
        patches = pixels.reshape(
            channels, grid_h // merge_size, merge_size, patch_size, grid_w // merge_size, merge_size, patch_size
        ).permute(1, 4, 2, 5, 0, 3, 6)  # (gh, gw, mh, mw, C, ph, pw)
        patches = patches.unsqueeze(5).expand(*patches.shape[:5], temporal_patch_size, *patches.shape[5:])
        rows.append(patches.reshape(grid_h * grid_w, channels * temporal_patch_size * patch_size * patch_size))
    return torch.cat(rows)


@functools.lru_cache(maxsize=16)
def _per_channel(values: tuple[float, ...], device: torch.device) -> torch.Tensor:
    """(C, 1, 1) float32 on `device`, made once: made for every page, its copy to a GPU waited
    for the device's queued work each time."""
    return to_device_without_waiting(torch.tensor(values, dtype=torch.float32)[:, None, None], device)


_PAGE_WORKERS = thread_pool("page-prep")  # per-page CPU work: RGB, resize (on a CPU), hash (patchify runs on the device)


def resize_dims(image: Image.Image, budget: Budget) -> tuple[int, int]:
    from .imaging import smart_resize

    return smart_resize(image.height, image.width, min_pixels=budget.min_pixels, max_pixels=budget.max_pixels,
                        rules=budget.rules)


def tensor_bytes(item) -> int:
    embeds, deepstack = item
    return embeds.numel() * embeds.element_size() + sum(t.numel() * t.element_size() for t in deepstack)
