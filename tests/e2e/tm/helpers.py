"""What the TM e2e tests judge with: the group's saved model and the hosts' own view."""

from __future__ import annotations

import json
import secrets
import shlex
from typing import Any

from eqliscsi.opennebula.devname import volume_from_iqn
from rig.embedded import EmbeddedRig
from rig.lifecycle import Frontend
from rig.oned import DatastoreSpec, ImageSpec

DS = DatastoreSpec(template={"DS_MAD": "eqliscsi", "TM_MAD": "eqliscsi", "EQL_POOL": "default"})
SYS = "/var/lib/one//datastores/0"  # oned's default DATASTORE_LOCATION, double slash included


def volumes(rig: EmbeddedRig) -> dict[str, dict[str, Any]]:
    """The fake group's volumes as it saved them (written before every reply)."""
    data = json.loads((rig.san_state / "san.json").read_text())
    return {v["name"]: v for v in data["volumes"]}


def sessions(rig: EmbeddedRig, host: str) -> list[str]:
    """Target IQNs of ``iscsiadm -m session`` on ``host`` (the host's own view)."""
    r = rig.ssh(host, "iscsiadm -m session")
    if r.returncode == 21:
        return []
    assert r.returncode == 0, r.stderr
    return [line.split()[3] for line in r.stdout.decode().splitlines() if line.strip()]


def session_volumes(rig: EmbeddedRig, host: str) -> list[str]:
    return sorted(str(volume_from_iqn(iqn)) for iqn in sessions(rig, host))


def write_marker(rig: EmbeddedRig, host: str, path: str, offset_blocks: int = 0) -> bytes:
    marker = f"eqliscsi-{secrets.token_hex(8)}".encode()
    r = rig.ssh(
        host,
        f"dd of={shlex.quote(path)} bs=4096 seek={offset_blocks} count=1 conv=sync,fsync,notrunc "
        "oflag=direct status=none",
        stdin=marker,
    )
    assert r.returncode == 0, r.stderr
    return marker


def read_block(rig: EmbeddedRig, host: str, path: str, offset_blocks: int = 0) -> bytes:
    r = rig.ssh(
        host,
        f"dd if={shlex.quote(path)} bs=4096 skip={offset_blocks} count=1 iflag=direct status=none",
    )
    assert r.returncode == 0, r.stderr
    return r.stdout


def link_target(rig: EmbeddedRig, host: str, path: str) -> str:
    r = rig.ssh(host, f"readlink {shlex.quote(path)} || true")
    return r.stdout.decode().strip()


def make_image(sim: Frontend, image_id: int, *, size_mb: int = 32) -> str:
    """A raw datablock image on the group (DS mkfs), returns its SOURCE."""
    img = ImageSpec(id=image_id, name=f"img {image_id}", type=2, persistent=True, size_mb=size_mb)
    out = sim.run_ds("mkfs", sim.ds_document(img, DS), image_id)
    assert out.ok, out.stderr
    return out.info
