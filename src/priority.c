/* Parsed GnuTLS priority strings.
 *
 * Copyright (C) 2026 The aio_gnutls_transport authors
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * A string is parsed once, when the object is made, so a mistake shows at
 * the call that introduced it, with the position GnuTLS stopped at.
 */
#include "priority.h"
#include "errors.h"

#include <stdio.h>
#include <string.h>

static PyObject *
Priority_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"string", NULL};
    PyObject *string;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "U:Priority", kwlist, &string))
        return NULL;
    Py_ssize_t size;
    const char *text = PyUnicode_AsUTF8AndSize(string, &size);
    if (text == NULL)
        return NULL;
    if ((size_t)size != strlen(text)) {
        PyErr_SetString(PyExc_ValueError,
                        "priority string contains a NUL character");
        return NULL;
    }
    module_state *state = module_state_from_type(type);

    gnutls_priority_t priority;
    const char *err_pos = NULL;
    int ret = gnutls_priority_init(&priority, text, &err_pos);
    if (ret == GNUTLS_E_NO_PRIORITIES_WERE_SET)
        return errors_raise_plain(
            state, ret,
            "priority string '%s' leaves no protocol version or algorithm to "
            "negotiate (note that the [overrides] of GnuTLS's system "
            "configuration, %s, may disable what it enables)",
            text, gnutls_get_system_config_file());
    if (ret < 0) {
        if (err_pos != NULL && err_pos >= text && err_pos <= text + size) {
            /* err_pos points into TEXT; report a character position. */
            PyObject *head = PyUnicode_DecodeUTF8(text, err_pos - text, NULL);
            Py_ssize_t pos = head != NULL ? PyUnicode_GET_LENGTH(head) : 0;
            Py_XDECREF(head);
            if (*err_pos == '@' && pos > 0)
                return errors_raise_plain(
                    state, ret,
                    "invalid priority string '%s' at position %zd: an "
                    "@KEYWORD may only start the string (at '%s')",
                    text, pos, err_pos);
            if (*err_pos == '@') {
                /* A keyword only GnuTLS's system configuration defines. */
                char keyword[128];
                snprintf(keyword, sizeof(keyword), "%.*s",
                         (int)strcspn(err_pos, ":,"), err_pos);
                return errors_raise_plain(
                    state, ret,
                    "invalid priority string '%s' at position %zd: the "
                    "keyword '%s' is not defined in GnuTLS's system "
                    "configuration (%s): define it in that file's "
                    "[priorities] section, e.g. '%s = "
                    "SECURE:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2'",
                    text, pos, keyword, gnutls_get_system_config_file(),
                    keyword + 1);
            }
            return errors_raise_fmt(
                state, ret,
                "invalid priority string '%s' at position %zd (at '%s')",
                text, pos, err_pos);
        }
        return errors_raise_fmt(state, ret, "invalid priority string '%s'",
                                text);
    }

    PriorityObject *self = (PriorityObject *)type->tp_alloc(type, 0);
    if (self == NULL) {
        gnutls_priority_deinit(priority);
        return NULL;
    }
    self->priority = priority;
    self->string = Py_NewRef(string);
    return (PyObject *)self;
}

static void
Priority_dealloc(PriorityObject *self)
{
    PyTypeObject *type = Py_TYPE(self);
    if (self->priority != NULL)
        gnutls_priority_deinit(self->priority);
    Py_XDECREF(self->string);
    type->tp_free(self);
    Py_DECREF(type);
}

static PyObject *
Priority_repr(PriorityObject *self)
{
    return PyUnicode_FromFormat("<Priority %R>", self->string);
}

static PyObject *
Priority_get_string(PriorityObject *self, void *closure)
{
    (void)closure;
    return Py_NewRef(self->string);
}

typedef int (*list_fn)(gnutls_priority_t, const unsigned int **);
typedef const char *(*name_fn)(unsigned int);

static const char *
protocol_name(unsigned int id)
{
    /* Datagram versions are of no use to a stream transport. */
    if (id == GNUTLS_DTLS0_9 || id == GNUTLS_DTLS1_0 || id == GNUTLS_DTLS1_2)
        return NULL;
    return gnutls_protocol_get_name((gnutls_protocol_t)id);
}

static const char *cipher_name(unsigned int id)
{ return gnutls_cipher_get_name((gnutls_cipher_algorithm_t)id); }
static const char *mac_name(unsigned int id)
{ return gnutls_mac_get_name((gnutls_mac_algorithm_t)id); }
static const char *kx_name(unsigned int id)
{ return gnutls_kx_get_name((gnutls_kx_algorithm_t)id); }
static const char *group_name(unsigned int id)
{ return gnutls_group_get_name((gnutls_group_t)id); }
static const char *sign_name(unsigned int id)
{ return gnutls_sign_get_name((gnutls_sign_algorithm_t)id); }

/* The names of what LIST enables, in priority order. */
static PyObject *
enabled_names(PriorityObject *self, list_fn list, name_fn name)
{
    const unsigned int *ids = NULL;
    int n = list(self->priority, &ids);
    PyObject *result = PyList_New(0);
    if (result == NULL)
        return NULL;
    for (int i = 0; i < n; i++) {
        const char *text = name(ids[i]);
        if (text == NULL)
            continue;
        PyObject *item = PyUnicode_FromString(text);
        if (item == NULL || PyList_Append(result, item) < 0) {
            Py_XDECREF(item);
            Py_DECREF(result);
            return NULL;
        }
        Py_DECREF(item);
    }
    return result;
}

