"""Connections through the event loop: every asyncio entry point, over TCP
and Unix sockets, TLS 1.2 and 1.3, between our contexts, native stdlib
contexts on the same loop, and the two mixed."""

import asyncio
import ssl as stdlib_ssl

import pytest

import aio_gnutls_transport as agt
from agt_testlib import (
    TLS_NAME, RecordingProtocol, close_server, close_writer, our_client_ctx,
    our_server_ctx, run, server_factory, start_proto_server,
    start_stream_server, std_client_ctx, std_server_ctx, until, upper_echo,
    wait_for)


async def stream_roundtrip(endpoint, ctx, version, check=None, *,
                          server_hostname="localhost"):
    reader, writer = await wait_for(
        endpoint.open(ctx, server_hostname=server_hostname), 15, "connect")
    try:
        writer.write(b"hello over tls\n")
        assert await wait_for(reader.readline(), 10, "reply") == b"HELLO OVER TLS\n"
        obj = writer.get_extra_info("ssl_object")
        assert obj.version() == TLS_NAME[version]
        if check is not None:
            check(writer)
    finally:
        await close_writer(writer)


@pytest.mark.parametrize("side", ["ours-ours", "ours-stdlib", "stdlib-ours",
                                  "stdlib-stdlib"])
def test_streams_roundtrip(certs, family, tls_version, unix_dir, side):
    """open_connection/start_server (open_unix_connection/start_unix_server)."""
    client_kind, server_kind = side.split("-")

    async def main():
        sctx = (our_server_ctx if server_kind == "ours" else std_server_ctx)(
            certs, tls_version)
        cctx = (our_client_ctx if client_kind == "ours" else std_client_ctx)(
            certs, tls_version)
        server, ep = await start_stream_server(family, upper_echo, sctx, unix_dir)
        try:
            def check(writer):
                assert writer.get_extra_info("sslcontext") is cctx
                obj = writer.get_extra_info("ssl_object")
                if client_kind == "ours":
                    assert isinstance(obj, agt.GnutlsObject)
                else:
                    assert isinstance(obj, stdlib_ssl.SSLObject)
                assert obj.getpeercert(binary_form=True) == certs.server_der

            await stream_roundtrip(ep, cctx, tls_version, check)
        finally:
            await close_server(server)

    run(main())


def test_protocols_roundtrip(certs, family, tls_version, unix_dir):
    """loop.create_server/create_connection (and their Unix variants)."""
    async def main():
        servers = []

        def on_data(p, data):
            if data.endswith(b"\n"):
                p.transport.write(bytes(p.data).upper())
                p.transport.close()

        server, ep = await start_proto_server(
            family, server_factory(servers, on_data=on_data),
            our_server_ctx(certs, tls_version), unix_dir)
        try:
            transport, client = await wait_for(
                ep.connect(RecordingProtocol, our_client_ctx(certs, tls_version)),
                15, "connect")
            assert isinstance(transport, agt.GnutlsTransport)
            transport.write(b"protocol level\n")
            exc = await wait_for(client.lost, 10, "connection_lost")
            assert exc is None
            assert bytes(client.data) == b"PROTOCOL LEVEL\n"
            assert client.eof_calls == 1
            assert client.lost_calls == [None]
            await until(lambda: servers and servers[0].lost.done(),
                        what="server connection_lost")
            assert servers[0].lost_calls == [None]
            assert bytes(servers[0].data) == b"protocol level\n"
        finally:
            await close_server(server)

    run(main())


def test_our_client_against_stdlib_protocol_server(certs, family, tls_version,
                                                  unix_dir):
    async def main():
        servers = []
        server, ep = await start_proto_server(
            family,
            server_factory(servers, on_data=lambda p, d: p.transport.write(d[::-1])),
            std_server_ctx(certs, tls_version), unix_dir)
        try:
            transport, client = await ep.connect(
                RecordingProtocol, our_client_ctx(certs, tls_version))
            transport.write(b"stressed")
            await client.wait_bytes(8)
            assert bytes(client.data) == b"desserts"
            assert transport.get_extra_info("ssl_object").version() == TLS_NAME[tls_version]
            transport.close()
            assert await wait_for(client.lost, 10, "connection_lost") is None
            await until(lambda: servers[0].lost.done(), what="server side closed")
            # the stdlib server saw a proper close_notify: EOF, no error
            assert servers[0].lost_calls == [None]
            assert servers[0].eof_calls == 1
        finally:
            await close_server(server)

    run(main())


