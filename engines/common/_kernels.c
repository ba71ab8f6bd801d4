/* Compiled hot paths of the engines; engines/common/kernels.py loads this module and says
 * where each kernel serves.
 *
 * Every kernel gives the bits of the Python or numpy it stands in for: the same operations
 * in the same order (the module is built with -ffp-contract=off: no fused multiply-add),
 * the same tie rules. Where a kernel meets a case it does not take (an input not well
 * formed, a cache not filled yet, a value that is not a number), it answers None and the
 * caller runs its Python, which also says what is wrong.
 *
 * The GIL is held throughout every call, and no Python code runs under it (lookups in
 * dicts of str, bytes and tuples of bytes only): what a kernel reads cannot change while
 * it reads. Sizes and indexes are checked before memory is touched.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>

/* Features of one datum kept on the stack up to this many; more go to the heap. */
#define STACK_FEATURES 64
/* Up to this many features a repeated name is looked for pairwise, past it by a dict. */
#define PAIRWISE_FEATURES 48

static PyObject *s_retired, *s_full, *s_index, *s_ids, *s_rows, *s_arrays, *s_W, *s_stride,
    *s_order_slots, *s_order_labels;

typedef struct {
    PyObject **names;   /* borrowed */
    double *values;
    Py_ssize_t count;
    Py_ssize_t capacity;
    PyObject *stack_names[STACK_FEATURES];
    double stack_values[STACK_FEATURES];
} Features;

static void features_init(Features *f) {
    f->names = f->stack_names;
    f->values = f->stack_values;
    f->count = 0;
    f->capacity = STACK_FEATURES;
}

static void features_free(Features *f) {
    if (f->names != f->stack_names) {
        PyMem_Free(f->names);
        PyMem_Free(f->values);
    }
    features_init(f);
}

/* Room for `more` features; 0 on success, -1 with MemoryError set. */
static int features_reserve(Features *f, Py_ssize_t more) {
    Py_ssize_t needed = f->count + more;
    if (needed <= f->capacity) {
        return 0;
    }
    Py_ssize_t capacity = f->capacity * 2 > needed ? f->capacity * 2 : needed;
    PyObject **names = PyMem_New(PyObject *, capacity);
    double *values = PyMem_New(double, capacity);
    if (names == NULL || values == NULL) {
        PyMem_Free(names);
        PyMem_Free(values);
        PyErr_NoMemory();
        return -1;
    }
    memcpy(names, f->names, f->count * sizeof(PyObject *));
    memcpy(values, f->values, f->count * sizeof(double));
    if (f->names != f->stack_names) {
        PyMem_Free(f->names);
        PyMem_Free(f->values);
    }
    f->names = names;
    f->values = values;
    f->capacity = capacity;
    return 0;
}

