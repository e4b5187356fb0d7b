/* Certificate credentials: our certificate chain and key, trusted CAs, CRLs.
 *
 * Copyright (C) 2026 The aio_gnutls_transport authors
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#ifndef AIO_GNUTLS_CREDENTIALS_H
#define AIO_GNUTLS_CREDENTIALS_H

#include "module.h"
#include <gnutls/gnutls.h>

typedef struct {
    PyObject_HEAD
    gnutls_certificate_credentials_t cred;
    Py_ssize_t ca_count;
    Py_ssize_t chain_count;
} CredentialsObject;

extern PyType_Spec credentials_spec;

#endif
