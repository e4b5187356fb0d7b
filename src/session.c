/* A TLS session driven over in-memory buffers.
 *
 * Copyright (C) 2026 The aio_gnutls_transport authors
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * The session never touches a socket: ciphertext from the peer is fed in
 * with feed(), ciphertext for the peer is taken out with take_output().
 * GnuTLS reaches both buffers through its push/pull callbacks, so the same
 * engine works under any asyncio transport (or none).  The heavy loops
 * (decrypting everything buffered, encrypting a large write) run here with
 * the GIL released.
 */
#include "session.h"
#include "credentials.h"
#include "errors.h"
#include "priority.h"

#include <arpa/inet.h>
#include <errno.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

/* Below this many bytes the GIL is kept: releasing it costs more than the
 * crypto. */
#define RELEASE_GIL_THRESHOLD 8192

/* A byte queue: bytes are appended at the end and consumed at the front. */
typedef struct {
    unsigned char *data;
    size_t start, len, cap;
} buffer_t;

static int
buffer_reserve(buffer_t *b, size_t extra)
{
    if (b->start + b->len + extra <= b->cap)
        return 0;
    if (b->len + extra <= b->cap && b->start >= b->len) {
        memmove(b->data, b->data + b->start, b->len);
        b->start = 0;
        return 0;
    }
    size_t need = b->len + extra;
    size_t cap = b->cap ? b->cap : 16384;
    while (cap < need) {
        if (cap > SIZE_MAX / 2)
            return -1;
        cap *= 2;
    }
    unsigned char *data = malloc(cap);
    if (data == NULL)
        return -1;
    if (b->len)
        memcpy(data, b->data + b->start, b->len);
    free(b->data);
    b->data = data;
    b->cap = cap;
    b->start = 0;
    return 0;
}

static int
buffer_append(buffer_t *b, const void *src, size_t n)
{
    if (n == 0)
        return 0;
    if (buffer_reserve(b, n) < 0)
        return -1;
    memcpy(b->data + b->start + b->len, src, n);
    b->len += n;
    return 0;
}

static void
buffer_consume(buffer_t *b, size_t n)
{
    b->start += n;
    b->len -= n;
    if (b->len == 0)
        b->start = 0;
}

static void
buffer_free(buffer_t *b)
{
    free(b->data);
    memset(b, 0, sizeof(*b));
}

typedef struct {
    PyObject_HEAD
    gnutls_session_t session;
    PyObject *credentials;      /* CredentialsObject, kept alive for GnuTLS */
    PyObject *priority;         /* PriorityObject */
    PyObject *server_hostname;  /* str or None */
    char *hostname;             /* UTF-8 copy for verification, or NULL */
    buffer_t in;                /* ciphertext from the peer */
    buffer_t out;               /* ciphertext for the peer */
    int server_side;
    int verify_mode;
    int check_hostname;
    int in_eof;                 /* feed_eof() was called */
    int handshake_done;
    int peer_closed;            /* close_notify received */
    int close_notify_sent;
    int failed;                 /* a fatal error happened: no more I/O */
    int busy;                   /* a call runs with the GIL released */
    int pending_error;          /* raise on the next read() */
    unsigned int verify_status;
    int verify_failed;          /* our verification rejected the peer */
    PyObject *client_hello;     /* server: callable(server_name) or NULL */
    PyObject *switched_credentials; /* what client_hello chose, kept alive */
    PyObject *cb_type, *cb_value, *cb_tb;  /* what client_hello raised */
    int callback_alert;         /* alert client_hello asked to send */
    PyObject *keylog;           /* file object for the NSS key log, or NULL */
    int keylog_fd;
} SessionObject;

/* The error our callbacks return to GnuTLS to stop a handshake. */
#define CALLBACK_ABORT GNUTLS_E_APPLICATION_ERROR_MAX

/* ---- GnuTLS transport callbacks (may run without the GIL) ---- */

static ssize_t
pull_cb(gnutls_transport_ptr_t ptr, void *data, size_t size)
{
    SessionObject *self = ptr;
    if (self->in.len == 0) {
        if (self->in_eof)
            return 0;
        gnutls_transport_set_errno(self->session, EAGAIN);
        return -1;
    }
    size_t n = size < self->in.len ? size : self->in.len;
    memcpy(data, self->in.data + self->in.start, n);
    buffer_consume(&self->in, n);
    return (ssize_t)n;
}

static int
pull_timeout_cb(gnutls_transport_ptr_t ptr, unsigned int ms)
{
    (void)ms;
    SessionObject *self = ptr;
    if (self->in.len > 0 || self->in_eof)
        return 1;
    gnutls_transport_set_errno(self->session, EAGAIN);
    return -1;
}

static ssize_t
vec_push_cb(gnutls_transport_ptr_t ptr, const giovec_t *iov, int iovcnt)
{
    SessionObject *self = ptr;
    size_t total = 0;
    for (int i = 0; i < iovcnt; i++)
        total += iov[i].iov_len;
    if (buffer_reserve(&self->out, total) < 0) {
        gnutls_transport_set_errno(self->session, ENOMEM);
        return -1;
    }
    for (int i = 0; i < iovcnt; i++)
        buffer_append(&self->out, iov[i].iov_base, iov[i].iov_len);
    return (ssize_t)total;
}

/* ---- certificate verification ---- */

static int
is_ip_literal(const char *name)
{
    unsigned char addr[16];
    return inet_pton(AF_INET, name, addr) == 1
        || inet_pton(AF_INET6, name, addr) == 1;
}

/* Called by GnuTLS once the peer's certificate has arrived.  The decision is
 * GnuTLS's (gnutls_certificate_verify_peers); we only pick the purpose and
 * the name it must hold, and fail closed. */
