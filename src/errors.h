/* One mapping from GnuTLS error codes to Python exceptions.
 *
 * Copyright (C) 2026 The aio_gnutls_transport authors
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#ifndef AIO_GNUTLS_ERRORS_H
#define AIO_GNUTLS_ERRORS_H

#include "module.h"
#include <gnutls/gnutls.h>

/* Create the exception classes and store them in STATE; 0 on success. */
int errors_init(PyObject *module, module_state *state);

/* Raise the exception that fits CODE.  The message is "<what>: <GnuTLS's
 * explanation>"; WHAT names the operation and its input.  Returns NULL. */
PyObject *errors_raise(module_state *state, int code, const char *what);

/* Same, with a printf-style WHAT. */
PyObject *errors_raise_fmt(module_state *state, int code, const char *fmt, ...);

/* Raise for CODE with exactly the printf-style message given, when it says
 * more than GnuTLS's explanation would. */
PyObject *errors_raise_plain(module_state *state, int code, const char *fmt,
                             ...);

/* Raise CertificateVerificationError for a GnuTLS verification STATUS
 * (gnutls_certificate_status_t bits); HOSTNAME may be NULL.  Returns NULL. */
PyObject *errors_raise_verification(module_state *state, unsigned int status,
                                    const char *hostname, int self_signed);

/* The alert that tells a peer why its certificate was rejected. */
gnutls_alert_description_t errors_alert_for_status(unsigned int status);

#endif
