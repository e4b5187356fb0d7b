# Copyright (C) 2026 The aio_gnutls_transport authors
# SPDX-License-Identifier: LGPL-2.1-or-later
"""The site-wide TLS policy: default GnuTLS priority strings from a file.

An administrator writes, in the file fixed at build time (``configure
--with-config-file``; by default ``$sysconfdir/aio_gnutls_transport.conf``)
or in the file named by the environment variable
``AIO_GNUTLS_TRANSPORT_CONFIG``::

    [priority]
    default = SECURE:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2
    client = ...
    server = ...

Every context reads it when it is created.  A context for a client takes
``client`` (else ``default``), a server context ``server`` (else
``default``); without a file the built-in ``DEFAULT_PRIORITY`` applies.  A
priority the application sets with ``gnutls_set_priority()`` wins over
both.  GnuTLS's own system configuration (``[overrides]`` of
``/etc/gnutls/config`` or the crypto-policies back-end) still applies on
top of whichever string is used.

The file fails closed: a syntax error, an unknown section or key, or an
invalid priority string makes context creation fail with the file, the
line and the position in the string.  An absent file means the built-in
default; a file that exists but cannot be read is an error.
"""

import os

from . import _gnutls

__all__ = ["DEFAULT_PRIORITY", "ENVIRONMENT_VARIABLE", "BUILTIN",
           "PolicyError", "site_config_file", "site_policy",
           "default_priority"]

#: The GnuTLS priority string contexts use when no policy says otherwise.
DEFAULT_PRIORITY = "SECURE:-RSA:%PROFILE_MEDIUM:%SERVER_PRECEDENCE"

#: Names another site policy file (for tests and containers).
ENVIRONMENT_VARIABLE = "AIO_GNUTLS_TRANSPORT_CONFIG"

#: Where a priority came from when no file or application set it.
BUILTIN = "built-in default"

_SECTION = "priority"
_KEYS = ("default", "client", "server")


class PolicyError(ValueError):
    """The site policy file is malformed; the message names file and line."""


def site_config_file():
    """The site policy file in effect: the environment's, else the built-in
    path."""
    return (os.environ.get(ENVIRONMENT_VARIABLE)
            or getattr(_gnutls, "SITE_CONFIG_FILE", None)
            or "/etc/aio_gnutls_transport.conf")


class _Entry:
    __slots__ = ("priority", "source")

    def __init__(self, priority, source):
        self.priority = priority    # a parsed _gnutls.Priority
        self.source = source        # "FILE:LINE"


class SitePolicy:
    """The parsed site policy file: a priority (and its line) per key."""

    def __init__(self, path, entries):
        self.path = path
        self._entries = entries

    def for_side(self, side):
        """(Priority, source) for 'client', 'server' or 'default'."""
        entry = self._entries.get(side) or self._entries.get("default")
        if entry is None:
            return _builtin_priority(), BUILTIN
        return entry.priority, entry.source


# Characters that have no place in the file: they would make tools and
# this parser see lines differently (\x85, \u2028 and a lone \r end lines
# for str.splitlines(), not for grep).
_FORBIDDEN = frozenset(chr(c) for c in range(32) if chr(c) != "\t") | {
    "\x7f", "\x85", "\u2028", "\u2029"}


def _parse(path, text):
    entries = {}
    section = None
    if text.startswith("\ufeff"):
        text = text[1:]         # a UTF-8 byte order mark
    for lineno, raw in enumerate(text.split("\n"), 1):
        if raw.endswith("\r"):
            raw = raw[:-1]
        bad = next((c for c in raw if c in _FORBIDDEN), None)
        if bad is not None:
            raise PolicyError("%s:%d: control character %r in the line"
                              % (path, lineno, bad))
        line = raw.strip()
        where = "%s:%d" % (path, lineno)
        if not line or line[0] in "#;":
            continue
        if line[0] == "[":
            if not line.endswith("]"):
                raise PolicyError("%s: malformed section header %r"
                                  % (where, line))
            section = line[1:-1].strip()
            if section != _SECTION:
                raise PolicyError("%s: unknown section [%s] (the only "
                                  "section is [%s])"
                                  % (where, section, _SECTION))
            continue
        key, sep, value = line.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not key:
            raise PolicyError("%s: expected 'key = value', got %r"
                              % (where, line))
        if section is None:
            raise PolicyError("%s: '%s' outside a section (put it under "
                              "[%s])" % (where, key, _SECTION))
        if key not in _KEYS:
            raise PolicyError("%s: unknown key '%s' (known keys: %s)"
                              % (where, key, ", ".join(_KEYS)))
        if key in entries:
            raise PolicyError("%s: '%s' is set twice (first at %s)"
                              % (where, key, entries[key].source))
        if not value:
            raise PolicyError("%s: '%s' has an empty priority string"
                              % (where, key))
        try:
            priority = _gnutls.Priority(value)
        except (_gnutls.GnutlsError, ValueError) as exc:
            raise PolicyError("%s: %s: %s" % (where, key, exc)) from None
        entries[key] = _Entry(priority, where)
    return entries


_builtin = None


def _builtin_priority():
    global _builtin
    if _builtin is None:
        _builtin = _gnutls.Priority(DEFAULT_PRIORITY)
    return _builtin


# The last file parsed, keyed by path and the file's identity, so that
# contexts made in a row do not parse it again, while an edit is seen by
# the next context.
_cache = None


def site_policy():
    """The site policy now in force (read when called).

    Returns a SitePolicy, or None when the file does not exist.  Raises
    PolicyError for a malformed file and OSError for one that exists but
    cannot be read.
    """
    global _cache
    path = site_config_file()
    try:
        with open(path, "rb") as f:
            st = os.fstat(f.fileno())
            key = (path, st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns,
                   st.st_ctime_ns)
            if _cache is not None and _cache[0] == key:
                return _cache[1]
            data = f.read()
    except FileNotFoundError:
        return None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PolicyError("%s:%d: not UTF-8 text"
                          % (path, data.count(b"\n", 0, exc.start) + 1)) from None
    policy = SitePolicy(path, _parse(path, text))
    _cache = (key, policy)
    return policy


def default_priority(side):
    """(Priority, source) for a new context of *side* ('client', 'server'
    or 'default')."""
    policy = site_policy()
    if policy is None:
        return _builtin_priority(), BUILTIN
    return policy.for_side(side)
