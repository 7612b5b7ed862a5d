"""The socket-level connection of the asyncio adapter: reading pauses when unread.

``_Connection`` keeps received chunks until the client asks for them; a peer that
floods must stop being read once 256 KiB wait, and be read again once taken.  A
peer that closes or resets is end of file, never an exception from the loop.
"""

from __future__ import annotations

import asyncio
import os
import socket
import struct
from pathlib import Path

import pytest

from eqliscsi.iscsi_discovery import IscsiConnectionError, Portal, _asyncio, discover
from eqliscsi.iscsi_discovery._asyncio import _Connection
from rig.targets.tgt import TgtBackend


def _pair() -> tuple[socket.socket, socket.socket]:
    ours, theirs = socket.socketpair()
    ours.setblocking(False)
    theirs.setblocking(False)
    return ours, theirs


async def test_reading_pauses_above_the_limit_and_resumes_after_take() -> None:
    loop = asyncio.get_running_loop()
    ours, theirs = _pair()
    conn = _Connection(loop, ours)
    limit = _Connection._READ_LIMIT
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
            if not conn.reading:
                break
        assert not conn.reading, f"still reading after {written} bytes"
        assert limit < conn.buffered <= limit + len(flood)
        data = conn.take()
        assert len(data) > limit and conn.buffered == 0
        assert conn.reading
    finally:
        conn.close()
        theirs.close()
    assert ours.fileno() == -1


def _tcp_pair() -> tuple[socket.socket, socket.socket]:
    with socket.create_server(("127.0.0.1", 0)) as server:
        ours = socket.create_connection(server.getsockname())
        theirs, _ = server.accept()
    ours.setblocking(False)
    return ours, theirs


async def _until_eof(conn: _Connection) -> None:
    async with asyncio.timeout(5):
        while not conn.eof:
            await conn.readable()


async def test_close_by_the_peer_is_end_of_file_after_its_data() -> None:
    ours, theirs = _tcp_pair()
    conn = _Connection(asyncio.get_running_loop(), ours)
    try:
        theirs.sendall(b"last words")
        theirs.close()
        await _until_eof(conn)
        assert not conn.reading
        assert conn.take() == b"last words"
    finally:
        conn.close()


async def test_reset_by_the_peer_is_end_of_file() -> None:
    ours, theirs = _tcp_pair()
    conn = _Connection(asyncio.get_running_loop(), ours)
    try:
        # SO_LINGER with a zero timeout: close() sends RST instead of FIN, and our
        # recv() fails with ECONNRESET, which must read as end of file.
        theirs.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        theirs.close()
        await _until_eof(conn)
        assert not conn.reading and conn.chunks == []
    finally:
        conn.close()


@pytest.mark.tgt
async def test_host_name_portal_resolves_and_logs_in(tgt: TgtBackend, disk: Path) -> None:
    # "localhost" comes from /etc/hosts (no DNS traffic).  If it also maps to ::1,
    # where tgtd does not listen, the adapter must go on to 127.0.0.1.
    iqn = "iqn.2026-01.test.eqliscsi.perf:named"
    tgt.create_target(iqn, disk)
    found = await discover(Portal("localhost", tgt.portal.port))
    assert [t.name for t in found] == [iqn]


async def test_nothing_listening_is_a_connection_error(unused_port: int) -> None:
    with pytest.raises(IscsiConnectionError, match="connection refused"):
        await discover(Portal("127.0.0.1", unused_port))


