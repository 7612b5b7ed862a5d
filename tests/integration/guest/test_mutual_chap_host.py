"""Mutual CHAP on a real hypervisor host: open-iscsi's iscsiadm and iscsid in the guest.

The group is the fake EqualLogic group running in the guest with LIO (``guest_eql``);
its group-wide target authentication (``grpparams target-auth-username`` /
``-password``, the group's half of mutual CHAP) is set through the driver's SAN
client, and the fake gives every CHAP-guarded volume's LIO ACL those credentials as
the target's own (``userid_mutual``/``password_mutual``).  The guest plays the host
and reaches LIO on its loopback, ``127.0.0.1:3260``.

The driver's login path is the one the TM actions send: ``login_script`` with the
initiator's and the target's credentials, run as **oneadmin** with ``ssh g1 sh -s``
and ``sudo -n`` (as OpenNebula's sudoers allows iscsiadm and the CHAP helper), the
shipped ``eqliscsi-node-auth`` writing ``username_in``/``password_in`` into the node
record.  The judge is iscsid itself: it checks the target's CHAP answer against
``password_in`` (RFC 7143 §12.1.3), so a wrong target secret makes the real login
fail, and the script's status comes back as the driver's typed error.  Then
preflight's host checks look at the same host over SSH as oneadmin.

The group's target authentication cannot be unset (a real group always has one), so
the last test checks that an initiator that does not ask the target to prove itself
still logs in, as with EqualLogic (LIO answers a challenge only when one comes): the
later suites sharing the group (tests/integration/guest, tests/integration/san) use
one-way CHAP.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from eqliscsi.cli.checks import ALL_CHECKS, CheckResult, Section, Status
from eqliscsi.cli.checks.inputs import Options, load_config
from eqliscsi.cli.preflight import run_preflight
from eqliscsi.opennebula import iscsiadm as ia
from eqliscsi.san import commands as c
from eqliscsi.san.commands import AccessRule
from eqliscsi.san.ops import SanOps, VolumeSpec
from eqliscsi.san.session import open_session
from eqliscsi.secret import Secret
from rig.guest.fake_group import InGuestGroup
from rig.guest.vm import GuestVM
from tests.integration.guest.test_driver_iscsiadm import install_remotes

pytestmark = [pytest.mark.guest, pytest.mark.lio, pytest.mark.judge, pytest.mark.timeout(900)]

DS_ID = 181
PORTAL = ia.TargetPortal("127.0.0.1", 3260)  # LIO, from inside the guest
SUDOERS_FILE = "/etc/sudoers.d/eqliscsi-mutual"
SUDOERS = (
    "oneadmin ALL=(ALL) NOPASSWD: /usr/bin/iscsiadm, /usr/sbin/iscsiadm, "
    f"{ia.DEFAULT_AUTH_HELPER}\n"
)
SAVED_ISCSID = "/root/iscsid.conf.mutual-saved"
TUNING = (
    "node.startup = manual\n"
    "node.session.cmds_max = 1024\nnode.session.queue_depth = 128\n"
    "node.session.iscsi.FastAbort = No\nnode.session.auth.authmethod = CHAP\n"
)


@dataclass
class Mutual:
    vm: GuestVM
    group: InGuestGroup
    dir: Path
    ssh_config: Path
    chap_user: str
    chap_secret: Secret
    target_user: str
    target_secret: Secret
    volume: str
    iqn: str

    @property
    def node(self) -> ia.Node:
        return ia.Node(self.iqn, PORTAL)

    def as_oneadmin(self, script: ia.RemoteScript) -> subprocess.CompletedProcess[bytes]:
        """The script the way the TM actions send it: ``ssh host sh -s``, on stdin."""
        return subprocess.run(
            ["ssh", "-F", str(self.ssh_config), "g1", "sh", "-s"],
            input=script.stdin_bytes(), capture_output=True, timeout=180, check=False,
        )  # fmt: skip

    def login(self, target_secret: Secret | None) -> None:
        """The driver's login; raises its typed error as the TM action would."""
        chap = ia.ChapCredentials(
            self.chap_user,
            self.chap_secret,
            self.target_user if target_secret is not None else "",
            target_secret,
        )
        script = ia.login_script(self.node, chap=chap, sudo=True)
        done = self.as_oneadmin(script)
        ia.check_script_result(
            script, done.returncode, done.stderr.decode(errors="replace"), host="g1",
            what=self.iqn,
        )  # fmt: skip

    def logout(self) -> None:
        script = ia.logout_script(self.node, sudo=True)
        done = self.as_oneadmin(script)
        ia.check_script_result(script, done.returncode, done.stderr.decode(errors="replace"))

    def forget(self) -> None:
        """No session and no record of the volume (what an earlier failure may leave)."""
        self.vm.ssh(["sh", "-c", f"iscsiadm -m node -T {self.iqn} --logout; "
                     f"iscsiadm -m node -T {self.iqn} -o delete"], check=False)  # fmt: skip

    def sessions(self) -> list[str]:
        r = self.vm.ssh(list(ia.session_argv()), check=False)
        return [s.iqn for s in ia.parse_sessions(r.stdout, status=r.returncode)]

    def record(self, key: str) -> str:
        """One value of the node record as iscsiadm shows it (-S: secrets unmasked, so
        only their SHA-256 leaves the guest)."""
        show = (
            f"iscsiadm -m node -T {self.iqn} -p {PORTAL} -S | "
            f"sed -n 's/^node[.]session[.]auth[.]{key} = //p'"
        )
        if "password" in key:
            show += " | tr -d '\\n' | sha256sum | cut -d' ' -f1"
        return self.vm.ssh(["sh", "-c", show], check=False).stdout.strip()

    def conf(self, target_secret: Secret) -> Path:
        password = self.group.endpoint.password
        assert password is not None, "the in-guest group has a password file"
        files = {
            "password": password,
            "chap": self.chap_secret,
            "target": target_secret,
        }
        for name, secret in files.items():
            path = self.dir / name
            path.touch(mode=0o600)
            path.write_bytes(secret.reveal())
        values = {
            "EQL_HOST": self.group.endpoint.host,
            "EQL_SSH_PORT": str(self.group.endpoint.port),
            "EQL_USER": self.group.endpoint.username,
            "EQL_PASS_FILE": str(self.dir / "password"),
            "EQL_KNOWN_HOSTS": str(self.group.endpoint.known_hosts),
            "EQL_PORTAL": str(PORTAL),
            "EQL_CHAP_USER": self.chap_user,
            "EQL_CHAP_SECRET_FILE": str(self.dir / "chap"),
            "EQL_CHAP_TARGET_USER": self.target_user,
            "EQL_CHAP_TARGET_SECRET_FILE": str(self.dir / "target"),
        }
        conf = self.dir / "eqliscsi.conf"
        conf.write_text("".join(f"{k}={v}\n" for k, v in values.items()))
        conf.chmod(0o600)
        return conf

    def preflight_hosts(self, target_secret: Secret) -> dict[str, CheckResult]:
        conf = self.conf(target_secret)
        template = {"DS_MAD": "eqliscsi", "TM_MAD": "eqliscsi", "DISK_TYPE": "BLOCK"}
        opts = Options(
            conf_path=conf,
            config=load_config(conf, template),
            datastore_id=DS_ID,
            datastore_template=template,
            hosts=("g1",),
            ssh_config=self.ssh_config,
            host_sudo=True,
            san_timeout=60.0,
            host_timeout=60.0,
        )
        checks = [ch for ch in ALL_CHECKS if ch.section is Section.HOSTS]
        results = asyncio.run(run_preflight(opts, checks))
        for r in results:
            for s in (self.chap_secret, self.target_secret, target_secret):
                assert s.reveal_str() not in r.found + r.fix
        return {r.id: r for r in results}


