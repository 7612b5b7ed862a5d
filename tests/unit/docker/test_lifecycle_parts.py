"""The pure parts of the docker lifecycle rig: access patterns, the frontend bridge's
request codec, the VM round trip, and the host's reboot reset against real loop devices
being out of reach (a state directory without sessions, records it cannot parse)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rig.docker.frontend_oned import decode_request, encode_request, main, vm_from_json, vm_to_json
from rig.docker.host_reset import ensure_loop_nodes, reset
from rig.docker.lifecycle import access_pattern
from rig.oned import DiskSpec, VmSpec
from rig.oned.documents import vm_xml


@pytest.mark.parametrize(
    ("subnet", "pattern"),
    [
        ("172.18.0.0/16", "172.18.*.*"),
        ("192.168.48.0/20", "192.168.*.*"),
        ("10.254.7.0/24", "10.254.7.*"),
        ("10.0.0.0/8", "10.*.*.*"),
        ("172.18.5.9/16", "172.18.*.*"),  # a host address in the network: same network
    ],
    ids=["docker-default-16", "pool-20", "24", "8", "host-bits-set"],
)
def test_access_pattern(subnet: str, pattern: str) -> None:
    assert access_pattern(subnet) == pattern


disk_specs = st.builds(
    DiskSpec,
    disk_id=st.integers(0, 25),
    image_id=st.one_of(st.none(), st.integers(0, 10_000)),
    source=st.text("abcdefghijklmnopqrstuvwxyz0123456789.-", min_size=1, max_size=40),
    persistent=st.booleans(),
    size_mb=st.integers(1, 10**6),
)


@given(
    vm=st.builds(
        VmSpec,
        id=st.integers(0, 10**6),
        name=st.text(max_size=20),
        disks=st.lists(disk_specs, max_size=4).map(tuple),
    )
)
def test_vm_round_trips_through_the_request(vm: VmSpec) -> None:
    request = decode_request(encode_request({"op": "register_vm", "vm": vm_to_json(vm)}))
    back = vm_from_json(request["vm"])
    # What the simulator makes of it is the same document oned would print.
    assert vm_xml("7.0.0", back) == vm_xml("7.0.0", vm)
    assert back == VmSpec(vm.id, vm.name, tuple(vm.disks))


@pytest.mark.parametrize(
    "text",
    ["not base64!", "bnVsbA==", "WzEsMl0="],  # garbage, JSON null, a JSON list
    ids=["garbage", "null", "list"],
)
def test_a_request_that_is_not_an_object_is_refused(text: str) -> None:
    with pytest.raises(ValueError):
        decode_request(text)


def test_bridge_runs_the_simulator_in_a_tree(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """create, register_vm and log against a real remotes tree (no remote is run)."""
    remotes = Path(__file__).resolve().parents[3] / "remotes"
    base = {"profile": "6.6", "root": str(tmp_path / "sim"), "env": {}}
    assert (
        main([encode_request({**base, "op": "create", "remotes": str(remotes), "conf": "A=1\n"})])
        == 0
    )
    assert (tmp_path / "sim" / "remotes" / "VERSION").read_text() == "6.6.0"
    assert (
        tmp_path / "sim" / "remotes" / "datastore" / "eqliscsi" / "eqliscsi.conf"
    ).read_text() == "A=1\n"
    assert (tmp_path / "sim" / "state" / "ds-100.xml").exists()
    vm = VmSpec(5, disks=(DiskSpec(0, 7, "img.7"),))
    assert main([encode_request({**base, "op": "register_vm", "vm": vm_to_json(vm)})]) == 0
    assert (tmp_path / "sim" / "state" / "vm-5.xml").read_text() == vm_xml("6.6.0", vm)
    assert main([encode_request({**base, "op": "log"})]) == 0
    answers = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert answers == [{}, {}, {"text": ""}]
    assert main([]) == 2


def test_host_reset_removes_state_and_skips_what_it_cannot_read(tmp_path: Path) -> None:
    state = tmp_path / "standin"
    (state / "sessions").mkdir(parents=True)
    (state / "sessions" / "1.json").write_text("{not json")
    (state / "sessions" / "2.json").write_text(json.dumps({"sid": 2}))  # no loop recorded
    assert reset(state, live=False) == []
    assert not state.exists()
    assert reset(state, live=True) == []  # nothing recorded at all: nothing to do


def test_loop_nodes_are_made_only_where_missing(tmp_path: Path) -> None:
    (tmp_path / "loop0").touch()
    made = ensure_loop_nodes(tmp_path, count=3)
    if made == 0:  # not root / no CAP_MKNOD: mknod failed at the first missing node
        assert not (tmp_path / "loop1").exists()
        return
    assert made == 2
    assert not (tmp_path / "loop0").is_block_device()  # the existing one is left alone
    for minor in (1, 2):
        st_ = (tmp_path / f"loop{minor}").stat()
        assert os.major(st_.st_rdev) == 7 and os.minor(st_.st_rdev) == minor
