"""oned's XML documents as frozen dataclasses.

``DS_DRIVER_ACTION_DATA`` = ``<IMAGE>`` (absent for monitor) + ``<DATASTORE>`` (+
extra elements from 5.x), reference §2.2 and §6.1; the VM document is what TM
pre/post/failmigrate receive (§6.3).  The element set differs per version:

* 4.4: ``IMAGE/FSTYPE``; SOURCE, PATH, BASE_PATH raw text; no datastore STATE.
* 5.12: CDATA everywhere, ``TARGET_SNAPSHOT``, ``SNAPSHOTS``, ``STATE``.
* 6.x/7.x: ``FORMAT`` + ``FS`` replace ``FSTYPE``.

Parsing uses defusedxml with DTDs, entities and external references forbidden: oned
never sends any, so a document that has them (an entity-expansion bomb, say) is
refused with one clean error instead of being expanded.  This module does no I/O.
"""

from __future__ import annotations

import enum
import importlib
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any

from eqliscsi.opennebula.errors import BadDocumentError, BadValueError

# defusedxml ships no type hints; importing it by name keeps mypy --strict clean with
# or without the types-defusedxml stubs installed.
_defused: Any = importlib.import_module("defusedxml")
_DET: Any = importlib.import_module("defusedxml.ElementTree")

__all__ = [
    "Datastore",
    "DriverAction",
    "Image",
    "ImageSnapshot",
    "ImageType",
    "Vm",
    "VmDisk",
    "parse_datastore",
    "parse_driver_action",
    "parse_vm",
]


class ImageType(enum.IntEnum):
    """IMAGE/TYPE as oned serialises it (numeric)."""

    OS = 0
    CDROM = 1
    DATABLOCK = 2
    KERNEL = 3
    RAMDISK = 4
    CONTEXT = 5
    BACKUP = 6


_EMPTY: Mapping[str, str] = MappingProxyType({})


def _parse(document: bytes, what: str) -> ET.Element:
    if not document.strip():
        raise BadDocumentError(f"The {what} document oned passed is empty.")
    try:
        root = _DET.fromstring(
            document, forbid_dtd=True, forbid_entities=True, forbid_external=True
        )
    except _defused.DefusedXmlException:
        raise BadDocumentError(
            f"The {what} document declares a DTD or entities, which oned never sends; refusing it."
        ) from None
    except ET.ParseError as exc:
        raise BadDocumentError(f"The {what} document is not well-formed XML ({exc}).") from None
    assert isinstance(root, ET.Element)
    return root


def _text(elem: ET.Element | None, tag: str) -> str | None:
    if elem is None:
        return None
    child = elem.find(tag)
    if child is None:
        return None
    return (child.text or "").strip()


def _int(elem: ET.Element | None, tag: str, what: str, *, required: bool = False) -> int | None:
    raw = _text(elem, tag)
    if raw is None or raw == "":
        if required:
            raise BadDocumentError(f"The {what} has no {tag}; oned always sends one.")
        return None
    try:
        return int(raw)
    except ValueError:
        raise BadValueError(f"The {what} {tag} {raw[:40]!r} is not an integer.") from None


def _template(elem: ET.Element | None) -> Mapping[str, str]:
    """Single-valued TEMPLATE attributes; vector attributes (nested) are skipped.

    oned orders attributes by name and may repeat one; the first occurrence wins,
    as with ``xpath.rb``'s first-match semantics the shell drivers rely on.
    """
    if elem is None:
        return _EMPTY
    tpl = elem.find("TEMPLATE")
    if tpl is None:
        return _EMPTY
    out: dict[str, str] = {}
    for child in tpl:
        if len(child) or child.tag in out:
            continue
        out[child.tag] = (child.text or "").strip()
    return MappingProxyType(out)


def _yes(value: str | None) -> bool:
    return (value or "").strip().upper() in {"1", "YES", "TRUE"}


@dataclass(frozen=True, slots=True)
class ImageSnapshot:
    id: int
    name: str
    parent: int
    active: bool


@dataclass(frozen=True, slots=True)
class Image:
    """``DS_DRIVER_ACTION_DATA/IMAGE``.

    ``size_mb`` is None when absent or empty (stat's document has only PATH); a
    negative size other than oned's "unknown" marker is refused.
    """

    id: int | None
    name: str
    source: str
    path: str
    size_mb: int | None
    type: ImageType | None
    persistent: bool
    fstype: str  # 4.4 only
    format: str  # 6.x: raw, qcow2, save_as …
    fs: str  # 6.x: filesystem for mkfs
    state: int | None
    datastore_id: int | None
    cloning_id: int | None
    target_snapshot: int | None
    template: Mapping[str, str] = field(default_factory=lambda: _EMPTY)
    snapshots: tuple[ImageSnapshot, ...] = ()

    @property
    def is_save_as(self) -> bool:
        """mkfs for a deferred save_as placeholder (4.4 FSTYPE, 6.x FORMAT)."""
        return "save_as" in {self.fstype, self.format}

    @property
    def filesystem(self) -> str:
        """The filesystem mkfs should create ('' or 'raw' = none)."""
        if self.fs:
            return self.fs
        return "" if self.fstype in {"save_as", "raw"} else self.fstype

    @property
    def description(self) -> str:
        return self.template.get("DESCRIPTION", "")


