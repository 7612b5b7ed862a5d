"""The XML documents oned builds, per version (reference §2.2, §6.1, §6.3).

Shapes, in the order oned serialises elements:

* ``<IMAGE>``: ID UID GID UNAME GNAME NAME [LOCK] PERMISSIONS TYPE DISK_TYPE PERSISTENT
  REGTIME SOURCE PATH FSTYPE (4.4, 5.12) | FORMAT FS (6.x+) SIZE STATE [PREV_STATE]
  RUNNING_VMS CLONING_OPS CLONING_ID [TARGET_SNAPSHOT] DATASTORE_ID DATASTORE VMS
  CLONES [APP_CLONES] TEMPLATE [SNAPSHOTS] [BACKUP_INCREMENTS] [BACKUP_DISK_IDS]
  [MODTIME].
* ``<DATASTORE>``: ID UID GID UNAME GNAME NAME PERMISSIONS DS_MAD TM_MAD BASE_PATH
  TYPE DISK_TYPE [STATE] CLUSTER_ID/CLUSTER (4.4) | CLUSTERS TOTAL_MB FREE_MB USED_MB
  IMAGES TEMPLATE.
* Template attributes are CDATA in every version, ordered by name; from 5.12 string
  elements are CDATA too, in 4.4 SOURCE, PATH and BASE_PATH are raw (escaped) text.

This is rig code: it builds documents for the simulator and for tests, it does not
parse them (the driver's own parser is under test).
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from xml.sax.saxutils import escape

__all__ = [
    "DatastoreSpec",
    "DiskSpec",
    "ImageSpec",
    "VmSpec",
    "b64",
    "datastore_xml",
    "driver_action_xml",
    "image_xml",
    "vm_xml",
]


def _cdata(text: str) -> str:
    # "]]>" cannot appear inside CDATA: split it over two sections as libxml2 does.
    return "<![CDATA[" + text.replace("]]>", "]]]]><![CDATA[>") + "]]>"


def _el(tag: str, value: object, *, cdata: bool) -> str:
    text = str(value)
    if text == "":
        return f"<{tag}/>" if not cdata else f"<{tag}>{_cdata('')}</{tag}>"
    return f"<{tag}>{_cdata(text) if cdata else escape(text)}</{tag}>"


def _template(attrs: Mapping[str, str]) -> str:
    body = "".join(f"<{k}>{_cdata(v)}</{k}>" for k, v in sorted(attrs.items()))
    return f"<TEMPLATE>{body}</TEMPLATE>"


def _permissions() -> str:
    bits = ["OWNER_U", "OWNER_M", "OWNER_A", "GROUP_U", "GROUP_M", "GROUP_A"]
    bits += ["OTHER_U", "OTHER_M", "OTHER_A"]
    return (
        "<PERMISSIONS>"
        + "".join(f"<{b}>{int(b in {'OWNER_U', 'OWNER_M'})}</{b}>" for b in bits)
        + "</PERMISSIONS>"
    )


def _major_minor(version: str) -> tuple[int, int]:
    parts = version.split(".")
    return int(parts[0]), int(parts[1])


@dataclass(frozen=True)
class ImageSpec:
    id: int = 7
    name: str = "Ubuntu 14.04_srv"
    type: int = 0  # OS
    persistent: bool = False
    source: str = ""
    path: str = ""
    size_mb: int | str = 40
    fstype: str = ""  # 4.4/5.12 FSTYPE; 6.x+ maps it onto FORMAT/FS
    format: str = "raw"
    fs: str = ""
    state: int = 4  # LOCKED while the driver works
    cloning_id: int = -1
    target_snapshot: int | None = None
    datastore_id: int = 100
    datastore: str = "eql"
    template: Mapping[str, str] = field(default_factory=dict)
    snapshots: Sequence[tuple[int, str, int, bool]] = ()


@dataclass(frozen=True)
class DatastoreSpec:
    id: int = 100
    name: str = "eql"
    ds_mad: str = "eqliscsi"
    tm_mad: str = "eqliscsi"
    base_path: str = "/var/lib/one//datastores/100"
    type: int = 0  # IMAGE_DS
    disk_type: int = 2  # BLOCK
    template: Mapping[str, str] = field(
        default_factory=lambda: {
            "DS_MAD": "eqliscsi",
            "TM_MAD": "eqliscsi",
            "DISK_TYPE": "BLOCK",
            "EQL_HOST": "127.0.0.1",
            "EQL_POOL": "default",
        }
    )


def image_xml(version: str, spec: ImageSpec) -> str:
    v = _major_minor(version)
    modern = v >= (5, 12)
    c = modern
    parts = [
        _el("ID", spec.id, cdata=False),
        "<UID>0</UID><GID>0</GID>",
        _el("UNAME", "oneadmin", cdata=True),
        _el("GNAME", "oneadmin", cdata=True),
        _el("NAME", spec.name, cdata=True),
        _permissions(),
        _el("TYPE", spec.type, cdata=False),
        _el("DISK_TYPE", 2, cdata=False),
        _el("PERSISTENT", int(spec.persistent), cdata=False),
        "<REGTIME>1700000000</REGTIME>",
        _el("SOURCE", spec.source, cdata=c),
        _el("PATH", spec.path, cdata=c),
    ]
    if v >= (6, 0):
        fmt = "save_as" if spec.fstype == "save_as" else spec.format
        fs = spec.fs or ("" if spec.fstype in ("", "raw", "save_as") else spec.fstype)
        parts += [_el("FORMAT", fmt, cdata=True), _el("FS", fs, cdata=True)]
    else:
        parts.append(_el("FSTYPE", spec.fstype, cdata=c))
    parts += [_el("SIZE", spec.size_mb, cdata=False), _el("STATE", spec.state, cdata=False)]
    if v >= (6, 0):
        parts.append("<PREV_STATE>0</PREV_STATE>")
    parts += [
        "<RUNNING_VMS>0</RUNNING_VMS><CLONING_OPS>0</CLONING_OPS>",
        _el("CLONING_ID", spec.cloning_id, cdata=False),
    ]
    if modern:
        tgt = "" if spec.target_snapshot is None else spec.target_snapshot
        parts.append(_el("TARGET_SNAPSHOT", tgt if tgt != "" else -1, cdata=False))
    parts += [
        _el("DATASTORE_ID", spec.datastore_id, cdata=False),
        _el("DATASTORE", spec.datastore, cdata=True),
        "<VMS/><CLONES/>",
    ]
    if modern:
        parts.append("<APP_CLONES/>")
    parts.append(_template(spec.template))
    if modern:
        snaps = "".join(
            f"<SNAPSHOT><ACTIVE>{'YES' if act else 'NO'}</ACTIVE><CHILDREN/><DATE>1700000000</DATE>"
            f"<ID>{sid}</ID>{_el('NAME', name, cdata=True)}<PARENT>{parent}</PARENT>"
            f"<SIZE>{spec.size_mb}</SIZE></SNAPSHOT>"
            for sid, name, parent, act in spec.snapshots
        )
        parts.append(f"<SNAPSHOTS><ALLOW_ORPHANS><![CDATA[NO]]></ALLOW_ORPHANS>{snaps}</SNAPSHOTS>")
    if v >= (6, 6):
        parts.append("<BACKUP_INCREMENTS/>")
    if v >= (6, 10):
        parts.append("<BACKUP_DISK_IDS/>")
    if v >= (7, 0):
        parts.append("<MODTIME>1700000000</MODTIME>")
    return "<IMAGE>" + "".join(parts) + "</IMAGE>"


def datastore_xml(version: str, spec: DatastoreSpec) -> str:
    v = _major_minor(version)
    c = v >= (5, 12)
    parts = [
        _el("ID", spec.id, cdata=False),
        "<UID>0</UID><GID>0</GID>",
        _el("UNAME", "oneadmin", cdata=True),
        _el("GNAME", "oneadmin", cdata=True),
        _el("NAME", spec.name, cdata=True),
        _permissions(),
        _el("DS_MAD", spec.ds_mad, cdata=True),
        _el("TM_MAD", spec.tm_mad, cdata=True),
        _el("BASE_PATH", spec.base_path, cdata=c),
        _el("TYPE", spec.type, cdata=False),
        _el("DISK_TYPE", spec.disk_type, cdata=False),
    ]
    if c:
        parts.append("<STATE>0</STATE><CLUSTERS><ID>0</ID></CLUSTERS>")
    else:
        parts.append("<CLUSTER_ID>-1</CLUSTER_ID><CLUSTER/>")
    parts += ["<TOTAL_MB>0</TOTAL_MB><FREE_MB>0</FREE_MB><USED_MB>0</USED_MB><IMAGES/>"]
    parts.append(_template(spec.template))
    return "<DATASTORE>" + "".join(parts) + "</DATASTORE>"


def driver_action_xml(version: str, image: ImageSpec | None, datastore: DatastoreSpec) -> str:
    """``DS_DRIVER_ACTION_DATA``; ``image=None`` for monitor (§6.1)."""
    img = image_xml(version, image) if image is not None else ""
    return (
        f"<DS_DRIVER_ACTION_DATA>{img}{datastore_xml(version, datastore)}</DS_DRIVER_ACTION_DATA>"
    )


@dataclass(frozen=True)
class DiskSpec:
    disk_id: int
    image_id: int | None = 7
    source: str = "ubuntu-14-04-srv.7"
    tm_mad: str = "eqliscsi"
    datastore_id: int = 100
    persistent: bool = False
    size_mb: int = 40


@dataclass(frozen=True)
class VmSpec:
    id: int = 42
    name: str = "vm"
    disks: Sequence[DiskSpec] = ()
    # HISTORY_RECORDS: the host of each record in order (SEQ 0, 1, …); empty = none.
    history: Sequence[str] = ()
    state: int = 3  # ACTIVE
    lcm_state: int = 3  # RUNNING


def vm_xml(version: str, spec: VmSpec) -> str:
    """A ``<VM>`` with disk elements sorted by name, per version (§6.3)."""
    v = _major_minor(version)
    disks = []
    for d in spec.disks:
        attrs: dict[str, str] = {"DISK_ID": str(d.disk_id), "TARGET": f"vd{chr(97 + d.disk_id)}"}
        if d.image_id is not None:
            attrs |= {
                "CLONE": "NO" if d.persistent else "YES",
                "CLONE_TARGET": "SELF",
                "DATASTORE": "eql",
                "DATASTORE_ID": str(d.datastore_id),
                "DEV_PREFIX": "vd",
                "IMAGE": "img",
                "IMAGE_ID": str(d.image_id),
                "LN_TARGET": "NONE",
                "READONLY": "NO",
                "SAVE": "NO",
                "SIZE": str(d.size_mb),
                "SOURCE": d.source,
                "TM_MAD": d.tm_mad,
                "TYPE": "BLOCK" if v >= (5, 12) else "FILE",
            }
            if d.persistent:
                attrs["PERSISTENT"] = "YES"
            if v >= (5, 12):
                attrs |= {
                    "CLUSTER_ID": "0",
                    "DISK_SNAPSHOT_TOTAL_SIZE": "0",
                    "DISK_TYPE": "BLOCK",
                    "DRIVER": "raw",
                    "IMAGE_STATE": "2",
                    "ORIGINAL_SIZE": str(d.size_mb),
                    "TM_MAD_SYSTEM": "shared",
                }
            if v >= (6, 0):
                attrs["FORMAT"] = "raw"
        else:
            attrs |= {"SIZE": str(d.size_mb), "TYPE": "fs"}
        body = "".join(f"<{k}>{_cdata(val)}</{k}>" for k, val in sorted(attrs.items()))
        disks.append(f"<DISK>{body}</DISK>")
    history = "".join(
        f"<HISTORY><OID>{spec.id}</OID><SEQ>{seq}</SEQ>{_el('HOSTNAME', host, cdata=True)}"
        f"<HID>{seq}</HID><CID>0</CID><DS_ID>0</DS_ID></HISTORY>"
        for seq, host in enumerate(spec.history)
    )
    records = f"<HISTORY_RECORDS>{history}</HISTORY_RECORDS>" if history else "<HISTORY_RECORDS/>"
    return (
        f"<VM><ID>{spec.id}</ID><UID>0</UID><GID>0</GID>{_el('NAME', spec.name, cdata=True)}"
        f"<STATE>{spec.state}</STATE><LCM_STATE>{spec.lcm_state}</LCM_STATE>"
        f"<TEMPLATE>{''.join(disks)}</TEMPLATE>{records}</VM>"
    )


def b64(text: str) -> str:
    return base64.b64encode(text.encode("utf-8")).decode("ascii")


# The two datastores every rig registers, as oned's `onedatastore show -x` answers them:
# the driver's image datastore and the shared system one.
IMAGE_DS = DatastoreSpec(
    id=100, template={"DS_MAD": "eqliscsi", "TM_MAD": "eqliscsi", "EQL_POOL": "default"}
)
SYSTEM_DS = DatastoreSpec(
    id=0,
    name="system",
    ds_mad="-",
    tm_mad="shared",
    base_path="/var/lib/one//datastores/0",
    type=1,
    disk_type=0,
    template={"TM_MAD": "shared", "TYPE": "SYSTEM_DS"},
)
