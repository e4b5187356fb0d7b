"""The command-line tool: python -m aio_gnutls_transport client|server|demo|info."""

import os
import pty
import re
import select
import signal
import socket
import ssl as stdlib_ssl
import subprocess
import time
import types
import warnings

import pytest

from agt_testlib import (
    OPENSSL_TLS_FLAG, TLS_NAME, free_port, python_for_cli, require_binary,
    wait_listening)

ERROR_LINE = re.compile(r"^aio_gnutls_transport: error: \S.*$")


def cli(*args, input=b"", timeout=45, env=None):
    cp = subprocess.run([python_for_cli(), "-m", "aio_gnutls_transport", *args],
                        input=input, capture_output=True, timeout=timeout,
                        env=env)
    cp.out = cp.stdout.decode("utf-8", "replace")
    cp.err = cp.stderr.decode("utf-8", "replace")
    return cp


def assert_one_error_line(cp, *words):
    assert cp.returncode != 0
    assert "Traceback" not in cp.err, cp.err
    lines = [line for line in cp.err.splitlines() if line.strip()]
    errors = [line for line in lines if ERROR_LINE.match(line)]
    assert len(errors) == 1, cp.err
    for word in words:
        assert word.lower() in errors[0].lower(), (word, errors[0])
    return errors[0]


def test_help(cli_env):
    cp = cli("--help", env=cli_env)
    assert cp.returncode == 0, cp.err
    for word in ("client", "server", "demo", "info"):
        assert word in cp.out
    cp = cli("client", "--help", env=cli_env)
    assert cp.returncode == 0
    assert "--cafile" in cp.out
    cp = cli("server", "--help", env=cli_env)
    assert cp.returncode == 0
    assert "--echo" in cp.out


@pytest.mark.timeout(90)
def test_demo_shows_half_closed_exchange(cli_env):
    require_binary("openssl")
    cp = cli("demo", env=cli_env, timeout=75)
    assert cp.returncode == 0, cp.out + cp.err
    assert "Traceback" not in cp.err
    text = cp.out + cp.err
    assert re.search(r"half-clos", text, re.I), text
    assert "write_eof" in text
    assert "TLSv1.3" in text
    assert re.search(r"refused", text, re.I)


@pytest.mark.parametrize("version", ["1.2", "1.3"])
def test_client_against_openssl_server(certs, procs, cli_env, version):
    require_binary("openssl")
    port = free_port()
    proc = procs.start(["openssl", "s_server", "-accept", "127.0.0.1:%d" % port,
                        "-cert", certs.server_cert, "-key", certs.server_key,
                        OPENSSL_TLS_FLAG[version], "-rev"])
    wait_listening(("127.0.0.1", port), proc)
    cp = cli("client", "127.0.0.1", str(port), "--cafile", certs.ca,
             input=b"hello cli\n", env=cli_env)
    assert cp.returncode == 0, cp.err + proc.describe()
    assert cp.stdout == b"ilc olleh\n", (cp.stdout, cp.err)
    assert TLS_NAME[version] in cp.err
    assert re.search(r"cipher", cp.err, re.I)
    assert "CN=localhost" in cp.err
    assert "Traceback" not in cp.err


def test_client_refuses_unknown_issuer(certs, procs, cli_env):
    require_binary("openssl")
    port = free_port()
    proc = procs.start(["openssl", "s_server", "-accept", "127.0.0.1:%d" % port,
                        "-cert", certs.other_server_cert,
                        "-key", certs.other_server_key, "-rev"])
    wait_listening(("127.0.0.1", port), proc)
    cp = cli("client", "127.0.0.1", str(port), "--cafile", certs.ca,
             input=b"should not arrive\n", env=cli_env)
    line = assert_one_error_line(cp)
    assert re.search(r"issuer", line, re.I), line
    assert cp.stdout == b""


def _server_cmd(certs, port, *extra):
    return [python_for_cli(), "-m", "aio_gnutls_transport", "server",
            "--port", str(port), "--cert", certs.server_cert,
            "--key", certs.server_key, *extra]


