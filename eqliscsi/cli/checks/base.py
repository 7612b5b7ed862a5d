"""The preflight check model: named checks, their findings, and a concurrent runner.

Modelled on kubeadm's preflight: every check has a stable id that admins can pass to
``--skip``, a section, a severity and its own timeout.  A check of severity
``warning`` can never fail the run: its failures are reported as warnings.  The
runner starts every selected check at once and bounds each by its timeout, so a run
takes about as long as its slowest check, not the sum of all of them.

Checks that need the same remote facts (one SAN login, one SSH round trip per host)
share them through :meth:`Context.shared`, which starts the collector once and lets
every check await it; a check that times out does not cancel the collector for the
others (``asyncio.shield``).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from eqliscsi.errors import EqliscsiError, UsageError
from eqliscsi.secret import Secret, redact

__all__ = [
    "Check",
    "CheckResult",
    "Context",
    "Finding",
    "PreflightExit",
    "Section",
    "Severity",
    "Status",
    "exit_status",
    "failed",
    "passed",
    "run_checks",
    "select_checks",
    "skipped",
    "warned",
]

T = TypeVar("T")


class Status(enum.Enum):
    PASS = "pass"  # noqa: S105 - a status, not a password
    WARN = "warn"
    FAIL = "fail"
    SKIP = "skip"


class Severity(enum.Enum):
    ERROR = "error"
    WARNING = "warning"


class Section(enum.Enum):
    """Sections in the order they are shown."""

    FRONTEND = "front-end"
    SAN = "san"
    ISCSI = "iscsi"
    HOSTS = "hosts"


class PreflightExit(enum.IntEnum):
    """The preflight contract (kubeadm-like): 0 clean, 1 warnings only, 2 any failure."""

    OK = 0
    WARNINGS = 1
    FAILURES = 2


@dataclass(frozen=True, slots=True)
class Finding:
    """What one check found.  ``fix`` is one sentence, empty when nothing is to be done."""

    status: Status
    found: str
    fix: str = ""


def passed(found: str) -> Finding:
    return Finding(Status.PASS, found)


def warned(found: str, fix: str) -> Finding:
    return Finding(Status.WARN, found, fix)


def failed(found: str, fix: str) -> Finding:
    return Finding(Status.FAIL, found, fix)


def skipped(found: str, fix: str = "") -> Finding:
    return Finding(Status.SKIP, found, fix)


@dataclass(frozen=True, slots=True)
class CheckResult:
    """One row of the report (and one object of ``--json``'s ``results``)."""

    id: str
    section: Section
    severity: Severity
    status: Status
    found: str
    fix: str
    subject: str = ""  # the host a per-host check ran against
    duration_s: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "section": self.section.value,
            "severity": self.severity.value,
            "status": self.status.value,
            "subject": self.subject,
            "found": self.found,
            "fix": self.fix,
            "duration_s": round(self.duration_s, 3),
        }


CheckFn = Callable[["Context", str], Awaitable[Finding]]


@dataclass(frozen=True, slots=True)
class Check:
    """A named check.  ``per_host`` checks run once for every host, with its name."""

    id: str
    section: Section
    severity: Severity
    timeout: float
    title: str
    run: CheckFn
    per_host: bool = False


