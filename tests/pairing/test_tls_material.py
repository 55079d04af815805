"""Key pairs and the broker's self-signed certificate, checked against real TLS handshakes."""

from __future__ import annotations

import os
import socket
import ssl
import stat
import threading
from datetime import UTC, datetime, timedelta
from ipaddress import ip_address
from pathlib import Path

import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from astraea.pairing.ca import CertificateAuthority
from astraea.pairing.cert_verify import common_name_of
from astraea.tls_material import (
    SERVER_CERT_FILE,
    SERVER_KEY_FILE,
    ensure_keypair,
    ensure_server_certificate,
    generate_keypair,
    single_pem_block,
    write_file,
)

DEVICE_ID = "2TBn-jNESuuHamE2Zo1anA"


def mode_of(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def handshake(
    server_context: ssl.SSLContext, client_context: ssl.SSLContext, server_hostname: str
) -> bytes | None:
    """Run one TLS handshake over 127.0.0.1; return the client certificate the server saw."""
    seen: dict[str, bytes | BaseException | None] = {}
    with socket.create_server(("127.0.0.1", 0)) as listener:
        listener.settimeout(10)

        def serve() -> None:
            try:
                connection, _ = listener.accept()
                with server_context.wrap_socket(connection, server_side=True) as tls:
                    seen["peer"] = tls.getpeercert(binary_form=True)
                    tls.sendall(b"ok")
            except (OSError, ssl.SSLError) as error:
                seen["error"] = error

        server = threading.Thread(target=serve)
        server.start()
        try:
            port = listener.getsockname()[1]
            with (
                socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
                client_context.wrap_socket(raw, server_hostname=server_hostname) as tls,
            ):
                assert tls.recv(2) == b"ok"
        finally:
            server.join(10)
    if "error" in seen:
        raise AssertionError(f"server side failed: {seen['error']!r}")
    peer = seen["peer"]
    assert not isinstance(peer, BaseException)
    return peer


def strict_client(cafile: Path | None = None, cadata: str | None = None) -> ssl.SSLContext:
    """A default client context with the stricter X.509 checks newer Pythons turn on."""
    context = ssl.create_default_context(cafile=cafile, cadata=cadata)
    context.verify_flags |= ssl.VERIFY_X509_STRICT
    return context


# --- key pairs --------------------------------------------------------------------------------


@pytest.mark.parametrize(("algorithm", "jwt_algorithm"), [("rsa", "RS256"), ("ec", "ES256")])
def test_generated_keypair_signs_tokens(algorithm: str, jwt_algorithm: str) -> None:
    private_pem, public_pem = generate_keypair(algorithm)  # type: ignore[arg-type]
    assert private_pem.startswith("-----BEGIN PRIVATE KEY-----")
    assert public_pem.startswith("-----BEGIN PUBLIC KEY-----")
    token = jwt.encode({"a_pa": [".*::.*"]}, private_pem, algorithm=jwt_algorithm)
    assert jwt.decode(token, public_pem, algorithms=[jwt_algorithm]) == {"a_pa": [".*::.*"]}


def test_generated_key_sizes() -> None:
    rsa_key = serialization.load_pem_private_key(generate_keypair("rsa")[0].encode(), None)
    assert isinstance(rsa_key, rsa.RSAPrivateKey) and rsa_key.key_size == 2048
    ec_key = serialization.load_pem_private_key(generate_keypair("ec")[0].encode(), None)
    assert isinstance(ec_key, ec.EllipticCurvePrivateKey)
    assert isinstance(ec_key.curve, ec.SECP256R1)


def test_generated_keypairs_differ() -> None:
    assert generate_keypair("ec") != generate_keypair("ec")


def test_unknown_algorithm_is_refused() -> None:
    with pytest.raises(ValueError, match="dsa"):
        generate_keypair("dsa")  # type: ignore[arg-type]


def test_ensure_keypair_creates_then_reuses(tmp_path: Path) -> None:
    directory = tmp_path / "keys"
    private_path, public_path = ensure_keypair(directory, "housekeeping")
    assert (private_path.name, public_path.name) == (
        "housekeeping_private.pem",
        "housekeeping_public.pem",
    )
    assert mode_of(private_path) == 0o600
    assert mode_of(directory) == 0o700
    private_key = serialization.load_pem_private_key(private_path.read_bytes(), None)
    assert isinstance(private_key, rsa.RSAPrivateKey)
    assert serialization.load_pem_public_key(public_path.read_bytes()) == private_key.public_key()

    before = private_path.read_bytes(), public_path.read_bytes()
    assert ensure_keypair(directory, "housekeeping") == (private_path, public_path)
    assert (private_path.read_bytes(), public_path.read_bytes()) == before
    assert sorted(p.name for p in directory.iterdir()) == [private_path.name, public_path.name]


def test_ensure_keypair_ec(tmp_path: Path) -> None:
    private_path, _ = ensure_keypair(tmp_path, "realm", algorithm="ec")
    key = serialization.load_pem_private_key(private_path.read_bytes(), None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)


def test_ensure_keypair_rederives_a_lost_or_stale_public_key(tmp_path: Path) -> None:
    _, public_path = ensure_keypair(tmp_path, "housekeeping")
    expected = public_path.read_bytes()
    public_path.unlink()
    ensure_keypair(tmp_path, "housekeeping")
    assert public_path.read_bytes() == expected
    public_path.write_text(generate_keypair("rsa")[1])
    ensure_keypair(tmp_path, "housekeeping")
    assert public_path.read_bytes() == expected


def test_ensure_keypair_never_replaces_an_unreadable_private_key(tmp_path: Path) -> None:
    private_path, _ = ensure_keypair(tmp_path, "housekeeping")
    private_path.write_text("garbage")
    with pytest.raises(ValueError):
        ensure_keypair(tmp_path, "housekeeping")
    assert private_path.read_text() == "garbage"


@pytest.mark.parametrize("name", ["", "../escape", "a/b", ".hidden", "with space"])
def test_ensure_keypair_refuses_unsafe_names(tmp_path: Path, name: str) -> None:
    with pytest.raises(ValueError, match="name"):
        ensure_keypair(tmp_path, name)


# --- server certificate -----------------------------------------------------------------------


def test_server_certificate_names_localhost(tmp_path: Path) -> None:
    cert_path, key_path = ensure_server_certificate(tmp_path / "broker")
    assert (cert_path.name, key_path.name) == (SERVER_CERT_FILE, SERVER_KEY_FILE)
    assert mode_of(key_path) == 0o600
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["localhost"]
    assert names.get_values_for_type(x509.IPAddress) == [ip_address("127.0.0.1")]
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert cert.not_valid_after_utc - datetime.now(UTC) > timedelta(days=360)
    ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(cert_path, key_path)


@pytest.mark.parametrize("server_hostname", ["localhost", "127.0.0.1"])
def test_server_certificate_passes_a_verifying_handshake(
    tmp_path: Path, server_hostname: str
) -> None:
    cert_path, key_path = ensure_server_certificate(tmp_path)
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(cert_path, key_path)
    client = strict_client(cafile=cert_path)
    assert client.check_hostname
    assert handshake(server, client, server_hostname) is None


def test_server_certificate_is_refused_for_other_names(tmp_path: Path) -> None:
    cert_path, key_path = ensure_server_certificate(tmp_path)
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(cert_path, key_path)
    with pytest.raises(ssl.SSLCertVerificationError):
        handshake(server, strict_client(cafile=cert_path), "broker.example")


def test_server_certificate_is_reused(tmp_path: Path) -> None:
    cert_path, key_path = ensure_server_certificate(tmp_path)
    before = cert_path.read_bytes(), key_path.read_bytes()
    assert ensure_server_certificate(tmp_path) == (cert_path, key_path)
    assert (cert_path.read_bytes(), key_path.read_bytes()) == before
    assert ensure_server_certificate(tmp_path, ["127.0.0.1"]) == (cert_path, key_path)
    assert (cert_path.read_bytes(), key_path.read_bytes()) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [SERVER_CERT_FILE, SERVER_KEY_FILE]


def test_server_certificate_follows_new_host_names(tmp_path: Path) -> None:
    cert_path, _ = ensure_server_certificate(tmp_path)
    ensure_server_certificate(tmp_path, ["broker.example", "localhost", "::1"])
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["broker.example", "localhost"]
    assert names.get_values_for_type(x509.IPAddress) == [ip_address("::1")]
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "broker.example"


def test_server_certificate_is_replaced_when_its_key_is_lost(tmp_path: Path) -> None:
    cert_path, key_path = ensure_server_certificate(tmp_path)
    before = cert_path.read_bytes()
    key_path.write_text(generate_keypair("ec")[0])
    ensure_server_certificate(tmp_path)
    assert cert_path.read_bytes() != before
    ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(cert_path, key_path)


def test_server_certificate_is_replaced_when_unreadable(tmp_path: Path) -> None:
    cert_path, key_path = ensure_server_certificate(tmp_path)
    cert_path.write_text("garbage")
    ensure_server_certificate(tmp_path)
    ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(cert_path, key_path)


def test_server_certificate_is_renewed_before_it_expires(tmp_path: Path) -> None:
    cert_path, key_path = ensure_server_certificate(tmp_path)
    key = serialization.load_pem_private_key(key_path.read_bytes(), None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    old = x509.load_pem_x509_certificate(cert_path.read_bytes())
    now = datetime.now(UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(old.subject)
        .issuer_name(old.issuer)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now - timedelta(days=300))
        .not_valid_after(now + timedelta(days=10))
    )
    for extension in old.extensions:
        builder = builder.add_extension(extension.value, extension.critical)
    cert_path.write_bytes(
        builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)
    )
    ensure_server_certificate(tmp_path)
    renewed = x509.load_pem_x509_certificate(cert_path.read_bytes())
    assert renewed.not_valid_after_utc - now > timedelta(days=360)


