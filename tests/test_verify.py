"""Certificate verification through the event loop: CA files, unknown
issuers, wrong names, expired certificates, SNI, verify modes on both sides
and client certificates."""

import asyncio
import re
import ssl as stdlib_ssl

import pytest

import aio_gnutls_transport as agt
from agt_testlib import (
    OPENSSL_TLS_FLAG, TLS_NAME, close_server, close_writer, free_port,
    our_client_ctx, our_server_ctx, require_binary, run, start_stream_server,
    std_client_ctx, std_server_ctx, wait_for, wait_listening)


def make_echo(served):
    async def handler(reader, writer):
        served.append(writer.get_extra_info("ssl_object").getpeercert(True))
        try:
            while True:
                line = await reader.readline()
                if not line:
                    break
                writer.write(b"echo: " + line)
                await writer.drain()
        except (stdlib_ssl.SSLError, ConnectionError):
            pass
        finally:
            writer.close()
    return handler


async def echo_once(ep, ctx, server_hostname="localhost", text=b"ping\n"):
    reader, writer = await wait_for(ep.open(ctx, server_hostname=server_hostname),
                                    15, "connect")
    try:
        writer.write(text)
        line = await wait_for(reader.readline(), 10, "echo")
        return line, writer.get_extra_info("ssl_object")
    finally:
        await close_writer(writer)


async def expect_refused(ep, ctx, server_hostname="localhost"):
    """The connection must fail at connect time or at the first read."""
    try:
        reader, writer = await wait_for(
            ep.open(ctx, server_hostname=server_hostname), 15, "connect")
    except (stdlib_ssl.SSLError, ConnectionError) as exc:
        return exc
    try:
        writer.write(b"ping\n")
        data = await wait_for(reader.read(), 10, "read after refused handshake")
    except (stdlib_ssl.SSLError, ConnectionError) as exc:
        return exc
    finally:
        writer.close()
    pytest.fail("connection was not refused; read %r" % (data,))


BAD_CERTS = {
    # cert name: (words the error must contain, verify_code(s), how a later
    #             good client connects: context kwargs, server_hostname)
    "other_server": (r"issuer.*unknown|unknown.*issuer", (2, 19, 20, 21),
                     dict(cafile="other_ca"), "localhost"),
    "wrong_name": (r"match", (62,), {}, "wrong.example"),
    "expired": (r"expired", (10,),
                dict(check_hostname=False, verify_mode=stdlib_ssl.CERT_NONE),
                "localhost"),
}


@pytest.mark.parametrize("server_kind", ["ours", "stdlib"])
@pytest.mark.parametrize("bad", sorted(BAD_CERTS))
def test_client_rejects_bad_server_cert(certs, family, tls_version, unix_dir,
                                        bad, server_kind):
    words, codes, good_kw, good_name = BAD_CERTS[bad]

    async def main():
        served = []
        make_sctx = our_server_ctx if server_kind == "ours" else std_server_ctx
        server, ep = await start_stream_server(
            family, make_echo(served), make_sctx(certs, tls_version, cert=bad),
            unix_dir)
        try:
            with pytest.raises(agt.CertificateVerificationError) as info:
                await wait_for(ep.open(our_client_ctx(certs, tls_version)), 15,
                               "connect")
            exc = info.value
            assert isinstance(exc, stdlib_ssl.SSLCertVerificationError)
            assert isinstance(exc, agt.GnutlsError)
            assert re.search(words, str(exc), re.I), str(exc)
            assert re.search(words.split("|")[0].split(".*")[0], exc.verify_message,
                             re.I), exc.verify_message
            assert exc.verify_code in codes, (exc.verify_code, exc.verify_message)
            assert served == []
            # the server is still serving: a client that accepts it gets in
            line, obj = await echo_once(
                ep, our_client_ctx(certs, tls_version, **good_kw),
                server_hostname=good_name)
            assert line == b"echo: ping\n"
            assert obj.version() == TLS_NAME[tls_version]
            assert len(served) == 1
        finally:
            await close_server(server)

    run(main())


def test_our_server_survives_stdlib_client_rejecting_it(certs, family,
                                                       tls_version, unix_dir):
    async def main():
        served = []
        server, ep = await start_stream_server(
            family, make_echo(served),
            our_server_ctx(certs, tls_version, cert="other_server"), unix_dir)
        try:
            with pytest.raises(stdlib_ssl.SSLCertVerificationError) as info:
                await wait_for(ep.open(std_client_ctx(certs, tls_version)), 15)
            assert "unable to get local issuer" in str(info.value)
            line, _ = await echo_once(
                ep, std_client_ctx(certs, tls_version, cafile="other_ca"))
            assert line == b"echo: ping\n"
            assert len(served) == 1
        finally:
            await close_server(server)

    run(main())


