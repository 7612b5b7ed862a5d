"""Pure tests of the iscsiadm builders, snippets, parsers and status mapping."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from eqliscsi.errors import UsageError
from eqliscsi.opennebula import iscsiadm as ia
from eqliscsi.secret import Secret

IQN = "iqn.2001-05.com.equallogic:0-8a0906-0123456789-0123456789abcdef-one-7"
PORTAL = ia.TargetPortal("10.0.0.5")
NODE = ia.Node(IQN, PORTAL, "eql0")
REPO = Path(__file__).resolve().parents[3]
AUTH_HELPER = REPO / "remotes" / "tm" / "eqliscsi" / "eqliscsi-node-auth"


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        pytest.param(
            ia.discovery_argv(PORTAL, "eql0"),
            "iscsiadm -m discoverydb -t sendtargets -p 10.0.0.5:3260 -I eql0 -o new --discover",
            id="discovery",
        ),
        pytest.param(
            ia.login_argv(NODE),
            f"iscsiadm -m node -T {IQN} -p 10.0.0.5:3260 -I eql0 --login",
            id="login",
        ),
        pytest.param(
            ia.logout_argv(NODE),
            f"iscsiadm -m node -T {IQN} -p 10.0.0.5:3260 -I eql0 --logout",
            id="logout",
        ),
        pytest.param(
            ia.node_delete_argv(NODE),
            f"iscsiadm -m node -T {IQN} -p 10.0.0.5:3260 -I eql0 -o delete",
            id="delete",
        ),
        pytest.param(ia.session_argv(), "iscsiadm -m session", id="session"),
        pytest.param(
            ia.login_argv(ia.Node(IQN, ia.TargetPortal("fd00::5", 3261))),
            f"iscsiadm -m node -T {IQN} -p '[fd00::5]:3261' -I default --login",  # quoted: [ ] glob
            id="login-ipv6-default-iface",
        ),
    ],
)
def test_argv_forms(argv: tuple[str, ...], expected: str) -> None:
    assert ia.render(argv) == expected
    assert shlex.split(ia.render(argv)) == list(argv)


HOSTILE = [
    "x; rm -rf /",
    "$(reboot)",
    "`id`",
    "a b",
    "a\nb",
    "a|b",
    "a&b",
    "a>b",
    "'",
    '"',
    "../../etc",
    "",
]


@pytest.mark.parametrize("bad", HOSTILE, ids=repr)
def test_hostile_iqn_rejected(bad: str) -> None:
    with pytest.raises(UsageError):
        ia.Node(f"iqn.2001-05.com.equallogic:{bad}" if bad else "", PORTAL)


@pytest.mark.parametrize("bad", [*HOSTILE, "a/b", "x" * 65], ids=repr)
def test_hostile_iface_rejected(bad: str) -> None:
    with pytest.raises(UsageError):
        ia.Node(IQN, PORTAL, bad)


@pytest.mark.parametrize(
    "bad",
    [
        "group.example.com",
        "10.0.0.5;id",
        "10.0.0.5 ",
        "010.0.0.5",
        "10.0.0.256",
        "$(id)",
        "fd00:0::5",
        "",
    ],
    ids=repr,
)
def test_portal_must_be_canonical_ip(bad: str) -> None:
    with pytest.raises(UsageError):
        ia.TargetPortal(bad)


@pytest.mark.parametrize("port", [0, 65536, -1])
def test_portal_port_range(port: int) -> None:
    with pytest.raises(UsageError):
        ia.TargetPortal("10.0.0.5", port)


@pytest.mark.parametrize(
    "bad", ["relative/path", "/tmp/a b", "/tmp/$(id)", "/tmp/a;b", "/tmp/../etc/x", "/"], ids=repr
)
def test_hostile_paths_rejected(bad: str) -> None:
    with pytest.raises(UsageError):
        ia.login_script(NODE, lock_path=bad)
    with pytest.raises(UsageError):
        ia.login_script(NODE, chap=ia.ChapCredentials("u", Secret(b"s3cret-value")), helper=bad)


@pytest.mark.parametrize(
    ("user", "secret"),
    [("a b", b"secret12"), ("u", b"sec ret"), ("u", b"sec\nret"), ("u'", b"secret12"),
     ("u", b"sec'ret"), ("u", b'sec"ret'), ("u", b"\xff\xfe"), ("x" * 256, b"secret12"),
     ("EQLISCSI_CHAP", b"secret12"), ("u", b"EQLISCSI_CHAP")],
    ids=["user-space", "secret-space", "secret-newline", "user-quote", "secret-quote",
         "secret-dquote", "secret-not-ascii", "user-too-long", "user-is-delimiter",
         "secret-is-delimiter"],
)  # fmt: skip
def test_hostile_chap_values_rejected(user: str, secret: bytes) -> None:
    with pytest.raises(UsageError) as exc:
        ia.ChapCredentials(user, Secret(secret, origin="test"))
    assert secret.decode(errors="replace") not in str(exc.value)


@given(st.text(min_size=1, max_size=80))
def test_accepted_iqns_are_shell_inert(suffix: str) -> None:
    iqn = f"iqn.2001-05.com.equallogic:{suffix}"
    try:
        ia.validate_iqn(iqn)
    except UsageError:
        return
    assert shlex.quote(iqn) == iqn  # nothing that needs quoting, let alone escaping
    assert shlex.split(ia.render(ia.login_argv(ia.Node(iqn, PORTAL)))) == list(
        ia.login_argv(ia.Node(iqn, PORTAL))
    )


def test_script_redacts_secret() -> None:
    secret = Secret(b"Top-Secret-42", origin="test")
    script = ia.login_script(NODE, chap=ia.ChapCredentials("oneadmin", secret))
    assert b"Top-Secret-42" in script.stdin_bytes()
    assert "Top-Secret-42" not in str(script)
    assert "Top-Secret-42" not in repr(script)
    assert "***" in str(script)
    # Never in a command line: only inside the here-document.
    for line in script.stdin_bytes().decode().splitlines():
        if "Top-Secret-42" in line:
            assert line == "Top-Secret-42"


# ------------------------------------------------------------------ snippets under sh

FAKE_ISCSIADM = """#!/bin/sh
# Test double for exit-status semantics: logs argv, exits per $FAKE_<op> (a list
# consumed one status per call).
echo "$*" >> "$FAKE_LOG"
case "$*" in
  *--discover*) op=discovery ;;
  *--login*) op=login ;;
  *--logout*) op=logout ;;
  *"-o delete"*) op=delete ;;
  *) op=other ;;
