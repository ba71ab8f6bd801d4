/* One training step of each linear method (engines/common/linear.py): train_linear. */
#include "kernels.h"

/* The methods of engines/common/linear.py, in its order of operations (the same bits). */
enum { PERCEPTRON, PA, PA1, PA2, CW, AROW, NHERD, METHOD_COUNT };

typedef struct {
    double *W, *V, *WM, *WD, *VM, *VD;
    Py_ssize_t size;
    Py_buffer views[6];
    int held;
} Tables;

static void tables_release(Tables *t) {
    for (int i = 0; i < t->held; i++) {
        PyBuffer_Release(&t->views[i]);
    }
    t->held = 0;
}

/* The six tables of a WeightArrays, writable; 0, or -1 with an error set. */
static int tables_get(PyObject *arrays, Tables *t) {
    PyObject *names[6] = {s_W, s_V, s_WM, s_WD, s_VM, s_VD};
    double **slots[6] = {&t->W, &t->V, &t->WM, &t->WD, &t->VM, &t->VD};
    t->held = 0;
    for (int i = 0; i < 6; i++) {
        PyObject *table = PyObject_GetAttr(arrays, names[i]);
        if (table == NULL) {
            tables_release(t);
            return -1;
        }
        int got = PyObject_GetBuffer(table, &t->views[i],
                                     PyBUF_WRITABLE | PyBUF_FORMAT | PyBUF_C_CONTIGUOUS);
        Py_DECREF(table);
        if (got < 0) {
            tables_release(t);
            return -1;
        }
        t->held++;
        Py_buffer *view = &t->views[i];
        Py_ssize_t size = view->len / (Py_ssize_t)sizeof(double);
        if (view->format == NULL || strcmp(view->format, "d") != 0 ||
            (i > 0 && size != t->size)) {
            tables_release(t);
            PyErr_SetString(PyExc_TypeError, "weight tables: arrays of doubles of one size");
            return -1;
        }
        t->size = size;
        *slots[i] = (double *)view->buf;
    }
    return 0;
}

typedef struct {
    Py_ssize_t *bases;
    const double *values;
    Py_ssize_t count;
} Vector;

/* Positions base + slot must lie in the tables (IndexError, as the Python has it). */
static int in_tables(const Tables *t, const Vector *x, Py_ssize_t slot) {
    for (Py_ssize_t k = 0; k < x->count; k++) {
        Py_ssize_t i = x->bases[k] + slot;
        if (i < 0 || i >= t->size) {
            PyErr_SetString(PyExc_IndexError, "array index out of range");
            return -1;
        }
    }
    return 0;
}

static double dot(const double *weights, const Vector *x, Py_ssize_t slot) {
    double total = 0.0;
    for (Py_ssize_t k = 0; k < x->count; k++) {
        total += weights[x->bases[k] + slot] * x->values[k];
    }
    return total;
}

/* largest_incorrect(): the best other known label (first on ties) or -1, its score, and
 * the label's score. */
static void largest_incorrect(const Tables *t, const Vector *x, Py_ssize_t label,
                              const Py_ssize_t *known, Py_ssize_t known_count,
                              Py_ssize_t *best, double *best_score, double *correct) {
    *best = -1;
    *best_score = 0.0;
    for (Py_ssize_t j = 0; j < known_count; j++) {
        Py_ssize_t other = known[j];
        if (other == label) {
            continue;
        }
        double total = dot(t->W, x, other);
        if (*best < 0 || total > *best_score) {
            *best = other;
            *best_score = total;
        }
    }
    *correct = dot(t->W, x, label);
}

static int note_fresh(PyObject *fresh, Py_ssize_t i) {
    PyObject *position = PyLong_FromSsize_t(i);
    if (position == NULL) {
        return -1;
    }
    int appended = PyList_Append(fresh, position);
    Py_DECREF(position);
    return appended;
}

