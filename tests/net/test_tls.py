"""TLS under the handshake: a round trip with a self-signed certificate made in the test."""

from __future__ import annotations

import datetime
import ipaddress
import os
import selectors
import shutil
import subprocess
from pathlib import Path

import pytest

from runtime.exceptions import AuthenticationError
from runtime.net.auth import Hello, new_token
from runtime.net.channel import client_ssl_context, connect, listen, server_ssl_context


def _with_cryptography(cert: Path, key: Path) -> bool:
    try:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID
    except ImportError:
        return False
    k = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "twinray-test")])
    now = datetime.datetime.now(datetime.UTC)
    c = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(k.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(k, hashes.SHA256())
    )
    cert.write_bytes(c.public_bytes(serialization.Encoding.PEM))
    key.write_bytes(
        k.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return True


def _with_openssl(cert: Path, key: Path) -> bool:
    if shutil.which("openssl") is None:
        return False
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
         "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=twinray-test",
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return True


@pytest.fixture(scope="module")
def cert_pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for localhost/127.0.0.1 and its key (PEM files)."""
    d = tmp_path_factory.mktemp("tls")
    cert, key = d / "cert.pem", d / "key.pem"
    if not (_with_cryptography(cert, key) or _with_openssl(cert, key)):
        pytest.skip("no way to make a test certificate: neither `cryptography` nor `openssl`")
    return cert, key


def test_tls_round_trip(cert_pair, tmp_path) -> None:
    cert, key = cert_pair
    token = new_token()
    with listen("127.0.0.1", 0, token, ssl_context=server_ssl_context(cert, key)) as lst:
        ch, hello = connect(
            lst.address,
            token,
            Hello("driver", "d"),
            timeout=30,
            ssl_context=client_ssl_context(cert),
        )
        srv, peer = lst.accept(timeout=30)
        assert ch.tls and srv.tls and peer.id == "d"
        big = b"x" * (3 << 20)  # several TLS records, larger than the channel buffer
        ch.send_many([1, big, {"k": "v"}])
        got: list = []
        while len(got) < 3:
            got += srv.recv_many()
        assert got == [1, big, {"k": "v"}]
        srv.setblocking(False)  # and driven by selectors
        sel = selectors.DefaultSelector()
        sel.register(srv, selectors.EVENT_READ)
        ch.send_many([f"m{i}" for i in range(2000)])
        got = []
        while len(got) < 2000:
            assert sel.select(timeout=30)
            got += srv.recv_many()
        assert got == [f"m{i}" for i in range(2000)]
        srv.send("back")
        assert ch.recv_many() == ["back"]
        sel.close()
        ch.close()
        srv.close()


def test_tls_client_that_does_not_trust_the_server_fails(cert_pair) -> None:
    cert, key = cert_pair
    token = new_token()
    ctx = server_ssl_context(cert, key)
    with (
        listen("127.0.0.1", 0, token, ssl_context=ctx) as lst,
        pytest.raises(AuthenticationError, match="TLS"),
    ):
        connect(
            lst.address, token, Hello("node", "n"), timeout=30, ssl_context=client_ssl_context()
        )


def test_plain_client_against_a_tls_listener_fails(cert_pair) -> None:
    cert, key = cert_pair
    token = new_token()
    ctx = server_ssl_context(cert, key)
    with listen("127.0.0.1", 0, token, ssl_context=ctx) as lst, pytest.raises(AuthenticationError):
        connect(lst.address, token, Hello("node", "n"), timeout=1)
    with listen("127.0.0.1", 0, token) as plain, pytest.raises(AuthenticationError):
        connect(
            plain.address,
            token,
            Hello("node", "n"),
            timeout=5,
            ssl_context=client_ssl_context(cert),
        )


def test_tls_still_requires_the_token(cert_pair) -> None:
    cert, key = cert_pair
    ctx = server_ssl_context(cert, key)
    with (
        listen("127.0.0.1", 0, new_token(), ssl_context=ctx) as lst,
        pytest.raises(AuthenticationError, match="wrong token"),
    ):
        connect(
            lst.address,
            new_token(),
            Hello("node", "n"),
            timeout=30,
            ssl_context=client_ssl_context(cert),
        )


def test_mutual_tls_requires_a_client_certificate(cert_pair) -> None:
    cert, key = cert_pair
    token = new_token()
    ctx = server_ssl_context(cert, key, ca=cert)
    with listen("127.0.0.1", 0, token, ssl_context=ctx) as lst:
        ch, _ = connect(
            lst.address,
            token,
            Hello("node", "n"),
            timeout=30,
            ssl_context=client_ssl_context(cert, cert=cert, key=key),
        )
        srv, _ = lst.accept(timeout=30)
        ch.close()
        srv.close()
        with pytest.raises(AuthenticationError):
            connect(
                lst.address,
                token,
                Hello("node", "n"),
                timeout=30,
                ssl_context=client_ssl_context(cert),
            )


def test_bulk_transfer_over_tls(cert_pair) -> None:
    """Objects pulled through TLS (no sendfile there: plain sends of memoryview slices)."""
    from runtime.net.bulk import BulkClient, Destination, ObjectServer, Source

    cert, key = cert_pair
    token = new_token()
    objects = {i: os.urandom(size) for i, size in enumerate([0, 1, 70_000, 300_001, 2_000_003], 1)}

    def lookup(oid: int) -> Source | None:
        data = objects.get(oid)
        return None if data is None else Source(memoryview(data))

    def into(n: int) -> Destination:
        return Destination(memoryview(bytearray(n)), lambda: None)

    server = ObjectServer(lookup, token, ssl_context=server_ssl_context(cert, key))
    try:
        with BulkClient(token, Hello("node", "b"), ssl_context=client_ssl_context(cert)) as client:
            for oid, data in objects.items():
                assert bytes(client.pull(server.address, oid, into).view) == data
            got = client.pull_many(server.address, [5, 3, 1, 2, 4] * 3, into, parallel=2)
            assert [bytes(d.view) for d in got] == [objects[i] for i in [5, 3, 1, 2, 4] * 3]
    finally:
        server.close()


def _pump_non_blocking_send(srv, ch) -> None:
    """The server side sends 16 MiB non-blocking (queued, then flushed on EVENT_WRITE) while
    the client reads on a thread."""
    import threading

    payload = [os.urandom(1 << 20) for _ in range(16)]
    got: list = []
    reader = threading.Thread(
        target=lambda: [got.extend(ch.recv_many()) for _ in iter(lambda: len(got) < 16, False)]
    )
    srv.setblocking(False)
    done = srv.send_many(payload)
    reader.start()
    sel = selectors.DefaultSelector()
    sel.register(srv, selectors.EVENT_WRITE)
    while not done:
        assert sel.select(timeout=30)
        done = srv.flush()
    sel.close()
    reader.join(60)
    assert got == payload


def test_non_blocking_sends_queue_and_flush_plain_and_tls(cert_pair) -> None:
    cert, key = cert_pair
    token = new_token()
    for server_ctx, client_ctx in [
        (None, None),
        (server_ssl_context(cert, key), client_ssl_context(cert)),
    ]:
        with listen("127.0.0.1", 0, token, ssl_context=server_ctx) as lst:
            ch, _ = connect(
                lst.address, token, Hello("node", "n"), timeout=30, ssl_context=client_ctx
            )
            srv, _ = lst.accept(timeout=30)
            _pump_non_blocking_send(srv, ch)
            ch.close()
            srv.close()
