"""Full-feature phase against the fake target: SendTargets, SCSI, NOP, Async, Logout."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eqliscsi.iscsi_discovery import DiscoveredTarget, Portal, ScsiCommandFailed
from eqliscsi.iscsi_discovery._framing import encode_pdu
from eqliscsi.iscsi_discovery._login import LoginConfig
from eqliscsi.iscsi_discovery._negotiation import OperationalOffer
from eqliscsi.iscsi_discovery._pdu import DataIn, Reject, TextRequest
from eqliscsi.iscsi_discovery._scsi import (
    cdb_inquiry,
    cdb_read16,
    cdb_read_capacity16,
    cdb_report_luns,
    cdb_test_unit_ready,
    cdb_write16,
    decode_lun,
    lun_info,
    parse_device_identifiers,
    parse_inquiry,
    parse_read_capacity16,
    parse_report_luns,
    parse_unit_serial,
)
from eqliscsi.iscsi_discovery._session import (
    AsyncEvent,
    LogoutCompleted,
    NopCompleted,
    ScsiCompleted,
    SendTargetsCompleted,
    TaskRejected,
    serial_lt,
)
from eqliscsi.iscsi_discovery.errors import LocalProtocolError, RemoteProtocolError

from .fake_target import Lun, TargetConfig
from .helpers import INITIATOR, Connected, connect, exchange

GROUP = Portal("127.0.0.1", 3260)
EQL = "iqn.2001-05.com.equallogic:0-8a0906-83bcb3401-16e0002fd0a46f3d-vol1"
TGT = "iqn.2026-01.test:tgt-disk"
MANY = {f"iqn.2026-01.test:{'t' * 60}{i:04d}": {0: Lun()} for i in range(40)}


def _login(cfg: TargetConfig, target: str | None, **kw: object) -> Connected:
    config = LoginConfig(GROUP, INITIATOR, target, **kw)  # type: ignore[arg-type]
    return connect(config, {str(GROUP): cfg})


def _one(events: Sequence[object], kind: type) -> object:
    found = [e for e in events if isinstance(e, kind)]
    assert len(found) == 1, events
    return found[0]


@pytest.mark.parametrize(
    "split",
    [
        pytest.param(None, id="one-pdu"),
        pytest.param("tgt", id="tgt-split-mid-pair-no-c"),
        pytest.param("lio", id="lio-c-bit"),
    ],
)
def test_send_targets(split: str | None) -> None:
    cfg = TargetConfig(targets=MANY, address="10.0.0.10:3260,1", text_split=split, text_chunk=500)
    conn = _login(cfg, None)
    itt = conn.session.send_targets()
    done = _one(exchange(conn), SendTargetsCompleted)
    assert isinstance(done, SendTargetsCompleted) and done.itt == itt
    assert [t.name for t in done.targets] == list(MANY)
    assert all(t.portals == (Portal("10.0.0.10", 3260, 1),) for t in done.targets)
    assert conn.target.violations == []  # CmdSN++, TTT echoed, ExpStatSN right
    conn.session.logout()
    assert isinstance(_one(exchange(conn), LogoutCompleted), LogoutCompleted)
    assert conn.target.closed


def test_send_targets_continuations_with_window_shut_like_tgt() -> None:
    """tgt closes the CmdSN window while it answers continuations and never reopens it.

    Continuations go out as immediate requests (RFC 7143 §11.10: the I bit is allowed
    on a Text Request), which the window does not gate; non-immediate ones would wait
    for a window that never opens.
    """
    cfg = TargetConfig(
        targets=MANY, text_split="tgt", text_chunk=1000, shut_window_on_continuation=True
    )
    conn = _login(cfg, None)
    conn.session.send_targets()
    done = _one(exchange(conn), SendTargetsCompleted)
    assert isinstance(done, SendTargetsCompleted)
    assert [t.name for t in done.targets] == list(MANY)
    assert len(conn.target.sent_statsn) > 3  # several continuations really happened
    assert conn.target.violations == []
    conn.session.logout()  # immediate too: leaves despite the closed window
    assert isinstance(_one(exchange(conn), LogoutCompleted), LogoutCompleted)


def test_send_targets_single_and_empty() -> None:
    targets = {EQL: {0: Lun()}, TGT: {1: Lun()}}
    conn = _login(TargetConfig(targets=targets), None)
    conn.session.send_targets(EQL)
    conn.session.send_targets("")  # in a discovery session: nothing
    events = exchange(conn)
    results = [e for e in events if isinstance(e, SendTargetsCompleted)]
    assert results[0].targets == (DiscoveredTarget(EQL, (Portal("127.0.0.1", 3260, 1),)),)
    assert results[1].targets == ()
    assert conn.target.violations == []


def _scsi(
    conn: Connected, lun: int, cdb: bytes, length: int | None = None, data: bytes = b""
) -> ScsiCompleted:
    itt = conn.session.scsi_command(lun, cdb, read_length=length, write_data=data)
    done = _one(exchange(conn), ScsiCompleted)
    assert isinstance(done, ScsiCompleted) and done.itt == itt
    return done


@pytest.mark.parametrize(
    ("data_in_status", "chunk", "digests"),
    [
        pytest.param(True, 4096, False, id="phase-collapse"),
        pytest.param(False, 7, False, id="many-data-in-then-response"),
        pytest.param(True, 16, True, id="crc32c-digests"),
    ],
)
def test_probe_like_sequence(data_in_status: bool, chunk: int, digests: bool) -> None:
    lun1 = Lun(blocks=131072, vendor="IET", product="VIRTUAL-DISK", serial="beaf11")
    luns = {0: Lun(device_type=0x0C, vendor="IET", product="Controller"), 1: lun1}
    cfg = TargetConfig(
        targets={TGT: luns},
        unit_attention=True,
        data_in_status=data_in_status,
        data_in_chunk=chunk,
        digests=digests,
    )
    offer = OperationalOffer(header_digest=("CRC32C", "None"), data_digest=("CRC32C", "None"))
    conn = _login(cfg, TGT, offer=offer)
    assert conn.session.params.header_digest is digests
    fields = parse_report_luns(_scsi(conn, 0, cdb_report_luns(), 4096).check("REPORT LUNS"))
    assert [decode_lun(f) for f in fields] == [0, 1]
    controller = parse_inquiry(_scsi(conn, 0, cdb_inquiry(None, 96)).check("INQUIRY"))
    assert controller.device_type == 0x0C and controller.product == "Controller"
    std = parse_inquiry(_scsi(conn, 1, cdb_inquiry(None, 96)).check("INQUIRY"))
    assert (std.vendor, std.product, std.device_type) == ("IET", "VIRTUAL-DISK", 0)
    serial = parse_unit_serial(_scsi(conn, 1, cdb_inquiry(0x80), 255).check("INQUIRY"))
    ids = parse_device_identifiers(_scsi(conn, 1, cdb_inquiry(0x83), 255).check("INQUIRY"))
    # unit attention after login (tgt: 06/29/00), then GOOD on retry
    first = _scsi(conn, 1, cdb_read_capacity16(), 32)
    assert first.unit_attention and not first.good
    assert (first.sense.sense_key, first.sense.asc, first.sense.ascq) == (6, 0x29, 0)  # type: ignore[union-attr]
    capacity = parse_read_capacity16(
        _scsi(conn, 1, cdb_read_capacity16(), 32).check("READ CAPACITY")
    )
    info = lun_info(1, std, capacity, serial, ids)
    assert info.size_bytes == 64 * 1024 * 1024 and info.block_size == 512
    assert info.serial == "beaf11"
    assert info.identifiers == ("naa.6090a02800000000123456789abcdef0",)
    assert _scsi(conn, 1, cdb_test_unit_ready()).good
    assert conn.target.violations == []


def test_inquiry_underflow_residual() -> None:
    conn = _login(TargetConfig(targets={TGT: {0: Lun()}}), TGT)
    done = _scsi(conn, 0, cdb_inquiry(), 255)
    assert done.good and len(done.data) == 36
    assert done.underflow and done.residual == 255 - 36


@pytest.mark.parametrize("immediate", [True, False], ids=["immediate-data", "r2t"])
def test_write_then_read(immediate: bool) -> None:
    conn = _login(
        TargetConfig(targets={TGT: {1: Lun()}}),
        TGT,
        offer=OperationalOffer(immediate_data=immediate),
    )
    payload = bytes(range(256)) * 8  # 4 blocks
    assert _scsi(conn, 1, cdb_write16(8, 4), data=payload).good
    back = _scsi(conn, 1, cdb_read16(8, 4), len(payload)).check("READ(16)")
    assert back == payload
    wrote = conn.target.commands[0]
    assert (len(wrote.data) == len(payload)) is immediate
    assert conn.target.violations == []


def test_check_condition_raises_with_sense() -> None:
    conn = _login(TargetConfig(targets={TGT: {0: Lun()}}), TGT)
    done = _scsi(conn, 5, cdb_test_unit_ready())
    with pytest.raises(ScsiCommandFailed, match=r"sense 5/25/00") as info:
        done.check("TEST UNIT READY", TGT)
    assert (info.value.sense_key, info.value.asc, info.value.lun) == (5, 0x25, 5)
    assert TGT in str(info.value)


def test_nop_in_is_answered_and_async_surfaced() -> None:
    cfg = TargetConfig(
        targets={TGT: {0: Lun()}}, nop_in_before_scsi=True, async_logout_after_login=True
    )
    conn = _login(cfg, TGT)
    conn.session.scsi_command(0, cdb_test_unit_ready())
    events = exchange(conn)
    event = _one(events, AsyncEvent)
    assert isinstance(event, AsyncEvent) and event.logout_requested and event.param3 == 5
    assert isinstance(_one(events, ScsiCompleted), ScsiCompleted)
    assert conn.target.nop_answers == [0x77]
    ping = conn.session.nop_ping(b"hello")
    done = _one(exchange(conn), NopCompleted)
    assert done == NopCompleted(ping, b"hello")
    conn.session.logout()
    assert isinstance(_one(exchange(conn), LogoutCompleted), LogoutCompleted)
    assert conn.target.violations == []
    with pytest.raises(LocalProtocolError):
        conn.session.nop_ping()


def test_cmdsn_window_queues_commands() -> None:
    cfg = TargetConfig(targets={TGT: {0: Lun()}}, window=1)
    conn = _login(cfg, TGT)
    a = conn.session.scsi_command(0, cdb_test_unit_ready())
    b = conn.session.scsi_command(0, cdb_test_unit_ready())
    c = conn.session.scsi_command(0, cdb_test_unit_ready())
    first = conn.session.data_to_send()
    assert len(first) == 48  # only one fits the window [ExpCmdSN, MaxCmdSN]
    conn.target.receive_data(first)
    events = exchange(conn)
    assert [e.itt for e in events if isinstance(e, ScsiCompleted)] == [a, b, c]
    assert conn.target.violations == []
    assert [cmd.cmdsn for cmd in conn.target.commands] == [1, 2, 3]


def test_window_never_moves_backwards() -> None:
    # A MaxCmdSN below the one already granted is ignored (RFC 7143 §4.2.2.1).
    cfg = TargetConfig(targets={TGT: {0: Lun()}}, window=2)
    conn = _login(cfg, TGT)
    cfg.hold_window_once = True
    conn.session.scsi_command(0, cdb_test_unit_ready())
    events = exchange(conn)
    assert len([e for e in events if isinstance(e, ScsiCompleted)]) == 1
    conn.session.scsi_command(0, cdb_test_unit_ready())
    assert len(conn.session.data_to_send()) == 48


def test_discovery_session_refuses_scsi_and_nop() -> None:
    conn = _login(TargetConfig(targets={TGT: {0: Lun()}}), None)
    with pytest.raises(LocalProtocolError):
        conn.session.scsi_command(0, cdb_test_unit_ready())
    with pytest.raises(LocalProtocolError, match="discovery"):
        conn.session.nop_ping()


def test_reject_of_a_task_and_unknown_task() -> None:
    conn = _login(TargetConfig(targets={TGT: {0: Lun()}}), TGT)
    itt = conn.session.send_targets()
    conn.session.data_to_send()
    header = encode_pdu(TextRequest(itt=itt))[:48]
    events = conn.session.receive_data(encode_pdu(Reject(reason=4, data=header)))
    assert events == [TaskRejected(itt, 4)]
    assert conn.session.open_tasks == 0
    with pytest.raises(RemoteProtocolError, match="unknown task"):
        conn.session.receive_data(encode_pdu(DataIn(itt=0x999, data=b"x")))


def test_data_in_beyond_expected_length() -> None:
    conn = _login(TargetConfig(targets={TGT: {0: Lun()}}), TGT)
    itt = conn.session.scsi_command(0, cdb_inquiry(None, 4))
    conn.session.data_to_send()
    with pytest.raises(RemoteProtocolError, match="past the expected 4 bytes"):
        conn.session.receive_data(encode_pdu(DataIn(itt=itt, data=b"12345678")))


@pytest.mark.parametrize(
    ("a", "b", "lt"),
    [
        pytest.param(1, 2, True, id="simple"),
        pytest.param(2, 1, False, id="reverse"),
        pytest.param(0xFFFFFFFF, 0, True, id="wrap"),
        pytest.param(0, 0xFFFFFFFF, False, id="wrap-rev"),
        pytest.param(5, 5, False, id="equal"),
        pytest.param(0, 0x80000000, False, id="undefined"),
    ],
)
def test_serial_arithmetic(a: int, b: int, lt: bool) -> None:
    assert serial_lt(a, b) is lt


def test_read_length_follows_the_cdb() -> None:
    """tgt fails INQUIRY with 05/24/00 when allocation length and EDTL differ."""
    conn = _login(TargetConfig(targets={TGT: {0: Lun()}}), TGT)
    with pytest.raises(LocalProtocolError, match="differs from the CDB"):
        conn.session.scsi_command(0, cdb_inquiry(), read_length=96)
    with pytest.raises(LocalProtocolError, match="explicit read_length"):
        conn.session.scsi_command(0, cdb_read16(0, 1))
    conn.session.scsi_command(0, cdb_report_luns(1024))
    assert conn.session.data_to_send()[20:24] == (1024).to_bytes(4, "big")  # EDTL


_ops = st.lists(
    st.one_of(
        st.tuples(st.just("write"), st.integers(0, 60), st.integers(1, 40)),
        st.tuples(st.just("read"), st.integers(0, 60), st.integers(1, 40)),
        st.tuples(st.just("tur"), st.just(0), st.just(0)),
        st.tuples(st.just("inquiry"), st.sampled_from([36, 96, 255]), st.just(0)),
        st.tuples(st.just("nop"), st.integers(0, 100), st.just(0)),
    ),
    min_size=1,
    max_size=12,
)


@settings(max_examples=25, deadline=None)
@given(
    ops=_ops,
    window=st.integers(1, 4),
    chunk=st.sampled_from([512, 3000, 8192]),
    collapse=st.booleans(),
    immediate=st.booleans(),
    digests=st.booleans(),
    batch=st.booleans(),
)
def test_random_workloads_complete(
    ops: list[tuple[str, int, int]],
    window: int,
    chunk: int,
    collapse: bool,
    immediate: bool,
    digests: bool,
    batch: bool,
) -> None:
    """Any mix of commands, windows and PDU sizes completes, in order, with no rule broken."""
    lun = Lun(blocks=128)
    cfg = TargetConfig(
        targets={TGT: {1: lun}},
        window=window,
        data_in_chunk=chunk,
        data_in_status=collapse,
        digests=digests,
    )
    offer = OperationalOffer(
        immediate_data=immediate, header_digest=("CRC32C", "None"), data_digest=("CRC32C", "None")
    )
    conn = _login(cfg, TGT, offer=offer)
    model = bytearray(128 * 512)
    expected: list[tuple[int, object]] = []
    events: list[object] = []
    for op, a, b in ops:
        s = conn.session
        if op == "write":
            data = bytes([(a + b + i) & 0xFF for i in range(b * 512)])
            itt = s.scsi_command(1, cdb_write16(a, b), write_data=data)
            model[a * 512 : (a + b) * 512] = data
            expected.append((itt, b""))
        elif op == "read":
            itt = s.scsi_command(1, cdb_read16(a, b), read_length=b * 512)
            expected.append((itt, bytes(model[a * 512 : (a + b) * 512])))
        elif op == "tur":
            expected.append((s.scsi_command(1, cdb_test_unit_ready()), b""))
        elif op == "inquiry":
            expected.append((s.scsi_command(1, cdb_inquiry(None, a)), None))
        else:
            expected.append((s.nop_ping(bytes(a)), bytes(a)))
        # One at a time, or pipelined through the window.  A write is a barrier even
        # when pipelining: SIMPLE tasks may be reordered by the target (SAM-5), so a
        # read queued behind an unfinished write may see the old data.
        if not batch or op == "write":
            events += exchange(conn, rounds=200)
    events += exchange(conn, rounds=200)
    assert conn.target.violations == []
    done = {e.itt: e for e in events if isinstance(e, (ScsiCompleted, NopCompleted))}
    assert set(done) == {itt for itt, _ in expected}
    for itt, want in expected:
        got = done[itt]
        if isinstance(got, ScsiCompleted):
            assert got.good
            if want is not None:
                assert got.data == want
        else:
            assert got.data == want
    assert conn.session.open_tasks == 0
