# Copyright (C) 2026 The aio_gnutls_transport authors
# SPDX-License-Identifier: LGPL-2.1-or-later
"""A drop-in for the parts of the stdlib :mod:`ssl` module asyncio code uses.

``from aio_gnutls_transport import ssl`` gives an ``ssl.SSLContext`` and an
``ssl.create_default_context()`` backed by GnuTLS, with ``SSLObject`` (what
``SSLContext.wrap_bio()`` returns) and ``SSLSession`` (a saved client
session) to match.  The constants, enums, ``MemoryBIO`` and the exception
classes are the stdlib's own, so ``except ssl.SSLError`` catches errors
from both implementations.
"""

import ssl as _stdlib_ssl
from ssl import (  # noqa: F401  (re-exported)
    AlertDescription,
    CERT_NONE,
    CERT_OPTIONAL,
    CERT_REQUIRED,
    DER_cert_to_PEM_cert,
    HAS_ALPN,
    HAS_SNI,
    MemoryBIO,
    PEM_cert_to_DER_cert,
    PROTOCOL_TLS_CLIENT,
    PROTOCOL_TLS_SERVER,
    Purpose,
    SSLCertVerificationError,
    SSLEOFError,
    SSLError,
    SSLSyscallError,
    SSLWantReadError,
    SSLWantWriteError,
    SSLZeroReturnError,
    TLSVersion,
    VerifyMode,
)

from ._bio import GnutlsSSLObject
from ._context import DEFAULT_PRIORITY, GnutlsContext
from ._protocol import CHANNEL_BINDING_TYPES, GnutlsSession
from ._gnutls import (
    CertificateVerificationError,
    GnutlsError,
    PrematureTerminationError,
)

__all__ = [
    "SSLContext", "create_default_context",
    "CERT_NONE", "CERT_OPTIONAL", "CERT_REQUIRED", "VerifyMode", "Purpose",
    "TLSVersion",
    "PROTOCOL_TLS_CLIENT", "PROTOCOL_TLS_SERVER",
    "DER_cert_to_PEM_cert", "PEM_cert_to_DER_cert",
    "SSLError", "SSLCertVerificationError", "SSLEOFError",
    "SSLZeroReturnError", "SSLWantReadError", "SSLWantWriteError",
    "SSLSyscallError",
    "SSLObject", "SSLSession", "MemoryBIO", "CHANNEL_BINDING_TYPES",
    "HAS_SNI", "HAS_ALPN", "AlertDescription",
    "GnutlsError", "CertificateVerificationError",
    "PrematureTerminationError", "DEFAULT_PRIORITY",
]

#: The GnuTLS-backed context class (the same class as GnutlsContext).
SSLContext = GnutlsContext

#: What SSLContext.wrap_bio() returns (the same class as GnutlsSSLObject).
SSLObject = GnutlsSSLObject

#: A client's saved session (the same class as GnutlsSession).
SSLSession = GnutlsSession

# The alert numbers an sni_callback may return.
globals().update((alert.name, alert) for alert in AlertDescription)
__all__ += [alert.name for alert in AlertDescription]


def create_default_context(purpose=Purpose.SERVER_AUTH, *, cafile=None,
                           capath=None, cadata=None):
    """A context with secure defaults, like :func:`ssl.create_default_context`.

    For ``Purpose.SERVER_AUTH`` (a client): certificates are required and
    host names checked; the given CA locations are trusted, or the system's
    store when none is given.  For ``Purpose.CLIENT_AUTH`` (a server): no
    client certificate is requested; CA locations, when given, are loaded
    for later use.
    """
    if not isinstance(purpose, _stdlib_ssl._ASN1Object):
        raise TypeError(purpose)
    if purpose == Purpose.SERVER_AUTH:
        context = SSLContext(PROTOCOL_TLS_CLIENT)
    elif purpose == Purpose.CLIENT_AUTH:
        context = SSLContext(PROTOCOL_TLS_SERVER)
    else:
        raise ValueError(purpose)
    if cafile is not None or capath is not None or cadata is not None:
        context.load_verify_locations(cafile, capath, cadata)
    elif context.verify_mode != CERT_NONE:
        context.load_default_certs(purpose)
    return context
