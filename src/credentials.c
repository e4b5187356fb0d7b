/* Certificate credentials: our certificate chain and key, trusted CAs, CRLs.
 *
 * Copyright (C) 2026 The aio_gnutls_transport authors
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "credentials.h"
#include "errors.h"

#include <errno.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <sys/stat.h>
#include <gnutls/abstract.h>
#include <gnutls/x509.h>

static int
is_pkcs11_url(const char *s)
{
    return strncasecmp(s, "pkcs11:", 7) == 0;
}

enum path_kind { PATH_FILE, PATH_DIR };

/* Raise FileNotFoundError, PermissionError, IsADirectoryError or
 * NotADirectoryError naming PATH unless it is a readable file (or
 * directory).  URLs are left for GnuTLS to resolve. */
static int
check_path(PyObject *path_bytes, enum path_kind kind)
{
    const char *path = PyBytes_AS_STRING(path_bytes);
    struct stat st;
    if (is_pkcs11_url(path))
        return 0;
    if (access(path, R_OK) == 0 && stat(path, &st) == 0) {
        if (kind == PATH_DIR && !S_ISDIR(st.st_mode))
            errno = ENOTDIR;
        else if (kind == PATH_FILE && S_ISDIR(st.st_mode))
            errno = EISDIR;
        else
            return 0;
    }
    PyObject *name = PyUnicode_DecodeFSDefault(path);
    if (name != NULL) {
        PyErr_SetFromErrnoWithFilenameObject(PyExc_OSError, name);
        Py_DECREF(name);
    }
    return -1;
}

/* A copy of NAME fit for messages: in a PKCS#11 URL the values of the
 * pin-value attributes are masked (however often, however spelled).
 * PyMem_Free() it; NULL on memory error. */
