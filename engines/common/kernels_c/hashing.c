/* lsh, minhash and euclid_lsh: the random projection and its sign bits (project), and
 * the nearest rows by Hamming distance (nearest_by_hamming) or by euclid_lsh's estimated
 * distance (nearest_by_euclid_lsh). */
#include "kernels.h"

/* project(matrix, values, projection, words): hashing.random_projection's 32-bit sums,
 * Σ float32(value_i) x matrix[i] feature after feature (a running sum from the first
 * product, as numpy's cumsum has it), into `projection` (a float32 array of the matrix's
 * width) and/or, as pack_bits(projection > 0) gives them, into `words` (uint64 words: bit
 * j of word w is column 64 w + j); either may be None. `matrix` is a C-contiguous float32
 * (len(values) x width) array. */
PyObject *project(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 4) {
        PyErr_SetString(PyExc_TypeError, "project(matrix, values, projection, words)");
        return NULL;
    }
    PyObject *values = PySequence_Fast(args[1], "values: a sequence");
    if (values == NULL) {
        return NULL;
    }
    Py_buffer matrix = {0}, projection = {0}, words = {0};
    float *sums = NULL;
    PyObject *out = NULL;
    Py_ssize_t rows = PySequence_Fast_GET_SIZE(values);
    if (PyObject_GetBuffer(args[0], &matrix, PyBUF_FORMAT | PyBUF_C_CONTIGUOUS) < 0) {
        goto done;
    }
    if (matrix.format == NULL || strcmp(matrix.format, "f") != 0 || rows == 0 ||
        matrix.len % (rows * (Py_ssize_t)sizeof(float)) != 0) {
        PyErr_SetString(PyExc_TypeError, "project: a float32 matrix of len(values) rows");
        goto done;
    }
    Py_ssize_t width = matrix.len / (rows * (Py_ssize_t)sizeof(float));
    if (args[2] != Py_None) {
        if (PyObject_GetBuffer(args[2], &projection,
                               PyBUF_WRITABLE | PyBUF_FORMAT | PyBUF_C_CONTIGUOUS) < 0) {
            goto done;
        }
        if (projection.format == NULL || strcmp(projection.format, "f") != 0 ||
            projection.len != width * (Py_ssize_t)sizeof(float)) {
            PyErr_SetString(PyExc_TypeError, "project: projection is float32 of the width");
            goto done;
        }
    }
    Py_ssize_t word_count = (width + 63) / 64;
    if (args[3] != Py_None) {
        if (PyObject_GetBuffer(args[3], &words, PyBUF_WRITABLE | PyBUF_C_CONTIGUOUS) < 0) {
            goto done;
        }
        if (words.itemsize != 8 || words.len != word_count * 8) {
            PyErr_SetString(PyExc_TypeError, "project: words are 64-bit, one per 64 columns");
            goto done;
        }
    }
    sums = projection.obj != NULL ? (float *)projection.buf : PyMem_New(float, width + 1);
    if (sums == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    const float *m = (const float *)matrix.buf;
    for (Py_ssize_t i = 0; i < rows; i++) {
        double value = PyFloat_AsDouble(PySequence_Fast_GET_ITEM(values, i));
        if (value == -1.0 && PyErr_Occurred()) {
            goto done;
        }
        float v = (float)value;
        const float *row = m + i * width;
        if (i == 0) {
            for (Py_ssize_t j = 0; j < width; j++) {
                sums[j] = row[j] * v;
            }
        } else {
            for (Py_ssize_t j = 0; j < width; j++) {
                float product = row[j] * v;
                sums[j] = sums[j] + product;
            }
        }
    }
    if (words.obj != NULL) {
        uint64_t *w = (uint64_t *)words.buf;
        for (Py_ssize_t k = 0; k < word_count; k++) {
            w[k] = 0;
        }
        for (Py_ssize_t j = 0; j < width; j++) {
            if (sums[j] > 0.0f) {
                w[j / 64] |= (uint64_t)1 << (j % 64);
            }
        }
    }
    out = Py_NewRef(Py_None);
done:
    if (sums != NULL && projection.obj == NULL) {
        PyMem_Free(sums);
    }
    if (matrix.obj != NULL) {
        PyBuffer_Release(&matrix);
    }
    if (projection.obj != NULL) {
        PyBuffer_Release(&projection);
    }
    if (words.obj != NULL) {
        PyBuffer_Release(&words);
    }
    Py_DECREF(values);
    return out;
}


