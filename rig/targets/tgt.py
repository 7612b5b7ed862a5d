"""A :class:`~rig.targets.base.TargetBackend` driving a real userspace ``tgtd``.

Each :class:`TgtBackend` owns one ``tgtd -f`` process listening on its own portal
(127.0.0.x, a free port) with its own control port, so several instances (a redirect
pair, parallel test workers) never share state.  Configuration goes through
``tgtadm``, exactly as an administrator would type it.

tgt facts this module relies on (checked against tgt 1.0.85 on loopback):

* LUN 0 of every target is tgt's controller; the backing file becomes LUN 1.
* ``tgtd`` ignores SIGTERM while targets exist, so :meth:`TgtBackend.close` kills it.
* Redirects are per-target parameters (``RedirectAddress``/``RedirectPort``/
  ``RedirectReason``); once set, *every* login to that target is answered with login
  status 0x0101/0x0102 and no TPGT in TargetAddress (RFC 7143 §11.13.5).
* Discovery CHAP is an account bound without ``--tid``; per-target CHAP binds with it.
* The ACL is per target: ``-I ALL``, or initiator names and addresses.

Test-rig limitation on secrets: ``tgtadm`` accepts an account password only as
``--password <value>`` on its command line, so for the few milliseconds a
``tgtadm --op new --mode account`` runs, the CHAP secret is visible in that process's
``/proc/<pid>/cmdline`` to other local users.  The rig therefore only ever feeds it
throwaway test secrets, never passes it to a shell, and redacts it from every error
message.  Product code (``eqliscsi``) never puts a secret on argv.
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

from eqliscsi.errors import RigError
from eqliscsi.secret import Secret, redact
from rig.targets.base import ChapAccount, Portal

__all__ = ["TgtBackend", "TgtError", "free_port"]

# tgtd's management socket lives here; its control port only names the socket file.
_IPC_DIR = Path("/var/run/tgtd")
_READY_TIMEOUT = 10.0
_TGTADM_TIMEOUT = 15.0
_DISK_LUN = 1
_NEXUS_RE = re.compile(r"^\s*I_T nexus: \d+", re.MULTILINE)
_TARGET_RE = re.compile(r"^Target (\d+): (\S+)$", re.MULTILINE)
# tgt rejects or silently truncates names outside this set; so do we, before argv.
_IQN_RE = re.compile(r"^(iqn\.\d{4}-\d{2}\.[a-z0-9.-]+(:[^\s]+)?|eui\.[0-9A-Fa-f]{16})$")
_USER_RE = re.compile(r"^[A-Za-z0-9._@-]{1,63}$")


class TgtError(RigError):
    """tgtd could not be started or refused a configuration command."""

    reference = "rig-tgt-error"


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on ``host`` right now (the kernel's choice for port 0)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _control_port_free(port: int) -> bool:
    # tgtd takes an fcntl lock on socket.<port>.lock for its whole life; probing the same
    # lock tells us whether another tgtd (ours or another worker's) holds this number.
    _IPC_DIR.mkdir(parents=True, exist_ok=True)
    lock = _IPC_DIR / f"socket.{port}.lock"
    try:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError:
        return False
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False
    else:
        fcntl.lockf(fd, fcntl.LOCK_UN)
        return True
    finally:
        os.close(fd)


def _check_iqn(iqn: str) -> str:
    if not _IQN_RE.match(iqn):
        raise TgtError(f"Target name {iqn!r} is not an iqn./eui. name; pass a valid IQN.")
    return iqn


def _check_user(user: str) -> str:
    if not _USER_RE.match(user):
        raise TgtError(f"CHAP user {user!r} has characters tgt cannot store; use [A-Za-z0-9._@-].")
    return user


class TgtBackend:
    """One running ``tgtd`` on ``portal`` (see the module docstring).

    Use :meth:`start` (or the context manager) rather than the constructor.
    """

    def __init__(self, portal: Portal, control_port: int, proc: subprocess.Popen[bytes]) -> None:
        self._portal = portal
        self._control_port = control_port
        self._proc = proc
        self._tids: dict[str, int] = {}
        self._next_tid = 1
        self._acl: dict[str, list[str]] = {}
        # tgt accounts are global to the daemon; remember which exist and where bound.
        self._accounts: dict[str, Secret] = {}
        self._bound: dict[int | None, list[tuple[str, bool]]] = {}
        self._secrets: list[Secret] = []

    # -- lifecycle ---------------------------------------------------------------------

    @classmethod
    def start(
        cls,
        host: str = "127.0.0.1",
        port: int | None = None,
        *,
        log_path: Path | None = None,
        tgtd: str = "tgtd",
    ) -> TgtBackend:
        """Start ``tgtd`` on ``host:port`` (a free port when ``None``) and wait until it serves."""
        exe = shutil.which(tgtd) or shutil.which(tgtd, path="/usr/sbin:/sbin")
        if exe is None:
            raise TgtError("tgtd is not installed; install the Debian package tgt.")
        literal = ipaddress.ip_address(host)  # tgt's portal= wants a literal address
        bracketed = f"[{host}]" if literal.version == 6 else host
        last_error = "it did not start"
        for _attempt in range(5):
            listen_port = port if port is not None else free_port(host)
            # tgtd accepts control ports 0..32767 only; it merely names a socket file.
            control = random.randint(1024, 32767)
            if not _control_port_free(control):
                continue
            log = open(log_path, "ab") if log_path else subprocess.DEVNULL  # noqa: SIM115
            try:
                proc = subprocess.Popen(
                    [exe, "-f", "-C", str(control), "--iscsi", f"portal={bracketed}:{listen_port}"],
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            finally:
                if log_path and not isinstance(log, int):
                    log.close()
            backend = cls(Portal(host, listen_port), control, proc)
            try:
                backend._wait_ready()
            except TgtError as exc:
                last_error = exc.message
                backend.close()
                if port is not None:
                    break
                continue
            return backend
        raise TgtError(f"tgtd on {host} could not be started ({last_error}); see its log.")

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + _READY_TIMEOUT
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise TgtError(f"tgtd exited with status {self._proc.returncode}")
            ok = subprocess.run(
                self._tgtadm_argv("--mode", "sys", "--op", "show"),
                capture_output=True,
                timeout=_TGTADM_TIMEOUT,
                check=False,
            )
            if ok.returncode == 0:
                with (
                    contextlib.suppress(OSError),
                    socket.create_connection((self._portal.host, self._portal.port), timeout=1.0),
                ):
                    return
            time.sleep(0.02)
        raise TgtError(f"tgtd did not become ready within {_READY_TIMEOUT:.0f} s")

    def close(self) -> None:
        """Kill tgtd (it ignores SIGTERM while it has targets) and reap it."""
        if self._proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._proc.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._proc.wait(timeout=10)
        for suffix in ("", ".lock"):
            with contextlib.suppress(OSError):
                (_IPC_DIR / f"socket.{self._control_port}{suffix}").unlink()

    def __enter__(self) -> TgtBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- TargetBackend -----------------------------------------------------------------

    @property
    def kind(self) -> str:
        return "tgt"

    @property
    def portal(self) -> Portal:
        return self._portal

    @property
    def pid(self) -> int:
        return self._proc.pid

    def create_target(self, iqn: str, backing_file: Path) -> None:
        _check_iqn(iqn)
        if iqn in self._tids:
            raise TgtError(f"Target {iqn} already exists on {self._portal}; delete it first.")
        path = Path(backing_file).resolve()
        if not path.is_file():
            raise TgtError(f"Backing file {path} does not exist; create it before the target.")
        tid = self._next_tid
        self._adm("--mode", "target", "--op", "new", "--tid", str(tid), "--targetname", iqn)
        self._next_tid += 1
        self._tids[iqn] = tid
        self._adm(
            "--mode", "logicalunit", "--op", "new", "--tid", str(tid),
            "--lun", str(_DISK_LUN), "--backing-store", str(path),
        )  # fmt: skip
        self.set_initiators(iqn, None)

    def delete_target(self, iqn: str) -> None:
        tid = self._tids.pop(iqn, None)
        if tid is None:
            return
        self._acl.pop(iqn, None)
        self._bound.pop(tid, None)
        self._adm("--mode", "target", "--op", "delete", "--force", "--tid", str(tid))

    def lun_of(self, iqn: str) -> int:
        self._tid(iqn)
        return _DISK_LUN

    def targets(self) -> list[str]:
        """Target names as tgtd itself lists them (not our bookkeeping)."""
        return [m.group(2) for m in _TARGET_RE.finditer(self._show())]

    def set_initiators(self, iqn: str, initiators: list[str] | None) -> None:
        tid = str(self._tid(iqn))
        for old in self._acl.get(iqn, []):
            self._adm("--mode", "target", "--op", "unbind", "--tid", tid, *self._acl_args(old))
        wanted = ["ALL"] if initiators is None else list(initiators)
        for entry in wanted:
            self._adm("--mode", "target", "--op", "bind", "--tid", tid, *self._acl_args(entry))
        self._acl[iqn] = wanted

    @staticmethod
    def _acl_args(entry: str) -> tuple[str, str]:
        if entry == "ALL":
            return ("--initiator-address", "ALL")
        try:
            ipaddress.ip_network(entry, strict=False)
        except ValueError:
            return ("--initiator-name", _check_iqn(entry))
        return ("--initiator-address", entry)

    def set_chap(
        self, iqn: str, incoming: ChapAccount | None, outgoing: ChapAccount | None
    ) -> None:
        self._set_accounts(self._tid(iqn), incoming, outgoing)

    def set_discovery_chap(
        self, incoming: ChapAccount | None, outgoing: ChapAccount | None
    ) -> None:
        self._set_accounts(None, incoming, outgoing)

    def set_redirect(self, iqn: str, to: Portal | None) -> None:
        tid = self._tid(iqn)
        if to is None:
            # An empty RedirectAddress switches redirection off (tgt keeps the reason).
            self._update(tid, "RedirectAddress", "")
            return
        ipaddress.ip_address(to.host)
        self._update(tid, "RedirectAddress", to.host)
        self._update(tid, "RedirectPort", str(to.port))
        self._update(tid, "RedirectReason", "Temporary")

    def session_count(self, iqn: str) -> int:
        tid = self._tid(iqn)
        text = self._show()
        blocks = re.split(r"^(?=Target \d+: )", text, flags=re.MULTILINE)
        for block in blocks:
            if block.startswith(f"Target {tid}: "):
                return len(_NEXUS_RE.findall(block))
        raise TgtError(f"tgtd on {self._portal} no longer lists target {iqn}; recreate it.")

    # -- helpers -----------------------------------------------------------------------

    def _tid(self, iqn: str) -> int:
        try:
            return self._tids[iqn]
        except KeyError:
            raise TgtError(
                f"Target {iqn} does not exist on {self._portal}; create it first."
            ) from None

    def _set_accounts(
        self, tid: int | None, incoming: ChapAccount | None, outgoing: ChapAccount | None
    ) -> None:
        where = () if tid is None else ("--tid", str(tid))
        for user, is_out in self._bound.pop(tid, []):
            out = ("--outgoing",) if is_out else ()
            self._adm("--mode", "account", "--op", "unbind", *where, "--user", user, *out)
        bound: list[tuple[str, bool]] = []
        for account, is_out in ((incoming, False), (outgoing, True)):
            if account is None:
                continue
            self._ensure_account(account)
            out = ("--outgoing",) if is_out else ()
            self._adm("--mode", "account", "--op", "bind", *where, "--user", account.user, *out)
            bound.append((account.user, is_out))
        self._bound[tid] = bound

    def _ensure_account(self, account: ChapAccount) -> None:
        user = _check_user(account.user)
        known = self._accounts.get(user)
        if known is not None and known.reveal() == account.secret.reveal():
            return
        if known is not None:
            raise TgtError(
                f"CHAP user {user} already exists on {self._portal} with another secret; "
                "use a distinct user name per secret."
            )
        self._secrets.append(account.secret)
        # See the module docstring: tgtadm only takes the password on its argv.
        self._adm(
            "--mode", "account", "--op", "new", "--user", user,
            "--password", account.secret.reveal_str(),
        )  # fmt: skip
        self._accounts[user] = account.secret

    def _update(self, tid: int, name: str, value: str) -> None:
        self._adm(
            "--mode", "target", "--op", "update", "--tid", str(tid), "--name", name,
            "--value", value,
        )  # fmt: skip

    def _show(self) -> str:
        return self._adm("--mode", "target", "--op", "show")

    def _tgtadm_argv(self, *args: str) -> list[str]:
        exe = shutil.which("tgtadm") or shutil.which("tgtadm", path="/usr/sbin:/sbin") or "tgtadm"
        return [exe, "-C", str(self._control_port), "--lld", "iscsi", *args]

    def _adm(self, *args: str) -> str:
        argv = self._tgtadm_argv(*args)
        try:
            done = subprocess.run(argv, capture_output=True, timeout=_TGTADM_TIMEOUT, check=False)
        except subprocess.TimeoutExpired:
            raise TgtError(f"tgtadm {args[1]} {args[3]} timed out on {self._portal}.") from None
        if done.returncode != 0:
            why = done.stderr.decode("utf-8", "replace").strip().splitlines()
            detail = redact(why[-1] if why else f"status {done.returncode}", self._secrets)
            raise TgtError(
                f"tgtadm --mode {args[1]} --op {args[3]} failed on {self._portal} ({detail}); "
                "check the rig's tgt configuration."
            )
        return done.stdout.decode("utf-8", "replace")
