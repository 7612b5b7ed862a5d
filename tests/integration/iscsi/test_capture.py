"""tshark as a judge: our discovery and CHAP login are well-formed iSCSI on the wire.

A capture on ``lo`` filtered to the test target's port is decoded with Wireshark's
iSCSI dissector (forced onto the non-3260 port with ``-d tcp.port==N,iscsi``).
Every TCP segment that carries payload must decode as iSCSI, no frame may carry
malformed-packet expert info, and the CHAP secret must not be on the wire.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from eqliscsi.iscsi_discovery import Auth, ChapCredentials, Portal, discover, probe
from eqliscsi.secret import Secret
from rig.need import need, need_executable
from rig.targets.base import TargetBackend

from .conftest import MakeDisk, chap

pytestmark = [pytest.mark.tgt, pytest.mark.judge]

IQN = "iqn.2026-01.test.eqliscsi:captured"
USER, SECRET = "capture-user", "capture-secret-77"
TUSER, TSECRET = "capture-target", "capture-tsecret-8"


@contextmanager
def capture(port: int, path: Path) -> Iterator[None]:
    tshark = need_executable("tshark", "tshark")
    need(os.geteuid() == 0, "capturing on lo needs root (CAP_NET_RAW)")
    log = path.with_suffix(".log")
    with open(log, "wb") as err:
        proc = subprocess.Popen(
            [tshark, "-i", "lo", "-f", f"tcp port {port}", "-w", str(path), "-q"],
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
    try:
        # "Capturing on" comes before the filter is live.  So knock (an empty TCP
        # connection, harmless to the target) until the capture file grows.
        wait_until_capturing(proc, port, path, log)
        yield
        time.sleep(0.3)  # let the last segments reach the capture buffer
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return -1


def wait_until_capturing(proc: subprocess.Popen[bytes], port: int, path: Path, log: Path) -> None:
    for _ in range(200):  # up to ~10 s for the capture file to appear
        if _size(path) > 0 or proc.poll() is not None:
            break
        time.sleep(0.05)
    assert proc.poll() is None and _size(path) > 0, log.read_text(errors="replace")
    start = _size(path)
    for _ in range(200):  # up to ~10 s for a knock to be captured
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            pass
        time.sleep(0.05)
        if _size(path) > start:
            return
    raise AssertionError("tshark did not capture on lo within 10 s")


def tshark_fields(path: Path, port: int, display: str, *fields: str) -> list[list[str]]:
    tshark = need_executable("tshark", "tshark")
    argv = [tshark, "-r", str(path), "-d", f"tcp.port=={port},iscsi", "-Y", display, "-T", "fields"]
    for f in fields:
        argv += ["-e", f]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=True)
    return [line.split("\t") for line in done.stdout.splitlines() if line]


async def test_discovery_and_mutual_chap_login_decode_cleanly(
    backend: TargetBackend, make_disk: MakeDisk, tmp_path: Path
) -> None:
    backend.create_target(IQN, make_disk())
    backend.set_chap(IQN, chap(USER, SECRET), chap(TUSER, TSECRET))
    portal = Portal(backend.portal.host, backend.portal.port)
    auth = Auth(
        chap=ChapCredentials(USER, Secret(SECRET.encode())),
        mutual=ChapCredentials(TUSER, Secret(TSECRET.encode())),
    )
    pcap = tmp_path / "iscsi.pcapng"
    with capture(portal.port, pcap):
        assert [t.name for t in await discover(portal)] == [IQN]
        assert (await probe(portal, IQN, auth=auth)).luns[0].lun == backend.lun_of(IQN)

    port = portal.port
    iscsi_frames = tshark_fields(pcap, port, "tcp.len > 0 && iscsi", "frame.number")
    assert len(iscsi_frames) >= 20
    # Every payload segment decodes as iSCSI, or is the first part of a PDU that TCP
    # split and tshark reassembled into a later frame (seen under heavy load).
    undecoded = "tcp.len > 0 && !iscsi && !tcp.reassembled_in"
    assert tshark_fields(pcap, port, undecoded, "frame.number") == []
    assert (
        tshark_fields(pcap, port, "_ws.malformed || _ws.expert.severity >= error", "frame.number")
        == []
    )
    opcodes = {row[0] for row in tshark_fields(pcap, port, "iscsi", "iscsi.opcode")}
    names = ",".join(opcodes)
    # Login, Text, Logout, SCSI Command requests and their responses (RFC 7143 §11).
    for opcode in ("0x03", "0x23", "0x04", "0x24", "0x06", "0x26", "0x01", "0x21"):
        assert opcode in names, names
    keys = ",".join(r[0] for r in tshark_fields(pcap, port, "iscsi.keyvalue", "iscsi.keyvalue"))
    for key in ("SendTargets=All", "AuthMethod=CHAP", "CHAP_A=5", "CHAP_N=capture-user", "CHAP_R="):
        assert key in keys
    raw = pcap.read_bytes()
    assert SECRET.encode() not in raw and TSECRET.encode() not in raw
