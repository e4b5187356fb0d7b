"""The command-line tool: python -m aio_gnutls_transport client|server|demo."""

import os
import re
import signal
import socket
import ssl as stdlib_ssl
import subprocess

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
    for word in ("client", "server", "demo"):
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
