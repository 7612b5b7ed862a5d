"""Opt-in system-TM dispatcher: make oned's system TM call eqliscsi on migrations.

No stock system TM calls an image TM's ``failmigrate`` (reference §6.3, checked 5.12
to 7.0), and in 4.x not even ``premigrate``/``postmigrate`` (the stock ``shared``
scripts are ``exit 0``).  Without help, a failed live migration leaks the
destination's iSCSI login.  These hooks replace ``tm/<system TM>/<action>`` by a
small dispatcher that

1. runs the original script (kept beside it as ``<action>.eqliscsi-orig``) with the
   same argv and stdin, so the system TM's own behaviour is unchanged (its ``$0`` is
   the backup's name; the stock originals are ``exit 0`` or links to
   ``../common/…`` and do not look at their own name);
2. if the VM has a disk whose TM_MAD is eqliscsi, runs ``tm/eqliscsi/<action>`` the
   way ``migrate_other`` would: ``SRC DST DIR VMID DSID <system TM>`` with the VM on
   stdin (5.12+), or ``SRC DST DIR VMID DSID TEMPLATE_B64`` (4.x);
3. exits non-zero if either failed.

Hooked actions: ``failmigrate`` always; ``premigrate``/``postmigrate`` only for
OpenNebula < 5.0, where ``migrate_other`` does not exist.  ``restore`` puts every
original back.  Install with ``python -m eqliscsi.opennebula.migrate_hooks install
REMOTES_DIR [--system-tm shared ...]`` (``eqliscsi install --migrate-hooks``).
"""

from __future__ import annotations

import argparse
import base64
import binascii
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from eqliscsi.errors import EqliscsiError, UsageError
from eqliscsi.opennebula.args import OneVersion, read_version
from eqliscsi.opennebula.driver_action import parse_vm

__all__ = [
    "BACKUP_SUFFIX",
    "MARKER",
    "dispatch",
    "hooked_actions",
    "install_hooks",
    "restore_hooks",
]

BACKUP_SUFFIX = ".eqliscsi-orig"
MARKER = "# eqliscsi migrate hook"
TM_MAD = "eqliscsi"
_TIMEOUT_S = 900.0


def hooked_actions(version: OneVersion | None) -> tuple[str, ...]:
    if version is not None and version < OneVersion(5, 0):
        return ("premigrate", "postmigrate", "failmigrate")
    return ("failmigrate",)


def _dispatcher_text(interpreter: str) -> str:
    return (
        f"#!{interpreter}\n"
        f"{MARKER} (eqliscsi install --migrate-hooks); the original is <name>{BACKUP_SUFFIX}\n"
        "import os, sys\n"
        "try:\n"
        "    from eqliscsi.opennebula.migrate_hooks import dispatch\n"
        "except Exception:  # eqliscsi gone: behave exactly like the original\n"
        f"    orig = sys.argv[0] + {BACKUP_SUFFIX!r}\n"
        "    os.execv(orig, [orig, *sys.argv[1:]]) if os.path.exists(orig) else sys.exit(0)\n"
        "dispatch()\n"
    )


def _is_hook(path: Path) -> bool:
    try:
        return path.is_file() and not path.is_symlink() and MARKER in path.read_text()[:400]
    except (OSError, UnicodeDecodeError):
        return False


