"""GnutlsTransport behaviour seen by an asyncio protocol: write variants,
flow control both ways, close/abort semantics, extra info."""

import asyncio
import os
import re
import socket

import pytest

import aio_gnutls_transport as agt
from agt_testlib import (
    MiB, RecordingProtocol, close_server, our_client_ctx, our_server_ctx, run,
    server_factory, settle, sha256, start_proto_server, std_server_ctx, until,
    wait_for, BufferedRecorder)


async def pair(family, certs, unix_dir, version=None, *, server_kw=None,
               client_factory=RecordingProtocol, server_ctx=None, client_ctx=None):
    servers = []
    server, ep = await start_proto_server(
        family, server_factory(servers, **(server_kw or {})),
        server_ctx or our_server_ctx(certs, version), unix_dir)
    transport, client = await wait_for(
        ep.connect(client_factory, client_ctx or our_client_ctx(certs, version)),
        15, "connect")
    await until(lambda: servers and servers[0].transport is not None,
                what="server connection_made")
    return server, ep, transport, client, servers[0]


def test_write_variants(certs, family, tls_version, unix_dir):
    async def main():
        server, ep, t, client, srv = await pair(family, certs, unix_dir, tls_version)
        try:
            t.write(b"bytes|")
            t.write(bytearray(b"bytearray|"))
            t.write(memoryview(b"..memoryview|..")[2:-2])
            t.writelines([b"lines:", bytearray(b"a,"), memoryview(b"b|")])
            t.write(b"")
            expect = b"bytes|bytearray|memoryview|lines:a,b|"
            await srv.wait_bytes(len(expect))
            assert bytes(srv.data) == expect
            t.close()
            await wait_for(client.lost, 20)
        finally:
            await close_server(server)

    run(main())


def test_write_str_is_type_error(certs, family, unix_dir):
    async def main():
        server, ep, t, client, srv = await pair(family, certs, unix_dir)
        try:
            with pytest.raises(TypeError) as info:
                t.write("text is not bytes")
            assert re.search(r"bytes|str", str(info.value)), str(info.value)
            with pytest.raises(TypeError):
                t.writelines(["a", "b"])
            with pytest.raises(TypeError):
                t.write(12345)
            # the connection is still usable
            t.write(b"still fine")
            await srv.wait_bytes(10)
            assert bytes(srv.data) == b"still fine"
            t.close()
            await wait_for(client.lost, 20)
        finally:
            await close_server(server)

    run(main())


def test_write_before_handshake_done_is_delivered(certs, family, unix_dir):
    """Data written from connection_made (before asyncio hands the transport
    to create_connection's caller) is queued and delivered."""
    async def main():
        def early(p):
            p.transport.write(b"written in connection_made")

        server, ep, t, client, srv = await pair(
            family, certs, unix_dir,
            client_factory=lambda: RecordingProtocol(on_connect=early))
        try:
            await srv.wait_bytes(26)
            assert bytes(srv.data) == b"written in connection_made"
            t.close()
            await wait_for(client.lost, 20)
        finally:
            await close_server(server)

    run(main())


@pytest.mark.timeout(90)
def test_pause_and_resume_writing(certs, family, tls_version, unix_dir):
    """A peer that does not read makes the transport call pause_writing once
    the buffer passes the high-water mark; resume_writing follows when the
    peer drains it.  Every byte arrives."""
    async def main():
        server, ep, t, client, srv = await pair(
            family, certs, unix_dir, tls_version,
            server_kw=dict(on_connect=lambda p: p.transport.pause_reading()))
        try:
            t.set_write_buffer_limits(high=256 * 1024, low=64 * 1024)
            assert t.get_write_buffer_size() == 0
            sent = []
            chunk = os.urandom(128 * 1024)
            limit = 64 * MiB
            total = 0
            # write until paused, and paused for good: while the server's
            # engine still takes in its 256 KiB, a resume may come first
            while total < limit:
                if client.pause_calls > client.resume_calls:
                    await settle(0.3)
                    if client.pause_calls > client.resume_calls:
                        break
                    continue
                t.write(chunk)
                sent.append(chunk)
                total += len(chunk)
                await asyncio.sleep(0)
            assert client.pause_calls >= 1, \
                "pause_writing never called after %d bytes" % total
            assert client.pause_calls == client.resume_calls + 1, client.events
            assert t.get_write_buffer_size() > 256 * 1024
            resumes = client.resume_calls
            srv.transport.resume_reading()
            await until(lambda: client.resume_calls == resumes + 1, timeout=30,
                        what="resume_writing")
            assert t.get_write_buffer_size() <= 64 * 1024
            await srv.wait_bytes(total, timeout=60)
            assert sha256(srv.data) == sha256(b"".join(sent))
            assert client.events.count("pause_writing") == \
                client.events.count("resume_writing")
            t.close()
            await wait_for(client.lost, 20)
        finally:
            await close_server(server)

    run(main())


