/* One mapping from GnuTLS error codes to Python exceptions.
 *
 * Copyright (C) 2026 The aio_gnutls_transport authors
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * GnutlsError derives from ssl.SSLError (so from OSError too): code written
 * for the stdlib catches our errors unchanged.  Instances carry errno (the
 * GnuTLS code), strerror (the message), reason (the code's name) and
 * library ("GnuTLS").
 */
#include "errors.h"

#include <stdarg.h>

/* OpenSSL's X509_V_ERR_* numbers, which the stdlib reports as verify_code. */
enum {
    X509_V_ERR_UNSPECIFIED = 1,
    X509_V_ERR_CERT_SIGNATURE_FAILURE = 7,
    X509_V_ERR_CERT_NOT_YET_VALID = 9,
    X509_V_ERR_CERT_HAS_EXPIRED = 10,
    X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT = 18,
    X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY = 20,
    X509_V_ERR_CERT_REVOKED = 23,
    X509_V_ERR_INVALID_CA = 24,
    X509_V_ERR_INVALID_PURPOSE = 26,
    X509_V_ERR_HOSTNAME_MISMATCH = 62,
    X509_V_ERR_CA_MD_TOO_WEAK = 68,
};

static PyObject *
new_exception(PyObject *module, const char *name, const char *doc,
              PyObject *bases)
{
    PyObject *exc = PyErr_NewExceptionWithDoc(name, doc, bases, NULL);
    if (exc == NULL)
        return NULL;
    const char *shortname = strrchr(name, '.') + 1;
    if (PyModule_AddObjectRef(module, shortname, exc) < 0) {
        Py_DECREF(exc);
        return NULL;
    }
    return exc;
}

int
errors_init(PyObject *module, module_state *state)
{
    PyObject *ssl = PyImport_ImportModule("ssl");
    if (ssl == NULL)
        return -1;
    PyObject *ssl_error = PyObject_GetAttrString(ssl, "SSLError");
    PyObject *verify_error = PyObject_GetAttrString(ssl, "SSLCertVerificationError");
    PyObject *eof_error = PyObject_GetAttrString(ssl, "SSLEOFError");
    Py_DECREF(ssl);
    int rc = -1;
    PyObject *bases = NULL;
    if (ssl_error == NULL || verify_error == NULL || eof_error == NULL)
        goto out;

    state->GnutlsError = new_exception(
        module, "aio_gnutls_transport.GnutlsError",
        "A TLS operation failed in GnuTLS (an ssl.SSLError, so an OSError).",
        ssl_error);
    if (state->GnutlsError == NULL)
        goto out;

    bases = PyTuple_Pack(2, state->GnutlsError, verify_error);
    if (bases == NULL)
        goto out;
    state->CertificateVerificationError = new_exception(
        module, "aio_gnutls_transport.CertificateVerificationError",
        "The peer's certificate was rejected; verify_message says why.", bases);
    Py_CLEAR(bases);
    if (state->CertificateVerificationError == NULL)
        goto out;

    bases = PyTuple_Pack(2, state->GnutlsError, eof_error);
    if (bases == NULL)
        goto out;
    state->PrematureTerminationError = new_exception(
        module, "aio_gnutls_transport.PrematureTerminationError",
        "The peer closed the connection without close_notify: the data may "
        "have been truncated.", bases);
    Py_CLEAR(bases);
    if (state->PrematureTerminationError == NULL)
        goto out;
    rc = 0;
out:
    Py_XDECREF(ssl_error);
    Py_XDECREF(verify_error);
    Py_XDECREF(eof_error);
    return rc;
}

/* Build CLS(code, message), add reason and library, and raise it. */
static PyObject *
raise_with(PyObject *cls, int code, PyObject *message)
{
    PyObject *exc = PyObject_CallFunction(cls, "iO", code, message);
    if (exc == NULL)
        return NULL;
    const char *name = code != 0 ? gnutls_strerror_name(code) : NULL;
    PyObject *reason = name != NULL ? PyUnicode_FromString(name)
                                    : Py_NewRef(Py_None);
    PyObject *library = PyUnicode_FromString("GnuTLS");
    if (reason == NULL || library == NULL
        || PyObject_SetAttrString(exc, "reason", reason) < 0
        || PyObject_SetAttrString(exc, "library", library) < 0) {
        Py_XDECREF(reason);
        Py_XDECREF(library);
        Py_DECREF(exc);
        return NULL;
    }
    Py_DECREF(reason);
    Py_DECREF(library);
    PyErr_SetObject(cls, exc);
    Py_DECREF(exc);
    return NULL;
}

static PyObject *
class_for_code(module_state *state, int code)
{
    switch (code) {
    case GNUTLS_E_PREMATURE_TERMINATION:
        return state->PrematureTerminationError;
    default:
        return state->GnutlsError;
    }
}

