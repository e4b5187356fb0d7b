"""Bad peers and bad input: garbage instead of TLS, servers that hang up in
the handshake, peers vanishing without close_notify, handshake timeouts,
corrupted records."""

import asyncio
import os
import re
import socket
import ssl as stdlib_ssl
import struct
import time

import pytest

import aio_gnutls_transport as agt
from aio_gnutls_transport import _gnutls as G
from agt_testlib import (
    RecordingProtocol, close_server, close_writer, our_client_ctx,
    our_server_ctx, run, server_factory, settle, start_proto_server,
    start_stream_server, std_client_ctx, std_server_ctx, until, wait_for)

BROKEN = re.compile(r"terminat|closed|EOF|reset|lost|abort|end of file", re.I)


async def echo_line(reader, writer):
    line = await reader.readline()
    writer.write(b"echo " + line)
    await writer.drain()
    writer.close()


async def good_client_works(ep, certs):
    reader, writer = await wait_for(ep.open(our_client_ctx(certs)), 15)
    writer.write(b"still alive\n")
    assert await wait_for(reader.readline(), 10) == b"echo still alive\n"
    await close_writer(writer)


# ------------------------------------------------------------- garbage

@pytest.mark.parametrize("garbage", [
    b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n",
    # a handshake record holding a ClientHello of one byte
    b"\x16\x03\x01\x00\x05\x01\x00\x00\x01\x00",
    bytes(range(256)) * 4,
], ids=["http", "bad-hello", "binary"])
def test_garbage_client_gets_alert_server_survives(certs, family, unix_dir,
                                                   garbage):
    async def main():
        server, ep = await start_stream_server(family, echo_line,
                                               our_server_ctx(certs), unix_dir)
        try:
            reader, writer = await ep.open(None)
            writer.write(garbage)
            answer = await wait_for(reader.read(), 10, "server's answer to garbage")
            # a fatal TLS alert record, then the connection ends
            assert answer[:1] == b"\x15", answer
            assert answer[1] == 3
            assert answer[3:5] == b"\x00\x02"
            assert answer[5] == 2, "alert level is not fatal: %r" % answer
            writer.close()
            await good_client_works(ep, certs)
        finally:
            await close_server(server)

    run(main())


def test_silent_client_then_disconnect_server_survives(certs, family, unix_dir):
    async def main():
        server, ep = await start_stream_server(family, echo_line,
                                               our_server_ctx(certs), unix_dir)
        try:
            for _ in range(5):
                reader, writer = await ep.open(None)
                writer.close()
            reader, writer = await ep.open(None)
            writer.write(b"\x16\x03\x01")  # half a record header, then gone
            writer.transport.abort()
            await settle(0.1)
            await good_client_works(ep, certs)
        finally:
            await close_server(server)

    run(main())


def test_plaintext_server_answer_is_an_error(certs, family, unix_dir):
    """Our client talking to something that is not TLS (an HTTP server)."""
    async def http_server(reader, writer):
        await reader.read(5)
        writer.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()
        await asyncio.sleep(0.5)
        writer.close()

    async def main():
        server, ep = await start_stream_server(family, http_server, None, unix_dir)
        try:
            with pytest.raises(agt.GnutlsError) as info:
                await wait_for(ep.open(our_client_ctx(certs)), 15)
            assert info.value.reason.startswith("GNUTLS_E_")
            assert str(info.value) == info.value.strerror
            assert str(info.value)
            assert not isinstance(info.value, agt.CertificateVerificationError)
        finally:
            await close_server(server)

    run(main())


# ------------------------------------------------------------- mid-handshake