static int
verify_cb(gnutls_session_t session)
{
    SessionObject *self = gnutls_session_get_ptr(session);
    unsigned int count = 0;
    const gnutls_datum_t *certs = gnutls_certificate_get_peers(session, &count);
    if (certs == NULL || count == 0) {
        if (self->server_side && self->verify_mode == VERIFY_CERT_OPTIONAL)
            return 0;
        self->verify_failed = 1;
        self->verify_status = GNUTLS_CERT_INVALID;
        return GNUTLS_E_NO_CERTIFICATE_FOUND;
    }
    gnutls_typed_vdata_st data[2];
    unsigned int n = 0;
    data[n].type = GNUTLS_DT_KEY_PURPOSE_OID;
    data[n].data = (unsigned char *)(self->server_side ? GNUTLS_KP_TLS_WWW_CLIENT
                                                       : GNUTLS_KP_TLS_WWW_SERVER);
    data[n].size = 0;
    n++;
    if (!self->server_side && self->check_hostname && self->hostname != NULL) {
        data[n].type = GNUTLS_DT_DNS_HOSTNAME;
        data[n].data = (unsigned char *)self->hostname;
        data[n].size = 0;
        n++;
    }
    unsigned int status = 0;
    int ret = gnutls_certificate_verify_peers(session, data, n, &status);
    if (ret < 0) {
        self->verify_failed = 1;
        self->verify_status = GNUTLS_CERT_INVALID;
        return ret;
    }
    self->verify_status = status;
    if (status != 0) {
        self->verify_failed = 1;
        return GNUTLS_E_CERTIFICATE_VERIFICATION_ERROR;
    }
    return 0;
}

/* ---- application callbacks (the handshake runs with the GIL held) ---- */

/* Server side, once the ClientHello is read: ask the application which
 * credentials serve the name the client asked for (SNI). */
static int
client_hello_cb(gnutls_session_t session)
{
    SessionObject *self = gnutls_session_get_ptr(session);
    module_state *state = module_state_from_type(Py_TYPE(self));
    char name[256];
    size_t size = sizeof(name);
    unsigned int type;
    PyObject *name_obj;
    if (gnutls_server_name_get(session, name, &size, &type, 0) == 0
        && type == GNUTLS_NAME_DNS)
        name_obj = PyUnicode_DecodeUTF8(name, (Py_ssize_t)strnlen(name, size),
                                        "surrogateescape");
    else
        name_obj = Py_NewRef(Py_None);
    PyObject *result = name_obj != NULL
        ? PyObject_CallFunctionObjArgs(self->client_hello, name_obj, NULL)
        : NULL;
    Py_XDECREF(name_obj);
    if (result == NULL)
        goto error;
    if (result == Py_None) {
        Py_DECREF(result);
        return 0;
    }
    if (PyObject_TypeCheck(result, state->CredentialsType)) {
        int ret = gnutls_credentials_set(
            session, GNUTLS_CRD_CERTIFICATE,
            ((CredentialsObject *)result)->cred);
        Py_XDECREF(self->switched_credentials);
        self->switched_credentials = result;
        return ret;
    }
    if (PyLong_Check(result)) {
        long alert = PyLong_AsLong(result);
        Py_DECREF(result);
        if (alert == -1 && PyErr_Occurred())
            goto error;
        if (alert < 0 || alert > 255) {
            PyErr_Format(PyExc_ValueError, "invalid alert %ld", alert);
            goto error;
        }
        self->callback_alert = (int)alert;
        return CALLBACK_ABORT;
    }
    PyErr_Format(PyExc_TypeError,
                 "the server name callback returned %.100s; expected None, "
                 "Credentials or an alert number", Py_TYPE(result)->tp_name);
    Py_DECREF(result);
error:
    Py_CLEAR(self->cb_type);
    Py_CLEAR(self->cb_value);
    Py_CLEAR(self->cb_tb);
    PyErr_Fetch(&self->cb_type, &self->cb_value, &self->cb_tb);
    return CALLBACK_ABORT;
}

/* Append one NSS key log line: LABEL CLIENT_RANDOM SECRET (hex). */
static int
keylog_cb(gnutls_session_t session, const char *label,
          const gnutls_datum_t *secret)
{
    SessionObject *self = gnutls_session_get_ptr(session);
    static const char hex[] = "0123456789abcdef";
    gnutls_datum_t client_random, server_random;
    gnutls_session_get_random(session, &client_random, &server_random);
    char line[512];
    size_t n = 0, label_len = strlen(label);
    if (label_len + 2 * (client_random.size + secret->size) + 3 > sizeof(line))
        return 0;
    memcpy(line, label, label_len);
    n = label_len;
    line[n++] = ' ';
    for (unsigned int i = 0; i < client_random.size; i++) {
        line[n++] = hex[client_random.data[i] >> 4];
        line[n++] = hex[client_random.data[i] & 15];
    }
    line[n++] = ' ';
    for (unsigned int i = 0; i < secret->size; i++) {
        line[n++] = hex[secret->data[i] >> 4];
        line[n++] = hex[secret->data[i] & 15];
    }
    line[n++] = '\n';
    /* One write of a whole line to an O_APPEND file: lines of sessions
     * logging at once do not mix. */
    for (size_t off = 0; off < n;) {
        ssize_t w = write(self->keylog_fd, line + off, n - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            break;
        off += (size_t)w;
    }
    return 0;
}

static int
set_alpn(SessionObject *self, module_state *state, PyObject *protocols)
{
    PyObject *seq = PySequence_Fast(
        protocols, "alpn_protocols must be a sequence of bytes");
    if (seq == NULL)
        return -1;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    int rc = -1;
    gnutls_datum_t *datums = PyMem_Calloc(n > 0 ? (size_t)n : 1,
                                          sizeof(*datums));
    if (datums == NULL) {
        PyErr_NoMemory();
        goto out;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *item = PySequence_Fast_GET_ITEM(seq, i);
        if (!PyBytes_Check(item) || PyBytes_GET_SIZE(item) < 1
            || PyBytes_GET_SIZE(item) > 255) {
            PyErr_SetString(PyExc_ValueError, "each ALPN protocol must be "
                            "bytes of 1 to 255 octets");
            goto out;
        }
        datums[i].data = (unsigned char *)PyBytes_AS_STRING(item);
        datums[i].size = (unsigned int)PyBytes_GET_SIZE(item);
    }
    if (n > 0) {
        int ret = gnutls_alpn_set_protocols(
            self->session, datums, (unsigned int)n,
            self->server_side ? GNUTLS_ALPN_SERVER_PRECEDENCE : 0);
        if (ret < 0) {
            errors_raise(state, ret, "cannot set the ALPN protocols");
            goto out;
        }
    }
    rc = 0;
out:
    PyMem_Free(datums);
    Py_DECREF(seq);
    return rc;
}

/* ---- construction ---- */

static PyObject *session_new(PyTypeObject *type, module_state *state,
                             PyObject *credentials, PyObject *priority,
                             int server_side, PyObject *server_hostname,
                             int verify_mode, int check_hostname,
                             PyObject *alpn, PyObject *client_hello,
                             PyObject *keylog, Py_buffer *session_data);

static PyObject *
Session_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"credentials", "priority", "server_side",
                             "server_hostname", "verify_mode", "check_hostname",
                             "alpn_protocols", "client_hello", "keylog",
                             "session_data", NULL};
    module_state *state = module_state_from_type(type);
    PyObject *credentials, *priority, *server_hostname = Py_None;
    PyObject *alpn = Py_None, *client_hello = Py_None, *keylog = Py_None;
    Py_buffer session_data = {NULL, NULL, 0, 0, 0, 0, NULL, NULL, NULL, NULL,
                              NULL};
    int server_side = 0, verify_mode = VERIFY_CERT_NONE, check_hostname = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O!O!|$pOipOOOz*:Session",
                                     kwlist,
                                     state->CredentialsType, &credentials,
                                     state->PriorityType, &priority,
                                     &server_side, &server_hostname,
                                     &verify_mode, &check_hostname, &alpn,
                                     &client_hello, &keylog, &session_data))
        return NULL;
    PyObject *result = session_new(type, state, credentials, priority,
                                   server_side, server_hostname, verify_mode,
                                   check_hostname, alpn, client_hello, keylog,
                                   &session_data);
    PyBuffer_Release(&session_data);
    return result;
}

