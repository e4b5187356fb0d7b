"""The site-wide TLS policy file and how contexts narrow it.

A context reads the policy file (named by AIO_GNUTLS_TRANSPORT_CONFIG, else
the path fixed at build time) when it is created: ``[priority]`` with the
keys ``default``, ``client`` and ``server``.  gnutls_set_priority() wins
over the file, the file over the built-in default, and GnuTLS's own system
configuration (GNUTLS_SYSTEM_PRIORITY_FILE, read once per process, so those
tests run a small peer script in a subprocess) applies on top of all three.
A bad file fails closed: context creation raises PolicyError naming the
file, the line and, for a priority string, the position in it.

Every test here points the environment variable at a file of its own (or
at an absent one), so what the host has installed does not matter.
"""

import asyncio
import json
import os
import re
import socket
import ssl as stdlib_ssl
import subprocess
import sys
import warnings

import pytest

import aio_gnutls_transport as agt
from aio_gnutls_transport import ssl as agt_ssl


def effective(base):
    """The string a new context uses for the priority *base*: contexts
    start at minimum_version TLSv1_2, as the stdlib's do, so the versions
    below it that *base* enables are removed."""
    enabled = agt._gnutls.Priority(base).protocols()
    return base + "".join(":-VERS-" + v for v in ("TLS1.0", "TLS1.1")
                          if v in enabled)
from agt_testlib import (
    TLS_NAME, TLS_PRIORITY, close_server, close_writer, our_client_ctx,
    our_server_ctx, run, start_stream_server, std_client_ctx, std_server_ctx,
    wait_for)

ENV = "AIO_GNUTLS_TRANSPORT_CONFIG"
SYSTEM_ENV = "GNUTLS_SYSTEM_PRIORITY_FILE"
BUILTIN = "built-in default"
APPLICATION = "set by the application (gnutls_set_priority)"
TLS12_ONLY = TLS_PRIORITY["1.2"]
TLS13_ONLY = TLS_PRIORITY["1.3"]
BOTH = "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2"

EXAMPLE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..",
                       "data", "aio_gnutls_transport.conf")


# ----------------------------------------------------------------- helpers

class SiteFile:
    """The policy file of one test: write() puts text in it and points the
    environment variable at it; where(n) is its 'FILE:n'."""

    def __init__(self, monkeypatch, directory):
        self.monkeypatch = monkeypatch
        self.dir = str(directory)
        self.path = os.path.join(self.dir, "site-policy.conf")

    def write(self, text, name=None):
        if name is not None:
            self.path = os.path.join(self.dir, name)
        with open(self.path, "w", encoding="utf-8") as f:
            f.write(text)
        self.monkeypatch.setenv(ENV, self.path)
        return self.path

    def use(self, path):
        self.path = path
        self.monkeypatch.setenv(ENV, path)

    def where(self, line):
        return "%s:%d" % (self.path, line)


@pytest.fixture(autouse=True)
def no_site_file(monkeypatch, tmp_path):
    """By default every test runs without a policy file (an absent path)."""
    monkeypatch.setenv(ENV, str(tmp_path / "no-such-policy.conf"))


@pytest.fixture
def site(monkeypatch, tmp_path):
    return SiteFile(monkeypatch, tmp_path)


def policy(**keys):
    """A policy file's text with the given keys, in the order given."""
    return "[priority]\n" + "".join("%s = %s\n" % kv for kv in keys.items())


def all_constructors(cafile=None):
    """Every way to make a context, each a (name, callable) pair.

    create_default_context() without *cafile* loads the system's trust
    store; tests of bad policy files do not get that far."""
    return [
        ("create_default_context()",
         lambda: agt_ssl.create_default_context(cafile=cafile)),
        ("create_default_context(CLIENT_AUTH)",
         lambda: agt_ssl.create_default_context(agt_ssl.Purpose.CLIENT_AUTH)),
        ("SSLContext(PROTOCOL_TLS_CLIENT)",
         lambda: agt_ssl.SSLContext(agt_ssl.PROTOCOL_TLS_CLIENT)),
        ("SSLContext(PROTOCOL_TLS_SERVER)",
         lambda: agt_ssl.SSLContext(agt_ssl.PROTOCOL_TLS_SERVER)),
        ("GnutlsContext()", lambda: agt.GnutlsContext()),
    ]


async def _reply_and_wait(reader, writer, seen):
    obj = writer.get_extra_info("ssl_object")
    if not seen.done():
        seen.set_result((obj.version(), obj.cipher()))
    try:
        writer.write(b"policy ok\n")
        await writer.drain()
        await reader.read()
    finally:
        writer.close()


class Negotiated:
    def __init__(self, client, server):
        self.client_version, self.client_cipher = client
        self.server_version, self.server_cipher = server

    def __repr__(self):
        return "Negotiated(client=%s %s, server=%s %s)" % (
            self.client_version, self.client_cipher[0],
            self.server_version, self.server_cipher[0])


async def handshake(cctx, sctx):
    """Connect a client with *cctx* to a TCP server with *sctx*, exchange a
    line, and return what each side's ssl_object says was negotiated."""
    loop = asyncio.get_running_loop()
    seen = loop.create_future()

    async def handler(reader, writer):
        await _reply_and_wait(reader, writer, seen)

    server, ep = await start_stream_server("tcp", handler, sctx, None)
    try:
        reader, writer = await wait_for(ep.open(cctx), 15, "TLS connect")
        try:
            line = await wait_for(reader.readline(), 10, "server's line")
            assert line == b"policy ok\n"
            obj = writer.get_extra_info("ssl_object")
            client = (obj.version(), obj.cipher())
        finally:
            await close_writer(writer)
        server_side = await wait_for(seen, 10, "server-side ssl_object")
    finally:
        await close_server(server)
    return Negotiated(client, server_side)


