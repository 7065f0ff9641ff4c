"""Weight downloads, offline: a local HTTP server on 127.0.0.1 serves files the tests make, with
broken transfers, servers that ignore Range, wrong hashes and missing files."""

from __future__ import annotations

import hashlib
import http.server
import os
import threading
from collections.abc import Iterator

import pytest

from fcos_core.utils import model_zoo
from fcos_core.utils.model_zoo import (
    DownloadError,
    cache_url,
    download,
    expected_sha256_prefix,
    url_to_filename,
)

PAYLOAD = bytes(range(256)) * 4096  # 1 MiB
HALF = len(PAYLOAD) // 2


class _Server(http.server.ThreadingHTTPServer):
    """Serves PAYLOAD; ``cut_first`` requests end after HALF bytes; ``ranges`` toggles Range."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.cut_first = 0
        self.ranges = True
        self.requests: list[str | None] = []


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, *args) -> None:  # keep the test output clean
        pass

    def do_GET(self) -> None:
        self.server.requests.append(self.headers.get("Range"))
        if "missing" in self.path:
            self.send_error(404, "Not Found")
            return
        start = 0
        byte_range = self.headers.get("Range")
        if byte_range and self.server.ranges:
            start = int(byte_range.removeprefix("bytes=").rstrip("-"))
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(PAYLOAD) - 1}/{len(PAYLOAD)}")
        else:
            self.send_response(200)
        body = PAYLOAD[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.server.cut_first > 0:
            self.server.cut_first -= 1
            self.wfile.write(body[: HALF - start])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body)


@pytest.fixture
def server() -> Iterator[_Server]:
    srv = _Server()
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def _url(srv: _Server, name: str) -> str:
    return f"http://127.0.0.1:{srv.server_address[1]}/models/{name}"


def test_download_is_complete_and_leaves_no_partial_file(server, tmp_path):
    cached = cache_url(_url(server, "w.pth"), model_dir=str(tmp_path), progress=False)
    assert open(cached, "rb").read() == PAYLOAD
    assert os.listdir(tmp_path) == ["w.pth"] and server.requests == [None]
    assert cache_url(_url(server, "w.pth"), model_dir=str(tmp_path), progress=False) == cached
    assert server.requests == [None]  # the second call used the cache


def test_broken_transfer_is_resumed_from_where_it_stopped(server, tmp_path):
    server.cut_first = 1
    dst = str(tmp_path / "w.pth")
    download(_url(server, "w.pth"), dst, progress=False)
    assert open(dst, "rb").read() == PAYLOAD
    assert server.requests == [None, f"bytes={HALF}-"]


def test_server_ignoring_range_restarts_from_zero(server, tmp_path):
    server.cut_first, server.ranges = 1, False
    dst = str(tmp_path / "w.pth")
    download(_url(server, "w.pth"), dst, progress=False)
    assert open(dst, "rb").read() == PAYLOAD and len(server.requests) == 2


def test_partial_file_of_an_earlier_run_is_resumed(server, tmp_path):
    dst = tmp_path / "w.pth"
    (tmp_path / "w.pth.part").write_bytes(PAYLOAD[:1000])
    download(_url(server, "w.pth"), str(dst), progress=False)
    assert dst.read_bytes() == PAYLOAD and server.requests == ["bytes=1000-"]


def test_two_broken_transfers_fail_naming_url_and_wget(server, tmp_path):
    server.cut_first = 2
    dst = str(tmp_path / "w.pth")
    url = _url(server, "w.pth") + "?download=true#w.pth"
    with pytest.raises(DownloadError) as info:
        download(url, dst, progress=False)
    message = str(info.value)
    assert f"could not download {url}: " in message and f"received {HALF} of" in message
    assert message.endswith(f"wget -O '{dst}' '{url.split('#')[0]}'")
    assert not os.path.exists(dst)  # never half a file under the final name
    assert os.path.getsize(dst + ".part") == HALF  # kept, so the next run resumes it


def test_missing_file_is_not_retried(server, tmp_path):
    with pytest.raises(DownloadError, match=r"missing\.pth: HTTP 404 .*wget -O"):
        download(_url(server, "missing.pth"), str(tmp_path / "m.pth"), progress=False)
    assert len(server.requests) == 1


def test_hash_in_torchvision_file_names_is_checked(server, tmp_path, monkeypatch):
    good = hashlib.sha256(PAYLOAD).hexdigest()[:8]
    bad = "0" * 8 if good != "0" * 8 else "1" * 8
    monkeypatch.setattr(model_zoo, "HASHED_HOSTS", ("127.0.0.1",))
    cached = cache_url(_url(server, f"resnet-{good}.pth"), model_dir=str(tmp_path), progress=False)
    assert open(cached, "rb").read() == PAYLOAD
    with pytest.raises(DownloadError, match=rf"SHA-256 mismatch: the file name says {bad}"):
        cache_url(_url(server, f"resnet-{bad}.pth"), model_dir=str(tmp_path), progress=False)
    assert sorted(os.listdir(tmp_path)) == [f"resnet-{good}.pth"]


def test_expected_hash_only_on_hosts_with_that_convention():
    url = "https://download.pytorch.org/models/resnet50-0676ba61.pth"
    assert expected_sha256_prefix(url) == "0676ba61"
    hub = "https://huggingface.co/tianzhi/FCOS/resolve/main/mobilenet_v2-ecbe2b5.pth?download=true"
    assert expected_sha256_prefix(hub) is None
    assert url_to_filename(hub) == "mobilenet_v2-ecbe2b5.pth"
    assert url_to_filename(hub + "#mnv2.pth") == "mnv2.pth"
