/* Parsed GnuTLS priority strings.
 *
 * Copyright (C) 2026 The aio_gnutls_transport authors
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#ifndef AIO_GNUTLS_PRIORITY_H
#define AIO_GNUTLS_PRIORITY_H

#include "module.h"
#include <gnutls/gnutls.h>

typedef struct {
    PyObject_HEAD
    gnutls_priority_t priority;
    PyObject *string;
} PriorityObject;

extern PyType_Spec priority_spec;

/* The stdlib's name of a protocol version ("TLSv1.3"...). */
const char *priority_version_name(gnutls_protocol_t version);

#endif
