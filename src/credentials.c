/* Certificate credentials: our certificate chain and key, trusted CAs, CRLs.
 *
 * Copyright (C) 2026 The aio_gnutls_transport authors
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "credentials.h"
#include "errors.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>
#include <gnutls/x509.h>

static int
is_pkcs11_url(const char *s)
{
    return strncmp(s, "pkcs11:", 7) == 0;
}

/* Raise FileNotFoundError/PermissionError naming PATH unless it can be read.
 * URLs are left for GnuTLS to resolve. */
static int
check_readable(PyObject *path_bytes)
{
    const char *path = PyBytes_AS_STRING(path_bytes);
    if (is_pkcs11_url(path) || access(path, R_OK) == 0)
        return 0;
    PyObject *name = PyUnicode_DecodeFSDefault(path);
    if (name != NULL) {
        PyErr_SetFromErrnoWithFilenameObject(PyExc_OSError, name);
        Py_DECREF(name);
    }
    return -1;
}

/* PyUnicode_FSConverter, also accepting None (leaves *out NULL). */
static int
optional_path(PyObject *obj, void *out)
{
    if (obj == Py_None) {
        *(PyObject **)out = NULL;
        return 1;
    }
    return PyUnicode_FSConverter(obj, out);
}

static PyObject *
Credentials_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwds, ":Credentials", kwlist))
        return NULL;
    gnutls_certificate_credentials_t cred;
    int ret = gnutls_certificate_allocate_credentials(&cred);
    if (ret < 0)
        return errors_raise(module_state_from_type(type), ret,
                            "cannot allocate certificate credentials");
    /* Return the index of each key loaded instead of 0 (GnuTLS >= 3.6). */
    gnutls_certificate_set_flags(cred, GNUTLS_CERTIFICATE_API_V2);
    CredentialsObject *self = (CredentialsObject *)type->tp_alloc(type, 0);
    if (self == NULL) {
        gnutls_certificate_free_credentials(cred);
        return NULL;
    }
    self->cred = cred;
    return (PyObject *)self;
}

static void
Credentials_dealloc(CredentialsObject *self)
{
    PyTypeObject *type = Py_TYPE(self);
    if (self->cred != NULL)
        gnutls_certificate_free_credentials(self->cred);
    type->tp_free(self);
    Py_DECREF(type);
}

static PyObject *
Credentials_load_cert_chain(CredentialsObject *self, PyObject *args,
                            PyObject *kwds)
{
    static char *kwlist[] = {"certfile", "keyfile", "password", NULL};
    PyObject *certfile = NULL, *keyfile = NULL, *password = Py_None;
    PyObject *result = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O&|O&O:load_cert_chain",
                                     kwlist, PyUnicode_FSConverter, &certfile,
                                     optional_path, &keyfile, &password))
        return NULL;
    module_state *state = module_state_from_type(Py_TYPE(self));

    const char *pass = NULL;
    if (password != Py_None) {
        Py_ssize_t n;
        if (PyUnicode_Check(password))
            pass = PyUnicode_AsUTF8AndSize(password, &n);
        else if (PyBytes_Check(password) || PyByteArray_Check(password)) {
            pass = PyBytes_Check(password) ? PyBytes_AS_STRING(password)
                                           : PyByteArray_AS_STRING(password);
            n = PyBytes_Check(password) ? PyBytes_GET_SIZE(password)
                                        : PyByteArray_GET_SIZE(password);
        } else {
            PyErr_SetString(PyExc_TypeError,
                            "password should be a str, bytes or bytearray");
            goto out;
        }
        if (pass == NULL)
            goto out;
        if ((size_t)n != strlen(pass)) {
            PyErr_SetString(PyExc_ValueError,
                            "password contains a NUL character");
            goto out;
        }
    }
    if (keyfile == NULL)
        keyfile = Py_NewRef(certfile);
    if (check_readable(certfile) < 0 || check_readable(keyfile) < 0)
        goto out;

    const char *cert = PyBytes_AS_STRING(certfile);
    const char *key = PyBytes_AS_STRING(keyfile);
    int ret = gnutls_certificate_set_x509_key_file2(
        self->cred, cert, key, GNUTLS_X509_FMT_PEM, pass, 0);
    if (ret == GNUTLS_E_BASE64_DECODING_ERROR
        || ret == GNUTLS_E_BASE64_UNEXPECTED_HEADER_ERROR) {
        int der = gnutls_certificate_set_x509_key_file2(
            self->cred, cert, key, GNUTLS_X509_FMT_DER, pass, 0);
        if (der >= 0)
            ret = der;
    }
    if (ret < 0) {
        const char *hint = "";
        if (ret == GNUTLS_E_DECRYPTION_FAILED
            || ret == GNUTLS_E_PK_INVALID_PRIVKEY)
            hint = pass != NULL ? " (wrong password?)"
                                : " (the key is encrypted: a password is needed)";
        errors_raise_fmt(state, ret,
                         "cannot load certificate '%s' with key '%s'%s",
                         cert, key, hint);
        goto out;
    }
    self->chain_count++;
    result = Py_NewRef(Py_None);
