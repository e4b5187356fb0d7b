/* Parsed GnuTLS priority strings.
 *
 * Copyright (C) 2026 The aio_gnutls_transport authors
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * A string is parsed once, when the object is made, so a mistake shows at
 * the call that introduced it, with the position GnuTLS stopped at.
 */
#include "priority.h"
#include "errors.h"

static PyObject *
Priority_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"string", NULL};
    PyObject *string;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "U:Priority", kwlist, &string))
        return NULL;
    Py_ssize_t size;
    const char *text = PyUnicode_AsUTF8AndSize(string, &size);
    if (text == NULL)
        return NULL;
    if ((size_t)size != strlen(text)) {
        PyErr_SetString(PyExc_ValueError,
                        "priority string contains a NUL character");
        return NULL;
    }
    module_state *state = module_state_from_type(type);

    gnutls_priority_t priority;
    const char *err_pos = NULL;
    int ret = gnutls_priority_init(&priority, text, &err_pos);
    if (ret < 0) {
        if (err_pos != NULL && err_pos >= text && err_pos <= text + size) {
            /* err_pos points into TEXT; report a character position. */
            PyObject *head = PyUnicode_DecodeUTF8(text, err_pos - text, NULL);
            Py_ssize_t pos = head != NULL ? PyUnicode_GET_LENGTH(head) : 0;
            Py_XDECREF(head);
            return errors_raise_fmt(
                state, ret,
                "invalid priority string '%s' at position %zd (at '%s')",
                text, pos, err_pos);
        }
        return errors_raise_fmt(state, ret, "invalid priority string '%s'",
                                text);
    }

    PriorityObject *self = (PriorityObject *)type->tp_alloc(type, 0);
    if (self == NULL) {
        gnutls_priority_deinit(priority);
        return NULL;
    }
    self->priority = priority;
    self->string = Py_NewRef(string);
    return (PyObject *)self;
}

static void
Priority_dealloc(PriorityObject *self)
{
    PyTypeObject *type = Py_TYPE(self);
    if (self->priority != NULL)
        gnutls_priority_deinit(self->priority);
    Py_XDECREF(self->string);
    type->tp_free(self);
    Py_DECREF(type);
}

static PyObject *
Priority_repr(PriorityObject *self)
{
    return PyUnicode_FromFormat("<Priority %R>", self->string);
}

static PyObject *
Priority_get_string(PriorityObject *self, void *closure)
{
    (void)closure;
    return Py_NewRef(self->string);
}

static PyGetSetDef Priority_getset[] = {
    {"string", (getter)Priority_get_string, NULL,
     "The priority string as given.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot Priority_slots[] = {
    {Py_tp_new, Priority_new},
    {Py_tp_dealloc, Priority_dealloc},
    {Py_tp_repr, Priority_repr},
    {Py_tp_getset, Priority_getset},
    {Py_tp_doc, "Priority(string)\n--\n\n"
                "A GnuTLS priority string, parsed and checked when created."},
    {0, NULL},
};

PyType_Spec priority_spec = {
    .name = "aio_gnutls_transport._gnutls.Priority",
    .basicsize = sizeof(PriorityObject),
    .flags = Py_TPFLAGS_DEFAULT,
    .slots = Priority_slots,
};