static PyObject *
session_new(PyTypeObject *type, module_state *state, PyObject *credentials,
            PyObject *priority, int server_side, PyObject *server_hostname,
            int verify_mode, int check_hostname, PyObject *alpn,
            PyObject *client_hello, PyObject *keylog, Py_buffer *session_data)
{
    if (verify_mode < VERIFY_CERT_NONE || verify_mode > VERIFY_CERT_REQUIRED) {
        PyErr_Format(PyExc_ValueError, "invalid verify_mode %d", verify_mode);
        return NULL;
    }
    if (server_hostname != Py_None && !PyUnicode_Check(server_hostname)) {
        PyErr_SetString(PyExc_TypeError, "server_hostname must be a str or None");
        return NULL;
    }
    if (check_hostname && verify_mode == VERIFY_CERT_NONE) {
        PyErr_SetString(PyExc_ValueError,
                        "check_hostname needs verify_mode CERT_OPTIONAL or "
                        "CERT_REQUIRED");
        return NULL;
    }
    if (check_hostname && !server_side && server_hostname == Py_None) {
        PyErr_SetString(PyExc_ValueError,
                        "check_hostname requires server_hostname");
        return NULL;
    }

    SessionObject *self = (SessionObject *)type->tp_alloc(type, 0);
    if (self == NULL)
        return NULL;
    self->credentials = Py_NewRef(credentials);
    self->priority = Py_NewRef(priority);
    self->server_hostname = Py_NewRef(server_hostname);
    self->server_side = server_side;
    self->verify_mode = verify_mode;
    self->check_hostname = check_hostname;

    if (server_hostname != Py_None) {
        Py_ssize_t size;
        const char *name = PyUnicode_AsUTF8AndSize(server_hostname, &size);
        if (name == NULL)
            goto fail;
        if ((size_t)size != strlen(name) || size == 0) {
            PyErr_SetString(PyExc_ValueError, "invalid server_hostname");
            goto fail;
        }
        self->hostname = PyMem_Malloc(size + 1);
        if (self->hostname == NULL) {
            PyErr_NoMemory();
            goto fail;
        }
        memcpy(self->hostname, name, size + 1);
    }

    unsigned int flags = (server_side ? GNUTLS_SERVER : GNUTLS_CLIENT)
                         | GNUTLS_NONBLOCK;
    int ret = gnutls_init(&self->session, flags);
    if (ret < 0) {
        self->session = NULL;
        errors_raise(state, ret, "cannot create a TLS session");
        goto fail;
    }
    gnutls_session_set_ptr(self->session, self);
    gnutls_transport_set_ptr(self->session, self);
    gnutls_transport_set_pull_function(self->session, pull_cb);
    gnutls_transport_set_pull_timeout_function(self->session, pull_timeout_cb);
    gnutls_transport_set_vec_push_function(self->session, vec_push_cb);

    ret = gnutls_priority_set(self->session,
                              ((PriorityObject *)priority)->priority);
    if (ret < 0) {
        errors_raise(state, ret, "cannot set the priority string");
        goto fail;
    }
    ret = gnutls_credentials_set(self->session, GNUTLS_CRD_CERTIFICATE,
                                 ((CredentialsObject *)credentials)->cred);
    if (ret < 0) {
        errors_raise(state, ret, "cannot set the certificate credentials");
        goto fail;
    }
    if (!server_side && self->hostname != NULL
        && !is_ip_literal(self->hostname)) {
        /* SNI: never for IP literals (RFC 6066, section 3). */
        ret = gnutls_server_name_set(self->session, GNUTLS_NAME_DNS,
                                     self->hostname, strlen(self->hostname));
        if (ret < 0) {
            errors_raise_fmt(state, ret, "cannot set server name '%s'",
                             self->hostname);
            goto fail;
        }
    }
    if (client_hello != Py_None) {
        if (!server_side || !PyCallable_Check(client_hello)) {
            PyErr_SetString(PyExc_TypeError,
                            "client_hello must be a callable, server side only");
            goto fail;
        }
        self->client_hello = Py_NewRef(client_hello);
        gnutls_handshake_set_post_client_hello_function(self->session,
                                                        client_hello_cb);
    }
    if (alpn != Py_None && set_alpn(self, state, alpn) < 0)
        goto fail;
    if (keylog != Py_None) {
        self->keylog_fd = PyObject_AsFileDescriptor(keylog);
        if (self->keylog_fd < 0)
            goto fail;
        self->keylog = Py_NewRef(keylog);
        gnutls_session_set_keylog_function(self->session, keylog_cb);
    }
    if (server_side) {
        /* Tickets let clients resume sessions (TLS 1.2 and 1.3). */
        const gnutls_datum_t *key =
            credentials_ticket_key((CredentialsObject *)credentials);
        if (key == NULL)
            goto fail;
        ret = gnutls_session_ticket_enable_server(self->session, key);
        if (ret < 0) {
            errors_raise(state, ret, "cannot enable session tickets");
            goto fail;
        }
    } else if (session_data->buf != NULL && session_data->len > 0) {
        ret = gnutls_session_set_data(self->session, session_data->buf,
                                      (size_t)session_data->len);
        if (ret < 0) {
            errors_raise(state, ret, "cannot use the saved TLS session");
            goto fail;
        }
    }
    if (server_side && verify_mode != VERIFY_CERT_NONE)
        gnutls_certificate_server_set_request(
            self->session, verify_mode == VERIFY_CERT_REQUIRED
                               ? GNUTLS_CERT_REQUIRE : GNUTLS_CERT_REQUEST);
    if (verify_mode != VERIFY_CERT_NONE)
        gnutls_session_set_verify_function(self->session, verify_cb);
    return (PyObject *)self;

fail:
    Py_DECREF(self);
    return NULL;
}

