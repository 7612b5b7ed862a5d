"""The rig's agent inside the kernel guest: configures LIO through rtslib-fb.

Runs *in the guest* (started by the rootfs init, from the project tree shared over
virtio-9p) and serves a line-JSON protocol on a TCP port that QEMU forwards to
127.0.0.1 on the host.  One request per line, one answer per line:

    -> {"op": "create_target", "iqn": "...", "path": "/srv/share/v.img"}
    <- {"ok": true, "result": null}
    <- {"ok": false, "error": "one sentence"}

Why an agent and not targetcli over SSH: each targetcli call costs 2-3 s under TCG
(environment.md), while rtslib in one long-lived Python process costs milliseconds.

Only the standard library is imported at module level, so the host can import this
module (for :func:`handle_request`'s table) without rtslib; the guest has
python3-rtslib-fb from Debian.

The requests carry CHAP secrets; the agent never prints a request, and its error
messages name fields, never values.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import ipaddress
import json
import os
import socketserver
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["READY_FILE", "LioState", "handle_request", "main"]

READY_FILE = Path("/run/eqliscsi-agent.ready")
_CONFIGFS_ISCSI = Path("/sys/kernel/config/target/iscsi")
# LIO's iSCSI fabric listens once per (address, port); every TPG gets this portal.
_PORTAL = ("0.0.0.0", 3260)  # noqa: S104 - guest side of QEMU's 127.0.0.1-only hostfwd
_TPG_TAG = 1
_LUN = 0


class AgentError(Exception):
    """A request the agent cannot carry out; the message goes back to the host."""


@dataclass
class _Chap:
    user: str
    secret: str

    @classmethod
    def parse(cls, obj: object, what: str) -> _Chap | None:
        if obj is None:
            return None
        if (
            not isinstance(obj, dict)
            or not isinstance(obj.get("user"), str)
            or not isinstance(obj.get("secret"), str)
        ):
            raise AgentError(f"{what} must be null or an object with string user and secret.")
        return cls(obj["user"], obj["secret"])


@dataclass
class _TargetState:
    path: str
    # The rtslib objects made at create time: deleting through them avoids a lookup,
    # which scans every HBA (rtslib makes one per backstore) and made tearing down
    # 150 targets take two minutes under TCG.
    target: Any = None
    storage: Any = None
    initiators: list[str] | None = None
    incoming: _Chap | None = None
    outgoing: _Chap | None = None


@dataclass
class LioState:
    """What the host asked for, per target; LIO objects are recomputed from it."""

    targets: dict[str, _TargetState] = field(default_factory=dict)

    # -- helpers ------------------------------------------------------------

    @staticmethod
    def _rts() -> Any:
        import rtslib_fb  # noqa: PLC0415 - only exists in the guest

        return rtslib_fb

    @staticmethod
    def _so_name(iqn: str) -> str:
        # Backstore names are configfs directory names: keep them short and plain.
        return "eql_" + hashlib.sha256(iqn.encode()).hexdigest()[:16]

    def _tpg(self, iqn: str) -> Any:
        rts = self._rts()
        fm = rts.FabricModule("iscsi")
        target = rts.Target(fm, iqn, mode="lookup")
        return rts.TPG(target, _TPG_TAG, mode="lookup")

    def _state(self, iqn: str) -> _TargetState:
        st = self.targets.get(iqn)
        if st is None:
            raise AgentError(f"Target {iqn} was not created through this agent.")
        return st

    def _apply(self, iqn: str) -> None:
        """Make LIO's ACLs and CHAP for ``iqn`` match the recorded state."""
        rts = self._rts()
        st = self._state(iqn)
        tpg = self._tpg(iqn)
        tpg_lun = next(lun for lun in tpg.luns if lun.lun == _LUN)
        tpg.set_attribute("authentication", "1" if st.incoming else "0")
        if st.initiators is None:
            # Demo mode: LIO generates an ACL for any initiator; CHAP then comes
            # from the TPG's own auth/ directory.
            for acl in list(tpg.node_acls):
                acl.delete()
            tpg.set_attribute("generate_node_acls", "1")
            tpg.set_attribute("demo_mode_discovery", "1")
            tpg.set_attribute("cache_dynamic_acls", "1")
            tpg.set_attribute("demo_mode_write_protect", "0")
            holders = [tpg]
        else:
            tpg.set_attribute("generate_node_acls", "0")
            # LIO lists every target in SendTargets unless demo_mode_discovery is 0;
            # an EqualLogic group (and tgt) hides targets whose access records do
            # not admit the initiator, so the rig's contract is to hide them too.
            tpg.set_attribute("demo_mode_discovery", "0")
            wanted = set(st.initiators)
            for acl in list(tpg.node_acls):
                if acl.node_wwn not in wanted:
                    acl.delete()
            holders = []
            for name in st.initiators:
                acl = rts.NodeACL(tpg, name)
                if not any(m.mapped_lun == _LUN for m in acl.mapped_luns):
                    rts.MappedLUN(acl, _LUN, tpg_lun)
                holders.append(acl)
        for h in holders:
            # rtslib writes "NULL" for an empty value, which LIO reads as "unset".
            h.chap_userid = st.incoming.user if st.incoming else ""
            h.chap_password = st.incoming.secret if st.incoming else ""
            h.chap_mutual_userid = st.outgoing.user if st.outgoing else ""
            h.chap_mutual_password = st.outgoing.secret if st.outgoing else ""

    # -- operations ---------------------------------------------------------

    def op_ping(self, req: dict[str, Any]) -> object:
        return {"kernel": os.uname().release, "pid": os.getpid()}

    def op_create_target(self, req: dict[str, Any]) -> object:
        iqn, path = _str(req, "iqn"), _str(req, "path")
        rts = self._rts()
        p = Path(path)
        if not p.is_file():
            raise AgentError(f"Backing file {path} does not exist in the guest.")
        self.op_delete_target({"iqn": iqn})
        so = rts.FileIOStorageObject(
            self._so_name(iqn), dev=path, size=p.stat().st_size, write_back=False
        )
        fm = rts.FabricModule("iscsi")
        target = rts.Target(fm, iqn, mode="create")
        tpg = rts.TPG(target, _TPG_TAG, mode="create")
        rts.NetworkPortal(tpg, *_PORTAL, mode="create")
        rts.LUN(tpg, _LUN, so)
        tpg.enable = True
        self.targets[iqn] = _TargetState(path=path, target=target, storage=so)
        self._apply(iqn)
        return None

    def op_delete_target(self, req: dict[str, Any]) -> object:
        iqn = _str(req, "iqn")
        rts = self._rts()
        st = self.targets.pop(iqn, None)
        if st is not None and st.target is not None:
            so_path = Path(st.storage.path)
            st.target.delete()
            # rtslib's StorageObject.delete() first walks every LUN of every target
            # to find users of the object (O(targets) per call, minutes for 150
            # targets under TCG); the target that used it is gone, so remove the
            # configfs directories directly: the object (its default groups go with
            # it), then its HBA, which fails harmlessly while another object uses it.
            so_path.rmdir()
            with contextlib.suppress(OSError):
                so_path.parent.rmdir()
            return None
        if (_CONFIGFS_ISCSI / iqn).is_dir():
            rts.Target(rts.FabricModule("iscsi"), iqn, mode="lookup").delete()
        with contextlib.suppress(rts.RTSLibNotInCFS):
            rts.FileIOStorageObject(self._so_name(iqn)).delete()
        return None

    def op_add_portal(self, req: dict[str, Any]) -> object:
        """One more network portal on the target's TPG (e.g. ``::1`` for IPv6 tests).

        LIO's wildcard ``0.0.0.0`` portal is IPv4 only; an IPv6 portal has to be named.
        """
        iqn, address = _str(req, "iqn"), _str(req, "address")
        port = req.get("port")
        if not isinstance(port, int) or not 0 < port < 65536:
            raise AgentError("Field port must be an integer from 1 to 65535.")
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            raise AgentError("Field address must be an IP literal.") from None
        self._state(iqn)
        # rtslib names the configfs directory "<address>:<port>", IPv6 in brackets.
        name = f"[{ip}]" if ip.version == 6 else str(ip)
        self._rts().NetworkPortal(self._tpg(iqn), name, port, mode="create")
        return None

    def op_set_initiators(self, req: dict[str, Any]) -> object:
        iqn = _str(req, "iqn")
        inits = req.get("initiators")
        if inits is not None and not (
            isinstance(inits, list) and all(isinstance(i, str) for i in inits)
        ):
            raise AgentError("initiators must be null or a list of strings.")
        self._state(iqn).initiators = inits
        self._apply(iqn)
        return None

    def op_set_chap(self, req: dict[str, Any]) -> object:
        iqn = _str(req, "iqn")
        st = self._state(iqn)
        st.incoming = _Chap.parse(req.get("incoming"), "incoming")
        st.outgoing = _Chap.parse(req.get("outgoing"), "outgoing")
        self._apply(iqn)
        return None

    def op_set_discovery_chap(self, req: dict[str, Any]) -> object:
        incoming = _Chap.parse(req.get("incoming"), "incoming")
        outgoing = _Chap.parse(req.get("outgoing"), "outgoing")
        fm = self._rts().FabricModule("iscsi")
        fm.discovery_userid = incoming.user if incoming else ""
        fm.discovery_password = incoming.secret if incoming else ""
        fm.discovery_mutual_userid = outgoing.user if outgoing else ""
        fm.discovery_mutual_password = outgoing.secret if outgoing else ""
        fm.discovery_enable_auth = incoming is not None
        return None

    def op_session_count(self, req: dict[str, Any]) -> object:
        iqn = _str(req, "iqn")
        tpg_dir = _CONFIGFS_ISCSI / iqn / f"tpgt_{_TPG_TAG}"
        if not tpg_dir.is_dir():
            return 0
        # Sessions of generated (demo-mode) ACLs are listed one initiator per line;
        # explicit ACLs report theirs in acls/<name>/info.
        # The kernel (target_show_dynamic_sessions) ends each name with "\n" and then
        # skips a byte, leaving a NUL before the next one: strip NULs as well.
        count = sum(
            1
            for line in (tpg_dir / "dynamic_sessions").read_text().splitlines()
            if line.strip("\x00 \t")
        )
        for info in (tpg_dir / "acls").glob("*/info"):
            count += sum(
                1 for line in info.read_text().splitlines() if line.startswith("InitiatorName:")
            )
        return count

    def op_set_attribute(self, req: dict[str, Any]) -> object:
        """A TPG attribute or parameter (e.g. ``HeaderDigest``) for quirk tests."""
        iqn, kind, name, value = (_str(req, k) for k in ("iqn", "kind", "name", "value"))
        tpg = self._tpg(iqn)
        if kind == "attribute":
            tpg.set_attribute(name, value)
        elif kind == "parameter":
            tpg.set_parameter(name, value)
        else:
            raise AgentError("kind must be attribute or parameter.")
        return None


