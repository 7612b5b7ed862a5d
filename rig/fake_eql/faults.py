"""Faults and latency the tests inject into the fake array.

A :class:`Faults` value is plain data.  Tests set it through the control file
``faults.json`` in the state directory (so a fake running as a subprocess obeys it
too) or through :func:`write_faults`; the server re-reads the file when it changes.
The shell consults it before each command; the asyncssh adapter turns the shell's
``Delay``/``Stall``/``Close`` events into sleeps and closed channels.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from eqliscsi.errors import RigError

__all__ = ["FAULTS_FILE", "Faults", "FaultsError", "read_faults", "write_faults"]

FAULTS_FILE = "faults.json"


class FaultsError(RigError):
    reference = "fake-eql-faults-invalid"


@dataclass(frozen=True, slots=True)
class Faults:
    """What to break.  Command names match a line's prefix or its canonical keywords.

    Attributes:
        latency: seconds added before every command's reply.
        drop_after: close the connection, without reply, when a session's command
            number ``drop_after + 1`` arrives (so ``0`` drops the first command).
        drop_at: close the connection, without reply, at this command.
        error_at: answer this command with ``% Error - <error_text>`` and change nothing.
        stall_at: never answer this command (the client's timeout must fire).
        max_sessions: refuse a new shell session while this many are open.
    """

    latency: float = 0.0
    drop_after: int | None = None
    drop_at: str | None = None
    error_at: str | None = None
    error_text: str = "Injected failure by the test rig; retry the command."
    stall_at: str | None = None
    max_sessions: int | None = None


def matches(pattern: str | None, line: str, path: str) -> bool:
    """True when ``pattern`` names this command: a prefix of the typed line (blanks
    normalised) or of its expanded keyword path (``volume select offline``)."""
    if not pattern:
        return False
    want = " ".join(pattern.split()).lower()
    typed = " ".join(line.split()).lower()
    return typed.startswith(want) or (bool(path) and path.startswith(want))


def read_faults(state_dir: Path) -> Faults:
    path = state_dir / FAULTS_FILE
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        return Faults()
    except (OSError, ValueError) as e:
        raise FaultsError(
            f"Fault file {path} is unreadable ({e}); rewrite it as a JSON object."
        ) from None
    known = {f.name for f in fields(Faults)}
    if not isinstance(raw, dict) or not set(raw) <= known:
        raise FaultsError(f"Fault file {path} has unknown keys; use only {sorted(known)}.")
    return Faults(**raw)


def write_faults(state_dir: Path, faults: Faults) -> None:
    path = state_dir / FAULTS_FILE
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(asdict(faults)))
    os.replace(tmp, path)
