/* Shared declarations of the aio_gnutls_transport._gnutls extension module.
 *
 * Copyright (C) 2026 The aio_gnutls_transport authors
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#ifndef AIO_GNUTLS_MODULE_H
#define AIO_GNUTLS_MODULE_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

/* Python 3.9 lacks a few helpers that later versions have. */
#if PY_VERSION_HEX < 0x030A0000
static inline PyObject *
compat_new_ref(PyObject *obj)
{
    Py_INCREF(obj);
    return obj;
}
#define Py_NewRef(obj) compat_new_ref((PyObject *)(obj))

static inline int
compat_module_add_object_ref(PyObject *module, const char *name, PyObject *value)
{
    Py_INCREF(value);
    if (PyModule_AddObject(module, name, value) < 0) {
        Py_DECREF(value);
        return -1;
    }
    return 0;
}
#define PyModule_AddObjectRef compat_module_add_object_ref
#endif

/* Values shared with the stdlib ssl module. */
enum {
    VERIFY_CERT_NONE = 0,
    VERIFY_CERT_OPTIONAL = 1,
    VERIFY_CERT_REQUIRED = 2,
};

/* Everything the module owns lives here, never in C globals (PEP 489). */
typedef struct {
    PyObject *GnutlsError;
    PyObject *CertificateVerificationError;
    PyObject *PrematureTerminationError;
    PyTypeObject *PriorityType;
    PyTypeObject *CredentialsType;
    PyTypeObject *SessionType;
} module_state;

/* The state of the module that defined TYPE (a heap type of this module). */
module_state *module_state_from_type(PyTypeObject *type);

#endif