@pytest.mark.parametrize("version", ["1.2", "1.3"])
def test_server_echo_with_stdlib_client(certs, procs, cli_env, version):
    port = free_port()
    proc = procs.start(_server_cmd(certs, port, "--echo"), env=cli_env)
    wait_listening(("127.0.0.1", port), proc)
    ctx = stdlib_ssl.create_default_context(cafile=certs.ca)
    ctx.minimum_version = ctx.maximum_version = getattr(
        stdlib_ssl.TLSVersion, "TLSv1_" + version[-1])
    payload = os.urandom(200000)
    with socket.create_connection(("127.0.0.1", port), timeout=15) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as tls:
            assert tls.version() == TLS_NAME[version]
            tls.sendall(payload)
            got = bytearray()
            while len(got) < len(payload):
                chunk = tls.recv(65536)
                assert chunk, "server closed early"
                got += chunk
            assert bytes(got) == payload
            tls.unwrap()  # close_notify both ways
    proc.popen.send_signal(signal.SIGINT)
    rc = proc.wait(15)
    assert rc == 0, proc.describe()
    assert "Traceback" not in proc.stderr()


def test_server_says_why_a_handshake_failed(certs, procs, cli_env):
    """An administrator sees which client was turned away and why; the
    server goes on serving."""
    port = free_port()
    proc = procs.start(_server_cmd(certs, port, "--echo"), env=cli_env)
    wait_listening(("127.0.0.1", port), proc)
    # a client that does not trust the server's CA rejects it
    ctx = stdlib_ssl.create_default_context(cafile=certs.other_ca)
    with socket.create_connection(("127.0.0.1", port), timeout=15) as raw:
        with pytest.raises(stdlib_ssl.SSLCertVerificationError):
            ctx.wrap_socket(raw, server_hostname="localhost")
    # a client of an old protocol version only
    old = stdlib_ssl.SSLContext(stdlib_ssl.PROTOCOL_TLS_CLIENT)
    old.check_hostname = False
    old.verify_mode = stdlib_ssl.CERT_NONE
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        old.maximum_version = stdlib_ssl.TLSVersion.TLSv1_1
    with socket.create_connection(("127.0.0.1", port), timeout=15) as raw:
        with pytest.raises(stdlib_ssl.SSLError):
            old.wrap_socket(raw, server_hostname="localhost")
    # and a good one is still served
    good = stdlib_ssl.create_default_context(cafile=certs.ca)
    with socket.create_connection(("127.0.0.1", port), timeout=15) as raw:
        with good.wrap_socket(raw, server_hostname="localhost") as tls:
            tls.sendall(b"ping\n")
            assert tls.recv(100) == b"ping\n"
    proc.popen.send_signal(signal.SIGINT)
    assert proc.wait(15) == 0, proc.describe()
    # one line per client turned away; the readiness probe, which
    # connected and hung up, is one of them
    lines = [line for line in proc.stderr().splitlines()
             if line.startswith("client 127.0.0.1:")
             and "TLS handshake failed" in line]
    assert len(lines) == 3, proc.stderr()
    assert any("during the handshake" in line for line in lines), lines
    assert any("version" in line for line in lines), lines
    assert "Traceback" not in proc.stderr()


def test_bad_arguments_give_one_error_line(cli_env):
    cp = cli("client", "127.0.0.1", env=cli_env)  # no port
    assert_one_error_line(cp)
    cp = cli("no-such-command", env=cli_env)
    assert_one_error_line(cp)
    cp = cli("client", "127.0.0.1", "not-a-port", env=cli_env)
    assert_one_error_line(cp, "port")


def test_missing_files_give_one_error_line(certs, tmp_path, cli_env):
    missing = str(tmp_path / "missing-ca.pem")
    cp = cli("client", "127.0.0.1", "1", "--cafile", missing, env=cli_env)
    assert_one_error_line(cp, "missing-ca.pem")
    missing = str(tmp_path / "missing-cert.pem")
    cp = cli("server", "--port", "0", "--cert", missing, env=cli_env)
    assert_one_error_line(cp, "missing-cert.pem")


