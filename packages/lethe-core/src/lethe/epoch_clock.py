"""``EpochClock``: training time to a forgetting target, with the checks kept off the clock.

Used by the speed benchmarks to time DELETE "until forgotten" (``forget_train`` at or below a
target) against its published number of epochs.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator

from lethe.engine import synchronize


class EpochClock:
    """Wraps the forget loader: times the batches of each epoch and, between epochs, checks
    ``forget_train`` with the clock paused. Once the target is reached (and ``stop`` is set) the
    remaining epochs are empty. Call ``close_epoch()`` after the last epoch."""

    def __init__(self, inner: Iterable, check: Callable[[], float], target: float, stop: bool, device) -> None:
        self.inner, self.dataset = inner, inner.dataset
        self.check, self.target, self.stop, self.device = check, target, stop, device
        self.train_seconds = 0.0
        self.epochs = 0
        self.history: list[dict[str, float]] = []
        self.reached: dict[str, float] | None = None
        self._start: float | None = None

    def __len__(self) -> int:
        return len(self.inner)

    @property
    def done(self) -> bool:
        return self.stop and self.reached is not None

    def close_epoch(self) -> bool:
        """Stop the clock after an epoch and check it; returns ``done``."""
        if self._start is not None:
            synchronize(self.device)
            self.train_seconds += time.perf_counter() - self._start
            self._start = None
            self.epochs += 1
            entry = {"epoch": self.epochs, "train_seconds": self.train_seconds, "forget_train": self.check()}
            self.history.append(entry)
            if self.reached is None and entry["forget_train"] <= self.target:
                self.reached = entry
        return self.done

    def __iter__(self) -> Iterator:
        if self.close_epoch():
            return
        synchronize(self.device)
        self._start = time.perf_counter()
        yield from self.inner