@dataclass(frozen=True, slots=True)
class Datastore:
    """``DS_DRIVER_ACTION_DATA/DATASTORE``; ``template`` holds EQL_* and the stock attrs."""

    id: int
    name: str
    ds_mad: str
    tm_mad: str
    base_path: str
    type: int | None
    disk_type: int | None
    state: int | None
    template: Mapping[str, str] = field(default_factory=lambda: _EMPTY)

    @property
    def bridge_list(self) -> tuple[str, ...]:
        return tuple(self.template.get("BRIDGE_LIST", "").split())

    @property
    def restricted_dirs(self) -> tuple[str, ...]:
        return tuple(self.template.get("RESTRICTED_DIRS", "").split())

    @property
    def safe_dirs(self) -> tuple[str, ...]:
        return tuple(self.template.get("SAFE_DIRS", "").split())


@dataclass(frozen=True, slots=True)
class DriverAction:
    image: Image | None
    datastore: Datastore


def _parse_image(elem: ET.Element) -> Image:
    what = "IMAGE"
    size = _int(elem, "SIZE", what)
    # oned writes SIZE -1 … never for images it hands to a driver except a few
    # placeholder states; anything below -1 is corrupt.
    if size is not None and size < 0:
        raise BadValueError(f"The image SIZE {size} is negative; set a positive SIZE in MB.")
    raw_type = _text(elem, "TYPE")
    image_type: ImageType | None = None
    if raw_type:
        try:
            image_type = ImageType(int(raw_type)) if raw_type.isdigit() else ImageType[raw_type]
        except (KeyError, ValueError):
            raise BadValueError(
                f"The image TYPE {raw_type[:20]!r} is not one oned knows."
            ) from None
    snapshots: list[ImageSnapshot] = []
    snaps = elem.find("SNAPSHOTS")
    if snaps is not None:
        for s in snaps.findall("SNAPSHOT"):
            sid = _int(s, "ID", "image snapshot", required=True)
            assert sid is not None
            parent = _int(s, "PARENT", "image snapshot")
            snapshots.append(
                ImageSnapshot(
                    id=sid,
                    name=_text(s, "NAME") or "",
                    parent=-1 if parent is None else parent,
                    active=_yes(_text(s, "ACTIVE")),
                )
            )
    return Image(
        id=_int(elem, "ID", what),
        name=_text(elem, "NAME") or "",
        source=_text(elem, "SOURCE") or "",
        path=_text(elem, "PATH") or "",
        size_mb=size,
        type=image_type,
        persistent=_yes(_text(elem, "PERSISTENT")),
        fstype=_text(elem, "FSTYPE") or "",
        format=_text(elem, "FORMAT") or "",
        fs=_text(elem, "FS") or "",
        state=_int(elem, "STATE", what),
        datastore_id=_int(elem, "DATASTORE_ID", what),
        cloning_id=_int(elem, "CLONING_ID", what),
        target_snapshot=_int(elem, "TARGET_SNAPSHOT", what),
        template=_template(elem),
        snapshots=tuple(snapshots),
    )


def _parse_datastore(elem: ET.Element) -> Datastore:
    what = "DATASTORE"
    ds_id = _int(elem, "ID", what, required=True)
    assert ds_id is not None
    return Datastore(
        id=ds_id,
        name=_text(elem, "NAME") or "",
        ds_mad=_text(elem, "DS_MAD") or "",
        tm_mad=_text(elem, "TM_MAD") or "",
        base_path=_text(elem, "BASE_PATH") or "",
        type=_int(elem, "TYPE", what),
        disk_type=_int(elem, "DISK_TYPE", what),
        state=_int(elem, "STATE", what),
        template=_template(elem),
    )


def parse_datastore(document: bytes) -> Datastore:
    """Parse a ``<DATASTORE>`` document (``onedatastore show -x``)."""
    root = _parse(document, "DATASTORE")
    if root.tag != "DATASTORE":
        raise BadDocumentError(
            f"The datastore document's root is <{root.tag[:40]}>, not <DATASTORE>."
        )
    return _parse_datastore(root)


def parse_driver_action(document: bytes) -> DriverAction:
    """Parse decoded ``DS_DRIVER_ACTION_DATA`` XML.

    Raises:
        BadDocumentError: not XML, DTD/entities present, wrong root, no DATASTORE.
        BadValueError: a numeric field that is not a number, a negative SIZE.
    """
    root = _parse(document, "DS_DRIVER_ACTION_DATA")
    if root.tag != "DS_DRIVER_ACTION_DATA":
        raise BadDocumentError(
            f"The driver document's root is <{root.tag[:40]}>, not <DS_DRIVER_ACTION_DATA>."
        )
    ds = root.find("DATASTORE")
    if ds is None:
        raise BadDocumentError("The driver document has no DATASTORE; oned always sends one.")
    img = root.find("IMAGE")
    image = _parse_image(img) if img is not None else None
    # 5.x+ may also put TARGET_SNAPSHOT at the root for snap_* (§2.2).
    if image is not None and image.target_snapshot is None:
        root_snap = _int(root, "TARGET_SNAPSHOT", "driver document")
        if root_snap is not None:
            image = _replace_target_snapshot(image, root_snap)
    return DriverAction(image=image, datastore=_parse_datastore(ds))


def _replace_target_snapshot(image: Image, snap: int) -> Image:
    return replace(image, target_snapshot=snap)


# --- VM document (TM actions) -------------------------------------------------------


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