async def test_each_resolved_address_is_tried_in_turn(
    unused_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    loop = asyncio.get_running_loop()
    with socket.create_server(("127.0.0.1", 0)) as server:
        listening = server.getsockname()
        answers = [
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", unused_port)),
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", listening),
        ]

        async def fake_getaddrinfo(host: str, port: int, **kwargs: object) -> list[object]:
            assert host == "target.example"  # never resolved for real: no DNS traffic
            return list(answers)

        monkeypatch.setattr(loop, "getaddrinfo", fake_getaddrinfo)
        sock = await _asyncio._open_socket(loop, Portal("target.example", unused_port))
        try:
            assert sock.getpeername() == listening
        finally:
            sock.close()
        answers.pop()  # only the refusing address is left
        with pytest.raises(ConnectionRefusedError):
            await _asyncio._open_socket(loop, Portal("target.example", unused_port))


async def test_close_during_a_blocked_send_leaves_no_stale_registration() -> None:
    # A send the peer does not read waits on a loop writer for the socket; a timeout
    # cancels the exchange and the session closes the socket at once.  The socket's
    # number is then free for the next connection, which must register cleanly: a
    # writer left behind for that number would make its add_reader fail.  (Writes
    # that wait are the adapter's own since 2026-11-24; close() must remove them.)
    loop = asyncio.get_running_loop()
    ours, theirs = _tcp_pair()
    stream = _asyncio._Stream(Portal("127.0.0.1", 3260), _Connection(loop, ours))
    fd = ours.fileno()
    try:
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.2):
                await stream.converse(bytes(64 << 20), lambda _: (b"", False), "sending")
        assert stream._conn.writing  # the rest of the 64 MiB waits for a loop writer
        await stream.close()
        assert not stream._conn.writing
        assert ours.fileno() == -1
        fresh, peer = _tcp_pair()
        # Put the next connection on the very number the closed socket had.
        if fresh.fileno() == fd:
            again = fresh
        else:
            os.dup2(fresh.fileno(), fd)
            fresh.close()
            again = socket.socket(fileno=fd)
        again.setblocking(False)
        try:
            conn = _Connection(loop, again)
            peer.sendall(b"hello")
            async with asyncio.timeout(5):
                while not conn.chunks:
                    await conn.readable()
            assert conn.take() == b"hello"
            conn.close()
        finally:
            peer.close()
    finally:
        theirs.close()


async def test_a_write_larger_than_the_socket_drains_in_order() -> None:
    # The exchange's first write overflows the kernel buffers: the rest must go out
    # from the loop writer, in order, and the answer must still end the exchange.
    loop = asyncio.get_running_loop()
    ours, theirs = _tcp_pair()
    theirs.setblocking(False)
    stream = _asyncio._Stream(Portal("127.0.0.1", 3260), _Connection(loop, ours))
    payload = os.urandom(1 << 16) * 128  # 8 MiB
    got = bytearray()
    answers: list[bytes] = []

    async def peer() -> None:
        while len(got) < len(payload):
            chunk = await loop.sock_recv(theirs, 1 << 16)
            if not chunk:
                break
            got.extend(chunk)
        await loop.sock_sendall(theirs, b"done")

    def step(data: bytes) -> tuple[bytes, bool]:
        answers.append(data)
        return b"", b"".join(answers) == b"done"

    try:
        async with asyncio.timeout(10):
            reader = asyncio.ensure_future(peer())
            await stream.converse(payload, step, "during the test")
            await reader
        assert bytes(got) == payload
        assert not stream._conn.writing
    finally:
        await stream.close()
        theirs.close()


async def test_an_unanswered_exchange_times_out_and_takes_no_more_data() -> None:
    loop = asyncio.get_running_loop()
    ours, theirs = _tcp_pair()
    conn = _Connection(loop, ours)
    stream = _asyncio._Stream(Portal("127.0.0.1", 3260), conn)
    fed: list[bytes] = []

    def step(data: bytes) -> tuple[bytes, bool]:
        fed.append(data)
        return b"", False

    try:
        with pytest.raises(TimeoutError):
            await stream.converse(b"ping", step, "x", 0.05)
        theirs.sendall(b"late answer")
        async with asyncio.timeout(5):
            while not conn.chunks:
                await conn.readable()
        assert fed == [] and conn.take() == b"late answer"  # kept, not fed to the old step
    finally:
        await stream.close()
        theirs.close()
