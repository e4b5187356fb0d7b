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
import ssl as _stdlib_ssl

from . import _gnutls
from ._config import DEFAULT_PRIORITY, default_priority

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
    :class:`aio_gnutls_transport.GnutlsEventLoop`).
    """

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
        self._minimum_version = _TLSVersion.MINIMUM_SUPPORTED
        self._maximum_version = _TLSVersion.MAXIMUM_SUPPORTED
        self._cipher_fragment = None
        self._priority = self._base_priority
        if protocol == _PROTOCOL_TLS_CLIENT:
            self._verify_mode = _CERT_REQUIRED
            self._check_hostname = True
        else:
            self._verify_mode = _CERT_NONE
            self._check_hostname = False

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
        """Counts of what was loaded for verification, like the stdlib's.

        ``x509_ca`` counts the trusted CA certificates (anchors that stay
        on a PKCS#11 token included), ``crl`` the CRLs.
        """
        cas = self._credentials.ca_count
        return {"x509": cas, "crl": self._credentials.crl_count,
                "x509_ca": cas}

    def get_ca_certs(self, binary_form=False):
        """The trusted CA certificates held in memory, like the stdlib's.

        DER bytes with *binary_form*, otherwise dicts in the shape of
        ``getpeercert()``.  Anchors that stay on a PKCS#11 token (the
        p11-kit trust module, for one) are used but not listed.
        """
        ders = self._credentials.ca_certificates()
        if binary_form:
            return ders
        from ._protocol import decode_certificate
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
        for version, name in _VERSION_NAMES:
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
        try:
            self._set_narrowing(self._minimum_version, self._maximum_version,
                                fragment)
        except _gnutls.GnutlsError as exc:
            raise _gnutls.GnutlsError(
                exc.errno,
                "set_ciphers() takes a GnuTLS priority fragment (e.g. "
                "'-CIPHER-ALL:+AES-256-GCM'), not an OpenSSL cipher list: "
                "%s" % exc) from None

    @property
    def gnutls_credentials(self):
        """The underlying :class:`_gnutls.Credentials` object."""
        return self._credentials

    def _new_session(self, server_side, server_hostname=None):
        """A fresh in-memory TLS session configured from this context."""
        protocol = self._gnutls_protocol
        if server_side:
            if protocol == _PROTOCOL_TLS_CLIENT:
                raise ValueError("Cannot create a server socket with a "
                                 "PROTOCOL_TLS_CLIENT context")
            return _gnutls.Session(self._credentials, self._priority,
                                   server_side=True,
                                   verify_mode=self._verify_mode)
        if protocol == _PROTOCOL_TLS_SERVER:
            raise ValueError("Cannot create a client socket with a "
                             "PROTOCOL_TLS_SERVER context")
        if self._check_hostname and not server_hostname:
            raise ValueError("check_hostname requires server_hostname")
        return _gnutls.Session(self._credentials, self._priority,
                               server_side=False,
                               server_hostname=server_hostname or None,
                               verify_mode=self._verify_mode,
                               check_hostname=self._check_hostname)


# Names of the stdlib SSLContext that GnutlsContext implements itself.
_IMPLEMENTED = frozenset({
    "protocol", "verify_mode", "check_hostname", "load_cert_chain",
    "load_verify_locations", "load_default_certs", "set_default_verify_paths",
    "cert_store_stats", "get_ca_certs",
    "minimum_version", "maximum_version", "set_ciphers",
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