def test_stdlib_client_against_our_protocol_server(certs, family, tls_version,
                                                  unix_dir):
    async def main():
        servers = []
        server, ep = await start_proto_server(
            family,
            server_factory(servers, on_data=lambda p, d: p.transport.write(d[::-1])),
            our_server_ctx(certs, tls_version), unix_dir)
        try:
            transport, client = await ep.connect(
                RecordingProtocol, std_client_ctx(certs, tls_version))
            transport.write(b"stressed")
            await client.wait_bytes(8)
            assert bytes(client.data) == b"desserts"
            assert transport.get_extra_info("ssl_object").version() == TLS_NAME[tls_version]
            await until(lambda: servers and servers[0].transport is not None,
                        what="server protocol")
            srv_obj = servers[0].transport.get_extra_info("ssl_object")
            assert isinstance(srv_obj, agt.GnutlsObject)
            assert srv_obj.server_side is True
            assert srv_obj.version() == TLS_NAME[tls_version]
            transport.close()
            await wait_for(client.lost, 10, "client connection_lost")
            await until(lambda: servers[0].lost.done(), what="server side closed")
            assert servers[0].lost_calls == [None]
        finally:
            await close_server(server)

    run(main())


def test_native_contexts_still_use_stdlib_transport(certs, family, unix_dir):
    """A stdlib ssl.SSLContext on a GnutlsEventLoop gets the stdlib's TLS."""
    async def main():
        server, ep = await start_stream_server(
            family, upper_echo, std_server_ctx(certs), unix_dir)
        try:
            reader, writer = await ep.open(std_client_ctx(certs))
            writer.write(b"native\n")
            assert await wait_for(reader.readline(), 10) == b"NATIVE\n"
            assert not isinstance(writer.transport, agt.GnutlsTransport)
            assert isinstance(writer.get_extra_info("ssl_object"),
                              stdlib_ssl.SSLObject)
            await close_writer(writer)
        finally:
            await close_server(server)

    run(main())


def test_many_concurrent_connections(certs, family, unix_dir):
    async def main():
        server, ep = await start_stream_server(
            family, upper_echo, our_server_ctx(certs), unix_dir)
        ctx = our_client_ctx(certs)

        async def one(i):
            reader, writer = await ep.open(ctx)
            writer.write(b"client %d\n" % i)
            line = await reader.readline()
            await close_writer(writer)
            return line

        try:
            lines = await wait_for(asyncio.gather(*(one(i) for i in range(30))),
                                   30, "30 concurrent clients")
            assert lines == [b"CLIENT %d\n" % i for i in range(30)]
        finally:
            await close_server(server)

    run(main())


def test_ssl_object_details(certs, tls_version):
    async def main():
        server, ep = await start_stream_server(
            "tcp", upper_echo, our_server_ctx(certs, tls_version), None)
        try:
            reader, writer = await ep.open(our_client_ctx(certs, tls_version))
            obj = writer.get_extra_info("ssl_object")
            assert obj.server_side is False
            assert obj.server_hostname == "localhost"
            assert isinstance(obj.context, agt.GnutlsContext)
            name, proto, bits = obj.cipher()
            assert proto == TLS_NAME[tls_version] and bits >= 128 and name
            assert writer.get_extra_info("cipher") == obj.cipher()
            assert writer.get_extra_info("compression") is None
            cert = obj.getpeercert()
            # the stdlib's shape: tuples of RDNs, tuples of (kind, value)
            assert (("commonName", "localhost"),) in cert["subject"]
            assert (("commonName", "AGT Test CA"),) in cert["issuer"]
            assert ("DNS", "localhost") in cert["subjectAltName"]
            assert ("IP Address", "127.0.0.1") in cert["subjectAltName"]
            assert "notAfter" in cert and "notBefore" in cert
            assert writer.get_extra_info("peercert") == cert
            writer.write(b"x\n")
            assert await reader.readline() == b"X\n"
            await close_writer(writer)
        finally:
            await close_server(server)

    run(main())


