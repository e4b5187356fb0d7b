"""Shared helpers for the aio_gnutls_transport test suite.

Nothing here is a test.  The fixtures built on these helpers live in
conftest.py; test modules import the plain functions and classes directly.
"""

import asyncio
import contextlib
import hashlib
import io
import json
import os
import shlex
import shutil
import socket
import ssl as stdlib_ssl
import subprocess
import sys
import tempfile
import time

import pytest

import aio_gnutls_transport as agt
from aio_gnutls_transport import ssl as agt_ssl

# Per-test time budget in seconds; conftest.py sets it from the ``timeout``
# marker before each test so run() can stop a stuck coroutine cleanly before
# the hard alarm fires.
CURRENT_TIMEOUT = 60.0

TLS_VERSIONS = ("1.2", "1.3")
TLS_PRIORITY = {
    "1.2": "NORMAL:-VERS-ALL:+VERS-TLS1.2",
    "1.3": "NORMAL:-VERS-ALL:+VERS-TLS1.3",
}
TLS_NAME = {"1.2": "TLSv1.2", "1.3": "TLSv1.3"}
STDLIB_TLS = {
    "1.2": stdlib_ssl.TLSVersion.TLSv1_2,
    "1.3": stdlib_ssl.TLSVersion.TLSv1_3,
}
OPENSSL_TLS_FLAG = {"1.2": "-tls1_2", "1.3": "-tls1_3"}

MiB = 1024 * 1024


def sha256(data):
    return hashlib.sha256(data).hexdigest()


# --------------------------------------------------------------- event loop

def run(coro, *, timeout=None, allow_loop_errors=False, loop_factory=None):
    """Run *coro* to completion on a fresh GnutlsEventLoop (or on a loop
    from *loop_factory*: asyncio's own, uvloop's).

    Anything reported to the loop's exception handler fails the test unless
    *allow_loop_errors* is true.

    The coroutine gets *timeout* seconds (default: a little less than the
    test's own limit); past that it is cancelled and the test fails with the
    coroutine's stack, so a stuck test says where it was stuck.
    """
    if timeout is None:
        timeout = max(1.0, CURRENT_TIMEOUT - 5.0)
    loop = (loop_factory or agt.GnutlsEventLoop)()
    loop.agt_errors = []

    def handler(lp, context):
        lp.agt_errors.append(context)
        lp.default_exception_handler(context)

    loop.set_exception_handler(handler)
    asyncio.set_event_loop(loop)

    async def guarded():
        task = asyncio.ensure_future(coro)
        done, _ = await asyncio.wait({task}, timeout=timeout)
        if not done:
            stack = io.StringIO()
            task.print_stack(file=stack)
            task.cancel()
            await asyncio.wait({task}, timeout=5)
            pytest.fail("test coroutine still running after %.0f s:\n%s"
                        % (timeout, stack.getvalue()), pytrace=False)
        return task.result()

    try:
        result = loop.run_until_complete(guarded())
        if loop.agt_errors and not allow_loop_errors:
            pytest.fail("the event loop's exception handler was called "
                        "(errors must reach the application, or be logged at "
                        "debug level on a server):\n%s" % "\n".join(
                            "%s: %r" % (c.get("message"), c.get("exception"))
                            for c in loop.agt_errors), pytrace=False)
        return result
    finally:
        try:
            _cancel_remaining(loop)
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.run_until_complete(
                asyncio.wait_for(loop.shutdown_default_executor(), 60))
        finally:
            asyncio.set_event_loop(None)
            loop.close()


def _cancel_remaining(loop):
    tasks = [t for t in asyncio.all_tasks(loop) if not t.done()]
    if not tasks:
        return
    for t in tasks:
        t.cancel()
    loop.run_until_complete(asyncio.wait(tasks, timeout=5))


