"""The shipped sudoers rule (remotes/tm/eqliscsi/eqliscsi.sudoers) on a rig host: what
oneadmin may run as root, and that everything else is refused.

The rig's hosts install the rule with iscsiadm's path set to the stand-in's
(/usr/local/sbin/iscsiadm) and the CHAP helper as a root-owned copy; the driver's
lifecycle as oneadmin runs in test_lifecycle.py.  Here each command goes over ssh as
oneadmin with ``sudo -n``: allowed ones reach iscsiadm (whose own status then counts),
refused ones fail in sudo itself ("a password is required", status 1) without running.
"""

from __future__ import annotations

import shlex
import subprocess

import pytest

from rig.embedded import EmbeddedRig

pytestmark = [pytest.mark.tgt, pytest.mark.slow]

IQN = "iqn.2001-05.com.equallogic:0-8a0906-0123456789-0123456789abcdef-img.7-42-0"


def as_oneadmin(rig: EmbeddedRig, command: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        ["ssh", "-F", str(rig.ssh_config_oneadmin), "h1", command],
        capture_output=True,
        timeout=60,
        check=False,
    )


def test_driver_user_is_not_root(rig: EmbeddedRig) -> None:
    r = as_oneadmin(rig, "id -un; id -u")
    assert r.returncode == 0, r.stderr
    assert r.stdout.decode().split() == ["oneadmin", "9869"]
    # Without sudo the node database is out of reach.
    r = as_oneadmin(rig, "touch /etc/iscsi/eqliscsi-probe")
    assert r.returncode != 0


@pytest.mark.parametrize(
    "argv",
    [
        ["iscsiadm", "-m", "session"],
        ["iscsiadm", "-m", "node"],
        ["iscsiadm", "-m", "node", "-T", IQN, "-p", "10.254.1.1:3260", "-I", "default",
         "--logout"],
        ["iscsiadm", "-m", "node", "-T", IQN, "-p", "10.254.1.1:3260", "-I", "default",
         "-o", "delete"],
    ],
    ids=["session", "list-records", "logout", "delete"],
)  # fmt: skip
def test_driver_forms_pass_sudo(rig: EmbeddedRig, argv: list[str]) -> None:
    r = as_oneadmin(rig, "sudo -n " + shlex.join(argv))
    err = r.stderr.decode()
    # iscsiadm ran (as root): 0, or 21 "no session / no record" for this made-up IQN.
    assert r.returncode in (0, 21), err
    assert "password is required" not in err and "not allowed" not in err


@pytest.mark.parametrize(
    "command",
    [
        "sudo -n iscsiadm -m node -T {iqn} -p 10.254.1.1:3260 -I default -o update "
        "-n node.startup -v automatic",
        "sudo -n iscsiadm -m node -T {iqn} -p 10.254.1.1:3260 -I default --login -o update",
        "sudo -n iscsiadm -m session -r 1 -u",
        "sudo -n iscsiadm -m node -o show",
        "sudo -n iscsiadm -m iface -I eql0 -o new",
        "sudo -n iscsiadm -m discovery -t st -p 10.254.1.1:3260",
        "sudo -n iscsiadm -m node -T '{iqn};id' -p 10.254.1.1:3260 -I default --login",
        "sudo -n /bin/sh -c id",
        "sudo -n /var/tmp/one/tm/eqliscsi/eqliscsi-node-auth {iqn} 10.254.1.1:3260 default",
        "sudo -n /usr/local/sbin/eqliscsi-node-auth {iqn} 10.254.1.1:3260 '../x'",
        "sudo -n iscsiadm -m node -T '{iqn}\\x' -p 10.254.1.1:3260 -I default --logout",
        "sudo -n iscsiadm -m node -T {iqn} -p 10.254.1.1:3260 -I default --logout --login",
    ],
    ids=["update", "login-plus-update", "logout-by-sid", "show-records", "iface-new",
         "old-discovery", "metachar-iqn", "shell", "helper-in-remotes", "helper-bad-iface",
         "backslash-iqn", "two-actions"],
)  # fmt: skip
def test_everything_else_is_refused(rig: EmbeddedRig, command: str) -> None:
    r = as_oneadmin(rig, command.format(iqn=IQN))
    assert r.returncode == 1, (r.returncode, r.stderr)
    assert "a password is required" in r.stderr.decode()
