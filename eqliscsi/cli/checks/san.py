"""SAN checks: the group's CLI over SSH, through the driver's own SAN client.

One CLI session serves every SAN check (:func:`san_session`): EqualLogic groups limit
concurrent CLI sessions, and a preflight should not take more than one of them.  The
session is opened with :func:`eqliscsi.san.session.open_session` on the endpoint the
driver would build (:func:`eqliscsi.opennebula.san_link.endpoint_for`), so a host-key,
password or dialect problem shows up here exactly as the driver would meet it.
"""

# Checks read a few small local files; blocking the loop for that is harmless.
# ruff: noqa: ASYNC240

from __future__ import annotations

import asyncio
import ipaddress
import secrets
import socket
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from eqliscsi.cli.checks.base import (
    Check,
    Context,
    Finding,
    Section,
    Severity,
    failed,
    passed,
    skipped,
    warned,
)
from eqliscsi.cli.checks.inputs import Options
from eqliscsi.errors import EqliscsiError
from eqliscsi.opennebula.config import EqlConfig
from eqliscsi.opennebula.naming import volume_from_source
from eqliscsi.opennebula.san_link import endpoint_for
from eqliscsi.san import commands as c
from eqliscsi.san.errors import (
    SanAuthError,
    SanCommandError,
    SanConnectionError,
    SanHostKeyError,
    SanObjectMissing,
    SanProtocolError,
    SanTimeout,
)
from eqliscsi.san.ops import SanOps, VolumeSpec, tag_owner
from eqliscsi.san.parsers import (
    AccountInfo,
    AccountType,
    PoolCapacity,
    VolumeInfo,
    parse_account,
    parse_tables,
)

if TYPE_CHECKING:
    from eqliscsi.san.session import CliSession

__all__ = [
    "CHECKS",
    "SanFacts",
    "VolumeFacts",
    "VolumeList",
    "config_of",
    "owned_volumes",
    "san_facts",
    "san_session",
    "san_volumes",
]

# A listing of more volumes than this is counted, but only this many are inspected;
# each inspection is one CLI round trip on the shared session.
MAX_VOLUMES_INSPECTED = 256
PROBE_VOLUME_MB = 15  # the array's allocation unit: the smallest volume it makes


@dataclass(frozen=True, eq=False, repr=False)
class VolumeList(c.Command):
    """``volume show``: the table of every volume (Name, Size, SnapShots, Status, ...)."""

    def words(self) -> tuple[str, ...]:
        return ("volume", "show")


@dataclass(frozen=True, slots=True)
class SanFacts:
    """What the quick SAN checks read: the prompt, grpparams, the pool."""

    group: str | None
    group_ip: str | None
    pool: PoolCapacity | None  # None: the pool does not exist
    write_probe: str | None  # None: not attempted; "" ok; else the error
    account: AccountInfo | str  # the account's type and pools, or why it is not known


@dataclass(frozen=True, slots=True)
class VolumeFacts:
    """Every volume's details (one CLI round trip each): slower, read separately."""

    volumes: tuple[VolumeInfo, ...]
    count: int


def config_of(ctx: Context) -> EqlConfig | None:
    opts: Options = ctx.options
    resolved = opts.config.resolved
    if resolved is None:
        return None
    cfg = resolved.config
    # Without an address, account and password nothing remote can be checked; fe.conf
    # names what is missing.
    if not (cfg.host and cfg.user and cfg.password is not None):
        return None
    return cfg


def _no_config() -> Finding:
    return skipped("the configuration is unusable (see fe.conf)")


async def _open(ctx: Context, cfg: EqlConfig) -> CliSession:
    """The run's one CLI session; it stays open until the run's context closes."""
    from eqliscsi.san.session import open_session  # noqa: PLC0415 - asyncssh is heavy

    opts: Options = ctx.options
    endpoint = replace(
        endpoint_for(cfg), connect_timeout=opts.san_timeout, command_timeout=opts.san_timeout
    )
    return await ctx.exit_stack.enter_async_context(open_session(endpoint))