static void
Session_dealloc(SessionObject *self)
{
    PyTypeObject *type = Py_TYPE(self);
    /* The GnuTLS session refers to the credentials: free it first. */
    if (self->session != NULL)
        gnutls_deinit(self->session);
    Py_XDECREF(self->credentials);
    Py_XDECREF(self->priority);
    Py_XDECREF(self->server_hostname);
    Py_XDECREF(self->client_hello);
    Py_XDECREF(self->switched_credentials);
    Py_XDECREF(self->cb_type);
    Py_XDECREF(self->cb_value);
    Py_XDECREF(self->cb_tb);
    Py_XDECREF(self->keylog);
    PyMem_Free(self->hostname);
    buffer_free(&self->in);
    buffer_free(&self->out);
    type->tp_free(self);
    Py_DECREF(type);
}

/* ---- helpers ---- */

static module_state *
state_of(SessionObject *self)
{
    return module_state_from_type(Py_TYPE(self));
}

/* Refuse a call while another thread runs one with the GIL released. */
static int
enter(SessionObject *self)
{
    if (self->busy) {
        PyErr_SetString(PyExc_RuntimeError,
                        "the TLS session is in use by another thread");
        return -1;
    }
    return 0;
}

/* Queue the alert that tells the peer why we give up (after a fatal error
 * that the peer did not cause by its own alert). */
static void
send_alert_for(SessionObject *self, int code)
{
    if (code == CALLBACK_ABORT) {
        gnutls_alert_send(self->session, GNUTLS_AL_FATAL,
                          self->cb_type != NULL
                              ? GNUTLS_A_INTERNAL_ERROR
                              : (gnutls_alert_description_t)self->callback_alert);
        return;
    }
    if (code == GNUTLS_E_FATAL_ALERT_RECEIVED
        || code == GNUTLS_E_PREMATURE_TERMINATION
        || code == GNUTLS_E_PUSH_ERROR || code == GNUTLS_E_MEMORY_ERROR)
        return;
    if (self->verify_failed)
        gnutls_alert_send(self->session, GNUTLS_AL_FATAL,
                          errors_alert_for_status(self->verify_status));
    else if (code == GNUTLS_E_NO_CERTIFICATE_FOUND && self->server_side)
        /* GnuTLS would say decode_error; the peer did nothing malformed. */
        gnutls_alert_send(self->session, GNUTLS_AL_FATAL,
                          gnutls_protocol_get_version(self->session)
                                  == GNUTLS_TLS1_3
                              ? GNUTLS_A_CERTIFICATE_REQUIRED
                              : GNUTLS_A_HANDSHAKE_FAILURE);
    else
        gnutls_alert_send_appropriate(self->session, code);
}

static int
peer_is_self_signed(SessionObject *self)
{
    unsigned int count = 0;
    const gnutls_datum_t *certs =
        gnutls_certificate_get_peers(self->session, &count);
    if (certs == NULL || count != 1)
        return 0;
    gnutls_x509_crt_t crt;
    if (gnutls_x509_crt_init(&crt) < 0)
        return 0;
    int result = 0;
    if (gnutls_x509_crt_import(crt, &certs[0], GNUTLS_X509_FMT_DER) >= 0)
        result = gnutls_x509_crt_check_issuer(crt, crt) != 0;
    gnutls_x509_crt_deinit(crt);
    return result;
}

/* Raise the exception for a failure of operation WHAT with CODE. */
static PyObject *
raise_for(SessionObject *self, int code, const char *what)
{
    module_state *state = state_of(self);
    if (code == CALLBACK_ABORT && self->cb_type != NULL) {
        /* The application's callback raised: that is the error. */
        PyErr_Restore(self->cb_type, self->cb_value, self->cb_tb);
        self->cb_type = self->cb_value = self->cb_tb = NULL;
        return NULL;
    }
    if (code == CALLBACK_ABORT) {
        const char *name = gnutls_alert_get_name(
            (gnutls_alert_description_t)self->callback_alert);
        return errors_raise_plain(
            state, code, "%s: the server name callback refused the client "
            "(alert '%s')", what, name != NULL ? name : "unknown");
    }
    if (self->verify_failed && self->verify_status != GNUTLS_CERT_INVALID)
        return errors_raise_verification(
            state, self->verify_status,
            self->check_hostname ? self->hostname : NULL,
            peer_is_self_signed(self));
    if (self->verify_failed
        || ((code == GNUTLS_E_NO_CERTIFICATE_FOUND
             || code == GNUTLS_E_CERTIFICATE_REQUIRED) && self->server_side))
        return errors_raise_plain(
            state, code, "%s: the peer sent no certificate but one is required",
            what);
    if (code == GNUTLS_E_FATAL_ALERT_RECEIVED
        || code == GNUTLS_E_WARNING_ALERT_RECEIVED) {
        gnutls_alert_description_t alert = gnutls_alert_get(self->session);
        const char *name = gnutls_alert_get_name(alert);
        return errors_raise_plain(state, code,
                                  "%s: the peer sent the alert '%s' (%d)",
                                  what, name != NULL ? name : "unknown",
                                  (int)alert);
    }
    if (code == GNUTLS_E_PREMATURE_TERMINATION && !self->handshake_done)
        return errors_raise_plain(
            state, code,
            "%s: the peer closed the connection during the handshake", what);
    if (code == GNUTLS_E_PREMATURE_TERMINATION)
        return errors_raise_plain(
            state, code,
            "%s: the peer closed the connection without close_notify (the "
            "data may have been truncated)", what);
    return errors_raise_fmt(state, code, "%s", what);
}

