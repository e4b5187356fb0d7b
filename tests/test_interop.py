"""Interoperability with other TLS implementations run as subprocesses:
openssl s_server/s_client and gnutls-serv/gnutls-cli.  Also what those
peers see on the wire: alerts and close_notify."""

import asyncio
import re
import ssl as stdlib_ssl
import time

import pytest

import aio_gnutls_transport as agt
from agt_testlib import (
    OPENSSL_TLS_FLAG, TLS_NAME, TLS_PRIORITY, close_server, close_writer,
    free_port, our_client_ctx, our_server_ctx, require_binary, run,
    start_stream_server, until, wait_for, wait_listening)

CLOSE_NOTIFY_IN = re.compile(
    r"<<< TLS 1\.[23], Alert \[length 0002\], warning close_notify")
CERT_ALERT = re.compile(
    r"alert (bad certificate|unknown ca|certificate unknown|certificate expired"
    r"|unsupported certificate)", re.I)


def start_s_server(procs, certs, family, version, unix_dir, *extra,
                   cert="server"):
    require_binary("openssl")
    if family == "tcp":
        port = free_port()
        address = ("127.0.0.1", port)
        where = ["-accept", "127.0.0.1:%d" % port]
    else:
        address = unix_dir + "/openssl.sock"
        where = ["-unix", address]
    args = ["openssl", "s_server", *where, "-cert", getattr(certs, cert + "_cert"),
            "-key", getattr(certs, cert + "_key"), *extra]
    if version:
        args.append(OPENSSL_TLS_FLAG[version])
    proc = procs.start(args)
    wait_listening(address, proc)
    return proc, address


async def open_to(family, address, ctx, server_hostname="localhost"):
    if family == "tcp":
        return await wait_for(asyncio.open_connection(
            *address, ssl=ctx, server_hostname=server_hostname), 15, "connect")
    return await wait_for(asyncio.open_unix_connection(
        address, ssl=ctx, server_hostname=server_hostname), 15, "connect")


def start_gnutls_serv(procs, certs, version, *extra, cert="server"):
    require_binary("gnutls-serv")
    port = free_port()
    args = ["gnutls-serv", "--echo", "-p", str(port),
            "--x509certfile", getattr(certs, cert + "_cert"),
            "--x509keyfile", getattr(certs, cert + "_key"), *extra]
    if version:
        args += ["--priority", TLS_PRIORITY[version]]
    proc = procs.start(args)
    wait_listening(("127.0.0.1", port), proc)
    return proc, port


# ------------------------------------------------------------- our client

def test_our_client_with_openssl_server(certs, procs, family, tls_version,
                                        unix_dir):
    proc, address = start_s_server(procs, certs, family, tls_version, unix_dir,
                                   "-rev", "-msg")

    async def main():
        reader, writer = await open_to(family, address,
                                       our_client_ctx(certs, tls_version))
        obj = writer.get_extra_info("ssl_object")
        assert obj.version() == TLS_NAME[tls_version]
        assert obj.getpeercert(True) == certs.server_der
        writer.write(b"interoperability\n")
        assert await wait_for(reader.readline(), 10) == b"ytilibareporetni\n"
        await close_writer(writer)

    run(main())
    # our close() sent a close_notify that openssl received
    out = proc.output()
    assert CLOSE_NOTIFY_IN.search(out), out[-3000:]


def test_our_client_with_gnutls_server(certs, procs, tls_version):
    proc, port = start_gnutls_serv(procs, certs, tls_version)

    async def main():
        reader, writer = await open_to("tcp", ("127.0.0.1", port),
                                       our_client_ctx(certs, tls_version))
        assert writer.get_extra_info("ssl_object").version() == TLS_NAME[tls_version]
        payload = b"x" * 10000 + b"\n"
        writer.write(payload)
        got = await wait_for(reader.readexactly(len(payload)), 10)
        assert got == payload
        await close_writer(writer)

    run(main())


def test_our_client_cert_with_gnutls_server(certs, procs):
    proc, port = start_gnutls_serv(procs, certs, None, "--require-client-cert",
                                   "--verify-client-cert", "--x509cafile", certs.ca)

    async def main():
        reader, writer = await open_to("tcp", ("127.0.0.1", port),
                                       our_client_ctx(certs, client_cert=True))
        writer.write(b"with client cert\n")
        assert await wait_for(reader.readline(), 10) == b"with client cert\n"
        await close_writer(writer)

    run(main())
    assert "AGT Test Client" in proc.output()


