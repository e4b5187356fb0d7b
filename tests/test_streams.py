"""asyncio streams over our TLS: bulk transfers both ways checked by sha256,
backpressure through drain(), line and exact reads, and interop with the
stdlib's TLS on the same loop."""

import asyncio
import os
import struct

import pytest

from agt_testlib import (
    MiB, close_server, close_writer, our_client_ctx, our_server_ctx, run,
    sha256, start_stream_server, std_client_ctx, std_server_ctx, wait_for)

SIZE = 6 * MiB


async def send_all(writer, data, chunk=256 * 1024):
    view = memoryview(data)
    for i in range(0, len(view), chunk):
        writer.write(view[i:i + chunk])
        await writer.drain()


async def exchange(reader, writer, outgoing):
    """Send *outgoing* (then half-close) while reading the peer to EOF."""
    async def sender():
        await send_all(writer, outgoing)
        writer.write_eof()

    send_task = asyncio.ensure_future(sender())
    received = await reader.read()
    await send_task
    return received


@pytest.mark.timeout(120)
@pytest.mark.parametrize("pair_kind", ["ours-ours", "ours-stdlib", "stdlib-ours"])
def test_bulk_both_ways_simultaneously(certs, family, tls_version, unix_dir,
                                       pair_kind):
    """Both ends send several MiB at the same time; both check the sha256.
    A stdlib end cannot half-close, so with one the lengths are announced."""
    client_kind, server_kind = pair_kind.split("-")
    to_server = os.urandom(SIZE)
    to_client = os.urandom(SIZE + 12345)
    results = {}

    async def framed_exchange(reader, writer, outgoing, incoming_len):
        async def sender():
            await send_all(writer, outgoing)
        task = asyncio.ensure_future(sender())
        data = await reader.readexactly(incoming_len)
        await task
        return data

    async def handler(reader, writer):
        try:
            if pair_kind == "ours-ours":
                results["server"] = await exchange(reader, writer, to_client)
            else:
                results["server"] = await framed_exchange(
                    reader, writer, to_client, len(to_server))
        finally:
            writer.close()

    async def main():
        sctx = (our_server_ctx if server_kind == "ours" else std_server_ctx)(
            certs, tls_version)
        cctx = (our_client_ctx if client_kind == "ours" else std_client_ctx)(
            certs, tls_version)
        server, ep = await start_stream_server(family, handler, sctx, unix_dir)
        try:
            reader, writer = await ep.open(cctx)
            if pair_kind == "ours-ours":
                got = await wait_for(exchange(reader, writer, to_server), 90,
                                     "bulk exchange")
            else:
                got = await wait_for(framed_exchange(reader, writer, to_server,
                                                     len(to_client)),
                                     90, "bulk exchange")
            assert len(got) == len(to_client)
            assert sha256(got) == sha256(to_client)
            await close_writer(writer)
            await wait_for(_until_key(results, "server"), 20)
            assert len(results["server"]) == len(to_server)
            assert sha256(results["server"]) == sha256(to_server)
        finally:
            await close_server(server)

    run(main())


async def _until_key(d, key):
    while key not in d:
        await asyncio.sleep(0.01)


def test_readline_and_readexactly(certs, family, unix_dir):
    async def handler(reader, writer):
        header = await reader.readexactly(4)
        (n,) = struct.unpack("!I", header)
        body = await reader.readexactly(n)
        line = await reader.readline()
        writer.write(b"%d:%s:%s" % (n, sha256(body).encode(), line))
        await writer.drain()
        writer.close()

    async def main():
        server, ep = await start_stream_server(family, handler,
                                               our_server_ctx(certs), unix_dir)
        try:
            reader, writer = await ep.open(our_client_ctx(certs))
            body = os.urandom(100000)
            writer.write(struct.pack("!I", len(body)))
            # dribble the body in odd pieces
            for i in range(0, len(body), 997):
                writer.write(body[i:i + 997])
            writer.write(b"tail line\n")
            reply = await wait_for(reader.read(), 20)
            assert reply == b"100000:%s:tail line\n" % sha256(body).encode()
            await close_writer(writer)
        finally:
            await close_server(server)

    run(main())


@pytest.mark.timeout(90)
def test_drain_applies_backpressure(certs, family, unix_dir):
    """With a server that does not read, drain() blocks instead of letting
    the buffer grow without bound; it returns once the server reads."""
    async def main():
        gate = asyncio.Event()
        got = {}

        async def handler(reader, writer):
            await gate.wait()
            data = await reader.read()
            got["data"] = data
            writer.close()

        server, ep = await start_stream_server(family, handler,
                                               our_server_ctx(certs), unix_dir)
        try:
            reader, writer = await ep.open(our_client_ctx(certs))
            writer.transport.set_write_buffer_limits(high=128 * 1024)
            chunk = os.urandom(64 * 1024)
            sent = 0
            blocked = False
            while sent < 64 * MiB:
                writer.write(chunk)
                sent += len(chunk)
                try:
                    await asyncio.wait_for(writer.drain(), 0.5)
                except asyncio.TimeoutError:
                    blocked = True
                    break
            assert blocked, "drain() never blocked after %d bytes" % sent
            assert writer.transport.get_write_buffer_size() > 128 * 1024
            gate.set()
            await wait_for(writer.drain(), 30, "drain after the reader woke up")
            writer.write_eof()
            await wait_for(_until_key(got, "data"), 60)
            assert len(got["data"]) == sent
            assert sha256(got["data"]) == sha256(chunk * (sent // len(chunk)))
            await close_writer(writer)
        finally:
            await close_server(server)

    run(main())


def test_many_small_writes_arrive_in_order(certs, family, tls_version, unix_dir):
    async def handler(reader, writer):
        data = await reader.read()
        writer.write(sha256(data).encode())
        await writer.drain()
        writer.close()

    async def main():
        server, ep = await start_stream_server(
            family, handler, our_server_ctx(certs, tls_version), unix_dir)
        try:
            reader, writer = await ep.open(our_client_ctx(certs, tls_version))
            parts = [b"%06d," % i for i in range(20000)]
            for p in parts:
                writer.write(p)
            await writer.drain()
            writer.write_eof()
            assert await wait_for(reader.read(), 30) == \
                sha256(b"".join(parts)).encode()
            await close_writer(writer)
        finally:
            await close_server(server)

    run(main())