def test_wrong_key_password_gives_one_error_line(certs, cli_env):
    # no way to type a password: an encrypted key must fail cleanly
    cp = cli("server", "--port", "0", "--cert", certs.server_cert,
             "--key", certs.server_enc_key, env=cli_env, input=b"")
    assert_one_error_line(cp)


def test_invalid_priority_gives_one_error_line(certs, cli_env):
    cp = cli("client", "127.0.0.1", "1", "--cafile", certs.ca,
             "--priority", "NORMAL:+BOGUS", env=cli_env)
    line = assert_one_error_line(cp, "position")
    assert "+BOGUS" in line


def test_connection_refused_gives_one_error_line(certs, cli_env):
    port = free_port()  # nothing listens there
    cp = cli("client", "127.0.0.1", str(port), "--cafile", certs.ca, env=cli_env)
    assert_one_error_line(cp, "refused")


# ------------------------------------------------------------------- info


def _in_cli_python(code, env):
    """Run code in the interpreter and package the CLI uses; its stdout."""
    cp = subprocess.run([python_for_cli(), "-c", code], capture_output=True,
                        timeout=30, env=env)
    assert cp.returncode == 0, cp.stderr.decode("utf-8", "replace")
    return cp.stdout.decode("utf-8", "replace")


def test_info_shows_versions_and_system_trust(cli_env):
    expected = _in_cli_python(
        "from aio_gnutls_transport import _gnutls\n"
        "print(_gnutls.GNUTLS_VERSION)\n"
        "try:\n"
        "    print(_gnutls.Credentials().load_system_trust())\n"
        "except _gnutls.GnutlsError as exc:\n"
        "    print('error', exc)\n", cli_env).splitlines()
    cp = cli("info", env=cli_env)
    assert cp.returncode == 0, cp.err
    assert "Traceback" not in cp.err
    assert re.search(r"^aio_gnutls_transport: \S", cp.out, re.M), cp.out
    assert re.search(r"^GnuTLS: (.*)$", cp.out, re.M).group(1) == expected[0]
    assert re.search(r"^p11-kit: \S", cp.out, re.M), cp.out
    assert re.search(r"^Python: \d+\.\d+", cp.out, re.M), cp.out
    trust = re.search(r"^System trust store: (.*)$", cp.out, re.M).group(1)
    if expected[1].startswith("error"):
        assert trust.startswith("cannot load: "), trust
    else:
        assert re.fullmatch(r"(\d+) certificates?", trust), trust
        assert int(trust.split()[0]) == int(expected[1])
    assert re.search(r"^PKCS#11 modules registered with p11-kit: (\d+|cannot)",
                     cp.out, re.M), cp.out
    assert re.search(r"^PKCS#11 tokens: (\d+|cannot)", cp.out, re.M), cp.out


# ----------------------------------------------------------- SoftHSM tokens

TOKEN_PIN = "4711"
TOKEN_SO_PIN = "12345678"


def _tool(argv, env):
    cp = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True,
                        timeout=30, env=env)
    assert cp.returncode == 0, "%s failed:\n%s" % (
        " ".join(argv), cp.stderr.decode("utf-8", "replace"))
    return cp.stdout.decode("utf-8", "replace")


