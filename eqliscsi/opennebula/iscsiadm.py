"""Host-side open-iscsi: the exact ``iscsiadm`` forms the TM driver runs, as data.

Strategy
--------
This module is pure: it validates values, builds argv tuples, composes the small
POSIX-sh snippets that the driver sends to a hypervisor host over SSH (``ssh host
sh -s``, script on stdin, the way OpenNebula's ``ssh_exec_and_log`` does), parses
``iscsiadm -m session`` output and maps iscsiadm exit statuses to typed errors.
Nothing here runs a process; the TM actions do, through their SSH adapter.

The forms, checked against open-iscsi's iscsiadm(8):

* discovery: ``iscsiadm -m discoverydb -t sendtargets -p IP:PORT -I IFACE -o new
  --discover``.  Only ``-o new``: without any ``-o`` iscsiadm also *updates*
  existing node records from ``iscsid.conf`` defaults, which would wipe the CHAP
  settings we stored in them; and ``-o delete`` would drop the records of other
  volumes that are still logged in (a later ``-m node ... --logout`` then finds no
  record).  Stale records are removed one by one after logout instead.
* login / logout / record delete: ``iscsiadm -m node -T IQN -p IP:PORT -I IFACE
  --login|--logout|-o delete``.  The IQN always comes from the SAN (``volume
  show`` / ``volume create`` output), never rebuilt from a volume name (the old
  add-on grepped ``iscsiadm -m node`` with an unanchored regex, bug 1.9.8).
* ``iscsiadm -m session``: ``tcp: [SID] IP:PORT,TPGT IQN (non-flash)``.

CHAP without argv: ``-o update -n node.session.auth.password -v SECRET`` would put
the secret in iscsiadm's argv, readable by every local user in ``/proc``.  Instead
the snippet feeds ``username`` and ``secret`` on *stdin* (a quoted here-document
inside the script, which itself travels on SSH's stdin) to a small shipped helper,
``eqliscsi-node-auth`` (``remotes/tm/eqliscsi/``), which rewrites the three
``node.session.auth.*`` lines (five with mutual CHAP: ``username_in`` and
``password_in`` too) of the node record file
``/etc/iscsi/nodes/<IQN>/<IP>,<PORT>,<TPGT>/<IFACE>`` with shell builtins only and
mode 0600.  iscsiadm reads that record afresh on every ``--login``, deriving the
hidden ``password_length`` from the password line as it parses it (open-iscsi
``idbm_rec_update_param``), so the three lines are all a record needs.

The here-document is a pipe under dash (Debian's ``/bin/sh``) and under bash >= 5.1
for small documents; older bash writes it to a 0600 temporary file that it unlinks
at once.  Either way no process title shows it.

Node-database changes on one host are serialized by ``flock`` on a per-host lock
file, taken inside the snippet: two VMs deploying on the same host would otherwise
race discovery (which rewrites records) against another volume's CHAP edit.

Exit statuses are open-iscsi's ``enum iscsi_error_list`` (``include/iscsi_err.h``).
"""

from __future__ import annotations

import enum
import ipaddress
import re
import shlex
from collections.abc import Sequence
from dataclasses import dataclass, field

from eqliscsi.errors import DriverError, UsageError
from eqliscsi.secret import REDACTED, Secret

__all__ = [
    "DEFAULT_AUTH_HELPER",
    "DEFAULT_LOCK_PATH",
    "ChapCredentials",
    "IscsiadmAuthError",
    "IscsiadmBusyError",
    "IscsiadmError",
    "IscsiadmLoginError",
    "IscsiadmNoRecordsError",
    "IscsiadmStatus",
    "IscsiadmUnavailableError",
    "Node",
    "Op",
    "RemoteScript",
    "SessionInfo",
    "TargetPortal",
    "auth_helper_argv",
    "check_script_result",
    "check_status",
    "discovery_argv",
    "login_argv",
    "login_script",
    "logout_argv",
    "logout_script",
    "node_delete_argv",
    "parse_sessions",
    "parse_step_failure",
    "render",
    "session_argv",
    "validate_host",
    "validate_iface",
    "validate_iqn",
]

