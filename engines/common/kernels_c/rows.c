/* Rows copied between the two copies of a model held the snapshot way: copy_rows. */
#include "kernels.h"

/* copy_rows(pairs, ids): for each (destination, source, stride) of pairs (arrays of one
 * item type), rows ids (each stride items long) of source copied into destination. */
PyObject *copy_rows(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "copy_rows(pairs, ids)");
        return NULL;
    }
    PyObject *pairs = PySequence_Fast(args[0], "pairs: a sequence");
    if (pairs == NULL) {
        return NULL;
    }
    PyObject *id_items = PySequence_Fast(args[1], "ids: a sequence");
    if (id_items == NULL) {
        Py_DECREF(pairs);
        return NULL;
    }
    Py_ssize_t id_count = PySequence_Fast_GET_SIZE(id_items);
    Py_ssize_t *ids = PyMem_New(Py_ssize_t, id_count + 1);
    PyObject *out = NULL;
    if (ids == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t k = 0; k < id_count; k++) {
        ids[k] = PyLong_AsSsize_t(PySequence_Fast_GET_ITEM(id_items, k));
        if (ids[k] == -1 && PyErr_Occurred()) {
            goto done;
        }
    }
    for (Py_ssize_t p = 0; p < PySequence_Fast_GET_SIZE(pairs); p++) {
        PyObject *pair = PySequence_Fast_GET_ITEM(pairs, p);
        PyObject *destination, *source;
        Py_ssize_t stride;
        if (!PyArg_ParseTuple(pair, "OOn", &destination, &source, &stride)) {
            goto done;
        }
        Py_buffer to, from;
        if (PyObject_GetBuffer(destination, &to,
                               PyBUF_WRITABLE | PyBUF_FORMAT | PyBUF_C_CONTIGUOUS) < 0) {
            goto done;
        }
        if (PyObject_GetBuffer(source, &from, PyBUF_FORMAT | PyBUF_C_CONTIGUOUS) < 0) {
            PyBuffer_Release(&to);
            goto done;
        }
        int fits = to.itemsize == from.itemsize && to.format != NULL && from.format != NULL &&
                   strcmp(to.format, from.format) == 0 && stride > 0;
        if (!fits) {
            PyErr_SetString(PyExc_TypeError, "copy_rows: arrays of one item type, stride > 0");
        }
        Py_ssize_t row_bytes = stride * to.itemsize;
        for (Py_ssize_t k = 0; fits && k < id_count; k++) {
            Py_ssize_t start = ids[k] * row_bytes;
            if (ids[k] < 0 || start + row_bytes > to.len || start + row_bytes > from.len) {
                PyErr_SetString(PyExc_IndexError, "copy_rows: a row outside the arrays");
                fits = 0;
                break;
            }
            memcpy((char *)to.buf + start, (const char *)from.buf + start, row_bytes);
        }
        PyBuffer_Release(&to);
        PyBuffer_Release(&from);
        if (!fits) {
            goto done;
        }
    }
    out = Py_NewRef(Py_None);
done:
    PyMem_Free(ids);
    Py_DECREF(pairs);
    Py_DECREF(id_items);
    return out;
}
