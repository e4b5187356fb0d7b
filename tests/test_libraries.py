"""Real asyncio libraries with aio_gnutls_transport contexts.

aiohttp (client and server), websockets, httpx and aiosmtplib/aiosmtpd are
used the way an application uses them, with a GnuTLS context wherever they
take an SSL context, and checked by what arrived: status, body bytes and
their digests, the TLS version and certificate each side saw.  The peers
are the same libraries with a stdlib context, or curl.

The coroutines run on a GnutlsEventLoop (agt_testlib.run), the loop
GnutlsEventLoopPolicy makes; test_policy_with_asyncio_run checks that the
policy itself, installed as an application would, gives the same.  Tests
taking the ``loop_kind`` fixture run a second time on asyncio's own event
loop (no policy installed), where asyncio's TLS code drives the GnuTLS
context through its wrap_bio().

A library that is not installed skips its tests (Debian 12 packages:
python3-aiohttp python3-websockets python3-httpx python3-aiosmtplib
python3-aiosmtpd curl).
"""

import asyncio
import contextlib
import email
import email.message
import email.policy
import hashlib
import re
from types import SimpleNamespace

import pytest
import ssl as stdlib_ssl

import aio_gnutls_transport as agt
import agt_testlib
from aio_gnutls_transport import GnutlsEventLoopPolicy
from aio_gnutls_transport import ssl as gssl
from agt_testlib import (
    MiB, TLS_NAME, our_client_ctx, our_server_ctx, require_binary, run,
    run_process, sha256, std_client_ctx, std_server_ctx, wait_for)

KiB = 1024
BODY_SIZE = 384 * KiB

# Which side of a connection uses which implementation.
GNUTLS, STDLIB = "gnutls", "stdlib"


# ------------------------------------------------------------------ loops

def run_on_asyncio_loop(coro, *, timeout=None):
    """Like agt_testlib.run(), on asyncio's own selector event loop: the
    loop an application gets without GnutlsEventLoopPolicy.  Anything
    reported to the loop's exception handler fails the test."""
    return agt_testlib.run(coro, timeout=timeout,
                           loop_factory=asyncio.SelectorEventLoop)


@pytest.fixture(params=["gnutls-loop", "asyncio-loop"])
def loop_kind(request):
    return request.param


def run_on(loop_kind, coro):
    if loop_kind == "gnutls-loop":
        return run(coro)
    return run_on_asyncio_loop(coro)


def blob(size, seed=b"agt-libraries"):
    """*size* deterministic bytes that neither repeat nor compress."""
    out = bytearray()
    counter = 0
    while len(out) < size:
        out += hashlib.sha256(seed + counter.to_bytes(8, "big")).digest()
        counter += 1
    return bytes(out[:size])


BLOB = blob(BODY_SIZE)


def client_ctx(impl, certs, version=None, **kw):
    return (our_client_ctx if impl == GNUTLS else std_client_ctx)(
        certs, version, **kw)


def server_ctx(impl, certs, version=None, **kw):
    return (our_server_ctx if impl == GNUTLS else std_server_ctx)(
        certs, version, **kw)


# What a GnuTLS connection's ssl_object is under wrap_bio(), when asyncio's
# TLS code or anyio drives the context (else it is an agt.GnutlsObject).
BIO_OBJECT = gssl.SSLContext.sslobject_class


def native(loop_kind):
    """Whether a GnuTLS context that the event loop handles gets the
    GnuTLS transport (GnutlsEventLoop) rather than asyncio's own over
    wrap_bio()."""
    return loop_kind == "gnutls-loop"


def check_ssl_object(obj, impl, version=None, peer_der=None, *,
                     transport=None):
    """*obj* (a connection's ssl_object) is of implementation *impl*, with
    the given TLS version and peer certificate.  For GnuTLS, *transport*
    True means it must come from the GnuTLS transport, False from
    wrap_bio()."""
    assert obj is not None, "not a TLS connection"
    if impl == GNUTLS:
        assert isinstance(obj, (agt.GnutlsObject, BIO_OBJECT)), obj
        if transport is not None:
            assert isinstance(obj, agt.GnutlsObject if transport
                              else BIO_OBJECT), obj
    else:
        assert isinstance(obj, stdlib_ssl.SSLObject), obj
    if version is not None:
        assert obj.version() == TLS_NAME[version]
    else:
        assert obj.version() in TLS_NAME.values()
    if peer_der is not None:
        assert obj.getpeercert(True) == peer_der