def _ops(ctx: Context, session: CliSession) -> SanOps:
    opts: Options = ctx.options
    return SanOps(session, opts.datastore_id if opts.datastore_id is not None else 0)


async def _collect(ctx: Context, cfg: EqlConfig) -> SanFacts:
    session = await san_session(ctx)
    ops = _ops(ctx, session)
    params = await ops.group_ip()
    try:
        pool: PoolCapacity | None = await ops.pool_capacity(cfg.pool)
    except SanObjectMissing:
        pool = None
    account = await _account(session, cfg)
    probe: str | None = None
    opts: Options = ctx.options
    if opts.write_probe and pool is not None:
        probe = await _write_probe(ops, cfg)
    return SanFacts(
        group=session.group, group_ip=params, pool=pool, write_probe=probe, account=account
    )


async def _account(session: CliSession, cfg: EqlConfig) -> AccountInfo | str:
    """What the logged-in account may do, read without changing anything.

    ``account select <EQL_USER> show`` gives the account's type and pools; the types
    and their rights are the Administrator's Guide's ("Account Permissions"), the
    command form and keys are unverified [U].  A refusal or an unreadable answer is
    reported, not guessed over.
    """
    try:
        res = await session.run(c.AccountShow(cfg.user))
        return parse_account(res.lines)
    except (SanCommandError, SanProtocolError) as exc:
        return exc.message


async def _collect_volumes(ctx: Context) -> VolumeFacts:
    session = await san_session(ctx)
    ops = _ops(ctx, session)
    listing = await session.run(VolumeList())
    names: list[str] = []
    for table in parse_tables(listing.lines):
        if table.headers and table.headers[0].lower() == "name":
            names = [row[0] for row in table.rows if row and row[0]]
            break
    infos = []
    for name in names[:MAX_VOLUMES_INSPECTED]:
        info = await ops.volume_info(name)
        if info is not None:
            infos.append(info)
    return VolumeFacts(tuple(infos), len(names))


async def _write_probe(ops: SanOps, cfg: EqlConfig) -> str:
    """Create and delete one smallest volume: the only sure test of the account's rights."""
    name = f"eqliscsi-preflight-{secrets.token_hex(4)}"
    try:
        await ops.create_volume(VolumeSpec(name, PROBE_VOLUME_MB, pool=cfg.pool, access=()))
    except EqliscsiError as exc:
        return exc.message
    try:
        await ops.delete_volume(name)
    except EqliscsiError as exc:
        return f"created {name} but could not delete it ({exc.message})"
    return ""


async def san_session(ctx: Context) -> CliSession:
    cfg = config_of(ctx)
    assert cfg is not None
    return await ctx.shared("session", lambda: _open(ctx, cfg))


async def san_facts(ctx: Context) -> SanFacts:
    cfg = config_of(ctx)
    assert cfg is not None
    return await ctx.shared("san", lambda: _collect(ctx, cfg))


async def san_volumes(ctx: Context) -> VolumeFacts:
    return await ctx.shared("volumes", lambda: _collect_volumes(ctx))


async def _facts_or_finding(ctx: Context) -> SanFacts | Finding:
    cfg = config_of(ctx)
    if cfg is None:
        return _no_config()
    try:
        return await san_facts(ctx)
    except EqliscsiError:
        return skipped("the SAN session could not be opened (see san.login)")


async def _volumes_or_finding(ctx: Context) -> VolumeFacts | Finding:
    if config_of(ctx) is None:
        return _no_config()
    try:
        return await san_volumes(ctx)
    except EqliscsiError:
        return skipped("the volumes could not be read (see san.login)")


def owned_volumes(facts: VolumeFacts, datastore_id: int | None) -> list[VolumeInfo]:
    """Volumes carrying an eqliscsi tag (of ``datastore_id`` when given)."""
    out = []
    for v in facts.volumes:
        owner = tag_owner(v.description)
        if owner is not None and (datastore_id is None or owner == datastore_id):
            out.append(v)
    return out


