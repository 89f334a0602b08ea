"""`llmops serve` and `llmops token` as a user runs them: a real uvicorn process on 127.0.0.1 in a fresh home with no
configuration. /healthz answers before any model exists, /readyz says not ready, the local signing key is created
private, a token from `llmops token` is accepted and a forged one is not; SIGTERM stops the server."""

from __future__ import annotations

import os
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.integration

LLMOPS = [sys.executable, "-m", "airflow_provider_llmops.cli"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW__LLMOPS__")}
    env.update({"LLMOPS_HOME": str(home), "HF_HUB_OFFLINE": "1", "AIRFLOW__LLMOPS__SERVE_POLL_INTERVAL": "1"})
    env.pop("AIRFLOW_HOME", None)
    return env


def test_serve_starts_with_no_configuration_and_checks_tokens(tmp_path: Path):
    home, port = tmp_path / "home", _free_port()
    home.mkdir()
    server = subprocess.Popen(
        [*LLMOPS, "serve", "--port", str(port)], env=_env(home), cwd=tmp_path,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                health = httpx.get(f"{base}/healthz", timeout=2)
                break
            except httpx.TransportError:
                assert server.poll() is None, server.stdout.read() if server.stdout else ""
                time.sleep(0.2)
        else:
            raise AssertionError("llmops serve did not answer /healthz within 60 s")
        assert health.status_code == 200 and health.json() == {"status": "ok"}
        ready = httpx.get(f"{base}/readyz", timeout=5)
        assert ready.status_code == 503 and ready.json()["serving"] == {}

        key = home / "serving" / "jwt.key"
        assert stat.S_IMODE(key.stat().st_mode) == 0o600 and stat.S_IMODE(key.parent.stat().st_mode) == 0o700
        minted = subprocess.run(
            [*LLMOPS, "token", "--sub", "tester", "--scope", "predict"], env=_env(home), cwd=tmp_path,
            capture_output=True, text=True, timeout=60, check=True,
        )  # fmt: skip
        token = minted.stdout.strip()
        assert token.count(".") == 2 and key.read_text().strip() not in minted.stdout + minted.stderr
        answer = httpx.post(f"{base}/v1/predict", json={"text": "hello"}, timeout=10,
                            headers={"Authorization": f"Bearer {token}"})  # fmt: skip
        assert answer.status_code == 503 and "no model version is loaded" in answer.json()["detail"]
        forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
        refused = httpx.post(f"{base}/v1/predict", json={"text": "hello"}, timeout=10,
                             headers={"Authorization": f"Bearer {forged}"})  # fmt: skip
        assert refused.status_code == 401 and "bad_signature" in refused.headers["www-authenticate"]
        assert httpx.post(f"{base}/v1/admin/reload", headers={"Authorization": f"Bearer {token}"}).status_code == 403
        docs = httpx.get(f"{base}/openapi.json", timeout=5).json()
        assert {"/v1/predict", "/v1/generate", "/healthz", "/readyz", "/metrics"} <= set(docs["paths"])
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        out, _ = server.communicate(timeout=30)
    # uvicorn shuts down gracefully, then re-raises the signal it caught (exit status -SIGTERM)
    assert server.returncode in (0, -signal.SIGTERM), out
    assert f"http://127.0.0.1:{port}" in out
    assert token not in out  # tokens never reach the log


def test_token_refuses_unknown_scopes_and_bad_ttl(tmp_path: Path):
    for args, message in ((["--scope", "root"], "invalid choice"), (["--ttl", "0"], "ttl_s")):
        done = subprocess.run(
            [*LLMOPS, "token", "--sub", "x", *args], env=_env(tmp_path), cwd=tmp_path, capture_output=True,
            text=True, timeout=60,
        )  # fmt: skip
        assert done.returncode == 2 and message in done.stderr, done.stderr


def _self_signed(directory: Path) -> tuple[Path, Path]:
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    key_path.chmod(0o600)
    return cert_path, key_path


def test_serve_speaks_tls_when_a_certificate_and_key_are_configured(tmp_path: Path):
    home, port = tmp_path / "home", _free_port()
    home.mkdir()
    cert, key = _self_signed(tmp_path)
    env = {**_env(home), "AIRFLOW__LLMOPS__SERVE_TLS_CERT": str(cert), "AIRFLOW__LLMOPS__SERVE_TLS_KEY": str(key)}
    server = subprocess.Popen(
        [*LLMOPS, "serve", "--port", str(port)], env=env, cwd=tmp_path, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                health = httpx.get(f"https://127.0.0.1:{port}/healthz", verify=str(cert), timeout=2)
                break
            except httpx.TransportError:
                assert server.poll() is None, server.stdout.read() if server.stdout else ""
                time.sleep(0.2)
        else:
            raise AssertionError("no HTTPS answer within 60 s")
        assert health.status_code == 200
        with pytest.raises(httpx.TransportError):  # plain HTTP is not served on the TLS port
            httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5).raise_for_status()
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.communicate(timeout=30)


def test_a_half_configured_tls_stops_serve_at_start(tmp_path: Path):
    env = {**_env(tmp_path), "AIRFLOW__LLMOPS__SERVE_TLS_CERT": str(tmp_path / "cert.pem")}
    done = subprocess.run([*LLMOPS, "serve", "--port", str(_free_port())], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 2 and "serve_tls_cert and serve_tls_key must be set together" in done.stderr
