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
    Py_ssize_t crl_count;
    Py_ssize_t chain_count;
    char *pin;            /* PIN for keys on PKCS#11 tokens, or NULL */
    int pin_rejected;     /* the token said the PIN was wrong */
    int pin_missing;      /* a token asked for a PIN and we had none */
} CredentialsObject;

extern PyType_Spec credentials_spec;

#endif
