"""TLS for the exporter server: an ``ssl.SSLContext`` from PEM files, client certificates optional.

The parameters are prometheus-client's ``start_http_server`` ones. Python's
``ssl`` reports a bad file as ``[SSL] PEM lib``; the checks here say which
file is wrong and why, as ``ValueError``, before anything is bound.
"""

from __future__ import annotations

import os
import re
import ssl
from typing import TypeAlias

__all__ = ["StrPath", "server_tls_context"]

StrPath: TypeAlias = "str | os.PathLike[str]"

_CERTIFICATE = b"-----BEGIN CERTIFICATE-----"
_PRIVATE_KEY = re.compile(rb"-----BEGIN (?:(?:RSA|EC|DSA) )?PRIVATE KEY-----")
_ENCRYPTED = re.compile(rb"-----BEGIN ENCRYPTED PRIVATE KEY-----|Proc-Type: 4,ENCRYPTED")
# Certificates, chains and CA bundles are small; a bigger file is not one of them.
_MAX_PEM_BYTES = 16 * 1024 * 1024


class _EncryptedKey(Exception):
    """OpenSSL asked for a passphrase (the key is encrypted)."""


def _no_passphrase() -> bytes:
    # Without a callback OpenSSL would prompt on the terminal and block.
    raise _EncryptedKey


def _read_pem(role: str, path: str) -> bytes:
    try:
        with open(path, "rb") as handle:
            data = handle.read(_MAX_PEM_BYTES + 1)
    except OSError as exc:
        raise ValueError(f"cannot read the {role} {path!r}: {exc.strerror or exc}") from None
    if len(data) > _MAX_PEM_BYTES:
        raise ValueError(f"the {role} {path!r} is larger than {_MAX_PEM_BYTES} bytes; "
                         "it is not a PEM file")
    return data


def server_tls_context(certfile: StrPath | None, keyfile: StrPath | None = None, *,
                       client_cafile: StrPath | None = None,
                       client_capath: StrPath | None = None,
                       client_auth_required: bool = False) -> ssl.SSLContext | None:
    """The server's TLS context, or None (plain HTTP) when ``certfile`` is None.

    ``certfile``: the PEM certificate (chain, leaf first); ``keyfile``: its
    unencrypted PEM private key (None: the key is in ``certfile``).
    ``client_cafile`` / ``client_capath``: PEM CA certificates (a file, or an
    OpenSSL hashed directory) that sign client certificates: a client that
    presents one must present a valid one; with ``client_auth_required`` every
    client must. TLS 1.2 is the minimum. Any problem raises ``ValueError``
    naming the file and the reason.
    """
    if certfile is None:
        given = [name for name, value in (("keyfile", keyfile), ("client_cafile", client_cafile),
                                          ("client_capath", client_capath))
                 if value is not None]
        if client_auth_required:
            given.append("client_auth_required")
        if given:
            raise ValueError(f"{', '.join(given)} given without certfile; TLS needs a server "
                             "certificate (certfile) and its key (keyfile)")
        return None
    if client_auth_required and client_cafile is None and client_capath is None:
        raise ValueError("client_auth_required needs client_cafile or client_capath: the CA "
                         "certificates that client certificates must be signed by")
    cert = os.fspath(certfile)
    key = os.fspath(keyfile) if keyfile is not None else None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    _load_certificate(context, cert, key)
    if client_cafile is not None or client_capath is not None:
        _load_client_cas(context, client_cafile, client_capath)
        context.verify_mode = ssl.CERT_REQUIRED if client_auth_required else ssl.CERT_OPTIONAL
    return context


def _load_certificate(context: ssl.SSLContext, cert: str, key: str | None) -> None:
    if _CERTIFICATE not in _read_pem("TLS certificate file", cert):
        raise ValueError(f"the TLS certificate file {cert!r} holds no PEM certificate "
                         f"({_CERTIFICATE.decode()})")
    key_role = "TLS key file" if key is not None else "TLS certificate file"
    key_path = key if key is not None else cert
    key_data = _read_pem(key_role, key_path)
    if _ENCRYPTED.search(key_data):
        raise ValueError(f"the private key in the {key_role} {key_path!r} is encrypted; give "
                         "an unencrypted key (protect it with file permissions)")
    if not _PRIVATE_KEY.search(key_data):
        hint = "" if key is not None else " (pass the key's file as keyfile)"
        raise ValueError(f"the {key_role} {key_path!r} holds no PEM private key{hint}")
    try:
        context.load_cert_chain(cert, key, password=_no_passphrase)
    except _EncryptedKey:
        raise ValueError(f"the private key in the {key_role} {key_path!r} is encrypted; give "
                         "an unencrypted key (protect it with file permissions)") from None
    except ssl.SSLError as exc:
        if exc.reason == "KEY_VALUES_MISMATCH":
            raise ValueError(f"the private key in the {key_role} {key_path!r} does not match "
                             f"the certificate in {cert!r}") from None
        raise ValueError(f"cannot load the TLS certificate {cert!r} with the key {key_path!r}: "
                         f"{exc.reason or exc}") from None


def _load_client_cas(context: ssl.SSLContext, cafile: StrPath | None,
                     capath: StrPath | None) -> None:
    cafile = os.fspath(cafile) if cafile is not None else None
    capath = os.fspath(capath) if capath is not None else None
    if cafile is not None and _CERTIFICATE not in _read_pem("TLS client CA file", cafile):
        raise ValueError(f"the TLS client CA file {cafile!r} holds no PEM certificate "
                         f"({_CERTIFICATE.decode()})")
    if capath is not None:
        if not os.path.isdir(capath):
            raise ValueError(f"the TLS client CA directory {capath!r} is not a directory")
        if not os.access(capath, os.R_OK | os.X_OK):
            raise ValueError(f"cannot read the TLS client CA directory {capath!r}: "
                             "permission denied")
    try:
        context.load_verify_locations(cafile=cafile, capath=capath)
    except ssl.SSLError as exc:
        where = f"file {cafile!r}" if cafile is not None else f"directory {capath!r}"
        raise ValueError(f"cannot load the TLS client CA {where}: {exc.reason or exc}") from None