/* Record a fatal error: queue the alert, stop further I/O, raise. */
static PyObject *
fail_with(SessionObject *self, int code, const char *what)
{
    /* A transport that ended inside a record is a truncation too, whatever
     * GnuTLS calls it; the peer is gone, so no alert either. */
    if (self->in_eof && self->in.len == 0
        && code == GNUTLS_E_UNEXPECTED_PACKET_LENGTH)
        code = GNUTLS_E_PREMATURE_TERMINATION;
    send_alert_for(self, code);
    self->failed = 1;
    return raise_for(self, code, what);
}

static PyObject *
raise_failed(SessionObject *self)
{
    return errors_raise_fmt(state_of(self), 0,
                            "the TLS session has failed and cannot be used");
}

/* ---- methods ---- */

/* Report a failure that read() found after data it returned. */
static PyObject *
raise_pending(SessionObject *self)
{
    int code = self->pending_error;
    self->pending_error = 0;
    return fail_with(self, code, "TLS read failed");
}

static PyObject *
Session_feed(SessionObject *self, PyObject *arg)
{
    if (enter(self) < 0)
        return NULL;
    if (self->in_eof) {
        PyErr_SetString(PyExc_RuntimeError, "feed() after feed_eof()");
        return NULL;
    }
    Py_buffer view;
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0)
        return NULL;
    int ret = buffer_append(&self->in, view.buf, view.len);
    PyBuffer_Release(&view);
    if (ret < 0)
        return PyErr_NoMemory();
    Py_RETURN_NONE;
}

static PyObject *
Session_feed_eof(SessionObject *self, PyObject *unused)
{
    (void)unused;
    if (enter(self) < 0)
        return NULL;
    self->in_eof = 1;
    Py_RETURN_NONE;
}

static PyObject *
Session_handshake(SessionObject *self, PyObject *unused)
{
    (void)unused;
    if (enter(self) < 0)
        return NULL;
    if (self->handshake_done)
        Py_RETURN_TRUE;
    if (self->failed)
        return raise_failed(self);
    int ret;
    /* Non-fatal results (a warning alert) let the handshake go on; the bound
     * keeps a peer from looping us forever. */
    for (int i = 0; i < 64; i++) {
        ret = gnutls_handshake(self->session);
        if (ret == GNUTLS_E_SUCCESS) {
            self->handshake_done = 1;
            Py_RETURN_TRUE;
        }
        if (ret == GNUTLS_E_AGAIN)
            Py_RETURN_FALSE;
        if (gnutls_error_is_fatal(ret))
            break;
    }
    return fail_with(self, ret, "TLS handshake failed");
}

/* One decrypted record, held until the GIL is back. */
typedef struct {
    gnutls_packet_t *items;
    size_t count, cap, bytes;
} packet_list;

static int
packet_list_add(packet_list *l, gnutls_packet_t p, size_t size)
{
    if (l->count == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 16;
        gnutls_packet_t *items = realloc(l->items, cap * sizeof(*items));
        if (items == NULL)
            return -1;
        l->items = items;
        l->cap = cap;
    }
    l->items[l->count++] = p;
    l->bytes += size;
    return 0;
}

static void
packet_list_free(packet_list *l)
{
    for (size_t i = 0; i < l->count; i++)
        gnutls_packet_deinit(l->items[i]);
    free(l->items);
}

/* Decrypt every record available; returns 0 (need more input or EOF) or a
 * fatal GnuTLS code.  Runs without the GIL. */
static int
decrypt_all(SessionObject *self, packet_list *out)
{
    size_t left = SIZE_MAX;
    for (;;) {
        gnutls_packet_t packet = NULL;
        ssize_t ret = gnutls_record_recv_packet(self->session, &packet);
        if (ret > 0) {
            if (packet_list_add(out, packet, (size_t)ret) < 0) {
                gnutls_packet_deinit(packet);
                return GNUTLS_E_MEMORY_ERROR;
            }
            continue;
        }
        if (packet != NULL)
            gnutls_packet_deinit(packet);
        if (ret == 0) {
            self->peer_closed = 1;
            return 0;
        }
        if (ret == GNUTLS_E_REHANDSHAKE) {
            /* A TLS 1.2 peer asks to renegotiate: we never do. */
            gnutls_alert_send(self->session, GNUTLS_AL_WARNING,
                              GNUTLS_A_NO_RENEGOTIATION);
        } else if (gnutls_error_is_fatal((int)ret)) {
            return (int)ret;
        }
        /* GNUTLS_E_AGAIN also follows a post-handshake message (a TLS 1.3
         * session ticket or key update) while records are still buffered:
         * go on as long as the input keeps shrinking. */
        if (gnutls_record_check_pending(self->session) > 0)
            continue;
        if (self->in.len == 0 || self->in.len >= left)
            return 0;
        left = self->in.len;
    }
}

