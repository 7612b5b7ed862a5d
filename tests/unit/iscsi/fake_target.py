"""An in-memory, sans-IO iSCSI target peer for unit tests.

It plays the target side of login, CHAP, SendTargets and a few SCSI commands, with
switches for the tgt and LIO quirks recorded in the reference (§4-§10).  It also
*checks the initiator*: every rule the client must keep (same ITT/ISID/CmdSN
during login, I bit, no ``CHAP,None``, keys only in the first PDU, ExpStatSN,
CmdSN window...) is verified and a breach is appended to ``violations``, which the
tests assert empty.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass, field

from eqliscsi.iscsi_discovery._framing import ReceiveBuffer, encode_pdu
from eqliscsi.iscsi_discovery._pdu import (
    R2T,
    AsyncMessage,
    DataIn,
    DataOut,
    LoginRequest,
    LoginResponse,
    LogoutRequest,
    LogoutResponse,
    NopIn,
    NopOut,
    Pdu,
    ScsiCommand,
    ScsiResponse,
    TextRequest,
    TextResponse,
)
from eqliscsi.iscsi_discovery._text import decode_text, encode_text

RESERVED = 0xFFFFFFFF
_HASHES = {
    "md5": hashlib.md5,
    "sha1": hashlib.sha1,
    "sha256": hashlib.sha256,
    "sha3_256": hashlib.sha3_256,
}
LIO_CHAP_A = {5: "md5", 6: "sha1", 7: "sha256", 8: "sha3_256"}
TGT_CHAP_A = {5: "md5", 7: "sha1"}  # tgt's off-by-one: "7" is SHA-1 (reference §7)


@dataclass
class Lun:
    blocks: int = 131072
    block_size: int = 512
    vendor: str = "EQLOGIC"
    product: str = "100E-00"
    serial: str = "6090A0281234ABCD"
    device_type: int = 0
    naa: bytes = bytes.fromhex("6090a02800000000123456789abcdef0")
    content: bytearray = field(default_factory=bytearray)


@dataclass
class TargetConfig:
    targets: dict[str, dict[int, Lun]]
    address: str = "127.0.0.1:3260,1"  # what SendTargets reports
    chap: tuple[str, bytes] | None = None  # incoming (initiator) account
    mutual: tuple[str, bytes] | None = None  # outgoing (target) account
    chap_a: dict[int, str] = field(default_factory=lambda: dict(LIO_CHAP_A))
    reject_chap_a_lists: bool = False  # old LIO / Synology
    answer_chap_a: int | None = None  # answer this CHAP_A whatever was offered
    challenge_length: int | None = None  # None: digest size (LIO); tgt uses 50
    missing_mutual: str = "omit"  # "omit" (LIO) or "fail" (tgt 0x0201)
    reflect_mutual: bool = False  # answer the mutual challenge with the initiator secret
    nsg_downgrade: bool = False  # LIO: answer NSG=1 to a 0->3 request
    propose_keys: bool = False  # LIO: propose keys in the operational stage
    redirect_to: str | None = None  # answer the first login with 0x0101 and this address
    redirect_detail: int = 1
    not_found_status: int = 0x0203  # tgt; LIO uses 0x0301
    tsih: int = 0x0100  # tgt writes TSIH 1 in host order
    max_recv: int | None = None  # MaxRecvDataSegmentLength we declare (None: not declared)
    text_split: str | None = None  # "tgt" (F=0, C=0 mid-pair) or "lio" (C=1)
    text_chunk: int = 64
    digests: bool = False  # support CRC32C (tgt answers None otherwise, even to CRC32C-only)
    unit_attention: bool = False
    data_in_status: bool = True  # phase-collapse: status in the last Data-In
    data_in_chunk: int = 4096
    nop_in_before_scsi: bool = False
    async_logout_after_login: bool = False
    window: int = 8  # MaxCmdSN = ExpCmdSN + window - 1
    hold_window_once: bool = False  # first answer gives a closed window (MaxCmdSN=ExpCmdSN-1)
    # tgt: answers to text continuations close the window (MaxCmdSN = ExpCmdSN - 1) for good.
    shut_window_on_continuation: bool = False


class FakeTarget:
    def __init__(self, config: TargetConfig) -> None:
        self.cfg = config
        self.buffer = ReceiveBuffer(1 << 20)
        self.out = bytearray()
        self.closed = False
        self.violations: list[str] = []
        self.log: list[str] = []
        self.first: LoginRequest | None = None
        self.phase = "auth"
        self.session_type = "Normal"
        self.target_name: str | None = None
        self.statsn = 0x1000
        self.sent_statsn: set[int] = set()
        self.last_exp_statsn = 0
        self.exp_cmdsn = 0
        self.max_cmdsn = 0
        self.algorithm: str | None = None
        self.chap_i = 0
        self.challenge = b""
        self.proposed = False
        self.ffp = False
        self.digests = (False, False)
        self.their_mrdsl = 8192
        self.ua_pending: set[int] = set()
        self.pending_text: list[bytes] = []
        self.text_ttt = 0
        self.text_itt = 0
        self.nop_answers: list[int] = []
        self.writes: dict[int, tuple[ScsiCommand, bytearray]] = {}
        self.commands: list[ScsiCommand] = []
        self.sent_nop = False
        self.logins = 0

    # -- plumbing ----------------------------------------------------------------

    def receive_data(self, data: bytes) -> None:
        if self.closed:
            return
        self.buffer.feed(data)
        while not self.closed and (pdu := self.buffer.next_pdu()) is not None:
            self._dispatch(pdu)

    def data_to_send(self) -> bytes:
        out = bytes(self.out)
        self.out.clear()
        return out

    def _send(self, pdu: Pdu) -> None:
        hd, dd = self.digests if self.ffp else (False, False)
        self.out += encode_pdu(pdu, header_digest=hd, data_digest=dd)

    def _violation(self, what: str) -> None:
        self.violations.append(what)

    def _next_statsn(self) -> int:
        self.statsn += 1
        self.sent_statsn.add(self.statsn)
        return self.statsn

    def _window(self) -> tuple[int, int]:
        if self.cfg.hold_window_once:
            self.cfg.hold_window_once = False
            return self.exp_cmdsn, (self.exp_cmdsn - 1) & 0xFFFFFFFF
        self.max_cmdsn = (self.exp_cmdsn + self.cfg.window - 1) & 0xFFFFFFFF
        return self.exp_cmdsn, self.max_cmdsn

    def _dispatch(self, pdu: Pdu) -> None:
        if isinstance(pdu, LoginRequest):
            self._login(pdu)
        elif not self.ffp:
            self._violation(f"{type(pdu).__name__} before login completed")
            self.closed = True
        elif isinstance(pdu, TextRequest):
            self._text(pdu)
        elif isinstance(pdu, ScsiCommand):
            self._scsi(pdu)
        elif isinstance(pdu, DataOut):
            self._data_out(pdu)
        elif isinstance(pdu, NopOut):
            self._nop(pdu)
        elif isinstance(pdu, LogoutRequest):
            self._check_expstatsn(pdu.exp_statsn)
            exp, mx = self._window()
            self._send(
                LogoutResponse(
                    itt=pdu.itt,
                    statsn=self._next_statsn(),
                    exp_cmdsn=exp,
                    max_cmdsn=mx,
                    time2wait=2,
                    time2retain=20,
                )
            )
            self.closed = True
        else:
            self._violation(f"unexpected {type(pdu).__name__}")

    def _check_expstatsn(self, exp_statsn: int) -> None:
        # Pipelined requests may lag, but must acknowledge a StatSN we really sent,
        # and never go backwards.
        if (exp_statsn - 1) & 0xFFFFFFFF not in self.sent_statsn:
            self._violation(f"ExpStatSN {exp_statsn} acknowledges a StatSN never sent")
        if exp_statsn < self.last_exp_statsn:
            self._violation(f"ExpStatSN went back from {self.last_exp_statsn} to {exp_statsn}")
        self.last_exp_statsn = exp_statsn

    def _check_cmdsn(self, cmdsn: int, immediate: bool) -> None:
        if immediate:
            if cmdsn != self.exp_cmdsn:
                self._violation(f"immediate CmdSN {cmdsn} != ExpCmdSN {self.exp_cmdsn}")
            return
        if cmdsn != self.exp_cmdsn:
            self._violation(f"CmdSN {cmdsn} != ExpCmdSN {self.exp_cmdsn}")
        if ((self.max_cmdsn - cmdsn) & 0xFFFFFFFF) >= 1 << 31:
            self._violation(f"CmdSN {cmdsn} beyond MaxCmdSN {self.max_cmdsn}")
        self.exp_cmdsn = (cmdsn + 1) & 0xFFFFFFFF

    # -- login -------------------------------------------------------------------

    def _respond(
        self,
        req: LoginRequest,
        pairs: list[tuple[str, str]],
        *,
        transit: bool,
        nsg: int = 0,
        status: int = 0,
    ) -> None:
        final = transit and nsg == 3 and status == 0
        cls = status >> 8
        pdu = LoginResponse(
            isid=req.isid,
            itt=req.itt,
            csg=req.csg,
            nsg=nsg,
            transit=transit,
            tsih=self.cfg.tsih if final else 0,
            statsn=self._next_statsn() if cls == 0 else 0,
            exp_cmdsn=req.cmdsn,
            # tgt gives MaxCmdSN = ExpCmdSN + 1 during login; the final one opens the window.
            max_cmdsn=(req.cmdsn + (self.cfg.window - 1 if final else 1)) & 0xFFFFFFFF,
            status_class=cls,
            status_detail=status & 0xFF,
            data=encode_text(pairs),
        )
        self._send(pdu)
        if status:
            self.closed = True
        if final:
            self.exp_cmdsn = req.cmdsn
            self.max_cmdsn = (req.cmdsn + self.cfg.window - 1) & 0xFFFFFFFF
            self.ffp = True
            self.log.append("ffp")
            if self.cfg.async_logout_after_login:
                self._send(
                    AsyncMessage(
                        event=1,
                        statsn=self._next_statsn(),
                        exp_cmdsn=self.exp_cmdsn,
                        max_cmdsn=self.max_cmdsn,
                        param3=5,
                    )
                )

    def _login(self, req: LoginRequest) -> None:
        if self.ffp:
            self._violation("Login Request in full feature phase")
        if not req.immediate:
            self._violation("Login Request without the I bit")
        if req.version_min != 0 or req.version_max != 0:
            self._violation("version not 0")
        if req.transit and req.cont:
            self._violation("T and C both set")
        keys = dict(decode_text(req.data))
        if len(keys) != len(decode_text(req.data)):
            self._violation("duplicate keys in a login PDU")
        if self.first is None:
            self.first = req
            if not any(req.isid):
                return self._respond(req, [], transit=False, status=0x0207)
            if req.tsih != 0:
                self._violation("TSIH not 0 on a new session")
            for k in ("InitiatorName", "SessionType"):
                if k not in keys:
                    self._violation(f"first PDU without {k}")
            self.session_type = keys.get("SessionType", "Normal")
            self.target_name = keys.get("TargetName")
            if self.session_type == "Normal" and not self.target_name:
                return self._respond(req, [], transit=False, status=0x0207)
            if self.cfg.redirect_to:
                return self._respond(
                    req,
                    [("TargetAddress", self.cfg.redirect_to)],
                    transit=False,
                    status=0x0100 | self.cfg.redirect_detail,
                )
            if self.session_type == "Normal" and self.target_name not in self.cfg.targets:
                return self._respond(req, [], transit=False, status=self.cfg.not_found_status)
        else:
            first = self.first
            if (req.itt, req.isid, req.cmdsn) != (first.itt, first.isid, first.cmdsn):
                self._violation("ITT, ISID or CmdSN changed during login")
            for k in ("InitiatorName", "SessionType", "TargetName", "InitiatorAlias"):
                if k in keys:
                    self._violation(f"{k} resent after the first PDU")
            self._check_expstatsn(req.exp_statsn)
        if req.csg == 0:
            return self._security(req, keys)
        if req.csg == 1:
            if self.cfg.chap and self.phase != "done":
                # LIO/tgt: skipping security when CHAP is required fails 0x0201.
                return self._respond(req, [], transit=False, status=0x0201)
            return self._operational(req, keys)
        self._violation(f"login CSG {req.csg}")
        self._respond(req, [], transit=False, status=0x0200)

    def _next_stage(self, req: LoginRequest) -> int:
        if not req.transit:
            return 0
        return 1 if self.cfg.nsg_downgrade and req.nsg == 3 else req.nsg

    def _security(self, req: LoginRequest, keys: dict[str, str]) -> None:
        cfg = self.cfg
        if self.phase == "auth":
            method = keys.get("AuthMethod")
            if method is None:
                return self._respond(req, [], transit=False, status=0x0201)
            if "," in method:
                self._violation(f"AuthMethod list offered: {method}")
            if method == "CHAP" and cfg.chap:
                self.phase = "chap_a"
                return self._respond(
                    req, [("AuthMethod", "CHAP"), ("TargetPortalGroupTag", "1")], transit=False
                )
            if method == "None" and not cfg.chap:
                self.phase = "done"
                nsg = self._next_stage(req)
                if nsg == 3:
                    return self._final(req, [("TargetPortalGroupTag", "1")])
                return self._respond(
                    req,
                    [("AuthMethod", "None"), ("TargetPortalGroupTag", "1")],
                    transit=req.transit,
                    nsg=nsg,
                )
            return self._respond(req, [("AuthMethod", "Reject")], transit=False, status=0x0201)
        if self.phase == "chap_a":
            offered = keys.get("CHAP_A", "").split(",")
            if cfg.reject_chap_a_lists and offered != ["5"]:
                return self._respond(req, [], transit=False, status=0x0201)
            if cfg.answer_chap_a is not None:
                offered = [str(cfg.answer_chap_a)]
                cfg.chap_a.setdefault(cfg.answer_chap_a, "md5")
            for value in offered:
                if value.isdigit() and int(value) in cfg.chap_a:
                    self.algorithm = cfg.chap_a[int(value)]
                    size = _HASHES[self.algorithm]().digest_size
                    self.challenge = bytes(
                        (i * 7 + 3) & 0xFF for i in range(cfg.challenge_length or size)
                    )
                    self.chap_i = 42
                    self.phase = "chap_r"
                    return self._respond(
                        req,
                        [
                            ("CHAP_A", value),
                            ("CHAP_I", "42"),
                            ("CHAP_C", "0x" + self.challenge.hex()),
                        ],
                        transit=False,
                    )
            return self._respond(req, [("CHAP_A", "Reject")], transit=False, status=0x0201)
        if self.phase == "chap_r":
            assert cfg.chap is not None and self.algorithm is not None
            user, secret = cfg.chap
            got = _decode(keys.get("CHAP_R", ""))
            want = _chap(self.algorithm, self.chap_i, secret, self.challenge)
            if got is not None and len(got) != len(want):
                # tgt: "buf[20] !sufficient to decode string[66]" -> 0x0200
                return self._respond(req, [], transit=False, status=0x0200)
            if keys.get("CHAP_N") != user or got != want:
                return self._respond(req, [], transit=False, status=0x0201)
            pairs: list[tuple[str, str]] = []
            if "CHAP_I" in keys or "CHAP_C" in keys:
                their_c = _decode(keys.get("CHAP_C", ""))
                if their_c is None or their_c == self.challenge:
                    # Reflection defence of both LIO (0x0201) and tgt (0x0200).
                    return self._respond(req, [], transit=False, status=0x0201)
                their_i = int(keys["CHAP_I"])
                if cfg.reflect_mutual:
                    pairs = [
                        ("CHAP_N", cfg.mutual[0] if cfg.mutual else "target"),
                        ("CHAP_R", "0x" + _chap(self.algorithm, their_i, secret, their_c).hex()),
                    ]
                elif cfg.mutual:
                    m_user, m_secret = cfg.mutual
                    pairs = [
                        ("CHAP_N", m_user),
                        ("CHAP_R", "0x" + _chap(self.algorithm, their_i, m_secret, their_c).hex()),
                    ]
                elif cfg.missing_mutual == "fail":
                    return self._respond(req, [], transit=False, status=0x0201)
            self.phase = "done"
            nsg = self._next_stage(req)
            if nsg == 3:
                return self._final(req, pairs)
            return self._respond(req, pairs, transit=req.transit, nsg=nsg)
        self._violation(f"security PDU in phase {self.phase}")
        self._respond(req, [], transit=False, status=0x0200)

    def _operational(self, req: LoginRequest, keys: dict[str, str]) -> None:
        if self.cfg.propose_keys and not self.proposed:
            self.proposed = True
            self._offered = dict(keys)
            return self._respond(req, [("X-fake.Vendor", "1"), ("IFMarker", "No")], transit=False)
        if self.cfg.propose_keys:
            if keys.get("X-fake.Vendor") != "NotUnderstood" or keys.get("IFMarker") != "No":
                self._violation(f"proposals answered wrongly: {keys}")
            keys = {**self._offered, **keys}
        answers: list[tuple[str, str]] = []
        for key in ("HeaderDigest", "DataDigest"):
            offered = keys.get(key, "None").split(",")
            # tgt answers None when it has no digests, even to a CRC32C-only offer.
            choice = "CRC32C" if self.cfg.digests and "CRC32C" in offered else "None"
            if self.cfg.digests and "CRC32C" not in offered and "None" not in offered:
                choice = "Reject"
            answers.append((key, choice))
        if "MaxRecvDataSegmentLength" in keys:
            self.their_mrdsl = int(keys["MaxRecvDataSegmentLength"])
        if self.cfg.max_recv is not None:
            answers.append(("MaxRecvDataSegmentLength", str(self.cfg.max_recv)))
        for key in ("ErrorRecoveryLevel", "DefaultTime2Wait", "DefaultTime2Retain"):
            if key in keys:
                answers.append((key, keys[key]))
        if self.session_type == "Normal":
            for key in ("InitialR2T", "ImmediateData", "MaxBurstLength", "FirstBurstLength"):
                if key in keys:
                    answers.append((key, keys[key]))
        if not req.transit:
            return self._respond(req, answers, transit=False)
        self.digests = (
            dict(answers)["HeaderDigest"] == "CRC32C",
            dict(answers)["DataDigest"] == "CRC32C",
        )
        self.phase = "done"
        self._final(req, answers)

    def _final(self, req: LoginRequest, pairs: list[tuple[str, str]]) -> None:
        self.logins += 1
        self._respond(req, pairs, transit=True, nsg=3)
        luns = self.cfg.targets.get(self.target_name or "", {})
        if self.cfg.unit_attention:
            self.ua_pending = set(luns)
        self.buffer.header_digest, self.buffer.data_digest = self.digests

    # -- full feature ------------------------------------------------------------

    def _text(self, pdu: TextRequest) -> None:
        self._check_cmdsn(pdu.cmdsn, pdu.immediate)
        self._check_expstatsn(pdu.exp_statsn)
        if pdu.ttt == RESERVED:
            keys = decode_text(pdu.data)
            if not keys or keys[0][0] != "SendTargets" or not pdu.final:
                exp, mx = self._window()
                return self._send(
                    TextResponse(
                        itt=pdu.itt,
                        statsn=self._next_statsn(),
                        exp_cmdsn=exp,
                        max_cmdsn=mx,
                        data=encode_text([(keys[0][0], "NotUnderstood")]),
                    )
                )
            value = keys[0][1]
            pairs: list[tuple[str, str]] = []
            for name in self.cfg.targets:
                if value in ("All", name) or (value == "" and name == self.target_name):
                    pairs += [
                        ("TargetName", name),
                        ("TargetAlias", name.rsplit(":", 1)[-1]),
                        ("TargetAddress", self.cfg.address),
                    ]
            data = encode_text(pairs)
            step = self.cfg.text_chunk if self.cfg.text_split else len(data) or 1
            step = min(step, self.their_mrdsl)
            self.pending_text = [data[i : i + step] for i in range(0, len(data), step)] or [b""]
            self.text_itt = pdu.itt
        else:
            if pdu.ttt != self.text_ttt or pdu.itt != self.text_itt or pdu.data:
                self._violation("bad text continuation")
        chunk = self.pending_text.pop(0)
        last = not self.pending_text
        self.text_ttt = RESERVED if last else self.text_ttt + 1
        exp, mx = self._window()
        if self.cfg.shut_window_on_continuation and pdu.ttt != RESERVED:
            self.cfg.window = 0
            exp, mx = self._window()
        self._send(
            TextResponse(
                itt=pdu.itt,
                ttt=self.text_ttt,
                statsn=self._next_statsn(),
                exp_cmdsn=exp,
                max_cmdsn=mx,
                final=last,
                cont=not last and self.cfg.text_split == "lio",
                data=chunk,
            )
        )

    def _nop(self, pdu: NopOut) -> None:
        if not pdu.immediate:
            self._violation("NOP-Out without the I bit")
        if pdu.itt == RESERVED:
            self.nop_answers.append(pdu.ttt)
            return
        self._check_cmdsn(pdu.cmdsn, True)
        exp, mx = self._window()
        self._send(
            NopIn(
                itt=pdu.itt, statsn=self._next_statsn(), exp_cmdsn=exp, max_cmdsn=mx, data=pdu.data
            )
        )

    def _scsi(self, cmd: ScsiCommand) -> None:
        self._check_cmdsn(cmd.cmdsn, cmd.immediate)
        self._check_expstatsn(cmd.exp_statsn)
        self.commands.append(cmd)
        if self.cfg.nop_in_before_scsi and not self.sent_nop:
            self.sent_nop = True
            self._send(
                NopIn(
                    itt=RESERVED,
                    ttt=0x77,
                    statsn=self.statsn + 1,
                    exp_cmdsn=self.exp_cmdsn,
                    max_cmdsn=self.max_cmdsn,
                )
            )
        lun_no = cmd.lun >> 48 & 0x3FFF
        luns = self.cfg.targets[self.target_name or ""]
        lun = luns.get(lun_no)
        op = cmd.cdb[0]
        if op == 0x12 and int.from_bytes(cmd.cdb[3:5], "big") != cmd.edtl:
            self._violation("INQUIRY allocation length differs from EDTL (tgt: 05/24/00)")
        if lun is None and op not in (0x12, 0xA0):
            return self._check(cmd, 0x05, 0x25, 0x00)  # LOGICAL UNIT NOT SUPPORTED
        if lun_no in self.ua_pending and op not in (0x12, 0xA0):
            self.ua_pending.discard(lun_no)
            return self._check(cmd, 0x06, 0x29, 0x00)  # POWER ON OR RESET OCCURRED
        if op == 0x00:
            return self._good(cmd, b"")
        if op == 0x12:
            return self._good(cmd, _inquiry(cmd.cdb, lun))
        if op == 0xA0:
            body = b"".join(
                ((n if n < 256 else 0x4000 | n) << 48).to_bytes(8, "big") for n in sorted(luns)
            )
            return self._good(cmd, len(body).to_bytes(4, "big") + bytes(4) + body)
        assert lun is not None
        if op == 0x9E:
            return self._good(
                cmd,
                (lun.blocks - 1).to_bytes(8, "big") + lun.block_size.to_bytes(4, "big") + bytes(20),
            )
        lba = int.from_bytes(cmd.cdb[2:10], "big")
        count = int.from_bytes(cmd.cdb[10:14], "big") * lun.block_size
        start = lba * lun.block_size
        if len(lun.content) < lun.blocks * lun.block_size:
            lun.content.extend(bytes(lun.blocks * lun.block_size - len(lun.content)))
        if op == 0x88:
            return self._good(cmd, bytes(lun.content[start : start + count]))
        if op == 0x8A:
            buf = bytearray(cmd.data)
            self.writes[cmd.itt] = (cmd, buf)
            if len(buf) >= count:
                return self._finish_write(cmd.itt)
            exp, mx = self._window()
            self._send(
                R2T(
                    itt=cmd.itt,
                    ttt=0x500,
                    lun=cmd.lun,
                    statsn=self.statsn + 1,
                    exp_cmdsn=exp,
                    max_cmdsn=mx,
                    buffer_offset=len(buf),
                    desired_length=count - len(buf),
                )
            )
            return None
        return self._check(cmd, 0x05, 0x20, 0x00)  # INVALID COMMAND OPERATION CODE

    def _data_out(self, pdu: DataOut) -> None:
        _, buf = self.writes[pdu.itt]
        if pdu.ttt != 0x500 or pdu.buffer_offset != len(buf):
            self._violation("Data-Out out of order or wrong TTT")
        buf += pdu.data
        if pdu.final:
            self._finish_write(pdu.itt)

    def _finish_write(self, itt: int) -> None:
        cmd, buf = self.writes.pop(itt)
        lun = self.cfg.targets[self.target_name or ""][cmd.lun >> 48 & 0x3FFF]
        start = int.from_bytes(cmd.cdb[2:10], "big") * lun.block_size
        lun.content[start : start + len(buf)] = buf
        self._good(cmd, b"")

    def _good(self, cmd: ScsiCommand, data: bytes) -> None:
        data = data[: cmd.edtl]
        residual = cmd.edtl - len(data) if cmd.read else 0
        exp, mx = self._window()
        chunk = min(self.cfg.data_in_chunk, self.their_mrdsl)
        pieces = [data[i : i + chunk] for i in range(0, len(data), chunk)]
        for n, piece in enumerate(pieces):
            last = n == len(pieces) - 1
            status = last and self.cfg.data_in_status
            self._send(
                DataIn(
                    itt=cmd.itt,
                    lun=cmd.lun,
                    datasn=n,
                    buffer_offset=n * chunk,
                    final=last,
                    status_present=status,
                    statsn=self._next_statsn() if status else 0,
                    exp_cmdsn=exp,
                    max_cmdsn=mx,
                    residual=residual if status else 0,
                    underflow=bool(residual) and status,
                    data=piece,
                )
            )
        if not pieces or not self.cfg.data_in_status:
            self._send(
                ScsiResponse(
                    itt=cmd.itt,
                    statsn=self._next_statsn(),
                    exp_cmdsn=exp,
                    max_cmdsn=mx,
                    residual=residual,
                    underflow=bool(residual),
                )
            )

    def _check(self, cmd: ScsiCommand, key: int, asc: int, ascq: int) -> None:
        sense = bytes([0x70, 0, key, 0, 0, 0, 0, 10, 0, 0, 0, 0, asc, ascq, 0, 0, 0, 0])
        exp, mx = self._window()
        self._send(
            ScsiResponse(
                itt=cmd.itt,
                status=2,
                statsn=self._next_statsn(),
                exp_cmdsn=exp,
                max_cmdsn=mx,
                data=len(sense).to_bytes(2, "big") + sense,
            )
        )


def _chap(algorithm: str, identifier: int, secret: bytes, challenge: bytes) -> bytes:
    return _HASHES[algorithm](bytes([identifier]) + secret + challenge).digest()


def _decode(value: str) -> bytes | None:
    if value[:2] in ("0x", "0X"):
        try:
            return bytes.fromhex(value[2:])
        except ValueError:
            return None
    if value[:2] in ("0b", "0B"):
        return base64.b64decode(value[2:])
    return None


def _inquiry(cdb: bytes, lun: Lun | None) -> bytes:
    if lun is None:
        return bytes([0x7F]) + bytes(35)  # qualifier 3: no LU here
    if cdb[1] & 1 == 0:
        return (
            bytes([lun.device_type, 0, 6, 2, 31, 0, 0, 0])
            + lun.vendor.ljust(8).encode()
            + lun.product.ljust(16).encode()
            + b"0001"
        )
    if cdb[2] == 0x80:
        s = lun.serial.encode()
        return bytes([lun.device_type, 0x80, 0, len(s)]) + s
    if cdb[2] == 0x83:
        naa = bytes([0x01, 0x03, 0x00, len(lun.naa)]) + lun.naa
        port = bytes([0x01, 0x14, 0x00, 0x04, 0, 0, 0, 1])  # target port: not the LU's
        body = naa + port
        return bytes([lun.device_type, 0x83]) + len(body).to_bytes(2, "big") + body
    return bytes([lun.device_type, cdb[2], 0, 0])


def pump(client_send: bytes, target: FakeTarget) -> bytes:
    """Deliver client bytes to the target; return what the target answers."""
    target.receive_data(client_send)
    return target.data_to_send()