/* _bulk_update(): w_label += step x, w_incorrect -= step x (diff parts). */
static int bulk_update(Tables *t, const Vector *x, double step, Py_ssize_t label,
                       Py_ssize_t incorrect, PyObject *fresh) {
    Py_ssize_t targets[2] = {label, incorrect};
    int target_count = incorrect < 0 ? 1 : 2;
    for (Py_ssize_t k = 0; k < x->count; k++) {
        double delta = x->values[k] * step;
        for (int j = 0; j < target_count; j++) {
            Py_ssize_t i = x->bases[k] + targets[j];
            double d = t->WD[i];
            if (d != d) {
                if (note_fresh(fresh, i) < 0) {
                    return -1;
                }
                d = 0.0;
            }
            d = d + (targets[j] == label ? delta : -delta);
            t->WD[i] = d;
            double m = t->WM[i];
            t->W[i] = (m != m ? 0.0 : m) + d;
        }
    }
    return 0;
}

/* The per-feature update of CW, AROW and NHERD, for both labels. */
static int variance_update(int method, Tables *t, const Vector *x, Py_ssize_t label,
                           Py_ssize_t incorrect, double c, double extra, double margin,
                           double variance, double gamma, double alpha, double beta,
                           PyObject *fresh) {
    Py_ssize_t targets[2] = {label, incorrect};
    double signs[2] = {1.0, -1.0};
    int target_count = incorrect < 0 ? 1 : 2;
    for (Py_ssize_t k = 0; k < x->count; k++) {
        double value = x->values[k];
        double covariance_step = 2.0 * gamma * value * value * c;
        for (int j = 0; j < target_count; j++) {
            Py_ssize_t i = x->bases[k] + targets[j];
            double sign = signs[j];
            double weight = t->W[i];
            double sigma = t->V[i];
            double moved = 0.0;
            if (method == NHERD) {
                moved = (1.0 - margin) * (value * sigma) / (variance + 1.0 / c);
            }
            double m = t->WM[i];
            if (m != m) {
                m = 0.0;
            }
            if (t->WD[i] != t->WD[i] && note_fresh(fresh, i) < 0) {
                return -1;
            }
            double d;
            if (method == CW) {
                d = weight + sign * gamma * sigma * value - m;
            } else if (method == AROW) {
                d = weight + sign * alpha * sigma * value - m;
            } else {
                d = weight + sign * moved - m;
            }
            t->WD[i] = d;
            t->W[i] = m + d;
            m = t->VM[i];
            if (m != m) {
                m = 0.0;
            }
            if (method == CW) {
                d = 1.0 / (1.0 / sigma + covariance_step) - m;
            } else if (method == AROW) {
                d = sigma - beta * sigma * sigma * value * value - m;
            } else {
                d = 1.0 / ((1.0 / sigma) + (2 * c + extra * variance) * value * value) - m;
            }
            t->VD[i] = d;
            /* (m or 0.0) + (d or 0.0): a zero of either sign counts as 0.0 */
            t->V[i] = (m == 0.0 ? 0.0 : m) + (d == 0.0 ? 0.0 : d);
        }
    }
    return 0;
}

