/* Reading X.509 certificates for Python.
 *
 * Copyright (C) 2026 The aio_gnutls_transport authors
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "x509.h"
#include "errors.h"

#include <arpa/inet.h>
#include <string.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

/* Set KEY of DICT to VALUE, stealing the reference; -1 on error. */
static int
set_item(PyObject *dict, const char *key, PyObject *value)
{
    if (value == NULL)
        return -1;
    int ret = PyDict_SetItemString(dict, key, value);
    Py_DECREF(value);
    return ret;
}

static PyObject *
datum_to_str(int ret, gnutls_datum_t *d)
{
    if (ret < 0) {
        if (ret == GNUTLS_E_REQUESTED_DATA_NOT_AVAILABLE)
            return PyUnicode_FromString("");
        PyErr_Format(PyExc_ValueError, "cannot read certificate: %s",
                     gnutls_strerror(ret));
        return NULL;
    }
    PyObject *s = PyUnicode_DecodeUTF8((const char *)d->data, d->size,
                                       "replace");
    gnutls_free(d->data);
    return s;
}

/* ((("OID", "value"),), ...) for each RDN of DN, in certificate order. */
static PyObject *
dn_components(gnutls_x509_dn_t dn)
{
    PyObject *rdns = PyList_New(0);
    if (rdns == NULL)
        return NULL;
    for (int irdn = 0;; irdn++) {
        PyObject *rdn = PyList_New(0);
        if (rdn == NULL)
            goto fail;
        int iava;
        for (iava = 0;; iava++) {
            gnutls_x509_ava_st ava;
            if (gnutls_x509_dn_get_rdn_ava(dn, irdn, iava, &ava) < 0)
                break;
            /* GnuTLS counts the OID's terminating NUL in its size. */
            Py_ssize_t oid_len = (Py_ssize_t)strnlen((const char *)ava.oid.data,
                                                     ava.oid.size);
            PyObject *item = Py_BuildValue(
                "(s#s#)", (const char *)ava.oid.data, oid_len,
                (const char *)ava.value.data, (Py_ssize_t)ava.value.size);
            if (item == NULL) {
                /* Not UTF-8: keep the bytes readable rather than fail. */
                PyErr_Clear();
                item = Py_BuildValue(
                    "(s#y#)", (const char *)ava.oid.data, oid_len,
                    (const char *)ava.value.data,
                    (Py_ssize_t)ava.value.size);
            }
            if (item == NULL || PyList_Append(rdn, item) < 0) {
                Py_XDECREF(item);
                Py_DECREF(rdn);
                goto fail;
            }
            Py_DECREF(item);
        }
        if (iava == 0) {
            Py_DECREF(rdn);
            break;
        }
        PyObject *tuple = PyList_AsTuple(rdn);
        Py_DECREF(rdn);
        if (tuple == NULL || PyList_Append(rdns, tuple) < 0) {
            Py_XDECREF(tuple);
            goto fail;
        }
        Py_DECREF(tuple);
    }
    PyObject *result = PyList_AsTuple(rdns);
    Py_DECREF(rdns);
    return result;
fail:
    Py_DECREF(rdns);
    return NULL;
}

/* (kind, text) for one subject alternative name; NULL with no error set
 * for kinds the stdlib does not list either. */
static PyObject *
alt_name_item(int type, const char *buf, size_t size)
{
    switch (type) {
    case GNUTLS_SAN_DNSNAME:
    case GNUTLS_SAN_RFC822NAME:
    case GNUTLS_SAN_URI: {
        const char *kind = type == GNUTLS_SAN_DNSNAME ? "DNS"
                           : type == GNUTLS_SAN_URI ? "URI" : "email";
        /* Not UTF-8 is malformed, but must not make the certificate
         * unreadable. */
        PyObject *text = PyUnicode_DecodeUTF8(buf, (Py_ssize_t)size,
                                              "backslashreplace");
        if (text == NULL)
            return NULL;
        PyObject *item = Py_BuildValue("(sN)", kind, text);
        return item;
    }
    case GNUTLS_SAN_IPADDRESS: {
        char text[INET6_ADDRSTRLEN];
        int family = size == 4 ? AF_INET : size == 16 ? AF_INET6 : 0;
        if (family == 0 || inet_ntop(family, buf, text, sizeof(text)) == NULL)
            return Py_BuildValue("(ss)", "IP Address", "<invalid>");
        return Py_BuildValue("(ss)", "IP Address", text);
    }
    default:
        return NULL;
    }
}