async def _group(m: Mutual, *, create: bool) -> str:
    async with open_session(m.group.endpoint) as session:
        ops = SanOps(session, DS_ID)
        if not create:
            await ops.delete_volume(m.volume)
            return ""
        await ops.ensure_chap_user(m.chap_user, m.chap_secret)
        # EqualLogic's mutual CHAP: the group's one target-authentication account.
        await session.run(c.GrpparamsTargetAuth(username=m.target_user))
        await session.run(c.GrpparamsTargetAuth(password=m.target_secret))
        rule = AccessRule(username=m.chap_user)
        await ops.create_volume(VolumeSpec(m.volume, 16, pool="default", access=(rule,)))
        return await ops.volume_iqn(m.volume)


@pytest.fixture(scope="module")
def mutual(
    guest_vm: GuestVM, guest_eql: InGuestGroup, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Mutual]:
    vm = guest_vm
    d = tmp_path_factory.mktemp("mutual")
    ssh_config = d / "ssh_config"
    ssh_config.write_text(
        f"Host g1\n  HostName 127.0.0.1\n  Port {vm.ports.ssh}\n  User oneadmin\n"
        f"  IdentityFile {vm.image.ssh_key}\n  IdentitiesOnly yes\n"
        f"  UserKnownHostsFile {vm.workdir / 'known_hosts'}\n"
        "  StrictHostKeyChecking yes\n  BatchMode yes\n  LogLevel ERROR\n"
    )
    token = secrets.token_hex(3)
    m = Mutual(
        vm, guest_eql, d, ssh_config,
        chap_user=f"mc-{token}",
        chap_secret=Secret(secrets.token_hex(8).encode(), origin="test CHAP secret"),
        target_user=f"mt-{token}",
        target_secret=Secret(secrets.token_hex(8).encode(), origin="test target secret"),
        volume=f"mutual-{token}",
        iqn="",
    )  # fmt: skip
    groups_before = vm.ssh(["sh", "-c", "id -Gn oneadmin 2>/dev/null || true"]).stdout.split()
    vm.ssh(["cp", "-p", "/etc/iscsi/iscsid.conf", SAVED_ISCSID])
    try:
        install_remotes(vm)
        # The guest as OpenNebula's node packages leave a host (oneadmin, the front-end's
        # key, sudo for iscsiadm and the helper), in group disk as the install guide asks.
        vm.ssh(["sh", "-euc",
                "id oneadmin >/dev/null 2>&1 || useradd -m -d /var/lib/one -s /bin/sh oneadmin; "
                "install -d -o oneadmin -g oneadmin -m 700 /var/lib/one/.ssh; "
                "install -o oneadmin -g oneadmin -m 600 /root/.ssh/authorized_keys "
                "/var/lib/one/.ssh/authorized_keys; usermod -a -G disk oneadmin; "
                "rm -f /run/lock/eqliscsi-iscsi.lock"])  # fmt: skip
        vm.install_file(SUDOERS_FILE, SUDOERS, mode=0o440)
        # iscsid.conf as the checker wants it: CHAP (both ways) and Dell's tuning; the
        # secrets travel on ssh's stdin.
        vm.ssh(["sh", "-euc",
                "sed -i -e '/^node[.]startup/d' -e '/^node[.]session[.]auth[.]/d' "
                "-e '/^node[.]session[.]cmds_max/d' -e '/^node[.]session[.]queue_depth/d' "
                "-e '/^node[.]session[.]iscsi[.]FastAbort/d' /etc/iscsi/iscsid.conf; "
                "cat >> /etc/iscsi/iscsid.conf"],
               input=TUNING
               + f"node.session.auth.username = {m.chap_user}\n"
               + f"node.session.auth.password = {m.chap_secret.reveal_str()}\n"
               + f"node.session.auth.username_in = {m.target_user}\n"
               + f"node.session.auth.password_in = {m.target_secret.reveal_str()}\n")  # fmt: skip
        m.iqn = asyncio.run(_group(m, create=True))
        yield m
    finally:
        if m.iqn:
            m.forget()
            asyncio.run(_group(m, create=False))
        restore = f"mv {SAVED_ISCSID} /etc/iscsi/iscsid.conf; rm -f {SUDOERS_FILE}"
        if "disk" not in groups_before:
            restore += "; gpasswd -d oneadmin disk >/dev/null 2>&1 || true"
        vm.ssh(["sh", "-c", restore], check=False)


