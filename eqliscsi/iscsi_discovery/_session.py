"""Sans-IO full-feature phase of one session/connection (RFC 7143 §3, §4.2, §11).

After :class:`._login.LoginMachine` reports :class:`LoginSucceeded`, this object
owns the connection: it builds requests (SendTargets, SCSI commands, NOP-Out,
Logout), reads the target's PDUs, and reports completions as events.  It answers
NOP-Ins that ask for an answer by itself and surfaces Async Messages.

Sequence numbers (RFC 7143 §4.2.2): the first non-immediate command carries the
login's CmdSN; non-immediate commands then advance it and may only be sent while
``CmdSN <= MaxCmdSN`` (serial arithmetic, RFC 1982) — others wait in a queue.
A window update is ignored when MaxCmdSN < ExpCmdSN - 1, and windows only move
forward.  ExpStatSN = last StatSN + 1.
"""

from __future__ import annotations

import enum
from collections import deque
from dataclasses import dataclass, field

from eqliscsi.iscsi_discovery._framing import ReceiveBuffer, encode_pdu
from eqliscsi.iscsi_discovery._login import LoginConfig, LoginSucceeded
from eqliscsi.iscsi_discovery._negotiation import SessionType
from eqliscsi.iscsi_discovery._pdu import (
    R2T,
    RESERVED_TAG,
    AsyncMessage,
    DataIn,
    DataOut,
    LogoutRequest,
    LogoutResponse,
    NopIn,
    NopOut,
    Pdu,
    Reject,
    ScsiCommand,
    ScsiResponse,
    TextRequest,
    TextResponse,
    lun_field,
)
from eqliscsi.iscsi_discovery._scsi import ScsiStatus, Sense, data_in_length, parse_sense
from eqliscsi.iscsi_discovery._text import TextAssembler, encode_text, parse_send_targets
from eqliscsi.iscsi_discovery._types import DiscoveredTarget, check_iscsi_name
from eqliscsi.iscsi_discovery.errors import (
    LocalProtocolError,
    PduRejected,
    RemoteProtocolError,
    ScsiCommandFailed,
)

__all__ = [
    "AsyncEvent",
    "LogoutCompleted",
    "NopCompleted",
    "ScsiCompleted",
    "SendTargetsCompleted",
    "Session",
    "SessionEvent",
    "TaskRejected",
    "TextCompleted",
    "serial_lt",
]


def serial_lt(a: int, b: int) -> bool:
    """``a < b`` in 32-bit serial number arithmetic (RFC 1982 §3.2)."""
    return a != b and ((a < b and b - a < 1 << 31) or (a > b and a - b > 1 << 31))


def _serial_le(a: int, b: int) -> bool:
    return a == b or serial_lt(a, b)


@dataclass(frozen=True, slots=True)
class TextCompleted:
    """A Text exchange finished; its key=value pairs, reassembled."""

    itt: int
    pairs: tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class SendTargetsCompleted:
    """A SendTargets exchange finished (RFC 7143 Appendix C)."""

    itt: int
    targets: tuple[DiscoveredTarget, ...]


@dataclass(frozen=True, slots=True)
class ScsiCompleted:
    """A SCSI command finished (from a SCSI Response or a Data-In with S=1)."""

    itt: int
    lun: int
    opcode: int
    status: int
    data: bytes
    sense: Sense | None
    residual: int = 0
    underflow: bool = False
    overflow: bool = False
    response: int = 0  # iSCSI Response: 0 completed at target, 1 target failure

    @property
    def good(self) -> bool:
        return self.response == 0 and self.status == ScsiStatus.GOOD

    @property
    def unit_attention(self) -> bool:
        """The signal to retry: CHECK CONDITION with UNIT ATTENTION (reference §8)."""
        return (
            self.status == ScsiStatus.CHECK_CONDITION
            and self.sense is not None
            and self.sense.is_unit_attention
        )

    def check(self, command: str, target: str = "") -> bytes:
        """The data when GOOD, else raise :class:`ScsiCommandFailed`."""
        if self.good:
            return self.data
        s = self.sense
        raise ScsiCommandFailed(
            command,
            status=self.status if self.response == 0 else 0xFF,
            sense_key=s.sense_key if s else None,
            asc=s.asc if s else None,
            ascq=s.ascq if s else None,
            target=target,
            lun=self.lun,
        )


