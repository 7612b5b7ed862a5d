"""A real tgtd on 127.0.0.1 and a recording relay in front of it.

The relay copies bytes both ways and keeps what the client sent on each connection,
so a test can count the PDUs behind a fast path (one login round trip, the lean
probe) on the wire instead of trusting the code that was changed.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from eqliscsi.iscsi_discovery import Portal
from eqliscsi.iscsi_discovery._framing import ReceiveBuffer
from eqliscsi.iscsi_discovery._pdu import Pdu
from rig.need import need, need_executable
from rig.targets.tgt import TgtBackend


@pytest.fixture
def tgt(tmp_path: Path) -> Iterator[TgtBackend]:
    need_executable("tgtd", "tgt")
    need_executable("tgtadm", "tgt")
    need(os.geteuid() == 0, "tgtd needs root to create its control socket in /var/run/tgtd")
    backend = TgtBackend.start("127.0.0.1", log_path=tmp_path / "tgtd.log")
    try:
        yield backend
    finally:
        backend.close()


def sparse_file(path: Path, size: int) -> Path:
    with open(path, "wb") as f:
        f.truncate(size)
    return path


@pytest.fixture
def unused_port() -> int:
    """A port on 127.0.0.1 with nothing listening (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def disk(tmp_path: Path) -> Path:
    return sparse_file(tmp_path / "disk.img", 16 << 20)


class Relay:
    """TCP relay on 127.0.0.1:0 to ``upstream``; records client-to-target bytes."""

    def __init__(self, upstream: Portal) -> None:
        self.upstream = upstream
        self.sent: list[bytearray] = []  # one per connection, in accept order
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def portal(self) -> Portal:
        assert self._server is not None
        return Portal("127.0.0.1", self._server.sockets[0].getsockname()[1])

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)

    async def close(self) -> None:
        assert self._server is not None
        self._server.close()
        for task in self._tasks:
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    def pdus(self, connection: int) -> list[Pdu]:
        """What the client sent on one connection, cut into PDUs (no digests)."""
        buf = ReceiveBuffer(1 << 24)
        buf.feed(bytes(self.sent[connection]))
        out = []
        while (pdu := buf.next_pdu()) is not None:
            out.append(pdu)
        assert len(buf) == 0, "a partial PDU was left over"
        return out

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        record = bytearray()
        self.sent.append(record)
        up_reader, up_writer = await asyncio.open_connection(
            self.upstream.address, self.upstream.port
        )

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter, rec: bool) -> None:
            try:
                while data := await src.read(65536):
                    if rec:
                        record.extend(data)
                    dst.write(data)
                    await dst.drain()
            except OSError:
                pass
            finally:
                dst.close()

        tasks = [
            asyncio.ensure_future(pump(reader, up_writer, True)),
            asyncio.ensure_future(pump(up_reader, writer, False)),
        ]
        for t in tasks:
            self._tasks.add(t)
        await asyncio.gather(*tasks, return_exceptions=True)


@pytest.fixture
async def relay(tgt: TgtBackend) -> AsyncIterator[Relay]:
    r = Relay(Portal(tgt.portal.host, tgt.portal.port))
    await r.start()
    try:
        yield r
    finally:
        await r.close()
