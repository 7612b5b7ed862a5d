"""The pure SAN model behind the fake EqualLogic shell.

Rules of this module:

1. No I/O, no clock, no randomness of its own: time comes in as ``now`` and IQN hex
   fields are derived from the group id and a serial number, so a test can predict
   every value.
2. Records are frozen dataclasses; :class:`San` swaps whole records, and every
   operation validates *everything* before it changes anything, because the array's
   rule is "an error changes nothing" (equallogic-cli.md §5.9).
3. Operations that need bytes moved return :class:`LunOp` values (allocate, copy,
   resize, delete a backing LUN).  Which targets exist is not an operation: the data
   plane derives it from the model (:func:`desired_targets`) and reconciles.
"""

from __future__ import annotations

import enum
import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime

from eqliscsi.errors import RigError

__all__ = [
    "MB",
    "AccountType",
    "AdminAccount",
    "ApplyTo",
    "AuthMethod",
    "ChapUser",
    "CliError",
    "CliSettings",
    "LunOp",
    "Pool",
    "San",
    "Snapshot",
    "TargetSpec",
    "Volume",
    "desired_targets",
    "reserve_mb",
]

MB = 1024 * 1024
# Allocation granularity of the array: a 1 GB volume reserves 1035 MB = 69 x 15 MB
# (equallogic-cli.md §6, Cinder doc ts-eql-volume-size).
GRANULE_MB = 15
# Config Guide v14.1 allows 64 characters; 63 is the safe maximum (§7).
_NAME_RE = re.compile(r"^[A-Za-z0-9.:-]{1,63}$")
_CHAP_NAME_RE = re.compile(r"^[A-Za-z0-9._:@-]{1,63}$")
IQN_PREFIX = "iqn.2001-05.com.equallogic"
_ACCOUNT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,15}$")


class CliError(RigError):
    """A command the fake array refuses; the shell prints it as ``% Error - <message>``."""

    reference = "fake-eql-cli-error"


class AuthMethod(enum.Enum):
    CHAP = "chap"
    NONE = "none"


class AccountType(enum.Enum):
    """Administration account types of the Group Manager (Administrator's Guide,
    "Account Permissions": group administrator, read-only, pool administrator,
    volume administrator).  The CLI spellings are the rig's choice [U]."""

    GROUP_ADMIN = "group-admin"
    POOL_ADMIN = "pool-admin"
    VOLUME_ADMIN = "volume-admin"
    READ_ONLY = "read-only"


@dataclass(frozen=True, slots=True)
class AdminAccount:
    """A local administration account.  The account the fake is started with is a
    group administrator that is not stored here (like the default ``grpadmin``)."""

    name: str
    type: AccountType = AccountType.GROUP_ADMIN
    pools: tuple[str, ...] = ()  # pool and volume administrators: the pools they manage
    # The fake array's own account database, like ChapUser.password: stored, checked
    # by the SSH adapter, never shown or logged.
    password: str = ""
    enabled: bool = True


class ApplyTo(enum.Enum):
    VOLUME = "volume"
    SNAPSHOT = "snapshot"
    BOTH = "both"


@dataclass(frozen=True, slots=True)
class CliSettings:
    """Per-account ``cli-settings``; the defaults are the array's (§10.3)."""

    confirmation: bool = True
    paging: bool = True
    events: bool = True
    formatoutput: bool = True
    displayinMB: bool = False  # the CLI's own spelling is the key
    idlelogout: bool = True
    reprintBadInput: bool = True


@dataclass(frozen=True, slots=True)
class Pool:
    name: str
    capacity_mb: int
    default: bool = False


@dataclass(frozen=True, slots=True)
class ChapUser:
    name: str
    # The fake array's own account database, like the real one's: stored, shown by
    # `chapuser show`, never logged by the rig.
    password: str
    enabled: bool = True


@dataclass(frozen=True, slots=True)
class AccessRecord:
    id: int
    initiator: str = ""
    ipaddress: str = ""
    username: str = ""
    authmethod: AuthMethod = AuthMethod.NONE
    apply_to: ApplyTo = ApplyTo.BOTH


@dataclass(frozen=True, slots=True)
class Snapshot:
    name: str
    uid: str
    iqn: str
    size_mb: int
    created: str
    description: str = ""
    online: bool = False


