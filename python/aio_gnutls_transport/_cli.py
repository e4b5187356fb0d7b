# Copyright (C) 2026 The aio_gnutls_transport authors
# SPDX-License-Identifier: LGPL-2.1-or-later
"""The command-line tool: ``python3 -m aio_gnutls_transport COMMAND``.

client  connects to a TLS server, prints what was negotiated to stderr, then
        copies stdin to the connection and the connection to stdout (like
        gnutls-cli or openssl s_client).  End of stdin half-closes the TLS
        connection (close_notify) and the client keeps printing until the
        server closes.
server  a TLS server that echoes every connection, or connects one
        connection to stdin/stdout.
demo    both ends in one process on a throwaway certificate: shows what was
        negotiated, a half-closed exchange and a refused certificate.
info    what an administrator checks first: versions, the system trust
        store, the PKCS#11 modules and tokens (smartcards, HSMs).

--cert and --key take files or pkcs11: URLs.  A token that needs a PIN, or
an encrypted key file, gets it from the URL (pin-value, pin-source), from
--password-file, or else from a prompt when stdin is a terminal.

Everything the user should read about a failure is one line on stderr,
"aio_gnutls_transport: error: ...", and a non-zero exit status.
"""

import argparse
import asyncio
import getpass
import importlib
import ipaddress
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

PROG = "aio_gnutls_transport"

# Exit statuses.
EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

CHUNK_SIZE = 64 * 1024
# How long a closing connection may wait for the peer's close_notify once
# the user asked to stop.
STOP_GRACE_SECONDS = 2.0
DEMO_TIMEOUT_SECONDS = 30.0


class CliError(Exception):
    """A failure to report to the user as a single line."""


# ---------------------------------------------------------------- output


def _say(text):
    """A status line for the user: stderr, so stdout stays the data."""
    print(text, file=sys.stderr, flush=True)


def _warn(text):
    _say("%s: warning: %s" % (PROG, text))


def error_text(exc):
    """One readable line for an exception, without Python's decorations."""
    import ssl as stdlib_ssl

    if isinstance(exc, CliError):
        return str(exc)
    if isinstance(exc, asyncio.TimeoutError):  # an OSError since 3.11
        return str(exc) or "timed out"
    if isinstance(exc, stdlib_ssl.SSLError):
        # GnuTLS errors carry a complete message; the stdlib's own SSL
        # errors (only seen with a stdlib context) too, in their own style.
        return str(exc) or type(exc).__name__
    if isinstance(exc, OSError):
        return _oserror_text(exc)
    text = str(exc)
    return text if text else type(exc).__name__


def _oserror_text(exc):
    filename = getattr(exc, "filename", None)
    reason = _oserror_reason(exc)
    if filename is not None:
        return "%s: %s" % (os.fsdecode(filename), reason)
    return reason


def _oserror_reason(exc):
    """The reason of an OSError: strerror of its errno where that is known.

    asyncio wraps connection failures as OSError(errno, "Connect call
    failed ('::1', 1, 0, 0)") or, with several addresses, an OSError whose
    message lists them all; the user wants "Connection refused".
    """
    if isinstance(exc.errno, int) and exc.errno > 0:
        try:
            if not exc.strerror or "call failed" in exc.strerror \
                    or "attempting to bind" in exc.strerror:
                return os.strerror(exc.errno)
        except ValueError:
            pass
        return exc.strerror
    if exc.strerror:
        return exc.strerror
    text = str(exc)
    codes = set(int(code) for code in re.findall(r"\[Errno (-?\d+)\]", text))
    if len(codes) == 1:
        code = codes.pop()
        if code > 0:
            return os.strerror(code)
    return text if text else type(exc).__name__


def _format_address(address):
    if isinstance(address, tuple) and len(address) >= 2:
        host, port = address[0], address[1]
        if ":" in str(host):
            return "[%s]:%s" % (host, port)
        return "%s:%s" % (host, port)
    return str(address)


def _format_time(epoch):
    try:
        return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(epoch))
    except (OverflowError, ValueError, OSError):
        return str(epoch)


def _isatty(fd):
    try:
        return os.isatty(fd)
    except OSError:
        return False


def _is_ip_literal(name):
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


# ------------------------------------------------------- argument parsing


class _ArgumentParser(argparse.ArgumentParser):
    """Reports a bad command line as one line instead of usage + error."""

    def error(self, message):
        self.exit(EXIT_USAGE, "%s: error: %s (see --help)\n" % (PROG, message))


def _port(text, allow_zero):
    try:
        value = int(text, 10)
    except ValueError:
        raise argparse.ArgumentTypeError("invalid port number: %r" % text)
    low = 0 if allow_zero else 1
    if not low <= value <= 65535:
        raise argparse.ArgumentTypeError(
            "port must be between %d and 65535, not %d" % (low, value))
    return value


def _client_port(text):
    return _port(text, allow_zero=False)


def _server_port(text):
    return _port(text, allow_zero=True)


def _add_credential_options(parser, who, required):
    """--cert, --key, --password-file and --pkcs11-module: the same for
    client and server."""
    parser.add_argument(
        "--cert", metavar="FILE|URL", required=required,
        help="%s certificate chain: a PEM or DER file, which may contain "
        "the key too, or a pkcs11: URL" % who)
    parser.add_argument(
        "--key", metavar="FILE|URL",
        help="private key for --cert: a file or a pkcs11: URL (default: "
        "the key in the --cert file)")
    parser.add_argument(
        "--password-file", metavar="FILE",
        help="read the password of an encrypted --key file, or the PIN of "
        "a pkcs11: key, from the first line of FILE (default: the PIN in "
        "the URL, else asked for when stdin is a terminal)")
    _add_module_option(parser)


def _add_module_option(parser):
    parser.add_argument(
        "--pkcs11-module", metavar="PATH", action="append", default=[],
        help="also load the PKCS#11 module (shared library) at PATH, besides "
        "those registered with p11-kit; may be repeated")