def test_pause_reading_holds_back_buffered_records(certs, family, tls_version,
                                                   unix_dir):
    """pause_reading() stops data_received even when records are already
    buffered; resume_reading() delivers them."""
    async def main():
        def first_data(p, data):
            if p.data_calls == 1:
                p.transport.pause_reading()

        server, ep, t, client, srv = await pair(
            family, certs, unix_dir, tls_version,
            server_kw=dict(on_data=first_data))
        try:
            t.write(b"A" * 1000)
            await srv.wait_bytes(1000)
            assert srv.data_calls == 1
            # many records arrive while the reader is paused
            for i in range(200):
                t.write(b"%04d" % i * 64)
            await until(lambda: t.get_write_buffer_size() == 0,
                        what="client buffer flushed")
            await settle(0.3)
            assert srv.data_calls == 1, "data_received called while paused"
            assert len(srv.data) == 1000
            srv.transport.resume_reading()
            total = 1000 + 200 * 256
            await srv.wait_bytes(total)
            assert bytes(srv.data[1000:]) == b"".join(b"%04d" % i * 64
                                                      for i in range(200))
            # pausing before anything arrives works too
            srv.transport.pause_reading()
            t.write(b"held")
            await settle(0.3)
            assert len(srv.data) == total
            srv.transport.resume_reading()
            await srv.wait_bytes(total + 4)
            assert bytes(srv.data[-4:]) == b"held"
            t.close()
            await wait_for(client.lost, 20)
        finally:
            await close_server(server)

    run(main())


def test_is_reading_reflects_pause_state(certs, family, unix_dir):
    async def main():
        server, ep, t, client, srv = await pair(family, certs, unix_dir)
        try:
            assert t.is_reading() is True
            t.pause_reading()
            assert t.is_reading() is False
            t.resume_reading()
            assert t.is_reading() is True
            t.close()
            await wait_for(client.lost, 20)
        finally:
            await close_server(server)

    run(main())


@pytest.mark.timeout(90)
@pytest.mark.parametrize("peer", ["ours", "stdlib"])
def test_close_flushes_everything_then_close_notify(certs, family, tls_version,
                                                   unix_dir, peer):
    """write(8 MiB) then close() at once: the peer gets every byte (by hash)
    and a clean EOF, not a truncation."""
    payload = os.urandom(8 * MiB)

    async def main():
        sctx = (our_server_ctx if peer == "ours" else std_server_ctx)(
            certs, tls_version)
        server, ep, t, client, srv = await pair(family, certs, unix_dir,
                                                tls_version, server_ctx=sctx)
        try:
            t.write(payload)
            t.close()
            assert t.is_closing()
            await until(lambda: srv.lost.done(), timeout=60,
                        what="server connection_lost")
            assert len(srv.data) == len(payload)
            assert sha256(srv.data) == sha256(payload)
            assert srv.eof_calls == 1
            assert srv.lost_calls == [None]
            assert await wait_for(client.lost, 30) is None
            assert client.lost_calls == [None]
        finally:
            await close_server(server)

    run(main())


