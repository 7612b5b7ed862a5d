"""``iscsiadm`` for the embedded rig's hosts, whose kernel has no iSCSI initiator.

It accepts exactly the argument forms :mod:`eqliscsi.opennebula.iscsiadm` builds and
nothing else (anything else exits 7, ``ISCSI_ERR_INVAL``, with a loud message), so a
driver change that emits a new form fails the rig instead of passing by accident.
The node database has open-iscsi's layout and record syntax under ``/etc/iscsi``
(private to the host through its mount namespace), so the driver's CHAP helper
edits the same file it would edit on a real host.

The data path is real: a login starts ``qemu-storage-daemon`` with libiscsi's
initiator (CHAP secret passed as ``--object secret,file=`` from a 0600 file, never
in argv), exports the LUN over FUSE onto a file, attaches it to a loop device, and
plays udev: it writes a sysfs-shaped session record and runs the shipped
``eqliscsi-udev-name`` on it to name ``/dev/iscsi/<volume>``.  Logout undoes all of
it.  Exit statuses are open-iscsi's (15 already logged in, 21 nothing found, 24
authentication failure).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from eqliscsi.errors import UsageError
from eqliscsi.opennebula.iscsiadm import IscsiadmStatus as S
from eqliscsi.opennebula.iscsiadm import TargetPortal, validate_iface, validate_iqn

ISCSI_DB = Path(os.environ.get("EQLISCSI_STANDIN_DB", "/etc/iscsi"))
DEV_DIR = Path(os.environ.get("EQLISCSI_STANDIN_DEV", "/dev/iscsi"))
UDEV_HELPER = os.environ.get(
    "EQLISCSI_STANDIN_UDEV_HELPER", "/var/tmp/one/tm/eqliscsi/eqliscsi-udev-name"
)
QSD = "qemu-storage-daemon"
ISCSI_LS = "iscsi-ls"
QSD_START_TIMEOUT_S = 30
QSD_STOP_TIMEOUT_S = 10


class Exit(Exception):
    def __init__(self, status: int, message: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True, slots=True)
class Session:
    sid: int
    iqn: str
    address: str
    port: int
    tpgt: int
    iface: str
    qsd_pid: int
    mountpoint: str
    loop: str
    link: str | None


# --------------------------------------------------------------------------- argv


@dataclass(frozen=True, slots=True)
class Command:
    kind: str  # discovery | login | logout | delete | session | nodes | iface-new|update|delete
    iqn: str = ""
    portal: TargetPortal | None = None
    iface: str = "default"
    netdev: str = ""  # iface-update: the iface.net_ifacename value


def _portal(text: str) -> TargetPortal:
    m = re.fullmatch(r"\[([0-9A-Fa-f:.]+)\]:([0-9]{1,5})|([0-9.]+):([0-9]{1,5})", text)
    if m is None:
        raise Exit(S.INVAL, f"iscsiadm: stand-in needs -p IP:PORT, got {text!r}")
    try:
        return TargetPortal(m[1] or m[3], int(m[2] or m[4]))
    except UsageError as e:
        raise Exit(S.INVAL, f"iscsiadm: {e}") from None


def parse_argv(argv: Sequence[str]) -> Command:
    """Exactly the forms the driver builds; everything else exits ISCSI_ERR_INVAL."""
    a = list(argv)
    try:
        if a == ["-m", "session"]:
            return Command("session")
        if a == ["-m", "node"]:  # preflight's listing where /etc/iscsi/nodes is root-only
            return Command("nodes")
        # The admin's side of EQL_IFACE (docs/host-iscsi.md): create an iface, bind it
        # to a NIC, remove it.  The driver itself only names the iface with -I.
        if (
            len(a) == 6
            and a[:3] == ["-m", "iface", "-I"]
            and a[4] == "--op"
            and a[5] in ("new", "delete")
        ):
            return Command(f"iface-{a[5]}", iface=_admin_iface(a[3]))
        if (
            len(a) == 10
            and a[:3] == ["-m", "iface", "-I"]
            and a[4:8] == ["--op", "update", "-n", "iface.net_ifacename"]
            and a[8] == "-v"
            and _NETDEV_RE.fullmatch(a[9])
        ):
            return Command("iface-update", iface=_admin_iface(a[3]), netdev=a[9])
        if (
            len(a) == 11
            and a[:5] == ["-m", "discoverydb", "-t", "sendtargets", "-p"]
            and a[6] == "-I"
            and a[8:] == ["-o", "new", "--discover"]
        ):
            return Command("discovery", portal=_portal(a[5]), iface=validate_iface(a[7]))
        if len(a) >= 9 and a[:3] == ["-m", "node", "-T"] and a[4] == "-p" and a[6] == "-I":
            tail = a[8:]
            kind = {("--login",): "login", ("--logout",): "logout", ("-o", "delete"): "delete"}
            if tuple(tail) in kind:
                return Command(
                    kind[tuple(tail)],
                    iqn=validate_iqn(a[3]),
                    portal=_portal(a[5]),
                    iface=validate_iface(a[7]),
                )
    except UsageError as e:
        raise Exit(S.INVAL, f"iscsiadm: {e}") from None
    raise Exit(
        S.INVAL,
        "iscsiadm: the eqliscsi rig stand-in does not implement this form: " + " ".join(a),
    )


_NETDEV_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,14}")  # IFNAMSIZ - 1


def _admin_iface(name: str) -> str:
    # open-iscsi keeps "default" (and the offload transports' names) built in.
    if name in ("default", "iser"):
        raise Exit(S.INVAL, f"iscsiadm: {name} is a special interface and cannot be modified.")
    return validate_iface(name)


# --------------------------------------------------------------------------- ifaces


def _iface_path(name: str) -> Path:
    return ISCSI_DB / "ifaces" / name


def _iface_record(name: str, netdev: str) -> str:
    # The keys of open-iscsi 2.1.8's iface file that matter here, in its syntax.
    return (
        "# BEGIN RECORD 2.1.8 (eqliscsi rig stand-in)\n"
        f"iface.iscsi_ifacename = {name}\n"
        + (f"iface.net_ifacename = {netdev}\n" if netdev else "")
        + "iface.transport_name = tcp\n# END RECORD\n"
    )


def _iface_netdev(name: str) -> str:
    """The NIC an iface is bound to ("" for none); exits as open-iscsi does when the
    iface has no file: 21 at discovery (measured), 3 for node operations."""
    if name == "default":
        return ""
    path = _iface_path(name)
    if not path.is_file():
        raise Exit(
            S.NOMEM,
            f"iscsiadm: Could not read iface info for {name}.",
        )
    return read_record(path).get("iface.net_ifacename", "")


def _check_bound(name: str, portal: TargetPortal) -> None:
    """open-iscsi binds the connection to the iface's NIC (SO_BINDTODEVICE); a NIC
    that does not exist on the host makes every connection fail, and discovery gives
    up with 11 after its retries (measured with open-iscsi 2.1.8)."""
    netdev = _iface_netdev(name)
    if not netdev:
        return
    try:
        socket.if_nametoindex(netdev)
    except OSError:
        raise Exit(
            S.PDU_TIMEOUT,
            f"iscsiadm: Could not bind connection 0 to {netdev}\n"
            f"iscsiadm: cannot make connection to {portal.address}: No such device\n"
            "iscsiadm: connection login retries (reopen_max) 5 exceeded\n"
            "iscsiadm: Could not perform SendTargets discovery: iSCSI PDU timed out",
        ) from None


def iface_admin(cmd: Command) -> None:
    """``-m iface``, with the statuses open-iscsi 2.1.8 gives (measured in the guest)."""
    path = _iface_path(cmd.iface)
    if cmd.kind == "iface-new":
        if path.exists():
            raise Exit(S.SESS_EXISTS, f"iscsiadm: Could not create new interface {cmd.iface}.")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(_iface_record(cmd.iface, ""))
        print(f"New interface {cmd.iface} added")
        return
    if not path.is_file():
        what = "delete iface" if cmd.kind == "iface-delete" else "update iface"
        raise Exit(
            S.INVAL,
            f"iscsiadm: Could not read iface info for {cmd.iface}.\n"
            f"iscsiadm: Could not {what} {cmd.iface}: invalid parameter",
        )
    if cmd.kind == "iface-update":
        path.write_text(_iface_record(cmd.iface, cmd.netdev))
        print(f"{cmd.iface} updated.")
        return
    # Deleting an iface also deletes its node records, unless a session uses one.
    if any(sess.iface == cmd.iface for sess in _sessions()):
        raise Exit(S.SESS_EXISTS, f"iscsiadm: Could not delete iface {cmd.iface}: session exists")
    for rec in sorted((ISCSI_DB / "nodes").glob(f"*/*/{cmd.iface}")):
        rec.unlink()
        with contextlib.suppress(OSError):
            rec.parent.rmdir()
            rec.parent.parent.rmdir()
    path.unlink()
    print(f"{cmd.iface} unbound and deleted.")


# --------------------------------------------------------------------------- node DB


def _record_dir(iqn: str, portal: TargetPortal, tpgt: int) -> Path:
    return ISCSI_DB / "nodes" / iqn / f"{portal.address},{portal.port},{tpgt}"


def _find_records(iqn: str, portal: TargetPortal, iface: str) -> list[Path]:
    base = ISCSI_DB / "nodes" / iqn
    if not base.is_dir():
        return []
    prefix = f"{portal.address},{portal.port},"
    return sorted(
        d / iface for d in base.iterdir() if d.name.startswith(prefix) and (d / iface).is_file()
    )


def node_list() -> None:
    """``iscsiadm -m node``: one line per record, ``IP:PORT,TPGT IQN`` (an IPv6 address
    in brackets), as open-iscsi prints them; 21 "No records found" when there is none."""
    nodes = ISCSI_DB / "nodes"
    lines = []
    for target in sorted(nodes.iterdir()) if nodes.is_dir() else []:
        for portal_dir in sorted(d for d in target.iterdir() if d.is_dir()):
            address, port, tpgt = portal_dir.name.rsplit(",", 2)
            host = f"[{address}]" if ":" in address else address
            lines += [
                f"{host}:{port},{tpgt} {target.name}"
                for rec in portal_dir.iterdir()
                if rec.is_file()
            ]
    if not lines:
        raise Exit(S.NO_OBJS_FOUND, "iscsiadm: No records found")
    print("\n".join(lines))


def read_record(path: Path) -> dict[str, str]:
    rec: dict[str, str] = {}
    for line in path.read_text().splitlines():
        if line.startswith("#") or " = " not in line:
            continue
        key, value = line.split(" = ", 1)
        rec[key] = value
    return rec


def _new_record(iqn: str, portal: TargetPortal, tpgt: int, iface: str, netdev: str = "") -> str:
    # The keys open-iscsi writes that this stand-in reads, in its syntax; defaults
    # are iscsid.conf's (no CHAP, manual startup).  The iface's settings are copied
    # into the record, as open-iscsi does.
    return (
        "# BEGIN RECORD 2.1.8 (eqliscsi rig stand-in)\n"
        f"node.name = {iqn}\n"
        f"node.tpgt = {tpgt}\n"
        "node.startup = manual\n"
        f"iface.iscsi_ifacename = {iface}\n"
        + (f"iface.net_ifacename = {netdev}\n" if netdev else "")
        + "iface.transport_name = tcp\n"
        "node.discovery_type = send_targets\n"
        "node.session.auth.authmethod = None\n"
        f"node.conn[0].address = {portal.address}\n"
        f"node.conn[0].port = {portal.port}\n"
        "# END RECORD\n"
    )


def _initiator_name() -> str:
    path = ISCSI_DB / "initiatorname.iscsi"
    for line in path.read_text().splitlines():
        if line.startswith("InitiatorName="):
            return validate_iqn(line.split("=", 1)[1].strip())
    raise Exit(S.ERR, f"iscsiadm: no InitiatorName= in {path}")


def _conf(key: str, default: str) -> str:
    """The stand-in's own settings, written by the rig next to the node database.

    ``data_lun``: EqualLogic serves each volume as LUN 0, but tgt reserves LUN 0 for
    its controller, so the rig says which LUN is the disk.  ``state_dir``: where
    sessions live; the rig puts it under its work directory so that ``down`` can
    find loop devices backed by them from the root namespace.
    """
    path = ISCSI_DB / "eqliscsi-standin.conf"
    if path.is_file():
        for line in path.read_text().splitlines():
            if line.startswith(f"{key} = "):
                return line.split(" = ", 1)[1].strip()
    return default


def _data_lun() -> int:
    return int(_conf("data_lun", "0"))


def _run_dir() -> Path:
    return Path(_conf("state_dir", "/run/eqliscsi-standin"))


# --------------------------------------------------------------------------- sessions


def _sessions() -> list[Session]:
    out = []
    for p in sorted((_run_dir() / "sessions").glob("*.json")):
        out.append(Session(**json.loads(p.read_text())))
    return sorted(out, key=lambda s: s.sid)


def _save(s: Session) -> None:
    d = _run_dir() / "sessions"
    d.mkdir(parents=True, exist_ok=True)
    tmp = d / f"{s.sid}.json.tmp"
    tmp.write_text(json.dumps(asdict(s)))
    tmp.replace(d / f"{s.sid}.json")


def _find_session(cmd: Command) -> Session | None:
    assert cmd.portal is not None
    for s in _sessions():
        if (s.iqn, s.address, s.port, s.iface) == (
            cmd.iqn,
            cmd.portal.address,
            cmd.portal.port,
            cmd.iface,
        ):
            return s
    return None


def _label(cmd: Command, tpgt: int | None = None) -> str:
    assert cmd.portal is not None
    return (
        f"[iface: {cmd.iface}, target: {cmd.iqn}, portal: {cmd.portal.address},{cmd.portal.port}]"
    )


@contextlib.contextmanager
def _locked() -> Iterator[None]:
    _run_dir().mkdir(parents=True, exist_ok=True)
    with open(_run_dir() / "lock", "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        yield


# --------------------------------------------------------------------------- actions


def discovery(cmd: Command) -> None:
    assert cmd.portal is not None
    # Measured with open-iscsi 2.1.8: discovery through an iface without a file
    # exits 21 (login, logout and delete exit 3: see _iface_netdev).
    try:
        netdev = _iface_netdev(cmd.iface)
    except Exit as e:
        raise Exit(
            S.NO_OBJS_FOUND,
            f"{e.message} Make sure an iface config with the file name and "
            f"iface.iscsi_ifacename {cmd.iface} is in {ISCSI_DB / 'ifaces'}.",
        ) from None
    _check_bound(cmd.iface, cmd.portal)
    # libiscsi's SendTargets (RFC 7143 §12.3 / Appendix C), as an independent client.
    r = subprocess.run(
        [ISCSI_LS, "-i", _initiator_name(), f"iscsi://{cmd.portal}"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    if r.returncode != 0:
        # Measured with open-iscsi 2.1.8 in the kernel guest
        # (tests/integration/guest/test_driver_iscsiadm.py): a portal that refuses
        # the connection is retried, then discovery fails with status 11
        # (ISCSI_ERR_PDU_TIMEOUT), not 4.
        raise Exit(
            S.PDU_TIMEOUT,
            f"iscsiadm: cannot make connection to {cmd.portal.address}: {r.stderr.strip()}\n"
            "iscsiadm: connection login retries (reopen_max) 5 exceeded\n"
            "iscsiadm: Could not perform SendTargets discovery: iSCSI PDU timed out",
        )
    for line in r.stdout.splitlines():
        m = re.fullmatch(r"Target:(\S+) Portal:(\S+):([0-9]+),([0-9]+)", line.strip())
        if m is None:
            continue
        iqn, tpgt = m[1], int(m[4])
        # Records are filed under the portal the SendTargets answer *advertises*
        # (TargetAddress), as open-iscsi does (usr/discovery.c), not under the one
        # discovery dialled: measured with open-iscsi 2.1.8 in the kernel guest
        # (tests/integration/host_cases.py, advertised-portal case), a login at a
        # dialled portal that the answer does not name finds no record (21).  On an
        # EqualLogic group both are the group IP.
        try:
            portal = TargetPortal(m[2].strip("[]"), int(m[3]))
        except UsageError:
            portal = cmd.portal  # a host name: the stand-in takes IP literals only
        directory = _record_dir(iqn, portal, tpgt)
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / cmd.iface
        if not path.exists():  # -o new: never touch existing records
            path.write_text(_new_record(iqn, portal, tpgt, cmd.iface, netdev))
            path.chmod(0o600)
        print(f"{portal},{tpgt} {iqn}")


def login(cmd: Command) -> None:
    assert cmd.portal is not None
    _iface_netdev(cmd.iface)
    records = _find_records(cmd.iqn, cmd.portal, cmd.iface)
    if not records:
        raise Exit(S.NO_OBJS_FOUND, "iscsiadm: No records found")
    if _find_session(cmd) is not None:
        raise Exit(
            S.SESS_EXISTS,
            f"iscsiadm: {cmd.iface}: 1 session requested, but 1 already present.",
        )
    rec = read_record(records[0])
    tpgt = int(rec.get("node.tpgt", "1"))
    print(f"Logging in to {_label(cmd)}")
    sid = max((s.sid for s in _sessions()), default=0) + 1
    sdir = _run_dir() / f"session{sid}"
    sdir.mkdir(parents=True, exist_ok=True)
    mountpoint = sdir / "lun"
    mountpoint.touch()
    blockdev = [
        "driver=iscsi",
        "node-name=lun",
        "transport=tcp",
        f"portal={cmd.portal}",
        f"target={cmd.iqn}",
        f"lun={_data_lun()}",
        f"initiator-name={_initiator_name()}",
    ]
    args = [QSD, "--daemonize", "--pidfile", str(sdir / "qsd.pid")]
    secret_file = sdir / "chap"
    if rec.get("node.session.auth.authmethod") == "CHAP":
        user = rec.get("node.session.auth.username", "")
        password = rec.get("node.session.auth.password", "")
        fd = os.open(secret_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(password)
        # qemu's secret object must precede the blockdev that names it.
        args += ["--object", f"secret,id=chap,file={secret_file}"]
        blockdev += [f"user={user}", "password-secret=chap"]
    args += [
        "--blockdev",
        ",".join(blockdev),
        "--export",
        f"type=fuse,id=exp,node-name=lun,mountpoint={mountpoint},writable=on",
    ]
    try:
        r = subprocess.run(
            args, capture_output=True, text=True, timeout=QSD_START_TIMEOUT_S, check=False
        )
    finally:
        secret_file.unlink(missing_ok=True)
    if r.returncode != 0:
        _rmtree(sdir)
        err = r.stderr.strip().splitlines()[-1:] or [""]
        if "Authentication failure" in r.stderr:
            raise Exit(
                S.LOGIN_AUTH_FAILED,
                f"iscsiadm: Could not login to {_label(cmd)}.\n"
                "iscsiadm: initiator reported error (24 - iSCSI login failed due to "
                "authorization failure)",
            )
        raise Exit(
            S.LOGIN,
            f"iscsiadm: Could not login to {_label(cmd)}.\niscsiadm: {err[0]}",
        )
    qsd_pid = int((sdir / "qsd.pid").read_text().strip())
    loop = subprocess.run(
        ["losetup", "--find", "--show", "--direct-io=off", str(mountpoint)],
        capture_output=True,
        text=True,
        check=False,
    )
    if loop.returncode != 0:
        _stop_qsd(qsd_pid)
        _rmtree(sdir)
        raise Exit(S.INTERNAL, f"iscsiadm: losetup failed: {loop.stderr.strip()}")
    loopdev = loop.stdout.strip()
    session = Session(
        sid,
        cmd.iqn,
        cmd.portal.address,
        cmd.portal.port,
        tpgt,
        cmd.iface,
        qsd_pid,
        str(mountpoint),
        loopdev,
        None,
    )
    _save(session)
    link = _udev_add(session)
    _save(Session(**{**asdict(session), "link": link}))
    print(f"Login to {_label(cmd)} successful.")


def _udev_add(s: Session) -> str | None:
    """What udev does on a real host: name the disk with the shipped helper."""
    sysfs = _run_dir() / "sys"
    sdir = sysfs / "class" / "iscsi_session" / f"session{s.sid}"
    sdir.mkdir(parents=True, exist_ok=True)
    (sdir / "targetname").write_text(s.iqn + "\n")
    loopname = Path(s.loop).name
    devpath = (
        f"/devices/platform/host{s.sid}/session{s.sid}/target{s.sid}:0:0/"
        f"{s.sid}:0:0:0/block/{loopname}"
    )
    r = subprocess.run(
        [UDEV_HELPER, devpath],
        capture_output=True,
        text=True,
        env={**os.environ, "EQLISCSI_SYSFS_ROOT": str(sysfs)},
        check=False,
        timeout=10,
    )
    if r.returncode != 0:
        return None  # not an EqualLogic IQN: udev would make no link either
    name = r.stdout.strip()
    DEV_DIR.mkdir(parents=True, exist_ok=True)
    link = DEV_DIR / name
    tmp = DEV_DIR / f".{name}.tmp"
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(s.loop)
    tmp.replace(link)
    return str(link)


def _stop_qsd(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + QSD_STOP_TIMEOUT_S
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def _rmtree(path: Path) -> None:
    for p in sorted(path.rglob("*"), reverse=True):
        if p.is_dir() and not p.is_symlink():
            p.rmdir()
        else:
            p.unlink()
    with contextlib.suppress(FileNotFoundError):
        path.rmdir()


def logout(cmd: Command) -> None:
    _iface_netdev(cmd.iface)
    s = _find_session(cmd)
    if s is None:
        raise Exit(S.NO_OBJS_FOUND, "iscsiadm: No matching sessions found")
    print(f"Logging out of session [sid: {s.sid}, target: {s.iqn}, portal: {s.address},{s.port}]")
    if _safe_logout() and _mounted(s):
        # What iscsid does with iscsid.safe_logout = Yes (usr/initiator.c).
        raise Exit(
            S.BUSY,
            f"iscsiadm: Could not logout of [sid: {s.sid}, target: {s.iqn}, portal: "
            f"{s.address},{s.port}].\niscsiadm: initiator reported error (28 - device or "
            "resource in use)",
        )
    teardown(s)
    print(f"Logout of [sid: {s.sid}, target: {s.iqn}, portal: {s.address},{s.port}] successful.")


def _safe_logout() -> bool:
    conf = ISCSI_DB / "iscsid.conf"
    if not conf.is_file():
        return False
    for line in conf.read_text().splitlines():
        key, _, value = line.partition("=")
        if key.strip() == "iscsid.safe_logout":
            return value.strip().lower() == "yes"
    return False


def _mounted(s: Session) -> bool:
    """Is the session's disk mounted in this host's mount namespace?"""
    try:
        rdev = os.stat(s.loop).st_rdev
    except OSError:
        return False
    for line in Path("/proc/self/mounts").read_text().splitlines():
        source = line.split(" ", 1)[0]
        if source.startswith("/dev/"):
            try:
                if os.stat(source).st_rdev == rdev:
                    return True
            except OSError:
                continue
    return False


def teardown(s: Session) -> None:
    if s.link is not None:
        link = Path(s.link)
        if link.is_symlink() and os.readlink(link) == s.loop:
            link.unlink()
    subprocess.run(["losetup", "--detach", s.loop], capture_output=True, check=False)
    _stop_qsd(s.qsd_pid)
    _rmtree(_run_dir() / "sys" / "class" / "iscsi_session" / f"session{s.sid}")
    _rmtree(_run_dir() / f"session{s.sid}")
    (_run_dir() / "sessions" / f"{s.sid}.json").unlink(missing_ok=True)


def delete(cmd: Command) -> None:
    assert cmd.portal is not None
    _iface_netdev(cmd.iface)
    records = _find_records(cmd.iqn, cmd.portal, cmd.iface)
    if not records:
        raise Exit(S.NO_OBJS_FOUND, "iscsiadm: No records found")
    if _find_session(cmd) is not None:
        raise Exit(
            S.SESS_EXISTS,
            f"iscsiadm: This command will remove the record {_label(cmd)}, but a session "
            "is using it. Logout session then rerun command to remove record.",
        )
    for path in records:
        path.unlink()
        with contextlib.suppress(OSError):
            path.parent.rmdir()
            path.parent.parent.rmdir()


def session_list() -> None:
    sessions = _sessions()
    if not sessions:
        raise Exit(S.NO_OBJS_FOUND, "iscsiadm: No active sessions.")
    for s in sessions:
        portal = TargetPortal(s.address, s.port)
        print(f"tcp: [{s.sid}] {portal},{s.tpgt} {s.iqn} (non-flash)")


def main(argv: Sequence[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    try:
        cmd = parse_argv(args)
        with _locked():
            if cmd.kind == "session":
                session_list()
            elif cmd.kind == "nodes":
                node_list()
            elif cmd.kind.startswith("iface-"):
                iface_admin(cmd)
            elif cmd.kind == "discovery":
                discovery(cmd)
            elif cmd.kind == "login":
                login(cmd)
            elif cmd.kind == "logout":
                logout(cmd)
            else:
                delete(cmd)
    except Exit as e:
        if e.message:
            print(e.message, file=sys.stderr)
        return e.status
    return 0


if __name__ == "__main__":
    sys.exit(main())
