from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from eqliscsi.errors import ConfigError
from eqliscsi.opennebula.actions.ds_volumes import qemu_img_convert_argv
from eqliscsi.opennebula.config import EqlConfig
from eqliscsi.opennebula.errors import BadValueError
from eqliscsi.opennebula.san_link import (
    SessionBusy,
    access_rules,
    endpoint_for,
    session_slot,
    thin_options,
    volume_spec,
)
from eqliscsi.san import commands as c
from eqliscsi.san.session import HostKeyPolicy
from eqliscsi.secret import Secret


@pytest.mark.parametrize(
    ("words", "expected"),
    [
        pytest.param((), (False, None), id="none"),
        pytest.param(("thin-provision",), (True, None), id="thin"),
        pytest.param(
            ("thin-provision", "thin-min-reserve", "50%"), (True, 50), id="original-sample"
        ),
    ],
)
def test_thin_options(words: tuple[str, ...], expected: tuple[bool, int | None]) -> None:
    assert thin_options(words) == expected


@pytest.mark.parametrize(
    "words",
    [
        ("thin-min-reserve", "50%"),
        ("thin-provision", "thin-min-reserve"),
        ("thin-provision", "thin-min-reserve", "50"),
        ("thin-provision", "snap-reserve", "0%"),
    ],
)
def test_thin_options_rejects(words: tuple[str, ...]) -> None:
    with pytest.raises(ConfigError, match="EQL_THINPROVISION"):
        thin_options(words)


@pytest.mark.parametrize(
    ("words", "rule"),
    [
        pytest.param(
            ("ipaddress", "192.168.*.*"),
            c.AccessRule(ipaddress="192.168.*.*"),
            id="original-sample",
        ),
        pytest.param(
            ("initiator", "iqn.1993-08.org.debian:01:abc", "apply-to", "volume"),
            c.AccessRule(initiator="iqn.1993-08.org.debian:01:abc", apply_to=c.ApplyTo.VOLUME),
            id="initiator",
        ),
        pytest.param(
            ("authmethod", "chap", "username", "one"),
            c.AccessRule(username="one"),
            id="chap",
        ),
    ],
)
def test_access_rules(words: tuple[str, ...], rule: c.AccessRule) -> None:
    assert access_rules(words) == (rule,)


@pytest.mark.parametrize(
    "words",
    [
        ("ipaddress",),
        ("volume", "delete"),
        ("ipaddress", "1.2.3.4", "ipaddress", "5.6.7.8"),
        ("authmethod", "chap", "ipaddress", "1.2.3.4"),
        ("authmethod", "none", "username", "u"),
        ("apply-to", "everything", "ipaddress", "1.2.3.4"),
    ],
)
def test_access_rules_reject(words: tuple[str, ...]) -> None:
    with pytest.raises(ConfigError, match="EQL_SECURITY_ACCESS"):
        access_rules(words)


def test_access_rules_empty() -> None:
    assert access_rules(()) == ()


def test_volume_spec() -> None:
    cfg = EqlConfig(
        pool="gold",
        multihost=False,
        thin_provision=("thin-provision",),
        security_access=("ipaddress", "10.*.*.*"),
    )
    spec = volume_spec(cfg, "web.3", 2048)
    assert (spec.name, spec.size_mb, spec.pool, spec.thin, spec.multihost) == (
        "web.3",
        2048,
        "gold",
        True,
        False,
    )
    assert spec.access == (c.AccessRule(ipaddress="10.*.*.*"),)


def test_endpoint_policies() -> None:
    base = EqlConfig(host="10.0.0.1", user="u", password=Secret(b"p"), ssh_port=2222)
    ep = endpoint_for(base)
    assert (ep.host, ep.port, ep.username, ep.host_key_policy) == (
        "10.0.0.1",
        2222,
        "u",
        HostKeyPolicy.KNOWN_HOSTS,
    )
    fp = "SHA256:" + "A" * 43
    pinned = endpoint_for(EqlConfig(host="h", user="u", password=Secret(b"p"), host_fingerprint=fp))
    assert pinned.host_key_policy is HostKeyPolicy.PINNED and pinned.host_key_fingerprint == fp
    with pytest.raises(ConfigError, match="EQL_PASS"):
        endpoint_for(EqlConfig(host="h", user="u"))


def test_session_slots_cap_within_process(tmp_path: Path) -> None:
    with session_slot(tmp_path, "g", 2) as a, session_slot(tmp_path, "g", 2) as b:
        assert {a, b} == {0, 1}
        with (
            pytest.raises(SessionBusy, match="EQL_MAX_SESSIONS"),
            session_slot(tmp_path, "g", 2, wait=0.3),
        ):
            pass
        with session_slot(tmp_path, "other-group", 2) as other:  # caps are per group
            assert other == 0
    with session_slot(tmp_path, "g", 2) as again:  # released on exit
        assert again == 0


HOLDER = """
import sys, time
from pathlib import Path
from eqliscsi.opennebula.san_link import session_slot
with session_slot(Path(sys.argv[1]), "g", 1):
    print("ready", flush=True)
    time.sleep(60)
"""


def test_session_slots_across_processes_and_crash(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
        with pytest.raises(SessionBusy), session_slot(tmp_path, "g", 1, wait=0.3):
            pass
        proc.kill()  # a crashed action must not leave its slot taken
        proc.wait(30)
        start = time.monotonic()
        with session_slot(tmp_path, "g", 1, wait=5) as slot:
            assert slot == 0
        assert time.monotonic() - start < 5
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(30)
        if proc.stdout is not None:
            proc.stdout.close()


def test_convert_argv_plain_and_chap() -> None:
    iqn = "iqn.2001-05.com.equallogic:0-8a0906-000000001-0000000000000001-web.3"
    plain = qemu_img_convert_argv("/srv/a.qcow2", "qcow2", "10.0.0.1:3260", iqn, None)
    assert plain == [
        "qemu-img",
        "convert",
        "-n",
        "-f",
        "qcow2",
        "/srv/a.qcow2",
        "--target-image-opts",
        f"driver=raw,file.driver=iscsi,file.transport=tcp,file.portal=10.0.0.1:3260,"
        f"file.target={iqn},file.lun=0",
    ]
    chap = qemu_img_convert_argv("/srv/a.raw", "raw", "10.0.0.1:3260", iqn, "fe-user")
    assert chap[6:8] == ["--object", "secret,id=chap0,file=@SECRET@"]
    assert chap[-1].endswith(",file.user=fe-user,file.password-secret=chap0")


@pytest.mark.parametrize(
    ("portal", "iqn", "user"),
    [
        ("10.0.0.1:3260,file.driver=file", "iqn.x:y", None),
        ("10.0.0.1:3260", "iqn.x:y,file.filename=/etc/shadow", None),
        ("10.0.0.1:3260", "iqn.x:y", "u,file.x=y"),
    ],
)
def test_convert_argv_refuses_option_injection(portal: str, iqn: str, user: str | None) -> None:
    with pytest.raises(BadValueError):
        qemu_img_convert_argv("/srv/a.raw", "raw", portal, iqn, user)