def test_openssl_server_sees_certificate_alert(certs, procs, family, tls_version,
                                               unix_dir):
    """When our client rejects the server certificate, the server is told
    with an alert, not just a dropped connection."""
    proc, address = start_s_server(procs, certs, family, tls_version, unix_dir,
                                   "-rev", cert="other_server")

    async def main():
        with pytest.raises(agt.CertificateVerificationError):
            await open_to(family, address, our_client_ctx(certs, tls_version))

    run(main())
    out = ""
    for _ in range(100):  # s_server may log it a moment later
        out = proc.output()
        if CERT_ALERT.search(out):
            break
        time.sleep(0.05)
    assert CERT_ALERT.search(out), out[-3000:]


def test_gnutls_server_abort_is_premature_termination(certs, procs):
    """A peer that disappears without close_notify (gnutls-serv killed) is
    reported as PrematureTerminationError, unlike a clean close."""
    proc, port = start_gnutls_serv(procs, certs, None)

    async def main():
        reader, writer = await open_to("tcp", ("127.0.0.1", port),
                                       our_client_ctx(certs))
        writer.write(b"before the crash\n")
        assert await wait_for(reader.readline(), 10) == b"before the crash\n"
        proc.popen.kill()
        with pytest.raises(agt.PrematureTerminationError) as info:
            await wait_for(reader.read(), 10)
        assert isinstance(info.value, stdlib_ssl.SSLEOFError)
        writer.close()

    run(main())


# ------------------------------------------------------------- our server

async def reply_and_close(reader, writer):
    line = await reader.readline()
    writer.write(b"server got: " + line)
    await writer.drain()
    writer.close()


def s_client_args(certs, family, address, version, *extra):
    if family == "tcp":
        where = ["-connect", "%s:%d" % address]
    else:
        where = ["-unix", address]
    args = ["openssl", "s_client", *where, "-CAfile", certs.ca,
            "-verify_return_error", "-servername", "localhost",
            "-verify_hostname", "localhost", *extra]
    if version:
        args.append(OPENSSL_TLS_FLAG[version])
    return args


async def wait_exit(proc, timeout=20):
    await until(lambda: proc.popen.poll() is not None, timeout=timeout,
                what="%s to exit" % proc.args[0])
    return proc.popen.returncode


def test_openssl_client_with_our_server(certs, procs, family, tls_version,
                                        unix_dir):
    require_binary("openssl")

    async def main():
        server, ep = await start_stream_server(
            family, reply_and_close, our_server_ctx(certs, tls_version), unix_dir)
        try:
            proc = procs.start(s_client_args(certs, family, ep.address,
                                             tls_version, "-msg"))
            proc.send(b"hello from openssl\n")  # stdin stays open
            rc = await wait_exit(proc)
            out = proc.output()
            assert "server got: hello from openssl" in out, out[-3000:]
            assert "Verify return code: 0 (ok)" in out
            assert "New, %s" % TLS_NAME[tls_version] in out
            # our server's close() sent close_notify
            assert CLOSE_NOTIFY_IN.search(out), out[-3000:]
            assert rc == 0, out[-3000:]
        finally:
            await close_server(server)

    run(main())


def test_gnutls_client_with_our_server(certs, procs, tls_version):
    require_binary("gnutls-cli")

    async def main():
        server, ep = await start_stream_server(
            "tcp", reply_and_close, our_server_ctx(certs, tls_version), None)
        try:
            proc = procs.start(["gnutls-cli", "--x509cafile", certs.ca,
                                "-p", str(ep.address[1]),
                                "--priority", TLS_PRIORITY[tls_version],
                                "127.0.0.1"])
            proc.send(b"hello from gnutls\n")
            rc = await wait_exit(proc)
            out = proc.output()
            assert "server got: hello from gnutls" in out, out[-3000:]
            assert "Peer has closed the GnuTLS connection" in out, out[-3000:]
            assert "non-properly terminated" not in out
            assert rc == 0
        finally:
            await close_server(server)

    run(main())


def test_gnutls_client_half_close_with_our_server(certs, procs, tls_version):
    """gnutls-cli half-closes at the end of its input and keeps reading: our
    server reads to EOF, then answers on the still-open direction."""
    require_binary("gnutls-cli")

    async def handler(reader, writer):
        data = await reader.read()
        writer.write(b"after your EOF I got %d bytes\n" % len(data))
        await writer.drain()
        writer.close()

    async def main():
        server, ep = await start_stream_server(
            "tcp", handler, our_server_ctx(certs, tls_version), None)
        try:
            proc = procs.start(["gnutls-cli", "--x509cafile", certs.ca,
                                "-p", str(ep.address[1]),
                                "--priority", TLS_PRIORITY[tls_version],
                                "127.0.0.1"])
            proc.send(b"0123456789\n" * 10)
            proc.close_stdin()
            rc = await wait_exit(proc)
            out = proc.output()
            assert "after your EOF I got 110 bytes" in out, out[-3000:]
            assert "Peer has closed the GnuTLS connection" in out
            assert rc == 0
        finally:
            await close_server(server)

    run(main())


