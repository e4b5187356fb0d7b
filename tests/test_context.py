"""GnutlsContext and the ssl compatibility module, without any connection."""

import asyncio
import socket
import ssl as stdlib_ssl

import pytest

import aio_gnutls_transport as agt
from aio_gnutls_transport import ssl as agt_ssl
from aio_gnutls_transport import _gnutls as G

# the stdlib SSLContext members the GnuTLS context really implements
SUPPORTED = {
    "verify_mode", "check_hostname", "load_cert_chain", "load_verify_locations",
    "load_default_certs", "protocol",
    "set_default_verify_paths",  # the system trust, like load_default_certs
    "cert_store_stats", "get_ca_certs",
    "minimum_version", "maximum_version", "set_ciphers",  # narrow the policy
    "set_alpn_protocols", "sni_callback", "set_servername_callback",
    "keylog_filename",  # this context's connections only
    "wrap_bio", "sslobject_class",  # GnutlsSSLObject over memory BIOs
    # a class attribute only used by the (unsupported) wrap_socket
    "sslsocket_class",
}


def test_public_names():
    for name in ("GnutlsContext", "GnutlsError", "GnutlsEventLoopPolicy",
                 "GnutlsEventLoop", "GnutlsObject", "GnutlsHandshakeProtocol",
                 "GnutlsTransport", "DEFAULT_PRIORITY", "ssl",
                 "CertificateVerificationError", "PrematureTerminationError"):
        assert hasattr(agt, name), name
    assert agt.DEFAULT_PRIORITY == "SECURE:-RSA:%PROFILE_MEDIUM:%SERVER_PRECEDENCE"


def test_compat_module_reuses_stdlib_names():
    assert agt_ssl.CERT_NONE == stdlib_ssl.CERT_NONE
    assert agt_ssl.CERT_OPTIONAL == stdlib_ssl.CERT_OPTIONAL
    assert agt_ssl.CERT_REQUIRED == stdlib_ssl.CERT_REQUIRED
    assert agt_ssl.VerifyMode is stdlib_ssl.VerifyMode
    assert agt_ssl.Purpose is stdlib_ssl.Purpose
    assert agt_ssl.PROTOCOL_TLS_CLIENT == stdlib_ssl.PROTOCOL_TLS_CLIENT
    assert agt_ssl.PROTOCOL_TLS_SERVER == stdlib_ssl.PROTOCOL_TLS_SERVER
    assert agt_ssl.SSLError is stdlib_ssl.SSLError
    assert agt_ssl.SSLCertVerificationError is stdlib_ssl.SSLCertVerificationError
    assert agt_ssl.SSLEOFError is stdlib_ssl.SSLEOFError
    assert agt_ssl.GnutlsError is agt.GnutlsError
    assert issubclass(agt_ssl.SSLContext, agt.GnutlsContext)


def test_pem_der_conversion(certs):
    with open(certs.server_cert) as f:
        pem = f.read()
    assert agt_ssl.PEM_cert_to_DER_cert(pem) == certs.server_der
    assert agt_ssl.PEM_cert_to_DER_cert(
        agt_ssl.DER_cert_to_PEM_cert(certs.server_der)) == certs.server_der


def test_context_is_a_stdlib_context():
    ctx = agt_ssl.SSLContext(agt_ssl.PROTOCOL_TLS_CLIENT)
    assert isinstance(ctx, stdlib_ssl.SSLContext)
    assert isinstance(ctx, agt.GnutlsContext)
    assert ctx.protocol == stdlib_ssl.PROTOCOL_TLS_CLIENT
    default = agt.GnutlsContext()
    assert default.protocol == stdlib_ssl.PROTOCOL_TLS_CLIENT


def test_client_defaults_follow_stdlib():
    ctx = agt_ssl.SSLContext(agt_ssl.PROTOCOL_TLS_CLIENT)
    std = stdlib_ssl.SSLContext(stdlib_ssl.PROTOCOL_TLS_CLIENT)
    assert ctx.verify_mode == std.verify_mode == stdlib_ssl.CERT_REQUIRED
    assert ctx.check_hostname is std.check_hostname is True