static PyObject *
raise_v(module_state *state, int code, int explain, const char *fmt,
        va_list ap)
{
    PyObject *what = PyUnicode_FromFormatV(fmt, ap);
    if (what == NULL)
        return NULL;
    PyObject *message = explain && code != 0
        ? PyUnicode_FromFormat("%U: %s", what, gnutls_strerror(code))
        : Py_NewRef(what);
    Py_DECREF(what);
    if (message == NULL)
        return NULL;
    raise_with(class_for_code(state, code), code, message);
    Py_DECREF(message);
    return NULL;
}

PyObject *
errors_raise_fmt(module_state *state, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    raise_v(state, code, 1, fmt, ap);
    va_end(ap);
    return NULL;
}

PyObject *
errors_raise_plain(module_state *state, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    raise_v(state, code, 0, fmt, ap);
    va_end(ap);
    return NULL;
}

PyObject *
errors_raise(module_state *state, int code, const char *what)
{
    return errors_raise_fmt(state, code, "%s", what);
}

/* The stdlib's verify_code and a short verify_message for the most
 * telling bit of STATUS. */
static int
verify_code_for(unsigned int status, int self_signed, const char **message)
{
    if (status & GNUTLS_CERT_REVOKED) {
        *message = "certificate revoked";
        return X509_V_ERR_CERT_REVOKED;
    }
    if (status & GNUTLS_CERT_SIGNER_NOT_FOUND) {
        if (self_signed) {
            *message = "self-signed certificate";
            return X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT;
        }
        *message = "unable to get local issuer certificate";
        return X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY;
    }
    if (status & GNUTLS_CERT_SIGNER_NOT_CA) {
        *message = "invalid CA certificate";
        return X509_V_ERR_INVALID_CA;
    }
    if (status & GNUTLS_CERT_EXPIRED) {
        *message = "certificate has expired";
        return X509_V_ERR_CERT_HAS_EXPIRED;
    }
    if (status & GNUTLS_CERT_NOT_ACTIVATED) {
        *message = "certificate is not yet valid";
        return X509_V_ERR_CERT_NOT_YET_VALID;
    }
    if (status & GNUTLS_CERT_UNEXPECTED_OWNER) {
        *message = "hostname mismatch";
        return X509_V_ERR_HOSTNAME_MISMATCH;
    }
    if (status & GNUTLS_CERT_INSECURE_ALGORITHM) {
        *message = "insecure algorithm";
        return X509_V_ERR_CA_MD_TOO_WEAK;
    }
    if (status & GNUTLS_CERT_SIGNATURE_FAILURE) {
        *message = "certificate signature failure";
        return X509_V_ERR_CERT_SIGNATURE_FAILURE;
    }
    if (status & GNUTLS_CERT_PURPOSE_MISMATCH) {
        *message = "unsupported certificate purpose";
        return X509_V_ERR_INVALID_PURPOSE;
    }
    *message = "certificate verify failed";
    return X509_V_ERR_UNSPECIFIED;
}

gnutls_alert_description_t
errors_alert_for_status(unsigned int status)
{
    if (status & GNUTLS_CERT_REVOKED)
        return GNUTLS_A_CERTIFICATE_REVOKED;
    if (status & (GNUTLS_CERT_SIGNER_NOT_FOUND | GNUTLS_CERT_SIGNER_NOT_CA))
        return GNUTLS_A_UNKNOWN_CA;
    if (status & (GNUTLS_CERT_EXPIRED | GNUTLS_CERT_NOT_ACTIVATED))
        return GNUTLS_A_CERTIFICATE_EXPIRED;
    if (status & GNUTLS_CERT_PURPOSE_MISMATCH)
        return GNUTLS_A_UNSUPPORTED_CERTIFICATE;
    return GNUTLS_A_BAD_CERTIFICATE;
}

