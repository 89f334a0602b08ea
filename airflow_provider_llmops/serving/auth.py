"""Bearer-token authentication of the inference service: OAuth2 access tokens as signed JWTs (RFC 7519, RFC 6750).

Plain Python (no Airflow, no web framework): the app turns `AuthError` into a response with `status`,
`www_authenticate` as the `WWW-Authenticate` header and `{"error": code, "detail": str(error)}` as the body.

Contract of `TokenVerifier.verify(authorization, required_scope)`:
- the header is `Bearer <compact JWS>` (scheme case-insensitive), at most `max_token_bytes` long;
- the token header's `alg` must be one of the configured, pinned algorithms BEFORE anything is verified (so `none`
  and an HS256 token "signed" with an RS public key are refused as `algorithm_not_allowed`); the key must fit the
  algorithm (RSA >= 2048 bits for RS*/PS*, the named curve for ES*); HS and RS/ES are never mixed in one config;
- the signature is checked, then `iss` == issuer, `aud` contains audience, `sub` (printable, <= 256 chars) and
  `exp` are required, and with `leeway_s`: exp > now - leeway, nbf <= now + leeway, iat <= now + leeway;
- the token's scopes (`scope`, space-separated, or `scp`, a list) must contain `required_scope`: else 403
  `insufficient_scope`; every other failure is 401. Messages are safe for a client: no token, key or claim value.
Keys: an HS secret (at least as long as the hash: 32/48/64 bytes), a PEM public key (text or file), or a JWKS file
whose keys are chosen by the token's `kid` and which is re-read when its mtime changes. Nothing fetches a key named
by the token (`jku`, `x5u`, `jwk` headers are ignored). The embedded default (`local_auth_config`) keeps a random
HS256 secret in `<home>/serving/jwt.key` (0600 in a 0700 directory) and refuses a key file others can read.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import logging
import os
import re
import secrets
import stat
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from airflow_provider_llmops.errors import ConfigurationError, LLMOpsError

log = logging.getLogger(__name__)

SCOPES = frozenset({"predict", "admin"})
HMAC_ALGORITHMS = {"HS256": 32, "HS384": 48, "HS512": 64}  # name -> minimum secret bytes (RFC 7518 3.2)
RSA_ALGORITHMS = frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"})
EC_ALGORITHMS = {"ES256": "secp256r1", "ES384": "secp384r1", "ES512": "secp521r1"}  # name -> curve
ALGORITHMS = frozenset(HMAC_ALGORITHMS) | RSA_ALGORITHMS | frozenset(EC_ALGORITHMS)
MIN_RSA_BITS = 2048
LOCAL_ISSUER = "llmops-local"
LOCAL_AUDIENCE = "llmops-serve"
LOCAL_KEY_FILE = Path("serving") / "jwt.key"
MAX_SUBJECT_CHARS = 256
MAX_TTL_S = 366 * 86400
MAX_KEY_FILE_BYTES = 1 << 20
ACCEPTED_TYP = frozenset({"jwt", "at+jwt", "application/jwt", "application/at+jwt"})

# The [llmops] settings `AuthConfig.from_mapping` reads (all optional; none set = the embedded local key).
SETTING_KEYS = (
    "serve_jwt_algorithms",
    "serve_jwt_secret",
    "serve_jwt_public_key_file",
    "serve_jwt_jwks_file",
    "serve_jwt_issuer",
    "serve_jwt_audience",
)

_COMPACT_JWS = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")  # empty signature: alg none
_SCOPE_TOKEN = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]{1,64}")  # RFC 6749 3.3 scope-token, bounded

_MESSAGES = {
    "missing_token": "authentication required: send 'Authorization: Bearer <token>'",
    "malformed": "the bearer token is malformed",
    "token_too_large": "the bearer token is too large",
    "algorithm_not_allowed": "the token's signing algorithm is not accepted",
    "unknown_key": "the token's key id is not known",
    "bad_signature": "the token's signature does not verify",
    "bad_issuer": "the token's issuer is not accepted",
    "bad_audience": "the token is not for this service (audience)",
    "expired": "the token has expired",
    "not_yet_valid": "the token is not valid yet",
    "insufficient_scope": "the token lacks the required scope",
}


class AuthError(LLMOpsError):
    """A request is not authenticated (401) or not allowed (403). `code` is a short machine reason, `str(error)` a
    message safe to return to the client (it never holds the token, a key or a claim value)."""

    def __init__(self, code: str, message: str | None = None, *, required_scope: str | None = None) -> None:
        if code not in _MESSAGES:
            raise ValueError(f"unknown AuthError code {code!r}")
        self.code = code
        self.status = 403 if code == "insufficient_scope" else 401
        self.required_scope = required_scope
        super().__init__(message or _MESSAGES[code])

    @property
    def www_authenticate(self) -> str:
        """The `WWW-Authenticate` header value for the response (RFC 6750 section 3)."""
        if self.code == "missing_token":
            return 'Bearer realm="llmops"'
        if self.code == "insufficient_scope":
            return f'Bearer realm="llmops", error="insufficient_scope", scope="{self.required_scope or ""}"'
        return f'Bearer realm="llmops", error="invalid_token", error_description="{self.code}"'


@dataclass(frozen=True)
class Principal:
    """Who a verified token speaks for: its subject (the client for quotas and audit), scopes and token id."""

    subject: str
    scopes: frozenset[str]
    token_id: str | None = None


def _check_algorithm_names(algorithms: tuple[str, ...]) -> None:
    for name in algorithms:
        if not isinstance(name, str) or name.strip().lower() == "none":
            raise ConfigurationError("the JWT algorithm 'none' (unsigned tokens) is never accepted")
        if name not in ALGORITHMS:
            raise ConfigurationError(
                f"unknown JWT algorithm {name!r}: use one of {', '.join(sorted(ALGORITHMS))} (names are upper case)"
            )


def _family(algorithm: str) -> str:
    return "HS" if algorithm in HMAC_ALGORITHMS else "asymmetric"


@dataclass(frozen=True, kw_only=True)
class AuthConfig:
    """How tokens are verified. `algorithms` is the pinned list (never `none`; HS* and RS*/PS*/ES* never together:
    that mix is the HS/RS confusion attack). HS needs `secret`; RS/PS/ES need exactly one of `public_key` (PEM text
    or a path to a PEM file) and `jwks_file`."""

    algorithms: tuple[str, ...]
    issuer: str
    audience: str
    secret: str | bytes | None = field(default=None, repr=False)
    public_key: str | None = None
    jwks_file: Path | None = None
    leeway_s: int = 30
    max_token_bytes: int = 8192

    def __post_init__(self) -> None:
        algorithms = (self.algorithms,) if isinstance(self.algorithms, str) else tuple(self.algorithms)
        object.__setattr__(self, "algorithms", algorithms)
        if self.jwks_file is not None:
            object.__setattr__(self, "jwks_file", Path(self.jwks_file))
        if not algorithms:
            raise ConfigurationError("serve_jwt_algorithms is empty: pin at least one, e.g. HS256, RS256 or ES256")
        _check_algorithm_names(algorithms)
        families = {_family(a) for a in algorithms}
        if len(families) > 1:
            raise ConfigurationError(
                f"serve_jwt_algorithms mixes HS* with RS*/PS*/ES* ({', '.join(algorithms)}): a service that accepts "
                "both lets a token HMAC-signed with the public key pass; pin one family"
            )
        for name, value in (("issuer", self.issuer), ("audience", self.audience)):
            if not isinstance(value, str) or not value.strip():
                raise ConfigurationError(f"serve_jwt_{name} must be a non-empty string")
        if not 0 <= int(self.leeway_s) <= 300:
            raise ConfigurationError(f"leeway_s must be between 0 and 300 seconds, not {self.leeway_s}")
        if not 256 <= int(self.max_token_bytes) <= 65536:
            raise ConfigurationError(f"max_token_bytes must be between 256 and 65536, not {self.max_token_bytes}")
        if families == {"HS"}:
            self._check_hmac()
        else:
            if self.secret is not None:
                raise ConfigurationError(
                    "serve_jwt_secret is set with RS/PS/ES algorithms: remove it (asymmetric tokens verify with "
                    "serve_jwt_public_key_file or serve_jwt_jwks_file)"
                )
            if (self.public_key is None) == (self.jwks_file is None):
                raise ConfigurationError(
                    f"{', '.join(algorithms)} need exactly one of serve_jwt_public_key_file and serve_jwt_jwks_file"
                )

    def _check_hmac(self) -> None:
        if self.public_key is not None or self.jwks_file is not None:
            raise ConfigurationError(
                "HS* algorithms verify with serve_jwt_secret only: remove serve_jwt_public_key_file/"
                "serve_jwt_jwks_file, or pin RS256/ES256 instead"
            )
        if not self.secret:
            raise ConfigurationError("HS* algorithms need serve_jwt_secret (or leave all serve_jwt_* unset)")
        raw = self.secret.encode("utf-8") if isinstance(self.secret, str) else bytes(self.secret)
        if raw.lstrip().startswith((b"-----BEGIN", b"ssh-")):
            raise ConfigurationError("serve_jwt_secret looks like a PEM/SSH key: an HMAC secret must be random bytes")
        need = max(HMAC_ALGORITHMS[a] for a in self.algorithms)
        if len(raw) < need:
            raise ConfigurationError(
                f"serve_jwt_secret is {len(raw)} bytes; {', '.join(self.algorithms)} need at least {need} random "
                f"bytes (e.g. python -c 'import secrets; print(secrets.token_urlsafe({need}))')"
            )

    @property
    def secret_bytes(self) -> bytes:
        if self.secret is None:
            raise ConfigurationError("this configuration has no HS secret")
        return self.secret.encode("utf-8") if isinstance(self.secret, str) else bytes(self.secret)

    @classmethod
    def from_mapping(cls, values: Mapping[str, str], home: Path) -> AuthConfig:
        """Build from flat `[llmops]` settings (`SETTING_KEYS`; others are ignored). With no key material set, the
        embedded local key under `home` is used (issuer/audience still overridable). Relative paths are under
        `home`. Asymmetric keys need `serve_jwt_algorithms` spelled out: the algorithm is pinned, never guessed."""

        def get(key: str) -> str:
            value = values.get(key)
            return value.strip() if isinstance(value, str) else ""

        def path(value: str) -> Path:
            p = Path(value).expanduser()
            return p if p.is_absolute() else Path(home) / p

        algorithms = tuple(a for a in re.split(r"[\s,]+", get("serve_jwt_algorithms")) if a)
        secret, key_file, jwks = get("serve_jwt_secret"), get("serve_jwt_public_key_file"), get("serve_jwt_jwks_file")
        overrides = {k: get(f"serve_jwt_{k}") for k in ("issuer", "audience") if get(f"serve_jwt_{k}")}
        if not (secret or key_file or jwks):
            _check_algorithm_names(algorithms)
            if algorithms and algorithms != ("HS256",):
                raise ConfigurationError(
                    f"serve_jwt_algorithms={','.join(algorithms)} needs serve_jwt_secret, serve_jwt_public_key_file "
                    "or serve_jwt_jwks_file (the embedded local key is HS256: leave serve_jwt_algorithms unset)"
                )
            local = local_auth_config(Path(home))
            return dataclasses.replace(local, **overrides) if overrides else local
        if (key_file or jwks) and not algorithms:
            raise ConfigurationError(
                "serve_jwt_algorithms must name the algorithm your identity provider signs with (e.g. RS256 or "
                "ES256); it is pinned, never taken from the token"
            )
        public_key = None
        if key_file:
            public_key = key_file if key_file.startswith("-----BEGIN") else str(path(key_file))
        return cls(
            algorithms=algorithms or ("HS256",),
            issuer=overrides.get("issuer", LOCAL_ISSUER),
            audience=overrides.get("audience", LOCAL_AUDIENCE),
            secret=secret or None,
            public_key=public_key,
            jwks_file=path(jwks) if jwks else None,
        )


def local_auth_config(home: Path) -> AuthConfig:
    """The embedded default: HS256 with a random secret kept at `<home>/serving/jwt.key`, created on first use
    (file 0600, directory 0700). An existing key file that group or others can read is refused."""
    return AuthConfig(
        algorithms=("HS256",), issuer=LOCAL_ISSUER, audience=LOCAL_AUDIENCE, secret=_local_secret(Path(home))
    )


def _local_secret(home: Path) -> str:
    path = home / LOCAL_KEY_FILE
    if not path.exists():
        _create_key_file(path)
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError as exc:
        raise ConfigurationError(f"cannot read the serving key {path}: {exc.strerror}") from None
    with os.fdopen(fd, "rb") as handle:
        st = os.fstat(handle.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise ConfigurationError(f"the serving key {path} is not a regular file")
        if os.name == "posix" and st.st_mode & 0o077:
            raise ConfigurationError(
                f"the serving key {path} is readable by others (mode {stat.S_IMODE(st.st_mode):o}): "
                f"run chmod 600 {path}, and mint new tokens if others may have read it"
            )
        secret = handle.read(4096).decode("ascii", errors="replace").strip()
    if len(secret) < HMAC_ALGORITHMS["HS256"]:
        raise ConfigurationError(f"the serving key {path} is too short: delete it and a new one is generated")
    return secret


def _create_key_file(path: Path) -> None:
    """Write a new random key beside the final name, then link it into place: never a half-written key, and two
    processes starting at once end up with the same one."""
    parent = path.parent
    if not parent.exists():
        parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(parent, 0o700)
    tmp = parent / f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            if os.name == "posix":
                os.fchmod(handle.fileno(), 0o600)
            handle.write(secrets.token_urlsafe(32).encode("ascii") + b"\n")  # 32 random bytes, 43 characters
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass  # another process won the race: use its key
        else:
            log.info("created the local serving key %s (mode 600)", path)
    finally:
        tmp.unlink(missing_ok=True)


# --- keys -------------------------------------------------------------------------------------------------------


def _fits(algorithm: str, key: Any) -> bool:
    """Whether a public key may verify `algorithm`: RSA of at least 2048 bits for RS*/PS*, the named curve for ES*."""
    if algorithm in RSA_ALGORITHMS:
        return isinstance(key, rsa.RSAPublicKey) and key.key_size >= MIN_RSA_BITS
    if algorithm in EC_ALGORITHMS:
        return isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name == EC_ALGORITHMS[algorithm]
    return False


def _describe(key: Any) -> str:
    if isinstance(key, rsa.RSAPublicKey):
        return f"an RSA key of {key.key_size} bits"
    if isinstance(key, ec.EllipticCurvePublicKey):
        return f"an EC key on {key.curve.name}"
    return f"a {type(key).__name__}"


def _read_bounded(path: Path, what: str) -> bytes:
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_KEY_FILE_BYTES + 1)
    except OSError as exc:
        raise ConfigurationError(f"cannot read the {what} {path}: {exc.strerror}") from None
    if len(data) > MAX_KEY_FILE_BYTES:
        raise ConfigurationError(f"the {what} {path} is larger than {MAX_KEY_FILE_BYTES} bytes")
    return data


def _load_public_key(config: AuthConfig) -> Any:
    assert config.public_key is not None
    text = config.public_key
    where = "serve_jwt_public_key_file"
    if text.lstrip().startswith("-----BEGIN"):
        pem = text.encode("ascii", errors="replace")
    else:
        where = str(Path(text).expanduser())
        pem = _read_bounded(Path(where), "public key")
    if b"PRIVATE KEY" in pem:
        raise ConfigurationError(f"{where} holds a private key: give the service the public key only")
    try:
        key = serialization.load_pem_public_key(pem)
    except (ValueError, TypeError):
        raise ConfigurationError(f"{where} is not a PEM public key (-----BEGIN PUBLIC KEY-----)") from None
    wrong = [a for a in config.algorithms if not _fits(a, key)]
    if wrong:
        raise ConfigurationError(
            f"{where} is {_describe(key)}, which cannot verify {', '.join(wrong)} "
            f"(RS*/PS* need RSA >= {MIN_RSA_BITS} bits; ES256/384/512 need P-256/P-384/P-521)"
        )
    return key


@dataclass(frozen=True)
class _Jwk:
    key: Any
    algorithm: str | None  # the key's own "alg", when it names one


def _load_jwks(path: Path, algorithms: tuple[str, ...]) -> dict[str | None, _Jwk]:
    """Parse a JWKS file into {kid: key}; keys no configured algorithm can use (or meant for encryption) are
    skipped. A single key without `kid` is stored under None and used for tokens without `kid`."""
    try:
        document = json.loads(_read_bounded(path, "JWKS file"))
    except (ValueError, RecursionError):
        raise ConfigurationError(f"the JWKS file {path} is not JSON") from None
    entries = document.get("keys") if isinstance(document, dict) else None
    if not isinstance(entries, list):
        raise ConfigurationError(f'the JWKS file {path} must be a JSON object with a "keys" list')
    keys: dict[str | None, _Jwk] = {}
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise ConfigurationError(f"the JWKS file {path}: key #{index} is not an object")
        kid = entry.get("kid")
        if kid is not None and (not isinstance(kid, str) or not kid or len(kid) > 256):
            raise ConfigurationError(f"the JWKS file {path}: key #{index} has an invalid kid")
        if entry.get("kty") == "oct":
            raise ConfigurationError(f"the JWKS file {path}: key #{index} is a symmetric (oct) key; remove it")
        if "d" in entry or "p" in entry:
            raise ConfigurationError(
                f"the JWKS file {path}: key #{index} holds private key material; publish the public key only"
            )
        if entry.get("use", "sig") != "sig":
            continue
        alg = entry.get("alg")
        if alg is not None and alg not in algorithms:
            continue
        try:
            key = jwt.PyJWK(entry).key
        except (jwt.PyJWKError, jwt.InvalidKeyError, ValueError, TypeError, KeyError):
            raise ConfigurationError(f"the JWKS file {path}: key #{index} is not a valid public JWK") from None
        if not any(_fits(a, key) for a in ([alg] if alg else algorithms)):
            continue
        if kid in keys:
            raise ConfigurationError(f"the JWKS file {path}: more than one usable key has kid {kid!r}")
        keys[kid] = _Jwk(key, alg)
    if not keys:
        raise ConfigurationError(
            f"the JWKS file {path} has no signing key usable with {', '.join(algorithms)} "
            f"(RSA >= {MIN_RSA_BITS} bits for RS*/PS*, P-256/384/521 for ES*)"
        )
    if None in keys and len(keys) > 1:
        raise ConfigurationError(f"the JWKS file {path}: with several keys, every key needs a kid")
    return keys


# --- verification -----------------------------------------------------------------------------------------------


def _fail(code: str, *, required_scope: str | None = None) -> AuthError:
    log.debug("bearer token rejected: %s", code)
    return AuthError(code, required_scope=required_scope)


def _unverified_header(token: str) -> dict[str, Any]:
    """The JOSE header of a compact JWS (already matched against the base64url alphabet): read only to pick the
    algorithm and key; nothing in it is trusted before the signature verifies."""
    segment = token.split(".", 1)[0]
    try:
        header = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    except (ValueError, RecursionError):  # binascii.Error, UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise _fail("malformed") from None
    if not isinstance(header, dict):
        raise _fail("malformed")
    return header


def _numeric_date(claims: Mapping[str, Any], name: str) -> float | None:
    value = claims.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value or abs(value) > 1e12:
        raise _fail("malformed")
    return float(value)


def _valid_subject(subject: Any) -> bool:
    return (
        isinstance(subject, str)
        and 0 < len(subject) <= MAX_SUBJECT_CHARS
        and subject.isprintable()
        and subject == subject.strip()
    )


def _token_scopes(claims: Mapping[str, Any]) -> frozenset[str]:
    scope, scp = claims.get("scope"), claims.get("scp")
    if scope is not None:
        if not isinstance(scope, str):
            raise _fail("malformed")
        names = scope.split()
    elif scp is not None:
        if not isinstance(scp, list) or not all(isinstance(s, str) for s in scp):
            raise _fail("malformed")
        names = scp
    else:
        names = []
    if len(names) > 64 or not all(_SCOPE_TOKEN.fullmatch(n) for n in names):
        raise _fail("malformed")
    return frozenset(names)


class TokenVerifier:
    """Verifies bearer tokens against one `AuthConfig`. Thread-safe; keys are loaded at construction (so a bad
    configuration fails at startup, not at the first request) and a JWKS file again whenever its mtime changes."""

    def __init__(self, config: AuthConfig, *, clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self._clock = clock
        self._max_header_chars = config.max_token_bytes + 64
        self._hmac_key = config.secret_bytes if config.secret is not None else None
        self._public_key = _load_public_key(config) if config.public_key is not None else None
        self._jwks_lock = threading.Lock()
        self._jwks_stamp: tuple[int, int, int] | None = None
        self._jwks: dict[str | None, _Jwk] = {}
        if config.jwks_file is not None:
            self._jwks_stamp = self._stamp(config.jwks_file)
            self._jwks = _load_jwks(config.jwks_file, config.algorithms)

    @staticmethod
    def _stamp(path: Path) -> tuple[int, int, int]:
        try:
            st = os.stat(path)
        except OSError as exc:
            raise ConfigurationError(f"cannot read the JWKS file {path}: {exc.strerror}") from None
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    def _current_jwks(self) -> dict[str | None, _Jwk]:
        path = self.config.jwks_file
        assert path is not None
        try:
            stamp = self._stamp(path)
        except ConfigurationError as exc:
            log.warning("%s; keeping the keys read before", exc)
            return self._jwks
        if stamp != self._jwks_stamp:
            with self._jwks_lock:
                if stamp != self._jwks_stamp:
                    try:
                        self._jwks = _load_jwks(path, self.config.algorithms)
                        log.info("re-read the JWKS file %s: %d key(s)", path, len(self._jwks))
                    except ConfigurationError as exc:
                        log.warning("%s; keeping the keys read before", exc)
                    self._jwks_stamp = stamp
        return self._jwks

    def _key_for(self, algorithm: str, header: Mapping[str, Any]) -> Any:
        if self._hmac_key is not None:
            return self._hmac_key
        if self._public_key is not None:
            return self._public_key
        kid = header.get("kid")
        if kid is not None and (not isinstance(kid, str) or len(kid) > 256):
            raise _fail("malformed")
        entry = self._current_jwks().get(kid)
        if entry is None:
            raise _fail("unknown_key")
        if (entry.algorithm is not None and entry.algorithm != algorithm) or not _fits(algorithm, entry.key):
            raise _fail("algorithm_not_allowed")
        return entry.key

    def _extract(self, authorization: Any) -> str:
        if authorization is None or (isinstance(authorization, str) and not authorization.strip()):
            raise _fail("missing_token")
        if not isinstance(authorization, str):
            raise _fail("malformed")
        if len(authorization) > self._max_header_chars:
            raise _fail("token_too_large")
        parts = authorization.split()
        if len(parts) != 2 or parts[0].lower() != "bearer":
            raise _fail("malformed")
        token = parts[1]
        if len(token) > self.config.max_token_bytes:
            raise _fail("token_too_large")
        if not _COMPACT_JWS.fullmatch(token):
            raise _fail("malformed")
        return token

    def verify(self, authorization: str | None, required_scope: str) -> Principal:
        """The principal of a valid `Authorization` header holding `required_scope`; else AuthError (401/403)."""
        if required_scope not in SCOPES:
            raise ValueError(f"required_scope must be one of {sorted(SCOPES)}, not {required_scope!r}")
        token = self._extract(authorization)
        header = _unverified_header(token)
        algorithm = header.get("alg")
        if not isinstance(algorithm, str):
            raise _fail("malformed")
        if algorithm not in self.config.algorithms:
            raise _fail("algorithm_not_allowed")
        if "crit" in header or "b64" in header:
            raise _fail("malformed")  # no JWS extensions are understood here (RFC 7515 4.1.11)
        typ = header.get("typ")
        if typ is not None and (not isinstance(typ, str) or typ.lower() not in ACCEPTED_TYP):
            raise _fail("malformed")
        key = self._key_for(algorithm, header)
        claims = self._decode(token, key, algorithm)
        now = self._clock()
        leeway = self.config.leeway_s
        expires = _numeric_date(claims, "exp")
        not_before, issued = _numeric_date(claims, "nbf"), _numeric_date(claims, "iat")
        if expires is None:
            raise _fail("malformed")
        if expires <= now - leeway:
            raise _fail("expired")
        if (not_before is not None and not_before > now + leeway) or (issued is not None and issued > now + leeway):
            raise _fail("not_yet_valid")
        subject = claims.get("sub")
        if not _valid_subject(subject):
            raise _fail("malformed")
        token_id = claims.get("jti")
        if token_id is not None and (not isinstance(token_id, str) or len(token_id) > 256):
            raise _fail("malformed")
        scopes = _token_scopes(claims)
        if required_scope not in scopes:
            log.debug("subject %r lacks scope %s", subject, required_scope)
            raise AuthError("insufficient_scope", required_scope=required_scope)
        return Principal(subject=subject, scopes=scopes, token_id=token_id)

    def _decode(self, token: str, key: Any, algorithm: str) -> dict[str, Any]:
        try:
            claims = jwt.decode(
                token,
                key=key,
                algorithms=[algorithm],
                issuer=self.config.issuer,
                audience=self.config.audience,
                # times are checked by verify() with its clock and strict NumericDate types
                options={
                    "require": ["exp", "sub", "iss", "aud"],
                    "verify_exp": False,
                    "verify_nbf": False,
                    "verify_iat": False,
                },
            )
        except jwt.InvalidSignatureError:
            raise _fail("bad_signature") from None
        except jwt.MissingRequiredClaimError as exc:
            code = {"iss": "bad_issuer", "aud": "bad_audience"}.get(exc.claim, "malformed")
            raise _fail(code) from None
        except jwt.InvalidIssuerError:
            raise _fail("bad_issuer") from None
        except jwt.InvalidAudienceError:
            raise _fail("bad_audience") from None
        except (jwt.PyJWTError, ValueError, TypeError, RecursionError):
            raise _fail("malformed") from None
        if not isinstance(claims, dict):
            raise _fail("malformed")
        return claims


# --- minting ----------------------------------------------------------------------------------------------------


def _check_scopes(scopes: str | Iterable[str]) -> list[str]:
    names = scopes.split() if isinstance(scopes, str) else list(scopes)
    unknown = sorted({str(s) for s in names} - SCOPES)
    if not names or unknown:
        raise ConfigurationError(
            f"scopes must be one or more of {', '.join(sorted(SCOPES))}" + (f"; unknown: {unknown}" if unknown else "")
        )
    return sorted(set(names))


def mint_token(
    config: AuthConfig,
    subject: str,
    scopes: str | Iterable[str],
    ttl_s: int = 3600,
    now: float | None = None,
    private_key: Any = None,
    *,
    kid: str | None = None,
) -> str:
    """A signed access token for `subject` with `scopes` (claims sub, scope, iss, aud, iat, nbf, exp, jti). HS
    configs sign with their secret; RS/PS/ES need `private_key` (PEM text/bytes or a cryptography private key), and
    `kid` when the verifier reads a JWKS file."""
    if not _valid_subject(subject):
        raise ConfigurationError(
            f"the token subject must be 1-{MAX_SUBJECT_CHARS} printable characters without surrounding spaces"
        )
    names = _check_scopes(scopes)
    if isinstance(ttl_s, bool) or not isinstance(ttl_s, int) or not 1 <= ttl_s <= MAX_TTL_S:
        raise ConfigurationError(f"ttl_s must be a whole number of seconds between 1 and {MAX_TTL_S}")
    issued = int(time.time() if now is None else now)
    claims = {
        "sub": subject,
        "scope": " ".join(names),
        "iss": config.issuer,
        "aud": config.audience,
        "iat": issued,
        "nbf": issued,
        "exp": issued + ttl_s,
        "jti": secrets.token_urlsafe(16),
    }
    headers = {"typ": "JWT", **({"kid": kid} if kid else {})}
    if config.secret is not None:
        if private_key is not None:
            raise ConfigurationError("HS* tokens are signed with the configured secret; do not pass private_key")
        return jwt.encode(claims, config.secret_bytes, algorithm=config.algorithms[0], headers=headers)
    if private_key is None:
        raise ConfigurationError(
            f"minting {', '.join(config.algorithms)} tokens needs the private key; the service holds only the public "
            "key (mint with your identity provider, or pass private_key)"
        )
    if isinstance(private_key, (str, bytes)):
        pem = private_key.encode("ascii") if isinstance(private_key, str) else private_key
        try:
            private_key = serialization.load_pem_private_key(pem, password=None)
        except (ValueError, TypeError):
            raise ConfigurationError("private_key is not an unencrypted PEM private key") from None
    public = private_key.public_key() if hasattr(private_key, "public_key") else None
    algorithm = next((a for a in config.algorithms if _fits(a, public)), None)
    if algorithm is None:
        raise ConfigurationError(f"private_key is {_describe(public)}, which fits none of {config.algorithms}")
    return jwt.encode(claims, private_key, algorithm=algorithm, headers=headers)