/* One example: 1 changed, 0 not, -1 an error. */
static int train_one(int method, double c, double extra, Tables *t, const Vector *x,
                     Py_ssize_t label, const Py_ssize_t *known, Py_ssize_t known_count,
                     PyObject *fresh) {
    Py_ssize_t incorrect;
    double incorrect_score, correct_score;
    if (method == PERCEPTRON) {
        Py_ssize_t predicted = -1;
        double best = 0.0;
        for (Py_ssize_t j = 0; j < known_count; j++) {
            double total = dot(t->W, x, known[j]);
            if (predicted < 0 || total > best) {
                predicted = known[j];
                best = total;
            }
        }
        if (predicted == label) {
            return 0;
        }
        return bulk_update(t, x, 1.0, label, predicted, fresh) < 0 ? -1 : 1;
    }
    largest_incorrect(t, x, label, known, known_count, &incorrect, &incorrect_score,
                      &correct_score);
    if (method == PA || method == PA1 || method == PA2) {
        double loss = 1.0 + (incorrect_score - correct_score);
        if (loss < 0.0) {
            return 0;
        }
        double norm = 0.0;
        for (Py_ssize_t k = 0; k < x->count; k++) {
            norm += x->values[k] * x->values[k];
        }
        if (norm == 0.0) {
            return 0;
        }
        double step;
        if (method == PA) {
            step = loss / (2 * norm);
        } else if (method == PA1) {
            double plain = loss / (2 * norm);
            step = plain < c ? plain : c; /* min(c, plain) */
        } else {
            step = loss / (2 * norm + extra);
        }
        return bulk_update(t, x, step, label, incorrect, fresh) < 0 ? -1 : 1;
    }
    /* margin_and_variance() */
    double variance = 0.0;
    for (Py_ssize_t k = 0; k < x->count; k++) {
        double label_variance = t->V[x->bases[k] + label];
        double other_variance = incorrect < 0 ? 1.0 : t->V[x->bases[k] + incorrect];
        variance += (label_variance + other_variance) * x->values[k] * x->values[k];
    }
    double margin = -(incorrect_score - correct_score);
    double gamma = 0.0, alpha = 0.0, beta = 0.0;
    if (method == CW) {
        if (variance == 0.0) {
            return 0;
        }
        double b = 1.0 + 2 * c * margin;
        double root = b * b - 8 * c * (margin - c * variance);
        if (root < 0.0) {
            PyErr_SetString(PyExc_ValueError, "math domain error");
            return -1;
        }
        gamma = -b + sqrt(root);
        if (gamma <= 0.0) {
            return 0;
        }
        gamma /= 4 * c * variance;
    } else {
        if (margin >= 1.0) {
            return 0;
        }
        if (method == AROW) {
            beta = 1.0 / (variance + 1.0 / c);
            alpha = (1.0 - margin) * beta;
        }
    }
    return variance_update(method, t, x, label, incorrect, c, extra, margin, variance, gamma,
                           alpha, beta, fresh) < 0
               ? -1
               : 1;
}

/* train_linear(method, c, extra, arrays, bases, values, label, known, fresh) -> bool */
PyObject *train_linear(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 9) {
        PyErr_SetString(PyExc_TypeError,
                        "train_linear(method, c, extra, arrays, bases, values, label, known, "
                        "fresh)");
        return NULL;
    }
    long method = PyLong_AsLong(args[0]);
    double c = PyFloat_AsDouble(args[1]);
    double extra = PyFloat_AsDouble(args[2]);
    Py_ssize_t label = PyLong_AsSsize_t(args[6]);
    if (PyErr_Occurred()) {
        return NULL;
    }
    PyObject *bases = args[4], *values = args[5], *known = args[7], *fresh = args[8];
    if (method < 0 || method >= METHOD_COUNT || !PyList_CheckExact(fresh)) {
        PyErr_SetString(PyExc_ValueError, "train_linear: unknown method or fresh not a list");
        return NULL;
    }
    PyObject *base_items = PySequence_Fast(bases, "bases: a sequence");
    PyObject *value_items = base_items ? PySequence_Fast(values, "values: a sequence") : NULL;
    PyObject *known_items = value_items ? PySequence_Fast(known, "known: a sequence") : NULL;
    Py_ssize_t *numbers = NULL;
    double *doubles = NULL;
    PyObject *out = NULL;
    Tables t = {0};
    if (known_items == NULL) {
        goto done;
    }
    Py_ssize_t count = PySequence_Fast_GET_SIZE(base_items);
    Py_ssize_t known_count = PySequence_Fast_GET_SIZE(known_items);
    if (PySequence_Fast_GET_SIZE(value_items) != count) {
        PyErr_SetString(PyExc_ValueError, "bases and values differ in length");
        goto done;
    }
    numbers = PyMem_New(Py_ssize_t, count + known_count + 1);
    doubles = PyMem_New(double, count + 1);
    if (numbers == NULL || doubles == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t k = 0; k < count; k++) {
        numbers[k] = PyLong_AsSsize_t(PySequence_Fast_GET_ITEM(base_items, k));
        doubles[k] = PyFloat_AsDouble(PySequence_Fast_GET_ITEM(value_items, k));
    }
    for (Py_ssize_t j = 0; j < known_count; j++) {
        numbers[count + j] = PyLong_AsSsize_t(PySequence_Fast_GET_ITEM(known_items, j));
    }
    if (PyErr_Occurred()) {
        goto done;
    }
    Vector x = {numbers, doubles, count};
    if (tables_get(args[3], &t) < 0) {
        goto done;
    }
    if (in_tables(&t, &x, label) < 0) {
        goto done;
    }
    for (Py_ssize_t j = 0; j < known_count; j++) {
        if (in_tables(&t, &x, numbers[count + j]) < 0) {
            goto done;
        }
    }
    int changed = train_one((int)method, c, extra, &t, &x, label, numbers + count, known_count,
                            fresh);
    if (changed >= 0) {
        out = PyBool_FromLong(changed);
    }
