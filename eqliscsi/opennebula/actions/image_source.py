"""Where ``cp`` reads an image from: local file or http(s), checked and decompressed.

oned's stock ``downloader.sh`` (reference §2.3) fetches http(s) images, verifies the
IMAGE/TEMPLATE ``MD5``/``SHA1`` of the bytes *as downloaded*, decompresses gzip,
bzip2 and xz unless ``NO_DECOMPRESS`` is set, and limits the rate to
``LIMIT_TRANSFER_BW`` bytes per second (K/M/G suffixes).  This module does the same
in-process, with no shell and no ``curl`` argv (a URL may carry credentials):

* a plain local image without checks is used in place, so ``qemu-img convert`` reads
  it directly (the fast path);
* anything else is streamed once into a private sparse temporary file: all-zero
  blocks become holes, so a mostly empty raw image costs the temp directory what its
  data costs, and ``qemu-img convert`` later skips them on the volume too.

Every check runs *before* the SAN volume exists, so a bad checksum, a 404 or a
corrupt archive never leaves a volume behind.
"""

from __future__ import annotations

import bz2
import contextlib
import hashlib
import lzma
import os
import re
import tempfile
import time
import urllib.parse
import zlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import BinaryIO, Protocol

from eqliscsi.opennebula.errors import BadValueError, CopyFailedError

__all__ = [
    "Compression",
    "SourceOptions",
    "detect_compression",
    "parse_rate",
    "prepared_source",
]

_BLOCK = 1024 * 1024
_HTTP_TIMEOUT = 60.0


class Compression:
    """Magic numbers of the formats downloader.sh decompresses."""

    GZIP = "gzip"
    BZIP2 = "bzip2"
    XZ = "xz"


def detect_compression(head: bytes) -> str | None:
    if head.startswith(b"\x1f\x8b"):
        return Compression.GZIP
    if head.startswith(b"BZh") and len(head) >= 4 and head[3:4].isdigit():
        return Compression.BZIP2
    if head.startswith(b"\xfd7zXZ\x00"):
        return Compression.XZ
    return None


_RATE_RE = re.compile(r"([0-9]+)([KMG]?)B?", re.IGNORECASE)


def parse_rate(value: str) -> int | None:
    """LIMIT_TRANSFER_BW in bytes/s (``512K``, ``10M``, ``1G``); empty or 0: no limit."""
    value = value.strip()
    if not value:
        return None
    m = _RATE_RE.fullmatch(value)
    if not m:
        raise BadValueError(
            "LIMIT_TRANSFER_BW is not a rate in bytes per second such as 10M; correct it."
        )
    rate = int(m[1]) * {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3}[m[2].upper()]
    return rate or None


_HEX_RE = re.compile(r"[0-9a-fA-F]+")


@dataclass(frozen=True, slots=True)
class SourceOptions:
    """The IMAGE/TEMPLATE attributes that shape how the source is read."""

    md5: str | None = None
    sha1: str | None = None
    decompress: bool = True
    rate: int | None = None  # bytes per second

    @classmethod
    def from_template(cls, template: Mapping[str, str]) -> SourceOptions:
        sums: dict[str, str | None] = {}
        for key, length in (("MD5", 32), ("SHA1", 40)):
            raw = template.get(key, "").strip()
            if raw and (len(raw) != length or not _HEX_RE.fullmatch(raw)):
                raise BadValueError(
                    f"The image {key} is not a {length}-digit hexadecimal checksum; correct it."
                )
            sums[key] = raw.lower() or None
        no_decompress = template.get("NO_DECOMPRESS", "").strip().upper() in {"YES", "TRUE", "1"}
        return cls(
            md5=sums["MD5"],
            sha1=sums["SHA1"],
            decompress=not no_decompress,
            rate=parse_rate(template.get("LIMIT_TRANSFER_BW", "")),
        )

    @property
    def needs_stream(self) -> bool:
        return bool(self.md5 or self.sha1 or self.rate)


class _Readable(Protocol):
    def read(self, n: int = -1, /) -> bytes: ...