def build_parser():
    parser = _ArgumentParser(
        prog="python3 -m " + PROG,
        description="TLS client, server and demo over GnuTLS with asyncio, "
        "and info on the installation.")
    debug_help = "show Python tracebacks and asyncio debug messages"
    parser.add_argument("--debug", action="store_true", help=debug_help)
    # Also accepted after the command; SUPPRESS keeps the subcommand's
    # default from overwriting a --debug given before it.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true",
                        default=argparse.SUPPRESS, help=debug_help)
    commands = parser.add_subparsers(
        dest="command", metavar="COMMAND", parser_class=_ArgumentParser)
    commands.required = True

    client = commands.add_parser(
        "client", parents=[common],
        help="connect to a TLS server (like gnutls-cli)",
        description="Connect to HOST:PORT over TLS, print the negotiated "
        "parameters and the server certificate to stderr, then copy stdin "
        "to the connection and the connection to stdout. End of stdin "
        "half-closes the connection (TLS close_notify); the client keeps "
        "printing what arrives until the server closes. If the server "
        "closes first, the rest of stdin is still sent, unless stdin is a "
        "terminal.")
    client.add_argument("host", metavar="HOST")
    client.add_argument("port", metavar="PORT", type=_client_port)
    client.add_argument(
        "--cafile", metavar="FILE",
        help="trust the CA certificates in FILE (PEM or DER) instead of "
        "the system trust store")
    client.add_argument(
        "--capath", metavar="DIR",
        help="trust the CA certificates in directory DIR")
    _add_credential_options(client, "client", required=False)
    client.add_argument(
        "--insecure", action="store_true",
        help="do not verify the server certificate (CERT_NONE)")
    client.add_argument(
        "--sni", metavar="NAME",
        help="server name to send and to check the certificate against "
        "(default: HOST)")
    client.add_argument(
        "--priority", metavar="STRING",
        help="GnuTLS priority string, e.g. 'NORMAL:-VERS-TLS1.2'")

    server = commands.add_parser(
        "server", parents=[common],
        help="serve TLS: echo, or one connection on stdin/stdout",
        description="Serve TLS on HOST:PORT until interrupted. With --echo "
        "(the default) every connection gets its data back and the server "
        "half-closes its side once the client has half-closed. With --pipe "
        "the first connection is joined to stdin/stdout; the server exits "
        "when it ends. Prints 'listening on HOST:PORT' to stderr once ready.")
    server.add_argument(
        "--host", default="127.0.0.1",
        help="address to listen on (default: %(default)s)")
    server.add_argument(
        "--port", type=_server_port, default=0,
        help="port to listen on; 0 picks a free one (default: %(default)s)")
    _add_credential_options(server, "server", required=True)
    server.add_argument(
        "--cafile", metavar="FILE",
        help="CA certificates to verify client certificates with")
    server.add_argument(
        "--verify", choices=("none", "optional", "required"),
        help="client certificates: none = not requested, optional = "
        "requested and verified if sent, required = must be sent and valid "
        "(default: required with --cafile, none without)")
    server.add_argument(
        "--priority", metavar="STRING", help="GnuTLS priority string")
    server.add_argument(
        "--quiet", "-q", action="store_true",
        help="do not log connections to stderr")
    mode = server.add_mutually_exclusive_group()
    mode.add_argument(
        "--echo", dest="mode", action="store_const", const="echo",
        help="echo each connection's data back (default)")
    mode.add_argument(
        "--pipe", dest="mode", action="store_const", const="pipe",
        help="join the first connection to stdin/stdout, then exit")
    server.set_defaults(mode="echo")

    commands.add_parser(
        "demo", parents=[common],
        help="show a TLS connection and a half-close in one process",
        description="Run a server and a client in this process on "
        "127.0.0.1 with a throwaway certificate (made with certtool or "
        "openssl), show what they negotiated, a half-closed exchange and a "
        "refused certificate.")

    info = commands.add_parser(
        "info", parents=[common],
        help="show versions, the system trust store and PKCS#11 tokens",
        description="Print what an administrator checks first: the versions "
        "of this package, GnuTLS, p11-kit and Python; whether the system "
        "trust store loads and how many certificates it holds; the PKCS#11 "
        "modules registered with p11-kit and the tokens (smartcards, HSMs) "
        "they show, with their pkcs11: URLs.")
    _add_module_option(info)
    return parser


# ------------------------------------------------------------------- main


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return _dispatch(args)
    except KeyboardInterrupt:
        # Reached only where no signal handler could be installed.
        return EXIT_OK if args.command == "server" else EXIT_INTERRUPTED
    except (CliError, OSError, ValueError, NotImplementedError, TypeError,
            RuntimeError, asyncio.TimeoutError, EOFError) as exc:
        if args.debug:
            raise
        _say("%s: error: %s" % (PROG, error_text(exc)))
        return EXIT_FAILURE
    except Exception as exc:  # the promise: no traceback without --debug
        if args.debug:
            raise
        _say("%s: error: unexpected %s: %s (run with --debug for details)"
             % (PROG, type(exc).__name__, error_text(exc)))
        return EXIT_FAILURE


def _dispatch(args):
    try:
        importlib.import_module("aio_gnutls_transport._gnutls")
    except ImportError as exc:
        raise CliError("cannot load the GnuTLS extension module: %s" % exc)
    _load_pkcs11_modules(getattr(args, "pkcs11_module", None) or ())
    if args.command == "info":
        return _info(args)
    if args.command == "client":
        return _run(lambda: _client(args), args.debug)
    if args.command == "server":
        return _run(lambda: _server(args), args.debug)
    return _run(_demo, args.debug)


def _run(make_coroutine, debug):
    """Run a coroutine on a fresh loop from GnutlsEventLoopPolicy."""
    from aio_gnutls_transport import GnutlsEventLoopPolicy

    loop = GnutlsEventLoopPolicy().new_event_loop()
    asyncio.set_event_loop(loop)
    if debug:
        loop.set_debug(True)
    else:
        loop.set_exception_handler(_exception_handler)
    try:
        return loop.run_until_complete(make_coroutine())
    finally:
        try:
            _cancel_remaining_tasks(loop)
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            asyncio.set_event_loop(None)
            loop.close()