async def until(predicate, *, timeout=10.0, what="condition"):
    """Poll *predicate* every few milliseconds; fail the test after *timeout*."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail("timed out after %.1f s waiting for %s" % (timeout, what),
                        pytrace=False)
        await asyncio.sleep(0.005)


async def wait_for(aw, timeout=10.0, what="operation"):
    try:
        return await asyncio.wait_for(aw, timeout)
    except asyncio.TimeoutError:
        pytest.fail("timed out after %.1f s waiting for %s" % (timeout, what),
                    pytrace=False)


async def settle(seconds=0.05):
    """Let the loop run callbacks for a short while."""
    await asyncio.sleep(seconds)


# --------------------------------------------------------------- contexts

def our_client_ctx(certs, version=None, *, cafile="ca", client_cert=False,
                   verify_mode=None, check_hostname=None):
    """An aio_gnutls_transport client context trusting the test CA."""
    ctx = agt_ssl.SSLContext(agt_ssl.PROTOCOL_TLS_CLIENT)
    if check_hostname is not None:
        ctx.check_hostname = check_hostname
    if verify_mode is not None:
        ctx.verify_mode = verify_mode
    if cafile:
        ctx.load_verify_locations(getattr(certs, cafile))
    if client_cert:
        ctx.load_cert_chain(certs.client_cert, certs.client_key)
    if version:
        ctx.gnutls_set_priority(TLS_PRIORITY[version])
    return ctx


def our_server_ctx(certs, version=None, *, cert="server", verify_mode=None,
                   cafile=None):
    """An aio_gnutls_transport server context with the *cert* certificate."""
    ctx = agt_ssl.SSLContext(agt_ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(getattr(certs, cert + "_cert"),
                        getattr(certs, cert + "_key"))
    if cafile:
        ctx.load_verify_locations(getattr(certs, cafile))
    if verify_mode is not None:
        ctx.verify_mode = verify_mode
    if version:
        ctx.gnutls_set_priority(TLS_PRIORITY[version])
    return ctx


def std_client_ctx(certs, version=None, *, cafile="ca", client_cert=False):
    ctx = stdlib_ssl.SSLContext(stdlib_ssl.PROTOCOL_TLS_CLIENT)
    if cafile:
        ctx.load_verify_locations(getattr(certs, cafile))
    if client_cert:
        ctx.load_cert_chain(certs.client_cert, certs.client_key)
    if version:
        ctx.minimum_version = ctx.maximum_version = STDLIB_TLS[version]
    return ctx


def std_server_ctx(certs, version=None, *, cert="server", verify_mode=None,
                   cafile=None):
    ctx = stdlib_ssl.SSLContext(stdlib_ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(getattr(certs, cert + "_cert"),
                        getattr(certs, cert + "_key"))
    if cafile:
        ctx.load_verify_locations(getattr(certs, cafile))
    if verify_mode is not None:
        ctx.verify_mode = verify_mode
    if version:
        ctx.minimum_version = ctx.maximum_version = STDLIB_TLS[version]
    return ctx


# --------------------------------------------------------------- endpoints

class Endpoint:
    """Where a server listens: TCP on 127.0.0.1 or a Unix socket path."""

    def __init__(self, family, address):
        self.family = family
        self.address = address

    def __repr__(self):
        return "Endpoint(%s, %r)" % (self.family, self.address)

    async def open(self, ssl, server_hostname="localhost", **kw):
        if self.family == "tcp":
            host, port = self.address
            return await asyncio.open_connection(
                host, port, ssl=ssl,
                server_hostname=server_hostname if ssl else None, **kw)
        return await asyncio.open_unix_connection(
            self.address, ssl=ssl,
            server_hostname=server_hostname if ssl else None, **kw)

    async def connect(self, factory, ssl, server_hostname="localhost", **kw):
        loop = asyncio.get_running_loop()
        if self.family == "tcp":
            host, port = self.address
            return await loop.create_connection(
                factory, host, port, ssl=ssl,
                server_hostname=server_hostname if ssl else None, **kw)
        return await loop.create_unix_connection(
            factory, self.address, ssl=ssl,
            server_hostname=server_hostname if ssl else None, **kw)

    def raw_socket(self, timeout=10.0):
        """A plain blocking socket connected to the endpoint."""
        if self.family == "tcp":
            return socket.create_connection(self.address, timeout=timeout)
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(timeout)
        s.connect(self.address)
        return s


def _endpoint_of(server, family):
    sock = server.sockets[0]
    if family == "tcp":
        return Endpoint("tcp", sock.getsockname()[:2])
    return Endpoint("unix", sock.getsockname())


async def start_stream_server(family, callback, ssl, unix_dir, **kw):
    if family == "tcp":
        server = await asyncio.start_server(callback, "127.0.0.1", 0, ssl=ssl,
                                            **kw)
    else:
        path = os.path.join(unix_dir, "s%d.sock" % next(_sock_counter))
        server = await asyncio.start_unix_server(callback, path, ssl=ssl, **kw)
    return server, _endpoint_of(server, family)


async def start_proto_server(family, factory, ssl, unix_dir, **kw):
    loop = asyncio.get_running_loop()
    if family == "tcp":
        server = await loop.create_server(factory, "127.0.0.1", 0, ssl=ssl, **kw)
    else:
        path = os.path.join(unix_dir, "p%d.sock" % next(_sock_counter))
        server = await loop.create_unix_server(factory, path, ssl=ssl, **kw)
    return server, _endpoint_of(server, family)


def _counter():
    n = 0
    while True:
        n += 1
        yield n


_sock_counter = _counter()


async def close_server(server):
    server.close()
    await wait_for(server.wait_closed(), 10, "server.wait_closed()")


async def close_writer(writer, timeout=10):
    """Close a stream writer and wait for the transport to go away."""
    writer.close()
    with contextlib.suppress(Exception):
        await asyncio.wait_for(writer.wait_closed(), timeout)


# --------------------------------------------------------------- protocols

class RecordingProtocol(asyncio.Protocol):
    """Records every callback so tests can assert on what happened.

    eof_result is what eof_received() returns; on_data/on_eof/on_connect are
    optional hooks called with the protocol.
    """

    def __init__(self, *, eof_result=None, on_connect=None, on_data=None,
                 on_eof=None):
        self.loop = asyncio.get_running_loop()
        self.eof_result = eof_result
        self.on_connect = on_connect
        self.on_data = on_data
        self.on_eof = on_eof
        self.transport = None
        self.data = bytearray()
        self.events = []
        self.made = self.loop.create_future()
        self.eof = self.loop.create_future()
        self.lost = self.loop.create_future()
        self.lost_calls = []
        self.eof_calls = 0
        self.data_calls = 0
        self.pause_calls = 0
        self.resume_calls = 0

    def connection_made(self, transport):
        self.transport = transport
        self.events.append("made")
        if not self.made.done():
            self.made.set_result(transport)
        if self.on_connect:
            self.on_connect(self)

    def data_received(self, data):
        self.events.append("data")
        self.data_calls += 1
        self.data += data
        if self.on_data:
            self.on_data(self, data)

    def eof_received(self):
        self.events.append("eof")
        self.eof_calls += 1
        if not self.eof.done():
            self.eof.set_result(True)
        if self.on_eof:
            self.on_eof(self)
        return self.eof_result

    def connection_lost(self, exc):
        self.events.append("lost")
        self.lost_calls.append(exc)
        if not self.lost.done():
            self.lost.set_result(exc)

    def pause_writing(self):
        self.events.append("pause_writing")
        self.pause_calls += 1

    def resume_writing(self):
        self.events.append("resume_writing")
        self.resume_calls += 1

    async def wait_bytes(self, n, timeout=20.0):
        await until(lambda: len(self.data) >= n or self.lost.done(),
                    timeout=timeout, what="%d bytes (have %d)" % (n, len(self.data)))
        return bytes(self.data)


def server_factory(store, **kw):
    """A protocol factory that remembers every protocol it made in *store*."""
    def factory():
        p = RecordingProtocol(**kw)
        store.append(p)
        return p
    return factory


# --------------------------------------------------------------- processes

def require_binary(name):
    path = shutil.which(name)
    if path is None:
        pytest.skip("%s is not installed" % name)
    return path


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Proc:
    """A subprocess whose stdout/stderr go to files (no pipe can fill up)."""

    def __init__(self, args, workdir, *, stdin=subprocess.PIPE, cwd=None,
                 env=None):
        self.args = [str(a) for a in args]
        fd, self.out_path = tempfile.mkstemp(prefix="out-", dir=workdir)
        os.close(fd)
        fd, self.err_path = tempfile.mkstemp(prefix="err-", dir=workdir)
        os.close(fd)
        with open(self.out_path, "wb") as out, open(self.err_path, "wb") as err:
            self.popen = subprocess.Popen(self.args, stdin=stdin, stdout=out,
                                          stderr=err, cwd=cwd, env=env)

    def stdout(self):
        with open(self.out_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def stderr(self):
        with open(self.err_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def output(self):
        return self.stdout() + self.stderr()

    def send(self, data):
        self.popen.stdin.write(data)
        self.popen.stdin.flush()

    def close_stdin(self):
        if self.popen.stdin and not self.popen.stdin.closed:
            with contextlib.suppress(OSError):
                self.popen.stdin.close()

    def wait(self, timeout=20.0):
        return self.popen.wait(timeout)

    def stop(self):
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(5)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(5)
        self.close_stdin()
        return self.popen.returncode

    def describe(self):
        return "%s\n--- stdout ---\n%s\n--- stderr ---\n%s" % (
            " ".join(self.args), self.stdout(), self.stderr())


class ProcManager:
    """Starts peers for one test and kills whatever is still running after it."""

    def __init__(self, workdir):
        self.workdir = workdir
        self.procs = []

    def start(self, args, **kw):
        p = Proc(args, self.workdir, **kw)
        self.procs.append(p)
        return p

    def cleanup(self):
        for p in self.procs:
            p.stop()


def wait_listening(address, proc=None, timeout=15.0):
    """Poll-connect until something accepts on *address* (tuple or path)."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        if proc is not None and proc.popen.poll() is not None:
            pytest.fail("peer exited early (%s):\n%s"
                        % (proc.popen.returncode, proc.describe()),
                        pytrace=False)
        try:
            if isinstance(address, str):
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                s.settimeout(1)
                s.connect(address)
            else:
                s = socket.create_connection(address, timeout=1)
            s.close()
            # give the peer a moment to notice and drop the probe
            time.sleep(0.05)
            return
        except OSError as e:
            last = e
            time.sleep(0.03)
    pytest.fail("nothing listening on %r after %.0f s (%s)%s" % (
        address, timeout, last,
        ("\n" + proc.describe()) if proc is not None else ""), pytrace=False)