@dataclass
class Context:
    """Inputs of one preflight run, plus facts shared between checks.

    ``options`` holds the parsed inputs (see :mod:`eqliscsi.cli.checks.inputs`);
    ``secrets`` lists every secret loaded, so that the runner can strip them from any
    text as a last line of defence.
    """

    options: Any
    secrets: list[Secret] = field(default_factory=list)
    _shared: dict[str, asyncio.Future[Any]] = field(default_factory=dict)
    # Resources a collector keeps open for others (the SAN session), closed last.
    exit_stack: contextlib.AsyncExitStack = field(default_factory=contextlib.AsyncExitStack)

    async def shared(self, key: str, factory: Callable[[], Awaitable[T]]) -> T:
        """Run ``factory`` once per key; every caller awaits the same result."""
        task = self._shared.get(key)
        if task is None:

            async def wrapped() -> T:
                return await factory()

            task = asyncio.ensure_future(wrapped())
            self._shared[key] = task
        result: T = await asyncio.shield(task)
        return result

    def seed(self, key: str, value: object) -> None:
        """Provide a shared fact up front (an exception instance: the collector failed)."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        if isinstance(value, BaseException):
            future.set_exception(value)
        else:
            future.set_result(value)
        self._shared[key] = future

    async def close(self) -> None:
        for task in self._shared.values():
            if not task.done():
                task.cancel()
        for task in self._shared.values():
            # Findings were reported already; this only reaps the tasks.
            with contextlib.suppress(BaseException):
                await task
        with contextlib.suppress(Exception):
            await self.exit_stack.aclose()


def select_checks(checks: Sequence[Check], skip: Iterable[str]) -> list[Check]:
    """The checks not named in ``skip`` (an id, or a section name for all of it).

    Raises:
        UsageError: a name in ``skip`` is neither a check id nor a section.
    """
    ids = {c.id for c in checks}
    sections = {s.value for s in Section}
    wanted = set(skip)
    unknown = sorted(wanted - ids - sections)
    if unknown:
        raise UsageError(
            f"--skip {unknown[0]} names no check; run 'eqliscsi preflight --list' for the ids."
        )
    return [c for c in checks if c.id not in wanted and c.section.value not in wanted]


async def _run_one(check: Check, ctx: Context, subject: str) -> tuple[Finding, float]:
    start = time.monotonic()
    try:
        async with asyncio.timeout(check.timeout):
            finding = await check.run(ctx, subject)
    except TimeoutError:
        finding = failed(
            f"no answer within {check.timeout:g} s",
            "Check that the peer is reachable and answering, or skip this check with --skip.",
        )
    except EqliscsiError as exc:
        finding = failed(
            exc.message, exc.hint or "Correct the cause named and run preflight again."
        )
    except Exception as exc:
        finding = failed(
            f"internal error in the check ({type(exc).__name__})",
            "Rerun with EQLISCSI_DEBUG=1 and report the traceback.",
        )
        if _debug():
            raise
    return finding, time.monotonic() - start


def _debug() -> bool:
    import os  # noqa: PLC0415 - only on the error path

    return os.environ.get("EQLISCSI_DEBUG", "") not in ("", "0")


def _result(check: Check, subject: str, finding: Finding, took: float, ctx: Context) -> CheckResult:
    status = finding.status
    if status is Status.FAIL and check.severity is Severity.WARNING:
        status = Status.WARN
    return CheckResult(
        id=check.id,
        section=check.section,
        severity=check.severity,
        status=status,
        found=redact(finding.found, ctx.secrets),
        fix=redact(finding.fix, ctx.secrets),
        subject=subject,
        duration_s=took,
    )


async def run_checks(
    checks: Sequence[Check],
    ctx: Context,
    hosts: Sequence[str] = (),
    *,
    on_start: Callable[[Check, str], None] | None = None,
    on_done: Callable[[CheckResult], None] | None = None,
) -> list[CheckResult]:
    """Run every check (per-host ones once per host) concurrently; results in list order."""
    jobs: list[tuple[Check, str]] = []
    for check in checks:
        if check.per_host:
            jobs.extend((check, h) for h in hosts)
        else:
            jobs.append((check, ""))

    async def job(check: Check, subject: str) -> CheckResult:
        if on_start is not None:
            on_start(check, subject)
        finding, took = await _run_one(check, ctx, subject)
        result = _result(check, subject, finding, took, ctx)
        if on_done is not None:
            on_done(result)
        return result

    try:
        return list(await asyncio.gather(*(job(c, s) for c, s in jobs)))
    finally:
        await ctx.close()


def exit_status(results: Iterable[CheckResult]) -> PreflightExit:
    statuses = {r.status for r in results}
    if Status.FAIL in statuses:
        return PreflightExit.FAILURES
    if Status.WARN in statuses:
        return PreflightExit.WARNINGS
    return PreflightExit.OK