def safe_url(url: str) -> str:
    """The URL without user:password@, query or fragment, for messages and logs."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urllib.parse.urlunsplit((parts.scheme, host, parts.path, "", ""))[:200]


@contextlib.contextmanager
def _open_source(source: str, is_url: bool) -> Iterator[_Readable]:
    if not is_url:
        try:
            fh: BinaryIO = open(source, "rb")  # noqa: SIM115 - closed below
        except OSError as exc:
            raise CopyFailedError(
                f"Cannot read the image {source[:200]} ({exc.strerror}); check the file."
            ) from None
        with fh:
            yield fh
        return
    # Imported here: urllib.request pulls in http.client and ssl, which every other
    # action would pay for at start-up.
    import urllib.error  # noqa: PLC0415
    import urllib.request  # noqa: PLC0415

    request = urllib.request.Request(source)  # noqa: S310 - scheme checked by caller
    try:
        response = urllib.request.urlopen(request, timeout=_HTTP_TIMEOUT)  # noqa: S310
    except urllib.error.HTTPError as exc:
        raise CopyFailedError(
            f"Downloading {safe_url(source)} failed: the server answered HTTP {exc.code}; "
            "check the URL."
        ) from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise CopyFailedError(
            f"Downloading {safe_url(source)} failed ({str(reason)[:120]}); check that the "
            "front-end can reach it."
        ) from None
    with response:
        yield response


class _Decoder(Protocol):
    def decompress(self, data: bytes, /) -> bytes: ...


def _decoder(kind: str | None) -> _Decoder | None:
    if kind == Compression.GZIP:
        # wbits 16+MAX: a gzip member with header and trailer (CRC checked).
        return zlib.decompressobj(16 + zlib.MAX_WBITS)
    if kind == Compression.BZIP2:
        return bz2.BZ2Decompressor()
    if kind == Compression.XZ:
        return lzma.LZMADecompressor()
    return None


def _write_sparse(fd: int, data: bytes, offset: int) -> None:
    # Skip all-zero 64 KiB runs so the temp file keeps holes where the image has none.
    step = 64 * 1024
    view = memoryview(data)
    zero = bytes(step)
    for start in range(0, len(data), step):
        chunk = view[start : start + step]
        if chunk != zero[: len(chunk)]:
            os.pwrite(fd, chunk, offset + start)


def _stream(
    reader: _Readable,
    out_fd: int,
    options: SourceOptions,
    label: str,
    *,
    log: Callable[[str], None],
    clock: Callable[[], float] = time.monotonic,
) -> tuple[int, str | None]:
    """Copy ``reader`` into ``out_fd``; returns (bytes written, compression seen)."""
    md5 = hashlib.md5(usedforsecurity=False) if options.md5 else None
    sha1 = hashlib.sha1(usedforsecurity=False) if options.sha1 else None
    started = clock()
    read_total = 0
    written = 0
    decoder: _Decoder | None = None
    kind: str | None = None
    first = True
    while True:
        block = reader.read(_BLOCK)
        if not block:
            break
        read_total += len(block)
        if md5:
            md5.update(block)
        if sha1:
            sha1.update(block)
        if first:
            first = False
            kind = detect_compression(block[:8])
            if kind and options.decompress:
                decoder = _decoder(kind)
                log(f"{label} is {kind}-compressed; decompressing it")
        try:
            data = decoder.decompress(block) if decoder else block
        except (OSError, EOFError, zlib.error, lzma.LZMAError) as exc:
            raise CopyFailedError(
                f"The image {label} is not a valid {kind} archive ({str(exc)[:100]}); "
                "check the file, or set NO_DECOMPRESS if it is not compressed."
            ) from None
        _write_sparse(out_fd, data, written)
        written += len(data)
        if options.rate:
            # Sleep until the average rate is back at the limit (downloader.sh's
            # curl --limit-rate averages the same way).
            ahead = read_total / options.rate - (clock() - started)
            if ahead > 0:
                time.sleep(ahead)
    if decoder is not None and not getattr(decoder, "eof", True):
        raise CopyFailedError(
            f"The image {label} is a truncated {kind} archive; download it again."
        )
    for name, hasher, want in (("MD5", md5, options.md5), ("SHA1", sha1, options.sha1)):
        if hasher is not None and hasher.hexdigest() != want:
            raise CopyFailedError(
                f"The {name} checksum of {label} does not match the image template's {name}; "
                "check the image or the checksum."
            )
    os.ftruncate(out_fd, written)
    return written, kind


def _looks_compressed(path: str) -> bool:
    try:
        with open(path, "rb") as fh:
            return detect_compression(fh.read(8)) is not None
    except OSError:
        return False


@contextlib.contextmanager
def prepared_source(
    source: str,
    options: SourceOptions,
    log: Callable[[str], None],
    *,
    tmpdir: str | None = None,
) -> Iterator[str]:
    """A local path ``qemu-img`` can read for ``source`` (a checked path or a URL).

    Raises:
        CopyFailedError: download failed (HTTP status, unreachable), checksum mismatch,
            corrupt or truncated archive, or no space for the temporary copy.
    """
    is_url = "://" in source
    if (
        not is_url
        and not options.needs_stream
        and not (options.decompress and _looks_compressed(source))
    ):
        yield source
        return
    label = safe_url(source) if is_url else source[:200]
    with tempfile.TemporaryDirectory(prefix="eqliscsi-src-", dir=tmpdir) as private:
        path = os.path.join(private, "image")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with _open_source(source, is_url) as reader:
                size, kind = _stream(reader, fd, options, label, log=log)
        except OSError as exc:
            raise CopyFailedError(
                f"Staging the image {label} in {private} failed ({exc.strerror}); free "
                "space in the temporary directory or set TMPDIR for oned."
            ) from None
        finally:
            os.close(fd)
        what = f"{kind} decompressed" if kind and options.decompress else "copied"
        log(f"{label}: {what} to a private temporary file ({size} bytes)")
        yield path
