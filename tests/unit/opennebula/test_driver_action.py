from __future__ import annotations

import pytest

from eqliscsi.opennebula.driver_action import (
    ImageSnapshot,
    ImageType,
    parse_driver_action,
    parse_vm,
)
from eqliscsi.opennebula.errors import BadDocumentError, BadValueError
from rig.oned import PROFILES, DatastoreSpec, DiskSpec, ImageSpec, VmSpec
from rig.oned.documents import driver_action_xml, vm_xml
from tests.unit.opennebula import documents as docs


def test_stat_44() -> None:
    action = parse_driver_action(docs.DS_STAT_44)
    image, ds = action.image, action.datastore
    assert image is not None
    assert image.path == "/tmp/ttylinux.img"
    assert image.id == -1
    assert image.fstype == "" and image.format == "" and image.fs == ""
    assert image.type is ImageType.OS
    assert ds.id == 100 and ds.ds_mad == "eqliscsi" and ds.tm_mad == "eqliscsi"
    assert ds.state is None  # 4.4 has no datastore STATE
    assert ds.template["EQL_HOST"] == "192.168.0.1"
    assert ds.bridge_list == ("fe1", "fe2")
    assert ds.restricted_dirs == ("/srv/private",)
    assert ds.safe_dirs == ("/srv/private/public",)


def test_mkfs_44_save_as() -> None:
    image = parse_driver_action(docs.DS_MKFS_44_SAVE_AS).image
    assert image is not None
    assert image.is_save_as
    assert image.filesystem == ""
    assert image.persistent
    assert image.type is ImageType.DATABLOCK
    assert image.size_mb == 1024
    assert image.template["EQL_MULTIHOST"] == "disable"
    assert image.description == "saved from vm 3"


def test_cp_512() -> None:
    action = parse_driver_action(docs.DS_CP_512)
    image = action.image
    assert image is not None
    assert image.name == "Ubuntu 14.04_srv"
    assert image.path == "https://images.example/ubuntu.qcow2"
    assert image.size_mb == 2252
    assert image.target_snapshot == -1
    assert image.snapshots == ()
    assert image.template["MD5"] == "0123456789abcdef0123456789abcdef"
    assert action.datastore.state == 0
    assert action.datastore.base_path == "/var/lib/one//datastores/100"


def test_mkfs_66_format_fs_and_hostile_name() -> None:
    image = parse_driver_action(docs.DS_MKFS_66).image
    assert image is not None
    assert image.format == "raw" and image.fs == "ext4"
    assert image.filesystem == "ext4"
    assert not image.is_save_as
    # CDATA keeps the hostile text literally; naming/quoting decide what it becomes.
    assert image.name == 'data "disk"; $(rm -rf /)'


def test_clone_70_snapshots() -> None:
    image = parse_driver_action(docs.DS_CLONE_70).image
    assert image is not None
    assert image.path == "web.30" and image.cloning_id == 30 and image.id == 31
    assert image.snapshots == (
        ImageSnapshot(0, "before upgrade", -1, True),
        ImageSnapshot(1, "after", 0, False),
    )


def test_snap_610_target_snapshot() -> None:
    image = parse_driver_action(docs.DS_SNAP_610).image
    assert image is not None and image.target_snapshot == 1


def test_monitor_has_no_image() -> None:
    action = parse_driver_action(docs.DS_MONITOR)
    assert action.image is None
    assert action.datastore.id == 100


@pytest.mark.parametrize(
    "type_text", [str(t.value) for t in ImageType] + [t.name for t in ImageType]
)
def test_all_image_types(type_text: str) -> None:
    doc = docs.DS_MKFS_66.replace(b"<TYPE>2</TYPE>", f"<TYPE>{type_text}</TYPE>".encode())
    image = parse_driver_action(doc).image
    assert image is not None and image.type is not None
    assert type_text in (str(image.type.value), image.type.name)


