"""The size-bounded LRU that every cache of the app (scores, vision outputs, page prefixes,
ingested uploads) stands on."""

from reranker.lru import LRUCache


def test_the_least_recently_used_items_leave_first_once_the_sizes_pass_the_capacity():
    cache = LRUCache(10)
    cache.put("a", 1, 4)
    cache.put("b", 2, 4)
    assert cache.get("a") == 1  # "b" is now the least recently used
    cache.put("c", 3, 4)
    assert "b" not in cache and cache.get("a") == 1 and cache.get("c") == 3
    assert cache.size == 8 and len(cache) == 2


def test_a_new_value_replaces_the_old_and_its_size():
    cache = LRUCache(10)
    cache.put("a", "old", 6)
    cache.put("a", "new", 3)
    assert cache.get("a") == "new" and cache.size == 3


def test_a_value_larger_than_the_whole_cache_is_not_held_nor_is_the_value_it_replaces():
    cache = LRUCache(100)
    cache.put("page", "old", 10)
    cache.put("other", "kept", 10)
    cache.put("page", "new", 200)
    assert cache.get("page") is None  # never the replaced value
    assert cache.get("other") == "kept" and cache.size == 10


def test_hits_and_misses_are_counted_and_contains_counts_neither():
    cache = LRUCache(2)
    cache.put("a", 1)
    cache.get("a"), cache.get("b")
    assert "a" in cache and "b" not in cache
    assert (cache.hits, cache.misses) == (1, 1)
    cache.clear()
    assert len(cache) == 0 and cache.size == 0
