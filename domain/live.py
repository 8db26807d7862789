"""Decoded participants kept in memory for the command side, one lock per record.

A command works on the live object itself (no copy): it holds the record's lock from load
to save, and any failure drops the object, so a half-applied command never survives. The
store stays the judge of concurrency: a write from another process makes the next save
here conflict on (stream, version), the object is dropped and the command reloads.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable
from typing import Generic, TypeVar
from uuid import UUID

T = TypeVar("T")
STRIPES = 256


class LiveRecords(Generic[T]):
    def __init__(self, maxsize: int) -> None:
        self._maxsize = maxsize
        self._items: OrderedDict[UUID, T] = OrderedDict()
        self._guard = threading.Lock()
        self._locks = [threading.RLock() for _ in range(STRIPES)]

    def lock(self, key: UUID) -> threading.RLock:
        return self._locks[key.int % STRIPES]

    def locks(self, keys: Iterable[UUID]) -> list[threading.RLock]:
        """The locks of several records, each once, in one fixed order: two callers locking
        overlapping sets take them in the same order and cannot deadlock."""
        return [self._locks[i] for i in sorted({key.int % STRIPES for key in keys})]

    def get(self, key: UUID) -> T | None:
        with self._guard:
            item = self._items.get(key)
            if item is not None:
                self._items.move_to_end(key)
            return item

    def put(self, key: UUID, item: T) -> None:
        if self._maxsize <= 0:
            return
        with self._guard:
            self._items[key] = item
            self._items.move_to_end(key)
            while len(self._items) > self._maxsize:
                self._items.popitem(last=False)

    def drop(self, key: UUID) -> None:
        with self._guard:
            self._items.pop(key, None)