done:
    tables_release(&t);
    PyMem_Free(numbers);
    PyMem_Free(doubles);
    Py_XDECREF(base_items);
    Py_XDECREF(value_items);
    Py_XDECREF(known_items);
    return out;
}

/* An attribute that must be an exact dict, list or int (a new reference, or NULL with
 * nothing set when it is not: the caller answers None). */
static PyObject *attribute_of(PyObject *obj, PyObject *name, PyTypeObject *type) {
    PyObject *value = PyObject_GetAttr(obj, name);
    if (value == NULL) {
        PyErr_Clear();
        return NULL;
    }
    if (Py_TYPE(value) != type) {
        Py_DECREF(value);
        return NULL;
    }
    return value;
}

/* obj.name += by (an int attribute); 0, or -1 with an error set. */
static int add_to_attribute(PyObject *obj, PyObject *name, long by) {
    PyObject *value = PyObject_GetAttr(obj, name);
    if (value == NULL) {
        return -1;
    }
    PyObject *step = PyLong_FromLong(by);
    PyObject *sum = step ? PyNumber_Add(value, step) : NULL;
    Py_DECREF(value);
    Py_XDECREF(step);
    if (sum == NULL) {
        return -1;
    }
    int set = PyObject_SetAttr(obj, name, sum);
    Py_DECREF(sum);
    return set;
}

/* counts[label] = counts.get(label, 0) + 1; 0, or -1 with an error set. */
static int count_one(PyObject *counts, PyObject *label) {
    PyObject *old = PyDict_GetItemWithError(counts, label); /* borrowed */
    if (old == NULL && PyErr_Occurred()) {
        return -1;
    }
    PyObject *one = PyLong_FromLong(1);
    PyObject *sum = one == NULL ? NULL : old == NULL ? Py_NewRef(one) : PyNumber_Add(old, one);
    Py_XDECREF(one);
    if (sum == NULL) {
        return -1;
    }
    int set = PyDict_SetItem(counts, label, sum);
    Py_DECREF(sum);
    return set;
}

/* One example learnt into a classifier's copy (engines/classifier/model.py, Replica) as
 * ClassifierModel._train_checked learns it, from a vector sorted by name and checked
 * finite (`count` names, str, and their values): the label counted, the method's step,
 * the rows changed added to `dirty` (a set, or None), the fresh diff weights counted
 * (_count_fresh), `trained` + 1. True or False (whether the step changed the weights);
 * None, having changed nothing, when the label or a feature name is new to the copy, or
 * the copy is not laid out as expected: the Python takes the example then. */
