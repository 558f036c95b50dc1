"""Token-budget dynamic batching, after text-embeddings-inference's ``core/src/queue.rs``.

A transformer batch costs what its padded tensor costs: ``longest x count`` tokens. So a batch
is filled while that padded cost stays within a token budget and the count within a maximum;
texts of similar length travel together, and one very long text cannot inflate the padding of
sixty-three short ones. Two layers:

- ``plan_batches``: pure planning over a known list of lengths (what the worker does with one
  poll's records). Length-sorted overall, so padding is minimal; a text longer than the budget
  on its own still gets a batch (of one) rather than being dropped. Given what a model call
  costs on top of its tokens, it returns the cheapest split rather than the fullest batches.
- ``DynamicBatcher``: the same rule over a stream. Many producers ``put``; ONE consumer (the
  model's owner) takes batches with ``next_batch``, which returns as soon as a batch is full or
  the oldest item has waited ``max_wait_s``, so a trickle still flows with low latency. The
  queue is bounded: overload is refused at once and counted (``rejected``), never buffered
  without limit.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from scorer.exceptions import ScorerError

T = TypeVar("T")


def _check_limits(max_batch_size: int, max_batch_tokens: int) -> None:
    if max_batch_size < 1:
        raise ValueError(f"max_batch_size must be at least 1, got {max_batch_size}")
    if max_batch_tokens < 1:
        raise ValueError(f"max_batch_tokens must be at least 1, got {max_batch_tokens}")


def padded_cost(lengths: Iterable[int]) -> int:
    """Tokens a batch really costs once padded: its longest length times its count."""
    lengths = list(lengths)
    return max(lengths) * len(lengths) if lengths else 0


def plan_batches(
    lengths: Sequence[int],
    *,
    max_batch_size: int,
    max_batch_tokens: int,
    call_cost_tokens: int = 0,
) -> list[list[int]]:
    """Indices of ``lengths`` grouped into batches: every index once, shortest texts first.

    Each batch holds at most ``max_batch_size`` indices and has a padded cost of at most
    ``max_batch_tokens``, except a single text longer than the budget, which is alone.

    ``call_cost_tokens`` is what one model call costs beyond its padded tokens (dispatch,
    tokenization, thread wake-ups), in tokens. Above 0 the plan is the cheapest split of the
    sorted texts into consecutive groups, total ``call_cost + longest x count`` (exact
    dynamic programming): ten tweets of 12 to 78 tokens in one call are padded to 780 tokens;
    at a call cost of 48 the plan is three calls of 100 + 135 + 234 tokens. That is what
    matters for the small batches of a steady stream; a drained backlog, sorted, plans much as
    the greedy fill does. 0 = greedy fill in order (fewest calls).
    """
    _check_limits(max_batch_size, max_batch_tokens)
    if call_cost_tokens < 0:
        raise ValueError(f"call_cost_tokens must not be negative, got {call_cost_tokens}")
    for i, n in enumerate(lengths):
        if n < 0:
            raise ValueError(f"lengths[{i}] is negative ({n})")
    order = sorted(range(len(lengths)), key=lengths.__getitem__)
    if call_cost_tokens:
        return _cheapest_split(order, [lengths[i] for i in order], max_batch_size,
                               max_batch_tokens, call_cost_tokens)
    batches: list[list[int]] = []
    current: list[int] = []
    for i in order:
        # Ascending order: the newcomer is the batch's longest, so the cost is its length x count.
        if current and (
            len(current) == max_batch_size or lengths[i] * (len(current) + 1) > max_batch_tokens
        ):
            batches.append(current)
            current = []
        current.append(i)
    if current:
        batches.append(current)
    return batches


def _cheapest_split(order: list[int], ascending: list[int], max_size: int, max_tokens: int,
                    call_cost: int) -> list[list[int]]:
    """Consecutive groups of the ascending lengths minimising sum(call_cost + last x count)."""
    n = len(ascending)
    best = [0] * (n + 1)
    cut = [0] * (n + 1)
    for j in range(1, n + 1):
        longest = ascending[j - 1]  # a group ending at j is padded to its last (longest) text
        best_j, cut_j = best[j - 1] + call_cost + longest, j - 1
        for i in range(j - 2, max(-1, j - 1 - max_size), -1):
            count = j - i
            if longest * count > max_tokens:
                break
            cost = best[i] + call_cost + longest * count
            if cost < best_j:
                best_j, cut_j = cost, i
        best[j], cut[j] = best_j, cut_j
    groups: list[list[int]] = []
    j = n
    while j > 0:
        groups.append(order[cut[j]:j])
        j = cut[j]
    groups.reverse()
    return groups


@dataclass(frozen=True)
class _Entry(Generic[T]):
    item: T
    length: int
    enqueued: float


class BatcherClosed(ScorerError):
    """``put`` after ``close``: the consumer is shutting down and takes nothing new."""


class DynamicBatcher(Generic[T]):
    """A bounded, thread-safe queue that hands out token-budget batches (see module doc)."""

    def __init__(
        self,
        *,
        length: Callable[[T], int],
        max_batch_size: int,
        max_batch_tokens: int,
        max_wait_s: float,
        capacity: int,
    ) -> None:
        _check_limits(max_batch_size, max_batch_tokens)
        if max_wait_s < 0:
            raise ValueError(f"max_wait_s must not be negative, got {max_wait_s}")
        if capacity < 1:
            raise ValueError(f"capacity must be at least 1, got {capacity}")
        self._length = length
        self.max_batch_size = max_batch_size
        self.max_batch_tokens = max_batch_tokens
        self.max_wait_s = max_wait_s
        self.capacity = capacity
        self._queue: deque[_Entry[T]] = deque()
        self._cond = threading.Condition()
        self._closed = False
        self.accepted = 0
        self.rejected = 0
        self.batches = 0

    def __len__(self) -> int:
        with self._cond:
            return len(self._queue)

    @property
    def closed(self) -> bool:
        return self._closed

    def put(self, item: T) -> bool:
        """Enqueue ``item``; False (and ``rejected`` + 1) when the queue is full."""
        n = self._length(item)
        if n < 0:
            raise ValueError(f"length of an item is negative ({n})")
        with self._cond:
            if self._closed:
                raise BatcherClosed("the batcher is closed; no new items are taken")
            if len(self._queue) >= self.capacity:
                self.rejected += 1
                return False
            self._queue.append(_Entry(item, n, time.monotonic()))
            self.accepted += 1
            self._cond.notify_all()
            return True

    def submit(self, items: Iterable[T]) -> int:
        """``put`` each item; returns how many were taken (the rest are counted as rejected)."""
        return sum(1 for item in items if self.put(item))

    def close(self) -> None:
        """Take nothing new; ``next_batch`` hands out what is left at once, then ``[]``."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def next_batch(self, timeout_s: float | None = None) -> list[T]:
        """The next batch, sorted by length; ``[]`` when none is ready within ``timeout_s``.

        A batch is ready when the queue holds more than one batch's worth (by count or token
        budget), when its oldest item has waited ``max_wait_s``, or once the batcher is closed.
        ``timeout_s=None`` waits until one is ready (or the batcher closes empty).
        """
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        with self._cond:
            while True:
                take, full = self._head()
                now = time.monotonic()
                if take:
                    waited = now - self._queue[0].enqueued
                    if full or self._closed or waited >= self.max_wait_s:
                        return self._pop(take)
                elif self._closed:
                    return []
                waits = []
                if deadline is not None:
                    if now >= deadline:
                        return []
                    waits.append(deadline - now)
                if take:
                    waits.append(self._queue[0].enqueued + self.max_wait_s - now)
                self._cond.wait(min(waits) if waits else None)

    def _head(self) -> tuple[int, bool]:
        """How many queued items form the next batch (FIFO), and whether it is full.

        Full means nothing more could join: the count is reached, the next item breaks the
        budget, or even an item no longer than the current longest would (a lone oversize text).
        """
        longest = 0
        count = 0
        for entry in self._queue:
            if count == self.max_batch_size:
                return count, True
            longest_if = max(longest, entry.length)
            if count and longest_if * (count + 1) > self.max_batch_tokens:
                return count, True
            longest, count = longest_if, count + 1
        full = count == self.max_batch_size or (
            count > 0 and longest * (count + 1) > self.max_batch_tokens
        )
        return count, full

    def _pop(self, count: int) -> list[T]:
        entries = [self._queue.popleft() for _ in range(count)]
        entries.sort(key=lambda e: e.length)
        self.batches += 1
        return [e.item for e in entries]
