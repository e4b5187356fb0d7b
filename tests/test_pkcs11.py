"""PKCS#11 tokens through GnuTLS: keys that never leave a SoftHSM2 token.

The ``softhsm`` fixture makes a private SoftHSM2 token holding the client's
and the server's keys (sensitive, not extractable) and certificates, and the
test CA marked as a trusted CA.  GnuTLS initialises PKCS#11 once per
process, and a token stays logged in for the whole process once a PIN was
accepted, so every test here runs its TLS work in a fresh Python process
(the ``child_*`` functions below, started by run_child()) with the token's
SOFTHSM2_CONF; the test process itself never loads a PKCS#11 module.  The
child reports what it observed as JSON and the test asserts on that.

Counting the PIN attempts: p11-kit logs every PKCS#11 call a module gets
when its configuration says ``log-calls: yes``.  p11-kit ignores per-user
configuration for root, so the child runs in a private mount namespace in
which a directory with that configuration is bind-mounted over p11-kit's
module directories; the machine's configuration is not touched.
"""

import asyncio
import os
import re
import signal
import socket
import ssl as stdlib_ssl
import sys
import tempfile
import time
import traceback
from types import SimpleNamespace

import pytest

import agt_testlib
from agt_testlib import (
    TLS_NAME, child_args, close_server, close_writer, describe_error,
    our_client_ctx, our_server_ctx, run, std_client_ctx, wait_for)

WRONG_PIN = "0000"
# where p11-kit looks for module configuration (system-wide)
P11KIT_MODULE_DIRS = ("/usr/share/p11-kit/modules", "/etc/pkcs11/modules")


# ------------------------------------------------------------------ plumbing

def run_child(softhsm, certs, name, *args, wrap=(), timeout=45.0):
    """Run child_<name>(certs, token, *args) in a new Python process that
    sees the SoftHSM token; *wrap* is put in front of its command line.
    Returns (result, stderr)."""
    return agt_testlib.run_child(
        "test_pkcs11", name, child_args(certs), child_args(softhsm), *args,
        env=softhsm.env, wrap=wrap, timeout=timeout)


def p11kit_config(tmp_path, mount_namespace, softhsm, lines):
    """A command-line prefix that runs a child with p11-kit's module
    configuration replaced by SoftHSM alone, configured with *lines* (a
    list of option lines), or by nothing at all (*lines* None)."""
    targets = [d for d in P11KIT_MODULE_DIRS if os.path.isdir(d)]
    if not targets:
        pytest.skip("p11-kit's module directories were not found (%s)"
                    % ", ".join(P11KIT_MODULE_DIRS))
    moddir = tmp_path / "p11-kit-modules"
    moddir.mkdir()
    if lines is not None:
        (moddir / "softhsm2.module").write_text(
            "module: %s\n%s" % (softhsm.module,
                                "".join(line + "\n" for line in lines)))
    return mount_namespace([(moddir, t) for t in targets], [])


def login_attempts(stderr):
    """The C_Login calls in a p11-kit call log: (count, their results)."""
    calls = [line for line in stderr.splitlines() if line.strip() == "C_Login"]
    results = re.findall(r"^C_Login = (\w+)", stderr, re.M)
    return len(calls), results


def token_child(function):
    """A child function: its first two arguments arrive as dicts."""
    def wrapper(certs, token, *args):
        return function(SimpleNamespace(**certs), SimpleNamespace(**token),
                        *args)
    wrapper.__name__ = function.__name__
    wrapper.__doc__ = function.__doc__
    return wrapper


def _client_key(token, pin_form, tmpdir):
    """(key URL, password) for the client's token key with the PIN given
    in the form *pin_form*; a callable counts its calls in .calls."""
    url, pin = token.client_key_url, token.pin
    if pin_form == "str":
        return url, pin
    if pin_form == "bytes":
        return url, pin.encode()
    if pin_form == "callable":
        calls = []

        def password():
            calls.append(1)
            return pin
        password.calls = calls
        return url, password
    if pin_form == "pin-value":
        return url + "?pin-value=" + pin, None
    if pin_form == "pin-source":
        # GnuTLS takes the file's whole content as the PIN: no newline
        path = os.path.join(tmpdir, "pin.txt")
        with open(path, "w") as f:
            f.write(pin)
        return url + "?pin-source=" + path, None
    raise ValueError(pin_form)