ISCSIADM = "iscsiadm"
# Where the TM driver's remotes land on a host (OpenNebula copies remotes/ to
# /var/tmp/one on every host at `onehost sync`).
DEFAULT_AUTH_HELPER = "/var/tmp/one/tm/eqliscsi/eqliscsi-node-auth"  # noqa: S108 - oned's remotes dir
DEFAULT_LOCK_PATH = "/var/lock/eqliscsi-iscsi.lock"
# A logout that iscsid reports as busy is retried this many times, one second apart.
LOGOUT_ATTEMPTS = 5
LOCK_TIMEOUT_S = 120
# Non-interactive: a sudo that would prompt fails at once instead of hanging the TM.
_SUDO = ("sudo", "-n")
_HEREDOC_END = "EQLISCSI_CHAP"


class IscsiadmStatus(enum.IntEnum):
    """iscsiadm exit statuses (open-iscsi ``include/iscsi_err.h``)."""

    SUCCESS = 0
    ERR = 1
    SESS_NOT_FOUND = 2
    NOMEM = 3
    TRANS = 4
    LOGIN = 5
    IDBM = 6
    INVAL = 7
    TRANS_TIMEOUT = 8
    INTERNAL = 9
    LOGOUT = 10
    PDU_TIMEOUT = 11
    TRANS_NOT_FOUND = 12
    ACCESS = 13
    TRANS_CAPS = 14
    SESS_EXISTS = 15
    INVALID_MGMT_REQ = 16
    ISNS_UNAVAILABLE = 17
    ISCSID_COMM_ERR = 18
    FATAL_LOGIN = 19
    ISCSID_NOTCONN = 20
    NO_OBJS_FOUND = 21
    SYSFS_LOOKUP = 22
    HOST_NOT_FOUND = 23
    LOGIN_AUTH_FAILED = 24
    ISNS_QUERY = 25
    ISNS_REG_FAILED = 26
    OP_NOT_SUPP = 27
    BUSY = 28
    AGAIN = 29
    UNKNOWN_DISCOVERY_TYPE = 30
    CHILD_TERMINATED = 31
    SESSION_NOT_CONNECTED = 32


class Op(enum.Enum):
    """What the driver asked iscsiadm to do; decides which statuses mean success."""

    DISCOVERY = "discovery"
    AUTH = "auth"  # the node-record CHAP helper, not iscsiadm itself
    LOGIN = "login"
    LOGOUT = "logout"
    DELETE = "delete"
    SESSIONS = "sessions"
    LOCK = "lock"


# --------------------------------------------------------------------------- errors


class IscsiadmError(DriverError):
    """iscsiadm (or a step of a host snippet) failed on a hypervisor host."""

    reference = "iscsiadm-failed"

    def __init__(
        self, message: str, *, op: Op, status: int, host: str | None = None, hint: str | None = None
    ) -> None:
        super().__init__(message, hint=hint)
        self.op = op
        self.status = status
        self.host = host


class IscsiadmAuthError(IscsiadmError):
    reference = "iscsiadm-auth-failed"


class IscsiadmLoginError(IscsiadmError):
    reference = "iscsiadm-login-failed"


class IscsiadmNoRecordsError(IscsiadmError):
    reference = "iscsiadm-no-records"


class IscsiadmBusyError(IscsiadmError):
    reference = "iscsiadm-busy"


class IscsiadmUnavailableError(IscsiadmError):
    """iscsid or the iscsi_tcp transport is missing on the host."""

    reference = "iscsiadm-unavailable"


# --------------------------------------------------------------------------- values