def watch_server_ctx(ctx, server_names, alpn=("http/1.1",)):
    """Server context *ctx*, set to accept the ALPN protocols *alpn* and to
    append to *server_names* the name (SNI) each client asked for."""
    if alpn:
        ctx.set_alpn_protocols(list(alpn))

    def note(ssl_object, server_name, context):
        server_names.append(server_name)

    ctx.sni_callback = note
    return ctx


# --------------------------------------------------------------- aiohttp site

@contextlib.asynccontextmanager
async def https_site(ctx):
    """An aiohttp web server on 127.0.0.1 with TLS context *ctx*.

    GET /        a short text
    GET /blob    BLOB
    POST /upload the request body's length and SHA-256, as JSON

    Yields a namespace with ``url`` (https://localhost:PORT) and ``seen``,
    one dict per request: method, path, scheme, peer address and the
    connection's ssl_object as the server saw them."""
    web = pytest.importorskip("aiohttp.web")
    seen = []

    def record(request):
        transport = request.transport
        seen.append({
            "method": request.method,
            "path": request.path,
            "scheme": request.scheme,
            "peer": transport.get_extra_info("peername"),
            "ssl_object": transport.get_extra_info("ssl_object"),
        })

    async def hello(request):
        record(request)
        return web.Response(text="hello over TLS\n")

    async def get_blob(request):
        record(request)
        return web.Response(body=BLOB, content_type="application/octet-stream")

    async def upload(request):
        record(request)
        data = await request.read()
        return web.json_response({"length": len(data), "sha256": sha256(data)})

    app = web.Application(client_max_size=4 * MiB)
    app.router.add_get("/", hello)
    app.router.add_get("/blob", get_blob)
    app.router.add_post("/upload", upload)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ctx,
                           shutdown_timeout=2)
        await site.start()
        port = runner.addresses[0][1]
        yield SimpleNamespace(port=port, url="https://localhost:%d" % port,
                              seen=seen)
    finally:
        await wait_for(runner.cleanup(), 20, "aiohttp runner cleanup")


async def chunks(data, size=64 * KiB):
    for i in range(0, len(data), size):
        await asyncio.sleep(0)
        yield data[i:i + size]


# --------------------------------------------------------------- aiohttp client

def test_aiohttp_client_get_and_post(certs, tls_version, loop_kind):
    """aiohttp's client with a GnuTLS context, against aiohttp's server
    with a stdlib context: a GET and two POSTs of BODY_SIZE bytes (one with
    Content-Length, one chunked) on one kept-alive connection."""
    aiohttp = pytest.importorskip("aiohttp")

    async def main():
        names = []
        sctx = watch_server_ctx(std_server_ctx(certs), names, alpn=())
        async with https_site(sctx) as site:
            ctx = our_client_ctx(certs, tls_version)
            async with aiohttp.ClientSession() as session:
                async with session.get(site.url + "/blob", ssl=ctx) as resp:
                    obj = resp.connection.transport.get_extra_info("ssl_object")
                    check_ssl_object(obj, GNUTLS, tls_version, certs.server_der,
                                     transport=native(loop_kind))
                    assert obj.server_hostname == "localhost"
                    assert resp.status == 200
                    assert resp.headers["Content-Type"] == "application/octet-stream"
                    body = await resp.read()
                assert len(body) == BODY_SIZE
                assert sha256(body) == sha256(BLOB)

                async with session.post(site.url + "/upload", data=BLOB,
                                        ssl=ctx) as resp:
                    assert resp.status == 200
                    assert await resp.json() == {"length": BODY_SIZE,
                                                 "sha256": sha256(BLOB)}

                async with session.post(site.url + "/upload", data=chunks(BLOB),
                                        ssl=ctx) as resp:
                    assert resp.status == 200
                    assert await resp.json() == {"length": BODY_SIZE,
                                                 "sha256": sha256(BLOB)}

            assert [(s["method"], s["path"]) for s in site.seen] == [
                ("GET", "/blob"), ("POST", "/upload"), ("POST", "/upload")]
            for s in site.seen:
                assert s["scheme"] == "https"
                check_ssl_object(s["ssl_object"], STDLIB, tls_version)
            # keep-alive: all three requests came over the one connection
            assert len({s["peer"] for s in site.seen}) == 1
            assert names == ["localhost"]

    run_on(loop_kind, main())


