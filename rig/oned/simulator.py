"""Run the remotes exactly as oned does, per version, and read back what oned reads.

A :class:`OnedSimulator` owns a temporary ``remotes/`` tree (a copy of the repository's
``remotes/`` plus a ``VERSION`` file) and runs ``datastore/eqliscsi/<action>`` and
``tm/eqliscsi/<action>`` as subprocesses with the argv, stdin, environment and
process setup of the chosen :class:`OnedProfile` (reference §6.1-§6.4):

* DS actions: ``<B64> <ID>`` (4.4, 5.12, 6.6), ``- <ID>`` + B64 on stdin (6.6 with
  ``one_datastore -i``), ``<ID>`` + B64 on stdin without newline (6.8+).
* 4.4 runs ``sh -c "<cmd> ; echo ExitCode: $? 1>&2"`` with the words joined
  unescaped and takes the status from that stderr line; later versions escape each
  word and run the command in its own process group, stdin EOF.
* Migrations from 5.12 get the VM as base64 + newline on stdin and the system TM's
  name as argument 6; 5.0-5.10's ``migrate_other`` passes the template as argument 6
  and the system TM's name as argument 7; 4.4 (a dispatcher, no fan-out) passes the
  template as argument 6 and nothing after it.
* Results are parsed the way oned parses them: the first stdout line (first token
  up to 5.12; ``SOURCE FORMAT`` mandatory for cp from 6.0), monitor ``KEY=VALUE``
  lines, and the failure reason from the markers (≤ 6.0), the whole stderr with
  newlines as spaces (6.2-6.10) or the untagged lines (7.0+).

Deviations, on purpose: by default the interpreter is given explicitly
(``sys.executable``) instead of the remote's ``#!/usr/bin/env python3``, so the
checkout's package is used (``interpreter=None`` runs the script itself, for a tree
written by ``eqliscsi install``); and the working directory is the tree's ``home`` instead of
``/var/lib/one``.  Every run is bounded by ``timeout`` and its process group is
killed when it expires.
"""

from __future__ import annotations

import base64
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from rig.oned.documents import (
    DatastoreSpec,
    ImageSpec,
    VmSpec,
    datastore_xml,
    driver_action_xml,
    vm_xml,
)

__all__ = [
    "PROFILES",
    "DsOutcome",
    "OnedProfile",
    "OnedSimulator",
    "TmOutcome",
    "oned_failure_reason",
]

REPO_REMOTES = Path(__file__).resolve().parents[2] / "remotes"
ONE_PATH = "/usr/lib/one/sh/override:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
MARK_BEGIN = "ERROR MESSAGE --8<------"
MARK_END = "ERROR MESSAGE ------>8--"
_LOG_RE = re.compile(r"^(ERROR|INFO|WARN|DEBUG):")

# Stand-ins for the OpenNebula CLI that TM actions query (`onevm show -x ID`,
# `onedatastore show -x ID`): they print documents the test registered, and fail
# like the real CLI for unknown ids.
_ONE_CLI = """\
import sys
from pathlib import Path
state = Path(__file__).resolve().parent.parent / "state"
kind = {"onevm": "vm", "onedatastore": "ds"}[Path(sys.argv[0]).name]
if sys.argv[1:3] != ["show", "-x"] or len(sys.argv) != 4 or not sys.argv[3].isdigit():
    sys.stderr.write("usage: show -x ID\\n")
    sys.exit(2)
doc = state / f"{kind}-{sys.argv[3]}.xml"
if not doc.exists():
    sys.stderr.write(f"[one.{kind}.info] Error getting {kind} [{sys.argv[3]}].\\n")
    sys.exit(255)
sys.stdout.write(doc.read_text())
"""


@dataclass(frozen=True)
class OnedProfile:
    """How one OpenNebula release calls drivers and reads their answers."""

    name: str
    version: str  # what remotes/VERSION holds
    ds_convention: str  # "argv" | "dash-stdin" | "stdin"
    framing: str  # "markers" | "whole-stderr" | "tagged"
    cp_requires_format: bool
    migrate_template_on_stdin: bool
    sh_exitcode: bool  # 4.4's LocalCommand wrapper
    version_newline: bool  # VERSION ends in "\n" from 6.10

    @property
    def xml_version(self) -> str:
        return self.version

    def major_minor(self) -> tuple[int, int]:
        a, b = self.version.split(".")[:2]
        return int(a), int(b)


