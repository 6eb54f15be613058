"""`resample.bicubic` gives Pillow's bicubic resize, every pixel equal. The arithmetic is integer,
so every device should compute the same numbers: where CUDA is present (the GPU benchmark runs
this file there first, `scripts/gpu_bench.sh`) each check runs on the GPU too."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from reranker import resample
from reranker.imaging import smart_resize
from reranker.models import MODELS


def pillow(image: Image.Image, height: int, width: int) -> np.ndarray:
    return np.array(image.resize((width, height), Image.Resampling.BICUBIC))


def ours(image: Image.Image, height: int, width: int, device: str = "cpu") -> np.ndarray:
    return resample.bicubic(torch.from_numpy(np.array(image)).to(device), height, width).cpu().numpy()


@pytest.fixture(params=["cpu"] + (["cuda"] if torch.cuda.is_available() else []))
def device(request):
    return request.param


def random_image(height: int, width: int, seed: int) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8))


def test_equals_pillow_on_real_pages_at_each_models_budgets(sample_images, device):
    """The sizes scoring asks for: each model's default budget and a small one, on real pages
    (each page at one budget, in turn: ~0.4 s a page here, where the CPU path uses Pillow itself)."""
    budgets = sorted({(spec.min_pixels, spec.max_pixels) for spec in MODELS.values()}
                     | {(spec.min_pixels, spec.min_pixels * 4) for spec in MODELS.values()})
    assert len(budgets) >= 3
    for index, page in enumerate(sample_images):
        min_pixels, max_pixels = budgets[index % len(budgets)]
        height, width = smart_resize(page.height, page.width, min_pixels=min_pixels, max_pixels=max_pixels)
        assert np.array_equal(ours(page, height, width, device), pillow(page, height, width)), (page.size, height, width)


@pytest.mark.parametrize(
    ("size", "target"),
    [
        ((97, 61), (50, 33)),  # shrink by ~2
        ((97, 61), (211, 150)),  # grow
        ((97, 61), (97, 40)),  # one side only (Pillow skips the other pass)
        ((97, 61), (30, 61)),
        ((1, 1), (5, 7)),  # a single pixel, grown
        ((40, 1), (3, 9)),
        ((7, 9), (1, 1)),  # to a single pixel
        ((3000, 20), (13, 1)),  # shrunk ~230 times: 923 taps a pixel
        ((20, 3000), (1, 13)),
        ((2500, 20), (700, 10)),  # over 100 times taller than wide: Pillow 12.2+ runs the vertical pass first
        ((64, 64), (64, 64)),  # same size: unchanged
    ],
)
def test_equals_pillow_on_random_pixels(size, target, device):
    image = random_image(*size, seed=sum(size) + sum(target))
    assert np.array_equal(ours(image, *target, device), pillow(image, *target))


def test_equals_pillow_on_many_random_sizes(device):
    rng = np.random.default_rng(7)
    for seed in range(60):
        height, width, out_height, out_width = (int(value) for value in rng.integers(1, 90, 4))
        image = random_image(height, width, seed)
        assert np.array_equal(ours(image, out_height, out_width, device), pillow(image, out_height, out_width)), (
            (height, width), (out_height, out_width))


def test_works_in_blocks_when_the_gathered_taps_would_be_large(monkeypatch, device):
    """Large pages go through in blocks of rows (bounded memory on the device); same pixels."""
    image = random_image(300, 200, seed=3)
    whole = ours(image, 120, 70, device)
    monkeypatch.setattr(resample, "_BLOCK_ELEMENTS", 1000)
    assert np.array_equal(ours(image, 120, 70, device), whole)
    assert np.array_equal(whole, pillow(image, 120, 70))


@pytest.mark.parametrize(
    ("image", "size", "message"),
    [
        (torch.zeros((4, 4, 3), dtype=torch.float32), (2, 2), "uint8"),
        (torch.zeros((4, 4), dtype=torch.uint8), (2, 2), "H×W×C"),
        (torch.zeros((4, 4, 3), dtype=torch.uint8), (0, 2), "cannot resize to 2×0"),
    ],
)
def test_refuses_what_it_cannot_resize(image, size, message):
    with pytest.raises(ValueError, match=message):
        resample.bicubic(image, *size)