def _str(req: dict[str, Any], key: str) -> str:
    v = req.get(key)
    if not isinstance(v, str) or not v:
        raise AgentError(f"Field {key} must be a non-empty string.")
    return v


def handle_request(state: LioState, line: bytes) -> bytes:
    """One request line in, one answer line out; never raises."""
    try:
        req = json.loads(line)
        if not isinstance(req, dict) or not isinstance(req.get("op"), str):
            raise AgentError("A request must be a JSON object with a string op.")
        fn = getattr(state, "op_" + req["op"], None)
        if fn is None:
            raise AgentError(f"Unknown op {req['op']!r}.")
        answer: dict[str, object] = {"ok": True, "result": fn(req)}
    except AgentError as exc:
        answer = {"ok": False, "error": str(exc)}
    except Exception as exc:  # rtslib raises plain exceptions; report the type and text
        answer = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
    return json.dumps(answer).encode() + b"\n"


class _Handler(socketserver.StreamRequestHandler):
    server: _Server

    def handle(self) -> None:
        for line in self.rfile:
            if not line.strip():
                continue
            self.wfile.write(handle_request(self.server.state, line))
            self.wfile.flush()


class _Server(socketserver.TCPServer):
    allow_reuse_address = True

    def __init__(self, port: int) -> None:
        self.state = LioState()
        super().__init__(("0.0.0.0", port), _Handler)  # noqa: S104 - see _PORTAL


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="rig.guest.agent")
    ap.add_argument("--port", type=int, default=7000)
    args = ap.parse_args(argv)
    # rtslib-fb insists that its dbroot exists before it touches a backstore (it
    # keeps ALUA metadata there); Debian's package does not create it.
    Path("/etc/rtslib-fb-target").mkdir(parents=True, exist_ok=True)
    with _Server(args.port) as srv:
        READY_FILE.write_text(f"{args.port}\n")
        print(f"EQLISCSI-AGENT-READY {args.port}", flush=True, file=sys.stderr)
        srv.serve_forever()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