def test_aiohttp_connector_with_default_context(certs, loop_kind):
    """The context given once to TCPConnector, made by
    ssl.create_default_context(cafile=...) of this package."""
    aiohttp = pytest.importorskip("aiohttp")

    async def main():
        async with https_site(std_server_ctx(certs)) as site:
            ctx = gssl.create_default_context(cafile=certs.ca)
            connector = aiohttp.TCPConnector(ssl=ctx)
            async with aiohttp.ClientSession(connector=connector) as session:
                # (a long body keeps resp.connection until it is read)
                async with session.get(site.url + "/blob") as resp:
                    obj = resp.connection.transport.get_extra_info("ssl_object")
                    check_ssl_object(obj, GNUTLS, peer_der=certs.server_der,
                                     transport=native(loop_kind))
                    assert resp.status == 200
                    assert await resp.read() == BLOB
                async with session.get(site.url + "/") as resp:
                    assert resp.status == 200
                    assert await resp.text() == "hello over TLS\n"
            assert [s["path"] for s in site.seen] == ["/blob", "/"]

    run_on(loop_kind, main())


AIOHTTP_BAD_CERTS = {
    # server certificate: words the error must contain
    "other_server": r"issuer",
    "wrong_name": r"match",
    "expired": r"expired",
}


@pytest.mark.parametrize("bad", sorted(AIOHTTP_BAD_CERTS))
def test_aiohttp_client_rejects_bad_certificate(certs, bad, loop_kind):
    """Our verification error is an ssl.SSLCertVerificationError, so
    aiohttp reports it as its ClientConnectorCertificateError."""
    aiohttp = pytest.importorskip("aiohttp")

    async def main():
        async with https_site(std_server_ctx(certs, cert=bad)) as site:
            async with aiohttp.ClientSession() as session:
                with pytest.raises(aiohttp.ClientConnectorCertificateError) as info:
                    await wait_for(session.get(site.url + "/",
                                               ssl=our_client_ctx(certs)),
                                   15, "aiohttp GET")
            err = info.value.certificate_error
            assert isinstance(err, agt.CertificateVerificationError)
            assert isinstance(err, stdlib_ssl.SSLCertVerificationError)
            assert re.search(AIOHTTP_BAD_CERTS[bad], err.verify_message, re.I), \
                err.verify_message
            assert info.value.host == "localhost"
            assert site.seen == []

    run_on(loop_kind, main())


def test_policy_with_asyncio_run(certs):
    """The README's way: install GnutlsEventLoopPolicy, asyncio.run(), pass
    the context as ssl=."""
    aiohttp = pytest.importorskip("aiohttp")

    async def main():
        assert type(asyncio.get_running_loop()) is agt.GnutlsEventLoop
        async with https_site(std_server_ctx(certs)) as site:
            ctx = gssl.create_default_context(cafile=certs.ca)
            async with aiohttp.ClientSession() as session:
                async with session.get(site.url + "/blob", ssl=ctx) as resp:
                    obj = resp.connection.transport.get_extra_info("ssl_object")
                    return resp.status, sha256(await resp.read()), type(obj)

    previous = asyncio.get_event_loop_policy()
    asyncio.set_event_loop_policy(GnutlsEventLoopPolicy())
    try:
        status, digest, obj_type = asyncio.run(asyncio.wait_for(main(), 40))
    finally:
        asyncio.set_event_loop_policy(previous)
    assert (status, digest) == (200, sha256(BLOB))
    assert obj_type is agt.GnutlsObject


