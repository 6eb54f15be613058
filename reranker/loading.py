"""Load a reranker with the models' real loading code: `from_pretrained` on the Hub ids (or local
folders), the LoRA adapter applied with peft and merged, and the LM head reduced to the
W[yes] − W[no] vector that scoring needs.

Every failure becomes a `LoadError` that names the model, the location and what to do about it.
"""

from __future__ import annotations

import logging
import os
import warnings

import torch

from . import attention, patch_embedding
from .devices import default_attention, default_device, default_dtype, env_megabytes, on_zero_gpu, parse_dtype
from .models import ModelSpec, get_spec, weights_location
from .scoring import Reranker, check_cache_sizes
from .workers import refuse_in_a_rerun_script

# peft asks transformers a question transformers has deprecated, each time an adapter loads: a
# warning the user can do nothing about. Process-wide, once (catch_warnings around the load is not
# thread-safe, and the two models may load at once).
warnings.filterwarnings("ignore", message=r".*is_gradient_checkpointing.* is deprecated", category=FutureWarning)

logger = logging.getLogger(__name__)


class LoadError(RuntimeError):
    """The weights could not be loaded; the message says which and how to fix it."""


class AdapterMismatchError(LoadError):
    """A LoRA adapter did not land on the model completely (a half-applied LoRA scores wrongly)."""


def _first_line(error: BaseException, limit: int = 300) -> str:
    text = (str(error).strip() or type(error).__name__).splitlines()[0]
    return text if len(text) <= limit else text[:limit].rsplit(" ", 1)[0] + " …"  # whole words


def _damaged(spec: ModelSpec, what: str, location: str, error: BaseException) -> LoadError:
    return LoadError(
        f"Could not load {spec.label} {what} from {location!r} ({type(error).__name__}: {_first_line(error)}). "
        "If the files there are damaged or incomplete, download them again."
    )


def _load_failure(spec: ModelSpec, what: str, location: str, error: BaseException) -> LoadError:
    return LoadError(
        f"Could not load {spec.label} {what} from {location!r}: {_first_line(error)}. "
        f"Without network access, download the weights elsewhere and point the app at them: "
        f"{spec.env_prefix}_MODEL=/path/to/weights"
        + (f" and {spec.env_prefix}_ADAPTER=/path/to/adapter" if spec.adapter_id else "")
        + " (or load_reranker(..., model_path=...))."
    )


def _wrong_folder(spec: ModelSpec, folder: str, error: BaseException) -> LoadError:
    """A local folder that holds no loadable model (empty, the adapter's, another model's)."""
    missing = [name for name in ("config.json", "preprocessor_config.json", "tokenizer_config.json")
               if not os.path.isfile(os.path.join(folder, name))]
    found = "it has no " + ", ".join(missing) if missing else _first_line(error)
    adapter = " (an adapter's folder holds adapter_config.json: it goes in " + f"{spec.env_prefix}_ADAPTER)" \
        if os.path.isfile(os.path.join(folder, "adapter_config.json")) else ""
    return LoadError(f"Could not load {spec.label} weights from the folder {folder!r}: {found}{adapter}. Point "
                     f"{spec.env_prefix}_MODEL at the folder of the whole model (config.json, the processor "
                     "and tokenizer files, *.safetensors).")


class HubUnreachable(OSError):
    pass


def local_weights(name: str, spec: ModelSpec, what: str) -> str:
    """A local folder for `name`: the folder itself, the Hub cache, or a download.

    Checking the cache and the connection first turns "offline and not cached" into one clear
    error at once, instead of minutes of retried requests inside `from_pretrained`.
    """
    if os.path.isdir(name):
        return name
    if missing := _no_folder(name, spec, what):
        raise missing
    from huggingface_hub import constants, snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        try:
            return snapshot_download(name, local_files_only=True)
        except LocalEntryNotFoundError:
            pass
        if _offline() or not _hub_reachable(constants.ENDPOINT):
            raise HubUnreachable("not in the local Hugging Face cache, and the Hub cannot be reached")
        return snapshot_download(name)
    except (OSError, ValueError) as error:  # unreachable, unknown repo, invalid id or path
        raise _load_failure(spec, what, name, error) from error


def _offline() -> bool:
    """Offline as huggingface_hub reads it (HF_HUB_OFFLINE, else TRANSFORMERS_OFFLINE, true as
    1/ON/YES/TRUE), but read now: the library reads it once, at its import."""
    value = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE") or ""
    return value.upper() in {"1", "ON", "YES", "TRUE"}


