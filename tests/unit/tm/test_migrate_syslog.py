"""A migration problem reported while no syslog listens leaves stderr empty.

oned 6.2-6.10 takes an action's whole stderr as its failure reason, so a logging
traceback there would replace the one sentence the driver wrote.
"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from eqliscsi.opennebula.actions.tm import _syslog


def test_no_syslog_socket_writes_nothing_to_stderr(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    _syslog(str(tmp_path / "no-such-socket")).error("eqliscsi failmigrate: VM 7 undo on h2")
    assert capfd.readouterr().err == ""


def test_a_listening_syslog_gets_the_line(tmp_path: Path) -> None:
    path = str(tmp_path / "log")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind(path)
        server.settimeout(5)
        _syslog(path).error("eqliscsi failmigrate: VM 7 undo on h2")
        line = server.recv(4096)
    # <27>: facility daemon (3) * 8 + severity error (3), RFC 3164 section 4.1.1.
    assert line.startswith(b"<27>")
    assert b"VM 7 undo on h2" in line
