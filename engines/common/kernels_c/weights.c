/* The converter's global weights (fv_converter.WeightManager.weigh): weigh_idf; and
 * fv_converter.sort_and_merge. */
#include "kernels.h"

/* weigh_idf(features, master, diff, count) -> list | None: each (name, value) of features
 * weighed by the global weight its name ends with, after its last slash: "idf" gives
 * log((count + 1) / (frequency + 1)) x value, "idf1" that log plus 1, times value
 * (frequency: master's plus diff's document frequency of the name); any other kind, or no
 * slash, leaves the value. Features weighing 0 are left out, as the Python does it. None
 * for "bm25" or "weight" (the Python path). */
PyObject *weigh_idf(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 4) {
        PyErr_SetString(PyExc_TypeError, "weigh_idf(features, master, diff, count)");
        return NULL;
    }
    PyObject *features = args[0], *master = args[1], *diff = args[2];
    double count = PyFloat_AsDouble(args[3]);
    if (count == -1.0 && PyErr_Occurred()) {
        return NULL;
    }
    if (!PyList_CheckExact(features) || !PyDict_Check(master) || !PyDict_Check(diff)) {
        Py_RETURN_NONE;
    }
    Py_ssize_t n = PyList_GET_SIZE(features);
    PyObject *out = PyList_New(0);
    if (out == NULL) {
        return NULL;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *feature = PyList_GET_ITEM(features, i);
        if (!PyTuple_CheckExact(feature) || PyTuple_GET_SIZE(feature) != 2) {
            goto fallback;
        }
        PyObject *name = PyTuple_GET_ITEM(feature, 0), *number = PyTuple_GET_ITEM(feature, 1);
        if (!PyUnicode_CheckExact(name) || !PyFloat_CheckExact(number)) {
            goto fallback;
        }
        double value = PyFloat_AS_DOUBLE(number);
        Py_ssize_t length = PyUnicode_GET_LENGTH(name);
        Py_ssize_t slash = PyUnicode_FindChar(name, '/', 0, length, -1);
        if (slash == -2) {
            goto error;
        }
        /* the kind after the last slash (none: the value stays) */
        Py_ssize_t kind_length = length - slash - 1;
        int idf = 0, idf1 = 0;
        if (slash >= 0 && kind_length == 3 &&
            PyUnicode_Tailmatch(name, s_idf, slash + 1, length, 1) == 1) {
            idf = 1;
        } else if (slash >= 0 && kind_length == 4 &&
                   PyUnicode_Tailmatch(name, s_idf1, slash + 1, length, 1) == 1) {
            idf1 = 1;
        } else if (slash >= 0 &&
                   ((kind_length == 4 &&
                     PyUnicode_Tailmatch(name, s_bm25, slash + 1, length, 1) == 1) ||
                    (kind_length == 6 &&
                     PyUnicode_Tailmatch(name, s_weight, slash + 1, length, 1) == 1))) {
            goto fallback;
        }
        if (idf || idf1) {
            double frequency = 0.0, part;
            PyObject *found = PyDict_GetItemWithError(master, name);
            if (found == NULL && PyErr_Occurred()) {
                goto error;
            }
            double first = 0.0;
            if (found != NULL) {
                first = PyFloat_AsDouble(found);
                if (first == -1.0 && PyErr_Occurred()) {
                    goto error;
                }
            }
            found = PyDict_GetItemWithError(diff, name);
            if (found == NULL && PyErr_Occurred()) {
                goto error;
            }
            part = 0.0;
            if (found != NULL) {
                part = PyFloat_AsDouble(found);
                if (part == -1.0 && PyErr_Occurred()) {
                    goto error;
                }
            }
            frequency = first + part;
            value = (log((count + 1) / (frequency + 1)) + (idf1 ? 1.0 : 0.0)) * value;
        }
        if (value != 0.0) {
            PyObject *weighed;
            if (!idf && !idf1) {
                weighed = Py_NewRef(feature);
            } else {
                PyObject *scaled = PyFloat_FromDouble(value);
                if (scaled == NULL) {
                    goto error;
                }
                weighed = PyTuple_Pack(2, name, scaled);
                Py_DECREF(scaled);
                if (weighed == NULL) {
                    goto error;
                }
            }
            int appended = PyList_Append(out, weighed);
            Py_DECREF(weighed);
            if (appended < 0) {
                goto error;
            }
        }
    }
    return out;
fallback:
    Py_DECREF(out);
    Py_RETURN_NONE;
error:
    Py_DECREF(out);
    return NULL;
}

/* sort_and_merge(features) -> list | None: fv_converter.sort_and_merge, the same bits: the
 * (name, value) pairs sorted by name, a name's values summed from 0.0 in the order they
 * come (a name that comes once keeps its pair, unless its value is -0.0, which 0.0 + value
 * makes 0.0). None for an item that is not a (str, float) tuple (the Python path). */
PyObject *sort_and_merge(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 1) {
        PyErr_SetString(PyExc_TypeError, "sort_and_merge(features)");
        return NULL;
    }
    PyObject *features = args[0];
    if (!PyList_CheckExact(features)) {
        Py_RETURN_NONE;
    }
    Py_ssize_t n = PyList_GET_SIZE(features);
    PyObject **names = PyMem_New(PyObject *, 2 * n + 1);
    Py_ssize_t *order = PyMem_New(Py_ssize_t, 2 * n + 1);
    PyObject *out = NULL;
    if (names == NULL || order == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *feature = PyList_GET_ITEM(features, i);
        if (!PyTuple_CheckExact(feature) || PyTuple_GET_SIZE(feature) != 2 ||
            !PyUnicode_CheckExact(PyTuple_GET_ITEM(feature, 0)) ||
            !PyFloat_CheckExact(PyTuple_GET_ITEM(feature, 1))) {
            out = Py_NewRef(Py_None);
            goto done;
        }
        names[i] = PyTuple_GET_ITEM(feature, 0); /* borrowed: the list is not changed */
        order[i] = i;
    }
    sort_by_name(names, order, n, names + n, order + n);
    out = PyList_New(0);
    if (out == NULL) {
        goto done;
    }
    for (Py_ssize_t i = 0; i < n;) {
        PyObject *first = PyList_GET_ITEM(features, order[i]);
        double total = 0.0 + PyFloat_AS_DOUBLE(PyTuple_GET_ITEM(first, 1));
        Py_ssize_t j = i + 1;
        while (j < n && compare_names(names[j], names[i]) == 0) {
            total += PyFloat_AS_DOUBLE(PyTuple_GET_ITEM(PyList_GET_ITEM(features, order[j]), 1));
            j++;
        }
        PyObject *pair;
        if (j == i + 1 && !(total == 0.0 && signbit(PyFloat_AS_DOUBLE(PyTuple_GET_ITEM(first, 1))))) {
            pair = Py_NewRef(first); /* the same name and value */
        } else {
            PyObject *sum = PyFloat_FromDouble(total);
            pair = sum == NULL ? NULL : PyTuple_Pack(2, names[i], sum);
            Py_XDECREF(sum);
        }
        i = j;
        if (pair == NULL || PyList_Append(out, pair) < 0) {
            Py_XDECREF(pair);
            Py_CLEAR(out);
            goto done;
        }
        Py_DECREF(pair);
    }
done:
    PyMem_Free(names);
    PyMem_Free(order);
    return out;
}