static PyObject *
Session_read(SessionObject *self, PyObject *unused)
{
    (void)unused;
    if (enter(self) < 0)
        return NULL;
    if (self->pending_error)
        return raise_pending(self);
    if (self->failed)
        return raise_failed(self);
    if (!self->handshake_done) {
        PyErr_SetString(PyExc_RuntimeError, "read() before the handshake");
        return NULL;
    }
    if (self->peer_closed)
        Py_RETURN_NONE;

    packet_list packets = {NULL, 0, 0, 0};
    int code;
    if (self->in.len >= RELEASE_GIL_THRESHOLD) {
        self->busy = 1;
        Py_BEGIN_ALLOW_THREADS
        code = decrypt_all(self, &packets);
        Py_END_ALLOW_THREADS
        self->busy = 0;
    } else {
        code = decrypt_all(self, &packets);
    }

    PyObject *result;
    if (packets.count == 1) {
        gnutls_datum_t d;
        gnutls_packet_get(packets.items[0], &d, NULL);
        result = PyBytes_FromStringAndSize((const char *)d.data, d.size);
    } else {
        result = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)packets.bytes);
        if (result != NULL) {
            char *p = PyBytes_AS_STRING(result);
            for (size_t i = 0; i < packets.count; i++) {
                gnutls_datum_t d;
                gnutls_packet_get(packets.items[i], &d, NULL);
                memcpy(p, d.data, d.size);
                p += d.size;
            }
        }
    }
    packet_list_free(&packets);
    if (result == NULL)
        return NULL;

    if (code != 0) {
        if (PyBytes_GET_SIZE(result) > 0) {
            /* Hand over what arrived intact first; fail on the next call. */
            self->pending_error = code;
            return result;
        }
        Py_DECREF(result);
        return fail_with(self, code, "TLS read failed");
    }
    if (PyBytes_GET_SIZE(result) == 0 && self->peer_closed) {
        Py_DECREF(result);
        Py_RETURN_NONE;
    }
    return result;
}

static PyObject *
Session_write(SessionObject *self, PyObject *arg)
{
    if (enter(self) < 0)
        return NULL;
    if (self->pending_error)
        return raise_pending(self);
    if (self->failed)
        return raise_failed(self);
    if (!self->handshake_done) {
        PyErr_SetString(PyExc_RuntimeError, "write() before the handshake");
        return NULL;
    }
    if (self->close_notify_sent) {
        PyErr_SetString(PyExc_RuntimeError,
                        "cannot write after close_notify was sent");
        return NULL;
    }
    Py_buffer view;
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0)
        return NULL;
    const char *data = view.buf;
    size_t len = (size_t)view.len, off = 0;
    ssize_t ret = 0;
    int release = len >= RELEASE_GIL_THRESHOLD;
    if (release) {
        self->busy = 1;
        Py_BEGIN_ALLOW_THREADS
        while (off < len) {
            ret = gnutls_record_send(self->session, data + off, len - off);
            if (ret < 0)
                break;
            off += (size_t)ret;
        }
        Py_END_ALLOW_THREADS
        self->busy = 0;
    } else {
        while (off < len) {
            ret = gnutls_record_send(self->session, data + off, len - off);
            if (ret < 0)
                break;
            off += (size_t)ret;
        }
    }
    PyBuffer_Release(&view);
    /* Output goes to memory, so GNUTLS_E_AGAIN cannot happen: any error is
     * fatal for the session. */
    if (ret < 0)
        return fail_with(self, (int)ret, "TLS write failed");
    return PyLong_FromSize_t(len);
}

static PyObject *
Session_bye(SessionObject *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"how", NULL};
    int how = GNUTLS_SHUT_WR;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|i:bye", kwlist, &how))
        return NULL;
    if (how != GNUTLS_SHUT_WR && how != GNUTLS_SHUT_RDWR) {
        PyErr_Format(PyExc_ValueError, "invalid shutdown mode %d", how);
        return NULL;
    }
    if (enter(self) < 0)
        return NULL;
    if (self->pending_error)
        return raise_pending(self);
    if (self->failed)
        return raise_failed(self);
    if (!self->handshake_done) {
        PyErr_SetString(PyExc_RuntimeError, "bye() before the handshake");
        return NULL;
    }
    if (!self->close_notify_sent) {
        int ret = gnutls_bye(self->session, GNUTLS_SHUT_WR);
        if (ret < 0)
            return fail_with(self, ret, "cannot send close_notify");
        self->close_notify_sent = 1;
    }
    if (how == GNUTLS_SHUT_WR || self->peer_closed)
        Py_RETURN_TRUE;
    /* SHUT_RDWR: discard data until the peer's close_notify. */
    packet_list packets = {NULL, 0, 0, 0};
    int code = decrypt_all(self, &packets);
    packet_list_free(&packets);
    if (code != 0)
        return fail_with(self, code, "TLS shutdown failed");
    return PyBool_FromLong(self->peer_closed);
}

static PyObject *
Session_take_output(SessionObject *self, PyObject *unused)
{
    (void)unused;
    if (enter(self) < 0)
        return NULL;
    PyObject *result = PyBytes_FromStringAndSize(
        (const char *)self->out.data + self->out.start,
        (Py_ssize_t)self->out.len);
    if (result != NULL)
        buffer_consume(&self->out, self->out.len);
    return result;
}

static PyObject *
Session_version(SessionObject *self, PyObject *unused)
{
    (void)unused;
    if (!self->handshake_done)
        Py_RETURN_NONE;
    const char *name =
        priority_version_name(gnutls_protocol_get_version(self->session));
    if (name == NULL)
        Py_RETURN_NONE;
    return PyUnicode_FromString(name);
}

static PyObject *
Session_cipher(SessionObject *self, PyObject *unused)
{
    (void)unused;
    if (!self->handshake_done)
        Py_RETURN_NONE;
    gnutls_session_t s = self->session;
    gnutls_cipher_algorithm_t cipher = gnutls_cipher_get(s);
    const char *name = NULL;
#if GNUTLS_VERSION_NUMBER >= 0x030704
    name = gnutls_ciphersuite_get(s);
#endif
    if (name == NULL)
        name = gnutls_cipher_suite_get_name(gnutls_kx_get(s), cipher,
                                            gnutls_mac_get(s));
    if (name == NULL)
        name = gnutls_cipher_get_name(cipher);
    const char *version = priority_version_name(gnutls_protocol_get_version(s));
    return Py_BuildValue("(ssi)", name != NULL ? name : "unknown",
                         version != NULL ? version : "unknown",
                         (int)(gnutls_cipher_get_key_size(cipher) * 8));
}