def connect(cctx, sctx):
    return run(handshake(cctx, sctx))


def _serve_once_blocking(listener, sctx):
    """Accept one connection on *listener* and do a stdlib server handshake
    on it; return the version, or the exception the handshake raised."""
    listener.settimeout(20)
    conn, _ = listener.accept()
    conn.settimeout(20)
    try:
        with sctx.wrap_socket(conn, server_side=True) as tls:
            version = tls.version()
            tls.sendall(b"policy ok\n")
            tls.unwrap()        # close_notify both ways
            return version
    except OSError as exc:
        return exc
    finally:
        conn.close()


async def against_blocking_stdlib_server(cctx, sctx):
    """Our client against a blocking stdlib server (in a thread), which
    reports its own handshake error; returns (client outcome, server
    outcome), each a version string or an exception."""
    listener = socket.create_server(("127.0.0.1", 0))
    try:
        server = asyncio.ensure_future(
            asyncio.to_thread(_serve_once_blocking, listener, sctx))
        try:
            reader, writer = await wait_for(asyncio.open_connection(
                *listener.getsockname()[:2], ssl=cctx,
                server_hostname="localhost"), 15, "TLS connect")
        except (OSError, EOFError) as exc:
            client = exc
        else:
            try:
                assert await wait_for(reader.readline(), 10, "line") \
                    == b"policy ok\n"
                client = writer.get_extra_info("ssl_object").version()
            finally:
                await close_writer(writer)
        return client, await wait_for(server, 25, "stdlib server thread")
    finally:
        listener.close()


# --------------------------------------------------- no file: the built-in

def test_absent_file_means_builtin_default(certs):
    for name, make in all_constructors(certs.ca):
        ctx = make()
        assert ctx.gnutls_priority == effective(agt.DEFAULT_PRIORITY), name
        assert ctx.gnutls_priority_source == BUILTIN, name
        assert "TLS1.3" in ctx.gnutls_priority_object.protocols(), name


@pytest.mark.parametrize("text", [
    "",
    "# nothing but comments\n; and more comments\n\n",
    "[priority]\n",
    "\n  [ priority ]  \n# default = NORMAL:-VERS-ALL:+VERS-TLS1.2\n"
    "; client = NORMAL:-VERS-ALL:+VERS-TLS1.2\n",
], ids=["empty", "comments", "section-only", "commented-keys"])
def test_file_without_keys_means_builtin_default(certs, site, text):
    site.write(text)
    for name, make in all_constructors(certs.ca):
        ctx = make()
        assert ctx.gnutls_priority == effective(agt.DEFAULT_PRIORITY), name
        assert ctx.gnutls_priority_source == BUILTIN, name


@pytest.mark.parametrize("ours", ["client", "server"])
def test_without_file_default_negotiates_tls13(certs, ours):
    if ours == "client":
        got = connect(our_client_ctx(certs), std_server_ctx(certs))
    else:
        got = connect(std_client_ctx(certs), our_server_ctx(certs))
    assert got.server_version == got.client_version == "TLSv1.3", got


# ---------------------------------------------------- the file takes effect

@pytest.mark.parametrize("ours", ["client", "server"])
def test_tls12_only_site_policy_is_negotiated(certs, site, ours):
    site.write(policy(default=TLS12_ONLY))
    if ours == "client":
        cctx = our_client_ctx(certs)
        ctx, got = cctx, connect(cctx, std_server_ctx(certs))
    else:
        sctx = our_server_ctx(certs)
        ctx, got = sctx, connect(std_client_ctx(certs), sctx)
    # the stdlib peer allows TLS 1.3; only the policy can have prevented it
    assert got.server_version == got.client_version == "TLSv1.2", got
    assert ctx.gnutls_priority == TLS12_ONLY
    assert ctx.gnutls_priority_source == site.where(2)
    assert ctx.gnutls_priority_object.protocols() == ["TLS1.2"]


# Policy file text, then for (client, server): (negotiated version, line of
# the key used, or None for the built-in default).
SIDE_CASES = {
    "client-key": (policy(default=BOTH, client=TLS12_ONLY),
                   ("1.2", 3), ("1.3", 2)),
    "server-key": (policy(default=BOTH, server=TLS12_ONLY),
                   ("1.3", 2), ("1.2", 3)),
    "side-keys-before-default": ("[priority]\nserver = %s\nclient = %s\n"
                                 "default = %s\n" % (TLS12_ONLY, TLS13_ONLY,
                                                     TLS12_ONLY),
                                 ("1.3", 3), ("1.2", 2)),
    "client-key-only": (policy(client=TLS12_ONLY), ("1.2", 2), ("1.3", None)),
    "server-key-only": (policy(server=TLS12_ONLY), ("1.3", None), ("1.2", 2)),
    "default-only": (policy(default=TLS12_ONLY), ("1.2", 2), ("1.2", 2)),
}


