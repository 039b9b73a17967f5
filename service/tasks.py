"""Background tasks: loops that run until cancelled, and stopping them.

One workaround lives here: redis-py (8.1, seen with the asyncio cluster client and at shutdown right after start)
sometimes loses a cancellation that arrives while a command is in flight: the command returns normally and the
task runs on, so a background loop cancelled at shutdown never ends. The task still counts the request
(`Task.cancelling()`): `raise_if_cancelled` restores it where a loop or a client call can check, and `stop`
cancels again a task that carried on.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable

from redis.exceptions import RedisError

log = logging.getLogger(__name__)


def cancels() -> int:
    """How many cancellations of the current task are pending (0 outside a task)."""
    task = asyncio.current_task()
    return task.cancelling() if task is not None else 0


def raise_if_cancelled(before: int = 0) -> None:
    """Raise `CancelledError` if the current task was asked to cancel more often than `before` (its `cancels()`
    when a call began): the cancellation was swallowed on the way and is restored here."""
    if cancels() > before:
        raise asyncio.CancelledError


async def forever(name: str, step: Callable[[], Awaitable[int]], *, idle_seconds: float,
                  error_pause_seconds: float) -> None:
    """Run `step` until cancelled, pausing `idle_seconds` after a round that did nothing. Failures are logged and
    waited out: Redis away or failing over in one line, anything else with its traceback."""
    while True:
        raise_if_cancelled()
        try:
            done = await step()
        except RedisError as exc:
            log.warning("%s: Redis unavailable (%s); retrying in %.0f s", name, exc, error_pause_seconds)
            await asyncio.sleep(error_pause_seconds)
            continue
        except Exception:
            log.exception("%s failed; retrying in %.0f s", name, error_pause_seconds)
            await asyncio.sleep(error_pause_seconds)
            continue
        if not done:
            await asyncio.sleep(idle_seconds)


async def stop(tasks: Iterable[asyncio.Task[None]], patience: float = 10.0) -> None:
    """Cancel background tasks and wait for them; a task still running (its cancellation lost) is cancelled
    again until `patience` runs out."""
    tasks = list(tasks)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + patience
    pending = {task for task in tasks if not task.done()}
    while pending and loop.time() < deadline:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=0.1)
    for task in tasks:
        if task.done() and not task.cancelled() and task.exception() is not None:
            log.error("background task failed", exc_info=task.exception())
    if pending:
        log.error("%d background task(s) did not stop", len(pending))