@dataclass(frozen=True, slots=True)
class NopCompleted:
    """Our NOP-Out ping was answered (RFC 7143 §11.19)."""

    itt: int
    data: bytes


@dataclass(frozen=True, slots=True)
class LogoutCompleted:
    """The target answered our Logout (RFC 7143 §11.15)."""

    itt: int
    response: int
    time2wait: int
    time2retain: int


@dataclass(frozen=True, slots=True)
class AsyncEvent:
    """An Async Message (RFC 7143 §11.9); event 1 = the target asks us to log out."""

    event: int
    vcode: int
    param1: int
    param2: int
    param3: int
    sense: Sense | None

    @property
    def logout_requested(self) -> bool:
        return self.event == 1


@dataclass(frozen=True, slots=True)
class TaskRejected:
    """The target answered one of our tasks with a Reject PDU."""

    itt: int | None
    reason: int


SessionEvent = (
    TextCompleted
    | SendTargetsCompleted
    | ScsiCompleted
    | NopCompleted
    | LogoutCompleted
    | AsyncEvent
    | TaskRejected
)


class _Kind(enum.Enum):
    TEXT = "text"
    SEND_TARGETS = "send targets"
    SCSI = "scsi"
    NOP = "nop"
    LOGOUT = "logout"


@dataclass(slots=True)
class _Task:
    """One command in flight, keyed by its ITT."""

    kind: _Kind
    itt: int
    lun: int = 0
    lun_field: int = 0
    opcode: int = 0
    read_length: int = 0
    write_data: bytes = b""
    buffer: bytearray = field(default_factory=bytearray)
    received: int = 0
    text: TextAssembler | None = None


# Target PDUs that carry ExpCmdSN/MaxCmdSN (RFC 7143 §11).
_WINDOWED = (TextResponse, ScsiResponse, LogoutResponse, NopIn, R2T, DataIn, AsyncMessage, Reject)


