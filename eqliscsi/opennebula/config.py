"""Driver configuration: ``eqliscsi.conf`` plus datastore and image templates.

The original add-on *sourced* ``eqliscsi.conf`` with bash (§1.3).  Existing files must
keep working unchanged, but executing them would run whatever they contain as the
oneadmin user.  So this module reads the subset of shell an assignment file uses —
``[export] NAME=value`` lines with single quotes, double quotes without expansion,
backslash escapes and ``#`` comments — and refuses anything that would expand or
execute (``$VAR``, ``$(…)``, backticks, ``;``, pipes, redirections, a second word).

Precedence (lowest first): conf file → datastore template → image template, as in
the original.  Two guards the original lacked:

* the image template (editable by any image owner) may override only the per-volume
  knobs the original read from it (EQL_MULTIHOST, EQL_SECURITY_ACCESS,
  EQL_THINPROVISION); an image must not be able to point the driver at another SAN.
* keys that name local files (password file, known_hosts, CHAP secret file) are
  taken from the conf file only: a datastore template that could name them could make
  the driver send any file oneadmin can read to a host of the template editor's choice.

Every value that later reaches the SAN CLI or a shell is validated here against a
closed character set; an unusable value is a :class:`ConfigError` naming the key and
its origin, never the value (it may be the password).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from eqliscsi._lazyre import LazyPattern
from eqliscsi._record import Record
from eqliscsi.errors import ConfigError
from eqliscsi.opennebula.errors import ConfFileError
from eqliscsi.secret import Secret

__all__ = [
    "CONF_ONLY_KEYS",
    "DEFAULT_CONF_NAMES",
    "IMAGE_KEYS",
    "KNOWN_KEYS",
    "ConfFile",
    "EqlConfig",
    "Resolved",
    "load_conf",
    "parse_conf",
    "resolve",
]

# Keys of the original add-on (§1.3) and the ones this implementation adds.
ORIGINAL_KEYS = frozenset(
    {
        "EQL_HOST",
        "EQL_POOL",
        "EQL_USER",
        "EQL_PASS",
        "EQL_MULTIHOST",
        "EQL_SECURITY_ACCESS",
        "EQL_THINPROVISION",
        "EQL_BASE_DEVICE",
        "EQL_IFACE",
        "EQL_WAIT_TIME",
        "NO_ISCSI",
    }
)
NEW_KEYS = frozenset(
    {
        "EQL_PASS_FILE",
        "EQL_PORTAL",
        "EQL_SSH_PORT",
        "EQL_KNOWN_HOSTS",
        "EQL_HOST_FINGERPRINT",
        "EQL_MAX_SESSIONS",
        "EQL_CHAP_USER",
        "EQL_CHAP_SECRET_FILE",
        "EQL_NODE_AUTH_HELPER",
        "EQL_CHAP_TARGET_USER",
        "EQL_CHAP_TARGET_SECRET_FILE",
    }
)
IGNORED_KEYS = frozenset({"EQLADM"})  # EqlCliExec.py: we speak the CLI over SSH ourselves
KNOWN_KEYS = ORIGINAL_KEYS | NEW_KEYS | IGNORED_KEYS
IMAGE_KEYS = frozenset({"EQL_MULTIHOST", "EQL_SECURITY_ACCESS", "EQL_THINPROVISION"})
# EQL_NODE_AUTH_HELPER names what hosts run as root (sudoers): not a template's call.
CONF_ONLY_KEYS = frozenset(
    {
        "EQL_PASS_FILE",
        "EQL_KNOWN_HOSTS",
        "EQL_CHAP_SECRET_FILE",
        "EQL_CHAP_TARGET_SECRET_FILE",
        "EQL_NODE_AUTH_HELPER",
    }
)
SECRET_KEYS = frozenset({"EQL_PASS"})

# The original file is remotes/datastore/eqliscsi/eqliscsi.conf; both spellings of the
# name are looked for so that an existing install is found as it is.
DEFAULT_CONF_NAMES = ("eqliscsi.conf", "eqlscsi.conf")

_NAME_RE = LazyPattern(r"[A-Za-z_][A-Za-z0-9_]*")
_MAX_CONF_BYTES = 256 * 1024


@dataclass(frozen=True, slots=True, eq=False, repr=False)
class ConfFile(Record):
    """The assignments of one conf file, with notices about ignored keys."""

    values: Mapping[str, str]
    notices: tuple[str, ...]
    origin: str


def _parse_value(line: str, pos: int, where: str, key: str) -> str:
    out: list[str] = []
    n = len(line)
    while pos < n:
        ch = line[pos]
        if ch in " \t":
            rest = line[pos:].lstrip(" \t")
            if rest and not rest.startswith("#"):
                raise ConfFileError(
                    f"{where}: the value of {key} is followed by more words, which the shell "
                    f"would run as a command; quote the value: {key}='…'."
                )
            break
        if ch == "'":
            end = line.find("'", pos + 1)
            if end < 0:
                raise ConfFileError(
                    f"{where}: the single quote in {key} is not closed on the same line; "
                    "close it (multi-line values are not supported)."
                )
            out.append(line[pos + 1 : end])
            pos = end + 1
        elif ch == '"':
            pos += 1
            while True:
                if pos >= n:
                    raise ConfFileError(
                        f"{where}: the double quote in {key} is not closed on the same line; "
                        "close it (multi-line values are not supported)."
                    )
                c = line[pos]
                if c == '"':
                    pos += 1
                    break
                if c == "\\" and pos + 1 < n and line[pos + 1] in '"\\$`':
                    out.append(line[pos + 1])
                    pos += 2
                    continue
                if c in "$`":
                    raise ConfFileError(
                        f"{where}: {key} uses shell expansion ({c}), which this driver does "
                        f"not run; write the literal value in single quotes."
                    )
                out.append(c)
                pos += 1
        elif ch == "\\":
            if pos + 1 >= n:
                raise ConfFileError(
                    f"{where}: {key} ends in a line continuation; put the value on one line."
                )
            out.append(line[pos + 1])
            pos += 2
        elif ch in "$`;&|<>(){}":
            raise ConfFileError(
                f"{where}: {key} contains the shell operator {ch!r}, which this driver does "
                "not run; write the literal value in single quotes."
            )
        else:
            out.append(ch)
            pos += 1
    return "".join(out)


def parse_conf(text: str, origin: str = "eqliscsi.conf") -> ConfFile:
    """Parse the shell-assignment subset; see the module docstring.

    Raises:
        ConfFileError: a line that is not an assignment, or one that would expand or
            execute.  The message gives the line number and key, never the value.
    """
    values: dict[str, str] = {}
    notices: list[str] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        where = f"line {number} of {origin}"
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export ") or line.startswith("export\t"):
            line = line[6:].lstrip()
        m = _NAME_RE.match(line)
        if m is None or line[m.end() : m.end() + 1] != "=":
            raise ConfFileError(
                f"{where} is not a NAME=value assignment; this file is read, not run, so "
                "it may hold only assignments and comments."
            )
        key = m[0]
        value = _parse_value(line, m.end() + 1, where, key)
        if key in IGNORED_KEYS:
            notices.append(f"{origin}: {key} is ignored; eqliscsi talks to the group over SSH.")
            continue
        if key not in KNOWN_KEYS:
            notices.append(f"{origin}: unknown key {key} is ignored; check its spelling.")
            continue
        values[key] = value  # later assignments win, as when the shell sources the file
    return ConfFile(values=values, notices=tuple(notices), origin=origin)


def load_conf(path: str | os.PathLike[str]) -> ConfFile:
    """Read and parse a conf file; a missing file is an empty configuration."""
    path = os.fspath(path)  # not pathlib: its import costs a remote ~3 ms at start-up
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return ConfFile(values={}, notices=(), origin=str(path))
    except PermissionError:
        raise ConfFileError(
            f"{path} cannot be read by this user; make it readable by oneadmin."
        ) from None
    if len(data) > _MAX_CONF_BYTES:
        raise ConfFileError(f"{path} is larger than 256 KiB; this is not a driver conf file.")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfFileError(f"{path} is not UTF-8 text; save it as UTF-8.") from None
    return parse_conf(text, origin=str(path))


# --- validated configuration ----------------------------------------------------------

_HOST_RE = LazyPattern(
    r"^(?:[A-Za-z0-9](?:[A-Za-z0-9\-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9\-]{0,61}"
    r"[A-Za-z0-9])?)*|\[?[0-9A-Fa-f:.]{2,45}\]?)$"
)
# iSCSI portal: host name or IPv4 with optional :port, or [IPv6] with optional :port.
_PORTAL_RE = LazyPattern(
    r"^(?:[A-Za-z0-9](?:[A-Za-z0-9.\-]{0,252})|\[[0-9A-Fa-f:.]{2,45}\])(?::[0-9]{1,5})?$"
)
_POOL_RE = LazyPattern(r"^[A-Za-z0-9][A-Za-z0-9._\-]{0,62}$")
_USER_RE = LazyPattern(r"^[A-Za-z0-9][A-Za-z0-9._\-]{0,62}$")
# Words of `access create …` / `volume create … thin-provision …`: keywords, IPs with
# '*' wildcards, IQNs, percentages.  No quotes, spaces or shell/CLI metacharacters.
_CLI_WORD_RE = LazyPattern(r"^[A-Za-z0-9.*:%_\-]{1,223}$")
_DEV_DIR_RE = LazyPattern(r"^/[A-Za-z0-9._/\-]{0,254}$")
_IFACE_RE = LazyPattern(r"^[A-Za-z0-9._:\-]{1,64}$")
_FINGERPRINT_RE = LazyPattern(r"^SHA256:[A-Za-z0-9+/]{43}=?$")


@dataclass(frozen=True, slots=True, eq=False, repr=False)
class EqlConfig(Record):
    """The settings one action runs with.  Defaults follow the original add-on."""

    host: str = ""
    pool: str = "default"
    user: str = ""
    password: Secret | None = None
    multihost: bool = True
    security_access: tuple[str, ...] = ()
    thin_provision: tuple[str, ...] = ()
    base_device: str = "/dev/iscsi"
    iface: str = "default"
    wait_time: float = 10.0
    # The hosts' CHAP node-record helper (remotes/tm/eqliscsi/eqliscsi-node-auth as
    # `onehost sync` puts it; a root-owned copy when oneadmin runs it through sudo).
    node_auth_helper: str = "/var/tmp/one/tm/eqliscsi/eqliscsi-node-auth"  # noqa: S108 - oned's remotes dir
    no_iscsi: tuple[str, ...] = ()
    portal: str = ""  # iSCSI portal HOST[:PORT]; the group IP when empty
    ssh_port: int = 22
    known_hosts: str | None = None
    host_fingerprint: str | None = None
    max_sessions: int = 7
    chap_user: str = ""
    chap_secret: Secret | None = None
    # Mutual CHAP: the group's target-authentication account, which the initiator
    # checks the target against (RFC 7143 §12.1.3; one per group on EqualLogic).
    chap_target_user: str = ""
    chap_target_secret: Secret | None = None

    @property
    def mutual_chap(self) -> bool:
        return bool(self.chap_target_user) and self.chap_target_secret is not None

    def secrets(self) -> tuple[Secret, ...]:
        """Every secret this configuration holds, for redaction."""
        return tuple(
            s for s in (self.password, self.chap_secret, self.chap_target_secret) if s is not None
        )

    @property
    def discovery_portal(self) -> str:
        """HOST:PORT of the group's iSCSI portal (RFC 7143 §13.3: default port 3260)."""
        portal = self.portal or self.host
        if portal.startswith("["):
            return portal if "]:" in portal else f"{portal}:3260"
        if ":" in portal and portal.count(":") == 1:
            return portal
        if ":" in portal:  # a bare IPv6 address
            return f"[{portal}]:3260"
        return f"{portal}:3260"

    def require_san(self) -> EqlConfig:
        """Self, once the keys every SAN action needs are present."""
        missing = [k for k, v in (("EQL_HOST", self.host), ("EQL_USER", self.user)) if not v]
        if self.password is None:
            missing.append("EQL_PASS_FILE or EQL_PASS")
        if missing:
            raise ConfigError(
                f"The datastore configuration lacks {', '.join(missing)}; set it in "
                "eqliscsi.conf or the datastore template."
            )
        return self


