"""oned's calling conventions for TM actions (see :mod:`eqliscsi.opennebula.args`).

Imported by ``args`` on first use of one of its names (PEP 562): a datastore remote
never parses a TM call, and every remote pays its imports on each oned call
(docs/performance.md, "Remote start-up").
"""

from __future__ import annotations

import binascii
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from eqliscsi._lazyre import LazyPattern
from eqliscsi.opennebula.args import MAX_DOCUMENT_BYTES, V5_12, OneVersion, decode_base64
from eqliscsi.opennebula.errors import BadCallError, BadValueError

__all__ = ["HostPath", "MigrateCall", "TmCall", "parse_tm_call"]


# oned builds "host:path" words; hostnames are what `onehost create` accepted, paths
# are under the system datastore.  Both reach ssh and a remote shell later, so the
# character sets are closed lists (rule: reject, don't guess).
_HOST_RE = LazyPattern(r"^[A-Za-z0-9]([A-Za-z0-9.\-_]{0,252})$")
_PATH_RE = LazyPattern(r"^/[A-Za-z0-9._/\-+@]{0,4095}$")
_DISK_RE = LazyPattern(r"/disk\.(0|[1-9][0-9]{0,5})$")
_TM_NAME_RE = LazyPattern(r"^[a-z0-9_\-]{1,64}$")
# SOURCE: a volume name, or a v0.1 "EQL_HOST:IQN"; never starting with '-' (it will
# be a word of an EqualLogic CLI command).
_SOURCE_RE = LazyPattern(r"^[A-Za-z0-9/][A-Za-z0-9._:\-/]{0,254}$")


@dataclass(frozen=True, slots=True)
class HostPath:
    """``host:path`` as oned writes it (``arg_host``/``arg_path`` of tm_common.sh)."""

    host: str
    path: str

    @classmethod
    def parse(cls, word: str, what: str) -> HostPath:
        host, sep, path = word.partition(":")
        if not sep:
            raise BadCallError(f"The {what} {word[:80]!r} is not host:path.")
        if not _HOST_RE.match(host):
            raise BadValueError(f"The host name {host[:80]!r} in the {what} is not a host name.")
        # tm_common.sh's arg_path collapses the double slash of the default
        # DATASTORE_LOCATION (/var/lib/one//datastores, §6.1).
        path = re.sub(r"/{2,}", "/", path)
        if not _PATH_RE.match(path) or "/../" in path + "/" or path.endswith("/.."):
            raise BadValueError(
                f"The path {path[:80]!r} in the {what} is not a plain absolute path."
            )
        return cls(host, path)

    @classmethod
    def parse_source(cls, word: str, what: str) -> HostPath:
        """``fe:SOURCE`` of clone/ln: the path part is an image SOURCE, not a file."""
        host, sep, source = word.partition(":")
        if not sep:
            raise BadCallError(f"The {what} {word[:80]!r} is not host:SOURCE.")
        if not _HOST_RE.match(host):
            raise BadValueError(f"The host name {host[:80]!r} in the {what} is not a host name.")
        return cls(host, _parse_source(source))

    @property
    def disk_id(self) -> int | None:
        """N of a ``…/disk.N`` path; None for a VM directory."""
        m = _DISK_RE.search(self.path)
        return int(m[1]) if m else None

    def __str__(self) -> str:
        return f"{self.host}:{self.path}"


@dataclass(frozen=True, slots=True)
class TmCall:
    """A parsed TM action (everything except pre/post/failmigrate).

    Fields not carried by ``action`` are None: ``src`` (clone, ln, mv), ``dst`` (all
    disk actions: the ``host:dir/disk.N`` word, or the directory for delete/mv),
    ``source`` (mvds, cpds: the image SOURCE, no host prefix), ``snap_id`` (cpds 4.14+,
    snap_*), ``size_mb`` (resize).
    """

    action: str
    dst: HostPath
    vm_id: int
    ds_id: int
    src: HostPath | None = None
    source: str | None = None
    snap_id: int | None = None
    size_mb: int | None = None
    sys_tm: str | None = None


@dataclass(frozen=True, slots=True)
class MigrateCall:
    """pre/post/failmigrate: hosts, VM directory, ids and the VM document."""

    action: str
    src_host: str
    dst_host: str
    vm_dir: str
    vm_id: int
    ds_id: int
    vm_document: bytes
    sys_tm: str | None  # set when the system TM's migrate_other called us (5.0+)


_MIGRATE = frozenset({"premigrate", "postmigrate", "failmigrate"})
_SNAP = frozenset({"snap_create", "snap_create_live", "snap_delete", "snap_revert"})


def _parse_source(word: str) -> str:
    if not _SOURCE_RE.match(word):
        raise BadValueError(f"The image SOURCE {word[:80]!r} contains characters we do not accept.")
    return word


def _parse_int(word: str, what: str, *, allow_negative: bool = False) -> int:
    pattern = r"^-?(0|[1-9][0-9]{0,12})$" if allow_negative else r"^(0|[1-9][0-9]{0,12})$"
    if not re.match(pattern, word):
        raise BadCallError(f"The {what} {word[:40]!r} oned passed is not an integer.")
    return int(word)


