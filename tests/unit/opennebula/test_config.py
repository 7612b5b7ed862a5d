from __future__ import annotations

from pathlib import Path

import pytest

from eqliscsi.errors import ConfigError
from eqliscsi.opennebula.config import ConfFile, EqlConfig, load_conf, parse_conf, resolve
from eqliscsi.opennebula.errors import ConfFileError
from eqliscsi.secret import Secret

REPO = Path(__file__).resolve().parents[3]

# The original add-on's sample (reference §1.3): bash assignments, sourced by the
# original, read by us without running anything.
ORIGINAL_SAMPLE = """\
# EqualLogic ISCSI datastore configuration
EQL_HOST=192.168.0.1
EQL_POOL=sample_pool
EQL_USER=grpadmin
EQL_PASS=grpadmin_pass
# Multihost access (enable/disable), default enable
EQL_MULTIHOST=enable
EQL_SECURITY_ACCESS="ipaddress 192.168.*.*"
EQL_THINPROVISION="thin-provision thin-min-reserve 50%"
EQL_BASE_DEVICE=/dev/iscsi
EQL_IFACE=eql00
EQL_WAIT_TIME=1
NO_ISCSI=""
EQLADM=EqlCliExec.py
"""


def test_original_sample_unchanged() -> None:
    conf = parse_conf(ORIGINAL_SAMPLE)
    cfg = resolve(conf).config
    assert cfg.host == "192.168.0.1"
    assert cfg.pool == "sample_pool"
    assert cfg.user == "grpadmin"
    assert cfg.password is not None and cfg.password.reveal() == b"grpadmin_pass"
    assert cfg.multihost is True
    assert cfg.security_access == ("ipaddress", "192.168.*.*")
    assert cfg.thin_provision == ("thin-provision", "thin-min-reserve", "50%")
    assert cfg.base_device == "/dev/iscsi"
    assert cfg.iface == "eql00"
    assert cfg.wait_time == 1.0
    assert cfg.no_iscsi == ()
    assert any("EQLADM is ignored" in n for n in conf.notices)
    assert "grpadmin_pass" not in repr(cfg)


def test_shipped_sample_parses() -> None:
    conf = load_conf(REPO / "remotes/datastore/eqliscsi/eqliscsi.conf.sample")
    assert conf.notices == ()
    cfg = resolve(conf, read_secret_file=lambda p: Secret(b"x", origin=f"file {p}")).config
    assert cfg.host == "192.168.0.1" and cfg.max_sessions == 7
    assert cfg.password is not None and "password" in cfg.password.origin


@pytest.mark.parametrize(
    ("line", "value"),
    [
        pytest.param("EQL_POOL=plain", "plain", id="bare"),
        pytest.param("EQL_POOL='single q'", "single q", id="single"),
        pytest.param('EQL_POOL="double q"', "double q", id="double"),
        pytest.param('EQL_POOL="a\\"b\\\\c\\$d"', 'a"b\\c$d', id="double-escapes"),
        pytest.param("EQL_POOL='it'\\''s'", "it's", id="concat-escaped-quote"),
        pytest.param("export EQL_POOL=exported", "exported", id="export"),
        pytest.param("  EQL_POOL=x   # trailing comment", "x", id="comment"),
        pytest.param("EQL_POOL=", "", id="empty"),
        pytest.param("EQL_POOL='$(not run)'", "$(not run)", id="single-quoted-subst-is-literal"),
        pytest.param("EQL_POOL=a\\ b", "a b", id="backslash-blank"),
    ],
)
def test_shell_subset(line: str, value: str) -> None:
    assert parse_conf(line).values["EQL_POOL"] == value


@pytest.mark.parametrize(
    ("line", "match"),
    [
        pytest.param("EQL_PASS=$(cat /root/pw)", "operator", id="command-subst"),
        pytest.param("EQL_PASS=`cat /root/pw`", "operator", id="backticks"),
        pytest.param('EQL_PASS="$(cat /root/pw)"', "expansion", id="subst-in-double"),
        pytest.param('EQL_PASS="${HOME}"', "expansion", id="param-in-double"),
        pytest.param("EQL_PASS=$SECRET", "operator", id="variable"),
        pytest.param("EQL_PASS=x; rm -rf /", "operator", id="semicolon"),
        pytest.param("EQL_PASS=x | mail", "more words", id="pipe-after-blank"),
        pytest.param("EQL_PASS=x>file", "operator", id="redirect"),
        pytest.param("EQL_PASS=x reboot", "more words", id="second-word"),
        pytest.param("EQL_PASS='unterminated", "not closed", id="open-single"),
        pytest.param('EQL_PASS="unterminated', "not closed", id="open-double"),
        pytest.param("EQL_PASS=x\\", "continuation", id="continuation"),
        pytest.param("source /etc/other.conf", "not a NAME=value", id="source"),
        pytest.param("EQL PASS=x", "not a NAME=value", id="blank-in-name"),
        pytest.param("if true; then EQL_HOST=x; fi", "not a NAME=value", id="compound"),
    ],
)
def test_shell_subset_rejects(line: str, match: str) -> None:
    with pytest.raises(ConfFileError, match=match) as info:
        parse_conf(f"# header\n{line}\n", origin="test.conf")
    text = str(info.value)
    assert "line 2 of test.conf" in text
    assert "/root/pw" not in text and "SECRET" not in text  # never echo the value
    assert "\n" not in text


