"""The driver document's ``IMAGE`` as frozen dataclasses, and its parser.

See :mod:`eqliscsi.opennebula.driver_action`, which imports this module on first use of
one of its names (PEP 562) or when a document has an ``IMAGE``: ``monitor``, the action
oned runs most often, gets a document without one, and every remote pays its imports and
class creations on each oned call (docs/performance.md, "Remote start-up").
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from eqliscsi.opennebula.driver_action import _EMPTY, _int, _template, _text, _yes
from eqliscsi.opennebula.errors import BadValueError

TYPE_CHECKING = False  # not typing's: importing typing costs a remote ~3 ms (docs/performance.md)

if TYPE_CHECKING:
    import xml.etree.ElementTree as ET

__all__ = ["Image", "ImageSnapshot", "ImageType", "parse_image", "replace_target_snapshot"]


class ImageType(enum.IntEnum):
    """IMAGE/TYPE as oned serialises it (numeric)."""

    OS = 0
    CDROM = 1
    DATABLOCK = 2
    KERNEL = 3
    RAMDISK = 4
    CONTEXT = 5
    BACKUP = 6


@dataclass(frozen=True, slots=True)
class ImageSnapshot:
    """One ``IMAGE/SNAPSHOTS/SNAPSHOT`` (5.x+)."""

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


def parse_image(elem: ET.Element) -> Image:
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


def replace_target_snapshot(image: Image, snap: int) -> Image:
    return replace(image, target_snapshot=snap)
