"""The moderation queue, live: one watcher per worker notices when the queue changes and hands the console's
counts (`moderation.QueueOverview`) to every event stream of that worker (`GET /v1/moderation/events`).

How it notices: every `check_seconds`, while at least one stream is open, it reads `Moderation.change_marker`
(three O(1) reads per partition, one round trip) and reads the counts again only when the marker moved. A
blocking XREAD of the outbox streams would wake sooner but sees neither claims, releases nor an undo back to
pending (they write no outbox entry), and on a Redis Cluster it cannot block on every partition at once; the
marker sees all of them, at a cost that does not grow with the number of streams. With no stream open the
watcher reads nothing.

Fan-out: the latest counts and an `asyncio.Event` swapped for a fresh one at each change. A stream that falls
behind skips to the latest counts; nothing queues up per stream.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator
from typing import Final

from redis.exceptions import RedisError

from service.errors import ListenersFull
from service.moderation import Moderation, QueueOverview
from service.tasks import raise_if_cancelled

log = logging.getLogger(__name__)

#: How often the watcher looks for a change while streams are open.
CHECK_SECONDS: Final = 1.0
#: A comment line sent on an idle stream this often, so proxies and the browser keep it open.
HEARTBEAT_SECONDS: Final = 15.0
#: Event streams one worker serves at most; one more is refused with 503 `listeners_full`.
MAX_LISTENERS: Final = 200
#: How long the watcher waits after Redis failed before it tries again.
ERROR_PAUSE_SECONDS: Final = 2.0


class Live:
    def __init__(self, moderation: Moderation, *, check_seconds: float = CHECK_SECONDS,
                 heartbeat_seconds: float = HEARTBEAT_SECONDS, max_listeners: int = MAX_LISTENERS) -> None:
        self._moderation = moderation
        self.check_seconds = check_seconds
        self.heartbeat_seconds = heartbeat_seconds
        #: Streams this worker serves at most (a test lowers it).
        self.max_listeners = max_listeners
        self._listeners = 0
        self._latest: QueueOverview | None = None
        self._changed = asyncio.Event()
        self._someone = asyncio.Event()  # set while at least one stream is open
        self._closed = False

    @property
    def listeners(self) -> int:
        return self._listeners

    async def run(self) -> None:
        """The watcher: until cancelled, while streams are open, publish the counts whenever the marker moves."""
        marker: tuple[object, ...] | None = None
        while True:
            raise_if_cancelled()
            if not self._listeners:
                marker = None  # read afresh for the next stream: the queue changed unwatched meanwhile
                self._latest = None
                await self._someone.wait()
                continue
            try:
                seen = await self._moderation.change_marker()
                if seen != marker:
                    self._publish(await self._moderation.overview())
                    marker = seen
            except RedisError as exc:
                log.warning("live: Redis unavailable (%s); retrying in %.0f s", exc, ERROR_PAUSE_SECONDS)
                await asyncio.sleep(ERROR_PAUSE_SECONDS)
                continue
            await asyncio.sleep(self.check_seconds)

    def _publish(self, overview: QueueOverview) -> None:
        self._latest = overview
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    def close(self) -> None:
        """Ends every stream (the server is shutting down): each one's `events` returns."""
        self._closed = True
        self._changed.set()

    async def events(self) -> AsyncGenerator[QueueOverview | None]:
        """One stream's events: the current counts first (read for it, so a new stream need not wait for a
        change), then the counts after each change; None when `heartbeat_seconds` passed without one. Raises
        `ListenersFull` past `max_listeners`. Ends when the server shuts down."""
        if self._listeners >= self.max_listeners:
            raise ListenersFull("this server already serves {max} event streams; try again later",
                                params={"max": self.max_listeners}, retry_after=30)
        self._listeners += 1
        self._someone.set()
        try:
            waiting = self._changed
            yield await self._moderation.overview()
            while not self._closed:
                try:
                    await asyncio.wait_for(waiting.wait(), self.heartbeat_seconds)
                except TimeoutError:
                    yield None
                    continue
                if self._closed:
                    return
                waiting = self._changed
                if self._latest is not None:
                    yield self._latest
        finally:
            self._listeners -= 1
            if not self._listeners:
                self._someone.clear()
