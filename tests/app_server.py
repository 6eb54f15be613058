"""The real app (`python app.py`) as a subprocess on the tiny checkpoints, for end-to-end tests.

`start_app` launches it on a free loopback port with its own database, image cache and Gradio
temp folder, waits until the page answers HTTP 200 and returns an `AppServer`; `stop` ends it.
Test modules build a module-scoped fixture from it (see `app_server_fixture`), so each module
gets one server and its own database.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "data" / "examples" / "sample-pages"
STARTUP_SECONDS = 120


@dataclass
class AppServer:
    url: str
    db_path: Path
    cache_dir: Path
    log_path: Path
    process: subprocess.Popen

    def log_tail(self, chars: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=15)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _answers(url: str) -> bool:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never via a proxy
    try:
        with opener.open(url, timeout=5) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def start_app(checkpoint_env: dict[str, str], workdir: Path) -> AppServer:
    """`python app.py` on the given checkpoints, CPU, a fresh database; returns once it serves."""
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    env = {
        **os.environ,
        **checkpoint_env,
        "RERANKER_DEVICE": "cpu",
        "RERANKER_DB": str(workdir / "arena.db"),
        "RERANKER_CACHE": str(workdir / "cache"),
        "GRADIO_TEMP_DIR": str(workdir / "gradio"),
        "GRADIO_SERVER_PORT": str(port),
        "GRADIO_SERVER_NAME": "127.0.0.1",
        "GRADIO_ANALYTICS_ENABLED": "False",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "NO_PROXY": "127.0.0.1,localhost",
        "no_proxy": "127.0.0.1,localhost",
    }
    log_path = workdir / "server.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    server = AppServer(f"http://127.0.0.1:{port}/", workdir / "arena.db", workdir / "cache", log_path, process)
    deadline = time.monotonic() + STARTUP_SECONDS
    while not _answers(server.url):
        if process.poll() is not None:
            raise RuntimeError(f"app.py exited with {process.returncode} before serving:\n{server.log_tail()}")
        if time.monotonic() > deadline:
            server.stop()
            raise RuntimeError(f"app.py did not answer within {STARTUP_SECONDS} s:\n{server.log_tail()}")
        time.sleep(0.25)
    return server


def app_server_fixture():
    """A module-scoped `app_server` fixture: one real app per test module, stopped at its end."""

    @pytest.fixture(scope="module")
    def app_server(tiny_checkpoints, tmp_path_factory):
        server = start_app(tiny_checkpoints.environment(), tmp_path_factory.mktemp("app"))
        try:
            yield server
        finally:
            server.stop()
            if server.process.returncode not in (0, -15, None):
                print(f"app.py ended with {server.process.returncode}:\n{server.log_tail()}")

    return app_server


def sample_pdf(path: Path, numbers=(0, 1), samples: Path = SAMPLES) -> Path:
    """A PDF with one page per sample image (doc_<n>.jpg), built with PyMuPDF."""
    import pymupdf

    document = pymupdf.open()
    for number in numbers:
        with pymupdf.open(samples / f"doc_{number}.jpg") as image:
            with pymupdf.open("pdf", image.convert_to_pdf()) as page:
                document.insert_pdf(page)
    path.parent.mkdir(parents=True, exist_ok=True)
    document.save(path)
    document.close()
    return path
