"""Read a source batch as bytes from a local path, `file://`, `s3://` or `http(s)://`, within what is allowed.

Local paths must resolve inside the allowed roots. Remote URIs are compared, parsed, with an allow-list of
`scheme://host[:port][/path]` entries (`[llmops] allowed_uri_prefixes`; empty: no remote source is allowed):
scheme, host (case- and IDNA-normalised, IPv6 literals canonical) and port (the scheme's default when not written)
must be equal, and the path must start with the entry's path on a `/` boundary after percent-decoding and removing
`.`/`..` segments. `s3://bucket/prefix` entries compare the bucket exactly and the key prefix on a `/` boundary.
URIs with userinfo (`user:pw@host`) are refused.

HTTP is fetched by hand, one hop at a time: every redirect target is checked against the allow-list before it is
requested, at most `max_redirects` are followed, and the caller's headers (the connection's credentials) are sent
only to the origin (scheme, host, port) of the URI asked for, and only within `credential_hosts` when the
connection is bound to hosts. Nothing of a refused or failed fetch is returned.
"""

from __future__ import annotations

import hashlib
import http.client
import ipaddress
import os
import re
import ssl
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urljoin, urlparse, urlsplit

from airflow_provider_llmops.errors import ConfigurationError, PathNotAllowedError, SourceError

FORMATS = ("jsonl", "csv", "parquet")
_SUFFIXES = {
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
    ".csv": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
}
REMOTE_SCHEMES = ("s3", "http", "https")
DEFAULT_PORTS = {"http": 80, "https": 443}
ALLOW_LIST_SETTING = "[llmops] allowed_uri_prefixes (env AIRFLOW__LLMOPS__ALLOWED_URI_PREFIXES)"
MAX_REDIRECTS = 5
_REDIRECTS = (301, 302, 303, 307, 308)
_LABEL = re.compile(r"^[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?$")


@dataclass(frozen=True)
class SourceBlob:
    uri: str  # as given by the user
    location: str  # normalised: absolute path for local files, the URL otherwise
    data: bytes
    sha256: str
    file_format: str


def detect_format(uri: str, explicit: str | None = None) -> str:
    if explicit:
        fmt = explicit.lower().lstrip(".")
        fmt = _SUFFIXES.get("." + fmt, fmt)
        if fmt not in FORMATS:
            raise SourceError(uri, f"unknown format {explicit!r}; use one of {', '.join(FORMATS)}")
        return fmt
    suffix = Path(urlparse(uri).path).suffix.lower()
    if suffix not in _SUFFIXES:
        raise SourceError(
            uri,
            f"cannot tell the format from suffix {suffix or '(none)'!r}; "
            f"set file_format to one of {', '.join(FORMATS)}",
        )
    return _SUFFIXES[suffix]


def local_path(uri: str) -> Path | None:
    """The filesystem path a local URI names, or None for a remote URI."""
    parsed = urlparse(uri)
    if parsed.scheme == "file":
        if parsed.netloc not in ("", "localhost"):
            raise SourceError(redact(uri), "file:// URIs must name a local path (file:///abs/path)")
        return Path(unquote(parsed.path))
    if parsed.scheme == "" or (len(parsed.scheme) == 1 and os.name == "nt"):
        return Path(uri).expanduser()
    return None


def check_allowed(uri: str, path: Path, allowed_roots: tuple[str, ...] | list[str]) -> Path:
    """Resolve symlinks and `..`, then require the result to lie under one of the allowed roots."""
    resolved = path.resolve()
    for root in allowed_roots:
        root_path = Path(root).expanduser().resolve()
        if resolved == root_path or root_path in resolved.parents:
            return resolved
    raise PathNotAllowedError(
        uri, f"resolves to {resolved}, outside the allowed roots {list(allowed_roots)} (setting [llmops] allowed_roots)"
    )


# ---------------------------------------------------------------------------------------------------------------
# Remote URIs and allow-lists, compared parsed


def redact(uri: str) -> str:
    """The URI with any userinfo (`user:password@`) replaced by `***@`, for messages."""
    try:
        parts = urlsplit(uri)
    except ValueError:
        return "<unparseable URI>"
    if "@" not in parts.netloc:
        return uri
    return parts._replace(netloc="***@" + parts.netloc.rpartition("@")[2]).geturl()