@dataclass(frozen=True, slots=True, eq=False, repr=False)
class Resolved(Record):
    """The merged, validated configuration and the notices for the action's log."""

    config: EqlConfig
    notices: tuple[str, ...] = field(default=())


def _check(key: str, value: str, origin: str, pattern: LazyPattern, what: str) -> str:
    if not pattern.match(value):
        raise ConfigError(f"{key} from {origin} is not {what}; correct it.")
    return value


def resolve(
    conf: ConfFile,
    ds_template: Mapping[str, str] | None = None,
    image_template: Mapping[str, str] | None = None,
    *,
    read_secret_file: Callable[[str], Secret] = Secret.from_file,
    template_password_usable: bool = True,
) -> Resolved:
    """Merge the three layers and validate every value.

    ``template_password_usable=False`` is for actions to which oned hands encrypted
    datastore attributes (clone and save-as on 6.x/7.x, every action on 5.12, §6.1):
    the conf file's password, when it has one, then wins over the template's EQL_PASS.

    Raises:
        ConfigError: a value outside its accepted form, naming the key and where it
            came from.
    """
    notices = list(conf.notices)
    merged: dict[str, tuple[str, str]] = {k: (v, conf.origin) for k, v in conf.values.items()}
    for layer, origin, allowed in (
        (ds_template or {}, "the datastore template", KNOWN_KEYS - CONF_ONLY_KEYS - IGNORED_KEYS),
        (image_template or {}, "the image template", IMAGE_KEYS),
    ):
        for key, value in layer.items():
            if not (key.startswith("EQL_") or key == "NO_ISCSI"):
                continue  # stock attributes (BRIDGE_LIST, DESCRIPTION, …) are not ours
            if key in allowed:
                if any(ord(ch) < 32 and ch != "\t" for ch in value):
                    raise ConfigError(
                        f"{key} in {origin} contains a line break or control character; "
                        "write it on one line."
                    )
                if value.strip():  # an empty attribute leaves the lower layer in force
                    merged[key] = (value, origin)
            elif key in KNOWN_KEYS:
                notices.append(f"{key} in {origin} is ignored; set it in eqliscsi.conf.")
            else:
                notices.append(f"Unknown attribute {key} in {origin} is ignored.")

    def get(key: str) -> tuple[str, str] | None:
        item = merged.get(key)
        if item is None or item[0].strip() == "":
            return None  # an empty value means "default", as with the original's [ -z ]
        return item[0].strip(), item[1]

    kwargs: dict[str, object] = {}
    if (it := get("EQL_HOST")) is not None:
        kwargs["host"] = _check("EQL_HOST", *it, _HOST_RE, "a host name or IP address")
    if (it := get("EQL_PORTAL")) is not None:
        kwargs["portal"] = _check("EQL_PORTAL", *it, _PORTAL_RE, "an address with optional :port")
    if (it := get("EQL_POOL")) is not None:
        kwargs["pool"] = _check("EQL_POOL", *it, _POOL_RE, "an EqualLogic pool name")
    if (it := get("EQL_USER")) is not None:
        kwargs["user"] = _check("EQL_USER", *it, _USER_RE, "an EqualLogic account name")
    if (it := get("EQL_MULTIHOST")) is not None:
        value = it[0].lower()
        if value not in {"enable", "disable"}:
            raise ConfigError(f"EQL_MULTIHOST from {it[1]} must be enable or disable; correct it.")
        kwargs["multihost"] = value == "enable"
    for key, attr in (
        ("EQL_SECURITY_ACCESS", "security_access"),
        ("EQL_THINPROVISION", "thin_provision"),
    ):
        if (it := get(key)) is not None:
            words = tuple(it[0].split())
            for w in words:
                _check(key, w, it[1], _CLI_WORD_RE, "a list of EqualLogic CLI words")
            kwargs[attr] = words
    if (it := get("EQL_BASE_DEVICE")) is not None:
        kwargs["base_device"] = _check(
            "EQL_BASE_DEVICE", it[0].rstrip("/") or "/", it[1], _DEV_DIR_RE, "an absolute path"
        )
    if (it := get("EQL_IFACE")) is not None:
        kwargs["iface"] = _check("EQL_IFACE", *it, _IFACE_RE, "an iscsiadm iface name")
    if (it := get("EQL_NODE_AUTH_HELPER")) is not None:
        kwargs["node_auth_helper"] = _check(
            "EQL_NODE_AUTH_HELPER", *it, _DEV_DIR_RE, "an absolute path"
        )
    if (it := get("EQL_WAIT_TIME")) is not None:
        kwargs["wait_time"] = _number("EQL_WAIT_TIME", *it, 0, 600, kind=float)
    if (it := get("EQL_SSH_PORT")) is not None:
        kwargs["ssh_port"] = int(_number("EQL_SSH_PORT", *it, 1, 65535, kind=int))
    if (it := get("EQL_MAX_SESSIONS")) is not None:
        kwargs["max_sessions"] = int(_number("EQL_MAX_SESSIONS", *it, 1, 64, kind=int))
    if (it := get("NO_ISCSI")) is not None:
        hosts = tuple(it[0].split())
        for h in hosts:
            _check("NO_ISCSI", h, it[1], _HOST_RE, "a list of host names")
        kwargs["no_iscsi"] = hosts
    if (it := get("EQL_HOST_FINGERPRINT")) is not None:
        kwargs["host_fingerprint"] = _check(
            "EQL_HOST_FINGERPRINT", *it, _FINGERPRINT_RE, "an OpenSSH SHA256:… fingerprint"
        )
    if (it := get("EQL_KNOWN_HOSTS")) is not None:
        kwargs["known_hosts"] = _check("EQL_KNOWN_HOSTS", *it, _DEV_DIR_RE, "an absolute path")
    if (it := get("EQL_CHAP_USER")) is not None:
        kwargs["chap_user"] = _check("EQL_CHAP_USER", *it, _CLI_WORD_RE, "a CHAP user name")
    if (it := get("EQL_CHAP_SECRET_FILE")) is not None:
        path = _check("EQL_CHAP_SECRET_FILE", *it, _DEV_DIR_RE, "an absolute path")
        kwargs["chap_secret"] = read_secret_file(path)
    if (it := get("EQL_CHAP_TARGET_USER")) is not None:
        kwargs["chap_target_user"] = _check(
            "EQL_CHAP_TARGET_USER", *it, _CLI_WORD_RE, "a CHAP user name"
        )
    if (it := get("EQL_CHAP_TARGET_SECRET_FILE")) is not None:
        path = _check("EQL_CHAP_TARGET_SECRET_FILE", *it, _DEV_DIR_RE, "an absolute path")
        kwargs["chap_target_secret"] = read_secret_file(path)
    _check_mutual(kwargs)
    # Password: an inline EQL_PASS (conf or template, by precedence) wins over the
    # conf's EQL_PASS_FILE, like every other key; docs steer to the file.
    conf_has_password = bool(
        conf.values.get("EQL_PASS", "").strip() or conf.values.get("EQL_PASS_FILE", "").strip()
    )
    if (
        not template_password_usable
        and conf_has_password
        and merged.get("EQL_PASS", ("", ""))[1] == "the datastore template"
    ):
        notices.append(
            "EQL_PASS in the datastore template is not used for this action because oned "
            "passes it encrypted; the password from eqliscsi.conf is used."
        )
        if conf.values.get("EQL_PASS", "").strip():
            merged["EQL_PASS"] = (conf.values["EQL_PASS"], conf.origin)
        else:
            del merged["EQL_PASS"]
    if (it := get("EQL_PASS")) is not None:
        kwargs["password"] = Secret(it[0].encode("utf-8"), origin=f"EQL_PASS in {it[1]}")
    elif (it := get("EQL_PASS_FILE")) is not None:
        path = _check("EQL_PASS_FILE", *it, _DEV_DIR_RE, "an absolute path")
        kwargs["password"] = read_secret_file(path)
    return Resolved(config=EqlConfig(**kwargs), notices=tuple(notices))  # type: ignore[arg-type]


