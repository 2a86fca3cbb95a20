import asyncio

import pytest

from chassis.resilience import (
    Deadline,
    DeadlineExceeded,
    current_deadline,
    deadline_scope,
    remaining,
    timeout_for_next_call,
)

from .fakes import FakeClock


def test_a_deadline_counts_down_and_never_below_zero(clock: FakeClock) -> None:
    deadline = Deadline.after(0.5, clock)
    assert deadline.at == clock.now + 0.5
    clock.advance(0.2)
    assert deadline.remaining() == pytest.approx(0.3)
    assert not deadline.expired
    clock.advance(0.4)
    assert deadline.remaining() == 0.0
    assert deadline.expired


def test_without_a_deadline_the_next_call_gets_its_own_timeout() -> None:
    assert current_deadline() is None
    assert remaining() is None
    assert timeout_for_next_call(0.25) == 0.25


def test_the_next_hop_gets_the_smaller_of_its_timeout_and_what_remains(clock: FakeClock) -> None:
    with deadline_scope(0.8, clock=clock):  # the server side: what the incoming call had left
        clock.advance(0.3)  # our own work
        assert remaining() == pytest.approx(0.5)
        assert timeout_for_next_call(1.0) == pytest.approx(0.5)
        assert timeout_for_next_call(0.15) == pytest.approx(0.15)


def test_nothing_remaining_fails_fast_instead_of_calling(clock: FakeClock) -> None:
    with deadline_scope(0.1, clock=clock):
        clock.advance(0.1)
        assert remaining() == 0.0
        with pytest.raises(DeadlineExceeded):
            timeout_for_next_call(1.0)


def test_a_nested_scope_can_shorten_the_deadline_but_never_extend_it(clock: FakeClock) -> None:
    with deadline_scope(1.0, clock=clock) as outer:
        clock.advance(0.5)
        with deadline_scope(0.6, clock=clock) as longer:
            assert longer is outer
            assert remaining() == pytest.approx(0.5)
        with deadline_scope(0.2, clock=clock) as shorter:
            assert shorter is not None and remaining() == pytest.approx(0.2)
            assert current_deadline() is shorter
        assert current_deadline() is outer
    assert current_deadline() is None


def test_no_deadline_adds_no_limit_and_keeps_an_enclosing_one(clock: FakeClock) -> None:
    with deadline_scope(None, clock=clock) as none:
        assert none is None and current_deadline() is None
    with deadline_scope(1.0, clock=clock) as outer, deadline_scope(None, clock=clock) as inner:
        assert inner is outer


def test_a_scope_ends_even_when_the_work_inside_fails(clock: FakeClock) -> None:
    with pytest.raises(RuntimeError), deadline_scope(1.0, clock=clock):
        raise RuntimeError("handler failed")
    assert current_deadline() is None


async def test_tasks_started_in_a_scope_inherit_its_deadline_and_concurrent_requests_never_share_one(
    clock: FakeClock,
) -> None:
    async def handle(seconds: float) -> float:
        with deadline_scope(seconds, clock=clock):
            await asyncio.sleep(0)  # let the other requests interleave
            children = await asyncio.gather(*(asyncio.create_task(next_hop()) for _ in range(3)))
            assert len(set(children)) == 1
            return children[0]

    async def next_hop() -> float:
        await asyncio.sleep(0)
        return timeout_for_next_call(100.0)

    budgets = [0.1 * n for n in range(1, 201)]
    results = await asyncio.gather(*(handle(seconds) for seconds in budgets))
    assert results == pytest.approx(budgets)
    assert current_deadline() is None