# --- checks ---------------------------------------------------------------------------


async def check_tcp(ctx: Context, _: str) -> Finding:
    cfg = config_of(ctx)
    if cfg is None or not cfg.host:
        return _no_config()
    try:
        async with asyncio.timeout(5.0):
            _r, writer = await asyncio.open_connection(cfg.host, cfg.ssh_port)
    except TimeoutError:
        return failed(
            f"{cfg.host}:{cfg.ssh_port} did not answer within 5 s",
            "Check EQL_HOST and that a firewall lets the front-end reach the group's SSH port.",
        )
    except (OSError, socket.gaierror) as exc:
        return failed(
            f"{cfg.host}:{cfg.ssh_port} refused or unreachable ({exc.strerror or exc})",
            "Check EQL_HOST, EQL_SSH_PORT and that SSH is enabled on the group.",
        )
    writer.close()
    await writer.wait_closed()
    return passed(f"{cfg.host}:{cfg.ssh_port} accepts TCP connections")


async def check_host_key(ctx: Context, _: str) -> Finding:
    import asyncssh  # noqa: PLC0415

    cfg = config_of(ctx)
    if cfg is None or not cfg.host:
        return _no_config()
    try:
        key = await asyncssh.get_server_host_key(cfg.host, cfg.ssh_port, config=None)
    except (OSError, asyncssh.Error) as exc:
        return skipped(f"the group's SSH server could not be asked ({type(exc).__name__})")
    if key is None:
        return skipped("the group's SSH server sent no host key")
    fingerprint = key.get_fingerprint("sha256")
    if cfg.host_fingerprint:
        if cfg.host_fingerprint == fingerprint:
            return passed(f"host key {fingerprint} matches EQL_HOST_FINGERPRINT")
        return failed(
            f"the group's host key is {fingerprint}, not EQL_HOST_FINGERPRINT",
            "Verify the key on the array's console, then correct EQL_HOST_FINGERPRINT.",
        )
    path = Path(cfg.known_hosts) if cfg.known_hosts else Path("~/.ssh/known_hosts").expanduser()
    known: list[object] = []
    if path.is_file():
        try:
            known = list(asyncssh.read_known_hosts(str(path)).match(cfg.host, "", cfg.ssh_port)[0])
        except (OSError, ValueError, asyncssh.Error):
            return failed(f"{path} cannot be parsed", "Fix or recreate the known_hosts file.")
    public = key.public_data
    if any(getattr(k, "public_data", None) == public for k in known):
        return passed(f"host key {fingerprint} is in {path}")
    if known:
        return failed(
            f"{path} holds another key for {cfg.host}; the group now shows {fingerprint}",
            "Verify the key on the array's console; replace the old line only if it matches.",
        )
    return failed(
        f"host key unknown; the group shows {fingerprint}",
        f"Verify {fingerprint} on the array's console, then set EQL_HOST_FINGERPRINT to it "
        f"or add the key to {path}.",
    )


async def check_login(ctx: Context, _: str) -> Finding:
    cfg = config_of(ctx)
    if cfg is None:
        return _no_config()
    try:
        facts = await san_facts(ctx)
    except SanHostKeyError:
        return skipped("the host key is not trusted, so no login was tried (see san.host-key)")
    except SanAuthError:
        return failed(
            f"the group refused the login of {cfg.user}",
            "Check EQL_USER and the password in EQL_PASS_FILE against the group's account.",
        )
    except SanTimeout as exc:
        return failed(exc.message, "Check that the group's management address answers SSH.")
    except SanConnectionError as exc:
        return failed(exc.message, exc.hint or "Check EQL_HOST, EQL_SSH_PORT and the network.")
    return passed(f"{cfg.user} logged in to group {facts.group or '?'}")