# --------------------------------------------------------------- aiohttp server

CURL_WRITE_OUT = "%{http_code} %{ssl_verify_result} %{scheme} %{http_version}"


async def curl(site, certs, path, *args):
    curl_bin = require_binary("curl")
    cp = await run_process(
        [curl_bin, "-sS", "-v", "--max-time", "20", "--cacert", certs.ca,
         "--resolve", "localhost:%d:127.0.0.1" % site.port,
         "-w", "\n" + CURL_WRITE_OUT, *args, site.url + path], timeout=30)
    assert cp.returncode == 0, (cp.returncode, cp.stderr[-3000:])
    body, _, summary = cp.stdout.rpartition("\n")
    return cp, body, summary.split()


def test_aiohttp_server_with_curl(certs, tls_version, tmp_path, loop_kind):
    """aiohttp's server with a GnuTLS context, fetched and posted to by curl
    (OpenSSL), which verifies our certificate against the test CA."""
    pytest.importorskip("aiohttp")
    upload = tmp_path / "upload.bin"
    upload.write_bytes(BLOB)
    download = tmp_path / "download.bin"

    async def main():
        names = []
        ctx = watch_server_ctx(our_server_ctx(certs, tls_version), names)
        async with https_site(ctx) as site:
            cp, body, summary = await curl(site, certs, "/")
            assert body == "hello over TLS\n"
            assert summary == ["200", "0", "HTTPS", "1.1"]
            assert "SSL connection using %s" % TLS_NAME[tls_version] in cp.stderr, \
                cp.stderr[-3000:]
            assert "SSL certificate verify ok" in cp.stderr, cp.stderr[-3000:]
            assert "ALPN: server accepted http/1.1" in cp.stderr, \
                cp.stderr[-3000:]

            cp, body, summary = await curl(site, certs, "/blob",
                                           "-o", str(download))
            assert summary[:2] == ["200", "0"]
            assert sha256(download.read_bytes()) == sha256(BLOB)

            cp, body, summary = await curl(
                site, certs, "/upload", "--data-binary", "@" + str(upload),
                "-H", "Content-Type: application/octet-stream")
            assert summary[:2] == ["200", "0"]
            assert body == '{"length": %d, "sha256": "%s"}' % (BODY_SIZE,
                                                               sha256(BLOB))

            assert [(s["method"], s["path"]) for s in site.seen] == [
                ("GET", "/"), ("GET", "/blob"), ("POST", "/upload")]
            for s in site.seen:
                assert s["scheme"] == "https"
                check_ssl_object(s["ssl_object"], GNUTLS, tls_version,
                                 transport=native(loop_kind))
                assert s["ssl_object"].selected_alpn_protocol() == "http/1.1"
            assert names == ["localhost"] * 3

    run_on(loop_kind, main())


def test_curl_rejects_our_server_with_unknown_issuer(certs, loop_kind):
    """curl refuses our server when the certificate is not from its CA, and
    the server keeps serving."""
    pytest.importorskip("aiohttp")
    curl_bin = require_binary("curl")

    async def main():
        ctx = our_server_ctx(certs, cert="other_server")
        async with https_site(ctx) as site:
            cp = await run_process(
                [curl_bin, "-sS", "--max-time", "20", "--cacert", certs.ca,
                 "--resolve", "localhost:%d:127.0.0.1" % site.port,
                 site.url + "/"], timeout=30)
            assert cp.returncode == 60, (cp.returncode, cp.stderr)   # peer cert
            assert "certificate" in cp.stderr, cp.stderr
            assert site.seen == []
            cp, body, summary = await curl(site, certs, "/", "--insecure")
            assert body == "hello over TLS\n"
            assert summary[0] == "200"

    run_on(loop_kind, main())


# --------------------------------------------------------------- websockets

WS_MESSAGES = [
    "hello",
    "h\u00e9llo w\u00f6rld \u2713",
    b"\x00\x01\x02binary\xff",
    BLOB,
    BLOB.hex()[:200 * KiB],
]


