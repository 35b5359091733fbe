"""``bridge._loop``: the running loop's thread-safe ``call_soon``, from any loop."""

from __future__ import annotations

import asyncio
import threading

from bridge._loop import current_loop


def test_each_running_loop_gets_its_own_call_soon() -> None:
    # current_loop() reuses the last loop's bound method; loops taking turns in two
    # threads must still each get their own.
    results: dict[str, list[bool]] = {"a": [], "b": []}
    turns = [threading.Event() for _ in range(6)]

    def run(name: str, mine: range) -> None:
        async def main() -> None:
            loop = asyncio.get_running_loop()
            for turn in mine:
                assert turns[turn].wait(10), f"turn {turn} never came"
                call_soon, found = current_loop()
                results[name].append(found is loop and getattr(call_soon, "__self__", None) is loop)
                if turn + 1 < len(turns):
                    turns[turn + 1].set()

        asyncio.run(main())

    threads = [
        threading.Thread(target=run, args=("a", range(0, 6, 2))),
        threading.Thread(target=run, args=("b", range(1, 6, 2))),
    ]
    for thread in threads:
        thread.start()
    turns[0].set()
    for thread in threads:
        thread.join(10)
        assert not thread.is_alive()
    assert results == {"a": [True] * 3, "b": [True] * 3}