async def check_dialect(ctx: Context, _: str) -> Finding:
    facts = await _facts_or_finding(ctx)
    if isinstance(facts, Finding):
        return facts
    if facts.group is None:
        return failed(
            "the CLI prompt did not name a group",
            "Check that EQL_HOST is the group's management address, not a member or switch.",
        )
    return passed(f"Group Manager CLI of {facts.group}: prompt, grpparams and volume table read")


async def check_pool(ctx: Context, _: str) -> Finding:
    facts = await _facts_or_finding(ctx)
    if isinstance(facts, Finding):
        return facts
    cfg = config_of(ctx)
    assert cfg is not None
    opts: Options = ctx.options
    if facts.pool is None:
        return failed(
            f"pool {cfg.pool} does not exist",
            "Set EQL_POOL to a pool that 'show pool' lists on the group.",
        )
    cap = facts.pool
    pct = 100.0 * cap.free_mb / cap.total_mb if cap.total_mb else 0.0
    found = f"pool {cfg.pool}: {cap.free_mb} MB free of {cap.total_mb} MB ({pct:.1f}%)"
    if pct < opts.min_free_pct:
        return warned(
            found,
            f"Free space in pool {cfg.pool} or add members before it falls further "
            f"(threshold {opts.min_free_pct:g}%).",
        )
    return passed(found)


async def check_create_permission(ctx: Context, _: str) -> Finding:
    facts = await _facts_or_finding(ctx)
    if isinstance(facts, Finding):
        return facts
    cfg = config_of(ctx)
    assert cfg is not None
    opts: Options = ctx.options
    if facts.pool is None:
        return skipped("the pool does not exist (see san.pool)")
    if opts.write_probe:
        # The stronger test: the array itself says yes or no.
        if facts.write_probe:
            return failed(
                f"creating a volume in pool {cfg.pool} failed: {facts.write_probe}",
                f"Make {cfg.user} a pool administrator of pool {cfg.pool} (or a group "
                "administrator) on the group.",
            )
        return passed("a 15 MB probe volume was created and deleted")
    return _account_finding(facts.account, cfg)


_KIND = {
    AccountType.GROUP_ADMIN: "a group administrator",
    AccountType.POOL_ADMIN: "a pool administrator",
    AccountType.VOLUME_ADMIN: "a volume administrator",
    AccountType.READ_ONLY: "a read-only account",
}


def _account_finding(account: AccountInfo | str, cfg: EqlConfig) -> Finding:
    """Judge the account's type against EQL_POOL (Administrator's Guide, "Account
    Permissions": group administrators manage everything, pool administrators the
    volumes of their pools, volume administrators create volumes in their pools
    within a quota, read-only accounts change nothing)."""
    probe_fix = "Pass --write-probe to test that the account may create volumes."
    if isinstance(account, str):
        return skipped(f"the group did not show account {cfg.user} ({account})", probe_fix)
    if account.type is None:
        return skipped(
            f"account {cfg.user} has type {account.type_text!r}, which preflight does not know",
            probe_fix,
        )
    kind = _KIND[account.type]
    if account.type is AccountType.GROUP_ADMIN:
        return passed(f"{cfg.user} is {kind}, so it may create volumes in pool {cfg.pool}")
    if account.type is AccountType.READ_ONLY:
        return failed(
            f"{cfg.user} is {kind}, which cannot create volumes",
            f"Make {cfg.user} a pool administrator of pool {cfg.pool} (or a group "
            "administrator) on the group, or set EQL_USER to such an account.",
        )
    if cfg.pool in account.pools:
        quota = " within its quota" if account.type is AccountType.VOLUME_ADMIN else ""
        return passed(f"{cfg.user} is {kind} of pool {cfg.pool}, so it may create volumes{quota}")
    has = ", ".join(account.pools) or "no pool"
    return failed(
        f"{cfg.user} is {kind} of {has}, not of pool {cfg.pool}",
        f"Add pool {cfg.pool} to the pools of account {cfg.user} on the group, or set "
        "EQL_POOL to one of its pools.",
    )


