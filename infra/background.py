"""A piece of work repeated from a daemon thread until stopped: the followers of the log
(views, ledger, access index) run this way inside a process."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any


class Repeating:
    """Calls `tick` every `interval` seconds. A failing tick is logged (its kind, never its
    message: it may carry data) and retried with exponential back-off up to 64 intervals."""

    def __init__(self, name: str, tick: Callable[[], Any], log: Any, failure: str) -> None:
        self.name, self.tick, self.log, self.failure = name, tick, log, failure
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, interval: float) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, args=(interval,), name=self.name,
                                        daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def _loop(self, interval: float) -> None:
        failures = 0
        while not self._stop.is_set():
            try:
                self.tick()
                failures = 0
            except Exception as exc:  # keep running; report the kind, never the data
                failures += 1
                self.log.error(self.failure, error_type=type(exc).__name__, failures=failures)
            self._stop.wait(interval * (2 ** min(failures, 6)))
