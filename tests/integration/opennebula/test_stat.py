"""ds stat against real peers: qemu-img on real image files, an HTTP server on 127.0.0.1."""

from __future__ import annotations

import http.server
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from eqliscsi.opennebula.actions.ds import http_size, qemu_img_info
from eqliscsi.opennebula.errors import SizeUnknownError
from rig.need import need_executable


@pytest.fixture(scope="module")
def qemu_img() -> str:
    return need_executable("qemu-img", "qemu-utils")


@pytest.mark.parametrize(
    ("fmt", "size", "expected_bytes"),
    [
        pytest.param("qcow2", "100M", 100 * 1024 * 1024, id="qcow2-virtual-size"),
        pytest.param("raw", "3M", 3 * 1024 * 1024, id="raw"),
        pytest.param("vmdk", "1G", 1024**3, id="vmdk"),
    ],
)
def test_qemu_img_info(
    tmp_path: Path, qemu_img: str, fmt: str, size: str, expected_bytes: int
) -> None:
    image = tmp_path / f"disk.{fmt}"
    subprocess.run([qemu_img, "create", "-q", "-f", fmt, str(image), size], check=True, timeout=60)
    info = qemu_img_info(str(image))
    assert info.format == fmt
    assert info.virtual_size == expected_bytes


def test_qemu_img_info_missing_file(tmp_path: Path, qemu_img: str) -> None:
    with pytest.raises(SizeUnknownError, match="Cannot determine size") as info:
        qemu_img_info(str(tmp_path / "absent.img"))
    assert "\n" not in str(info.value)


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_HEAD(self) -> None:
        if self.path == "/image.qcow2":
            self.send_response(200)
            self.send_header("Content-Length", str(5 * 1024 * 1024 + 1))
        elif self.path == "/chunked":
            self.send_response(200)
        else:
            self.send_response(404)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def http_base() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def test_http_size(http_base: str) -> None:
    assert http_size(f"{http_base}/image.qcow2") == 5 * 1024 * 1024 + 1


@pytest.mark.parametrize(
    ("path", "match"),
    [
        pytest.param("/missing", "HTTP 404", id="404"),
        pytest.param("/chunked", "no Content-Length", id="no-length"),
    ],
)
def test_http_size_errors(http_base: str, path: str, match: str) -> None:
    with pytest.raises(SizeUnknownError, match=match):
        http_size(f"{http_base}{path}")


def test_http_credentials_not_echoed(http_base: str) -> None:
    url = http_base.replace("http://", "http://user:pa55word@") + "/missing"
    with pytest.raises(SizeUnknownError) as info:
        http_size(url)
    assert "pa55word" not in str(info.value)
