"""SAN operations the OpenNebula driver calls: each is a short sequence of CLI commands.

All operations run on one :class:`CliRunner` (a logged-in session, or the broker's proxy
for one), so one driver action uses one SSH connection for all its commands.

Rules (issue 3):

* **Ownership.** Volumes we create carry ``eqliscsi ds=<datastore id>`` in their
  description.  Nothing that changes or destroys an existing volume runs unless the volume
  carries the tag of *this* datastore.
* **Undo.** When a later step of a create/clone fails, the volume made by the earlier step is
  taken offline and deleted again; access records created by a failed multi-record step
  are deleted.  An undo that itself fails is named in the error so the admin can clean up.
* **Idempotence where oned retries.** Deleting a missing volume or snapshot succeeds;
  creating a volume that exists, is ours and has the same size succeeds and returns it;
  an access record that already exists is not created twice (Cinder bug 1726591).
* Retrying is the caller's business (:func:`eqliscsi.san.session.with_session`), and only
  for reads and connection failures before a mutating command was sent.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from eqliscsi import _lazy
from eqliscsi._lazyre import LazyPattern
from eqliscsi.san import commands as c
from eqliscsi.san import parsers
from eqliscsi.san._lazylog import LazyLogger
from eqliscsi.san.conversation import CommandCompleted
from eqliscsi.san.errors import (
    SanCommandError,
    SanConnectionError,
    SanInvalidValue,
    SanNotOwned,
    SanObjectExists,
    SanObjectMissing,
    SanProtocolError,
)
from eqliscsi.san.parsers import (
    PoolCapacity,
    parse_chap_password,
    parse_pool_capacity,
    parse_snapshot_name,
    parse_target_name,
)
from eqliscsi.secret import Secret

TYPE_CHECKING = False  # not typing's: importing typing costs a remote ~3 ms (docs/performance.md)

if TYPE_CHECKING:
    from typing import Protocol

    from eqliscsi.san._specs import VolumeRef, VolumeSpec
    from eqliscsi.san.parsers import AccessRecord, VolumeInfo
else:
    Protocol = object  # CliRunner is only ever a static type

__all__ = [
    "CliRunner",
    "SanOps",
    "VolumeRef",
    "VolumeSpec",
    "owner_tag",
    "tag_owner",
]

log = LazyLogger(__name__)

_TAG_RE = LazyPattern(r"^eqliscsi ds=(\d+)(?: |$)", re.ASCII)


class CliRunner(Protocol):
    """What the operations need: run one command, raising SanCommandError on an error line."""

    async def run(self, command: c.Command, *, check: bool = True) -> CommandCompleted: ...


def owner_tag(datastore_id: int) -> str:
    if isinstance(datastore_id, bool) or not isinstance(datastore_id, int) or datastore_id < 0:
        raise SanInvalidValue(f"The datastore id {datastore_id!r} is not a non-negative integer.")
    return f"eqliscsi ds={datastore_id}"


def tag_owner(description: str) -> int | None:
    """The datastore id in a volume description, or None when it carries no tag."""
    m = _TAG_RE.match(description)
    return int(m.group(1)) if m else None


# The volume classes are created on first use (see _specs' docstring).
_LAZY = dict.fromkeys(("VolumeRef", "VolumeSpec"), "_specs")


def __getattr__(name: str) -> object:
    return _lazy.load(__name__, "eqliscsi.san", _LAZY, name)


def __dir__() -> list[str]:
    return _lazy.names(__name__, _LAZY)


def _ref(name: str, iqn: str, *, reused: bool = False) -> VolumeRef:
    from eqliscsi.san._specs import VolumeRef  # noqa: PLC0415 - see _LAZY

    return VolumeRef(name, iqn, reused=reused)


def _same_size(shown_mb: int, wanted_mb: int) -> bool:
    # The array displays sizes with two decimals in the largest unit (1.01GB, 9.46TB), so
    # the shown value can differ from the requested one by up to 0.005 of that unit; 15 MB
    # is the allocation granularity (equallogic-cli.md §6).
    return abs(shown_mb - wanted_mb) <= max(15, wanted_mb // 100)


def _norm_rule(initiator: str, ip: str, user: str) -> tuple[str, str, str]:
    # The access table shows "*.*.*.*" when no address was given and may show "*" for any
    # initiator; both mean "not restricted" here.
    return (
        "" if initiator in ("", "*") else initiator,
        "" if ip in ("", "*.*.*.*") else ip,
        user,
    )


def _rule_key(rule: c.AccessRule) -> tuple[str, str, str]:
    return _norm_rule(rule.initiator or "", rule.ipaddress or "", rule.username or "")


def _record_key(rec: AccessRecord) -> tuple[str, str, str]:
    return _norm_rule(rec.initiator, rec.ipaddress, rec.username)


class SanOps:
    """Operations on one group for one datastore (whose id is the ownership tag)."""

    def __init__(self, runner: CliRunner, datastore_id: int) -> None:
        self.runner = runner
        self.datastore_id = datastore_id
        self.tag = owner_tag(datastore_id)

    # -- reads --------------------------------------------------------------------------
    async def volume_info(self, name: str) -> VolumeInfo | None:
        """The volume's details, or None when it does not exist."""
        try:
            res = await self.runner.run(c.VolumeShow(name))
        except SanObjectMissing:
            return None
        return parsers.parse_volume_info(res.lines)

    async def _existing(self, name: str) -> VolumeInfo:
        info = await self.volume_info(name)
        if info is None:
            raise SanObjectMissing(
                f"The volume {name} does not exist on the group; check the image's SOURCE.",
                command=c.VolumeShow(name).display(),
                error_line="",
            )
        return info

    async def _owned(self, name: str) -> VolumeInfo:
        info = await self._existing(name)
        self._check_owned(info)
        return info

    def _check_owned(self, info: VolumeInfo) -> None:
        owner = tag_owner(info.description)
        if owner != self.datastore_id:
            whose = "no eqliscsi tag" if owner is None else f"the tag of datastore {owner}"
            raise SanNotOwned(
                f"The volume {info.name} carries {whose}, not '{self.tag}', so it is left "
                "alone; change it by hand if it really belongs to this datastore."
            )

    async def volume_iqn(self, name: str) -> str:
        return (await self._existing(name)).iqn

    async def connection_count(self, name: str) -> int:
        return (await self._existing(name)).connections

    async def group_ip(self) -> str:
        return parsers.parse_group_params((await self.runner.run(c.GrpparamsShow())).lines).group_ip

    async def pool_capacity(self, pool: str) -> PoolCapacity:
        return parse_pool_capacity((await self.runner.run(c.PoolShow(pool))).lines)

    async def access_records(self, volume: str) -> list[AccessRecord]:
        return parsers.parse_access_records((await self.runner.run(c.AccessShow(volume))).lines)

    # -- create / clone -----------------------------------------------------------------
    async def create_volume(self, spec: VolumeSpec) -> VolumeRef:
        cmd = c.VolumeCreate(
            spec.name,
            spec.size_mb,
            pool=spec.pool,
            description=self.tag,
            thin=spec.thin,
            thin_min_reserve_pct=spec.thin_min_reserve_pct,
        )
        try:
            res = await self.runner.run(cmd)
        except SanCommandError as exc:
            return await self._adopt_existing(spec, exc)
        iqn = await self._new_iqn(res, spec.name)
        await self._finish_new_volume(spec.name, spec, undo=True)
        return _ref(spec.name, iqn)

    async def clone_volume(
        self,
        source: str,
        spec: VolumeSpec,
    ) -> VolumeRef:
        """Clone ``source`` into ``spec.name``; grow it to ``spec.size_mb`` when larger.

        A clone inherits the source size (Cinder 1598148), so the size is applied after.
        """
        src = await self._existing(source)
        if spec.size_mb < src.size_mb and not _same_size(src.size_mb, spec.size_mb):
            raise SanInvalidValue(
                f"The clone {spec.name} cannot be smaller than its source {source} "
                f"({src.size_mb} MB); ask for at least that size."
            )
        try:
            res = await self.runner.run(c.VolumeClone(source, spec.name, description=self.tag))
        except SanCommandError as exc:
            return await self._adopt_existing(spec, exc, grow=True)
        iqn = await self._new_iqn(res, spec.name)
        await self._finish_new_volume(
            spec.name, spec, undo=True, grow_from=src.size_mb, set_description=True
        )
        return _ref(spec.name, iqn)

    async def snapshot_clone(self, volume: str, snapshot: str, spec: VolumeSpec) -> VolumeRef:
        await self._owned(volume)
        try:
            res = await self.runner.run(c.SnapshotClone(volume, snapshot, spec.name))
        except SanCommandError as exc:
            return await self._adopt_existing(spec, exc, grow=True)
        # The clone has the snapshot's size, which only the array knows; one 'show' tells.
        try:
            made = await self._existing(spec.name)
        except BaseException as exc:
            await self._undo_volume(spec.name, exc)
            raise
        try:
            iqn = parse_target_name(res.lines, spec.name)
        except SanProtocolError:
            iqn = made.iqn
        await self._finish_new_volume(
            spec.name, spec, undo=True, grow_from=made.size_mb, set_description=True
        )
        return _ref(spec.name, iqn)

    async def _new_iqn(self, res: CommandCompleted, name: str) -> str:
        """The new volume's IQN; undoes the volume when it cannot be had."""
        try:
            try:
                return parse_target_name(res.lines, name)
            except SanProtocolError:
                # Unexpected wording or wrapping: the volume exists, so ask for its name.
                log.warning("no parsable target name after creating %s; reading it back", name)
                return (await self._existing(name)).iqn
        except BaseException as exc:
            await self._undo_volume(name, exc)
            raise

    async def _finish_new_volume(
        self,
        name: str,
        spec: VolumeSpec,
        *,
        undo: bool,
        grow_from: int | None = None,
        set_description: bool = False,
    ) -> None:
        try:
            if set_description:
                # Whether a clone keeps the description given to 'clone' or inherits the
                # source's is not documented; set ours explicitly.
                await self.runner.run(c.VolumeSetDescription(name, self.tag))
            # Grow only: a clone larger than asked for keeps its size (shrinking loses data).
            if (
                grow_from is not None
                and spec.size_mb > grow_from
                and not _same_size(grow_from, spec.size_mb)
            ):
                await self.runner.run(c.VolumeResize(name, spec.size_mb))
            await self.runner.run(c.VolumeMultihost(name, spec.multihost))
            await self._apply_access(name, spec.access)
        except BaseException as exc:
            if undo:
                await self._undo_volume(name, exc)
            raise

    async def _undo_volume(self, name: str, cause: BaseException) -> None:
        if isinstance(cause, SanConnectionError):
            # The session is gone: a command on it can only fail with a confusing
            # state error.  Say what is left; the caller may retry on a new session.
            log.warning("could not delete %s: the CLI session to the group broke", name)
            cause.add_note(
                f"The half-made volume {name} may still exist; delete it on the group "
                "if a retry does not."
            )
            return
        try:
            await self.runner.run(c.VolumeSetStatus(name, online=False), check=False)
            await self.runner.run(c.VolumeDelete(name))
            log.info("deleted %s again after a failed step: %s", name, cause)
        except Exception as undo_exc:
            log.error("could not delete %s after a failed step: %s", name, undo_exc)
            if isinstance(cause, Exception):
                cause.add_note(
                    f"The half-made volume {name} could not be deleted ({undo_exc}); "
                    "delete it on the group."
                )

    async def _adopt_existing(
        self, spec: VolumeSpec, exc: SanCommandError, *, grow: bool = False
    ) -> VolumeRef:
        """oned retried: accept a volume that is ours and has the size asked for.

        For clones (``grow``), an earlier attempt may have stopped before growing the
        clone, so a smaller volume of ours is accepted and grown.
        """
        name, size_mb = spec.name, spec.size_mb
        info = await self.volume_info(name)
        if info is None:
            raise exc
        ours = tag_owner(info.description) == self.datastore_id
        fits = _same_size(info.size_mb, size_mb) or (grow and info.size_mb < size_mb)
        if not ours or not fits:
            raise SanObjectExists(
                f"A volume named {name} already exists and is not this datastore's "
                f"{size_mb} MB volume; choose another name or remove it.",
                command=exc.command,
                error_line=exc.error_line,
            ) from None
        log.info("volume %s already exists and is ours; reusing it", name)
        # Redo the idempotent steps: the earlier attempt may have stopped before them.
        await self._finish_new_volume(name, spec, undo=False, grow_from=info.size_mb)
        return _ref(name, info.iqn, reused=True)

    # -- delete / resize ----------------------------------------------------------------
    async def delete_volume(self, name: str) -> bool:
        """Delete our volume; True when deleted, False when it was already gone."""
        info = await self.volume_info(name)
        if info is None:
            return False
        self._check_owned(info)
        if info.connections:
            raise SanCommandError(
                f"The volume {name} still has {info.connections} iSCSI connection(s); "
                "detach it from every host before deleting it.",
                command=c.VolumeDelete(name).display(),
                error_line="",
            )
        # Delete needs the volume offline (every client sends offline first, §4).
        try:
            await self.runner.run(c.VolumeSetStatus(name, online=False))
            await self.runner.run(c.VolumeDelete(name))
        except SanObjectMissing:
            return False
        return True

    async def resize_volume(self, name: str, size_mb: int) -> None:
        info = await self._owned(name)
        c.validate_size_mb(size_mb)
        if _same_size(info.size_mb, size_mb):
            return
        if size_mb < info.size_mb:
            raise SanInvalidValue(
                f"The volume {name} is {info.size_mb} MB and would shrink to {size_mb} MB; "
                "shrinking destroys data, so it is refused."
            )
        await self.runner.run(c.VolumeResize(name, size_mb))

    # -- snapshots ----------------------------------------------------------------------
    async def snapshot_create(self, volume: str, name: str | None = None) -> str:
        """Take a snapshot now; rename it to ``name`` when given.  Returns its name."""
        await self._owned(volume)
        if name is not None:
            c.validate_snapshot_name(name)
        res = await self.runner.run(c.SnapshotCreateNow(volume, description=self.tag))
        made = parse_snapshot_name(res.lines)
        if name is None or name == made:
            return made
        try:
            await self.runner.run(c.SnapshotRename(volume, made, name))
        except BaseException:
            await self.runner.run(c.SnapshotDelete(volume, made), check=False)
            raise
        return name

    async def snapshot_delete(self, volume: str, snapshot: str) -> bool:
        if await self.volume_info(volume) is None:
            return False
        await self._owned(volume)
        try:
            await self.runner.run(c.SnapshotDelete(volume, snapshot))
        except SanObjectMissing:
            return False
        return True

    async def snapshot_restore(self, volume: str, snapshot: str) -> None:
        """Restore needs the volume offline (PVE plugin); it is put online again after."""
        info = await self._owned(volume)
        if info.connections:
            raise SanCommandError(
                f"The volume {volume} has {info.connections} iSCSI connection(s); "
                "power off the VM before reverting the snapshot.",
                command=c.SnapshotRestore(volume, snapshot).display(),
                error_line="",
            )
        await self.runner.run(c.VolumeSetStatus(volume, online=False))
        try:
            await self.runner.run(c.SnapshotRestore(volume, snapshot))
        finally:
            await self.runner.run(c.VolumeSetStatus(volume, online=True))

    # -- CHAP users (group-local accounts for iSCSI CHAP) --------------------------------
    async def ensure_chap_user(self, name: str, secret: Secret) -> bool:
        """Create the CHAP user with this secret; True when created, False when it existed.

        An existing user with a different secret is refused rather than changed: other
        datastores or hosts may log in with it.  The secret is compared, never shown.
        """
        try:
            res = await self.runner.run(c.ChapUserShow(name))
        except SanObjectMissing:
            await self.runner.run(c.ChapUserCreate(name, secret))
            return True
        current = parse_chap_password(res.lines)
        import hmac  # noqa: PLC0415 - hashlib's import is not worth paying on every action

        if current is None or not hmac.compare_digest(current.encode(), secret.reveal()):
            raise SanObjectExists(
                f"The CHAP user {name} already exists on the group with another secret; "
                "choose another user name or update its secret on the group.",
                command=c.ChapUserShow(name).display(),
                error_line="",
            )
        return False

    async def delete_chap_user(self, name: str) -> bool:
        try:
            await self.runner.run(c.ChapUserDelete(name))
        except SanObjectMissing:
            return False
        return True

    # -- access -------------------------------------------------------------------------
    async def set_multihost(self, volume: str, enable: bool) -> None:
        await self._owned(volume)
        await self.runner.run(c.VolumeMultihost(volume, enable))

    async def ensure_access(self, volume: str, rules: Sequence[c.AccessRule]) -> None:
        await self._owned(volume)
        await self._apply_access(volume, rules)

    async def _apply_access(self, volume: str, rules: Sequence[c.AccessRule]) -> None:
        if not rules:
            return
        existing = {_record_key(r) for r in await self.access_records(volume)}
        created: list[tuple[str, str, str]] = []
        try:
            for rule in rules:
                key = _rule_key(rule)
                if key in existing:
                    continue
                await self.runner.run(c.AccessCreate(volume, rule))
                created.append(key)
                existing.add(key)
        except BaseException:
            # No half-made ACL: remove the records this call added.
            if created:
                for rec in await self.access_records(volume):
                    if _record_key(rec) in created:
                        await self.runner.run(c.AccessDelete(volume, rec.record_id), check=False)
            raise

    async def remove_access(self, volume: str, rules: Sequence[c.AccessRule]) -> int:
        """Delete every record matching one of ``rules``; returns how many went."""
        if await self.volume_info(volume) is None:
            return 0
        await self._owned(volume)
        keys = {_rule_key(r) for r in rules}
        removed = 0
        # Find record ids by content, never assume id 1 (Cinder bug 1296677).
        for rec in await self.access_records(volume):
            if _record_key(rec) in keys:
                try:
                    await self.runner.run(c.AccessDelete(volume, rec.record_id))
                    removed += 1
                except SanObjectMissing:
                    pass
        return removed
