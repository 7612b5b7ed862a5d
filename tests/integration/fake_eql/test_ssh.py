"""The fake shell over real SSH on loopback: paramiko the Cinder way, OpenSSH ``ssh -tt``."""

from __future__ import annotations

import os
import re
import subprocess
import threading
import time
from pathlib import Path

import paramiko
import pytest

from rig.need import need_executable
from tests.integration.fake_eql.conftest import (
    ACCOUNT,
    GROUP,
    FakeProcess,
    cinder_command,
    paramiko_client,
    read_until_prompt,
    start_fake,
    stop_fake,
)

IQN_LINE = re.compile(r"^iSCSI target name is (iqn\.2001-05\.com\.equallogic:\S+)\.$")
SETUP = [
    "cli-settings confirmation off",
    "cli-settings paging off",
    "cli-settings events off",
    "cli-settings formatoutput off",
]


def test_cinder_style_session_per_command(fake: FakeProcess) -> None:
    client = paramiko_client(fake)
    try:
        for line in SETUP:  # Cinder's do_setup: one channel per setting
            assert cinder_command(client, line) == [line, f"{GROUP}> "]
        out = cinder_command(client, "volume create volume-1 1G")
        assert out[0] == "volume create volume-1 1G"
        assert out[1] == "Volume creation succeeded."
        m = IQN_LINE.match(out[2])
        assert m, out
        assert out[3:] == [f"{GROUP}> "]
        # the settings outlived their channels: unpaged, one Key: value per line
        shown = cinder_command(client, "volume select volume-1 show")
        assert f"iSCSI Name: {m[1]}" in shown
        assert "Size: 1GB" in shown and "VolReserve: 1.01GB" in shown
        cinder_command(client, "volume select volume-1 offline")
        out = cinder_command(client, "volume delete volume-1")  # no confirmation asked
        assert out[1:] == ["Volume deletion succeeded.", f"{GROUP}> "]
        out = cinder_command(client, "volume delete volume-1")
        assert out[1] == "% Error - Volume volume-1 does not exist."
    finally:
        client.close()
    assert fake.sessions()["max_seen"] == 1  # one channel at a time


def test_wrong_password_is_refused(fake: FakeProcess) -> None:
    with pytest.raises(paramiko.AuthenticationException):
        paramiko_client(fake, password="wrong-password-1")


def test_state_survives_restart(tmp_path: Path, password_file: Path) -> None:
    state = tmp_path / "state"
    first = start_fake(state, password_file)
    try:
        client = paramiko_client(first)
        cinder_command(client, "cli-settings paging off")
        iqn = cinder_command(client, "volume create keep-me 2G thin-provision")[2]
        client.close()
    finally:
        stop_fake(first)
    second = start_fake(state, password_file)
    try:
        client = paramiko_client(second)  # same host key: known_hosts still matches
        shown = cinder_command(client, "volume show keep-me")
        assert f"iSCSI Name: {IQN_LINE.match(iqn)[1]}" in " ".join(shown)  # type: ignore[index]
        assert "Paging: off" in " ".join(cinder_command(client, "cli-settings show"))
        client.close()
    finally:
        stop_fake(second)


def test_session_limit_and_count(fake: FakeProcess) -> None:
    fake.set_faults(max_sessions=2)
    client = paramiko_client(fake)
    try:
        transport = client.get_transport()
        assert transport is not None
        chans = []
        for _ in range(2):
            chan = transport.open_session()
            chan.get_pty()
            chan.invoke_shell()
            read_until_prompt(chan)
            chans.append(chan)
        extra = transport.open_session()
        extra.get_pty()
        extra.invoke_shell()
        extra.settimeout(10)
        refused = b""
        while chunk := extra.recv(4096):
            refused += chunk
        assert refused.startswith(b"% Error - Too many CLI sessions are open")
        assert extra.recv_exit_status() == 1
        for chan in chans:
            chan.close()
    finally:
        client.close()
    deadline = time.monotonic() + 10
    while fake.sessions()["open"] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert fake.sessions() == {"open": 0, "max_seen": 2, "refused": 1}


def test_drop_at_named_command_and_latency(fake: FakeProcess) -> None:
    client = paramiko_client(fake)
    try:
        cinder_command(client, "cli-settings paging off")
        fake.set_faults(latency=0.4)
        start = time.monotonic()
        cinder_command(client, "whoami")  # stty + whoami: two delayed commands
        assert time.monotonic() - start >= 0.8
        fake.set_faults(drop_at="volume create")
        with pytest.raises(EOFError):
            cinder_command(client, "vol cre v9 10")
    finally:
        client.close()
    fake.set_faults()
    client = paramiko_client(fake)
    try:
        assert cinder_command(client, "volume show v9")[1].endswith("does not exist.")
    finally:
        client.close()


def test_openssh_tt_interactive(fake: FakeProcess, tmp_path: Path) -> None:
    ssh = need_executable("ssh", "openssh-client")
    known = tmp_path / "known_hosts"
    known.write_text(fake.host_key_line)
    # The password travels through SSH_ASKPASS (a script that reads the file), never argv.
    askpass = tmp_path / "askpass"
    askpass.write_text(f"#!/bin/sh\nexec cat {fake.password_file}\n")
    askpass.chmod(0o700)
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp_path),
        "SSH_ASKPASS": str(askpass),
        "SSH_ASKPASS_REQUIRE": "force",
    }
    argv = [
        ssh, "-tt", "-F", "/dev/null",
        "-o", f"UserKnownHostsFile={known}",
        "-o", "StrictHostKeyChecking=yes",
        "-o", "PubkeyAuthentication=no",
        "-o", "PreferredAuthentications=password",
        "-o", "NumberOfPasswordPrompts=1",
        "-o", "ConnectTimeout=10",
        "-p", str(fake.port),
        f"{ACCOUNT}@{fake.host}",
    ]  # fmt: skip
    proc = subprocess.Popen(
        argv,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        start_new_session=True,
    )
    assert proc.stdin is not None and proc.stdout is not None
    out = bytearray()

    def pump() -> None:
        assert proc.stdout is not None
        while chunk := os.read(proc.stdout.fileno(), 4096):
            out.extend(chunk)

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()

    def wait_for(pattern: bytes, timeout: float = 15) -> None:
        deadline = time.monotonic() + timeout
        while pattern not in out:
            assert time.monotonic() < deadline, f"{pattern!r} not seen in {bytes(out)!r}"
            time.sleep(0.02)

    try:
        wait_for(f"{GROUP}> ".encode())
        proc.stdin.write(b"stty columns 255\r")
        proc.stdin.flush()
        proc.stdin.write(b"vol create tt-vol 100MB\n")  # LF alone is an Enter too
        proc.stdin.flush()
        wait_for(b"iSCSI target name is ")
        proc.stdin.write(b"volume select tt-vol\r\n")
        proc.stdin.flush()
        wait_for(f"{GROUP}(volume_tt-vol)> ".encode())
        proc.stdin.write(b"exit\rlogout\r")
        proc.stdin.flush()
        wait_for(b"Do you really want to logout? (y/n) [n] ")
        proc.stdin.write(b"y\r")
        proc.stdin.flush()
        assert proc.wait(timeout=15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=5)
        reader.join(timeout=5)
    text = bytes(out).decode()
    assert "Welcome to Group Manager" in text
    assert re.search(r"iSCSI target name is iqn\.2001-05\.com\.equallogic:\S+-tt-vol\.\r\n", text)
