"""A true drop-in: the rest of the stdlib ssl API that asyncio code uses,
checked against real peers (stdlib ssl under asyncio, openssl s_server and
s_client, uvloop).

The ssl_object's answers (certificate dict, cipher, channel binding), ALPN,
the server name callback, the key log, STARTTLS and TLS inside TLS, the
handshake and shutdown timeouts, BufferedProtocol, wrap_bio() driven by
asyncio's and uvloop's own TLS code, and session resumption."""

import asyncio
import hashlib
import io
import os
import re
import socket
import ssl as stdlib_ssl
import subprocess
import sys
import threading
import time
from types import SimpleNamespace

import pytest

import aio_gnutls_transport as agt
from aio_gnutls_transport import ssl as agt_ssl
from agt_testlib import (
    OPENSSL_TLS_FLAG, TLS_NAME, TLS_PRIORITY, MiB,
    close_server, close_writer, free_port, our_client_ctx, our_server_ctx,
    require_binary, run, sha256,
    start_stream_server, std_client_ctx, std_server_ctx, until, upper_echo,
    wait_for, wait_listening, BufferedRecorder)

NEW_STYLE_SSL = sys.version_info >= (3, 11)   # asyncio's ssl_shutdown_timeout

OCSP_URL = "http://ocsp.agt.test/"
CA_ISSUERS_URL = "http://ca.agt.test/ca.der"
CRL_URL = "http://crl.agt.test/ca.crl"


# --------------------------------------------------------------- helpers

@pytest.fixture(scope="module")
def aia_cert(certs, tmp_path_factory):
    """CN=localhost issued by the test CA, with OCSP and CA issuers URLs
    (authorityInfoAccess) and a CRL distribution point."""
    d = str(tmp_path_factory.mktemp("aia"))

    def openssl(*args):
        subprocess.run(["openssl", *args], cwd=d, check=True,
                       capture_output=True, timeout=60)

    with open(os.path.join(d, "aia.ext"), "w") as f:
        f.write("basicConstraints=critical,CA:FALSE\n"
                "keyUsage=critical,digitalSignature\n"
                "extendedKeyUsage=serverAuth\n"
                "subjectAltName=DNS:localhost,IP:127.0.0.1\n"
                "authorityInfoAccess=OCSP;URI:%s,caIssuers;URI:%s\n"
                "crlDistributionPoints=URI:%s\n"
                % (OCSP_URL, CA_ISSUERS_URL, CRL_URL))
    openssl("genpkey", "-algorithm", "EC", "-pkeyopt",
            "ec_paramgen_curve:P-256", "-out", "aia.key")
    openssl("req", "-new", "-key", "aia.key", "-out", "aia.csr",
            "-subj", "/O=AGT Tests/CN=localhost")
    openssl("x509", "-req", "-in", "aia.csr", "-CA", certs.ca, "-CAkey",
            certs.ca_key, "-set_serial", "4242", "-days", "30",
            "-extfile", "aia.ext", "-out", "aia.pem")
    openssl("x509", "-in", "aia.pem", "-outform", "DER", "-out", "aia.der")
    with open(os.path.join(d, "aia.der"), "rb") as f:
        der = f.read()
    return SimpleNamespace(cert=os.path.join(d, "aia.pem"),
                           key=os.path.join(d, "aia.key"), der=der)


def der_of(path):
    with open(path) as f:
        return stdlib_ssl.PEM_cert_to_DER_cert(f.read())


def wrong_name_ctx(certs, version=None):
    """A server context with the certificate for wrong.example."""
    return our_server_ctx(certs, version, cert="wrong_name")





async def line_roundtrip(reader, writer, line=b"hello drop-in\n"):
    writer.write(line)
    assert await wait_for(reader.readline(), 10, "echo") == line.upper()


def record_server_objects(store, handler=upper_echo):
    """A stream handler that keeps the server side's ssl_object."""
    async def handle(reader, writer):
        store.append(writer.get_extra_info("ssl_object"))
        await handler(reader, writer)
    return handle


def loop_factory(kind):
    """A new event loop of *kind*: 'gnutls' (GnutlsEventLoop), 'asyncio'
    (the stdlib's selector loop, whose own TLS code drives our contexts
    through wrap_bio) or 'uvloop'."""
    if kind == "gnutls":
        return agt.GnutlsEventLoop()
    if kind == "asyncio":
        return asyncio.SelectorEventLoop()
    uvloop = pytest.importorskip("uvloop")
    return uvloop.new_event_loop()


def run_on(kind, coro):
    """agt_testlib.run() on a loop of *kind* (see loop_factory)."""
    return run(coro, loop_factory=lambda: loop_factory(kind))


def check_shared_ciphers(obj, version):
    ciphers = obj.shared_ciphers()
    assert ciphers, ciphers
    for name, oldest, bits in ciphers:
        assert isinstance(name, str) and name.startswith("TLS_")
        assert bits >= 128
        if version == "1.3":
            assert oldest == "TLSv1.3"
        else:
            assert oldest in ("TLSv1", "TLSv1.1", "TLSv1.2"), oldest
    if version == "1.3":
        # TLS 1.3 suites have one name everywhere: the negotiated one is
        # among them
        assert obj.cipher()[0] in [c[0] for c in ciphers]


def parse_keylog(path):
    """{client random (hex): {label: secret (hex)}} of an NSS key log."""
    entries = {}
    with open(path) as f:
        for line in f:
            line = line.rstrip("\n")
            if not line or line.startswith("#"):
                continue
            label, random, secret = line.split(" ")
            assert re.fullmatch(r"[A-Z_0-9]+", label), line
            assert re.fullmatch(r"[0-9a-f]{64}", random.lower()), line
            assert re.fullmatch(r"[0-9a-f]+", secret.lower()), line
            assert len(secret) in (64, 96), line   # SHA-256/384 or master
            entries.setdefault(random.lower(), {})[label] = secret.lower()
    return entries


TLS13_LABELS = {"CLIENT_HANDSHAKE_TRAFFIC_SECRET",
                "SERVER_HANDSHAKE_TRAFFIC_SECRET",
                "CLIENT_TRAFFIC_SECRET_0", "SERVER_TRAFFIC_SECRET_0"}


def check_keylog_labels(labels, version):
    if version == "1.3":
        assert TLS13_LABELS <= set(labels), labels
    else:
        assert set(labels) == {"CLIENT_RANDOM"}, labels


async def upgrade(writer, ctx, **kw):
    """loop.start_tls() under a stream, as StreamWriter.start_tls() (3.11+)
    does it, but with every keyword start_tls() takes."""
    protocol = writer.transport.get_protocol()
    kw.setdefault("server_side", protocol._client_connected_cb is not None)
    await writer.drain()
    transport = await wait_for(asyncio.get_running_loop().start_tls(
        writer.transport, protocol, ctx, **kw), 15, "start_tls")
    writer._transport = transport
    if hasattr(protocol, "_replace_writer"):
        protocol._replace_writer(writer)
    else:
        protocol._transport = transport
        protocol._over_ssl = True


def shutdown_timeout(seconds):
    """ssl_shutdown_timeout=seconds where asyncio has it (3.11+)."""
    return {"ssl_shutdown_timeout": seconds} if NEW_STYLE_SSL else {}


# --------------------------------------------------------------- ssl_object