def install_hooks(
    remotes: Path, system_tms: Sequence[str] = ("shared",), *, interpreter: str = sys.executable
) -> list[Path]:
    """Install the dispatcher for each system TM; returns the hooked files.  Idempotent."""
    if not (remotes / "tm").is_dir():
        raise UsageError(f"{remotes} has no tm/ directory; give OpenNebula's remotes directory.")
    if any(ch.isspace() for ch in interpreter) or not os.path.isabs(interpreter):
        raise UsageError("The interpreter path must be absolute and without blanks for a #! line.")
    done = []
    for tm in system_tms:
        directory = remotes / "tm" / tm
        if not tm.isidentifier() or tm == TM_MAD or not directory.is_dir():
            raise UsageError(f"{tm!r} is not a system TM under {remotes / 'tm'}; name one there.")
        for action in hooked_actions(read_version(remotes)):
            script = directory / action
            backup = directory / (action + BACKUP_SUFFIX)
            if not _is_hook(script):
                if backup.exists() or backup.is_symlink():
                    backup.unlink()  # a stale backup of an older original: the live one wins
                if script.exists() or script.is_symlink():
                    os.rename(script, backup)  # keeps a symlink a symlink
            tmp = directory / f".{action}.eqliscsi-new"
            tmp.write_text(_dispatcher_text(interpreter))
            tmp.chmod(0o755)
            os.replace(tmp, script)
            done.append(script)
    return done


def restore_hooks(remotes: Path) -> list[Path]:
    """Put every original back (and drop dispatchers that had none); returns them."""
    restored = []
    for script in sorted((remotes / "tm").glob("*/*")):
        if not _is_hook(script):
            continue
        backup = script.with_name(script.name + BACKUP_SUFFIX)
        if backup.exists() or backup.is_symlink():
            os.replace(backup, script)
        else:
            script.unlink()
        restored.append(script)
    return restored


def _template(args: Sequence[str], stdin: bytes) -> tuple[bytes | None, bool]:
    """(VM document, whether it came in argv 6) from a system TM call."""
    if len(args) >= 6:
        try:
            doc = base64.b64decode(args[5], validate=True)
            if doc.lstrip().startswith(b"<"):
                return doc, True
        except (binascii.Error, ValueError):
            pass
    try:
        return (base64.b64decode(b"".join(stdin.split()), validate=True) if stdin else None), False
    except (binascii.Error, ValueError):
        return None, False


def dispatch(argv: Sequence[str] | None = None, stdin: bytes | None = None) -> None:
    """The body of an installed hook; exits with the combined status."""
    args = list(sys.argv if argv is None else argv)
    me = Path(os.path.abspath(args[0]))
    if stdin is None:
        stdin = b"" if sys.stdin is None or sys.stdin.isatty() else sys.stdin.buffer.read()
    orig = me.with_name(me.name + BACKUP_SUFFIX)
    status = 0
    if orig.exists():
        status = subprocess.run(
            [str(orig), *args[1:]], input=stdin, check=False, timeout=_TIMEOUT_S
        ).returncode
    document, in_argv = _template(args[1:], stdin)
    if document is None or len(args) < 6:
        sys.exit(status)
    try:
        vm = parse_vm(document)
    except EqliscsiError as exc:
        print(f"eqliscsi migrate hook: VM document unreadable ({exc})", file=sys.stderr)
        sys.exit(status or 1)
    if not vm.disks_of(TM_MAD):
        sys.exit(status)
    ours = me.parents[1] / TM_MAD / me.name
    base = args[1:6]
    if in_argv:
        call, data = [*base, args[6]], b""
    else:
        call, data = [*base, me.parent.name], stdin
    # This interpreter is the one eqliscsi is installed in (the hook's #! line), so the
    # remote runs with it whatever PATH oned gave us.
    mine = subprocess.run(
        [sys.executable, str(ours), *call], input=data, check=False, timeout=_TIMEOUT_S
    )
    sys.exit(status or mine.returncode)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m eqliscsi.opennebula.migrate_hooks")
    p.add_argument("command", choices=["install", "restore"])
    p.add_argument("remotes", type=Path, help="OpenNebula's remotes directory")
    p.add_argument("--system-tm", action="append", default=None, help="default: shared")
    a = p.parse_args(argv)
    try:
        if a.command == "install":
            files = install_hooks(a.remotes, a.system_tm or ["shared"])
        else:
            files = restore_hooks(a.remotes)
    except EqliscsiError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    for f in files:
        print(f"{a.command}: {f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
