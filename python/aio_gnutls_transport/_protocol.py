# Copyright (C) 2026 The aio_gnutls_transport authors
# SPDX-License-Identifier: LGPL-2.1-or-later
"""TLS over an asyncio stream transport, with GnuTLS as the TLS engine.

Two objects cooperate for each connection:

* :class:`GnutlsHandshakeProtocol` is the protocol of the plain (TCP or
  Unix) socket transport.  It feeds the ciphertext it receives into an
  in-memory :class:`_gnutls.Session` and sends whatever ciphertext the
  session produces.
* :class:`GnutlsTransport` is the transport the application sees.  Its
  ``write()`` encrypts at once and hands the records to the socket
  transport, which is therefore the only write buffer: its flow control
  (pause_writing/resume_writing) is forwarded to the application.

The life of a connection::

    UNWRAPPED --connection_made--> DO_HANDSHAKE --done--> WRAPPED
    WRAPPED --close()--> SHUTDOWN --peer close_notify/EOF/timeout--> CLOSED
    any state --error/abort/both directions closed--> CLOSED

Half-close is supported in WRAPPED: ``write_eof()`` sends close_notify and
reading goes on; a close_notify from the peer calls the application's
``eof_received()`` and writing goes on if it returns true.
"""

import asyncio
import ipaddress as _ipaddress
import logging
import ssl as _stdlib_ssl
import time as _time
import warnings
import weakref as _weakref

from asyncio import constants as _constants
from asyncio import transports as _transports

from . import _gnutls

__all__ = ["GnutlsHandshakeProtocol", "GnutlsTransport", "GnutlsObject",
           "GnutlsSession", "CHANNEL_BINDING_TYPES"]

logger = logging.getLogger("aio_gnutls_transport")

_SSL_HANDSHAKE_TIMEOUT = getattr(_constants, "SSL_HANDSHAKE_TIMEOUT", 60.0)
_SSL_SHUTDOWN_TIMEOUT = getattr(_constants, "SSL_SHUTDOWN_TIMEOUT", 30.0)
_LOG_THRESHOLD_FOR_CONNLOST_WRITES = getattr(
    _constants, "LOG_THRESHOLD_FOR_CONNLOST_WRITES", 5)

#: Ciphertext kept in the session while the application has paused reading;
#: past this the socket transport stops reading too.
MAX_BUFFERED_INCOMING = 256 * 1024

_SHUT_WR = _gnutls.SHUT_WR
_PrematureTerminationError = _gnutls.PrematureTerminationError

# Connection states (compared by identity).
_UNWRAPPED = "UNWRAPPED"
_DO_HANDSHAKE = "DO_HANDSHAKE"
_WRAPPED = "WRAPPED"
_SHUTDOWN = "SHUTDOWN"
_CLOSED = "CLOSED"

# What the application protocol has been told.
_APP_INIT = "INIT"
_APP_CON_MADE = "CON_MADE"
_APP_EOF = "EOF"
_APP_CON_LOST = "CON_LOST"

_BYTES_TYPES = (bytes, bytearray, memoryview)


def _peer_text(address):
    if isinstance(address, tuple) and len(address) >= 2:
        host = address[0]
        return ("[%s]:%s" if ":" in str(host) else "%s:%s") % (host,
                                                               address[1])
    return str(address or "a client")


def _check_timeout(name, value, default):
    if value is None:
        return default
    if value <= 0:
        raise ValueError("%s should be a positive number, got %r"
                         % (name, value))
    return value


class GnutlsTransport(_transports._FlowControlMixin, asyncio.Transport):
    """The transport an application protocol gets for a TLS connection."""

    # The _FlowControlMixin base is only for loop.sendfile()'s fallback,
    # which insists on it; flow control itself is the socket transport's.

    _sendfile_compatible = _constants._SendfileMode.FALLBACK
    _start_tls_compatible = True

    def __init__(self, loop, tls_protocol):
        asyncio.Transport.__init__(self)
        self._loop = loop
        self._tls = tls_protocol
        self._closed = False        # is_closing()
        self._close_called = False  # the application called close()/abort()

    def __repr__(self):
        info = [type(self).__name__]
        if self._closed:
            info.append("closed")
        tls = self._tls
        if tls is not None:
            info.append("state=%s" % tls._state)
        return "<%s>" % " ".join(info)

    def __del__(self, _warnings=warnings):
        if not self._closed:
            self._closed = True
            _warnings.warn("unclosed transport %r" % (self,), ResourceWarning,
                           source=self)

    # -- BaseTransport ---------------------------------------------------

    def get_extra_info(self, name, default=None):
        return self._tls._get_extra_info(name, default)

    def set_protocol(self, protocol):
        self._tls._set_app_protocol(protocol)

    def get_protocol(self):
        return self._tls._app_protocol

    def is_closing(self):
        return self._closed

    def close(self):
        """Send what is buffered, then close_notify, then close the socket.

        No more data is delivered to the protocol; its connection_lost()
        is called once the peer has answered with close_notify (or closed
        the connection, or ssl_shutdown_timeout has passed).
        """
        if self._closed:
            self._close_called = True
            return
        self._closed = True
        self._close_called = True
        self._tls._start_shutdown()

    # -- ReadTransport -----------------------------------------------------

    def is_reading(self):
        return not self._closed and not self._tls._app_reading_paused

    def pause_reading(self):
        self._tls._pause_reading()

    def resume_reading(self):
        self._tls._resume_reading()

    # -- WriteTransport ----------------------------------------------------

    def write(self, data):
        tls = self._tls
        if tls._writable:
            if isinstance(data, _BYTES_TYPES):
                if data:
                    session = tls._session
                    try:
                        session.write(data)
                    except Exception as exc:
                        tls._on_write_error(exc)
                        return
                    tls._socket_write(session.take_output())
                return
            raise TypeError("data: expecting a bytes-like instance, got %s"
                            % type(data).__name__)
        tls._write_slow(data, self._close_called)

    def writelines(self, list_of_data):
        self.write(b"".join(list_of_data))

    def write_eof(self):
        """Send close_notify after the data written so far; keep reading."""
        if self._closed:
            return
        self._tls._write_eof()

    def can_write_eof(self):
        return True

    def abort(self):
        """Close at once: buffered data is lost, no close_notify is sent."""
        self._closed = True
        self._close_called = True
        self._tls._abort(None)

    def _force_close(self, exc):
        self._closed = True
        self._tls._abort(exc)

    def set_write_buffer_limits(self, high=None, low=None):
        self._tls._set_write_buffer_limits(high, low)

    def get_write_buffer_limits(self):
        return self._tls._get_write_buffer_limits()

    def get_write_buffer_size(self):
        return self._tls._get_write_buffer_size()

    @property
    def _protocol_paused(self):
        # Used by loop.sendfile()'s fallback.
        return self._tls._app_writing_paused