static PyObject *
Priority_protocols(PriorityObject *self, PyObject *unused)
{
    (void)unused;
    return enabled_names(self, gnutls_priority_protocol_list, protocol_name);
}

static PyObject *
Priority_ciphers(PriorityObject *self, PyObject *unused)
{
    (void)unused;
    return enabled_names(self, gnutls_priority_cipher_list, cipher_name);
}

static PyObject *
Priority_macs(PriorityObject *self, PyObject *unused)
{
    (void)unused;
    return enabled_names(self, gnutls_priority_mac_list, mac_name);
}

static PyObject *
Priority_key_exchanges(PriorityObject *self, PyObject *unused)
{
    (void)unused;
    return enabled_names(self, gnutls_priority_kx_list, kx_name);
}

static PyObject *
Priority_groups(PriorityObject *self, PyObject *unused)
{
    (void)unused;
    return enabled_names(self, gnutls_priority_group_list, group_name);
}

static PyObject *
Priority_signatures(PriorityObject *self, PyObject *unused)
{
    (void)unused;
    return enabled_names(self, gnutls_priority_sign_list, sign_name);
}

const char *
priority_version_name(gnutls_protocol_t v)
{
    switch (v) {
    case GNUTLS_SSL3: return "SSLv3";
    case GNUTLS_TLS1_0: return "TLSv1";
    case GNUTLS_TLS1_1: return "TLSv1.1";
    case GNUTLS_TLS1_2: return "TLSv1.2";
    case GNUTLS_TLS1_3: return "TLSv1.3";
    default: return gnutls_protocol_get_name(v);
    }
}

/* Every cipher suite the priority enables, in priority order, as
 * (name, oldest protocol version, cipher key bits). */
static PyObject *
Priority_cipher_suites(PriorityObject *self, PyObject *unused)
{
    (void)unused;
    PyObject *result = PyList_New(0);
    if (result == NULL)
        return NULL;
    for (unsigned int i = 0;; i++) {
        unsigned int index;
        int ret = gnutls_priority_get_cipher_suite_index(self->priority, i,
                                                         &index);
        if (ret == GNUTLS_E_REQUESTED_DATA_NOT_AVAILABLE)
            break;
        if (ret < 0)        /* a suite this build of GnuTLS lacks */
            continue;
        unsigned char id[2];
        gnutls_kx_algorithm_t kx;
        gnutls_cipher_algorithm_t cipher;
        gnutls_mac_algorithm_t mac;
        gnutls_protocol_t min_version;
        const char *name = gnutls_cipher_suite_info(index, id, &kx, &cipher,
                                                    &mac, &min_version);
        const char *version = priority_version_name(min_version);
        if (name == NULL || version == NULL)
            continue;
        PyObject *item = Py_BuildValue(
            "(ssi)", name, version,
            (int)(gnutls_cipher_get_key_size(cipher) * 8));
        if (item == NULL || PyList_Append(result, item) < 0) {
            Py_XDECREF(item);
            Py_DECREF(result);
            return NULL;
        }
        Py_DECREF(item);
    }
    return result;
}

static PyMethodDef Priority_methods[] = {
    {"protocols", (PyCFunction)Priority_protocols, METH_NOARGS,
     "protocols()\n--\n\nThe TLS versions enabled, in priority order."},
    {"ciphers", (PyCFunction)Priority_ciphers, METH_NOARGS,
     "ciphers()\n--\n\nThe ciphers enabled, in priority order."},
    {"macs", (PyCFunction)Priority_macs, METH_NOARGS,
     "macs()\n--\n\nThe MAC algorithms enabled."},
    {"key_exchanges", (PyCFunction)Priority_key_exchanges, METH_NOARGS,
     "key_exchanges()\n--\n\nThe TLS 1.2 key exchange methods enabled."},
    {"groups", (PyCFunction)Priority_groups, METH_NOARGS,
     "groups()\n--\n\nThe key exchange groups enabled, in priority order."},
    {"signatures", (PyCFunction)Priority_signatures, METH_NOARGS,
     "signatures()\n--\n\nThe signature algorithms enabled."},
    {"cipher_suites", (PyCFunction)Priority_cipher_suites, METH_NOARGS,
     "cipher_suites()\n--\n\nThe cipher suites enabled, in priority order: "
     "(GnuTLS name, oldest protocol version, cipher key bits) tuples."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef Priority_getset[] = {
    {"string", (getter)Priority_get_string, NULL,
     "The priority string as given.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot Priority_slots[] = {
    {Py_tp_new, Priority_new},
    {Py_tp_dealloc, Priority_dealloc},
    {Py_tp_repr, Priority_repr},
    {Py_tp_getset, Priority_getset},
    {Py_tp_methods, Priority_methods},
    {Py_tp_doc, "Priority(string)\n--\n\n"
                "A GnuTLS priority string, parsed and checked when created."},
    {0, NULL},
};

PyType_Spec priority_spec = {
    .name = "aio_gnutls_transport._gnutls.Priority",
    .basicsize = sizeof(PriorityObject),
    .flags = Py_TPFLAGS_DEFAULT,
    .slots = Priority_slots,
};
