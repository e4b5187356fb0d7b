/* A TLS session driven over in-memory buffers.
 *
 * Copyright (C) 2026 The aio_gnutls_transport authors
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#ifndef AIO_GNUTLS_SESSION_H
#define AIO_GNUTLS_SESSION_H

#include "module.h"

extern PyType_Spec session_spec;

#endif
