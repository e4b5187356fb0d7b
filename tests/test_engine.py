"""The C engine (aio_gnutls_transport._gnutls) on its own: two Sessions that
exchange ciphertext through memory only, no sockets and no event loop."""

import calendar
import ipaddress
import os
import re
import ssl as stdlib_ssl
import subprocess
import time

import pytest

import aio_gnutls_transport as agt
from aio_gnutls_transport import _gnutls as G

from agt_testlib import (
    MiB, TLS_NAME, TLS_PRIORITY, TLS_VERSIONS, require_binary, sha256)


def client_creds(certs, cafile="ca", client_cert=False):
    c = G.Credentials()
    if cafile:
        c.load_verify_file(getattr(certs, cafile))
    if client_cert:
        c.load_cert_chain(certs.client_cert, certs.client_key)
    return c


def server_creds(certs, cert="server", cafile=None):
    c = G.Credentials()
    c.load_cert_chain(getattr(certs, cert + "_cert"), getattr(certs, cert + "_key"))
    if cafile:
        c.load_verify_file(getattr(certs, cafile))
    return c


def make_pair(certs, version=None, *, cert="server", cafile="ca",
              server_hostname="localhost", verify_mode=G.CERT_REQUIRED,
              check_hostname=True, client_cert=False, server_verify=G.CERT_NONE):
    prio = G.Priority(TLS_PRIORITY[version] if version else agt.DEFAULT_PRIORITY)
    server = G.Session(server_creds(certs, cert, cafile="ca"), prio,
                       server_side=True, verify_mode=server_verify)
    client = G.Session(client_creds(certs, cafile, client_cert), prio,
                       server_side=False, server_hostname=server_hostname,
                       verify_mode=verify_mode, check_hostname=check_hostname)
    return client, server


def move(src, dst):
    out = src.take_output()
    if out:
        dst.feed(out)
    return len(out)


def do_handshake(client, server, rounds=20):
    """Alternate handshake() calls, moving ciphertext between the two."""
    for _ in range(rounds):
        if not client.handshake_done:
            client.handshake()
        move(client, server)
        if not server.handshake_done:
            server.handshake()
        move(server, client)
        if client.handshake_done and server.handshake_done:
            return
    pytest.fail("handshake did not complete in %d rounds" % rounds)


def connected_pair(certs, version=None, **kw):
    client, server = make_pair(certs, version, **kw)
    do_handshake(client, server)
    return client, server


def read_all(session, limit=1000):
    """Call read() until it returns b'' or None; return (data, got_none)."""
    data = bytearray()
    for _ in range(limit):
        chunk = session.read()
        if chunk is None:
            return bytes(data), True
        if chunk == b"":
            return bytes(data), False
        data += chunk
    pytest.fail("read() kept returning data")


# ------------------------------------------------------------------ module

def test_module_constants_match_stdlib():
    assert (G.CERT_NONE, G.CERT_OPTIONAL, G.CERT_REQUIRED) == (0, 1, 2)
    assert G.CERT_REQUIRED == stdlib_ssl.CERT_REQUIRED
    assert (G.SHUT_RDWR, G.SHUT_WR) == (0, 1)
    assert re.fullmatch(r"\d+\.\d+\.\d+.*", G.GNUTLS_VERSION), G.GNUTLS_VERSION


def test_gnutls_version_is_the_runtime_library():
    require_binary("gnutls-cli")
    out = subprocess.run(["gnutls-cli", "--version"], capture_output=True,
                         timeout=20, text=True).stdout
    # gnutls-cli links the same shared library the module uses
    assert G.GNUTLS_VERSION.split(".")[:2] == \
        re.search(r"(\d+\.\d+)\.\d+", out).group(1).split(".")


def test_exception_hierarchy():
    assert issubclass(G.GnutlsError, stdlib_ssl.SSLError)
    assert issubclass(G.GnutlsError, OSError)
    assert issubclass(G.CertificateVerificationError, G.GnutlsError)
    assert issubclass(G.CertificateVerificationError,
                      stdlib_ssl.SSLCertVerificationError)
    assert issubclass(G.PrematureTerminationError, G.GnutlsError)
    assert issubclass(G.PrematureTerminationError, stdlib_ssl.SSLEOFError)
    assert agt.GnutlsError is G.GnutlsError
    assert agt.CertificateVerificationError is G.CertificateVerificationError
    assert agt.PrematureTerminationError is G.PrematureTerminationError


