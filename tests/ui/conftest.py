import pytest

from reranker import ranking, ui
from reranker.store import Store

from . import QUERY


@pytest.fixture
def arena(tmp_path, tiny_rerankers):
    """An app's shared state on the tiny checkpoints and a fresh database."""
    pool = ranking.ModelPool(loader=lambda key: tiny_rerankers[key])
    return ui.Arena(pool, Store(tmp_path / "arena.db"), tmp_path / "cache")


@pytest.fixture
def ranked(arena):
    """Four sample pages ranked for QUERY (the /rank result)."""
    from ..bad_inputs import SAMPLE_PAGES

    files = [str(path) for path in SAMPLE_PAGES[:4]]
    return ui.rank_tab.rank_pages(arena, files, QUERY, None, None, None, None)