# RFC 3720 §3.2.6.3 / RFC 3722: iqn.YYYY-MM.<reversed domain>[:<anything>], with the
# stringprep'd name restricted, in practice, to lowercase ASCII letters, digits,
# '-', '.', ':'.  eui. and naa. names are hex.  223 bytes is the RFC 7143 §4.2.7.1
# maximum.  Rejecting everything else also means an IQN can never carry a shell
# metacharacter into a snippet.  (Every pattern here is applied with fullmatch:
# with match(), "$" would accept a trailing newline.)
_IQN_RE = re.compile(
    r"^(?:iqn\.[0-9]{4}-(?:0[1-9]|1[0-2])\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?"
    r"(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)*(?::[a-z0-9.:-]+)?"
    r"|eui\.[0-9a-f]{16}|naa\.[0-9a-f]{16}(?:[0-9a-f]{16})?)$"
)
# open-iscsi iface names are file names under /etc/iscsi/ifaces; keep them plain.
_IFACE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")
# CHAP names/secrets: printable ASCII without whitespace or quotes; EqualLogic allows
# up to 255 characters (CHAP_N/CHAP_S of RFC 7143 §12.1.3 are text values).
_CHAP_RE = re.compile(r"^[!#-&(-~]{1,255}$")  # 0x21..0x7e minus '"' and "'"
# An absolute path of safe characters: no spaces, quotes, $, `, ;, &, |, globbing.
_PATH_RE = re.compile(r"^/(?:[A-Za-z0-9_.+@-]+/)*[A-Za-z0-9_.+@-]+$")


def validate_iqn(iqn: str) -> str:
    if len(iqn.encode()) > 223 or not _IQN_RE.fullmatch(iqn):
        raise UsageError(
            f"{iqn!r} is not an iSCSI name this driver accepts; use the target IQN "
            "that the SAN reports for the volume."
        )
    return iqn


# RFC 1123 host names (labels of letters, digits, inner '-'), optionally with a
# trailing dot; no label may start with '-', so a host can never be taken for an
# ssh option (the TM argv's "host:path" comes from oned, i.e. from `onehost create`).
_HOST_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOST_RE = re.compile(rf"{_HOST_LABEL}(?:\.{_HOST_LABEL})*\.?")


def validate_host(host: str) -> str:
    """A hypervisor host as oned names it: a DNS name or an IP literal, nothing else."""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        pass
    else:
        return host
    if len(host) > 253 or not _HOST_RE.fullmatch(host):
        raise UsageError(
            f"{host[:80]!r} is not a host name or IP address eqliscsi will connect to; "
            "fix the host's name in OpenNebula (onehost list)."
        )
    return host


def validate_iface(name: str) -> str:
    if not _IFACE_RE.fullmatch(name):
        raise UsageError(
            f"{name!r} is not a usable open-iscsi iface name; set EQL_IFACE to a name "
            "from `iscsiadm -m iface` (letters, digits, '_', '.', ':', '-')."
        )
    return name


def _validate_path(path: str, what: str) -> str:
    if not _PATH_RE.fullmatch(path) or "/../" in path + "/" or "/./" in path + "/":
        raise UsageError(
            f"The {what} path {path!r} must be absolute and use only letters, digits "
            "and '_.+@-'; fix the configured path."
        )
    return path


@dataclass(frozen=True, slots=True)
class TargetPortal:
    """An iSCSI portal given as an IP literal (EqualLogic group IP), never a hostname.

    A hostname would make iscsiadm's node-record directory name depend on DNS at
    discovery time; EqualLogic's group address is an IP by design.
    """

    address: str
    port: int = 3260

    def __post_init__(self) -> None:
        try:
            ip = ipaddress.ip_address(self.address)
        except ValueError:
            raise UsageError(
                f"{self.address!r} is not an IP address; set the SAN group portal to "
                "the group's IP address."
            ) from None
        if str(ip) != self.address:
            raise UsageError(f"{self.address!r} is not in canonical form; write it as {ip}.")
        if not 0 < self.port < 65536:
            raise UsageError(f"Port {self.port} is out of range; use 1..65535 (3260 is usual).")

    def __str__(self) -> str:
        # iscsiadm's -p syntax: IPv6 literals in brackets (iscsiadm(8) "-p ip[:port]").
        if ":" in self.address:
            return f"[{self.address}]:{self.port}"
        return f"{self.address}:{self.port}"


