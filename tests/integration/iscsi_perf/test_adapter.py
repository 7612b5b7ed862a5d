"""The Protocol-based connection of the asyncio adapter: reading pauses when unread.

``_Connection`` keeps received chunks until the client asks for them; a peer that
floods must stop being read once 256 KiB wait, and be read again once taken.
"""

from __future__ import annotations

import asyncio
import socket

from eqliscsi.iscsi_discovery._asyncio import _Connection


async def test_reading_pauses_above_the_limit_and_resumes_after_take() -> None:
    loop = asyncio.get_running_loop()
    ours, theirs = socket.socketpair()
    transport, conn = await loop.create_connection(lambda: _Connection(loop), sock=ours)
    limit = _Connection._READ_LIMIT
    theirs.setblocking(False)
    flood = bytes(1 << 16)
    written = 0
    try:
        for _ in range(200):  # bounded: at most ~13 MiB offered, 2 s
            try:
                written += theirs.send(flood)
            except BlockingIOError:
                await asyncio.sleep(0.01)
            else:
                await asyncio.sleep(0)
            if not transport.is_reading():
                break
        assert not transport.is_reading(), f"still reading after {written} bytes"
        assert limit < conn.buffered <= limit + len(flood) * 4
        data = conn.take()
        assert len(data) > limit and conn.buffered == 0
        assert transport.is_reading()
    finally:
        transport.close()
        theirs.close()