def _echo_server(served):
    async def handler(reader, writer):
        obj = writer.get_extra_info("ssl_object")
        served.append(obj.getpeercert())
        try:
            line = await reader.readline()
            writer.write(b"echo: " + line)
            await writer.drain()
        except (stdlib_ssl.SSLError, ConnectionError):
            pass
        finally:
            writer.close()
    return handler


async def _talk(port, ctx, text=b"from the token\n"):
    reader, writer = await wait_for(asyncio.open_connection(
        "127.0.0.1", port, ssl=ctx, server_hostname="localhost"), 15, "connect")
    try:
        writer.write(text)
        line = await wait_for(reader.readline(), 10, "echo")
        obj = writer.get_extra_info("ssl_object")
        return line, obj.version(), obj.getpeercert(True)
    finally:
        await close_writer(writer)


def _requiring_server_ctx(certs, version=None):
    return our_server_ctx(certs, version, cafile="ca",
                          verify_mode=stdlib_ssl.CERT_REQUIRED)


def _subject_cn(peercert):
    return [v for rdn in peercert["subject"] for k, v in rdn if k == "commonName"]


# ------------------------------------------------------------------ children

@token_child
def child_client_cert(certs, token, cert_from, pin_form, version):
    """Our server requiring a client certificate; our client's key (and
    certificate, unless *cert_from* is 'file') on the token."""
    with tempfile.TemporaryDirectory() as tmpdir:
        key, password = _client_key(token, pin_form, tmpdir)
        cert = certs.client_cert if cert_from == "file" else token.client_cert_url
        ctx = our_client_ctx(certs, version)
        ctx.load_cert_chain(cert, key, password)
        calls = len(password.calls) if callable(password) else None

        async def main():
            served = []
            server = await asyncio.start_server(
                _echo_server(served), "127.0.0.1", 0,
                ssl=_requiring_server_ctx(certs, version))
            try:
                port = server.sockets[0].getsockname()[1]
                line, got_version, _ = await _talk(port, ctx)
                return line, got_version, served
            finally:
                await close_server(server)

        line, got_version, served = run(main())
    return {"echo": line.decode(), "version": got_version,
            "client_subjects": [_subject_cn(p) for p in served],
            "password_calls": calls}


