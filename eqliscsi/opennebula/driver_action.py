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

import importlib
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from eqliscsi import _lazy
from eqliscsi._record import Record
from eqliscsi.opennebula.errors import BadDocumentError, BadValueError

TYPE_CHECKING = False  # not typing's: importing typing costs a remote ~3 ms (docs/performance.md)

if TYPE_CHECKING:
    from typing import Any

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


@dataclass(frozen=True, slots=True, eq=False, repr=False)
class Datastore(Record):
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


@dataclass(frozen=True, slots=True, eq=False, repr=False)
class DriverAction(Record):
    """``DS_DRIVER_ACTION_DATA``: the image (absent for monitor) and the datastore."""

    image: Image | None
    datastore: Datastore


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
    image = None
    if img is not None:
        # Only image actions get here; monitor's document has no IMAGE (see _image).
        from eqliscsi.opennebula._image import parse_image, replace_target_snapshot  # noqa: PLC0415

        image = parse_image(img)
    # 5.x+ may also put TARGET_SNAPSHOT at the root for snap_* (§2.2).
    if image is not None and image.target_snapshot is None:
        root_snap = _int(root, "TARGET_SNAPSHOT", "driver document")
        if root_snap is not None:
            image = replace_target_snapshot(image, root_snap)
    return DriverAction(image=image, datastore=_parse_datastore(ds))


# The image's and the VM document's classes live in submodules loaded on first use
# (see their docstrings).
_LAZY = {
    "Image": "_image",
    "ImageSnapshot": "_image",
    "ImageType": "_image",
    "Vm": "_vm_document",
    "VmDisk": "_vm_document",
    "parse_vm": "_vm_document",
}

if TYPE_CHECKING:
    from eqliscsi.opennebula._image import Image, ImageSnapshot, ImageType
    from eqliscsi.opennebula._vm_document import Vm, VmDisk, parse_vm


def __getattr__(name: str) -> object:
    return _lazy.load(__name__, "eqliscsi.opennebula", _LAZY, name)


def __dir__() -> list[str]:
    return _lazy.names(__name__, _LAZY)
