# Copyright (C) 2026 The aio_gnutls_transport authors
# SPDX-License-Identifier: LGPL-2.1-or-later
"""An asyncio event loop whose TLS connections use GnuTLS contexts.

:class:`GnutlsEventLoop` is the platform's selector event loop with one
change: when asyncio asks it for a TLS transport and the context is a
:class:`GnutlsContext`, the connection is driven by GnuTLS; any other
context (a stdlib :class:`ssl.SSLContext`) goes to asyncio's own TLS code.
So ``create_connection``, ``create_server``, ``open_connection``,
``start_server``, their Unix-socket forms and ``start_tls`` all accept
either kind of context, with ``ssl_handshake_timeout`` and
``ssl_shutdown_timeout`` as asyncio has them (60 s and 30 s by default).
``start_tls`` also works over a transport that is itself TLS (TLS inside
TLS, e.g. through a TLS proxy).

On other event loops (asyncio's own, uvloop's) a GnutlsContext works too:
the loop's TLS code drives it through :meth:`GnutlsContext.wrap_bio`.
"""

import asyncio

from ._context import GnutlsContext
from ._protocol import GnutlsHandshakeProtocol

__all__ = ["GnutlsEventLoop", "GnutlsEventLoopPolicy"]


class GnutlsEventLoop(asyncio.SelectorEventLoop):
    """A selector event loop that understands :class:`GnutlsContext`."""

    def _make_ssl_transport(self, rawsock, protocol, sslcontext, waiter=None,
                            **kwargs):
        if not isinstance(sslcontext, GnutlsContext):
            return super()._make_ssl_transport(
                rawsock, protocol, sslcontext, waiter, **kwargs)
        try:
            tls_protocol = GnutlsHandshakeProtocol(
                self, protocol, sslcontext, waiter,
                server_side=kwargs.get("server_side", False),
                server_hostname=kwargs.get("server_hostname"),
                ssl_handshake_timeout=kwargs.get("ssl_handshake_timeout"),
                ssl_shutdown_timeout=kwargs.get("ssl_shutdown_timeout"))
        except BaseException:
            # asyncio does not close the socket when this fails on the
            # server side; do not leak it.
            if kwargs.get("server_side", False):
                rawsock.close()
            raise
        self._make_socket_transport(rawsock, tls_protocol,
                                    extra=kwargs.get("extra"),
                                    server=kwargs.get("server"))
        return tls_protocol._app_transport

    async def start_tls(self, transport, protocol, sslcontext, **kwargs):
        """Upgrade *transport* to TLS (see :meth:`asyncio.loop.start_tls`)."""
        if not isinstance(sslcontext, GnutlsContext):
            return await super().start_tls(transport, protocol, sslcontext,
                                           **kwargs)
        unknown = set(kwargs) - {"server_side", "server_hostname",
                                 "ssl_handshake_timeout",
                                 "ssl_shutdown_timeout"}
        if unknown:
            raise TypeError("start_tls() got an unexpected keyword argument "
                            "%r" % sorted(unknown)[0])
        if not getattr(transport, "_start_tls_compatible", False):
            raise TypeError(
                "transport %r is not supported by start_tls()" % (transport,))
        waiter = self.create_future()
        tls_protocol = GnutlsHandshakeProtocol(
            self, protocol, sslcontext, waiter,
            server_side=kwargs.get("server_side", False),
            server_hostname=kwargs.get("server_hostname"),
            ssl_handshake_timeout=kwargs.get("ssl_handshake_timeout"),
            ssl_shutdown_timeout=kwargs.get("ssl_shutdown_timeout"),
            call_connection_made=False)
        # No data may reach the TLS protocol before its connection_made().
        transport.pause_reading()
        transport.set_protocol(tls_protocol)
        conmade_cb = self.call_soon(tls_protocol.connection_made, transport)
        resume_cb = self.call_soon(transport.resume_reading)
        try:
            await waiter
        except BaseException:
            transport.close()
            conmade_cb.cancel()
            resume_cb.cancel()
            raise
        return tls_protocol._app_transport


class GnutlsEventLoopPolicy(asyncio.DefaultEventLoopPolicy):
    """An event loop policy whose loops are :class:`GnutlsEventLoop`."""

    _loop_factory = GnutlsEventLoop
