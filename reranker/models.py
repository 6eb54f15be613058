"""The rerankers as data: where their weights live, how they are prompted, how they are scored.

Every fact here comes from the model's own reference code or card (see `reference`); keep the
strings byte-exact. A new model is one more `ModelSpec`, not a copy of the scoring loop.

A spec renders its prompt in one of two ways:
- "chat": messages rendered by the processor's chat template (Qwen3-VL-Reranker's reference
  code calls `processor.apply_chat_template(..., add_generation_prompt=True)`);
- "raw": one literal string with `{query}` filled in (Qwen3RerankerMM's card).
Both place exactly one page image, written as `IMAGE_PLACEHOLDER`, which the processor later
expands to one `<|image_pad|>` per visual token.
"""

from __future__ import annotations

import numbers
import os
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Literal

from .imaging import ImageRules

ASSETS = Path(__file__).resolve().parent / "assets"

IMAGE_PLACEHOLDER = "<|vision_start|><|image_pad|><|vision_end|>"
PX_PER_TOKEN_SIDE = 32  # one Qwen3-VL visual token covers 32×32 px (patch 16, spatial merge 2)


def tokens_to_pixels(tokens: int) -> int:
    return tokens * PX_PER_TOKEN_SIDE * PX_PER_TOKEN_SIDE


def pixels_to_tokens(pixels: int) -> int:
    """The whole visual tokens an image budget of `pixels` holds."""
    return pixels // tokens_to_pixels(1)


@dataclass(frozen=True)
class ModelSpec:
    key: str  # stable id used in the API, the database and environment variables
    label: str  # short name for the UI
    tag: str  # shorter still, where space is tight (the bar plot's labels, which cut the label)
    model_id: str  # Hub id of the weights (for an adapter model: the base model)
    adapter_id: str | None  # Hub id of a LoRA adapter merged into the base, if any
    reference: str  # where the facts below come from
    yes_token: str
    no_token: str
    qwen_token_ids: tuple[int, int]  # (yes, no) ids in the real Qwen tokenizer, checked at load
    min_pixels: int
    max_pixels: int  # default image budget
    max_pixels_limit: int  # largest budget the UI offers
    prompt_style: Literal["chat", "raw"]
    # How the reference makes a page RGB and sizes it (reranker.imaging.ImageRules): with
    # qwen_vl_utils before the processor (A), or in the transformers image processor (B).
    image_rules: ImageRules = "qwen_vl_utils"
    system_prompt: str = ""
    raw_template: str = ""  # for prompt_style "raw": the whole prompt with {query}
    default_instruction: str | None = None  # for prompt_style "chat": the Instruct line
    # Truncation (reference: Qwen3VLReranker.tokenize): at most `max_length` tokens before the
    # `tail` are kept, special tokens (image pads included) always; `tail` is kept whole.
    # None: the reference reads the whole prompt (reranker.scoring refuses one past
    # UNTRUNCATED_PROMPT_TOKENS rather than cut it).
    max_length: int | None = 10240
    tail: str = "<|im_end|>\n<|im_start|>assistant\n"

    @property
    def env_prefix(self) -> str:
        return "RERANKER_" + self.key.upper().replace("-", "_")

    @property
    def takes_instruction(self) -> bool:
        """Whether the prompt has a place for an instruction (the raw template has none)."""
        return self.prompt_style == "chat"

    @property
    def max_visual_tokens(self) -> int:
        return pixels_to_tokens(self.max_pixels)

    def check_budget(self, max_pixels: int | None) -> int:
        """The image budget to use: `max_pixels`, or the model's default for None; a budget
        outside [min_pixels, max_pixels_limit] is refused."""
        if max_pixels is None:
            return self.max_pixels
        # A whole number (200000.0 becomes 200000: as a float it made another settings key, so
        # scores stored under the int were not found).
        try:
            whole = isinstance(max_pixels, numbers.Integral) or (
                isinstance(max_pixels, numbers.Real) and float(max_pixels).is_integer())
        except OverflowError:  # a number past float's range (10**400): refused by the range check below
            whole = True
        if isinstance(max_pixels, bool) or not whole:
            raise ValueError(f"{self.label}: image budget must be a whole number of pixels, got {max_pixels!r}")
        max_pixels = int(max_pixels)
        if not self.min_pixels <= max_pixels <= self.max_pixels_limit:
            shown = f"{max_pixels} px" if abs(max_pixels) < 10**12 else f"of {len(str(abs(max_pixels)))} digits"
            raise ValueError(f"{self.label}: image budget {shown} is outside [{self.min_pixels}, {self.max_pixels_limit}]")
        return max_pixels


QWEN3_VL_RERANKER_2B = ModelSpec(
    key="qwen3-vl-reranker-2b",
    label="Qwen3-VL-Reranker-2B",
    tag="VL-Reranker",
    model_id="Qwen/Qwen3-VL-Reranker-2B",
    adapter_id=None,
    reference="QwenLM/Qwen3-VL-Embedding, src/models/qwen3_vl_reranker.py",
    yes_token="yes",
    no_token="no",
    qwen_token_ids=(9693, 2152),
    min_pixels=tokens_to_pixels(4),
    # 1280 tokens was the release setting (the comparison blog's); the reference code now uses 1800.
    max_pixels=tokens_to_pixels(1280),
    max_pixels_limit=tokens_to_pixels(1800),
    prompt_style="chat",
    system_prompt=(
        'Judge whether the Document meets the requirements based on the Query and the Instruct provided. '
        'Note that the answer can only be "yes" or "no".'
    ),
    default_instruction="Given a search query, retrieve relevant candidates that answer the query.",
)

