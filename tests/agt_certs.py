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
