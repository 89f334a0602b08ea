"""Remote source security in core.sources: parsed allow-lists, redirects checked hop by hop, credentials only for
the origin (and the hosts) they are for, nothing requested when refused. Two real HTTP servers on 127.0.0.1: a
"good" host and an "evil" host (different ports), each recording what it received."""

from __future__ import annotations

import base64
import socket
from collections.abc import Iterator
from typing import Any

import pytest

from airflow_provider_llmops.core.data.sources import parse_remote, parse_rule, read_source
from airflow_provider_llmops.errors import ConfigurationError, PathNotAllowedError, SourceError
from tests.source_servers import EVIL_BODY, ROWS, RecordingServer, Route, good_and_evil

SETTING = "[llmops] allowed_uri_prefixes"
CREDENTIALS = {
    "Authorization": "Basic " + base64.b64encode(b"reader:pw-123").decode(),
    "X-Api-Key": "key-456",
    "Cookie": "s=1",
}


@pytest.fixture
def servers() -> Iterator[tuple[RecordingServer, RecordingServer]]:
    with good_and_evil() as pair:
        yield pair


def _read(uri: str, allowed: list[str], **kwargs: Any):
    return read_source(uri, allowed_roots=[], allowed_uri_prefixes=allowed, http_timeout=5, **kwargs)


# ------------------------------------------------------------------------------------------------ the comparison


@pytest.mark.parametrize(
    ("entry", "uri"),
    [
        ("https://data.corp", "https://data.corp.evil.net/a.jsonl"),
        ("https://data.corp", "https://data.corpx/a.jsonl"),
        ("https://data.corp", "https://data.corp:8443/a.jsonl"),
        ("https://data.corp", "http://data.corp/a.jsonl"),
        ("https://data.corp/exports", "https://data.corp/exportsX/a.jsonl"),
        ("https://data.corp/exports", "https://data.corp/exports/../secret/a.jsonl"),
        ("https://data.corp/exports", "https://data.corp/exports/%2e%2e/secret/a.jsonl"),
        ("https://data.corp/exports/", "https://data.corp/exports.jsonl"),
        ("http://[::1]:8080", "http://[::2]:8080/a.jsonl"),
        ("s3://landing/batches", "s3://landing/batchesX/a.jsonl"),
        ("s3://landing/batches", "s3://landing-evil/batches/a.jsonl"),
        ("s3://landing", "s3://landingx/a.jsonl"),
    ],
)
def test_prefix_confusions_are_refused_before_any_request(entry: str, uri: str):
    with pytest.raises(PathNotAllowedError, match="outside the allowed URI prefixes"):
        _read(uri, [entry], s3_client=object())


@pytest.mark.parametrize(
    "uri",
    [
        "https://data.corp@evil.net/a.jsonl",
        "https://data.corp:443@evil.net/a.jsonl",
        "https://user:pw@data.corp/a.jsonl",
        "https://data.corp/exports/..%2f..%2fsecret.jsonl",
        "https://data.corp/exports/..;/secret.jsonl",
        "https://data.corp/exports\\..\\secret.jsonl",
        "https://data.corp/../a.jsonl",
        "https://data.corp%2eevil.net/a.jsonl",
        "https://[fe80::1%25eth0]/a.jsonl",
        "https://data.corp:99999/a.jsonl",
        "s3://landing/batches/../secret.jsonl",
    ],
)
def test_ambiguous_uris_are_refused(uri: str):
    with pytest.raises(SourceError, match="refused") as caught:
        _read(uri, ["https://data.corp", "s3://landing"], s3_client=object())
    assert "pw" not in str(caught.value)  # userinfo is never echoed