static PyObject *
Session_description(SessionObject *self, PyObject *unused)
{
    (void)unused;
    if (!self->handshake_done)
        Py_RETURN_NONE;
    char *desc = gnutls_session_get_desc(self->session);
    if (desc == NULL)
        Py_RETURN_NONE;
    PyObject *result = PyUnicode_FromString(desc);
    gnutls_free(desc);
    return result;
}

static PyObject *
Session_peer_certificate_chain(SessionObject *self, PyObject *unused)
{
    (void)unused;
    unsigned int count = 0;
    const gnutls_datum_t *certs =
        gnutls_certificate_get_peers(self->session, &count);
    PyObject *list = PyList_New(0);
    if (list == NULL)
        return NULL;
    for (unsigned int i = 0; certs != NULL && i < count; i++) {
        PyObject *der = PyBytes_FromStringAndSize((const char *)certs[i].data,
                                                  certs[i].size);
        if (der == NULL || PyList_Append(list, der) < 0) {
            Py_XDECREF(der);
            Py_DECREF(list);
            return NULL;
        }
        Py_DECREF(der);
    }
    return list;
}

static PyObject *
Session_peer_certificate(SessionObject *self, PyObject *unused)
{
    (void)unused;
    unsigned int count = 0;
    const gnutls_datum_t *certs =
        gnutls_certificate_get_peers(self->session, &count);
    if (certs == NULL || count == 0)
        Py_RETURN_NONE;
    return PyBytes_FromStringAndSize((const char *)certs[0].data, certs[0].size);
}

static PyObject *
Session_selected_alpn_protocol(SessionObject *self, PyObject *unused)
{
    (void)unused;
    gnutls_datum_t proto;
    if (!self->handshake_done
        || gnutls_alpn_get_selected_protocol(self->session, &proto) < 0)
        Py_RETURN_NONE;
    return PyUnicode_DecodeLatin1((const char *)proto.data, proto.size, NULL);
}

static PyObject *
Session_channel_binding(SessionObject *self, PyObject *arg)
{
    const char *kind = PyUnicode_Check(arg) ? PyUnicode_AsUTF8(arg) : NULL;
    if (kind == NULL) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_TypeError, "channel binding type must be "
                            "a str");
        return NULL;
    }
    gnutls_channel_binding_t type;
    if (strcmp(kind, "tls-unique") == 0)
        type = GNUTLS_CB_TLS_UNIQUE;
#if GNUTLS_VERSION_NUMBER >= 0x030702
    else if (strcmp(kind, "tls-exporter") == 0)
        type = GNUTLS_CB_TLS_EXPORTER;
    else if (strcmp(kind, "tls-server-end-point") == 0)
        type = GNUTLS_CB_TLS_SERVER_END_POINT;
#endif
    else {
        PyErr_Format(PyExc_ValueError, "%s channel binding type not "
                     "implemented", kind);
        return NULL;
    }
    gnutls_datum_t cb = {NULL, 0};
    /* Not defined for this session (tls-unique in TLS 1.3, say): None, as
     * the stdlib answers. */
    if (!self->handshake_done
        || gnutls_session_channel_binding(self->session, type, &cb) < 0)
        Py_RETURN_NONE;
    PyObject *result = PyBytes_FromStringAndSize((const char *)cb.data,
                                                 cb.size);
    gnutls_free(cb.data);
    return result;
}

static PyObject *
Session_session_data(SessionObject *self, PyObject *unused)
{
    (void)unused;
    if (!self->handshake_done || self->server_side)
        Py_RETURN_NONE;
    /* In TLS 1.3 the data exist once a ticket arrived; asking earlier would
     * make GnuTLS wait for input. */
    if (gnutls_protocol_get_version(self->session) == GNUTLS_TLS1_3
        && !(gnutls_session_get_flags(self->session)
             & GNUTLS_SFLAGS_SESSION_TICKET))
        Py_RETURN_NONE;
    gnutls_datum_t data = {NULL, 0};
    int ret = gnutls_session_get_data2(self->session, &data);
    if (ret < 0)
        return errors_raise(state_of(self), ret,
                            "cannot save the TLS session");
    PyObject *result = PyBytes_FromStringAndSize((const char *)data.data,
                                                 data.size);
    gnutls_free(data.data);
    return result;
}

static PyObject *
Session_server_name(SessionObject *self, PyObject *unused)
{
    (void)unused;
    char name[256];
    size_t size = sizeof(name);
    unsigned int type;
    if (gnutls_server_name_get(self->session, name, &size, &type, 0) < 0
        || type != GNUTLS_NAME_DNS)
        Py_RETURN_NONE;
    return PyUnicode_DecodeUTF8(name, (Py_ssize_t)strnlen(name, size),
                                "surrogateescape");
}

static PyObject *
get_bool(int value)
{
    return PyBool_FromLong(value);
}

static PyObject *
Session_get_handshake_done(SessionObject *self, void *c)
{
    (void)c;
    return get_bool(self->handshake_done);
}

static PyObject *
Session_get_peer_closed(SessionObject *self, void *c)
{
    (void)c;
    return get_bool(self->peer_closed);
}

static PyObject *
Session_get_close_notify_sent(SessionObject *self, void *c)
{
    (void)c;
    return get_bool(self->close_notify_sent);
}

static PyObject *
Session_get_server_side(SessionObject *self, void *c)
{
    (void)c;
    return get_bool(self->server_side);
}

static PyObject *
Session_get_server_hostname(SessionObject *self, void *c)
{
    (void)c;
    return Py_NewRef(self->server_hostname);
}

static PyObject *
Session_get_incoming_size(SessionObject *self, void *c)
{
    (void)c;
    return PyLong_FromSize_t(self->in.len);
}

static PyObject *
Session_get_pending_output(SessionObject *self, void *c)
{
    (void)c;
    return PyLong_FromSize_t(self->out.len);
}

static PyObject *
Session_get_credentials(SessionObject *self, void *c)
{
    (void)c;
    return Py_NewRef(self->credentials);
}