@dataclass(frozen=True, slots=True)
class Node:
    """One node record: target IQN at a portal through an iface."""

    iqn: str
    portal: TargetPortal
    iface: str = "default"

    def __post_init__(self) -> None:
        validate_iqn(self.iqn)
        validate_iface(self.iface)


@dataclass(frozen=True, slots=True)
class ChapCredentials:
    """Initiator CHAP credentials for one node (the EqualLogic access rule's account),
    and, for mutual CHAP, the target's (the group's target-authentication account),
    stored as ``node.session.auth.username_in``/``password_in``."""

    username: str
    secret: Secret
    username_in: str = ""
    secret_in: Secret | None = None

    def __post_init__(self) -> None:
        _check_chap_user(self.username, "CHAP user")
        _check_chap_secret(self.secret, "CHAP secret")
        if bool(self.username_in) != (self.secret_in is not None):
            raise UsageError(
                "Mutual CHAP needs both the target's user name and its secret; set both."
            )
        if self.secret_in is not None:
            _check_chap_user(self.username_in, "target CHAP user")
            _check_chap_secret(self.secret_in, "target CHAP secret")

    @property
    def mutual(self) -> bool:
        return self.secret_in is not None


def _check_chap_user(name: str, what: str) -> None:
    if not _CHAP_RE.fullmatch(name) or name == _HEREDOC_END:
        raise UsageError(
            f"The {what} name must be 1-255 printable ASCII characters without spaces or "
            "quotes; fix the datastore's CHAP settings."
        )


def _check_chap_secret(secret: Secret, what: str) -> None:
    try:
        text = secret.reveal_str()
    except UnicodeDecodeError:
        text = "\n"
    # A value equal to the here-document's delimiter would end it early.
    if not _CHAP_RE.fullmatch(text) or text == _HEREDOC_END:
        raise UsageError(
            f"The {what} must be 1-255 printable ASCII characters without spaces or quotes; "
            f"fix the secret in {secret.origin}."
        )


# --------------------------------------------------------------------------- argv


def discovery_argv(portal: TargetPortal, iface: str) -> tuple[str, ...]:
    return (
        ISCSIADM,
        "-m",
        "discoverydb",
        "-t",
        "sendtargets",
        "-p",
        str(portal),
        "-I",
        validate_iface(iface),
        "-o",
        "new",
        "--discover",
    )


def _node_argv(node: Node) -> tuple[str, ...]:
    return (ISCSIADM, "-m", "node", "-T", node.iqn, "-p", str(node.portal), "-I", node.iface)


def login_argv(node: Node) -> tuple[str, ...]:
    return (*_node_argv(node), "--login")


def logout_argv(node: Node) -> tuple[str, ...]:
    return (*_node_argv(node), "--logout")


def node_delete_argv(node: Node) -> tuple[str, ...]:
    return (*_node_argv(node), "-o", "delete")


def session_argv() -> tuple[str, ...]:
    return (ISCSIADM, "-m", "session")


def auth_helper_argv(node: Node, helper: str = DEFAULT_AUTH_HELPER) -> tuple[str, ...]:
    """The CHAP helper's argv: where the record is; the credentials come on stdin."""
    return (_validate_path(helper, "CHAP helper"), node.iqn, str(node.portal), node.iface)


# --------------------------------------------------------------------------- snippets


