# Copyright (C) 2026 The aio_gnutls_transport authors
# SPDX-License-Identifier: LGPL-2.1-or-later
"""asyncio TLS transports backed by GnuTLS.

Install the event loop policy, then pass a :class:`GnutlsContext` wherever
asyncio takes ``ssl=``::

    import asyncio
    from aio_gnutls_transport import GnutlsEventLoopPolicy, ssl

    asyncio.set_event_loop_policy(GnutlsEventLoopPolicy())
    ctx = ssl.create_default_context()
    reader, writer = await asyncio.open_connection("example.org", 443,
                                                   ssl=ctx)

Stdlib :class:`ssl.SSLContext` objects keep working on the same loop.
Without the policy (asyncio's own loop, uvloop) a GnutlsContext still
works: the loop's TLS code drives it through ``wrap_bio()``.
"""

from ._gnutls import (
    CertificateVerificationError,
    GnutlsError,
    PrematureTerminationError,
)
from ._config import PolicyError
from ._context import DEFAULT_PRIORITY, GnutlsContext
from ._protocol import (
    GnutlsHandshakeProtocol,
    GnutlsObject,
    GnutlsSession,
    GnutlsTransport,
)
from ._bio import GnutlsSSLObject
from ._loop import GnutlsEventLoop, GnutlsEventLoopPolicy
from . import ssl
from . import _gnutls

#: The version of this package (as built).
__version__ = getattr(_gnutls, "PACKAGE_VERSION", "unknown")


def load_pkcs11_module(path):
    """Use the PKCS#11 module (a shared library) at *path* in this process.

    The modules registered in p11-kit's configuration are loaded anyway;
    this adds one without registering it system-wide, for an application
    that brings its own (a vendor's smartcard or HSM library).  Its tokens
    can then be named by ``pkcs11:`` URLs in ``load_cert_chain()`` and
    ``load_verify_locations()``.  Raises GnutlsError naming *path* when the
    module cannot be loaded.
    """
    _gnutls.pkcs11_add_provider(path)


__all__ = [
    "GnutlsContext",
    "GnutlsError",
    "CertificateVerificationError",
    "PrematureTerminationError",
    "GnutlsEventLoopPolicy",
    "GnutlsEventLoop",
    "GnutlsObject",
    "GnutlsSSLObject",
    "GnutlsSession",
    "GnutlsHandshakeProtocol",
    "GnutlsTransport",
    "DEFAULT_PRIORITY",
    "PolicyError",
    "load_pkcs11_module",
    "ssl",
]