/* 1: the plain case, features appended; 0: not (take the Python path); -1: an error. */
static int extract(PyObject *datum, PyObject *strings, PyObject *numbers, Features *f) {
    if (!PyList_CheckExact(datum) || PyList_GET_SIZE(datum) != 3) {
        return 0;
    }
    PyObject *string_pairs = PyList_GET_ITEM(datum, 0);
    PyObject *number_pairs = PyList_GET_ITEM(datum, 1);
    PyObject *binary_pairs = PyList_GET_ITEM(datum, 2);
    if (!PyList_CheckExact(string_pairs) || !PyList_CheckExact(number_pairs) ||
        !PyList_CheckExact(binary_pairs)) {
        return 0;
    }
    Py_ssize_t n = PyList_GET_SIZE(string_pairs);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *pair = PyList_GET_ITEM(string_pairs, i);
        if (!PyList_CheckExact(pair) || PyList_GET_SIZE(pair) != 2) {
            return 0;
        }
        PyObject *key = PyList_GET_ITEM(pair, 0);
        PyObject *value = PyList_GET_ITEM(pair, 1);
        if (!PyBytes_CheckExact(key) || !PyBytes_CheckExact(value)) {
            return 0;
        }
        PyObject *token = PyTuple_Pack(2, key, value);
        if (token == NULL) {
            return -1;
        }
        PyObject *entry = PyDict_GetItemWithError(strings, token);
        Py_DECREF(token);
        if (entry == NULL) {
            return PyErr_Occurred() ? -1 : 0;
        }
        /* One string rule: ((names...), (weights...)); a str is a refused key's error. */
        if (!PyTuple_CheckExact(entry) || PyTuple_GET_SIZE(entry) != 1) {
            return 0;
        }
        PyObject *part = PyTuple_GET_ITEM(entry, 0);
        if (!PyTuple_CheckExact(part) || PyTuple_GET_SIZE(part) != 2) {
            return 0;
        }
        PyObject *rule_names = PyTuple_GET_ITEM(part, 0);
        PyObject *weights = PyTuple_GET_ITEM(part, 1);
        if (!PyTuple_CheckExact(rule_names) || !PyTuple_CheckExact(weights) ||
            PyTuple_GET_SIZE(rule_names) != PyTuple_GET_SIZE(weights)) {
            return 0;
        }
        Py_ssize_t m = PyTuple_GET_SIZE(rule_names);
        if (features_reserve(f, m) < 0) {
            return -1;
        }
        for (Py_ssize_t j = 0; j < m; j++) {
            PyObject *name = PyTuple_GET_ITEM(rule_names, j);
            PyObject *weight = PyTuple_GET_ITEM(weights, j);
            if (!PyUnicode_CheckExact(name) || !PyFloat_CheckExact(weight)) {
                return 0;
            }
            f->names[f->count] = name;
            f->values[f->count] = PyFloat_AS_DOUBLE(weight);
            f->count++;
        }
    }
    n = PyList_GET_SIZE(binary_pairs);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *pair = PyList_GET_ITEM(binary_pairs, i);
        if (!PyList_CheckExact(pair) || PyList_GET_SIZE(pair) != 2 ||
            !PyBytes_CheckExact(PyList_GET_ITEM(pair, 0)) ||
            !PyBytes_CheckExact(PyList_GET_ITEM(pair, 1))) {
            return 0;
        }
    }
    n = PyList_GET_SIZE(number_pairs);
    if (features_reserve(f, n) < 0) {
        return -1;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *pair = PyList_GET_ITEM(number_pairs, i);
        if (!PyList_CheckExact(pair) || PyList_GET_SIZE(pair) != 2) {
            return 0;
        }
        PyObject *key = PyList_GET_ITEM(pair, 0);
        PyObject *number = PyList_GET_ITEM(pair, 1);
        double value;
        if (PyFloat_CheckExact(number)) {
            value = PyFloat_AS_DOUBLE(number);
        } else if (PyLong_CheckExact(number)) {
            value = PyLong_AsDouble(number);
            if (value == -1.0 && PyErr_Occurred()) {
                PyErr_Clear(); /* too large: the Python path says so */
                return 0;
            }
        } else {
            return 0;
        }
        if (!PyBytes_CheckExact(key)) {
            return 0;
        }
        /* The feature name of a key that meets one num rule, once the converter has seen it. */
        PyObject *name = PyDict_GetItemWithError(numbers, key);
        if (name == NULL) {
            return PyErr_Occurred() ? -1 : 0;
        }
        if (!PyUnicode_CheckExact(name)) {
            return 0;
        }
        f->names[f->count] = name;
        f->values[f->count] = value;
        f->count++;
    }
    return 1;
}

/* Equal names: the same object, or the same hash and text. -1 on an error. */
static int same_name(PyObject *a, PyObject *b) {
    if (a == b) {
        return 1;
    }
    Py_hash_t ha = PyObject_Hash(a), hb = PyObject_Hash(b);
    if (ha == -1 || hb == -1) {
        return -1;
    }
    if (ha != hb) {
        return 0;
    }
    return PyUnicode_Compare(a, b) == 0;
}

/* weigh(): 0 values left out, a repeated name's values summed at its first place (from
 * 0.0, as a dict of sums has it). 1: done; 0: a value is not finite (the Python path);
 * -1: an error. */
