"""Why pg_sqla_async's p99 is ~7x its p50 at 32 connections and pool 16, without HTTP or a database.

32 closed-loop tasks share 16 "connections", each held for 2 ms of simulated query, checked out three ways:
  sqlalchemy     SQLAlchemy's AsyncAdaptedQueue (what AsyncAdaptedQueuePool checks out from), through the
                 greenlet hop SQLAlchemy's asyncio engine makes;
  fifo+greenlet  a first-come-first-served hand-off through the same greenlet hop;
  fifo           the same hand-off awaited directly.
asyncio.Queue wakes the oldest waiter when a connection comes back but leaves the connection in the queue; a task
that asks before the woken one runs takes it (barging), and the woken one queues again at the back. The spread of
the checkout waits, not their mean, is what that changes.

Run: .venv/bin/python scripts/pool_fairness.py
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable

from sqlalchemy.util import await_, greenlet_spawn
from sqlalchemy.util.queue import AsyncAdaptedQueue

HOLD_S, TASKS, CONNECTIONS, RUN_S = 0.002, 32, 16, 5.0
POOL_TIMEOUT_S = 30.0  # SQLAlchemy's default pool_timeout, as in the variant and its yardstick


class FifoHandOff:
    """Gives a returned connection straight to the oldest waiter, so no later arrival can take it first."""

    def __init__(self, connections: range) -> None:
        self.free = deque(connections)
        self.waiters: deque[asyncio.Future[int]] = deque()

    async def get(self) -> int:
        if self.free and not self.waiters:
            return self.free.popleft()
        waiter: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self.waiters.append(waiter)
        return await waiter

    def put(self, connection: int) -> None:
        while self.waiters:
            waiter = self.waiters.popleft()
            if not waiter.done():
                waiter.set_result(connection)
                return
        self.free.append(connection)


def checkout_of(kind: str) -> tuple[Callable[[], Awaitable[int]], Callable[[int], None]]:
    if kind == "sqlalchemy":
        queue: AsyncAdaptedQueue[int] = AsyncAdaptedQueue(CONNECTIONS)
        for connection in range(CONNECTIONS):
            queue.put_nowait(connection)
        return (lambda: greenlet_spawn(queue.get, True, POOL_TIMEOUT_S)), queue.put_nowait
    hand_off = FifoHandOff(range(CONNECTIONS))
    if kind == "fifo+greenlet":
        return (lambda: greenlet_spawn(lambda: await_(hand_off.get()))), hand_off.put
    return hand_off.get, hand_off.put


async def measure(kind: str) -> str:
    get, put = checkout_of(kind)
    waits: list[float] = []
    end = time.perf_counter() + RUN_S

    async def user() -> None:
        while time.perf_counter() < end:
            began = time.perf_counter()
            connection = await get()
            waits.append(time.perf_counter() - began)
            await asyncio.sleep(HOLD_S)  # the query, the connection held
            put(connection)
            await asyncio.sleep(0)  # the response written; the next request

    await asyncio.gather(*(user() for _ in range(TASKS)))
    waits.sort()

    def ms(quantile: float) -> float:
        return waits[min(len(waits) - 1, int(quantile * len(waits)))] * 1000

    return (
        f"{kind:14} {len(waits):6} checkouts  wait p50 {ms(0.5):5.2f} ms  p90 {ms(0.9):5.2f}  p99 {ms(0.99):6.2f}"
        f"  p99/p50 {ms(0.99) / ms(0.5):4.1f}x"
    )


if __name__ == "__main__":
    for _round in range(2):  # interleaved, so that the machine's state is shared
        for kind in ("sqlalchemy", "fifo+greenlet", "fifo"):
            print(asyncio.run(measure(kind)))