static PyObject *
alt_names(gnutls_x509_crt_t crt)
{
    PyObject *list = PyList_New(0);
    if (list == NULL)
        return NULL;
    size_t cap = 256;
    char *buf = PyMem_Malloc(cap);
    if (buf == NULL) {
        Py_DECREF(list);
        return PyErr_NoMemory();
    }
    for (unsigned int i = 0;; i++) {
        size_t size = cap;
        unsigned int type;
        int ret = gnutls_x509_crt_get_subject_alt_name2(crt, i, buf, &size,
                                                        &type, NULL);
        if (ret == GNUTLS_E_SHORT_MEMORY_BUFFER && size < (1 << 20)) {
            char *bigger = PyMem_Realloc(buf, size + 1);
            if (bigger == NULL) {
                PyErr_NoMemory();
                goto fail;
            }
            buf = bigger;
            cap = size + 1;
            i--;        /* the same name again, with room for it */
            continue;
        }
        if (ret < 0)    /* the end, or a name we cannot read */
            break;
        PyObject *item = alt_name_item(ret, buf, size);
        if (item == NULL) {
            if (PyErr_Occurred())
                goto fail;
            continue;
        }
        int rc = PyList_Append(list, item);
        Py_DECREF(item);
        if (rc < 0)
            goto fail;
    }
    PyMem_Free(buf);
    return list;
fail:
    PyMem_Free(buf);
    Py_DECREF(list);
    return NULL;
}

/* Append a str made of D to LIST, freeing D; -1 on error. */
static int
append_datum(PyObject *list, gnutls_datum_t *d)
{
    PyObject *text = PyUnicode_DecodeUTF8((const char *)d->data, d->size,
                                          "backslashreplace");
    gnutls_free(d->data);
    d->data = NULL;
    if (text == NULL)
        return -1;
    int rc = PyList_Append(list, text);
    Py_DECREF(text);
    return rc;
}

/* The OCSP and caIssuers URIs of the Authority Information Access
 * extension. */
static int
access_uris(gnutls_x509_crt_t crt, PyObject *info)
{
    PyObject *ocsp = PyList_New(0), *issuers = PyList_New(0);
    int rc = -1;
    if (ocsp == NULL || issuers == NULL)
        goto out;
    for (unsigned int seq = 0; seq < 64; seq++) {
        gnutls_datum_t d = {NULL, 0};
        int ret = gnutls_x509_crt_get_authority_info_access(
            crt, seq, GNUTLS_IA_OCSP_URI, &d, NULL);
        if (ret == GNUTLS_E_REQUESTED_DATA_NOT_AVAILABLE)
            break;
        if (ret >= 0) {
            if (append_datum(ocsp, &d) < 0)
                goto out;
            continue;
        }
        ret = gnutls_x509_crt_get_authority_info_access(
            crt, seq, GNUTLS_IA_CAISSUERS_URI, &d, NULL);
        if (ret >= 0 && append_datum(issuers, &d) < 0)
            goto out;
    }
    if (PyDict_SetItemString(info, "ocsp", ocsp) < 0
        || PyDict_SetItemString(info, "ca_issuers", issuers) < 0)
        goto out;
    rc = 0;
out:
    Py_XDECREF(ocsp);
    Py_XDECREF(issuers);
    return rc;
}