out:
    Py_XDECREF(certfile);
    Py_XDECREF(keyfile);
    return result;
}

/* Count what a trust/CRL loader returned; raise when it failed. */
static PyObject *
count_loaded(CredentialsObject *self, int ret, const char *what,
             const char *source)
{
    if (ret < 0)
        return errors_raise_fmt(module_state_from_type(Py_TYPE(self)), ret,
                                "cannot load %s from '%s'", what, source);
    if (ret == 0)
        return errors_raise_fmt(module_state_from_type(Py_TYPE(self)), 0,
                                "no certificates or CRLs found in '%s'", source);
    self->ca_count += ret;
    return PyLong_FromLong(ret);
}

static PyObject *
Credentials_load_verify_file(CredentialsObject *self, PyObject *arg)
{
    PyObject *path_bytes = NULL;
    if (!PyUnicode_FSConverter(arg, &path_bytes))
        return NULL;
    PyObject *result = NULL;
    if (check_readable(path_bytes) < 0)
        goto out;
    const char *path = PyBytes_AS_STRING(path_bytes);
    gnutls_x509_crt_fmt_t fmt = GNUTLS_X509_FMT_PEM;
    int ret = gnutls_certificate_set_x509_trust_file(self->cred, path, fmt);
    if (ret <= 0) {
        int der = gnutls_certificate_set_x509_trust_file(self->cred, path,
                                                         GNUTLS_X509_FMT_DER);
        if (der > 0) {
            ret = der;
            fmt = GNUTLS_X509_FMT_DER;
        }
    }
    /* A file may hold CRLs beside (or instead of) CA certificates. */
    int crls = gnutls_certificate_set_x509_crl_file(self->cred, path, fmt);
    if (crls > 0 && ret <= 0)
        result = PyLong_FromLong(0);
    else
        result = count_loaded(self, ret, "CA certificates", path);
out:
    Py_DECREF(path_bytes);
    return result;
}

static PyObject *
Credentials_load_verify_dir(CredentialsObject *self, PyObject *arg)
{
    PyObject *path_bytes = NULL;
    if (!PyUnicode_FSConverter(arg, &path_bytes))
        return NULL;
    PyObject *result = NULL;
    const char *path = PyBytes_AS_STRING(path_bytes);
    if (check_readable(path_bytes) < 0)
        goto out;
    int ret = gnutls_certificate_set_x509_trust_dir(self->cred, path,
                                                    GNUTLS_X509_FMT_PEM);
    result = count_loaded(self, ret, "CA certificates", path);
out:
    Py_DECREF(path_bytes);
    return result;
}