class GnutlsHandshakeProtocol(asyncio.Protocol):
    """The protocol of the socket transport under a TLS connection.

    It runs the TLS handshake, then moves data between the socket
    transport, the GnuTLS session and the application protocol, and
    carries out the TLS closing handshake.
    """

    def __init__(self, loop, app_protocol, sslcontext, waiter,
                 server_side=False, server_hostname=None,
                 call_connection_made=True, ssl_handshake_timeout=None,
                 ssl_shutdown_timeout=None):
        self._ssl_handshake_timeout = _check_timeout(
            "ssl_handshake_timeout", ssl_handshake_timeout,
            _SSL_HANDSHAKE_TIMEOUT)
        self._ssl_shutdown_timeout = _check_timeout(
            "ssl_shutdown_timeout", ssl_shutdown_timeout,
            _SSL_SHUTDOWN_TIMEOUT)
        self._loop = loop
        self._context = sslcontext
        self._server_side = bool(server_side)
        if server_hostname and not server_side:
            self._server_hostname = server_hostname
        else:
            self._server_hostname = None
        self._verify_mode = sslcontext._verify_mode
        # The ssl_object exists from the start (the server name callback
        # gets it); get_extra_info() shows it once the handshake is done.
        self._ssl_object = sslobj = GnutlsObject(None, sslcontext,
                                                 self._verify_mode)
        self._session = sslobj._session = sslcontext._new_session(
            self._server_side, self._server_hostname,
            client_hello=(_client_hello_hook(sslcontext, sslobj)
                          if self._server_side else None))
        self._waiter = waiter
        self._state = _UNWRAPPED
        self._app_state = _APP_INIT if call_connection_made else _APP_CON_MADE
        self._set_app_protocol(app_protocol)
        self._transport = None           # the socket transport
        self._socket_write = None        # its write method
        self._extra = {"sslcontext": sslcontext}
        self._exc = None                 # for the app's connection_lost()
        self._lost = False               # the socket transport is gone
        # Writing
        self._writable = False           # fast path of GnutlsTransport.write
        self._pending = []               # plaintext written before WRAPPED
        self._pending_size = 0
        self._write_closed = False       # write_eof()/close() requested
        self._app_wrote_eof = False      # the application called write_eof()
        self._socket_eof_sent = False
        self._write_buffer_limits = None
        self._app_writing_paused = False
        self._socket_writing_paused = False
        self._conn_lost_writes = 0
        # Reading
        self._reading = False            # fast path of data_received
        self._backlog = None             # plaintext not yet delivered
        self._read_closed = False        # the peer's close_notify handled
        self._eof_received = False       # the socket reached EOF
        self._app_reading_paused = False
        self._socket_reading_paused = False
        self._resume_handle = None
        self._deferred_lost = None       # (exc,) once the socket is gone
        # Timers
        self._handshake_timeout_handle = None
        self._shutdown_timeout_handle = None
        self._handshake_start_time = None
        self._app_transport = GnutlsTransport(loop, self)

    def __repr__(self):
        return "<%s %s side=%s state=%s>" % (
            type(self).__name__,
            "server" if self._server_side else "client",
            self._server_hostname, self._state)

    def _set_app_protocol(self, app_protocol):
        self._app_protocol = app_protocol
        self._app_buffered = isinstance(app_protocol, asyncio.BufferedProtocol)
        # asyncio's StreamReaderProtocol assumes TLS cannot half-close and
        # returns False from eof_received(); over this transport it can.
        self._app_is_stream = isinstance(app_protocol,
                                         asyncio.StreamReaderProtocol)

    def _wakeup_waiter(self, exc=None):
        waiter = self._waiter
        if waiter is None:
            return
        self._waiter = None
        if not waiter.done():
            if exc is None:
                waiter.set_result(None)
            else:
                waiter.set_exception(exc)

    # -- socket transport callbacks ------------------------------------------

    def connection_made(self, transport):
        self._transport = transport
        self._socket_write = transport.write
        if self._state is _CLOSED:
            # Aborted before the socket transport was ready.
            transport.abort()
            return
        if self._write_buffer_limits is not None:
            transport.set_write_buffer_limits(*self._write_buffer_limits)
        self._state = _DO_HANDSHAKE
        if self._loop.get_debug():
            logger.debug("%r starts the TLS handshake", self)
            self._handshake_start_time = self._loop.time()
        self._handshake_timeout_handle = self._loop.call_later(
            self._ssl_handshake_timeout, self._check_handshake_timeout)
        self._do_handshake()

    def data_received(self, data):
        if self._reading:
            # The hot path: one feed, one read.
            session = self._session
            session.feed(data)
            try:
                plain = session.read()
            except Exception as exc:
                self._on_read_error(exc)
                return
            if session.pending_output:
                self._flush()
            if plain:
                if self._app_buffered:
                    self._deliver_buffered(plain)
                else:
                    self._app_protocol.data_received(plain)
                if session.peer_closed or session.pending_error:
                    self._do_read()
            elif plain is None:
                self._on_close_notify()
            return
        state = self._state
        if state is _WRAPPED:
            if self._read_closed:
                return      # nothing may follow close_notify
            # The application paused reading: keep the ciphertext.
            session = self._session
            session.feed(data)
            if (session.incoming_size > MAX_BUFFERED_INCOMING
                    and not self._socket_reading_paused):
                self._socket_reading_paused = True
                self._transport.pause_reading()
        elif state is _DO_HANDSHAKE:
            self._session.feed(data)
            self._do_handshake()
        elif state is _SHUTDOWN:
            self._session.feed(data)
            self._drain_after_close()
        # UNWRAPPED or CLOSED: nothing more is wanted from the peer.

    def eof_received(self):
        self._eof_received = True
        state = self._state
        if self._loop.get_debug():
            logger.debug("%r received EOF", self)
        if state is _DO_HANDSHAKE:
            session = self._session
            session.feed_eof()
            try:
                done = session.handshake()
            except Exception as exc:
                self._on_handshake_failed(exc)
            else:
                if done:
                    self._flush()
                    self._on_handshake_done()
                else:
                    self._on_handshake_failed(ConnectionResetError(
                        "the peer closed the connection during the TLS "
                        "handshake"))
            return True
        if state is _WRAPPED:
            self._session.feed_eof()
            if self._reading:
                self._do_read()
            return True
        if state is _SHUTDOWN:
            # The peer went away after our close_notify: a clean close.
            self._close_socket()
            return True
        return False

    def connection_lost(self, exc):
        self._lost = True
        if exc is None:
            exc = self._exc
        if (self._state is _WRAPPED and self._app_reading_paused
                and not self._read_closed
                and (self._session.incoming_size or self._backlog)):
            # The application paused reading with data already received:
            # nothing is lost.  It gets that data when it resumes, then
            # the end (close_notify or truncation), then connection_lost.
            self._deferred_lost = (exc,)
            self._writable = False
            for handle in (self._handshake_timeout_handle,
                           self._shutdown_timeout_handle):
                if handle is not None:
                    handle.cancel()
            self._handshake_timeout_handle = None
            self._shutdown_timeout_handle = None
            self._app_transport._closed = True
            if not self._eof_received:
                self._eof_received = True
                self._session.feed_eof()
            return
        self._report_lost(exc)

    def _report_deferred_lost(self):
        # The socket went away while the application had paused reading.
        if self._deferred_lost is not None:
            exc, = self._deferred_lost
            self._report_lost(self._exc if exc is None else exc)

    def _report_lost(self, exc):
        self._deferred_lost = None
        was_handshaking = self._state in (_UNWRAPPED, _DO_HANDSHAKE)
        self._state = _CLOSED
        self._writable = False
        self._reading = False
        self._backlog = None
        self._pending = []
        self._pending_size = 0
        self._cancel_timers()
        self._app_transport._closed = True
        if was_handshaking and exc is None:
            exc = ConnectionResetError(
                "the connection was lost during the TLS handshake")
        self._wakeup_waiter(exc)
        if self._app_state in (_APP_CON_MADE, _APP_EOF):
            self._app_state = _APP_CON_LOST
            self._app_protocol.connection_lost(exc)

    def pause_writing(self):
        self._socket_writing_paused = True
        if (not self._app_writing_paused
                and self._app_state in (_APP_CON_MADE, _APP_EOF)):
            self._app_writing_paused = True
            try:
                self._app_protocol.pause_writing()
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException as exc:
                self._loop.call_exception_handler({
                    "message": "protocol.pause_writing() failed",
                    "exception": exc,
                    "transport": self._app_transport,
                    "protocol": self._app_protocol,
                })

    def resume_writing(self):
        self._socket_writing_paused = False
        if self._app_writing_paused:
            self._app_writing_paused = False
            try:
                self._app_protocol.resume_writing()
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException as exc:
                self._loop.call_exception_handler({
                    "message": "protocol.resume_writing() failed",
                    "exception": exc,
                    "transport": self._app_transport,
                    "protocol": self._app_protocol,
                })

    # -- handshake -----------------------------------------------------------

    def _do_handshake(self):
        session = self._session
        try:
            done = session.handshake()
        except Exception as exc:
            self._on_handshake_failed(exc)
            return
        if session.pending_output:
            self._flush()
        if done:
            self._on_handshake_done()

    def _check_handshake_timeout(self):
        self._handshake_timeout_handle = None
        if self._state is _DO_HANDSHAKE:
            exc = ConnectionAbortedError(
                "TLS handshake is taking longer than %s seconds: aborting "
                "the connection" % self._ssl_handshake_timeout)
            self._wakeup_waiter(exc)
            self._abort(exc)

    def _on_handshake_failed(self, exc):
        if self._server_side:
            # A server goes on serving: its administrator may want to know
            # why a client was turned away (asyncio says nothing outside
            # debug mode).
            peer = (self._transport.get_extra_info("peername")
                    if self._transport is not None else None)
            logger.info("client %s: %s",
                        _peer_text(peer), exc)
        elif self._loop.get_debug():
            logger.debug("%r: TLS handshake failed: %s", self, exc)
        # The alert GnuTLS queued goes out before the socket closes.
        self._flush()
        self._wakeup_waiter(exc)
        self._close_socket(exc)

    def _on_handshake_done(self):
        if self._handshake_timeout_handle is not None:
            self._handshake_timeout_handle.cancel()
            self._handshake_timeout_handle = None
        if self._loop.get_debug() and self._handshake_start_time is not None:
            dt = self._loop.time() - self._handshake_start_time
            logger.debug("%r: TLS handshake took %.1f ms (%s)", self,
                         dt * 1e3, self._session.description())
        self._state = _WRAPPED
        self._extra["ssl_object"] = self._ssl_object
        self._extra["compression"] = None
        if self._pending:
            # Plaintext written before the handshake finished goes first.
            pending = self._pending
            self._pending = []
            self._pending_size = 0
            session = self._session
            try:
                for data in pending:
                    session.write(data)
            except Exception as exc:
                self._flush()
                self._wakeup_waiter(exc)
                self._close_socket(exc)
                return
            self._flush()
        if self._write_closed:
            # write_eof() was called before the handshake finished.
            self._send_close_notify()
            if self._state is not _WRAPPED:
                return
        self._writable = not self._write_closed
        self._reading = not self._app_reading_paused
        if self._app_state is _APP_INIT:
            self._app_state = _APP_CON_MADE
            self._app_protocol.connection_made(self._app_transport)
        self._wakeup_waiter()
        if self._state is not _WRAPPED:
            return
        if self._socket_writing_paused and not self._app_writing_paused:
            self.pause_writing()
        self._do_read()

    # -- reading -------------------------------------------------------------

    def _do_read(self):
        """Deliver all decryptable data; handle close_notify and EOF."""
        session = self._session
        while self._reading:
            try:
                plain = session.read()
            except Exception as exc:
                self._on_read_error(exc)
                return
            if session.pending_output:
                self._flush()
            if plain:
                if self._app_buffered:
                    self._deliver_buffered(plain)
                else:
                    self._app_protocol.data_received(plain)
                if (session.peer_closed or session.pending_error
                        or self._eof_received):
                    continue
                return
            if plain is None:
                self._on_close_notify()
                return
            # b"": more input is needed.  After EOF the session reports
            # the truncation itself; this only makes sure it is never lost.
            if self._eof_received:
                self._on_read_error(_PrematureTerminationError(
                    0, "the peer closed the connection without close_notify"))
            return

    def _deliver_buffered(self, data):
        # Copy plaintext into the buffers of an asyncio.BufferedProtocol.
        protocol = self._app_protocol
        view = memoryview(data)
        total = len(view)
        offset = 0
        while offset < total:
            buf = protocol.get_buffer(total - offset)
            size = len(buf)
            if not size:
                raise RuntimeError("get_buffer() returned an empty buffer")
            n = min(size, total - offset)
            buf[:n] = view[offset:offset + n]
            offset += n
            protocol.buffer_updated(n)
            if not self._reading and offset < total:
                # Paused (or closed) in the middle: keep the rest.
                if self._state is _WRAPPED:
                    self._backlog = bytes(view[offset:])
                return

    def _on_close_notify(self):
        self._read_closed = True
        self._reading = False
        if self._loop.get_debug():
            logger.debug("%r received close_notify", self)
        state = self._state
        if state is _SHUTDOWN:
            self._close_socket()
            return
        if state is not _WRAPPED:
            return
        keep_open = True
        if self._app_state is _APP_CON_MADE:
            self._app_state = _APP_EOF
            try:
                keep_open = self._app_protocol.eof_received()
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException as exc:
                self._fatal_error(exc, "Error calling eof_received()")
                return
            if self._app_is_stream:
                keep_open = True
        if self._state is not _WRAPPED:
            return
        if self._write_closed:
            # Both directions are closed now.
            self._close_socket()
        elif not keep_open:
            self._app_transport._closed = True
            self._start_shutdown()

    def _on_read_error(self, exc):
        self._flush()
        if self._state is _SHUTDOWN:
            # Closing anyway: the peer's missing close_notify does not matter.
            if isinstance(exc, _PrematureTerminationError):
                exc = None
            self._close_socket(exc)
            return
        if self._loop.get_debug():
            logger.debug("%r: TLS read failed: %s", self, exc)
        self._close_socket(exc)

    def _drain_after_close(self):
        # After close(): discard data until the peer's close_notify.
        session = self._session
        try:
            plain = session.read()
            while plain:
                plain = session.read()
        except Exception as exc:
            self._on_read_error(exc)
            return
        self._flush()
        if plain is None:
            self._read_closed = True
            self._close_socket()

    def _pause_reading(self):
        self._app_reading_paused = True
        self._reading = False

    def _resume_reading(self):
        if not self._app_reading_paused:
            return
        self._app_reading_paused = False
        if self._resume_handle is None and self._state is _WRAPPED:
            self._resume_handle = self._loop.call_soon(self._resume_cb)

    def _resume_cb(self):
        self._resume_handle = None
        if (self._state is not _WRAPPED or self._app_reading_paused
                or self._read_closed):
            return
        self._reading = True
        try:
            backlog = self._backlog
            if backlog is not None:
                self._backlog = None
                self._deliver_buffered(backlog)
            self._do_read()
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self._fatal_error(exc, "Fatal error: protocol.data_received() "
                                   "call failed.")
            return
        if self._deferred_lost is not None:
            if not self._app_reading_paused or self._state is _CLOSED:
                self._report_deferred_lost()
            return
        if (self._socket_reading_paused and not self._app_reading_paused
                and self._state is _WRAPPED):
            self._socket_reading_paused = False
            self._transport.resume_reading()

    # -- writing -------------------------------------------------------------

    def _flush(self):
        """Send all ciphertext the session has produced."""
        data = self._session.take_output()
        if data and not self._socket_eof_sent and not self._lost:
            self._socket_write(data)

    def _write_slow(self, data, close_called):
        if not isinstance(data, _BYTES_TYPES):
            raise TypeError("data: expecting a bytes-like instance, got %s"
                            % type(data).__name__)
        if close_called:
            raise RuntimeError("Cannot call write() after close()")
        if self._app_wrote_eof:
            raise RuntimeError("Cannot call write() after write_eof()")
        if not data:
            return
        state = self._state
        if state is _UNWRAPPED or state is _DO_HANDSHAKE:
            data = bytes(data)
            self._pending.append(data)
            self._pending_size += len(data)
            return
        # The connection is gone (error, peer reset, close by the peer).
        if self._conn_lost_writes >= _LOG_THRESHOLD_FOR_CONNLOST_WRITES:
            logger.warning("TLS connection is closed")
        self._conn_lost_writes += 1

    def _on_write_error(self, exc):
        self._flush()
        self._fatal_error(exc, "Fatal error on TLS write")

    def _write_eof(self):
        self._app_wrote_eof = True
        if self._write_closed:
            return
        state = self._state
        if state is _WRAPPED:
            self._send_close_notify()
            if self._read_closed and self._state is _WRAPPED:
                self._close_socket()
        elif state is _UNWRAPPED or state is _DO_HANDSHAKE:
            self._write_closed = True   # sent when the handshake is done

    def _send_close_notify(self, socket_eof=False):
        # With socket_eof, the socket's write side is shut down after the
        # close_notify.  Not for write_eof(): a stdlib TLS peer that sees
        # EOF right after close_notify skips sending its own close_notify.
        self._write_closed = True
        self._writable = False
        session = self._session
        try:
            session.bye(_SHUT_WR)
        except Exception as exc:
            self._flush()
            self._close_socket(exc)
            return
        self._flush()
        transport = self._transport
        if socket_eof and not self._lost and transport.can_write_eof():
            self._socket_eof_sent = True
            try:
                transport.write_eof()
            except OSError:
                # The peer is already gone; closing will tell.
                pass

    def _set_write_buffer_limits(self, high=None, low=None):
        transport = self._transport
        if transport is None:
            # Validate now, apply once the socket transport exists.
            hi = high if high is not None else 4 * (low or 0)
            lo = low if low is not None else hi // 4
            if not hi >= lo >= 0:
                raise ValueError("high (%r) must be >= low (%r) must be >= 0"
                                 % (high, low))
            self._write_buffer_limits = (high, low)
            return
        transport.set_write_buffer_limits(high, low)

    def _get_write_buffer_limits(self):
        transport = self._transport
        if transport is None:
            # What the socket transport will use (asyncio's defaults).
            high, low = self._write_buffer_limits or (None, None)
            if high is None:
                high = 64 * 1024 if low is None else 4 * low
            if low is None:
                low = high // 4
            return (low, high)
        return transport.get_write_buffer_limits()

    def _get_write_buffer_size(self):
        size = self._pending_size
        transport = self._transport
        if transport is not None and not self._lost:
            size += transport.get_write_buffer_size()
        return size

    # -- closing -------------------------------------------------------------

    def _start_shutdown(self):
        """The application called close()."""
        state = self._state
        if state is _WRAPPED:
            self._state = _SHUTDOWN
            self._writable = False
            self._reading = False
            self._backlog = None
            self._app_reading_paused = False
            if self._resume_handle is not None:
                self._resume_handle.cancel()
                self._resume_handle = None
            done_reading = self._read_closed or self._eof_received
            if not self._write_closed:
                self._send_close_notify(socket_eof=not done_reading)
                if self._state is not _SHUTDOWN:
                    return
            if done_reading:
                self._close_socket()
                return
            # Wait for the peer's close_notify (data is discarded).
            self._shutdown_timeout_handle = self._loop.call_later(
                self._ssl_shutdown_timeout, self._check_shutdown_timeout)
            if self._socket_reading_paused:
                self._socket_reading_paused = False
                self._transport.resume_reading()
            if self._session.incoming_size or self._session.peer_closed:
                self._drain_after_close()
        elif state is _UNWRAPPED or state is _DO_HANDSHAKE:
            # Nothing was exchanged with the application: just drop it.
            self._abort(None)

    def _check_shutdown_timeout(self):
        self._shutdown_timeout_handle = None
        if self._lost:
            return
        transport = self._transport
        if self._state is _SHUTDOWN and not transport.get_write_buffer_size():
            # Everything we sent is out; the peer just never answered.
            self._close_socket()
            return
        exc = self._exc
        if exc is None:
            exc = asyncio.TimeoutError("TLS shutdown timed out")
        self._abort(exc)

    def _close_socket(self, exc=None):
        """Close the socket transport after sending what it buffers."""
        if exc is not None and self._exc is None:
            self._exc = exc
        if self._state is _CLOSED:
            return
        self._state = _CLOSED
        self._writable = False
        self._reading = False
        self._app_transport._closed = True
        if self._handshake_timeout_handle is not None:
            self._handshake_timeout_handle.cancel()
            self._handshake_timeout_handle = None
        if self._resume_handle is not None:
            self._resume_handle.cancel()
            self._resume_handle = None
        transport = self._transport
        if self._lost and self._deferred_lost is not None:
            self._loop.call_soon(self._report_deferred_lost)
        if transport is None or self._lost:
            return
        transport.close()
        if (self._shutdown_timeout_handle is None
                and transport.get_write_buffer_size()):
            # Do not wait forever for a peer that does not read.
            self._shutdown_timeout_handle = self._loop.call_later(
                self._ssl_shutdown_timeout, self._check_shutdown_timeout)

    def _abort(self, exc=None):
        if exc is not None and self._exc is None:
            self._exc = exc
        self._state = _CLOSED
        self._writable = False
        self._reading = False
        self._app_transport._closed = True
        transport = self._transport
        if self._lost and self._deferred_lost is not None:
            self._loop.call_soon(self._report_deferred_lost)
        if transport is not None and not self._lost:
            transport.abort()

    def _fatal_error(self, exc, message="Fatal error on TLS transport"):
        if isinstance(exc, OSError):
            if self._loop.get_debug():
                logger.debug("%r: %s", self, message, exc_info=True)
        elif not isinstance(exc, asyncio.CancelledError):
            self._loop.call_exception_handler({
                "message": message,
                "exception": exc,
                "transport": self._transport,
                "protocol": self,
            })
        self._abort(exc)

    def _cancel_timers(self):
        for name in ("_handshake_timeout_handle", "_shutdown_timeout_handle",
                     "_resume_handle"):
            handle = getattr(self, name)
            if handle is not None:
                handle.cancel()
                setattr(self, name, None)

    # -- extra info ------------------------------------------------------------

    def _get_extra_info(self, name, default=None):
        extra = self._extra
        if name in extra:
            return extra[name]
        sslobj = extra.get("ssl_object")
        if sslobj is not None:
            if name == "peercert":
                value = extra["peercert"] = sslobj.getpeercert()
                return value
            if name == "cipher":
                value = extra["cipher"] = sslobj.cipher()
                return value
        transport = self._transport
        if transport is not None:
            return transport.get_extra_info(name, default)
        return default


