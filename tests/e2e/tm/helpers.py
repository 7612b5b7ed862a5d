"""What the TM e2e tests judge with: the group's saved model and the hosts' own view."""

from __future__ import annotations

from typing import Any

from rig import lifecycle
from rig.embedded import EmbeddedRig
from rig.lifecycle import EmbeddedLifecycle, Frontend
from rig.oned import DatastoreSpec, ImageSpec

DS = DatastoreSpec(template={"DS_MAD": "eqliscsi", "TM_MAD": "eqliscsi", "EQL_POOL": "default"})
SYS = "/var/lib/one//datastores/0"  # oned's default DATASTORE_LOCATION, double slash included


def volumes(rig: EmbeddedRig) -> dict[str, dict[str, Any]]:
    """The fake group's volumes as it saved them (written before every reply)."""
    return EmbeddedLifecycle(rig).volumes()


# The embedded rig's tests judge hosts with rig.lifecycle's functions, through the
# same adapter the lifecycle suite uses, so every rig is judged alike.


def sessions(rig: EmbeddedRig, host: str) -> list[str]:
    """Target IQNs of ``iscsiadm -m session`` on ``host`` (the host's own view)."""
    return lifecycle.sessions(EmbeddedLifecycle(rig), host)


def session_volumes(rig: EmbeddedRig, host: str) -> list[str]:
    return lifecycle.session_volumes(EmbeddedLifecycle(rig), host)


def write_marker(rig: EmbeddedRig, host: str, path: str, offset_blocks: int = 0) -> bytes:
    return lifecycle.write_marker(EmbeddedLifecycle(rig), host, path, offset_blocks)


def read_block(rig: EmbeddedRig, host: str, path: str, offset_blocks: int = 0) -> bytes:
    return lifecycle.read_block(EmbeddedLifecycle(rig), host, path, offset_blocks)


def link_target(rig: EmbeddedRig, host: str, path: str) -> str:
    return lifecycle.link_target(EmbeddedLifecycle(rig), host, path)


def make_image(sim: Frontend, image_id: int, *, size_mb: int = 32) -> str:
    """A raw datablock image on the group (DS mkfs), returns its SOURCE."""
    img = ImageSpec(id=image_id, name=f"img {image_id}", type=2, persistent=True, size_mb=size_mb)
    out = sim.run_ds("mkfs", sim.ds_document(img, DS), image_id)
    assert out.ok, out.stderr
    return out.info
