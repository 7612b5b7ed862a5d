"""The preflight check library behind ``eqliscsi preflight``.

Each check is a :class:`~eqliscsi.cli.checks.base.Check` with a stable id (for
``--skip`` and ``--json``), a section, a severity and a timeout; it returns a
:class:`~eqliscsi.cli.checks.base.Finding` that the runner turns into a
:class:`~eqliscsi.cli.checks.base.CheckResult`.  The CLI only selects, runs and
renders them.
"""

from __future__ import annotations

from eqliscsi.cli.checks import frontend, hosts, iscsi, san
from eqliscsi.cli.checks.base import (
    Check,
    CheckResult,
    Context,
    Finding,
    PreflightExit,
    Section,
    Severity,
    Status,
    exit_status,
    run_checks,
    select_checks,
)

__all__ = [
    "ALL_CHECKS",
    "Check",
    "CheckResult",
    "Context",
    "Finding",
    "PreflightExit",
    "Section",
    "Severity",
    "Status",
    "exit_status",
    "run_checks",
    "select_checks",
]

ALL_CHECKS: tuple[Check, ...] = (*frontend.CHECKS, *san.CHECKS, *iscsi.CHECKS, *hosts.CHECKS)

assert len({c.id for c in ALL_CHECKS}) == len(ALL_CHECKS), "check ids must be unique"