@dataclass(frozen=True, slots=True)
class RemoteScript:
    """A POSIX-sh script for ``ssh host sh -s``; it may embed a CHAP secret.

    ``str()``/``repr()`` show the script with secrets replaced by ``***`` (safe to
    log); :meth:`stdin_bytes` is the only way to get the real text.
    """

    ops: tuple[Op, ...]
    _text: str = field(repr=False)
    _secrets: tuple[Secret, ...] = field(default=(), repr=False)
    # The login asks the target to prove itself (mutual CHAP): open-iscsi then reports
    # a target that fails its CHAP_R as a fatal login (19), not as an auth error (24).
    mutual_chap: bool = False

    def stdin_bytes(self) -> bytes:
        text = self._text
        for s in self._secrets:
            text = text.replace(_secret_placeholder(s), s.reveal_str())
        return text.encode("ascii")

    def __str__(self) -> str:
        text = self._text
        for s in self._secrets:
            text = text.replace(_secret_placeholder(s), REDACTED)
        return text

    def __repr__(self) -> str:
        return f"RemoteScript(ops={[o.value for o in self.ops]!r})"


def _secret_placeholder(s: Secret) -> str:
    return f"@@EQLISCSI-SECRET-{id(s)}@@"


# Each step reports its failure as one stderr line the front-end parses back into a
# typed error: "eqliscsi-step: <op> <status>".
_STEP_FN = """\
step() {
  _op=$1; shift
  _rc=0; "$@" || _rc=$?
  if [ "$_rc" -ne 0 ]; then echo "eqliscsi-step: $_op $_rc" >&2; exit "$_rc"; fi
}
"""


def _lock_lines(lock_path: str) -> str:
    lp = shlex.quote(_validate_path(lock_path, "lock file"))
    # fd 9 stays open (and the lock held) until the script exits.  flock(1) exits 1
    # on timeout; report it as the lock step.  A lock file another user created (root
    # running a step by hand, say) is opened read-only: flock(2) needs no write
    # access, and a failed `exec 9>>` would end the script without a word.
    return (
        f"if [ -w {lp} ] || [ ! -e {lp} ]; then exec 9>>{lp}; else exec 9<{lp}; fi\n"
        f"flock -w {LOCK_TIMEOUT_S} 9 || {{ echo 'eqliscsi-step: lock 1' >&2; exit 1; }}\n"
    )


def login_script(
    node: Node,
    *,
    chap: ChapCredentials | None = None,
    helper: str = DEFAULT_AUTH_HELPER,
    lock_path: str = DEFAULT_LOCK_PATH,
    sudo: bool = False,
) -> RemoteScript:
    """Discovery, CHAP settings and login, under the host lock; idempotent.

    Already logged in (status 15) counts as success, so a retried deploy or a
    second disk of the same volume does not fail.  ``sudo`` prefixes iscsiadm and the
    helper with ``sudo -n`` for hosts where the driver runs as oneadmin (OpenNebula's
    sudoers already lists iscsiadm; the helper must be added next to it).
    """
    pre = _SUDO if sudo else ()
    lines = ["set -u\n", _STEP_FN, _lock_lines(lock_path)]
    lines.append(f"step discovery {shlex.join(pre + discovery_argv(node.portal, node.iface))}\n")
    secrets: tuple[Secret, ...] = ()
    ops = [Op.LOCK, Op.DISCOVERY]
    if chap is not None:
        # Quoted delimiter: no expansion inside; the validated values cannot contain
        # a newline, so they cannot end the here-document early.
        # Mutual CHAP adds the target's name and secret as lines 3 and 4.
        mutual = ""
        if chap.secret_in is not None:
            mutual = f"{chap.username_in}\n{_secret_placeholder(chap.secret_in)}\n"
        lines.append(
            f"step auth {shlex.join(pre + auth_helper_argv(node, helper))} <<'{_HEREDOC_END}'\n"
            f"{chap.username}\n{_secret_placeholder(chap.secret)}\n{mutual}{_HEREDOC_END}\n"
        )
        secrets = (chap.secret,) if chap.secret_in is None else (chap.secret, chap.secret_in)
        ops.append(Op.AUTH)
    login = shlex.join(pre + login_argv(node))
    lines.append(
        f"_rc=0; {login} || _rc=$?\n"
        f'case "$_rc" in 0|{IscsiadmStatus.SESS_EXISTS:d}) ;; '
        f'*) echo "eqliscsi-step: login $_rc" >&2; exit "$_rc" ;; esac\n'
    )
    ops.append(Op.LOGIN)
    mutual_chap = chap is not None and chap.secret_in is not None
    return RemoteScript(tuple(ops), "".join(lines), secrets, mutual_chap=mutual_chap)