# ---------------------------------------------------------------------------
# The 'ssl_object' of a connection

#: The kinds of channel binding ``get_channel_binding()`` knows (the
#: stdlib's ssl.CHANNEL_BINDING_TYPES has only 'tls-unique').
CHANNEL_BINDING_TYPES = ["tls-unique", "tls-exporter", "tls-server-end-point"]

_ALERT_INTERNAL_ERROR = 80

# Protocol versions in order, as version() names them.
_VERSION_ORDER = {"SSLv3": 0, "TLSv1": 1, "TLSv1.1": 2, "TLSv1.2": 3,
                  "TLSv1.3": 4}


def _client_hello_hook(context, ssl_object):
    """The engine's client_hello callable for a server connection of
    *context*: runs the context's sni_callback (None if it has none)."""
    callback = context._sni_callback
    if callback is None:
        return None
    # The session keeps the hook alive; a strong reference to the
    # ssl_object (which holds the session) would make a cycle.
    ref = _weakref.ref(ssl_object)

    def client_hello(server_name):
        obj = ref()
        if obj is None:
            return _ALERT_INTERNAL_ERROR
        if obj._sni_called:
            # A second ClientHello (after a TLS 1.3 HelloRetryRequest):
            # what the callback chose still holds; like the stdlib, it is
            # called once per connection.
            return None
        obj._sni_called = True
        obj._in_sni_callback = True
        try:
            result = callback(obj, server_name, context)
        finally:
            obj._in_sni_callback = False
        if result is None:
            chosen = obj._context
            return None if chosen is context else chosen._credentials
        if isinstance(result, int) and not isinstance(result, bool):
            return int(result)
        raise TypeError("sni_callback returned %r: it must return None or "
                        "an ssl.ALERT_DESCRIPTION_* number" % (result,))

    return client_hello


