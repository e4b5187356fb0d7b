"""Test certificates made with the openssl command-line tool.

Everything is generated into a fresh directory once per test session:

* ``ca``            EC P-256 root CA ("AGT Test CA")
* ``server``        EC key, CN=localhost, SAN DNS:localhost, IP:127.0.0.1, IP:::1
* ``server_rsa``    RSA-2048 key, same names as ``server``
* ``client``        EC key, CN=AGT Test Client, extendedKeyUsage=clientAuth
* ``other_ca``      an unrelated root CA
* ``other_server``  CN=localhost (same SANs) issued by ``other_ca`` (unknown issuer)
* ``expired``       CN=localhost (same SANs) issued by ``ca``, validity in 2020
* ``wrong_name``    CN=wrong.example, SAN DNS:wrong.example, issued by ``ca``
* ``server_enc_key`` the ``server`` key encrypted with ``ENC_PASSWORD``
"""

import os
import shutil
import subprocess
from types import SimpleNamespace

ENC_PASSWORD = "correct horse"

SERVER_SAN = "DNS:localhost,IP:127.0.0.1,IP:::1"


def _openssl(*args, cwd):
    proc = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True,
                          timeout=60)
    if proc.returncode != 0:
        raise RuntimeError("openssl %s failed: %s" % (
            " ".join(args), proc.stderr.decode(errors="replace")))
    return proc.stdout


def _ec_key(path, cwd):
    _openssl("genpkey", "-algorithm", "EC", "-pkeyopt",
             "ec_paramgen_curve:P-256", "-out", path, cwd=cwd)


def _rsa_key(path, cwd):
    _openssl("genpkey", "-algorithm", "RSA", "-pkeyopt",
             "rsa_keygen_bits:2048", "-out", path, cwd=cwd)


def _write(path, text):
    with open(path, "w") as f:
        f.write(text)


