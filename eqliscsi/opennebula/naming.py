"""EqualLogic volume names for OpenNebula images, and reading SOURCE back.

Volume names are built, never taken from users: an image NAME is free text (quotes,
``;``, ``$(…)``, newlines, 200 characters, any Unicode), while a PS Series volume
name is 1-63 characters of ``[A-Za-z0-9.-]`` (the CLI also takes ``:`` but that
would clash with oned's ``host:path`` splitting of SOURCE, §2.4).

* Registered image: ``<clean(NAME)>.<IMAGE_ID>`` as the original add-on did (§1.4,
  "Ubuntu 14.04_srv", id 7 → ``ubuntu-14-04-srv.7``).  The id makes it unique; the
  cleaned name only helps the SAN admin recognise it, so it is truncated freely.
* Non-persistent copy for a VM disk: ``<source>-<VMID>-<DISKID>``.  The original
  used ``<source>-<VMID>`` and collided when one VM attached the same image twice
  (§1.9 item 2).  When that does not fit in 63 characters the source part is cut
  and a hash of the full source keeps distinct sources distinct.
* SOURCE printed by cp/mkfs/clone is the bare volume name.  The v0.1 forms
  ``EQL_HOST:vol`` and ``EQL_HOST:iqn.2001-05.com.equallogic:0-8a0906-…-vol`` are
  still read.
"""

from __future__ import annotations

import re

from eqliscsi._lazyre import LazyPattern
from eqliscsi.opennebula.errors import BadValueError

__all__ = [
    "MAX_VOLUME_NAME",
    "check_volume_name",
    "clean_name",
    "image_volume_name",
    "snapshot_name",
    "vm_disk_volume_name",
    "volume_from_source",
]

MAX_VOLUME_NAME = 63
_VOLUME_RE = LazyPattern(r"^[A-Za-z0-9][A-Za-z0-9.\-]{0,62}$")
# iqn.2001-05.com.equallogic:0-8a0906-<9 hex>-<16 hex>-<volume>: the part after the
# colon has a fixed 36-character prefix (§1.4).
_EQL_IQN_RE = LazyPattern(
    r"^iqn\.2001-05\.com\.equallogic:0-8a0906-[0-9a-f]{9}-[0-9a-f]{16}-(?P<vol>.+)$"
)


def check_volume_name(name: str) -> str:
    """Return ``name`` if it is a valid volume name, else raise BadValueError."""
    if not _VOLUME_RE.match(name):
        raise BadValueError(
            f"The volume name {name[:80]!r} is not 1-63 characters of letters, digits, "
            "'.' and '-' starting with a letter or digit."
        )
    return name


def clean_name(text: str) -> str:
    """Lower-case ASCII letters/digits, everything else one '-' per run.

    Accents are folded (``Débian`` → ``debian``) before the rest is dropped, so
    typical names stay readable; an all-symbol name becomes ``img``.
    """
    # Imported here: monitor, the most frequent remote, names no volume (a ~0.5 ms .so).
    import unicodedata  # noqa: PLC0415

    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    cleaned = re.sub(r"[^a-z0-9]+", "-", folded.lower()).strip("-")
    return cleaned or "img"


def _fit(base: str, suffix: str) -> str:
    room = MAX_VOLUME_NAME - len(suffix)
    base = base[:room].rstrip("-.")
    return f"{base}{suffix}"


def image_volume_name(image_name: str, image_id: int) -> str:
    """The volume for a registered image (cp, mkfs, clone's new image)."""
    if image_id < 0:
        raise BadValueError(f"The image id {image_id} is negative; oned never sends one.")
    name = _fit(clean_name(image_name), f".{image_id}")
    if not name[0].isalnum():  # the cleaned name was cut to nothing
        name = f"img{name}"
    return check_volume_name(name)


def vm_disk_volume_name(source_volume: str, vm_id: int, disk_id: int) -> str:
    """The volume of a non-persistent VM disk, cloned from ``source_volume``."""
    check_volume_name(source_volume)
    if vm_id < 0 or disk_id < 0:
        raise BadValueError("VM and disk ids must not be negative; oned never sends such ids.")
    suffix = f"-{vm_id}-{disk_id}"
    if len(source_volume) + len(suffix) <= MAX_VOLUME_NAME:
        return check_volume_name(source_volume + suffix)
    import hashlib  # noqa: PLC0415 - clone names only; remotes pay each import per call

    digest = hashlib.sha256(source_volume.encode()).hexdigest()[:8]
    return check_volume_name(_fit(source_volume, f"-{digest}{suffix}"))


def volume_from_source(source: str) -> str:
    """The volume name in an image SOURCE (bare, ``host:vol`` or ``host:<EQL IQN>``)."""
    text = source.strip()
    if not text:
        raise BadValueError("The image has an empty SOURCE; the image was never created.")
    if not text.startswith("iqn."):
        _, sep, rest = text.partition(":")
        if sep:
            text = rest
    m = _EQL_IQN_RE.match(text)
    if m is not None:
        # v0.1 SOURCE: the IQN ends in the volume name (the old add-on also cleaned
        # it, but volume names it created were clean already).
        text = m["vol"]
    elif text.startswith("iqn."):
        raise BadValueError(
            f"The SOURCE {source[:80]!r} names a target that is not an EqualLogic volume."
        )
    return check_volume_name(text)


_SNAPSHOT_RE = LazyPattern(r"^[A-Za-z0-9][A-Za-z0-9.:\-]{0,126}$")


def snapshot_name(volume: str, snap_id: int) -> str:
    """The EqualLogic snapshot for OpenNebula snapshot ``snap_id`` of ``volume``.

    Includes the volume name because the group's own default names do
    (``<volume>-<date>.<n>``), so names stay unique however the group scopes them.
    TM snap_create and the DS snap_* actions both use this, and nothing else.
    """
    check_volume_name(volume)
    if snap_id < 0:
        raise BadValueError(f"The snapshot id {snap_id} is negative; oned never sends one.")
    name = f"{volume}-one-snap{snap_id}"
    if not _SNAPSHOT_RE.match(name):  # cannot happen for a valid volume; keep the check
        raise BadValueError(f"The snapshot name {name!r} is not valid on the group.")
    return name
