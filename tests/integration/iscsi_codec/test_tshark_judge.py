"""Wireshark's iSCSI dissector judges our bytes.

A whole conversation (CHAP login with CRC32C digests negotiated, SendTargets, a SCSI
probe, an R2T write, a NOP-In answer, Logout) runs between the sans-IO client and the
fake target in memory; every byte is written to a pcap as a TCP stream on
127.0.0.1:3260 (no packet is sent anywhere) and tshark, an independent iSCSI
implementation, dissects it.  Its view of each PDU must equal ours, and it must call
every header and data digest good (which also pins the little-endian wire order).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from scapy.all import Raw, wrpcap
from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether

from eqliscsi.iscsi_discovery import Auth, ChapCredentials, Portal
from eqliscsi.iscsi_discovery._framing import ReceiveBuffer, crc32c, encode_pdu
from eqliscsi.iscsi_discovery._login import LoginConfig, LoginMachine, LoginSucceeded
from eqliscsi.iscsi_discovery._negotiation import OperationalOffer
from eqliscsi.iscsi_discovery._pdu import LoginRequest, LoginResponse, NopOut, Pdu
from eqliscsi.iscsi_discovery._scsi import (
    cdb_inquiry,
    cdb_read16,
    cdb_read_capacity16,
    cdb_report_luns,
    cdb_write16,
)
from eqliscsi.iscsi_discovery._session import ScsiCompleted, Session
from eqliscsi.iscsi_discovery._text import decode_text
from eqliscsi.secret import Secret
from rig.need import need_executable
from tests.unit.iscsi.fake_target import FakeTarget, Lun, TargetConfig

TGT = "iqn.2026-01.test:judge"
INITIATOR = "iqn.2026-01.test:initiator"
MSS = 1400


def _conversation() -> list[tuple[int, bytes]]:
    """Run the conversation; returns (direction, bytes) chunks, 0 = to the target."""
    cfg = TargetConfig(
        targets={TGT: {0: Lun(), 1: Lun()}},
        chap=("alice", b"alice-secret-16b"),
        digests=True,
        nop_in_before_scsi=True,
        unit_attention=True,
    )
    target = FakeTarget(cfg)
    chunks: list[tuple[int, bytes]] = []
    auth = Auth(chap=ChapCredentials("alice", Secret(b"alice-secret-16b")))
    offer = OperationalOffer(
        header_digest=("CRC32C", "None"), data_digest=("CRC32C", "None"), immediate_data=False
    )
    config = LoginConfig(Portal("127.0.0.1"), INITIATOR, TGT, auth, offer=offer)
    machine = LoginMachine(config)
    machine.start()
    done = None
    for _ in range(10):
        out = machine.data_to_send()
        chunks.append((0, out))
        target.receive_data(out)
        reply = target.data_to_send()
        chunks.append((1, reply))
        events = machine.receive_data(reply)
        if events and isinstance(events[-1], LoginSucceeded):
            done = events[-1]
            break
    assert done is not None and done.params.header_digest and done.params.data_digest
    session = Session(config, done, machine.take_remaining())

    def run() -> list[object]:
        got: list[object] = []
        for _ in range(10):
            out = session.data_to_send()
            if out:
                chunks.append((0, out))
                target.receive_data(out)
            reply = target.data_to_send()
            if not out and not reply:
                return got
            if reply:
                chunks.append((1, reply))
            got += session.receive_data(reply)
        raise AssertionError("no quiescence")

    session.send_targets("")
    run()
    session.scsi_command(0, cdb_report_luns(), read_length=4096)
    session.scsi_command(1, cdb_inquiry(0x83), read_length=255)
    run()
    session.scsi_command(1, cdb_read_capacity16(), read_length=32)  # unit attention
    session.scsi_command(1, cdb_write16(0, 2), write_data=b"\xa5" * 1024)  # via R2T
    run()
    session.scsi_command(1, cdb_read16(0, 2), read_length=1024)
    read = [e for e in run() if isinstance(e, ScsiCompleted)]
    assert read and read[0].data == b"\xa5" * 1024
    session.nop_ping(b"ping")
    run()
    session.logout()
    run()
    assert target.violations == [] and target.nop_answers == [0x77]
    return chunks


def _pdus(chunks: list[tuple[int, bytes]]) -> list[tuple[int, bytes, Pdu]]:
    """Our own decoding of both directions, in wire order, switching on digests.

    Each entry keeps the PDU's raw bytes, so the pcap can give every PDU its own TCP
    segments and tshark reports one PDU per frame (the byte stream is unchanged).
    """
    bufs = {0: ReceiveBuffer(1 << 20), 1: ReceiveBuffer(1 << 20)}
    out: list[tuple[int, bytes, Pdu]] = []
    for direction, data in chunks:
        buf = bufs[direction]
        buf.feed(data)
        pos = 0
        while True:
            before = len(buf)
            pdu = buf.next_pdu()
            if pdu is None:
                break
            used = before - len(buf)
            out.append((direction, data[pos : pos + used], pdu))
            pos += used
            if isinstance(pdu, LoginResponse) and pdu.transit and pdu.nsg == 3:
                for b in bufs.values():  # digests start after the final login response
                    b.header_digest = b.data_digest = True
    return out


def _write_pcap(chunks: list[tuple[int, bytes]], path: Path, *, handshake: bool = True) -> None:
    seq = {0: 1000, 1: 900000}
    ports = {0: (40000, 3260), 1: (3260, 40000)}
    packets = [
        Ether()
        / IP(src="127.0.0.1", dst="127.0.0.1")
        / TCP(sport=40000, dport=3260, seq=999, flags="S"),
        Ether()
        / IP(src="127.0.0.1", dst="127.0.0.1")
        / TCP(sport=3260, dport=40000, seq=899999, ack=1000, flags="SA"),
    ]
    if not handshake:
        packets.clear()
    for direction, data in chunks:
        for i in range(0, len(data), MSS):
            seg = data[i : i + MSS]
            sport, dport = ports[direction]
            packets.append(
                Ether()
                / IP(src="127.0.0.1", dst="127.0.0.1")
                / TCP(
                    sport=sport, dport=dport, seq=seq[direction], ack=seq[1 - direction], flags="PA"
                )
                / Raw(seg)
            )
            seq[direction] += len(seg)
    wrpcap(str(path), packets)


def _tshark(pcap: Path, *args: str) -> str:
    exe = need_executable("tshark", "tshark")
    res = subprocess.run(
        [exe, "-r", str(pcap), *args], capture_output=True, text=True, timeout=120, check=True
    )
    return res.stdout


@pytest.fixture(scope="module")
def capture(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[tuple[int, Pdu]]]:
    need_executable("tshark", "tshark")
    pdus = _pdus(_conversation())
    pcap = tmp_path_factory.mktemp("judge") / "conversation.pcap"
    _write_pcap([(d, raw) for d, raw, _ in pdus], pcap)
    return pcap, [(d, p) for d, _, p in pdus]


def test_tshark_sees_the_same_pdus(capture: tuple[Path, list[tuple[int, Pdu]]]) -> None:
    pcap, ours = capture
    fields = [
        "iscsi.opcode",
        "iscsi.initiatortasktag",
        "iscsi.cmdsn",
        "iscsi.statsn",
        "iscsi.keyvalue",
        "iscsi.datasn",
        "iscsi.bufferOffset",
    ]
    out = _tshark(
        pcap,
        "-Y",
        "iscsi",
        "-T",
        "fields",
        "-E",
        "occurrence=a",
        "-E",
        "aggregator=|",
        *[a for f in fields for a in ("-e", f)],
    )
    rows = [line.split("\t") for line in out.splitlines() if line.strip()]
    # Every PDU has its own TCP segments, so each row is exactly one PDU.
    assert [int(r[0], 16) for r in rows] == [int(p.opcode) for _, p in ours]
    tags = [int(r[1], 16) if r[1] else 0xFFFFFFFF for r in rows]
    assert tags == [getattr(p, "itt", 0xFFFFFFFF) for _, p in ours]
    for row, (_, pdu) in zip(rows, ours, strict=True):
        if isinstance(pdu, (LoginRequest, LoginResponse)) or type(pdu).__name__.startswith("Text"):
            pairs = decode_text(pdu.data) if pdu.data else []  # type: ignore[attr-defined]
            assert row[4] == "|".join(f"{k}={v}" for k, v in pairs)
        cmdsn = getattr(pdu, "cmdsn", None)
        if cmdsn is not None and row[2]:
            assert int(row[2]) == cmdsn
        statsn = getattr(pdu, "statsn", None)
        if statsn and row[3]:
            assert int(row[3]) == statsn


def test_tshark_calls_every_digest_good(capture: tuple[Path, list[tuple[int, Pdu]]]) -> None:
    pcap, ours = capture
    text = _tshark(pcap, "-V", "-Y", "iscsi")
    after_login = [p for _, p in ours if not isinstance(p, (LoginRequest, LoginResponse))]
    with_data = [p for p in after_login if p.data]  # type: ignore[attr-defined]
    assert text.count("HeaderDigest: 0x") == len(after_login)
    assert text.count("(Good CRC32)") == len(after_login) + len(with_data)
    assert "Bad CRC32" not in text


ISID = bytes.fromhex("800102030001")
LOGIN = (
    encode_pdu(
        LoginRequest(
            isid=ISID,
            itt=1,
            csg=0,
            nsg=1,
            transit=True,
            cmdsn=1,
            data=b"InitiatorName=iqn.2026-01.x:y\0AuthMethod=None\0",
        )
    ),
    encode_pdu(
        LoginResponse(
            isid=ISID, itt=1, csg=0, nsg=1, transit=True, statsn=7, data=b"AuthMethod=None\0"
        )
    ),
)


def test_tshark_rejects_big_endian_digest(tmp_path: Path) -> None:
    """Negative control: the judge can fail — a big-endian digest is not 'Good'."""
    wire = bytearray(
        encode_pdu(
            NopOut(itt=9, cmdsn=1, exp_statsn=8, data=b"ping"), header_digest=True, data_digest=True
        )
    )
    good = bytes(wire)
    wire[48:52] = crc32c(bytes(wire[:48])).to_bytes(4, "big")
    for data, expect_good in ((good, True), (bytes(wire), False)):
        pcap = tmp_path / f"nop-{expect_good}.pcap"
        # A login pair without digest keys, then the PDU: tshark then detects digests
        # by checking the CRC itself.
        _write_pcap([(0, LOGIN[0]), (1, LOGIN[1]), (0, data)], pcap, handshake=False)
        assert ("HeaderDigest: 0x00e97b56 (Good CRC32)" in _tshark(pcap, "-V")) is expect_good
