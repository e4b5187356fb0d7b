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
} SessionObject;

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

/* ---- construction ---- */

static PyObject *
Session_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"credentials", "priority", "server_side",
                             "server_hostname", "verify_mode", "check_hostname",
                             NULL};
    module_state *state = module_state_from_type(type);
    PyObject *credentials, *priority, *server_hostname = Py_None;
    int server_side = 0, verify_mode = VERIFY_CERT_NONE, check_hostname = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O!O!|$pOip:Session", kwlist,
                                     state->CredentialsType, &credentials,
                                     state->PriorityType, &priority,
                                     &server_side, &server_hostname,
                                     &verify_mode, &check_hostname))
        return NULL;
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
    if (self->verify_failed && self->verify_status != GNUTLS_CERT_INVALID)
        return errors_raise_verification(
            state, self->verify_status,
            self->check_hostname ? self->hostname : NULL,
            peer_is_self_signed(self));
    if (self->verify_failed
        || (code == GNUTLS_E_NO_CERTIFICATE_FOUND && self->server_side))
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

static const char *
version_name(gnutls_protocol_t v)
{
    switch (v) {
    case GNUTLS_TLS1_0: return "TLSv1";
    case GNUTLS_TLS1_1: return "TLSv1.1";
    case GNUTLS_TLS1_2: return "TLSv1.2";
    case GNUTLS_TLS1_3: return "TLSv1.3";
    default: return gnutls_protocol_get_name(v);
    }
}

static PyObject *
Session_version(SessionObject *self, PyObject *unused)
{
    (void)unused;
    if (!self->handshake_done)
        Py_RETURN_NONE;
    const char *name = version_name(gnutls_protocol_get_version(self->session));
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
    const char *version = version_name(gnutls_protocol_get_version(s));
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