PyObject *learn_vector(long method, double c, double extra, PyObject *replica, PyObject *label,
                       PyObject *const *names, const double *values, Py_ssize_t count,
                       PyObject *dirty, int *started) {
    if (method < 0 || method >= METHOD_COUNT || !PyUnicode_CheckExact(label) ||
        (dirty != Py_None && !PySet_CheckExact(dirty))) {
        Py_RETURN_NONE;
    }
    PyObject *out = NULL, *slots = NULL, *counts = NULL, *diff_counts = NULL, *order = NULL;
    PyObject *index = NULL, *ids = NULL, *rows_obj = NULL, *arrays = NULL, *stride_obj = NULL;
    PyObject *dc_obj = NULL, *fresh = NULL;
    Py_ssize_t *numbers = NULL;
    Tables t = {0};
    Py_buffer dc = {0};
    int dc_held = 0, taken = 0;
    slots = attribute_of(replica, s_slots, &PyDict_Type);
    counts = attribute_of(replica, s_counts, &PyDict_Type);
    diff_counts = attribute_of(replica, s_diff_counts, &PyDict_Type);
    order = attribute_of(replica, s_order_slots, &PyList_Type);
    index = PyObject_GetAttr(replica, s_index);
    ids = index ? attribute_of(index, s_ids, &PyDict_Type) : NULL;
    rows_obj = attribute_of(replica, s_rows, &PyLong_Type);
    arrays = PyObject_GetAttr(replica, s_arrays);
    stride_obj = arrays ? attribute_of(arrays, s_stride, &PyLong_Type) : NULL;
    dc_obj = PyObject_GetAttr(replica, s_DC);
    PyErr_Clear(); /* whatever is missing: the Python takes the example */
    if (!slots || !counts || !diff_counts || !order || !ids || !rows_obj || !stride_obj ||
        !dc_obj) {
        goto done;
    }
    PyObject *slot_obj = PyDict_GetItemWithError(slots, label); /* borrowed */
    if (slot_obj == NULL || !PyLong_CheckExact(slot_obj) ||
        PyDict_GetItemWithError(counts, label) == NULL) {
        goto done; /* a new label (or an error, raised below) */
    }
    Py_ssize_t slot = PyLong_AsSsize_t(slot_obj);
    Py_ssize_t rows = PyLong_AsSsize_t(rows_obj);
    Py_ssize_t stride = PyLong_AsSsize_t(stride_obj);
    if (PyErr_Occurred() || stride < 1) {
        goto done;
    }
    Py_ssize_t known_count = PyList_GET_SIZE(order);
    numbers = PyMem_New(Py_ssize_t, count + known_count + 1); /* bases, then known slots */
    if (numbers == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t k = 0; k < count; k++) {
        PyObject *fid_obj = PyUnicode_CheckExact(names[k])
                                ? PyDict_GetItemWithError(ids, names[k])
                                : NULL;
        if (fid_obj == NULL || !PyLong_CheckExact(fid_obj)) {
            goto done; /* a new feature name (or an error, raised below) */
        }
        Py_ssize_t fid = PyLong_AsSsize_t(fid_obj);
        if (fid < 1 || fid >= rows) {
            goto done;
        }
        numbers[k] = fid * stride;
    }
    for (Py_ssize_t j = 0; j < known_count; j++) {
        PyObject *known = PyList_GET_ITEM(order, j);
        if (!PyLong_CheckExact(known)) {
            goto done;
        }
        numbers[count + j] = PyLong_AsSsize_t(known);
    }
    if (PyErr_Occurred()) {
        goto done;
    }
    Vector x = {numbers, values, count};
    if (tables_get(arrays, &t) < 0) {
        PyErr_Clear();
        goto done;
    }
    if (in_tables(&t, &x, slot) < 0) {
        PyErr_Clear();
        goto done;
    }
    for (Py_ssize_t j = 0; j < known_count; j++) {
        if (in_tables(&t, &x, numbers[count + j]) < 0) {
            PyErr_Clear();
            goto done;
        }
    }
    if (PyObject_GetBuffer(dc_obj, &dc, PyBUF_WRITABLE | PyBUF_FORMAT) < 0) {
        PyErr_Clear();
        goto done;
    }
    dc_held = 1;
    if (dc.format == NULL || strcmp(dc.format, "l") != 0 ||
        dc.len / (Py_ssize_t)sizeof(long) < rows || t.size < rows * stride) {
        goto done;
    }
    /* Checked: from here on the example is learnt (an error mid-way is the Python's too). */
    taken = 1;
    if (count_one(counts, label) < 0 || count_one(diff_counts, label) < 0) {
        goto done;
    }
    fresh = PyList_New(0);
    if (fresh == NULL) {
        goto done;
    }
    int changed = train_one((int)method, c, extra, &t, &x, slot, numbers + count, known_count,
                            fresh);
    if (changed < 0) {
        goto done;
    }
    if (changed) {
        if (dirty != Py_None) {
            for (Py_ssize_t k = 0; k < count; k++) {
                PyObject *fid = PyLong_FromSsize_t(numbers[k] / stride);
                if (fid == NULL || PySet_Add(dirty, fid) < 0) {
                    Py_XDECREF(fid);
                    goto done;
                }
                Py_DECREF(fid);
            }
        }
        long *row_counts = (long *)dc.buf;
        long new_rows = 0, new_features = 0;
        for (Py_ssize_t p = 0; p < PyList_GET_SIZE(fresh); p++) {
            Py_ssize_t position = PyLong_AsSsize_t(PyList_GET_ITEM(fresh, p));
            Py_ssize_t fid = position / stride;
            if (row_counts[fid] == 0) {
                new_rows++;
                int empty = 1;
                for (Py_ssize_t s = 0; s < stride; s++) {
                    double m = t.WM[fid * stride + s];
                    if (m == m) {
                        empty = 0;
                        break;
                    }
                }
                new_features += empty;
            }
            row_counts[fid] += 1;
        }
        if ((new_rows && add_to_attribute(replica, s_diff_features, new_rows) < 0) ||
            (new_features && add_to_attribute(replica, s_all_features, new_features) < 0)) {
            goto done;
        }
    }
    if (add_to_attribute(replica, s_trained, 1) < 0) {
        goto done;
    }
    out = PyBool_FromLong(changed);
done:
    if (out == NULL && !taken && !PyErr_Occurred()) {
        out = Py_NewRef(Py_None);
    }
    if (started != NULL) {
        *started = taken;
    }
    if (dc_held) {
        PyBuffer_Release(&dc);
    }
    tables_release(&t);
    PyMem_Free(numbers);
    Py_XDECREF(slots);
    Py_XDECREF(counts);
    Py_XDECREF(diff_counts);
    Py_XDECREF(order);
    Py_XDECREF(index);
    Py_XDECREF(ids);
    Py_XDECREF(rows_obj);
    Py_XDECREF(arrays);
    Py_XDECREF(stride_obj);
    Py_XDECREF(dc_obj);
    Py_XDECREF(fresh);
    return out;
}

