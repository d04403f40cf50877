"""`twinray start --head --tls-cert/--tls-key`: a head whose every connection is TLS, and drivers that find it."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

import runtime as ray
from runtime.exceptions import AuthenticationError
from tests.cluster.conftest import start_head, twinray


@pytest.fixture(scope="module")
def cert_pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and its key (PEM), made with `openssl`."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make a test certificate")
    d = tmp_path_factory.mktemp("tls")
    cert, key = d / "cert.pem", d / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
         "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=twinray-test",
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return cert, key


def test_a_tls_head_serves_drivers_that_verify_it_and_refuses_plain_ones(
    session_root, cert_pair, monkeypatch
) -> None:
    cert, key = cert_pair
    h = start_head(session_root, "--num-cpus", "1", "--tls-cert", str(cert), "--tls-key", str(key))
    ray.init(address="auto")  # on the head's machine: verified with the head's certificate
    try:
        assert ray.get(ray.put(b"y" * (1 << 20))) == b"y" * (1 << 20)
    finally:
        ray.shutdown()
    assert twinray("status", env=h.env).returncode == 0
    from runtime.net.auth import Hello, find_token
    from runtime.net.channel import connect

    with pytest.raises((AuthenticationError, ConnectionError)):  # no TLS: refused
        connect(h.address, find_token(h.session), Hello("driver", "plain"), timeout=2)
    # a driver that trusts another certificate does not connect
    monkeypatch.setenv("TWINRAY_TLS_CA_CERT", str(_another_cert(session_root.parent)))
    with pytest.raises(AuthenticationError, match="TLS"):
        ray.init(address=h.address)
    assert not ray.is_initialized()


def _another_cert(d: Path) -> Path:
    cert, key = d / "another.pem", d / "another.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
         "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=other",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return cert


def test_tls_flags_are_checked(session_root, cert_pair, capsys) -> None:
    from runtime.cli import main

    cert, key = cert_pair
    assert main(["start", "--head", "--tls-cert", str(cert)]) == 2
    assert "go together" in capsys.readouterr().err
    assert main(["start", "--head", "--tls-cert", str(cert), "--tls-key", "/no/such"]) == 2
    assert "no such file" in capsys.readouterr().err
