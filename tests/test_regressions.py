"""Faults found and fixed, each pinned by the situation that showed it:

* a fatal record error right behind good data in the same read;
* data, close_notify and a reset arriving while the application has paused
  reading;
* subject alternative names that are not UTF-8, very long, or malformed
  IP addresses;
* verify_message disagreeing with verify_code;
* an EOF during the handshake described as a missing close_notify;
* load_verify_locations() given a directory for a file, a file for a
  directory, or PEM text as bytes.
"""

import asyncio
import socket
import ssl as stdlib_ssl
import struct
import time

import pytest

import aio_gnutls_transport as agt
from aio_gnutls_transport import _gnutls as G
from aio_gnutls_transport import ssl as agt_ssl
import agt_certs
from agt_testlib import (
    TLS_PRIORITY, RecordingProtocol, close_server, close_writer,
    our_client_ctx, run, settle, start_stream_server, std_client_ctx, until,
    wait_for)


class EngineServer(asyncio.Protocol):
    """A TLS server made of the bare engine over a plain connection, so that
    a test decides exactly which bytes go on the wire after the handshake.
    Whatever it later reads or the error it gets is recorded."""

    def __init__(self, certs, version, after_handshake):
        creds = G.Credentials()
        creds.load_cert_chain(certs.server_cert, certs.server_key)
        self.session = G.Session(creds, G.Priority(TLS_PRIORITY[version]),
                                 server_side=True)
        self.after_handshake = after_handshake
        self.received = bytearray()
        self.error = None
        self.loop = asyncio.get_running_loop()
        self.closed = self.loop.create_future()

    def connection_made(self, transport):
        self.transport = transport

    def flush(self):
        out = self.session.take_output()
        if out:
            self.transport.write(out)

    def data_received(self, data):
        if self.error is not None:
            return
        self.session.feed(data)
        try:
            if not self.session.handshake_done:
                if self.session.handshake():
                    self.flush()
                    self.after_handshake(self)
            else:
                while True:
                    plain = self.session.read()
                    if not plain:
                        break
                    self.received += plain
        except G.GnutlsError as e:
            self.error = e
        self.flush()

    def connection_lost(self, exc):
        if not self.closed.done():
            self.closed.set_result(exc)


async def start_engine_server(certs, version, after_handshake):
    engines = []

    def factory():
        engine = EngineServer(certs, version, after_handshake)
        engines.append(engine)
        return engine

    loop = asyncio.get_running_loop()
    server = await loop.create_server(factory, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[:2], engines


def records(session, *chunks):
    """Each chunk written as its own record(s); the ciphertext of each."""
    out = []
    for chunk in chunks:
        session.write(chunk)
        out.append(session.take_output())
    return out


# ------------------------------------------------ error right behind good data

def good_then_corrupted(engine):
    good, bad = records(engine.session, b"GOOD DATA", b"EVIL" * 10)
    bad = bytearray(bad)
    bad[-1] ^= 0x01                         # break the authentication tag
    # one write, one TCP segment; then the peer stays connected and quiet
    engine.transport.write(good + bytes(bad))


def test_corrupted_record_behind_good_data_streams(certs, tls_version):
    """The reader fails at once; it used to wait, the peer quiet, for input
    that would never come."""
    async def main():
        server, (host, port), engines = await start_engine_server(
            certs, tls_version, good_then_corrupted)
        try:
            reader, writer = await wait_for(asyncio.open_connection(
                host, port, ssl=our_client_ctx(certs, tls_version),
                server_hostname="localhost"), 15, "connect")
            start = time.monotonic()
            with pytest.raises(agt.GnutlsError) as info:
                # (a StreamReader raises a stored error before returning
                # buffered data, so the good data is checked with a
                # protocol, below)
                while await wait_for(reader.read(100), 5,
                                     "the error of the corrupted record"):
                    pass
            assert time.monotonic() - start < 2
            exc = info.value
            assert not isinstance(exc, agt.PrematureTerminationError), exc
            assert exc.reason.startswith("GNUTLS_E_"), exc.reason
            # the peer is told why: a bad_record_mac alert
            await until(lambda: engines[0].error is not None,
                        what="the peer to receive the alert")
            message = str(engines[0].error).lower()
            assert "bad record mac" in message, message
            assert "(20)" in message, message
            writer.close()
        finally:
            await close_server(server)

    run(main())


def test_corrupted_record_behind_good_data_protocol(certs, tls_version):
    async def main():
        server, (host, port), engines = await start_engine_server(
            certs, tls_version, good_then_corrupted)
        try:
            loop = asyncio.get_running_loop()
            transport, client = await wait_for(loop.create_connection(
                RecordingProtocol, host, port,
                ssl=our_client_ctx(certs, tls_version),
                server_hostname="localhost"), 15, "connect")
            exc = await wait_for(client.lost, 5, "connection_lost")
            assert bytes(client.data) == b"GOOD DATA"
            assert client.events == ["made", "data", "lost"], client.events
            assert isinstance(exc, agt.GnutlsError), repr(exc)
            assert not isinstance(exc, agt.PrematureTerminationError), exc
            await until(lambda: engines[0].error is not None,
                        what="the peer to receive the alert")
            assert "bad record mac" in str(engines[0].error).lower()
        finally:
            await close_server(server)

    run(main())


# ------------------------------------------------ paused reading and a reset

@pytest.mark.parametrize("close_notify", [True, False],
                         ids=["close_notify", "truncated"])
def test_paused_reader_keeps_data_past_a_reset(certs, tls_version, close_notify):
    """Data (and close_notify) arrive while the application has paused
    reading, then the peer resets the connection: on resume_reading() the
    application still gets the data, then eof_received() (or, without
    close_notify, the truncation error), then connection_lost()."""
    payload = b"IMPORTANT RESPONSE " * 50

    def send_and_reset(engine):
        engine.session.write(payload)
        if close_notify:
            engine.session.bye()
        engine.flush()
        sock = engine.transport.get_extra_info("socket")

        def reset():
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                            struct.pack("ii", 1, 0))
            engine.transport.abort()
        engine.loop.call_later(0.2, reset)

    async def main():
        server, (host, port), engines = await start_engine_server(
            certs, tls_version, send_and_reset)
        try:
            loop = asyncio.get_running_loop()
            transport, client = await wait_for(loop.create_connection(
                lambda: RecordingProtocol(
                    on_connect=lambda p: p.transport.pause_reading()),
                host, port, ssl=our_client_ctx(certs, tls_version),
                server_hostname="localhost"), 15, "connect")
            await wait_for(engines[0].closed, 10, "the peer's reset")
            await settle(0.3)               # the reset has reached us
            assert client.events == ["made"], client.events
            transport.resume_reading()
            exc = await wait_for(client.lost, 10, "connection_lost")
            assert bytes(client.data) == payload
            assert client.events[0] == "made"
            assert len(client.lost_calls) == 1
            if close_notify:
                assert client.events[-2:] == ["eof", "lost"], client.events
                assert set(client.events[1:-2]) == {"data"}, client.events
                # the TLS stream ended cleanly; the reset came after it
                assert exc is None or isinstance(exc, ConnectionResetError), \
                    repr(exc)
            else:
                assert client.events[-1] == "lost", client.events
                assert set(client.events[1:-1]) == {"data"}, client.events
                assert isinstance(exc, (agt.PrematureTerminationError,
                                        ConnectionResetError)), repr(exc)
        finally:
            await close_server(server)

    run(main())