PROFILES: dict[str, OnedProfile] = {
    p.name: p
    for p in (
        OnedProfile("4.4", "4.4.1", "argv", "markers", False, False, True, False),
        # 5.0-5.10 (reference §2.4, §2.7 item 4): what differs from 5.12 for this
        # driver is the migration call (template in argv 6, system TM in argv 7), the
        # unescaped `sh -c … ; echo ExitCode` run (escaping came with 5.12, §6.2)
        # and no SSH_AUTH_SOCK (the ssh-agent unit came with 5.12, §6.4).
        OnedProfile("5.8", "5.8.0", "argv", "markers", False, False, True, False),
        OnedProfile("5.12", "5.12.0", "argv", "markers", False, True, False, False),
        OnedProfile("6.6", "6.6.0", "argv", "whole-stderr", True, True, False, False),
        OnedProfile("6.6-stdin", "6.6.2", "dash-stdin", "whole-stderr", True, True, False, False),
        OnedProfile("6.10", "6.10.0", "stdin", "whole-stderr", True, True, False, True),
        OnedProfile("7.0", "7.0.0", "stdin", "tagged", True, True, False, True),
    )
}


@dataclass(frozen=True)
class DsOutcome:
    """What oned concluded from a DS action run."""

    ok: bool
    returncode: int
    info: str  # SOURCE / size / "" (the first token or line oned took)
    format: str | None  # cp/clone FORMAT when printed
    monitor: Mapping[str, str]
    reason: str | None  # the failure reason oned would record
    logs: tuple[str, ...]  # INFO/DEBUG/… lines oned would log
    argv: tuple[str, ...]
    stdout: str
    stderr: str


@dataclass(frozen=True)
class TmOutcome:
    ok: bool
    returncode: int
    reason: str | None
    logs: tuple[str, ...]
    argv: tuple[str, ...]
    stdout: str
    stderr: str


def oned_failure_reason(framing: str, stderr: str) -> tuple[str, tuple[str, ...]]:
    """The failure text and the separate log lines oned takes from ``stderr``."""
    lines = stderr.splitlines()
    logs = tuple(line for line in lines if _LOG_RE.match(line))
    if framing == "markers":
        inside: list[str] = []
        grabbing = False
        for line in lines:
            if line.startswith(MARK_BEGIN):
                grabbing = True
            elif line.startswith(MARK_END):
                grabbing = False
            elif grabbing:
                inside.append(line)
        return (" ".join(inside).strip() or "-"), logs
    if framing == "whole-stderr":
        return " ".join(lines).strip(), logs
    return " ".join(line for line in lines if not _LOG_RE.match(line)).strip(), logs


