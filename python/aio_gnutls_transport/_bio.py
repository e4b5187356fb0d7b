# Copyright (C) 2026 The aio_gnutls_transport authors
# SPDX-License-Identifier: LGPL-2.1-or-later
"""GnutlsSSLObject: the stdlib's ssl.SSLObject over memory BIOs, with GnuTLS.

:meth:`GnutlsContext.wrap_bio` returns one.  Code written for the stdlib's
object drives it unchanged: asyncio's own TLS transport (asyncio.sslproto,
used by every event loop but :class:`GnutlsEventLoop` for a GnutlsContext),
uvloop's, anyio's TLSStream and others.  Ciphertext from the peer is written
by the caller into the *incoming* :class:`ssl.MemoryBIO`; ciphertext for the
peer appears in *outgoing*.

The stdlib's conventions are kept where that code depends on them:

* a call that needs more input raises :class:`ssl.SSLWantReadError` (after
  putting whatever must be sent into *outgoing*);
* ``read()`` returns ``b''`` (or 0 into a buffer) once the peer's
  close_notify has arrived, and raises :class:`ssl.SSLZeroReturnError`
  instead once we have sent ours too;
* the end of the input (``incoming.write_eof()``) without close_notify
  raises :class:`PrematureTerminationError`, an :class:`ssl.SSLEOFError`;
* a rejected certificate raises :class:`CertificateVerificationError`, an
  :class:`ssl.SSLCertVerificationError`; other failures a GnutlsError, an
  :class:`ssl.SSLError`;
* input is taken from *incoming* one TLS record at a time, as OpenSSL does:
  what the handshake did not need stays there for ``read()``, and
  ``incoming.pending`` plus ``pending()`` tell whether a ``read()`` can make
  progress (uvloop relies on it);
* ``read(n)`` goes on to the next records until *n* bytes are there or no
  whole record is left, so a short read means the input is used up.
  (asyncio's buffered reading makes its second read into a copy of the
  application's buffer when that is a bytearray: the stdlib's object,
  which stops at the end of each record, loses data there; this one does
  not.)
"""

import ssl as _stdlib_ssl

from . import _gnutls
from ._protocol import _TLSConnectionInfo, _client_hello_hook

__all__ = ["GnutlsSSLObject"]

_len = len

_SSLError = _stdlib_ssl.SSLError
_SSLWantReadError = _stdlib_ssl.SSLWantReadError
_SSLZeroReturnError = _stdlib_ssl.SSLZeroReturnError
_GnutlsError = _gnutls.GnutlsError
_PrematureTerminationError = _gnutls.PrematureTerminationError

# TLS record content types: change_cipher_spec, alert, handshake,
# application_data, heartbeat.
_RECORD_TYPES = frozenset((20, 21, 22, 23, 24))
# The largest record a peer may send (TLS 1.2 ciphertext limit) and its
# 5-byte header.
_MAX_RECORD = 5 + 16384 + 2048


def _want_read():
    return _SSLWantReadError(_stdlib_ssl.SSL_ERROR_WANT_READ,
                             "The operation did not complete (read)")


def _error(cls, message, reason=None):
    exc = cls(0, message)
    exc.reason = reason
    exc.library = "GnuTLS"
    return exc


