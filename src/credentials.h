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
    gnutls_datum_t ticket_key;  /* session ticket key of a server, or empty */
} CredentialsObject;

/* The key that encrypts the session tickets of servers using SELF,
 * made on first use; NULL with an exception set on failure. */
const gnutls_datum_t *credentials_ticket_key(CredentialsObject *self);

extern PyType_Spec credentials_spec;

#endif