def _no_folder(name: str, spec: ModelSpec, what: str) -> LoadError | None:
    """The error for a weights location that is a path (not a Hub id) to no folder, else None."""
    if os.path.isdir(name) or not (name.startswith(("/", ".", "~")) or name.count("/") > 1 or "\\" in name):
        return None
    variable = f"{spec.env_prefix}_{'ADAPTER' if what == 'adapter' else 'MODEL'}"
    return LoadError(
        f"Could not load {spec.label} {what} from {name!r}: no such folder. Point {variable} (or "
        f"load_reranker's {'adapter_path' if what == 'adapter' else 'model_path'}) at the folder holding "
        f"{'adapter_config.json' if what == 'adapter' else 'config.json'} and the weights, or at a Hub id."
    )


def check_configuration(keys) -> list[str]:
    """At the app's start, what loading would refuse first, before any model loads (on a CPU
    they load at the first ranking): a setting every model reads (RERANKER_DTYPE,
    RERANKER_DEVICE, the cache sizes) raises ValueError or LoadError, naming it; one model's
    weights path to no folder is returned, to be logged (the other model still works)."""
    for variable in ("RERANKER_VISION_CACHE_MB", "RERANKER_PREFIX_CACHE_MB"):
        env_megabytes(variable)
    attention.varlen_requested()  # an on/off setting given as neither
    device = default_device()
    if device.type == "cuda" and not torch.cuda.is_available():
        raise LoadError(f"RERANKER_DEVICE={device}: this torch ({torch.__version__}) sees no CUDA GPU; use cpu")
    if device.type == "cuda" and device.index is not None and device.index >= (count := torch.cuda.device_count()):
        which = "1 CUDA GPU (cuda:0)" if count == 1 else f"{count} CUDA GPUs (cuda:0 to cuda:{count - 1})"
        raise LoadError(f"RERANKER_DEVICE={device}: this machine has {which}")
    default_dtype(device)
    problems = []
    for key in keys:
        spec = get_spec(key)
        location = weights_location(spec)
        for name, what in ((location.model, "weights"), (location.adapter, "adapter")):
            if name and (missing := _no_folder(name, spec, what)):
                problems.append(str(missing))
    return problems


def _hub_reachable(endpoint: str, timeout: float = 5.0) -> bool:
    import socket
    from urllib.parse import urlparse

    parsed = urlparse(endpoint)
    try:
        with socket.create_connection((parsed.hostname, parsed.port or 443), timeout=timeout):
            return True
    except Exception:  # DNS failure, refused, timeout, or a sandbox that forbids it
        return False


def apply_adapter(model, adapter: str, spec: ModelSpec):
    """Merge a LoRA adapter into `model`, refusing one whose tensors did not all land."""
    from peft import PeftModel
    from peft.utils import get_peft_model_state_dict, load_peft_weights

    adapter = local_weights(adapter, spec, "adapter")
    try:
        # The adapter's tensors load where the model is (peft would pick CUDA whenever it is
        # available, which on ZeroGPU means pinned memory in a process with no GPU).
        peft_model = PeftModel.from_pretrained(model, adapter, torch_device=str(model.device))
        expected = load_peft_weights(adapter, device="cpu")
    except (OSError, ValueError) as error:
        raise _load_failure(spec, "adapter", adapter, error) from error
    except Exception as error:  # e.g. a truncated safetensors file, an adapter_config.json without peft_type
        raise _damaged(spec, "adapter", adapter, error) from error
    loaded = get_peft_model_state_dict(peft_model)
    missing = sorted(set(expected) - set(loaded))  # in the file, on no module
    unexpected = sorted(set(loaded) - set(expected))  # on a module, not in the file
    differing = sorted(
        name for name in set(expected) & set(loaded)
        if not torch.equal(loaded[name].detach().cpu().to(expected[name].dtype), expected[name])
    )
    if missing or unexpected or differing:
        details = "; ".join(
            f"{label}: {names[:3]}{' …' if len(names) > 3 else ''} ({len(names)})"
            for label, names in (("not applied", missing), ("not in the file", unexpected), ("different values", differing))
            if names
        )
        raise AdapterMismatchError(
            f"The LoRA adapter {adapter!r} did not load completely onto {spec.label}'s base model ({details}). "
            "A half-applied LoRA gives plausible but wrong scores, so loading stops here; check that the "
            "adapter matches the base model and the installed transformers/peft versions."
        )
    return peft_model.merge_and_unload()


