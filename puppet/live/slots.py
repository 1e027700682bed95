"""A one-deep slot between two threads of the live loop: a live source drops stale items, a file blocks."""

from __future__ import annotations

import threading
import time

EOS = object()  # end of stream: the file ended, --max-frames reached or stop requested


class Slot:
    """A one-deep queue between two threads.

    drop=True (live sources): put() replaces a waiting item and returns True (the stale one was dropped).
    drop=False (files): put() waits until the slot is free. Both give up when `stop` is set.
    """

    def __init__(self, drop: bool, stop: threading.Event):
        self.drop = drop
        self.stop = stop
        self._item = None
        self._full = False
        self._cond = threading.Condition()
        self.lost = 0  # items a put() gave up on because the loop was stopping

    def put(self, item) -> bool:
        with self._cond:
            dropped = False
            if self._full:
                if self.drop:
                    dropped = self._item is not EOS
                else:
                    while self._full and not self.stop.is_set():
                        self._cond.wait(0.05)
                    if self.stop.is_set():
                        self.lost += item is not EOS
                        return False
            self._item, self._full = item, True
            self._cond.notify_all()
            return dropped

    def drain(self) -> int:
        """Empty the slot; how many items (not EOS) it still held: 0 or 1."""
        with self._cond:
            held = self._full and self._item is not EOS
            self._item, self._full = None, False
            return int(held)

    def get(self, timeout: float):
        """The item, or None after `timeout` seconds with nothing (or when stopping)."""
        with self._cond:
            end = time.perf_counter() + timeout
            while not self._full:
                left = end - time.perf_counter()
                if left <= 0 or self.stop.is_set():
                    return None
                self._cond.wait(min(left, 0.05))
            item, self._item, self._full = self._item, None, False
            self._cond.notify_all()
            return item
