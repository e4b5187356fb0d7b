#!/usr/bin/env python3
# Copyright (C) 2026 The aio_gnutls_transport authors
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Compare aio_gnutls_transport with asyncio's stdlib SSL transport and TCP.

One run measures, for each mode, on loopback with the same certificate:
  - bulk throughput client->server and server->client (64 KiB writes),
  - round trips per second of small messages over concurrent connections,
  - handshakes per second (connect, handshake, close, one after another),
and prints a table with the ratio of this transport to the stdlib's.

Modes:
  gnutls  aio_gnutls_transport (GnutlsEventLoop, GnuTLS on both ends)
  stdlib  asyncio's own SSL transport (SelectorEventLoop, OpenSSL on both ends)
  tcp     plain TCP, the upper bound (SelectorEventLoop)

Each mode runs on its own event loop with client and server in the same
thread, so a figure is the cost of both ends together.  Every test has a
timeout; a test that runs out of time is reported as such.

Run with the package importable, e.g. from a build tree:
    PYTHONPATH=<builddir>/test-tree python3 bench/bench.py --quick
"""

import argparse
import asyncio
import json
import os
import ssl as stdlib_ssl
import struct
import sys
import tempfile
import time

MODES = ("gnutls", "stdlib", "tcp")
HOST = "127.0.0.1"
SERVER_NAME = "localhost"

# The GnuTLS priority per --cipher.  The stdlib cannot pick TLS 1.3 cipher
# suites (there is no set_ciphersuites()); OpenSSL's default prefers
# AES-256-GCM, hence the default here.
CIPHERS = {
    "aes-256-gcm": "AES-256-GCM",
    "aes-128-gcm": "AES-128-GCM",
}

HEADER = struct.Struct("!cQ")  # command, size
UPLOAD, DOWNLOAD, ECHO = b"U", b"D", b"E"
ACK = b"K"


# ------------------------------------------------------------- protocols


class _Flow:
    """Write-side flow control shared by both ends."""

    def __init__(self):
        self.transport = None
        self.paused = False
        self.lost = asyncio.get_running_loop().create_future()

    def pause_writing(self):
        self.paused = True

    def resume_writing(self):
        self.paused = False
        self.send_more()

    def send_more(self):
        pass

    def connection_lost(self, exc):
        if not self.lost.done():
            self.lost.set_result(exc)


class _Sender:
    """Writes `total` bytes in chunks of one payload, honouring pauses."""

    def __init__(self, transport, payload, total):
        self.transport = transport
        self.payload = payload
        self.remaining = total

    def run(self, flow):
        write = self.transport.write
        payload = self.payload
        size = len(payload)
        while self.remaining > 0 and not flow.paused:
            if self.remaining >= size:
                write(payload)
                self.remaining -= size
            else:
                write(payload[:self.remaining])
                self.remaining = 0
            if self.transport.is_closing():
                return


class BenchServer(_Flow, asyncio.Protocol):
    """Serves one command per connection: upload, download or echo."""

    def __init__(self, payload):
        super().__init__()
        self.payload = payload
        self.header = b""
        self.command = None
        self.expected = 0
        self.sender = None

    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        if self.command is ECHO:
            self.transport.write(data)
            return
        if self.command is None:
            self.header += data
            if len(self.header) < HEADER.size:
                return
            data = self.header[HEADER.size:]
            command, size = HEADER.unpack_from(self.header)
            self.header = b""
            self._start(command, size)
            if self.command is ECHO:
                if data:
                    self.transport.write(data)
                return
        if self.command is UPLOAD:
            self.expected -= len(data)
            if self.expected == 0:
                self.transport.write(ACK)

    def _start(self, command, size):
        if command == UPLOAD:
            self.command, self.expected = UPLOAD, size
            if size == 0:
                self.transport.write(ACK)
        elif command == DOWNLOAD:
            self.command = DOWNLOAD
            self.sender = _Sender(self.transport, self.payload, size)
            self.send_more()
        elif command == ECHO:
            self.command = ECHO
        else:
            self.transport.abort()

    def send_more(self):
        if self.sender is not None:
            self.sender.run(self)

    def eof_received(self):
        return False


class BenchClient(_Flow, asyncio.Protocol):
    """The client end: one operation at a time, awaited with a future."""

    def __init__(self):
        super().__init__()
        self.waiter = None
        self.expected = 0
        self.sender = None

    def connection_made(self, transport):
        self.transport = transport

    def _new_waiter(self, expected):
        self.expected = expected
        self.waiter = asyncio.get_running_loop().create_future()
        return self.waiter

    def data_received(self, data):
        self.expected -= len(data)
        if self.expected <= 0 and self.waiter is not None:
            waiter, self.waiter = self.waiter, None
            if not waiter.done():
                waiter.set_result(None)

    def eof_received(self):
        return False

    def connection_lost(self, exc):
        super().connection_lost(exc)
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(
                exc or ConnectionError("connection closed by the server"))

    def send_more(self):
        if self.sender is not None:
            self.sender.run(self)

    def upload(self, payload, total):
        waiter = self._new_waiter(len(ACK))
        self.transport.write(HEADER.pack(UPLOAD, total))
        self.sender = _Sender(self.transport, payload, total)
        self.send_more()
        return waiter

    def download(self, total):
        waiter = self._new_waiter(total)
        self.transport.write(HEADER.pack(DOWNLOAD, total))
        return waiter

    def start_echo(self):
        self.transport.write(HEADER.pack(ECHO, 0))

    def round_trip(self, message):
        waiter = self._new_waiter(len(message))
        self.transport.write(message)
        return waiter


# --------------------------------------------------------------- modes


class Mode:
    def __init__(self, name, make_loop, server_ssl, client_ssl):
        self.name = name
        self.make_loop = make_loop
        self.server_ssl = server_ssl
        self.client_ssl = client_ssl


def make_modes(names, files, cipher):
    modes = []
    for name in names:
        if name == "gnutls":
            import aio_gnutls_transport
            from aio_gnutls_transport import ssl as gnutls_ssl

            priority = "%s:-VERS-ALL:+VERS-TLS1.3:-CIPHER-ALL:+%s" % (
                aio_gnutls_transport.DEFAULT_PRIORITY, CIPHERS[cipher])
            server = gnutls_ssl.SSLContext(gnutls_ssl.PROTOCOL_TLS_SERVER)
            server.load_cert_chain(files["cert"], files["key"])
            server.gnutls_set_priority(priority)
            client = gnutls_ssl.create_default_context(cafile=files["ca"])
            client.gnutls_set_priority(priority)
            modes.append(Mode(name, aio_gnutls_transport.GnutlsEventLoop,
                              server, client))
        elif name == "stdlib":
            server = stdlib_ssl.SSLContext(stdlib_ssl.PROTOCOL_TLS_SERVER)
            server.load_cert_chain(files["cert"], files["key"])
            client = stdlib_ssl.create_default_context(cafile=files["ca"])
            for context in (server, client):
                context.minimum_version = stdlib_ssl.TLSVersion.TLSv1_3
            modes.append(Mode(name, asyncio.SelectorEventLoop,
                              server, client))
        else:
            modes.append(Mode(name, asyncio.SelectorEventLoop, None, None))
    return modes


# --------------------------------------------------------------- tests


async def _connect(mode, port):
    loop = asyncio.get_running_loop()
    kwargs = {}
    if mode.client_ssl is not None:
        kwargs = {"ssl": mode.client_ssl, "server_hostname": SERVER_NAME}
    _, protocol = await loop.create_connection(
        BenchClient, HOST, port, **kwargs)
    return protocol


async def _close(protocol, timeout=5.0):
    protocol.transport.close()
    try:
        await asyncio.wait_for(asyncio.shield(protocol.lost), timeout)
    except asyncio.TimeoutError:
        protocol.transport.abort()


def _negotiated(protocol):
    ssl_object = protocol.transport.get_extra_info("ssl_object")
    if ssl_object is None:
        return "plain TCP"
    cipher = ssl_object.cipher()
    return "%s %s" % (ssl_object.version(), cipher[0] if cipher else "?")


async def bench_bulk(mode, port, direction, total, payload, report):
    protocol = await _connect(mode, port)
    try:
        report.setdefault("negotiated", _negotiated(protocol))
        start = time.perf_counter()
        if direction == "up":
            await protocol.upload(payload, total)
        else:
            await protocol.download(total)
        elapsed = time.perf_counter() - start
    finally:
        await _close(protocol)
    return total / elapsed / 1e6


async def bench_round_trips(mode, port, connections, message_size, duration):
    message = b"m" * message_size
    protocols = await asyncio.gather(
        *[_connect(mode, port) for _ in range(connections)])
    try:
        for protocol in protocols:
            protocol.start_echo()
        loop = asyncio.get_running_loop()
        counts = [0] * connections

        async def worker(index, protocol, deadline):
            count = 0
            while loop.time() < deadline:
                await protocol.round_trip(message)
                count += 1
            counts[index] = count

        start = time.perf_counter()
        deadline = loop.time() + duration
        await asyncio.gather(*[worker(i, p, deadline)
                               for i, p in enumerate(protocols)])
        elapsed = time.perf_counter() - start
    finally:
        await asyncio.gather(*[_close(p) for p in protocols])
    return sum(counts) / elapsed


async def bench_handshakes(mode, port, duration):
    loop = asyncio.get_running_loop()
    count = 0
    start = time.perf_counter()
    deadline = loop.time() + duration
    while loop.time() < deadline:
        protocol = await _connect(mode, port)
        await _close(protocol)
        count += 1
    return count / (time.perf_counter() - start)


TESTS = (
    ("bulk_up", "bulk client->server, MB/s"),
    ("bulk_down", "bulk server->client, MB/s"),
    ("round_trips", "round trips/s"),
    ("handshakes", "handshakes/s"),
)


async def run_mode(mode, args, payload):
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: BenchServer(payload), HOST, 0, ssl=mode.server_ssl)
    port = server.sockets[0].getsockname()[1]
    report = {}
    total = args.bulk_mib * 1024 * 1024
    runs = (
        ("bulk_up", lambda: bench_bulk(mode, port, "up", total, payload,
                                       report)),
        ("bulk_down", lambda: bench_bulk(mode, port, "down", total, payload,
                                         report)),
        ("round_trips", lambda: bench_round_trips(
            mode, port, args.connections, args.message_size, args.duration)),
        ("handshakes", lambda: bench_handshakes(mode, port, args.duration)),
    )
    try:
        # The first transfer of a process pays for page faults, allocator
        # growth and CPU clock ramp-up; keep that out of the figures.
        warmup = min(total, 16 * 1024 * 1024)
        warmup_report = {}
        try:
            for direction in ("up", "down"):
                await asyncio.wait_for(bench_bulk(
                    mode, port, direction, warmup, payload, warmup_report),
                    args.timeout)
        except (asyncio.TimeoutError, OSError, ValueError) as exc:
            reason = "timeout" if isinstance(exc, asyncio.TimeoutError) \
                else "error: warm-up failed: %s" % (exc,)
            for key in args.tests:
                report[key] = reason
            return report
        report["negotiated"] = warmup_report["negotiated"]
        for key, make in runs:
            if key not in args.tests:
                continue
            if args.verbose:
                print("  %s: %s ..." % (mode.name, key), file=sys.stderr,
                      flush=True)
            try:
                report[key] = await asyncio.wait_for(make(), args.timeout)
            except asyncio.TimeoutError:
                report[key] = "timeout"
            except (OSError, ValueError) as exc:
                report[key] = "error: %s" % (exc,)
    finally:
        server.close()
        await asyncio.sleep(0)
    return report


def run_in_own_loop(mode, args, payload):
    loop = mode.make_loop()
    asyncio.set_event_loop(loop)
    try:
        return loop.run_until_complete(run_mode(mode, args, payload))
    finally:
        tasks = [t for t in asyncio.all_tasks(loop) if not t.done()]
        for task in tasks:
            task.cancel()
        if tasks:
            loop.run_until_complete(
                asyncio.gather(*tasks, return_exceptions=True))
        asyncio.set_event_loop(None)
        loop.close()


# -------------------------------------------------------------- output


def _cell(value):
    if isinstance(value, float):
        return "%.1f" % value
    if value is None:
        return "-"
    return str(value)


def print_table(reports, names, args, out=sys.stdout):
    label_width = max(len(label) for _, label in TESTS)
    has_ratio = "gnutls" in names and "stdlib" in names
    header = ["%-*s" % (label_width, "test")]
    header += ["%12s" % name for name in names]
    if has_ratio:
        header.append("%15s" % "gnutls/stdlib")
    print("  ".join(header), file=out)
    for key, label in TESTS:
        if key not in args.tests:
            continue
        row = ["%-*s" % (label_width, label)]
        for name in names:
            row.append("%12s" % _cell(reports[name].get(key))[:12])
        if has_ratio:
            ours = reports["gnutls"].get(key)
            theirs = reports["stdlib"].get(key)
            if isinstance(ours, float) and isinstance(theirs, float) \
                    and theirs > 0:
                row.append("%14.2fx" % (ours / theirs))
            else:
                row.append("%15s" % "-")
        print("  ".join(row), file=out)
    errors = [(name, key, value) for name in names
              for key, value in reports[name].items()
              if isinstance(value, str) and value.startswith("error")]
    for name, key, value in errors:
        print("%s %s: %s" % (name, key, value), file=out)


def parse_args(argv):
    parser = argparse.ArgumentParser(
        description="Benchmark aio_gnutls_transport against asyncio's "
        "stdlib SSL transport and plain TCP on loopback.")
    parser.add_argument(
        "--quick", action="store_true",
        help="short run: 32 MiB per direction, 1 s per timed test")
    parser.add_argument(
        "--bulk-mib", type=int, default=None,
        help="MiB per bulk direction (default 256, --quick 32)")
    parser.add_argument(
        "--chunk-kib", type=int, default=64,
        help="size of each bulk write in KiB (default %(default)s)")
    parser.add_argument(
        "--duration", type=float, default=None,
        help="seconds for round trip and handshake tests "
        "(default 3, --quick 1)")
    parser.add_argument(
        "--connections", type=int, default=10,
        help="concurrent connections for round trips (default %(default)s)")
    parser.add_argument(
        "--message-size", type=int, default=100,
        help="round trip message size in bytes (default %(default)s)")
    parser.add_argument(
        "--modes", default=",".join(MODES),
        help="comma-separated subset of %s (default: all)" % ",".join(MODES))
    parser.add_argument(
        "--tests", default=",".join(key for key, _ in TESTS),
        help="comma-separated subset of %s (default: all)"
        % ",".join(key for key, _ in TESTS))
    parser.add_argument(
        "--cipher", choices=sorted(CIPHERS), default="aes-256-gcm",
        help="TLS 1.3 cipher for the gnutls mode (the stdlib negotiates "
        "OpenSSL's default, usually AES-256-GCM) (default %(default)s)")
    parser.add_argument(
        "--timeout", type=float, default=60.0,
        help="time limit of each test in seconds (default %(default)s)")
    parser.add_argument(
        "--cert", help="server certificate (default: a throwaway one)")
    parser.add_argument("--key", help="key for --cert")
    parser.add_argument("--cafile", help="CA that issued --cert")
    parser.add_argument(
        "--json", action="store_true", help="print the results as JSON")
    parser.add_argument(
        "--verbose", "-v", action="store_true",
        help="say which test is running on stderr")
    args = parser.parse_args(argv)
    if args.bulk_mib is None:
        args.bulk_mib = 32 if args.quick else 256
    if args.duration is None:
        args.duration = 1.0 if args.quick else 3.0
    names = [name.strip() for name in args.modes.split(",") if name.strip()]
    unknown = [name for name in names if name not in MODES]
    if unknown or not names:
        parser.error("unknown mode(s) %s; choose from %s"
                     % (", ".join(unknown) or "(none)", ", ".join(MODES)))
    args.modes = names
    known = [key for key, _ in TESTS]
    tests = [name.strip() for name in args.tests.split(",") if name.strip()]
    unknown = [name for name in tests if name not in known]
    if unknown or not tests:
        parser.error("unknown test(s) %s; choose from %s"
                     % (", ".join(unknown) or "(none)", ", ".join(known)))
    args.tests = tests
    if (args.cert is None) != (args.cafile is None):
        parser.error("--cert and --cafile go together")
    for name, value in (("--bulk-mib", args.bulk_mib),
                        ("--chunk-kib", args.chunk_kib),
                        ("--connections", args.connections),
                        ("--message-size", args.message_size)):
        if value <= 0:
            parser.error("%s must be positive" % name)
    if args.duration <= 0 or args.timeout <= 0:
        parser.error("--duration and --timeout must be positive")
    return args


def main(argv=None):
    args = parse_args(argv)
    try:
        import aio_gnutls_transport
        from aio_gnutls_transport import _gnutls
        from aio_gnutls_transport._cli import make_test_certificates
    except ImportError as exc:
        sys.exit("bench.py: cannot import aio_gnutls_transport (%s); put the "
                 "build tree on PYTHONPATH" % exc)
    del aio_gnutls_transport

    payload = memoryview(os.urandom(args.chunk_kib * 1024))
    with tempfile.TemporaryDirectory(prefix="aio-gnutls-bench-") as tmp:
        if args.cert is not None:
            files = {"cert": args.cert, "key": args.key or args.cert,
                     "ca": args.cafile}
        else:
            files = make_test_certificates(tmp)
        try:
            modes = make_modes(args.modes, files, args.cipher)
        except (OSError, ValueError, NotImplementedError) as exc:
            sys.exit("bench.py: setting up TLS contexts failed: %s" % (exc,))
        reports = {}
        for mode in modes:
            if args.verbose:
                print("running %s" % mode.name, file=sys.stderr, flush=True)
            try:
                reports[mode.name] = run_in_own_loop(mode, args, payload)
            except Exception as exc:  # one broken mode must not hide the rest
                reports[mode.name] = {
                    key: "error: %s: %s" % (type(exc).__name__, exc)
                    for key in args.tests}

    if args.json:
        json.dump({"python": sys.version.split()[0],
                   "gnutls": _gnutls.GNUTLS_VERSION,
                   "openssl": stdlib_ssl.OPENSSL_VERSION,
                   "settings": {"bulk_mib": args.bulk_mib,
                                "chunk_kib": args.chunk_kib,
                                "duration": args.duration,
                                "connections": args.connections,
                                "message_size": args.message_size},
                   "results": reports}, sys.stdout, indent=2)
        print()
        return 0

    print("Python %s, GnuTLS %s, %s" % (
        sys.version.split()[0], _gnutls.GNUTLS_VERSION,
        stdlib_ssl.OPENSSL_VERSION))
    settings = []
    if "bulk_up" in args.tests or "bulk_down" in args.tests:
        settings.append("%d MiB per bulk direction in %d KiB writes"
                        % (args.bulk_mib, args.chunk_kib))
    if "round_trips" in args.tests:
        settings.append("%d connections x %d-byte round trips for %.1f s"
                        % (args.connections, args.message_size,
                           args.duration))
    if "handshakes" in args.tests:
        settings.append("handshakes for %.1f s" % args.duration)
    print("loopback, client and server in one thread per mode; "
          + "; ".join(settings))
    for name in args.modes:
        print("  %-7s negotiated %s" % (
            name, reports[name].get("negotiated", "(no connection)")))
    print()
    print_table(reports, args.modes, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
