"""The --json document against docs/preflight.schema.json, without any peer."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from eqliscsi.cli.checks import ALL_CHECKS, CheckResult, Section, Severity, Status
from eqliscsi.cli.checks.base import exit_status
from eqliscsi.cli.preflight import JSON_SCHEMA_ID, render_json

SCHEMA = json.loads(
    (Path(__file__).resolve().parents[3] / "docs/preflight.schema.json").read_text()
)


def _results(statuses: list[Status]) -> list[CheckResult]:
    return [
        CheckResult(c.id, c.section, c.severity, s, f"found {i}",
                    "" if s is Status.PASS else "Fix.", "h1" if c.per_host else "", 0.01 * i)
        for i, (c, s) in enumerate(zip(ALL_CHECKS, statuses, strict=False))
    ]  # fmt: skip


def test_schema_is_itself_valid_and_names_this_layout() -> None:
    jsonschema.Draft202012Validator.check_schema(SCHEMA)
    assert SCHEMA["$id"] == JSON_SCHEMA_ID


@pytest.mark.parametrize(
    "statuses",
    [
        pytest.param([Status.PASS] * len(ALL_CHECKS), id="all-pass"),
        pytest.param([Status.SKIP, Status.WARN, Status.FAIL, Status.PASS] * 9, id="mixed"),
        pytest.param([], id="empty"),
    ],
)
def test_every_check_renders_to_a_valid_document(statuses: list[Status]) -> None:
    results = _results(statuses)
    doc = render_json(results, int(exit_status(results)))
    jsonschema.validate(doc, SCHEMA)
    assert sum(doc["summary"].values()) == len(results)
    assert [r["id"] for r in doc["results"]] == [r.id for r in results]


@pytest.mark.parametrize(
    "mutation",
    [
        pytest.param(lambda d: d.update(exit_code=3), id="exit-code-3"),
        pytest.param(lambda d: d["results"][0].update(status="ok"), id="unknown-status"),
        pytest.param(lambda d: d["results"][0].pop("fix"), id="missing-fix"),
        pytest.param(lambda d: d["results"][0].update(id="SAN.Pool"), id="bad-id"),
        pytest.param(lambda d: d.update(extra=1), id="unknown-field"),
    ],
)
def test_schema_rejects_drift(mutation: object) -> None:
    doc = render_json(_results([Status.FAIL]), 2)
    mutation(doc)  # type: ignore[operator]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(doc, SCHEMA)


def test_sections_and_severities_match_the_schema_enums() -> None:
    props = SCHEMA["properties"]["results"]["items"]["properties"]
    assert set(props["section"]["enum"]) == {s.value for s in Section}
    assert set(props["severity"]["enum"]) == {s.value for s in Severity}
    assert set(props["status"]["enum"]) == {s.value for s in Status}