async def run_process(args, *, input=b"", timeout=30.0, env=None):
    """Run a client process from inside the loop without blocking it.

    Returns the CompletedProcess (text)."""
    def target():
        return subprocess.run([str(a) for a in args], input=input,
                              capture_output=True, timeout=timeout, env=env)
    try:
        cp = await asyncio.to_thread(target)
    except subprocess.TimeoutExpired as e:
        pytest.fail("%s did not finish in %.0f s; stdout=%r stderr=%r" % (
            " ".join(str(a) for a in args), timeout, e.stdout, e.stderr),
            pytrace=False)
    cp.stdout = cp.stdout.decode("utf-8", "replace")
    cp.stderr = cp.stderr.decode("utf-8", "replace")
    return cp


def count_fds():
    return len(os.listdir("/proc/self/fd"))


def python_for_cli():
    return os.environ.get("AIO_GNUTLS_TRANSPORT_PYTHON", sys.executable)


# --------------------------------------------------------------- mount namespaces

def mount_namespace_argv(binds, argv):
    """The command line that runs *argv* in a private mount namespace in
    which each (source, target) of *binds* is bind-mounted, read-only, over
    target.

    The mounts exist only for that process and its children: files such as
    the system CA bundle can be replaced for one test without touching the
    machine, and nothing the process starts can write through them into
    the source.  Needs the right to unshare and mount (root, in practice)."""
    steps = []
    for src, dst in binds:
        dst = shlex.quote(str(dst))
        steps.append("mount --bind %s %s" % (shlex.quote(str(src)), dst))
        steps.append("mount -o remount,bind,ro %s" % dst)
    steps.append('exec "$@"')
    return ["unshare", "--mount", "--propagation", "private", "--",
            "/bin/sh", "-c", " && ".join(steps), "sh"] + [str(a) for a in argv]


