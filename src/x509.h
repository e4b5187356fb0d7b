/* Reading X.509 certificates for Python.
 *
 * Copyright (C) 2026 The aio_gnutls_transport authors
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#ifndef AIO_GNUTLS_X509_H
#define AIO_GNUTLS_X509_H

#include "module.h"

/* certificate_info(der) -> dict; a module-level function. */
PyObject *x509_certificate_info(PyObject *module, PyObject *arg);

#endif
