"""The progress reporter the Spark jobs share: 'n/total CCDs, rate, ETA' from an accumulator."""

from __future__ import annotations

import logging
import threading
import time

from .logs import PROGRESS

log = logging.getLogger(__name__)


class Progress:
    """Logs 'n/total CCDs, rate, ETA' (a progress line) every ``every`` seconds from an accumulator,
    when the count moved (Spark adds a task's count when the task ends)."""

    def __init__(self, acc, total: int, every: float = 30.0, what: str = "preprocess"):
        self.acc, self.total, self.every, self.what = acc, total, every, what
        self._stop = threading.Event()
        self._t0 = time.time()
        self._last = 0
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(timeout=2)
        if exc[0] is None and self.acc.value != self._last:
            self._line()  # the closing count, when the last line did not show it

    def _loop(self):
        while not self._stop.wait(self.every):
            if self.acc.value != self._last:
                self._line()

    def _line(self):
        n = self._last = self.acc.value
        el = time.time() - self._t0
        rate = n / el if el > 0 else 0.0
        eta = (self.total - n) / rate if rate > 0 else float("nan")
        log.info("%s: %d/%d CCDs done, %.2f CCD/s, ETA %.0f s", self.what, n, self.total, rate, eta, extra=PROGRESS)