@pytest.mark.parametrize("case", sorted(SIDE_CASES))
def test_each_side_uses_its_key_else_default(certs, site, case):
    text, (client_version, client_line), (server_version, server_line) = \
        SIDE_CASES[case]
    site.write(text)

    cctx = our_client_ctx(certs)
    sctx = our_server_ctx(certs)
    for ctx, line in ((cctx, client_line), (sctx, server_line)):
        if line is None:
            assert ctx.gnutls_priority == effective(agt.DEFAULT_PRIORITY)
            assert ctx.gnutls_priority_source == BUILTIN
        else:
            assert ctx.gnutls_priority_source == site.where(line)
            value = text.splitlines()[line - 1].partition("=")[2].strip()
            assert ctx.gnutls_priority == effective(value)

    # the other ways to make a client or a server context pick the same key
    assert agt_ssl.create_default_context(cafile=certs.ca) \
        .gnutls_priority == cctx.gnutls_priority
    assert agt_ssl.create_default_context(agt_ssl.Purpose.CLIENT_AUTH) \
        .gnutls_priority == sctx.gnutls_priority

    got = connect(cctx, std_server_ctx(certs))
    assert got.server_version == TLS_NAME[client_version], got
    got = connect(std_client_ctx(certs), sctx)
    assert got.client_version == TLS_NAME[server_version], got
    assert got.server_version == TLS_NAME[server_version], got


def test_unspecified_protocol_uses_default_key(site):
    site.write(policy(client=TLS12_ONLY, server=TLS13_ONLY, default=BOTH))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        ctx = agt_ssl.SSLContext(stdlib_ssl.PROTOCOL_TLS)
    assert ctx.gnutls_priority == BOTH
    assert ctx.gnutls_priority_source == site.where(4)


def test_client_and_server_keys_apply_to_our_own_pair(certs, site):
    """With client = TLS 1.2 only and server = TLS 1.3 only, our client and
    our server made under the same file cannot agree on a version."""
    site.write(policy(client=TLS12_ONLY, server=TLS13_ONLY))

    async def main():
        server, ep = await start_stream_server(
            "tcp", lambda r, w: w.close(), our_server_ctx(certs), None)
        try:
            with pytest.raises(agt.GnutlsError) as info:
                await wait_for(ep.open(our_client_ctx(certs)), 15, "connect")
        finally:
            await close_server(server)
        return info.value

    exc = run(main())
    # our server refused the TLS 1.2-only hello with an alert (GnuTLS 3.7
    # sends handshake_failure, finding no TLS 1.3 suite in it)
    assert "handshake failed" in str(exc).lower(), exc
    assert "the peer sent the alert" in str(exc), exc


def test_file_is_read_when_each_context_is_created(certs, site):
    first = site.write(policy(default=TLS12_ONLY), name="first.conf")
    old = agt_ssl.SSLContext(agt_ssl.PROTOCOL_TLS_CLIENT)

    # an edit (here: of a different length) is seen by the next context
    with open(first, "w") as f:
        f.write("# edited\n" + policy(default=BOTH))
    new = agt_ssl.SSLContext(agt_ssl.PROTOCOL_TLS_CLIENT)
    assert new.gnutls_priority == BOTH
    assert new.gnutls_priority_source == first + ":3"
    # ... and contexts made before keep what they read
    assert old.gnutls_priority == TLS12_ONLY
    assert old.gnutls_priority_source == first + ":2"

    # the environment variable is read again too
    second = site.write(policy(client=TLS13_ONLY), name="second.conf")
    assert agt_ssl.SSLContext(agt_ssl.PROTOCOL_TLS_CLIENT) \
        .gnutls_priority_source == second + ":2"

    # a file broken later fails the next creation, not the existing contexts
    site.write("[priority]\nclient = NORMAL:+BROKEN\n", name="second.conf")
    with pytest.raises(agt.PolicyError):
        agt_ssl.SSLContext(agt_ssl.PROTOCOL_TLS_CLIENT)
    assert old.gnutls_priority == TLS12_ONLY

    # a file removed means the built-in default again
    os.remove(second)
    ctx = agt_ssl.SSLContext(agt_ssl.PROTOCOL_TLS_CLIENT)
    assert ctx.gnutls_priority_source == BUILTIN

    # the old context still connects with what it read: TLS 1.2
    old.load_verify_locations(certs.ca)
    got = connect(old, std_server_ctx(certs))
    assert got.server_version == "TLSv1.2", got


def test_rewrite_keeping_size_and_mtime_is_seen(site):
    """An in-place rewrite of the same size whose modification time is then
    restored (cp -p, tar, rsync -t --inplace do this) is still a new file
    for the next context: the inode change time moved."""
    path = site.write(policy(default=TLS12_ONLY))
    before = os.stat(path)
    assert agt_ssl.SSLContext(agt_ssl.PROTOCOL_TLS_CLIENT) \
        .gnutls_priority == TLS12_ONLY

    with open(path, "w") as f:
        f.write(policy(default=TLS13_ONLY))     # the same number of bytes
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = os.stat(path)
    assert after.st_size == before.st_size
    assert after.st_mtime_ns == before.st_mtime_ns

    ctx = agt_ssl.SSLContext(agt_ssl.PROTOCOL_TLS_CLIENT)
    assert ctx.gnutls_priority == TLS13_ONLY, (
        "the context used a cached copy of the file's old contents")


# ------------------------------------------------ gnutls_set_priority wins