class _TLSConnectionInfo:
    """What GnutlsObject and GnutlsSSLObject share: the stdlib SSLObject's
    questions about a connection, answered by its GnuTLS session."""

    _session = None
    _in_sni_callback = False
    _sni_called = False
    _saved_session = None

    def __init__(self, session, context, verify_mode):
        self._session = session
        self._context = context
        self._verify_mode = verify_mode
        self._priority = context._priority

    def __repr__(self):
        session = self._session
        description = session.description() if session is not None else None
        return "<%s %s>" % (type(self).__name__,
                            description or "(handshake not done)")

    @property
    def context(self):
        """The GnutlsContext of the connection.

        A server's ``sni_callback`` may set another server GnutlsContext
        here: the connection then uses that context's certificate, key
        and trusted CAs (for client certificates).  Elsewhere it cannot be
        changed (ValueError).
        """
        return self._context

    @context.setter
    def context(self, context):
        from ._context import GnutlsContext
        if not isinstance(context, GnutlsContext):
            raise TypeError("The value must be a GnutlsContext, not %s"
                            % type(context).__name__)
        if context is self._context:
            return
        if not self._in_sni_callback:
            raise ValueError("the context of a connection can only be "
                             "changed by the server's sni_callback")
        if context._gnutls_protocol == _stdlib_ssl.PROTOCOL_TLS_CLIENT:
            raise ValueError("a server connection needs a server context, "
                             "not a PROTOCOL_TLS_CLIENT one")
        if not context._credentials.chain_count:
            raise ValueError("the context has no certificate to serve "
                             "(load_cert_chain() was not called)")
        self._context = context

    @property
    def server_side(self):
        """True for the server end of the connection."""
        return self._session.server_side

    @property
    def server_hostname(self):
        """The server name a client connects to (sent as SNI and
        checked), or None; None on the server side."""
        return self._session.server_hostname

    @property
    def session_reused(self):
        """True if the handshake resumed an earlier session (both sides
        know)."""
        return self._session.session_reused

    @property
    def session(self):
        """Client side: the :class:`GnutlsSession` to resume this
        connection's session later, or None while there is none (TLS 1.3:
        until the server's ticket has been read, which happens as soon as
        anything was received after the handshake).  Always None on the
        server side."""
        session = self._session
        if session is None or session.server_side:
            return None
        data = session.session_data()
        if data is None:
            return None
        saved = self._saved_session
        if saved is None or saved._data != data:
            saved = self._saved_session = GnutlsSession(
                data, session.server_hostname)
            saved._bind(session.credentials, session.verify_mode,
                        session.check_hostname)
        return saved

    @session.setter
    def session(self, value):
        raise ValueError("Cannot set session after handshake.")

    def getpeercert(self, binary_form=False):
        """The peer's certificate.

        With *binary_form*, its DER encoding (or None if the peer sent
        none).  Otherwise a dict like :meth:`ssl.SSLObject.getpeercert`
        (OCSP, caIssuers and crlDistributionPoints included when the
        certificate has them): empty when the certificate was not verified
        (CERT_NONE), None without a certificate.  ValueError before the
        handshake is done.
        """
        session = self._session
        if not session.handshake_done:
            raise ValueError("handshake not done yet")
        der = session.peer_certificate()
        if binary_form or der is None:
            return der
        if self._verify_mode == 0:
            return {}
        return decode_certificate(der)

    def get_unverified_chain(self):
        """The DER certificates the peer sent, its own first."""
        return self._session.peer_certificate_chain()

    def get_verified_chain(self):
        raise NotImplementedError(
            "get_verified_chain() is not supported by aio_gnutls_transport "
            "(get_unverified_chain() gives the certificates the peer sent)")

    def verify_client_post_handshake(self):
        raise NotImplementedError(
            "verify_client_post_handshake() is not supported by "
            "aio_gnutls_transport (no post-handshake authentication)")

    def version(self):
        """The negotiated protocol, e.g. ``'TLSv1.3'``; None before the
        handshake."""
        return self._session.version()

    def cipher(self):
        """``(cipher suite, protocol version, secret bits)`` of the
        connection, e.g. ``('TLS_AES_256_GCM_SHA384', 'TLSv1.3', 256)``;
        None before the handshake.  The suite has its IANA name, the
        version is the negotiated one."""
        return self._session.cipher()

    def shared_ciphers(self):
        """The cipher suites this side enables for the negotiated protocol
        version, in its order of preference, as ``(name, version, bits)``
        tuples: *name* as GnuTLS spells it (``gnutls-cli --list``; for
        TLS 1.3 the IANA name), *version* the oldest protocol the suite
        exists in, *bits* the cipher's key size.

        Not what the stdlib returns on a server (the client's offer as far
        as the server shares it): GnuTLS does not keep the client's list.
        None before the handshake.
        """
        session = self._session
        if session is None or not session.handshake_done:
            return None
        version = session.version()
        rank = _VERSION_ORDER.get(version)
        if rank is None:
            return None
        tls13 = version == "TLSv1.3"
        result = []
        for name, oldest, bits in self._priority.cipher_suites():
            oldest_rank = _VERSION_ORDER.get(oldest, -1)
            if (oldest == "TLSv1.3") == tls13 and oldest_rank <= rank:
                result.append((name, oldest, bits))
        return result

    def description(self):
        """GnuTLS's one-line description of the session."""
        return self._session.description()

    def compression(self):
        """Always None: TLS compression is never used."""
        return None

    def selected_alpn_protocol(self):
        """The protocol ALPN agreed on (a str), or None."""
        return self._session.selected_alpn_protocol()

    def selected_npn_protocol(self):
        """Always None: NPN is not supported (use ALPN)."""
        return None

    def get_channel_binding(self, cb_type="tls-unique"):
        """Channel binding data of the connection (bytes), or None where
        it is not defined (before the handshake; 'tls-unique' with TLS
        1.3; 'tls-exporter' with TLS 1.2 without extended master secret).

        *cb_type* is 'tls-unique' (RFC 5929), 'tls-exporter' (RFC 9266)
        or 'tls-server-end-point' (RFC 5929: a hash of the server's
        certificate); anything else raises ValueError.
        """
        if cb_type not in CHANNEL_BINDING_TYPES:
            raise ValueError("{0} channel binding type not implemented"
                             .format(cb_type))
        session = self._session
        if session is None or not session.handshake_done:
            return None
        return session.channel_binding(cb_type)