static int merge(Features *f) {
    Py_ssize_t kept = 0;
    if (f->count <= PAIRWISE_FEATURES) {
        for (Py_ssize_t i = 0; i < f->count; i++) {
            double value = f->values[i];
            if (!isfinite(value)) {
                return 0;
            }
            if (value == 0.0) {
                continue;
            }
            Py_ssize_t j;
            for (j = 0; j < kept; j++) {
                int same = same_name(f->names[j], f->names[i]);
                if (same < 0) {
                    return -1;
                }
                if (same) {
                    break;
                }
            }
            if (j < kept) {
                f->values[j] += value;
            } else {
                f->names[kept] = f->names[i];
                f->values[kept] = 0.0 + value;
                kept++;
            }
        }
    } else {
        PyObject *places = PyDict_New();
        if (places == NULL) {
            return -1;
        }
        for (Py_ssize_t i = 0; i < f->count; i++) {
            double value = f->values[i];
            if (!isfinite(value)) {
                Py_DECREF(places);
                return 0;
            }
            if (value == 0.0) {
                continue;
            }
            PyObject *place = PyDict_GetItemWithError(places, f->names[i]);
            if (place != NULL) {
                f->values[PyLong_AsSsize_t(place)] += value;
                continue;
            }
            if (PyErr_Occurred()) {
                Py_DECREF(places);
                return -1;
            }
            PyObject *number = PyLong_FromSsize_t(kept);
            if (number == NULL || PyDict_SetItem(places, f->names[i], number) < 0) {
                Py_XDECREF(number);
                Py_DECREF(places);
                return -1;
            }
            Py_DECREF(number);
            f->names[kept] = f->names[i];
            f->values[kept] = 0.0 + value;
            kept++;
        }
        Py_DECREF(places);
    }
    f->count = kept;
    return 1;
}

typedef struct {
    PyObject *ids;      /* borrowed from the replica's index */
    Py_ssize_t rows;
    const double *weights;
    Py_ssize_t weight_count;
    Py_ssize_t stride;
    Py_ssize_t *slots;
    Py_ssize_t labels;
    PyObject *label_names; /* the order_labels list */
} Copy;

/* [(label, score)...] of one datum's merged features, or NULL with an error set. */
static PyObject *score(const Copy *copy, const Features *f, double *totals) {
    for (Py_ssize_t s = 0; s < copy->labels; s++) {
        totals[s] = 0.0;
    }
    for (Py_ssize_t i = 0; i < f->count; i++) {
        PyObject *id = PyDict_GetItemWithError(copy->ids, f->names[i]);
        Py_ssize_t row = 0;
        if (id != NULL) {
            row = PyLong_AsSsize_t(id);
            if (row == -1 && PyErr_Occurred()) {
                return NULL;
            }
            if (row >= copy->rows || row < 0) { /* named since this copy was made */
                row = 0;
            }
        } else if (PyErr_Occurred()) {
            return NULL;
        }
        Py_ssize_t base = row * copy->stride;
        double value = f->values[i];
        for (Py_ssize_t s = 0; s < copy->labels; s++) {
            Py_ssize_t at = base + copy->slots[s];
            if (at >= copy->weight_count) {
                PyErr_SetString(PyExc_IndexError, "weight index out of range");
                return NULL;
            }
            totals[s] += copy->weights[at] * value;
        }
    }
    PyObject *out = PyList_New(copy->labels);
    if (out == NULL) {
        return NULL;
    }
    for (Py_ssize_t s = 0; s < copy->labels; s++) {
        PyObject *score = PyFloat_FromDouble(totals[s]);
        if (score == NULL) {
            Py_DECREF(out);
            return NULL;
        }
        PyObject *label = PyList_GET_ITEM(copy->label_names, s);
        PyObject *pair = PyTuple_Pack(2, label, score);
        Py_DECREF(score);
        if (pair == NULL) {
            Py_DECREF(out);
            return NULL;
        }
        PyList_SET_ITEM(out, s, pair);
    }
    return out;
}

/* A new reference to replica.<a>.<b> (b may be NULL). */
static PyObject *attribute(PyObject *obj, PyObject *a, PyObject *b) {
    PyObject *value = PyObject_GetAttr(obj, a);
    if (value == NULL || b == NULL) {
        return value;
    }
    PyObject *inner = PyObject_GetAttr(value, b);
    Py_DECREF(value);
    return inner;
}

