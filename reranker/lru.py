"""A small thread-safe LRU bounded by total size: the caches of scores, vision outputs, page
prefixes and ingested files all use it."""

from __future__ import annotations

import threading
from collections import OrderedDict


class LRUCache:
    """A small LRU keyed by anything, bounded by a total size (bytes, or entries with size 1)."""

    def __init__(self, capacity: int):
        self.capacity = capacity
        self.size = 0
        self._items: OrderedDict = OrderedDict()
        self._lock = threading.Lock()  # e.g. the preparation thread reads while the scoring thread writes
        self.hits = self.misses = 0

    def get(self, key):
        with self._lock:
            item = self._items.get(key)
            if item is None:
                self.misses += 1
                return None
            self.hits += 1
            self._items.move_to_end(key)
            return item[0]

    def put(self, key, value, size: int = 1) -> None:
        """Hold `value` under `key`; one larger than the whole cache is not held, and nor is any
        older value under its key (a later `get` must not return what was replaced)."""
        with self._lock:
            if key in self._items:
                self.size -= self._items.pop(key)[1]
            if size > self.capacity:
                return
            self._items[key] = (value, size)
            self.size += size
            while self.size > self.capacity:
                self.size -= self._items.popitem(last=False)[1][1]

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self.size = 0

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key) -> bool:
        """Whether `key` is held (neither a hit nor a miss, nor a use that keeps it longer)."""
        with self._lock:
            return key in self._items