class GnutlsObject(_TLSConnectionInfo):
    """What ``get_extra_info('ssl_object')`` returns: the TLS side of the
    connection, shaped like :class:`ssl.SSLObject` (without the I/O:
    the transport does that)."""

    def pending(self):
        """0: the transport hands all decrypted data on at once."""
        return 0


class GnutlsSession:
    """A client's TLS session, saved to resume it on a later connection.

    Get one from ``ssl_object.session`` (the transport's
    ``get_extra_info("ssl_object")``, or a :class:`GnutlsSSLObject`): it is
    None until the server has given something to resume with.  With TLS
    1.2 that is at the end of the handshake; with TLS 1.3 the server sends
    its ticket after the handshake, so the session exists once the client
    has received something more (any data the server sent; the ticket
    usually comes right away).

    Offer it with :meth:`GnutlsContext.gnutls_resume` (or
    ``wrap_bio(..., session=...)``).  A resumed handshake sends no
    certificate, so a session is only offered by a context with the same
    credentials (trust) and verification settings as the connection that
    made it, and only to the same server name: anything else raises
    ValueError rather than skip that context's checks.

    ``bytes(session)`` serializes it and ``GnutlsSession(data,
    server_hostname, context=ctx)`` restores it, for a cache that outlives
    the process: restoring binds it to *ctx*, so restore only sessions
    saved from connections of that context.  The bytes hold the session's
    secrets: store them as you would a private key.
    """

    __slots__ = ("_data", "_server_hostname", "_binding")

    def __init__(self, data, server_hostname=None, *, context=None):
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError("data must be bytes, not %s" % type(data).__name__)
        if server_hostname is not None and not isinstance(server_hostname,
                                                          str):
            raise TypeError("server_hostname must be a str or None")
        self._data = bytes(data)
        self._server_hostname = server_hostname
        self._binding = None
        if context is not None:
            self._bind(context._credentials, context._verify_mode,
                       context._check_hostname)

    def _bind(self, credentials, verify_mode, check_hostname):
        # What verified the server when the session was made.
        self._binding = (credentials, int(verify_mode), bool(check_hostname))

    def _check_offer(self, credentials, verify_mode, check_hostname,
                     server_hostname):
        """Raise ValueError unless a context with these settings may offer
        this session when connecting to *server_hostname*."""
        if self._binding != (credentials, int(verify_mode),
                             bool(check_hostname)):
            raise ValueError(
                "the session was made by a context with other credentials "
                "or verification settings (or restored without context=): "
                "resuming it would skip this context's certificate checks")
        if self._server_hostname != (server_hostname or None):
            raise ValueError("the session to resume was made with %r, not %r"
                             % (self._server_hostname, server_hostname))

    @property
    def server_hostname(self):
        """The server name the session was made with (None: any)."""
        return self._server_hostname

    def __bytes__(self):
        return self._data

    def __eq__(self, other):
        if not isinstance(other, GnutlsSession):
            return NotImplemented
        return (self._data == other._data
                and self._server_hostname == other._server_hostname)

    def __hash__(self):
        return hash((self._data, self._server_hostname))

    def __repr__(self):
        return "<%s for %r>" % (type(self).__name__, self._server_hostname)

    def __reduce__(self):
        raise TypeError("cannot pickle %r object (use bytes())"
                        % type(self).__name__)


