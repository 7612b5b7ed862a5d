"""Front-end checks: remotes, oned.conf registration, the conf file, qemu-img.

All of these read local files or run a local program; none talks to the SAN.
"""

# Checks read a few small local files; blocking the loop for that is harmless.
# ruff: noqa: ASYNC240

from __future__ import annotations

import asyncio
import os
import stat
from pathlib import Path

import eqliscsi
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
from eqliscsi.cli.checks.oned_conf import OnedConf, driver_list, parse_oned_conf
from eqliscsi.opennebula.args import read_version

__all__ = ["CHECKS", "DS_ACTIONS", "TM_MAD_CONF_WANTED"]

DRIVER = "eqliscsi"
DS_ACTIONS = ("clone", "cp", "mkfs", "monitor", "rm", "snap_delete", "snap_flatten",
              "snap_revert", "stat")  # fmt: skip
# opennebula-driver.md §2.6: the values SAN block drivers ship with.  DISK_TYPE=BLOCK
# makes libvirt emit <disk type='block'>; newer QEMU refuses a symlink to a block
# device as a 'file' disk (addon-linstor #18).
TM_MAD_CONF_WANTED = {"DISK_TYPE": "BLOCK", "CLONE_TARGET": "SELF", "LN_TARGET": "NONE",
                      "SHARED": "YES"}  # fmt: skip