/* -- the nearest bit vectors (lsh, minhash) -------------------------------------------- */

/* nearest_by_hamming(matrix, size, words, count) -> (positions, distances): the `count`
 * rows of the first `size` of `matrix` (uint64 words, C-contiguous, len(words) per row)
 * nearest `words` by Hamming distance, ties by position (nearest_neighbor.smallest on
 * table.hamming), found by counting: O(size + bits). */
PyObject *nearest_by_hamming(PyObject *module, PyObject *const *args,
                                    Py_ssize_t nargs) {
    if (nargs != 4) {
        PyErr_SetString(PyExc_TypeError, "nearest_by_hamming(matrix, size, words, count)");
        return NULL;
    }
    Py_ssize_t size = PyLong_AsSsize_t(args[1]);
    Py_ssize_t count = PyLong_AsSsize_t(args[3]);
    if (PyErr_Occurred()) {
        return NULL;
    }
    Py_buffer matrix = {0}, query = {0};
    Py_ssize_t *distance = NULL, *starts = NULL, *picked = NULL;
    PyObject *out = NULL;
    if (PyObject_GetBuffer(args[0], &matrix, PyBUF_C_CONTIGUOUS) < 0) {
        goto done;
    }
    if (PyObject_GetBuffer(args[2], &query, PyBUF_C_CONTIGUOUS) < 0) {
        goto done;
    }
    Py_ssize_t width = query.len / 8;
    if (matrix.itemsize != 8 || query.itemsize != 8 || width == 0 || size < 0 ||
        size * width * 8 > matrix.len) {
        PyErr_SetString(PyExc_ValueError, "nearest_by_hamming: 64-bit words, size rows");
        goto done;
    }
    if (count > size) {
        count = size;
    }
    if (count <= 0) {
        out = Py_BuildValue("([][])");
        goto done;
    }
    Py_ssize_t bits = width * 64;
    distance = PyMem_New(Py_ssize_t, size);
    starts = PyMem_New(Py_ssize_t, bits + 2);
    picked = PyMem_New(Py_ssize_t, count);
    if (distance == NULL || starts == NULL || picked == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    const uint64_t *rows = (const uint64_t *)matrix.buf;
    const uint64_t *q = (const uint64_t *)query.buf;
    memset(starts, 0, (bits + 2) * sizeof(Py_ssize_t));
    for (Py_ssize_t i = 0; i < size; i++) {
        Py_ssize_t d = 0;
        const uint64_t *row = rows + i * width;
        for (Py_ssize_t w = 0; w < width; w++) {
            d += __builtin_popcountll(row[w] ^ q[w]);
        }
        distance[i] = d;
        starts[d + 1]++;
    }
    /* The distance the count-th nearest has (cut), and how many at it are taken. */
    Py_ssize_t cut = 0, below = 0;
    while (below + starts[cut + 1] < count) {
        below += starts[cut + 1];
        cut++;
    }
    for (Py_ssize_t d = 1; d <= cut; d++) { /* starts[d]: first slot of distance d */
        starts[d] += starts[d - 1];
    }
    starts[0] = 0;
    Py_ssize_t at_cut = count - below;
    for (Py_ssize_t i = 0; i < size; i++) {
        Py_ssize_t d = distance[i];
        if (d < cut) {
            picked[starts[d]++] = i;
        } else if (d == cut && at_cut > 0) {
            picked[starts[d]++] = i;
            at_cut--;
        }
    }
    PyObject *positions = PyList_New(count), *distances = PyList_New(count);
    if (positions == NULL || distances == NULL) {
        Py_XDECREF(positions);
        Py_XDECREF(distances);
        goto done;
    }
    for (Py_ssize_t k = 0; k < count; k++) {
        PyList_SET_ITEM(positions, k, PyLong_FromSsize_t(picked[k]));
        PyList_SET_ITEM(distances, k, PyLong_FromSsize_t(distance[picked[k]]));
    }
    out = PyTuple_Pack(2, positions, distances);
    Py_DECREF(positions);
    Py_DECREF(distances);
done:
    if (matrix.obj != NULL) {
        PyBuffer_Release(&matrix);
    }
    if (query.obj != NULL) {
        PyBuffer_Release(&query);
    }
    PyMem_Free(distance);
    PyMem_Free(starts);
    PyMem_Free(picked);
    return out;
}


/* nearest_by_euclid_lsh(matrix, size, words, norms, norm, cosines, count)
 * -> (positions, distances) | None: EuclidLsh.distances and smallest in one pass. Row j at
 * Hamming distance h from `words` is |norm - norms[j]| when h is 0, else
 * sqrt(norm^2 + norms[j]^2 - 2 norm norms[j] cosines[h]) (numpy's order of operations);
 * the `count` nearest, ties by position. None when a distance is NaN (the Python path). */
PyObject *nearest_by_euclid_lsh(PyObject *module, PyObject *const *args,
                                       Py_ssize_t nargs) {
    if (nargs != 7) {
        PyErr_SetString(PyExc_TypeError,
                        "nearest_by_euclid_lsh(matrix, size, words, norms, norm, cosines, count)");
        return NULL;
    }
    Py_ssize_t size = PyLong_AsSsize_t(args[1]);
    double norm = PyFloat_AsDouble(args[4]);
    Py_ssize_t count = PyLong_AsSsize_t(args[6]);
    if (PyErr_Occurred()) {
        return NULL;
    }
    Py_buffer matrix = {0}, query = {0}, norms = {0}, cosines = {0};
    PyObject *out = NULL;
    if (PyObject_GetBuffer(args[0], &matrix, PyBUF_C_CONTIGUOUS) < 0 ||
        PyObject_GetBuffer(args[2], &query, PyBUF_C_CONTIGUOUS) < 0 ||
        PyObject_GetBuffer(args[3], &norms, PyBUF_FORMAT | PyBUF_C_CONTIGUOUS) < 0 ||
        PyObject_GetBuffer(args[5], &cosines, PyBUF_FORMAT | PyBUF_C_CONTIGUOUS) < 0) {
        goto done;
    }
    Py_ssize_t width = query.len / 8;
    if (matrix.itemsize != 8 || query.itemsize != 8 || width == 0 || size < 0 ||
        size * width * 8 > matrix.len || strcmp(norms.format, "d") != 0 ||
        norms.len / 8 < size || strcmp(cosines.format, "d") != 0) {
        PyErr_SetString(PyExc_ValueError, "nearest_by_euclid_lsh: arrays that do not fit");
        goto done;
    }
    Best best;
    if (best_init(&best, count < size ? count : size, 0) < 0) {
        goto done;
    }
    const uint64_t *rows = (const uint64_t *)matrix.buf;
    const uint64_t *q = (const uint64_t *)query.buf;
    const double *stored = (const double *)norms.buf;
    const double *cosine = (const double *)cosines.buf;
    Py_ssize_t cosine_count = cosines.len / 8;
    int nan = 0;
    for (Py_ssize_t j = 0; j < size; j++) {
        Py_ssize_t h = 0;
        const uint64_t *row = rows + j * width;
        for (Py_ssize_t w = 0; w < width; w++) {
            h += __builtin_popcountll(row[w] ^ q[w]);
        }
        if (h >= cosine_count) {
            PyErr_SetString(PyExc_ValueError, "nearest_by_euclid_lsh: too few cosines");
            break;
        }
        double other = stored[j];
        double score = h == 0 ? fabs(norm - other)
                              : sqrt(norm * norm + other * other - 2 * norm * other * cosine[h]);
        if (score != score) {
            nan = 1;
            break;
        }
        best_offer(&best, score, j);
    }
    if (nan) {
        out = Py_NewRef(Py_None);
    } else if (!PyErr_Occurred()) {
        out = best_lists(&best, 1);
    }
    best_free(&best);
done:
    if (matrix.obj != NULL) {
        PyBuffer_Release(&matrix);
    }
    if (query.obj != NULL) {
        PyBuffer_Release(&query);
    }
    if (norms.obj != NULL) {
        PyBuffer_Release(&norms);
    }
    if (cosines.obj != NULL) {
        PyBuffer_Release(&cosines);
    }
    return out;
}