def test_ssl_object_answers_like_the_stdlibs(certs, aia_cert, tls_version):
    """Our client's ssl_object and a stdlib client's, connected to the
    same server, give the same answers; the server side's too."""
    async def main():
        sctx = agt_ssl.SSLContext(agt_ssl.PROTOCOL_TLS_SERVER)
        sctx.gnutls_set_priority(TLS_PRIORITY[tls_version])
        sctx.load_cert_chain(aia_cert.cert, aia_cert.key)
        seen = []
        server, ep = await start_stream_server(
            "tcp", record_server_objects(seen), sctx, None)
        try:
            ctx = our_client_ctx(certs, tls_version)
            reader, writer = await ep.open(ctx)
            await line_roundtrip(reader, writer)
            ours = writer.get_extra_info("ssl_object")
            # the GnuTLS loop keeps its own transport for our contexts
            assert type(ours) is agt.GnutlsObject
            assert type(writer.transport) is agt.GnutlsTransport

            sreader, swriter = await ep.open(std_client_ctx(certs, tls_version))
            await line_roundtrip(sreader, swriter)
            std = swriter.get_extra_info("ssl_object")
            assert isinstance(std, stdlib_ssl.SSLObject)

            cert = ours.getpeercert()
            assert cert == std.getpeercert()
            assert cert["OCSP"] == (OCSP_URL,)
            assert cert["caIssuers"] == (CA_ISSUERS_URL,)
            assert cert["crlDistributionPoints"] == (CRL_URL,)
            assert ours.getpeercert(True) == std.getpeercert(True) == aia_cert.der
            assert writer.get_extra_info("peercert") == cert
            assert ours.version() == std.version() == TLS_NAME[tls_version]
            name, version, bits = ours.cipher()
            assert version == TLS_NAME[tls_version] and bits >= 128
            assert writer.get_extra_info("cipher") == ours.cipher()
            if tls_version == "1.3":
                assert ours.cipher() == std.cipher()   # same IANA names
            assert ours.compression() is None
            assert writer.get_extra_info("compression") is None
            assert swriter.get_extra_info("compression") is None
            assert ours.server_side is std.server_side is False
            assert ours.server_hostname == std.server_hostname == "localhost"
            assert ours.session_reused is std.session_reused is False
            assert ours.context is ctx
            assert ours.selected_alpn_protocol() is None
            assert std.selected_alpn_protocol() is None
            assert ours.pending() == 0
            check_shared_ciphers(ours, tls_version)
            with pytest.raises(ValueError):
                ours.get_channel_binding("tls-nonsense")
            with pytest.raises(NotImplementedError):
                ours.verify_client_post_handshake()

            srv = seen[0]
            assert type(srv) is agt.GnutlsObject
            assert srv.server_side is True and srv.server_hostname is None
            assert srv.getpeercert() is None     # no client certificate
            assert srv.session is None           # only clients resume
            assert srv.context is sctx
            check_shared_ciphers(srv, tls_version)
            await close_writer(writer)
            await close_writer(swriter)
        finally:
            await close_server(server)

    run(main())


def test_channel_binding_tls_unique_matches_stdlib(certs):
    """tls-unique (TLS 1.2): both ends compute the same value, whether the
    peer is ours or the stdlib's; TLS 1.3 has none."""
    async def main():
        for server_kind in ("stdlib", "ours"):
            sctx = (std_server_ctx if server_kind == "stdlib"
                    else our_server_ctx)(certs, "1.2")
            seen = []
            server, ep = await start_stream_server(
                "tcp", record_server_objects(seen), sctx, None)
            try:
                for client_kind in ("ours", "stdlib"):
                    cctx = (our_client_ctx if client_kind == "ours"
                            else std_client_ctx)(certs, "1.2")
                    reader, writer = await ep.open(cctx)
                    await line_roundtrip(reader, writer)
                    mine = writer.get_extra_info("ssl_object")
                    theirs = seen[-1]
                    value = mine.get_channel_binding()
                    assert value and len(value) == 12
                    assert value == theirs.get_channel_binding("tls-unique")
                    await close_writer(writer)
            finally:
                await close_server(server)

        server, ep = await start_stream_server(
            "tcp", upper_echo, our_server_ctx(certs, "1.3"), None)
        try:
            reader, writer = await ep.open(our_client_ctx(certs, "1.3"))
            await line_roundtrip(reader, writer)
            obj = writer.get_extra_info("ssl_object")
            assert obj.get_channel_binding("tls-unique") is None
            await close_writer(writer)
        finally:
            await close_server(server)

    run(main())


def test_channel_binding_tls_exporter_matches_openssl(certs, procs,
                                                      tls_version):
    """tls-exporter (RFC 9266) is the exporter 'EXPORTER-Channel-Binding',
    32 bytes: with TLS 1.3, openssl s_client computes the same.  (Its
    -keymatexport exports without a context, which in TLS 1.2, unlike 1.3,
    differs from the empty context the channel binding uses: there our
    client and server must agree, and differ from openssl.)
    tls-server-end-point is the SHA-256 of the server's certificate."""
    require_binary("openssl")

    async def main():
        seen = []
        server, ep = await start_stream_server(
            "tcp", record_server_objects(seen),
            our_server_ctx(certs, tls_version), None)
        try:
            proc = procs.start([
                "openssl", "s_client", "-connect", "%s:%d" % ep.address,
                "-CAfile", certs.ca, "-servername", "localhost",
                "-keymatexport", "EXPORTER-Channel-Binding",
                "-keymatexportlen", "32", OPENSSL_TLS_FLAG[tls_version]])
            proc.send(b"exporter\n")
            await until(lambda: seen and "Keying material" in proc.output(),
                        timeout=15, what="openssl s_client's keying material")
            found = re.search(r"Keying material: ([0-9A-Fa-f]+)", proc.output())
            expected = bytes.fromhex(found.group(1))
            obj = seen[0]
            assert len(expected) == 32
            if tls_version == "1.3":
                assert obj.get_channel_binding("tls-exporter") == expected
            else:
                assert len(obj.get_channel_binding("tls-exporter")) == 32
                assert obj.get_channel_binding("tls-exporter") != expected
            assert obj.get_channel_binding("tls-server-end-point") == \
                hashlib.sha256(certs.server_der).digest()

            # and our own client agrees with our server
            reader, writer = await ep.open(our_client_ctx(certs, tls_version))
            await line_roundtrip(reader, writer)
            mine = writer.get_extra_info("ssl_object")
            assert mine.get_channel_binding("tls-exporter") == \
                seen[1].get_channel_binding("tls-exporter")
            assert mine.get_channel_binding("tls-exporter") != expected
            assert mine.get_channel_binding("tls-server-end-point") == \
                hashlib.sha256(certs.server_der).digest()
            await close_writer(writer)
        finally:
            await close_server(server)

    run(main())


# --------------------------------------------------------------- ALPN

def test_alpn_our_client_with_openssl_server(certs, procs, tls_version):
    require_binary("openssl")
    port = free_port()
    proc = procs.start(["openssl", "s_server", "-accept", "127.0.0.1:%d" % port,
                        "-cert", certs.server_cert, "-key", certs.server_key,
                        "-alpn", "http/1.1", "-rev",
                        OPENSSL_TLS_FLAG[tls_version]])
    wait_listening(("127.0.0.1", port), proc)

    async def main():
        ctx = our_client_ctx(certs, tls_version)
        ctx.set_alpn_protocols(["h2", "http/1.1"])
        reader, writer = await wait_for(asyncio.open_connection(
            "127.0.0.1", port, ssl=ctx, server_hostname="localhost"), 15)
        assert writer.get_extra_info("ssl_object").selected_alpn_protocol() \
            == "http/1.1"
        writer.write(b"alpn\n")
        assert await wait_for(reader.readline(), 10) == b"npla\n"
        await close_writer(writer)

    run(main())