@pytest.mark.parametrize(
    ("entry", "uri"),
    [
        ("https://data.corp", "https://data.corp:443/a.jsonl"),
        ("https://data.corp:443", "https://data.corp/a.jsonl"),
        ("https://data.corp", "https://DATA.Corp/a.jsonl"),
        ("https://data.corp", "https://data.corp./a.jsonl"),
        ("https://data.corp/exports", "https://data.corp/exports/a.jsonl"),
        ("https://data.corp/exports/", "https://data.corp/exports/sub/a.jsonl"),
        ("https://data.corp/exports", "https://data.corp/%65xports/a.jsonl"),
        ("https://data.corp/exports", "https://data.corp/other/../exports/a.jsonl"),
        ("https://bücher.example", "https://xn--bcher-kva.example/a.jsonl"),
        ("https://xn--bcher-kva.example", "https://BÜCHER.example/a.jsonl"),
        ("http://[::1]:8080", "http://[0:0:0::1]:8080/a.jsonl"),
        ("http://127.0.0.1", "http://127.0.0.1:80/a.jsonl"),
        ("s3://landing/batches", "s3://landing/batches/2024/a.jsonl"),
        ("s3://landing/", "s3://landing/a.jsonl"),
    ],
)
def test_equivalent_spellings_are_admitted(entry: str, uri: str):
    assert parse_rule(entry, setting=SETTING).admits(parse_remote(uri))


def test_dot_segments_are_resolved_in_the_request_too():
    target = parse_remote("https://data.corp/other/../exports/a.jsonl?sig=x%2By")
    assert target.request_url == "https://data.corp:443/exports/a.jsonl?sig=x%2By"
    assert parse_remote("https://data.corp/exports/a%20b.jsonl").request_url == "https://data.corp/exports/a%20b.jsonl"


@pytest.mark.parametrize(
    ("entry", "problem"),
    [
        ("data.corp", "must start with one of"),
        ("https://", "has no host"),
        ("s3://", "must name a bucket"),
        ("https://user@data.corp", "userinfo"),
        ("ftp://data.corp", "must start with one of"),
        ("https://data.corp/x?token=1", "query"),
    ],
)
def test_unusable_allow_list_entries_name_the_setting(entry: str, problem: str):
    with pytest.raises(ConfigurationError, match=f"allowed_uri_prefixes.*{problem}"):
        _read("https://data.corp/a.jsonl", [entry])


def test_bare_hosts_only_where_allowed_and_they_match_http_and_https():
    rule = parse_rule("data.corp", setting="allowed_hosts", bare_hosts=True)
    assert rule.admits(parse_remote("https://data.corp/a.jsonl")) and rule.admits(parse_remote("http://data.corp/a"))
    assert not rule.admits(parse_remote("https://data.corp:8443/a.jsonl"))
    assert not rule.admits(parse_remote("s3://data.corp/a.jsonl"))
    with_port = parse_rule("data.corp:8443", setting="allowed_hosts", bare_hosts=True)
    assert with_port.admits(parse_remote("https://data.corp:8443/a"))
    assert not with_port.admits(parse_remote("https://data.corp/a"))


# ---------------------------------------------------------------------------------------------- over the network


def test_default_configuration_refuses_every_remote_uri(servers):
    good, _ = servers
    good.routes["/rows.jsonl"] = Route(body=ROWS)
    refused = r"no remote source is allowed: set \[llmops\] allowed_uri_prefixes"
    for uri in (f"{good.base}/rows.jsonl", "https://example.com/rows.jsonl", "s3://landing/rows.jsonl"):
        with pytest.raises(PathNotAllowedError, match=refused):
            read_source(uri, allowed_roots=[], s3_client=object())
    assert good.requests == []


def test_userinfo_confusion_never_reaches_the_evil_host(servers):
    good, evil = servers
    evil.routes["/rows.jsonl"] = Route(body=EVIL_BODY)
    uri = f"http://127.0.0.1:{good.port}@127.0.0.1:{evil.port}/rows.jsonl"
    with pytest.raises(SourceError, match="userinfo"):
        _read(uri, [good.base], http_headers=CREDENTIALS)
    assert evil.requests == [] and good.requests == []