/* Our own words for each reason GnuTLS may reject a certificate. */
static const struct {
    unsigned int bit;
    const char *text;
} status_texts[] = {
    {GNUTLS_CERT_REVOKED, "the certificate has been revoked"},
    {GNUTLS_CERT_SIGNER_NOT_FOUND, "its issuer is unknown (not among the "
                                   "trusted CAs)"},
    {GNUTLS_CERT_SIGNER_NOT_CA, "its issuer is not a CA"},
    {GNUTLS_CERT_SIGNER_CONSTRAINTS_FAILURE, "it breaks its issuer's "
                                             "constraints"},
    {GNUTLS_CERT_EXPIRED, "the certificate has expired"},
    {GNUTLS_CERT_NOT_ACTIVATED, "the certificate is not yet valid"},
    {GNUTLS_CERT_INSECURE_ALGORITHM, "it is signed with an insecure algorithm"},
    {GNUTLS_CERT_SIGNATURE_FAILURE, "its signature is invalid"},
    {GNUTLS_CERT_PURPOSE_MISMATCH, "it is not meant for this purpose "
                                   "(extended key usage)"},
    {GNUTLS_CERT_REVOCATION_DATA_SUPERSEDED, "its revocation data is "
                                             "superseded"},
    {GNUTLS_CERT_REVOCATION_DATA_ISSUED_IN_FUTURE, "its revocation data is "
                                                   "issued in the future"},
    {GNUTLS_CERT_MISMATCH, "it differs from the expected certificate"},
    {GNUTLS_CERT_UNEXPECTED_OWNER, NULL},   /* needs the host name */
};

/* "certificate verification failed: <reason>; <reason>..." */
static PyObject *
verification_message(unsigned int status, const char *hostname,
                     int self_signed)
{
    PyObject *parts = PyList_New(0);
    if (parts == NULL)
        return NULL;
    for (size_t i = 0; i < sizeof(status_texts) / sizeof(status_texts[0]); i++) {
        if (!(status & status_texts[i].bit))
            continue;
        PyObject *part;
        if (status_texts[i].bit == GNUTLS_CERT_UNEXPECTED_OWNER)
            part = PyUnicode_FromFormat(
                "hostname mismatch: the certificate is not valid for '%s'",
                hostname != NULL ? hostname : "?");
        else if (status_texts[i].bit == GNUTLS_CERT_SIGNER_NOT_FOUND
                 && self_signed)
            part = PyUnicode_FromString(
                "it is self-signed and its issuer is unknown (not among the "
                "trusted CAs)");
        else
            part = PyUnicode_FromString(status_texts[i].text);
        if (part == NULL || PyList_Append(parts, part) < 0) {
            Py_XDECREF(part);
            Py_DECREF(parts);
            return NULL;
        }
        Py_DECREF(part);
    }
    PyObject *message = NULL;
    if (PyList_GET_SIZE(parts) == 0) {
        message = PyUnicode_FromString(
            "certificate verification failed: the certificate is not trusted");
    } else {
        PyObject *sep = PyUnicode_FromString("; ");
        PyObject *joined = sep != NULL ? PyUnicode_Join(sep, parts) : NULL;
        if (joined != NULL)
            message = PyUnicode_FromFormat("certificate verification failed: "
                                           "%U", joined);
        Py_XDECREF(sep);
        Py_XDECREF(joined);
    }
    Py_DECREF(parts);
    return message;
}

PyObject *
errors_raise_verification(module_state *state, unsigned int status,
                          const char *hostname, int self_signed)
{
    const char *verify_message;
    int verify_code = verify_code_for(status, self_signed, &verify_message);
    PyObject *vmsg = NULL, *exc = NULL;
    PyObject *message = verification_message(status, hostname, self_signed);
    if (message == NULL)
        return NULL;
    if ((status & GNUTLS_CERT_UNEXPECTED_OWNER) && hostname != NULL
        && verify_code == X509_V_ERR_HOSTNAME_MISMATCH)
        vmsg = PyUnicode_FromFormat(
            "Hostname mismatch, certificate is not valid for '%s'.", hostname);
    else
        vmsg = PyUnicode_FromString(verify_message);
    if (vmsg == NULL)
        goto out;

    exc = PyObject_CallFunction(state->CertificateVerificationError, "iO",
                                GNUTLS_E_CERTIFICATE_VERIFICATION_ERROR,
                                message);
    if (exc == NULL)
        goto out;
    PyObject *code = PyLong_FromLong(verify_code);
    PyObject *st = PyLong_FromUnsignedLong(status);
    PyObject *reason = PyUnicode_FromString("CERTIFICATE_VERIFY_FAILED");
    PyObject *library = PyUnicode_FromString("GnuTLS");
    int bad = code == NULL || st == NULL || reason == NULL || library == NULL
        || PyObject_SetAttrString(exc, "verify_code", code) < 0
        || PyObject_SetAttrString(exc, "verify_message", vmsg) < 0
        || PyObject_SetAttrString(exc, "verify_status", st) < 0
        || PyObject_SetAttrString(exc, "reason", reason) < 0
        || PyObject_SetAttrString(exc, "library", library) < 0;
    Py_XDECREF(code);
    Py_XDECREF(st);
    Py_XDECREF(reason);
    Py_XDECREF(library);
    if (!bad)
        PyErr_SetObject(state->CertificateVerificationError, exc);
out:
    Py_XDECREF(exc);
    Py_XDECREF(vmsg);
    Py_DECREF(message);
    return NULL;
}
