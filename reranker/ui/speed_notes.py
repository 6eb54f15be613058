"""What visitors and the operator hear about this machine's speed (measured: docs/benchmarks.md)."""

from __future__ import annotations

import os

from .. import devices
from ..devices import cpu_has_bfloat16
from ..models import A_KEY, B_KEY, get_spec
from .text import escape


def device_note() -> str:
    """What a visitor should know about this machine's speed (shown above the upload box)."""
    import torch

    device = devices.default_device()  # RERANKER_DEVICE=cpu on a GPU machine runs on the CPU
    if device.type == "cuda":
        return f"Running on {escape(torch.cuda.get_device_name(device))}."
    where = "**No GPU on this machine.**" if not torch.cuda.is_available() else "**The models run on the CPU.**"
    spec_a, spec_b = get_spec(A_KEY), get_spec(B_KEY)
    a, b = spec_a.label, spec_b.label  # the names the columns and tables use
    # Measured (docs/benchmarks.md) at the default budgets named here.
    note = (
        f"{where} On 2 CPU cores a page takes {a} about 60 s at its "
        f"default budget ({spec_a.max_visual_tokens} visual tokens; about 10 s at 256) and {b} about 23 s at its "
        f"{spec_b.max_visual_tokens}. Lower the image budgets under *Instruction and settings* to go faster. A new question "
        "about pages already ranked is quicker: neither model encodes a page image twice, so a page "
        f"takes {a} about 23 s and {b} about 1 s."
    )
    if not os.environ.get("RERANKER_DTYPE") and devices.default_dtype(torch.device("cpu")) == torch.bfloat16:
        # The scores differ from float32's in the third decimal or so: worth knowing when comparing.
        note += (f" With {devices.memory_limit() / 2**30:.0f} GiB of memory the models run in bfloat16, their "
                 f"own precision (float32, which matches the reference code to ~1e-6, needs "
                 f"{devices.CPU_FLOAT32_MEMORY / 2**30:.0f} GiB for both).")
    return note


def operator_hint() -> str | None:
    """Advice for whoever runs the app, logged at start (a visitor cannot act on it)."""
    import torch

    if devices.default_device().type == "cuda" or os.environ.get("RERANKER_DTYPE"):
        return None
    if devices.default_dtype(torch.device("cpu")) != torch.bfloat16 and cpu_has_bfloat16():
        return ("No GPU; this CPU computes bfloat16 natively: RERANKER_DTYPE=bfloat16 (the checkpoints' own "
                "precision) makes both models about twice as fast here (float32 timings in docs/benchmarks.md).")
    return "No GPU: each page takes tens of seconds on a CPU (docs/benchmarks.md); run the app on a GPU to rank quickly."