def _cancel_remaining_tasks(loop):
    tasks = [task for task in asyncio.all_tasks(loop) if not task.done()]
    for task in tasks:
        task.cancel()
    if tasks:
        loop.run_until_complete(
            asyncio.gather(*tasks, return_exceptions=True))


def _exception_handler(loop, context):
    """asyncio's default handler prints tracebacks; we print one line."""
    message = context.get("message") or "unexpected error in the event loop"
    exc = context.get("exception")
    if exc is not None:
        message = "%s: %s" % (message, error_text(exc))
    _warn(message)


def _on_signals(loop, callback, signals=(signal.SIGINT, signal.SIGTERM)):
    """Call callback on the loop for these signals; returns an undo function.

    Falls back to Python's default KeyboardInterrupt where the loop cannot
    watch signals (not the main thread, or a platform without them).
    """
    installed = []
    for signum in signals:
        try:
            loop.add_signal_handler(signum, callback)
        except (NotImplementedError, RuntimeError, ValueError):
            continue
        installed.append(signum)

    def undo():
        for signum in installed:
            loop.remove_signal_handler(signum)
    return undo


# ------------------------------------------------------ TLS context setup


def _load(option, load, *args, **kwargs):
    """Run a context loader; an error names the command-line option."""
    try:
        load(*args, **kwargs)
    except OSError as exc:
        raise CliError("%s: %s" % (option, error_text(exc)))


def _load_pkcs11_modules(paths):
    from aio_gnutls_transport import load_pkcs11_module

    for path in paths:
        try:
            load_pkcs11_module(path)
        except OSError as exc:
            raise CliError("--pkcs11-module: %s" % error_text(exc))


def _is_pkcs11_url(name):
    return name.lower().startswith("pkcs11:")


def _url_attribute(url, name):
    """The decoded value of attribute name in a pkcs11: URL, or None."""
    match = re.search(r"[:;?&]%s=([^;?&]*)" % re.escape(name), url, re.I)
    return urllib.parse.unquote(match.group(1)) if match else None


def _url_gives_pin(url):
    """Whether a pkcs11: URL carries its PIN (pin-value or pin-source)."""
    return _url_attribute(url, "pin-value") is not None \
        or _url_attribute(url, "pin-source") is not None


def _hide_pins(text):
    """Error text with the PIN of any pkcs11: URL in it blanked out."""
    return re.sub(r"(pin-value=)[^;&?'\"\s]*", r"\1***", text, flags=re.I)


def _token_name(url):
    """The token's label in a pkcs11: URL, else the URL up to its query."""
    label = _url_attribute(url, "token")
    if label is not None:
        return "token '%s'" % label
    return "the token of %s" % _hide_pins(url.split("?")[0])


def _url_pin_error(url):
    """What to say when the token refused the PIN that a URL gives."""
    source = _url_attribute(url, "pin-source")
    if _url_attribute(url, "pin-value") is not None or source is None:
        return "wrong PIN: %s rejected the pin-value of the URL (not " \
            "retried, so as not to lock the token)" % _token_name(url)
    try:
        with open(source, "rb") as f:
            pin = f.read()
    except OSError as exc:
        return "cannot read the PIN file of pin-source: %s" % error_text(exc)
    text = "wrong PIN: %s rejected the PIN read from %s (pin-source; not " \
        "retried, so as not to lock the token)" % (_token_name(url), source)
    if pin.endswith(b"\n"):
        text += "; the file ends with a newline, which GnuTLS takes as " \
            "part of the PIN"
    return text


# The error reasons of a key that needs a PIN or password nobody gave.
_SECRET_NEEDED = frozenset((
    "GNUTLS_E_PKCS11_PIN_ERROR",
    "GNUTLS_E_DECRYPTION_FAILED",
    "GNUTLS_E_PK_INVALID_PRIVKEY",
))


def _load_cert_chain(context, args):
    """Load --cert and --key, with a PIN or password if the key needs one.

    The secret comes from the pkcs11: URL (pin-value, pin-source), from
    --password-file, or else, once the key has turned out to need one, from
    a prompt at the terminal.  Without a terminal that is one error line
    saying how to give it.  A rejected PIN is not asked for again: each
    wrong try brings a smartcard closer to locking itself.
    """
    from aio_gnutls_transport import GnutlsError

    cert, key = args.cert, args.key
    if key is None and _is_pkcs11_url(cert):
        raise CliError("--cert is a pkcs11: URL: give the private key's URL "
                       "with --key")
    key_name = key if key is not None else cert
    if args.password_file is not None:
        password = _read_password_file(args.password_file)
    elif _is_pkcs11_url(key_name) and _url_gives_pin(key_name):
        password = None
    else:
        try:
            context.load_cert_chain(cert, key)
            return
        except GnutlsError as exc:
            if getattr(exc, "reason", None) not in _SECRET_NEEDED:
                raise _load_error(exc)
        except OSError as exc:
            raise _load_error(exc)
        password = _ask_secret(key_name)
    try:
        context.load_cert_chain(cert, key, password)
    except GnutlsError as exc:
        if password is None and getattr(exc, "reason", None) \
                == "GNUTLS_E_PKCS11_PIN_ERROR":
            raise CliError("--key: %s" % _url_pin_error(key_name))
        raise _load_error(exc)
    except OSError as exc:
        raise _load_error(exc)


def _load_error(exc):
    return CliError("--cert/--key: %s" % _hide_pins(error_text(exc)))


def _read_password_file(path):
    try:
        with open(path, "rb") as f:
            line = f.readline()
    except OSError as exc:
        raise CliError("--password-file: %s" % error_text(exc))
    return line.rstrip(b"\r\n")