def test_ca_from_create_default_context(certs, family, tls_version, unix_dir):
    async def main():
        served = []
        server, ep = await start_stream_server(
            family, make_echo(served), our_server_ctx(certs, tls_version), unix_dir)
        try:
            ctx = agt.ssl.create_default_context(cafile=certs.ca)
            ctx.gnutls_set_priority("NORMAL:-VERS-ALL:+VERS-TLS" + tls_version)
            line, obj = await echo_once(ep, ctx)
            assert line == b"echo: ping\n"
            assert obj.getpeercert(True) == certs.server_der
        finally:
            await close_server(server)

    run(main())


def test_system_trust_only_rejects_test_ca(certs, family, unix_dir):
    """load_default_certs() (the system store) does not know our test CA."""
    async def main():
        server, ep = await start_stream_server(
            family, make_echo([]), our_server_ctx(certs), unix_dir)
        try:
            ctx = agt.ssl.SSLContext(agt.ssl.PROTOCOL_TLS_CLIENT)
            ctx.load_default_certs()
            with pytest.raises(agt.CertificateVerificationError) as info:
                await wait_for(ep.open(ctx), 15)
            assert re.search(r"issuer", str(info.value), re.I)
        finally:
            await close_server(server)

    run(main())


def test_no_ca_at_all_fails_closed(certs, family, unix_dir):
    async def main():
        server, ep = await start_stream_server(
            family, make_echo([]), our_server_ctx(certs), unix_dir)
        try:
            ctx = agt.ssl.SSLContext(agt.ssl.PROTOCOL_TLS_CLIENT)
            with pytest.raises(agt.CertificateVerificationError):
                await wait_for(ep.open(ctx), 15)
        finally:
            await close_server(server)

    run(main())


# ------------------------------------------------------------- client side modes

def test_client_cert_none_accepts_anything(certs, family, tls_version, unix_dir):
    async def main():
        server, ep = await start_stream_server(
            family, make_echo([]),
            our_server_ctx(certs, tls_version, cert="other_server"), unix_dir)
        try:
            ctx = our_client_ctx(certs, tls_version, cafile=None,
                                 check_hostname=False,
                                 verify_mode=stdlib_ssl.CERT_NONE)
            line, obj = await echo_once(ep, ctx, server_hostname="anything.invalid")
            assert line == b"echo: ping\n"
        finally:
            await close_server(server)

    run(main())


def test_client_cert_optional_still_verifies(certs, family, tls_version, unix_dir):
    """As in the stdlib, a client's CERT_OPTIONAL verifies like CERT_REQUIRED."""
    async def main():
        good, good_ep = await start_stream_server(
            family, make_echo([]), our_server_ctx(certs, tls_version), unix_dir)
        bad, bad_ep = await start_stream_server(
            family, make_echo([]),
            our_server_ctx(certs, tls_version, cert="other_server"), unix_dir)
        try:
            ctx = our_client_ctx(certs, tls_version, check_hostname=False,
                                 verify_mode=stdlib_ssl.CERT_OPTIONAL)
            line, _ = await echo_once(good_ep, ctx)
            assert line == b"echo: ping\n"
            with pytest.raises(agt.CertificateVerificationError) as info:
                await wait_for(bad_ep.open(ctx), 15)
            assert re.search(r"issuer", str(info.value), re.I)
        finally:
            await close_server(good)
            await close_server(bad)

    run(main())


# ------------------------------------------------------------- server side modes

@pytest.mark.parametrize("client_cert", [False, True], ids=["nocert", "cert"])
@pytest.mark.parametrize("mode", ["CERT_NONE", "CERT_OPTIONAL"])
def test_server_verify_mode_lenient(certs, family, tls_version, unix_dir, mode,
                                   client_cert):
    async def main():
        served = []
        sctx = our_server_ctx(certs, tls_version, cafile="ca",
                              verify_mode=getattr(stdlib_ssl, mode))
        server, ep = await start_stream_server(family, make_echo(served), sctx,
                                               unix_dir)
        try:
            line, _ = await echo_once(
                ep, our_client_ctx(certs, tls_version, client_cert=client_cert))
            assert line == b"echo: ping\n"
            expect = certs.client_der if (client_cert and mode == "CERT_OPTIONAL") \
                else None
            assert served == [expect]
        finally:
            await close_server(server)

    run(main())


@pytest.mark.parametrize("client_kind", ["ours", "stdlib"])
def test_server_requires_client_cert(certs, family, tls_version, unix_dir,
                                     client_kind):
    make_cctx = our_client_ctx if client_kind == "ours" else std_client_ctx

    async def main():
        served = []
        sctx = our_server_ctx(certs, tls_version, cafile="ca",
                              verify_mode=stdlib_ssl.CERT_REQUIRED)
        server, ep = await start_stream_server(family, make_echo(served), sctx,
                                               unix_dir)
        try:
            # without a certificate: refused, and the client is told so
            exc = await expect_refused(ep, make_cctx(certs, tls_version))
            assert isinstance(exc, stdlib_ssl.SSLError), repr(exc)
            assert re.search(r"alert|certificate", str(exc), re.I), str(exc)
            assert served == []
            # with one: accepted, and the server sees it
            line, _ = await echo_once(
                ep, make_cctx(certs, tls_version, client_cert=True))
            assert line == b"echo: ping\n"
            assert served == [certs.client_der]
        finally:
            await close_server(server)

    run(main())