def test_alpn_openssl_client_with_our_server(certs, procs, tls_version):
    """Server precedence, as the stdlib's server does it: our first
    protocol the client also offers."""
    require_binary("openssl")

    async def main():
        sctx = our_server_ctx(certs, tls_version)
        sctx.set_alpn_protocols(["h2", "http/1.1"])
        seen = []
        server, ep = await start_stream_server(
            "tcp", record_server_objects(seen), sctx, None)
        try:
            proc = procs.start([
                "openssl", "s_client", "-connect", "%s:%d" % ep.address,
                "-CAfile", certs.ca, "-servername", "localhost",
                "-alpn", "spdy/1,http/1.1,h2", OPENSSL_TLS_FLAG[tls_version]])
            proc.send(b"alpn\n")
            await until(lambda: "ALPN protocol" in proc.output() and seen,
                        timeout=15, what="s_client's ALPN line")
            assert "ALPN protocol: h2" in proc.output(), proc.output()
            assert seen[0].selected_alpn_protocol() == "h2"
        finally:
            await close_server(server)

    run(main())


def test_alpn_with_stdlib_peers(certs, tls_version):
    async def main():
        for server_kind, client_kind in (("stdlib", "ours"), ("ours", "stdlib"),
                                         ("ours", "ours")):
            sctx = (std_server_ctx if server_kind == "stdlib"
                    else our_server_ctx)(certs, tls_version)
            sctx.set_alpn_protocols(["imap", "http/1.1"])
            seen = []
            server, ep = await start_stream_server(
                "tcp", record_server_objects(seen), sctx, None)
            try:
                for offer, agreed in ((["h2", "http/1.1"], "http/1.1"),
                                      (["h2"], None), (None, None)):
                    cctx = (std_client_ctx if client_kind == "stdlib"
                            else our_client_ctx)(certs, tls_version)
                    if offer is not None:
                        cctx.set_alpn_protocols(offer)
                    reader, writer = await ep.open(cctx)
                    await line_roundtrip(reader, writer)
                    got = writer.get_extra_info("ssl_object")
                    assert got.selected_alpn_protocol() == agreed, \
                        (server_kind, client_kind, offer)
                    assert seen[-1].selected_alpn_protocol() == agreed
                    await close_writer(writer)
            finally:
                await close_server(server)

    run(main())


def test_set_alpn_protocols_checks_like_the_stdlib():
    for ctx in (agt_ssl.SSLContext(agt_ssl.PROTOCOL_TLS_CLIENT),
                stdlib_ssl.SSLContext(stdlib_ssl.PROTOCOL_TLS_CLIENT)):
        ctx.set_alpn_protocols(["h2", "x" * 32])
        ctx.set_alpn_protocols([])
        with pytest.raises(stdlib_ssl.SSLError):
            ctx.set_alpn_protocols([""])
        with pytest.raises(stdlib_ssl.SSLError):
            ctx.set_alpn_protocols(["x" * 256])
        with pytest.raises(TypeError):
            ctx.set_alpn_protocols([b"h2"])
        with pytest.raises(UnicodeEncodeError):
            ctx.set_alpn_protocols(["\u00e9"])
    # GnuTLS's limits show at the call, not in every later connection
    ctx = agt_ssl.SSLContext(agt_ssl.PROTOCOL_TLS_CLIENT)
    with pytest.raises(ValueError, match="32 bytes"):
        ctx.set_alpn_protocols(["x" * 33])
    with pytest.raises(ValueError, match="at most 8"):
        ctx.set_alpn_protocols(["p%d" % i for i in range(9)])


def test_resumption_refuses_a_session_from_a_laxer_context(certs):
    """A resumed handshake carries no certificate: a session made without
    verification (or with other trust) must not be offered by a verifying
    context, nor for another server name."""
    async def main():
        server, ep = await start_stream_server(
            "tcp", upper_echo, our_server_ctx(certs), None)
        try:
            lax = our_client_ctx(certs)
            lax.check_hostname = False
            lax.verify_mode = agt_ssl.CERT_NONE
            reader, writer = await ep.open(lax)
            await line_roundtrip(reader, writer)
            saved = writer.get_extra_info("ssl_object").session
            await close_writer(writer)
            assert saved is not None
            strict = our_client_ctx(certs)
            with pytest.raises(ValueError, match="certificate checks"):
                await ep.open(strict.gnutls_resume(saved))
            # the lax context itself may resume it, for the same name only
            reader, writer = await ep.open(lax.gnutls_resume(saved))
            await line_roundtrip(reader, writer)
            assert writer.get_extra_info("ssl_object").session_reused is True
            await close_writer(writer)
            with pytest.raises(ValueError, match="made with"):
                await ep.open(lax.gnutls_resume(saved),
                              server_hostname="127.0.0.1")
        finally:
            await close_server(server)

    run(main())


# --------------------------------------------------------------- SNI

@pytest.mark.parametrize("client_kind", ["ours", "stdlib"])
def test_sni_callback_switches_certificate(certs, tls_version, client_kind):
    async def main():
        sctx = our_server_ctx(certs, tls_version)
        other = wrong_name_ctx(certs, tls_version)
        calls = []

        def on_sni(ssl_object, server_name, ssl_context):
            calls.append((type(ssl_object), server_name, ssl_context))
            with pytest.raises(ValueError):
                ssl_object.getpeercert()     # the handshake is not done
            if server_name == "wrong.example":
                ssl_object.context = other
            return None

        sctx.sni_callback = on_sni
        assert sctx.sni_callback is on_sni
        seen = []
        server, ep = await start_stream_server(
            "tcp", record_server_objects(seen), sctx, None)
        try:
            make = our_client_ctx if client_kind == "ours" else std_client_ctx
            for name, der in (("wrong.example", der_of(certs.wrong_name_cert)),
                              ("localhost", certs.server_der),
                              ("127.0.0.1", certs.server_der)):
                reader, writer = await ep.open(make(certs, tls_version),
                                               server_hostname=name)
                await line_roundtrip(reader, writer)
                obj = writer.get_extra_info("ssl_object")
                assert obj.getpeercert(True) == der
                await close_writer(writer)
            assert calls == [(agt.GnutlsObject, "wrong.example", sctx),
                             (agt.GnutlsObject, "localhost", sctx),
                             (agt.GnutlsObject, None, sctx)]
            assert [obj.context for obj in seen] == [other, sctx, sctx]
        finally:
            await close_server(server)

    run(main())


def test_sni_with_openssl_client(certs, procs):
    require_binary("openssl")

    async def main():
        sctx = our_server_ctx(certs)
        other = wrong_name_ctx(certs)
        names = []

        def on_sni(ssl_object, server_name, ssl_context):
            names.append(server_name)
            if server_name == "wrong.example":
                ssl_object.context = other

        sctx.sni_callback = on_sni
        server, ep = await start_stream_server("tcp", upper_echo, sctx, None)
        try:
            proc = procs.start([
                "openssl", "s_client", "-connect", "%s:%d" % ep.address,
                "-CAfile", certs.ca, "-verify_return_error",
                "-servername", "wrong.example",
                "-verify_hostname", "wrong.example"])
            proc.send(b"sni\n")
            await until(lambda: "SNI\n" in proc.output(), timeout=15,
                        what="the echo through s_client")
            assert "Verify return code: 0 (ok)" in proc.output()
            assert "CN = wrong.example" in proc.output()
            assert names == ["wrong.example"]
        finally:
            await close_server(server)

    run(main())


