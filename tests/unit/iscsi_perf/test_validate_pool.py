"""``validate_many`` runs its requests on a fixed pool of workers.

The pool replaced one task per request behind a semaphore (docs/performance.md,
2026-11-24); what callers rely on must not change: at most ``concurrency`` probes
at once, every request probed exactly once, results in request order, and one
request's iSCSI failure kept to its own result.
"""

from __future__ import annotations

import asyncio
from typing import Any, cast

import pytest

from eqliscsi.iscsi_discovery import (
    Portal,
    TargetNotFound,
    ValidationRequest,
    _asyncio,
    validate_many,
)

PORTAL = Portal("127.0.0.1", 3260)  # never contacted: the probe is replaced


def _requests(n: int) -> list[ValidationRequest]:
    return [ValidationRequest(PORTAL, f"iqn.2026-01.test.eqliscsi.pool:t{i:03d}") for i in range(n)]


@pytest.mark.parametrize(
    ("n", "concurrency"),
    [(0, 4), (1, 4), (3, 4), (4, 4), (50, 4), (50, 1), (20, 32)],
    ids=["none", "one", "fewer-than-workers", "as-many", "many", "serial", "pool-larger"],
)
def test_pool_bounds_concurrency_and_keeps_order(
    monkeypatch: pytest.MonkeyPatch, n: int, concurrency: int
) -> None:
    in_flight = 0
    peak = 0
    seen: list[str] = []

    async def fake_probe(portal: Portal, target: str, **kwargs: Any) -> str:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        seen.append(target)
        try:
            await asyncio.sleep(0.001 * (int(target[-1]) % 3))  # finish out of order
            if target.endswith("7"):
                raise TargetNotFound(0x02, 0x03, portal, None, target)
            return target
        finally:
            in_flight -= 1

    monkeypatch.setattr(_asyncio, "_probe", fake_probe)
    requests = _requests(n)
    results = asyncio.run(validate_many(requests, concurrency=concurrency, processes=1))
    assert peak == min(n, concurrency)
    assert sorted(seen) == [r.target for r in requests]  # each exactly once
    assert [r.request for r in results] == requests
    for req, res in zip(requests, results, strict=True):
        if req.target.endswith("7"):
            assert not res.ok and isinstance(res.error, TargetNotFound)
        else:
            # fake_probe answers with the target name in place of a ProbeResult
            assert res.ok and cast(object, res.result) == req.target and res.error is None
