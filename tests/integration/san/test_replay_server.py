"""The asyncssh session against a tiny transcript-replaying SSH server (not the fake shell).

It plays the array's behaviour the fake may not: events on, paging on, hard wrap of the
`iSCSI target name` line, and public-key login.  Replies are the transcripts of
equallogic-cli.md §2.4 and §5.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import asyncssh
import pytest

from eqliscsi.san import commands as c
from eqliscsi.san.endpoint import SanEndpoint
from eqliscsi.san.errors import SanProtocolError
from eqliscsi.san.parsers import parse_target_name, parse_volume_info
from eqliscsi.san.session import open_session
from eqliscsi.secret import Secret

IQN = "iqn.2001-05.com.equallogic:0-8a0906-83bcb3401-16e0002fd0a46f3d-centos-test"
BANNER = (
    b"\r\n           Welcome to Group Manager\r\n\r\n        Copyright 2001-2014 Dell Inc.\r\n\r\n"
    b"netmgtd:1700722419.77:rcc_util.c:1024:INFO:25.2.9:CLI: Login to account grpadmin "
    b"succeeded, using lo.\r\n"
)
PROMPT = b"ProxGroup> "
SHOW_1 = b"Name: centos-test\r\nSize: 1GB\r\nVolReserve: 1.01GB\r\n"
SHOW_2 = (
    b"iSCSI Name: " + IQN[:50].encode() + b"\r\n" + IQN[50:].encode() + b"\r\n"
    b"Description: eqliscsi ds=3\r\nStatus: online\r\nConnections: 2\r\n"
)


@dataclass
class Replay:
    received: list[str] = field(default_factory=list)
    old_firmware: bool = False

    async def process(self, proc: asyncssh.SSHServerProcess[bytes]) -> None:
        proc.stdout.write(BANNER + PROMPT)
        buf = b""
        try:
            while True:
                data = await proc.stdin.read(1024)
                if not data:
                    break
                buf += data
                while b"\r" in buf:
                    raw, buf = buf.split(b"\r", 1)
                    line = raw.decode()
                    self.received.append(line)
                    proc.stdout.write(raw + b"\r\n")  # echo
                    if line == "logout":
                        proc.exit(0)
                        return
                    reprint = await self.reply(proc, line)
                    proc.stdout.write(PROMPT + reprint)
        except (asyncssh.Error, ConnectionError):
            pass

    async def reply(self, proc: asyncssh.SSHServerProcess[bytes], line: str) -> bytes:
        """Write the reply; return text to reprint after the prompt (reprintBadInput)."""
        if line == "cli-settings reprintBadInput off" and self.old_firmware:
            proc.stdout.write(b"% Error - Unknown command reprintBadInput.\r\n")
            return line.encode()
        if line == "volume select centos-test show":
            # Paging stays on for this account in this replay: one page, then wait.
            proc.stdout.write(SHOW_1 + b"Press any key to continue (Q to quit)")
            key = await proc.stdin.read(1)
            assert key == b" "
            proc.stdout.write(b"\r\x1b[K")
            proc.stdout.write(
                b"netmgtd:1700722420.01:vol.c:9:INFO:1.2.3:An event in the middle.\r\n" + SHOW_2
            )
        elif line.startswith("chapuser create"):
            proc.stdout.write(b"% Error - CHAP user already exists.\r\n")
        elif line.startswith("volume create"):
            text = b"iSCSI target name is " + IQN.encode() + b"."
            proc.stdout.write(
                b"Volume creation succeeded.\r\n" + text[:80] + b"\r\n" + text[80:] + b"\r\n"
            )
        return b""


@dataclass
class Server:
    endpoint: SanEndpoint
    replay: Replay


class _KeyOnly(asyncssh.SSHServer):
    def begin_auth(self, username: str) -> bool:
        return True

    def password_auth_supported(self) -> bool:
        return False


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[Server]:
    host_key = asyncssh.generate_private_key("ssh-ed25519")
    client_key = asyncssh.generate_private_key("ssh-ed25519")
    (tmp_path / "id").write_bytes(client_key.export_private_key())
    (tmp_path / "id").chmod(0o600)
    (tmp_path / "authorized").write_bytes(client_key.export_public_key())
    replay = Replay()
    acceptor = await asyncssh.listen(
        "127.0.0.1",
        0,
        server_host_keys=[host_key],
        authorized_client_keys=str(tmp_path / "authorized"),
        server_factory=_KeyOnly,
        process_factory=replay.process,
        encoding=None,
        line_editor=False,
    )
    port = acceptor.sockets[0].getsockname()[1]
    kh = tmp_path / "known_hosts"
    kh.write_text(f"[127.0.0.1]:{port} {host_key.export_public_key().decode().strip()}\n")
    ep = SanEndpoint(
        "127.0.0.1",
        "grpadmin",
        port=port,
        client_keys=(str(tmp_path / "id"),),
        known_hosts=str(kh),
        connect_timeout=10,
        command_timeout=10,
    )
    try:
        yield Server(ep, replay)
    finally:
        acceptor.close()
        await acceptor.wait_closed()


async def test_key_login_paging_events_and_wrap(server: Server) -> None:
    async with open_session(server.endpoint) as s:
        assert s.group == "ProxGroup"
        res = await s.run(c.VolumeShow("centos-test"))
        info = parse_volume_info(res.lines)
        assert info.iqn == IQN
        assert info.connections == 2
        assert info.size_mb == 1024
        assert not any("netmgtd" in line or "Press any key" in line for line in res.lines)
        # The target-name line arrives hard-wrapped at 80 columns.
        created = await s.run(c.VolumeCreate("centos-test", 1024))
        assert parse_target_name(created.lines) == IQN
    assert server.replay.received[:7] == [x.line() for x in c.session_setup()]
    assert server.replay.received[-1] == "logout"


async def test_chap_secret_is_sent_but_never_logged(
    server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    secret = Secret(b"Sup3r-Secret-CHAP", origin="test")
    async with open_session(server.endpoint) as s:
        res = await s.run(c.ChapUserCreate("one", secret), check=False)
        assert res.error == "% Error - CHAP user already exists."
    assert "chapuser create one password Sup3r-Secret-CHAP" in server.replay.received
    assert "Sup3r-Secret-CHAP" not in caplog.text
    assert "chapuser create one password ***" in caplog.text


async def test_reprinted_bad_input_poisons_the_session(server: Server) -> None:
    # Firmware without reprintBadInput: setup warns, and the reprinted line left in the
    # edit buffer makes the session refuse further commands instead of sending garbage.
    server.replay.old_firmware = True
    async with open_session(server.endpoint) as s:
        assert not s.usable
        with pytest.raises(SanProtocolError, match="edit buffer"):
            await s.run(c.VolumeShow("centos-test"))
    assert "volume select centos-test show" not in server.replay.received