class _Invalid(ValueError):
    """A URI or allow-list entry that cannot be compared safely (the message says why)."""


def _normal_host(host: str) -> str:
    """Lower-case, IDNA (punycode) host; canonical IP literals. Raises `_Invalid` for anything else."""
    if not host:
        raise _Invalid("has no host")
    if ":" in host:  # urlsplit strips the brackets of an IPv6 literal
        if "%" in host:
            raise _Invalid("names an IPv6 zone, which is not allowed")
        try:
            return "[" + ipaddress.IPv6Address(host).compressed + "]"
        except ValueError:
            raise _Invalid(f"has an invalid IPv6 literal {host!r}") from None
    try:
        return str(ipaddress.IPv4Address(host))
    except ValueError:
        pass
    name = host[:-1] if host.endswith(".") else host
    try:
        ascii_name = name.encode("idna").decode("ascii").lower()
    except (UnicodeError, ValueError):
        raise _Invalid(f"has an invalid host name {host!r}") from None
    if not all(_LABEL.match(label) for label in ascii_name.split(".")):
        raise _Invalid(f"has an invalid host name {host!r}")
    return ascii_name


def _path_segments(raw_path: str) -> tuple[tuple[str, ...], bool]:
    """Percent-decoded path segments with `.` and `..` removed, and whether removing them changed the path.

    Refused (`_Invalid`): an encoded `/` or a `\\` inside a segment, control characters, invalid UTF-8, a `..`
    above the root, and `.`/`..` carrying `;parameters` (read as dot segments by some servers)."""
    parts = raw_path.split("/")
    if parts and parts[0] == "":
        parts = parts[1:]
    segments: list[str] = []
    changed = False
    for raw in parts:
        try:
            segment = unquote(raw, errors="strict")
        except UnicodeDecodeError:
            raise _Invalid("has a path that is not valid percent-encoded UTF-8") from None
        if "/" in segment or "\\" in segment or any(ord(c) < 0x20 or ord(c) == 0x7F for c in segment):
            raise _Invalid("has an encoded '/', a '\\' or a control character in its path")
        bare = segment.split(";", 1)[0]
        if bare in (".", ".."):
            if bare != segment:
                raise _Invalid("has a dot segment with parameters in its path")
            changed = True
            if bare == "..":
                if not segments:
                    raise _Invalid("has a path that climbs above the root ('..')")
                segments.pop()
            continue
        segments.append(segment)
    return tuple(segments), changed


@dataclass(frozen=True)
class RemoteTarget:
    """A remote URI, parsed and normalised for comparison."""

    uri: str  # as given
    scheme: str  # http, https or s3
    host: str  # normalised host; the bucket for s3
    port: int | None  # explicit or the scheme's default; None for s3
    segments: tuple[str, ...]  # decoded path segments (http) or key segments (s3)
    request_url: str  # what is requested: the URI itself, or rebuilt from the normalised parts (dot segments)

    @property
    def origin(self) -> tuple[str, str, int | None]:
        return (self.scheme, self.host, self.port)

    @property
    def key(self) -> str:
        return "/".join(self.segments)


def parse_remote(uri: str) -> RemoteTarget:
    """Parse a remote source URI. Raises `SourceError` when it cannot be compared with an allow-list safely."""
    shown = redact(uri)
    try:
        return _parse_remote(uri)
    except _Invalid as exc:
        raise SourceError(shown, f"refused: the URI {exc}") from None