@pytest.mark.parametrize("ours", ["client", "server"])
def test_application_priority_overrides_site_file(certs, site, ours):
    site.write(policy(default=TLS12_ONLY))
    make = our_client_ctx if ours == "client" else our_server_ctx
    ctx = make(certs)
    assert ctx.gnutls_priority_source == site.where(2)

    ctx.gnutls_set_priority(TLS13_ONLY)
    assert ctx.gnutls_priority == TLS13_ONLY
    assert ctx.gnutls_priority_source == APPLICATION
    assert ctx.gnutls_priority_object.protocols() == ["TLS1.3"]

    if ours == "client":
        got = connect(ctx, std_server_ctx(certs))
    else:
        got = connect(std_client_ctx(certs), ctx)
    assert got.server_version == got.client_version == "TLSv1.3", got

    # a context made afterwards still follows the file
    assert make(certs).gnutls_priority == TLS12_ONLY


def test_application_priority_keeps_version_limits(certs):
    ctx = our_client_ctx(certs)
    ctx.maximum_version = stdlib_ssl.TLSVersion.TLSv1_2
    ctx.gnutls_set_priority("NORMAL")
    assert ctx.gnutls_priority_source == APPLICATION
    assert ctx.maximum_version == stdlib_ssl.TLSVersion.TLSv1_2
    assert "TLS1.3" not in ctx.gnutls_priority_object.protocols()
    got = connect(ctx, std_server_ctx(certs))
    assert got.server_version == "TLSv1.2", got


# -------------------------------------------------- invalid files fail closed

# (file text, line of the error, words the message must hold, position in
# the priority string or None)
BAD_FILES = {
    "unclosed-section": ("[priority\ndefault = NORMAL\n", 1,
                         ["section", "[priority"], None),
    "unknown-section": ("[priority]\ndefault = NORMAL\n\n[client]\n"
                        "server = NORMAL\n", 4, ["unknown section",
                                                 "[client]"], None),
    "section-name-case": ("[Priority]\ndefault = NORMAL\n", 1,
                          ["unknown section", "[Priority]"], None),
    "key-outside-section": ("# site policy\ndefault = NORMAL\n", 2,
                            ["outside a section", "default"], None),
    "unknown-key": ("[priority]\n# the servers\nservers = NORMAL\n", 3,
                    ["unknown key", "servers"], None),
    "duplicate-key": ("[priority]\nclient = NORMAL\n\nclient = SECURE\n", 4,
                      ["client", "twice", ":2"], None),
    "empty-value": ("[priority]\ndefault = NORMAL\nserver =\n", 3,
                    ["server", "empty"], None),
    "no-equals": ("[priority]\nNORMAL:-VERS-ALL:+VERS-TLS1.2\n", 2,
                  ["key = value", "NORMAL:-VERS-ALL:+VERS-TLS1.2"], None),
    "no-key": ("[priority]\n= NORMAL\n", 2, ["key = value"], None),
    "unknown-token": ("[priority]\ndefault = NORMAL:+NO-SUCH-THING\n", 2,
                      ["default", "NORMAL:+NO-SUCH-THING", "+NO-SUCH-THING"],
                      7),
    "unknown-token-late": ("[priority]\ndefault = NORMAL\nclient = "
                           "NORMAL:-VERS-ALL:+VERS-TLS1.2:+BOGUS-CIPHER\n", 3,
                           ["client", "+BOGUS-CIPHER"], 30),
    "unknown-flag": ("[priority]\n\n\nserver = SECURE:%NO-SUCH-FLAG\n", 4,
                     ["server", "%NO-SUCH-FLAG"], 7),
    "inline-comment": ("[priority]\ndefault = NORMAL  # with TLS 1.3\n", 2,
                       ["default", "NORMAL  # with TLS 1.3"], 0),
    "keyword-not-first": ("[priority]\ndefault = NORMAL:@SYSTEM\n", 2,
                          ["@SYSTEM", "only start"], 7),
    "no-version-left": ("[priority]\ndefault = NORMAL:-VERS-ALL\n", 2,
                        ["NORMAL:-VERS-ALL", "leaves no protocol version"],
                        None),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_invalid_file_fails_context_creation(site, case):
    text, line, words, position = BAD_FILES[case]
    site.write(text)
    for name, make in all_constructors():
        with pytest.raises(agt.PolicyError) as info:
            make()
        message = str(info.value)
        assert message.startswith(site.where(line) + ":"), (name, message)
        for word in words:
            assert word in message, (name, word, message)
        if position is not None:
            assert "position %d" % position in message, (name, message)
        else:
            assert "position" not in message, (name, message)
    # a PolicyError is a ValueError: the file holds a bad value
    assert isinstance(info.value, ValueError)


def test_bad_client_value_fails_server_contexts_too(site):
    """The whole file is checked, not only the key a context would use."""
    site.write(policy(server=TLS12_ONLY, client="NORMAL:+VERS-TLS9.9"))
    with pytest.raises(agt.PolicyError) as info:
        agt_ssl.SSLContext(agt_ssl.PROTOCOL_TLS_SERVER)
    assert str(info.value).startswith(site.where(3) + ":")
    assert "position 7" in str(info.value)


def test_file_not_utf8_fails_closed(site):
    site.write("")
    with open(site.path, "wb") as f:
        f.write(b"[priority]\n# caf\xe9\ndefault = NORMAL\n")
    for name, make in all_constructors():
        with pytest.raises(agt.PolicyError) as info:
            make()
        assert site.path in str(info.value), name
        assert "UTF-8" in str(info.value), name


def test_directory_in_place_of_file_is_an_oserror(site, tmp_path):
    directory = tmp_path / "policy.d"
    directory.mkdir()
    site.use(str(directory))
    for name, make in all_constructors():
        with pytest.raises(OSError) as info:
            make()
        assert not isinstance(info.value, agt.PolicyError), name
        assert info.value.filename == str(directory), name


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0,
                    reason="root reads files whatever their mode")