def _ask_secret(key_name):
    """The PIN or password for key_name, typed at the terminal."""
    if _is_pkcs11_url(key_name):
        what = "PIN"
        prompt = "PIN for %s: " % _token_name(key_name)
        how = "put pin-value=PIN or pin-source=FILE in the pkcs11: URL, or " \
            "give --password-file FILE"
        need = "%s needs a PIN" % _token_name(key_name)
    else:
        what = "password"
        prompt = "Password for %s: " % key_name
        how = "give it with --password-file FILE"
        need = "the key in %s is encrypted" % key_name
    if not _isatty(0):
        raise CliError("--key: %s and stdin is not a terminal to ask for it: "
                       "%s" % (need, how))
    try:
        return getpass.getpass(prompt)
    except EOFError:
        raise CliError("--key: no %s entered" % what)


def _client_context(args):
    from aio_gnutls_transport import ssl

    # Without --cafile/--capath the system trust store is used.
    if args.cafile is not None or args.capath is not None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        if args.cafile is not None:
            _load("--cafile", context.load_verify_locations,
                  cafile=args.cafile)
        if args.capath is not None:
            _load("--capath", context.load_verify_locations,
                  capath=args.capath)
    else:
        context = ssl.create_default_context()
    if args.insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if args.cert is None:
        if args.key is not None:
            raise CliError("--key needs --cert")
        if args.password_file is not None:
            raise CliError("--password-file needs --key or --cert")
    else:
        _load_cert_chain(context, args)
    if args.priority is not None:
        context.gnutls_set_priority(args.priority)
    return context


def _server_context(args):
    from aio_gnutls_transport import ssl

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    _load_cert_chain(context, args)
    verify = args.verify
    if verify is None:
        verify = "required" if args.cafile is not None else "none"
    if verify != "none" and args.cafile is None:
        raise CliError("--verify %s needs --cafile to check client "
                       "certificates against" % verify)
    if args.cafile is not None:
        _load("--cafile", context.load_verify_locations, cafile=args.cafile)
    context.verify_mode = {
        "none": ssl.CERT_NONE,
        "optional": ssl.CERT_OPTIONAL,
        "required": ssl.CERT_REQUIRED,
    }[verify]
    if args.priority is not None:
        context.gnutls_set_priority(args.priority)
    return context


# ----------------------------------------------- describing a connection


def peer_certificate_info(ssl_object):
    """certificate_info() of the peer's certificate, or None."""
    from aio_gnutls_transport import _gnutls

    if ssl_object is None:
        return None
    der = ssl_object.getpeercert(binary_form=True)
    if not der:
        return None
    return _gnutls.certificate_info(der)


def describe_session(transport):
    """Lines describing a TLS connection: version, cipher, peer certificate."""
    ssl_object = transport.get_extra_info("ssl_object")
    lines = []
    if ssl_object is None:
        return ["not a TLS connection"]
    lines.append("protocol: %s" % (ssl_object.version(),))
    cipher = ssl_object.cipher()
    if cipher:
        lines.append("cipher: %s (%s-bit)" % (cipher[0], cipher[2]))
    description = getattr(ssl_object, "description", None)
    if callable(description):
        try:
            text = description()
        except (AttributeError, NotImplementedError, ValueError):
            text = None
        if text:
            lines.append("session: %s" % text)
    info = peer_certificate_info(ssl_object)
    who = "client" if ssl_object.server_side else "server"
    if info is None:
        lines.append("%s certificate: none" % who)
    else:
        lines.append("%s certificate subject: %s" % (who, info["subject"]))
        lines.append("%s certificate issuer: %s" % (who, info["issuer"]))
        lines.append("%s certificate valid: %s to %s" % (
            who, _format_time(info["not_before"]),
            _format_time(info["not_after"])))
        names = info.get("subject_alt_names") or []
        if names:
            lines.append("%s certificate names: %s" % (
                who, ", ".join("%s:%s" % pair for pair in names)))
    return lines


def describe_verification(context, server_hostname):
    """The verification result of an established client connection."""
    from aio_gnutls_transport import ssl

    if context.verify_mode == ssl.CERT_NONE:
        return "verification: NOT verified (--insecure): anyone could be " \
            "at the other end"
    text = "verification: OK, certificate chain trusted"
    if context.check_hostname and server_hostname:
        kind = "address" if _is_ip_literal(server_hostname) else "hostname"
        text += ", %s %r matches" % (kind, server_hostname)
    return text


# -------------------------------------------------------- stdin and stdout


class _StdinReader:
    """Reads a file descriptor in a daemon thread, chunk by chunk.

    A thread works for every kind of stdin: terminal, pipe, socket, regular
    file and /dev/null (the selector loop can watch only the first three).
    At most a few chunks wait in the queue, so a slow connection stops the
    reading.  The thread is a daemon: if the connection ends first it may
    stay blocked in read() until the process exits.
    """

    def __init__(self, loop, fd):
        self._loop = loop
        self._fd = fd
        self._queue = asyncio.Queue(maxsize=4)
        self._thread = threading.Thread(
            target=self._run, name="stdin-reader", daemon=True)

    def start(self):
        self._thread.start()

    async def read(self):
        """The next chunk; b"" at end of input.  Raises OSError on error."""
        item = await self._queue.get()
        if isinstance(item, BaseException):
            raise item
        return item

    def _run(self):
        while True:
            try:
                item = os.read(self._fd, CHUNK_SIZE)
            except OSError as exc:
                item = exc
            try:
                future = asyncio.run_coroutine_threadsafe(
                    self._queue.put(item), self._loop)
                future.result()
            except Exception:
                return  # the loop has gone away
            if not isinstance(item, bytes) or not item:
                return


class _Output:
    """Binary stdout that turns a closed pipe into "stop writing"."""

    stdout_broken = False

    def __init__(self, stream):
        self._stream = stream

    @property
    def broken(self):
        return _Output.stdout_broken

    def write(self, data):
        if self.broken:
            return False
        try:
            self._stream.write(data)
            self._stream.flush()
        except BrokenPipeError:
            self._mark_broken(self._stream)
            return False
        return True

    @classmethod
    def print_line(cls, text):
        """print() to stdout, silenced once the reader has gone away."""
        if cls.stdout_broken:
            return
        try:
            print(text, flush=True)
        except BrokenPipeError:
            cls._mark_broken(sys.stdout)

    @staticmethod
    def _mark_broken(stream):
        _Output.stdout_broken = True
        # Keep the interpreter's final flush from complaining.
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, stream.fileno())
            os.close(devnull)
        except (OSError, ValueError):
            pass


