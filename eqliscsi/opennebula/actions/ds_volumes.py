"""Datastore actions that work on SAN volumes through ``eqliscsi.san.ops``.

Reference §1.8 (what the original did), §2.3 and §6.1 (what oned sends and reads):

* ``monitor`` prints the pool's USED_MB/TOTAL_MB/FREE_MB (whole MB, never overstating
  free space; the original's float arithmetic broke on TB values, §1.9 item 10).
* ``rm`` deletes the image's volume; an already missing volume is success, because
  oned retries a failed rm and the image must become deletable.
* ``clone`` clones the old image's volume (IMAGE/PATH = old SOURCE) into a volume
  named after the *new* image id, grown to IMAGE/SIZE when that is larger.
* ``mkfs`` answers a save_as placeholder with its future volume name, and creates a
  raw (unformatted) datablock volume.  Formatting needs a host-side iSCSI login,
  which this build does not have yet, so a filesystem request is refused *before*
  anything is created.

Every change runs through the ownership tag of this datastore (``ops.py``), so a
volume that another datastore or a human created is never touched.
"""

from __future__ import annotations

from eqliscsi.opennebula.args import DsCall
from eqliscsi.opennebula.errors import BadValueError
from eqliscsi.opennebula.naming import image_volume_name, volume_from_source
from eqliscsi.opennebula.output import MonitorResult, NoOutput, SourceResult
from eqliscsi.opennebula.runner import ActionContext
from eqliscsi.opennebula.san_link import run_san, volume_spec
from eqliscsi.san.ops import SanOps

__all__ = ["clone", "mkfs", "monitor", "rm"]


def _ds_id(ctx: ActionContext) -> int:
    assert ctx.driver_action is not None
    return ctx.driver_action.datastore.id


def _size(ctx: ActionContext) -> int:
    size = ctx.image().size_mb
    if size is None or size <= 0:
        raise BadValueError("The image has no positive SIZE; give the size in MB when creating it.")
    return size


def monitor(ctx: ActionContext) -> MonitorResult:
    cfg = ctx.config(with_image=False).config

    async def op(ops: SanOps) -> MonitorResult:
        cap = await ops.pool_capacity(cfg.pool)
        return MonitorResult(used_mb=cap.used_mb, total_mb=cap.total_mb, free_mb=cap.free_mb)

    return run_san(cfg, _ds_id(ctx), ctx.environ, op)


def rm(ctx: ActionContext) -> NoOutput:
    image = ctx.image()
    volume = volume_from_source(image.source)
    cfg = ctx.config().config

    async def op(ops: SanOps) -> bool:
        return await ops.delete_volume(volume)

    if run_san(cfg, _ds_id(ctx), ctx.environ, op):
        ctx.info(f"deleted volume {volume}")
    else:
        ctx.info(f"volume {volume} was already gone")
    return NoOutput()


def clone(ctx: ActionContext) -> SourceResult:
    image = ctx.image()
    assert isinstance(ctx.call, DsCall)
    # The id argument is the *new* image's id (§6.1); the document agrees with it.
    new_id = ctx.call.object_id
    if image.id is not None and image.id != new_id:
        raise BadValueError(
            f"oned passed image id {new_id} but the document is for image {image.id}; "
            "retry the clone."
        )
    source = volume_from_source(image.path)
    target = image_volume_name(image.name, new_id)
    cfg = ctx.config().config
    spec = volume_spec(cfg, target, _size(ctx))

    async def op(ops: SanOps) -> str:
        return (await ops.clone_volume(source, spec)).name

    made = run_san(cfg, _ds_id(ctx), ctx.environ, op)
    ctx.info(f"cloned {source} into {made}")
    return SourceResult(made)


def mkfs(ctx: ActionContext) -> SourceResult:
    image = ctx.image()
    assert isinstance(ctx.call, DsCall)
    volume = image_volume_name(image.name, ctx.call.object_id)
    if image.is_save_as:
        # The volume is made later by the TM (mvds/cpds); answer its future name.
        return SourceResult(volume)
    if image.filesystem not in {"", "raw"}:
        raise BadValueError(
            f"Creating a datablock with filesystem {image.filesystem[:20]} needs host-side "
            "iSCSI support that this eqliscsi build lacks; create it without FS."
        )
    cfg = ctx.config().config
    spec = volume_spec(cfg, volume, _size(ctx))

    async def op(ops: SanOps) -> str:
        return (await ops.create_volume(spec)).name

    made = run_san(cfg, _ds_id(ctx), ctx.environ, op)
    ctx.info(f"created volume {made} ({spec.size_mb} MB)")
    return SourceResult(made)
