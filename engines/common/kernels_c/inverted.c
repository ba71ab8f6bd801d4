/* The inverted index's euclid and cosine queries over its dense copy (dense_query) or
 * its postings (postings_query). */
#include "kernels.h"

/* The `count` best rows of InvertedIndex.euclid from every row's dot product with the
 * query: row j's score is -sqrt(max(0, (norm_j + query_norm) - 2 dot_j)), rows with a 0
 * norm left out, best by (score, number), largest first. (scores, numbers); None when a
 * score is NaN (the Python path then orders them as numpy does); NULL on an error. */
static PyObject *euclid_best(const double *dots, const double *norm, Py_ssize_t rows,
                             double query_norm, Py_ssize_t count) {
    Best best;
    if (best_init(&best, count < rows ? count : rows, 1) < 0) {
        return NULL;
    }
    for (Py_ssize_t j = 0; j < rows; j++) {
        if (norm[j] == 0.0) {
            continue;
        }
        double squared = (norm[j] + query_norm) - dots[j] * 2.0;
        if (squared != squared) {
            best_free(&best);
            Py_RETURN_NONE;
        }
        best_offer(&best, -sqrt(squared > 0.0 ? squared : 0.0), j);
    }
    PyObject *out = best_lists(&best, 0);
    best_free(&best);
    return out;
}

/* The `count` best rows of InvertedIndex.cosine from the dot products: rows with a 0 dot
 * product or a 0 norm left out; similarity dot / sqrt(norm) / sqrt(query_norm), or 1 when
 * norm, query_norm and dot are equal; best by (similarity, number), largest first; the
 * similarities answered clamped to [-1, 1]. None when one is NaN; NULL on an error. */
static PyObject *cosine_best(const double *dots, const double *norm, Py_ssize_t rows,
                             double query_norm, Py_ssize_t count) {
    Best best;
    if (best_init(&best, count < rows ? count : rows, 1) < 0) {
        return NULL;
    }
    double query_root = sqrt(query_norm);
    for (Py_ssize_t j = 0; j < rows; j++) {
        double dot = dots[j];
        if (dot == 0.0 || norm[j] == 0.0) {
            continue;
        }
        double score = dot / sqrt(norm[j]) / query_root;
        if (norm[j] == query_norm && norm[j] == dot) {
            score = 1.0;
        }
        if (score != score) {
            best_free(&best);
            Py_RETURN_NONE;
        }
        best_offer(&best, score, j);
    }
    for (Py_ssize_t k = 0; k < best.kept; k++) { /* min(max(-1.0, s), 1.0), once ranked */
        double clamped = best.scores[k] > -1.0 ? best.scores[k] : -1.0;
        best.scores[k] = 1.0 < clamped ? 1.0 : clamped;
    }
    PyObject *out = best_lists(&best, 0);
    best_free(&best);
    return out;
}

/* euclid_best or cosine_best, by `mode` (0 or 1). */
static PyObject *query_best(int mode, const double *dots, const double *norm, Py_ssize_t rows,
                            double query_norm, Py_ssize_t count) {
    return mode ? cosine_best(dots, norm, rows, query_norm, count)
                : euclid_best(dots, norm, rows, query_norm, count);
}

/* The index's row norms (float64, at least `rows` of them); 0 or -1 with an error. */
static int get_norms(PyObject *object, Py_ssize_t rows, Py_buffer *norms) {
    if (PyObject_GetBuffer(object, norms, PyBUF_FORMAT | PyBUF_C_CONTIGUOUS) < 0) {
        return -1;
    }
    if (strcmp(norms->format, "d") != 0 || norms->len / 8 < rows) {
        PyBuffer_Release(norms);
        norms->obj = NULL;
        PyErr_SetString(PyExc_ValueError, "euclid: float64 norms, one per row");
        return -1;
    }
    return 0;
}

/* dense_query(mode, matrix, at, values, norms, query_norm, count): euclid_best (mode 0)
 * or cosine_best (1) over the dense copy, row j's dot product summing
 * matrix[at[k], j] * values[k] from 0.0 in query order (matrix: float64, features x rows). */