def _check_mutual(kwargs: dict[str, object]) -> None:
    """Mutual CHAP needs both target keys, one-way CHAP under it, and its own secret."""
    has_user = "chap_target_user" in kwargs
    has_secret = "chap_target_secret" in kwargs
    if not (has_user or has_secret):
        return
    if has_user != has_secret:
        raise ConfigError(
            "EQL_CHAP_TARGET_USER and EQL_CHAP_TARGET_SECRET_FILE go together; set both or neither."
        )
    if not kwargs.get("chap_user") or "chap_secret" not in kwargs:
        raise ConfigError(
            "Mutual CHAP (EQL_CHAP_TARGET_USER) needs one-way CHAP as well; set "
            "EQL_CHAP_USER and EQL_CHAP_SECRET_FILE."
        )
    target = kwargs["chap_target_secret"]
    initiator = kwargs["chap_secret"]
    assert isinstance(target, Secret) and isinstance(initiator, Secret)
    # open-iscsi refuses a target whose secret equals the initiator's, and the same
    # secret both ways invites reflection (iscsi-protocol.md, "Mutual CHAP").
    if target.reveal() == initiator.reveal():
        raise ConfigError(
            "The secrets of EQL_CHAP_TARGET_SECRET_FILE and EQL_CHAP_SECRET_FILE are the "
            "same; give the target its own secret."
        )


def _number(
    key: str, value: str, origin: str, low: float, high: float, *, kind: type[int] | type[float]
) -> float:
    try:
        number = kind(value)
    except ValueError:
        raise ConfigError(f"{key} from {origin} is not a number; correct it.") from None
    if not low <= number <= high:
        raise ConfigError(f"{key} from {origin} must be between {low:g} and {high:g}; correct it.")
    return number
