"""The app on a ZeroGPU Space: its start-up under ZeroGPU's CUDA emulation, and the model work of
a ranking in a forked worker process that gets its arguments pickled (what `spaces.GPU` does)."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import gradio as gr
import pytest

from reranker import ranking, ui
from reranker.models import A_KEY, B_KEY
from reranker.store import Store

from .bad_inputs import SAMPLE_PAGES, sample_pdf
from .forked import ForkedWorker

QUERY = "Which region of the SUC2 frequency plot leads to extinction?"
HERE = Path(__file__).resolve().parent


@pytest.fixture
def arena(tmp_path, tiny_rerankers):
    pool = ranking.ModelPool(loader=lambda key: tiny_rerankers[key])
    return ui.Arena(pool, Store(tmp_path / "arena.db"), tmp_path / "cache")


def test_an_arena_pickles_as_a_reference_to_this_process(arena):
    assert pickle.loads(pickle.dumps(arena)) is arena
    with pytest.raises(pickle.UnpicklingError, match="only in the process that made it or one forked from it"):
        ui.arena._registered_arena(-1)


def test_the_model_work_runs_in_a_forked_worker_and_everything_else_in_the_app(arena, tiny_rerankers, tmp_path, monkeypatch):
    pdf = tmp_path / "report.pdf"
    pdf.write_bytes(sample_pdf(6))
    image = str(SAMPLE_PAGES[7])
    # The app process has used its worker pools and caches before the fork (the harsh case:
    # inherited executors without threads, caches holding entries).
    ui.rank_tab.rank_pages(arena, [str(pdf)], "An earlier question", None, None, None, None)

    with ForkedWorker(ui.gpu.score_on_gpu) as worker:  # what spaces.GPU puts behind the function
        calls = []
        monkeypatch.setattr(ui.gpu, "score_on_gpu", lambda *args: calls.append(args) or worker.call(*args))
        first = ui.rank_tab.rank_pages(arena, [str(pdf)], QUERY, None, None, None, None)
        second = ui.rank_tab.rank_pages(arena, [image], "Another question", None, None, None, None)  # the same worker again
        assert len(calls) == 2
        again = ui.rank_tab.rank_pages(arena, [str(pdf)], QUERY, None, None, None, None)
        assert len(calls) == 2, "every score was stored: no GPU call"
        with pytest.raises(gr.Error, match="The query is empty"):
            ui.rank_tab.rank_pages(arena, [image], "  ", None, None, None, None)
        assert len(calls) == 2

    # Scores computed in the worker equal the models' own, computed here.
    pages = ranking.ingest([str(pdf)])[0]
    for key, reranker in tiny_rerankers.items():
        expected = reranker.score(QUERY, pages)
        assert first["models"][key]["scores"] == pytest.approx(expected, abs=1e-5)
        assert first["models"][key]["error"] is None
        assert again["models"][key]["scores"] == first["models"][key]["scores"]
    assert len(second["pages"]) == 1 and second["models"][A_KEY]["error"] is None

    # The app process stored the ranking and made the thumbnails.
    for data in (first, second):
        stored = arena.store.query_pages(data["query_id"])
        assert sorted(page.page_hash for page in stored) == sorted(page["content_hash"] for page in data["pages"])
        _, _, gallery_a, _, gallery_b, _, _, _, _ = ui.rank_tab.show_ranking(arena, data)
        assert len(gallery_a) == len(gallery_b) == len(data["pages"])
        assert all(Path(path).is_file() for path, _ in gallery_a + gallery_b)


def test_a_whole_rank_request_also_runs_in_a_forked_worker(arena, tmp_path):
    """Deployments that put all of `rank_pages` in a forked worker work too (its store writes,
    thumbnails and PDF rendering happen in the worker, a daemon that may not start processes)."""
    pdf = tmp_path / "report.pdf"
    pdf.write_bytes(sample_pdf(6))
    ui.rank_tab.rank_pages(arena, [str(pdf)], "An earlier question", None, None, None, None)
    with ForkedWorker(ui.rank_tab.rank_pages) as worker:
        data = worker.call(arena, [str(pdf)], QUERY, None, None, None, None)
    assert len(data["pages"]) == 6 and all(model["error"] is None for model in data["models"].values())
    assert len(arena.store.query_pages(data["query_id"])) == 6


def test_the_app_starts_under_zerogpus_cuda_emulation(tiny_checkpoints):
    """Both models load onto ZeroGPU's emulated CUDA device, and `spaces.GPU` wraps the model work.

    (transformers loads a device_map on worker threads, outside the emulation, and peft puts an
    adapter on CUDA with pinned memory: both fail there unless the app loads on the CPU and moves.)
    """
    env = dict(
        os.environ,
        SPACES_ZERO_GPU="true",
        SPACES_ZERO_DEVICE_API_URL="http://127.0.0.1:9/",  # never called at start-up
        RERANKER_QWEN3_VL_RERANKER_2B_MODEL=str(tiny_checkpoints.reranker),
        RERANKER_QWEN3_RERANKER_MM_2B_MODEL=str(tiny_checkpoints.base),
        RERANKER_QWEN3_RERANKER_MM_2B_ADAPTER=str(tiny_checkpoints.adapter),
    )
    env.pop("RERANKER_DTYPE")  # the app's own default on a GPU: bfloat16
    done = subprocess.run([sys.executable, str(HERE / "zerogpu_startup.py")], env=env, capture_output=True, text=True, timeout=600)
    lines = [line for line in done.stdout.splitlines() if line.startswith("REPORT ")]
    assert done.returncode == 0 and lines, done.stderr[-4000:]
    report = json.loads(lines[-1].removeprefix("REPORT "))
    assert report["cuda_available"] and report["score_on_gpu_wrapped_by_spaces"]
    for key, model in report["models"].items():
        assert model["loaded"], f"{key}: {model['error']}"
        assert model["device"] == "cuda" and model["parameters_on"] == ["cuda:0"] and model["dtype"] == "bfloat16"


def test_the_gpu_time_asked_for_grows_with_the_pages_to_score_up_to_a_cap(arena, sample_images):
    one, many = sample_images[:1], sample_images[:4] * 50
    assert ui.gpu.gpu_seconds(arena, QUERY, {A_KEY: one}, None, {}) == 21
    assert ui.gpu.gpu_seconds(arena, QUERY, {A_KEY: one * 25, B_KEY: one * 25}, None, {}) == 70
    assert ui.gpu.gpu_seconds(arena, QUERY, {A_KEY: many, B_KEY: many}) == ui.gpu.GPU_SECONDS_MAX