@pytest.mark.parametrize("client_kind", ["ours", "stdlib"])
def test_sni_callback_refuses_with_its_alert(certs, client_kind):
    async def main():
        sctx = our_server_ctx(certs)
        sctx.sni_callback = lambda obj, name, ctx: (
            agt_ssl.ALERT_DESCRIPTION_UNRECOGNIZED_NAME
            if name != "localhost" else None)
        server, ep = await start_stream_server("tcp", upper_echo, sctx, None)
        try:
            make = our_client_ctx if client_kind == "ours" else std_client_ctx
            with pytest.raises(stdlib_ssl.SSLError) as info:
                await wait_for(ep.open(make(certs),
                                       server_hostname="wrong.example"), 15)
            message = str(info.value)
            if client_kind == "stdlib":
                assert "UNRECOGNIZED_NAME" in message, message
            else:
                assert "(112)" in message, message
            reader, writer = await ep.open(make(certs))   # localhost: fine
            await line_roundtrip(reader, writer)
            await close_writer(writer)
        finally:
            await close_server(server)

    run(main())


def test_sni_callback_errors_fail_the_handshake(certs):
    """An exception in the callback, a bad return value or a client
    context set as the context: the client gets internal_error."""
    async def main():
        client_ctx = our_client_ctx(certs)

        def raises(obj, name, ctx):
            raise RuntimeError("no such tenant")

        def bad_return(obj, name, ctx):
            return "not an alert"

        def bad_context(obj, name, ctx):
            obj.context = client_ctx

        for callback in (raises, bad_return, bad_context):
            sctx = our_server_ctx(certs)
            sctx.sni_callback = callback
            server, ep = await start_stream_server("tcp", upper_echo, sctx,
                                                   None)
            try:
                with pytest.raises(stdlib_ssl.SSLError) as info:
                    await wait_for(ep.open(std_client_ctx(certs)), 15)
                assert "INTERNAL_ERROR" in str(info.value), str(info.value)
            finally:
                await close_server(server)

    run(main())


def test_sni_callback_settings(certs):
    client = agt_ssl.SSLContext(agt_ssl.PROTOCOL_TLS_CLIENT)
    with pytest.raises(ValueError):
        client.sni_callback = lambda *a: None
    server = agt_ssl.SSLContext(agt_ssl.PROTOCOL_TLS_SERVER)
    assert server.sni_callback is None
    with pytest.raises(TypeError):
        server.sni_callback = "not callable"
    server.sni_callback = None
    with pytest.raises(TypeError):
        server.set_servername_callback(42)
    server.set_servername_callback(None)
    assert server.sni_callback is None


def test_set_servername_callback(certs):
    async def main():
        sctx = our_server_ctx(certs)
        other = wrong_name_ctx(certs)
        names = []

        def old_style(ssl_object, server_name, ssl_context):
            names.append(server_name)
            ssl_object.context = other

        sctx.set_servername_callback(old_style)
        server, ep = await start_stream_server("tcp", upper_echo, sctx, None)
        try:
            reader, writer = await ep.open(our_client_ctx(certs),
                                           server_hostname="wrong.example")
            await line_roundtrip(reader, writer)
            assert writer.get_extra_info("ssl_object").getpeercert(True) == \
                der_of(certs.wrong_name_cert)
            assert names == ["wrong.example"]
            await close_writer(writer)
        finally:
            await close_server(server)

    run(main())


def test_context_cannot_change_outside_sni_callback(certs):
    async def main():
        server, ep = await start_stream_server(
            "tcp", upper_echo, our_server_ctx(certs), None)
        try:
            reader, writer = await ep.open(our_client_ctx(certs))
            obj = writer.get_extra_info("ssl_object")
            with pytest.raises(ValueError):
                obj.context = our_server_ctx(certs)
            with pytest.raises(TypeError):
                obj.context = std_server_ctx(certs)
            obj.context = obj.context           # the same one: fine
            await close_writer(writer)
        finally:
            await close_server(server)

    run(main())


# --------------------------------------------------------------- key log

def test_keylog_has_only_this_contexts_sessions(certs, tls_version, tmp_path):
    """A stdlib server logs the secrets of every connection; of two client
    contexts, only the one with keylog_filename logs, only its own
    connection, with exactly the server's secrets."""
    server_log = str(tmp_path / "server.keys")
    client_log = str(tmp_path / "client.keys")

    async def main():
        sctx = std_server_ctx(certs, tls_version)
        sctx.keylog_filename = server_log
        server, ep = await start_stream_server("tcp", upper_echo, sctx, None)
        try:
            logged = our_client_ctx(certs, tls_version)
            logged.keylog_filename = client_log
            assert logged.keylog_filename == client_log
            quiet = our_client_ctx(certs, tls_version)
            for ctx in (logged, quiet):
                reader, writer = await ep.open(ctx)
                await line_roundtrip(reader, writer)
                await close_writer(writer)
            server_keys = parse_keylog(server_log)
            assert len(server_keys) == 2
            client_keys = parse_keylog(client_log)
            assert len(client_keys) == 1
            (random, secrets), = client_keys.items()
            check_keylog_labels(secrets, tls_version)
            # the same secrets the stdlib server logged for that connection
            assert {k: v for k, v in server_keys[random].items()
                    if k in secrets} == secrets
            assert set(secrets) == set(server_keys[random])

            # None stops logging; the file is left as it was
            size = os.path.getsize(client_log)
            logged.keylog_filename = None
            assert logged.keylog_filename is None
            reader, writer = await ep.open(logged)
            await line_roundtrip(reader, writer)
            await close_writer(writer)
            assert os.path.getsize(client_log) == size
            assert len(parse_keylog(server_log)) == 3
        finally:
            await close_server(server)

    run(main())
    with open(client_log) as f:
        assert f.readline().startswith("# TLS secrets log file")
    assert os.stat(client_log).st_mode & 0o777 == 0o600


def test_keylog_server_side_matches_openssl_client(certs, procs, tls_version,
                                                   tmp_path):
    require_binary("openssl")
    server_log = str(tmp_path / "ours.keys")
    openssl_log = str(tmp_path / "openssl.keys")

    async def main():
        sctx = our_server_ctx(certs, tls_version)
        sctx.keylog_filename = server_log
        server, ep = await start_stream_server("tcp", upper_echo, sctx, None)
        try:
            proc = procs.start([
                "openssl", "s_client", "-connect", "%s:%d" % ep.address,
                "-CAfile", certs.ca, "-servername", "localhost",
                "-keylogfile", openssl_log, OPENSSL_TLS_FLAG[tls_version]])
            # (s_client takes a line starting with k, q, r or b as a command)
            proc.send(b"secrets\n")
            await until(lambda: "SECRETS\n" in proc.output(), timeout=15,
                        what="the echo through s_client")
        finally:
            await close_server(server)

    run(main())
    ours = parse_keylog(server_log)
    theirs = parse_keylog(openssl_log)
    assert len(ours) == 1
    (random, secrets), = ours.items()
    check_keylog_labels(secrets, tls_version)
    assert theirs[random] == secrets