def logout_script(
    node: Node,
    *,
    delete_record: bool = True,
    lock_path: str = DEFAULT_LOCK_PATH,
    sudo: bool = False,
) -> RemoteScript:
    """Logout (retrying while iscsid reports the session busy), then drop the record.

    Not logged in (status 21, no matching session) counts as success; so does a
    record that is already gone.
    """
    pre = _SUDO if sudo else ()
    logout = shlex.join(pre + logout_argv(node))
    ok = f"0|{IscsiadmStatus.NO_OBJS_FOUND:d}"
    # iscsid answers 28 (busy) when iscsid.safe_logout is set and the disk is
    # mounted, 29 (again) when it cannot take the request now, and 9 (internal)
    # with "session ... in invalid state for logout. Try again later" while a login
    # or reconnect is still in flight (open-iscsi usr/initiator.c).  Retry those.
    retry = f"{IscsiadmStatus.BUSY:d}|{IscsiadmStatus.AGAIN:d}|{IscsiadmStatus.INTERNAL:d}"
    lines = [
        "set -u\n",
        _STEP_FN,
        _lock_lines(lock_path),
        "_n=0\n",
        "while :; do\n",
        f"  _rc=0; {logout} || _rc=$?\n",
        '  case "$_rc" in\n',
        f"    {ok}) break ;;\n",
        f"    {retry}) _n=$((_n + 1))\n",
        f'      if [ "$_n" -ge {LOGOUT_ATTEMPTS} ]; then '
        'echo "eqliscsi-step: logout $_rc" >&2; exit "$_rc"; fi\n',
        "      sleep 1 ;;\n",
        '    *) echo "eqliscsi-step: logout $_rc" >&2; exit "$_rc" ;;\n',
        "  esac\n",
        "done\n",
    ]
    ops = [Op.LOCK, Op.LOGOUT]
    if delete_record:
        delete = shlex.join(pre + node_delete_argv(node))
        lines.append(
            f"_rc=0; {delete} || _rc=$?\n"
            f'case "$_rc" in {ok}) ;; '
            '*) echo "eqliscsi-step: delete $_rc" >&2; exit "$_rc" ;; esac\n'
        )
        ops.append(Op.DELETE)
    return RemoteScript(tuple(ops), "".join(lines))


# --------------------------------------------------------------------------- results

_STEP_RE = re.compile(r"^eqliscsi-step: ([a-z]+) ([0-9]{1,3})$", re.MULTILINE)


def parse_step_failure(stderr: str) -> tuple[Op, int] | None:
    """The failed step a snippet reported on stderr, or None if it reported none."""
    found = _STEP_RE.findall(stderr)
    if not found:
        return None
    name, status = found[-1]
    try:
        return Op(name), int(status)
    except ValueError:
        return None


# Statuses that mean "already done" for an operation (idempotent semantics).
_ALREADY_DONE: dict[Op, frozenset[int]] = {
    Op.LOGIN: frozenset({IscsiadmStatus.SESS_EXISTS}),
    Op.LOGOUT: frozenset({IscsiadmStatus.NO_OBJS_FOUND}),
    Op.DELETE: frozenset({IscsiadmStatus.NO_OBJS_FOUND}),
    Op.SESSIONS: frozenset({IscsiadmStatus.NO_OBJS_FOUND}),
}