def test_server_defaults_follow_stdlib():
    ctx = agt_ssl.SSLContext(agt_ssl.PROTOCOL_TLS_SERVER)
    std = stdlib_ssl.SSLContext(stdlib_ssl.PROTOCOL_TLS_SERVER)
    assert ctx.verify_mode == std.verify_mode == stdlib_ssl.CERT_NONE
    assert ctx.check_hostname is std.check_hostname is False


def test_cert_none_with_check_hostname_is_refused():
    ctx = agt_ssl.SSLContext(agt_ssl.PROTOCOL_TLS_CLIENT)
    with pytest.raises(ValueError) as info:
        ctx.verify_mode = agt_ssl.CERT_NONE
    assert "check_hostname" in str(info.value)
    assert ctx.verify_mode == agt_ssl.CERT_REQUIRED
    ctx.check_hostname = False
    ctx.verify_mode = agt_ssl.CERT_NONE
    assert ctx.verify_mode == agt_ssl.CERT_NONE
    assert isinstance(ctx.verify_mode, agt_ssl.VerifyMode)


def test_check_hostname_bumps_cert_none():
    ctx = agt_ssl.SSLContext(agt_ssl.PROTOCOL_TLS_SERVER)
    assert ctx.verify_mode == agt_ssl.CERT_NONE
    ctx.check_hostname = True
    assert ctx.verify_mode == agt_ssl.CERT_REQUIRED


def test_create_default_context(certs):
    ctx = agt_ssl.create_default_context(cafile=certs.ca)
    assert isinstance(ctx, agt.GnutlsContext)
    assert ctx.verify_mode == agt_ssl.CERT_REQUIRED
    assert ctx.check_hostname is True
    srv = agt_ssl.create_default_context(agt_ssl.Purpose.CLIENT_AUTH)
    assert isinstance(srv, agt.GnutlsContext)
    assert srv.verify_mode == agt_ssl.CERT_NONE
    assert srv.check_hostname is False
    with open(certs.ca) as f:
        pem = f.read()
    assert isinstance(agt_ssl.create_default_context(cadata=pem), agt.GnutlsContext)
    assert isinstance(agt_ssl.create_default_context(capath=certs.ca_dir),
                      agt.GnutlsContext)