class _PipeProtocol(asyncio.Protocol):
    """Connection data to an _Output; flow control for the writer side.

    keep_writing_after_peer_eof: when the peer half-closes, keep our side
    open until our input ends too; otherwise the peer's close ends the
    connection.
    on_made(protocol, transport): called when the connection is up; a false
    result refuses it (closed at once, its data ignored).
    """

    def __init__(self, loop, output, keep_writing_after_peer_eof,
                 on_made=None):
        self._loop = loop
        self._output = output
        self._keep_writing = keep_writing_after_peer_eof
        self._on_made = on_made
        self.transport = None
        self.closed = loop.create_future()
        self.peer_eof = False
        self.refused = False
        self.input_done = False
        self.input_error = None
        self._paused = False
        self._drain_waiter = None

    def connection_made(self, transport):
        self.transport = transport
        if self._on_made is not None and not self._on_made(self, transport):
            self.refused = True
            transport.close()

    def data_received(self, data):
        if self.refused:
            return
        if not self._output.write(data):
            # Nobody reads our output any more: say goodbye politely.
            self.transport.close()

    def eof_received(self):
        self.peer_eof = True
        if self.refused:
            return False
        if self._keep_writing and not self.input_done:
            return True
        return False

    def connection_lost(self, exc):
        if not self.closed.done():
            self.closed.set_result(exc)
        self._wake_writer()

    def pause_writing(self):
        self._paused = True

    def resume_writing(self):
        self._paused = False
        self._wake_writer()

    def _wake_writer(self):
        waiter, self._drain_waiter = self._drain_waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def drain(self):
        if self._paused and not self.closed.done():
            self._drain_waiter = self._loop.create_future()
            await self._drain_waiter

    async def copy_input(self, reader):
        """Send everything from reader; half-close at its end."""
        try:
            while not self.closed.done():
                try:
                    data = await reader.read()
                except OSError as exc:
                    self.input_error = exc
                    self.transport.close()
                    return
                if self.closed.done() or self.transport.is_closing():
                    return
                if not data:
                    break
                self.transport.write(data)
                await self.drain()
        finally:
            self.input_done = True
        if self.closed.done() or self.transport.is_closing():
            return
        if self.peer_eof:
            self.transport.close()
        elif self.transport.can_write_eof():
            self.transport.write_eof()
        else:
            self.transport.close()


async def _close_transport(transport, closed, grace=STOP_GRACE_SECONDS):
    """close() with a deadline for the TLS shutdown, then abort()."""
    if not transport.is_closing():
        transport.close()
    try:
        await asyncio.wait_for(asyncio.shield(closed), grace)
    except asyncio.TimeoutError:
        transport.abort()
        await asyncio.wait_for(asyncio.shield(closed), grace)


# ------------------------------------------------------------------ client


async def _client(args):
    loop = asyncio.get_running_loop()
    context = _client_context(args)
    server_hostname = args.sni if args.sni is not None else args.host
    address = _format_address((args.host, args.port))

    output = _Output(sys.stdout.buffer)
    # A server may half-close before it has read all we send: the rest of
    # stdin still goes out.  At a terminal the server's close ends the
    # session instead, as with gnutls-cli.
    protocol = _PipeProtocol(loop, output,
                             keep_writing_after_peer_eof=not _isatty(0))
    try:
        transport, _ = await loop.create_connection(
            lambda: protocol, args.host, args.port, ssl=context,
            server_hostname=server_hostname)
    except OSError as exc:
        import ssl as stdlib_ssl
        if isinstance(exc, stdlib_ssl.SSLError):
            raise CliError("%s: %s" % (address, error_text(exc)))
        raise CliError("cannot connect to %s: %s" % (address, error_text(exc)))
    except asyncio.TimeoutError:
        raise CliError("TLS handshake with %s timed out" % address)

    _say("connected to %s (%s)" % (
        address, _format_address(transport.get_extra_info("peername"))))
    for line in describe_session(transport):
        _say("- " + line)
    _say("- " + describe_verification(context, server_hostname))

    interrupted = loop.create_future()
    undo = _on_signals(loop, lambda: interrupted.done() or
                       interrupted.set_result(None))
    reader = _StdinReader(loop, 0)
    reader.start()
    copier = loop.create_task(protocol.copy_input(reader))
    try:
        await asyncio.wait((protocol.closed, interrupted),
                           return_when=asyncio.FIRST_COMPLETED)
    finally:
        undo()
        copier.cancel()
    if not protocol.closed.done():
        await _close_transport(transport, protocol.closed)
        return EXIT_INTERRUPTED
    exc = protocol.closed.result()
    if protocol.input_error is not None:
        raise CliError("reading stdin: %s" % error_text(protocol.input_error))
    if exc is not None:
        raise CliError("connection to %s ended: %s"
                       % (address, error_text(exc)))
    return EXIT_OK


# ------------------------------------------------------------------ server


class _EchoProtocol(asyncio.Protocol):
    """Echoes data; answers the client's half-close with its own."""

    def __init__(self, connections, log):
        self._connections = connections
        self._log = log
        self.transport = None
        self.peer = None

    def connection_made(self, transport):
        self.transport = transport
        self.peer = _format_address(transport.get_extra_info("peername"))
        self._connections.add(transport)
        self._log(_connection_line(self.peer, transport))

    def data_received(self, data):
        self.transport.write(data)

    def eof_received(self):
        # Everything the client sent has been echoed already; our
        # close_notify follows it.  Returning False closes the connection
        # once both directions are done.
        if self.transport.can_write_eof():
            self.transport.write_eof()
        return False

    def pause_writing(self):
        # The client does not read its echo: stop reading from it too.
        self.transport.pause_reading()

    def resume_writing(self):
        self.transport.resume_reading()

    def connection_lost(self, exc):
        self._connections.discard(self.transport)
        if exc is None:
            self._log("%s: closed" % self.peer)
        else:
            self._log("%s: closed: %s" % (self.peer, error_text(exc)))