def test_unreadable_file_is_an_oserror(site):
    path = site.write(policy(default=TLS12_ONLY))
    os.chmod(path, 0)
    try:
        with pytest.raises(PermissionError) as info:
            agt_ssl.SSLContext(agt_ssl.PROTOCOL_TLS_CLIENT)
        assert info.value.filename == path
    finally:
        os.chmod(path, 0o600)


def test_application_priority_errors_name_the_position():
    ctx = agt_ssl.SSLContext(agt_ssl.PROTOCOL_TLS_CLIENT)
    with pytest.raises(agt.GnutlsError) as info:
        ctx.gnutls_set_priority("NORMAL:-VERS-ALL:+VERS-TLS1.2:+NOPE")
    assert "position 30" in str(info.value)
    assert "+NOPE" in str(info.value)
    # the context is unchanged
    assert ctx.gnutls_priority == effective(agt.DEFAULT_PRIORITY)
    assert ctx.gnutls_priority_source == BUILTIN


# ---------------------------------------- narrowing: versions and ciphers

@pytest.mark.parametrize("ours", ["client", "server"])
def test_maximum_version_narrows_the_default(certs, ours):
    make = our_client_ctx if ours == "client" else our_server_ctx
    ctx = make(certs)
    ctx.maximum_version = stdlib_ssl.TLSVersion.TLSv1_2
    assert ctx.maximum_version == stdlib_ssl.TLSVersion.TLSv1_2
    assert "TLS1.3" not in ctx.gnutls_priority_object.protocols()
    assert ctx.gnutls_priority.startswith(agt.DEFAULT_PRIORITY)
    assert ctx.gnutls_priority_source == BUILTIN
    if ours == "client":
        got = connect(ctx, std_server_ctx(certs))
    else:
        got = connect(std_client_ctx(certs), ctx)
    assert got.server_version == got.client_version == "TLSv1.2", got


def test_minimum_tls13_against_tls12_server_fails(certs):
    def client(minimum=None):
        ctx = our_client_ctx(certs)
        if minimum is not None:
            ctx.minimum_version = minimum
        return ctx

    # the same server accepts our client when no minimum is set
    ours, theirs = run(against_blocking_stdlib_server(
        client(), std_server_ctx(certs, "1.2")))
    assert ours == theirs == "TLSv1.2"

    ours, theirs = run(against_blocking_stdlib_server(
        client(stdlib_ssl.TLSVersion.TLSv1_3), std_server_ctx(certs, "1.2")))
    assert isinstance(ours, agt.GnutlsError), ours
    assert "protocol version" in str(ours).lower(), ours
    assert isinstance(theirs, stdlib_ssl.SSLError), theirs
    assert theirs.reason == "UNSUPPORTED_PROTOCOL", theirs


@pytest.mark.parametrize("ours", ["client", "server"])
def test_narrowing_cannot_reenable_a_version(certs, site, ours):
    site.write(policy(default=TLS12_ONLY))
    ctx = (our_client_ctx if ours == "client" else our_server_ctx)(certs)

    with pytest.raises(ValueError) as info:
        ctx.set_ciphers("+VERS-TLS1.3")
    assert "TLS1.3" in str(info.value)
    assert TLS12_ONLY in str(info.value)

    with pytest.raises(ValueError) as info:
        ctx.minimum_version = stdlib_ssl.TLSVersion.TLSv1_3
    assert "TLSv1_3" in str(info.value)
    assert "TLS1.2" in str(info.value)

    with pytest.raises(ValueError):
        ctx.maximum_version = stdlib_ssl.TLSVersion.TLSv1_1

    # nothing of the refused settings stuck
    assert ctx.minimum_version == stdlib_ssl.TLSVersion.TLSv1_2
    assert ctx.maximum_version == stdlib_ssl.TLSVersion.MAXIMUM_SUPPORTED
    assert ctx.gnutls_priority == TLS12_ONLY
    assert ctx.gnutls_priority_source == site.where(2)

    # settings that keep TLS 1.2 are fine, and the context still works
    ctx.minimum_version = stdlib_ssl.TLSVersion.TLSv1_2
    ctx.maximum_version = stdlib_ssl.TLSVersion.TLSv1_3
    assert ctx.gnutls_priority_object.protocols() == ["TLS1.2"]
    if ours == "client":
        got = connect(ctx, std_server_ctx(certs))
    else:
        got = connect(std_client_ctx(certs), ctx)
    assert got.server_version == "TLSv1.2", got


@pytest.mark.parametrize("base,fragment,named", [
    ("NORMAL:-CHACHA20-POLY1305", "+CHACHA20-POLY1305", "CHACHA20-POLY1305"),
    ("NORMAL:-CIPHER-ALL:+AES-256-GCM", "+AES-128-GCM", "AES-128-GCM"),
    ("NORMAL:-GROUP-ALL:+GROUP-SECP256R1", "+GROUP-X25519", "X25519"),
], ids=["cipher", "cipher-list", "group"])
def test_set_ciphers_cannot_reenable_an_algorithm(site, base, fragment, named):
    site.write(policy(default=base))
    ctx = agt_ssl.SSLContext(agt_ssl.PROTOCOL_TLS_CLIENT)
    with pytest.raises(ValueError) as info:
        ctx.set_ciphers(fragment)
    assert named in str(info.value)
    assert ctx.gnutls_priority == effective(base)