@pytest.mark.parametrize("client_impl,server_impl", [
    (GNUTLS, GNUTLS), (GNUTLS, STDLIB), (STDLIB, GNUTLS)])
def test_websockets_echo(certs, tls_version, client_impl, server_impl,
                        loop_kind):
    websockets = pytest.importorskip("websockets")

    async def main():
        served = []

        async def echo(ws, *_path):
            served.append(ws)
            async for message in ws:
                await ws.send(message)

        names = []
        sctx = watch_server_ctx(server_ctx(server_impl, certs, tls_version),
                                names, alpn=())
        server = await websockets.serve(echo, "127.0.0.1", 0, ssl=sctx)
        try:
            port = server.sockets[0].getsockname()[1]
            # websockets 10.4 checks the certificate against host= when it
            # is given, not against the URI's host: server_hostname= says
            # which name to ask for and check
            async with websockets.connect(
                    "wss://localhost:%d/echo" % port, host="127.0.0.1",
                    server_hostname="localhost",
                    ssl=client_ctx(client_impl, certs, tls_version),
                    open_timeout=15, close_timeout=10) as ws:
                check_ssl_object(ws.transport.get_extra_info("ssl_object"),
                                 client_impl, tls_version, certs.server_der,
                                 transport=native(loop_kind))
                for message in WS_MESSAGES:
                    await wait_for(ws.send(message), 10, "send")
                    got = await wait_for(ws.recv(), 10, "recv")
                    assert type(got) is type(message)
                    assert got == message
            assert ws.close_code == 1000
            assert len(served) == 1
            peer = served[0]
            assert peer.path == "/echo"
            check_ssl_object(peer.transport.get_extra_info("ssl_object"),
                             server_impl, tls_version,
                             transport=native(loop_kind))
            await wait_for(peer.wait_closed(), 10, "server side closed")
            assert peer.close_code == 1000
            assert names == ["localhost"]
        finally:
            server.close()
            await wait_for(server.wait_closed(), 10, "websockets server closed")

    run_on(loop_kind, main())


def test_websockets_client_rejects_unknown_issuer(certs, loop_kind):
    websockets = pytest.importorskip("websockets")

    async def main():
        served = []

        async def echo(ws, *_path):
            served.append(ws)
            await ws.close()

        server = await websockets.serve(
            echo, "127.0.0.1", 0,
            ssl=std_server_ctx(certs, cert="other_server"))
        try:
            port = server.sockets[0].getsockname()[1]
            with pytest.raises(stdlib_ssl.SSLCertVerificationError) as info:
                await wait_for(websockets.connect(
                    "wss://localhost:%d/" % port, host="127.0.0.1",
                    server_hostname="localhost", ssl=our_client_ctx(certs),
                    open_timeout=15), 20, "connect")
            assert isinstance(info.value, agt.CertificateVerificationError)
            assert served == []
        finally:
            server.close()
            await wait_for(server.wait_closed(), 10, "websockets server closed")

    run_on(loop_kind, main())


# --------------------------------------------------------------- httpx

@pytest.mark.parametrize("server_impl", [STDLIB, GNUTLS])
def test_httpx_async_client(certs, server_impl, loop_kind):
    """httpx.AsyncClient(verify=<GnuTLS context>).

    httpx 0.23 hands the context to httpcore, which calls
    ctx.set_alpn_protocols() and then upgrades the connection with anyio's
    TLSStream, i.e. ctx.wrap_bio() over memory BIOs: the event loop's TLS
    (create_connection/start_tls) is not used at all."""
    httpx = pytest.importorskip("httpx")
    ctx = our_client_ctx(certs)

    async def main():
        names = []
        sctx = watch_server_ctx(server_ctx(server_impl, certs), names)
        async with https_site(sctx) as site:
            async with httpx.AsyncClient(verify=ctx, timeout=15) as client:
                resp = await client.get(site.url + "/blob")
                assert resp.status_code == 200
                assert resp.http_version == "HTTP/1.1"
                assert sha256(resp.content) == sha256(BLOB)
                stream = resp.extensions["network_stream"]
                obj = stream.get_extra_info("ssl_object")
                # anyio's TLSStream, whatever the loop
                check_ssl_object(obj, GNUTLS, peer_der=certs.server_der,
                                 transport=False)
                # httpcore offered ALPN http/1.1, the server accepted it
                assert obj.selected_alpn_protocol() == "http/1.1"

                resp = await client.post(site.url + "/upload", content=BLOB)
                assert resp.status_code == 200
                assert resp.json() == {"length": BODY_SIZE,
                                       "sha256": sha256(BLOB)}
            assert [(s["method"], s["path"]) for s in site.seen] == [
                ("GET", "/blob"), ("POST", "/upload")]
            for s in site.seen:
                check_ssl_object(s["ssl_object"], server_impl,
                                 transport=native(loop_kind))
                assert s["ssl_object"].selected_alpn_protocol() == "http/1.1"
            assert names == ["localhost"]

    run_on(loop_kind, main())


