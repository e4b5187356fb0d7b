# Copyright (C) 2026 The aio_gnutls_transport authors
# SPDX-License-Identifier: LGPL-2.1-or-later
"""GnutlsContext: an ssl.SSLContext look-alike whose TLS is done by GnuTLS.

The class derives from the stdlib's :class:`ssl.SSLContext` so that code
which checks ``isinstance(ctx, ssl.SSLContext)`` (asyncio itself, many
libraries) accepts it, but none of the OpenSSL machinery underneath is
used: certificates, trust anchors and verification settings live in a
GnuTLS credentials object, and every connection gets a fresh
:class:`_gnutls.Session`.

Everything of the stdlib API that has no GnuTLS counterpart here raises
:class:`NotImplementedError` instead of silently doing nothing.
"""

import inspect as _inspect
import os as _os
import ssl as _stdlib_ssl

from . import _gnutls
from ._bio import GnutlsSSLObject
from ._config import DEFAULT_PRIORITY, default_priority
from ._protocol import GnutlsSession, decode_certificate

__all__ = ["GnutlsContext", "DEFAULT_PRIORITY"]

_CERT_NONE = _stdlib_ssl.CERT_NONE
_CERT_OPTIONAL = _stdlib_ssl.CERT_OPTIONAL
_CERT_REQUIRED = _stdlib_ssl.CERT_REQUIRED
_PROTOCOL_TLS_CLIENT = _stdlib_ssl.PROTOCOL_TLS_CLIENT
_PROTOCOL_TLS_SERVER = _stdlib_ssl.PROTOCOL_TLS_SERVER
_PROTOCOL_TLS = _stdlib_ssl.PROTOCOL_TLS

_TLSVersion = _stdlib_ssl.TLSVersion

# The GnuTLS name of each version minimum_version/maximum_version can cut.
_VERSION_NAMES = (
    (_TLSVersion.SSLv3, "VERS-SSL3.0"),
    (_TLSVersion.TLSv1, "VERS-TLS1.0"),
    (_TLSVersion.TLSv1_1, "VERS-TLS1.1"),
    (_TLSVersion.TLSv1_2, "VERS-TLS1.2"),
    (_TLSVersion.TLSv1_3, "VERS-TLS1.3"),
)

# GnuTLS's limits on ALPN: the length of a name, the number of names.
_ALPN_MAX_NAME = 32
_ALPN_MAX_PROTOCOLS = 8

#: Where a priority came from when the application set it.
_SET_BY_APPLICATION = "set by the application (gnutls_set_priority)"


class _Unsupported(NotImplementedError, AttributeError):
    """An SSLContext feature that aio_gnutls_transport does not provide.

    It is a NotImplementedError; it is also an AttributeError so that
    feature probes such as ``hasattr(ctx, "post_handshake_auth")`` answer
    False instead of blowing up.
    """


def _unsupported_message(name):
    return ("aio_gnutls_transport.ssl.SSLContext.%s is not supported "
            "(TLS is provided by GnuTLS; see GnutlsContext)" % name)


def _make_unsupported_method(name):
    def method(self, *args, **kwargs):
        raise _Unsupported(_unsupported_message(name))
    method.__name__ = name
    method.__qualname__ = "GnutlsContext." + name
    method.__doc__ = "Not supported: raises NotImplementedError."
    return method


def _make_unsupported_property(name):
    def fget(self):
        raise _Unsupported(_unsupported_message(name))

    def fset(self, value):
        raise _Unsupported(_unsupported_message(name))

    def fdel(self):
        raise _Unsupported(_unsupported_message(name))

    return property(fget, fset, fdel,
                    "Not supported: raises NotImplementedError.")