def mount_namespace_problem():
    """None if mount_namespace_argv() works here, else the reason why not."""
    if shutil.which("unshare") is None or shutil.which("mount") is None:
        return "the unshare and mount commands are needed"
    with tempfile.TemporaryDirectory(prefix="agt-ns-") as d:
        src, dst = os.path.join(d, "src"), os.path.join(d, "dst")
        for path, text in ((src, "bound"), (dst, "original")):
            with open(path, "w") as f:
                f.write(text)
        try:
            proc = subprocess.run(
                mount_namespace_argv([(src, dst)], [
                    "/bin/sh", "-c",
                    'cat "$0"; (echo more >> "$0") 2>/dev/null; exit 0', dst]),
                capture_output=True, timeout=20)
        except (OSError, subprocess.TimeoutExpired) as e:
            return "cannot run unshare: %s" % e
        with open(dst) as f:
            after = f.read()
        if proc.returncode != 0 or proc.stdout != b"bound":
            return ("bind mounts in a private mount namespace are not "
                    "permitted here (unshare --mount: exit %d, %s)"
                    % (proc.returncode,
                       proc.stderr.decode(errors="replace").strip()))
        with open(src) as f:
            source_after = f.read()
        if after != "original" or source_after != "bound":
            return ("a bind mount leaked out of its mount namespace, or was "
                    "not read-only")
    return None


# --------------------------------------------------------------- child processes
#
# Some tests need a fresh process: GnuTLS initialises PKCS#11 once per
# process, a token stays logged in once a PIN was accepted, and a mount
# namespace applies to a process from its start.  run_child() runs a
# function named child_<name> of a test module in a new Python interpreter;
# the function takes JSON-able arguments and returns a JSON-able result,
# which the test then asserts on.