def test_keylog_filename_errors(tmp_path):
    ctx = agt_ssl.SSLContext(agt_ssl.PROTOCOL_TLS_CLIENT)
    assert ctx.keylog_filename is None
    with pytest.raises(IsADirectoryError):
        ctx.keylog_filename = str(tmp_path)
    with pytest.raises(FileNotFoundError):
        ctx.keylog_filename = str(tmp_path / "missing" / "keys")
    assert ctx.keylog_filename is None
    import pathlib
    path = pathlib.Path(tmp_path / "keys")
    ctx.keylog_filename = path
    assert ctx.keylog_filename == path and path.exists()


# --------------------------------------------------------------- STARTTLS

def test_starttls_with_gnutls_contexts_on_both_sides(certs, tls_version):
    """A plain-text greeting, then loop.start_tls() on both ends (the
    server side with server_side=True), with timeouts given."""
    async def main():
        upgraded = []

        async def server_side(reader, writer):
            assert await reader.readline() == b"STARTTLS\n"
            writer.write(b"GO AHEAD\n")
            await writer.drain()
            await upgrade(writer, our_server_ctx(certs, tls_version),
                          ssl_handshake_timeout=5, **shutdown_timeout(5))
            upgraded.append(writer.get_extra_info("ssl_object"))
            await upper_echo(reader, writer)

        server, ep = await start_stream_server("tcp", server_side, None, None)
        try:
            reader, writer = await ep.open(None)
            assert writer.get_extra_info("ssl_object") is None
            writer.write(b"STARTTLS\n")
            assert await reader.readline() == b"GO AHEAD\n"
            await upgrade(writer, our_client_ctx(certs, tls_version),
                          server_hostname="localhost",
                          ssl_handshake_timeout=5, **shutdown_timeout(5))
            assert type(writer.transport) is agt.GnutlsTransport
            obj = writer.get_extra_info("ssl_object")
            assert obj.version() == TLS_NAME[tls_version]
            await line_roundtrip(reader, writer, b"now encrypted\n")
            assert upgraded[0].server_side and upgraded[0].version() == \
                TLS_NAME[tls_version]
            await close_writer(writer)
        finally:
            await close_server(server)

    run(main())


async def tls_proxy(proxy_ctx, inner_port):
    """A TLS server (GnuTLS) that forwards each connection's plaintext to
    127.0.0.1:inner_port over plain TCP, both ways."""
    async def pipe(reader, writer):
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    break
                writer.write(data)
                await writer.drain()
        except (ConnectionError, stdlib_ssl.SSLError):
            pass
        finally:
            writer.close()

    async def handle(reader, writer):
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1",
                                                             inner_port)
        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    return await asyncio.start_server(handle, "127.0.0.1", 0, ssl=proxy_ctx)


@pytest.mark.parametrize("inner", ["ours", "stdlib"])
@pytest.mark.parametrize("loop_kind", ["gnutls", "asyncio"])
def test_tls_inside_tls_through_a_proxy(certs, tls_version, inner, loop_kind):
    """The client's TLS to the proxy carries a second TLS connection, to
    the inner server, made with start_tls() over the first: a TLS
    transport over a TLS transport.  On asyncio's own loop the same runs
    through wrap_bio() twice."""
    async def main():
        inner_ctx = (wrong_name_ctx(certs, tls_version) if inner == "ours"
                     else std_server_ctx(certs, tls_version, cert="wrong_name"))
        inner_server = await asyncio.start_server(upper_echo, "127.0.0.1", 0,
                                                  ssl=inner_ctx)
        proxy = await tls_proxy(our_server_ctx(certs, tls_version),
                                inner_server.sockets[0].getsockname()[1])
        try:
            port = proxy.sockets[0].getsockname()[1]
            reader, writer = await wait_for(asyncio.open_connection(
                "127.0.0.1", port, ssl=our_client_ctx(certs, tls_version),
                server_hostname="localhost"), 15)
            outer = writer.get_extra_info("ssl_object")
            assert outer.getpeercert(True) == certs.server_der
            outer_transport = writer.transport
            await upgrade(writer, our_client_ctx(certs, tls_version),
                          server_hostname="wrong.example")
            inner_obj = writer.get_extra_info("ssl_object")
            assert inner_obj is not outer
            assert inner_obj.getpeercert(True) == der_of(certs.wrong_name_cert)
            assert inner_obj.version() == TLS_NAME[tls_version]
            if loop_kind == "gnutls":
                assert type(writer.transport) is agt.GnutlsTransport
                assert writer.transport._tls._transport is outer_transport
            for _ in range(5):      # lines of several records each
                payload = os.urandom(30000).hex().encode() + b"\n"
                writer.write(payload)
                got = await wait_for(reader.readline(), 20, "the inner echo")
                assert got == payload.upper()
            await close_writer(writer)
        finally:
            proxy.close()
            inner_server.close()
            await wait_for(proxy.wait_closed(), 10)
            await wait_for(inner_server.wait_closed(), 10)

    run_on(loop_kind, main())


# --------------------------------------------------------------- timeouts

def test_default_timeouts_are_the_stdlibs(certs):
    async def main():
        server, ep = await start_stream_server(
            "tcp", upper_echo, our_server_ctx(certs), None)
        try:
            reader, writer = await ep.open(our_client_ctx(certs))
            tls = writer.transport._tls
            assert tls._ssl_handshake_timeout == 60.0
            assert tls._ssl_shutdown_timeout == 30.0
            from asyncio import constants
            assert tls._ssl_handshake_timeout == constants.SSL_HANDSHAKE_TIMEOUT
            if hasattr(constants, "SSL_SHUTDOWN_TIMEOUT"):
                assert tls._ssl_shutdown_timeout == constants.SSL_SHUTDOWN_TIMEOUT
            await close_writer(writer)
            with pytest.raises(ValueError):
                await ep.open(our_client_ctx(certs), ssl_handshake_timeout=0)
            if NEW_STYLE_SSL:
                with pytest.raises(ValueError):
                    await ep.open(our_client_ctx(certs),
                                  ssl_shutdown_timeout=-1)
        finally:
            await close_server(server)

    run(main())


@pytest.mark.parametrize("loop_kind", ["gnutls", "asyncio", "uvloop"])
def test_server_drops_a_client_that_never_finishes_its_handshake(
        certs, loop_kind):
    """start_server(ssl_handshake_timeout=...): a client that connects and
    sends nothing is disconnected after that time."""
    async def main():
        server, ep = await start_stream_server(
            "tcp", upper_echo, our_server_ctx(certs), None,
            ssl_handshake_timeout=0.5)
        try:
            sock = socket.create_connection(ep.address, timeout=10)
            sock.setblocking(False)
            loop = asyncio.get_running_loop()
            start = time.monotonic()
            data = await wait_for(loop.sock_recv(sock, 100), 10,
                                  "the server to drop the mute client")
            elapsed = time.monotonic() - start
            sock.close()
            assert data == b""
            assert 0.4 < elapsed < 5, elapsed
            reader, writer = await ep.open(our_client_ctx(certs))
            await line_roundtrip(reader, writer)
            await close_writer(writer)
        finally:
            await close_server(server)

    run_on(loop_kind, main())