def test_mutual_login_through_the_driver(mutual: Mutual) -> None:
    m = mutual
    m.forget()
    m.login(m.target_secret)
    try:
        assert m.sessions().count(m.iqn) == 1
        # The helper wrote both halves into the record; iscsid used them.
        assert m.record("username_in") == m.target_user
        assert m.record("password_in") == hashlib.sha256(m.target_secret.reveal()).hexdigest()
        assert m.record("username") == m.chap_user
        res = m.preflight_hosts(m.target_secret)
        bad = {k: (r.status.value, r.found) for k, r in res.items() if r.status is not Status.PASS}
        assert not bad, bad
        assert "mutual with " + m.target_user in res["host.chap"].found
        assert "1 session(s)" in res["host.sessions"].found
    finally:
        m.logout()
    assert m.iqn not in m.sessions()


def test_wrong_target_secret_fails_the_real_login(mutual: Mutual) -> None:
    m = mutual
    m.forget()
    wrong = Secret(secrets.token_hex(8).encode(), origin="test wrong target secret")
    # iscsid rejects the target's answer itself: open-iscsi reports that as a fatal
    # login error (19), not as the target refusing the initiator (24).
    with pytest.raises(ia.IscsiadmLoginError) as caught:
        m.login(wrong)
    assert caught.value.status == ia.IscsiadmStatus.FATAL_LOGIN
    assert "g1" in caught.value.message
    assert "EQL_CHAP_TARGET_SECRET_FILE" in caught.value.message  # the advice fits
    assert m.iqn not in m.sessions()
    for s in (wrong, m.target_secret, m.chap_secret):
        assert s.reveal_str() not in str(caught.value)
    # preflight, configured with the same wrong secret, says so for the host
    res = m.preflight_hosts(wrong)
    chap = res["host.chap"]
    assert chap.status is Status.FAIL, chap
    assert chap.found == "node.session.auth.password_in differs from the configured target secret"
    assert "EQL_CHAP_TARGET_SECRET_FILE" in chap.fix
    assert res["host.node-startup"].status is Status.PASS
    # the record now holds the wrong secret: the right one, rewritten by the helper, works
    m.login(m.target_secret)
    try:
        assert m.sessions().count(m.iqn) == 1
    finally:
        m.logout()


def test_one_way_chap_still_logs_in(mutual: Mutual) -> None:
    """An initiator that does not challenge the target logs in to a group with target
    authentication set, as with EqualLogic (the later suites rely on it)."""
    m = mutual
    m.forget()
    # New records take iscsid.conf's defaults, and the helper keeps a record's target
    # lines when the driver logs in one-way: so none in iscsid.conf for this login.
    m.vm.ssh(["sh", "-euc", "cp -p /etc/iscsi/iscsid.conf /root/iscsid.conf.mutual-on; "
              "sed -i '/^node[.]session[.]auth[.][a-z]*_in =/d' "
              "/etc/iscsi/iscsid.conf"])  # fmt: skip
    try:
        m.login(None)
        try:
            assert m.sessions().count(m.iqn) == 1
            assert m.record("username_in") in ("", "<empty>")
        finally:
            m.logout()
    finally:
        m.vm.ssh(["mv", "/root/iscsid.conf.mutual-on", "/etc/iscsi/iscsid.conf"])