def test_unknown_keys_noticed_and_last_wins() -> None:
    conf = parse_conf("EQL_HOST=a\nEQL_HSOT=b\nEQL_HOST=c\n")
    assert conf.values == {"EQL_HOST": "c"}
    assert conf.notices == ("eqliscsi.conf: unknown key EQL_HSOT is ignored; check its spelling.",)


def test_load_conf(tmp_path: Path) -> None:
    assert load_conf(tmp_path / "absent.conf").values == {}
    bad = tmp_path / "bad.conf"
    bad.write_bytes(b"EQL_HOST=\xff\n")
    with pytest.raises(ConfFileError, match="UTF-8"):
        load_conf(bad)
    big = tmp_path / "big.conf"
    big.write_text("# x\n" * 70000)
    with pytest.raises(ConfFileError, match="larger"):
        load_conf(big)


CONF = ConfFile(
    values={
        "EQL_HOST": "10.0.0.1",
        "EQL_POOL": "conf-pool",
        "EQL_USER": "confuser",
        "EQL_MULTIHOST": "enable",
        "EQL_THINPROVISION": "thin-provision",
        "EQL_PASS_FILE": "/etc/eqliscsi/pw",
    },
    notices=(),
    origin="eqliscsi.conf",
)


def fake_secret(path: str) -> Secret:
    return Secret(b"from-file", origin=f"file {path}")


# (ds template, image template, field, expected value)
@pytest.mark.parametrize(
    ("ds", "img", "attr", "expected"),
    [
        pytest.param({}, {}, "pool", "conf-pool", id="conf-only"),
        pytest.param({"EQL_POOL": "ds-pool"}, {}, "pool", "ds-pool", id="ds-over-conf"),
        pytest.param({"EQL_POOL": ""}, {}, "pool", "conf-pool", id="empty-ds-means-default"),
        pytest.param(
            {"EQL_POOL": "ds-pool"},
            {"EQL_POOL": "img-pool"},
            "pool",
            "ds-pool",
            id="image-cannot-move-pool",
        ),
        pytest.param({}, {"EQL_HOST": "6.6.6.6"}, "host", "10.0.0.1", id="image-cannot-move-san"),
        pytest.param({"EQL_MULTIHOST": "disable"}, {}, "multihost", False, id="ds-multihost"),
        pytest.param(
            {"EQL_MULTIHOST": "disable"},
            {"EQL_MULTIHOST": "ENABLE"},
            "multihost",
            True,
            id="image-multihost",
        ),
        pytest.param(
            {},
            {"EQL_THINPROVISION": "thin-provision thin-min-reserve 20%"},
            "thin_provision",
            ("thin-provision", "thin-min-reserve", "20%"),
            id="image-thin",
        ),
        pytest.param(
            {"EQL_SECURITY_ACCESS": "initiator iqn.1993-08.org.debian:01:abc"},
            {},
            "security_access",
            ("initiator", "iqn.1993-08.org.debian:01:abc"),
            id="ds-access",
        ),
        pytest.param(
            {"EQL_SECURITY_ACCESS": "a"},
            {"EQL_SECURITY_ACCESS": "ipaddress 10.*.*.*"},
            "security_access",
            ("ipaddress", "10.*.*.*"),
            id="image-access",
        ),
        pytest.param(
            {"EQL_PASS_FILE": "/tmp/evil"},
            {},
            "password",
            "from-file@/etc/eqliscsi/pw",
            id="ds-cannot-name-files",
        ),
        pytest.param({"EQL_PASS": "dspass"}, {}, "password", "dspass", id="ds-inline-pass-wins"),
        pytest.param(
            {},
            {"EQL_PASS": "imgpass"},
            "password",
            "from-file@/etc/eqliscsi/pw",
            id="image-cannot-set-pass",
        ),
        pytest.param(
            {"EQL_PORTAL": "10.0.1.1"}, {}, "discovery_portal", "10.0.1.1:3260", id="portal"
        ),
        pytest.param(
            {"EQL_PORTAL": "10.0.1.1:3261"},
            {},
            "discovery_portal",
            "10.0.1.1:3261",
            id="portal-port",
        ),
        pytest.param(
            {"EQL_PORTAL": "[fd00::1]:3262"},
            {},
            "discovery_portal",
            "[fd00::1]:3262",
            id="portal-v6",
        ),
        pytest.param({}, {}, "discovery_portal", "10.0.0.1:3260", id="portal-defaults-to-group"),
    ],
)
def test_precedence(ds: dict[str, str], img: dict[str, str], attr: str, expected: object) -> None:
    cfg = resolve(CONF, ds, img, read_secret_file=fake_secret).config
    value = getattr(cfg, attr)
    if attr == "password":
        assert isinstance(value, Secret)
        text = value.reveal().decode()
        value = f"{text}@{value.origin.removeprefix('file ')}" if text == "from-file" else text
    assert value == expected


