"""Inputs: datastore templates in both forms, the default conf path."""

from __future__ import annotations

from pathlib import Path

import pytest

from eqliscsi.cli.checks.inputs import parse_template_text
from eqliscsi.cli.preflight import default_conf
from eqliscsi.errors import UsageError

XML = """<?xml version="1.0"?>
<DATASTORE><ID>104</ID><NAME>eql</NAME><DS_MAD><![CDATA[eqliscsi]]></DS_MAD>
<TM_MAD><![CDATA[eqliscsi]]></TM_MAD><BASE_PATH>/var/lib/one//datastores/104</BASE_PATH>
<TYPE>0</TYPE><DISK_TYPE>2</DISK_TYPE><STATE>0</STATE>
<TEMPLATE><DISK_TYPE><![CDATA[BLOCK]]></DISK_TYPE><EQL_HOST><![CDATA[192.0.2.10]]></EQL_HOST>
<EQL_POOL><![CDATA[fast]]></EQL_POOL></TEMPLATE></DATASTORE>
"""


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param('NAME = "eql"\nDS_MAD = eqliscsi\nEQL_POOL = "a \\"b\\""\n',
                     {"NAME": "eql", "DS_MAD": "eqliscsi", "EQL_POOL": 'a "b"'}, id="plain"),
        pytest.param('EQL_HOST = "h" # comment\nPOOLS = [\n  A = "b" ]\nEQL_USER = u\n',
                     {"EQL_HOST": "h", "EQL_USER": "u"}, id="vector-skipped"),
        pytest.param(XML, {"ID": "104", "DS_MAD": "eqliscsi", "TM_MAD": "eqliscsi",
                           "DISK_TYPE": "BLOCK", "EQL_HOST": "192.0.2.10", "EQL_POOL": "fast"},
                     id="onedatastore-show-x"),
    ],
)  # fmt: skip
def test_parse_template_text(text: str, expected: dict[str, str]) -> None:
    assert parse_template_text(text) == expected


def test_xml_that_is_not_a_datastore_is_refused() -> None:
    with pytest.raises(UsageError, match="DATASTORE"):
        parse_template_text("<IMAGE><ID>1</ID></IMAGE>")


def test_default_conf(tmp_path: Path) -> None:
    assert default_conf({"EQLISCSI_CONF": str(tmp_path / "x")}) == tmp_path / "x"
    assert default_conf({}).name in ("eqliscsi.conf", "eqlscsi.conf")
