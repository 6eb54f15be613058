"""`pillow_memory.rgbx_view`: an RGB page's pixels read from Pillow's own memory equal
`np.array(page)`, stay valid after the page is gone, and anything it cannot view is None."""

from __future__ import annotations

import gc

import numpy as np
import pytest
from PIL import Image

from reranker.pillow_memory import rgbx_view


def test_equals_numpy_on_real_pages(sample_images):
    for page in sample_images:
        view = rgbx_view(page)
        assert view is not None and view.shape == (page.height, page.width, 4) and view.dtype == np.uint8
        assert np.array_equal(view[..., :3], np.array(page)), page.size


def test_equals_numpy_on_a_crop_of_random_pixels():
    pixels = np.random.default_rng(5).integers(0, 256, (301, 203, 3), dtype=np.uint8)
    page = Image.fromarray(pixels).crop((7, 11, 190, 280))
    assert np.array_equal(rgbx_view(page)[..., :3], pixels[11:280, 7:190])


def test_the_view_outlives_the_page():
    """The view holds Pillow's export, whose release is what frees the page's memory."""
    page = Image.new("RGB", (64, 48), (9, 8, 7))
    view = rgbx_view(page)
    del page
    gc.collect()
    Image.new("RGB", (64, 48), (200, 201, 202)).load()  # memory freed by now would likely be reused
    assert (view[..., :3] == (9, 8, 7)).all()


@pytest.mark.parametrize(
    "page",
    [
        Image.new("L", (10, 10)),
        Image.new("RGBA", (10, 10)),
        Image.new("P", (10, 10)),
        Image.new("RGB", (2100, 2100)),  # over Pillow's 16 MB block: kept in pieces, not exported whole
    ],
    ids=["grey", "rgba", "palette", "large"],
)
def test_what_it_cannot_view_is_none(page):
    assert rgbx_view(page) is None