def load_reranker(
    key: str,
    model_path: str | None = None,
    adapter_path: str | None = None,
    device: str | torch.device | None = None,
    dtype: torch.dtype | str | None = None,
    attn_implementation: str | None = None,
    **options,
) -> Reranker:
    """Load a reranker by key (see `reranker.models.MODELS`) with its real Hub loading code.

    Weights: `model_path`/`adapter_path`, else `RERANKER_<KEY>_MODEL`/`_ADAPTER`, else the Hub ids.
    Device: `device`, else `RERANKER_DEVICE`, else CUDA when present. dtype: `dtype`, else
    `default_dtype` (`RERANKER_DTYPE`; bfloat16 on CUDA; float32 on a CPU with the memory for
    both models that way, else bfloat16). Attention: flash_attention_2 when flash-attn is
    installed on CUDA, else SDPA.
    `options` go to `Reranker` (max_pixels, batch_size, vision_cache_bytes, overlap, ...).
    """
    refuse_in_a_rerun_script("load_reranker")  # not a model per PDF render worker
    from transformers import Qwen3VLForConditionalGeneration
    from transformers.utils import logging as transformers_logging

    from .processor import ImageOnlyQwen3VLProcessor

    transformers_logging.disable_progress_bar()  # per-tensor loading bars only clutter app logs and CLI output
    spec = get_spec(key)
    # What can be refused without the weights is refused before them (from the Hub: a download).
    spec.check_budget(options.get("max_pixels"))
    check_cache_sizes(options)
    for variable in ("RERANKER_VISION_CACHE_MB", "RERANKER_PREFIX_CACHE_MB"):  # read by Reranker
        env_megabytes(variable)
    location = weights_location(spec, model_path, adapter_path)
    device = torch.device(device) if device is not None else default_device()
    if device.type == "cuda" and not torch.cuda.is_available():
        raise LoadError(
            f"{spec.label}: device {device} was asked for, but this torch ({torch.__version__}) sees no CUDA GPU; "
            "use the CPU (--device cpu, RERANKER_DEVICE=cpu) or a CUDA build of torch on a GPU machine"
        )
    dtype = parse_dtype(dtype) if dtype else default_dtype(device)
    implementation = attn_implementation or default_attention(device)
    weights = local_weights(location.model, spec, "weights")
    try:
        processor = ImageOnlyQwen3VLProcessor.from_pretrained(weights, padding_side="left")
        model = Qwen3VLForConditionalGeneration.from_pretrained(
            weights,
            dtype=dtype,
            attn_implementation=implementation,
            # Straight onto the GPU, except on ZeroGPU: its CUDA emulation covers only the main
            # thread, and transformers materializes a device_map on worker threads. There the
            # weights load on the CPU and `build_reranker` moves them, in this thread.
            device_map=str(device) if device.type == "cuda" and not on_zero_gpu() else None,
        )
    except (OSError, ValueError) as error:
        if weights == location.model and os.path.isdir(weights):  # a local folder: no network advice
            raise _wrong_folder(spec, weights, error) from error
        raise _load_failure(spec, "weights", location.model, error) from error
    except Exception as error:  # e.g. a truncated safetensors file
        raise _damaged(spec, "weights", location.model, error) from error
    if location.adapter:
        model = apply_adapter(model, location.adapter, spec)
    logger.info("loaded %s from %s (%s, %s)", spec.key, location.model, dtype, implementation)
    return build_reranker(spec, model, processor, device=device, weights=location.model, adapter=location.adapter, **options)


def build_reranker(spec: ModelSpec | str, model, processor, *, device=None, weights: str = "in-memory", adapter=None, **options) -> Reranker:
    """A `Reranker` around an already loaded `Qwen3VLForConditionalGeneration` (adapter merged).

    The LM head is replaced by the single vector W[yes] − W[no]; the rest of the model is kept,
    with the vision encoder's patch embedding run as the matrix product it is (`patch_embedding`).
    """
    spec = get_spec(spec) if isinstance(spec, str) else spec
    device = torch.device(device) if device is not None else default_device()
    vocab = processor.tokenizer.get_vocab()
    try:
        yes_id, no_id = vocab[spec.yes_token], vocab[spec.no_token]
    except KeyError as error:
        raise LoadError(f"{spec.label}: the tokenizer at {weights!r} has no single token {error}") from None
    if len(vocab) > 150_000 and (yes_id, no_id) != spec.qwen_token_ids:
        raise LoadError(
            f"{spec.label}: {spec.yes_token!r}/{spec.no_token!r} are ids {(yes_id, no_id)} in {weights!r}, "
            f"expected {spec.qwen_token_ids} (Qwen's tokenizer); is this the right checkpoint?"
        )
    weight = model.lm_head.weight.detach()
    score_vector = (weight[yes_id].float() - weight[no_id].float()).to(device)
    backbone = model.model  # the LM head is not needed: the score is one dot product
    backbone.to(device).eval()
    attention.use_for_vision(backbone)
    patch_embedding.as_matmul(backbone.visual)  # the same numbers, without cuDNN's slow Conv3d
    dtype = next(backbone.parameters()).dtype
    return Reranker(spec, backbone, processor, score_vector, device=device, dtype=dtype, weights=weights, adapter=adapter, **options)