def check_status(
    op: Op, status: int, *, host: str | None = None, what: str = "", mutual_chap: bool = False
) -> None:
    """Raise the typed error for ``status`` of ``op``; return if it means success."""
    if status == 0 or status in _ALREADY_DONE.get(op, frozenset()):
        return
    where = f" on {host}" if host else ""
    subject = f" for {what}" if what else ""
    try:
        name = IscsiadmStatus(status).name.lower().replace("_", "-")
    except ValueError:
        name = "unknown"
    if op is Op.LOCK:
        raise IscsiadmBusyError(
            f"Timed out waiting for the eqliscsi iSCSI lock{where}; check for a hung "
            f"iscsiadm there and retry.",
            op=op,
            status=status,
            host=host,
        )
    if op is Op.AUTH:
        raise IscsiadmError(
            f"Storing CHAP settings in the node record{subject}{where} failed "
            f"(status {status}); check that the remotes are synced (onehost sync) and "
            "that discovery created the record.",
            op=op,
            status=status,
            host=host,
        )
    if status in (IscsiadmStatus.LOGIN_AUTH_FAILED,):
        raise IscsiadmAuthError(
            f"The target refused the CHAP credentials{subject}{where}; make the "
            "datastore's CHAP user and secret match the volume's access rule on the SAN.",
            op=op,
            status=status,
            host=host,
        )
    if status in (IscsiadmStatus.BUSY, IscsiadmStatus.AGAIN):
        raise IscsiadmBusyError(
            f"iscsiadm {op.value}{subject}{where} kept reporting the session busy; stop "
            "what still uses the device and retry.",
            op=op,
            status=status,
            host=host,
        )
    if status in (
        IscsiadmStatus.TRANS_NOT_FOUND,
        IscsiadmStatus.ISCSID_COMM_ERR,
        IscsiadmStatus.ISCSID_NOTCONN,
        127,
    ):
        raise IscsiadmUnavailableError(
            f"open-iscsi is not usable{where} (iscsiadm {op.value} status {status}, "
            f"{name}); install open-iscsi, load iscsi_tcp and start iscsid there.",
            op=op,
            status=status,
            host=host,
        )
    if status == IscsiadmStatus.NO_OBJS_FOUND and op is Op.DISCOVERY:
        # open-iscsi 2.1.8 also exits 21 at discovery through an iface that has no
        # file in /etc/iscsi/ifaces (measured: tests/integration/host_net_cases.py).
        raise IscsiadmNoRecordsError(
            f"iscsiadm discovery{subject}{where} found no target; check that the volume's "
            "access rule admits this host and that EQL_IFACE names an iface the host "
            "has (iscsiadm -m iface).",
            op=op,
            status=status,
            host=host,
        )
    if status == IscsiadmStatus.NO_OBJS_FOUND:
        raise IscsiadmNoRecordsError(
            f"iscsiadm {op.value}{subject}{where} found no node record; check that the "
            "volume's access rule admits this host, so discovery reports it.",
            op=op,
            status=status,
            host=host,
        )
    if op is Op.LOGIN and mutual_chap and status == IscsiadmStatus.FATAL_LOGIN:
        # Seen with open-iscsi 2.1.8 against LIO (tests/integration/guest/
        # test_mutual_chap_host.py): a wrong target secret ends the login with 19.
        raise IscsiadmLoginError(
            f"iSCSI login{subject}{where} failed (status {status}, {name}) while the "
            "target had to prove itself with mutual CHAP; make EQL_CHAP_TARGET_USER and "
            "EQL_CHAP_TARGET_SECRET_FILE match the group's target authentication.",
            op=op,
            status=status,
            host=host,
        )
    if op is Op.LOGIN and status in (
        IscsiadmStatus.LOGIN,
        IscsiadmStatus.FATAL_LOGIN,
        IscsiadmStatus.TRANS,
        IscsiadmStatus.TRANS_TIMEOUT,
        IscsiadmStatus.PDU_TIMEOUT,
    ):
        raise IscsiadmLoginError(
            f"iSCSI login{subject}{where} failed (status {status}, {name}); check the "
            "network path to the group portal and the volume's access rule.",
            op=op,
            status=status,
            host=host,
        )
    if status == IscsiadmStatus.NOMEM and op in (Op.LOGIN, Op.LOGOUT, Op.DELETE):
        # open-iscsi 2.1.8 exits 3 from node operations through an iface it cannot
        # read (measured in the kernel guest), so "nomem" would mislead.
        raise IscsiadmError(
            f"iscsiadm {op.value}{subject}{where} failed with status 3, which open-iscsi "
            "also gives for an iface it cannot read; check that EQL_IFACE names an iface "
            "the host has (iscsiadm -m iface).",
            op=op,
            status=status,
            host=host,
        )
    raise IscsiadmError(
        f"iscsiadm {op.value}{subject}{where} failed (status {status}, {name}); see "
        "the host's iscsid log for the cause.",
        op=op,
        status=status,
        host=host,
    )