@pytest.fixture
def cli_token(tmp_path, cli_env):
    """A fresh SoftHSM token in a private configuration (SOFTHSM2_CONF).

    The token holds nothing yet; env is the environment that sees it.
    Skipped unless softhsm2-util and p11tool are installed and p11-kit
    loads SoftHSM's module.
    """
    require_binary("softhsm2-util")
    require_binary("p11tool")
    tokens = tmp_path / "softhsm-tokens"
    tokens.mkdir()
    conf = tmp_path / "softhsm2.conf"
    conf.write_text("directories.tokendir = %s\nobjectstore.backend = file\n"
                    "log.level = ERROR\n" % tokens)
    env = dict(cli_env, SOFTHSM2_CONF=str(conf))
    label = "agt-cli-%s" % os.urandom(4).hex()
    _tool(["softhsm2-util", "--init-token", "--free", "--label", label,
           "--so-pin", TOKEN_SO_PIN, "--pin", TOKEN_PIN], env)
    urls = _tool(["p11tool", "--list-token-urls"], env).split()
    mine = [url for url in urls
            if re.search(r"[:;]token=%s(;|$)" % re.escape(label), url)]
    if not mine:
        pytest.skip("p11-kit does not load SoftHSM's PKCS#11 module")
    return types.SimpleNamespace(env=env, label=label, url=mine[0])


@pytest.fixture
def cli_token_with_key(cli_token, certs):
    """The test client certificate and its key on the SoftHSM token.

    cert and key are pkcs11: URLs; the key's needs a PIN (TOKEN_PIN).
    """
    env = dict(cli_token.env, GNUTLS_PIN=TOKEN_PIN)
    token = "pkcs11:token=" + cli_token.label
    for option, path, label in (("--load-privkey", certs.client_key, "agt-key"),
                                ("--load-certificate", certs.client_cert,
                                 "agt-cert")):
        _tool(["p11tool", "--batch", "--login", "--write", option, path,
               "--label", label, "--id", "01", token], env)
    cli_token.cert = token + ";object=agt-cert;type=cert"
    cli_token.key = token + ";object=agt-key;type=private"
    return cli_token


def test_info_lists_softhsm_token(cli_token):
    cp = cli("info", env=cli_token.env)
    assert cp.returncode == 0, cp.err
    assert "Traceback" not in cp.err
    count = int(re.search(r"^PKCS#11 tokens: (\d+)$", cp.out, re.M).group(1))
    assert count >= 1, cp.out
    listed = re.findall(r"^  (pkcs11:\S+)$", cp.out, re.M)
    assert cli_token.url in listed, cp.out
    details = cp.out.split("  %s\n" % cli_token.url, 1)[1]
    assert details.startswith("    label: %s\n" % cli_token.label), details
    assert re.search(r"^    flags: .*login-required", details, re.M), details
    module = re.search(r"^    module: (.+)$", details, re.M).group(1)

    # The same module loaded by path, as for a module p11-kit does not know:
    # its token is listed once.
    cp = cli("info", "--pkcs11-module", module, env=cli_token.env)
    assert cp.returncode == 0, cp.err
    assert "PKCS#11 modules loaded with --pkcs11-module: 1\n  %s\n" % module \
        in cp.out, cp.out
    assert re.findall(r"^  (pkcs11:\S+)$", cp.out, re.M).count(cli_token.url) \
        == 1, cp.out


def _server_requiring_client_cert(certs, procs, env):
    port = free_port()
    proc = procs.start(_server_cmd(certs, port, "--cafile", certs.ca),
                       env=env)
    wait_listening(("127.0.0.1", port), proc)
    return port, proc


@pytest.mark.timeout(90)
def test_client_key_on_token_with_pin_in_url(certs, procs, cli_token_with_key):
    token = cli_token_with_key
    port, server = _server_requiring_client_cert(certs, procs, token.env)
    cp = cli("client", "127.0.0.1", str(port), "--cafile", certs.ca,
             "--cert", token.cert, "--key", token.key + "?pin-value=" + TOKEN_PIN,
             input=b"signed by the token\n", env=token.env)
    assert cp.returncode == 0, cp.err + server.describe()
    assert cp.stdout == b"signed by the token\n", (cp.stdout, cp.err)
    assert "client certificate: CN=AGT Test Client" in server.stderr(), \
        server.describe()


