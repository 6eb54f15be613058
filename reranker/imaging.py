"""Image helpers shared by ingestion, scoring and storage.

`smart_resize` follows Qwen-VL's rule (qwen_vl_utils / transformers' Qwen2-VL image processor):
sides become multiples of `factor`, the pixel count lands in [min_pixels, max_pixels], and the
aspect ratio is kept as closely as possible. Qwen3-VL uses 16 px patches merged 2×2, so one
visual token covers 32×32 px and `factor` is 32.
"""

from __future__ import annotations

import hashlib
import math
from typing import Literal

from PIL import Image

PATCH_FACTOR = 32  # px per visual-token side for Qwen3-VL (patch 16 × spatial merge 2)
MAX_ASPECT_RATIO = 200  # Qwen-VL refuses more extreme pages


def image_hash(image: Image.Image) -> str:
    """Stable content id of a page image: SHA-256 over mode, size and raw pixels.

    Identical pixels give the same id whatever file or format they came from, so caches and
    the database can recognise a page seen before. A palette image's bytes are indices into its
    palette, so the palette is hashed with them; and so is the colour an image marks transparent
    (a PNG's colour key, in any mode, RGB too: both models' references lay it on white, see
    `to_rgb`), so such an image is not the same page as its opaque twin.
    """
    raw = image.tobytes()
    if image.mode in ("P", "PA"):
        raw += repr((image.getpalette(), image.info.get("transparency"))).encode()
    elif image.info.get("transparency") is not None:
        raw += repr(("transparency", image.info["transparency"])).encode()
    return pixels_hash(image.mode, image.size, raw)


def pixels_hash(mode: str, size: tuple[int, int], raw: bytes) -> str:
    """`image_hash` of the image `Image.frombytes(mode, size, raw)`, without building it."""
    digest = hashlib.sha256()
    digest.update(f"{mode}:{size[0]}x{size[1]}:".encode())
    digest.update(raw)
    return digest.hexdigest()


# How a model's reference code turns a page into its RGB input of the right size (ModelSpec.image_rules):
# - "qwen_vl_utils": qwen_vl_utils.fetch_image (Qwen3-VL-Reranker): an RGBA page is laid on white,
#   other modes are converted; each side rounds to at least one token (32 px). Qwen's reranker
#   then hands the resized page to the processor, which converts it once more (the rule below):
#   a transparent colour Pillow carried through the conversion and the resize (a PNG colour key,
#   `info["transparency"]`) is laid on white there, after the resize. (Scaling down,
#   qwen_vl_utils itself lets a side floor to 0 px, on a page more elongated than its budget, and
#   Qwen's reranker then scores the text "NULL" in place of the page; here the page is scored.)
# - "processor": the transformers image processor (Qwen3RerankerMM's card): any transparency
#   (alpha band, transparent palette index, or colour key, RGB pages included: transformers 5's
#   `convert_to_rgb`) is laid on white before the resize; a side may round to 0 and the page
#   then grows to min_pixels.
# Both resize with PIL bicubic here; they differ only for transparent or < 16 px thin pages. (The
# card's transformers 4.57 resized with torchvision's antialiased bicubic, one grey level apart
# in ~0.1% of pixel values.)
ImageRules = Literal["qwen_vl_utils", "processor"]


def to_rgb(image: Image.Image, rules: ImageRules = "qwen_vl_utils") -> Image.Image:
    """The page as the model's reference code makes it RGB before resizing it (see `ImageRules`;
    under "qwen_vl_utils" the processor's own conversion follows the resize, `resize_to_budget`)."""
    if rules == "processor":
        return processor_rgb(image)
    if image.mode == "RGBA":
        white = Image.new("RGB", image.size, (255, 255, 255))
        white.paste(image, mask=image.split()[3])
        return white
    return image if image.mode == "RGB" else image.convert("RGB")  # a colour key is kept in `info`


def processor_rgb(image: Image.Image) -> Image.Image:
    """transformers' `convert_to_rgb` (5.x), as its image processors call it: any transparency laid on white."""
    if "A" in image.getbands() or image.info.get("transparency") is not None:
        rgba = image.convert("RGBA")
        return Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba).convert("RGB")
    return image if image.mode == "RGB" else image.convert("RGB")


def smart_resize(
    height: int, width: int, factor: int = PATCH_FACTOR, min_pixels: int = 4 * 32 * 32, max_pixels: int = 1280 * 32 * 32,
    rules: ImageRules = "qwen_vl_utils",
) -> tuple[int, int]:
    """(height, width) rounded to multiples of `factor` with the pixel count in the budget."""
    if min(height, width) <= 0:
        raise ValueError(f"image has no pixels ({width}×{height})")
    if max(height, width) / min(height, width) > MAX_ASPECT_RATIO:
        raise ValueError(
            f"aspect ratio {max(height, width) / min(height, width):.0f}:1 is too extreme "
            f"(Qwen-VL accepts at most {MAX_ASPECT_RATIO}:1)"
        )
    h_bar, w_bar = round(height / factor) * factor, round(width / factor) * factor
    if rules == "qwen_vl_utils":  # never below one token; the processor lets a side round to 0
        h_bar, w_bar = max(factor, h_bar), max(factor, w_bar)
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt((height * width) / max_pixels)
        h_bar = max(factor, math.floor(height / beta / factor) * factor)
        w_bar = max(factor, math.floor(width / beta / factor) * factor)
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h_bar = math.ceil(height * beta / factor) * factor
        w_bar = math.ceil(width * beta / factor) * factor
    return h_bar, w_bar


def resize_to_budget(image: Image.Image, min_pixels: int, max_pixels: int, factor: int = PATCH_FACTOR,
                     rules: ImageRules = "qwen_vl_utils") -> Image.Image:
    """RGB copy of `image` resized as the model's reference does (`rules`; PIL bicubic)."""
    rgb = to_rgb(image, rules)
    height, width = smart_resize(rgb.height, rgb.width, factor, min_pixels, max_pixels, rules)
    if (width, height) != rgb.size:
        rgb = rgb.resize((width, height), Image.Resampling.BICUBIC)  # Pillow keeps `info`, a colour key too
    return processor_rgb(rgb) if rules == "qwen_vl_utils" else rgb  # then Qwen's reranker calls the processor


def visual_tokens(image: Image.Image, min_pixels: int, max_pixels: int, factor: int = PATCH_FACTOR) -> int:
    """Number of visual tokens the model sees for `image` under this budget (under either model's
    `ImageRules`: they differ only for pages under 16 px thin)."""
    height, width = smart_resize(image.height, image.width, factor, min_pixels, max_pixels)
    return (height // factor) * (width // factor)
