"""Transfer-manager actions: VM disks on EqualLogic volumes, attached on hypervisor hosts.

What each action does (reference §1.8 for the original, §2.4 and §6.2-§6.3 for oned):

* ``clone`` (non-persistent image): array-side clone of the image's volume into
  ``<source>-<VMID>-<DISKID>`` (:func:`~eqliscsi.opennebula.naming.vm_disk_volume_name`),
  grown to DISK/SIZE when that is larger, then host login and ``disk.N`` link.  Any
  failure after the clone logs out and deletes the clone again, so nothing is left
  for a retry to trip over.
* ``ln`` (persistent image): host login to the image's own volume and link.
* ``mv``: log out on the old host, log in on the new one (hosts in ``NO_ISCSI``,
  such as the front-end during stop/undeploy, are skipped); a directory is the
  system TM's business.
* ``mvds``: log out; for a deferred save-as (≤ 4.x) clone into the new SOURCE and
  drop a non-persistent volume.
* ``cpds``: array-side clone of the disk (or of snapshot SNAP_ID) into the new SOURCE
  while the VM runs (crash-consistent, as the original).
* ``delete``: log out, remove ``disk.N``, delete a non-persistent clone.  A session
  that is already gone is success.
* ``premigrate``/``postmigrate``/``failmigrate`` (5.x+ through ``migrate_other``,
  4.4 through a dispatcher): for every disk whose TM_MAD is eqliscsi, log in on the
  destination / log out on the source / log out on the destination.

Before a host is touched, the front-end checks with the native client that the
target answers at the group portal and accepts the CHAP credentials; a host-side
iscsiadm failure would only say "authentication failure" without the volume.
delete, postmigrate, failmigrate and premigrate (on the destination) also sweep the
host for stale sessions (:func:`sweep_stale`): sessions to eqliscsi-named EqualLogic
volumes that nothing on that host uses any more, such as the destination login of a
failed migration that no stock system TM reports (§6.3).
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable
from dataclasses import dataclass

from eqliscsi.errors import DriverError, EqliscsiError, IscsiError
from eqliscsi.opennebula import iscsiadm as ia
from eqliscsi.opennebula.args import HostPath, MigrateCall, TmCall
from eqliscsi.opennebula.config import EqlConfig, load_conf, resolve
from eqliscsi.opennebula.driver_action import Vm, VmDisk, parse_datastore, parse_vm
from eqliscsi.opennebula.errors import BadValueError
from eqliscsi.opennebula.naming import (
    check_volume_name,
    snapshot_name,
    vm_disk_volume_name,
    volume_from_source,
)
from eqliscsi.opennebula.one_cli import datastore_document, vm_document
from eqliscsi.opennebula.output import NoOutput
from eqliscsi.opennebula.runner import ActionContext, conf_file
from eqliscsi.opennebula.san_link import run_san, volume_spec
from eqliscsi.opennebula.tm_host import (
    SWEEP_KEPT,
    HostRunner,
    SshRunner,
    attach_script,
    check_attach,
    check_detach,
    detach_script,
    device_path,
    inventory_script,
    parse_inventory,
)
from eqliscsi.san.ops import SanOps

TYPE_CHECKING = False  # not typing's: importing typing costs a remote ~3 ms (docs/performance.md)

if TYPE_CHECKING:
    import logging

# asyncio and the native iSCSI client (construct, ssl) are imported by check_target, and
# logging by _syslog: delete, mvds, resize and the snapshot actions use neither, and
# every remote pays its imports on each oned call (docs/performance.md).

__all__ = [
    "TM_ACTIONS",
    "ChapRejectedError",
    "TargetUnavailableError",
    "clone",
    "cpds",
    "delete",
    "disk_volume",
    "failmigrate",
    "ln",
    "mv",
    "mvds",
    "postmigrate",
    "premigrate",
    "resize",
    "snap_create",
    "snap_delete",
    "snap_revert",
]

TM_MAD = "eqliscsi"
HOST_TIMEOUT_S = 300.0
PROBE_TIMEOUT_S = 15.0
# Volume names eqliscsi makes (naming.py): "<name>.<image id>" for images and
# "<…>-<vmid>-<diskid>" for VM clones.  The stale sweep touches nothing else, so a
# session an admin opened to some other EqualLogic volume is left alone.
OUR_VOLUME_RE = re.compile(r"^[a-z0-9][a-z0-9.\-]*\.[0-9]+(?:-[0-9a-f]{8})?(?:-[0-9]+-[0-9]+)?$")

TM_ACTIONS: dict[str, tuple[str, str]] = {
    f"tm.{name}": ("eqliscsi.opennebula.actions.tm", name)
    for name in (
        "clone",
        "ln",
        "mv",
        "mvds",
        "cpds",
        "delete",
        "premigrate",
        "postmigrate",
        "failmigrate",
        "resize",
        "snap_create",
        "snap_delete",
        "snap_revert",
    )
}

# Tests replace this to run host scripts through another transport.
host_runner_factory: Callable[[ActionContext], HostRunner] = lambda ctx: SshRunner(ctx.environ)  # noqa: E731


class ChapRejectedError(DriverError):
    reference = "tm-chap-rejected"


class TargetUnavailableError(DriverError):
    reference = "tm-target-unavailable"


# --------------------------------------------------------------------------- helpers


@dataclass
class _Env:
    """What every TM action works with: its context, config, hosts and the group portal."""

    ctx: ActionContext
    cfg: EqlConfig
    hosts: HostRunner
    portal: ia.TargetPortal
    chap: ia.ChapCredentials | None

    def node(self, iqn: str) -> ia.Node:
        return ia.Node(iqn, self.portal, self.cfg.iface)

    def wants_iscsi(self, host: str) -> bool:
        return host not in self.cfg.no_iscsi


def _config(ctx: ActionContext, ds_id: int) -> EqlConfig:
    """eqliscsi.conf, then the template of datastore ``ds_id`` (``onedatastore show``):
    a TM action gets no driver document, so it asks oned like the original (§1.8)."""
    ds = parse_datastore(datastore_document(ds_id, ctx.environ))
    resolved = resolve(load_conf(conf_file(ctx)), ds.template)
    for notice in resolved.notices:
        ctx.info(notice)
    for secret in resolved.config.secrets():
        if secret is not None:
            ctx.secrets.append(secret.reveal())
    return resolved.config


def _env(ctx: ActionContext, ds_id: int) -> _Env:
    cfg = _config(ctx, ds_id)
    host, _, port = cfg.discovery_portal.rpartition(":")
    portal = ia.TargetPortal(host.strip("[]"), int(port))
    chap = None
    if cfg.chap_user:
        if cfg.chap_secret is None:
            raise BadValueError("EQL_CHAP_USER is set without EQL_CHAP_SECRET_FILE; set both.")
        chap = ia.ChapCredentials(
            cfg.chap_user,
            cfg.chap_secret,
            cfg.chap_target_user if cfg.mutual_chap else "",
            cfg.chap_target_secret if cfg.mutual_chap else None,
        )
    return _Env(ctx, cfg, host_runner_factory(ctx), portal, chap)


def _tm(ctx: ActionContext) -> TmCall:
    assert isinstance(ctx.call, TmCall)
    return ctx.call


def _disk_id(path: HostPath) -> int:
    disk_id = path.disk_id
    if disk_id is None:
        raise BadValueError(
            f"The path {path.path[:80]} does not end in disk.N; oned never sends that."
        )
    return disk_id


def _check_in_vm_dir(path: HostPath, vm_id: int) -> None:
    # <system datastore>/<sysds id>/<vmid>/disk.N: the disk must sit in its VM's own
    # directory, so a crafted path cannot make us link or remove files elsewhere.
    parts = path.path.rsplit("/", 3)
    if len(parts) != 4 or parts[2] != str(vm_id) or not parts[1].isdigit():
        raise BadValueError(
            f"The disk path {path.path[:80]} is not inside VM {vm_id}'s directory; "
            "oned never sends such a path."
        )


def _datastores_dir(vm_dir: str) -> str:
    # <base>/<sysds>/<vmid>
    return vm_dir.rsplit("/", 2)[0] or "/"


def _vm(ctx: ActionContext) -> Vm:
    if isinstance(ctx.call, MigrateCall):
        return parse_vm(ctx.call.vm_document)
    assert isinstance(ctx.call, TmCall)
    vm = parse_vm(vm_document(ctx.call.vm_id, ctx.environ))
    if vm.id != ctx.call.vm_id:
        raise BadValueError(f"onevm show {ctx.call.vm_id} returned VM {vm.id}; retry the action.")
    return vm


def _disk_volume(disk: VmDisk, vm_id: int) -> str:
    source = volume_from_source(disk.source)
    if disk.persistent or not disk.clone:
        return source
    return vm_disk_volume_name(source, vm_id, disk.disk_id)


def _disk_ds(disk: VmDisk, fallback: int) -> int:
    return disk.datastore_id if disk.datastore_id is not None else fallback


def _iqn(env: _Env, ds_id: int, volume: str) -> str:
    async def op(ops: SanOps) -> str:
        return await ops.volume_iqn(volume)

    return run_san(env.cfg, ds_id, env.ctx.environ, op)


def check_target(env: _Env, iqn: str, volume: str) -> None:
    """SendTargets and a login at the group portal with the native client, host CHAP.

    The hosts do the same two steps (discovery, then login); doing them here first
    turns iscsiadm's bare statuses into a sentence that names the volume.  Discovery
    goes without CHAP (EqualLogic's discovery CHAP is off unless configured); when
    the group asks for it, or the front-end is not admitted by the volume's access
    rule, the corresponding part of the check is skipped with a log line.

    Raises:
        ChapRejectedError: the target refused the CHAP credentials.
        TargetUnavailableError: the portal is unreachable, or does not offer the target.
    """
    import asyncio  # noqa: PLC0415 - see the note after the imports

    from eqliscsi.iscsi_discovery import (  # noqa: PLC0415
        Auth,
        AuthenticationFailed,
        AuthorizationFailed,
        IscsiConnectionError,
        IscsiTimeout,
        TargetNotFound,
        discover,
        probe,
    )
    from eqliscsi.iscsi_discovery import ChapCredentials as ProbeChap  # noqa: PLC0415

    auth = Auth()
    if env.chap is not None:
        auth = Auth(chap=ProbeChap(env.chap.username, env.chap.secret))
    portal = str(env.portal)

    async def listed() -> bool | None:
        try:
            found = await discover(portal, timeout=PROBE_TIMEOUT_S)
        except (AuthenticationFailed, AuthorizationFailed):
            return None  # discovery CHAP or ACL: the hosts' discovery is configured apart
        return iqn in {t.name for t in found}

    async def go() -> bool | None:
        seen = await listed()
        await probe(portal, iqn, auth=auth, timeout=PROBE_TIMEOUT_S, lun=None)
        return seen

    try:
        seen = asyncio.run(go())
    except AuthenticationFailed:
        raise ChapRejectedError(
            f"CHAP rejected for volume {volume}; make EQL_CHAP_USER and its secret match "
            "the volume's access rule and the group's CHAP account."
        ) from None
    except AuthorizationFailed:
        # The access rule admits the hosts but not the front-end: nothing to judge here.
        env.ctx.info(f"the front-end is not admitted to volume {volume}; skipped the check")
        return
    except TargetNotFound:
        raise TargetUnavailableError(
            f"Volume {volume} is not offered at the group portal {env.portal}; check that "
            "it is online on the group."
        ) from None
    except (IscsiConnectionError, IscsiTimeout):
        raise TargetUnavailableError(
            f"The group portal {env.portal} did not answer for volume {volume}; check "
            "EQL_PORTAL and the iSCSI network."
        ) from None
    except IscsiError as exc:
        raise TargetUnavailableError(
            f"Checking volume {volume} at {env.portal} failed ({exc}); fix that before "
            "hosts log in."
        ) from None
    if seen is None:
        env.ctx.info(f"discovery at {env.portal} needs credentials; checked the login only")
    elif not seen:
        raise TargetUnavailableError(
            f"Volume {volume} answers a login but is not listed by discovery at "
            f"{env.portal}, so hosts will not find it; check its access rules."
        )


def attach(
    env: _Env, host: str, iqn: str, volume: str, link: str | None, *, keep_link: bool = False
) -> None:
    script, text = attach_script(
        env.node(iqn),
        volume=volume,
        base_device=env.cfg.base_device,
        wait_s=env.cfg.wait_time,
        link=link,
        chap=env.chap,
        make_link_only_if_missing=keep_link,
        helper=env.cfg.node_auth_helper,
    )
    env.ctx.debug(f"{host}: {text}")
    result = env.hosts.run(host, script, timeout=HOST_TIMEOUT_S)
    ops = (ia.Op.LOCK, ia.Op.DISCOVERY, *((ia.Op.AUTH,) if env.chap else ()), ia.Op.LOGIN)
    check_attach(result, ops, host=host, volume=volume, wait_s=env.cfg.wait_time,
                 base_device=env.cfg.base_device)  # fmt: skip
    env.ctx.info(f"{volume} attached on {host}" + (f" as {link}" if link else ""))


def detach(env: _Env, host: str, iqn: str, volume: str, link: str | None) -> None:
    script, text = detach_script(
        env.node(iqn), volume=volume, base_device=env.cfg.base_device, link=link
    )
    env.ctx.debug(f"{host}: {text}")
    check_detach(env.hosts.run(host, script, timeout=HOST_TIMEOUT_S), host=host, volume=volume)
    env.ctx.info(f"{volume} detached from {host}")


# A sweep asks oned about at most this many VMs (one `onevm show` each); sessions it
# could not judge stay, and the next sweep looks again.
MAX_ONEVM_QUERIES = 16


def _vm_id_of(link: str) -> int | None:
    # <datastores>/<sysds>/<vmid>/disk.N
    parts = link.rsplit("/", 2)
    return int(parts[1]) if len(parts) == 3 and parts[1].isdigit() else None


def sweep_stale(
    env: _Env, host: str, datastores: str, *, keep: frozenset[str] = frozenset()
) -> list[str]:
    """Log out sessions to eqliscsi volumes that nothing on ``host`` uses; best effort.

    A session to one of our volumes (``OUR_VOLUME_RE``; ``keep`` excepted) is stale
    on ``host`` when no process there holds its device open and either

    * no ``disk.N`` under the host's system datastores links to its device, or
    * every VM whose ``disk.N`` links to it is, by oned's account (``onevm show``,
      :meth:`Vm.hosts_in_use`), on other hosts.  On a shared system datastore every
      host sees every VM's links, so links alone cannot tell the leaked destination
      login of a failed migration (no stock system TM calls failmigrate, §6.3) from
      the source's live one; oned can.  A VM oned cannot answer for keeps its session.

    The logout re-checks, under the host lock, that no other link and no open
    file handle appeared meanwhile.
    """
    try:
        inv = parse_inventory(
            env.hosts.run(
                host, inventory_script(datastores, env.cfg.base_device), timeout=HOST_TIMEOUT_S
            ).stdout
        )
    except EqliscsiError as exc:
        env.ctx.info(f"stale-session check on {host} skipped: {exc}")
        return []
    placements: dict[int, frozenset[str] | None] = {}

    def elsewhere(vm_id: int) -> bool:
        if vm_id not in placements:
            if len(placements) >= MAX_ONEVM_QUERIES:
                return False
            try:
                placements[vm_id] = parse_vm(vm_document(vm_id, env.ctx.environ)).hosts_in_use()
            except EqliscsiError as exc:
                env.ctx.debug(f"stale-session check: no placement for VM {vm_id}: {exc}")
                placements[vm_id] = None
        hosts = placements[vm_id]
        return hosts is not None and host not in hosts

    done = []
    for volume, iqn in inv.ours(OUR_VOLUME_RE):
        if volume in keep:
            continue
        dev = device_path(env.cfg.base_device, volume)
        if inv.is_open(dev):
            continue
        users = inv.linked_from(dev)
        vm_ids = {_vm_id_of(p) for p in users}
        if users and (None in vm_ids or not all(elsewhere(v) for v in vm_ids if v is not None)):
            continue
        why = (
            "no disk links it"
            if not users
            else "oned places VM "
            + ", ".join(str(v) for v in sorted(i for i in vm_ids if i is not None))
            + " on another host"
        )
        try:
            script, _ = detach_script(
                env.node(iqn),
                volume=volume,
                base_device=env.cfg.base_device,
                link=None,
                unless_linked_under=datastores,
                judged_links=users,
            )
            result = env.hosts.run(host, script, timeout=HOST_TIMEOUT_S)
            check_detach(result, host=host, volume=volume)
        except EqliscsiError as exc:
            env.ctx.info(f"stale session to {volume} on {host} could not be closed: {exc}")
            continue
        if SWEEP_KEPT in result.stdout:
            env.ctx.info(f"session to {volume} on {host} came into use meanwhile; kept")
            continue
        env.ctx.info(f"closed stale session to {volume} on {host} ({why})")
        done.append(volume)
    return done


def _delete_volume(env: _Env, ds_id: int, volume: str) -> bool:
    async def op(ops: SanOps) -> bool:
        return await ops.delete_volume(volume)

    return run_san(env.cfg, ds_id, env.ctx.environ, op)


# --------------------------------------------------------------------------- actions


def clone(ctx: ActionContext) -> NoOutput:
    call = _tm(ctx)
    assert call.src is not None
    disk_id = _disk_id(call.dst)
    _check_in_vm_dir(call.dst, call.vm_id)
    source = volume_from_source(call.src.path)
    vm = _vm(ctx)
    disk = vm.disk(disk_id)
    ds_id = _disk_ds(disk, call.ds_id)
    env = _env(ctx, ds_id)
    target = vm_disk_volume_name(source, call.vm_id, disk_id)
    wanted = disk.size_mb or 0

    async def make(ops: SanOps) -> str:
        info = await ops.volume_info(source)
        base = info.size_mb if info is not None else wanted
        spec = volume_spec(env.cfg, target, max(base, wanted, 1))
        return (await ops.clone_volume(source, spec)).iqn

    iqn = run_san(env.cfg, ds_id, ctx.environ, make)
    ctx.info(f"cloned {source} into {target}")
    try:
        check_target(env, iqn, target)
        attach(env, call.dst.host, iqn, target, call.dst.path)
    except BaseException as exc:
        # Leave nothing behind: the host session (if any) and the clone.
        with contextlib.suppress(EqliscsiError):
            detach(env, call.dst.host, iqn, target, call.dst.path)
        try:
            _delete_volume(env, ds_id, target)
            ctx.info(f"deleted {target} again after the failed attach")
        except EqliscsiError as undo:
            if isinstance(exc, Exception):
                exc.add_note(f"volume {target} could not be deleted: {undo}")
        raise
    return NoOutput()


def ln(ctx: ActionContext) -> NoOutput:
    call = _tm(ctx)
    assert call.src is not None
    _disk_id(call.dst)
    _check_in_vm_dir(call.dst, call.vm_id)
    volume = volume_from_source(call.src.path)
    ds_id = _disk_ds(_vm(ctx).disk(_disk_id(call.dst)), call.ds_id)
    env = _env(ctx, ds_id)
    iqn = _iqn(env, ds_id, volume)
    check_target(env, iqn, volume)
    attach(env, call.dst.host, iqn, volume, call.dst.path)
    return NoOutput()


def mv(ctx: ActionContext) -> NoOutput:
    call = _tm(ctx)
    assert call.src is not None
    src, dst = call.src, call.dst
    if dst.disk_id is None or src.disk_id is None:
        ctx.info("a VM directory moves with the system datastore's TM; nothing to do")
        return NoOutput()
    if src.host == dst.host and src.path == dst.path:
        return NoOutput()
    _check_in_vm_dir(src, call.vm_id)
    _check_in_vm_dir(dst, call.vm_id)
    disk = _vm(ctx).disk(_disk_id(dst))
    volume = _disk_volume(disk, call.vm_id)
    env = _env(ctx, _disk_ds(disk, call.ds_id))
    iqn = _iqn(env, _disk_ds(disk, call.ds_id), volume)
    if env.wants_iscsi(src.host):
        detach(env, src.host, iqn, volume, src.path)
    if env.wants_iscsi(dst.host):
        check_target(env, iqn, volume)
        attach(env, dst.host, iqn, volume, dst.path)
    return NoOutput()


def mvds(ctx: ActionContext) -> NoOutput:
    call = _tm(ctx)
    assert call.source is not None
    _check_in_vm_dir(call.dst, call.vm_id)
    disk = _vm(ctx).disk(_disk_id(call.dst))
    volume = _disk_volume(disk, call.vm_id)
    ds_id = _disk_ds(disk, call.ds_id)
    env = _env(ctx, ds_id)
    iqn = _iqn(env, ds_id, volume)
    if env.wants_iscsi(call.dst.host):
        detach(env, call.dst.host, iqn, volume, call.dst.path)
    new = volume_from_source(call.source)
    if new == volume:
        return NoOutput()
    # Deferred save-as (OpenNebula ≤ 4.x): the new image's volume is a clone.
    size = disk.size_mb or 1

    async def op(ops: SanOps) -> None:
        info = await ops.volume_info(volume)
        spec = volume_spec(env.cfg, new, max(size, info.size_mb if info else 1))
        await ops.clone_volume(volume, spec)
        if not disk.persistent:
            await ops.delete_volume(volume)

    run_san(env.cfg, ds_id, ctx.environ, op)
    ctx.info(f"saved {volume} as {new}")
    return NoOutput()


def cpds(ctx: ActionContext) -> NoOutput:
    """Disk save-as: clone the disk's volume (or its snapshot SNAP_ID) into SOURCE.

    argv ``host:dir/disk.N SOURCE SNAP_ID VMID DSID`` (4.14+; SNAP_ID -1 = the disk as
    it is now), ``host:dir/disk.N SOURCE VMID DSID`` on 4.4.  SOURCE is the volume
    name mkfs answered for the save_as image; the copy is crash-consistent when the
    VM runs, as with the original (§1.8).  The new volume is tagged with DSID.
    """
    call, volume = disk_volume(ctx, same_datastore=False)
    assert call.source is not None
    target = check_volume_name(volume_from_source(call.source))
    snap = call.snap_id if call.snap_id is not None else -1
    cfg = _config(ctx, call.ds_id)

    async def op(ops: SanOps) -> str:
        info = await ops.volume_info(volume)
        if info is None:
            raise BadValueError(f"The disk's volume {volume} does not exist on the group.")
        spec = volume_spec(cfg, target, info.size_mb)
        if snap >= 0:
            made = await ops.snapshot_clone(volume, snapshot_name(volume, snap), spec)
        else:
            made = await ops.clone_volume(volume, spec)
        return made.name

    made = run_san(cfg, call.ds_id, ctx.environ, op)
    ctx.info(f"saved {volume}{'' if snap < 0 else f' snapshot {snap}'} as {made}")
    return NoOutput()


def delete(ctx: ActionContext) -> NoOutput:
    call = _tm(ctx)
    if call.dst.disk_id is None:
        env = _env(ctx, call.ds_id)
        # The VM directory: the system TM removes it; we only sweep the host.
        if env.wants_iscsi(call.dst.host):
            sweep_stale(env, call.dst.host, _datastores_dir(call.dst.path))
        return NoOutput()
    _check_in_vm_dir(call.dst, call.vm_id)
    disk = _vm(ctx).disk(_disk_id(call.dst))
    volume = _disk_volume(disk, call.vm_id)
    ds_id = _disk_ds(disk, call.ds_id)
    env = _env(ctx, ds_id)

    async def find(ops: SanOps) -> str | None:
        info = await ops.volume_info(volume)
        return info.iqn if info is not None else None

    iqn = run_san(env.cfg, ds_id, ctx.environ, find)
    if iqn is not None and env.wants_iscsi(call.dst.host):
        detach(env, call.dst.host, iqn, volume, call.dst.path)
        sweep_stale(env, call.dst.host, _datastores_dir(call.dst.path.rsplit("/", 1)[0]))
    if iqn is None:
        ctx.info(f"volume {volume} was already gone")
    elif not disk.persistent and disk.clone:
        _delete_volume(env, ds_id, volume)
        ctx.info(f"deleted {volume}")
    return NoOutput()


# --------------------------------------------------------------------------- SAN only


def disk_volume(ctx: ActionContext, *, same_datastore: bool = True) -> tuple[TmCall, str]:
    """The call and the volume behind its ``disk.N``.

    ``same_datastore``: the DSID argument is the disk's own image datastore (resize,
    snap_*); for cpds it is the *target* image's datastore and may differ.
    """
    call = ctx.call
    assert isinstance(call, TmCall)
    disk_id = call.dst.disk_id
    if disk_id is None:
        raise BadValueError(f"{call.action} needs a disk path (…/disk.N), not {call.dst.path}.")
    vm = _vm(ctx)
    disk = vm.disk(disk_id)
    if disk.tm_mad != TM_MAD:
        raise BadValueError(
            f"Disk {disk_id} of VM {vm.id} belongs to TM {disk.tm_mad or 'none'}, not eqliscsi."
        )
    if same_datastore and disk.datastore_id is not None and disk.datastore_id != call.ds_id:
        raise BadValueError(
            f"Disk {disk_id} of VM {vm.id} is in datastore {disk.datastore_id}, "
            f"not {call.ds_id}; the VM document is stale, retry."
        )
    source = volume_from_source(disk.source)
    if disk.persistent:
        return call, source
    return call, vm_disk_volume_name(source, vm.id, disk_id)


def resize(ctx: ActionContext) -> NoOutput:
    call, volume = disk_volume(ctx)
    assert call.size_mb is not None
    size = call.size_mb
    cfg = _config(ctx, call.ds_id)

    async def op(ops: SanOps) -> None:
        await ops.resize_volume(volume, size)

    run_san(cfg, call.ds_id, ctx.environ, op)
    ctx.info(f"resized {volume} to {size} MB")
    return NoOutput()


def _snap(ctx: ActionContext, what: str) -> NoOutput:
    call, volume = disk_volume(ctx)
    assert call.snap_id is not None
    name = snapshot_name(volume, call.snap_id)
    cfg = _config(ctx, call.ds_id)

    async def op(ops: SanOps) -> None:
        if what == "create":
            await ops.snapshot_create(volume, name)
        elif what == "delete":
            await ops.snapshot_delete(volume, name)
        else:
            await ops.snapshot_restore(volume, name)

    run_san(cfg, call.ds_id, ctx.environ, op)
    ctx.info(f"snapshot {what} {name}")
    return NoOutput()


def snap_create(ctx: ActionContext) -> NoOutput:
    return _snap(ctx, "create")


def snap_delete(ctx: ActionContext) -> NoOutput:
    return _snap(ctx, "delete")


def snap_revert(ctx: ActionContext) -> NoOutput:
    return _snap(ctx, "revert")


# --------------------------------------------------------------------------- migration


def _migrate_disks(ctx: ActionContext) -> tuple[MigrateCall, _Env, list[tuple[VmDisk, str, str]]]:
    call = ctx.call
    assert isinstance(call, MigrateCall)
    vm = _vm(ctx)
    if vm.id != call.vm_id:
        raise BadValueError(f"The VM document is for VM {vm.id}, not {call.vm_id}; retry.")
    disks = vm.disks_of(TM_MAD)
    # The disks' image datastore (all of one VM's eqliscsi disks normally share it);
    # the system datastore's template when the VM has none of ours.
    env = _env(ctx, _disk_ds(disks[0], call.ds_id) if disks else call.ds_id)
    out = []
    for disk in disks:
        volume = _disk_volume(disk, call.vm_id)
        out.append((disk, volume, _iqn(env, _disk_ds(disk, call.ds_id), volume)))
    return call, env, out


def _syslog(address: str) -> logging.Logger:
    import logging  # noqa: PLC0415 - see the note after the imports
    import logging.handlers  # noqa: PLC0415

    class _QuietSysLogHandler(logging.handlers.SysLogHandler):
        """A syslog that is down stays silent.

        Python 3.11 ignores a failed connect when the handler is made and reports the
        failed send later through ``handleError``, which prints a traceback on stderr;
        oned (6.2 to 6.10) would record that traceback as the action's failure reason.
        """

        def handleError(self, record: logging.LogRecord) -> None:
            return

    logger = logging.getLogger(f"eqliscsi.tm.migrate.{address}")
    logger.propagate = False
    if not logger.handlers:
        handler: logging.Handler
        try:
            handler = _QuietSysLogHandler(
                address=address, facility=logging.handlers.SysLogHandler.LOG_DAEMON
            )
        except OSError:
            # No syslog socket: the log file still has it, and nothing may reach
            # stderr (logging's last-resort handler would write there).
            handler = logging.NullHandler()
        logger.addHandler(handler)
    return logger


def _report_failure(ctx: ActionContext, message: str) -> None:
    """migrate_other ignores our exit status (§6.3): say it where an admin looks.

    The INFO line reaches the driver log file (the runner appends every log line to
    it, success or not); the syslog line reaches the front-end's journal through
    ``/dev/log`` (``EQLISCSI_SYSLOG`` names another socket).
    """
    ctx.info(f"MIGRATION PROBLEM: {message}")
    address = ctx.environ.get("EQLISCSI_SYSLOG") or "/dev/log"
    _syslog(address).error("eqliscsi %s: %s", ctx.name, message)


def premigrate(ctx: ActionContext) -> NoOutput:
    call, env, disks = _migrate_disks(ctx)
    if call.src_host == call.dst_host or not env.wants_iscsi(call.dst_host):
        return NoOutput()
    try:
        for disk, volume, iqn in disks:
            check_target(env, iqn, volume)
            # On a shared system datastore disk.N is already there (same path on both
            # hosts): keep it; on a host with its own directory, create it.
            attach(env, call.dst_host, iqn, volume, f"{call.vm_dir}/disk.{disk.disk_id}",
                   keep_link=True)  # fmt: skip
    except EqliscsiError as exc:
        _report_failure(ctx, f"VM {call.vm_id} to {call.dst_host}: {exc}")
        raise
    # A login an earlier, failed migration left on this host (nothing calls
    # failmigrate, §6.3) goes now; this VM's own volumes are not judged.
    sweep_stale(env, call.dst_host, _datastores_dir(call.vm_dir),
                keep=frozenset(volume for _, volume, _ in disks))  # fmt: skip
    return NoOutput()


# System TMs whose hosts each keep their own copy of the VM directory (reference §6.2:
# "ssh" places running VMs on the hosts' local storage; SHARED="NO").
HOST_LOCAL_SYSTEM_TMS = frozenset({"ssh"})


def _log_out_migrated(ctx: ActionContext, *, on_source: bool) -> NoOutput:
    """postmigrate (the source) and failmigrate (the destination): log this VM's disks
    out on one host, sweep it, then report the first failure where an admin looks.

    The ``disk.N`` links stay on a shared system datastore, where the link is the other
    host's too, and when the system TM is unknown (4.4 calls without it).  failmigrate
    removes them from a destination with its own VM directory (``ssh``), where
    premigrate made them for a VM that now stays on the source.
    """
    call, env, disks = _migrate_disks(ctx)
    host = call.src_host if on_source else call.dst_host
    if call.src_host == call.dst_host or not env.wants_iscsi(host):
        return NoOutput()
    own_dir = not on_source and call.sys_tm in HOST_LOCAL_SYSTEM_TMS
    failures = []
    for disk, volume, iqn in disks:
        link = f"{call.vm_dir}/disk.{disk.disk_id}" if own_dir else None
        try:
            detach(env, host, iqn, volume, link)
        except EqliscsiError as exc:
            failures.append(exc)
    sweep_stale(env, host, _datastores_dir(call.vm_dir))
    if failures:
        what = f"left {host}" if on_source else f"undo on {host}"
        _report_failure(ctx, f"VM {call.vm_id} {what}: {failures[0]}")
        raise failures[0]
    return NoOutput()


def postmigrate(ctx: ActionContext) -> NoOutput:
    return _log_out_migrated(ctx, on_source=True)


def failmigrate(ctx: ActionContext) -> NoOutput:
    return _log_out_migrated(ctx, on_source=False)
