"""The VM document (``onevm show -x``, the migrate template) as frozen dataclasses.

See :mod:`eqliscsi.opennebula.driver_action`, which imports this module on first use
of one of its names (PEP 562): only TM actions read a VM document, and every remote
pays its imports on each oned call (docs/performance.md, "Remote start-up").
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from eqliscsi.opennebula.driver_action import _EMPTY, _int, _parse, _text, _yes
from eqliscsi.opennebula.errors import BadDocumentError

TYPE_CHECKING = False  # not typing's: importing typing costs a remote ~3 ms (docs/performance.md)

if TYPE_CHECKING:
    import xml.etree.ElementTree as ET

__all__ = ["LCM_STATE_RUNNING", "VM_STATE_ACTIVE", "VM_STATE_DONE", "Vm", "VmDisk", "parse_vm"]


@dataclass(frozen=True, slots=True)
class VmDisk:
    """``VM/TEMPLATE/DISK``; volatile disks have no IMAGE_ID, SOURCE or TM_MAD."""

    disk_id: int
    tm_mad: str
    tm_mad_system: str
    source: str
    persistent: bool
    clone: bool
    image_id: int | None
    datastore_id: int | None
    size_mb: int | None
    original_size_mb: int | None
    type: str
    attrs: Mapping[str, str] = field(default_factory=lambda: _EMPTY)


# OpenNebula's VirtualMachine::VmState and LcmState values (stable since 3.x).
VM_STATE_ACTIVE = 3
VM_STATE_DONE = 6
LCM_STATE_RUNNING = 3


@dataclass(frozen=True, slots=True)
class Vm:
    """The VM document TM pre/post/failmigrate receive (reference §6.3)."""

    id: int
    name: str
    state: int | None
    lcm_state: int | None
    disks: tuple[VmDisk, ...]
    # HISTORY_RECORDS/HISTORY/HOSTNAME in record order (SEQ): where oned placed the VM.
    history_hosts: tuple[str, ...] = ()

    def hosts_in_use(self) -> frozenset[str] | None:
        """The hosts where, by oned's account, this VM may hold its disks now.

        ``None`` when the document says nothing (no history records): the caller
        must then assume the VM may be anywhere.  A VM that is ``DONE`` holds no
        host.  One that is ``ACTIVE``/``RUNNING`` is on its last record's host only:
        after a failed live migration oned writes a new record copying the source
        host ("Fail to live migrate VM. Assuming that the VM is still RUNNING"), so
        the destination of the failed attempt is no longer listed.  Any other state
        (a migration in flight, poweroff, suspended, a transition) keeps the last
        two records' hosts, so a migration's source and destination both count.
        """
        if self.state == VM_STATE_DONE:
            return frozenset()
        if not self.history_hosts:
            return None
        if self.state == VM_STATE_ACTIVE and self.lcm_state == LCM_STATE_RUNNING:
            return frozenset(self.history_hosts[-1:])
        return frozenset(self.history_hosts[-2:])

    def disks_of(self, tm_mad: str) -> tuple[VmDisk, ...]:
        """The disks a TM owns: what a slave pre/postmigrate must act on (§6.3)."""
        return tuple(d for d in self.disks if d.tm_mad == tm_mad)

    def disk(self, disk_id: int) -> VmDisk:
        for d in self.disks:
            if d.disk_id == disk_id:
                return d
        raise BadDocumentError(f"VM {self.id} has no disk {disk_id}; the VM document is stale.")


def parse_vm(document: bytes) -> Vm:
    """Parse a ``<VM>`` document (``onevm show -x`` or the migrate template)."""
    root = _parse(document, "VM")
    if root.tag != "VM":
        raise BadDocumentError(f"The VM document's root is <{root.tag[:40]}>, not <VM>.")
    vm_id = _int(root, "ID", "VM", required=True)
    assert vm_id is not None
    disks: list[VmDisk] = []
    for d in root.findall("TEMPLATE/DISK"):
        disk_id = _int(d, "DISK_ID", "VM disk", required=True)
        assert disk_id is not None
        attrs = {c.tag: (c.text or "").strip() for c in d if not len(c)}
        disks.append(
            VmDisk(
                disk_id=disk_id,
                tm_mad=attrs.get("TM_MAD", ""),
                tm_mad_system=attrs.get("TM_MAD_SYSTEM", ""),
                source=attrs.get("SOURCE", ""),
                persistent=_yes(attrs.get("PERSISTENT")),
                clone=_yes(attrs.get("CLONE")),
                image_id=_int(d, "IMAGE_ID", "VM disk"),
                datastore_id=_int(d, "DATASTORE_ID", "VM disk"),
                size_mb=_int(d, "SIZE", "VM disk"),
                original_size_mb=_int(d, "ORIGINAL_SIZE", "VM disk"),
                type=attrs.get("TYPE", ""),
                attrs=MappingProxyType(attrs),
            )
        )
    return Vm(
        id=vm_id,
        name=_text(root, "NAME") or "",
        state=_int(root, "STATE", "VM"),
        lcm_state=_int(root, "LCM_STATE", "VM"),
        disks=tuple(disks),
        history_hosts=_history_hosts(root),
    )


def _history_hosts(root: ET.Element) -> tuple[str, ...]:
    records: list[tuple[int, str]] = []
    for h in root.findall("HISTORY_RECORDS/HISTORY"):
        seq = _int(h, "SEQ", "VM history")
        host = (h.findtext("HOSTNAME") or "").strip()
        if host:
            records.append((seq if seq is not None else len(records), host))
    return tuple(host for _, host in sorted(records))
