"""Transport security of the stand-in server: TLS files, bearer tokens, and exposure warnings.

The server binds 127.0.0.1 by default. Bound to any other address it serves whoever can reach the
port; :func:`exposure_warnings` says so when TLS (``--tls-cert``/``--tls-key``) or a token
(``--token-file``, or the ``FACEHALLU_SERVING_TOKEN`` environment variable) is missing.

Example:
    >>> exposure_warnings("0.0.0.0", tls=False, token=False)[0][:40]
    'warning: serving on 0.0.0.0 without TLS:'
    >>> exposure_warnings("127.0.0.1", tls=False, token=False)
    []
"""

from __future__ import annotations

import hmac
import ipaddress
import os
from pathlib import Path

TOKEN_ENV = "FACEHALLU_SERVING_TOKEN"


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address or ``localhost``) only reaches this machine."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:  # a host name: it may resolve to anything
        return False


def exposure_warnings(host: str, tls: bool, token: bool) -> list[str]:
    """Warning lines for serving on ``host`` without TLS or without a token (none on loopback)."""
    if is_loopback(host):
        return []
    lines = []
    if not tls:
        lines.append(f"warning: serving on {host} without TLS: requests and images cross the "
                     f"network in clear text; pass --tls-cert and --tls-key")
    if not token:
        lines.append(f"warning: serving on {host} without a token: anyone who reaches the port "
                     f"can use it; pass --token-file (or set {TOKEN_ENV})")
    return lines


def read_pem(path, what: str) -> bytes:
    """The bytes of a PEM file, with an error naming the file and what it should hold."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as err:
        raise OSError(f"{what} {path}: cannot read ({err.strerror or err})") from err
    if b"-----BEGIN " not in data:
        raise ValueError(f"{what} {path}: expected a PEM file (-----BEGIN ...), found "
                         f"{len(data)} bytes of something else")
    return data


def read_token(path=None) -> str | None:
    """The bearer token from ``path`` (first line) or ``$FACEHALLU_SERVING_TOKEN``; ``None``."""
    if path is not None:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as err:
            raise OSError(f"token file {path}: cannot read ({err})") from err
        token = text.strip().splitlines()[0].strip() if text.strip() else ""
        source = f"token file {path}"
    else:
        token = os.environ.get(TOKEN_ENV, "").strip()
        if not token:
            return None
        source = f"${TOKEN_ENV}"
    if len(token) < 16 or not token.isascii() or not token.isprintable() or " " in token:
        raise ValueError(f"{source}: expected at least 16 printable ASCII characters without "
                         f"spaces, found {len(token)} characters")
    return token


def token_matches(header: str | bytes | None, token: str) -> bool:
    """Whether an ``Authorization`` header value is ``Bearer TOKEN`` (constant-time compare)."""
    if header is None:
        return False
    if isinstance(header, str):
        header = header.encode("latin-1", "replace")
    return hmac.compare_digest(header, f"Bearer {token}".encode())


def server_tls_context(cert_file, key_file):
    """An ``ssl.SSLContext`` for the REST server from a PEM certificate chain and key."""
    import ssl

    read_pem(cert_file, "TLS certificate")
    read_pem(key_file, "TLS key")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(str(cert_file), str(key_file))
    except ssl.SSLError as err:
        raise ValueError(f"TLS certificate {cert_file} / key {key_file}: cannot use them "
                         f"({err.reason or err})") from err
    return context


def client_tls_context(ca_file=None):
    """An ``ssl.SSLContext`` that checks the server against ``ca_file`` (or the system CAs)."""
    import ssl

    if ca_file is not None:
        read_pem(ca_file, "CA certificate")
    return ssl.create_default_context(cafile=None if ca_file is None else str(ca_file))
