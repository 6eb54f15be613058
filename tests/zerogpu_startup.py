"""The app's start-up as a ZeroGPU Space runs it, on this CPU-only machine; prints a JSON report.

Run as a script (by tests/test_zerogpu.py) with SPACES_ZERO_GPU=true and the tiny checkpoints in
RERANKER_<KEY>_MODEL/_ADAPTER. On ZeroGPU the `spaces` package makes CUDA look present in the
app process: tensors moved to "cuda" there are kept on the CPU (in the main thread only) and
moved to a real GPU inside each `spaces.GPU` call. That emulation is the real code under test
here. A CPU build of torch lacks three CUDA attributes that `spaces` reads at import; they are
filled in first, as the only stand-ins.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile

import torch

torch.version.cuda = torch.version.cuda or "12.8"
if not hasattr(torch._C, "_cuda_init"):
    torch._C._cuda_init = lambda: None  # replaced by spaces with one that raises


def not_in_bad_fork() -> bool:  # a module-level function: spaces asks a forked process for it
    return False


torch.cuda._is_in_bad_fork = not_in_bad_fork

# `spaces` is imported by reranker.ui (its gpu module), as in app.py (after torch, before anything touches CUDA).
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from reranker import ui  # noqa: E402

arena = ui.create_arena(db_path=os.path.join(tempfile.mkdtemp(), "arena.db"), cache_dir=tempfile.mkdtemp())
ui.build_app(arena)
report = {
    "cuda_available": torch.cuda.is_available(),
    "score_on_gpu_wrapped_by_spaces": hasattr(ui.gpu.score_on_gpu, "zerogpu"),
    "device_note": ui.speed_notes.device_note(),
    "models": {},
}
for key in arena.pool.keys:
    entry = {"loaded": arena.pool.loaded(key), "error": arena.pool.error(key)}
    if entry["loaded"]:
        reranker = arena.pool.get(key)
        entry["device"] = str(reranker.device)
        entry["parameters_on"] = sorted({str(parameter.device) for parameter in reranker.backbone.parameters()})
        entry["dtype"] = reranker.settings()["dtype"]
    report["models"][key] = entry
print("REPORT " + json.dumps(report))