@dataclass(frozen=True, slots=True)
class Volume:
    name: str
    uid: str
    iqn: str
    size_mb: int
    pool: str
    thin: bool = False
    thin_min_reserve: int = 10
    snap_reserve: int = 100
    description: str = ""
    online: bool = True
    read_only: bool = False
    multihost: bool = False
    alias: str = ""
    access: tuple[AccessRecord, ...] = ()
    snapshots: tuple[Snapshot, ...] = ()

    def snapshot(self, name: str) -> Snapshot:
        for s in self.snapshots:
            if s.name == name:
                return s
        raise CliError(f"Snapshot {name} does not exist.")

    @property
    def lun_bytes(self) -> int:
        """What the host sees: the size rounded up to the 15 MB granule (§6)."""
        return reserve_mb(self.size_mb) * MB

    @property
    def reserve_mb(self) -> int:
        full = reserve_mb(self.size_mb)
        if not self.thin:
            return full
        return reserve_mb(full * self.thin_min_reserve // 100)

    @property
    def snap_reserve_mb(self) -> int:
        return reserve_mb(self.reserve_mb * self.snap_reserve // 100)


@dataclass(frozen=True, slots=True)
class LunOp:
    """A backing-store change the data plane must make (bytes, not targets)."""

    kind: str  # "allocate" | "copy" | "resize" | "delete"
    uid: str
    size_bytes: int = 0
    source_uid: str = ""


@dataclass(frozen=True, slots=True)
class TargetSpec:
    """One iSCSI target the data plane must serve, derived from the model."""

    iqn: str
    uid: str
    initiators: tuple[str, ...] | None  # None: anyone may log in
    chap_user: str = ""
    chap_password: str = ""
    # Mutual CHAP: the group-wide target authentication credentials, offered only to
    # targets that authenticate initiators with CHAP.
    target_user: str = ""
    target_password: str = ""


def reserve_mb(size_mb: int) -> int:
    return -(-size_mb // GRANULE_MB) * GRANULE_MB


def check_name(name: str, what: str = "volume") -> None:
    if not _NAME_RE.match(name):
        raise CliError(f"Invalid {what} name {name!r}; use up to 63 of A-Z a-z 0-9 . - :.")


@dataclass
class San:
    """All objects of one fake group.  Mutable container of immutable records."""

    group_name: str
    group_ip: str = "127.0.0.1"
    group_id: str = "8a0906"
    pools: dict[str, Pool] = field(default_factory=dict)
    volumes: dict[str, Volume] = field(default_factory=dict)
    chap_users: dict[str, ChapUser] = field(default_factory=dict)
    settings: dict[str, CliSettings] = field(default_factory=dict)
    accounts: dict[str, AdminAccount] = field(default_factory=dict)
    # Target authentication (mutual CHAP) is one group-wide user and password
    # (Administrator's Guide, "Configure Target Authentication").  A real group starts
    # with generated defaults; the fake starts with none until `grpparams
    # target-auth-username/-password` set them.
    target_auth_user: str = ""
    target_auth_password: str = ""
    info_messages: bool = True
    serial: int = 0
    # Bumped on every change; adapters persist when it moves.
    generation: int = 0

    def __post_init__(self) -> None:
        if not self.pools:
            self.pools["default"] = Pool("default", 10 * 1024 * 1024, default=True)

    # -- helpers -------------------------------------------------------------

    def _touch(self) -> None:
        self.generation += 1

    def _next_uid(self) -> tuple[str, str]:
        self.serial += 1
        digest = hashlib.sha256(f"{self.group_name}:{self.group_id}:{self.serial}".encode())
        return f"{self.serial:06d}", digest.hexdigest()

    def _iqn(self, name: str, digest: str) -> str:
        # 0-8a0906-<3 hex per volume><6 hex group>-<8 hex per volume><8 hex group>-<name>:
        # the part before the name is exactly 36 characters, which OpenNebula's addon
        # relies on (§7).  iSCSI names are case-insensitive and normalised to lower
        # case (RFC 3722), so the name part is lower-cased.
        group = hashlib.sha256(self.group_name.encode()).hexdigest()
        return (
            f"{IQN_PREFIX}:0-{self.group_id}-{digest[:3]}{group[:6]}-"
            f"{digest[3:11]}{group[6:14]}-{name.lower()}"
        )

    def volume(self, name: str) -> Volume:
        try:
            return self.volumes[name]
        except KeyError:
            raise CliError(f"Volume {name} does not exist.") from None

    def pool(self, name: str) -> Pool:
        try:
            return self.pools[name]
        except KeyError:
            raise CliError(f"Pool {name} does not exist.") from None

    def default_pool(self) -> Pool:
        return next(p for p in self.pools.values() if p.default)

    def account_settings(self, account: str) -> CliSettings:
        return self.settings.get(account, CliSettings())

    def set_setting(self, account: str, key: str, value: bool) -> None:
        current = self.account_settings(account)
        if getattr(current, key) != value:
            self.settings[account] = replace(current, **{key: value})
            self._touch()

    def pool_used_mb(self, pool: str, *, without: str = "") -> int:
        used = 0
        for v in self.volumes.values():
            if v.pool == pool and v.name != without:
                used += v.reserve_mb + v.snap_reserve_mb
        return used

    def pool_free_mb(self, pool: str, *, without: str = "") -> int:
        return self.pool(pool).capacity_mb - self.pool_used_mb(pool, without=without)

    def _check_space(self, candidate: Volume, *, replacing: str = "") -> None:
        need = candidate.reserve_mb + candidate.snap_reserve_mb
        if need > self.pool_free_mb(candidate.pool, without=replacing):
            raise CliError(f"Not enough free space in pool {candidate.pool} for this volume.")

    def _put(self, volume: Volume) -> None:
        self.volumes[volume.name] = volume
        self._touch()

    # -- volumes -------------------------------------------------------------

    def create_volume(
        self,
        name: str,
        size_mb: int,
        *,
        pool: str = "",
        thin: bool = False,
        thin_min_reserve: int = 10,
        snap_reserve: int = 100,
        description: str = "",
        online: bool = True,
        read_only: bool = False,
        alias: str = "",
    ) -> tuple[Volume, list[LunOp]]:
        check_name(name)
        if name in self.volumes:
            raise CliError(f"Volume {name} already exists.")
        if size_mb <= 0:
            raise CliError("Volume size must be at least 1MB.")
        pool_name = pool or self.default_pool().name
        self.pool(pool_name)
        uid, digest = self._next_uid()
        vol = Volume(
            name=name,
            uid=uid,
            iqn=self._iqn(name, digest),
            size_mb=size_mb,
            pool=pool_name,
            thin=thin,
            thin_min_reserve=thin_min_reserve,
            snap_reserve=snap_reserve,
            description=description,
            online=online,
            read_only=read_only,
            alias=alias or name,
        )
        try:
            self._check_space(vol)
        except CliError:
            self.serial -= 1
            raise
        self._put(vol)
        return vol, [LunOp("allocate", uid, vol.lun_bytes)]

    def clone_volume(
        self, source: str, new: str, *, description: str = "", online: bool = True
    ) -> tuple[Volume, list[LunOp]]:
        src = self.volume(source)
        return self._clone(src.uid, src, new, description=description, online=online)

    def clone_snapshot(self, volume: str, snapshot: str, new: str) -> tuple[Volume, list[LunOp]]:
        src = self.volume(volume)
        snap = src.snapshot(snapshot)
        return self._clone(snap.uid, replace(src, size_mb=snap.size_mb), new, description="")

    def _clone(
        self, data_uid: str, src: Volume, new: str, *, description: str, online: bool = True
    ) -> tuple[Volume, list[LunOp]]:
        check_name(new)
        if new in self.volumes:
            raise CliError(f"Volume {new} already exists.")
        uid, digest = self._next_uid()
        # A clone inherits size, pool and provisioning, never access records: the
        # array gives it a new IQN and no ACL (Cinder adds access after cloning).
        vol = replace(
            src,
            name=new,
            uid=uid,
            iqn=self._iqn(new, digest),
            description=description,
            online=online,
            alias=new,
            multihost=False,
            access=(),
            snapshots=(),
        )
        try:
            self._check_space(vol)
        except CliError:
            self.serial -= 1
            raise
        self._put(vol)
        return vol, [LunOp("copy", uid, vol.lun_bytes, source_uid=data_uid)]

    def delete_volume(self, name: str) -> list[LunOp]:
        vol = self.check_deletable(name)
        del self.volumes[name]
        self._touch()
        return [LunOp("delete", s.uid) for s in vol.snapshots] + [LunOp("delete", vol.uid)]

    def check_deletable(self, name: str) -> Volume:
        vol = self.volume(name)
        if vol.online:
            raise CliError(f"Volume {name} is online; set it offline before deleting it.")
        return vol

    def rename_volume(self, old: str, new: str) -> None:
        vol = self.volume(old)
        check_name(new)
        if new in self.volumes:
            raise CliError(f"Volume {new} already exists.")
        # The IQN keeps its old name part: the array does not rename targets.
        del self.volumes[old]
        self._put(replace(vol, name=new))

    def set_online(self, name: str, online: bool) -> None:
        vol = self.volume(name)
        if vol.online != online:
            self._put(replace(vol, online=online))

    def set_multihost(self, name: str, enabled: bool) -> None:
        vol = self.volume(name)
        if vol.multihost != enabled:
            self._put(replace(vol, multihost=enabled))

    def set_description(self, name: str, text: str) -> None:
        self._put(replace(self.volume(name), description=text))

    def resize(self, name: str, size_mb: int, *, no_snap: bool, now: datetime) -> list[LunOp]:
        vol = self.volume(name)
        if size_mb <= 0:
            raise CliError("Volume size must be at least 1MB.")
        if size_mb < vol.size_mb and vol.online:
            raise CliError(f"Volume {name} is online; set it offline before shrinking it.")
        grown = replace(vol, size_mb=size_mb)
        self._check_space(grown, replacing=name)
        ops: list[LunOp] = []
        if not no_snap:
            # Without no-snap the array first takes a snapshot (Cinder bug 1720454).
            _, ops = self.create_snapshot(name, now=now, description="resize")
            vol = self.volume(name)
        self._put(replace(vol, size_mb=size_mb))
        return [*ops, LunOp("resize", vol.uid, grown.lun_bytes)]

    # -- access records --------------------------------------------------------

    def add_access(
        self,
        name: str,
        *,
        initiator: str = "",
        ipaddress: str = "",
        username: str = "",
        authmethod: AuthMethod = AuthMethod.NONE,
        apply_to: ApplyTo = ApplyTo.BOTH,
    ) -> AccessRecord:
        vol = self.volume(name)
        if not (initiator or ipaddress or username):
            raise CliError("Specify at least one of initiator, ipaddress or username.")
        if authmethod is AuthMethod.CHAP and not username:
            raise CliError("Authmethod chap needs a username.")
        if ipaddress and not _valid_ip_pattern(ipaddress):
            raise CliError(f"Invalid IP address {ipaddress}.")
        if len(vol.access) >= 16:
            raise CliError(f"Volume {name} already has the maximum of 16 access records.")
        # IDs are per volume and start at 1 (§10.7); a freed ID is reused first.
        used = {r.id for r in vol.access}
        rid = next(i for i in range(1, 18) if i not in used)
        rec = AccessRecord(rid, initiator, ipaddress, username, authmethod, apply_to)
        self._put(replace(vol, access=tuple(sorted((*vol.access, rec), key=lambda r: r.id))))
        return rec

    def delete_access(self, name: str, rid: int) -> None:
        vol = self.volume(name)
        kept = tuple(r for r in vol.access if r.id != rid)
        if len(kept) == len(vol.access):
            raise CliError(f"Access control record {rid} does not exist.")
        self._put(replace(vol, access=kept))

    def access_record(self, name: str, rid: int) -> AccessRecord:
        for r in self.volume(name).access:
            if r.id == rid:
                return r
        raise CliError(f"Access control record {rid} does not exist.")

    # -- snapshots -------------------------------------------------------------

    def create_snapshot(
        self, name: str, *, now: datetime, description: str = ""
    ) -> tuple[Snapshot, list[LunOp]]:
        vol = self.volume(name)
        # Default names are "<volume>-<YYYY-MM-DD>-<hh:mm:ss>.<n>" (§5.1, [U]).
        stamp = now.strftime("%Y-%m-%d-%H:%M:%S")
        taken = {s.name for s in vol.snapshots}
        n = 1
        while f"{vol.name}-{stamp}.{n}" in taken:
            n += 1
        snap_name = f"{vol.name}-{stamp}.{n}"
        uid, digest = self._next_uid()
        snap = Snapshot(
            name=snap_name,
            uid=uid,
            iqn=self._iqn(snap_name, digest),
            size_mb=vol.size_mb,
            created=now.strftime("%Y-%m-%d:%H:%M:%S"),
            description=description,
        )
        self._put(replace(vol, snapshots=(*vol.snapshots, snap)))
        return snap, [LunOp("copy", uid, vol.lun_bytes, source_uid=vol.uid)]

    def rename_snapshot(self, name: str, old: str, new: str) -> None:
        vol = self.volume(name)
        snap = vol.snapshot(old)
        check_name(new, "snapshot")
        if any(s.name == new for s in vol.snapshots):
            raise CliError(f"Snapshot {new} already exists.")
        snaps = tuple(replace(s, name=new) if s is snap else s for s in vol.snapshots)
        self._put(replace(vol, snapshots=snaps))

    def delete_snapshot(self, name: str, snap_name: str) -> list[LunOp]:
        vol = self.volume(name)
        snap = vol.snapshot(snap_name)
        self._put(replace(vol, snapshots=tuple(s for s in vol.snapshots if s is not snap)))
        return [LunOp("delete", snap.uid)]

    def set_snapshot_online(self, name: str, snap_name: str, online: bool) -> None:
        vol = self.volume(name)
        snap = vol.snapshot(snap_name)
        snaps = tuple(replace(s, online=online) if s is snap else s for s in vol.snapshots)
        self._put(replace(vol, snapshots=snaps))

    def restore_snapshot(self, name: str, snap_name: str) -> list[LunOp]:
        vol = self.volume(name)
        snap = vol.snapshot(snap_name)
        if vol.online:
            raise CliError(f"Volume {name} is online; set it offline before restoring it.")
        self._put(replace(vol, size_mb=snap.size_mb))
        return [LunOp("copy", vol.uid, reserve_mb(snap.size_mb) * MB, source_uid=snap.uid)]

    # -- administration accounts -------------------------------------------------

    def account(self, name: str) -> AdminAccount:
        """The account's record; an account not stored is the built-in group admin."""
        return self.accounts.get(name, AdminAccount(name))

    def create_account(
        self,
        name: str,
        password: str,
        *,
        type: AccountType = AccountType.GROUP_ADMIN,
        pools: tuple[str, ...] = (),
        enabled: bool = True,
    ) -> AdminAccount:
        if not _ACCOUNT_RE.match(name):
            raise CliError(f"Invalid account name {name!r}; use 1 to 16 letters and digits.")
        if name in self.accounts:
            raise CliError(f"Account {name} already exists.")
        if not 3 <= len(password) <= 16:
            raise CliError("The account password must be 3 to 16 characters long.")
        scoped = type in (AccountType.POOL_ADMIN, AccountType.VOLUME_ADMIN)
        if scoped and not pools:
            raise CliError(f"A {type.value} account needs at least one pool.")
        if not scoped and pools:
            raise CliError(f"A {type.value} account has no pools; omit them.")
        for p in pools:
            self.pool(p)
        acct = AdminAccount(name, type, tuple(pools), password, enabled)
        self.accounts[name] = acct
        self._touch()
        return acct

    def delete_account(self, name: str) -> None:
        if name not in self.accounts:
            raise CliError(f"Account {name} does not exist.")
        del self.accounts[name]
        self._touch()

    def check_may_create(self, account: str, pool: str) -> None:
        """Refuse what the account type forbids (Administrator's Guide, "Account
        Permissions"): read-only accounts change nothing; pool and volume
        administrators create only in their pools.  The wording is the rig's [U]."""
        acct = self.account(account)
        if acct.type is AccountType.READ_ONLY:
            raise CliError(f"Account {account} is read-only; it cannot change the group.")
        if acct.type is not AccountType.GROUP_ADMIN and pool not in acct.pools:
            raise CliError(f"Account {account} has no permission to manage pool {pool}.")

    def set_target_auth(self, *, user: str | None = None, password: str | None = None) -> None:
        if user is not None:
            if not _CHAP_NAME_RE.match(user):
                raise CliError(f"Invalid CHAP user name {user!r}; use 1 to 63 plain characters.")
            self.target_auth_user = user
        if password is not None:
            if not 12 <= len(password) <= 255:
                raise CliError("The CHAP password must be 12 to 255 characters long.")
            self.target_auth_password = password
        self._touch()

    # -- CHAP users ------------------------------------------------------------

    def create_chap_user(self, name: str, password: str, *, enabled: bool = True) -> ChapUser:
        if not _CHAP_NAME_RE.match(name):
            raise CliError(f"Invalid CHAP user name {name!r}; use 1 to 63 plain characters.")
        if name in self.chap_users:
            raise CliError(f"CHAP user {name} already exists.")
        # RFC 7143 §12.1.3 wants CHAP secrets of 12 to 16 bytes for interop; the
        # array enforces 12 to 255 characters [U].
        if not 12 <= len(password) <= 255:
            raise CliError("The CHAP password must be 12 to 255 characters long.")
        user = ChapUser(name, password, enabled)
        self.chap_users[name] = user
        self._touch()
        return user

    def chap_user(self, name: str) -> ChapUser:
        try:
            return self.chap_users[name]
        except KeyError:
            raise CliError(f"CHAP user {name} does not exist.") from None

    def delete_chap_user(self, name: str) -> None:
        self.chap_user(name)
        del self.chap_users[name]
        self._touch()


def _valid_ip_pattern(text: str) -> bool:
    parts = text.split(".")
    if len(parts) != 4:
        return False
    return all(p == "*" or (p.isdigit() and int(p) <= 255) for p in parts)


def _ip_to_acl(pattern: str) -> str:
    """``192.168.*.*`` → ``192.168.0.0/16``: trailing wildcards become a CIDR block."""
    parts = pattern.split(".")
    fixed = 0
    while fixed < 4 and parts[fixed] != "*":
        fixed += 1
    if fixed == 4:
        return pattern
    if any(p != "*" for p in parts[fixed:]):
        # Wildcards in the middle have no CIDR form; the fake then admits anyone.
        return "ALL"
    if fixed == 0:
        return "ALL"
    base = parts[:fixed] + ["0"] * (4 - fixed)
    return f"{'.'.join(base)}/{fixed * 8}"


def _target_spec(
    iqn: str,
    uid: str,
    records: Iterable[AccessRecord],
    chaps: dict[str, ChapUser],
    target_auth: tuple[str, str] = ("", ""),
) -> TargetSpec:
    initiators: list[str] = []
    anyone = False
    chap_user = chap_password = ""
    for r in records:
        if r.initiator and r.initiator != "*":
            initiators.append(r.initiator)
        elif r.ipaddress and r.ipaddress != "*.*.*.*":
            acl = _ip_to_acl(r.ipaddress)
            if acl == "ALL":
                anyone = True
            else:
                initiators.append(acl)
        else:
            anyone = True
        if r.authmethod is AuthMethod.CHAP and not chap_user:
            user = chaps.get(r.username)
            if user is not None and user.enabled:
                chap_user, chap_password = user.name, user.password
    target_user, target_password = target_auth if chap_user and all(target_auth) else ("", "")
    return TargetSpec(
        iqn,
        uid,
        None if anyone else tuple(initiators),
        chap_user,
        chap_password,
        target_user,
        target_password,
    )


def desired_targets(san: San) -> dict[str, TargetSpec]:
    """Every target the data plane should serve: online volumes and snapshots.

    Offline objects have no target (the array stops serving them), and an object with
    no access record is served to no one: tgt then has the target bound to an empty
    initiator list.
    """
    out: dict[str, TargetSpec] = {}
    auth = (san.target_auth_user, san.target_auth_password)
    for vol in san.volumes.values():
        if vol.online:
            recs = [r for r in vol.access if r.apply_to is not ApplyTo.SNAPSHOT]
            out[vol.iqn] = _target_spec(vol.iqn, vol.uid, recs, san.chap_users, auth)
        snap_recs = [r for r in vol.access if r.apply_to is not ApplyTo.VOLUME]
        for s in vol.snapshots:
            if s.online:
                out[s.iqn] = _target_spec(s.iqn, s.uid, snap_recs, san.chap_users, auth)
    return out