static PyObject *
Session_get_verify_mode(SessionObject *self, void *c)
{
    (void)c;
    return PyLong_FromLong(self->verify_mode);
}

static PyObject *
Session_get_check_hostname(SessionObject *self, void *c)
{
    (void)c;
    return get_bool(self->check_hostname);
}

static PyObject *
Session_get_session_reused(SessionObject *self, void *c)
{
    (void)c;
    return get_bool(self->handshake_done
                    && gnutls_session_is_resumed(self->session));
}

static PyObject *
Session_get_pending_error(SessionObject *self, void *c)
{
    (void)c;
    return get_bool(self->pending_error != 0);
}

static PyObject *
Session_get_verify_status(SessionObject *self, void *c)
{
    (void)c;
    return PyLong_FromUnsignedLong(self->verify_status);
}

static PyMethodDef Session_methods[] = {
    {"feed", (PyCFunction)Session_feed, METH_O,
     "feed(data)\n--\n\nAdd ciphertext received from the peer."},
    {"feed_eof", (PyCFunction)Session_feed_eof, METH_NOARGS,
     "feed_eof()\n--\n\nThe transport reached EOF: no more input will come."},
    {"handshake", (PyCFunction)Session_handshake, METH_NOARGS,
     "handshake()\n--\n\nAdvance the handshake: True when complete, False "
     "when more input is needed.  On failure the alert for the peer is "
     "already queued in the output."},
    {"read", (PyCFunction)Session_read, METH_NOARGS,
     "read()\n--\n\nAll plaintext decryptable now (b'' if more input is "
     "needed), or None once the peer has sent close_notify."},
    {"write", (PyCFunction)Session_write, METH_O,
     "write(data)\n--\n\nEncrypt all of DATA into records queued for output."},
    {"bye", (PyCFunction)(void (*)(void))Session_bye,
     METH_VARARGS | METH_KEYWORDS,
     "bye(how=SHUT_WR)\n--\n\nQueue close_notify.  With SHUT_RDWR, also "
     "wait for the peer's: returns False while more input is needed."},
    {"take_output", (PyCFunction)Session_take_output, METH_NOARGS,
     "take_output()\n--\n\nTake all ciphertext waiting to be sent."},
    {"version", (PyCFunction)Session_version, METH_NOARGS,
     "version()\n--\n\nThe negotiated protocol, e.g. 'TLSv1.3', or None."},
    {"cipher", (PyCFunction)Session_cipher, METH_NOARGS,
     "cipher()\n--\n\n(name, protocol, secret bits) or None."},
    {"description", (PyCFunction)Session_description, METH_NOARGS,
     "description()\n--\n\nGnuTLS's one-line description of the session."},
    {"peer_certificate", (PyCFunction)Session_peer_certificate, METH_NOARGS,
     "peer_certificate()\n--\n\nThe peer's certificate (DER) or None."},
    {"peer_certificate_chain", (PyCFunction)Session_peer_certificate_chain,
     METH_NOARGS,
     "peer_certificate_chain()\n--\n\nThe certificates the peer sent (DER)."},
    {"selected_alpn_protocol", (PyCFunction)Session_selected_alpn_protocol,
     METH_NOARGS,
     "selected_alpn_protocol()\n--\n\nThe protocol ALPN agreed on, or None."},
    {"channel_binding", (PyCFunction)Session_channel_binding, METH_O,
     "channel_binding(kind)\n--\n\n'tls-unique', 'tls-exporter' (RFC 9266) "
     "or 'tls-server-end-point' data, or None where not defined."},
    {"session_data", (PyCFunction)Session_session_data, METH_NOARGS,
     "session_data()\n--\n\nA client's saved session, to resume with "
     "Session(session_data=...); None until the server sent a ticket."},
    {"server_name", (PyCFunction)Session_server_name, METH_NOARGS,
     "server_name()\n--\n\nThe name a client asked for (SNI), or None."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef Session_getset[] = {
    {"handshake_done", (getter)Session_get_handshake_done, NULL, NULL, NULL},
    {"peer_closed", (getter)Session_get_peer_closed, NULL,
     "The peer sent close_notify.", NULL},
    {"close_notify_sent", (getter)Session_get_close_notify_sent, NULL, NULL,
     NULL},
    {"server_side", (getter)Session_get_server_side, NULL, NULL, NULL},
    {"server_hostname", (getter)Session_get_server_hostname, NULL, NULL, NULL},
    {"incoming_size", (getter)Session_get_incoming_size, NULL,
     "Ciphertext bytes buffered and not yet processed.", NULL},
    {"pending_output", (getter)Session_get_pending_output, NULL,
     "Ciphertext bytes waiting to be sent.", NULL},
    {"credentials", (getter)Session_get_credentials, NULL,
     "The Credentials the session was made with (and verifies the peer "
     "with).", NULL},
    {"verify_mode", (getter)Session_get_verify_mode, NULL, NULL, NULL},
    {"check_hostname", (getter)Session_get_check_hostname, NULL, NULL, NULL},
    {"session_reused", (getter)Session_get_session_reused, NULL,
     "The handshake resumed a saved session.", NULL},
    {"pending_error", (getter)Session_get_pending_error, NULL,
     "read() returned data that came before a fatal error: the next call "
     "raises it.", NULL},
    {"verify_status", (getter)Session_get_verify_status, NULL,
     "GnuTLS verification status bits of the peer (0: verified or not "
     "checked).", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot Session_slots[] = {
    {Py_tp_new, Session_new},
    {Py_tp_dealloc, Session_dealloc},
    {Py_tp_methods, Session_methods},
    {Py_tp_getset, Session_getset},
    {Py_tp_doc, "Session(credentials, priority, *, server_side=False, "
                "server_hostname=None, verify_mode=CERT_NONE, "
                "check_hostname=False)\n--\n\n"
                "A TLS session over in-memory buffers."},
    {0, NULL},
};

PyType_Spec session_spec = {
    .name = "aio_gnutls_transport._gnutls.Session",
    .basicsize = sizeof(SessionObject),
    .flags = Py_TPFLAGS_DEFAULT,
    .slots = Session_slots,
};