CHILD_RESULT_TAG = "AGT-CHILD-RESULT "
TESTS_DIR = os.path.dirname(os.path.abspath(__file__))


def child_args(namespace):
    """The str attributes of *namespace* (paths, URLs) as a JSON-able dict."""
    return {k: v for k, v in vars(namespace).items() if isinstance(v, str)}


def run_child(module, name, *args, env=None, wrap=(), timeout=45.0):
    """Run *module*.child_<name>(*args) in a new Python process, with the
    extra environment *env*, its command line prefixed by *wrap* (a mount
    namespace, say).  Returns (result, stderr); a child that fails, or
    outlives *timeout* seconds, fails the test with its output."""
    full_env = dict(os.environ)
    full_env["PYTHONPATH"] = os.pathsep.join(
        [TESTS_DIR] + [p for p in sys.path if p])
    full_env.update(env or {})
    if full_env.get("PYTHONDONTWRITEBYTECODE"):
        # Nothing gets written either way; without a cache prefix the child
        # finds the standard library's compiled files instead of compiling
        # it all again (a second per child).
        full_env.pop("PYTHONPYCACHEPREFIX", None)
    payload = json.dumps({"module": module, "name": name, "args": list(args)})
    argv = [str(a) for a in wrap] + [
        sys.executable, "-c", "import agt_testlib; agt_testlib.child_main()",
        payload]
    try:
        proc = subprocess.run(argv, env=full_env, capture_output=True,
                              timeout=timeout)
    except subprocess.TimeoutExpired as e:
        pytest.fail("child %s.%s did not finish in %.0f s\nstdout: %s\n"
                    "stderr: %s" % (module, name, timeout, e.stdout, e.stderr),
                    pytrace=False)
    out = proc.stdout.decode("utf-8", "replace")
    err = proc.stderr.decode("utf-8", "replace")
    results = [line[len(CHILD_RESULT_TAG):] for line in out.splitlines()
               if line.startswith(CHILD_RESULT_TAG)]
    if proc.returncode != 0 or len(results) != 1:
        pytest.fail("child %s.%s failed (exit %d)\nstdout:\n%s\nstderr:\n%s"
                    % (module, name, proc.returncode, out, err[-6000:]),
                    pytrace=False)
    return json.loads(results[0]), err


def child_main():
    """The child side of run_child()."""
    import faulthandler
    import importlib
    global CURRENT_TIMEOUT
    faulthandler.dump_traceback_later(40, exit=True)
    CURRENT_TIMEOUT = 30.0
    spec = json.loads(sys.argv[1])
    module = importlib.import_module(spec["module"])
    result = getattr(module, "child_" + spec["name"])(*spec["args"])
    sys.stdout.write(CHILD_RESULT_TAG + json.dumps(result) + "\n")
    sys.stdout.flush()


def describe_error(exc):
    """A JSON-able description of an exception, for a child's result."""
    return {"type": type(exc).__name__, "message": str(exc),
            "reason": getattr(exc, "reason", None),
            "verify_code": getattr(exc, "verify_code", None),
            "verify_message": getattr(exc, "verify_message", None),
            "gnutls_error": isinstance(exc, agt.GnutlsError),
            "ssl_error": isinstance(exc, stdlib_ssl.SSLError)}


# --------------------------------------------------------------- shared peers

async def upper_echo(reader, writer):
    """Reply to each line with the line in upper case; close on EOF."""
    try:
        while True:
            line = await reader.readline()
            if not line:
                break
            writer.write(line.upper())
            await writer.drain()
    finally:
        writer.close()


class BufferedRecorder(asyncio.BufferedProtocol):
    """A BufferedProtocol with a deliberately small buffer, recording what
    arrives, how many buffer_updated() calls and eof_received() calls."""

    def __init__(self, size=1000):
        self.buf = bytearray(size)
        self.data = bytearray()
        self.updates = 0
        self.eof_calls = 0
        self.lost = asyncio.get_running_loop().create_future()

    def connection_made(self, transport):
        self.transport = transport

    def get_buffer(self, sizehint):
        return self.buf

    def buffer_updated(self, nbytes):
        assert 0 < nbytes <= len(self.buf)
        self.updates += 1
        self.data += self.buf[:nbytes]

    def eof_received(self):
        self.eof_calls += 1

    def connection_lost(self, exc):
        if not self.lost.done():
            self.lost.set_result(exc)