static PyObject *
Credentials_load_verify_mem(CredentialsObject *self, PyObject *args,
                            PyObject *kwds)
{
    static char *kwlist[] = {"data", "der", NULL};
    Py_buffer view;
    int der = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "y*|p:load_verify_mem",
                                     kwlist, &view, &der))
        return NULL;
    gnutls_datum_t datum = {view.buf, (unsigned int)view.len};
    PyObject *result = NULL;
    if ((size_t)view.len > UINT_MAX) {
        PyErr_SetString(PyExc_OverflowError, "CA data too large");
        goto out;
    }
    gnutls_x509_crt_fmt_t fmt = der ? GNUTLS_X509_FMT_DER : GNUTLS_X509_FMT_PEM;
    int ret = gnutls_certificate_set_x509_trust_mem(self->cred, &datum, fmt);
    int crls = 0;
    if (!der) {
        int c = gnutls_certificate_set_x509_crl_mem(self->cred, &datum, fmt);
        crls = c > 0 ? c : 0;
    }
    if (ret == 0 && crls > 0)
        result = PyLong_FromLong(0);
    else
        result = count_loaded(self, ret, "CA certificates",
                              der ? "cadata (DER)" : "cadata (PEM)");
out:
    PyBuffer_Release(&view);
    return result;
}

static PyObject *
Credentials_load_system_trust(CredentialsObject *self, PyObject *unused)
{
    (void)unused;
    int ret = gnutls_certificate_set_x509_system_trust(self->cred);
    if (ret < 0)
        return errors_raise(module_state_from_type(Py_TYPE(self)), ret,
                            "cannot load the system trust store");
    if (ret == 0)
        return errors_raise_fmt(module_state_from_type(Py_TYPE(self)), 0,
                                "the system trust store holds no certificates");
    self->ca_count += ret;
    return PyLong_FromLong(ret);
}

static PyObject *
Credentials_get_ca_count(CredentialsObject *self, void *closure)
{
    (void)closure;
    return PyLong_FromSsize_t(self->ca_count);
}

static PyObject *
Credentials_get_chain_count(CredentialsObject *self, void *closure)
{
    (void)closure;
    return PyLong_FromSsize_t(self->chain_count);
}

static PyMethodDef Credentials_methods[] = {
    {"load_cert_chain", (PyCFunction)(void (*)(void))Credentials_load_cert_chain,
     METH_VARARGS | METH_KEYWORDS,
     "load_cert_chain(certfile, keyfile=None, password=None)\n--\n\n"
     "Load our certificate chain and private key (PEM or DER files)."},
    {"load_verify_file", (PyCFunction)Credentials_load_verify_file, METH_O,
     "load_verify_file(path)\n--\n\n"
     "Trust the CA certificates in PATH (PEM or DER); CRLs in it are used "
     "too. Returns the number of certificates."},
    {"load_verify_dir", (PyCFunction)Credentials_load_verify_dir, METH_O,
     "load_verify_dir(path)\n--\n\nTrust the PEM CA certificates in a directory."},
    {"load_verify_mem", (PyCFunction)(void (*)(void))Credentials_load_verify_mem,
     METH_VARARGS | METH_KEYWORDS,
     "load_verify_mem(data, der=False)\n--\n\nTrust CA certificates from memory."},
    {"load_system_trust", (PyCFunction)Credentials_load_system_trust,
     METH_NOARGS,
     "load_system_trust()\n--\n\nTrust the system's CA store."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef Credentials_getset[] = {
    {"ca_count", (getter)Credentials_get_ca_count, NULL,
     "Number of trusted CA certificates loaded.", NULL},
    {"chain_count", (getter)Credentials_get_chain_count, NULL,
     "Number of certificate chains (with keys) loaded.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot Credentials_slots[] = {
    {Py_tp_new, Credentials_new},
    {Py_tp_dealloc, Credentials_dealloc},
    {Py_tp_methods, Credentials_methods},
    {Py_tp_getset, Credentials_getset},
    {Py_tp_doc, "Credentials()\n--\n\n"
                "GnuTLS certificate credentials: own chains and keys, trust."},
    {0, NULL},
};

PyType_Spec credentials_spec = {
    .name = "aio_gnutls_transport._gnutls.Credentials",
    .basicsize = sizeof(CredentialsObject),
    .flags = Py_TPFLAGS_DEFAULT,
    .slots = Credentials_slots,
};