def test_stdlib_client_sees_certificate_alert(certs, family, unix_dir):
    """Our server's refusal reaches the stdlib client as a TLS alert."""
    async def main():
        sctx = our_server_ctx(certs, "1.3", cafile="ca",
                              verify_mode=stdlib_ssl.CERT_REQUIRED)
        server, ep = await start_stream_server(family, make_echo([]), sctx,
                                               unix_dir)
        try:
            exc = await expect_refused(ep, std_client_ctx(certs, "1.3"))
            assert "alert" in str(exc).lower(), str(exc)
            assert "certificate" in str(exc).lower(), str(exc)
        finally:
            await close_server(server)

    run(main())


def test_server_rejects_client_cert_from_unknown_ca(certs, family, tls_version,
                                                    unix_dir):
    async def main():
        served = []
        sctx = our_server_ctx(certs, tls_version, cafile="ca",
                              verify_mode=stdlib_ssl.CERT_REQUIRED)
        server, ep = await start_stream_server(family, make_echo(served), sctx,
                                               unix_dir)
        try:
            cctx = std_client_ctx(certs, tls_version)
            cctx.load_cert_chain(certs.other_server_cert, certs.other_server_key)
            exc = await expect_refused(ep, cctx)
            assert isinstance(exc, stdlib_ssl.SSLError), repr(exc)
            assert "alert" in str(exc).lower(), str(exc)
            assert served == []
            line, _ = await echo_once(
                ep, std_client_ctx(certs, tls_version, client_cert=True))
            assert line == b"echo: ping\n"
        finally:
            await close_server(server)

    run(main())


# ------------------------------------------------------------- SNI

def test_sni_selects_certificate_on_openssl_server(certs, procs, family,
                                                   tls_version, unix_dir):
    """openssl s_server answers SNI "localhost" with the good certificate and
    anything else with the wrong-name one: a verified connection to
    "localhost" proves SNI was sent; an IP literal sends none."""
    require_binary("openssl")
    if family == "tcp":
        port = free_port()
        where = ["-accept", "127.0.0.1:%d" % port]
        address = ("127.0.0.1", port)
    else:
        address = unix_dir + "/sni.sock"
        where = ["-unix", address]
    proc = procs.start(
        ["openssl", "s_server", *where, OPENSSL_TLS_FLAG[tls_version],
         "-cert", certs.wrong_name_cert, "-key", certs.wrong_name_key,
         "-servername", "localhost",
         "-cert2", certs.server_cert, "-key2", certs.server_key, "-rev"])
    wait_listening(address, proc)

    async def open_to(ctx, name):
        if family == "tcp":
            return await asyncio.open_connection(*address, ssl=ctx,
                                                 server_hostname=name)
        return await asyncio.open_unix_connection(address, ssl=ctx,
                                                  server_hostname=name)

    async def main():
        reader, writer = await wait_for(
            open_to(our_client_ctx(certs, tls_version), "localhost"), 15)
        assert writer.get_extra_info("ssl_object").getpeercert(True) == \
            certs.server_der
        writer.write(b"abc\n")
        assert await wait_for(reader.readline(), 10) == b"cba\n"
        await close_writer(writer)
        # no SNI for an IP literal: s_server falls back to the wrong-name cert
        ctx = our_client_ctx(certs, tls_version, check_hostname=False)
        reader, writer = await wait_for(open_to(ctx, "127.0.0.1"), 15)
        info = writer.get_extra_info("ssl_object").getpeercert()
        assert (("commonName", "wrong.example"),) in info["subject"]
        await close_writer(writer)
        with pytest.raises(agt.CertificateVerificationError) as exc:
            await wait_for(open_to(our_client_ctx(certs, tls_version),
                                   "127.0.0.1"), 15)
        assert re.search(r"match", str(exc.value), re.I)

    run(main())


def test_sni_seen_by_gnutls_server(certs, procs, tls_version):
    require_binary("gnutls-serv")
    port = free_port()
    proc = procs.start(
        ["gnutls-serv", "--echo", "-p", str(port),
         "--x509certfile", certs.server_cert, "--x509keyfile", certs.server_key,
         "--priority", "NORMAL:-VERS-ALL:+VERS-TLS" + tls_version])
    wait_listening(("127.0.0.1", port), proc)

    async def main():
        reader, writer = await wait_for(asyncio.open_connection(
            "127.0.0.1", port, ssl=our_client_ctx(certs, tls_version),
            server_hostname="localhost"), 15)
        writer.write(b"sni check\n")
        assert await wait_for(reader.readline(), 10) == b"sni check\n"
        await close_writer(writer)

    run(main())
    out = proc.output()
    assert "Given server name[1]: localhost" in out, out