# ------------------------------------------------------------------ handshake

@pytest.mark.parametrize("version", TLS_VERSIONS)
def test_handshake_in_memory(certs, version):
    client, server = make_pair(certs, version)
    assert client.version() is None and client.cipher() is None
    assert not client.handshake_done and not server.handshake_done
    assert client.server_side is False and server.server_side is True
    assert client.server_hostname == "localhost"
    assert server.server_hostname is None

    do_handshake(client, server)

    assert client.version() == server.version() == TLS_NAME[version]
    name, proto, bits = client.cipher()
    assert isinstance(name, str) and name
    assert proto == TLS_NAME[version]
    assert isinstance(bits, int) and bits >= 128
    assert client.cipher() == server.cipher()
    assert ("TLS" + version) in client.description()
    assert client.peer_certificate() == certs.server_der
    assert client.peer_certificate_chain()[0] == certs.server_der
    assert client.verify_status == 0
    assert server.peer_certificate() is None
    assert server.peer_certificate_chain() == []


def test_default_priority_negotiates_tls13(certs):
    client, server = connected_pair(certs)
    assert client.version() == "TLSv1.3"


def test_client_hello_carries_sni_for_names_only(certs):
    client, _ = make_pair(certs)
    assert client.handshake() is False
    hello = client.take_output()
    assert hello[0] == 0x16  # handshake record
    assert b"localhost" in hello

    client, _ = make_pair(certs, server_hostname="127.0.0.1")
    assert client.handshake() is False
    hello = client.take_output()
    assert hello[0] == 0x16
    assert b"127.0.0.1" not in hello  # no SNI for an IP literal (RFC 6066)


def test_handshake_needs_input_returns_false(certs):
    client, server = make_pair(certs)
    assert client.handshake() is False
    assert client.pending_output > 0
    hello = client.take_output()
    assert client.pending_output == 0
    assert client.take_output() == b""
    # feed the server half of the ClientHello: it needs more
    server.feed(hello[:10])
    assert server.handshake() is False
    server.feed(hello[10:])
    assert server.handshake() is False  # its flight is out, the client's is due
    assert server.pending_output > 0
    assert server.incoming_size == 0


# ------------------------------------------------------------------ data

@pytest.mark.parametrize("version", TLS_VERSIONS)
def test_data_both_ways(certs, version):
    client, server = connected_pair(certs, version)
    assert client.write(b"ping") == 4
    move(client, server)
    assert read_all(server) == (b"ping", False)
    assert server.write(bytearray(b"pong!")) == 5
    move(server, client)
    assert read_all(client) == (b"pong!", False)
    assert client.write(memoryview(b"xxabcxx")[2:5]) == 3
    move(client, server)
    assert read_all(server) == (b"abc", False)


def test_read_without_input_returns_empty_bytes(certs):
    client, server = connected_pair(certs)
    move(server, client)  # session tickets, if any
    assert client.read() == b""
    assert server.read() == b""


def test_large_write_is_split_into_records(certs):
    client, server = connected_pair(certs)
    payload = os.urandom(4 * MiB + 123)
    assert client.write(memoryview(payload)) == len(payload)
    wire = client.take_output()
    # 16 KiB records, each with a 5 byte header and some overhead
    assert len(wire) > len(payload)
    assert len(wire) < len(payload) * 1.01 + 4096
    server.feed(wire)
    data, eof = read_all(server)
    assert not eof
    assert sha256(data) == sha256(payload)


def test_records_fed_byte_by_byte(certs):
    client, server = connected_pair(certs)
    client.write(b"slowly but surely")
    wire = client.take_output()
    got = bytearray()
    for i in range(len(wire)):
        server.feed(wire[i:i + 1])
        chunk = server.read()
        assert chunk is not None
        got += chunk
    assert bytes(got) == b"slowly but surely"


# ------------------------------------------------------------------ closing

@pytest.mark.parametrize("version", TLS_VERSIONS)
def test_bye_shut_wr_is_a_half_close(certs, version):
    client, server = connected_pair(certs, version)
    client.write(b"last words")
    assert client.bye(G.SHUT_WR) is True
    assert client.close_notify_sent
    move(client, server)
    # data first, then None for the close_notify
    assert server.read() == b"last words"
    assert server.read() is None
    assert server.peer_closed
    assert not server.close_notify_sent
    # the other direction still works
    assert server.write(b"reply after eof") == 15
    move(server, client)
    assert read_all(client) == (b"reply after eof", False)
    server.bye(G.SHUT_WR)
    move(server, client)
    assert read_all(client) == (b"", True)
    assert client.peer_closed


