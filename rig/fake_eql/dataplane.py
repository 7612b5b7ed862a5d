"""The fake array's data plane: model → backing files and real iSCSI targets.

Two kinds of work, kept apart:

- **bytes**: :class:`LunOp` values from the model (allocate, copy, resize, delete a
  sparse backing file under ``<state>/luns``).  Copies move only the allocated
  extents found with ``SEEK_DATA``/``SEEK_HOLE``, so a clone of a mostly empty 10 GiB
  volume costs what its data costs.
- **targets**: derived, not commanded.  After every command :meth:`DataPlane.reconcile`
  compares :func:`rig.fake_eql.model.desired_targets` with what it configured last
  and creates, re-ACLs or deletes targets on the backend (``offline`` therefore
  unbinds a target; delete removes it).

With a ``member`` backend the fake imitates the group/member split of a real group:
the group portal (``backend``) answers SendTargets for every volume and redirects
logins (status 0x0101, RFC 7143 §11.13.5) to the member portal where the LUN lives.
"""

from __future__ import annotations

import errno
import logging
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from eqliscsi.secret import Secret
from rig.fake_eql.model import LunOp, TargetSpec
from rig.targets.base import (
    EQUALLOGIC_IDENTITY,
    ChapAccount,
    Portal,
    ScsiIdentity,
    TargetBackend,
)

__all__ = ["DataPlane", "RecordingBackend", "sparse_copy"]

log = logging.getLogger(__name__)
_CHUNK = 1024 * 1024


def sparse_copy(src: Path, dst: Path, size: int) -> None:
    """Copy the first ``size`` bytes of ``src`` to ``dst``, keeping holes as holes."""
    with open(src, "rb") as fi, open(dst, "wb") as fo:
        fo.truncate(size)
        end = min(os.fstat(fi.fileno()).st_size, size)
        off = 0
        while off < end:
            try:
                start = os.lseek(fi.fileno(), off, os.SEEK_DATA)
            except OSError as e:
                if e.errno == errno.ENXIO:  # no data after off
                    break
                raise
            if start >= end:
                break
            stop = min(os.lseek(fi.fileno(), start, os.SEEK_HOLE), end)
            pos = start
            while pos < stop:
                chunk = os.pread(fi.fileno(), min(_CHUNK, stop - pos), pos)
                if not chunk:
                    break
                os.pwrite(fo.fileno(), chunk, pos)
                pos += len(chunk)
            off = stop


@dataclass
class _RecordedTarget:
    backing_file: Path
    identity: ScsiIdentity | None = None
    initiators: list[str] | None = field(default_factory=list)
    incoming: ChapAccount | None = None
    outgoing: ChapAccount | None = None
    redirect: Portal | None = None


class RecordingBackend:
    """An in-memory :class:`TargetBackend` for unit tests: it records, serves nothing."""

    def __init__(self, portal: Portal | None = None) -> None:
        self._portal = portal or Portal("127.0.0.1", 3260)
        self.targets: dict[str, _RecordedTarget] = {}
        self.calls: list[tuple[str, str]] = []
        self.sessions: dict[str, int] = {}
        self.discovery_chap: ChapAccount | None = None

    @property
    def kind(self) -> str:
        return "memory"

    @property
    def portal(self) -> Portal:
        return self._portal

    def create_target(
        self, iqn: str, backing_file: Path, identity: ScsiIdentity | None = None
    ) -> None:
        self.calls.append(("create", iqn))
        # as strict as tgt: the backing file must exist, the name must be new
        if not backing_file.is_file() or iqn in self.targets:
            raise ValueError(f"cannot create {iqn} on {backing_file}")
        self.targets[iqn] = _RecordedTarget(backing_file, identity)

    def delete_target(self, iqn: str) -> None:
        self.calls.append(("delete", iqn))
        self.targets.pop(iqn, None)

    def lun_of(self, iqn: str) -> int:
        return 1

    def set_initiators(self, iqn: str, initiators: list[str] | None) -> None:
        self.calls.append(("initiators", iqn))
        self.targets[iqn].initiators = None if initiators is None else list(initiators)

    def set_chap(
        self, iqn: str, incoming: ChapAccount | None, outgoing: ChapAccount | None
    ) -> None:
        self.calls.append(("chap", iqn))
        self.targets[iqn].incoming = incoming
        self.targets[iqn].outgoing = outgoing

    def set_discovery_chap(
        self, incoming: ChapAccount | None, outgoing: ChapAccount | None
    ) -> None:
        self.discovery_chap = incoming

    def set_redirect(self, iqn: str, to: Portal | None) -> None:
        self.calls.append(("redirect", iqn))
        self.targets[iqn].redirect = to

    def session_count(self, iqn: str) -> int:
        return self.sessions.get(iqn, 0)

    def close(self) -> None:
        self.targets.clear()


