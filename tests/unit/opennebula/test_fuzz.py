"""Parsers fed arbitrary input raise only their own one-line errors, never anything else."""

from __future__ import annotations

import base64

from hypothesis import given
from hypothesis import strategies as st

from eqliscsi.errors import EqliscsiError
from eqliscsi.opennebula.args import OneVersion, parse_ds_call, parse_tm_call
from eqliscsi.opennebula.config import parse_conf, resolve
from eqliscsi.opennebula.driver_action import parse_driver_action, parse_vm
from eqliscsi.opennebula.naming import volume_from_source
from tests.unit.opennebula import documents as docs

VERSIONS = st.one_of(
    st.none(), st.sampled_from([OneVersion(4, 4), OneVersion(6, 6), OneVersion(7, 0)])
)


def _one_line(exc: EqliscsiError) -> None:
    assert "\n" not in str(exc)
    assert str(exc).strip()


@given(st.binary(max_size=2000))
def test_driver_action_bytes(data: bytes) -> None:
    try:
        parse_driver_action(data)
    except EqliscsiError as exc:
        _one_line(exc)


@given(st.data())
def test_driver_action_mutations(data: st.DataObject) -> None:
    doc = bytearray(data.draw(st.sampled_from([docs.DS_CP_512, docs.DS_CLONE_70, docs.DS_STAT_44])))
    for _ in range(data.draw(st.integers(1, 5))):
        i = data.draw(st.integers(0, len(doc) - 1))
        doc[i] = data.draw(st.integers(0, 255))
    try:
        parse_driver_action(bytes(doc))
    except EqliscsiError as exc:
        _one_line(exc)


@given(st.binary(max_size=1000))
def test_vm_bytes(data: bytes) -> None:
    try:
        parse_vm(data)
    except EqliscsiError as exc:
        _one_line(exc)


@given(st.text(max_size=400))
def test_conf_text(text: str) -> None:
    try:
        resolve(parse_conf(text), read_secret_file=lambda p: (_ for _ in ()).throw(AssertionError))
    except AssertionError:
        pass  # a file key was accepted and would be read: fine, reading is not under test
    except EqliscsiError as exc:
        _one_line(exc)


@given(st.lists(st.text(max_size=60), max_size=4), st.binary(max_size=200), VERSIONS)
def test_ds_argv(argv: list[str], stdin: bytes, version: OneVersion | None) -> None:
    try:
        call = parse_ds_call("cp", argv, lambda n: stdin[:n], version)
    except EqliscsiError as exc:
        _one_line(exc)
    else:
        assert call.object_id >= 0


@given(
    st.sampled_from(
        ["clone", "ln", "mv", "mvds", "cpds", "delete", "premigrate", "snap_create", "resize"]
    ),
    st.lists(st.text(max_size=40), max_size=8),
    VERSIONS,
)
def test_tm_argv(action: str, argv: list[str], version: OneVersion | None) -> None:
    vm = base64.b64encode(b"<VM><ID>1</ID></VM>")
    try:
        parse_tm_call(action, argv, lambda n: vm[:n], version)
    except EqliscsiError as exc:
        _one_line(exc)


@given(st.text(max_size=200))
def test_source(text: str) -> None:
    try:
        vol = volume_from_source(text)
    except EqliscsiError as exc:
        _one_line(exc)
    else:
        assert vol and len(vol) <= 63