def test_bye_shut_rdwr_waits_for_peer(certs):
    client, server = connected_pair(certs)
    assert client.bye(G.SHUT_RDWR) is False
    move(client, server)
    assert read_all(server) == (b"", True)
    server.bye(G.SHUT_WR)
    move(server, client)
    assert client.bye(G.SHUT_RDWR) is True
    assert client.peer_closed


def test_write_after_bye_raises(certs):
    client, server = connected_pair(certs)
    client.bye(G.SHUT_WR)
    with pytest.raises((G.GnutlsError, RuntimeError)) as info:
        client.write(b"too late")
    assert str(info.value)


def test_feed_eof_without_close_notify_is_premature(certs):
    client, server = connected_pair(certs)
    client.write(b"partial")
    move(client, server)
    server.feed_eof()
    got = bytearray()
    with pytest.raises(G.PrematureTerminationError) as info:
        for _ in range(10):
            chunk = server.read()
            assert chunk is not None, "EOF without close_notify reported as clean"
            got += chunk
    # what arrived before the truncation is still handed out first
    assert bytes(got) == b"partial"
    exc = info.value
    assert isinstance(exc, stdlib_ssl.SSLEOFError)
    assert isinstance(exc, G.GnutlsError)
    assert exc.reason == "GNUTLS_E_PREMATURE_TERMINATION"
    assert exc.library == "GnuTLS"
    assert exc.errno < 0
    assert "without close_notify" in str(exc)
    assert str(exc) == exc.strerror


