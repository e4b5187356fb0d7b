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
"""

from ._gnutls import (
    CertificateVerificationError,
    GnutlsError,
    PrematureTerminationError,
)
from ._context import DEFAULT_PRIORITY, GnutlsContext
from ._protocol import GnutlsHandshakeProtocol, GnutlsObject, GnutlsTransport
from ._loop import GnutlsEventLoop, GnutlsEventLoopPolicy
from . import ssl

__all__ = [
    "GnutlsContext",
    "GnutlsError",
    "CertificateVerificationError",
    "PrematureTerminationError",
    "GnutlsEventLoopPolicy",
    "GnutlsEventLoop",
    "GnutlsObject",
    "GnutlsHandshakeProtocol",
    "GnutlsTransport",
    "DEFAULT_PRIORITY",
    "ssl",
]