def test_start_tls_handshake_timeout(certs):
    """start_tls(ssl_handshake_timeout=...) gives up on a peer that never
    answers the ClientHello."""
    async def mute(reader, writer):
        await asyncio.sleep(30)

    async def main():
        server, ep = await start_stream_server("tcp", mute, None, None)
        try:
            reader, writer = await ep.open(None)
            start = time.monotonic()
            with pytest.raises((ConnectionAbortedError, asyncio.TimeoutError)):
                await upgrade(writer, our_client_ctx(certs),
                              server_hostname="localhost",
                              ssl_handshake_timeout=0.5)
            assert 0.4 < time.monotonic() - start < 5
            writer.close()
        finally:
            await close_server(server)

    run(main())


class SilentTLSServer:
    """A TLS server in a thread (the stdlib's blocking ssl) that finishes
    the handshake, then neither reads nor writes nor closes until stop():
    a peer that never answers close_notify."""

    def __init__(self, ctx):
        self.ctx = ctx
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(15)
        self.address = self.listener.getsockname()[:2]
        self.done = threading.Event()
        self.handshakes = 0
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        try:
            sock, _ = self.listener.accept()
        except OSError:
            return
        sock.settimeout(15)
        try:
            with self.ctx.wrap_socket(sock, server_side=True):
                self.handshakes += 1
                self.done.wait(30)
        except OSError:
            sock.close()

    def stop(self):
        self.done.set()
        self.listener.close()
        self.thread.join(10)


@pytest.mark.skipif(not NEW_STYLE_SSL,
                    reason="asyncio has ssl_shutdown_timeout from Python 3.11")
@pytest.mark.parametrize("loop_kind", ["gnutls", "asyncio", "uvloop"])
def test_stream_close_gives_up_after_ssl_shutdown_timeout(certs, loop_kind):
    """open_connection(ssl_shutdown_timeout=...): the peer never answers
    our close_notify, yet the connection is gone after that time."""
    peer = SilentTLSServer(std_server_ctx(certs))

    async def main():
        reader, writer = await wait_for(asyncio.open_connection(
            *peer.address, ssl=our_client_ctx(certs),
            server_hostname="localhost", ssl_shutdown_timeout=0.5), 15)
        writer.write(b"bye")
        await writer.drain()
        start = time.monotonic()
        writer.close()
        try:
            # asyncio's own TLS reports TimeoutError('SSL shutdown timed
            # out'); ours closes without an error (all was sent)
            await asyncio.wait_for(writer.wait_closed(), 10)
        except asyncio.TimeoutError as exc:
            assert "SSL shutdown timed out" in str(exc)
        elapsed = time.monotonic() - start
        assert writer.transport.is_closing()
        assert 0.4 <= elapsed < 5, elapsed

    try:
        run_on(loop_kind, main())
        assert peer.handshakes == 1
    finally:
        peer.stop()


# --------------------------------------------------------------- BufferedProtocol

@pytest.mark.parametrize("loop_kind", ["gnutls", "asyncio", "uvloop"])
def test_buffered_protocol_gets_plaintext_in_its_buffers(certs, tls_version,
                                                         loop_kind):
    payload = os.urandom(MiB + 17)

    async def main():
        async def send(reader, writer):
            writer.write(payload)
            await writer.drain()
            writer.close()

        server, ep = await start_stream_server(
            "tcp", send, our_server_ctx(certs, tls_version), None)
        try:
            transport, client = await ep.connect(
                BufferedRecorder, our_client_ctx(certs, tls_version))
            await wait_for(client.lost, 30, "all the data")
            assert sha256(client.data) == sha256(payload)
            assert client.updates >= len(payload) // 1000
            assert client.eof_calls == 1
        finally:
            await close_server(server)

    run_on(loop_kind, main())


# --------------------------------------------------------------- wrap_bio

def pump(a_out, b_in, b_out, a_in):
    """Move ciphertext between two pairs of memory BIOs; True if any."""
    moved = False
    for src, dst in ((a_out, b_in), (b_out, a_in)):
        data = src.read()
        if data:
            dst.write(data)
            moved = True
    return moved


class BioPair:
    """A client and a server SSLObject (ours or the stdlib's) connected
    through memory BIOs."""

    def __init__(self, cctx, sctx, server_hostname="localhost", session=None):
        self.c_in, self.c_out = stdlib_ssl.MemoryBIO(), stdlib_ssl.MemoryBIO()
        self.s_in, self.s_out = stdlib_ssl.MemoryBIO(), stdlib_ssl.MemoryBIO()
        kw = {"session": session} if session is not None else {}
        self.client = cctx.wrap_bio(self.c_in, self.c_out,
                                    server_hostname=server_hostname, **kw)
        self.server = sctx.wrap_bio(self.s_in, self.s_out, server_side=True)

    def pump(self):
        return pump(self.c_out, self.s_in, self.s_out, self.c_in)

    def step(self, fn, *args):
        try:
            return True, fn(*args)
        except stdlib_ssl.SSLWantReadError:
            return False, None

    def handshake(self):
        done = {"client": False, "server": False}
        for _ in range(20):
            for side in ("client", "server"):
                if not done[side]:
                    done[side], _ = self.step(getattr(self, side).do_handshake)
            if not self.pump() and all(done.values()):
                return
        raise AssertionError("the handshake does not finish: %r" % done)

    def read_all(self, obj, expect):
        got = bytearray()
        for _ in range(1000):
            self.pump()
            try:
                chunk = obj.read(65536)
            except stdlib_ssl.SSLWantReadError:
                continue
            if not chunk:
                break
            got += chunk
            if len(got) >= expect:
                break
        return bytes(got)


IMPLS = {
    "ours": (our_client_ctx, our_server_ctx),
    "stdlib": (std_client_ctx, std_server_ctx),
}


@pytest.mark.parametrize("client_kind,server_kind", [
    ("ours", "stdlib"), ("stdlib", "ours"), ("ours", "ours")])
def test_wrap_bio_behaves_like_sslobject(certs, tls_version, client_kind,
                                         server_kind):
    cctx = IMPLS[client_kind][0](certs, tls_version)
    sctx = IMPLS[server_kind][1](certs, tls_version)
    cctx.set_alpn_protocols(["h2", "http/1.1"])
    sctx.set_alpn_protocols(["http/1.1"])
    pair = BioPair(cctx, sctx)
    ours = pair.client if client_kind == "ours" else pair.server
    assert type(ours) is agt.GnutlsSSLObject
    assert type(ours) is agt_ssl.SSLObject
    # before the handshake, as the stdlib answers
    assert ours.cipher() is None and ours.version() is None
    assert ours.shared_ciphers() is None
    assert ours.selected_alpn_protocol() is None
    assert ours.get_channel_binding("tls-unique") is None
    assert ours.pending() == 0
    with pytest.raises(ValueError):
        ours.getpeercert()
    with pytest.raises(stdlib_ssl.SSLWantReadError):
        pair.server.do_handshake()     # nothing arrived yet
    pair.handshake()

    for obj in (pair.client, pair.server):
        assert obj.version() == TLS_NAME[tls_version]
        assert obj.selected_alpn_protocol() == "http/1.1"
        assert obj.compression() is None
    assert ours.cipher()[1] == TLS_NAME[tls_version]
    assert pair.client.getpeercert(True) == certs.server_der
    assert pair.client.getpeercert()["subject"] == \
        ((("organizationName", "AGT Tests"),), (("commonName", "localhost"),))
    assert pair.server.getpeercert() is None
    assert pair.client.server_side is False and pair.server.server_side is True
    assert pair.client.server_hostname == "localhost"
    assert ours.context is (cctx if client_kind == "ours" else sctx)
    check_shared_ciphers(ours, tls_version)
    if tls_version == "1.2":
        assert pair.client.get_channel_binding() == \
            pair.server.get_channel_binding()

    # data both ways, in several records; read(len) and read(len, buffer)
    big = os.urandom(100000)
    assert pair.client.write(big) == len(big)
    assert pair.read_all(pair.server, len(big)) == big
    assert pair.server.write(b"0123456789") == 10
    pair.pump()
    assert pair.client.read(4) == b"0123"
    if pair.client is ours:
        assert ours.pending() == 6
    buf = bytearray(100)
    assert pair.client.read(100, buf) == 6 and buf[:6] == b"456789"
    with pytest.raises(stdlib_ssl.SSLWantReadError):
        pair.client.read(100)

    # the server closes: the client reads b'' then answers; the server's
    # unwrap() completes with the client's close_notify
    with pytest.raises(stdlib_ssl.SSLWantReadError):
        pair.server.unwrap()
    pair.pump()
    assert pair.client.read(100) == b""
    assert pair.client.read(100, buf) == 0
    pair.client.unwrap()        # the peer's close_notify is already here
    pair.pump()
    assert pair.server.unwrap() is None
    with pytest.raises(stdlib_ssl.SSLZeroReturnError):
        pair.client.read(100)   # both close_notify exchanged
    with pytest.raises(stdlib_ssl.SSLError):
        pair.client.write(b"too late")


