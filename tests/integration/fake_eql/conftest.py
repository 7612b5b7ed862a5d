"""Run ``python -m rig.fake_eql`` on 127.0.0.1 (free port) for SSH-level tests."""

from __future__ import annotations

import json
import os
import re
import select
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import paramiko
import pytest

GROUP = "grp0"
ACCOUNT = "grpadmin"
PASSWORD = "fake-eql-pw-0123"
PROMPT_RE = re.compile(rb"(?m)^" + GROUP.encode() + rb"(\([^)]*\))?> ")


@dataclass
class FakeProcess:
    proc: subprocess.Popen[bytes]
    state: Path
    host: str
    port: int
    password_file: Path

    @property
    def host_key_line(self) -> str:
        pub = (self.state / "ssh_host_ed25519_key.pub").read_text().split()
        return f"[{self.host}]:{self.port} {pub[0]} {pub[1]}\n"

    def sessions(self) -> dict[str, int]:
        data: dict[str, int] = json.loads((self.state / "sessions.json").read_text())
        return data

    def set_faults(self, **faults: object) -> None:
        path = self.state / "faults.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(faults))
        os.replace(tmp, path)


def start_fake(state: Path, password_file: Path, iscsi_portal: str | None = None) -> FakeProcess:
    argv = [
        sys.executable, "-m", "rig.fake_eql",
        "--state", str(state),
        "--listen", "127.0.0.1:0",
        "--target-backend", "tgt",
        "--group-name", GROUP,
        "--account", ACCOUNT,
        "--password-file", str(password_file),
    ]  # fmt: skip
    if iscsi_portal:
        argv += ["--iscsi-portal", iscsi_portal]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], 30)
    line = proc.stdout.readline().decode() if ready else ""
    m = re.fullmatch(r"ready (\S+):(\d+)\n", line)
    if not m:
        proc.terminate()
        _, err = proc.communicate(timeout=20)
        raise AssertionError(f"fake did not start: {line!r} {err.decode()!r}")
    return FakeProcess(proc, state, m[1], int(m[2]), password_file)


def stop_fake(fake: FakeProcess) -> None:
    fake.proc.terminate()
    try:
        fake.proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        fake.proc.kill()
        fake.proc.wait(timeout=5)


@pytest.fixture
def password_file(tmp_path: Path) -> Path:
    path = tmp_path / "password"
    path.write_text(PASSWORD + "\n")
    path.chmod(0o600)
    return path


@pytest.fixture
def fake(tmp_path: Path, password_file: Path) -> Iterator[FakeProcess]:
    f = start_fake(tmp_path / "state", password_file)
    try:
        yield f
    finally:
        stop_fake(f)


def read_until_prompt(chan: paramiko.Channel, timeout: float = 10.0) -> bytes:
    """Cinder's ``_get_output``, bounded: read until the prompt appears anywhere."""
    buf = b""
    deadline = time.monotonic() + timeout
    while not PROMPT_RE.search(buf):
        if time.monotonic() > deadline:
            raise TimeoutError(f"no prompt after {timeout}s: {buf!r}")
        if chan.recv_ready():
            data = chan.recv(102400)
            if not data:
                raise EOFError(f"channel closed: {buf!r}")
            buf += data
        elif chan.closed or chan.eof_received:
            raise EOFError(f"channel closed: {buf!r}")
        else:
            time.sleep(0.01)
    return buf


def paramiko_client(fake: FakeProcess, password: str = PASSWORD) -> paramiko.SSHClient:
    client = paramiko.SSHClient()
    keys = fake.state / "known_hosts"
    keys.write_text(fake.host_key_line)
    client.load_host_keys(str(keys))
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    client.connect(
        fake.host,
        fake.port,
        username=ACCOUNT,
        password=password,
        look_for_keys=False,
        allow_agent=False,
        timeout=10,
    )
    return client


def cinder_command(client: paramiko.SSHClient, command: str) -> list[str]:
    """One command the way Cinder's eqlx/ps driver ran it: a fresh shell channel with
    the default vt100 80x24 pty, ``stty columns 255``, the command, CR only."""
    transport = client.get_transport()
    assert transport is not None
    chan = transport.open_session()
    try:
        chan.get_pty()
        chan.invoke_shell()
        read_until_prompt(chan)  # banner (MOTD) and prompt
        chan.send(b"stty columns 255\r")
        read_until_prompt(chan)
        chan.send(command.encode() + b"\r")
        return read_until_prompt(chan).decode().splitlines()
    finally:
        chan.close()
