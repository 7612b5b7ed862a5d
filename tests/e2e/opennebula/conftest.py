from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from rig.need import need_executable


@pytest.fixture(scope="session")
def qcow2_image(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real 100 MiB (virtual) qcow2 image, outside every restricted directory."""
    qemu_img = need_executable("qemu-img", "qemu-utils")
    path = tmp_path_factory.mktemp("images") / "ttylinux.qcow2"
    subprocess.run(
        [qemu_img, "create", "-q", "-f", "qcow2", str(path), "100M"], check=True, timeout=60
    )
    return path