@pytest.mark.parametrize(
    ("document", "error", "match"),
    [
        pytest.param(docs.BILLION_LAUGHS, BadDocumentError, "DTD or entities", id="billion-laughs"),
        pytest.param(
            docs.EXTERNAL_ENTITY, BadDocumentError, "DTD or entities", id="external-entity"
        ),
        pytest.param(b"", BadDocumentError, "empty", id="empty"),
        pytest.param(b"not xml at all", BadDocumentError, "well-formed", id="not-xml"),
        pytest.param(
            b"<DS_DRIVER_ACTION_DATA><IMAGE>", BadDocumentError, "well-formed", id="truncated"
        ),
        pytest.param(b"<VM><ID>1</ID></VM>", BadDocumentError, "root", id="wrong-root"),
        pytest.param(
            b"<DS_DRIVER_ACTION_DATA><IMAGE/></DS_DRIVER_ACTION_DATA>",
            BadDocumentError,
            "no DATASTORE",
            id="no-datastore",
        ),
        pytest.param(
            b"<DS_DRIVER_ACTION_DATA><DATASTORE/></DS_DRIVER_ACTION_DATA>",
            BadDocumentError,
            "no ID",
            id="datastore-no-id",
        ),
        pytest.param(
            docs.DS_MKFS_66.replace(b"<SIZE>10240</SIZE>", b"<SIZE>-5</SIZE>"),
            BadValueError,
            "negative",
            id="negative-size",
        ),
        pytest.param(
            docs.DS_MKFS_66.replace(b"<SIZE>10240</SIZE>", b"<SIZE>10G</SIZE>"),
            BadValueError,
            "not an integer",
            id="size-with-unit",
        ),
        pytest.param(
            docs.DS_MKFS_66.replace(b"<TYPE>2</TYPE>", b"<TYPE>9</TYPE>"),
            BadValueError,
            "TYPE",
            id="unknown-type",
        ),
    ],
)
def test_rejects(document: bytes, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match) as info:
        parse_driver_action(document)
    assert "\n" not in str(info.value)


def test_missing_size_is_none() -> None:
    doc = docs.DS_MKFS_66.replace(b"<SIZE>10240</SIZE>", b"")
    image = parse_driver_action(doc).image
    assert image is not None and image.size_mb is None


def test_vm_disks() -> None:
    vm = parse_vm(docs.VM_612)
    assert vm.id == 42 and vm.name == "web" and vm.lcm_state == 3
    assert [d.disk_id for d in vm.disks_of("eqliscsi")] == [0, 1]
    d0, d1 = vm.disk(0), vm.disk(1)
    assert (d0.source, d0.persistent, d0.clone, d0.size_mb, d0.original_size_mb) == (
        "ubuntu-14-04-srv.7",
        False,
        True,
        4096,
        2252,
    )
    assert d0.tm_mad_system == "shared"
    assert (d1.source, d1.persistent, d1.image_id) == ("data.9", True, 9)
    volatile = vm.disk(3)
    assert volatile.tm_mad == "" and volatile.image_id is None and volatile.size_mb == 512
    with pytest.raises(BadDocumentError):
        vm.disk(7)


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_rig_documents_parse(profile: str) -> None:
    """The simulator's documents, every version, read back through the driver's parser."""
    version = PROFILES[profile].version
    spec = ImageSpec(
        id=5,
        name="web ]]> <x>",
        path="/srv/img.qcow2",
        fstype="ext4",
        template={"EQL_MULTIHOST": "disable", "DESCRIPTION": "a & b"},
        snapshots=((0, "s0", -1, True),),
    )
    action = parse_driver_action(driver_action_xml(version, spec, DatastoreSpec()).encode())
    image = action.image
    assert image is not None
    assert (image.id, image.name, image.path) == (5, "web ]]> <x>", "/srv/img.qcow2")
    assert image.filesystem == "ext4"
    assert image.template["DESCRIPTION"] == "a & b"
    assert action.datastore.template["EQL_HOST"] == "127.0.0.1"
    modern = PROFILES[profile].major_minor() >= (5, 12)
    assert len(image.snapshots) == (1 if modern else 0)
    vm = parse_vm(
        vm_xml(
            version,
            VmSpec(disks=(DiskSpec(0), DiskSpec(1, persistent=True), DiskSpec(2, image_id=None))),
        ).encode()
    )
    assert [d.disk_id for d in vm.disks_of("eqliscsi")] == [0, 1]
    assert vm.disk(1).persistent and not vm.disk(0).persistent