def test_abort_is_immediate(certs, family, unix_dir):
    async def main():
        server, ep, t, client, srv = await pair(family, certs, unix_dir)
        try:
            big = b"\0" * (32 * MiB)
            t.write(big)
            t.abort()
            assert t.is_closing()
            await settle(0.05)
            assert client.lost.done(), "connection_lost not called promptly"
            assert client.lost_calls == [None]
            await until(lambda: srv.lost.done(), what="server noticed the abort")
            # no close_notify came: the server was told, and far from all
            # of the data made it
            assert srv.lost_calls[0] is not None
            assert isinstance(srv.lost_calls[0],
                              (agt.PrematureTerminationError, ConnectionError))
            assert len(srv.data) < len(big)
            assert srv.eof_calls == 0
        finally:
            await close_server(server)

    run(main())


def test_connection_lost_exactly_once(certs, family, unix_dir):
    async def main():
        server, ep, t, client, srv = await pair(family, certs, unix_dir)
        try:
            t.close()
            t.close()
            t.abort()
            t.close()
            await wait_for(client.lost, 20)
            await settle(0.2)
            assert client.lost_calls == [None]
            assert client.events.count("lost") == 1
            await until(lambda: srv.lost.done(), what="server side")
            await settle(0.1)
            assert len(srv.lost_calls) == 1
        finally:
            await close_server(server)

    run(main())


def test_connection_lost_once_when_peer_closes(certs, family, unix_dir):
    async def main():
        server, ep, t, client, srv = await pair(family, certs, unix_dir)
        try:
            srv.transport.close()
            await wait_for(client.lost, 20)
            t.close()
            t.abort()
            await settle(0.2)
            assert client.lost_calls == [None]
            assert client.eof_calls == 1
            assert client.events[-2:] == ["eof", "lost"]
        finally:
            await close_server(server)

    run(main())


def test_get_extra_info(certs, family, unix_dir):
    async def main():
        cctx = our_client_ctx(certs)
        sctx = our_server_ctx(certs)
        server, ep, t, client, srv = await pair(family, certs, unix_dir,
                                                server_ctx=sctx, client_ctx=cctx)
        try:
            sock = t.get_extra_info("socket")
            ssock = srv.transport.get_extra_info("socket")
            assert ssock.family == sock.family
            if family == "tcp":
                assert sock.family == socket.AF_INET
                assert t.get_extra_info("peername") == tuple(ep.address)
                assert t.get_extra_info("sockname") == sock.getsockname()
                assert srv.transport.get_extra_info("peername") == \
                    t.get_extra_info("sockname")
            else:
                assert sock.family == socket.AF_UNIX
                assert t.get_extra_info("peername") == ep.address
                assert srv.transport.get_extra_info("sockname") == ep.address
            assert t.get_extra_info("peername") == sock.getpeername()
            assert t.get_extra_info("sslcontext") is cctx
            assert srv.transport.get_extra_info("sslcontext") is sctx
            obj = t.get_extra_info("ssl_object")
            assert isinstance(obj, agt.GnutlsObject)
            assert obj.version() == "TLSv1.3"
            assert obj.getpeercert(binary_form=True) == certs.server_der
            sobj = srv.transport.get_extra_info("ssl_object")
            assert sobj.server_side and not obj.server_side
            assert sobj.getpeercert(binary_form=True) is None
            assert t.get_extra_info("cipher") == obj.cipher()
            assert t.get_extra_info("peercert")["subjectAltName"]
            assert t.get_extra_info("compression") is None
            assert t.get_extra_info("no such key", "dflt") == "dflt"
            assert t.get_protocol() is client
            t.close()
            await wait_for(client.lost, 20)
        finally:
            await close_server(server)

    run(main())


def test_set_protocol(certs, family, unix_dir):
    async def main():
        server, ep, t, client, srv = await pair(family, certs, unix_dir)
        try:
            other = RecordingProtocol()
            t.set_protocol(other)
            assert t.get_protocol() is other
            srv.transport.write(b"to the new protocol")
            await other.wait_bytes(19)
            assert bytes(other.data) == b"to the new protocol"
            assert client.data == b""
            t.close()
            await wait_for(other.lost, 20)
        finally:
            await close_server(server)

    run(main())


