"""The local CA and the per-identity mTLS certificates `agora up` creates."""

from __future__ import annotations

import ipaddress
from pathlib import Path

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from agora_cli.certs import ensure_certificates


def test_each_identity_gets_a_spiffe_certificate_signed_by_the_city_ca(tmp_path: Path) -> None:
    ensure_certificates(tmp_path, ["catalog", "cli"])
    ca = x509.load_pem_x509_certificate((tmp_path / "ca.pem").read_bytes())
    cert = x509.load_pem_x509_certificate((tmp_path / "catalog.pem").read_bytes())

    cert.verify_directly_issued_by(ca)
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.UniformResourceIdentifier) == ["spiffe://agora.local/catalog"]
    assert names.get_values_for_type(x509.DNSName) == ["localhost"]
    assert names.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]
    usages = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert set(usages) == {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}
    assert (tmp_path / "catalog.key").stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "cli.key").exists()


def test_a_second_start_keeps_the_ca_and_adds_only_missing_identities(tmp_path: Path) -> None:
    ensure_certificates(tmp_path, ["catalog"])
    ca_before = (tmp_path / "ca.pem").read_bytes()
    catalog_before = (tmp_path / "catalog.pem").read_bytes()

    ensure_certificates(tmp_path, ["catalog", "orders"])

    assert (tmp_path / "ca.pem").read_bytes() == ca_before
    assert (tmp_path / "catalog.pem").read_bytes() == catalog_before
    orders = x509.load_pem_x509_certificate((tmp_path / "orders.pem").read_bytes())
    orders.verify_directly_issued_by(x509.load_pem_x509_certificate(ca_before))
