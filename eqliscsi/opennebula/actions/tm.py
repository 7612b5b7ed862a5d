"""TM actions that need only the SAN: disk resize and disk snapshots (VM powered off).

argv: ``host:dir/disk.N <size_mb | snap_id> VMID DSID`` (§2.4), DSID being the image
datastore, whose id is also the volumes' ownership tag.  The disk's volume comes from
the VM document: a persistent disk uses the image's volume, a non-persistent one its
per-VM copy (:func:`~eqliscsi.opennebula.naming.vm_disk_volume_name`).

After ``resize`` of a running VM, the VMM driver grows the disk in the guest; the
host's SCSI device must see the new size first (a session rescan on the host), which
is the host-side helper's part and is not done here.
"""

from __future__ import annotations

from eqliscsi.opennebula.args import TmCall
from eqliscsi.opennebula.config import EqlConfig, load_conf, resolve
from eqliscsi.opennebula.driver_action import parse_datastore, parse_vm
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
from eqliscsi.san.ops import SanOps

__all__ = ["cpds", "disk_volume", "resize", "snap_create", "snap_delete", "snap_revert"]

TM_NAME = "eqliscsi"


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
    vm = parse_vm(vm_document(call.vm_id, ctx.environ))
    disk = vm.disk(disk_id)
    if disk.tm_mad != TM_NAME:
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


def _config(ctx: ActionContext, ds_id: int) -> EqlConfig:
    ds = parse_datastore(datastore_document(ds_id, ctx.environ))
    resolved = resolve(load_conf(conf_file(ctx)), ds.template)
    for notice in resolved.notices:
        ctx.info(notice)
    for secret in (resolved.config.password, resolved.config.chap_secret):
        if secret is not None:
            ctx.secrets.append(secret.reveal())
    return resolved.config


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
