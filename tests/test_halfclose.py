"""Half-closed TLS: write_eof() sends close_notify and keeps reading; a peer
whose eof_received() returns true stays writable."""

import asyncio
import os
import re

import pytest

from agt_testlib import (
    MiB, OPENSSL_TLS_FLAG, TLS_PRIORITY, RecordingProtocol, close_server,
    close_writer, free_port, our_client_ctx, our_server_ctx, require_binary,
    run, server_factory, sha256, start_proto_server, start_stream_server,
    until, wait_for, wait_listening)


def test_client_write_eof_server_replies(certs, family, tls_version, unix_dir):
    """Raw protocols both ends: client sends then half-closes; the server's
    eof_received returns True and it replies afterwards."""
    payload = os.urandom(300 * 1024)

    async def main():
        servers = []

        def later_reply(p):
            def reply():
                p.transport.write(b"sha256=" + sha256(p.data).encode())
                p.transport.close()
            # strictly after eof_received has returned
            p.loop.call_later(0.05, reply)

        server, ep = await start_proto_server(
            family, server_factory(servers, eof_result=True, on_eof=later_reply),
            our_server_ctx(certs, tls_version), unix_dir)
        try:
            transport, client = await ep.connect(RecordingProtocol,
                                                 our_client_ctx(certs, tls_version))
            assert transport.can_write_eof() is True
            transport.write(payload)
            transport.write_eof()
            assert not transport.is_closing()
            exc = await wait_for(client.lost, 20, "client connection_lost")
            assert exc is None
            assert bytes(client.data) == b"sha256=" + sha256(payload).encode()
            assert client.eof_calls == 1
            assert client.lost_calls == [None]
            await until(lambda: servers[0].lost.done(), what="server closed")
            srv = servers[0]
            assert srv.eof_calls == 1
            assert srv.lost_calls == [None]
            assert sha256(srv.data) == sha256(payload)
            assert srv.events[-2:] == ["eof", "lost"]
        finally:
            await close_server(server)

    run(main())


def test_server_write_eof_client_replies(certs, family, tls_version, unix_dir):
    """The other direction: the server half-closes first."""
    async def main():
        servers = []

        def greet(p):
            p.transport.write(b"greeting, your turn")
            p.transport.write_eof()

        server, ep = await start_proto_server(
            family, server_factory(servers, on_connect=greet, eof_result=True),
            our_server_ctx(certs, tls_version), unix_dir)
        try:
            def answer(p):
                p.loop.call_soon(lambda: (p.transport.write(b"answer"),
                                          p.transport.close()))

            transport, client = await ep.connect(
                lambda: RecordingProtocol(eof_result=True, on_eof=answer),
                our_client_ctx(certs, tls_version))
            assert await wait_for(client.lost, 20, "client closed") is None
            assert bytes(client.data) == b"greeting, your turn"
            await until(lambda: servers[0].lost.done(), what="server closed")
            assert bytes(servers[0].data) == b"answer"
            assert servers[0].lost_calls == [None]
            assert servers[0].eof_calls == 1
        finally:
            await close_server(server)

    run(main())


def test_eof_received_false_closes_transport(certs, family, tls_version,
                                             unix_dir):
    async def main():
        servers = []
        server, ep = await start_proto_server(
            family, server_factory(servers, eof_result=None),
            our_server_ctx(certs, tls_version), unix_dir)
        try:
            transport, client = await ep.connect(
                lambda: RecordingProtocol(eof_result=True),
                our_client_ctx(certs, tls_version))
            transport.write(b"bye")
            transport.write_eof()
            await until(lambda: servers and servers[0].lost.done(),
                        what="server connection_lost")
            srv = servers[0]
            assert srv.lost_calls == [None]
            assert bytes(srv.data) == b"bye"
            assert srv.transport.is_closing()
            # the server closed cleanly: the client gets EOF, then the end
            assert await wait_for(client.lost, 20) is None
            assert client.eof_calls == 1
            assert client.data == b""
        finally:
            await close_server(server)

    run(main())


