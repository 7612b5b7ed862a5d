"""A scripted, deliberately broken iSCSI target for negative tests.

Real targets are polite; this one is not.  :class:`HostileTarget` is a plain asyncio
TCP server on 127.0.0.1, port 0, that reads the initiator's first PDU and then plays
one :class:`Scenario`: a truncated header, a 16 MiB DataSegmentLength, an unknown
opcode, garbage text, a stall, an EOF in the middle of a PDU.  Every scenario is
bounded: the server never sends more than 16 MiB, never waits longer than
``stall_seconds``, and closes every connection when the context exits, so a client
under test cannot hang the suite even if it misbehaves.

PDUs are built by hand with ``struct`` from RFC 7143 §11.13 (Login Response) and
§11.11 (Text Response) rather than with the product codec, so a codec bug cannot
hide itself by agreeing with its own output.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import struct
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from rig.targets.base import Portal

__all__ = ["HostileTarget", "Scenario", "login_response"]

_BHS = 48
_MAX_DSL = (1 << 24) - 1  # DataSegmentLength is 24 bits (RFC 7143 §11.2.1.5)
_CHUNK = 64 * 1024


class Scenario(enum.Enum):
    """What the hostile target does after reading the first Login Request."""

    SILENT = "silent"  # accept, read, never answer: the client must time out
    TRUNCATED_HEADER_EOF = "truncated-header-eof"  # 20 of 48 BHS bytes, then close
    TRUNCATED_HEADER_STALL = "truncated-header-stall"  # 20 of 48 BHS bytes, then nothing
    HUGE_DATA_SEGMENT = "huge-data-segment"  # a Login Response announcing 16 MiB of data
    UNKNOWN_OPCODE = "unknown-opcode"  # a well-formed BHS with reserved opcode 0x1c
    GARBAGE_TEXT = "garbage-text"  # a Login Response whose text is not key=value\0
    EOF_MID_PDU = "eof-mid-pdu"  # a Login Response header + half its data, then close
    LOGIN_THEN_STALL = "login-then-stall"  # a valid login, then silence on SendTargets
    IMMEDIATE_EOF = "immediate-eof"  # close as soon as the request arrives


@dataclass(frozen=True, slots=True)
class _Request:
    isid: bytes
    itt: int
    cmdsn: int


def _parse_request(bhs: bytes) -> _Request:
    # Login Request BHS: ISID at 8..13, ITT at 16..19, CmdSN at 24..27 (RFC 7143 §11.12).
    return _Request(
        isid=bhs[8:14],
        itt=struct.unpack_from(">I", bhs, 16)[0],
        cmdsn=struct.unpack_from(">I", bhs, 24)[0],
    )


def _pad4(data: bytes) -> bytes:
    return data + b"\0" * (-len(data) % 4)


def login_response(
    isid: bytes,
    itt: int,
    *,
    flags: int = 0x87,
    status: tuple[int, int] = (0, 0),
    data: bytes = b"",
    dsl: int | None = None,
    stat_sn: int = 1,
    exp_cmd_sn: int = 1,
    opcode: int = 0x23,
) -> bytes:
    """A Login Response BHS (RFC 7143 §11.13), with ``dsl`` overriding the true length."""
    length = len(data) if dsl is None else dsl
    bhs = bytearray(_BHS)
    bhs[0] = opcode
    bhs[1] = flags  # 0x87: T=1, CSG=1 (operational), NSG=3 (full feature)
    bhs[2] = 0  # Version-max
    bhs[3] = 0  # Version-active
    bhs[5:8] = length.to_bytes(3, "big")
    bhs[8:14] = isid
    # TSIH 14..15: a non-zero value, as a target assigns on the leading login.
    bhs[14:16] = (0x0101).to_bytes(2, "big")
    struct.pack_into(">I", bhs, 16, itt)
    struct.pack_into(">III", bhs, 24, stat_sn, exp_cmd_sn, exp_cmd_sn + 16)
    bhs[36], bhs[37] = status
    return bytes(bhs) + (_pad4(data) if dsl is None else data)


@dataclass
class HostileTarget:
    """Serve one :class:`Scenario` on 127.0.0.1:0; see the module docstring."""

    scenario: Scenario
    stall_seconds: float = 30.0
    connections: int = 0
    bytes_sent: int = 0
    _server: asyncio.Server | None = None
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)
    _closing: asyncio.Event = field(default_factory=asyncio.Event)
    _portal: Portal | None = None
    _writers: set[asyncio.StreamWriter] = field(default_factory=set)

    @classmethod
    @contextlib.asynccontextmanager
    async def serve(
        cls, scenario: Scenario, *, stall_seconds: float = 30.0
    ) -> AsyncIterator[HostileTarget]:
        target = cls(scenario, stall_seconds=stall_seconds)
        target._server = await asyncio.start_server(target._handle, "127.0.0.1", 0)
        host, port = target._server.sockets[0].getsockname()[:2]
        target._portal = Portal(str(host), int(port))
        try:
            yield target
        finally:
            # Wake every stalled handler and let it finish on its own: cancelling the
            # handlers makes asyncio log their CancelledError as an error.
            target._closing.set()
            target._server.close()
            for w in list(target._writers):
                w.close()
            if target._tasks:
                await asyncio.wait(list(target._tasks), timeout=5)
            await target._server.wait_closed()

    @property
    def portal(self) -> Portal:
        assert self._portal is not None, "serve() sets the portal"
        return self._portal

    async def _stall(self) -> None:
        # Silence, until the stall budget runs out or the server shuts down.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.stall_seconds):
                await self._closing.wait()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._writers.add(writer)
        self.connections += 1
        try:
            async with asyncio.timeout(self.stall_seconds + 5):
                await self._play(reader, writer)
        except (ConnectionError, TimeoutError, asyncio.IncompleteReadError):
            pass
        finally:
            self._tasks.discard(task)
            self._writers.discard(writer)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _read_pdu(self, reader: asyncio.StreamReader) -> bytes:
        bhs = await reader.readexactly(_BHS)
        ahs = bhs[4] * 4
        dsl = int.from_bytes(bhs[5:8], "big")
        if dsl > 1 << 20:  # we are hostile, not a victim
            raise ConnectionError("initiator sent an absurd data segment")
        await reader.readexactly(ahs + dsl + (-dsl % 4))
        return bhs

    async def _send(self, writer: asyncio.StreamWriter, data: bytes) -> None:
        writer.write(data)
        self.bytes_sent += len(data)
        await writer.drain()

    async def _play(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        first = await self._read_pdu(reader)
        req = _parse_request(first)
        s = self.scenario
        ok_text = b"AuthMethod=None\0"
        if s is Scenario.SILENT:
            await self._stall()
        elif s is Scenario.IMMEDIATE_EOF:
            return
        elif s in (Scenario.TRUNCATED_HEADER_EOF, Scenario.TRUNCATED_HEADER_STALL):
            await self._send(writer, login_response(req.isid, req.itt)[:20])
            if s is Scenario.TRUNCATED_HEADER_STALL:
                await self._stall()
        elif s is Scenario.HUGE_DATA_SEGMENT:
            # Announce the largest DSL the field can hold, then stream filler until the
            # client hangs up; a client that buffers before checking pays 16 MiB.
            await self._send(writer, login_response(req.isid, req.itt, dsl=_MAX_DSL))
            sent = 0
            chunk = b"A" * _CHUNK
            while sent < _MAX_DSL:
                await self._send(writer, chunk[: _MAX_DSL - sent])
                sent += _CHUNK
        elif s is Scenario.UNKNOWN_OPCODE:
            await self._send(writer, login_response(req.isid, req.itt, opcode=0x1C))
            await self._stall()
        elif s is Scenario.GARBAGE_TEXT:
            junk = b"\xff\xfe no equals sign here\0=\0AuthMethod\0\x00\x00garbage"
            await self._send(writer, login_response(req.isid, req.itt, flags=0x81, data=junk))
            await self._stall()
        elif s is Scenario.EOF_MID_PDU:
            full = login_response(req.isid, req.itt, data=ok_text * 8)
            await self._send(writer, full[: _BHS + 40])
        elif s is Scenario.LOGIN_THEN_STALL:
            # Grant each login stage exactly as requested (T=1, same CSG/NSG: a target
            # must not jump past the NSG the initiator asked for, RFC 7143 §11.13.3),
            # then go silent on the first non-login PDU (the SendTargets Text Request).
            bhs, stat_sn = first, 1
            while bhs[0] & 0x3F == 0x03:
                csg, nsg = (bhs[1] >> 2) & 3, bhs[1] & 3
                text = ok_text if csg == 0 else b"HeaderDigest=None\0DataDigest=None\0"
                req = _parse_request(bhs)
                await self._send(
                    writer,
                    login_response(
                        req.isid, req.itt, flags=0x80 | csg << 2 | nsg, data=text,
                        stat_sn=stat_sn, exp_cmd_sn=req.cmdsn,
                    ),
                )  # fmt: skip
                stat_sn += 1
                if nsg == 3:
                    break
                bhs = await self._read_pdu(reader)
            with contextlib.suppress(asyncio.IncompleteReadError):
                await self._read_pdu(reader)
            await self._stall()
        else:  # pragma: no cover - exhaustive over Scenario
            raise AssertionError(s)