class GnutlsContext(_stdlib_ssl.SSLContext):
    """TLS settings shared by connections, backed by GnuTLS.

    Use it wherever asyncio takes an ``ssl=`` argument, on a loop created by
    :class:`aio_gnutls_transport.GnutlsEventLoopPolicy` (or
    :class:`aio_gnutls_transport.GnutlsEventLoop`).  On any other event
    loop (asyncio's own, uvloop's) the loop's TLS code drives GnuTLS
    through :meth:`wrap_bio`.
    """

    #: The class of the objects :meth:`wrap_bio` returns.
    sslobject_class = GnutlsSSLObject

    def __new__(cls, protocol=_PROTOCOL_TLS_CLIENT, *args, **kwargs):
        if protocol is None:
            protocol = _PROTOCOL_TLS_CLIENT
        if protocol not in (_PROTOCOL_TLS_CLIENT, _PROTOCOL_TLS_SERVER,
                            _PROTOCOL_TLS):
            raise ValueError(
                "unsupported protocol %r: use PROTOCOL_TLS_CLIENT or "
                "PROTOCOL_TLS_SERVER" % (protocol,))
        return super().__new__(cls, protocol)

    def __init__(self, protocol=_PROTOCOL_TLS_CLIENT):
        if protocol is None:
            protocol = _PROTOCOL_TLS_CLIENT
        self._gnutls_protocol = protocol
        self._credentials = _gnutls.Credentials()
        side = {_PROTOCOL_TLS_CLIENT: "client",
                _PROTOCOL_TLS_SERVER: "server"}.get(protocol, "default")
        # The site policy is read now; a bad one fails here, loudly.
        self._base_priority, self._priority_source = default_priority(side)
        # TLS 1.2 at least, as the stdlib's contexts (3.10+): a policy
        # that still enables TLS 1.0/1.1 loses them here unless the
        # application lowers minimum_version.
        self._minimum_version = _TLSVersion.TLSv1_2
        self._maximum_version = _TLSVersion.MAXIMUM_SUPPORTED
        self._cipher_fragment = None
        self._priority = self._narrow(self._base_priority,
                                      self._minimum_version,
                                      self._maximum_version, None)
        if protocol == _PROTOCOL_TLS_CLIENT:
            self._verify_mode = _CERT_REQUIRED
            self._check_hostname = True
        else:
            self._verify_mode = _CERT_NONE
            self._check_hostname = False
        self._alpn_protocols = None     # list of bytes, or None
        self._sni_callback = None
        self._keylog_filename = None
        self._keylog = None             # a _KeyLogFile, or None
        self._resume_session = None     # a GnutlsSession (gnutls_resume())

    def __repr__(self):
        return "<%s protocol=%s verify_mode=%s check_hostname=%s>" % (
            type(self).__name__, _stdlib_ssl._SSLMethod(self._gnutls_protocol).name,
            _stdlib_ssl.VerifyMode(self._verify_mode).name,
            self._check_hostname)

    def __reduce__(self):
        raise TypeError("cannot pickle %r object" % type(self).__name__)

    # -- verification settings ------------------------------------------

    @property
    def protocol(self):
        return _stdlib_ssl._SSLMethod(self._gnutls_protocol)

    @property
    def verify_mode(self):
        return _stdlib_ssl.VerifyMode(self._verify_mode)

    @verify_mode.setter
    def verify_mode(self, value):
        try:
            mode = int(value)
        except (TypeError, ValueError):
            raise TypeError("verify_mode must be an int, not %s"
                            % type(value).__name__) from None
        if mode not in (_CERT_NONE, _CERT_OPTIONAL, _CERT_REQUIRED):
            raise ValueError("invalid value for verify_mode")
        if mode == _CERT_NONE and self._check_hostname:
            raise ValueError("Cannot set verify_mode to CERT_NONE when "
                             "check_hostname is enabled.")
        self._verify_mode = mode

    @property
    def check_hostname(self):
        return self._check_hostname

    @check_hostname.setter
    def check_hostname(self, value):
        value = bool(value)
        if value and self._verify_mode == _CERT_NONE:
            self._verify_mode = _CERT_REQUIRED
        self._check_hostname = value

    # -- certificates ----------------------------------------------------

    def load_cert_chain(self, certfile, keyfile=None, password=None):
        """Load our certificate chain and private key (PEM or DER files).

        *password* may be a str, bytes, bytearray or a callable returning
        one of those; a callable is only called when the key needs it.
        """
        if password is None or isinstance(password, (str, bytes, bytearray)):
            self._credentials.load_cert_chain(certfile, keyfile, password)
            return
        if not callable(password):
            raise TypeError("password should be a string, bytes or callable")
        try:
            self._credentials.load_cert_chain(certfile, keyfile, None)
            return
        except _gnutls.GnutlsError:
            pass
        pw = password()
        if not isinstance(pw, (str, bytes, bytearray)):
            raise TypeError("password callback must return a string, bytes "
                            "or bytearray")
        self._credentials.load_cert_chain(certfile, keyfile, pw)

    def load_verify_locations(self, cafile=None, capath=None, cadata=None):
        """Add trust anchors (CA certificates, and CRLs found in files).

        *cadata* is PEM text when a str, DER when bytes-like.
        """
        if cafile is None and capath is None and cadata is None:
            raise TypeError("cafile, capath and cadata cannot be all omitted")
        if cafile is not None:
            self._credentials.load_verify_file(cafile)
        if capath is not None:
            self._credentials.load_verify_dir(capath)
        if cadata is not None:
            if isinstance(cadata, str):
                try:
                    data = cadata.encode("ascii")
                except UnicodeEncodeError:
                    raise TypeError("cadata should be an ASCII string or a "
                                    "bytes-like object") from None
                self._credentials.load_verify_mem(data, der=False)
            else:
                try:
                    data = memoryview(cadata)
                except TypeError:
                    raise TypeError("cadata should be an ASCII string or a "
                                    "bytes-like object") from None
                with data:
                    self._credentials.load_verify_mem(data.tobytes(), der=True)

    def load_default_certs(self, purpose=_stdlib_ssl.Purpose.SERVER_AUTH):
        """Trust the system's CA store."""
        if not isinstance(purpose, _stdlib_ssl._ASN1Object):
            raise TypeError(purpose)
        self.set_default_verify_paths()

    def set_default_verify_paths(self):
        """Trust the system's CA store, as GnuTLS finds it.

        On Debian that is the CA bundle file, on Fedora the p11-kit trust
        module.  A machine without one raises GnutlsError at once, rather
        than leaving a context that fails every connection later.
        """
        self._credentials.load_system_trust()

    def cert_store_stats(self):
        """Counts of what was loaded for verification, like the stdlib's:
        ``x509`` the trusted certificates, ``x509_ca`` those of them that
        are CA certificates, ``crl`` the CRLs."""
        ders = self._credentials.ca_certificates()
        cas = sum(1 for der in ders if _gnutls.certificate_info(der)["ca"])
        return {"x509": len(ders), "crl": self._credentials.crl_count,
                "x509_ca": cas}

    def get_ca_certs(self, binary_form=False):
        """The trusted CA certificates, like the stdlib's: DER bytes with
        *binary_form*, otherwise dicts in the shape of ``getpeercert()``."""
        ders = [der for der in self._credentials.ca_certificates()
                if _gnutls.certificate_info(der)["ca"]]
        if binary_form:
            return ders
        return [decode_certificate(der) for der in ders]

    # -- GnuTLS specifics ------------------------------------------------

    def gnutls_set_priority(self, priority):
        """Use the GnuTLS priority string *priority* for new connections.

        It replaces the site policy's (or the built-in) string for this
        context; GnuTLS's system configuration still applies on top.  The
        string is parsed at once: an invalid one raises GnutlsError naming
        the position of the error.
        """
        if not isinstance(priority, str):
            raise TypeError("priority must be a str, not %s"
                            % type(priority).__name__)
        base = _gnutls.Priority(priority)
        self._priority = self._narrow(base, self._minimum_version,
                                      self._maximum_version,
                                      self._cipher_fragment)
        self._base_priority = base
        self._priority_source = _SET_BY_APPLICATION

    @property
    def gnutls_priority(self):
        """The GnuTLS priority string new connections use."""
        return self._priority.string

    @property
    def gnutls_priority_source(self):
        """Where the priority string came from: 'FILE:LINE' of the site
        policy, the application, or the built-in default."""
        return self._priority_source

    @property
    def gnutls_priority_object(self):
        """The parsed priority (its protocols(), ciphers(), groups()...)."""
        return self._priority

    # -- narrowing the policy ----------------------------------------------

    @staticmethod
    def _narrow(base, minimum, maximum, cipher_fragment):
        """BASE with versions outside [minimum, maximum] removed and
        CIPHER_FRAGMENT appended; nothing BASE disables may come back."""
        parts = [base.string]
        enabled = set(base.protocols())
        for version, name in _VERSION_NAMES:
            if name[len("VERS-"):] not in enabled:
                continue        # nothing to remove
            if ((minimum != _TLSVersion.MINIMUM_SUPPORTED and version < minimum)
                    or (maximum != _TLSVersion.MAXIMUM_SUPPORTED
                        and version > maximum)):
                parts.append("-" + name)
        if cipher_fragment:
            parts.append(cipher_fragment)
        if len(parts) == 1:
            return base
        narrowed = _gnutls.Priority(":".join(parts))
        for what in ("protocols", "ciphers", "macs", "key_exchanges",
                     "groups", "signatures"):
            added = (set(getattr(narrowed, what)())
                     - set(getattr(base, what)()))
            if added:
                raise ValueError(
                    "%r would enable %s (%s) that the policy %r leaves out; "
                    "these settings can only narrow it"
                    % (cipher_fragment, what.replace("_", " "),
                       ", ".join(sorted(added)), base.string))
        return narrowed

    def _set_narrowing(self, minimum, maximum, cipher_fragment):
        self._priority = self._narrow(self._base_priority, minimum, maximum,
                                      cipher_fragment)
        self._minimum_version = minimum
        self._maximum_version = maximum
        self._cipher_fragment = cipher_fragment

    @property
    def minimum_version(self):
        """The lowest TLS version to use; it removes older versions from
        the priority string (it cannot enable one the policy removed)."""
        return self._minimum_version

    def _set_versions(self, minimum, maximum):
        try:
            self._set_narrowing(minimum, maximum, self._cipher_fragment)
        except _gnutls.GnutlsError:
            raise ValueError(
                "minimum_version %s and maximum_version %s leave no TLS "
                "version that the priority %r enables (%s)"
                % (minimum.name, maximum.name, self._base_priority.string,
                   ", ".join(self._base_priority.protocols()))) from None

    @minimum_version.setter
    def minimum_version(self, value):
        self._set_versions(_TLSVersion(value), self._maximum_version)

    @property
    def maximum_version(self):
        """The highest TLS version to use; it removes newer versions from
        the priority string."""
        return self._maximum_version

    @maximum_version.setter
    def maximum_version(self, value):
        self._set_versions(self._minimum_version, _TLSVersion(value))

    def set_ciphers(self, ciphers):
        """Narrow the ciphers with a GnuTLS priority *fragment*.

        Not an OpenSSL cipher list: the argument is appended to the
        context's priority string, e.g. ``"-CIPHER-ALL:+AES-256-GCM"``
        keeps AES-256-GCM only.  A fragment that would enable anything the
        policy leaves out raises ValueError.
        """
        if not isinstance(ciphers, str):
            raise TypeError("ciphers must be a str, not %s"
                            % type(ciphers).__name__)
        fragment = ciphers.strip().strip(":")
        if not fragment:
            raise ValueError("set_ciphers() needs a GnuTLS priority "
                             "fragment such as '-CIPHER-ALL:+AES-256-GCM'")
        for item in fragment.split(":"):
            # Only algorithm items: a %FLAG or %PROFILE could loosen
            # certificate checks, a keyword would replace the policy.
            if item.startswith("%"):
                raise ValueError(
                    "set_ciphers() cannot set %r: flags and profiles belong "
                    "to the policy, which they could loosen" % item)
            if item[:1] not in ("+", "-", "!"):
                raise _gnutls.GnutlsError(
                    0, "set_ciphers() takes a GnuTLS priority fragment of "
                    "'+ALGORITHM' and '-ALGORITHM' items (e.g. "
                    "'-CIPHER-ALL:+AES-256-GCM'), not an OpenSSL cipher "
                    "list: %r" % ciphers)
        try:
            self._set_narrowing(self._minimum_version, self._maximum_version,
                                fragment)
        except _gnutls.GnutlsError as exc:
            raise _gnutls.GnutlsError(
                exc.errno, "set_ciphers(%r) (a GnuTLS priority fragment, "
                "not an OpenSSL cipher list): %s" % (ciphers, exc)) from None

    @property
    def gnutls_credentials(self):
        """The underlying :class:`_gnutls.Credentials` object."""
        return self._credentials

    # -- ALPN, server names, key log ----------------------------------------

    def set_alpn_protocols(self, alpn_protocols):
        """Offer (client) or accept (server) these ALPN protocols, e.g.
        ``["h2", "http/1.1"]``, in order of preference.

        A server picks the first of its own protocols that the client
        offers; with none in common the connection goes on without ALPN
        (``selected_alpn_protocol()`` is then None), as with the stdlib.
        An empty list turns ALPN off.
        """
        protocols = []
        for protocol in alpn_protocols:
            data = bytes(protocol, "ascii")
            if not 0 < len(data) <= 255:
                raise _stdlib_ssl.SSLError(
                    "ALPN protocols must be 1 to 255 in length")
            # GnuTLS's own limits, so that the mistake shows here rather
            # than in every connection.
            if len(data) > _ALPN_MAX_NAME:
                raise ValueError("ALPN protocol %r is longer than the %d "
                                 "bytes GnuTLS supports"
                                 % (protocol, _ALPN_MAX_NAME))
            protocols.append(data)
        if len(protocols) > _ALPN_MAX_PROTOCOLS:
            raise ValueError("GnuTLS supports at most %d ALPN protocols, "
                             "not %d" % (_ALPN_MAX_PROTOCOLS, len(protocols)))
        self._alpn_protocols = protocols or None

    @property
    def sni_callback(self):
        """Server side: called as ``callback(ssl_object, server_name,
        ssl_context)`` once the client's hello has been read.

        *server_name* is the name the client asked for (SNI) as a str (an
        IDN as its A-label, ``xn--...``), or None.  *ssl_object* is the
        connection's ``GnutlsObject`` (or, under ``wrap_bio()``, the
        ``GnutlsSSLObject``); setting its ``context`` to another server
        GnutlsContext serves that context's certificate and key, and
        client certificates are then checked against that context's
        trusted CAs and CRLs, as with the stdlib (OpenSSL switches the
        whole certificate store); the verify mode, ALPN and priority stay
        this context's.  The callback
        returns None to go on, or an ``ssl.ALERT_DESCRIPTION_*`` number
        to refuse the client with that alert.  An exception raised by the
        callback fails the handshake with that exception (and an
        internal_error alert for the client).
        """
        return self._sni_callback

    @sni_callback.setter
    def sni_callback(self, callback):
        if self._gnutls_protocol == _PROTOCOL_TLS_CLIENT:
            raise ValueError("sni_callback cannot be set on TLS_CLIENT "
                             "context")
        if callback is not None and not callable(callback):
            raise TypeError("not a callable object")
        self._sni_callback = callback

    def set_servername_callback(self, server_name_callback):
        """The older form of :attr:`sni_callback` (deprecated in the
        stdlib): the same callback, with the server name IDNA-encoded."""
        if server_name_callback is None:
            self.sni_callback = None
            return
        if not callable(server_name_callback):
            raise TypeError("not a callable object")

        def shim(ssl_object, server_name, ssl_context):
            if server_name is not None:
                server_name = server_name.encode("idna").decode("ascii")
            return server_name_callback(ssl_object, server_name, ssl_context)

        self.sni_callback = shim

    @property
    def keylog_filename(self):
        """A file to which the secrets of this context's connections are
        appended, in the NSS key log format Wireshark reads; None (the
        default) logs nothing.

        Only connections made with this context are logged: nothing is
        set process-wide and no environment variable is read (the stdlib's
        create_default_context() reads SSLKEYLOGFILE; this one does not).
        The file is opened when the attribute is set (an OSError then if it
        cannot be), created with mode 0600, and a comment line is written
        first when it is empty.  Each line is written whole with a single
        write(), so connections logging at the same time do not mix their
        lines.  Setting None (or another file) stops logging to the old
        file for new connections; connections already made keep logging
        to it until they end.
        """
        return self._keylog_filename

    @keylog_filename.setter
    def keylog_filename(self, filename):
        if filename is None:
            self._keylog = None
            self._keylog_filename = None
            return
        self._keylog = _KeyLogFile(filename)
        self._keylog_filename = filename

    # -- session resumption ---------------------------------------------------

    def gnutls_resume(self, session):
        """A copy of this client context that offers *session* to resume.

        *session* is a :class:`GnutlsSession`, from the ``session``
        attribute of an earlier connection's ``ssl_object``.  asyncio has
        no way to hand a session to ``create_connection()``, so pass the
        returned context instead::

            saved = writer.get_extra_info("ssl_object").session
            ...
            reader, writer = await asyncio.open_connection(
                host, port, ssl=ctx.gnutls_resume(saved),
                server_hostname=host)
            writer.get_extra_info("ssl_object").session_reused  # True

        The copy shares this context's credentials (certificates, trust)
        and starts with its other settings; later changes to either
        context do not reach the other.  It offers the session to the
        server named in ``session.server_hostname`` only, and only if this
        context verifies servers as the one that made the session did:
        otherwise connecting with it raises ValueError.  If the server does not
        accept the session, a full handshake is done (and
        ``session_reused`` is False).  ``gnutls_resume(None)`` gives a
        copy that offers nothing.
        """
        if self._gnutls_protocol == _PROTOCOL_TLS_SERVER:
            raise ValueError("only a client context can resume a session")
        if session is not None and not isinstance(session, GnutlsSession):
            raise TypeError("session must be a GnutlsSession, not %s"
                            % type(session).__name__)
        clone = type(self).__new__(type(self), self._gnutls_protocol)
        clone.__dict__.update(self.__dict__)
        clone._resume_session = session
        return clone

    @property
    def gnutls_resume_session(self):
        """The :class:`GnutlsSession` this context offers (see
        :meth:`gnutls_resume`), or None."""
        return self._resume_session

    # -- memory BIOs -----------------------------------------------------------

    def wrap_bio(self, incoming, outgoing, server_side=False,
                 server_hostname=None, session=None):
        """A TLS connection over two :class:`ssl.MemoryBIO` objects.

        Returns a :class:`GnutlsSSLObject`, which behaves like the stdlib's
        :class:`ssl.SSLObject`: the event loops' own TLS code (asyncio's
        and uvloop's), anyio and others drive it unchanged.  *session* (a
        :class:`GnutlsSession`, client side) is offered for resumption.
        """
        return self.sslobject_class._create(
            self, incoming, outgoing, server_side=server_side,
            server_hostname=server_hostname, session=session)

    # -- sessions of the engine --------------------------------------------------

    def _new_session(self, server_side, server_hostname=None, *,
                     client_hello=None, session=None):
        """A fresh in-memory TLS session configured from this context.

        *client_hello* (server side) is the engine's hook for the server
        name callback; *session* (client side) a GnutlsSession to offer,
        else the one set with gnutls_resume().
        """
        protocol = self._gnutls_protocol
        options = {}
        if self._alpn_protocols:
            options["alpn_protocols"] = self._alpn_protocols
        if self._keylog is not None:
            options["keylog"] = self._keylog
        if server_side:
            if protocol == _PROTOCOL_TLS_CLIENT:
                raise ValueError("Cannot create a server socket with a "
                                 "PROTOCOL_TLS_CLIENT context")
            if client_hello is not None:
                options["client_hello"] = client_hello
            return _gnutls.Session(self._credentials, self._priority,
                                   server_side=True,
                                   verify_mode=self._verify_mode, **options)
        if protocol == _PROTOCOL_TLS_SERVER:
            raise ValueError("Cannot create a client socket with a "
                             "PROTOCOL_TLS_SERVER context")
        if self._check_hostname and not server_hostname:
            raise ValueError("check_hostname requires server_hostname")
        if session is None:
            session = self._resume_session
        if session is not None:
            if not isinstance(session, GnutlsSession):
                raise TypeError("session must be a GnutlsSession, not %s"
                                % type(session).__name__)
            session._check_offer(self._credentials, self._verify_mode,
                                 self._check_hostname, server_hostname)
            options["session_data"] = session._data
        return _gnutls.Session(self._credentials, self._priority,
                               server_side=False,
                               server_hostname=server_hostname or None,
                               verify_mode=self._verify_mode,
                               check_hostname=self._check_hostname,
                               **options)


