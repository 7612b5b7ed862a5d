"""Datastore actions that work on SAN volumes through ``eqliscsi.san.ops``.

Reference §1.8 (what the original did), §2.3 and §6.1 (what oned sends and reads):

* ``monitor`` prints the pool's USED_MB/TOTAL_MB/FREE_MB (whole MB, never overstating
  free space; the original's float arithmetic broke on TB values, §1.9 item 10).
* ``rm`` deletes the image's volume; an already missing volume is success, because
  oned retries a failed rm and the image must become deletable.
* ``clone`` clones the old image's volume (IMAGE/PATH = old SOURCE) into a volume
  named after the *new* image id, grown to IMAGE/SIZE when that is larger.
* ``cp`` creates a volume as large as the image's virtual size and writes the image
  onto it as raw with ``qemu-img convert`` over libiscsi (no kernel initiator on the
  front-end); qcow2/vmdk are converted, not copied byte for byte (§1.9 item 9), and a
  failed copy deletes the volume again.
* ``mkfs`` answers a save_as placeholder with its future volume name, and creates a
  raw (unformatted) datablock volume.  Formatting needs a host-side iSCSI login,
  which this build does not have yet, so a filesystem request is refused *before*
  anything is created.

``snap_delete``/``snap_revert``/``snap_flatten`` act on the snapshot named by
:func:`~eqliscsi.opennebula.naming.snapshot_name` for IMAGE/TARGET_SNAPSHOT; a revert
needs the volume without iSCSI connections (the group restores offline volumes only).

Every change runs through the ownership tag of this datastore (``ops.py``), so a
volume that another datastore or a human created is never touched.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from eqliscsi.errors import EqliscsiError, SanError
from eqliscsi.opennebula.args import DsCall
from eqliscsi.opennebula.errors import BadValueError, CopyFailedError, SizeUnknownError
from eqliscsi.opennebula.naming import image_volume_name, snapshot_name, volume_from_source
from eqliscsi.opennebula.output import MonitorResult
from eqliscsi.opennebula.runner import ActionContext
from eqliscsi.opennebula.san_link import run_san, volume_spec
from eqliscsi.san.ops import SanOps
from eqliscsi.secret import Secret

TYPE_CHECKING = False  # not typing's: importing typing costs a remote ~3 ms (docs/performance.md)

if TYPE_CHECKING:
    from eqliscsi.opennebula._results import NoOutput, SourceResult
    from eqliscsi.opennebula.actions.ds import ImageInfo
    from eqliscsi.san.ops import VolumeRef

# subprocess, tempfile and the image helpers of actions.ds are imported inside the
# functions that copy data: monitor, rm and the snapshot actions never need them, and
# every remote pays its imports on each oned call (docs/performance.md).

__all__ = [
    "clone",
    "cp",
    "mkfs",
    "monitor",
    "qemu_img_convert_argv",
    "rm",
    "snap_delete",
    "snap_flatten",
    "snap_revert",
    "write_image",
]


def _ds_id(ctx: ActionContext) -> int:
    assert ctx.driver_action is not None
    return ctx.driver_action.datastore.id


def _size(ctx: ActionContext) -> int:
    size = ctx.image().size_mb
    if size is None or size <= 0:
        raise BadValueError("The image has no positive SIZE; give the size in MB when creating it.")
    return size


def _source(volume: str, fmt: str = "raw") -> SourceResult:
    # The non-monitor results are created on first use (eqliscsi.opennebula._results).
    from eqliscsi.opennebula._results import SourceResult  # noqa: PLC0415

    return SourceResult(volume, fmt)


def _no_output() -> NoOutput:
    from eqliscsi.opennebula._results import NoOutput  # noqa: PLC0415

    return NoOutput()


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
    return _no_output()


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
    cfg = ctx.config(encrypted_attrs=True).config
    spec = volume_spec(cfg, target, _size(ctx))

    async def op(ops: SanOps) -> str:
        return (await ops.clone_volume(source, spec)).name

    made = run_san(cfg, _ds_id(ctx), ctx.environ, op)
    ctx.info(f"cloned {source} into {made}")
    return _source(made)


def mkfs(ctx: ActionContext) -> SourceResult:
    image = ctx.image()
    assert isinstance(ctx.call, DsCall)
    volume = image_volume_name(image.name, ctx.call.object_id)
    if image.is_save_as:
        # The volume is made later by the TM (mvds/cpds); answer its future name.
        return _source(volume)
    size = _size(ctx)
    cfg = ctx.config().config
    if image.filesystem not in {"", "raw"}:
        # Imported only for a formatted datablock: start-up time is paid per oned call.
        import tempfile  # noqa: PLC0415

        from eqliscsi.opennebula.actions.ds import ImageInfo  # noqa: PLC0415
        from eqliscsi.opennebula.actions.filesystem import (  # noqa: PLC0415
            build_formatted_disk,
            fs_kind,
        )

        fs_kind(image.filesystem)  # refuse an unknown filesystem before any work
        if cfg.chap_user and not cfg.chap_secret:
            raise BadValueError("EQL_CHAP_USER is set without EQL_CHAP_SECRET_FILE; set both.")
        with tempfile.TemporaryDirectory(prefix="eqliscsi-mkfs-") as private:
            disk, how = build_formatted_disk(private, size, image.filesystem)
            ctx.info(f"{volume}: {how}")
            info = ImageInfo(format="raw", virtual_size=size * 1024 * 1024)
            _create_and_write(ctx, volume, size, disk, info)
        return _source(volume)
    spec = volume_spec(cfg, volume, size)

    async def op(ops: SanOps) -> str:
        return (await ops.create_volume(spec)).name

    made = run_san(cfg, _ds_id(ctx), ctx.environ, op)
    ctx.info(f"created volume {made} ({spec.size_mb} MB)")
    return _source(made)


# --- cp -----------------------------------------------------------------------------

_QEMU_CONVERT_TIMEOUT = 6 * 3600.0  # a large image over a slow link; bounded all the same


def qemu_img_convert_argv(
    source: str,
    source_format: str,
    portal: str,
    iqn: str,
    chap_user: str | None,
    *,
    lun: int = 0,
    target_is_zero: bool = False,
) -> list[str]:
    """``qemu-img convert`` writing ``source`` as raw onto ``iqn`` via libiscsi.

    EqualLogic presents each volume as LUN 0 of its own target; ``lun`` exists for
    targets such as tgt that keep LUN 0 for their controller.

    The target is given as ``--target-image-opts``; qemu's option syntax splits on
    ``,``, so every value here is from a closed character set without commas (IQNs,
    validated portals, CHAP user names).  The CHAP secret is never in argv: it comes
    from ``--object secret,file=…`` (the caller writes that file, mode 0600).
    """
    for value in (portal, iqn, chap_user or ""):
        if "," in value or "=" in value:
            raise BadValueError("An iSCSI option value contains ',' or '='; it cannot be passed.")
    opts = (
        f"driver=raw,file.driver=iscsi,file.transport=tcp,file.portal={portal},"
        f"file.target={iqn},file.lun={int(lun)}"
    )
    argv = ["qemu-img", "convert", "-n", "-f", source_format, source]
    if target_is_zero:
        # A volume the group has just created reads as zeros, so qemu-img may skip the
        # image's holes instead of writing zeros over the LUN: a thin volume then
        # allocates what the image holds, not its virtual size.
        argv.append("--target-is-zero")
    if chap_user:
        opts += f",file.user={chap_user},file.password-secret=chap0"
        argv += ["--object", "secret,id=chap0,file=@SECRET@"]
    return [*argv, "--target-image-opts", opts]


def write_image(argv: list[str], secret: bytes | None, log: Callable[[str], None]) -> None:
    """Run the convert; the CHAP secret goes into a 0600 file in a private temp dir.

    Raises:
        CopyFailedError: qemu-img failed or ran out of time.
    """
    import subprocess  # noqa: PLC0415
    import tempfile  # noqa: PLC0415

    with tempfile.TemporaryDirectory(prefix="eqliscsi-cp-") as private:
        if secret is not None:
            path = f"{private}/chap"
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(secret)
            argv = [a.replace("@SECRET@", path) for a in argv]
        log("running " + " ".join(argv))
        try:
            proc = subprocess.run(
                argv,
                capture_output=True,
                timeout=_QEMU_CONVERT_TIMEOUT,
                check=False,
                stdin=subprocess.DEVNULL,
            )
        except FileNotFoundError:
            raise SizeUnknownError(
                "qemu-img is not installed on the front-end; install qemu-utils and "
                "qemu-block-extra."
            ) from None
        except subprocess.TimeoutExpired:
            raise CopyFailedError(
                f"Copying the image took longer than {_QEMU_CONVERT_TIMEOUT / 3600:.0f} h "
                "and was stopped; check the network to the group."
            ) from None
    if proc.returncode != 0:
        lines = proc.stderr.decode("utf-8", "replace").strip().splitlines()
        why = lines[-1] if lines else f"exit status {proc.returncode}"
        raise CopyFailedError(
            f"Writing the image to the volume failed ({why[:300]}); check that the "
            "front-end may log in to the group's iSCSI portal."
        )


_PROBE_TIMEOUT = 30.0


def find_disk_lun(
    portal: str,
    iqn: str,
    chap_user: str | None,
    chap_secret: Secret | None,
    needed_bytes: int,
) -> int:
    """The LUN of ``iqn`` that holds the volume, asked of the target itself.

    A real group presents each volume as LUN 0 of its own target; tgt (the rig) keeps
    LUN 0 for its controller and serves the disk as LUN 1.  Rather than assume either,
    log in with the native client, REPORT LUNS, and take the lowest LUN whose INQUIRY
    peripheral device type is 0 (direct access block device, SPC-4 §6.6.2) and whose
    READ CAPACITY is large enough for the image.

    Raises:
        CopyFailedError: the probe failed, or no disk LUN is large enough.
    """
    # Imported here: only cp needs the iSCSI client, and every other action's start-up
    # time is paid per oned call (bench/ds_bench.py).
    import asyncio  # noqa: PLC0415

    from eqliscsi.iscsi_discovery import Auth, ChapCredentials, probe  # noqa: PLC0415

    auth = (
        Auth(chap=ChapCredentials(chap_user, chap_secret)) if chap_user and chap_secret else Auth()
    )
    try:
        result = asyncio.run(probe(portal, iqn, auth=auth, timeout=_PROBE_TIMEOUT))
    except EqliscsiError as exc:
        # The client's message already says what failed and what to check.
        raise CopyFailedError(f"Inspecting the new volume over iSCSI failed: {exc}") from None
    for info in sorted(result.luns, key=lambda i: i.lun):
        if info.size_bytes >= needed_bytes:
            return info.lun
    seen = ", ".join(f"LUN {i.lun} {i.size_bytes} bytes" for i in result.luns) or "no disk LUN"
    raise CopyFailedError(
        f"The new volume's target offers {seen}, too small for the image of {needed_bytes} "
        "bytes; check the group's volume size rounding."
    )


def _delete_after_failure(ctx: ActionContext, volume: str, exc: BaseException) -> None:
    """Delete our half-made ``volume`` on a fresh session; never mask ``exc``.

    The ownership guard of ``delete_volume`` still applies, so a same-named volume
    that another datastore or a person made is left alone.
    """
    cfg = ctx.config().config

    async def undo(ops: SanOps) -> bool:
        return await ops.delete_volume(volume)

    try:
        if run_san(cfg, _ds_id(ctx), ctx.environ, undo):
            ctx.info(f"deleted volume {volume} again after the failed copy")
    except Exception as undo_exc:  # keep the first error; name the leftover
        exc.add_note(f"volume {volume} could not be deleted: {undo_exc}")
        ctx.info(f"volume {volume} could not be deleted after the failed copy: {undo_exc}")


def _create_and_write(
    ctx: ActionContext, volume: str, size_mb: int, local: str, info: ImageInfo
) -> None:
    """Create ``volume`` and write the image at ``local`` onto it; on failure delete it."""
    cfg = ctx.config().config
    spec = volume_spec(cfg, volume, size_mb)

    async def create(ops: SanOps) -> VolumeRef:
        return await ops.create_volume(spec)

    try:
        ref = run_san(cfg, _ds_id(ctx), ctx.environ, create)
    except SanError as exc:
        # The session may have died after 'volume create' succeeded (ops could not
        # undo it on a dead connection): look again on a fresh session.
        _delete_after_failure(ctx, volume, exc)
        raise
    iqn = ref.iqn
    if ref.reused:
        # oned retried after an attempt that left this volume: write every block.
        ctx.info(f"reusing volume {volume} from an earlier attempt; writing all of it")
    else:
        ctx.info(f"created volume {volume} ({size_mb} MB), writing {info.format} image as raw")
    try:
        lun = find_disk_lun(
            cfg.discovery_portal, iqn, cfg.chap_user or None, cfg.chap_secret, info.virtual_size
        )
        ctx.debug(f"{iqn}: disk is LUN {lun}")
        argv = qemu_img_convert_argv(
            local,
            info.format,
            cfg.discovery_portal,
            iqn,
            cfg.chap_user or None,
            lun=lun,
            target_is_zero=not ref.reused,
        )
        secret = cfg.chap_secret.reveal() if (cfg.chap_user and cfg.chap_secret) else None
        write_image(argv, secret, ctx.debug)
    except BaseException as exc:
        # Do not leave an orphan volume behind (the original did, §1.9 item 9).
        _delete_after_failure(ctx, volume, exc)
        raise


def cp(ctx: ActionContext) -> SourceResult:
    """Register an image: new volume, then the image written onto it as raw.

    Order matters for leaving nothing behind: the source is fetched, checked
    (checksums, archive, qemu-img info) and measured *before* the volume exists; after
    it exists, any failure deletes it again.
    """
    from eqliscsi.opennebula.actions.ds import check_restricted, qemu_img_info  # noqa: PLC0415

    image = ctx.image()
    assert isinstance(ctx.call, DsCall) and ctx.driver_action is not None
    path = image.path
    if not path:
        raise BadValueError("The image has no PATH to copy; give PATH when registering it.")
    scheme = path.split("://", 1)[0].lower() if "://" in path else ""
    if scheme in {"http", "https"}:
        if any(ch in path for ch in ",\n\r\t ") or not path.isprintable():
            raise BadValueError("The image URL contains blanks, commas or control characters.")
        source = path
    elif scheme:
        raise BadValueError(
            f"Image PATH scheme {scheme[:20]}:// is not supported by eqliscsi; use a local "
            "path or an http(s) URL."
        )
    else:
        ds = ctx.driver_action.datastore
        source = check_restricted(path, ds.restricted_dirs, ds.safe_dirs, ctx.environ)
    volume = image_volume_name(image.name, ctx.call.object_id)
    cfg = ctx.config().config
    # hashlib/bz2/lzma (and urllib for http) only for cp: start-up is paid per oned call.
    from eqliscsi.opennebula.actions.image_source import (  # noqa: PLC0415
        SourceOptions,
        prepared_source,
    )

    options = SourceOptions.from_template(image.template)
    if cfg.chap_user and not cfg.chap_secret:
        raise BadValueError("EQL_CHAP_USER is set without EQL_CHAP_SECRET_FILE; set both.")
    with prepared_source(source, options, ctx.debug) as local:
        info = qemu_img_info(local)
        if info.backing:
            # qemu-img would open the backing file too: a way to read files outside
            # the allowed directories (the same reason libfs.sh refuses them).
            raise BadValueError(
                f"The image {path[:200]} has a backing file; flatten it first with "
                "qemu-img convert."
            )
        needed = -(-info.virtual_size // (1024 * 1024))  # ceil, in integers
        size = max(needed, image.size_mb or 0)
        if size <= 0:
            raise SizeUnknownError(
                f"The image at {path[:200]} is empty; register a non-empty image."
            )
        _create_and_write(ctx, volume, size, local, info)
    return _source(volume, "raw")


# --- image snapshots (4.14+) ---------------------------------------------------------------


def _snapshot_target(ctx: ActionContext) -> tuple[str, int]:
    image = ctx.image()
    snap = image.target_snapshot
    if snap is None or snap < 0:
        raise BadValueError(
            "The driver document names no snapshot (IMAGE/TARGET_SNAPSHOT); retry from oned."
        )
    return volume_from_source(image.source), snap


def snap_delete(ctx: ActionContext) -> NoOutput:
    volume, snap = _snapshot_target(ctx)
    name = snapshot_name(volume, snap)
    cfg = ctx.config().config

    async def op(ops: SanOps) -> bool:
        return await ops.snapshot_delete(volume, name)

    gone = run_san(cfg, _ds_id(ctx), ctx.environ, op)
    ctx.info(f"deleted snapshot {name}" if gone else f"snapshot {name} was already gone")
    return _no_output()


def snap_revert(ctx: ActionContext) -> NoOutput:
    volume, snap = _snapshot_target(ctx)
    name = snapshot_name(volume, snap)
    cfg = ctx.config().config

    async def op(ops: SanOps) -> None:
        await ops.snapshot_restore(volume, name)

    run_san(cfg, _ds_id(ctx), ctx.environ, op)
    ctx.info(f"reverted {volume} to snapshot {name}")
    return _no_output()


def snap_flatten(ctx: ActionContext) -> NoOutput:
    """Make snapshot TARGET_SNAPSHOT the image's content and drop every snapshot."""
    volume, snap = _snapshot_target(ctx)
    target = snapshot_name(volume, snap)
    others = [snapshot_name(volume, s.id) for s in ctx.image().snapshots]
    cfg = ctx.config().config

    async def op(ops: SanOps) -> None:
        await ops.snapshot_restore(volume, target)
        for name in dict.fromkeys([*others, target]):
            await ops.snapshot_delete(volume, name)

    run_san(cfg, _ds_id(ctx), ctx.environ, op)
    ctx.info(f"flattened {volume} onto snapshot {target}")
    return _no_output()