def test_gnutls_client_sees_our_abort_as_truncation(certs, procs):
    require_binary("gnutls-cli")

    async def handler(reader, writer):
        await reader.readline()
        writer.write(b"partial answer\n")
        await writer.drain()
        writer.transport.abort()

    async def main():
        server, ep = await start_stream_server("tcp", handler,
                                               our_server_ctx(certs), None)
        try:
            proc = procs.start(["gnutls-cli", "--x509cafile", certs.ca,
                                "-p", str(ep.address[1]), "127.0.0.1"])
            proc.send(b"question\n")
            await wait_exit(proc)
            out = proc.output()
            assert "partial answer" in out
            assert "non-properly terminated" in out, out[-3000:]
            assert "Peer has closed the GnuTLS connection" not in out
        finally:
            await close_server(server)

    run(main())


def test_openssl_client_wrong_version_gets_protocol_alert(certs, procs, family,
                                                        unix_dir):
    """Our TLS 1.3-only server answers a TLS 1.2-only client with an alert,
    and keeps serving."""
    require_binary("openssl")

    async def main():
        server, ep = await start_stream_server(
            family, reply_and_close, our_server_ctx(certs, "1.3"), unix_dir)
        try:
            proc = procs.start(s_client_args(certs, family, ep.address, "1.2"))
            proc.send(b"hello\n")
            rc = await wait_exit(proc)
            out = proc.output()
            assert rc != 0
            assert re.search(r"alert (protocol version|handshake failure)", out), \
                out[-3000:]
            proc = procs.start(s_client_args(certs, family, ep.address, "1.3"))
            proc.send(b"again\n")
            assert await wait_exit(proc) == 0
            assert "server got: again" in proc.output()
        finally:
            await close_server(server)

    run(main())


def test_openssl_client_cert_with_our_server(certs, procs, tls_version):
    require_binary("openssl")
    seen = []

    async def handler(reader, writer):
        seen.append(writer.get_extra_info("ssl_object").getpeercert(True))
        await reply_and_close(reader, writer)

    async def main():
        sctx = our_server_ctx(certs, tls_version, cafile="ca",
                              verify_mode=stdlib_ssl.CERT_REQUIRED)
        server, ep = await start_stream_server("tcp", handler, sctx, None)
        try:
            proc = procs.start(s_client_args(
                certs, "tcp", ep.address, tls_version,
                "-cert", certs.client_cert, "-key", certs.client_key))
            proc.send(b"with cert\n")
            assert await wait_exit(proc) == 0, proc.output()[-3000:]
            assert "server got: with cert" in proc.output()
            assert seen == [certs.client_der]
            # without a certificate: an alert, and no handler call
            proc = procs.start(s_client_args(certs, "tcp", ep.address,
                                             tls_version))
            proc.send(b"no cert\n")
            await wait_exit(proc)
            out = proc.output()
            assert "server got" not in out
            # GnuTLS itself (gnutls-serv too) answers a TLS 1.2 empty
            # Certificate message with decode_error
            assert re.search(r"alert (certificate required|handshake failure"
                             r"|bad certificate|certificate unknown"
                             r"|decode error)", out), out[-3000:]
            assert len(seen) == 1
        finally:
            await close_server(server)

    run(main())


@pytest.mark.parametrize("command", ["rekey", "rekey1"])
def test_tls13_key_update_from_gnutls_client(certs, procs, command):
    """gnutls-cli sends a TLS 1.3 KeyUpdate mid-stream ("rekey" also asks us
    to update our keys, which only works if the engine's output is flushed
    after reads).  Data in both directions survives it."""
    require_binary("gnutls-cli")

    async def echo_lines(reader, writer):
        while True:
            line = await reader.readline()
            if not line:
                break
            writer.write(b"echo " + line)
            await writer.drain()
        writer.close()

    async def main():
        server, ep = await start_stream_server(
            "tcp", echo_lines, our_server_ctx(certs, "1.3"), None)
        try:
            proc = procs.start(["gnutls-cli", "--x509cafile", certs.ca,
                                "-p", str(ep.address[1]), "--inline-commands",
                                "127.0.0.1"])
            proc.send(b"before key update\n")
            await until(lambda: "echo before key update" in proc.stdout(),
                        what="first echo")
            proc.send(b"^%s^\n" % command.encode())
            await asyncio.sleep(0.3)
            proc.send(b"after key update\n")
            await until(lambda: "echo after key update" in proc.stdout(),
                        what="echo after the key update")
            proc.close_stdin()
            rc = await wait_exit(proc)
            out = proc.output()
            assert "Rekey was completed" in out, out[-3000:]
            assert "Peer has closed the GnuTLS connection" in out, out[-3000:]
            assert rc == 0
        finally:
            await close_server(server)

    run(main())