@dataclass
class OnedSimulator:
    """A remotes tree plus the calling behaviour of one OpenNebula version."""

    profile: OnedProfile
    root: Path
    interpreter: str | None = sys.executable
    timeout: float = 60.0
    write_version: bool = True
    extra_env: dict[str, str] = field(default_factory=dict)

    @classmethod
    def create(
        cls,
        profile: str | OnedProfile,
        root: Path | None = None,
        *,
        remotes: Path = REPO_REMOTES,
        write_version: bool = True,
        conf: str | None = None,
        extra_env: Mapping[str, str] | None = None,
        interpreter: str | None = sys.executable,
    ) -> OnedSimulator:
        prof = PROFILES[profile] if isinstance(profile, str) else profile
        base = root if root is not None else Path(tempfile.mkdtemp(prefix="oned-sim-"))
        tree = base / "remotes"
        shutil.copytree(remotes, tree, dirs_exist_ok=True)
        if write_version:
            (tree / "VERSION").write_text(prof.version + ("\n" if prof.version_newline else ""))
        if conf is not None:
            (tree / "datastore" / "eqliscsi" / "eqliscsi.conf").write_text(conf)
        (base / "home").mkdir(exist_ok=True)
        (base / "log").mkdir(exist_ok=True)
        (base / "state").mkdir(exist_ok=True)
        (base / "bin").mkdir(exist_ok=True)
        for name in ("onevm", "onedatastore"):
            tool = base / "bin" / name
            tool.write_text(f"#!{sys.executable}\n{_ONE_CLI}")
            tool.chmod(0o755)
        sim = cls(
            prof,
            base,
            interpreter=interpreter,
            write_version=write_version,
            extra_env=dict(extra_env or {}),
        )
        return sim

    @property
    def remotes(self) -> Path:
        return self.root / "remotes"

    @property
    def log_file(self) -> Path:
        return self.root / "log" / "eqliscsi.log"

    def driver_log(self) -> str:
        """The driver's log file so far ("" before the first action wrote it)."""
        path = self.log_file
        return path.read_text() if path.exists() else ""

    def environment(self) -> dict[str, str]:
        # oned adds nothing of its own (§6.4): the systemd unit's environment plus
        # the mad wrapper's ONE_MAD_DEBUG/PRIORITY.  LANG is inherited.
        env = {
            # The stand-in CLI first: the real one would talk to an oned (deviation).
            "PATH": f"{self.root / 'bin'}:{ONE_PATH}",
            "HOME": str(self.root / "home"),
            "ONE_MAD_DEBUG": "",
            "PRIORITY": "19",
            "LANG": os.environ.get("LANG", "C.UTF-8"),
            "EQLISCSI_LOG_FILE": str(self.log_file),
        }
        if self.profile.major_minor() >= (5, 12):
            env["SSH_AUTH_SOCK"] = str(self.root / "home" / "ssh-agent.sock")
        env.update(self.extra_env)
        return env

    def register_vm(self, vm: VmSpec) -> None:
        """What ``onevm show -x <id>`` prints from now on."""
        (self.root / "state" / f"vm-{vm.id}.xml").write_text(vm_xml(self.profile.xml_version, vm))

    def register_datastore(self, ds: DatastoreSpec) -> None:
        """What ``onedatastore show -x <id>`` prints from now on."""
        doc = datastore_xml(self.profile.xml_version, ds)
        (self.root / "state" / f"ds-{ds.id}.xml").write_text(doc)

    # --- process handling ------------------------------------------------------

    def _run(
        self, script: Path, args: Sequence[str], stdin: bytes
    ) -> tuple[int, str, str, tuple[str, ...]]:
        # interpreter None: exec the script itself, #! line and all, as oned does.
        argv = (
            (str(script), *args)
            if self.interpreter is None
            else (self.interpreter, str(script), *args)
        )
        env = self.environment()
        if self.profile.sh_exitcode:
            # 4.4 LocalCommand: words joined without escaping, status on stderr.
            command = " ".join(argv) + " ; echo ExitCode: $? 1>&2"
            popen_argv: tuple[str, ...] = ("sh", "-c", command)
        else:
            popen_argv = argv
        proc = subprocess.Popen(
            popen_argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            cwd=self.root / "home",
            start_new_session=True,
        )
        try:
            out, err = proc.communicate(stdin, timeout=self.timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, err = proc.communicate()
            raise TimeoutError(
                f"{script.name} did not finish within {self.timeout:.0f} s"
            ) from None
        stdout = out.decode("utf-8", "replace")
        stderr = err.decode("utf-8", "replace")
        rc = proc.returncode
        if self.profile.sh_exitcode:
            kept = []
            for line in stderr.splitlines(True):
                m = re.match(r"^ExitCode: (\d+)\s*$", line)
                if m:
                    rc = int(m[1])
                else:
                    kept.append(line)
            stderr = "".join(kept)
        return rc, stdout, stderr, (argv[1:] if self.interpreter is not None else argv)

    # --- datastore actions -----------------------------------------------------

    def ds_document(self, image: ImageSpec | None, datastore: DatastoreSpec | None = None) -> str:
        return driver_action_xml(self.profile.xml_version, image, datastore or DatastoreSpec())

    def run_ds(self, action: str, document: str | bytes, object_id: int) -> DsOutcome:
        """Run ``datastore/eqliscsi/<action>`` with ``document`` (XML) as oned would."""
        raw = document.encode("utf-8") if isinstance(document, str) else document
        payload = base64.b64encode(raw).decode("ascii")
        conv = self.profile.ds_convention
        if conv == "argv":
            args, stdin = [payload, str(object_id)], b""
        elif conv == "dash-stdin":
            args, stdin = ["-", str(object_id)], payload.encode("ascii")
        else:
            args, stdin = [str(object_id)], payload.encode("ascii")
        return self.run_ds_raw(action, args, stdin)

    def run_ds_raw(self, action: str, args: Sequence[str], stdin: bytes) -> DsOutcome:
        """Run with exactly these words and stdin (for hostile-input tests)."""
        script = self.remotes / "datastore" / "eqliscsi" / action
        rc, out, err, argv = self._run(script, args, stdin)
        reason, logs = oned_failure_reason(self.profile.framing, err)
        if rc != 0:
            return DsOutcome(False, rc, "", None, {}, reason, logs, argv, out, err)
        return self._parse_success(action, rc=rc, out=out, err=err, logs=logs, argv=argv)

    def _parse_success(
        self,
        action: str,
        *,
        rc: int,
        out: str,
        err: str,
        logs: tuple[str, ...],
        argv: tuple[str, ...],
    ) -> DsOutcome:
        def fail(reason: str) -> DsOutcome:
            return DsOutcome(False, rc, "", None, {}, reason, logs, argv, out, err)

        lines = out.splitlines()
        first = lines[0] if lines else ""
        tokens = first.split()
        modern = self.profile.major_minor() >= (6, 0)
        if action == "monitor":
            monitor = {}
            for line in lines:
                if "=" in line:
                    k, _, v = line.partition("=")
                    monitor[k.strip()] = v.strip()
            return DsOutcome(True, rc, "", None, monitor, None, logs, argv, out, err)
        if action in ("rm", "snap_delete", "snap_revert", "snap_flatten"):
            return DsOutcome(True, rc, "", None, {}, None, logs, argv, out, err)
        if action == "stat":
            if not tokens or not re.fullmatch(r"\d+", tokens[0]):
                return fail(f"Cannot parse image SIZE: {first}")
            return DsOutcome(True, rc, tokens[0], None, {}, None, logs, argv, out, err)
        if not tokens:
            return fail(f"{action.upper()} operation succeeded but no SOURCE was returned")
        if action == "mkfs" and modern:
            return DsOutcome(True, rc, first, None, {}, None, logs, argv, out, err)
        fmt = tokens[1] if len(tokens) > 1 else None
        if action == "cp" and self.profile.cp_requires_format and fmt is None:
            return fail("CP operation succeeded but image FORMAT was not returned")
        if not modern:
            fmt = None  # 4.4/5.12 read only the first token
        return DsOutcome(True, rc, tokens[0], fmt, {}, None, logs, argv, out, err)

    # --- transfer-manager actions ------------------------------------------------

    def run_tm(self, action: str, args: Sequence[str], *, sys_tm: str | None = None) -> TmOutcome:
        """Run ``tm/eqliscsi/<action>`` (``<action>.<sys_tm>`` when present, 5.12+)."""
        return self._run_tm(action, list(args), b"", sys_tm)

    def run_migrate(
        self,
        action: str,
        *,
        src: str,
        dst: str,
        vm_dir: str,
        vm: VmSpec,
        ds_id: int = 0,
        sys_tm: str = "shared",
    ) -> TmOutcome:
        """What the system TM's ``migrate_other`` (5.0+) or a 4.4 dispatcher runs."""
        doc = base64.b64encode(vm_xml(self.profile.xml_version, vm).encode()).decode("ascii")
        args = [src, dst, vm_dir, str(vm.id), str(ds_id)]
        if self.profile.migrate_template_on_stdin:
            return self._run_tm(action, [*args, sys_tm], (doc + "\n").encode(), None)
        if self.profile.major_minor() >= (5, 0):
            # migrate_other "$@" plus the system TM's name: SRC DST DIR VMID DSID TMPL SYS.
            return self._run_tm(action, [*args, doc, sys_tm], b"", None)
        return self._run_tm(action, [*args, doc], b"", None)

    def _run_tm(self, action: str, args: list[str], stdin: bytes, sys_tm: str | None) -> TmOutcome:
        base = self.remotes / "tm" / "eqliscsi"
        script = base / action
        if (
            sys_tm
            and self.profile.major_minor() >= (5, 12)
            and (base / f"{action}.{sys_tm}").exists()
        ):
            script = base / f"{action}.{sys_tm}"
        if self.profile.sh_exitcode:
            # 4.4 joined the words unescaped, so a word with a blank became two.
            args = [w for a in args for w in a.split()]
        rc, out, err, argv = self._run(script, args, stdin)
        reason, logs = oned_failure_reason(self.profile.framing, err)
        return TmOutcome(rc == 0, rc, None if rc == 0 else reason, logs, argv, out, err)

    def quote(self, words: Sequence[str]) -> str:
        """The command line as the 5.12+ driver logs it (each word escaped)."""
        return shlex.join(words)
