"""Bearer-token authentication of the inference service: every way a token can be wrong is refused with the right
status and code (401, or 403 for a missing scope), the pinned algorithms stop `alg: none` and the HS/RS confusion
before any signature is checked, RS256/ES256 verify from PEM and from a JWKS file (re-read when it changes), the
local key is created private and refused when others can read it, and no token or secret reaches a log or an
error message."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import json
import logging
import os
import stat
import traceback
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from hypothesis import given, settings
from hypothesis import strategies as st

from airflow_provider_llmops.errors import ConfigurationError, LLMOpsError
from airflow_provider_llmops.serving.auth import (
    LOCAL_AUDIENCE,
    LOCAL_ISSUER,
    AuthConfig,
    AuthError,
    Principal,
    TokenVerifier,
    local_auth_config,
    mint_token,
)

NOW = 1_800_000_000.0
SECRET = "s3cr3t-" + "k" * 40  # 47 bytes: long enough for HS256
ISSUER, AUDIENCE = "https://idp.example", "llmops-serve"
RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
RSA_KEY_2 = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC_KEY = ec.generate_private_key(ec.SECP256R1())


def _pem(private_key) -> str:
    return (
        private_key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode("ascii")
    )


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _claims(**overrides) -> dict:
    claims = {
        "sub": "alice",
        "scope": "predict",
        "iss": ISSUER,
        "aud": AUDIENCE,
        "iat": int(NOW),
        "nbf": int(NOW),
        "exp": int(NOW) + 600,
        "jti": "t-1",
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


def _hs_config(**overrides) -> AuthConfig:
    values = {"algorithms": ("HS256",), "issuer": ISSUER, "audience": AUDIENCE, "secret": SECRET}
    values.update(overrides)
    return AuthConfig(**values)


def _verifier(config: AuthConfig | None = None) -> TokenVerifier:
    return TokenVerifier(config or _hs_config(), clock=lambda: NOW)


def _hs_token(claims: dict | None = None, secret: str = SECRET, headers: dict | None = None) -> str:
    return jwt.encode(claims or _claims(), secret, algorithm="HS256", headers=headers)


def _hs_signed_by_hand(claims: dict, header: dict | None = None) -> str:
    """HS256 over any claims and header (PyJWT's encoder refuses or rewrites some; an attacker's would not)."""
    header = _b64(json.dumps(header or {"alg": "HS256", "typ": "JWT"}).encode())
    signing_input = f"{header}.{_b64(json.dumps(claims).encode())}"
    return f"{signing_input}.{_b64(hmac.new(SECRET.encode(), signing_input.encode(), hashlib.sha256).digest())}"


def _refused(verifier: TokenVerifier, authorization, scope: str = "predict") -> AuthError:
    with pytest.raises(AuthError) as caught:
        verifier.verify(authorization, scope)
    return caught.value


def _hand_built(header: dict, claims: dict, signature: bytes = b"") -> str:
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
    return f"{signing_input}.{_b64(signature)}"


# --- the happy paths -------------------------------------------------------------------------------------------


def test_a_minted_hs256_token_round_trips_to_its_principal():
    config = _hs_config()
    token = mint_token(config, "alice", ["predict", "admin"], ttl_s=120, now=NOW)
    principal = _verifier(config).verify(f"Bearer {token}", "admin")
    assert principal.subject == "alice"
    assert principal.scopes == frozenset({"predict", "admin"})
    assert isinstance(principal, Principal) and len(principal.token_id or "") >= 16
    claims = jwt.decode(
        token,
        SECRET,
        algorithms=["HS256"],
        audience=AUDIENCE,
        options={"verify_exp": False, "verify_iat": False, "verify_nbf": False},
    )
    assert (claims["iss"], claims["aud"], claims["scope"]) == (ISSUER, AUDIENCE, "admin predict")
    assert (claims["iat"], claims["nbf"], claims["exp"]) == (int(NOW), int(NOW), int(NOW) + 120)
    assert jwt.get_unverified_header(token)["alg"] == "HS256"


@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER", "  Bearer"])
def test_the_bearer_scheme_is_case_insensitive(scheme: str):
    assert _verifier().verify(f"{scheme} {_hs_token()}  ", "predict").subject == "alice"


def test_scp_list_claims_are_read_as_scopes():
    token = _hs_token(_claims(scope=None, scp=["predict", "openid"]))
    assert _verifier().verify(f"Bearer {token}", "predict").scopes == frozenset({"predict", "openid"})


def test_an_audience_list_containing_ours_is_accepted():
    token = _hs_token(_claims(aud=["other", AUDIENCE]))
    assert _verifier().verify(f"Bearer {token}", "predict").subject == "alice"


def test_leeway_tolerates_small_clock_skew_only():
    verifier = _verifier()
    assert verifier.verify(f"Bearer {_hs_token(_claims(exp=int(NOW) - 29))}", "predict").subject == "alice"
    assert verifier.verify(f"Bearer {_hs_token(_claims(nbf=int(NOW) + 29))}", "predict").subject == "alice"
    assert _refused(verifier, f"Bearer {_hs_token(_claims(exp=int(NOW) - 30))}").code == "expired"
    assert _refused(verifier, f"Bearer {_hs_token(_claims(nbf=int(NOW) + 31))}").code == "not_yet_valid"


# --- every wrong token, with its status and code ---------------------------------------------------------------

WRONG_TOKENS = [
    ("missing", None, "missing_token"),
    ("blank", "   ", "missing_token"),
    ("basic scheme", "Basic YWxpY2U6cHc=", "malformed"),
    ("no token", "Bearer", "malformed"),
    ("two tokens", f"Bearer {'a.b.c'} {'d.e.f'}", "malformed"),
    ("not a jws", "Bearer not-a-token", "malformed"),
    ("five parts (JWE)", "Bearer a.b.c.d.e", "malformed"),
    ("bad base64 header", "Bearer a.b.c", "malformed"),
    ("expired", _hs_token(_claims(iat=int(NOW) - 7200, nbf=int(NOW) - 7200, exp=int(NOW) - 3600)), "expired"),
    ("not yet valid", _hs_token(_claims(nbf=int(NOW) + 3600, exp=int(NOW) + 7200)), "not_yet_valid"),
    ("issued in the future", _hs_token(_claims(iat=int(NOW) + 3600, exp=int(NOW) + 7200)), "not_yet_valid"),
    ("wrong issuer", _hs_token(_claims(iss="https://evil.example")), "bad_issuer"),
    ("no issuer", _hs_token(_claims(iss=None)), "bad_issuer"),
    ("wrong audience", _hs_token(_claims(aud="another-service")), "bad_audience"),
    ("no audience", _hs_token(_claims(aud=None)), "bad_audience"),
    ("wrong signature", _hs_token(secret="another-secret-" + "x" * 40), "bad_signature"),
    ("no subject", _hs_token(_claims(sub=None)), "malformed"),
    ("empty subject", _hs_token(_claims(sub="")), "malformed"),
    ("control chars in subject", _hs_token(_claims(sub="alice\nadmin")), "malformed"),
    ("no exp", _hs_token(_claims(exp=None)), "malformed"),
    ("string exp", _hs_token(_claims(exp=str(int(NOW) + 600))), "malformed"),
    ("boolean exp", _hs_token(_claims(exp=True)), "malformed"),
    ("scope not a string", _hs_token(_claims(scope=["predict"])), "malformed"),
    ("crit header", _hs_signed_by_hand(_claims(), {"alg": "HS256", "crit": ["b64"], "b64": True}), "malformed"),
    ("unexpected typ", _hs_token(headers={"typ": "dpop+jwt"}), "malformed"),
    ("alg none", _hand_built({"alg": "none", "typ": "JWT"}, _claims()), "algorithm_not_allowed"),
    ("alg None", _hand_built({"alg": "None"}, _claims()), "algorithm_not_allowed"),
    ("alg HS512", jwt.encode(_claims(), SECRET + "x" * 20, algorithm="HS512"), "algorithm_not_allowed"),
    ("alg missing", _hand_built({"typ": "JWT"}, _claims(), b"x"), "malformed"),
]


@pytest.mark.parametrize(("case", "token", "code"), WRONG_TOKENS, ids=[c[0] for c in WRONG_TOKENS])
def test_wrong_tokens_are_refused_with_401_and_their_code(case: str, token, code: str):
    authorization = token if token is None or " " in token or token.startswith("Bearer") else f"Bearer {token}"
    error = _refused(_verifier(), authorization)
    assert (error.status, error.code) == (401, code), case
    assert isinstance(error, LLMOpsError)
    assert error.www_authenticate.startswith('Bearer realm="llmops"')
    if code != "missing_token":
        assert f'error_description="{code}"' in error.www_authenticate


def test_a_token_without_the_required_scope_is_403():
    token = _hs_token(_claims(scope="predict"))
    error = _refused(_verifier(), f"Bearer {token}", "admin")
    assert (error.status, error.code, error.required_scope) == (403, "insufficient_scope", "admin")
    assert error.www_authenticate == 'Bearer realm="llmops", error="insufficient_scope", scope="admin"'
    assert _refused(_verifier(), f"Bearer {_hs_token(_claims(scope=None))}").code == "insufficient_scope"


def test_admin_does_not_imply_predict():
    token = _hs_token(_claims(scope="admin"))
    assert _refused(_verifier(), f"Bearer {token}", "predict").status == 403


def test_an_oversized_header_or_token_is_refused_before_parsing():
    config = _hs_config(max_token_bytes=1024)
    big = _hs_token(_claims(padding="x" * 2000))
    assert _refused(_verifier(config), f"Bearer {big}").code == "token_too_large"
    assert _refused(_verifier(config), "Bearer " + "a" * 100_000).code == "token_too_large"
    assert _verifier().verify(f"Bearer {big}", "predict").subject == "alice"  # the same token fits 8192


def test_an_unknown_required_scope_is_a_programming_error():
    with pytest.raises(ValueError, match="required_scope must be one of"):
        _verifier().verify(f"Bearer {_hs_token()}", "root")


# --- algorithm pinning: none and the HS/RS confusion -----------------------------------------------------------


def _rs_config(**overrides) -> AuthConfig:
    values = {"algorithms": ("RS256",), "issuer": ISSUER, "audience": AUDIENCE, "public_key": _pem(RSA_KEY)}
    values.update(overrides)
    return AuthConfig(**values)


def test_hs256_signed_with_the_rs_public_key_is_refused():
    """The HS/RS confusion: the attacker knows the public key and uses its PEM text as an HMAC secret."""
    public_pem = _pem(RSA_KEY).encode("ascii")
    header = {"alg": "HS256", "typ": "JWT"}
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(_claims()).encode())}"
    forged = f"{signing_input}.{_b64(hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest())}"
    error = _refused(_verifier(_rs_config()), f"Bearer {forged}")
    assert (error.status, error.code) == (401, "algorithm_not_allowed")


def test_a_config_mixing_hs_and_rs_is_refused():
    with pytest.raises(ConfigurationError, match="mixes HS"):
        AuthConfig(algorithms=("RS256", "HS256"), issuer=ISSUER, audience=AUDIENCE, public_key=_pem(RSA_KEY))


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"algorithms": ("none",)}, "'none'"),
        ({"algorithms": ("HS256", "NONE")}, "'none'"),
        ({"algorithms": ()}, "is empty"),
        ({"algorithms": ("hs256",)}, "unknown JWT algorithm"),
        ({"algorithms": ("EdDSA",)}, "unknown JWT algorithm"),
        ({"secret": None}, "need serve_jwt_secret"),
        ({"secret": "short"}, "at least 32"),
        ({"algorithms": ("HS512",)}, "at least 64"),
        ({"secret": "-----BEGIN PUBLIC KEY-----" + "A" * 40}, "looks like a PEM"),
        ({"public_key": "x"}, "serve_jwt_secret only"),
        ({"issuer": ""}, "serve_jwt_issuer"),
        ({"audience": " "}, "serve_jwt_audience"),
        ({"leeway_s": 3600}, "leeway_s"),
        ({"max_token_bytes": 10}, "max_token_bytes"),
    ],
)
def test_invalid_hs_configs_are_refused(overrides: dict, message: str):
    with pytest.raises(ConfigurationError, match=message):
        _hs_config(**overrides)


def test_invalid_asymmetric_configs_are_refused(tmp_path: Path):
    with pytest.raises(ConfigurationError, match="exactly one of"):
        AuthConfig(algorithms=("RS256",), issuer=ISSUER, audience=AUDIENCE)
    with pytest.raises(ConfigurationError, match="exactly one of"):
        _rs_config(jwks_file=tmp_path / "jwks.json")
    with pytest.raises(ConfigurationError, match="remove it"):
        _rs_config(secret=SECRET)
    with pytest.raises(ConfigurationError, match="cannot verify ES256"):
        TokenVerifier(_rs_config(algorithms=("ES256",)))
    small = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    with pytest.raises(ConfigurationError, match="RSA key of 1024 bits"):
        TokenVerifier(_rs_config(public_key=_pem(small)))
    private_pem = RSA_KEY.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    with pytest.raises(ConfigurationError, match="private key"):
        TokenVerifier(_rs_config(public_key=private_pem))
    with pytest.raises(ConfigurationError, match="cannot read the public key"):
        TokenVerifier(_rs_config(public_key=str(tmp_path / "missing.pem")))


# --- RS256 / ES256 from PEM and from JWKS ----------------------------------------------------------------------


@pytest.mark.parametrize(("algorithm", "key"), [("RS256", RSA_KEY), ("ES256", EC_KEY)])
def test_asymmetric_tokens_verify_from_pem_text_and_file(tmp_path: Path, algorithm: str, key):
    pem_file = tmp_path / "public.pem"
    pem_file.write_text(_pem(key))
    for public_key in (_pem(key), str(pem_file)):
        config = AuthConfig(algorithms=(algorithm,), issuer=ISSUER, audience=AUDIENCE, public_key=public_key)
        token = mint_token(config, "svc-batch", "predict", now=NOW, private_key=key)
        assert jwt.get_unverified_header(token)["alg"] == algorithm
        assert _verifier(config).verify(f"Bearer {token}", "predict").subject == "svc-batch"
    other = RSA_KEY_2 if algorithm == "RS256" else ec.generate_private_key(ec.SECP256R1())
    forged = mint_token(config, "svc-batch", "predict", now=NOW, private_key=other)
    assert _refused(_verifier(config), f"Bearer {forged}").code == "bad_signature"


def test_a_token_carrying_its_own_jwk_is_not_trusted():
    """An attacker signs with their own key and embeds it in the header; the header key is ignored."""
    attacker = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    embedded = jwt.algorithms.RSAAlgorithm.to_jwk(attacker.public_key(), as_dict=True)
    token = jwt.encode(_claims(), attacker, algorithm="RS256", headers={"jwk": embedded})
    assert _refused(_verifier(_rs_config()), f"Bearer {token}").code == "bad_signature"


def _jwk(private_key, kid: str, **extra) -> dict:
    algorithm = (
        jwt.algorithms.RSAAlgorithm if isinstance(private_key, rsa.RSAPrivateKey) else jwt.algorithms.ECAlgorithm
    )
    return {**algorithm.to_jwk(private_key.public_key(), as_dict=True), "kid": kid, "use": "sig", **extra}


def _write_jwks(path: Path, keys: list[dict], mtime: float) -> None:
    path.write_text(json.dumps({"keys": keys}))
    os.utime(path, (mtime, mtime))


def test_jwks_keys_are_chosen_by_kid_for_rs256_and_es256(tmp_path: Path):
    jwks = tmp_path / "jwks.json"
    _write_jwks(jwks, [_jwk(RSA_KEY, "rsa-1", alg="RS256"), _jwk(EC_KEY, "ec-1")], 1_000)
    config = AuthConfig(algorithms=("RS256", "ES256"), issuer=ISSUER, audience=AUDIENCE, jwks_file=jwks)
    verifier = _verifier(config)
    rs = mint_token(config, "alice", "predict", now=NOW, private_key=RSA_KEY, kid="rsa-1")
    es = mint_token(config, "bob", "predict", now=NOW, private_key=EC_KEY, kid="ec-1")
    assert verifier.verify(f"Bearer {rs}", "predict").subject == "alice"
    assert verifier.verify(f"Bearer {es}", "predict").subject == "bob"
    unknown = mint_token(config, "alice", "predict", now=NOW, private_key=RSA_KEY, kid="rsa-9")
    assert (_refused(verifier, f"Bearer {unknown}").status, _refused(verifier, f"Bearer {unknown}").code) == (
        401,
        "unknown_key",
    )
    no_kid = mint_token(config, "alice", "predict", now=NOW, private_key=RSA_KEY)
    assert _refused(verifier, f"Bearer {no_kid}").code == "unknown_key"
    # an ES256 token naming the RSA key's kid: the key does not fit the algorithm
    crossed = mint_token(config, "bob", "predict", now=NOW, private_key=EC_KEY, kid="rsa-1")
    assert _refused(verifier, f"Bearer {crossed}").code == "algorithm_not_allowed"


def test_jwks_is_re_read_when_its_mtime_changes_and_cached_otherwise(tmp_path: Path):
    jwks = tmp_path / "jwks.json"
    _write_jwks(jwks, [_jwk(RSA_KEY, "k1")], 1_000)
    config = AuthConfig(algorithms=("RS256",), issuer=ISSUER, audience=AUDIENCE, jwks_file=jwks)
    verifier = _verifier(config)
    old = mint_token(config, "alice", "predict", now=NOW, private_key=RSA_KEY, kid="k1")
    new = mint_token(config, "alice", "predict", now=NOW, private_key=RSA_KEY_2, kid="k2")
    assert verifier.verify(f"Bearer {old}", "predict").subject == "alice"
    assert _refused(verifier, f"Bearer {new}").code == "unknown_key"
    # rotated content, same mtime (and size): the cached set still answers
    _write_jwks(jwks, [_jwk(RSA_KEY_2, "k2")], 1_000)
    assert os.stat(jwks).st_size == len(json.dumps({"keys": [_jwk(RSA_KEY, "k1")]}))
    assert verifier.verify(f"Bearer {old}", "predict").subject == "alice"
    # a new mtime: re-read, the rotated key verifies and the retired one is unknown
    os.utime(jwks, (2_000, 2_000))
    assert verifier.verify(f"Bearer {new}", "predict").subject == "alice"
    assert _refused(verifier, f"Bearer {old}").code == "unknown_key"
    # a broken rewrite keeps the keys read before
    jwks.write_text("{not json")
    os.utime(jwks, (3_000, 3_000))
    assert verifier.verify(f"Bearer {new}", "predict").subject == "alice"


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        ([{"kty": "oct", "k": "c2VjcmV0", "kid": "h"}], "symmetric"),
        ([{**_jwk(RSA_KEY, "k"), "d": "AQAB"}], "private key material"),
        ([_jwk(RSA_KEY, "k"), _jwk(RSA_KEY_2, "k")], "more than one usable key"),
        ([_jwk(EC_KEY, "only-ec")], "no signing key usable with RS256"),
        ([_jwk(RSA_KEY, "k", use="enc")], "no signing key"),
        ([{"kty": "RSA", "kid": "k", "n": "!!", "e": "AQAB"}], "not a valid public JWK"),
    ],
)
def test_unusable_jwks_files_are_refused_at_startup(tmp_path: Path, keys: list, message: str):
    jwks = tmp_path / "jwks.json"
    _write_jwks(jwks, keys, 1_000)
    config = AuthConfig(algorithms=("RS256",), issuer=ISSUER, audience=AUDIENCE, jwks_file=jwks)
    with pytest.raises(ConfigurationError, match=message):
        TokenVerifier(config)


# --- the local key and settings --------------------------------------------------------------------------------


def test_the_local_key_is_created_private_and_reused(tmp_path: Path):
    config = local_auth_config(tmp_path)
    key_file = tmp_path / "serving" / "jwt.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(key_file.parent.stat().st_mode) == 0o700
    assert (config.algorithms, config.issuer, config.audience) == (("HS256",), LOCAL_ISSUER, LOCAL_AUDIENCE)
    assert config.secret == key_file.read_text().strip() and len(config.secret_bytes) >= 32
    assert local_auth_config(tmp_path).secret == config.secret
    assert local_auth_config(tmp_path / "other").secret != config.secret
    assert SECRET not in repr(_hs_config()) and config.secret not in repr(config)
    token = mint_token(config, "me", "predict")
    assert TokenVerifier(config).verify(f"Bearer {token}", "predict").subject == "me"
    assert [p.name for p in key_file.parent.iterdir()] == ["jwt.key"]  # no temporary file left behind


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o644])
def test_a_local_key_others_can_read_is_refused(tmp_path: Path, mode: int):
    local_auth_config(tmp_path)
    key_file = tmp_path / "serving" / "jwt.key"
    key_file.chmod(mode)
    with pytest.raises(ConfigurationError, match=f"chmod 600 {key_file}"):
        local_auth_config(tmp_path)


def test_a_truncated_local_key_is_refused(tmp_path: Path):
    local_auth_config(tmp_path)
    (tmp_path / "serving" / "jwt.key").write_text("short\n")
    with pytest.raises(ConfigurationError, match="delete it"):
        local_auth_config(tmp_path)


def test_from_mapping_defaults_to_the_local_key(tmp_path: Path):
    config = AuthConfig.from_mapping({"unrelated": "x"}, tmp_path)
    assert config == local_auth_config(tmp_path)
    renamed = AuthConfig.from_mapping({"serve_jwt_issuer": "me", "serve_jwt_audience": "them"}, tmp_path)
    assert (renamed.issuer, renamed.audience, renamed.secret) == ("me", "them", config.secret)
    with pytest.raises(ConfigurationError, match="needs serve_jwt_secret, serve_jwt_public_key_file"):
        AuthConfig.from_mapping({"serve_jwt_algorithms": "RS256"}, tmp_path)
    with pytest.raises(ConfigurationError, match="'none'"):
        AuthConfig.from_mapping({"serve_jwt_algorithms": "none"}, tmp_path)


def test_from_mapping_builds_hs_and_asymmetric_configs(tmp_path: Path):
    hs = AuthConfig.from_mapping({"serve_jwt_secret": f" {SECRET} ", "serve_jwt_issuer": ISSUER}, tmp_path)
    assert (hs.algorithms, hs.secret, hs.issuer, hs.audience) == (("HS256",), SECRET, ISSUER, LOCAL_AUDIENCE)
    (tmp_path / "idp.pem").write_text(_pem(EC_KEY))
    es = AuthConfig.from_mapping(
        {"serve_jwt_algorithms": "ES256", "serve_jwt_public_key_file": "idp.pem", "serve_jwt_audience": AUDIENCE},
        tmp_path,
    )
    assert (es.algorithms, es.public_key, es.secret) == (("ES256",), str(tmp_path / "idp.pem"), None)
    token = mint_token(es, "alice", "predict", now=NOW, private_key=EC_KEY)
    assert _verifier(es).verify(f"Bearer {token}", "predict").subject == "alice"
    jwks = AuthConfig.from_mapping(
        {"serve_jwt_algorithms": "RS256, PS256", "serve_jwt_jwks_file": str(tmp_path / "jwks.json")}, tmp_path
    )
    assert (jwks.algorithms, jwks.jwks_file) == (("RS256", "PS256"), tmp_path / "jwks.json")
    with pytest.raises(ConfigurationError, match="must name the algorithm"):
        AuthConfig.from_mapping({"serve_jwt_public_key_file": "idp.pem"}, tmp_path)
    with pytest.raises(ConfigurationError, match="mixes HS"):
        AuthConfig.from_mapping({"serve_jwt_algorithms": "HS256,RS256", "serve_jwt_secret": SECRET}, tmp_path)


# --- minting ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("subject", "scopes", "ttl_s", "message"),
    [
        ("", "predict", 60, "subject"),
        ("a" * 257, "predict", 60, "subject"),
        ("bad\x00name", "predict", 60, "subject"),
        (" padded", "predict", 60, "subject"),
        ("alice", [], 60, "scopes must be"),
        ("alice", "predict root", 60, "unknown: \\['root'\\]"),
        ("alice", "predict", 0, "ttl_s"),
        ("alice", "predict", 10**9, "ttl_s"),
    ],
)
def test_mint_token_validates_its_input(subject: str, scopes, ttl_s: int, message: str):
    with pytest.raises(ConfigurationError, match=message):
        mint_token(_hs_config(), subject, scopes, ttl_s=ttl_s, now=NOW)


def test_asymmetric_minting_needs_a_fitting_private_key():
    with pytest.raises(ConfigurationError, match="needs the private key"):
        mint_token(_rs_config(), "alice", "predict")
    with pytest.raises(ConfigurationError, match="fits none of"):
        mint_token(_rs_config(), "alice", "predict", private_key=EC_KEY)
    with pytest.raises(ConfigurationError, match="do not pass private_key"):
        mint_token(_hs_config(), "alice", "predict", private_key=RSA_KEY)
    pem = RSA_KEY.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    token = mint_token(_rs_config(), "alice", "predict", now=NOW, private_key=pem)
    assert _verifier(_rs_config()).verify(f"Bearer {token}", "predict").subject == "alice"


# --- nothing secret leaks --------------------------------------------------------------------------------------


def test_no_token_or_secret_reaches_logs_or_error_text(caplog: pytest.LogCaptureFixture, tmp_path: Path):
    caplog.set_level(logging.DEBUG)
    verifier = _verifier()
    good = _hs_token(_claims(scope="predict"))
    tokens = [good] + [token for _, token, _ in WRONG_TOKENS if token and token.count(".") == 2 and len(token) > 20]
    texts: list[str] = []
    for token in tokens:
        for scope in ("predict", "admin"):
            try:
                verifier.verify(f"Bearer {token}", scope)
            except AuthError as error:
                assert error.__cause__ is None and (error.__context__ is None or error.__suppress_context__)
                texts += [str(error), repr(error), error.www_authenticate, "".join(traceback.format_exception(error))]
    assert len(texts) >= 4 * len(WRONG_TOKENS) // 2
    with pytest.raises(ConfigurationError) as caught:
        _hs_config(secret="-----BEGIN PUBLIC KEY-----" + SECRET)
    texts.append(str(caught.value))
    local = local_auth_config(tmp_path)
    with pytest.raises(ConfigurationError) as caught:
        (tmp_path / "serving" / "jwt.key").chmod(0o644)
        local_auth_config(tmp_path)
    texts.append(str(caught.value))
    everything = "\n".join(texts) + caplog.text + repr(_hs_config()) + repr(local)
    assert "bearer token rejected: expired" in caplog.text  # the log says why, without the token
    segments = [part for token in tokens for part in token.split(".")[1:] if len(part) >= 16]
    assert len(segments) >= len(tokens)
    for secret in [SECRET, local.secret, *segments]:
        assert secret not in everything


# --- arbitrary input -------------------------------------------------------------------------------------------

_VERIFIER = _verifier()
_JWS_CHARS = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.", max_size=300)


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        st.text(max_size=400),
        st.builds(lambda s: f"Bearer {s}", _JWS_CHARS),
        st.builds(
            lambda h, p: f"Bearer {_b64(h.encode())}.{_b64(p.encode())}.c2ln",
            st.one_of(st.just('{"alg":"HS256"}'), st.text(max_size=60)),
            st.text(max_size=60),
        ),
    ),
    st.sampled_from(["predict", "admin"]),
)
def test_any_authorization_header_raises_only_auth_error(header: str, scope: str):
    with pytest.raises(AuthError) as caught:
        _VERIFIER.verify(header, scope)
    assert caught.value.status == 401


@settings(max_examples=100, deadline=None)
@given(st.dictionaries(st.sampled_from(list(_claims())), st.none() | st.integers() | st.text(max_size=20)))
def test_any_signed_claim_set_is_either_accepted_whole_or_refused_with_401(overrides: dict):
    token = _hs_signed_by_hand(_claims(**overrides))
    try:
        principal = _VERIFIER.verify(f"Bearer {token}", "predict")
    except AuthError as error:
        assert error.status in (401, 403)
    else:
        assert principal.subject == _claims(**overrides)["sub"] and "predict" in principal.scopes


def test_config_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        _hs_config().secret = "x"  # type: ignore[misc]
