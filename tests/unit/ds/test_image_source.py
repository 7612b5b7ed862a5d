"""cp's source staging: rate parsing, archive detection, checksums, sparse output."""

from __future__ import annotations

import bz2
import gzip
import hashlib
import lzma
import os
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from eqliscsi.opennebula.actions.image_source import (
    SourceOptions,
    detect_compression,
    parse_rate,
    prepared_source,
)
from eqliscsi.opennebula.errors import BadValueError, CopyFailedError


@pytest.mark.parametrize(
    ("text", "rate"),
    [("", None), ("0", None), ("1000", 1000), ("512K", 512 * 1024), ("10m", 10 * 1024**2),
     ("1G", 1024**3), ("2MB", 2 * 1024**2)],
    ids=["empty", "zero", "bytes", "K", "m-lower", "G", "MB"],
)  # fmt: skip
def test_parse_rate(text: str, rate: int | None) -> None:
    assert parse_rate(text) == rate


@pytest.mark.parametrize("text", ["-1", "10 M", "1T", "$(id)", "1.5M"], ids=str)
def test_parse_rate_refuses(text: str) -> None:
    with pytest.raises(BadValueError, match="LIMIT_TRANSFER_BW"):
        parse_rate(text)


@given(st.binary(max_size=4096))
def test_detect_compression_round_trip(data: bytes) -> None:
    assert detect_compression(gzip.compress(data)[:8]) == "gzip"
    assert detect_compression(bz2.compress(data)[:8]) == "bzip2"
    assert detect_compression(lzma.compress(data)[:8]) == "xz"


def test_raw_and_qcow2_are_not_archives() -> None:
    assert detect_compression(b"QFI\xfb\x00\x00\x00\x03") is None
    assert detect_compression(bytes(8)) is None


@pytest.mark.parametrize(
    ("template", "message"),
    [({"MD5": "abc"}, "MD5"), ({"SHA1": "z" * 40}, "SHA1"), ({"LIMIT_TRANSFER_BW": "x"}, "LIMIT")],
    ids=["short-md5", "non-hex-sha1", "bad-rate"],
)
def test_options_refuse_bad_template(template: dict[str, str], message: str) -> None:
    with pytest.raises(BadValueError, match=message):
        SourceOptions.from_template(template)


def test_plain_file_is_used_in_place(tmp_path: Path) -> None:
    src = tmp_path / "a.raw"
    src.write_bytes(b"x" * 100)
    with prepared_source(str(src), SourceOptions(), lambda _: None) as path:
        assert path == str(src)


def test_gzip_is_staged_sparse_and_removed(tmp_path: Path) -> None:
    raw = bytes(8 << 20) + b"tail"
    src = tmp_path / "a.raw.gz"
    src.write_bytes(gzip.compress(raw))
    opts = SourceOptions.from_template({"MD5": hashlib.md5(src.read_bytes()).hexdigest()})
    lines: list[str] = []
    with prepared_source(str(src), opts, lines.append, tmpdir=str(tmp_path)) as path:
        assert Path(path).read_bytes() == raw
        assert os.stat(path).st_blocks * 512 <= 256 * 1024  # the zeros became a hole
        staged = Path(path)
    assert not staged.exists()
    assert any("gzip-compressed" in line for line in lines)


def test_checksum_mismatch(tmp_path: Path) -> None:
    src = tmp_path / "a.raw"
    src.write_bytes(b"data")
    opts = SourceOptions.from_template({"SHA1": "0" * 40})
    staged = prepared_source(str(src), opts, lambda _: None, tmpdir=str(tmp_path))
    with pytest.raises(CopyFailedError, match="SHA1 checksum"), staged:
        pass
    assert [p.name for p in tmp_path.iterdir()] == ["a.raw"]  # nothing staged is left