@pytest.mark.parametrize("how", ["close", "reset"])
def test_server_hangs_up_after_client_hello(certs, family, unix_dir, how):
    hellos = []

    async def hang_up(reader, writer):
        header = await reader.readexactly(5)
        body = await reader.readexactly(int.from_bytes(header[3:5], "big"))
        hellos.append(header + body)
        if how == "reset":
            sock = writer.get_extra_info("socket")
            if sock.family != socket.AF_UNIX:  # RST instead of FIN
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                struct.pack("ii", 1, 0))
            writer.transport.abort()
        else:
            writer.close()

    async def main():
        server, ep = await start_stream_server(family, hang_up, None, unix_dir)
        try:
            with pytest.raises((stdlib_ssl.SSLError, ConnectionError)) as info:
                await wait_for(ep.open(our_client_ctx(certs)), 15)
            exc = info.value
            assert BROKEN.search(str(exc)), repr(exc)
            assert not isinstance(exc, agt.CertificateVerificationError)
            # what the client had sent: a ClientHello naming "localhost"
            hello = hellos[0]
            assert hello[0] == 0x16 and hello[5] == 0x01  # handshake, ClientHello
            assert b"localhost" in hello
        finally:
            await close_server(server)

    run(main())


def test_client_handshake_timeout(certs, family, unix_dir):
    async def mute(reader, writer):
        await asyncio.sleep(30)

    async def main():
        server, ep = await start_stream_server(family, mute, None, unix_dir)
        try:
            start = time.monotonic()
            with pytest.raises((ConnectionAbortedError, TimeoutError,
                                asyncio.TimeoutError)) as info:
                await wait_for(ep.open(our_client_ctx(certs),
                                       ssl_handshake_timeout=0.5), 15)
            elapsed = time.monotonic() - start
            assert 0.4 < elapsed < 5, elapsed
            assert "handshake" in str(info.value).lower(), repr(info.value)
        finally:
            await close_server(server)

    run(main())


def test_server_handshake_timeout(certs, family, unix_dir):
    async def main():
        server, ep = await start_stream_server(
            family, echo_line, our_server_ctx(certs), unix_dir,
            ssl_handshake_timeout=0.5)
        try:
            reader, writer = await ep.open(None)
            start = time.monotonic()
            data = await wait_for(reader.read(), 10, "server to drop a mute client")
            elapsed = time.monotonic() - start
            assert 0.4 < elapsed < 5, elapsed
            assert data == b""
            writer.close()
            await good_client_works(ep, certs)
        finally:
            await close_server(server)

    run(main())


# ------------------------------------------------------------- truncation

@pytest.mark.parametrize("server_kind", ["ours", "stdlib"])
def test_server_vanishing_is_premature_termination(certs, family, tls_version,
                                                   unix_dir, server_kind):
    """EOF without close_notify -> PrematureTerminationError (an SSLEOFError),
    which an application can tell apart from a clean close."""
    async def vanish(reader, writer):
        writer.write(b"data before vanishing\n")
        await writer.drain()
        await reader.readline()  # the client's ack
        writer.transport.abort()

    async def main():
        sctx = (our_server_ctx if server_kind == "ours" else std_server_ctx)(
            certs, tls_version)
        server, ep = await start_stream_server(family, vanish, sctx, unix_dir)
        try:
            reader, writer = await ep.open(our_client_ctx(certs, tls_version))
            assert await wait_for(reader.readline(), 10) == \
                b"data before vanishing\n"
            writer.write(b"ack\n")
            with pytest.raises(agt.PrematureTerminationError) as info:
                await wait_for(reader.read(), 10)
            exc = info.value
            assert isinstance(exc, stdlib_ssl.SSLEOFError)
            assert isinstance(exc, agt.GnutlsError)
            assert exc.reason == "GNUTLS_E_PREMATURE_TERMINATION"
            assert "without close_notify" in str(exc)
            writer.close()
        finally:
            await close_server(server)

    run(main())


