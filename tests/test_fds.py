"""Many connections in a row must not leave file descriptors behind."""

import asyncio
import gc
import ssl as stdlib_ssl

import pytest

import aio_gnutls_transport as agt
from agt_testlib import (
    close_server, close_writer, count_fds, our_client_ctx, our_server_ctx, run,
    settle, start_stream_server, wait_for)


async def echo(reader, writer):
    try:
        line = await reader.readline()
        writer.write(line)
        await writer.drain()
    except (stdlib_ssl.SSLError, ConnectionError):
        pass
    finally:
        writer.close()


async def settled_fd_count(expected, timeout=10.0):
    """The fd count, after giving closing transports time to finish."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        gc.collect()
        n = count_fds()
        if n <= expected or loop.time() > deadline:
            return n
        await settle(0.05)


@pytest.mark.timeout(120)
def test_200_connections_leave_no_fds(certs, family, unix_dir):
    async def main():
        server, ep = await start_stream_server(family, echo,
                                               our_server_ctx(certs), unix_dir)
        ctx = our_client_ctx(certs)
        try:
            # one warm-up connection (lazy imports, executor threads...)
            reader, writer = await ep.open(ctx)
            writer.write(b"warm up\n")
            assert await reader.readline() == b"warm up\n"
            await close_writer(writer)
            await settle(0.1)
            before = await settled_fd_count(0, timeout=0.5)
            for i in range(200):
                reader, writer = await wait_for(ep.open(ctx), 15, "connect %d" % i)
                writer.write(b"n%d\n" % i)
                assert await wait_for(reader.readline(), 10) == b"n%d\n" % i
                await close_writer(writer)
            after = await settled_fd_count(before)
            assert after <= before, "%d fds before, %d after" % (before, after)
        finally:
            await close_server(server)

    run(main())


@pytest.mark.timeout(120)
def test_failed_handshakes_leave_no_fds(certs, family, unix_dir):
    async def main():
        server, ep = await start_stream_server(
            family, echo, our_server_ctx(certs, cert="other_server"), unix_dir)
        ctx = our_client_ctx(certs)
        try:
            with pytest.raises(agt.CertificateVerificationError):
                await ep.open(ctx)
            await settle(0.1)
            before = await settled_fd_count(0, timeout=0.5)
            for i in range(100):
                with pytest.raises(agt.CertificateVerificationError):
                    await wait_for(ep.open(ctx), 15, "connect %d" % i)
            # and garbage clients on the server side
            for i in range(50):
                reader, writer = await ep.open(None)
                writer.write(b"not tls at all\r\n\r\n")
                await wait_for(reader.read(), 10)
                writer.close()
            after = await settled_fd_count(before)
            assert after <= before, "%d fds before, %d after" % (before, after)
        finally:
            await close_server(server)

    run(main())


@pytest.mark.timeout(120)
def test_aborted_connections_leave_no_fds(certs, family, unix_dir):
    async def main():
        server, ep = await start_stream_server(family, echo,
                                               our_server_ctx(certs), unix_dir)
        ctx = our_client_ctx(certs)
        try:
            reader, writer = await ep.open(ctx)
            writer.transport.abort()
            await settle(0.1)
            before = await settled_fd_count(0, timeout=0.5)
            for i in range(100):
                reader, writer = await wait_for(ep.open(ctx), 15)
                writer.write(b"x" * 1000)
                writer.transport.abort()
            after = await settled_fd_count(before)
            assert after <= before, "%d fds before, %d after" % (before, after)
        finally:
            await close_server(server)

    run(main())