@pytest.mark.parametrize("version", TLS_VERSIONS)
def test_feed_eof_in_the_middle_of_a_record_is_premature(certs, version):
    """The peer vanished halfway through a record: still a truncation, so
    still PrematureTerminationError (an SSLEOFError), like at a boundary."""
    client, server = connected_pair(certs, version)
    client.write(b"complete record")
    server.feed(client.take_output())
    assert server.read() == b"complete record"
    client.write(b"a record cut in half" * 10)
    wire = client.take_output()
    server.feed(wire[:len(wire) // 2])
    assert server.read() == b""
    server.feed_eof()
    with pytest.raises(stdlib_ssl.SSLEOFError) as info:
        server.read()
    assert isinstance(info.value, G.PrematureTerminationError), repr(info.value)


def test_feed_eof_after_close_notify_is_clean(certs):
    client, server = connected_pair(certs)
    client.write(b"done")
    client.bye(G.SHUT_WR)
    move(client, server)
    server.feed_eof()
    assert read_all(server) == (b"done", True)


# ------------------------------------------------------------------ bad input

def test_garbage_during_handshake_raises_and_queues_alert(certs):
    _, server = make_pair(certs)
    server.feed(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
    with pytest.raises(G.GnutlsError) as info:
        for _ in range(5):
            server.handshake()
    exc = info.value
    assert exc.reason.startswith("GNUTLS_E_")
    assert exc.errno < 0
    assert exc.library == "GnuTLS"
    assert str(exc) == exc.strerror and str(exc)
    alert = server.take_output()
    # a plaintext alert record: type 21, TLS version 3.x, length 2, fatal
    assert alert[:1] == b"\x15", alert
    assert alert[1] == 3
    assert alert[3:5] == b"\x00\x02"
    assert alert[5] == 2


@pytest.mark.parametrize("version", TLS_VERSIONS)
def test_corrupted_record_raises_and_alerts_peer(certs, version):
    client, server = connected_pair(certs, version)
    move(server, client)
    client.read()
    client.write(b"hello, integrity")
    wire = bytearray(client.take_output())
    wire[-3] ^= 0x55  # inside the authentication tag
    server.feed(bytes(wire))
    with pytest.raises(G.GnutlsError) as info:
        server.read()
    assert info.value.reason.startswith("GNUTLS_E_")
    assert not isinstance(info.value, G.PrematureTerminationError)
    assert server.pending_output > 0, "no alert queued for the peer"
    move(server, client)
    with pytest.raises(G.GnutlsError) as info:
        client.read()
    assert "alert" in str(info.value).lower()


# ------------------------------------------------------------------ verification

def _client_handshake_error(client, server):
    with pytest.raises(G.CertificateVerificationError) as info:
        do_handshake(client, server)
    return info.value


def test_unknown_issuer_fails_with_reason(certs):
    client, server = make_pair(certs, cert="other_server")
    exc = _client_handshake_error(client, server)
    assert re.search(r"issuer.*unknown|unknown.*issuer", str(exc), re.I), str(exc)
    assert re.search(r"issuer", exc.verify_message, re.I), exc.verify_message
    assert exc.verify_code in (2, 19, 20, 21)
    assert exc.verify_status != 0
    assert isinstance(exc, stdlib_ssl.SSLCertVerificationError)


def test_hostname_mismatch_fails_with_reason(certs):
    client, server = make_pair(certs, cert="wrong_name")
    exc = _client_handshake_error(client, server)
    assert re.search(r"match", str(exc), re.I), str(exc)
    assert re.search(r"hostname|name", exc.verify_message, re.I), exc.verify_message
    assert exc.verify_code == 62  # X509_V_ERR_HOSTNAME_MISMATCH


def test_expired_certificate_fails_with_reason(certs):
    client, server = make_pair(certs, cert="expired")
    exc = _client_handshake_error(client, server)
    assert "expired" in str(exc).lower(), str(exc)
    assert "expired" in exc.verify_message.lower()
    assert exc.verify_code == 10  # X509_V_ERR_CERT_HAS_EXPIRED


def test_rejected_certificate_sends_alert_to_server(certs):
    client, server = make_pair(certs, cert="other_server")
    _client_handshake_error(client, server)
    assert client.pending_output > 0, "client queued no alert"
    move(client, server)
    with pytest.raises(G.GnutlsError) as info:
        for _ in range(3):
            server.handshake()
    assert "alert" in str(info.value).lower()


def test_wrong_name_accepted_without_check_hostname(certs):
    client, server = connected_pair(certs, cert="wrong_name", check_hostname=False)
    assert client.peer_certificate() is not None
    assert client.verify_status == 0


def test_cert_none_accepts_unknown_issuer(certs):
    client, server = connected_pair(certs, cert="other_server", cafile=None,
                                    verify_mode=G.CERT_NONE, check_hostname=False)
    assert client.version() == "TLSv1.3"
    assert client.peer_certificate() == certs.other_server_der


def test_ip_literal_matches_ip_san(certs):
    client, server = connected_pair(certs, server_hostname="127.0.0.1")
    assert client.peer_certificate() == certs.server_der
    client, server = make_pair(certs, server_hostname="127.0.0.2")
    exc = _client_handshake_error(client, server)
    assert exc.verify_code == 62


def test_ipv6_literal_matches_ip_san(certs):
    client, server = connected_pair(certs, server_hostname="::1")
    assert client.peer_certificate() == certs.server_der


# ------------------------------------------------------------------ client certs

@pytest.mark.parametrize("version", TLS_VERSIONS)
def test_server_requires_client_certificate(certs, version):
    client, server = connected_pair(certs, version, client_cert=True,
                                    server_verify=G.CERT_REQUIRED)
    assert server.peer_certificate() == certs.client_der
    assert server.verify_status == 0

    client, server = make_pair(certs, version, client_cert=False,
                               server_verify=G.CERT_REQUIRED)
    with pytest.raises(G.GnutlsError) as info:
        do_handshake(client, server)
    assert "certificate" in str(info.value).lower(), str(info.value)
    assert not server.handshake_done
    # the client hears about it through the alert the server queued
    assert server.pending_output > 0
    move(server, client)
    with pytest.raises(G.GnutlsError) as info:
        if client.handshake_done:  # TLS 1.3: the client finished first
            client.read()
        else:
            client.handshake()
    assert "alert" in str(info.value).lower(), str(info.value)


def test_server_optional_client_certificate(certs):
    client, server = connected_pair(certs, client_cert=False,
                                    server_verify=G.CERT_OPTIONAL)
    assert server.peer_certificate() is None
    client, server = connected_pair(certs, client_cert=True,
                                    server_verify=G.CERT_OPTIONAL)
    assert server.peer_certificate() == certs.client_der


# ------------------------------------------------------------------ credentials

def test_credentials_load_verify_variants(certs):
    c = G.Credentials()
    assert c.ca_count == 0
    assert c.load_verify_file(certs.ca) == 1
    assert c.ca_count == 1
    with open(certs.ca, "rb") as f:
        pem = f.read()
    c2 = G.Credentials()
    assert c2.load_verify_mem(pem) == 1
    assert c2.load_verify_mem(certs.ca_der, der=True) == 1
    assert c2.ca_count == 2
    c3 = G.Credentials()
    assert c3.load_verify_dir(certs.ca_dir) == 1
    c4 = G.Credentials()
    assert c4.load_system_trust() >= 0
    assert c4.ca_count >= 0


def test_credentials_missing_file_names_it(certs, tmp_path):
    missing = str(tmp_path / "no-such-cert.pem")
    c = G.Credentials()
    with pytest.raises(FileNotFoundError) as info:
        c.load_cert_chain(missing, certs.server_key)
    assert "no-such-cert.pem" in str(info.value)
    with pytest.raises(FileNotFoundError) as info:
        c.load_cert_chain(certs.server_cert, str(tmp_path / "no-such-key.pem"))
    assert "no-such-key.pem" in str(info.value)
    with pytest.raises(FileNotFoundError) as info:
        c.load_verify_file(str(tmp_path / "no-such-ca.pem"))
    assert "no-such-ca.pem" in str(info.value)


def test_credentials_encrypted_key(certs):
    c = G.Credentials()
    c.load_cert_chain(certs.server_cert, certs.server_enc_key,
                      password=certs.enc_password)
    c = G.Credentials()
    c.load_cert_chain(certs.server_cert, certs.server_enc_key,
                      password=certs.enc_password.encode())
    c = G.Credentials()
    with pytest.raises(G.GnutlsError) as info:
        c.load_cert_chain(certs.server_cert, certs.server_enc_key,
                          password="wrong password")
    assert "server_enc.key" in str(info.value)


def test_credentials_combined_pem(certs):
    client = G.Session(client_creds(certs), G.Priority(agt.DEFAULT_PRIORITY),
                       server_side=False, server_hostname="localhost",
                       verify_mode=G.CERT_REQUIRED, check_hostname=True)
    sc = G.Credentials()
    sc.load_cert_chain(certs.server_combined)
    server = G.Session(sc, G.Priority(agt.DEFAULT_PRIORITY), server_side=True)
    do_handshake(client, server)
    assert client.peer_certificate() == certs.server_der


# ------------------------------------------------------------------ priority

def test_priority_string_kept():
    p = G.Priority(agt.DEFAULT_PRIORITY)
    assert p.string == agt.DEFAULT_PRIORITY
    assert agt.DEFAULT_PRIORITY == "SECURE:-RSA:%PROFILE_MEDIUM:%SERVER_PRECEDENCE"


def test_invalid_priority_names_position():
    with pytest.raises(G.GnutlsError) as info:
        G.Priority("SECURE:+BOGUS")
    msg = str(info.value)
    assert "position 7" in msg, msg
    assert "+BOGUS" in msg, msg
    assert "SECURE:+BOGUS" in msg, msg


# ------------------------------------------------------------------ x509

def _openssl_field(path, opt):
    return subprocess.run(["openssl", "x509", "-in", path, "-noout", opt],
                          capture_output=True, text=True, timeout=20,
                          check=True).stdout.strip()


def test_certificate_info(certs):
    info = G.certificate_info(certs.server_der)
    assert "CN=localhost" in info["subject"]
    assert "O=AGT Tests" in info["subject"]
    assert "CN=AGT Test CA" in info["issuer"]
    assert info["version"] == 3
    serial = _openssl_field(certs.server_cert, "-serial").split("=", 1)[1]
    assert int(info["serial"], 16) == int(serial, 16)
    end = _openssl_field(certs.server_cert, "-enddate").split("=", 1)[1]
    end_epoch = calendar.timegm(time.strptime(end, "%b %d %H:%M:%S %Y %Z"))
    assert info["not_after"] == end_epoch
    assert info["not_before"] < int(time.time()) + 60
    sans = info["subject_alt_names"]
    assert ("DNS", "localhost") in [tuple(s) for s in sans]
    ips = {ipaddress.ip_address(v.strip()) for k, v in sans if k == "IP Address"}
    assert ips == {ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1")}


def test_certificate_info_rejects_garbage():
    with pytest.raises((G.GnutlsError, ValueError)):
        G.certificate_info(b"this is not DER")