@pytest.mark.parametrize("peer", ["ours", "stdlib"])
def test_wrap_bio_truncation_is_ssleoferror(certs, peer):
    pair = BioPair(our_client_ctx(certs), IMPLS[peer][1](certs))
    pair.handshake()
    pair.server.write(b"partial")
    pair.pump()
    assert pair.client.read() == b"partial"
    pair.c_in.write_eof()           # the transport ended, no close_notify
    with pytest.raises(stdlib_ssl.SSLEOFError) as info:
        pair.client.read()
    assert isinstance(info.value, agt.PrematureTerminationError)

    # during the handshake
    pair = BioPair(our_client_ctx(certs), IMPLS[peer][1](certs))
    with pytest.raises(stdlib_ssl.SSLWantReadError):
        pair.client.do_handshake()
    pair.c_in.write_eof()
    with pytest.raises(stdlib_ssl.SSLEOFError):
        pair.client.do_handshake()


def test_wrap_bio_verification_failure(certs):
    pair = BioPair(our_client_ctx(certs, cafile="other_ca"),
                   std_server_ctx(certs))
    with pytest.raises(stdlib_ssl.SSLCertVerificationError) as info:
        pair.handshake()
    assert isinstance(info.value, agt.CertificateVerificationError)
    assert info.value.verify_code == 20     # unable to get local issuer
    # the alert went out to the peer
    pair.pump()
    with pytest.raises(stdlib_ssl.SSLError) as info:
        pair.server.do_handshake()
    assert "UNKNOWN_CA" in str(info.value) or "ALERT" in str(info.value)


def test_wrap_bio_sni_callback(certs):
    sctx = our_server_ctx(certs)
    other = wrong_name_ctx(certs)
    calls = []

    def on_sni(obj, name, ctx):
        calls.append((type(obj), name))
        obj.context = other

    sctx.sni_callback = on_sni
    pair = BioPair(std_client_ctx(certs), sctx,
                   server_hostname="wrong.example")
    pair.handshake()
    assert calls == [(agt.GnutlsSSLObject, "wrong.example")]
    assert pair.server.context is other
    assert pair.client.getpeercert(True) == der_of(certs.wrong_name_cert)

    # an exception in the callback: an SSLError for the stdlib's callers
    sctx.sni_callback = lambda obj, name, ctx: 1 / 0
    pair = BioPair(std_client_ctx(certs), sctx)
    with pytest.raises(stdlib_ssl.SSLError) as info:
        pair.handshake()
    assert isinstance(info.value.__cause__, ZeroDivisionError)


def test_wrap_bio_checks_its_arguments(certs):
    ctx = our_client_ctx(certs)
    with pytest.raises(ValueError):
        ctx.wrap_bio(stdlib_ssl.MemoryBIO(), stdlib_ssl.MemoryBIO())
    with pytest.raises(TypeError):
        ctx.wrap_bio(io.BytesIO(), stdlib_ssl.MemoryBIO(),
                     server_hostname="localhost")
    with pytest.raises(ValueError):
        ctx.wrap_bio(stdlib_ssl.MemoryBIO(), stdlib_ssl.MemoryBIO(),
                     server_side=True)
    with pytest.raises(TypeError):
        agt.GnutlsSSLObject()


@pytest.mark.parametrize("loop_kind", ["asyncio", "uvloop"])
@pytest.mark.parametrize("client_kind,server_kind", [
    ("ours", "stdlib"), ("stdlib", "ours"), ("ours", "ours")])
def test_wrap_bio_under_event_loops_own_tls(certs, tls_version, loop_kind,
                                            client_kind, server_kind):
    """On asyncio's own loop and on uvloop's, our contexts work through the
    loop's TLS code (wrap_bio), as clients and servers."""
    async def main():
        seen = []
        server, ep = await start_stream_server(
            "tcp", record_server_objects(seen),
            IMPLS[server_kind][1](certs, tls_version), None)
        try:
            reader, writer = await ep.open(
                IMPLS[client_kind][0](certs, tls_version))
            obj = writer.get_extra_info("ssl_object")
            await until(lambda: seen, what="the server's handshake")
            ours = obj if client_kind == "ours" else seen[0]
            assert type(ours) is agt.GnutlsSSLObject
            assert obj.version() == TLS_NAME[tls_version]
            assert writer.get_extra_info("peercert")["subject"][-1] == \
                (("commonName", "localhost"),)
            assert writer.get_extra_info("cipher") == obj.cipher()
            for _ in range(5):      # lines of several records each
                payload = os.urandom(30000).hex().encode() + b"\n"
                writer.write(payload)
                assert await wait_for(reader.readline(), 20) == \
                    payload.upper()
            for _ in range(20):
                await line_roundtrip(reader, writer, b"x" * 100 + b"\n")
            await close_writer(writer)
            assert writer.transport.is_closing()
        finally:
            await close_server(server)

    run_on(loop_kind, main())


@pytest.mark.parametrize("loop_kind", ["asyncio", "uvloop"])
def test_wrap_bio_under_event_loops_rejects_unknown_issuer(certs, loop_kind):
    async def main():
        server, ep = await start_stream_server(
            "tcp", upper_echo, std_server_ctx(certs, cert="other_server"),
            None)
        try:
            with pytest.raises(stdlib_ssl.SSLCertVerificationError) as info:
                await wait_for(ep.open(our_client_ctx(certs)), 15)
            assert isinstance(info.value, agt.CertificateVerificationError)
        finally:
            await close_server(server)

    run_on(loop_kind, main())