esac
f="$FAKE_DIR/$op"
[ -f "$f" ] || exit 0
rc=$(head -n1 "$f"); tail -n +2 "$f" > "$f.n"; mv "$f.n" "$f"
[ -n "$rc" ] || rc=0
exit "$rc"
"""


def run_snippet(
    tmp_path: Path,
    script: ia.RemoteScript,
    statuses: dict[str, list[int]],
    prefix: tuple[str, ...] = (),
) -> tuple[int, str, list[str]]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    fake = bin_dir / "iscsiadm"
    fake.write_text(FAKE_ISCSIADM)
    fake.chmod(0o755)
    for op, codes in statuses.items():
        (tmp_path / op).write_text("".join(f"{c}\n" for c in codes))
    log = tmp_path / "calls.log"
    env = {
        "PATH": f"{bin_dir}:/usr/sbin:/usr/bin:/sbin:/bin",
        "FAKE_LOG": str(log),
        "FAKE_DIR": str(tmp_path),
        "ISCSI_DB": str(tmp_path / "db"),
    }
    r = subprocess.run(
        [*prefix, "sh", "-s"], input=script.stdin_bytes(), capture_output=True, env=env,
        timeout=60, check=False,
    )  # fmt: skip
    calls = log.read_text().splitlines() if log.exists() else []
    return r.returncode, r.stderr.decode(), calls


def _record(tmp_path: Path) -> Path:
    rec = tmp_path / "db" / "nodes" / IQN / "10.0.0.5,3260,1" / "eql0"
    rec.parent.mkdir(parents=True)
    rec.write_text(
        f"# BEGIN RECORD 2.1.8\nnode.name = {IQN}\nnode.session.auth.authmethod = None\n"
        "node.conn[0].port = 3260\n# END RECORD\n"
    )
    return rec


@pytest.mark.parametrize(
    ("statuses", "error"),
    [
        pytest.param({}, None, id="fresh-login"),
        pytest.param({"login": [15]}, None, id="already-logged-in"),
        pytest.param({"login": [24]}, ia.IscsiadmAuthError, id="auth-failure"),
        pytest.param({"login": [19]}, ia.IscsiadmLoginError, id="fatal-login"),
        pytest.param({"discovery": [4]}, ia.IscsiadmError, id="discovery-unreachable"),
        pytest.param({"discovery": [12]}, ia.IscsiadmUnavailableError, id="no-iscsi-tcp"),
        pytest.param({"login": [21]}, ia.IscsiadmNoRecordsError, id="no-record"),
    ],
)
def test_login_snippet(
    tmp_path: Path, statuses: dict[str, list[int]], error: type[Exception] | None
) -> None:
    rec = _record(tmp_path)
    secret = Secret(b"Sn1ppet-Secret", origin="test")
    script = ia.login_script(
        NODE,
        chap=ia.ChapCredentials("oneadmin", secret),
        helper=str(AUTH_HELPER),
        lock_path=str(tmp_path / "lock"),
    )
    rc, stderr, calls = run_snippet(tmp_path, script, statuses)
    if error is None:
        assert rc == 0, stderr
        ia.check_script_result(script, rc, stderr)
    else:
        with pytest.raises(error):
            ia.check_script_result(script, rc, stderr)
    assert calls[0] == shlex.join(ia.discovery_argv(PORTAL, "eql0")[1:])
    if "discovery" not in statuses:
        assert calls[1] == shlex.join(ia.login_argv(NODE)[1:])
        text = rec.read_text()
        assert "node.session.auth.password = Sn1ppet-Secret" in text
        assert "node.session.auth.authmethod = CHAP" in text
        assert text.endswith("# END RECORD\n")
        assert (rec.stat().st_mode & 0o777) == 0o600
    assert "Sn1ppet-Secret" not in stderr
    assert (tmp_path / "lock").exists()


@pytest.mark.parametrize(
    ("mutual", "status", "fix"),
    [
        pytest.param(True, 19, "EQL_CHAP_TARGET_SECRET_FILE", id="mutual-fatal-names-target-keys"),
        pytest.param(False, 19, "network path", id="one-way-fatal-names-network"),
        pytest.param(True, 24, "access rule", id="mutual-auth-names-initiator-secret"),
        pytest.param(True, 8, "network path", id="mutual-timeout-names-network"),
    ],
)
def test_login_failure_advice_follows_mutual_chap(
    tmp_path: Path, mutual: bool, status: int, fix: str
) -> None:
    # With mutual CHAP open-iscsi reports a target that failed its own CHAP_R as a
    # fatal login (19): the advice must then point at the target-auth keys.
    target = Secret(b"Target-Secret-9", origin="test") if mutual else None
    chap = ia.ChapCredentials(
        "oneadmin", Secret(b"Sn1ppet-Secret", origin="test"),
        username_in="grp-target" if mutual else "", secret_in=target,
    )  # fmt: skip
    script = ia.login_script(NODE, chap=chap, lock_path=str(tmp_path / "lock"))
    assert script.mutual_chap is mutual
    with pytest.raises(ia.IscsiadmLoginError if status != 24 else ia.IscsiadmAuthError) as got:
        ia.check_script_result(script, status, f"eqliscsi-step: login {status}\n")
    assert fix in got.value.message
    assert "Target-Secret-9" not in got.value.message


@pytest.mark.parametrize(
    ("statuses", "error", "logout_calls"),
    [
        pytest.param({}, None, 1, id="logout"),
        pytest.param({"logout": [21], "delete": [21]}, None, 1, id="already-out"),
        pytest.param({"logout": [28, 29, 0]}, None, 3, id="busy-then-out"),
        pytest.param({"logout": [28] * 9}, ia.IscsiadmBusyError, ia.LOGOUT_ATTEMPTS,
                     id="busy-for-good"),
        pytest.param({"logout": [10]}, ia.IscsiadmError, 1, id="logout-failed"),
        pytest.param({"delete": [15]}, ia.IscsiadmError, 1, id="record-in-use"),
    ],
)  # fmt: skip
def test_logout_snippet(
    tmp_path: Path,
    statuses: dict[str, list[int]],
    error: type[Exception] | None,
    logout_calls: int,
) -> None:
    script = ia.logout_script(NODE, lock_path=str(tmp_path / "lock"))
    rc, stderr, calls = run_snippet(tmp_path, script, statuses)
    assert sum("--logout" in c for c in calls) == logout_calls
    if error is None:
        ia.check_script_result(script, rc, stderr)
        assert calls[-1] == shlex.join(ia.node_delete_argv(NODE)[1:])
    else:
        with pytest.raises(error):
            ia.check_script_result(script, rc, stderr)


def test_script_that_dies_before_a_step_is_reported(tmp_path: Path) -> None:
    script = ia.logout_script(NODE)
    with pytest.raises(ia.IscsiadmError, match="before any step"):
        ia.check_script_result(script, 255, "ssh: connect to host h1 port 22: refused")


def test_snippet_waits_for_the_lock(tmp_path: Path) -> None:
    lock = tmp_path / "lock"
    script = ia.logout_script(NODE, lock_path=str(lock))
    with open(lock, "w") as held:
        # Another holder of the lock: the snippet must not run iscsiadm meanwhile.
        holder = subprocess.Popen(["flock", str(lock), "sleep", "2"], stdin=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                probe = subprocess.run(["flock", "-n", str(lock), "true"], check=False)
                if probe.returncode != 0:
                    break
                time.sleep(0.02)
            started = time.monotonic()
            rc, stderr, calls = run_snippet(tmp_path, script, {})
            waited = time.monotonic() - started
        finally:
            holder.wait(timeout=10)
        del held
    assert rc == 0, stderr
    assert waited > 0.5
    assert calls


def test_snippet_as_oneadmin_takes_a_lock_file_root_made(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    # A manual run as root leaves the lock file root-owned 0644; the driver's user must
    # still take the lock (flock(2) needs no write access), not fail on "exec 9>>".
    # Seen on the guest tier's real host, where oneadmin runs the scripts through sudo.
    setpriv = shutil.which("setpriv")
    assert setpriv is not None, "setpriv (util-linux) is needed"
    work = Path(tempfile.mkdtemp(prefix="eqliscsi-lock-", dir="/tmp"))
    try:
        work.chmod(0o777)  # the unprivileged run writes its call log and node db here
        lock = work / "lock"
        lock.write_text("")
        lock.chmod(0o644)
        assert os.stat(lock).st_uid == os.geteuid() == 0
        script = ia.logout_script(NODE, lock_path=str(lock))
        nobody = (setpriv, "--reuid=65534", "--regid=65534", "--clear-groups")
        rc, stderr, calls = run_snippet(work, script, {}, prefix=nobody)
        assert rc == 0, stderr
        assert any("--logout" in c for c in calls)
        # The same user cannot open it for writing: the read-only branch is what ran.
        denied = subprocess.run(
            [*nobody, "sh", "-c", f"exec 9>>{lock}"], capture_output=True, check=False
        )
        assert denied.returncode != 0
    finally:
        shutil.rmtree(work)


# ------------------------------------------------------------------ parsers and statuses


@pytest.mark.parametrize(
    ("stdout", "expected"),
    [
        pytest.param(
            f"tcp: [1] 10.0.0.5:3260,1 {IQN} (non-flash)\n",
            [ia.SessionInfo("tcp", 1, ia.TargetPortal("10.0.0.5"), 1, IQN)],
            id="one",
        ),
        pytest.param(
            f"tcp: [3] [fd00::5]:3260,1 {IQN} (non-flash)\ntcp: [12] 10.0.0.6:3261,2 {IQN}\n",
            [
                ia.SessionInfo("tcp", 3, ia.TargetPortal("fd00::5"), 1, IQN),
                ia.SessionInfo("tcp", 12, ia.TargetPortal("10.0.0.6", 3261), 2, IQN),
            ],
            id="ipv6-and-no-flash-suffix",
        ),
        pytest.param(
            f"tcp [2] 10.0.0.5:3260,1 {IQN}\n",
            [ia.SessionInfo("tcp", 2, ia.TargetPortal("10.0.0.5"), 1, IQN)],
            id="pre-2.0-870-format",
        ),
    ],
)
def test_parse_sessions(stdout: str, expected: list[ia.SessionInfo]) -> None:
    assert ia.parse_sessions(stdout) == expected


def test_no_sessions_is_empty() -> None:
    assert ia.parse_sessions("", status=21) == []


@pytest.mark.parametrize(
    "line", ["garbage", "tcp: [x] 1.2.3.4:3260,1 iqn", "tcp: [1] host:3260,1 i"]
)
def test_unparseable_session_line(line: str) -> None:
    with pytest.raises(ia.IscsiadmError):
        ia.parse_sessions(line + "\n")


def test_session_listing_failure_is_typed() -> None:
    with pytest.raises(ia.IscsiadmUnavailableError):
        ia.parse_sessions("", status=20)


@pytest.mark.parametrize(
    ("op", "status", "error"),
    [
        (ia.Op.LOGIN, 0, None),
        (ia.Op.LOGIN, 15, None),
        (ia.Op.LOGOUT, 21, None),
        (ia.Op.DELETE, 21, None),
        (ia.Op.LOGIN, 21, ia.IscsiadmNoRecordsError),
        (ia.Op.LOGIN, 24, ia.IscsiadmAuthError),
        (ia.Op.DISCOVERY, 24, ia.IscsiadmAuthError),
        (ia.Op.LOGIN, 5, ia.IscsiadmLoginError),
        (ia.Op.LOGIN, 8, ia.IscsiadmLoginError),
        (ia.Op.LOGOUT, 28, ia.IscsiadmBusyError),
        (ia.Op.LOGOUT, 15, ia.IscsiadmError),
        (ia.Op.DISCOVERY, 12, ia.IscsiadmUnavailableError),
        (ia.Op.DISCOVERY, 127, ia.IscsiadmUnavailableError),
        (ia.Op.LOCK, 1, ia.IscsiadmBusyError),
        (ia.Op.AUTH, 21, ia.IscsiadmError),
        (ia.Op.LOGIN, 99, ia.IscsiadmError),
    ],
    ids=lambda v: str(getattr(v, "value", getattr(v, "__name__", v))),
)
def test_status_mapping(op: ia.Op, status: int, error: type[Exception] | None) -> None:
    if error is None:
        ia.check_status(op, status)
        return
    with pytest.raises(error) as exc:
        ia.check_status(op, status, host="h1", what="one-7")
    e = exc.value
    assert isinstance(e, ia.IscsiadmError)
    assert e.status == status and e.op is op
    # One admin sentence: what failed and what to do.
    assert str(e).count(". ") == 0 and str(e).endswith(".")
    assert ";" in str(e)


@pytest.mark.parametrize(
    ("stderr", "expected"),
    [
        ("eqliscsi-step: login 24\n", (ia.Op.LOGIN, 24)),
        ("iscsiadm: blah\neqliscsi-step: discovery 4\n", (ia.Op.DISCOVERY, 4)),
        ("eqliscsi-step: bogus 4\n", None),
        ("nothing\n", None),
    ],
)
def test_parse_step_failure(stderr: str, expected: tuple[ia.Op, int] | None) -> None:
    assert ia.parse_step_failure(stderr) == expected


def test_reference_ids_are_distinct() -> None:
    classes = [
        ia.IscsiadmError, ia.IscsiadmAuthError, ia.IscsiadmLoginError,
        ia.IscsiadmNoRecordsError, ia.IscsiadmBusyError, ia.IscsiadmUnavailableError,
    ]  # fmt: skip
    assert len({c.reference for c in classes}) == len(classes)


@pytest.mark.parametrize(
    "value",
    [IQN + "\n", "eql0\n"],
    ids=["iqn-trailing-newline", "iface-trailing-newline"],
)
def test_trailing_newline_rejected(value: str) -> None:
    # Found by Hypothesis: a "$"-anchored re.match accepts a trailing newline.
    with pytest.raises(UsageError):
        if value.startswith("iqn."):
            ia.validate_iqn(value)
        else:
            ia.validate_iface(value)


@pytest.mark.parametrize(
    "host", ["node1", "kvm-01.example.org", "kvm-01.example.org.", "10.0.0.7", "fd00::7", "H1"]
)
def test_hosts_accepted(host: str) -> None:
    assert ia.validate_host(host) == host


@pytest.mark.parametrize(
    "host",
    [*HOSTILE, "-oProxyCommand=id", "node1 -v", "node1;id", "node_1", "node1\n", "a..b",
     "-node", "node-", "a" * 64 + ".example", "root@node1", "node1:22", "[fd00::7]"],
    ids=repr,
)  # fmt: skip
def test_hostile_hosts_rejected(host: str) -> None:
    with pytest.raises(UsageError):
        ia.validate_host(host)


_sessions = st.lists(
    st.builds(
        ia.SessionInfo,
        transport=st.sampled_from(["tcp", "iser", "bnx2i"]),
        sid=st.integers(1, 10**6),
        portal=st.builds(
            ia.TargetPortal,
            address=st.one_of(
                st.ip_addresses(v=4).map(str), st.ip_addresses(v=6).map(str)
            ),
            port=st.integers(1, 65535),
        ),
        tpgt=st.integers(0, 65535),
        iqn=st.from_regex(r"iqn\.20[0-9]{2}-(0[1-9]|1[0-2])\.com\.example:[a-z0-9.-]{1,40}",
                          fullmatch=True),
    ),
    max_size=5,
)  # fmt: skip


@given(_sessions)
def test_session_listing_round_trips(sessions: list[ia.SessionInfo]) -> None:
    text = "".join(
        f"{s.transport}: [{s.sid}] {s.portal},{s.tpgt} {s.iqn} (non-flash)\n" for s in sessions
    )
    assert ia.parse_sessions(text, status=0 if sessions else 21) == sessions


@given(st.text(max_size=200))
def test_session_parser_fails_only_with_typed_errors(text: str) -> None:
    try:
        parsed = ia.parse_sessions(text)
    except ia.IscsiadmError as e:
        assert e.op is ia.Op.SESSIONS
    else:
        # Every non-blank line became exactly one session; nothing is skipped.
        assert len(parsed) == sum(1 for line in text.splitlines() if line.strip())