/* What a scoring call holds of a copy: its references, its weights' buffer, the slots. */
typedef struct {
    PyObject *refs[6]; /* ids, rows, W, stride, order_slots, order_labels */
    Py_buffer view;
    Py_ssize_t *slot_numbers;
    double *totals;
    Copy copy;
} OpenCopy;

static void copy_close(OpenCopy *open) {
    if (open->view.obj != NULL) {
        PyBuffer_Release(&open->view);
    }
    PyMem_Free(open->slot_numbers);
    PyMem_Free(open->totals);
    for (int i = 0; i < 6; i++) {
        Py_CLEAR(open->refs[i]);
    }
}

/* Reads what scoring needs of a replica; 1: ready, 0: not the plain case, -1: an error.
 * For wire datums, a copy the writer has retired, or one that needs the whole converter,
 * is not the plain case. copy_close() in every case. */
static int copy_open(PyObject *replica, int wire, OpenCopy *open) {
    memset(open, 0, sizeof(*open));
    if (wire) {
        PyObject *retired = PyObject_GetAttr(replica, s_retired);
        if (retired == NULL) {
            return -1;
        }
        int is_retired = PyObject_IsTrue(retired);
        Py_DECREF(retired);
        if (is_retired != 0) {
            return is_retired < 0 ? -1 : 0;
        }
        PyObject *full = PyObject_GetAttr(replica, s_full);
        if (full == NULL) {
            return -1;
        }
        Py_DECREF(full);
        if (full != Py_None) {
            return 0;
        }
    }
    PyObject **refs = open->refs;
    refs[0] = attribute(replica, s_index, s_ids);
    refs[1] = attribute(replica, s_rows, NULL);
    refs[2] = attribute(replica, s_arrays, s_W);
    refs[3] = attribute(replica, s_arrays, s_stride);
    refs[4] = attribute(replica, s_order_slots, NULL);
    refs[5] = attribute(replica, s_order_labels, NULL);
    for (int i = 0; i < 6; i++) {
        if (refs[i] == NULL) {
            return -1;
        }
    }
    PyObject *ids = refs[0], *slots = refs[4], *labels = refs[5];
    if (!PyDict_Check(ids) || !PyList_CheckExact(slots) || !PyList_CheckExact(labels) ||
        PyList_GET_SIZE(slots) != PyList_GET_SIZE(labels)) {
        return 0;
    }
    Copy *copy = &open->copy;
    copy->ids = ids;
    copy->rows = PyLong_AsSsize_t(refs[1]);
    copy->stride = PyLong_AsSsize_t(refs[3]);
    if ((copy->rows == -1 || copy->stride == -1) && PyErr_Occurred()) {
        return -1;
    }
    copy->labels = PyList_GET_SIZE(labels);
    copy->label_names = labels;
    if (PyObject_GetBuffer(refs[2], &open->view, PyBUF_FORMAT | PyBUF_C_CONTIGUOUS) < 0) {
        return -1;
    }
    if (open->view.format == NULL || strcmp(open->view.format, "d") != 0) {
        return 0;
    }
    copy->weights = (const double *)open->view.buf;
    copy->weight_count = open->view.len / (Py_ssize_t)sizeof(double);
    open->slot_numbers = PyMem_New(Py_ssize_t, copy->labels + 1);
    open->totals = PyMem_New(double, copy->labels + 1);
    if (open->slot_numbers == NULL || open->totals == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    for (Py_ssize_t s = 0; s < copy->labels; s++) {
        PyObject *slot = PyList_GET_ITEM(slots, s);
        if (!PyLong_CheckExact(slot)) {
            return 0;
        }
        Py_ssize_t number = PyLong_AsSsize_t(slot);
        if (number == -1 && PyErr_Occurred()) {
            return -1;
        }
        if (number < 0 || number >= copy->stride) {
            return 0;
        }
        open->slot_numbers[s] = number;
    }
    copy->slots = open->slot_numbers;
    return 1;
}

/* classify_wire(data, strings, numbers, replica) -> list | None
 *
 * The scores of classify's wire argument against one copy of a linear classifier's
 * model, as engines.classifier.model does in Python: each label's score summed from 0.0
 * in the datum's feature order, a feature twice in a datum has its values summed first (at
 * its first place) and a 0 value is left out, as weigh() does. None for a datum not well
 * formed, a string pair or number key the converter's caches do not hold yet, a value that
 * is not finite, a copy being replaced (retired: the writer changes a copy only after it
 * has retired it, which is checked first) or one that needs the whole converter. */
static PyObject *classify_wire(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 4) {
        PyErr_SetString(PyExc_TypeError, "classify_wire(data, strings, numbers, replica)");
        return NULL;
    }
    PyObject *data = args[0], *strings = args[1], *numbers = args[2], *replica = args[3];
    if (!PyList_CheckExact(data) || !PyDict_Check(strings) || !PyDict_Check(numbers)) {
        Py_RETURN_NONE;
    }
    OpenCopy open;
    PyObject *out = NULL;
    Features f;
    features_init(&f);
    int ready = copy_open(replica, 1, &open);
    if (ready <= 0) {
        goto finish;
    }
    Py_ssize_t count = PyList_GET_SIZE(data);
    out = PyList_New(count);
    if (out == NULL) {
        ready = -1;
        goto finish;
    }
    for (Py_ssize_t i = 0; i < count; i++) {
        f.count = 0;
        ready = extract(PyList_GET_ITEM(data, i), strings, numbers, &f);
        if (ready > 0) {
            ready = merge(&f);
        }
        if (ready <= 0) {
            goto finish;
        }
        PyObject *scores = score(&open.copy, &f, open.totals);
        if (scores == NULL) {
            ready = -1;
            goto finish;
        }
        PyList_SET_ITEM(out, i, scores);
    }
finish:
    copy_close(&open);
    features_free(&f);
    if (ready <= 0) {
        Py_CLEAR(out);
        if (ready == 0) {
            out = Py_NewRef(Py_None);
        }
    }
    return out;
}