def test_stdlib_server_protocol_sees_our_close(certs, family, unix_dir):
    """A stdlib TLS server gets eof_received + connection_lost(None) when our
    client closes: our close sends a proper close_notify."""
    async def main():
        server, ep, t, client, srv = await pair(
            family, certs, unix_dir, server_ctx=std_server_ctx(certs))
        try:
            t.write(b"goodbye")
            t.close()
            await until(lambda: srv.lost.done(), what="stdlib server closed")
            assert bytes(srv.data) == b"goodbye"
            assert srv.eof_calls == 1
            assert srv.lost_calls == [None]
            assert await wait_for(client.lost, 20) is None
        finally:
            await close_server(server)

    run(main())


def test_close_gives_up_waiting_after_ssl_shutdown_timeout(certs, family,
                                                         unix_dir):
    """close() waits for the peer's close_notify, but not forever: here the
    peer keeps its side open (eof_received returns True, never closes)."""
    async def main():
        servers = []
        server, ep = await start_proto_server(
            family, server_factory(servers, eof_result=True),
            our_server_ctx(certs), unix_dir)
        try:
            t, client = await ep.connect(RecordingProtocol, our_client_ctx(certs),
                                         ssl_shutdown_timeout=0.5)
            t.write(b"closing now")
            start = asyncio.get_running_loop().time()
            t.close()
            assert await wait_for(client.lost, 10, "close() to finish") is None
            elapsed = asyncio.get_running_loop().time() - start
            assert 0.4 <= elapsed < 5, elapsed
            assert client.lost_calls == [None]
            await until(lambda: servers and servers[0].eof_calls == 1,
                        what="server eof_received")
            assert bytes(servers[0].data) == b"closing now"
        finally:
            await close_server(server)

    run(main())


def test_buffered_protocol_receives_everything(certs, family, tls_version,
                                               unix_dir):
    payload = os.urandom(MiB + 17)

    async def main():
        servers = []

        def send(p):
            p.transport.write(payload)
            p.transport.close()

        server, ep = await start_proto_server(
            family, server_factory(servers, on_connect=send),
            our_server_ctx(certs, tls_version), unix_dir)
        try:
            t, client = await ep.connect(BufferedRecorder,
                                         our_client_ctx(certs, tls_version))
            assert await wait_for(client.lost, 30) is None
            assert len(client.data) == len(payload)
            assert sha256(client.data) == sha256(payload)
            assert client.updates >= len(payload) // 1000
            assert client.eof_calls == 1
        finally:
            await close_server(server)

    run(main())


@pytest.mark.parametrize("ending", ["close", "abort"])
def test_peer_ends_while_reading_is_paused(certs, family, tls_version, unix_dir,
                                           ending):
    """Data and the end of the connection arrive while the client has paused
    reading: nothing is delivered until resume_reading(), then the data, then
    the right ending (clean EOF, or a truncation error)."""
    async def main():
        servers = []
        server, ep = await start_proto_server(
            family, server_factory(servers), our_server_ctx(certs, tls_version),
            unix_dir)
        try:
            t, client = await ep.connect(RecordingProtocol,
                                         our_client_ctx(certs, tls_version))
            await until(lambda: servers and servers[0].transport is not None,
                        what="server side")
            t.pause_reading()
            srv = servers[0]
            srv.transport.write(b"sent while the client is paused")
            if ending == "close":
                srv.transport.close()
            else:
                srv.loop.call_later(0.1, srv.transport.abort)
            await settle(0.4)
            assert client.data == b"" and client.events == ["made"], client.events
            t.resume_reading()
            exc = await wait_for(client.lost, 10, "connection_lost after resume")
            assert bytes(client.data) == b"sent while the client is paused"
            if ending == "close":
                assert exc is None
                assert client.eof_calls == 1
            else:
                assert isinstance(exc, agt.PrematureTerminationError), repr(exc)
                assert client.eof_calls == 0
        finally:
            await close_server(server)

    run(main())
