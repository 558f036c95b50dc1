"""Token-budget batching: the pure planner's invariants and the streaming batcher's behaviour."""

from __future__ import annotations

import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scorer.batcher import BatcherClosed, DynamicBatcher, padded_cost, plan_batches

# --- plan_batches -----------------------------------------------------------------------


def test_plan_example() -> None:
    # sorted: 0 (5), 3 (6), 2 (7), 1 (100); size cap 2; 100 alone breaks the 20-token budget
    assert plan_batches([5, 100, 7, 6], max_batch_size=2, max_batch_tokens=20) == [
        [0, 3],
        [2],
        [1],
    ]


def test_plan_fills_by_padded_cost_not_sum() -> None:
    # sum of [10, 10, 10] is 30 but the padded cost of adding a 40 would be 40 x 4 = 160
    assert plan_batches([10, 40, 10, 10], max_batch_size=64, max_batch_tokens=100) == [
        [0, 2, 3],
        [1],
    ]


def test_plan_empty_and_bad_limits() -> None:
    assert plan_batches([], max_batch_size=4, max_batch_tokens=10) == []
    with pytest.raises(ValueError, match="max_batch_size"):
        plan_batches([1], max_batch_size=0, max_batch_tokens=10)
    with pytest.raises(ValueError, match="max_batch_tokens"):
        plan_batches([1], max_batch_size=1, max_batch_tokens=0)
    with pytest.raises(ValueError, match=r"lengths\[1\]"):
        plan_batches([1, -1], max_batch_size=1, max_batch_tokens=10)


@settings(max_examples=400, deadline=None)
@given(
    lengths=st.lists(st.integers(min_value=0, max_value=600), max_size=300),
    max_batch_size=st.integers(min_value=1, max_value=80),
    max_batch_tokens=st.integers(min_value=1, max_value=5000),
)
def test_plan_invariants(lengths: list[int], max_batch_size: int, max_batch_tokens: int) -> None:
    batches = plan_batches(
        lengths, max_batch_size=max_batch_size, max_batch_tokens=max_batch_tokens
    )
    flat = [i for batch in batches for i in batch]
    assert sorted(flat) == list(range(len(lengths)))  # every index exactly once
    assert [lengths[i] for i in flat] == sorted(lengths)  # length-sorted overall and inside
    for batch in batches:
        assert 1 <= len(batch) <= max_batch_size
        cost = padded_cost(lengths[i] for i in batch)
        assert cost <= max_batch_tokens or len(batch) == 1
    # greedy: the next batch's first text could not have joined the previous batch
    for prev, nxt in zip(batches, batches[1:], strict=False):
        joined = [lengths[i] for i in prev] + [lengths[nxt[0]]]
        assert len(joined) > max_batch_size or padded_cost(joined) > max_batch_tokens


def _plan_cost(lengths: list[int], batches: list[list[int]], call_cost: int) -> int:
    return sum(call_cost + padded_cost(lengths[i] for i in b) for b in batches)


def test_cheapest_plan_splits_a_small_mixed_batch() -> None:
    tweets = [78, 12, 45, 20, 60, 15, 30, 70, 25, 40]
    greedy = plan_batches(tweets, max_batch_size=64, max_batch_tokens=4096)
    assert len(greedy) == 1 and _plan_cost(tweets, greedy, 48) == 48 + 780
    cheap = plan_batches(tweets, max_batch_size=64, max_batch_tokens=4096, call_cost_tokens=48)
    assert [[tweets[i] for i in b] for b in cheap] == [
        [12, 15, 20, 25], [30, 40, 45], [60, 70, 78]]
    assert _plan_cost(tweets, cheap, 48) == 3 * 48 + 100 + 135 + 234
    # a call costing more than any padding saved: one batch again
    assert len(plan_batches(tweets, max_batch_size=64, max_batch_tokens=4096,
                            call_cost_tokens=10_000)) == 1
    with pytest.raises(ValueError, match="call_cost_tokens"):
        plan_batches(tweets, max_batch_size=4, max_batch_tokens=10, call_cost_tokens=-1)


def _brute_force_cost(ascending: list[int], size: int, tokens: int, call: int) -> float:
    """Cheapest split of the ascending lengths into consecutive groups, by enumeration."""
    n = len(ascending)
    best = float("inf")
    for mask in range(1 << max(n - 1, 0)):
        cuts = [0] + [i + 1 for i in range(n - 1) if mask >> i & 1] + [n]
        groups = [ascending[a:b] for a, b in zip(cuts, cuts[1:], strict=False)]
        if all(len(g) <= size and (len(g) == 1 or padded_cost(g) <= tokens) for g in groups):
            best = min(best, sum(call + padded_cost(g) for g in groups))
    return best


@settings(max_examples=300, deadline=None)
@given(
    lengths=st.lists(st.integers(min_value=0, max_value=120), min_size=1, max_size=9),
    max_batch_size=st.integers(min_value=1, max_value=6),
    max_batch_tokens=st.integers(min_value=1, max_value=400),
    call_cost=st.integers(min_value=1, max_value=200),
)
def test_cheapest_plan_is_optimal_and_keeps_the_limits(
    lengths: list[int], max_batch_size: int, max_batch_tokens: int, call_cost: int
) -> None:
    batches = plan_batches(lengths, max_batch_size=max_batch_size,
                           max_batch_tokens=max_batch_tokens, call_cost_tokens=call_cost)
    flat = [i for batch in batches for i in batch]
    assert sorted(flat) == list(range(len(lengths)))
    assert [lengths[i] for i in flat] == sorted(lengths)
    for batch in batches:
        assert 1 <= len(batch) <= max_batch_size
        assert padded_cost(lengths[i] for i in batch) <= max_batch_tokens or len(batch) == 1
    assert _plan_cost(lengths, batches, call_cost) == _brute_force_cost(
        sorted(lengths), max_batch_size, max_batch_tokens, call_cost)