def check_script_result(
    script: RemoteScript, exit_status: int, stderr: str, *, host: str | None = None, what: str = ""
) -> None:
    """Turn the outcome of a :class:`RemoteScript` into success or a typed error."""
    if exit_status == 0:
        return
    step = parse_step_failure(stderr)
    if step is None or step[0] not in script.ops:
        raise IscsiadmError(
            f"The iSCSI script{' on ' + host if host else ''} failed with status "
            f"{exit_status} before any step reported; check SSH access to the host.",
            op=script.ops[-1],
            status=exit_status,
            host=host,
        )
    check_status(step[0], step[1], host=host, what=what, mutual_chap=script.mutual_chap)
    # A step that reports a status meaning success still made the script fail.
    raise IscsiadmError(
        f"The iSCSI script{' on ' + host if host else ''} stopped after {step[0].value} "
        f"with status {exit_status}; see the host's log.",
        op=step[0],
        status=exit_status,
        host=host,
    )


# --------------------------------------------------------------------------- sessions


@dataclass(frozen=True, slots=True)
class SessionInfo:
    """One line of ``iscsiadm -m session``."""

    transport: str
    sid: int
    portal: TargetPortal
    tpgt: int
    iqn: str


_SESSION_RE = re.compile(
    # "tcp: [1] ..." since open-iscsi 2.0-870; older releases printed "tcp [1] ...".
    r"^(?P<transport>[a-z0-9_]+):? \[(?P<sid>[0-9]+)\] "
    r"(?:\[(?P<ip6>[0-9A-Fa-f:.]+)\]|(?P<ip4>[0-9.]+)):(?P<port>[0-9]+),(?P<tpgt>-?[0-9]+) "
    r"(?P<iqn>\S+)(?: \((?:non-)?flash\))?$"
)


def parse_sessions(stdout: str, *, status: int = 0) -> list[SessionInfo]:
    """Parse ``iscsiadm -m session``; status 21 ("No active sessions") is an empty list."""
    check_status(Op.SESSIONS, status)
    if status == IscsiadmStatus.NO_OBJS_FOUND:
        return []
    sessions = []
    for line in stdout.splitlines():
        if not line.strip():
            continue
        m = _SESSION_RE.fullmatch(line.strip())
        if m is None:
            raise IscsiadmError(
                f"Cannot parse the iscsiadm session line {line.strip()[:120]!r}; report "
                "the open-iscsi version of the host.",
                op=Op.SESSIONS,
                status=0,
            )
        sessions.append(
            SessionInfo(
                transport=m["transport"],
                sid=int(m["sid"]),
                portal=TargetPortal(m["ip6"] or m["ip4"], int(m["port"])),
                tpgt=int(m["tpgt"]),
                # Not validated: other targets' sessions may use names we would
                # not accept for our own volumes; callers compare, never run them.
                iqn=m["iqn"],
            )
        )
    return sessions


def render(argv: Sequence[str]) -> str:
    """One command line for a remote shell, every word quoted."""
    return shlex.join(argv)
