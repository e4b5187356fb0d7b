"""Fixtures and the per-test time limit for the aio_gnutls_transport tests.

Time limits: every test (setup, call and teardown each) runs under an
interval timer; the default is DEFAULT_TIMEOUT seconds, ``@pytest.mark.timeout(N)``
changes it.  When the timer fires the test fails with TestTimeout raised
where it was waiting.  If the interpreter is stuck somewhere a signal cannot
interrupt, faulthandler dumps every thread's stack and ends the process a
little later, so the suite never hangs.  Coroutines run with agt_testlib.run()
get a slightly shorter limit so they can be cancelled cleanly first.
"""

import faulthandler
import os
import shutil
import signal
import sys
import tempfile

import pytest

import agt_certs
import agt_testlib

DEFAULT_TIMEOUT = 60.0
HARD_STOP_GRACE = 30.0


class TestTimeout(Exception):
    """A test phase ran past its time limit."""

    __test__ = False  # not a test class


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "timeout(seconds): time limit for the test (default %d s)" % DEFAULT_TIMEOUT)


def _limit(item):
    marker = item.get_closest_marker("timeout")
    if marker is not None:
        return float(marker.args[0])
    return DEFAULT_TIMEOUT


def _phase_with_limit(item, phase):
    seconds = _limit(item)
    agt_testlib.CURRENT_TIMEOUT = seconds

    def on_alarm(signum, frame):
        raise TestTimeout("%s of %s exceeded %.0f s" % (phase, item.nodeid, seconds))

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    faulthandler.dump_traceback_later(seconds + HARD_STOP_GRACE, exit=True)
    return previous


def _end_limit(previous):
    signal.setitimer(signal.ITIMER_REAL, 0)
    faulthandler.cancel_dump_traceback_later()
    signal.signal(signal.SIGALRM, previous)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_setup(item):
    previous = _phase_with_limit(item, "setup")
    try:
        yield
    finally:
        _end_limit(previous)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    previous = _phase_with_limit(item, "call")
    try:
        yield
    finally:
        _end_limit(previous)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_teardown(item):
    previous = _phase_with_limit(item, "teardown")
    try:
        yield
    finally:
        _end_limit(previous)


# ------------------------------------------------------------------ fixtures

@pytest.fixture(scope="session")
def certs(tmp_path_factory):
    """All test certificates, made once per session with the openssl CLI."""
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is needed to make test certificates")
    return agt_certs.make_certs(tmp_path_factory.mktemp("certs"))


@pytest.fixture
def unix_dir():
    """A short directory for Unix socket paths (sun_path is 108 bytes)."""
    path = tempfile.mkdtemp(prefix="agt-")
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def procs(tmp_path):
    """Starts subprocess peers; all of them are killed after the test."""
    manager = agt_testlib.ProcManager(str(tmp_path))
    yield manager
    manager.cleanup()


@pytest.fixture(params=["tcp", "unix"])
def family(request):
    return request.param


@pytest.fixture(params=agt_testlib.TLS_VERSIONS, ids=lambda v: "tls" + v)
def tls_version(request):
    return request.param


@pytest.fixture
def cli_env():
    """Environment for running the command-line tool in a subprocess."""
    env = dict(os.environ)
    env.setdefault("PYTHONPATH", os.pathsep.join(p for p in sys.path if p))
    return env


@pytest.fixture(scope="session")
def more_certs(certs):
    """Revoked, self-signed and odd-SAN certificates (see agt_certs)."""
    return agt_certs.make_more_certs(certs)


@pytest.fixture(scope="session")
def mount_namespace():
    """agt_testlib.mount_namespace_argv, if private bind mounts work here."""
    problem = agt_testlib.mount_namespace_problem()
    if problem is not None:
        pytest.skip(problem)
    return agt_testlib.mount_namespace_argv


@pytest.fixture(scope="session")
def softhsm(certs, tmp_path_factory):
    """A SoftHSM2 token with the test keys (not extractable), made once.

    Only processes started with ``softhsm.env`` in their environment see it:
    GnuTLS initialises PKCS#11 once per process, so the tests use the token
    from child processes and the test process itself never loads a
    PKCS#11 module."""
    for tool in ("softhsm2-util", "p11tool"):
        if shutil.which(tool) is None:
            pytest.skip("%s is not installed" % tool)
    module = agt_certs.softhsm_module()
    if module is None:
        pytest.skip("the SoftHSM2 PKCS#11 module is not installed")
    try:
        return agt_certs.make_softhsm_token(tmp_path_factory.mktemp("softhsm"),
                                            certs, module)
    except agt_certs.TokenUnavailable as e:
        pytest.skip(str(e))