QWEN3_RERANKER_MM_2B = ModelSpec(
    key="qwen3-reranker-mm-2b",
    label="Qwen3RerankerMM-2B",
    tag="RerankerMM",
    model_id="Qwen/Qwen3-VL-2B-Instruct",
    adapter_id="UlrickBL/Qwen3RerankerMM-2B",
    reference="UlrickBL/multimodal_reranker, training_qwen_3_reranker/README.md (model card)",
    yes_token="Yes",
    no_token="No",
    qwen_token_ids=(9454, 2753),
    # The card sets only max_pixels, so min_pixels is the processor's own default
    # (Qwen3-VL-2B-Instruct preprocessor_config: shortest_edge 65536 px = 64 tokens).
    min_pixels=65536,
    max_pixels=720 * 28 * 28,  # 564,480 px: at most ~551 visual tokens of 32×32 px
    # A's limit: both models compared at one budget, and close to the card's code as it ran under
    # transformers 4.57, which ignored max_pixels (transformers#41955) and took pages at their own
    # size (a letter page at the app's 144 DPI: ~1,890 tokens).
    max_pixels_limit=tokens_to_pixels(1800),
    prompt_style="raw",
    image_rules="processor",  # the card hands the page to the processor with max_pixels
    max_length=None,  # the card's processor call does not truncate
    # The author's exact spelling and spacing: "an picture", "Query : ", " \nAre", "related ?".
    raw_template=(
        "<|im_start|>system\nYou will be given an picture and a query. Answer 'Yes' if the answer to "
        "the query can be found in the picture, else 'No'<|im_end|>\n<|im_start|>user\n"
        + IMAGE_PLACEHOLDER
        + "Query : {query} \nAre the picture and query related ?<|im_end|>\n<|im_start|>assistant\n"
    ),
    tail=" \nAre the picture and query related ?<|im_end|>\n<|im_start|>assistant\n",
)

MODELS: dict[str, ModelSpec] = {spec.key: spec for spec in (QWEN3_VL_RERANKER_2B, QWEN3_RERANKER_MM_2B)}
A_KEY, B_KEY = MODELS  # model A (the app's left column, "A − B" differences) and model B


def in_model_order(keys: Iterable[str]) -> list[str]:
    """Known models in their canonical order (A, then B), then any others by name."""
    keys = set(keys)
    return [key for key in MODELS if key in keys] + sorted(keys - set(MODELS))


class UnknownModelError(KeyError):
    def __str__(self) -> str:  # KeyError would print the message with quotes
        return self.args[0]


def get_spec(key: str) -> ModelSpec:
    try:
        return MODELS[key]
    except KeyError:
        raise UnknownModelError(f"unknown model {key!r}; valid keys: {', '.join(MODELS)}") from None


@dataclass(frozen=True)
class WeightsLocation:
    """Where to load a model's weights from: the Hub ids, or local overrides."""

    model: str
    adapter: str | None


def weights_location(spec: ModelSpec, model_path: str | None = None, adapter_path: str | None = None) -> WeightsLocation:
    """Arguments win over environment variables, which win over the Hub ids.

    `RERANKER_<KEY>_MODEL` (weights; for an adapter model, the base) and `RERANKER_<KEY>_ADAPTER`.
    """
    model = model_path or os.environ.get(f"{spec.env_prefix}_MODEL") or spec.model_id
    adapter = adapter_path or os.environ.get(f"{spec.env_prefix}_ADAPTER") or spec.adapter_id
    return WeightsLocation(model=str(model), adapter=str(adapter) if adapter else None)


def render_prompt(spec: ModelSpec, query: str, instruction: str | None = None) -> str:
    """The prompt text without loading the model (exports, docs): for "chat" specs, rendered with
    the Qwen3-VL chat template the checkpoints ship, as `processor.apply_chat_template` does."""
    if spec.prompt_style == "raw":
        return spec.raw_template.replace("{query}", query)
    return _chat_template().render(
        messages=chat_messages(spec, query, instruction), add_generation_prompt=True, add_vision_id=False
    )


@cache
def _chat_template():
    from jinja2.ext import loopcontrols
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(message):
        raise ValueError(message)

    # The environment transformers renders chat templates with.
    environment = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])
    environment.globals["raise_exception"] = raise_exception
    return environment.from_string((ASSETS / "qwen3_vl_chat_template.jinja").read_text(encoding="utf-8"))


def chat_messages(spec: ModelSpec, query: str, instruction: str | None) -> list[dict]:
    """The reference's message list for one (text query, one page image) pair."""
    return [
        {"role": "system", "content": [{"type": "text", "text": spec.system_prompt}]},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "<Instruct>: " + (instruction or spec.default_instruction or "")},
                {"type": "text", "text": "<Query>:"},
                {"type": "text", "text": query},
                {"type": "text", "text": "\n<Document>:"},
                {"type": "image"},
            ],
        },
    ]
