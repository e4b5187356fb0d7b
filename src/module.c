/* The aio_gnutls_transport._gnutls extension module.
 *
 * Copyright (C) 2026 The aio_gnutls_transport authors
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * Multi-phase initialisation (PEP 489) with heap types and per-module state,
 * so the module can be loaded in several interpreters.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif
#include "module.h"
#include "credentials.h"
#include "errors.h"
#include "pkcs11.h"
#include "priority.h"
#include "session.h"
#include "x509.h"

#include <gnutls/gnutls.h>

#define GNUTLS_MIN_VERSION "3.6.13"

static struct PyModuleDef module_def;

module_state *
module_state_from_type(PyTypeObject *type)
{
    /* Our types are final (not subclassable), so TYPE is one of ours. */
    return PyType_GetModuleState(type);
}

static PyTypeObject *
add_type(PyObject *module, PyType_Spec *spec)
{
    PyObject *type = PyType_FromModuleAndSpec(module, spec, NULL);
    if (type == NULL)
        return NULL;
    const char *name = strrchr(spec->name, '.') + 1;
    if (PyModule_AddObjectRef(module, name, type) < 0) {
        Py_DECREF(type);
        return NULL;
    }
    return (PyTypeObject *)type;
}

static int
module_exec(PyObject *module)
{
    if (gnutls_check_version(GNUTLS_MIN_VERSION) == NULL) {
        PyErr_Format(PyExc_ImportError,
                     "GnuTLS %s or later is needed, this is %s",
                     GNUTLS_MIN_VERSION, gnutls_check_version(NULL));
        return -1;
    }
    module_state *state = PyModule_GetState(module);
    if (errors_init(module, state) < 0)
        return -1;
    state->PriorityType = add_type(module, &priority_spec);
    if (state->PriorityType == NULL)
        return -1;
    state->CredentialsType = add_type(module, &credentials_spec);
    if (state->CredentialsType == NULL)
        return -1;
    state->SessionType = add_type(module, &session_spec);
    if (state->SessionType == NULL)
        return -1;
    if (PyModule_AddIntConstant(module, "CERT_NONE", VERIFY_CERT_NONE) < 0
        || PyModule_AddIntConstant(module, "CERT_OPTIONAL", VERIFY_CERT_OPTIONAL) < 0
        || PyModule_AddIntConstant(module, "CERT_REQUIRED", VERIFY_CERT_REQUIRED) < 0
        || PyModule_AddIntConstant(module, "SHUT_RDWR", GNUTLS_SHUT_RDWR) < 0
        || PyModule_AddIntConstant(module, "SHUT_WR", GNUTLS_SHUT_WR) < 0
        || PyModule_AddStringConstant(module, "GNUTLS_VERSION",
                                      gnutls_check_version(NULL)) < 0
#ifdef PACKAGE_VERSION
        || PyModule_AddStringConstant(module, "PACKAGE_VERSION",
                                      PACKAGE_VERSION) < 0
#endif
#ifdef P11KIT_BUILD_VERSION
        || PyModule_AddStringConstant(module, "P11KIT_VERSION",
                                      P11KIT_BUILD_VERSION) < 0
#endif
#ifdef SITE_CONFIG_FILE
        || PyModule_AddStringConstant(module, "SITE_CONFIG_FILE",
                                      SITE_CONFIG_FILE) < 0
#endif
       )
        return -1;
    return 0;
}

static int
module_traverse(PyObject *module, visitproc visit, void *arg)
{
    module_state *state = PyModule_GetState(module);
    Py_VISIT(state->GnutlsError);
    Py_VISIT(state->CertificateVerificationError);
    Py_VISIT(state->PrematureTerminationError);
    Py_VISIT(state->PriorityType);
    Py_VISIT(state->CredentialsType);
    Py_VISIT(state->SessionType);
    return 0;
}

static int
module_clear(PyObject *module)
{
    module_state *state = PyModule_GetState(module);
    Py_CLEAR(state->GnutlsError);
    Py_CLEAR(state->CertificateVerificationError);
    Py_CLEAR(state->PrematureTerminationError);
    Py_CLEAR(state->PriorityType);
    Py_CLEAR(state->CredentialsType);
    Py_CLEAR(state->SessionType);
    return 0;
}

static void
module_free(void *module)
{
    module_clear(module);
}

static PyObject *
system_config_file(PyObject *module, PyObject *unused)
{
    (void)module;
    (void)unused;
    return PyUnicode_DecodeFSDefault(gnutls_get_system_config_file());
}

static PyMethodDef module_methods[] = {
    {"certificate_info", x509_certificate_info, METH_O,
     "certificate_info(der)\n--\n\n"
     "Subject, issuer, serial, validity and alternative names of a DER "
     "certificate, as a dict."},
    {"pkcs11_add_provider", pkcs11_add_provider, METH_O,
     "pkcs11_add_provider(path)\n--\n\n"
     "Load the PKCS#11 module at PATH, beside those p11-kit registers."},
    {"pkcs11_tokens", pkcs11_tokens, METH_NOARGS,
     "pkcs11_tokens()\n--\n\n"
     "The PKCS#11 tokens GnuTLS sees: a list of dicts with url, label, "
     "manufacturer, model, serial, module and flags."},
    {"pkcs11_modules", pkcs11_modules, METH_NOARGS,
     "pkcs11_modules()\n--\n\n"
     "The PKCS#11 modules p11-kit's configuration registers (name, path)."},
    {"system_config_file", system_config_file, METH_NOARGS,
     "system_config_file()\n--\n\n"
     "The GnuTLS system configuration file this process uses (its "
     "[priorities] define @KEYWORDs, its [overrides] apply to every "
     "priority string)."},
    {NULL, NULL, 0, NULL},
};

static PyModuleDef_Slot module_slots[] = {
    {Py_mod_exec, module_exec},
    {0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT,
    .m_name = "aio_gnutls_transport._gnutls",
    .m_doc = "TLS sessions over in-memory buffers, driven by GnuTLS.",
    .m_size = sizeof(module_state),
    .m_methods = module_methods,
    .m_slots = module_slots,
    .m_traverse = module_traverse,
    .m_clear = module_clear,
    .m_free = module_free,
};

PyMODINIT_FUNC
PyInit__gnutls(void)
{
    return PyModuleDef_Init(&module_def);
}