PyObject *dense_query(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 7) {
        PyErr_SetString(PyExc_TypeError,
                        "dense_query(mode, matrix, at, values, norms, query_norm, count)");
        return NULL;
    }
    long mode = PyLong_AsLong(args[0]);
    if (mode == -1 && PyErr_Occurred()) {
        return NULL;
    }
    args++;
    double query_norm = PyFloat_AsDouble(args[4]);
    Py_ssize_t count = PyLong_AsSsize_t(args[5]);
    if (PyErr_Occurred()) {
        return NULL;
    }
    PyObject *at = PySequence_Fast(args[1], "at: a sequence");
    if (at == NULL) {
        return NULL;
    }
    PyObject *values = PySequence_Fast(args[2], "values: a sequence");
    if (values == NULL) {
        Py_DECREF(at);
        return NULL;
    }
    Py_buffer matrix = {0}, norms = {0};
    double *dots = NULL;
    PyObject *out = NULL;
    Py_ssize_t features = PySequence_Fast_GET_SIZE(at);
    if (PySequence_Fast_GET_SIZE(values) != features) {
        PyErr_SetString(PyExc_ValueError, "dense_query: at and values differ in length");
        goto done;
    }
    if (PyObject_GetBuffer(args[0], &matrix, PyBUF_FORMAT | PyBUF_ND | PyBUF_C_CONTIGUOUS) < 0) {
        goto done;
    }
    if (matrix.ndim != 2 || strcmp(matrix.format, "d") != 0) {
        PyErr_SetString(PyExc_TypeError, "dense_query: a float64 matrix");
        goto done;
    }
    Py_ssize_t height = matrix.shape[0], rows = matrix.shape[1];
    if (get_norms(args[3], rows, &norms) < 0) {
        goto done;
    }
    dots = PyMem_New(double, rows + 1);
    if (dots == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    const double *m = (const double *)matrix.buf;
    for (Py_ssize_t j = 0; j < rows; j++) {
        dots[j] = 0.0;
    }
    for (Py_ssize_t k = 0; k < features; k++) {
        Py_ssize_t row = PyLong_AsSsize_t(PySequence_Fast_GET_ITEM(at, k));
        double value = PyFloat_AsDouble(PySequence_Fast_GET_ITEM(values, k));
        if (PyErr_Occurred()) {
            goto done;
        }
        if (row < 0 || row >= height) {
            PyErr_SetString(PyExc_IndexError, "dense_query: a feature outside the matrix");
            goto done;
        }
        const double *line = m + row * rows;
        for (Py_ssize_t j = 0; j < rows; j++) {
            double product = line[j] * value;
            dots[j] = dots[j] + product;
        }
    }
    out = query_best(mode != 0, dots, (const double *)norms.buf, rows, query_norm, count);
done:
    if (matrix.obj != NULL) {
        PyBuffer_Release(&matrix);
    }
    if (norms.obj != NULL) {
        PyBuffer_Release(&norms);
    }
    PyMem_Free(dots);
    Py_DECREF(at);
    Py_DECREF(values);
    return out;
}

/* postings_query(mode, postings, values, norms, rows, query_norm, count): euclid_best
 * (mode 0) or cosine_best (1) over the postings of the query's features ((numbers or None,
 * values, size) each: None when row i sits at position i), row r's dot product summing
 * posting value x query value from 0.0 feature after feature (a row appears once in a
 * posting). */
PyObject *postings_query(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 7) {
        PyErr_SetString(PyExc_TypeError,
                        "postings_query(mode, postings, values, norms, rows, query_norm, count)");
        return NULL;
    }
    long mode = PyLong_AsLong(args[0]);
    if (mode == -1 && PyErr_Occurred()) {
        return NULL;
    }
    args++;
    Py_ssize_t rows = PyLong_AsSsize_t(args[3]);
    double query_norm = PyFloat_AsDouble(args[4]);
    Py_ssize_t count = PyLong_AsSsize_t(args[5]);
    if (PyErr_Occurred()) {
        return NULL;
    }
    PyObject *postings = PySequence_Fast(args[0], "postings: a sequence");
    if (postings == NULL) {
        return NULL;
    }
    PyObject *values = PySequence_Fast(args[1], "values: a sequence");
    if (values == NULL) {
        Py_DECREF(postings);
        return NULL;
    }
    Py_buffer norms = {0};
    double *dots = NULL;
    PyObject *out = NULL;
    Py_ssize_t features = PySequence_Fast_GET_SIZE(postings);
    if (PySequence_Fast_GET_SIZE(values) != features || rows < 0) {
        PyErr_SetString(PyExc_ValueError, "postings_query: one value per posting");
        goto done;
    }
    if (get_norms(args[2], rows, &norms) < 0) {
        goto done;
    }
    dots = PyMem_New(double, rows + 1);
    if (dots == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t j = 0; j < rows; j++) {
        dots[j] = 0.0;
    }
    for (Py_ssize_t k = 0; k < features; k++) {
        PyObject *numbers_object, *values_object;
        Py_ssize_t size;
        if (!PyArg_ParseTuple(PySequence_Fast_GET_ITEM(postings, k), "OOn", &numbers_object,
                              &values_object, &size)) {
            goto done;
        }
        double value = PyFloat_AsDouble(PySequence_Fast_GET_ITEM(values, k));
        if (value == -1.0 && PyErr_Occurred()) {
            goto done;
        }
        Py_buffer stored = {0}, numbers = {0};
        if (PyObject_GetBuffer(values_object, &stored, PyBUF_FORMAT | PyBUF_C_CONTIGUOUS) < 0) {
            goto done;
        }
        int fits = strcmp(stored.format, "d") == 0 && size >= 0 && size * 8 <= stored.len;
        if (fits && numbers_object != Py_None) {
            if (PyObject_GetBuffer(numbers_object, &numbers, PyBUF_C_CONTIGUOUS) < 0) {
                PyBuffer_Release(&stored);
                goto done;
            }
            fits = numbers.itemsize == 8 && size * 8 <= numbers.len;
        } else if (fits) {
            fits = size <= rows;
        }
        const double *v = (const double *)stored.buf;
        const int64_t *n = (const int64_t *)numbers.buf;
        for (Py_ssize_t i = 0; fits && i < size; i++) {
            Py_ssize_t row = n == NULL ? i : (Py_ssize_t)n[i];
            if (row < 0 || row >= rows) {
                fits = 0;
                break;
            }
            double product = v[i] * value;
            dots[row] = dots[row] + product;
        }
        PyBuffer_Release(&stored);
        if (numbers.obj != NULL) {
            PyBuffer_Release(&numbers);
        }
        if (!fits) {
            PyErr_SetString(PyExc_ValueError, "postings_query: a posting outside the rows");
            goto done;
        }
    }
    out = query_best(mode != 0, dots, (const double *)norms.buf, rows, query_norm, count);
done:
    if (norms.obj != NULL) {
        PyBuffer_Release(&norms);
    }
    PyMem_Free(dots);
    Py_DECREF(postings);
    Py_DECREF(values);
    return out;
}
