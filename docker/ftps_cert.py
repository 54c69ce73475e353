"""Make the demo FTPS server's certificate, signed by a private CA that Airflow workers trust.

    python docker/ftps_cert.py /certs            # names from FTPS_CERT_NAMES, default "ftps,localhost"
    python docker/ftps_cert.py /certs ftps localhost 127.0.0.1

Writes, in the given folder:

* ``ca.pem``: the CA certificate (public). The shop connection's ``ca_file`` extra points at it,
  so TLS verification stays on for the demo as it must in production;
* ``pure-ftpd.pem``: the server's private key followed by its certificate, the file pure-ftpd
  reads (``/etc/ssl/private/pure-ftpd.pem``), readable by root only.

The CA's private key is never written: nothing else can be signed with it. An existing pair is
kept while it is valid for 30 more days and covers the requested names, so the workers' trusted
CA does not change on every ``docker compose up``. Needs only ``cryptography`` (an Airflow
dependency).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import sys
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_FILE = "ca.pem"
SERVER_FILE = "pure-ftpd.pem"
VALID_DAYS = 825
RENEW_BEFORE = dt.timedelta(days=30)


def _san(names: list[str]) -> x509.SubjectAlternativeName:
    entries: list[x509.GeneralName] = []
    for name in names:
        try:
            entries.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            entries.append(x509.DNSName(name))
    return x509.SubjectAlternativeName(entries)


def make_pair(names: list[str], *, now: dt.datetime | None = None) -> tuple[bytes, bytes]:
    """Return (CA certificate PEM, server key + certificate PEM) for a server known by ``names``."""
    if not names:
        raise ValueError("give at least one DNS name or IP address for the FTPS server")
    now = now or dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Passerelle demo CA")])
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=VALID_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ca_ski, critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    server_key = ec.generate_private_key(ec.SECP256R1())
    server_cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
        .issuer_name(ca_name)
        .public_key(server_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=VALID_DAYS))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=True,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(_san(names), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(server_key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key_pem = server_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    server_pem = key_pem + server_cert.public_bytes(serialization.Encoding.PEM)
    return ca_cert.public_bytes(serialization.Encoding.PEM), server_pem


def still_good(folder: Path, names: list[str], *, now: dt.datetime | None = None) -> bool:
    """True when ``folder`` already holds a pair valid for 30 more days that covers ``names``."""
    now = now or dt.datetime.now(dt.UTC)
    try:
        server = x509.load_pem_x509_certificate((folder / SERVER_FILE).read_bytes())
        ca = x509.load_pem_x509_certificate((folder / CA_FILE).read_bytes())
        server.verify_directly_issued_by(ca)
    except (FileNotFoundError, ValueError, TypeError, InvalidSignature):
        return False
    if server.not_valid_after_utc - now < RENEW_BEFORE:
        return False
    san = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    covered = {str(v) for v in san.get_values_for_type(x509.DNSName)}
    covered |= {str(v) for v in san.get_values_for_type(x509.IPAddress)}
    return set(names) <= covered


def write_pair(folder: Path, names: list[str]) -> bool:
    """Write a new pair into ``folder`` unless a good one is there; return True if written."""
    folder.mkdir(parents=True, exist_ok=True)
    if still_good(folder, names):
        return False
    ca_pem, server_pem = make_pair(names)
    server_path = folder / SERVER_FILE
    tmp = server_path.with_suffix(".tmp")
    tmp.write_bytes(server_pem)
    os.chmod(tmp, 0o600)
    os.replace(tmp, server_path)
    ca_path = folder / CA_FILE
    ca_path.write_bytes(ca_pem)
    os.chmod(ca_path, 0o644)
    return True


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args:
        print("usage: ftps_cert.py FOLDER [NAME ...]  (names default to $FTPS_CERT_NAMES)", file=sys.stderr)
        return 2
    folder = Path(args[0])
    names = args[1:] or [n.strip() for n in os.environ.get("FTPS_CERT_NAMES", "ftps,localhost").split(",") if n.strip()]
    written = write_pair(folder, names)
    print(f"{'wrote' if written else 'kept'} {folder / CA_FILE} and {folder / SERVER_FILE} for {', '.join(names)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