def test_load_verify_locations_variants(certs):
    ctx = agt_ssl.SSLContext(agt_ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(cafile=certs.ca)
    with open(certs.ca) as f:
        ctx.load_verify_locations(cadata=f.read())         # str = PEM
    ctx.load_verify_locations(cadata=certs.ca_der)         # bytes = DER
    ctx.load_verify_locations(capath=certs.ca_dir)
    # a PathLike works like a str
    import pathlib
    ctx.load_verify_locations(pathlib.Path(certs.ca))


def test_load_verify_locations_missing_file(tmp_path):
    ctx = agt_ssl.SSLContext(agt_ssl.PROTOCOL_TLS_CLIENT)
    missing = str(tmp_path / "missing-ca.pem")
    with pytest.raises(FileNotFoundError) as info:
        ctx.load_verify_locations(missing)
    assert "missing-ca.pem" in str(info.value)


def test_load_cert_chain_missing_files(certs, tmp_path):
    ctx = agt_ssl.SSLContext(agt_ssl.PROTOCOL_TLS_SERVER)
    with pytest.raises(FileNotFoundError) as info:
        ctx.load_cert_chain(str(tmp_path / "missing-cert.pem"), certs.server_key)
    assert "missing-cert.pem" in str(info.value)
    with pytest.raises(FileNotFoundError) as info:
        ctx.load_cert_chain(certs.server_cert, str(tmp_path / "missing-key.pem"))
    assert "missing-key.pem" in str(info.value)


@pytest.mark.parametrize("kind", ["str", "bytes", "callable"])
def test_load_cert_chain_password_forms(certs, kind):
    pw = certs.enc_password
    password = {"str": pw, "bytes": pw.encode(), "callable": lambda: pw}[kind]
    ctx = agt_ssl.SSLContext(agt_ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(certs.server_cert, certs.server_enc_key, password=password)


def test_load_cert_chain_wrong_password(certs):
    ctx = agt_ssl.SSLContext(agt_ssl.PROTOCOL_TLS_SERVER)
    with pytest.raises(stdlib_ssl.SSLError) as info:
        ctx.load_cert_chain(certs.server_cert, certs.server_enc_key,
                            password="not the password")
    assert isinstance(info.value, agt.GnutlsError)
    assert "server_enc.key" in str(info.value), str(info.value)


def test_load_cert_chain_key_mismatch(certs):
    ctx = agt_ssl.SSLContext(agt_ssl.PROTOCOL_TLS_SERVER)
    with pytest.raises(stdlib_ssl.SSLError) as info:
        ctx.load_cert_chain(certs.server_cert, certs.client_key)
    assert isinstance(info.value, agt.GnutlsError)
    assert str(info.value)


def test_gnutls_set_priority_checks_at_once():
    ctx = agt_ssl.SSLContext(agt_ssl.PROTOCOL_TLS_CLIENT)
    ctx.gnutls_set_priority("NORMAL:-VERS-ALL:+VERS-TLS1.2")
    with pytest.raises(agt.GnutlsError) as info:
        ctx.gnutls_set_priority("NORMAL:+NO-SUCH-THING")
    msg = str(info.value)
    assert "position 7" in msg, msg
    assert "+NO-SUCH-THING" in msg, msg


def test_new_session_builds_engine_sessions(certs):
    ctx = agt_ssl.create_default_context(cafile=certs.ca)
    s = ctx._new_session(False, "localhost")
    assert isinstance(s, G.Session)
    assert s.server_side is False
    assert s.server_hostname == "localhost"


@pytest.mark.parametrize("name", [
    n for n in sorted(dir(stdlib_ssl.SSLContext))
    if not n.startswith("_") and n not in SUPPORTED])
def test_every_other_stdlib_member_is_overridden(name):
    # inherited unchanged, a stdlib member would act on an OpenSSL context the
    # GnuTLS engine never looks at: a silent no-op
    assert getattr(agt.GnutlsContext, name) is not getattr(stdlib_ssl.SSLContext, name)


@pytest.mark.parametrize("call", [
    ("wrap_socket", lambda c: c.wrap_socket(socket.socket())),
    ("set_npn_protocols", lambda c: c.set_npn_protocols(["h2"])),
    ("get_ciphers", lambda c: c.get_ciphers()),
    ("load_dh_params", lambda c: c.load_dh_params("dh.pem")),
    ("set_ecdh_curve", lambda c: c.set_ecdh_curve("prime256v1")),
    ("session_stats", lambda c: c.session_stats()),
], ids=lambda c: c[0])
def test_unsupported_methods_raise(call):
    name, fn = call
    ctx = agt_ssl.SSLContext(agt_ssl.PROTOCOL_TLS_CLIENT)
    with pytest.raises(NotImplementedError) as info:
        fn(ctx)
    assert name in str(info.value)
    assert "not supported" in str(info.value)


@pytest.mark.parametrize("attr,value", [
    ("options", stdlib_ssl.OP_NO_TICKET),
    ("verify_flags", stdlib_ssl.VERIFY_X509_STRICT),
    ("post_handshake_auth", True),
    ("num_tickets", 1),
    ("hostname_checks_common_name", True),
])
def test_unsupported_attributes_refuse_to_be_set(attr, value):
    ctx = agt_ssl.SSLContext(agt_ssl.PROTOCOL_TLS_CLIENT)
    with pytest.raises(NotImplementedError) as info:
        setattr(ctx, attr, value)
    assert attr in str(info.value)


def test_policy_makes_gnutls_loops():
    policy = agt.GnutlsEventLoopPolicy()
    assert isinstance(policy, asyncio.DefaultEventLoopPolicy)
    loop = policy.new_event_loop()
    try:
        assert isinstance(loop, agt.GnutlsEventLoop)
        assert isinstance(loop, asyncio.SelectorEventLoop)
    finally:
        loop.close()
