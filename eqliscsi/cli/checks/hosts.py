"""Hypervisor host checks: one SSH round trip per host, then pure evaluations.

Each host is asked once (:func:`host_facts`): the checker sends a small POSIX-sh
script over ``ssh HOST sh -s`` (the way the TM actions reach hosts) that prints
labelled sections (``@@eqliscsi NAME`` … ``@@rc N``), and every host check reads its
section.  All hosts are asked at once.

Secrets stay where they are: the script prints ``iscsid.conf`` without its password
lines and only a SHA-256 of each password value, which the checker compares with a
hash of the configured secret.  Nothing secret crosses the wire in either direction.

The only command that changes anything on the host is the discovery, in the exact
form the driver runs before every login (``iscsiadm -m discoverydb … -o new
--discover``, from :mod:`eqliscsi.opennebula.iscsiadm`): it adds node records for
targets that have none and leaves existing ones alone.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass

from eqliscsi.cli.checks.base import (
    Check,
    Context,
    Finding,
    Section,
    Severity,
    failed,
    passed,
    skipped,
    warned,
)
from eqliscsi.cli.checks.inputs import Options
from eqliscsi.cli.checks.san import config_of, san_volumes
from eqliscsi.errors import EqliscsiError
from eqliscsi.opennebula.config import EqlConfig
from eqliscsi.opennebula.iscsiadm import (
    IscsiadmError,
    IscsiadmStatus,
    Op,
    TargetPortal,
    check_status,
    discovery_argv,
    parse_sessions,
    render,
    session_argv,
)

__all__ = [
    "CHECKS",
    "SUGGESTED_TUNING",
    "HostFacts",
    "host_script",
    "parse_host_output",
    "parse_iscsid_conf",
]

UDEV_RULE = "/etc/udev/rules.d/99-eqliscsi.rules"
UDEV_HELPER = "/usr/lib/udev/eqliscsi-udev-name"
_PASSWORD_KEY = "node.session.auth.password"  # noqa: S105 - a key name, not a secret
_PASSWORD_IN_KEY = "node.session.auth.password_in"  # noqa: S105 - the target's, for mutual CHAP
# Dell's guidance for open-iscsi with PS Series groups; a warning, not an error.
SUGGESTED_TUNING = {
    "node.session.cmds_max": "1024",
    "node.session.queue_depth": "128",
    "node.session.iscsi.FastAbort": "No",
}
_MARK = "@@eqliscsi "
_SECTION_RE = re.compile(r"^@@eqliscsi ([a-z-]+)$")
_RC_RE = re.compile(r"^@@rc (\d+)$")


@dataclass(frozen=True, slots=True)
class HostFacts:
    """Each probe section a host reported: its text and exit status."""

    sections: Mapping[str, tuple[str, int]]

    def text(self, name: str) -> str:
        return self.sections.get(name, ("", 127))[0]

    def rc(self, name: str) -> int:
        return self.sections.get(name, ("", 127))[1]


def _portal_of(cfg: EqlConfig) -> TargetPortal | None:
    host, _, port = cfg.discovery_portal.rpartition(":")
    try:
        return TargetPortal(host.strip("[]"), int(port))
    except (EqliscsiError, ValueError):
        return None  # a host name: the hosts' discovery check says so


def host_script(cfg: EqlConfig, *, sudo: bool = False) -> str:
    """The script a host runs; every value in it is validated and quoted."""
    q = shlex.quote
    pre = "sudo -n " if sudo else ""

    def read(path: str, cmd: str) -> str:
        # --host-sudo is for iscsiadm: OpenNebula's sudoers (and the docker rig's) let
        # oneadmin run iscsiadm, not grep or ls.  So a file oneadmin can read is read
        # as oneadmin (as is a missing one: the command says so), and sudo is tried only
        # for one that exists and it cannot read.
        if not sudo:
            return cmd
        return f"if [ -r {path} ] || [ ! -e {path} ]; then {cmd}; else {pre}{cmd}; fi"

    portal = _portal_of(cfg)
    iscsid = "/etc/iscsi/iscsid.conf"
    sections: list[tuple[str, str]] = [
        ("whoami", "id -un"),
        ("oneadmin", "id -Gn oneadmin"),
        (
            "iscsiadm",
            "command -v iscsiadm || { [ -x /usr/sbin/iscsiadm ] && echo /usr/sbin/iscsiadm; }",
        ),
        ("iscsid-conf", read(iscsid, f"grep -v -i 'password' {iscsid}")),
    ]
    # The passwords never leave the host: only their SHA-256 do.  The initiator's
    # (node.session.auth.password) and, for mutual CHAP, the target's (password_in).
    for section, name in (("hash-node", _PASSWORD_KEY), ("hash-node-in", _PASSWORD_IN_KEY)):
        key = re.escape(name)
        sections.append((
            section,
            "v=$("
            + read(iscsid, f"sed -n 's/^[[:space:]]*{key}[[:space:]]*=[[:space:]]*//p' {iscsid}")
            + ' | tail -n 1); [ -n "$v" ] && printf %s "$v" | sha256sum | cut -d" " -f1',
        ))  # fmt: skip
    iface = f"/etc/iscsi/ifaces/{q(cfg.iface)}"
    # open-iscsi keeps /etc/iscsi/nodes root-only; where oneadmin cannot list it, the
    # records are listed by 'iscsiadm -m node' (which sudoers allows), not by 'sudo ls'.
    nodes_dir = "/etc/iscsi/nodes"
    nodes = f"ls -1 {nodes_dir}"
    if sudo:
        nodes = (
            f"if [ -r {nodes_dir} ] || [ ! -e {nodes_dir} ]; then {nodes}; "
            f"else {pre}iscsiadm -m node; fi"
        )
    sections += [
        ("iface", read(iface, f"cat {iface}") if cfg.iface != "default" else "true"),
        ("links", "ip -o link show"),
        ("route", f"ip -o route get {q(portal.address)}" if portal else "false"),
        ("udev", f"sha256sum {UDEV_RULE} {UDEV_HELPER}"),
        ("sessions", f"{pre}{render(session_argv())}"),
        ("nodes", nodes),
        ("discovery", f"{pre}{render(discovery_argv(portal, cfg.iface))}" if portal else "false"),
    ]  # fmt: skip
    # The script itself arrives on stdin (sh -s), and bash reads such a script line by
    # line: so stdin is closed per command, never for the whole shell.
    lines = []
    for name, cmd in sections:
        lines.append(f"echo '{_MARK}{name}'; ( {cmd} ) </dev/null 2>&1; echo \"@@rc $?\"")
    return "\n".join(lines) + "\n"


def parse_host_output(text: str) -> HostFacts:
    sections: dict[str, tuple[str, int]] = {}
    name: str | None = None
    body: list[str] = []
    for line in text.splitlines():
        m = _SECTION_RE.match(line)
        if m:
            name, body = m[1], []
            continue
        r = _RC_RE.match(line)
        if r and name is not None:
            sections[name] = ("\n".join(body), int(r[1]))
            name = None
            continue
        if name is not None:
            body.append(line)
    return HostFacts(sections)


def parse_iscsid_conf(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        out[key.strip()] = value.strip()
    return out


async def _ssh(opts: Options, host: str, script: str) -> tuple[int, str]:
    argv = ["ssh", "-o", "BatchMode=yes", "-o", f"ConnectTimeout={int(opts.host_timeout)}"]
    if opts.ssh_config is not None:
        argv += ["-F", str(opts.ssh_config)]
    if opts.host_user:
        argv += ["-l", opts.host_user]
    argv += ["--", host, "sh", "-s"]
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await proc.communicate(script.encode())
    except BaseException:
        # A cancelled check (its timeout) must not leave ssh behind.
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        raise
    assert proc.returncode is not None
    if proc.returncode == 255:
        lines = err.decode("utf-8", "replace").strip().splitlines()
        return 255, lines[-1] if lines else "ssh failed"
    return proc.returncode, out.decode("utf-8", "replace")


class HostUnreachable(EqliscsiError):
    reference = "preflight-host-unreachable"


async def host_facts(ctx: Context, host: str) -> HostFacts:
    opts: Options = ctx.options
    cfg = config_of(ctx)
    assert cfg is not None

    async def collect() -> HostFacts:
        rc, out = await _ssh(opts, host, host_script(cfg, sudo=opts.host_sudo))
        if rc == 255:
            raise HostUnreachable(out[:200])
        return parse_host_output(out)

    return await ctx.shared(f"host:{host}", collect)


async def _facts(ctx: Context, host: str) -> HostFacts | Finding:
    if config_of(ctx) is None:
        return skipped("the configuration is unusable (see fe.conf)")
    try:
        return await host_facts(ctx, host)
    except EqliscsiError:
        return skipped("SSH to the host failed (see host.ssh)")


# --- checks ---------------------------------------------------------------------------


async def check_ssh(ctx: Context, host: str) -> Finding:
    opts: Options = ctx.options
    if config_of(ctx) is None:
        return skipped("the configuration is unusable (see fe.conf)")
    try:
        facts = await host_facts(ctx, host)
    except HostUnreachable as exc:
        return failed(
            f"ssh as {opts.host_user or 'the current user'} failed: {exc.message}",
            f"Let oneadmin on the front-end log in to {host} without a password "
            "(ssh-copy-id), as OpenNebula itself requires.",
        )
    who = facts.text("whoami").strip() or "?"
    return passed(f"logged in as {who}")


async def check_iscsiadm(ctx: Context, host: str) -> Finding:
    facts = await _facts(ctx, host)
    if isinstance(facts, Finding):
        return facts
    path = facts.text("iscsiadm").strip()
    if facts.rc("iscsiadm") != 0 or not path:
        return failed("iscsiadm is not installed", "Install open-iscsi on the host.")
    return passed(f"iscsiadm at {path}")


def _iscsid(facts: HostFacts) -> dict[str, str] | Finding:
    if facts.rc("iscsid-conf") not in (0, 1):  # grep: 1 = nothing but password lines
        return failed(
            "/etc/iscsi/iscsid.conf cannot be read",
            "Install open-iscsi, or let oneadmin read iscsid.conf (sudo or group iscsi).",
        )
    return parse_iscsid_conf(facts.text("iscsid-conf"))


async def check_node_startup(ctx: Context, host: str) -> Finding:
    facts = await _facts(ctx, host)
    if isinstance(facts, Finding):
        return facts
    conf = _iscsid(facts)
    if isinstance(conf, Finding):
        return conf
    value = conf.get("node.startup", "manual")
    if value.lower() != "manual":
        return failed(
            f"node.startup = {value} in iscsid.conf",
            "Set node.startup = manual in /etc/iscsi/iscsid.conf so that a reboot does not "
            "log in to volumes of VMs that run elsewhere.",
        )
    return passed("node.startup = manual")


async def check_chap(ctx: Context, host: str) -> Finding:
    facts = await _facts(ctx, host)
    if isinstance(facts, Finding):
        return facts
    cfg = config_of(ctx)
    assert cfg is not None
    conf = _iscsid(facts)
    if isinstance(conf, Finding):
        return conf
    if not cfg.chap_user or cfg.chap_secret is None:
        return skipped("no CHAP account configured for the datastore")
    method = conf.get("node.session.auth.authmethod", "None")
    if method.upper() != "CHAP":
        return failed(
            f"node.session.auth.authmethod = {method}",
            "Set node.session.auth.authmethod = CHAP in /etc/iscsi/iscsid.conf.",
        )
    user = conf.get("node.session.auth.username", "")
    if user != cfg.chap_user:
        return failed(
            f"node.session.auth.username is {user or 'unset'}, not {cfg.chap_user}",
            f"Set node.session.auth.username = {cfg.chap_user} in /etc/iscsi/iscsid.conf.",
        )
    want = hashlib.sha256(cfg.chap_secret.reveal()).hexdigest()
    have = facts.text("hash-node").strip()
    if have != want:
        return failed(
            "node.session.auth.password differs from the configured CHAP secret",
            "Copy the secret of EQL_CHAP_SECRET_FILE into node.session.auth.password.",
        )
    if not cfg.mutual_chap:
        return passed(f"CHAP as {user}; the secret matches (compared by hash)")
    assert cfg.chap_target_secret is not None
    # Mutual CHAP: iscsid checks the group's answer against username_in/password_in
    # (RFC 7143 §12.1.3); the driver writes them into each node record, and new records
    # take iscsid.conf's, so both must name the group's target-authentication account.
    user_in = conf.get("node.session.auth.username_in", "")
    if user_in != cfg.chap_target_user:
        return failed(
            f"node.session.auth.username_in is {user_in or 'unset'}, not {cfg.chap_target_user}",
            f"Set node.session.auth.username_in = {cfg.chap_target_user} in "
            "/etc/iscsi/iscsid.conf.",
        )
    want_in = hashlib.sha256(cfg.chap_target_secret.reveal()).hexdigest()
    if facts.text("hash-node-in").strip() != want_in:
        return failed(
            "node.session.auth.password_in differs from the configured target secret",
            "Copy the secret of EQL_CHAP_TARGET_SECRET_FILE into node.session.auth.password_in.",
        )
    return passed(f"CHAP as {user}, mutual with {user_in}; both secrets match (compared by hash)")


async def check_tuning(ctx: Context, host: str) -> Finding:
    facts = await _facts(ctx, host)
    if isinstance(facts, Finding):
        return facts
    conf = _iscsid(facts)
    if isinstance(conf, Finding):
        return conf
    off = [f"{k} = {conf.get(k, 'unset')}" for k, v in SUGGESTED_TUNING.items()
           if conf.get(k, "").lower() != v.lower()]  # fmt: skip
    if off:
        want = ", ".join(f"{k} = {v}" for k, v in SUGGESTED_TUNING.items())
        return warned("; ".join(off), f"Consider {want} in /etc/iscsi/iscsid.conf.")
    return passed("cmds_max, queue_depth and FastAbort as suggested for PS Series")


def _links(text: str) -> dict[str, tuple[bool, int]]:
    """``ip -o link show``: name -> (up, mtu)."""
    out = {}
    for line in text.splitlines():
        m = re.match(r"^\d+:\s+([^:@\s]+)(?:@\S+)?:\s+<([^>]*)>.*?\bmtu (\d+)", line)
        if m:
            out[m[1]] = ("UP" in m[2].split(",") and "LOWER_UP" in m[2].split(","), int(m[3]))
    return out


async def check_iface(ctx: Context, host: str) -> Finding:
    facts = await _facts(ctx, host)
    if isinstance(facts, Finding):
        return facts
    cfg = config_of(ctx)
    assert cfg is not None
    nic = ""
    if cfg.iface != "default":
        if facts.rc("iface") != 0:
            return failed(
                f"iscsiadm iface {cfg.iface} does not exist",
                f"Create it with 'iscsiadm -m iface -I {cfg.iface} -o new' and bind it with "
                f"'-o update -n iface.net_ifacename -v NIC'.",
            )
        record = parse_iscsid_conf(facts.text("iface"))
        nic = record.get("iface.net_ifacename", "")
        if nic in ("", "<empty>"):
            return failed(
                f"iface {cfg.iface} is not bound to a NIC",
                f"Run 'iscsiadm -m iface -I {cfg.iface} -o update -n iface.net_ifacename -v NIC'.",
            )
    else:
        m = re.search(r"\bdev (\S+)", facts.text("route"))
        nic = m[1] if m else ""
        if not nic:
            return failed(
                "no route from the host to the group portal",
                "Give the host an address on the iSCSI network of the group.",
            )
    links = _links(facts.text("links"))
    if nic not in links:
        return failed(
            f"NIC {nic} of iface {cfg.iface} does not exist", "Bind the iface to a real NIC."
        )
    up, mtu = links[nic]
    if not up:
        return failed(
            f"NIC {nic} of iface {cfg.iface} is down", f"Bring {nic} up ('ip link set {nic} up')."
        )
    jumbo = "jumbo frames" if mtu >= 9000 else "no jumbo frames"
    return passed(f"iface {cfg.iface} on {nic}, up, MTU {mtu} ({jumbo})")


async def check_discovery(ctx: Context, host: str) -> Finding:
    facts = await _facts(ctx, host)
    if isinstance(facts, Finding):
        return facts
    cfg = config_of(ctx)
    assert cfg is not None
    if _portal_of(cfg) is None:
        return failed(
            f"the portal {cfg.discovery_portal} is not an IP address",
            "Set EQL_PORTAL to the group's IP address; iscsiadm records depend on it.",
        )
    rc = facts.rc("discovery")
    try:
        check_status(Op.DISCOVERY, rc, host=host, what=cfg.discovery_portal)
    except IscsiadmError as exc:
        return failed(exc.message, exc.hint or "Check the iface and the host's iSCSI network.")
    count = sum(1 for line in facts.text("discovery").splitlines() if " iqn." in line)
    return passed(f"discovery of {cfg.discovery_portal} via iface {cfg.iface}: {count} target(s)")


def _reference_sha(opts: Options, name: str) -> str | None:
    ref = opts.reference_remotes
    if ref is None or not (ref / "tm" / "eqliscsi" / name).is_file():
        return None
    return hashlib.sha256((ref / "tm" / "eqliscsi" / name).read_bytes()).hexdigest()


async def check_udev(ctx: Context, host: str) -> Finding:
    facts = await _facts(ctx, host)
    if isinstance(facts, Finding):
        return facts
    opts: Options = ctx.options
    sums = {}
    for line in facts.text("udev").splitlines():
        parts = line.split()
        if len(parts) == 2 and len(parts[0]) == 64:
            sums[parts[1]] = parts[0]
    for path, ref_name in ((UDEV_RULE, "99-eqliscsi.rules"), (UDEV_HELPER, "eqliscsi-udev-name")):
        if path not in sums:
            return failed(
                f"{path} is missing",
                f"Install {ref_name} from remotes/tm/eqliscsi as {path}, then "
                "'udevadm control --reload'.",
            )
        want = _reference_sha(opts, ref_name)
        if want is not None and sums[path] != want:
            return warned(
                f"{path} differs from this package's {ref_name}",
                f"Reinstall {ref_name} from this package version as {path}.",
            )
    return passed("udev rule and helper installed")


async def check_disk_group(ctx: Context, host: str) -> Finding:
    facts = await _facts(ctx, host)
    if isinstance(facts, Finding):
        return facts
    if facts.rc("oneadmin") != 0:
        return failed("there is no oneadmin user", "Install opennebula-node on the host.")
    groups = facts.text("oneadmin").split()
    if "disk" not in groups:
        return failed(
            "oneadmin is not in group disk",
            "Run 'usermod -a -G disk oneadmin' so that the driver can read /dev/iscsi devices.",
        )
    return passed("oneadmin is in group disk")


async def _san_iqns(ctx: Context) -> set[str] | None:
    try:
        facts = await san_volumes(ctx)
    except (EqliscsiError, AssertionError):
        return None
    return {v.iqn for v in facts.volumes}


def _eql(iqn: str) -> bool:
    return iqn.startswith("iqn.2001-05.com.equallogic:")


async def check_sessions(ctx: Context, host: str) -> Finding:
    facts = await _facts(ctx, host)
    if isinstance(facts, Finding):
        return facts
    try:
        sessions = parse_sessions(facts.text("sessions"), status=facts.rc("sessions"))
    except IscsiadmError as exc:
        return failed(exc.message, exc.hint or "Check iscsid on the host.")
    known = await _san_iqns(ctx)
    if known is None:
        return skipped(f"{len(sessions)} session(s); the SAN is unavailable to compare (san.login)")
    stale = sorted({s.iqn for s in sessions if _eql(s.iqn) and s.iqn not in known})
    if stale:
        return failed(
            f"{len(stale)} session(s) to volumes the group no longer has, e.g. {stale[0]}",
            "Log out of them with 'iscsiadm -m node -T IQN -p PORTAL --logout'.",
        )
    return passed(f"{len(sessions)} session(s), none to a deleted volume")


async def check_node_records(ctx: Context, host: str) -> Finding:
    facts = await _facts(ctx, host)
    if isinstance(facts, Finding):
        return facts
    text, rc = facts.text("nodes"), facts.rc("nodes")
    if rc != 0:
        if "No such file" in text or (
            rc == IscsiadmStatus.NO_OBJS_FOUND and "No records found" in text
        ):
            return passed("no node records")
        return skipped("the node database cannot be read", "Pass --host-sudo, or run as root.")
    # 'ls' gives one IQN a line; 'iscsiadm -m node' gives "IP:PORT,TPGT IQN".
    records = sorted({line.split()[-1] for line in text.splitlines() if line.strip()})
    known = await _san_iqns(ctx)
    if known is None:
        return skipped(f"{len(records)} node record(s); the SAN is unavailable to compare")
    leftover = sorted(r for r in records if _eql(r) and r not in known)
    if leftover:
        return warned(
            f"{len(leftover)} node record(s) for volumes the group no longer has, "
            f"e.g. {leftover[0]}",
            "Delete them with 'iscsiadm -m node -T IQN -o delete'.",
        )
    return passed(f"{len(records)} node record(s), none left over")


def _host(cid: str, title: str, fn: object, sev: Severity = Severity.ERROR) -> Check:
    return Check(cid, Section.HOSTS, sev, 40.0, title, fn, per_host=True)  # type: ignore[arg-type]


CHECKS = (
    _host("host.ssh", "SSH as oneadmin", check_ssh),
    _host("host.iscsiadm", "iscsiadm installed", check_iscsiadm),
    _host("host.node-startup", "node.startup = manual", check_node_startup),
    _host("host.chap", "CHAP settings match", check_chap),
    _host("host.tuning", "cmds_max, queue_depth, FastAbort", check_tuning, Severity.WARNING),
    _host("host.iface", "iface on a NIC that is up", check_iface),
    _host("host.discovery", "discovery through the iface", check_discovery),
    _host("host.udev", "udev rule and helper", check_udev),
    _host("host.disk-group", "oneadmin in group disk", check_disk_group),
    _host("host.sessions", "no stale sessions", check_sessions),
    _host("host.node-records", "no leftover node records", check_node_records, Severity.WARNING),
)
