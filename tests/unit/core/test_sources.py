from __future__ import annotations

import http.server
import threading
from pathlib import Path

import pytest

from airflow_provider_llmops.core.data.sources import detect_format, read_source
from airflow_provider_llmops.errors import PathNotAllowedError, SourceError

ROW = b'{"id": "1", "text": "hello"}\n'


def test_reads_local_path_and_file_uri(tmp_path: Path):
    source = tmp_path / "batch.jsonl"
    source.write_bytes(ROW)
    by_path = read_source(str(source), allowed_roots=[str(tmp_path)])
    by_uri = read_source(source.as_uri(), allowed_roots=[str(tmp_path)])
    assert by_path.data == by_uri.data == ROW
    assert by_path.sha256 == by_uri.sha256
    assert by_path.location == str(source) and by_path.file_format == "jsonl"


def test_dotdot_escape_is_refused(tmp_path: Path):
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    (tmp_path / "secret.jsonl").write_bytes(ROW)
    with pytest.raises(PathNotAllowedError, match="outside the allowed roots"):
        read_source(str(allowed / ".." / "secret.jsonl"), allowed_roots=[str(allowed)])


def test_symlink_escape_is_refused(tmp_path: Path):
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    outside = tmp_path / "outside.jsonl"
    outside.write_bytes(ROW)
    (allowed / "link.jsonl").symlink_to(outside)
    with pytest.raises(PathNotAllowedError):
        read_source(str(allowed / "link.jsonl"), allowed_roots=[str(allowed)])


def test_prefix_sibling_is_not_inside_the_root(tmp_path: Path):
    (tmp_path / "data").mkdir()
    sibling = tmp_path / "data-evil"
    sibling.mkdir()
    (sibling / "x.jsonl").write_bytes(ROW)
    with pytest.raises(PathNotAllowedError):
        read_source(str(sibling / "x.jsonl"), allowed_roots=[str(tmp_path / "data")])


@pytest.mark.parametrize(
    ("name", "content", "problem"),
    [
        ("missing.jsonl", None, "does not exist"),
        ("empty.jsonl", b"", "is empty"),
        ("blank.jsonl", b"\n \n", "is empty"),
    ],
)
def test_unusable_local_sources(tmp_path: Path, name, content, problem):
    if content is not None:
        (tmp_path / name).write_bytes(content)
    with pytest.raises(SourceError, match=problem) as caught:
        read_source(str(tmp_path / name), allowed_roots=[str(tmp_path)])
    assert name in str(caught.value)


def test_oversized_source_is_refused(tmp_path: Path):
    (tmp_path / "big.jsonl").write_bytes(ROW * 10)
    with pytest.raises(SourceError, match="over the limit"):
        read_source(str(tmp_path / "big.jsonl"), allowed_roots=[str(tmp_path)], max_bytes=20)


def test_format_detection():
    assert detect_format("s3://b/k/batch.ndjson") == "jsonl"
    assert detect_format("/x/batch.PARQUET") == "parquet"
    assert detect_format("/x/export", "csv") == "csv"
    with pytest.raises(SourceError, match="cannot tell the format"):
        detect_format("/x/export.txt")
    with pytest.raises(SourceError, match="unknown format"):
        detect_format("/x/a.csv", "xml")


def test_remote_prefix_allow_list():
    with pytest.raises(PathNotAllowedError, match="allowed URI prefixes"):
        read_source("https://example.invalid/a.jsonl", allowed_roots=[], allowed_uri_prefixes=["s3://landing/"])
    with pytest.raises(SourceError, match="unsupported scheme"):
        read_source("ftp://host/a.jsonl", allowed_roots=[])


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 (http.server API)
        if self.path == "/ok.jsonl":
            body = ROW
            self.send_response(200)
        elif self.path == "/private.jsonl" and self.headers.get("Authorization") == "Bearer right":
            body = ROW
            self.send_response(200)
        elif self.path == "/private.jsonl":
            body = b"no"
            self.send_response(401)
        else:
            body = b"missing"
            self.send_response(404)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def http_base():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_http_source_over_a_real_server(http_base):
    blob = read_source(f"{http_base}/ok.jsonl", allowed_roots=[], allowed_uri_prefixes=[http_base])
    assert blob.data == ROW and blob.location == f"{http_base}/ok.jsonl"
    private = read_source(
        f"{http_base}/private.jsonl",
        allowed_roots=[],
        allowed_uri_prefixes=[http_base],
        http_headers={"Authorization": "Bearer right"},
    )
    assert private.data == ROW


@pytest.mark.parametrize(("path", "problem"), [("/private.jsonl", "not authorised"), ("/gone.jsonl", "HTTP 404")])
def test_http_errors_name_the_source(http_base, path, problem):
    with pytest.raises(SourceError, match=problem) as caught:
        read_source(f"{http_base}{path}", allowed_roots=[], allowed_uri_prefixes=[http_base])
    assert caught.value.source == f"{http_base}{path}"


def test_unreachable_http_source():
    import socket

    with socket.socket() as sock:  # a port with nobody listening
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(SourceError, match="unreachable"):
        read_source(
            f"http://127.0.0.1:{port}/a.jsonl",
            allowed_roots=[],
            allowed_uri_prefixes=[f"http://127.0.0.1:{port}"],
            http_timeout=3,
        )