def test_getpeercert_binary_equals_openssl_der(certs, family, unix_dir):
    """getpeercert(binary_form=True) is the DER that `openssl x509 -outform
    DER` wrote, on the client (server cert) and the server (client cert)."""
    async def main():
        seen = {}

        async def handler(reader, writer):
            seen["client_cert"] = writer.get_extra_info(
                "ssl_object").getpeercert(binary_form=True)
            writer.write(b"ok\n")
            await writer.drain()
            writer.close()

        sctx = our_server_ctx(certs, verify_mode=stdlib_ssl.CERT_REQUIRED,
                              cafile="ca")
        server, ep = await start_stream_server(family, handler, sctx, unix_dir)
        try:
            reader, writer = await ep.open(our_client_ctx(certs, client_cert=True))
            assert await reader.readline() == b"ok\n"
            assert writer.get_extra_info("ssl_object").getpeercert(True) == \
                certs.server_der
            await close_writer(writer)
            assert seen["client_cert"] == certs.client_der
        finally:
            await close_server(server)

    run(main())


def test_ipv6_literal_connects_with_ip_san(certs):
    import socket
    try:
        s = socket.socket(socket.AF_INET6)
        s.bind(("::1", 0))
        s.close()
    except OSError:
        pytest.skip("no IPv6 loopback")

    async def main():
        server = await asyncio.start_server(upper_echo, "::1", 0,
                                            ssl=our_server_ctx(certs))
        port = server.sockets[0].getsockname()[1]
        try:
            reader, writer = await asyncio.open_connection(
                "::1", port, ssl=our_client_ctx(certs))
            writer.write(b"v6\n")
            assert await reader.readline() == b"V6\n"
            assert writer.get_extra_info("ssl_object").server_hostname == "::1"
            await close_writer(writer)
        finally:
            await close_server(server)

    run(main())


def test_ipv4_literal_connects_with_ip_san(certs):
    """Without server_hostname asyncio uses the host, here an IP literal."""
    async def main():
        server = await asyncio.start_server(upper_echo, "127.0.0.1", 0,
                                            ssl=our_server_ctx(certs))
        port = server.sockets[0].getsockname()[1]
        try:
            reader, writer = await asyncio.open_connection(
                "127.0.0.1", port, ssl=our_client_ctx(certs))
            writer.write(b"v4\n")
            assert await reader.readline() == b"V4\n"
            await close_writer(writer)
        finally:
            await close_server(server)

    run(main())


@pytest.mark.parametrize("server_kind", ["ours", "stdlib"])
def test_start_tls_upgrade(certs, family, tls_version, unix_dir, server_kind):
    """A plain connection upgraded in the middle (STARTTLS style) with
    StreamWriter.start_tls, i.e. loop.start_tls, on both ends."""
    async def handler(reader, writer):
        assert await reader.readline() == b"STARTTLS\n"
        writer.write(b"GO AHEAD\n")
        await writer.drain()
        sctx = (our_server_ctx if server_kind == "ours" else std_server_ctx)(
            certs, tls_version)
        await writer.start_tls(sctx)
        line = await reader.readline()
        writer.write(b"secure: " + line)
        await writer.drain()
        writer.close()

    async def main():
        server, ep = await start_stream_server(family, handler, None, unix_dir)
        try:
            reader, writer = await ep.open(None)
            writer.write(b"STARTTLS\n")
            assert await wait_for(reader.readline(), 10) == b"GO AHEAD\n"
            cctx = our_client_ctx(certs, tls_version)
            await wait_for(writer.start_tls(cctx, server_hostname="localhost"),
                           15, "start_tls")
            assert isinstance(writer.transport, agt.GnutlsTransport)
            obj = writer.get_extra_info("ssl_object")
            assert obj.version() == TLS_NAME[tls_version]
            assert obj.getpeercert(True) == certs.server_der
            writer.write(b"upgraded\n")
            assert await wait_for(reader.readline(), 10) == b"secure: upgraded\n"
            await close_writer(writer)
        finally:
            await close_server(server)

    run(main())
