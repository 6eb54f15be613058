"""What this machine offers the models: device, dtype, attention, batch and cache sizes.

Each default reads its `RERANKER_*` environment variable first (README, Configuration), then
the hardware: a GPU and its memory, the CPU's bfloat16 support, the container's memory limit.
"""

from __future__ import annotations

import os

import torch

DTYPES = ("float32", "bfloat16", "float16")


def parse_dtype(dtype: torch.dtype | str) -> torch.dtype:
    """A torch dtype from itself or its name ("bfloat16"), refusing any other."""
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype not in DTYPES:
        raise ValueError(f"unknown dtype {dtype!r}: use one of {', '.join(DTYPES)}")
    return getattr(torch, dtype)


def to_device_without_waiting(tensor: torch.Tensor, device: torch.device) -> torch.Tensor:
    """`tensor` copied to `device`, by way of pinned memory to a GPU: a copy from ordinary
    (pageable) memory first waits for all the work queued on the GPU (a host sync), so the CPU
    could not queue the next work meanwhile."""
    if device.type == "cuda":
        tensor = tensor.pin_memory()
    return tensor.to(device, non_blocking=True)


def cpu_has_bfloat16() -> bool:
    """Whether this CPU computes bfloat16 natively (AVX512-BF16 or AMX), as oneDNN reports it."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # a torch build without oneDNN
        return False


# Both 2B models in float32 hold ~16 GiB of weights (7.9 GiB each); with the app, the caches and
# the activations of a page at the largest budget, a machine needs about 20 GiB for them.
CPU_FLOAT32_MEMORY = 20 * 2**30
CGROUP_MEMORY_LIMITS = ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes")  # v2, v1


def memory_limit() -> int:
    """Bytes of memory this process can have: the machine's, or its container's (cgroup) limit
    when lower, as on a Hugging Face Space."""
    try:
        limit = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):  # no sysconf (Windows)
        return 2**63
    for path in CGROUP_MEMORY_LIMITS:
        try:
            with open(path) as handle:
                text = handle.read().strip()
        except OSError:
            continue
        if text.isdigit():  # "max": no limit
            limit = min(limit, int(text))
    return limit


def default_dtype(device: torch.device) -> torch.dtype:
    """`RERANKER_DTYPE`, else bfloat16 on a GPU (the checkpoints' own precision). On a CPU float32,
    which matches the reference code to ~1e-6, when both models fit in memory that way
    (`CPU_FLOAT32_MEMORY`); else bfloat16, in half the memory (a free CPU Space has 16 GB, where
    float32 would be killed for memory while loading the second model)."""
    name = os.environ.get("RERANKER_DTYPE")
    if name:
        try:
            return parse_dtype(name)
        except ValueError as error:
            raise ValueError(f"RERANKER_DTYPE: {error}") from None
    if device.type == "cuda" or memory_limit() < CPU_FLOAT32_MEMORY:
        return torch.bfloat16
    return torch.float32


def on_zero_gpu() -> bool:
    """Whether this is a ZeroGPU Space (the variable its `spaces` package reads)."""
    return os.environ.get("SPACES_ZERO_GPU", "").lower() in ("1", "t", "true")


def default_device() -> torch.device:
    name = os.environ.get("RERANKER_DEVICE")
    if name:
        try:
            return torch.device(name)
        except RuntimeError as error:  # torch's own list of device types
            raise ValueError(f"RERANKER_DEVICE={name!r} is not a device ({error}); use e.g. cpu, cuda or cuda:1") from None
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def default_cache_bytes(device: torch.device, cpu: int, variable: str) -> int:
    """A cache's default size: the environment `variable` (MB), else `cpu` bytes of RAM, or on a
    GPU 1/20 of its memory up to 4 GiB (two models with three caches then fit beside the
    weights on a 24 GB card)."""
    size = env_megabytes(variable)
    if size is not None:
        return size
    if device.type != "cuda":
        return cpu
    return min(4 * 2**30, torch.cuda.get_device_properties(device).total_memory // 20)


def env_flag(variable: str, default: bool = False) -> bool:
    """An on/off environment variable: 1/true/yes/on or 0/false/no/off, in any case (unset or
    empty: `default`). Anything else is refused, naming the variable: a typo that silently left
    a setting off (or login on) was found only later."""
    text = os.environ.get(variable, "").strip().lower()
    if not text:
        return default
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"{variable}={os.environ[variable]!r}: expected 1 or 0 (true/false, yes/no, on/off)")


def env_megabytes(variable: str) -> int | None:
    """The environment `variable`, a size in MB, as bytes; None when it is not set. Anything but a
    number of MB (0 or more) is refused, naming the variable."""
    text = os.environ.get(variable, "").strip()
    if not text:
        return None
    try:
        megabytes = float(text)
    except ValueError:
        megabytes = -1.0
    if not 0 <= megabytes < float("inf"):
        raise ValueError(f"{variable}={text!r}: expected a size in MB, a number such as 512")
    return int(megabytes * 2**20)


def default_batch_size(device: torch.device) -> int:
    """Pairs per forward pass: 32 on a GPU with 40 GB or more (a 25-page upload is one batch, as
    benchmarked), 16 on smaller GPUs, 1 on a CPU. A CPU gains little from batches (the 2B shape on
    2 cores, a cold page one at a time against two at a time: 6.4 against 6.1 s for A, 14.9
    against 14.7 s for B, within the runs' noise; a new query's pages up to ~20% faster in twos;
    docs/benchmarks.md, "Thirtieth session"), and one page at a time the progress bar moves per
    page and Stop takes effect after the page under way: after a batch of four, with the real
    models on a CPU (~60 s a page for A), that was minutes."""
    if device.type != "cuda":
        return 1
    return 32 if torch.cuda.get_device_properties(device).total_memory >= 40 * 2**30 else 16


def default_attention(device: torch.device) -> str:
    if device.type == "cuda":
        try:
            import flash_attn  # noqa: F401  (optional; no PyPI wheels)

            return "flash_attention_2"
        except ImportError:
            pass
    return "sdpa"