def test_vanishing_vs_clean_close_at_protocol_level(certs, family, tls_version,
                                                    unix_dir):
    async def main():
        servers = []

        def on_data(p, data):
            if data.endswith(b"abort\n"):
                p.transport.write(b"A")
                p.loop.call_later(0.05, p.transport.abort)
            elif data.endswith(b"close\n"):
                p.transport.write(b"C")
                p.transport.close()

        server, ep = await start_proto_server(
            family, server_factory(servers, on_data=on_data),
            our_server_ctx(certs, tls_version), unix_dir)
        ctx = our_client_ctx(certs, tls_version)
        try:
            t1, vanished = await ep.connect(RecordingProtocol, ctx)
            t1.write(b"abort\n")
            exc = await wait_for(vanished.lost, 10)
            assert isinstance(exc, agt.PrematureTerminationError), repr(exc)
            assert vanished.eof_calls == 0
            assert bytes(vanished.data) == b"A"

            t2, clean = await ep.connect(RecordingProtocol, ctx)
            t2.write(b"close\n")
            assert await wait_for(clean.lost, 10) is None
            assert clean.eof_calls == 1
            assert bytes(clean.data) == b"C"
        finally:
            await close_server(server)

    run(main())


@pytest.mark.parametrize("client_kind", ["ours", "stdlib"])
def test_client_vanishing_seen_by_our_server(certs, family, unix_dir,
                                             client_kind):
    async def main():
        servers = []
        server, ep = await start_proto_server(
            family, server_factory(servers), our_server_ctx(certs), unix_dir)
        try:
            cctx = (our_client_ctx if client_kind == "ours" else std_client_ctx)(
                certs)
            t, client = await ep.connect(RecordingProtocol, cctx)
            t.write(b"then nothing")
            await until(lambda: servers and len(servers[0].data) == 12,
                        what="server got the data")
            t.abort()
            exc = await wait_for(servers[0].lost, 10)
            assert isinstance(exc, agt.PrematureTerminationError), repr(exc)
            assert servers[0].eof_calls == 0
        finally:
            await close_server(server)

    run(main())


# ------------------------------------------------------------- bad records

class EngineServer(asyncio.Protocol):
    """A TLS server made from the bare engine over a plain connection, so a
    test can put arbitrary bytes on the wire after the handshake."""

    def __init__(self, certs, after_handshake):
        creds = G.Credentials()
        creds.load_cert_chain(certs.server_cert, certs.server_key)
        self.session = G.Session(creds, G.Priority(agt.DEFAULT_PRIORITY),
                                 server_side=True)
        self.after_handshake = after_handshake
        self.error = None
        self.closed = asyncio.get_running_loop().create_future()

    def connection_made(self, transport):
        self.transport = transport

    def flush(self):
        out = self.session.take_output()
        if out:
            self.transport.write(out)

    def data_received(self, data):
        self.session.feed(data)
        try:
            if not self.session.handshake_done:
                if self.session.handshake():
                    self.flush()
                    self.after_handshake(self)
            else:
                self.session.read()
        except G.GnutlsError as e:
            self.error = e
        self.flush()

    def connection_lost(self, exc):
        if not self.closed.done():
            self.closed.set_result(exc)


def test_corrupted_record_from_server(certs, family, unix_dir):
    """A bogus application-data record after the handshake: our client fails
    with a GnutlsError (not a truncation) and sends the server an alert."""
    engines = []

    def send_bogus(engine):
        engine.transport.write(b"\x17\x03\x03\x00\x20" + os.urandom(0x20))

    async def main():
        def factory():
            e = EngineServer(certs, send_bogus)
            engines.append(e)
            return e

        server, ep = await start_proto_server(family, factory, None, unix_dir)
        try:
            t, client = await ep.connect(RecordingProtocol, our_client_ctx(certs))
            exc = await wait_for(client.lost, 10, "client connection_lost")
            assert isinstance(exc, agt.GnutlsError), repr(exc)
            assert not isinstance(exc, agt.PrematureTerminationError)
            assert exc.reason.startswith("GNUTLS_E_")
            assert client.data == b""
            await until(lambda: engines[0].error is not None,
                        what="engine server to receive the alert")
            assert "alert" in str(engines[0].error).lower(), engines[0].error
        finally:
            await close_server(server)

    run(main())