def _connection_line(peer, transport):
    ssl_object = transport.get_extra_info("ssl_object")
    if ssl_object is None:
        return "%s: connected (no TLS)" % peer
    parts = [str(ssl_object.version())]
    cipher = ssl_object.cipher()
    if cipher:
        parts.append(cipher[0])
    try:
        info = peer_certificate_info(ssl_object)
    except (ValueError, OSError):
        info = None
    if info is None:
        parts.append("no client certificate")
    else:
        parts.append("client certificate: %s" % info["subject"])
    return "%s: connected, %s" % (peer, ", ".join(parts))


class _SayHandler(logging.Handler):
    """Log records of the package, as the server's own lines."""

    def emit(self, record):
        _say(record.getMessage())


async def _server(args):
    loop = asyncio.get_running_loop()
    context = _server_context(args)
    log = (lambda text: None) if args.quiet else _say
    if not args.quiet:
        # Why a client was turned away (failed handshakes).
        package_log = logging.getLogger("aio_gnutls_transport")
        package_log.setLevel(logging.INFO)
        package_log.addHandler(_SayHandler())
    stop = asyncio.Event()
    connections = set()
    piped = []

    if args.mode == "pipe":
        output = _Output(sys.stdout.buffer)

        def accept(protocol, transport):
            # Called once the handshake is done: a failed handshake must
            # not take the place of the one connection we serve.
            peer = _format_address(transport.get_extra_info("peername"))
            if piped:
                log("%s: refused, --pipe serves one connection" % peer)
                return False
            log(_connection_line(peer, transport))
            piped.append(
                (protocol, loop.create_task(_serve_pipe(protocol, stop))))
            return True

        def factory():
            return _PipeProtocol(
                loop, output, keep_writing_after_peer_eof=True,
                on_made=accept)
    else:
        def factory():
            return _EchoProtocol(connections, log)

    display = "[%s]" % args.host if ":" in args.host else args.host
    try:
        server = await loop.create_server(
            factory, args.host, args.port, ssl=context)
    except OSError as exc:
        raise CliError("cannot listen on %s:%d: %s"
                       % (display, args.port, error_text(exc)))
    undo = _on_signals(loop, stop.set)
    try:
        for sock in server.sockets:
            _say("listening on %s" % _format_address(sock.getsockname()))
        await stop.wait()
    finally:
        undo()
        server.close()
    # Say goodbye (close_notify) to whoever is still connected.
    failed = False
    for protocol, task in piped:
        if task.done():
            failed = task.result() is not None
        else:  # interrupted
            await _close_transport(protocol.transport, protocol.closed)
    for transport in list(connections):
        transport.close()
    deadline = loop.time() + STOP_GRACE_SECONDS
    while connections and loop.time() < deadline:
        await asyncio.sleep(0.05)
    for transport in list(connections):
        transport.abort()
    await asyncio.sleep(0)
    return EXIT_FAILURE if failed else EXIT_OK


async def _serve_pipe(protocol, stop):
    loop = asyncio.get_running_loop()
    reader = _StdinReader(loop, 0)
    reader.start()
    copier = loop.create_task(protocol.copy_input(reader))
    try:
        exc = await protocol.closed
    finally:
        copier.cancel()
    if exc is not None:
        _say("%s: error: connection ended: %s" % (PROG, error_text(exc)))
    elif protocol.input_error is not None:
        exc = protocol.input_error
        _say("%s: error: reading stdin: %s" % (PROG, error_text(exc)))
    stop.set()
    return exc


# -------------------------------------------------------------------- info
#
# The report is sections of "Name: value" lines; the details of an entry are
# indented under it and sections are separated by an empty line.  Scripts
# and the tests read it, so keep the wording of the unindented lines.  Each
# section is a function of the parsed arguments returning its lines: a new
# section is one more function in _INFO_SECTIONS.


def _info(args):
    first = True
    for section in _INFO_SECTIONS:
        if not first:
            _Output.print_line("")
        first = False
        for line in section(args):
            _Output.print_line(line)
    return EXIT_OK


def _package_version():
    import aio_gnutls_transport

    version = getattr(aio_gnutls_transport, "__version__", None)
    if version:
        return str(version)
    try:
        from importlib import metadata
        return metadata.version(PROG)
    except Exception:  # not installed as a distribution, or no metadata
        return None


def _info_versions(args):
    import aio_gnutls_transport
    from aio_gnutls_transport import _gnutls

    where = os.path.dirname(os.path.abspath(aio_gnutls_transport.__file__))
    p11kit = getattr(_gnutls, "P11KIT_VERSION", None)
    return [
        "%s: %s" % (PROG, _package_version() or "version unknown"),
        "  imported from %s" % where,
        "GnuTLS: %s" % _gnutls.GNUTLS_VERSION,
        "p11-kit: %s" % ("%s (built with)" % p11kit if p11kit else "unknown"),
        "Python: %s (%s)" % (sys.version.split()[0], sys.executable),
    ]


def _info_system_trust(args):
    from aio_gnutls_transport import _gnutls

    try:
        count = _gnutls.Credentials().load_system_trust()
    except OSError as exc:
        head = "System trust store: cannot load: %s" % error_text(exc)
    else:
        head = "System trust store: %d certificate%s" % (
            count, "" if count == 1 else "s")
    return [
        head,
        "  as GnuTLS finds it (set when GnuTLS was built); used by "
        "ssl.create_default_context()",
    ]


