/* PKCS#11 modules and tokens (smartcards, HSMs) as GnuTLS sees them.
 *
 * Copyright (C) 2026 The aio_gnutls_transport authors
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#ifndef AIO_GNUTLS_PKCS11_H
#define AIO_GNUTLS_PKCS11_H

#include "module.h"

/* Module-level functions. */
PyObject *pkcs11_add_provider(PyObject *module, PyObject *arg);
PyObject *pkcs11_tokens(PyObject *module, PyObject *unused);
PyObject *pkcs11_modules(PyObject *module, PyObject *unused);

#endif