def parse_tm_call(
    action: str,
    argv: Sequence[str],
    read_stdin: Callable[[int], bytes],
    version: OneVersion | None,
) -> TmCall | MigrateCall:
    """Parse a TM action's argv (and stdin for 5.12+ migrations) per §2.4 and §6.2.

    Raises:
        BadCallError: wrong number or shape of arguments.
        BadValueError: a host, path or SOURCE outside the accepted character sets.
    """
    n = len(argv)

    def need(*counts: int) -> None:
        if n not in counts:
            want = " or ".join(str(c) for c in counts)
            raise BadCallError(
                f"Transfer action {action} expects {want} arguments but got {n}; "
                "check TM_MAD in oned.conf."
            )

    if action in _MIGRATE:
        return _parse_migrate(action, argv, read_stdin, version)
    if action in {"clone", "ln", "mv"}:
        need(4)
        src = (
            HostPath.parse(argv[0], "source argument")
            if action == "mv"
            else HostPath.parse_source(argv[0], "source argument")
        )
        return TmCall(
            action,
            src=src,
            dst=HostPath.parse(argv[1], "destination argument"),
            vm_id=_parse_int(argv[2], "VM id"),
            ds_id=_parse_int(argv[3], "datastore id"),
        )
    if action == "mvds":
        need(4)
        return TmCall(
            action,
            dst=HostPath.parse(argv[0], "disk argument"),
            source=_parse_source(argv[1]),
            vm_id=_parse_int(argv[2], "VM id"),
            ds_id=_parse_int(argv[3], "datastore id"),
        )
    if action == "cpds":
        # 4.4: host:dir/disk.i SOURCE vmid dsid; 4.14+: … SOURCE snap_id vmid dsid.
        need(4, 5)
        snap = _parse_int(argv[2], "snapshot id", allow_negative=True) if n == 5 else None
        return TmCall(
            action,
            dst=HostPath.parse(argv[0], "disk argument"),
            source=_parse_source(argv[1]),
            snap_id=snap,
            vm_id=_parse_int(argv[-2], "VM id"),
            ds_id=_parse_int(argv[-1], "datastore id"),
        )
    if action == "delete":
        need(3)
        return TmCall(
            action,
            dst=HostPath.parse(argv[0], "disk argument"),
            vm_id=_parse_int(argv[1], "VM id"),
            ds_id=_parse_int(argv[2], "datastore id"),
        )
    if action in _SNAP or action == "resize":
        need(4)
        number = _parse_int(argv[1], "size" if action == "resize" else "snapshot id")
        return TmCall(
            action,
            dst=HostPath.parse(argv[0], "disk argument"),
            snap_id=None if action == "resize" else number,
            size_mb=number if action == "resize" else None,
            vm_id=_parse_int(argv[2], "VM id"),
            ds_id=_parse_int(argv[3], "datastore id"),
        )
    raise BadCallError(f"Transfer action {action!r} is not one eqliscsi implements.")


def _looks_like_b64_xml(word: str) -> bool:
    # A TM name ("shared", "ssh", "ceph") is never base64 of a document starting with
    # '<': that is how argv 6 (template, 4.4 … 5.10) is told from argv 6 (sys TM, 5.12+).
    try:
        # binascii's strict mode accepts what b64decode(validate=True) does (see args).
        return binascii.a2b_base64(word[:8], strict_mode=True).lstrip().startswith(b"<")
    except (binascii.Error, ValueError):
        return False


def _parse_migrate(
    action: str,
    argv: Sequence[str],
    read_stdin: Callable[[int], bytes],
    version: OneVersion | None,
) -> MigrateCall:
    n = len(argv)
    if n not in (5, 6, 7):
        raise BadCallError(
            f"Transfer action {action} expects 5 to 7 arguments but got {n}; "
            "check TM_MAD in oned.conf."
        )
    rest = list(argv[5:])
    template_word: str | None = None
    if version is not None and version < V5_12:
        if not rest:
            raise BadCallError(
                f"Transfer action {action} from OpenNebula {version} must carry the VM "
                "template as argument 6."
            )
        template_word = rest.pop(0)
    elif version is None and rest and _looks_like_b64_xml(rest[0]):
        template_word = rest.pop(0)
    sys_tm = rest.pop(0) if rest else None
    if rest:
        raise BadCallError(f"Transfer action {action} got an unexpected 7th argument.")
    if sys_tm is not None and not _TM_NAME_RE.match(sys_tm):
        raise BadValueError(f"The system TM name {sys_tm[:40]!r} is not a TM_MAD name.")
    if template_word is not None:
        document = decode_base64(template_word, "VM template")
    else:
        document = decode_base64(read_stdin(MAX_DOCUMENT_BYTES + 1), "VM template on stdin")
    for host in argv[0:2]:
        if not _HOST_RE.match(host):
            raise BadValueError(f"The host name {host[:80]!r} in {action} is not a host name.")
    vm_dir = re.sub(r"/{2,}", "/", argv[2])
    if not _PATH_RE.match(vm_dir):
        raise BadValueError(f"The VM directory {vm_dir[:80]!r} in {action} is not a plain path.")
    return MigrateCall(
        action,
        src_host=argv[0],
        dst_host=argv[1],
        vm_dir=vm_dir,
        vm_id=_parse_int(argv[3], "VM id"),
        ds_id=_parse_int(argv[4], "datastore id"),
        vm_document=document,
        sys_tm=sys_tm,
    )
