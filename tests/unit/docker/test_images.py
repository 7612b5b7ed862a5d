"""Content hashes, wheel digests and the cache directory: pure, no engine needed."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from rig.docker.cache import cache_dir
from rig.docker.images import IMAGES, ImageSpec, content_hash
from rig.docker.wheelhouse import source_digest


def _context(tmp_path: Path) -> ImageSpec:
    ctx = tmp_path / "san"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM debian:bookworm-slim\n")
    (ctx / "entrypoint.sh").write_text("#!/bin/sh\nexec tgtd -f\n")
    (ctx / "entrypoint.sh").chmod(0o755)
    return ImageSpec("san", ctx)


def _edit_dockerfile(spec: ImageSpec) -> None:
    (spec.context / "Dockerfile").write_text("FROM debian:bookworm-slim\nRUN true\n")


def _drop_exec_bit(spec: ImageSpec) -> None:
    (spec.context / "entrypoint.sh").chmod(0o644)


def _add_file(spec: ImageSpec) -> None:
    (spec.context / "sshd_config").write_text("PasswordAuthentication no\n")


def _rename_file(spec: ImageSpec) -> None:
    (spec.context / "entrypoint.sh").rename(spec.context / "start.sh")


@pytest.mark.parametrize(
    "change",
    [_edit_dockerfile, _drop_exec_bit, _add_file, _rename_file],
    ids=["dockerfile-edited", "exec-bit-dropped", "file-added", "file-renamed"],
)
def test_any_context_change_changes_the_hash(
    tmp_path: Path, change: Callable[[ImageSpec], None]
) -> None:
    spec = _context(tmp_path)
    before = content_hash(spec, "rootfs:aa", "wheels:1")
    assert content_hash(spec, "rootfs:aa", "wheels:1") == before  # stable when untouched
    change(spec)
    assert content_hash(spec, "rootfs:aa", "wheels:1") != before


@pytest.mark.parametrize(
    ("base", "wheels"),
    [("rootfs:bb", "wheels:1"), ("rootfs:aa", "wheels:2")],
    ids=["other-base", "other-wheels"],
)
def test_base_and_wheels_are_inputs(tmp_path: Path, base: str, wheels: str) -> None:
    spec = _context(tmp_path)
    assert content_hash(spec, base, wheels) != content_hash(spec, "rootfs:aa", "wheels:1")


def test_image_name_is_an_input(tmp_path: Path) -> None:
    spec = _context(tmp_path)
    other = ImageSpec("host", spec.context)
    assert content_hash(spec, "b", "w") != content_hash(other, "b", "w")


def test_shipped_images_have_a_dockerfile_and_an_executable_entrypoint() -> None:
    assert sorted(IMAGES) == ["frontend", "host", "san"]
    for spec in IMAGES.values():
        names = {p.name for p in spec.files()}
        assert {"Dockerfile", "entrypoint.sh"} <= names, spec.name
        assert (spec.context / "entrypoint.sh").stat().st_mode & 0o111, spec.name


def _tree(root: Path) -> None:
    for name in ("eqliscsi", "rig"):
        (root / name).mkdir()
        (root / name / "__init__.py").write_text("")
    (root / "pyproject.toml").write_text("[project]\nname = 'x'\n")


def test_source_digest_ignores_bytecode_but_not_sources(tmp_path: Path) -> None:
    _tree(tmp_path)
    before = source_digest(tmp_path)
    cache = tmp_path / "eqliscsi" / "__pycache__"
    cache.mkdir()
    (cache / "__init__.cpython-311.pyc").write_bytes(b"\0")
    assert source_digest(tmp_path) == before
    (tmp_path / "rig" / "new.py").write_text("X = 1\n")
    assert source_digest(tmp_path) != before


def test_cache_dir_follows_eqliscsi_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EQLISCSI_CACHE", str(tmp_path))
    path = cache_dir("images")
    assert path == tmp_path / "docker" / "images"
    assert path.is_dir()