def test_wrap_bio_with_stdlib_start_tls_on_asyncio_loop(certs, tls_version):
    """asyncio's own start_tls() (server and client side) with our
    contexts."""
    async def main():
        async def server_side(reader, writer):
            assert await reader.readline() == b"STARTTLS\n"
            writer.write(b"GO\n")
            await writer.drain()
            await upgrade(writer, our_server_ctx(certs, tls_version))
            await upper_echo(reader, writer)

        server, ep = await start_stream_server("tcp", server_side, None, None)
        try:
            reader, writer = await ep.open(None)
            writer.write(b"STARTTLS\n")
            assert await reader.readline() == b"GO\n"
            await upgrade(writer, our_client_ctx(certs, tls_version),
                          server_hostname="localhost")
            assert type(writer.get_extra_info("ssl_object")) is \
                agt.GnutlsSSLObject
            await line_roundtrip(reader, writer)
            await close_writer(writer)
        finally:
            await close_server(server)

    run_on("asyncio", main())


# --------------------------------------------------------------- resumption

async def session_of(writer, timeout=10):
    """The GnutlsSession of a client connection, once there is one (TLS
    1.3: the server's ticket comes after the handshake)."""
    obj = writer.get_extra_info("ssl_object")
    await until(lambda: obj.session is not None, timeout=timeout,
                what="a session to resume")
    return obj.session


@pytest.mark.parametrize("server_kind", ["ours", "stdlib"])
def test_session_resumption(certs, tls_version, server_kind):
    async def main():
        seen = []
        server, ep = await start_stream_server(
            "tcp", record_server_objects(seen),
            IMPLS[server_kind][1](certs, tls_version), None)
        try:
            ctx = our_client_ctx(certs, tls_version)
            reader, writer = await ep.open(ctx)
            await line_roundtrip(reader, writer)
            obj = writer.get_extra_info("ssl_object")
            assert obj.session_reused is False
            saved = await session_of(writer)
            assert isinstance(saved, agt.GnutlsSession)
            assert saved.server_hostname == "localhost"
            assert obj.session is saved or obj.session == saved
            await close_writer(writer)

            resuming = ctx.gnutls_resume(saved)
            assert resuming.gnutls_resume_session is saved
            assert ctx.gnutls_resume_session is None
            assert resuming.gnutls_credentials is ctx.gnutls_credentials
            reader, writer = await ep.open(resuming)
            await line_roundtrip(reader, writer)
            obj = writer.get_extra_info("ssl_object")
            assert obj.session_reused is True
            assert seen[-1].session_reused is True     # the server agrees
            assert obj.getpeercert(True) == certs.server_der
            await close_writer(writer)

            # from bytes, e.g. a cache that outlived the process: it must
            # be bound to the context that will offer it
            unbound = agt.GnutlsSession(bytes(saved), "localhost")
            with pytest.raises(ValueError, match="certificate checks"):
                await ep.open(ctx.gnutls_resume(unbound))
            restored = agt.GnutlsSession(bytes(saved), "localhost",
                                         context=ctx)
            reader, writer = await ep.open(ctx.gnutls_resume(restored))
            await line_roundtrip(reader, writer)
            assert writer.get_extra_info("ssl_object").session_reused is True
            await close_writer(writer)

            # the original context offers nothing
            reader, writer = await ep.open(ctx)
            await line_roundtrip(reader, writer)
            assert writer.get_extra_info("ssl_object").session_reused is False
            assert seen[-1].session_reused is False
            await close_writer(writer)
        finally:
            await close_server(server)

    run(main())


def test_session_resumption_with_openssl_server(certs, procs, tls_version):
    require_binary("openssl")
    port = free_port()
    proc = procs.start(["openssl", "s_server", "-accept", "127.0.0.1:%d" % port,
                        "-cert", certs.server_cert, "-key", certs.server_key,
                        "-rev", OPENSSL_TLS_FLAG[tls_version]])
    wait_listening(("127.0.0.1", port), proc)

    async def main():
        ctx = our_client_ctx(certs, tls_version)
        reused = []
        saved = None
        for _ in range(2):
            use = ctx if saved is None else ctx.gnutls_resume(saved)
            reader, writer = await wait_for(asyncio.open_connection(
                "127.0.0.1", port, ssl=use, server_hostname="localhost"), 15)
            writer.write(b"abc\n")
            assert await wait_for(reader.readline(), 10) == b"cba\n"
            saved = await session_of(writer)
            reused.append(writer.get_extra_info("ssl_object").session_reused)
            await close_writer(writer)
        assert reused == [False, True]

    run(main())


def test_session_resumption_refuses_another_server_name(certs):
    async def main():
        server, ep = await start_stream_server(
            "tcp", upper_echo, our_server_ctx(certs), None)
        try:
            ctx = our_client_ctx(certs)
            reader, writer = await ep.open(ctx)
            await line_roundtrip(reader, writer)
            saved = await session_of(writer)
            await close_writer(writer)
            with pytest.raises(ValueError) as info:
                await ep.open(ctx.gnutls_resume(saved),
                              server_hostname="127.0.0.1")
            assert "localhost" in str(info.value)
        finally:
            await close_server(server)

    run(main())
    server_ctx = agt_ssl.SSLContext(agt_ssl.PROTOCOL_TLS_SERVER)
    with pytest.raises(ValueError):
        server_ctx.gnutls_resume(None)
    with pytest.raises(TypeError):
        agt_ssl.SSLContext().gnutls_resume(b"bytes are not a session")


@pytest.mark.parametrize("server_kind", ["ours", "stdlib"])
def test_wrap_bio_session_resumption(certs, tls_version, server_kind):
    sctx = IMPLS[server_kind][1](certs, tls_version)
    cctx = our_client_ctx(certs, tls_version)
    pair = BioPair(cctx, sctx)
    pair.handshake()
    assert pair.client.session_reused is False
    pair.server.write(b"ticket, please")
    pair.pump()
    assert pair.read_all(pair.client, 14) == b"ticket, please"
    saved = pair.client.session
    assert isinstance(saved, agt.GnutlsSession)
    with pytest.raises(ValueError):
        pair.client.session = saved      # after the handshake

    pair = BioPair(cctx, sctx, session=saved)
    pair.handshake()
    assert pair.client.session_reused is True
    assert pair.server.session_reused is True

    pair = BioPair(cctx, sctx)
    pair.client.session = saved          # before the handshake: offered
    pair.handshake()
    assert pair.client.session_reused is True
    if server_kind == "ours":
        with pytest.raises(ValueError):
            pair.server.session = saved


# --------------------------------------------------------------- still unsupported

def test_unsupported_connection_members_say_so(certs):
    pair = BioPair(our_client_ctx(certs), std_server_ctx(certs))
    pair.handshake()
    for call in (pair.client.verify_client_post_handshake,
                 pair.client.get_verified_chain):
        with pytest.raises(NotImplementedError) as info:
            call()
        assert "not supported" in str(info.value)
    assert pair.client.selected_npn_protocol() is None
    assert pair.client.get_unverified_chain() == [certs.server_der]


def test_compat_module_names():
    assert agt_ssl.SSLObject is agt.GnutlsSSLObject
    assert agt_ssl.SSLSession is agt.GnutlsSession
    assert agt_ssl.MemoryBIO is stdlib_ssl.MemoryBIO
    assert agt_ssl.SSLWantReadError is stdlib_ssl.SSLWantReadError
    assert agt_ssl.HAS_ALPN and agt_ssl.HAS_SNI
    assert agt_ssl.ALERT_DESCRIPTION_UNRECOGNIZED_NAME == 112
    assert "tls-unique" in agt_ssl.CHANNEL_BINDING_TYPES
    assert "tls-exporter" in agt_ssl.CHANNEL_BINDING_TYPES
