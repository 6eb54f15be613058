"""The two models' reference scoring, written out step by step as their own code does it.

Kept deliberately naive (one pair per forward pass, full LM head, the processor doing the
tokenization) so the fast path in `reranker.scoring` can be checked against it.
- Qwen3-VL-Reranker (QwenLM/Qwen3-VL-Embedding, src/models/qwen3_vl_reranker.py): chat template,
  image resized by qwen_vl_utils (smart_resize, factor 32, PIL bicubic) then `do_resize=False`,
  truncation of `input_ids[:-5]` keeping special tokens, score from the last position.
- Qwen3RerankerMM (model card): one fixed prompt string, the processor resizes with
  `max_pixels=720*28*28`, score from the last position.
"""

from __future__ import annotations

import math

import torch
from PIL import Image

QWEN3_VL_RERANKER_SYSTEM = (
    'Judge whether the Document meets the requirements based on the Query and the Instruct provided. '
    'Note that the answer can only be "yes" or "no".'
)
DEFAULT_INSTRUCTION = "Given a search query, retrieve relevant candidates that answer the query."
MM_PROMPT = (
    "<|im_start|>system\nYou will be given an picture and a query. Answer 'Yes' if the answer to the query can be "
    "found in the picture, else 'No'<|im_end|>\n<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>Query : "
    "{query} \nAre the picture and query related ?<|im_end|>\n<|im_start|>assistant\n"
)


def qwen_vl_utils_resize(image: Image.Image, min_pixels: int, max_pixels: int, factor: int = 32) -> Image.Image:
    height, width = image.height, image.width
    h_bar = max(factor, round(height / factor) * factor)
    w_bar = max(factor, round(width / factor) * factor)
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt((height * width) / max_pixels)
        h_bar = max(factor, math.floor(height / beta / factor) * factor)
        w_bar = max(factor, math.floor(width / beta / factor) * factor)
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h_bar = math.ceil(height * beta / factor) * factor
        w_bar = math.ceil(width * beta / factor) * factor
    return qwen_vl_utils_to_rgb(image).resize((w_bar, h_bar))


def qwen_vl_utils_to_rgb(image: Image.Image) -> Image.Image:
    """qwen_vl_utils.vision_process.to_rgb (0.0.14): an RGBA page on white, other modes converted."""
    if image.mode == "RGBA":
        white_background = Image.new("RGB", image.size, (255, 255, 255))
        white_background.paste(image, mask=image.split()[3])
        return white_background
    return image.convert("RGB")


def truncate_tokens_optimized(tokens, max_length, special_tokens):
    if len(tokens) <= max_length:
        return tokens
    special = set(special_tokens)
    keep = max_length - sum(1 for token in tokens if token in special)
    out, kept = [], 0
    for token in tokens:
        if token in special:
            out.append(token)
        elif kept < keep:
            out.append(token)
            kept += 1
    return out


@torch.no_grad()
def qwen3_vl_reranker_score(model, processor, query, image, instruction=None, max_pixels=1280 * 32 * 32, max_length=10240):
    messages = [
        {"role": "system", "content": [{"type": "text", "text": QWEN3_VL_RERANKER_SYSTEM}]},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "<Instruct>: " + (instruction or DEFAULT_INSTRUCTION)},
                {"type": "text", "text": "<Query>:"},
                {"type": "text", "text": query},
                {"type": "text", "text": "\n<Document>:"},
                {"type": "image", "image": image},
            ],
        },
    ]
    text = processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    resized = qwen_vl_utils_resize(image, 4 * 32 * 32, max_pixels)
    inputs = processor(text=[text], images=[resized], do_resize=False, padding=False, truncation=False)
    ids = inputs["input_ids"][0]
    ids = truncate_tokens_optimized(ids[:-5], max_length, processor.tokenizer.all_special_ids) + ids[-5:]
    image_pad = processor.tokenizer.convert_tokens_to_ids("<|image_pad|>")
    input_ids = torch.tensor([ids])
    logits = model(
        input_ids=input_ids,
        attention_mask=torch.ones_like(input_ids),
        mm_token_type_ids=(input_ids == image_pad).int(),
        pixel_values=torch.as_tensor(inputs["pixel_values"]),
        image_grid_thw=torch.as_tensor(inputs["image_grid_thw"]),
    ).logits[0, -1]
    vocab = processor.tokenizer.get_vocab()
    return torch.sigmoid(logits[vocab["yes"]] - logits[vocab["no"]]).item()


@torch.no_grad()
def qwen3_reranker_mm_score(model, processor, query, image, max_pixels=720 * 28 * 28):
    batch = processor(
        text=[MM_PROMPT.replace("{query}", query)],
        images=[image],
        size={"shortest_edge": processor.image_processor.size["shortest_edge"], "longest_edge": max_pixels},
        return_tensors="pt",
        padding=True,
    )
    logits = model(**batch).logits
    position = batch["attention_mask"].sum(dim=1) - 1  # the card's last non-pad position
    last = logits[torch.arange(logits.shape[0]), position][0]
    vocab = processor.tokenizer.get_vocab()
    return torch.sigmoid(last[vocab["Yes"]] - last[vocab["No"]]).item()