def _parse_remote(uri: str) -> RemoteTarget:
    if any(ord(c) <= 0x20 or ord(c) == 0x7F for c in uri):
        raise _Invalid("contains whitespace or control characters")
    try:
        parts = urlsplit(uri)
        port = parts.port
    except ValueError as exc:
        raise _Invalid(f"cannot be parsed ({exc})") from None
    scheme = parts.scheme.lower()
    if scheme not in REMOTE_SCHEMES:
        raise _Invalid(f"has an unsupported scheme {scheme!r}")
    if "@" in parts.netloc:
        raise _Invalid("carries userinfo (user:password@host); put credentials in a connection instead")
    if scheme == "s3":
        bucket = parts.netloc
        key = parts.path[1:] if parts.path.startswith("/") else parts.path
        if not bucket or not key:
            raise _Invalid("must be s3://bucket/key")
        if not re.fullmatch(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]", bucket):
            raise _Invalid(f"names an invalid bucket {bucket!r}")
        segments = tuple(key.split("/"))
        if any(s in (".", "..") for s in segments):
            raise _Invalid("has '.' or '..' segments in its key")
        return RemoteTarget(uri, scheme, bucket, None, segments, uri)
    host = _normal_host(parts.hostname or "")
    port = port if port is not None else DEFAULT_PORTS[scheme]
    segments, changed = _path_segments(parts.path)
    request_url = uri.split("#", 1)[0]
    if changed:
        path = "/" + "/".join(quote(s, safe="!$&'()*+,;=:@-._~") for s in segments)
        request_url = f"{scheme}://{host}:{port}{path}" + (f"?{parts.query}" if parts.query else "")
    return RemoteTarget(uri, scheme, host, port, segments, request_url)


@dataclass(frozen=True)
class UriRule:
    """One allow-list entry: `scheme://host[:port][/path]`, `s3://bucket[/prefix]`, or (where bare hosts are
    accepted) `host[:port]`, which admits http and https on that port (default: the URI's default port)."""

    text: str
    scheme: str | None  # None: a bare host, http or https
    host: str
    port: int | None  # None: the target scheme's default port (bare host) / not applicable (s3)
    segments: tuple[str, ...]  # path or key prefix, compared segment by segment

    def admits(self, target: RemoteTarget) -> bool:
        if self.scheme is None:
            if target.scheme not in DEFAULT_PORTS:
                return False
            port = self.port if self.port is not None else DEFAULT_PORTS[target.scheme]
        else:
            if self.scheme != target.scheme:
                return False
            port = self.port
        if self.host != target.host or port != target.port:
            return False
        return target.segments[: len(self.segments)] == self.segments

    def __str__(self) -> str:
        return self.text


def parse_rule(entry: str, *, setting: str, bare_hosts: bool = False) -> UriRule:
    """Parse one allow-list entry. Raises `ConfigurationError` naming `setting` when it is unusable."""
    text = entry.strip()
    try:
        if bare_hosts and "://" not in text:
            if "/" in text:
                raise _Invalid("a bare host may not have a path; write scheme://host/path")
            target = _parse_remote(f"https://{text}")
            explicit_port = urlsplit(f"https://{text}").port
            return UriRule(text, None, target.host, explicit_port, ())
        parts = urlsplit(text)
        scheme = parts.scheme.lower()
        if scheme not in REMOTE_SCHEMES:
            raise _Invalid(f"must start with one of {', '.join(s + '://' for s in REMOTE_SCHEMES)}")
        if scheme == "s3":
            bucket = parts.netloc
            if "@" in bucket or not re.fullmatch(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]", bucket):
                raise _Invalid("must name a bucket: s3://bucket[/prefix]")
            prefix = tuple(s for s in parts.path.split("/") if s)
            if any(s in (".", "..") for s in prefix):
                raise _Invalid("has '.' or '..' segments")
            return UriRule(text, "s3", bucket, None, prefix)
        if parts.query or parts.fragment:
            raise _Invalid("may not have a query or fragment")
        target = _parse_remote(text)
        segments = target.segments
        while segments and segments[-1] == "":  # `https://h/exports/` == `https://h/exports`
            segments = segments[:-1]
        return UriRule(text, scheme, target.host, target.port, segments)
    except _Invalid as exc:
        raise ConfigurationError(f"{setting}: entry {redact(text)!r} {exc}") from None


def parse_rules(entries: Iterable[str] | str | None, *, setting: str, bare_hosts: bool = False) -> tuple[UriRule, ...]:
    """A list, or a comma-separated string, of entries -> rules (blank entries ignored)."""
    if entries is None:
        return ()
    if isinstance(entries, str):
        entries = entries.replace("\n", ",").split(",")
    rules = []
    for entry in entries:
        if not isinstance(entry, str):
            raise ConfigurationError(f"{setting}: entries must be strings, got {entry!r}")
        if entry.strip():
            rules.append(parse_rule(entry, setting=setting, bare_hosts=bare_hosts))
    return tuple(rules)