def test_httpx_client_rejects_unknown_issuer(certs, loop_kind):
    httpx = pytest.importorskip("httpx")
    ctx = our_client_ctx(certs)

    async def main():
        async with https_site(std_server_ctx(certs, cert="other_server")) as site:
            async with httpx.AsyncClient(verify=ctx, timeout=15) as client:
                # httpx 0.23 lets the ssl error through as it is; later
                # versions wrap it in a ConnectError
                with pytest.raises((stdlib_ssl.SSLCertVerificationError,
                                    httpx.ConnectError)) as info:
                    await client.get(site.url + "/")
            err = info.value
            while err is not None and not isinstance(
                    err, stdlib_ssl.SSLCertVerificationError):
                err = err.__cause__ or err.__context__
            assert err is not None, repr(info.value)
            assert re.search("issuer", err.verify_message, re.I), \
                err.verify_message
            assert site.seen == []

    run_on(loop_kind, main())


# --------------------------------------------------------------- SMTP

class RecordingHandler:
    """An aiosmtpd handler that keeps every message it was given, with the
    TLS details of the session it came in."""

    def __init__(self):
        self.messages = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append(SimpleNamespace(
            mail_from=envelope.mail_from,
            rcpt_tos=list(envelope.rcpt_tos),
            message=email.message_from_bytes(envelope.original_content,
                                             policy=email.policy.default),
            starttls_extra=session.ssl,
            ssl_object=server.transport.get_extra_info("ssl_object")))
        return "250 OK stored"


def make_message(subject):
    msg = email.message.EmailMessage()
    msg["From"] = "alice@agt.test"
    msg["To"] = "bob@agt.test"
    msg["Subject"] = subject
    msg.set_content("Line one.\nA second line with \u00fcmlauts.\n")
    return msg


async def start_smtp_server(handler, **smtp_kw):
    smtp = pytest.importorskip("aiosmtpd.smtp")
    loop = asyncio.get_running_loop()
    ssl = smtp_kw.pop("ssl", None)

    def factory():
        return smtp.SMTP(handler, hostname="smtp.agt.test", **smtp_kw)

    return await loop.create_server(factory, "127.0.0.1", 0, ssl=ssl)


def check_received(handler, subject):
    assert len(handler.messages) == 1
    got = handler.messages[0]
    assert got.mail_from == "alice@agt.test"
    assert got.rcpt_tos == ["bob@agt.test"]
    assert got.message["Subject"] == subject
    # (SMTP carries lines ended by CRLF)
    assert got.message.get_content().replace("\r\n", "\n") == \
        "Line one.\nA second line with \u00fcmlauts.\n"
    return got


