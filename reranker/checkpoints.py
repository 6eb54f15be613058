"""Random-weight Qwen3-VL checkpoints built locally, for tests and benchmarks.

Real weights cannot be downloaded in CI, so the tests write a tiny random checkpoint, processor
and LoRA adapter with `save_pretrained` and then load them through the *real* code path
(`load_reranker(..., model_path=...)`). The benchmark uses the exact Qwen3-VL-2B shape with
random weights: speed does not depend on the values.

The tokenizer is a byte-level BPE with Qwen's pre-tokenizer and special tokens, where `yes`,
`no`, `Yes` and `No` are single tokens (as in Qwen's vocabulary), so the yes/no head logic runs
exactly as with the real tokenizer; only the ids differ. The chat roles are single tokens too, so
the reference's "keep the last 5 tokens" truncation means the same thing as with Qwen's tokenizer.
Other text costs about one token per character, ~4× what Qwen's vocabulary needs.

Where Qwen's own BPE vocabulary is on the machine (`qwen_vocabulary()`: the `qwen.tiktoken` file
that the `dashscope` package ships, or a path in RERANKER_QWEN_VOCAB), `build_qwen_tokenizer`
rebuilds Qwen's tokenizer from it: the real ids (yes = 9693, <|image_pad|> = 151655, ...) and the
real token counts, which the benchmark needs for realistic sequence lengths.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

ASSETS = Path(__file__).resolve().parent / "assets"
QWEN_SPECIAL_TOKENS = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|object_ref_start|>",
    "<|object_ref_end|>",
    "<|box_start|>",
    "<|box_end|>",
    "<|quad_start|>",
    "<|quad_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
)
# Words that are single tokens in Qwen's vocabulary and matter here: the answer tokens, and the
# chat roles (the reference truncation keeps exactly the last 5 tokens, "<|im_end|>\n<|im_start|>assistant\n").
SINGLE_TOKEN_WORDS = ("yes", "no", "Yes", "No", "assistant", "user", "system")


def word_merges(words=SINGLE_TOKEN_WORDS) -> list[tuple[str, str]]:
    """BPE merges that build each word left to right: (w[:1], w[1]), (w[:2], w[2]), …"""
    merges: list[tuple[str, str]] = []
    for word in words:
        for end in range(1, len(word)):
            if (word[:end], word[end]) not in merges:
                merges.append((word[:end], word[end]))
    return merges

# Qwen/Qwen3-VL-2B-Instruct's config.json (the shape both rerankers share).
QWEN3_VL_2B_TEXT = dict(
    vocab_size=151936,
    hidden_size=2048,
    intermediate_size=6144,
    num_hidden_layers=28,
    num_attention_heads=16,
    num_key_value_heads=8,
    head_dim=128,
    hidden_act="silu",
    max_position_embeddings=262144,
    rms_norm_eps=1e-6,
    rope_parameters={"rope_type": "default", "rope_theta": 5000000.0, "mrope_section": [24, 20, 20], "mrope_interleaved": True},
)
QWEN3_VL_2B_VISION = dict(
    depth=24,
    hidden_size=1024,
    hidden_act="gelu_pytorch_tanh",
    intermediate_size=4096,
    num_heads=16,
    in_channels=3,
    patch_size=16,
    spatial_merge_size=2,
    temporal_patch_size=2,
    out_hidden_size=2048,
    num_position_embeddings=2304,
    deepstack_visual_indexes=[5, 11, 17],
)
# Tiny but structurally complete: deepstack layers, M-RoPE (sections sum to head_dim/2),
# a square position grid, vision output width = text width.
TINY_TEXT = dict(
    vocab_size=320,
    hidden_size=64,
    intermediate_size=128,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    head_dim=16,
    hidden_act="silu",
    max_position_embeddings=32768,
    rms_norm_eps=1e-6,
    rope_parameters={"rope_type": "default", "rope_theta": 5000000.0, "mrope_section": [2, 3, 3], "mrope_interleaved": True},
)
TINY_VISION = dict(
    depth=2,
    hidden_size=32,
    hidden_act="gelu_pytorch_tanh",
    intermediate_size=64,
    num_heads=2,
    in_channels=3,
    patch_size=16,
    spatial_merge_size=2,
    temporal_patch_size=2,
    out_hidden_size=64,
    num_position_embeddings=64,
    deepstack_visual_indexes=[0, 1],
)
SHAPES = {"tiny": (TINY_TEXT, TINY_VISION), "2b": (QWEN3_VL_2B_TEXT, QWEN3_VL_2B_VISION)}

# LoRA targets of the kind Qwen3RerankerMM's training used (vision qkv, language attention + MLP).
LORA_TARGETS = ["qkv", "q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def qwen3_vl_chat_template() -> str:
    """The chat template shipped with Qwen/Qwen3-VL-*-Instruct (see assets/PROVENANCE.md)."""
    return (ASSETS / "qwen3_vl_chat_template.jinja").read_text(encoding="utf-8")


def build_tokenizer():
    from transformers import Qwen2Tokenizer
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    vocab = {symbol: index for index, symbol in enumerate(bytes_to_unicode().values())}
    merges = word_merges()
    for left, right in merges:
        vocab.setdefault(left + right, len(vocab))
    tokenizer = Qwen2Tokenizer(
        vocab=vocab,
        merges=merges,
        extra_special_tokens=list(QWEN_SPECIAL_TOKENS[1:]),  # <|endoftext|> is unk/eos/pad already
        model_max_length=262144,
    )
    return tokenizer


PROJECT_VOCABULARY = Path(__file__).resolve().parent.parent / ".cache" / "qwen.tiktoken"
VOCABULARY_SOURCE = "dashscope==2.0.2"  # a PyPI package that ships Qwen's BPE ranks (Apache-2.0)


def qwen_vocabulary() -> Path | None:
    """Qwen's BPE ranks (`qwen.tiktoken`), if on this machine: RERANKER_QWEN_VOCAB, the project's
    `.cache/qwen.tiktoken` (`python -m reranker.checkpoints fetch-vocab`), or the copy inside an
    installed `dashscope` (found without importing it and its many dependencies)."""
    import importlib.util
    import os

    if os.environ.get("RERANKER_QWEN_VOCAB"):
        path = Path(os.environ["RERANKER_QWEN_VOCAB"])
        return path if path.is_file() else None
    if PROJECT_VOCABULARY.is_file():
        return PROJECT_VOCABULARY
    spec = importlib.util.find_spec("dashscope")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        path = Path(folder) / "resources" / "qwen.tiktoken"
        if path.is_file():
            return path
    return None


def build_qwen_tokenizer(vocabulary: Path):
    """Qwen2/3's tokenizer rebuilt from its BPE ranks: 151,643 byte-level tokens, then the special
    tokens from 151,643 on, in Qwen's order. Merges are recovered from the ranks as transformers'
    `TikTokenConverter` does."""
    import base64

    from transformers import Qwen2Tokenizer
    from transformers.convert_slow_tokenizer import TikTokenConverter

    ranks = {}
    for line in Path(vocabulary).read_text(encoding="ascii").splitlines():
        if line.strip():
            token, rank = line.split()
            ranks[base64.b64decode(token)] = int(rank)

    class Ranks(TikTokenConverter):
        @staticmethod
        def load_tiktoken_bpe(_):
            return ranks

    vocab, merges = Ranks().extract_vocab_merges_from_model(None)
    return Qwen2Tokenizer(
        vocab=vocab,
        merges=merges,
        extra_special_tokens=list(QWEN_SPECIAL_TOKENS[1:]),  # <|endoftext|> (151643) is unk/eos/pad already
        model_max_length=262144,
    )


def fetch_qwen_vocabulary(destination: Path = PROJECT_VOCABULARY) -> Path:
    """Download the `dashscope` wheel from the package index (pip, no dependencies, nothing
    installed) and keep only its `qwen.tiktoken`."""
    import subprocess
    import sys
    import tempfile
    import zipfile

    with tempfile.TemporaryDirectory() as folder:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--dest", folder, VOCABULARY_SOURCE],
            check=True,
        )
        (wheel,) = Path(folder).glob("*.whl")
        with zipfile.ZipFile(wheel) as archive:
            data = archive.read("dashscope/resources/qwen.tiktoken")
    destination.parent.mkdir(parents=True, exist_ok=True)
    destination.write_bytes(data)
    return destination


def build_processor(tokenizer=None):
    """Image-only Qwen3-VL processor (no video processor, which would need torchvision)."""
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    from .processor import ImageOnlyQwen3VLProcessor

    # Qwen3-VL-2B-Instruct's preprocessor_config values.
    image_processor = Qwen2VLImageProcessorPil(
        patch_size=16,
        temporal_patch_size=2,
        merge_size=2,
        size={"shortest_edge": 65536, "longest_edge": 16777216},
        image_mean=[0.5, 0.5, 0.5],
        image_std=[0.5, 0.5, 0.5],
    )
    return ImageOnlyQwen3VLProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer or build_tokenizer(),
        chat_template=qwen3_vl_chat_template(),
    )


def build_config(shape: str = "tiny", tokenizer=None):
    from transformers import Qwen3VLConfig

    text, vision = SHAPES[shape]
    tokenizer = tokenizer or build_tokenizer()
    ids = tokenizer.convert_tokens_to_ids
    if len(tokenizer) > text["vocab_size"]:  # Qwen's own vocabulary on the tiny shape
        text = dict(text, vocab_size=QWEN3_VL_2B_TEXT["vocab_size"])
    config = Qwen3VLConfig(
        text_config=dict(text),
        vision_config=dict(vision),
        image_token_id=ids("<|image_pad|>"),
        video_token_id=ids("<|video_pad|>"),
        vision_start_token_id=ids("<|vision_start|>"),
        vision_end_token_id=ids("<|vision_end|>"),
        tie_word_embeddings=shape == "2b",  # the 2B checkpoints tie the LM head to the embeddings
    )
    return config


def build_model(shape: str = "tiny", seed: int = 0, tokenizer=None, dtype=None, device=None, attn_implementation=None,
                text_layers: int | None = None):
    """A random `Qwen3VLForConditionalGeneration`, built directly on `device` in `dtype`.
    `text_layers`: another depth for its language model."""
    import torch
    from transformers import Qwen3VLForConditionalGeneration

    config = build_config(shape, tokenizer)
    if text_layers is not None:
        config.text_config.num_hidden_layers = text_layers
    torch.manual_seed(seed)
    with torch.device(device or "cpu"):
        model = Qwen3VLForConditionalGeneration._from_config(
            config, dtype=dtype or torch.float32, attn_implementation=attn_implementation
        )
    if shape == "tiny":
        # Random init at std 0.02 makes every logit ~0 and every score ~0.5, which would hide
        # bugs; larger weights spread the scores over (0, 1).
        with torch.no_grad():
            for parameter in model.parameters():
                if parameter.dim() >= 2:
                    parameter.normal_(0.0, 0.25)
    return model.eval()


@dataclass(frozen=True)
class TinyCheckpoints:
    reranker: Path  # a full checkpoint standing in for Qwen/Qwen3-VL-Reranker-2B
    base: Path  # standing in for Qwen/Qwen3-VL-2B-Instruct
    adapter: Path  # a LoRA adapter on `base`, standing in for UlrickBL/Qwen3RerankerMM-2B

    def environment(self) -> dict[str, str]:
        """Environment variables that point the app at these checkpoints."""
        return {
            "RERANKER_QWEN3_VL_RERANKER_2B_MODEL": str(self.reranker),
            "RERANKER_QWEN3_RERANKER_MM_2B_MODEL": str(self.base),
            "RERANKER_QWEN3_RERANKER_MM_2B_ADAPTER": str(self.adapter),
        }


def save_checkpoint(directory: Path, shape: str = "tiny", seed: int = 0) -> Path:
    tokenizer = build_tokenizer()
    model = build_model(shape, seed=seed, tokenizer=tokenizer)
    directory.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(directory)
    processor = build_processor(tokenizer)
    processor.save_pretrained(directory)
    return directory


def save_adapter(directory: Path, base: Path, seed: int = 2, rank: int = 4) -> Path:
    """A LoRA adapter with random (non-zero) A and B, so merging it changes the scores."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import Qwen3VLForConditionalGeneration

    model = Qwen3VLForConditionalGeneration.from_pretrained(base)
    torch.manual_seed(seed)
    config = LoraConfig(r=rank, lora_alpha=2 * rank, target_modules=LORA_TARGETS, init_lora_weights=False)
    peft_model = get_peft_model(model, config)
    with torch.no_grad():
        for name, parameter in peft_model.named_parameters():
            if "lora_" in name:
                parameter.normal_(0.0, 0.2)
    directory.mkdir(parents=True, exist_ok=True)
    peft_model.save_pretrained(directory)
    return directory


def build_tiny_checkpoints(root: Path) -> TinyCheckpoints:
    """Write the three tiny checkpoints under `root` (seconds on a CPU)."""
    root = Path(root)
    reranker = save_checkpoint(root / "reranker", seed=0)
    base = save_checkpoint(root / "base", seed=1)
    adapter = save_adapter(root / "adapter", base)
    return TinyCheckpoints(reranker=reranker, base=base, adapter=adapter)


if __name__ == "__main__":
    import sys

    usage = "usage: python -m reranker.checkpoints fetch-vocab   (Qwen's BPE ranks into .cache/qwen.tiktoken)"
    if {"-h", "--help"} & set(sys.argv[1:]):
        print(usage)
        sys.exit(0)
    if sys.argv[1:] != ["fetch-vocab"]:
        print(usage, file=sys.stderr)
        sys.exit(2)  # a usage error, as the CLI's
    print(f"Qwen's vocabulary: {fetch_qwen_vocabulary()}")