def check_remote_allowed(target: RemoteTarget, rules: Sequence[UriRule], *, what: str = "") -> None:
    """Raise `PathNotAllowedError` unless one of the allow-list `rules` admits `target`."""
    if any(rule.admits(target) for rule in rules):
        return
    shown = redact(target.uri)
    if not rules:
        raise PathNotAllowedError(
            shown,
            f"{what}no remote source is allowed: set {ALLOW_LIST_SETTING} to the scheme://host[:port][/path] "
            "prefixes that may be read (empty, the default, allows none)",
        )
    raise PathNotAllowedError(
        shown, f"{what}is outside the allowed URI prefixes {[r.text for r in rules]} (setting {ALLOW_LIST_SETTING})"
    )


# ---------------------------------------------------------------------------------------------------------------
# Readers


def _read_local(uri: str, path: Path, max_bytes: int) -> bytes:
    if not path.exists():
        raise SourceError(uri, f"does not exist ({path})")
    if not path.is_file():
        raise SourceError(uri, f"is not a regular file ({path})")
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise SourceError(
                uri, f"is {size} bytes, over the limit of {max_bytes} (setting [llmops] max_source_bytes)"
            )
        return path.read_bytes()
    except PermissionError:
        raise SourceError(uri, f"is not readable by this worker: permission denied ({path})") from None


def _read_s3(target: RemoteTarget, client: Any, max_bytes: int) -> bytes:
    from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError, NoCredentialsError

    uri, bucket, key = target.uri, target.host, target.key
    try:
        head = client.head_object(Bucket=bucket, Key=key)
        if head["ContentLength"] > max_bytes:
            raise SourceError(uri, f"is {head['ContentLength']} bytes, over the limit of {max_bytes}")
        return client.get_object(Bucket=bucket, Key=key)["Body"].read()
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if code in ("404", "NoSuchKey", "NoSuchBucket", "NotFound"):
            raise SourceError(uri, "does not exist (no such bucket or key)") from None
        if status in (401, 403) or code in (
            "403",
            "AccessDenied",
            "InvalidAccessKeyId",
            "SignatureDoesNotMatch",
            "Forbidden",
        ):
            raise SourceError(uri, f"access denied: the credentials are not authorised ({code or status})") from None
        raise SourceError(uri, f"S3 error {code or status}: {exc}") from None
    except NoCredentialsError:
        raise SourceError(uri, "no S3 credentials: set them on the source connection") from None
    except EndpointConnectionError as exc:
        raise SourceError(uri, f"unreachable: {exc}") from None
    except BotoCoreError as exc:
        raise SourceError(uri, f"S3 client error: {exc}") from None


def _opener() -> urllib.request.OpenerDirector:
    """http(s) only, no automatic redirects, no cookies, no error processing (every status comes back here)."""
    opener = urllib.request.OpenerDirector()
    for handler in (
        urllib.request.ProxyHandler(),
        urllib.request.HTTPHandler(),
        urllib.request.HTTPSHandler(context=ssl.create_default_context()),
    ):
        opener.add_handler(handler)
    return opener