class Session:
    """The full-feature phase of one logged-in connection (sans-IO)."""

    def __init__(self, config: LoginConfig, login: LoginSucceeded, leftover: bytes = b"") -> None:
        self.config = config
        self.params = login.params
        self.tsih = login.tsih
        self._cmdsn = config.cmdsn
        self._exp_cmdsn = login.exp_cmdsn
        self._max_cmdsn = login.max_cmdsn
        self._exp_statsn = (login.statsn + 1) & 0xFFFFFFFF
        self._next_itt = (config.itt + 1) & 0xFFFFFFFF
        self._tasks: dict[int, _Task] = {}
        self._queue: deque[Pdu] = deque()  # non-immediate PDUs waiting for the window
        self._out = bytearray()
        self._logged_out = False
        self._buffer = ReceiveBuffer(
            self.params.max_recv_data_segment_length,
            header_digest=self.params.header_digest,
            data_digest=self.params.data_digest,
        )
        self._buffer.feed(leftover)

    # -- requests ----------------------------------------------------------------

    @property
    def open_tasks(self) -> int:
        return len(self._tasks)

    def send_targets(self, value: str = "All") -> int:
        """Queue ``SendTargets=<value>`` (RFC 7143 Appendix C); returns the ITT.

        Non-immediate with CmdSN++, the form open-iscsi uses (reference §6).
        ``value`` is ``All``, empty (this session's target), or one target name.
        """
        if value not in ("All", ""):
            check_iscsi_name(value, "target name")
        return self.text_request([("SendTargets", value)], _Kind.SEND_TARGETS)

    def text_request(self, pairs: list[tuple[str, str]], kind: _Kind = _Kind.TEXT) -> int:
        data = encode_text(pairs)
        if len(data) > self.params.max_send_data_segment_length:
            raise LocalProtocolError("A text request exceeds the target's limit; send fewer keys.")
        itt = self._new_task(_Task(kind, 0, text=TextAssembler()))
        self._submit(TextRequest(itt=itt, data=data))
        return itt

    def scsi_command(
        self, lun: int, cdb: bytes, *, read_length: int | None = None, write_data: bytes = b""
    ) -> int:
        """Queue a SCSI command; returns the ITT of the task.

        ``read_length`` (ExpectedDataTransferLength for Data-In) defaults to the
        allocation length in the CDB for INQUIRY, REPORT LUNS, READ CAPACITY(16) and
        TEST UNIT READY; a different value is refused, because targets (tgt) fail
        such a command with ILLEGAL REQUEST 24/00.
        """
        implied = data_in_length(cdb)
        if read_length is None:
            if implied is None and not write_data:
                raise LocalProtocolError(
                    f"SCSI opcode 0x{cdb[0] if cdb else 0:02x} needs an explicit read_length."
                )
            read_length = implied or 0
        elif implied is not None and read_length != implied:
            raise LocalProtocolError(
                f"read_length {read_length} differs from the CDB's allocation length {implied}; "
                "make them equal."
            )
        if read_length and write_data:
            raise LocalProtocolError("Bidirectional SCSI commands are not supported.")
        if self.config.kind is SessionType.DISCOVERY:
            raise LocalProtocolError("SCSI commands need a Normal session; log in to a target.")
        lf = lun_field(lun)
        task = _Task(_Kind.SCSI, 0, lun, lf, cdb[0] if cdb else 0, read_length, write_data)
        task.buffer = bytearray(read_length)
        itt = self._new_task(task)
        immediate = b""
        if write_data and self.params.immediate_data:
            limit = min(self.params.first_burst_length, self.params.max_send_data_segment_length)
            immediate = write_data[:limit]
        edtl = read_length or len(write_data)
        pdu = ScsiCommand(
            itt=itt,
            cdb=cdb,
            lun=lf,
            edtl=edtl,
            read=bool(read_length),
            write=bool(write_data),
            data=immediate,
        )
        self._submit(pdu)
        return itt

    def nop_ping(self, data: bytes = b"") -> int:
        """An immediate NOP-Out ping; the target echoes ``data`` in a NOP-In."""
        if self.config.kind is SessionType.DISCOVERY:
            # tgt closes a discovery connection on any NOP-Out (reference §6).
            raise LocalProtocolError("NOP-Out is not sent on a discovery session.")
        itt = self._new_task(_Task(_Kind.NOP, 0))
        self._submit(NopOut(itt=itt, data=data, immediate=True))
        return itt

    def logout(self, reason: int = 0) -> int:
        """An immediate Logout Request (reason 0: close the session)."""
        itt = self._new_task(_Task(_Kind.LOGOUT, 0))
        self._submit(LogoutRequest(itt=itt, reason=reason, immediate=True))
        self._logged_out = True
        return itt

    def data_to_send(self) -> bytes:
        out = bytes(self._out)
        self._out.clear()
        return out

    # -- target PDUs -------------------------------------------------------------

    def receive_data(self, data: bytes) -> list[SessionEvent]:
        """Feed bytes from the target; returns completed events.

        Raises:
            RemoteProtocolError (and :class:`PduDecodeError`): close the connection.
        """
        self._buffer.feed(data)
        events: list[SessionEvent] = []
        while (pdu := self._buffer.next_pdu()) is not None:
            event = self._on_pdu(pdu)
            if event is not None:
                events.append(event)
            self._flush_queue()
        return events

    # -- internals ---------------------------------------------------------------

    def _new_task(self, task: _Task) -> int:
        if self._logged_out:
            raise LocalProtocolError("The session is logging out; open a new session.")
        itt = self._next_itt
        while itt == RESERVED_TAG or itt in self._tasks:
            itt = (itt + 1) & 0xFFFFFFFF
        self._next_itt = (itt + 1) & 0xFFFFFFFF
        task.itt = itt
        self._tasks[itt] = task
        return itt

    def _submit(self, pdu: Pdu) -> None:
        immediate = getattr(pdu, "immediate", False)
        if immediate:
            self._emit(pdu, self._cmdsn)
        else:
            self._queue.append(pdu)
            self._flush_queue()

    def _flush_queue(self) -> None:
        while self._queue and _serial_le(self._cmdsn, self._max_cmdsn):
            pdu = self._queue.popleft()
            self._emit(pdu, self._cmdsn)
            self._cmdsn = (self._cmdsn + 1) & 0xFFFFFFFF

    def _emit(self, pdu: Pdu, cmdsn: int) -> None:
        # CmdSN and ExpStatSN are stamped as the PDU leaves (RFC 7143 §4.2.2.1), straight
        # into the header: no copy of the dataclass per PDU.
        numbers: dict[str, int] = {"exp_statsn": self._exp_statsn}
        if hasattr(pdu, "cmdsn"):
            numbers["cmdsn"] = cmdsn
        self._out += encode_pdu(
            pdu,
            header_digest=self.params.header_digest,
            data_digest=self.params.data_digest,
            numbers=numbers,
        )

    def _update_window(self, exp_cmdsn: int, max_cmdsn: int) -> None:
        # RFC 7143 §4.2.2.1: ignore MaxCmdSN < ExpCmdSN - 1; never move backwards.
        if serial_lt(max_cmdsn, (exp_cmdsn - 1) & 0xFFFFFFFF):
            return
        if serial_lt(self._exp_cmdsn, exp_cmdsn):
            self._exp_cmdsn = exp_cmdsn
        if serial_lt(self._max_cmdsn, max_cmdsn):
            self._max_cmdsn = max_cmdsn

    def _status(self, statsn: int) -> None:
        nxt = (statsn + 1) & 0xFFFFFFFF
        if serial_lt(self._exp_statsn, nxt):
            self._exp_statsn = nxt

    def _task(self, itt: int, kind: tuple[_Kind, ...], what: str) -> _Task:
        task = self._tasks.get(itt)
        if task is None or task.kind not in kind:
            raise RemoteProtocolError(
                f"The target at portal {self.config.portal} sent a {what} for unknown task "
                f"0x{itt:08x}; the session is out of sync."
            )
        return task

    def _on_pdu(self, pdu: Pdu) -> SessionEvent | None:
        if isinstance(pdu, _WINDOWED):
            self._update_window(pdu.exp_cmdsn, pdu.max_cmdsn)
        if isinstance(pdu, TextResponse):
            self._status(pdu.statsn)
            return self._on_text(pdu)
        if isinstance(pdu, DataIn):
            return self._on_data_in(pdu)
        if isinstance(pdu, ScsiResponse):
            self._status(pdu.statsn)
            return self._on_scsi_response(pdu)
        if isinstance(pdu, R2T):
            self._on_r2t(pdu)
            return None
        if isinstance(pdu, NopIn):
            return self._on_nop_in(pdu)
        if isinstance(pdu, LogoutResponse):
            self._status(pdu.statsn)
            self._task(pdu.itt, (_Kind.LOGOUT,), "Logout Response")
            del self._tasks[pdu.itt]
            return LogoutCompleted(pdu.itt, pdu.response, pdu.time2wait, pdu.time2retain)
        if isinstance(pdu, AsyncMessage):
            self._status(pdu.statsn)
            sense = parse_sense(pdu.data) if pdu.event == 0 else None
            return AsyncEvent(pdu.event, pdu.vcode, pdu.param1, pdu.param2, pdu.param3, sense)
        if isinstance(pdu, Reject):
            itt = pdu.rejected_itt
            if itt is not None and itt in self._tasks:
                del self._tasks[itt]
                return TaskRejected(itt, pdu.reason)
            raise PduRejected(pdu.reason, self.config.portal)
        raise RemoteProtocolError(
            f"The target at portal {self.config.portal} sent a {type(pdu).__name__} "
            "in the full feature phase; the session is out of sync."
        )

    def _on_text(self, pdu: TextResponse) -> SessionEvent | None:
        task = self._task(pdu.itt, (_Kind.TEXT, _Kind.SEND_TARGETS), "Text Response")
        assert task.text is not None
        if not task.text.add(pdu.data, final=pdu.final, ttt=pdu.ttt):
            # RFC 7143 §11.10.4: an empty request echoing the TTT asks for the rest.
            # Sent immediate (RFC 7143 §3.2.2.1: delivered outside the CmdSN window):
            # tgt answers a continuation with MaxCmdSN = ExpCmdSN - 1 and reopens the
            # window only when the whole text exchange ends, so a non-immediate third
            # request would wait for a window that never opens.
            self._submit(TextRequest(itt=pdu.itt, ttt=pdu.ttt, immediate=True))
            return None
        del self._tasks[pdu.itt]
        pairs = task.text.pairs()
        if task.kind is _Kind.SEND_TARGETS:
            targets = parse_send_targets(pairs, self.config.portal.without_tpgt())
            return SendTargetsCompleted(pdu.itt, tuple(targets))
        return TextCompleted(pdu.itt, tuple(pairs))

    def _on_data_in(self, pdu: DataIn) -> SessionEvent | None:
        task = self._task(pdu.itt, (_Kind.SCSI,), "Data-In")
        end = pdu.buffer_offset + len(pdu.data)
        if end > task.read_length:
            raise RemoteProtocolError(
                f"The target at portal {self.config.portal} sent Data-In past the "
                f"expected {task.read_length} bytes; the session is out of sync."
            )
        task.buffer[pdu.buffer_offset : end] = pdu.data
        task.received = max(task.received, end)
        if not pdu.status_present:
            return None
        self._status(pdu.statsn)
        del self._tasks[pdu.itt]
        data = bytes(task.buffer[: task.received])
        return ScsiCompleted(
            pdu.itt, task.lun, task.opcode, pdu.status, data, None,
            pdu.residual, pdu.underflow, pdu.overflow,
        )  # fmt: skip

    def _on_scsi_response(self, pdu: ScsiResponse) -> SessionEvent:
        task = self._task(pdu.itt, (_Kind.SCSI,), "SCSI Response")
        del self._tasks[pdu.itt]
        sense = parse_sense(pdu.data) if pdu.status == ScsiStatus.CHECK_CONDITION else None
        data = bytes(task.buffer[: task.received])
        return ScsiCompleted(
            pdu.itt, task.lun, task.opcode, pdu.status, data, sense,
            pdu.residual, pdu.underflow, pdu.overflow, pdu.response,
        )  # fmt: skip

    def _on_r2t(self, pdu: R2T) -> None:
        task = self._task(pdu.itt, (_Kind.SCSI,), "R2T")
        end = pdu.buffer_offset + pdu.desired_length
        if not task.write_data or end > len(task.write_data):
            raise RemoteProtocolError(
                f"The target at portal {self.config.portal} asked for data the command does "
                "not have; the session is out of sync."
            )
        step = self.params.max_send_data_segment_length
        offset, datasn = pdu.buffer_offset, 0
        while offset < end:
            chunk = task.write_data[offset : min(end, offset + step)]
            self._emit(
                DataOut(
                    itt=pdu.itt,
                    ttt=pdu.ttt,
                    lun=task.lun_field,
                    datasn=datasn,
                    buffer_offset=offset,
                    final=offset + len(chunk) >= end,
                    data=chunk,
                ),
                self._cmdsn,
            )
            offset += len(chunk)
            datasn += 1

    def _on_nop_in(self, pdu: NopIn) -> SessionEvent | None:
        if pdu.itt != RESERVED_TAG:
            self._status(pdu.statsn)
            self._task(pdu.itt, (_Kind.NOP,), "NOP-In")
            del self._tasks[pdu.itt]
            return NopCompleted(pdu.itt, pdu.data)
        # Unsolicited: StatSN not advanced; answer only when TTT asks (RFC 7143 §11.19).
        if pdu.ttt != RESERVED_TAG:
            answer = NopOut(itt=RESERVED_TAG, ttt=pdu.ttt, lun=pdu.lun, immediate=True)
            self._emit(answer, self._cmdsn)
        return None