@token_child
def child_server_key_on_token(certs, token, version):
    """Our server's certificate and key on the token; a stdlib client."""
    ctx = agt_testlib.agt_ssl.SSLContext(agt_testlib.agt_ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(token.server_cert_url, token.server_key_url,
                        password=token.pin)

    async def main():
        served = []
        server = await asyncio.start_server(_echo_server(served), "127.0.0.1",
                                            0, ssl=ctx)
        try:
            port = server.sockets[0].getsockname()[1]
            cctx = std_client_ctx(certs, version)
            reader, writer = await wait_for(asyncio.open_connection(
                "127.0.0.1", port, ssl=cctx, server_hostname="localhost"), 15)
            writer.write(b"stdlib client\n")
            line = await wait_for(reader.readline(), 10)
            obj = writer.get_extra_info("ssl_object")
            peer = obj.getpeercert()
            der = obj.getpeercert(True)
            got_version = obj.version()
            await close_writer(writer)
            return line, peer, der, got_version
        finally:
            await close_server(server)

    line, peer, der, got_version = run(main())
    with open(certs.server_cert) as f:
        expected = stdlib_ssl.PEM_cert_to_DER_cert(f.read())
    return {"echo": line.decode(), "server_subject": _subject_cn(peer),
            "server_cert_matches": der == expected, "version": got_version}


@token_child
def child_load_error(certs, token, case):
    """load_cert_chain() with the token key in a failing way."""
    ctx = agt_testlib.agt_ssl.SSLContext(agt_testlib.agt_ssl.PROTOCOL_TLS_CLIENT)
    cert, key, password = token.client_cert_url, token.client_key_url, None
    calls = []
    if case == "wrong-pin":
        password = WRONG_PIN
    elif case == "wrong-pin-callable":
        def password():
            calls.append(1)
            return WRONG_PIN
    elif case == "wrong-pin-url":
        key += "?pin-value=" + WRONG_PIN
    elif case == "pin-source-newline":
        tmpdir = tempfile.TemporaryDirectory()
        path = os.path.join(tmpdir.name, "pin.txt")
        with open(path, "w") as f:
            f.write(token.pin + "\n")
        key += "?pin-source=" + path
    elif case == "no-pin":
        pass
    elif case == "no-token":
        key = "pkcs11:token=agt-no-such-token;object=client;type=private"
        password = token.pin
    elif case == "no-object":
        key = token.token_url + ";object=agt-no-such-key;type=private"
        password = token.pin
    elif case == "no-cert-object":
        cert = token.token_url + ";object=agt-no-such-cert;type=cert"
        password = token.pin
    else:
        raise ValueError(case)
    try:
        ctx.load_cert_chain(cert, key, password)
    except Exception as exc:
        result = describe_error(exc)
    else:
        result = {"type": None}
    result["password_calls"] = len(calls)
    result["cert"], result["key"] = cert, key
    # the PIN being right, the same process can still use the key
    if case.startswith("wrong-pin") or case.startswith("pin-source"):
        ctx.load_cert_chain(token.client_cert_url, token.client_key_url,
                            token.pin)
        result["then_right_pin_loaded"] = True
    return result


@token_child
def child_fork(certs, token, used_before_fork):
    """Token credentials loaded, then os.fork(): the forked process and the
    original both complete TLS connections signing with the token key."""
    ctx = our_client_ctx(certs)
    ctx.load_cert_chain(token.client_cert_url, token.client_key_url,
                        password=token.pin)
    sctx = _requiring_server_ctx(certs)
    served = []

    async def serve_and(client_side):
        server = await asyncio.start_server(_echo_server(served), sock=listener,
                                            ssl=sctx)
        try:
            return await client_side()
        finally:
            await close_server(server)

    before = None
    if used_before_fork:
        listener = socket.create_server(("127.0.0.1", 0))
        port = listener.getsockname()[1]
        before = run(serve_and(lambda: _talk(port, ctx, b"before fork\n")))[0]

    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    pid = os.fork()
    if pid == 0:
        # the forked process: a loop of its own, the credentials inherited
        code = 3
        try:
            signal.alarm(20)
            listener.close()
            line = run(_talk(port, ctx, b"from the forked process\n"))[0]
            code = 0 if line == b"echo: from the forked process\n" else 2
        except BaseException:
            traceback.print_exc()
        finally:
            sys.stderr.flush()
            os._exit(code)

    async def parent_side():
        deadline = time.monotonic() + 25
        status = None
        while status is None:
            done, st = os.waitpid(pid, os.WNOHANG)
            if done:
                status = st
            elif time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                status = "killed after 25 s"
            else:
                await asyncio.sleep(0.02)
        # and the original process still signs with the token key
        line = (await _talk(port, ctx, b"after fork\n"))[0]
        return status, line

    status, after = run(serve_and(parent_side))
    return {
        "before": before.decode() if before else None,
        "child_exit": (os.waitstatus_to_exitcode(status)
                       if isinstance(status, int) else status),
        "after": after.decode(),
        "client_subjects": [_subject_cn(p) for p in served],
    }


@token_child
def child_trust_url(certs, token, url):
    """A client whose only trust anchors come from a pkcs11: URL."""
    ctx = agt_testlib.agt_ssl.SSLContext(agt_testlib.agt_ssl.PROTOCOL_TLS_CLIENT)
    try:
        ctx.load_verify_locations(url)
    except Exception as exc:
        return {"load_error": describe_error(exc)}

    async def main():
        server = await asyncio.start_server(_echo_server([]), "127.0.0.1", 0,
                                            ssl=our_server_ctx(certs))
        port = server.sockets[0].getsockname()[1]
        try:
            try:
                line, _, der = await _talk(port, ctx)
                return {"echo": line.decode(), "peer_der": der.hex()}
            except Exception as exc:
                return {"connect_error": describe_error(exc)}
        finally:
            await close_server(server)

    result = run(main())
    result["stats"] = ctx.cert_store_stats()
    result["ca_ders"] = [d.hex() for d in ctx.get_ca_certs(binary_form=True)]
    return result


@token_child
def child_load_module(certs, token, path, registered):
    """load_pkcs11_module(path); then, if it loaded, the client key on the
    token is usable (when p11-kit does not register SoftHSM, only that call
    makes the token reachable)."""
    import aio_gnutls_transport as agt
    result = {}

    def try_key():
        ctx = our_client_ctx(certs)
        try:
            ctx.load_cert_chain(token.client_cert_url, token.client_key_url,
                                token.pin)
        except agt.GnutlsError as exc:
            return describe_error(exc)
        return None

    if not registered:
        result["before"] = try_key()
    try:
        agt.load_pkcs11_module(path)
    except Exception as exc:
        result["error"] = describe_error(exc)
        return result
    result["error"] = None
    result["after"] = try_key()
    return result


# ------------------------------------------------------------------ the token

def _objects(listing):
    """p11tool --list-all output as a list of {field: value}."""
    objects = []
    for block in re.split(r"^Object \d+:\s*$", listing, flags=re.M)[1:]:
        fields = dict(re.findall(r"^\s+([^:\n]+):\s*(.*)$", block, re.M))
        objects.append(fields)
    return objects


def test_token_keys_are_sensitive_and_not_extractable(softhsm):
    objects = _objects(softhsm.listing)
    keys = {o["Label"]: o for o in objects if o["Type"].startswith("Private key")}
    assert sorted(keys) == ["client", "server"], softhsm.listing
    for label, key in keys.items():
        flags = key.get("Flags", "")
        assert "CKA_SENSITIVE" in flags, (label, flags)
        assert "CKA_EXTRACTABLE" not in flags, (label, flags)
        assert "CKA_PRIVATE" in flags, (label, flags)
    ca = [o for o in objects if o["Label"] == "agt-ca"]
    assert len(ca) == 1, softhsm.listing
    assert "CKA_TRUSTED" in ca[0]["Flags"], ca[0]
    assert "CKA_CERTIFICATE_CATEGORY=CA" in ca[0]["Flags"], ca[0]
    plain = [o for o in objects if o["Label"] == "agt-ca-untrusted"]
    assert len(plain) == 1, softhsm.listing
    assert "CKA_TRUSTED" not in plain[0].get("Flags", ""), plain[0]


# ------------------------------------------------------------------ client key

@pytest.mark.parametrize("version", agt_testlib.TLS_VERSIONS,
                         ids=lambda v: "tls" + v)
def test_client_cert_and_key_on_token(softhsm, certs, version):
    result, _ = run_child(softhsm, certs, "client_cert", "token", "str", version)
    assert result["echo"] == "echo: from the token\n"
    assert result["version"] == TLS_NAME[version]
    # the server verified the certificate the token supplied
    assert result["client_subjects"] == [["AGT Test Client"]]


@pytest.mark.parametrize("pin_form",
                         ["str", "bytes", "callable", "pin-value", "pin-source"])
def test_pin_forms(softhsm, certs, pin_form):
    result, _ = run_child(softhsm, certs, "client_cert", "token", pin_form, None)
    assert result["echo"] == "echo: from the token\n"
    assert result["client_subjects"] == [["AGT Test Client"]]
    if pin_form == "callable":
        assert result["password_calls"] == 1


def test_cert_from_file_key_on_token(softhsm, certs):
    result, _ = run_child(softhsm, certs, "client_cert", "file", "str", None)
    assert result["echo"] == "echo: from the token\n"
    assert result["client_subjects"] == [["AGT Test Client"]]


# ------------------------------------------------------------------ server key

@pytest.mark.parametrize("version", agt_testlib.TLS_VERSIONS,
                         ids=lambda v: "tls" + v)
def test_server_key_on_token_verified_by_stdlib_client(softhsm, certs, version):
    result, _ = run_child(softhsm, certs, "server_key_on_token", version)
    assert result["echo"] == "echo: stdlib client\n"
    assert result["server_subject"] == ["localhost"]
    assert result["server_cert_matches"] is True
    assert result["version"] == TLS_NAME[version]


# ------------------------------------------------------------------ errors

@pytest.mark.parametrize("case", ["wrong-pin", "wrong-pin-callable"])
def test_wrong_pin_is_tried_once(softhsm, certs, mount_namespace, tmp_path, case):
    """A rejected PIN is not tried again (each try brings a real card closer
    to locking itself): p11-kit's call log shows exactly one C_Login."""
    wrap = p11kit_config(tmp_path, mount_namespace, softhsm, ["log-calls: yes"])
    result, err = run_child(softhsm, certs, "load_error", case, wrap=wrap)
    assert result["type"] == "GnutlsError", result
    assert result["ssl_error"] is True
    assert result["reason"] == "GNUTLS_E_PKCS11_PIN_ERROR", result
    assert "wrong PIN" in result["message"], result["message"]
    assert result["key"] in result["message"]
    if case == "wrong-pin-callable":
        assert result["password_calls"] == 1
    assert result["then_right_pin_loaded"] is True
    calls, outcomes = login_attempts(err)
    # one login with the wrong PIN, then one with the right one
    assert calls == 2, err[-4000:]
    assert outcomes == ["CKR_PIN_INCORRECT", "CKR_OK"], outcomes


def test_wrong_pin_in_url_is_tried_once(softhsm, certs, mount_namespace,
                                        tmp_path):
    wrap = p11kit_config(tmp_path, mount_namespace, softhsm, ["log-calls: yes"])
    result, err = run_child(softhsm, certs, "load_error", "wrong-pin-url",
                            wrap=wrap)
    assert result["type"] == "GnutlsError", result
    assert result["reason"] == "GNUTLS_E_PKCS11_PIN_ERROR", result
    message = result["message"]
    assert "refused the PIN given in the URL" in message, message
    # the URL is named, its PIN is not shown
    assert softhsm.client_key_url + "?pin-value=***" in message, message
    assert "pin-value=" + WRONG_PIN not in message, message
    calls, outcomes = login_attempts(err)
    assert calls == 2, err[-4000:]
    assert outcomes == ["CKR_PIN_INCORRECT", "CKR_OK"], outcomes


def test_pin_source_with_newline_is_refused_with_a_hint(softhsm, certs):
    """GnuTLS takes a pin-source file's whole content as the PIN, newline
    included; the error says so."""
    result, _ = run_child(softhsm, certs, "load_error", "pin-source-newline")
    assert result["type"] == "GnutlsError", result
    assert result["reason"] == "GNUTLS_E_PKCS11_PIN_ERROR", result
    assert "trailing newline" in result["message"], result["message"]
    assert result["key"] in result["message"]
    assert result["then_right_pin_loaded"] is True


def test_wrong_pin_message(softhsm, certs):
    """The same without the call log (runs where mounts are not allowed)."""
    result, _ = run_child(softhsm, certs, "load_error", "wrong-pin")
    assert result["type"] == "GnutlsError", result
    assert result["reason"] == "GNUTLS_E_PKCS11_PIN_ERROR", result
    assert "wrong PIN" in result["message"], result["message"]
    assert result["then_right_pin_loaded"] is True


def test_missing_pin_says_a_pin_is_needed(softhsm, certs):
    result, _ = run_child(softhsm, certs, "load_error", "no-pin")
    assert result["type"] == "GnutlsError", result
    assert result["reason"] == "GNUTLS_E_PKCS11_PIN_ERROR", result
    message = result["message"]
    assert re.search(r"needs a PIN", message), message
    assert result["key"] in message
    assert "wrong" not in message.lower(), message


@pytest.mark.parametrize("case", ["no-token", "no-object", "no-cert-object"])
def test_missing_token_or_object_names_the_url(softhsm, certs, case):
    result, _ = run_child(softhsm, certs, "load_error", case)
    assert result["type"] == "GnutlsError", result
    assert result["ssl_error"] is True
    missing = result["cert"] if case == "no-cert-object" else result["key"]
    assert missing in result["message"], result["message"]
    assert "PIN" not in result["message"], result["message"]


# ------------------------------------------------------------------ trust

def test_trust_anchor_object_on_token(softhsm, certs):
    """A client whose only trust is the CA certificate object on the token."""
    result, _ = run_child(softhsm, certs, "trust_url", softhsm.ca_url)
    assert "load_error" not in result, result
    assert result.get("echo") == "echo: from the token\n", result
    assert result["stats"]["x509_ca"] == 1
    assert result["ca_ders"] == [certs.ca_der.hex()]


def test_trust_url_of_object_not_marked_trusted_is_refused(softhsm, certs):
    """The same CA certificate, stored on the token without CKA_TRUSTED, is
    no trust anchor: loading it fails, naming the URL, rather than leaving
    a context that trusts nothing."""
    url = softhsm.untrusted_ca_url
    result, _ = run_child(softhsm, certs, "trust_url", url)
    error = result.get("load_error")
    assert error is not None, result
    assert error["type"] == "GnutlsError", error
    assert url in error["message"], error


def test_trust_url_without_object_names_it(softhsm, certs):
    url = softhsm.token_url + ";object=agt-no-such-ca;type=cert"
    result, _ = run_child(softhsm, certs, "trust_url", url)
    error = result.get("load_error")
    assert error is not None, result
    assert error["type"] == "GnutlsError", error
    assert url in error["message"], error


def test_trust_whole_token_of_a_trust_module(softhsm, certs, mount_namespace,
                                             tmp_path):
    """A token URL (no object) as trust: the CA certificates a p11-kit
    trust-policy module marks trusted are the anchors."""
    wrap = p11kit_config(tmp_path, mount_namespace, softhsm, ["trust-policy: yes"])
    result, _ = run_child(softhsm, certs, "trust_url", softhsm.token_url,
                          wrap=wrap)
    assert "load_error" not in result, result
    assert result.get("echo") == "echo: from the token\n", result
    assert result["stats"]["x509_ca"] == 1


# ------------------------------------------------------------------ modules

def test_load_pkcs11_module_missing_names_path(softhsm, certs):
    path = "/nonexistent/agt-no-such-module.so"
    result, _ = run_child(softhsm, certs, "load_module", path, True)
    error = result["error"]
    assert error is not None, result
    assert error["type"] == "GnutlsError", error
    assert path in error["message"], error


def test_load_pkcs11_module_softhsm_registered(softhsm, certs):
    """SoftHSM registered with p11-kit, loading it again is harmless."""
    result, _ = run_child(softhsm, certs, "load_module", softhsm.module, True)
    assert result["error"] is None, result
    assert result["after"] is None, result


def test_load_pkcs11_module_makes_token_reachable(softhsm, certs,
                                                  mount_namespace, tmp_path):
    """With p11-kit registering no module at all, the token is unreachable
    until load_pkcs11_module() loads SoftHSM by its path."""
    wrap = p11kit_config(tmp_path, mount_namespace, softhsm, None)
    result, _ = run_child(softhsm, certs, "load_module", softhsm.module, False,
                          wrap=wrap)
    assert result["before"] is not None, result
    assert result["before"]["type"] == "GnutlsError", result
    assert result["error"] is None, result
    assert result["after"] is None, result


# ------------------------------------------------------------------ fork

@pytest.mark.parametrize("used_before_fork", [False, True],
                         ids=["fresh", "used"])
def test_token_key_after_fork(softhsm, certs, used_before_fork):
    result, _ = run_child(softhsm, certs, "fork", used_before_fork)
    assert result["child_exit"] == 0, result
    assert result["after"] == "echo: after fork\n"
    if used_before_fork:
        assert result["before"] == "echo: before fork\n"
    n = 3 if used_before_fork else 2
    assert result["client_subjects"] == [["AGT Test Client"]] * n