def _info_pkcs11_modules(args):
    from aio_gnutls_transport import _gnutls

    try:
        modules = _gnutls.pkcs11_modules()
    except OSError as exc:
        lines = ["PKCS#11 modules registered with p11-kit: cannot list: %s"
                 % error_text(exc)]
    else:
        lines = ["PKCS#11 modules registered with p11-kit: %d" % len(modules)]
        lines += ["  %s: %s" % (module.get("name") or "(no name)",
                                module.get("path") or "(no path)")
                  for module in modules]
    if args.pkcs11_module:
        lines.append("PKCS#11 modules loaded with --pkcs11-module: %d"
                     % len(args.pkcs11_module))
        lines += ["  %s" % path for path in args.pkcs11_module]
    return lines


_TOKEN_DETAILS = ("label", "manufacturer", "model", "serial", "module")


def _info_pkcs11_tokens(args):
    from aio_gnutls_transport import _gnutls

    try:
        tokens = _gnutls.pkcs11_tokens()
    except OSError as exc:
        return ["PKCS#11 tokens: cannot list: %s" % error_text(exc)]
    lines = ["PKCS#11 tokens: %d" % len(tokens)]
    for token in tokens:
        lines.append("  %s" % token.get("url", "(no URL)"))
        for key in _TOKEN_DETAILS:
            if token.get(key):
                lines.append("    %s: %s" % (key, token[key]))
        lines.append("    flags: %s" % (", ".join(token.get("flags") or ())
                                        or "none"))
    return lines


def _info_policy(args):
    from aio_gnutls_transport import _config, _gnutls, ssl

    path = _config.site_config_file()
    lines = ["Site TLS policy file: %s (%s)" % (
        path, "present" if os.path.exists(path) else
        "absent: the built-in default applies")]
    if os.environ.get(_config.ENVIRONMENT_VARIABLE):
        lines.append("  named by %s" % _config.ENVIRONMENT_VARIABLE)
    lines.append("  GnuTLS system configuration: %s (%s)" % (
        _gnutls.system_config_file(),
        "present" if os.path.exists(_gnutls.system_config_file())
        else "absent"))
    for side, protocol in (("client", ssl.PROTOCOL_TLS_CLIENT),
                           ("server", ssl.PROTOCOL_TLS_SERVER)):
        try:
            context = ssl.SSLContext(protocol)
        except (OSError, ValueError) as exc:
            lines.append("TLS policy for %s contexts: cannot be used: %s"
                         % (side, error_text(exc)))
            continue
        priority = context.gnutls_priority_object
        lines += [
            "TLS policy for %s contexts: %s" % (side, priority.string),
            "  from: %s" % context.gnutls_priority_source,
            "  protocol versions: %s" % (", ".join(priority.protocols())
                                         or "none"),
            "  ciphers: %s" % ", ".join(priority.ciphers()),
            "  key exchange groups: %s" % ", ".join(priority.groups()),
        ]
    return lines


# The sections of "info", in order.
_INFO_SECTIONS = (
    _info_versions,
    _info_system_trust,
    _info_policy,
    _info_pkcs11_modules,
    _info_pkcs11_tokens,
)


# -------------------------------------------------- throwaway certificates


def make_test_certificates(directory):
    """A CA and a server certificate for "localhost" and 127.0.0.1.

    Uses GnuTLS's certtool if installed, else the openssl command.  Returns
    a dict with the paths "ca", "cert", "key" and the "tool" used.
    Raises CliError when neither tool is available or one fails.
    """
    if shutil.which("certtool"):
        return _make_with_certtool(directory)
    if shutil.which("openssl"):
        return _make_with_openssl(directory)
    raise CliError("making a throwaway certificate needs the certtool "
                   "(GnuTLS) or openssl command; install one of them")


def _tool(argv, cwd):
    try:
        result = subprocess.run(
            argv, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, timeout=60)
    except (OSError, subprocess.SubprocessError) as exc:
        raise CliError("running %s failed: %s" % (argv[0], error_text(exc)))
    if result.returncode != 0:
        lines = result.stderr.decode("utf-8", "replace").strip().splitlines()
        detail = lines[-1] if lines else "exit status %d" % result.returncode
        raise CliError("%s failed: %s" % (" ".join(argv[:2]), detail))
    return result


def _write(path, text):
    with open(path, "w") as f:
        f.write(text)


def _make_with_certtool(directory):
    paths = {name: os.path.join(directory, name + ".pem")
             for name in ("ca", "ca-key", "cert", "key")}
    ca_template = os.path.join(directory, "ca.tmpl")
    server_template = os.path.join(directory, "server.tmpl")
    _write(ca_template,
           'cn = "%s demo CA"\nca\ncert_signing_key\ncrl_signing_key\n'
           'expiration_days = 2\n' % PROG)
    _write(server_template,
           'cn = "localhost"\ndns_name = "localhost"\n'
           'ip_address = "127.0.0.1"\ntls_www_server\nsigning_key\n'
           'expiration_days = 2\n')
    for key in ("ca-key", "key"):
        _tool(["certtool", "--generate-privkey", "--key-type=ecdsa",
               "--outfile", paths[key]], directory)
    _tool(["certtool", "--generate-self-signed",
           "--load-privkey", paths["ca-key"], "--template", ca_template,
           "--outfile", paths["ca"]], directory)
    _tool(["certtool", "--generate-certificate",
           "--load-privkey", paths["key"],
           "--load-ca-certificate", paths["ca"],
           "--load-ca-privkey", paths["ca-key"],
           "--template", server_template, "--outfile", paths["cert"]],
          directory)
    return {"ca": paths["ca"], "cert": paths["cert"], "key": paths["key"],
            "tool": "certtool"}


_OPENSSL_CONFIG = """\
[req]
distinguished_name = dn
prompt = no
[dn]
CN = %s demo CA
[ca_ext]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[server_ext]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost, IP:127.0.0.1
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
""" % PROG