@pytest.mark.parametrize("server_impl", [STDLIB, GNUTLS])
def test_aiosmtplib_starttls(certs, tls_version, server_impl, loop_kind):
    """aiosmtplib upgrades with STARTTLS (loop.start_tls) using a GnuTLS
    client context; aiosmtpd refuses mail before STARTTLS, so the message
    can only have come over TLS.

    aiosmtpd does its server-side STARTTLS with asyncio.sslproto.SSLProtocol
    directly, which needs the server context's wrap_bio()."""
    aiosmtplib = pytest.importorskip("aiosmtplib")
    sctx = server_ctx(server_impl, certs, tls_version)
    subject = "STARTTLS with GnuTLS (%s server)" % server_impl

    async def main():
        handler = RecordingHandler()
        server = await start_smtp_server(handler, tls_context=sctx,
                                         require_starttls=True)
        try:
            port = server.sockets[0].getsockname()[1]
            client = aiosmtplib.SMTP(hostname="localhost", port=port,
                                     start_tls=True, timeout=15,
                                     tls_context=our_client_ctx(certs, tls_version))
            await wait_for(client.connect(), 20, "SMTP connect + STARTTLS")
            try:
                check_ssl_object(client.get_transport_info("ssl_object"), GNUTLS,
                                 tls_version, certs.server_der,
                                 transport=native(loop_kind))
                errors, reply = await wait_for(
                    client.send_message(make_message(subject)), 20, "send")
                assert errors == {}
                assert reply == "OK stored"
            finally:
                await wait_for(client.quit(), 10, "QUIT")
        finally:
            server.close()
            await wait_for(server.wait_closed(), 10, "SMTP server closed")
        got = check_received(handler, subject)
        assert got.starttls_extra is not None, "the session was not TLS"
        # aiosmtpd's own SSLProtocol, whatever the loop
        check_ssl_object(got.starttls_extra["ssl_object"], server_impl,
                         tls_version, transport=False)

    run_on(loop_kind, main())


def test_aiosmtplib_starttls_refused_certificate(certs, loop_kind):
    """A STARTTLS server with a certificate from an unknown CA: the client
    raises the verification error and no mail is delivered."""
    aiosmtplib = pytest.importorskip("aiosmtplib")

    async def main():
        handler = RecordingHandler()
        server = await start_smtp_server(
            handler, tls_context=std_server_ctx(certs, cert="other_server"),
            require_starttls=True)
        try:
            port = server.sockets[0].getsockname()[1]
            client = aiosmtplib.SMTP(hostname="localhost", port=port,
                                     start_tls=True, timeout=15,
                                     tls_context=our_client_ctx(certs))
            with pytest.raises(stdlib_ssl.SSLCertVerificationError) as info:
                await wait_for(client.connect(), 20, "SMTP connect + STARTTLS")
            assert isinstance(info.value, agt.CertificateVerificationError)
            client.close()
        finally:
            server.close()
            await wait_for(server.wait_closed(), 10, "SMTP server closed")
        assert handler.messages == []

    run_on(loop_kind, main())


@pytest.mark.parametrize("client_impl", [GNUTLS, STDLIB])
def test_aiosmtplib_implicit_tls_to_our_server(certs, tls_version, client_impl,
                                              loop_kind):
    """SMTP over TLS from the first byte (use_tls=True, port 465 style):
    aiosmtpd served by loop.create_server() with a GnuTLS context."""
    aiosmtplib = pytest.importorskip("aiosmtplib")
    subject = "implicit TLS (%s client)" % client_impl

    async def main():
        handler = RecordingHandler()
        server = await start_smtp_server(
            handler, ssl=our_server_ctx(certs, tls_version))
        try:
            port = server.sockets[0].getsockname()[1]
            client = aiosmtplib.SMTP(
                hostname="localhost", port=port, use_tls=True, timeout=15,
                tls_context=client_ctx(client_impl, certs, tls_version))
            await wait_for(client.connect(), 20, "SMTP connect")
            try:
                check_ssl_object(client.get_transport_info("ssl_object"),
                                 client_impl, tls_version, certs.server_der,
                                 transport=native(loop_kind))
                errors, reply = await wait_for(
                    client.send_message(make_message(subject)), 20, "send")
                assert (errors, reply) == ({}, "OK stored")
            finally:
                await wait_for(client.quit(), 10, "QUIT")
        finally:
            server.close()
            await wait_for(server.wait_closed(), 10, "SMTP server closed")
        got = check_received(handler, subject)
        check_ssl_object(got.ssl_object, GNUTLS, tls_version,
                         transport=native(loop_kind))

    run_on(loop_kind, main())