def test_port_prefix_confusion_never_reaches_the_evil_host():
    """`http://127.0.0.1:<p>` as a string prefix would admit port <p><digit>; parsed, it does not."""
    good = evil = None
    for _ in range(50):  # find a free port p with p*10+d free too
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        base = port % 5000 + 1100  # 1100..6099, so that base*10+d <= 61000
        try:
            good_sock, evil_sock = socket.socket(), socket.socket()
            good_sock.bind(("127.0.0.1", base))
            evil_sock.bind(("127.0.0.1", base * 10 + 1))
        except OSError:
            good_sock.close()
            evil_sock.close()
            continue
        good_sock.close()
        evil_sock.close()
        good, evil = base, base * 10 + 1
        break
    assert good is not None, "no free port pair found"
    import http.server
    import threading

    received: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            received.append(self.headers.get("Authorization", ""))
            self.send_response(200)
            self.send_header("Content-Length", str(len(EVIL_BODY)))
            self.end_headers()
            self.wfile.write(EVIL_BODY)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", evil), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        with pytest.raises(PathNotAllowedError, match="outside the allowed URI prefixes"):
            _read(f"http://127.0.0.1:{evil}/rows.jsonl", [f"http://127.0.0.1:{good}"], http_headers=CREDENTIALS)
    finally:
        server.shutdown()
        server.server_close()
    assert received == []


def test_path_prefix_is_compared_on_a_segment_boundary(servers):
    good, _ = servers
    good.routes["/exports/rows.jsonl"] = Route(body=ROWS)
    good.routes["/exportsX/rows.jsonl"] = Route(body=EVIL_BODY)
    assert _read(f"{good.base}/exports/rows.jsonl", [f"{good.base}/exports"]).data == ROWS
    with pytest.raises(PathNotAllowedError):
        _read(f"{good.base}/exportsX/rows.jsonl", [f"{good.base}/exports"])
    assert [r.path for r in good.requests] == ["/exports/rows.jsonl"]


def test_redirect_to_a_host_outside_the_allow_list_is_refused_and_gets_nothing(servers):
    good, evil = servers
    good.routes["/rows.jsonl"] = Route(302, b"", {"Location": f"{evil.base}/steal.jsonl"})
    evil.routes["/steal.jsonl"] = Route(body=EVIL_BODY)
    with pytest.raises(PathNotAllowedError, match=r"redirected .* outside the allowed URI prefixes"):
        _read(f"{good.base}/rows.jsonl", [good.base], http_headers=CREDENTIALS)
    assert evil.requests == []
    assert good.header_values("Authorization") == [CREDENTIALS["Authorization"]]


def test_redirect_to_another_allowed_origin_is_followed_without_credentials(servers):
    good, evil = servers
    good.routes["/rows.jsonl"] = Route(307, b"", {"Location": f"{evil.base}/mirror.jsonl"})
    evil.routes["/mirror.jsonl"] = Route(body=ROWS)
    blob = _read(f"{good.base}/rows.jsonl", [good.base, evil.base], http_headers=CREDENTIALS)
    assert blob.data == ROWS
    assert [r.path for r in evil.requests] == ["/mirror.jsonl"]
    (seen,) = evil.requests
    assert {"authorization", "x-api-key", "cookie"} & set(seen.headers) == set()
    assert good.header_values("X-Api-Key") == ["key-456"]


def test_redirect_within_the_same_origin_keeps_credentials(servers):
    good, evil = servers
    good.routes["/rows.jsonl"] = Route(301, b"", {"Location": "/v2/rows.jsonl"})
    good.routes["/v2/rows.jsonl"] = Route(body=ROWS)
    blob = _read(f"{good.base}/rows.jsonl", [good.base], http_headers=CREDENTIALS)
    assert blob.data == ROWS
    assert [r.path for r in good.requests] == ["/rows.jsonl", "/v2/rows.jsonl"]
    assert good.header_values("Authorization") == [CREDENTIALS["Authorization"]] * 2
    assert evil.requests == []


