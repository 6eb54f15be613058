"""An RGB page's own pixel memory, as Pillow holds it, viewed as an H×W×4 uint8 array: no copy.

Why: on a GPU the page workers hand each page to the device at full size (`resample`). Getting
the pixels with `np.array(image)` packs Pillow's 4-byte pixels into 3 bytes in Python-driven
chunks, holding the GIL ~3 ms for a 2 MP page. Eight workers doing that at the start of a cold
batch held up the main thread at each of its GPU launches: a launch releases the GIL and must
wait for a busy thread to give it back (up to the 5 ms switch interval, each time). Run 10's
trace showed the first page's small resize kernels 4–15 ms apart for the first ~85 ms.

How: Pillow (11.2+) exports an image kept in one memory block (up to 16 MB: ~4 MP for RGB)
through the Arrow C data interface, a fixed ABI: an RGB image is a fixed-size list of 4 uint8 per
pixel (R, G, B and a padding byte). The view below reads that struct with ctypes (pyarrow, which
would read it for us, is not on every machine the benchmark runs on) and checks the formats it
expects; anything else returns None and the caller copies with `np.array` as before.
"""

from __future__ import annotations

import ctypes

import numpy as np
from PIL import Image


class _ArrowSchema(ctypes.Structure):
    pass


_ArrowSchema._fields_ = [
    ("format", ctypes.c_char_p),
    ("name", ctypes.c_char_p),
    ("metadata", ctypes.c_char_p),
    ("flags", ctypes.c_int64),
    ("n_children", ctypes.c_int64),
    ("children", ctypes.POINTER(ctypes.POINTER(_ArrowSchema))),
    ("dictionary", ctypes.POINTER(_ArrowSchema)),
    ("release", ctypes.c_void_p),
    ("private_data", ctypes.c_void_p),
]


class _ArrowArray(ctypes.Structure):
    pass


_ArrowArray._fields_ = [
    ("length", ctypes.c_int64),
    ("null_count", ctypes.c_int64),
    ("offset", ctypes.c_int64),
    ("n_buffers", ctypes.c_int64),
    ("n_children", ctypes.c_int64),
    ("buffers", ctypes.POINTER(ctypes.c_void_p)),
    ("children", ctypes.POINTER(ctypes.POINTER(_ArrowArray))),
    ("dictionary", ctypes.POINTER(_ArrowArray)),
    ("release", ctypes.c_void_p),
    ("private_data", ctypes.c_void_p),
]

_capsule_pointer = ctypes.pythonapi.PyCapsule_GetPointer
_capsule_pointer.restype = ctypes.c_void_p
_capsule_pointer.argtypes = [ctypes.py_object, ctypes.c_char_p]


def rgbx_view(image: Image.Image) -> np.ndarray | None:
    """The RGB `image`'s pixels as an H×W×4 uint8 array over Pillow's own memory ([..., :3] are
    the pixels `np.array(image)` gives; [..., 3] is padding), or None where Pillow does not export
    the image in one piece (another mode, a larger page, an older Pillow)."""
    if image.mode != "RGB" or not hasattr(image, "__arrow_c_array__"):
        return None
    try:
        schema_capsule, array_capsule = image.__arrow_c_array__()
    except ValueError:  # "Image is in multiple array blocks": over Pillow's block size
        return None
    schema = _ArrowSchema.from_address(_capsule_pointer(schema_capsule, b"arrow_schema"))
    array = _ArrowArray.from_address(_capsule_pointer(array_capsule, b"arrow_array"))
    pixels = image.width * image.height
    if (schema.format != b"+w:4" or schema.n_children != 1 or schema.children[0].contents.format != b"C"
            or array.length != pixels or array.n_children != 1 or array.null_count != 0):
        return None
    values = array.children[0].contents
    if values.n_buffers != 2 or values.null_count != 0 or not values.buffers[1]:
        return None
    start = values.buffers[1] + values.offset + array.offset * 4
    buffer = (ctypes.c_uint8 * (pixels * 4)).from_address(start)
    # The capsules' release (when the view is collected) lets Pillow free the image's memory, so
    # the view keeps them: it may outlive the image.
    buffer.capsules = (schema_capsule, array_capsule)
    return np.frombuffer(buffer, dtype=np.uint8).reshape(image.height, image.width, 4)