class DataPlane:
    """Applies the model to backing files and one or two target backends."""

    def __init__(
        self,
        backend: TargetBackend,
        lun_dir: Path,
        member: TargetBackend | None = None,
        *,
        redirect: Portal | None = None,
        more_groups: Sequence[tuple[TargetBackend, Portal]] = (),
    ) -> None:
        self.backend = backend
        self.member = member
        # Where the group portal sends logins.  The member's own listening address is
        # right on one machine; behind NAT (the Docker rig) the initiator must be told
        # an address it can reach, so the caller may say it.
        self.redirect = redirect or (member.portal if member is not None else None)
        # Further group portals, each redirecting to its own address of the member:
        # one per network an initiator may come from (see docs/docker-rig.md).
        self.more_groups = tuple(more_groups)
        if self.more_groups and member is None:
            raise ValueError("more group portals need a member backend to redirect to")
        self.lun_dir = lun_dir
        lun_dir.mkdir(parents=True, exist_ok=True)
        self._applied: dict[str, TargetSpec] = {}
        self._stale: set[str] = set()  # uids whose size changed under a live target

    def lun_path(self, uid: str) -> Path:
        return self.lun_dir / f"{uid}.img"

    def apply(self, ops: Iterable[LunOp]) -> None:
        for op in ops:
            path = self.lun_path(op.uid)
            if op.kind == "allocate":
                with open(path, "wb") as f:
                    f.truncate(op.size_bytes)
            elif op.kind == "copy":
                src = self.lun_path(op.source_uid)
                tmp = path.with_suffix(".copy")
                sparse_copy(src, tmp, op.size_bytes)
                os.replace(tmp, path)
                self._stale.add(op.uid)
            elif op.kind == "resize":
                os.truncate(path, op.size_bytes)
                self._stale.add(op.uid)
            elif op.kind == "delete":
                path.unlink(missing_ok=True)
            else:  # pragma: no cover - the model only makes the four kinds
                raise ValueError(f"unknown LUN operation {op.kind!r}")

    def reconcile(self, desired: dict[str, TargetSpec]) -> None:
        """Make the backends serve exactly ``desired``."""
        for iqn in list(self._applied):
            spec = self._applied[iqn]
            want = desired.get(iqn)
            if want is None or want.uid != spec.uid or spec.uid in self._stale:
                self._delete(iqn)
        for iqn, want in desired.items():
            if not self.lun_path(want.uid).exists():
                # The model runs ahead of the bytes: a command's LunOps are applied
                # after the shell has changed the model, so a target whose file is
                # not there yet is created by the reconcile that follows its ops.
                continue
            have = self._applied.get(iqn)
            if have is None:
                self._create(want)
            elif have != want:
                self._configure(want)
            self._applied[iqn] = want
        self._stale.clear()

    def session_count(self, iqn: str) -> int:
        if iqn not in self._applied:
            return 0
        try:
            # Count both portals: an initiator that ignores (or is not sent) the
            # group's redirect keeps its session on the group tgtd, and a real group
            # counts every connection to the volume wherever it landed.
            return sum(b.session_count(iqn) for b in self._backends())
        except Exception:  # a query for `show` must never break the shell
            log.exception("session count for %s failed", iqn)
            return 0

    def close(self) -> None:
        for iqn in list(self._applied):
            self._delete(iqn)

    def _backends(self) -> list[TargetBackend]:
        if self.member is None:
            return [self.backend]
        return [self.member, self.backend, *(g for g, _ in self.more_groups)]

    def _create(self, spec: TargetSpec) -> None:
        for b in self._backends():
            # Every LUN answers INQUIRY as a PS Series volume does (multipath and udev
            # rules match on it), where the backend can say so.
            b.create_target(spec.iqn, self.lun_path(spec.uid), EQUALLOGIC_IDENTITY)
        self._configure(spec)
        if self.redirect is not None:
            self.backend.set_redirect(spec.iqn, self.redirect)
        for group, to in self.more_groups:
            group.set_redirect(spec.iqn, to)

    def _configure(self, spec: TargetSpec) -> None:
        chap = (
            ChapAccount(spec.chap_user, Secret(spec.chap_password.encode(), origin="fake SAN"))
            if spec.chap_user
            else None
        )
        # Mutual CHAP: the group's target-authentication account is the target's
        # outgoing account (tgt `--outgoing`), offered when the initiator asks for it.
        mutual = (
            ChapAccount(spec.target_user, Secret(spec.target_password.encode(), origin="fake SAN"))
            if spec.target_user
            else None
        )
        initiators = None if spec.initiators is None else list(spec.initiators)
        for b in self._backends():
            b.set_initiators(spec.iqn, initiators)
            b.set_chap(spec.iqn, chap, mutual)

    def _delete(self, iqn: str) -> None:
        for b in self._backends():
            b.delete_target(iqn)
        self._applied.pop(iqn, None)