static char *
display_name(const char *name)
{
    size_t len = strlen(name);
    /* Each masked value becomes "***": never longer than 3 + the value. */
    char *out = PyMem_Malloc(3 * len + 4);
    if (out == NULL)
        return NULL;
    if (!is_pkcs11_url(name)) {
        memcpy(out, name, len + 1);
        return out;
    }
    static const char *const keys[] = {"pin-value=", "pin%2dvalue=",
                                       "pin%2Dvalue="};
    size_t n = 0;
    const char *p = name;
    while (*p) {
        size_t klen = 0;
        for (size_t k = 0; k < sizeof(keys) / sizeof(keys[0]); k++)
            if (strncasecmp(p, keys[k], strlen(keys[k])) == 0)
                klen = strlen(keys[k]);
        if (klen > 0 && (p == name || strchr(";?&:", p[-1]) != NULL)) {
            memcpy(out + n, p, klen);
            n += klen;
            memcpy(out + n, "***", 3);
            n += 3;
            p += klen;
            p += strcspn(p, ";?&");
            continue;
        }
        out[n++] = *p++;
    }
    out[n] = '\0';
    return out;
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

/* Forget the PIN, leaving no copy in memory. */
static void
clear_pin(CredentialsObject *self)
{
    if (self->pin != NULL) {
        gnutls_memset(self->pin, 0, strlen(self->pin));
        free(self->pin);
        self->pin = NULL;
    }
}

/* GnuTLS asks for the PIN of a token (to load a key, or to sign with it
 * during a handshake).  A PIN is given at most once per request: when the
 * token says it was wrong, we stop, and forget it, because every retry
 * brings a real smartcard closer to locking itself. */
static int
pin_cb(void *userdata, int attempt, const char *token_url,
       const char *token_label, unsigned int flags, char *pin, size_t pin_max)
{
    CredentialsObject *self = userdata;
    (void)token_url;
    (void)token_label;
    if ((flags & GNUTLS_PIN_WRONG) || attempt > 0) {
        self->pin_rejected = 1;
        clear_pin(self);
        return -1;
    }
    if (self->pin == NULL) {
        self->pin_missing = 1;
        return -1;
    }
    size_t len = strlen(self->pin);
    if (len >= pin_max)
        return -1;
    memcpy(pin, self->pin, len + 1);
    return 0;
}

/* Keep a private copy of PASSWORD as the PIN for token keys; -1 on error. */
static int
set_pin(CredentialsObject *self, const char *password)
{
    clear_pin(self);
    self->pin_rejected = 0;
    self->pin_missing = 0;
    if (password == NULL)
        return 0;
    self->pin = strdup(password);
    if (self->pin == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    return 0;
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
    gnutls_certificate_set_pin_function(cred, pin_cb, self);
    return (PyObject *)self;
}

static void
Credentials_dealloc(CredentialsObject *self)
{
    PyTypeObject *type = Py_TYPE(self);
    if (self->cred != NULL)
        gnutls_certificate_free_credentials(self->cred);
    clear_pin(self);
    if (self->ticket_key.data != NULL) {
        gnutls_memset(self->ticket_key.data, 0, self->ticket_key.size);
        gnutls_free(self->ticket_key.data);
    }
    type->tp_free(self);
    Py_DECREF(type);
}

const gnutls_datum_t *
credentials_ticket_key(CredentialsObject *self)
{
    if (self->ticket_key.data == NULL) {
        int ret = gnutls_session_ticket_key_generate(&self->ticket_key);
        if (ret < 0) {
            self->ticket_key.data = NULL;
            errors_raise(module_state_from_type(Py_TYPE(self)), ret,
                         "cannot make a session ticket key");
            return NULL;
        }
    }
    return &self->ticket_key;
}

static PyObject *
Credentials_load_cert_chain(CredentialsObject *self, PyObject *args,
                            PyObject *kwds)
{
    static char *kwlist[] = {"certfile", "keyfile", "password", NULL};
    PyObject *certfile = NULL, *keyfile = NULL, *password = Py_None;
    PyObject *result = NULL;
    char *cert = NULL, *key = NULL;     /* names for messages */
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
    int key_given = keyfile != NULL;
    if (!key_given)
        keyfile = Py_NewRef(certfile);
    if (check_path(certfile, PATH_FILE) < 0 || check_path(keyfile, PATH_FILE) < 0)
        goto out;

    const char *cert_path = PyBytes_AS_STRING(certfile);
    const char *key_path = PyBytes_AS_STRING(keyfile);
    cert = display_name(cert_path);
    key = display_name(key_path);
    if (cert == NULL || key == NULL) {
        PyErr_NoMemory();
        goto out;
    }
    if (set_pin(self, pass) < 0)
        goto out;
    int ret = gnutls_certificate_set_x509_key_file2(
        self->cred, cert_path, key_path, GNUTLS_X509_FMT_PEM, pass, 0);
    if (ret == GNUTLS_E_BASE64_DECODING_ERROR
        || ret == GNUTLS_E_BASE64_UNEXPECTED_HEADER_ERROR) {
        int der = gnutls_certificate_set_x509_key_file2(
            self->cred, cert_path, key_path, GNUTLS_X509_FMT_DER, pass, 0);
        if (der >= 0)
            ret = der;
    }
    int on_token = is_pkcs11_url(key_path);
    if (ret < 0 && on_token && self->pin_rejected) {
        errors_raise_plain(state, GNUTLS_E_PKCS11_PIN_ERROR,
                           "wrong PIN for the token of '%s': the token "
                           "rejected it (not retried, so as not to lock the "
                           "token)", key);
        goto out;
    }
    if (ret < 0 && on_token && self->pin_missing) {
        errors_raise_plain(state, GNUTLS_E_PKCS11_PIN_ERROR,
                           "the token of '%s' needs a PIN: give it as password "
                           "or in the URL (pin-value or pin-source)", key);
        goto out;
    }
    if (ret < 0 && on_token && ret == GNUTLS_E_PKCS11_PIN_ERROR) {
        /* A PIN from the URL (pin-value, pin-source) that the token
         * refused. */
        errors_raise_plain(state, ret,
                           "the token of '%s' refused the PIN given in the "
                           "URL (a pin-source file must hold the PIN without "
                           "a trailing newline)", key);
        goto out;
    }
    if (ret < 0 && !on_token && (self->pin_missing || self->pin_rejected))
        ret = GNUTLS_E_DECRYPTION_FAILED;  /* an encrypted key file */
    if (ret < 0) {
        const char *hint = "";
        switch (ret) {
        case GNUTLS_E_DECRYPTION_FAILED:
        case GNUTLS_E_PK_INVALID_PRIVKEY:
            hint = pass != NULL ? " (wrong password?)"
                                : " (the key is encrypted: a password is needed)";
            break;
        case GNUTLS_E_REQUESTED_DATA_NOT_AVAILABLE:
            hint = is_pkcs11_url(key) ? " (no such object on the token)"
                   : key_given ? " (no private key found in the key file)"
                   : " (no private key in the certificate file: give the key "
                     "file too)";
            break;
        case GNUTLS_E_BASE64_DECODING_ERROR:
        case GNUTLS_E_BASE64_UNEXPECTED_HEADER_ERROR:
        case GNUTLS_E_ASN1_DER_ERROR:
        case GNUTLS_E_ASN1_TAG_ERROR:
        case GNUTLS_E_ASN1_ELEMENT_NOT_FOUND:
            hint = " (expected a PEM or DER certificate and private key)";
            break;
        default:
            break;
        }
        if (key_given)
            errors_raise_fmt(state, ret,
                             "cannot load certificate '%s' with key '%s'%s",
                             cert, key, hint);
        else
            errors_raise_fmt(state, ret,
                             "cannot load certificate and key from '%s'%s",
                             cert, hint);
        goto out;
    }
    self->chain_count++;
    result = Py_NewRef(Py_None);
out:
    PyMem_Free(cert);
    PyMem_Free(key);
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
    if (check_path(path_bytes, PATH_FILE) < 0)
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
    if (crls > 0)
        self->crl_count += crls;
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
    if (check_path(path_bytes, PATH_DIR) < 0)
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
        self->crl_count += crls;
    }
    if (ret == 0 && crls > 0)
        result = PyLong_FromLong(0);
    else if (ret < 0 && der && view.len >= 10
             && memmem(view.buf, view.len, "-----BEGIN", 10) != NULL)
        result = errors_raise_fmt(
            module_state_from_type(Py_TYPE(self)), ret,
            "cannot load CA certificates from cadata: bytes are read as DER, "
            "but this is PEM text (pass it as a str)");
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
Credentials_ca_certificates(CredentialsObject *self, PyObject *unused)
{
    (void)unused;
    gnutls_x509_trust_list_t tlist;
    gnutls_certificate_get_trust_list(self->cred, &tlist);
    PyObject *list = PyList_New(0);
    if (list == NULL)
        return NULL;
    gnutls_x509_trust_list_iter_t iter = NULL;
    gnutls_x509_crt_t crt;
    int ret;
    while ((ret = gnutls_x509_trust_list_iter_get_ca(tlist, &iter, &crt)) == 0) {
        gnutls_datum_t der = {NULL, 0};
        ret = gnutls_x509_crt_export2(crt, GNUTLS_X509_FMT_DER, &der);
        gnutls_x509_crt_deinit(crt);
        if (ret < 0)
            continue;
        PyObject *item = PyBytes_FromStringAndSize((const char *)der.data,
                                                   der.size);
        gnutls_free(der.data);
        if (item == NULL || PyList_Append(list, item) < 0) {
            Py_XDECREF(item);
            Py_DECREF(list);
            gnutls_x509_trust_list_iter_deinit(iter);
            return NULL;
        }
        Py_DECREF(item);
    }
    gnutls_x509_trust_list_iter_deinit(iter);
    return list;
}

static PyObject *
Credentials_get_crl_count(CredentialsObject *self, void *closure)
{
    (void)closure;
    return PyLong_FromSsize_t(self->crl_count);
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
    {"ca_certificates", (PyCFunction)Credentials_ca_certificates,
     METH_NOARGS,
     "ca_certificates()\n--\n\nThe trusted CA certificates held in memory "
     "(DER).  Anchors that stay on a PKCS#11 token are not listed."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef Credentials_getset[] = {
    {"crl_count", (getter)Credentials_get_crl_count, NULL,
     "Number of CRLs loaded.", NULL},
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