/* learn_known(method, c, extra, replica, label, names, values, dirty) -> bool or None:
 * learn_vector of a vector train_vector made (two lists: names, and their floats). */
PyObject *learn_known(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 8) {
        PyErr_SetString(PyExc_TypeError,
                        "learn_known(method, c, extra, replica, label, names, values, dirty)");
        return NULL;
    }
    long method = PyLong_AsLong(args[0]);
    double c = PyFloat_AsDouble(args[1]);
    double extra = PyFloat_AsDouble(args[2]);
    if (PyErr_Occurred()) {
        return NULL;
    }
    PyObject *names = args[5], *values = args[6];
    if (!PyList_CheckExact(names) || !PyList_CheckExact(values) ||
        PyList_GET_SIZE(names) != PyList_GET_SIZE(values)) {
        Py_RETURN_NONE;
    }
    Py_ssize_t count = PyList_GET_SIZE(values);
    double *doubles = PyMem_New(double, count + 1);
    if (doubles == NULL) {
        return PyErr_NoMemory();
    }
    for (Py_ssize_t k = 0; k < count; k++) {
        PyObject *value = PyList_GET_ITEM(values, k);
        if (!PyFloat_CheckExact(value)) {
            PyMem_Free(doubles);
            Py_RETURN_NONE;
        }
        doubles[k] = PyFloat_AS_DOUBLE(value);
    }
    PyObject *out = learn_vector(method, c, extra, args[3], args[4],
                                 ((PyListObject *)names)->ob_item, doubles, count, args[7], NULL);
    PyMem_Free(doubles);
    return out;
}