def _root_ca(name, cn, cwd):
    _ec_key(name + ".key", cwd)
    _write(os.path.join(cwd, name + ".ext"),
           "basicConstraints=critical,CA:TRUE\n"
           "keyUsage=critical,keyCertSign,cRLSign\n"
           "subjectKeyIdentifier=hash\n")
    _openssl("req", "-new", "-x509", "-key", name + ".key", "-out", name + ".pem",
             "-days", "3650", "-subj", "/O=AGT Tests/CN=" + cn,
             "-extensions", "v3_ca", "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=cwd)


def _leaf_ext(cwd, name, san, eku):
    path = os.path.join(cwd, name + ".ext")
    _write(path,
           "basicConstraints=critical,CA:FALSE\n"
           "keyUsage=critical,digitalSignature,keyEncipherment\n"
           "extendedKeyUsage=%s\n"
           "subjectKeyIdentifier=hash\n"
           "authorityKeyIdentifier=keyid\n"
           "%s" % (eku, ("subjectAltName=%s\n" % san) if san else ""))
    return name + ".ext"


def _leaf(name, cn, ca, cwd, *, san=SERVER_SAN, eku="serverAuth", rsa=False):
    (_rsa_key if rsa else _ec_key)(name + ".key", cwd)
    _openssl("req", "-new", "-key", name + ".key", "-out", name + ".csr",
             "-subj", "/O=AGT Tests/CN=" + cn, cwd=cwd)
    ext = _leaf_ext(cwd, name, san, eku)
    _openssl("x509", "-req", "-in", name + ".csr", "-CA", ca + ".pem",
             "-CAkey", ca + ".key", "-CAcreateserial", "-out", name + ".pem",
             "-days", "825", "-extfile", ext, cwd=cwd)


def _expired_leaf(name, cn, ca, cwd):
    """A certificate whose whole validity period lies in the past (2020).

    ``openssl x509 -req`` cannot back-date, ``openssl ca`` can."""
    _ec_key(name + ".key", cwd)
    _openssl("req", "-new", "-key", name + ".key", "-out", name + ".csr",
             "-subj", "/O=AGT Tests/CN=" + cn, cwd=cwd)
    db = os.path.join(cwd, "cadb")
    os.makedirs(db, exist_ok=True)
    _write(os.path.join(db, "index.txt"), "")
    _write(os.path.join(db, "serial"), "4E21\n")
    ext = _leaf_ext(cwd, name, SERVER_SAN, "serverAuth")
    _write(os.path.join(cwd, "ca.cnf"),
           "[ ca ]\n"
           "default_ca = testca\n"
           "[ testca ]\n"
           "database = cadb/index.txt\n"
           "serial = cadb/serial\n"
           "new_certs_dir = cadb\n"
           "default_md = sha256\n"
           "policy = anything\n"
           "unique_subject = no\n"
           "copy_extensions = none\n"
           "[ anything ]\n"
           "organizationName = optional\n"
           "commonName = supplied\n")
    _openssl("ca", "-batch", "-config", "ca.cnf", "-notext",
             "-cert", ca + ".pem", "-keyfile", ca + ".key",
             "-in", name + ".csr", "-out", name + ".pem",
             "-startdate", "20200101000000Z", "-enddate", "20200201000000Z",
             "-extfile", ext, cwd=cwd)


def make_certs(directory):
    """Create every test certificate in *directory*; return a namespace of paths."""
    cwd = str(directory)
    os.makedirs(cwd, exist_ok=True)
    _root_ca("ca", "AGT Test CA", cwd)
    _root_ca("other_ca", "AGT Unrelated CA", cwd)
    _leaf("server", "localhost", "ca", cwd)
    _leaf("server_rsa", "localhost", "ca", cwd, rsa=True)
    _leaf("client", "AGT Test Client", "ca", cwd, san=None, eku="clientAuth")
    _leaf("other_server", "localhost", "other_ca", cwd)
    _leaf("wrong_name", "wrong.example", "ca", cwd, san="DNS:wrong.example")
    _expired_leaf("expired", "localhost", "ca", cwd)
    _openssl("pkey", "-in", "server.key", "-aes256", "-passout",
             "pass:" + ENC_PASSWORD, "-out", "server_enc.key", cwd=cwd)
    for name in ("server", "client", "ca", "other_server"):
        _openssl("x509", "-in", name + ".pem", "-outform", "DER",
                 "-out", name + ".der", cwd=cwd)
    # certificate and key in one PEM file
    with open(os.path.join(cwd, "server_combined.pem"), "w") as out:
        for part in ("server.pem", "server.key"):
            with open(os.path.join(cwd, part)) as f:
                out.write(f.read())
    # a directory holding only the CA, for load_verify_locations(capath=...)
    cadir = os.path.join(cwd, "cadir")
    os.makedirs(cadir, exist_ok=True)
    shutil.copy(os.path.join(cwd, "ca.pem"), os.path.join(cadir, "ca.pem"))

    def p(fname):
        return os.path.join(cwd, fname)

    def read(fname):
        with open(p(fname), "rb") as f:
            return f.read()

    return SimpleNamespace(
        dir=cwd,
        ca=p("ca.pem"), ca_key=p("ca.key"), ca_der=read("ca.der"), ca_dir=cadir,
        other_ca=p("other_ca.pem"),
        server_cert=p("server.pem"), server_key=p("server.key"),
        server_der=read("server.der"),
        server_combined=p("server_combined.pem"),
        server_enc_key=p("server_enc.key"), enc_password=ENC_PASSWORD,
        server_rsa_cert=p("server_rsa.pem"), server_rsa_key=p("server_rsa.key"),
        client_cert=p("client.pem"), client_key=p("client.key"),
        client_der=read("client.der"),
        other_server_cert=p("other_server.pem"),
        other_server_key=p("other_server.key"),
        other_server_der=read("other_server.der"),
        expired_cert=p("expired.pem"), expired_key=p("expired.key"),
        wrong_name_cert=p("wrong_name.pem"), wrong_name_key=p("wrong_name.key"),
    )


# ------------------------------------------------------------ more certificates
#
# Made on demand (the ``more_certs`` fixture) into the directory of the main
# set, issued by its ``ca``:
#
# * ``revoked``        CN=localhost (server SANs), listed in ``crl``
# * ``crl``            a CRL of ``ca`` revoking ``revoked`` (PEM), made with
#                      ``openssl ca -revoke`` and ``openssl ca -gencrl``
# * ``ca_with_crl``    ``ca`` and ``crl`` in one PEM file
# * ``two_cas``        ``ca`` and ``other_ca`` in one PEM file
# * ``high_serial_ca`` a root CA whose serial number has its top bit set
#                      (HIGH_SERIAL: DER needs a leading zero byte)
# * ``ca_and_leaf``    ``ca`` and the ``server`` certificate in one PEM file
# * ``self_signed``    CN=wrong.example, SAN DNS:wrong.example, self-signed
# * ``san_badutf8``    SAN DNS:<0xff 0xfe>localhost, DNS:localhost
# * ``san_long``       SAN DNS:<a name of LONG_SAN_LENGTH bytes>, DNS:localhost
# * ``san_ip5``        SAN IP:<5 bytes>, DNS:localhost

LONG_SAN = ".".join(["a" * 60] * 20) + ".example"   # 1228 bytes
BAD_UTF8_SAN = b"\xff\xfelocalhost"
IP5_SAN = b"\x7f\x00\x00\x01\x00"
HIGH_SERIAL = 0xC0FFEE0123456789ABCDEF


def _der_tlv(tag, body):
    n = len(body)
    if n < 0x80:
        length = bytes([n])
    elif n < 0x100:
        length = bytes([0x81, n])
    else:
        length = bytes([0x82, n >> 8, n & 0xFF])
    return bytes([tag]) + length + body


def _raw_san(*names):
    """A subjectAltName value for an openssl extension file, written as raw
    DER so that it may hold what openssl itself would refuse to encode.
    *names* are (context tag, bytes): 2 dNSName, 7 iPAddress."""
    body = b"".join(_der_tlv(0x80 | tag, value) for tag, value in names)
    return "DER:" + _der_tlv(0x30, body).hex()


def _ca_database(cwd, name):
    """An ``openssl ca`` configuration with its own empty database."""
    db = os.path.join(cwd, name + "db")
    os.makedirs(db, exist_ok=True)
    _write(os.path.join(db, "index.txt"), "")
    _write(os.path.join(db, "crlnumber"), "1000\n")
    conf = name + ".cnf"
    _write(os.path.join(cwd, conf),
           "[ ca ]\n"
           "default_ca = testca\n"
           "[ testca ]\n"
           "database = %sdb/index.txt\n"
           "crlnumber = %sdb/crlnumber\n"
           "new_certs_dir = %sdb\n"
           "default_md = sha256\n"
           "default_crl_days = 30\n"
           "policy = anything\n"
           "unique_subject = no\n"
           "[ anything ]\n"
           "commonName = supplied\n" % (name, name, name))
    return conf


def _self_signed_leaf(name, cn, san, cwd):
    _ec_key(name + ".key", cwd)
    _openssl("req", "-new", "-x509", "-key", name + ".key", "-out", name + ".pem",
             "-days", "825", "-subj", "/O=AGT Tests/CN=" + cn,
             "-addext", "basicConstraints=critical,CA:FALSE",
             "-addext", "keyUsage=critical,digitalSignature",
             "-addext", "extendedKeyUsage=serverAuth",
             "-addext", "subjectAltName=" + san, cwd=cwd)


def make_more_certs(certs):
    """Certificates for revocation, self-signed and odd-SAN tests, issued by
    the ``ca`` of *certs* (a make_certs() namespace) into its directory."""
    cwd = certs.dir
    _leaf("revoked", "localhost", "ca", cwd)
    conf = _ca_database(cwd, "crl")
    _openssl("ca", "-batch", "-config", conf, "-cert", "ca.pem",
             "-keyfile", "ca.key", "-revoke", "revoked.pem",
             "-crl_reason", "keyCompromise", cwd=cwd)
    _openssl("ca", "-batch", "-config", conf, "-cert", "ca.pem",
             "-keyfile", "ca.key", "-gencrl", "-out", "crl.pem", cwd=cwd)
    _self_signed_leaf("self_signed", "wrong.example", "DNS:wrong.example", cwd)
    _ec_key("high_serial_ca.key", cwd)
    _openssl("req", "-new", "-x509", "-key", "high_serial_ca.key",
             "-out", "high_serial_ca.pem", "-days", "3650",
             "-set_serial", "0x%X" % HIGH_SERIAL,
             "-subj", "/O=AGT Tests/CN=AGT High Serial CA",
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=cwd)
    _leaf("san_badutf8", "localhost", "ca", cwd,
          san=_raw_san((2, BAD_UTF8_SAN), (2, b"localhost")))
    _leaf("san_long", "localhost", "ca", cwd,
          san="DNS:%s,DNS:localhost" % LONG_SAN)
    _leaf("san_ip5", "localhost", "ca", cwd,
          san=_raw_san((7, IP5_SAN), (2, b"localhost")))

    def p(fname):
        return os.path.join(cwd, fname)

    def concat(out, *parts):
        with open(p(out), "w") as f:
            for part in parts:
                with open(p(part)) as src:
                    f.write(src.read())
        return p(out)

    return SimpleNamespace(
        dir=cwd,
        revoked_cert=p("revoked.pem"), revoked_key=p("revoked.key"),
        crl=p("crl.pem"),
        ca_with_crl=concat("ca_with_crl.pem", "ca.pem", "crl.pem"),
        two_cas=concat("two_cas.pem", "ca.pem", "other_ca.pem"),
        high_serial_ca=p("high_serial_ca.pem"),
        ca_and_leaf=concat("ca_and_leaf.pem", "ca.pem", "server.pem"),
        self_signed_cert=p("self_signed.pem"), self_signed_key=p("self_signed.key"),
        san_badutf8_cert=p("san_badutf8.pem"), san_badutf8_key=p("san_badutf8.key"),
        san_long_cert=p("san_long.pem"), san_long_key=p("san_long.key"),
        san_ip5_cert=p("san_ip5.pem"), san_ip5_key=p("san_ip5.key"),
    )


# ------------------------------------------------------------ a SoftHSM token
#
# A SoftHSM2 token in a private directory (the SOFTHSM2_CONF environment
# variable names its configuration), holding:
#
# * ``client``  the client's key (sensitive, not extractable) and certificate
# * ``server``  the server's key (sensitive, not extractable) and certificate
# * ``agt-ca``  the test CA's certificate, marked trusted and a CA (only the
#               security officer may do that)
# * ``agt-ca-untrusted``  the same certificate, not marked trusted

SOFTHSM_MODULES = (
    "/usr/lib/softhsm/libsofthsm2.so",
    "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/lib64/pkcs11/libsofthsm2.so",
    "/usr/lib/pkcs11/libsofthsm2.so",
)
TOKEN_LABEL = "agt-token"
TOKEN_PIN = "2604"
TOKEN_SO_PIN = "97531"


class TokenUnavailable(Exception):
    """The token cannot be made or is not visible through p11-kit."""


def softhsm_module():
    """The SoftHSM2 PKCS#11 module's path, or None."""
    for path in SOFTHSM_MODULES:
        if os.path.exists(path):
            return path
    return None


def _tool(args, env, what):
    proc = subprocess.run(args, env=env, capture_output=True, timeout=60)
    if proc.returncode != 0:
        raise RuntimeError("%s failed (%s): %s%s" % (
            what, " ".join(args), proc.stdout.decode(errors="replace"),
            proc.stderr.decode(errors="replace")))
    return proc.stdout.decode(errors="replace")


def make_softhsm_token(directory, certs, module):
    """Initialise a SoftHSM2 token in *directory* and import the test keys
    and certificates of *certs* with p11tool; return a namespace of its
    environment, PINs and pkcs11: URLs."""
    directory = str(directory)
    tokens = os.path.join(directory, "tokens")
    os.makedirs(tokens, exist_ok=True)
    conf = os.path.join(directory, "softhsm2.conf")
    _write(conf, "directories.tokendir = %s\n"
                 "objectstore.backend = file\n"
                 "log.level = ERROR\n"
                 "slots.removable = false\n" % tokens)
    env = dict(os.environ, SOFTHSM2_CONF=conf)
    _tool(["softhsm2-util", "--init-token", "--free", "--label", TOKEN_LABEL,
           "--pin", TOKEN_PIN, "--so-pin", TOKEN_SO_PIN], env,
          "initialising the SoftHSM token")
    token = "pkcs11:token=" + TOKEN_LABEL
    tokens_seen = _tool(["p11tool", "--list-tokens"], env, "listing tokens")
    if "token=" + TOKEN_LABEL not in tokens_seen:
        raise TokenUnavailable(
            "the SoftHSM token is not visible through p11-kit (is %s "
            "registered in p11-kit's module configuration?)" % module)
    user = dict(env, GNUTLS_PIN=TOKEN_PIN)
    officer = dict(env, GNUTLS_SO_PIN=TOKEN_SO_PIN)
    for label, ident, cert, key in (
            ("client", "01", certs.client_cert, certs.client_key),
            ("server", "02", certs.server_cert, certs.server_key)):
        _tool(["p11tool", "--login", "--write", "--load-privkey", key,
               "--label", label, "--id", ident, token], user,
              "writing the %s key" % label)
        _tool(["p11tool", "--login", "--write", "--load-certificate", cert,
               "--label", label, "--id", ident, token], user,
              "writing the %s certificate" % label)
    _tool(["p11tool", "--so-login", "--write", "--load-certificate", certs.ca,
           "--mark-trusted", "--mark-ca", "--label", "agt-ca", "--id", "0a",
           token], officer, "writing the CA certificate")
    _tool(["p11tool", "--login", "--write", "--load-certificate", certs.ca,
           "--label", "agt-ca-untrusted", "--id", "0b", token], user,
          "writing the untrusted CA certificate")
    listing = _tool(["p11tool", "--login", "--list-all", token], user,
                    "listing the token's objects")

    def url(label, kind):
        return "%s;object=%s;type=%s" % (token, label, kind)

    return SimpleNamespace(
        dir=directory, conf=conf, module=module,
        env={"SOFTHSM2_CONF": conf},
        label=TOKEN_LABEL, pin=TOKEN_PIN, so_pin=TOKEN_SO_PIN,
        token_url=token, listing=listing,
        client_key_url=url("client", "private"),
        client_cert_url=url("client", "cert"),
        server_key_url=url("server", "private"),
        server_cert_url=url("server", "cert"),
        ca_url=url("agt-ca", "cert"),
        untrusted_ca_url=url("agt-ca-untrusted", "cert"),
    )