def _read_http(
    target: RemoteTarget,
    rules: Sequence[UriRule],
    *,
    headers: Mapping[str, str] | None,
    credential_rules: Sequence[UriRule] | None,
    max_bytes: int,
    timeout: float,
    max_redirects: int,
) -> bytes:
    """GET `target`, following at most `max_redirects` redirects that the allow-list admits. `headers` (the
    credentials) go only to hops with the origin of `target` that `credential_rules` (when given) admit."""
    uri = redact(target.uri)
    opener = _opener()
    hop = target
    for redirects in range(max_redirects + 1):
        with_credentials = hop.origin == target.origin and (
            credential_rules is None or any(r.admits(hop) for r in credential_rules)
        )
        request = urllib.request.Request(hop.request_url, headers=dict(headers or {}) if with_credentials else {})
        try:
            response = opener.open(request, timeout=timeout)
        except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise SourceError(uri, f"unreachable: {reason}") from None
        except ValueError:  # e.g. a non-ASCII character in the path, which HTTP cannot carry unencoded
            raise SourceError(uri, "cannot be requested as written: percent-encode non-ASCII characters") from None
        with response:
            status, reason = response.status, response.reason
            if 200 <= status < 300:
                try:
                    data = response.read(max_bytes + 1)
                except (http.client.HTTPException, OSError) as exc:
                    raise SourceError(uri, f"unreachable: the response broke off ({type(exc).__name__})") from None
                if len(data) > max_bytes:
                    raise SourceError(uri, f"is over the limit of {max_bytes} bytes")
                return data
            location = response.headers.get("Location")
        if status in _REDIRECTS and location:
            if redirects == max_redirects:
                break
            next_uri = urljoin(hop.request_url, location.strip())
            try:
                next_hop = _parse_remote(next_uri)
            except _Invalid as exc:
                raise SourceError(uri, f"redirected to a URI that is refused: it {exc}") from None
            if next_hop.scheme == "s3":
                raise SourceError(uri, "redirected to an s3:// URI, which is not followed")
            check_remote_allowed(next_hop, rules, what=f"redirected from {uri} to {redact(next_uri)}, which ")
            hop = next_hop
            continue
        if status in (401, 403):
            raise SourceError(uri, f"access denied: HTTP {status} (not authorised)")
        if status == 404:
            raise SourceError(uri, "does not exist: HTTP 404")
        raise SourceError(uri, f"HTTP {status} {reason}")
    raise SourceError(uri, f"more than {max_redirects} redirects; refused")


def read_source(
    uri: str,
    *,
    allowed_roots: tuple[str, ...] | list[str],
    allowed_uri_prefixes: Sequence[str] = (),
    file_format: str | None = None,
    s3_client: Any = None,
    http_headers: Mapping[str, str] | None = None,
    credential_hosts: Sequence[str] | None = None,
    credential_setting: str = "the connection's extra allowed_hosts",
    http_timeout: float = 30.0,
    max_bytes: int = 1 << 30,
    max_redirects: int = MAX_REDIRECTS,
) -> SourceBlob:
    """Fetch a whole source. Raises `SourceError` naming the source and the problem when it is unusable,
    `PathNotAllowedError` when it is outside what is allowed (nothing is requested then).

    `allowed_uri_prefixes`: the remote allow-list (empty: no remote source). `credential_hosts`: the hosts the
    credentials (`http_headers`, `s3_client`) are for (`host[:port]`, `scheme://host[:port][/path]` or
    `s3://bucket[/prefix]`); when given, a URI outside them is refused before anything is sent.
    """
    if not uri or not uri.strip():
        raise SourceError(repr(uri), "no source URI given")
    uri = uri.strip()
    path = local_path(uri)
    if path is not None:
        fmt = detect_format(uri, file_format)
        resolved = check_allowed(uri, path, allowed_roots)
        data, location = _read_local(uri, resolved, max_bytes), str(resolved)
    else:
        scheme = urlparse(uri).scheme
        if scheme not in REMOTE_SCHEMES:
            raise SourceError(redact(uri), f"unsupported scheme {scheme!r}; use a path, file://, s3:// or http(s)://")
        target = parse_remote(uri)
        rules = parse_rules(allowed_uri_prefixes, setting=ALLOW_LIST_SETTING)
        check_remote_allowed(target, rules)
        credential_rules = None
        if credential_hosts is not None:
            credential_rules = parse_rules(credential_hosts, setting=credential_setting, bare_hosts=True)
            if not any(rule.admits(target) for rule in credential_rules):
                raise PathNotAllowedError(
                    redact(uri),
                    f"the source connection is bound to {[r.text for r in credential_rules]} ({credential_setting}); "
                    "this URI is not one of them, so its credentials are not sent there",
                )
        fmt = detect_format(uri, file_format)
        if scheme == "s3":
            if s3_client is None:
                raise SourceError(uri, "no S3 client configured for this source")
            data = _read_s3(target, s3_client, max_bytes)
        else:
            data = _read_http(
                target,
                rules,
                headers=http_headers,
                credential_rules=credential_rules,
                max_bytes=max_bytes,
                timeout=http_timeout,
                max_redirects=max_redirects,
            )
        location = uri
    if not data.strip():
        raise SourceError(redact(uri), "is empty (0 rows)")
    return SourceBlob(uri=uri, location=location, data=data, sha256=hashlib.sha256(data).hexdigest(), file_format=fmt)
