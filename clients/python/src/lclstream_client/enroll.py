"""Enrollment: from a one-time token to a certificate directory, with nothing else to hand."""
from __future__ import annotations

import hashlib
import os
import re
import socket
import ssl
from pathlib import Path
from urllib.parse import urlparse

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from lclstream.ca.v1 import ca_pb2, ca_pb2_grpc

from .client import LclstreamError

_TOKEN = re.compile(r"^lcls1\.[A-Za-z0-9_-]{43}\.([0-9a-f]{64})$")


def _presented_certificates(url: str) -> list[bytes]:
    """The certificates the server presents (DER), read without verifying them: the token verifies them next."""
    parsed = urlparse(url)
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.set_alpn_protocols(["h2"])
    with socket.create_connection((parsed.hostname, parsed.port or 443), timeout=10) as raw:
        with context.wrap_socket(raw, server_hostname=parsed.hostname) as tls:
            chain = tls._sslobj.get_unverified_chain()  # noqa: SLF001 (public from Python 3.13)
            return [c.public_bytes(ssl._ssl.ENCODING_DER) if hasattr(c, "public_bytes") else c for c in chain or []]


def enroll(enroll_url: str, token: str, cert_dir: str | os.PathLike, ca_pem: bytes | None = None) -> Path:
    """Enrolls with `token` at the CA's enrollment endpoint and writes ca.crt, tls.crt and tls.key to `cert_dir`.

    The token pins the CA by its fingerprint: the CA certificate the server
    presents (or `ca_pem`) is checked against it before the request is sent.
    """
    match = _TOKEN.match(token.strip())
    if not match:
        raise LclstreamError("INVALID_ARGUMENT", "that is not an lclstream enrollment token (it starts with lcls1.); ask an admin for one")
    pinned = match.group(1)
    candidates = [x509.load_pem_x509_certificate(ca_pem)] if ca_pem else [x509.load_der_x509_certificate(der) for der in _presented_certificates(enroll_url)]
    ca = next((c for c in candidates if hashlib.sha256(c.public_bytes(serialization.Encoding.DER)).hexdigest() == pinned), None)
    if ca is None:
        raise LclstreamError("FAILED_PRECONDITION", f"the server at {enroll_url} does not present the CA this token was made by; check the URL, or pass ca_pem")
    ca_bytes = ca.public_bytes(serialization.Encoding.PEM)

    key = ec.generate_private_key(ec.SECP256R1())
    csr = x509.CertificateSigningRequestBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "lclstream")])).sign(key, hashes.SHA256())
    target = urlparse(enroll_url).netloc
    with grpc.secure_channel(target, grpc.ssl_channel_credentials(root_certificates=ca_bytes)) as channel:
        try:
            response = ca_pb2_grpc.CertificateAuthorityServiceStub(channel).Enroll(
                ca_pb2.EnrollRequest(token=token.strip(), csr_pem=csr.public_bytes(serialization.Encoding.PEM).decode()), timeout=30
            )
        except grpc.RpcError as error:
            raise LclstreamError.from_rpc(error) from None
    out = Path(cert_dir).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    (out / "ca.crt").write_bytes(ca_bytes)
    (out / "tls.crt").write_text(response.certificate_chain_pem)
    key_path = out / "tls.key"
    key_path.touch(mode=0o600)
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return out
