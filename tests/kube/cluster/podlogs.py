"""Per-container logs of simulated pods, kept for the log endpoint (tail, since, follow)."""

from __future__ import annotations

import asyncio
import datetime
import time
from collections.abc import AsyncIterator


class ContainerLog:
    """Lines a container wrote (stdout and stderr), with the time each arrived."""

    def __init__(self) -> None:
        self.lines: list[tuple[float, bytes]] = []
        self.running = True
        self._changed = asyncio.Condition()

    async def append(self, line: bytes) -> None:
        async with self._changed:
            self.lines.append((time.time(), line))
            self._changed.notify_all()

    async def close(self) -> None:
        async with self._changed:
            self.running = False
            self._changed.notify_all()

    async def reopen(self) -> None:
        async with self._changed:
            self.running = True

    async def read(
        self, follow: bool, tail: int | None, since: float | None, timestamps: bool
    ) -> AsyncIterator[bytes]:
        """The selected lines, then (follow) new ones until the container stops."""
        chosen = [
            i for i, (t, _) in enumerate(self.lines) if since is None or t >= time.time() - since
        ]
        if tail is not None:
            chosen = chosen[-tail:] if tail else []
        index = chosen[0] if chosen else len(self.lines)
        while True:
            while index < len(self.lines):
                stamp, line = self.lines[index]
                index += 1
                if timestamps:
                    when = datetime.datetime.fromtimestamp(stamp, datetime.timezone.utc)
                    line = when.strftime("%Y-%m-%dT%H:%M:%S.%fZ ").encode() + line
                yield line
            if not follow or not self.running:
                return

            def more(seen: int = index) -> bool:
                return len(self.lines) > seen or not self.running

            async with self._changed:
                await self._changed.wait_for(more)