/* The URIs of the CRL Distribution Points extension. */
static PyObject *
crl_points(gnutls_x509_crt_t crt)
{
    PyObject *list = PyList_New(0);
    if (list == NULL)
        return NULL;
    for (unsigned int seq = 0; seq < 64; seq++) {
        char buf[1024];
        size_t size = sizeof(buf);
        unsigned int reasons;
        int ret = gnutls_x509_crt_get_crl_dist_points(crt, seq, buf, &size,
                                                      &reasons, NULL);
        if (ret == GNUTLS_E_REQUESTED_DATA_NOT_AVAILABLE)
            break;
        if (ret != GNUTLS_SAN_URI)
            continue;
        PyObject *text = PyUnicode_DecodeUTF8(buf, (Py_ssize_t)size,
                                              "backslashreplace");
        if (text == NULL || PyList_Append(list, text) < 0) {
            Py_XDECREF(text);
            Py_DECREF(list);
            return NULL;
        }
        Py_DECREF(text);
    }
    return list;
}

static PyObject *
serial_hex(gnutls_x509_crt_t crt)
{
    unsigned char serial[64];
    size_t size = sizeof(serial);
    if (gnutls_x509_crt_get_serial(crt, serial, &size) < 0)
        return PyUnicode_FromString("");
    char hex[2 * sizeof(serial) + 1];
    static const char digits[] = "0123456789ABCDEF";
    for (size_t i = 0; i < size; i++) {
        hex[2 * i] = digits[serial[i] >> 4];
        hex[2 * i + 1] = digits[serial[i] & 15];
    }
    hex[2 * size] = '\0';
    return PyUnicode_FromString(hex);
}

PyObject *
x509_certificate_info(PyObject *module, PyObject *arg)
{
    (void)module;
    Py_buffer view;
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0)
        return NULL;
    gnutls_x509_crt_t crt = NULL;
    PyObject *info = NULL;
    int ret = gnutls_x509_crt_init(&crt);
    if (ret < 0) {
        PyErr_NoMemory();
        crt = NULL;
        goto out;
    }
    gnutls_datum_t der = {view.buf, (unsigned int)view.len};
    ret = gnutls_x509_crt_import(crt, &der, GNUTLS_X509_FMT_DER);
    if (ret < 0) {
        PyErr_Format(PyExc_ValueError, "not a DER X.509 certificate: %s",
                     gnutls_strerror(ret));
        goto out;
    }
    info = PyDict_New();
    if (info == NULL)
        goto out;

    gnutls_datum_t d;
    gnutls_x509_dn_t dn;
    ret = gnutls_x509_crt_get_dn3(crt, &d, 0);
    if (set_item(info, "subject", datum_to_str(ret, &d)) < 0)
        goto fail;
    ret = gnutls_x509_crt_get_issuer_dn3(crt, &d, 0);
    if (set_item(info, "issuer", datum_to_str(ret, &d)) < 0)
        goto fail;
    if (gnutls_x509_crt_get_subject(crt, &dn) >= 0) {
        if (set_item(info, "subject_components", dn_components(dn)) < 0)
            goto fail;
    }
    if (gnutls_x509_crt_get_issuer(crt, &dn) >= 0) {
        if (set_item(info, "issuer_components", dn_components(dn)) < 0)
            goto fail;
    }
    if (set_item(info, "serial", serial_hex(crt)) < 0
        || set_item(info, "version",
                    PyLong_FromLong(gnutls_x509_crt_get_version(crt))) < 0
        || set_item(info, "not_before",
                    PyLong_FromLongLong(
                        (long long)gnutls_x509_crt_get_activation_time(crt))) < 0
        || set_item(info, "not_after",
                    PyLong_FromLongLong(
                        (long long)gnutls_x509_crt_get_expiration_time(crt))) < 0
        || set_item(info, "ca",
                    PyBool_FromLong(gnutls_x509_crt_get_ca_status(crt, NULL)
                                    > 0)) < 0
        || set_item(info, "subject_alt_names", alt_names(crt)) < 0
        || set_item(info, "crl_distribution_points", crl_points(crt)) < 0
        || access_uris(crt, info) < 0)
        goto fail;
    goto out;
fail:
    Py_CLEAR(info);
out:
    if (crt != NULL)
        gnutls_x509_crt_deinit(crt);
    PyBuffer_Release(&view);
    return info;
}