# The names the stdlib (OpenSSL) gives to distinguished name attributes;
# other attributes keep their dotted OID.
_ATTRIBUTE_NAMES = {
    "2.5.4.3": "commonName",
    "2.5.4.4": "surname",
    "2.5.4.5": "serialNumber",
    "2.5.4.6": "countryName",
    "2.5.4.7": "localityName",
    "2.5.4.8": "stateOrProvinceName",
    "2.5.4.9": "streetAddress",
    "2.5.4.10": "organizationName",
    "2.5.4.11": "organizationalUnitName",
    "2.5.4.12": "title",
    "2.5.4.13": "description",
    "2.5.4.15": "businessCategory",
    "2.5.4.17": "postalCode",
    "2.5.4.41": "name",
    "2.5.4.42": "givenName",
    "2.5.4.43": "initials",
    "2.5.4.44": "generationQualifier",
    "2.5.4.46": "dnQualifier",
    "2.5.4.65": "pseudonym",
    "2.5.4.16": "postalAddress",
    "2.5.4.18": "postOfficeBox",
    "2.5.4.20": "telephoneNumber",
    "2.5.4.45": "x500UniqueIdentifier",
    "2.5.4.72": "role",
    "2.5.4.97": "organizationIdentifier",
    "1.2.840.113549.1.9.2": "unstructuredName",
    "0.9.2342.19200300.100.1.3": "rfc822Mailbox",
    "0.9.2342.19200300.100.1.1": "userId",
    "0.9.2342.19200300.100.1.25": "domainComponent",
    "1.2.840.113549.1.9.1": "emailAddress",
    "1.3.6.1.4.1.311.60.2.1.1": "jurisdictionLocalityName",
    "1.3.6.1.4.1.311.60.2.1.2": "jurisdictionStateOrProvinceName",
    "1.3.6.1.4.1.311.60.2.1.3": "jurisdictionCountryName",
}


