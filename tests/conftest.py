"""Test-session guards: nothing may reach the network, and the Hub is offline.

Model weights cannot be downloaded here, so the suite builds tiny random checkpoints itself
(`reranker.checkpoints`) and runs the real loading and scoring code on them.
"""

from __future__ import annotations

import ipaddress
import os
import socket

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# The app's own settings from the developer's shell must not change what the tests check
# (float32 on the CPU, default cache sizes, the tiny checkpoints each test names).
for _name in [name for name in os.environ if name.startswith("RERANKER_") and name != "RERANKER_QWEN_VOCAB"]:
    del os.environ[_name]
# The suite checks scores to ~1e-5 in float32; without this a machine with under 20 GiB would
# load the models in bfloat16 by default (devices.default_dtype; tested on its own).
os.environ["RERANKER_DTYPE"] = "float32"


def _is_local(address) -> bool:
    if isinstance(address, (str, bytes)):  # AF_UNIX path
        return True
    host = address[0]
    if host in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex


class NetworkAccessError(RuntimeError):
    pass


def _guarded_connect(self, address):
    if self.family in (socket.AF_INET, socket.AF_INET6) and not _is_local(address):
        raise NetworkAccessError(f"test tried to reach the network: {address!r}")
    return _real_connect(self, address)


def _guarded_connect_ex(self, address):
    if self.family in (socket.AF_INET, socket.AF_INET6) and not _is_local(address):
        raise NetworkAccessError(f"test tried to reach the network: {address!r}")
    return _real_connect_ex(self, address)


_real_getaddrinfo = socket.getaddrinfo


class NameLookupBlocked(socket.gaierror):
    """What resolving a host name gives in the tests: as on a machine without DNS (an OSError,
    which code that probes the network handles), but naming the test's attempt. Without it a
    lookup would reach the real resolver, which can hang past any connect time-out."""


def _guarded_getaddrinfo(host, *args, **kwargs):
    name = host.decode() if isinstance(host, bytes) else host
    if name is not None and name != "localhost":
        try:
            ipaddress.ip_address(name.split("%")[0])  # a literal address: no lookup; connect guards it
        except ValueError:
            raise NameLookupBlocked(socket.EAI_NONAME, f"test tried to look up {name!r} on the network") from None
    return _real_getaddrinfo(host, *args, **kwargs)


socket.socket.connect = _guarded_connect
socket.socket.connect_ex = _guarded_connect_ex
socket.getaddrinfo = _guarded_getaddrinfo


@pytest.fixture
def sample_pages_dir():
    from pathlib import Path

    here = Path(__file__).resolve().parent.parent / "data" / "examples" / "sample-pages"
    return here


@pytest.fixture(scope="session")
def tiny_checkpoints(tmp_path_factory):
    """Tiny random Qwen3-VL checkpoints (reranker, base, LoRA adapter), built once per session."""
    from reranker.checkpoints import build_tiny_checkpoints

    return build_tiny_checkpoints(tmp_path_factory.mktemp("tiny-checkpoints"))


@pytest.fixture(scope="session")
def tiny_rerankers(tiny_checkpoints):
    """Both rerankers loaded through `load_reranker` from the tiny checkpoints (float32, CPU)."""
    from reranker import load_reranker

    return {
        "qwen3-vl-reranker-2b": load_reranker("qwen3-vl-reranker-2b", model_path=str(tiny_checkpoints.reranker), device="cpu"),
        "qwen3-reranker-mm-2b": load_reranker(
            "qwen3-reranker-mm-2b", model_path=str(tiny_checkpoints.base), adapter_path=str(tiny_checkpoints.adapter), device="cpu"
        ),
    }


@pytest.fixture(scope="session")
def sample_images():
    from pathlib import Path

    from PIL import Image

    folder = Path(__file__).resolve().parent.parent / "data" / "examples" / "sample-pages"
    return [Image.open(path).convert("RGB") for path in sorted(folder.glob("doc_*.jpg"))]