class _KeyLogFile:
    """The file of a context's key log: GnuTLS appends lines to its fd.

    Each session keeps a reference, so the descriptor stays open (and is
    never reused for another file) until the last one is gone.
    """

    __slots__ = ("_fd", "__weakref__")

    _HEADER = b"# TLS secrets log file, generated by aio_gnutls_transport\n"

    def __init__(self, filename):
        self._fd = -1
        fd = _os.open(filename,
                      _os.O_WRONLY | _os.O_APPEND | _os.O_CREAT
                      | getattr(_os, "O_CLOEXEC", 0), 0o600)
        try:
            if _os.fstat(fd).st_size == 0:
                _os.write(fd, self._HEADER)
        except BaseException:
            _os.close(fd)
            raise
        self._fd = fd

    def fileno(self):
        return self._fd

    def __del__(self):
        fd, self._fd = self._fd, -1
        if fd >= 0:
            try:
                _os.close(fd)
            except OSError:
                pass


# Names of the stdlib SSLContext that GnutlsContext implements itself.
_IMPLEMENTED = frozenset({
    "protocol", "verify_mode", "check_hostname", "load_cert_chain",
    "load_verify_locations", "load_default_certs", "set_default_verify_paths",
    "cert_store_stats", "get_ca_certs",
    "minimum_version", "maximum_version", "set_ciphers",
    "set_alpn_protocols", "sni_callback", "set_servername_callback",
    "keylog_filename", "wrap_bio", "sslobject_class",
})


def _disable_unsupported():
    # Whatever this Python's SSLContext offers publicly and we do not
    # implement must fail loudly rather than act on the unused OpenSSL
    # context underneath.
    for name in dir(_stdlib_ssl.SSLContext):
        if name.startswith("_") or name in _IMPLEMENTED:
            continue
        if name in GnutlsContext.__dict__:
            continue
        attr = _inspect.getattr_static(_stdlib_ssl.SSLContext, name)
        if isinstance(attr, (staticmethod, classmethod)) or (
                callable(attr) and not isinstance(attr, type)
                and not _inspect.isdatadescriptor(attr)):
            setattr(GnutlsContext, name, _make_unsupported_method(name))
        else:
            setattr(GnutlsContext, name, _make_unsupported_property(name))


_disable_unsupported()
