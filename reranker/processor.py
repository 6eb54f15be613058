"""An image-only Qwen3-VL processor.

`Qwen3VLProcessor` insists on a video processor, and Qwen3-VL's video processor needs
torchvision, which has no build matching the CPU torch used here. Rerankers score page images
only, so this subclass drops the video processor; everything else (tokenizer, image processor,
chat template, placeholder expansion, `mm_token_type_ids`) is Qwen3VLProcessor's own code, and it
loads real checkpoints' processor files unchanged.
"""

from __future__ import annotations

from transformers import Qwen3VLProcessor


class ImageOnlyQwen3VLProcessor(Qwen3VLProcessor):
    # The sub-processors are read off __init__'s signature: no `video_processor` here.
    def __init__(self, image_processor=None, tokenizer=None, chat_template=None, **kwargs):
        super().__init__(image_processor, tokenizer, None, chat_template=chat_template, **kwargs)