# ------------------------------------------------ subject alternative names

SAN_CASES = {
    "badutf8": [("DNS", agt_certs.BAD_UTF8_SAN.decode("utf-8", "backslashreplace")),
                ("DNS", "localhost")],
    "long": [("DNS", agt_certs.LONG_SAN), ("DNS", "localhost")],
    "ip5": [("IP Address", "<invalid>"), ("DNS", "localhost")],
}


def _san_cert(more_certs, name):
    return (getattr(more_certs, "san_%s_cert" % name),
            getattr(more_certs, "san_%s_key" % name))


@pytest.mark.parametrize("name", sorted(SAN_CASES))
def test_certificate_info_lists_odd_sans(more_certs, name):
    cert, _ = _san_cert(more_certs, name)
    with open(cert) as f:
        der = stdlib_ssl.PEM_cert_to_DER_cert(f.read())
    sans = [tuple(s) for s in G.certificate_info(der)["subject_alt_names"]]
    assert sans == SAN_CASES[name]
    if name == "badutf8":
        assert sans[0][1] == "\\xff\\xfelocalhost"
    if name == "long":
        assert len(sans[0][1]) > 1024


@pytest.mark.parametrize("name", sorted(SAN_CASES))
def test_getpeercert_lists_odd_sans(certs, more_certs, name):
    """Over a verified connection (the names include localhost); where the
    stdlib can decode the certificate it lists the same names."""
    cert, key = _san_cert(more_certs, name)

    async def main():
        sctx = agt_ssl.SSLContext(agt_ssl.PROTOCOL_TLS_SERVER)
        sctx.load_cert_chain(cert, key)

        async def hello(reader, writer):
            writer.write(b"hello\n")
            await writer.drain()
            writer.close()

        server, ep = await start_stream_server("tcp", hello, sctx, None)
        try:
            reader, writer = await wait_for(ep.open(our_client_ctx(certs)), 15)
            ours = writer.get_extra_info("ssl_object").getpeercert()
            assert await wait_for(reader.readline(), 10) == b"hello\n"
            await close_writer(writer)
            std = None
            if name != "badutf8":     # the stdlib cannot decode that one
                reader, writer = await wait_for(ep.open(std_client_ctx(certs)),
                                                15)
                std = writer.get_extra_info("ssl_object").getpeercert()
                await close_writer(writer)
            return ours, std
        finally:
            await close_server(server)

    ours, std = run(main())
    assert list(ours["subjectAltName"]) == SAN_CASES[name]
    if std is not None:
        assert ours["subjectAltName"] == std["subjectAltName"]


