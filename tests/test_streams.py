"""``bridge._streams``: the bounded hand-off between a thread and an event loop.

Each test runs a real asyncio loop and a real thread; every wait is bounded.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import TypeVar

import pytest

from bridge import ClientDisconnected
from bridge._streams import Gone, ToLoop, ToThread

TIMEOUT = 5.0
T = TypeVar("T")


def in_thread(fn: Callable[[], T]) -> tuple[threading.Thread, list[T | BaseException]]:
    result: list[T | BaseException] = []

    def run() -> None:
        try:
            result.append(fn())
        except BaseException as exc:
            result.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, result


async def taken(channel: ToLoop[str]) -> list[str]:
    """Every pending item, waiting (bounded) for at least one."""

    async def take() -> list[str]:
        while True:
            items = channel.take()
            if isinstance(items, list):
                return items
            await items

    return await asyncio.wait_for(take(), TIMEOUT)


def put_all(channel: ToLoop[str], items: str, size: int = 0) -> None:
    for item in items:
        channel.put(item, size)


def test_to_loop_hands_over_items_in_order_and_wakes_the_loop() -> None:
    async def main() -> list[str]:
        loop = asyncio.get_running_loop()
        channel: ToLoop[str] = ToLoop(loop.call_soon_threadsafe, loop, high_water=100)
        thread, _ = in_thread(lambda: put_all(channel, "abc"))
        items: list[str] = []
        while len(items) < 3:
            items += await taken(channel)
        thread.join(TIMEOUT)
        return items

    assert asyncio.run(main()) == ["a", "b", "c"]


def test_to_loop_blocks_the_thread_above_high_water_until_the_loop_takes() -> None:
    async def main() -> tuple[bool, bool]:
        loop = asyncio.get_running_loop()
        channel: ToLoop[str] = ToLoop(loop.call_soon_threadsafe, loop, high_water=10)
        second_put = threading.Event()

        def produce() -> None:
            channel.put("first", 10)  # fills the channel
            channel.put("second", 10)  # must wait until the loop takes "first"
            second_put.set()

        thread, _ = in_thread(produce)
        await asyncio.sleep(0)
        blocked = not await asyncio.to_thread(second_put.wait, 0.2)
        assert await taken(channel) == ["first"]
        released = await asyncio.to_thread(second_put.wait, TIMEOUT)
        thread.join(TIMEOUT)
        return blocked, released

    assert asyncio.run(main()) == (True, True)


def test_to_loop_abort_makes_a_blocked_put_raise() -> None:
    async def main() -> BaseException | None:
        loop = asyncio.get_running_loop()
        channel: ToLoop[str] = ToLoop(loop.call_soon_threadsafe, loop, high_water=1)
        thread, result = in_thread(lambda: put_all(channel, "xy", 1))
        await asyncio.sleep(0.05)
        channel.abort()
        await asyncio.to_thread(thread.join, TIMEOUT)
        error = result[0]
        return error if isinstance(error, BaseException) else None

    assert isinstance(asyncio.run(main()), ClientDisconnected)


@pytest.mark.parametrize("loop_first", [True, False])
def test_exactly_one_of_finish_and_leave_sees_the_other_first(loop_first: bool) -> None:
    channel: ToLoop[str] = ToLoop(lambda *args: None, None, high_water=1)
    if loop_first:
        assert channel.leave() is False
        assert channel.finish("done") is True  # the thread releases the shared token
    else:
        assert channel.finish("done") is False
        assert channel.leave() is True  # the loop does


def test_to_thread_wakes_the_loop_at_half_the_mark() -> None:
    async def main() -> list[int]:
        loop = asyncio.get_running_loop()
        stream: ToThread[int] = ToThread(loop.call_soon_threadsafe, loop, high_water=4)
        woken_after: list[int] = []
        assert stream.put(1, 2) is None
        assert stream.put(2, 2) is None
        waiter = stream.put(3, 2)  # 6 bytes wait: over the mark
        assert waiter is not None
        taken_count = 0

        def take(count: int) -> None:
            nonlocal taken_count
            for _ in range(count):
                stream.get(TIMEOUT)
                taken_count += 1

        await asyncio.to_thread(take, 1)  # 4 bytes wait: not yet half
        await asyncio.sleep(0.01)
        assert not waiter.done()
        await asyncio.to_thread(take, 1)  # 2 bytes: half the mark
        await asyncio.wait_for(waiter, TIMEOUT)
        woken_after.append(taken_count)
        return woken_after

    assert asyncio.run(main()) == [2]


def test_to_thread_end_makes_every_later_get_raise() -> None:
    stream: ToThread[int] = ToThread(lambda *args: None, None, high_water=10)
    stream.put(1)
    stream.end()
    assert stream.get(TIMEOUT) == 1
    for _ in range(2):
        with pytest.raises(Gone):
            stream.get(TIMEOUT)


def test_after_leave_items_are_dropped_and_finish_says_nobody_reads() -> None:
    stream: ToThread[int] = ToThread(lambda *args: None, None, high_water=10)
    assert stream.finish(0) is True
    stream.leave()
    assert stream.put(1, 100) is None  # dropped, and no back-pressure on a reader gone
    assert stream.finish(2) is False
    assert stream.get_nowait() == 0
    assert stream.get_nowait() is None


def test_get_after_yielding_offers_the_core_while_nothing_waits(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import os

    stream: ToThread[int] = ToThread(lambda *args: None, None, high_water=10)
    yields: list[int] = []

    def sched_yield() -> None:
        yields.append(1)
        if len(yields) == 2:
            stream.put(7)  # the producer answers while this thread stands aside

    monkeypatch.setattr(os, "sched_yield", sched_yield)
    assert stream.get_after_yielding(3, TIMEOUT) == 7
    assert len(yields) == 2
    stream.put(8)
    assert stream.get_after_yielding(3, TIMEOUT) == 8  # there already: no offer
    assert len(yields) == 2
    # Nothing comes while it offers: it sleeps in get() until something does.
    thread, results = in_thread(lambda: stream.get_after_yielding(3, TIMEOUT))
    thread.join(0.2)
    assert thread.is_alive()
    stream.put(9)
    thread.join(TIMEOUT)
    assert results == [9]
    assert len(yields) == 5