def test_client_token_key_without_pin_and_terminal(cli_token_with_key):
    token = cli_token_with_key
    # fails before connecting: nothing needs to listen on the port
    cp = cli("client", "127.0.0.1", "1", "--cert", token.cert,
             "--key", token.key, input=b"", env=token.env)
    line = assert_one_error_line(cp, "PIN", "pin-value", "pin-source",
                                 token.label)
    assert "terminal" in line


def test_client_token_key_wrong_pin(cli_token_with_key):
    token = cli_token_with_key
    cp = cli("client", "127.0.0.1", "1", "--cert", token.cert,
             "--key", token.key + "?pin-value=97531", env=token.env)
    line = assert_one_error_line(cp, "wrong PIN", "not retried")
    assert "97531" not in cp.err, line


def _read_until(fd, pattern, timeout):
    """Read fd until pattern (bytes) shows up; everything read."""
    data = b""
    deadline = time.monotonic() + timeout
    while pattern not in data:
        left = deadline - time.monotonic()
        assert left > 0, "no %r within %.0f s, got %r" % (pattern, timeout, data)
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            chunk = os.read(fd, 4096)
            assert chunk, "EOF before %r, got %r" % (pattern, data)
            data += chunk
    return data


@pytest.mark.timeout(90)
def test_client_asks_for_token_pin_at_terminal(certs, procs, cli_token_with_key):
    token = cli_token_with_key
    port, server = _server_requiring_client_cert(certs, procs, token.env)
    master, slave = pty.openpty()
    try:
        # A new session has no controlling terminal: the prompt cannot go
        # to the terminal pytest runs in, only to this pseudo-terminal.
        client = subprocess.Popen(
            [python_for_cli(), "-m", "aio_gnutls_transport", "client",
             "127.0.0.1", str(port), "--cafile", certs.ca,
             "--cert", token.cert, "--key", token.key],
            stdin=slave, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            env=token.env, start_new_session=True)
        os.close(slave)
        slave = None
        try:
            err = _read_until(client.stderr.fileno(), b"PIN for", 30)
            assert token.label.encode() in err, err
            os.write(master, TOKEN_PIN.encode() + b"\n")
            err += _read_until(client.stderr.fileno(), b"verification: OK", 30)
            os.write(master, b"typed at a terminal\n")
            os.write(master, b"\x04")  # end of input at a terminal
            out, rest = client.communicate(timeout=30)
        finally:
            if client.poll() is None:
                client.kill()
                client.wait(10)
    finally:
        os.close(master)
        if slave is not None:
            os.close(slave)
    err += rest
    assert client.returncode == 0, err.decode("utf-8", "replace")
    assert out == b"typed at a terminal\n", (out, err)
    assert "client certificate: CN=AGT Test Client" in server.stderr(), \
        server.describe()


def test_server_encrypted_key_with_password_file(certs, procs, cli_env,
                                                 tmp_path):
    password_file = tmp_path / "password"
    password_file.write_text(certs.enc_password + "\n")
    port = free_port()
    proc = procs.start([python_for_cli(), "-m", "aio_gnutls_transport",
                        "server", "--port", str(port),
                        "--cert", certs.server_cert,
                        "--key", certs.server_enc_key,
                        "--password-file", str(password_file)], env=cli_env)
    wait_listening(("127.0.0.1", port), proc)
    cp = cli("client", "127.0.0.1", str(port), "--cafile", certs.ca,
             input=b"unlocked\n", env=cli_env)
    assert cp.returncode == 0, cp.err + proc.describe()
    assert cp.stdout == b"unlocked\n"


def test_encrypted_key_without_password_and_terminal(certs, cli_env):
    cp = cli("server", "--port", "0", "--cert", certs.server_cert,
             "--key", certs.server_enc_key, input=b"", env=cli_env)
    assert_one_error_line(cp, "encrypted", "--password-file")


def test_bad_pkcs11_module_gives_one_error_line(tmp_path, cli_env):
    missing = str(tmp_path / "no-such-module.so")
    cp = cli("info", "--pkcs11-module", missing, env=cli_env)
    assert_one_error_line(cp, "no-such-module.so")