async def check_group_ip(ctx: Context, _: str) -> Finding:
    facts = await _facts_or_finding(ctx)
    if isinstance(facts, Finding):
        return facts
    cfg = config_of(ctx)
    assert cfg is not None
    portal = cfg.discovery_portal.rsplit(":", 1)[0].strip("[]")
    if facts.group_ip is None:
        return failed("grpparams show has no Group-Ipaddress", "Report the array's output.")
    if _same_address(facts.group_ip, portal):
        return passed(f"group IP {facts.group_ip} is the configured iSCSI portal")
    return failed(
        f"the group IP is {facts.group_ip}, but the driver discovers at {portal}",
        f"Set EQL_PORTAL to {facts.group_ip} (or correct EQL_HOST).",
    )


def _same_address(a: str, b: str) -> bool:
    try:
        return ipaddress.ip_address(a) == ipaddress.ip_address(b)
    except ValueError:
        return a.lower() == b.lower()


async def check_owned_volumes(ctx: Context, _: str) -> Finding:
    facts = await _volumes_or_finding(ctx)
    if isinstance(facts, Finding):
        return facts
    opts: Options = ctx.options
    owned = owned_volumes(facts, opts.datastore_id)
    whose = f"datastore {opts.datastore_id}" if opts.datastore_id is not None else "eqliscsi"
    found = f"{len(owned)} {whose} volume(s) of {facts.count} on the group"
    if facts.count > MAX_VOLUMES_INSPECTED:
        found += f" (first {MAX_VOLUMES_INSPECTED} inspected)"
    if opts.image_sources is None or opts.datastore_id is None:
        return passed(found + "; orphans not counted (oned not reachable or no --datastore)")
    orphans = orphan_volumes(owned, opts.image_sources)
    if orphans:
        return warned(
            f"{found}; {len(orphans)} orphan(s) no image refers to, e.g. {orphans[0]}",
            "Check the orphans with 'oneimage list' and delete those no image needs.",
        )
    return passed(found + "; no orphans")


def orphan_volumes(owned: list[VolumeInfo], image_sources: tuple[str, ...]) -> list[str]:
    """Owned volumes that no image SOURCE names.

    SOURCE is read back with the driver's own :func:`volume_from_source` (bare name,
    ``host:vol`` or ``host:<IQN>``).  A VM's non-persistent disk is named
    ``<source>-<VMID>-<DISKID>`` (``eqliscsi.opennebula.naming``), so a volume whose
    name starts with a referenced name plus ``-`` is not an orphan either.
    """
    refs: set[str] = set()
    for raw in image_sources:
        try:
            refs.add(volume_from_source(raw.strip()))
        except EqliscsiError:
            continue  # not one of ours (another driver's SOURCE)
    out = []
    for v in owned:
        if v.name in refs or any(v.name.startswith(r + "-") for r in refs):
            continue
        out.append(v.name)
    return sorted(out)


def _check(cid: str, title: str, fn: object, timeout: float = 45.0) -> Check:
    return Check(cid, Section.SAN, Severity.ERROR, timeout, title, fn)  # type: ignore[arg-type]


CHECKS = (
    _check("san.tcp", "group reachable over TCP", check_tcp, 10.0),
    _check("san.host-key", "SSH host key known", check_host_key, 20.0),
    _check("san.login", "SSH login", check_login),
    _check("san.cli-dialect", "Group Manager CLI recognized", check_dialect),
    _check("san.pool", "pool exists, free space", check_pool),
    _check("san.create-permission", "account may create volumes", check_create_permission),
    _check("san.group-ip", "group IP is the iSCSI portal", check_group_ip),
    Check(
        "san.owned-volumes",
        Section.SAN,
        Severity.WARNING,
        45.0,
        "eqliscsi volumes and orphans",
        check_owned_volumes,
    ),
)
