"""A node's stop ends every task, even one that lets a cancellation slip by (as a task
inside `asyncio.wait_for` may on Python 3.11), and never hangs on one that refuses for good."""

from __future__ import annotations

import asyncio
import logging
import time

from node.node import cancel_all


async def test_a_task_that_misses_one_cancellation_is_cancelled_again():
    missed = []

    async def stubborn():
        while True:
            try:
                await asyncio.sleep(10)
            except asyncio.CancelledError:
                if missed:  # the second cancellation ends it
                    raise
                missed.append(True)  # the first is lost, as in the wait_for race

    async def plain():
        await asyncio.sleep(10)

    tasks = [asyncio.create_task(stubborn()), asyncio.create_task(plain())]
    await asyncio.sleep(0)
    started = time.monotonic()
    await cancel_all(tasks)
    assert missed and all(t.cancelled() for t in tasks)
    assert time.monotonic() - started < 5


async def test_a_task_that_never_ends_is_named_and_left_behind(caplog):
    released = []

    async def deaf():
        while not released:
            try:
                await asyncio.sleep(10)
            except asyncio.CancelledError:
                continue

    task = asyncio.create_task(deaf(), name="deaf-task")
    await asyncio.sleep(0)
    started = time.monotonic()
    with caplog.at_level(logging.ERROR):
        await cancel_all([task], patience_s=1.5)
    assert time.monotonic() - started < 5 and not task.done()
    assert "deaf-task" in caplog.text and "did not end" in caplog.text
    released.append(True)  # let it end, so nothing is left for the next test
    task.cancel()
    await asyncio.wait({task}, timeout=5)
    assert task.done()
