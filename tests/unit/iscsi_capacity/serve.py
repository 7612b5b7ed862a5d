"""The sans-IO fake target (tests/unit/iscsi/fake_target.py) served on 127.0.0.1.

A small asyncio server, one :class:`FakeTarget` per connection, so the client's real
adapter runs unchanged against it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from eqliscsi.iscsi_discovery import Portal
from eqliscsi.iscsi_discovery._pdu import ScsiCommand
from tests.unit.iscsi.fake_target import FakeTarget, TargetConfig


class TwoAttentions(FakeTarget):
    """Queues a second unit attention once the first is reported, as a target does
    when two events (power on, then a capacity change) are pending: READ CAPACITY(16)
    in the same batch as TEST UNIT READY then gets one too."""

    def _scsi(self, cmd: ScsiCommand) -> None:
        before = set(self.ua_pending)
        super()._scsi(cmd)
        if before and not self.ua_pending and not getattr(self, "_second", False):
            self._second = True
            self.ua_pending = before


@dataclass
class Served:
    """What one server saw: its portal, and every connection's target."""

    portal: Portal | None = None
    targets: list[FakeTarget] = field(default_factory=list)

    def commands(self) -> list[int]:
        """The opcode of every SCSI command received, over all connections."""
        return [cmd.cdb[0] for t in self.targets for cmd in t.commands]

    @property
    def address(self) -> Portal:
        assert self.portal is not None
        return self.portal


@contextlib.asynccontextmanager
async def serve(cfg: TargetConfig, kind: type[FakeTarget] = FakeTarget) -> AsyncIterator[Served]:
    served = Served()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        target = kind(cfg)
        served.targets.append(target)
        try:
            while not target.closed and (data := await reader.read(65536)):
                target.receive_data(data)
                writer.write(target.data_to_send())
                await writer.drain()
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    served.portal = Portal("127.0.0.1", server.sockets[0].getsockname()[1])
    try:
        yield served
    finally:
        server.close()
        await server.wait_closed()