def test_redirect_outside_a_path_prefix_is_refused(servers):
    good, _ = servers
    good.routes["/exports/rows.jsonl"] = Route(302, b"", {"Location": "/private/rows.jsonl"})
    good.routes["/private/rows.jsonl"] = Route(body=EVIL_BODY)
    with pytest.raises(PathNotAllowedError, match="redirected"):
        _read(f"{good.base}/exports/rows.jsonl", [f"{good.base}/exports"], http_headers=CREDENTIALS)
    assert [r.path for r in good.requests] == ["/exports/rows.jsonl"]


def test_redirects_are_bounded(servers):
    good, _ = servers
    good.routes["/loop.jsonl"] = Route(302, b"", {"Location": "/loop.jsonl"})
    with pytest.raises(SourceError, match="more than 5 redirects"):
        _read(f"{good.base}/loop.jsonl", [good.base])
    assert len(good.requests) == 6


def test_redirect_to_another_scheme_is_refused(servers):
    good, _ = servers
    good.routes["/rows.jsonl"] = Route(302, b"", {"Location": "file:///etc/passwd"})
    with pytest.raises(SourceError, match="refused"):
        _read(f"{good.base}/rows.jsonl", [good.base])


def test_bound_credentials_refuse_other_hosts_before_sending(servers):
    good, evil = servers
    good.routes["/rows.jsonl"] = Route(body=ROWS)
    evil.routes["/rows.jsonl"] = Route(body=EVIL_BODY)
    bound = [f"127.0.0.1:{good.port}"]
    with pytest.raises(PathNotAllowedError, match="bound to"):
        _read(f"{evil.base}/rows.jsonl", [good.base, evil.base], http_headers=CREDENTIALS, credential_hosts=bound)
    assert evil.requests == []
    blob = _read(f"{good.base}/rows.jsonl", [good.base, evil.base], http_headers=CREDENTIALS, credential_hosts=bound)
    assert blob.data == ROWS
    assert good.header_values("Authorization") == [CREDENTIALS["Authorization"]]


def test_bound_credentials_are_dropped_on_a_same_origin_redirect_outside_the_binding(servers):
    good, _ = servers
    good.routes["/team/rows.jsonl"] = Route(302, b"", {"Location": "/public/rows.jsonl"})
    good.routes["/public/rows.jsonl"] = Route(body=ROWS)
    blob = _read(
        f"{good.base}/team/rows.jsonl", [good.base], http_headers=CREDENTIALS, credential_hosts=[f"{good.base}/team"]
    )
    assert blob.data == ROWS
    assert good.header_values("Authorization") == [CREDENTIALS["Authorization"], None]


class _RecordingS3:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    def head_object(self, Bucket: str, Key: str) -> dict[str, int]:  # noqa: N803 (boto3 API)
        self.calls.append((Bucket, Key))
        return {"ContentLength": len(ROWS)}

    def get_object(self, Bucket: str, Key: str) -> dict[str, Any]:  # noqa: N803
        import io

        return {"Body": io.BytesIO(ROWS)}


def test_s3_credentials_are_bound_to_their_buckets():
    client = _RecordingS3()
    allowed = ["s3://landing", "s3://other"]
    bound = ["s3://landing/batches"]
    for uri in ("s3://other/batches/a.jsonl", "s3://landing/batchesX/a.jsonl", "s3://landing/a.jsonl"):
        with pytest.raises(PathNotAllowedError, match="bound to"):
            read_source(uri, allowed_roots=[], allowed_uri_prefixes=allowed, s3_client=client, credential_hosts=bound)
    assert client.calls == []
    blob = read_source(
        "s3://landing/batches/a.jsonl",
        allowed_roots=[],
        allowed_uri_prefixes=allowed,
        s3_client=client,
        credential_hosts=bound,
    )
    assert blob.data == ROWS and client.calls == [("landing", "batches/a.jsonl")]
    with pytest.raises(PathNotAllowedError, match="bound to"):  # a bare host never admits a bucket
        read_source(
            "s3://landing/batches/a.jsonl",
            allowed_roots=[],
            allowed_uri_prefixes=allowed,
            s3_client=client,
            credential_hosts=["landing"],
        )