@pytest.mark.parametrize("hostnames", [[], [""], "localhost"])
def test_server_certificate_needs_host_names(tmp_path: Path, hostnames: list[str]) -> None:
    with pytest.raises(ValueError, match="hostnames"):
        ensure_server_certificate(tmp_path, hostnames)


# --- device certificates over TLS -------------------------------------------------------------


def test_device_certificate_authenticates_a_tls_client(tmp_path: Path) -> None:
    """The broker's view: trust the CA, require a client certificate, read the CN."""
    authority = CertificateAuthority.load_or_create(tmp_path / "ca")
    device_key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "whatever")]))
        .sign(device_key, hashes.SHA256())
        .public_bytes(serialization.Encoding.PEM)
        .decode()
    )
    issued = authority.issue_device_certificate(csr, "test", DEVICE_ID)
    device_cert = tmp_path / "device.crt"
    device_cert.write_text(issued.pem)
    device_key_path = tmp_path / "device.key"
    device_key_path.write_bytes(
        device_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )

    cert_path, key_path = ensure_server_certificate(tmp_path / "broker")
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(cert_path, key_path)
    server.load_verify_locations(cadata=authority.ca_cert_pem)
    server.verify_mode = ssl.CERT_REQUIRED
    server.verify_flags |= ssl.VERIFY_X509_STRICT
    client = strict_client(cafile=cert_path)
    client.load_cert_chain(device_cert, device_key_path)

    peer = handshake(server, client, "localhost")
    assert peer is not None
    assert common_name_of(x509.load_der_x509_certificate(peer)) == f"test/{DEVICE_ID}"


# --- files ------------------------------------------------------------------------------------


def test_write_file_keeps_an_existing_file_unless_told(tmp_path: Path) -> None:
    path = tmp_path / "file.pem"
    write_file(path, b"first", private=True, overwrite=False)
    write_file(path, b"second", private=True, overwrite=False)
    assert path.read_bytes() == b"first"
    assert mode_of(path) == 0o600
    write_file(path, b"third", private=False, overwrite=True)
    assert path.read_bytes() == b"third"
    assert mode_of(path) == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["file.pem"]


def test_single_pem_block() -> None:
    body = "-----BEGIN THING-----\nAAAA\n-----END THING-----"
    assert single_pem_block(f"before\n{body}\nafter", "THING") == body.encode()
    for text in ["", body + body, body.replace("THING", "OTHER"), body.split("-----END")[0]]:
        with pytest.raises(ValueError):
            single_pem_block(text, "THING")