# ------------------------------------------------ verify_message / verify_code

VERIFY_CASES = {
    # server certificate, name asked for (never the certificate's name),
    # verify_code and verify_message, as the stdlib reports them
    "self-signed": ("self_signed", "localhost", 18, "self-signed certificate"),
    "unknown-issuer": ("other_server", "somewhere.example", 20,
                       "unable to get local issuer certificate"),
}


WORDS = {"self-signed": "self-signed", "unknown-issuer": "issuer is unknown"}


@pytest.mark.parametrize("case", sorted(VERIFY_CASES))
def test_verify_message_matches_verify_code(certs, more_certs, case):
    """The name does not match either, yet the message names the real
    problem, the one verify_code gives."""
    cert_name, hostname, code, message = VERIFY_CASES[case]
    source = more_certs if cert_name == "self_signed" else certs
    cert = getattr(source, cert_name + "_cert")
    key = getattr(source, cert_name + "_key")

    async def main():
        sctx = agt_ssl.SSLContext(agt_ssl.PROTOCOL_TLS_SERVER)
        sctx.load_cert_chain(cert, key)

        async def idle(reader, writer):
            await reader.read()
            writer.close()

        server, ep = await start_stream_server("tcp", idle, sctx, None)
        try:
            errors = []
            for ctx in (our_client_ctx(certs), std_client_ctx(certs)):
                with pytest.raises(stdlib_ssl.SSLCertVerificationError) as info:
                    await wait_for(ep.open(ctx, server_hostname=hostname), 15)
                errors.append(info.value)
            return errors
        finally:
            await close_server(server)

    ours, std = run(main())
    assert isinstance(ours, agt.CertificateVerificationError)
    assert (ours.verify_code, ours.verify_message) == (code, message)
    # the exception's own words name the same problem first
    first = str(ours).split(";")[0]
    assert WORDS[case] in first, str(ours)
    assert std.verify_code == code, (std.verify_code, std.verify_message)


# ------------------------------------------------ EOF during the handshake

def test_eof_during_handshake_says_so(certs, family, unix_dir):
    """The server reads the ClientHello and closes cleanly (FIN)."""
    async def read_hello_and_close(reader, writer):
        header = await reader.readexactly(5)
        await reader.readexactly(int.from_bytes(header[3:5], "big"))
        writer.close()

    async def main():
        server, ep = await start_stream_server(family, read_hello_and_close,
                                               None, unix_dir)
        try:
            with pytest.raises((stdlib_ssl.SSLError, ConnectionError)) as info:
                await wait_for(ep.open(our_client_ctx(certs)), 15)
            return info.value
        finally:
            await close_server(server)

    exc = run(main())
    assert "during the handshake" in str(exc), repr(exc)
    assert "close_notify" not in str(exc), repr(exc)
    assert not isinstance(exc, agt.CertificateVerificationError)


# ------------------------------------------------ loader argument mix-ups

def test_cafile_directory_is_a_directory_error(certs):
    ctx = agt_ssl.SSLContext(agt_ssl.PROTOCOL_TLS_CLIENT)
    with pytest.raises(IsADirectoryError) as info:
        ctx.load_verify_locations(cafile=certs.ca_dir)
    assert info.value.filename == certs.ca_dir
    assert ctx.cert_store_stats()["x509_ca"] == 0


def test_capath_file_is_a_not_a_directory_error(certs):
    ctx = agt_ssl.SSLContext(agt_ssl.PROTOCOL_TLS_CLIENT)
    with pytest.raises(NotADirectoryError) as info:
        ctx.load_verify_locations(capath=certs.ca)
    assert info.value.filename == certs.ca
    assert ctx.cert_store_stats()["x509_ca"] == 0


def test_cert_chain_directory_is_a_directory_error(certs):
    ctx = agt_ssl.SSLContext(agt_ssl.PROTOCOL_TLS_SERVER)
    with pytest.raises(IsADirectoryError) as info:
        ctx.load_cert_chain(certs.ca_dir)
    assert info.value.filename == certs.ca_dir
    with pytest.raises(IsADirectoryError) as info:
        ctx.load_cert_chain(certs.server_cert, certs.ca_dir)
    assert info.value.filename == certs.ca_dir


@pytest.mark.parametrize("kind", [bytes, bytearray, memoryview])
def test_pem_cadata_as_bytes_says_pass_a_str(certs, kind):
    with open(certs.ca, "rb") as f:
        pem = f.read()
    ctx = agt_ssl.SSLContext(agt_ssl.PROTOCOL_TLS_CLIENT)
    with pytest.raises(agt.GnutlsError) as info:
        ctx.load_verify_locations(cadata=kind(pem))
    assert "pass it as a str" in str(info.value), str(info.value)
    assert ctx.cert_store_stats()["x509_ca"] == 0
    # as a str the same text loads
    ctx.load_verify_locations(cadata=pem.decode("ascii"))
    assert ctx.cert_store_stats()["x509_ca"] == 1