def test_precedence_notices() -> None:
    res = resolve(
        CONF,
        {"EQL_PASS_FILE": "/tmp/x", "EQL_FOO": "1", "BRIDGE_LIST": "a"},
        {"EQL_HOST": "x", "DESCRIPTION": "d"},
        read_secret_file=fake_secret,
    )
    assert res.notices == (
        "EQL_PASS_FILE in the datastore template is ignored; set it in eqliscsi.conf.",
        "Unknown attribute EQL_FOO in the datastore template is ignored.",
        "EQL_HOST in the image template is ignored; set it in eqliscsi.conf.",
    )


@pytest.mark.parametrize(
    ("ds", "key"),
    [
        pytest.param({"EQL_HOST": "10.0.0.1; reboot"}, "EQL_HOST", id="host-injection"),
        pytest.param({"EQL_HOST": "-oProxyCommand=x"}, "EQL_HOST", id="host-option"),
        pytest.param(
            {"EQL_PORTAL": "10.0.0.1:3260,file.driver=x"}, "EQL_PORTAL", id="portal-opts-injection"
        ),
        pytest.param({"EQL_POOL": "pool name"}, "EQL_POOL", id="pool-blank"),
        pytest.param({"EQL_POOL": "p" * 70}, "EQL_POOL", id="pool-long"),
        pytest.param({"EQL_USER": "a'b"}, "EQL_USER", id="user-quote"),
        pytest.param({"EQL_MULTIHOST": "yes"}, "EQL_MULTIHOST", id="multihost-value"),
        pytest.param(
            {"EQL_SECURITY_ACCESS": "ipaddress 1.2.3.4 ; volume delete x"},
            "EQL_SECURITY_ACCESS",
            id="access-injection",
        ),
        pytest.param(
            {"EQL_THINPROVISION": "thin-provision\nvolume delete x"},
            "EQL_THINPROVISION",
            id="thin-newline-word",
        ),
        pytest.param(
            {"EQL_THINPROVISION": "thin-min-reserve 'x'"}, "EQL_THINPROVISION", id="thin-quote"
        ),
        pytest.param({"EQL_BASE_DEVICE": "dev/iscsi"}, "EQL_BASE_DEVICE", id="relative-dev"),
        pytest.param({"EQL_IFACE": "eql 0"}, "EQL_IFACE", id="iface-blank"),
        pytest.param({"EQL_WAIT_TIME": "ten"}, "EQL_WAIT_TIME", id="wait-nan"),
        pytest.param({"EQL_WAIT_TIME": "-1"}, "EQL_WAIT_TIME", id="wait-negative"),
        pytest.param({"EQL_MAX_SESSIONS": "0"}, "EQL_MAX_SESSIONS", id="sessions-zero"),
        pytest.param({"EQL_SSH_PORT": "70000"}, "EQL_SSH_PORT", id="port-range"),
        pytest.param({"NO_ISCSI": "fe $(x)"}, "NO_ISCSI", id="no-iscsi-subst"),
        pytest.param(
            {"EQL_HOST_FINGERPRINT": "MD5:aa:bb"}, "EQL_HOST_FINGERPRINT", id="fingerprint"
        ),
    ],
)
def test_rejects_values(ds: dict[str, str], key: str) -> None:
    with pytest.raises(ConfigError, match=key) as info:
        resolve(CONF, ds, read_secret_file=fake_secret)
    assert "the datastore template" in str(info.value)
    assert "reboot" not in str(info.value) and "delete" not in str(info.value)


def test_require_san() -> None:
    with pytest.raises(ConfigError, match="EQL_HOST, EQL_USER, EQL_PASS_FILE or EQL_PASS"):
        EqlConfig().require_san()
    cfg = resolve(CONF, read_secret_file=fake_secret).config
    assert cfg.require_san() is cfg


@pytest.mark.parametrize(
    ("conf_values", "expected", "noticed"),
    [
        pytest.param({"EQL_PASS_FILE": "/etc/eqliscsi/pw"}, b"from-file", True, id="file-wins"),
        pytest.param({"EQL_PASS": "conf-inline"}, b"conf-inline", True, id="conf-inline-wins"),
        pytest.param({}, b"ENCRYPTED==", False, id="only-template-left"),
    ],
)
def test_encrypted_template_password(
    conf_values: dict[str, str], expected: bytes, noticed: bool
) -> None:
    conf = ConfFile(
        values={"EQL_HOST": "h", "EQL_USER": "u", **conf_values}, notices=(), origin="c"
    )
    res = resolve(
        conf,
        {"EQL_PASS": "ENCRYPTED=="},
        read_secret_file=fake_secret,
        template_password_usable=False,
    )
    assert res.config.password is not None and res.config.password.reveal() == expected
    assert any("passes it encrypted" in n for n in res.notices) == noticed
    # Ordinary actions keep the documented precedence: the template wins.
    plain = resolve(conf, {"EQL_PASS": "ENCRYPTED=="}, read_secret_file=fake_secret)
    assert plain.config.password is not None and plain.config.password.reveal() == b"ENCRYPTED=="