@pytest.mark.parametrize("gnutls_name,tls_name", [
    ("AES-128-GCM", "AES_128_GCM"),
    ("AES-256-GCM", "AES_256_GCM"),
    ("CHACHA20-POLY1305", "CHACHA20_POLY1305"),
])
@pytest.mark.parametrize("ours", ["client", "server"])
def test_set_ciphers_picks_the_cipher(certs, ours, gnutls_name, tls_name):
    ctx = (our_client_ctx if ours == "client" else our_server_ctx)(certs)
    ctx.set_ciphers("-CIPHER-ALL:+" + gnutls_name)
    assert ctx.gnutls_priority_object.ciphers() == [gnutls_name]
    if ours == "client":
        got = connect(ctx, std_server_ctx(certs))
    else:
        got = connect(std_client_ctx(certs), ctx)
    assert got.client_version == "TLSv1.3", got
    assert tls_name in got.client_cipher[0], got
    assert tls_name in got.server_cipher[0], got


def test_set_ciphers_with_an_openssl_list_is_refused():
    ctx = agt_ssl.SSLContext(agt_ssl.PROTOCOL_TLS_CLIENT)
    # the stdlib raises ssl.SSLError for a cipher list it cannot use
    with pytest.raises(stdlib_ssl.SSLError) as info:
        ctx.set_ciphers("HIGH:!aNULL")
    message = str(info.value)
    assert "GnuTLS priority fragment" in message
    assert "OpenSSL cipher list" in message
    assert "HIGH:!aNULL" in message
    assert ctx.gnutls_priority == effective(agt.DEFAULT_PRIORITY)


@pytest.fixture(scope="module")
def weak_certs(certs, tmp_path_factory):
    """Server certificates the default verification refuses: one signed
    with SHA-1 by the test CA."""
    directory = str(tmp_path_factory.mktemp("weak"))

    def openssl(*args):
        proc = subprocess.run(["openssl", *args], cwd=directory,
                              capture_output=True, timeout=60)
        assert proc.returncode == 0, proc.stderr.decode(errors="replace")

    with open(os.path.join(directory, "leaf.ext"), "w") as f:
        f.write("basicConstraints=critical,CA:FALSE\n"
                "keyUsage=critical,digitalSignature\n"
                "extendedKeyUsage=serverAuth\n"
                "subjectAltName=DNS:localhost\n")
    openssl("req", "-new", "-key", certs.server_key, "-out", "sha1.csr",
            "-subj", "/O=AGT Tests/CN=localhost")
    openssl("x509", "-req", "-sha1", "-in", "sha1.csr", "-CA", certs.ca,
            "-CAkey", certs.ca_key, "-CAcreateserial", "-out", "sha1.pem",
            "-days", "30", "-extfile", "leaf.ext")
    return {"sha1": (os.path.join(directory, "sha1.pem"), certs.server_key),
            "rsa2048": (certs.server_rsa_cert, certs.server_rsa_key)}


@pytest.mark.parametrize("base,cert,fragment", [
    ("SECURE:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2", "sha1",
     "%VERIFY_ALLOW_BROKEN"),
    ("SECURE:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2", "sha1",
     "%VERIFY_ALLOW_SIGN_WITH_SHA1"),
    ("NORMAL:%PROFILE_HIGH", "rsa2048", "%PROFILE_LOW"),
], ids=["allow-broken", "allow-sha1", "lower-profile"])
def test_set_ciphers_cannot_loosen_verification(certs, weak_certs, site,
                                                base, cert, fragment):
    """set_ciphers() may only narrow the site policy: a fragment that would
    accept a certificate the policy rejects is refused, or has no effect."""
    site.write(policy(client=base))
    certfile, keyfile = weak_certs[cert]

    async def attempt(cctx):
        sctx = agt_ssl.SSLContext(agt_ssl.PROTOCOL_TLS_SERVER)
        sctx.gnutls_set_priority("NORMAL")
        sctx.load_cert_chain(certfile, keyfile)
        server, ep = await start_stream_server(
            "tcp", lambda r, w: w.close(), sctx, None)
        try:
            try:
                reader, writer = await wait_for(ep.open(cctx), 15, "connect")
            except agt.CertificateVerificationError as exc:
                return exc
            await close_writer(writer)
            return None
        finally:
            await close_server(server)

    # the site policy rejects the server's certificate ...
    refused = run(attempt(our_client_ctx(certs)))
    assert isinstance(refused, agt.CertificateVerificationError)

    # ... and the application cannot talk its way past that
    cctx = our_client_ctx(certs)
    try:
        cctx.set_ciphers(fragment)
    except ValueError:
        return
    outcome = run(attempt(cctx))
    assert isinstance(outcome, agt.CertificateVerificationError), (
        "set_ciphers(%r) let the client accept a certificate that the site "
        "policy %r rejects (effective priority %r)"
        % (fragment, base, cctx.gnutls_priority))


# ------------------------------------- GnuTLS's system configuration on top

