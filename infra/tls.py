"""A certificate authority for this machine, and the certificates the local secure broker uses.

``crowdsound broker up --secure`` needs a TLS certificate its clients can verify. It is made
here, once, into ``<state>/security/tls/`` (git-ignored, files 0600): a CA of its own (its
private key never leaves this folder), the broker's certificate for ``localhost`` and
``127.0.0.1`` signed by it, and — for mutual TLS — a client certificate per principal. Clients
trust ``ca.crt`` (``ssl.ca.location``); nothing is ever committed.

Made with the ``cryptography`` package rather than the ``openssl`` command: the same code on
every platform and OpenSSL version (no ``-addext`` / config-file differences between 1.1 and
3.x), keys written straight as PKCS#8 (what Kafka's PEM key store reads), and nothing to parse
from a subprocess.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

__all__ = ["TlsFiles", "ensure_ca", "issue_client_certificate", "issue_server_certificate", "write_private"]

_CA_DAYS = 3650
_LEAF_DAYS = 825  # what browsers and most TLS stacks still accept for a leaf


@dataclass(frozen=True)
class TlsFiles:
    """The PEM files of one certificate: ``key`` (PKCS#8, unencrypted, 0600) and ``cert``."""

    key: Path
    cert: Path


def write_private(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` readable by the owner only (0600), atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    os.chmod(partial, 0o600)
    partial.replace(path)


def _key():
    from cryptography.hazmat.primitives.asymmetric import ec

    return ec.generate_private_key(ec.SECP256R1())


def _key_pem(key) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _name(common_name: str):
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _load(files: TlsFiles):
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    return (serialization.load_pem_private_key(files.key.read_bytes(), password=None),
            x509.load_pem_x509_certificate(files.cert.read_bytes()))


def ensure_ca(folder: Path, *, name: str = "crowdsound local CA") -> TlsFiles:
    """The machine's CA in ``folder`` (``ca.key``, ``ca.crt``), made on first use."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization

    files = TlsFiles(folder / "ca.key", folder / "ca.crt")
    if files.key.is_file() and files.cert.is_file():
        return files
    key = _key()
    now = dt.datetime.now(dt.timezone.utc)
    subject = _name(f"{name} ({os.uname().nodename})")
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject).issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=_CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                     crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    write_private(files.key, _key_pem(key))
    write_private(files.cert, cert.public_bytes(serialization.Encoding.PEM))
    return files


def _issue(ca: TlsFiles, common_name: str, *, hosts: tuple[str, ...], server: bool, out: TlsFiles) -> TlsFiles:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.x509.oid import ExtendedKeyUsageOID

    ca_key, ca_cert = _load(ca)
    key = _key()
    now = dt.datetime.now(dt.timezone.utc)
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    usage = [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH] if server \
        else [ExtendedKeyUsageOID.CLIENT_AUTH]
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name)).issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(min(now + dt.timedelta(days=_LEAF_DAYS), ca_cert.not_valid_after_utc))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage(usage), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
    )
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    cert = builder.sign(ca_key, hashes.SHA256())
    write_private(out.key, _key_pem(key))
    write_private(out.cert, cert.public_bytes(serialization.Encoding.PEM) + ca.cert.read_bytes())
    return out


def issue_server_certificate(ca: TlsFiles, folder: Path, *, name: str = "broker",
                             hosts: tuple[str, ...] = ("localhost", "127.0.0.1")) -> TlsFiles:
    """A server certificate for ``hosts`` signed by ``ca`` (``<name>.key``, ``<name>.crt`` with
    the CA appended as its chain), made on first use."""
    out = TlsFiles(folder / f"{name}.key", folder / f"{name}.crt")
    if out.key.is_file() and out.cert.is_file():
        return out
    return _issue(ca, hosts[0], hosts=hosts, server=True, out=out)


def issue_client_certificate(ca: TlsFiles, folder: Path, principal: str) -> TlsFiles:
    """A client certificate whose subject is ``CN=<principal>``, for mutual TLS (made on first use)."""
    out = TlsFiles(folder / f"{principal}.key", folder / f"{principal}.crt")
    if out.key.is_file() and out.cert.is_file():
        return out
    return _issue(ca, principal, hosts=(), server=False, out=out)
