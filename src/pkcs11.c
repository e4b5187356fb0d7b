/* PKCS#11 modules and tokens (smartcards, HSMs) as GnuTLS sees them.
 *
 * Copyright (C) 2026 The aio_gnutls_transport authors
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * GnuTLS loads the modules that p11-kit's configuration registers the
 * first time a pkcs11: URL is used.  add_provider() loads one more module
 * by path, for applications that do not want a system-wide registration.
 * After fork() GnuTLS reinitialises PKCS#11 by itself (since 3.3.0), so
 * credentials loaded before a fork keep working in the children.
 */
#include "pkcs11.h"
#include "errors.h"

#include <stdlib.h>
#include <gnutls/gnutls.h>
#include <gnutls/pkcs11.h>
#include <p11-kit/p11-kit.h>

PyObject *
pkcs11_add_provider(PyObject *module, PyObject *arg)
{
    PyObject *path_bytes = NULL;
    if (!PyUnicode_FSConverter(arg, &path_bytes))
        return NULL;
    const char *path = PyBytes_AS_STRING(path_bytes);
    int ret = gnutls_pkcs11_add_provider(path, NULL);
    PyObject *result = NULL;
    if (ret < 0)
        errors_raise_fmt(PyModule_GetState(module), ret,
                         "cannot load the PKCS#11 module '%s'", path);
    else
        result = Py_NewRef(Py_None);
    Py_DECREF(path_bytes);
    return result;
}

/* Add one text field of the token at URL to DICT (absent fields are
 * skipped); -1 on a Python error. */
static int
add_token_field(PyObject *dict, const char *key, const char *url,
                gnutls_pkcs11_token_info_t field)
{
    char buf[256];
    size_t size = sizeof(buf);
    if (gnutls_pkcs11_token_get_info(url, field, buf, &size) < 0)
        return 0;
    PyObject *value = PyUnicode_DecodeUTF8(buf, (Py_ssize_t)strnlen(buf, size),
                                           "replace");
    if (value == NULL)
        return -1;
    int rc = PyDict_SetItemString(dict, key, value);
    Py_DECREF(value);
    return rc;
}

static PyObject *
token_flags(const char *url)
{
    static const struct {
        unsigned int bit;
        const char *name;
    } names[] = {
        {GNUTLS_PKCS11_TOKEN_HW, "hardware"},
        {GNUTLS_PKCS11_TOKEN_TRUSTED, "trusted"},
        {GNUTLS_PKCS11_TOKEN_LOGIN_REQUIRED, "login-required"},
        {GNUTLS_PKCS11_TOKEN_PROTECTED_AUTHENTICATION_PATH, "pin-pad"},
        {GNUTLS_PKCS11_TOKEN_INITIALIZED, "initialized"},
        {GNUTLS_PKCS11_TOKEN_USER_PIN_COUNT_LOW, "user-pin-count-low"},
        {GNUTLS_PKCS11_TOKEN_USER_PIN_FINAL_TRY, "user-pin-final-try"},
        {GNUTLS_PKCS11_TOKEN_USER_PIN_LOCKED, "user-pin-locked"},
    };
    unsigned int flags = 0;
    PyObject *list = PyList_New(0);
    if (list == NULL || gnutls_pkcs11_token_get_flags(url, &flags) < 0)
        return list;
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (!(flags & names[i].bit))
            continue;
        PyObject *name = PyUnicode_FromString(names[i].name);
        if (name == NULL || PyList_Append(list, name) < 0) {
            Py_XDECREF(name);
            Py_DECREF(list);
            return NULL;
        }
        Py_DECREF(name);
    }
    return list;
}

PyObject *
pkcs11_tokens(PyObject *module, PyObject *unused)
{
    (void)unused;
    PyObject *list = PyList_New(0);
    if (list == NULL)
        return NULL;
    for (unsigned int seq = 0;; seq++) {
        char *url = NULL;
        int ret = gnutls_pkcs11_token_get_url(seq, GNUTLS_PKCS11_URL_GENERIC,
                                              &url);
        if (ret == GNUTLS_E_REQUESTED_DATA_NOT_AVAILABLE)
            break;
        if (ret < 0) {
            Py_DECREF(list);
            return errors_raise(PyModule_GetState(module), ret,
                                "cannot list the PKCS#11 tokens");
        }
        PyObject *token = PyDict_New();
        PyObject *url_obj = PyUnicode_FromString(url);
        PyObject *flags = token != NULL ? token_flags(url) : NULL;
        int bad = token == NULL || url_obj == NULL || flags == NULL
            || PyDict_SetItemString(token, "url", url_obj) < 0
            || PyDict_SetItemString(token, "flags", flags) < 0
            || add_token_field(token, "label", url, GNUTLS_PKCS11_TOKEN_LABEL) < 0
            || add_token_field(token, "manufacturer", url,
                               GNUTLS_PKCS11_TOKEN_MANUFACTURER) < 0
            || add_token_field(token, "model", url, GNUTLS_PKCS11_TOKEN_MODEL) < 0
            || add_token_field(token, "serial", url, GNUTLS_PKCS11_TOKEN_SERIAL) < 0
            || add_token_field(token, "module", url,
                               GNUTLS_PKCS11_TOKEN_MODNAME) < 0
            || PyList_Append(list, token) < 0;
        gnutls_free(url);
        Py_XDECREF(url_obj);
        Py_XDECREF(flags);
        Py_XDECREF(token);
        if (bad) {
            Py_DECREF(list);
            return NULL;
        }
    }
    return list;
}

PyObject *
pkcs11_modules(PyObject *module, PyObject *unused)
{
    (void)module;
    (void)unused;
    PyObject *list = PyList_New(0);
    if (list == NULL)
        return NULL;
    CK_FUNCTION_LIST **modules = p11_kit_modules_load(NULL, 0);
    if (modules == NULL) {
        const char *why = p11_kit_message();
        Py_DECREF(list);
        PyErr_Format(PyExc_OSError, "cannot read p11-kit's module list: %s",
                     why != NULL ? why : "unknown error");
        return NULL;
    }
    int bad = 0;
    for (size_t i = 0; modules[i] != NULL && !bad; i++) {
        char *name = p11_kit_module_get_name(modules[i]);
        char *filename = p11_kit_module_get_filename(modules[i]);
        PyObject *item = Py_BuildValue("{s:s,s:s}", "name",
                                       name != NULL ? name : "",
                                       "path", filename != NULL ? filename : "");
        free(name);
        free(filename);
        bad = item == NULL || PyList_Append(list, item) < 0;
        Py_XDECREF(item);
    }
    p11_kit_modules_release(modules);
    if (bad) {
        Py_DECREF(list);
        return NULL;
    }
    return list;
}