def _dn_to_stdlib(components):
    # Certificate order, as the stdlib's dict has it.
    return tuple(
        tuple((_ATTRIBUTE_NAMES.get(oid, oid), value) for oid, value in rdn)
        for rdn in components)


_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep",
           "Oct", "Nov", "Dec")


def _asn1_time(epoch):
    # The format of OpenSSL's ASN1_TIME_print(), which the stdlib returns.
    t = _time.gmtime(epoch)
    return "%s %2d %02d:%02d:%02d %d GMT" % (
        _MONTHS[t.tm_mon - 1], t.tm_mday, t.tm_hour, t.tm_min, t.tm_sec,
        t.tm_year)


def decode_certificate(der):
    """A DER certificate as the dict :meth:`ssl.SSLObject.getpeercert`
    returns."""
    info = _gnutls.certificate_info(der)
    cert = {
        "subject": _dn_to_stdlib(info.get("subject_components", ())),
        "issuer": _dn_to_stdlib(info.get("issuer_components", ())),
        "version": info["version"],
        "serialNumber": _serial_number(info["serial"]),
        "notBefore": _asn1_time(info["not_before"]),
        "notAfter": _asn1_time(info["not_after"]),
    }
    sans = info.get("subject_alt_names")
    if sans:
        cert["subjectAltName"] = tuple(
            (kind, _stdlib_ip(value) if kind == "IP Address" else value)
            for kind, value in sans)
    for key, name in (("ocsp", "OCSP"), ("ca_issuers", "caIssuers"),
                      ("crl_distribution_points", "crlDistributionPoints")):
        if info.get(key):
            cert[name] = tuple(info[key])
    return cert


def _serial_number(der_hex):
    # The engine gives the DER content octets; the stdlib shows the number,
    # without the zero octet DER puts before a first octet >= 0x80.
    if (len(der_hex) > 2 and der_hex.startswith("00")
            and int(der_hex[2:4], 16) >= 0x80):
        return der_hex[2:]
    return der_hex


def _stdlib_ip(value):
    # The stdlib writes IPv6 addresses as eight uncompressed hex groups.
    if ":" not in value:
        return value
    try:
        groups = _ipaddress.IPv6Address(value).exploded.split(":")
    except ValueError:
        return value
    return ":".join("%X" % int(group, 16) for group in groups)