/* score_vectors(vectors, replica) -> list | None: Replica.score's sums of weighed vectors
 * ((names, values) pairs, as weigh() gives them) against replica, read by a caller that
 * holds it (no retired check); None for a value that is not finite or an odd input. */
static PyObject *score_vectors(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "score_vectors(vectors, replica)");
        return NULL;
    }
    PyObject *vectors = args[0], *replica = args[1];
    if (!PyList_CheckExact(vectors)) {
        Py_RETURN_NONE;
    }
    OpenCopy open;
    PyObject *out = NULL;
    Features f;
    features_init(&f);
    int ready = copy_open(replica, 0, &open);
    if (ready <= 0) {
        goto finish;
    }
    Py_ssize_t count = PyList_GET_SIZE(vectors);
    out = PyList_New(count);
    if (out == NULL) {
        ready = -1;
        goto finish;
    }
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *vector = PyList_GET_ITEM(vectors, i);
        ready = 0;
        if (!PyTuple_CheckExact(vector) || PyTuple_GET_SIZE(vector) != 2) {
            goto finish;
        }
        PyObject *names = PyTuple_GET_ITEM(vector, 0), *values = PyTuple_GET_ITEM(vector, 1);
        if (!PyList_CheckExact(names) || !PyList_CheckExact(values) ||
            PyList_GET_SIZE(names) != PyList_GET_SIZE(values)) {
            goto finish;
        }
        Py_ssize_t n = PyList_GET_SIZE(names);
        f.count = 0;
        if (features_reserve(&f, n) < 0) {
            ready = -1;
            goto finish;
        }
        for (Py_ssize_t j = 0; j < n; j++) {
            PyObject *name = PyList_GET_ITEM(names, j), *value = PyList_GET_ITEM(values, j);
            if (!PyUnicode_CheckExact(name) || !PyFloat_CheckExact(value) ||
                !isfinite(PyFloat_AS_DOUBLE(value))) {
                goto finish;
            }
            f.names[j] = name;
            f.values[j] = PyFloat_AS_DOUBLE(value);
        }
        f.count = n;
        PyObject *scores = score(&open.copy, &f, open.totals);
        if (scores == NULL) {
            ready = -1;
            goto finish;
        }
        PyList_SET_ITEM(out, i, scores);
    }
    ready = 1;
