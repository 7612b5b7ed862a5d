"""The Group Manager command grammar (equallogic-cli.md §4) over the pure model.

:func:`run` takes one tokenised line and returns a :class:`Reply`: output lines, an
error, or a confirmation question whose answer runs a deferred action.  It never
does I/O; terminal behaviour (echo, paging, wrap) belongs to :mod:`rig.fake_eql.shell`.

Keywords may be abbreviated to any unique prefix (``vol sel X sh``), as on the
array; object names never are.  Values with spaces are quoted with ``"`` (Cinder)
or ``'`` (the Proxmox plugins).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from rig.fake_eql.model import (
    MB,
    AccountType,
    AdminAccount,
    ApplyTo,
    AuthMethod,
    CliError,
    CliSettings,
    LunOp,
    San,
    Volume,
)
from rig.fake_eql.render import format_size, kv_lines, parse_size, table

__all__ = ["Confirm", "Reply", "Session", "SyntaxProblem", "run", "tokenize"]

_ON_OFF = ("on", "off")
_SETTINGS = {
    "confirmation": "confirmation",
    "paging": "paging",
    "events": "events",
    "formatoutput": "formatoutput",
    "displayinmb": "displayinMB",
    "idlelogout": "idlelogout",
    "reprintbadinput": "reprintBadInput",
}


class SyntaxProblem(CliError):
    """Input the grammar rejects; with ``reprintBadInput on`` the line is reprinted."""

    reference = "fake-eql-syntax-error"


@dataclass
class Session:
    """Per-connection state: the account, sub-mode and ``stty`` values (§3: stty is
    per session, cli-settings per account)."""

    account: str
    columns: int = 80
    rows: int = 24
    hardwrap: bool = True
    mode_volume: str | None = None
    stty_columns: bool = False  # `stty columns` overrides window-size changes

    def prompt(self, group: str) -> str:
        if self.mode_volume is not None:
            return f"{group}(volume_{self.mode_volume})> "
        return f"{group}> "


@dataclass(frozen=True)
class Confirm:
    question: str
    action: Callable[[], Reply]


@dataclass(frozen=True)
class Reply:
    lines: tuple[str, ...] = ()
    error: str | None = None
    syntax: bool = False
    confirm: Confirm | None = None
    logout: bool = False
    lun_ops: tuple[LunOp, ...] = ()
    events: tuple[str, ...] = ()
    path: str = ""


@dataclass
class _Ctx:
    san: San
    session: Session
    now: datetime
    connections: Callable[[str], int]
    path: list[str] = field(default_factory=list)

    @property
    def settings(self) -> CliSettings:
        return self.san.account_settings(self.session.account)

    def size(self, mb: int) -> str:
        return format_size(mb, in_mb=self.settings.displayinMB)

    def kv(self, pairs: Sequence[tuple[str, str]]) -> list[str]:
        return kv_lines(pairs, two_per_line=self.settings.formatoutput)


def tokenize(line: str) -> list[str]:
    """Split on blanks; ``"..."`` and ``'...'`` group words (quotes removed)."""
    words: list[str] = []
    cur: list[str] = []
    quote = ""
    have = False
    for ch in line:
        if quote:
            if ch == quote:
                quote = ""
            else:
                cur.append(ch)
        elif ch in "\"'":
            quote = ch
            have = True
        elif ch.isspace():
            if have:
                words.append("".join(cur))
                cur, have = [], False
        else:
            cur.append(ch)
            have = True
    if quote:
        raise SyntaxProblem("Unterminated quoted string.")
    if have:
        words.append("".join(cur))
    return words


def _pick(word: str, options: Sequence[str], ctx: _Ctx) -> str:
    low = word.lower()
    if low in options:
        ctx.path.append(low)
        return low
    found = [o for o in options if o.startswith(low)]
    if len(found) == 1:
        ctx.path.append(found[0])
        return found[0]
    if not found:
        raise SyntaxProblem(f'Invalid command or parameter "{word}".')
    raise SyntaxProblem(f'Ambiguous command or parameter "{word}".')


class _Words:
    def __init__(self, words: Sequence[str], ctx: _Ctx) -> None:
        self.words = list(words)
        self.i = 0
        self.ctx = ctx

    def more(self) -> bool:
        return self.i < len(self.words)

    def value(self) -> str:
        if not self.more():
            raise SyntaxProblem("Incomplete command; a parameter is missing.")
        self.i += 1
        return self.words[self.i - 1]

    def keyword(self, *options: str) -> str:
        return _pick(self.value(), options, self.ctx)

    def end(self) -> None:
        if self.more():
            raise SyntaxProblem(f'Too many parameters, starting at "{self.words[self.i]}".')

    def size(self) -> int:
        text = self.value()
        mb = parse_size(text)
        if mb is None:
            raise SyntaxProblem(f'Invalid size "{text}"; use a number with MB, GB or TB.')
        return mb

    def percent(self) -> int:
        text = self.value()
        digits = text.removesuffix("%")
        if not digits.isdigit() or int(digits) > 100:
            raise SyntaxProblem(f'Invalid percentage "{text}".')
        return int(digits)

    def integer(self) -> int:
        text = self.value()
        if not text.isdigit():
            raise SyntaxProblem(f'Invalid number "{text}".')
        return int(text)


def run(
    san: San,
    session: Session,
    words: Sequence[str],
    *,
    now: datetime,
    connections: Callable[[str], int] = lambda _iqn: 0,
) -> Reply:
    """Execute one command line (already tokenised) and describe what to print."""
    ctx = _Ctx(san, session, now, connections)
    w = _Words(words, ctx)
    try:
        reply = _dispatch(ctx, w)
    except SyntaxProblem as e:
        return Reply(error=e.message, syntax=True, path=" ".join(ctx.path))
    except CliError as e:
        return Reply(error=e.message, path=" ".join(ctx.path))
    if not reply.path:
        reply = _with_path(reply, " ".join(ctx.path))
    return reply


def _with_path(reply: Reply, path: str) -> Reply:
    return Reply(
        reply.lines,
        reply.error,
        reply.syntax,
        reply.confirm,
        reply.logout,
        reply.lun_ops,
        reply.events,
        path,
    )


def _dispatch(ctx: _Ctx, w: _Words) -> Reply:
    if ctx.session.mode_volume is not None:
        word = w.keyword(*_VOLUME_SUBCOMMANDS, "exit", "logout", "cli-settings", "stty")
        if word == "exit":
            w.end()
            ctx.session.mode_volume = None
            return Reply()
        if word == "logout":
            return _logout(ctx, w)
        if word == "cli-settings":
            return _cli_settings(ctx, w)
        if word == "stty":
            return _stty(ctx, w)
        w.i -= 1
        ctx.path.pop()
        return _volume_sub(ctx, w, ctx.san.volume(ctx.session.mode_volume))
    word = w.keyword(
        "account",
        "volume",
        "show",
        "pool",
        "chapuser",
        "grpparams",
        "cli-settings",
        "stty",
        "whoami",
        "exit",
        "logout",
    )
    handler = _TOP[word]
    return handler(ctx, w)


# -- volume -------------------------------------------------------------------


def _volume(ctx: _Ctx, w: _Words) -> Reply:
    sub = w.keyword("create", "delete", "rename", "select", "show")
    san = ctx.san
    if sub == "create":
        name = w.value()
        size = w.size()
        opts = _volume_options(w, allow_size_opts=True)
        san.check_may_create(ctx.session.account, str(opts.get("pool") or san.default_pool().name))
        vol, ops = san.create_volume(name, size, **opts)  # type: ignore[arg-type]
        return Reply(
            ("Volume creation succeeded.", f"iSCSI target name is {vol.iqn}."),
            lun_ops=tuple(ops),
            events=(f"Volume '{vol.name}' was created.",),
        )
    if sub == "delete":
        name = w.value()
        w.end()
        vol = san.check_deletable(name)

        def delete() -> Reply:
            ops = san.delete_volume(name)
            return Reply(
                ("Volume deletion succeeded.",),
                lun_ops=tuple(ops),
                events=(f"Volume '{name}' was deleted.",),
            )

        if ctx.settings.confirmation:
            return Reply(
                confirm=Confirm(
                    "Do you really want to delete the volume and destroy "
                    f"{format_size(vol.size_mb)} of data? (y/n) [n]",
                    delete,
                )
            )
        return delete()
    if sub == "rename":
        old, new = w.value(), w.value()
        w.end()
        san.rename_volume(old, new)
        return Reply()
    if sub == "show":
        if not w.more():
            return Reply(tuple(_volume_table(ctx, list(san.volumes.values()))))
        vol = san.volume(w.value())
        w.end()
        return Reply(tuple(_volume_detail(ctx, vol)))
    # select
    vol = san.volume(w.value())
    if not w.more():
        ctx.session.mode_volume = vol.name
        return Reply()
    return _volume_sub(ctx, w, vol)


_VOLUME_SUBCOMMANDS = (
    "online",
    "offline",
    "show",
    "size",
    "multihost-access",
    "access",
    "snapshot",
    "clone",
    "description",
)


def _volume_options(w: _Words, *, allow_size_opts: bool) -> dict[str, object]:
    opts: dict[str, object] = {}
    keys = [
        "pool",
        "thin-provision",
        "thin-min-reserve",
        "description",
        "read-write",
        "read-only",
        "online",
        "offline",
        "iscsi-alias",
        "unrestricted",
        "snap-reserve",
    ]
    if not allow_size_opts:
        keys = ["description", "online", "offline", "unrestricted", "snap-reserve", "read-write"]
    while w.more():
        key = w.keyword(*keys)
        if key == "pool":
            opts["pool"] = w.value()
        elif key == "thin-provision":
            opts["thin"] = True
        elif key == "thin-min-reserve":
            opts["thin_min_reserve"] = w.percent()
        elif key == "description":
            opts["description"] = w.value()
        elif key in ("read-write", "read-only"):
            if allow_size_opts:
                opts["read_only"] = key == "read-only"
        elif key in ("online", "offline"):
            opts["online"] = key == "online"
        elif key == "iscsi-alias":
            opts["alias"] = w.value()
        elif key == "snap-reserve":
            pct = w.percent()
            if allow_size_opts:
                opts["snap_reserve"] = pct
        # `unrestricted` (old firmware) adds no access record here: the fake, like
        # FW 7+, serves a volume only through explicit access records.
    return opts


def _volume_sub(ctx: _Ctx, w: _Words, vol: Volume) -> Reply:
    san = ctx.san
    sub = w.keyword(*_VOLUME_SUBCOMMANDS)
    if sub in ("online", "offline"):
        w.end()
        san.set_online(vol.name, sub == "online")
        return Reply()
    if sub == "show":
        w.end()
        return Reply(tuple(_volume_detail(ctx, vol)))
    if sub == "size":
        size: int | None = None
        no_snap = False
        while w.more():
            # Cinder sends `size 200G no-snap`, mityarzn `size no-snap 200MB` (§4).
            if "no-snap".startswith(w.words[w.i].lower()) and len(w.words[w.i]) >= 2:
                w.keyword("no-snap")
                no_snap = True
            elif size is None:
                size = w.size()
            else:
                w.end()
        if size is None:
            raise SyntaxProblem("Incomplete command; a size is missing.")
        return Reply(lun_ops=tuple(san.resize(vol.name, size, no_snap=no_snap, now=ctx.now)))
    if sub == "multihost-access":
        state = w.keyword("enable", "disable")
        w.end()
        san.set_multihost(vol.name, state == "enable")
        return Reply()
    if sub == "description":
        text = w.value()
        w.end()
        san.set_description(vol.name, text)
        return Reply()
    if sub == "clone":
        new = w.value()
        opts = _volume_options(w, allow_size_opts=False)
        clone, ops = san.clone_volume(
            vol.name,
            new,
            description=str(opts.get("description", "")),
            online=bool(opts.get("online", True)),
        )
        return Reply(
            ("Volume creation succeeded.", f"iSCSI target name is {clone.iqn}."),
            lun_ops=tuple(ops),
            events=(f"Volume '{clone.name}' was created.",),
        )
    if sub == "access":
        return _access(ctx, w, vol)
    return _snapshot(ctx, w, vol)


def _access(ctx: _Ctx, w: _Words, vol: Volume) -> Reply:
    san = ctx.san
    sub = w.keyword("create", "show", "delete", "select")
    if sub == "show":
        w.end()
        return Reply(tuple(_access_table(vol)))
    if sub == "delete":
        rid = w.integer()
        w.end()
        san.delete_access(vol.name, rid)
        return Reply()
    if sub == "select":
        rid = w.integer()
        w.keyword("show")
        w.end()
        r = san.access_record(vol.name, rid)
        return Reply(
            tuple(
                ctx.kv(
                    [
                        ("ID", str(r.id)),
                        ("Initiator", r.initiator),
                        ("IPAddress", r.ipaddress),
                        ("AuthMethod", r.authmethod.value),
                        ("UserName", r.username),
                        ("Apply-To", r.apply_to.value),
                    ]
                )
            )
        )
    fields: dict[str, str] = {}
    while w.more():
        key = w.keyword("ipaddress", "initiator", "username", "authmethod", "apply-to")
        if key == "authmethod":
            fields[key] = w.keyword("chap", "none")
        elif key == "apply-to":
            fields[key] = w.keyword("volume", "snapshot", "both")
        else:
            fields[key] = w.value()
    rec = san.add_access(
        vol.name,
        initiator=fields.get("initiator", ""),
        ipaddress=fields.get("ipaddress", ""),
        username=fields.get("username", ""),
        authmethod=AuthMethod(fields.get("authmethod", "none")),
        apply_to=ApplyTo(fields.get("apply-to", "both")),
    )
    return Reply((f"Access control record created with ID {rec.id}.",))


def _snapshot(ctx: _Ctx, w: _Words, vol: Volume) -> Reply:
    san = ctx.san
    sub = w.keyword("create-now", "delete", "rename", "select", "show")
    if sub == "create-now":
        description = ""
        while w.more():
            w.keyword("description")
            description = w.value()
        snap, ops = san.create_snapshot(vol.name, now=ctx.now, description=description)
        return Reply(
            ("Snapshot creation succeeded.", f"Snapshot name is {snap.name}"),
            lun_ops=tuple(ops),
        )
    if sub == "delete":
        name = w.value()
        w.end()
        ops = san.delete_snapshot(vol.name, name)
        return Reply(("Snapshot deletion succeeded.",), lun_ops=tuple(ops))
    if sub == "rename":
        old, new = w.value(), w.value()
        w.end()
        san.rename_snapshot(vol.name, old, new)
        return Reply()
    if sub == "show":
        w.end()
        rows = [
            [
                s.name,
                "read-write",
                "online" if s.online else "offline",
                str(ctx.connections(s.iqn) if s.online else 0),
            ]
            for s in vol.snapshots
        ]
        return Reply(
            tuple(table(["Name", "Permission", "Status", "Connections"], [40, 10, 14, 11], rows))
        )
    snap = vol.snapshot(w.value())
    action = w.keyword("show", "clone", "restore", "online", "offline", "delete")
    if action == "clone":
        new = w.value()
        w.end()
        clone, ops = san.clone_snapshot(vol.name, snap.name, new)
        return Reply(
            ("Volume creation succeeded.", f"iSCSI target name is {clone.iqn}."),
            lun_ops=tuple(ops),
            events=(f"Volume '{clone.name}' was created.",),
        )
    w.end()
    if action == "restore":
        return Reply(lun_ops=tuple(san.restore_snapshot(vol.name, snap.name)))
    if action in ("online", "offline"):
        san.set_snapshot_online(vol.name, snap.name, action == "online")
        return Reply()
    if action == "delete":
        ops = san.delete_snapshot(vol.name, snap.name)
        return Reply(("Snapshot deletion succeeded.",), lun_ops=tuple(ops))
    pairs = [
        ("Name", snap.name),
        ("Size", ctx.size(snap.size_mb)),
        ("TimeStamp", snap.created),
        ("Status", "online" if snap.online else "offline"),
        ("Permission", "read-write"),
        ("Description", snap.description),
        ("iSCSI Name", snap.iqn),
        ("Connections", str(ctx.connections(snap.iqn) if snap.online else 0)),
    ]
    return Reply(("_" * 28 + " Snapshot Information " + "_" * 29, *ctx.kv(pairs)))


def _volume_table(ctx: _Ctx, vols: list[Volume]) -> list[str]:
    rows = [
        [
            v.name,
            ctx.size(v.size_mb),
            str(len(v.snapshots)),
            "online" if v.online else "offline",
            "read-only" if v.read_only else "read-write",
            str(ctx.connections(v.iqn) if v.online else 0),
            "Y" if v.thin else "N",
        ]
        for v in vols
    ]
    return table(
        ["Name", "Size", "SnapShots", "Status", "Permission", "Connections", "T"],
        [15, 10, 9, 14, 10, 11, 1],
        rows,
    )


def _volume_detail(ctx: _Ctx, v: Volume) -> list[str]:
    status = "online" if v.online else "offline"
    full = v.lun_bytes // MB
    pairs = [
        ("Name", v.name),
        ("Size", ctx.size(v.size_mb)),
        ("VolReserve", ctx.size(v.reserve_mb)),
        ("VolReserveInUse", "0MB"),
        ("ReplReserveInUse", "0MB"),
        ("iSCSI Alias", v.alias),
        ("iSCSI Name", v.iqn),
        ("ActualMembers", "1"),
        ("Snap-Warn", "10%"),
        ("Snap-Depletion", "delete-oldest"),
        ("Description", v.description),
        ("Snap-Reserve", f"{v.snap_reserve}%"),
        ("Snap-Reserve-Avail", f"{v.snap_reserve}% ({ctx.size(v.snap_reserve_mb)})"),
        ("Permission", "read-only" if v.read_only else "read-write"),
        ("DesiredStatus", status),
        ("Status", status),
        ("Connections", str(ctx.connections(v.iqn) if v.online else 0)),
        ("Snapshots", str(len(v.snapshots))),
        ("Bind", ""),
        ("Type", "not-replicated"),
        ("ReplicationReserveSpace", "0MB"),
        ("Replicas", "0"),
        ("ReplicationPartner", ""),
        ("Pool", v.pool),
        ("Thin-Provision", "enabled" if v.thin else "disabled"),
        (
            "Thin-Min-Reserve",
            f"{v.thin_min_reserve if v.thin else 0}% ({ctx.size(v.reserve_mb if v.thin else 0)})",
        ),
        (
            "Thin-Growth-Warn",
            f"{60 if v.thin else 0}% ({ctx.size(full * 60 // 100 if v.thin else 0)})",
        ),
        ("Thin-Growth-Max", f"{100 if v.thin else 0}% ({ctx.size(full if v.thin else 0)})"),
        ("MultiHostAccess", "enabled" if v.multihost else "disabled"),
    ]
    lines = ["_" * 29 + " Volume Information " + "_" * 30, *ctx.kv(pairs)]
    if v.access:
        lines.append("_" * 31 + " Access Records " + "_" * 32)
        lines.extend(_access_table(v))
    return lines


def _access_table(v: Volume) -> list[str]:
    rows = [
        [str(r.id), r.initiator, r.ipaddress, r.authmethod.value, r.username, r.apply_to.value]
        for r in v.access
    ]
    return table(
        ["ID", "Initiator", "Ipaddress", "AuthMethod", "UserName", "Apply-To"],
        [3, 29, 15, 10, 10, 8],
        rows,
    )


# -- other top-level commands --------------------------------------------------


def _show(ctx: _Ctx, w: _Words) -> Reply:
    if not w.more():
        lines = ["_" * 30 + " Group Information " + "_" * 30]
        lines += ctx.kv([("Name", ctx.san.group_name), ("Group-Ipaddress", ctx.san.group_ip)])
        lines += ["_" * 35 + " Volumes " + "_" * 35]
        lines += _volume_table(ctx, list(ctx.san.volumes.values()))
        lines += ["_" * 36 + " Pools " + "_" * 36]
        lines += _pool_table(ctx)
        return Reply(tuple(lines))
    what = w.keyword("volume", "pool")
    w.end()
    if what == "volume":
        return Reply(tuple(_volume_table(ctx, list(ctx.san.volumes.values()))))
    return Reply(tuple(_pool_table(ctx)))


def _pool_table(ctx: _Ctx) -> list[str]:
    san = ctx.san
    rows = [
        [
            p.name,
            "true" if p.default else "false",
            "1",
            str(sum(1 for v in san.volumes.values() if v.pool == p.name)),
            ctx.size(p.capacity_mb),
            ctx.size(san.pool_free_mb(p.name)),
        ]
        for p in san.pools.values()
    ]
    return table(
        ["Name", "Default", "Members", "Volumes", "Capacity", "FreeSpace"],
        [20, 7, 7, 7, 10, 10],
        rows,
    )


def _pool(ctx: _Ctx, w: _Words) -> Reply:
    sub = w.keyword("select", "show")
    if sub == "show":
        w.end()
        return Reply(tuple(_pool_table(ctx)))
    pool = ctx.san.pool(w.value())
    w.keyword("show")
    w.end()
    vols = [v for v in ctx.san.volumes.values() if v.pool == pool.name]
    reserve = sum(v.reserve_mb for v in vols)
    reported = sum(v.lun_bytes // MB for v in vols)
    pairs = [
        ("Name", pool.name),
        ("Default", "true" if pool.default else "false"),
        ("TotalCapacity", ctx.size(pool.capacity_mb)),
        ("FreeSpace", ctx.size(ctx.san.pool_free_mb(pool.name))),
        ("VolumeReserve", ctx.size(reserve)),
        ("VolumeReportedSpace", ctx.size(reported)),
        ("SnapReserve", ctx.size(sum(v.snap_reserve_mb for v in vols))),
        ("TotalVolumes", str(len(vols))),
        ("TotalSnapshots", str(sum(len(v.snapshots) for v in vols))),
    ]
    lines = ["_" * 30 + " Pool Information " + "_" * 31, *ctx.kv(pairs)]
    lines += ["_" * 35 + " Volumes " + "_" * 35, *_volume_table(ctx, vols)]
    return Reply(tuple(lines))


def _chapuser(ctx: _Ctx, w: _Words) -> Reply:
    san = ctx.san
    sub = w.keyword("create", "delete", "show", "select")
    if sub == "show" and not w.more():
        rows = [[u.name, "enable" if u.enabled else "disable"] for u in san.chap_users.values()]
        return Reply(tuple(table(["Name", "Status"], [30, 8], rows)))
    name = w.value()
    if sub == "select":
        w.keyword("show")
        sub = "show"
    if sub == "show":
        w.end()
        user = san.chap_user(name)
        return Reply(
            tuple(
                ctx.kv(
                    [
                        ("Name", user.name),
                        ("Password", user.password),
                        ("Status", "enable" if user.enabled else "disable"),
                    ]
                )
            )
        )
    if sub == "delete":
        w.end()
        san.delete_chap_user(name)
        return Reply(("CHAP user deletion succeeded.",))
    password = ""
    enabled = True
    while w.more():
        key = w.keyword("password", "enable", "disable")
        if key == "password":
            password = w.value()
        else:
            enabled = key == "enable"
    generated = not password
    if generated:
        digest = hashlib.sha256(f"{san.group_name}:{name}:{san.serial}".encode()).hexdigest()
        password = digest[:16]
    san.create_chap_user(name, password, enabled=enabled)
    return Reply((f"Password is {password}",) if generated else ())


def _grpparams(ctx: _Ctx, w: _Words) -> Reply:
    sub = w.keyword("show", "info-messages", "target-auth-username", "target-auth-password")
    if sub in ("target-auth-username", "target-auth-password"):
        # Mutual CHAP: one group-wide target account (Administrator's Guide, "Configure
        # Target Authentication"); only a group administrator may change it.
        value = w.value()
        w.end()
        _require_group_admin(ctx)
        if sub == "target-auth-username":
            ctx.san.set_target_auth(user=value)
        else:
            ctx.san.set_target_auth(password=value)
        return Reply()
    if sub == "info-messages":
        state = w.keyword("enable", "disable")
        w.end()
        ctx.san.info_messages = state == "enable"
        ctx.san.generation += 1
        return Reply()
    w.end()
    san = ctx.san
    pairs = [
        ("Name", san.group_name),
        ("Group-Ipaddress", san.group_ip),
        ("Def-Snap-Reserve", "100%"),
        ("Def-Snap-Warn", "10%"),
        ("Def-Thin-Growth-Warn", "60%"),
        ("Def-Thin-Growth-Max", "100%"),
        ("Def-Iscsi-Prefix", "iqn.2001-05.com.equallogic"),
        ("Def-Iscsi-Alias", "yes"),
        ("Info-Messages", "enabled" if san.info_messages else "disabled"),
        # The password is not shown (the rig's choice; the GUI shows both).
        ("Target-Auth-UserName", san.target_auth_user),
        ("Description", ""),
    ]
    return Reply(("_" * 30 + " Group Information " + "_" * 30, *ctx.kv(pairs)))


def _require_group_admin(ctx: _Ctx) -> None:
    acct = ctx.san.account(ctx.session.account)
    if acct.type is not AccountType.GROUP_ADMIN:
        raise CliError(
            f"Account {acct.name} is a {acct.type.value} account; log in as a group administrator."
        )


_ACCOUNT_TYPES = tuple(t.value for t in AccountType)


def _account(ctx: _Ctx, w: _Words) -> Reply:
    """``account create|delete|select NAME show|show``: local administration accounts.

    Types and what they may do follow the Administrator's Guide ("Account
    Permissions"); the grammar and wording are the rig's choice [U]: ``account create
    NAME password PW [type group-admin|pool-admin|volume-admin|read-only] [pools
    P1,P2] [enable|disable]``.
    """
    san = ctx.san
    me = san.account(ctx.session.account)
    sub = w.keyword("create", "delete", "select", "show")
    if sub == "show" and not w.more():
        if me.type is AccountType.VOLUME_ADMIN or me.type is AccountType.POOL_ADMIN:
            shown = [me]
        else:
            shown = [
                san.account(ctx.session.account),
                *(a for a in san.accounts.values() if a.name != ctx.session.account),
            ]
        rows = [[a.name, a.type.value, ",".join(a.pools), _enabled(a)] for a in shown]
        return Reply(tuple(table(["Name", "Type", "Pools", "Status"], [16, 12, 30, 8], rows)))
    name = w.value()
    if sub == "select":
        w.keyword("show")
        sub = "show"
    if sub == "show":
        w.end()
        # Everyone may look at their own account; pool and volume administrators see
        # no other account (their view of the group is limited).
        if name != me.name and me.type in (AccountType.POOL_ADMIN, AccountType.VOLUME_ADMIN):
            raise CliError(f"Account {me.name} has no permission to view account {name}.")
        if name == me.name:
            acct = me
        elif name in san.accounts:
            acct = san.accounts[name]
        else:
            raise CliError(f"Account {name} does not exist.")
        pairs = [
            ("Name", acct.name),
            ("Type", acct.type.value),
            ("Pools", ",".join(acct.pools)),
            ("Status", _enabled(acct)),
            ("Description", ""),
        ]
        return Reply(("_" * 29 + " Account Information " + "_" * 29, *ctx.kv(pairs)))
    _require_group_admin(ctx)
    if sub == "delete":
        w.end()
        san.delete_account(name)
        return Reply(("Account deletion succeeded.",))
    password = ""
    kind = AccountType.GROUP_ADMIN
    pools: tuple[str, ...] = ()
    enabled = True
    while w.more():
        key = w.keyword("password", "type", "pools", "enable", "disable")
        if key == "password":
            password = w.value()
        elif key == "type":
            kind = AccountType(w.keyword(*_ACCOUNT_TYPES))
        elif key == "pools":
            pools = tuple(p for p in w.value().split(",") if p)
        else:
            enabled = key == "enable"
    if not password:
        raise SyntaxProblem("Incomplete command; a parameter is missing.")
    san.create_account(name, password, type=kind, pools=pools, enabled=enabled)
    return Reply(("Account creation succeeded.",))


def _enabled(acct: AdminAccount) -> str:
    return "enable" if acct.enabled else "disable"


def _cli_settings(ctx: _Ctx, w: _Words) -> Reply:
    key = w.keyword("show", *_SETTINGS)
    if key == "show":
        w.end()
        s = ctx.settings
        pairs = [
            ("Confirmation", _onoff(s.confirmation)),
            ("DisplayInMB", _onoff(s.displayinMB)),
            ("Events", _onoff(s.events)),
            ("FormatOutput", _onoff(s.formatoutput)),
            ("IdleLogout", _onoff(s.idlelogout)),
            ("Paging", _onoff(s.paging)),
            ("ReprintBadInput", _onoff(s.reprintBadInput)),
        ]
        return Reply(tuple(ctx.kv(pairs)))
    value = w.keyword(*_ON_OFF)
    w.end()
    ctx.san.set_setting(ctx.session.account, _SETTINGS[key], value == "on")
    return Reply()


def _onoff(flag: bool) -> str:
    return "on" if flag else "off"


def _stty(ctx: _Ctx, w: _Words) -> Reply:
    s = ctx.session
    if not w.more():
        return Reply(
            tuple(
                ctx.kv(
                    [
                        ("Columns", str(s.columns)),
                        ("Rows", str(s.rows)),
                        ("Hardwrap", _onoff(s.hardwrap)),
                    ]
                )
            )
        )
    key = w.keyword("columns", "rows", "hardwrap")
    if key == "hardwrap":
        s.hardwrap = w.keyword(*_ON_OFF) == "on"
    else:
        n = w.integer()
        if not 10 <= n <= 1024:
            raise CliError(f"The {key} value must be between 10 and 1024.")
        if key == "columns":
            s.columns = n
            s.stty_columns = True
        else:
            s.rows = n
    w.end()
    return Reply()


def _whoami(ctx: _Ctx, w: _Words) -> Reply:
    w.end()
    return Reply((ctx.session.account,))


def _logout(ctx: _Ctx, w: _Words) -> Reply:
    w.end()
    if ctx.settings.confirmation:
        return Reply(confirm=Confirm("Do you really want to logout? (y/n) [n]", _logout_now))
    return Reply(logout=True)


def _logout_now() -> Reply:
    return Reply(logout=True)


_TOP: dict[str, Callable[[_Ctx, _Words], Reply]] = {
    "account": _account,
    "volume": _volume,
    "show": _show,
    "pool": _pool,
    "chapuser": _chapuser,
    "grpparams": _grpparams,
    "cli-settings": _cli_settings,
    "stty": _stty,
    "whoami": _whoami,
    "exit": _logout,
    "logout": _logout,
}