PEER_SCRIPT = r'''
import asyncio, json, ssl as stdlib_ssl, sys
import aio_gnutls_transport as agt
from aio_gnutls_transport import ssl as agt_ssl

mode, ca, cert, key = sys.argv[1:5]
priority = sys.argv[5] if len(sys.argv) > 5 else None


def error(exc):
    return {"error": type(exc).__name__, "message": str(exc)}


def describe(ctx):
    return {"priority": ctx.gnutls_priority,
            "source": ctx.gnutls_priority_source,
            "protocols": ctx.gnutls_priority_object.protocols()}


async def handshake(cctx, sctx):
    seen = asyncio.get_running_loop().create_future()

    async def handler(reader, writer):
        if not seen.done():
            seen.set_result(writer.get_extra_info("ssl_object").version())
        writer.write(b"ok\n")
        await writer.drain()
        await reader.read()
        writer.close()

    server = await asyncio.start_server(handler, "127.0.0.1", 0, ssl=sctx)
    try:
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.wait_for(asyncio.open_connection(
            "127.0.0.1", port, ssl=cctx, server_hostname="localhost"), 15)
        await asyncio.wait_for(reader.readline(), 10)
        version = writer.get_extra_info("ssl_object").version()
        writer.close()
        return {"client_version": version,
                "server_version": await asyncio.wait_for(seen, 10)}
    finally:
        server.close()


def main():
    result = {}
    try:
        ours_client = agt_ssl.create_default_context(cafile=ca)
        ours_server = agt_ssl.SSLContext(agt_ssl.PROTOCOL_TLS_SERVER)
        ours_server.load_cert_chain(cert, key)
        if priority:
            ours_client.gnutls_set_priority(priority)
            ours_server.gnutls_set_priority(priority)
    except Exception as exc:
        return error(exc)
    result["client"] = describe(ours_client)
    result["server"] = describe(ours_server)
    if mode == "probe":
        return result
    if mode == "client":
        cctx = ours_client
        sctx = stdlib_ssl.SSLContext(stdlib_ssl.PROTOCOL_TLS_SERVER)
        sctx.load_cert_chain(cert, key)
    else:
        cctx = stdlib_ssl.create_default_context(cafile=ca)
        sctx = ours_server
    loop = agt.GnutlsEventLoop()
    try:
        result.update(loop.run_until_complete(handshake(cctx, sctx)))
    except Exception as exc:
        result.update(error(exc))
    finally:
        loop.close()
    return result


print(json.dumps(main()))
'''