class GnutlsSSLObject(_TLSConnectionInfo):
    """A TLS connection over memory BIOs, like :class:`ssl.SSLObject`.

    Made by :meth:`GnutlsContext.wrap_bio`; it has no public constructor.
    Beyond the stdlib's interface: ``session`` gives a
    :class:`GnutlsSession` to resume with, ``get_channel_binding()`` knows
    'tls-exporter' and 'tls-server-end-point' too, and
    ``get_unverified_chain()`` and ``description()`` describe the peer and
    the session.
    """

    def __init__(self, *args, **kwargs):
        raise TypeError(
            "%s does not have a public constructor. Instances are returned "
            "by GnutlsContext.wrap_bio()." % type(self).__name__)

    @classmethod
    def _create(cls, context, incoming, outgoing, server_side=False,
                server_hostname=None, session=None):
        for name, bio in (("incoming", incoming), ("outgoing", outgoing)):
            if not isinstance(bio, _stdlib_ssl.MemoryBIO):
                raise TypeError("%s must be an ssl.MemoryBIO, not %s"
                                % (name, type(bio).__name__))
        server_side = bool(server_side)
        if isinstance(server_hostname, (bytes, bytearray)):
            server_hostname = bytes(server_hostname).decode("ascii")
        if server_side:
            if session is not None:
                raise ValueError("Cannot set session for server-side "
                                 "SSLObject")
            server_hostname = None
        self = cls.__new__(cls)
        _TLSConnectionInfo.__init__(self, None, context, context._verify_mode)
        self._incoming = incoming
        self._outgoing = outgoing
        self._record = bytearray()   # the start of the next record
        self._plain = b""            # plaintext read() has not returned
        self._plain_pos = 0
        self._eof_fed = False        # the engine knows the input ended
        self._started = False        # the handshake has begun
        self._read_closed = False    # the peer's close_notify was read
        self._session = context._new_session(
            server_side, server_hostname,
            client_hello=(_client_hello_hook(context, self)
                          if server_side else None),
            session=session)
        return self

    # -- moving bytes between the BIOs and the engine ---------------------------

    def _feed_record(self):
        """Give the engine the next whole record from *incoming* (or the
        end of the input): True if something was given, False if more
        input is needed first."""
        record = self._record
        incoming = self._incoming
        while True:
            have = _len(record)
            if have >= 5:
                need = 5 + ((record[3] << 8) | record[4])
                if record[0] not in _RECORD_TYPES or need > _MAX_RECORD:
                    need = have     # not TLS: let the engine reject it
                if have >= need:
                    self._session.feed(bytes(record[:need]))
                    del record[:need]
                    return True
            else:
                need = 5
            if incoming.pending:
                record += incoming.read(need - have)
                continue
            if incoming.eof and not self._eof_fed:
                if record:
                    self._session.feed(bytes(record))
                    record.clear()
                self._session.feed_eof()
                self._eof_fed = True
                return True
            return False

    def _flush(self):
        session = self._session
        if session.pending_output:
            self._outgoing.write(session.take_output())

    def _flush_after_error(self):
        # The alert that tells the peer why goes out, if it still can.
        try:
            self._flush()
        except Exception:
            pass

    def _truncated(self, during):
        return _error(_PrematureTerminationError,
                      "%s: the peer closed the connection without "
                      "close_notify" % during, "PREMATURE_TERMINATION")

    # -- the handshake ---------------------------------------------------------

    def do_handshake(self):
        """Run the handshake; SSLWantReadError while input is missing."""
        session = self._session
        if session.handshake_done:
            return
        self._started = True
        try:
            while not session.handshake():
                if self._eof_fed:
                    raise _error(
                        _PrematureTerminationError,
                        "TLS handshake failed: the peer closed the "
                        "connection during the handshake",
                        "PREMATURE_TERMINATION")
                if not self._feed_record():
                    self._flush()
                    raise _want_read()
        except _SSLError:
            self._flush_after_error()
            raise
        except Exception as exc:
            # The server name callback raised: the stdlib's callers expect
            # an SSLError from a failed handshake.
            self._flush_after_error()
            raise _error(_GnutlsError,
                         "TLS handshake failed: %s: %s"
                         % (type(exc).__name__, exc),
                         "CALLBACK_FAILED") from exc
        self._flush()

    # -- data ------------------------------------------------------------------

    def read(self, len=1024, buffer=None):
        """Up to *len* bytes of plaintext, or with *buffer* the number of
        bytes put into it.  ``b''``/0 once the peer sent close_notify."""
        if not self._session.handshake_done:
            self.do_handshake()
        if buffer is not None:
            view = memoryview(buffer).cast("B")
            if len <= 0 or len > view.nbytes:
                len = view.nbytes
        elif len < 0:
            raise ValueError("size should not be negative")
        if len == 0:
            return b"" if buffer is None else 0
        data = self._read(len)
        if buffer is None:
            return data
        count = _len(data)
        view[:count] = data
        return count

    def _read(self, size):
        plain = self._plain
        if plain:
            pos = self._plain_pos
            end = pos + size
            if end < _len(plain):
                self._plain_pos = end
                return plain[pos:end]
            self._plain = b""
            self._plain_pos = 0
            data = plain[pos:] if pos else plain
            if _len(data) == size or self._read_closed:
                return data
            chunks = [data]
            have = _len(data)
        elif self._read_closed:
            return self._zero_return()
        else:
            chunks = []
            have = 0
        # Decrypt record after record while whole records are at hand,
        # until SIZE bytes are there: a request is filled as far as the
        # input allows (asyncio's buffered reading counts on it).
        session = self._session
        try:
            while have < size:
                data = session.read()
                if session.pending_output:
                    self._flush()
                if data:
                    chunks.append(data)
                    have += _len(data)
                    if session.pending_error:
                        break       # raised by the next call
                    continue
                if data is None:
                    self._read_closed = True
                    break
                if self._eof_fed:
                    if have:
                        break
                    raise self._truncated("TLS read failed")
                if not self._feed_record():
                    if have:
                        break
                    raise _want_read()
        except _SSLWantReadError:
            raise
        except BaseException:
            self._flush_after_error()
            raise
        if not chunks:
            return self._zero_return()
        data = chunks[0] if _len(chunks) == 1 else b"".join(chunks)
        if have > size:
            self._plain = data
            self._plain_pos = size
            return data[:size]
        return data

    def _zero_return(self):
        if self._session.close_notify_sent:
            raise _SSLZeroReturnError(
                _stdlib_ssl.SSL_ERROR_ZERO_RETURN,
                "TLS/SSL connection has been closed (EOF)")
        return b""

    def pending(self):
        """Plaintext bytes read() can return without more input."""
        plain = self._plain
        return _len(plain) - self._plain_pos if plain else 0

    def write(self, data):
        """Encrypt all of *data* into *outgoing*; returns its length."""
        session = self._session
        if not session.handshake_done:
            self.do_handshake()
        if session.close_notify_sent:
            raise _error(_GnutlsError, "cannot write after close_notify was "
                         "sent (unwrap())", "PROTOCOL_IS_SHUTDOWN")
        with memoryview(data) as view:
            count = view.nbytes
            if not count:
                return 0
            try:
                session.write(view)
            except BaseException:
                self._flush_after_error()
                raise
        self._flush()
        return count

    def unwrap(self):
        """Send close_notify, then wait for the peer's (SSLWantReadError
        until it has come; data that comes first is discarded)."""
        session = self._session
        if not session.handshake_done:
            raise _error(_GnutlsError, "cannot shut down the TLS connection "
                         "before the handshake is done", "SHUTDOWN_WHILE_IN_INIT")
        try:
            if not session.close_notify_sent:
                session.bye()
            self._flush()
            self._plain = b""
            self._plain_pos = 0
            while not self._read_closed:
                data = session.read()
                if session.pending_output:
                    self._flush()
                if data is None:
                    self._read_closed = True
                elif not data:
                    if self._eof_fed:
                        raise self._truncated("TLS shutdown failed")
                    if not self._feed_record():
                        raise _want_read()
        except _SSLWantReadError:
            raise
        except BaseException:
            self._flush_after_error()
            raise
        return None

    # -- session resumption ----------------------------------------------------

    def _set_session(self, value):
        if self._session.server_side:
            raise ValueError("Cannot set session for server-side SSLObject")
        if self._started:
            raise ValueError("Cannot set session after handshake.")
        # Nothing was exchanged yet: a new engine session offers it.
        self._session = self._context._new_session(
            False, self._session.server_hostname, session=value)

    session = property(
        _TLSConnectionInfo.session.fget, _set_session, None,
        "Client side: the GnutlsSession to resume later (None until there "
        "is one; TLS 1.3: until a read() after the handshake took in the "
        "server's ticket).  Set it before the handshake to offer a saved "
        "session (as wrap_bio(session=...) does).")
