"""The runner: exit codes, skips, timeouts, concurrency, severity and redaction."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from eqliscsi.cli.checks import ALL_CHECKS
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
    failed,
    passed,
    run_checks,
    select_checks,
    skipped,
    warned,
)
from eqliscsi.cli.preflight import run_preflight
from eqliscsi.errors import UsageError
from tests.unit.preflight.conftest import PASSWORD, make_options


def _result(status: Status) -> CheckResult:
    return CheckResult("fe.x", Section.FRONTEND, Severity.ERROR, status, "", "")


@pytest.mark.parametrize(
    ("statuses", "code"),
    [
        pytest.param([], PreflightExit.OK, id="nothing-run"),
        pytest.param([Status.PASS, Status.SKIP], PreflightExit.OK, id="pass-and-skip"),
        pytest.param([Status.PASS, Status.WARN], PreflightExit.WARNINGS, id="one-warning"),
        pytest.param([Status.WARN, Status.FAIL], PreflightExit.FAILURES, id="warn-and-fail"),
        pytest.param([Status.FAIL], PreflightExit.FAILURES, id="one-failure"),
        pytest.param([Status.SKIP], PreflightExit.OK, id="all-skipped"),
    ],
)
def test_exit_status_table(statuses: list[Status], code: PreflightExit) -> None:
    assert exit_status([_result(s) for s in statuses]) is code
    assert int(code) in (0, 1, 2)


def _check(cid: str, fn: object, *, timeout: float = 5.0, sev: Severity = Severity.ERROR,
           per_host: bool = False) -> Check:  # fmt: skip
    return Check(cid, Section.FRONTEND, sev, timeout, cid, fn, per_host)  # type: ignore[arg-type]


def test_check_ids_are_stable_kebab_case_and_unique() -> None:
    ids = [c.id for c in ALL_CHECKS]
    assert len(ids) == len(set(ids))
    prefixes = {"front-end": "fe.", "san": "san.", "iscsi": "iscsi.", "hosts": "host."}
    for c in ALL_CHECKS:
        assert c.id.startswith(prefixes[c.section.value]), c.id
        assert c.timeout > 0
        assert c.per_host == (c.section is Section.HOSTS)


def test_skip_by_id_and_by_section() -> None:
    kept = select_checks(ALL_CHECKS, ["san.pool", "hosts"])
    ids = {c.id for c in kept}
    assert "san.pool" not in ids
    assert not any(i.startswith("host.") for i in ids)
    assert "san.login" in ids


def test_skip_of_unknown_id_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match=r"san\.nope"):
        select_checks(ALL_CHECKS, ["san.nope"])


async def test_timeout_is_honoured_and_reported(tmp_path: Path) -> None:
    async def slow(ctx: Context, subject: str) -> Finding:
        await asyncio.sleep(30)
        return passed("never")

    start = time.monotonic()
    [res] = await run_checks(
        [_check("fe.slow", slow, timeout=0.3)], Context(make_options(tmp_path))
    )
    assert time.monotonic() - start < 2.0
    assert res.status is Status.FAIL
    assert "0.3 s" in res.found


async def test_checks_run_concurrently(tmp_path: Path) -> None:
    async def nap(ctx: Context, subject: str) -> Finding:
        await asyncio.sleep(0.4)
        return passed(subject)

    checks = [_check(f"fe.n{i}", nap) for i in range(10)]
    checks.append(_check("fe.per-host", nap, per_host=True))
    start = time.monotonic()
    results = await run_checks(checks, Context(make_options(tmp_path)), hosts=["h1", "h2", "h3"])
    took = time.monotonic() - start
    assert len(results) == 13
    assert took < 1.5, f"13 checks of 0.4 s took {took:.2f} s: not concurrent"
    assert [r.subject for r in results[-3:]] == ["h1", "h2", "h3"]


@pytest.mark.parametrize(
    ("finding", "severity", "status"),
    [
        pytest.param(failed("x", "y"), Severity.ERROR, Status.FAIL, id="error-fails"),
        pytest.param(failed("x", "y"), Severity.WARNING, Status.WARN, id="warning-never-fails"),
        pytest.param(warned("x", "y"), Severity.ERROR, Status.WARN, id="warn-stays-warn"),
        pytest.param(skipped("x"), Severity.ERROR, Status.SKIP, id="skip"),
        pytest.param(passed("x"), Severity.WARNING, Status.PASS, id="pass"),
    ],
)
async def test_severity(
    tmp_path: Path, finding: Finding, severity: Severity, status: Status
) -> None:
    async def fn(ctx: Context, subject: str) -> Finding:
        return finding

    [res] = await run_checks([_check("fe.s", fn, sev=severity)], Context(make_options(tmp_path)))
    assert res.status is status


async def test_exceptions_become_failures(tmp_path: Path) -> None:
    async def broken(ctx: Context, subject: str) -> Finding:
        raise KeyError("boom")

    async def refused(ctx: Context, subject: str) -> Finding:
        raise UsageError("The thing is wrong; fix it.")

    results = await run_checks(
        [_check("fe.a", broken), _check("fe.b", refused)], Context(make_options(tmp_path))
    )
    assert [r.status for r in results] == [Status.FAIL, Status.FAIL]
    assert "KeyError" in results[0].found
    assert results[1].found == "The thing is wrong; fix it."


async def test_secrets_are_redacted_from_findings(tmp_path: Path) -> None:
    opts = make_options(tmp_path)
    assert opts.config.resolved is not None
    secret = opts.config.resolved.config.password
    assert secret is not None

    async def leaky(ctx: Context, subject: str) -> Finding:
        return failed(f"saw {PASSWORD} here", f"do not print {PASSWORD}")

    ctx = Context(opts, secrets=[secret])
    [res] = await run_checks([_check("fe.leak", leaky)], ctx)
    assert PASSWORD not in res.found + res.fix
    assert "***" in res.found


async def test_shared_collector_runs_once_and_survives_a_timeout(tmp_path: Path) -> None:
    calls = 0

    async def collect() -> int:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.3)
        return 7

    async def impatient(ctx: Context, subject: str) -> Finding:
        return passed(str(await ctx.shared("k", collect)))

    async def patient(ctx: Context, subject: str) -> Finding:
        await asyncio.sleep(0.05)
        return passed(str(await ctx.shared("k", collect)))

    results = await run_checks(
        [_check("fe.i", impatient, timeout=0.1), _check("fe.p", patient)],
        Context(make_options(tmp_path)),
    )
    assert calls == 1
    assert results[0].status is Status.FAIL
    assert (results[1].status, results[1].found) == (Status.PASS, "7")


async def test_progress_sees_every_check_start_and_finish(tmp_path: Path) -> None:
    """The live display (rich Progress) gets one task per check and host, each completed."""

    class Recorder:
        def __init__(self) -> None:
            self.added: list[str] = []
            self.completed: set[int] = set()

        def add_task(self, label: str, total: int) -> int:
            self.added.append(label)
            return len(self.added) - 1

        def update(self, task: int, *, completed: int, visible: bool) -> None:
            assert completed == 1 and not visible
            self.completed.add(task)

    async def ok(ctx: Context, subject: str) -> Finding:
        return passed("ok")

    opts = make_options(tmp_path, hosts=("h1", "h2"))
    checks = [_check("fe.a", ok), _check("fe.b", ok, per_host=True)]
    progress = Recorder()
    results = await run_preflight(opts, checks, progress=progress)
    assert progress.added == ["fe.a", "fe.b h1", "fe.b h2"]
    assert progress.completed == {0, 1, 2}
    assert len(results) == 3