async def run_local(argv: list[str]) -> tuple[int, bytes]:
    """Run a local program; a check's timeout (cancellation) kills it, never leaks it."""
    proc = await asyncio.create_subprocess_exec(
        *argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:
        out, _err = await proc.communicate()
    except BaseException:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        raise
    assert proc.returncode is not None
    return proc.returncode, out


def _opts(ctx: Context) -> Options:
    opts: Options = ctx.options
    return opts


def _expected_remotes(opts: Options) -> list[str]:
    """Executables the driver installs: from the package's copy of remotes/ when present."""
    ref = opts.reference_remotes
    names: list[str] = []
    if ref is not None and ref.is_dir():
        for kind in ("datastore", "tm"):
            d = ref / kind / DRIVER
            if d.is_dir():
                names += sorted(
                    f"{kind}/{DRIVER}/{p.name}" for p in d.iterdir() if os.access(p, os.X_OK)
                )
    return names or [f"datastore/{DRIVER}/{a}" for a in DS_ACTIONS]


def _body(path: Path) -> bytes:
    """A remote without its #! line: 'eqliscsi install' pins the interpreter there."""
    data = path.read_bytes()
    return data.split(b"\n", 1)[1] if data.startswith(b"#!") and b"\n" in data else data


async def check_remotes(ctx: Context, _: str) -> Finding:
    opts = _opts(ctx)
    missing, not_exec, differ = [], [], []
    for rel in _expected_remotes(opts):
        path = opts.remotes_dir / rel
        if not path.is_file():
            missing.append(rel)
            continue
        if not os.access(path, os.X_OK):
            not_exec.append(rel)
        ref = opts.reference_remotes
        if ref is not None and (ref / rel).is_file() and _body(ref / rel) != _body(path):
            differ.append(rel)
    if missing:
        return failed(
            f"{len(missing)} remote(s) missing under {opts.remotes_dir}, e.g. {missing[0]}",
            f"Install the remotes with 'eqliscsi install --remotes {opts.remotes_dir}'.",
        )
    if not_exec:
        return failed(
            f"{len(not_exec)} remote(s) not executable, e.g. {not_exec[0]}",
            f"Run 'chmod 755' on the files under {opts.remotes_dir}/*/{DRIVER}.",
        )
    if differ:
        return failed(
            f"{len(differ)} remote(s) differ from this package's copy, e.g. {differ[0]}",
            f"Reinstall them with this version's 'eqliscsi install --remotes {opts.remotes_dir}'.",
        )
    return passed(f"all {len(_expected_remotes(opts))} remotes installed and executable")


async def check_remotes_version(ctx: Context, _: str) -> Finding:
    """The interpreter the remotes run with must import this very package version."""
    opts = _opts(ctx)
    remote = opts.remotes_dir / "datastore" / DRIVER / "stat"
    if not remote.is_file():
        return skipped("the stat remote is not installed (see fe.remotes)")
    first = remote.read_bytes().split(b"\n", 1)[0].decode("utf-8", "replace")
    if not first.startswith("#!"):
        return failed(
            f"{remote} has no #! line",
            f"Reinstall the remotes with 'eqliscsi install --remotes {opts.remotes_dir}'.",
        )
    interp = first[2:].split()
    if not interp:
        return failed(f"{remote} has an empty #! line", "Reinstall the remotes.")
    argv = [*interp, "-c", "import eqliscsi, sys; sys.stdout.write(eqliscsi.__version__)"]
    try:
        returncode, out = await run_local(argv)
    except OSError as exc:
        return failed(
            f"the remotes' interpreter {' '.join(interp)} cannot run ({exc.strerror})",
            "Install python3 on the front-end or fix the remotes' #! line.",
        )
    if returncode != 0:
        return failed(
            f"the remotes' interpreter {' '.join(interp)} cannot import eqliscsi",
            "Install the eqliscsi package for the interpreter oned runs the remotes with.",
        )
    theirs = out.decode().strip()
    if theirs != eqliscsi.__version__:
        return failed(
            f"the remotes import eqliscsi {theirs}, this checker is {eqliscsi.__version__}",
            "Install one eqliscsi version for both, then reinstall the remotes.",
        )
    return passed(f"the remotes import eqliscsi {theirs}, like this checker")


def _read_oned(opts: Options) -> OnedConf | Finding:
    try:
        return parse_oned_conf(opts.oned_conf.read_text(encoding="utf-8", errors="replace"))
    except FileNotFoundError:
        return skipped(
            f"{opts.oned_conf} does not exist here",
            "Run preflight on the front-end or pass --oned-conf.",
        )
    except PermissionError:
        return failed(f"{opts.oned_conf} is not readable", "Run preflight as oneadmin or root.")


async def check_oned_drivers(ctx: Context, _: str) -> Finding:
    conf = _read_oned(_opts(ctx))
    if isinstance(conf, Finding):
        return conf
    lacking = []
    for mad in ("TM_MAD", "DATASTORE_MAD"):
        vec = conf.first(mad)
        if vec is None or DRIVER not in driver_list(vec.get("ARGUMENTS", "")):
            lacking.append(mad)
    if lacking:
        return failed(
            f"{' and '.join(lacking)} do not list {DRIVER} after -d",
            f"Append ,{DRIVER} to the -d list of {' and '.join(lacking)} in oned.conf and "
            "restart oned.",
        )
    return passed(f"TM_MAD and DATASTORE_MAD list {DRIVER}")


async def check_tm_mad_conf(ctx: Context, _: str) -> Finding:
    conf = _read_oned(_opts(ctx))
    if isinstance(conf, Finding):
        return conf
    vec = conf.tm_mad_conf(DRIVER)
    if vec is None:
        return failed(
            f'no TM_MAD_CONF with NAME = "{DRIVER}"',
            f'Add TM_MAD_CONF = [ NAME = "{DRIVER}", LN_TARGET = "NONE", CLONE_TARGET = "SELF", '
            'SHARED = "YES", DISK_TYPE = "BLOCK", DRIVER = "raw" ] to oned.conf.',
        )
    wrong = [
        f'{k}="{vec.get(k, "")}"'
        for k, want in TM_MAD_CONF_WANTED.items()
        if vec.get(k, "").strip().upper() != want
    ]
    if wrong:
        want = ", ".join(f'{k} = "{v}"' for k, v in TM_MAD_CONF_WANTED.items())
        return failed(
            f"TM_MAD_CONF for {DRIVER} has {', '.join(wrong)}",
            f"Set {want} in the {DRIVER} TM_MAD_CONF and restart oned.",
        )
    return passed(f"TM_MAD_CONF for {DRIVER} is {', '.join(TM_MAD_CONF_WANTED)} as needed")


def _hooked_system_tms(remotes: Path, action: str) -> list[str]:
    """System TMs whose ``action`` script dispatches to eqliscsi (any TM dir but ours)."""
    tm = remotes / "tm"
    if not tm.is_dir():
        return []
    return sorted(
        d.name
        for d in tm.iterdir()
        if d.is_dir() and d.name != DRIVER and DRIVER.encode() in _read_or_empty(d / action)
    )


async def check_migrate_dispatcher(ctx: Context, _: str) -> Finding:
    """OpenNebula 4.x calls only the system TM's pre/postmigrate (§6.3)."""
    opts = _opts(ctx)
    version = read_version(opts.remotes_dir)
    if version is None:
        return skipped(f"no {opts.remotes_dir}/VERSION, so the OpenNebula version is unknown")
    if version.major >= 5:
        return passed(f"OpenNebula {version} calls the image TM's migrate actions itself")
    pre = set(_hooked_system_tms(opts.remotes_dir, "premigrate"))
    both = sorted(pre & set(_hooked_system_tms(opts.remotes_dir, "postmigrate")))
    if not both:
        return failed(
            f"OpenNebula {version}, and no system TM's premigrate and postmigrate dispatch "
            f"to {DRIVER}",
            "Install the migrate hooks ('eqliscsi install --migrate-hooks') so that live "
            "migration logs volumes in and out.",
        )
    return passed(f"OpenNebula {version}; tm/{both[0]} pre/postmigrate dispatch to {DRIVER}")


async def check_failmigrate_hook(ctx: Context, _: str) -> Finding:
    """No stock system TM calls an image TM's failmigrate (§6.3, 5.12 to 7.0)."""
    opts = _opts(ctx)
    if not (opts.remotes_dir / "tm").is_dir():
        return skipped(f"no {opts.remotes_dir}/tm here")
    hooked = _hooked_system_tms(opts.remotes_dir, "failmigrate")
    if not hooked:
        return warned(
            "no system TM's failmigrate calls eqliscsi, so a failed live migration leaves "
            "the destination logged in to the VM's volumes",
            "Install the failmigrate hook ('eqliscsi install --migrate-hooks').",
        )
    return passed(f"tm/{hooked[0]}/failmigrate dispatches to {DRIVER}")


def _read_or_empty(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError:
        return b""


async def check_conf(ctx: Context, _: str) -> Finding:
    opts = _opts(ctx)
    state = opts.config
    if state.error is not None:
        return failed(state.error, "Correct the setting named and run preflight again.")
    assert state.resolved is not None
    cfg = state.resolved.config
    missing = [k for k, v in (("EQL_HOST", cfg.host), ("EQL_USER", cfg.user)) if not v]
    if cfg.password is None:
        missing.append("EQL_PASS_FILE")
    if missing:
        return failed(
            f"{', '.join(missing)} not set",
            f"Set {', '.join(missing)} in {opts.conf_path} or the datastore template.",
        )
    unknown = [n for n in state.resolved.notices if "nknown" in n]
    if unknown:
        return warned(
            "; ".join(unknown),
            "Correct the spelling of the keys named or remove them.",
        )
    if not opts.conf_path.exists():
        return passed("no conf file; every key comes from the datastore template")
    return passed(f"{opts.conf_path} parses; {len(state.conf.values) if state.conf else 0} keys")


def _world_readable(path: Path) -> bool:
    return bool(path.stat().st_mode & (stat.S_IROTH | stat.S_IWOTH))


async def check_conf_permissions(ctx: Context, _: str) -> Finding:
    opts = _opts(ctx)
    conf = opts.config.conf
    holders: list[tuple[str, Path]] = []
    if conf is not None and conf.values.get("EQL_PASS", "").strip() and opts.conf_path.exists():
        holders.append(("EQL_PASS", opts.conf_path))
    for key in ("EQL_PASS_FILE", "EQL_CHAP_SECRET_FILE", "EQL_CHAP_TARGET_SECRET_FILE"):
        value = conf.values.get(key, "").strip() if conf is not None else ""
        if value and Path(value).exists():
            holders.append((key, Path(value)))
    if not holders:
        return skipped("no password or secret file is configured")
    exposed = [(k, p) for k, p in holders if _world_readable(p)]
    if exposed:
        key, path = exposed[0]
        return failed(
            f"{path} ({key}) is readable by every user",
            f"Run 'chmod 600 {path}' and 'chown oneadmin {path}'.",
        )
    return passed(f"{len(holders)} file(s) holding secrets are not world-readable")


async def check_datastore_template(ctx: Context, _: str) -> Finding:
    opts = _opts(ctx)
    tpl = opts.datastore_template
    if tpl is None:
        return skipped("no datastore given", "Pass --datastore ID or --datastore-template FILE.")
    wrong = [f"{k}={tpl.get(k, '')!r}" for k in ("DS_MAD", "TM_MAD") if tpl.get(k, "") != DRIVER]
    if wrong:
        return failed(
            f"the datastore has {', '.join(wrong)}",
            f"Set DS_MAD and TM_MAD to {DRIVER} with 'onedatastore update'.",
        )
    if tpl.get("DISK_TYPE", "").upper() != "BLOCK":
        return failed(
            f"the datastore has DISK_TYPE={tpl.get('DISK_TYPE', '')!r}",
            "Set DISK_TYPE = BLOCK in the datastore template so that libvirt attaches a "
            "block disk.",
        )
    return passed(f"DS_MAD and TM_MAD are {DRIVER}, DISK_TYPE is BLOCK")


async def check_qemu_img(ctx: Context, _: str) -> Finding:
    try:
        _rc, out = await run_local(["qemu-img", "--help"])
    except FileNotFoundError:
        return failed("qemu-img is not installed", "Install qemu-utils (Debian) or qemu-img.")
    text = out.decode("utf-8", "replace")
    formats = text.split("Supported formats:", 1)[-1].split()
    if "iscsi" not in formats:
        return failed(
            "qemu-img has no iscsi block driver",
            "Install qemu-block-extra (Debian) so that qemu-img can copy images to volumes.",
        )
    return passed("qemu-img supports iscsi://")


def _check(cid: str, title: str, fn: object, sev: Severity = Severity.ERROR) -> Check:
    return Check(cid, Section.FRONTEND, sev, 10.0, title, fn)  # type: ignore[arg-type]


CHECKS = (
    _check("fe.conf", "conf file parses, keys known", check_conf),
    _check("fe.conf-permissions", "secrets not world-readable", check_conf_permissions),
    _check("fe.datastore", "datastore template", check_datastore_template),
    _check("fe.remotes", "remotes installed", check_remotes),
    _check("fe.remotes-version", "remotes' package version", check_remotes_version),
    _check("fe.oned-drivers", "oned.conf TM_MAD/DATASTORE_MAD", check_oned_drivers),
    _check("fe.tm-mad-conf", "oned.conf TM_MAD_CONF", check_tm_mad_conf),
    _check("fe.migrate-dispatcher", "4.x migrate dispatcher", check_migrate_dispatcher),
    _check("fe.failmigrate-hook", "failmigrate hook", check_failmigrate_hook, Severity.WARNING),
    _check("fe.qemu-img", "qemu-img iSCSI support", check_qemu_img),
)
