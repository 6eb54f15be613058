"""Which fused attention kernel SDPA picks at the shapes scoring runs, and how fast each one is.

For each attention shape of a cold batch of Qwen3-VL-2B — the vision encoder's call per page,
and the language model's padded batch with its mask — the backend SDPA chooses
(`torch._fused_sdp_choice`), then each backend forced alone and timed (TFLOP/s counts the full
score matrix, as the kernels compute it). On the H200 with torch 2.11 (run 7,
docs/benchmarks.md) SDPA already picks cuDNN's kernel for both, the fastest of the three, which is
why asking for cuDNN first changed nothing and why the varlen FlashAttention call per vision
chunk (`--varlen`) was slower than one SDPA call per page.

    python scripts/gpu_sdpa_kernels.py        # CUDA only; bf16 (scripts/gpu_bench.sh --app runs it)
"""

from __future__ import annotations

import sys

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

# (batch, heads, tokens, head dim, padding mask): Qwen3-VL-2B's vision encoder on a page of ~1240
# visual tokens (4 patches each), and its language model on 25 pairs padded to the longest.
SHAPES = {
    "vision encoder, one page": (1, 16, 4960, 64, False),
    "language model, 25 pairs with a padding mask": (25, 16, 1350, 128, True),
}
BACKENDS = [SDPBackend.FLASH_ATTENTION, SDPBackend.CUDNN_ATTENTION, SDPBackend.EFFICIENT_ATTENTION]


def inputs(batch, heads, tokens, dim, masked, device):
    q, k, v = (torch.randn(batch, heads, tokens, dim, device=device, dtype=torch.bfloat16) for _ in range(3))
    if not masked:
        return q, k, v, None
    lengths = torch.linspace(tokens * 0.8, tokens, batch, device=device).long()
    keep = torch.arange(tokens, device=device)[None, :] >= (tokens - lengths)[:, None]  # left padding
    causal = torch.ones(tokens, tokens, dtype=torch.bool, device=device).tril()
    return q, k, v, (causal[None] & keep[:, None, :])[:, None]


def seconds(call, repeats=20):
    for _ in range(3):
        call()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(repeats):
        call()
    end.record()
    torch.cuda.synchronize()
    return start.elapsed_time(end) / 1000 / repeats


def main() -> int:
    if not torch.cuda.is_available():
        print("gpu_sdpa_kernels.py: needs a CUDA GPU")
        return 0
    device = torch.device("cuda")
    print(f"{torch.cuda.get_device_name(device)} · torch {torch.__version__} · cuDNN {torch.backends.cudnn.version()} · "
          f"cuDNN SDPA enabled: {torch.backends.cuda.cudnn_sdp_enabled()}")
    for name, (batch, heads, tokens, dim, masked) in SHAPES.items():
        q, k, v, mask = inputs(batch, heads, tokens, dim, masked, device)
        flop = 4 * batch * heads * tokens * tokens * dim
        chosen = SDPBackend(torch._fused_sdp_choice(q, k, v, mask, 0.0, False)).name
        print(f"\n{name}: {batch} × {heads} heads × {tokens} tokens × {dim}{', masked' if masked else ''}; "
              f"SDPA picks {chosen}")
        reference = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        for backend in BACKENDS:
            try:
                with sdpa_kernel([backend]):
                    out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
                    took = seconds(lambda: F.scaled_dot_product_attention(q, k, v, attn_mask=mask))  # noqa: B023
            except RuntimeError as error:
                print(f"  {backend.name:20} cannot run it: {str(error).splitlines()[0][:150]}")
                continue
            difference = (out.float() - reference.float()).abs().nan_to_num().max().item()
            print(f"  {backend.name:20} {took * 1000:8.3f} ms  {flop / took / 1e12:6.0f} TFLOP/s  "
                  f"max |difference| from SDPA's pick {difference:.1e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
