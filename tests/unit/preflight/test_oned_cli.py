"""Reading oned through its CLI: fake ``onehost``/``onedatastore``/``oneimage`` on PATH."""

from __future__ import annotations

from pathlib import Path

import pytest

from eqliscsi.cli.checks import inputs
from eqliscsi.errors import ConfigError

HOSTS = """<HOST_POOL><HOST><ID>0</ID><NAME>node-a</NAME><TEMPLATE><NAME>x</NAME></TEMPLATE>
</HOST><HOST><ID>1</ID><NAME><![CDATA[node-b.example]]></NAME></HOST></HOST_POOL>"""
IMAGES = """<IMAGE_POOL><IMAGE><ID>3</ID><SOURCE><![CDATA[ubuntu.3]]></SOURCE></IMAGE>
<IMAGE><ID>4</ID><SOURCE>10.0.0.5:data.4</SOURCE></IMAGE></IMAGE_POOL>"""
DS = """<DATASTORE><ID>104</ID><NAME>eql</NAME><DS_MAD>eqliscsi</DS_MAD><TM_MAD>eqliscsi</TM_MAD>
<TEMPLATE><DISK_TYPE>BLOCK</DISK_TYPE></TEMPLATE></DATASTORE>"""


@pytest.fixture
def one_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name, out in (("onehost", HOSTS), ("oneimage", IMAGES), ("onedatastore", DS)):
        (tmp_path / f"{name}.xml").write_text(out)
        script = tmp_path / name
        script.write_text(f'#!/bin/sh\n[ "$1" = show ] && [ "$3" != 104 ] && exit 255\n'
                          f'cat {tmp_path / name}.xml\n')  # fmt: skip
        script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:/usr/bin:/bin")
    return tmp_path


def test_hosts_images_and_datastore(one_cli: Path) -> None:
    assert inputs.oned_hosts() == ("node-a", "node-b.example")
    assert inputs.oned_image_sources() == ("ubuntu.3", "10.0.0.5:data.4")
    ds = inputs.oned_datastore(104)
    assert ds["DISK_TYPE"] == "BLOCK" and ds["TM_MAD"] == "eqliscsi" and ds["ID"] == "104"
    with pytest.raises(ConfigError, match="onedatastore show -x 7"):
        inputs.oned_datastore(7)


def test_no_oned_here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    assert inputs.oned_hosts() is None
    assert inputs.oned_image_sources() is None