# --- DynamicBatcher ---------------------------------------------------------------------


def make(**kw: object) -> DynamicBatcher[str]:
    opts: dict[str, object] = dict(
        length=len, max_batch_size=4, max_batch_tokens=1000, max_wait_s=30.0, capacity=100
    )
    opts.update(kw)
    return DynamicBatcher(**opts)  # type: ignore[arg-type]


def test_full_count_is_handed_out_without_waiting() -> None:
    b = make()
    assert b.submit(["aaa", "a", "aa", "aaaa", "b"]) == 5
    # max_wait is 30 s and the call gives up after 10 s: only a full batch can come back
    assert b.next_batch(timeout_s=10) == ["a", "aa", "aaa", "aaaa"]  # FIFO head, length-sorted
    assert len(b) == 1


def test_full_budget_is_handed_out_without_waiting() -> None:
    b = make(max_batch_tokens=25)
    b.submit(["x" * 10, "y" * 10, "z" * 10])
    assert b.next_batch(timeout_s=10) == ["x" * 10, "y" * 10]  # a third makes 30 > 25
    assert b.next_batch(timeout_s=0) == []  # one 10-token item left: not full, not old enough


def test_lone_oversize_item_is_a_full_batch() -> None:
    b = make(max_batch_tokens=5)
    b.put("x" * 50)
    assert b.next_batch(timeout_s=10) == ["x" * 50]


def test_partial_batch_waits_for_max_wait() -> None:
    b = make(max_wait_s=0.05)
    b.put("only")
    assert b.next_batch(timeout_s=0) == []  # just enqueued, batch not full
    assert b.next_batch(timeout_s=10) == ["only"]  # released once it waited 50 ms


def test_empty_queue_times_out_empty() -> None:
    assert make().next_batch(timeout_s=0.01) == []


def test_overload_is_refused_and_counted() -> None:
    b = make(capacity=3)
    assert b.submit(["a", "b", "c", "d", "e"]) == 3
    assert b.put("f") is False
    assert (b.accepted, b.rejected, len(b)) == (3, 3, 3)
    assert b.next_batch(timeout_s=0) == []  # 3 < 4 and fresh
    b.close()
    assert b.next_batch(timeout_s=0) == ["a", "b", "c"]


def test_close_drains_then_returns_empty_and_refuses_puts() -> None:
    b = make(max_batch_size=2)
    b.submit(["a", "bb", "ccc"])
    b.close()
    assert b.next_batch() == ["a", "bb"]
    assert b.next_batch() == ["ccc"]
    assert b.next_batch() == []  # closed and empty: no blocking even without a timeout
    with pytest.raises(BatcherClosed):
        b.put("late")
    assert b.batches == 2


def test_bad_settings_and_lengths() -> None:
    with pytest.raises(ValueError, match="capacity"):
        make(capacity=0)
    with pytest.raises(ValueError, match="max_wait_s"):
        make(max_wait_s=-1)
    b = DynamicBatcher(
        length=lambda _: -1, max_batch_size=2, max_batch_tokens=10, max_wait_s=0, capacity=2
    )
    with pytest.raises(ValueError, match="negative"):
        b.put("x")


def test_waiting_consumer_wakes_on_put() -> None:
    b = make(max_batch_size=2)
    got: list[list[str]] = []
    consumer = threading.Thread(target=lambda: got.append(b.next_batch(timeout_s=20)))
    consumer.start()
    b.put("a")
    b.put("b")  # completes a batch of two: the consumer returns long before max_wait (30 s)
    consumer.join(timeout=30)
    assert not consumer.is_alive()
    assert got == [["a", "b"]]


def test_many_producers_one_consumer_lose_nothing() -> None:
    b: DynamicBatcher[tuple[int, int]] = DynamicBatcher(
        length=lambda item: item[1],
        max_batch_size=16,
        max_batch_tokens=200,
        max_wait_s=0.005,
        capacity=10_000,
    )
    work = [[(p * 1000 + i, 1 + (i * 7) % 40) for i in range(500)] for p in range(4)]
    producers = [threading.Thread(target=b.submit, args=(items,)) for items in work]
    batches: list[list[tuple[int, int]]] = []

    def consume() -> None:
        while batch := b.next_batch(timeout_s=20):
            batches.append(batch)

    consumer = threading.Thread(target=consume)
    consumer.start()
    for t in producers:
        t.start()
    for t in producers:
        t.join()
    b.close()
    consumer.join(timeout=60)
    assert not consumer.is_alive()
    ids = [item_id for batch in batches for item_id, _ in batch]
    assert sorted(ids) == sorted(p * 1000 + i for p in range(4) for i in range(500))
    for batch in batches:
        lengths = [n for _, n in batch]
        assert lengths == sorted(lengths)
        assert len(batch) <= 16 and (padded_cost(lengths) <= 200 or len(batch) == 1)
    assert b.rejected == 0 and b.accepted == 2000