def test_streams_half_close(certs, family, tls_version, unix_dir):
    """StreamWriter.write_eof() on the client, read-to-EOF on the server, a
    reply, the client reads the reply: plain streams, no patching."""
    payload = os.urandom(2 * MiB + 7)

    async def handler(reader, writer):
        data = await reader.read()  # to EOF
        writer.write(b"%d bytes, sha256 %s" % (len(data), sha256(data).encode()))
        await writer.drain()
        writer.close()

    async def main():
        server, ep = await start_stream_server(
            family, handler, our_server_ctx(certs, tls_version), unix_dir)
        try:
            reader, writer = await ep.open(our_client_ctx(certs, tls_version))
            assert writer.can_write_eof()
            writer.write(payload)
            await writer.drain()
            writer.write_eof()
            reply = await wait_for(reader.read(), 30, "reply after write_eof")
            assert reply == b"%d bytes, sha256 %s" % (
                len(payload), sha256(payload).encode())
            assert reader.at_eof()
            await close_writer(writer)
        finally:
            await close_server(server)

    run(main())


def test_streams_server_half_closes(certs, family, unix_dir):
    async def handler(reader, writer):
        writer.write(b"question?")
        writer.write_eof()
        answer = await reader.read()
        served.append(answer)
        writer.close()

    served = []

    async def main():
        server, ep = await start_stream_server(
            family, handler, our_server_ctx(certs), unix_dir)
        try:
            reader, writer = await ep.open(our_client_ctx(certs))
            assert await wait_for(reader.read(), 10) == b"question?"
            writer.write(b"answer!")
            writer.write_eof()
            await until(lambda: served, what="server got the answer")
            assert served == [b"answer!"]
            await close_writer(writer)
        finally:
            await close_server(server)

    run(main())


def test_write_after_write_eof_raises(certs, family, unix_dir):
    async def main():
        # the server closes when it sees our close_notify
        server, ep = await start_proto_server(
            family, server_factory([], eof_result=None), our_server_ctx(certs),
            unix_dir)
        try:
            transport, client = await ep.connect(RecordingProtocol,
                                                 our_client_ctx(certs))
            transport.write_eof()
            with pytest.raises(RuntimeError) as info:
                transport.write(b"after eof")
            assert re.search(r"eof|clos|shut", str(info.value), re.I), str(info.value)
            with pytest.raises(RuntimeError):
                transport.writelines([b"after", b"eof"])
            transport.close()
            with pytest.raises(RuntimeError) as info:
                transport.write(b"after close")
            assert re.search(r"eof|clos|shut", str(info.value), re.I), str(info.value)
            await wait_for(client.lost, 20)
        finally:
            await close_server(server)

    run(main())


@pytest.mark.parametrize("peer", ["gnutls-serv", "openssl"])
def test_half_close_against_external_server(certs, procs, tls_version, peer):
    """Send, half-close at once, then read: the peer's replies to what we sent
    before our close_notify still arrive, followed by its clean close."""
    port = free_port()
    if peer == "gnutls-serv":
        require_binary("gnutls-serv")
        args = ["gnutls-serv", "--echo", "-p", str(port),
                "--x509certfile", certs.server_cert,
                "--x509keyfile", certs.server_key,
                "--priority", TLS_PRIORITY[tls_version]]
        expect = b"one\ntwo\n"
    else:
        require_binary("openssl")
        args = ["openssl", "s_server", "-accept", "127.0.0.1:%d" % port,
                OPENSSL_TLS_FLAG[tls_version], "-cert", certs.server_cert,
                "-key", certs.server_key, "-rev"]
        expect = b"eno\nowt\n"
    proc = procs.start(args)
    wait_listening(("127.0.0.1", port), proc)

    async def main():
        reader, writer = await wait_for(asyncio.open_connection(
            "127.0.0.1", port, ssl=our_client_ctx(certs, tls_version),
            server_hostname="localhost"), 15, "connect")
        writer.write(b"one\n")
        assert await wait_for(reader.readline(), 10) == expect[:4]
        writer.write(b"two\n")
        writer.write_eof()
        rest = await wait_for(reader.read(), 20, "reply and clean EOF")
        assert rest == expect[4:]
        await close_writer(writer)

    run(main())