finish:
    copy_close(&open);
    features_free(&f);
    if (ready <= 0) {
        Py_CLEAR(out);
        if (ready == 0) {
            out = Py_NewRef(Py_None);
        }
    }
    return out;
}

/* -- training the linear methods ----------------------------------------------------- */

/* The methods of engines/common/linear.py, in its order of operations (the same bits). */
enum { PERCEPTRON, PA, PA1, PA2, CW, AROW, NHERD, METHOD_COUNT };

static PyObject *s_V, *s_WM, *s_WD, *s_VM, *s_VD;

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
    double *values;
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
static PyObject *train_linear(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
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


/* -- copying rows between the two copies of a model ------------------------------------ */

/* copy_rows(pairs, ids): for each (destination, source, stride) of pairs (arrays of one
 * item type), rows ids (each stride items long) of source copied into destination. */
static PyObject *copy_rows(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
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


/* -- random projections (lsh, euclid_lsh) --------------------------------------------- */

/* project(matrix, values, projection, words): hashing.random_projection's 32-bit sums,
 * Σ float32(value_i) x matrix[i] feature after feature (a running sum from the first
 * product, as numpy's cumsum has it), into `projection` (a float32 array of the matrix's
 * width) and/or, as pack_bits(projection > 0) gives them, into `words` (uint64 words: bit
 * j of word w is column 64 w + j); either may be None. `matrix` is a C-contiguous float32
 * (len(values) x width) array. */
static PyObject *project(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
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
static PyObject *nearest_by_hamming(PyObject *module, PyObject *const *args,
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
static PyObject *nearest_by_euclid_lsh(PyObject *module, PyObject *const *args,
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
    double *best_scores = NULL;
    Py_ssize_t *best_positions = NULL;
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
    if (count > size) {
        count = size;
    }
    if (count < 0) {
        count = 0;
    }
    best_scores = PyMem_New(double, count + 1);
    best_positions = PyMem_New(Py_ssize_t, count + 1);
    if (best_scores == NULL || best_positions == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    const uint64_t *rows = (const uint64_t *)matrix.buf;
    const uint64_t *q = (const uint64_t *)query.buf;
    const double *stored = (const double *)norms.buf;
    const double *cosine = (const double *)cosines.buf;
    Py_ssize_t kept = 0;
    for (Py_ssize_t j = 0; j < size && count > 0; j++) {
        Py_ssize_t h = 0;
        const uint64_t *row = rows + j * width;
        for (Py_ssize_t w = 0; w < width; w++) {
            h += __builtin_popcountll(row[w] ^ q[w]);
        }
        double other = stored[j];
        double score;
        if (h >= cosines.len / 8) {
            PyErr_SetString(PyExc_ValueError, "nearest_by_euclid_lsh: too few cosines");
            goto done;
        }
        if (h == 0) {
            score = fabs(norm - other);
        } else {
            score = sqrt(norm * norm + other * other - 2 * norm * other * cosine[h]);
        }
        if (score != score) {
            out = Py_NewRef(Py_None);
            goto done;
        }
        /* j comes after every position kept: it loses ties */
        if (kept == count && !(score < best_scores[kept - 1])) {
            continue;
        }
        Py_ssize_t place = kept < count ? kept : count - 1;
        while (place > 0 && score < best_scores[place - 1]) {
            best_scores[place] = best_scores[place - 1];
            best_positions[place] = best_positions[place - 1];
            place--;
        }
        best_scores[place] = score;
        best_positions[place] = j;
        if (kept < count) {
            kept++;
        }
    }
    PyObject *positions = PyList_New(kept), *scores = PyList_New(kept);
    if (positions == NULL || scores == NULL) {
        Py_XDECREF(positions);
        Py_XDECREF(scores);
        goto done;
    }
    for (Py_ssize_t k = 0; k < kept; k++) {
        PyList_SET_ITEM(positions, k, PyLong_FromSsize_t(best_positions[k]));
        PyList_SET_ITEM(scores, k, PyFloat_FromDouble(best_scores[k]));
    }
    out = PyTuple_Pack(2, positions, scores);
    Py_DECREF(positions);
    Py_DECREF(scores);
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
    PyMem_Free(best_scores);
    PyMem_Free(best_positions);
    return out;
}

/* -- the inverted index's euclid and cosine queries -------------------------------------------- */

/* The `count` best rows of InvertedIndex.euclid from every row's dot product with the
 * query: row j's score is -sqrt(max(0, (norm_j + query_norm) - 2 dot_j)), rows with a 0
 * norm left out, best by (score, number), largest first. (scores, numbers); None when a
 * score is NaN (the Python path then orders them as numpy does); NULL on an error. */
static PyObject *euclid_best(const double *dots, const double *norm, Py_ssize_t rows,
                             double query_norm, Py_ssize_t count) {
    if (count > rows) {
        count = rows;
    }
    if (count < 0) {
        count = 0;
    }
    double *best_scores = PyMem_New(double, count + 1);
    Py_ssize_t *best_numbers = PyMem_New(Py_ssize_t, count + 1);
    PyObject *out = NULL;
    if (best_scores == NULL || best_numbers == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    Py_ssize_t kept = 0;
    for (Py_ssize_t j = 0; j < rows && count > 0; j++) {
        if (norm[j] == 0.0) {
            continue;
        }
        double squared = (norm[j] + query_norm) - dots[j] * 2.0;
        if (squared != squared) {
            out = Py_NewRef(Py_None);
            goto done;
        }
        double score = -sqrt(squared > 0.0 ? squared : 0.0);
        /* j is larger than every number kept: it wins ties */
        if (kept == count && score < best_scores[kept - 1]) {
            continue;
        }
        Py_ssize_t place = kept < count ? kept : count - 1;
        while (place > 0 && score >= best_scores[place - 1]) {
            best_scores[place] = best_scores[place - 1];
            best_numbers[place] = best_numbers[place - 1];
            place--;
        }
        best_scores[place] = score;
        best_numbers[place] = j;
        if (kept < count) {
            kept++;
        }
    }
    PyObject *scores = PyList_New(kept), *numbers = PyList_New(kept);
    if (scores == NULL || numbers == NULL) {
        Py_XDECREF(scores);
        Py_XDECREF(numbers);
        goto done;
    }
    for (Py_ssize_t k = 0; k < kept; k++) {
        PyList_SET_ITEM(scores, k, PyFloat_FromDouble(best_scores[k]));
        PyList_SET_ITEM(numbers, k, PyLong_FromSsize_t(best_numbers[k]));
    }
    out = PyTuple_Pack(2, scores, numbers);
    Py_DECREF(scores);
    Py_DECREF(numbers);
done:
    PyMem_Free(best_scores);
    PyMem_Free(best_numbers);
    return out;
}

/* The `count` best rows of InvertedIndex.cosine from the dot products: rows with a 0 dot
 * product or a 0 norm left out; similarity dot / sqrt(norm) / sqrt(query_norm), or 1 when
 * norm, query_norm and dot are equal; best by (similarity, number), largest first; the
 * similarities answered clamped to [-1, 1]. None when one is NaN; NULL on an error. */
static PyObject *cosine_best(const double *dots, const double *norm, Py_ssize_t rows,
                             double query_norm, Py_ssize_t count) {
    if (count > rows) {
        count = rows;
    }
    if (count < 0) {
        count = 0;
    }
    double *best_scores = PyMem_New(double, count + 1);
    Py_ssize_t *best_numbers = PyMem_New(Py_ssize_t, count + 1);
    PyObject *out = NULL;
    if (best_scores == NULL || best_numbers == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    double query_root = sqrt(query_norm);
    Py_ssize_t kept = 0;
    for (Py_ssize_t j = 0; j < rows && count > 0; j++) {
        double dot = dots[j];
        if (dot == 0.0 || norm[j] == 0.0) {
            continue;
        }
        double score = dot / sqrt(norm[j]) / query_root;
        if (norm[j] == query_norm && norm[j] == dot) {
            score = 1.0;
        }
        if (score != score) {
            out = Py_NewRef(Py_None);
            goto done;
        }
        if (kept == count && score < best_scores[kept - 1]) {
            continue;
        }
        Py_ssize_t place = kept < count ? kept : count - 1;
        while (place > 0 && score >= best_scores[place - 1]) {
            best_scores[place] = best_scores[place - 1];
            best_numbers[place] = best_numbers[place - 1];
            place--;
        }
        best_scores[place] = score;
        best_numbers[place] = j;
        if (kept < count) {
            kept++;
        }
    }
    PyObject *scores = PyList_New(kept), *numbers = PyList_New(kept);
    if (scores == NULL || numbers == NULL) {
        Py_XDECREF(scores);
        Py_XDECREF(numbers);
        goto done;
    }
    for (Py_ssize_t k = 0; k < kept; k++) {
        double clamped = best_scores[k] > -1.0 ? best_scores[k] : -1.0; /* max(-1.0, s) */
        clamped = 1.0 < clamped ? 1.0 : clamped;                       /* min(., 1.0) */
        PyList_SET_ITEM(scores, k, PyFloat_FromDouble(clamped));
        PyList_SET_ITEM(numbers, k, PyLong_FromSsize_t(best_numbers[k]));
    }
    out = PyTuple_Pack(2, scores, numbers);
    Py_DECREF(scores);
    Py_DECREF(numbers);
done:
    PyMem_Free(best_scores);
    PyMem_Free(best_numbers);
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
static PyObject *dense_query(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
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
static PyObject *postings_query(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
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

static PyMethodDef methods[] = {
    {"classify_wire", (PyCFunction)(void (*)(void))classify_wire, METH_FASTCALL,
     "Scores of classify's wire argument against a linear classifier's copy, or None."},
    {"score_vectors", (PyCFunction)(void (*)(void))score_vectors, METH_FASTCALL,
     "Scores of weighed feature vectors against a linear classifier's copy, or None."},
    {"train_linear", (PyCFunction)(void (*)(void))train_linear, METH_FASTCALL,
     "One example learnt by a linear method, as engines.common.linear does it."},
    {"project", (PyCFunction)(void (*)(void))project, METH_FASTCALL,
     "Random projection sums and their sign bits (lsh, euclid_lsh)."},
    {"nearest_by_hamming", (PyCFunction)(void (*)(void))nearest_by_hamming, METH_FASTCALL,
     "The rows nearest a bit vector by Hamming distance, ties by position."},
    {"dense_query", (PyCFunction)(void (*)(void))dense_query, METH_FASTCALL,
     "The inverted index's euclid or cosine query over its dense copy."},
    {"postings_query", (PyCFunction)(void (*)(void))postings_query, METH_FASTCALL,
     "The inverted index's euclid or cosine query over its postings."},
    {"nearest_by_euclid_lsh", (PyCFunction)(void (*)(void))nearest_by_euclid_lsh, METH_FASTCALL,
     "euclid_lsh's nearest rows by their estimated distance, ties by position."},
    {"copy_rows", (PyCFunction)(void (*)(void))copy_rows, METH_FASTCALL,
     "Rows of arrays copied from one copy of a model to the other."},
    {NULL, NULL, 0, NULL},
};

static int intern_names(void) {
    struct {
        PyObject **slot;
        const char *text;
    } names[] = {
        {&s_retired, "retired"},     {&s_full, "full"},   {&s_index, "index"},
        {&s_ids, "ids"},             {&s_rows, "rows"},   {&s_arrays, "arrays"},
        {&s_W, "W"},                 {&s_stride, "stride"}, {&s_order_slots, "order_slots"},
        {&s_order_labels, "order_labels"},
        {&s_V, "V"},                 {&s_WM, "WM"},       {&s_WD, "WD"},
        {&s_VM, "VM"},               {&s_VD, "VD"},
    };
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        *names[i].slot = PyUnicode_InternFromString(names[i].text);
        if (*names[i].slot == NULL) {
            return -1;
        }
    }
    return 0;
}

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_kernels",
    "Compiled hot paths; engines.common.kernels loads them, with Python as the fallback.", -1,
    methods,
};

PyMODINIT_FUNC PyInit__kernels(void) {
    if (intern_names() < 0) {
        return NULL;
    }
    return PyModule_Create(&module);
}
