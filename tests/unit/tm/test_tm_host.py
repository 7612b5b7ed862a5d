"""Host scripts, the stale-session rule and path checks of the TM driver (no processes)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from eqliscsi.errors import UsageError
from eqliscsi.opennebula import iscsiadm as ia
from eqliscsi.opennebula.actions.tm import OUR_VOLUME_RE, _check_in_vm_dir, _datastores_dir
from eqliscsi.opennebula.args import HostPath
from eqliscsi.opennebula.errors import BadValueError
from eqliscsi.opennebula.tm_host import (
    HostCommandError,
    SshRunner,
    attach_script,
    detach_script,
    inventory_script,
    parse_inventory,
)
from eqliscsi.secret import Secret

PREFIX = "iqn.2001-05.com.equallogic:0-8a0906-0a1b2c3d4-0011223344556677-"
NODE = ia.Node(PREFIX + "img.7-42-0", ia.TargetPortal("10.0.0.5"))


@pytest.mark.parametrize(
    ("name", "ours"),
    [
        ("ubuntu-14-04-srv.7", True),
        ("ubuntu-14-04-srv.7-42-0", True),
        ("long-name-cut.7-0badcafe-42-3", True),
        ("saved-web.8", True),
        ("dba-volume", False),
        ("exchange-db", False),
        ("vol.x", False),
    ],
    ids=str,
)
def test_only_eqliscsi_names_are_swept(name: str, ours: bool) -> None:
    assert bool(OUR_VOLUME_RE.fullmatch(name)) is ours


def test_inventory_marks_unlinked_sessions_stale() -> None:
    stdout = (
        f"tcp: [1] 10.0.0.5:3260,1 {PREFIX}img.7-42-0 (non-flash)\n"
        f"tcp: [2] 10.0.0.5:3260,1 {PREFIX}img.7-43-0 (non-flash)\n"
        f"tcp: [3] 10.0.0.5:3260,1 {PREFIX}dba-volume (non-flash)\n"
        "tcp: [4] 10.0.0.9:3260,1 iqn.2003-01.org.other:img.7-44-0 (non-flash)\n"
        "eqliscsi-tm: sessions-status 0\n"
        "eqliscsi-tm: links\n"
        "/dev/iscsi/img.7-42-0\n"
    )
    inv = parse_inventory(stdout)
    assert inv.stale("/dev/iscsi", OUR_VOLUME_RE) == [("img.7-43-0", PREFIX + "img.7-43-0")]


def test_inventory_without_sessions() -> None:
    inv = parse_inventory("eqliscsi-tm: sessions-status 21\neqliscsi-tm: links\n")
    assert inv.sessions == () and inv.stale("/dev/iscsi", OUR_VOLUME_RE) == []


def test_inventory_cut_short_is_an_error() -> None:
    with pytest.raises(HostCommandError):
        parse_inventory("tcp: [1] 10.0.0.5:3260,1 x\n")


def test_attach_script_waits_links_and_hides_the_secret() -> None:
    chap = ia.ChapCredentials("oneadmin", Secret(b"s3cret-value-1", origin="test"))
    data, text = attach_script(
        NODE,
        volume="img.7-42-0",
        base_device="/dev/iscsi",
        wait_s=2,
        link="/var/lib/one/datastores/0/42/disk.0",
        chap=chap,
    )
    assert b"s3cret-value-1" in data and "s3cret-value-1" not in text
    assert "while [ ! -b /dev/iscsi/img.7-42-0 ]" in text
    assert '"$_i" -gt 10' in text  # 5 polls a second, bounded
    assert "ln -sfn /dev/iscsi/img.7-42-0 /var/lib/one/datastores/0/42/disk.0" in text
    assert text.index("--login") < text.index("while [ ! -b") < text.index("ln -sfn")


@pytest.mark.parametrize(
    "link",
    ["/var/lib/one/datastores/0/42/disk.0;id", "/var/lib/one/$(id)/disk.0", "relative/disk.0",
     "/var/lib/one/../../etc/disk.0", "/var/lib/one/datastores/0/42/disk 0"],
)  # fmt: skip
def test_attach_refuses_unsafe_links(link: str) -> None:
    with pytest.raises(HostCommandError):
        attach_script(NODE, volume="img.7-42-0", base_device="/dev/iscsi", wait_s=1, link=link)


def test_detach_removes_only_our_link_and_guards_in_use() -> None:
    _, text = detach_script(
        NODE,
        volume="img.7-42-0",
        base_device="/dev/iscsi",
        link="/var/lib/one/datastores/0/42/disk.0",
        unless_linked_under="/var/lib/one/datastores",
    )
    assert '"$(readlink /var/lib/one/datastores/0/42/disk.0)" = /dev/iscsi/img.7-42-0' in text
    assert "-lname /dev/iscsi/img.7-42-0" in text
    assert text.index("-lname") < text.index("--logout")


def test_inventory_script_quotes_its_directory() -> None:
    assert b"find /var/lib/one/datastores -mindepth 3" in inventory_script(
        "/var/lib/one/datastores"
    )
    with pytest.raises(HostCommandError):
        inventory_script("/var/lib/one/data stores")


def test_ssh_argv_ends_options_before_the_host() -> None:
    argv = SshRunner({"EQLISCSI_SSH_CONFIG": "/etc/rig/ssh_config"}).argv("node-1.example")
    assert argv[:3] == ["ssh", "-F", "/etc/rig/ssh_config"]
    assert argv[-4:] == ["--", "node-1.example", "sh", "-s"]
    assert "BatchMode=yes" in argv
    # Without the override, oneadmin's own ~/.ssh/config applies (no -F).
    assert "-F" not in SshRunner({}).argv("node1")


@pytest.mark.parametrize("host", ["-oProxyCommand=id", "h1;id", "h1 h2", "", "h1\n"])
def test_ssh_refuses_hostile_hosts(host: str) -> None:
    with pytest.raises(UsageError):
        SshRunner({}).argv(host)


@pytest.mark.parametrize(
    ("path", "ok"),
    [
        ("/var/lib/one/datastores/0/42/disk.0", True),
        ("/srv/one/datastores/105/42/disk.3", True),
        ("/var/lib/one/datastores/0/43/disk.0", False),
        ("/var/lib/one/datastores/x/42/disk.0", False),
        ("/42/disk.0", False),
        ("/etc/disk.0", False),
    ],
)
def test_disk_must_be_in_its_vm_directory(path: str, ok: bool) -> None:
    hp = HostPath("h1", path)
    if ok:
        _check_in_vm_dir(hp, 42)
    else:
        with pytest.raises(BadValueError):
            _check_in_vm_dir(hp, 42)


def test_datastores_dir_of_a_vm_dir() -> None:
    assert _datastores_dir("/var/lib/one/datastores/0/42") == "/var/lib/one/datastores"


def test_scripts_use_sudo_which_root_skips(tmp_path: Path) -> None:
    _, text = attach_script(
        NODE, volume="img.7-42-0", base_device="/dev/iscsi", wait_s=1, link=None
    )
    assert "sudo -n iscsiadm -m node" in text
    # The script's own sudo(): as root, run the command without any sudo binary;
    # as anyone else, defer to the real sudo (here: a recording stand-in).
    fn = text[: text.index("}\n") + 2]
    (tmp_path / "sudo").write_text('#!/bin/sh\necho "real-sudo $*"\n')
    (tmp_path / "sudo").chmod(0o755)
    env = {"PATH": f"{tmp_path}:/usr/bin:/bin"}
    probe = fn + "sudo -n echo direct\n"
    as_root = subprocess.run(
        ["sh", "-c", probe], capture_output=True, text=True, env=env, check=True
    )
    assert as_root.stdout == ("direct\n" if os.geteuid() == 0 else "real-sudo -n echo direct\n")
    fake_id = tmp_path / "id"
    fake_id.write_text("#!/bin/sh\necho 1000\n")
    fake_id.chmod(0o755)
    as_user = subprocess.run(
        ["sh", "-c", probe], capture_output=True, text=True, env=env, check=True
    )
    assert as_user.stdout == "real-sudo -n echo direct\n"