def _make_with_openssl(directory):
    config = os.path.join(directory, "openssl.cnf")
    _write(config, _OPENSSL_CONFIG)
    paths = {name: os.path.join(directory, name + ".pem")
             for name in ("ca", "ca-key", "cert", "key", "csr")}
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    _tool(["openssl", "req", "-x509", "-config", config,
           "-extensions", "ca_ext", "-days", "2"] + ec +
          ["-keyout", paths["ca-key"], "-out", paths["ca"]], directory)
    _tool(["openssl", "req", "-new", "-config", config,
           "-subj", "/CN=localhost"] + ec +
          ["-keyout", paths["key"], "-out", paths["csr"]], directory)
    _tool(["openssl", "x509", "-req", "-in", paths["csr"],
           "-CA", paths["ca"], "-CAkey", paths["ca-key"],
           "-set_serial", str(int.from_bytes(os.urandom(8), "big")),
           "-days", "2", "-extfile", config, "-extensions", "server_ext",
           "-out", paths["cert"]], directory)
    return {"ca": paths["ca"], "cert": paths["cert"], "key": paths["key"],
            "tool": "openssl"}


# -------------------------------------------------------------------- demo


def _step(text):
    _Output.print_line(text)


def _detail(text):
    _Output.print_line("    " + text)


async def _demo():
    return await asyncio.wait_for(_demo_steps(), DEMO_TIMEOUT_SECONDS)


async def _demo_steps():
    from aio_gnutls_transport import _gnutls, ssl

    _step("aio_gnutls_transport demo: GnuTLS %s, Python %s, %s" % (
        _gnutls.GNUTLS_VERSION, sys.version.split()[0],
        type(asyncio.get_running_loop()).__name__))
    with tempfile.TemporaryDirectory(prefix="aio-gnutls-demo-") as directory:
        files = make_test_certificates(directory)
        _step("[1] made a throwaway CA and a server certificate for "
              "'localhost' and 127.0.0.1 with %s" % files["tool"])
        server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        server_context.load_cert_chain(files["cert"], files["key"])
        client_context = ssl.create_default_context(cafile=files["ca"])
        untrusting_context = ssl.create_default_context()  # system CAs

        exchange = _DemoExchange()
        server = await asyncio.start_server(
            exchange.handle, "127.0.0.1", 0, ssl=server_context)
        try:
            port = server.sockets[0].getsockname()[1]
            _step("[2] server listening on 127.0.0.1:%d" % port)
            await _demo_client(port, client_context, exchange)
            await _demo_refusals(port, untrusting_context, client_context)
        finally:
            server.close()
            if exchange.done is not None and exchange.done.done() \
                    and not exchange.done.cancelled():
                exchange.done.exception()  # reported already, if any
            await server.wait_closed()
    _step("demo finished: all steps OK")
    return EXIT_OK


REQUEST = b"GET /greeting (no more requests after this)"
REPLY_PREFIX = b"hello! you sent %d bytes and half-closed; this reply " \
    b"travels after your close_notify"


class _DemoExchange:
    """The server's side of the half-closed exchange."""

    def __init__(self):
        self.done = None

    async def handle(self, reader, writer):
        self.done = asyncio.get_running_loop().create_future()
        try:
            request = await asyncio.wait_for(reader.read(), 10)
            if not reader.at_eof():
                raise CliError("the server did not see the client's EOF")
            _detail("server: received %r (%d bytes), then EOF: the client "
                    "half-closed (close_notify)" % (request, len(request)))
            reply = REPLY_PREFIX % len(request)
            writer.write(reply)
            await writer.drain()
            _detail("server: replied %d bytes on the half-closed connection"
                    % len(reply))
            if writer.can_write_eof():
                writer.write_eof()
                _detail("server: write_eof(), its close_notify is sent")
            writer.close()
            await asyncio.wait_for(writer.wait_closed(), 10)
        except BaseException as exc:
            if not self.done.done():
                self.done.set_exception(exc)
            writer.transport.abort()
            if isinstance(exc, (asyncio.CancelledError, KeyboardInterrupt,
                                SystemExit)):
                raise
            return
        if not self.done.done():
            self.done.set_result(None)


async def _demo_client(port, context, exchange):
    _step("[3] client connects to 127.0.0.1:%d, trusts only the demo CA, "
          "expects the name 'localhost'" % port)
    reader, writer = await asyncio.wait_for(asyncio.open_connection(
        "127.0.0.1", port, ssl=context, server_hostname="localhost"), 10)
    try:
        transport = writer.transport
        for line in describe_session(transport):
            _detail(line)
        _detail(describe_verification(context, "localhost"))

        _step("[4] half-closed exchange")
        writer.write(REQUEST)
        await writer.drain()
        _detail("client: sent %r (%d bytes)" % (REQUEST, len(REQUEST)))
        if not writer.can_write_eof():
            raise CliError("the transport cannot half-close (can_write_eof() "
                           "is False)")
        writer.write_eof()
        _detail("client: write_eof(), its close_notify is sent; it can no "
                "longer write but still reads")
        reply = await asyncio.wait_for(reader.read(), 10)
        expected = REPLY_PREFIX % len(REQUEST)
        if reply != expected:
            raise CliError("the client received %r instead of %r"
                           % (reply, expected))
        _detail("client: received %r (%d bytes), then EOF (the server's "
                "close_notify)" % (reply, len(reply)))
    finally:
        writer.close()
        try:
            await asyncio.wait_for(writer.wait_closed(), 10)
        except (OSError, asyncio.TimeoutError):
            writer.transport.abort()
    if exchange.done is None:
        raise CliError("the server never saw the connection")
    await asyncio.wait_for(exchange.done, 10)
    _detail("both sides closed cleanly")


async def _demo_refusals(port, untrusting_context, trusting_context):
    from aio_gnutls_transport import ssl

    _step("[5] verification fails closed")
    attempts = (
        ("a client that trusts only the system CAs", untrusting_context,
         "localhost"),
        ("a client that trusts the demo CA but expects 'example.com'",
         trusting_context, "example.com"),
    )
    for label, context, name in attempts:
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(
                "127.0.0.1", port, ssl=context, server_hostname=name), 10)
        except ssl.SSLCertVerificationError as exc:
            _detail("%s: refused: %s" % (label, error_text(exc)))
            continue
        writer.transport.abort()
        raise CliError("%s was NOT refused" % label)