class Peer:
    """Runs PEER_SCRIPT with a GnuTLS system configuration of the test's
    choice (GnuTLS reads it once, when the library is loaded)."""

    def __init__(self, certs, directory):
        self.certs = certs
        self.dir = str(directory)
        self.script = os.path.join(self.dir, "policy_peer.py")
        with open(self.script, "w") as f:
            f.write(PEER_SCRIPT)

    def file(self, name, text):
        path = os.path.join(self.dir, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def run(self, mode, *, system, site, priority=None):
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
        env[SYSTEM_ENV] = system
        env[ENV] = site
        args = [sys.executable, self.script, mode, self.certs.ca,
                self.certs.server_cert, self.certs.server_key]
        if priority:
            args.append(priority)
        proc = subprocess.run(args, env=env, capture_output=True, timeout=40)
        out = proc.stdout.decode("utf-8", "replace")
        err = proc.stderr.decode("utf-8", "replace")
        assert proc.returncode == 0, "peer failed:\n%s\n%s" % (out, err)
        lines = out.strip().splitlines()
        assert lines, "peer printed nothing; stderr:\n%s" % err
        return json.loads(lines[-1])


@pytest.fixture
def peer(certs, tmp_path):
    return Peer(certs, tmp_path)


SYSTEM_PRIORITIES = ("[priorities]\n"
                     "SYSTEM = NORMAL:-VERS-ALL:+VERS-TLS1.2\n"
                     "AGTTEST = NORMAL:-VERS-ALL:+VERS-TLS1.3\n")


@pytest.mark.parametrize("mode", ["client", "server"])
def test_system_keyword_in_site_file(peer, mode):
    system = peer.file("gnutls.config", SYSTEM_PRIORITIES)
    site = peer.file("site.conf", policy(default="@SYSTEM"))
    result = peer.run(mode, system=system, site=site)
    assert "error" not in result, result
    for side in ("client", "server"):
        assert result[side]["priority"] == "@SYSTEM", result
        assert result[side]["source"] == site + ":2", result
        assert result[side]["protocols"] == ["TLS1.2"], result
    # the stdlib peer allows TLS 1.3: the system's SYSTEM string decided
    assert result["client_version"] == result["server_version"] == "TLSv1.2"


def test_own_keywords_from_system_configuration(peer):
    system = peer.file("gnutls.config", SYSTEM_PRIORITIES)
    site = peer.file("site.conf", policy(client="@AGTTEST", server="@SYSTEM"))
    result = peer.run("client", system=system, site=site)
    assert "error" not in result, result
    assert result["client"]["protocols"] == ["TLS1.3"], result
    assert result["server"]["protocols"] == ["TLS1.2"], result
    assert result["client_version"] == result["server_version"] == "TLSv1.3"


@pytest.mark.parametrize("system_file", ["empty", "absent", "no-keyword"])
def test_undefined_system_keyword_is_an_actionable_error(peer, system_file):
    if system_file == "absent":
        system = os.path.join(peer.dir, "no-such-gnutls.config")
    elif system_file == "empty":
        system = peer.file("gnutls.config", "")
    else:
        system = peer.file("gnutls.config",
                           "[priorities]\nOTHER = NORMAL\n")
    site = peer.file("site.conf", "[priority]\n# from the system\n"
                                  "default = @SYSTEM\n")
    result = peer.run("probe", system=system, site=site)
    assert result.get("error") == "PolicyError", result
    message = result["message"]
    assert message.startswith(site + ":3:"), message
    assert "@SYSTEM" in message, message
    assert "[priorities]" in message, message
    assert system in message, message      # which file to edit
    assert "position 0" in message, message


@pytest.mark.parametrize("mode", ["client", "server"])
def test_version_disabled_by_system_stays_disabled(peer, mode):
    system = peer.file("gnutls.config",
                       "[overrides]\ndisabled-version = tls1.3\n")
    site = peer.file("site.conf", policy(default=BOTH))
    result = peer.run(mode, system=system, site=site)
    assert "error" not in result, result
    assert result["client"]["priority"] == BOTH, result
    assert result["client"]["source"] == site + ":2", result
    assert result["client"]["protocols"] == ["TLS1.2"], result
    assert result["server"]["protocols"] == ["TLS1.2"], result
    # the stdlib peer allows TLS 1.3, the site file asks for it: still 1.2
    assert result["client_version"] == result["server_version"] == "TLSv1.2"


def test_site_file_with_only_a_system_disabled_version_fails(peer):
    system = peer.file("gnutls.config",
                       "[overrides]\ndisabled-version = tls1.3\n")
    site = peer.file("site.conf", policy(default=TLS13_ONLY))
    result = peer.run("client", system=system, site=site)
    # context creation fails: no connection is attempted
    assert result.get("error") == "PolicyError", result
    assert "client_version" not in result, result
    message = result["message"]
    assert message.startswith(site + ":2: default:"), message
    assert TLS13_ONLY in message, message
    assert "leaves no protocol version" in message, message
    assert system in message, message      # points at the [overrides]

    # an application asking for it gets no further
    empty = peer.file("empty.conf", "")
    result = peer.run("probe", system=system, site=empty,
                      priority=TLS13_ONLY)
    assert result.get("error") == "GnutlsError", result
    assert "leaves no protocol version" in result["message"], result


# ------------------------------------------------- the example policy file

EXAMPLE_SETTING = re.compile(r"^#\s*(default|client|server)\s*=\s*(\S.*?)\s*$")


def example_settings():
    """(line index, key, value) of each commented-out example setting."""
    with open(EXAMPLE, encoding="utf-8") as f:
        lines = f.read().splitlines()
    found = []
    for i, line in enumerate(lines):
        m = EXAMPLE_SETTING.match(line)
        if m:
            found.append((i, m.group(1), m.group(2)))
    return lines, found


def test_example_file_as_installed_means_builtin_default(certs, site):
    with open(EXAMPLE, encoding="utf-8") as f:
        text = f.read()
    assert "[priority]" in text
    site.write(text, name="aio_gnutls_transport.conf")
    for name, make in all_constructors(certs.ca):
        ctx = make()
        assert ctx.gnutls_priority == effective(agt.DEFAULT_PRIORITY), name
        assert ctx.gnutls_priority_source == BUILTIN, name


def test_example_file_values_are_valid(certs, site):
    lines, settings = example_settings()
    assert {key for _, key, _ in settings} == {"default", "client", "server"}
    # the built-in default the comments describe is the real one
    assert agt.DEFAULT_PRIORITY in "\n".join(lines)

    for index, key, value in settings:
        if value.startswith("@"):
            continue        # needs a system configuration; tested below
        edited = list(lines)
        edited[index] = "%s = %s" % (key, value)
        site.write("\n".join(edited) + "\n", name="example-%d.conf" % index)
        client = agt_ssl.SSLContext(agt_ssl.PROTOCOL_TLS_CLIENT)
        server = agt_ssl.SSLContext(agt_ssl.PROTOCOL_TLS_SERVER)
        for side, ctx in (("client", client), ("server", server)):
            if key in ("default", side):
                assert ctx.gnutls_priority == effective(value), (key, side)
                assert ctx.gnutls_priority_source == site.where(index + 1)
                assert ctx.gnutls_priority_object.protocols() == [
                    "TLS1.3", "TLS1.2"], (key, value)
            else:
                assert ctx.gnutls_priority_source == BUILTIN, (key, side)

    # every example value at once (the @SYSTEM line aside) works end to end
    edited = list(lines)
    for index, key, value in settings:
        if not value.startswith("@"):
            edited[index] = "%s = %s" % (key, value)
    site.write("\n".join(edited) + "\n", name="example-all.conf")
    client, server = our_client_ctx(certs), our_server_ctx(certs)
    by_key = {key: value for _, key, value in settings
              if not value.startswith("@")}
    assert client.gnutls_priority == by_key["client"]
    assert server.gnutls_priority == by_key["server"]
    got = connect(client, server)
    assert got.client_version == got.server_version == "TLSv1.3", got
    got = connect(client, std_server_ctx(certs))
    assert got.server_version == "TLSv1.3", got


def test_example_system_line_works_with_a_system_definition(peer):
    lines, settings = example_settings()
    system_lines = [(i, k, v) for i, k, v in settings if v == "@SYSTEM"]
    assert len(system_lines) == 1, settings
    index, key, value = system_lines[0]
    edited = list(lines)
    edited[index] = "%s = %s" % (key, value)
    site = peer.file("example.conf", "\n".join(edited) + "\n")
    system = peer.file("gnutls.config", SYSTEM_PRIORITIES)
    result = peer.run("client", system=system, site=site)
    assert "error" not in result, result
    assert result["client"]["source"] == "%s:%d" % (site, index + 1), result
    assert result["client_version"] == "TLSv1.2", result
